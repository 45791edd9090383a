//! The OAuth gate against a real OpenID provider (npm `oidc-provider`, `e2e/idp`) and a
//! real ClickHouse that holds one of the claimed users: forged tokens are refused before
//! ClickHouse is asked. (Signature, `aud`, expiry and scope checks need no ClickHouse and
//! are proved in process: gate_rules.rs.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chmcp_tests::clickhouse::{ClickHouse, Users};
use chmcp_tests::gateway::{config, resource_server, Gateway};
use chmcp_tests::idp::{clients, Idp};
use chmcp_tests::jwt;
use chmcp_tests::mcp::Mcp;
use serde_json::json;

/// A plain TCP relay in front of the real ClickHouse that counts connections: how the
/// test knows whether the gateway asked ClickHouse anything at all.
struct CountingRelay {
    port: u16,
    connections: Arc<AtomicU64>,
}

impl CountingRelay {
    async fn start(target_port: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicU64::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { port, connections }
    }

    fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// With OAuth on and nothing said about `validate_tokens`, a token nobody signed is
/// refused at the gate: ClickHouse is never asked, and a claimed username gets the same
/// answer whether or not that ClickHouse user exists (no enumeration by 192 vs 193, no
/// login as a user whose authentication ignores the password).
#[tokio::test]
async fn unsigned_tokens_are_refused_before_clickhouse_by_default() {
    let idp = Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"));
    let real = idp
        .token(clients::ALICE, "mcp:read", &idp.audience)
        .await
        .unwrap();
    // `alice` exists (her password is her real token); `mallory` does not.
    let ch = ClickHouse::start_with(Users::default().with("alice", &real, "default"));
    let relay = CountingRelay::start(ch.http_port).await;
    let gw = Gateway::start(&config(
        relay.port,
        &resource_server(&idp.issuer, &idp.audience, ""),
    ));

    let mut answers = Vec::new();
    for user in ["alice", "mallory"] {
        let claims = jwt::claims_for(&idp, user);
        for forged in [jwt::alg_none(&claims), jwt::unsigned(&claims)] {
            let r = Mcp::with_bearer(gw.mcp_url(), forged)
                .request(
                    "tools/call",
                    json!({"name": "execute_query", "arguments": {"query": "SELECT 1"}}),
                )
                .await;
            assert_eq!(r.status, 401, "{user}: {}", r.body);
            let www = r.headers["www-authenticate"].to_str().unwrap().to_string();
            assert!(www.starts_with("Bearer error=\"invalid_token\""), "{www}");
            answers.push((r.status, www, r.body.to_string()));
        }
    }
    // The same refusal for the existing and the made-up user, form by form.
    assert_eq!(answers[0], answers[2], "alg none: alice vs mallory");
    assert_eq!(answers[1], answers[3], "bad signature: alice vs mallory");
    assert_eq!(relay.connections(), 0, "ClickHouse was asked");

    // The relay works: the real token gets through to ClickHouse as alice.
    let r = Mcp::with_bearer(gw.mcp_url(), real).query("SELECT 1").await;
    assert_eq!(r["structuredContent"]["rows"], json!([[1]]), "{r}");
    assert!(relay.connections() > 0);
}

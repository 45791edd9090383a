//! Behaviour only a modern ClickHouse shows, against `ModernClickHouseDouble`: a TEST
//! DOUBLE (not a real server) that answers as the ClickHouse documentation says a
//! server with JWT token processors does — Bearer tokens accepted, exception codes 516
//! (AUTHENTICATION_FAILED) and 497 (ACCESS_DENIED) in the modern body format. A real
//! server would also check the JWT's signature and apply the user's grants; the double
//! only compares the token with a list and denies one table by name.

use std::sync::Arc;

use chmcp_tests::gateway::Gateway;
use chmcp_tests::jwt;
use chmcp_tests::mcp::Mcp;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct ModernClickHouseDouble {
    port: u16,
}

impl ModernClickHouseDouble {
    async fn start(accepted: Vec<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(accepted);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let accepted = accepted.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head, body) = loop {
                        let n = sock.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some((head, body)) = text.split_once("\r\n\r\n") {
                            let len = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if body.len() >= len {
                                break (head.to_string(), body.to_string());
                            }
                        }
                    };
                    let bearer = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("authorization: Bearer ")
                                .or_else(|| l.strip_prefix("Authorization: Bearer "))
                        })
                        .map(str::to_string);
                    let (status, text) = match bearer {
                        Some(t) if accepted.contains(&t) => {
                            if body.contains("secret_table") {
                                ("403 Forbidden", "Code: 497. DB::Exception: alice: Not enough privileges. To execute this query, it's necessary to have the grant SELECT ON default.secret_table. (ACCESS_DENIED) (version 25.8.1.1)\n".to_string())
                            } else {
                                ("200 OK", "{\"meta\": [{\"name\": \"1\", \"type\": \"UInt8\"}], \"data\": [[1]], \"rows\": 1}\n".to_string())
                            }
                        }
                        _ => ("403 Forbidden", "Code: 516. DB::Exception: alice: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED) (version 25.8.1.1)\n".to_string()),
                    };
                    let resp = format!("HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        Self { port }
    }
}

fn gateway(double: &ModernClickHouseDouble) -> Gateway {
    Gateway::start(&format!(
        "clickhouse:
  host: 127.0.0.1
server:
  oauth: {{enabled: true, broker: false, issuer: 'http://127.0.0.1:9/', username_claim: preferred_username}}
multicluster:
  enabled: true
  cluster_allowlist: [m]
  clusters: {{m: {{port: {}}}}}
",
        double.port
    ))
}

async fn probes(gw: &Gateway, method: &str, outcome: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", gw.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| {
            l.starts_with("chmcp_identity_probes_total{")
                && l.contains(&format!("method=\"{method}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

fn text(r: &serde_json::Value) -> String {
    r["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn double_bearer_is_accepted_by_token_processors_and_remembered() {
    let token = jwt::for_user("alice");
    let double = ModernClickHouseDouble::start(vec![token.clone()]).await;
    let gw = gateway(&double);
    let mut m = Mcp::new(format!("{}/mcp/m", gw.base()));
    m.bearer = Some(token);
    for _ in 0..3 {
        let r = m.call("execute_query", json!({"query": "SELECT 1"})).await;
        assert_eq!(r["structuredContent"]["rows"], json!([[1]]), "{r}");
    }
    assert_eq!(
        probes(&gw, "bearer", "ok").await,
        1,
        "one probe, then the remembered method"
    );
    assert_eq!(
        probes(&gw, "basic", "ok").await + probes(&gw, "basic", "auth_rejected").await,
        0
    );
}

#[tokio::test]
async fn double_code_516_is_auth_class_and_both_methods_are_tried() {
    let double = ModernClickHouseDouble::start(vec![]).await;
    let gw = gateway(&double);
    let mut m = Mcp::new(format!("{}/mcp/m", gw.base()));
    m.bearer = Some(jwt::for_user("mallory"));
    let r = m.call("execute_query", json!({"query": "SELECT 1"})).await;
    assert_eq!(r["isError"], json!(true));
    let t = text(&r);
    assert!(
        t.contains("both as Bearer") && t.contains("Authentication failed"),
        "{t}"
    );
    assert_eq!(
        (
            probes(&gw, "bearer", "auth_rejected").await,
            probes(&gw, "basic", "auth_rejected").await
        ),
        (1, 1)
    );
}

#[tokio::test]
async fn double_code_497_is_a_tool_error_and_re_probes_the_endpoint_once() {
    let token = jwt::for_user("alice");
    let double = ModernClickHouseDouble::start(vec![token.clone()]).await;
    let gw = gateway(&double);
    let mut m = Mcp::new(format!("{}/mcp/m", gw.base()));
    m.bearer = Some(token);
    m.call("execute_query", json!({"query": "SELECT 1"})).await;
    let r = m
        .call(
            "execute_query",
            json!({"query": "SELECT * FROM default.secret_table"}),
        )
        .await;
    assert_eq!(r["isError"], json!(true));
    assert!(
        text(&r).contains("ClickHouse error 497 (ACCESS_DENIED)"),
        "{}",
        text(&r)
    );
    assert_eq!(
        probes(&gw, "bearer", "ok").await,
        2,
        "an auth-class failure re-probes the endpoint"
    );
    // Within 30 s a second failure does not probe again.
    m.call(
        "execute_query",
        json!({"query": "SELECT * FROM default.secret_table"}),
    )
    .await;
    assert_eq!(probes(&gw, "bearer", "ok").await, 2);
}

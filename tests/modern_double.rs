//! Behaviour only a modern ClickHouse shows, against `ModernClickHouseDouble`: a TEST
//! DOUBLE (not a real server) that answers as the ClickHouse documentation says a
//! server with JWT token processors does — Bearer tokens accepted, exception codes 516
//! (AUTHENTICATION_FAILED) and 497 (ACCESS_DENIED) in the modern body format. A real
//! server would also check the JWT's signature and apply the user's grants; the double
//! only compares the token with a list and denies one table by name.

use chmcp_tests::gateway::Gateway;
use chmcp_tests::http_double::{HttpDouble, Reply};
use chmcp_tests::idp::Idp;
use chmcp_tests::jwt;
use chmcp_tests::mcp::{text_of, Mcp};
use chmcp_tests::metrics::Metrics;
use serde_json::json;

struct ModernClickHouseDouble {
    port: u16,
    server: HttpDouble,
}

impl ModernClickHouseDouble {
    async fn start(accepted: Vec<String>) -> Self {
        let server = HttpDouble::start(move |req| {
            let bearer = req.head.lines().find_map(|l| {
                l.strip_prefix("authorization: Bearer ")
                    .or_else(|| l.strip_prefix("Authorization: Bearer "))
            });
            match bearer {
                Some(t) if accepted.iter().any(|a| a == t) => {
                    if req.body.contains("secret_table") {
                        Reply::new(403, "Code: 497. DB::Exception: alice: Not enough privileges. To execute this query, it's necessary to have the grant SELECT ON default.secret_table. (ACCESS_DENIED) (version 25.8.1.1)\n")
                    } else {
                        Reply::new(200, "{\"meta\": [{\"name\": \"1\", \"type\": \"UInt8\"}], \"data\": [[1]], \"rows\": 1}\n")
                    }
                }
                _ => Reply::new(403, "Code: 516. DB::Exception: alice: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED) (version 25.8.1.1)\n"),
            }
        })
        .await;
        Self {
            port: server.port,
            server,
        }
    }
}

fn idp() -> Idp {
    Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"))
}

/// The gateway in front of the double, validating tokens against the test IdP (the
/// default); `oauth_extra` adds `server.oauth` keys.
fn gateway(double: &ModernClickHouseDouble, idp: &Idp, oauth_extra: &str) -> Gateway {
    Gateway::start(&format!(
        "clickhouse:
  host: 127.0.0.1
server:
  oauth: {{enabled: true, broker: false, issuer: '{}', audience: '{}', username_claim: preferred_username{oauth_extra}}}
multicluster:
  enabled: true
  cluster_allowlist: [m]
  clusters: {{m: {{port: {}}}}}
",
        idp.issuer, idp.audience, double.port
    ))
}

/// Identity probes of the double's endpoint by `method` and `outcome`.
async fn probes(gw: &Gateway, method: &str, outcome: &str) -> u64 {
    Metrics::scrape(&gw.base()).await.count(
        "chmcp_identity_probes_total",
        &[("method", method), ("outcome", outcome)],
    )
}

/// The gateway in front of a double that accepts alice's token, and alice's client.
/// The IdP and the double live as long as the returned values.
async fn alice_at_the_double() -> (Idp, ModernClickHouseDouble, Gateway, Mcp) {
    let idp = idp();
    let token = jwt::for_user(&idp, "alice");
    let double = ModernClickHouseDouble::start(vec![token.clone()]).await;
    let gw = gateway(&double, &idp, "");
    let m = Mcp::with_bearer(format!("{}/mcp/m", gw.base()), token);
    (idp, double, gw, m)
}

#[tokio::test]
async fn double_bearer_is_accepted_by_token_processors_and_remembered() {
    let (_idp, _double, gw, m) = alice_at_the_double().await;
    for _ in 0..3 {
        let r = m.query("SELECT 1").await;
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

/// A modern server records its spans under the `traceparent` it receives. The double
/// records the header: every request of a traced call (the identity probe, the KILL
/// QUERY that ends the probe's one-row read, the caller's query) continues the
/// client's trace.
#[tokio::test]
async fn double_receives_traceparent_on_every_request_continuing_the_client_trace() {
    let (_idp, double, _gw, m) = alice_at_the_double().await;
    let client_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let r = m
        .post_raw(
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                    "params": {"name": "execute_query", "arguments": {"query": "SELECT 1"}}}),
            &[(
                "traceparent",
                &format!("00-{client_trace}-00f067aa0ba902b7-01"),
            )],
        )
        .await;
    assert_eq!(
        r.body["result"]["structuredContent"]["rows"],
        json!([[1]]),
        "{:?}",
        r.body
    );
    let seen = double.server.received();
    assert!(!seen.is_empty());
    let traceparents: Vec<String> = seen
        .iter()
        .map(|req| {
            req.head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("traceparent")
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_else(|| panic!("no traceparent: {}", req.head))
        })
        .collect();
    assert!(
        traceparents.iter().all(|t| t.contains(client_trace)),
        "{traceparents:?}"
    );
}

#[tokio::test]
async fn double_code_516_is_auth_class_and_both_methods_are_tried() {
    let idp = idp();
    let double = ModernClickHouseDouble::start(vec![]).await;
    let gw = gateway(&double, &idp, "");
    let m = Mcp::with_bearer(
        format!("{}/mcp/m", gw.base()),
        jwt::for_user(&idp, "mallory"),
    );
    let r = m.query("SELECT 1").await;
    assert_eq!(r["isError"], json!(true));
    let t = text_of(&r);
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
    let (_idp, _double, gw, m) = alice_at_the_double().await;
    m.query("SELECT 1").await;
    let r = m.query("SELECT * FROM default.secret_table").await;
    assert_eq!(r["isError"], json!(true));
    assert!(
        text_of(&r).contains("ClickHouse error 497 (ACCESS_DENIED)"),
        "{}",
        text_of(&r)
    );
    assert_eq!(
        probes(&gw, "bearer", "ok").await,
        2,
        "an auth-class failure re-probes the endpoint"
    );
    // Within 30 s a second failure does not probe again.
    m.query("SELECT * FROM default.secret_table").await;
    assert_eq!(probes(&gw, "bearer", "ok").await, 2);
}

/// `validate_tokens: false` with `trust_clickhouse_token_checks: true`: the gateway uses
/// no claim of the token, so a refused Bearer is never retried as Basic with a username
/// the token merely claims.
#[tokio::test]
async fn double_unverified_tokens_are_sent_as_bearer_only() {
    let idp = idp();
    let accepted = jwt::unsigned(&jwt::claims_for(&idp, "alice"));
    let double = ModernClickHouseDouble::start(vec![accepted.clone()]).await;
    let gw = gateway(
        &double,
        &idp,
        ", validate_tokens: false, trust_clickhouse_token_checks: true",
    );
    assert!(
        gw.log().contains("validate_tokens is false"),
        "a startup warning: {}",
        gw.log()
    );
    let mut m = Mcp::new(format!("{}/mcp/m", gw.base()));
    m.bearer = Some(jwt::unsigned(&jwt::claims_for(&idp, "mallory")));
    let r = m.query("SELECT 1").await;
    assert_eq!(r["isError"], json!(true));
    assert!(text_of(&r).contains("validate_tokens"), "{}", text_of(&r));

    m.bearer = Some(accepted);
    let r = m.query("SELECT 1").await;
    assert_eq!(r["structuredContent"]["rows"], json!([[1]]), "{r}");
    assert_eq!(
        probes(&gw, "basic", "auth_rejected").await + probes(&gw, "basic", "ok").await,
        0,
        "Basic is never tried with an unverified claim"
    );
}

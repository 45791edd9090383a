//! Multi-cluster mode against two real ClickHouse 18.16 servers acting as clusters
//! `a` and `b`, with OAuth on in resource-server mode and the gateway validating tokens
//! against the real test IdP (the default). 18.16 has no token processors: each user's
//! password is their JWT, so the Basic identity path is real. (Routing, the challenge and
//! the metadata documents need no ClickHouse and are proved in process: gate_rules.rs.)

use chmcp_tests::clickhouse::{ClickHouse, Users};
use chmcp_tests::gateway::{clusters_a_b, resource_server, Gateway};
use chmcp_tests::idp::{clients, Idp};
use chmcp_tests::mcp::Mcp;
use chmcp_tests::metrics::Metrics;
use serde_json::{json, Value};

struct Fleet {
    a: ClickHouse,
    b: ClickHouse,
    gw: Gateway,
    idp: Idp,
    token: String,
}

async fn fleet(extra: &str) -> Fleet {
    let idp = Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"));
    // A token the IdP issued; its `preferred_username` is `alice`.
    let token = idp
        .token(clients::ALICE, "mcp:read", &idp.audience)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let users = Users::default().with("alice", &token, "default");
    let (a, b) = (
        ClickHouse::start_with(users.clone()),
        ClickHouse::start_with(users),
    );
    for (ch, name) in [(&a, "a"), (&b, "b")] {
        ch.query("CREATE TABLE default.whoami (cluster String) ENGINE = TinyLog");
        ch.query(&format!("INSERT INTO default.whoami VALUES ('{name}')"));
        ch.query("CREATE VIEW default.recent AS SELECT cluster FROM default.whoami");
    }
    let server = resource_server(
        &idp.issuer,
        &idp.audience,
        "  tools:\n    - {type: read, view_regexp: 'default\\..*', prefix: 'v_'}\n",
    );
    let config = clusters_a_b(&server, a.http_port, b.http_port) + extra;
    let gw = Gateway::start(&config);
    Fleet {
        a,
        b,
        gw,
        idp,
        token,
    }
}

fn client(f: &Fleet, cluster: &str) -> Mcp {
    Mcp::with_bearer(format!("{}/mcp/{cluster}", f.gw.base()), f.token.clone())
}

async fn metrics(f: &Fleet) -> Metrics {
    Metrics::scrape(&f.gw.base()).await
}

#[tokio::test]
async fn one_token_reaches_each_cluster_by_path() {
    let f = fleet("").await;
    for cluster in ["a", "b"] {
        let r = client(&f, cluster)
            .query("SELECT cluster FROM default.whoami")
            .await;
        assert_eq!(r["structuredContent"]["rows"], json!([[cluster]]), "{r}");
    }
    // log_comment is unknown to 18.16; the query_log of each server still shows who asked.
    assert!(
        !f.gw.log().contains(&f.token),
        "the token never reaches a log line"
    );
}

#[tokio::test]
async fn bearer_is_refused_by_18_16_then_basic_is_remembered() {
    let f = fleet("").await;
    let mcp = client(&f, "a");
    mcp.query("SELECT 1").await;
    let ep = format!("127.0.0.1:{}", f.a.http_port);
    let probes = |m: &Metrics, ep: &str, method: &str, outcome: &str| {
        m.count(
            "chmcp_identity_probes_total",
            &[("endpoint", ep), ("method", method), ("outcome", outcome)],
        )
    };
    let m = metrics(&f).await;
    let counts = |m: &Metrics| {
        (
            probes(m, &ep, "bearer", "auth_rejected"),
            probes(m, &ep, "basic", "ok"),
        )
    };
    assert_eq!(counts(&m), (1, 1), "{}", m.page());
    mcp.query("SELECT 2").await;
    mcp.query("SELECT 3").await;
    let m = metrics(&f).await;
    assert_eq!(counts(&m), (1, 1), "no probe after the first: {}", m.page());
    // The other cluster is another endpoint, probed on its own.
    client(&f, "b").query("SELECT 1").await;
    let m = metrics(&f).await;
    let ep_b = format!("127.0.0.1:{}", f.b.http_port);
    assert_eq!(probes(&m, &ep_b, "basic", "ok"), 1, "{}", m.page());
    // Each attempt is timed; each call is timed under its (allow-listed) cluster.
    assert_eq!(
        m.count(
            "chmcp_identity_probe_duration_seconds_count",
            &[("method", "basic"), ("outcome", "ok")]
        ),
        2,
        "{}",
        m.page()
    );
    let calls = |cluster: &str| {
        m.count(
            "chmcp_tool_call_duration_seconds_count",
            &[("tool", "execute_query"), ("cluster", cluster)],
        )
    };
    assert_eq!((calls("a"), calls("b")), (3, 1), "{}", m.page());
}

#[tokio::test]
async fn catalogs_are_cached_per_token_and_denied_entries_only_for_auth_failures() {
    let f = fleet("").await;
    let mcp = client(&f, "a");
    for _ in 0..3 {
        let names = mcp.tool_names().await;
        assert!(names.contains(&"v_default_recent".to_string()), "{names:?}");
    }
    let m = metrics(&f).await;
    let lookups = "chmcp_catalog_cache_lookups_total";
    assert_eq!(m.count(lookups, &[("result", "miss")]), 1, "{}", m.page());
    assert_eq!(m.count(lookups, &[("result", "hit_ok")]), 2, "{}", m.page());

    // A valid token ClickHouse does not accept (no user `eve`): static tools, one denied
    // entry, and a tool error.
    let mut stranger = client(&f, "a");
    stranger.bearer = Some(
        f.idp
            .token(clients::EVE, "mcp:read", &f.idp.audience)
            .await
            .unwrap(),
    );
    let names = stranger.tool_names().await;
    assert!(
        names.contains(&"execute_query".to_string())
            && !names.contains(&"v_default_recent".to_string()),
        "{names:?}"
    );
    let r = stranger.query("SELECT 1").await;
    assert_eq!(r["isError"], json!(true));
    let health: Value = reqwest::get(format!("{}/health", f.gw.base()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["catalog_cache"]["denied_entries"], 1, "{health}");
    assert_eq!(health["catalog_cache"]["entries"], 2, "{health}");

    // A transient failure (cluster b down) serves the static tools and is never cached.
    let mut f = f;
    f.b.stop();
    let b = client(&f, "b");
    let names = b.tool_names().await;
    assert!(
        names.contains(&"execute_query".to_string())
            && !names.contains(&"v_default_recent".to_string()),
        "{names:?}"
    );
    let m = metrics(&f).await;
    assert_eq!(
        m.count(
            "chmcp_catalog_discoveries_total",
            &[("outcome", "transient_error")]
        ),
        1,
        "{}",
        m.page()
    );
    f.b.restart();
    assert!(
        b.tool_names()
            .await
            .contains(&"v_default_recent".to_string()),
        "recovers at once: nothing was cached"
    );
}

/// The cancellation scope with OAuth on is the bearer the gate admitted (its sha256): bob,
/// holding a real token of his own from the same IdP, cannot stop alice's request by
/// guessing its id; alice, from another connection with her token, can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_bearer_that_started_a_request_cancels_it() {
    let idp = Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"));
    let token = |client: &'static str| {
        let idp = &idp;
        async move {
            idp.token(client, "mcp:read", &idp.audience)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"))
        }
    };
    let (alice, bob) = (token(clients::ALICE).await, token(clients::BOB).await);
    let users = Users::default()
        .with("alice", &alice, "default")
        .with("bob", &bob, "default");
    let (a, b) = (
        ClickHouse::start_with(users.clone()),
        ClickHouse::start_with(users),
    );
    let server = resource_server(&idp.issuer, &idp.audience, "");
    let gw = Gateway::start(&clusters_a_b(&server, a.http_port, b.http_port));
    let url = format!("{}/mcp/a", gw.base());
    // Starts `SELECT sleep(3)` as alice (request id 1), then `canceller` names id 1.
    let cancel_from = |canceller: String| {
        let (url, alice) = (url.clone(), alice.clone());
        async move {
            let runner = Mcp::with_bearer(url.clone(), alice);
            let running = tokio::spawn(async move {
                runner
                    .request(
                        "tools/call",
                        json!({"name": "execute_query", "arguments": {"query": "SELECT sleep(3) AS slept"}}),
                    )
                    .await
            });
            tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
            let r = Mcp::with_bearer(url, canceller).cancel(1).await;
            assert_eq!(r.status, 202, "{:?}", r.body);
            running.await.expect("alice's request").body
        }
    };
    let r = cancel_from(bob).await;
    assert_eq!(
        r["result"]["structuredContent"]["rows"],
        json!([[0]]),
        "bob cancelled alice's query: {r}"
    );
    let r = cancel_from(alice.clone()).await;
    assert_eq!(
        r["error"]["code"], -32800,
        "alice could not cancel her own query: {r}"
    );
    assert!(
        !gw.log().contains(&alice),
        "the token never reaches a log line"
    );
}

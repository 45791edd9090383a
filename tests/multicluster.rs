//! Multi-cluster mode against two real ClickHouse 18.16 servers acting as clusters
//! `a` and `b`, with OAuth on in resource-server mode and the gateway validating tokens
//! against the real test IdP (the default). 18.16 has no token processors: each user's
//! password is their JWT, so the Basic identity path is real.

use chmcp_tests::clickhouse::{ClickHouse, Users};
use chmcp_tests::gateway::Gateway;
use chmcp_tests::idp::{clients, Idp};
use chmcp_tests::jwt;
use chmcp_tests::mcp::Mcp;
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
    let config = format!(
        "clickhouse:
  host: 127.0.0.1
server:
  oauth:
    enabled: true
    broker: false
    issuer: {}
    audience: {}
    username_claim: preferred_username
  tools:
    - {{type: read, view_regexp: 'default\\..*', prefix: 'v_'}}
multicluster:
  enabled: true
  cluster_allowlist: [a, b]
  clusters:
    a: {{port: {}}}
    b: {{port: {}}}
{extra}",
        idp.issuer, idp.audience, a.http_port, b.http_port
    );
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
    let mut m = Mcp::new(format!("{}/mcp/{cluster}", f.gw.base()));
    m.bearer = Some(f.token.clone());
    m
}

async fn metrics(f: &Fleet) -> String {
    reqwest::get(format!("{}/metrics", f.gw.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn one_token_reaches_each_cluster_by_path() {
    let f = fleet("").await;
    for cluster in ["a", "b"] {
        let r = client(&f, cluster)
            .call(
                "execute_query",
                json!({"query": "SELECT cluster FROM default.whoami"}),
            )
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
    mcp.call("execute_query", json!({"query": "SELECT 1"}))
        .await;
    let ep = format!("127.0.0.1:{}", f.a.http_port);
    let m = metrics(&f).await;
    let bearer = format!("chmcp_identity_probes_total{{endpoint=\"{ep}\",method=\"bearer\",outcome=\"auth_rejected\"}}");
    let basic =
        format!("chmcp_identity_probes_total{{endpoint=\"{ep}\",method=\"basic\",outcome=\"ok\"}}");
    assert_eq!((metric(&m, &bearer), metric(&m, &basic)), (1, 1), "{m}");
    mcp.call("execute_query", json!({"query": "SELECT 2"}))
        .await;
    mcp.call("execute_query", json!({"query": "SELECT 3"}))
        .await;
    let m = metrics(&f).await;
    assert_eq!(
        (metric(&m, &bearer), metric(&m, &basic)),
        (1, 1),
        "no probe after the first: {m}"
    );
    // The other cluster is another endpoint, probed on its own.
    client(&f, "b")
        .call("execute_query", json!({"query": "SELECT 1"}))
        .await;
    let m = metrics(&f).await;
    assert_eq!(metric(&m, &format!("chmcp_identity_probes_total{{endpoint=\"127.0.0.1:{}\",method=\"basic\",outcome=\"ok\"}}", f.b.http_port)), 1);
}

#[tokio::test]
async fn unknown_or_malformed_cluster_is_404_before_auth() {
    let f = fleet("").await;
    let http = reqwest::Client::new();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let mut replies = Vec::new();
    for path in ["/mcp/c", "/mcp/Bad_Name", "/mcp/-a", "/mcp/a/extra", "/mcp"] {
        let r = http
            .post(format!("{}{path}", f.gw.base()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(
            r.headers().get("www-authenticate").is_none(),
            "{path}: 404 comes before auth"
        );
        replies.push(r.text().await.unwrap());
    }
    assert!(
        replies[..4].windows(2).all(|w| w[0] == w[1]),
        "one reply for every cause: {replies:?}"
    );
}

#[tokio::test]
async fn missing_or_expired_bearer_gets_the_exact_challenge() {
    let f = fleet("").await;
    let mut anon = Mcp::new(format!("{}/mcp/a", f.gw.base()));
    let r = anon.request("tools/list", json!({})).await;
    assert_eq!(r.status, 401);
    let expected = format!(
        "Bearer error=\"invalid_token\", error_description=\"no bearer token in the Authorization header\", resource_metadata=\"http://127.0.0.1:{}/mcp/a/.well-known/oauth-protected-resource\", scope=\"openid email\"",
        f.gw.port
    );
    assert_eq!(r.headers["www-authenticate"], expected.as_str());

    let mut expired = jwt::claims_for(&f.idp, "alice");
    expired["exp"] = json!(jwt::now() - 120);
    anon.bearer = Some(jwt::signed_by(&f.idp, &expired));
    for method in ["tools/list", "initialize", "ping"] {
        let r = anon.request(method, json!({})).await;
        assert_eq!(
            r.status, 401,
            "{method}: an expired JWT is refused on every method"
        );
        assert!(
            r.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("expired"),
            "{:?}",
            r.headers
        );
    }
}

#[tokio::test]
async fn protected_resource_metadata_at_all_three_paths() {
    let f = fleet("").await;
    let get = |path: &str| {
        let url = format!("{}{path}", f.gw.base());
        async move {
            let r = reqwest::get(url).await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let base = f.gw.base();
    for path in [
        "/mcp/a/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp/a",
    ] {
        let (status, doc) = get(path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(doc["resource"], format!("{base}/mcp/a"));
        assert_eq!(doc["authorization_servers"], json!([f.idp.issuer]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert!(doc["resource_name"].as_str().unwrap().contains('a'));
    }
    let (status, root) = get("/.well-known/oauth-protected-resource").await;
    assert_eq!(status, 200);
    assert_eq!(root["resource"], base);
    assert_eq!(
        get("/.well-known/oauth-protected-resource/mcp/zzz").await.0,
        404
    );
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
    assert_eq!(
        metric(&m, "chmcp_catalog_cache_lookups_total{result=\"miss\"}"),
        1,
        "{m}"
    );
    assert_eq!(
        metric(&m, "chmcp_catalog_cache_lookups_total{result=\"hit_ok\"}"),
        2,
        "{m}"
    );

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
    let r = stranger
        .call("execute_query", json!({"query": "SELECT 1"}))
        .await;
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
        metric(
            &m,
            "chmcp_catalog_discoveries_total{outcome=\"transient_error\"}"
        ),
        1,
        "{m}"
    );
    f.b.restart();
    assert!(
        b.tool_names()
            .await
            .contains(&"v_default_recent".to_string()),
        "recovers at once: nothing was cached"
    );
}

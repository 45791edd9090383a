//! The fleet connector (`/mcp` with `multicluster.fleet_endpoint: true`) against three
//! real ClickHouse 18.16 servers acting as clusters `a`, `b` and `c`, OAuth on in
//! resource-server mode with the real test IdP. 18.16 has no token processors, so each
//! user's password is their JWT and the Basic identity path is real. Alice's grants
//! differ per cluster: on `a` she may read databases `default` and `other`, on `b` only
//! `default` (18.16's `allow_databases`, which also filters `system.tables`), and on `c`
//! she is no user at all.

use chmcp_tests::clickhouse::{ClickHouse, Users};
use chmcp_tests::gateway::{resource_server, Gateway};
use chmcp_tests::idp::{clients, Idp};
use chmcp_tests::mcp::{structured, text_of, Mcp};
use serde_json::{json, Value};

struct Fleet {
    servers: Vec<ClickHouse>,
    gw: Gateway,
    /// The gateway validates tokens against its keys for the whole test.
    _idp: Idp,
    token: String,
}

/// A user fragment for 18.16's users.xml, limited to `databases`.
fn user(name: &str, password: &str, databases: &[&str]) -> String {
    let dbs: String = databases
        .iter()
        .map(|d| format!("<database>{d}</database>"))
        .collect();
    format!("<{name}><password>{password}</password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota><allow_databases>{dbs}</allow_databases></{name}>")
}

/// Three servers; `alice_on_c` says whether `c` knows alice (with `a`'s grants).
async fn fleet(alice_on_c: bool) -> Fleet {
    let idp = Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"));
    let token = idp
        .token(clients::ALICE, "mcp:read", &idp.audience)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let both = user("alice", &token, &["default", "other"]);
    let grants = [
        both.clone(),
        user("alice", &token, &["default"]),
        if alice_on_c { both } else { String::new() },
    ];
    let mut servers = Vec::new();
    for (name, xml) in ["a", "b", "c"].iter().zip(grants) {
        let ch = ClickHouse::start_with(Users { xml });
        ch.query("CREATE DATABASE other");
        ch.query("CREATE TABLE default.whoami (cluster String) ENGINE = TinyLog");
        ch.query(&format!("INSERT INTO default.whoami VALUES ('{name}')"));
        ch.query("CREATE TABLE default.marks (mark String) ENGINE = TinyLog");
        ch.query("CREATE VIEW default.recent AS SELECT cluster FROM default.whoami");
        ch.query("CREATE VIEW other.secret AS SELECT 42 AS answer");
        servers.push(ch);
    }
    let server = resource_server(
        &idp.issuer,
        &idp.audience,
        "  tools:\n    - {type: read, view_regexp: '(default|other)\\..*', prefix: 'v_'}\n",
    );
    let ports: Vec<u16> = servers.iter().map(|s| s.http_port).collect();
    let config = format!(
        "clickhouse:\n  host: 127.0.0.1\n{server}multicluster:\n  enabled: true\n  fleet_endpoint: true\n  cluster_allowlist: [a, b, c]\n  clusters:\n    a: {{port: {}, description: 'Analytics events'}}\n    b: {{port: {}, description: 'Billing'}}\n    c: {{port: {}}}\n",
        ports[0], ports[1], ports[2]
    );
    let gw = Gateway::start(&config);
    Fleet {
        servers,
        gw,
        _idp: idp,
        token,
    }
}

fn connector(f: &Fleet) -> Mcp {
    Mcp::with_bearer(f.gw.mcp_url(), f.token.clone())
}

async fn tools(mcp: &Mcp) -> Vec<Value> {
    let r = mcp.request("tools/list", json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["result"]["tools"]
        .as_array()
        .cloned()
        .expect("tools")
}

fn names(tools: &[Value]) -> Vec<&str> {
    tools.iter().filter_map(|t| t["name"].as_str()).collect()
}

async fn statuses(mcp: &Mcp) -> Vec<(String, String)> {
    let r = mcp.call("list_clusters", json!({})).await;
    structured(&r)["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn a_caller_sees_dynamic_tools_only_of_clusters_that_grant_them() {
    let f = fleet(false).await;
    let mcp = connector(&f);
    let init = mcp
        .post_raw(&chmcp_tests::mcp::initialize("2025-11-25"), &[])
        .await;
    assert!(
        init.body["result"]["instructions"]
            .as_str()
            .is_some_and(|i| i.contains("list_clusters")),
        "{:?}",
        init.body
    );
    let listed = tools(&mcp).await;
    let n = names(&listed);
    for want in [
        "a__v_default_recent",
        "a__v_other_secret",
        "b__v_default_recent",
    ] {
        assert!(n.contains(&want), "{want} missing: {n:?}");
    }
    assert!(
        !n.contains(&"b__v_other_secret"),
        "b grants no `other`: {n:?}"
    );
    assert!(
        !n.iter().any(|t| t.starts_with("c__")),
        "c knows no alice: {n:?}"
    );
    // Static tools take the cluster by argument, from the allow-list, described.
    let exec = listed
        .iter()
        .find(|t| t["name"] == "execute_query")
        .expect("execute_query");
    let cluster = &exec["inputSchema"]["properties"]["cluster"];
    assert_eq!(cluster["enum"], json!(["a", "b", "c"]), "{exec}");
    assert!(
        cluster["description"]
            .as_str()
            .is_some_and(|d| d.contains("`b`: Billing")),
        "{cluster}"
    );
    assert!(exec["inputSchema"]["required"]
        .as_array()
        .is_some_and(|r| r.contains(&json!("cluster"))));
    assert_eq!(
        statuses(&mcp).await,
        pairs(&[("a", "ok"), ("b", "ok"), ("c", "denied")])
    );
    let r = mcp.call("list_clusters", json!({})).await;
    assert_eq!(
        structured(&r)["clusters"][0]["description"],
        "Analytics events"
    );
    assert!(
        !f.gw.log().contains(&f.token),
        "the token never reaches a log line"
    );
}

#[tokio::test]
async fn a_query_with_cluster_b_reaches_server_b_and_no_other() {
    let f = fleet(true).await;
    let mcp = connector(&f);
    let r = mcp
        .call(
            "write_query",
            json!({"cluster": "b", "query": "INSERT INTO default.marks VALUES ('from-fleet')"}),
        )
        .await;
    assert_ne!(r["isError"], json!(true), "{r}");
    let marks: Vec<String> = f
        .servers
        .iter()
        .map(|s| {
            s.query("SELECT count() FROM default.marks")
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(marks, ["0", "1", "0"], "only b got the row");
    // The per-cluster metrics name the cluster the call ran on, never `*`: one tool
    // call on b, and every ClickHouse request of it (probes included) sent to b.
    let m = chmcp_tests::metrics::Metrics::scrape(&f.gw.base()).await;
    let call = "chmcp_tool_call_duration_seconds_count";
    assert_eq!(m.count(call, &[("cluster", "b")]), 1, "{}", m.page());
    assert_eq!(m.count(call, &[("cluster", "*")]), 0, "{}", m.page());
    let sent = "chmcp_clickhouse_query_duration_seconds_count";
    assert!(m.count(sent, &[("cluster", "b")]) >= 1, "{}", m.page());
    assert_eq!(m.count(sent, &[("cluster", "a")]), 0, "{}", m.page());
    assert_eq!(m.count(sent, &[("cluster", "*")]), 0, "{}", m.page());
    // Reads name their cluster; so does a dynamic tool's result.
    let r = mcp
        .call(
            "execute_query",
            json!({"cluster": "b", "query": "SELECT cluster FROM default.whoami"}),
        )
        .await;
    assert_eq!(structured(&r)["rows"], json!([["b"]]), "{r}");
    assert_eq!(structured(&r)["cluster"], "b");
    let r = mcp.call("c__v_default_recent", json!({})).await;
    assert_eq!(structured(&r)["rows"], json!([["c"]]), "{r}");
    // An error names the cluster and carries ClickHouse's message.
    let r = mcp
        .call(
            "execute_query",
            json!({"cluster": "b", "query": "SELECT * FROM other.secret"}),
        )
        .await;
    assert_eq!(r["isError"], json!(true), "{r}");
    let text = text_of(&r);
    assert!(
        text.starts_with("cluster b: ") && text.contains("Access denied"),
        "{text}"
    );
    // Bad cluster arguments name the argument and the choices.
    let r = mcp
        .call("execute_query", json!({"query": "SELECT 1"}))
        .await;
    assert!(
        text_of(&r).contains("missing required argument `cluster` (one of: a, b, c)"),
        "{r}"
    );
    let r = mcp
        .call(
            "execute_query",
            json!({"cluster": "zz", "query": "SELECT 1"}),
        )
        .await;
    assert!(text_of(&r).contains("`zz` is not one of"), "{r}");
    // b's grants do not cover `other`: its prefixed tool does not exist for this caller.
    let r = mcp
        .request(
            "tools/call",
            json!({"name": "b__v_other_secret", "arguments": {}}),
        )
        .await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cluster b") && m.contains("b__v_other_secret")),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn a_cluster_that_is_down_leaves_the_others_listed_and_shows_unreachable() {
    let mut f = fleet(true).await;
    f.servers[2].stop();
    let mcp = connector(&f);
    let n: Vec<String> = names(&tools(&mcp).await)
        .into_iter()
        .map(str::to_string)
        .collect();
    assert!(
        n.contains(&"a__v_default_recent".to_string())
            && n.contains(&"b__v_default_recent".to_string())
            && n.contains(&"execute_query".to_string()),
        "{n:?}"
    );
    assert!(!n.iter().any(|t| t.starts_with("c__")), "{n:?}");
    assert_eq!(
        statuses(&mcp).await,
        pairs(&[("a", "ok"), ("b", "ok"), ("c", "unreachable")])
    );
    let r = mcp
        .call(
            "execute_query",
            json!({"cluster": "c", "query": "SELECT 1"}),
        )
        .await;
    assert_eq!(r["isError"], json!(true), "{r}");
    assert!(text_of(&r).starts_with("cluster c: "), "{r}");
}

#[tokio::test]
async fn the_fleet_path_has_its_challenge_and_metadata_like_any_route() {
    let f = fleet(false).await;
    let anonymous = Mcp::new(f.gw.mcp_url());
    let r = anonymous.request("tools/list", json!({})).await;
    assert_eq!(r.status, 401);
    let challenge = r.headers["www-authenticate"].to_str().unwrap_or_default();
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", f.gw.base());
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{challenge}"
    );
    let doc: Value = reqwest::get(&metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], json!(f.gw.mcp_url()), "{doc}");
    // Per-cluster routes are unchanged beside it.
    let b = Mcp::with_bearer(format!("{}/mcp/b", f.gw.base()), f.token.clone());
    let r = b.query("SELECT cluster FROM default.whoami").await;
    assert_eq!(structured(&r)["rows"], json!([["b"]]));
}

/// A `cluster` argument is attacker-written (a prompt injection reaches the model): any
/// name not on the allow-list, in any spelling, and any `<cluster>__<tool>` naming one,
/// is refused before a query is sent, and no server gets a row.
#[tokio::test]
async fn clusters_off_the_list_in_any_spelling_reach_no_server() {
    let f = fleet(true).await;
    let mcp = connector(&f);
    let insert = "INSERT INTO default.marks VALUES ('hostile')";
    for cluster in [
        json!("d"),
        json!("B"),
        json!(" b"),
        json!("b\n"),
        json!("../b"),
        json!("b/../c"),
        json!("*"),
        json!(""),
        json!(["b"]),
        json!({"name": "b"}),
        json!(null),
    ] {
        let r = mcp
            .call("write_query", json!({"cluster": cluster, "query": insert}))
            .await;
        assert_eq!(r["isError"], json!(true), "{cluster}: {r}");
    }
    let r = mcp.call("write_query", json!({"query": insert})).await;
    assert_eq!(r["isError"], json!(true), "no cluster: {r}");
    // A prefixed name for a cluster off the list is an unknown tool (a protocol error).
    let r = mcp
        .post_raw(
            &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                    "params": {"name": "d__v_analytics_whoami", "arguments": {}}}),
            &[],
        )
        .await;
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown tool")),
        "{:?}",
        r.body
    );
    let marks: Vec<String> = f
        .servers
        .iter()
        .map(|s| {
            s.query("SELECT count() FROM default.marks")
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(marks, ["0", "0", "0"], "no server got a row");
}

//! The result view (MCP Apps, `ui://chmcp/result`) against a real ClickHouse (Debian's
//! 18.16): hosts without MCP Apps get exactly the tool results they got before (the view
//! changes no result, only adds `_meta` links and one resource), and
//! `server.result_view: false` removes the links and the resource. The fleet connector
//! (one 18.16 as cluster `a`, OAuth with the real test IdP) links, lists and reads it too.

use chmcp_tests::clickhouse::{ClickHouse, Users};
use chmcp_tests::gateway::{config, resource_server, Gateway};
use chmcp_tests::idp::{clients, Idp};
use chmcp_tests::mcp::{structured, Mcp};
use serde_json::{json, Value};

const VIEW: &str = "ui://chmcp/result";

/// `elapsed_ms` set to 0 wherever it appears (structured content, or text that spells
/// it out), so two runs of one query compare equal.
fn without_elapsed(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if k == "elapsed_ms" {
                        json!(0)
                    } else {
                        without_elapsed(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_elapsed).collect()),
        Value::String(s) => Value::String(zero_compact_time(&zero_elapsed_text(s))),
        other => other.clone(),
    }
}

/// The compact text's summary line says the time as `row(s) in N ms` (issue 23).
fn zero_compact_time(s: &str) -> String {
    let Some(i) = s.rfind("row(s) in ") else {
        return s.to_string();
    };
    let (head, tail) = s.split_at(i + "row(s) in ".len());
    let digits = tail.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 || !tail[digits..].starts_with(" ms") {
        return s.to_string();
    }
    format!("{head}0{}", &tail[digits..])
}

fn zero_elapsed_text(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("elapsed_ms") {
        let (head, tail) = rest.split_at(i + "elapsed_ms".len());
        out.push_str(head);
        let sep: String = tail
            .chars()
            .take_while(|c| !c.is_ascii_digit())
            .take(3)
            .collect();
        let after_sep = &tail[sep.len()..];
        let digits = after_sep.chars().take_while(char::is_ascii_digit).count();
        out.push_str(&sep);
        if digits > 0 {
            out.push('0');
        }
        rest = &after_sep[digits..];
    }
    out.push_str(rest);
    out
}

async fn listed_tools(mcp: &Mcp) -> Vec<Value> {
    let r = mcp.request("tools/list", json!({})).await;
    r.body["result"]["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn resource_uris(mcp: &Mcp) -> Vec<String> {
    let r = mcp.request("resources/list", json!({})).await;
    r.body["result"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|x| x["uri"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn the_view_changes_no_tool_result_and_switches_off_whole() {
    let ch = ClickHouse::start();
    ch.query("CREATE DATABASE IF NOT EXISTS analytics");
    ch.query("CREATE VIEW analytics.daily AS SELECT toDate('2026-01-01') + number AS day, number * 3 AS n, toUInt64(18446744073709551600) + number AS big FROM system.numbers LIMIT 5");
    let rules = "server:\n  tools:\n    - {type: read, view_regexp: 'analytics\\.daily'}\n";
    let on = Gateway::start(&config(ch.http_port, rules));
    let off = Gateway::start(&config(
        ch.http_port,
        &format!("{rules}  result_view: false\n"),
    ));
    let (on, off) = (Mcp::new(on.mcp_url()), Mcp::new(off.mcp_url()));

    // The same results, to the byte, with and without the view.
    let calls = [
        (
            "execute_query",
            json!({"query": "SELECT number, toString(number) AS s FROM system.numbers LIMIT 3"}),
        ),
        (
            "execute_query",
            json!({"query": "SELECT no_such_column FROM system.one"}),
        ),
        ("analytics_daily", json!({})),
        ("list_databases", json!({})),
    ];
    for (tool, args) in &calls {
        let a = without_elapsed(&on.call(tool, args.clone()).await);
        let b = without_elapsed(&off.call(tool, args.clone()).await);
        assert_eq!(a, b, "{tool} {args}");
    }

    // Links: execute_query and the view tool only; none when switched off.
    let linked = |tools: &[Value]| -> Vec<String> {
        tools
            .iter()
            .filter(|t| t["_meta"]["ui"]["resourceUri"] == VIEW)
            .map(|t| t["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let (tools_on, tools_off) = (listed_tools(&on).await, listed_tools(&off).await);
    assert_eq!(linked(&tools_on), ["execute_query", "analytics_daily"]);
    assert!(
        tools_off.iter().all(|t| t.get("_meta").is_none()),
        "{tools_off:?}"
    );
    // Apart from the links, the tool lists are the same.
    let strip = |tools: &[Value]| -> Vec<Value> {
        tools
            .iter()
            .map(|t| {
                let mut t = t.clone();
                if let Some(m) = t.as_object_mut() {
                    m.remove("_meta");
                }
                t
            })
            .collect()
    };
    assert_eq!(strip(&tools_on), strip(&tools_off));

    // The resource: listed and readable when on, neither when off.
    assert_eq!(resource_uris(&on).await, ["clickhouse://schema", VIEW]);
    assert_eq!(resource_uris(&off).await, ["clickhouse://schema"]);
    let read = on.request("resources/read", json!({"uri": VIEW})).await;
    let item = &read.body["result"]["contents"][0];
    assert_eq!(item["mimeType"], "text/html;profile=mcp-app");
    assert!(item["text"]
        .as_str()
        .unwrap_or_default()
        .starts_with("<!doctype html>"));
    let read = off.request("resources/read", json!({"uri": VIEW})).await;
    assert!(read.body.get("error").is_some(), "{}", read.body);
}

#[tokio::test]
async fn the_fleet_connector_links_lists_and_reads_the_view() {
    let idp = Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"));
    let token = idp
        .token(clients::ALICE, "mcp:read", &idp.audience)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    // 18.16 has no token processors: alice's password is her JWT (the Basic path).
    let ch = ClickHouse::start_with(Users {
        xml: format!("<alice><password>{token}</password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></alice>"),
    });
    ch.query("CREATE VIEW default.recent AS SELECT 1 AS n");
    let server = resource_server(
        &idp.issuer,
        &idp.audience,
        "  tools:\n    - {type: read, view_regexp: 'default\\..*'}\n",
    );
    let gw = Gateway::start(&format!(
        "clickhouse:\n  host: 127.0.0.1\n{server}multicluster:\n  enabled: true\n  fleet_endpoint: true\n  cluster_allowlist: [a]\n  clusters:\n    a: {{port: {}}}\n",
        ch.http_port
    ));
    let mcp = Mcp::with_bearer(gw.mcp_url(), token);

    let linked: Vec<String> = listed_tools(&mcp)
        .await
        .iter()
        .filter(|t| t["_meta"]["ui"]["resourceUri"] == VIEW)
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(linked, ["execute_query", "a__default_recent"]);
    assert_eq!(resource_uris(&mcp).await, [VIEW]);
    let read = mcp.request("resources/read", json!({"uri": VIEW})).await;
    assert_eq!(
        read.body["result"]["contents"][0]["mimeType"], "text/html;profile=mcp-app",
        "{}",
        read.body
    );
    // The view's footer names the cluster from the structured result.
    let r = mcp
        .call(
            "execute_query",
            json!({"cluster": "a", "query": "SELECT 1 AS n"}),
        )
        .await;
    assert_eq!(structured(&r)["cluster"], "a");
}

#[test]
fn elapsed_is_zeroed_in_json_and_text() {
    assert_eq!(
        zero_elapsed_text(r#"{"elapsed_ms":12,"x":3}"#),
        r#"{"elapsed_ms":0,"x":3}"#
    );
    assert_eq!(
        zero_elapsed_text("elapsed_ms=7 rows=2"),
        "elapsed_ms=0 rows=2"
    );
    assert_eq!(zero_elapsed_text("no timing"), "no timing");
}

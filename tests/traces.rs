//! Traces and the audit line, against real parts: Debian's ClickHouse 18.16 behind a
//! logging pass-through (`relay`: ClickHouse answers every request), an OTLP/HTTP
//! receiver decoding with the official `opentelemetry-proto` package, and the gateway
//! binary with `logging.format: json`.

use chmcp_tests::clickhouse::{ClickHouse, Users};
use chmcp_tests::gateway::{config, resource_server, Gateway};
use chmcp_tests::idp::{clients, Idp};
use chmcp_tests::mcp::{structured, Mcp};
use chmcp_tests::otlp::OtlpReceiver;
use chmcp_tests::relay::Relay;
use serde_json::{json, Value};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const OTLP_KEY: &str = "otlp-key-9f8e7d6c";

fn traceparent_of(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("traceparent")
            .then(|| v.trim().to_string())
    })
}

fn query_id_of(head: &str) -> Option<String> {
    let target = head.lines().next()?.split(' ').nth(1)?;
    target
        .split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix("query_id=").map(str::to_string))
}

fn audit_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "chmcp::audit")
        .collect()
}

async fn call_with_traceparent(mcp: &Mcp, sql: &str) -> Value {
    let r = mcp
        .post_raw(
            &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                    "params": {"name": "execute_query", "arguments": {"query": sql}}}),
            &[(
                "traceparent",
                &format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
            )],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_tools_call_is_one_trace_under_the_client_span_and_clickhouse_gets_its_context() {
    let ch = ClickHouse::start();
    let relay = Relay::start(ch.http_port).await;
    let receiver = OtlpReceiver::start();
    let gw = Gateway::start(&config(
        relay.port,
        &format!(
            "telemetry:\n  otlp:\n    endpoint: {}\n    headers: {{x-api-key: {OTLP_KEY}}}\n    service_name: chmcp-under-test\nlogging:\n  format: json\n",
            receiver.endpoint()
        ),
    ));
    let mcp = Mcp::new(gw.mcp_url());
    let result = call_with_traceparent(&mcp, "SELECT 42 AS answer").await;
    // ClickHouse 18.16 still answers a request carrying `traceparent`.
    assert_eq!(structured(&result)["rows"], json!([[42]]));

    let spans = receiver
        .wait_for_trace(CLIENT_TRACE, |s| {
            s.iter().any(|s| s["parent_span_id"] == CLIENT_SPAN)
                && s.iter().any(|s| s["name"] == "clickhouse query")
        })
        .await;
    let by_id = |id: &Value| spans.iter().find(|s| &s["span_id"] == id);
    // One root, the child of the client's span, named after the method and tool.
    let roots: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == CLIENT_SPAN)
        .collect();
    assert_eq!(roots.len(), 1, "{spans:#?}");
    let root = roots[0];
    assert_eq!(root["name"], "tools/call execute_query");
    assert_eq!(root["kind"], 2, "SERVER");
    assert_eq!(root["attributes"]["mcp.method.name"], "tools/call");
    assert_eq!(root["attributes"]["gen_ai.tool.name"], "execute_query");
    assert_eq!(root["attributes"]["chmcp.outcome"], "ok");
    assert_eq!(root["attributes"]["db.response.returned_rows"], 1);
    assert_eq!(root["attributes"]["chmcp.truncated"], false);
    assert_eq!(root["resource"]["service.name"], "chmcp-under-test");
    // Every other span descends from the root.
    for s in &spans {
        let mut cur = s;
        while cur["parent_span_id"] != CLIENT_SPAN {
            cur = by_id(&cur["parent_span_id"]).unwrap_or_else(|| {
                panic!("span {} has no parent in the trace: {spans:#?}", s["name"])
            });
        }
    }
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(names.contains(&"catalog"), "{names:?}");
    // The caller's query: a CLIENT span with the database conventions, its result
    // streaming a child of it.
    let query = spans
        .iter()
        .find(|s| {
            s["name"] == "clickhouse query"
                && s["attributes"]["db.query.id"]
                    .as_str()
                    .is_some_and(|q| q.starts_with("chmcp-"))
        })
        .expect("the tool's ClickHouse request span");
    assert_eq!(query["kind"], 3, "CLIENT");
    assert_eq!(query["attributes"]["db.system.name"], "clickhouse");
    assert!(spans
        .iter()
        .any(|s| s["name"] == "read result" && s["parent_span_id"] == query["span_id"]));
    // No SQL text and no secret in any attribute by default.
    let attrs = serde_json::to_string(&spans).expect("json");
    assert!(!attrs.contains("SELECT 42"), "{attrs}");
    assert!(!attrs.contains(OTLP_KEY));

    // ClickHouse got this trace on every request, and the tool's query carried the
    // context of its own span.
    let heads = relay.heads();
    assert!(!heads.is_empty());
    for h in &heads {
        assert!(traceparent_of(h).is_some(), "no traceparent: {h}");
    }
    let qid = query["attributes"]["db.query.id"]
        .as_str()
        .expect("query id");
    let sent = heads
        .iter()
        .find(|h| query_id_of(h).as_deref() == Some(qid))
        .and_then(|h| traceparent_of(h))
        .expect("the tool's query reached ClickHouse");
    assert_eq!(
        sent,
        format!(
            "00-{CLIENT_TRACE}-{}-01",
            query["span_id"].as_str().unwrap_or_default()
        )
    );

    // What the receiver got: official decoding is lossless, on the OTLP path, with the
    // configured header.
    let posts = receiver.received().await["posts"].clone();
    for p in posts.as_array().expect("posts") {
        assert_eq!(p["round_trips"], true, "{p}");
        assert_eq!(p["path"], "/v1/traces");
        assert_eq!(p["content_type"], "application/x-protobuf");
        assert!(p["header_names"]
            .as_array()
            .is_some_and(|h| h.contains(&json!("x-api-key"))));
    }

    // One audit line, with the facts that find the query in system.query_log.
    let log = gw.log();
    assert!(!log.contains(OTLP_KEY), "the OTLP header value was logged");
    let audit = audit_lines(&log);
    assert_eq!(audit.len(), 1, "{log}");
    let a = &audit[0];
    // Request-derived text is logged escaped (`Debug`): quoted, control characters escaped.
    assert_eq!(a["tool"], "\"execute_query\"");
    assert_eq!(a["query_id"], qid);
    assert_eq!(a["outcome"], "ok");
    assert_eq!(a["rows"], 1);
    assert!(a["bytes"].as_u64().is_some_and(|b| b > 0), "{a}");
    assert_eq!(a["truncated"], false);
    assert!(a["elapsed_ms"].as_u64().is_some());
    assert_eq!(a["trace_id"], CLIENT_TRACE);
    assert_eq!(a["subject"], "\"default\"");
    assert_eq!(a["cluster"], "default");
    assert!(a["timestamp"].is_string());
    assert!(!a.to_string().contains("SELECT 42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tracing_off_clickhouse_still_continues_the_client_trace() {
    let ch = ClickHouse::start();
    let relay = Relay::start(ch.http_port).await;
    let gw = Gateway::start(&config(relay.port, "logging:\n  format: json\n"));
    let mcp = Mcp::new(gw.mcp_url());
    // The header: ClickHouse gets the client's context unchanged (nothing in between
    // records a span).
    let result = call_with_traceparent(&mcp, "SELECT 1").await;
    assert_eq!(structured(&result)["rows"], json!([[1]]));
    let client = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let heads = relay.heads();
    assert!(heads
        .iter()
        .any(|h| traceparent_of(h).as_deref() == Some(client.as_str())));
    // `params._meta.traceparent` wins over no header at all.
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let r = mcp
        .post_raw(
            &json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                    "params": {"_meta": {"traceparent": format!("00-{meta_trace}-b7ad6b7169203331-01")},
                               "name": "execute_query", "arguments": {"query": "SELECT 2"}}}),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    let heads = relay.heads();
    assert!(heads
        .iter()
        .any(|h| traceparent_of(h).is_some_and(|t| t.contains(meta_trace))));
    // Without any client context every request still carries a (fresh, unsampled) one.
    mcp.query("SELECT 3").await;
    for h in relay.heads() {
        let tp = traceparent_of(&h).unwrap_or_else(|| panic!("no traceparent: {h}"));
        assert_eq!(tp.len(), 55, "{tp}");
    }
    let audit = audit_lines(&gw.log());
    assert_eq!(audit.len(), 3);
    assert_eq!(audit[1]["trace_id"], meta_trace);
}

/// With OAuth on (the real test IdP; ClickHouse 18.16 takes alice's token as her
/// password), the trace shows the gate and the identity probe, and neither the token
/// nor the SQL is in any span or log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_call_traces_the_gate_and_the_probe_and_never_the_token() {
    let idp = Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"));
    let token = idp
        .token(clients::ALICE, "mcp:read", &idp.audience)
        .await
        .expect("alice's token");
    let ch = ClickHouse::start_with(Users::default().with("alice", &token, "default"));
    let receiver = OtlpReceiver::start();
    let gw = Gateway::start(&config(
        ch.http_port,
        &format!(
            "{}telemetry:\n  otlp:\n    endpoint: {}\nlogging:\n  format: json\n",
            resource_server(&idp.issuer, &idp.audience, ""),
            receiver.endpoint()
        ),
    ));
    let mcp = Mcp::with_bearer(gw.mcp_url(), token.clone());
    let result = call_with_traceparent(&mcp, "SELECT 'sql-marker-1' AS m").await;
    assert_eq!(structured(&result)["rows"], json!([["sql-marker-1"]]));
    let spans = receiver
        .wait_for_trace(CLIENT_TRACE, |s| {
            ["gate", "identity probe", "tools/call execute_query"]
                .iter()
                .all(|n| s.iter().any(|x| x["name"] == *n))
        })
        .await;
    let root = spans
        .iter()
        .find(|s| s["parent_span_id"] == CLIENT_SPAN)
        .expect("root");
    let gate = spans
        .iter()
        .find(|s| s["name"] == "gate")
        .expect("gate span");
    assert_eq!(gate["parent_span_id"], root["span_id"]);
    assert_eq!(gate["status_code"], 1, "the gate let alice in");
    let all = serde_json::to_string(&spans).expect("json");
    assert!(!all.contains(&token), "a token in a span");
    assert!(
        !all.contains("sql-marker-1"),
        "SQL text in a span by default"
    );
    let log = gw.log();
    assert!(!log.contains(&token), "a token in the log");
    let audit = audit_lines(&log);
    assert_eq!(audit.len(), 1, "{log}");
    assert_eq!(audit[0]["subject"], "\"alice\"");
    assert_eq!(audit[0]["trace_id"], CLIENT_TRACE);
}

/// A gateway stopped right after a call still delivers that call's spans: SIGTERM
/// flushes the exporter's queue (the batch would otherwise wait half a second for
/// company and die with the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_sends_its_last_spans() {
    let ch = ClickHouse::start();
    let receiver = OtlpReceiver::start();
    let mut gw = Gateway::start(&config(
        ch.http_port,
        &format!(
            "telemetry:\n  otlp:\n    endpoint: {}\n",
            receiver.endpoint()
        ),
    ));
    let mcp = Mcp::new(gw.mcp_url());
    let result = call_with_traceparent(&mcp, "SELECT 1").await;
    assert_eq!(structured(&result)["rows"], json!([[1]]));
    gw.signal("TERM");
    let code = tokio::task::block_in_place(|| gw.wait_exit(std::time::Duration::from_secs(10)));
    assert_eq!(code, Some(0), "{}", gw.log());
    let spans = receiver
        .wait_for_trace(CLIENT_TRACE, |s| {
            s.iter().any(|s| s["name"] == "clickhouse query")
        })
        .await;
    assert!(
        spans.iter().any(|s| s["parent_span_id"] == CLIENT_SPAN),
        "{spans:?}"
    );
}

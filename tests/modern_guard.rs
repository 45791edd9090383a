//! Issue 20: the caller chooses the query, never how ClickHouse runs it. Each finding of
//! the issue, end to end through the gateway binary: on real ClickHouse 18.16 where it
//! shows the behaviour, and on the MODERN-CLICKHOUSE DOUBLE (`chdb_server.py`: current
//! ClickHouse in-process through PyPI chdb, no users, no auth, no query_log) where only
//! a modern engine does (`eval`, a `log_comment` override, DDL dictionaries). Tests on
//! the double are named `modern_double_...`.

use std::time::Duration;

use chmcp_tests::chdb_double::ChdbDouble;
use chmcp_tests::clickhouse::ClickHouse;
use chmcp_tests::gateway::{config, Gateway};
use chmcp_tests::http_double::{HttpDouble, Reply};
use chmcp_tests::mcp::{text_of, Mcp};
use chmcp_tests::otlp::OtlpReceiver;
use serde_json::{json, Value};

fn is_error(r: &Value) -> bool {
    r["isError"] == json!(true)
}

/// An HTTP server standing for an internal service a query must not reach.
async fn internal_service() -> HttpDouble {
    HttpDouble::start(|_| Reply::new(200, "4242\n")).await
}

// ---- Real ClickHouse 18.16 ----

#[tokio::test]
async fn a_caller_setting_outside_the_allow_list_is_refused_naming_it_and_the_key() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(ch.http_port, "  max_result_rows: 5\n"));
    let mcp = Mcp::new(gw.mcp_url());
    // On the old guard 18.16 ran it: the caller overrode a limit the gateway sets itself.
    let r = mcp
        .query("SELECT number FROM system.numbers LIMIT 50 SETTINGS max_result_rows = 1000000")
        .await;
    assert!(is_error(&r), "{r}");
    let text = text_of(&r);
    assert!(text.contains("`max_result_rows`"), "{text}");
    // A harmless one, on the default list, still runs.
    let r = mcp.query("SELECT 1 AS x SETTINGS max_threads = 2").await;
    assert!(!is_error(&r), "{r}");
    let r = mcp
        .query("SELECT 1 SETTINGS max_threads = 1, max_memory_usage = 1")
        .await;
    let text = text_of(&r);
    assert!(
        is_error(&r)
            && text.contains("`max_memory_usage`")
            && text.contains("server.allowed_query_settings"),
        "{r}"
    );
}

#[tokio::test]
async fn write_query_creates_no_kafka_table_and_still_creates_local_ones() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(ch.http_port, ""));
    let mcp = Mcp::new(gw.mcp_url());
    let kafka = "CREATE TABLE default.k (a String) ENGINE = Kafka('127.0.0.1:9', 't', 'g', 'TSV')";
    let r = mcp.call("write_query", json!({ "query": kafka })).await;
    let text = text_of(&r);
    assert!(
        is_error(&r) && text.contains("`Kafka`") && text.contains("server.allowed_write_engines"),
        "{r}"
    );
    assert_eq!(
        ch.query("SELECT count() FROM system.tables WHERE database = 'default' AND name = 'k'")
            .trim(),
        "0",
        "the Kafka table was created"
    );
    let r = mcp
        .call(
            "write_query",
            json!({"query": "CREATE TABLE default.m (a String) ENGINE = Memory"}),
        )
        .await;
    assert!(!is_error(&r), "{r}");
    // The key admits an engine by name.
    let gw = Gateway::start(&config(
        ch.http_port,
        "server:\n  allowed_write_engines: [Kafka]\n",
    ));
    let r = Mcp::new(gw.mcp_url())
        .call("write_query", json!({ "query": kafka }))
        .await;
    assert!(!text_of(&r).contains("server.allowed_write_engines"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_carries_the_error_code_and_name_never_the_literals() {
    let ch = ClickHouse::start();
    let receiver = OtlpReceiver::start();
    let gw = Gateway::start(&config(
        ch.http_port,
        &format!(
            "telemetry:\n  otlp:\n    endpoint: {}\n",
            receiver.endpoint()
        ),
    ));
    let mcp = Mcp::new(gw.mcp_url());
    let r = mcp
        .post_raw(
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                    "params": {"name": "execute_query",
                               "arguments": {"query": "SELECT toUInt8('PRIVATE-SSN-123-45-6789')"}}}),
            &[(
                "traceparent",
                "00-5bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01",
            )],
        )
        .await;
    assert!(is_error(&r.body["result"]), "{:?}", r.body);
    let spans = receiver
        .wait_for_trace("5bf92f3577b34da6a3ce929d0e0e4737", |s| {
            s.iter().any(|s| {
                s["name"] == "clickhouse query"
                    && !s["status_message"].as_str().unwrap_or("").is_empty()
            })
        })
        .await;
    let query = spans
        .iter()
        .find(|s| s["name"] == "clickhouse query" && s["status_message"] != "")
        .expect("the failed query's span");
    assert_eq!(query["status_message"], "Code: 6", "{query}");
    let all = serde_json::to_string(&spans).expect("json");
    assert!(
        !all.contains("PRIVATE-SSN"),
        "a literal reached the exporter: {all}"
    );
}

/// Starts `SELECT sleep(3)` as `runner` (request id 1), lets `other` send
/// `notifications/cancelled` for id 1, and returns the runner's result.
async fn cancel_from(runner: Mcp, other: &Mcp) -> Value {
    let running = tokio::spawn(async move { runner.query("SELECT sleep(3) AS slept").await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = other.cancel(1).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    running.await.expect("the runner's task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_reaches_only_the_same_caller() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(ch.http_port, ""));
    // Without credentials every client shared one scope: a guessed id cancelled another's query.
    let r = cancel_from(Mcp::new(gw.mcp_url()), &Mcp::new(gw.mcp_url())).await;
    assert!(!is_error(&r), "a stranger cancelled the query: {r}");
    // Another credential cannot either.
    let r = cancel_from(
        Mcp::with_bearer(gw.mcp_url(), "credential-of-alice"),
        &Mcp::with_bearer(gw.mcp_url(), "credential-of-bob"),
    )
    .await;
    assert!(!is_error(&r), "another caller cancelled the query: {r}");
}

// ---- The modern-ClickHouse double ----

fn gateway_at(double: &ChdbDouble, extra: &str) -> Gateway {
    Gateway::start(&config(double.port, extra))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_double_eval_reaching_an_internal_url_is_refused_before_the_engine_sees_it() {
    let service = internal_service().await;
    let double = ChdbDouble::start("");
    let gw = gateway_at(&double, "");
    let mcp = Mcp::new(gw.mcp_url());
    let r = mcp.query("SELECT 1 AS one").await;
    assert!(!is_error(&r), "the double answers plain reads: {r}");
    let eval = format!(
        "SELECT * FROM eval(concat('SELECT * FROM ur','l(''http://127.0.0.1:{}/?query=SELECT+4242'',''TSV'',''x String'')')) SETTINGS allow_experimental_eval_table_function=1",
        service.port
    );
    let r = mcp.query(&eval).await;
    assert!(is_error(&r), "eval ran: {r}");
    assert!(text_of(&r).contains("`eval`"), "{r}");
    // The setting alone is refused too, naming it.
    let r = mcp
        .query("SELECT 1 SETTINGS allow_experimental_eval_table_function = 1")
        .await;
    assert!(
        is_error(&r) && text_of(&r).contains("`allow_experimental_eval_table_function`"),
        "{r}"
    );
    assert!(
        service.received().is_empty(),
        "the internal URL was fetched"
    );
    assert!(!double.saw("eval").await, "the engine was asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_double_the_audit_settings_stay_the_gateways() {
    let double = ChdbDouble::start("");
    let gw = gateway_at(&double, "");
    let mcp = Mcp::new(gw.mcp_url());
    for forged in [
        r#"SELECT 'forged' SETTINGS log_comment = '{"tool":"execute_query","sub":"ceo"}'"#,
        "SELECT 'unlogged' SETTINGS log_queries = 0",
        "SELECT * FROM (SELECT 'nested' SETTINGS log_queries = 0)",
    ] {
        let r = mcp.query(forged).await;
        assert!(is_error(&r), "{forged}: {r}");
        assert!(text_of(&r).contains("never"), "{r}");
    }
    for word in ["forged", "unlogged", "nested"] {
        assert!(!double.saw(word).await, "`{word}` reached the engine");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_double_a_dictionary_with_an_http_source_is_never_created() {
    let service = internal_service().await;
    let double = ChdbDouble::start("");
    let gw = gateway_at(&double, "");
    let mcp = Mcp::new(gw.mcp_url());
    let create = format!(
        "CREATE DICTIONARY d_http (x String) PRIMARY KEY x SOURCE(HTTP(URL 'http://127.0.0.1:{}/' FORMAT 'TSV')) LAYOUT(COMPLEX_KEY_HASHED()) LIFETIME(0)",
        service.port
    );
    let r = mcp.call("write_query", json!({ "query": create })).await;
    assert!(
        is_error(&r) && text_of(&r).contains("`HTTP`") && text_of(&r).contains("dictionary source"),
        "{r}"
    );
    let remote = "CREATE DICTIONARY d_remote (x String) PRIMARY KEY x SOURCE(CLICKHOUSE(HOST '10.1.2.3' PORT 9000 TABLE 't')) LAYOUT(COMPLEX_KEY_HASHED()) LIFETIME(0)";
    let r = mcp.call("write_query", json!({ "query": remote })).await;
    assert!(is_error(&r), "{r}");
    assert!(!double.saw("DICTIONARY").await, "the engine was asked");
    assert!(
        service.received().is_empty(),
        "the internal URL was fetched"
    );
}

//! Scan budgets (gateway.md, "Cost: budgets, estimates, progress"): ClickHouse 18.16
//! itself stops a query that reads past `clickhouse.query_budget` and the tool error
//! teaches how to read less; the modern-engine double (chdb) refuses on `EXPLAIN
//! ESTIMATE` before anything runs; the official Python SDK receives progress.

use chmcp_tests::chdb_double::ChdbDouble;
use chmcp_tests::clickhouse::ClickHouse;
use chmcp_tests::gateway::{config, Gateway};
use chmcp_tests::mcp::{structured, text_of, Mcp};
use chmcp_tests::metrics::Metrics;
use chmcp_tests::venv_python;
use serde_json::{json, Value};

/// A budget ten times below the table's rows.
const BUDGET_ROWS: u64 = 100_000;
const TABLE_ROWS: u64 = 1_000_000;

/// The budget, and a workload class: 18.16 does not know the `workload` setting, so the
/// gateway's probe must learn that and leave it out rather than fail every query.
fn budget_config(port: u16) -> String {
    config(
        port,
        &format!("  query_budget: {{max_rows_to_read: {BUDGET_ROWS}}}\n  workload: ai_agents\n"),
    )
}

/// 18.16 with `budget.events` (sorting and sampling key `user_id`), `TABLE_ROWS` rows.
fn clickhouse_with_events() -> ClickHouse {
    let ch = ClickHouse::start();
    ch.query("CREATE DATABASE budget");
    ch.query("CREATE TABLE budget.events (d Date, user_id UInt64, v String) ENGINE = MergeTree ORDER BY user_id SAMPLE BY user_id");
    ch.query(&format!(
        "INSERT INTO budget.events SELECT toDate('2026-01-01') + number % 30, number, toString(number) FROM numbers({TABLE_ROWS})"
    ));
    ch
}

/// A tool error whose text says every one of `needles`.
fn refusal_says(r: &Value, needles: &[&str]) {
    assert_eq!(r["isError"], json!(true), "{r}");
    let text = text_of(r);
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

async fn refusals(gw: &Gateway, stage: &str) -> u64 {
    Metrics::scrape(&gw.base()).await.count(
        "chmcp_query_budget_refusals_total",
        &[("cluster", "default"), ("stage", stage)],
    )
}

#[tokio::test]
async fn clickhouse_18_16_stops_a_query_past_the_budget_and_the_error_teaches() {
    let ch = clickhouse_with_events();
    let gw = Gateway::start(&budget_config(ch.http_port));
    let m = Mcp::new(gw.mcp_url());

    // Within budget: the sorting key narrows the read to a granule or two.
    let r = m
        .query("SELECT count() FROM budget.events WHERE user_id < 5000")
        .await;
    assert_eq!(structured(&r)["rows"], json!([["5000"]]), "{r}");
    let page = Metrics::scrape(&gw.base()).await;
    let read = page.count(
        "chmcp_clickhouse_read_rows_total",
        &[("cluster", "default")],
    );
    assert!(
        read > 0 && read <= BUDGET_ROWS,
        "the call's rows read are attributed: {read}"
    );
    // A caller's 'statistics' string in the totals comes before the server's own
    // statistics object: the read is still attributed.
    let r = m
        .query("SELECT user_id % 2 AS k, any('statistics') AS s FROM budget.events WHERE user_id < 5000 GROUP BY k WITH TOTALS")
        .await;
    assert_ne!(r["isError"], json!(true), "{r}");
    let after = Metrics::scrape(&gw.base()).await.count(
        "chmcp_clickhouse_read_rows_total",
        &[("cluster", "default")],
    );
    assert!(after > read, "totals with 'statistics': {read} -> {after}");

    // Beyond it: a filter off the key must read every row; ClickHouse stops it.
    let r = m
        .query("SELECT count() FROM budget.events WHERE v LIKE '%99%'")
        .await;
    refusal_says(
        &r,
        &[
            "scan budget",
            "100k rows (query_budget.max_rows_to_read)",
            "budget.events on its sorting key (user_id)",
            "SAMPLE 0.1",
            "LIMIT alone does not reduce",
            "Limit for rows to read exceeded",
        ],
    );
    assert_eq!(refusals(&gw, "running").await, 1);
    assert_eq!(refusals(&gw, "estimate").await, 0);
    // The query cannot lift the budget itself: the settings policy reserves it.
    let r = m
        .query(
            "SELECT count() FROM budget.events WHERE v LIKE '%99%' SETTINGS max_rows_to_read = 0",
        )
        .await;
    assert_eq!(r["isError"], json!(true), "{r}");
    assert!(text_of(&r).contains("max_rows_to_read"), "{r}");

    // The budget is ClickHouse's doing: the same query with no budget runs.
    let open = Gateway::start(&config(ch.http_port, ""));
    let r = Mcp::new(open.mcp_url())
        .query("SELECT count() FROM budget.events WHERE v LIKE '%99%'")
        .await;
    assert_ne!(r["isError"], json!(true), "{r}");

    // 18.16 has no EXPLAIN ESTIMATE: asking first says so, and runs nothing.
    let r = m
        .call(
            "execute_query",
            json!({"query": "SELECT count() FROM budget.events", "estimate": true}),
        )
        .await;
    assert_eq!(structured(&r)["estimate"]["available"], json!(false), "{r}");
    // Asking first passes the same guards as running: a write, an outside table
    // function and a reserved setting are refused, never wrapped in EXPLAIN.
    for sql in [
        "INSERT INTO budget.events SELECT * FROM budget.events",
        "SELECT * FROM url('http://127.0.0.1:1/x', CSV, 'a String')",
        "SELECT count() FROM budget.events SETTINGS max_rows_to_read = 0",
    ] {
        let r = m
            .call("execute_query", json!({"query": sql, "estimate": true}))
            .await;
        assert_eq!(r["isError"], json!(true), "{sql}: {r}");
    }
    // So are the other arguments: `settings` (not offered here, so unknown), a bad format.
    for (args, named) in [
        (
            json!({"query": "SELECT 1", "estimate": true, "settings": {"max_rows_to_read": 0}}),
            "settings",
        ),
        (
            json!({"query": "SELECT 1", "estimate": true, "result_format": "xml"}),
            "result_format",
        ),
    ] {
        let r = m.call("execute_query", args.clone()).await;
        assert_eq!(r["isError"], json!(true), "{args}: {r}");
        assert!(text_of(&r).contains(named), "{args}: {r}");
    }
    assert_eq!(
        ch.query("SELECT count() FROM budget.events").trim(),
        TABLE_ROWS.to_string()
    );
}

/// The chdb double's data: 200 000 rows in one MergeTree part.
const DOUBLE_INIT: &str = "CREATE TABLE events (d Date, user_id UInt64, v String) ENGINE = MergeTree ORDER BY user_id SAMPLE BY user_id;
INSERT INTO events SELECT toDate('2026-01-01') + (number % 30), number, toString(number) FROM numbers(200000);
";

/// On the MODERN-ENGINE DOUBLE (chdb: ClickHouse 26.x's planner on real MergeTree
/// parts, so its estimates are real; a real server would also apply users and grants).
#[tokio::test]
async fn modern_double_refuses_on_the_estimate_before_anything_runs() {
    let double = ChdbDouble::start(DOUBLE_INIT);
    let gw = Gateway::start(&config(
        double.port,
        "  query_budget: {max_rows_to_read: 20000}\n  workload: ai_agents\n",
    ));
    let m = Mcp::new(gw.mcp_url());
    let sql = "SELECT count() FROM events WHERE v LIKE '%99%'";
    let r = m.query(sql).await;
    refusal_says(
        &r,
        &[
            "Refused before running",
            "default.events: 200k rows, 1 part",
            "20k rows (query_budget.max_rows_to_read)",
            "Nothing ran",
            "sorting key (user_id)",
        ],
    );
    let log = double.log().await;
    let ran = |q: &Value| q["ran"] == json!(true);
    assert!(
        !log.iter().any(|e| e["query"] == json!(sql)),
        "the query itself never reached the engine: {log:?}"
    );
    assert!(
        log.iter()
            .any(|e| ran(e) && e["query"] == json!(format!("EXPLAIN ESTIMATE {sql}"))),
        "its estimate did: {log:?}"
    );
    assert_eq!(refusals(&gw, "estimate").await, 1);
    // The estimate ran as the query would have: under the budget and the workload class.
    let estimate = log
        .iter()
        .find(|e| e["query"] == json!(format!("EXPLAIN ESTIMATE {sql}")))
        .expect("the estimate is in the log");
    for (k, v) in [
        ("max_rows_to_read", "20000"),
        ("read_overflow_mode", "throw"),
        ("workload", "ai_agents"),
        ("readonly", "2"),
    ] {
        assert_eq!(estimate["settings"][k], json!(v), "{k}: {estimate}");
    }

    // Within the estimate: it runs.
    let r = m
        .query("SELECT count() FROM events WHERE user_id < 1000")
        .await;
    assert_eq!(structured(&r)["row_count"], json!(1), "{r}");

    // Asking first: the estimate and the plan, nothing run.
    let before = double.log().await.len();
    let r = m
        .call("execute_query", json!({"query": sql, "estimate": true}))
        .await;
    let s = structured(&r);
    assert_eq!(s["estimate"]["available"], json!(true), "{r}");
    assert_eq!(s["estimate"]["rows"], json!(200_000));
    assert_eq!(s["estimate"]["within_budget"], json!(false));
    assert_eq!(s["rows"][0][1], json!("events"));
    assert!(
        s["estimate"]["plan"].as_array().is_some_and(|p| p
            .iter()
            .any(|l| l.as_str().is_some_and(|l| l.contains("ReadFromMergeTree")))),
        "{s}"
    );
    let after = double.log().await;
    assert!(
        after[before..].iter().all(|e| e["query"]
            .as_str()
            .is_some_and(|q| q.starts_with("EXPLAIN") || q.contains("system."))),
        "only EXPLAINs and the gateway's own lookups ran: {:?}",
        &after[before..]
    );
}

/// The official Python SDK, both protocol eras: a progress token and a query that runs
/// for seconds on 18.16 get progress notifications before the result.
#[tokio::test]
async fn python_sdk_receives_progress_before_a_slow_result_on_clickhouse_18_16() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(ch.http_port, ""));
    // Only a client that takes an event stream gets one; the answer is the same message.
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "execute_query", "arguments": {"query": "SELECT 1 AS one"},
        "_meta": {"progressToken": "p1"}}});
    for (accept, content_type) in [
        ("application/json", "application/json"),
        ("application/json, text/event-stream", "text/event-stream"),
    ] {
        let resp = reqwest::Client::new()
            .post(gw.mcp_url())
            .header("content-type", "application/json")
            .header("accept", accept)
            .body(call.to_string())
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.headers()["content-type"], content_type, "{accept}");
        let text = resp.text().await.expect("body");
        let json = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or(&text);
        let v: Value = serde_json::from_str(json).expect("a JSON-RPC message");
        assert_eq!(v["id"], json!(7), "{accept}: {text}");
        assert_eq!(
            v["result"]["structuredContent"]["rows"],
            json!([[1]]),
            "{accept}: {text}"
        );
    }

    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/progress_client.py");
    for mode in ["legacy", "2026-07-28"] {
        let (script, url) = (script.clone(), gw.mcp_url());
        // A blocking child on a blocking thread: the gateway is another process.
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(venv_python("python"))
                .arg(&script)
                .arg(url)
                .arg(mode)
                .arg("SELECT count() FROM numbers(1000000000) WHERE number % 7 = 3")
                .output()
        })
        .await
        .expect("join")
        .expect("run the Python SDK client");
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("the client's JSON line");
        assert_eq!(v["is_error"], json!(false), "{mode}: {v}");
        assert!(
            v["text"].as_str().is_some_and(|t| t.contains("142857143")),
            "{mode}: {v}"
        );
        let notes = v["progress"].as_array().cloned().unwrap_or_default();
        assert!(
            v["notes_before_result"].as_u64().unwrap_or(0) >= 2,
            "{mode}: at least two progress notifications before the result: {v}"
        );
        let counts: Vec<f64> = notes.iter().filter_map(|n| n[0].as_f64()).collect();
        assert!(
            counts.windows(2).all(|w| w[0] < w[1]),
            "{mode}: progress only grows: {counts:?}"
        );
    }
}

/// stdio: the same progress notifications, as lines before the answer's line.
#[test]
fn stdio_progress_lines_come_before_the_answer_on_clickhouse_18_16() {
    use std::io::{BufRead, BufReader, Write};
    let ch = ClickHouse::start();
    let mut child = chmcp_tests::gateway::spawn_stdio(ch.http_port);
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "execute_query",
        "arguments": {"query": "SELECT count() FROM numbers(1000000000) WHERE number % 7 = 3"},
        "_meta": {"progressToken": "s1"}}});
    writeln!(stdin, "{call}").expect("write the call");
    let mut progress = 0;
    for line in stdout.lines() {
        let v: Value = serde_json::from_str(&line.expect("a line")).expect("JSON-RPC");
        if v["method"] == "notifications/progress" {
            assert_eq!(v["params"]["progressToken"], "s1");
            progress += 1;
            continue;
        }
        assert_eq!(v["id"], 3, "{v}");
        assert_eq!(
            v["result"]["structuredContent"]["rows"],
            json!([["142857143"]]),
            "{v}"
        );
        break;
    }
    assert!(progress >= 2, "{progress} progress lines before the answer");
    drop(stdin);
    let _ = child.wait();
}

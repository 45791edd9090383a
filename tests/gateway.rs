//! The gateway in single-cluster mode against a real ClickHouse server (Debian's 18.16).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use chmcp_tests::clickhouse::{ClickHouse, Users};
use chmcp_tests::gateway::Gateway;
use chmcp_tests::mcp::{structured, text_of, Mcp};
use chmcp_tests::metrics::Metrics;
use serde_json::{json, Value};

fn seed(ch: &ClickHouse) {
    ch.query("CREATE DATABASE IF NOT EXISTS analytics");
    ch.query("CREATE TABLE analytics.events (id UInt64, kind String, amount Float64, at Date) ENGINE = MergeTree() ORDER BY id");
    ch.query("INSERT INTO analytics.events SELECT number, if(number % 2 = 0, 'click', 'view'), number / 10, toDate('2026-01-01') + number % 30 FROM system.numbers LIMIT 20000");
    ch.query("CREATE VIEW analytics.daily AS SELECT at, count() AS n FROM analytics.events GROUP BY at ORDER BY at");
    ch.query("CREATE DATABASE IF NOT EXISTS many");
    for i in 0..105 {
        ch.query(&format!(
            "CREATE TABLE many.t{i:03} (x UInt8) ENGINE = TinyLog"
        ));
    }
}

fn config(ch: &ClickHouse, extra: &str) -> String {
    chmcp_tests::gateway::config(ch.http_port, extra)
}

#[tokio::test]
async fn every_static_tool_answers_from_clickhouse() {
    let ch = ClickHouse::start();
    seed(&ch);
    let gw = Gateway::start(&config(&ch, ""));
    let mcp = Mcp::new(gw.mcp_url());

    let init = mcp.request("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}})).await;
    assert_eq!(init.body["result"]["protocolVersion"], "2025-06-18");
    assert!(
        init.headers.get("mcp-session-id").is_none(),
        "stateless: no session id"
    );

    assert_eq!(
        mcp.tool_names().await,
        [
            "execute_query",
            "write_query",
            "list_databases",
            "list_tables",
            "describe_table"
        ]
    );

    let dbs = mcp.call("list_databases", json!({})).await;
    let names: Vec<&str> = structured(&dbs)["databases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        names.contains(&"analytics") && names.contains(&"many"),
        "{names:?}"
    );

    let page1 = mcp.call("list_tables", json!({"database": "many"})).await;
    let s1 = structured(&page1);
    assert_eq!(s1["tables"].as_array().unwrap().len(), 100);
    let cursor = s1["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let page2 = mcp
        .call("list_tables", json!({"database": "many", "cursor": cursor}))
        .await;
    let s2 = structured(&page2);
    assert_eq!(s2["tables"].as_array().unwrap().len(), 5);
    assert_eq!(s2["next_cursor"], Value::Null);
    assert_eq!(s2["tables"][4]["name"], "t104");
    let liked = mcp
        .call(
            "list_tables",
            json!({"database": "analytics", "like": "ev%"}),
        )
        .await;
    assert_eq!(structured(&liked)["tables"][0]["name"], "events");
    assert_eq!(structured(&liked)["tables"][0]["engine"], "MergeTree");

    let desc = mcp
        .call(
            "describe_table",
            json!({"database": "analytics", "table": "events"}),
        )
        .await;
    let cols = structured(&desc)["columns"].as_array().unwrap().clone();
    assert_eq!(
        cols.iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["id", "kind", "amount", "at"]
    );
    assert_eq!(cols[0]["type"], "UInt64");

    let q = mcp
        .query("SELECT kind, count() AS n FROM analytics.events GROUP BY kind ORDER BY kind")
        .await;
    let s = structured(&q);
    assert_eq!(
        s["columns"],
        json!([{"name": "kind", "type": "String"}, {"name": "n", "type": "UInt64"}])
    );
    assert_eq!(
        s["rows"],
        json!([["click", "10000"], ["view", "10000"]]),
        "UInt64 comes back as a string"
    );
    assert_eq!(s["row_count"], 2);
    assert!(s.get("truncated").is_none());
    let text = text_of(&q);
    assert!(
        text.starts_with("kind,n\nclick,10000\nview,10000\n(2 row(s) in "),
        "the text block is compact CSV with a header line: {text}"
    );
    assert!(text.ends_with("columns: kind String, n UInt64)"), "{text}");
    let j = mcp
        .call(
            "execute_query",
            json!({"query": "SELECT kind, count() AS n FROM analytics.events GROUP BY kind ORDER BY kind", "result_format": "json"}),
        )
        .await;
    let mut from_text = serde_json::from_str::<Value>(&text_of(&j)).unwrap();
    from_text["elapsed_ms"] = s["elapsed_ms"].clone();
    assert_eq!(
        from_text, *s,
        "result_format json: the text block carries the JSON"
    );

    let w = mcp
        .call(
            "write_query",
            json!({"query": "CREATE TABLE analytics.notes (t String) ENGINE = TinyLog"}),
        )
        .await;
    assert_ne!(w["isError"], json!(true), "{w}");
    mcp.call(
        "write_query",
        json!({"query": "INSERT INTO analytics.notes VALUES ('hello')"}),
    )
    .await;
    assert_eq!(ch.query("SELECT t FROM analytics.notes").trim(), "hello");

    // Resources.
    let res = mcp
        .request(
            "resources/read",
            json!({"uri": "clickhouse://table/analytics/events"}),
        )
        .await;
    let text = res.body["result"]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("\"amount\""), "{text}");
    let schema = mcp
        .request("resources/read", json!({"uri": "clickhouse://schema"}))
        .await;
    assert!(schema.body["result"]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .contains("daily"));

    // The stateless 2026-07-28 era runs the same tool (its header rules: protocol_rules.rs).
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}});
    let h = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "execute_query"),
    ];
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"_meta": meta, "name": "execute_query", "arguments": {"query": "SELECT 1 AS one"}}});
    let c = mcp.post_raw(&body, &h).await;
    assert_eq!(c.body["result"]["resultType"], "complete", "{:?}", c.body);
    assert_eq!(c.body["result"]["structuredContent"]["rows"], json!([[1]]));
}

#[tokio::test]
async fn results_stop_at_the_row_cap_and_the_byte_cap() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(&ch, ""));
    let mcp = Mcp::new(gw.mcp_url());

    let r = mcp
        .query("SELECT number FROM system.numbers LIMIT 10000")
        .await;
    let s = structured(&r);
    assert_eq!(s["row_count"], 500);
    assert_eq!(s["truncated"]["reason"], "max_result_rows");
    assert_eq!(s["truncated"]["limit"], 500);
    assert!(
        text_of(&r).contains("LIMIT"),
        "a hint on how to narrow the query"
    );

    let r = mcp
        .query("SELECT number, toString(range(150)) AS s FROM system.numbers LIMIT 400")
        .await;
    let s = structured(&r);
    assert_eq!(s["truncated"]["reason"], "max_result_bytes");
    assert_eq!(s["truncated"]["limit"], 50000);
    let size = s.to_string().len();
    assert!(
        size <= 50_000 && size > 45_000,
        "structured result is {size} bytes"
    );
    assert!(s["row_count"].as_u64().unwrap() < 400);

    // Exactly the cap is not a truncation.
    let r = mcp
        .query("SELECT number FROM system.numbers LIMIT 500")
        .await;
    assert!(structured(&r).get("truncated").is_none());
}

#[tokio::test]
async fn sql_errors_and_guard_refusals_are_tool_errors() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(
        &ch,
        "server:\n  blocked_query_clauses: [INTO OUTFILE]\n",
    ));
    let mcp = Mcp::new(gw.mcp_url());

    let r = mcp.query("SELECT * FROM nowhere.nothing").await;
    assert_eq!(r["isError"], json!(true));
    let t = text_of(&r);
    assert!(
        t.contains("ClickHouse error 81") && t.contains("nowhere"),
        "{t}"
    );

    let r = mcp.query("DROP TABLE x").await;
    assert_eq!(r["isError"], json!(true));
    assert!(text_of(&r).contains("write_query"));

    let r = mcp.query("SELECT 1; SELECT 2").await;
    assert!(text_of(&r).contains("exactly one statement"));

    let r = mcp.query("SELECT 1 INTO OUTFILE '/tmp/x'").await;
    assert!(text_of(&r).contains("INTO OUTFILE"));

    let r = mcp
        .request(
            "tools/call",
            json!({"name": "no_such_tool", "arguments": {}}),
        )
        .await;
    assert_eq!(r.body["error"]["code"], -32602);
}

#[tokio::test]
async fn read_only_hides_write_query_and_insert_tools_and_a_view_rule_adds_a_tool() {
    let ch = ClickHouse::start();
    seed(&ch);
    let extra = "  read_only: true\nserver:\n  tools:\n    - {type: read, view_regexp: 'analytics\\..*', prefix: 'ro_'}\n    - {type: write, table_regexp: 'analytics\\.events', mode: insert, prefix: 'add_'}\n";
    let gw = Gateway::start(&config(&ch, extra));
    let mcp = Mcp::new(gw.mcp_url());
    let names = mcp.tool_names().await;
    assert!(!names.contains(&"write_query".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("add_")),
        "clickhouse.read_only lists no insert tool: {names:?}"
    );
    assert!(
        names.contains(&"execute_query".to_string()),
        "view rules only add tools: {names:?}"
    );
    assert!(
        names.contains(&"ro_analytics_daily".to_string()),
        "{names:?}"
    );
    let r = mcp.call("ro_analytics_daily", json!({})).await;
    let s = structured(&r);
    assert_eq!(s["row_count"], 30);
    assert_eq!(s["columns"][1]["name"], "n");

    let r = mcp
        .query("INSERT INTO analytics.events VALUES (1, 'x', 1, today())")
        .await;
    assert!(
        text_of(&r).contains("writes are disabled"),
        "{}",
        text_of(&r)
    );
    // call_tool reaches only what this catalog holds: the hidden write tools stay out.
    let before = ch.query("SELECT count() FROM analytics.events");
    for (name, args) in [
        (
            "write_query",
            json!({"query": "INSERT INTO analytics.events VALUES (1, 'x', 1, today())"}),
        ),
        ("add_analytics_events", json!({"rows": [{"id": 1}]})),
    ] {
        let r = mcp
            .call("call_tool", json!({"name": name, "arguments": args}))
            .await;
        assert_eq!(r["isError"], json!(true), "{name}: {r}");
        assert!(text_of(&r).contains("there is no tool"), "{}", text_of(&r));
    }
    assert_eq!(ch.query("SELECT count() FROM analytics.events"), before);
}

#[tokio::test]
async fn a_readonly_profile_user_runs_under_its_profile_and_the_probe_learns_it_once() {
    let ch = ClickHouse::start_with(Users::default().with("reader", "rpw", "ro"));
    let gw = Gateway::start(&config(&ch, "  username: reader\n  password: rpw\n"));
    let mcp = Mcp::new(gw.mcp_url());
    for _ in 0..2 {
        let r = mcp
            .query("SELECT number FROM system.numbers LIMIT 600")
            .await;
        let s = structured(&r);
        assert_eq!(
            s["row_count"], 500,
            "the gateway's own cap holds without ClickHouse settings"
        );
        assert_eq!(s["truncated"]["reason"], "max_result_rows");
    }
    let log = gw.log();
    assert_eq!(
        log.matches("learned which of the gateway's settings")
            .count(),
        1,
        "the gateway's own probe learns it once, then remembers: {log}"
    );
    assert!(
        log.contains("profile_readonly=Some(1)"),
        "readonly is refused only because the profile is already read-only: {log}"
    );
    assert!(
        !gw.log().contains("rpw"),
        "the password never reaches a log line"
    );
}

/// Sends a tools/call over a raw socket and hangs up, like a client that goes away.
fn start_and_abandon(port: u16, query: &str) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "execute_query", "arguments": {"query": query}}}).to_string();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        s.read(&mut buf).is_err(),
        "the query should still be running"
    );
    drop(s);
}

#[tokio::test]
async fn a_query_abandoned_by_its_client_is_killed() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(&ch, ""));
    let running = "SELECT count() FROM system.processes WHERE query LIKE '%sum(number)%' AND query NOT LIKE '%system.processes%'";
    let port = gw.port;
    let t = std::thread::spawn(move || {
        start_and_abandon(port, "SELECT sum(number) FROM system.numbers")
    });
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        ch.query(running).trim(),
        "1",
        "the long query runs in ClickHouse"
    );
    t.join().unwrap();
    let started = Instant::now();
    while ch.query(running).trim() != "0" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "query still in system.processes 5 s after the client left"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn sighup_reload_changes_a_limit_without_restart() {
    let ch = ClickHouse::start();
    let base = config(&ch, "  max_result_rows: 5\n");
    let gw = Gateway::start(&base);
    let mcp = Mcp::new(gw.mcp_url());
    let rows = |r: &Value| structured(r)["row_count"].as_u64().unwrap();
    assert_eq!(
        rows(
            &mcp.query("SELECT number FROM system.numbers LIMIT 50")
                .await
        ),
        5
    );

    std::fs::write(
        &gw.config_path,
        base.replace("max_result_rows: 5", "max_result_rows: 3")
            + "multicluster:\n  catalog_cache_max: 200\n",
    )
    .unwrap();
    gw.signal("HUP");
    let started = Instant::now();
    loop {
        let r = mcp
            .query("SELECT number FROM system.numbers LIMIT 50")
            .await;
        if rows(&r) == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "reload did not apply"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        gw.log().contains("multicluster.catalog_cache_max"),
        "the restart-only key is named: {}",
        gw.log()
    );

    // A file that no longer validates is rejected; the old config keeps serving.
    std::fs::write(&gw.config_path, "clickhouse:\n  hots: x\n").unwrap();
    gw.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rows(
            &mcp.query("SELECT number FROM system.numbers LIMIT 50")
                .await
        ),
        3
    );
    assert!(gw.log().contains("clickhouse.hots"), "{}", gw.log());
}

#[tokio::test]
async fn readiness_follows_clickhouse_and_queries_are_counted() {
    let mut ch = ClickHouse::start();
    let gw = Gateway::start(&config(&ch, ""));
    let http = reqwest::Client::new();
    let mcp = Mcp::new(gw.mcp_url());
    assert_eq!(
        http.get(format!("{}/readyz", gw.base()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    mcp.query("SELECT 1").await;
    let m = Metrics::scrape(&gw.base()).await;
    assert_eq!(
        m.count(
            "chmcp_tool_calls_total",
            &[("tool", "execute_query"), ("outcome", "ok")]
        ),
        1
    );
    assert_eq!(
        m.count(
            "chmcp_tool_call_duration_seconds_count",
            &[("tool", "execute_query"), ("cluster", "default")]
        ),
        1
    );
    // ClickHouse's own time: the tool's query and the readiness check's `SELECT 1`.
    assert_eq!(
        m.count(
            "chmcp_clickhouse_query_duration_seconds_count",
            &[("cluster", "default"), ("status", "ok")]
        ),
        2,
        "{}",
        m.lines_of("chmcp_clickhouse_query_duration_seconds_count")
            .join("\n")
    );
    let health: Value = http
        .get(format!("{}/health", gw.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert!(health["catalog_cache"]["entries"].is_number());

    ch.stop();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = http
        .get(format!("{}/readyz", gw.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("does not answer"));
    let q = mcp.query("SELECT 1").await;
    assert_eq!(
        q["isError"],
        json!(true),
        "an outage is a tool error, not a crash"
    );
    ch.restart();
}

#[tokio::test]
async fn decimals_from_clickhouse_18_16_keep_every_digit() {
    // 18.16 writes decimals as bare JSON numbers (it has no
    // output_format_json_quote_decimals): read as f64 they would lose digits and scale.
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(&ch, ""));
    let r = Mcp::new(gw.mcp_url())
        .call(
            "execute_query",
            json!({"query": "SELECT toDecimal128('12345678901234567890.1234567890', 10) AS d, \
                toDecimal32('1.50', 2) AS s, [toDecimal64('2.10', 2)] AS a, toFloat64(0.5) AS f, \
                toUInt64(18446744073709551615) AS u", "result_format": "json"}),
        )
        .await;
    assert_eq!(
        structured(&r)["rows"][0],
        json!([
            "12345678901234567890.1234567890",
            "1.50",
            ["2.10"],
            0.5,
            "18446744073709551615"
        ]),
        "{r}"
    );
    // The text a model reads says the same digits.
    assert!(
        text_of(&r).contains("12345678901234567890.1234567890"),
        "{r}"
    );
}

#[tokio::test]
async fn decimals_beside_hostile_strings_from_clickhouse_18_16_keep_their_text_and_the_strings_theirs(
) {
    // The quoting pass reads 18.16's own bytes: a string full of quotes, brackets, a
    // comma and a backslash next to decimals (negative, NULL, in an array) must leave
    // the string as it was and every decimal as its text.
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(&ch, ""));
    let r = Mcp::new(gw.mcp_url())
        .call(
            "execute_query",
            json!({"query": "SELECT 'a,\"]\\\\[ 1, -2' AS s, toDecimal64('-1.5', 2) AS d, \
                CAST(NULL AS Nullable(Decimal(9, 2))) AS n, CAST('3.25' AS Nullable(Decimal(9, 2))) AS m, \
                [toDecimal32('-0.01', 2), toDecimal32('7', 2)] AS a, '1.0' AS t", "result_format": "json"}),
        )
        .await;
    assert_eq!(
        structured(&r)["rows"][0],
        json!([
            "a,\"]\\[ 1, -2",
            "-1.50",
            null,
            "3.25",
            ["-0.01", "7.00"],
            "1.0"
        ]),
        "{r}"
    );
}

#[tokio::test]
async fn worker_threads_sets_the_threads_that_serve_requests() {
    // /health answers without ClickHouse (degraded): none is needed to count threads.
    let per_cpu = std::thread::available_parallelism().unwrap().get();
    for (extra, want) in [("server:\n  worker_threads: 1\n", 1), ("", per_cpu)] {
        let gw = Gateway::start(&chmcp_tests::inproc::single_cluster(extra));
        let health: Value = reqwest::get(format!("{}/health", gw.base()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["worker_threads"], json!(want), "{extra:?}: {health}");
    }
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    // A signal to the process: no ClickHouse is needed to prove it.
    let mut gw = Gateway::start(&chmcp_tests::inproc::single_cluster(""));
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn a_table_rule_adds_an_insert_tool_that_writes_typed_rows() {
    let ch = ClickHouse::start();
    ch.query("CREATE DATABASE app");
    ch.query("CREATE TABLE app.notes (id UInt64, body String, score Nullable(Float64), at Date DEFAULT today()) ENGINE = MergeTree() ORDER BY id");
    let gw = Gateway::start(&config(&ch, "server:\n  tools:\n    - {type: write, table_regexp: 'app\\.notes', mode: insert, prefix: 'add_'}\n"));
    let mcp = Mcp::new(gw.mcp_url());
    let tools = mcp.request("tools/list", json!({})).await.body["result"]["tools"].clone();
    let add = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "add_app_notes")
        .expect("insert tool listed")
        .clone();
    assert_eq!(
        add["inputSchema"]["required"],
        json!(["id", "body", "score"])
    );
    assert_eq!(add["annotations"]["destructiveHint"], json!(true));
    let r = mcp
        .call(
            "add_app_notes",
            json!({"id": "7", "body": "it's here", "score": null}),
        )
        .await;
    assert_eq!(structured(&r)["inserted_rows"], 1);
    assert_eq!(
        ch.query("SELECT id, body, isNull(score) FROM app.notes")
            .trim(),
        "7\tit\\'s here\t1"
    );
    let bad = mcp
        .call(
            "add_app_notes",
            json!({"id": "seven", "body": "x", "score": 1.5}),
        )
        .await;
    assert_eq!(bad["isError"], json!(true));
    assert!(text_of(&bad).contains("argument `id`"), "{}", text_of(&bad));
}

#[tokio::test]
async fn allowed_settings_pass_through_and_others_are_refused() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(
        &ch,
        "server:\n  tool_input_settings: [max_threads]\n",
    ));
    let mcp = Mcp::new(gw.mcp_url());
    let r = mcp.call("execute_query", json!({"query": "SELECT value FROM system.settings WHERE name = 'max_threads'", "settings": {"max_threads": 3}})).await;
    assert_eq!(structured(&r)["rows"], json!([["3"]]));
    let r = mcp
        .call(
            "execute_query",
            json!({"query": "SELECT 1", "settings": {"max_memory_usage": 1}}),
        )
        .await;
    assert_eq!(r["isError"], json!(true));
    assert!(text_of(&r).contains("max_memory_usage"), "{}", text_of(&r));
}

#[tokio::test]
async fn max_execution_time_bounds_every_query() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(&ch, "  max_execution_time: 1\n"));
    let mcp = Mcp::new(gw.mcp_url());
    let started = Instant::now();
    let r = mcp.query("SELECT sum(number) FROM system.numbers").await;
    assert_eq!(r["isError"], json!(true), "{r}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        text_of(&r).contains("159") || text_of(&r).contains("max_execution_time"),
        "{}",
        text_of(&r)
    );
}

#[tokio::test]
async fn outside_table_functions_are_refused_unless_allowed() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(&ch, "server:\n  allowed_table_functions: [url]\n"));
    let mcp = Mcp::new(gw.mcp_url());

    // 18.16 accepts a back-quoted table function name as the function itself.
    for query in [
        "SELECT * FROM file('x.csv', CSV, 'a UInt8')",
        "SELECT * FROM `remote`('127.0.0.1', system.one)",
    ] {
        let r = mcp.query(query).await;
        assert_eq!(r["isError"], json!(true), "{query}");
        assert!(
            text_of(&r).contains("server.allowed_table_functions"),
            "{query}: {}",
            text_of(&r)
        );
    }
    let r = mcp
        .call(
            "write_query",
            json!({"query": "INSERT INTO FUNCTION file('x.csv', CSV, 'a UInt8') SELECT 1"}),
        )
        .await;
    assert!(text_of(&r).contains("server.allowed_table_functions"));

    // The listed one passes the guard and reaches ClickHouse.
    let url = format!("http://127.0.0.1:{}/?query=SELECT+7", ch.http_port);
    let r = mcp
        .query(&format!("SELECT * FROM url('{url}', CSV, 'a UInt8')"))
        .await;
    assert!(
        !text_of(&r).contains("allowed_table_functions"),
        "{}",
        text_of(&r)
    );
}

/// Progressive discovery on `/mcp` (issue 23), real 18.16: above the threshold the list
/// has search and call instead of the view tools, search finds a view by a column name,
/// and `call_tool` runs it exactly as the listed tool would run. Also the typo message.
#[tokio::test]
async fn above_the_threshold_views_are_searched_and_called_by_name() {
    let ch = ClickHouse::start();
    seed(&ch);
    for i in 0..31 {
        ch.query(&format!(
            "CREATE VIEW analytics.filler_{i:02} AS SELECT {i} AS filler_value"
        ));
    }
    let extra =
        "server:\n  tools:\n    - {type: read, view_regexp: 'analytics\\..*', prefix: 'v_'}\n";
    let gw = Gateway::start(&config(&ch, extra));
    let mcp = Mcp::new(gw.mcp_url());
    let names = mcp.tool_names().await;
    assert!(
        names.contains(&"search_tools".to_string()) && names.contains(&"call_tool".to_string()),
        "32 view tools (> 30): searched listing: {names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with("v_")), "{names:?}");

    // `n` is a column of analytics.daily only; `at` too.
    let r = mcp.call("search_tools", json!({"query": "at n"})).await;
    let found: Vec<&str> = structured(&r)["matches"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["tool"].as_str())
        .collect();
    assert_eq!(found.first(), Some(&"v_analytics_daily"), "{}", text_of(&r));
    assert!(text_of(&r).contains("call_tool"), "{}", text_of(&r));

    let r = mcp
        .call("call_tool", json!({"name": "v_analytics_daily"}))
        .await;
    assert_eq!(structured(&r)["row_count"], 30, "{r}");
    let direct = mcp.call("v_analytics_daily", json!({})).await;
    assert_eq!(structured(&direct)["rows"], structured(&r)["rows"]);
    let r = mcp
        .call(
            "call_tool",
            json!({"name": "v_analytics_daily", "arguments": {"x": 1}}),
        )
        .await;
    assert_eq!(r["isError"], json!(true));
    assert!(
        text_of(&r).contains("unknown argument `x`"),
        "{}",
        text_of(&r)
    );
    let r = mcp.call("call_tool", json!({"name": "v_nowhere"})).await;
    assert_eq!(r["isError"], json!(true));
    assert!(text_of(&r).contains("search_tools"), "{}", text_of(&r));

    let r = mcp.query("SELEC 1").await;
    let t = text_of(&r);
    assert_eq!(r["isError"], json!(true));
    assert!(
        t.starts_with("syntax error") && !t.contains("write_query"),
        "{t}"
    );
    let r = mcp.query("SELECT nope FROM analytics.events").await;
    assert!(text_of(&r).contains("describe_table"), "{}", text_of(&r));
}

//! The HTTP rules of the MCP endpoint (gateway.md: 405/413/415, -32700, Origin, CORS,
//! liveness, readiness, request metrics), proved in process against the gateway's router:
//! no listener, no binary, and a ClickHouse address nobody listens on.

use chmcp_tests::inproc::{single_cluster, Gateway};
use chmcp_tests::mcp::{initialize, text_of};
use serde_json::{json, Value};

fn ping() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})
}

const CLAUDE: &str = "https://claude.ai";

/// A gateway that allows one browser origin and bodies up to 2 KiB.
fn strict() -> Gateway {
    Gateway::new(&single_cluster(
        "server:\n  max_request_bytes: 2048\n  allowed_origins: [\"https://claude.ai\"]\n",
    ))
}

#[tokio::test]
async fn get_and_delete_on_the_mcp_endpoint_are_405_naming_post() {
    let gw = strict();
    for method in ["GET", "DELETE", "PUT"] {
        let r = gw.send(method, "/mcp", &[], "").await;
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.headers["allow"], "POST, OPTIONS", "{method}");
        assert_eq!(r.body["error"], "method_not_allowed", "{method}");
    }
}

#[tokio::test]
async fn a_body_over_max_request_bytes_is_413_whether_declared_or_streamed() {
    let gw = strict();
    let big =
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x".repeat(4000)}})
            .to_string();
    let json_type = ("content-type", "application/json");
    // Refused on its Content-Length, before a byte of it is read.
    let declared = big.len().to_string();
    let r = gw
        .send(
            "POST",
            "/mcp",
            &[json_type, ("content-length", &declared)],
            big.clone(),
        )
        .await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert!(
        r.body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("server.max_request_bytes")),
        "the limit's key is named: {:?}",
        r.body
    );
    // Without a length: cut off while reading.
    let r = gw.send("POST", "/mcp", &[json_type], big).await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    // Under the limit the same request is served.
    assert_eq!(gw.post_json("/mcp", &ping(), &[]).await.status, 200);
}

#[tokio::test]
async fn a_body_that_is_not_json_content_is_415() {
    let gw = strict();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        let r = gw.send("POST", "/mcp", &headers, ping().to_string()).await;
        assert_eq!(r.status, 415, "{content_type:?}");
        assert_eq!(
            r.body["error"], "unsupported_media_type",
            "{content_type:?}"
        );
    }
    let r = gw
        .send(
            "POST",
            "/mcp",
            &[("content-type", "Application/JSON; charset=utf-8")],
            ping().to_string(),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "parameters and case do not matter: {:?}",
        r.body
    );
}

#[tokio::test]
async fn a_body_that_does_not_parse_is_a_400_parse_error_with_a_null_id() {
    let gw = strict();
    let r = gw
        .send(
            "POST",
            "/mcp",
            &[("content-type", "application/json")],
            "{not json",
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], -32700);
    assert_eq!(r.body["id"], Value::Null);
    assert_eq!(r.body["jsonrpc"], "2.0");
}

/// Sends `initialize` with every value in `origins` as its own `Origin` header.
async fn status_with_origins(gw: &Gateway, origins: &[&str]) -> u16 {
    let headers: Vec<(&str, &str)> = origins.iter().map(|o| ("origin", *o)).collect();
    gw.post_json("/mcp", &initialize("2025-11-25"), &headers)
        .await
        .status
}

#[tokio::test]
async fn loopback_origins_are_compared_by_exact_host() {
    // No allowed_origins: a local client's origin passes, a look-alike host does not.
    let gw = Gateway::new(&single_cluster(""));
    for (origins, want) in [
        (vec![], 200),
        (vec!["http://127.0.0.1:3000"], 200),
        (vec!["http://localhost:6274"], 200),
        (vec!["http://[::1]:3000"], 200),
        (vec!["http://127.evil.example"], 403),
        (vec!["http://127.0.0.1.evil.example"], 403),
        (vec!["http://localhost.evil.example"], 403),
    ] {
        assert_eq!(
            status_with_origins(&gw, &origins).await,
            want,
            "Origin {origins:?}"
        );
    }
}

#[tokio::test]
async fn a_null_or_repeated_origin_is_403() {
    let gw = Gateway::new(&single_cluster(""));
    for origins in [
        vec!["null"],
        vec!["http://localhost:6274", "http://localhost:6274"],
    ] {
        let headers: Vec<(&str, &str)> = origins.iter().map(|o| ("origin", *o)).collect();
        let r = gw
            .post_json("/mcp", &initialize("2025-11-25"), &headers)
            .await;
        assert_eq!(r.status, 403, "Origin {origins:?}");
        assert_eq!(r.body["error"], "forbidden_origin", "Origin {origins:?}");
    }
}

#[tokio::test]
async fn an_origin_outside_allowed_origins_is_403_and_a_listed_one_gets_cors_headers() {
    let gw = strict();
    let evil = gw
        .post_json("/mcp", &ping(), &[("origin", "https://evil.example")])
        .await;
    assert_eq!(evil.status, 403);
    assert_eq!(evil.body["error"], "forbidden_origin");
    assert!(evil.headers.get("access-control-allow-origin").is_none());

    let ok = gw.post_json("/mcp", &ping(), &[("origin", CLAUDE)]).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.headers["access-control-allow-origin"], CLAUDE);
    assert_eq!(ok.headers["vary"], "Origin");
    let exposed = ok.headers["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("WWW-Authenticate") && exposed.contains("Mcp-Protocol-Version"),
        "{exposed}"
    );
    // No Origin (a non-browser client): served, and no CORS headers.
    let plain = gw.post_json("/mcp", &ping(), &[]).await;
    assert_eq!(plain.status, 200);
    assert!(plain.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_cors_preflight_names_post_and_the_mcp_headers() {
    let gw = strict();
    let preflight = [
        ("origin", CLAUDE),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type, mcp-method"),
    ];
    let r = gw.send("OPTIONS", "/mcp", &preflight, "").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.headers["access-control-allow-origin"], CLAUDE);
    assert_eq!(r.headers["access-control-allow-methods"], "POST, OPTIONS");
    let allowed = r.headers["access-control-allow-headers"].to_str().unwrap();
    for h in [
        "Content-Type",
        "Authorization",
        "MCP-Protocol-Version",
        "Mcp-Method",
        "Mcp-Name",
    ] {
        assert!(allowed.contains(h), "{h} missing from {allowed}");
    }
    assert_eq!(r.headers["access-control-max-age"], "600");

    let evil = [("origin", "https://evil.example"), preflight[1]];
    let r = gw.send("OPTIONS", "/mcp", &evil, "").await;
    assert_eq!(r.status, 403, "a preflight from another origin is refused");
}

#[tokio::test]
async fn livez_answers_without_clickhouse_and_unknown_paths_are_404() {
    let gw = strict();
    let r = gw.get("/livez").await;
    assert_eq!((r.status, r.body), (200, json!("ok")));
    let r = gw.get("/nowhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"], "not_found");
}

#[tokio::test]
async fn an_unreachable_clickhouse_is_not_ready_and_a_query_is_a_tool_error() {
    let gw = strict();
    let r = gw.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert!(
        r.body
            .as_str()
            .is_some_and(|t| t.contains("does not answer")),
        "{:?}",
        r.body
    );
    let r = gw
        .rpc(
            "/mcp",
            "tools/call",
            json!({"name": "execute_query", "arguments": {"query": "SELECT 1"}}),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "an outage is a tool error, not a crash: {:?}",
        r.body
    );
    assert_eq!(r.body["result"]["isError"], json!(true), "{:?}", r.body);
    assert!(
        !text_of(&r.body["result"]).is_empty(),
        "the error is said: {:?}",
        r.body
    );
    let health = gw.get("/health").await;
    assert_eq!(health.body["status"], "degraded", "{:?}", health.body);
}

#[tokio::test]
async fn an_unreachable_clickhouse_is_timed_as_such_apart_from_the_tool_call() {
    let gw = strict();
    gw.rpc(
        "/mcp",
        "tools/call",
        json!({"name": "execute_query", "arguments": {"query": "SELECT 1"}}),
    )
    .await;
    gw.rpc("/mcp", "tools/call", json!({"name": "no_such_tool"}))
        .await;
    let m = gw.metrics().await;
    assert_eq!(
        m.count(
            "chmcp_tool_call_duration_seconds_count",
            &[
                ("tool", "execute_query"),
                ("cluster", "default"),
                ("outcome", "tool_error")
            ]
        ),
        1
    );
    assert_eq!(
        m.count(
            "chmcp_clickhouse_query_duration_seconds_count",
            &[("cluster", "default"), ("status", "unreachable")]
        ),
        1
    );
    // An unknown tool is a JSON-RPC error, and its name never becomes a label.
    assert_eq!(
        m.count(
            "chmcp_mcp_request_duration_seconds_count",
            &[("method", "tools/call"), ("outcome", "error")]
        ),
        1
    );
    assert!(!m.page().contains("no_such_tool"), "{}", m.page());
}

#[tokio::test]
async fn metrics_are_openmetrics_when_asked_and_the_classic_format_otherwise() {
    let gw = strict();
    let classic = gw.get("/metrics").await;
    assert_eq!(
        classic.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let page = classic.body.as_str().unwrap_or_default().to_string();
    assert!(page.contains("# TYPE chmcp_panics_total counter"), "{page}");
    assert!(!page.contains("# EOF"), "{page}");
    let open = gw
        .send(
            "GET",
            "/metrics",
            &[("accept", chmcp_tests::metrics::OPENMETRICS)],
            "",
        )
        .await;
    assert_eq!(
        open.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let page = open.body.as_str().unwrap_or_default();
    assert!(page.contains("# TYPE chmcp_panics counter"), "{page}");
    assert!(page.trim_end().ends_with("# EOF"), "{page}");
}

#[tokio::test]
async fn http_answers_are_counted_by_route_template_and_status() {
    let gw = strict();
    gw.post_json("/mcp", &ping(), &[]).await;
    gw.send("GET", "/mcp", &[], "").await;
    gw.get("/nowhere").await;
    let m = gw.metrics().await;
    let http = "chmcp_http_requests_total";
    assert_eq!(m.count(http, &[("route", "/mcp"), ("status", "200")]), 1);
    assert_eq!(m.count(http, &[("route", "/mcp"), ("status", "405")]), 1);
    assert_eq!(
        m.count(http, &[("route", "unmatched"), ("status", "404")]),
        1
    );
    assert!(!m.page().contains("nowhere"), "paths never become labels");
}

#[tokio::test]
async fn bogus_methods_are_one_metric_series() {
    let gw = strict();
    let series = "chmcp_mcp_requests_total";
    gw.rpc("/mcp", "bogus/first", json!({})).await;
    let before = gw.metrics().await.lines_of(series);
    for i in 0..50 {
        let r = gw.rpc("/mcp", &format!("bogus/{i}\nx"), json!({})).await;
        assert_eq!(r.body["error"]["code"], -32601, "{:?}", r.body);
    }
    let m = gw.metrics().await;
    assert_eq!(
        before.len(),
        m.lines_of(series).len(),
        "distinct bogus methods added series:\n{}",
        m.page()
    );
    assert_eq!(m.count(series, &[("method", "other")]), 51);
    assert!(!m.page().contains("bogus"), "{}", m.page());
}

#[tokio::test]
async fn a_resource_uri_that_splits_an_escape_is_answered_without_a_panic() {
    // The last segment splits a `%XX` escape with a two-byte UTF-8 character: a decoder
    // that slices by byte offsets panics on it.
    let gw = strict();
    let r = gw
        .rpc(
            "/mcp",
            "resources/read",
            json!({"uri": "clickhouse://table/x/%a\u{e9}"}),
        )
        .await;
    assert_eq!(r.body["id"], 1, "{:?}", r.body);
    assert!(r.body["error"]["code"].is_i64(), "{:?}", r.body);
    assert_eq!(gw.metrics().await.count("chmcp_panics_total", &[]), 0);
    assert_eq!(
        gw.post_json("/mcp", &ping(), &[]).await.status,
        200,
        "still serving"
    );
}

/// A table resource while ClickHouse does not answer: an internal error that names the
/// table, never the era's "resource not found" (which told a model the table is gone).
#[tokio::test]
async fn a_table_resource_during_an_outage_is_an_error_not_resource_not_found() {
    let gw = strict();
    let r = gw
        .rpc(
            "/mcp",
            "resources/read",
            json!({"uri": "clickhouse://table/analytics/events"}),
        )
        .await;
    assert_eq!(r.body["error"]["code"], -32603, "{:?}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("could not describe analytics.events"),
        "{message}"
    );
}

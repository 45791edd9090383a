//! What a platform team scrapes: a real gateway in front of a real ClickHouse (18.16),
//! after traffic, exports the latency and size histograms under bounded labels, its page
//! passes `promtool check metrics`, and every query of the shipped Grafana dashboard
//! names a metric family that page (or, for pod resources, cadvisor/kube-state-metrics)
//! exports.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use chmcp_tests::clickhouse::ClickHouse;
use chmcp_tests::gateway::Gateway;
use chmcp_tests::mcp::Mcp;
use chmcp_tests::metrics::Metrics;
use serde_json::{json, Value};

/// Metrics the dashboard's pod-resource panels take from outside the gateway: cadvisor
/// (the kubelet) and kube-state-metrics. Nothing else may be named.
const EXTERNAL_METRICS: &[&str] = &[
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "kube_pod_status_ready",
];

/// A gateway whose discovery rule makes `tools/list` discover (a view becomes a tool),
/// after initialize, tools/list, a good query, a failing query and the view's tool.
async fn gateway_after_traffic(ch: &ClickHouse) -> (Gateway, Metrics) {
    ch.query("CREATE DATABASE IF NOT EXISTS obs");
    ch.query(
        "CREATE VIEW IF NOT EXISTS obs.daily AS SELECT number AS n FROM system.numbers LIMIT 5",
    );
    let extra = "server:\n  tools:\n    - {type: read, view_regexp: 'obs\\..*', prefix: 'v_'}\n";
    let gw = Gateway::start(&chmcp_tests::gateway::config(ch.http_port, extra));
    let mcp = Mcp::new(gw.mcp_url());
    mcp.request("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}))
        .await;
    let names = mcp.tool_names().await;
    let view_tool = names
        .iter()
        .find(|n| n.starts_with("v_"))
        .unwrap_or_else(|| panic!("discovery found no view tool: {names:?}"))
        .clone();
    let ok = mcp.query("SELECT number FROM system.numbers LIMIT 3").await;
    assert_ne!(ok["isError"], json!(true), "{ok}");
    let failed = mcp.query("SELECT no_such_column FROM system.one").await;
    assert_eq!(failed["isError"], json!(true), "{failed}");
    let view = mcp.call(&view_tool, json!({})).await;
    assert_ne!(view["isError"], json!(true), "{view}");
    let m = Metrics::scrape(&gw.base()).await;
    (gw, m)
}

#[tokio::test]
async fn latency_and_size_histograms_answer_by_tool_cluster_and_outcome() {
    let ch = ClickHouse::start();
    let (_gw, m) = gateway_after_traffic(&ch).await;

    let tool = |outcome| {
        m.count(
            "chmcp_tool_call_duration_seconds_count",
            &[
                ("tool", "execute_query"),
                ("cluster", "default"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(tool("ok"), 1, "{}", m.page());
    assert_eq!(tool("tool_error"), 1, "{}", m.page());
    // ClickHouse's own time, separate from the call's: the failed query is its error.
    assert!(
        m.count(
            "chmcp_clickhouse_query_duration_seconds_count",
            &[("cluster", "default"), ("status", "ok")]
        ) >= 2,
        "{}",
        m.lines_of("chmcp_clickhouse_query_duration_seconds_count")
            .join("\n")
    );
    assert_eq!(
        m.count(
            "chmcp_clickhouse_query_duration_seconds_count",
            &[("cluster", "default"), ("status", "server_error")]
        ),
        1
    );
    assert_eq!(
        m.count(
            "chmcp_mcp_request_duration_seconds_count",
            &[("method", "tools/call"), ("outcome", "ok")]
        ),
        3,
        "tool failures are results, not JSON-RPC errors"
    );
    // Rows and bytes of what went back: 3 rows of the good query, 5 of the view.
    assert_eq!(
        m.value("chmcp_tool_result_rows_sum", &[("tool", "execute_query")]),
        3.0
    );
    assert!(m.value("chmcp_tool_result_bytes_sum", &[("tool", "execute_query")]) > 0.0);
    assert_eq!(
        m.count(
            "chmcp_catalog_discovery_duration_seconds_count",
            &[("outcome", "ok")]
        ),
        1
    );
    assert_eq!(
        m.count(
            "chmcp_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1
    );
}

#[tokio::test]
async fn a_live_metrics_page_passes_promtool_check_metrics() {
    let ch = ClickHouse::start();
    let (gw, _) = gateway_after_traffic(&ch).await;
    // What curl and promtool get: the classic text format (no OpenMetrics Accept).
    let r = reqwest::get(format!("{}/metrics", gw.base()))
        .await
        .expect("GET /metrics");
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let page = r.text().await.expect("page");
    assert!(
        page.contains("chmcp_tool_call_duration_seconds_bucket{"),
        "{page}"
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool: {e} (scripts/deps.sh prometheus installs it)"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write the page to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn every_dashboard_query_names_a_metric_the_gateway_exports() {
    let ch = ClickHouse::start();
    let (_gw, m) = gateway_after_traffic(&ch).await;
    let exported = families(m.page());

    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/chmcp-operator/files/dashboard.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard.json"))
            .expect("dashboard.json is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() > 20, "{} queries found", queries.len());

    let mut named = BTreeSet::new();
    let mut unknown = Vec::new();
    for (title, expr) in &queries {
        let metrics = metric_names(expr);
        assert!(
            !metrics.is_empty(),
            "panel `{title}` names no metric: {expr}"
        );
        for metric in metrics {
            let known = EXTERNAL_METRICS.contains(&metric.as_str())
                || exported.contains(family_of(&metric));
            if !known {
                unknown.push(format!("{title}: {metric}"));
            }
            named.insert(metric);
        }
    }
    assert!(
        unknown.is_empty(),
        "dashboard queries name metrics nobody exports:\n  {}\nexported families:\n  {}",
        unknown.join("\n  "),
        exported.iter().cloned().collect::<Vec<_>>().join("\n  ")
    );
    // The questions the dashboard is for: each has a panel.
    for needed in [
        "chmcp_tool_call_duration_seconds_bucket",
        "chmcp_clickhouse_query_duration_seconds_bucket",
        "chmcp_catalog_cache_lookups_total",
        "chmcp_catalog_discoveries_total",
        "chmcp_identity_probes_total",
        "chmcp_oauth_requests_total",
        "container_cpu_usage_seconds_total",
        "chmcp_clickhouse_read_bytes_total",
        "chmcp_query_budget_refusals_total",
    ] {
        assert!(named.contains(needed), "no panel reads {needed}");
    }
}

/// Family names from `# TYPE` lines (histograms export `_bucket`/`_sum`/`_count`,
/// counters `_total`).
fn families(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn family_of(series: &str) -> &str {
    ["_total", "_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| series.strip_suffix(s))
        .unwrap_or(series)
}

/// Every (panel title, PromQL) pair: panel targets and template-variable queries.
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((
                    p["title"].as_str().unwrap_or("?").to_string(),
                    e.to_string(),
                ));
            }
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = v["query"]["query"].as_str() {
            // Grafana's `label_values(metric, label)`: the metric is the first argument.
            let metric = q
                .strip_prefix("label_values(")
                .and_then(|rest| rest.split(',').next())
                .unwrap_or(q);
            out.push((
                format!("${}", v["name"].as_str().unwrap_or("?")),
                metric.to_string(),
            ));
        }
    }
    out
}

/// The metric names in a PromQL expression: identifiers that are not functions (followed
/// by `(`), keywords, label names (inside `{}` or the `by`/`on` lists), durations inside
/// `[]`, string literals or Grafana variables.
fn metric_names(expr: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
    ];
    // Aggregations may be followed by `by (...)` instead of their parenthesis.
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let (mut i, mut brace, mut bracket) = (0, 0, 0);
    // After `by`/`on`/...: the next parenthesised list holds label names.
    let mut label_list_next = false;
    let mut in_label_list = false;
    while let Some(&c) = chars.get(i) {
        match c {
            '"' => {
                i += 1;
                while chars.get(i).is_some_and(|&c| c != '"') {
                    i += if chars.get(i) == Some(&'\\') { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            '{' => brace += 1,
            '}' => brace -= 1,
            '[' => bracket += 1,
            ']' => bracket -= 1,
            '(' if label_list_next => {
                in_label_list = true;
                label_list_next = false;
            }
            ')' if in_label_list => in_label_list = false,
            '$' => {
                // A Grafana variable: `$name`, `${name}`, `$__rate_interval`.
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '{' || *c == '}')
                {
                    i += 1;
                }
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while chars.get(j).is_some_and(|c| c.is_whitespace()) {
                    j += 1;
                }
                let is_call = chars.get(j) == Some(&'(');
                if KEYWORDS.contains(&word.as_str()) {
                    label_list_next = matches!(
                        word.as_str(),
                        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                    );
                } else if brace == 0
                    && bracket == 0
                    && !in_label_list
                    && !is_call
                    && !AGGREGATIONS.contains(&word.as_str())
                {
                    names.push(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

#[test]
fn metric_names_skip_functions_labels_keywords_and_variables() {
    let e = r#"histogram_quantile(0.95, sum by (le, tool) (rate(chmcp_x_bucket{namespace=~"$namespace",a="b{c}"}[$__rate_interval]))) / on (pod) group_left kube_y and z"#;
    assert_eq!(metric_names(e), ["chmcp_x_bucket", "kube_y", "z"]);
    assert_eq!(metric_names("sum(rate(a_total[5m])) > 0.05"), ["a_total"]);
}

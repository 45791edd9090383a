//! Prometheus metrics, all prefixed `chmcp_` (docs/spec-notes.md, "Health, metrics, logs").

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label pairs; a value known at compile time is borrowed, so counting a request under
/// fixed labels allocates no `String` per label (`Metrics::inc_static`).
type Labels = Vec<(&'static str, Cow<'static, str>)>;

/// A counter family keyed by label pairs (a clone shares the series).
pub type CounterFamily = Family<Labels, Counter>;

/// A histogram family keyed by label pairs (a clone shares the series).
pub type HistogramFamily = Family<Labels, Histogram>;

/// The `cluster` label value a cluster name is recorded under. Label values are never
/// request text: a name on `multicluster.cluster_allowlist` (or the single-cluster
/// `default`) is itself; anything else, including every name when the allow-list is
/// empty and so any valid name routes, is `other`.
#[derive(Debug, Clone, Default)]
pub struct ClusterLabels {
    names: Arc<HashSet<String>>,
}

/// The label value for a cluster the configuration does not name.
pub const OTHER_CLUSTER: &str = "other";

impl ClusterLabels {
    pub fn new<I: IntoIterator<Item = String>>(names: I) -> Self {
        Self {
            names: Arc::new(names.into_iter().collect()),
        }
    }

    pub fn label(&self, cluster: &str) -> String {
        if cluster == crate::config::DEFAULT_CLUSTER || self.names.contains(cluster) {
            cluster.to_string()
        } else {
            OTHER_CLUSTER.to_string()
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<Labels, Counter>,
    pub mcp_requests: Family<Labels, Counter>,
    pub tool_calls: Family<Labels, Counter>,
    /// A whole `tools/call` (credentials, retries, every query, result shaping).
    pub tool_call_duration: HistogramFamily,
    /// One MCP request from dispatch to answer, by method and JSON-RPC outcome.
    pub mcp_request_duration: HistogramFamily,
    /// One ClickHouse query (sent to last byte read), by cluster and status.
    pub clickhouse_query_duration: HistogramFamily,
    pub tool_result_rows: HistogramFamily,
    pub tool_result_bytes: HistogramFamily,
    pub identity_probe_duration: HistogramFamily,
    pub catalog_discovery_duration: HistogramFamily,
    pub oauth_request_duration: HistogramFamily,
    pub build_info: Family<Labels, Gauge>,
    pub clusters: ClusterLabels,
    pub catalog_entries: Gauge,
    pub catalog_denied_entries: Gauge,
    pub catalog_lookups: Family<Labels, Counter>,
    pub catalog_drops: Family<Labels, Counter>,
    pub catalog_discoveries: Family<Labels, Counter>,
    pub identity_probes: Family<Labels, Counter>,
    pub oauth_requests: Family<Labels, Counter>,
    /// Fetches of the IdP's JWKS by the gateway (`validate_tokens`), by outcome.
    pub jwks_fetches: Family<Labels, Counter>,
    /// Request handlers that panicked (a bug), each answered 500 or `-32603`.
    pub panics: Counter,
    /// Tool calls the scan budget refused, by cluster and stage (`estimate`, `running`).
    pub query_budget_refusals: Family<Labels, Counter>,
    /// Rows and bytes ClickHouse read for tool calls, by cluster (`clickhouse::stats`).
    pub clickhouse_read_rows: Family<Labels, Counter>,
    pub clickhouse_read_bytes: Family<Labels, Counter>,
}

use prometheus_client::metrics::histogram::exponential_buckets;

fn seconds_histogram() -> Histogram {
    // 1 ms .. ~65 s: a cached point lookup up to a full max_execution_time.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn rows_histogram() -> Histogram {
    // 1 .. ~4M rows: a point lookup up to far beyond any sensible max_result_rows.
    Histogram::new(exponential_buckets(1.0, 4.0, 12))
}

fn bytes_histogram() -> Histogram {
    // 256 B .. 1 GiB of JSON returned to the client.
    Histogram::new(exponential_buckets(256.0, 4.0, 12))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics whose `cluster` labels are the names in `clusters` (else `other`).
    pub fn with_clusters(clusters: ClusterLabels) -> Self {
        Metrics {
            clusters,
            ..Self::new()
        }
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chmcp");
        let m = Metrics {
            http_requests: Family::default(),
            mcp_requests: Family::default(),
            tool_calls: Family::default(),
            tool_call_duration: Family::new_with_constructor(seconds_histogram),
            mcp_request_duration: Family::new_with_constructor(seconds_histogram),
            clickhouse_query_duration: Family::new_with_constructor(seconds_histogram),
            tool_result_rows: Family::new_with_constructor(rows_histogram),
            tool_result_bytes: Family::new_with_constructor(bytes_histogram),
            identity_probe_duration: Family::new_with_constructor(seconds_histogram),
            catalog_discovery_duration: Family::new_with_constructor(seconds_histogram),
            oauth_request_duration: Family::new_with_constructor(seconds_histogram),
            build_info: Family::default(),
            clusters: ClusterLabels::default(),
            catalog_entries: Gauge::default(),
            catalog_denied_entries: Gauge::default(),
            catalog_lookups: Family::default(),
            catalog_drops: Family::default(),
            catalog_discoveries: Family::default(),
            identity_probes: Family::default(),
            oauth_requests: Family::default(),
            jwks_fetches: Family::default(),
            panics: Counter::default(),
            query_budget_refusals: Family::default(),
            clickhouse_read_rows: Family::default(),
            clickhouse_read_bytes: Family::default(),
            registry: Registry::default(),
        };
        // Counters get `_total` appended by the encoder.
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "mcp_requests",
            "MCP requests by JSON-RPC method",
            m.mcp_requests.clone(),
        );
        registry.register(
            "tool_calls",
            "Tool calls by tool and outcome",
            m.tool_calls.clone(),
        );
        registry.register(
            "mcp_request_duration_seconds",
            "MCP request handling time by JSON-RPC method and outcome (ok, error)",
            m.mcp_request_duration.clone(),
        );
        registry.register(
            "tool_call_duration_seconds",
            "Whole tools/call time (identity, every ClickHouse request, result shaping) by tool, cluster and outcome",
            m.tool_call_duration.clone(),
        );
        // Until 0.x this series timed the whole tool call; it now times what its name
        // says (CHANGELOG), and `tool_call_duration_seconds` times the call.
        registry.register(
            "clickhouse_query_duration_seconds",
            "One ClickHouse query over HTTP, sent to last row read, by cluster and status",
            m.clickhouse_query_duration.clone(),
        );
        registry.register(
            "tool_result_rows",
            "Rows returned to the client by a query tool, by tool",
            m.tool_result_rows.clone(),
        );
        registry.register(
            "tool_result_bytes",
            "JSON bytes of rows returned to the client by a query tool, by tool",
            m.tool_result_bytes.clone(),
        );
        registry.register(
            "identity_probe_duration_seconds",
            "One Bearer/Basic identity probe attempt by method and outcome",
            m.identity_probe_duration.clone(),
        );
        registry.register(
            "catalog_discovery_duration_seconds",
            "One catalog discovery, budget included, by outcome",
            m.catalog_discovery_duration.clone(),
        );
        registry.register(
            "oauth_request_duration_seconds",
            "OAuth broker request time by step (metadata, register, authorize, callback, token) and outcome",
            m.oauth_request_duration.clone(),
        );
        registry.register(
            "build_info",
            "The running gateway's version; always 1",
            m.build_info.clone(),
        );
        m.build_info
            .get_or_create(&vec![("version", Cow::Borrowed(env!("CARGO_PKG_VERSION")))])
            .set(1);
        registry.register(
            "catalog_cache_entries",
            "Cached tool catalogs (positive and denied)",
            m.catalog_entries.clone(),
        );
        registry.register(
            "catalog_cache_denied_entries",
            "Cached denied (negative) catalog entries",
            m.catalog_denied_entries.clone(),
        );
        registry.register(
            "catalog_cache_lookups",
            "Catalog cache lookups by result",
            m.catalog_lookups.clone(),
        );
        registry.register(
            "catalog_cache_drops",
            "Catalog entries served but not stored because the cache was full",
            m.catalog_drops.clone(),
        );
        registry.register(
            "catalog_discoveries",
            "Catalog discoveries by outcome",
            m.catalog_discoveries.clone(),
        );
        registry.register(
            "identity_probes",
            "Bearer/Basic identity probes by endpoint, method and outcome",
            m.identity_probes.clone(),
        );
        registry.register(
            "oauth_requests",
            "OAuth broker requests by step and outcome",
            m.oauth_requests.clone(),
        );
        registry.register(
            "jwks_fetches",
            "Fetches of the IdP's JWKS (token signature keys) by outcome (ok, error)",
            m.jwks_fetches.clone(),
        );
        registry.register(
            "panics",
            "Request handlers that panicked, answered with HTTP 500 or JSON-RPC -32603",
            m.panics.clone(),
        );
        registry.register(
            "query_budget_refusals",
            "Tool calls refused by the scan budget, by cluster and stage (estimate: before running; running: stopped by ClickHouse)",
            m.query_budget_refusals.clone(),
        );
        registry.register(
            "clickhouse_read_rows",
            "Rows ClickHouse read for tool calls, by cluster (from the query's statistics)",
            m.clickhouse_read_rows.clone(),
        );
        registry.register(
            "clickhouse_read_bytes",
            "Uncompressed bytes ClickHouse read for tool calls, by cluster (from the query's statistics)",
            m.clickhouse_read_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// What a finished tool call cost ClickHouse, and a budget refusal, by cluster.
    pub fn query_cost(&self, cluster: &str, facts: &crate::telemetry::trace::CallFacts) {
        let cluster = self.clusters.label(cluster);
        let labels = |family: &Family<Labels, Counter>| {
            family
                .get_or_create(&vec![("cluster", Cow::Owned(cluster.clone()))])
                .clone()
        };
        if let Some(rows) = facts.read_rows {
            labels(&self.clickhouse_read_rows).inc_by(rows);
        }
        if let Some(bytes) = facts.read_bytes {
            labels(&self.clickhouse_read_bytes).inc_by(bytes);
        }
        if let Some(stage) = facts.budget_refusal {
            Self::inc(
                &self.query_budget_refusals,
                &[("cluster", &cluster), ("stage", stage)],
            );
        }
    }

    pub fn inc(family: &Family<Labels, Counter>, labels: &[(&'static str, &str)]) {
        family.get_or_create(&owned(labels)).inc();
    }

    /// [`Metrics::inc`] for labels fixed at compile time: no `String` per label.
    pub fn inc_static(family: &Family<Labels, Counter>, labels: &[(&'static str, &'static str)]) {
        family.get_or_create(&borrowed(labels)).inc();
    }

    pub fn observe(family: &HistogramFamily, labels: &[(&'static str, &str)], value: f64) {
        family.get_or_create(&owned(labels)).observe(value);
    }

    /// [`Metrics::observe`] for labels fixed at compile time.
    pub fn observe_static(
        family: &HistogramFamily,
        labels: &[(&'static str, &'static str)],
        value: f64,
    ) {
        family.get_or_create(&borrowed(labels)).observe(value);
    }

    /// Records a finished `tools/call`: its duration and, for query tools, the size of
    /// what went back. `cluster` is the routed name (labelled through [`ClusterLabels`]).
    pub fn tool_call(&self, call: &ToolCallRecord<'_>) {
        let cluster = self.clusters.label(call.cluster);
        Self::observe(
            &self.tool_call_duration,
            &[
                ("tool", call.tool),
                ("cluster", &cluster),
                ("outcome", call.outcome),
            ],
            call.elapsed.as_secs_f64(),
        );
        Self::inc(
            &self.tool_calls,
            &[("tool", call.tool), ("outcome", call.outcome)],
        );
        if let Some((rows, bytes)) = call.returned {
            Self::observe(&self.tool_result_rows, &[("tool", call.tool)], rows as f64);
            Self::observe(
                &self.tool_result_bytes,
                &[("tool", call.tool)],
                bytes as f64,
            );
        }
    }

    /// Records one request to the broker by path; the outcome is the status class.
    pub fn oauth_request(&self, path: &str, status: u16, elapsed: Duration) {
        let step = match path {
            "/oauth/register" => "register",
            "/oauth/authorize" => "authorize",
            "/oauth/callback" => "callback",
            "/oauth/token" => "token",
            _ => "metadata",
        };
        Self::observe(
            &self.oauth_request_duration,
            &[("step", step), ("outcome", status_class(status))],
            elapsed.as_secs_f64(),
        );
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// A finished tool call as the metrics see it (tool is a catalog name).
pub struct ToolCallRecord<'a> {
    pub tool: &'a str,
    pub cluster: &'a str,
    pub outcome: &'static str,
    pub elapsed: Duration,
    /// Rows and JSON bytes returned, for tools that return query rows.
    pub returned: Option<(u64, u64)>,
}

/// Label pairs with their values owned (request-time values).
fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (*k, Cow::Owned(v.to_string())))
        .collect()
}

/// Label pairs with their values borrowed (compile-time values).
fn borrowed(labels: &[(&'static str, &'static str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (*k, Cow::Borrowed(*v)))
        .collect()
}

/// `ok` (2xx, and 3xx: the broker's redirects are its answers), `refused` (4xx),
/// `error` (5xx).
pub fn status_class(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        400..=499 => "refused",
        _ => "error",
    }
}

/// An OpenMetrics page as the classic Prometheus text format (0.0.4): a counter
/// family's `# HELP`/`# TYPE` name carries the `_total` its samples carry (OpenMetrics
/// names the family without it), and there is no `# EOF`. Everything else (histograms,
/// gauges, sample lines) reads the same in both formats.
pub fn classic_text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + 256);
    let mut lines = openmetrics.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let counter = lines
                .peek()
                .is_some_and(|next| *next == format!("# TYPE {name} counter"));
            if counter {
                lines.next();
                out.push_str(&format!(
                    "# HELP {name}_total {help}\n# TYPE {name}_total counter\n"
                ));
                continue;
            }
        } else if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|r| r.strip_suffix(" counter"))
        {
            out.push_str(&format!("# TYPE {name}_total counter\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_labels() {
        let m = Metrics::new();
        Metrics::inc(
            &m.tool_calls,
            &[("tool", "execute_query"), ("outcome", "ok")],
        );
        Metrics::observe(
            &m.tool_call_duration,
            &[
                ("tool", "run_query"),
                ("cluster", "default"),
                ("outcome", "ok"),
            ],
            0.01,
        );
        let text = m.render();
        assert!(
            text.contains("chmcp_tool_calls_total{tool=\"execute_query\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("chmcp_tool_call_duration_seconds_bucket{"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "chmcp_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.contains("chmcp_catalog_cache_entries 0"), "{text}");
        assert!(text.contains("chmcp_panics_total 0"), "{text}");
    }
}

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn borrowed_and_owned_label_values_count_into_one_series() {
        let m = Metrics::new();
        Metrics::inc_static(&m.mcp_requests, &[("method", "tools/list")]);
        let owned = String::from("tools/list");
        Metrics::inc(&m.mcp_requests, &[("method", owned.as_str())]);
        let text = m.render();
        assert!(
            text.contains("chmcp_mcp_requests_total{method=\"tools/list\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn cluster_label_is_a_configured_name_or_other() {
        let labels = ClusterLabels::new(["otel".to_string()]);
        assert_eq!(labels.label("otel"), "otel");
        assert_eq!(labels.label("default"), "default");
        assert_eq!(labels.label("anything-else"), "other");
        // An empty allow-list routes any valid name; none of them becomes a label.
        assert_eq!(ClusterLabels::default().label("attacker-chosen"), "other");
    }

    #[test]
    fn tool_call_records_duration_count_and_result_size() {
        let m = Metrics::with_clusters(ClusterLabels::new(["otel".to_string()]));
        m.tool_call(&ToolCallRecord {
            tool: "run_query",
            cluster: "nowhere",
            outcome: "ok",
            elapsed: Duration::from_millis(3),
            returned: Some((10, 500)),
        });
        let text = m.render();
        for line in [
            "chmcp_tool_call_duration_seconds_count{tool=\"run_query\",cluster=\"other\",outcome=\"ok\"} 1",
            "chmcp_tool_result_rows_sum{tool=\"run_query\"} 10.0",
            "chmcp_tool_result_bytes_sum{tool=\"run_query\"} 500.0",
            "chmcp_tool_calls_total{tool=\"run_query\",outcome=\"ok\"} 1",
        ] {
            assert!(text.contains(line), "missing {line}: {text}");
        }
    }

    #[test]
    fn broker_paths_become_steps_and_status_classes_outcomes() {
        let m = Metrics::new();
        m.oauth_request("/oauth/token", 400, Duration::from_millis(1));
        m.oauth_request("/.well-known/openid-configuration", 200, Duration::ZERO);
        let text = m.render();
        assert!(
            text.contains(
                "chmcp_oauth_request_duration_seconds_count{step=\"token\",outcome=\"refused\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "chmcp_oauth_request_duration_seconds_count{step=\"metadata\",outcome=\"ok\"} 1"
            ),
            "{text}"
        );
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counter_families_with_total_and_has_no_eof() {
        let m = Metrics::new();
        Metrics::inc(&m.tool_calls, &[("tool", "t"), ("outcome", "ok")]);
        let text = classic_text_format(&m.render());
        assert!(text.contains("# HELP chmcp_tool_calls_total Tool calls by tool and outcome.\n# TYPE chmcp_tool_calls_total counter\nchmcp_tool_calls_total{tool=\"t\",outcome=\"ok\"} 1\n"), "{text}");
        assert!(
            text.contains("# TYPE chmcp_tool_call_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE chmcp_build_info gauge\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("counter\n# TYPE"), "{text}");
    }
}

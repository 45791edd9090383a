//! Prometheus metrics, all prefixed `chmcp_` (gateway.md, Health, metrics, logs).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<Labels, Counter>,
    pub mcp_requests: Family<Labels, Counter>,
    pub tool_calls: Family<Labels, Counter>,
    pub query_duration: Family<Labels, Histogram>,
    pub catalog_entries: Gauge,
    pub catalog_denied_entries: Gauge,
    pub catalog_lookups: Family<Labels, Counter>,
    pub catalog_drops: Family<Labels, Counter>,
    pub catalog_discoveries: Family<Labels, Counter>,
    pub identity_probes: Family<Labels, Counter>,
    pub oauth_requests: Family<Labels, Counter>,
    /// Request handlers that panicked (a bug), each answered 500 or `-32603`.
    pub panics: Counter,
}

fn query_histogram() -> Histogram {
    // 1 ms .. ~65 s: a cached point lookup up to a full max_execution_time.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 17,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("chmcp");
        let m = Metrics {
            http_requests: Family::default(),
            mcp_requests: Family::default(),
            tool_calls: Family::default(),
            query_duration: Family::new_with_constructor(query_histogram),
            catalog_entries: Gauge::default(),
            catalog_denied_entries: Gauge::default(),
            catalog_lookups: Family::default(),
            catalog_drops: Family::default(),
            catalog_discoveries: Family::default(),
            identity_probes: Family::default(),
            oauth_requests: Family::default(),
            panics: Counter::default(),
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
            "clickhouse_query_duration_seconds",
            "ClickHouse query time by cluster",
            m.query_duration.clone(),
        );
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
            "panics",
            "Request handlers that panicked, answered with HTTP 500 or JSON-RPC -32603",
            m.panics.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn inc(family: &Family<Labels, Counter>, labels: &[(&'static str, &str)]) {
        family
            .get_or_create(&labels.iter().map(|(k, v)| (*k, v.to_string())).collect())
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
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
        m.query_duration
            .get_or_create(&vec![("cluster", "default".to_string())])
            .observe(0.01);
        let text = m.render();
        assert!(
            text.contains("chmcp_tool_calls_total{tool=\"execute_query\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("chmcp_clickhouse_query_duration_seconds_bucket{"),
            "{text}"
        );
        assert!(text.contains("chmcp_catalog_cache_entries 0"), "{text}");
        assert!(text.contains("chmcp_panics_total 0"), "{text}");
    }
}

//! The verifier's Prometheus metrics (OpenMetrics text on `/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::oauth::{FetchObserver, FetchOutcome};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The answer a request got, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    Allowed,
    Denied,
    Unauthorized,
    Unavailable,
}

impl RequestOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Unauthorized => "unauthorized",
            Self::Unavailable => "unavailable",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabel, Counter>,
    refusals: Family<ReasonLabel, Counter>,
    duration: Histogram,
    jwks_fetches: Family<OutcomeLabel, Counter>,
    cache_hits: Counter,
    cache_misses: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<OutcomeLabel, Counter>::default();
        let refusals = Family::<ReasonLabel, Counter>::default();
        // 20 µs (a cache hit) to ~5 s (an IdP round trip that times out).
        let duration = Histogram::new(exponential_buckets(0.00002, 2.0, 18));
        let jwks_fetches = Family::<OutcomeLabel, Counter>::default();
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        registry.register(
            "chmcp_verify_requests",
            "Verification requests by answer: allowed (200), denied (403), unauthorized (401), unavailable (503)",
            requests.clone(),
        );
        registry.register(
            "chmcp_verify_refusals",
            "Refused requests (401 and 403) by reason",
            refusals.clone(),
        );
        registry.register(
            "chmcp_verify_duration_seconds",
            "Time to answer one verification request",
            duration.clone(),
        );
        registry.register(
            "chmcp_verify_jwks_fetches",
            "Fetches of the IdP's JWKS by outcome",
            jwks_fetches.clone(),
        );
        registry.register(
            "chmcp_verify_cache_hits",
            "Verdicts answered from the result cache",
            cache_hits.clone(),
        );
        registry.register(
            "chmcp_verify_cache_misses",
            "Verdicts that needed a full verification",
            cache_misses.clone(),
        );
        // Every outcome shows from the start (at 0), so rate() and alerts work before
        // the first request of each kind.
        for outcome in [
            RequestOutcome::Allowed,
            RequestOutcome::Denied,
            RequestOutcome::Unauthorized,
            RequestOutcome::Unavailable,
        ] {
            let _ = requests.get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            });
        }
        for outcome in [FetchOutcome::Ok, FetchOutcome::Error] {
            let _ = jwks_fetches.get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            });
        }
        Self {
            registry,
            requests,
            refusals,
            duration,
            jwks_fetches,
            cache_hits,
            cache_misses,
        }
    }

    pub fn request(&self, outcome: RequestOutcome, reason: Option<&'static str>, seconds: f64) {
        self.requests
            .get_or_create(&OutcomeLabel {
                outcome: outcome.label(),
            })
            .inc();
        if let Some(reason) = reason {
            self.refusals.get_or_create(&ReasonLabel { reason }).inc();
        }
        self.duration.observe(seconds);
    }

    pub fn cache_lookup(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    /// For [`crate::oauth::JwksCache::with_observer`].
    pub fn jwks_observer(&self) -> FetchObserver {
        let fetches = self.jwks_fetches.clone();
        std::sync::Arc::new(move |outcome| {
            fetches
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.label(),
                })
                .inc();
        })
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an empty page is the worst case.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_page_has_the_documented_names() {
        let m = Metrics::new();
        m.request(RequestOutcome::Denied, Some("wrong_audience"), 0.001);
        m.cache_lookup(true);
        (m.jwks_observer())(FetchOutcome::Ok);
        let page = m.encode();
        for line in [
            "chmcp_verify_requests_total{outcome=\"denied\"} 1",
            "chmcp_verify_refusals_total{reason=\"wrong_audience\"} 1",
            "chmcp_verify_jwks_fetches_total{outcome=\"ok\"} 1",
            "chmcp_verify_cache_hits_total 1",
            "chmcp_verify_duration_seconds_count 1",
            "chmcp_verify_requests_total{outcome=\"allowed\"} 0",
            "chmcp_verify_jwks_fetches_total{outcome=\"error\"} 0",
        ] {
            assert!(page.contains(line), "{line} missing from:\n{page}");
        }
    }
}

//! What each endpoint's server can do for a pre-flight: whether it has `EXPLAIN
//! ESTIMATE` (21.x and later; 18.16 does not parse it). Learned by the gateway's own
//! probe (`EXPLAIN ESTIMATE SELECT 1`), never from a caller's query, and kept per
//! endpoint: it depends on the server version only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long what a probe learned is trusted (a server changes version on upgrade).
const ABILITIES_TTL: Duration = Duration::from_secs(600);
/// Bound on remembered endpoints; past it the map starts over.
const MAX_ENDPOINTS: usize = 10_000;

/// The probe's statement: the smallest query `EXPLAIN ESTIMATE` takes.
pub const ESTIMATE_PROBE: &str = "EXPLAIN ESTIMATE SELECT 1";

/// By `host:port`: whether `EXPLAIN ESTIMATE` works there, and since when that is known.
#[derive(Default)]
pub struct ServerAbilities {
    estimate: Mutex<HashMap<String, (Instant, bool)>>,
}

impl ServerAbilities {
    pub fn has_estimate(&self, endpoint: &str) -> Option<bool> {
        let map = self.estimate.lock().ok()?;
        let (at, has) = map.get(endpoint)?;
        (at.elapsed() < ABILITIES_TTL).then_some(*has)
    }

    pub fn remember_estimate(&self, endpoint: &str, has: bool) {
        if let Ok(mut map) = self.estimate.lock() {
            if map.len() >= MAX_ENDPOINTS {
                map.clear();
            }
            map.insert(endpoint.to_string(), (Instant::now(), has));
        }
    }
}

/// What the probe's failure says: a syntax error (62) or an unknown statement means the
/// server lacks `EXPLAIN ESTIMATE`; anything else (auth, network) says nothing.
pub fn lacks_estimate(e: &crate::clickhouse::ServerError) -> bool {
    matches!(e.code, Some(62 | 1 | 48)) && !e.is_auth_class()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clickhouse::ServerError;

    #[test]
    fn abilities_are_remembered_per_endpoint() {
        let a = ServerAbilities::default();
        assert_eq!(a.has_estimate("h:1"), None);
        a.remember_estimate("h:1", false);
        a.remember_estimate("h:2", true);
        assert_eq!(
            (a.has_estimate("h:1"), a.has_estimate("h:2")),
            (Some(false), Some(true))
        );
    }

    #[test]
    fn only_a_parse_refusal_means_no_estimate() {
        let old = ServerError::parse(400, "Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1: EXPLAIN ESTIMATE SELECT 1, e.what() = DB::Exception");
        assert!(lacks_estimate(&old));
        let auth = ServerError::parse(
            403,
            "Code: 516. DB::Exception: bad. (AUTHENTICATION_FAILED)",
        );
        assert!(!lacks_estimate(&auth));
    }
}

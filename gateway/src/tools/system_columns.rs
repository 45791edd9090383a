//! Which columns each endpoint's `system.<table>` has. They differ by server version,
//! not by user, so the listing tools and discovery read them once per endpoint and
//! table and share the answer for a while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a server's system-table layout is trusted (it changes only on upgrade).
const SYSTEM_COLUMNS_TTL: Duration = Duration::from_secs(600);

type SeenColumns = (Instant, Arc<Vec<String>>);

/// By (`host:port`, table), with when they were read.
#[derive(Default)]
pub struct SystemColumns {
    seen: Mutex<HashMap<(String, String), SeenColumns>>,
}

impl SystemColumns {
    /// What an endpoint's `system.<table>` columns were last seen to be, if recently.
    pub fn known(&self, endpoint: &str, table: &str) -> Option<Arc<Vec<String>>> {
        let map = self.seen.lock().ok()?;
        let (at, cols) = map.get(&(endpoint.to_string(), table.to_string()))?;
        (at.elapsed() < SYSTEM_COLUMNS_TTL).then(|| cols.clone())
    }

    /// Keeps what a caller saw, unless it saw nothing: every server's system tables have
    /// columns, so an empty list means this caller's grants hide them, and remembering it
    /// would blank the answer for every other caller until it expired.
    pub fn remember(&self, endpoint: &str, table: &str, cols: Vec<String>) -> Arc<Vec<String>> {
        let cols = Arc::new(cols);
        if cols.is_empty() {
            return cols;
        }
        if let Ok(mut map) = self.seen.lock() {
            map.insert(
                (endpoint.to_string(), table.to_string()),
                (Instant::now(), cols.clone()),
            );
        }
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_empty_view_is_not_shared_but_a_real_layout_is() {
        let seen = SystemColumns::default();
        // A caller whose grants hide system.columns reads nothing: not remembered.
        assert!(seen.remember("ch:8123", "tables", vec![]).is_empty());
        assert!(seen.known("ch:8123", "tables").is_none());
        // The next caller's real layout is.
        seen.remember("ch:8123", "tables", vec!["name".into(), "engine".into()]);
        let cols = seen.known("ch:8123", "tables").expect("remembered");
        assert_eq!(cols.as_slice(), ["name", "engine"]);
        // Per endpoint and table.
        assert!(seen.known("other:8123", "tables").is_none());
        assert!(seen.known("ch:8123", "columns").is_none());
    }
}

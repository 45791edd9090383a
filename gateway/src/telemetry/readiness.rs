//! Readiness: the configuration is loaded and, with static credentials, ClickHouse
//! answers. The answer is kept for a moment so probes do not each cost a query.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clickhouse::{ClickHouse, QueryOptions};
use crate::config::Config;
use crate::identity::{static_identity, Principal};

/// `/readyz` asks ClickHouse at most this often.
const READINESS_CACHE: Duration = Duration::from_secs(2);

/// The last readiness answer and when it was found; process-wide (`app::App`).
#[derive(Default)]
pub struct ReadinessCache {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl ReadinessCache {
    /// Ready, or why not. With OAuth on there are no credentials of the gateway's own
    /// to ask ClickHouse with, so loading the configuration is enough.
    pub async fn check(&self, config: &Config, ch: &ClickHouse) -> Result<(), String> {
        if config.server.oauth.enabled {
            return Ok(());
        }
        if let Ok(r) = self.last.lock() {
            if let Some((at, res)) = r.as_ref() {
                if at.elapsed() < READINESS_CACHE {
                    return res.clone();
                }
            }
        }
        let id = static_identity(config);
        let Principal::Static(creds) = &id.principal else {
            return Ok(());
        };
        let opts = QueryOptions {
            sql: "SELECT 1".into(),
            query_id: format!("chmcp-ready-{:016x}", fastrand::u64(..)),
            timeout: Duration::from_secs(3),
            cluster: id.cluster.clone(),
            ..Default::default()
        };
        let res = ch
            .query_all(&id.endpoint, creds, &opts, 1)
            .await
            .map(|_| ())
            .map_err(|e| format!("ClickHouse at {} does not answer: {e}", id.endpoint.key()));
        if let Ok(mut r) = self.last.lock() {
            *r = Some((Instant::now(), res.clone()));
        }
        res
    }
}

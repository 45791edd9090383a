//! `notifications/progress` for a tool call whose client sent a `progressToken`: the
//! HTTP edge answers with an event stream and puts a [`Reporter`] in the request's
//! task; while a query runs, [`watch`] polls `system.processes` by the query's id
//! (every server version has it; 18.16 has no progress format, and its progress
//! headers reach a client only when the body starts) and relays what grew.

use std::future::Future;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::clickhouse::sql::quote_string;
use crate::clickhouse::{ClickHouse, Credentials, Endpoint, QueryOptions};
use crate::telemetry::trace;

use super::budget::human;

/// How often a running query's progress is read, and so at most how often it is sent.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Where one request's progress notifications go.
#[derive(Clone)]
pub struct Reporter {
    token: Value,
    tx: mpsc::UnboundedSender<Value>,
}

tokio::task_local! {
    static REPORTER: Reporter;
}

impl Reporter {
    /// A reporter for `token` and the receiving end the response stream reads.
    pub fn new(token: Value) -> (Self, mpsc::UnboundedReceiver<Value>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { token, tx }, rx)
    }

    /// Runs `fut` with this reporter as the request's.
    pub fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        REPORTER.scope(self, fut)
    }

    fn send(&self, p: &Progress) {
        let _ = self.tx.send(notification(&self.token, p));
    }
}

/// The progress token of a request that asked for progress (`params._meta.progressToken`,
/// a string or an integer as MCP allows).
pub fn requested_token(params: Option<&Value>) -> Option<Value> {
    let t = params?.get("_meta")?.get("progressToken")?;
    (t.is_string() || t.is_i64() || t.is_u64()).then(|| t.clone())
}

/// One reading of a running query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub rows: u64,
    pub bytes: u64,
    /// ClickHouse's estimate of the rows to read, 0 when unknown.
    pub total_rows: u64,
}

/// The JSON-RPC notification for one reading.
pub fn notification(token: &Value, p: &Progress) -> Value {
    let mut params = serde_json::Map::new();
    params.insert("progressToken".into(), token.clone());
    params.insert("progress".into(), json!(p.rows));
    if p.total_rows >= p.rows && p.total_rows > 0 {
        params.insert("total".into(), json!(p.total_rows));
    }
    params.insert(
        "message".into(),
        json!(format!(
            "read {} rows, {} bytes",
            human(p.rows),
            human(p.bytes)
        )),
    );
    json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})
}

/// Whether a reading is worth sending: MCP wants progress to increase.
pub fn advanced(last: &Progress, now: &Progress) -> bool {
    now.rows > last.rows
}

/// What the query's poller needs to read `system.processes`.
pub struct Watched<'a> {
    pub ch: &'a ClickHouse,
    pub endpoint: &'a Endpoint,
    pub creds: &'a Credentials,
    pub query_id: &'a str,
}

/// Runs `query`, relaying its progress when the request has a reporter.
pub async fn watch<F: Future>(w: Watched<'_>, query: F) -> F::Output {
    let Ok(reporter) = REPORTER.try_with(Reporter::clone) else {
        return query.await;
    };
    let (ch, ep, creds) = (w.ch.clone(), w.endpoint.clone(), w.creds.clone());
    let sql = format!(
        "SELECT read_rows, read_bytes, total_rows_approx FROM system.processes WHERE query_id = {}",
        quote_string(w.query_id)
    );
    // Its own task (carrying the trace, not the call's facts): polling must never hold
    // up reading the result, and its queries are not the call's cost.
    let poller = tokio::spawn(trace::carry(async move {
        let mut last = Progress::default();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let opts = QueryOptions {
                sql: sql.clone(),
                query_id: format!("chmcp-progress-{:016x}", fastrand::u64(..)),
                timeout: POLL_INTERVAL * 4,
                ..Default::default()
            };
            let Ok((_, rows)) = ch.query_all(&ep, &creds, &opts, 1).await else {
                continue;
            };
            let Some(row) = rows.first() else { continue };
            let now = reading(row);
            if advanced(&last, &now) {
                reporter.send(&now);
                last = now;
            }
        }
    }));
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _poller = AbortOnDrop(poller);
    query.await
}

fn reading(row: &[Value]) -> Progress {
    let n = |i: usize| match row.get(i) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    };
    Progress {
        rows: n(0),
        bytes: n(1),
        total_rows: n(2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_carries_the_token_rows_and_a_total_only_when_known() {
        let p = Progress {
            rows: 1_500_000,
            bytes: 12_000_000,
            total_rows: 10_000_000,
        };
        let n = notification(&json!("tok"), &p);
        assert_eq!(n["method"], "notifications/progress");
        assert_eq!(n["params"]["progressToken"], "tok");
        assert_eq!(n["params"]["progress"], 1_500_000);
        assert_eq!(n["params"]["total"], 10_000_000);
        assert_eq!(n["params"]["message"], "read 1.5M rows, 12M bytes");
        let unknown = notification(&json!(7), &Progress { total_rows: 0, ..p });
        assert!(unknown["params"].get("total").is_none());
    }

    #[test]
    fn only_growing_progress_is_sent_and_tokens_are_strings_or_integers() {
        let a = Progress {
            rows: 10,
            ..Default::default()
        };
        assert!(!advanced(&a, &a));
        assert!(advanced(&a, &Progress { rows: 11, ..a }));
        assert_eq!(
            requested_token(Some(&json!({"_meta": {"progressToken": 3}}))),
            Some(json!(3))
        );
        assert_eq!(
            requested_token(Some(&json!({"_meta": {"progressToken": [1]}}))),
            None
        );
        assert_eq!(requested_token(Some(&json!({}))), None);
        assert_eq!(
            reading(&[json!("5"), json!(6), json!("7")]),
            Progress {
                rows: 5,
                bytes: 6,
                total_rows: 7
            }
        );
    }

    #[tokio::test]
    async fn a_scoped_reporter_receives_what_is_sent() {
        let (r, mut rx) = Reporter::new(json!("t"));
        r.clone()
            .scope(async {
                REPORTER.with(|r| {
                    r.send(&Progress {
                        rows: 1,
                        ..Default::default()
                    })
                });
            })
            .await;
        let got = rx.recv().await.expect("one notification");
        assert_eq!(got["params"]["progress"], 1);
    }
}

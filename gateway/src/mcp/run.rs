//! Running one MCP request, for both transports: the entry below the edge. HTTP
//! (`http::transport`) and stdio (`mcp::stdio`) hand a classified request to
//! [`answer_request`] inside [`contain_panics`], and run it with [`run_cancellable`] so
//! `notifications/cancelled` can stop it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;

use futures::FutureExt;
use serde_json::Value;

use super::dispatch::{answer_cluster, method_label, Answer, RpcError, REQUEST_CANCELLED};
use super::protocol::{self, Era};
use crate::app::{App, Generation};
use crate::identity::RequestIdentity;
use crate::inflight::Inflight;
use crate::telemetry::Metrics;

/// Answers one request: counted and timed by method, on the fleet connector or one
/// cluster's endpoint. Tool failures are results (`isError`), never errors here.
///
/// The answer's future holds every step below (dispatch, the catalog, the tool, the
/// ClickHouse request) and is tens of kilobytes: it is built on the heap once, so the
/// transports and their wrappers (panic guard, cancellation, the handler) move a
/// pointer instead of copying it at each step (bench/cpu_per_call.sh, docs/decisions.md
/// "Hop cost").
pub fn answer_request<'a>(
    app: &'a App,
    generation: &'a Generation,
    id: &'a RequestIdentity,
    era: Era,
    method: &'a str,
    params: &'a Option<Value>,
) -> Pin<Box<impl Future<Output = Result<Answer, RpcError>> + Send + 'a>> {
    Box::pin(async move {
        let method_label = method_label(method);
        Metrics::inc_static(&app.metrics.mcp_requests, &[("method", method_label)]);
        let started = std::time::Instant::now();
        // What the domain may borrow, lent once for the whole request.
        let env = app.tool_env(generation);
        let answer = if id.is_fleet() {
            // Boxed: the fleet's future (all clusters' lookups) is large; the cluster path's
            // is kept small, so the common request does not carry the fleet's size.
            Box::pin(super::fleet::answer_fleet(
                app, &env, id, era, method, params,
            ))
            .await
        } else {
            answer_cluster(app, &env, id, era, method, params).await
        };
        Metrics::observe_static(
            &app.metrics.mcp_request_duration,
            &[
                ("method", method_label),
                ("outcome", if answer.is_ok() { "ok" } else { "error" }),
            ],
            started.elapsed().as_secs_f64(),
        );
        answer
    })
}

/// Runs the handling of one request so that a panic inside it (a bug) becomes a
/// JSON-RPC internal error for that request, counted in `chmcp_panics_total`, instead
/// of a dropped connection (HTTP) or a request never answered (stdio).
pub async fn contain_panics<F>(metrics: &Metrics, work: F) -> Result<Answer, RpcError>
where
    F: Future<Output = Result<Answer, RpcError>>,
{
    // AssertUnwindSafe: what requests share sits behind locks whose poisoning every
    // user tolerates, so an unwound request leaves no state that others misread.
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(_) => {
            metrics.panics.inc();
            Err(RpcError::new(
                protocol::INTERNAL_ERROR,
                "Internal error: the gateway failed while handling this request",
            ))
        }
    }
}

/// Runs `work` as request `id` of the caller `scope` (request ids are unique only per
/// caller) until it finishes or `notifications/cancelled` names it. Dropping `work`
/// (cancellation, or the client hanging up and the transport dropping this future)
/// kills any ClickHouse query it started.
pub async fn run_cancellable<F>(
    inflight: &Inflight,
    scope: Option<&str>,
    id: &Value,
    work: F,
) -> Result<Answer, RpcError>
where
    F: Future<Output = Result<Answer, RpcError>>,
{
    let mut guard = inflight.register(scope, &id.to_string());
    let cancelled = guard.cancelled.take();
    match cancelled {
        Some(rx) => tokio::select! {
            r = work => r,
            Ok(()) = rx => Err(RpcError::new(REQUEST_CANCELLED, "Request cancelled")),
        },
        None => work.await,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_panicking_request_is_an_internal_error_and_counted() {
        let metrics = Metrics::new();
        // A stand-in for a handler with a bug.
        let panicking = async { panic!("handler bug") as Result<Answer, RpcError> };
        let r = contain_panics(&metrics, panicking).await;
        assert_eq!(r.map_err(|e| e.code).err(), Some(protocol::INTERNAL_ERROR));
        assert_eq!(metrics.panics.get(), 1);
        let fine = contain_panics(&metrics, async { Ok(Answer::Json(json!({}))) }).await;
        assert!(fine.is_ok());
        assert_eq!(metrics.panics.get(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_request_stops_and_a_finished_one_unregisters() {
        let inflight = Inflight::default();
        let never = std::future::pending::<Result<Answer, RpcError>>();
        let id = json!(7);
        let run = run_cancellable(&inflight, Some("caller"), &id, never);
        let cancel = async {
            tokio::task::yield_now().await;
            assert_eq!(inflight.cancel(Some("caller"), "7"), 1);
        };
        let (r, ()) = tokio::join!(run, cancel);
        assert_eq!(r.map_err(|e| e.code).err(), Some(REQUEST_CANCELLED));
        let done = run_cancellable(&inflight, Some("caller"), &json!(8), async {
            Ok(Answer::Json(json!({})))
        })
        .await;
        assert!(done.is_ok());
        assert_eq!(
            inflight.cancel(Some("caller"), "8"),
            0,
            "a finished request is gone"
        );
    }
}

/// The request's future is moved (copied whole) each time a wrapper takes it, and a
/// future is as large as its largest state: the rare, large paths (discovery, the fleet,
/// resources and prompts) are boxed where they start so the common request stays small
/// (docs/decisions.md, "Hop cost"). Sizes from a debug build; before the boxing they were
/// about 10 KiB each.
#[cfg(test)]
mod future_size {
    use super::*;
    use crate::catalog::catalog_for;
    use crate::config::Config;

    const SMALL: usize = 4096;

    #[test]
    fn the_request_future_and_the_catalog_lookup_stay_small() {
        let app = App::new(Config::default(), Default::default(), None).expect("app");
        let generation = app.generation();
        let id = generation.static_identity.clone();
        let params = None;
        let request = answer_request(
            &app,
            &generation,
            &id,
            Era::Initialize,
            "tools/list",
            &params,
        );
        let env = app.tool_env(&generation);
        let creds = env.credentials(&id);
        let lookup = catalog_for(&env, &creds);
        let sizes = [
            ("answer_request", std::mem::size_of_val(&*request)),
            ("catalog_for", std::mem::size_of_val(&lookup)),
        ];
        for (name, size) in sizes {
            assert!(
                size < SMALL,
                "{name}'s future is {size} bytes (limit {SMALL})"
            );
        }
    }
}

//! The observing steps: every request loads its configuration generation and gets a
//! span, every answer is counted by route template and status, a panicking handler (a
//! bug) is turned into an answer; an MCP message continues its client's trace.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Extension;
use futures::FutureExt;
use serde_json::json;
use tracing::Instrument;

use crate::app::{App, Generation};
use crate::mcp::Incoming;
use crate::reply::json_response;
use crate::routing::{Cluster, Route, RoutedCluster};
use crate::telemetry::trace::{self, TraceContext};
use crate::telemetry::Metrics;

/// Step "generation": the request sees the configuration generation current when it
/// arrived, from start to end, however many reloads land meanwhile.
pub async fn load_generation(
    State(app): State<Arc<App>>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().insert(app.generation());
    next.run(req).await
}

/// Step "span": every log line of a request carries its method and path.
pub async fn trace_request(req: Request, next: Next) -> Response {
    // `?`: the path is request text, logged escaped.
    let span = tracing::info_span!("request", method = %req.method(), path = ?req.uri().path());
    next.run(req).instrument(span).await
}

/// A panic in any handler (a bug) is answered, never a dropped connection: a JSON-RPC
/// internal error on MCP routes, a plain 500 elsewhere, and `chmcp_panics_total` counts
/// it. (MCP request handling has its own guard that answers with the request's id.)
pub async fn catch_panics(
    State(app): State<Arc<App>>,
    Extension(generation): Extension<Arc<Generation>>,
    req: Request,
    next: Next,
) -> Response {
    let mcp_label = match Route::of(
        req.uri().path(),
        &generation.config.multicluster,
        &app.allowlist,
    ) {
        Route::Mcp(Cluster::Named(_)) => Some("/mcp/{cluster}"),
        Route::Mcp(Cluster::Implicit | Cluster::Fleet) => Some("/mcp"),
        _ => None,
    };
    // AssertUnwindSafe: shared state sits behind locks whose poisoning every user
    // tolerates, so an unwound handler leaves nothing that later requests misread.
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(response) => response,
        Err(_) => {
            app.metrics.panics.inc();
            match mcp_label {
                Some(label) => labelled(
                    json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &json!({"jsonrpc": "2.0", "id": null, "error": {"code": crate::mcp::protocol::INTERNAL_ERROR, "message": "Internal error"}}),
                    ),
                    label,
                ),
                None => json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"error": "internal_error", "error_description": "the gateway failed while handling this request"}),
                ),
            }
        }
    }
}

/// The route template a response is counted under (paths carry cluster names).
#[derive(Clone, Copy)]
struct RouteLabel(&'static str);

pub fn labelled(mut r: Response, label: &'static str) -> Response {
    r.extensions_mut().insert(RouteLabel(label));
    r
}

/// Counts every HTTP answer by route template and status.
pub async fn count_requests(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let response = next.run(req).await;
    let route = match response.extensions().get::<RouteLabel>() {
        Some(RouteLabel(l)) => l.to_string(),
        None => matched.unwrap_or_else(|| "unmatched".into()),
    };
    Metrics::inc(
        &app.metrics.http_requests,
        &[("route", &route), ("status", response.status().as_str())],
    );
    response
}

/// Step "trace" of the MCP endpoint: the request's trace context, continued from the
/// client's (`params._meta.traceparent`, else the `traceparent` header) when it sent
/// one, and the root span of the MCP request when tracing is on. Everything after it,
/// the gate included, runs inside; with tracing off only the context is carried, so
/// ClickHouse still continues the client's trace (`telemetry::trace`).
pub async fn trace_message(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let message = match req.extensions().get::<Incoming>() {
        Some(Incoming::Request { id, method, params }) => Some((id, method, params)),
        _ => None,
    };
    let incoming = message
        .and_then(|(_, _, params)| trace::meta_context(params.as_ref()))
        .or_else(|| {
            req.headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(TraceContext::parse)
        });
    // The span's name and attributes only when spans are recorded: with tracing off
    // nothing is built (the request borrowed here moves on below).
    let described = app.tracer.is_some().then(|| {
        let (name, mut attributes) = match message {
            Some((id, method, params)) => trace::request_span(id, method, params.as_ref()),
            None => ("mcp notification".to_string(), Vec::new()),
        };
        let cluster = req
            .extensions()
            .get::<RoutedCluster>()
            .and_then(|r| match r {
                RoutedCluster::Named(n) => Some(n.clone()),
                RoutedCluster::Fleet => Some(crate::routing::FLEET_CLUSTER.to_string()),
                RoutedCluster::Implicit => None,
            });
        if let Some(c) = cluster {
            attributes.push(("chmcp.cluster", c.into()));
        }
        (name, attributes)
    });
    let describe = move || described.unwrap_or_default();
    trace::in_request(app.tracer.as_ref(), incoming, describe, async {
        let r = next.run(req).await;
        trace::set("http.response.status_code", u64::from(r.status().as_u16()));
        r
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::middleware;
    use axum::routing::{get, post};
    use axum::Router;

    /// Serves `routes` behind the panic guard on a loopback port; returns its base URL.
    async fn serve_guarded(app: Arc<App>, routes: Router<Arc<App>>) -> String {
        let router = routes
            .layer(middleware::from_fn_with_state(app.clone(), catch_panics))
            .layer(middleware::from_fn_with_state(app.clone(), load_generation))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_and_counted() {
        let app = Arc::new(App::new(Default::default(), Default::default(), None).unwrap());
        // Test fixtures: handlers with a bug, one on an MCP path and one elsewhere.
        let routes = Router::new()
            .route(
                "/mcp",
                post(|| async { panic!("handler bug") as &'static str }),
            )
            .route(
                "/livez",
                get(|| async { panic!("handler bug") as &'static str }),
            );
        let base = serve_guarded(app.clone(), routes).await;
        let http = reqwest::Client::new();

        let r = http.post(format!("{base}/mcp")).send().await.unwrap();
        assert_eq!(r.status(), 500);
        let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], crate::mcp::protocol::INTERNAL_ERROR);
        assert_eq!(body["jsonrpc"], "2.0");

        let r = http.get(format!("{base}/livez")).send().await.unwrap();
        assert_eq!(r.status(), 500);
        let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(body["error"], "internal_error");

        assert_eq!(app.metrics.panics.get(), 2);
        assert!(app.metrics.render().contains("chmcp_panics_total 2"));
    }
}

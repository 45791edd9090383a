//! The request-level telemetry steps of the pipeline: counting every answer by route
//! template and status, and turning a panicking handler (a bug) into an answer.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Extension;
use futures::FutureExt;
use serde_json::json;

use super::Metrics;
use crate::app::{App, Runtime};
use crate::reply::json_response;
use crate::routing::{Cluster, Route};

/// A panic in any handler (a bug) is answered, never a dropped connection: a JSON-RPC
/// internal error on MCP routes, a plain 500 elsewhere, and `chmcp_panics_total` counts
/// it. (MCP request handling has its own guard that answers with the request's id.)
pub async fn catch_panics(
    State(app): State<Arc<App>>,
    Extension(rt): Extension<Arc<Runtime>>,
    req: Request,
    next: Next,
) -> Response {
    let mcp_label = match Route::of(req.uri().path(), &rt.config.multicluster, &app.allowlist) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::middleware;
    use axum::routing::{get, post};
    use axum::Router;

    use crate::pipeline::load_runtime;

    /// Serves `routes` behind the panic guard on a loopback port; returns its base URL.
    async fn serve_guarded(app: Arc<App>, routes: Router<Arc<App>>) -> String {
        let router = routes
            .layer(middleware::from_fn_with_state(app.clone(), catch_panics))
            .layer(middleware::from_fn_with_state(app.clone(), load_runtime))
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

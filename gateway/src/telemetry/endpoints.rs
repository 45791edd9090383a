//! The operational endpoints: `/readyz`, `/health` and `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;

use crate::app::{App, Runtime};
use crate::reply::json_response;

pub async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.readiness().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

pub async fn health(
    State(app): State<Arc<App>>,
    Extension(rt): Extension<Arc<Runtime>>,
) -> Response {
    let ready = app.readiness().await;
    let stats = app.catalogs.stats();
    let body = json!({
        "status": if ready.is_ok() { "ok" } else { "degraded" },
        "ready": ready.is_ok(),
        "reason": ready.err(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "mode": if rt.config.multicluster.enabled { "multi-cluster" } else { "single-cluster" },
        "catalog_cache": stats,
        "identity_probes": app.prober.probe_counts().iter().map(|p| json!({
            "endpoint": p.endpoint, "method": p.method.as_str(), "outcome": p.outcome.as_str(), "count": p.count,
        })).collect::<Vec<_>>(),
    });
    json_response(StatusCode::OK, &body)
}

pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut r = app.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

pub fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "not_found", "error_description": "No such endpoint. MCP is served at /mcp"}),
    )
}

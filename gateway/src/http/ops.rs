//! The operational endpoints: `/livez`, `/readyz`, `/health` and `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;

use crate::app::{App, Generation};
use crate::reply::json_response;
use crate::telemetry::metrics::classic_text_format;

/// `/livez`: the process answers.
pub async fn livez() -> &'static str {
    "ok"
}

pub async fn readyz(
    State(app): State<Arc<App>>,
    Extension(generation): Extension<Arc<Generation>>,
) -> Response {
    match readiness(&app, &generation).await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

pub async fn health(
    State(app): State<Arc<App>>,
    Extension(generation): Extension<Arc<Generation>>,
) -> Response {
    let ready = readiness(&app, &generation).await;
    let stats = app.catalogs.stats();
    let body = json!({
        "status": if ready.is_ok() { "ok" } else { "degraded" },
        "ready": ready.is_ok(),
        "reason": ready.err(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        // The threads serving requests (`server.worker_threads`, or one per CPU).
        "worker_threads": tokio::runtime::Handle::try_current().ok().map(|h| h.metrics().num_workers()),
        "mode": if generation.config.multicluster.enabled { "multi-cluster" } else { "single-cluster" },
        "catalog_cache": stats,
        "identity_probes": app.prober.probe_counts().iter().map(|p| json!({
            "endpoint": p.endpoint, "method": p.method.as_str(), "outcome": p.outcome.as_str(), "count": p.count,
        })).collect::<Vec<_>>(),
    });
    json_response(StatusCode::OK, &body)
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), else the classic
/// Prometheus text format (curl, `promtool check metrics`), as Prometheus' own client
/// libraries negotiate.
pub async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let page = app.metrics.render();
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = if openmetrics {
        (
            page,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            classic_text_format(&page),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Readiness, through the process's [`crate::telemetry::readiness::ReadinessCache`].
async fn readiness(app: &App, generation: &Generation) -> Result<(), String> {
    app.readiness
        .check(&generation.config, &generation.ch)
        .await
}

/// The answer to a path nothing serves (outside the MCP endpoint's own 404).
pub fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "not_found", "error_description": "No such endpoint. MCP is served at /mcp"}),
    )
}

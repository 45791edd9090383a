//! The operational endpoints: `/readyz`, `/health` and `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::json;

use crate::app::{App, Runtime};
use crate::identity::{static_identity, Principal};
use crate::reply::json_response;
use crate::telemetry::metrics::classic_text_format;

pub async fn readyz(
    State(app): State<Arc<App>>,
    Extension(rt): Extension<Arc<Runtime>>,
) -> Response {
    match readiness(&app, &rt).await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

pub async fn health(
    State(app): State<Arc<App>>,
    Extension(rt): Extension<Arc<Runtime>>,
) -> Response {
    let ready = readiness(&app, &rt).await;
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

/// `/readyz` asks ClickHouse at most this often.
const READINESS_CACHE: Duration = Duration::from_secs(2);

/// Readiness: configuration loaded and, with static credentials, ClickHouse answers.
pub async fn readiness(app: &App, rt: &Runtime) -> Result<(), String> {
    if rt.config.server.oauth.enabled {
        return Ok(());
    }
    if let Ok(r) = app.readiness.lock() {
        if let Some((at, res)) = r.as_ref() {
            if at.elapsed() < READINESS_CACHE {
                return res.clone();
            }
        }
    }
    let id = static_identity(&rt.config);
    let Principal::Static(creds) = &id.principal else {
        return Ok(());
    };
    let opts = crate::clickhouse::QueryOptions {
        sql: "SELECT 1".into(),
        query_id: format!("chmcp-ready-{:016x}", fastrand::u64(..)),
        timeout: Duration::from_secs(3),
        cluster: id.cluster.clone(),
        ..Default::default()
    };
    let res = rt
        .ch
        .query_all(&id.endpoint, creds, &opts, 1)
        .await
        .map(|_| ())
        .map_err(|e| format!("ClickHouse at {} does not answer: {e}", id.endpoint.key()));
    if let Ok(mut r) = app.readiness.lock() {
        *r = Some((Instant::now(), res.clone()));
    }
    res
}

pub fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "not_found", "error_description": "No such endpoint. MCP is served at /mcp"}),
    )
}

//! `chmcp-gateway serve`: wires configuration, telemetry and transports together, and
//! owns the process lifecycle (reload on SIGHUP, graceful stop on SIGTERM).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::json;

use crate::app::{App, RequestIdentity};
use crate::clickhouse::{Credentials, Endpoint};
use crate::config::{LoadOptions, Secret, Transport};
use crate::mcp::http::{json_response, serve_mcp, IdentityResult};
use crate::telemetry::{logging, Metrics};
use crate::tools::Caller;

/// In-flight requests get this long to finish after SIGTERM (gateway.md).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often the config file is checked when `watch: true`.
const WATCH_EVERY: Duration = Duration::from_secs(2);

pub fn main(opts: LoadOptions) -> anyhow::Result<()> {
    let loaded = crate::config::load(&opts)?;
    let log = logging::init(&loaded.config.logging);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let transport = loaded.config.server.transport;
        let app = Arc::new(App::new(loaded.config, opts, Some(log))?);
        spawn_reloaders(app.clone());
        match transport {
            Transport::Stdio => crate::mcp::stdio::run(app).await,
            Transport::Http => serve_http(app).await,
        }
    })
}

async fn serve_http(app: Arc<App>) -> anyhow::Result<()> {
    let rt = app.runtime();
    let addr = format!("{}:{}", rt.config.server.address, rt.config.server.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| anyhow::anyhow!("server.address/server.port: cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, url = %format!("http://{local}/mcp"), "chmcp gateway listening");
    let router = router(app.clone())?;
    axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

pub fn router(app: Arc<App>) -> anyhow::Result<Router> {
    let mut routes = Router::new();
    let oauth = app.runtime().config.server.oauth.clone();
    if oauth.enabled && oauth.broker {
        // Broker mode (oauth.md): the OAuth routes; built once, so `oauth.*` broker keys
        // take effect on restart.
        let serves = crate::oauth::broker::single_cluster_resources(&oauth);
        let broker = crate::oauth::broker::BrokerState::new(&oauth, app.metrics.oauth_requests.clone(), serves)?;
        routes = routes.merge(crate::oauth::broker::routes(Arc::new(broker)));
    }
    Ok(routes
        .route("/mcp", any(mcp_single))
        .route("/mcp/", any(mcp_single))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), count_requests))
        .with_state(app))
}

async fn mcp_single(State(app): State<Arc<App>>, method: Method, headers: HeaderMap, body: Body) -> Response {
    let app2 = app.clone();
    serve_mcp(app, method, headers, body, move |h| identify_single(&app2, h)).await
}

/// Single-cluster identity: static credentials, or (OAuth on) the caller's bearer.
fn identify_single(app: &App, headers: &HeaderMap) -> IdentityResult {
    let rt = app.runtime();
    if !rt.config.server.oauth.enabled {
        return Ok(app.static_identity(&rt));
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = bearer else {
        let mut r = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "invalid_token", "error_description": "Sign in: this server needs an OAuth bearer token"}),
        );
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\", error_description=\"missing bearer token\""));
        return Err(r);
    };
    let c = &rt.config.clickhouse;
    Ok(RequestIdentity {
        cluster: crate::app::DEFAULT_CLUSTER.into(),
        endpoint: Endpoint::from_config(c),
        creds: Credentials::Bearer(Secret::new(token)),
        caller: Caller { subject: crate::telemetry::token_tag(token), email: None },
        roles: Vec::new(),
        catalog_key: crate::telemetry::token_tag(token),
    })
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.readiness().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let rt = app.runtime();
    let ready = app.readiness().await;
    let m = &app.metrics;
    let body = json!({
        "status": if ready.is_ok() { "ok" } else { "degraded" },
        "ready": ready.is_ok(),
        "reason": ready.err(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "mode": if rt.config.multicluster.enabled { "multi-cluster" } else { "single-cluster" },
        "catalog_cache": {
            "entries": m.catalog_entries.get(),
            "denied_entries": m.catalog_denied_entries.get(),
        },
    });
    json_response(StatusCode::OK, &body)
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut r = app.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found", "error_description": "No such endpoint. MCP is served at /mcp"}))
}

/// Counts every HTTP answer by route template and status.
async fn count_requests(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    Metrics::inc(&app.metrics.http_requests, &[("route", &route), ("status", response.status().as_str())]);
    response
}

async fn shutdown_signal() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests (up to {}s)", SHUTDOWN_GRACE.as_secs());
    tokio::spawn(async {
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        tracing::warn!("in-flight requests did not finish within {}s; exiting", SHUTDOWN_GRACE.as_secs());
        std::process::exit(0);
    });
}

/// SIGHUP, and (with `watch: true`) file changes, reload the configuration.
fn spawn_reloaders(app: Arc<App>) {
    #[cfg(unix)]
    {
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                reload(&app, "SIGHUP");
            }
        });
    }
    if app.runtime().config.watch {
        if let Some(path) = app.config_path() {
            tokio::spawn(async move {
                let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                let mut last = mtime(&path);
                loop {
                    tokio::time::sleep(WATCH_EVERY).await;
                    let now = mtime(&path);
                    if now != last {
                        last = now;
                        reload(&app, "file change");
                    }
                }
            });
        }
    }
}

fn reload(app: &App, cause: &str) {
    match app.reload() {
        Ok(restart_only) => {
            if restart_only.is_empty() {
                tracing::info!(cause, "configuration reloaded");
            } else {
                tracing::warn!(cause, keys = %restart_only.join(", "), "configuration reloaded, but these keys only change on restart; their running values stay");
            }
        }
        Err(e) => tracing::error!(cause, error = %e, "configuration reload rejected; the previous configuration keeps serving"),
    }
}

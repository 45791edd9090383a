//! `chmcp-gateway serve`: wires configuration, telemetry and transports together, and
//! owns the process lifecycle (reload on SIGHUP, graceful stop on SIGTERM).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Uri;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures::FutureExt;
use serde_json::json;
use tower::ServiceExt;

use crate::app::{App, Runtime};
use crate::config::{LoadOptions, Transport};
use crate::mcp::http::{json_response, serve_mcp};
use crate::oauth::gate::GateRejection;
use crate::oauth::metadata::{protected_resource_metadata, MetadataSubject};
use crate::routing::{not_found_body, Cluster, Route};
use crate::telemetry::{logging, Metrics};

/// In-flight requests get this long to finish after SIGTERM (gateway.md).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often the config file is checked when `watch: true`.
const WATCH_EVERY: Duration = Duration::from_secs(2);

pub fn main(opts: LoadOptions) -> anyhow::Result<()> {
    let loaded = crate::config::load(&opts)?;
    let log = logging::init(&loaded.config.logging);
    logging::log_panics();
    for w in &loaded.warnings {
        tracing::warn!(warning = ?w, "configuration warning");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let transport = loaded.config.server.transport;
        let app = Arc::new(App::new(loaded.config, opts, Some(log))?);
        spawn_reloaders(app.clone());
        crate::catalog::CatalogCache::spawn_sweeper(app.catalogs.clone());
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
    let limits = crate::listener::ConnectionLimits::from_config(&rt.config.server);
    crate::listener::serve(listener, router, limits, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

pub fn router(app: Arc<App>) -> anyhow::Result<Router> {
    let mut routes = Router::new();
    // The broker's paths are always routed; the current configuration generation
    // decides whether a broker answers them, so OAuth settings change on reload.
    for path in crate::oauth::broker::PATHS {
        routes = routes.route(path, any(broker));
    }
    Ok(routes
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        // MCP endpoints and their metadata are routed by `routing::Route`, which owns
        // the cluster-name rules (and the 404-before-auth policy).
        .fallback(mcp_routes)
        // Innermost first: a panic becomes a 500 before it is counted.
        .layer(middleware::from_fn_with_state(app.clone(), catch_panics))
        .layer(middleware::from_fn_with_state(app.clone(), count_requests))
        .with_state(app))
}

/// A broker path: answered by this generation's broker, or 404 outside broker mode.
async fn broker(State(app): State<Arc<App>>, req: Request) -> Response {
    let Some(broker) = app.runtime().broker.clone() else {
        return not_found().await;
    };
    match broker.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// Which MCP route a path is, by the mode's rules (`routing::Route`).
fn route_of<'a>(app: &App, rt: &Runtime, path: &'a str) -> Route<'a> {
    if rt.config.multicluster.enabled {
        Route::parse_multi(path, &app.allowlist)
    } else {
        Route::parse_single(path)
    }
}

/// A panic in any handler (a bug) is answered, never a dropped connection: a JSON-RPC
/// internal error on MCP routes, a plain 500 elsewhere, and `chmcp_panics_total` counts
/// it. (MCP request handling has its own guard that answers with the request's id.)
async fn catch_panics(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mcp_label = match route_of(&app, &app.runtime(), req.uri().path()) {
        Route::Mcp(Cluster::Named(_)) => Some("/mcp/{cluster}"),
        Route::Mcp(Cluster::Implicit) => Some("/mcp"),
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

fn labelled(mut r: Response, label: &'static str) -> Response {
    r.extensions_mut().insert(RouteLabel(label));
    r
}

async fn mcp_routes(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let rt = app.runtime();
    let multi = rt.config.multicluster.enabled;
    let route = route_of(&app, &rt, uri.path());
    let oauth = rt.config.server.oauth.enabled;
    match route {
        Route::Mcp(cluster) => {
            let label = if multi { "/mcp/{cluster}" } else { "/mcp" };
            let name = cluster.name().to_string();
            let app2 = app.clone();
            let r = serve_mcp(app, method, headers, body, move |h| async move {
                let rt = app2.runtime();
                if !rt.config.server.oauth.enabled {
                    return Ok(app2.static_identity(&rt));
                }
                let cluster = if name.is_empty() {
                    Cluster::Implicit
                } else {
                    Cluster::Named(&name)
                };
                app2.identify(&rt, &h, cluster)
                    .await
                    .map_err(|g| Box::new(gate_response(g)))
            })
            .await;
            labelled(r, label)
        }
        Route::ResourceMetadata(cluster) if oauth => metadata_response(
            &rt,
            &headers,
            MetadataSubject::Resource(cluster),
            "/.well-known/oauth-protected-resource/mcp",
        ),
        Route::RootMetadata if oauth => metadata_response(
            &rt,
            &headers,
            MetadataSubject::Root,
            "/.well-known/oauth-protected-resource",
        ),
        Route::NotFound | Route::ResourceMetadata(_) | Route::RootMetadata => labelled(
            json_response(StatusCode::NOT_FOUND, &not_found_body()),
            "not_found",
        ),
        Route::Other => labelled(not_found().await, "unmatched"),
    }
}

/// A protected-resource metadata document, its URLs built from the serving host.
fn metadata_response(
    rt: &Runtime,
    headers: &HeaderMap,
    subject: MetadataSubject<'_>,
    label: &'static str,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let doc = protected_resource_metadata(&rt.config.server.oauth, "http", host, subject);
    labelled(json_response(StatusCode::OK, &doc.to_json()), label)
}

fn gate_response(g: GateRejection) -> Response {
    let mut r = json_response(g.status_code(), &g.body);
    if let Ok(v) = HeaderValue::from_str(&g.www_authenticate) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
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
    let stats = app.sync_metrics();
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

async fn metrics(State(app): State<Arc<App>>) -> Response {
    app.sync_metrics();
    let mut r = app.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": "not_found", "error_description": "No such endpoint. MCP is served at /mcp"}),
    )
}

/// Counts every HTTP answer by route template and status.
async fn count_requests(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
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

async fn shutdown_signal() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!(
        "shutting down: finishing in-flight requests (up to {}s)",
        SHUTDOWN_GRACE.as_secs()
    );
    tokio::spawn(async {
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        tracing::warn!(
            "in-flight requests did not finish within {}s; exiting",
            SHUTDOWN_GRACE.as_secs()
        );
        std::process::exit(0);
    });
}

/// SIGHUP, and (with `watch: true`) file changes, reload the configuration.
fn spawn_reloaders(app: Arc<App>) {
    #[cfg(unix)]
    {
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                reload(&app, "SIGHUP");
            }
        });
    }
    if app.runtime().config.watch {
        if let Some(path) = app.config_path() {
            tokio::spawn(async move {
                let mtime =
                    |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
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
        Err(e) => {
            tracing::error!(cause, error = ?e, "configuration reload rejected; the previous configuration keeps serving")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;

    /// Serves `routes` behind the panic guard on a loopback port; returns its base URL.
    async fn serve_guarded(app: Arc<App>, routes: Router<Arc<App>>) -> String {
        let router = routes
            .layer(middleware::from_fn_with_state(app.clone(), catch_panics))
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

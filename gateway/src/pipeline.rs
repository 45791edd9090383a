//! The request pipeline, declared in one place: every HTTP request passes the same
//! stack of steps, outermost first, and an MCP request continues through the steps of
//! the MCP endpoint. Each step is a layer in the module that owns its concern, and it
//! hands what it decided to later steps through the request's extensions; nothing
//! calls back up. The layers are the gateway's own (not `tower-http`'s CORS, limit or
//! trace layers) because their settings come from the configuration generation the
//! request loaded, so they follow reloads (docs/decisions.md).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::Response;
use axum::routing::{any, get};
use axum::{Extension, Router};
use tower::{ServiceBuilder, ServiceExt};
use tracing::Instrument;

use crate::app::{App, Runtime};
use crate::identity::resolve::require_identity;
use crate::mcp::http::{allow_methods, answer, check_origin, json_response, read_message};
use crate::oauth::metadata::{protected_resource_metadata, MetadataSubject};
use crate::routing::{not_found_body, Route, RoutedCluster};
use crate::telemetry::endpoints::{health, metrics, not_found, readyz};
use crate::telemetry::http::{catch_panics, count_requests, labelled};

/// The gateway's HTTP service: the whole request path, in order.
pub fn router(app: Arc<App>) -> anyhow::Result<Router> {
    // The MCP endpoint (`/mcp`, `/mcp/{cluster}`): routing decides before anything
    // else (404 before auth), then Origin → methods → body → gate → MCP.
    let mcp_endpoint = ServiceBuilder::new()
        .layer(from_fn_with_state(app.clone(), route_request))
        .layer(from_fn(check_origin))
        .layer(from_fn(allow_methods))
        .layer(from_fn(read_message))
        .layer(from_fn(require_identity))
        .service(answer.with_state(app.clone()));
    let mut routes = Router::new();
    // The broker's paths are always routed; the request's configuration generation
    // decides whether a broker answers them, so OAuth settings change on reload.
    for path in crate::oauth::broker::PATHS {
        routes = routes.route(path, any(broker));
    }
    Ok(routes
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback_service(mcp_endpoint)
        // Every request, outermost first.
        .layer(
            ServiceBuilder::new()
                // One configuration generation for the whole request.
                .layer(from_fn_with_state(app.clone(), load_runtime))
                .layer(from_fn(trace_request))
                // `chmcp_http_requests_total`, by route template and status.
                .layer(from_fn_with_state(app.clone(), count_requests))
                // A panic (a bug) is answered before it is counted.
                .layer(from_fn_with_state(app.clone(), catch_panics)),
        )
        .with_state(app))
}

/// Step "runtime": the request sees the configuration generation current when it
/// arrived, from start to end, however many reloads land meanwhile.
pub async fn load_runtime(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(app.runtime());
    next.run(req).await
}

/// Step "span": every log line of a request carries its method and path.
async fn trace_request(req: Request, next: Next) -> Response {
    // `?`: the path is request text, logged escaped.
    let span = tracing::info_span!("request", method = %req.method(), path = ?req.uri().path());
    next.run(req).instrument(span).await
}

/// Which MCP route a path is, by the mode's rules (`routing::Route`).
pub fn route_of<'a>(app: &App, rt: &Runtime, path: &'a str) -> Route<'a> {
    if rt.config.multicluster.enabled {
        Route::parse_multi(path, &app.allowlist)
    } else {
        Route::parse_single(path)
    }
}

/// Step "routing" of the MCP endpoint: an MCP path continues with its cluster in the
/// extensions; metadata documents and every unknown path are answered here, before
/// any authentication, with one 404 whatever the cause.
async fn route_request(
    State(app): State<Arc<App>>,
    Extension(rt): Extension<Arc<Runtime>>,
    mut req: Request,
    next: Next,
) -> Response {
    let oauth = rt.config.server.oauth.enabled;
    let path = req.uri().path().to_string();
    match route_of(&app, &rt, &path) {
        Route::Mcp(cluster) => {
            let label = if rt.config.multicluster.enabled {
                "/mcp/{cluster}"
            } else {
                "/mcp"
            };
            req.extensions_mut().insert(RoutedCluster::of(cluster));
            labelled(next.run(req).await, label)
        }
        Route::ResourceMetadata(cluster) if oauth => metadata_response(
            &rt,
            req.headers(),
            MetadataSubject::Resource(cluster),
            "/.well-known/oauth-protected-resource/mcp",
        ),
        Route::RootMetadata if oauth => metadata_response(
            &rt,
            req.headers(),
            MetadataSubject::Root,
            "/.well-known/oauth-protected-resource",
        ),
        Route::NotFound | Route::ResourceMetadata(_) | Route::RootMetadata => labelled(
            json_response(StatusCode::NOT_FOUND, &not_found_body()),
            "not_found",
        ),
        Route::Other => labelled(not_found(), "unmatched"),
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

/// A broker path: answered by this generation's broker, or 404 outside broker mode.
async fn broker(Extension(rt): Extension<Arc<Runtime>>, req: Request) -> Response {
    let Some(broker) = rt.broker.clone() else {
        return not_found();
    };
    match broker.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

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
use crate::mcp::http::{allow_methods, answer, check_origin, read_message};
use crate::mcp::Incoming;
use crate::oauth::metadata::{protected_resource_metadata, MetadataSubject};
use crate::reply::{json_response, open_cors, open_preflight};
use crate::routing::{not_found_body, Cluster, Route, RoutedCluster};
use crate::telemetry::endpoints::{health, metrics, not_found, readyz};
use crate::telemetry::http::{catch_panics, count_requests, labelled};
use crate::telemetry::trace::{self, TraceContext};

/// The gateway's HTTP service: the whole request path, in order.
pub fn router(app: Arc<App>) -> anyhow::Result<Router> {
    // The MCP endpoint (`/mcp`, `/mcp/{cluster}`): routing decides before anything
    // else (404 before auth), then Origin → methods → body → gate → MCP.
    let mcp_endpoint = ServiceBuilder::new()
        .layer(from_fn_with_state(app.clone(), route_request))
        .layer(from_fn(check_origin))
        .layer(from_fn(allow_methods))
        .layer(from_fn(read_message))
        .layer(from_fn_with_state(app.clone(), trace_message))
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

/// Step "trace" of the MCP endpoint: the request's trace context, continued from the
/// client's (`params._meta.traceparent`, else the `traceparent` header) when it sent
/// one, and the root span of the MCP request when tracing is on. Everything after it,
/// the gate included, runs inside; with tracing off only the context is carried, so
/// ClickHouse still continues the client's trace (`telemetry::trace`).
async fn trace_message(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
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
    match Route::of(&path, &rt.config.multicluster, &app.allowlist) {
        Route::Mcp(cluster) => {
            let label = match cluster {
                Cluster::Named(_) => "/mcp/{cluster}",
                Cluster::Implicit | Cluster::Fleet => "/mcp",
            };
            req.extensions_mut().insert(RoutedCluster::of(cluster));
            labelled(next.run(req).await, label)
        }
        Route::ResourceMetadata(_) | Route::RootMetadata
            if oauth && req.method() == axum::http::Method::OPTIONS =>
        {
            labelled(open_preflight(), "/.well-known/oauth-protected-resource")
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
    // A public document: browser clients fetch it cross-origin during sign-in.
    labelled(
        open_cors(json_response(StatusCode::OK, &doc.to_json())),
        label,
    )
}

/// A broker path: answered by this generation's broker, or 404 outside broker mode.
async fn broker(
    State(app): State<Arc<App>>,
    Extension(rt): Extension<Arc<Runtime>>,
    req: Request,
) -> Response {
    let Some(broker) = rt.broker.clone() else {
        return not_found();
    };
    let started = std::time::Instant::now();
    // The path is one of `PATHS` (this handler is routed on those only).
    let path = req.uri().path().to_string();
    let response = match broker.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    app.metrics
        .oauth_request(&path, response.status().as_u16(), started.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use serde_json::Value;

    use super::*;
    use crate::config::Config;

    /// A gateway with OAuth on and a 64-byte body limit; nothing here reaches the IdP or
    /// ClickHouse, because every request is refused before the gate lets it through.
    fn gated_app() -> Arc<App> {
        let mut config = Config::default();
        config.server.max_request_bytes = 64;
        config.server.oauth.enabled = true;
        config.server.oauth.broker = false;
        config.server.oauth.issuer = "https://idp.example".into();
        Arc::new(App::new(config, Default::default(), None).expect("app"))
    }

    async fn send(app: &Arc<App>, req: HttpRequest<Body>) -> (StatusCode, Value) {
        let r = router(app.clone())
            .expect("router")
            .oneshot(req)
            .await
            .expect("infallible");
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn post(path: &str, origin: Option<&str>, content_type: &str, body: &str) -> HttpRequest<Body> {
        let mut b = HttpRequest::post(path)
            .header(header::HOST, "localhost")
            .header(header::CONTENT_TYPE, content_type);
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(Body::from(body.to_string())).expect("request")
    }

    #[tokio::test]
    async fn checks_run_in_the_stack_order_routing_origin_size_parse_gate() {
        let app = gated_app();
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(100));
        let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        // Routing first: an unknown path is 404 even with a foreign origin and no token.
        let (s, _) = send(
            &app,
            post(
                "/nope",
                Some("https://evil.example"),
                "application/json",
                &big,
            ),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Origin before size.
        let (s, v) = send(
            &app,
            post(
                "/mcp",
                Some("https://evil.example"),
                "application/json",
                &big,
            ),
        )
        .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden_origin"))
        );
        // Size before media type, parse and gate.
        let (s, _) = send(&app, post("/mcp", None, "text/plain", &big)).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        // Media type and parse before the gate: no token, yet 415 and -32700.
        let (s, _) = send(&app, post("/mcp", None, "text/plain", ping)).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (s, v) = send(&app, post("/mcp", None, "application/json", "{not json")).await;
        assert_eq!(
            (s, v["error"]["code"].as_i64()),
            (StatusCode::BAD_REQUEST, Some(-32700))
        );
        // A well-formed message without a token reaches the gate: 401.
        let (s, _) = send(&app, post("/mcp", None, "application/json", ping)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_request_keeps_the_generation_it_loaded() {
        let app = gated_app();
        // The step after `load_runtime` sees the generation current on arrival, and that
        // same `Arc` stays in the request whatever `App::runtime` returns later.
        let seen = Arc::new(std::sync::Mutex::new(None));
        let probe = seen.clone();
        let inner = Router::new()
            .route(
                "/x",
                get(move |Extension(rt): Extension<Arc<Runtime>>| {
                    let probe = probe.clone();
                    async move {
                        if let Ok(mut s) = probe.lock() {
                            *s = Some(rt);
                        }
                        "ok"
                    }
                }),
            )
            .layer(from_fn_with_state(app.clone(), load_runtime))
            .with_state(app.clone());
        let req = HttpRequest::get("/x").body(Body::empty()).expect("request");
        let r = inner.oneshot(req).await.expect("infallible");
        assert_eq!(r.status(), StatusCode::OK);
        let loaded = seen.lock().expect("lock").clone().expect("generation seen");
        assert!(Arc::ptr_eq(&loaded, &app.runtime()));
    }
}

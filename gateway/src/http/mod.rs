//! The HTTP edge, and only the edge: the request path declared in one place. Every
//! HTTP request passes the same stack of steps, outermost first, and an MCP request
//! continues through the steps of the MCP endpoint. One module per step: [`observe`]
//! (generation, span, metrics, panics, the MCP message's trace), [`route`] (404 before
//! auth, metadata, the broker's paths), [`transport`] (Origin, methods, body, the MCP
//! answer), [`gate`] (identity), [`ops`] (the operational endpoints). Two services run
//! them: [`observe::Observe`] around every route (the generation goes into the
//! request's extensions), and the MCP endpoint, whose steps `mcp_endpoint` calls in
//! turn, each answering or returning what it decided to the next; nothing calls back
//! up. The steps are the gateway's own (not `tower-http`'s CORS, limit or trace
//! layers) because their settings come from the configuration generation the request
//! loaded, so they follow reloads (docs/decisions.md). Below the edge, `mcp` speaks the
//! protocol and the domain never imports this module (`gateway/tests/architecture.rs`).

pub mod event_stream;
pub mod gate;
pub mod observe;
pub mod ops;
pub mod route;
pub mod spliced;
pub mod transport;

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{any, get};
use axum::Router;
use futures::future::BoxFuture;
use serde_json::json;
use tower::Service;

use crate::app::{App, Generation};
use gate::gate_request;
use observe::{labelled, trace_message, ObserveLayer};
use ops::{health, livez, metrics, readyz};
use route::{broker, route_request};
use transport::{add_cors, allow_methods, check_origin, read_message, serve_message};

/// The gateway's HTTP service: the whole request path, in order.
pub fn router(app: Arc<App>) -> anyhow::Result<Router> {
    let mut routes = Router::new();
    // The broker's paths are always routed; the request's configuration generation
    // decides whether a broker answers them, so OAuth settings change on reload.
    for path in crate::oauth::broker::PATHS {
        routes = routes.route(path, any(broker));
    }
    Ok(routes
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        // Every other path: the MCP endpoint (`/mcp`, `/mcp/{cluster}`), whose own
        // steps `mcp_endpoint` runs in order.
        .fallback_service(McpEndpoint { app: app.clone() })
        // Every request, outermost first, as one service (`observe::Observe`): one
        // configuration generation for the whole request → the request's span (method
        // and path on every log line) → `chmcp_http_requests_total` by route template
        // and status → a panic (a bug) answered inside the count, so it is counted.
        .layer(ObserveLayer::new(app.clone()))
        .with_state(app))
}

/// The MCP endpoint as one service: its steps always run together and in this order,
/// so they are plain functions called in turn (`mcp_endpoint`), one future for all,
/// instead of a `from_fn` layer each that moved and boxed the request's future at
/// every step (docs/decisions.md, "Hop cost").
#[derive(Clone)]
struct McpEndpoint {
    app: Arc<App>,
}

impl Service<Request> for McpEndpoint {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let app = self.app.clone();
        Box::pin(async move { Ok(mcp_endpoint(app, req).await) })
    }
}

/// The MCP endpoint's steps, outermost first: routing decides before anything else
/// (404 before auth; metadata documents answered), then Origin → methods → body → the
/// message's trace → gate → the MCP answer. Each step answers the request itself or
/// hands what it decided to the next.
async fn mcp_endpoint(app: Arc<App>, req: Request) -> Response {
    // Put there by `observe::Observe`, around every route.
    let Some(generation) = req.extensions().get::<Arc<Generation>>().cloned() else {
        return internal_error();
    };
    // The routing and Origin steps' early answers are boxed: the `Result` of the path
    // that goes on stays small.
    let (routed, label) = match route_request(&app, &generation, &req) {
        Ok(routed) => routed,
        Err(answer) => return *answer,
    };
    let origin = match check_origin(&generation, req.headers()) {
        Ok(origin) => origin,
        Err(answer) => return labelled(*answer, label),
    };
    let mut response = async {
        allow_methods(req.method()).map_err(|answer| *answer)?;
        let (parts, message) = read_message(&generation, req).await?;
        let headers = &parts.headers;
        let traced = trace_message(&app, headers, message, &routed, |message| async {
            match gate_request(&app, &generation, headers, &routed).await {
                Ok(identity) => {
                    serve_message(app.clone(), generation.clone(), identity, message, headers).await
                }
                Err(answer) => answer,
            }
        });
        Ok::<_, Response>(traced.await)
    }
    .await
    .unwrap_or_else(|answer| answer);
    if let Some(o) = origin {
        add_cors(&mut response, &o);
    }
    labelled(response, label)
}

/// A JSON-RPC internal error with no id: the answer to a bug (a step found nothing where
/// an earlier one always puts it, or a handler panicked).
fn internal_error() -> Response {
    crate::reply::json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({"jsonrpc": "2.0", "id": null, "error": {"code": crate::mcp::protocol::INTERNAL_ERROR, "message": "Internal error"}}),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use axum::http::{header, StatusCode};
    use axum::Extension;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::app::Generation;
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
        // The step after `ObserveLayer` sees the generation current on arrival, and that
        // same `Arc` stays in the request whatever `App::generation` returns later.
        let seen = Arc::new(std::sync::Mutex::new(None));
        let probe = seen.clone();
        let inner = Router::new()
            .route(
                "/x",
                get(move |Extension(generation): Extension<Arc<Generation>>| {
                    let probe = probe.clone();
                    async move {
                        if let Ok(mut s) = probe.lock() {
                            *s = Some(generation);
                        }
                        "ok"
                    }
                }),
            )
            .layer(ObserveLayer::new(app.clone()))
            .with_state(app.clone());
        let req = HttpRequest::get("/x").body(Body::empty()).expect("request");
        let r = inner.oneshot(req).await.expect("infallible");
        assert_eq!(r.status(), StatusCode::OK);
        let loaded = seen.lock().expect("lock").clone().expect("generation seen");
        assert!(Arc::ptr_eq(&loaded, &app.generation()));
    }
}

//! The observing steps: every request loads its configuration generation and gets a
//! span, every answer is counted by route template and status, a panicking handler (a
//! bug) is turned into an answer; an MCP message continues its client's trace.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::json;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::app::{App, Generation};
use crate::mcp::Incoming;
use crate::reply::json_response;
use crate::routing::{Route, RoutedCluster};
use crate::telemetry::trace::{self, TraceContext};
use crate::telemetry::Metrics;

/// The steps every request passes, outermost first: generation → span → count →
/// panics. They always run together, so they are one service with one future: a
/// `from_fn` layer per step moved the request's future and boxed it again at each
/// (docs/decisions.md, "Hop cost").
#[derive(Clone)]
pub struct ObserveLayer {
    app: Arc<App>,
}

impl ObserveLayer {
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            app: self.app.clone(),
            inner,
        }
    }
}

/// [`ObserveLayer`]'s service around one route.
#[derive(Clone)]
pub struct Observe<S> {
    app: Arc<App>,
    inner: S,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The service polled ready serves this request; its clone waits for the next.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let app = self.app.clone();
        // Step "generation": the request sees the configuration generation current when
        // it arrived, from start to end, however many reloads land meanwhile.
        let generation = app.generation();
        // Kept only to label a panic's answer (a refcount each, no parsing).
        let (uri, panicked_in) = (req.uri().clone(), generation.clone());
        req.extensions_mut().insert(generation);
        // Step "span": every log line of a request carries its method and path (`?`:
        // the path is request text, logged escaped).
        let span = tracing::info_span!("request", method = %req.method(), path = ?req.uri().path());
        // Step "count": by route template (the matched route, or the label a step put
        // on the answer) and status.
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let served = async move {
            // Step "panics": a panic in any handler (a bug) is answered inside the count,
            // never a dropped connection. AssertUnwindSafe: shared state sits behind
            // locks whose poisoning every user tolerates, so an unwound handler leaves
            // nothing that later requests misread.
            let response = match AssertUnwindSafe(async move { inner.call(req).await })
                .catch_unwind()
                .await
            {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => panic_response(&app, panic_label(&app, &panicked_in, uri.path())),
            };
            count(&app, matched.as_ref(), &response);
            Ok(response)
        };
        Box::pin(served.instrument(span))
    }
}

/// The route template an MCP path's panic answer is counted under; `None` off MCP.
fn panic_label(app: &App, generation: &Generation, path: &str) -> Option<&'static str> {
    match Route::of(path, &generation.config.multicluster, &app.allowlist) {
        Route::Mcp(cluster) => Some(super::route::mcp_label(&cluster)),
        _ => None,
    }
}

/// The answer to a panicking handler: a JSON-RPC internal error on MCP routes, a plain
/// 500 elsewhere, and `chmcp_panics_total` counts it. (MCP request handling has its own
/// guard that answers with the request's id.)
fn panic_response(app: &App, mcp_label: Option<&'static str>) -> Response {
    app.metrics.panics.inc();
    match mcp_label {
        Some(label) => labelled(super::internal_error(), label),
        None => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "internal_error", "error_description": "the gateway failed while handling this request"}),
        ),
    }
}

/// The route template a response is counted under (paths carry cluster names).
#[derive(Clone, Copy)]
struct RouteLabel(&'static str);

pub fn labelled(mut r: Response, label: &'static str) -> Response {
    r.extensions_mut().insert(RouteLabel(label));
    r
}

/// Counts an HTTP answer by route template and status.
fn count(app: &App, matched: Option<&MatchedPath>, response: &Response) {
    let route = match response.extensions().get::<RouteLabel>() {
        Some(RouteLabel(l)) => l,
        None => matched.map_or("unmatched", MatchedPath::as_str),
    };
    Metrics::inc(
        &app.metrics.http_requests,
        &[("route", route), ("status", response.status().as_str())],
    );
}

/// Step "trace" of the MCP endpoint: the request's trace context, continued from the
/// client's (`params._meta.traceparent`, else the `traceparent` header) when it sent
/// one, and the root span of the MCP request when tracing is on. Everything after it,
/// the gate included, runs inside; with tracing off only the context is carried, so
/// ClickHouse still continues the client's trace (`telemetry::trace`).
///
/// `next` gets the message back once its trace facts are read (nothing is copied).
pub async fn trace_message<F: Future<Output = Response>>(
    app: &App,
    headers: &HeaderMap,
    message: Incoming,
    routed: &RoutedCluster,
    next: impl FnOnce(Incoming) -> F,
) -> Response {
    let read = match &message {
        Incoming::Request { id, method, params } => Some((id, method, params)),
        _ => None,
    };
    let incoming = read
        .and_then(|(_, _, params)| trace::meta_context(params.as_ref()))
        .or_else(|| {
            headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(TraceContext::parse)
        });
    // The span's name and attributes only when spans are recorded: with tracing off
    // nothing is built.
    let described = app.tracer.is_some().then(|| {
        let (name, mut attributes) = match read {
            Some((id, method, params)) => trace::request_span(id, method, params.as_ref()),
            None => ("mcp notification".to_string(), Vec::new()),
        };
        let cluster = match routed {
            RoutedCluster::Named(n) => Some(n.clone()),
            RoutedCluster::Fleet => Some(crate::routing::FLEET_CLUSTER.to_string()),
            RoutedCluster::Implicit => None,
        };
        if let Some(c) = cluster {
            attributes.push(("chmcp.cluster", c.into()));
        }
        (name, attributes)
    });
    let describe = move || described.unwrap_or_default();
    let next = next(message);
    trace::in_request(app.tracer.as_ref(), incoming, describe, async {
        let r = next.await;
        trace::set("http.response.status_code", u64::from(r.status().as_u16()));
        r
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use axum::Router;

    /// Serves `routes` behind the panic guard on a loopback port; returns its base URL.
    async fn serve_guarded(app: Arc<App>, routes: Router<Arc<App>>) -> String {
        let router = routes.layer(ObserveLayer::new(app.clone())).with_state(app);
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

//! Step "routing" of the MCP endpoint, and the broker's paths: which cluster a path
//! names (`routing::Route`: the cluster name rules and the allow-list), decided before
//! any authentication; metadata documents answered here.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use tower::ServiceExt;

use super::observe::labelled;
use super::ops::not_found;
use crate::app::{App, Generation};
use crate::oauth::metadata::{protected_resource_metadata, MetadataSubject};
use crate::reply::{json_response, open_cors, open_preflight};
use crate::routing::{not_found_body, Cluster, Route, RoutedCluster};

/// Step "routing" of the MCP endpoint: an MCP path continues with its cluster and the
/// route template its answer is counted under; metadata documents and every unknown
/// path are answered here, before any authentication, with one 404 whatever the cause.
pub fn route_request(
    app: &App,
    generation: &Generation,
    req: &Request,
) -> Result<(RoutedCluster, &'static str), Box<Response>> {
    let oauth = generation.config.server.oauth.enabled;
    match Route::of(
        req.uri().path(),
        &generation.config.multicluster,
        &app.allowlist,
    ) {
        Route::Mcp(cluster) => {
            let label = mcp_label(&cluster);
            Ok((RoutedCluster::of(cluster), label))
        }
        Route::ResourceMetadata(_) | Route::RootMetadata
            if oauth && req.method() == axum::http::Method::OPTIONS =>
        {
            Err(Box::new(labelled(
                open_preflight(),
                "/.well-known/oauth-protected-resource",
            )))
        }
        Route::ResourceMetadata(cluster) if oauth => Err(Box::new(metadata_response(
            generation,
            req.headers(),
            MetadataSubject::Resource(cluster),
            "/.well-known/oauth-protected-resource/mcp",
        ))),
        Route::RootMetadata if oauth => Err(Box::new(metadata_response(
            generation,
            req.headers(),
            MetadataSubject::Root,
            "/.well-known/oauth-protected-resource",
        ))),
        Route::NotFound | Route::ResourceMetadata(_) | Route::RootMetadata => {
            Err(Box::new(labelled(
                json_response(StatusCode::NOT_FOUND, &not_found_body()),
                "not_found",
            )))
        }
        Route::Other => Err(Box::new(labelled(not_found(), "unmatched"))),
    }
}

/// A protected-resource metadata document, its URLs built from the serving host.
fn metadata_response(
    generation: &Generation,
    headers: &HeaderMap,
    subject: MetadataSubject<'_>,
    label: &'static str,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let doc = protected_resource_metadata(&generation.config.server.oauth, "http", host, subject);
    // A public document: browser clients fetch it cross-origin during sign-in.
    labelled(
        open_cors(json_response(StatusCode::OK, &doc.to_json())),
        label,
    )
}

/// A broker path: answered by this generation's broker, or 404 outside broker mode.
pub async fn broker(
    State(app): State<Arc<App>>,
    Extension(generation): Extension<Arc<Generation>>,
    req: Request,
) -> Response {
    let Some(broker) = generation.broker.clone() else {
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

/// The route template an MCP path is counted under (paths carry cluster names).
pub(super) fn mcp_label(cluster: &Cluster) -> &'static str {
    match cluster {
        Cluster::Named(_) => "/mcp/{cluster}",
        Cluster::Implicit | Cluster::Fleet => "/mcp",
    }
}

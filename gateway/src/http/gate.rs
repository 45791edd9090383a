//! Step "gate" of the MCP endpoint: every MCP message passes it (clients
//! re-authenticate instead of working with a stale or expired identity). With OAuth on,
//! `identity::resolve::identify` decides from what the generation lends
//! (`Generation::gate_env`); with OAuth off the configured static identity runs.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Extension;

use crate::app::Generation;
use crate::identity::resolve::identify;
use crate::oauth::gate::GateRejection;
use crate::reply::json_response;
use crate::routing::RoutedCluster;
use crate::telemetry::trace::{self, SpanKind};

/// Puts the `Arc<`[`crate::identity::RequestIdentity`]`>` into the request's extensions, or
/// answers 401/403 with the challenge.
pub async fn gate_request(
    Extension(generation): Extension<Arc<Generation>>,
    Extension(routed): Extension<RoutedCluster>,
    mut req: Request,
    next: Next,
) -> Response {
    let identity = if generation.config.server.oauth.enabled {
        let gate = identify(generation.gate_env(), req.headers(), routed.cluster());
        let checked = trace::child("gate", SpanKind::Internal, async {
            let r = gate.await;
            if let Err(g) = &r {
                trace::set_error(&format!("refused: {}", g.status_code()));
            }
            r
        })
        .await;
        match checked {
            Ok(i) => Arc::new(i),
            Err(g) => return gate_response(g),
        }
    } else {
        generation.static_identity.clone()
    };
    req.extensions_mut().insert(identity);
    next.run(req).await
}

fn gate_response(g: GateRejection) -> Response {
    let mut r = json_response(g.status_code(), &g.body);
    if let Ok(v) = HeaderValue::from_str(&g.www_authenticate) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

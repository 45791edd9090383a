//! Step "gate" of the MCP endpoint: every MCP message passes it (clients
//! re-authenticate instead of working with a stale or expired identity). With OAuth on,
//! `identity::resolve::identify` decides from what the generation lends
//! (`Generation::gate_env`); with OAuth off the configured static identity runs.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;

use crate::app::{App, Generation};
use crate::identity::resolve::identify;
use crate::identity::RequestIdentity;
use crate::oauth::gate::GateRejection;
use crate::reply::json_response;
use crate::routing::RoutedCluster;
use crate::telemetry::trace::{self, SpanKind};

/// The caller's `Arc<`[`crate::identity::RequestIdentity`]`>`, or the 401/403 answer
/// with the challenge.
pub async fn gate_request(
    app: &App,
    generation: &Generation,
    headers: &HeaderMap,
    routed: &RoutedCluster,
) -> Result<Arc<RequestIdentity>, Response> {
    if !generation.config.server.oauth.enabled {
        return Ok(generation.static_identity.clone());
    }
    let gate = identify(app.gate_env(generation), headers, routed.cluster());
    let checked = trace::child("gate", SpanKind::Internal, async {
        let r = gate.await;
        if let Err(g) = &r {
            trace::set_error(&format!("refused: {}", g.status_code()));
        }
        r
    })
    .await;
    checked.map(Arc::new).map_err(gate_response)
}

fn gate_response(g: GateRejection) -> Response {
    let mut r = json_response(g.status_code(), &g.body);
    if let Ok(v) = HeaderValue::from_str(&g.www_authenticate) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

//! Streamable HTTP, stateless: one POST carries one JSON-RPC message; the answer is
//! `application/json`. The gateway owns this edge so every status code and header
//! follows docs/spec-notes.md, "Transports" (202/405/413/415, -32700, Origin, CORS).
//!
//! Each check is its own step (`http::mcp_endpoint` runs them in order):
//! [`check_origin`] → [`allow_methods`] → [`read_message`] → (the message's trace, the
//! gate) → [`serve_message`], which hands the message to `mcp::run`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::event_stream;
use crate::app::{App, Generation};
use crate::identity::RequestIdentity;
use crate::mcp::dispatch::RpcError;
use crate::mcp::protocol;
use crate::mcp::run::{answer_request, contain_panics, run_cancellable};
use crate::mcp::{classify_message, Incoming};
use crate::net::{origin_values, OriginVerdict};
use crate::reply::{cors_allow, json_response};

fn rpc_error(
    status: StatusCode,
    id: &Value,
    code: i64,
    message: impl Into<String>,
    data: Option<Value>,
) -> Response {
    json_response(
        status,
        &RpcError {
            code,
            message: message.into(),
            data,
        }
        .to_json(id),
    )
}

pub fn add_cors(r: &mut Response, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate, Mcp-Protocol-Version"),
        );
    }
}

/// Step "Origin": a browser origin outside `server.allowed_origins` is refused
/// (403) before anything else; an allowed one is returned, and [`add_cors`] puts the
/// CORS headers on the answer.
pub fn check_origin(
    generation: &Generation,
    headers: &HeaderMap,
) -> Result<Option<String>, Box<Response>> {
    match generation.origins.check(origin_values(headers)) {
        OriginVerdict::Denied(why) => Err(Box::new(json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": "forbidden_origin", "error_description": why.to_string()}),
        ))),
        OriginVerdict::Allowed(o) => Ok(Some(o)),
        OriginVerdict::Absent => Ok(None),
    }
}

/// Step "methods": the endpoint is stateless, so only POST carries messages;
/// OPTIONS is the CORS preflight and anything else is 405.
pub fn allow_methods(method: &Method) -> Result<(), Box<Response>> {
    match *method {
        Method::POST => Ok(()),
        Method::OPTIONS => Err(Box::new(preflight())),
        _ => {
            let mut r = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method_not_allowed", "error_description": "This MCP endpoint is stateless: send JSON-RPC messages with POST. There is no GET stream and no session to DELETE."}),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            Err(Box::new(r))
        }
    }
}

/// Step "body": the size limit (413), the media type (415), JSON (-32700) and
/// the JSON-RPC shape (-32600), all before the gate. Returns the request's head and
/// the parsed [`Incoming`] message.
pub async fn read_message(
    generation: &Generation,
    req: Request,
) -> Result<(Parts, Incoming), Response> {
    let (parts, body) = req.into_parts();
    let body = read_body(
        body,
        generation.config.server.max_request_bytes,
        &parts.headers,
    )
    .await?;
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(json_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &json!({"error": "unsupported_media_type", "error_description": "Send JSON-RPC with Content-Type: application/json"}),
        ));
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Err(rpc_error(
                StatusCode::BAD_REQUEST,
                &Value::Null,
                protocol::PARSE_ERROR,
                format!("Parse error: {e}"),
                None,
            ))
        }
    };
    match classify_message(value) {
        Ok(m) => Ok((parts, m)),
        Err(e) => Err(rpc_error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            protocol::INVALID_REQUEST,
            format!("Invalid Request: {e}"),
            None,
        )),
    }
}

fn preflight() -> Response {
    let mut r = cors_allow(
        StatusCode::NO_CONTENT.into_response(),
        "POST, OPTIONS",
        "Content-Type, Authorization, Accept, MCP-Protocol-Version, Mcp-Method, Mcp-Name, Last-Event-ID",
    );
    r.headers_mut().insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    r
}

async fn read_body(body: Body, limit: usize, headers: &HeaderMap) -> Result<Bytes, Response> {
    let too_large = || {
        json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({"error": "payload_too_large", "error_description": format!("The request body is over {limit} bytes (server.max_request_bytes)")}),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// Scope for `notifications/cancelled`: request ids are only unique per caller. The
/// gate's digest of the bearer when it admitted one (no second hash of the credential),
/// else the `Authorization` header's.
fn cancel_scope(headers: &HeaderMap, identity: &RequestIdentity) -> Option<String> {
    match &identity.presented_sha256 {
        Some(digest) => Some(crate::inflight::bearer_scope(digest)),
        None => crate::inflight::caller_scope(
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        ),
    }
}

/// The MCP answer, last on the edge: the message, its generation and the caller's
/// identity go to `mcp::run`, whose answer becomes an HTTP response.
pub async fn serve_message(
    app: Arc<App>,
    generation: Arc<Generation>,
    identity: Arc<RequestIdentity>,
    msg: Incoming,
    headers: &HeaderMap,
) -> Response {
    match msg {
        Incoming::Response => StatusCode::ACCEPTED.into_response(),
        Incoming::Notification { method, params } => {
            if let Err(r) = protocol::classify(headers, &method, params.as_ref(), false) {
                return rpc_error(
                    StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
                    &Value::Null,
                    r.code,
                    r.message,
                    r.data,
                );
            }
            if method == "notifications/cancelled" {
                if let Some(rid) = params.as_ref().and_then(|p| p.get("requestId")) {
                    let found = app.inflight.cancel(
                        cancel_scope(headers, &identity).as_deref(),
                        &rid.to_string(),
                    );
                    // A JSON value's Display is JSON text: control characters escaped.
                    tracing::debug!(request_id = %rid, found, "cancellation requested");
                }
            }
            StatusCode::ACCEPTED.into_response()
        }
        Incoming::Request { id, method, params } => {
            let era = match protocol::classify(headers, &method, params.as_ref(), true) {
                Ok(e) => e,
                Err(r) => {
                    return rpc_error(
                        StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST),
                        &id,
                        r.code,
                        r.message,
                        r.data,
                    )
                }
            };
            let scope = cancel_scope(headers, &identity);
            // A progress token on a tool call: the answer is an event stream (cost::progress).
            let progress = (method == "tools/call" && event_stream::accepts_event_stream(headers))
                .then(|| crate::cost::progress::requested_token(params.as_ref()))
                .flatten();
            if let Some(token) = progress {
                let (reporter, rx) = crate::cost::progress::Reporter::new(token);
                let work = async move {
                    let work = contain_panics(
                        &app.metrics,
                        answer_request(&app, &generation, &identity, era, &method, &params),
                    );
                    // Boxed: the request future is deep, and this one nests it twice more.
                    let run: Pin<Box<dyn Future<Output = _> + Send + '_>> =
                        Box::pin(run_cancellable(&app.inflight, scope.as_deref(), &id, work));
                    match reporter.scope(run).await {
                        Ok(answer) => answer.response_text(&id),
                        Err(e) => e.to_json(&id).to_string(),
                    }
                };
                let work: event_stream::Work = Box::pin(crate::telemetry::trace::keep(work));
                return event_stream::response(rx, work);
            }
            let work = contain_panics(
                &app.metrics,
                answer_request(&app, &generation, &identity, era, &method, &params),
            );
            // The client hanging up makes hyper drop this future, and with it `work`.
            let result = run_cancellable(&app.inflight, scope.as_deref(), &id, work).await;
            match result {
                Ok(answer) => super::spliced::reply_response(StatusCode::OK, answer.reply(&id)),
                Err(e) => {
                    let status = StatusCode::from_u16(protocol::error_status(era, e.code))
                        .unwrap_or(StatusCode::OK);
                    json_response(status, &e.to_json(&id))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::sha256;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn the_gates_digest_is_the_scope_and_only_the_same_bearer_shares_it() {
        let alice = with_authorization("Bearer alice.jwt");
        let mut gated = crate::identity::static_identity(&crate::config::Config::default());
        gated.presented_sha256 = Some(sha256(b"alice.jwt"));
        let scope = cancel_scope(&alice, &gated);
        assert_eq!(
            scope,
            Some(crate::inflight::bearer_scope(&sha256(b"alice.jwt")))
        );
        let mut bob = gated.clone();
        bob.presented_sha256 = Some(sha256(b"bob.jwt"));
        assert_ne!(cancel_scope(&alice, &bob), scope);
        // Not gated (OAuth off): the whole header's digest, and none without a header.
        let mut plain = gated.clone();
        plain.presented_sha256 = None;
        assert_eq!(
            cancel_scope(&alice, &plain),
            crate::inflight::caller_scope(Some("Bearer alice.jwt"))
        );
        assert_ne!(cancel_scope(&alice, &plain), scope);
        assert_eq!(cancel_scope(&HeaderMap::new(), &plain), None);
    }
}

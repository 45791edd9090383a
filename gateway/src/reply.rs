//! The JSON answers every HTTP step writes (the transport, the gate, routing,
//! telemetry and the broker alike), so none of them borrows a helper from another.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    text_response(status, serde_json::to_string(body).unwrap_or_default())
}

/// A response whose body is JSON text already.
pub fn text_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The methods and request headers a preflight allows, on any CORS answer.
pub fn cors_allow(mut r: Response, methods: &'static str, headers: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(headers),
    );
    r
}

/// CORS for public, credential-free documents and endpoints (the OAuth metadata, the
/// broker's open endpoints): readable from any origin, because in-browser MCP clients
/// (MCP Inspector, web IDEs) fetch them cross-origin during sign-in and they carry
/// nothing a caller's cookies could unlock.
pub fn open_cors(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    cors_allow(
        r,
        "GET, POST, OPTIONS",
        "Authorization, Content-Type, MCP-Protocol-Version",
    )
}

/// The answer to a preflight (`OPTIONS`) for an [`open_cors`] resource.
pub fn open_preflight() -> Response {
    open_cors(StatusCode::NO_CONTENT.into_response())
}

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

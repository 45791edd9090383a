//! RFC 6749 / RFC 7591 / RFC 8707 errors, and the one place they become HTTP answers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::mcp::http::json_response;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    InvalidClientMetadata,
    InvalidRedirectUri,
    ServerError,
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::AccessDenied => StatusCode::FORBIDDEN,
            Self::ServerError => StatusCode::BAD_GATEWAY,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An OAuth error answered as JSON. The description is for humans and never holds a
/// token, code or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    /// The client tried HTTP Basic: a 401 must then challenge with Basic (RFC 6749 §5.2).
    pub basic_challenge: bool,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }
}

/// Shorthand constructors, named after the RFC 6749 code they carry.
pub fn invalid_request(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequest, d)
}
pub fn invalid_client(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, d)
}
pub fn invalid_grant(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, d)
}
pub fn invalid_target(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidTarget, d)
}
pub fn server_error(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::ServerError, d)
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = json_response(
            self.code.status(),
            &json!({"error": self.code.as_str(), "error_description": self.description}),
        );
        let h = r.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.code == ErrorCode::InvalidClient && self.basic_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"chmcp\""),
            );
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_over_basic_challenges_with_basic() {
        let mut e = invalid_client("bad secret");
        e.basic_challenge = true;
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_some());
        assert_eq!(r.headers().get(header::CACHE_CONTROL).unwrap(), "no-store");
    }

    #[test]
    fn grant_errors_are_400() {
        assert_eq!(
            invalid_grant("x").into_response().status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            invalid_target("x").into_response().status(),
            StatusCode::BAD_REQUEST
        );
    }
}

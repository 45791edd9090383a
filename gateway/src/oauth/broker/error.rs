//! RFC 6749 / RFC 7591 / RFC 8707 errors, and the one place they become HTTP answers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::page::{html_response, layout};
use crate::reply::json_response;

pub use super::page::html_escape;

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

/// The error page a person sees in the browser at `/oauth/authorize` or
/// `/oauth/callback` when the error cannot be sent back to the client: before consent
/// (RFC 9700 §4.11.2: anyone can register a redirect URI, so an automatic error
/// redirect would make the gateway an open redirector) or with no redirect URI we can
/// trust. Escaped, unframeable, never a redirect; 400 for anything the request got wrong.
/// `brand`: the gateway's display name, as on the consent page.
pub fn error_page(brand: &str, e: &OAuthError) -> Response {
    let status = match e.code.status() {
        // No authentication scheme a browser could answer with: a plain bad request.
        StatusCode::UNAUTHORIZED => StatusCode::BAD_REQUEST,
        s => s,
    };
    let body = format!(
        "<h1>This sign-in cannot continue</h1>\
<p id=\"error_description\">{description}</p>\
<p>Nothing was shared with the application. Close this window and start the sign-in \
again from the application; if it keeps happening, show this page to whoever runs this \
gateway.</p>\
<p class=\"muted\">Error code: <code id=\"error\">{code}</code></p>",
        code = html_escape(e.code.as_str()),
        description = html_escape(&e.description),
    );
    html_response(status, layout(brand, "Sign-in error", &body, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_page_is_escaped_unframeable_and_never_a_redirect() {
        let e = OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "<script>alert(1)</script>",
        );
        let r = error_page("Gateway", &e);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let h = r.headers();
        assert!(h.get(header::LOCATION).is_none());
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
        assert!(h
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert!(h
            .get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(
            error_page("Gateway", &invalid_client("x")).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn the_error_page_body_escapes_the_description() {
        let e = OAuthError::new(ErrorCode::InvalidRequest, "<b>\"x\"</b>");
        let body = axum::body::to_bytes(error_page("Gateway", &e).into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("&lt;b&gt;&quot;x&quot;&lt;/b&gt;"), "{body}");
        assert!(!body.contains("<b>"), "{body}");
        assert!(body.contains("<code id=\"error\">invalid_request</code>"));
    }

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

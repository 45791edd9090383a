//! RFC 6749 / RFC 7591 / RFC 8707 errors, and the one place they become HTTP answers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::reply::json_response;

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
pub fn error_page(e: &OAuthError) -> Response {
    let status = match e.code.status() {
        // No authentication scheme a browser could answer with: a plain bad request.
        StatusCode::UNAUTHORIZED => StatusCode::BAD_REQUEST,
        s => s,
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in error</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head><body>\
<h1>This sign-in request cannot continue</h1>\
<p>Error: <code id=\"error\">{code}</code></p><p id=\"error_description\">{description}</p>\
<p>Close this window and start again from your application.</p></body></html>\n",
        code = html_escape(e.code.as_str()),
        description = html_escape(&e.description),
    );
    let mut r = (status, html).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_frames(&mut r);
    r
}

/// Text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Headers of every HTML page the broker serves: never framed (clickjacking), never
/// cached, no referrer (the URL may carry a client's `state`).
pub fn no_frames(r: &mut Response) {
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
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
        let r = error_page(&e);
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
            error_page(&invalid_client("x")).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn the_error_page_body_escapes_the_description() {
        let e = OAuthError::new(ErrorCode::InvalidRequest, "<b>\"x\"</b>");
        let body = axum::body::to_bytes(error_page(&e).into_body(), 1 << 16)
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

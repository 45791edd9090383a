//! `GET /oauth/callback`: the upstream IdP sends the browser back here. The upstream
//! code and the gateway's PKCE verifier are sealed into the authorization code the MCP
//! client receives (60 s), so the token endpoint of any replica can redeem it.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::authorize::{
    flow_cookie_name, redirect, redirect_error, redirect_with, Pending, UpstreamState,
};
use super::consent::cookie_value;
use super::crypto::{constant_time_eq, sha256_b64, Kind, SealError};
use super::error::{invalid_request, ErrorCode, OAuthError};
use super::{now, BrokerState, Step};

/// docs/spec-notes.md, "Broker mode": authorization codes live 60 s.
pub const CODE_TTL_SECS: u64 = 60;

#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// The sealed authorization code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    #[serde(rename = "q")]
    pub pending: Pending,
    /// The upstream IdP's code: single-use there, which makes ours single-use too.
    #[serde(rename = "u")]
    pub upstream_code: String,
    #[serde(rename = "v")]
    pub verifier: String,
}

/// What the callback does, decided from the parameters and the opened state.
#[derive(Debug, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// Redeemable: seal this into a code for the client.
    Code(AuthorizationCode),
    /// Tell the client about an error at its (already validated) redirect URI.
    ClientError { pending: Pending, error: OAuthError },
}

/// Upstream error codes passed through to the client unchanged; anything else is a
/// `server_error` (the client cannot act on an IdP-internal code).
fn relayed_error(code: &str) -> ErrorCode {
    match code {
        "access_denied" => ErrorCode::AccessDenied,
        "temporarily_unavailable" => ErrorCode::TemporarilyUnavailable,
        "invalid_scope" => ErrorCode::InvalidScope,
        _ => ErrorCode::ServerError,
    }
}

pub fn decide(p: CallbackParams, opened: UpstreamState, upstream_issuer: &str) -> CallbackOutcome {
    let pending = opened.pending;
    // RFC 9207: an IdP that names itself must name the one we sent the user to.
    if let Some(iss) = p.iss.as_deref() {
        if iss != upstream_issuer {
            let error = OAuthError::new(
                ErrorCode::ServerError,
                "the response came from an unexpected identity provider",
            );
            return CallbackOutcome::ClientError { pending, error };
        }
    }
    if let Some(e) = p.error.as_deref() {
        let d = p
            .error_description
            .unwrap_or_else(|| format!("the identity provider answered {e}"));
        return CallbackOutcome::ClientError {
            pending,
            error: OAuthError::new(relayed_error(e), d),
        };
    }
    match p.code.filter(|c| !c.is_empty()) {
        Some(upstream_code) => CallbackOutcome::Code(AuthorizationCode {
            pending,
            upstream_code,
            verifier: opened.verifier,
        }),
        None => CallbackOutcome::ClientError {
            pending,
            error: OAuthError::new(
                ErrorCode::ServerError,
                "the identity provider returned no code",
            ),
        },
    }
}

/// Whether this request comes from the browser that started the sign-in: it carries the
/// flow cookie whose hash the sealed `state` holds.
pub fn same_browser(headers: &HeaderMap, browser_hash: &str) -> bool {
    cookie_value(headers, &flow_cookie_name(browser_hash))
        .is_some_and(|nonce| constant_time_eq(&sha256_b64(nonce), browser_hash))
}

pub async fn callback(
    State(b): State<Arc<BrokerState>>,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    let Some(state) = p.state.as_deref() else {
        return b.fail_page(Step::Callback, invalid_request("state is missing"));
    };
    // A state that does not open names no redirect URI we could trust: answer directly.
    let opened: UpstreamState = match b.sealer.open(Kind::State, state, now()) {
        Ok(s) => s,
        Err(SealError::Expired) => {
            return b.fail_page(
                Step::Callback,
                invalid_request("the sign-in took too long: start again"),
            )
        }
        Err(e) => return b.fail_page(Step::Callback, invalid_request(format!("state: {e}"))),
    };
    // Only the person who consented may be sent on to the redirect URI (RFC 9700
    // §4.11.2): anyone else gets a page, whatever the parameters say.
    if !same_browser(&headers, &opened.browser) {
        return b.fail_page(
            Step::Callback,
            invalid_request(
                "this sign-in was started in another browser: start again from your application",
            ),
        );
    }
    match decide(p, opened, &b.settings.upstream_issuer) {
        CallbackOutcome::Code(code) => {
            let sealed = match b
                .sealer
                .seal(Kind::AuthorizationCode, &code, now() + CODE_TTL_SECS)
            {
                Ok(s) => s,
                Err(e) => {
                    let err = OAuthError::new(ErrorCode::ServerError, e.to_string());
                    b.count(Step::Callback, "server_error");
                    return redirect_error(
                        StatusCode::FOUND,
                        &b.settings.issuer,
                        &code.pending.redirect_uri,
                        code.pending.state.as_deref(),
                        &err,
                    );
                }
            };
            let mut params = vec![("code", sealed.as_str())];
            if let Some(s) = code.pending.state.as_deref() {
                params.push(("state", s));
            }
            params.push(("iss", b.settings.issuer.as_str()));
            match redirect_with(&code.pending.redirect_uri, &params) {
                Some(loc) => {
                    b.count(Step::Callback, "ok");
                    redirect(StatusCode::FOUND, &loc)
                }
                None => b.fail_page(
                    Step::Callback,
                    OAuthError::new(ErrorCode::ServerError, "the redirect URI cannot be built"),
                ),
            }
        }
        CallbackOutcome::ClientError { pending, error } => {
            b.count(Step::Callback, error.code.as_str());
            tracing::info!(
                error = error.code.as_str(),
                "upstream sign-in ended with an error; telling the client"
            );
            redirect_error(
                StatusCode::FOUND,
                &b.settings.issuer,
                &pending.redirect_uri,
                pending.state.as_deref(),
                &error,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened() -> UpstreamState {
        UpstreamState {
            pending: Pending {
                client: "c".into(),
                redirect_uri: "https://app.example.com/cb".into(),
                redirect_explicit: true,
                state: Some("cs".into()),
                code_challenge: "x".repeat(43),
                scope: None,
                resource: None,
            },
            verifier: "v".into(),
            browser: sha256_b64("nonce"),
        }
    }

    #[test]
    fn only_the_browser_with_the_flow_cookie_is_the_same_browser() {
        use axum::http::{header, HeaderValue};
        let hash = sha256_b64("nonce");
        let mut h = HeaderMap::new();
        assert!(!same_browser(&h, &hash), "no cookie");
        let cookie = |v: &str| {
            HeaderValue::from_str(&format!("a=1; {}={v}", flow_cookie_name(&hash))).unwrap()
        };
        h.insert(header::COOKIE, cookie("other"));
        assert!(!same_browser(&h, &hash), "another nonce");
        h.insert(header::COOKIE, cookie("nonce"));
        assert!(same_browser(&h, &hash));
    }

    #[test]
    fn a_code_is_wrapped_with_the_verifier() {
        let p = CallbackParams {
            code: Some("UP".into()),
            state: Some("s".into()),
            ..Default::default()
        };
        match decide(p, opened(), "https://idp") {
            CallbackOutcome::Code(c) => {
                assert_eq!(c.upstream_code, "UP");
                assert_eq!(c.verifier, "v");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn upstream_denial_is_relayed_as_access_denied() {
        let p = CallbackParams {
            error: Some("access_denied".into()),
            ..Default::default()
        };
        match decide(p, opened(), "https://idp") {
            CallbackOutcome::ClientError { error, .. } => {
                assert_eq!(error.code, ErrorCode::AccessDenied)
            }
            o => panic!("{o:?}"),
        }
        let p = CallbackParams {
            error: Some("weird_internal".into()),
            ..Default::default()
        };
        assert!(
            matches!(decide(p, opened(), "https://idp"), CallbackOutcome::ClientError { error, .. } if error.code == ErrorCode::ServerError)
        );
    }

    #[test]
    fn a_foreign_iss_is_a_mix_up() {
        let p = CallbackParams {
            code: Some("UP".into()),
            iss: Some("https://evil".into()),
            ..Default::default()
        };
        assert!(matches!(
            decide(p, opened(), "https://idp"),
            CallbackOutcome::ClientError { .. }
        ));
        let p = CallbackParams {
            code: Some("UP".into()),
            iss: Some("https://idp".into()),
            ..Default::default()
        };
        assert!(matches!(
            decide(p, opened(), "https://idp"),
            CallbackOutcome::Code(_)
        ));
    }
}

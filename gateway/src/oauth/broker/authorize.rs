//! `GET /oauth/authorize`: checks the client's request, then shows the consent page (or,
//! for a trusted redirect host, goes straight on) and sends the browser to the upstream
//! IdP with the gateway's own PKCE pair and a sealed `state`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::client::{
    is_metadata_document_id, open_registered, redirect_host, Client, MAX_SCOPE_LEN,
};
use super::crypto::{sha256_b64, Kind};
use super::error::{error_page, invalid_client, invalid_request, ErrorCode, OAuthError};
use super::{consent, now, upstream, BrokerState, Step};

/// docs/spec-notes.md, "Broker mode": the upstream `state` lives 10 minutes (time to sign in at the IdP).
pub const STATE_TTL_SECS: u64 = 600;
/// A client's own `state` is opaque to us but travels inside sealed artifacts.
pub const MAX_CLIENT_STATE_LEN: usize = 1024;
const MAX_RESOURCE_LEN: usize = 512;
/// RFC 7636: a S256 challenge is base64url(SHA-256) = 43 characters.
const S256_CHALLENGE_LEN: usize = 43;

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub resource: Option<String>,
}

impl AuthorizeParams {
    /// From raw query pairs; a repeated parameter is an error (RFC 6749 §3.1).
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, OAuthError> {
        let mut p = Self::default();
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "response_type" => &mut p.response_type,
                "client_id" => &mut p.client_id,
                "redirect_uri" => &mut p.redirect_uri,
                "state" => &mut p.state,
                "scope" => &mut p.scope,
                "code_challenge" => &mut p.code_challenge,
                "code_challenge_method" => &mut p.code_challenge_method,
                "resource" => &mut p.resource,
                _ => continue,
            };
            if slot.is_some() {
                return Err(invalid_request(format!("`{k}` is given more than once")));
            }
            *slot = Some(v.clone());
        }
        Ok(p)
    }
}

/// A checked authorization request, carried sealed through consent, the upstream
/// round trip and the authorization code. Short names: it travels in URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Binding of the client id (client.rs `client_binding`).
    #[serde(rename = "c")]
    pub client: String,
    #[serde(rename = "r")]
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (then the token request must repeat it).
    #[serde(rename = "x")]
    pub redirect_explicit: bool,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(rename = "p")]
    pub code_challenge: String,
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Why a request cannot proceed, and whether the client may be told by redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Shown to the person as a page: the redirect URI is not validated, or (see
    /// [`before_consent`]) nobody has vouched for it yet.
    Direct(OAuthError),
    /// The redirect URI is registered for the client: the error may go back to it
    /// (RFC 6749 §4.1.2.1), once the person consented or its host is trusted.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

/// Checks everything that does not need the client; returns its id.
pub fn client_id_of(p: &AuthorizeParams) -> Result<&str, OAuthError> {
    p.client_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid_request("client_id is required"))
}

/// The pure decision of the authorization endpoint, once the client is known.
/// `serves` says whether an RFC 8707 resource is one this gateway serves.
pub fn check_request(
    p: &AuthorizeParams,
    client: &Client,
    serves: &dyn Fn(&str) -> bool,
) -> Result<Pending, Refusal> {
    let Some(redirect_uri) = client.redirect_for(p.redirect_uri.as_deref()) else {
        let why = if p.redirect_uri.is_some() {
            "redirect_uri is not registered for this client (exact match required)"
        } else {
            "redirect_uri is required: the client has several registered"
        };
        return Err(Refusal::Direct(invalid_request(why)));
    };
    let state = p.state.clone();
    let refuse = |code: ErrorCode, d: &str| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone().filter(|s| s.len() <= MAX_CLIENT_STATE_LEN),
        error: OAuthError::new(code, d),
    };
    if state
        .as_ref()
        .is_some_and(|s| s.len() > MAX_CLIENT_STATE_LEN)
    {
        return Err(refuse(ErrorCode::InvalidRequest, "state is too long"));
    }
    match p.response_type.as_deref() {
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ))
        }
        None => {
            return Err(refuse(
                ErrorCode::InvalidRequest,
                "response_type is required",
            ))
        }
    }
    let Some(challenge) = p.code_challenge.as_deref() else {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "PKCE is required: code_challenge with code_challenge_method=S256",
        ));
    };
    if p.code_challenge_method.as_deref() != Some("S256") {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "code_challenge_method must be S256",
        ));
    }
    if challenge.len() != S256_CHALLENGE_LEN || !challenge.bytes().all(is_base64url_byte) {
        return Err(refuse(
            ErrorCode::InvalidRequest,
            "code_challenge is not a S256 challenge",
        ));
    }
    if p.scope.as_ref().is_some_and(|s| s.len() > MAX_SCOPE_LEN) {
        return Err(refuse(ErrorCode::InvalidScope, "scope is too long"));
    }
    if let Some(resource) = p.resource.as_deref() {
        if resource.len() > MAX_RESOURCE_LEN || !serves(resource) {
            return Err(refuse(
                ErrorCode::InvalidTarget,
                "resource is not served by this authorization server",
            ));
        }
    }
    Ok(Pending {
        client: client.binding(),
        redirect_uri,
        redirect_explicit: p.redirect_uri.is_some(),
        state,
        code_challenge: challenge.to_string(),
        scope: p.scope.clone(),
        resource: p.resource.clone(),
    })
}

/// Whether `redirect_uri`'s host is in `trusted_redirect_hosts` (already lowercased by
/// `Settings`), compared as a parsed host, exactly.
pub fn is_trusted_redirect(trusted_hosts: &[String], redirect_uri: &str) -> bool {
    let host = redirect_host(redirect_uri);
    !host.is_empty() && trusted_hosts.contains(&host)
}

/// A refusal found before the person consented (docs/spec-notes.md, "Broker mode"; RFC 9700
/// §4.11.2): anyone can register any redirect URI, so an automatic error redirect would
/// make the gateway an open redirector. Only a trusted redirect host is told by
/// redirect; everything else becomes a page the person sees.
pub fn before_consent(r: Refusal, trusted_hosts: &[String]) -> Refusal {
    match r {
        Refusal::Redirect {
            redirect_uri,
            error,
            ..
        } if !is_trusted_redirect(trusted_hosts, &redirect_uri) => Refusal::Direct(error),
        other => other,
    }
}

fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `redirect_uri` with the given parameters appended (keeping its own query).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut u = reqwest::Url::parse(redirect_uri).ok()?;
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Some(u.into())
}

/// A redirect to `location`: 302 after a GET, 303 after the consent POST.
pub fn redirect(status: StatusCode, location: &str) -> Response {
    let mut r = status.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Where an error goes at a validated redirect URI, with `state` and `iss` (RFC 9207).
pub fn error_location(
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    e: &OAuthError,
) -> Option<String> {
    let mut params = vec![
        ("error", e.code.as_str()),
        ("error_description", e.description.as_str()),
    ];
    if let Some(s) = state {
        params.push(("state", s));
    }
    params.push(("iss", issuer));
    redirect_with(redirect_uri, &params)
}

/// An error sent back to a validated redirect URI, with `state` and `iss` (RFC 9207).
pub fn redirect_error(
    status: StatusCode,
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    e: &OAuthError,
) -> Response {
    match error_location(issuer, redirect_uri, state, e) {
        Some(loc) => redirect(status, &loc),
        None => e.clone().into_response(),
    }
}

/// How the browser is sent on: a redirect (after a GET), or — after the consent form's
/// POST — a page that moves on by itself. Chromium checks the consent page's CSP
/// `form-action` on every redirect that follows the form's submission (the IdP, its own
/// login hops, the client's redirect URI), so the POST answers with a page and the next
/// hop is a fresh navigation that no `form-action` governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Onward {
    Redirect(StatusCode),
    Page,
}

/// Sends the browser to `location`; `whither` says in words where (for the page).
pub fn send_on(b: &BrokerState, how: Onward, location: &str, whither: &str) -> Response {
    match how {
        Onward::Redirect(status) => redirect(status, location),
        Onward::Page => consent::continue_page(&b.settings.brand, location, whither),
    }
}

/// An error for the client at its validated redirect URI, sent `how`.
pub fn send_error(b: &BrokerState, how: Onward, pending: &Pending, e: &OAuthError) -> Response {
    match error_location(
        &b.settings.issuer,
        &pending.redirect_uri,
        pending.state.as_deref(),
        e,
    ) {
        Some(loc) => send_on(
            b,
            how,
            &loc,
            &format!(
                "back to {}",
                consent::shown_authority(&pending.redirect_uri)
            ),
        ),
        None => b.fail_page(Step::Authorize, e.clone()),
    }
}

pub fn refusal_response(b: &BrokerState, status: StatusCode, r: Refusal) -> Response {
    match r {
        Refusal::Direct(e) => error_page(&b.settings.brand, &e),
        Refusal::Redirect {
            redirect_uri,
            state,
            error,
        } => redirect_error(
            status,
            &b.settings.issuer,
            &redirect_uri,
            state.as_deref(),
            &error,
        ),
    }
}

/// Resolves a client id: a registered (sealed) id, or a metadata document URL.
pub async fn resolve_client(b: &BrokerState, client_id: &str) -> Result<Client, OAuthError> {
    if is_metadata_document_id(client_id) {
        return b.cimd.resolve(client_id).await.map_err(|e| match e {
            super::cimd::CimdError::Busy => {
                OAuthError::new(ErrorCode::TemporarilyUnavailable, e.to_string())
            }
            e => invalid_client(e.to_string()),
        });
    }
    open_registered(&b.sealer, client_id)
        .map_err(|_| invalid_client("client_id is not one this server issued"))
}

/// Sealed upstream `state`: the pending request, the gateway's PKCE verifier, and the
/// browser that started the sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamState {
    #[serde(rename = "q")]
    pub pending: Pending,
    #[serde(rename = "v")]
    pub verifier: String,
    /// sha256 of the nonce in this sign-in's flow cookie ([`flow_cookie_name`]): the
    /// callback redirects (a code, or an error) only for the browser that consented, so
    /// a `state` someone obtained by consenting for their own client cannot turn the
    /// callback into a redirector for other people.
    #[serde(rename = "b")]
    pub browser: String,
}

/// Prefix of the cookie that binds an upstream sign-in to its browser.
pub const FLOW_COOKIE_PREFIX: &str = "chmcp_flow_";
/// Characters of the browser hash in the cookie's name: concurrent sign-ins in one
/// browser (one per cluster, say) keep separate cookies.
const FLOW_COOKIE_ID_CHARS: usize = 12;

/// The flow cookie's name for a browser hash (base64url, so any prefix is a valid name).
pub fn flow_cookie_name(browser_hash: &str) -> String {
    let id: String = browser_hash.chars().take(FLOW_COOKIE_ID_CHARS).collect();
    format!("{FLOW_COOKIE_PREFIX}{id}")
}

/// Cookies carry `Secure` when the gateway's public URL is https.
pub fn cookie_secure_attr(issuer: &str) -> &'static str {
    if crate::net::is_https_url(issuer) {
        "; Secure"
    } else {
        ""
    }
}

/// Sends the browser to the upstream IdP for `pending`.
pub async fn go_upstream(b: &BrokerState, how: Onward, pending: Pending) -> Response {
    let fail = |b: &BrokerState, pending: &Pending, d: String| {
        tracing::warn!(error = ?d.to_string(), "cannot start the upstream sign-in");
        b.count(Step::Authorize, "server_error");
        let e = OAuthError::new(
            ErrorCode::ServerError,
            "the identity provider is not available",
        );
        send_error(b, how, pending, &e)
    };
    let endpoints = match b.upstream.endpoints().await {
        Ok(e) => e,
        Err(e) => return fail(b, &pending, e.to_string()),
    };
    // 32 random bytes: a 43-character verifier, the RFC 7636 minimum length.
    let verifier = match b.sealer.random_token(32) {
        Ok(v) => v,
        Err(e) => return fail(b, &pending, e.to_string()),
    };
    let challenge = sha256_b64(&verifier);
    let nonce = match b.sealer.random_token(16) {
        Ok(v) => v,
        Err(e) => return fail(b, &pending, e.to_string()),
    };
    let browser = sha256_b64(&nonce);
    // SameSite=Lax: the IdP's redirect to the callback is a cross-site top-level GET.
    let cookie = format!(
        "{}={nonce}; Path=/oauth/callback; HttpOnly; SameSite=Lax; Max-Age={STATE_TTL_SECS}{}",
        flow_cookie_name(&browser),
        cookie_secure_attr(&b.settings.issuer)
    );
    let sealed = UpstreamState {
        pending: pending.clone(),
        verifier,
        browser,
    };
    let state = match b.sealer.seal(Kind::State, &sealed, now() + STATE_TTL_SECS) {
        Ok(s) => s,
        Err(e) => return fail(b, &pending, e.to_string()),
    };
    match upstream::authorization_url(&b.settings, &endpoints.authorization, &state, &challenge) {
        Ok(url) => {
            b.count(Step::Authorize, "ok");
            let whither = format!("to sign in at {}", consent::shown_authority(&url));
            let mut r = send_on(b, how, &url, &whither);
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => fail(b, &pending, e),
    }
}

pub async fn authorize_get(
    State(b): State<Arc<BrokerState>>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    // Everything here happens before the person consented: errors are pages unless the
    // redirect host is trusted (`before_consent`).
    let params = match AuthorizeParams::from_pairs(&pairs) {
        Ok(p) => p,
        Err(e) => return b.fail_page(Step::Authorize, e),
    };
    let client_id = match client_id_of(&params) {
        Ok(c) => c,
        Err(e) => return b.fail_page(Step::Authorize, e),
    };
    let client = match resolve_client(&b, client_id).await {
        Ok(c) => c,
        Err(e) => return b.fail_page(Step::Authorize, e),
    };
    let serves = b.serves.clone();
    let pending = match check_request(&params, &client, &*serves) {
        Ok(p) => p,
        Err(r) => {
            let r = before_consent(r, &b.settings.trusted_redirect_hosts);
            let code = match &r {
                Refusal::Direct(e) | Refusal::Redirect { error: e, .. } => e.code.as_str(),
            };
            b.count(Step::Authorize, code);
            return refusal_response(&b, StatusCode::FOUND, r);
        }
    };
    if is_trusted_redirect(&b.settings.trusted_redirect_hosts, &pending.redirect_uri) {
        return go_upstream(&b, Onward::Redirect(StatusCode::FOUND), pending).await;
    }
    consent::show(&b, &client, pending).await
}

#[cfg(test)]
mod tests {
    use super::super::client::{AuthMethod, ClientSource};
    use super::*;

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn client() -> Client {
        Client {
            id: "cid".into(),
            name: None,
            redirect_uris: vec!["https://app.example.com/cb".into()],
            auth_method: AuthMethod::None,
            source: ClientSource::Registered,
        }
    }

    fn params() -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some("cid".into()),
            redirect_uri: Some("https://app.example.com/cb".into()),
            state: Some("st".into()),
            scope: Some("openid".into()),
            code_challenge: Some(CHALLENGE.into()),
            code_challenge_method: Some("S256".into()),
            resource: Some("https://gw.example.com/mcp".into()),
        }
    }

    fn serves(r: &str) -> bool {
        r == "https://gw.example.com/mcp"
    }

    fn redirected_code(r: Result<Pending, Refusal>) -> ErrorCode {
        match r {
            Err(Refusal::Redirect {
                error,
                state,
                redirect_uri,
            }) => {
                assert_eq!(redirect_uri, "https://app.example.com/cb");
                assert_eq!(state.as_deref(), Some("st"));
                error.code
            }
            other => panic!("expected a redirect refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_good_request_becomes_a_pending_authorization() {
        let p = check_request(&params(), &client(), &serves).unwrap();
        assert_eq!(p.client, client().binding());
        assert_eq!(p.redirect_uri, "https://app.example.com/cb");
        assert!(p.redirect_explicit);
        assert_eq!(p.code_challenge, CHALLENGE);
        assert_eq!(p.resource.as_deref(), Some("https://gw.example.com/mcp"));
    }

    #[test]
    fn an_unregistered_redirect_is_answered_directly() {
        let mut p = params();
        p.redirect_uri = Some("https://evil.example.com/cb".into());
        assert!(
            matches!(check_request(&p, &client(), &serves), Err(Refusal::Direct(e)) if e.code == ErrorCode::InvalidRequest)
        );
        // Omitted with a single registered URI: that one is used.
        p.redirect_uri = None;
        assert!(
            !check_request(&p, &client(), &serves)
                .unwrap()
                .redirect_explicit
        );
    }

    #[test]
    fn pkce_s256_is_required() {
        let mut p = params();
        p.code_challenge = None;
        assert_eq!(
            redirected_code(check_request(&p, &client(), &serves)),
            ErrorCode::InvalidRequest
        );
        let mut p = params();
        p.code_challenge_method = Some("plain".into());
        assert_eq!(
            redirected_code(check_request(&p, &client(), &serves)),
            ErrorCode::InvalidRequest
        );
        let mut p = params();
        p.code_challenge = Some("short".into());
        assert_eq!(
            redirected_code(check_request(&p, &client(), &serves)),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn only_the_code_flow_is_supported() {
        let mut p = params();
        p.response_type = Some("token".into());
        assert_eq!(
            redirected_code(check_request(&p, &client(), &serves)),
            ErrorCode::UnsupportedResponseType
        );
    }

    #[test]
    fn a_resource_of_another_server_is_invalid_target() {
        let mut p = params();
        p.resource = Some("https://other.example.com/mcp".into());
        assert_eq!(
            redirected_code(check_request(&p, &client(), &serves)),
            ErrorCode::InvalidTarget
        );
    }

    #[test]
    fn pre_consent_errors_are_pages_unless_the_redirect_host_is_trusted() {
        let mut p = params();
        p.response_type = Some("token".into());
        let refusal = check_request(&p, &client(), &serves).unwrap_err();
        assert!(
            matches!(before_consent(refusal.clone(), &[]), Refusal::Direct(e) if e.code == ErrorCode::UnsupportedResponseType),
            "an untrusted redirect host is never redirected to"
        );
        assert!(matches!(
            before_consent(refusal.clone(), &["other.example.com".into()]),
            Refusal::Direct(_)
        ));
        assert_eq!(
            redirected_code(Err(before_consent(refusal, &["app.example.com".into()]))),
            ErrorCode::UnsupportedResponseType
        );
        // A direct refusal stays direct whatever is trusted.
        let direct = Refusal::Direct(invalid_request("x"));
        assert_eq!(
            before_consent(direct.clone(), &["app.example.com".into()]),
            direct
        );
    }

    #[test]
    fn trusted_hosts_are_compared_as_parsed_hosts() {
        let trusted = ["app.example.com".to_string()];
        assert!(is_trusted_redirect(&trusted, "https://APP.example.com/cb"));
        assert!(!is_trusted_redirect(
            &trusted,
            "https://app.example.com.evil.example/cb"
        ));
        assert!(!is_trusted_redirect(
            &trusted,
            "https://evil.example/cb?app.example.com"
        ));
        assert!(!is_trusted_redirect(&[String::new()], "not a url"));
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let pairs = vec![
            ("state".to_string(), "a".to_string()),
            ("state".to_string(), "b".to_string()),
        ];
        assert_eq!(
            AuthorizeParams::from_pairs(&pairs).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn every_error_response_carries_iss_rfc_9207() {
        let e = OAuthError::new(ErrorCode::AccessDenied, "no");
        for state in [Some("s"), None] {
            let loc = error_location(
                "https://gw.example.com",
                "https://app.example.com/cb",
                state,
                &e,
            )
            .unwrap();
            let q: Vec<(String, String)> = reqwest::Url::parse(&loc)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect();
            assert!(
                q.contains(&("iss".into(), "https://gw.example.com".into())),
                "{loc}"
            );
            assert!(
                q.contains(&("error".into(), "access_denied".into())),
                "{loc}"
            );
        }
    }

    #[test]
    fn error_redirects_keep_the_client_query_and_add_state_and_iss() {
        let loc = redirect_with(
            "https://app.example.com/cb?keep=1",
            &[("error", "access_denied"), ("state", "s t")],
        )
        .unwrap();
        assert_eq!(
            loc,
            "https://app.example.com/cb?keep=1&error=access_denied&state=s+t"
        );
    }
}

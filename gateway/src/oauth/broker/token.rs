//! `POST /oauth/token`: `authorization_code` and `refresh_token` grants. Client
//! authentication, code checks and PKCE are pure; the upstream exchange and the
//! id_token validation are the I/O at the edge.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::callback::AuthorizationCode;
use super::client::{client_binding, is_metadata_document_id, open_registered, secret_matches};
use super::crypto::{constant_time_eq, sha256_b64, Kind, SealError};
use super::error::{
    invalid_client, invalid_grant, invalid_request, invalid_target, ErrorCode, OAuthError,
};
use super::upstream::{UpstreamError, UpstreamTokens};
use super::{now, refresh, same_resource, BrokerState, Step};
use crate::config::UpstreamToken;
use crate::identity::claims::{Claims, UnverifiedPayload};
use crate::oauth::sealed::{seal_access_token, Grant};

/// Used for `expires_in` when neither the IdP nor the token says.
const DEFAULT_EXPIRES_IN: u64 = 300;

/// The sealed refresh token handed to clients. It expires `refresh_token_max_age` after
/// the sign-in it descends from (`sign_in`), however often it is refreshed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshWrapper {
    #[serde(rename = "c")]
    pub client: String,
    #[serde(rename = "u")]
    pub upstream: String,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The grant (one per sign-in): refresh.rs counts its generations.
    #[serde(rename = "g", default)]
    pub grant: String,
    #[serde(rename = "n", default)]
    pub generation: u64,
    /// Unix seconds of the original sign-in.
    #[serde(rename = "t", default)]
    pub sign_in: u64,
}

/// Which grant a new wrapper belongs to.
#[derive(Debug, Clone)]
struct Lineage {
    grant: String,
    generation: u64,
    sign_in: u64,
}

/// Form parameters, each at most once (RFC 6749 §3.2).
pub fn single_params(pairs: Vec<(String, String)>) -> Result<HashMap<String, String>, OAuthError> {
    let mut out = HashMap::new();
    for (k, v) in pairs {
        if out.contains_key(&k) {
            return Err(invalid_request(format!("`{k}` is given more than once")));
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// Percent-decoding for the Basic credentials (RFC 6749 §2.3.1 form-encodes them).
/// `None` when a `%` is not followed by two hex digits, or the result is not UTF-8.
pub fn form_decode(s: &str) -> Option<String> {
    let well_formed = s.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    // `+` is a space in form encoding; an escaped plus (`%2B`) decodes after this.
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// The client a token request is from, after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub binding: String,
}

/// Client authentication: `none` for public clients (registered with `none`, or
/// metadata documents), `client_secret_basic` / `client_secret_post` for confidential
/// registered clients.
pub fn authenticate(
    b: &BrokerState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Authenticated, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("basic")
                .then(|| rest.trim().to_string())
        });
    let challenged = |mut e: OAuthError| {
        e.basic_challenge = basic.is_some();
        e
    };
    let (client_id, secret) = match &basic {
        Some(encoded) => {
            if form.contains_key("client_secret") {
                return Err(invalid_request(
                    "use one client authentication method, not two",
                ));
            }
            let raw = STANDARD
                .decode(encoded)
                .ok()
                .and_then(|r| String::from_utf8(r).ok());
            let (id, secret) = raw
                .as_deref()
                .and_then(|r| r.split_once(':'))
                .and_then(|(i, s)| Some((form_decode(i)?, form_decode(s)?)))
                .ok_or_else(|| challenged(invalid_client("malformed Basic credentials")))?;
            if form.get("client_id").is_some_and(|f| *f != id) {
                return Err(challenged(invalid_client(
                    "client_id differs from the Basic credentials",
                )));
            }
            (id, Some(secret))
        }
        None => {
            let id = form
                .get("client_id")
                .cloned()
                .ok_or_else(|| invalid_client("client_id is required"))?;
            (id, form.get("client_secret").cloned())
        }
    };
    if is_metadata_document_id(&client_id) {
        // Public by construction (cimd.rs): PKCE is the proof, the binding is the URL.
        return Ok(Authenticated {
            binding: client_binding(&client_id),
        });
    }
    let client = open_registered(&b.sealer, &client_id)
        .map_err(|_| challenged(invalid_client("unknown client_id")))?;
    if client.is_confidential() {
        let secret = secret.ok_or_else(|| {
            invalid_client("this client must authenticate with its client_secret")
        })?;
        if !secret_matches(&b.sealer, &client_id, &secret) {
            return Err(challenged(invalid_client("client authentication failed")));
        }
    }
    Ok(Authenticated {
        binding: client.binding(),
    })
}

/// RFC 7636 §4.1: 43–128 unreserved characters.
fn verifier_well_formed(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
}

/// The pure checks of an `authorization_code` grant, on an opened code.
pub fn check_code_grant(
    code: &AuthorizationCode,
    client: &Authenticated,
    form: &HashMap<String, String>,
    serves: &dyn Fn(&str) -> bool,
) -> Result<(), OAuthError> {
    let p = &code.pending;
    if !constant_time_eq(&p.client, &client.binding) {
        return Err(invalid_grant("the code was issued to another client"));
    }
    match form.get("redirect_uri") {
        Some(r) if *r != p.redirect_uri => {
            return Err(invalid_grant(
                "redirect_uri differs from the authorization request",
            ))
        }
        None if p.redirect_explicit => {
            return Err(invalid_grant(
                "redirect_uri is required: the authorization request had one",
            ))
        }
        _ => {}
    }
    let verifier = form
        .get("code_verifier")
        .ok_or_else(|| invalid_request("code_verifier is required (PKCE)"))?;
    if !verifier_well_formed(verifier)
        || !constant_time_eq(&sha256_b64(verifier), &p.code_challenge)
    {
        return Err(invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    check_resource(form, p.resource.as_deref(), serves)
}

fn check_resource(
    form: &HashMap<String, String>,
    granted: Option<&str>,
    serves: &dyn Fn(&str) -> bool,
) -> Result<(), OAuthError> {
    if let Some(r) = form.get("resource") {
        if !serves(r) {
            return Err(invalid_target(
                "resource is not served by this authorization server",
            ));
        }
        // Compared as the refresh grant compares (`refresh::narrowed`): a trailing slash
        // does not make another resource.
        if granted.is_some_and(|g| !same_resource(g, r)) {
            return Err(invalid_target("resource differs from the one authorized"));
        }
    }
    Ok(())
}

/// An upstream token's payload, unverified. Read only to choose which token to hand out
/// and for how long: both came to us straight from the IdP's token endpoint over TLS,
/// and whoever receives the chosen one (the gate, ClickHouse, the verifier) checks its
/// signature before trusting anything in it.
fn upstream_payload(token: &str) -> Option<UnverifiedPayload> {
    UnverifiedPayload::decode(token).ok()
}

/// Which upstream token the client gets, and for how long (docs/spec-notes.md, "Broker mode": `upstream_token`).
pub fn pick_token(
    mode: UpstreamToken,
    t: &UpstreamTokens,
    audience: &str,
    now: u64,
) -> Result<(String, u64), &'static str> {
    let from_exp = |tok: &str| {
        upstream_payload(tok)
            .and_then(|p| p.exp())
            .map(|e| e.saturating_sub(now))
    };
    let access = |t: &UpstreamTokens| {
        let tok = t
            .access_token
            .clone()
            .ok_or("the identity provider returned no access_token")?;
        let ttl = t
            .expires_in
            .or_else(|| from_exp(&tok))
            .unwrap_or(DEFAULT_EXPIRES_IN);
        Ok((tok, ttl))
    };
    let id = |t: &UpstreamTokens| {
        let tok = t
            .id_token
            .clone()
            .ok_or("the identity provider returned no id_token")?;
        let ttl = from_exp(&tok).unwrap_or(DEFAULT_EXPIRES_IN);
        Ok((tok, ttl))
    };
    match mode {
        UpstreamToken::AccessToken => access(t),
        UpstreamToken::IdToken => id(t),
        UpstreamToken::Auto => {
            let audience_jwt = !audience.is_empty()
                && t.access_token
                    .as_deref()
                    .and_then(upstream_payload)
                    .is_some_and(|p| p.audience_contains(audience));
            if audience_jwt {
                access(t)
            } else {
                id(t)
            }
        }
    }
}

/// The JSON answer, with the no-store headers RFC 6749 §5.1 requires.
pub fn token_response(body: &Value) -> Response {
    let mut r = crate::reply::json_response(StatusCode::OK, body);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

fn upstream_failure(e: UpstreamError) -> OAuthError {
    match e {
        // The upstream code is single-use: a replayed or expired code of ours ends here.
        UpstreamError::Rejected { error, .. } if error == "invalid_grant" => invalid_grant(
            "the identity provider refused the grant (already used, expired or revoked)",
        ),
        UpstreamError::Unreachable(_) => OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "the identity provider is unreachable",
        ),
        other => {
            tracing::warn!(error = ?other.to_string(), "upstream token request failed");
            OAuthError::new(
                ErrorCode::ServerError,
                "the identity provider did not complete the request",
            )
        }
    }
}

/// Validates a fresh upstream id_token (JWKS, iss, aud = the gateway's client id, exp);
/// its verified claims when there was one.
async fn check_id_token(
    b: &BrokerState,
    t: &UpstreamTokens,
    required: bool,
) -> Result<Option<Claims>, OAuthError> {
    match t.id_token.as_deref() {
        Some(id) => b.id_tokens.verify(id).await.map(Some).map_err(|why| {
            tracing::warn!(reason = ?why, "upstream id_token refused");
            OAuthError::new(
                ErrorCode::ServerError,
                format!("the identity provider's id_token is not valid: {why}"),
            )
        }),
        None if required => Err(OAuthError::new(
            ErrorCode::ServerError,
            "the identity provider returned no id_token (is `openid` in oauth.scopes?)",
        )),
        None => Ok(None),
    }
}

/// The access token the client gets and its `expires_in`: the upstream token itself
/// (`token_mode: passthrough`), or one of ours sealed around it. Before sealing, the
/// upstream token is judged exactly as the gate judges a bearer in passthrough mode
/// (`validate_tokens`), so the gate can trust the seal instead of asking the JWKS again;
/// one the gate would refuse is never sealed (fail closed).
async fn access_token(
    b: &BrokerState,
    t: &UpstreamTokens,
    resource: Option<&str>,
    identity: Option<&Claims>,
) -> Result<(String, u64), OAuthError> {
    let now = now();
    let (upstream, ttl) = pick_token(b.settings.upstream_token, t, &b.settings.audience, now)
        .map_err(|m| OAuthError::new(ErrorCode::ServerError, m))?;
    if !b.settings.sealed {
        return Ok((upstream, ttl));
    }
    let claims = if b.settings.validate_tokens {
        let c = b.id_tokens.verify_for_gate(&upstream).await.map_err(|why| {
            tracing::warn!(reason = ?why, "the upstream token would not pass the gate; not sealed");
            OAuthError::new(
                ErrorCode::ServerError,
                format!("the identity provider's token would not pass this gateway's checks (is oauth.audience what the IdP puts in aud?): {why}"),
            )
        })?;
        Some(c)
    } else {
        None
    };
    let grant = Grant {
        upstream: &upstream,
        ttl,
        claims: claims.as_ref(),
        identity,
        resource,
    };
    let minted = seal_access_token(&b.sealer, &grant, now).map_err(|e| match e {
        SealError::Expired => OAuthError::new(
            ErrorCode::ServerError,
            "the identity provider issued a token that has already expired (check the clocks)",
        ),
        other => OAuthError::new(ErrorCode::ServerError, other.to_string()),
    })?;
    Ok((minted.token, minted.expires_in))
}

/// The answer: the access token and a sealed wrapper around the upstream refresh token.
/// `resource` is what the wrapper grants (not narrowed by this request).
fn answer(
    b: &BrokerState,
    t: &UpstreamTokens,
    (access_token, expires_in): (String, u64),
    client: &Authenticated,
    resource: Option<String>,
    previous_refresh: Option<&str>,
    lineage: Lineage,
) -> Result<Value, OAuthError> {
    let mut out = serde_json::Map::new();
    out.insert("access_token".into(), json!(access_token));
    out.insert("token_type".into(), json!("Bearer"));
    out.insert("expires_in".into(), json!(expires_in));
    // The IdP's rotation passes through: its new refresh token goes into the new
    // wrapper. When it does not rotate, the old one is carried on.
    if let Some(upstream) = t.refresh_token.as_deref().or(previous_refresh) {
        let until = refresh::grant_end(lineage.sign_in, b.settings.refresh_max_age_secs);
        let wrapper = RefreshWrapper {
            client: client.binding.clone(),
            upstream: upstream.to_string(),
            resource,
            grant: lineage.grant,
            generation: lineage.generation,
            sign_in: lineage.sign_in,
        };
        let sealed = b
            .sealer
            .seal(Kind::RefreshToken, &wrapper, until)
            .map_err(|e| match e {
                SealError::Expired => {
                    invalid_grant("the sign-in has reached refresh_token_max_age: sign in again")
                }
                other => OAuthError::new(ErrorCode::ServerError, other.to_string()),
            })?;
        out.insert("refresh_token".into(), json!(sealed));
    }
    Ok(Value::Object(out))
}

async fn code_grant(
    b: &BrokerState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let client = authenticate(b, headers, form)?;
    let sealed = form
        .get("code")
        .ok_or_else(|| invalid_request("code is required"))?;
    let code: AuthorizationCode = b
        .sealer
        .open(Kind::AuthorizationCode, sealed, now())
        .map_err(|e| match e {
            SealError::Expired => invalid_grant("the authorization code has expired"),
            _ => invalid_grant("the authorization code is not valid"),
        })?;
    let serves = b.serves.clone();
    check_code_grant(&code, &client, form, &*serves)?;
    let t = b
        .upstream
        .exchange_code(
            &code.upstream_code,
            &code.verifier,
            &b.settings.callback_url(),
        )
        .await
        .map_err(upstream_failure)?;
    let identity = check_id_token(b, &t, true).await?;
    // The authorized resource when there was one (the form's may differ only by a
    // trailing slash, see `check_resource`), as a refresh keeps the granted one.
    let resource = code
        .pending
        .resource
        .clone()
        .or_else(|| form.get("resource").cloned());
    let access = access_token(b, &t, resource.as_deref(), identity.as_ref()).await?;
    let grant = b
        .sealer
        .random_token(16)
        .map_err(|e| OAuthError::new(ErrorCode::ServerError, e.to_string()))?;
    let lineage = Lineage {
        grant,
        generation: 0,
        sign_in: now(),
    };
    answer(b, &t, access, &client, resource, None, lineage)
}

async fn refresh_grant(
    b: &BrokerState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Value, OAuthError> {
    let client = authenticate(b, headers, form)?;
    let sealed = form
        .get("refresh_token")
        .ok_or_else(|| invalid_request("refresh_token is required"))?;
    let wrapper: RefreshWrapper =
        b.sealer
            .open(Kind::RefreshToken, sealed, now())
            .map_err(|e| match e {
                SealError::Expired => invalid_grant("the refresh token has expired: sign in again"),
                _ => invalid_grant("the refresh token is not valid"),
            })?;
    if !constant_time_eq(&wrapper.client, &client.binding) {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    let now = now();
    // Wrappers sealed before grants were counted carry no sign-in time: their first
    // refresh starts the count (once; every wrapper after it carries the time).
    let sign_in = if wrapper.sign_in == 0 {
        now
    } else {
        wrapper.sign_in
    };
    let until = refresh::grant_end(sign_in, b.settings.refresh_max_age_secs);
    if wrapper.sign_in != 0 && now >= until {
        return Err(invalid_grant(
            "the sign-in has reached refresh_token_max_age: sign in again",
        ));
    }
    let serves = b.serves.clone();
    let resource = refresh::narrowed(
        wrapper.resource.as_deref(),
        form.get("resource").map(String::as_str),
        &*serves,
    )?;
    if !b.settings.sealed && resource != wrapper.resource {
        // The client would hold the IdP's own token, valid wherever its audience is:
        // it cannot be narrowed to one cluster, so saying it was would be a lie.
        return Err(invalid_target(
            "token_mode is passthrough: the identity provider's token cannot be narrowed to one resource",
        ));
    }
    // Pre-grant wrappers: the sealed token itself names the grant.
    let grant = if wrapper.grant.is_empty() {
        sha256_b64(sealed)
    } else {
        wrapper.grant.clone()
    };
    match b.ledger.claim(&grant, wrapper.generation, until, now) {
        refresh::Claim::Granted => {}
        refresh::Claim::Replayed => {
            tracing::warn!(
                grant = %crate::fingerprint::token_fingerprint(&grant),
                "a refresh token was used twice: its grant is revoked on this replica"
            );
            if b.rotation.rotates() {
                // Let the IdP see the reuse too: its reuse detection revokes the
                // family everywhere, other replicas included. The answer is ignored.
                let _ = b.upstream.refresh(&wrapper.upstream).await;
            }
            return Err(invalid_grant(
                "this refresh token was already used; the sign-in is revoked: sign in again",
            ));
        }
        refresh::Claim::Full => {
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "too many live sign-ins on this replica",
            ))
        }
    }
    let t = match b.upstream.refresh(&wrapper.upstream).await {
        Ok(t) => t,
        Err(e) => {
            if !matches!(&e, UpstreamError::Rejected { error, .. } if error == "invalid_grant") {
                b.ledger.release(&grant, wrapper.generation);
            }
            return Err(upstream_failure(e));
        }
    };
    if b.rotation.observe(refresh::rotated(
        &wrapper.upstream,
        t.refresh_token.as_deref(),
    )) {
        tracing::warn!("{}", refresh::NO_ROTATION_WARNING);
    }
    // Refresh responses may omit the id_token (RFC 6749 §6); validate it when present.
    let identity = check_id_token(b, &t, false).await?;
    let access = access_token(b, &t, resource.as_deref(), identity.as_ref()).await?;
    let lineage = Lineage {
        grant,
        generation: wrapper.generation + 1,
        sign_in,
    };
    answer(
        b,
        &t,
        access,
        &client,
        wrapper.resource.clone(),
        Some(&wrapper.upstream),
        lineage,
    )
}

pub async fn token(
    State(b): State<Arc<BrokerState>>,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form = match single_params(pairs) {
        Ok(f) => f,
        Err(e) => return b.fail(Step::Token, e),
    };
    let (step, result) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => (Step::Token, code_grant(&b, &headers, &form).await),
        Some("refresh_token") => (Step::Refresh, refresh_grant(&b, &headers, &form).await),
        Some(_) => (
            Step::Token,
            Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code or refresh_token",
            )),
        ),
        None => (Step::Token, Err(invalid_request("grant_type is required"))),
    };
    match result {
        Ok(body) => {
            b.count(step, "ok");
            token_response(&body)
        }
        Err(e) => b.fail(step, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jwt(claims: Value) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.sig",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn auto_picks_an_access_token_for_our_audience() {
        let t = UpstreamTokens {
            access_token: Some(jwt(
                json!({"aud": ["https://mcp.example.com/", "x"], "exp": 1100}),
            )),
            id_token: Some(jwt(json!({"aud": "gw", "exp": 1050}))),
            expires_in: Some(90),
            ..Default::default()
        };
        let (tok, ttl) =
            pick_token(UpstreamToken::Auto, &t, "https://mcp.example.com/", 1000).unwrap();
        assert_eq!(tok, t.access_token.clone().unwrap());
        assert_eq!(ttl, 90);
    }

    #[test]
    fn auto_falls_back_to_the_id_token_like_google() {
        let t = UpstreamTokens {
            access_token: Some("ya29.opaque-google-token".into()),
            id_token: Some(jwt(json!({"aud": "gw", "exp": 1050}))),
            expires_in: Some(3599),
            ..Default::default()
        };
        let (tok, ttl) =
            pick_token(UpstreamToken::Auto, &t, "https://mcp.example.com/", 1000).unwrap();
        assert_eq!(tok, t.id_token.clone().unwrap());
        assert_eq!(ttl, 50, "an id_token lives until its own exp");
        let other_aud = UpstreamTokens {
            access_token: Some(jwt(json!({"aud": "other"}))),
            ..t.clone()
        };
        assert_eq!(
            pick_token(
                UpstreamToken::Auto,
                &other_aud,
                "https://mcp.example.com/",
                1000
            )
            .unwrap()
            .0,
            t.id_token.clone().unwrap()
        );
    }

    #[test]
    fn explicit_modes_take_what_they_name() {
        let t = UpstreamTokens {
            access_token: Some("AT".into()),
            id_token: None,
            expires_in: None,
            ..Default::default()
        };
        assert_eq!(
            pick_token(UpstreamToken::AccessToken, &t, "", 0).unwrap(),
            ("AT".into(), DEFAULT_EXPIRES_IN)
        );
        assert!(pick_token(UpstreamToken::IdToken, &t, "", 0).is_err());
    }

    #[test]
    fn repeated_parameters_are_refused() {
        let e = single_params(vec![
            ("code".into(), "a".into()),
            ("code".into(), "b".into()),
        ])
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }

    #[test]
    fn verifier_format() {
        assert!(verifier_well_formed(&"a".repeat(43)));
        assert!(!verifier_well_formed(&"a".repeat(42)));
        assert!(!verifier_well_formed(&"a".repeat(129)));
        assert!(!verifier_well_formed(&format!("{}!", "a".repeat(43))));
    }

    #[test]
    fn upstream_payloads_need_three_parts() {
        assert!(upstream_payload("a.b").is_none());
        assert!(upstream_payload("opaque").is_none());
        assert!(upstream_payload(&jwt(json!({"aud": "x"})))
            .unwrap()
            .audience_contains("x"));
    }
}

#[cfg(test)]
mod grant_tests {
    use super::super::authorize::Pending;
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn code(resource: Option<&str>) -> AuthorizationCode {
        AuthorizationCode {
            pending: Pending {
                client: client_binding("cid"),
                redirect_uri: "https://app.example.com/cb".into(),
                redirect_explicit: true,
                state: None,
                code_challenge: sha256_b64(VERIFIER),
                scope: None,
                resource: resource.map(str::to_string),
            },
            upstream_code: "u".into(),
            verifier: "v".into(),
        }
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn me() -> Authenticated {
        Authenticated {
            binding: client_binding("cid"),
        }
    }

    fn serves(r: &str) -> bool {
        r.starts_with("https://gw.example.com/")
    }

    fn good() -> HashMap<String, String> {
        form(&[
            ("redirect_uri", "https://app.example.com/cb"),
            ("code_verifier", VERIFIER),
        ])
    }

    #[test]
    fn a_matching_request_passes() {
        assert!(check_code_grant(&code(None), &me(), &good(), &serves).is_ok());
    }

    #[test]
    fn a_wrong_verifier_is_invalid_grant() {
        let f = form(&[
            ("redirect_uri", "https://app.example.com/cb"),
            ("code_verifier", &"x".repeat(43)),
        ]);
        assert_eq!(
            check_code_grant(&code(None), &me(), &f, &serves)
                .unwrap_err()
                .code,
            ErrorCode::InvalidGrant
        );
        let f = form(&[("redirect_uri", "https://app.example.com/cb")]);
        assert_eq!(
            check_code_grant(&code(None), &me(), &f, &serves)
                .unwrap_err()
                .code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn another_client_or_redirect_is_invalid_grant() {
        let other = Authenticated {
            binding: client_binding("other"),
        };
        assert_eq!(
            check_code_grant(&code(None), &other, &good(), &serves)
                .unwrap_err()
                .code,
            ErrorCode::InvalidGrant
        );
        let f = form(&[
            ("redirect_uri", "https://app.example.com/other"),
            ("code_verifier", VERIFIER),
        ]);
        assert_eq!(
            check_code_grant(&code(None), &me(), &f, &serves)
                .unwrap_err()
                .code,
            ErrorCode::InvalidGrant
        );
        let f = form(&[("code_verifier", VERIFIER)]);
        assert_eq!(
            check_code_grant(&code(None), &me(), &f, &serves)
                .unwrap_err()
                .code,
            ErrorCode::InvalidGrant
        );
    }

    #[test]
    fn the_resource_must_be_ours_and_the_authorized_one() {
        let mut f = good();
        f.insert(
            "resource".into(),
            "https://elsewhere.example.com/mcp".into(),
        );
        assert_eq!(
            check_code_grant(&code(None), &me(), &f, &serves)
                .unwrap_err()
                .code,
            ErrorCode::InvalidTarget
        );
        f.insert("resource".into(), "https://gw.example.com/mcp/b".into());
        assert_eq!(
            check_code_grant(
                &code(Some("https://gw.example.com/mcp/a")),
                &me(),
                &f,
                &serves
            )
            .unwrap_err()
            .code,
            ErrorCode::InvalidTarget
        );
        // The authorized one; a trailing slash is the same resource, as on a refresh.
        for same in [
            "https://gw.example.com/mcp/a",
            "https://gw.example.com/mcp/a/",
        ] {
            f.insert("resource".into(), same.into());
            assert!(
                check_code_grant(
                    &code(Some("https://gw.example.com/mcp/a")),
                    &me(),
                    &f,
                    &serves
                )
                .is_ok(),
                "{same}"
            );
        }
    }
}

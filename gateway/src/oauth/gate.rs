//! The OAuth gate on MCP requests: bearer extraction, the `exp` check, scope checks,
//! and the exact challenges (docs/spec-notes.md, "The gate").
//!
//! Pure: headers and configuration in, an admitted bearer or a [`GateRejection`] out.
//! The transport turns a rejection into a response verbatim. Signature, `iss` and `aud`
//! checks (`validate_tokens`) belong to the JWKS verifier; this module only decides what
//! it can without keys, and reads nothing from an unverified token but its `exp`, to
//! refuse it early.

use std::time::{Duration, SystemTime};

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use serde_json::json;

use super::exp_memo::ExpMemo;
use super::metadata::{advertised_scopes, public_origin};
use crate::config::OAuthConfig;
use crate::fingerprint::{sha256, token_fingerprint};
use crate::identity::claims::{Claims, UnverifiedPayload};
use crate::routing::Cluster;

/// Clock skew tolerated on `exp` (docs/spec-notes.md, "The gate"): the gateway, the IdP and ClickHouse run on
/// different machines.
pub const EXP_LEEWAY: Duration = Duration::from_secs(60);

/// Why a request carries no usable bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerProblem {
    /// No `Authorization` header.
    Missing,
    /// A header with another scheme (e.g. `Basic`).
    NotBearer,
    /// `Bearer` with nothing after it.
    Empty,
    /// More than one `Authorization` header.
    Multiple,
    /// Not a single RFC 6750 `b64token` (spaces, commas, non-ASCII...).
    Malformed,
}

impl BearerProblem {
    pub fn description(self) -> &'static str {
        match self {
            BearerProblem::Missing => "no bearer token in the Authorization header",
            BearerProblem::NotBearer => "the Authorization header must use the Bearer scheme",
            BearerProblem::Empty => "the Authorization header holds an empty bearer token",
            BearerProblem::Multiple => "more than one Authorization header",
            BearerProblem::Malformed => "the bearer token is malformed",
        }
    }
}

/// The bearer from the `Authorization` header, the only place it is read from (never
/// the URL, where it would end up in logs). The scheme is case-insensitive.
pub fn extract_bearer(headers: &HeaderMap) -> Result<&str, BearerProblem> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(BearerProblem::Missing);
    };
    if values.next().is_some() {
        return Err(BearerProblem::Multiple);
    }
    let value = value.to_str().map_err(|_| BearerProblem::Malformed)?.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerProblem::NotBearer);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(BearerProblem::Empty);
    }
    if !is_b64token(token) {
        return Err(BearerProblem::Malformed);
    }
    Ok(token)
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(t: &str) -> bool {
    let body = t.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Why a token was refused before reaching ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenProblem {
    Bearer(BearerProblem),
    /// A JWT whose `exp` (plus [`EXP_LEEWAY`]) has passed.
    Expired,
    /// A JWT whose `exp` is not a number.
    BadExp,
}

impl TokenProblem {
    pub fn description(&self) -> &'static str {
        match self {
            TokenProblem::Bearer(b) => b.description(),
            TokenProblem::Expired => "the token has expired",
            TokenProblem::BadExp => "the token's exp claim is not a number",
        }
    }
}

/// A bearer that passed the gate's own checks: present, well-formed, and not past an
/// `exp` it states. Not an identity: nothing here names the caller. Under
/// `validate_tokens` the JWKS check turns it into verified [`Claims`]; otherwise
/// ClickHouse alone judges it (docs/spec-notes.md, "The gate").
#[derive(Clone)]
pub struct AdmittedBearer<'a> {
    pub token: &'a str,
}

// Manual: a derived Debug would print the token into any log line that shows this.
impl std::fmt::Debug for AdmittedBearer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmittedBearer")
            .field(
                "token",
                &format_args!("sha256:{}…", token_fingerprint(self.token)),
            )
            .finish()
    }
}

/// The `exp` pre-check (what [`admit`] runs through `oauth::exp_memo`), on a payload
/// nobody has verified yet, so it may only reject: a JWT past `exp` + [`EXP_LEEWAY`], or
/// with an `exp` that is not a number, is refused before any key is fetched or ClickHouse
/// is asked. Whatever else the payload says is not read. A token that does not decode as
/// a JWT is opaque and passes on to the real judge (the JWKS check, or ClickHouse).
#[cfg(test)]
pub(crate) fn check_token(
    token: &str,
    now: SystemTime,
) -> Result<AdmittedBearer<'_>, TokenProblem> {
    judge_exp(unverified_exp(token)?, now)?;
    Ok(AdmittedBearer { token })
}

/// The part of the `exp` pre-check that depends on the token alone: its stated `exp`
/// (`None`: opaque, or a JWT without one), or [`TokenProblem::BadExp`]. Only rejects:
/// the payload is unverified.
pub fn unverified_exp(token: &str) -> Result<Option<SystemTime>, TokenProblem> {
    match UnverifiedPayload::decode(token) {
        Ok(payload) => payload.expires_at().map_err(|_| TokenProblem::BadExp),
        Err(_) => Ok(None),
    }
}

/// The part of the `exp` pre-check that depends on the clock: refused once `now` is past
/// `exp` + [`EXP_LEEWAY`].
pub fn judge_exp(exp: Option<SystemTime>, now: SystemTime) -> Result<(), TokenProblem> {
    match exp {
        Some(exp) if now > exp.checked_add(EXP_LEEWAY).unwrap_or(exp) => Err(TokenProblem::Expired),
        _ => Ok(()),
    }
}

/// Where the request was served: what the challenge's `resource_metadata` is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServingContext<'a> {
    /// `http` or `https`, as the request reached the gateway.
    pub request_scheme: &'a str,
    /// The request's `Host` (or `:authority`).
    pub host: &'a str,
    pub cluster: Cluster<'a>,
}

/// The URL of this resource's metadata, from the host that served the request (not
/// `public_resource_url`, which may name a shared audience hosted elsewhere). See
/// [`Cluster::metadata_path`] for the path in each mode.
pub fn resource_metadata_url(oauth: &OAuthConfig, ctx: &ServingContext<'_>) -> String {
    format!(
        "{}{}",
        public_origin(oauth, ctx.request_scheme, ctx.host),
        ctx.cluster.metadata_path()
    )
}

/// A refusal, ready to send: status, `WWW-Authenticate` value, JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRejection {
    pub status: u16,
    pub www_authenticate: String,
    pub body: serde_json::Value,
}

impl GateRejection {
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::UNAUTHORIZED)
    }
}

/// An RFC 7230 quoted-string: `\` and `"` escaped, control characters dropped so nothing
/// can break out of the header.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn challenge(error: &str, description: &str, metadata_url: &str, scopes: &[String]) -> String {
    let mut v = format!(
        "Bearer error={}, error_description={}, resource_metadata={}",
        quoted(error),
        quoted(description),
        quoted(metadata_url)
    );
    // RFC 6750 §3: the attribute is optional; an empty scope="" would say "none needed".
    if !scopes.is_empty() {
        v.push_str(", scope=");
        v.push_str(&quoted(&scopes.join(" ")));
    }
    v
}

/// `401 invalid_token` with the challenge of docs/spec-notes.md, "The gate".
pub fn invalid_token(
    oauth: &OAuthConfig,
    ctx: &ServingContext<'_>,
    description: &str,
) -> GateRejection {
    let www = challenge(
        "invalid_token",
        description,
        &resource_metadata_url(oauth, ctx),
        &advertised_scopes(oauth),
    );
    GateRejection {
        status: 401,
        www_authenticate: www,
        body: json!({"error": "invalid_token", "error_description": description}),
    }
}

/// `403 insufficient_scope` (RFC 6750 §3.1), naming the scopes that were missing; the
/// `scope` attribute lists everything a re-authorization should ask for.
pub fn insufficient_scope(
    oauth: &OAuthConfig,
    ctx: &ServingContext<'_>,
    missing: &[String],
) -> GateRejection {
    let description = format!(
        "the token lacks the required scope(s): {}",
        missing.join(" ")
    );
    let www = challenge(
        "insufficient_scope",
        &description,
        &resource_metadata_url(oauth, ctx),
        &advertised_scopes(oauth),
    );
    GateRejection {
        status: 403,
        www_authenticate: www,
        body: json!({"error": "insufficient_scope", "error_description": description, "missing_scopes": missing}),
    }
}

/// The gate for every MCP request, every method (`tools/list` included, so clients
/// re-authenticate instead of showing stale tools): a bearer in the header, not past
/// `exp`. Anything else is `401` with the challenge.
/// `403` for a token the gateway will not let through whatever its scopes (roles
/// filtered to nothing, fail closed).
pub fn forbidden(
    oauth: &OAuthConfig,
    ctx: &ServingContext<'_>,
    description: &str,
) -> GateRejection {
    let www = challenge(
        "insufficient_scope",
        description,
        &resource_metadata_url(oauth, ctx),
        &advertised_scopes(oauth),
    );
    GateRejection {
        status: 403,
        www_authenticate: www,
        body: json!({"error": "insufficient_scope", "error_description": description}),
    }
}

/// The bearer and its sha256 (computed once here; the catalog key, the anonymous
/// caller's name and the cancellation scope reuse it), or the challenge. The `exp`
/// pre-check ([`unverified_exp`], then [`judge_exp`]) has its decoding remembered per
/// token in `memo`.
pub fn admit<'h>(
    headers: &'h HeaderMap,
    oauth: &OAuthConfig,
    ctx: &ServingContext<'_>,
    now: SystemTime,
    memo: &ExpMemo,
) -> Result<(AdmittedBearer<'h>, [u8; 32]), GateRejection> {
    let refuse = |problem: TokenProblem| invalid_token(oauth, ctx, problem.description());
    let token = extract_bearer(headers).map_err(|p| refuse(TokenProblem::Bearer(p)))?;
    let digest = sha256(token.as_bytes());
    memo.check(&digest, token, now).map_err(refuse)?;
    Ok((AdmittedBearer { token }, digest))
}

/// The required scopes `granted` lacks, in configuration order.
pub fn missing_scopes(granted: &[String], required: &[String]) -> Vec<String> {
    required
        .iter()
        .filter(|r| !granted.contains(r))
        .cloned()
        .collect()
}

/// `required_scopes`, judged on verified claims only (the configuration refuses
/// `required_scopes` without `validate_tokens`: unverified scopes prove nothing). The
/// scope rule is the one of [`Claims::scopes`], shared with the verifier.
pub fn check_required_scopes(
    oauth: &OAuthConfig,
    ctx: &ServingContext<'_>,
    claims: &Claims,
) -> Result<(), GateRejection> {
    if oauth.required_scopes.is_empty() {
        return Ok(());
    }
    let missing = missing_scopes(&claims.scopes(), &oauth.required_scopes);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(insufficient_scope(oauth, ctx, &missing))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::Value;

    use super::*;
    use crate::identity::claims::test_tokens::jwt;

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    fn oauth() -> OAuthConfig {
        OAuthConfig {
            enabled: true,
            public_resource_url: "https://mcp.example.com/".into(),
            public_auth_server_url: "https://mcp.example.com".into(),
            scopes: vec!["openid".into(), "email".into()],
            ..OAuthConfig::default()
        }
    }

    fn ctx(cluster: Cluster<'_>) -> ServingContext<'_> {
        ServingContext {
            request_scheme: "http",
            host: "gw.example.net",
            cluster,
        }
    }

    fn exp_token(exp: SystemTime) -> String {
        let secs = exp
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after epoch")
            .as_secs();
        jwt(&serde_json::json!({"sub": "alice", "exp": secs}))
    }

    #[test]
    fn bearer_is_read_from_the_authorization_header_with_any_scheme_case() {
        for v in ["Bearer abc.def-_~+/=", "bearer abc", "BEARER   abc"] {
            let h = headers(&[v]);
            assert!(extract_bearer(&h).is_ok(), "{v}");
        }
        assert_eq!(extract_bearer(&headers(&["Bearer abc"])), Ok("abc"));
    }

    #[test]
    fn missing_empty_multiple_and_foreign_credentials_are_refused() {
        assert_eq!(
            extract_bearer(&HeaderMap::new()),
            Err(BearerProblem::Missing)
        );
        assert_eq!(
            extract_bearer(&headers(&["Bearer"])),
            Err(BearerProblem::Empty)
        );
        assert_eq!(
            extract_bearer(&headers(&["Bearer   "])),
            Err(BearerProblem::Empty)
        );
        assert_eq!(
            extract_bearer(&headers(&["Bearer a", "Bearer b"])),
            Err(BearerProblem::Multiple)
        );
        assert_eq!(
            extract_bearer(&headers(&["Basic YTpi"])),
            Err(BearerProblem::NotBearer)
        );
        assert_eq!(
            extract_bearer(&headers(&["Bearerabc"])),
            Err(BearerProblem::NotBearer)
        );
        for bad in [
            "Bearer a b",
            "Bearer a,Bearer b",
            "Bearer ===",
            "Bearer a\"b",
        ] {
            assert_eq!(
                extract_bearer(&headers(&[bad])),
                Err(BearerProblem::Malformed),
                "{bad}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").expect("opaque bytes"),
        );
        assert_eq!(extract_bearer(&h), Err(BearerProblem::Malformed));
    }

    #[test]
    fn expired_jwt_is_refused_after_the_60s_leeway_only() {
        let exp = t0();
        assert!(
            check_token(&exp_token(exp), exp + Duration::from_secs(60)).is_ok(),
            "inside the leeway"
        );
        assert_eq!(
            check_token(&exp_token(exp), exp + Duration::from_secs(61)).map(|_| ()),
            Err(TokenProblem::Expired)
        );
        let token = exp_token(exp);
        let admitted = check_token(&token, exp - Duration::from_secs(5)).expect("valid");
        assert_eq!(admitted.token, token);
    }

    #[test]
    fn debug_of_an_admitted_bearer_never_shows_the_token() {
        let admitted = check_token("opaque-secret-token", t0()).expect("opaque passes");
        let shown = format!("{admitted:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("sha256:"), "{shown}");
    }

    #[test]
    fn opaque_tokens_pass_the_exp_check_and_are_left_to_clickhouse() {
        let admitted = check_token("opaque-token-123", t0()).expect("opaque passes");
        assert_eq!(admitted.token, "opaque-token-123");
        assert!(
            check_token(&jwt(&serde_json::json!({"sub": "x"})), t0()).is_ok(),
            "a JWT without exp passes"
        );
        assert_eq!(
            check_token(&jwt(&serde_json::json!({"exp": "soon"})), t0()).map(|_| ()),
            Err(TokenProblem::BadExp)
        );
    }

    #[test]
    fn missing_bearer_gets_the_exact_multicluster_challenge() {
        let r = admit(
            &HeaderMap::new(),
            &oauth(),
            &ctx(Cluster::Named("otel")),
            t0(),
            &ExpMemo::default(),
        )
        .expect_err("401");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.www_authenticate,
            "Bearer error=\"invalid_token\", error_description=\"no bearer token in the Authorization header\", \
             resource_metadata=\"https://gw.example.net/mcp/otel/.well-known/oauth-protected-resource\", \
             scope=\"openid email\""
        );
        assert_eq!(r.body["error"], Value::from("invalid_token"));
        assert_eq!(r.status_code(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn expired_bearer_gets_the_challenge_too() {
        let h = headers(&[&format!("Bearer {}", exp_token(t0()))]);
        let r = admit(
            &h,
            &oauth(),
            &ctx(Cluster::Named("otel")),
            t0() + Duration::from_secs(3600),
            &ExpMemo::default(),
        )
        .expect_err("401");
        assert!(
            r.www_authenticate
                .contains("error_description=\"the token has expired\""),
            "{}",
            r.www_authenticate
        );
    }

    #[test]
    fn an_unexpired_bearer_is_admitted() {
        let token = exp_token(t0() + Duration::from_secs(600));
        let h = headers(&[&format!("Bearer {token}")]);
        let memo = ExpMemo::default();
        let (a, digest) =
            admit(&h, &oauth(), &ctx(Cluster::Named("otel")), t0(), &memo).expect("admitted");
        assert_eq!(a.token, token);
        assert_eq!(digest, sha256(token.as_bytes()));
        // Remembered, and still refused once expired.
        let late = t0() + Duration::from_secs(3600);
        assert!(admit(&h, &oauth(), &ctx(Cluster::Named("otel")), late, &memo).is_err());
    }

    #[test]
    fn metadata_url_uses_the_serving_host_and_https_when_the_public_url_is_https() {
        let c = ctx(Cluster::Named("otel"));
        assert_eq!(
            resource_metadata_url(&oauth(), &c),
            "https://gw.example.net/mcp/otel/.well-known/oauth-protected-resource"
        );
        let local = OAuthConfig {
            public_resource_url: String::new(),
            public_auth_server_url: String::new(),
            ..oauth()
        };
        assert_eq!(
            resource_metadata_url(&local, &c),
            "http://gw.example.net/mcp/otel/.well-known/oauth-protected-resource"
        );
    }

    #[test]
    fn single_cluster_challenge_points_at_the_path_inserted_metadata() {
        let url = resource_metadata_url(&oauth(), &ctx(Cluster::Implicit));
        assert_eq!(
            url,
            "https://gw.example.net/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn challenge_values_cannot_break_out_of_the_header() {
        assert_eq!(quoted("a\"b\\c\r\nd"), "\"a\\\"b\\\\cd\"");
        let hostile = ServingContext {
            request_scheme: "http",
            host: "x\"\r\ny",
            cluster: Cluster::Named("otel"),
        };
        let r = invalid_token(&oauth(), &hostile, "d");
        assert!(HeaderValue::from_str(&r.www_authenticate).is_ok());
        assert!(
            r.www_authenticate
                .contains("https://mcp.example.com/mcp/otel/"),
            "{}",
            r.www_authenticate
        );
    }

    #[test]
    fn no_scope_attribute_when_no_scopes_are_configured() {
        let bare = OAuthConfig {
            scopes: vec![],
            ..oauth()
        };
        let r = invalid_token(&bare, &ctx(Cluster::Named("a")), "d");
        assert!(
            !r.www_authenticate.contains("scope="),
            "{}",
            r.www_authenticate
        );
    }

    fn claims(v: serde_json::Value) -> Claims {
        match v {
            serde_json::Value::Object(m) => Claims::from_map(m),
            _ => unreachable!("test claims are objects"),
        }
    }

    #[test]
    fn missing_required_scopes_are_403_insufficient_scope() {
        let strict = OAuthConfig {
            validate_tokens: true,
            required_scopes: vec!["mcp:read".into()],
            ..oauth()
        };
        let c = claims(serde_json::json!({"scope": "openid email"}));
        let r = check_required_scopes(&strict, &ctx(Cluster::Named("otel")), &c).expect_err("403");
        assert_eq!(r.status, 403);
        assert!(
            r.www_authenticate
                .starts_with("Bearer error=\"insufficient_scope\""),
            "{}",
            r.www_authenticate
        );
        assert!(
            r.www_authenticate
                .ends_with("scope=\"openid email mcp:read\""),
            "{}",
            r.www_authenticate
        );
        assert_eq!(r.body["missing_scopes"], serde_json::json!(["mcp:read"]));

        let granted = claims(serde_json::json!({"scp": ["mcp:read"]}));
        assert!(check_required_scopes(&strict, &ctx(Cluster::Named("otel")), &granted).is_ok());
        assert_eq!(
            missing_scopes(&["a".into()], &["a".into(), "b".into()]),
            ["b"]
        );
    }
}

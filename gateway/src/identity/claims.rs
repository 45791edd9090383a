//! A token's claims: one type, one reading of each claim, shared by the gate, the broker
//! and the verifier (so a token gets the same answer everywhere).
//!
//! [`Claims`] are what a signature check returned (`oauth::jwks::validate_jwt`): nothing
//! else in the library builds them from a token. A payload nobody has verified is an
//! [`UnverifiedPayload`], which can say only when the token expires (a pre-check that may
//! reject, never admit) and whom it is for (the broker's choice between tokens it
//! received straight from the IdP). It cannot become `Claims`: no claim of an unverified
//! token names a user, a role, a log field or a cache lifetime (docs/spec-notes.md, "The gate").

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// The default `oauth.username_claim`; only this default falls back to namespaced claims.
pub const DEFAULT_USERNAME_CLAIM: &str = "email";

/// Suffix of namespaced email claims (e.g. Auth0's `https://example.com/email`).
pub const NAMESPACED_EMAIL_SUFFIX: &str = "/email";

/// 9999-12-31T23:59:59Z: where absurd `exp` values land instead of overflowing the clock.
const YEAR_9999_SECS: u64 = 253_402_300_799;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    #[error("the bearer token is not a JWT (expected three base64url parts separated by dots)")]
    NotAJwt,
    #[error("the bearer token's payload is not a JSON object: {0}")]
    BadPayload(String),
    #[error(
        "the token has no `{claim}` claim, which names the ClickHouse user for Basic authentication; \
         set oauth.username_claim to a claim the token carries (e.g. preferred_username)"
    )]
    MissingUsername { claim: String },
    #[error("the token's `{claim}` claim is not a non-empty string")]
    BadUsername { claim: String },
    #[error(
        "the gateway does not verify tokens (server.oauth.validate_tokens: false), so no claim \
         names a ClickHouse user: only `Authorization: Bearer` is sent, and the endpoint must \
         accept it (a JWT token processor)"
    )]
    Unverified,
}

/// The claims of a token whose signature, `iss`, `aud` and `exp` were checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Claims {
    map: Map<String, Value>,
}

impl Claims {
    /// The payload of a verified token (`validate_jwt`), or test claims.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self { map }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    /// Every claim: what a sealed access token carries so the gate needs no second check.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// A claim as a string, when it is one.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.map.get(name).and_then(Value::as_str)
    }

    pub fn sub(&self) -> Option<&str> {
        self.get_str("sub")
    }

    pub fn email(&self) -> Option<&str> {
        self.get_str("email")
    }

    /// The claim `name`, or when absent the first claim (by name) whose name ends in
    /// `/name`: Auth0 and others only allow custom claims namespaced by a URL
    /// (`https://example.com/email`).
    pub fn get_or_namespaced(&self, name: &str) -> Option<&Value> {
        self.map
            .get(name)
            .or_else(|| namespaced(&self.map, name).map(|(_, v)| v))
    }

    pub fn str_or_namespaced(&self, name: &str) -> Option<&str> {
        self.get_or_namespaced(name).and_then(Value::as_str)
    }

    /// `aud` is this audience, or an array containing it (RFC 7519 §4.1.3).
    pub fn audience_contains(&self, audience: &str) -> bool {
        audience_contains(&self.map, audience)
    }

    /// Granted scopes: the union, in order and without repeats, of the space-separated
    /// `scope` string (RFC 8693 §4.2, RFC 9068) and `scp` as a list (Okta) or a
    /// space-separated string (Entra ID). A union, not "scope else scp": both are claims
    /// the IdP signed, and an IdP that writes both means both; reading one and ignoring
    /// the other would let the gate and the verifier disagree about one token.
    pub fn scopes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in ["scope", "scp"] {
            for s in scope_list(self.map.get(name)) {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// `exp` in Unix seconds; `None` when absent or not a NumericDate.
    pub fn exp(&self) -> Option<u64> {
        self.map.get("exp").and_then(numeric_date)
    }

    /// `nbf` in Unix seconds; `None` when absent or not a NumericDate.
    pub fn nbf(&self) -> Option<u64> {
        self.map.get("nbf").and_then(numeric_date)
    }

    /// `exp` as a point in time (the catalog cache never keeps an entry past it).
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.map
            .get("exp")
            .and_then(|v| expiry_time(v).ok())
            .flatten()
    }

    /// `email_verified` is `true` (or the string `"true"`, as Cognito sends it).
    pub fn email_verified(&self) -> bool {
        match self.get_or_namespaced("email_verified") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }
}

/// A JWT payload that nobody has verified. Deliberately narrow: it answers only "when
/// does this token expire" and "is it for this audience", never who the caller is.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedPayload {
    map: Map<String, Value>,
}

impl UnverifiedPayload {
    /// Decodes the payload of `header.payload.signature`. Padding is tolerated because
    /// some issuers emit it; anything else malformed is an error.
    pub fn decode(token: &str) -> Result<Self, ClaimsError> {
        let mut parts = token.split('.');
        let (Some(_header), Some(payload), Some(_sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ClaimsError::NotAJwt);
        };
        if payload.is_empty() {
            return Err(ClaimsError::NotAJwt);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| ClaimsError::NotAJwt)?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self { map }),
            Ok(_) => Err(ClaimsError::BadPayload("not an object".into())),
            Err(e) => Err(ClaimsError::BadPayload(e.to_string())),
        }
    }

    /// `exp` as a point in time. `Ok(None)` when absent; `Err` when present but not a
    /// non-negative number of seconds (a token that cannot say when it expires).
    pub fn expires_at(&self) -> Result<Option<SystemTime>, ClaimsError> {
        match self.map.get("exp") {
            None => Ok(None),
            Some(v) => expiry_time(v),
        }
    }

    /// `exp` in Unix seconds, when it is a NumericDate.
    pub fn exp(&self) -> Option<u64> {
        self.map.get("exp").and_then(numeric_date)
    }

    pub fn audience_contains(&self, audience: &str) -> bool {
        audience_contains(&self.map, audience)
    }
}

fn audience_contains(map: &Map<String, Value>, audience: &str) -> bool {
    match map.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(audience)),
        _ => false,
    }
}

/// A NumericDate: seconds, possibly fractional (RFC 7519 §2).
fn numeric_date(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as u64)
    })
}

/// A NumericDate as a point in time; far-future values saturate rather than overflow.
fn expiry_time(v: &Value) -> Result<Option<SystemTime>, ClaimsError> {
    let secs = v
        .as_f64()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| ClaimsError::BadPayload("`exp` is not a number of seconds".into()))?;
    let exp = Duration::try_from_secs_f64(secs)
        .ok()
        .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d));
    Ok(Some(exp.unwrap_or(
        SystemTime::UNIX_EPOCH + Duration::from_secs(YEAR_9999_SECS),
    )))
}

/// The first claim, by name, whose name ends in `/name` (deterministic whatever order
/// the map keeps).
fn namespaced<'a>(map: &'a Map<String, Value>, name: &str) -> Option<(&'a str, &'a Value)> {
    let suffix = format!("/{name}");
    map.iter()
        .filter(|(k, _)| k.ends_with(&suffix))
        .min_by(|a, b| a.0.cmp(b.0))
        .map(|(k, v)| (k.as_str(), v))
}

/// Scope values: a space-separated string (any ASCII whitespace tolerated) or a list.
fn scope_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_string).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(str::split_ascii_whitespace)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The ClickHouse user name for the Basic path: the claim named by
/// `oauth.username_claim`; with the default (`email`) absent, a claim whose name ends in
/// `/email`. A token without it is rejected with a message naming the claim.
pub fn username_from_claims(claims: &Claims, username_claim: &str) -> Result<String, ClaimsError> {
    let claim = if username_claim.is_empty() {
        DEFAULT_USERNAME_CLAIM
    } else {
        username_claim
    };
    let found = match claims.get(claim) {
        Some(v) => Some((claim, v)),
        None if claim == DEFAULT_USERNAME_CLAIM => namespaced(&claims.map, claim),
        None => None,
    };
    let Some((name, value)) = found else {
        return Err(ClaimsError::MissingUsername {
            claim: claim.to_string(),
        });
    };
    match value.as_str().map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(ClaimsError::BadUsername {
            claim: name.to_string(),
        }),
    }
}

/// Strings from a claim that is a list of strings or one string split at `seps`.
/// Non-string list items are ignored; empty pieces are dropped.
pub(crate) fn string_list(value: Option<&Value>, seps: &[char]) -> Vec<String> {
    match value {
        Some(Value::String(s)) => s
            .split(seps)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
pub(crate) mod test_tokens {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::Value;

    /// A JWT with this payload and a made-up signature (nothing here checks it).
    pub fn jwt(payload: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(payload.to_string());
        format!("{header}.{body}.c2lnbmF0dXJl")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::test_tokens::jwt;
    use super::*;

    fn claims(v: Value) -> Claims {
        match v {
            Value::Object(map) => Claims::from_map(map),
            _ => unreachable!("test claims are objects"),
        }
    }

    fn payload(v: Value) -> UnverifiedPayload {
        UnverifiedPayload::decode(&jwt(&v)).expect("decodes")
    }

    #[test]
    fn standard_claims_are_read() {
        let c = claims(
            json!({"sub": "u1", "email": "a@b.c", "exp": 1_800_000_000, "tenant": {"id": 7}}),
        );
        assert_eq!(c.sub(), Some("u1"));
        assert_eq!(c.email(), Some("a@b.c"));
        assert_eq!(c.exp(), Some(1_800_000_000));
        assert_eq!(
            c.expires_at(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
        assert_eq!(c.get("tenant"), Some(&json!({"id": 7})));
        assert_eq!(c.get("nope"), None);
    }

    #[test]
    fn an_unverified_payload_says_only_when_it_expires_and_for_whom() {
        let p = payload(json!({"sub": "u1", "exp": 1_800_000_000, "aud": ["x", "y"]}));
        assert_eq!(
            p.expires_at(),
            Ok(Some(
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
            ))
        );
        assert_eq!(p.exp(), Some(1_800_000_000));
        assert!(p.audience_contains("y") && !p.audience_contains("z"));
    }

    #[test]
    fn padded_payloads_are_tolerated() {
        let header = URL_SAFE_NO_PAD.encode(b"{}");
        let body = base64::engine::general_purpose::URL_SAFE.encode(br#"{"exp":5}"#);
        let p = UnverifiedPayload::decode(&format!("{header}.{body}.sig")).expect("decodes");
        assert_eq!(p.exp(), Some(5));
    }

    #[test]
    fn opaque_and_malformed_tokens_are_not_jwts() {
        for t in ["", "opaque-token", "a.b", "a.b.c.d", "a..c", "a.!!!.c"] {
            assert_eq!(
                UnverifiedPayload::decode(t),
                Err(ClaimsError::NotAJwt),
                "{t}"
            );
        }
        let not_json = format!("a.{}.c", URL_SAFE_NO_PAD.encode(b"hello"));
        assert!(matches!(
            UnverifiedPayload::decode(&not_json),
            Err(ClaimsError::BadPayload(_))
        ));
        let array = format!("a.{}.c", URL_SAFE_NO_PAD.encode(b"[1]"));
        assert!(matches!(
            UnverifiedPayload::decode(&array),
            Err(ClaimsError::BadPayload(_))
        ));
    }

    #[test]
    fn exp_absent_fractional_and_malformed() {
        assert_eq!(payload(json!({})).expires_at(), Ok(None));
        assert_eq!(
            payload(json!({"exp": 10.5})).expires_at(),
            Ok(Some(SystemTime::UNIX_EPOCH + Duration::from_millis(10_500)))
        );
        assert!(payload(json!({"exp": "tomorrow"})).expires_at().is_err());
        assert!(payload(json!({"exp": -1})).expires_at().is_err());
        assert!(payload(json!({"exp": 1e300}))
            .expires_at()
            .expect("saturates")
            .is_some());
        assert_eq!(claims(json!({"exp": "tomorrow"})).exp(), None);
        assert_eq!(claims(json!({"exp": 10.5})).exp(), Some(10));
    }

    /// The one scope rule (gate, broker and verifier all call this).
    #[test]
    fn scopes_are_the_union_of_scope_and_scp() {
        assert_eq!(
            claims(json!({"scope": "openid  email\tmcp:read "})).scopes(),
            ["openid", "email", "mcp:read"],
            "scope only"
        );
        assert_eq!(
            claims(json!({"scp": ["a", "b", 3]})).scopes(),
            ["a", "b"],
            "scp list only"
        );
        assert_eq!(
            claims(json!({"scp": "a b"})).scopes(),
            ["a", "b"],
            "scp string"
        );
        assert_eq!(
            claims(json!({"scope": "openid", "scp": ["mcp:read", "openid"]})).scopes(),
            ["openid", "mcp:read"],
            "both: union, no repeats"
        );
        assert!(claims(json!({})).scopes().is_empty());
        assert!(claims(json!({"scope": 5, "scp": {"a": 1}}))
            .scopes()
            .is_empty());
    }

    #[test]
    fn namespaced_claims_and_email_verified() {
        let c = claims(json!({
            "https://z.example/email_verified": "TRUE",
            "https://b.example/email": "b@x.io",
            "https://a.example/email": "a@x.io",
        }));
        assert!(c.email_verified());
        assert_eq!(
            c.str_or_namespaced("email"),
            Some("a@x.io"),
            "first by name"
        );
        assert!(!claims(json!({"email_verified": false})).email_verified());
        assert!(!claims(json!({})).email_verified());
    }

    #[test]
    fn username_is_the_configured_claim() {
        let c = claims(json!({"email": "alice@example.com", "preferred_username": "alice"}));
        assert_eq!(
            username_from_claims(&c, "email").as_deref(),
            Ok("alice@example.com")
        );
        assert_eq!(
            username_from_claims(&c, "preferred_username").as_deref(),
            Ok("alice")
        );
        assert_eq!(
            username_from_claims(&c, "").as_deref(),
            Ok("alice@example.com"),
            "empty means the default"
        );
    }

    #[test]
    fn default_email_claim_falls_back_to_a_namespaced_email_claim() {
        let c = claims(
            json!({"https://z.example/email": "z@x.io", "https://a.example/email": "a@x.io"}),
        );
        assert_eq!(
            username_from_claims(&c, "email").as_deref(),
            Ok("a@x.io"),
            "first by name"
        );
    }

    #[test]
    fn a_non_default_claim_has_no_fallback() {
        let c = claims(json!({"https://a.example/email": "a@x.io"}));
        assert_eq!(
            username_from_claims(&c, "preferred_username"),
            Err(ClaimsError::MissingUsername {
                claim: "preferred_username".into()
            })
        );
    }

    #[test]
    fn missing_username_names_the_claim_and_the_fix() {
        let err = username_from_claims(&claims(json!({"sub": "x"})), "email").expect_err("missing");
        let msg = err.to_string();
        assert!(
            msg.contains("`email`") && msg.contains("oauth.username_claim"),
            "{msg}"
        );
        let empty = username_from_claims(&claims(json!({"email": " "})), "email");
        assert_eq!(
            empty,
            Err(ClaimsError::BadUsername {
                claim: "email".into()
            })
        );
        let number = username_from_claims(&claims(json!({"email": 5})), "email");
        assert_eq!(
            number,
            Err(ClaimsError::BadUsername {
                claim: "email".into()
            })
        );
    }
}

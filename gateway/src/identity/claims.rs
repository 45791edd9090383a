// lint pass pending merge
#![allow(
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
//! Reading a JWT's claims without verifying it.
//!
//! Verification is someone else's job (ClickHouse's token processors, the verifier, or
//! the gate with `validate_tokens`); the gateway reads claims only to route and label a
//! request: `exp` for the cache and the gate, the username for the Basic path, roles.

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
}

/// The payload of a JWT, unverified.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Claims {
    map: Map<String, Value>,
}

impl Claims {
    /// Decodes the payload of `header.payload.signature`. Padding is tolerated because
    /// some issuers emit it; anything else malformed is an error.
    pub fn decode_unverified(token: &str) -> Result<Self, ClaimsError> {
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

    /// Claims from an already-parsed JSON object (tests, the verifier).
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self { map }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
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

    /// `exp` as a point in time. `Ok(None)` when absent; `Err` when present but not a
    /// non-negative number of seconds (a token that cannot say when it expires).
    pub fn exp(&self) -> Result<Option<SystemTime>, ClaimsError> {
        match self.map.get("exp") {
            None => Ok(None),
            Some(v) => {
                let secs = v
                    .as_f64()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .ok_or_else(|| {
                        ClaimsError::BadPayload("`exp` is not a number of seconds".into())
                    })?;
                // Far-future values saturate rather than overflow the clock.
                let exp = Duration::try_from_secs_f64(secs)
                    .ok()
                    .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d));
                Ok(Some(exp.unwrap_or(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(YEAR_9999_SECS),
                )))
            }
        }
    }

    /// Granted scopes: `scope` (space-separated string, RFC 8693) or `scp` (a list, or
    /// a space-separated string, as Entra and Okta write it).
    pub fn scopes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in ["scope", "scp"] {
            for s in string_list(self.map.get(name), &[' ']) {
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// A namespaced email claim (`.../email`), the first by name for determinism.
    fn namespaced_email(&self) -> Option<(&str, &Value)> {
        let mut names: Vec<&String> = self
            .map
            .keys()
            .filter(|k| k.ends_with(NAMESPACED_EMAIL_SUFFIX))
            .collect();
        names.sort();
        names
            .first()
            .and_then(|k| self.map.get(k.as_str()).map(|v| (k.as_str(), v)))
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
        None if claim == DEFAULT_USERNAME_CLAIM => claims.namespaced_email(),
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

    /// An unsigned-looking JWT with this payload (the signature is not checked here).
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
        Claims::decode_unverified(&jwt(&v)).expect("decodes")
    }

    #[test]
    fn decodes_standard_claims_without_verifying() {
        let c = claims(
            json!({"sub": "u1", "email": "a@b.c", "exp": 1_800_000_000, "tenant": {"id": 7}}),
        );
        assert_eq!(c.sub(), Some("u1"));
        assert_eq!(c.email(), Some("a@b.c"));
        assert_eq!(
            c.exp(),
            Ok(Some(
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
            ))
        );
        assert_eq!(c.get("tenant"), Some(&json!({"id": 7})));
        assert_eq!(c.get("nope"), None);
    }

    #[test]
    fn padded_payloads_are_tolerated() {
        let header = URL_SAFE_NO_PAD.encode(b"{}");
        let body = base64::engine::general_purpose::URL_SAFE.encode(br#"{"sub":"x"}"#);
        let c = Claims::decode_unverified(&format!("{header}.{body}.sig")).expect("decodes");
        assert_eq!(c.sub(), Some("x"));
    }

    #[test]
    fn opaque_and_malformed_tokens_are_not_jwts() {
        for t in ["", "opaque-token", "a.b", "a.b.c.d", "a..c", "a.!!!.c"] {
            assert_eq!(
                Claims::decode_unverified(t),
                Err(ClaimsError::NotAJwt),
                "{t}"
            );
        }
        let not_json = format!("a.{}.c", URL_SAFE_NO_PAD.encode(b"hello"));
        assert!(matches!(
            Claims::decode_unverified(&not_json),
            Err(ClaimsError::BadPayload(_))
        ));
        let array = format!("a.{}.c", URL_SAFE_NO_PAD.encode(b"[1]"));
        assert!(matches!(
            Claims::decode_unverified(&array),
            Err(ClaimsError::BadPayload(_))
        ));
    }

    #[test]
    fn exp_absent_fractional_and_malformed() {
        assert_eq!(claims(json!({})).exp(), Ok(None));
        assert_eq!(
            claims(json!({"exp": 10.5})).exp(),
            Ok(Some(SystemTime::UNIX_EPOCH + Duration::from_millis(10_500)))
        );
        assert!(claims(json!({"exp": "tomorrow"})).exp().is_err());
        assert!(claims(json!({"exp": -1})).exp().is_err());
        assert!(claims(json!({"exp": 1e300}))
            .exp()
            .expect("saturates")
            .is_some());
    }

    #[test]
    fn scopes_come_from_scope_string_or_scp_list() {
        assert_eq!(
            claims(json!({"scope": "openid  email mcp:read"})).scopes(),
            ["openid", "email", "mcp:read"]
        );
        assert_eq!(claims(json!({"scp": ["a", "b", 3]})).scopes(), ["a", "b"]);
        assert_eq!(claims(json!({"scp": "a b"})).scopes(), ["a", "b"]);
        assert_eq!(
            claims(json!({"scope": "a b", "scp": ["b", "c"]})).scopes(),
            ["a", "b", "c"]
        );
        assert!(claims(json!({})).scopes().is_empty());
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

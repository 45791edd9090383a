//! The verifier's decisions that are not about the token's signature: reading the Basic
//! header, the identity policy (email verified, domain, username binding) and the
//! session settings. All pure.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;

use super::config::{Identity, MatchMode, ScopeSettings};
use crate::oauth::{Claims, TokenRejection};

/// ClickHouse settings for the session, as the `settings` object of a 200 answer.
pub type Settings = BTreeMap<String, String>;

/// `user:password` from `Authorization: Basic ...`; the password is the user's JWT.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub username: String,
    pub token: String,
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("username", &self.username)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Why the Authorization header is unusable (answered 401, not 403: no check ran).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderProblem {
    #[error("no Authorization header")]
    Missing,
    #[error("the Authorization header is not Basic")]
    NotBasic,
    #[error("the Basic credentials are not valid base64")]
    BadBase64,
    #[error("the Basic credentials are not UTF-8")]
    NotUtf8,
    #[error("the Basic credentials have no `:` between user and password")]
    NoColon,
    #[error("the Basic username is empty")]
    EmptyUsername,
    #[error("the Basic password (the token) is empty")]
    EmptyPassword,
}

impl HeaderProblem {
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing_authorization",
            Self::NotBasic => "not_basic",
            Self::BadBase64 => "bad_base64",
            Self::NotUtf8 => "not_utf8",
            Self::NoColon => "no_colon",
            Self::EmptyUsername => "empty_username",
            Self::EmptyPassword => "empty_password",
        }
    }
}

/// Parses an `Authorization` header value (`None`: absent; `Some(Err)`: not ASCII).
pub fn parse_basic(header: Option<Result<&str, ()>>) -> Result<BasicCredentials, HeaderProblem> {
    let value = match header {
        None => return Err(HeaderProblem::Missing),
        Some(Err(())) => return Err(HeaderProblem::NotBasic),
        Some(Ok(v)) => v.trim(),
    };
    let (scheme, encoded) = value.split_once(' ').ok_or(HeaderProblem::NotBasic)?;
    // RFC 7235: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(HeaderProblem::NotBasic);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| HeaderProblem::BadBase64)?;
    let text = String::from_utf8(bytes).map_err(|_| HeaderProblem::NotUtf8)?;
    // RFC 7617: the user-id cannot contain a colon, the password can.
    let (username, token) = text.split_once(':').ok_or(HeaderProblem::NoColon)?;
    if username.is_empty() {
        return Err(HeaderProblem::EmptyUsername);
    }
    if token.is_empty() {
        return Err(HeaderProblem::EmptyPassword);
    }
    Ok(BasicCredentials {
        username: username.to_string(),
        token: token.to_string(),
    })
}

/// Why a request with usable credentials was refused (answered 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error(transparent)]
    Token(#[from] TokenRejection),
    #[error("the token's email is not verified")]
    EmailNotVerified,
    #[error("the token's email domain is not allowed")]
    EmailDomainNotAllowed,
    #[error("the token has no `{0}` claim to match the username against")]
    UsernameClaimMissing(String),
    #[error("the Basic username is not the token's `{0}`")]
    UsernameMismatch(String),
}

impl Denial {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Token(r) => r.code(),
            Self::EmailNotVerified => "email_not_verified",
            Self::EmailDomainNotAllowed => "email_domain_not_allowed",
            Self::UsernameClaimMissing(_) => "username_claim_missing",
            Self::UsernameMismatch(_) => "username_mismatch",
        }
    }
}

/// The identity checks, in the spec's order after the token checks: `email_verified`
/// (when required), allowed email domains, then the username binding — so nobody can
/// pair Alice's token with user `admin`.
pub fn check_identity(claims: &Claims, username: &str, policy: &Identity) -> Result<(), Denial> {
    if policy.require_email_verified && !claims.email_verified() {
        return Err(Denial::EmailNotVerified);
    }
    if !policy.allowed_email_domains.is_empty() {
        let domain = claims
            .str_or_namespaced("email")
            .and_then(|email| email.rsplit_once('@'))
            .map(|(_, domain)| domain.trim_end_matches('.'));
        let allowed = domain.is_some_and(|d| {
            policy
                .allowed_email_domains
                .iter()
                .any(|a| a.trim_end_matches('.').eq_ignore_ascii_case(d))
        });
        if !allowed {
            return Err(Denial::EmailDomainNotAllowed);
        }
    }
    let claim = policy.username_claim.as_str();
    let expected = claims
        .str_or_namespaced(claim)
        .ok_or_else(|| Denial::UsernameClaimMissing(claim.to_string()))?;
    if !username_matches(expected, username, policy.match_mode) {
        return Err(Denial::UsernameMismatch(claim.to_string()));
    }
    Ok(())
}

/// Case-insensitive means ASCII case folding only. Full Unicode folding would let the
/// holder of `k@x.com`'s token sign in as a distinct ClickHouse user `K@x.com` (Kelvin
/// sign), since both fold to the same string.
pub fn username_matches(claim_value: &str, username: &str, mode: MatchMode) -> bool {
    match mode {
        MatchMode::Exact => claim_value == username,
        MatchMode::CaseInsensitive => claim_value.eq_ignore_ascii_case(username),
    }
}

/// The settings for a token's granted scopes: entries apply in configuration order, so
/// on a conflict the scope listed later wins.
pub fn session_settings<S: AsRef<str>>(config: &ScopeSettings, granted: &[S]) -> Settings {
    let mut out = Settings::new();
    for (scope, settings) in &config.0 {
        if granted.iter().any(|g| g.as_ref() == scope) {
            out.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    out
}

/// sha256 of a token: the cache key, and (shortened) the only trace of a token that
/// may reach a log line.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// The first 6 bytes in hex: enough to correlate log lines, useless to an attacker.
    pub fn short(&self) -> String {
        self.0[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}…", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: serde_json::Value) -> Claims {
        match v {
            serde_json::Value::Object(m) => Claims::from_map(m),
            _ => unreachable!("test claims are objects"),
        }
    }

    fn header(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    fn alice() -> Claims {
        claims(json!({"email": "alice@example.com", "email_verified": true}))
    }

    #[test]
    fn basic_header_yields_user_and_token() {
        let h = header("alice@example.com", "a.b.c");
        let c = parse_basic(Some(Ok(&h))).unwrap();
        assert_eq!(
            (c.username.as_str(), c.token.as_str()),
            ("alice@example.com", "a.b.c")
        );
        // Only the first colon separates: a password may contain colons.
        let h = header("u", "x:y");
        assert_eq!(parse_basic(Some(Ok(&h))).unwrap().token, "x:y");
        // The scheme is case-insensitive.
        let h = h.replacen("Basic", "bAsIc", 1);
        assert!(parse_basic(Some(Ok(&h))).is_ok());
    }

    #[test]
    fn malformed_basic_headers_are_named() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let cases: Vec<(Option<Result<String, ()>>, HeaderProblem)> = vec![
            (None, HeaderProblem::Missing),
            (Some(Err(())), HeaderProblem::NotBasic),
            (Some(Ok("Bearer a.b.c".into())), HeaderProblem::NotBasic),
            (Some(Ok("Basic".into())), HeaderProblem::NotBasic),
            (
                Some(Ok("Basic !!!notbase64".into())),
                HeaderProblem::BadBase64,
            ),
            (
                Some(Ok(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'x'])
                ))),
                HeaderProblem::NotUtf8,
            ),
            (
                Some(Ok(format!("Basic {}", b64("no-colon")))),
                HeaderProblem::NoColon,
            ),
            (
                Some(Ok(format!("Basic {}", b64(":token")))),
                HeaderProblem::EmptyUsername,
            ),
            (
                Some(Ok(format!("Basic {}", b64("user:")))),
                HeaderProblem::EmptyPassword,
            ),
        ];
        for (input, want) in cases {
            let got = parse_basic(input.as_ref().map(|r| r.as_deref().map_err(|_| ())));
            assert_eq!(got.unwrap_err(), want, "{input:?}");
        }
    }

    #[test]
    fn credentials_debug_hides_the_token() {
        let c = BasicCredentials {
            username: "u".into(),
            token: "secret.jwt.value".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn identity_accepts_matching_username_case_insensitively() {
        let policy = Identity::default();
        check_identity(&alice(), "alice@example.com", &policy).unwrap();
        check_identity(&alice(), "ALICE@Example.COM", &policy).unwrap();
    }

    #[test]
    fn exact_match_mode_refuses_other_case() {
        let policy = Identity {
            match_mode: MatchMode::Exact,
            ..Identity::default()
        };
        check_identity(&alice(), "alice@example.com", &policy).unwrap();
        assert_eq!(
            check_identity(&alice(), "Alice@example.com", &policy).unwrap_err(),
            Denial::UsernameMismatch("email".into())
        );
    }

    #[test]
    fn username_other_than_token_email_is_refused() {
        let err = check_identity(&alice(), "admin", &Identity::default()).unwrap_err();
        assert_eq!(err, Denial::UsernameMismatch("email".into()));
        assert_eq!(err.code(), "username_mismatch");
    }

    #[test]
    fn case_folding_is_ascii_only() {
        // U+212A KELVIN SIGN lowercases to `k` under Unicode rules.
        assert!(!username_matches(
            "k@x.com",
            "\u{212A}@x.com",
            MatchMode::CaseInsensitive
        ));
        assert!(username_matches(
            "k@x.com",
            "K@X.com",
            MatchMode::CaseInsensitive
        ));
    }

    #[test]
    fn namespaced_claim_stands_in_for_an_absent_one() {
        let c = claims(
            json!({"https://example.com/email": "alice@example.com", "email_verified": true}),
        );
        check_identity(&c, "alice@example.com", &Identity::default()).unwrap();
        let no_email = claims(json!({"email_verified": true, "sub": "x"}));
        assert_eq!(
            check_identity(&no_email, "x", &Identity::default()).unwrap_err(),
            Denial::UsernameClaimMissing("email".into())
        );
    }

    #[test]
    fn other_username_claim_is_used_when_configured() {
        let policy = Identity {
            username_claim: "preferred_username".into(),
            ..Identity::default()
        };
        let c = claims(json!({"preferred_username": "alice", "email_verified": true}));
        check_identity(&c, "alice", &policy).unwrap();
        assert!(check_identity(&c, "alice@example.com", &policy).is_err());
    }

    #[test]
    fn unverified_email_is_refused_only_when_required() {
        let c = claims(json!({"email": "alice@example.com", "email_verified": false}));
        assert_eq!(
            check_identity(&c, "alice@example.com", &Identity::default()).unwrap_err(),
            Denial::EmailNotVerified
        );
        let absent = claims(json!({"email": "alice@example.com"}));
        assert_eq!(
            check_identity(&absent, "alice@example.com", &Identity::default()).unwrap_err(),
            Denial::EmailNotVerified
        );
        let lenient = Identity {
            require_email_verified: false,
            ..Identity::default()
        };
        check_identity(&c, "alice@example.com", &lenient).unwrap();
        // Cognito sends the string "true".
        let stringly = claims(json!({"email": "alice@example.com", "email_verified": "true"}));
        check_identity(&stringly, "alice@example.com", &Identity::default()).unwrap();
    }

    #[test]
    fn email_domain_outside_the_allowed_list_is_refused() {
        let policy = Identity {
            allowed_email_domains: vec!["Example.com".into()],
            ..Identity::default()
        };
        check_identity(&alice(), "alice@example.com", &policy).unwrap();
        let eve = claims(json!({"email": "eve@elsewhere.test", "email_verified": true}));
        assert_eq!(
            check_identity(&eve, "eve@elsewhere.test", &policy).unwrap_err(),
            Denial::EmailDomainNotAllowed
        );
        // A subdomain is another domain; a look-alike suffix even more so.
        let sub = claims(json!({"email": "x@mail.example.com", "email_verified": true}));
        assert_eq!(
            check_identity(&sub, "x@mail.example.com", &policy).unwrap_err(),
            Denial::EmailDomainNotAllowed
        );
        let suffix = claims(json!({"email": "x@evilexample.com", "email_verified": true}));
        assert_eq!(
            check_identity(&suffix, "x@evilexample.com", &policy).unwrap_err(),
            Denial::EmailDomainNotAllowed
        );
    }

    #[test]
    fn checks_run_in_spec_order() {
        // Unverified, foreign domain and wrong username at once: email_verified is reported.
        let policy = Identity {
            allowed_email_domains: vec!["example.com".into()],
            ..Identity::default()
        };
        let c = claims(json!({"email": "eve@elsewhere.test", "email_verified": false}));
        assert_eq!(
            check_identity(&c, "admin", &policy).unwrap_err(),
            Denial::EmailNotVerified
        );
        let c = claims(json!({"email": "eve@elsewhere.test", "email_verified": true}));
        assert_eq!(
            check_identity(&c, "admin", &policy).unwrap_err(),
            Denial::EmailDomainNotAllowed
        );
    }

    #[test]
    fn settings_merge_follows_granted_scopes_and_file_order() {
        let config = ScopeSettings(vec![
            (
                "mcp:read".into(),
                [
                    ("readonly".into(), "2".into()),
                    ("max_result_rows".into(), "10000".into()),
                ]
                .into(),
            ),
            ("mcp:write".into(), [("readonly".into(), "0".into())].into()),
            (
                "mcp:admin".into(),
                [("max_execution_time".into(), "600".into())].into(),
            ),
        ]);
        let read = session_settings(&config, &["mcp:read"]);
        assert_eq!(
            read,
            Settings::from([
                ("readonly".into(), "2".into()),
                ("max_result_rows".into(), "10000".into())
            ])
        );
        let both = session_settings(&config, &["mcp:write", "mcp:read"]);
        assert_eq!(
            both["readonly"], "0",
            "mcp:write is listed later, so it wins"
        );
        assert_eq!(both["max_result_rows"], "10000");
        assert!(session_settings(&config, &["openid"]).is_empty());
    }

    #[test]
    fn digest_prefix_is_short_hex() {
        let d = TokenDigest::of("a.b.c");
        assert_eq!(d.short().len(), 12);
        assert!(d.short().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(TokenDigest::of("a.b.d"), d);
    }
}

//! The verifier's own small configuration (docs/spec-notes.md, "The verifier"). Strict like the
//! gateway's: unknown keys are errors naming the key with a suggestion, and every
//! problem found by validation is listed at once.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::config::{closest, unknown_field, ConfigError, ConfigIssue, HumanDuration};
use crate::oauth::jwks::{require_https_or_loopback, Expectations, DEFAULT_LEEWAY_SECS};

pub const DEFAULT_LISTEN: &str = "0.0.0.0:9999";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// `host:port`; `0.0.0.0:9999` so the container default is reachable from ClickHouse.
    pub listen: String,
    pub oauth: OAuth,
    pub identity: Identity,
    /// Scope → ClickHouse settings applied to the session when the token has the scope.
    /// When several granted scopes set the same setting, the one listed later wins.
    pub settings_from_scope: ScopeSettings,
    pub cache: Cache,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.into(),
            oauth: OAuth::default(),
            identity: Identity::default(),
            settings_from_scope: ScopeSettings::default(),
            cache: Cache::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth {
    pub issuer: String,
    /// Empty: discovered from the issuer's `/.well-known/openid-configuration`.
    pub jwks_url: String,
    pub audience: String,
    pub required_scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Identity {
    /// The claim the Basic username must equal.
    pub username_claim: String,
    #[serde(rename = "match")]
    pub match_mode: MatchMode,
    pub require_email_verified: bool,
    /// Empty: any domain.
    pub allowed_email_domains: Vec<String>,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            username_claim: "email".into(),
            match_mode: MatchMode::CaseInsensitive,
            require_email_verified: true,
            allowed_email_domains: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// ASCII case folding only (see `checks::username_matches`).
    CaseInsensitive,
    Exact,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    /// How long an accepted token is remembered; never past its `exp`. `0s` disables.
    pub positive_ttl: HumanDuration,
    /// How long a refused token is remembered. `0s` disables.
    pub negative_ttl: HumanDuration,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            positive_ttl: HumanDuration::from_secs(30),
            negative_ttl: HumanDuration::from_secs(5),
        }
    }
}

/// Longer than this and a revoked user keeps access noticeably long after the IdP
/// stopped issuing them tokens.
const MAX_POSITIVE_TTL: Duration = Duration::from_secs(3600);

/// `settings_from_scope`, in file order (later entries win on conflicts, which a
/// sorted map could not express).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScopeSettings(pub Vec<(String, BTreeMap<String, String>)>);

impl Serialize for ScopeSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (scope, settings) in &self.0 {
            map.serialize_entry(scope, settings)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for ScopeSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScopeSettings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of scope → {setting: value}")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ScopeSettings::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((scope, settings)) =
                    m.next_entry::<String, BTreeMap<String, SettingValue>>()?
                {
                    out.push((scope, settings.into_iter().map(|(k, v)| (k, v.0)).collect()));
                }
                Ok(ScopeSettings(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A setting's value: YAML numbers and booleans are accepted and sent as strings, which
/// is how ClickHouse takes settings.
struct SettingValue(String);

impl<'de> Deserialize<'de> for SettingValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SettingValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SettingValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(SettingValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(SettingValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(SettingValue(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(SettingValue(if v { "1" } else { "0" }.into()))
            }
        }
        d.deserialize_any(V)
    }
}

impl VerifyConfig {
    /// The listen address (valid after [`load`]).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigIssue> {
        self.listen.parse().map_err(|_| {
            ConfigIssue::new(
                "listen",
                format!(
                    "`{}` is not an address (use host:port, e.g. {DEFAULT_LISTEN})",
                    self.listen
                ),
            )
        })
    }

    /// What a token must say, for [`crate::oauth::validate_jwt`].
    pub fn expectations(&self) -> Expectations {
        Expectations {
            issuer: self.oauth.issuer.clone(),
            audience: self.oauth.audience.clone(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            required_scopes: self.oauth.required_scopes.clone(),
        }
    }
}

/// Reads, parses and validates a verifier configuration file.
pub fn load(path: &Path) -> Result<VerifyConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let config = parse(&text, &path.display().to_string())?;
    validate(&config).map_err(ConfigError::Rejected)?;
    Ok(config)
}

/// Parses strictly, without validation. Deserializes straight from YAML (not through a
/// JSON value) so `settings_from_scope` keeps the file's order.
pub fn parse(text: &str, origin: &str) -> Result<VerifyConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(VerifyConfig::default());
    }
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, VerifyConfig>(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        if let Some((field, expected)) = unknown_field(&message) {
            // serde_path_to_error's path already ends in the unknown key.
            let key = if path.is_empty() || path == "." {
                field.clone()
            } else {
                path
            };
            return ConfigError::UnknownKey {
                key,
                suggestion: closest(&field, expected.iter().map(String::as_str)),
            };
        }
        if path.is_empty() || path == "." {
            return ConfigError::Syntax {
                origin: origin.to_string(),
                message,
            };
        }
        // serde_yaml_ng repeats the path as a prefix (we already name the key) and
        // appends " at line L column C", which is kept: it helps find the spot.
        let message = message
            .strip_prefix(&format!("{path}: "))
            .map(str::to_string)
            .unwrap_or(message);
        ConfigError::Invalid { key: path, message }
    })
}

/// Every problem, each naming its key and the fix.
pub fn validate(c: &VerifyConfig) -> Result<(), Vec<ConfigIssue>> {
    let mut errors: Vec<ConfigIssue> = c.listen_addr().err().into_iter().collect();
    let mut err = |key: String, message: String| errors.push(ConfigIssue { key, message });
    if c.oauth.issuer.is_empty() {
        err(
            "oauth.issuer".into(),
            "required (the IdP's issuer URL, exactly as in its tokens' iss)".into(),
        );
    } else if let Err(e) = require_https_or_loopback(&c.oauth.issuer) {
        err("oauth.issuer".into(), e);
    }
    if !c.oauth.jwks_url.is_empty() {
        if let Err(e) = require_https_or_loopback(&c.oauth.jwks_url) {
            err("oauth.jwks_url".into(), e);
        }
    }
    if c.oauth.audience.trim().is_empty() {
        err(
            "oauth.audience".into(),
            "required (the value ClickHouse's users' tokens carry in aud)".into(),
        );
    }
    for (i, s) in c.oauth.required_scopes.iter().enumerate() {
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            err(
                format!("oauth.required_scopes[{i}]"),
                format!("`{s}` is not a scope (one word, no spaces)"),
            );
        }
    }
    if c.identity.username_claim.trim().is_empty() {
        err(
            "identity.username_claim".into(),
            "required (e.g. email or preferred_username)".into(),
        );
    }
    for (i, d) in c.identity.allowed_email_domains.iter().enumerate() {
        let valid = !d.is_empty()
            && !d.contains('@')
            && !d.starts_with('.')
            && !d.chars().any(char::is_whitespace);
        if !valid {
            err(
                format!("identity.allowed_email_domains[{i}]"),
                format!("`{d}` is not a domain (write example.com)"),
            );
        }
    }
    for (scope, settings) in &c.settings_from_scope.0 {
        if scope.is_empty() || scope.chars().any(char::is_whitespace) {
            err(
                "settings_from_scope".into(),
                format!("`{scope}` is not a scope (one word, no spaces)"),
            );
        }
        for name in settings.keys() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            {
                err(
                    format!("settings_from_scope.{scope}.{name}"),
                    "not a ClickHouse setting name".into(),
                );
            }
        }
    }
    if c.cache.positive_ttl.get() > MAX_POSITIVE_TTL {
        err(
            "cache.positive_ttl".into(),
            format!(
                "{} is above the maximum of {}",
                c.cache.positive_ttl,
                HumanDuration(MAX_POSITIVE_TTL)
            ),
        );
    }
    if c.cache.negative_ttl.get() > MAX_POSITIVE_TTL {
        err(
            "cache.negative_ttl".into(),
            format!(
                "{} is above the maximum of {}",
                c.cache.negative_ttl,
                HumanDuration(MAX_POSITIVE_TTL)
            ),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "oauth:\n  issuer: https://idp.example.com\n  audience: https://mcp.example.com/\n";

    fn parsed(text: &str) -> Result<VerifyConfig, String> {
        let c = parse(text, "verify.yaml").map_err(|e| e.to_string())?;
        validate(&c).map_err(|e| crate::config::join_issues(&e, "\n"))?;
        Ok(c)
    }

    #[test]
    fn verify_config_defaults_follow_the_spec() {
        let c = parsed(MINIMAL).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9999");
        assert_eq!(c.identity.username_claim, "email");
        assert_eq!(c.identity.match_mode, MatchMode::CaseInsensitive);
        assert!(c.identity.require_email_verified);
        assert_eq!(c.cache.positive_ttl.get(), Duration::from_secs(30));
        assert_eq!(c.cache.negative_ttl.get(), Duration::from_secs(5));
        assert_eq!(c.expectations().leeway_secs, 60);
    }

    #[test]
    fn verify_config_spec_example_parses() {
        let text = r#"
listen: 0.0.0.0:9999
oauth: {issuer: https://idp.example.com, jwks_url: "", audience: https://mcp.example.com/, required_scopes: []}
identity: {username_claim: email, match: case_insensitive, require_email_verified: true, allowed_email_domains: []}
settings_from_scope: {"mcp:read": {readonly: "2", max_result_rows: "10000"}}
cache: {positive_ttl: 30s, negative_ttl: 5s}
"#;
        let c = parsed(text).unwrap();
        assert_eq!(c.settings_from_scope.0[0].0, "mcp:read");
        assert_eq!(c.settings_from_scope.0[0].1["max_result_rows"], "10000");
    }

    #[test]
    fn verify_config_unknown_key_is_named_with_suggestion() {
        let err = parsed(&format!("{MINIMAL}identity:\n  usernme_claim: email\n")).unwrap_err();
        assert_eq!(
            err,
            "identity.usernme_claim: unknown key (did you mean `username_claim`?)"
        );
        let err = parsed(&format!("{MINIMAL}cache:\n  positive_tl: 1s\n")).unwrap_err();
        assert_eq!(
            err,
            "cache.positive_tl: unknown key (did you mean `positive_ttl`?)"
        );
        let err = parsed("lisen: 1.2.3.4:5\n").unwrap_err();
        assert_eq!(err, "lisen: unknown key (did you mean `listen`?)");
    }

    #[test]
    fn verify_config_wrong_type_names_the_key() {
        let err = parsed(&format!("{MINIMAL}identity:\n  match: fuzzy\n")).unwrap_err();
        assert!(
            err.starts_with("identity.match: unknown variant `fuzzy`"),
            "{err}"
        );
        let err = parsed(&format!("{MINIMAL}cache:\n  negative_ttl: soon\n")).unwrap_err();
        assert!(err.starts_with("cache.negative_ttl:"), "{err}");
    }

    #[test]
    fn verify_config_requires_https_except_on_loopback() {
        let err = parsed("oauth: {issuer: http://idp.example.com, audience: a}\n").unwrap_err();
        assert!(
            err.starts_with("oauth.issuer: `http://idp.example.com` must use https"),
            "{err}"
        );
        let err = parsed(&format!("{MINIMAL}  jwks_url: http://10.0.0.1/jwks\n")).unwrap_err();
        assert!(err.starts_with("oauth.jwks_url:"), "{err}");
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
        ] {
            parsed(&format!("oauth: {{issuer: \"{ok}\", audience: a}}\n")).unwrap();
        }
    }

    #[test]
    fn verify_config_lists_every_problem() {
        let err =
            parsed("listen: nowhere\nidentity: {allowed_email_domains: [\"@example.com\"]}\n")
                .unwrap_err();
        for key in [
            "listen:",
            "oauth.issuer:",
            "oauth.audience:",
            "identity.allowed_email_domains[0]:",
        ] {
            assert!(err.contains(key), "{key} missing from:\n{err}");
        }
    }

    #[test]
    fn verify_config_issues_name_their_keys_apart_from_the_message() {
        let c = parse("listen: nowhere\n", "verify.yaml").unwrap();
        let issues = validate(&c).unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["listen", "oauth.issuer", "oauth.audience"]);
        assert_eq!(
            issues[0].to_string(),
            "listen: `nowhere` is not an address (use host:port, e.g. 0.0.0.0:9999)"
        );
    }

    #[test]
    fn verify_config_settings_keep_file_order_and_accept_numbers() {
        let c = parsed(&format!(
            "{MINIMAL}settings_from_scope:\n  z:write: {{readonly: 0}}\n  a:read: {{readonly: 2, log_queries: true}}\n"
        ))
        .unwrap();
        let scopes: Vec<&str> = c
            .settings_from_scope
            .0
            .iter()
            .map(|(s, _)| s.as_str())
            .collect();
        assert_eq!(scopes, ["z:write", "a:read"]);
        assert_eq!(c.settings_from_scope.0[1].1["readonly"], "2");
        assert_eq!(c.settings_from_scope.0[1].1["log_queries"], "1");
        let err = parsed(&format!(
            "{MINIMAL}settings_from_scope:\n  s: {{\"bad name\": 1}}\n"
        ))
        .unwrap_err();
        assert!(err.contains("settings_from_scope.s.bad name"), "{err}");
    }

    #[test]
    fn verify_config_caps_the_positive_ttl() {
        let err = parsed(&format!("{MINIMAL}cache: {{positive_ttl: 2h}}\n")).unwrap_err();
        assert_eq!(err, "cache.positive_ttl: 2h is above the maximum of 1h");
    }
}

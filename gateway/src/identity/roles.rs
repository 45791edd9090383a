//! ClickHouse roles from a token claim (`oauth.role_claim`, `oauth.role_filter`).

use regex::Regex;

use super::claims::{string_list, Claims};
use crate::config::OAuthConfig;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    #[error("oauth.role_filter: `{filter}` is not a valid regular expression: {message}")]
    BadFilter { filter: String, message: String },
    #[error(
        "access denied: the token's `{claim}` claim holds no ClickHouse role{}; \
         ask for a role, or change oauth.role_claim / oauth.role_filter",
        filter.as_ref().map(|f| format!(" matching oauth.role_filter `{f}`")).unwrap_or_default()
    )]
    NoRoles {
        claim: String,
        filter: Option<String>,
    },
}

/// How roles are read from tokens: which claim, and which of its values are kept.
#[derive(Debug, Clone)]
pub struct RolePolicy {
    /// Empty: roles are not taken from tokens (queries run with the user's defaults).
    claim: String,
    /// The configured filter, anchored (`^(?:...)$`), so `analyst` does not admit
    /// `analyst_admin`. `None` keeps every value.
    filter: Option<(String, Regex)>,
}

impl RolePolicy {
    pub fn new(role_claim: &str, role_filter: &str) -> Result<Self, RoleError> {
        let filter = if role_filter.is_empty() {
            None
        } else {
            let anchored = format!("^(?:{role_filter})$");
            let re = Regex::new(&anchored).map_err(|e| RoleError::BadFilter {
                filter: role_filter.to_string(),
                message: e.to_string(),
            })?;
            Some((role_filter.to_string(), re))
        };
        Ok(Self {
            claim: role_claim.to_string(),
            filter,
        })
    }

    pub fn from_config(oauth: &OAuthConfig) -> Result<Self, RoleError> {
        Self::new(&oauth.role_claim, &oauth.role_filter)
    }

    /// The roles to send as `role` parameters, in claim order, without duplicates.
    ///
    /// No role claim configured: no roles. Configured: a list, or a string split at
    /// spaces and commas; what survives the filter is returned, and nothing surviving
    /// (claim absent included) denies the request: fail closed, never "all roles".
    pub fn roles(&self, claims: &Claims) -> Result<Vec<String>, RoleError> {
        if self.claim.is_empty() {
            return Ok(Vec::new());
        }
        let mut out: Vec<String> = Vec::new();
        for role in string_list(claims.get(&self.claim), &[' ', ',']) {
            let kept = self
                .filter
                .as_ref()
                .is_none_or(|(_, re)| re.is_match(&role));
            if kept && !out.contains(&role) {
                out.push(role);
            }
        }
        if out.is_empty() {
            return Err(RoleError::NoRoles {
                claim: self.claim.clone(),
                filter: self.filter.as_ref().map(|(f, _)| f.clone()),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn claims(v: Value) -> Claims {
        match v {
            Value::Object(m) => Claims::from_map(m),
            _ => Claims::default(),
        }
    }

    #[test]
    fn no_role_claim_configured_means_no_roles() {
        let p = RolePolicy::new("", "").expect("policy");
        assert_eq!(p.roles(&claims(json!({"groups": ["a"]}))), Ok(vec![]));
    }

    #[test]
    fn roles_come_from_a_list_or_a_space_or_comma_separated_string() {
        let p = RolePolicy::new("groups", "").expect("policy");
        assert_eq!(
            p.roles(&claims(json!({"groups": ["analyst", "ops", 3]}))),
            Ok(vec!["analyst".into(), "ops".into()])
        );
        assert_eq!(
            p.roles(&claims(json!({"groups": "analyst, ops  dev"}))),
            Ok(vec!["analyst".into(), "ops".into(), "dev".into()])
        );
        assert_eq!(
            p.roles(&claims(json!({"groups": ["a", "a"]}))),
            Ok(vec!["a".into()])
        );
    }

    #[test]
    fn filter_is_anchored() {
        let p = RolePolicy::new("groups", "ch_.*|analyst").expect("policy");
        let got = p.roles(&claims(
            json!({"groups": ["ch_read", "analyst", "analyst_admin", "x_ch_read"]}),
        ));
        assert_eq!(got, Ok(vec!["ch_read".into(), "analyst".into()]));
    }

    #[test]
    fn nothing_left_after_filtering_denies_the_request() {
        let p = RolePolicy::new("groups", "ch_.*").expect("policy");
        let err = p
            .roles(&claims(json!({"groups": ["admin"]})))
            .expect_err("fail closed");
        let msg = err.to_string();
        assert!(
            msg.contains("`groups`") && msg.contains("ch_.*") && msg.contains("denied"),
            "{msg}"
        );
    }

    #[test]
    fn an_absent_or_empty_role_claim_denies_when_one_is_configured() {
        let p = RolePolicy::new("groups", "").expect("policy");
        for c in [
            json!({}),
            json!({"groups": []}),
            json!({"groups": " , "}),
            json!({"groups": 5}),
        ] {
            assert!(
                matches!(p.roles(&claims(c.clone())), Err(RoleError::NoRoles { .. })),
                "{c}"
            );
        }
    }

    #[test]
    fn an_invalid_filter_is_refused_naming_the_key() {
        let err = RolePolicy::new("groups", "(").expect_err("invalid");
        assert!(err.to_string().starts_with("oauth.role_filter:"), "{err}");
    }
}

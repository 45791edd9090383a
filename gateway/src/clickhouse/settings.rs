//! The settings the gateway adds to a query on its own, and which of them a server
//! takes for a given identity.
//!
//! ClickHouse is the authority for read-only (docs/spec-notes.md, "Read-only guard"): a read
//! carries `readonly=2`, and the gateway never re-sends a caller's query with fewer
//! settings than it first sent. What a server accepts is learned only from the
//! gateway's **own** probe queries, never from the error of a caller's query, because a
//! caller's `SETTINGS`, comments or literals can make ClickHouse say anything. What was
//! learned is kept per endpoint and identity class: one user's `readonly=1` profile says
//! nothing about another user's.
//!
//! This module is the pure part: what a probe's answers mean, and what a query may be
//! sent with. The probing itself is in `client`.

use std::collections::BTreeSet;

/// The setting that makes a query read-only on the server.
pub const READONLY: &str = "readonly";
/// The value a read carries: reads only, but other settings may still be changed
/// (`readonly=1` would refuse the gateway's own `max_execution_time`, caps, ...).
pub const READONLY_VALUE: &str = "2";

/// How a query needs `readonly`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadOnly {
    /// The caller's SQL: must run read-only, or not at all.
    Required,
    /// SQL the gateway wrote itself (listings, discovery): read-only when the server
    /// takes the setting, else as the identity's profile allows.
    Preferred,
    /// Writes, kills and probes.
    #[default]
    Off,
}

/// The caller identity's own `readonly` level, read from `system.settings` by the
/// gateway's probe (no setting sent).
pub type ProfileReadonly = u8;

/// What the gateway's own probe learned for one endpoint and identity class.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Acceptance {
    /// Gateway settings this identity may not set on this server.
    refused: BTreeSet<String>,
    /// Set when `readonly` is refused: the identity's own level.
    profile_readonly: Option<ProfileReadonly>,
}

impl Acceptance {
    /// Every setting accepted (the common case: one probe round trip).
    pub fn all() -> Self {
        Self::default()
    }

    /// From the per-setting probe: the names refused, and (when `readonly` is among
    /// them) the identity's own level.
    pub fn from_probe(
        refused: impl IntoIterator<Item = String>,
        profile_readonly: Option<ProfileReadonly>,
    ) -> Self {
        let refused: BTreeSet<String> = refused.into_iter().collect();
        let profile_readonly = if refused.contains(READONLY) {
            // Unknown level: treated as writable, so reads fail closed.
            Some(profile_readonly.unwrap_or(0))
        } else {
            None
        };
        Self {
            refused,
            profile_readonly,
        }
    }

    pub fn refuses(&self, name: &str) -> bool {
        self.refused.contains(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "ClickHouse does not let this user set `readonly`, and the user's own profile is not \
         read-only (readonly={0}), so the gateway cannot make this query read-only and does \
         not run it. An administrator can give this user a read-only profile (readonly=1) or \
         allow readonly=2"
    )]
    ReadOnlyUnenforceable(ProfileReadonly),
}

/// The gateway's settings to send with one query, in order. `readonly` comes first so
/// that it is in force before anything else in the URL is applied.
pub fn plan<'a>(
    acceptance: &Acceptance,
    gateway_settings: &'a [(&'static str, String)],
    read_only: ReadOnly,
) -> Result<Vec<(&'static str, &'a str)>, SettingsError> {
    let mut out = Vec::with_capacity(gateway_settings.len() + 1);
    match (read_only, &acceptance.profile_readonly) {
        (ReadOnly::Off, _) => {}
        (_, None) => out.push((READONLY, READONLY_VALUE)),
        // The profile already makes every query read-only: ClickHouse enforces it.
        (_, Some(level)) if *level >= 1 => {}
        (ReadOnly::Preferred, Some(_)) => {}
        (ReadOnly::Required, Some(level)) => {
            return Err(SettingsError::ReadOnlyUnenforceable(*level))
        }
    }
    out.extend(
        gateway_settings
            .iter()
            .filter(|(k, _)| *k != READONLY && !acceptance.refuses(k))
            .map(|(k, v)| (*k, v.as_str())),
    );
    Ok(out)
}

/// Every setting the gateway may add on its own; a probe tries exactly these.
pub const GATEWAY_SETTINGS: [&str; 9] = [
    READONLY,
    "log_comment",
    "max_execution_time",
    "max_result_rows",
    "result_overflow_mode",
    // The scan budget and the workload class (`cost::budget`).
    "max_rows_to_read",
    "max_bytes_to_read",
    "read_overflow_mode",
    "workload",
];

/// The value a probe sends for a gateway setting: harmless, and of the setting's type.
pub fn probe_value(name: &str) -> &'static str {
    match name {
        READONLY => READONLY_VALUE,
        "log_comment" => "{}",
        "result_overflow_mode" => "break",
        "read_overflow_mode" => "throw",
        // The server's own default class: exists wherever the setting does.
        "workload" => "default",
        _ => "1000",
    }
}

/// ClickHouse's `readonly` value as read from `system.settings` (`"0"`, `"1"`, `"2"`).
/// Anything unreadable is 0: the level that does not protect, so reads fail closed.
pub fn parse_profile_readonly(value: Option<&str>) -> ProfileReadonly {
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> Vec<(&'static str, String)> {
        vec![
            ("log_comment", "{\"tool\":\"execute_query\"}".into()),
            ("max_execution_time", "120".into()),
        ]
    }

    #[test]
    fn a_read_carries_readonly_first_when_the_server_takes_it() {
        let s = ours();
        let p = plan(&Acceptance::all(), &s, ReadOnly::Required).unwrap();
        assert_eq!(p.first(), Some(&(READONLY, "2")));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn a_write_never_carries_readonly() {
        let s = ours();
        let p = plan(&Acceptance::all(), &s, ReadOnly::Off).unwrap();
        assert!(p.iter().all(|(k, _)| *k != READONLY));
    }

    #[test]
    fn refused_optional_settings_are_left_out() {
        let s = ours();
        let a = Acceptance::from_probe(["log_comment".to_string()], None);
        let p = plan(&a, &s, ReadOnly::Required).unwrap();
        assert_eq!(
            p,
            vec![(READONLY, "2"), ("max_execution_time", "120")],
            "readonly stays when only log_comment is refused"
        );
    }

    #[test]
    fn readonly_refused_under_a_read_only_profile_runs_under_the_profile() {
        let s = ours();
        let a = Acceptance::from_probe(
            ["readonly", "log_comment", "max_execution_time"].map(String::from),
            Some(1),
        );
        assert_eq!(plan(&a, &s, ReadOnly::Required).unwrap(), vec![]);
    }

    #[test]
    fn readonly_refused_for_a_writable_profile_fails_closed() {
        let s = ours();
        let a = Acceptance::from_probe([READONLY.to_string()], Some(0));
        assert_eq!(
            plan(&a, &s, ReadOnly::Required),
            Err(SettingsError::ReadOnlyUnenforceable(0))
        );
        // An unknown level counts as writable.
        let a = Acceptance::from_probe([READONLY.to_string()], None);
        assert!(plan(&a, &s, ReadOnly::Required).is_err());
        // The gateway's own listings still run, under the profile.
        assert_eq!(
            plan(&a, &s, ReadOnly::Preferred).unwrap(),
            vec![
                ("log_comment", "{\"tool\":\"execute_query\"}"),
                ("max_execution_time", "120")
            ]
        );
    }

    #[test]
    fn a_caller_supplied_readonly_in_gateway_settings_is_never_sent_twice() {
        let s = vec![("readonly", "0".to_string())];
        let p = plan(&Acceptance::all(), &s, ReadOnly::Required).unwrap();
        assert_eq!(p, vec![(READONLY, "2")]);
    }

    #[test]
    fn profile_levels_parse_and_unknown_is_writable() {
        assert_eq!(parse_profile_readonly(Some("1")), 1);
        assert_eq!(parse_profile_readonly(Some("2")), 2);
        assert_eq!(parse_profile_readonly(Some("x")), 0);
        assert_eq!(parse_profile_readonly(None), 0);
    }
}

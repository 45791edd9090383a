use std::fmt;

use serde::{Deserialize, Serialize};

/// A configuration value that must never reach a log line. `Debug` hides it; printing
/// the configuration goes through [`super::Config::redacted`].
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

pub const REDACTED: &str = "<redacted>";

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub(super) fn redacted(&self) -> Secret {
        if self.0.is_empty() {
            Secret::default()
        } else {
            Secret(REDACTED.into())
        }
    }
}

/// A configured URL fit for printing: its userinfo (`user:password@`) and its query and
/// fragment (tokens and API keys travel there) replaced by the marker; the scheme, host,
/// port and path stay, since they are what a reader checks.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("{REDACTED}@{host}"),
        None => authority.to_string(),
    };
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, after) = tail.split_at(path_end);
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(&host);
    out.push_str(path);
    if !after.is_empty() {
        out.push(after.chars().next().unwrap_or('?'));
        out.push_str(REDACTED);
    }
    out
}

/// Header values (`Authorization`, API keys) are secrets; their names are not.
pub fn redact_header_values(headers: &mut std::collections::BTreeMap<String, String>) {
    headers
        .values_mut()
        .filter(|v| !v.is_empty())
        .for_each(|v| *v = REDACTED.to_string());
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str(REDACTED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_host_and_path_and_lose_userinfo_and_query() {
        assert_eq!(
            redact_url("https://user:pw@otel.example:4318/v1/traces?api_key=k#f"),
            "https://<redacted>@otel.example:4318/v1/traces?<redacted>"
        );
        assert_eq!(
            redact_url("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            redact_url("https://idp.example?x=1"),
            "https://idp.example?<redacted>"
        );
        assert_eq!(
            redact_url("https://a@b@idp/#frag"),
            "https://<redacted>@idp/#<redacted>"
        );
        assert_eq!(redact_url(""), "");
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }
}

//! Validation of a parsed configuration: pure, every message names its key.

use std::time::Duration;

use super::{
    ClickHouseConfig, Config, OAuthConfig, ServerConfig, TelemetryConfig, TokenMode, ToolKind,
    ToolRule, Transport,
};
use crate::routing::is_valid_cluster_name;

/// One problem that stops the configuration, named by its dotted key
/// (`server.oauth.issuer`, `server.tools[2].name`) so a caller that renders the
/// configuration from something else (the operator) can say where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigIssue {
    pub key: String,
    pub message: String,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Several issues as one line (or block): `sep` between their texts.
pub fn join_issues(issues: &[ConfigIssue], sep: &str) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

/// Something worth saying at startup that does not stop it, about the setting `key`.
/// Displayed as a sentence with the key as its subject ("`key` is empty: ...").
#[derive(Clone, PartialEq, Eq)]
pub struct Warning {
    pub key: String,
    pub message: String,
}

impl Warning {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.key, self.message)
    }
}

/// Startup logs print warnings with `?`: keep the text they have always shown.
impl std::fmt::Debug for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Warning").field(&self.to_string()).finish()
    }
}

/// The multi-cluster ranges (docs/spec-notes.md, "Catalog cache").
pub const CATALOG_CACHE_MIN: usize = 100;
pub const CATALOG_TTL_RANGE: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(24 * 3600));
pub const NEGATIVE_TTL_RANGE: (Duration, Duration) =
    (Duration::from_secs(10), Duration::from_secs(300));
/// Listener bounds: below a second real clients on slow links fail; above, an idle or
/// stalled connection holds its slot longer than any client needs.
pub const HEADER_READ_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(600));
pub const BODY_READ_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));
pub const IDLE_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));
/// More request threads than this is a typo (a thousand idle threads cost memory).
pub const MAX_WORKER_THREADS: usize = 1024;
/// Broker mode derives every encryption key from this secret; shorter is guessable.
pub const MIN_SIGNING_SECRET_BYTES: usize = 32;

/// The static tools, by the names `server.tools` rules may use.
pub const STATIC_TOOL_NAMES: [&str; 5] = [
    "execute_query",
    "write_query",
    "list_databases",
    "list_tables",
    "describe_table",
];

/// Checks everything that can be checked without I/O. `Err` holds one issue per problem.
/// One function per section, in the order the sections are documented.
pub fn validate(c: &Config) -> Result<Vec<Warning>, Vec<ConfigIssue>> {
    let mut f = Findings::default();
    check_clickhouse(&c.clickhouse, &mut f);
    // The budgets span clickhouse.* and multicluster.clusters.* (`config::budget`).
    for issue in super::budget::budget_issues(c) {
        f.err(&issue.key, issue.message);
    }
    check_server(&c.server, &mut f);
    check_tool_rules(&c.server.tools, &mut f);
    check_oauth(&c.server.oauth, &mut f);
    check_multicluster(c, &mut f);
    check_telemetry(&c.telemetry, &mut f);
    if f.errors.is_empty() {
        Ok(f.warnings)
    } else {
        Err(f.errors)
    }
}

/// What validation found so far: one error per problem, named by its key, and warnings.
#[derive(Default)]
struct Findings {
    errors: Vec<ConfigIssue>,
    warnings: Vec<Warning>,
}

impl Findings {
    fn err(&mut self, key: &str, message: String) {
        self.errors.push(ConfigIssue::new(key, message));
    }

    fn warn(&mut self, warning: Warning) {
        self.warnings.push(warning);
    }
}

/// `clickhouse.*`.
fn check_clickhouse(ch: &ClickHouseConfig, f: &mut Findings) {
    if ch.host.trim().is_empty() {
        f.err("clickhouse.host", "must not be empty".into());
    }
    if ch.port == 0 {
        f.err("clickhouse.port", "must be between 1 and 65535".into());
    }
    if ch.max_execution_time == 0 {
        f.err(
            "clickhouse.max_execution_time",
            "must be at least 1 (seconds)".into(),
        );
    }
    if ch.tls.client_cert.is_empty() != ch.tls.client_key.is_empty() {
        f.err(
            "clickhouse.tls.client_key",
            "client_cert and client_key must be set together".into(),
        );
    }
    for name in ch.http_headers.keys() {
        if name.eq_ignore_ascii_case("authorization") {
            f.err(
                &format!("clickhouse.http_headers.{name}"),
                "the Authorization header is set by the gateway from the caller's identity".into(),
            );
        }
    }
}

/// `server.*` but the tool rules and OAuth.
fn check_server(s: &ServerConfig, f: &mut Findings) {
    if s.transport == Transport::Http && s.port == 0 {
        f.err("server.port", "must be between 1 and 65535".into());
    }
    if s.max_request_bytes < 1024 {
        f.err(
            "server.max_request_bytes",
            format!("{} is below the minimum of 1024", s.max_request_bytes),
        );
    }
    check_range(
        f,
        "server.header_read_timeout",
        s.header_read_timeout.get(),
        HEADER_READ_TIMEOUT_RANGE,
    );
    check_range(
        f,
        "server.body_read_timeout",
        s.body_read_timeout.get(),
        BODY_READ_TIMEOUT_RANGE,
    );
    check_range(
        f,
        "server.idle_timeout",
        s.idle_timeout.get(),
        IDLE_TIMEOUT_RANGE,
    );
    if s.max_connections == 0 {
        f.err("server.max_connections", "must be at least 1".into());
    }
    if s.worker_threads > MAX_WORKER_THREADS {
        f.err(
            "server.worker_threads",
            format!("must be at most {MAX_WORKER_THREADS} (0: one per CPU)"),
        );
    }
    for (i, origin) in s.allowed_origins.iter().enumerate() {
        if origin != "*" && crate::net::WebOrigin::parse(origin).is_err() {
            f.err(
                &format!("server.allowed_origins[{i}]"),
                format!("`{origin}` is not an origin (scheme://host[:port]) or \"*\""),
            );
        }
    }
    check_caller_settings(s, f);
    for (i, clause) in s.blocked_query_clauses.iter().enumerate() {
        if clause.split_whitespace().next().is_none() {
            f.err(
                &format!("server.blocked_query_clauses[{i}]"),
                "must not be empty".into(),
            );
        }
    }
    for (key, names, what) in [
        (
            "server.allowed_table_functions",
            &s.allowed_table_functions,
            "table function name",
        ),
        (
            "server.allowed_write_engines",
            &s.allowed_write_engines,
            "engine or dictionary source name",
        ),
    ] {
        for (i, name) in names.iter().enumerate() {
            // Names only: the guard compares whole names, so a pattern would match nothing.
            if !is_setting_name(name) {
                f.err(
                    &format!("{key}[{i}]"),
                    format!("`{name}` is not a {what} (letters, digits and _ only)"),
                );
            }
        }
    }
}

/// `server.tools`: which tools are served, and the discovery rules.
fn check_tool_rules(rules: &[ToolRule], f: &mut Findings) {
    for (i, rule) in rules.iter().enumerate() {
        let key = format!("server.tools[{i}]");
        let set = [
            rule.name.is_some(),
            rule.view_regexp.is_some(),
            rule.table_regexp.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if set != 1 {
            f.err(
                &key,
                "needs exactly one of name, view_regexp, table_regexp".into(),
            );
            continue;
        }
        if let Some(name) = &rule.name {
            if !STATIC_TOOL_NAMES.contains(&name.as_str()) {
                f.err(
                    &format!("{key}.name"),
                    format!(
                        "`{name}` is not a static tool (one of {})",
                        STATIC_TOOL_NAMES.join(", ")
                    ),
                );
            }
        }
        if let Some(re) = &rule.view_regexp {
            if rule.kind != ToolKind::Read {
                f.err(
                    &format!("{key}.view_regexp"),
                    "view rules are `type: read`".into(),
                );
            }
            if let Err(e) = regex::Regex::new(re) {
                f.err(&format!("{key}.view_regexp"), format!("invalid regex: {e}"));
            }
        }
        if let Some(re) = &rule.table_regexp {
            if rule.kind != ToolKind::Write {
                f.err(
                    &format!("{key}.table_regexp"),
                    "table rules are `type: write` (mode: insert)".into(),
                );
            }
            if let Err(e) = regex::Regex::new(re) {
                f.err(
                    &format!("{key}.table_regexp"),
                    format!("invalid regex: {e}"),
                );
            }
        }
        if rule.mode.is_some() && rule.table_regexp.is_none() {
            f.err(
                &format!("{key}.mode"),
                "only table_regexp rules take a mode".into(),
            );
        }
        if !rule
            .prefix
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            f.err(
                &format!("{key}.prefix"),
                format!("`{}` may hold only letters, digits and _", rule.prefix),
            );
        }
    }
}

/// `server.oauth.*`, when OAuth is on.
fn check_oauth(o: &OAuthConfig, f: &mut Findings) {
    if !o.enabled {
        return;
    }
    if o.issuer.is_empty() {
        f.err(
            "server.oauth.issuer",
            "is required when OAuth is enabled".into(),
        );
    } else if let Err(m) = check_secure_url(&o.issuer) {
        f.err("server.oauth.issuer", m);
    }
    if !o.jwks_url.is_empty() {
        if let Err(m) = check_secure_url(&o.jwks_url) {
            f.err("server.oauth.jwks_url", m);
        }
    }
    if o.username_claim.trim().is_empty() {
        f.err("server.oauth.username_claim", "must not be empty".into());
    }
    if o.validate_tokens && o.audience.is_empty() {
        f.err(
            "server.oauth.audience",
            "is required when validate_tokens is on".into(),
        );
    }
    for problem in unverified_token_problems(o) {
        match problem {
            Ok(w) => f.warn(w),
            Err((key, m)) => f.err(key, m),
        }
    }
    if !o.role_filter.is_empty() {
        if let Err(e) = regex::Regex::new(&format!("^(?:{})$", o.role_filter)) {
            f.err("server.oauth.role_filter", format!("invalid regex: {e}"));
        }
    }
    if !o.public_resource_url.is_empty() {
        if let Err(m) = check_secure_url(&o.public_resource_url) {
            f.err("server.oauth.public_resource_url", m);
        }
    }
    if o.broker {
        if o.client_id.is_empty() {
            f.err(
                "server.oauth.client_id",
                "is required in broker mode".into(),
            );
        }
        if o.client_secret.is_empty() {
            f.err(
                "server.oauth.client_secret",
                "is required in broker mode (or client_secret_file)".into(),
            );
        }
        if o.signing_secret.expose().len() < MIN_SIGNING_SECRET_BYTES {
            f.err(
                "server.oauth.signing_secret",
                format!("must be at least {MIN_SIGNING_SECRET_BYTES} bytes in broker mode (or signing_secret_file)"),
            );
        }
        if o.public_auth_server_url.is_empty() {
            f.err(
                "server.oauth.public_auth_server_url",
                "is required in broker mode".into(),
            );
        } else if let Err(m) = check_secure_url(&o.public_auth_server_url) {
            f.err("server.oauth.public_auth_server_url", m);
        }
    }
    if o.broker && o.token_mode == TokenMode::Passthrough {
        f.warn(Warning::new(
            "server.oauth.token_mode",
            "is passthrough: MCP clients receive the identity provider's own token, \
             which ClickHouse (every cluster) and any other service trusting that IdP accept directly, so a \
             token leaked from a client's logs or config is a working credential (the MCP specification \
             forbids token passthrough); use token_mode: sealed unless a client must hold the upstream token",
        ));
    }
    if o.broker {
        check_range(
            f,
            "server.oauth.refresh_token_max_age",
            o.refresh_token_max_age.get(),
            (
                Duration::from_secs(3_600),
                Duration::from_secs(366 * 86_400),
            ),
        );
    }
    if o.dev_allow_insecure_client_metadata {
        f.warn(Warning::new(
            "server.oauth.dev_allow_insecure_client_metadata",
            "is ON: client metadata documents may be fetched over http from loopback. Never use this in production",
        ));
    }
}

/// `multicluster.*`, and what multi-cluster mode asks of the other sections.
fn check_multicluster(c: &Config, f: &mut Findings) {
    let m = &c.multicluster;
    let (s, o) = (&c.server, &c.server.oauth);
    if m.catalog_cache_max < CATALOG_CACHE_MIN {
        f.err(
            "multicluster.catalog_cache_max",
            format!(
                "{} is below the minimum of {CATALOG_CACHE_MIN}",
                m.catalog_cache_max
            ),
        );
    }
    check_range(
        f,
        "multicluster.catalog_ttl_fallback",
        m.catalog_ttl_fallback.get(),
        CATALOG_TTL_RANGE,
    );
    check_range(
        f,
        "multicluster.catalog_negative_ttl",
        m.catalog_negative_ttl.get(),
        NEGATIVE_TTL_RANGE,
    );
    for (i, name) in m.cluster_allowlist.iter().enumerate() {
        if !is_valid_cluster_name(name) {
            f.err(
                &format!("multicluster.cluster_allowlist[{i}]"),
                format!("`{name}` is not an RFC 1123 label (lower-case letters, digits, '-', at most 63)"),
            );
        }
    }
    for (name, ov) in &m.clusters {
        let key = format!("multicluster.clusters.{name}");
        if !is_valid_cluster_name(name) {
            f.err(&key, format!("`{name}` is not an RFC 1123 label"));
        } else if !m.cluster_allowlist.is_empty() && !m.cluster_allowlist.contains(name) {
            f.err(
                &key,
                "overrides a cluster that is not on multicluster.cluster_allowlist".into(),
            );
        }
        if ov.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
            f.err(&format!("{key}.host"), "must not be empty".into());
        }
        if ov.description.as_deref().is_some_and(|d| d.len() > 1024) {
            f.err(
                &format!("{key}.description"),
                "is longer than 1024 bytes".into(),
            );
        }
        if ov.port == Some(0) {
            f.err(&format!("{key}.port"), "must be between 1 and 65535".into());
        }
    }
    if m.enabled {
        if s.transport == Transport::Stdio {
            f.err(
                "multicluster.enabled",
                "multi-cluster mode needs server.transport: http (stdio serves one cluster)".into(),
            );
        }
        if !o.enabled {
            f.err(
                "multicluster.enabled",
                "multi-cluster mode needs server.oauth.enabled: true (every request must carry a user identity)".into(),
            );
        }
        if m.fleet_endpoint && m.cluster_allowlist.is_empty() {
            f.err(
                "multicluster.fleet_endpoint",
                "needs a non-empty multicluster.cluster_allowlist (the connector serves exactly the listed clusters)".into(),
            );
        }
        if m.cluster_allowlist.is_empty() {
            f.warn(Warning::new(
                "multicluster.cluster_allowlist",
                "is empty: any valid cluster name is routed",
            ));
        }
        if !c.clickhouse.host.contains("{cluster}") && m.clusters.is_empty() {
            f.warn(Warning::new(
                "clickhouse.host",
                "has no {cluster} and there are no per-cluster overrides: every cluster reaches the same host",
            ));
        }
    } else if c.clickhouse.host.contains("{cluster}") {
        f.err(
            "clickhouse.host",
            "contains {cluster}, which only multi-cluster mode fills in".into(),
        );
    }
}

/// `telemetry.*`.
fn check_telemetry(t: &TelemetryConfig, f: &mut Findings) {
    if let Some(o) = &t.otlp {
        match url::Url::parse(&o.endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => f.err(
                "telemetry.otlp.endpoint",
                "must be an http(s) URL (the collector's OTLP/HTTP address, e.g. http://otel-collector:4318)".into(),
            ),
        }
        if !(0.0..=1.0).contains(&o.sample_ratio) {
            f.err(
                "telemetry.otlp.sample_ratio",
                format!("{} is outside 0 to 1", o.sample_ratio),
            );
        }
        if o.service_name.trim().is_empty() {
            f.err("telemetry.otlp.service_name", "must not be empty".into());
        }
        for (name, value) in &o.headers {
            // The value is a secret: the message names the key only.
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(value.expose()).is_err()
            {
                f.err(
                    &format!("telemetry.otlp.headers.{name}"),
                    "not a valid HTTP header name and value".into(),
                );
            }
        }
    }
}

fn check_range(f: &mut Findings, key: &str, v: Duration, (lo, hi): (Duration, Duration)) {
    use super::HumanDuration as H;
    if v < lo {
        f.err(key, format!("{} is below the minimum of {}", H(v), H(lo)));
    } else if v > hi {
        f.err(key, format!("{} is above the maximum of {}", H(v), H(hi)));
    }
}

/// `server.allowed_query_settings` and `server.tool_input_settings` never admit a setting
/// that decides what ClickHouse may run or record (issue 20).
fn check_caller_settings(s: &ServerConfig, f: &mut Findings) {
    for (key, names) in [
        ("server.allowed_query_settings", &s.allowed_query_settings),
        ("server.tool_input_settings", &s.tool_input_settings),
    ] {
        for (i, name) in names.iter().enumerate() {
            if !is_setting_name(name) {
                f.err(
                    &format!("{key}[{i}]"),
                    format!("`{name}` is not a ClickHouse setting name"),
                );
            } else if crate::clickhouse::policy::is_reserved_setting(name) {
                f.err(
                    &format!("{key}[{i}]"),
                    format!(
                        "`{name}` is never left to callers (readonly, allow_*, experimental \
                         flags, log_* and the gateway's own limits decide what ClickHouse may \
                         run or record)"
                    ),
                );
            }
        }
    }
}

fn is_setting_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `https`, or `http` on a loopback host (local use and tests).
pub fn check_secure_url(url: &str) -> Result<(), String> {
    crate::net::parse_secure_url(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `validate_tokens: false` is a statement that ClickHouse checks every token itself;
/// it must be made explicitly, and nothing may depend on a claim the gateway did not
/// verify (docs/spec-notes.md, "The gate"). `Ok`: a warning; `Err`: (key, message).
fn unverified_token_problems(o: &OAuthConfig) -> Vec<Result<Warning, (&'static str, String)>> {
    if o.validate_tokens {
        return Vec::new();
    }
    if !o.trust_clickhouse_token_checks {
        return vec![Err((
            "server.oauth.validate_tokens",
            "false is accepted only with server.oauth.trust_clickhouse_token_checks: true \
             (every ClickHouse endpoint checks every token itself); otherwise remove \
             validate_tokens: false so the gateway checks tokens"
                .into(),
        ))];
    }
    let mut out = vec![Ok(Warning::new(
        "server.oauth.validate_tokens",
        "is false (server.oauth.trust_clickhouse_token_checks: true): \
         the gateway does not check tokens and uses none of their claims; tokens reach \
         ClickHouse as `Authorization: Bearer` only, and every ClickHouse endpoint must verify them",
    ))];
    if !o.role_claim.is_empty() {
        out.push(Err((
            "server.oauth.role_claim",
            "roles cannot come from tokens the gateway does not verify (validate_tokens: false)"
                .into(),
        )));
    }
    if !o.required_scopes.is_empty() {
        out.push(Err((
            "server.oauth.required_scopes",
            "cannot be enforced on tokens the gateway does not verify (validate_tokens: false)"
                .into(),
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HumanDuration, ToolRule};

    fn errors_of(c: &Config) -> Vec<String> {
        validate(c)
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn an_issue_carries_its_key_apart_from_the_message() {
        let mut c = resource_server();
        c.server.oauth.issuer = "http://idp.example.com".into();
        c.server.allowed_origins = vec!["claude.ai".into()];
        let issues = validate(&c).unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["server.allowed_origins[0]", "server.oauth.issuer"]);
        // The text every CLI and log line shows is still "key: message".
        assert_eq!(
            issues[0].to_string(),
            "server.allowed_origins[0]: `claude.ai` is not an origin (scheme://host[:port]) or \"*\""
        );
        assert!(!issues[1].message.starts_with("server."), "{issues:?}");
        assert_eq!(
            join_issues(&issues, "; "),
            format!("{}; {}", issues[0], issues[1])
        );
    }

    #[test]
    fn a_warning_names_its_key_and_reads_as_before() {
        let mut c = resource_server();
        c.multicluster.enabled = true;
        c.clickhouse.host = "ch-{cluster}".into();
        let warnings = validate(&c).expect("warnings do not stop the configuration");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].key, "multicluster.cluster_allowlist");
        assert_eq!(
            warnings[0].to_string(),
            "multicluster.cluster_allowlist is empty: any valid cluster name is routed"
        );
        assert_eq!(
            format!("{:?}", warnings[0]),
            "Warning(\"multicluster.cluster_allowlist is empty: any valid cluster name is routed\")"
        );
    }

    #[test]
    fn default_config_is_valid_without_warnings() {
        assert_eq!(validate(&Config::default()), Ok(vec![]));
    }

    #[test]
    fn connection_bounds_are_checked_by_key() {
        let mut c = Config::default();
        c.server.header_read_timeout = HumanDuration(Duration::from_millis(500));
        c.server.idle_timeout = HumanDuration::from_secs(2 * 3600);
        c.server.max_connections = 0;
        c.server.worker_threads = 4096;
        assert_eq!(
            errors_of(&c),
            vec![
                "server.header_read_timeout: 500ms is below the minimum of 1s",
                "server.idle_timeout: 2h is above the maximum of 1h",
                "server.max_connections: must be at least 1",
                "server.worker_threads: must be at most 1024 (0: one per CPU)",
            ]
        );
    }

    #[test]
    fn ttl_below_minimum_names_key_and_bound() {
        let mut c = Config::default();
        c.multicluster.catalog_ttl_fallback = HumanDuration::from_secs(30);
        assert_eq!(
            errors_of(&c),
            vec!["multicluster.catalog_ttl_fallback: 30s is below the minimum of 1m"]
        );
    }

    #[test]
    fn multicluster_refuses_stdio_and_missing_oauth() {
        let mut c = Config::default();
        c.multicluster.enabled = true;
        c.server.transport = Transport::Stdio;
        c.clickhouse.host = "ch-{cluster}".into();
        let errs = errors_of(&c);
        assert!(errs.iter().any(|e| e.contains("stdio")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("oauth.enabled")), "{errs:?}");
    }

    #[test]
    fn fleet_endpoint_needs_an_allow_list_and_descriptions_are_bounded() {
        let mut c = Config::default();
        c.server.oauth.enabled = true;
        c.server.oauth.broker = false;
        c.server.oauth.issuer = "https://idp.example.com".into();
        c.server.oauth.audience = "chmcp".into();
        c.multicluster.enabled = true;
        c.multicluster.fleet_endpoint = true;
        c.clickhouse.host = "ch-{cluster}".into();
        let errs = errors_of(&c);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("multicluster.fleet_endpoint: needs a non-empty")),
            "{errs:?}"
        );
        c.multicluster.cluster_allowlist = vec!["a".into()];
        c.multicluster.clusters.insert(
            "a".into(),
            crate::config::ClusterOverride {
                description: Some("x".repeat(1025)),
                ..Default::default()
            },
        );
        let errs = errors_of(&c);
        assert_eq!(
            errs,
            vec!["multicluster.clusters.a.description: is longer than 1024 bytes"]
        );
    }

    #[test]
    fn broker_needs_long_signing_secret() {
        let mut c = broker();
        c.server.oauth.signing_secret = crate::config::Secret::new("short");
        let errs = errors_of(&c);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("server.oauth.signing_secret: must be at least 32 bytes"));
    }

    fn broker() -> Config {
        let mut c = Config::default();
        c.server.oauth.enabled = true;
        c.server.oauth.issuer = "https://idp.example.com".into();
        c.server.oauth.client_id = "id".into();
        c.server.oauth.client_secret = crate::config::Secret::new("s");
        c.server.oauth.public_auth_server_url = "https://mcp.example.com".into();
        c.server.oauth.audience = "https://mcp.example.com/".into();
        c.server.oauth.signing_secret =
            crate::config::Secret::new("0123456789abcdef0123456789abcdef");
        c
    }

    #[test]
    fn broker_mode_seals_tokens_by_default_and_passthrough_warns_of_the_risk() {
        let c = broker();
        assert_eq!(c.server.oauth.token_mode, TokenMode::Sealed);
        assert!(c.server.oauth.sealed_tokens());
        assert_eq!(validate(&c), Ok(vec![]));
        let mut p = broker();
        p.server.oauth.token_mode = TokenMode::Passthrough;
        assert!(!p.server.oauth.sealed_tokens());
        let warnings = validate(&p).expect("accepted");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].key, "server.oauth.token_mode");
        let text = warnings[0].to_string();
        assert!(
            text.starts_with("server.oauth.token_mode is passthrough")
                && text.contains("forbids token passthrough"),
            "{warnings:?}"
        );
        // Resource-server mode has no tokens of its own to seal.
        let mut rs = broker();
        rs.server.oauth.broker = false;
        assert!(!rs.server.oauth.sealed_tokens());
    }

    fn resource_server() -> Config {
        let mut c = Config::default();
        c.server.oauth.enabled = true;
        c.server.oauth.broker = false;
        c.server.oauth.issuer = "https://idp.example.com".into();
        c.server.oauth.audience = "https://mcp.example.com/".into();
        c
    }

    #[test]
    fn tokens_are_validated_by_default() {
        assert!(Config::default().server.oauth.validate_tokens);
        assert_eq!(validate(&resource_server()), Ok(vec![]));
    }

    #[test]
    fn validate_tokens_false_alone_is_refused_naming_both_keys() {
        let mut c = resource_server();
        c.server.oauth.validate_tokens = false;
        let errs = errors_of(&c);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("server.oauth.validate_tokens: ")
                && errs[0].contains("server.oauth.trust_clickhouse_token_checks: true"),
            "{errs:?}"
        );
    }

    #[test]
    fn validate_tokens_false_with_the_trust_statement_starts_with_a_warning() {
        let mut c = resource_server();
        c.server.oauth.validate_tokens = false;
        c.server.oauth.trust_clickhouse_token_checks = true;
        let warnings = validate(&c).expect("accepted");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].key, "server.oauth.validate_tokens");
        assert!(
            warnings[0]
                .to_string()
                .starts_with("server.oauth.validate_tokens is false"),
            "{warnings:?}"
        );
    }

    #[test]
    fn nothing_may_depend_on_unverified_claims() {
        let mut c = resource_server();
        c.server.oauth.validate_tokens = false;
        c.server.oauth.trust_clickhouse_token_checks = true;
        c.server.oauth.role_claim = "groups".into();
        c.server.oauth.required_scopes = vec!["mcp:read".into()];
        let errs = errors_of(&c);
        assert!(
            errs.iter()
                .any(|e| e.starts_with("server.oauth.role_claim:"))
                && errs
                    .iter()
                    .any(|e| e.starts_with("server.oauth.required_scopes:")),
            "{errs:?}"
        );
    }

    #[test]
    fn issuer_must_be_https_unless_loopback() {
        assert!(check_secure_url("https://idp").is_ok());
        assert!(check_secure_url("http://127.0.0.1:9000/x").is_ok());
        assert!(check_secure_url("http://localhost").is_ok());
        assert!(check_secure_url("http://idp.example.com").is_err());
        assert!(check_secure_url("http://localhost.evil.com").is_err());
        assert!(check_secure_url("http://127.evil.example").is_err());
        assert!(check_secure_url("https://").is_err());
    }

    #[test]
    fn tool_rules_need_one_selector_and_valid_regex() {
        let mut c = Config::default();
        c.server.tools = vec![
            ToolRule {
                kind: ToolKind::Read,
                name: None,
                view_regexp: Some("(".into()),
                table_regexp: None,
                mode: None,
                prefix: String::new(),
            },
            ToolRule {
                kind: ToolKind::Read,
                name: Some("drop_everything".into()),
                view_regexp: None,
                table_regexp: None,
                mode: None,
                prefix: String::new(),
            },
        ];
        let errs = errors_of(&c);
        assert!(
            errs[0].starts_with("server.tools[0].view_regexp: invalid regex"),
            "{errs:?}"
        );
        assert!(
            errs[1].starts_with("server.tools[1].name: `drop_everything` is not a static tool"),
            "{errs:?}"
        );
    }

    #[test]
    fn allowed_table_functions_are_names_only() {
        let mut c = Config::default();
        c.server.allowed_table_functions = vec!["url".into(), "iceberg*".into()];
        assert_eq!(
            errors_of(&c),
            vec!["server.allowed_table_functions[1]: `iceberg*` is not a table function name (letters, digits and _ only)"]
        );
    }

    #[test]
    fn settings_that_decide_what_clickhouse_runs_or_records_are_never_listed() {
        let mut c = Config::default();
        c.server.allowed_query_settings = vec![
            "max_threads".into(),
            "allow_experimental_eval_table_function".into(),
            "log_comment".into(),
        ];
        c.server.tool_input_settings = vec!["readonly".into(), "max_result_rows".into()];
        c.server.allowed_write_engines = vec!["Kafka".into(), "S3*".into()];
        let errors = errors_of(&c);
        let keys: Vec<&str> = errors
            .iter()
            .filter_map(|e| e.split_once(':').map(|(k, _)| k))
            .collect();
        assert_eq!(
            keys,
            [
                "server.allowed_query_settings[1]",
                "server.allowed_query_settings[2]",
                "server.tool_input_settings[0]",
                "server.tool_input_settings[1]",
                "server.allowed_write_engines[1]",
            ],
            "{errors:?}"
        );
        // The default list passes its own rule.
        assert!(errors_of(&Config::default()).is_empty());
    }

    #[test]
    fn cluster_names_must_be_labels() {
        let mut c = Config::default();
        c.multicluster.cluster_allowlist = vec!["otel".into(), "Bad_Name".into()];
        let errs = errors_of(&c);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("multicluster.cluster_allowlist[1]"));
    }
}

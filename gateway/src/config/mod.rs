//! The gateway's configuration: one set of types shared by the gateway (which reads it)
//! and the operator (which renders it), so the two can never drift.
//!
//! Layout follows the specification's configuration file (docs/spec-notes.md). Every struct is strict (`deny_unknown_fields`)
//! and fully defaulted, so an empty file is a valid local configuration.

mod budget;
mod duration;
mod load;
mod reload;
mod secret;
mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use budget::{EffectiveBudget, EstimateMode, QueryBudget};
pub use duration::HumanDuration;
pub use load::{load, parse_document, ConfigError, LoadOptions, Loaded};
pub use reload::{flatten, keep_restart_only, restart_only_changes, restart_only_keys};
pub use secret::Secret;
pub use validate::{join_issues, validate, ConfigIssue, Warning};
// The verifier's configuration names unknown keys the same way.
pub(crate) use load::{closest, unknown_field};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub clickhouse: ClickHouseConfig,
    pub server: ServerConfig,
    pub multicluster: MultiClusterConfig,
    pub logging: LoggingConfig,
    /// Traces (OTLP/HTTP) and what spans may carry; restart-only.
    pub telemetry: TelemetryConfig,
    /// Re-read the file when it changes (polled), in addition to SIGHUP.
    pub watch: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// Host name; in multi-cluster mode a template containing `{cluster}`.
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub database: String,
    /// Static credentials, used only when OAuth is off.
    pub username: String,
    pub password: Secret,
    pub password_file: String,
    pub tls: TlsConfig,
    /// Optional address to dial instead of `host`; the Host header and SNI keep `host`.
    pub connect_host: String,
    pub read_only: bool,
    /// Seconds.
    pub max_execution_time: u64,
    /// `0` means the default; negative disables the cap.
    pub max_result_rows: i64,
    /// Measured on the JSON the client receives. `0` means the default; negative disables.
    pub max_result_bytes: i64,
    pub max_query_length: i64,
    pub http_headers: BTreeMap<String, String>,
    /// What one tool query may make ClickHouse read (`config::budget`).
    pub query_budget: QueryBudget,
    /// Sent as the `workload` setting when not empty (servers with workload scheduling).
    pub workload: String,
}

/// The implicit cluster name of single-cluster mode (logs, metrics, `log_comment`).
pub const DEFAULT_CLUSTER: &str = "default";

pub const DEFAULT_MAX_RESULT_ROWS: u64 = 500;
pub const DEFAULT_MAX_RESULT_BYTES: u64 = 50_000;
pub const DEFAULT_MAX_QUERY_LENGTH: u64 = 10 * 1024 * 1024;

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            port: 8123,
            protocol: Protocol::Http,
            database: "default".into(),
            username: "default".into(),
            password: Secret::default(),
            password_file: String::new(),
            tls: TlsConfig::default(),
            connect_host: String::new(),
            read_only: false,
            max_execution_time: 120,
            max_result_rows: DEFAULT_MAX_RESULT_ROWS as i64,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES as i64,
            max_query_length: DEFAULT_MAX_QUERY_LENGTH as i64,
            http_headers: BTreeMap::new(),
            query_budget: QueryBudget::default(),
            workload: String::new(),
        }
    }
}

/// A cap as configured: `0` means the default, a negative value disables it.
fn effective_cap(value: i64, default: u64) -> Option<u64> {
    match value {
        0 => Some(default),
        v if v < 0 => None,
        v => Some(v as u64),
    }
}

impl ClickHouseConfig {
    pub fn row_cap(&self) -> Option<u64> {
        effective_cap(self.max_result_rows, DEFAULT_MAX_RESULT_ROWS)
    }
    pub fn byte_cap(&self) -> Option<u64> {
        effective_cap(self.max_result_bytes, DEFAULT_MAX_RESULT_BYTES)
    }
    pub fn query_length_cap(&self) -> Option<u64> {
        effective_cap(self.max_query_length, DEFAULT_MAX_QUERY_LENGTH)
    }
    pub fn scheme(&self) -> &'static str {
        if self.tls.enabled {
            "https"
        } else {
            "http"
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// ClickHouse's HTTP interface (https when `tls.enabled`). Native TCP is out of scope.
    Http,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub enabled: bool,
    /// PEM file with extra CA certificates to trust.
    pub ca_cert: String,
    /// PEM files for mutual TLS.
    pub client_cert: String,
    pub client_key: String,
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub transport: Transport,
    pub address: String,
    pub port: u16,
    /// Origins allowed besides the gateway's own; `"*"` allows all.
    pub allowed_origins: Vec<String>,
    pub max_request_bytes: usize,
    /// A client that has not sent complete request headers by then is disconnected.
    pub header_read_timeout: HumanDuration,
    /// A request body must arrive whole within this, counted from its headers.
    pub body_read_timeout: HumanDuration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: HumanDuration,
    /// Connections beyond this are answered 503 at once and closed.
    pub max_connections: usize,
    /// Threads that serve requests; 0: one per CPU the process may use (serve.rs sets
    /// it; tokio's `TOKIO_WORKER_THREADS` is not read). One thread
    /// answers a lone client fastest (no wake-up across threads); more carry more load.
    pub worker_threads: usize,
    pub tools: Vec<ToolRule>,
    /// ClickHouse settings a caller may pass through `execute_query`'s `settings`.
    pub tool_input_settings: Vec<String>,
    /// Clauses (e.g. `INTO OUTFILE`, `SETTINGS`) refused outside literals and comments.
    pub blocked_query_clauses: Vec<String>,
    /// Table functions queries may call besides those that stay inside the server
    /// (`clickhouse::policy::INSIDE_TABLE_FUNCTIONS`); every other one is refused.
    pub allowed_table_functions: Vec<String>,
    /// How `tools/list` offers the dynamic tools (gateway.md, "Context economy").
    pub tools_listing: ToolsListing,
    /// The text block of a row result: compact tabular text, or the JSON itself.
    pub result_format: ResultFormat,
    /// Settings a query's `SETTINGS` clauses may name (issue 20: an allow-list).
    pub allowed_query_settings: Vec<String>,
    /// Table engines and dictionary sources a write may create besides the local ones.
    pub allowed_write_engines: Vec<String>,
    /// Link `execute_query` and view tools to the `ui://chmcp/result` MCP Apps view
    /// (a table and chart hosts with MCP Apps render beside the answer).
    pub result_view: bool,
    pub oauth: OAuthConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            transport: Transport::Http,
            address: "0.0.0.0".into(),
            port: 8080,
            allowed_origins: Vec::new(),
            max_request_bytes: 1024 * 1024,
            header_read_timeout: HumanDuration::from_secs(10),
            body_read_timeout: HumanDuration::from_secs(30),
            idle_timeout: HumanDuration::from_secs(60),
            max_connections: 10_000,
            worker_threads: 0,
            tools: Vec::new(),
            tool_input_settings: Vec::new(),
            blocked_query_clauses: Vec::new(),
            allowed_table_functions: Vec::new(),
            tools_listing: ToolsListing::Auto,
            result_format: ResultFormat::Compact,
            allowed_query_settings: crate::clickhouse::policy::DEFAULT_QUERY_SETTINGS
                .map(String::from)
                .to_vec(),
            allowed_write_engines: Vec::new(),
            result_view: true,
            oauth: OAuthConfig::default(),
        }
    }
}

/// `server.tools_listing`: every dynamic tool in `tools/list` (`listed`), or the static
/// tools plus a schema search and a call-by-name tool (`searched`); `auto` lists them
/// up to a threshold of dynamic tools and searches above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolsListing {
    Auto,
    Listed,
    Searched,
}

/// `server.result_format`: the text block of a row result. `structuredContent` always
/// carries the typed JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultFormat {
    /// A header line of column names and types, then one CSV line per row.
    Compact,
    /// The structured JSON, serialized (MCP's backwards-compatible text block).
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Http,
    Stdio,
}

/// One rule of `server.tools`: a static tool by name, or a pattern of ClickHouse objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    #[serde(rename = "type")]
    pub kind: ToolKind,
    /// Names a static tool (`execute_query`, ...), or the tool name for a single object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Regex over `database.view`: every matching view becomes a read tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_regexp: Option<String>,
    /// Regex over `database.table`: every matching table becomes a write tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_regexp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WriteMode>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolKind {
    Read,
    Write,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    Insert,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    pub enabled: bool,
    /// true: the gateway is the authorization server MCP clients see.
    pub broker: bool,
    /// The upstream IdP; OIDC discovery starts here.
    pub issuer: String,
    pub jwks_url: String,
    /// What ClickHouse / the verifier expect in `aud`.
    pub audience: String,
    /// The shared resource identifier; empty: the public URL of each `/mcp/{cluster}`.
    pub public_resource_url: String,
    /// The gateway's public base URL (broker mode).
    pub public_auth_server_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub client_secret_file: String,
    pub auth_url: String,
    pub token_url: String,
    pub scopes: Vec<String>,
    pub required_scopes: Vec<String>,
    pub signing_secret: Secret,
    pub signing_secret_file: String,
    pub upstream_offline_access: bool,
    pub username_claim: String,
    pub role_claim: String,
    pub role_filter: String,
    /// The gateway checks each bearer's signature, `iss`, `aud`, `exp` and scopes.
    pub validate_tokens: bool,
    /// The explicit statement that every ClickHouse endpoint checks every token itself:
    /// the only way `validate_tokens: false` is accepted (docs/spec-notes.md, "The gate").
    pub trust_clickhouse_token_checks: bool,
    pub upstream_token: UpstreamToken,
    /// Broker mode: what `/oauth/token` hands MCP clients (the upstream token sealed in
    /// one of the gateway's own, or the upstream token itself).
    pub token_mode: TokenMode,
    pub trusted_redirect_hosts: Vec<String>,
    /// Development only: allow Client ID Metadata Documents over http on loopback.
    pub dev_allow_insecure_client_metadata: bool,
    /// Broker: the name the sign-in pages show for this gateway (default: its host).
    pub display_name: String,
    /// Broker: a refresh token stops working this long after the sign-in it came from,
    /// however often it is used (never extended by use).
    pub refresh_token_max_age: HumanDuration,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            broker: true,
            issuer: String::new(),
            jwks_url: String::new(),
            audience: String::new(),
            public_resource_url: String::new(),
            public_auth_server_url: String::new(),
            client_id: String::new(),
            client_secret: Secret::default(),
            client_secret_file: String::new(),
            auth_url: String::new(),
            token_url: String::new(),
            scopes: vec!["openid".into(), "email".into()],
            required_scopes: Vec::new(),
            signing_secret: Secret::default(),
            signing_secret_file: String::new(),
            upstream_offline_access: false,
            username_claim: "email".into(),
            role_claim: String::new(),
            role_filter: String::new(),
            validate_tokens: true,
            trust_clickhouse_token_checks: false,
            upstream_token: UpstreamToken::Auto,
            token_mode: TokenMode::Sealed,
            trusted_redirect_hosts: Vec::new(),
            dev_allow_insecure_client_metadata: false,
            display_name: String::new(),
            refresh_token_max_age: HumanDuration::from_secs(30 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamToken {
    IdToken,
    AccessToken,
    Auto,
}

/// `server.oauth.token_mode` (broker mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenMode {
    /// Clients get an opaque token the gateway minted (AEAD-sealed, carrying the upstream
    /// token); only the gateway can use it, and only for the resource it names.
    Sealed,
    /// Clients get the upstream IdP's token itself (token passthrough).
    Passthrough,
}

impl OAuthConfig {
    /// Broker mode with sealed tokens: the gate accepts only tokens this gateway minted.
    pub fn sealed_tokens(&self) -> bool {
        self.enabled && self.broker && self.token_mode == TokenMode::Sealed
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiClusterConfig {
    pub enabled: bool,
    /// Empty: any valid name is served (a startup warning says so).
    pub cluster_allowlist: Vec<String>,
    /// Per-cluster overrides of the host template.
    pub clusters: BTreeMap<String, ClusterOverride>,
    pub catalog_cache_max: usize,
    pub catalog_ttl_fallback: HumanDuration,
    pub catalog_negative_ttl: HumanDuration,
    /// `/mcp` (no cluster) serves every allow-listed cluster through one connector
    /// (docs/decisions.md, "The fleet connector").
    pub fleet_endpoint: bool,
}

impl Default for MultiClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            cluster_allowlist: Vec::new(),
            clusters: BTreeMap::new(),
            catalog_cache_max: 10_000,
            catalog_ttl_fallback: HumanDuration::from_secs(15 * 60),
            catalog_negative_ttl: HumanDuration::from_secs(60),
            fleet_endpoint: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClusterOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// What the cluster holds, shown to models choosing a cluster on the fleet connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fields set here replace `clickhouse.query_budget`'s for this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_budget: Option<QueryBudget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Export traces over OTLP/HTTP (protobuf); absent = no tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpConfig>,
    /// Put the SQL text of each ClickHouse request into its span (`db.query.text`).
    pub include_sql: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Where spans are POSTed; a URL without a path gets `/v1/traces`.
    pub endpoint: String,
    /// Sent with every export (an API key, a tenant): secrets, never logged.
    pub headers: std::collections::BTreeMap<String, Secret>,
    /// Share of new traces recorded (0 to 1); a client's sampled flag is followed.
    pub sample_ratio: f64,
    /// The `service.name` resource attribute.
    pub service_name: String,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            headers: Default::default(),
            sample_ratio: 1.0,
            service_name: "chmcp-gateway".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    /// A copy fit for printing: every non-empty secret replaced by a marker.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        c.clickhouse.password = c.clickhouse.password.redacted();
        c.server.oauth.client_secret = c.server.oauth.client_secret.redacted();
        c.server.oauth.signing_secret = c.server.oauth.signing_secret.redacted();
        if let Some(o) = &mut c.telemetry.otlp {
            o.headers.values_mut().for_each(|v| *v = v.redacted());
            o.endpoint = secret::redact_url(&o.endpoint);
        }
        secret::redact_header_values(&mut c.clickhouse.http_headers);
        let o = &mut c.server.oauth;
        for url in [
            &mut o.issuer,
            &mut o.jwks_url,
            &mut o.public_resource_url,
            &mut o.public_auth_server_url,
            &mut o.auth_url,
            &mut o.token_url,
        ] {
            *url = secret::redact_url(url);
        }
        c
    }
}

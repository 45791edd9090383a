//! The `McpMultiCluster` custom resource (`chmcp.dev/v1alpha1`).
//!
//! Doc comments become the schema's descriptions, so they are written for
//! `kubectl explain`. Validation rules come from `validate.rs`, where each CEL rule sits
//! next to the Rust check that mirrors it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PodSecurityContext, ResourceRequirements, SecurityContext,
    Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{
    CEL_BROKER_SECRETS, CEL_CLIENT_CERT_PAIR, CEL_CLUSTER_NAME, CEL_DURATION, CEL_HOST_TEMPLATE,
    CEL_HTTPS, CEL_INGRESS_HOST, CLUSTER_NAME_PATTERN, DURATION_PATTERN, HTTPS_PATTERN,
    OTLP_ENDPOINT_PATTERN,
};

/// The API group of every chmcp resource.
pub const GROUP: &str = "chmcp.dev";
/// Upper bound on clusters per resource: it bounds the cost of the CEL rules that walk
/// the list, which the API server refuses when unbounded.
pub const MAX_CLUSTERS: u32 = 256;

/// A gateway serving a fleet of ClickHouse clusters at `/mcp/<cluster>`, with single
/// sign-on through the company's identity provider.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "chmcp.dev",
    version = "v1alpha1",
    kind = "McpMultiCluster",
    doc = "A gateway serving a fleet of ClickHouse clusters at `/mcp/<cluster>`, with single sign-on through the company's identity provider. Status lists the connector URL of each cluster.",
    plural = "mcpmulticlusters",
    shortname = "mcpmc",
    namespaced,
    status = "McpMultiClusterStatus",
    printcolumn = r#"{"name":"Clusters","type":"integer","description":"Number of ClickHouse clusters served","jsonPath":".status.clusters"}"#,
    printcolumn = r#"{"name":"Ready Replicas","type":"integer","description":"Gateway pods ready to serve","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"The Ready condition","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","description":"Why the resource is (not) Ready","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"URL","type":"string","description":"The first connector URL","jsonPath":".status.endpoints[0].url"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": CEL_HOST_TEMPLATE.rule, "message": CEL_HOST_TEMPLATE.message},
]))]
pub struct McpMultiClusterSpec {
    /// Gateway container image. Empty: the gateway image matching the operator's version.
    #[serde(default)]
    pub image: String,
    /// Number of gateway pods. Replicas are stateless, so any number serves; above 1 a
    /// PodDisruptionBudget keeps one pod up during node drains.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1))]
    pub replicas: i32,
    /// How the gateway reaches each cluster's ClickHouse over HTTP(S).
    pub clickhouse: ClickHouseSpec,
    /// The clusters served, each at `/mcp/<name>`. Names are unique RFC 1123 labels.
    #[schemars(length(min = 1, max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub clusters: Vec<ClusterSpec>,
    /// One connector for every cluster at `/mcp` besides `/mcp/<name>` (the gateway's
    /// `multicluster.fleet_endpoint`): tools take the cluster as an argument, and the
    /// status lists the URL as cluster `*`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fleet_endpoint: bool,
    /// Sign-in: the upstream identity provider and the gateway's public address.
    pub oauth: OAuthSpec,
    /// The per-token catalog cache of each gateway pod.
    #[serde(default)]
    pub catalog_cache: CatalogCacheSpec,
    /// Tool rules: which static tools are offered and which ClickHouse views or tables
    /// become tools. Empty: the gateway's default tools.
    #[serde(default)]
    pub tools: Vec<ToolRuleSpec>,
    /// ClickHouse settings a caller may pass through `execute_query`'s `settings`
    /// (e.g. `max_threads`). Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_input_settings: Vec<String>,
    /// SQL clauses refused outside literals and comments, e.g. `INTO OUTFILE`,
    /// `SETTINGS`, `FORMAT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_query_clauses: Vec<String>,
    /// Table functions queries may call besides those that stay inside ClickHouse
    /// (`numbers`, `view`, `merge`, ...). Empty: only those.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_table_functions: Vec<String>,
    /// How `tools/list` offers the view and table tools (the gateway's
    /// `server.tools_listing`): `auto` lists up to 30 and offers search above that,
    /// `listed` always lists them, `searched` always offers search and call-by-name.
    #[serde(default)]
    pub tools_listing: ToolsListingSpec,
    /// Settings a query's `SETTINGS` clauses (and `execute_query`'s `settings`) may name.
    /// Absent: the gateway's short default (`max_threads`, `max_block_size`, join and
    /// read-order knobs); `readonly`, `allow_*`, experimental and `log_*` never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_query_settings: Option<Vec<String>>,
    /// Table engines and dictionary sources `write_query` may create besides the local
    /// ones (`Kafka`, `URL`, `HTTP`, `CLICKHOUSE` with a host, ...). Empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_write_engines: Vec<String>,
    /// Link `execute_query` and view tools to the result view (`ui://chmcp/result`): a
    /// table and chart that clients with MCP Apps show beside the answer (the gateway's
    /// `server.result_view`). Clients without MCP Apps see the same text either way.
    #[serde(default = "default_true")]
    pub result_view: bool,
    /// Browser origins allowed besides the gateway's own (`"*"`: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// The gateway's log level and format (always on stderr).
    #[serde(default)]
    pub logging: LoggingSpec,
    /// The Ingress exposing the MCP and OAuth routes (never metrics).
    #[serde(default)]
    pub ingress: IngressSpec,
    /// The Service in front of the gateway pods.
    #[serde(default)]
    pub service: ServiceSpec,
    /// Compute resources of the gateway container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra annotations on the gateway pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Extra labels on the gateway pods (the operator's own `app.kubernetes.io/name` and
    /// `app.kubernetes.io/instance` cannot be overridden: they select the pods).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// Secrets for pulling the gateway image from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Node labels the gateway pods must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the gateway pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node and pod (anti-)affinity of the gateway pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How the gateway pods spread across zones or nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// PriorityClass of the gateway pods.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub priority_class_name: String,
    /// ServiceAccount the gateway pods run as (e.g. for workload identity). Empty: the
    /// namespace's default. The gateway never calls the Kubernetes API, so no token is
    /// mounted either way.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// Fields set here override the gateway pod's hardened security context (non-root
    /// 65532, RuntimeDefault seccomp); unset fields keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// Fields set here override the gateway container's hardened security context
    /// (read-only root, no privilege escalation, all capabilities dropped); unset
    /// fields keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// The token verifier ClickHouse calls to check each user's token (the design's
    /// per-cluster sidecar). Its issuer, audience, JWKS URL and required scopes come
    /// from `oauth`, so the verifier and the gateway can never disagree.
    #[serde(default)]
    pub verifier: VerifierSpec,
    /// Prometheus Operator objects for the gateway's metrics.
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    /// Traces of every MCP request, exported over OTLP/HTTP (the gateway's `telemetry`).
    /// A change restarts the gateway pods: the exporter starts once, with the process.
    #[serde(default, skip_serializing_if = "TelemetrySpec::is_off")]
    pub telemetry: TelemetrySpec,
}

/// The gateway's tracing.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct TelemetrySpec {
    /// Where spans go. Absent: no tracing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpSpec>,
    /// Put each query's SQL text into its span (`db.query.text`). Off: spans carry no
    /// SQL, which may hold literals a trace backend should not see.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub include_sql: bool,
}

impl TelemetrySpec {
    fn is_off(&self) -> bool {
        *self == Self::default()
    }
}

/// An OTLP/HTTP (protobuf) trace exporter.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtlpSpec {
    /// The collector's OTLP/HTTP address, e.g. `http://otel-collector.observability:4318`
    /// (a URL without a path gets `/v1/traces`).
    #[schemars(length(min = 1, max = 2048), regex(pattern = OTLP_ENDPOINT_PATTERN))]
    pub endpoint: String,
    /// Share of new traces recorded, 0 to 1; a caller's sampled trace context is followed.
    #[serde(default = "default_sample_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sample_ratio: f64,
    /// The `service.name` resource attribute of every span.
    #[serde(default = "default_service_name")]
    #[schemars(length(min = 1, max = 255))]
    pub service_name: String,
}

fn default_sample_ratio() -> f64 {
    1.0
}
fn default_service_name() -> String {
    "chmcp-gateway".into()
}

/// The verifier (`chmcp-gateway verify`) that ClickHouse's `http_authentication_servers`
/// calls.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct VerifierSpec {
    /// Render the `<name>-verify` ConfigMap (`verify.yaml` and the ClickHouse fragment
    /// `clickhouse-http-auth.xml`).
    pub enabled: bool,
    /// `sidecar`: you add the verifier container to the ClickHouse pods (see
    /// docs/operator.md) and ClickHouse calls it on loopback. `service`: the operator
    /// runs it as a Deployment + Service `<name>-verify` and ClickHouse calls that.
    pub mode: VerifierMode,
    /// Port the verifier listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Scope → ClickHouse settings applied to the session when the token has the scope;
    /// when several granted scopes set the same setting, the later entry wins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings_from_scope: Vec<ScopeSettingsSpec>,
    /// How the ClickHouse user name is matched against the token.
    pub identity: VerifierIdentitySpec,
}

impl Default for VerifierSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: VerifierMode::Sidecar,
            port: 9999,
            settings_from_scope: Vec::new(),
            identity: VerifierIdentitySpec::default(),
        }
    }
}

/// Where the verifier runs.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerifierMode {
    #[default]
    Sidecar,
    Service,
}

/// ClickHouse settings granted by one scope.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ScopeSettingsSpec {
    /// The scope, e.g. `mcp:read`.
    #[schemars(length(min = 1))]
    pub scope: String,
    /// Setting name → value, e.g. `readonly: "2"`.
    pub settings: BTreeMap<String, String>,
}

/// The verifier's identity checks.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct VerifierIdentitySpec {
    /// The claim the ClickHouse user name must equal. Empty: `oauth.usernameClaim`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username_claim: String,
    /// Email domains accepted (e.g. `example.com`). Empty: any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_email_domains: Vec<String>,
    /// Refuse tokens whose `email_verified` is not true.
    pub require_email_verified: bool,
}

impl Default for VerifierIdentitySpec {
    fn default() -> Self {
        Self {
            username_claim: String::new(),
            allowed_email_domains: Vec::new(),
            require_email_verified: true,
        }
    }
}

/// Prometheus Operator objects for the gateway (it ignores `prometheus.io` annotations).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct MonitoringSpec {
    /// A `monitoring.coreos.com/v1` ServiceMonitor scraping the gateway Service.
    pub service_monitor: ServiceMonitorSpec,
}

/// The gateway's ServiceMonitor.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceMonitorSpec {
    /// Create the ServiceMonitor `<name>-gateway`. If the Prometheus Operator's CRD is
    /// not installed, the `ServiceMonitor` condition says so and the rest still applies.
    pub enabled: bool,
    /// Scrape interval.
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub interval: String,
    /// Extra labels on the ServiceMonitor (e.g. the `release` a Prometheus selects).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for ServiceMonitorSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            interval: "30s".into(),
            labels: BTreeMap::new(),
        }
    }
}

/// The gateway's logging.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct LoggingSpec {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: LogLevelSpec,
    /// `text` or `json`.
    pub format: LogFormatSpec,
}

/// Log level.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevelSpec {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

/// Log format.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatSpec {
    Text,
    #[default]
    Json,
}

fn default_replicas() -> i32 {
    2
}

/// ClickHouse connection settings shared by every cluster.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClickHouseSpec {
    /// Host of each cluster's ClickHouse, with `{cluster}` replaced by the cluster name
    /// (e.g. `chi-{cluster}-{cluster}-0-0.clickhouse.svc`). May omit `{cluster}` only when
    /// every cluster sets its own host.
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub host_template: String,
    /// ClickHouse HTTP(S) port.
    #[serde(default = "default_ch_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// TLS towards ClickHouse.
    #[serde(default)]
    pub tls: ClickHouseTlsSpec,
    /// Address to dial instead of the host (a template with `{cluster}` too); the Host
    /// header and TLS server name keep the host. Empty: dial the host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 253))]
    pub connect_host: String,
    /// Default database for queries.
    #[serde(default = "default_database")]
    #[schemars(length(min = 1))]
    pub database: String,
    /// Extra HTTP headers sent to ClickHouse with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_headers: BTreeMap<String, String>,
    /// Refuse writes through `execute_query` (ClickHouse grants still apply on top).
    #[serde(default = "default_true")]
    pub read_only: bool,
    /// Caps applied to every query.
    #[serde(default)]
    pub limits: LimitsSpec,
}

fn default_ch_port() -> i32 {
    8443
}
fn default_database() -> String {
    "default".into()
}
fn default_true() -> bool {
    true
}

/// TLS towards ClickHouse.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": CEL_CLIENT_CERT_PAIR.rule, "message": CEL_CLIENT_CERT_PAIR.message},
]))]
pub struct ClickHouseTlsSpec {
    /// Use https to reach ClickHouse.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Extra CA certificate (PEM) to trust, mounted from this Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Client certificate (PEM) for mutual TLS, mounted from this Secret key. Needs
    /// `clientKeySecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret_ref: Option<SecretKeyRef>,
    /// Private key (PEM) of the client certificate, mounted from this Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_secret_ref: Option<SecretKeyRef>,
}

impl Default for ClickHouseTlsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            ca_secret_ref: None,
            client_cert_secret_ref: None,
            client_key_secret_ref: None,
        }
    }
}

/// Result and time caps. `0` means the gateway's default; a negative number disables
/// the row or byte cap.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct LimitsSpec {
    /// Most rows a tool result carries.
    pub max_result_rows: i64,
    /// Most bytes of JSON a tool result carries.
    pub max_result_bytes: i64,
    /// Seconds a query may run in ClickHouse.
    #[schemars(range(min = 1))]
    pub max_execution_time: i64,
    /// Longer SQL is refused before it is sent. `0`: the gateway's default (10 MiB).
    pub max_query_length: i64,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        Self {
            max_result_rows: 500,
            max_result_bytes: 50_000,
            max_execution_time: 120,
            max_query_length: 0,
        }
    }
}

/// One ClickHouse cluster, served at `/mcp/<name>`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The cluster's name: an RFC 1123 label, unique in the list; the URL path segment.
    #[schemars(length(min = 1, max = 63), regex(pattern = CLUSTER_NAME_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": CEL_CLUSTER_NAME.rule, "message": CEL_CLUSTER_NAME.message},
    ]))]
    pub name: String,
    /// This cluster's ClickHouse host, instead of the host template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host: Option<String>,
    /// This cluster's ClickHouse port, instead of `clickhouse.port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// What the cluster holds, shown to models choosing a cluster on the fleet connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub description: Option<String>,
}

/// A key of a Secret in the resource's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Sign-in settings. Secrets are referenced, never copied: they reach the gateway as
/// environment variables from the Secrets.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": CEL_BROKER_SECRETS.rule, "message": CEL_BROKER_SECRETS.message},
]))]
pub struct OAuthSpec {
    /// true: the gateway is the OAuth authorization server MCP clients see, and a client
    /// of the upstream identity provider. false: clients get tokens from `issuer` directly.
    #[serde(default = "default_true")]
    pub broker: bool,
    /// The upstream identity provider (https); OIDC discovery starts here.
    #[schemars(length(max = 2048), regex(pattern = HTTPS_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": CEL_HTTPS.rule, "message": CEL_HTTPS.message}]))]
    pub issuer: String,
    /// What ClickHouse (or the verifier) expects in the token's `aud`.
    #[serde(default)]
    pub audience: String,
    /// The gateway's public base URL (https), e.g. `https://mcp.example.com`. Connector
    /// URLs are this plus `/mcp/<cluster>`.
    #[schemars(length(max = 2048), regex(pattern = HTTPS_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": CEL_HTTPS.rule, "message": CEL_HTTPS.message}]))]
    pub public_url: String,
    /// The gateway's OAuth client id at the identity provider (broker mode).
    #[serde(default)]
    pub client_id: String,
    /// The OAuth client secret (broker mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,
    /// At least 32 random bytes; the broker derives its encryption keys from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_ref: Option<SecretKeyRef>,
    /// The token claim that names the ClickHouse user.
    #[serde(default = "default_username_claim")]
    #[schemars(length(min = 1))]
    pub username_claim: String,
    /// Scopes the gateway asks the identity provider for (broker mode). Entra selects
    /// the API through a scope here (`api://<app-id>/mcp.access`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Scopes every token must carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_scopes: Vec<String>,
    /// Ask the identity provider for offline access and hand out refresh tokens.
    #[serde(default)]
    pub upstream_offline_access: bool,
    /// What MCP clients receive as their bearer: `auto` (the upstream access token when
    /// it is a JWT for `audience`, else the id_token), `idToken` or `accessToken`.
    #[serde(default)]
    pub upstream_token: UpstreamTokenSpec,
    /// Broker mode: `sealed` (default) hands MCP clients an opaque token of the gateway's
    /// own that carries the upstream token, valid only at this gateway and for the
    /// resource it names; `passthrough` hands them the upstream token itself.
    #[serde(default)]
    pub token_mode: TokenModeSpec,
    /// Redirect hosts whose clients skip the gateway's consent page (e.g. `claude.ai`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_redirect_hosts: Vec<String>,
    /// The gateway checks every token's signature, issuer, audience, expiry and scopes
    /// before anything reaches ClickHouse (the default). `false` is accepted only with
    /// `trustClickhouseTokenChecks: true`.
    #[serde(default = "default_true")]
    pub validate_tokens: bool,
    /// States that every ClickHouse endpoint checks every token itself (token processors
    /// or the verifier); required to turn `validateTokens` off. Tokens are then sent as
    /// Bearer only and no claim of theirs is used.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_clickhouse_token_checks: bool,
    /// The token claim that lists the user's roles (sent to ClickHouse as its roles).
    /// Empty: no roles.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role_claim: String,
    /// Regex the roles from `roleClaim` must match to be used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role_filter: String,
    /// The identity provider's JWKS URL. Empty: from OIDC discovery.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 2048))]
    pub jwks_url: String,
}

/// What MCP clients receive as their bearer in broker mode.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum UpstreamTokenSpec {
    #[default]
    Auto,
    IdToken,
    AccessToken,
}

/// `spec.toolsListing`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ToolsListingSpec {
    #[default]
    Auto,
    Listed,
    Searched,
}

/// What `/oauth/token` hands MCP clients in broker mode.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TokenModeSpec {
    #[default]
    Sealed,
    Passthrough,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into()]
}

fn default_username_claim() -> String {
    "email".into()
}

/// The per-token catalog cache of each gateway pod.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct CatalogCacheSpec {
    /// Most cached catalogs per pod (at least 100).
    #[schemars(range(min = 100))]
    pub max_entries: i64,
    /// How long a catalog is kept when ClickHouse gives no better hint (1m to 24h).
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": CEL_DURATION.rule, "message": CEL_DURATION.message}]))]
    pub ttl_fallback: String,
    /// How long a denied lookup is remembered (10s to 5m).
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": CEL_DURATION.rule, "message": CEL_DURATION.message}]))]
    pub negative_ttl: String,
}

impl Default for CatalogCacheSpec {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            ttl_fallback: "15m".into(),
            negative_ttl: "60s".into(),
        }
    }
}

/// A tool rule of the gateway (`server.tools`). Set exactly one of `name`,
/// `viewRegexp`, `tableRegexp`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolRuleSpec {
    /// `read` (queries, views) or `write` (inserts into tables).
    #[serde(rename = "type")]
    pub kind: ToolKindSpec,
    /// A static tool by name (`execute_query`, `list_databases`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Regex over `database.view`: every matching view becomes a read tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_regexp: Option<String>,
    /// Regex over `database.table`: every matching table becomes a write tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_regexp: Option<String>,
    /// Write mode of a `tableRegexp` rule; only `insert` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WriteModeSpec>,
    /// Prefix for the generated tool names (letters, digits, `_`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// Kind of a tool rule.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolKindSpec {
    Read,
    Write,
}

/// Write mode of a table rule.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WriteModeSpec {
    Insert,
}

/// The Ingress in front of the gateway.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": CEL_INGRESS_HOST.rule, "message": CEL_INGRESS_HOST.message},
]))]
pub struct IngressSpec {
    /// Create the Ingress.
    pub enabled: bool,
    /// IngressClass to use (e.g. `nginx`). Empty: the cluster's default class.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub class_name: String,
    /// Public host name, normally the host of `oauth.publicUrl`.
    pub host: String,
    /// Secret holding the TLS certificate for `host`. Empty: no TLS section.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_secret_name: String,
    /// Extra annotations on the Ingress (e.g. for cert-manager).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Keep each caller on one gateway replica: the ingress hashes the `Authorization`
    /// header (ingress-nginx `upstream-hash-by: $http_authorization`, consistent
    /// hashing), so a caller's requests reach the replica that already holds their
    /// catalogs. Correctness never depends on it: any replica answers any request. An
    /// `upstream-hash-by` given in `annotations` wins.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub caller_affinity: bool,
}

/// The Service in front of the gateway pods.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// Service type.
    #[serde(rename = "type")]
    pub kind: ServiceType,
    /// Port the Service listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            kind: ServiceType::ClusterIP,
            port: 80,
        }
    }
}

/// Kubernetes Service type.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// What the operator last did, and where to connect.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpMultiClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing`, `Degraded` and `Stalled` (kstatus: no progress without a
    /// change), each with a reason and a message.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Hash of the restart-only gateway configuration and the referenced Secrets'
    /// versions; it changes exactly when the pods must restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// Gateway pods ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Number of clusters served.
    #[serde(default)]
    pub clusters: i32,
    /// The connector URL of each cluster, to paste into an MCP client.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// What to mount where for the verifier (when `spec.verifier.enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<VerifierStatus>,
    /// The gateway's ServiceMonitor, once applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<String>,
}

/// Where the rendered verifier configuration is, and how ClickHouse reaches it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifierStatus {
    /// `sidecar` or `service`.
    pub mode: VerifierMode,
    /// The ConfigMap holding both keys.
    pub config_map: String,
    /// Key with the verifier's configuration; mount it at `mountPath` and run
    /// `chmcp-gateway verify --config <mountPath>/<configKey>`.
    pub config_key: String,
    /// Key with the `<http_authentication_servers>` fragment; mount it into ClickHouse's
    /// `config.d/`.
    pub clickhouse_config_key: String,
    /// Where the verifier container expects its configuration directory.
    pub mount_path: String,
    /// The URL ClickHouse calls (loopback for a sidecar, the Service in `service` mode).
    pub verify_url: String,
}

/// One connector URL.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Endpoint {
    /// The cluster's name; `*` for the fleet connector (every cluster).
    pub cluster: String,
    /// `oauth.publicUrl` + `/mcp/<cluster>` (the fleet connector: `/mcp`).
    pub url: String,
}

impl McpMultiClusterSpec {
    /// Every Secret this resource references, with the field that references it.
    pub fn secret_refs(&self) -> Vec<(&'static str, &SecretKeyRef)> {
        let mut out = Vec::new();
        let tls = &self.clickhouse.tls;
        if let Some(r) = &tls.ca_secret_ref {
            out.push(("spec.clickhouse.tls.caSecretRef", r));
        }
        if let Some(r) = &tls.client_cert_secret_ref {
            out.push(("spec.clickhouse.tls.clientCertSecretRef", r));
        }
        if let Some(r) = &tls.client_key_secret_ref {
            out.push(("spec.clickhouse.tls.clientKeySecretRef", r));
        }
        if let Some(r) = &self.oauth.client_secret_ref {
            out.push(("spec.oauth.clientSecretRef", r));
        }
        if let Some(r) = &self.oauth.signing_secret_ref {
            out.push(("spec.oauth.signingSecretRef", r));
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod test_fixtures {
    use super::*;

    pub fn spec_from_yaml(text: &str) -> McpMultiClusterSpec {
        serde_yaml_ng::from_str(text).expect("fixture spec parses")
    }
}

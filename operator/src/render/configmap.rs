//! The gateway configuration, built with the gateway's own types, and its ConfigMap.

use std::collections::BTreeMap;

use chmcp_gateway::config::{
    ClusterOverride, Config, HumanDuration, LogFormat, LogLevel, OtlpConfig, Protocol,
    TelemetryConfig, TokenMode, ToolKind, ToolRule, ToolsListing, Transport, UpstreamToken,
    WriteMode,
};
use k8s_openapi::api::core::v1::ConfigMap;

use super::{object_meta, Names, RenderError};
use crate::crd::{
    LogFormatSpec, LogLevelSpec, McpMultiCluster, McpMultiClusterSpec, TokenModeSpec, ToolKindSpec,
    ToolsListingSpec, UpstreamTokenSpec, WriteModeSpec,
};
use crate::validate::FieldIssue;

/// Key of the configuration file inside the ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";
/// Where the ConfigMap is mounted; a directory (not `subPath`) so kubelet refreshes
/// the file in place and the gateway's `watch` picks up reloadable changes.
pub const CONFIG_DIR: &str = "/etc/chmcp";
/// Where the CA Secret key is mounted.
pub const CA_DIR: &str = "/etc/chmcp-ca";
pub const CA_FILE: &str = "ca.crt";
/// Where the client certificate and key for mutual TLS are mounted (one directory each:
/// they may come from different Secrets).
pub const CLIENT_CERT_DIR: &str = "/etc/chmcp-client-cert";
pub const CLIENT_CERT_FILE: &str = "tls.crt";
pub const CLIENT_KEY_DIR: &str = "/etc/chmcp-client-key";
pub const CLIENT_KEY_FILE: &str = "tls.key";
/// The gateway's listening port inside the pod.
pub const GATEWAY_PORT: u16 = 8080;

/// The gateway configuration for this resource. Secrets are left empty: they arrive as
/// environment variables (`CHMCP_SERVER_OAUTH_*`), which the gateway reads over the file.
/// Built once, by the validate step, which judges it; render writes it out.
pub fn gateway_config(spec: &McpMultiClusterSpec) -> Result<Config, FieldIssue> {
    let mut c = Config {
        watch: true,
        ..Config::default()
    };

    let ch = &mut c.clickhouse;
    ch.host = spec.clickhouse.host_template.clone();
    ch.port = port(spec.clickhouse.port, "spec.clickhouse.port")?;
    ch.protocol = Protocol::Http;
    ch.tls.enabled = spec.clickhouse.tls.enabled;
    let tls = &spec.clickhouse.tls;
    if tls.ca_secret_ref.is_some() {
        ch.tls.ca_cert = format!("{CA_DIR}/{CA_FILE}");
    }
    if tls.client_cert_secret_ref.is_some() {
        ch.tls.client_cert = format!("{CLIENT_CERT_DIR}/{CLIENT_CERT_FILE}");
    }
    if tls.client_key_secret_ref.is_some() {
        ch.tls.client_key = format!("{CLIENT_KEY_DIR}/{CLIENT_KEY_FILE}");
    }
    ch.connect_host = spec.clickhouse.connect_host.clone();
    ch.database = spec.clickhouse.database.clone();
    ch.http_headers = spec.clickhouse.http_headers.clone();
    ch.read_only = spec.clickhouse.read_only;
    let limits = &spec.clickhouse.limits;
    ch.max_result_rows = limits.max_result_rows;
    ch.max_result_bytes = limits.max_result_bytes;
    ch.max_execution_time = u64::try_from(limits.max_execution_time).map_err(|_| FieldIssue {
        field: "spec.clickhouse.limits.maxExecutionTime".into(),
        message: "must not be negative".into(),
    })?;
    ch.max_query_length = limits.max_query_length;
    // With a host template there is no sensible single-host default: leave the template as is.
    if ch.host.is_empty() {
        ch.host = "{cluster}".into();
    }

    let s = &mut c.server;
    s.transport = Transport::Http;
    s.address = "0.0.0.0".into();
    s.port = GATEWAY_PORT;
    s.tools = spec.tools.iter().map(tool_rule).collect();
    s.tool_input_settings = spec.tool_input_settings.clone();
    s.blocked_query_clauses = spec.blocked_query_clauses.clone();
    s.allowed_table_functions = spec.allowed_table_functions.clone();
    if let Some(settings) = &spec.allowed_query_settings {
        s.allowed_query_settings = settings.clone();
    }
    s.allowed_write_engines = spec.allowed_write_engines.clone();
    s.result_view = spec.result_view;
    s.allowed_origins = spec.allowed_origins.clone();
    s.tools_listing = match spec.tools_listing {
        ToolsListingSpec::Auto => ToolsListing::Auto,
        ToolsListingSpec::Listed => ToolsListing::Listed,
        ToolsListingSpec::Searched => ToolsListing::Searched,
    };

    let o = &mut s.oauth;
    let base = spec.oauth.public_url.trim_end_matches('/').to_string();
    o.enabled = true;
    o.broker = spec.oauth.broker;
    o.issuer = spec.oauth.issuer.clone();
    // One resource identifier shared by every cluster: the public base URL, which is
    // what the audience normally names too (docs/spec-notes.md, "Broker mode"). The
    // gateway validates every token's `aud` (validate_tokens is on by default), so an
    // unset audience means that identifier rather than a configuration the gateway
    // refuses.
    o.public_resource_url = format!("{base}/");
    o.audience = if spec.oauth.audience.is_empty() {
        o.public_resource_url.clone()
    } else {
        spec.oauth.audience.clone()
    };
    o.public_auth_server_url = if spec.oauth.broker {
        base
    } else {
        String::new()
    };
    o.client_id = spec.oauth.client_id.clone();
    o.username_claim = spec.oauth.username_claim.clone();
    let so = &spec.oauth;
    o.scopes = so.scopes.clone();
    o.required_scopes = so.required_scopes.clone();
    o.upstream_offline_access = so.upstream_offline_access;
    o.upstream_token = match so.upstream_token {
        UpstreamTokenSpec::Auto => UpstreamToken::Auto,
        UpstreamTokenSpec::IdToken => UpstreamToken::IdToken,
        UpstreamTokenSpec::AccessToken => UpstreamToken::AccessToken,
    };
    o.token_mode = match so.token_mode {
        TokenModeSpec::Sealed => TokenMode::Sealed,
        TokenModeSpec::Passthrough => TokenMode::Passthrough,
    };
    o.trusted_redirect_hosts = so.trusted_redirect_hosts.clone();
    o.validate_tokens = so.validate_tokens;
    o.trust_clickhouse_token_checks = so.trust_clickhouse_token_checks;
    o.role_claim = so.role_claim.clone();
    o.role_filter = so.role_filter.clone();
    o.jwks_url = so.jwks_url.clone();

    c.logging.level = match spec.logging.level {
        LogLevelSpec::Trace => LogLevel::Trace,
        LogLevelSpec::Debug => LogLevel::Debug,
        LogLevelSpec::Info => LogLevel::Info,
        LogLevelSpec::Warn => LogLevel::Warn,
        LogLevelSpec::Error => LogLevel::Error,
    };
    c.logging.format = match spec.logging.format {
        LogFormatSpec::Text => LogFormat::Text,
        LogFormatSpec::Json => LogFormat::Json,
    };

    // Export headers (API keys) are secrets the gateway only takes from its file, so the
    // operator renders none: a collector beside the pods, or a sidecar adding them, carries
    // the credentials instead.
    c.telemetry = TelemetryConfig {
        otlp: spec.telemetry.otlp.as_ref().map(|o| OtlpConfig {
            endpoint: o.endpoint.clone(),
            headers: BTreeMap::new(),
            sample_ratio: o.sample_ratio,
            service_name: o.service_name.clone(),
        }),
        include_sql: spec.telemetry.include_sql,
    };

    let m = &mut c.multicluster;
    m.enabled = true;
    m.cluster_allowlist = spec.clusters.iter().map(|cl| cl.name.clone()).collect();
    m.fleet_endpoint = spec.fleet_endpoint;
    m.clusters = BTreeMap::new();
    for (i, cl) in spec.clusters.iter().enumerate() {
        let port = cl
            .port
            .map(|p| port(p, &format!("spec.clusters[{i}].port")))
            .transpose()?;
        if cl.host.is_some() || port.is_some() || cl.description.is_some() {
            m.clusters.insert(
                cl.name.clone(),
                ClusterOverride {
                    host: cl.host.clone(),
                    port,
                    description: cl.description.clone(),
                },
            );
        }
    }
    let cc = &spec.catalog_cache;
    m.catalog_cache_max = usize::try_from(cc.max_entries).map_err(|_| FieldIssue {
        field: "spec.catalogCache.maxEntries".into(),
        message: "must not be negative".into(),
    })?;
    m.catalog_ttl_fallback = duration(&cc.ttl_fallback, "spec.catalogCache.ttlFallback")?;
    m.catalog_negative_ttl = duration(&cc.negative_ttl, "spec.catalogCache.negativeTtl")?;
    Ok(c)
}

fn port(p: i32, field: &str) -> Result<u16, FieldIssue> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| FieldIssue {
            field: field.into(),
            message: format!("{p} is not a port (1-65535)"),
        })
}

fn duration(text: &str, field: &str) -> Result<HumanDuration, FieldIssue> {
    text.parse().map_err(|message| FieldIssue {
        field: field.into(),
        message,
    })
}

fn tool_rule(t: &crate::crd::ToolRuleSpec) -> ToolRule {
    ToolRule {
        kind: match t.kind {
            ToolKindSpec::Read => ToolKind::Read,
            ToolKindSpec::Write => ToolKind::Write,
        },
        name: t.name.clone(),
        view_regexp: t.view_regexp.clone(),
        table_regexp: t.table_regexp.clone(),
        mode: t.mode.map(|WriteModeSpec::Insert| WriteMode::Insert),
        prefix: t.prefix.clone(),
    }
}

/// The configuration as the gateway reads it.
pub fn config_yaml(config: &Config) -> Result<String, RenderError> {
    serde_yaml_ng::to_string(config).map_err(|e| RenderError::Serialize(e.to_string()))
}

pub fn config_map(mc: &McpMultiCluster, names: &Names, yaml: &str) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(mc, names, &names.gateway),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), yaml.to_string())])),
        ..ConfigMap::default()
    }
}

/// Which field of the resource a gateway configuration key comes from, so the gateway's
/// own validation can be reported in the resource's terms.
pub fn spec_field_for(gateway_key: &str) -> &'static str {
    const MAP: &[(&str, &str)] = &[
        ("clickhouse.host", "spec.clickhouse.hostTemplate"),
        ("clickhouse.connect_host", "spec.clickhouse.connectHost"),
        ("clickhouse.database", "spec.clickhouse.database"),
        ("clickhouse.http_headers", "spec.clickhouse.httpHeaders"),
        ("clickhouse.tls.client", "spec.clickhouse.tls"),
        (
            "clickhouse.max_query_length",
            "spec.clickhouse.limits.maxQueryLength",
        ),
        ("server.tool_input_settings", "spec.toolInputSettings"),
        ("server.blocked_query_clauses", "spec.blockedQueryClauses"),
        (
            "server.allowed_table_functions",
            "spec.allowedTableFunctions",
        ),
        ("server.allowed_query_settings", "spec.allowedQuerySettings"),
        ("server.allowed_write_engines", "spec.allowedWriteEngines"),
        ("server.oauth.validate_tokens", "spec.oauth.validateTokens"),
        ("server.oauth.token_mode", "spec.oauth.tokenMode"),
        (
            "server.oauth.trust_clickhouse_token_checks",
            "spec.oauth.trustClickhouseTokenChecks",
        ),
        ("server.allowed_origins", "spec.allowedOrigins"),
        ("server.tools_listing", "spec.toolsListing"),
        ("server.oauth.scopes", "spec.oauth.scopes"),
        ("server.oauth.required_scopes", "spec.oauth.requiredScopes"),
        ("server.oauth.role_claim", "spec.oauth.roleClaim"),
        ("server.oauth.role_filter", "spec.oauth.roleFilter"),
        (
            "server.oauth.trusted_redirect_hosts",
            "spec.oauth.trustedRedirectHosts",
        ),
        ("clickhouse.port", "spec.clickhouse.port"),
        (
            "clickhouse.max_execution_time",
            "spec.clickhouse.limits.maxExecutionTime",
        ),
        ("clickhouse.max_result", "spec.clickhouse.limits"),
        ("server.tools", "spec.tools"),
        ("server.oauth.issuer", "spec.oauth.issuer"),
        (
            "server.oauth.public_auth_server_url",
            "spec.oauth.publicUrl",
        ),
        ("server.oauth.public_resource_url", "spec.oauth.publicUrl"),
        ("server.oauth.client_id", "spec.oauth.clientId"),
        ("server.oauth.username_claim", "spec.oauth.usernameClaim"),
        ("multicluster.catalog", "spec.catalogCache"),
        ("multicluster.clusters", "spec.clusters"),
        ("multicluster.fleet_endpoint", "spec.fleetEndpoint"),
        ("telemetry.otlp.endpoint", "spec.telemetry.otlp.endpoint"),
        (
            "telemetry.otlp.sample_ratio",
            "spec.telemetry.otlp.sampleRatio",
        ),
        (
            "telemetry.otlp.service_name",
            "spec.telemetry.otlp.serviceName",
        ),
        ("telemetry.include_sql", "spec.telemetry.includeSql"),
        ("telemetry", "spec.telemetry"),
    ];
    MAP.iter()
        .find(|(k, _)| gateway_key.starts_with(k))
        .map(|(_, f)| *f)
        .unwrap_or("spec")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::test_fixtures::spec_from_yaml;
    use chmcp_gateway::config::{parse_document, validate, Secret};

    const SPEC: &str = r#"
clickhouse:
  hostTemplate: "chi-{cluster}.svc"
  port: 8443
  tls: {enabled: true, caSecretRef: {name: ch-ca, key: ca.crt}}
  limits: {maxResultRows: 100, maxResultBytes: 2000, maxExecutionTime: 30}
clusters: [{name: otel}, {name: antalya, host: ch-antalya.internal, port: 9443}]
oauth:
  issuer: https://accounts.example.com
  audience: https://mcp.example.com/
  publicUrl: https://mcp.example.com/
  clientId: id
  clientSecretRef: {name: s, key: a}
  signingSecretRef: {name: s, key: b}
  usernameClaim: preferred_username
catalogCache: {maxEntries: 500, ttlFallback: 10m, negativeTtl: 30s}
tools: [{type: read, name: execute_query}, {type: write, tableRegexp: "logs\\..*", mode: insert}]
"#;

    #[test]
    fn rendered_config_reads_back_and_validates_in_the_gateway() {
        let config = gateway_config(&spec_from_yaml(SPEC)).unwrap();
        // No `allowedQuerySettings`: the gateway's own default list, not an empty one.
        assert_eq!(
            config.server.allowed_query_settings,
            chmcp_gateway::clickhouse::policy::DEFAULT_QUERY_SETTINGS
        );
        let yaml = config_yaml(&config).unwrap();
        assert!(
            !yaml.contains("secret: x"),
            "no secret values in the ConfigMap"
        );
        let mut back = parse_document(&yaml).unwrap();
        assert_eq!(
            back, config,
            "round trip through the gateway's strict parser"
        );
        // Secrets come from the environment in the pod; stand them in for validation.
        back.server.oauth.client_secret = Secret::new("dummy-client-secret");
        back.server.oauth.signing_secret = Secret::new("0123456789abcdef0123456789abcdef");
        let warnings = validate(&back).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn result_view_is_on_unless_the_resource_turns_it_off() {
        let on = gateway_config(&spec_from_yaml(SPEC)).unwrap();
        assert!(on.server.result_view);
        let off = gateway_config(&spec_from_yaml(&format!("{SPEC}resultView: false\n"))).unwrap();
        assert!(!off.server.result_view);
        let yaml = config_yaml(&off).unwrap();
        assert_eq!(parse_document(&yaml).unwrap(), off);
    }

    #[test]
    fn rendered_config_carries_every_setting() {
        let c = gateway_config(&spec_from_yaml(SPEC)).unwrap();
        assert!(c.multicluster.enabled && c.watch);
        assert_eq!(c.multicluster.cluster_allowlist, vec!["otel", "antalya"]);
        assert_eq!(
            c.multicluster.clusters["antalya"],
            ClusterOverride {
                host: Some("ch-antalya.internal".into()),
                port: Some(9443),
                ..Default::default()
            }
        );
        assert!(!c.multicluster.clusters.contains_key("otel"));
        assert_eq!(c.multicluster.catalog_cache_max, 500);
        assert_eq!(
            c.multicluster.catalog_ttl_fallback,
            HumanDuration::from_secs(600)
        );
        assert_eq!(c.clickhouse.host, "chi-{cluster}.svc");
        assert_eq!(c.clickhouse.tls.ca_cert, "/etc/chmcp-ca/ca.crt");
        assert!(c.clickhouse.read_only);
        assert_eq!(
            (
                c.clickhouse.max_result_rows,
                c.clickhouse.max_result_bytes,
                c.clickhouse.max_execution_time
            ),
            (100, 2000, 30)
        );
        let o = &c.server.oauth;
        assert!(o.enabled && o.broker);
        assert_eq!(o.public_auth_server_url, "https://mcp.example.com");
        assert_eq!(o.public_resource_url, "https://mcp.example.com/");
        assert_eq!(o.username_claim, "preferred_username");
        assert!(o.client_secret.is_empty() && o.signing_secret.is_empty());
        assert_eq!(c.server.tools.len(), 2);
        assert_eq!(c.server.tools[1].mode, Some(WriteMode::Insert));
    }

    /// Every setting README documents for a fleet, set through the resource (an Entra
    /// set-up with refresh tokens and roles, mutual TLS, query policy, logging).
    const FLEET: &str = r#"
clickhouse:
  hostTemplate: "chi-{cluster}.svc"
  connectHost: "{cluster}.lb.internal"
  database: analytics
  httpHeaders: {X-Team: data}
  tls:
    enabled: true
    caSecretRef: {name: ch-ca, key: ca.crt}
    clientCertSecretRef: {name: ch-client, key: tls.crt}
    clientKeySecretRef: {name: ch-client, key: tls.key}
  limits: {maxResultRows: 100, maxResultBytes: 2000, maxExecutionTime: 30, maxQueryLength: 65536}
clusters: [{name: otel}]
oauth:
  issuer: https://login.microsoftonline.com/tenant/v2.0
  audience: app-id
  publicUrl: https://mcp.example.com
  clientId: app-id
  clientSecretRef: {name: s, key: a}
  signingSecretRef: {name: s, key: b}
  usernameClaim: preferred_username
  scopes: [openid, email, "api://app-id/mcp.access"]
  requiredScopes: [mcp.access]
  upstreamOfflineAccess: true
  upstreamToken: accessToken
  tokenMode: passthrough
  trustedRedirectHosts: [claude.ai]
  validateTokens: true
  roleClaim: roles
  roleFilter: "^mcp_"
  jwksUrl: https://login.microsoftonline.com/tenant/discovery/v2.0/keys
toolInputSettings: [max_threads]
toolsListing: searched
blockedQueryClauses: [INTO OUTFILE, SETTINGS]
allowedQuerySettings: [max_threads, join_algorithm]
allowedWriteEngines: [Kafka]
allowedOrigins: [https://claude.ai]
logging: {level: debug, format: text}
"#;

    #[test]
    fn every_readme_fleet_setting_reaches_the_gateway_config() {
        let c = gateway_config(&spec_from_yaml(FLEET)).unwrap();
        let ch = &c.clickhouse;
        assert_eq!(ch.connect_host, "{cluster}.lb.internal");
        assert_eq!(ch.database, "analytics");
        assert_eq!(ch.http_headers["X-Team"], "data");
        assert_eq!(ch.tls.client_cert, "/etc/chmcp-client-cert/tls.crt");
        assert_eq!(ch.tls.client_key, "/etc/chmcp-client-key/tls.key");
        assert_eq!(ch.max_query_length, 65536);
        let o = &c.server.oauth;
        assert_eq!(o.scopes, ["openid", "email", "api://app-id/mcp.access"]);
        assert_eq!(o.required_scopes, ["mcp.access"]);
        assert!(o.upstream_offline_access && o.validate_tokens);
        assert_eq!(o.upstream_token, UpstreamToken::AccessToken);
        assert_eq!(o.token_mode, TokenMode::Passthrough);
        assert_eq!(o.trusted_redirect_hosts, ["claude.ai"]);
        assert_eq!(
            (o.role_claim.as_str(), o.role_filter.as_str()),
            ("roles", "^mcp_")
        );
        assert_eq!(o.username_claim, "preferred_username");
        assert_eq!(
            o.jwks_url,
            "https://login.microsoftonline.com/tenant/discovery/v2.0/keys"
        );
        assert_eq!(c.server.tool_input_settings, ["max_threads"]);
        assert_eq!(c.server.tools_listing, ToolsListing::Searched);
        assert_eq!(c.server.blocked_query_clauses, ["INTO OUTFILE", "SETTINGS"]);
        assert_eq!(
            c.server.allowed_query_settings,
            ["max_threads", "join_algorithm"]
        );
        assert_eq!(c.server.allowed_write_engines, ["Kafka"]);
        assert_eq!(c.server.allowed_origins, ["https://claude.ai"]);
        assert_eq!(
            (c.logging.level, c.logging.format),
            (LogLevel::Debug, LogFormat::Text)
        );

        // And the gateway itself reads the file back unchanged and accepts it.
        let yaml = config_yaml(&c).unwrap();
        reads_back_and_validates(&yaml, &c);
    }

    /// The gateway reads the rendered file back unchanged and accepts it (with the
    /// secrets the pod gets from the environment standing in).
    fn reads_back_and_validates(yaml: &str, c: &Config) {
        let mut back = parse_document(yaml).unwrap();
        assert_eq!(&back, c);
        back.server.oauth.client_secret = Secret::new("dummy-client-secret");
        back.server.oauth.signing_secret = Secret::new("0123456789abcdef0123456789abcdef");
        validate(&back).unwrap();
    }

    #[test]
    fn telemetry_reaches_the_configmap_and_the_gateway_reads_it_back() {
        let spec = spec_from_yaml(&format!(
            "{SPEC}telemetry:\n  otlp: {{endpoint: \"http://otel-collector.observability:4318\", sampleRatio: 0.1, serviceName: mcp-analytics}}\n  includeSql: true\n"
        ));
        let c = gateway_config(&spec).unwrap();
        let otlp = c.telemetry.otlp.clone().expect("otlp rendered");
        assert_eq!(otlp.endpoint, "http://otel-collector.observability:4318");
        assert_eq!(otlp.sample_ratio, 0.1);
        assert_eq!(otlp.service_name, "mcp-analytics");
        assert!(otlp.headers.is_empty(), "no secret in the ConfigMap");
        assert!(c.telemetry.include_sql);

        let yaml = config_yaml(&c).unwrap();
        assert!(
            yaml.contains(
                "telemetry:\n  otlp:\n    endpoint: http://otel-collector.observability:4318\n"
            ),
            "{yaml}"
        );
        reads_back_and_validates(&yaml, &c);
    }

    #[test]
    fn telemetry_defaults_to_off_and_otlp_fields_to_the_gateway_defaults() {
        let off = gateway_config(&spec_from_yaml(SPEC)).unwrap();
        assert_eq!(off.telemetry, Default::default());
        assert!(!config_yaml(&off).unwrap().contains("otlp"));

        let spec = spec_from_yaml(&format!(
            "{SPEC}telemetry: {{otlp: {{endpoint: \"https://otlp.example.com\"}}}}\n"
        ));
        let otlp = gateway_config(&spec).unwrap().telemetry.otlp.unwrap();
        let d = chmcp_gateway::config::OtlpConfig::default();
        assert_eq!(
            (otlp.sample_ratio, otlp.service_name),
            (d.sample_ratio, d.service_name)
        );
    }

    #[test]
    fn defaults_match_the_gateway_where_the_resource_says_nothing() {
        let c = gateway_config(&spec_from_yaml(SPEC)).unwrap();
        let d = Config::default();
        assert_eq!(c.server.oauth.scopes, d.server.oauth.scopes);
        assert_eq!(c.server.oauth.upstream_token, d.server.oauth.upstream_token);
        assert_eq!(c.server.oauth.token_mode, TokenMode::Sealed);
        assert_eq!(c.server.oauth.token_mode, d.server.oauth.token_mode);
        assert_eq!(c.clickhouse.max_query_length, 0, "0: the gateway's default");
        assert_eq!(c.clickhouse.database, d.clickhouse.database);
        assert_eq!(c.logging.format, LogFormat::Json, "json on Kubernetes");
    }

    #[test]
    fn gateway_keys_map_to_resource_fields() {
        assert_eq!(
            spec_field_for("multicluster.catalog_ttl_fallback"),
            "spec.catalogCache"
        );
        assert_eq!(spec_field_for("server.tools[0].view_regexp"), "spec.tools");
        assert_eq!(spec_field_for("something.else"), "spec");
        assert_eq!(
            spec_field_for("telemetry.otlp.sample_ratio"),
            "spec.telemetry.otlp.sampleRatio"
        );
        assert_eq!(
            spec_field_for("telemetry.otlp.headers.x-api-key"),
            "spec.telemetry"
        );
    }
}

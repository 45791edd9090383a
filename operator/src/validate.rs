//! The validate step: checks on an `McpMultiCluster` that need no I/O, returning what
//! render consumes ([`ValidatedSpec`]).
//!
//! Each rule exists twice: as a CEL expression the API server evaluates (the `CEL_*`
//! constants, placed into the CRD schema by `crd.rs`) and as Rust code here, which the
//! controller runs before rendering and the tests run without an API server. The two
//! live side by side so a change to one is seen next to the other.

use std::collections::BTreeSet;

use chmcp_gateway::config::{validate as gateway_validate, Config, HumanDuration, Secret};
use chmcp_gateway::routing::is_valid_cluster_name;
use chmcp_gateway::verify::config::VerifyConfig;

use crate::crd::{McpMultiCluster, McpMultiClusterSpec, SecretKeyRef};
use crate::render::configmap::{gateway_config, spec_field_for};
use crate::render::verifier::verify_config;

/// One problem, named by its path in the resource (`spec.clusters[1].name`): an error
/// when validation refuses the spec, a warning when [`ValidatedSpec`] carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A CEL rule with the message the API server shows when it fails.
pub struct CelRule {
    pub rule: &'static str,
    pub message: &'static str,
}

/// RFC 1123 label, the same regex the gateway's `is_valid_cluster_name` implements.
pub const CLUSTER_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";
pub const CEL_CLUSTER_NAME: CelRule = CelRule {
    rule: "self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')",
    message: "cluster names are RFC 1123 labels: lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit",
};

pub const CEL_HOST_TEMPLATE: CelRule = CelRule {
    rule: "self.clickhouse.hostTemplate.contains('{cluster}') || self.clusters.all(c, has(c.host) && c.host != '')",
    message: "spec.clickhouse.hostTemplate must contain {cluster} unless every entry of spec.clusters sets host",
};

/// Both the CEL rule and a schema `pattern`, so plain JSON-schema validators catch it too.
pub const HTTPS_PATTERN: &str = "^https://.+";
pub const CEL_HTTPS: CelRule = CelRule {
    rule: "self.startsWith('https://')",
    message: "must be an https:// URL",
};

/// An http(s) URL with a host: what the gateway's `telemetry.otlp.endpoint` accepts.
/// No CEL twin: the gateway's own check (reported under `spec.telemetry.otlp.endpoint`)
/// is the Rust side.
pub const OTLP_ENDPOINT_PATTERN: &str = "^https?://[^/?#]+";

/// What `HumanDuration` parses: digits and an optional unit.
pub const DURATION_PATTERN: &str = "^[0-9]+(ms|s|m|h|d)?$";
pub const CEL_DURATION: CelRule = CelRule {
    rule: "self.matches('^[0-9]+(ms|s|m|h|d)?$')",
    message: "must be a duration such as 500ms, 30s, 15m, 1h or 1d",
};

pub const CEL_BROKER_SECRETS: CelRule = CelRule {
    rule: "!self.broker || (self.clientId != '' && has(self.clientSecretRef) && has(self.signingSecretRef))",
    message: "broker mode needs clientId, clientSecretRef and signingSecretRef",
};

pub const CEL_CLIENT_CERT_PAIR: CelRule = CelRule {
    rule: "has(self.clientCertSecretRef) == has(self.clientKeySecretRef)",
    message: "clientCertSecretRef and clientKeySecretRef are set together (mutual TLS needs both)",
};

pub const CEL_INGRESS_HOST: CelRule = CelRule {
    rule: "!self.enabled || self.host != ''",
    message: "spec.ingress.host is required when the ingress is enabled",
};

/// Every rule of the spec at once, so one status message can list them all.
pub fn check_spec(spec: &McpMultiClusterSpec) -> Result<(), Vec<FieldIssue>> {
    let mut errors = Vec::new();
    let mut err = |field: String, message: String| errors.push(FieldIssue { field, message });

    if spec.replicas < 1 {
        err(
            "spec.replicas".into(),
            format!("{} is below the minimum of 1", spec.replicas),
        );
    }
    if !(1..=65535).contains(&spec.clickhouse.port) {
        err(
            "spec.clickhouse.port".into(),
            format!("{} is not a port (1-65535)", spec.clickhouse.port),
        );
    }

    // CEL_CLUSTER_NAME, and the list-map uniqueness the API server enforces by `name`.
    if spec.clusters.is_empty() {
        err(
            "spec.clusters".into(),
            "must name at least one cluster".into(),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, c) in spec.clusters.iter().enumerate() {
        if !is_valid_cluster_name(&c.name) {
            err(
                format!("spec.clusters[{i}].name"),
                format!("`{}`: {}", c.name, CEL_CLUSTER_NAME.message),
            );
        }
        if !seen.insert(c.name.as_str()) {
            err(
                format!("spec.clusters[{i}].name"),
                format!("`{}` is listed twice (cluster names are unique)", c.name),
            );
        }
        if c.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
            err(
                format!("spec.clusters[{i}].host"),
                "must not be empty when set".into(),
            );
        }
        if let Some(port) = c.port {
            if !(1..=65535).contains(&port) {
                err(
                    format!("spec.clusters[{i}].port"),
                    format!("{port} is not a port (1-65535)"),
                );
            }
        }
    }

    // CEL_HOST_TEMPLATE
    let every_cluster_has_host = spec
        .clusters
        .iter()
        .all(|c| c.host.as_deref().is_some_and(|h| !h.is_empty()));
    if !spec.clickhouse.host_template.contains("{cluster}") && !every_cluster_has_host {
        err(
            "spec.clickhouse.hostTemplate".into(),
            CEL_HOST_TEMPLATE
                .message
                .replace("spec.clickhouse.hostTemplate ", ""),
        );
    }
    let tls = &spec.clickhouse.tls;
    for (field, r) in [
        ("spec.clickhouse.tls.caSecretRef", &tls.ca_secret_ref),
        (
            "spec.clickhouse.tls.clientCertSecretRef",
            &tls.client_cert_secret_ref,
        ),
        (
            "spec.clickhouse.tls.clientKeySecretRef",
            &tls.client_key_secret_ref,
        ),
    ] {
        if let Some(r) = r {
            check_ref(&mut err, field, r);
        }
    }
    // CEL_CLIENT_CERT_PAIR
    if tls.client_cert_secret_ref.is_some() != tls.client_key_secret_ref.is_some() {
        err(
            "spec.clickhouse.tls".into(),
            CEL_CLIENT_CERT_PAIR.message.into(),
        );
    }

    // CEL_HTTPS
    let o = &spec.oauth;
    for (field, url) in [
        ("spec.oauth.publicUrl", &o.public_url),
        ("spec.oauth.issuer", &o.issuer),
    ] {
        if !url.starts_with("https://") || url.len() <= "https://".len() {
            err(field.into(), format!("`{url}` {}", CEL_HTTPS.message));
        }
    }
    // CEL_BROKER_SECRETS
    if o.broker {
        if o.client_id.is_empty() {
            err(
                "spec.oauth.clientId".into(),
                "is required in broker mode".into(),
            );
        }
        match &o.client_secret_ref {
            None => err(
                "spec.oauth.clientSecretRef".into(),
                "is required in broker mode".into(),
            ),
            Some(r) => check_ref(&mut err, "spec.oauth.clientSecretRef", r),
        }
        match &o.signing_secret_ref {
            None => err(
                "spec.oauth.signingSecretRef".into(),
                "is required in broker mode".into(),
            ),
            Some(r) => check_ref(&mut err, "spec.oauth.signingSecretRef", r),
        }
    }
    if o.username_claim.trim().is_empty() {
        err(
            "spec.oauth.usernameClaim".into(),
            "must not be empty".into(),
        );
    }

    // CEL_DURATION: the same parser the gateway uses, so "parses" means what it means there.
    let cc = &spec.catalog_cache;
    for (field, text) in [
        ("spec.catalogCache.ttlFallback", &cc.ttl_fallback),
        ("spec.catalogCache.negativeTtl", &cc.negative_ttl),
    ] {
        if !is_duration_text(text) {
            err(field.into(), format!("`{text}` {}", CEL_DURATION.message));
        } else if let Err(m) = text.parse::<HumanDuration>() {
            err(field.into(), m);
        }
    }

    // CEL_INGRESS_HOST
    if spec.ingress.enabled && spec.ingress.host.is_empty() {
        err(
            "spec.ingress.host".into(),
            "is required when the ingress is enabled".into(),
        );
    }
    // The operator's selector labels: a pod label cannot take them over.
    for key in [crate::render::LABEL_NAME, crate::render::LABEL_INSTANCE] {
        if spec.pod_labels.contains_key(key) {
            err(
                format!("spec.podLabels.{key}"),
                "is set by the operator (it selects the gateway pods)".into(),
            );
        }
    }
    if !(1..=65535).contains(&spec.service.port) {
        err(
            "spec.service.port".into(),
            format!("{} is not a port (1-65535)", spec.service.port),
        );
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// DURATION_PATTERN without a regex engine: digits, then an optional unit, no spaces.
fn is_duration_text(text: &str) -> bool {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && matches!(&text[digits..], "" | "ms" | "s" | "m" | "h" | "d")
}

fn check_ref(err: &mut impl FnMut(String, String), field: &str, r: &SecretKeyRef) {
    if r.name.is_empty() {
        err(format!("{field}.name"), "must name a Secret".into());
    }
    if r.key.is_empty() {
        err(
            format!("{field}.key"),
            "must name a key of the Secret".into(),
        );
    }
}

/// A resource whose spec passed every check, with what render consumes already built
/// from it: the gateway configuration as the ConfigMap carries it (Secrets are left to
/// the environment) and, when enabled, the verifier's. Only [`validate`] makes one, so
/// an unchecked spec cannot be rendered and nothing is derived twice.
#[derive(Debug, Clone)]
pub struct ValidatedSpec<'a> {
    resource: &'a McpMultiCluster,
    gateway: Config,
    verifier: Option<VerifyConfig>,
    warnings: Vec<FieldIssue>,
}

impl<'a> ValidatedSpec<'a> {
    pub fn resource(&self) -> &'a McpMultiCluster {
        self.resource
    }

    pub fn spec(&self) -> &'a McpMultiClusterSpec {
        &self.resource.spec
    }

    /// The gateway configuration to render into the ConfigMap.
    pub fn gateway(&self) -> &Config {
        &self.gateway
    }

    /// The verifier configuration, when `spec.verifier.enabled`.
    pub fn verifier(&self) -> Option<&VerifyConfig> {
        self.verifier.as_ref()
    }

    /// What the gateway would warn about at start, under the resource's field names.
    pub fn warnings(&self) -> &[FieldIssue] {
        &self.warnings
    }
}

/// The validate step: [`check_spec`], then the gateway's (and, when enabled, the
/// verifier's) own validation of the configuration this spec renders to, reported
/// under the resource's field names. What the gateway would refuse at startup is
/// refused here, before any pod is rolled; what it would warn about is kept as a warning.
pub fn validate(mc: &McpMultiCluster) -> Result<ValidatedSpec<'_>, Vec<FieldIssue>> {
    let spec = &mc.spec;
    check_spec(spec)?;
    let gateway = gateway_config(spec).map_err(|e| vec![e])?;
    // Secrets reach the pod through the environment; stand-ins long enough for the
    // gateway's checks let it judge everything else.
    let mut judged = gateway.clone();
    if spec.oauth.client_secret_ref.is_some() {
        judged.server.oauth.client_secret = Secret::new("stand-in");
    }
    if spec.oauth.signing_secret_ref.is_some() {
        judged.server.oauth.signing_secret = Secret::new("s".repeat(64));
    }
    let verifier = if spec.verifier.enabled {
        // The verifier's own checks, in the resource's terms, so a bad identity setting
        // blocks the spec instead of failing every render.
        let verifier = verify_config(spec, &gateway);
        chmcp_gateway::verify::config::validate(&verifier).map_err(|issues| {
            issues
                .iter()
                .map(|i| reported("spec.verifier", "the verifier rejects", i))
                .collect::<Vec<_>>()
        })?;
        Some(verifier)
    } else {
        None
    };
    // The gateway names its keys; the resource's field comes from the key alone.
    let warnings = gateway_validate(&judged).map_err(|issues| {
        issues
            .iter()
            .map(|i| reported(spec_field_for(&i.key), "gateway rejects", i))
            .collect::<Vec<_>>()
    })?;
    Ok(ValidatedSpec {
        resource: mc,
        gateway,
        verifier,
        warnings: warnings
            .iter()
            .map(|w| reported(spec_field_for(&w.key), "gateway warns:", w))
            .collect(),
    })
}

/// What the gateway or the verifier said, under the resource field it came from.
fn reported(field: &str, lead: &str, what: impl std::fmt::Display) -> FieldIssue {
    FieldIssue {
        field: field.into(),
        message: format!("{lead} {what}"),
    }
}

/// All messages in one line, for a condition message or an Event note.
pub fn summarize(errors: &[FieldIssue]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::test_fixtures::spec_from_yaml;

    const BASE: &str = r#"
clickhouse: {hostTemplate: "chi-{cluster}.svc"}
clusters: [{name: otel}, {name: antalya}]
oauth:
  issuer: https://accounts.example.com
  publicUrl: https://mcp.example.com
  clientId: id
  clientSecretRef: {name: s, key: a}
  signingSecretRef: {name: s, key: b}
"#;

    /// The whole validate step on a resource holding `spec`.
    fn validated(spec: &McpMultiClusterSpec) -> Result<(), Vec<FieldIssue>> {
        validate(&McpMultiCluster::new("t", spec.clone())).map(|_| ())
    }

    fn fields(spec: &McpMultiClusterSpec) -> Vec<String> {
        check_spec(spec)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_verifier_setting_the_verifier_refuses_blocks_the_spec() {
        let mut s = spec_from_yaml(BASE);
        s.verifier.enabled = true;
        assert_eq!(validated(&s), Ok(()));
        s.verifier.identity.allowed_email_domains = vec!["@example.com".into()];
        let errs = validated(&s).unwrap_err();
        assert_eq!(errs[0].field, "spec.verifier");
        assert!(
            errs[0]
                .message
                .starts_with("the verifier rejects identity.allowed_email_domains[0]"),
            "{errs:?}"
        );
        // Disabled, its settings are not checked (nothing renders from them).
        s.verifier.enabled = false;
        assert_eq!(validated(&s), Ok(()));
    }

    #[test]
    fn an_invalid_gateway_key_maps_to_the_resource_field_it_came_from() {
        let mut s = spec_from_yaml(BASE);
        s.oauth.role_filter = "(".into();
        s.allowed_origins = vec!["claude.ai".into()];
        assert_eq!(check_spec(&s), Ok(()), "only the gateway refuses these");
        let errs = validated(&s).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.allowedOrigins", "spec.oauth.roleFilter"]);
        assert!(
            errs[0].message.starts_with(
                "gateway rejects server.allowed_origins[0]: `claude.ai` is not an origin"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn a_gateway_warning_stays_a_warning_under_the_resource_field() {
        let mut s = spec_from_yaml(BASE);
        s.oauth.validate_tokens = false;
        s.oauth.trust_clickhouse_token_checks = true;
        let mc = McpMultiCluster::new("t", s);
        let v = validate(&mc).expect("a warning does not block the spec");
        assert_eq!(v.warnings().len(), 1, "{:?}", v.warnings());
        assert_eq!(v.warnings()[0].field, "spec.oauth.validateTokens");
        assert!(
            v.warnings()[0]
                .message
                .starts_with("gateway warns: server.oauth.validate_tokens is false"),
            "{:?}",
            v.warnings()
        );
        let plain = McpMultiCluster::new("t", spec_from_yaml(BASE));
        assert!(validate(&plain).unwrap().warnings().is_empty());
        let mut passthrough = spec_from_yaml(BASE);
        passthrough.oauth.token_mode = crate::crd::TokenModeSpec::Passthrough;
        let mc = McpMultiCluster::new("t", passthrough);
        let fields: Vec<String> = validate(&mc)
            .expect("passthrough is allowed, with a warning")
            .warnings()
            .iter()
            .map(|w| w.field.clone())
            .collect();
        assert_eq!(fields, ["spec.oauth.tokenMode"]);
    }

    #[test]
    fn the_validated_spec_holds_the_configurations_render_consumes() {
        let mut s = spec_from_yaml(BASE);
        let mc = McpMultiCluster::new("t", s.clone());
        let v = validate(&mc).unwrap();
        assert_eq!(v.gateway(), &gateway_config(&s).unwrap());
        assert!(
            v.gateway().server.oauth.signing_secret.is_empty(),
            "the stand-in secrets judge the spec but are never rendered"
        );
        assert!(v.verifier().is_none(), "disabled: nothing to render");
        s.verifier.enabled = true;
        let mc = McpMultiCluster::new("t", s.clone());
        let v = validate(&mc).unwrap();
        assert_eq!(v.verifier(), Some(&verify_config(&s, v.gateway())));
    }

    #[test]
    fn a_minimal_spec_is_valid() {
        assert_eq!(check_spec(&spec_from_yaml(BASE)), Ok(()));
    }

    #[test]
    fn duplicate_and_malformed_cluster_names_are_named_by_index() {
        let mut s = spec_from_yaml(BASE);
        s.clusters[1].name = "otel".into();
        assert_eq!(fields(&s), vec!["spec.clusters[1].name"]);
        s.clusters[1].name = "Bad_Name".into();
        let errs = check_spec(&s).unwrap_err();
        assert_eq!(errs[0].field, "spec.clusters[1].name");
        assert!(errs[0].message.contains("RFC 1123"), "{errs:?}");
    }

    #[test]
    fn template_without_cluster_needs_a_host_on_every_cluster() {
        let mut s = spec_from_yaml(BASE);
        s.clickhouse.host_template = "ch.svc".into();
        assert_eq!(fields(&s), vec!["spec.clickhouse.hostTemplate"]);
        s.clusters[0].host = Some("a".into());
        assert_eq!(fields(&s), vec!["spec.clickhouse.hostTemplate"]);
        s.clusters[1].host = Some("b".into());
        assert_eq!(check_spec(&s), Ok(()));
    }

    #[test]
    fn public_url_must_be_https() {
        let mut s = spec_from_yaml(BASE);
        s.oauth.public_url = "http://mcp.example.com".into();
        assert_eq!(fields(&s), vec!["spec.oauth.publicUrl"]);
    }

    #[test]
    fn durations_must_parse() {
        let mut s = spec_from_yaml(BASE);
        for bad in ["15 minutes", "15 m", "m", "", "1w"] {
            s.catalog_cache.ttl_fallback = bad.into();
            assert_eq!(fields(&s), vec!["spec.catalogCache.ttlFallback"], "{bad:?}");
        }
        for good in ["500ms", "45", "15m", "1d"] {
            s.catalog_cache.ttl_fallback = good.into();
            assert!(is_duration_text(good), "{good}");
        }
    }

    #[test]
    fn broker_mode_needs_its_secrets() {
        let mut s = spec_from_yaml(BASE);
        s.oauth.signing_secret_ref = None;
        assert_eq!(fields(&s), vec!["spec.oauth.signingSecretRef"]);
        s.oauth.broker = false;
        assert_eq!(check_spec(&s), Ok(()));
    }

    #[test]
    fn gateway_ranges_are_reported_under_the_resource_field() {
        let mut s = spec_from_yaml(BASE);
        s.catalog_cache.ttl_fallback = "30s".into();
        assert_eq!(check_spec(&s), Ok(()), "the pattern alone accepts it");
        let errs = validated(&s).unwrap_err();
        assert_eq!(errs[0].field, "spec.catalogCache");
        assert!(
            errs[0]
                .message
                .contains("multicluster.catalog_ttl_fallback: 30s is below the minimum of 1m"),
            "{errs:?}"
        );
        assert_eq!(validated(&spec_from_yaml(BASE)), Ok(()));
    }

    #[test]
    fn bad_telemetry_settings_are_refused_under_spec_telemetry() {
        let s = spec_from_yaml(&format!(
            "{BASE}telemetry: {{otlp: {{endpoint: \"http://otel-collector:4318\"}}}}\n"
        ));
        assert_eq!(validated(&s), Ok(()));

        let mut ratio = s.clone();
        if let Some(o) = ratio.telemetry.otlp.as_mut() {
            o.sample_ratio = 1.5;
        }
        let errs = validated(&ratio).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.telemetry.otlp.sampleRatio");
        assert!(
            errs[0].message.contains("1.5 is outside 0 to 1"),
            "{errs:?}"
        );

        let mut endpoint = s.clone();
        if let Some(o) = endpoint.telemetry.otlp.as_mut() {
            o.endpoint = "otel-collector:4318".into();
        }
        let errs = validated(&endpoint).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.telemetry.otlp.endpoint");
        assert!(
            errs[0].message.contains("must be an http(s) URL"),
            "{errs:?}"
        );

        let mut name = s;
        if let Some(o) = name.telemetry.otlp.as_mut() {
            o.service_name = " ".into();
        }
        let errs = validated(&name).unwrap_err();
        assert_eq!(errs[0].field, "spec.telemetry.otlp.serviceName");
    }

    #[test]
    fn the_endpoint_pattern_accepts_what_the_gateway_accepts() {
        // No regex engine in the operator: the schema pattern is read as its prefix rule.
        assert_eq!(OTLP_ENDPOINT_PATTERN, "^https?://[^/?#]+");
        let pattern_accepts = |u: &str| {
            let rest = u
                .strip_prefix("https://")
                .or_else(|| u.strip_prefix("http://"));
            rest.is_some_and(|r| !r.is_empty() && !r.starts_with(['/', '?', '#']))
        };
        // (url, the schema pattern accepts, the gateway accepts): whatever the API server
        // lets through the gateway takes; the pattern is stricter only where a URL is
        // surely a typo (the url crate reads `http:///v1` as host `v1`).
        for (url, pattern, gateway) in [
            ("http://otel-collector:4318", true, true),
            ("https://otlp.example.com/v1/traces", true, true),
            ("otel-collector:4318", false, false),
            ("grpc://otel-collector:4317", false, false),
            ("http:///v1/traces", false, true),
        ] {
            assert_eq!(pattern_accepts(url), pattern, "{url}");
            let mut s = spec_from_yaml(BASE);
            s.telemetry.otlp = Some(crate::crd::OtlpSpec {
                endpoint: url.into(),
                sample_ratio: 0.25,
                service_name: "chmcp".into(),
            });
            assert_eq!(
                validated(&s).is_ok(),
                gateway,
                "{url}: the gateway's verdict"
            );
        }
    }

    #[test]
    fn cel_patterns_agree_with_the_rust_checks() {
        // The CEL strings embed the same regex as the schema pattern.
        assert!(CEL_CLUSTER_NAME.rule.contains(CLUSTER_NAME_PATTERN));
        assert!(CEL_DURATION.rule.contains(DURATION_PATTERN));
    }
}

//! Checks on an `McpMultiCluster` spec that need no I/O.
//!
//! Each rule exists twice: as a CEL expression the API server evaluates (the `CEL_*`
//! constants, placed into the CRD schema by `crd.rs`) and as Rust code here, which the
//! controller runs before rendering and the tests run without an API server. The two
//! live side by side so a change to one is seen next to the other.

use std::collections::BTreeSet;

use chmcp_gateway::config::{validate as gateway_validate, HumanDuration, Secret};
use chmcp_gateway::routing::is_valid_cluster_name;

use crate::crd::{McpMultiClusterSpec, SecretKeyRef};
use crate::render::configmap::{gateway_config, spec_field_for};
use crate::render::RenderError;

/// One problem, named by its path in the resource (`spec.clusters[1].name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
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
pub fn validate(spec: &McpMultiClusterSpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: String, message: String| errors.push(FieldError { field, message });

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

/// [`validate`], then the gateway's own validation of the configuration this spec
/// renders to, reported under the resource's field names. What the gateway would refuse
/// at startup is refused here, before any pod is rolled.
pub fn validate_with_gateway(spec: &McpMultiClusterSpec) -> Result<(), Vec<FieldError>> {
    validate(spec)?;
    let mut config = gateway_config(spec).map_err(|e| match e {
        RenderError::Field { field, message } => vec![FieldError { field, message }],
        other => vec![FieldError {
            field: "spec".into(),
            message: other.to_string(),
        }],
    })?;
    // Secrets reach the pod through the environment; stand-ins long enough for the
    // gateway's checks let it judge everything else.
    if spec.oauth.client_secret_ref.is_some() {
        config.server.oauth.client_secret = Secret::new("stand-in");
    }
    if spec.oauth.signing_secret_ref.is_some() {
        config.server.oauth.signing_secret = Secret::new("s".repeat(64));
    }
    if spec.verifier.enabled {
        // The verifier's own checks, in the resource's terms, so a bad identity setting
        // blocks the spec instead of failing every render.
        let verifier = crate::render::verifier::verify_config(spec, &config);
        chmcp_gateway::verify::config::validate(&verifier).map_err(|messages| {
            messages
                .into_iter()
                .map(|m| FieldError {
                    field: "spec.verifier".into(),
                    message: format!("the verifier rejects {m}"),
                })
                .collect::<Vec<_>>()
        })?;
    }
    gateway_validate(&config)
        .map(|_warnings| ())
        .map_err(|messages| {
            messages
                .into_iter()
                .map(|m| {
                    let key = m.split(':').next().unwrap_or_default();
                    FieldError {
                        field: spec_field_for(key).into(),
                        message: format!("gateway rejects {m}"),
                    }
                })
                .collect()
        })
}

/// All messages in one line, for a condition message or an Event note.
pub fn summarize(errors: &[FieldError]) -> String {
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

    fn fields(spec: &McpMultiClusterSpec) -> Vec<String> {
        validate(spec)
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
        assert_eq!(validate_with_gateway(&s), Ok(()));
        s.verifier.identity.allowed_email_domains = vec!["@example.com".into()];
        let errs = validate_with_gateway(&s).unwrap_err();
        assert_eq!(errs[0].field, "spec.verifier");
        assert!(
            errs[0]
                .message
                .starts_with("the verifier rejects identity.allowed_email_domains[0]"),
            "{errs:?}"
        );
        // Disabled, its settings are not checked (nothing renders from them).
        s.verifier.enabled = false;
        assert_eq!(validate_with_gateway(&s), Ok(()));
    }

    #[test]
    fn a_minimal_spec_is_valid() {
        assert_eq!(validate(&spec_from_yaml(BASE)), Ok(()));
    }

    #[test]
    fn duplicate_and_malformed_cluster_names_are_named_by_index() {
        let mut s = spec_from_yaml(BASE);
        s.clusters[1].name = "otel".into();
        assert_eq!(fields(&s), vec!["spec.clusters[1].name"]);
        s.clusters[1].name = "Bad_Name".into();
        let errs = validate(&s).unwrap_err();
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
        assert_eq!(validate(&s), Ok(()));
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
        assert_eq!(validate(&s), Ok(()));
    }

    #[test]
    fn gateway_ranges_are_reported_under_the_resource_field() {
        let mut s = spec_from_yaml(BASE);
        s.catalog_cache.ttl_fallback = "30s".into();
        assert_eq!(validate(&s), Ok(()), "the pattern alone accepts it");
        let errs = validate_with_gateway(&s).unwrap_err();
        assert_eq!(errs[0].field, "spec.catalogCache");
        assert!(
            errs[0]
                .message
                .contains("multicluster.catalog_ttl_fallback: 30s is below the minimum of 1m"),
            "{errs:?}"
        );
        assert_eq!(validate_with_gateway(&spec_from_yaml(BASE)), Ok(()));
    }

    #[test]
    fn cel_patterns_agree_with_the_rust_checks() {
        // The CEL strings embed the same regex as the schema pattern.
        assert!(CEL_CLUSTER_NAME.rule.contains(CLUSTER_NAME_PATTERN));
        assert!(CEL_DURATION.rule.contains(DURATION_PATTERN));
    }
}

//! The verifier ClickHouse calls to check each user's token (docs/spec-notes.md, "The verifier"):
//! its configuration, the ClickHouse fragment pointing at it, and in `service` mode its
//! Deployment and Service. Both files are produced by the gateway's own verifier types
//! and functions, and derived from the gateway configuration, so the two agree.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use chmcp_gateway::config::Config;
use chmcp_gateway::verify::clickhouse::{fragment_for_uri, verify_uri};
use chmcp_gateway::verify::config::{Identity, OAuth, ScopeSettings, VerifyConfig};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Container, ContainerPort, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::deployment::{config_and_tmp, container_security_context, hardened_pod, http_probe};
use super::{
    object_meta, Names, RenderError, CONFIG_HASH_ANNOTATION, LABEL_COMPONENT, LABEL_INSTANCE,
    LABEL_NAME,
};
use crate::crd::{McpMultiCluster, McpMultiClusterSpec, VerifierMode, VerifierStatus};

/// Key of the verifier's configuration in the `<name>-verify` ConfigMap.
pub const VERIFY_CONFIG_KEY: &str = "verify.yaml";
/// Key of the `<http_authentication_servers>` fragment for ClickHouse's `config.d/`.
pub const CLICKHOUSE_FRAGMENT_KEY: &str = "clickhouse-http-auth.xml";
/// Where the verifier container mounts the ConfigMap.
pub const VERIFY_CONFIG_DIR: &str = "/etc/chmcp";
pub const VERIFY_PORT_NAME: &str = "verify";
pub const COMPONENT: &str = "verifier";
/// `app.kubernetes.io/name` of the verifier pods: distinct from the gateway's, so the
/// gateway Service never selects a verifier pod.
pub const VERIFY_APP_NAME: &str = "chmcp-verify";

/// Everything the verifier turns into.
#[derive(Debug, Clone)]
pub struct VerifierObjects {
    pub config_map: ConfigMap,
    /// `service` mode only.
    pub deployment: Option<Deployment>,
    /// `service` mode only.
    pub service: Option<Service>,
    pub status: VerifierStatus,
}

/// The verifier configuration: OAuth expectations from the rendered gateway
/// configuration (audience defaulting included), identity and scopes from
/// `spec.verifier`.
pub fn verify_config(spec: &McpMultiClusterSpec, gateway: &Config) -> VerifyConfig {
    let g = &gateway.server.oauth;
    let v = &spec.verifier;
    let username_claim = if v.identity.username_claim.is_empty() {
        g.username_claim.clone()
    } else {
        v.identity.username_claim.clone()
    };
    VerifyConfig {
        listen: listen(spec).to_string(),
        oauth: OAuth {
            issuer: g.issuer.clone(),
            jwks_url: g.jwks_url.clone(),
            audience: g.audience.clone(),
            required_scopes: g.required_scopes.clone(),
        },
        identity: Identity {
            username_claim,
            require_email_verified: v.identity.require_email_verified,
            allowed_email_domains: v.identity.allowed_email_domains.clone(),
            ..Identity::default()
        },
        settings_from_scope: ScopeSettings(
            v.settings_from_scope
                .iter()
                .map(|s| (s.scope.clone(), s.settings.clone()))
                .collect(),
        ),
        ..VerifyConfig::default()
    }
}

/// The verifier's listen address: every interface, so ClickHouse (or the Service)
/// reaches it.
fn listen(spec: &McpMultiClusterSpec) -> SocketAddr {
    let port = u16::try_from(spec.verifier.port).unwrap_or(9999);
    SocketAddr::from(([0, 0, 0, 0], port))
}

/// The URL ClickHouse calls: loopback beside ClickHouse, or the Service's DNS name.
pub fn verify_url(spec: &McpMultiClusterSpec, names: &Names) -> String {
    match spec.verifier.mode {
        VerifierMode::Sidecar => verify_uri(listen(spec)),
        VerifierMode::Service => format!(
            "http://{}.{}.svc:{}/verify",
            names.verifier, names.namespace, spec.verifier.port
        ),
    }
}

/// The verifier's objects, from the configuration the validate step built and judged
/// ([`verify_config`]).
pub fn verifier_objects(
    mc: &McpMultiCluster,
    names: &Names,
    config: &VerifyConfig,
    image: &str,
) -> Result<VerifierObjects, RenderError> {
    let spec = &mc.spec;
    let yaml =
        serde_yaml_ng::to_string(config).map_err(|e| RenderError::Serialize(e.to_string()))?;
    let url = verify_url(spec, names);
    let config_map = ConfigMap {
        metadata: meta(mc, names),
        data: Some(BTreeMap::from([
            (VERIFY_CONFIG_KEY.to_string(), yaml.clone()),
            (CLICKHOUSE_FRAGMENT_KEY.to_string(), fragment_for_uri(&url)),
        ])),
        ..ConfigMap::default()
    };
    let service_mode = spec.verifier.mode == VerifierMode::Service;
    Ok(VerifierObjects {
        config_map,
        deployment: service_mode.then(|| deployment(mc, names, image, &yaml)),
        service: service_mode.then(|| service(mc, names)),
        status: VerifierStatus {
            mode: spec.verifier.mode,
            config_map: names.verifier.clone(),
            config_key: VERIFY_CONFIG_KEY.into(),
            clickhouse_config_key: CLICKHOUSE_FRAGMENT_KEY.into(),
            mount_path: VERIFY_CONFIG_DIR.into(),
            verify_url: url,
        },
    })
}

/// Labels of the verifier's objects: the instance and manager (orphans are found by
/// them) and the verifier's own component.
fn meta(mc: &McpMultiCluster, names: &Names) -> ObjectMeta {
    let mut m = object_meta(mc, names, &names.verifier);
    if let Some(labels) = m.labels.as_mut() {
        labels.insert(LABEL_NAME.into(), VERIFY_APP_NAME.into());
        labels.insert(LABEL_COMPONENT.into(), COMPONENT.into());
    }
    m
}

fn selector(names: &Names) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.into(), VERIFY_APP_NAME.into()),
        (LABEL_INSTANCE.into(), names.instance.clone()),
    ])
}

/// The label selector that lists the verifier's objects of one resource (and nothing
/// of the gateway's).
pub fn verifier_selector(names: &Names) -> String {
    format!(
        "{},{LABEL_COMPONENT}={COMPONENT}",
        super::instance_selector(names)
    )
}

fn deployment(mc: &McpMultiCluster, names: &Names, image: &str, yaml: &str) -> Deployment {
    let spec = &mc.spec;
    // The verifier reads its file only at start: a new file must roll its pods.
    let hash = super::sha256_hex(yaml);
    let probe = |path: &str, period: i32| http_probe(path, VERIFY_PORT_NAME, period);
    let (volumes, mounts) = config_and_tmp(&names.verifier, VERIFY_CONFIG_DIR);
    let container = Container {
        name: COMPONENT.into(),
        image: Some(image.to_string()),
        args: Some(vec![
            "verify".into(),
            "--config".into(),
            format!("{VERIFY_CONFIG_DIR}/{VERIFY_CONFIG_KEY}"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(VERIFY_PORT_NAME.into()),
            container_port: spec.verifier.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe("/healthz", 10)),
        readiness_probe: Some(probe("/readyz", 5)),
        volume_mounts: Some(mounts),
        security_context: Some(container_security_context(spec)),
        ..Container::default()
    };
    let mut pod_labels = meta(mc, names).labels.unwrap_or_default();
    pod_labels.extend(selector(names));
    Deployment {
        metadata: meta(mc, names),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector(names)),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(CONFIG_HASH_ANNOTATION.to_string(), hash)])),
                    ..ObjectMeta::default()
                }),
                spec: Some(hardened_pod(spec, container, volumes)),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

fn service(mc: &McpMultiCluster, names: &Names) -> Service {
    super::service::one_port_service(
        meta(mc, names),
        "ClusterIP",
        selector(names),
        VERIFY_PORT_NAME,
        mc.spec.verifier.port,
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn with_verifier(extra: &str) -> McpMultiCluster {
        resource(&format!("{THREE_CLUSTERS}{extra}"))
    }

    const SIDECAR: &str = r#"  verifier:
    enabled: true
    identity: {allowedEmailDomains: [example.com], requireEmailVerified: false}
    settingsFromScope:
      - {scope: "mcp:write", settings: {readonly: "0"}}
      - {scope: "mcp:read", settings: {readonly: "2", max_result_rows: "10000"}}
"#;

    fn objects(mc: &McpMultiCluster) -> VerifierObjects {
        rendered(mc, &secrets("1"), "ghcr.io/chmcp/chmcp-gateway:1")
            .verifier
            .expect("verifier rendered")
    }

    #[test]
    fn disabled_by_default_renders_nothing() {
        let r = rendered(&three_clusters(), &secrets("1"), "img");
        assert!(r.verifier.is_none());
    }

    #[test]
    fn verify_yaml_round_trips_through_the_verifiers_strict_parser() {
        let mc = with_verifier(SIDECAR);
        let v = objects(&mc);
        let data = v.config_map.data.as_ref().unwrap();
        let parsed =
            chmcp_gateway::verify::config::parse(&data[VERIFY_CONFIG_KEY], "verify.yaml").unwrap();
        chmcp_gateway::verify::config::validate(&parsed).unwrap();
        assert_eq!(
            parsed,
            verify_config(&mc.spec, &{
                super::super::configmap::gateway_config(&mc.spec).unwrap()
            })
        );
        // Derived from spec.oauth: the same expectations as the gateway.
        assert_eq!(parsed.oauth.issuer, "https://accounts.google.com");
        assert_eq!(parsed.oauth.audience, "https://mcp.example.com/");
        assert_eq!(parsed.listen, "0.0.0.0:9999");
        assert_eq!(parsed.identity.username_claim, "email");
        assert!(!parsed.identity.require_email_verified);
        assert_eq!(parsed.identity.allowed_email_domains, ["example.com"]);
        let scopes: Vec<&str> = parsed
            .settings_from_scope
            .0
            .iter()
            .map(|(s, _)| s.as_str())
            .collect();
        assert_eq!(scopes, ["mcp:write", "mcp:read"], "order kept: later wins");
        assert_eq!(
            parsed.settings_from_scope.0[1].1["max_result_rows"],
            "10000"
        );
    }

    #[test]
    fn unset_audience_follows_the_gateways_default_and_claim_follows_oauth() {
        let mut mc = with_verifier("  verifier: {enabled: true}\n");
        mc.spec.oauth.audience = String::new();
        mc.spec.oauth.username_claim = "preferred_username".into();
        mc.spec.oauth.required_scopes = vec!["mcp.access".into()];
        let v = objects(&mc);
        let parsed = chmcp_gateway::verify::config::parse(
            &v.config_map.data.as_ref().unwrap()[VERIFY_CONFIG_KEY],
            "verify.yaml",
        )
        .unwrap();
        assert_eq!(parsed.oauth.audience, "https://mcp.example.com/");
        assert_eq!(parsed.oauth.required_scopes, ["mcp.access"]);
        assert_eq!(parsed.identity.username_claim, "preferred_username");
        assert!(parsed.identity.require_email_verified, "default stays on");
    }

    #[test]
    fn sidecar_mode_renders_only_the_config_map_pointing_at_loopback() {
        let v = objects(&with_verifier(SIDECAR));
        assert!(v.deployment.is_none() && v.service.is_none());
        assert_eq!(
            v.config_map.metadata.name.as_deref(),
            Some("analytics-verify")
        );
        let labels = v.config_map.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_COMPONENT], "verifier");
        assert_eq!(labels[LABEL_INSTANCE], "analytics");
        let xml = &v.config_map.data.as_ref().unwrap()[CLICKHOUSE_FRAGMENT_KEY];
        assert!(
            xml.contains("<uri>http://127.0.0.1:9999/verify</uri>"),
            "{xml}"
        );
        assert!(xml.contains("<http_authentication_servers>"));
        assert_eq!(
            v.status,
            VerifierStatus {
                mode: VerifierMode::Sidecar,
                config_map: "analytics-verify".into(),
                config_key: "verify.yaml".into(),
                clickhouse_config_key: "clickhouse-http-auth.xml".into(),
                mount_path: "/etc/chmcp".into(),
                verify_url: "http://127.0.0.1:9999/verify".into(),
            }
        );
    }

    #[test]
    fn service_mode_runs_the_verifier_and_points_clickhouse_at_the_service() {
        let mc = with_verifier("  verifier: {enabled: true, mode: service, port: 9100}\n");
        let v = objects(&mc);
        let url = "http://analytics-verify.mcp.svc:9100/verify";
        assert_eq!(v.status.verify_url, url);
        let xml = &v.config_map.data.as_ref().unwrap()[CLICKHOUSE_FRAGMENT_KEY];
        assert!(xml.contains(&format!("<uri>{url}</uri>")), "{xml}");

        let d = v.deployment.unwrap();
        assert_eq!(d.metadata.name.as_deref(), Some("analytics-verify"));
        let pod = d.spec.as_ref().unwrap().template.spec.clone().unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("ghcr.io/chmcp/chmcp-gateway:1"));
        assert_eq!(
            c.args.clone().unwrap(),
            ["verify", "--config", "/etc/chmcp/verify.yaml"]
        );
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 9100);
        // The same hardening as the gateway pods.
        let gateway = rendered(&mc, &secrets("1"), "img").deployment;
        let gpod = gateway.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.security_context, gpod.security_context);
        assert_eq!(c.security_context, gpod.containers[0].security_context);
        assert_eq!(pod.automount_service_account_token, Some(false));
        // Its pods are never selected by the gateway Service, and vice versa.
        let sel = d
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .clone()
            .unwrap();
        assert_eq!(sel[LABEL_NAME], VERIFY_APP_NAME);
        let s = v.service.unwrap();
        assert_eq!(s.spec.as_ref().unwrap().selector.as_ref(), Some(&sel));
        assert_eq!(s.spec.unwrap().ports.unwrap()[0].port, 9100);
    }

    #[test]
    fn selector_finds_only_verifier_objects() {
        let names = Names::of(&three_clusters()).unwrap();
        assert_eq!(
            verifier_selector(&names),
            "app.kubernetes.io/instance=analytics,app.kubernetes.io/managed-by=chmcp-operator,app.kubernetes.io/component=verifier"
        );
    }
}

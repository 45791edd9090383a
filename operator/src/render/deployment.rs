//! The gateway Deployment: hardened pod, probes, secrets only through `secretKeyRef`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::{
    CA_DIR, CA_FILE, CLIENT_CERT_DIR, CLIENT_CERT_FILE, CLIENT_KEY_DIR, CLIENT_KEY_FILE,
    CONFIG_DIR, CONFIG_KEY, GATEWAY_PORT,
};
use super::{labels, object_meta, selector_labels, Names, CONFIG_HASH_ANNOTATION};
use crate::crd::{McpMultiCluster, McpMultiClusterSpec, SecretKeyRef};

/// The gateway reads these over the (secret-free) configuration file.
pub const ENV_CLIENT_SECRET: &str = "CHMCP_SERVER_OAUTH_CLIENT_SECRET";
pub const ENV_SIGNING_SECRET: &str = "CHMCP_SERVER_OAUTH_SIGNING_SECRET";
pub const ENV_CONFIG: &str = "CHMCP_CONFIG";
/// An unprivileged uid that exists in distroless "nonroot" images.
pub const RUN_AS_USER: i64 = 65532;
pub const PORT_NAME: &str = "http";
const CONTAINER_NAME: &str = "gateway";

pub fn deployment(
    mc: &McpMultiCluster,
    names: &Names,
    image: &str,
    config_hash: &str,
) -> Deployment {
    let spec = &mc.spec;
    let mut annotations: BTreeMap<String, String> = spec.pod_annotations.clone();
    // The gateway serves /metrics on its one port; the Ingress never routes it.
    annotations.insert("prometheus.io/scrape".into(), "true".into());
    annotations.insert("prometheus.io/port".into(), GATEWAY_PORT.to_string());
    annotations.insert("prometheus.io/path".into(), "/metrics".into());
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.to_string());

    let mut env = vec![EnvVar {
        name: ENV_CONFIG.into(),
        value: Some(format!("{CONFIG_DIR}/{CONFIG_KEY}")),
        ..EnvVar::default()
    }];
    if let Some(r) = &spec.oauth.client_secret_ref {
        env.push(secret_env(ENV_CLIENT_SECRET, r));
    }
    if let Some(r) = &spec.oauth.signing_secret_ref {
        env.push(secret_env(ENV_SIGNING_SECRET, r));
    }

    let (mut volumes, mut mounts) = config_and_tmp(&names.gateway, CONFIG_DIR);
    let tls = &spec.clickhouse.tls;
    for (volume, r, dir, file) in [
        ("clickhouse-ca", &tls.ca_secret_ref, CA_DIR, CA_FILE),
        (
            "clickhouse-client-cert",
            &tls.client_cert_secret_ref,
            CLIENT_CERT_DIR,
            CLIENT_CERT_FILE,
        ),
        (
            "clickhouse-client-key",
            &tls.client_key_secret_ref,
            CLIENT_KEY_DIR,
            CLIENT_KEY_FILE,
        ),
    ] {
        let Some(r) = r else { continue };
        volumes.push(secret_file_volume(volume, r, file));
        mounts.push(VolumeMount {
            name: volume.into(),
            mount_path: dir.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }

    let probe = |path: &str, period: i32| http_probe(path, PORT_NAME, period);

    let container = Container {
        name: CONTAINER_NAME.into(),
        image: Some(image.to_string()),
        args: Some(vec!["serve".into()]),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: i32::from(GATEWAY_PORT),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe("/livez", 10)),
        readiness_probe: Some(probe("/readyz", 5)),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(container_security_context(spec)),
        ..Container::default()
    };
    let mut pod_labels = spec.pod_labels.clone();
    // The operator's labels last: they select the pods and find the objects.
    pod_labels.extend(labels(names));

    Deployment {
        metadata: object_meta(mc, names, &names.gateway),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(names)),
                match_expressions: None,
            },
            // Never go below the desired count while rolling: surge one pod instead.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    affinity: spec.affinity.clone(),
                    topology_spread_constraints: non_empty(
                        spec.topology_spread_constraints.clone(),
                    ),
                    service_account_name: (!spec.service_account_name.is_empty())
                        .then(|| spec.service_account_name.clone()),
                    ..hardened_pod(spec, container, volumes)
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The ConfigMap volume `config`, mounted read-only at `dir`, and the scratch volume
/// `tmp` (the root filesystem is read-only): every pod the operator runs has both.
pub(super) fn config_and_tmp(config_map: &str, dir: &str) -> (Vec<Volume>, Vec<VolumeMount>) {
    let volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.into(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: dir.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        },
    ];
    (volumes, mounts)
}

/// What every pod the operator runs shares (the gateway's and the verifier's): one
/// container, the hardened pod context, no service-account token, no service links,
/// and the spec's pull secrets, node selector, tolerations and priority class.
pub(super) fn hardened_pod(
    spec: &McpMultiClusterSpec,
    container: Container,
    volumes: Vec<Volume>,
) -> PodSpec {
    PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        automount_service_account_token: Some(false),
        // Service links would inject `<SERVICE>_PORT`-style variables; for a Service
        // named `chmcp-...` they start with CHMCP_, and the gateway (and the verifier,
        // the same binary) refuses unknown CHMCP_* variables at startup.
        enable_service_links: Some(false),
        security_context: Some(pod_security_context(spec)),
        image_pull_secrets: non_empty(spec.image_pull_secrets.clone()),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: non_empty(spec.tolerations.clone()),
        priority_class_name: (!spec.priority_class_name.is_empty())
            .then(|| spec.priority_class_name.clone()),
        ..PodSpec::default()
    }
}

/// The hardened container security context with the spec's overrides; the verifier's
/// Deployment shares it, so both run under the same policy.
pub(super) fn container_security_context(spec: &McpMultiClusterSpec) -> SecurityContext {
    overlay(
        SecurityContext {
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        },
        spec.security_context.as_ref(),
    )
}

/// The hardened pod security context with the spec's overrides (shared with the
/// verifier's Deployment).
pub(super) fn pod_security_context(spec: &McpMultiClusterSpec) -> PodSecurityContext {
    overlay(
        PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..PodSecurityContext::default()
        },
        spec.pod_security_context.as_ref(),
    )
}

pub(super) fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// `base` with every field that `overrides` sets replaced (recursively for nested
/// objects): a user's `fsGroup` keeps the hardened `runAsNonRoot`.
fn overlay<T>(base: T, overrides: Option<&T>) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    fn merge(base: &mut serde_json::Value, over: &serde_json::Value) {
        match (base, over) {
            (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
                for (k, v) in o {
                    if v.is_null() {
                        continue;
                    }
                    match b.get_mut(k) {
                        Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                        _ => {
                            b.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (slot, v) => *slot = v.clone(),
        }
    }
    let Some(overrides) = overrides else {
        return base;
    };
    let (Ok(mut tree), Ok(over)) = (serde_json::to_value(&base), serde_json::to_value(overrides))
    else {
        return base;
    };
    merge(&mut tree, &over);
    serde_json::from_value(tree).unwrap_or(base)
}

/// One Secret key as a file named `file` in its own volume.
fn secret_file_volume(name: &str, r: &SecretKeyRef, file: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(r.name.clone()),
            items: Some(vec![KeyToPath {
                key: r.key.clone(),
                path: file.into(),
                mode: None,
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn secret_env(name: &str, r: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// An HTTP GET probe on a named container port.
pub(super) fn http_probe(path: &str, port_name: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port_name.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        ..Probe::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn gateway_deployment() -> Deployment {
        rendered(
            &three_clusters(),
            &secrets("1"),
            "ghcr.io/chmcp/gateway:0.1.0",
        )
        .deployment
    }

    fn container(d: &Deployment) -> Container {
        d.spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .clone()
    }

    #[test]
    fn pod_is_hardened() {
        let d = gateway_deployment();
        let pod = d.spec.as_ref().unwrap().template.spec.clone().unwrap();
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        assert_eq!(
            pod.automount_service_account_token,
            Some(false),
            "the gateway never calls the API"
        );
        assert_eq!(
            pod.enable_service_links,
            Some(false),
            "no stray CHMCP_* variables"
        );
        let sc = container(&d).security_context.unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
    }

    #[test]
    fn probes_hit_livez_and_readyz() {
        let c = container(&gateway_deployment());
        let path = |p: Option<Probe>| p.unwrap().http_get.unwrap().path.unwrap();
        assert_eq!(path(c.liveness_probe), "/livez");
        assert_eq!(path(c.readiness_probe), "/readyz");
    }

    #[test]
    fn secrets_arrive_only_as_secret_key_refs_and_the_ca_as_a_volume() {
        let d = gateway_deployment();
        let c = container(&d);
        let env = c.env.unwrap();
        let refs: Vec<(String, String, String)> = env
            .iter()
            .filter_map(|e| {
                let s = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
                Some((e.name.clone(), s.name.clone(), s.key.clone()))
            })
            .collect();
        assert_eq!(
            refs,
            vec![
                (
                    ENV_CLIENT_SECRET.into(),
                    "mcp-oauth".into(),
                    "client-secret".into()
                ),
                (
                    ENV_SIGNING_SECRET.into(),
                    "mcp-oauth".into(),
                    "signing-secret".into()
                ),
            ]
        );
        assert!(
            env.iter()
                .all(|e| e.value.is_none() || e.name == ENV_CONFIG),
            "no literal secret values"
        );
        let vols = d.spec.unwrap().template.spec.unwrap().volumes.unwrap();
        let ca = vols
            .iter()
            .find(|v| v.name == "clickhouse-ca")
            .unwrap()
            .secret
            .clone()
            .unwrap();
        assert_eq!(ca.secret_name.as_deref(), Some("ch-ca"));
        assert_eq!(ca.items.unwrap()[0].path, "ca.crt");
    }

    #[test]
    fn pod_template_carries_hash_and_scrape_annotations() {
        let r = rendered(&three_clusters(), &secrets("1"), "img");
        let ann = r
            .deployment
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap();
        assert_eq!(ann[CONFIG_HASH_ANNOTATION], r.config_hash);
        assert_eq!(ann["prometheus.io/scrape"], "true");
        assert_eq!(ann["prometheus.io/port"], "8080");
        assert_eq!(ann["prometheus.io/path"], "/metrics");
    }

    #[test]
    fn placement_and_identity_come_from_the_spec() {
        let mut mc = three_clusters();
        let extra: crate::crd::McpMultiClusterSpec = serde_yaml_ng::from_str(
            r#"
clickhouse: {hostTemplate: "{cluster}"}
clusters: [{name: a}]
oauth: {issuer: "https://i", publicUrl: "https://p", broker: false}
imagePullSecrets: [{name: regcred}]
nodeSelector: {pool: mcp}
tolerations: [{key: dedicated, operator: Equal, value: mcp, effect: NoSchedule}]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app.kubernetes.io/name: chmcp-gateway}}}
topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}]
priorityClassName: mcp-critical
serviceAccountName: mcp-gateway
podLabels: {team: data}
podSecurityContext: {fsGroup: 2000}
securityContext: {readOnlyRootFilesystem: false}
"#,
        )
        .unwrap();
        mc.spec.image_pull_secrets = extra.image_pull_secrets;
        mc.spec.node_selector = extra.node_selector;
        mc.spec.tolerations = extra.tolerations;
        mc.spec.affinity = extra.affinity;
        mc.spec.topology_spread_constraints = extra.topology_spread_constraints;
        mc.spec.priority_class_name = extra.priority_class_name;
        mc.spec.service_account_name = extra.service_account_name;
        mc.spec.pod_labels = extra.pod_labels;
        mc.spec.pod_security_context = extra.pod_security_context;
        mc.spec.security_context = extra.security_context;
        let d = rendered(&mc, &secrets("1"), "img").deployment;
        let template = d.spec.clone().unwrap().template;
        let pod = template.spec.unwrap();
        assert_eq!(pod.image_pull_secrets.unwrap()[0].name, "regcred");
        assert_eq!(pod.node_selector.unwrap()["pool"], "mcp");
        assert_eq!(
            pod.tolerations.unwrap()[0].key.as_deref(),
            Some("dedicated")
        );
        assert!(pod.affinity.unwrap().pod_anti_affinity.is_some());
        assert_eq!(pod.topology_spread_constraints.unwrap()[0].max_skew, 1);
        assert_eq!(pod.priority_class_name.as_deref(), Some("mcp-critical"));
        assert_eq!(pod.service_account_name.as_deref(), Some("mcp-gateway"));
        let labels = template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["team"], "data");
        assert_eq!(labels[crate::render::LABEL_INSTANCE], "analytics");
        // Overrides change what they name and keep the rest of the hardening.
        let psc = pod.security_context.unwrap();
        assert_eq!(
            (psc.fs_group, psc.run_as_non_root, psc.run_as_user),
            (Some(2000), Some(true), Some(RUN_AS_USER))
        );
        let sc = container(&d).security_context.unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(false));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
    }

    #[test]
    fn client_certificate_and_key_are_mounted_where_the_config_points() {
        let mut mc = three_clusters();
        mc.spec.clickhouse.tls.client_cert_secret_ref = Some(SecretKeyRef {
            name: "ch-client".into(),
            key: "cert.pem".into(),
        });
        mc.spec.clickhouse.tls.client_key_secret_ref = Some(SecretKeyRef {
            name: "ch-client".into(),
            key: "key.pem".into(),
        });
        let r = rendered(&mc, &secrets("1"), "img");
        let config: chmcp_gateway::config::Config =
            chmcp_gateway::config::parse_document(&r.config_map.data.unwrap()[CONFIG_KEY]).unwrap();
        let mounts = container(&r.deployment).volume_mounts.unwrap();
        let vols = r
            .deployment
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .volumes
            .unwrap();
        for (path, key) in [
            (&config.clickhouse.tls.client_cert, "cert.pem"),
            (&config.clickhouse.tls.client_key, "key.pem"),
        ] {
            let (dir, file) = path.rsplit_once('/').unwrap();
            let m = mounts.iter().find(|m| m.mount_path == dir).unwrap();
            let v = vols.iter().find(|v| v.name == m.name).unwrap();
            let item = &v.secret.as_ref().unwrap().items.as_ref().unwrap()[0];
            assert_eq!((item.key.as_str(), item.path.as_str()), (key, file));
        }
    }

    #[test]
    fn spec_image_wins_over_the_default() {
        assert_eq!(
            container(&gateway_deployment()).image.as_deref(),
            Some("ghcr.io/chmcp/gateway:0.1.0")
        );
        let mut mc = three_clusters();
        mc.spec.image = "registry.local/gw:dev".into();
        let d = rendered(&mc, &secrets("1"), "ghcr.io/chmcp/gateway:0.1.0").deployment;
        assert_eq!(
            container(&d).image.as_deref(),
            Some("registry.local/gw:dev")
        );
    }
}

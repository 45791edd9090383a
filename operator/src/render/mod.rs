//! Render: from a validated resource ([`ValidatedSpec`], and the versions of the Secrets
//! it references) to every object the gateway needs. Pure: no client, no clock.

pub mod configmap;
pub mod deployment;
pub mod ingress;
pub mod monitoring;
pub mod pdb;
pub mod service;
pub mod verifier;

use std::collections::BTreeMap;

use chmcp_gateway::config::{restart_only_keys, Config};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::crd::{Endpoint, McpMultiCluster};
use crate::validate::ValidatedSpec;

/// The one field manager for everything the operator writes.
pub const FIELD_MANAGER: &str = "chmcp-operator";
/// Pod-template annotation whose change rolls the gateway pods.
pub const CONFIG_HASH_ANNOTATION: &str = "chmcp.dev/config-hash";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const APP_NAME: &str = "chmcp-gateway";

/// What can still fail once the spec is validated: the resource's own metadata and
/// serialization.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("the resource has no {0}")]
    MissingMetadata(&'static str),
    #[error("cannot serialize the gateway configuration: {0}")]
    Serialize(String),
}

/// Names of the generated objects, derived once from the resource's name.
#[derive(Debug, Clone)]
pub struct Names {
    pub instance: String,
    pub namespace: String,
    /// `<name>-gateway`: the ConfigMap, Deployment, Service, Ingress, PDB and
    /// ServiceMonitor.
    pub gateway: String,
    /// `<name>-verify`: the verifier's ConfigMap (and Deployment and Service in
    /// `service` mode).
    pub verifier: String,
}

impl Names {
    pub fn of(mc: &McpMultiCluster) -> Result<Self, RenderError> {
        let instance = mc
            .meta()
            .name
            .clone()
            .ok_or(RenderError::MissingMetadata("metadata.name"))?;
        let namespace = mc
            .meta()
            .namespace
            .clone()
            .ok_or(RenderError::MissingMetadata("metadata.namespace"))?;
        Ok(Self {
            gateway: format!("{instance}-gateway"),
            verifier: format!("{instance}-verify"),
            instance,
            namespace,
        })
    }
}

/// Labels on every generated object; the instance label finds orphans.
pub fn labels(names: &Names) -> BTreeMap<String, String> {
    let mut l = selector_labels(names);
    l.insert(LABEL_MANAGED_BY.into(), FIELD_MANAGER.into());
    l.insert(LABEL_COMPONENT.into(), "gateway".into());
    l
}

/// The subset that selects the gateway pods (immutable once a Deployment exists).
pub fn selector_labels(names: &Names) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.into(), APP_NAME.into()),
        (LABEL_INSTANCE.into(), names.instance.clone()),
    ])
}

/// The label selector that lists every object generated for one resource.
pub fn instance_selector(names: &Names) -> String {
    format!(
        "{LABEL_INSTANCE}={},{LABEL_MANAGED_BY}={FIELD_MANAGER}",
        names.instance
    )
}

fn object_meta(mc: &McpMultiCluster, names: &Names, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(names.namespace.clone()),
        labels: Some(labels(names)),
        owner_references: mc.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// `resourceVersion` of each referenced Secret, by Secret name.
pub type SecretVersions = BTreeMap<String, String>;

/// Everything one resource turns into.
#[derive(Debug, Clone)]
pub struct RenderedObjects {
    pub config_map: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
    pub ingress: Option<Ingress>,
    pub pdb: Option<PodDisruptionBudget>,
    /// When `spec.verifier.enabled`.
    pub verifier: Option<verifier::VerifierObjects>,
    /// When `spec.monitoring.serviceMonitor.enabled`.
    pub service_monitor: Option<DynamicObject>,
    pub config_hash: String,
    pub endpoints: Vec<Endpoint>,
}

/// Renders every object from what validation built. `default_image` is used when the
/// spec names none.
pub fn render(
    validated: &ValidatedSpec<'_>,
    secrets: &SecretVersions,
    default_image: &str,
) -> Result<RenderedObjects, RenderError> {
    let mc = validated.resource();
    let names = Names::of(mc)?;
    let spec = &mc.spec;
    let config = validated.gateway();
    let yaml = configmap::config_yaml(config)?;
    let config_hash = config_hash(config, secrets)?;
    let image = if spec.image.is_empty() {
        default_image
    } else {
        spec.image.as_str()
    };
    Ok(RenderedObjects {
        config_map: configmap::config_map(mc, &names, &yaml),
        deployment: deployment::deployment(mc, &names, image, &config_hash),
        service: service::service(mc, &names),
        ingress: spec.ingress.enabled.then(|| ingress::ingress(mc, &names)),
        pdb: (spec.replicas > 1).then(|| pdb::pdb(mc, &names)),
        verifier: validated
            .verifier()
            .map(|v| verifier::verifier_objects(mc, &names, v, image))
            .transpose()?,
        service_monitor: if spec.monitoring.service_monitor.enabled {
            Some(monitoring::service_monitor(mc, &names)?)
        } else {
            None
        },
        config_hash,
        endpoints: endpoints(mc),
    })
}

impl RenderedObjects {
    /// All objects as one multi-document YAML stream, in apply order (for
    /// `chmcp-operator render`, a dry run a person can read or pipe to a validator).
    pub fn to_yaml(&self) -> Result<String, RenderError> {
        let docs = [
            serde_yaml_ng::to_string(&self.config_map),
            serde_yaml_ng::to_string(&self.service),
            serde_yaml_ng::to_string(&self.deployment),
        ]
        .into_iter()
        .chain(self.ingress.iter().map(serde_yaml_ng::to_string))
        .chain(self.pdb.iter().map(serde_yaml_ng::to_string))
        .chain(self.verifier.iter().flat_map(|v| {
            [
                Some(serde_yaml_ng::to_string(&v.config_map)),
                v.service.as_ref().map(serde_yaml_ng::to_string),
                v.deployment.as_ref().map(serde_yaml_ng::to_string),
            ]
            .into_iter()
            .flatten()
        }))
        .chain(self.service_monitor.iter().map(serde_yaml_ng::to_string));
        let mut out = String::new();
        for doc in docs {
            out.push_str("---\n");
            out.push_str(&doc.map_err(|e| RenderError::Serialize(e.to_string()))?);
        }
        Ok(out)
    }
}

/// The connector URL of each cluster, then the fleet connector's (cluster `*`) when
/// `spec.fleetEndpoint` asks for it.
pub fn endpoints(mc: &McpMultiCluster) -> Vec<Endpoint> {
    let base = mc.spec.oauth.public_url.trim_end_matches('/');
    let mut out: Vec<Endpoint> = mc
        .spec
        .clusters
        .iter()
        .map(|c| Endpoint {
            cluster: c.name.clone(),
            url: format!("{base}/mcp/{}", c.name),
        })
        .collect();
    if mc.spec.fleet_endpoint {
        out.push(Endpoint {
            cluster: "*".into(),
            url: format!("{base}/mcp"),
        });
    }
    out
}

/// sha256 over what only a restart applies: the gateway configuration at each of the
/// gateway's own restart-only keys ([`restart_only_keys`]) and the referenced Secrets'
/// versions (they reach the pod as environment variables, read once at start).
/// Everything else in the file is reloaded by the running gateway (`watch: true`), so
/// changing it must not roll the pods.
pub fn config_hash(config: &Config, secrets: &SecretVersions) -> Result<String, RenderError> {
    let tree = serde_json::to_value(config).map_err(|e| RenderError::Serialize(e.to_string()))?;
    Ok(restart_only_hash(&tree, secrets))
}

/// [`config_hash`] over the configuration as a JSON tree (what the gateway's keys name).
fn restart_only_hash(tree: &Value, secrets: &SecretVersions) -> String {
    let mut input = String::from("restart-only\n");
    for key in restart_only_keys() {
        let value = key
            .split('.')
            .try_fold(tree, |node, part| node.get(part))
            .unwrap_or(&Value::Null);
        input.push_str(&format!("{key}={value}\n"));
    }
    input.push_str("secrets\n");
    for (name, version) in secrets {
        input.push_str(&format!("{name}@{version}\n"));
    }
    sha256_hex(&input)
}

/// sha256 of `text` in hex: the pod-rolling annotations of the gateway and the verifier.
pub(crate) fn sha256_hex(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `true` when `mc` is being deleted: owner references remove everything, so there is
/// nothing to render or apply.
pub fn is_being_deleted(mc: &McpMultiCluster) -> bool {
    mc.meta().deletion_timestamp.is_some()
}

/// The resource's name, for messages.
pub fn display_name(mc: &McpMultiCluster) -> String {
    format!("{}/{}", mc.namespace().unwrap_or_default(), mc.name_any())
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub const THREE_CLUSTERS: &str = r#"
apiVersion: chmcp.dev/v1alpha1
kind: McpMultiCluster
metadata: {name: analytics, namespace: mcp, uid: 1234-uid, generation: 3}
spec:
  replicas: 2
  clickhouse:
    hostTemplate: "chi-{cluster}-{cluster}-0-0.clickhouse.svc"
    port: 8443
    tls: {enabled: true, caSecretRef: {name: ch-ca, key: ca.crt}}
  clusters: [{name: otel}, {name: antalya, host: ch-antalya.internal}, {name: logs}]
  oauth:
    broker: true
    issuer: https://accounts.google.com
    audience: https://mcp.example.com/
    publicUrl: https://mcp.example.com
    clientId: client.apps.googleusercontent.com
    clientSecretRef: {name: mcp-oauth, key: client-secret}
    signingSecretRef: {name: mcp-oauth, key: signing-secret}
  ingress: {enabled: true, className: nginx, host: mcp.example.com, tlsSecretName: mcp-tls}
"#;

    pub fn resource(text: &str) -> McpMultiCluster {
        serde_yaml_ng::from_str(text).expect("fixture parses")
    }

    /// Validate, then render: the only way to render.
    pub fn rendered(
        mc: &McpMultiCluster,
        secrets: &SecretVersions,
        image: &str,
    ) -> RenderedObjects {
        let validated = crate::validate::validate(mc).expect("fixture validates");
        render(&validated, secrets, image).expect("validated fixture renders")
    }

    pub fn three_clusters() -> McpMultiCluster {
        resource(THREE_CLUSTERS)
    }

    pub fn secrets(version: &str) -> SecretVersions {
        BTreeMap::from([
            ("ch-ca".to_string(), "7".to_string()),
            ("mcp-oauth".to_string(), version.to_string()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    fn hash_of(mc: &McpMultiCluster, secrets: &SecretVersions) -> String {
        rendered(mc, secrets, "img").config_hash
    }

    #[test]
    fn hash_changes_with_restart_only_settings_and_secret_versions() {
        let base = three_clusters();
        let h = hash_of(&base, &secrets("1"));
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_of(&base, &secrets("1")), "deterministic");

        let mut removed = base.clone();
        removed.spec.clusters.pop();
        assert_ne!(
            h,
            hash_of(&removed, &secrets("1")),
            "cluster list is restart-only"
        );

        let mut ttl = base.clone();
        ttl.spec.catalog_cache.negative_ttl = "30s".into();
        assert_ne!(
            h,
            hash_of(&ttl, &secrets("1")),
            "catalog cache is restart-only"
        );

        let mut host = base.clone();
        host.spec.clusters[0].host = Some("elsewhere".into());
        assert_ne!(
            h,
            hash_of(&host, &secrets("1")),
            "per-cluster override is restart-only"
        );

        let mut traced = base.clone();
        traced.spec.telemetry.otlp = Some(crate::crd::OtlpSpec {
            endpoint: "http://otel-collector:4318".into(),
            sample_ratio: 1.0,
            service_name: "chmcp-gateway".into(),
        });
        let ht = hash_of(&traced, &secrets("1"));
        assert_ne!(h, ht, "turning tracing on is restart-only");
        if let Some(o) = traced.spec.telemetry.otlp.as_mut() {
            o.sample_ratio = 0.5;
        }
        assert_ne!(
            ht,
            hash_of(&traced, &secrets("1")),
            "the exporter's settings are restart-only"
        );
        let mut sql = base.clone();
        sql.spec.telemetry.include_sql = true;
        assert_ne!(
            h,
            hash_of(&sql, &secrets("1")),
            "includeSql is restart-only"
        );

        assert_ne!(
            h,
            hash_of(&base, &secrets("2")),
            "a new Secret version rolls the pods"
        );
    }

    #[test]
    fn hash_ignores_settings_the_gateway_reloads_and_deployment_shape() {
        let base = three_clusters();
        let h = hash_of(&base, &secrets("1"));
        let mut m = base.clone();
        m.spec.replicas = 5;
        m.spec.clickhouse.limits.max_result_rows = 10;
        m.spec.oauth.username_claim = "sub".into();
        m.spec.ingress.enabled = false;
        m.spec.pod_annotations.insert("team".into(), "data".into());
        assert_eq!(h, hash_of(&m, &secrets("1")));
    }

    fn node_mut<'a>(tree: &'a mut Value, path: &str) -> Option<&'a mut Value> {
        path.split('.')
            .try_fold(tree, |node, part| node.get_mut(part))
    }

    fn is_restart_only(path: &str) -> bool {
        restart_only_keys()
            .iter()
            .any(|k| path == *k || path.starts_with(&format!("{k}.")))
    }

    #[test]
    fn every_restart_only_key_rolls_the_pods_and_no_other_key_does() {
        let config = configmap::gateway_config(&three_clusters().spec).unwrap();
        let tree = serde_json::to_value(&config).unwrap();
        let base = restart_only_hash(&tree, &secrets("1"));
        assert_eq!(base, config_hash(&config, &secrets("1")).unwrap());

        // Each key the gateway reads only at start, as a whole (new entries included).
        for key in restart_only_keys() {
            let mut changed = tree.clone();
            let node = node_mut(&mut changed, key)
                .unwrap_or_else(|| panic!("restart-only key {key} is not in the rendered config"));
            *node = Value::String(format!("changed {key}"));
            assert_ne!(
                base,
                restart_only_hash(&changed, &secrets("1")),
                "{key} is restart-only: changing it must roll the pods"
            );
        }
        // Each leaf of the rendered configuration: rolls exactly when it is restart-only.
        let mut leaves = Vec::new();
        chmcp_gateway::config::flatten("", &tree, &mut leaves);
        let paths: Vec<String> = leaves.into_iter().map(|(path, _)| path).collect();
        assert!(paths.len() > 40, "the walk sees the whole configuration");
        for path in &paths {
            let mut changed = tree.clone();
            let node = node_mut(&mut changed, path).unwrap();
            *node = Value::String(format!("changed {path}"));
            let rolled = restart_only_hash(&changed, &secrets("1")) != base;
            assert_eq!(
                rolled,
                is_restart_only(path),
                "{path}: rolls the pods = {rolled}, restart-only = {}",
                is_restart_only(path)
            );
        }
    }

    #[test]
    fn render_writes_out_what_validate_built() {
        let mc = resource(&format!("{THREE_CLUSTERS}  verifier: {{enabled: true}}\n"));
        let validated = crate::validate::validate(&mc).unwrap();
        let r = render(&validated, &secrets("1"), "img").unwrap();
        let data = |cm: &ConfigMap, key: &str| cm.data.as_ref().unwrap()[key].clone();
        assert_eq!(
            data(&r.config_map, configmap::CONFIG_KEY),
            configmap::config_yaml(validated.gateway()).unwrap()
        );
        let verifier = r.verifier.expect("enabled, validated, rendered");
        assert_eq!(
            data(&verifier.config_map, verifier::VERIFY_CONFIG_KEY),
            serde_yaml_ng::to_string(validated.verifier().unwrap()).unwrap()
        );
    }

    #[test]
    fn pdb_only_above_one_replica_and_ingress_only_when_enabled() {
        let mut mc = three_clusters();
        let r = rendered(&mc, &secrets("1"), "img");
        assert!(r.pdb.is_some() && r.ingress.is_some());
        mc.spec.replicas = 1;
        mc.spec.ingress.enabled = false;
        let r = rendered(&mc, &secrets("1"), "img");
        assert!(r.pdb.is_none() && r.ingress.is_none());
    }

    #[test]
    fn every_object_is_owned_labelled_and_named_after_the_resource() {
        let r = rendered(&three_clusters(), &secrets("1"), "img");
        let metas = [
            &r.config_map.metadata,
            &r.deployment.metadata,
            &r.service.metadata,
            &r.ingress.as_ref().unwrap().metadata,
            &r.pdb.as_ref().unwrap().metadata,
        ];
        for m in metas {
            assert_eq!(m.name.as_deref(), Some("analytics-gateway"));
            assert_eq!(m.namespace.as_deref(), Some("mcp"));
            let owner = &m.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str(), owner.controller),
                ("McpMultiCluster", "analytics", Some(true))
            );
            assert_eq!(m.labels.as_ref().unwrap()[LABEL_INSTANCE], "analytics");
        }
    }

    #[test]
    fn endpoints_are_public_url_plus_cluster_path() {
        let r = rendered(&three_clusters(), &secrets("1"), "img");
        let urls: Vec<&str> = r.endpoints.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://mcp.example.com/mcp/otel",
                "https://mcp.example.com/mcp/antalya",
                "https://mcp.example.com/mcp/logs"
            ]
        );
    }

    #[test]
    fn the_fleet_connector_is_an_endpoint_and_a_gateway_setting_when_asked() {
        let mut mc = three_clusters();
        mc.spec.fleet_endpoint = true;
        mc.spec.clusters[1].description = Some("Antalya lakehouse".into());
        let r = rendered(&mc, &secrets("1"), "img");
        let last = r.endpoints.last().expect("endpoints");
        assert_eq!(
            (last.cluster.as_str(), last.url.as_str()),
            ("*", "https://mcp.example.com/mcp")
        );
        assert_eq!(r.endpoints.len(), 4);
        let yaml = r.to_yaml().expect("yaml");
        assert!(yaml.contains("fleet_endpoint: true"), "{yaml}");
        assert!(yaml.contains("description: Antalya lakehouse"), "{yaml}");
    }
}

//! The generated CRD files, the schema's documentation, and the example resource against
//! the rules the CEL expressions state. (`e2e/crd_schema_check.py`, run by
//! `e2e/helm.sh`, checks the same example against the generated openAPIV3Schema.)

use std::path::{Path, PathBuf};

use chmcp_operator::crd::McpMultiCluster;
use chmcp_operator::validate::{check_spec, validate};
use kube::CustomResourceExt;
use serde_json::Value;

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn example() -> McpMultiCluster {
    let text = std::fs::read_to_string(repo_file(
        "charts/chmcp-operator/examples/mcpmulticluster.yaml",
    ))
    .unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

#[test]
fn generated_crd_files_match_the_code() {
    let want = chmcp_operator::crd_yaml().unwrap();
    for path in [
        "crds/mcpmulticluster.yaml",
        "charts/chmcp-operator/crds/mcpmulticluster.yaml",
    ] {
        let got = std::fs::read_to_string(repo_file(path)).unwrap_or_default();
        assert!(
            got == want,
            "{path} differs from the CRD the code generates: run `make crds` and commit the result"
        );
    }
}

/// Every property of the schema, by path.
fn properties<'a>(path: &str, schema: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let p = format!("{path}.{name}");
            out.push((p.clone(), sub));
            properties(&p, sub, out);
        }
    }
    if let Some(items) = schema.get("items") {
        properties(&format!("{path}[]"), items, out);
    }
}

fn schema() -> Value {
    let crd = serde_json::to_value(McpMultiCluster::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn every_field_has_a_description_for_kubectl_explain() {
    let schema = schema();
    let mut all = Vec::new();
    properties("", &schema, &mut all);
    let undocumented: Vec<&str> = all
        .iter()
        .filter(|(p, _)| p.starts_with(".spec") || p.starts_with(".status"))
        .filter(|(_, s)| {
            s.get("description")
                .and_then(Value::as_str)
                .is_none_or(|d| d.trim().is_empty())
        })
        .map(|(p, _)| p.as_str())
        .collect();
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:?}"
    );
    assert!(all.len() > 40, "the schema covers the whole spec");
}

#[test]
fn schema_carries_the_cel_rules_list_map_and_printer_columns() {
    let crd = serde_json::to_value(McpMultiCluster::crd()).unwrap();
    let version = &crd["spec"]["versions"][0];
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let clusters = &spec["properties"]["clusters"];
    assert_eq!(clusters["x-kubernetes-list-type"], "map");
    assert_eq!(
        clusters["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    assert!(
        clusters["items"]["properties"]["name"]["x-kubernetes-validations"][0]["rule"]
            .as_str()
            .unwrap()
            .contains("matches")
    );
    assert!(spec["x-kubernetes-validations"][0]["rule"]
        .as_str()
        .unwrap()
        .contains("{cluster}"));
    assert_eq!(
        spec["properties"]["oauth"]["properties"]["publicUrl"]["x-kubernetes-validations"][0]
            ["rule"],
        "self.startsWith('https://')"
    );
    assert!(
        spec["properties"]["catalogCache"]["properties"]["ttlFallback"]["x-kubernetes-validations"]
            .is_array()
    );
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Clusters",
            "Ready Replicas",
            "Ready",
            "Reason",
            "URL",
            "Age"
        ]
    );
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    assert_eq!(
        crd["spec"]["names"]["shortNames"],
        serde_json::json!(["mcpmc"])
    );
    assert_eq!(crd["spec"]["scope"], "Namespaced");
}

#[test]
fn the_example_is_accepted() {
    let mc = example();
    let validated = validate(&mc).expect("the example is valid");
    assert!(
        validated.warnings().is_empty(),
        "{:?}",
        validated.warnings()
    );
    assert_eq!(mc.spec.clusters.len(), 2);
}

fn fields_rejected(mutate: impl FnOnce(&mut McpMultiCluster)) -> Vec<String> {
    let mut mc = example();
    mutate(&mut mc);
    check_spec(&mc.spec)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn duplicate_cluster_names_are_rejected() {
    assert_eq!(
        fields_rejected(|mc| mc.spec.clusters[1].name = "otel".into()),
        ["spec.clusters[1].name"]
    );
}

#[test]
fn a_bad_cluster_name_is_rejected() {
    assert_eq!(
        fields_rejected(|mc| mc.spec.clusters[0].name = "Otel_EU".into()),
        ["spec.clusters[0].name"]
    );
}

#[test]
fn a_host_template_without_cluster_is_rejected() {
    assert_eq!(
        fields_rejected(|mc| mc.spec.clickhouse.host_template = "clickhouse.svc".into()),
        ["spec.clickhouse.hostTemplate"]
    );
}

#[test]
fn a_non_https_public_url_is_rejected() {
    assert_eq!(
        fields_rejected(|mc| mc.spec.oauth.public_url = "http://mcp.example.com".into()),
        ["spec.oauth.publicUrl"]
    );
}

#[test]
fn an_unparseable_duration_is_rejected() {
    assert_eq!(
        fields_rejected(|mc| mc.spec.catalog_cache.negative_ttl = "a minute".into()),
        ["spec.catalogCache.negativeTtl"]
    );
}

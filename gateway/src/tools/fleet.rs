//! The fleet connector's tool list (docs/decisions.md, "The fleet connector"): one list
//! for every allow-listed cluster. Static tools gain a required `cluster` argument;
//! each cluster's dynamic tools are listed as `<cluster>__<tool>`; `list_clusters`
//! tells a model which clusters its caller reaches. Pure: the per-cluster catalogs come
//! in already discovered (`mcp::fleet`).

use std::collections::HashSet;

use rmcp::model::Tool;
use serde_json::{json, Map, Value};

use super::schema::{input_schema, object, read_annotations};
use super::{Action, Catalog, Entry};
use crate::config::MultiClusterConfig;

/// Name of the fleet connector's own tool.
pub const LIST_CLUSTERS: &str = "list_clusters";
/// The argument every static tool gains on the fleet connector.
pub const CLUSTER_ARG: &str = "cluster";
/// Between a cluster's name and its tool's name; a cluster name (an RFC 1123 label)
/// never contains `_`, so the first `__` always ends the cluster.
pub const SEPARATOR: &str = "__";
/// MCP's limit on a tool name's length.
pub const MAX_TOOL_NAME: usize = 128;

/// One cluster the connector serves, as a model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetCluster {
    pub name: String,
    pub description: Option<String>,
}

/// The allow-listed clusters in configuration order, with their descriptions.
pub fn fleet_clusters(mc: &MultiClusterConfig) -> Vec<FleetCluster> {
    mc.cluster_allowlist
        .iter()
        .map(|name| FleetCluster {
            name: name.clone(),
            description: mc.clusters.get(name).and_then(|o| o.description.clone()),
        })
        .collect()
}

/// `<cluster>__<tool>`, or `None` when the result breaks MCP's tool-name rules
/// (`[A-Za-z0-9_.-]`, at most 128 characters).
pub fn prefixed_name(cluster: &str, tool: &str) -> Option<String> {
    let name = format!("{cluster}{SEPARATOR}{tool}");
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    (name.len() <= MAX_TOOL_NAME && name.chars().all(allowed)).then_some(name)
}

/// A fleet tool name split into cluster and that cluster's tool name.
pub fn split_prefixed(name: &str) -> Option<(&str, &str)> {
    name.split_once(SEPARATOR)
        .filter(|(c, t)| !c.is_empty() && !t.is_empty())
}

/// The `cluster` argument's schema: an `enum` of the names (what every MCP client
/// renders as a choice), and one description listing each cluster's own, since
/// clients show a property's description but rarely `oneOf` branches.
pub fn cluster_property(clusters: &[FleetCluster]) -> Value {
    let mut description = String::from("Which ClickHouse cluster to run on.");
    for c in clusters {
        match &c.description {
            Some(d) => description.push_str(&format!(" `{}`: {d}.", c.name)),
            None => description.push_str(&format!(" `{}`.", c.name)),
        }
    }
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    json!({"type": "string", "enum": names, "description": description})
}

/// A static tool with the required `cluster` argument added (listed first).
fn with_cluster_arg(entry: &Entry, cluster_prop: &Value) -> Entry {
    let mut schema: Map<String, Value> = (*entry.tool.input_schema).clone();
    let mut props = Map::new();
    props.insert(CLUSTER_ARG.into(), cluster_prop.clone());
    if let Some(Value::Object(p)) = schema.get("properties") {
        props.extend(p.clone());
    }
    schema.insert("properties".into(), Value::Object(props));
    let mut required = vec![json!(CLUSTER_ARG)];
    if let Some(Value::Array(r)) = schema.get("required") {
        required.extend(r.iter().cloned());
    }
    schema.insert("required".into(), Value::Array(required));
    let mut tool = entry.tool.clone();
    tool.input_schema = object(Value::Object(schema));
    Entry {
        tool,
        action: entry.action.clone(),
    }
}

/// What a listing says about clusters whose catalogs were still pending when it was
/// built: the model reads tool descriptions, so it learns that their tools are missing
/// and how to get them. `None` when every catalog was in.
pub fn pending_note(pending: &[&str]) -> Option<String> {
    (!pending.is_empty()).then(|| {
        format!(
            " PENDING: the tools of {} cluster(s) were not discovered in time for this list: {}. Their static tools work now with the `cluster` argument; call tools/list again in a few seconds (or list_clusters) to get their own tools.",
            pending.len(),
            pending.join(", ")
        )
    })
}

/// The `list_clusters` tool; `pending` names the clusters whose catalogs this listing
/// lacks (its description says so).
pub fn list_clusters_entry_noting(pending: &[&str]) -> Entry {
    let mut e = list_clusters_entry();
    if let (Some(note), Some(d)) = (pending_note(pending), &e.tool.description) {
        e.tool.description = Some(format!("{d}{note}").into());
    }
    e
}

/// The `list_clusters` tool.
pub fn list_clusters_entry() -> Entry {
    let title = "List the ClickHouse clusters";
    let tool = Tool::new(
        LIST_CLUSTERS,
        "Lists the ClickHouse clusters this connector serves: name, description, and whether your identity reaches each (ok, denied, unreachable, pending: not discovered yet, ask again shortly; unknown). Pass a name as the `cluster` argument of the other tools.",
        input_schema(Vec::new(), &[]),
    )
    .with_title(title)
    .with_raw_output_schema(object(json!({
        "type": "object",
        "properties": {"clusters": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "status": {"type": "string", "enum": ["ok", "denied", "unreachable", "pending", "unknown"]}
            },
            "required": ["name", "status"]
        }}},
        "required": ["clusters"]
    })))
    .with_annotations(read_annotations(title));
    Entry {
        tool,
        action: Action::ListClusters,
    }
}

/// The whole fleet list: static tools (with `cluster`), `list_clusters` (naming the
/// `pending` clusters, whose catalogs are not in), then each cluster's dynamic tools
/// renamed `<cluster>__<tool>`. Names that would break MCP's rules are skipped, each
/// with a warning for the log.
pub fn fleet_catalog(
    statics: &Catalog,
    clusters: &[FleetCluster],
    per_cluster: &[(&str, &Catalog)],
    pending: &[&str],
) -> (Catalog, Vec<String>) {
    let prop = cluster_property(clusters);
    let static_names: HashSet<&str> = statics
        .entries()
        .iter()
        .map(|e| e.tool.name.as_ref())
        .collect();
    let mut entries: Vec<Entry> = statics
        .entries()
        .iter()
        .map(|e| with_cluster_arg(e, &prop))
        .collect();
    entries.push(list_clusters_entry_noting(pending));
    let mut warnings = Vec::new();
    for (cluster, catalog) in per_cluster {
        for e in catalog.entries() {
            let name: &str = e.tool.name.as_ref();
            if static_names.contains(name) {
                continue;
            }
            let Some(full) = prefixed_name(cluster, name) else {
                warnings.push(format!(
                    "cluster {cluster}: tool {name} is not listed on the fleet connector: `{cluster}{SEPARATOR}{name}` breaks MCP's tool-name rules ([A-Za-z0-9_.-], at most {MAX_TOOL_NAME} characters)"
                ));
                continue;
            };
            let mut tool = e.tool.clone();
            tool.name = full.into();
            if let Some(d) = &e.tool.description {
                tool.description = Some(format!("On cluster {cluster}: {d}").into());
            }
            // Clients show titles: the same view on two clusters must not look alike.
            if let Some(t) = &e.tool.title {
                tool.title = Some(format!("{t} ({cluster})"));
            }
            entries.push(Entry {
                tool,
                action: e.action.clone(),
            });
        }
    }
    (Catalog::new(entries), warnings)
}

/// A tool result made to name its cluster: `cluster` in the structured content (and
/// the text that mirrors it), and error texts prefixed with the cluster.
pub fn name_cluster(result: &mut Value, cluster: &str) {
    let is_error = result.get("isError").and_then(Value::as_bool) == Some(true);
    let structured = match result.get_mut("structuredContent") {
        Some(Value::Object(m)) => {
            m.insert(CLUSTER_ARG.into(), json!(cluster));
            Some(Value::Object(m.clone()).to_string())
        }
        _ => None,
    };
    let Some(Value::Array(content)) = result.get_mut("content") else {
        return;
    };
    let Some(first) = content.first_mut() else {
        return;
    };
    let new_text = match (structured, first.get("text").and_then(Value::as_str)) {
        (Some(s), Some(_)) => s,
        (None, Some(t)) if is_error => format!("cluster {cluster}: {t}"),
        _ => return,
    };
    if let Some(t) = first.get_mut("text") {
        *t = Value::String(new_text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClusterOverride, Config};
    use crate::tools::schema::static_entries;

    fn clusters() -> Vec<FleetCluster> {
        let mut mc = MultiClusterConfig {
            cluster_allowlist: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        mc.clusters.insert(
            "b".into(),
            ClusterOverride {
                description: Some("billing events".into()),
                ..Default::default()
            },
        );
        fleet_clusters(&mc)
    }

    #[test]
    fn static_tools_require_a_cluster_from_the_allow_list_with_descriptions() {
        let statics = Catalog::new(static_entries(&Config::default()));
        let (fleet, warnings) = fleet_catalog(&statics, &clusters(), &[], &[]);
        assert!(warnings.is_empty());
        let exec = fleet.get("execute_query").expect("static tool listed");
        let schema = &exec.tool.input_schema;
        assert_eq!(schema["required"][0], "cluster");
        assert!(schema["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("query"))));
        assert_eq!(schema["properties"]["cluster"]["enum"], json!(["a", "b"]));
        let d = schema["properties"]["cluster"]["description"]
            .as_str()
            .unwrap_or("");
        assert!(d.contains("`b`: billing events"), "{d}");
        assert!(fleet.get(LIST_CLUSTERS).is_some());
    }

    #[test]
    fn dynamic_tools_are_prefixed_and_overlong_names_skipped_with_a_warning() {
        let statics = Catalog::new(static_entries(&Config::default()));
        let mut a_entries = static_entries(&Config::default());
        let mut dyn_tool = list_clusters_entry();
        dyn_tool.tool.name = "sales_by_day".into();
        a_entries.push(dyn_tool.clone());
        let mut long = dyn_tool.clone();
        long.tool.name = "x".repeat(127).into();
        a_entries.push(long);
        let a = Catalog::new(a_entries);
        let (fleet, warnings) = fleet_catalog(&statics, &clusters(), &[("a", &a)], &[]);
        assert!(fleet.get("a__sales_by_day").is_some());
        assert!(
            fleet.get("a__execute_query").is_none(),
            "static tools are not prefixed"
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("at most 128"), "{}", warnings[0]);
        assert_eq!(split_prefixed("a__sales__x"), Some(("a", "sales__x")));
        assert_eq!(split_prefixed("execute_query"), None);
        assert_eq!(prefixed_name("a", "bad name"), None);
    }

    #[test]
    fn a_listing_with_pending_catalogs_names_them_in_list_clusters() {
        let statics = Catalog::new(static_entries(&Config::default()));
        let describe = |pending: &[&str]| {
            let (fleet, _) = fleet_catalog(&statics, &clusters(), &[], pending);
            let e = fleet.get(LIST_CLUSTERS).expect("list_clusters");
            e.tool
                .description
                .as_deref()
                .unwrap_or_default()
                .to_string()
        };
        assert!(!describe(&[]).contains("PENDING"));
        let d = describe(&["b"]);
        assert!(
            d.contains("PENDING") && d.contains(": b.") && d.contains("tools/list again"),
            "{d}"
        );
    }

    #[test]
    fn results_and_errors_name_their_cluster() {
        let mut ok =
            json!({"content": [{"type": "text", "text": "{}"}], "structuredContent": {"rows": []}});
        name_cluster(&mut ok, "b");
        assert_eq!(ok["structuredContent"]["cluster"], "b");
        assert!(ok["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("\"cluster\":\"b\"")));
        let mut err = json!({"content": [{"type": "text", "text": "Code: 60"}], "isError": true});
        name_cluster(&mut err, "b");
        assert_eq!(err["content"][0]["text"], "cluster b: Code: 60");
    }
}

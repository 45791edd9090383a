//! The fleet connector's requests (`/mcp` with `multicluster.fleet_endpoint`): the
//! caller's one identity becomes, per cluster, the identity `/mcp/{cluster}` would
//! build (`RequestIdentity::for_cluster`), and every call then takes the per-cluster
//! path unchanged — same probe memory, catalog cache key, caps and discovery cap.

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::join_all;
use serde_json::{json, Value};

use super::dispatch::{
    arguments_obj, call_method, call_result, decorate, list_decoration, params_obj, required_str,
    run_named_tool, single_page, Answer, RpcError,
};
use super::protocol::{self, Era};
use crate::app::App;
use crate::catalog::{catalog_and_reach, Reach};
use crate::identity::{RequestCredentials, RequestIdentity};
use crate::routing::endpoint_for;
use crate::tools::context::ToolEnv;
use crate::tools::fleet::{
    fleet_clusters, name_cluster, prefixed_name, split_prefixed, FleetCluster, CLUSTER_ARG,
    LIST_CLUSTERS,
};
use crate::tools::outcome::{structured, tool_error, CallOutcome};
use crate::tools::result_view;
use crate::tools::search::{unwrap_call, CALL_TOOL, SEARCH_TOOL};
use crate::tools::Catalog;

const FLEET_INSTRUCTIONS: &str = "Query several ClickHouse clusters with SQL. Call list_clusters to see the clusters and which you can reach; every other tool takes the cluster as its `cluster` argument, or names it as a prefix (`<cluster>__<tool>`). A cluster shown as pending has not had its own tools discovered yet: its static tools work now, and listing the tools again shortly adds its own. Start with list_databases, list_tables and describe_table, then execute_query with one read-only statement. Results are capped: aggregate or add LIMIT for large tables.";
/// `_meta` key of a fleet listing that lacks some clusters' catalogs.
const PENDING_META: &str = "chmcp/pendingClusters";

/// Answers one request on the fleet connector.
pub(super) async fn answer_fleet(
    app: &App,
    env: &ToolEnv<'_>,
    id: &RequestIdentity,
    era: Era,
    method: &str,
    params: &Option<Value>,
) -> Result<Answer, RpcError> {
    match method {
        "tools/list" => {
            single_page(params)?;
            let clusters = fleet_clusters(&env.config.multicluster);
            let surveyed = survey(env, id, &clusters).await;
            let per_cluster: Vec<(&str, &Catalog)> = surveyed
                .iter()
                .map(|(c, catalog, _)| (c.name.as_str(), catalog.as_ref()))
                .collect();
            let pending = pending_clusters(&surveyed);
            let (catalog, warnings) =
                super::discovery::fleet_listed(env, &clusters, &per_cluster, &pending);
            for w in warnings {
                tracing::warn!(warning = ?w, "fleet tool list");
            }
            Ok(Answer::Tools {
                catalog: Arc::new(catalog),
                extra: pending_decoration(era, &pending),
            })
        }
        "tools/call" => call(app, env, id, era, params).await.map(Answer::Json),
        // Only the result view, which the fleet's row tools link to: it is the same on
        // every cluster.
        "resources/list" => Ok(Answer::Json(decorate(
            era,
            json!({"resources": result_view::listed(env.config).into_iter().collect::<Vec<_>>()}),
            true,
        ))),
        "resources/templates/list" => Ok(Answer::Json(decorate(
            era,
            json!({"resourceTemplates": []}),
            true,
        ))),
        "prompts/list" | "prompts/get" | "completion/complete" => {
            super::prompts::handle_fleet(env, era, method, params, |c| cluster_identity(env, id, c))
                .await
                .map(Answer::Json)
        }
        "resources/read" => {
            let uri = required_str(&*params_obj(params)?, "uri")?;
            match result_view::read(env.config, &uri) {
                Some(view) => Ok(Answer::Json(decorate(era, view, true))),
                None => Err(RpcError::new(
                    protocol::INVALID_PARAMS,
                    "resources are served per cluster: read them at /mcp/{cluster}",
                )),
            }
        }
        // initialize, ping, discovery, unknown methods: nothing cluster-specific, but the
        // instructions say how this connector picks a cluster.
        _ => {
            let creds = env.credentials(id);
            let mut v = call_method(env, &creds, era, method, params).await?;
            if let Some(i) = v.get_mut("instructions") {
                *i = json!(FLEET_INSTRUCTIONS);
            }
            Ok(Answer::Json(v))
        }
    }
}

/// Each cluster's catalog for this caller and whether their identity reaches it, all
/// clusters at once; discovery runs under the cache's own rules (16-discovery cap,
/// budget, static tools on failure), so one cluster down fails nothing else.
async fn survey(
    env: &ToolEnv<'_>,
    id: &RequestIdentity,
    clusters: &[FleetCluster],
) -> Vec<(FleetCluster, Arc<Catalog>, Reach)> {
    let ids: Vec<RequestIdentity> = clusters
        .iter()
        .map(|c| cluster_identity(env, id, &c.name))
        .collect();
    let creds: Vec<RequestCredentials<'_>> = ids.iter().map(|i| env.credentials(i)).collect();
    let found = join_all(creds.iter().map(|c| catalog_and_reach(env, c))).await;
    clusters
        .iter()
        .cloned()
        .zip(found)
        .map(|(c, (catalog, reach))| (c, catalog, reach))
        .collect()
}

/// The clusters whose catalogs were still queued when the survey's budget ran out.
fn pending_clusters(surveyed: &[(FleetCluster, Arc<Catalog>, Reach)]) -> Vec<&str> {
    surveyed
        .iter()
        .filter(|(_, _, reach)| *reach == Reach::Pending)
        .map(|(c, _, _)| c.name.as_str())
        .collect()
}

/// The listing's extra fields: the era's, plus the pending clusters in `_meta` (and no
/// client caching hint while any are pending, so the next listing is fetched).
fn pending_decoration(era: Era, pending: &[&str]) -> Cow<'static, str> {
    if pending.is_empty() {
        return Cow::Borrowed(list_decoration(era));
    }
    let v = decorate(era, json!({"_meta": {PENDING_META: pending}}), false);
    Cow::Owned(serde_json::to_string(&v).unwrap_or_else(|_| "{}".into()))
}

fn cluster_identity(env: &ToolEnv<'_>, id: &RequestIdentity, cluster: &str) -> RequestIdentity {
    let mc = &env.config.multicluster;
    id.for_cluster(cluster, endpoint_for(cluster, &env.config.clickhouse, mc))
}

/// `tools/call`: `list_clusters` here; any other tool resolved to a cluster and its own
/// tool name, then run exactly as `/mcp/{cluster}` runs it.
async fn call(
    app: &App,
    env: &ToolEnv<'_>,
    id: &RequestIdentity,
    era: Era,
    params: &Option<Value>,
) -> Result<Value, RpcError> {
    let p = params_obj(params)?;
    let name = required_str(&p, "name")?;
    let mut args = arguments_obj(&p, "params.arguments must be an object")?;
    let clusters = fleet_clusters(&env.config.multicluster);
    let names = || {
        clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let on_list = |c: &str| clusters.iter().any(|k| k.name == c);
    let mut name = name;
    let via_call_tool = name == CALL_TOOL;
    if via_call_tool {
        match unwrap_call(&args) {
            Ok((n, a)) => (name, args) = (n, a),
            Err(m) => return call_result(era, tool_error(m)),
        }
    } else if name == SEARCH_TOOL {
        let surveyed = survey(env, id, &clusters).await;
        let out = super::discovery::fleet_search(&clusters, &surveyed, &args);
        return call_result(era, out);
    }
    if name == LIST_CLUSTERS {
        let out = match args.keys().next() {
            Some(k) => tool_error(format!("unknown argument `{k}` for tool {LIST_CLUSTERS}")),
            None => list_clusters(env, id, &clusters).await,
        };
        return call_result(era, out);
    }
    let (cluster, tool) = if env.static_catalog.get(&name).is_some() {
        match args.remove(CLUSTER_ARG) {
            Some(Value::String(c)) if on_list(&c) => (c, name.clone()),
            Some(Value::String(c)) => {
                return call_result(
                    era,
                    tool_error(format!(
                        "argument `cluster`: `{c}` is not one of this connector's clusters ({})",
                        names()
                    )),
                )
            }
            Some(_) => {
                return call_result(era, tool_error("argument `cluster` must be a string"))
            }
            None => {
                return call_result(
                    era,
                    tool_error(format!(
                        "missing required argument `cluster` (one of: {}); list_clusters describes them",
                        names()
                    )),
                )
            }
        }
    } else {
        match split_prefixed(&name) {
            Some((c, t))
                if on_list(c)
                    && env.static_catalog.get(t).is_none()
                    && prefixed_name(c, t).is_some() =>
            {
                (c.to_string(), t.to_string())
            }
            _ if via_call_tool => {
                return call_result(era, tool_error(super::discovery::not_callable(&name)))
            }
            _ => {
                return Err(RpcError::new(
                    protocol::INVALID_PARAMS,
                    format!(
                    "params.name: unknown tool `{name}`; call tools/list for the available tools, or search_tools to find a view's tool"
                ),
                ))
            }
        }
    };
    let cid = cluster_identity(env, id, &cluster);
    let creds = env.credentials(&cid);
    let ran = run_named_tool(app, env, &creds, tool.clone(), args).await;
    match ran.and_then(|out| call_result(era, out)) {
        Ok(mut v) => {
            name_cluster(&mut v, &cluster);
            Ok(v)
        }
        // The cluster's catalog has no such tool for this caller (grants, or a typo).
        Err(_) if via_call_tool => {
            call_result(era, tool_error(super::discovery::not_callable(&name)))
        }
        Err(mut e) => {
            // The per-cluster path names its own tool; the caller called the fleet name.
            e.message = format!(
                "cluster {cluster}: {}",
                e.message
                    .replace(&format!("`{tool}`"), &format!("`{name}`"))
            );
            Err(e)
        }
    }
}

/// `list_clusters`: every cluster's name, description, and whether the caller's
/// identity reaches it, as their catalog lookup found (a cache hit costs nothing).
async fn list_clusters(
    env: &ToolEnv<'_>,
    id: &RequestIdentity,
    clusters: &[FleetCluster],
) -> CallOutcome {
    let rows: Vec<Value> = survey(env, id, clusters)
        .await
        .into_iter()
        .map(|(c, _, reach)| {
            let mut row = json!({"name": c.name, "status": reach.label()});
            if let (Some(d), Value::Object(m)) = (c.description, &mut row) {
                m.insert("description".into(), json!(d));
            }
            row
        })
        .collect();
    structured(json!({"clusters": rows}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_with_pending_clusters_names_them_in_meta_and_asks_not_to_be_cached() {
        for era in [Era::Initialize, Era::Stateless] {
            let v: Value = serde_json::from_str(&pending_decoration(era, &["b", "c"]))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(v["_meta"][PENDING_META], json!(["b", "c"]), "{v}");
            assert!(v.get("ttlMs").is_none(), "{v}");
        }
        let complete: Value =
            serde_json::from_str(&pending_decoration(Era::Stateless, &[])).unwrap_or_default();
        assert!(complete.get("ttlMs").is_some(), "{complete}");
        assert!(complete["_meta"].get(PENDING_META).is_none(), "{complete}");
    }
}

//! Progressive discovery on the wire: which listing `tools/list` answers with, and the
//! `search_tools` / `call_tool` calls, for `/mcp/{cluster}` and the fleet `/mcp`. The
//! ranking and the texts live in `tools::search`; the catalogs are the caller's own,
//! from the per-token cache, so search finds exactly what the caller could call.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::catalog::Reach;
use crate::tools::context::ToolEnv;
use crate::tools::fleet::{cluster_property, fleet_catalog, prefixed_name, FleetCluster};
use crate::tools::outcome::{tool_error, CallOutcome};
use crate::tools::search::{
    answer, is_searched, parse_args, search, search_entry, searched_catalog, unwrap_call,
    Unsearched, CALL_TOOL, SEARCH_TOOL,
};
use crate::tools::Catalog;

/// What a `tools/call` becomes once search and call-by-name are taken care of.
pub enum Routed {
    /// Run this tool with these arguments, as if it had been called directly.
    Run(String, Map<String, Value>),
    /// Answered already (a search, or a refused `call_tool`).
    Answered(CallOutcome),
}

/// `/mcp/{cluster}`'s list: the catalog itself, or its searched form.
pub fn listed(env: &ToolEnv<'_>, catalog: Arc<Catalog>) -> Arc<Catalog> {
    if is_searched(env.config.server.tools_listing, catalog.dynamic_count()) {
        catalog.searched_form(|c| searched_catalog(c, None))
    } else {
        catalog
    }
}

/// `/mcp/{cluster}`'s `tools/call` of `search_tools` or `call_tool` (any listing: a
/// client may remember them). A catalog tool of the same name wins.
pub fn route(catalog: &Catalog, name: String, args: Map<String, Value>) -> Routed {
    if catalog.get(&name).is_some() {
        return Routed::Run(name, args);
    }
    match name.as_str() {
        CALL_TOOL => match unwrap_call(&args) {
            Ok((n, a)) if catalog.get(&n).is_some() => Routed::Run(n, a),
            Ok((n, _)) => Routed::Answered(tool_error(not_callable(&n))),
            Err(m) => Routed::Answered(tool_error(m)),
        },
        SEARCH_TOOL => Routed::Answered(match parse_args(&search_entry(None), &args) {
            Ok(a) => answer(
                &a.words,
                &search(
                    &a.words,
                    &[(None, catalog)],
                    |_, n| Some(n.to_string()),
                    a.limit,
                ),
                &Unsearched::default(),
            ),
            Err(m) => tool_error(m),
        }),
        _ => Routed::Run(name, args),
    }
}

/// `call_tool` of a name the caller's catalog does not have (a tool result, so the model
/// reads it and searches again).
pub fn not_callable(name: &str) -> String {
    format!("argument `name`: there is no tool `{name}` you can call; {SEARCH_TOOL} finds the tools you can (names are exact, with their cluster prefix on /mcp)")
}

/// The fleet's list: every cluster's tools prefixed, or (searched) the static tools
/// with `cluster`, `list_clusters`, search and call — the same size whatever the
/// number of clusters and views.
pub fn fleet_listed(
    env: &ToolEnv<'_>,
    clusters: &[FleetCluster],
    per_cluster: &[(&str, &Catalog)],
    pending: &[&str],
) -> (Catalog, Vec<String>) {
    let dynamic: usize = per_cluster.iter().map(|(_, c)| c.dynamic_count()).sum();
    if is_searched(env.config.server.tools_listing, dynamic) {
        let (statics, warnings) = fleet_catalog(env.static_catalog, clusters, &[], pending);
        let prop = cluster_property(clusters);
        (searched_catalog(&statics, Some(&prop)), warnings)
    } else {
        fleet_catalog(env.static_catalog, clusters, per_cluster, pending)
    }
}

/// The fleet's `search_tools`: every cluster's catalog (or the one asked for), with the
/// clusters whose catalogs could not be searched named.
pub fn fleet_search(
    clusters: &[FleetCluster],
    surveyed: &[(FleetCluster, Arc<Catalog>, Reach)],
    args: &Map<String, Value>,
) -> CallOutcome {
    let entry = search_entry(Some(&cluster_property(clusters)));
    let a = match parse_args(&entry, args) {
        Ok(a) => a,
        Err(m) => return tool_error(m),
    };
    if let Some(c) = &a.cluster {
        if !clusters.iter().any(|k| &k.name == c) {
            let names: Vec<&str> = clusters.iter().map(|k| k.name.as_str()).collect();
            return tool_error(format!(
                "argument `cluster`: `{c}` is not one of this connector's clusters ({}); leave it out to search them all",
                names.join(", ")
            ));
        }
    }
    let mut unsearched = Unsearched::default();
    let mut catalogs: Vec<(Option<&str>, &Catalog)> = Vec::new();
    for (c, catalog, reach) in surveyed {
        if a.cluster.as_ref().is_some_and(|want| want != &c.name) {
            continue;
        }
        match reach {
            Reach::Ok => catalogs.push((Some(c.name.as_str()), catalog.as_ref())),
            // No discovery slot came free in time: this caller's catalog there is not
            // known yet (the next search queues for it again).
            Reach::Pending => unsearched.pending.push(c.name.clone()),
            // No view or table rule: nothing there to find.
            Reach::Unknown => {}
            Reach::Denied | Reach::Unreachable => unsearched.unreachable.push(c.name.clone()),
        }
    }
    let hits = search(
        &a.words,
        &catalogs,
        |c, t| prefixed_name(c.unwrap_or_default(), t),
        a.limit,
    );
    answer(&a.words, &hits, &unsearched)
}

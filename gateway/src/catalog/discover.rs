//! Discovery: a caller's catalog built from what their grants let them see, and the
//! lookup that serves it from the per-token cache (docs/spec-notes.md, "Catalog cache").

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::{CatalogOutcome, ContentHash, DiscoveryError, StaticReason};
use crate::clickhouse::sql::quote_string;
use crate::clickhouse::QueryError;
use crate::identity::RequestCredentials;
use crate::telemetry::trace::{self, SpanKind};
use crate::tools::context::text_cell;
use crate::tools::context::ToolEnv;
use crate::tools::dynamic::{self, ColumnRow, ObjectRow};
use crate::tools::schema::static_entries;
use crate::tools::{Catalog, ToolContext};

/// Builds a caller's catalog: the static tools plus, when rules ask for them, the
/// views and tables the caller's grants let them see.
pub async fn discover_catalog(ctx: &ToolContext<'_>) -> Result<(Catalog, Vec<String>), QueryError> {
    let statics = static_entries(ctx.config);
    let rules = ctx.tool_rules;
    if !rules.need_discovery() {
        return Ok((Catalog::new(statics), Vec::new()));
    }
    let has_comment = ctx
        .system_columns("tables")
        .await?
        .iter()
        .any(|c| c == "comment");
    let comment = if has_comment { "comment" } else { "''" };
    let sql = format!(
        "SELECT database, name, engine, create_table_query, {comment} FROM system.tables \
         WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY database, name"
    );
    let objects: Vec<ObjectRow> = ctx
        .metadata("discovery", sql)
        .await?
        .into_iter()
        .map(|r| {
            let s = |i: usize| text_cell(&r, i);
            ObjectRow {
                database: s(0),
                name: s(1),
                engine: s(2),
                create_query: s(3),
                comment: Some(s(4)).filter(|c| !c.is_empty()),
            }
        })
        .collect();
    // Always read: insert tools need them, and schema search finds views by column.
    let columns = {
        let has_col_comment = ctx
            .system_columns("columns")
            .await?
            .iter()
            .any(|c| c == "comment");
        let dbs: Vec<String> = {
            let mut d: Vec<&str> = objects.iter().map(|o| o.database.as_str()).collect();
            d.dedup();
            d.into_iter().map(quote_string).collect()
        };
        if dbs.is_empty() {
            Vec::new()
        } else {
            let sql = format!(
                "SELECT database, table, name, type, default_kind, {} FROM system.columns WHERE database IN ({})",
                if has_col_comment { "comment" } else { "''" },
                dbs.join(", ")
            );
            ctx.metadata("discovery", sql)
                .await?
                .into_iter()
                .map(|r| {
                    let s = |i: usize| text_cell(&r, i);
                    ColumnRow {
                        database: s(0),
                        table: s(1),
                        name: s(2),
                        ch_type: s(3),
                        default_kind: s(4),
                        comment: Some(s(5)).filter(|c| !c.is_empty()),
                    }
                })
                .collect()
        }
    };
    let mut taken: HashMap<String, String> = statics
        .iter()
        .map(|e| (e.tool.name.to_string(), "a static tool".to_string()))
        .collect();
    let (mut dynamic_entries, warnings) = dynamic::build(rules, &objects, &columns, &mut taken);
    crate::tools::result_view::link(ctx.config, &mut dynamic_entries);
    let mut entries = statics;
    entries.extend(dynamic_entries);
    Ok((Catalog::new(entries), warnings))
}

/// Whether a caller's identity reaches a cluster, as the catalog lookup found out
/// (`list_clusters` on the fleet connector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// A catalog was discovered or is cached: ClickHouse accepted this identity.
    Ok,
    /// ClickHouse refused this identity (auth-class failure, cached as denied).
    Denied,
    /// Discovery failed for another reason (down, timeout, 5xx): never cached.
    Unreachable,
    /// Not known: no discovery is configured, or every discovery slot was busy.
    Unknown,
}

impl Reach {
    pub fn label(self) -> &'static str {
        match self {
            Reach::Ok => "ok",
            Reach::Denied => "denied",
            Reach::Unreachable => "unreachable",
            Reach::Unknown => "unknown",
        }
    }
}

/// The caller's catalog: static, or discovered with their credentials and cached per
/// token and cluster. Never an error: any failure serves the static tools.
pub async fn catalog_for(env: &ToolEnv<'_>, creds: &RequestCredentials<'_>) -> Arc<Catalog> {
    catalog_and_reach(env, creds).await.0
}

/// [`catalog_for`], also saying whether the caller's identity reached the cluster.
pub async fn catalog_and_reach(
    env: &ToolEnv<'_>,
    creds: &RequestCredentials<'_>,
) -> (Arc<Catalog>, Reach) {
    if !env.tool_rules.need_discovery() {
        return (env.static_catalog.clone(), Reach::Unknown);
    }
    let id = creds.identity();
    let outcome = env
        .catalogs
        .lookup_or_discover(&id.catalog_key, id.expires, SystemTime::now(), || async {
            let c = creds.get().await.map_err(|e| DiscoveryError {
                auth_class: e.is_auth_class(),
                message: e.to_string(),
            })?;
            let ctx = ToolContext::new(env, id, c);
            let (catalog, warnings) =
                trace::child("discovery", SpanKind::Internal, discover_catalog(&ctx))
                    .await
                    .map_err(DiscoveryError::from)?;
            // Warnings name ClickHouse objects: escaped fields, never the message.
            for w in warnings {
                tracing::warn!(warning = ?w, "tool discovery warning");
            }
            let hash = ContentHash::of(catalog.listed_json().as_bytes());
            Ok((catalog, hash))
        })
        .await;
    trace::set(
        "chmcp.catalog",
        match &outcome {
            CatalogOutcome::Hit(_) => "hit",
            CatalogOutcome::Discovered(_) => "discovered",
            CatalogOutcome::Denied => "denied",
            CatalogOutcome::StaticOnly { .. } => "static_only",
        },
    );
    match outcome {
        CatalogOutcome::Hit(c) | CatalogOutcome::Discovered(c) => (c, Reach::Ok),
        CatalogOutcome::Denied => (env.static_catalog.clone(), Reach::Denied),
        CatalogOutcome::StaticOnly { reason } => (
            env.static_catalog.clone(),
            match reason {
                StaticReason::Saturated => Reach::Unknown,
                StaticReason::Transient | StaticReason::Timeout => Reach::Unreachable,
            },
        ),
    }
}

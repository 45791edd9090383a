//! Discovery: a caller's catalog built from what their grants let them see, and the
//! lookup that serves it from the per-token cache (docs/spec-notes.md, "Catalog cache").

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{CatalogOutcome, ContentHash, DiscoveryError, Lookup, StaticReason};
use crate::clickhouse::sql::{quote_string, SYSTEM_DATABASES};
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
    if !ctx.tool_rules.need_discovery() {
        return Ok((Catalog::new(static_entries(ctx.config)), Vec::new()));
    }
    let rows = read_rows(ctx).await?;
    Ok(build_catalog(ctx, &rows))
}

/// What a catalog is built from: the caller's `system.tables` and `system.columns` rows.
pub struct DiscoveredRows {
    objects: Vec<ObjectRow>,
    columns: Vec<ColumnRow>,
}

impl DiscoveredRows {
    /// A digest of everything the catalog is built from (the runtime's static tools and
    /// rules, then these rows): equal digests build equal catalogs, so a caller whose
    /// grants show the same objects as another's reuses that catalog without building.
    /// The static tools' JSON stands for the configuration the build reads (e.g. the
    /// result view's links, which `execute_query` carries too); a build input outside
    /// these must be added here.
    pub fn inputs_hash(&self, statics: &Catalog, rules: &dynamic::ToolRules) -> ContentHash {
        let mut text = String::with_capacity(statics.listed_json().len() + 16 * 1024);
        text.push_str(statics.listed_json());
        // Written in place: the rows' text (create queries included) is not copied twice.
        let _ = write!(text, "\0{rules:?}\0{:?}\0{:?}", self.objects, self.columns);
        ContentHash::of(text.as_bytes())
    }
}

/// The discovery queries, with the caller's credentials.
async fn read_rows(ctx: &ToolContext<'_>) -> Result<DiscoveredRows, QueryError> {
    let has_comment = ctx
        .system_columns("tables")
        .await?
        .iter()
        .any(|c| c == "comment");
    let comment = if has_comment { "comment" } else { "''" };
    let sql = format!(
        "SELECT database, name, engine, create_table_query, {comment} FROM system.tables \
         WHERE database NOT IN {SYSTEM_DATABASES} ORDER BY database, name"
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
    Ok(DiscoveredRows { objects, columns })
}

/// The catalog from discovered rows: pure.
fn build_catalog(ctx: &ToolContext<'_>, rows: &DiscoveredRows) -> (Catalog, Vec<String>) {
    let statics = static_entries(ctx.config);
    let mut taken: HashMap<String, String> = statics
        .iter()
        .map(|e| (e.tool.name.to_string(), "a static tool".to_string()))
        .collect();
    let (mut dynamic_entries, warnings) =
        dynamic::build(ctx.tool_rules, &rows.objects, &rows.columns, &mut taken);
    crate::tools::result_view::link(ctx.config, &mut dynamic_entries);
    let mut entries = statics;
    entries.extend(dynamic_entries);
    (Catalog::new(entries), warnings)
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
    /// Not known yet: no discovery slot came free within the queue budget. Said, not
    /// dropped: the next listing (or `list_clusters`) queues for it again.
    Pending,
    /// Not known: no discovery is configured.
    Unknown,
}

impl Reach {
    pub fn label(self) -> &'static str {
        match self {
            Reach::Ok => "ok",
            Reach::Denied => "denied",
            Reach::Unreachable => "unreachable",
            Reach::Pending => "pending",
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
    catalog_within(env, creds, env.catalogs.config().queue_budget).await
}

/// The caller's catalog for the cluster `creds` names, waiting at most `queue_budget`
/// for a slot in the fair discovery queue (per caller, per server): a cached catalog at
/// once, a discovered one, or the static tools with [`Reach::Pending`] when the budget
/// ran out first, so the caller can name the cluster as pending. `Duration::ZERO` asks
/// "cached or a free slot now" (a discovery that gets its slot still has 1 s).
pub async fn catalog_within(
    env: &ToolEnv<'_>,
    creds: &RequestCredentials<'_>,
    queue_budget: Duration,
) -> (Arc<Catalog>, Reach) {
    if !env.tool_rules.need_discovery() {
        return (env.static_catalog.clone(), Reach::Unknown);
    }
    let id = creds.identity();
    let server = id.endpoint.key();
    let wait = Lookup {
        server: &server,
        queue_budget,
    };
    let outcome = env
        .catalogs
        .lookup_within(
            &id.catalog_key,
            wait,
            id.expires,
            SystemTime::now(),
            || async {
                let c = creds.get().await.map_err(|e| DiscoveryError {
                    auth_class: e.is_auth_class(),
                    message: e.to_string(),
                })?;
                let ctx = ToolContext::new(env, id, c);
                let rows = trace::child("discovery", SpanKind::Internal, read_rows(&ctx))
                    .await
                    .map_err(DiscoveryError::from)?;
                let hash = rows.inputs_hash(env.static_catalog, env.tool_rules);
                if let Some(same) = env.catalogs.shared(&hash) {
                    return Ok((same, hash));
                }
                let (catalog, warnings) = build_catalog(&ctx, &rows);
                // Warnings name ClickHouse objects: escaped fields, never the message.
                for w in warnings {
                    tracing::warn!(warning = ?w, "tool discovery warning");
                }
                Ok((Arc::new(catalog), hash))
            },
        )
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
                StaticReason::Pending => Reach::Pending,
                StaticReason::Transient | StaticReason::Timeout => Reach::Unreachable,
            },
        ),
    }
}

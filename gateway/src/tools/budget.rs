//! The scan budget around a tool query: the pre-flight estimate, the estimate-only
//! answer, and the refusal that names the tables' keys. What these decide is pure
//! (`crate::cost`); the queries they need are here.

use serde_json::{json, Value};

use super::context::{text_cell, ToolContext};
use super::outcome::{tool_error, CallOutcome};
use super::result::Caps;
use crate::clickhouse::settings::ReadOnly;
use crate::clickhouse::sql::quote_string;
use crate::clickhouse::QueryError;
use crate::config::{EffectiveBudget, EstimateMode};
use crate::cost::estimate::{self, Estimate};
use crate::cost::preflight::{lacks_estimate, ESTIMATE_PROBE};
use crate::cost::refusal::{self, BudgetStop, TableKeys};
use crate::cost::tables;
use crate::telemetry::trace;

/// Bound on the plan lines returned with an estimate.
const MAX_PLAN_LINES: usize = 200;

/// The `stage` label of `chmcp_query_budget_refusals_total`.
pub const STAGE_ESTIMATE: &str = "estimate";
pub const STAGE_RUNNING: &str = "running";

fn refused(stage: &'static str, message: String) -> CallOutcome {
    trace::note(|f| f.budget_refusal = Some(stage));
    tool_error(message)
}

/// Before a read runs: its refusal when the server's estimate is over the row budget.
/// No estimate (old server, `estimate: off`, a statement EXPLAIN does not take) leaves
/// the decision to ClickHouse's running limit.
pub(super) async fn preflight(ctx: &ToolContext<'_>, sql: &str) -> Option<CallOutcome> {
    let budget = ctx.budget();
    if budget.max_rows_to_read.is_none() || budget.estimate == EstimateMode::Off {
        return None;
    }
    let estimate = match server_estimate(ctx, sql).await {
        Ok(Some(e)) => e,
        Ok(None) => return None,
        Err(e) => {
            tracing::debug!(error = ?e.to_string(), "no estimate; the running limit applies");
            return None;
        }
    };
    if !estimate.over(&budget) {
        return None;
    }
    let keys = table_keys(
        ctx,
        estimate
            .tables
            .iter()
            .map(|t| (t.database.clone(), t.table.clone()))
            .collect(),
    )
    .await;
    Some(refused(
        STAGE_ESTIMATE,
        estimate::refusal_message(&estimate, &budget, &keys),
    ))
}

/// A query ClickHouse stopped at the budget, explained; `None` for any other failure.
pub(super) async fn explain_stop(
    ctx: &ToolContext<'_>,
    sql: &str,
    e: &QueryError,
) -> Option<CallOutcome> {
    let QueryError::Server(server) = e else {
        return None;
    };
    let stop = BudgetStop::from_error(server)?;
    let budget = ctx.budget();
    if !budget.is_set() {
        return None;
    }
    let default_db = &ctx.config.clickhouse.database;
    let named = tables::referenced(sql)
        .into_iter()
        .map(|t| (t.database.unwrap_or_else(|| default_db.clone()), t.table))
        .collect();
    let keys = table_keys(ctx, named).await;
    Some(refused(
        STAGE_RUNNING,
        refusal::running_message(&stop, &budget, &keys),
    ))
}

/// `execute_query` with `estimate: true`: the estimate and the plan, nothing run. The
/// answer has the rows shape (one row per table) so it fits the tool's output schema.
pub(super) async fn estimate_only(ctx: &ToolContext<'_>, sql: &str) -> Result<CallOutcome, String> {
    let budget = ctx.budget();
    let limits = budget_json(&budget);
    let Some(est) = server_estimate(ctx, sql).await.map_err(|e| e.to_string())? else {
        let v = json!({
            "columns": estimate_columns(), "rows": [], "row_count": 0,
            "estimate": {"available": false, "budget": limits, "note": "This server has no EXPLAIN ESTIMATE (ClickHouse 21.x and later have it): the cost is known only by running the query. The scan budget still stops it where ClickHouse counts past the limit."},
        });
        return Ok(super::outcome::structured(v));
    };
    let plan = plan(ctx, sql).await;
    let rows: Vec<Value> = est
        .tables
        .iter()
        .map(|t| json!([t.database, t.table, t.parts, t.rows, t.marks]))
        .collect();
    let v = json!({
        "columns": estimate_columns(),
        "row_count": rows.len(),
        "rows": rows,
        "estimate": {
            "available": true,
            "rows": est.rows(),
            "within_budget": !est.over(&budget),
            "budget": limits,
            "summary": est.describe(),
            "plan": plan,
        },
    });
    Ok(super::outcome::structured(v))
}

fn estimate_columns() -> Value {
    json!([
        {"name": "database", "type": "String"}, {"name": "table", "type": "String"},
        {"name": "parts", "type": "UInt64"}, {"name": "rows", "type": "UInt64"},
        {"name": "marks", "type": "UInt64"},
    ])
}

fn budget_json(b: &EffectiveBudget) -> Value {
    json!({"max_rows_to_read": b.max_rows_to_read, "max_bytes_to_read": b.max_bytes_to_read})
}

/// ClickHouse's estimate of `sql`, `None` where the server has no `EXPLAIN ESTIMATE`.
/// It runs as the query would (read-only, the budget's settings): EXPLAIN may evaluate
/// subqueries to use an index.
async fn server_estimate(ctx: &ToolContext<'_>, sql: &str) -> Result<Option<Estimate>, QueryError> {
    if !has_estimate(ctx).await? {
        return Ok(None);
    }
    let opts = ctx.options(
        "estimate",
        format!("EXPLAIN ESTIMATE {sql}"),
        ReadOnly::Required,
        Caps::default(),
    );
    let (_, rows) = ctx
        .ch
        .query_all(&ctx.endpoint, &ctx.creds, &opts, 10_000)
        .await?;
    Ok(Some(Estimate::from_rows(&rows)))
}

/// The plan's lines (`EXPLAIN`), or null when the server cannot give one.
async fn plan(ctx: &ToolContext<'_>, sql: &str) -> Value {
    let opts = ctx.options(
        "estimate",
        format!("EXPLAIN {sql}"),
        ReadOnly::Required,
        Caps::default(),
    );
    match ctx
        .ch
        .query_all(&ctx.endpoint, &ctx.creds, &opts, MAX_PLAN_LINES)
        .await
    {
        Ok((_, rows)) => json!(rows.iter().map(|r| text_cell(r, 0)).collect::<Vec<_>>()),
        Err(_) => Value::Null,
    }
}

/// Whether the endpoint has `EXPLAIN ESTIMATE`: remembered, or the gateway's own probe.
async fn has_estimate(ctx: &ToolContext<'_>) -> Result<bool, QueryError> {
    let endpoint = ctx.endpoint.key();
    if let Some(known) = ctx.abilities.has_estimate(&endpoint) {
        return Ok(known);
    }
    let has = match ctx
        .metadata("estimate_probe", ESTIMATE_PROBE.to_string())
        .await
    {
        Ok(_) => true,
        Err(QueryError::Server(e)) if lacks_estimate(&e) => false,
        Err(e) => return Err(e),
    };
    ctx.abilities.remember_estimate(&endpoint, has);
    tracing::info!(endpoint = %endpoint, explain_estimate = has, "learned whether the server estimates queries");
    Ok(has)
}

/// The sorting and sampling keys of the named tables (`system.tables`); empty where
/// the server does not say. Advice only: a failure gives general advice.
async fn table_keys(ctx: &ToolContext<'_>, named: Vec<(String, String)>) -> Vec<TableKeys> {
    if named.is_empty() {
        return Vec::new();
    }
    let has = match ctx.system_columns("tables").await {
        Ok(cols) => cols,
        Err(_) => return Vec::new(),
    };
    let col = |c: &str| {
        if has.iter().any(|h| h == c) {
            c.to_string()
        } else {
            "''".to_string()
        }
    };
    let which = named
        .iter()
        .map(|(d, t)| {
            format!(
                "(database = {} AND name = {})",
                quote_string(d),
                quote_string(t)
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    let sql = format!(
        "SELECT database, name, {}, {} FROM system.tables WHERE {which}",
        col("sorting_key"),
        col("sampling_key")
    );
    match ctx.metadata("budget_refusal", sql).await {
        Ok(rows) => rows
            .iter()
            .map(|r| TableKeys {
                database: text_cell(r, 0),
                table: text_cell(r, 1),
                sorting_key: text_cell(r, 2),
                sampling_key: text_cell(r, 3),
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

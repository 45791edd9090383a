//! Calls to the tools made from ClickHouse views (parameterized `SELECT`) and tables
//! (`INSERT` of one row): arguments become typed literals, never spliced text.

use serde_json::{json, Map, Value};

use super::context::ToolContext;
use super::dynamic;
use super::outcome::{query_failed, structured, CallOutcome};
use super::result::Caps;
use crate::clickhouse::settings::ReadOnly;
use crate::clickhouse::sql::quote_ident;
use crate::clickhouse::types::JsonKind;

pub(super) async fn run_view(
    ctx: &ToolContext<'_>,
    tool: &str,
    v: &dynamic::ViewTool,
    args: &Map<String, Value>,
) -> Result<CallOutcome, String> {
    let mut sql = format!(
        "SELECT * FROM {}.{}",
        quote_ident(&v.database),
        quote_ident(&v.view)
    );
    if !v.params.is_empty() {
        let mut parts = Vec::new();
        for (p, t) in &v.params {
            let value = args
                .get(p)
                .ok_or_else(|| format!("missing required argument `{p}`"))?;
            let lit = JsonKind::of(t)
                .literal(value)
                .map_err(|e| format!("argument `{p}`: {e}"))?;
            parts.push(format!("{p} = {lit}"));
        }
        sql.push_str(&format!("({})", parts.join(", ")));
    }
    let opts = ctx.options(tool, sql, ReadOnly::Required, ctx.caps());
    Ok(ctx.rows(tool, opts).await)
}

pub(super) async fn run_insert(
    ctx: &ToolContext<'_>,
    tool: &str,
    t: &dynamic::InsertTool,
    args: &Map<String, Value>,
) -> Result<CallOutcome, String> {
    if ctx.config.clickhouse.read_only {
        return Err("writes are disabled on this server (clickhouse.read_only)".into());
    }
    let (mut names, mut values) = (Vec::new(), Vec::new());
    for (name, ch_type, required) in &t.columns {
        match args.get(name) {
            Some(v) => {
                names.push(quote_ident(name));
                values.push(
                    JsonKind::of(ch_type)
                        .literal(v)
                        .map_err(|e| format!("argument `{name}`: {e}"))?,
                );
            }
            None if *required => return Err(format!("missing required argument `{name}`")),
            None => {}
        }
    }
    let sql = format!(
        "INSERT INTO {}.{} ({}) VALUES ({})",
        quote_ident(&t.database),
        quote_ident(&t.table),
        names.join(", "),
        values.join(", ")
    );
    let opts = ctx.options(tool, sql, ReadOnly::Off, Caps::default());
    if let Err(e) = ctx.ch.query_all(&ctx.endpoint, &ctx.creds, &opts, 1).await {
        return Ok(query_failed(&e));
    }
    Ok(structured(json!({"inserted_rows": 1})))
}

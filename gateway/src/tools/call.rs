//! Running one tool call against ClickHouse, and discovering a caller's catalog.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rmcp::model::{CallToolResult, ContentBlock as Content};
use serde_json::{json, Map, Value};

use super::dynamic::{self, ColumnRow, ObjectRow, ToolRules};
use super::result::{narrowing_hint, Caps, ResultBuilder};
use super::schema::{static_entries, LIST_TABLES_PAGE};
use super::{Action, Catalog, Entry};
use crate::clickhouse::settings::ReadOnly;
use crate::clickhouse::sql::{self, quote_ident, quote_string};
use crate::clickhouse::types::JsonKind;
use crate::clickhouse::{ClickHouse, Credentials, Endpoint, QueryError, QueryOptions};
use crate::config::Config;

/// Grace beyond `max_execution_time` before the gateway's own timeout fires, so
/// ClickHouse's own (clearer) timeout error normally arrives first.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);
/// Bound on rows read by listings and discovery.
const MAX_METADATA_ROWS: usize = 10_000;

/// Who is calling, as written into `log_comment`.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub subject: String,
    pub email: Option<String>,
}

/// Everything one call needs; built per request by the transport.
pub struct ToolContext<'a> {
    pub ch: &'a ClickHouse,
    pub config: &'a Config,
    pub tool_rules: &'a ToolRules,
    pub endpoint: Endpoint,
    pub creds: Credentials,
    pub roles: Vec<String>,
    /// The cluster name (single-cluster mode: `default`).
    pub cluster: String,
    pub caller: Caller,
    /// Set when ClickHouse refused the credentials (auth-class failure), so the
    /// caller can re-probe the endpoint's identity method.
    pub auth_failed: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    ToolError,
    Truncated,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::Truncated => "truncated",
        }
    }
}

pub struct CallOutcome {
    pub result: CallToolResult,
    pub outcome: Outcome,
}

pub fn tool_error(message: impl Into<String>) -> CallOutcome {
    CallOutcome {
        result: CallToolResult::error(vec![Content::text(message.into())]),
        outcome: Outcome::ToolError,
    }
}

fn structured(v: Value) -> CallOutcome {
    let text = v.to_string();
    let mut r = CallToolResult::success(vec![Content::text(text)]);
    r.structured_content = Some(v);
    CallOutcome {
        result: r,
        outcome: Outcome::Ok,
    }
}

impl ToolContext<'_> {
    pub fn auth_failed(&self) -> bool {
        self.auth_failed.load(Ordering::Relaxed)
    }

    fn note(&self, e: &QueryError) {
        if e.is_auth_class() {
            self.auth_failed.store(true, Ordering::Relaxed);
        }
    }

    fn query_id(&self) -> String {
        format!("chmcp-{:032x}", fastrand::u128(..))
    }

    /// Options for one query, with the settings the gateway adds on its own.
    fn options(&self, tool: &str, sql: String, read_only: ReadOnly, caps: Caps) -> QueryOptions {
        let ch = &self.config.clickhouse;
        let log_comment = json!({"tool": tool, "cluster": self.cluster, "sub": self.caller.subject, "email": self.caller.email});
        let mut ours: Vec<(&'static str, String)> = vec![
            ("log_comment", log_comment.to_string()),
            ("max_execution_time", ch.max_execution_time.to_string()),
        ];
        if let Some(rows) = caps.rows {
            // One more than the cap, so the gateway can tell "exactly the cap" from "more".
            ours.push(("max_result_rows", (rows + 1).to_string()));
            ours.push(("result_overflow_mode", "break".into()));
        }
        QueryOptions {
            sql,
            database: ch.database.clone(),
            query_id: self.query_id(),
            gateway_settings: ours,
            read_only,
            settings: Vec::new(),
            roles: self.roles.clone(),
            timeout: Duration::from_secs(ch.max_execution_time) + TIMEOUT_GRACE,
        }
    }

    fn caps(&self) -> Caps {
        Caps {
            rows: self.config.clickhouse.row_cap(),
            bytes: self.config.clickhouse.byte_cap(),
        }
    }

    /// A query whose rows go back to the caller, capped.
    async fn rows(&self, tool: &str, opts: QueryOptions) -> CallOutcome {
        let mut builder = ResultBuilder::new(self.caps());
        match self
            .ch
            .query_rows(&self.endpoint, &self.creds, &opts, &mut builder)
            .await
        {
            Ok(outcome) => {
                let truncation = builder.truncation().cloned();
                let v = builder.finish(outcome.elapsed.as_millis() as u64);
                let mut out = structured(v);
                if let Some(t) = truncation {
                    out.result.content.push(Content::text(narrowing_hint(&t)));
                    out.outcome = Outcome::Truncated;
                }
                out
            }
            Err(e) => {
                self.note(&e);
                // ClickHouse's message quotes the query: an escaped field (`?`).
                tracing::info!(tool, query_id = %opts.query_id, error = ?e.to_string(), "query failed");
                tool_error(e.to_string())
            }
        }
    }

    /// A metadata query read whole (listings, discovery).
    async fn metadata(&self, tool: &str, sql: String) -> Result<Vec<Vec<Value>>, QueryError> {
        let opts = self.options(tool, sql, ReadOnly::Preferred, Caps::default());
        self.ch
            .query_all(&self.endpoint, &self.creds, &opts, MAX_METADATA_ROWS)
            .await
            .map(|(_, rows)| rows)
    }

    /// Columns that `system.<table>` has on this server (older servers lack some).
    /// Read once per endpoint and remembered: it depends on the server version only.
    async fn system_columns(&self, table: &str) -> Result<Arc<Vec<String>>, QueryError> {
        if let Some(cols) = self.ch.known_system_columns(&self.endpoint, table) {
            return Ok(cols);
        }
        let sql = format!(
            "SELECT name FROM system.columns WHERE database = 'system' AND table = {}",
            quote_string(table)
        );
        let cols = self
            .metadata("system_columns", sql)
            .await?
            .into_iter()
            .filter_map(|r| r.first()?.as_str().map(str::to_string))
            .collect();
        Ok(self.ch.remember_system_columns(&self.endpoint, table, cols))
    }
}

/// A text cell of a metadata row (empty when absent or not text).
fn text_cell(row: &[Value], i: usize) -> String {
    row.get(i)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn str_arg<'a>(args: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    match args.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(format!("argument `{key}` must be a string")),
        None => Err(format!("missing required argument `{key}`")),
    }
}

fn opt_str_arg<'a>(args: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("argument `{key}` must be a string")),
    }
}

/// Rejects arguments the schema does not declare (the schemas are strict).
fn check_known_args(entry: &Entry, args: &Map<String, Value>) -> Result<(), String> {
    let props = entry
        .tool
        .input_schema
        .get("properties")
        .and_then(Value::as_object);
    for k in args.keys() {
        if !props.is_some_and(|p| p.contains_key(k)) {
            return Err(format!(
                "unknown argument `{k}` for tool {}",
                entry.tool.name
            ));
        }
    }
    Ok(())
}

/// Runs one tool. Every failure is a tool result with `isError`, never a protocol error.
pub async fn call_tool(
    ctx: &ToolContext<'_>,
    entry: &Entry,
    args: &Map<String, Value>,
) -> CallOutcome {
    if let Err(m) = check_known_args(entry, args) {
        return tool_error(m);
    }
    let name = entry.tool.name.as_ref();
    let r = match &entry.action {
        Action::ExecuteQuery => execute_query(ctx, args).await,
        Action::WriteQuery => write_query(ctx, args).await,
        Action::ListDatabases => list_databases(ctx).await,
        Action::ListTables => list_tables(ctx, args).await,
        Action::DescribeTable => describe_table(ctx, args).await,
        Action::View(v) => run_view(ctx, name, v, args).await,
        Action::Insert(t) => run_insert(ctx, name, t, args).await,
    };
    r.unwrap_or_else(tool_error)
}

/// The checks both `execute_query` and `write_query` pass, on the query as ClickHouse
/// tokenizes it. Table functions are checked for writes too: `INSERT ... SELECT FROM
/// url(...)` and `INSERT INTO FUNCTION url(...)` reach outside as a read would.
fn guard<'q>(ctx: &ToolContext<'_>, query: &'q str) -> Result<sql::TokenizedQuery<'q>, String> {
    sql::check_length(query, ctx.config.clickhouse.query_length_cap())
        .map_err(|e| e.to_string())?;
    let tokens = sql::TokenizedQuery::new(query).map_err(|e| e.to_string())?;
    tokens
        .check_blocked_clauses(&ctx.config.server.blocked_query_clauses)
        .map_err(|e| e.to_string())?;
    tokens
        .check_table_functions(&ctx.config.server.allowed_table_functions)
        .map_err(|e| e.to_string())?;
    Ok(tokens)
}

async fn execute_query(
    ctx: &ToolContext<'_>,
    args: &Map<String, Value>,
) -> Result<CallOutcome, String> {
    let query = str_arg(args, "query")?;
    guard(ctx, query)?
        .check_read_only(!ctx.config.clickhouse.read_only)
        .map_err(|e| e.to_string())?;
    let mut opts = ctx.options(
        "execute_query",
        query.to_string(),
        ReadOnly::Required,
        ctx.caps(),
    );
    if let Some(settings) = args.get("settings") {
        let Value::Object(settings) = settings else {
            return Err("argument `settings` must be an object".into());
        };
        for (k, v) in settings {
            if !ctx.config.server.tool_input_settings.contains(k) {
                return Err(format!(
                    "setting `{k}` is not allowed here (allowed: {})",
                    ctx.config.server.tool_input_settings.join(", ")
                ));
            }
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => u8::from(*b).to_string(),
                _ => return Err(format!("setting `{k}` must be a string, number or boolean")),
            };
            opts.settings.push((k.clone(), text));
        }
    }
    Ok(ctx.rows("execute_query", opts).await)
}

async fn write_query(
    ctx: &ToolContext<'_>,
    args: &Map<String, Value>,
) -> Result<CallOutcome, String> {
    if ctx.config.clickhouse.read_only {
        return Err("writes are disabled on this server (clickhouse.read_only)".into());
    }
    let query = str_arg(args, "query")?;
    guard(ctx, query)?
        .check_single_statement()
        .map_err(|e| e.to_string())?;
    let opts = ctx.options("write_query", query.to_string(), ReadOnly::Off, ctx.caps());
    Ok(ctx.rows("write_query", opts).await)
}

async fn list_databases(ctx: &ToolContext<'_>) -> Result<CallOutcome, String> {
    let have = ctx
        .system_columns("databases")
        .await
        .map_err(|e| e.to_string())?;
    let comment = if have.iter().any(|c| c == "comment") {
        "comment"
    } else {
        "''"
    };
    let rows = ctx
        .metadata(
            "list_databases",
            format!("SELECT name, engine, {comment} FROM system.databases ORDER BY name"),
        )
        .await
        .map_err(|e| e.to_string())?;
    let dbs: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let mut d = Map::new();
            d.insert("name".into(), json!(r.first()));
            d.insert("engine".into(), json!(r.get(1)));
            if let Some(c) = r.get(2).and_then(Value::as_str).filter(|c| !c.is_empty()) {
                d.insert("comment".into(), json!(c));
            }
            Value::Object(d)
        })
        .collect();
    Ok(structured(json!({"databases": dbs})))
}

/// Opaque `list_tables` cursor: the listing it belongs to and the next offset.
fn encode_cursor(database: &str, like: Option<&str>, offset: usize) -> String {
    let raw = json!([database, like, offset]).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str, database: &str, like: Option<&str>) -> Result<usize, String> {
    let bad = || {
        "invalid cursor: pass next_cursor from the previous list_tables call unchanged".to_string()
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let v: (String, Option<String>, usize) = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v.0 != database || v.1.as_deref() != like {
        return Err("this cursor belongs to another listing (different database or like)".into());
    }
    Ok(v.2)
}

async fn list_tables(
    ctx: &ToolContext<'_>,
    args: &Map<String, Value>,
) -> Result<CallOutcome, String> {
    let database = str_arg(args, "database")?;
    let like = opt_str_arg(args, "like")?;
    let offset = match opt_str_arg(args, "cursor")? {
        Some(c) => decode_cursor(c, database, like)?,
        None => 0,
    };
    let have = ctx
        .system_columns("tables")
        .await
        .map_err(|e| e.to_string())?;
    let col = |name: &str, fallback: &str| {
        if have.iter().any(|c| c == name) {
            name.to_string()
        } else {
            fallback.to_string()
        }
    };
    let mut sql = format!(
        "SELECT name, engine, {}, {}, {} FROM system.tables WHERE database = {}",
        col("comment", "''"),
        col("total_rows", "NULL"),
        col("total_bytes", "NULL"),
        quote_string(database)
    );
    if let Some(like) = like {
        sql.push_str(&format!(" AND name LIKE {}", quote_string(like)));
    }
    sql.push_str(&format!(
        " ORDER BY name LIMIT {} OFFSET {offset}",
        LIST_TABLES_PAGE + 1
    ));
    let mut rows = ctx
        .metadata("list_tables", sql)
        .await
        .map_err(|e| e.to_string())?;
    let more = rows.len() > LIST_TABLES_PAGE;
    rows.truncate(LIST_TABLES_PAGE);
    let tables: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let mut t = Map::new();
            t.insert("name".into(), json!(r.first()));
            t.insert("engine".into(), json!(r.get(1)));
            if let Some(c) = r.get(2).and_then(Value::as_str).filter(|c| !c.is_empty()) {
                t.insert("comment".into(), json!(c));
            }
            for (i, key) in [(3, "total_rows"), (4, "total_bytes")] {
                if let Some(v) = r.get(i).filter(|v| !v.is_null()) {
                    t.insert(key.into(), JsonKind::of("UInt64").normalize(v.clone()));
                }
            }
            Value::Object(t)
        })
        .collect();
    let next = more.then(|| encode_cursor(database, like, offset + LIST_TABLES_PAGE));
    Ok(structured(json!({"tables": tables, "next_cursor": next})))
}

/// Columns of one table with their key membership; also serves the table resource.
pub async fn describe(ctx: &ToolContext<'_>, database: &str, table: &str) -> Result<Value, String> {
    let have = ctx
        .system_columns("columns")
        .await
        .map_err(|e| e.to_string())?;
    let optional = [
        "default_kind",
        "default_expression",
        "comment",
        "is_in_partition_key",
        "is_in_sorting_key",
        "is_in_primary_key",
        "is_in_sampling_key",
    ];
    let present: Vec<&str> = optional
        .iter()
        .copied()
        .filter(|c| have.iter().any(|h| h == c))
        .collect();
    let mut select = vec!["name", "type"];
    select.extend(&present);
    let sql = format!(
        "SELECT {} FROM system.columns WHERE database = {} AND table = {} ORDER BY position",
        select.join(", "),
        quote_string(database),
        quote_string(table)
    );
    let sql = if have.iter().any(|h| h == "position") {
        sql
    } else {
        sql.replace(" ORDER BY position", "")
    };
    let rows = ctx
        .metadata("describe_table", sql)
        .await
        .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Err(format!(
            "table {database}.{table} does not exist, or you may not see it"
        ));
    }
    let columns: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let mut c = Map::new();
            c.insert("name".into(), r.first().cloned().unwrap_or(Value::Null));
            c.insert("type".into(), r.get(1).cloned().unwrap_or(Value::Null));
            let mut keys = Vec::new();
            for (i, field) in present.iter().enumerate() {
                let v = r.get(i + 2).cloned().unwrap_or(Value::Null);
                match *field {
                    f if f.starts_with("is_in_") => {
                        if v.as_u64() == Some(1) || v.as_str() == Some("1") {
                            keys.push(
                                f.trim_start_matches("is_in_")
                                    .trim_end_matches("_key")
                                    .to_string(),
                            );
                        }
                    }
                    f => {
                        if v.as_str().is_some_and(|s| !s.is_empty()) {
                            c.insert(f.into(), v);
                        }
                    }
                }
            }
            c.insert("keys".into(), json!(keys));
            Value::Object(c)
        })
        .collect();
    Ok(json!({"database": database, "table": table, "columns": columns}))
}

async fn describe_table(
    ctx: &ToolContext<'_>,
    args: &Map<String, Value>,
) -> Result<CallOutcome, String> {
    let database = str_arg(args, "database")?;
    let table = str_arg(args, "table")?;
    Ok(structured(describe(ctx, database, table).await?))
}

/// Databases and tables the caller can see (the `clickhouse://schema` resource).
pub async fn schema_overview(ctx: &ToolContext<'_>) -> Result<Value, String> {
    let rows = ctx
        .metadata(
            "schema_resource",
            "SELECT database, name, engine FROM system.tables WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY database, name".into(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut dbs: Vec<(String, Vec<Value>)> = Vec::new();
    for r in rows {
        let db = r
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if dbs.last().map(|(d, _)| d != &db).unwrap_or(true) {
            dbs.push((db, Vec::new()));
        }
        if let Some((_, tables)) = dbs.last_mut() {
            tables.push(json!({"name": r.get(1), "engine": r.get(2)}));
        }
    }
    Ok(
        json!({"databases": dbs.into_iter().map(|(name, tables)| json!({"name": name, "tables": tables})).collect::<Vec<_>>()}),
    )
}

async fn run_view(
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

async fn run_insert(
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
        ctx.note(&e);
        return Err(e.to_string());
    }
    Ok(structured(json!({"inserted_rows": 1})))
}

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
    let columns = if rules.want_tables() || has_comment {
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
    } else {
        Vec::new()
    };
    let mut taken: HashMap<String, String> = statics
        .iter()
        .map(|e| (e.tool.name.to_string(), "a static tool".to_string()))
        .collect();
    let (dynamic_entries, warnings) = dynamic::build(rules, &objects, &columns, &mut taken);
    let mut entries = statics;
    entries.extend(dynamic_entries);
    Ok((Catalog::new(entries), warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_listing() {
        let c = encode_cursor("db", Some("a%"), 200);
        assert_eq!(decode_cursor(&c, "db", Some("a%")), Ok(200));
        assert!(decode_cursor(&c, "other", Some("a%")).is_err());
        assert!(decode_cursor("garbage!", "db", None).is_err());
    }
}

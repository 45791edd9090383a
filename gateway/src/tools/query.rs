//! `execute_query` and `write_query`: the SQL guards and the settings policy.

use serde_json::{Map, Value};

use super::args::{opt_str_arg, str_arg};
use super::context::ToolContext;
use super::next_step::{after_sql_refusal, with_next};
use super::outcome::CallOutcome;
use crate::clickhouse::settings::ReadOnly;
use crate::clickhouse::{policy, sql};
use crate::config::ResultFormat;

/// The checks both `execute_query` and `write_query` pass, on the query as ClickHouse
/// tokenizes it. Table functions and settings are checked for writes too: `INSERT ...
/// SELECT FROM url(...)` and `INSERT INTO FUNCTION url(...)` reach outside as a read would.
fn guard<'q>(ctx: &ToolContext<'_>, query: &'q str) -> Result<sql::TokenizedQuery<'q>, String> {
    let server = &ctx.config.server;
    sql::check_length(query, ctx.config.clickhouse.query_length_cap()).map_err(refused)?;
    let tokens = sql::TokenizedQuery::new(query).map_err(refused)?;
    tokens
        .check_blocked_clauses(&server.blocked_query_clauses)
        .map_err(refused)?;
    tokens
        .check_table_functions(&server.allowed_table_functions)
        .map_err(refused)?;
    policy::check_table_functions(&tokens, &server.allowed_table_functions)
        .map_err(|e| e.to_string())?;
    policy::check_settings(&tokens, &server.allowed_query_settings).map_err(|e| e.to_string())?;
    Ok(tokens)
}

/// A guard refusal as the caller reads it: what is wrong, then what to try next.
fn refused(e: sql::SqlError) -> String {
    with_next(e.to_string(), after_sql_refusal(&e))
}

pub(super) async fn execute_query(
    ctx: &ToolContext<'_>,
    args: &Map<String, Value>,
) -> Result<CallOutcome, String> {
    let query = str_arg(args, "query")?;
    guard(ctx, query)?
        .check_read_only(!ctx.config.clickhouse.read_only)
        .map_err(refused)?;
    let mut opts = ctx.options(
        "execute_query",
        query.to_string(),
        ReadOnly::Required,
        ctx.caps(),
    );
    if let Some(settings) = args.get("settings") {
        opts.settings = input_settings(settings, &ctx.config.server)?;
    }
    let format = match opt_str_arg(args, "result_format")? {
        None => ctx.config.server.result_format,
        Some("compact") => ResultFormat::Compact,
        Some("json") => ResultFormat::Json,
        Some(other) => {
            return Err(format!(
                "argument `result_format`: `{other}` is neither `compact` (CSV text) nor `json`"
            ))
        }
    };
    // After every other argument is checked, so an estimate refuses what the run would.
    // The settings a caller may pass (threads, block size, join algorithm…) change how a
    // query runs, not which parts it reads, so the estimate does not need them.
    match args.get("estimate") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => return super::budget::estimate_only(ctx, query).await,
        Some(_) => return Err("argument `estimate` must be true or false".into()),
    }
    Ok(ctx.rows_as("execute_query", opts, format).await)
}

/// The settings policy: a caller may set only `server.tool_input_settings`, each as a
/// string, number or boolean (sent as ClickHouse reads it: `true` is `1`), and only what
/// a `SETTINGS` clause could set too (`server.allowed_query_settings`, never a reserved
/// one).
fn input_settings(
    settings: &Value,
    server: &crate::config::ServerConfig,
) -> Result<Vec<(String, String)>, String> {
    let Value::Object(settings) = settings else {
        return Err("argument `settings` must be an object".into());
    };
    let allowed = &server.tool_input_settings;
    let mut out = Vec::with_capacity(settings.len());
    for (k, v) in settings {
        if !allowed.contains(k) {
            return Err(format!(
                "setting `{k}` cannot be passed in `settings` here: only server.tool_input_settings \
                 may ({}). Leave it out, or ask an administrator to add it to server.tool_input_settings",
                if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
            ));
        }
        policy::check_setting_name(k, &server.allowed_query_settings).map_err(|e| e.to_string())?;
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => u8::from(*b).to_string(),
            _ => return Err(format!("setting `{k}` must be a string, number or boolean")),
        };
        out.push((k.clone(), text));
    }
    Ok(out)
}

pub(super) async fn write_query(
    ctx: &ToolContext<'_>,
    args: &Map<String, Value>,
) -> Result<CallOutcome, String> {
    if ctx.config.clickhouse.read_only {
        return Err("writes are disabled on this server (clickhouse.read_only)".into());
    }
    let query = str_arg(args, "query")?;
    let tokens = guard(ctx, query)?;
    tokens.check_single_statement().map_err(refused)?;
    policy::check_write_engines(&tokens, &ctx.config.server.allowed_write_engines)
        .map_err(|e| e.to_string())?;
    let opts = ctx.options("write_query", query.to_string(), ReadOnly::Off, ctx.caps());
    Ok(ctx.rows("write_query", opts).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_allowed_settings_pass_and_booleans_become_digits() {
        let allowed = crate::config::ServerConfig {
            tool_input_settings: vec![
                "max_threads".to_string(),
                "use_uncompressed_cache".to_string(),
            ],
            ..Default::default()
        };
        assert_eq!(
            input_settings(
                &json!({"max_threads": 2, "use_uncompressed_cache": true}),
                &allowed
            ),
            Ok(vec![
                ("max_threads".to_string(), "2".to_string()),
                ("use_uncompressed_cache".to_string(), "1".to_string())
            ])
        );
        let refused = input_settings(&json!({"readonly": 0}), &allowed).unwrap_err();
        assert!(refused.contains("`readonly`"), "{refused}");
        assert!(input_settings(&json!({"max_threads": [1]}), &allowed)
            .unwrap_err()
            .contains("`max_threads`"));
        assert!(input_settings(&json!("x"), &allowed).is_err());
    }

    #[test]
    fn tool_input_settings_obey_the_query_settings_policy_too() {
        // Validation refuses these at startup; the request path refuses them again.
        let server = crate::config::ServerConfig {
            tool_input_settings: vec![
                "log_comment".to_string(),
                "max_threads".to_string(),
                "max_memory_usage".to_string(),
            ],
            ..Default::default()
        };
        let e = input_settings(&json!({"log_comment": "x"}), &server).unwrap_err();
        assert!(e.contains("`log_comment`") && e.contains("never"), "{e}");
        let e = input_settings(&json!({"max_memory_usage": 1}), &server).unwrap_err();
        assert!(e.contains("server.allowed_query_settings"), "{e}");
        assert!(input_settings(&json!({"max_threads": 1}), &server).is_ok());
    }
}

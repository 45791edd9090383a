//! The schema tools (`list_databases`, `list_tables`, `describe_table`) and the
//! schema resources they share code with.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::args::{opt_str_arg, str_arg};
use super::context::ToolContext;
use super::outcome::{structured, structured_with_text, CallOutcome};
use super::result::csv_field;
use super::schema::LIST_TABLES_PAGE;
use crate::clickhouse::sql::quote_string;
use crate::clickhouse::types::JsonKind;
use crate::clickhouse::QueryError;
use crate::config::ResultFormat;

/// Why a table's description is not there: it is not visible to the caller, or
/// ClickHouse did not answer (an outage is not a missing table).
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error("table {database}.{table} does not exist, or you may not see it")]
    NotFound { database: String, table: String },
    #[error(transparent)]
    Query(#[from] QueryError),
}

pub(super) async fn list_databases(ctx: &ToolContext<'_>) -> Result<CallOutcome, String> {
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
        .map(|r| Value::Object(named_object(&r)))
        .collect();
    Ok(structured(json!({"databases": dbs})))
}

/// A database or table row (`name, engine, comment, ...`) as listed: the comment only
/// when there is one.
fn named_object(r: &[Value]) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("name".into(), json!(r.first()));
    o.insert("engine".into(), json!(r.get(1)));
    if let Some(c) = r.get(2).and_then(Value::as_str).filter(|c| !c.is_empty()) {
        o.insert("comment".into(), json!(c));
    }
    o
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

pub(super) async fn list_tables(
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
            let mut t = named_object(&r);
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
pub async fn describe(
    ctx: &ToolContext<'_>,
    database: &str,
    table: &str,
) -> Result<Value, DescribeError> {
    let have = ctx.system_columns("columns").await?;
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
    let rows = ctx.metadata("describe_table", sql).await?;
    if rows.is_empty() {
        return Err(DescribeError::NotFound {
            database: database.to_string(),
            table: table.to_string(),
        });
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

pub(super) async fn describe_table(
    ctx: &ToolContext<'_>,
    args: &Map<String, Value>,
) -> Result<CallOutcome, String> {
    let database = str_arg(args, "database")?;
    let table = str_arg(args, "table")?;
    let v = describe(ctx, database, table)
        .await
        .map_err(|e| e.to_string())?;
    Ok(match ctx.config.server.result_format {
        ResultFormat::Compact => {
            let text = describe_text(&v);
            structured_with_text(v, text)
        }
        ResultFormat::Json => structured(v),
    })
}

/// A described column's `keys` (the `is_in_*_key` flags it is in), as named.
pub(crate) fn column_keys(c: &Value) -> Vec<&str> {
    c["keys"]
        .as_array()
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `describe_table`'s compact text: one CSV line per column (name, type, keys, default,
/// comment) under a header line; the JSON stays in `structuredContent`.
fn describe_text(v: &Value) -> String {
    let empty = Vec::new();
    let columns = v["columns"].as_array().unwrap_or(&empty);
    let mut out = format!(
        "{}.{}: {} column(s)\nname,type,keys,default,comment\n",
        v["database"].as_str().unwrap_or_default(),
        v["table"].as_str().unwrap_or_default(),
        columns.len()
    );
    for c in columns {
        let keys = column_keys(c);
        let default = match (c["default_kind"].as_str(), c["default_expression"].as_str()) {
            (Some(k), Some(e)) => json!(format!("{k} {e}")),
            (Some(k), None) => json!(k),
            _ => Value::Null,
        };
        let cells = [
            c["name"].clone(),
            c["type"].clone(),
            if keys.is_empty() {
                Value::Null
            } else {
                json!(keys.join(" "))
            },
            default,
            c.get("comment").cloned().unwrap_or(Value::Null),
        ];
        let line: Vec<String> = cells.iter().map(csv_field).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_text_is_one_csv_line_per_column() {
        let v = json!({"database": "db", "table": "t", "columns": [
            {"name": "id", "type": "UInt64", "keys": ["sorting", "primary"]},
            {"name": "note", "type": "String", "keys": [], "default_kind": "DEFAULT", "default_expression": "''", "comment": "free, text"}
        ]});
        assert_eq!(
            describe_text(&v),
            "db.t: 2 column(s)\nname,type,keys,default,comment\nid,UInt64,sorting primary,,\nnote,String,,DEFAULT '',\"free, text\""
        );
    }

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_listing() {
        let c = encode_cursor("db", Some("a%"), 200);
        assert_eq!(decode_cursor(&c, "db", Some("a%")), Ok(200));
        assert!(decode_cursor(&c, "other", Some("a%")).is_err());
        assert!(decode_cursor("garbage!", "db", None).is_err());
    }
}

//! The MCP resources: `clickhouse://schema` (the databases and tables a caller can see)
//! and the `clickhouse://table/{database}/{table}` template (served by
//! `listing::describe`, like `describe_table`).

use serde_json::{json, Value};

use super::context::ToolContext;
use crate::clickhouse::sql::SYSTEM_DATABASES;

pub const SCHEMA_URI: &str = "clickhouse://schema";
pub const TABLE_TEMPLATE: &str = "clickhouse://table/{database}/{table}";
const TABLE_URI_PREFIX: &str = "clickhouse://table/";

/// Databases and tables the caller can see (the `clickhouse://schema` resource).
pub async fn schema_overview(ctx: &ToolContext<'_>) -> Result<Value, String> {
    let rows = ctx
        .metadata(
            "schema_resource",
            format!("SELECT database, name, engine FROM system.tables WHERE database NOT IN {SYSTEM_DATABASES} ORDER BY database, name"),
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

/// A `clickhouse://table/{database}/{table}` resource URI, its segments decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUri {
    pub database: String,
    pub table: String,
}

impl TableUri {
    /// `None` when the URI is not a table URI, or a segment does not decode to UTF-8.
    /// Segments are `%XX`-escaped (table names may hold any character, `/` included);
    /// a `%` not followed by two hex digits stays as written.
    pub fn parse(uri: &str) -> Option<Self> {
        let (db, table) = uri.strip_prefix(TABLE_URI_PREFIX)?.split_once('/')?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        };
        Some(Self {
            database: decode(db)?,
            table: decode(table)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(uri: &str) -> Option<(String, String)> {
        TableUri::parse(uri).map(|t| (t.database, t.table))
    }

    #[test]
    fn table_uri_segments_are_percent_decoded() {
        let t = |d: &str, n: &str| Some((d.to_string(), n.to_string()));
        assert_eq!(
            table("clickhouse://table/db/my%20table"),
            t("db", "my table")
        );
        assert_eq!(table("clickhouse://table/db/plain"), t("db", "plain"));
        assert_eq!(table("clickhouse://table/db/bad%zz"), t("db", "bad%zz"));
        assert_eq!(table("clickhouse://table/db/end%2"), t("db", "end%2"));
        assert_eq!(table("clickhouse://table/d%2Fb/a/b"), t("d/b", "a/b"));
        // A `%` followed by a multi-byte character: once a panic (byte slicing).
        assert_eq!(table("clickhouse://table/x/%a\u{e9}"), t("x", "%a\u{e9}"));
        assert_eq!(
            table("clickhouse://table/x/%\u{e9}\u{e9}"),
            t("x", "%\u{e9}\u{e9}")
        );
        // Escapes that decode to invalid UTF-8 name no table.
        assert_eq!(table("clickhouse://table/x/%ff"), None);
        assert_eq!(table("clickhouse://table/only-db"), None);
        assert_eq!(table("clickhouse://schema"), None);
    }
}

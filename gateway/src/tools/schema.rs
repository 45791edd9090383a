//! The static tools: names, titles, schemas and annotations (part of the product's
//! interface), and how `server.tools` rules select them.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{json, Value};

use super::{Action, Entry};
use crate::config::{Config, ToolRule};

/// Page size of `list_tables` (docs/spec-notes.md, "Results").
pub const LIST_TABLES_PAGE: usize = 100;

pub fn object(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

/// A strict input schema: every property listed in `required` unless optional.
pub fn input_schema(props: Vec<(&str, Value)>, required: &[&str]) -> Arc<JsonObject> {
    let properties: serde_json::Map<String, Value> =
        props.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    object(json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    }))
}

/// The shape every row-returning tool answers with.
pub fn rows_output_schema() -> Arc<JsonObject> {
    object(json!({
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
                "required": ["name", "type"]
            }},
            "rows": {"type": "array", "items": {"type": "array"}},
            "row_count": {"type": "integer"},
            "elapsed_ms": {"type": "integer"},
            "truncated": {"type": "object", "properties": {
                "reason": {"type": "string", "enum": ["max_result_rows", "max_result_bytes"]},
                "limit": {"type": "integer"},
                "returned_rows": {"type": "integer"},
                "returned_bytes": {"type": "integer"}
            }, "required": ["reason", "limit", "returned_rows", "returned_bytes"]}
        },
        "required": ["columns", "rows", "row_count"]
    }))
}

pub fn read_annotations(title: &str) -> ToolAnnotations {
    ToolAnnotations::with_title(title)
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false)
}

pub fn write_annotations(title: &str) -> ToolAnnotations {
    ToolAnnotations::with_title(title)
        .read_only(false)
        .destructive(true)
        .idempotent(false)
        .open_world(false)
}

fn tool(
    name: &'static str,
    title: &str,
    description: &str,
    input: Arc<JsonObject>,
    output: Arc<JsonObject>,
    ann: ToolAnnotations,
) -> Tool {
    Tool::new(name, description.to_string(), input)
        .with_title(title)
        .with_raw_output_schema(output)
        .with_annotations(ann)
}

/// The static tools this configuration serves, in a stable order.
pub fn static_entries(c: &Config) -> Vec<Entry> {
    let named: Vec<&str> = c
        .server
        .tools
        .iter()
        .filter_map(|r: &ToolRule| r.name.as_deref())
        .collect();
    // A rule list that names no static tool keeps them all (view rules only add tools).
    let wanted = |n: &str| named.is_empty() || named.contains(&n);
    let mut out = Vec::new();

    if wanted("execute_query") {
        let mut props = vec![
            (
                "query",
                json!({"type": "string", "description": "One read-only ClickHouse SQL statement (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN)."}),
            ),
            (
                "result_format",
                json!({"type": "string", "enum": ["compact", "json"], "description": "Text of the answer: CSV with a header line (compact), or JSON."}),
            ),
        ];
        if !c.server.tool_input_settings.is_empty() {
            let settings: serde_json::Map<String, Value> = c
                .server
                .tool_input_settings
                .iter()
                .map(|s| (s.clone(), json!({"type": ["string", "number", "boolean"]})))
                .collect();
            props.push((
                "settings",
                json!({"type": "object", "description": "ClickHouse settings for this query.", "properties": settings, "additionalProperties": false}),
            ));
        }
        out.push(Entry {
            tool: tool(
                "execute_query",
                "Run a read-only SQL query",
                "Runs one read-only SQL statement on ClickHouse and returns columns and rows. Results are capped; aggregate or add LIMIT for large tables.",
                input_schema(props, &["query"]),
                rows_output_schema(),
                read_annotations("Run a read-only SQL query"),
            ),
            action: Action::ExecuteQuery,
        });
    }
    if wanted("write_query") && !c.clickhouse.read_only {
        out.push(Entry {
            tool: tool(
                "write_query",
                "Run a SQL statement that changes data",
                "Runs one SQL statement of any kind (INSERT, CREATE, ALTER, DROP, ...) on ClickHouse. It can change or destroy data.",
                input_schema(vec![("query", json!({"type": "string", "description": "One ClickHouse SQL statement."}))], &["query"]),
                rows_output_schema(),
                write_annotations("Run a SQL statement that changes data"),
            ),
            action: Action::WriteQuery,
        });
    }
    if wanted("list_databases") {
        out.push(Entry {
            tool: tool(
                "list_databases",
                "List databases",
                "Lists the databases you can see, with engine and comment where the server has them.",
                input_schema(vec![], &[]),
                object(json!({"type": "object", "properties": {"databases": {"type": "array", "items": {"type": "object"}}}, "required": ["databases"]})),
                read_annotations("List databases"),
            ),
            action: Action::ListDatabases,
        });
    }
    if wanted("list_tables") {
        out.push(Entry {
            tool: tool(
                "list_tables",
                "List tables in a database",
                "Lists tables of one database (a page of 100 at a time) with engine, comment and total rows/bytes where known. Pass next_cursor back as cursor for the next page.",
                input_schema(
                    vec![
                        ("database", json!({"type": "string", "description": "Database name."})),
                        ("like", json!({"type": "string", "description": "Optional SQL LIKE pattern on the table name, e.g. 'events%'."})),
                        ("cursor", json!({"type": "string", "description": "next_cursor from the previous page."})),
                    ],
                    &["database"],
                ),
                object(json!({"type": "object", "properties": {
                    "tables": {"type": "array", "items": {"type": "object"}},
                    "next_cursor": {"type": ["string", "null"]}
                }, "required": ["tables"]})),
                read_annotations("List tables in a database"),
            ),
            action: Action::ListTables,
        });
    }
    if wanted("describe_table") {
        out.push(Entry {
            tool: tool(
                "describe_table",
                "Describe a table's columns",
                "Shows a table's columns: name, type, default kind and expression, comment, and which keys each belongs to.",
                input_schema(
                    vec![
                        ("database", json!({"type": "string", "description": "Database name."})),
                        ("table", json!({"type": "string", "description": "Table name."})),
                    ],
                    &["database", "table"],
                ),
                object(json!({"type": "object", "properties": {
                    "database": {"type": "string"}, "table": {"type": "string"},
                    "columns": {"type": "array", "items": {"type": "object"}}
                }, "required": ["database", "table", "columns"]})),
                read_annotations("Describe a table's columns"),
            ),
            action: Action::DescribeTable,
        });
    }
    super::result_view::link(c, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ToolKind;

    fn names(c: &Config) -> Vec<String> {
        static_entries(c)
            .iter()
            .map(|e| e.tool.name.to_string())
            .collect()
    }

    #[test]
    fn all_static_tools_by_default_and_write_hidden_when_read_only() {
        let mut c = Config::default();
        assert_eq!(
            names(&c),
            [
                "execute_query",
                "write_query",
                "list_databases",
                "list_tables",
                "describe_table"
            ]
        );
        c.clickhouse.read_only = true;
        assert!(!names(&c).contains(&"write_query".to_string()));
    }

    #[test]
    fn naming_a_static_tool_serves_exactly_the_named_ones() {
        let mut c = Config::default();
        let rule = |name: Option<&str>, view: Option<&str>| ToolRule {
            kind: ToolKind::Read,
            name: name.map(Into::into),
            view_regexp: view.map(Into::into),
            table_regexp: None,
            mode: None,
            prefix: String::new(),
        };
        c.server.tools = vec![rule(None, Some("a\\..*"))];
        assert_eq!(names(&c).len(), 5, "view rules only add tools");
        c.server.tools.push(rule(Some("list_tables"), None));
        assert_eq!(names(&c), ["list_tables"]);
    }

    #[test]
    fn every_schema_is_strict_and_titled() {
        let mut c = Config::default();
        c.server.tool_input_settings = vec!["max_threads".into()];
        for e in static_entries(&c) {
            let s = &e.tool.input_schema;
            assert_eq!(s["additionalProperties"], json!(false), "{}", e.tool.name);
            assert!(s["required"].is_array());
            assert!(e.tool.title.is_some());
            assert!(e.tool.output_schema.is_some());
        }
        let exec = static_entries(&c).into_iter().next().unwrap();
        assert_eq!(
            exec.tool.input_schema["properties"]["settings"]["properties"]["max_threads"]["type"],
            json!(["string", "number", "boolean"])
        );
        let ann = exec.tool.annotations.unwrap();
        assert_eq!(
            (
                ann.read_only_hint,
                ann.destructive_hint,
                ann.idempotent_hint,
                ann.open_world_hint
            ),
            (Some(true), Some(false), Some(true), Some(false))
        );
    }

    #[test]
    fn settings_absent_from_schema_when_none_allowed() {
        let e = static_entries(&Config::default())
            .into_iter()
            .next()
            .unwrap();
        assert!(e.tool.input_schema["properties"].get("settings").is_none());
    }
}

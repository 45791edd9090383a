//! Dynamic tools: ClickHouse views become read tools and tables become insert tools,
//! according to `server.tools` rules, discovered with the caller's own credentials.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{json, Value};

use super::schema::{
    input_schema, object, read_annotations, rows_output_schema, write_annotations,
};
use super::{Action, Entry};
use crate::clickhouse::types::JsonKind;
use crate::config::{ToolKind, ToolRule};

/// MCP clients reject longer tool names.
pub const MAX_TOOL_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct ViewTool {
    pub database: String,
    pub view: String,
    /// `{name:Type}` placeholders of a parameterized view, in order of appearance.
    pub params: Vec<(String, String)>,
    /// The view's columns (name, comment or ""): what schema search finds it by.
    pub columns: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InsertTool {
    pub database: String,
    pub table: String,
    /// (name, type, required): columns without a default are required.
    pub columns: Vec<(String, String, bool)>,
}

/// A row of `system.tables` as discovery reads it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectRow {
    pub database: String,
    pub name: String,
    pub engine: String,
    pub create_query: String,
    pub comment: Option<String>,
}

/// A row of `system.columns` as discovery reads it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColumnRow {
    pub database: String,
    pub table: String,
    pub name: String,
    pub ch_type: String,
    pub default_kind: String,
    pub comment: Option<String>,
}

/// What an object's comment says: plain text, or `{"title","description","params"}`.
#[derive(Debug, Default, PartialEq)]
struct Described {
    title: Option<String>,
    description: Option<String>,
    params: HashMap<String, String>,
}

fn describe(comment: Option<&str>) -> Described {
    let Some(text) = comment.map(str::trim).filter(|t| !t.is_empty()) else {
        return Described::default();
    };
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) {
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let params = m
            .get("params")
            .and_then(Value::as_object)
            .map(|p| {
                p.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        return Described {
            title: s("title"),
            description: s("description"),
            params,
        };
    }
    Described {
        title: None,
        description: Some(text.to_string()),
        params: HashMap::new(),
    }
}

/// `prefix + database + "_" + object` as snake_case, at most 64 characters.
pub fn tool_name(prefix: &str, database: &str, object: &str) -> String {
    let raw = format!("{prefix}{database}_{object}");
    let mut out = String::with_capacity(raw.len());
    let mut prev_lower = false;
    for c in raw.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            prev_lower = false;
        }
    }
    let trimmed: String = out.trim_matches('_').chars().take(MAX_TOOL_NAME).collect();
    trimmed.trim_end_matches('_').to_string()
}

/// `{name:Type}` placeholders in a view's definition.
pub fn view_params(create_query: &str) -> Vec<(String, String)> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let Some(re) =
        RE.get_or_init(|| Regex::new(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}").ok())
    else {
        return Vec::new();
    };
    let mut seen = HashSet::new();
    re.captures_iter(create_query)
        .filter(|c| seen.insert(c[1].to_string()))
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .collect()
}

/// One discovery rule with its regex compiled: a view rule (read tools) or a table rule
/// (insert tools).
#[derive(Debug, Clone)]
struct CompiledRule {
    prefix: String,
    /// Anchored: the whole `database.name` must match.
    matcher: Regex,
    want_view: bool,
}

/// The `server.tools` rules that drive discovery, compiled once per configuration
/// generation: a discovery runs for every new token, and compiling the regexes there
/// cost more CPU than the rest of building the catalog.
#[derive(Debug, Clone, Default)]
pub struct ToolRules(Vec<CompiledRule>);

impl ToolRules {
    /// Rules without a view or table regexp (the static tools' rules) are not kept, nor
    /// are write rules when `read_only` (`clickhouse.read_only`: no insert tool is listed).
    /// Config validation has already rejected a regexp that does not compile; should one
    /// slip through, its rule matches nothing rather than failing every discovery.
    pub fn compile(rules: &[ToolRule], read_only: bool) -> Self {
        let compiled = rules
            .iter()
            .filter_map(|rule| {
                let (pattern, want_view) = match (rule.kind, &rule.view_regexp, &rule.table_regexp)
                {
                    (ToolKind::Read, Some(p), _) => (p, true),
                    (ToolKind::Write, _, Some(p)) if !read_only => (p, false),
                    _ => return None,
                };
                let matcher = Regex::new(&format!("^(?:{pattern})$")).ok()?;
                Some(CompiledRule {
                    prefix: rule.prefix.clone(),
                    matcher,
                    want_view,
                })
            })
            .collect();
        Self(compiled)
    }

    /// Whether any rule asks for discovery at all (else the catalog is static).
    pub fn need_discovery(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether insert tools are wanted, which need the tables' columns.
    pub fn want_tables(&self) -> bool {
        self.0.iter().any(|r| !r.want_view)
    }
}

/// Builds the dynamic tools from what discovery read. Pure; `taken` holds names
/// already in use (the static tools) and gains the new ones. Returns warnings too.
pub fn build(
    rules: &ToolRules,
    objects: &[ObjectRow],
    columns: &[ColumnRow],
    taken: &mut HashMap<String, String>,
) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    fn cols_of<'a>(
        columns: &'a [ColumnRow],
        db: &'a str,
        t: &'a str,
    ) -> impl Iterator<Item = &'a ColumnRow> {
        columns
            .iter()
            .filter(move |c| c.database == db && c.table == t)
    }
    for rule in &rules.0 {
        let want_view = rule.want_view;
        for o in objects {
            let is_view = o.engine == "View";
            let is_table = !is_view
                && !matches!(
                    o.engine.as_str(),
                    "MaterializedView" | "Dictionary" | "LiveView" | "WindowView"
                );
            if (want_view && !is_view)
                || (!want_view && !is_table)
                || !rule.matcher.is_match(&format!("{}.{}", o.database, o.name))
            {
                continue;
            }
            let name = tool_name(&rule.prefix, &o.database, &o.name);
            let qualified = format!("{}.{}", o.database, o.name);
            if let Some(other) = taken.get(&name) {
                warnings.push(format!("tool name `{name}` of {qualified} collides with {other}; {qualified} is skipped"));
                continue;
            }
            let d = describe(o.comment.as_deref());
            let col_comments: HashMap<&str, &str> = cols_of(columns, &o.database, &o.name)
                .filter_map(|c| Some((c.name.as_str(), c.comment.as_deref()?)))
                .collect();
            let entry = if want_view {
                let params = view_params(&o.create_query);
                let props = params
                    .iter()
                    .map(|(p, t)| {
                        let mut s = JsonKind::of(t).schema();
                        if let Some(text) = d
                            .params
                            .get(p)
                            .map(String::as_str)
                            .or_else(|| col_comments.get(p.as_str()).copied())
                        {
                            with_description(&mut s, text);
                        }
                        (p.as_str(), s)
                    })
                    .collect();
                let required: Vec<&str> = params.iter().map(|(p, _)| p.as_str()).collect();
                let title = d
                    .title
                    .clone()
                    .unwrap_or_else(|| format!("Query view {qualified}"));
                let description = d
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("Returns the rows of the view {qualified}."));
                Entry {
                    tool: rmcp::model::Tool::new(
                        name.clone(),
                        description,
                        input_schema(props, &required),
                    )
                    .with_title(title.clone())
                    .with_raw_output_schema(rows_output_schema())
                    .with_annotations(read_annotations(&title)),
                    action: Action::View(ViewTool {
                        database: o.database.clone(),
                        view: o.name.clone(),
                        params,
                        columns: cols_of(columns, &o.database, &o.name)
                            .map(|c| (c.name.clone(), c.comment.clone().unwrap_or_default()))
                            .collect(),
                    }),
                }
            } else {
                let mut cols = Vec::new();
                let mut props = Vec::new();
                for c in cols_of(columns, &o.database, &o.name) {
                    if matches!(
                        c.default_kind.as_str(),
                        "MATERIALIZED" | "ALIAS" | "EPHEMERAL"
                    ) {
                        continue;
                    }
                    if !JsonKind::is_supported_argument(&c.ch_type) {
                        warnings.push(format!("{qualified}.{} has type {}, which insert tools do not support; the column is skipped", c.name, c.ch_type));
                        continue;
                    }
                    let mut s = JsonKind::of(&c.ch_type).schema();
                    if let Some(text) = d
                        .params
                        .get(&c.name)
                        .or(c.comment.as_ref())
                        .filter(|t| !t.is_empty())
                    {
                        with_description(&mut s, text);
                    }
                    props.push((c.name.clone(), s));
                    cols.push((c.name.clone(), c.ch_type.clone(), c.default_kind.is_empty()));
                }
                let required: Vec<&str> =
                    cols.iter().filter(|c| c.2).map(|c| c.0.as_str()).collect();
                let props: Vec<(&str, Value)> =
                    props.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                let title = d
                    .title
                    .clone()
                    .unwrap_or_else(|| format!("Insert a row into {qualified}"));
                let description = d
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("Inserts one row into the table {qualified}."));
                Entry {
                    tool: rmcp::model::Tool::new(name.clone(), description, input_schema(props, &required))
                        .with_title(title.clone())
                        .with_raw_output_schema(object(json!({"type": "object", "properties": {"inserted_rows": {"type": "integer"}}, "required": ["inserted_rows"]})))
                        .with_annotations(write_annotations(&title)),
                    action: Action::Insert(InsertTool { database: o.database.clone(), table: o.name.clone(), columns: cols }),
                }
            };
            taken.insert(name, qualified);
            entries.push(entry);
        }
    }
    (entries, warnings)
}

/// Adds a `description` to a property schema (always an object, from `JsonKind::schema`).
fn with_description(schema: &mut Value, text: &str) {
    if let Value::Object(m) = schema {
        m.insert("description".into(), json!(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(db: &str, name: &str, query: &str, comment: Option<&str>) -> ObjectRow {
        ObjectRow {
            database: db.into(),
            name: name.into(),
            engine: "View".into(),
            create_query: query.into(),
            comment: comment.map(Into::into),
        }
    }

    fn read_rule(re: &str, prefix: &str) -> ToolRule {
        ToolRule {
            kind: ToolKind::Read,
            name: None,
            view_regexp: Some(re.into()),
            table_regexp: None,
            mode: None,
            prefix: prefix.into(),
        }
    }

    #[test]
    fn names_are_snake_case_and_bounded() {
        assert_eq!(
            tool_name("ro_", "analytics", "DailyUsers"),
            "ro_analytics_daily_users"
        );
        assert_eq!(tool_name("", "my-db", "events.v2"), "my_db_events_v2");
        assert_eq!(tool_name("", &"d".repeat(40), &"t".repeat(40)).len(), 64);
    }

    #[test]
    fn parameterized_view_gives_typed_required_params() {
        let objs = [view("analytics", "by_day", "CREATE VIEW analytics.by_day AS SELECT * FROM t WHERE d = {day:Date} AND n > {min_n:UInt32} AND d2 = {day:Date}", None)];
        let (entries, warnings) = build(
            &ToolRules::compile(&[read_rule("analytics\\..*", "ro_")], false),
            &objs,
            &[],
            &mut HashMap::new(),
        );
        assert!(warnings.is_empty());
        let e = &entries[0];
        assert_eq!(e.tool.name, "ro_analytics_by_day");
        assert_eq!(e.tool.input_schema["required"], json!(["day", "min_n"]));
        assert_eq!(e.tool.input_schema["properties"]["day"]["format"], "date");
        assert_eq!(
            e.tool.input_schema["properties"]["min_n"]["type"],
            "integer"
        );
        assert_eq!(
            e.tool.annotations.as_ref().unwrap().read_only_hint,
            Some(true)
        );
    }

    #[test]
    fn json_comment_supplies_title_description_and_param_text() {
        let comment = r#"{"title": "Daily users", "description": "Users per day", "params": {"day": "The day"}}"#;
        let objs = [view("a", "v", "SELECT {day:Date}", Some(comment))];
        let (entries, _) = build(
            &ToolRules::compile(&[read_rule("a\\.v", "")], false),
            &objs,
            &[],
            &mut HashMap::new(),
        );
        assert_eq!(entries[0].tool.title.as_deref(), Some("Daily users"));
        assert_eq!(
            entries[0].tool.description.as_deref(),
            Some("Users per day")
        );
        assert_eq!(
            entries[0].tool.input_schema["properties"]["day"]["description"],
            "The day"
        );
    }

    #[test]
    fn regex_is_anchored_and_tables_are_not_views() {
        let objs = [
            view("analytics", "v", "", None),
            view("other_analytics", "v", "", None),
            ObjectRow {
                database: "analytics".into(),
                name: "t".into(),
                engine: "MergeTree".into(),
                ..Default::default()
            },
        ];
        let (entries, _) = build(
            &ToolRules::compile(&[read_rule("analytics\\..*", "")], false),
            &objs,
            &[],
            &mut HashMap::new(),
        );
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn collisions_are_skipped_with_a_warning_naming_both() {
        let objs = [view("a", "b_c", "", None), view("a_b", "c", "", None)];
        let (entries, warnings) = build(
            &ToolRules::compile(&[read_rule(".*", "")], false),
            &objs,
            &[],
            &mut HashMap::new(),
        );
        assert_eq!(entries.len(), 1);
        assert!(
            warnings[0].contains("a_b.c") && warnings[0].contains("a.b_c"),
            "{warnings:?}"
        );
    }

    #[test]
    fn static_names_win_over_dynamic_ones() {
        let mut taken =
            HashMap::from([("execute_query".to_string(), "the static tool".to_string())]);
        let (entries, warnings) = build(
            &ToolRules::compile(&[read_rule(".*", "")], false),
            &[view("execute", "query", "", None)],
            &[],
            &mut taken,
        );
        assert!(entries.is_empty());
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn read_only_servers_list_no_insert_tools() {
        let write = ToolRule {
            kind: ToolKind::Write,
            name: None,
            view_regexp: None,
            table_regexp: Some(".*".into()),
            mode: None,
            prefix: "add_".into(),
        };
        let read_only = ToolRules::compile(&[write.clone(), read_rule(".*", "ro_")], true);
        assert!(
            !read_only.want_tables(),
            "clickhouse.read_only drops write rules"
        );
        assert!(read_only.need_discovery(), "read rules stay");
        assert!(ToolRules::compile(&[write], false).want_tables());
    }

    #[test]
    fn insert_tool_requires_columns_without_default_and_skips_unsupported() {
        let objs = [ObjectRow {
            database: "app".into(),
            name: "events".into(),
            engine: "MergeTree".into(),
            ..Default::default()
        }];
        let col = |n: &str, t: &str, k: &str| ColumnRow {
            database: "app".into(),
            table: "events".into(),
            name: n.into(),
            ch_type: t.into(),
            default_kind: k.into(),
            comment: None,
        };
        let cols = [
            col("id", "UInt64", ""),
            col("at", "DateTime", "DEFAULT"),
            col("m", "Map(String, String)", ""),
            col("x", "String", "MATERIALIZED"),
        ];
        let rule = ToolRule {
            kind: ToolKind::Write,
            name: None,
            view_regexp: None,
            table_regexp: Some("app\\.events".into()),
            mode: None,
            prefix: "add_".into(),
        };
        let (entries, warnings) = build(
            &ToolRules::compile(&[rule], false),
            &objs,
            &cols,
            &mut HashMap::new(),
        );
        let e = &entries[0];
        assert_eq!(e.tool.name, "add_app_events");
        assert_eq!(e.tool.input_schema["required"], json!(["id"]));
        assert!(e.tool.input_schema["properties"].get("at").is_some());
        assert!(e.tool.input_schema["properties"].get("m").is_none());
        assert!(e.tool.input_schema["properties"].get("x").is_none());
        assert_eq!(
            e.tool.annotations.as_ref().unwrap().destructive_hint,
            Some(true)
        );
        assert_eq!(warnings.len(), 1);
    }
}

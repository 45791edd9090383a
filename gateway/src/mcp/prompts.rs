//! Prompts (`prompts/list`, `prompts/get`) and completions (`completion/complete`),
//! filled from what the caller's own credentials show (gateway.md, "Context economy"):
//! a prompt names only tables the caller can read, a completion offers only them. The
//! texts and the matching are pure; the `handle*` functions do the reads.

use serde_json::{json, Map, Value};

use super::dispatch::{decorate, params_obj, required_str, RpcError};
use super::protocol::{self, Era};
use crate::clickhouse::sql::{quote_string, SYSTEM_DATABASES};
use crate::identity::{RequestCredentials, RequestIdentity};
use crate::tools::context::ToolEnv;
use crate::tools::fleet::{fleet_clusters, CLUSTER_ARG};
use crate::tools::listing::{column_keys, describe};
use crate::tools::resources::TABLE_TEMPLATE;
use crate::tools::ToolContext;

/// Most values one completion returns (MCP's own limit).
pub const MAX_COMPLETIONS: usize = 100;
/// Most tables a prompt names (more would crowd the context the prompt is meant to save).
const MAX_TABLES_IN_PROMPT: usize = 60;

/// One prompt argument: name, description, required.
type Arg = (&'static str, &'static str, bool);

#[derive(Debug)]
struct PromptDef {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    args: &'static [Arg],
}

const PROMPTS: &[PromptDef] = &[
    PromptDef {
        name: "explore_database",
        title: "Explore a database",
        description: "Survey one database: its tables, what each holds, and how they relate.",
        args: &[("database", "The database to explore.", true)],
    },
    PromptDef {
        name: "investigate_table",
        title: "Investigate a table",
        description: "Learn one table: its shape, keys, value ranges and recent rows, cheap queries first.",
        args: &[
            ("database", "The table's database.", true),
            ("table", "The table.", true),
        ],
    },
    PromptDef {
        name: "draft_query",
        title: "Draft and check a query",
        description: "Write one ClickHouse SQL query for a question and check it against the schema before running it.",
        args: &[
            ("question", "What the query should answer.", true),
            ("database", "The database to use (optional).", false),
        ],
    },
];

/// `prompts/list`'s prompts; on the fleet connector each takes a `cluster` first.
pub fn prompt_list(fleet: bool) -> Value {
    let prompts: Vec<Value> = PROMPTS
        .iter()
        .map(|p| {
            let mut args: Vec<Value> = Vec::new();
            if fleet {
                args.push(json!({"name": CLUSTER_ARG, "description": "The cluster (list_clusters names them).", "required": true}));
            }
            args.extend(p.args.iter().map(
                |(n, d, r)| json!({"name": n, "description": d, "required": r}),
            ));
            json!({"name": p.name, "title": p.title, "description": p.description, "arguments": args})
        })
        .collect();
    json!({ "prompts": prompts })
}

fn def(name: &str) -> Result<&'static PromptDef, RpcError> {
    PROMPTS.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = PROMPTS.iter().map(|p| p.name).collect();
        RpcError::new(
            protocol::INVALID_PARAMS,
            format!(
                "params.name: unknown prompt `{name}`; prompts/list has {}",
                names.join(", ")
            ),
        )
    })
}

/// The prompt's arguments as strings, every required one present.
fn prompt_args(
    d: &PromptDef,
    p: &Map<String, Value>,
    fleet: bool,
) -> Result<Map<String, Value>, RpcError> {
    let args = super::dispatch::arguments_obj(p, "params.arguments must be an object of strings")?;
    let cluster: Arg = (CLUSTER_ARG, "", true);
    let declared = fleet.then_some(&cluster).into_iter().chain(d.args.iter());
    for (n, _, required) in declared.clone() {
        match args.get(*n) {
            Some(Value::String(s)) if !s.is_empty() => {}
            None if !required => {}
            Some(_) => {
                return Err(RpcError::new(
                    protocol::INVALID_PARAMS,
                    format!("params.arguments.{n} must be a non-empty string"),
                ))
            }
            None => {
                return Err(RpcError::new(
                    protocol::INVALID_PARAMS,
                    format!("params.arguments.{n} is required by prompt {}", d.name),
                ))
            }
        }
    }
    if let Some(k) = args
        .keys()
        .find(|k| !declared.clone().any(|(n, _, _)| n == k))
    {
        return Err(RpcError::new(
            protocol::INVALID_PARAMS,
            format!(
                "params.arguments.{k}: prompt {} takes no such argument",
                d.name
            ),
        ));
    }
    Ok(args)
}

fn arg<'a>(args: &'a Map<String, Value>, k: &str) -> &'a str {
    args.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// What the caller can see that a prompt is filled with.
#[derive(Debug, Default)]
pub struct Seen {
    /// Tables of the database asked about: (name, engine).
    pub tables: Vec<(String, String)>,
    /// The table asked about: its `describe` JSON.
    pub described: Option<Value>,
}

/// The text of a prompt, from its arguments and what the caller can see.
pub fn prompt_text(name: &str, args: &Map<String, Value>, seen: &Seen) -> String {
    let db = arg(args, "database");
    let on = match args.get(CLUSTER_ARG).and_then(Value::as_str) {
        Some(c) => format!(" on cluster `{c}` (pass cluster: \"{c}\" to every tool)"),
        None => String::new(),
    };
    let tables = table_lines(&seen.tables);
    match name {
        "explore_database" => format!(
            "Explore the ClickHouse database `{db}`{on}. The tables you can read there:\n{tables}\n\
             Steps: pick the tables that look central; describe_table each (columns, keys); \
             count their rows with execute_query (SELECT count() FROM {db}.<table>); look at a few rows \
             with LIMIT 5. Prefer cheap queries: aggregates and LIMIT, never SELECT * without LIMIT. \
             Then summarise what the database holds, how its tables relate (shared columns), and which \
             questions it can answer."
        ),
        "investigate_table" => {
            let table = arg(args, "table");
            let columns = seen
                .described
                .as_ref()
                .map(column_lines)
                .unwrap_or_else(|| "(the columns could not be read: run describe_table)".into());
            format!(
                "Investigate the ClickHouse table `{db}`.`{table}`{on}. Its columns (name type [keys]):\n{columns}\n\
                 Work from cheap to expensive, one execute_query at a time:\n\
                 1. Shape: SELECT count() FROM {db}.{table}.\n\
                 2. Keys: the sorting key decides which filters are cheap; use it in WHERE.\n\
                 3. Value ranges: min, max and uniq() of the key and date columns; topK(10) of low-cardinality text columns.\n\
                 4. Recent rows: ORDER BY the sorting key DESC LIMIT 10.\n\
                 Report the table's grain (what one row is), its time span, and anything surprising."
            )
        }
        _ => {
            let question = arg(args, "question");
            let scope = if db.is_empty() {
                "list_databases and list_tables show the tables you can read.".to_string()
            } else {
                format!("The tables of `{db}` you can read:\n{tables}")
            };
            format!(
                "Draft one ClickHouse SQL query that answers: {question}{on}\n{scope}\n\
                 Check it before running: describe_table every table it reads and confirm each column's \
                 name and type; use ClickHouse functions (toDate, countIf, uniqExact, quantile); filter on the \
                 sorting key; add a LIMIT. Then run it once with execute_query; if ClickHouse refuses it, read \
                 the error's next step and fix the query rather than guessing."
            )
        }
    }
}

fn table_lines(tables: &[(String, String)]) -> String {
    if tables.is_empty() {
        return "(none you can read; list_databases shows the databases you can)".into();
    }
    let mut out: Vec<String> = tables
        .iter()
        .take(MAX_TABLES_IN_PROMPT)
        .map(|(n, e)| format!("- {n} ({e})"))
        .collect();
    if tables.len() > MAX_TABLES_IN_PROMPT {
        out.push(format!(
            "- ... and {} more (list_tables pages through them)",
            tables.len() - MAX_TABLES_IN_PROMPT
        ));
    }
    out.join("\n")
}

fn column_lines(described: &Value) -> String {
    let empty = Vec::new();
    described["columns"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|c| {
            let keys = column_keys(c);
            let mut line = format!(
                "- {} {}",
                c["name"].as_str().unwrap_or_default(),
                c["type"].as_str().unwrap_or_default()
            );
            if !keys.is_empty() {
                line.push_str(&format!(" [{}]", keys.join(", ")));
            }
            if let Some(comment) = c["comment"].as_str() {
                line.push_str(&format!(" — {comment}"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A completion answer: the values starting with `prefix` (case-insensitive), sorted,
/// at most [`MAX_COMPLETIONS`], with the total and whether more exist.
pub fn complete(candidates: impl IntoIterator<Item = String>, prefix: &str) -> Value {
    let p = prefix.to_lowercase();
    let mut values: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.to_lowercase().starts_with(&p))
        .collect();
    values.sort();
    values.dedup();
    let total = values.len();
    values.truncate(MAX_COMPLETIONS);
    json!({"completion": {"values": values, "total": total, "hasMore": total > MAX_COMPLETIONS}})
}

/// What `completion/complete` asks for: which argument, its prefix, and the arguments
/// already chosen (`context.arguments`).
struct Wanted {
    argument: String,
    prefix: String,
    chosen: Map<String, Value>,
}

fn wanted(p: &Map<String, Value>, fleet: bool) -> Result<Wanted, RpcError> {
    let bad = |m: &str| RpcError::new(protocol::INVALID_PARAMS, m.to_string());
    let r = p
        .get("ref")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("params.ref is required"))?;
    let a = p
        .get("argument")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("params.argument is required"))?;
    let argument = required_str(a, "name")?;
    let prefix = a
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match r.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let d = def(r.get("name").and_then(Value::as_str).unwrap_or_default())?;
            if !(d.args.iter().any(|(n, _, _)| *n == argument)
                || (fleet && argument == CLUSTER_ARG))
            {
                return Err(bad(&format!(
                    "params.argument.name: prompt {} has no argument `{argument}`",
                    d.name
                )));
            }
        }
        Some("ref/resource") => {
            if r.get("uri").and_then(Value::as_str) != Some(TABLE_TEMPLATE) {
                return Err(bad(&format!(
                    "params.ref.uri: only {TABLE_TEMPLATE} has variables to complete"
                )));
            }
        }
        _ => return Err(bad("params.ref.type must be ref/prompt or ref/resource")),
    }
    let chosen = p
        .get("context")
        .and_then(|c| c.get("arguments"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    Ok(Wanted {
        argument,
        prefix,
        chosen,
    })
}

/// Databases the caller can see (system ones left out, as everywhere else).
async fn databases(ctx: &ToolContext<'_>) -> Result<Vec<String>, String> {
    let rows = ctx
        .metadata(
            "completion",
            format!("SELECT name FROM system.databases WHERE name NOT IN {SYSTEM_DATABASES} ORDER BY name"),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.first()?.as_str().map(str::to_string))
        .collect())
}

/// Tables of one database the caller can see: (name, engine).
async fn tables(ctx: &ToolContext<'_>, database: &str) -> Result<Vec<(String, String)>, String> {
    let rows = ctx
        .metadata(
            "completion",
            format!(
                "SELECT name, engine FROM system.tables WHERE database = {} ORDER BY name",
                quote_string(database)
            ),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some((
                r.first()?.as_str()?.to_string(),
                r.get(1)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            ))
        })
        .collect())
}

fn internal(e: String) -> RpcError {
    RpcError::new(protocol::INTERNAL_ERROR, e)
}

/// `prompts/list`, `prompts/get` and `completion/complete` on `/mcp/{cluster}` (and,
/// routed to one cluster, on the fleet connector: `fleet` adds the `cluster` argument).
pub async fn handle(
    env: &ToolEnv<'_>,
    creds: &RequestCredentials<'_>,
    era: Era,
    method: &str,
    params: &Option<Value>,
    fleet: bool,
) -> Result<Value, RpcError> {
    let p = params_obj(params)?;
    if method == "prompts/list" {
        return Ok(decorate(era, prompt_list(fleet), true));
    }
    let ctx = || async {
        let c = creds.get().await.map_err(|e| {
            RpcError::new(
                protocol::INTERNAL_ERROR,
                format!("ClickHouse did not accept your identity: {e}"),
            )
        })?;
        Ok::<_, RpcError>(ToolContext::new(env, creds.identity(), c))
    };
    if method == "prompts/get" {
        let name = required_str(&p, "name")?;
        let d = def(&name)?;
        let args = prompt_args(d, &p, fleet)?;
        let ctx = ctx().await?;
        let db = arg(&args, "database");
        let mut seen = Seen::default();
        if !db.is_empty() && d.name != "investigate_table" {
            seen.tables = tables(&ctx, db).await.map_err(internal)?;
        }
        if d.name == "investigate_table" {
            seen.described = describe(&ctx, db, arg(&args, "table")).await.ok();
        }
        let text = prompt_text(d.name, &args, &seen);
        return Ok(decorate(
            era,
            json!({"description": d.description, "messages": [{"role": "user", "content": {"type": "text", "text": text}}]}),
            false,
        ));
    }
    // completion/complete
    let w = wanted(&p, fleet)?;
    let values = match w.argument.as_str() {
        "database" => databases(&ctx().await?).await.map_err(internal)?,
        "table" => match w.chosen.get("database").and_then(Value::as_str) {
            Some(db) if !db.is_empty() => tables(&ctx().await?, db)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|(n, _)| n)
                .collect(),
            // No database chosen yet: nothing to narrow by, so nothing to offer.
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    Ok(decorate(era, complete(values, &w.prefix), false))
}

/// The fleet connector's prompts and completions: `cluster` picks the cluster (its
/// completion offers the allow-listed names); the rest runs as on `/mcp/{cluster}`.
pub async fn handle_fleet(
    env: &ToolEnv<'_>,
    era: Era,
    method: &str,
    params: &Option<Value>,
    for_cluster: impl Fn(&str) -> RequestIdentity,
) -> Result<Value, RpcError> {
    let p = params_obj(params)?;
    let clusters = fleet_clusters(&env.config.multicluster);
    let cluster = match method {
        "prompts/list" => return Ok(decorate(era, prompt_list(true), true)),
        "prompts/get" => p
            .get("arguments")
            .and_then(|a| a.get(CLUSTER_ARG))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => {
            let w = wanted(&p, true)?;
            if w.argument == CLUSTER_ARG {
                let names = clusters.iter().map(|c| c.name.clone());
                return Ok(decorate(era, complete(names, &w.prefix), false));
            }
            match w.chosen.get(CLUSTER_ARG).and_then(Value::as_str) {
                Some(c) => Some(c.to_string()),
                // Which cluster's databases? Unknown until one is chosen.
                None => return Ok(decorate(era, complete(Vec::new(), ""), false)),
            }
        }
    };
    let Some(cluster) = cluster.filter(|c| clusters.iter().any(|k| &k.name == c)) else {
        let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        return Err(RpcError::new(
            protocol::INVALID_PARAMS,
            format!(
                "params.arguments.cluster must name one of this connector's clusters ({})",
                names.join(", ")
            ),
        ));
    };
    let id = for_cluster(&cluster);
    let creds = env.credentials(&id);
    handle(env, &creds, era, method, params, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_is_prefix_matched_sorted_and_capped() {
        let v = complete(["events".into(), "Errors".into(), "users".into()], "e");
        assert_eq!(v["completion"]["values"], json!(["Errors", "events"]));
        assert_eq!(v["completion"]["hasMore"], false);
        let many = complete((0..150).map(|i| format!("t{i:03}")), "t");
        assert_eq!(
            many["completion"]["values"].as_array().map(Vec::len),
            Some(MAX_COMPLETIONS)
        );
        assert_eq!(many["completion"]["total"], 150);
        assert_eq!(many["completion"]["hasMore"], true);
    }

    #[test]
    fn prompts_are_listed_with_their_arguments_and_the_fleet_adds_cluster() {
        let l = prompt_list(false);
        let names: Vec<&str> = l["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["explore_database", "investigate_table", "draft_query"]
        );
        assert_eq!(l["prompts"][1]["arguments"][1]["name"], "table");
        assert_eq!(
            prompt_list(true)["prompts"][0]["arguments"][0]["name"],
            "cluster"
        );
    }

    #[test]
    fn prompt_arguments_are_checked() {
        let d = def("investigate_table").unwrap();
        let p = |a: Value| json!({"arguments": a}).as_object().unwrap().clone();
        assert!(prompt_args(d, &p(json!({"database": "a", "table": "b"})), false).is_ok());
        let missing = prompt_args(d, &p(json!({"database": "a"})), false).unwrap_err();
        assert!(
            missing.message.contains("arguments.table"),
            "{}",
            missing.message
        );
        assert!(prompt_args(
            d,
            &p(json!({"database": "a", "table": "b", "x": "1"})),
            false
        )
        .is_err());
        assert!(
            prompt_args(d, &p(json!({"database": "a", "table": "b"})), true).is_err(),
            "fleet needs cluster"
        );
        assert!(def("nope")
            .unwrap_err()
            .message
            .contains("explore_database"));
    }

    #[test]
    fn prompt_texts_name_what_the_caller_sees() {
        let args = json!({"database": "shop", "table": "orders", "cluster": "eu"})
            .as_object()
            .unwrap()
            .clone();
        let seen = Seen {
            tables: vec![("orders".into(), "MergeTree".into())],
            described: Some(
                json!({"columns": [{"name": "id", "type": "UInt64", "keys": ["sorting"]}, {"name": "note", "type": "String", "keys": [], "comment": "free text"}]}),
            ),
        };
        let e = prompt_text("explore_database", &args, &seen);
        assert!(
            e.contains("- orders (MergeTree)") && e.contains("cluster `eu`"),
            "{e}"
        );
        let i = prompt_text("investigate_table", &args, &seen);
        assert!(
            i.contains("- id UInt64 [sorting]") && i.contains("- note String — free text"),
            "{i}"
        );
        assert!(i.contains("count()") && i.contains("LIMIT 10"), "{i}");
        let none = prompt_text("explore_database", &args, &Seen::default());
        assert!(none.contains("none you can read"), "{none}");
    }
}

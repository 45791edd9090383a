//! Progressive discovery (gateway.md, "Context economy"): above a threshold of dynamic
//! tools, `tools/list` offers the static tools plus `search_tools` (views and tables
//! found by words in their names, comments and columns, ranked, with their cluster) and
//! `call_tool` (runs a found tool by name). Pure: the catalogs come in already looked
//! up, so what a caller finds is exactly what their own catalog lets them call.

use serde_json::{json, Map, Value};

use super::args::{check_known_args, opt_str_arg, str_arg};
use super::outcome::{structured_with_text, CallOutcome};
use super::schema::{input_schema, object, read_annotations};
use super::{Action, Catalog, Entry};
use crate::config::ToolsListing;

/// The schema search tool's name.
pub const SEARCH_TOOL: &str = "search_tools";
/// The call-by-name tool's name.
pub const CALL_TOOL: &str = "call_tool";
/// `auto` lists up to this many dynamic tools and searches above it. Tool-selection
/// quality drops past roughly 25–50 tools (ToolHive #1557), and a view tool costs some
/// 250 tokens of tools/list (bench/context.sh): 30 keeps a listed catalog under ~9,000
/// tokens, which every assistant still reads comfortably.
pub const AUTO_THRESHOLD: usize = 30;
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 50;
/// Words of a query beyond this are ignored (a query is a few words, not a paragraph).
const MAX_WORDS: usize = 8;

/// Whether `tools/list` offers search instead of listing `dynamic` tools.
pub fn is_searched(mode: ToolsListing, dynamic: usize) -> bool {
    match mode {
        ToolsListing::Listed => false,
        ToolsListing::Searched => true,
        ToolsListing::Auto => dynamic > AUTO_THRESHOLD,
    }
}

/// Whether a tool was made from a ClickHouse object (what search finds).
pub fn is_dynamic(e: &Entry) -> bool {
    matches!(e.action, Action::View(_) | Action::Insert(_))
}

/// The `search_tools` tool; on the fleet connector it takes an optional `cluster`.
pub fn search_entry(cluster_prop: Option<&Value>) -> Entry {
    let title = "Search the views and tables you can query";
    let mut props = vec![
        (
            "query",
            json!({"type": "string", "description": "Words to look for in view and table names, their comments, and their column names and comments, e.g. 'daily revenue' or 'user_id'."}),
        ),
        (
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "description": "Most matches to return (default 10)."}),
        ),
    ];
    if let Some(p) = cluster_prop {
        let mut p = p.clone();
        if let Value::Object(m) = &mut p {
            m.insert(
                "description".into(),
                json!("Only this cluster (default: every cluster)."),
            );
        }
        props.push(("cluster", p));
    }
    let tool = rmcp::model::Tool::new(
        SEARCH_TOOL,
        "Finds the tools made from ClickHouse views (and tables you may insert into) by words in their names, comments, columns and column comments, best match first, with the cluster and the arguments each takes. Run a found tool with call_tool. For any other table use list_tables, describe_table and execute_query.",
        input_schema(props, &["query"]),
    )
    .with_title(title)
    .with_raw_output_schema(object(json!({
        "type": "object",
        "properties": {
            "matches": {"type": "array", "items": {"type": "object"}},
            "pending_clusters": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["matches"]
    })))
    .with_annotations(read_annotations(title));
    Entry {
        tool,
        action: Action::SearchTools,
    }
}

/// The `call_tool` tool.
pub fn call_entry() -> Entry {
    let title = "Run a tool found by search_tools";
    let tool = rmcp::model::Tool::new(
        CALL_TOOL,
        "Runs a tool that search_tools found, by its name, with its arguments (checked exactly as if the tool were listed).",
        input_schema(
            vec![
                ("name", json!({"type": "string", "description": "The tool's name as search_tools gave it."})),
                ("arguments", json!({"type": "object", "description": "The tool's arguments, as search_tools listed them."})),
            ],
            &["name"],
        ),
    )
    .with_title(title)
    // A found tool may be an insert tool: the wrapper is as open as what it may run.
    .with_annotations(rmcp::model::ToolAnnotations::with_title(title).open_world(false));
    Entry {
        tool,
        action: Action::CallTool,
    }
}

/// The searched listing: the catalog's non-dynamic tools, then search and call.
pub fn searched_catalog(c: &Catalog, cluster_prop: Option<&Value>) -> Catalog {
    let mut entries: Vec<Entry> = c
        .entries()
        .iter()
        .filter(|e| !is_dynamic(e))
        .cloned()
        .collect();
    entries.push(search_entry(cluster_prop));
    entries.push(call_entry());
    Catalog::new(entries)
}

/// `call_tool`'s arguments: the found tool's name and its own arguments.
pub fn unwrap_call(args: &Map<String, Value>) -> Result<(String, Map<String, Value>), String> {
    check_known_args(&call_entry(), args)?;
    let name = str_arg(args, "name")?;
    if name == CALL_TOOL || name == SEARCH_TOOL {
        return Err(format!(
            "argument `name`: call {name} directly, not through {CALL_TOOL}"
        ));
    }
    let inner = match args.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err("argument `arguments` must be an object of the tool's arguments".into())
        }
    };
    Ok((name.to_string(), inner))
}

/// What one search asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchArgs {
    pub words: Vec<String>,
    pub limit: usize,
    pub cluster: Option<String>,
}

/// Reads `search_tools`' arguments (the entry's schema decides which are known).
pub fn parse_args(entry: &Entry, args: &Map<String, Value>) -> Result<SearchArgs, String> {
    check_known_args(entry, args)?;
    let words = words(str_arg(args, "query")?);
    if words.is_empty() {
        return Err("argument `query`: give one or more words (letters or digits), e.g. 'revenue' or 'user_id'".into());
    }
    let limit = match args.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_LIMIT as u64).contains(&n) => n as usize,
            _ => {
                return Err(format!(
                    "argument `limit` must be an integer from 1 to {MAX_LIMIT}"
                ))
            }
        },
    };
    let cluster = opt_str_arg(args, "cluster")?.map(str::to_string);
    Ok(SearchArgs {
        words,
        limit,
        cluster,
    })
}

/// Lowercase words of letters and digits; `user_id` is one word and also `user`, `id`.
fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        let w = w.trim_matches('_').to_lowercase();
        if w.is_empty() || out.contains(&w) {
            continue;
        }
        out.push(w);
        if out.len() == MAX_WORDS {
            break;
        }
    }
    out
}

/// One field of a tool that a word may match, and what a match there is worth.
struct Field<'a> {
    text: &'a str,
    weight: u32,
    /// Named in the answer when it matches (a column), else only scored.
    label: Option<String>,
}

fn fields(e: &Entry) -> Vec<Field<'_>> {
    let mut f = vec![Field {
        text: e.tool.name.as_ref(),
        weight: 3,
        label: None,
    }];
    if let Some(t) = &e.tool.title {
        f.push(Field {
            text: t,
            weight: 2,
            label: None,
        });
    }
    if let Some(d) = &e.tool.description {
        f.push(Field {
            text: d,
            weight: 2,
            label: None,
        });
    }
    let (db, name, columns): (&str, &str, Vec<(&str, &str)>) = match &e.action {
        Action::View(v) => (
            &v.database,
            &v.view,
            v.columns
                .iter()
                .map(|(n, c)| (n.as_str(), c.as_str()))
                .chain(v.params.iter().map(|(n, _)| (n.as_str(), "")))
                .collect(),
        ),
        Action::Insert(t) => {
            // An insert tool's column comments are its properties' descriptions.
            let props = e.tool.input_schema.get("properties");
            let comment = |n: &str| {
                props
                    .and_then(|p| p.get(n))
                    .and_then(|p| p.get("description"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            (
                &t.database,
                &t.table,
                t.columns
                    .iter()
                    .map(|(n, _, _)| (n.as_str(), comment(n)))
                    .collect(),
            )
        }
        _ => return f,
    };
    f.push(Field {
        text: db,
        weight: 1,
        label: None,
    });
    f.push(Field {
        text: name,
        weight: 3,
        label: None,
    });
    for (col, comment) in columns {
        f.push(Field {
            text: col,
            weight: 2,
            label: Some(format!("column {col}")),
        });
        if !comment.is_empty() {
            f.push(Field {
                text: comment,
                weight: 1,
                label: Some(format!("column {col} ({comment})")),
            });
        }
    }
    f
}

/// How well `word` matches `text`: a whole word (split at `_` and non-letters) counts
/// double a part of one.
fn word_score(word: &str, text: &str) -> u32 {
    let lower = text.to_lowercase();
    if !lower.contains(word) {
        return 0;
    }
    let whole = lower == word
        || lower
            .split(|c: char| !c.is_alphanumeric())
            .any(|part| part == word);
    if whole {
        2
    } else {
        1
    }
}

/// One found tool.
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    /// The name to call it by (on the fleet, `<cluster>__<tool>`).
    pub name: String,
    pub cluster: Option<&'a str>,
    pub entry: &'a Entry,
    pub score: u32,
    pub matched: Vec<String>,
}

/// The best `limit` dynamic tools of the given catalogs for `words`; `named` gives the
/// name a tool is called by (None: not callable there, skipped). Deterministic: ties
/// go by name.
pub fn search<'a>(
    words: &[String],
    catalogs: &[(Option<&'a str>, &'a Catalog)],
    named: impl Fn(Option<&str>, &str) -> Option<String>,
    limit: usize,
) -> Vec<Hit<'a>> {
    let mut hits = Vec::new();
    for (cluster, catalog) in catalogs {
        for e in catalog.entries().iter().filter(|e| is_dynamic(e)) {
            let fs = fields(e);
            let mut score = 0;
            let mut matched: Vec<String> = Vec::new();
            for w in words {
                let best = fs
                    .iter()
                    .map(|f| (f.weight * word_score(w, f.text), f))
                    .max_by_key(|(s, _)| *s);
                if let Some((s, f)) = best.filter(|(s, _)| *s > 0) {
                    score += s;
                    if let Some(l) = &f.label {
                        if !matched.contains(l) {
                            matched.push(l.clone());
                        }
                    }
                }
            }
            if score == 0 {
                continue;
            }
            let Some(name) = named(*cluster, e.tool.name.as_ref()) else {
                continue;
            };
            hits.push(Hit {
                name,
                cluster: *cluster,
                entry: e,
                score,
                matched,
            });
        }
    }
    hits.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
    hits.truncate(limit);
    hits
}

/// Clusters whose tools a search could not see, and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unsearched {
    /// Discovery has not run yet for this caller there (every slot busy).
    pub pending: Vec<String>,
    /// Down, refusing this identity, or failing.
    pub unreachable: Vec<String>,
}

/// The answer: compact text for the model, the same facts as structured JSON.
pub fn answer(query_words: &[String], hits: &[Hit<'_>], unsearched: &Unsearched) -> CallOutcome {
    let mut matches = Vec::with_capacity(hits.len());
    let mut text = if hits.is_empty() {
        format!(
            "No view or table tool matches \"{}\". Try other words (a column name, a word of a comment), or list_tables and describe_table for tables that are not tools.\n",
            query_words.join(" ")
        )
    } else {
        format!(
            "{} match(es) for \"{}\", best first:\n",
            hits.len(),
            query_words.join(" ")
        )
    };
    for h in hits {
        let (kind, object, args) = match &h.entry.action {
            Action::View(v) => (
                "view",
                format!("{}.{}", v.database, v.view),
                v.params
                    .iter()
                    .map(|(n, t)| (n.clone(), t.clone()))
                    .collect::<Vec<_>>(),
            ),
            Action::Insert(t) => (
                "insert",
                format!("{}.{}", t.database, t.table),
                t.columns
                    .iter()
                    .map(|(n, ty, req)| {
                        let t = if *req {
                            ty.clone()
                        } else {
                            format!("{ty}, optional")
                        };
                        (n.clone(), t)
                    })
                    .collect(),
            ),
            _ => continue,
        };
        let description = h.entry.tool.description.as_deref().unwrap_or("");
        let mut m = Map::new();
        m.insert("tool".into(), json!(h.name));
        if let Some(c) = h.cluster {
            m.insert("cluster".into(), json!(c));
        }
        m.insert("kind".into(), json!(kind));
        m.insert("object".into(), json!(object));
        m.insert("description".into(), json!(description));
        let arg_obj: Map<String, Value> = args.iter().map(|(n, t)| (n.clone(), json!(t))).collect();
        m.insert("arguments".into(), Value::Object(arg_obj));
        if !h.matched.is_empty() {
            m.insert("matched".into(), json!(h.matched));
        }
        matches.push(Value::Object(m));

        text.push_str(&format!("- {}", h.name));
        if let Some(c) = h.cluster {
            text.push_str(&format!(" [cluster {c}]"));
        }
        let verb = if kind == "view" {
            "reads view"
        } else {
            "inserts a row into"
        };
        text.push_str(&format!(": {verb} {object}."));
        // The generated descriptions only repeat the line's start; comments say more.
        if !description.starts_with("Returns the rows of the view")
            && !description.starts_with("Inserts one row into the table")
        {
            text.push_str(&format!(" {description}"));
        }
        if args.is_empty() {
            text.push_str(" No arguments.");
        } else {
            let a: Vec<String> = args.iter().map(|(n, t)| format!("{n} ({t})")).collect();
            text.push_str(&format!(" Arguments: {}.", a.join(", ")));
        }
        if !h.matched.is_empty() {
            text.push_str(&format!(" Matched {}.", h.matched.join(", ")));
        }
        text.push('\n');
    }
    if !hits.is_empty() {
        text.push_str(&format!(
            "Run one with {CALL_TOOL}: {{\"name\": \"<tool>\", \"arguments\": {{...}}}}.\n"
        ));
    }
    let mut structured = Map::new();
    structured.insert("matches".into(), Value::Array(matches));
    if !unsearched.pending.is_empty() {
        text.push_str(&format!(
            "Not searched yet (their tools are still being discovered; search again in a moment): {}.\n",
            unsearched.pending.join(", ")
        ));
        structured.insert("pending_clusters".into(), json!(unsearched.pending));
    }
    if !unsearched.unreachable.is_empty() {
        text.push_str(&format!(
            "Not searched (unreachable or refusing your identity; list_clusters says which): {}.\n",
            unsearched.unreachable.join(", ")
        ));
        structured.insert("unreachable_clusters".into(), json!(unsearched.unreachable));
    }
    structured_with_text(Value::Object(structured), text.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::dynamic::{InsertTool, ViewTool};
    use crate::tools::schema::static_entries;

    fn view(name: &str, db: &str, v: &str, comment: &str, cols: &[(&str, &str)]) -> Entry {
        let tool = rmcp::model::Tool::new(
            name.to_string(),
            comment.to_string(),
            input_schema(vec![("day", json!({"type": "string"}))], &["day"]),
        );
        Entry {
            tool,
            action: Action::View(ViewTool {
                database: db.into(),
                view: v.into(),
                params: vec![("day".into(), "Date".into())],
                columns: cols
                    .iter()
                    .map(|(n, c)| (n.to_string(), c.to_string()))
                    .collect(),
            }),
        }
    }

    fn catalog() -> Catalog {
        let mut e = static_entries(&crate::config::Config::default());
        e.push(view(
            "v_sales_daily",
            "sales",
            "daily",
            "Revenue per day and region",
            &[("region", ""), ("revenue", "gross, in EUR")],
        ));
        e.push(view(
            "v_ops_latency",
            "ops",
            "latency",
            "Request latency percentiles",
            &[("p99_ms", "99th percentile"), ("user_id", "")],
        ));
        e.push(Entry {
            tool: rmcp::model::Tool::new(
                "i_ops_events",
                "Inserts one row",
                input_schema(vec![], &[]),
            ),
            action: Action::Insert(InsertTool {
                database: "ops".into(),
                table: "events".into(),
                columns: vec![("user_id".into(), "UInt64".into(), true)],
            }),
        });
        Catalog::new(e)
    }

    fn names(hits: &[Hit<'_>]) -> Vec<String> {
        hits.iter().map(|h| h.name.clone()).collect()
    }

    #[test]
    fn auto_searches_above_the_threshold_only() {
        assert!(!is_searched(ToolsListing::Auto, AUTO_THRESHOLD));
        assert!(is_searched(ToolsListing::Auto, AUTO_THRESHOLD + 1));
        assert!(is_searched(ToolsListing::Searched, 0));
        assert!(!is_searched(ToolsListing::Listed, 10_000));
    }

    #[test]
    fn finds_by_comment_word_and_by_column_name_and_ranks_whole_words_first() {
        let c = catalog();
        let by = |q: &str| {
            let hits = search(&words(q), &[(None, &c)], |_, n| Some(n.to_string()), 10);
            (names(&hits), hits.first().map(|h| h.matched.clone()))
        };
        assert_eq!(by("revenue").0, ["v_sales_daily"]);
        let (found, matched) = by("p99_ms");
        assert_eq!(found, ["v_ops_latency"]);
        assert_eq!(matched, Some(vec!["column p99_ms".to_string()]));
        // `user_id` is a column of a view and of an insert tool; static tools never match.
        assert_eq!(by("user_id").0, ["i_ops_events", "v_ops_latency"]);
        assert!(by("execute").0.is_empty());
        assert!(by("nothing_like_this").0.is_empty());
        // Two words beat one.
        assert_eq!(
            by("latency user").0.first().map(String::as_str),
            Some("v_ops_latency")
        );
    }

    #[test]
    fn a_name_the_caller_cannot_call_is_never_found() {
        let c = catalog();
        let hits = search(
            &words("revenue latency"),
            &[(Some("a"), &c)],
            |cl, n| (n != "v_sales_daily").then(|| format!("{}__{n}", cl.unwrap_or(""))),
            10,
        );
        assert_eq!(names(&hits), ["a__v_ops_latency"]);
        assert_eq!(hits[0].cluster, Some("a"));
    }

    #[test]
    fn searched_listing_keeps_static_tools_and_adds_search_and_call() {
        let s = searched_catalog(&catalog(), None);
        let listed: Vec<&str> = s.entries().iter().map(|e| e.tool.name.as_ref()).collect();
        assert!(listed.contains(&"execute_query") && listed.contains(&SEARCH_TOOL));
        assert_eq!(listed.last(), Some(&CALL_TOOL));
        assert_eq!(s.dynamic_count(), 0);
        assert_eq!(catalog().dynamic_count(), 3);
    }

    #[test]
    fn call_unwraps_once_and_refuses_itself() {
        let mut a = Map::new();
        a.insert("name".into(), json!("v_sales_daily"));
        a.insert("arguments".into(), json!({"day": "2026-01-01"}));
        let (n, inner) = unwrap_call(&a).unwrap();
        assert_eq!(
            (n.as_str(), &inner["day"]),
            ("v_sales_daily", &json!("2026-01-01"))
        );
        a.insert("name".into(), json!(CALL_TOOL));
        assert!(unwrap_call(&a).is_err());
        a.insert("name".into(), json!("x"));
        a.insert("arguments".into(), json!([1]));
        assert!(unwrap_call(&a).unwrap_err().contains("`arguments`"));
        a.insert("extra".into(), json!(1));
        assert!(unwrap_call(&a).unwrap_err().contains("`extra`"));
    }

    #[test]
    fn arguments_are_checked_and_answers_say_what_next() {
        let e = search_entry(None);
        let mut a = Map::new();
        a.insert("query".into(), json!("  --  "));
        assert!(parse_args(&e, &a).unwrap_err().contains("`query`"));
        a.insert("query".into(), json!("Revenue, REGION"));
        a.insert("limit".into(), json!(500));
        assert!(parse_args(&e, &a).unwrap_err().contains("`limit`"));
        a.insert("limit".into(), json!(2));
        let args = parse_args(&e, &a).unwrap();
        assert_eq!(args.words, ["revenue", "region"]);
        let c = catalog();
        let hits = search(
            &args.words,
            &[(None, &c)],
            |_, n| Some(n.into()),
            args.limit,
        );
        let out = answer(
            &args.words,
            &hits,
            &Unsearched {
                pending: vec!["b".into()],
                unreachable: vec![],
            },
        );
        let text = serde_json::to_value(&out.result).unwrap()["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            text.contains("v_sales_daily") && text.contains("call_tool"),
            "{text}"
        );
        assert!(text.contains("day (Date)"), "{text}");
        assert!(
            text.contains("still being discovered") && text.contains(": b."),
            "{text}"
        );
        let sc = out.result.structured_content.unwrap();
        assert_eq!(sc["pending_clusters"], json!(["b"]));
        assert_eq!(sc["matches"][0]["arguments"]["day"], "Date");
        let none = answer(&words("zzz"), &[], &Unsearched::default());
        assert!(format!("{:?}", none.result.content).contains("list_tables"));
    }
}

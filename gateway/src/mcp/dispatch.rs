//! JSON-RPC methods → gateway behaviour: the tool runner ([`run_named_tool`]) and the
//! method table ([`call_method`]) shared by the cluster path ([`answer_cluster`]) and the
//! fleet connector (`mcp::fleet`).
//! Transport-independent: both transports enter through `mcp::run`.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use rmcp::model::{CallToolResult, Implementation, MetaObject, ResultType};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::protocol::{self, Era, LIST_TTL_MS};
use crate::app::App;
use crate::catalog::catalog_for;
use crate::identity::{RequestCredentials, RequestIdentity};
use crate::telemetry::metrics::ToolCallRecord;
use crate::telemetry::trace::{self, CallFacts, SpanKind};
use crate::tools::context::ToolEnv;
use crate::tools::listing::{describe, DescribeError};
use crate::tools::outcome::{tool_error, CallOutcome, CallStatus};
use crate::tools::resources::{schema_overview, TableUri, SCHEMA_URI, TABLE_TEMPLATE};
use crate::tools::result_view;
use crate::tools::{call_tool, Catalog, Entry, ToolContext};

/// A JSON-RPC error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }
    pub fn to_json(&self, id: &Value) -> Value {
        let mut e = Map::new();
        e.insert("code".into(), json!(self.code));
        e.insert("message".into(), json!(self.message));
        if let Some(d) = &self.data {
            e.insert("data".into(), d.clone());
        }
        json!({"jsonrpc": "2.0", "id": id, "error": e})
    }
}

/// Code for a request the client cancelled (as LSP uses it).
pub const REQUEST_CANCELLED: i64 = -32800;
/// Pre-2026 code for an unknown resource; 2026-07-28 uses -32602 (SEP-2164).
const LEGACY_RESOURCE_NOT_FOUND: i64 = -32002;

const INSTRUCTIONS: &str = "Query ClickHouse with SQL. Start with list_databases, list_tables and describe_table to learn the schema, then execute_query with one read-only statement. Results are capped: aggregate or add LIMIT for large tables.";

pub fn server_info() -> Implementation {
    let mut i = Implementation::new("chmcp-gateway", env!("CARGO_PKG_VERSION"));
    i.title = Some("ClickHouse MCP gateway".into());
    i
}

fn capabilities() -> Value {
    // The catalog does not change within a request's life.
    json!({"tools": {"listChanged": false}, "resources": {}, "prompts": {"listChanged": false}, "completions": {}})
}

/// `params` as an object (absent or null: empty), borrowed: not a copy of the arguments.
pub(super) fn params_obj(params: &Option<Value>) -> Result<Cow<'_, Map<String, Value>>, RpcError> {
    match params {
        None | Some(Value::Null) => Ok(Cow::Owned(Map::new())),
        Some(Value::Object(m)) => Ok(Cow::Borrowed(m)),
        Some(_) => Err(RpcError::new(
            protocol::INVALID_PARAMS,
            "params must be an object",
        )),
    }
}

/// `params.arguments` as an object (absent or null: empty); `wrong` is the error when
/// it is something else.
pub(super) fn arguments_obj(
    p: &Map<String, Value>,
    wrong: &'static str,
) -> Result<Map<String, Value>, RpcError> {
    match p.get("arguments") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(a)) => Ok(a.clone()),
        Some(_) => Err(RpcError::new(protocol::INVALID_PARAMS, wrong)),
    }
}

pub(super) fn required_str(p: &Map<String, Value>, key: &str) -> Result<String, RpcError> {
    match p.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(RpcError::new(
            protocol::INVALID_PARAMS,
            format!("params.{key} must be a string"),
        )),
        None => Err(RpcError::new(
            protocol::INVALID_PARAMS,
            format!("params.{key} is required"),
        )),
    }
}

/// Adds what every stateless-era result carries (and list results' caching hints).
pub(super) fn decorate(era: Era, mut result: Value, cacheable: bool) -> Value {
    if era == Era::Stateless {
        if let Value::Object(m) = &mut result {
            m.insert("resultType".into(), json!("complete"));
            if cacheable {
                m.insert("ttlMs".into(), json!(LIST_TTL_MS));
                // Catalogs follow the caller's grants: never share across callers.
                m.entry("cacheScope").or_insert(json!("private"));
            }
            let meta = m.entry("_meta").or_insert_with(|| json!({}));
            if let Value::Object(meta) = meta {
                meta.insert(protocol::META_SERVER_INFO.into(), json!(server_info()));
            }
        }
    } else if let Value::Object(m) = &mut result {
        m.remove("resultType");
    }
    result
}

/// A result, as a JSON tree, a tool call's typed result (serialized once, straight into
/// the response: no `Value` copy of the rows), or (for `tools/list`, the hottest call)
/// the catalog's tool list serialized once per catalog and spliced into the response
/// text.
#[derive(Debug)]
pub enum Answer {
    Json(Value),
    Tool(CallToolResult),
    Tools {
        catalog: Arc<Catalog>,
        /// The era's extra result fields as a JSON object (`{}` when none).
        extra: Cow<'static, str>,
    },
}

/// The listed tools' size from which a tools/list answer shares them instead of copying
/// (bench/cpu_per_call.sh: the 21-tool multi-cluster list is spliced, the static
/// single-cluster one is not).
const SPLICE_FROM: usize = 16 * 1024;

/// A JSON-RPC response as a transport writes it.
pub enum Reply {
    /// The whole response in one buffer.
    Whole(String),
    /// `head`, then the catalog's listed tools as the bytes the catalog holds (shared,
    /// not copied: a tools/list answer is mostly this), then `tail`.
    Spliced {
        head: String,
        shared: Arc<str>,
        tail: String,
    },
}

impl Reply {
    /// The response as one string (stdio, event streams).
    pub fn into_string(self) -> String {
        match self {
            Reply::Whole(s) => s,
            Reply::Spliced { head, shared, tail } => {
                let mut r = String::with_capacity(head.len() + shared.len() + tail.len());
                r.push_str(&head);
                r.push_str(&shared);
                r.push_str(&tail);
                r
            }
        }
    }
}

impl Answer {
    /// The whole JSON-RPC response for request `id` as one string (stdio, event streams).
    pub fn response_text(self, id: &Value) -> String {
        self.reply(id).into_string()
    }

    /// The JSON-RPC response for request `id`; a tools/list answer shares the
    /// catalog's serialized list instead of copying it.
    pub fn reply(self, id: &Value) -> Reply {
        let id = serde_json::to_string(id).unwrap_or_else(|_| "null".into());
        match self {
            Answer::Json(v) => Reply::Whole(enveloped(&id, &v)),
            Answer::Tool(result) => Reply::Whole(enveloped(&id, &result)),
            Answer::Tools { catalog, extra } => {
                let rest = extra.strip_prefix('{').unwrap_or("}");
                let listed = catalog.listed_json();
                const ENVELOPE: &str = "{\"jsonrpc\":\"2.0\",\"id\":";
                const TOOLS: &str = ",\"result\":{\"tools\":";
                let head_len = ENVELOPE.len() + id.len() + TOOLS.len();
                let open = |capacity: usize| {
                    let mut r = String::with_capacity(capacity);
                    r.push_str(ENVELOPE);
                    r.push_str(&id);
                    r.push_str(TOOLS);
                    r
                };
                let close = |r: &mut String| {
                    if rest != "}" {
                        r.push(',');
                    }
                    r.push_str(rest);
                    r.push('}');
                };
                // A short list costs less to copy than a body of three chunks.
                if listed.len() < SPLICE_FROM {
                    let mut r = open(head_len + listed.len() + rest.len() + 2);
                    r.push_str(listed);
                    close(&mut r);
                    Reply::Whole(r)
                } else {
                    let head = open(head_len);
                    let mut tail = String::with_capacity(rest.len() + 2);
                    close(&mut tail);
                    Reply::Spliced {
                        head,
                        shared: catalog.listed_shared(),
                        tail,
                    }
                }
            }
        }
    }
}

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}`, the result serialized once, straight
/// after the envelope (no second copy).
fn enveloped(id: &str, result: &impl Serialize) -> String {
    let mut r = Vec::with_capacity(256);
    r.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    r.extend_from_slice(id.as_bytes());
    r.extend_from_slice(b",\"result\":");
    let start = r.len();
    if serde_json::to_writer(&mut r, result).is_err() {
        r.truncate(start);
        r.extend_from_slice(b"{}");
    }
    r.push(b'}');
    // serde_json writes UTF-8 only.
    String::from_utf8(r).unwrap_or_default()
}

/// The methods this gateway serves: the only values the `method` label of
/// `chmcp_mcp_requests_total` takes besides `other` (a label value is never request text).
pub const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
];

/// The metric label for a JSON-RPC method name.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

/// Answers one request on a cluster's endpoint (`/mcp/{cluster}`, or `/mcp` with one
/// cluster). Tool failures are results (`isError`), never errors here.
pub(super) async fn answer_cluster(
    app: &App,
    env: &ToolEnv<'_>,
    id: &RequestIdentity,
    era: Era,
    method: &str,
    params: &Option<Value>,
) -> Result<Answer, RpcError> {
    // Settled at most once for the whole request (discovery and the tool share them).
    let creds = env.credentials(id);
    if method == "tools/list" {
        single_page(params)?;
        let catalog = catalog_for(env, &creds).await;
        return Ok(Answer::Tools {
            catalog: super::discovery::listed(env, catalog),
            extra: Cow::Borrowed(list_decoration(era)),
        });
    }
    if method == "tools/call" {
        // Kept typed: serialized once, into the response.
        let out = call_tool_method(app, env, &creds, params).await?;
        return Ok(Answer::Tool(shape_call(era, out.result)));
    }
    // Boxed: the other methods' futures (resources, prompts) are kilobytes; inline they
    // would make every request's future, tools/list's too, that large to move.
    Box::pin(call_method(env, &creds, era, method, params))
        .await
        .map(Answer::Json)
}

/// A tool call's result in the era's shape, what [`decorate`] does to other results:
/// the 2025 era has no `resultType`; the stateless era has it and the server's info.
pub(super) fn shape_call(era: Era, mut result: CallToolResult) -> CallToolResult {
    match era {
        Era::Initialize => result.result_type = None,
        Era::Stateless => {
            result.result_type = Some(ResultType::COMPLETE);
            let meta = result.meta.get_or_insert_with(MetaObject::default);
            meta.0
                .insert(protocol::META_SERVER_INFO.into(), json!(server_info()));
        }
    }
    result
}

/// A tool call's answer in the era's shape, as a JSON tree (the fleet connector edits it).
pub(super) fn call_result(era: Era, out: CallOutcome) -> Result<Value, RpcError> {
    serde_json::to_value(shape_call(era, out.result))
        .map_err(|e| RpcError::new(protocol::INTERNAL_ERROR, e.to_string()))
}

/// `tools/list` has one page: a client asking for another gets a clear error.
pub(super) fn single_page(params: &Option<Value>) -> Result<(), RpcError> {
    let p = params_obj(params)?;
    if p.get("cursor")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        return Err(RpcError::new(
            protocol::INVALID_PARAMS,
            "params.cursor: tools/list has a single page; there is no next cursor",
        ));
    }
    Ok(())
}

/// The era's decoration of a tool list, spliced after the tools when the response is
/// written: the same text for every list, so written once per era.
pub(super) fn list_decoration(era: Era) -> &'static str {
    static TEXT: OnceLock<[String; 2]> = OnceLock::new();
    let [initialize, stateless] = TEXT.get_or_init(|| {
        [Era::Initialize, Era::Stateless].map(|era| {
            serde_json::to_string(&decorate(era, json!({}), true)).unwrap_or_else(|_| "{}".into())
        })
    });
    match era {
        Era::Initialize => initialize,
        Era::Stateless => stateless,
    }
}

/// The method table: one method's result for one cluster's credentials.
pub(super) async fn call_method(
    env: &ToolEnv<'_>,
    creds: &RequestCredentials<'_>,
    era: Era,
    method: &str,
    params: &Option<Value>,
) -> Result<Value, RpcError> {
    let p = params_obj(params)?;
    match (era, method) {
        (Era::Initialize, "initialize") => {
            let requested = p.get("protocolVersion").and_then(Value::as_str);
            let version = protocol::negotiate(requested);
            Ok(json!({
                "protocolVersion": version,
                "capabilities": capabilities(),
                "serverInfo": server_info(),
                "instructions": INSTRUCTIONS,
            }))
        }
        (Era::Initialize, "ping") => Ok(json!({})),
        (_, "server/discover") => Ok(decorate(
            era,
            json!({
                "supportedVersions": protocol::supported_versions(),
                "capabilities": capabilities(),
                "instructions": INSTRUCTIONS,
                "cacheScope": "public",
            }),
            true,
        )),
        (_, "resources/list") => {
            let mut resources = vec![json!({
                "uri": SCHEMA_URI,
                "name": "schema",
                "title": "Databases and tables",
                "description": "The databases and tables you can see, as JSON.",
                "mimeType": "application/json"
            })];
            resources.extend(result_view::listed(env.config));
            Ok(decorate(era, json!({"resources": resources}), true))
        }
        (_, "resources/templates/list") => Ok(decorate(
            era,
            json!({"resourceTemplates": [{
                "uriTemplate": TABLE_TEMPLATE,
                "name": "table",
                "title": "A table's columns and keys",
                "description": "Columns (name, type, default, comment) and key membership of one table, as JSON.",
                "mimeType": "application/json"
            }]}),
            true,
        )),
        (_, "resources/read") => {
            let uri = required_str(&p, "uri")?;
            // The view is the same document for everyone: no ClickHouse identity needed.
            if let Some(view) = result_view::read(env.config, &uri) {
                return Ok(decorate(era, view, true));
            }
            let c = creds.get().await.map_err(|e| {
                RpcError::new(
                    protocol::INTERNAL_ERROR,
                    format!("ClickHouse did not accept your identity: {e}"),
                )
            })?;
            let ctx = ToolContext::new(env, creds.identity(), c);
            let not_found = |what: String| {
                let code = if era == Era::Stateless {
                    protocol::INVALID_PARAMS
                } else {
                    LEGACY_RESOURCE_NOT_FOUND
                };
                RpcError {
                    code,
                    message: what,
                    data: Some(json!({"uri": uri})),
                }
            };
            let body = if uri == SCHEMA_URI {
                schema_overview(&ctx)
                    .await
                    .map_err(|e| RpcError::new(protocol::INTERNAL_ERROR, e))?
            } else if let Some(TableUri { database, table }) = TableUri::parse(&uri) {
                describe(&ctx, &database, &table)
                    .await
                    .map_err(|e| match e {
                        DescribeError::NotFound { .. } => not_found(e.to_string()),
                        // ClickHouse down or refusing: not a missing resource.
                        DescribeError::Query(q) => RpcError::new(
                            protocol::INTERNAL_ERROR,
                            format!("ClickHouse could not describe {database}.{table}: {q}"),
                        ),
                    })?
            } else {
                return Err(not_found(format!("Resource not found: {uri}")));
            };
            Ok(decorate(
                era,
                json!({"contents": [{"uri": uri, "mimeType": "application/json", "text": body.to_string()}]}),
                true,
            ))
        }
        (_, "prompts/list" | "prompts/get" | "completion/complete") => {
            super::prompts::handle(env, creds, era, method, params, false).await
        }
        _ => {
            // `?`: the name is request text, logged escaped.
            tracing::debug!(method = ?method, "unknown JSON-RPC method");
            Err(RpcError::new(
                protocol::METHOD_NOT_FOUND,
                format!("Method not found: {method}"),
            ))
        }
    }
}

/// `tools/call` on one cluster: the catalog's tool run with the caller's credentials,
/// counted, costed and audited. Tool failures are outcomes (`isError`); only a request
/// the client must fix (bad params, an unknown tool) is an error.
pub(super) async fn call_tool_method(
    app: &App,
    env: &ToolEnv<'_>,
    creds: &RequestCredentials<'_>,
    params: &Option<Value>,
) -> Result<CallOutcome, RpcError> {
    let p = params_obj(params)?;
    let name = required_str(&p, "name")?;
    let args = arguments_obj(&p, "params.arguments must be an object")?;
    run_named_tool(app, env, creds, name, args).await
}

/// Runs tool `name` of the caller's catalog with `args` (the cluster path's `tools/call`,
/// and the fleet's once it has picked the cluster and the tool): the catalog lookup, the
/// discovery tools, the run, its metrics and audit line.
pub(super) async fn run_named_tool(
    app: &App,
    env: &ToolEnv<'_>,
    creds: &RequestCredentials<'_>,
    name: String,
    args: Map<String, Value>,
) -> Result<CallOutcome, RpcError> {
    // Boxed, like the tool below: the span wrapper moves a pointer.
    let lookup = Box::pin(catalog_for(env, creds));
    let catalog = trace::child("catalog", SpanKind::Internal, lookup).await;
    let (name, args) = match super::discovery::route(&catalog, name, args) {
        super::discovery::Routed::Run(name, args) => (name, args),
        super::discovery::Routed::Answered(out) => return Ok(out),
    };
    let Some(entry) = catalog.get(&name) else {
        return Err(RpcError::new(protocol::INVALID_PARAMS, format!("params.name: unknown tool `{name}`; call tools/list for the available tools, or search_tools to find a view's tool")));
    };
    let started = std::time::Instant::now();
    // The tool's future holds the ClickHouse request: built on the heap once, so
    // the wrappers move a pointer (docs/decisions.md, "Hop cost").
    let run = Box::pin(run_tool(env, creds, entry, &args));
    let (out, facts) = trace::collect_facts(run).await;
    app.metrics.tool_call(&ToolCallRecord {
        tool: &name,
        cluster: &creds.identity().cluster,
        outcome: out.status.label(),
        elapsed: started.elapsed(),
        returned: out.returned,
    });
    app.metrics.query_cost(&creds.identity().cluster, &facts);
    audit(
        creds.identity(),
        &name,
        out.status,
        &facts,
        started.elapsed(),
    );
    Ok(out)
}

/// The audit line of one tool call (target `chmcp::audit`): who, where, which tool,
/// the `query_id` that finds it in `system.query_log`, the outcome and the trace id;
/// the same facts go on the request's span. Request text (the tool name, the caller's
/// claims) is logged escaped (`?`).
fn audit(
    id: &RequestIdentity,
    tool: &str,
    status: CallStatus,
    facts: &CallFacts,
    elapsed: std::time::Duration,
) {
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    trace::set("chmcp.outcome", status.label());
    trace::set("db.response.returned_rows", facts.rows);
    trace::set("chmcp.result_bytes", facts.bytes);
    trace::set("chmcp.truncated", facts.truncated);
    if let (Some(rows), Some(bytes)) = (facts.read_rows, facts.read_bytes) {
        trace::set("db.clickhouse.read_rows", rows);
        trace::set("db.clickhouse.read_bytes", bytes);
    }
    if let Some(stage) = facts.budget_refusal {
        trace::set("chmcp.budget_refusal", stage);
    }
    tracing::info!(
        target: "chmcp::audit",
        subject = ?id.caller.subject,
        email = ?id.caller.email.as_deref().unwrap_or(""),
        // Passed the cluster name rules at routing.
        cluster = %id.cluster,
        tool = ?tool,
        query_id = %facts.query_id.as_deref().unwrap_or(""),
        outcome = status.label(),
        rows = facts.rows,
        bytes = facts.bytes,
        truncated = facts.truncated,
        read_rows = facts.read_rows,
        read_bytes = facts.read_bytes,
        budget_refusal = facts.budget_refusal,
        elapsed_ms,
        trace_id = %trace::trace_id().unwrap_or_default(),
        "tool call"
    );
}

/// Runs a tool with the request's credentials; identity re-probes and retries once
/// when ClickHouse refuses a remembered scheme (`RequestCredentials::run`).
async fn run_tool(
    env: &ToolEnv<'_>,
    creds: &RequestCredentials<'_>,
    entry: &Entry,
    args: &Map<String, Value>,
) -> CallOutcome {
    let id = creds.identity();
    let run = |c| {
        let ctx = ToolContext::new(env, id, c);
        async move { call_tool(&ctx, entry, args).await }
    };
    creds
        .run(run)
        .await
        .unwrap_or_else(|e| tool_error(format!("ClickHouse did not accept your identity: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stateless_results_carry_result_type_hints_and_server_info() {
        let v = decorate(Era::Stateless, json!({"tools": []}), true);
        assert_eq!(v["resultType"], "complete");
        assert_eq!(v["ttlMs"], LIST_TTL_MS);
        assert_eq!(v["cacheScope"], "private");
        assert_eq!(
            v["_meta"][protocol::META_SERVER_INFO]["name"],
            "chmcp-gateway"
        );
        let legacy = decorate(
            Era::Initialize,
            json!({"tools": [], "resultType": "complete"}),
            true,
        );
        assert_eq!(legacy, json!({"tools": []}));
    }

    #[test]
    fn tool_list_answer_is_valid_json_in_both_eras() {
        let catalog = Arc::new(Catalog::new(crate::tools::schema::static_entries(
            &crate::config::Config::default(),
        )));
        for era in [Era::Initialize, Era::Stateless] {
            let extra = serde_json::to_string(&decorate(era, json!({}), true)).unwrap();
            let text = Answer::Tools {
                catalog: catalog.clone(),
                extra: extra.into(),
            }
            .response_text(&json!(7));
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(v["id"], 7);
            assert_eq!(v["result"]["tools"][0]["name"], "execute_query");
            assert_eq!(
                v["result"].get("resultType").is_some(),
                era == Era::Stateless,
                "{text}"
            );
        }
    }

    #[test]
    fn a_long_list_is_shared_with_the_catalog_and_reads_as_the_copied_one_would() {
        let statics = crate::tools::schema::static_entries(&crate::config::Config::default());
        let many: Vec<_> = (0..40).flat_map(|_| statics.iter().cloned()).collect();
        let catalog = Arc::new(Catalog::new(many));
        assert!(catalog.listed_json().len() >= SPLICE_FROM);
        let extra = serde_json::to_string(&decorate(Era::Stateless, json!({}), true)).unwrap();
        let answer = || Answer::Tools {
            catalog: catalog.clone(),
            extra: extra.clone().into(),
        };
        let Reply::Spliced { shared, .. } = answer().reply(&json!(7)) else {
            panic!("a long list is spliced");
        };
        // The very bytes the catalog holds, not a copy.
        assert_eq!(shared.as_ptr(), catalog.listed_json().as_ptr());
        let text = answer().response_text(&json!(7));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(v["id"], 7);
        assert_eq!(
            v["result"]["tools"].as_array().map(Vec::len),
            Some(catalog.len())
        );
        assert!(v["result"].get("resultType").is_some(), "{text}");
        // A short one is one buffer.
        let short = Arc::new(Catalog::new(statics));
        let one = Answer::Tools {
            catalog: short,
            extra: extra.clone().into(),
        }
        .reply(&json!(7));
        assert!(matches!(one, Reply::Whole(_)));
    }

    #[test]
    fn a_typed_tool_result_has_the_shape_decorate_gives_a_json_result() {
        let out = crate::tools::outcome::structured(json!({"rows": [["1"]], "row_count": 1}));
        for era in [Era::Initialize, Era::Stateless] {
            // What the result looked like when it went through a JSON tree.
            let mut tree = serde_json::to_value(&out.result).unwrap();
            if era == Era::Initialize {
                tree.as_object_mut().unwrap().remove("resultType");
            }
            let tree = decorate(era, tree, false);
            let typed = serde_json::to_value(shape_call(era, out.result.clone())).unwrap();
            assert_eq!(typed, tree, "{era:?}");
            assert_eq!(typed.get("resultType").is_some(), era == Era::Stateless);
            let text = Answer::Tool(shape_call(era, out.result.clone())).response_text(&json!("a"));
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!((&v["id"], &v["result"]), (&json!("a"), &tree));
        }
    }

    #[test]
    fn method_labels_are_known_names_or_other() {
        for m in KNOWN_METHODS {
            assert_eq!(method_label(m), *m);
        }
        assert_eq!(method_label("x\nFORGED"), "other");
        assert_eq!(method_label("Tools/List"), "other");
        assert_eq!(method_label(""), "other");
    }
}

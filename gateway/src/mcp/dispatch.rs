//! JSON-RPC methods → gateway behaviour. Transport-independent: HTTP and stdio both
//! call [`handle_request`] with a request already classified by era.

use std::sync::Arc;

use rmcp::model::Implementation;
use serde_json::{json, Map, Value};

use super::protocol::{self, Era, LIST_TTL_MS};
use crate::app::{App, Principal, RequestIdentity, Runtime};
use crate::telemetry::Metrics;
use crate::tools::call::{describe, schema_overview, tool_error, CallOutcome};
use crate::tools::{call_tool, Catalog, Entry};

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
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        json!({"jsonrpc": "2.0", "id": id, "error": e})
    }
}

/// Code for a request the client cancelled (as LSP uses it).
pub const REQUEST_CANCELLED: i64 = -32800;
const SCHEMA_URI: &str = "clickhouse://schema";
const TABLE_TEMPLATE: &str = "clickhouse://table/{database}/{table}";
/// Pre-2026 code for an unknown resource; 2026-07-28 uses -32602 (SEP-2164).
const LEGACY_RESOURCE_NOT_FOUND: i64 = -32002;

const INSTRUCTIONS: &str = "Query ClickHouse with SQL. Start with list_databases, list_tables and describe_table to learn the schema, then execute_query with one read-only statement. Results are capped: aggregate or add LIMIT for large tables.";

pub fn server_info() -> Implementation {
    let mut i = Implementation::new("chmcp-gateway", env!("CARGO_PKG_VERSION"));
    i.title = Some("ClickHouse MCP gateway".into());
    i
}

fn capabilities() -> Value {
    // Tools and resources only; the catalog does not change within a request's life.
    json!({"tools": {"listChanged": false}, "resources": {}})
}

fn params_obj(params: &Option<Value>) -> Result<Map<String, Value>, RpcError> {
    match params {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(RpcError::new(
            protocol::INVALID_PARAMS,
            "params must be an object",
        )),
    }
}

fn required_str(p: &Map<String, Value>, key: &str) -> Result<String, RpcError> {
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
fn decorate(era: Era, mut result: Value, cacheable: bool) -> Value {
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

/// A result, as a JSON tree or (for `tools/list`, the hottest call) the catalog's tool
/// list serialized once per catalog and spliced into the response text.
#[derive(Debug)]
pub enum Answer {
    Json(Value),
    Tools {
        catalog: Arc<Catalog>,
        /// The era's extra result fields as a JSON object (`{}` when none).
        extra: String,
    },
}

impl Answer {
    /// The whole JSON-RPC response for request `id`, built in one buffer.
    pub fn response_text(self, id: &Value) -> String {
        let id = serde_json::to_string(id).unwrap_or_else(|_| "null".into());
        let result = match self {
            Answer::Json(v) => serde_json::to_string(&v).unwrap_or_else(|_| "{}".into()),
            Answer::Tools { catalog, extra } => {
                let tools = catalog.listed_json();
                let rest = extra.strip_prefix('{').unwrap_or("}");
                let mut r = String::with_capacity(tools.len() + extra.len() + 96 + id.len());
                r.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
                r.push_str(&id);
                r.push_str(",\"result\":{\"tools\":");
                r.push_str(tools);
                if rest != "}" {
                    r.push(',');
                }
                r.push_str(rest);
                r.push('}');
                return r;
            }
        };
        format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result}}}")
    }
}

/// Answers one request. Tool failures are results (`isError`), never errors here.
pub async fn handle_request(
    app: &App,
    rt: &Arc<Runtime>,
    id: &RequestIdentity,
    era: Era,
    method: &str,
    params: &Option<Value>,
) -> Result<Answer, RpcError> {
    Metrics::inc(&app.metrics.mcp_requests, &[("method", method)]);
    if method == "tools/list" {
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
        let catalog = app.catalog_for(rt, id).await;
        // The era's decoration, spliced after the tool list when the response is written.
        let extra =
            serde_json::to_string(&decorate(era, json!({}), true)).unwrap_or_else(|_| "{}".into());
        return Ok(Answer::Tools { catalog, extra });
    }
    handle_value(app, rt, id, era, method, params)
        .await
        .map(Answer::Json)
}

async fn handle_value(
    app: &App,
    rt: &Arc<Runtime>,
    id: &RequestIdentity,
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
        (_, "tools/call") => {
            let name = required_str(&p, "name")?;
            let args = match p.get("arguments") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(a)) => a.clone(),
                Some(_) => {
                    return Err(RpcError::new(
                        protocol::INVALID_PARAMS,
                        "params.arguments must be an object",
                    ))
                }
            };
            let catalog = app.catalog_for(rt, id).await;
            let Some(entry) = catalog.get(&name) else {
                return Err(RpcError::new(protocol::INVALID_PARAMS, format!("params.name: unknown tool `{name}`; call tools/list for the available tools")));
            };
            let started = std::time::Instant::now();
            let out = run_tool(app, rt, id, entry, &args).await;
            app.metrics
                .query_duration
                .get_or_create(&vec![("cluster", id.cluster.clone())])
                .observe(started.elapsed().as_secs_f64());
            Metrics::inc(
                &app.metrics.tool_calls,
                &[("tool", &name), ("outcome", out.outcome.label())],
            );
            let mut result = serde_json::to_value(&out.result)
                .map_err(|e| RpcError::new(protocol::INTERNAL_ERROR, e.to_string()))?;
            if era == Era::Initialize {
                if let Value::Object(m) = &mut result {
                    m.remove("resultType");
                }
            }
            Ok(decorate(era, result, false))
        }
        (_, "resources/list") => Ok(decorate(
            era,
            json!({"resources": [{
                "uri": SCHEMA_URI,
                "name": "schema",
                "title": "Databases and tables",
                "description": "The databases and tables you can see, as JSON.",
                "mimeType": "application/json"
            }]}),
            true,
        )),
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
            let creds = app.credentials(rt, id).await.map_err(|e| {
                RpcError::new(
                    protocol::INTERNAL_ERROR,
                    format!("ClickHouse did not accept your identity: {e}"),
                )
            })?;
            let ctx = app.tool_context(rt, id, creds);
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
            } else if let Some((db, table)) = uri
                .strip_prefix("clickhouse://table/")
                .and_then(|r| r.split_once('/'))
            {
                let db = percent_decode(db);
                let table = percent_decode(table);
                describe(&ctx, &db, &table).await.map_err(not_found)?
            } else {
                return Err(not_found(format!("Resource not found: {uri}")));
            };
            Ok(decorate(
                era,
                json!({"contents": [{"uri": uri, "mimeType": "application/json", "text": body.to_string()}]}),
                true,
            ))
        }
        _ => Err(RpcError::new(
            protocol::METHOD_NOT_FOUND,
            format!("Method not found: {method}"),
        )),
    }
}

/// Runs a tool with the caller's credentials. When a remembered identity method is
/// refused (the endpoint changed scheme), the endpoint is re-probed (at most every
/// 30 s) and the call runs once more.
async fn run_tool(
    app: &App,
    rt: &Runtime,
    id: &RequestIdentity,
    entry: &Entry,
    args: &Map<String, Value>,
) -> CallOutcome {
    let creds = match app.credentials(rt, id).await {
        Ok(c) => c,
        Err(e) => return tool_error(format!("ClickHouse did not accept your identity: {e}")),
    };
    let ctx = app.tool_context(rt, id, creds);
    let out = call_tool(&ctx, entry, args).await;
    let retry = ctx.auth_failed()
        && matches!(id.principal, Principal::Token { .. })
        && app
            .prober
            .note_auth_failure(&id.endpoint.key(), std::time::Instant::now());
    if !retry {
        return out;
    }
    match app.credentials(rt, id).await {
        Ok(creds) => call_tool(&app.tool_context(rt, id, creds), entry, args).await,
        Err(_) => out,
    }
}

/// `%XX` escapes in resource URI segments (table names may hold any character).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
                extra,
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
    fn percent_escapes_decode() {
        assert_eq!(percent_decode("my%20table"), "my table");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%2"), "end%2");
    }
}

//! Everything one tool call needs, and the query plumbing every tool shares: the
//! settings the gateway adds, capped row results, whole metadata reads.

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::ContentBlock as Content;
use serde_json::Value;

use super::dynamic::ToolRules;
use super::outcome::{query_failed, structured_with_text, CallOutcome, CallStatus};
use super::result::{compact_text, narrowing_hint, Caps, ResultBuilder};
use super::system_columns::SystemColumns;
use super::Catalog;
use crate::catalog::CatalogCache;
use crate::clickhouse::settings::ReadOnly;
use crate::clickhouse::sql::quote_string;
use crate::clickhouse::{ClickHouse, Credentials, Endpoint, QueryError, QueryOptions};
use crate::config::{Config, ResultFormat};
use crate::identity::{Caller, IdentityProber, RequestCredentials, RequestIdentity};
use crate::telemetry::trace;

/// Grace beyond `max_execution_time` before the gateway's own timeout fires, so
/// ClickHouse's own (clearer) timeout error normally arrives first.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);
/// Bound on rows read by listings and discovery.
const MAX_METADATA_ROWS: usize = 10_000;

/// What tools, discovery and the catalog lookup borrow from one configuration
/// generation and from the process, lent per request by `app::App::tool_env`: the
/// domain reads these and never the whole generation (its JWKS cache, broker, gate).
#[derive(Clone, Copy)]
pub struct ToolEnv<'a> {
    pub ch: &'a ClickHouse,
    pub config: &'a Config,
    /// `server.tools` discovery rules, compiled once per generation.
    pub tool_rules: &'a ToolRules,
    /// The static catalog, shared by every caller when no rule asks for discovery.
    pub static_catalog: &'a Arc<Catalog>,
    pub system_columns: &'a SystemColumns,
    /// Per-caller catalogs (`catalog::CatalogCache`), process-wide.
    pub catalogs: &'a CatalogCache<Catalog>,
    pub prober: &'a IdentityProber,
}

impl<'a> ToolEnv<'a> {
    /// A request's credentials toward its endpoint, settled at most once for the whole
    /// request (discovery and the tool share them).
    pub fn credentials(&self, identity: &'a RequestIdentity) -> RequestCredentials<'a> {
        RequestCredentials::new(self.prober, self.ch, identity)
    }
}

/// Everything one call needs; built per call by `mcp::dispatch` (and per discovery by
/// `catalog::discover`) from the [`ToolEnv`] and the settled credentials.
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
    pub system_columns: &'a SystemColumns,
}

impl<'a> ToolContext<'a> {
    /// The context of one call: this generation's client and rules, the request's
    /// identity, and the credentials identity settled for it.
    pub fn new(env: &ToolEnv<'a>, id: &RequestIdentity, creds: Credentials) -> Self {
        Self {
            ch: env.ch,
            config: env.config,
            tool_rules: env.tool_rules,
            endpoint: id.endpoint.clone(),
            creds,
            roles: id.roles.clone(),
            cluster: id.cluster.clone(),
            caller: id.caller.clone(),
            system_columns: env.system_columns,
        }
    }

    fn query_id(&self) -> String {
        format!("chmcp-{:032x}", fastrand::u128(..))
    }

    /// Options for one query, with the settings the gateway adds on its own.
    pub(super) fn options(
        &self,
        tool: &str,
        sql: String,
        read_only: ReadOnly,
        caps: Caps,
    ) -> QueryOptions {
        let ch = &self.config.clickhouse;
        // Serialized straight from borrowed fields (no JSON tree per call); fields in
        // the order a `json!` object would write them.
        #[derive(serde::Serialize)]
        struct LogComment<'c> {
            cluster: &'c str,
            email: Option<&'c str>,
            sub: &'c str,
            tool: &'c str,
        }
        let log_comment = serde_json::to_string(&LogComment {
            cluster: &self.cluster,
            email: self.caller.email.as_deref(),
            sub: &self.caller.subject,
            tool,
        })
        .unwrap_or_default();
        let mut ours: Vec<(&'static str, String)> = vec![
            ("log_comment", log_comment),
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
            cluster: self.cluster.clone(),
        }
    }

    pub(super) fn caps(&self) -> Caps {
        Caps {
            rows: self.config.clickhouse.row_cap(),
            bytes: self.config.clickhouse.byte_cap(),
        }
    }

    /// A query whose rows go back to the caller, capped.
    pub(super) async fn rows(&self, tool: &str, opts: QueryOptions) -> CallOutcome {
        self.rows_as(tool, opts, self.config.server.result_format)
            .await
    }

    /// [`Self::rows`] with the text block in `format` (a per-call `result_format`).
    pub(super) async fn rows_as(
        &self,
        tool: &str,
        opts: QueryOptions,
        format: ResultFormat,
    ) -> CallOutcome {
        let mut builder = ResultBuilder::new(self.caps());
        match self
            .ch
            .query_rows(&self.endpoint, &self.creds, &opts, &mut builder)
            .await
        {
            Ok(outcome) => {
                let truncation = builder.truncation().cloned();
                let (rows, bytes) = builder.returned();
                trace::note(|f| {
                    (f.rows, f.bytes) = (rows, bytes);
                    f.truncated = truncation.is_some();
                });
                let v = builder.finish(outcome.elapsed.as_millis() as u64);
                let text = match format {
                    ResultFormat::Compact => compact_text(&v),
                    ResultFormat::Json => v.to_string(),
                };
                let mut out = structured_with_text(v, text);
                out.returned = Some((rows, bytes));
                if let Some(t) = truncation {
                    out.result.content.push(Content::text(narrowing_hint(&t)));
                    out.status = CallStatus::Truncated;
                }
                out
            }
            Err(e) => {
                // ClickHouse's message quotes the query: an escaped field (`?`).
                tracing::info!(tool, query_id = %opts.query_id, error = ?e.to_string(), "query failed");
                query_failed(&e)
            }
        }
    }

    /// A metadata query read whole (listings, discovery).
    pub(crate) async fn metadata(
        &self,
        tool: &str,
        sql: String,
    ) -> Result<Vec<Vec<Value>>, QueryError> {
        let opts = self.options(tool, sql, ReadOnly::Preferred, Caps::default());
        self.ch
            .query_all(&self.endpoint, &self.creds, &opts, MAX_METADATA_ROWS)
            .await
            .map(|(_, rows)| rows)
    }

    /// Columns that `system.<table>` has on this server (older servers lack some).
    /// Read once per endpoint and remembered: it depends on the server version only.
    pub(crate) async fn system_columns(&self, table: &str) -> Result<Arc<Vec<String>>, QueryError> {
        let endpoint = self.endpoint.key();
        if let Some(cols) = self.system_columns.known(&endpoint, table) {
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
        Ok(self.system_columns.remember(&endpoint, table, cols))
    }
}

/// A text cell of a metadata row (empty when absent or not text).
pub(crate) fn text_cell(row: &[Value], i: usize) -> String {
    row.get(i)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

//! The HTTP client for ClickHouse: one query at a time, streamed, sent with the
//! gateway's own settings that the gateway's probe found the server takes for this
//! identity (`settings`), and killed whenever the gateway stops reading before the end
//! (cap, timeout, caller gone).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use hyper::{Method, Request, Uri};
use serde_json::Value;

use super::error::ServerError;
use super::settings::{self, Acceptance, ReadOnly, SettingsError, GATEWAY_SETTINGS};
use super::sql::quote_string;
use super::stats;
use super::stream::{Column, CompactReader, Event, StreamError};
use super::transport::{Response, Transport};
use crate::config::{ClickHouseConfig, Secret};
use crate::telemetry::metrics::{ClusterLabels, HistogramFamily};
use crate::telemetry::trace::{self, SpanKind};

/// One ClickHouse HTTP endpoint (after `{cluster}` substitution).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub scheme: &'static str,
    pub host: String,
    pub port: u16,
    /// Address to dial instead of `host`; the Host header and SNI stay `host`.
    pub connect_host: Option<String>,
}

impl Endpoint {
    pub fn from_config(c: &ClickHouseConfig) -> Self {
        Self {
            scheme: c.scheme(),
            host: c.host.clone(),
            port: c.port,
            connect_host: Some(c.connect_host.clone()).filter(|h| !h.is_empty()),
        }
    }
    /// `host:port`: what per-endpoint memory (settings, identity method) is keyed by.
    pub fn key(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    fn url(&self) -> String {
        let host = if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}://{}:{}/", self.scheme, host, self.port)
    }
}

/// Who the query runs as.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Static user and password (OAuth off), or a username with the caller's JWT as
    /// password (the Basic identity path).
    Basic { user: String, password: Secret },
    /// The caller's JWT for servers with token processors; `class` is its
    /// [`Credentials::identity_class`], from the sha256 the gate already computed.
    Bearer { token: Secret, class: Arc<str> },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user})"),
            Credentials::Bearer { .. } => f.write_str("Bearer"),
        }
    }
}

impl Credentials {
    /// Bearer credentials for `token`, whose sha256 is `token_sha256` (the gate's digest:
    /// the token is not hashed again for every query).
    pub fn bearer(token: Secret, token_sha256: &[u8; 32]) -> Self {
        let mut class = String::with_capacity(6 + 64);
        class.push_str("token:");
        crate::fingerprint::push_hex(&mut class, token_sha256);
        Credentials::Bearer {
            token,
            class: class.into(),
        }
    }

    /// Whom ClickHouse applies a profile to: the user for Basic; for Bearer the server
    /// maps the token to a user, so each token is its own class (by its full sha256:
    /// two identities must never share what was learned about one of them).
    pub fn identity_class(&self) -> String {
        match self {
            Credentials::Basic { user, .. } => format!("user:{user}"),
            Credentials::Bearer { class, .. } => class.to_string(),
        }
    }

    fn header(&self) -> Option<HeaderValue> {
        let text = match self {
            Credentials::Basic { user, password } => {
                let raw = format!("{user}:{}", password.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Credentials::Bearer { token, .. } => format!("Bearer {}", token.expose()),
        };
        let mut v = HeaderValue::from_str(&text).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// Everything about one query except where and as whom.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    pub sql: String,
    pub database: String,
    pub query_id: String,
    /// Settings the gateway adds on its own (never `readonly`: see `read_only`); those
    /// the gateway's probe found refused for this identity are not sent.
    pub gateway_settings: Vec<(&'static str, String)>,
    /// Whether the query must run read-only (`readonly=2`, or a read-only profile).
    pub read_only: ReadOnly,
    /// Settings the caller asked for; a refusal is the caller's error.
    pub settings: Vec<(String, String)>,
    pub roles: Vec<String>,
    /// The gateway's own bound on the whole query, enforced whatever the server does.
    pub timeout: Duration,
    /// The routed cluster, only for the request-duration metric's label (empty for the
    /// gateway's own probes: labelled `other`).
    pub cluster: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Server(ServerError),
    #[error("cannot reach ClickHouse at {endpoint}: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error("the query ran longer than {}s (clickhouse.max_execution_time) and was cancelled", .0.as_secs())]
    Timeout(Duration),
    #[error("{0}")]
    Format(String),
    #[error("{0}")]
    Settings(SettingsError),
}

impl QueryError {
    /// Auth-class failures (docs/spec-notes.md, "Identity"); everything else is transient or the query's.
    pub fn is_auth_class(&self) -> bool {
        matches!(self, QueryError::Server(e) if e.is_auth_class())
    }

    /// A span's status text: ClickHouse's message quotes the query's literals, so without
    /// `telemetry.include_sql` only its code and exception name (or this error's class).
    pub fn span_status(&self, include_sql: bool) -> String {
        match self {
            _ if include_sql => self.to_string(),
            QueryError::Server(e) => match (e.code, &e.name) {
                (Some(code), Some(name)) => format!("Code: {code}. {name}"),
                (Some(code), None) => format!("Code: {code}"),
                _ => format!("HTTP {}", e.status),
            },
            QueryError::Timeout(_) | QueryError::Settings(_) => self.to_string(),
            other => other.status_label().to_string(),
        }
    }

    /// The `status` label of `chmcp_clickhouse_query_duration_seconds`.
    pub fn status_label(&self) -> &'static str {
        match self {
            QueryError::Server(e) if e.is_auth_class() => "auth_refused",
            QueryError::Server(_) => "server_error",
            QueryError::Unreachable { .. } => "unreachable",
            QueryError::Timeout(_) => "timeout",
            QueryError::Format(_) => "format_error",
            QueryError::Settings(_) => "settings_refused",
        }
    }
}

impl From<StreamError> for QueryError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Server(s) => QueryError::Server(s),
            StreamError::Format(m) => QueryError::Format(m),
        }
    }
}

/// Receives a result as it streams in; `row` returns false to stop reading.
pub trait RowSink {
    fn columns(&mut self, columns: Vec<Column>);
    fn row(&mut self, row: Vec<Value>) -> bool;
    /// How many bytes of JSON the next row may take before `row` would refuse it;
    /// `None`: no byte bound. Lets a row that cannot fit be abandoned while it arrives.
    fn room(&self) -> Option<u64> {
        None
    }
    /// The row in progress already needs more than `room`; reading stops after this.
    fn row_too_large(&mut self, _min_bytes: u64) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowsOutcome {
    /// The sink asked to stop before the end; the query was cancelled.
    pub stopped_early: bool,
    pub elapsed: Duration,
}

/// (`host:port`, identity class): whose settings acceptance was learned where.
type IdentityKey = (String, String);

/// How long what a probe learned about an identity's settings is trusted. Profiles
/// change rarely; a query refused for a setting forgets it sooner (`FORGET_AFTER`).
const ACCEPTANCE_TTL: Duration = Duration::from_secs(600);
/// A setting error on a query makes the gateway re-probe, but at most this often per
/// identity, so a caller cannot turn every call into several probe queries.
const FORGET_AFTER: Duration = Duration::from_secs(30);
/// Bound on remembered identities; past it, expired entries go, then all.
const MAX_ACCEPTANCES: usize = 10_000;
/// ClickHouse's UNKNOWN_SETTING: the server version lacks the setting for everyone.
const UNKNOWN_SETTING: u32 = 115;

/// Metadata and discovery results are collected whole; this bounds their JSON so a
/// hostile or huge catalog costs a bounded amount of memory.
const MAX_COLLECT_BYTES: u64 = 16 * 1024 * 1024;

/// After the rows, only statistics follow; more than this is not worth reading to
/// keep the connection pooled.
const MAX_TRAILER_BYTES: usize = 64 * 1024;

/// A non-2xx body is ClickHouse's exception text; more than this is not an error
/// message worth holding.
const MAX_ERROR_BYTES: usize = 1024 * 1024;

/// A cheap handle; clones share the connection pool and per-endpoint memory.
#[derive(Clone)]
pub struct ClickHouse {
    inner: Arc<Inner>,
    /// `chmcp_clickhouse_query_duration_seconds` and its cluster labels, when built
    /// [`ClickHouse::observed_by`] (the gateway); tools and tests without it record nothing.
    requests: Option<(HistogramFamily, ClusterLabels)>,
}

struct Inner {
    http: Transport,
    headers: HeaderMap,
    /// What the settings probe learned, by (`host:port`, identity class).
    acceptance: Mutex<HashMap<IdentityKey, (Instant, Arc<Acceptance>)>>,
    /// Settings an endpoint's server version does not know at all (by `host:port`):
    /// true for every identity, so later probes skip them.
    unknown_settings: Mutex<HashMap<String, HashSet<&'static str>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("{key}: {message}")]
    Config { key: &'static str, message: String },
}

impl ClickHouse {
    pub fn new(c: &ClickHouseConfig) -> Result<Self, ClientBuildError> {
        let http = Transport::new(&c.tls)?;
        let mut headers = HeaderMap::new();
        for (k, v) in &c.http_headers {
            let key = format!("clickhouse.http_headers.{k}");
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| ClientBuildError::Config {
                    key: "clickhouse.http_headers",
                    message: format!("{key}: {e}"),
                })?;
            let value = HeaderValue::from_str(v).map_err(|e| ClientBuildError::Config {
                key: "clickhouse.http_headers",
                message: format!("{key}: {e}"),
            })?;
            headers.insert(name, value);
        }
        Ok(Self {
            requests: None,
            inner: Arc::new(Inner {
                http,
                headers,
                acceptance: Mutex::default(),
                unknown_settings: Mutex::default(),
            }),
        })
    }

    /// This client, recording each streamed query's duration in `family`.
    pub fn observed_by(self, family: HistogramFamily, clusters: ClusterLabels) -> Self {
        Self {
            requests: Some((family, clusters)),
            ..self
        }
    }

    /// Runs a query and streams its rows into `sink`. If the sink stops early, the
    /// timeout passes, or this future is dropped, the query is killed on the server.
    pub async fn query_rows(
        &self,
        ep: &Endpoint,
        creds: &Credentials,
        opts: &QueryOptions,
        sink: &mut (dyn RowSink + Send),
    ) -> Result<RowsOutcome, QueryError> {
        let started = Instant::now();
        let mut guard = KillOnDrop {
            ch: self.clone(),
            ep: ep.clone(),
            creds: creds.clone(),
            query_id: opts.query_id.clone(),
            armed: true,
        };
        let work = async {
            let resp = self.send(ep, creds, opts).await?;
            trace::child("read result", SpanKind::Internal, read_rows(ep, resp, sink)).await
        };
        let result = trace::child("clickhouse query", SpanKind::Client, async {
            query_span(ep, opts);
            let r = match tokio::time::timeout(opts.timeout, work).await {
                Ok(r) => r,
                Err(_) => Err(QueryError::Timeout(opts.timeout)),
            };
            if let Err(e) = &r {
                trace::set_error(&e.span_status(trace::include_sql()));
            }
            r
        })
        .await;
        if let Some((family, clusters)) = &self.requests {
            let status = result
                .as_ref()
                .map_or_else(QueryError::status_label, |_| "ok");
            crate::telemetry::Metrics::observe(
                family,
                &[
                    ("cluster", &clusters.label(&opts.cluster)),
                    ("status", status),
                ],
                started.elapsed().as_secs_f64(),
            );
        }
        match result {
            Ok(stopped_early) => {
                // A clean end needs no kill; stopping early does.
                guard.armed = stopped_early;
                Ok(RowsOutcome {
                    stopped_early,
                    elapsed: started.elapsed(),
                })
            }
            Err(e) => {
                // A server error means the query is over; anything else may still run.
                guard.armed = !matches!(e, QueryError::Server(_));
                Err(e)
            }
        }
    }

    /// Runs a small query and collects it whole (discovery, listings), at most
    /// `max_rows` rows and `MAX_COLLECT_BYTES` of JSON.
    pub async fn query_all(
        &self,
        ep: &Endpoint,
        creds: &Credentials,
        opts: &QueryOptions,
        max_rows: usize,
    ) -> Result<(Vec<Column>, Vec<Vec<Value>>), QueryError> {
        struct Collect {
            columns: Vec<Column>,
            rows: Vec<Vec<Value>>,
            max_rows: usize,
            bytes: u64,
        }
        impl RowSink for Collect {
            fn columns(&mut self, c: Vec<Column>) {
                self.columns = c;
            }
            fn row(&mut self, r: Vec<Value>) -> bool {
                let size = serde_json::to_string(&r).map_or(0, |s| s.len() as u64);
                if self.bytes + size > MAX_COLLECT_BYTES {
                    return false;
                }
                self.bytes += size;
                self.rows.push(r);
                self.rows.len() < self.max_rows
            }
            fn room(&self) -> Option<u64> {
                Some(MAX_COLLECT_BYTES.saturating_sub(self.bytes))
            }
        }
        let mut sink = Collect {
            columns: Vec::new(),
            rows: Vec::new(),
            max_rows,
            bytes: 0,
        };
        let outcome = self.query_rows(ep, creds, opts, &mut sink).await?;
        if outcome.stopped_early && sink.rows.len() < max_rows {
            tracing::warn!(
                query_id = %opts.query_id,
                limit = MAX_COLLECT_BYTES,
                "a metadata query's result was cut at the byte bound"
            );
        }
        Ok((sink.columns, sink.rows))
    }

    /// Sends the query once, with the gateway's settings that this identity may set on
    /// this server. A refusal is never retried with fewer settings: a caller's query
    /// can make ClickHouse say anything, so its errors teach the gateway nothing.
    async fn send(
        &self,
        ep: &Endpoint,
        creds: &Credentials,
        opts: &QueryOptions,
    ) -> Result<Response, QueryError> {
        self.inner.http.dial(&ep.host, ep.connect_host.as_deref());
        let ours = if opts.gateway_settings.is_empty() && opts.read_only == ReadOnly::Off {
            Vec::new()
        } else {
            let acceptance = self.acceptance(ep, creds).await?;
            settings::plan(&acceptance, &opts.gateway_settings, opts.read_only)
                .map_err(QueryError::Settings)?
        };
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(ours.len() + 4);
        params.extend(ours.iter().copied());
        for (k, v) in &opts.settings {
            params.push((k, v));
        }
        for r in &opts.roles {
            params.push(("role", r));
        }
        match self
            .post(
                ep,
                creds,
                &opts.sql,
                &opts.query_id,
                &opts.database,
                &params,
            )
            .await
        {
            Err(QueryError::Server(e)) if !ours.is_empty() && e.refused_setting().is_some() => {
                // The profile may have changed since the probe: probe again soon. Only
                // the gateway's own probe decides what is sent next time.
                self.forget_acceptance(ep, creds);
                Err(QueryError::Server(e))
            }
            other => other,
        }
    }

    /// One POST; a non-2xx answer is the server's error.
    async fn post(
        &self,
        ep: &Endpoint,
        creds: &Credentials,
        sql: &str,
        query_id: &str,
        database: &str,
        settings: &[(&str, &str)],
    ) -> Result<Response, QueryError> {
        let mut params: Vec<(&str, &str)> = Vec::with_capacity(settings.len() + 3);
        params.push(("query_id", query_id));
        params.push(("default_format", "JSONCompact"));
        if !database.is_empty() {
            params.push(("database", database));
        }
        params.extend_from_slice(settings);
        // The one parse of this query's URL (reqwest parsed it three times).
        let uri = Uri::try_from(request_url(ep, &params)).map_err(|e| QueryError::Unreachable {
            endpoint: ep.key(),
            message: format!("not a valid URL for this endpoint: {e}"),
        })?;
        let mut req = Request::new(sql.to_string());
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        headers.reserve(self.inner.headers.len() + 2);
        // The configured headers first, so the gateway's own two always win.
        for (name, value) in &self.inner.headers {
            headers.insert(name, value.clone());
        }
        if let Ok(tp) = HeaderValue::try_from(trace::traceparent()) {
            headers.insert(TRACEPARENT, tp);
        }
        if let Some(h) = creds.header() {
            headers.insert(AUTHORIZATION, h);
        }
        let resp = self
            .inner
            .http
            .send(req)
            .await
            .map_err(|e| QueryError::Unreachable {
                endpoint: ep.key(),
                message: e.describe(),
            })?;
        if resp.status.is_success() {
            return Ok(resp);
        }
        let status = resp.status.as_u16();
        let body = resp.collect(MAX_ERROR_BYTES).await;
        Err(QueryError::Server(ServerError::parse(
            status,
            &String::from_utf8_lossy(&body),
        )))
    }

    /// What this identity may set on this endpoint: remembered, or probed now.
    async fn acceptance(
        &self,
        ep: &Endpoint,
        creds: &Credentials,
    ) -> Result<Arc<Acceptance>, QueryError> {
        let key = (ep.key(), creds.identity_class());
        if let Some(a) = self.known_acceptance(&key) {
            return Ok(a);
        }
        let learned = Arc::new(self.probe_settings(ep, creds).await?);
        if let Ok(mut map) = self.inner.acceptance.lock() {
            if map.len() >= MAX_ACCEPTANCES {
                map.retain(|_, (at, _)| at.elapsed() < ACCEPTANCE_TTL);
                if map.len() >= MAX_ACCEPTANCES {
                    map.clear();
                }
            }
            map.insert(key, (Instant::now(), learned.clone()));
        }
        Ok(learned)
    }

    fn known_acceptance(&self, key: &IdentityKey) -> Option<Arc<Acceptance>> {
        let map = self.inner.acceptance.lock().ok()?;
        let (at, a) = map.get(key)?;
        (at.elapsed() < ACCEPTANCE_TTL).then(|| a.clone())
    }

    fn forget_acceptance(&self, ep: &Endpoint, creds: &Credentials) {
        if let Ok(mut map) = self.inner.acceptance.lock() {
            let key = (ep.key(), creds.identity_class());
            if map
                .get(&key)
                .is_some_and(|(at, _)| at.elapsed() >= FORGET_AFTER)
            {
                map.remove(&key);
            }
        }
    }

    /// The gateway's own probe: `SELECT 1` with every gateway setting (one round trip
    /// when all are taken); on a refusal, each setting alone, and the identity's own
    /// `readonly` level when `readonly` itself is refused.
    async fn probe_settings(
        &self,
        ep: &Endpoint,
        creds: &Credentials,
    ) -> Result<Acceptance, QueryError> {
        let unknown: HashSet<&'static str> = self
            .inner
            .unknown_settings
            .lock()
            .map(|m| m.get(&ep.key()).cloned().unwrap_or_default())
            .unwrap_or_default();
        let names: Vec<&'static str> = GATEWAY_SETTINGS
            .into_iter()
            .filter(|n| !unknown.contains(n))
            .collect();
        let all: Vec<(&str, &str)> = names
            .iter()
            .map(|n| (*n, settings::probe_value(n)))
            .collect();
        match self.probe_post(ep, creds, "SELECT 1", &all).await {
            Ok(()) => {
                return Ok(Acceptance::from_probe(
                    unknown.iter().map(|n| n.to_string()),
                    None,
                ))
            }
            Err(QueryError::Server(e)) if !e.is_auth_class() => {}
            Err(e) => return Err(e),
        }
        // One at a time: this runs once per identity, and only when a setting is refused.
        let mut refused: Vec<String> = unknown.iter().map(|n| n.to_string()).collect();
        for name in names {
            let one = [(name, settings::probe_value(name))];
            match self.probe_post(ep, creds, "SELECT 1", &one).await {
                Ok(()) => {}
                Err(QueryError::Server(e)) if !e.is_auth_class() => {
                    if e.code == Some(UNKNOWN_SETTING) {
                        self.remember_unknown(ep, name);
                    }
                    refused.push(name.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        let profile = if refused.iter().any(|n| n == settings::READONLY) {
            let opts = QueryOptions {
                sql: format!(
                    "SELECT value FROM system.settings WHERE name = {}",
                    quote_string(settings::READONLY)
                ),
                query_id: probe_query_id(),
                timeout: PROBE_TIMEOUT,
                ..Default::default()
            };
            // Boxed: this goes back through `send`, which (with no settings) skips the probe.
            let (_, rows) = Box::pin(self.query_all(ep, creds, &opts, 1)).await?;
            let value = rows
                .first()
                .and_then(|r| r.first())
                .and_then(Value::as_str)
                .map(str::to_string);
            Some(settings::parse_profile_readonly(value.as_deref()))
        } else {
            None
        };
        tracing::info!(
            endpoint = %ep.key(),
            refused = ?refused,
            profile_readonly = ?profile,
            "learned which of the gateway's settings this identity may set"
        );
        Ok(Acceptance::from_probe(refused, profile))
    }

    async fn probe_post(
        &self,
        ep: &Endpoint,
        creds: &Credentials,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<(), QueryError> {
        let run = async {
            let resp = self
                .post(ep, creds, sql, &probe_query_id(), "", settings)
                .await?;
            // Drain the tiny body so the connection returns to the pool.
            resp.collect(MAX_TRAILER_BYTES).await;
            Ok(())
        };
        tokio::time::timeout(PROBE_TIMEOUT, run)
            .await
            .unwrap_or(Err(QueryError::Timeout(PROBE_TIMEOUT)))
    }

    fn remember_unknown(&self, ep: &Endpoint, name: &'static str) {
        if let Ok(mut map) = self.inner.unknown_settings.lock() {
            if map.entry(ep.key()).or_default().insert(name) {
                tracing::info!(endpoint = %ep.key(), setting = name, "the server does not know this setting; not sending it");
            }
        }
    }

    /// Cancels a running query by id, in the background (`KILL QUERY ... ASYNC`).
    pub fn kill(&self, ep: &Endpoint, creds: &Credentials, query_id: &str) {
        let (ch, ep, creds) = (self.clone(), ep.clone(), creds.clone());
        let sql = format!(
            "KILL QUERY WHERE query_id = {} ASYNC",
            quote_string(query_id)
        );
        let query_id = query_id.to_string();
        // The kill belongs to the request's trace.
        tokio::spawn(trace::carry(async move {
            let opts = QueryOptions {
                sql,
                query_id: format!("{query_id}-kill"),
                timeout: Duration::from_secs(10),
                ..Default::default()
            };
            // `send` does not apply `opts.timeout` (the query paths do): bound it here, so
            // a stalled server cannot keep this task alive.
            let kill = async {
                let resp = ch.send(&ep, &creds, &opts).await?;
                resp.collect(MAX_TRAILER_BYTES).await;
                Ok::<(), QueryError>(())
            };
            match tokio::time::timeout(opts.timeout, kill).await {
                Ok(Ok(())) => tracing::debug!(query_id, "cancelled ClickHouse query"),
                Ok(Err(e)) => {
                    tracing::warn!(query_id, error = ?e.to_string(), "could not cancel ClickHouse query")
                }
                Err(_) => {
                    tracing::warn!(query_id, "could not cancel ClickHouse query: timed out")
                }
            }
        }));
    }
}

/// The endpoint's URL with the parameters, percent-encoded in one pass over their bytes
/// (RFC 3986's unreserved characters stay as they are). reqwest's `.query()` and
/// `fmt`-based encoders cost several times more per request; the result is parsed once,
/// into the request's `Uri`.
fn request_url(ep: &Endpoint, params: &[(&str, &str)]) -> String {
    fn encode(out: &mut String, s: &str) {
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push('%');
                for nibble in [b >> 4, b & 0xf] {
                    if let Some(c) = char::from_digit(u32::from(nibble), 16) {
                        out.push(c.to_ascii_uppercase());
                    }
                }
            }
        }
    }
    let mut url = ep.url();
    url.reserve(
        params
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>()
            + 16,
    );
    let mut sep = '?';
    for (k, v) in params {
        url.push(sep);
        encode(&mut url, k);
        url.push('=');
        encode(&mut url, v);
        sep = '&';
    }
    url
}

/// Bound on each settings-probe query.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// W3C trace context on every query: a server with OpenTelemetry support records its
/// own spans for the query under the gateway's (or the client's) trace.
const TRACEPARENT: &str = "traceparent";

/// The ClickHouse request span's attributes (OTel database conventions); the SQL
/// text only with `telemetry.include_sql`, since literals in it may be sensitive.
fn query_span(ep: &Endpoint, opts: &QueryOptions) {
    trace::set("db.system.name", "clickhouse");
    trace::set("db.query.id", opts.query_id.as_str());
    trace::set("server.address", ep.host.as_str());
    if !opts.database.is_empty() {
        trace::set("db.namespace", opts.database.as_str());
    }
    if trace::include_sql() {
        trace::set("db.query.text", opts.sql.as_str());
    }
    trace::note(|f| f.query_id = Some(opts.query_id.clone()));
}

fn probe_query_id() -> String {
    format!("chmcp-settings-probe-{:016x}", fastrand::u64(..))
}

/// Reads the stream into the sink; `Ok(true)` when the sink stopped early (a row
/// refused, or a row in progress that cannot fit the sink's room).
async fn read_rows(
    ep: &Endpoint,
    mut resp: Response,
    sink: &mut (dyn RowSink + Send),
) -> Result<bool, QueryError> {
    let mut reader = CompactReader::default();
    let summary = resp
        .headers
        .get("x-clickhouse-summary")
        .and_then(|v| v.to_str().ok())
        .and_then(stats::from_summary);
    loop {
        let chunk = resp.chunk().await.map_err(|e| QueryError::Unreachable {
            endpoint: ep.key(),
            message: format!("the response broke off: {}", e.describe()),
        })?;
        let Some(chunk) = chunk else {
            reader.finish()?;
            record_read(summary);
            return Ok(false);
        };
        reader.push(&chunk);
        while let Some(event) = reader.next_event()? {
            match event {
                Event::Columns(c) => sink.columns(c),
                Event::Row(r) => {
                    if !sink.row(r) {
                        return Ok(true);
                    }
                }
                Event::End => {
                    // Read the small trailer (totals, statistics) so the connection goes
                    // back to the pool instead of being closed with unread data.
                    // Its statistics say what the query read, to its end.
                    let mut trailer = reader.unread().to_vec();
                    let mut cut = false;
                    while let Ok(Some(c)) = resp.chunk().await {
                        if trailer.len() + c.len() > MAX_TRAILER_BYTES {
                            cut = true;
                            break;
                        }
                        trailer.extend_from_slice(&c);
                    }
                    // A cut trailer lacks the server's closing statistics; its last
                    // "statistics" could be text of the caller's (a WITH TOTALS row), so
                    // the summary header speaks instead.
                    let stats = if cut {
                        None
                    } else {
                        stats::from_trailer(&trailer)
                    };
                    record_read(stats.or(summary));
                    return Ok(false);
                }
            }
        }
        let pending = reader.pending_row_min_bytes();
        if sink.room().is_some_and(|room| pending > room) {
            sink.row_too_large(pending);
            return Ok(true);
        }
        // Parsing is CPU work and the body may always be ready: yield between chunks
        // so the query's timeout (polled after this future) can fire.
        tokio::task::yield_now().await;
    }
}

/// What a finished query read: on its span, and added to the tool call's facts.
fn record_read(read: Option<stats::ReadStats>) {
    let Some(read) = read else { return };
    trace::set("db.clickhouse.read_rows", read.rows);
    trace::set("db.clickhouse.read_bytes", read.bytes);
    trace::note(|f| {
        // Saturating: the counts are the server's (a header or the trailer).
        f.read_rows = Some(f.read_rows.unwrap_or(0).saturating_add(read.rows));
        f.read_bytes = Some(f.read_bytes.unwrap_or(0).saturating_add(read.bytes));
    });
}

/// Kills the query when the future running it is dropped (the caller went away).
struct KillOnDrop {
    ch: ClickHouse,
    ep: Endpoint,
    creds: Credentials,
    query_id: String,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed && tokio::runtime::Handle::try_current().is_ok() {
            self.ch.kill(&self.ep, &self.creds, &self.query_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_is_its_own_identity_class_by_its_full_sha256() {
        let digest = crate::fingerprint::sha256(b"a.jwt.sig");
        let c = Credentials::bearer(Secret::new("a.jwt.sig"), &digest);
        assert_eq!(
            c.identity_class(),
            format!("token:{}", crate::fingerprint::sha256_hex(b"a.jwt.sig"))
        );
        let other = Credentials::bearer(
            Secret::new("b.jwt.sig"),
            &crate::fingerprint::sha256(b"b.jwt.sig"),
        );
        assert_ne!(c.identity_class(), other.identity_class());
        let basic = Credentials::Basic {
            user: "alice".into(),
            password: Secret::new("a.jwt.sig"),
        };
        assert_eq!(basic.identity_class(), "user:alice");
    }

    #[tokio::test]
    async fn read_counts_from_the_server_add_up_saturating() {
        let huge = stats::ReadStats {
            rows: u64::MAX,
            bytes: u64::MAX,
        };
        let ((), facts) = trace::collect_facts(async {
            record_read(Some(huge));
            record_read(Some(huge));
        })
        .await;
        assert_eq!(
            (facts.read_rows, facts.read_bytes),
            (Some(u64::MAX), Some(u64::MAX))
        );
    }

    #[test]
    fn a_span_status_quotes_no_literal_unless_sql_may_be_recorded() {
        let e = QueryError::Server(ServerError::parse(
            500,
            "Code: 6. DB::Exception: Cannot parse string 'PRIVATE-SSN-123-45-6789' as UInt8: \
             syntax error at begin of string. (CANNOT_PARSE_TEXT) (version 26.1)",
        ));
        assert_eq!(e.span_status(false), "Code: 6. CANNOT_PARSE_TEXT");
        assert!(e.span_status(true).contains("PRIVATE-SSN"));
        // 18.16 names no exception: the code alone.
        let old = QueryError::Server(ServerError::parse(
            500,
            "Code: 6, e.displayText() = DB::Exception: Cannot parse string 'SECRET' as UInt8",
        ));
        assert_eq!(old.span_status(false), "Code: 6");
        let fmt = QueryError::Format("row 'SECRET' is not JSON".into());
        assert_eq!(fmt.span_status(false), "format_error");
    }

    #[test]
    fn request_url_percent_encodes_every_parameter_in_order() {
        let ep = Endpoint {
            scheme: "http",
            host: "::1".into(),
            port: 8123,
            connect_host: None,
        };
        let url = request_url(
            &ep,
            &[
                ("query_id", "chmcp-1"),
                ("log_comment", r#"{"tool":"q r","sub":"a&b=c"}"#),
                ("role", "ünïcode"),
            ],
        );
        assert_eq!(
            url,
            "http://[::1]:8123/?query_id=chmcp-1\
             &log_comment=%7B%22tool%22%3A%22q%20r%22%2C%22sub%22%3A%22a%26b%3Dc%22%7D\
             &role=%C3%BCn%C3%AFcode"
        );
        // What ClickHouse decodes is exactly what was given.
        let parsed = url::Url::parse(&url).expect("a valid URL");
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        assert_eq!(pairs[1].1, r#"{"tool":"q r","sub":"a&b=c"}"#);
        assert_eq!(pairs[2].1, "ünïcode");
        assert_eq!(request_url(&ep, &[]), "http://[::1]:8123/");
    }
}

// lint pass pending merge
#![allow(
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
//! The HTTP client for ClickHouse: one query at a time, streamed, with the optional
//! settings a server refuses remembered per endpoint, and the query killed whenever
//! the gateway stops reading before the end (cap, timeout, caller gone).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use serde_json::Value;

use super::error::ServerError;
use super::sql::quote_string;
use super::stream::{Column, CompactReader, Event, StreamError};
use crate::config::{ClickHouseConfig, Secret};

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
    /// The caller's JWT for servers with token processors.
    Bearer(Secret),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { user, .. } => write!(f, "Basic({user})"),
            Credentials::Bearer(_) => f.write_str("Bearer"),
        }
    }
}

impl Credentials {
    fn header(&self) -> Option<HeaderValue> {
        let text = match self {
            Credentials::Basic { user, password } => {
                let raw = format!("{user}:{}", password.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Credentials::Bearer(t) => format!("Bearer {}", t.expose()),
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
    /// Settings the gateway adds on its own; dropped (and remembered) when refused.
    pub optional_settings: Vec<(&'static str, String)>,
    /// Settings the caller asked for; a refusal is the caller's error.
    pub settings: Vec<(String, String)>,
    pub roles: Vec<String>,
    /// The gateway's own bound on the whole query, enforced whatever the server does.
    pub timeout: Duration,
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
}

impl QueryError {
    /// Auth-class failures (multicluster.md); everything else is transient or the query's.
    pub fn is_auth_class(&self) -> bool {
        matches!(self, QueryError::Server(e) if e.is_auth_class())
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowsOutcome {
    /// The sink asked to stop before the end; the query was cancelled.
    pub stopped_early: bool,
    pub elapsed: Duration,
}

/// A system table's columns and when they were read.
type SeenColumns = (Instant, Arc<Vec<String>>);

/// How long a server's system-table layout is trusted (it changes only on upgrade).
const SYSTEM_COLUMNS_TTL: Duration = Duration::from_secs(600);

/// A cheap handle; clones share the connection pool and per-endpoint memory.
#[derive(Clone)]
pub struct ClickHouse {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    headers: HeaderMap,
    /// Optional settings each endpoint refused (by `host:port`).
    refused: Mutex<HashMap<String, HashSet<String>>>,
    /// Columns each endpoint's `system.<table>` has (they differ by server version, not
    /// by user), by (`host:port`, table), with when they were read.
    system_columns: Mutex<HashMap<(String, String), SeenColumns>>,
    connect: Arc<ConnectResolver>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("{key}: {message}")]
    Config { key: &'static str, message: String },
}

impl ClickHouse {
    pub fn new(c: &ClickHouseConfig) -> Result<Self, ClientBuildError> {
        let connect = Arc::new(ConnectResolver::default());
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .dns_resolver(connect.clone());
        let read = |key: &'static str, path: &str| {
            std::fs::read(path).map_err(|e| ClientBuildError::Config {
                key,
                message: format!("cannot read {path}: {e}"),
            })
        };
        if !c.tls.ca_cert.is_empty() {
            let pem = read("clickhouse.tls.ca_cert", &c.tls.ca_cert)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ClientBuildError::Config {
                    key: "clickhouse.tls.ca_cert",
                    message: e.to_string(),
                }
            })?;
            for cert in certs {
                b = b.add_root_certificate(cert);
            }
        }
        if !c.tls.client_cert.is_empty() {
            let mut pem = read("clickhouse.tls.client_cert", &c.tls.client_cert)?;
            pem.extend(read("clickhouse.tls.client_key", &c.tls.client_key)?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| ClientBuildError::Config {
                key: "clickhouse.tls.client_cert",
                message: e.to_string(),
            })?;
            b = b.identity(id);
        }
        if c.tls.insecure_skip_verify {
            b = b.danger_accept_invalid_certs(true);
        }
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
        let http = b.build().map_err(|e| ClientBuildError::Config {
            key: "clickhouse.tls",
            message: e.to_string(),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                headers,
                refused: Mutex::default(),
                system_columns: Mutex::default(),
                connect,
            }),
        })
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
            read_rows(resp, sink).await
        };
        let result = match tokio::time::timeout(opts.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(QueryError::Timeout(opts.timeout)),
        };
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

    /// Runs a small query and collects it whole (discovery, listings), at most `max_rows`.
    pub async fn query_all(
        &self,
        ep: &Endpoint,
        creds: &Credentials,
        opts: &QueryOptions,
        max_rows: usize,
    ) -> Result<(Vec<Column>, Vec<Vec<Value>>), QueryError> {
        struct Collect(Vec<Column>, Vec<Vec<Value>>, usize);
        impl RowSink for Collect {
            fn columns(&mut self, c: Vec<Column>) {
                self.0 = c;
            }
            fn row(&mut self, r: Vec<Value>) -> bool {
                self.1.push(r);
                self.1.len() < self.2
            }
        }
        let mut sink = Collect(Vec::new(), Vec::new(), max_rows);
        self.query_rows(ep, creds, opts, &mut sink).await?;
        Ok((sink.0, sink.1))
    }

    /// Sends the query; retries without any optional setting the server refuses.
    async fn send(
        &self,
        ep: &Endpoint,
        creds: &Credentials,
        opts: &QueryOptions,
    ) -> Result<reqwest::Response, QueryError> {
        if let Some(connect) = &ep.connect_host {
            self.inner.connect.map(&ep.host, connect);
        }
        let key = ep.key();
        for _ in 0..=opts.optional_settings.len() {
            let refused = self.refused(&key);
            let mut params: Vec<(&str, &str)> = vec![
                ("query_id", &opts.query_id),
                ("default_format", "JSONCompact"),
            ];
            if !opts.database.is_empty() {
                params.push(("database", &opts.database));
            }
            let mut sent: Vec<&str> = Vec::new();
            for (k, v) in &opts.optional_settings {
                if !refused.contains(*k) {
                    params.push((k, v));
                    sent.push(k);
                }
            }
            for (k, v) in &opts.settings {
                params.push((k, v));
            }
            for r in &opts.roles {
                params.push(("role", r));
            }
            let mut req = self
                .inner
                .http
                .post(ep.url())
                .query(&params)
                .headers(self.inner.headers.clone())
                .body(opts.sql.clone());
            if let Some(h) = creds.header() {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = req.send().await.map_err(|e| QueryError::Unreachable {
                endpoint: key.clone(),
                message: describe_reqwest(&e),
            })?;
            if resp.status().is_success() {
                return Ok(resp);
            }
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            let err = ServerError::parse(status, &body);
            // Retry whenever the refused setting was one this attempt sent, even if a
            // concurrent query already recorded the refusal.
            match err.refused_setting() {
                Some(name)
                    if (name.is_empty() && !sent.is_empty()) || sent.contains(&name.as_str()) =>
                {
                    self.remember_refusal(&key, &name, &sent);
                    continue;
                }
                _ => return Err(QueryError::Server(err)),
            }
        }
        Err(QueryError::Format(
            "ClickHouse kept refusing the gateway's optional settings".into(),
        ))
    }

    fn refused(&self, key: &str) -> HashSet<String> {
        self.inner
            .refused
            .lock()
            .map(|m| m.get(key).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Remembers that `endpoint` refuses `name` (an empty name: every setting sent).
    fn remember_refusal(&self, key: &str, name: &str, sent: &[&str]) {
        let Ok(mut map) = self.inner.refused.lock() else {
            return;
        };
        let set = map.entry(key.to_string()).or_default();
        let before = set.len();
        if name.is_empty() {
            set.extend(sent.iter().map(|s| s.to_string()));
        } else {
            set.insert(name.to_string());
        }
        if set.len() > before {
            tracing::info!(
                endpoint = key,
                setting = name,
                "ClickHouse refused an optional setting; not sending it again"
            );
        }
    }

    /// What an endpoint's `system.<table>` columns were last seen to be, if recently.
    pub fn known_system_columns(&self, ep: &Endpoint, table: &str) -> Option<Arc<Vec<String>>> {
        let map = self.inner.system_columns.lock().ok()?;
        let (at, cols) = map.get(&(ep.key(), table.to_string()))?;
        (at.elapsed() < SYSTEM_COLUMNS_TTL).then(|| cols.clone())
    }

    pub fn remember_system_columns(
        &self,
        ep: &Endpoint,
        table: &str,
        cols: Vec<String>,
    ) -> Arc<Vec<String>> {
        let cols = Arc::new(cols);
        if let Ok(mut map) = self.inner.system_columns.lock() {
            map.insert(
                (ep.key(), table.to_string()),
                (Instant::now(), cols.clone()),
            );
        }
        cols
    }

    /// Cancels a running query by id, in the background (`KILL QUERY ... ASYNC`).
    pub fn kill(&self, ep: &Endpoint, creds: &Credentials, query_id: &str) {
        let (ch, ep, creds) = (self.clone(), ep.clone(), creds.clone());
        let sql = format!(
            "KILL QUERY WHERE query_id = {} ASYNC",
            quote_string(query_id)
        );
        let query_id = query_id.to_string();
        tokio::spawn(async move {
            let opts = QueryOptions {
                sql,
                query_id: format!("{query_id}-kill"),
                timeout: Duration::from_secs(10),
                ..Default::default()
            };
            match ch.send(&ep, &creds, &opts).await {
                Ok(resp) => {
                    let _ = resp.bytes().await;
                    tracing::debug!(query_id, "cancelled ClickHouse query");
                }
                Err(e) => tracing::warn!(query_id, error = %e, "could not cancel ClickHouse query"),
            }
        });
    }
}

/// Reads the stream into the sink; `Ok(true)` when the sink stopped early.
async fn read_rows(
    mut resp: reqwest::Response,
    sink: &mut (dyn RowSink + Send),
) -> Result<bool, QueryError> {
    let mut reader = CompactReader::default();
    loop {
        let chunk = resp.chunk().await.map_err(|e| QueryError::Unreachable {
            endpoint: resp.url().authority().to_string(),
            message: format!("the response broke off: {}", describe_reqwest(&e)),
        })?;
        let Some(chunk) = chunk else {
            reader.finish()?;
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
                    while let Ok(Some(_)) = resp.chunk().await {}
                    return Ok(false);
                }
            }
        }
    }
}

/// The error and its causes, without the request URL (it carries the query parameters).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
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

/// Dials `connect_host` for hosts that have one, keeping the URL's host for Host/SNI.
#[derive(Default)]
struct ConnectResolver {
    map: RwLock<HashMap<String, String>>,
}

impl ConnectResolver {
    fn map(&self, host: &str, connect: &str) {
        let known = self
            .map
            .read()
            .map(|m| m.get(host).map(String::as_str) == Some(connect))
            .unwrap_or(false);
        if !known {
            if let Ok(mut m) = self.map.write() {
                m.insert(host.to_string(), connect.to_string());
            }
        }
    }
}

impl reqwest::dns::Resolve for ConnectResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let target = self
            .map
            .read()
            .ok()
            .and_then(|m| m.get(name.as_str()).cloned())
            .unwrap_or_else(|| name.as_str().to_string());
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.as_str(), 0))
                .await?
                .collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

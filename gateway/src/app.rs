//! The running gateway's shared state: the current configuration generation, the
//! ClickHouse client, metrics, the caller catalogs and in-flight requests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::clickhouse::{ClickHouse, Credentials, Endpoint};
use crate::config::{self, Config, LoadOptions};
use crate::telemetry::logging::LogHandle;
use crate::telemetry::Metrics;
use crate::tools::call::discover_catalog;
use crate::tools::{schema::static_entries, Caller, Catalog, ToolContext};

/// One configuration generation and what is built from it. Replaced whole on reload,
/// so a request sees one consistent configuration from start to end.
pub struct Runtime {
    pub config: Config,
    pub ch: ClickHouse,
    /// The static catalog, shared by every caller when no rule asks for discovery.
    pub static_catalog: Arc<Catalog>,
}

impl Runtime {
    pub fn build(config: Config, previous: Option<&Runtime>) -> anyhow::Result<Self> {
        // Keep the client (its pool and per-endpoint memory) unless its inputs changed.
        let ch = match previous {
            Some(p)
                if p.config.clickhouse.tls == config.clickhouse.tls
                    && p.config.clickhouse.http_headers == config.clickhouse.http_headers =>
            {
                p.ch.clone()
            }
            _ => ClickHouse::new(&config.clickhouse)?,
        };
        let static_catalog = Arc::new(Catalog::new(static_entries(&config)));
        Ok(Self {
            config,
            ch,
            static_catalog,
        })
    }
}

/// Who a request runs as, and where.
#[derive(Debug, Clone)]
pub struct RequestIdentity {
    pub cluster: String,
    pub endpoint: Endpoint,
    pub creds: Credentials,
    pub caller: Caller,
    pub roles: Vec<String>,
    /// Catalog cache key: bound to the credential itself, never to claims.
    pub catalog_key: String,
}

/// The implicit cluster name of single-cluster mode (logs, metrics, `log_comment`).
pub const DEFAULT_CLUSTER: &str = "default";

pub struct App {
    runtime: RwLock<Arc<Runtime>>,
    pub metrics: Metrics,
    pub inflight: Inflight,
    catalogs: Mutex<HashMap<String, (Arc<Catalog>, Instant)>>,
    pub started: Instant,
    pub load_options: LoadOptions,
    log: Option<LogHandle>,
    /// Whether the listener is on loopback (loopback origins are then trusted).
    pub loopback_listener: bool,
    readiness: Mutex<Option<(Instant, Result<(), String>)>>,
}

/// How long a discovered catalog is reused in single-cluster static mode.
const STATIC_CATALOG_TTL: Duration = Duration::from_secs(60);
/// `/readyz` asks ClickHouse at most this often.
const READINESS_CACHE: Duration = Duration::from_secs(2);

impl App {
    pub fn new(
        config: Config,
        load_options: LoadOptions,
        log: Option<LogHandle>,
    ) -> anyhow::Result<Self> {
        let loopback_listener = is_loopback_host(&config.server.address);
        Ok(Self {
            runtime: RwLock::new(Arc::new(Runtime::build(config, None)?)),
            metrics: Metrics::new(),
            inflight: Inflight::default(),
            catalogs: Mutex::default(),
            started: Instant::now(),
            load_options,
            log,
            loopback_listener,
            readiness: Mutex::default(),
        })
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn config_path(&self) -> Option<PathBuf> {
        self.load_options.file.clone()
    }

    /// Re-reads the configuration (SIGHUP / file change). A file that no longer
    /// validates is rejected and the old configuration keeps serving.
    pub fn reload(&self) -> Result<Vec<String>, String> {
        let mut opts = self.load_options.clone();
        opts.env = std::env::vars().collect();
        let loaded = config::load(&opts).map_err(|e| e.to_string())?;
        let current = self.runtime();
        let restart_only = config::restart_only_changes(&current.config, &loaded.config);
        let mut next = loaded.config;
        // Restart-only keys keep their running values.
        next.server.transport = current.config.server.transport;
        next.server.address = current.config.server.address.clone();
        next.server.port = current.config.server.port;
        next.multicluster = current.config.multicluster.clone();
        next.watch = current.config.watch;
        let rt = Runtime::build(next, Some(&current)).map_err(|e| e.to_string())?;
        if let Some(log) = &self.log {
            log.apply(&rt.config.logging);
        }
        if let Ok(mut w) = self.runtime.write() {
            *w = Arc::new(rt);
        }
        if let Ok(mut c) = self.catalogs.lock() {
            c.clear();
        }
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        Ok(restart_only)
    }

    /// The caller's catalog: static, or discovered with their credentials and reused.
    pub async fn catalog_for(&self, rt: &Runtime, id: &RequestIdentity) -> Arc<Catalog> {
        if !crate::tools::dynamic::needs_discovery(&rt.config.server.tools) {
            return rt.static_catalog.clone();
        }
        if let Ok(c) = self.catalogs.lock() {
            if let Some((cat, at)) = c.get(&id.catalog_key) {
                if at.elapsed() < STATIC_CATALOG_TTL {
                    return cat.clone();
                }
            }
        }
        let ctx = self.tool_context(rt, id);
        match discover_catalog(&ctx).await {
            Ok((cat, warnings)) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                let cat = Arc::new(cat);
                if let Ok(mut c) = self.catalogs.lock() {
                    c.insert(id.catalog_key.clone(), (cat.clone(), Instant::now()));
                }
                cat
            }
            Err(e) => {
                // Any discovery failure serves the static tools, so execute_query still works.
                tracing::warn!(error = %e, "tool discovery failed; serving the static tools");
                rt.static_catalog.clone()
            }
        }
    }

    pub fn tool_context<'a>(&self, rt: &'a Runtime, id: &RequestIdentity) -> ToolContext<'a> {
        ToolContext {
            ch: &rt.ch,
            config: &rt.config,
            endpoint: id.endpoint.clone(),
            creds: id.creds.clone(),
            roles: id.roles.clone(),
            cluster: id.cluster.clone(),
            caller: id.caller.clone(),
        }
    }

    /// The identity of a request in static-credential mode (OAuth off).
    pub fn static_identity(&self, rt: &Runtime) -> RequestIdentity {
        let c = &rt.config.clickhouse;
        RequestIdentity {
            cluster: DEFAULT_CLUSTER.into(),
            endpoint: Endpoint::from_config(c),
            creds: Credentials::Basic {
                user: c.username.clone(),
                password: c.password.clone(),
            },
            caller: Caller {
                subject: c.username.clone(),
                email: None,
            },
            roles: Vec::new(),
            catalog_key: format!("static\0{}", c.username),
        }
    }

    /// Readiness: configuration loaded and, with static credentials, ClickHouse answers.
    pub async fn readiness(&self) -> Result<(), String> {
        let rt = self.runtime();
        if rt.config.server.oauth.enabled {
            return Ok(());
        }
        if let Ok(r) = self.readiness.lock() {
            if let Some((at, res)) = r.as_ref() {
                if at.elapsed() < READINESS_CACHE {
                    return res.clone();
                }
            }
        }
        let id = self.static_identity(&rt);
        let opts = crate::clickhouse::QueryOptions {
            sql: "SELECT 1".into(),
            query_id: format!("chmcp-ready-{:016x}", fastrand::u64(..)),
            timeout: Duration::from_secs(3),
            ..Default::default()
        };
        let res = rt
            .ch
            .query_all(&id.endpoint, &id.creds, &opts, 1)
            .await
            .map(|_| ())
            .map_err(|e| format!("ClickHouse at {} does not answer: {e}", id.endpoint.key()));
        if let Ok(mut r) = self.readiness.lock() {
            *r = Some((Instant::now(), res.clone()));
        }
        res
    }
}

pub fn is_loopback_host(h: &str) -> bool {
    matches!(h, "localhost" | "::1" | "[::1]") || h.starts_with("127.")
}

/// Requests that `notifications/cancelled` may stop, by caller scope and request id.
#[derive(Default)]
pub struct Inflight {
    map: Mutex<HashMap<(String, String), oneshot::Sender<()>>>,
}

impl Inflight {
    pub fn register(&self, scope: &str, request_id: &str) -> InflightGuard<'_> {
        let (tx, rx) = oneshot::channel();
        let key = (scope.to_string(), request_id.to_string());
        if let Ok(mut m) = self.map.lock() {
            m.insert(key.clone(), tx);
        }
        InflightGuard {
            owner: self,
            key,
            cancelled: Some(rx),
        }
    }

    /// Returns whether a running request was found and told to stop.
    pub fn cancel(&self, scope: &str, request_id: &str) -> bool {
        let tx = self
            .map
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&(scope.to_string(), request_id.to_string())));
        tx.map(|tx| tx.send(()).is_ok()).unwrap_or(false)
    }
}

pub struct InflightGuard<'a> {
    owner: &'a Inflight,
    key: (String, String),
    pub cancelled: Option<oneshot::Receiver<()>>,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.owner.map.lock() {
            m.remove(&self.key);
        }
    }
}

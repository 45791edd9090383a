//! The running gateway's shared state: the current configuration generation (and its
//! reload), metrics, the caller catalogs, the probe memory and in-flight requests.
//! What a request does with it lives in the steps `http::router` lists and in `mcp`;
//! the domain below borrows only what it reads ([`App::tool_env`],
//! [`App::gate_env`]). This module never imports `mcp` or `http`
//! (`gateway/tests/architecture.rs`).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::catalog::{CacheConfig, CacheMetrics, CatalogCache};
use crate::clickhouse::ClickHouse;
use crate::config::{self, Config, LoadOptions};
use crate::identity::probe::IdentityProber;
use crate::identity::resolve::GateEnv;
use crate::identity::roles::RolePolicy;
use crate::identity::{static_identity, RequestIdentity};
use crate::inflight::Inflight;
use crate::net::{is_loopback_address, OriginPolicy};
use crate::oauth::exp_memo::ExpMemo;
use crate::oauth::jwks;
use crate::routing::ClusterAllowlist;
use crate::telemetry::logging::LogHandle;
use crate::telemetry::otlp::Tracer;
use crate::telemetry::readiness::ReadinessCache;
use crate::telemetry::Metrics;
use crate::tools::context::ToolEnv;
use crate::tools::dynamic::ToolRules;
use crate::tools::system_columns::SystemColumns;
use crate::tools::{schema::static_entries, Catalog};

/// One configuration generation and what is built from it. Replaced whole on reload,
/// so a request sees one consistent configuration from start to end. Everything built
/// from `server.oauth` lives here too (JWKS, the broker), so OAuth settings change on
/// reload instead of silently keeping their start-up values.
pub struct Generation {
    pub config: Config,
    pub ch: ClickHouse,
    /// The static catalog, shared by every caller when no rule asks for discovery.
    pub static_catalog: Arc<Catalog>,
    /// `oauth.role_claim` / `role_filter`, compiled once per generation (not per request).
    pub roles: RolePolicy,
    /// `server.tools` discovery rules, compiled once per generation (not per discovery).
    pub tool_rules: ToolRules,
    /// The IdP's keys, when the gateway checks bearer signatures (`validate_tokens`).
    pub jwks: Option<Arc<jwks::JwksCache>>,
    /// The OAuth broker's routes (broker mode), served by `http::router`'s broker paths.
    pub broker: Option<axum::Router>,
    /// Sealed token mode: opens the gateway's own access tokens (oauth/sealed.rs).
    pub sealed: Option<crate::oauth::sealed::SealedGate>,
    /// The origins browsers may call from (`server.allowed_origins`, the public URLs,
    /// loopback while listening on loopback), parsed once per generation.
    pub origins: OriginPolicy,
    /// Who requests run as with OAuth off (and on stdio): built once per generation, so
    /// a request does not hash the static credentials into a catalog key again.
    pub static_identity: Arc<RequestIdentity>,
}

/// What a generation's builders take from the process rather than the configuration.
pub struct ProcessParts<'a> {
    pub oauth_requests: &'a crate::oauth::broker::OAuthRequests,
    pub clickhouse_queries: &'a crate::telemetry::metrics::HistogramFamily,
    pub clusters: &'a crate::telemetry::metrics::ClusterLabels,
    pub jwks_fetches: &'a crate::telemetry::metrics::CounterFamily,
    pub allowlist: &'a ClusterAllowlist,
}

impl Generation {
    pub fn build(
        config: Config,
        previous: Option<&Generation>,
        process: &ProcessParts<'_>,
    ) -> anyhow::Result<Self> {
        // Keep the client (its pool and per-endpoint memory) unless its inputs changed; a
        // new `connect_host` also needs a new pool (pooled connections go to the old one).
        let ch = match previous {
            Some(p)
                if p.config.clickhouse.tls == config.clickhouse.tls
                    && p.config.clickhouse.http_headers == config.clickhouse.http_headers
                    && p.config.clickhouse.connect_host == config.clickhouse.connect_host =>
            {
                p.ch.clone()
            }
            _ => ClickHouse::new(&config.clickhouse)?
                .observed_by(process.clickhouse_queries.clone(), process.clusters.clone()),
        };
        let static_catalog = Arc::new(Catalog::new(static_entries(&config)));
        let roles = RolePolicy::from_config(&config.server.oauth)?;
        let tool_rules = ToolRules::compile(&config.server.tools, config.clickhouse.read_only);
        let o = &config.server.oauth;
        // Keys already fetched stay while the source is the same.
        let jwks = match previous {
            Some(p) if jwks_inputs(&p.config) == jwks_inputs(&config) => p.jwks.clone(),
            _ => (o.enabled && o.validate_tokens).then(|| {
                let source = if o.jwks_url.is_empty() {
                    jwks::JwksSource::Discovery {
                        issuer: o.issuer.clone(),
                    }
                } else {
                    jwks::JwksSource::Url(o.jwks_url.clone())
                };
                Arc::new(
                    jwks::JwksCache::new(source, reqwest::Client::new())
                        .with_observer(jwks::counting_observer(process.jwks_fetches)),
                )
            }),
        };
        let broker = match previous {
            Some(p) if p.config.server.oauth == config.server.oauth => p.broker.clone(),
            _ => build_broker(&config, process)?,
        };
        let oauth = &config.server.oauth;
        let sealed = crate::oauth::sealed::SealedGate::for_config(oauth)?;
        let origins = OriginPolicy::new(
            &config.server.allowed_origins,
            [
                oauth.public_auth_server_url.as_str(),
                oauth.public_resource_url.as_str(),
            ],
            is_loopback_address(&config.server.address),
        );
        let static_identity = Arc::new(static_identity(&config));
        Ok(Self {
            static_identity,
            config,
            ch,
            static_catalog,
            roles,
            tool_rules,
            jwks,
            broker,
            sealed,
            origins,
        })
    }
}

/// What the JWKS cache is built from.
fn jwks_inputs(c: &Config) -> (bool, &str, &str) {
    let o = &c.server.oauth;
    (o.enabled && o.validate_tokens, &o.issuer, &o.jwks_url)
}

/// The broker's routes for this configuration (broker mode), else none.
fn build_broker(c: &Config, process: &ProcessParts<'_>) -> anyhow::Result<Option<axum::Router>> {
    let oauth = &c.server.oauth;
    if !(oauth.enabled && oauth.broker) {
        return Ok(None);
    }
    let serves = if c.multicluster.enabled {
        let allow = process.allowlist.clone();
        let clusters =
            crate::oauth::broker::multicluster_resources(oauth, move |c| allow.permits(c));
        if c.multicluster.fleet_endpoint {
            crate::oauth::broker::with_fleet_resource(oauth, clusters)
        } else {
            clusters
        }
    } else {
        crate::oauth::broker::single_cluster_resources(oauth)
    };
    let broker =
        crate::oauth::broker::BrokerState::new(oauth, process.oauth_requests.clone(), serves)?;
    Ok(Some(crate::oauth::broker::routes(Arc::new(broker))))
}

pub struct App {
    generation: RwLock<Arc<Generation>>,
    pub metrics: Metrics,
    /// Requests `notifications/cancelled` may stop (the transports register them).
    pub inflight: Inflight,
    /// Each endpoint's system-table layout, for the schema tools and discovery.
    pub system_columns: SystemColumns,
    /// Bearers' stated `exp`, decoded once per token (what a token states does not
    /// depend on the configuration, so every generation's gate shares it).
    pub exp_memo: ExpMemo,
    /// Each endpoint's `EXPLAIN ESTIMATE` support (`cost::preflight`).
    pub abilities: crate::cost::ServerAbilities,
    /// Per-caller catalogs (docs/spec-notes.md, "Catalog cache"); restart-only sizing, so built once.
    pub catalogs: Arc<CatalogCache<Catalog>>,
    pub prober: IdentityProber,
    /// Cluster names served in multi-cluster mode (restart-only).
    pub allowlist: ClusterAllowlist,
    pub started: Instant,
    pub load_options: LoadOptions,
    log: Option<LogHandle>,
    /// The last readiness answer, reused briefly (`/readyz`, `/health`).
    pub readiness: ReadinessCache,
    /// The OTLP exporter when `telemetry.otlp` is set (restart-only).
    pub tracer: Option<Arc<Tracer>>,
}

impl App {
    pub fn new(
        config: Config,
        load_options: LoadOptions,
        log: Option<LogHandle>,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::with_clusters(crate::telemetry::metrics::ClusterLabels::new(
            config.multicluster.cluster_allowlist.iter().cloned(),
        ));
        let catalogs = Arc::new(CatalogCache::with_metrics(
            CacheConfig::from_config(&config.multicluster),
            CacheMetrics::registered(&metrics),
        ));
        let allowlist = ClusterAllowlist::from_config(&config.multicluster);
        let prober = IdentityProber::with_metrics(
            metrics.identity_probes.clone(),
            metrics.identity_probe_duration.clone(),
        );
        let process = ProcessParts {
            oauth_requests: &metrics.oauth_requests,
            clickhouse_queries: &metrics.clickhouse_query_duration,
            clusters: &metrics.clusters,
            jwks_fetches: &metrics.jwks_fetches,
            allowlist: &allowlist,
        };
        let tracer = match &config.telemetry.otlp {
            Some(o) => Some(Tracer::start(o, config.telemetry.include_sql)?),
            None => None,
        };
        let generation = Generation::build(config, None, &process)?;
        Ok(Self {
            tracer,
            generation: RwLock::new(Arc::new(generation)),
            metrics,
            inflight: Inflight::default(),
            system_columns: SystemColumns::default(),
            exp_memo: ExpMemo::default(),
            abilities: Default::default(),
            catalogs,
            prober,
            allowlist,
            started: Instant::now(),
            load_options,
            log,
            readiness: ReadinessCache::default(),
        })
    }

    /// The configuration generation current now; a request keeps the one it loaded.
    pub fn generation(&self) -> Arc<Generation> {
        self.generation
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// What tools, discovery and the catalog lookup borrow for one request: this
    /// generation's client, configuration and rules, and the process-wide caches.
    /// What the gate reads (`identity::resolve::identify`): the generation's OAuth
    /// settings and keys, and the process's `exp` memo.
    pub fn gate_env<'a>(&'a self, generation: &'a Generation) -> GateEnv<'a> {
        GateEnv {
            config: &generation.config,
            sealed: generation.sealed.as_ref(),
            roles: &generation.roles,
            jwks: generation.jwks.as_deref(),
            exp_memo: &self.exp_memo,
        }
    }

    pub fn tool_env<'a>(&'a self, generation: &'a Generation) -> ToolEnv<'a> {
        ToolEnv {
            ch: &generation.ch,
            config: &generation.config,
            tool_rules: &generation.tool_rules,
            static_catalog: &generation.static_catalog,
            system_columns: &self.system_columns,
            catalogs: &self.catalogs,
            prober: &self.prober,
            abilities: &self.abilities,
        }
    }

    pub fn config_path(&self) -> Option<PathBuf> {
        self.load_options.file.clone()
    }

    /// Re-reads the configuration (SIGHUP / file change). What is validated is the
    /// configuration as it will run: the new file with the restart-only keys kept at
    /// their running values, so a reload cannot produce a combination that a fresh start
    /// would refuse (say, multi-cluster routing with OAuth off). A configuration that
    /// does not validate is rejected and the old one keeps serving.
    pub fn reload(&self) -> Result<Vec<String>, String> {
        let mut opts = self.load_options.clone();
        opts.env = std::env::vars().collect();
        let loaded = config::load(&opts).map_err(|e| e.to_string())?;
        let current = self.generation();
        let restart_only = config::restart_only_changes(&current.config, &loaded.config);
        let next = config::keep_restart_only(&current.config, loaded.config);
        let warnings = config::validate(&next).map_err(|errors| {
            format!(
                "the configuration as it would run (restart-only keys at their running values) is invalid: {}",
                config::join_issues(&errors, "; ")
            )
        })?;
        let process = ProcessParts {
            oauth_requests: &self.metrics.oauth_requests,
            clickhouse_queries: &self.metrics.clickhouse_query_duration,
            clusters: &self.metrics.clusters,
            jwks_fetches: &self.metrics.jwks_fetches,
            allowlist: &self.allowlist,
        };
        let generation =
            Generation::build(next, Some(&current), &process).map_err(|e| e.to_string())?;
        if let Some(log) = &self.log {
            log.apply(&generation.config.logging);
        }
        if let Ok(mut w) = self.generation.write() {
            *w = Arc::new(generation);
        }
        // `loaded.warnings` are the file's alone; these are the configuration as it runs.
        for w in &warnings {
            tracing::warn!(warning = ?w, "configuration warning");
        }
        Ok(restart_only)
    }
}

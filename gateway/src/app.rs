//! The running gateway's shared state: the current configuration generation, the
//! ClickHouse client, metrics, the caller catalogs and in-flight requests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use crate::catalog::token_fingerprint;
use crate::catalog::{
    CacheConfig, CatalogCache, CatalogKey, CatalogOutcome, ContentHash, DiscoveryError,
};
use crate::clickhouse::{ClickHouse, Credentials, Endpoint};
use crate::config::{self, Config, LoadOptions, Secret};
use crate::identity::claims::{username_from_claims, Claims, ClaimsError};
use crate::identity::probe::{probe_query, IdentityProber, ProbeError};
use crate::identity::roles::{RoleError, RolePolicy};
use crate::net::{is_loopback_address, OriginPolicy};
use crate::oauth::gate::{self, GateRejection, ServingContext};
use crate::oauth::jwks;
use crate::routing::ClusterAllowlist;
use crate::routing::{endpoint_for, Cluster};
use crate::telemetry::logging::LogHandle;
use crate::telemetry::Metrics;
use crate::tools::call::discover_catalog;
use crate::tools::dynamic::ToolRules;
use crate::tools::{schema::static_entries, Caller, Catalog, ToolContext};

/// One configuration generation and what is built from it. Replaced whole on reload,
/// so a request sees one consistent configuration from start to end. Everything built
/// from `server.oauth` lives here too (JWKS, the broker), so OAuth settings change on
/// reload instead of silently keeping their start-up values.
pub struct Runtime {
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
    /// The OAuth broker's routes (broker mode), served by `serve::router`'s broker paths.
    pub broker: Option<axum::Router>,
    /// Sealed token mode: opens the gateway's own access tokens (oauth/sealed.rs).
    pub sealed: Option<crate::oauth::sealed::SealedGate>,
    /// The origins browsers may call from (`server.allowed_origins`, the public URLs,
    /// loopback while listening on loopback), parsed once per generation.
    pub origins: OriginPolicy,
}

/// What a generation's builders take from the process rather than the configuration.
pub struct ProcessParts<'a> {
    pub oauth_requests: &'a crate::oauth::broker::OAuthRequests,
    pub allowlist: &'a ClusterAllowlist,
}

impl Runtime {
    pub fn build(
        config: Config,
        previous: Option<&Runtime>,
        process: &ProcessParts<'_>,
    ) -> anyhow::Result<Self> {
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
                Arc::new(jwks::JwksCache::new(source, reqwest::Client::new()))
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
        Ok(Self {
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
        crate::oauth::broker::multicluster_resources(oauth, move |c| allow.permits(c))
    } else {
        crate::oauth::broker::single_cluster_resources(oauth)
    };
    let broker =
        crate::oauth::broker::BrokerState::new(oauth, process.oauth_requests.clone(), serves)?;
    Ok(Some(crate::oauth::broker::routes(Arc::new(broker))))
}

/// Whose credentials a request carries.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Static user and password from the configuration (OAuth off).
    Static(Credentials),
    /// The caller's bearer: sent as Bearer or Basic, as the endpoint's probe found.
    Token {
        token: Secret,
        /// The `oauth.username_claim` value, needed only for Basic.
        username: Result<String, ClaimsError>,
    },
}

/// Who a request runs as, and where.
#[derive(Debug, Clone)]
pub struct RequestIdentity {
    pub cluster: String,
    pub endpoint: Endpoint,
    pub principal: Principal,
    pub caller: Caller,
    pub roles: Vec<String>,
    /// Catalog cache key: bound to the credential itself, never to claims.
    pub catalog_key: CatalogKey,
    /// The token's `exp`: no cached catalog outlives it.
    pub expires: Option<SystemTime>,
}

/// What the gateway takes from a caller's token: everything from verified claims, and
/// from an unverified token (`validate_tokens: false`) nothing at all — no Basic
/// username (so only Bearer is sent: ClickHouse judges the token itself), no roles, no
/// name in log lines (a fingerprint instead), no cache lifetime (oauth.md, "The gate").
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    pub caller: Caller,
    pub roles: Vec<String>,
    /// The Basic username; `Err` when the token names none, or was not verified.
    pub username: Result<String, ClaimsError>,
    /// The verified `exp`.
    pub expires: Option<SystemTime>,
}

impl TokenIdentity {
    /// Pure: `verified` is `Some` only with claims the JWKS check returned.
    pub fn of(
        verified: Option<&Claims>,
        token: &str,
        oauth: &crate::config::OAuthConfig,
        roles: &RolePolicy,
    ) -> Result<Self, RoleError> {
        let anonymous = || format!("token:{}", token_fingerprint(token));
        match verified {
            Some(claims) => Ok(Self {
                caller: Caller {
                    subject: claims.sub().map(str::to_string).unwrap_or_else(anonymous),
                    email: claims.email().map(str::to_string),
                },
                roles: roles.roles(claims)?,
                username: username_from_claims(claims, &oauth.username_claim),
                expires: claims.expires_at(),
            }),
            None => Ok(Self {
                caller: Caller {
                    subject: anonymous(),
                    email: None,
                },
                // A role policy fails closed on a token it cannot read (the
                // configuration refuses role_claim without validate_tokens anyway).
                roles: roles.roles(&Claims::default())?,
                username: Err(ClaimsError::Unverified),
                expires: None,
            }),
        }
    }
}

/// The implicit cluster name of single-cluster mode (logs, metrics, `log_comment`).
pub const DEFAULT_CLUSTER: &str = "default";

pub struct App {
    runtime: RwLock<Arc<Runtime>>,
    pub metrics: Metrics,
    pub inflight: Inflight,
    /// Per-caller catalogs (multicluster.md); restart-only sizing, so built once.
    pub catalogs: Arc<CatalogCache<Catalog>>,
    pub prober: IdentityProber,
    /// Cluster names served in multi-cluster mode (restart-only).
    pub allowlist: ClusterAllowlist,
    pub started: Instant,
    pub load_options: LoadOptions,
    log: Option<LogHandle>,
    readiness: Mutex<Option<(Instant, Result<(), String>)>>,
}

/// `/readyz` asks ClickHouse at most this often.
const READINESS_CACHE: Duration = Duration::from_secs(2);

impl App {
    pub fn new(
        config: Config,
        load_options: LoadOptions,
        log: Option<LogHandle>,
    ) -> anyhow::Result<Self> {
        let catalogs = Arc::new(CatalogCache::new(CacheConfig::from_config(
            &config.multicluster,
        )));
        let allowlist = ClusterAllowlist::from_config(&config.multicluster);
        let metrics = Metrics::new();
        let process = ProcessParts {
            oauth_requests: &metrics.oauth_requests,
            allowlist: &allowlist,
        };
        let runtime = Runtime::build(config, None, &process)?;
        Ok(Self {
            runtime: RwLock::new(Arc::new(runtime)),
            metrics,
            inflight: Inflight::default(),
            catalogs,
            prober: IdentityProber::new(),
            allowlist,
            started: Instant::now(),
            load_options,
            log,
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

    /// Re-reads the configuration (SIGHUP / file change). What is validated is the
    /// configuration as it will run: the new file with the restart-only keys kept at
    /// their running values, so a reload cannot produce a combination that a fresh start
    /// would refuse (say, multi-cluster routing with OAuth off). A configuration that
    /// does not validate is rejected and the old one keeps serving.
    pub fn reload(&self) -> Result<Vec<String>, String> {
        let mut opts = self.load_options.clone();
        opts.env = std::env::vars().collect();
        let loaded = config::load(&opts).map_err(|e| e.to_string())?;
        let current = self.runtime();
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
            allowlist: &self.allowlist,
        };
        let rt = Runtime::build(next, Some(&current), &process).map_err(|e| e.to_string())?;
        if let Some(log) = &self.log {
            log.apply(&rt.config.logging);
        }
        if let Ok(mut w) = self.runtime.write() {
            *w = Arc::new(rt);
        }
        // `loaded.warnings` are the file's alone; these are the configuration as it runs.
        for w in &warnings {
            tracing::warn!(warning = ?w, "configuration warning");
        }
        Ok(restart_only)
    }

    /// The credentials for this request: static, or the caller's token presented the
    /// way the endpoint accepts it (the Bearer/Basic probe, remembered per endpoint).
    pub async fn credentials(
        &self,
        rt: &Runtime,
        id: &RequestIdentity,
    ) -> Result<Credentials, ProbeError> {
        match &id.principal {
            Principal::Static(c) => Ok(c.clone()),
            Principal::Token { token, username } => {
                let endpoint = id.endpoint.key();
                self.prober
                    .credentials(&endpoint, token, username, |creds| {
                        let (ch, ep) = (rt.ch.clone(), id.endpoint.clone());
                        async move {
                            let opts =
                                probe_query(format!("chmcp-probe-{:032x}", fastrand::u128(..)));
                            ch.query_all(&ep, &creds, &opts, 1).await.map(|_| ())
                        }
                    })
                    .await
            }
        }
    }

    /// The caller's catalog: static, or discovered with their credentials and cached
    /// per token and cluster. Never an error: any failure serves the static tools.
    pub async fn catalog_for(&self, rt: &Runtime, id: &RequestIdentity) -> Arc<Catalog> {
        if !rt.tool_rules.need_discovery() {
            return rt.static_catalog.clone();
        }
        let outcome = self
            .catalogs
            .lookup_or_discover(&id.catalog_key, id.expires, SystemTime::now(), || async {
                let creds = self.credentials(rt, id).await.map_err(|e| DiscoveryError {
                    auth_class: e.is_auth_class(),
                    message: e.to_string(),
                })?;
                let ctx = self.tool_context(rt, id, creds);
                let (catalog, warnings) =
                    discover_catalog(&ctx).await.map_err(DiscoveryError::from)?;
                // Warnings name ClickHouse objects: escaped fields, never the message.
                for w in warnings {
                    tracing::warn!(warning = ?w, "tool discovery warning");
                }
                let hash = ContentHash::of(catalog.listed_json().as_bytes());
                Ok((catalog, hash))
            })
            .await;
        match outcome {
            CatalogOutcome::Hit(c) | CatalogOutcome::Discovered(c) => c,
            CatalogOutcome::Denied | CatalogOutcome::StaticOnly { .. } => rt.static_catalog.clone(),
        }
    }

    pub fn tool_context<'a>(
        &self,
        rt: &'a Runtime,
        id: &RequestIdentity,
        creds: Credentials,
    ) -> ToolContext<'a> {
        ToolContext {
            ch: &rt.ch,
            config: &rt.config,
            tool_rules: &rt.tool_rules,
            endpoint: id.endpoint.clone(),
            creds,
            roles: id.roles.clone(),
            cluster: id.cluster.clone(),
            caller: id.caller.clone(),
            auth_failed: Default::default(),
        }
    }

    /// The identity of a request in static-credential mode (OAuth off).
    pub fn static_identity(&self, rt: &Runtime) -> RequestIdentity {
        let c = &rt.config.clickhouse;
        RequestIdentity {
            cluster: DEFAULT_CLUSTER.into(),
            endpoint: Endpoint::from_config(c),
            principal: Principal::Static(Credentials::Basic {
                user: c.username.clone(),
                password: c.password.clone(),
            }),
            caller: Caller {
                subject: c.username.clone(),
                email: None,
            },
            roles: Vec::new(),
            catalog_key: CatalogKey::new(
                &format!("static\0{}\0{}", c.username, c.password.expose()),
                "",
            ),
            expires: None,
        }
    }

    /// The gate and the identity of a request under OAuth: a bearer from the header
    /// that is not expired, its username and roles, and where its cluster lives.
    pub async fn identify(
        &self,
        rt: &Runtime,
        headers: &axum::http::HeaderMap,
        cluster: Cluster<'_>,
    ) -> Result<RequestIdentity, GateRejection> {
        let oauth = &rt.config.server.oauth;
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ctx = ServingContext {
            request_scheme: "http",
            host,
            cluster,
        };
        let admitted = gate::admit(headers, oauth, &ctx, SystemTime::now())?;
        // Sealed mode: the bearer is the gateway's own token; from here on the upstream
        // token inside it is the credential (ClickHouse, catalog key), and its claims are
        // the ones the broker verified before sealing.
        let sealed = crate::oauth::sealed::admit(rt.sealed.as_ref(), oauth, &ctx, admitted.token)?;
        let token = sealed
            .as_ref()
            .map_or(admitted.token, |s| s.upstream.as_str());
        let verified = match &sealed {
            Some(s) => s.verified_claims(),
            None if oauth.validate_tokens => {
                Some(Self::validate_signature(rt, oauth, &ctx, token).await?)
            }
            None => None,
        };
        if let Some(claims) = &verified {
            gate::check_required_scopes(oauth, &ctx, claims)?;
        }
        let known = TokenIdentity::of(verified.as_ref(), token, oauth, &rt.roles)
            .map_err(|e| gate::forbidden(oauth, &ctx, &e.to_string()))?;
        let endpoint = match cluster {
            Cluster::Named(name) => {
                endpoint_for(name, &rt.config.clickhouse, &rt.config.multicluster)
            }
            Cluster::Implicit => Endpoint::from_config(&rt.config.clickhouse),
        };
        Ok(RequestIdentity {
            cluster: match cluster {
                Cluster::Named(n) => n.to_string(),
                Cluster::Implicit => DEFAULT_CLUSTER.to_string(),
            },
            endpoint,
            caller: known.caller,
            roles: known.roles,
            catalog_key: CatalogKey::new(token, cluster.name()),
            expires: known.expires,
            principal: Principal::Token {
                token: Secret::new(token),
                username: known.username,
            },
        })
    }

    /// `validate_tokens`: signature (JWKS, refetched on an unknown `kid`, rate-limited),
    /// `iss`, `aud` and `exp`, before anything reaches ClickHouse. Fails closed; the
    /// claims it returns are the only ones the gateway ever reads.
    async fn validate_signature(
        rt: &Runtime,
        oauth: &crate::config::OAuthConfig,
        ctx: &ServingContext<'_>,
        token: &str,
    ) -> Result<Claims, GateRejection> {
        let Some(jwks) = &rt.jwks else {
            return Err(gate::invalid_token(
                oauth,
                ctx,
                "token validation is not available",
            ));
        };
        let kid =
            jwks::peek_kid(token).map_err(|e| gate::invalid_token(oauth, ctx, &e.to_string()))?;
        let keys = jwks.keys_for(kid.as_deref()).await.map_err(|e| {
            tracing::warn!(error = ?e.to_string(), "cannot load the IdP's keys; refusing the token");
            gate::invalid_token(
                oauth,
                ctx,
                "the identity provider's keys are unavailable; try again shortly",
            )
        })?;
        let expect = jwks::Expectations {
            issuer: oauth.issuer.clone(),
            audience: oauth.audience.clone(),
            leeway_secs: gate::EXP_LEEWAY.as_secs(),
            // Scopes are judged by the gate, so a missing one is a 403, not a 401.
            required_scopes: Vec::new(),
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        jwks::validate_jwt(token, &keys, &expect, now)
            .map_err(|e| gate::invalid_token(oauth, ctx, &e.to_string()))
    }

    /// Brings the Prometheus series that mirror the cache's and the prober's own
    /// counters up to date (called when `/metrics` or `/health` is read).
    pub fn sync_metrics(&self) -> crate::catalog::CacheStats {
        let s = self.catalogs.stats();
        let m = &self.metrics;
        m.catalog_entries.set(s.entries as i64);
        m.catalog_denied_entries.set(s.denied_entries as i64);
        let catch_up = |family: &prometheus_client::metrics::family::Family<
            Vec<(&'static str, String)>,
            prometheus_client::metrics::counter::Counter,
        >,
                        labels: Vec<(&'static str, String)>,
                        total: u64| {
            let c = family.get_or_create(&labels);
            let have = c.get();
            if total > have {
                c.inc_by(total - have);
            }
        };
        let l = |k: &'static str, v: &str| vec![(k, v.to_string())];
        catch_up(&m.catalog_lookups, l("result", "hit_ok"), s.hits_ok);
        catch_up(&m.catalog_lookups, l("result", "hit_denied"), s.hits_denied);
        catch_up(&m.catalog_lookups, l("result", "miss"), s.misses);
        catch_up(&m.catalog_drops, l("kind", "ok"), s.full_drops_ok);
        catch_up(&m.catalog_drops, l("kind", "denied"), s.full_drops_denied);
        catch_up(
            &m.catalog_discoveries,
            l("outcome", "auth_error"),
            s.auth_errors,
        );
        catch_up(
            &m.catalog_discoveries,
            l("outcome", "transient_error"),
            s.transient_errors,
        );
        catch_up(
            &m.catalog_discoveries,
            l("outcome", "saturated"),
            s.saturations,
        );
        catch_up(&m.catalog_discoveries, l("outcome", "ok"), s.discoveries_ok);
        for p in self.prober.probe_counts() {
            let labels = vec![
                ("endpoint", p.endpoint.clone()),
                ("method", p.method.as_str().to_string()),
                ("outcome", p.outcome.as_str().to_string()),
            ];
            catch_up(&m.identity_probes, labels, p.count);
        }
        s
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
        let Principal::Static(creds) = &id.principal else {
            return Ok(());
        };
        let opts = crate::clickhouse::QueryOptions {
            sql: "SELECT 1".into(),
            query_id: format!("chmcp-ready-{:016x}", fastrand::u64(..)),
            timeout: Duration::from_secs(3),
            ..Default::default()
        };
        let res = rt
            .ch
            .query_all(&id.endpoint, creds, &opts, 1)
            .await
            .map(|_| ())
            .map_err(|e| format!("ClickHouse at {} does not answer: {e}", id.endpoint.key()));
        if let Ok(mut r) = self.readiness.lock() {
            *r = Some((Instant::now(), res.clone()));
        }
        res
    }
}

/// One registered request: its ticket number and the sender that cancels it.
type Ticket = (u64, oneshot::Sender<()>);

/// Requests that `notifications/cancelled` may stop, by caller scope and request id.
/// Ids are only unique per client, so several registrations may share a key; each has
/// its own ticket and only removes itself.
#[derive(Default)]
pub struct Inflight {
    map: Mutex<HashMap<(String, String), Vec<Ticket>>>,
    next: std::sync::atomic::AtomicU64,
}

impl Inflight {
    pub fn register(&self, scope: &str, request_id: &str) -> InflightGuard<'_> {
        let (tx, rx) = oneshot::channel();
        let key = (scope.to_string(), request_id.to_string());
        let ticket = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut m) = self.map.lock() {
            m.entry(key.clone()).or_default().push((ticket, tx));
        }
        InflightGuard {
            owner: self,
            key,
            ticket,
            cancelled: Some(rx),
        }
    }

    /// Tells every running request under this key to stop; returns how many there were.
    pub fn cancel(&self, scope: &str, request_id: &str) -> usize {
        let senders = self
            .map
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&(scope.to_string(), request_id.to_string())));
        senders
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, tx)| !tx.is_closed())
            .map(|(_, tx)| tx.send(()))
            .filter(Result::is_ok)
            .count()
    }
}

pub struct InflightGuard<'a> {
    owner: &'a Inflight,
    key: (String, String),
    ticket: u64,
    /// Resolves with `Ok(())` only when the request is cancelled.
    pub cancelled: Option<oneshot::Receiver<()>>,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.owner.map.lock() {
            if let Some(list) = m.get_mut(&self.key) {
                list.retain(|(t, _)| *t != self.ticket);
                if list.is_empty() {
                    m.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth() -> crate::config::OAuthConfig {
        crate::config::OAuthConfig {
            username_claim: "preferred_username".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_unverified_token_names_nobody() {
        // What a forged token claims must not become a Basic username, a role, a
        // logged subject or a cache lifetime.
        let id = TokenIdentity::of(
            None,
            "forged.token.sig",
            &oauth(),
            &RolePolicy::new("", "").unwrap(),
        )
        .expect("no role policy");
        assert!(matches!(id.username, Err(ClaimsError::Unverified)));
        assert!(id.roles.is_empty());
        assert_eq!(
            id.caller.subject,
            format!("token:{}", token_fingerprint("forged.token.sig"))
        );
        assert_eq!(id.caller.email, None);
        assert_eq!(id.expires, None);
        // A role policy on an unverified token fails closed.
        assert!(
            TokenIdentity::of(None, "t", &oauth(), &RolePolicy::new("groups", "").unwrap())
                .is_err()
        );
    }

    #[test]
    fn a_verified_token_names_its_user_roles_and_expiry() {
        let claims = Claims::from_map(
            serde_json::json!({"sub": "u1", "email": "a@x.io", "preferred_username": "alice",
                               "groups": ["analyst"], "exp": 1_800_000_000})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        let id = TokenIdentity::of(
            Some(&claims),
            "t",
            &oauth(),
            &RolePolicy::new("groups", "").unwrap(),
        )
        .expect("roles");
        assert_eq!(id.username.as_deref(), Ok("alice"));
        assert_eq!(id.roles, ["analyst"]);
        assert_eq!(id.caller.subject, "u1");
        assert_eq!(id.caller.email.as_deref(), Some("a@x.io"));
        assert_eq!(
            id.expires,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
    }

    #[test]
    fn requests_sharing_an_id_do_not_cancel_each_other() {
        let inflight = Inflight::default();
        let mut first = inflight.register("anonymous", "1");
        let mut second = inflight.register("anonymous", "1");
        drop(second.cancelled.take());
        drop(second);
        let mut rx = first.cancelled.take().unwrap();
        assert!(
            rx.try_recv().is_err(),
            "finishing one request must not cancel the other"
        );
        assert_eq!(inflight.cancel("anonymous", "1"), 1);
        assert_eq!(rx.try_recv(), Ok(()));
    }
}

//! The per-token, per-cluster catalog cache (docs/spec-notes.md, "Catalog cache").
//!
//! One lock guards the maps; it is never held across an `.await`. Discovery itself runs
//! in the caller's task, outside the lock, under the process-wide semaphore and the
//! discovery budget. Time is passed in (`now`), so every rule is testable without sleeping.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::error::Elapsed;

use super::admission::{Admission, MAX_CONCURRENT_DISCOVERIES};
use super::key::{CatalogKey, ContentHash};
use crate::clickhouse::QueryError;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::config::MultiClusterConfig;
use crate::telemetry::metrics::HistogramFamily;
use crate::telemetry::Metrics;

/// Fill ratio from which every insert evicts one denied entry, so denials (cheap to
/// recompute, and what an attacker can mass-produce) cannot crowd out real catalogs.
pub const EVICT_FROM_FILL: f64 = 0.70;
/// Longest a discovery may take once it has its slot (less when the answer's deadline
/// is nearer, never less than [`MIN_DISCOVERY_TIME`]).
pub const DISCOVERY_BUDGET: Duration = Duration::from_secs(3);
/// The longest a cold answer waits for a catalog, queue and discovery together: the
/// storm's target, far inside the 30–60 s request timeouts of the official SDKs.
pub const ANSWER_BUDGET: Duration = Duration::from_secs(5);
/// What a discovery that waited in the queue is still given: a healthy server answers
/// the two or three system-table queries in tens of milliseconds.
pub const MIN_DISCOVERY_TIME: Duration = Duration::from_secs(1);
/// Longest a lookup waits in the fair queue for a slot before its answer says the
/// catalog is pending: [`ANSWER_BUDGET`] less [`MIN_DISCOVERY_TIME`]. At ~30 ms a
/// discovery, 16 slots drain ~2,000 discoveries in 4 s: 50 clusters for 40 callers
/// arriving in the same instant.
pub const QUEUE_BUDGET: Duration = Duration::from_secs(4);
/// How often the owner must call [`CatalogCache::sweep`]: expired entries hold memory.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// At most one saturation warning per this period: under a burst every request saturates.
pub const SATURATION_WARN_EVERY: Duration = Duration::from_secs(10);

/// The cache's limits, from `multicluster.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// `catalog_cache_max`: entries of both kinds together.
    pub max_entries: usize,
    /// `catalog_ttl_fallback`: the longest a positive entry lives.
    pub ttl_fallback: Duration,
    /// `catalog_negative_ttl`: how long a denial is remembered.
    pub negative_ttl: Duration,
    /// [`DISCOVERY_BUDGET`]; a field only so an embedding can tighten it.
    pub discovery_budget: Duration,
    /// [`QUEUE_BUDGET`]: the default wait for a slot ([`CatalogCache::lookup_within`]
    /// takes another).
    pub queue_budget: Duration,
}

impl CacheConfig {
    pub fn from_config(mc: &MultiClusterConfig) -> Self {
        Self {
            max_entries: mc.catalog_cache_max,
            ttl_fallback: mc.catalog_ttl_fallback.get(),
            negative_ttl: mc.catalog_negative_ttl.get(),
            discovery_budget: DISCOVERY_BUDGET,
            queue_budget: QUEUE_BUDGET,
        }
    }

    /// Entry count from which inserts evict denied entries (70% of the cap, rounded up).
    pub fn evict_from(&self) -> usize {
        (self.max_entries as f64 * EVICT_FROM_FILL).ceil() as usize
    }
}

/// Why discovery failed, as the cache needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DiscoveryError {
    /// An authentication/authorization refusal: cached as a denial. Anything else is
    /// transient and never cached.
    pub auth_class: bool,
    pub message: String,
}

impl DiscoveryError {
    pub fn auth(message: impl Into<String>) -> Self {
        Self {
            auth_class: true,
            message: message.into(),
        }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            auth_class: false,
            message: message.into(),
        }
    }
}

impl From<&QueryError> for DiscoveryError {
    /// Classified by the one auth-class classifier ([`QueryError::is_auth_class`]).
    fn from(e: &QueryError) -> Self {
        Self {
            auth_class: e.is_auth_class(),
            message: e.to_string(),
        }
    }
}

impl From<QueryError> for DiscoveryError {
    fn from(e: QueryError) -> Self {
        Self::from(&e)
    }
}

/// Why a request is served the static tools only (never an error: the user can still
/// run `execute_query`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StaticReason {
    /// No discovery slot came free within the request's queue budget: the catalog is
    /// pending (named as such, never silently dropped); the next lookup queues again.
    Pending,
    /// Discovery failed for a non-auth reason (network, 5xx, unclassified).
    Transient,
    /// Discovery ran out of its budget.
    Timeout,
}

/// What the caller serves.
#[derive(Debug)]
pub enum CatalogOutcome<T> {
    /// A cached catalog; nothing was sent to ClickHouse.
    Hit(Arc<T>),
    /// Discovered for this request (or for a concurrent one for the same key).
    Discovered(Arc<T>),
    /// ClickHouse refused this token recently (auth-class failure): static tools only.
    Denied,
    /// No catalog this time: static tools only.
    StaticOnly { reason: StaticReason },
}

impl<T> CatalogOutcome<T> {
    /// The dynamic catalog to serve, if any.
    pub fn catalog(&self) -> Option<&Arc<T>> {
        match self {
            CatalogOutcome::Hit(c) | CatalogOutcome::Discovered(c) => Some(c),
            CatalogOutcome::Denied | CatalogOutcome::StaticOnly { .. } => None,
        }
    }
}

/// A snapshot of the cache's figures for `/health` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Entries of both kinds.
    pub entries: u64,
    pub denied_entries: u64,
    pub max_entries: u64,
    /// Distinct catalogs alive: entries with the same grants share one.
    pub distinct_catalogs: u64,
    pub discoveries_in_flight: u64,
    pub hits_ok: u64,
    pub hits_denied: u64,
    pub misses: u64,
    /// New entries served but not stored because the cache was full, by kind.
    pub full_drops_ok: u64,
    pub full_drops_denied: u64,
    /// Denied entries evicted to make room (from 70% fill).
    pub evictions_denied: u64,
    /// Expired entries removed (on lookup or by the sweep).
    pub expired_removed: u64,
    /// Requests answered "pending": no discovery slot came free within their budget
    /// (the exported outcome keeps its name, `saturated`).
    pub saturations: u64,
    /// Requests waiting in the fair queue for a discovery slot now.
    pub discoveries_queued: u64,
    /// Discoveries that produced a catalog.
    pub discoveries_ok: u64,
    pub auth_errors: u64,
    /// Non-auth discovery failures, timeouts included.
    pub transient_errors: u64,
    pub discovery_timeouts: u64,
}

/// The cache's counters and size gauges. Built from the Prometheus families
/// ([`CacheMetrics::registered`]) they are the exported series themselves, incremented
/// at the event; [`CatalogCache::stats`] reads the same values for `/health`.
#[derive(Default, Clone)]
pub struct CacheMetrics {
    hits_ok: Counter,
    hits_denied: Counter,
    misses: Counter,
    full_drops_ok: Counter,
    full_drops_denied: Counter,
    evictions_denied: Counter,
    expired_removed: Counter,
    saturations: Counter,
    discoveries_ok: Counter,
    auth_errors: Counter,
    transient_errors: Counter,
    discovery_timeouts: Counter,
    entries: Gauge,
    denied_entries: Gauge,
    discovery_duration: Option<HistogramFamily>,
}

impl CacheMetrics {
    /// Times one discovery by how it ended (`ok`, `auth_error`, `transient_error`,
    /// `timeout`).
    fn observe_discovery<U>(
        &self,
        result: &Result<Result<U, DiscoveryError>, Elapsed>,
        elapsed: std::time::Duration,
    ) {
        let Some(family) = &self.discovery_duration else {
            return;
        };
        let outcome = match result {
            Ok(Ok(_)) => "ok",
            Ok(Err(e)) if e.auth_class => "auth_error",
            Ok(Err(_)) => "transient_error",
            Err(_) => "timeout",
        };
        Metrics::observe(family, &[("outcome", outcome)], elapsed.as_secs_f64());
    }

    /// Handles on the `chmcp_catalog_*` series (the three internal-only counters stay
    /// unexported).
    pub fn registered(m: &Metrics) -> Self {
        let series = |family: &crate::telemetry::metrics::CounterFamily,
                      key: &'static str,
                      value: &'static str| {
            family.get_or_create(&vec![(key, value.into())]).clone()
        };
        Self {
            hits_ok: series(&m.catalog_lookups, "result", "hit_ok"),
            hits_denied: series(&m.catalog_lookups, "result", "hit_denied"),
            misses: series(&m.catalog_lookups, "result", "miss"),
            full_drops_ok: series(&m.catalog_drops, "kind", "ok"),
            full_drops_denied: series(&m.catalog_drops, "kind", "denied"),
            saturations: series(&m.catalog_discoveries, "outcome", "saturated"),
            discoveries_ok: series(&m.catalog_discoveries, "outcome", "ok"),
            auth_errors: series(&m.catalog_discoveries, "outcome", "auth_error"),
            transient_errors: series(&m.catalog_discoveries, "outcome", "transient_error"),
            entries: m.catalog_entries.clone(),
            denied_entries: m.catalog_denied_entries.clone(),
            discovery_duration: Some(m.catalog_discovery_duration.clone()),
            ..Self::default()
        }
    }
}

fn bump(c: &Counter) {
    c.inc();
}

fn read(c: &Counter) -> u64 {
    c.get()
}

enum Entry<T> {
    Ok {
        catalog: Arc<T>,
        expires: SystemTime,
    },
    /// `slot` is this key's index in `State::denied`, for O(1) removal.
    Denied { expires: SystemTime, slot: usize },
}

impl<T> Entry<T> {
    fn expires(&self) -> SystemTime {
        match self {
            Entry::Ok { expires, .. } | Entry::Denied { expires, .. } => *expires,
        }
    }
}

/// The result of one discovery, as handed to requests that waited for it.
enum Settled<T> {
    Discovered(Arc<T>),
    Denied,
    Static(StaticReason),
}

// Manual: a derive would demand `T: Clone`, and catalogs are shared, never cloned.
impl<T> Clone for Settled<T> {
    fn clone(&self) -> Self {
        match self {
            Settled::Discovered(c) => Settled::Discovered(c.clone()),
            Settled::Denied => Settled::Denied,
            Settled::Static(r) => Settled::Static(*r),
        }
    }
}

impl<T> Settled<T> {
    fn into_outcome(self) -> CatalogOutcome<T> {
        match self {
            Settled::Discovered(c) => CatalogOutcome::Discovered(c),
            Settled::Denied => CatalogOutcome::Denied,
            Settled::Static(reason) => CatalogOutcome::StaticOnly { reason },
        }
    }
}

type InFlight<T> = watch::Receiver<Option<Settled<T>>>;

struct State<T> {
    entries: HashMap<CatalogKey, Entry<T>>,
    /// Keys of the denied entries, so one can be picked at random in O(1).
    denied: Vec<CatalogKey>,
    /// Discoveries under way; later misses for the same key wait on these.
    inflight: HashMap<CatalogKey, InFlight<T>>,
    /// One `Arc` per distinct catalog content; weak, so a catalog dies with its last entry.
    interned: HashMap<ContentHash, Weak<T>>,
    last_saturation_warning: Option<SystemTime>,
    suppressed_saturation_warnings: u64,
}

enum Found<T> {
    Ok(Arc<T>),
    Denied,
    Expired,
    Absent,
}

impl<T> State<T> {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
            denied: Vec::new(),
            inflight: HashMap::new(),
            interned: HashMap::new(),
            last_saturation_warning: None,
            suppressed_saturation_warnings: 0,
        }
    }

    fn find(&self, key: &CatalogKey, now: SystemTime) -> Found<T> {
        match self.entries.get(key) {
            None => Found::Absent,
            Some(e) if e.expires() <= now => Found::Expired,
            Some(Entry::Ok { catalog, .. }) => Found::Ok(catalog.clone()),
            Some(Entry::Denied { .. }) => Found::Denied,
        }
    }

    fn remove(&mut self, key: &CatalogKey) -> bool {
        match self.entries.remove(key) {
            Some(Entry::Denied { slot, .. }) => {
                self.forget_denied_slot(slot);
                true
            }
            Some(Entry::Ok { .. }) => true,
            None => false,
        }
    }

    /// Drops `denied[slot]` by swapping the last key into its place and re-pointing that
    /// key's entry at the new slot: O(1).
    fn forget_denied_slot(&mut self, slot: usize) {
        if slot >= self.denied.len() {
            return;
        }
        self.denied.swap_remove(slot);
        if let Some(moved) = self.denied.get(slot) {
            if let Some(Entry::Denied { slot: s, .. }) = self.entries.get_mut(moved) {
                *s = slot;
            }
        }
    }

    fn evict_random_denied(&mut self) -> bool {
        if self.denied.is_empty() {
            return false;
        }
        let slot = fastrand::usize(..self.denied.len());
        let Some(key) = self.denied.get(slot).cloned() else {
            return false;
        };
        self.entries.remove(&key);
        self.forget_denied_slot(slot);
        true
    }

    /// Stores an entry under the capacity rules; `false` when the cache is full.
    fn store(
        &mut self,
        key: &CatalogKey,
        entry: NewEntry<T>,
        cfg: &CacheConfig,
        counters: &CacheMetrics,
    ) -> bool {
        // A leader is the only writer for its key, but an entry may have expired in place.
        self.remove(key);
        if self.entries.len() >= cfg.evict_from() && self.evict_random_denied() {
            bump(&counters.evictions_denied);
        }
        if self.entries.len() >= cfg.max_entries {
            return false;
        }
        let entry = match entry {
            NewEntry::Ok { catalog, expires } => Entry::Ok { catalog, expires },
            NewEntry::Denied { expires } => {
                self.denied.push(key.clone());
                Entry::Denied {
                    expires,
                    slot: self.denied.len() - 1,
                }
            }
        };
        self.entries.insert(key.clone(), entry);
        true
    }

    /// The shared `Arc` for this content: the one already alive, else this one.
    fn intern(&mut self, catalog: Arc<T>, hash: ContentHash) -> Arc<T> {
        if let Some(existing) = self.interned.get(&hash).and_then(Weak::upgrade) {
            return existing;
        }
        self.interned.insert(hash, Arc::downgrade(&catalog));
        catalog
    }

    /// Whether to log a saturation warning now; returns how many were held back since
    /// the last one.
    fn saturation_warning_due(&mut self, now: SystemTime) -> Option<u64> {
        let due = match self.last_saturation_warning {
            None => true,
            // A clock that went backwards also lets a warning through.
            Some(last) => match now.duration_since(last) {
                Ok(since) => since >= SATURATION_WARN_EVERY,
                Err(_) => true,
            },
        };
        if due {
            self.last_saturation_warning = Some(now);
            Some(std::mem::take(&mut self.suppressed_saturation_warnings))
        } else {
            self.suppressed_saturation_warnings += 1;
            None
        }
    }
}

enum NewEntry<T> {
    Ok {
        catalog: Arc<T>,
        expires: SystemTime,
    },
    Denied {
        expires: SystemTime,
    },
}

/// When a positive entry expires: the earlier of the token's `exp` and now + the
/// fallback TTL; `None` when that is not in the future (serve, do not store).
pub fn positive_expiry(
    now: SystemTime,
    token_exp: Option<SystemTime>,
    ttl_fallback: Duration,
) -> Option<SystemTime> {
    let fallback = now.checked_add(ttl_fallback)?;
    let expires = token_exp.map_or(fallback, |exp| exp.min(fallback));
    (expires > now).then_some(expires)
}

/// What one lookup decided while holding the lock.
enum Step<T> {
    Done(CatalogOutcome<T>),
    Wait(InFlight<T>),
    Lead(watch::Sender<Option<Settled<T>>>),
}

/// Where a lookup's discovery queues and how long it may wait for a slot.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    /// The ClickHouse endpoint (`host:port`) the discovery would query: the per-server
    /// cap's lane.
    pub server: &'a str,
    /// Longest wait for a discovery slot; past it the answer is "pending".
    pub queue_budget: Duration,
}

/// The catalog cache. `T` is the caller's catalog type; entries hold it as `Arc<T>`.
pub struct CatalogCache<T> {
    cfg: CacheConfig,
    state: Mutex<State<T>>,
    admission: Admission,
    counters: CacheMetrics,
}

impl<T> CatalogCache<T> {
    /// A cache whose counters are not exported (tests, tools).
    pub fn new(cfg: CacheConfig) -> Self {
        Self::with_metrics(cfg, CacheMetrics::default())
    }

    pub fn with_metrics(cfg: CacheConfig, counters: CacheMetrics) -> Self {
        Self {
            cfg,
            state: Mutex::new(State::new()),
            admission: Admission::default(),
            counters,
        }
    }

    /// Sets the size gauges after the entries changed (the change is the event).
    fn note_size(&self, st: &State<T>) {
        self.counters.entries.set(st.entries.len() as i64);
        self.counters.denied_entries.set(st.denied.len() as i64);
    }

    /// Rough memory one entry costs besides its catalog (which identical grants share):
    /// the map slot at hashbrown's worst load after a doubling, and the cluster name's
    /// allocation. For sizing `catalog_cache_max`; not a measurement.
    pub fn approx_entry_bytes(cluster_len: usize) -> usize {
        let slot = std::mem::size_of::<CatalogKey>() + std::mem::size_of::<Entry<T>>() + 1;
        // Load is between 7/16 and 7/8 of the buckets: count two slots per entry.
        2 * slot + cluster_len.next_multiple_of(16) + 16
    }

    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding the lock leaves the maps consistent enough for a cache
        // (each mutation is a few steps); keep serving rather than poison every request.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The catalog for `key`: a cached entry, or one discovery shared by every
    /// concurrent miss for the key. Never an error: failures serve the static tools.
    /// The discovery queues on the key's cluster name as its server, for up to the
    /// configured queue budget ([`Self::lookup_within`] names both).
    ///
    /// `token_exp` is the bearer's JWT `exp` (`None` for opaque tokens); `now` is the
    /// current wall-clock time, the clock `exp` is written in.
    pub async fn lookup_or_discover<F, Fut>(
        &self,
        key: &CatalogKey,
        token_exp: Option<SystemTime>,
        now: SystemTime,
        discover: F,
    ) -> CatalogOutcome<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Arc<T>, ContentHash), DiscoveryError>>,
    {
        let wait = Lookup {
            server: key.cluster(),
            queue_budget: self.cfg.queue_budget,
        };
        self.lookup_within(key, wait, token_exp, now, discover)
            .await
    }

    /// [`Self::lookup_or_discover`] on `wait.server` (`host:port`: the per-server cap),
    /// waiting at most `wait.queue_budget` for a slot in the fair queue; past it the
    /// answer is [`StaticReason::Pending`]. A discovery that got its slot has the
    /// discovery budget, cut to the answer's deadline (queue budget + 1 s) when that is
    /// nearer.
    pub async fn lookup_within<F, Fut>(
        &self,
        key: &CatalogKey,
        wait: Lookup<'_>,
        token_exp: Option<SystemTime>,
        now: SystemTime,
        discover: F,
    ) -> CatalogOutcome<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Arc<T>, ContentHash), DiscoveryError>>,
    {
        let queue_deadline = tokio::time::Instant::now() + wait.queue_budget;
        // The answer goes out by then, catalog or "pending" (waiting on another request's
        // discovery included).
        let answer_deadline = queue_deadline + MIN_DISCOVERY_TIME;
        let mut counted_miss = false;
        loop {
            match self.decide(key, now, &mut counted_miss) {
                Step::Done(outcome) => return outcome,
                Step::Lead(tx) => {
                    // Armed from here: a request dropped while queued or discovering
                    // (its client went away) frees the key for its waiters.
                    let mut abandon = AbandonGuard {
                        cache: self,
                        key,
                        armed: true,
                    };
                    let admitted = tokio::time::timeout_at(
                        queue_deadline,
                        self.admission.admit(key.token_digest(), wait.server),
                    )
                    .await;
                    let Ok(Ok(slot)) = admitted else {
                        // Out of budget in the queue: give the key up (dropping `tx`
                        // wakes its waiters, and one with time left leads) and say pending.
                        drop(abandon);
                        drop(tx);
                        return self.pending(key, now);
                    };
                    let left =
                        answer_deadline.saturating_duration_since(tokio::time::Instant::now());
                    let budget = self.cfg.discovery_budget.min(left.max(MIN_DISCOVERY_TIME));
                    let outcome = self
                        .lead(key, token_exp, now, (discover, budget), tx, &mut abandon)
                        .await;
                    drop(slot);
                    return outcome;
                }
                Step::Wait(mut rx) => {
                    let settled =
                        tokio::time::timeout_at(answer_deadline, rx.wait_for(Option::is_some))
                            .await;
                    match settled {
                        Ok(Ok(v)) => {
                            if let Some(s) = v.clone() {
                                return s.into_outcome();
                            }
                        }
                        Err(_elapsed) => return self.pending(key, now),
                        // The leading request went away or gave up: try again (one of
                        // the waiters becomes the new leader).
                        Ok(Err(_closed)) => {}
                    }
                }
            }
        }
    }

    /// A live catalog with this content hash, if any entry holds one: a discovery that
    /// found the same inputs as an earlier one reuses its catalog instead of building.
    pub fn shared(&self, hash: &ContentHash) -> Option<Arc<T>> {
        self.lock().interned.get(hash).and_then(Weak::upgrade)
    }

    /// The catalog for `key` if one is cached now: no discovery, no waiting.
    pub fn cached(&self, key: &CatalogKey, now: SystemTime) -> Option<Arc<T>> {
        match self.lock().find(key, now) {
            Found::Ok(c) => Some(c),
            Found::Denied | Found::Expired | Found::Absent => None,
        }
    }

    /// Counts and (rate-limited) logs an answer that had to say "pending".
    fn pending(&self, key: &CatalogKey, now: SystemTime) -> CatalogOutcome<T> {
        bump(&self.counters.saturations);
        if let Some(suppressed) = self.lock().saturation_warning_due(now) {
            tracing::warn!(
                limit = MAX_CONCURRENT_DISCOVERIES,
                cluster = key.cluster(),
                token = %key.token_fingerprint(),
                suppressed,
                "no catalog discovery slot came free within the queue budget; the catalog is pending"
            );
        }
        CatalogOutcome::StaticOnly {
            reason: StaticReason::Pending,
        }
    }

    fn decide(&self, key: &CatalogKey, now: SystemTime, counted_miss: &mut bool) -> Step<T> {
        let mut st = self.lock();
        match st.find(key, now) {
            Found::Ok(catalog) => {
                bump(&self.counters.hits_ok);
                return Step::Done(CatalogOutcome::Hit(catalog));
            }
            Found::Denied => {
                bump(&self.counters.hits_denied);
                return Step::Done(CatalogOutcome::Denied);
            }
            Found::Expired => {
                st.remove(key);
                bump(&self.counters.expired_removed);
                self.note_size(&st);
            }
            Found::Absent => {}
        }
        if !std::mem::replace(counted_miss, true) {
            bump(&self.counters.misses);
        }
        if let Some(rx) = st.inflight.get(key) {
            return Step::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        st.inflight.insert(key.clone(), rx);
        Step::Lead(tx)
    }

    async fn lead<F, Fut>(
        &self,
        key: &CatalogKey,
        token_exp: Option<SystemTime>,
        now: SystemTime,
        (discover, budget): (F, Duration),
        tx: watch::Sender<Option<Settled<T>>>,
        abandon: &mut AbandonGuard<'_, T>,
    ) -> CatalogOutcome<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Arc<T>, ContentHash), DiscoveryError>>,
    {
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(budget, discover()).await;
        self.counters.observe_discovery(&result, started.elapsed());
        // Logged before taking the lock: an outage makes every miss a failure.
        self.log_failure(key, &result);
        let settled = {
            let mut st = self.lock();
            st.inflight.remove(key);
            abandon.armed = false;
            let settled = self.settle(&mut st, key, token_exp, now, result);
            self.note_size(&st);
            settled
        };
        // Waiters hold their own receivers; an error only means nobody waited.
        let _ = tx.send(Some(settled.clone()));
        settled.into_outcome()
    }

    fn log_failure<U>(
        &self,
        key: &CatalogKey,
        result: &Result<Result<U, DiscoveryError>, Elapsed>,
    ) {
        let (cluster, token) = (key.cluster(), key.token_fingerprint());
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.auth_class => tracing::debug!(
                cluster,
                token,
                error = ?e.message,
                "catalog discovery refused; caching the denial"
            ),
            Ok(Err(e)) => tracing::warn!(
                cluster,
                token,
                error = ?e.message,
                "catalog discovery failed; serving the static tools"
            ),
            Err(_) => tracing::warn!(
                cluster,
                token,
                budget_ms = self.cfg.discovery_budget.as_millis() as u64,
                "catalog discovery ran out of its budget; serving the static tools"
            ),
        }
    }

    fn settle(
        &self,
        st: &mut State<T>,
        key: &CatalogKey,
        token_exp: Option<SystemTime>,
        now: SystemTime,
        result: Result<Result<(Arc<T>, ContentHash), DiscoveryError>, Elapsed>,
    ) -> Settled<T> {
        let c = &self.counters;
        match result {
            Ok(Ok((catalog, hash))) => {
                bump(&c.discoveries_ok);
                let catalog = st.intern(catalog, hash);
                if let Some(expires) = positive_expiry(now, token_exp, self.cfg.ttl_fallback) {
                    let entry = NewEntry::Ok {
                        catalog: catalog.clone(),
                        expires,
                    };
                    if !st.store(key, entry, &self.cfg, c) {
                        bump(&c.full_drops_ok);
                    }
                }
                Settled::Discovered(catalog)
            }
            Ok(Err(e)) if e.auth_class => {
                bump(&c.auth_errors);
                if let Some(expires) = now.checked_add(self.cfg.negative_ttl) {
                    if !st.store(key, NewEntry::Denied { expires }, &self.cfg, c) {
                        bump(&c.full_drops_denied);
                    }
                }
                Settled::Denied
            }
            Ok(Err(_)) => {
                bump(&c.transient_errors);
                Settled::Static(StaticReason::Transient)
            }
            Err(_elapsed) => {
                bump(&c.transient_errors);
                bump(&c.discovery_timeouts);
                Settled::Static(StaticReason::Timeout)
            }
        }
    }

    /// Removes every expired entry; returns how many. Run at least every [`SWEEP_EVERY`].
    pub fn sweep(&self, now: SystemTime) -> usize {
        let mut st = self.lock();
        let State {
            entries,
            denied,
            interned,
            ..
        } = &mut *st;
        let before = entries.len();
        entries.retain(|_, e| e.expires() > now);
        let removed = before - entries.len();
        denied.retain(|k| entries.contains_key(k));
        for (i, k) in denied.iter().enumerate() {
            if let Some(Entry::Denied { slot, .. }) = entries.get_mut(k) {
                *slot = i;
            }
        }
        interned.retain(|_, w| w.strong_count() > 0);
        self.admission.prune();
        // Give back memory after a burst; HashMap never shrinks on its own.
        if entries.capacity() > 4 * entries.len().max(1024) {
            entries.shrink_to_fit();
            denied.shrink_to_fit();
            interned.shrink_to_fit();
        }
        self.counters.expired_removed.inc_by(removed as u64);
        self.note_size(&st);
        removed
    }

    /// Runs [`Self::sweep`] every [`SWEEP_EVERY`] on the wall clock until the task is
    /// aborted; the gateway keeps the handle and aborts it on shutdown.
    pub fn spawn_sweeper(cache: Arc<Self>) -> tokio::task::JoinHandle<()>
    where
        T: Send + Sync + 'static,
    {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let removed = cache.sweep(SystemTime::now());
                if removed > 0 {
                    tracing::debug!(removed, "swept expired catalog entries");
                }
            }
        })
    }

    /// Forgets one entry (e.g. a cached catalog whose token ClickHouse now refuses).
    pub fn invalidate(&self, key: &CatalogKey) -> bool {
        let mut st = self.lock();
        let removed = st.remove(key);
        self.note_size(&st);
        removed
    }

    pub fn stats(&self) -> CacheStats {
        let (entries, denied, distinct) = {
            let st = self.lock();
            let live = st
                .interned
                .values()
                .filter(|w| w.strong_count() > 0)
                .count();
            (st.entries.len(), st.denied.len(), live)
        };
        let c = &self.counters;
        CacheStats {
            entries: entries as u64,
            denied_entries: denied as u64,
            max_entries: self.cfg.max_entries as u64,
            distinct_catalogs: distinct as u64,
            discoveries_in_flight: self.admission.running() as u64,
            discoveries_queued: self.admission.waiting() as u64,
            hits_ok: read(&c.hits_ok),
            hits_denied: read(&c.hits_denied),
            misses: read(&c.misses),
            full_drops_ok: read(&c.full_drops_ok),
            full_drops_denied: read(&c.full_drops_denied),
            evictions_denied: read(&c.evictions_denied),
            expired_removed: read(&c.expired_removed),
            saturations: read(&c.saturations),
            discoveries_ok: read(&c.discoveries_ok),
            auth_errors: read(&c.auth_errors),
            transient_errors: read(&c.transient_errors),
            discovery_timeouts: read(&c.discovery_timeouts),
        }
    }
}

/// Clears the in-flight marker when the leading request is dropped mid-discovery (its
/// client went away); the dropped sender wakes the waiters, and one of them leads.
struct AbandonGuard<'a, T> {
    cache: &'a CatalogCache<T>,
    key: &'a CatalogKey,
    armed: bool,
}

impl<T> Drop for AbandonGuard<'_, T> {
    fn drop(&mut self) {
        if self.armed {
            self.cache.lock().inflight.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::{pending, ready};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::catalog::admission::{MAX_DISCOVERIES_PER_CALLER, MAX_DISCOVERIES_PER_SERVER};
    use crate::clickhouse::ServerError;
    use tokio::sync::Semaphore;

    type Tools = Vec<String>;
    type Ready = std::future::Ready<Result<(Arc<Tools>, ContentHash), DiscoveryError>>;
    type BoxedDiscovery = Box<dyn FnOnce() -> Ready>;

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn cfg(max: usize) -> CacheConfig {
        CacheConfig {
            max_entries: max,
            ttl_fallback: Duration::from_secs(15 * 60),
            negative_ttl: Duration::from_secs(60),
            discovery_budget: DISCOVERY_BUDGET,
            queue_budget: QUEUE_BUDGET,
        }
    }

    fn tools(names: &[&str]) -> (Arc<Tools>, ContentHash) {
        let t: Tools = names.iter().map(|s| s.to_string()).collect();
        let h = ContentHash::of(t.join("\n").as_bytes());
        (Arc::new(t), h)
    }

    fn found(names: &[&str]) -> impl FnOnce() -> Ready {
        let r = tools(names);
        move || ready(Ok(r))
    }

    fn failing(e: DiscoveryError) -> impl FnOnce() -> Ready {
        move || ready(Err(e))
    }

    /// A discovery that must not run: the lookup has to be answered from the cache.
    fn unreachable_discovery() -> impl FnOnce() -> Ready {
        || panic!("a cache hit must not run discovery")
    }

    fn key(token: &str) -> CatalogKey {
        CatalogKey::new(token, "otel")
    }

    fn names(o: &CatalogOutcome<Tools>) -> Option<Vec<String>> {
        o.catalog().map(|c| c.as_ref().clone())
    }

    /// The denied index must always mirror the denied entries exactly.
    fn assert_denied_index_consistent(cache: &CatalogCache<Tools>) {
        let st = cache.lock();
        let denied_entries = st
            .entries
            .values()
            .filter(|e| matches!(e, Entry::Denied { .. }))
            .count();
        assert_eq!(denied_entries, st.denied.len());
        for (i, k) in st.denied.iter().enumerate() {
            match st.entries.get(k) {
                Some(Entry::Denied { slot, .. }) => assert_eq!(*slot, i),
                _ => panic!("denied index points at a non-denied entry"),
            }
        }
    }

    #[tokio::test]
    async fn exported_series_move_at_the_event_without_a_scrape_time_catch_up() {
        let metrics = Metrics::new();
        let cache = CatalogCache::with_metrics(cfg(10), CacheMetrics::registered(&metrics));
        cache
            .lookup_or_discover(&key("a"), None, t0(), found(&["t"]))
            .await;
        cache
            .lookup_or_discover(&key("a"), None, t0(), unreachable_discovery())
            .await;
        // Nothing copies the cache's numbers into the registry: what is rendered is
        // what the cache counted, and `/health` reads the same counters.
        let text = metrics.render();
        for series in [
            "chmcp_catalog_cache_lookups_total{result=\"miss\"} 1",
            "chmcp_catalog_cache_lookups_total{result=\"hit_ok\"} 1",
            "chmcp_catalog_discoveries_total{outcome=\"ok\"} 1",
            "chmcp_catalog_cache_entries 1",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
        let s = cache.stats();
        assert_eq!((s.misses, s.hits_ok, s.entries), (1, 1, 1));
        cache.sweep(t0() + Duration::from_secs(24 * 3600));
        assert!(metrics.render().contains("chmcp_catalog_cache_entries 0"));
    }

    #[tokio::test]
    async fn a_token_never_sees_another_tokens_catalog() {
        let cache = CatalogCache::new(cfg(100));
        let alice = cache
            .lookup_or_discover(&key("alice"), None, t0(), found(&["alice_view"]))
            .await;
        let bob = cache
            .lookup_or_discover(&key("bob"), None, t0(), found(&["bob_view"]))
            .await;
        assert!(matches!(alice, CatalogOutcome::Discovered(_)));
        assert_eq!(names(&bob), Some(vec!["bob_view".to_string()]));
        let alice_again = cache
            .lookup_or_discover(&key("alice"), None, t0(), unreachable_discovery())
            .await;
        assert!(matches!(alice_again, CatalogOutcome::Hit(_)));
        assert_eq!(names(&alice_again), Some(vec!["alice_view".to_string()]));
        // The same token on another cluster is another entry, discovered afresh.
        let other_cluster = CatalogKey::new("alice", "antalya");
        let o = cache
            .lookup_or_discover(&other_cluster, None, t0(), found(&["antalya_view"]))
            .await;
        assert!(matches!(o, CatalogOutcome::Discovered(_)));
        assert_eq!(names(&o), Some(vec!["antalya_view".to_string()]));
    }

    #[tokio::test]
    async fn a_hit_runs_no_discovery_and_is_counted() {
        let cache = CatalogCache::new(cfg(100));
        cache
            .lookup_or_discover(&key("a"), None, t0(), found(&["x"]))
            .await;
        for _ in 0..3 {
            let o = cache
                .lookup_or_discover(&key("a"), None, t0(), unreachable_discovery())
                .await;
            assert!(matches!(o, CatalogOutcome::Hit(_)));
        }
        let s = cache.stats();
        assert_eq!((s.hits_ok, s.misses, s.entries), (3, 1, 1));
    }

    #[tokio::test]
    async fn positive_entry_expires_at_token_exp_when_earlier_than_ttl_fallback() {
        let cache = CatalogCache::new(cfg(100));
        let exp = t0() + Duration::from_secs(60);
        cache
            .lookup_or_discover(&key("a"), Some(exp), t0(), found(&["x"]))
            .await;
        let before = cache
            .lookup_or_discover(
                &key("a"),
                Some(exp),
                exp - Duration::from_secs(1),
                unreachable_discovery(),
            )
            .await;
        assert!(matches!(before, CatalogOutcome::Hit(_)));
        let at = cache
            .lookup_or_discover(&key("a"), Some(exp), exp, found(&["y"]))
            .await;
        assert!(
            matches!(at, CatalogOutcome::Discovered(_)),
            "an entry is not served at its token's exp"
        );
        assert_eq!(cache.stats().expired_removed, 1);
    }

    #[tokio::test]
    async fn positive_entry_expires_at_ttl_fallback_when_exp_is_later_or_absent() {
        let cache = CatalogCache::new(cfg(100));
        let ttl = cache.config().ttl_fallback;
        let far = t0() + Duration::from_secs(86_400);
        cache
            .lookup_or_discover(&key("jwt"), Some(far), t0(), found(&["x"]))
            .await;
        cache
            .lookup_or_discover(&key("opaque"), None, t0(), found(&["x"]))
            .await;
        for k in ["jwt", "opaque"] {
            let inside = cache
                .lookup_or_discover(
                    &key(k),
                    Some(far),
                    t0() + ttl - Duration::from_secs(1),
                    unreachable_discovery(),
                )
                .await;
            assert!(matches!(inside, CatalogOutcome::Hit(_)), "{k}");
        }
        assert_eq!(cache.sweep(t0() + ttl), 2);
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn a_token_already_past_exp_is_served_but_not_stored() {
        assert_eq!(
            positive_expiry(
                t0(),
                Some(t0() - Duration::from_secs(5)),
                Duration::from_secs(60)
            ),
            None
        );
        assert_eq!(
            positive_expiry(t0(), Some(t0()), Duration::from_secs(60)),
            None
        );
        let exp = t0() + Duration::from_secs(5);
        assert_eq!(
            positive_expiry(t0(), Some(exp), Duration::from_secs(60)),
            Some(exp)
        );
        assert_eq!(
            positive_expiry(t0(), None, Duration::from_secs(60)),
            Some(t0() + Duration::from_secs(60))
        );
    }

    #[tokio::test]
    async fn auth_class_failure_is_cached_as_a_denial_for_negative_ttl() {
        let cache = CatalogCache::new(cfg(100));
        let refused = QueryError::Server(ServerError::parse(
            500,
            "Code: 516. DB::Exception: bob: Authentication failed. (AUTHENTICATION_FAILED)",
        ));
        let o = cache
            .lookup_or_discover(
                &key("bob"),
                None,
                t0(),
                failing(DiscoveryError::from(refused)),
            )
            .await;
        assert!(matches!(o, CatalogOutcome::Denied));
        let again = cache
            .lookup_or_discover(
                &key("bob"),
                None,
                t0() + Duration::from_secs(59),
                unreachable_discovery(),
            )
            .await;
        assert!(matches!(again, CatalogOutcome::Denied));
        let s = cache.stats();
        assert_eq!((s.auth_errors, s.hits_denied, s.denied_entries), (1, 1, 1));
        let later = cache
            .lookup_or_discover(
                &key("bob"),
                None,
                t0() + Duration::from_secs(60),
                found(&["x"]),
            )
            .await;
        assert!(
            matches!(later, CatalogOutcome::Discovered(_)),
            "a denial lives for negative_ttl only"
        );
    }

    #[tokio::test]
    async fn transient_failures_are_never_cached() {
        let cache = CatalogCache::new(cfg(100));
        let transient = [
            DiscoveryError::from(QueryError::Unreachable {
                endpoint: "ch:8123".into(),
                message: "connection refused".into(),
            }),
            DiscoveryError::from(QueryError::Server(ServerError::parse(502, "Bad Gateway"))),
            DiscoveryError::from(QueryError::Server(ServerError::parse(
                500,
                "Code: 241. DB::Exception: Memory limit exceeded. (MEMORY_LIMIT_EXCEEDED)",
            ))),
            DiscoveryError::from(QueryError::Timeout(Duration::from_secs(5))),
        ];
        for e in transient {
            assert!(!e.auth_class, "{e}");
            let o = cache
                .lookup_or_discover(&key("a"), None, t0(), failing(e))
                .await;
            assert!(matches!(
                o,
                CatalogOutcome::StaticOnly {
                    reason: StaticReason::Transient
                }
            ));
            assert_eq!(cache.stats().entries, 0);
        }
        assert_eq!(cache.stats().transient_errors, 4);
        let o = cache
            .lookup_or_discover(&key("a"), None, t0(), found(&["x"]))
            .await;
        assert!(
            matches!(o, CatalogOutcome::Discovered(_)),
            "the next request discovers again"
        );
    }

    #[tokio::test]
    async fn from_seventy_percent_fill_every_insert_evicts_one_denied_entry() {
        let cache = CatalogCache::new(cfg(100));
        assert_eq!(cache.config().evict_from(), 70);
        for i in 0..70 {
            cache
                .lookup_or_discover(
                    &key(&format!("denied-{i}")),
                    None,
                    t0(),
                    failing(DiscoveryError::auth("no")),
                )
                .await;
        }
        assert_eq!(
            (cache.stats().entries, cache.stats().evictions_denied),
            (70, 0)
        );
        for i in 0..10 {
            cache
                .lookup_or_discover(&key(&format!("ok-{i}")), None, t0(), found(&["x"]))
                .await;
            assert_denied_index_consistent(&cache);
        }
        let s = cache.stats();
        assert_eq!(
            (s.entries, s.denied_entries, s.evictions_denied),
            (70, 60, 10)
        );
        for i in 0..10 {
            let o = cache
                .lookup_or_discover(
                    &key(&format!("ok-{i}")),
                    None,
                    t0(),
                    unreachable_discovery(),
                )
                .await;
            assert!(matches!(o, CatalogOutcome::Hit(_)));
        }
    }

    #[tokio::test]
    async fn evicted_denied_entries_are_chosen_at_random() {
        // Oldest-first or newest-first eviction would always leave the same survivors.
        let mut survivors = std::collections::HashSet::new();
        for _ in 0..8 {
            let cache = CatalogCache::new(cfg(100));
            for i in 0..70 {
                cache
                    .lookup_or_discover(
                        &key(&format!("d{i}")),
                        None,
                        t0(),
                        failing(DiscoveryError::auth("no")),
                    )
                    .await;
            }
            cache
                .lookup_or_discover(&key("ok"), None, t0(), found(&["x"]))
                .await;
            let st = cache.lock();
            let missing: Vec<_> = (0..70)
                .filter(|i| !st.entries.contains_key(&key(&format!("d{i}"))))
                .collect();
            assert_eq!(missing.len(), 1);
            survivors.insert(missing[0]);
        }
        assert!(
            survivors.len() > 1,
            "eviction picked the same entry 8 times: {survivors:?}"
        );
    }

    #[tokio::test]
    async fn positives_are_never_evicted_and_at_the_cap_new_entries_are_served_not_stored() {
        let cache = CatalogCache::new(cfg(100));
        for i in 0..100 {
            cache
                .lookup_or_discover(&key(&format!("ok-{i}")), None, t0(), found(&["x"]))
                .await;
        }
        assert_eq!(cache.stats().entries, 100);
        let extra = cache
            .lookup_or_discover(&key("late"), None, t0(), found(&["late"]))
            .await;
        assert_eq!(
            names(&extra),
            Some(vec!["late".to_string()]),
            "a new catalog is still served"
        );
        let denied = cache
            .lookup_or_discover(
                &key("late-denied"),
                None,
                t0(),
                failing(DiscoveryError::auth("no")),
            )
            .await;
        assert!(matches!(denied, CatalogOutcome::Denied));
        let s = cache.stats();
        assert_eq!(
            (
                s.entries,
                s.full_drops_ok,
                s.full_drops_denied,
                s.evictions_denied
            ),
            (100, 1, 1, 0)
        );
        for i in 0..100 {
            let o = cache
                .lookup_or_discover(
                    &key(&format!("ok-{i}")),
                    None,
                    t0(),
                    unreachable_discovery(),
                )
                .await;
            assert!(
                matches!(o, CatalogOutcome::Hit(_)),
                "positive {i} was evicted"
            );
        }
        let o = cache
            .lookup_or_discover(&key("late"), None, t0(), found(&["late"]))
            .await;
        assert!(
            matches!(o, CatalogOutcome::Discovered(_)),
            "a full drop is not stored"
        );
    }

    #[tokio::test]
    async fn at_the_cap_a_denied_entry_makes_room_for_a_new_one() {
        let cache = CatalogCache::new(cfg(100));
        for i in 0..99 {
            cache
                .lookup_or_discover(&key(&format!("ok-{i}")), None, t0(), found(&["x"]))
                .await;
        }
        cache
            .lookup_or_discover(
                &key("denied"),
                None,
                t0(),
                failing(DiscoveryError::auth("no")),
            )
            .await;
        cache
            .lookup_or_discover(&key("new"), None, t0(), found(&["y"]))
            .await;
        let s = cache.stats();
        assert_eq!(
            (
                s.entries,
                s.denied_entries,
                s.evictions_denied,
                s.full_drops_ok
            ),
            (100, 0, 1, 0)
        );
    }

    #[tokio::test]
    async fn denied_index_stays_consistent_through_evictions_expiry_and_sweeps() {
        let cache = CatalogCache::new(cfg(100));
        for round in 0..400u64 {
            let now = t0() + Duration::from_secs(round);
            let k = key(&format!("k{}", fastrand::u32(..150)));
            let discover: BoxedDiscovery = if fastrand::bool() {
                Box::new(failing(DiscoveryError::auth("no")))
            } else {
                Box::new(found(&["x"]))
            };
            let exp = Some(now + Duration::from_secs(fastrand::u64(1..200)));
            cache.lookup_or_discover(&k, exp, now, discover).await;
            if round % 37 == 0 {
                cache.sweep(now);
            }
            if round % 11 == 0 {
                cache.invalidate(&key(&format!("k{}", fastrand::u32(..150))));
            }
            assert_denied_index_consistent(&cache);
            assert!(cache.stats().entries <= 100);
        }
    }

    #[tokio::test]
    async fn sweep_removes_expired_entries_of_both_kinds_and_keeps_live_ones() {
        let cache = CatalogCache::new(cfg(100));
        cache
            .lookup_or_discover(
                &key("short"),
                Some(t0() + Duration::from_secs(30)),
                t0(),
                found(&["x"]),
            )
            .await;
        cache
            .lookup_or_discover(&key("long"), None, t0(), found(&["y"]))
            .await;
        cache
            .lookup_or_discover(
                &key("denied"),
                None,
                t0(),
                failing(DiscoveryError::auth("no")),
            )
            .await;
        assert_eq!(cache.sweep(t0() + Duration::from_secs(10)), 0);
        assert_eq!(cache.sweep(t0() + Duration::from_secs(61)), 2);
        let s = cache.stats();
        assert_eq!(
            (s.entries, s.denied_entries, s.distinct_catalogs),
            (1, 0, 1)
        );
        assert_denied_index_consistent(&cache);
    }

    #[tokio::test]
    async fn identical_catalogs_are_shared_not_copied() {
        const TOKENS: usize = 100_000;
        let cache = CatalogCache::new(cfg(TOKENS));
        let twenty: Vec<String> = (0..20).map(|i| format!("tool_{i}")).collect();
        let twenty: Vec<&str> = twenty.iter().map(String::as_str).collect();
        let mut first = None;
        for i in 0..TOKENS {
            let o = cache
                .lookup_or_discover(&key(&format!("token-{i}")), None, t0(), found(&twenty))
                .await;
            let c = o.catalog().cloned().expect("discovered");
            let f = first.get_or_insert_with(|| c.clone());
            assert!(Arc::ptr_eq(f, &c));
        }
        let s = cache.stats();
        assert_eq!((s.entries, s.distinct_catalogs), (TOKENS as u64, 1));
        // One Arc for all entries (+ the one held here).
        assert_eq!(first.map(|f| Arc::strong_count(&f)), Some(TOKENS + 1));
    }

    #[tokio::test]
    async fn a_live_catalog_is_found_by_its_hash_and_gone_with_its_last_entry() {
        let cache = CatalogCache::new(cfg(100));
        let (_, h) = tools(&["x"]);
        assert!(cache.shared(&h).is_none());
        let o = cache
            .lookup_or_discover(&key("a"), None, t0(), found(&["x"]))
            .await;
        let live = cache.shared(&h).expect("interned");
        assert!(Arc::ptr_eq(&live, o.catalog().expect("discovered")));
        drop((live, o));
        assert!(cache.shared(&tools(&["y"]).1).is_none(), "other content");
        cache.invalidate(&key("a"));
        assert!(cache.shared(&h).is_none(), "no entry holds it any more");
    }

    #[tokio::test]
    async fn different_content_is_never_shared() {
        let cache = CatalogCache::new(cfg(100));
        let a = cache
            .lookup_or_discover(&key("a"), None, t0(), found(&["x"]))
            .await;
        let b = cache
            .lookup_or_discover(&key("b"), None, t0(), found(&["y"]))
            .await;
        assert!(!Arc::ptr_eq(
            a.catalog().expect("a"),
            b.catalog().expect("b")
        ));
        assert_eq!(cache.stats().distinct_catalogs, 2);
    }

    #[tokio::test]
    async fn concurrent_misses_for_one_key_share_one_discovery() {
        let cache = Arc::new(CatalogCache::<Tools>::new(cfg(100)));
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (cache, runs, gate) = (cache.clone(), runs.clone(), gate.clone());
            tasks.spawn(async move {
                cache
                    .lookup_or_discover(&key("same"), None, t0(), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _open = gate.acquire().await;
                        Ok(tools(&["x"]))
                    })
                    .await
            });
        }
        while cache.stats().misses < 50 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(1);
        let mut shared = Vec::new();
        while let Some(r) = tasks.join_next().await {
            let o = r.expect("task");
            assert!(matches!(o, CatalogOutcome::Discovered(_)));
            shared.push(o.catalog().cloned().expect("catalog"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(shared.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
        assert_eq!(cache.stats().saturations, 0);
    }

    /// Where each test discovery queues: `server`, with a budget no test reaches unless
    /// it means to.
    fn on(server: &str) -> Lookup<'_> {
        Lookup {
            server,
            queue_budget: Duration::from_secs(3600),
        }
    }

    type BoxedFuture = std::pin::Pin<
        Box<dyn Future<Output = Result<(Arc<Tools>, ContentHash), DiscoveryError>> + Send>,
    >;

    /// A gated discovery: counts itself running (and the peak), waits for the gate.
    fn gated(
        running: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
        gate: Arc<Semaphore>,
    ) -> impl FnOnce() -> BoxedFuture {
        move || {
            Box::pin(async move {
                let now_running = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now_running, Ordering::SeqCst);
                let _open = gate.acquire().await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(tools(&["x"]))
            })
        }
    }

    /// `n` cold lookups at once, lookup `i` for the key and server `at(i)` names, each a
    /// `gated` discovery: the peak of discoveries running at once, the gate, the tasks.
    fn spawn_gated(
        cache: &Arc<CatalogCache<Tools>>,
        n: usize,
        at: impl Fn(usize) -> (CatalogKey, String),
    ) -> (
        Arc<AtomicUsize>,
        Arc<Semaphore>,
        tokio::task::JoinSet<CatalogOutcome<Tools>>,
    ) {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let (cache, (k, server)) = (cache.clone(), at(i));
            let discover = gated(running.clone(), peak.clone(), gate.clone());
            tasks.spawn(async move {
                cache
                    .lookup_within(&k, on(&server), None, t0(), discover)
                    .await
            });
        }
        (peak, gate, tasks)
    }

    /// Fills server `s`'s lane with discoveries made by `make`; returns once they run.
    async fn occupy_server_s<F, Fut>(
        cache: &Arc<CatalogCache<Tools>>,
        make: impl Fn() -> F,
    ) -> tokio::task::JoinSet<CatalogOutcome<Tools>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Arc<Tools>, ContentHash), DiscoveryError>> + Send + 'static,
    {
        let mut holders = tokio::task::JoinSet::new();
        for i in 0..MAX_DISCOVERIES_PER_SERVER {
            let (cache, discover) = (cache.clone(), make());
            holders.spawn(async move {
                cache
                    .lookup_within(&key(&format!("holder-{i}")), on("s"), None, t0(), discover)
                    .await
            });
        }
        while cache.stats().discoveries_in_flight < MAX_DISCOVERIES_PER_SERVER as u64 {
            tokio::task::yield_now().await;
        }
        holders
    }

    #[tokio::test]
    async fn hundred_cold_misses_queue_within_the_caps_and_every_one_gets_its_catalog() {
        // Before the fair queue, 84 of these 100 were answered static-only at once.
        let cache = Arc::new(CatalogCache::<Tools>::new(cfg(1000)));
        let (peak, gate, mut tasks) = spawn_gated(&cache, 100, |i| {
            (key(&format!("cold-{i}")), format!("server-{}", i % 4))
        });
        while cache.stats().discoveries_queued < 84 {
            tokio::task::yield_now().await;
        }
        let s = cache.stats();
        assert_eq!(
            (s.discoveries_in_flight, s.discoveries_queued),
            (MAX_CONCURRENT_DISCOVERIES as u64, 84)
        );
        gate.add_permits(100);
        let mut discovered = 0;
        while let Some(r) = tasks.join_next().await {
            match r.expect("task") {
                CatalogOutcome::Discovered(_) => discovered += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(peak.load(Ordering::SeqCst), MAX_CONCURRENT_DISCOVERIES);
        assert_eq!(discovered, 100);
        let s = cache.stats();
        assert_eq!(
            (
                s.saturations,
                s.entries,
                s.discoveries_in_flight,
                s.discoveries_queued
            ),
            (0, 100, 0, 0)
        );
    }

    #[tokio::test]
    async fn one_server_never_runs_more_than_its_cap_while_another_server_proceeds() {
        let cache = Arc::new(CatalogCache::<Tools>::new(cfg(1000)));
        // 40 cluster names, 40 callers, one server.
        let (peak, gate, mut tasks) = spawn_gated(&cache, 40, |i| {
            (
                CatalogKey::new(&format!("caller-{i}"), &format!("name-{i}")),
                "shared:8123".to_string(),
            )
        });
        while cache.stats().discoveries_queued < 32 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            cache.stats().discoveries_in_flight,
            MAX_DISCOVERIES_PER_SERVER as u64
        );
        let elsewhere = cache
            .lookup_within(&key("other"), on("other:8123"), None, t0(), found(&["y"]))
            .await;
        assert!(matches!(elsewhere, CatalogOutcome::Discovered(_)));
        gate.add_permits(40);
        while let Some(r) = tasks.join_next().await {
            assert!(matches!(r.expect("task"), CatalogOutcome::Discovered(_)));
        }
        assert_eq!(peak.load(Ordering::SeqCst), MAX_DISCOVERIES_PER_SERVER);
    }

    #[tokio::test]
    async fn a_caller_with_forty_clusters_queued_does_not_hold_up_a_caller_with_one() {
        let cache = Arc::new(CatalogCache::<Tools>::new(cfg(1000)));
        let (peak, gate, mut tasks) = spawn_gated(&cache, 40, |i| {
            (
                CatalogKey::new("big-fleet-caller", &format!("c{i}")),
                format!("server-{}", i % 8),
            )
        });
        while cache.stats().misses < 40 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            cache.stats().discoveries_in_flight,
            MAX_DISCOVERIES_PER_CALLER as u64,
            "one caller holds at most its lane's width"
        );
        // The first caller's discoveries are all stuck; the second caller's runs now.
        let o = cache
            .lookup_within(&key("late"), on("server-0"), None, t0(), found(&["z"]))
            .await;
        assert!(matches!(o, CatalogOutcome::Discovered(_)));
        gate.add_permits(40);
        while let Some(r) = tasks.join_next().await {
            assert!(matches!(r.expect("task"), CatalogOutcome::Discovered(_)));
        }
        assert_eq!(peak.load(Ordering::SeqCst), MAX_DISCOVERIES_PER_CALLER);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_queue_budget_the_answer_is_pending_counted_and_not_cached() {
        // The slot holders never finish: they end only at their answers' deadline (5 s).
        let cache = Arc::new(CatalogCache::<Tools>::new(CacheConfig {
            discovery_budget: Duration::from_secs(60),
            ..cfg(1000)
        }));
        let mut holders = occupy_server_s(&cache, || pending).await;
        let started = tokio::time::Instant::now();
        let wait = Lookup {
            server: "s",
            queue_budget: QUEUE_BUDGET,
        };
        let o = cache
            .lookup_within(&key("queued"), wait, None, t0(), found(&["x"]))
            .await;
        assert!(
            matches!(
                o,
                CatalogOutcome::StaticOnly {
                    reason: StaticReason::Pending
                }
            ),
            "{o:?}"
        );
        assert_eq!(started.elapsed(), QUEUE_BUDGET);
        let s = cache.stats();
        assert_eq!((s.saturations, s.entries, s.discoveries_queued), (1, 0, 0));
        assert!(cache.cached(&key("queued"), t0()).is_none());
        while holders.join_next().await.is_some() {}
        // Slots free again: the next lookup discovers it.
        let o = cache
            .lookup_within(&key("queued"), wait, None, t0(), found(&["x"]))
            .await;
        assert!(matches!(o, CatalogOutcome::Discovered(_)));
        assert!(cache.cached(&key("queued"), t0()).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_discovery_that_queued_long_is_cut_at_the_answer_deadline() {
        let cache = Arc::new(CatalogCache::<Tools>::new(cfg(1000)));
        let slow = || {
            || async {
                tokio::time::sleep(Duration::from_millis(3500)).await;
                Ok(tools(&["x"]))
            }
        };
        let mut holders = occupy_server_s(&cache, slow).await;
        let started = tokio::time::Instant::now();
        let wait = Lookup {
            server: "s",
            queue_budget: QUEUE_BUDGET,
        };
        let o = cache
            .lookup_within(&key("late"), wait, None, t0(), pending)
            .await;
        assert!(
            matches!(
                o,
                CatalogOutcome::StaticOnly {
                    reason: StaticReason::Timeout
                }
            ),
            "{o:?}"
        );
        // 3.5 s in the queue, then 1.5 s of discovery, not 3: the answer keeps its 5 s.
        assert_eq!(started.elapsed(), ANSWER_BUDGET);
        while holders.join_next().await.is_some() {}
    }

    #[tokio::test]
    async fn a_leader_dropped_while_queued_frees_the_key_for_its_waiters() {
        let cache = Arc::new(CatalogCache::<Tools>::new(cfg(1000)));
        let gate = Arc::new(Semaphore::new(0));
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut holders = occupy_server_s(&cache, || {
            gated(running.clone(), peak.clone(), gate.clone())
        })
        .await;
        let leader = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .lookup_within(&key("k"), on("s"), None, t0(), found(&["never"]))
                    .await
            })
        };
        while cache.stats().discoveries_queued == 0 {
            tokio::task::yield_now().await;
        }
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .lookup_within(&key("k"), on("s"), None, t0(), found(&["x"]))
                    .await
            })
        };
        while cache.stats().misses < MAX_DISCOVERIES_PER_SERVER as u64 + 2 {
            tokio::task::yield_now().await;
        }
        leader.abort();
        gate.add_permits(MAX_DISCOVERIES_PER_SERVER);
        let o = waiter.await.expect("waiter");
        assert_eq!(names(&o), Some(vec!["x".to_string()]));
        while holders.join_next().await.is_some() {}
    }

    #[tokio::test(start_paused = true)]
    async fn discovery_budget_timeout_is_transient_and_not_cached() {
        let cache = CatalogCache::<Tools>::new(cfg(100));
        let started = tokio::time::Instant::now();
        let o = cache
            .lookup_or_discover(&key("slow"), None, t0(), pending)
            .await;
        assert!(matches!(
            o,
            CatalogOutcome::StaticOnly {
                reason: StaticReason::Timeout
            }
        ));
        assert_eq!(started.elapsed(), DISCOVERY_BUDGET);
        let s = cache.stats();
        assert_eq!(
            (
                s.transient_errors,
                s.discovery_timeouts,
                s.entries,
                s.discoveries_in_flight
            ),
            (1, 1, 0, 0)
        );
        let o = cache
            .lookup_or_discover(&key("slow"), None, t0(), found(&["x"]))
            .await;
        assert!(matches!(o, CatalogOutcome::Discovered(_)));
    }

    #[tokio::test]
    async fn a_waiter_takes_over_when_the_leading_request_goes_away() {
        let cache = Arc::new(CatalogCache::<Tools>::new(cfg(100)));
        let leader = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .lookup_or_discover(&key("k"), None, t0(), pending)
                    .await
            })
        };
        while cache.stats().discoveries_in_flight == 0 {
            tokio::task::yield_now().await;
        }
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .lookup_or_discover(&key("k"), None, t0(), found(&["x"]))
                    .await
            })
        };
        while cache.stats().misses < 2 {
            tokio::task::yield_now().await;
        }
        leader.abort();
        let o = waiter.await.expect("waiter");
        assert!(matches!(o, CatalogOutcome::Discovered(_)));
        assert_eq!(cache.stats().discoveries_in_flight, 0);
    }

    #[test]
    fn an_entry_costs_far_less_than_the_1kb_that_100k_entries_in_100mb_allow() {
        let bytes = CatalogCache::<Tools>::approx_entry_bytes("antalya".len());
        assert!(bytes < 300, "{bytes} bytes per entry");
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_task_removes_expired_entries() {
        let cache = Arc::new(CatalogCache::<Tools>::new(cfg(100)));
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let exp = Some(long_ago + Duration::from_secs(10));
        cache
            .lookup_or_discover(&key("old"), exp, long_ago, found(&["x"]))
            .await;
        assert_eq!(cache.stats().entries, 1);
        let sweeper = CatalogCache::spawn_sweeper(cache.clone());
        while cache.stats().entries > 0 {
            tokio::time::sleep(SWEEP_EVERY).await;
        }
        sweeper.abort();
        assert_eq!(cache.stats().expired_removed, 1);
    }

    #[test]
    fn saturation_warnings_are_rate_limited() {
        let mut st = State::<Tools>::new();
        assert_eq!(st.saturation_warning_due(t0()), Some(0));
        assert_eq!(
            st.saturation_warning_due(t0() + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            st.saturation_warning_due(t0() + Duration::from_secs(9)),
            None
        );
        assert_eq!(
            st.saturation_warning_due(t0() + SATURATION_WARN_EVERY),
            Some(2)
        );
    }

    #[test]
    fn stats_serialize_with_stable_field_names() {
        let v = serde_json::to_value(CacheStats::default()).expect("json");
        for field in [
            "entries",
            "denied_entries",
            "hits_ok",
            "hits_denied",
            "misses",
            "full_drops_ok",
            "full_drops_denied",
            "saturations",
            "auth_errors",
            "transient_errors",
        ] {
            assert!(v.get(field).is_some(), "{field}");
        }
    }
}

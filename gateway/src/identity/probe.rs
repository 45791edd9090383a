//! The Bearer/Basic probe: how a user's token reaches each ClickHouse endpoint.
//!
//! [`Probe`] is the pure sequence (Bearer first, Basic on an auth-class refusal);
//! [`IdentityProber`] remembers the winning method per endpoint (`host:port`) and drives
//! the sequence over a caller-supplied `SELECT 1` runner, so this module does no I/O.

use crate::telemetry::metrics::HistogramFamily;
use crate::telemetry::Metrics;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

use super::claims::ClaimsError;
use crate::clickhouse::{Credentials, QueryError, QueryOptions};
use crate::config::Secret;

/// Least time between two re-probes of one endpoint: a user whose token is refused for
/// their own reasons must not turn every request into two extra round trips.
pub const REPROBE_EVERY: Duration = Duration::from_secs(30);

/// Budget of one probe query; `SELECT 1` answers in milliseconds when the server is up.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How the token is presented to ClickHouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    /// `Authorization: Bearer <jwt>` (servers with JWT token processors).
    Bearer,
    /// `Authorization: Basic base64(<username>:<jwt>)` (the verifier, `IDENTIFIED WITH http`).
    Basic,
}

impl AuthScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthScheme::Bearer => "bearer",
            AuthScheme::Basic => "basic",
        }
    }
}

/// How one probe attempt ended, as the probe needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    Ok,
    /// An auth-class failure (the one classifier: [`QueryError::is_auth_class`]).
    AuthRejected,
    /// Anything else: the server is down, slow, or broken; says nothing about the scheme.
    Error,
}

impl AttemptResult {
    pub fn of(result: &Result<(), QueryError>) -> Self {
        match result {
            Ok(()) => AttemptResult::Ok,
            Err(e) if e.is_auth_class() => AttemptResult::AuthRejected,
            Err(_) => AttemptResult::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Ok => "ok",
            AttemptResult::AuthRejected => "auth_rejected",
            AttemptResult::Error => "error",
        }
    }
}

/// Where a probe stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeStep {
    /// Send `SELECT 1` with this method next.
    Try(AuthScheme),
    /// This method works: remember it for the endpoint.
    Found(AuthScheme),
    /// Both methods were refused as auth-class: the token itself is not accepted.
    Rejected,
    /// A non-auth failure: report it, remember nothing.
    Failed,
}

/// The probe sequence, pure: Bearer first; Basic after an auth-class refusal.
#[derive(Debug, Clone)]
pub struct Probe {
    step: ProbeStep,
}

impl Default for Probe {
    fn default() -> Self {
        Self {
            step: ProbeStep::Try(AuthScheme::Bearer),
        }
    }
}

impl Probe {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn step(&self) -> ProbeStep {
        self.step
    }

    /// Feeds the result of the current attempt; terminal steps stay where they are.
    pub fn record(&mut self, result: AttemptResult) -> ProbeStep {
        self.step = match (self.step, result) {
            (ProbeStep::Try(m), AttemptResult::Ok) => ProbeStep::Found(m),
            (ProbeStep::Try(AuthScheme::Bearer), AttemptResult::AuthRejected) => {
                ProbeStep::Try(AuthScheme::Basic)
            }
            (ProbeStep::Try(AuthScheme::Basic), AttemptResult::AuthRejected) => ProbeStep::Rejected,
            (ProbeStep::Try(_), AttemptResult::Error) => ProbeStep::Failed,
            (terminal, _) => terminal,
        };
        self.step
    }
}

/// Why no credentials could be settled for a request.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// A non-auth failure during the probe (unreachable, timeout, 5xx...): returned as is.
    #[error("{0}")]
    Query(QueryError),
    #[error("ClickHouse at {endpoint} refused the token both as Bearer ({bearer}) and as Basic ({basic})")]
    Rejected {
        endpoint: String,
        bearer: String,
        basic: String,
    },
    /// Basic is needed (remembered, or Bearer was refused) but the token names no user.
    #[error("{reason}{}", bearer.as_ref().map(|b| format!(" (ClickHouse refused it as Bearer: {b})")).unwrap_or_default())]
    NoUsername {
        reason: ClaimsError,
        bearer: Option<String>,
    },
}

impl ProbeError {
    /// Whether "who you are" was refused, as opposed to ClickHouse being unavailable.
    pub fn is_auth_class(&self) -> bool {
        match self {
            ProbeError::Query(e) => e.is_auth_class(),
            ProbeError::Rejected { .. } | ProbeError::NoUsername { .. } => true,
        }
    }
}

/// What the gateway does for a request to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Use the remembered method directly: no extra round trip.
    Use(AuthScheme),
    /// Probe (first request, or a re-probe that is due).
    Probe,
}

#[derive(Debug, Default)]
struct EndpointMemory {
    method: Option<AuthScheme>,
    /// Set by [`IdentityProber::note_auth_failure`]; the next request re-probes.
    reprobe_due: bool,
    last_reprobe: Option<Instant>,
}

/// One series of `chmcp_identity_probes_total`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeCount {
    pub endpoint: String,
    pub method: AuthScheme,
    pub outcome: AttemptResult,
    pub count: u64,
}

/// The query a probe sends. It carries no roles and no settings, so a missing role
/// grant or a refused setting is never mistaken for a refused scheme.
pub fn probe_query(query_id: String) -> QueryOptions {
    QueryOptions {
        sql: "SELECT 1".into(),
        query_id,
        timeout: PROBE_TIMEOUT,
        ..QueryOptions::default()
    }
}

type ProbeSeries = crate::telemetry::metrics::CounterFamily;

/// The per-endpoint memory of which method works, shared by every request.
#[derive(Debug, Default)]
pub struct IdentityProber {
    endpoints: Mutex<HashMap<String, EndpointMemory>>,
    /// Each attempt's counter: the `chmcp_identity_probes_total` series itself when
    /// built [`IdentityProber::with_metrics`], incremented at the attempt.
    counts: Mutex<HashMap<(String, AuthScheme, AttemptResult), Counter>>,
    series: Option<ProbeSeries>,
    /// `chmcp_identity_probe_duration_seconds`, by method and outcome.
    durations: Option<HistogramFamily>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single map update; a panic elsewhere cannot leave
    // these half-written, so recover rather than fail every later request.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl IdentityProber {
    pub fn new() -> Self {
        Self::default()
    }

    /// A prober whose attempts are counted in `chmcp_identity_probes_total` and timed
    /// in `durations`.
    pub fn with_metrics(series: ProbeSeries, durations: HistogramFamily) -> Self {
        Self {
            series: Some(series),
            durations: Some(durations),
            ..Self::default()
        }
    }

    pub fn remembered(&self, endpoint: &str) -> Option<AuthScheme> {
        lock(&self.endpoints).get(endpoint).and_then(|m| m.method)
    }

    /// Decides this request's path, claiming a due re-probe so only one request runs it.
    pub fn plan(&self, endpoint: &str) -> Plan {
        let mut map = lock(&self.endpoints);
        match map.get_mut(endpoint) {
            Some(EndpointMemory {
                method: Some(m),
                reprobe_due,
                ..
            }) => {
                if std::mem::take(reprobe_due) {
                    Plan::Probe
                } else {
                    Plan::Use(*m)
                }
            }
            _ => Plan::Probe,
        }
    }

    pub fn remember(&self, endpoint: &str, method: AuthScheme) {
        let mut map = lock(&self.endpoints);
        let mem = map.entry(endpoint.to_string()).or_default();
        if mem.method != Some(method) {
            tracing::info!(
                endpoint,
                method = method.as_str(),
                "identity method for this ClickHouse endpoint"
            );
        }
        mem.method = Some(method);
    }

    /// A query with the remembered method got an auth-class failure. Schedules a
    /// re-probe unless one ran in the last [`REPROBE_EVERY`]; returns whether it did, so
    /// the caller may retry with fresh credentials at once.
    pub fn note_auth_failure(&self, endpoint: &str, now: Instant) -> bool {
        let mut map = lock(&self.endpoints);
        let Some(mem) = map.get_mut(endpoint).filter(|m| m.method.is_some()) else {
            // Nothing remembered: the next request probes anyway.
            return false;
        };
        let due = mem
            .last_reprobe
            .is_none_or(|last| now.saturating_duration_since(last) >= REPROBE_EVERY);
        if due {
            mem.last_reprobe = Some(now);
            mem.reprobe_due = true;
        }
        due
    }

    fn count(&self, endpoint: &str, method: AuthScheme, outcome: AttemptResult) {
        lock(&self.counts)
            .entry((endpoint.to_string(), method, outcome))
            .or_insert_with(|| match &self.series {
                Some(family) => family
                    .get_or_create(&vec![
                        ("endpoint", endpoint.to_string().into()),
                        ("method", method.as_str().into()),
                        ("outcome", outcome.as_str().into()),
                    ])
                    .clone(),
                None => Counter::default(),
            })
            .inc();
    }

    /// Every (endpoint, method, outcome) series with its count, sorted.
    pub fn probe_counts(&self) -> Vec<ProbeCount> {
        let mut out: Vec<ProbeCount> = lock(&self.counts)
            .iter()
            .map(|((endpoint, method, outcome), count)| ProbeCount {
                endpoint: endpoint.clone(),
                method: *method,
                outcome: *outcome,
                count: count.get(),
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.endpoint, a.method, a.outcome).cmp(&(&b.endpoint, b.method, b.outcome))
        });
        out
    }

    /// The credentials for this request's token on `endpoint`, probing when needed.
    ///
    /// `username` is the token's username claim (needed only for Basic);
    /// `run_select_1` runs [`probe_query`] with the given credentials.
    pub async fn credentials<F, Fut>(
        &self,
        endpoint: &str,
        token: &Secret,
        token_sha256: &[u8; 32],
        username: &Result<String, ClaimsError>,
        mut run_select_1: F,
    ) -> Result<Credentials, ProbeError>
    where
        F: FnMut(Credentials) -> Fut,
        Fut: Future<Output = Result<(), QueryError>>,
    {
        let make = |method: AuthScheme, bearer: Option<String>| match method {
            AuthScheme::Bearer => Ok(Credentials::bearer(token.clone(), token_sha256)),
            AuthScheme::Basic => match username {
                Ok(user) => Ok(Credentials::Basic {
                    user: user.clone(),
                    password: token.clone(),
                }),
                Err(reason) => Err(ProbeError::NoUsername {
                    reason: reason.clone(),
                    bearer,
                }),
            },
        };
        if let Plan::Use(method) = self.plan(endpoint) {
            return make(method, None);
        }
        let mut probe = Probe::new();
        let mut bearer_refusal: Option<String> = None;
        let mut last_error: Option<QueryError> = None;
        loop {
            match probe.step() {
                ProbeStep::Try(method) => {
                    let creds = make(method, bearer_refusal.clone())?;
                    let started = Instant::now();
                    let result = run_select_1(creds).await;
                    let outcome = AttemptResult::of(&result);
                    self.count(endpoint, method, outcome);
                    if let Some(d) = &self.durations {
                        let labels = [("method", method.as_str()), ("outcome", outcome.as_str())];
                        Metrics::observe(d, &labels, started.elapsed().as_secs_f64());
                    }
                    tracing::debug!(
                        endpoint,
                        method = method.as_str(),
                        outcome = outcome.as_str(),
                        "identity probe"
                    );
                    if let Err(e) = result {
                        if method == AuthScheme::Bearer && outcome == AttemptResult::AuthRejected {
                            bearer_refusal = Some(e.to_string());
                        }
                        last_error = Some(e);
                    }
                    probe.record(outcome);
                }
                ProbeStep::Found(method) => {
                    self.remember(endpoint, method);
                    return make(method, None);
                }
                ProbeStep::Rejected => {
                    return Err(ProbeError::Rejected {
                        endpoint: endpoint.to_string(),
                        bearer: bearer_refusal.unwrap_or_default(),
                        basic: last_error.map(|e| e.to_string()).unwrap_or_default(),
                    });
                }
                ProbeStep::Failed => {
                    let e = last_error
                        .unwrap_or_else(|| QueryError::Format("the identity probe failed".into()));
                    return Err(ProbeError::Query(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::ready;

    use super::*;
    use crate::clickhouse::ServerError;

    const EP: &str = "ch-otel:8123";

    /// 18.16's answer to a Bearer header.
    fn bearer_unsupported() -> QueryError {
        QueryError::Server(ServerError::parse(
            500,
            "Code: 194, e.displayText() = DB::Exception: No authentication information found: Authorization scheme Bearer, e.what() = DB::Exception",
        ))
    }

    fn auth_failed() -> QueryError {
        QueryError::Server(ServerError::parse(
            500,
            "Code: 516. DB::Exception: alice: Authentication failed. (AUTHENTICATION_FAILED)",
        ))
    }

    fn unreachable() -> QueryError {
        QueryError::Unreachable {
            endpoint: EP.into(),
            message: "connection refused".into(),
        }
    }

    /// A scripted ClickHouse: answers each method as told, and records every call.
    struct Server {
        bearer: RefCell<Box<dyn FnMut() -> Result<(), QueryError>>>,
        basic: RefCell<Box<dyn FnMut() -> Result<(), QueryError>>>,
        calls: RefCell<Vec<Credentials>>,
    }

    impl Server {
        fn new(
            bearer: impl FnMut() -> Result<(), QueryError> + 'static,
            basic: impl FnMut() -> Result<(), QueryError> + 'static,
        ) -> Self {
            Self {
                bearer: RefCell::new(Box::new(bearer)),
                basic: RefCell::new(Box::new(basic)),
                calls: RefCell::default(),
            }
        }

        fn run(&self, c: Credentials) -> std::future::Ready<Result<(), QueryError>> {
            let r = match &c {
                Credentials::Bearer { .. } => (self.bearer.borrow_mut())(),
                Credentials::Basic { .. } => (self.basic.borrow_mut())(),
            };
            self.calls.borrow_mut().push(c);
            ready(r)
        }

        fn calls(&self) -> usize {
            self.calls.borrow().len()
        }
    }

    fn token() -> Secret {
        Secret::new("header.payload.sig")
    }

    fn digest() -> [u8; 32] {
        crate::fingerprint::sha256(b"header.payload.sig")
    }

    fn alice() -> Result<String, ClaimsError> {
        Ok("alice".into())
    }

    #[test]
    fn probe_sequence_is_bearer_then_basic_on_auth_refusal_only() {
        let mut p = Probe::new();
        assert_eq!(p.step(), ProbeStep::Try(AuthScheme::Bearer));
        assert_eq!(
            p.record(AttemptResult::AuthRejected),
            ProbeStep::Try(AuthScheme::Basic)
        );
        assert_eq!(
            p.record(AttemptResult::Ok),
            ProbeStep::Found(AuthScheme::Basic)
        );
        assert_eq!(
            p.record(AttemptResult::Error),
            ProbeStep::Found(AuthScheme::Basic),
            "terminal"
        );

        let mut p = Probe::new();
        assert_eq!(
            p.record(AttemptResult::Ok),
            ProbeStep::Found(AuthScheme::Bearer)
        );
        let mut p = Probe::new();
        assert_eq!(p.record(AttemptResult::Error), ProbeStep::Failed);
        let mut p = Probe::new();
        p.record(AttemptResult::AuthRejected);
        assert_eq!(p.record(AttemptResult::AuthRejected), ProbeStep::Rejected);
        let mut p = Probe::new();
        p.record(AttemptResult::AuthRejected);
        assert_eq!(p.record(AttemptResult::Error), ProbeStep::Failed);
    }

    #[test]
    fn attempt_results_use_the_shared_auth_class_classifier() {
        assert_eq!(
            AttemptResult::of(&Err(bearer_unsupported())),
            AttemptResult::AuthRejected
        );
        assert_eq!(
            AttemptResult::of(&Err(auth_failed())),
            AttemptResult::AuthRejected
        );
        assert_eq!(AttemptResult::of(&Err(unreachable())), AttemptResult::Error);
        assert_eq!(AttemptResult::of(&Ok(())), AttemptResult::Ok);
    }

    #[tokio::test]
    async fn accepted_bearer_is_remembered_and_later_requests_send_no_probe() {
        let prober = IdentityProber::new();
        let server = Server::new(|| Ok(()), || panic!("no Basic when Bearer works"));
        let c = prober
            .credentials(EP, &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect("creds");
        assert!(matches!(c, Credentials::Bearer { .. }));
        let again = prober
            .credentials(EP, &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect("creds");
        assert!(matches!(again, Credentials::Bearer { .. }));
        assert_eq!(server.calls(), 1);
        assert_eq!(prober.remembered(EP), Some(AuthScheme::Bearer));
    }

    #[tokio::test]
    async fn bearer_refusal_falls_back_to_basic_with_the_username_claim_and_remembers_it() {
        let prober = IdentityProber::new();
        let server = Server::new(|| Err(bearer_unsupported()), || Ok(()));
        let c = prober
            .credentials(EP, &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect("creds");
        assert_eq!(
            c,
            Credentials::Basic {
                user: "alice".into(),
                password: token()
            }
        );
        assert_eq!(server.calls(), 2);
        let again = prober
            .credentials(EP, &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect("creds");
        assert!(matches!(again, Credentials::Basic { .. }));
        assert_eq!(
            server.calls(),
            2,
            "a remembered method costs no extra round trip"
        );
        let counts: Vec<_> = prober
            .probe_counts()
            .into_iter()
            .map(|c| (c.method, c.outcome, c.count))
            .collect();
        assert_eq!(
            counts,
            [
                (AuthScheme::Bearer, AttemptResult::AuthRejected, 1),
                (AuthScheme::Basic, AttemptResult::Ok, 1)
            ]
        );
    }

    #[tokio::test]
    async fn memory_is_per_endpoint() {
        let prober = IdentityProber::new();
        let server = Server::new(|| Err(bearer_unsupported()), || Ok(()));
        prober
            .credentials("a:8123", &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect("a");
        prober
            .credentials("b:8123", &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect("b");
        assert_eq!(server.calls(), 4);
        assert_eq!(prober.probe_counts().len(), 4);
    }

    #[tokio::test]
    async fn non_auth_failure_is_returned_and_nothing_is_remembered() {
        let prober = IdentityProber::new();
        let server = Server::new(
            || Err(unreachable()),
            || panic!("a down server says nothing about the scheme"),
        );
        let err = prober
            .credentials(EP, &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect_err("down");
        assert!(matches!(
            err,
            ProbeError::Query(QueryError::Unreachable { .. })
        ));
        assert!(!err.is_auth_class());
        assert_eq!(prober.remembered(EP), None);

        let server = Server::new(|| Err(bearer_unsupported()), || Err(unreachable()));
        let err = prober
            .credentials(EP, &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect_err("down");
        assert!(matches!(err, ProbeError::Query(_)));
        assert_eq!(prober.remembered(EP), None);
    }

    #[tokio::test]
    async fn both_methods_refused_is_an_auth_class_error_naming_both() {
        let prober = IdentityProber::new();
        let server = Server::new(|| Err(bearer_unsupported()), || Err(auth_failed()));
        let err = prober
            .credentials(EP, &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect_err("refused");
        assert!(err.is_auth_class());
        let msg = err.to_string();
        assert!(
            msg.contains("No authentication information found")
                && msg.contains("Authentication failed"),
            "{msg}"
        );
        assert_eq!(prober.remembered(EP), None);
    }

    #[tokio::test]
    async fn bearer_refused_and_no_username_claim_is_a_clear_error() {
        let prober = IdentityProber::new();
        let server = Server::new(
            || Err(bearer_unsupported()),
            || panic!("no Basic without a user"),
        );
        let missing = Err(ClaimsError::MissingUsername {
            claim: "email".into(),
        });
        let err = prober
            .credentials(EP, &token(), &digest(), &missing, |c| server.run(c))
            .await
            .expect_err("no user");
        assert!(err.is_auth_class());
        let msg = err.to_string();
        assert!(msg.contains("`email`") && msg.contains("Bearer"), "{msg}");
    }

    #[tokio::test]
    async fn an_unverified_token_is_only_ever_sent_as_bearer() {
        // validate_tokens: false. No claim names a user, so Basic is never attempted:
        // a forged token naming a password-less ClickHouse user gets nowhere.
        let prober = IdentityProber::new();
        let server = Server::new(
            || Err(bearer_unsupported()),
            || panic!("no Basic for an unverified token"),
        );
        let err = prober
            .credentials(
                EP,
                &token(),
                &digest(),
                &Err(ClaimsError::Unverified),
                |c| server.run(c),
            )
            .await
            .expect_err("refused");
        assert!(err.is_auth_class());
        assert!(matches!(
            err,
            ProbeError::NoUsername {
                reason: ClaimsError::Unverified,
                bearer: Some(_)
            }
        ));
        assert_eq!(server.calls(), 1, "Bearer only");
        assert_eq!(prober.remembered(EP), None);

        let accepting = Server::new(|| Ok(()), || panic!("no Basic"));
        let c = prober
            .credentials(
                EP,
                &token(),
                &digest(),
                &Err(ClaimsError::Unverified),
                |c| accepting.run(c),
            )
            .await
            .expect("bearer");
        assert!(matches!(c, Credentials::Bearer { .. }));
    }

    #[tokio::test]
    async fn remembered_basic_without_username_is_refused_without_a_round_trip() {
        let prober = IdentityProber::new();
        prober.remember(EP, AuthScheme::Basic);
        let server = Server::new(|| panic!("no probe"), || panic!("no probe"));
        let missing = Err(ClaimsError::MissingUsername {
            claim: "email".into(),
        });
        let err = prober
            .credentials(EP, &token(), &digest(), &missing, |c| server.run(c))
            .await
            .expect_err("no user");
        assert!(matches!(err, ProbeError::NoUsername { bearer: None, .. }));
    }

    #[tokio::test]
    async fn a_scheme_change_is_followed_by_a_reprobe_at_most_every_30s() {
        let prober = IdentityProber::new();
        let t = Instant::now();
        // The server took Basic; then it is reconfigured for token processors.
        let server = Server::new(|| Err(bearer_unsupported()), || Ok(()));
        prober
            .credentials(EP, &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect("basic");
        assert_eq!(prober.remembered(EP), Some(AuthScheme::Basic));

        assert!(prober.note_auth_failure(EP, t));
        assert!(
            !prober.note_auth_failure(EP, t + Duration::from_secs(29)),
            "within 30 s: no second re-probe"
        );
        let moved = Server::new(|| Ok(()), || Err(auth_failed()));
        let c = prober
            .credentials(EP, &token(), &digest(), &alice(), |c| moved.run(c))
            .await
            .expect("bearer");
        assert!(matches!(c, Credentials::Bearer { .. }));
        assert_eq!(prober.remembered(EP), Some(AuthScheme::Bearer));
        assert_eq!(moved.calls(), 1);
        assert!(prober.note_auth_failure(EP, t + REPROBE_EVERY));
    }

    #[tokio::test]
    async fn only_one_request_runs_a_due_reprobe() {
        let prober = IdentityProber::new();
        prober.remember(EP, AuthScheme::Bearer);
        assert!(prober.note_auth_failure(EP, Instant::now()));
        assert_eq!(prober.plan(EP), Plan::Probe);
        assert_eq!(prober.plan(EP), Plan::Use(AuthScheme::Bearer));
    }

    #[tokio::test]
    async fn a_reprobe_refused_by_both_methods_keeps_the_remembered_method() {
        // One user's bad token must not make the endpoint forget what works for everyone.
        let prober = IdentityProber::new();
        prober.remember(EP, AuthScheme::Basic);
        prober.note_auth_failure(EP, Instant::now());
        let server = Server::new(|| Err(bearer_unsupported()), || Err(auth_failed()));
        prober
            .credentials(EP, &token(), &digest(), &alice(), |c| server.run(c))
            .await
            .expect_err("refused");
        assert_eq!(prober.remembered(EP), Some(AuthScheme::Basic));
    }

    #[test]
    fn auth_failure_with_nothing_remembered_schedules_nothing() {
        let prober = IdentityProber::new();
        assert!(!prober.note_auth_failure(EP, Instant::now()));
        assert_eq!(prober.plan(EP), Plan::Probe);
    }

    #[test]
    fn the_probe_query_carries_no_roles_or_settings() {
        let q = probe_query("q1".into());
        assert_eq!(q.sql, "SELECT 1");
        assert!(
            q.roles.is_empty()
                && q.settings.is_empty()
                && q.gateway_settings.is_empty()
                && q.read_only == crate::clickhouse::settings::ReadOnly::Off
        );
        assert_eq!(q.timeout, PROBE_TIMEOUT);
    }

    #[test]
    fn each_attempt_is_counted_in_the_exported_series() {
        let metrics = crate::telemetry::Metrics::new();
        let prober = IdentityProber::with_metrics(
            metrics.identity_probes.clone(),
            metrics.identity_probe_duration.clone(),
        );
        prober.count(EP, AuthScheme::Basic, AttemptResult::AuthRejected);
        prober.count(EP, AuthScheme::Basic, AttemptResult::AuthRejected);
        let text = metrics.render();
        let series = "chmcp_identity_probes_total{endpoint=\"ch-otel:8123\",method=\"basic\",outcome=\"auth_rejected\"} 2";
        assert!(text.contains(series), "{text}");
        assert_eq!(prober.probe_counts().first().map(|p| p.count), Some(2));
    }

    #[test]
    fn probe_counts_serialize_as_metric_labels() {
        let prober = IdentityProber::new();
        prober.count(EP, AuthScheme::Basic, AttemptResult::AuthRejected);
        let v = serde_json::to_value(prober.probe_counts()).expect("json");
        assert_eq!(
            v,
            serde_json::json!([{"endpoint": EP, "method": "basic", "outcome": "auth_rejected", "count": 1}])
        );
    }
}

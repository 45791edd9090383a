//! One request's credentials toward its ClickHouse endpoint: static, or the caller's
//! token presented the way the endpoint accepts it (the Bearer/Basic probe).

use std::future::Future;
use std::sync::Mutex;
use std::time::Instant;

use super::probe::{probe_query, IdentityProber, ProbeError};
use super::request::{Principal, RequestIdentity};
use crate::clickhouse::{ClickHouse, Credentials};
use crate::telemetry::trace::{self, SpanKind};

/// What a step that talks to ClickHouse reports about itself: whether ClickHouse
/// refused who the caller is (an auth-class failure), as opposed to any other result.
pub trait AuthOutcome {
    fn identity_refused(&self) -> bool;
}

/// Settled at most once per request (a catalog discovery and the tool call share it),
/// and again only after ClickHouse refuses the remembered scheme.
pub struct RequestCredentials<'a> {
    prober: &'a IdentityProber,
    ch: &'a ClickHouse,
    identity: &'a RequestIdentity,
    settled: Mutex<Option<Credentials>>,
}

impl<'a> RequestCredentials<'a> {
    pub fn new(
        prober: &'a IdentityProber,
        ch: &'a ClickHouse,
        identity: &'a RequestIdentity,
    ) -> Self {
        Self {
            prober,
            ch,
            identity,
            settled: Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &'a RequestIdentity {
        self.identity
    }

    /// The credentials for this request, probing the endpoint when it is not known yet.
    pub async fn get(&self) -> Result<Credentials, ProbeError> {
        if let Some(c) = self.settled.lock().ok().and_then(|s| s.clone()) {
            return Ok(c);
        }
        let creds = self.settle().await?;
        if let Ok(mut s) = self.settled.lock() {
            *s = Some(creds.clone());
        }
        Ok(creds)
    }

    async fn settle(&self) -> Result<Credentials, ProbeError> {
        let id = self.identity;
        match &id.principal {
            Principal::Static(c) => Ok(c.clone()),
            Principal::Token { token, username } => {
                let key = id.endpoint.key();
                // The catalog key's digest is this token's sha256 (the upstream token's
                // in sealed mode), computed once by the gate.
                let digest = id.catalog_key.token_sha256();
                let probe = self
                    .prober
                    .credentials(&key, token, digest, username, |creds| {
                        let (ch, ep) = (self.ch.clone(), id.endpoint.clone());
                        async move {
                            let opts =
                                probe_query(format!("chmcp-probe-{:032x}", fastrand::u128(..)));
                            ch.query_all(&ep, &creds, &opts, 1).await.map(|_| ())
                        }
                    });
                trace::child("identity probe", SpanKind::Internal, async {
                    let r = probe.await;
                    if let Err(e) = &r {
                        trace::set_error(&e.to_string());
                    }
                    r
                })
                .await
            }
        }
    }

    /// Runs `op` with this request's credentials. When ClickHouse refuses a remembered
    /// scheme (the endpoint changed its authentication), the endpoint is re-probed (at
    /// most every `REPROBE_EVERY`) and `op` runs once more with what the probe found.
    pub async fn run<T, Fut>(&self, op: impl Fn(Credentials) -> Fut) -> Result<T, ProbeError>
    where
        T: AuthOutcome,
        Fut: Future<Output = T>,
    {
        let first = op(self.get().await?).await;
        let id = self.identity;
        let reprobe = first.identity_refused()
            && matches!(id.principal, Principal::Token { .. })
            && self
                .prober
                .note_auth_failure(&id.endpoint.key(), Instant::now());
        if !reprobe {
            return Ok(first);
        }
        if let Ok(mut s) = self.settled.lock() {
            *s = None;
        }
        match self.get().await {
            Ok(creds) => Ok(op(creds).await),
            Err(_) => Ok(first),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::config::{Config, Secret};
    use crate::identity::probe::AuthScheme;
    use crate::identity::request::static_identity;

    /// What a tool call reports, reduced to the one bit identity reads.
    struct Refused(bool);

    impl AuthOutcome for Refused {
        fn identity_refused(&self) -> bool {
            self.0
        }
    }

    fn client(config: &Config) -> ClickHouse {
        ClickHouse::new(&config.clickhouse).expect("client")
    }

    #[tokio::test]
    async fn static_credentials_are_never_re_probed() {
        let config = Config::default();
        let (prober, ch) = (IdentityProber::new(), client(&config));
        let id = static_identity(&config);
        let creds = RequestCredentials::new(&prober, &ch, &id);
        let runs = Cell::new(0);
        let out = creds
            .run(|_| {
                runs.set(runs.get() + 1);
                std::future::ready(Refused(true))
            })
            .await
            .expect("static credentials need no probe");
        assert!(out.0);
        assert_eq!(
            runs.get(),
            1,
            "a refused static user is the answer, not a retry"
        );
    }

    #[tokio::test]
    async fn a_remembered_scheme_is_used_without_a_probe_and_settled_once() {
        let config = Config::default();
        let (prober, ch) = (IdentityProber::new(), client(&config));
        let mut id = static_identity(&config);
        id.principal = Principal::Token {
            token: Secret::new("t0ken"),
            username: Ok("alice".into()),
        };
        prober.remember(&id.endpoint.key(), AuthScheme::Basic);
        let creds = RequestCredentials::new(&prober, &ch, &id);
        let first = creds.get().await.expect("remembered: no round trip");
        assert!(matches!(&first, Credentials::Basic { user, .. } if user == "alice"));
        // Another scheme remembered meanwhile does not change this request: it settled once.
        prober.remember(&id.endpoint.key(), AuthScheme::Bearer);
        assert!(matches!(creds.get().await, Ok(Credentials::Basic { .. })));
        let runs = Cell::new(0);
        creds
            .run(|c| {
                runs.set(runs.get() + 1);
                assert!(matches!(c, Credentials::Basic { .. }));
                std::future::ready(Refused(false))
            })
            .await
            .expect("settled");
        assert_eq!(runs.get(), 1);
    }
}

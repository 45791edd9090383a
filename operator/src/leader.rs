//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas never
//! reconcile at once.
//!
//! The decision (who may hold the lease now) is a pure function; the elector only reads
//! and writes the Lease, using its `resourceVersion` so two candidates racing for an
//! expired lease cannot both win (the loser gets 409 Conflict).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;

/// Timings in the proportions client-go uses (15 s lease, renew every 5 s).
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// This candidate, normally the pod name.
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and a candidate retries.
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn new(name: String, namespace: String, identity: String) -> Self {
        Self {
            name,
            namespace,
            identity,
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(5),
        }
    }
}

/// What a candidate should do with the lease as it finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No lease exists: create it, holding it.
    Create,
    /// Someone else held it and it expired (or it was released): take it over.
    TakeOver,
    /// We hold it: renew.
    Renew,
    /// Someone else holds a valid lease.
    Wait,
}

pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return if lease.is_some() {
            Decision::TakeOver
        } else {
            Decision::Create
        };
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == identity => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) => {
            let duration =
                SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
            let expired = match &spec.renew_time {
                Some(MicroTime(renewed)) => renewed
                    .saturating_add(duration)
                    .map_or(true, |until| until < now),
                None => true,
            };
            if expired {
                Decision::TakeOver
            } else {
                Decision::Wait
            }
        }
    }
}

/// The Lease to write for `decision`, carrying over `resourceVersion` for the conflict check.
pub fn desired_lease(
    current: Option<&Lease>,
    decision: Decision,
    cfg: &LeaseConfig,
    now: Timestamp,
) -> Lease {
    let prev = current.and_then(|l| l.spec.clone()).unwrap_or_default();
    let taking_over = matches!(decision, Decision::Create | Decision::TakeOver);
    Lease {
        metadata: ObjectMeta {
            name: Some(cfg.name.clone()),
            namespace: Some(cfg.namespace.clone()),
            resource_version: current.and_then(|l| l.metadata.resource_version.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(cfg.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15)),
            acquire_time: if taking_over {
                Some(MicroTime(now))
            } else {
                prev.acquire_time
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(
                prev.lease_transitions.unwrap_or(0) + i32::from(decision == Decision::TakeOver),
            ),
            ..LeaseSpec::default()
        }),
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
}

impl LeaderElector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
        }
    }

    /// One attempt: `true` when this candidate holds the lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.cfg.name).await?;
        let decision = decide(current.as_ref(), &self.cfg.identity, now);
        let lease = desired_lease(current.as_ref(), decision, &self.cfg, now);
        let written = match decision {
            Decision::Wait => return Ok(false),
            Decision::Create => self.api.create(&PostParams::default(), &lease).await,
            Decision::TakeOver | Decision::Renew => {
                self.api
                    .replace(&self.cfg.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match written {
            Ok(_) => Ok(true),
            // Another candidate wrote first (409 on replace, 409 "already exists" on create).
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up on shutdown so a standby takes over at once, not after expiry.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.cfg.name).await else {
            return;
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.cfg.identity.as_str());
        if !ours {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
        }
        if let Err(e) = self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(error = %e, "cannot release the leader lease; it expires by itself");
        }
    }

    /// Waits until this candidate leads, or until `shutdown` turns true (`false`).
    pub async fn acquire(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return true,
                Ok(false) => {
                    tracing::debug!(lease = %self.cfg.name, "another replica leads; waiting")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: cannot read or write the lease")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.retry_period) => {}
                _ = shutdown.wait_for(|stop| *stop) => return false,
            }
        }
    }

    /// Renews until leadership is lost (returns) or `shutdown` turns true (returns). A
    /// renewal that keeps failing for a whole lease duration counts as lost: by then
    /// another replica may lead.
    pub async fn hold(&self, shutdown: &mut watch::Receiver<bool>) -> Held {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.retry_period) => {}
                _ = shutdown.wait_for(|stop| *stop) => return Held::Shutdown,
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => return Held::Lost,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the leader lease");
                    if last_renewed.elapsed() >= self.cfg.lease_duration {
                        return Held::Lost;
                    }
                }
            }
        }
    }
}

/// How holding the lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Shutdown,
    Lost,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LeaseConfig {
        LeaseConfig::new("chmcp-operator".into(), "ops".into(), "pod-a".into())
    }

    fn held_by(holder: &str, renewed_at: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                resource_version: Some("41".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed_at).unwrap())),
                lease_transitions: Some(2),
                ..LeaseSpec::default()
            }),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn a_missing_lease_is_created_and_our_own_is_renewed() {
        assert_eq!(decide(None, "pod-a", at(100)), Decision::Create);
        assert_eq!(
            decide(Some(&held_by("pod-a", 0)), "pod-a", at(100)),
            Decision::Renew
        );
    }

    #[test]
    fn another_holders_lease_is_respected_until_it_expires() {
        let lease = held_by("pod-b", 100);
        assert_eq!(decide(Some(&lease), "pod-a", at(110)), Decision::Wait);
        assert_eq!(decide(Some(&lease), "pod-a", at(116)), Decision::TakeOver);
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let mut lease = held_by("pod-b", 100);
        lease.spec.as_mut().unwrap().holder_identity = None;
        assert_eq!(decide(Some(&lease), "pod-a", at(101)), Decision::TakeOver);
    }

    #[test]
    fn taking_over_counts_a_transition_and_keeps_the_resource_version() {
        let lease = held_by("pod-b", 100);
        let next = desired_lease(Some(&lease), Decision::TakeOver, &cfg(), at(200));
        let spec = next.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("pod-a"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(200))));
        assert_eq!(next.metadata.resource_version.as_deref(), Some("41"));
        let renewed = desired_lease(
            Some(&held_by("pod-a", 100)),
            Decision::Renew,
            &cfg(),
            at(200),
        )
        .spec
        .unwrap();
        assert_eq!(renewed.lease_transitions, Some(2));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(200))));
    }
}

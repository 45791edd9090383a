//! Status: from what the reconcile step learned to the resource's status. Pure; the
//! clock is passed in.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use crate::crd::{Endpoint, McpMultiClusterStatus, VerifierStatus};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// kstatus (Flux, `kubectl wait`-style tools): `Stalled=True` means no progress is possible
/// without a change, so a GitOps tool reports failure instead of waiting for its timeout.
pub const STALLED: &str = "Stalled";
/// What the Deployment controller sets when a rollout stops making progress (image pull
/// failures, crash loops) for `progressDeadlineSeconds`.
const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// A condition that is `True` while something asked for could not be done, without
/// stopping the rest (e.g. the ServiceMonitor when its CRD is not installed).
pub const WARNING: &str = "Warning";
pub const REASON_SERVICE_MONITOR_CRD_MISSING: &str = "ServiceMonitorCRDMissing";
pub const SERVICE_MONITOR_CRD_MISSING_MESSAGE: &str = "spec.monitoring.serviceMonitor: \
    monitoring.coreos.com/v1 ServiceMonitor is not served by this cluster (install the \
    Prometheus Operator, or disable the ServiceMonitor); everything else is applied";

/// The ServiceMonitor's fate (its CRD may be absent from the cluster).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ServiceMonitorState {
    #[default]
    NotRequested,
    /// Applied under this name.
    Applied(String),
    /// `monitoring.coreos.com/v1` is not served: the Prometheus Operator is not installed.
    CrdMissing,
}

/// What one reconciliation found.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Everything applied; the rollout state comes from the Deployment.
    Applied {
        config_hash: String,
        rollout: Rollout,
        endpoints: Vec<Endpoint>,
        verifier: Option<VerifierStatus>,
        service_monitor: ServiceMonitorState,
    },
    /// Nothing applied, for a reason the user must fix (`reason` is PascalCase).
    Blocked {
        reason: &'static str,
        message: String,
    },
}

/// The Deployment's progress towards the desired pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollout {
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    /// The Deployment controller has seen the latest pod template.
    pub observed: bool,
    /// The Deployment gave up progressing (`Progressing=False, ProgressDeadlineExceeded`).
    pub deadline_exceeded: bool,
}

impl Rollout {
    pub fn of(d: &Deployment) -> Self {
        let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let generation = d.metadata.generation.unwrap_or(0);
        let st = d.status.clone().unwrap_or_default();
        Self {
            desired,
            ready: st.ready_replicas.unwrap_or(0),
            updated: st.updated_replicas.unwrap_or(0),
            available: st.available_replicas.unwrap_or(0),
            observed: st.observed_generation.unwrap_or(0) >= generation,
            deadline_exceeded: st.conditions.unwrap_or_default().iter().any(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
            }),
        }
    }

    pub fn complete(&self) -> bool {
        self.observed
            && self.updated >= self.desired
            && self.ready >= self.desired
            && self.available >= self.desired
    }
}

/// The new status. Conditions keep their `lastTransitionTime` unless their status flips.
pub fn next_status(
    prev: Option<&McpMultiClusterStatus>,
    generation: Option<i64>,
    clusters: usize,
    outcome: &Outcome,
    now: Timestamp,
) -> McpMultiClusterStatus {
    let prev_conditions = prev.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    let cond = |type_: &str, status: bool, reason: &str, message: String| {
        let status = if status { "True" } else { "False" };
        let since = prev_conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: since,
        }
    };
    let mut status = prev.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.clusters = i32::try_from(clusters).unwrap_or(i32::MAX);
    match outcome {
        Outcome::Applied {
            config_hash,
            rollout,
            endpoints,
            verifier,
            service_monitor,
        } => {
            status.config_hash = Some(config_hash.clone());
            status.verifier = verifier.clone();
            status.service_monitor = match service_monitor {
                ServiceMonitorState::Applied(name) => Some(name.clone()),
                _ => None,
            };
            status.ready_replicas = rollout.ready;
            status.endpoints = endpoints.clone();
            let progress = format!(
                "{} of {} replicas ready and up to date",
                rollout.ready.min(rollout.updated),
                rollout.desired
            );
            status.conditions = if rollout.complete() {
                vec![
                    cond(
                        READY,
                        true,
                        "Available",
                        format!("{progress}; serving {clusters} clusters"),
                    ),
                    cond(PROGRESSING, false, "RolloutComplete", progress),
                    cond(DEGRADED, false, "AsExpected", "all objects applied".into()),
                    cond(STALLED, false, "AsExpected", "all objects applied".into()),
                ]
            } else if rollout.deadline_exceeded {
                let message = format!(
                    "{progress}; the gateway Deployment stopped progressing (see its pods' \
                     events: image pull, crash loop, scheduling)"
                );
                vec![
                    cond(READY, false, PROGRESS_DEADLINE_EXCEEDED, message.clone()),
                    cond(
                        PROGRESSING,
                        false,
                        PROGRESS_DEADLINE_EXCEEDED,
                        message.clone(),
                    ),
                    cond(DEGRADED, true, PROGRESS_DEADLINE_EXCEEDED, message.clone()),
                    cond(STALLED, true, PROGRESS_DEADLINE_EXCEEDED, message),
                ]
            } else {
                vec![
                    cond(READY, false, "RollingOut", progress.clone()),
                    cond(PROGRESSING, true, "RollingOut", progress),
                    cond(DEGRADED, false, "AsExpected", "all objects applied".into()),
                    cond(STALLED, false, "AsExpected", "all objects applied".into()),
                ]
            };
            if *service_monitor == ServiceMonitorState::CrdMissing {
                status.conditions.push(cond(
                    WARNING,
                    true,
                    REASON_SERVICE_MONITOR_CRD_MISSING,
                    SERVICE_MONITOR_CRD_MISSING_MESSAGE.into(),
                ));
            }
        }
        // The previous gateway keeps running untouched, so hash, replicas and endpoints
        // still describe it; only the conditions change.
        Outcome::Blocked { reason, message } => {
            status.conditions = vec![
                cond(READY, false, reason, message.clone()),
                cond(
                    PROGRESSING,
                    false,
                    reason,
                    "waiting for the resource to be fixed".into(),
                ),
                cond(DEGRADED, true, reason, message.clone()),
                // Only a change (to the spec or the Secret) can unblock it.
                cond(STALLED, true, reason, message.clone()),
            ];
        }
    }
    status
}

/// The server-side-apply body for the status subresource.
pub fn status_patch(status: &McpMultiClusterStatus) -> Value {
    json!({
        "apiVersion": "chmcp.dev/v1alpha1",
        "kind": "McpMultiCluster",
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn applied(ready: i32) -> Outcome {
        Outcome::Applied {
            config_hash: "abc".into(),
            rollout: Rollout {
                desired: 2,
                ready,
                updated: ready,
                available: ready,
                observed: true,
                deadline_exceeded: false,
            },
            endpoints: vec![Endpoint {
                cluster: "otel".into(),
                url: "https://m/mcp/otel".into(),
            }],
            verifier: None,
            service_monitor: ServiceMonitorState::NotRequested,
        }
    }

    fn condition<'a>(s: &'a McpMultiClusterStatus, type_: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn rollout_in_progress_then_ready() {
        let s1 = next_status(None, Some(1), 1, &applied(1), t(100));
        assert_eq!(condition(&s1, READY).status, "False");
        assert_eq!(condition(&s1, PROGRESSING).status, "True");
        assert_eq!(
            condition(&s1, READY).message,
            "1 of 2 replicas ready and up to date"
        );
        let s2 = next_status(Some(&s1), Some(1), 1, &applied(2), t(200));
        assert_eq!(condition(&s2, READY).status, "True");
        assert_eq!(condition(&s2, READY).last_transition_time, Time(t(200)));
        assert_eq!(
            condition(&s2, DEGRADED).last_transition_time,
            Time(t(100)),
            "unchanged condition keeps its time"
        );
        assert_eq!(
            (
                s2.ready_replicas,
                s2.config_hash.as_deref(),
                s2.observed_generation
            ),
            (2, Some("abc"), Some(1))
        );
        assert_eq!(s2.endpoints.len(), 1);
    }

    #[test]
    fn blocked_sets_degraded_and_keeps_what_still_runs() {
        let ok = next_status(None, Some(1), 1, &applied(2), t(100));
        let blocked = Outcome::Blocked {
            reason: "SecretMissing",
            message: "spec.oauth.clientSecretRef: Secret mcp/x not found".into(),
        };
        let s = next_status(Some(&ok), Some(2), 1, &blocked, t(200));
        let d = condition(&s, DEGRADED);
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "SecretMissing")
        );
        assert!(d.message.contains("spec.oauth.clientSecretRef"));
        assert_eq!(condition(&s, READY).status, "False");
        let stalled = condition(&s, STALLED);
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "SecretMissing"),
            "kstatus: a blocked spec is Stalled, so Flux fails fast"
        );
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(s.config_hash.as_deref(), Some("abc"));
        assert_eq!(s.ready_replicas, 2);
    }

    #[test]
    fn progressing_and_ready_resources_are_not_stalled() {
        for ready in [1, 2] {
            let s = next_status(None, Some(1), 1, &applied(ready), t(100));
            assert_eq!(condition(&s, STALLED).status, "False", "ready={ready}");
        }
    }

    #[test]
    fn a_rollout_past_its_progress_deadline_is_stalled_and_degraded() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "readyReplicas": 0, "updatedReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]}
        }))
        .unwrap();
        let outcome = Outcome::Applied {
            config_hash: "abc".into(),
            rollout: Rollout::of(&d),
            endpoints: vec![],
            verifier: None,
            service_monitor: ServiceMonitorState::NotRequested,
        };
        let s = next_status(None, Some(2), 1, &outcome, t(100));
        for type_ in [STALLED, DEGRADED] {
            let c = condition(&s, type_);
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                ("True", "ProgressDeadlineExceeded"),
                "{type_}"
            );
        }
        assert_eq!(condition(&s, READY).status, "False");
    }

    #[test]
    fn a_missing_service_monitor_crd_warns_without_degrading() {
        let Outcome::Applied {
            config_hash,
            rollout,
            endpoints,
            ..
        } = applied(2)
        else {
            unreachable!()
        };
        let outcome = |service_monitor| Outcome::Applied {
            config_hash: config_hash.clone(),
            rollout,
            endpoints: endpoints.clone(),
            verifier: None,
            service_monitor,
        };
        let s = next_status(
            None,
            Some(1),
            1,
            &outcome(ServiceMonitorState::CrdMissing),
            t(100),
        );
        let w = condition(&s, WARNING);
        assert_eq!(
            (w.status.as_str(), w.reason.as_str()),
            ("True", "ServiceMonitorCRDMissing")
        );
        assert!(w.message.contains("spec.monitoring.serviceMonitor"));
        assert_eq!(condition(&s, READY).status, "True");
        assert_eq!(condition(&s, DEGRADED).status, "False");
        assert_eq!(condition(&s, STALLED).status, "False");
        // Installing the CRD clears it.
        let s = next_status(
            Some(&s),
            Some(1),
            1,
            &outcome(ServiceMonitorState::Applied("a-gateway".into())),
            t(200),
        );
        assert!(s.conditions.iter().all(|c| c.type_ != WARNING));
        assert_eq!(s.service_monitor.as_deref(), Some("a-gateway"));
    }

    #[test]
    fn the_verifier_block_follows_the_last_apply() {
        let v = VerifierStatus {
            mode: crate::crd::VerifierMode::Sidecar,
            config_map: "a-verify".into(),
            config_key: "verify.yaml".into(),
            clickhouse_config_key: "clickhouse-http-auth.xml".into(),
            mount_path: "/etc/chmcp".into(),
            verify_url: "http://127.0.0.1:9999/verify".into(),
        };
        let mut with = applied(2);
        if let Outcome::Applied { verifier, .. } = &mut with {
            *verifier = Some(v.clone());
        }
        let s = next_status(None, Some(1), 1, &with, t(100));
        assert_eq!(s.verifier.as_ref(), Some(&v));
        let s = next_status(Some(&s), Some(2), 1, &applied(2), t(200));
        assert_eq!(s.verifier, None, "disabling removes the block");
    }

    #[test]
    fn rollout_reads_the_deployment_status() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"generation": 4},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"observedGeneration": 3, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}
        }))
        .unwrap();
        let r = Rollout::of(&d);
        assert!(
            !r.observed && !r.complete(),
            "an unobserved template is not complete"
        );
    }
}

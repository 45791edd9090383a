//! The reconcile pipeline: validate → dereference → render → apply → status.
//!
//! Only `dereference`, `apply` and the status/event writes do I/O; every decision is made
//! by the pure steps (`validate`, `render`, `status`). Each step takes what the one
//! before returned: render needs the [`ValidatedSpec`], so nothing unchecked is rendered.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::apply::{apply_all, apply_params, Previously};
use crate::crd::{McpMultiCluster, VerifierMode};
use crate::error::Error;
use crate::render::{display_name, is_being_deleted, render, Names, SecretVersions, FIELD_MANAGER};
use crate::status::{
    next_status, status_patch, Outcome, Rollout, ServiceMonitorState,
    REASON_SERVICE_MONITOR_CRD_MISSING, SERVICE_MONITOR_CRD_MISSING_MESSAGE,
};
use crate::telemetry::Metrics;
use crate::validate::{summarize, validate, ValidatedSpec};

/// After a successful reconcile: owned objects and Secrets are watched, so this is only
/// a safety net against missed events.
const RESYNC: Duration = Duration::from_secs(300);
/// While pods roll, look again soon even if no watch event arrives.
const ROLLOUT_POLL: Duration = Duration::from_secs(15);
/// After an API error: retry soon, the API server is usually back quickly.
const ERROR_RETRY: Duration = Duration::from_secs(30);

pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
pub const REASON_SECRET_MISSING: &str = "SecretMissing";

/// What every reconciliation shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Used when a resource names no image.
    pub default_image: String,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, default_image: String) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            default_image,
        }
    }
}

/// The controller's entry point for one resource.
pub async fn reconcile(mc: Arc<McpMultiCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.metrics.reconciliations.inc();
    let result = reconcile_steps(&mc, &ctx).await;
    ctx.metrics.finished(started.elapsed(), result.is_ok());
    if let Err(e) = &result {
        ctx.metrics.error(e.reason());
    }
    result
}

pub fn error_policy(mc: Arc<McpMultiCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(resource = %display_name(&mc), %error, "reconcile failed");
    Action::requeue(ERROR_RETRY)
}

async fn reconcile_steps(mc: &McpMultiCluster, ctx: &Context) -> Result<Action, Error> {
    // Owner references let the garbage collector remove everything; nothing to do.
    if is_being_deleted(mc) {
        return Ok(Action::await_change());
    }
    let names = Names::of(mc)?;

    let validated = match validate(mc) {
        Ok(validated) => validated,
        Err(errors) => {
            return blocked(mc, ctx, &names, REASON_INVALID_SPEC, summarize(&errors)).await
        }
    };
    let secrets = match dereference(&ctx.client, &names.namespace, &validated).await {
        Err(Error::SecretMissing(message)) => {
            return blocked(mc, ctx, &names, REASON_SECRET_MISSING, message).await
        }
        other => other?,
    };
    let objects = render(&validated, &secrets, &ctx.default_image)?;
    let applied = apply_all(&ctx.client, &names, &objects, previously(mc)).await?;

    let rollout = Rollout::of(&applied.deployment);
    let outcome = Outcome::Applied {
        config_hash: objects.config_hash.clone(),
        rollout,
        endpoints: objects.endpoints.clone(),
        verifier: objects.verifier.as_ref().map(|v| v.status.clone()),
        service_monitor: applied.service_monitor.clone(),
    };
    if applied.service_monitor == ServiceMonitorState::CrdMissing {
        publish(
            ctx,
            mc,
            EventType::Warning,
            REASON_SERVICE_MONITOR_CRD_MISSING,
            SERVICE_MONITOR_CRD_MISSING_MESSAGE.into(),
        )
        .await;
    }
    let previous_hash = mc.status.as_ref().and_then(|s| s.config_hash.clone());
    write_status(mc, ctx, &names, &outcome).await?;
    if previous_hash.as_deref() != Some(objects.config_hash.as_str()) {
        let note = match previous_hash {
            None => format!(
                "gateway created with configuration {}",
                short(&objects.config_hash)
            ),
            Some(_) => format!(
                "restart-only settings or Secrets changed: rolling pods to configuration {}",
                short(&objects.config_hash)
            ),
        };
        publish(ctx, mc, EventType::Normal, "ConfigApplied", note).await;
    }
    Ok(Action::requeue(if rollout.complete() {
        RESYNC
    } else {
        ROLLOUT_POLL
    }))
}

/// What the last status says was applied: the optional objects to look for when they
/// are no longer rendered.
pub fn previously(mc: &McpMultiCluster) -> Previously {
    let status = mc.status.as_ref();
    let verifier = status.and_then(|s| s.verifier.as_ref());
    Previously {
        verifier: verifier.is_some(),
        verifier_service: verifier.is_some_and(|v| v.mode == VerifierMode::Service),
        service_monitor: status.is_some_and(|s| s.service_monitor.is_some()),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Nothing is applied: the status says why (naming the field), and an Event too.
async fn blocked(
    mc: &McpMultiCluster,
    ctx: &Context,
    names: &Names,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    tracing::info!(resource = %display_name(mc), reason, %message, "not applying");
    ctx.metrics.error(reason);
    write_status(
        mc,
        ctx,
        names,
        &Outcome::Blocked {
            reason,
            message: message.clone(),
        },
    )
    .await?;
    publish(ctx, mc, EventType::Warning, reason, message).await;
    // Fixing the spec or creating the Secret triggers a reconcile through the watches.
    Ok(Action::requeue(RESYNC))
}

async fn write_status(
    mc: &McpMultiCluster,
    ctx: &Context,
    names: &Names,
    outcome: &Outcome,
) -> Result<(), Error> {
    let status = next_status(
        mc.status.as_ref(),
        mc.meta().generation,
        mc.spec.clusters.len(),
        outcome,
        Timestamp::now(),
    );
    let api = Api::<McpMultiCluster>::namespaced(ctx.client.clone(), &names.namespace);
    api.patch_status(
        &names.instance,
        &apply_params(),
        &Patch::Apply(status_patch(&status)),
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::Status {
        name: display_name(mc),
        source,
    })
}

/// Events are for people; failing to record one must not fail the reconcile.
async fn publish(
    ctx: &Context,
    mc: &McpMultiCluster,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        // The Events API caps the note at 1 kB.
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &mc.object_ref(&())).await {
        tracing::warn!(resource = %display_name(mc), error = %e, "cannot record event");
    }
}

/// Reads each Secret the validated spec references, once each, for the versions render
/// hashes. [`Error::SecretMissing`]: a Secret or key is missing, which the user must
/// fix; [`Error::Dereference`]: the API failed.
pub async fn dereference(
    client: &Client,
    namespace: &str,
    validated: &ValidatedSpec<'_>,
) -> Result<SecretVersions, Error> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut fetched: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    let mut versions = SecretVersions::new();
    for (field, r) in validated.spec().secret_refs() {
        if !fetched.contains_key(&r.name) {
            let secret = api
                .get_opt(&r.name)
                .await
                .map_err(|source| Error::Dereference {
                    namespace: namespace.into(),
                    name: r.name.clone(),
                    source,
                })?;
            fetched.insert(r.name.clone(), secret);
        }
        let Some(Some(secret)) = fetched.get(&r.name) else {
            return Err(Error::SecretMissing(format!(
                "{field}: Secret {namespace}/{} not found",
                r.name
            )));
        };
        let has_key = secret.data.as_ref().is_some_and(|d| d.contains_key(&r.key))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(&r.key));
        if !has_key {
            return Err(Error::SecretMissing(format!(
                "{field}: Secret {namespace}/{} has no key `{}`",
                r.name, r.key
            )));
        }
        versions.insert(
            r.name.clone(),
            secret.resource_version().unwrap_or_default(),
        );
    }
    Ok(versions)
}

/// The resources (among `candidates`) that reference the Secret `namespace/name`: a
/// change to it must re-hash and roll their pods.
pub fn referencing_secret<'a>(
    candidates: impl IntoIterator<Item = &'a McpMultiCluster>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<McpMultiCluster>> {
    candidates
        .into_iter()
        .filter(|mc| mc.namespace().as_deref() == Some(namespace))
        .filter(|mc| mc.spec.secret_refs().iter().any(|(_, r)| r.name == name))
        .map(ObjectRef::from_obj)
        .collect()
}

/// Runs the controller over `api` (one namespace or all) until shutdown is signalled.
pub async fn run_controller(
    client: Client,
    namespace: Option<String>,
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    // Only our own objects: the label keeps the watch caches small.
    let owned = || {
        watcher::Config::default().labels(&format!(
            "{}={FIELD_MANAGER}",
            crate::render::LABEL_MANAGED_BY
        ))
    };
    let controller = Controller::new(
        api::<McpMultiCluster>(&client, &namespace),
        watcher::Config::default(),
    );
    let store = controller.store();
    controller
        .owns(api::<ConfigMap>(&client, &namespace), owned())
        .owns(api::<Deployment>(&client, &namespace), owned())
        .owns(api::<Service>(&client, &namespace), owned())
        .owns(api::<Ingress>(&client, &namespace), owned())
        .owns(api::<PodDisruptionBudget>(&client, &namespace), owned())
        .watches(
            api::<Secret>(&client, &namespace),
            watcher::Config::default(),
            move |secret: Secret| {
                let state = store.state();
                referencing_secret(
                    state.iter().map(|mc| &**mc),
                    &secret.namespace().unwrap_or_default(),
                    &secret.name_any(),
                )
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(resource = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "controller event"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str, namespace: &str, oauth_secret: &str) -> McpMultiCluster {
        serde_yaml_ng::from_str(&format!(
            r#"
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  clickhouse: {{hostTemplate: "{{cluster}}.svc", tls: {{caSecretRef: {{name: ca, key: ca.crt}}}}}}
  clusters: [{{name: a}}]
  oauth:
    issuer: https://idp.example.com
    publicUrl: https://mcp.example.com
    clientId: id
    clientSecretRef: {{name: {oauth_secret}, key: c}}
    signingSecretRef: {{name: {oauth_secret}, key: s}}
"#
        ))
        .unwrap()
    }

    #[test]
    fn a_secret_change_triggers_exactly_the_resources_that_reference_it_in_its_namespace() {
        let all = [
            resource("one", "mcp", "oauth-1"),
            resource("two", "mcp", "oauth-2"),
            resource("three", "other", "oauth-1"),
        ];
        let names = |refs: Vec<ObjectRef<McpMultiCluster>>| {
            refs.into_iter().map(|r| r.name).collect::<Vec<_>>()
        };
        assert_eq!(names(referencing_secret(&all, "mcp", "oauth-1")), ["one"]);
        assert_eq!(names(referencing_secret(&all, "mcp", "ca")), ["one", "two"]);
        assert!(referencing_secret(&all, "mcp", "unrelated").is_empty());
    }
}

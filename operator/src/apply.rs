//! Apply: server-side apply of every rendered object under one field manager, then
//! removal of the objects this resource no longer needs (found by label).

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::{de::DeserializeOwned, Serialize};

use crate::error::Error;
use crate::render::monitoring::service_monitor_resource;
use crate::render::verifier::verifier_selector;
use crate::render::{instance_selector, Names, RenderedObjects, FIELD_MANAGER};
use crate::status::ServiceMonitorState;

/// `force`: the operator owns these objects outright; another manager's edit to a
/// field it sets is overwritten rather than left as a conflict.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// What the last status recorded as applied: objects that are no longer rendered are
/// looked for (and removed) only then, so a resource that never used an optional
/// feature costs no extra API calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Previously {
    pub verifier: bool,
    pub verifier_service: bool,
    pub service_monitor: bool,
}

/// What [`apply_all`] leaves behind.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The gateway Deployment as the API server now has it, status included.
    pub deployment: Deployment,
    pub service_monitor: ServiceMonitorState,
}

/// Applies everything in dependency order (configuration before the pods that read it).
pub async fn apply_all(
    client: &Client,
    names: &Names,
    objs: &RenderedObjects,
    previously: Previously,
) -> Result<Applied, Error> {
    let ns = names.namespace.as_str();
    // Ingress and PDB exist only for the gateway, so the instance labels find them.
    let gateway_selector = instance_selector(names);
    ssa(
        &Api::<ConfigMap>::namespaced(client.clone(), ns),
        &objs.config_map,
        "ConfigMap",
    )
    .await?;
    ssa(
        &Api::<Service>::namespaced(client.clone(), ns),
        &objs.service,
        "Service",
    )
    .await?;
    let deployment = ssa(
        &Api::<Deployment>::namespaced(client.clone(), ns),
        &objs.deployment,
        "Deployment",
    )
    .await?;
    optional(
        &Api::<Ingress>::namespaced(client.clone(), ns),
        &gateway_selector,
        objs.ingress.as_ref(),
        "Ingress",
    )
    .await?;
    optional(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
        &gateway_selector,
        objs.pdb.as_ref(),
        "PodDisruptionBudget",
    )
    .await?;
    apply_verifier(client, names, objs, previously).await?;
    let service_monitor = apply_service_monitor(client, names, objs, previously).await?;
    Ok(Applied {
        deployment,
        service_monitor,
    })
}

async fn apply_verifier(
    client: &Client,
    names: &Names,
    objs: &RenderedObjects,
    previously: Previously,
) -> Result<(), Error> {
    let ns = names.namespace.as_str();
    let selector = verifier_selector(names);
    let v = objs.verifier.as_ref();
    if v.is_some() || previously.verifier {
        optional(
            &Api::<ConfigMap>::namespaced(client.clone(), ns),
            &selector,
            v.map(|v| &v.config_map),
            "ConfigMap",
        )
        .await?;
    }
    let service = v.and_then(|v| v.service.as_ref());
    let deployment = v.and_then(|v| v.deployment.as_ref());
    if service.is_some() || deployment.is_some() || previously.verifier_service {
        optional(
            &Api::<Service>::namespaced(client.clone(), ns),
            &selector,
            service,
            "Service",
        )
        .await?;
        optional(
            &Api::<Deployment>::namespaced(client.clone(), ns),
            &selector,
            deployment,
            "Deployment",
        )
        .await?;
    }
    Ok(())
}

/// 404 from the ServiceMonitor endpoint means the API server does not serve the kind.
fn is_not_served(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

async fn apply_service_monitor(
    client: &Client,
    names: &Names,
    objs: &RenderedObjects,
    previously: Previously,
) -> Result<ServiceMonitorState, Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &names.namespace,
        &service_monitor_resource(),
    );
    const KIND: &str = "ServiceMonitor";
    if let Some(sm) = &objs.service_monitor {
        let name = sm.name_any();
        return match api.patch(&name, &apply_params(), &Patch::Apply(sm)).await {
            Ok(_) => Ok(ServiceMonitorState::Applied(name)),
            Err(e) if is_not_served(&e) => Ok(ServiceMonitorState::CrdMissing),
            Err(source) => Err(Error::Apply {
                kind: KIND,
                name,
                source,
            }),
        };
    }
    if !previously.service_monitor {
        return Ok(ServiceMonitorState::NotRequested);
    }
    let lp = ListParams::default().labels(&instance_selector(names));
    let found = match api.list_metadata(&lp).await {
        Ok(found) => found,
        Err(e) if is_not_served(&e) => return Ok(ServiceMonitorState::NotRequested),
        Err(source) => {
            return Err(Error::Prune {
                kind: KIND,
                name: instance_selector(names),
                source,
            })
        }
    };
    for orphan in found.items {
        let name = orphan.name_any();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(kind = KIND, name, "removed object no longer rendered"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Prune {
                    kind: KIND,
                    name,
                    source,
                })
            }
        }
    }
    Ok(ServiceMonitorState::NotRequested)
}

async fn ssa<K>(api: &Api<K>, obj: &K, kind: &'static str) -> Result<K, Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = obj.name_any();
    api.patch(&name, &apply_params(), &Patch::Apply(obj))
        .await
        .map_err(|source| Error::Apply { kind, name, source })
}

/// Applies `obj` when rendered; otherwise deletes every object of this kind that carries
/// the resource's labels (e.g. the PDB after scaling to one replica).
async fn optional<K>(
    api: &Api<K>,
    selector: &str,
    obj: Option<&K>,
    kind: &'static str,
) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Serialize + DeserializeOwned + Clone + Debug,
{
    if let Some(obj) = obj {
        ssa(api, obj, kind).await?;
        return Ok(());
    }
    let lp = ListParams::default().labels(selector);
    let found = api
        .list_metadata(&lp)
        .await
        .map_err(|source| Error::Prune {
            kind,
            name: selector.to_string(),
            source,
        })?;
    for orphan in found.items {
        let name = orphan.name_any();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(kind, name, "removed object no longer rendered"),
            // Already gone: the goal is reached.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => return Err(Error::Prune { kind, name, source }),
        }
    }
    Ok(())
}

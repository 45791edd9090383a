//! Apply: server-side apply of every rendered object under one field manager, then
//! removal of the objects this resource no longer needs (found by label).

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::{de::DeserializeOwned, Serialize};

use crate::error::Error;
use crate::render::{instance_selector, Names, RenderedObjects, FIELD_MANAGER};

/// `force`: the operator owns these objects outright; another manager's edit to a
/// field it sets is overwritten rather than left as a conflict.
pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Applies everything in dependency order (configuration before the pods that read it)
/// and returns the Deployment as the API server now has it, status included.
pub async fn apply_all(
    client: &Client,
    names: &Names,
    objs: &RenderedObjects,
) -> Result<Deployment, Error> {
    let ns = names.namespace.as_str();
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
        names,
        objs.ingress.as_ref(),
        "Ingress",
    )
    .await?;
    optional(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
        names,
        objs.pdb.as_ref(),
        "PodDisruptionBudget",
    )
    .await?;
    Ok(deployment)
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
    names: &Names,
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
    let lp = ListParams::default().labels(&instance_selector(names));
    let found = api
        .list_metadata(&lp)
        .await
        .map_err(|source| Error::Prune {
            kind,
            name: instance_selector(names),
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

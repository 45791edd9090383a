//! PodDisruptionBudget: with more than one replica, a drain takes at most one pod at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{object_meta, selector_labels, Names};
use crate::crd::McpMultiCluster;

pub fn pdb(mc: &McpMultiCluster, names: &Names) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: object_meta(mc, names, &names.gateway),
        spec: Some(PodDisruptionBudgetSpec {
            // maxUnavailable (not minAvailable) keeps working when replicas change.
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(names)),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

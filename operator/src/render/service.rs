//! The Service in front of the gateway pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::PORT_NAME;
use super::{object_meta, selector_labels, Names};
use crate::crd::McpMultiCluster;

pub fn service(mc: &McpMultiCluster, names: &Names) -> Service {
    one_port_service(
        object_meta(mc, names, &names.gateway),
        mc.spec.service.kind.as_str(),
        selector_labels(names),
        PORT_NAME,
        mc.spec.service.port,
    )
}

/// A Service with one named TCP port that targets the pods' port of the same name.
pub fn one_port_service(
    metadata: ObjectMeta,
    kind: &str,
    selector: BTreeMap<String, String>,
    port_name: &str,
    port: i32,
) -> Service {
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(kind.into()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some(port_name.into()),
                port,
                target_port: Some(IntOrString::String(port_name.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn service_targets_the_named_gateway_port() {
        let mc = three_clusters();
        let s = service(&mc, &Names::of(&mc).unwrap()).spec.unwrap();
        assert_eq!(s.type_.as_deref(), Some("ClusterIP"));
        let p = &s.ports.unwrap()[0];
        assert_eq!(
            (p.port, p.target_port.clone()),
            (80, Some(IntOrString::String("http".into())))
        );
        assert_eq!(
            s.selector.unwrap()["app.kubernetes.io/instance"],
            "analytics"
        );
    }
}

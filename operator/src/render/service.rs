//! The Service in front of the gateway pods.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::deployment::PORT_NAME;
use super::{object_meta, selector_labels, Names};
use crate::crd::McpMultiCluster;

pub fn service(mc: &McpMultiCluster, names: &Names) -> Service {
    Service {
        metadata: object_meta(mc, names, &names.gateway),
        spec: Some(ServiceSpec {
            type_: Some(mc.spec.service.kind.as_str().into()),
            selector: Some(selector_labels(names)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.into()),
                port: mc.spec.service.port,
                target_port: Some(IntOrString::String(PORT_NAME.into())),
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

//! The gateway's Prometheus Operator ServiceMonitor. Its CRD may be absent from the
//! cluster, so it is a dynamic object rather than a compiled-in type.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::deployment::PORT_NAME;
use super::{labels, object_meta, selector_labels, Names, RenderError};
use crate::crd::McpMultiCluster;

pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

/// The ServiceMonitor `<name>-gateway`, selecting the gateway Service by its labels and
/// scraping `/metrics` on its one port.
pub fn service_monitor(mc: &McpMultiCluster, names: &Names) -> Result<DynamicObject, RenderError> {
    let sm = &mc.spec.monitoring.service_monitor;
    let mut metadata = object_meta(mc, names, &names.gateway);
    // The operator's labels last: they find the object again.
    let mut all = sm.labels.clone();
    all.extend(labels(names));
    metadata.labels = Some(all);
    let mut obj = DynamicObject::new(&names.gateway, &service_monitor_resource());
    obj.metadata = metadata;
    obj.data = json!({
        "spec": {
            "selector": {"matchLabels": selector_labels(names)},
            "namespaceSelector": {"matchNames": [names.namespace]},
            "endpoints": [{
                "port": PORT_NAME,
                "path": "/metrics",
                "interval": sm.interval,
            }],
        }
    });
    // Catch a shape the API server would refuse before it gets there.
    serde_json::to_value(&obj).map_err(|e| RenderError::Serialize(e.to_string()))?;
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;

    #[test]
    fn service_monitor_only_when_enabled() {
        let r = rendered(&three_clusters(), &secrets("1"), "img");
        assert!(r.service_monitor.is_none());
    }

    #[test]
    fn service_monitor_scrapes_the_gateway_services_port() {
        let mc = resource(&format!(
            "{THREE_CLUSTERS}  monitoring:\n    serviceMonitor: {{enabled: true, interval: 15s, labels: {{release: prom}}}}\n"
        ));
        let r = rendered(&mc, &secrets("1"), "img");
        let sm = serde_json::to_value(r.service_monitor.unwrap()).unwrap();
        assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(sm["kind"], "ServiceMonitor");
        assert_eq!(sm["metadata"]["name"], "analytics-gateway");
        assert_eq!(sm["metadata"]["labels"]["release"], "prom");
        assert_eq!(
            sm["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "chmcp-operator"
        );
        assert_eq!(
            sm["metadata"]["ownerReferences"][0]["kind"],
            "McpMultiCluster"
        );
        let ep = &sm["spec"]["endpoints"][0];
        assert_eq!(
            (
                ep["port"].as_str(),
                ep["path"].as_str(),
                ep["interval"].as_str()
            ),
            (Some("http"), Some("/metrics"), Some("15s"))
        );
        // The selector picks exactly the gateway Service (the same labels it carries).
        let service_labels = serde_json::to_value(r.service.metadata.labels).unwrap();
        for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&service_labels[k], v, "{k}");
        }
        assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"][0], "mcp");
    }
}

//! The Ingress: explicit routes for each cluster and the OAuth endpoints, nothing else
//! (metrics and health stay inside the cluster).

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use std::collections::BTreeMap;

use super::deployment::PORT_NAME;
use super::{object_meta, Names};
use crate::crd::McpMultiCluster;

/// One routed path and how the Ingress matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub path_type: &'static str,
}

impl Route {
    fn exact(path: String) -> Self {
        Self {
            path,
            path_type: "Exact",
        }
    }
}

/// Every public route of the gateway for this resource, in a stable order.
pub fn routes(mc: &McpMultiCluster) -> Vec<Route> {
    let mut out = Vec::new();
    for c in &mc.spec.clusters {
        let n = &c.name;
        // Clients paste the connector URL with or without a trailing slash; the gateway
        // serves both, and an Exact rule matches only one of them.
        out.push(Route::exact(format!("/mcp/{n}")));
        out.push(Route::exact(format!("/mcp/{n}/")));
        out.push(Route::exact(format!(
            "/mcp/{n}/.well-known/oauth-protected-resource"
        )));
        out.push(Route::exact(format!(
            "/.well-known/oauth-protected-resource/mcp/{n}"
        )));
    }
    if mc.spec.fleet_endpoint {
        out.push(Route::exact("/mcp".into()));
        out.push(Route::exact("/mcp/".into()));
        out.push(Route::exact(
            "/.well-known/oauth-protected-resource/mcp".into(),
        ));
        out.push(Route::exact(
            "/mcp/.well-known/oauth-protected-resource".into(),
        ));
    }
    out.push(Route::exact("/.well-known/oauth-protected-resource".into()));
    if mc.spec.oauth.broker {
        out.push(Route::exact(
            "/.well-known/oauth-authorization-server".into(),
        ));
        out.push(Route::exact("/.well-known/openid-configuration".into()));
        // register, authorize, callback, token: the broker owns everything under /oauth/.
        out.push(Route {
            path: "/oauth/".into(),
            path_type: "Prefix",
        });
    }
    out
}

/// ingress-nginx's consistent-hash annotation (its "ketama" ring: adding a replica moves
/// about 1/N of the callers).
pub const NGINX_HASH_BY: &str = "nginx.ingress.kubernetes.io/upstream-hash-by";
/// nginx's variable for the request's `Authorization` header: one caller, one hash.
pub const HASH_ON_AUTHORIZATION: &str = "$http_authorization";

/// The Ingress's annotations: the spec's own, plus the caller-affinity hash when asked
/// (an explicit `upstream-hash-by` in the spec wins).
pub fn annotations(spec: &crate::crd::IngressSpec) -> BTreeMap<String, String> {
    let mut out = spec.annotations.clone();
    if spec.caller_affinity {
        out.entry(NGINX_HASH_BY.into())
            .or_insert_with(|| HASH_ON_AUTHORIZATION.into());
    }
    out
}

pub fn ingress(mc: &McpMultiCluster, names: &Names) -> Ingress {
    let spec = &mc.spec.ingress;
    let mut metadata = object_meta(mc, names, &names.gateway);
    let annotations = annotations(spec);
    if !annotations.is_empty() {
        metadata.annotations = Some(annotations);
    }
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: names.gateway.clone(),
            port: Some(ServiceBackendPort {
                name: Some(PORT_NAME.into()),
                number: None,
            }),
        }),
        resource: None,
    };
    let paths = routes(mc)
        .into_iter()
        .map(|r| HTTPIngressPath {
            path: Some(r.path),
            path_type: r.path_type.into(),
            backend: backend.clone(),
        })
        .collect();
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: (!spec.class_name.is_empty()).then(|| spec.class_name.clone()),
            tls: (!spec.tls_secret_name.is_empty()).then(|| {
                vec![IngressTLS {
                    hosts: Some(vec![spec.host.clone()]),
                    secret_name: Some(spec.tls_secret_name.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            default_backend: None,
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn paths(i: &Ingress) -> Vec<(String, String)> {
        i.spec.as_ref().unwrap().rules.as_ref().unwrap()[0]
            .http
            .as_ref()
            .unwrap()
            .paths
            .iter()
            .map(|p| (p.path.clone().unwrap(), p.path_type.clone()))
            .collect()
    }

    fn ingress_of(mc: &McpMultiCluster) -> Ingress {
        ingress(mc, &Names::of(mc).unwrap())
    }

    #[test]
    fn three_clusters_get_exactly_their_routes_and_the_broker_routes() {
        let got = paths(&ingress_of(&three_clusters()));
        let exact = |p: &str| (p.to_string(), "Exact".to_string());
        let want = vec![
            exact("/mcp/otel"),
            exact("/mcp/otel/"),
            exact("/mcp/otel/.well-known/oauth-protected-resource"),
            exact("/.well-known/oauth-protected-resource/mcp/otel"),
            exact("/mcp/antalya"),
            exact("/mcp/antalya/"),
            exact("/mcp/antalya/.well-known/oauth-protected-resource"),
            exact("/.well-known/oauth-protected-resource/mcp/antalya"),
            exact("/mcp/logs"),
            exact("/mcp/logs/"),
            exact("/mcp/logs/.well-known/oauth-protected-resource"),
            exact("/.well-known/oauth-protected-resource/mcp/logs"),
            exact("/.well-known/oauth-protected-resource"),
            exact("/.well-known/oauth-authorization-server"),
            exact("/.well-known/openid-configuration"),
            ("/oauth/".to_string(), "Prefix".to_string()),
        ];
        assert_eq!(got, want);
        assert!(
            got.iter()
                .all(|(p, _)| !p.contains("metrics") && !p.ends_with("z")),
            "health and metrics stay internal"
        );
    }

    #[test]
    fn resource_server_mode_has_no_broker_routes() {
        let mut mc = three_clusters();
        mc.spec.oauth.broker = false;
        let got = paths(&ingress_of(&mc));
        assert_eq!(got.len(), 13, "4 per cluster and the shared metadata");
        assert!(got
            .iter()
            .all(|(p, _)| !p.starts_with("/oauth") && !p.contains("openid")));
    }

    #[test]
    fn removing_a_cluster_removes_its_routes() {
        let mut mc = three_clusters();
        mc.spec.clusters.retain(|c| c.name != "antalya");
        let got = paths(&ingress_of(&mc));
        assert!(got.iter().all(|(p, _)| !p.contains("antalya")), "{got:?}");
        assert_eq!(got.len(), 12);
    }

    #[test]
    fn mcp_routes_match_with_and_without_the_trailing_slash() {
        let got = paths(&ingress_of(&three_clusters()));
        for c in ["otel", "antalya", "logs"] {
            for p in [format!("/mcp/{c}"), format!("/mcp/{c}/")] {
                assert!(
                    got.contains(&(p.clone(), "Exact".to_string())),
                    "{p} is routed: {got:?}"
                );
            }
        }
    }

    #[test]
    fn every_cluster_route_is_one_the_gateway_serves() {
        use chmcp_gateway::routing::{ClusterAllowlist, Route as GatewayRoute};
        let mc = three_clusters();
        let allow = ClusterAllowlist::new(mc.spec.clusters.iter().map(|c| c.name.clone()));
        for r in routes(&mc) {
            if r.path.starts_with("/mcp/") || r.path.starts_with("/.well-known/oauth-protected") {
                assert_ne!(
                    GatewayRoute::parse_multi(&r.path, &allow),
                    GatewayRoute::NotFound,
                    "{} is routed by the Ingress but not served by the gateway",
                    r.path
                );
            }
        }
    }

    #[test]
    fn the_fleet_connector_is_routed_only_when_asked_and_served_by_the_gateway() {
        use chmcp_gateway::config::MultiClusterConfig;
        use chmcp_gateway::routing::{ClusterAllowlist, Route as GatewayRoute};
        let mut mc = three_clusters();
        let fleet_paths = [
            "/mcp",
            "/mcp/",
            "/.well-known/oauth-protected-resource/mcp",
            "/mcp/.well-known/oauth-protected-resource",
        ];
        let got = paths(&ingress_of(&mc));
        assert!(
            got.iter().all(|(p, _)| !fleet_paths.contains(&p.as_str())),
            "{got:?}"
        );
        mc.spec.fleet_endpoint = true;
        let got = paths(&ingress_of(&mc));
        for p in fleet_paths {
            assert!(
                got.contains(&(p.to_string(), "Exact".to_string())),
                "{p}: {got:?}"
            );
        }
        let allow = ClusterAllowlist::new(mc.spec.clusters.iter().map(|c| c.name.clone()));
        let gw = MultiClusterConfig {
            enabled: true,
            fleet_endpoint: true,
            ..Default::default()
        };
        for r in routes(&mc) {
            if r.path.starts_with("/mcp") || r.path.starts_with("/.well-known/oauth-protected") {
                assert_ne!(
                    GatewayRoute::of(&r.path, &gw, &allow),
                    GatewayRoute::NotFound,
                    "{} is routed by the Ingress but not served by the gateway",
                    r.path
                );
            }
        }
    }

    #[test]
    fn caller_affinity_hashes_the_authorization_header_unless_the_spec_says_otherwise() {
        let mut mc = three_clusters();
        let hash = |mc: &McpMultiCluster| {
            ingress_of(mc)
                .metadata
                .annotations
                .and_then(|a| a.get(NGINX_HASH_BY).cloned())
        };
        assert_eq!(hash(&mc), None, "off by default");
        mc.spec.ingress.caller_affinity = true;
        assert_eq!(hash(&mc).as_deref(), Some("$http_authorization"));
        mc.spec
            .ingress
            .annotations
            .insert(NGINX_HASH_BY.into(), "$remote_addr".into());
        assert_eq!(hash(&mc).as_deref(), Some("$remote_addr"), "explicit wins");
    }

    #[test]
    fn host_class_and_tls_come_from_the_spec() {
        let i = ingress_of(&three_clusters());
        let s = i.spec.unwrap();
        assert_eq!(s.ingress_class_name.as_deref(), Some("nginx"));
        assert_eq!(s.rules.unwrap()[0].host.as_deref(), Some("mcp.example.com"));
        let tls = &s.tls.unwrap()[0];
        assert_eq!(tls.secret_name.as_deref(), Some("mcp-tls"));
        let backend = s.default_backend;
        assert!(backend.is_none());
    }
}

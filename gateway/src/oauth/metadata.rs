//! RFC 9728 protected-resource metadata, per cluster and at the root.
//!
//! Pure: the configuration and the serving request's scheme and host go in, the
//! document comes out. The transport serves it without authentication at the paths
//! [`crate::routing::Route::ResourceMetadata`] and [`crate::routing::Route::RootMetadata`] name.

use serde::Serialize;

use crate::config::OAuthConfig;
use crate::net::{authority, is_https_url, Url};
use crate::routing::Cluster;

/// What a metadata document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataSubject<'a> {
    /// One MCP resource: `/mcp/{cluster}`, or `/mcp` in single-cluster mode.
    Resource(Cluster<'a>),
    /// The root `/.well-known/oauth-protected-resource` in multi-cluster mode: the gateway.
    Root,
}

/// The document (RFC 9728 §2), with the fields docs/spec-notes.md ("Routing and metadata") names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub bearer_methods_supported: Vec<&'static str>,
    pub resource_name: String,
}

impl ProtectedResourceMetadata {
    pub fn to_json(&self) -> serde_json::Value {
        // A struct of strings and string lists always serializes.
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The scheme clients must use to reach this gateway: `https` whenever a configured
/// public URL is https (TLS may end at a proxy, so the request itself looks like http),
/// otherwise the request's own scheme.
pub fn public_scheme(oauth: &OAuthConfig, request_scheme: &str) -> &'static str {
    if is_https_url(&oauth.public_resource_url)
        || is_https_url(&oauth.public_auth_server_url)
        || request_scheme.eq_ignore_ascii_case("https")
    {
        "https"
    } else {
        "http"
    }
}

/// The host that served the request, made safe to place in a URL and a header value.
/// A `Host` outside the authority character set (it comes from the client) is replaced
/// by the host of the configured public URL, so nothing can be injected into a challenge.
pub fn serving_host(oauth: &OAuthConfig, raw_host: &str) -> String {
    let plausible = |h: &str| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
            })
    };
    if plausible(raw_host) {
        return raw_host.to_string();
    }
    [&oauth.public_resource_url, &oauth.public_auth_server_url]
        .into_iter()
        .filter_map(|url| Url::parse(url).ok().as_ref().and_then(authority))
        .find(|h| plausible(h))
        .unwrap_or_else(|| "localhost".to_string())
}

/// `<scheme>://<serving host>`, the public origin of this request.
pub fn public_origin(oauth: &OAuthConfig, request_scheme: &str, raw_host: &str) -> String {
    format!(
        "{}://{}",
        public_scheme(oauth, request_scheme),
        serving_host(oauth, raw_host)
    )
}

/// The scopes clients are told about (`scopes_supported`, the challenges' `scope`):
/// `oauth.scopes`, then any `required_scopes` not already among them, so a client that
/// re-authorizes with exactly these gets a token the gate accepts.
pub fn advertised_scopes(oauth: &OAuthConfig) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in oauth.scopes.iter().chain(&oauth.required_scopes) {
        if !s.is_empty() && !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

/// The metadata document for `subject`, as served from `request_scheme://raw_host`.
///
/// - `resource`: in sealed token mode, each cluster's own public URL under
///   `public_auth_server_url` (per-cluster audiences); else `oauth.public_resource_url`
///   when set (one audience for every cluster); otherwise the public URL of the resource (`/mcp/{cluster}`, `/mcp`), or the bare
///   origin for the root document, matching RFC 9728 §3's derivation of the well-known URL.
/// - `authorization_servers`: broker mode, the gateway itself (`public_auth_server_url`,
///   else this origin); resource-server mode, the upstream `issuer`, verbatim (clients
///   compare it exactly with the issuer's own metadata).
pub fn protected_resource_metadata(
    oauth: &OAuthConfig,
    request_scheme: &str,
    raw_host: &str,
    subject: MetadataSubject<'_>,
) -> ProtectedResourceMetadata {
    let origin = public_origin(oauth, request_scheme, raw_host);
    let own = |cluster: Cluster<'_>| format!("{origin}{}", cluster.mcp_path());
    let resource = match subject {
        // Sealed tokens have per-cluster audiences: each cluster names its own URL.
        MetadataSubject::Resource(cluster) if oauth.sealed_tokens() => {
            super::sealed::resource_url(oauth, cluster).unwrap_or_else(|| own(cluster))
        }
        _ if !oauth.public_resource_url.is_empty() => oauth.public_resource_url.clone(),
        MetadataSubject::Resource(cluster) => own(cluster),
        MetadataSubject::Root => origin.clone(),
    };
    let authorization_server = if oauth.broker {
        match oauth.public_auth_server_url.trim_end_matches('/') {
            "" => origin.clone(),
            configured => configured.to_string(),
        }
    } else {
        oauth.issuer.clone()
    };
    let resource_name = match subject {
        MetadataSubject::Resource(Cluster::Named(name)) => {
            format!("ClickHouse cluster {name} (chmcp)")
        }
        MetadataSubject::Resource(Cluster::Fleet) => "ClickHouse clusters (chmcp)".to_string(),
        MetadataSubject::Resource(Cluster::Implicit) | MetadataSubject::Root => {
            "ClickHouse (chmcp)".to_string()
        }
    };
    ProtectedResourceMetadata {
        resource,
        authorization_servers: vec![authorization_server],
        scopes_supported: advertised_scopes(oauth),
        bearer_methods_supported: vec!["header"],
        resource_name,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn broker() -> OAuthConfig {
        OAuthConfig {
            enabled: true,
            issuer: "https://accounts.example.com".into(),
            public_auth_server_url: "https://mcp.example.com/".into(),
            scopes: vec!["openid".into(), "email".into()],
            ..OAuthConfig::default()
        }
    }

    #[test]
    fn cluster_metadata_names_the_cluster_url_as_resource_when_no_shared_resource_is_set() {
        let m = protected_resource_metadata(
            &broker(),
            "http",
            "mcp.example.com",
            MetadataSubject::Resource(Cluster::Named("otel")),
        );
        assert_eq!(
            m.to_json(),
            json!({
                "resource": "https://mcp.example.com/mcp/otel",
                "authorization_servers": ["https://mcp.example.com"],
                "scopes_supported": ["openid", "email"],
                "bearer_methods_supported": ["header"],
                "resource_name": "ClickHouse cluster otel (chmcp)",
            })
        );
    }

    #[test]
    fn a_shared_public_resource_url_is_the_resource_of_every_cluster_in_passthrough_mode() {
        let oauth = OAuthConfig {
            public_resource_url: "https://mcp.example.com/".into(),
            token_mode: crate::config::TokenMode::Passthrough,
            ..broker()
        };
        for c in ["otel", "antalya"] {
            let m = protected_resource_metadata(
                &oauth,
                "https",
                "gw.internal",
                MetadataSubject::Resource(Cluster::Named(c)),
            );
            assert_eq!(m.resource, "https://mcp.example.com/");
        }
    }

    #[test]
    fn sealed_mode_names_each_clusters_own_url_even_with_a_shared_resource() {
        let oauth = OAuthConfig {
            public_resource_url: "https://mcp.example.com/".into(),
            ..broker()
        };
        assert!(oauth.sealed_tokens());
        for c in ["otel", "antalya"] {
            let m = protected_resource_metadata(
                &oauth,
                "http",
                "gw.internal:8080",
                MetadataSubject::Resource(Cluster::Named(c)),
            );
            assert_eq!(m.resource, format!("https://mcp.example.com/mcp/{c}"));
        }
        let single = protected_resource_metadata(
            &oauth,
            "http",
            "gw.internal:8080",
            MetadataSubject::Resource(Cluster::Implicit),
        );
        assert_eq!(single.resource, "https://mcp.example.com/mcp");
    }

    #[test]
    fn resource_server_mode_names_the_issuer() {
        let oauth = OAuthConfig {
            broker: false,
            public_auth_server_url: String::new(),
            ..broker()
        };
        let m = protected_resource_metadata(
            &oauth,
            "https",
            "gw",
            MetadataSubject::Resource(Cluster::Implicit),
        );
        assert_eq!(m.authorization_servers, ["https://accounts.example.com"]);
        assert_eq!(m.resource, "https://gw/mcp");
    }

    #[test]
    fn broker_without_public_auth_server_url_names_the_serving_origin() {
        let oauth = OAuthConfig {
            public_auth_server_url: String::new(),
            ..broker()
        };
        let m =
            protected_resource_metadata(&oauth, "http", "127.0.0.1:8080", MetadataSubject::Root);
        assert_eq!(m.authorization_servers, ["http://127.0.0.1:8080"]);
        assert_eq!(m.resource, "http://127.0.0.1:8080");
    }

    #[test]
    fn scheme_is_https_when_a_public_url_is_https_even_behind_a_plain_http_hop() {
        assert_eq!(public_scheme(&broker(), "http"), "https");
        let local = OAuthConfig {
            public_auth_server_url: "http://localhost:8080".into(),
            ..OAuthConfig::default()
        };
        assert_eq!(public_scheme(&local, "http"), "http");
        assert_eq!(public_scheme(&local, "https"), "https");
        let upper = OAuthConfig {
            public_resource_url: "HTTPS://X".into(),
            ..OAuthConfig::default()
        };
        assert_eq!(public_scheme(&upper, "http"), "https");
    }

    #[test]
    fn a_hostile_host_header_is_replaced_by_the_public_host() {
        let oauth = broker();
        assert_eq!(
            serving_host(&oauth, "mcp.example.com:8443"),
            "mcp.example.com:8443"
        );
        assert_eq!(serving_host(&oauth, "[::1]:8080"), "[::1]:8080");
        assert_eq!(serving_host(&oauth, "evil\"\r\nX: y"), "mcp.example.com");
        assert_eq!(serving_host(&oauth, ""), "mcp.example.com");
        assert_eq!(serving_host(&OAuthConfig::default(), "a b"), "localhost");
    }

    #[test]
    fn required_scopes_are_advertised_after_the_configured_ones() {
        let oauth = OAuthConfig {
            required_scopes: vec!["email".into(), "mcp:read".into()],
            ..broker()
        };
        assert_eq!(advertised_scopes(&oauth), ["openid", "email", "mcp:read"]);
    }
}

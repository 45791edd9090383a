//! Cluster names in `/mcp/{cluster}` and where each cluster's ClickHouse lives.
//!
//! Pure: a request path goes in, a [`Route`] comes out. Every malformed or unlisted
//! cluster name yields the same [`Route::NotFound`], so the reply cannot be used as an
//! oracle for which clusters exist, and it is decided before any authentication.

use std::collections::HashSet;

use crate::clickhouse::Endpoint;
use crate::config::{ClickHouseConfig, MultiClusterConfig};

/// The placeholder in `clickhouse.host` / `clickhouse.connect_host` (docs/spec-notes.md, "Routing and metadata").
pub const CLUSTER_PLACEHOLDER: &str = "{cluster}";

/// RFC 9728's well-known suffix for protected-resource metadata.
pub const RESOURCE_METADATA_SUFFIX: &str = "/.well-known/oauth-protected-resource";

/// RFC 1123 label: `^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`.
pub fn is_valid_cluster_name(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

/// The body of every routing `404`: one reply whatever the cause (malformed name,
/// unlisted name, unknown sub-path), so it cannot tell which clusters exist.
pub fn not_found_body() -> serde_json::Value {
    serde_json::json!({"error": "not_found", "error_description": "no MCP endpoint at this path"})
}

/// Which MCP resource a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cluster<'a> {
    /// Single-cluster mode: the one configured ClickHouse, served at `/mcp`.
    Implicit,
    /// Multi-cluster mode: a name that passed the rules and the allow-list.
    Named(&'a str),
    /// Multi-cluster mode with `fleet_endpoint`: `/mcp`, every allow-listed cluster
    /// through one connector; each call names its cluster.
    Fleet,
}

/// The cluster name a fleet request carries until a call names its cluster; not an
/// RFC 1123 label, so it can never collide with a real cluster (catalog keys, logs).
pub const FLEET_CLUSTER: &str = "*";

impl<'a> Cluster<'a> {
    /// The name the catalog key and logs use; empty for the implicit cluster, which can
    /// never collide with a named one because an empty name is not a valid label.
    pub fn name(&self) -> &'a str {
        match self {
            Cluster::Implicit => "",
            Cluster::Named(n) => n,
            Cluster::Fleet => FLEET_CLUSTER,
        }
    }

    /// Path of the MCP endpoint: `/mcp` or `/mcp/{cluster}`.
    pub fn mcp_path(&self) -> String {
        match self {
            Cluster::Implicit | Cluster::Fleet => "/mcp".to_string(),
            Cluster::Named(n) => format!("/mcp/{n}"),
        }
    }

    /// Path of this resource's protected-resource metadata as advertised in challenges.
    ///
    /// Multi-cluster: `/mcp/{cluster}/.well-known/oauth-protected-resource`, exactly as
    /// docs/spec-notes.md ("Routing and metadata") fixes it. Single-cluster: `/.well-known/oauth-protected-resource/mcp`,
    /// RFC 9728 §3.1's path-inserted form for the resource `/mcp` (docs/spec-notes.md, "Routing and metadata");
    /// the fleet connector is the resource `/mcp` too, so it uses the same form.
    pub fn metadata_path(&self) -> String {
        match self {
            Cluster::Implicit | Cluster::Fleet => format!("{RESOURCE_METADATA_SUFFIX}/mcp"),
            Cluster::Named(n) => format!("/mcp/{n}{RESOURCE_METADATA_SUFFIX}"),
        }
    }
}

/// The cluster an MCP request was routed to, owned so the routing step can hand it to
/// the later steps of the MCP endpoint (`http::mcp_endpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutedCluster {
    Implicit,
    Named(String),
    Fleet,
}

impl RoutedCluster {
    pub fn of(cluster: Cluster<'_>) -> Self {
        match cluster {
            Cluster::Implicit => Self::Implicit,
            Cluster::Named(n) => Self::Named(n.to_string()),
            Cluster::Fleet => Self::Fleet,
        }
    }

    pub fn cluster(&self) -> Cluster<'_> {
        match self {
            Self::Implicit => Cluster::Implicit,
            Self::Named(n) => Cluster::Named(n),
            Self::Fleet => Cluster::Fleet,
        }
    }
}

/// What a request path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// An MCP request (`/mcp/{cluster}`, `/mcp/{cluster}/`, or `/mcp` in single mode and
    /// for the fleet connector).
    Mcp(Cluster<'a>),
    /// Protected-resource metadata of one MCP resource (served without authentication).
    ResourceMetadata(Cluster<'a>),
    /// `/.well-known/oauth-protected-resource` in multi-cluster mode: the gateway as a whole.
    RootMetadata,
    /// Under `/mcp` or the metadata prefix, but no resource: a malformed or unlisted name,
    /// or an unknown sub-path. One outcome for all causes: `404` before authentication.
    NotFound,
    /// Not a route this module owns (OAuth, health, metrics...): the caller decides.
    Other,
}

/// The cluster names a multi-cluster gateway serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterAllowlist {
    /// Empty: any valid name.
    names: HashSet<String>,
}

impl ClusterAllowlist {
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    pub fn from_config(mc: &MultiClusterConfig) -> Self {
        Self::new(mc.cluster_allowlist.iter().cloned())
    }

    /// Valid label and, when the list is not empty, on it.
    pub fn permits(&self, name: &str) -> bool {
        is_valid_cluster_name(name) && (self.names.is_empty() || self.names.contains(name))
    }
}

impl<'a> Route<'a> {
    /// Which MCP route a path is, by the mode's rules.
    pub fn of(path: &'a str, mc: &MultiClusterConfig, allow: &ClusterAllowlist) -> Route<'a> {
        if mc.enabled && mc.fleet_endpoint {
            Route::parse_fleet(path).unwrap_or_else(|| Route::parse_multi(path, allow))
        } else if mc.enabled {
            Route::parse_multi(path, allow)
        } else {
            Route::parse_single(path)
        }
    }

    /// Routes a request path (no query string) in multi-cluster mode.
    pub fn parse_multi(path: &'a str, allow: &ClusterAllowlist) -> Route<'a> {
        let named = |name: &'a str, make: fn(Cluster<'a>) -> Route<'a>| {
            if allow.permits(name) {
                make(Cluster::Named(name))
            } else {
                Route::NotFound
            }
        };
        if path == RESOURCE_METADATA_SUFFIX {
            return Route::RootMetadata;
        }
        if let Some(rest) = metadata_rest(path) {
            // `/.well-known/oauth-protected-resource/mcp/{cluster}`
            return match rest.strip_prefix("/mcp/") {
                Some(name) if !name.contains('/') => named(name, Route::ResourceMetadata),
                _ => Route::NotFound,
            };
        }
        let Some(rest) = mcp_rest(path) else {
            return Route::Other;
        };
        let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
        match tail {
            "" => named(name, Route::Mcp),
            t if Some(t) == RESOURCE_METADATA_SUFFIX.strip_prefix('/') => {
                named(name, Route::ResourceMetadata)
            }
            _ => Route::NotFound,
        }
    }

    /// The fleet connector's paths: `/mcp`, `/mcp/`, and its metadata at the
    /// path-inserted `/.well-known/oauth-protected-resource/mcp` and at
    /// `/mcp/.well-known/oauth-protected-resource` (the per-cluster form). `None`: not one
    /// of them (the per-cluster rules decide).
    pub fn parse_fleet(path: &str) -> Option<Route<'a>> {
        match path {
            "/mcp" | "/mcp/" => Some(Route::Mcp(Cluster::Fleet)),
            p if metadata_rest(p) == Some("/mcp") => Some(Route::ResourceMetadata(Cluster::Fleet)),
            p if p.strip_prefix("/mcp") == Some(RESOURCE_METADATA_SUFFIX) => {
                Some(Route::ResourceMetadata(Cluster::Fleet))
            }
            _ => None,
        }
    }

    /// Routes a request path in single-cluster mode: `/mcp`, `/mcp/`, and the metadata
    /// at `/.well-known/oauth-protected-resource` and `.../oauth-protected-resource/mcp`.
    pub fn parse_single(path: &'a str) -> Route<'a> {
        match path {
            "/mcp" | "/mcp/" => Route::Mcp(Cluster::Implicit),
            RESOURCE_METADATA_SUFFIX => Route::ResourceMetadata(Cluster::Implicit),
            p if metadata_rest(p) == Some("/mcp") => Route::ResourceMetadata(Cluster::Implicit),
            p if metadata_rest(p).is_some() || mcp_rest(p).is_some() => Route::NotFound,
            _ => Route::Other,
        }
    }
}

/// What follows the metadata prefix (starting with `/`), or `None` when not under it.
fn metadata_rest(path: &str) -> Option<&str> {
    path.strip_prefix(RESOURCE_METADATA_SUFFIX)
        .filter(|r| r.starts_with('/'))
}

/// What follows `/mcp/` (may be empty), or `None` when the path is not under `/mcp`.
/// `/mcp` itself yields `Some("")`, which no rule accepts, so it is a 404 in multi mode.
fn mcp_rest(path: &str) -> Option<&str> {
    if path == "/mcp" {
        return Some("");
    }
    path.strip_prefix("/mcp/")
}

/// The ClickHouse endpoint of `cluster` (already checked against the allow-list).
///
/// `{cluster}` is replaced in `clickhouse.host` and `clickhouse.connect_host`. A
/// `clusters.<name>` override replaces the host and/or port. When the override names a
/// host, `connect_host` is not used: the override says where this cluster lives, and a
/// shared dial address derived from the template would send it somewhere else.
pub fn endpoint_for(cluster: &str, ch: &ClickHouseConfig, mc: &MultiClusterConfig) -> Endpoint {
    let over = mc.clusters.get(cluster);
    let fill = |template: &str| template.replace(CLUSTER_PLACEHOLDER, cluster);
    let override_host = over.and_then(|o| o.host.as_deref());
    let host = fill(override_host.unwrap_or(&ch.host));
    let connect_host = match override_host {
        Some(_) => None,
        None => Some(fill(&ch.connect_host)).filter(|h| !h.is_empty()),
    };
    Endpoint {
        scheme: ch.scheme(),
        host,
        port: over.and_then(|o| o.port).unwrap_or(ch.port),
        connect_host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterOverride;

    #[test]
    fn cluster_names_follow_rfc1123_labels() {
        for good in ["a", "otel", "a-b", "0", "x".repeat(63).as_str()] {
            assert!(is_valid_cluster_name(good), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "x".repeat(64).as_str(),
            "é",
        ] {
            assert!(!is_valid_cluster_name(bad), "{bad}");
        }
    }

    fn any() -> ClusterAllowlist {
        ClusterAllowlist::default()
    }

    #[test]
    fn mcp_paths_with_and_without_trailing_slash_route_to_the_cluster() {
        assert_eq!(
            Route::parse_multi("/mcp/otel", &any()),
            Route::Mcp(Cluster::Named("otel"))
        );
        assert_eq!(
            Route::parse_multi("/mcp/otel/", &any()),
            Route::Mcp(Cluster::Named("otel"))
        );
    }

    #[test]
    fn both_per_cluster_metadata_paths_route_to_the_cluster_metadata() {
        let want = Route::ResourceMetadata(Cluster::Named("otel"));
        assert_eq!(
            Route::parse_multi("/mcp/otel/.well-known/oauth-protected-resource", &any()),
            want
        );
        assert_eq!(
            Route::parse_multi("/.well-known/oauth-protected-resource/mcp/otel", &any()),
            want
        );
        assert_eq!(
            Route::parse_multi("/.well-known/oauth-protected-resource", &any()),
            Route::RootMetadata
        );
    }

    #[test]
    fn malformed_and_unlisted_names_are_the_same_not_found() {
        let allow = ClusterAllowlist::new(["otel", "antalya"]);
        for path in [
            "/mcp/other",
            "/mcp/Otel",
            "/mcp/ot_el",
            "/mcp/-otel",
            "/mcp/%6ftel",
            "/mcp/",
            "/mcp",
            "/mcp//",
            "/mcp/other/.well-known/oauth-protected-resource",
            "/mcp/OTEL/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp/other",
            "/.well-known/oauth-protected-resource/mcp/Bad",
            "/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource/mcp/otel/x",
            "/mcp/otel/extra",
            "/mcp/otel/.well-known/oauth-protected-resource/x",
        ] {
            assert_eq!(Route::parse_multi(path, &allow), Route::NotFound, "{path}");
        }
        assert_eq!(
            Route::parse_multi("/mcp/antalya", &allow),
            Route::Mcp(Cluster::Named("antalya"))
        );
    }

    #[test]
    fn empty_allowlist_accepts_any_valid_name_only() {
        assert_eq!(
            Route::parse_multi("/mcp/anything-1", &any()),
            Route::Mcp(Cluster::Named("anything-1"))
        );
        assert_eq!(Route::parse_multi("/mcp/Anything", &any()), Route::NotFound);
    }

    #[test]
    fn paths_outside_mcp_and_metadata_are_left_to_other_routers() {
        for path in [
            "/",
            "/health",
            "/metrics",
            "/oauth/token",
            "/mcpx",
            "/.well-known/oauth-authorization-server",
            "/.well-known/oauth-protected-resourcex",
        ] {
            assert_eq!(Route::parse_multi(path, &any()), Route::Other, "{path}");
            assert_eq!(Route::parse_single(path), Route::Other, "{path}");
        }
    }

    #[test]
    fn single_cluster_routes_use_the_implicit_cluster() {
        assert_eq!(Route::parse_single("/mcp"), Route::Mcp(Cluster::Implicit));
        assert_eq!(Route::parse_single("/mcp/"), Route::Mcp(Cluster::Implicit));
        for p in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
        ] {
            assert_eq!(
                Route::parse_single(p),
                Route::ResourceMetadata(Cluster::Implicit),
                "{p}"
            );
        }
        assert_eq!(Route::parse_single("/mcp/otel"), Route::NotFound);
        assert_eq!(
            Route::parse_single("/.well-known/oauth-protected-resource/x"),
            Route::NotFound
        );
    }

    #[test]
    fn fleet_endpoint_serves_mcp_and_its_metadata_only_when_enabled() {
        let allow = ClusterAllowlist::new(["otel"]);
        let mut mc = MultiClusterConfig {
            enabled: true,
            ..Default::default()
        };
        // Off (the default): `/mcp` is the same 404 as any unknown name.
        assert_eq!(Route::of("/mcp", &mc, &allow), Route::NotFound);
        mc.fleet_endpoint = true;
        for p in ["/mcp", "/mcp/"] {
            assert_eq!(Route::of(p, &mc, &allow), Route::Mcp(Cluster::Fleet), "{p}");
        }
        for p in [
            "/.well-known/oauth-protected-resource/mcp",
            "/mcp/.well-known/oauth-protected-resource",
        ] {
            assert_eq!(
                Route::of(p, &mc, &allow),
                Route::ResourceMetadata(Cluster::Fleet),
                "{p}"
            );
        }
        // Per-cluster routes and their 404s are unchanged beside it.
        assert_eq!(
            Route::of("/mcp/otel", &mc, &allow),
            Route::Mcp(Cluster::Named("otel"))
        );
        assert_eq!(Route::of("/mcp/nope", &mc, &allow), Route::NotFound);
        assert_eq!(Cluster::Fleet.mcp_path(), "/mcp");
        assert_eq!(
            Cluster::Fleet.metadata_path(),
            "/.well-known/oauth-protected-resource/mcp"
        );
        assert!(!is_valid_cluster_name(Cluster::Fleet.name()));
    }

    #[test]
    fn cluster_paths_are_built_per_mode() {
        assert_eq!(Cluster::Named("otel").mcp_path(), "/mcp/otel");
        assert_eq!(
            Cluster::Named("otel").metadata_path(),
            "/mcp/otel/.well-known/oauth-protected-resource"
        );
        assert_eq!(Cluster::Implicit.mcp_path(), "/mcp");
        assert_eq!(
            Cluster::Implicit.metadata_path(),
            "/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(Cluster::Implicit.name(), "");
    }

    fn configs() -> (ClickHouseConfig, MultiClusterConfig) {
        let ch = ClickHouseConfig {
            host: "ch-{cluster}.svc".into(),
            connect_host: "{cluster}.internal".into(),
            port: 8123,
            ..Default::default()
        };
        let mut mc = MultiClusterConfig::default();
        mc.clusters.insert(
            "antalya".into(),
            ClusterOverride {
                host: Some("ch-antalya.example".into()),
                port: Some(8443),
                ..Default::default()
            },
        );
        mc.clusters.insert(
            "portonly".into(),
            ClusterOverride {
                host: None,
                port: Some(9000),
                ..Default::default()
            },
        );
        (ch, mc)
    }

    #[test]
    fn endpoint_substitutes_cluster_in_host_and_connect_host() {
        let (ch, mc) = configs();
        let ep = endpoint_for("otel", &ch, &mc);
        assert_eq!(ep.host, "ch-otel.svc");
        assert_eq!(ep.connect_host.as_deref(), Some("otel.internal"));
        assert_eq!((ep.port, ep.scheme), (8123, "http"));
        assert_eq!(ep.key(), "ch-otel.svc:8123");
    }

    #[test]
    fn per_cluster_override_replaces_host_and_port_and_drops_connect_host() {
        let (ch, mc) = configs();
        let ep = endpoint_for("antalya", &ch, &mc);
        assert_eq!(
            (ep.host.as_str(), ep.port, ep.connect_host),
            ("ch-antalya.example", 8443, None)
        );
    }

    #[test]
    fn port_only_override_keeps_the_template_host() {
        let (ch, mc) = configs();
        let ep = endpoint_for("portonly", &ch, &mc);
        assert_eq!((ep.host.as_str(), ep.port), ("ch-portonly.svc", 9000));
        assert_eq!(ep.connect_host.as_deref(), Some("portonly.internal"));
    }

    #[test]
    fn every_placeholder_is_replaced_and_tls_sets_the_scheme() {
        let (mut ch, mc) = configs();
        ch.host = "{cluster}.{cluster}.db".into();
        ch.connect_host = String::new();
        ch.tls.enabled = true;
        let ep = endpoint_for("a", &ch, &mc);
        assert_eq!(
            (ep.host.as_str(), ep.scheme, ep.connect_host),
            ("a.a.db", "https", None)
        );
    }
}

//! Who a request runs as, and where: the principal (static credentials or the caller's
//! token), the caller named in `log_comment`, roles, and the catalog key.

use std::time::SystemTime;

use super::claims::{username_from_claims, Claims, ClaimsError};
use super::roles::{RoleError, RolePolicy};
use crate::catalog::CatalogKey;
use crate::clickhouse::{Credentials, Endpoint};
use crate::config::{Config, Secret, DEFAULT_CLUSTER};
use crate::fingerprint::short_fingerprint;
use crate::routing::FLEET_CLUSTER;

/// Who is calling, as written into `log_comment` and the audit line.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub subject: String,
    pub email: Option<String>,
}

/// Whose credentials a request carries.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Static user and password from the configuration (OAuth off).
    Static(Credentials),
    /// The caller's bearer: sent as Bearer or Basic, as the endpoint's probe found.
    Token {
        token: Secret,
        /// The `oauth.username_claim` value, needed only for Basic.
        username: Result<String, ClaimsError>,
    },
}

/// Who a request runs as, and where.
#[derive(Debug, Clone)]
pub struct RequestIdentity {
    pub cluster: String,
    pub endpoint: Endpoint,
    pub principal: Principal,
    pub caller: Caller,
    pub roles: Vec<String>,
    /// Catalog cache key: bound to the credential itself, never to claims.
    pub catalog_key: CatalogKey,
    /// The token's `exp`: no cached catalog outlives it.
    pub expires: Option<SystemTime>,
    /// The sha256 of the bearer this request presented (the sealed token itself in
    /// sealed mode), computed once by the gate: the cancellation scope
    /// (`inflight::bearer_scope`). None for the static identity.
    pub presented_sha256: Option<[u8; 32]>,
}

impl RequestIdentity {
    /// A fleet-connector request (`/mcp` with `multicluster.fleet_endpoint`): no cluster
    /// until a call names one.
    pub fn is_fleet(&self) -> bool {
        self.cluster == FLEET_CLUSTER
    }

    /// The identity `/mcp/{cluster}` would give the same caller with the same bearer:
    /// that cluster's endpoint (so its Bearer/Basic probe memory), the same principal and
    /// roles, and the catalog key `sha256(token) + cluster`.
    pub fn for_cluster(&self, cluster: &str, endpoint: Endpoint) -> Self {
        Self {
            cluster: cluster.to_string(),
            endpoint,
            catalog_key: self.catalog_key.for_cluster(cluster),
            ..self.clone()
        }
    }
}

/// What the gateway takes from a caller's token: everything from verified claims, and
/// from an unverified token (`validate_tokens: false`) nothing at all — no Basic
/// username (so only Bearer is sent: ClickHouse judges the token itself), no roles, no
/// name in log lines (a fingerprint instead), no cache lifetime (docs/spec-notes.md, "The gate").
#[derive(Debug, Clone)]
pub struct TokenIdentity {
    pub caller: Caller,
    pub roles: Vec<String>,
    /// The Basic username; `Err` when the token names none, or was not verified.
    pub username: Result<String, ClaimsError>,
    /// The verified `exp`.
    pub expires: Option<SystemTime>,
}

impl TokenIdentity {
    /// Pure: `verified` is `Some` only with claims the JWKS check returned;
    /// `token_sha256` is the token's digest the gate computed once for the request.
    pub fn of(
        verified: Option<&Claims>,
        token_sha256: &[u8; 32],
        oauth: &crate::config::OAuthConfig,
        roles: &RolePolicy,
    ) -> Result<Self, RoleError> {
        let anonymous = || format!("token:{}", short_fingerprint(token_sha256));
        match verified {
            Some(claims) => Ok(Self {
                caller: Caller {
                    subject: claims.sub().map(str::to_string).unwrap_or_else(anonymous),
                    email: claims.email().map(str::to_string),
                },
                roles: roles.roles(claims)?,
                username: username_from_claims(claims, &oauth.username_claim),
                expires: claims.expires_at(),
            }),
            None => Ok(Self {
                caller: Caller {
                    subject: anonymous(),
                    email: None,
                },
                // A role policy fails closed on a token it cannot read (the
                // configuration refuses role_claim without validate_tokens anyway).
                roles: roles.roles(&Claims::default())?,
                username: Err(ClaimsError::Unverified),
                expires: None,
            }),
        }
    }
}

/// The identity of a request in static-credential mode (OAuth off, and stdio).
pub fn static_identity(config: &Config) -> RequestIdentity {
    let c = &config.clickhouse;
    RequestIdentity {
        cluster: DEFAULT_CLUSTER.into(),
        endpoint: Endpoint::from_config(c),
        principal: Principal::Static(Credentials::Basic {
            user: c.username.clone(),
            password: c.password.clone(),
        }),
        caller: Caller {
            subject: c.username.clone(),
            email: None,
        },
        roles: Vec::new(),
        catalog_key: CatalogKey::new(
            &format!("static\0{}\0{}", c.username, c.password.expose()),
            "",
        ),
        expires: None,
        presented_sha256: None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fingerprint::{sha256, token_fingerprint};

    fn oauth() -> crate::config::OAuthConfig {
        crate::config::OAuthConfig {
            username_claim: "preferred_username".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_fleet_identity_becomes_exactly_what_the_cluster_route_would_build() {
        let mut fleet = static_identity(&Config::default());
        fleet.cluster = FLEET_CLUSTER.into();
        fleet.principal = Principal::Token {
            token: Secret::new("raw.jwt.sig"),
            username: Ok("alice".into()),
        };
        fleet.catalog_key = CatalogKey::new("raw.jwt.sig", FLEET_CLUSTER);
        assert!(fleet.is_fleet());
        let ep = Endpoint {
            host: "ch-b".into(),
            ..fleet.endpoint.clone()
        };
        let b = fleet.for_cluster("b", ep.clone());
        assert!(!b.is_fleet());
        assert_eq!(b.cluster, "b");
        assert_eq!(b.endpoint, ep);
        // The key `/mcp/b` builds from the same bearer: one cache entry for both routes.
        assert_eq!(b.catalog_key, CatalogKey::new("raw.jwt.sig", "b"));
        assert!(
            matches!(b.principal, Principal::Token { ref username, .. } if username.as_deref() == Ok("alice"))
        );
    }

    #[test]
    fn an_unverified_token_names_nobody() {
        // What a forged token claims must not become a Basic username, a role, a
        // logged subject or a cache lifetime.
        let id = TokenIdentity::of(
            None,
            &sha256(b"forged.token.sig"),
            &oauth(),
            &RolePolicy::new("", "").unwrap(),
        )
        .expect("no role policy");
        assert!(matches!(id.username, Err(ClaimsError::Unverified)));
        assert!(id.roles.is_empty());
        assert_eq!(
            id.caller.subject,
            format!("token:{}", token_fingerprint("forged.token.sig"))
        );
        assert_eq!(id.caller.email, None);
        assert_eq!(id.expires, None);
        // A role policy on an unverified token fails closed.
        assert!(TokenIdentity::of(
            None,
            &sha256(b"t"),
            &oauth(),
            &RolePolicy::new("groups", "").unwrap()
        )
        .is_err());
    }

    #[test]
    fn a_verified_token_names_its_user_roles_and_expiry() {
        let claims = Claims::from_map(
            serde_json::json!({"sub": "u1", "email": "a@x.io", "preferred_username": "alice",
                               "groups": ["analyst"], "exp": 1_800_000_000})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        );
        let id = TokenIdentity::of(
            Some(&claims),
            &sha256(b"t"),
            &oauth(),
            &RolePolicy::new("groups", "").unwrap(),
        )
        .expect("roles");
        assert_eq!(id.username.as_deref(), Ok("alice"));
        assert_eq!(id.roles, ["analyst"]);
        assert_eq!(id.caller.subject, "u1");
        assert_eq!(id.caller.email.as_deref(), Some("a@x.io"));
        assert_eq!(
            id.expires,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
    }
}

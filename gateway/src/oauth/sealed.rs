//! Sealed access tokens (`server.oauth.token_mode: sealed`, the default in broker mode).
//!
//! Handing MCP clients the IdP's own token is "token passthrough", which the MCP
//! authorization spec forbids: a token leaked from a client's logs or config would be a
//! working ClickHouse credential, for every cluster and anything else that trusts the IdP.
//! So `/oauth/token` hands out a token of the gateway's own: `chmcp_at.` followed by a
//! [`Kind::AccessToken`] artifact of the broker's sealer (AES-256-GCM under the key HKDF
//! derives from `signing_secret` with the label `chmcp/broker/access-token`). Inside: the
//! upstream token ClickHouse accepts, who it names, when it ends (never after the
//! upstream token) and the resource it was issued for. Only a gateway holding the secret
//! can read it, and only the gateway turns it back into the upstream token.
//!
//! The prefix has one dot, so a sealed token never has a JWT's shape and the gate can
//! tell at a glance that a raw IdP JWT is not one of ours.
//!
//! Pure: the sealer, the payload and the clock go in; no I/O. The broker mints
//! (`seal_access_token`), the gate opens (`SealedGate::admit`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::broker::crypto::{Kind, SealError, Sealer};
use super::broker::same_resource;
use super::gate::{self, GateRejection, ServingContext};
use crate::config::OAuthConfig;
use crate::identity::claims::Claims;
use crate::routing::Cluster;

/// What every sealed access token starts with.
pub const PREFIX: &str = "chmcp_at.";

/// The payload of a sealed access token. Field names are one letter: the token travels
/// in every request header.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedAccess {
    /// The upstream token ClickHouse accepts (what `pick_token` chose).
    #[serde(rename = "u")]
    pub upstream: String,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Unix seconds; never later than the upstream token's own expiry.
    #[serde(rename = "x")]
    pub expires: u64,
    /// The RFC 8707 resource it was issued for; `None`: every resource of this gateway.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The upstream token's claims as the broker verified them when minting (JWKS,
    /// `iss`, `aud` = `oauth.audience`, `exp`); `None` under `validate_tokens: false`.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Map<String, Value>>,
}

// Manual: a derived Debug would print the upstream token.
impl std::fmt::Debug for SealedAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedAccess")
            .field(
                "upstream",
                &format_args!(
                    "sha256:{}…",
                    crate::fingerprint::token_fingerprint(&self.upstream)
                ),
            )
            .field("subject", &self.subject)
            .field("expires", &self.expires)
            .field("resource", &self.resource)
            .field("verified", &self.claims.is_some())
            .finish()
    }
}

impl SealedAccess {
    /// The claims the gate may use: verified by the broker at minting, and unaltered
    /// since (the seal authenticates them).
    pub fn verified_claims(&self) -> Option<Claims> {
        self.claims.clone().map(Claims::from_map)
    }
}

/// What the broker seals after a code or refresh grant.
pub struct Grant<'a> {
    pub upstream: &'a str,
    /// Seconds the upstream token lives, as `pick_token` worked it out.
    pub ttl: u64,
    /// The upstream token's verified claims (`validate_tokens`), if checked.
    pub claims: Option<&'a Claims>,
    /// Verified claims naming the person when `claims` is `None` (the id_token).
    pub identity: Option<&'a Claims>,
    pub resource: Option<&'a str>,
}

/// A freshly sealed token and the `expires_in` that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub token: String,
    pub expires_in: u64,
}

/// Seals `grant` as an access token valid until the earlier of `now + ttl` and the
/// upstream token's verified `exp`. An upstream token with no time left is refused:
/// the client would get a token that is dead on arrival.
pub fn seal_access_token(
    sealer: &Sealer,
    grant: &Grant<'_>,
    now: u64,
) -> Result<Minted, SealError> {
    let mut expires = now.saturating_add(grant.ttl);
    if let Some(exp) = grant.claims.and_then(Claims::exp) {
        expires = expires.min(exp);
    }
    if expires <= now {
        return Err(SealError::Expired);
    }
    let who = grant.claims.or(grant.identity);
    let payload = SealedAccess {
        upstream: grant.upstream.to_string(),
        subject: who.and_then(Claims::sub).map(str::to_string),
        email: who.and_then(Claims::email).map(str::to_string),
        expires,
        resource: grant.resource.map(str::to_string),
        claims: grant.claims.map(|c| c.as_map().clone()),
    };
    let sealed = sealer.seal(Kind::AccessToken, &payload, expires)?;
    Ok(Minted {
        token: format!("{PREFIX}{sealed}"),
        expires_in: expires - now,
    })
}

/// Why a bearer is not a usable sealed token. Descriptions go to the client in the
/// challenge: they say what to do, and nothing about the token's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealedProblem {
    #[error("this gateway accepts only the access tokens it issues (token_mode: sealed): sign in again through its authorization server")]
    NotSealed,
    #[error("the access token is not valid (altered, or issued under another signing secret)")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the access token was issued for another MCP resource: sign in for this one")]
    OtherResource,
}

/// Opens a bearer as a sealed access token and checks its integrity and expiry.
pub fn open_access_token(
    sealer: &Sealer,
    token: &str,
    now: u64,
) -> Result<SealedAccess, SealedProblem> {
    let sealed = token.strip_prefix(PREFIX).ok_or(SealedProblem::NotSealed)?;
    let access: SealedAccess =
        sealer
            .open(Kind::AccessToken, sealed, now)
            .map_err(|e| match e {
                SealError::Expired => SealedProblem::Expired,
                _ => SealedProblem::Invalid,
            })?;
    // The envelope carries the same expiry; checked again so the rule is stated here.
    if access.expires < now {
        return Err(SealedProblem::Expired);
    }
    Ok(access)
}

/// The public URL of `cluster`'s MCP endpoint under `public_auth_server_url`: the
/// per-cluster resource (audience) of sealed mode. `None` without a public URL.
pub fn resource_url(oauth: &OAuthConfig, cluster: Cluster<'_>) -> Option<String> {
    match oauth.public_auth_server_url.trim_end_matches('/') {
        "" => None,
        base => Some(format!("{base}{}", cluster.mcp_path())),
    }
}

/// Whether a token issued for `granted` may be used on `cluster`: no resource or the
/// shared `public_resource_url` means every cluster; otherwise only the cluster whose
/// URL it names.
pub fn resource_allows(granted: Option<&str>, oauth: &OAuthConfig, cluster: Cluster<'_>) -> bool {
    let Some(g) = granted else {
        return true;
    };
    let shared = &oauth.public_resource_url;
    (!shared.is_empty() && same_resource(g, shared))
        || resource_url(oauth, cluster).is_some_and(|own| same_resource(g, &own))
}

/// The gate's half of sealed mode, built once per configuration generation.
pub struct SealedGate {
    sealer: Sealer,
}

impl SealedGate {
    /// `Some` only in broker mode with `token_mode: sealed`.
    pub fn for_config(oauth: &OAuthConfig) -> Result<Option<Self>, SealError> {
        if !oauth.sealed_tokens() {
            return Ok(None);
        }
        Ok(Some(Self {
            sealer: Sealer::new(oauth.signing_secret.expose().as_bytes())?,
        }))
    }

    /// The sealed token checked — integrity, expiry, resource — with no JWKS round trip
    /// (the broker verified the upstream token when it sealed it). Anything else,
    /// a raw IdP token included, is `401` with this resource's challenge.
    pub fn admit(
        &self,
        oauth: &OAuthConfig,
        ctx: &ServingContext<'_>,
        token: &str,
        now: u64,
    ) -> Result<SealedAccess, GateRejection> {
        open_access_token(&self.sealer, token, now)
            .and_then(|a| {
                if resource_allows(a.resource.as_deref(), oauth, ctx.cluster) {
                    Ok(a)
                } else {
                    Err(SealedProblem::OtherResource)
                }
            })
            .map_err(|p| gate::invalid_token(oauth, ctx, &p.to_string()))
    }
}

/// The gate's hook, one call on the request path: `None` outside sealed mode (the bearer
/// is judged as before); in sealed mode the opened token, or the `401`.
pub fn admit(
    sealed: Option<&SealedGate>,
    oauth: &OAuthConfig,
    ctx: &ServingContext<'_>,
    token: &str,
) -> Result<Option<SealedAccess>, GateRejection> {
    sealed
        .map(|g| g.admit(oauth, ctx, token, super::broker::now()))
        .transpose()
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    use super::*;
    use crate::identity::claims::UnverifiedPayload;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;
    const UPSTREAM: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";

    fn claims(exp: u64) -> Claims {
        Claims::from_map(
            json!({"sub": "u1", "email": "alice@example.com", "exp": exp, "scope": "mcp:read"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
    }

    fn oauth() -> OAuthConfig {
        OAuthConfig {
            enabled: true,
            broker: true,
            public_auth_server_url: "https://mcp.example.com/".into(),
            signing_secret: crate::config::Secret::new(std::str::from_utf8(SECRET).unwrap()),
            ..OAuthConfig::default()
        }
    }

    fn mint(c: Option<&Claims>, ttl: u64, resource: Option<&str>) -> Minted {
        let grant = Grant {
            upstream: UPSTREAM,
            ttl,
            claims: c,
            identity: None,
            resource,
        };
        seal_access_token(&Sealer::new(SECRET).unwrap(), &grant, NOW).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_to_the_upstream_token_its_claims_and_resource() {
        let c = claims(NOW + 600);
        let m = mint(Some(&c), 300, Some("https://mcp.example.com/mcp/otel"));
        assert_eq!(m.expires_in, 300);
        let a = open_access_token(&Sealer::new(SECRET).unwrap(), &m.token, NOW + 10).unwrap();
        assert_eq!(a.upstream, UPSTREAM);
        assert_eq!(a.subject.as_deref(), Some("u1"));
        assert_eq!(a.email.as_deref(), Some("alice@example.com"));
        assert_eq!(a.expires, NOW + 300);
        assert_eq!(
            a.resource.as_deref(),
            Some("https://mcp.example.com/mcp/otel")
        );
        assert_eq!(a.verified_claims(), Some(c));
    }

    #[test]
    fn the_token_is_opaque_and_not_shaped_like_a_jwt() {
        let m = mint(Some(&claims(NOW + 600)), 300, None);
        assert!(m.token.starts_with(PREFIX));
        assert_eq!(m.token.matches('.').count(), 1, "{}", m.token);
        assert!(UnverifiedPayload::decode(&m.token).is_err());
        let raw = URL_SAFE_NO_PAD.decode(&m.token[PREFIX.len()..]).unwrap();
        for w in UPSTREAM.as_bytes().windows(16) {
            assert!(
                !raw.windows(16).any(|r| r == w),
                "upstream bytes in the token"
            );
        }
        assert!(!m.token.contains("alice"));
    }

    #[test]
    fn expiry_never_exceeds_the_upstream_tokens() {
        let m = mint(Some(&claims(NOW + 60)), 3600, None);
        assert_eq!(
            m.expires_in, 60,
            "the upstream exp wins over a longer expires_in"
        );
        let s = Sealer::new(SECRET).unwrap();
        assert!(open_access_token(&s, &m.token, NOW + 60).is_ok());
        assert_eq!(
            open_access_token(&s, &m.token, NOW + 61).unwrap_err(),
            SealedProblem::Expired
        );
        let dead = Grant {
            upstream: UPSTREAM,
            ttl: 300,
            claims: Some(&claims(NOW)),
            identity: None,
            resource: None,
        };
        assert_eq!(
            seal_access_token(&s, &dead, NOW).unwrap_err(),
            SealError::Expired
        );
    }

    #[test]
    fn one_altered_byte_or_another_secret_is_invalid() {
        let m = mint(Some(&claims(NOW + 600)), 300, None);
        let s = Sealer::new(SECRET).unwrap();
        let body = &m.token[PREFIX.len()..];
        let mut raw = URL_SAFE_NO_PAD.decode(body).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x01;
        let altered = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(
            open_access_token(&s, &altered, NOW).unwrap_err(),
            SealedProblem::Invalid
        );
        let other = Sealer::new(b"another-secret-of-at-least-32-bytes!").unwrap();
        assert_eq!(
            open_access_token(&other, &m.token, NOW).unwrap_err(),
            SealedProblem::Invalid
        );
    }

    #[test]
    fn raw_jwts_and_other_kinds_of_our_artifacts_are_refused() {
        let s = Sealer::new(SECRET).unwrap();
        assert_eq!(
            open_access_token(&s, UPSTREAM, NOW).unwrap_err(),
            SealedProblem::NotSealed
        );
        // A refresh-token wrapper presented as a bearer (with the prefix added).
        let refresh = s.seal(Kind::RefreshToken, &json!({"u": "x"}), 0).unwrap();
        assert_eq!(
            open_access_token(&s, &format!("{PREFIX}{refresh}"), NOW).unwrap_err(),
            SealedProblem::Invalid
        );
    }

    #[test]
    fn a_cluster_token_serves_its_cluster_and_a_shared_one_serves_all() {
        let o = oauth();
        let otel = Some("https://mcp.example.com/mcp/otel");
        assert!(resource_allows(otel, &o, Cluster::Named("otel")));
        assert!(resource_allows(
            Some("https://mcp.example.com/mcp/otel/"),
            &o,
            Cluster::Named("otel")
        ));
        assert!(!resource_allows(otel, &o, Cluster::Named("antalya")));
        assert!(resource_allows(None, &o, Cluster::Named("antalya")));
        let shared = OAuthConfig {
            public_resource_url: "https://mcp.example.com/".into(),
            ..oauth()
        };
        assert!(resource_allows(
            Some("https://mcp.example.com"),
            &shared,
            Cluster::Named("antalya")
        ));
        assert!(!resource_allows(
            Some("https://elsewhere.example.com/mcp/otel"),
            &shared,
            Cluster::Named("otel")
        ));
        assert_eq!(
            resource_url(&o, Cluster::Implicit).as_deref(),
            Some("https://mcp.example.com/mcp")
        );
    }

    #[test]
    fn the_fleet_connector_takes_only_its_own_or_the_shared_audience() {
        // A token minted for one cluster must not open every cluster through `/mcp`;
        // a token minted for `/mcp` must not be taken by one cluster's URL either.
        let o = oauth();
        let otel = Some("https://mcp.example.com/mcp/otel");
        let fleet = Some("https://mcp.example.com/mcp");
        assert!(!resource_allows(otel, &o, Cluster::Fleet));
        assert!(resource_allows(fleet, &o, Cluster::Fleet));
        assert!(!resource_allows(fleet, &o, Cluster::Named("otel")));
        let shared = OAuthConfig {
            public_resource_url: "https://shared.example.com/".into(),
            ..oauth()
        };
        assert!(resource_allows(
            Some("https://shared.example.com"),
            &shared,
            Cluster::Fleet
        ));
    }

    #[test]
    fn the_gate_refuses_another_clusters_token_with_this_clusters_challenge() {
        let o = oauth();
        let g = SealedGate::for_config(&o).unwrap().expect("sealed mode");
        let m = mint(
            Some(&claims(NOW + 600)),
            300,
            Some("https://mcp.example.com/mcp/otel"),
        );
        let ctx = |c| ServingContext {
            request_scheme: "http",
            host: "mcp.example.com",
            cluster: c,
        };
        assert!(g
            .admit(&o, &ctx(Cluster::Named("otel")), &m.token, NOW)
            .is_ok());
        let r = g
            .admit(&o, &ctx(Cluster::Named("antalya")), &m.token, NOW)
            .unwrap_err();
        assert_eq!(r.status, 401);
        assert!(
            r.www_authenticate
                .contains("/mcp/antalya/.well-known/oauth-protected-resource")
                && r.www_authenticate.contains("another MCP resource"),
            "{}",
            r.www_authenticate
        );
        let passthrough = OAuthConfig {
            token_mode: crate::config::TokenMode::Passthrough,
            ..oauth()
        };
        assert!(SealedGate::for_config(&passthrough).unwrap().is_none());
        // The request-path hook: nothing to open outside sealed mode, the 401 inside it.
        assert_eq!(
            admit(None, &o, &ctx(Cluster::Named("otel")), UPSTREAM).unwrap(),
            None
        );
        assert_eq!(
            admit(Some(&g), &o, &ctx(Cluster::Named("otel")), UPSTREAM)
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn debug_never_shows_the_upstream_token() {
        let s = Sealer::new(SECRET).unwrap();
        let m = mint(None, 300, None);
        let a = open_access_token(&s, &m.token, NOW).unwrap();
        let shown = format!("{a:?}");
        assert!(!shown.contains(UPSTREAM), "{shown}");
        assert!(a.verified_claims().is_none());
    }
}

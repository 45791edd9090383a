//! The gate's orchestration: from a request's `Authorization` header to the identity it
//! runs as. The pure checks live in `oauth::gate`; this adds the signature check (JWKS)
//! and reads claims, roles and the cluster's endpoint from what the configuration
//! generation lends ([`GateEnv`]). The HTTP step that calls it is `http::gate`.

use std::time::SystemTime;

use axum::http::{header, HeaderMap};

use super::claims::Claims;
use super::request::{Principal, RequestIdentity, TokenIdentity};
use super::roles::RolePolicy;
use crate::catalog::CatalogKey;
use crate::clickhouse::Endpoint;
use crate::config::{Config, OAuthConfig, Secret, DEFAULT_CLUSTER};
use crate::fingerprint::sha256;
use crate::oauth::exp_memo::ExpMemo;
use crate::oauth::gate::{self, GateRejection, ServingContext};
use crate::oauth::jwks::{self, JwksCache};
use crate::oauth::sealed::SealedGate;
use crate::routing::{endpoint_for, Cluster, FLEET_CLUSTER};

/// What the gate reads from one configuration generation, lent by
/// `app::App::gate_env` (the gate never sees the rest of the generation).
#[derive(Clone, Copy)]
pub struct GateEnv<'a> {
    pub config: &'a Config,
    /// Sealed token mode: opens the gateway's own access tokens (`oauth::sealed`).
    pub sealed: Option<&'a SealedGate>,
    pub roles: &'a RolePolicy,
    /// The IdP's keys, when the gateway checks bearer signatures (`validate_tokens`).
    pub jwks: Option<&'a JwksCache>,
    /// Each bearer's stated `exp`, decoded once per token (`oauth::exp_memo`).
    pub exp_memo: &'a ExpMemo,
}

/// The gate and the identity of a request under OAuth: a bearer from the header
/// that is not expired, its username and roles, and where its cluster lives.
pub async fn identify(
    env: GateEnv<'_>,
    headers: &HeaderMap,
    cluster: Cluster<'_>,
) -> Result<RequestIdentity, GateRejection> {
    let oauth = &env.config.server.oauth;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ctx = ServingContext {
        request_scheme: "http",
        host,
        cluster,
    };
    let (admitted, presented) = gate::admit(headers, oauth, &ctx, SystemTime::now(), env.exp_memo)?;
    // Sealed mode: the bearer is the gateway's own token; from here on the upstream
    // token inside it is the credential (ClickHouse, catalog key), and its claims are
    // the ones the broker verified before sealing.
    let sealed = crate::oauth::sealed::admit(env.sealed, oauth, &ctx, admitted.token)?;
    let token = sealed
        .as_ref()
        .map_or(admitted.token, |s| s.upstream.as_str());
    let verified = match &sealed {
        Some(s) => s.verified_claims(),
        None if oauth.validate_tokens => Some(verify_token(env.jwks, oauth, &ctx, token).await?),
        None => None,
    };
    if let Some(claims) = &verified {
        gate::check_required_scopes(oauth, &ctx, claims)?;
    }
    // One sha256 of the bearer per request (the gate's) serves the exp memo, the catalog
    // key, the anonymous caller's fingerprint and the cancellation scope; sealed mode
    // hashes its upstream token apart, since the scope stays keyed by the credential the
    // caller presented.
    let token_sha256 = if sealed.is_some() {
        sha256(token.as_bytes())
    } else {
        presented
    };
    let known = TokenIdentity::of(verified.as_ref(), &token_sha256, oauth, env.roles)
        .map_err(|e| gate::forbidden(oauth, &ctx, &e.to_string()))?;
    // The fleet connector's identity names no cluster yet: each call derives the one
    // `/mcp/{cluster}` would build (`RequestIdentity::for_cluster`); its endpoint here
    // is never dialled.
    let endpoint = match cluster {
        Cluster::Named(name) => {
            endpoint_for(name, &env.config.clickhouse, &env.config.multicluster)
        }
        Cluster::Implicit | Cluster::Fleet => Endpoint::from_config(&env.config.clickhouse),
    };
    Ok(RequestIdentity {
        cluster: match cluster {
            Cluster::Named(n) => n.to_string(),
            Cluster::Implicit => DEFAULT_CLUSTER.to_string(),
            Cluster::Fleet => FLEET_CLUSTER.to_string(),
        },
        endpoint,
        caller: known.caller,
        roles: known.roles,
        catalog_key: CatalogKey::of_digest(token_sha256, cluster.name()),
        expires: known.expires,
        presented_sha256: Some(presented),
        principal: Principal::Token {
            token: Secret::new(token),
            username: known.username,
        },
    })
}

/// `validate_tokens`: signature (JWKS, refetched on an unknown `kid`, rate-limited),
/// `iss`, `aud` and `exp`, before anything reaches ClickHouse. Fails closed; the
/// claims it returns are the only ones the gateway ever reads. Every check of the
/// token's own validity belongs here.
pub async fn verify_token(
    jwks: Option<&JwksCache>,
    oauth: &OAuthConfig,
    ctx: &ServingContext<'_>,
    token: &str,
) -> Result<Claims, GateRejection> {
    let Some(jwks) = jwks else {
        return Err(gate::invalid_token(
            oauth,
            ctx,
            "token validation is not available",
        ));
    };
    let kid = jwks::peek_kid(token).map_err(|e| gate::invalid_token(oauth, ctx, &e.to_string()))?;
    let keys = jwks.keys_for(kid.as_deref()).await.map_err(|e| {
        tracing::warn!(error = ?e.to_string(), "cannot load the IdP's keys; refusing the token");
        gate::invalid_token(
            oauth,
            ctx,
            "the identity provider's keys are unavailable; try again shortly",
        )
    })?;
    let expect = jwks::Expectations {
        issuer: oauth.issuer.clone(),
        audience: oauth.audience.clone(),
        leeway_secs: gate::EXP_LEEWAY.as_secs(),
        // Scopes are judged by the gate, so a missing one is a 403, not a 401.
        required_scopes: Vec::new(),
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    jwks::validate_jwt(token, &keys, &expect, now)
        .map_err(|e| gate::invalid_token(oauth, ctx, &e.to_string()))
}

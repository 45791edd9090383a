//! The gate's orchestration: from a request's `Authorization` header to the identity it
//! runs as. The pure checks live in `oauth::gate`; this adds the signature check (JWKS)
//! and reads claims, roles and the cluster's endpoint from one configuration generation.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Extension;

use super::claims::Claims;
use super::request::{static_identity, Principal, RequestIdentity, TokenIdentity, DEFAULT_CLUSTER};
use crate::app::Runtime;
use crate::catalog::CatalogKey;
use crate::clickhouse::Endpoint;
use crate::config::{OAuthConfig, Secret};
use crate::oauth::gate::{self, GateRejection, ServingContext};
use crate::oauth::jwks;
use crate::reply::json_response;
use crate::routing::{endpoint_for, Cluster, RoutedCluster, FLEET_CLUSTER};
use crate::telemetry::trace::{self, SpanKind};

/// Pipeline step "gate": every MCP message passes it (clients re-authenticate instead
/// of working with a stale or expired identity). Puts the [`RequestIdentity`] into the
/// request's extensions, or answers 401/403 with the challenge.
pub async fn require_identity(
    Extension(rt): Extension<Arc<Runtime>>,
    Extension(routed): Extension<RoutedCluster>,
    mut req: Request,
    next: Next,
) -> Response {
    let identity = if rt.config.server.oauth.enabled {
        let gate = identify(&rt, req.headers(), routed.cluster());
        let checked = trace::child("gate", SpanKind::Internal, async {
            let r = gate.await;
            if let Err(g) = &r {
                trace::set_error(&format!("refused: {}", g.status_code()));
            }
            r
        })
        .await;
        match checked {
            Ok(i) => i,
            Err(g) => return gate_response(g),
        }
    } else {
        static_identity(&rt.config)
    };
    req.extensions_mut().insert(identity);
    next.run(req).await
}

fn gate_response(g: GateRejection) -> Response {
    let mut r = json_response(g.status_code(), &g.body);
    if let Ok(v) = HeaderValue::from_str(&g.www_authenticate) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// The gate and the identity of a request under OAuth: a bearer from the header
/// that is not expired, its username and roles, and where its cluster lives.
pub async fn identify(
    rt: &Runtime,
    headers: &HeaderMap,
    cluster: Cluster<'_>,
) -> Result<RequestIdentity, GateRejection> {
    let oauth = &rt.config.server.oauth;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ctx = ServingContext {
        request_scheme: "http",
        host,
        cluster,
    };
    let admitted = gate::admit(headers, oauth, &ctx, SystemTime::now())?;
    // Sealed mode: the bearer is the gateway's own token; from here on the upstream
    // token inside it is the credential (ClickHouse, catalog key), and its claims are
    // the ones the broker verified before sealing.
    let sealed = crate::oauth::sealed::admit(rt.sealed.as_ref(), oauth, &ctx, admitted.token)?;
    let token = sealed
        .as_ref()
        .map_or(admitted.token, |s| s.upstream.as_str());
    let verified = match &sealed {
        Some(s) => s.verified_claims(),
        None if oauth.validate_tokens => Some(verify_token(rt, oauth, &ctx, token).await?),
        None => None,
    };
    if let Some(claims) = &verified {
        gate::check_required_scopes(oauth, &ctx, claims)?;
    }
    let known = TokenIdentity::of(verified.as_ref(), token, oauth, &rt.roles)
        .map_err(|e| gate::forbidden(oauth, &ctx, &e.to_string()))?;
    // The fleet connector's identity names no cluster yet: each call derives the one
    // `/mcp/{cluster}` would build (`RequestIdentity::for_cluster`); its endpoint here
    // is never dialled.
    let endpoint = match cluster {
        Cluster::Named(name) => endpoint_for(name, &rt.config.clickhouse, &rt.config.multicluster),
        Cluster::Implicit | Cluster::Fleet => Endpoint::from_config(&rt.config.clickhouse),
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
        catalog_key: CatalogKey::new(token, cluster.name()),
        expires: known.expires,
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
    rt: &Runtime,
    oauth: &OAuthConfig,
    ctx: &ServingContext<'_>,
    token: &str,
) -> Result<Claims, GateRejection> {
    let Some(jwks) = &rt.jwks else {
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

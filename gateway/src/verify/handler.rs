//! The HTTP edge: `/verify` (GET and POST), `/healthz`, `/readyz`, `/metrics`, and the
//! [`Verifier`] that decides one request: header → cache → keys → token → identity.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::cache::{positive_ttl, ResultCache, Verdict};
use super::checks::{
    check_identity, parse_basic, session_settings, BasicCredentials, Denial, HeaderProblem,
    Settings, TokenDigest,
};
use super::config::VerifyConfig;
use super::metrics::{Metrics, RequestOutcome};
use crate::oauth::jwks::peek_kid;
use crate::oauth::{validate_jwt, Expectations, JwksCache, JwksError};

/// The answer to one `/verify` request.
#[derive(Debug)]
pub enum Answer {
    /// 200 with the session settings.
    Allowed {
        settings: Arc<Settings>,
        cached: bool,
    },
    /// 403: a check failed.
    Denied { denial: Denial, cached: bool },
    /// 401: no usable Basic credentials.
    Unauthorized(HeaderProblem),
    /// 503: the IdP's keys could not be had, so nothing could be checked. Not cached.
    Unavailable(JwksError),
}

impl Answer {
    fn outcome(&self) -> RequestOutcome {
        match self {
            Self::Allowed { .. } => RequestOutcome::Allowed,
            Self::Denied { .. } => RequestOutcome::Denied,
            Self::Unauthorized(_) => RequestOutcome::Unauthorized,
            Self::Unavailable(_) => RequestOutcome::Unavailable,
        }
    }

    fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Allowed { .. } => None,
            Self::Denied { denial, .. } => Some(denial.code()),
            Self::Unauthorized(p) => Some(p.code()),
            Self::Unavailable(_) => Some("jwks_unavailable"),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        // Bodies carry a stable code and a short sentence; never any part of the token.
        match self {
            Self::Allowed { settings, .. } => (StatusCode::OK, Json(json!({ "settings": &*settings }))).into_response(),
            Self::Denied { denial, .. } => (
                StatusCode::FORBIDDEN,
                Json(json!({"error": "forbidden", "reason": denial.code(), "message": denial.to_string()})),
            )
                .into_response(),
            Self::Unauthorized(p) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"chmcp-verify\""))],
                Json(json!({"error": "unauthorized", "reason": p.code(), "message": p.to_string()})),
            )
                .into_response(),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "unavailable", "reason": "jwks_unavailable", "message": "the IdP's keys cannot be loaded"})),
            )
                .into_response(),
        }
    }
}

/// Everything a request needs, shared by all requests.
pub struct Verifier {
    config: VerifyConfig,
    expectations: Expectations,
    jwks: Arc<JwksCache>,
    cache: ResultCache,
    metrics: Arc<Metrics>,
}

impl Verifier {
    pub fn new(
        config: VerifyConfig,
        jwks: Arc<JwksCache>,
        metrics: Arc<Metrics>,
        cache_capacity: usize,
    ) -> Self {
        Self {
            expectations: config.expectations(),
            config,
            jwks,
            cache: ResultCache::new(cache_capacity),
            metrics,
        }
    }

    pub fn jwks(&self) -> &Arc<JwksCache> {
        &self.jwks
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Decides one request from its `Authorization` header, with the result cache.
    pub async fn verify(&self, authorization: Option<&HeaderValue>) -> Answer {
        let credentials = match parse_basic(authorization.map(|v| v.to_str().map_err(|_| ()))) {
            Ok(c) => c,
            Err(problem) => {
                tracing::info!(
                    reason = problem.code(),
                    "refused: unusable Authorization header"
                );
                return Answer::Unauthorized(problem);
            }
        };
        let digest = TokenDigest::of(&credentials.token);
        if let Some(verdict) = self
            .cache
            .get(digest, &credentials.username, Instant::now())
        {
            self.metrics.cache_lookup(true);
            return answer(verdict, true);
        }
        self.metrics.cache_lookup(false);

        let now = unix_now();
        let (verdict, exp) = match self.judge(&credentials, now).await {
            Ok(judged) => judged,
            Err(e) => {
                tracing::warn!(token = %digest.short(), user = ?credentials.username, error = ?e.to_string(), "cannot verify: no keys");
                return Answer::Unavailable(e);
            }
        };
        let ttl = match (&verdict, exp) {
            (Verdict::Allowed(_), Some(exp)) => {
                positive_ttl(self.config.cache.positive_ttl.get(), exp, now)
            }
            (Verdict::Allowed(_), None) => None,
            (Verdict::Denied(_), _) => Some(self.config.cache.negative_ttl.get()),
        };
        self.cache.insert(
            digest,
            &credentials.username,
            verdict.clone(),
            ttl.unwrap_or(Duration::ZERO),
            Instant::now(),
        );
        match &verdict {
            Verdict::Allowed(_) => {
                tracing::debug!(token = %digest.short(), user = ?credentials.username, "allowed")
            }
            Verdict::Denied(d) => {
                tracing::info!(token = %digest.short(), user = ?credentials.username, reason = d.code(), "refused")
            }
        }
        answer(verdict, false)
    }

    /// The full check of one token: keys, token, identity, settings. `Err` only when the
    /// keys cannot be had at all. Returns the token's `exp` for the cache.
    async fn judge(
        &self,
        credentials: &BasicCredentials,
        now: u64,
    ) -> Result<(Verdict, Option<u64>), JwksError> {
        let kid = match peek_kid(&credentials.token) {
            Ok(kid) => kid,
            Err(r) => return Ok((Verdict::Denied(r.into()), None)),
        };
        let keys = self.jwks.keys_for(kid.as_deref()).await?;
        let claims = match validate_jwt(&credentials.token, &keys, &self.expectations, now) {
            Ok(claims) => claims,
            Err(r) => return Ok((Verdict::Denied(r.into()), None)),
        };
        if let Err(denial) = check_identity(&claims, &credentials.username, &self.config.identity) {
            return Ok((Verdict::Denied(denial), claims.exp()));
        }
        let settings = session_settings(&self.config.settings_from_scope, &claims.scopes());
        Ok((Verdict::Allowed(Arc::new(settings)), claims.exp()))
    }
}

fn answer(verdict: Verdict, cached: bool) -> Answer {
    match verdict {
        Verdict::Allowed(settings) => Answer::Allowed { settings, cached },
        Verdict::Denied(denial) => Answer::Denied { denial, cached },
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The verifier's routes.
pub fn router(verifier: Arc<Verifier>) -> Router {
    Router::new()
        .route("/verify", get(verify).post(verify))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(verifier)
}

async fn verify(State(v): State<Arc<Verifier>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let answer = v.verify(headers.get(header::AUTHORIZATION)).await;
    v.metrics.request(
        answer.outcome(),
        answer.reason(),
        started.elapsed().as_secs_f64(),
    );
    answer.into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(v): State<Arc<Verifier>>) -> (StatusCode, &'static str) {
    if v.jwks.is_loaded() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the IdP's keys are not loaded yet\n",
        )
    }
}

async fn metrics(State(v): State<Arc<Verifier>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        v.metrics.encode(),
    )
        .into_response()
}

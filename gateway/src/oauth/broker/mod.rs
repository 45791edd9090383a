//! Broker mode (docs/spec-notes.md, "Broker mode"): the gateway is the OAuth 2.1 authorization server MCP clients
//! see, and an OAuth client of one upstream OIDC IdP (Google, Auth0, Keycloak, Entra...).
//!
//! Stateless by design: everything a later step needs travels sealed (crypto.rs) inside
//! the artifact the client carries — registered client ids, `state`, consent tickets,
//! codes, refresh tokens — so every replica with the same `signing_secret` serves every
//! step, and the upstream IdP's single-use code is the replay guard.
//!
//! Layout: pure decisions in each step's module, I/O (upstream IdP, metadata documents,
//! JWKS) at the edges, and `routes()` the only thing the server needs.

pub mod authorize;
pub mod callback;
pub mod cimd;
pub mod client;
pub mod consent;
pub mod crypto;
pub mod error;
pub mod idtoken;
pub mod metadata;
pub mod page;
pub mod refresh;
pub mod register;
pub mod token;
pub mod upstream;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::config::{OAuthConfig, Secret, UpstreamToken};
use crate::reply::json_response;
use crate::telemetry::Metrics;
use crypto::Sealer;
use error::{ErrorCode, OAuthError};

/// The `chmcp_oauth_requests_total` family (docs/spec-notes.md, "Health, metrics, logs").
pub type OAuthRequests = crate::telemetry::metrics::CounterFamily;
/// Whether an RFC 8707 `resource` names something this gateway serves.
pub type Serves = Arc<dyn Fn(&str) -> bool + Send + Sync>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Validates an upstream id_token: signature (JWKS), `iss`, `aud` = the gateway's client
/// id at the IdP, `exp`. Returns its claims, or why not (no token material in it).
pub trait IdTokenVerifier: Send + Sync {
    fn verify<'a>(
        &'a self,
        id_token: &'a str,
    ) -> BoxFuture<'a, Result<crate::oauth::Claims, String>>;

    /// Validates the upstream token a sealed access token will carry, as the gate does
    /// in passthrough mode: signature (JWKS), `iss`, `aud` = `oauth.audience`, `exp`.
    fn verify_for_gate<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<crate::oauth::Claims, String>>;
}

/// The metric's `step` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Register,
    Authorize,
    Callback,
    Token,
    Refresh,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Register => "register",
            Step::Authorize => "authorize",
            Step::Callback => "callback",
            Step::Token => "token",
            Step::Refresh => "refresh",
        }
    }
}

/// What the broker needs from `oauth.*`, normalised once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The gateway's public base URL without trailing slash: our `issuer`.
    pub issuer: String,
    pub upstream_issuer: String,
    pub upstream_client_id: String,
    pub upstream_client_secret: Secret,
    pub auth_url: String,
    pub token_url: String,
    pub jwks_url: String,
    pub audience: String,
    pub scopes: Vec<String>,
    pub offline: bool,
    pub google: bool,
    pub upstream_token: UpstreamToken,
    /// `token_mode: sealed`: clients get the gateway's sealed tokens (oauth/sealed.rs).
    pub sealed: bool,
    /// `validate_tokens`: the upstream token is verified before it is sealed.
    pub validate_tokens: bool,
    pub trusted_redirect_hosts: Vec<String>,
    pub dev_allow_insecure_client_metadata: bool,
    /// What the sign-in pages call this gateway (`display_name`, else its host).
    pub brand: String,
    /// `refresh_token_max_age`, in seconds from the original sign-in.
    pub refresh_max_age_secs: u64,
}

impl Settings {
    pub fn from_config(o: &OAuthConfig) -> Self {
        Self {
            issuer: o.public_auth_server_url.trim_end_matches('/').to_string(),
            upstream_issuer: o.issuer.clone(),
            upstream_client_id: o.client_id.clone(),
            upstream_client_secret: o.client_secret.clone(),
            auth_url: o.auth_url.clone(),
            token_url: o.token_url.clone(),
            jwks_url: o.jwks_url.clone(),
            audience: o.audience.clone(),
            scopes: o.scopes.clone(),
            offline: o.upstream_offline_access,
            google: upstream::is_google(&o.issuer),
            upstream_token: o.upstream_token,
            sealed: o.sealed_tokens(),
            validate_tokens: o.validate_tokens,
            trusted_redirect_hosts: o
                .trusted_redirect_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            dev_allow_insecure_client_metadata: o.dev_allow_insecure_client_metadata,
            brand: brand_of(o),
            refresh_max_age_secs: o.refresh_token_max_age.get().as_secs(),
        }
    }

    /// The redirect URI registered at the upstream IdP.
    pub fn callback_url(&self) -> String {
        format!("{}/oauth/callback", self.issuer)
    }
}

/// `display_name`, else the host of the public URL, else a plain noun.
fn brand_of(o: &OAuthConfig) -> String {
    let name = o.display_name.trim();
    if !name.is_empty() {
        return name.to_string();
    }
    let host = client::redirect_host(&o.public_auth_server_url);
    if host.is_empty() {
        "ClickHouse MCP gateway".to_string()
    } else {
        host
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerSetupError {
    #[error("server.oauth.signing_secret: {0}")]
    Secret(#[from] crypto::SealError),
    #[error("cannot build the HTTP client for the upstream IdP: {0}")]
    Http(String),
}

/// Everything the broker's handlers share.
pub struct BrokerState {
    pub settings: Settings,
    pub sealer: Sealer,
    pub upstream: upstream::Upstream,
    pub cimd: cimd::CimdResolver,
    pub id_tokens: Arc<dyn IdTokenVerifier>,
    pub serves: Serves,
    /// Refresh-token generations per live grant (refresh.rs).
    pub ledger: refresh::Ledger,
    pub rotation: refresh::Rotation,
    metrics: OAuthRequests,
}

impl BrokerState {
    /// The broker as `serve` builds it: id_tokens checked against the IdP's JWKS.
    /// `metrics`: a clone of `Metrics::oauth_requests` (clones share the counters);
    /// `serves`: `single_cluster_resources` or `multicluster_resources`.
    pub fn new(
        o: &OAuthConfig,
        metrics: OAuthRequests,
        serves: Serves,
    ) -> Result<Self, BrokerSetupError> {
        let verifier = idtoken::JwksIdTokens::new(&Settings::from_config(o), upstream_http()?);
        Self::with_verifier(o, metrics, serves, verifier)
    }

    /// With another id_token check (tests).
    pub fn with_verifier(
        o: &OAuthConfig,
        metrics: OAuthRequests,
        serves: Serves,
        id_tokens: Arc<dyn IdTokenVerifier>,
    ) -> Result<Self, BrokerSetupError> {
        let settings = Settings::from_config(o);
        let sealer = Sealer::new(o.signing_secret.expose().as_bytes())?;
        tracing::info!(
            refresh_token_max_age = %o.refresh_token_max_age,
            "broker refresh tokens: each can be used once (replays are refused by the replica that saw the grant; \
             across replicas only the IdP's own rotation refuses them), and none outlives refresh_token_max_age after sign-in"
        );
        Ok(Self {
            upstream: upstream::Upstream::new(&settings, upstream_http()?),
            cimd: cimd::CimdResolver::new(settings.dev_allow_insecure_client_metadata),
            settings,
            sealer,
            id_tokens,
            serves,
            ledger: refresh::Ledger::default(),
            rotation: refresh::Rotation::default(),
            metrics,
        })
    }

    pub fn count(&self, step: Step, outcome: &str) {
        Metrics::inc(
            &self.metrics,
            &[("step", step.as_str()), ("outcome", outcome)],
        );
    }

    /// Counts, logs (code and description only) and answers an error.
    pub fn fail(&self, step: Step, e: OAuthError) -> Response {
        self.note_refusal(step, &e);
        e.into_response()
    }

    /// [`Self::fail`] for a person in a browser: the HTML error page, never a redirect.
    pub fn fail_page(&self, step: Step, e: OAuthError) -> Response {
        self.note_refusal(step, &e);
        error::error_page(&self.settings.brand, &e)
    }

    fn note_refusal(&self, step: Step, e: &OAuthError) {
        self.count(step, e.code.as_str());
        tracing::info!(step = step.as_str(), error = e.code.as_str(), description = ?e.description, "oauth request refused");
    }
}

/// The client for calls to the upstream IdP. It never follows redirects: a token
/// endpoint that redirected would otherwise carry our client secret wherever it points.
fn upstream_http() -> Result<reqwest::Client, BrokerSetupError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| BrokerSetupError::Http(e.to_string()))
}

/// Resources are compared with and without one trailing slash: `https://x/mcp` and
/// `https://x/mcp/` name the same MCP endpoint.
pub fn same_resource(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Single-cluster mode: `public_resource_url`, or the gateway's own `/mcp`.
pub fn single_cluster_resources(o: &OAuthConfig) -> Serves {
    let base = o.public_auth_server_url.trim_end_matches('/').to_string();
    let shared = o.public_resource_url.clone();
    Arc::new(move |r: &str| {
        (!shared.is_empty() && same_resource(r, &shared))
            || same_resource(r, &format!("{base}/mcp"))
    })
}

/// Multi-cluster mode: `public_resource_url` (one audience for all clusters), or
/// `<public_auth_server_url>/mcp/<cluster>` for a cluster `cluster_ok` accepts.
pub fn multicluster_resources(
    o: &OAuthConfig,
    cluster_ok: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Serves {
    let prefix = format!("{}/mcp/", o.public_auth_server_url.trim_end_matches('/'));
    let shared = o.public_resource_url.clone();
    Arc::new(move |r: &str| {
        if !shared.is_empty() && same_resource(r, &shared) {
            return true;
        }
        r.strip_prefix(&prefix)
            .map(|c| c.trim_end_matches('/'))
            .is_some_and(|c| !c.is_empty() && !c.contains('/') && cluster_ok(c))
    })
}

/// The fleet connector (`multicluster.fleet_endpoint`): `<public_auth_server_url>/mcp` is
/// a resource too, besides what `serves` accepts. A token for it serves only `/mcp`
/// (`sealed::resource_allows`), never one cluster's `/mcp/{cluster}`.
pub fn with_fleet_resource(o: &OAuthConfig, serves: Serves) -> Serves {
    let fleet = format!("{}/mcp", o.public_auth_server_url.trim_end_matches('/'));
    Arc::new(move |r: &str| same_resource(r, &fleet) || serves(r))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The broker's routes, with their state applied: merge them into the server's router.
/// Every path `routes` serves (the gateway routes these to the current broker).
pub const PATHS: [&str; 6] = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/oauth/register",
    "/oauth/token",
    "/oauth/authorize",
    "/oauth/callback",
];

pub fn routes<S: Clone + Send + Sync + 'static>(state: Arc<BrokerState>) -> Router<S> {
    // Metadata, registration and token endpoints are called by browser-based MCP clients
    // too; they use no cookies, so any origin may call them. Authorize and callback are
    // top-level navigations and get no CORS headers.
    let open = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(metadata_handler),
        )
        .route("/.well-known/openid-configuration", get(metadata_handler))
        .route("/oauth/register", post(register_handler))
        .route("/oauth/token", post(token::token))
        .layer(middleware::from_fn(open_cors));
    Router::new()
        .route(
            "/oauth/authorize",
            get(authorize::authorize_get).post(consent::authorize_post),
        )
        .route("/oauth/callback", get(callback::callback))
        .merge(open)
        .with_state(state)
}

async fn open_cors(req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS {
        return crate::reply::open_preflight();
    }
    crate::reply::open_cors(next.run(req).await)
}

async fn metadata_handler(State(b): State<Arc<BrokerState>>) -> Response {
    json_response(
        StatusCode::OK,
        &metadata::authorization_server_metadata(&b.settings),
    )
}

async fn register_handler(State(b): State<Arc<BrokerState>>, body: Bytes) -> Response {
    let reg = match register::parse_registration(&body, now()) {
        Ok(r) => r,
        Err(e) => return b.fail(Step::Register, e),
    };
    let (id, secret) = match client::issue(&b.sealer, &reg) {
        Ok(x) => x,
        Err(e) => {
            return b.fail(
                Step::Register,
                OAuthError::new(ErrorCode::ServerError, e.to_string()),
            )
        }
    };
    b.count(Step::Register, "ok");
    tracing::info!(client = %crate::fingerprint::token_fingerprint(&id), name = reg.client_name.as_deref().unwrap_or(""), method = reg.auth_method.as_str(), "client registered");
    let mut r = json_response(
        StatusCode::CREATED,
        &register::registration_response(&id, secret.as_deref(), &reg),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OAuthConfig {
        OAuthConfig {
            public_auth_server_url: "https://gw.example.com/".into(),
            ..OAuthConfig::default()
        }
    }

    #[test]
    fn single_cluster_serves_its_mcp_url_and_the_shared_resource() {
        let mut c = cfg();
        let s = single_cluster_resources(&c);
        assert!(s("https://gw.example.com/mcp"));
        assert!(s("https://gw.example.com/mcp/"));
        assert!(!s("https://other.example.com/mcp"));
        c.public_resource_url = "https://mcp.example.com/".into();
        let s = single_cluster_resources(&c);
        assert!(s("https://mcp.example.com"));
    }

    #[test]
    fn multicluster_serves_allowed_clusters_only() {
        let s = multicluster_resources(&cfg(), |c| c == "otel");
        assert!(s("https://gw.example.com/mcp/otel"));
        assert!(s("https://gw.example.com/mcp/otel/"));
        assert!(!s("https://gw.example.com/mcp/antalya"));
        assert!(!s("https://gw.example.com/mcp/otel/x"));
        assert!(!s("https://gw.example.com/mcp/"));
        assert!(!s("https://evil.example.com/mcp/otel"));
        let f = with_fleet_resource(&cfg(), s);
        assert!(f("https://gw.example.com/mcp") && f("https://gw.example.com/mcp/otel"));
        assert!(!f("https://evil.example.com/mcp"));
    }

    #[test]
    fn settings_normalise_the_issuer_and_callback() {
        let s = Settings::from_config(&cfg());
        assert_eq!(s.issuer, "https://gw.example.com");
        assert_eq!(s.callback_url(), "https://gw.example.com/oauth/callback");
    }
}

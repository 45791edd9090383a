//! The ClickHouse-side token verifier (`chmcp-gateway verify`), docs/spec-notes.md, "The verifier".
//!
//! ClickHouse users created `IDENTIFIED WITH http SERVER 'chmcp_verify' SCHEME 'BASIC'`
//! sign in with `user:JWT`; ClickHouse asks this server whether that pair is valid. It
//! answers 200 with session settings, 401 for an unusable header, 403 for a failed check.
//!
//! - `config`: the verifier's own strict configuration.
//! - `checks`: Basic header, identity policy, settings merge (pure).
//! - `cache`: verdicts by sha256(token) + username, never past `exp`.
//! - `handler`: the HTTP routes and the per-request pipeline.
//! - `metrics`, `clickhouse`: `/metrics`, and the ClickHouse config fragment.
//!
//! Token validation and the JWKS cache live in [`crate::oauth`], shared with the gateway.

pub mod cache;
pub mod checks;
pub mod clickhouse;
pub mod config;
pub mod handler;
pub mod metrics;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::oauth::jwks::require_https_or_loopback;
use crate::oauth::{JwksCache, JwksSource};
pub use config::VerifyConfig;
pub use handler::{router, Answer, Verifier};

/// Flags of `chmcp-gateway verify`.
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Verifier configuration file (YAML). Same id as the top-level `--config`, which
    /// clap then does not propagate here, so `verify --config FILE` lands in this field.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the ClickHouse `http_authentication_servers` fragment and exit.
    #[arg(long)]
    pub print_clickhouse_config: bool,
}

/// Keys are re-read this often even when no unknown `kid` asks for it, so keys the IdP
/// has withdrawn stop being accepted.
const JWKS_REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// Retry pace while the keys have never loaded (IdP down at startup).
const JWKS_RETRY_FIRST: Duration = Duration::from_secs(1);
const JWKS_RETRY_MAX: Duration = Duration::from_secs(30);

pub fn main(args: VerifyArgs) -> anyhow::Result<()> {
    let path = args
        .config
        .context("verify needs its configuration: chmcp-gateway verify --config verify.yaml (see docs/verifier.md)")?;
    let config = config::load(&path)?;
    let listen = config.listen_addr().map_err(anyhow::Error::msg)?;
    if args.print_clickhouse_config {
        print!("{}", clickhouse::fragment(listen));
        return Ok(());
    }
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listen: cannot bind {listen}"))?;
        serve(config, listener).await
    })
}

fn init_logging() {
    use std::io::IsTerminal;
    // Plain lines on stderr; colours only for a person at a terminal.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .try_init();
}

/// Builds the verifier for a configuration (keys not fetched yet).
pub fn build(config: VerifyConfig) -> anyhow::Result<Arc<Verifier>> {
    let metrics = Arc::new(metrics::Metrics::new());
    let source = if config.oauth.jwks_url.is_empty() {
        JwksSource::Discovery {
            issuer: config.oauth.issuer.clone(),
        }
    } else {
        JwksSource::Url(config.oauth.jwks_url.clone())
    };
    // A redirect must not downgrade the key fetch to plain http off loopback.
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 5
            || require_https_or_loopback(attempt.url().as_str()).is_err()
        {
            attempt.stop()
        } else {
            attempt.follow()
        }
    });
    let http = reqwest::Client::builder()
        .redirect(redirects)
        .connect_timeout(Duration::from_secs(2))
        .user_agent(concat!("chmcp-verify/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let jwks = Arc::new(JwksCache::new(source, http).with_observer(metrics.jwks_observer()));
    Ok(Arc::new(Verifier::new(
        config,
        jwks,
        metrics,
        cache::DEFAULT_CAPACITY,
    )))
}

/// Serves until SIGTERM or Ctrl-C. Answers `/healthz` at once; the keys load in the
/// background (`/readyz` says when), and a `/verify` that arrives first fetches them.
pub async fn serve(config: VerifyConfig, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let verifier = build(config)?;
    tokio::spawn(keep_keys_fresh(verifier.jwks().clone()));
    let addr = listener
        .local_addr()
        .context("the listener has no address")?;
    tracing::info!("listening on http://{addr}");
    axum::serve(listener, router(verifier))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")
}

async fn keep_keys_fresh(jwks: Arc<JwksCache>) {
    let mut retry = JWKS_RETRY_FIRST;
    loop {
        match jwks.refresh().await {
            Ok(_) => {
                retry = JWKS_RETRY_FIRST;
                tokio::time::sleep(JWKS_REFRESH_EVERY).await;
            }
            Err(_) => {
                // Already logged by the cache. A fleet of verifiers restarted together
                // should not retry in lockstep against a struggling IdP.
                tokio::time::sleep(retry + Duration::from_millis(fastrand::u64(0..250))).await;
                retry = (retry * 2).min(JWKS_RETRY_MAX);
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

//! `chmcp-gateway serve`: wires configuration, telemetry and transports together, and
//! owns the process lifecycle (reload on SIGHUP, graceful stop on SIGTERM).

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::config::{LoadOptions, Transport};
use crate::telemetry::logging;

/// The HTTP service (declared in `http/mod.rs`).
pub use crate::http::router;

/// In-flight requests get this long to finish after SIGTERM (docs/spec-notes.md, "Reload").
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often the config file is checked when `watch: true`.
const WATCH_EVERY: Duration = Duration::from_secs(2);

pub fn main(opts: LoadOptions) -> anyhow::Result<()> {
    let loaded = crate::config::load(&opts)?;
    let log = logging::init(&loaded.config.logging);
    logging::log_panics();
    for w in &loaded.warnings {
        tracing::warn!(warning = ?w, "configuration warning");
    }
    // 0: one worker per CPU the process may use (cgroup quota included), set here rather
    // than left to tokio, whose default reads TOKIO_WORKER_THREADS and panics on a bad one.
    let workers = match loaded.config.server.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let transport = loaded.config.server.transport;
        let app = Arc::new(App::new(loaded.config, opts, Some(log))?);
        spawn_reloaders(app.clone());
        crate::catalog::CatalogCache::spawn_sweeper(app.catalogs.clone());
        let served = match transport {
            Transport::Stdio => crate::mcp::stdio::run(app.clone()).await,
            Transport::Http => serve_http(app.clone()).await,
        };
        if let Some(tracer) = &app.tracer {
            tracer.flush(SPAN_FLUSH).await;
        }
        served
    })
}

/// How long a stopping gateway waits to send its last spans.
const SPAN_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

async fn serve_http(app: Arc<App>) -> anyhow::Result<()> {
    let generation = app.generation();
    let addr = format!(
        "{}:{}",
        generation.config.server.address, generation.config.server.port
    );
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| anyhow::anyhow!("server.address/server.port: cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, url = %format!("http://{local}/mcp"), "chmcp gateway listening");
    let router = router(app.clone())?;
    let limits = crate::listener::ConnectionLimits::from_config(&generation.config.server);
    crate::listener::serve(listener, router, limits, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!(
        "shutting down: finishing in-flight requests (up to {}s)",
        SHUTDOWN_GRACE.as_secs()
    );
    tokio::spawn(async {
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        tracing::warn!(
            "in-flight requests did not finish within {}s; exiting",
            SHUTDOWN_GRACE.as_secs()
        );
        std::process::exit(0);
    });
}

/// SIGHUP, and (with `watch: true`) file changes, reload the configuration.
fn spawn_reloaders(app: Arc<App>) {
    #[cfg(unix)]
    {
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                reload(&app, "SIGHUP");
            }
        });
    }
    if app.generation().config.watch {
        if let Some(path) = app.config_path() {
            tokio::spawn(async move {
                let mtime =
                    |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                let mut last = mtime(&path);
                loop {
                    tokio::time::sleep(WATCH_EVERY).await;
                    let now = mtime(&path);
                    if now != last {
                        last = now;
                        reload(&app, "file change");
                    }
                }
            });
        }
    }
}

fn reload(app: &App, cause: &str) {
    match app.reload() {
        Ok(restart_only) => {
            if restart_only.is_empty() {
                tracing::info!(cause, "configuration reloaded");
            } else {
                tracing::warn!(cause, keys = %restart_only.join(", "), "configuration reloaded, but these keys only change on restart; their running values stay");
            }
        }
        Err(e) => {
            tracing::error!(cause, error = ?e, "configuration reload rejected; the previous configuration keeps serving")
        }
    }
}

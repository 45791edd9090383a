//! `chmcp-operator run | crd`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use chmcp_operator::leader::{Held, LeaderElector, LeaseConfig};
use chmcp_operator::reconcile::{run_controller, Context};
use chmcp_operator::telemetry::{self, Health, LogFormat, Metrics};
use clap::{Parser, Subcommand};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "chmcp-operator",
    version,
    about = "Runs chmcp gateways from McpMultiCluster resources"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller.
    Run(RunArgs),
    /// Print the CustomResourceDefinition YAML.
    Crd,
    /// Print the objects the controller would apply for an McpMultiCluster file (a dry
    /// run: no cluster is contacted; Secret versions are taken as "0").
    Render {
        /// The McpMultiCluster YAML file.
        file: std::path::PathBuf,
    },
    /// GET a URL once and succeed on a 2xx (the chart's `helm test`; the image has no
    /// shell or curl).
    CheckReady {
        /// e.g. http://chmcp-operator-metrics.chmcp-system.svc:8080/readyz
        url: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Namespaces to watch, comma-separated; empty: all namespaces.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Address of /metrics, /livez and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Elect a leader through a Lease, so several replicas are safe.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "LEASE_NAME", default_value = "chmcp-operator")]
    lease_name: String,
    /// Namespace of the Lease (normally the operator's own, from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease (normally the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Gateway image for resources that name none.
    #[arg(long, env = "GATEWAY_IMAGE")]
    gateway_image: Option<String>,
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Crd => {
            print!(
                "{}",
                chmcp_operator::crd_yaml().context("rendering the CRD")?
            );
            Ok(())
        }
        Command::Render { file } => {
            print!("{}", render_file(&file)?);
            Ok(())
        }
        Command::CheckReady { url } => {
            let status = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(chmcp_operator::probe::check_ready(&url))?;
            println!("{url}: HTTP {status}");
            Ok(())
        }
        Command::Run(run_args) => {
            telemetry::init_logging(&run_args.log_level, run_args.log_format);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(run_args))
        }
    }
}

fn render_file(file: &std::path::Path) -> anyhow::Result<String> {
    use chmcp_operator::crd::McpMultiCluster;
    use chmcp_operator::validate::{summarize, validate};
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut mc: McpMultiCluster = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is not an McpMultiCluster", file.display()))?;
    if mc.metadata.namespace.is_none() {
        mc.metadata.namespace = Some("default".into());
    }
    let validated =
        validate(&mc).map_err(|errors| anyhow::anyhow!("invalid: {}", summarize(&errors)))?;
    for w in validated.warnings() {
        eprintln!("warning: {w}");
    }
    let secrets = mc
        .spec
        .secret_refs()
        .into_iter()
        .map(|(_, r)| (r.name.clone(), "0".to_string()))
        .collect();
    let objects = chmcp_operator::render::render(
        &validated,
        &secrets,
        &chmcp_operator::default_gateway_image(),
    )?;
    Ok(objects.to_yaml()?)
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);

    let on_signal = stop_tx.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = on_signal.send(true);
    });
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics address {}", args.metrics_addr))?;
    let server = {
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::spawn(telemetry::serve(
            listener,
            metrics.clone(),
            health.clone(),
            shutdown,
        ))
    };
    health.set_ready(true);

    let image = args
        .gateway_image
        .clone()
        .unwrap_or_else(chmcp_operator::default_gateway_image);
    let ctx = Arc::new(Context::new(client.clone(), metrics, image));
    let namespaces: Vec<Option<String>> = if args.namespaces.iter().all(|n| n.trim().is_empty()) {
        vec![None]
    } else {
        args.namespaces
            .iter()
            .filter(|n| !n.trim().is_empty())
            .map(|n| Some(n.trim().to_string()))
            .collect()
    };
    let controllers = |rx: watch::Receiver<bool>| {
        let runs = namespaces.iter().cloned().map(|ns| {
            let mut rx = rx.clone();
            let shutdown = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            run_controller(client.clone(), ns, ctx.clone(), shutdown)
        });
        futures::future::join_all(runs.collect::<Vec<_>>())
    };

    let mut outcome = Ok(());
    if args.leader_election {
        let identity = args
            .identity
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .context("no --identity, POD_NAME or HOSTNAME for the leader lease")?;
        let elector = LeaderElector::new(
            client.clone(),
            LeaseConfig::new(args.lease_name, args.lease_namespace, identity),
        );
        let mut rx = stop_rx.clone();
        if elector.acquire(&mut rx).await {
            tracing::info!("leading; starting the controller");
            // Only the leader reconciles: the controllers stop on shutdown (gracefully,
            // letting in-flight reconciles finish) or at once when leadership is lost.
            let running = tokio::spawn(controllers(stop_rx.clone()));
            match elector.hold(&mut rx).await {
                Held::Shutdown => {
                    let _ = running.await;
                    elector.release().await;
                }
                Held::Lost => {
                    running.abort();
                    let _ = stop_tx.send(true);
                    outcome = Err(anyhow::anyhow!(
                        "lost the leader lease; exiting so a fresh start can compete again"
                    ));
                }
            }
        }
    } else {
        controllers(stop_rx.clone()).await;
    }
    let _ = server.await;
    outcome
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

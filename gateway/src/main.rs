//! `chmcp-gateway`: serve | verify | doctor | check-config | version. Argument parsing and exit
//! codes only; everything else lives in the library.

// The same no-panic rule as the library (lib.rs).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::path::PathBuf;
use std::process::ExitCode;

use chmcp_gateway::config::{self, LoadOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chmcp-gateway",
    version,
    about = "MCP gateway for ClickHouse clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// Configuration file (YAML).
    #[arg(long, short = 'c', env = "CHMCP_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Override one key: `--set clickhouse.port=9000` (repeatable; beats the environment).
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    set: Vec<String>,
    /// Shorthand for `--set server.transport=...`.
    #[arg(long, global = true)]
    transport: Option<String>,
    /// Shorthand for `--set server.port=...`.
    #[arg(long, global = true)]
    port: Option<u16>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP (the default).
    Serve,
    /// Run the ClickHouse-side token verifier (HTTP authentication server).
    Verify(chmcp_gateway::verify::VerifyArgs),
    /// Check from the outside that MCP clients (claude.ai, ChatGPT, Claude Code) can sign
    /// in at URL: challenge, metadata, registration, PKCE, CORS, TLS, clock. Exit code 0
    /// only when every check passes.
    Doctor(chmcp_gateway::doctor::DoctorArgs),
    /// Validate a configuration and print the effective result, secrets redacted.
    CheckConfig {
        /// The file to check (default: --config).
        file: Option<PathBuf>,
    },
    /// Print the version.
    Version,
}

fn load_options(args: &ServeArgs, file: Option<PathBuf>) -> Result<LoadOptions, String> {
    let mut overrides = Vec::new();
    for s in &args.set {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("--set {s}: expected KEY=VALUE"))?;
        overrides.push((k.trim().to_string(), v.to_string()));
    }
    if let Some(t) = &args.transport {
        overrides.push(("server.transport".into(), t.clone()));
    }
    if let Some(p) = args.port {
        overrides.push(("server.port".into(), p.to_string()));
    }
    Ok(LoadOptions::from_process_env(
        file.or_else(|| args.config.clone()),
        overrides,
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Version => {
            println!("chmcp-gateway {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::CheckConfig { file } => {
            let opts = match load_options(&cli.serve, file) {
                Ok(o) => o,
                Err(e) => return fail(&e),
            };
            match config::load(&opts) {
                Ok(loaded) => {
                    for w in &loaded.warnings {
                        eprintln!("warning: {w}");
                    }
                    match serde_yaml_ng::to_string(&loaded.config.redacted()) {
                        Ok(text) => {
                            print!("{text}");
                            ExitCode::SUCCESS
                        }
                        Err(e) => fail(&e.to_string()),
                    }
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Verify(args) => match chmcp_gateway::verify::main(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("{e:#}")),
        },
        Command::Doctor(args) => match chmcp_gateway::doctor::main(args) {
            Ok(true) => ExitCode::SUCCESS,
            // A finding about the server (1) is told apart from a doctor that could not run (2).
            Ok(false) => ExitCode::from(1),
            Err(e) => fail(&e.to_string()),
        },
        Command::Serve => {
            let opts = match load_options(&cli.serve, None) {
                Ok(o) => o,
                Err(e) => return fail(&e),
            };
            match chmcp_gateway::serve::main(opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("{e:#}")),
            }
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

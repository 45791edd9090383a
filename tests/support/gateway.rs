//! The `chmcp-gateway` binary, started with a given configuration on a free port.

use std::ops::{Deref, DerefMut};
use std::process::{Command, Stdio};

use super::process::{NotReady, Process};
use super::{free_port, gateway_binary};

/// A single-cluster configuration: ClickHouse's HTTP interface on loopback `ch_port`,
/// then `extra` (YAML at the top level, or indented to continue `clickhouse:`).
pub fn config(ch_port: u16, extra: &str) -> String {
    format!("clickhouse:\n  host: 127.0.0.1\n  port: {ch_port}\n{extra}")
}

/// `server.oauth` as a resource server (no broker) for tokens `issuer` issues for
/// `audience`, the ClickHouse user named by `preferred_username`; `more` continues the
/// YAML (four spaces: more `server.oauth` keys; two: more `server` keys).
pub fn resource_server(issuer: &str, audience: &str, more: &str) -> String {
    format!("server:\n  oauth:\n    enabled: true\n    broker: false\n    issuer: {issuer}\n    audience: {audience}\n    username_claim: preferred_username\n{more}")
}

/// Multi-cluster mode with clusters `a` and `b` on loopback ports, with `oauth` (a
/// `server:` block, OAuth being required in this mode) before it.
pub fn clusters_a_b(oauth: &str, a_port: u16, b_port: u16) -> String {
    format!("clickhouse:\n  host: 127.0.0.1\n{oauth}multicluster:\n  enabled: true\n  cluster_allowlist: [a, b]\n  clusters:\n    a: {{port: {a_port}}}\n    b: {{port: {b_port}}}\n")
}

/// `chmcp-gateway serve` on a free loopback port; the process harness (`log()`,
/// `signal()`, `wait_exit()`, `config_path`) through `Deref`.
pub struct Gateway {
    pub port: u16,
    process: Process,
}

impl Gateway {
    /// Starts `serve` with `config` (YAML) on a free port; `server.address`/`port` are set here.
    /// A port taken by another test between `free_port` and the gateway's bind is retried
    /// with a new one.
    pub fn start(config: &str) -> Self {
        for _ in 0..5 {
            match Self::try_start_on(free_port(), config) {
                Ok(gw) => return gw,
                Err(NotReady::Exited(log)) if log.contains("cannot listen") => continue,
                Err(not_ready) => fail(not_ready),
            }
        }
        panic!("no free port could be bound in five tries")
    }

    /// Starts `serve` on `port`, for configurations that must name their own URL.
    pub fn start_on(port: u16, config: &str) -> Self {
        Self::try_start_on(port, config).unwrap_or_else(|not_ready| fail(not_ready))
    }

    /// Starts `serve` on a free port with `config(public_url)`, for a gateway whose
    /// public URL is its own address (`http://127.0.0.1:PORT`).
    pub fn start_at_own_url(config: impl FnOnce(&str) -> String) -> Self {
        let port = free_port();
        Self::start_on(port, &config(&format!("http://127.0.0.1:{port}")))
    }

    fn try_start_on(port: u16, config: &str) -> Result<Self, NotReady> {
        let args = [
            "--set".to_string(),
            "server.address=127.0.0.1".to_string(),
            "--set".to_string(),
            format!("server.port={port}"),
        ];
        let process = Process::start("serve", config, args, "chmcp gateway listening")?;
        Ok(Self { port, process })
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base())
    }
}

fn fail(not_ready: NotReady) -> ! {
    match not_ready {
        NotReady::Exited(log) => panic!("the gateway exited before listening; log:\n{log}"),
        NotReady::TimedOut(log) => panic!("the gateway did not listen in time; log:\n{log}"),
    }
}

impl Deref for Gateway {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for Gateway {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// `serve --transport stdio` against ClickHouse on `clickhouse_port`, with piped stdin
/// and stdout (newline-delimited JSON-RPC) and stderr discarded.
pub fn spawn_stdio(clickhouse_port: u16) -> std::process::Child {
    Command::new(gateway_binary())
        .args([
            "serve",
            "--transport",
            "stdio",
            "--set",
            "clickhouse.host=127.0.0.1",
            "--set",
        ])
        .arg(format!("clickhouse.port={clickhouse_port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chmcp-gateway")
}

//! The `chmcp-gateway` binary, started with a given configuration on a free port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, gateway_binary, temp_dir};

pub struct Gateway {
    pub port: u16,
    pub config_path: PathBuf,
    dir: PathBuf,
    child: Child,
}

impl Gateway {
    /// Starts `serve` with `config` (YAML) on a free port; `server.address`/`port` are set here.
    /// A port taken by another test between `free_port` and the gateway's bind is retried
    /// with a new one.
    pub fn start(config: &str) -> Self {
        for _ in 0..5 {
            match Self::try_start_on(free_port(), config) {
                Ok(gw) => return gw,
                Err(log) if log.contains("cannot listen") => continue,
                Err(log) => panic!("the gateway exited before listening; log:\n{log}"),
            }
        }
        panic!("no free port could be bound in five tries")
    }

    /// Starts `serve` on `port`, for configurations that must name their own URL.
    pub fn start_on(port: u16, config: &str) -> Self {
        Self::try_start_on(port, config)
            .unwrap_or_else(|log| panic!("the gateway exited before listening; log:\n{log}"))
    }

    fn try_start_on(port: u16, config: &str) -> Result<Self, String> {
        let dir = temp_dir("gw");
        let config_path = dir.join("gateway.yaml");
        std::fs::write(&config_path, config).expect("write gateway config");
        let log = std::fs::File::create(dir.join("gateway.log")).expect("log file");
        let child = Command::new(gateway_binary())
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(["--set", "server.address=127.0.0.1", "--set"])
            .arg(format!("server.port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn chmcp-gateway");
        let mut gw = Self {
            port,
            config_path,
            dir,
            child,
        };
        gw.wait_listening()?;
        Ok(gw)
    }

    /// Waits for the gateway's own "listening" line: a successful connect alone could
    /// reach another test's server that took the port first.
    fn wait_listening(&mut self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if self.log().contains("chmcp gateway listening") {
                return Ok(());
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gateway did not listen within 15 s; log:\n{}", self.log());
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`HUP`, `TERM`) with the system's `kill`.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "kill -{sig} failed");
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
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

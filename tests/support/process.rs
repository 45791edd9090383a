//! The one process harness: `chmcp-gateway <subcommand> --config <file>` in a temporary
//! directory, its stderr (the log) in a file there, waited on until it logs that it
//! listens, and killed and cleaned up on drop. `gateway::Gateway` (serve) and the
//! verifier tests (verify) are both built on it.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{gateway_binary, temp_dir};

/// How long a process may take to log that it listens (a busy 2-core box).
const READY_WITHIN: Duration = Duration::from_secs(15);

pub struct Process {
    child: Child,
    dir: PathBuf,
    /// The configuration file the process was started with (rewritten by reload tests).
    pub config_path: PathBuf,
}

/// How a start ended when the process did not get to listen.
pub enum NotReady {
    /// It exited; its log.
    Exited(String),
    /// It was still running, silent, after [`READY_WITHIN`]; its log.
    TimedOut(String),
}

impl Process {
    /// Starts `chmcp-gateway <subcommand> --config <config> <args>` and waits until a log
    /// line contains `ready_line`.
    pub fn start<I, S>(
        subcommand: &str,
        config: &str,
        args: I,
        ready_line: &str,
    ) -> Result<Self, NotReady>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let dir = temp_dir(subcommand);
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config).expect("write the process's config");
        let log = std::fs::File::create(dir.join("process.log")).expect("log file");
        let child = Command::new(gateway_binary())
            .arg(subcommand)
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn chmcp-gateway {subcommand}: {e}"));
        let mut process = Self {
            child,
            dir,
            config_path,
        };
        process.wait_for_log(ready_line)?;
        Ok(process)
    }

    /// Waits for the process's own `ready_line`: a successful connect alone could reach
    /// another test's server that took the port first.
    fn wait_for_log(&mut self, ready_line: &str) -> Result<(), NotReady> {
        let started = Instant::now();
        while started.elapsed() < READY_WITHIN {
            if self.log().contains(ready_line) {
                return Ok(());
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(NotReady::Exited(self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(NotReady::TimedOut(self.log()))
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("process.log")).unwrap_or_default()
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

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

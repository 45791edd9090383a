//! `chdb_server.py` (the MODERN-CLICKHOUSE DOUBLE: ClickHouse 26.x through PyPI chdb
//! behind ClickHouse's HTTP interface; read its header for what it does not do) on a
//! free loopback port, with MergeTree data from an `--init` script; stopped on Drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::{free_port, temp_dir, venv_python};

pub struct ChdbDouble {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl ChdbDouble {
    /// Starts the double with `init` (statements, each ending `;` on its own line end)
    /// run once before it listens.
    pub fn start(init: &str) -> Self {
        let dir = temp_dir("chdb");
        let init_path = dir.join("init.sql");
        std::fs::write(&init_path, init).expect("write the double's init script");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/chdb_server.py");
        let port = free_port();
        let mut child = Command::new(venv_python("chdb"))
            .arg(&script)
            .arg(port.to_string())
            .arg("--path")
            .arg(dir.join("data"))
            .arg("--init")
            .arg(&init_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the chdb double");
        let stdout = child.stdout.take().expect("the double's stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert!(
            line.starts_with("ready"),
            "the chdb double did not start (is chdb installed? scripts/deps.sh chdb): {line:?}"
        );
        Self { port, child, dir }
    }

    /// What reached the engine (`GET /double/log`): query id, text, settings, `ran`.
    pub async fn log(&self) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/double/log", self.port);
        reqwest::get(&url)
            .await
            .expect("the double's log")
            .json()
            .await
            .expect("the double's log is JSON")
    }
}

impl Drop for ChdbDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

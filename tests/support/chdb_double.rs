//! Starts `chdb_server.py`, the MODERN-CLICKHOUSE DOUBLE (current ClickHouse in-process via
//! PyPI chdb behind ClickHouse's HTTP interface; no users, no auth, no query_log: read
//! the script's header). For behaviour only a modern engine shows (`eval`, `SETTINGS`
//! precedence, dictionaries); everything 18.16 can judge is tested on 18.16.

use std::path::PathBuf;
use std::process::{Child, Command};

use serde_json::Value;

use super::free_port;

pub struct ChdbDouble {
    pub port: u16,
    child: Child,
}

impl ChdbDouble {
    /// The double on a free loopback port, with `init` statements (may be empty) run first.
    pub fn start(init: &str) -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/chdb_server.py");
        let dir = super::temp_dir("chdb-double");
        let init_path = dir.join("init.sql");
        std::fs::write(&init_path, init).expect("write the double's init file");
        let port = free_port();
        let mut cmd = Command::new(crate::venv_python("chdb"));
        cmd.arg(&script)
            .arg(port.to_string())
            .arg("--path")
            .arg(dir.join("data"));
        if !init.trim().is_empty() {
            cmd.arg("--init").arg(&init_path);
        }
        let child = super::spawn_until_ready(
            cmd,
            &format!("ready {port}"),
            "the chdb double did not start (is chdb installed? run scripts/deps.sh chdb)",
        );
        Self { port, child }
    }

    /// Every query that reached the engine: `[{query_id, query, settings, ran, error}]`.
    pub async fn log(&self) -> Vec<Value> {
        reqwest::get(format!("http://127.0.0.1:{}/double/log", self.port))
            .await
            .expect("GET /double/log")
            .json()
            .await
            .expect("the double's log is JSON")
    }

    /// Whether any query containing `needle` reached the engine.
    pub async fn saw(&self, needle: &str) -> bool {
        self.log()
            .await
            .iter()
            .any(|e| e["query"].as_str().is_some_and(|q| q.contains(needle)))
    }
}

impl Drop for ChdbDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

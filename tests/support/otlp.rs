//! The tests' OTLP/HTTP receiver (`otlp_receiver.py`): spans decoded with the official
//! `opentelemetry-proto` package, read back as JSON.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::free_port;

pub struct OtlpReceiver {
    pub port: u16,
    child: Child,
}

impl OtlpReceiver {
    pub fn start() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/otlp_receiver.py");
        let port = free_port();
        let mut cmd = Command::new(crate::venv_python("otel"));
        cmd.arg(&script).arg(port.to_string());
        let child = super::spawn_until_ready(
            cmd,
            "ready",
            "the OTLP receiver did not start (is opentelemetry-proto installed? run scripts/deps.sh otel)",
        );
        Self { port, child }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything received so far: `{spans: [...], posts: [...]}`.
    pub async fn received(&self) -> Value {
        reqwest::get(format!("{}/spans", self.endpoint()))
            .await
            .expect("GET /spans")
            .json()
            .await
            .expect("spans JSON")
    }

    /// Waits (up to 15 s) until `done` holds for the spans of `trace_id`, returning them.
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let all = self.received().await;
            let spans: Vec<Value> = all["spans"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|s| s["trace_id"] == trace_id)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "trace {trace_id} incomplete at the receiver after 15 s; received: {all}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

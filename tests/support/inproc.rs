//! The middle rung of the test ladder: the gateway's HTTP router in this process, driven
//! with `tower::ServiceExt::oneshot`. No listener, no binary, no ClickHouse: what these
//! tests prove is decided before ClickHouse would be asked, and their configurations
//! point ClickHouse at a port nobody listens on ([`NOBODY_LISTENS`]) so any request
//! that did reach for it would fail.
//!
//! Construction lives here alone, so a change to how the gateway builds its router is
//! one edit for every in-process test.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{header, Request};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::mcp::Reply;
use crate::metrics::Metrics;
use crate::temp_dir;

/// Port 9 (discard) on loopback: privileged, so no test server can take it, and closed
/// on the machines these tests run on.
pub const NOBODY_LISTENS: u16 = 9;

/// The `Host` every request carries (the gateway builds metadata and challenge URLs
/// from it); `http://` + this is [`Gateway::base`].
pub const HOST: &str = "gateway.test:8080";

/// A single-cluster configuration whose ClickHouse nobody listens on, plus `extra`.
pub fn single_cluster(extra: &str) -> String {
    crate::gateway::config(NOBODY_LISTENS, extra)
}

pub struct Gateway {
    router: Router,
    dir: PathBuf,
}

impl Gateway {
    /// The router `serve` would run for this configuration (YAML, loaded from a file
    /// exactly as `--config` loads it, with no environment), bound to loopback as
    /// `gateway::Gateway` binds the binary (`--set server.address=127.0.0.1`), since the
    /// Origin rules depend on the bind address.
    pub fn new(yaml: &str) -> Self {
        use chmcp_gateway::app::App;
        use chmcp_gateway::config::{load, LoadOptions};
        let dir = temp_dir("inproc");
        let file = dir.join("gateway.yaml");
        std::fs::write(&file, yaml).expect("write gateway config");
        let options = LoadOptions {
            file: Some(file),
            env: Vec::new(),
            overrides: vec![("server.address".into(), "127.0.0.1".into())],
        };
        let loaded = load(&options)
            .unwrap_or_else(|e| panic!("the test configuration does not load: {e}\n{yaml}"));
        let app = App::new(loaded.config, options, None)
            .unwrap_or_else(|e| panic!("the gateway does not start on this configuration: {e:#}"));
        let router = chmcp_gateway::serve::router(Arc::new(app))
            .unwrap_or_else(|e| panic!("the router does not build: {e:#}"));
        Self { router, dir }
    }

    pub fn base(&self) -> String {
        format!("http://{HOST}")
    }

    /// Sends one request through the whole router (its layers included) and reads the
    /// answer: a JSON body parsed, any other body as a string. Adds `Host` if absent.
    pub async fn request(&self, mut req: Request<Body>) -> Reply {
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut()
                .insert(header::HOST, http::HeaderValue::from_static(HOST));
        }
        let response = match self.router.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("read the response body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `method path` with these headers (a name given twice is sent twice) and body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.request(req.body(body.into()).expect("a valid test request"))
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], Body::empty()).await
    }

    /// POSTs `body` as JSON the way an MCP client does (`Content-Type` and `Accept` set),
    /// with `headers` added.
    pub async fn post_json(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ];
        all.extend_from_slice(headers);
        self.send("POST", path, &all, body.to_string()).await
    }

    /// A JSON-RPC request (`id` 1) to `path`.
    pub async fn rpc(&self, path: &str, method: &str, params: Value) -> Reply {
        self.post_json(
            path,
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            &[],
        )
        .await
    }

    pub async fn metrics(&self) -> Metrics {
        let r = self
            .send(
                "GET",
                "/metrics",
                &[("accept", crate::metrics::OPENMETRICS)],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, 200, "GET /metrics: {:?}", r.body);
        match r.body {
            Value::String(page) => Metrics::parse(page),
            other => panic!("/metrics is not text: {other}"),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

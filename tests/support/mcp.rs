//! A minimal MCP client over HTTP for protocol-level assertions (status codes, headers,
//! exact bodies). Interoperability with the official SDKs is tested in `e2e/`.

use serde_json::{json, Value};

/// One HTTP answer from an MCP endpoint (over a socket, or in process).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

pub struct Mcp {
    pub url: String,
    pub http: reqwest::Client,
    pub bearer: Option<String>,
}

impl Mcp {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            http: reqwest::Client::new(),
            bearer: None,
        }
    }

    /// A client that sends `Authorization: Bearer <token>`.
    pub fn with_bearer(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            bearer: Some(token.into()),
            ..Self::new(url)
        }
    }

    pub async fn post_raw(&self, body: &Value, headers: &[(&str, &str)]) -> Reply {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .body(body.to_string())
            .send()
            .await
            .expect("POST to gateway");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `notifications/cancelled` for request `id` (a notification: 202 when taken).
    pub async fn cancel(&self, id: i64) -> Reply {
        self.post_raw(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                    "params": {"requestId": id, "reason": "guessing"}}),
            &[],
        )
        .await
    }

    pub async fn request(&self, method: &str, params: Value) -> Reply {
        self.post_raw(
            &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
            &[],
        )
        .await
    }

    /// `tools/call`, returning the `result` (panics on a JSON-RPC error).
    pub async fn call(&self, tool: &str, args: Value) -> Value {
        let r = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        assert_eq!(r.status, 200, "tools/call {tool}: {:?}", r.body);
        r.body
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("tools/call {tool} returned no result: {}", r.body))
    }

    /// `execute_query` with just a query, returning the `result`.
    pub async fn query(&self, sql: &str) -> Value {
        self.call("execute_query", json!({ "query": sql })).await
    }

    pub async fn tool_names(&self) -> Vec<String> {
        let r = self.request("tools/list", json!({})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["result"]["tools"]
            .as_array()
            .expect("tools array")
            .iter()
            .map(|t| t["name"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// An `initialize` request (`id` 1) for protocol `version`.
pub fn initialize(version: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "chmcp-tests", "version": "1"}}})
}

/// A tool result's `structuredContent`; fails the test on a tool error.
pub fn structured(result: &Value) -> &Value {
    assert_ne!(result["isError"], json!(true), "tool error: {result}");
    &result["structuredContent"]
}

/// A tool result's text blocks, joined by newlines.
pub fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

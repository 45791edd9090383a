//! The MCP server, transport-neutral: protocol eras, method dispatch (one method table
//! for the cluster and fleet paths), the fleet connector, one run helper for both
//! transports, and stdio. The HTTP transport is the edge's (`http::transport`).

pub mod discovery;
pub mod dispatch;
pub mod fleet;
pub mod prompts;
pub mod protocol;
pub mod run;
pub mod stdio;

use serde_json::Value;

/// One incoming JSON-RPC message, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification {
        method: String,
        params: Option<Value>,
    },
    /// A response or error sent by the client (to a server request); acknowledged only.
    Response,
}

/// Sorts a parsed JSON value into a message kind, or says why it is not one.
pub fn classify_message(v: Value) -> Result<Incoming, String> {
    let Value::Object(mut m) = v else {
        return Err(if v.is_array() {
            "JSON-RPC batches are not supported; send one message per request".into()
        } else {
            "a JSON-RPC message must be an object".into()
        });
    };
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err("`jsonrpc` must be \"2.0\"".into());
    }
    let params = m.remove("params");
    match (m.remove("method"), m.remove("id")) {
        (Some(Value::String(method)), Some(id)) => {
            if !(id.is_string() || id.is_number()) {
                return Err("`id` must be a string or a number".into());
            }
            Ok(Incoming::Request { id, method, params })
        }
        (Some(Value::String(method)), None) => Ok(Incoming::Notification { method, params }),
        (Some(_), _) => Err("`method` must be a string".into()),
        (None, Some(_)) if m.contains_key("result") || m.contains_key("error") => {
            Ok(Incoming::Response)
        }
        _ => Err("not a JSON-RPC request, notification or response".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_are_sorted_by_kind() {
        assert!(matches!(
            classify_message(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
            Ok(Incoming::Request { .. })
        ));
        assert!(matches!(
            classify_message(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})),
            Ok(Incoming::Notification { .. })
        ));
        assert_eq!(
            classify_message(json!({"jsonrpc": "2.0", "id": 1, "result": {}})),
            Ok(Incoming::Response)
        );
        assert!(
            classify_message(json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]))
                .unwrap_err()
                .contains("batches")
        );
        assert!(classify_message(json!({"jsonrpc": "2.0", "id": null, "method": "ping"})).is_err());
        assert!(classify_message(json!({"id": 1, "method": "ping"})).is_err());
    }
}

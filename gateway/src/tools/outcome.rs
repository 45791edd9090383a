//! What one tool call produced: the MCP result, how it ended (the metric label), and
//! whether ClickHouse refused who the caller is (so identity may re-probe).

use rmcp::model::{CallToolResult, ContentBlock as Content};
use serde_json::Value;

use crate::clickhouse::QueryError;
use crate::identity::AuthOutcome;

/// How a call ended, as `chmcp_tool_calls_total{outcome}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Ok,
    ToolError,
    Truncated,
}

impl CallStatus {
    pub fn label(self) -> &'static str {
        match self {
            CallStatus::Ok => "ok",
            CallStatus::ToolError => "tool_error",
            CallStatus::Truncated => "truncated",
        }
    }
}

/// A finished tool call: what the caller gets, and what the gateway learns from it.
pub struct CallOutcome {
    pub result: CallToolResult,
    pub status: CallStatus,
    /// ClickHouse refused the credentials (an auth-class failure).
    pub identity_refused: bool,
    /// Rows and JSON bytes returned, when the tool returned query rows.
    pub returned: Option<(u64, u64)>,
}

impl AuthOutcome for CallOutcome {
    fn identity_refused(&self) -> bool {
        self.identity_refused
    }
}

pub fn tool_error(message: impl Into<String>) -> CallOutcome {
    CallOutcome {
        result: CallToolResult::error(vec![Content::text(message.into())]),
        status: CallStatus::ToolError,
        identity_refused: false,
        returned: None,
    }
}

/// A failed query as a tool error carrying ClickHouse's message and its auth class.
pub fn query_failed(e: &QueryError) -> CallOutcome {
    CallOutcome {
        identity_refused: e.is_auth_class(),
        ..tool_error(super::next_step::with_next(
            e.to_string(),
            super::next_step::after_query_error(e),
        ))
    }
}

pub fn structured(v: Value) -> CallOutcome {
    let text = v.to_string();
    structured_with_text(v, text)
}

/// A success whose text block says the structured content in another form (compact
/// rows, a search's list): `structuredContent` keeps the typed JSON.
pub fn structured_with_text(v: Value, text: String) -> CallOutcome {
    let mut r = CallToolResult::success(vec![Content::text(text)]);
    r.structured_content = Some(v);
    CallOutcome {
        result: r,
        status: CallStatus::Ok,
        identity_refused: false,
        returned: None,
    }
}

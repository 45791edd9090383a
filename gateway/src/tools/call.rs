//! Running one tool: argument check, then the tool's body. Every failure is a tool
//! result with `isError`, never a protocol error.

use serde_json::{Map, Value};

use super::args::check_known_args;
use super::context::ToolContext;
use super::next_step::{after_tool_refusal, with_next};
use super::outcome::{tool_error, CallOutcome};
use super::{dynamic_calls, listing, query, Action, Entry};

/// Runs one tool. Every failure is a tool result with `isError`, never a protocol error.
pub async fn call_tool(
    ctx: &ToolContext<'_>,
    entry: &Entry,
    args: &Map<String, Value>,
) -> CallOutcome {
    let refused = |m: String| {
        let next = after_tool_refusal(&m);
        tool_error(with_next(m, next))
    };
    if let Err(m) = check_known_args(entry, args) {
        return refused(m);
    }
    let name = entry.tool.name.as_ref();
    let r = match &entry.action {
        Action::ExecuteQuery => query::execute_query(ctx, args).await,
        Action::WriteQuery => query::write_query(ctx, args).await,
        Action::ListDatabases => listing::list_databases(ctx).await,
        Action::ListTables => listing::list_tables(ctx, args).await,
        Action::DescribeTable => listing::describe_table(ctx, args).await,
        Action::View(v) => dynamic_calls::run_view(ctx, name, v, args).await,
        Action::Insert(t) => dynamic_calls::run_insert(ctx, name, t, args).await,
        // Only the fleet connector lists it, and answers it before a cluster is chosen.
        Action::ListClusters => {
            Err("list_clusters is served only by the fleet connector (/mcp)".into())
        }
        // Answered before a tool runs (`mcp::discovery`): reaching here is a bug.
        Action::SearchTools | Action::CallTool => Err(format!(
            "{name} is answered by the gateway, not run as a tool"
        )),
    };
    r.unwrap_or_else(refused)
}

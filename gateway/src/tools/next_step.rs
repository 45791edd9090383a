//! What to try next, appended to every tool error a model may get (gateway.md, "Context
//! economy"): a refusal or a ClickHouse error that says what went wrong but not what to
//! do makes a model guess, and a wrong guess costs a call. Pure.

use crate::clickhouse::sql::SqlError;
use crate::clickhouse::QueryError;

/// The next step after a ClickHouse failure.
pub fn after_query_error(e: &QueryError) -> &'static str {
    const NARROW: &str = "Narrow the query: filter with WHERE (best on the table's sorting key), aggregate, or add a LIMIT.";
    match e {
        QueryError::Server(s) if s.is_auth_class() => {
            "Your identity may not read this: query what list_tables shows you, or ask for the grant."
        }
        QueryError::Server(s) => match s.code {
            Some(60 | 81) => "list_databases and list_tables show what exists and what you may see.",
            Some(16 | 47) => "describe_table shows the table's columns and their exact names.",
            Some(62) => "Fix the SQL where ClickHouse points, then send it again.",
            Some(46) => "Check the function's name: ClickHouse's are case-sensitive (toDate, countIf, uniqExact).",
            Some(43 | 53 | 70 | 386) => "Cast the values to matching types (toString, toInt64, toDate, ...).",
            Some(158 | 159 | 160 | 241 | 307 | 396) => NARROW,
            Some(164) => "This tool runs read-only statements only.",
            _ => "Check the query against describe_table and try a simpler form.",
        },
        QueryError::Unreachable { .. } => "ClickHouse did not answer: try again shortly.",
        QueryError::Timeout(_) => NARROW,
        QueryError::Format(_) => "Select fewer or simpler columns, or try again.",
        QueryError::Settings(_) => "Leave out `settings`, or use only those the tool's schema lists.",
    }
}

/// The next step after the SQL guard refused a query, when its message has none.
pub fn after_sql_refusal(e: &SqlError) -> &'static str {
    match e {
        SqlError::Empty => "Send one SQL statement.",
        SqlError::Untokenizable { .. }
        | SqlError::NestedComment { .. }
        | SqlError::EscapedFunctionName(_) => {
            "Write that part of the query plainly and send it again."
        }
        SqlError::NotReadOnlyWritesDisabled(_) => "Ask a read-only question instead (SELECT ...).",
        SqlError::NoStatementKeyword => {
            "Start the query with SELECT (or WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN)."
        }
        SqlError::MultipleWriteStatements(_) => "Send them one at a time.",
        SqlError::BlockedClause(_) => "Rewrite the query without it.",
        SqlError::TableFunction(_) => {
            "Query tables on this server instead: list_tables shows them."
        }
        SqlError::TooLong { .. } => {
            "Shorten the query: read data from a table rather than inlining it."
        }
        // Their messages already say what to do (send one at a time, use write_query,
        // check the spelling); refusals added later say it themselves.
        #[allow(unreachable_patterns)]
        _ => "",
    }
}

/// The next step after a tool refused its arguments or its request (the messages of
/// `tools::args`, the schema tools, the view and insert tools).
pub fn after_tool_refusal(message: &str) -> &'static str {
    if message.starts_with("missing required argument")
        || message.starts_with("unknown argument")
        || message.starts_with("argument `")
    {
        "The tool's inputSchema (tools/list, or search_tools for a view's tool) lists its arguments and their types."
    } else if message.starts_with("setting `") {
        "Leave that setting out, or use one of those allowed."
    } else if message.starts_with("writes are disabled") {
        "Ask a read-only question with execute_query instead."
    } else if message.contains("does not exist, or you may not see it") {
        "list_tables shows the tables you can see."
    } else {
        ""
    }
}

/// `message` followed by `next` (when there is one), as one sentence-ended text.
pub fn with_next(message: impl Into<String>, next: &str) -> String {
    let mut m = message.into();
    if next.is_empty() {
        return m;
    }
    if !m.ends_with(['.', '!', '?']) {
        m.push('.');
    }
    m.push(' ');
    m.push_str(next);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clickhouse::error::ServerError;

    fn server(code: u32) -> QueryError {
        QueryError::Server(ServerError {
            status: 404,
            code: Some(code),
            name: None,
            message: "x".into(),
        })
    }

    #[test]
    fn every_clickhouse_error_gets_a_next_step() {
        assert!(after_query_error(&server(60)).contains("list_tables"));
        assert!(after_query_error(&server(47)).contains("describe_table"));
        assert!(after_query_error(&server(159)).contains("LIMIT"));
        assert!(after_query_error(&server(516)).contains("grant"));
        assert!(!after_query_error(&server(9999)).is_empty());
        assert!(
            !after_query_error(&QueryError::Timeout(std::time::Duration::from_secs(1))).is_empty()
        );
    }

    #[test]
    fn refusals_without_one_get_one_and_the_text_reads_as_sentences() {
        assert!(!after_sql_refusal(&SqlError::Empty).is_empty());
        assert!(after_sql_refusal(&SqlError::TableFunction("url".into())).contains("list_tables"));
        assert_eq!(
            with_next("the query is empty", "Send one."),
            "the query is empty. Send one."
        );
        assert_eq!(with_next("done.", ""), "done.");
        assert!(after_tool_refusal("missing required argument `day`").contains("inputSchema"));
        assert!(
            after_tool_refusal("table a.b does not exist, or you may not see it")
                .contains("list_tables")
        );
    }
}

//! What a caller may choose about how ClickHouse runs a query, as allow-lists
//! (docs/spec-notes.md, "Read-only guard"): the settings of every `SETTINGS`
//! clause, the table functions a query reads from, and the engines and dictionary
//! sources a write creates. A deny-list lags every ClickHouse release; these do not.
//!
//! Each check reads the query as ClickHouse's lexer does (`TokenizedQuery`) and fails
//! closed: where the gateway cannot tell where a clause ends, it reads more of the query
//! as that clause than ClickHouse would, never less.

// Network text: no indexing or slicing that could panic (get() and iterators only).
#![deny(clippy::indexing_slicing, clippy::string_slice)]

use super::lexer::{Token, TokenKind};
use super::settings::GATEWAY_SETTINGS;
use super::sql::{SqlError, TokenizedQuery};

/// The default of `server.allowed_query_settings`: tuning knobs that change how fast or
/// in what order a query runs, never what it may read, reach or record (docs/security.md).
pub const DEFAULT_QUERY_SETTINGS: [&str; 6] = [
    "max_threads",
    "max_block_size",
    "join_algorithm",
    "join_use_nulls",
    "optimize_read_in_order",
    "use_uncompressed_cache",
];

/// Table functions that stay inside the server, lower-case; `server.allowed_table_functions`
/// adds to them. Borderline ones left out: `cluster`/`clusterAllReplicas`/`remote` (other
/// servers, under the cluster's configured user rather than the caller's), `input` (the
/// insert's own data stream), `viewIfPermitted` (its `ELSE` names a second table function
/// the guard does not follow), `mergeTreeIndex` and friends (table internals).
pub const INSIDE_TABLE_FUNCTIONS: [&str; 15] = [
    "numbers",
    "numbers_mt",
    "zeros",
    "zeros_mt",
    "values",
    "generaterandom",
    "generate_series",
    "generateseries",
    "null",
    "view",
    "merge",
    "dictionary",
    "format",
    "loop",
    "primes",
];

/// Table and database engines a write may create, lower-case: local storage and views.
/// Left out: `Replicated*` and `KeeperMap` (a Keeper path copied from another table joins
/// its data), `Distributed` (other servers under the cluster's user), `Buffer` (flushes
/// into another table), and every engine that reaches outside.
pub const LOCAL_ENGINES: [&str; 22] = [
    "mergetree",
    "replacingmergetree",
    "summingmergetree",
    "aggregatingmergetree",
    "collapsingmergetree",
    "versionedcollapsingmergetree",
    "graphitemergetree",
    "coalescingmergetree",
    "log",
    "tinylog",
    "stripelog",
    "memory",
    "set",
    "join",
    "null",
    "merge",
    "dictionary",
    "generaterandom",
    "embeddedrocksdb",
    // Database engines.
    "atomic",
    "ordinary",
    "lazy",
];

/// Dictionary sources a write may create, lower-case. `CLICKHOUSE` only local and only
/// with `TABLE`/`DB` (see `LOCAL_CLICKHOUSE_SOURCE_KEYS`): a `QUERY`, `WHERE` or
/// `INVALIDATE_QUERY` is SQL the server runs later, outside this guard.
pub const LOCAL_DICTIONARY_SOURCES: [&str; 2] = ["clickhouse", "null"];

/// The keys a `SOURCE(CLICKHOUSE(...))` may use and still count as local.
pub const LOCAL_CLICKHOUSE_SOURCE_KEYS: [&str; 4] = ["table", "db", "update_field", "update_lag"];

/// Words that end a `SETTINGS` list when they follow a complete `name = value`: the
/// clauses and statements that may come after one.
const AFTER_SETTINGS: [&str; 11] = [
    "SELECT",
    "WITH",
    "VALUES",
    "FORMAT",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "INTO",
    "FROM",
    "TO",
    "PARALLEL",
];

/// Words that cannot name a setting or an engine: after `SETTINGS`/`ENGINE` they show the
/// word was a column or alias (`SELECT settings FROM t`). A real clause needs a name.
const NOT_A_NAME: [&str; 16] = [
    "FROM", "WHERE", "AS", "AND", "OR", "NOT", "IS", "IN", "LIKE", "GROUP", "ORDER", "LIMIT",
    "HAVING", "JOIN", "ON", "UNION",
];

/// Words that end a `FROM` list at the same bracket depth.
const END_OF_FROM: [&str; 17] = [
    "WHERE",
    "PREWHERE",
    "GROUP",
    "ORDER",
    "HAVING",
    "LIMIT",
    "SETTINGS",
    "FORMAT",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "WINDOW",
    "QUALIFY",
    "INTO",
    "SELECT",
    "OFFSET",
    "ARRAY",
];

/// Scalar functions whose arguments use `FROM` (`EXTRACT(DAY FROM d)`): not a table list.
const FROM_IN_ARGUMENTS: [&str; 6] = [
    "extract",
    "trim",
    "substring",
    "substr",
    "overlay",
    "position",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(
        "the query sets `{0}` in a SETTINGS clause; this server lets callers change only the \
         settings in server.allowed_query_settings ({1}). Remove `{0}` from the query, or ask an \
         administrator to add it to server.allowed_query_settings"
    )]
    Setting(String, String),
    #[error(
        "the query sets `{0}`; callers never choose this setting (it decides what ClickHouse \
         may run or what it records, or it is a limit the gateway sets itself). Remove it from \
         the query"
    )]
    ReservedSetting(String),
    #[error(
        "the gateway cannot read the SETTINGS clause at byte {0}; write it as \
         `SETTINGS name = value, ...` with plain values"
    )]
    UnreadableSettings(usize),
    #[error(
        "the table function `{0}` is not one this server knows to stay inside ClickHouse \
         (allowed: {1}). Query a table instead, or ask an administrator to add `{0}` to \
         server.allowed_table_functions"
    )]
    TableFunction(String, String),
    #[error(
        "write_query does not create a {kind} `{name}` here: it may reach outside the server. \
         Use a local one ({allowed}), or ask an administrator to add `{name}` to \
         server.allowed_write_engines"
    )]
    WriteEngine {
        kind: &'static str,
        name: String,
        allowed: String,
    },
}

/// Settings no caller chooses, whatever the configuration says: `readonly`, `allow_*`,
/// experimental flags, the `log_*` family (the audit trail) and the gateway's own limits.
pub fn is_reserved_setting(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "readonly"
        || lower == "workload"
        || lower.starts_with("allow_")
        || lower.contains("experimental")
        || lower.starts_with("log_")
        || GATEWAY_SETTINGS.contains(&lower.as_str())
}

/// The settings policy for one query: every setting named in a `SETTINGS` clause anywhere
/// (top level, sub-queries, CTEs, table-function arguments, `INSERT ... SELECT`) is in
/// `allowed` and not reserved.
pub fn check_settings(q: &TokenizedQuery<'_>, allowed: &[String]) -> Result<(), PolicyError> {
    for statement in q.statements() {
        for (i, token) in statement.iter().enumerate() {
            if !is_word(q, *token, "SETTINGS") || follows_dot(statement, i) {
                continue;
            }
            for name in settings_list(q, statement.get(i + 1..).unwrap_or_default())? {
                check_setting_name(&name, allowed)?;
            }
        }
    }
    Ok(())
}

/// One setting name against the policy (also used for `execute_query`'s `settings`).
pub fn check_setting_name(name: &str, allowed: &[String]) -> Result<(), PolicyError> {
    if is_reserved_setting(name) {
        return Err(PolicyError::ReservedSetting(name.to_string()));
    }
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
        return Ok(());
    }
    Err(PolicyError::Setting(name.to_string(), list(allowed)))
}

/// Where the settings list after a `SETTINGS` keyword is, the names it sets. Fails closed:
/// after a value, every name that follows a comma at the same depth counts, until a word
/// that ends the list.
fn settings_list(q: &TokenizedQuery<'_>, rest: &[Token]) -> Result<Vec<String>, PolicyError> {
    let mut names = Vec::new();
    let Some(first) = rest.first() else {
        return Ok(names);
    };
    match first.kind {
        TokenKind::BareWord if NOT_A_NAME.iter().any(|w| is_word(q, *first, w)) => {
            return Ok(names)
        }
        TokenKind::BareWord | TokenKind::QuotedIdentifier => {}
        // `SELECT settings, x` or `SELECT settings)`: a column, no clause.
        _ => return Ok(names),
    }
    #[derive(PartialEq)]
    enum State {
        Name,
        AfterName,
        Value,
        AfterValue,
    }
    let mut state = State::Name;
    let mut i = 0;
    while let Some(token) = rest.get(i) {
        match state {
            State::Name => match q.function_name(*token)? {
                Some(name) => {
                    names.push(name);
                    state = State::AfterName;
                }
                None => return Err(PolicyError::UnreadableSettings(token.start)),
            },
            State::AfterName | State::AfterValue => match token.kind {
                TokenKind::Operator if token.text(q.sql()) == "=" && state == State::AfterName => {
                    state = State::Value
                }
                TokenKind::Operator if token.text(q.sql()) == "," => state = State::Name,
                TokenKind::ClosingRoundBracket | TokenKind::ClosingSquareBracket => break,
                TokenKind::Operator if token.text(q.sql()) == "}" => break,
                TokenKind::BareWord if AFTER_SETTINGS.iter().any(|w| is_word(q, *token, w)) => {
                    break
                }
                // Constraint words of `CREATE SETTINGS PROFILE` (MIN, MAX, READONLY ...),
                // casts, operators: not a new name; a later comma still starts one.
                _ if opens_group(q, *token) => {
                    i = skip_group(q, rest, i);
                    state = State::AfterValue;
                }
                _ => state = State::AfterValue,
            },
            State::Value => {
                // Whatever follows `=` is the value's first token, keyword or not; a sign
                // stays in the value.
                if token.kind == TokenKind::Operator && matches!(token.text(q.sql()), "-" | "+") {
                    i += 1;
                    continue;
                }
                if opens_group(q, *token) {
                    i = skip_group(q, rest, i);
                }
                state = State::AfterValue;
            }
        }
        i += 1;
    }
    Ok(names)
}

/// The index of the token that closes the bracket opened at `open` (`(`, `[` or `{`), or
/// `tokens.len()` when it never closes.
fn skip_group(q: &TokenizedQuery<'_>, tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, t) in tokens.iter().enumerate().skip(open) {
        match (t.kind, t.text(q.sql())) {
            (TokenKind::OpeningRoundBracket, _) | (TokenKind::Operator, "[" | "{") => depth += 1,
            (TokenKind::ClosingRoundBracket | TokenKind::ClosingSquareBracket, _)
            | (TokenKind::Operator, "}") => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0 {
            return j;
        }
    }
    tokens.len()
}

fn opens_group(q: &TokenizedQuery<'_>, t: Token) -> bool {
    t.kind == TokenKind::OpeningRoundBracket
        || (t.kind == TokenKind::Operator && matches!(t.text(q.sql()), "[" | "{"))
}

/// The table-function policy: a call in a table position (after `FROM`, `JOIN`, a comma of
/// a `FROM` list, `INSERT INTO FUNCTION`, `DESCRIBE [TABLE]`, `CREATE TABLE ... AS`) is
/// one of INSIDE_TABLE_FUNCTIONS or `extra`. The deny-list in `sql` still applies to
/// calls anywhere.
pub fn check_table_functions(q: &TokenizedQuery<'_>, extra: &[String]) -> Result<(), PolicyError> {
    for statement in q.statements() {
        let creates = statement
            .first()
            .is_some_and(|t| is_word(q, *t, "CREATE") || is_word(q, *t, "ATTACH"));
        // Per open bracket: whether a FROM list is open at that depth, and the name of the
        // function whose arguments the bracket holds (empty for a plain bracket).
        let mut frames: Vec<(bool, String)> = vec![(false, String::new())];
        let mut prev: Option<Token> = None;
        let mut prev2: Option<Token> = None;
        for (i, token) in statement.iter().enumerate() {
            let next_is_call = statement
                .get(i + 1)
                .is_some_and(|t| t.kind == TokenKind::OpeningRoundBracket);
            match token.kind {
                TokenKind::OpeningRoundBracket => {
                    let callee = match prev {
                        Some(p) => q.function_name(p)?.unwrap_or_default(),
                        None => String::new(),
                    };
                    frames.push((false, callee.to_ascii_lowercase()));
                }
                TokenKind::ClosingRoundBracket if frames.len() > 1 => {
                    frames.pop();
                }
                TokenKind::BareWord | TokenKind::QuotedIdentifier => {
                    let in_call_with_from = frames
                        .last()
                        .is_some_and(|(_, callee)| FROM_IN_ARGUMENTS.contains(&callee.as_str()));
                    let depth0 = frames.len() == 1;
                    if let Some(frame) = frames
                        .last_mut()
                        .filter(|_| token.kind == TokenKind::BareWord)
                    {
                        if is_word(q, *token, "FROM") && !in_call_with_from {
                            frame.0 = true;
                        } else if is_word(q, *token, "JOIN") {
                            frame.0 = !prev.is_some_and(|p| is_word(q, p, "ARRAY"));
                        } else if END_OF_FROM.iter().any(|w| is_word(q, *token, w)) {
                            frame.0 = false;
                        }
                    }
                    if next_is_call {
                        let in_from = frames.last().is_some_and(|f| f.0);
                        let table_position = match prev {
                            None => false,
                            Some(p) if p.kind == TokenKind::Operator => {
                                in_from && p.text(q.sql()) == ","
                            }
                            Some(p) => {
                                (is_word(q, p, "FROM") && !in_call_with_from)
                                    || (is_word(q, p, "JOIN")
                                        && !prev2.is_some_and(|t| is_word(q, t, "ARRAY")))
                                    || is_word(q, p, "FUNCTION")
                                    || is_word(q, p, "DESC")
                                    || is_word(q, p, "DESCRIBE")
                                    || (is_word(q, p, "TABLE")
                                        && prev2.is_some_and(|t| {
                                            is_word(q, t, "DESC") || is_word(q, t, "DESCRIBE")
                                        }))
                                    || (creates && depth0 && is_word(q, p, "AS"))
                            }
                        };
                        // A quoted name called anywhere in a FROM list counts too: no
                        // scalar function needs quoting, so this costs nothing real.
                        let quoted_in_from = token.kind == TokenKind::QuotedIdentifier && in_from;
                        if table_position || quoted_in_from {
                            check_table_function(q, *token, extra)?;
                        }
                    }
                }
                _ => {}
            }
            prev2 = prev;
            prev = Some(*token);
        }
    }
    Ok(())
}

fn check_table_function(
    q: &TokenizedQuery<'_>,
    token: Token,
    extra: &[String],
) -> Result<(), PolicyError> {
    let Some(name) = q.function_name(token)? else {
        return Ok(());
    };
    let lower = name.to_ascii_lowercase();
    if INSIDE_TABLE_FUNCTIONS.contains(&lower.as_str())
        || extra.iter().any(|e| e.eq_ignore_ascii_case(&name))
    {
        return Ok(());
    }
    let mut allowed: Vec<String> = INSIDE_TABLE_FUNCTIONS
        .iter()
        .map(|s| s.to_string())
        .collect();
    allowed.extend(extra.iter().cloned());
    Err(PolicyError::TableFunction(name, list(&allowed)))
}

/// The write policy: every `ENGINE [=] Name` and `SOURCE(NAME(...))` of the statement names
/// a local engine or source, or one listed in `extra` (`server.allowed_write_engines`).
pub fn check_write_engines(q: &TokenizedQuery<'_>, extra: &[String]) -> Result<(), PolicyError> {
    let admitted = |name: &str, local: &[&str]| {
        local.contains(&name.to_ascii_lowercase().as_str())
            || extra.iter().any(|e| e.eq_ignore_ascii_case(name))
    };
    for statement in q.statements() {
        for (i, token) in statement.iter().enumerate() {
            if follows_dot(statement, i) {
                continue;
            }
            // A column named `engine` (`(engine String`, `, engine`, `ADD COLUMN engine`)
            // is no engine clause: ClickHouse reads one only after the table's definition.
            let column = i
                .checked_sub(1)
                .and_then(|p| statement.get(p))
                .is_some_and(|p| {
                    p.kind == TokenKind::OpeningRoundBracket
                        || (p.kind == TokenKind::Operator && p.text(q.sql()) == ",")
                        || is_word(q, *p, "COLUMN")
                });
            if is_word(q, *token, "ENGINE") && !column {
                let mut j = i + 1;
                if statement
                    .get(j)
                    .is_some_and(|t| t.kind == TokenKind::Operator && t.text(q.sql()) == "=")
                {
                    j += 1;
                } else if statement.get(j).is_some_and(|t| {
                    t.kind != TokenKind::BareWord && t.kind != TokenKind::QuotedIdentifier
                        || NOT_A_NAME.iter().any(|w| is_word(q, *t, w))
                }) {
                    // `SELECT engine FROM system.tables`: a column.
                    continue;
                }
                let Some(name_token) = statement.get(j) else {
                    continue;
                };
                let Some(name) = q.function_name(*name_token)? else {
                    return Err(PolicyError::UnreadableSettings(name_token.start));
                };
                if !admitted(&name, &LOCAL_ENGINES) {
                    return Err(engine_error(
                        "table or database engine",
                        name,
                        &LOCAL_ENGINES,
                        extra,
                    ));
                }
            } else if is_word(q, *token, "SOURCE")
                && statement
                    .get(i + 1)
                    .is_some_and(|t| t.kind == TokenKind::OpeningRoundBracket)
            {
                let Some(name_token) = statement.get(i + 2) else {
                    continue;
                };
                let Some(name) = q.function_name(*name_token)? else {
                    continue;
                };
                let local = admitted(&name, &LOCAL_DICTIONARY_SOURCES)
                    && (!name.eq_ignore_ascii_case("clickhouse")
                        || extra.iter().any(|e| e.eq_ignore_ascii_case(&name))
                        || clickhouse_source_is_local(
                            q,
                            statement.get(i + 3..).unwrap_or_default(),
                        ));
                if !local {
                    return Err(engine_error(
                        "dictionary source",
                        name,
                        &LOCAL_DICTIONARY_SOURCES,
                        extra,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `SOURCE(CLICKHOUSE(TABLE 't' DB 'd'))`: local and naming only a table. `rest` starts at
/// the source's own `(`.
fn clickhouse_source_is_local(q: &TokenizedQuery<'_>, rest: &[Token]) -> bool {
    if rest.first().map(|t| t.kind) != Some(TokenKind::OpeningRoundBracket) {
        // `SOURCE(CLICKHOUSE)` alone: local defaults.
        return true;
    }
    let end = skip_group(q, rest, 0);
    rest.iter()
        .take(end)
        .skip(1)
        .filter(|t| t.kind == TokenKind::BareWord)
        .all(|t| {
            LOCAL_CLICKHOUSE_SOURCE_KEYS
                .iter()
                .any(|k| t.text(q.sql()).eq_ignore_ascii_case(k))
        })
}

fn engine_error(kind: &'static str, name: String, local: &[&str], extra: &[String]) -> PolicyError {
    let mut allowed: Vec<String> = local.iter().map(|s| s.to_string()).collect();
    allowed.extend(extra.iter().cloned());
    PolicyError::WriteEngine {
        kind,
        name,
        allowed: list(&allowed),
    }
}

fn is_word(q: &TokenizedQuery<'_>, t: Token, word: &str) -> bool {
    t.kind == TokenKind::BareWord && t.text(q.sql()).eq_ignore_ascii_case(word)
}

/// `system.settings`: a qualified name's part, not a keyword.
fn follows_dot(statement: &[Token], i: usize) -> bool {
    i.checked_sub(1)
        .and_then(|p| statement.get(p))
        .is_some_and(|t| t.kind == TokenKind::Dot)
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        DEFAULT_QUERY_SETTINGS.map(String::from).to_vec()
    }

    fn settings(sql: &str) -> Result<(), PolicyError> {
        check_settings(&TokenizedQuery::new(sql)?, &defaults())
    }

    fn functions(sql: &str) -> Result<(), PolicyError> {
        check_table_functions(&TokenizedQuery::new(sql)?, &[])
    }

    fn engines(sql: &str, extra: &[&str]) -> Result<(), PolicyError> {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        check_write_engines(&TokenizedQuery::new(sql)?, &extra)
    }

    fn refused_setting(e: Result<(), PolicyError>) -> String {
        match e {
            Err(PolicyError::Setting(n, _) | PolicyError::ReservedSetting(n)) => n,
            other => panic!("expected a refused setting, got {other:?}"),
        }
    }

    #[test]
    fn the_issue_eval_bypass_is_refused_twice() {
        let q = "SELECT * FROM eval(concat('SELECT * FROM ur','l(''http://127.0.0.1:21100/?query=SELECT+4242'',''TSV'',''x String'')')) SETTINGS allow_experimental_eval_table_function=1";
        assert_eq!(
            refused_setting(settings(q)),
            "allow_experimental_eval_table_function"
        );
        assert!(matches!(functions(q), Err(PolicyError::TableFunction(n, _)) if n == "eval"));
    }

    #[test]
    fn settings_in_every_position_are_read() {
        for (q, name) in [
            ("SELECT 1 SETTINGS log_comment = 'x'", "log_comment"),
            ("SELECT 1 SETTINGS max_threads = 1, log_queries = 0", "log_queries"),
            ("SELECT 1 SETTINGS max_threads=1,log_queries=0 FORMAT TSV", "log_queries"),
            ("SELECT * FROM (SELECT 1 SETTINGS readonly = 0)", "readonly"),
            ("WITH x AS (SELECT 1 SETTINGS max_result_rows = 9) SELECT * FROM x", "max_result_rows"),
            ("SELECT * FROM view(SELECT 1 SETTINGS max_memory_usage = 1)", "max_memory_usage"),
            ("EXPLAIN SELECT 1 SETTINGS max_execution_time = 9", "max_execution_time"),
            ("INSERT INTO t SETTINGS async_insert = 1 SELECT 1", "async_insert"),
            ("INSERT INTO t SELECT 1 SETTINGS max_threads = 1, `log_comment` = 'x'", "log_comment"),
            ("SELECT 1 FORMAT TSV SETTINGS format_csv_delimiter = ','", "format_csv_delimiter"),
            ("SELECT 1 SETTINGS allow_experimental_eval_table_function", "allow_experimental_eval_table_function"),
            ("SELECT 1 settings Max_Threads = 1, \"param_x\" = 1", "param_x"),
            ("SELECT 1 SETTINGS max_threads = f(1, 2), workload = 'x'", "workload"),
            ("SELECT 1 SETTINGS max_threads = -1, a = [1, 2], b = {'k': 1}", "a"),
            ("CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a SETTINGS disk = disk(type = s3)", "disk"),
            ("CREATE SETTINGS PROFILE p SETTINGS max_threads = 1 MIN 1 MAX 2, readonly = 0", "PROFILE"),
            ("SELECT 1 SETTINGS max_threads = 1 MIN 1, readonly = 0", "readonly"),
        ] {
            assert_eq!(refused_setting(settings(q)), name, "{q}");
        }
    }

    #[test]
    fn harmless_settings_and_the_word_settings_elsewhere_pass() {
        for q in [
            "SELECT 1 SETTINGS max_threads = 2, join_algorithm = 'hash'",
            "SELECT name FROM system.settings WHERE name = 'readonly'",
            "SELECT settings FROM t",
            "SELECT settings, log_comment FROM t",
            "SELECT 'SETTINGS readonly = 0'",
            "SELECT 1 -- SETTINGS readonly = 0\n",
            "SELECT * FROM (SELECT 1 SETTINGS max_threads = 1) WHERE 1 = 1, 2",
            "INSERT INTO t SETTINGS max_threads = 1 VALUES (1, 2)",
        ] {
            assert_eq!(settings(q), Ok(()), "{q}");
        }
    }

    #[test]
    fn reserved_settings_are_refused_even_when_listed() {
        let listed = vec!["readonly".to_string(), "log_comment".to_string()];
        let q = TokenizedQuery::new("SELECT 1 SETTINGS log_comment = 'x'").unwrap();
        assert!(matches!(
            check_settings(&q, &listed),
            Err(PolicyError::ReservedSetting(_))
        ));
        for name in [
            "readonly",
            "allow_ddl",
            "ALLOW_introspection_functions",
            "enable_experimental_x",
            "log_queries",
            "max_execution_time",
            "max_result_rows",
            "result_overflow_mode",
            "workload",
        ] {
            assert!(is_reserved_setting(name), "{name}");
        }
        assert!(!is_reserved_setting("max_threads"));
    }

    #[test]
    fn a_refusal_names_the_setting_the_key_and_what_to_do() {
        let e = settings("SELECT 1 SETTINGS max_memory_usage = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`max_memory_usage`"), "{e}");
        assert!(e.contains("server.allowed_query_settings"), "{e}");
        assert!(
            e.contains("max_threads"),
            "the allowed ones are listed: {e}"
        );
    }

    #[test]
    fn table_functions_in_table_positions_are_allow_listed() {
        for (q, name) in [
            ("SELECT * FROM eval('SELECT 1')", "eval"),
            (
                "SELECT * FROM numbers(1) AS a, executable('x', TSV, 'a UInt8')",
                "executable",
            ),
            (
                "SELECT * FROM numbers(1) a JOIN futureFunction(1) b ON 1 = 1",
                "futureFunction",
            ),
            (
                "SELECT * FROM numbers(1) a JOIN numbers(1) b ON a.number = b.number, next(1)",
                "next",
            ),
            ("FROM someNewReader('x') SELECT *", "someNewReader"),
            (
                "SELECT * FROM view(FROM cluster('c', system.one) SELECT *)",
                "cluster",
            ),
            (
                "SELECT * FROM view(SELECT * FROM remote('h', system.one))",
                "remote",
            ),
            ("INSERT INTO FUNCTION sink('x') SELECT 1", "sink"),
            ("DESCRIBE TABLE something('x')", "something"),
            ("DESC something('x')", "something"),
            ("CREATE TABLE t AS mysql('h', 'd', 't', 'u', 'p')", "mysql"),
            ("SELECT * FROM `evil`('x')", "evil"),
            ("INSERT INTO FUNCTION \"sink\"('x') SELECT 1", "sink"),
            ("DESCRIBE `quoted`('x')", "quoted"),
            (
                "SELECT * FROM clusterAllReplicas('c', system.one)",
                "clusterAllReplicas",
            ),
        ] {
            assert!(
                matches!(functions(q), Err(PolicyError::TableFunction(ref n, _)) if n == name),
                "{q}: {:?}",
                functions(q)
            );
        }
    }

    #[test]
    fn scalar_calls_and_inside_table_functions_pass() {
        for q in [
            "SELECT count(x), lower(y) FROM numbers(10) WHERE x IN (1, 2)",
            "SELECT * FROM numbers(1) AS a, zeros(1) AS b",
            "SELECT EXTRACT(DAY FROM toDate('2020-01-02'))",
            "SELECT trim(BOTH 'x' FROM lower('xAx'))",
            "SELECT * FROM (SELECT 1) ARRAY JOIN range(3) AS r, range(2) AS s",
            "SELECT * FROM t WHERE a = lower('x') GROUP BY f(a), g(b)",
            "SELECT CAST(x AS Decimal(10, 2)) FROM t",
            "CREATE TABLE t (a Nullable(UInt8)) ENGINE = MergeTree ORDER BY tuple()",
            "SELECT * FROM view(SELECT * FROM generateRandom('a UInt8') LIMIT 1)",
            "SELECT * FROM merge(currentDatabase(), '^t'), dictionary('d')",
        ] {
            assert_eq!(functions(q), Ok(()), "{q}");
        }
        let extra = vec!["cluster".to_string()];
        let q = TokenizedQuery::new("SELECT * FROM cluster('c', system.one)").unwrap();
        assert_eq!(check_table_functions(&q, &extra), Ok(()));
    }

    #[test]
    fn writes_are_judged_by_the_engines_and_sources_they_create() {
        for (q, name) in [
            ("CREATE TABLE k (a String) ENGINE = Kafka('b:9092', 't', 'g', 'JSONEachRow')", "Kafka"),
            ("CREATE TABLE k (a String) ENGINE RabbitMQ SETTINGS x = 1", "RabbitMQ"),
            ("CREATE TABLE k (a String) ENGINE = NATS", "NATS"),
            ("CREATE TABLE k (a String) ENGINE = ExecutablePool('s', TSV, (SELECT 1))", "ExecutablePool"),
            ("CREATE TABLE k (a String) ENGINE = URL('http://x', CSV)", "URL"),
            ("CREATE TABLE k (a String) ENGINE = File(CSV)", "File"),
            ("CREATE TABLE k (a String) ENGINE = Distributed(c, db, t)", "Distributed"),
            ("CREATE TABLE k (a String) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a", "ReplicatedMergeTree"),
            ("CREATE DATABASE d ENGINE = MySQL('h:3306', 'db', 'u', 'p')", "MySQL"),
            ("CREATE MATERIALIZED VIEW v ENGINE = S3('http://x') AS SELECT 1", "S3"),
            ("CREATE DICTIONARY d (k UInt64, v String) PRIMARY KEY k SOURCE(HTTP(URL 'http://x' FORMAT 'TSV')) LAYOUT(FLAT()) LIFETIME(0)", "HTTP"),
            ("CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(CLICKHOUSE(HOST '10.1.2.3' PORT 9000 TABLE 't')) LAYOUT(FLAT()) LIFETIME(0)", "CLICKHOUSE"),
            ("CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(CLICKHOUSE(QUERY 'SELECT * FROM url(''x'')')) LAYOUT(FLAT()) LIFETIME(0)", "CLICKHOUSE"),
            ("CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(MONGODB(host 'h')) LAYOUT(FLAT()) LIFETIME(0)", "MONGODB"),
            ("CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(redis(host 'h')) LAYOUT(FLAT()) LIFETIME(0)", "redis"),
        ] {
            match engines(q, &[]) {
                Err(PolicyError::WriteEngine { name: n, .. }) => assert_eq!(n, name, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
    }

    #[test]
    fn local_engines_and_sources_pass_and_the_key_admits_others() {
        for q in [
            "CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a",
            "CREATE TABLE t (a UInt8) ENGINE Memory",
            "CREATE TABLE t ENGINE = Log AS SELECT 1",
            "CREATE DATABASE d ENGINE = Atomic",
            "CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(CLICKHOUSE(TABLE 't' DB 'd')) LAYOUT(FLAT()) LIFETIME(0)",
            "INSERT INTO t SELECT engine, name FROM system.tables",
            "INSERT INTO t SELECT t.engine FROM system.tables AS t",
            "ALTER TABLE t ADD COLUMN engine String",
            "CREATE TABLE t (engine String, b UInt8) ENGINE = Memory",
        ] {
            assert_eq!(engines(q, &[]), Ok(()), "{q}");
        }
        assert_eq!(
            engines(
                "CREATE TABLE k (a String) ENGINE = Kafka('b', 't', 'g', 'TSV')",
                &["kafka"]
            ),
            Ok(())
        );
        assert_eq!(
            engines("CREATE DICTIONARY d (k UInt64) PRIMARY KEY k SOURCE(CLICKHOUSE(HOST 'h' TABLE 't')) LAYOUT(FLAT()) LIFETIME(0)", &["CLICKHOUSE"]),
            Ok(())
        );
        let e = engines("CREATE TABLE k (a String) ENGINE = NATS", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`NATS`")
                && e.contains("server.allowed_write_engines")
                && e.contains("mergetree"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_policies_never_panic(sql in any::<String>()) {
            if let Ok(q) = TokenizedQuery::new(&sql) {
                let _ = check_settings(&q, &[]);
                let _ = check_table_functions(&q, &[]);
                let _ = check_write_engines(&q, &[]);
            }
        }
    }
}

//! SQL guards and literal escaping. The guards read a query as ClickHouse's own lexer
//! does (see `lexer.rs`): they look only at significant tokens, so nothing inside a
//! literal, a quoted identifier, a heredoc or a comment counts, and anything the gateway
//! cannot tokenize with certainty is refused.

// Network text: no indexing or slicing that could panic (get() and iterators only).
#![deny(clippy::indexing_slicing, clippy::string_slice)]

use super::lexer::{self, Token, TokenKind};

/// The server's own databases, as a SQL list: the listings, discovery, the schema
/// resource and completions leave them out (`WHERE database NOT IN …`).
pub const SYSTEM_DATABASES: &str = "('system', 'INFORMATION_SCHEMA', 'information_schema')";

/// Statement keywords `execute_query` accepts (docs/spec-notes.md, "Read-only guard").
pub const READ_ONLY_KEYWORDS: [&str; 7] = [
    "SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN",
];

/// Table functions that reach outside the server (docs/spec-notes.md, "Read-only guard": the spec's list, the
/// `...Cluster`/`...Secure` variants of its members, and the other functions of current
/// ClickHouse that read remote storage or the server's files), lower-case: ClickHouse
/// resolves many function names case-insensitively, so the guard compares them so too.
pub const OUTSIDE_TABLE_FUNCTIONS: [&str; 35] = [
    // Runs a query built at run time: whatever it names, the guard never sees.
    "eval",
    "url",
    "urlcluster",
    "file",
    "filecluster",
    "filesystem",
    "remote",
    "remotesecure",
    "cluster",
    "clusterallreplicas",
    "s3",
    "s3cluster",
    "gcs",
    "oss",
    "cosn",
    "hdfs",
    "hdfscluster",
    "azureblobstorage",
    "azureblobstoragecluster",
    "mysql",
    "postgresql",
    "mongodb",
    "redis",
    "sqlite",
    "jdbc",
    "odbc",
    "executable",
    "input",
    "hive",
    "ytsaurus",
    "arrowflight",
    "bigquery",
    "python",
    "catboostpool",
    "prometheusquery",
];

/// First words of the statements that change data, schema, access or the server: the
/// only ones `execute_query` refers to `write_query`.
const WRITE_KEYWORDS: &[&str] = &[
    "INSERT", "CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME", "EXCHANGE", "OPTIMIZE", "ATTACH",
    "DETACH", "DELETE", "UPDATE", "UNDROP", "GRANT", "REVOKE", "SET", "USE", "SYSTEM", "KILL",
    "BACKUP", "RESTORE", "MOVE", "CHECK", "REPLACE", "UPSERT", "BEGIN", "COMMIT", "ROLLBACK",
    "WATCH", "PARALLEL",
];

/// Families whose every member reaches outside (`icebergS3`, `deltaLakeAzureCluster`, ...).
pub const OUTSIDE_TABLE_FUNCTION_PREFIXES: [&str; 4] = ["iceberg", "deltalake", "hudi", "paimon"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("the query is empty")]
    Empty,
    #[error("the query has {what} at byte {offset}; the gateway refuses what it cannot tokenize exactly as ClickHouse does")]
    Untokenizable { what: &'static str, offset: usize },
    #[error("the query has a /* comment nested in another at byte {offset}; ClickHouse versions disagree on where it ends, so the gateway refuses it")]
    NestedComment { offset: usize },
    #[error(
        "execute_query runs exactly one statement; this query has {0}. Send them one at a time"
    )]
    MultipleStatements(usize),
    #[error("execute_query runs read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN); `{0}` changes data or schema: use the write_query tool")]
    NotReadOnlyUseWrite(String),
    #[error("syntax error: `{0}` is not a ClickHouse statement (check its spelling). execute_query runs one read-only statement starting with SELECT, WITH, SHOW, DESCRIBE, EXISTS or EXPLAIN")]
    UnknownStatement(String),
    #[error("execute_query runs read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN); `{0}` changes data or schema, and writes are disabled on this server")]
    NotReadOnlyWritesDisabled(String),
    #[error("execute_query runs read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN); this query does not start with a statement keyword")]
    NoStatementKeyword,
    #[error("write_query runs exactly one statement; this query has {0}")]
    MultipleWriteStatements(usize),
    #[error("the clause `{0}` is not allowed on this server (server.blocked_query_clauses)")]
    BlockedClause(String),
    #[error("the table function `{0}` reaches outside the server and is not allowed here. Query a table of this server instead, or ask an administrator to add `{0}` to server.allowed_table_functions")]
    TableFunction(String),
    #[error("the function name {0} is quoted with escape sequences; the gateway cannot tell which function it names, so it refuses it")]
    EscapedFunctionName(String),
    #[error("the query is {len} bytes, over the limit of {limit} (clickhouse.max_query_length)")]
    TooLong { len: usize, limit: u64 },
}

/// A query as ClickHouse tokenizes it: the significant tokens of each non-empty
/// statement. Built only from a query with no error token and no ambiguous comment.
#[derive(Debug, Clone)]
pub struct TokenizedQuery<'a> {
    sql: &'a str,
    statements: Vec<Vec<Token>>,
}

impl<'a> TokenizedQuery<'a> {
    pub fn new(sql: &'a str) -> Result<Self, SqlError> {
        let mut statements = Vec::new();
        let mut current = Vec::new();
        for token in lexer::tokenize(sql) {
            match token.kind {
                TokenKind::Error(e) => {
                    return Err(SqlError::Untokenizable {
                        what: e.describe(),
                        offset: token.start,
                    })
                }
                TokenKind::Comment if is_nested_block_comment(token.text(sql)) => {
                    return Err(SqlError::NestedComment {
                        offset: token.start,
                    })
                }
                TokenKind::Semicolon if !current.is_empty() => {
                    statements.push(std::mem::take(&mut current));
                }
                TokenKind::Semicolon => {}
                _ if token.is_significant() => current.push(token),
                _ => {}
            }
        }
        if !current.is_empty() {
            statements.push(current);
        }
        Ok(Self { sql, statements })
    }

    /// The read-only guard of `execute_query`.
    pub fn check_read_only(&self, writes_enabled: bool) -> Result<(), SqlError> {
        let statement = match self.statements.as_slice() {
            [] => return Err(SqlError::Empty),
            [one] => one,
            more => return Err(SqlError::MultipleStatements(more.len())),
        };
        // `(SELECT 1) UNION ALL (SELECT 2)`: the keyword may follow opening brackets.
        let first = statement
            .iter()
            .find(|t| t.kind != TokenKind::OpeningRoundBracket)
            .filter(|t| t.kind == TokenKind::BareWord)
            .ok_or(SqlError::NoStatementKeyword)?;
        let keyword = first.text(self.sql).to_ascii_uppercase();
        if READ_ONLY_KEYWORDS.contains(&keyword.as_str()) {
            Ok(())
        } else if !WRITE_KEYWORDS.contains(&keyword.as_str()) {
            // A typo (`SELEC`) is a syntax error, never an invitation to the tool that writes.
            Err(SqlError::UnknownStatement(keyword))
        } else if writes_enabled {
            Err(SqlError::NotReadOnlyUseWrite(keyword))
        } else {
            Err(SqlError::NotReadOnlyWritesDisabled(keyword))
        }
    }

    /// `write_query` takes any statement, but only one.
    pub fn check_single_statement(&self) -> Result<(), SqlError> {
        match self.statements.len() {
            0 => Err(SqlError::Empty),
            1 => Ok(()),
            n => Err(SqlError::MultipleWriteStatements(n)),
        }
    }

    /// The first of `clauses` the query uses: its words as consecutive bare words (any
    /// whitespace or comments between them), case-insensitively.
    pub fn check_blocked_clauses(&self, clauses: &[String]) -> Result<(), SqlError> {
        for clause in clauses {
            let needle: Vec<String> = clause
                .split_whitespace()
                .map(str::to_ascii_uppercase)
                .collect();
            if needle.is_empty() {
                continue;
            }
            let found = self.statements.iter().any(|statement| {
                statement.windows(needle.len()).any(|window| {
                    window.iter().zip(&needle).all(|(t, word)| {
                        t.kind == TokenKind::BareWord && t.text(self.sql).eq_ignore_ascii_case(word)
                    })
                })
            });
            if found {
                return Err(SqlError::BlockedClause(clause.clone()));
            }
        }
        Ok(())
    }

    /// Refuses a call of a table function that reaches outside the server unless
    /// `allowed` names it: a bare or quoted name followed by `(` (ClickHouse accepts
    /// `` `url`(...) `` and `"url"(...)` as `url(...)`).
    pub fn check_table_functions(&self, allowed: &[String]) -> Result<(), SqlError> {
        for statement in &self.statements {
            for pair in statement.windows(2) {
                let [name, next] = pair else { continue };
                if next.kind != TokenKind::OpeningRoundBracket {
                    continue;
                }
                let Some(function) = self.function_name(*name)? else {
                    continue;
                };
                if is_outside_table_function(&function)
                    && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&function))
                {
                    return Err(SqlError::TableFunction(function));
                }
            }
        }
        Ok(())
    }

    /// The query's text, for reading tokens.
    pub fn sql(&self) -> &'a str {
        self.sql
    }

    /// The significant tokens of each non-empty statement.
    pub fn statements(&self) -> &[Vec<Token>] {
        &self.statements
    }

    /// The name a bare word or quoted identifier stands for, or None for other tokens.
    pub fn function_name(&self, token: Token) -> Result<Option<String>, SqlError> {
        let text = token.text(self.sql);
        match token.kind {
            TokenKind::BareWord => Ok(Some(text.to_string())),
            TokenKind::QuotedIdentifier => unquote_identifier(text)
                .map(Some)
                .ok_or_else(|| SqlError::EscapedFunctionName(text.to_string())),
            _ => Ok(None),
        }
    }
}

/// A `/* */` comment with another `/*` inside: current ClickHouse ends it at the matching
/// `*/`, older versions (18.16, tested) at the first one.
fn is_nested_block_comment(comment: &str) -> bool {
    comment
        .strip_prefix("/*")
        .is_some_and(|body| body.contains("/*"))
}

/// The name inside `"..."`, `` `...` `` or `“...”`, with doubled quotes undoubled; None
/// when it holds a backslash (escape sequences such as `\x72` can spell any name).
fn unquote_identifier(text: &str) -> Option<String> {
    if text.contains('\\') {
        return None;
    }
    if let Some(inner) = text
        .strip_prefix('\u{201C}')
        .and_then(|t| t.strip_suffix('\u{201D}'))
    {
        return Some(inner.to_string());
    }
    for quote in ['"', '`'] {
        if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
            let doubled = format!("{quote}{quote}");
            return Some(inner.replace(&doubled, &quote.to_string()));
        }
    }
    None
}

/// Whether `name` (any case) is a table function that reaches outside the server.
pub fn is_outside_table_function(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    OUTSIDE_TABLE_FUNCTIONS.contains(&lower.as_str())
        || OUTSIDE_TABLE_FUNCTION_PREFIXES
            .iter()
            .any(|p| lower.starts_with(p))
}

/// The read-only guard of `execute_query`.
pub fn check_read_only(sql: &str, writes_enabled: bool) -> Result<(), SqlError> {
    TokenizedQuery::new(sql)?.check_read_only(writes_enabled)
}

/// `write_query` takes any statement, but only one.
pub fn check_single_statement(sql: &str) -> Result<(), SqlError> {
    TokenizedQuery::new(sql)?.check_single_statement()
}

/// The first of `clauses` that the query uses outside literals and comments.
pub fn check_blocked_clauses(sql: &str, clauses: &[String]) -> Result<(), SqlError> {
    TokenizedQuery::new(sql)?.check_blocked_clauses(clauses)
}

/// Table functions that reach outside the server, unless `allowed` lists them.
pub fn check_table_functions(sql: &str, allowed: &[String]) -> Result<(), SqlError> {
    TokenizedQuery::new(sql)?.check_table_functions(allowed)
}

pub fn check_length(sql: &str, limit: Option<u64>) -> Result<(), SqlError> {
    match limit {
        Some(limit) if sql.len() as u64 > limit => Err(SqlError::TooLong {
            len: sql.len(),
            limit,
        }),
        _ => Ok(()),
    }
}

/// A ClickHouse string literal.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A ClickHouse identifier, always back-quoted.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('\\', "\\\\").replace('`', "\\`"))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn plain_reads_pass() {
        for q in [
            "SELECT 1",
            "  select 1;",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "(SELECT 1) UNION ALL (SELECT 2)",
            "SHOW TABLES",
            "DESC t",
            "describe table t",
            "EXISTS TABLE t",
            "EXPLAIN SELECT 1",
            "-- leading comment\nSELECT 1",
            "/* block */ SELECT 1 /* trailing */",
        ] {
            assert_eq!(check_read_only(q, true), Ok(()), "{q}");
        }
    }

    #[test]
    fn writes_point_to_write_query_or_say_disabled() {
        assert_eq!(
            check_read_only("INSERT INTO t VALUES (1)", true),
            Err(SqlError::NotReadOnlyUseWrite("INSERT".into()))
        );
        assert_eq!(
            check_read_only("drop table t", false),
            Err(SqlError::NotReadOnlyWritesDisabled("DROP".into()))
        );
        assert!(check_read_only("DROP TABLE t", true)
            .unwrap_err()
            .to_string()
            .contains("write_query"));
    }

    #[test]
    fn an_unknown_first_word_is_a_syntax_error_that_never_points_to_write_query() {
        for (q, writes) in [("SELEC 1", true), ("selct * from t", false)] {
            let e = check_read_only(q, writes).unwrap_err();
            assert!(matches!(e, SqlError::UnknownStatement(_)), "{q}: {e:?}");
            let m = e.to_string();
            assert!(m.starts_with("syntax error") && m.contains("SELECT"), "{m}");
            assert!(!m.contains("write_query"), "{m}");
        }
    }

    #[test]
    fn comments_cannot_hide_a_write() {
        assert!(check_read_only("/* SELECT */ DROP TABLE t", true).is_err());
        assert!(check_read_only("-- SELECT\nDROP TABLE t", true).is_err());
        assert!(check_read_only("# SELECT\nDROP TABLE t", true).is_err());
    }

    #[test]
    fn multiple_statements_are_refused_even_after_a_select() {
        assert_eq!(
            check_read_only("SELECT 1; DROP TABLE t", true),
            Err(SqlError::MultipleStatements(2))
        );
        assert_eq!(
            check_read_only("SELECT 1; SELECT 2;", true),
            Err(SqlError::MultipleStatements(2))
        );
    }

    #[test]
    fn semicolons_and_keywords_inside_literals_do_not_count() {
        assert_eq!(check_read_only("SELECT 'a; DROP TABLE t'", true), Ok(()));
        assert_eq!(
            check_read_only("SELECT 'it''s; fine', \"we;ird\", `id;`", true),
            Ok(())
        );
        assert_eq!(check_read_only(r"SELECT 'back\'slash; DROP'", true), Ok(()));
        assert_eq!(
            check_read_only("SELECT '/* not a comment */'", true),
            Ok(())
        );
        assert_eq!(check_read_only("SELECT 'café' AS x", true), Ok(()));
    }

    #[test]
    fn unterminated_tokens_are_errors() {
        assert_eq!(
            check_read_only("SELECT 'abc", true),
            Err(SqlError::Untokenizable {
                what: "an unclosed string literal",
                offset: 7
            })
        );
        assert_eq!(
            check_read_only("SELECT 1 /* x", true),
            Err(SqlError::Untokenizable {
                what: "an unclosed /* comment",
                offset: 9
            })
        );
        assert_eq!(
            check_read_only("  ;  -- nothing", true),
            Err(SqlError::Empty)
        );
    }

    #[test]
    fn blocked_clauses_match_words_outside_literals() {
        let blocked = vec!["INTO OUTFILE".to_string(), "SETTINGS".to_string()];
        assert_eq!(
            check_blocked_clauses("SELECT 1 INTO\n  outfile 'x'", &blocked),
            Err(SqlError::BlockedClause("INTO OUTFILE".into()))
        );
        assert!(check_blocked_clauses("SELECT 1 SETTINGS max_threads=1", &blocked).is_err());
        assert_eq!(
            check_blocked_clauses("SELECT 'INTO OUTFILE', 'SETTINGS'", &blocked),
            Ok(())
        );
        assert_eq!(
            check_blocked_clauses("SELECT 1 -- SETTINGS", &blocked),
            Ok(())
        );
        assert_eq!(
            check_blocked_clauses("SELECT my_settings FROM t", &blocked),
            Ok(())
        );
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_string(r"it's a \ test"), r"'it\'s a \\ test'");
        assert_eq!(quote_ident("we`ird"), r"`we\`ird`");
    }

    #[test]
    fn length_limit() {
        assert!(check_length("SELECT 1", Some(8)).is_ok());
        assert_eq!(
            check_length("SELECT 12", Some(8)),
            Err(SqlError::TooLong { len: 9, limit: 8 })
        );
        assert!(check_length("SELECT 12", None).is_ok());
    }

    // Issue 10, class 2: the guard's lexer must end every comment, literal and identifier
    // where ClickHouse does. Each query below read differently by the old guard.

    fn settings_blocked() -> Vec<String> {
        vec!["SETTINGS".to_string()]
    }

    #[test]
    fn a_double_slash_comment_cannot_hide_a_blocked_clause() {
        // The guard saw a literal from `'` to `'`, ClickHouse sees two comments.
        let q = "SELECT 1 // '\nSETTINGS readonly=0 -- '";
        assert_eq!(
            check_blocked_clauses(q, &settings_blocked()),
            Err(SqlError::BlockedClause("SETTINGS".into()))
        );
    }

    #[test]
    fn a_nested_block_comment_cannot_hide_a_write() {
        // Current ClickHouse: a comment, then DROP; the old guard: a comment, then SELECT.
        assert!(check_read_only("/* /* */ SELECT 1 */ DROP TABLE t", true).is_err());
        assert!(check_read_only("/* /* */ SELECT 1 */ DROP TABLE t", false).is_err());
    }

    #[test]
    fn a_heredoc_cannot_hide_a_blocked_clause() {
        // `$$'$$` is a heredoc to ClickHouse; the old guard saw `'` open a literal.
        let q = "SELECT $$'$$, 1 SETTINGS readonly=0 --'";
        assert_eq!(
            check_blocked_clauses(q, &settings_blocked()),
            Err(SqlError::BlockedClause("SETTINGS".into()))
        );
    }

    #[test]
    fn unicode_quotes_cannot_hide_a_blocked_clause() {
        for q in [
            "SELECT \u{2018}'\u{2019} SETTINGS readonly=0 --'",
            "SELECT \u{201C}\"\u{201D} SETTINGS readonly=0 --\"",
        ] {
            assert_eq!(
                check_blocked_clauses(q, &settings_blocked()),
                Err(SqlError::BlockedClause("SETTINGS".into())),
                "{q}"
            );
        }
    }

    #[test]
    fn a_semicolon_inside_a_heredoc_is_not_a_second_statement() {
        assert_eq!(check_read_only("SELECT $$;$$", true), Ok(()));
        assert_eq!(check_read_only("SELECT $a$ ; ' $a$", true), Ok(()));
    }

    #[test]
    fn unicode_whitespace_is_whitespace() {
        for q in [
            "\u{FEFF}SELECT 1",
            "\u{2060}SELECT\u{3000}1",
            "\u{00A0}SHOW\u{2003}TABLES",
        ] {
            assert_eq!(check_read_only(q, true), Ok(()), "{q:?}");
        }
    }

    #[test]
    fn characters_clickhouse_cannot_tokenize_are_refused() {
        for q in ["SELECT 1 #x", "SELECT 'a' é", "SELECT 1 \\ 2", "SELECT !1"] {
            assert!(
                matches!(
                    check_read_only(q, true),
                    Err(SqlError::Untokenizable { .. })
                ),
                "{q:?}"
            );
        }
    }

    // Issue 10, class 8: table functions that reach outside the server.

    fn no_table_functions() -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn outside_table_functions_are_refused_in_any_spelling() {
        for (q, name) in [
            ("SELECT * FROM url('http://x', CSV, 'a String')", "url"),
            ("SELECT * FROM URL ('http://x', CSV)", "URL"),
            ("SELECT * FROM file/* c */('a.csv')", "file"),
            ("SELECT * FROM remote -- c\n('h', db.t)", "remote"),
            ("SELECT * FROM `url`('http://x')", "url"),
            ("SELECT * FROM \"s3\"('http://x')", "s3"),
            (
                "SELECT * FROM \u{201C}mysql\u{201D}('h', 'd', 't', 'u', 'p')",
                "mysql",
            ),
            (
                "SELECT * FROM icebergS3Cluster('c', 'x')",
                "icebergS3Cluster",
            ),
            ("SELECT * FROM deltaLakeAzure('x')", "deltaLakeAzure"),
            (
                "SELECT * FROM clusterAllReplicas('c', db.t)",
                "clusterAllReplicas",
            ),
            ("INSERT INTO FUNCTION url('http://x', CSV) SELECT 1", "url"),
            ("SELECT file('/etc/passwd')", "file"),
        ] {
            assert_eq!(
                check_table_functions(q, &no_table_functions()),
                Err(SqlError::TableFunction(name.into())),
                "{q}"
            );
        }
    }

    #[test]
    fn a_quoted_function_name_with_escapes_is_refused() {
        let q = r"SELECT * FROM `u\x72l`('http://x')";
        assert!(matches!(
            check_table_functions(q, &no_table_functions()),
            Err(SqlError::EscapedFunctionName(_))
        ));
    }

    #[test]
    fn table_function_names_elsewhere_are_not_calls() {
        for q in [
            "SELECT url, file FROM t",
            "SELECT 'url(' FROM t",
            "SELECT 1 -- url(\n",
            "SELECT * FROM numbers(10)",
            "SELECT * FROM t WHERE s = $$remote('x')$$",
            "SELECT URLHierarchy('http://x/y')",
        ] {
            assert_eq!(
                check_table_functions(q, &no_table_functions()),
                Ok(()),
                "{q}"
            );
        }
    }

    #[test]
    fn allowed_table_functions_pass_case_insensitively() {
        let allowed = vec!["URL".to_string(), "icebergS3".to_string()];
        assert_eq!(
            check_table_functions("SELECT * FROM url('http://x')", &allowed),
            Ok(())
        );
        assert_eq!(
            check_table_functions("SELECT * FROM icebergs3('x')", &allowed),
            Ok(())
        );
        // Only the functions named: the rest of the family stays refused.
        assert_eq!(
            check_table_functions("SELECT * FROM icebergS3Cluster('c', 'x')", &allowed),
            Err(SqlError::TableFunction("icebergS3Cluster".into()))
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn sqlish() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "SELECT", "DROP", "url", "`url`", "(", ")", ";", "'", "\"", "`", "$$", "/*", "*/",
            "--", "//", "# ", "\n", " ", "SETTINGS", "INTO", "OUTFILE", "\\", "\u{201C}",
            "\u{201D}", "\u{2018}", "\u{2019}", "\u{a0}", "x'", "1", ".",
        ]);
        prop::collection::vec(pieces, 0..30).prop_map(|v| v.concat())
    }

    fn run_every_guard(sql: &str) {
        let clauses = vec!["INTO OUTFILE".to_string(), "SETTINGS".to_string()];
        let allowed = vec!["s3".to_string()];
        let _ = check_read_only(sql, true);
        let _ = check_read_only(sql, false);
        let _ = check_single_statement(sql);
        let _ = check_blocked_clauses(sql, &clauses);
        let _ = check_table_functions(sql, &allowed);
        let _ = check_length(sql, Some(16));
    }

    proptest! {
        #[test]
        fn guards_never_panic_on_any_string(sql in any::<String>()) {
            run_every_guard(&sql);
        }

        #[test]
        fn guards_never_panic_on_sql_like_strings(sql in sqlish()) {
            run_every_guard(&sql);
        }

        /// A single read passes, and a second statement after it is always refused.
        #[test]
        fn a_second_statement_is_never_accepted(tail in sqlish()) {
            let sql = format!("SELECT 1; DROP TABLE t {tail}");
            prop_assert!(check_read_only(&sql, true).is_err());
        }
    }
}

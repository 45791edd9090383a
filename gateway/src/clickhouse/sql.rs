// lint pass pending merge
#![allow(
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
//! SQL guards and literal escaping. A small lexer that knows comments, string
//! literals and quoted identifiers is enough: the guards only need to see the
//! statement's own keywords, never text inside literals or comments.

/// Statement keywords `execute_query` accepts (gateway.md, read-only guard).
pub const READ_ONLY_KEYWORDS: [&str; 7] = [
    "SELECT", "WITH", "SHOW", "DESC", "DESCRIBE", "EXISTS", "EXPLAIN",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("the query is empty")]
    Empty,
    #[error("unterminated {0} in the query")]
    Unterminated(&'static str),
    #[error(
        "execute_query runs exactly one statement; this query has {0}. Send them one at a time"
    )]
    MultipleStatements(usize),
    #[error("execute_query runs read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN); `{0}` changes data or schema: use the write_query tool")]
    NotReadOnlyUseWrite(String),
    #[error("execute_query runs read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN); `{0}` changes data or schema, and writes are disabled on this server")]
    NotReadOnlyWritesDisabled(String),
    #[error("write_query runs exactly one statement; this query has {0}")]
    MultipleWriteStatements(usize),
    #[error("the clause `{0}` is not allowed on this server (server.blocked_query_clauses)")]
    BlockedClause(String),
    #[error("the query is {len} bytes, over the limit of {limit} (clickhouse.max_query_length)")]
    TooLong { len: usize, limit: u64 },
}

/// The statements of a query with comments removed and every string literal and
/// quoted identifier replaced by an empty placeholder (`''`, `""`).
pub fn skeleton(sql: &str) -> Result<Vec<String>, SqlError> {
    let b = sql.as_bytes();
    let mut statements = Vec::new();
    let mut cur = String::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => i = skip_line(b, i),
            b'#' if matches!(b.get(i + 1), Some(b' ' | b'!')) => i = skip_line(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = sql[i + 2..]
                    .find("*/")
                    .ok_or(SqlError::Unterminated("comment"))?;
                i += 2 + end + 2;
                cur.push(' ');
            }
            b'\'' | b'"' | b'`' => {
                i = skip_quoted(b, i, c)?;
                cur.push(c as char);
                cur.push(c as char);
            }
            b';' => {
                statements.push(std::mem::take(&mut cur));
                i += 1;
            }
            _ => {
                // Multi-byte UTF-8 is copied whole; only ASCII drives the lexer.
                let len = utf8_len(c);
                cur.push_str(&sql[i..i + len]);
                i += len;
            }
        }
    }
    statements.push(cur);
    Ok(statements
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect())
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

fn skip_line(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// Skips a quoted token starting at `start`; handles backslash escapes and doubled quotes.
fn skip_quoted(b: &[u8], start: usize, q: u8) -> Result<usize, SqlError> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            c if c == q && b.get(i + 1) == Some(&q) => i += 2,
            c if c == q => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(SqlError::Unterminated(if q == b'\'' {
        "string literal"
    } else {
        "quoted identifier"
    }))
}

fn first_keyword(statement: &str) -> String {
    statement
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// The read-only guard of `execute_query`.
pub fn check_read_only(sql: &str, writes_enabled: bool) -> Result<(), SqlError> {
    let statements = skeleton(sql)?;
    match statements.len() {
        0 => return Err(SqlError::Empty),
        1 => {}
        n => return Err(SqlError::MultipleStatements(n)),
    }
    let kw = first_keyword(&statements[0]);
    if READ_ONLY_KEYWORDS.contains(&kw.as_str()) {
        Ok(())
    } else if writes_enabled {
        Err(SqlError::NotReadOnlyUseWrite(kw))
    } else {
        Err(SqlError::NotReadOnlyWritesDisabled(kw))
    }
}

/// `write_query` takes any statement, but only one.
pub fn check_single_statement(sql: &str) -> Result<(), SqlError> {
    match skeleton(sql)?.len() {
        0 => Err(SqlError::Empty),
        1 => Ok(()),
        n => Err(SqlError::MultipleWriteStatements(n)),
    }
}

/// The first of `clauses` that the query uses outside literals and comments.
/// Clauses match as whole words with any whitespace between them, case-insensitively.
pub fn check_blocked_clauses(sql: &str, clauses: &[String]) -> Result<(), SqlError> {
    if clauses.is_empty() {
        return Ok(());
    }
    let words: Vec<String> = skeleton(sql)?
        .join(" ; ")
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    for clause in clauses {
        let needle: Vec<String> = clause
            .split_whitespace()
            .map(str::to_ascii_uppercase)
            .collect();
        if !needle.is_empty() && words.windows(needle.len()).any(|w| w == needle.as_slice()) {
            return Err(SqlError::BlockedClause(clause.clone()));
        }
    }
    Ok(())
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
            Err(SqlError::Unterminated("string literal"))
        );
        assert_eq!(
            check_read_only("SELECT 1 /* x", true),
            Err(SqlError::Unterminated("comment"))
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
}

//! The tables a query reads, as far as its tokens tell: the names after `FROM` and
//! `JOIN` (a table function or a subquery there is not a table). Used only to name the
//! keys a refusal advises filtering on, so a miss costs advice, never safety.

use crate::clickhouse::lexer::{tokenize, Token, TokenKind};

/// A table as a query names it; `database` is `None` when left to the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub database: Option<String>,
    pub table: String,
}

/// At most this many tables are looked up for one refusal.
const MAX_TABLES: usize = 8;

/// The tables named after `FROM` / `JOIN`, in order, each once.
pub fn referenced(sql: &str) -> Vec<TableRef> {
    let tokens: Vec<Token> = tokenize(sql)
        .into_iter()
        .filter(|t| t.is_significant())
        .collect();
    let mut out: Vec<TableRef> = Vec::new();
    let mut i = 0;
    while i < tokens.len() && out.len() < MAX_TABLES {
        let starts = tokens.get(i).is_some_and(|t| {
            t.kind == TokenKind::BareWord
                && ["FROM", "JOIN"]
                    .iter()
                    .any(|k| t.text(sql).eq_ignore_ascii_case(k))
        });
        i += 1;
        if !starts {
            continue;
        }
        let Some(first) = tokens.get(i).and_then(|t| name(*t, sql)) else {
            continue;
        };
        let dotted = tokens.get(i + 1).is_some_and(|t| t.kind == TokenKind::Dot);
        let (database, table, next) = match (dotted, tokens.get(i + 2).and_then(|t| name(*t, sql)))
        {
            (true, Some(second)) => (Some(first), second, i + 3),
            _ => (None, first, i + 1),
        };
        // `FROM f(...)` is a table function.
        if tokens
            .get(next)
            .is_some_and(|t| t.kind == TokenKind::OpeningRoundBracket)
        {
            continue;
        }
        let t = TableRef { database, table };
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// An identifier token's name (quotes removed), or `None` for anything else.
fn name(t: Token, sql: &str) -> Option<String> {
    let text = t.text(sql);
    match t.kind {
        TokenKind::BareWord => Some(text.to_string()),
        TokenKind::QuotedIdentifier => {
            let inner: String = text.chars().skip(1).collect();
            let mut inner: String = inner.chars().rev().skip(1).collect();
            inner = inner.chars().rev().collect();
            Some(inner.replace("\\`", "`").replace("\\\"", "\""))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Vec<String> {
        referenced(sql)
            .into_iter()
            .map(|t| match t.database {
                Some(d) => format!("{d}.{}", t.table),
                None => t.table,
            })
            .collect()
    }

    #[test]
    fn tables_after_from_and_join_are_found() {
        assert_eq!(
            names("SELECT count() FROM events e JOIN `shop`.\"users\" u ON e.u = u.id"),
            ["events", "shop.users"]
        );
        assert_eq!(
            names("select * from db.t where x in (select y from db.t)"),
            ["db.t"]
        );
    }

    #[test]
    fn table_functions_subqueries_and_literals_are_not_tables() {
        assert!(names("SELECT * FROM numbers(10)").is_empty());
        assert!(names("SELECT * FROM (SELECT 1)").is_empty());
        assert!(names("SELECT 'FROM t' -- FROM u").is_empty());
        assert_eq!(names("SELECT * FROM system.one"), ["system.one"]);
    }
}

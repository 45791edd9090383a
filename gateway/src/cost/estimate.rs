//! ClickHouse's `EXPLAIN ESTIMATE` (rows, parts and marks each table would be read
//! for), read and judged against the budget. The estimate counts rows of MergeTree
//! tables after the primary key and partition pruning; it has no byte count, so only
//! `max_rows_to_read` is judged before running (bytes stay with ClickHouse's running
//! limit).

use serde_json::{json, Value};

use crate::config::EffectiveBudget;

use super::budget::human;
use super::refusal::{budget_phrase, narrowing, Limit, TableKeys};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEstimate {
    pub database: String,
    pub table: String,
    pub parts: u64,
    pub rows: u64,
    pub marks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Estimate {
    pub tables: Vec<TableEstimate>,
}

impl Estimate {
    /// From the rows of `EXPLAIN ESTIMATE` (`database, table, parts, rows, marks`);
    /// 64-bit counts may come as JSON strings.
    pub fn from_rows(rows: &[Vec<Value>]) -> Self {
        let text = |r: &[Value], i: usize| {
            r.get(i)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let num = |r: &[Value], i: usize| match r.get(i) {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
            Some(Value::String(s)) => s.parse().unwrap_or(0),
            _ => 0,
        };
        Self {
            tables: rows
                .iter()
                .map(|r| TableEstimate {
                    database: text(r, 0),
                    table: text(r, 1),
                    parts: num(r, 2),
                    rows: num(r, 3),
                    marks: num(r, 4),
                })
                .collect(),
        }
    }

    /// Saturating: the counts are the server's, and a wrapped sum would read as small.
    pub fn rows(&self) -> u64 {
        self.tables.iter().fold(0, |n, t| n.saturating_add(t.rows))
    }

    /// Whether the estimate alone says the query reads past the row budget.
    pub fn over(&self, budget: &EffectiveBudget) -> bool {
        budget.max_rows_to_read.is_some_and(|max| self.rows() > max)
    }

    /// `default.events: 200k rows, 1 part, 24 marks; ...`
    pub fn describe(&self) -> String {
        if self.tables.is_empty() {
            return "no MergeTree table to read".into();
        }
        self.tables
            .iter()
            .map(|t| {
                format!(
                    "{}.{}: {} rows, {} part{}, {} marks",
                    t.database,
                    t.table,
                    human(t.rows),
                    t.parts,
                    if t.parts == 1 { "" } else { "s" },
                    t.marks
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn to_json(&self) -> Value {
        json!({
            "rows": self.rows(),
            "tables": self.tables.iter().map(|t| json!({
                "database": t.database, "table": t.table,
                "parts": t.parts, "rows": t.rows, "marks": t.marks,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The tool error for a query refused on its estimate, before it ran.
pub fn refusal_message(e: &Estimate, budget: &EffectiveBudget, keys: &[TableKeys]) -> String {
    format!(
        "Refused before running by the scan budget: ClickHouse estimates this query reads \
         {} rows ({}), more than {}. Nothing ran.\n{}",
        human(e.rows()),
        e.describe(),
        budget_phrase(budget, Limit::Rows),
        narrowing(keys)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EstimateMode;
    use serde_json::json;

    #[test]
    fn rows_read_with_numbers_or_strings_and_judged_on_rows() {
        let e = Estimate::from_rows(&[
            vec![
                json!("default"),
                json!("events"),
                json!(1),
                json!(200000),
                json!(24),
            ],
            vec![
                json!("shop"),
                json!("users"),
                json!("3"),
                json!("5000"),
                json!("2"),
            ],
        ]);
        assert_eq!(e.rows(), 205_000);
        let huge = || {
            vec![
                json!("d"),
                json!("t"),
                json!(1),
                json!(u64::MAX.to_string()),
                json!(1),
            ]
        };
        assert_eq!(Estimate::from_rows(&[huge(), huge()]).rows(), u64::MAX);
        assert_eq!(
            e.describe(),
            "default.events: 200k rows, 1 part, 24 marks; shop.users: 5k rows, 3 parts, 2 marks"
        );
        let mut b = EffectiveBudget {
            max_rows_to_read: Some(100_000),
            max_bytes_to_read: None,
            estimate: EstimateMode::Auto,
        };
        assert!(e.over(&b));
        b.max_rows_to_read = Some(205_000);
        assert!(!e.over(&b));
        b.max_rows_to_read = None;
        assert!(!e.over(&b), "bytes alone are never judged on an estimate");
        let m = refusal_message(
            &e,
            &EffectiveBudget {
                max_rows_to_read: Some(1000),
                ..b
            },
            &[],
        );
        assert!(
            m.contains("205k rows") && m.contains("Nothing ran") && m.contains("1k rows"),
            "{m}"
        );
    }
}

//! A budget stop explained so a model can act on it: it was the budget (not a broken
//! query), how much was read, and how to read less on these tables.

use crate::clickhouse::ServerError;
use crate::config::EffectiveBudget;

use super::budget::human;

/// Which limit ClickHouse hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Rows,
    Bytes,
}

/// A query ClickHouse stopped for reading past `max_rows_to_read` / `max_bytes_to_read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStop {
    pub limit: Limit,
    /// What ClickHouse says was read (or would be), when its message gives a count.
    pub read: Option<u64>,
    /// ClickHouse's own words.
    pub message: String,
}

impl BudgetStop {
    /// The stop in a ClickHouse error, if that is what it is: TOO_MANY_ROWS (158) or
    /// TOO_MANY_BYTES (307) with the "to read" wording (18.16 and modern alike; the
    /// same codes also name other limits, such as rows in a set or a join).
    pub fn from_error(e: &ServerError) -> Option<Self> {
        let limit = match e.code? {
            158 => Limit::Rows,
            307 => Limit::Bytes,
            _ => return None,
        };
        if !e.message.contains("to read") {
            return None;
        }
        // Modern "rows or bytes" messages say which in "max rows" / "max bytes".
        let limit = if e.message.contains("max bytes:") {
            Limit::Bytes
        } else {
            limit
        };
        Some(Self {
            limit,
            read: read_count(&e.message),
            message: e.message.clone(),
        })
    }
}

/// 18.16: `Limit for rows to read exceeded: 1007616 rows read (or to read), maximum: 1000`.
fn read_count(message: &str) -> Option<u64> {
    let (_, rest) = message.split_once("exceeded: ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A table's keys from `system.tables` (empty: the table has none, or the server did
/// not say).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableKeys {
    pub database: String,
    pub table: String,
    pub sorting_key: String,
    pub sampling_key: String,
}

/// What the budget was, as a clause: `1M rows (clickhouse.query_budget.max_rows_to_read)`.
pub fn budget_phrase(budget: &EffectiveBudget, limit: Limit) -> String {
    match limit {
        Limit::Rows => format!(
            "{} rows (query_budget.max_rows_to_read)",
            budget.max_rows_to_read.map_or("?".into(), human)
        ),
        Limit::Bytes => format!(
            "{} bytes (query_budget.max_bytes_to_read)",
            budget.max_bytes_to_read.map_or("?".into(), human)
        ),
    }
}

/// The tool error for a query ClickHouse stopped while reading.
pub fn running_message(stop: &BudgetStop, budget: &EffectiveBudget, keys: &[TableKeys]) -> String {
    let unit = match stop.limit {
        Limit::Rows => "rows",
        Limit::Bytes => "bytes",
    };
    let read = stop
        .read
        .map(|n| format!(" after {} {unit} read (or about to be read)", human(n)))
        .unwrap_or_default();
    format!(
        "Stopped by the scan budget, not an error in the query: ClickHouse stops any query \
         from this gateway that reads more than {}; it stopped this one{read}. ClickHouse \
         said: {}.\n{}",
        budget_phrase(budget, stop.limit),
        stop.message,
        narrowing(keys)
    )
}

/// How to read less, naming each table's keys; the same advice for an estimate refusal.
pub fn narrowing(keys: &[TableKeys]) -> String {
    let mut out = String::from("To read less:\n");
    for k in keys {
        let name = format!("{}.{}", k.database, k.table);
        if !k.sorting_key.is_empty() {
            out.push_str(&format!(
                "- filter {name} on its sorting key ({}): a WHERE on the leading key columns \
                 lets ClickHouse skip whole ranges of the table;\n",
                k.sorting_key
            ));
        }
        if !k.sampling_key.is_empty() {
            out.push_str(&format!(
                "- {name} has a sampling key ({}): `FROM {name} SAMPLE 0.1` reads a tenth; \
                 scale counts and sums by 10;\n",
                k.sampling_key
            ));
        }
    }
    out.push_str(
        "- aggregate in ClickHouse (count(), uniq(), GROUP BY) rather than fetching rows, and \
         select only the columns you need (each column adds to the bytes read);\n\
         - LIMIT alone does not reduce the scan when a filter, ORDER BY or aggregate must \
         see every row;\n\
         - ask first: execute_query with `\"estimate\": true` returns ClickHouse's estimate \
         without running the query (servers with EXPLAIN ESTIMATE).",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EstimateMode;

    fn budget() -> EffectiveBudget {
        EffectiveBudget {
            max_rows_to_read: Some(1000),
            max_bytes_to_read: Some(1_000_000),
            estimate: EstimateMode::Auto,
        }
    }

    #[test]
    fn old_and_modern_read_limits_are_budget_stops() {
        let old = ServerError::parse(500, "Code: 158, e.displayText() = DB::Exception: Limit for rows to read exceeded: 1007616 rows read (or to read), maximum: 1000, e.what() = DB::Exception");
        let stop = BudgetStop::from_error(&old).expect("a budget stop");
        assert_eq!((stop.limit, stop.read), (Limit::Rows, Some(1_007_616)));
        let bytes = ServerError::parse(500, "Code: 307, e.displayText() = DB::Exception: Limit for (uncompressed) bytes to read exceeded: 1889434 bytes read, maximum: 1000, e.what() = DB::Exception");
        let stop = BudgetStop::from_error(&bytes).expect("a budget stop");
        assert_eq!((stop.limit, stop.read), (Limit::Bytes, Some(1_889_434)));
        let modern = ServerError::parse(500, "Code: 158. DB::Exception: Limit for rows or bytes to read exceeded, max rows: 1.00 thousand, current rows: 200.00 thousand: While executing MergeTreeSelect. (TOO_MANY_ROWS) (version 26.1)");
        let stop = BudgetStop::from_error(&modern).expect("a budget stop");
        assert_eq!((stop.limit, stop.read), (Limit::Rows, None));
    }

    #[test]
    fn other_limits_with_the_same_codes_are_not_budget_stops() {
        for body in [
            "Code: 158, e.displayText() = DB::Exception: Limit for rows in set exceeded: 10 rows, maximum: 1",
            "Code: 60. DB::Exception: Table default.x does not exist. (UNKNOWN_TABLE)",
        ] {
            assert_eq!(BudgetStop::from_error(&ServerError::parse(500, body)), None, "{body}");
        }
    }

    #[test]
    fn the_refusal_names_the_budget_the_keys_and_why_limit_is_not_enough() {
        let stop = BudgetStop {
            limit: Limit::Rows,
            read: Some(1_007_616),
            message: "Limit for rows to read exceeded".into(),
        };
        let keys = [TableKeys {
            database: "default".into(),
            table: "events".into(),
            sorting_key: "user_id, d".into(),
            sampling_key: "user_id".into(),
        }];
        let m = running_message(&stop, &budget(), &keys);
        for needle in [
            "scan budget",
            "1k rows (query_budget.max_rows_to_read)",
            "1M rows read",
            "sorting key (user_id, d)",
            "SAMPLE 0.1",
            "LIMIT alone does not reduce",
            "\"estimate\": true",
        ] {
            assert!(m.contains(needle), "missing {needle:?} in {m}");
        }
        // No keys known: the general advice still stands.
        assert!(narrowing(&[]).contains("aggregate"));
    }
}

//! Shaping a row result and enforcing the caps while it streams in.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::clickhouse::client::RowSink;
use crate::clickhouse::stream::Column;
use crate::clickhouse::types::JsonKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncReason {
    MaxResultRows,
    MaxResultBytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truncation {
    pub reason: TruncReason,
    pub limit: u64,
    pub returned_rows: u64,
    pub returned_bytes: u64,
}

/// Room kept for `row_count`, `elapsed_ms` and `truncated`, so the finished JSON stays
/// within the byte cap and not only its rows.
const ENVELOPE_RESERVE: u64 = 200;

/// Collects rows until a cap would be passed, counting the bytes the client will get.
#[derive(Debug, Default)]
pub struct ResultBuilder {
    caps: Caps,
    columns: Vec<Column>,
    kinds: Vec<JsonKind>,
    rows: Vec<Value>,
    bytes: u64,
    truncated: Option<Truncation>,
}

impl ResultBuilder {
    pub fn new(caps: Caps) -> Self {
        Self {
            caps,
            ..Default::default()
        }
    }

    pub fn truncation(&self) -> Option<&Truncation> {
        self.truncated.as_ref()
    }

    /// Rows kept and the JSON bytes they (and the columns) take: what the client gets.
    pub fn returned(&self) -> (u64, u64) {
        (self.rows.len() as u64, self.bytes)
    }

    /// The finished result: `{columns, rows, row_count, truncated?, elapsed_ms}`.
    ///
    /// The rows move into the tree as they are (`json!` would serialize a copy of them).
    pub fn finish(self, elapsed_ms: u64) -> Value {
        let mut v = Map::new();
        v.insert("columns".into(), json!(self.columns));
        v.insert("row_count".into(), json!(self.rows.len()));
        v.insert("rows".into(), Value::Array(self.rows));
        v.insert("elapsed_ms".into(), json!(elapsed_ms));
        if let Some(t) = self.truncated {
            v.insert("truncated".into(), json!(t));
        }
        Value::Object(v)
    }
}

impl RowSink for ResultBuilder {
    fn columns(&mut self, columns: Vec<Column>) {
        self.kinds = columns.iter().map(|c| JsonKind::of(&c.ch_type)).collect();
        self.bytes = serde_json::to_string(&columns)
            .map(|s| s.len() as u64)
            .unwrap_or(0)
            + ENVELOPE_RESERVE;
        self.columns = columns;
    }

    fn row(&mut self, row: Vec<Value>) -> bool {
        let returned_rows = self.rows.len() as u64;
        if let Some(limit) = self.caps.rows {
            if returned_rows >= limit {
                self.truncated = Some(Truncation {
                    reason: TruncReason::MaxResultRows,
                    limit,
                    returned_rows,
                    returned_bytes: self.bytes,
                });
                return false;
            }
        }
        let row: Vec<Value> = row
            .into_iter()
            .zip(&self.kinds)
            .map(|(v, k)| k.normalize(v))
            .collect();
        let row = Value::Array(row);
        // The row's own JSON plus the comma that separates it from the next.
        let size = serde_json::to_string(&row)
            .map(|s| s.len() as u64 + 1)
            .unwrap_or(0);
        if let Some(limit) = self.caps.bytes {
            if self.bytes + size > limit {
                self.truncated = Some(Truncation {
                    reason: TruncReason::MaxResultBytes,
                    limit,
                    returned_rows,
                    returned_bytes: self.bytes,
                });
                return false;
            }
        }
        self.bytes += size;
        self.rows.push(row);
        true
    }

    fn room(&self) -> Option<u64> {
        // A row costs its JSON plus a separating comma.
        let limit = self.caps.bytes?;
        Some(limit.saturating_sub(self.bytes + 1))
    }

    fn row_too_large(&mut self, _min_bytes: u64) {
        if let Some(limit) = self.caps.bytes {
            self.truncated = Some(Truncation {
                reason: TruncReason::MaxResultBytes,
                limit,
                returned_rows: self.rows.len() as u64,
                returned_bytes: self.bytes,
            });
        }
    }
}

/// The text block of a finished row result (`server.result_format: compact`): one
/// header line of column names, one CSV line per row (RFC 4180 quoting; NULL is an
/// empty field, an empty string is `""`), then a line with the row count, the column
/// types and the time. A model reads the same facts as in the JSON for some 40–60 %
/// fewer tokens (bench/context.sh): names are not repeated per row, nor brackets.
pub fn compact_text(result: &Value) -> String {
    let empty = Vec::new();
    let columns = result["columns"].as_array().unwrap_or(&empty);
    let rows = result["rows"].as_array().unwrap_or(&empty);
    let mut out = String::with_capacity(64 + rows.len() * 32);
    let names: Vec<String> = columns.iter().map(|c| csv_field(&c["name"])).collect();
    out.push_str(&names.join(","));
    out.push('\n');
    for row in rows {
        let cells = row.as_array().unwrap_or(&empty);
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&csv_field(cell));
        }
        out.push('\n');
    }
    let types: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["name"].as_str().unwrap_or_default(),
                c["type"].as_str().unwrap_or_default()
            )
        })
        .collect();
    out.push_str(&format!(
        "({} row(s) in {} ms; columns: {})",
        result["row_count"].as_u64().unwrap_or(rows.len() as u64),
        result["elapsed_ms"].as_u64().unwrap_or(0),
        types.join(", ")
    ));
    out
}

/// One CSV field: numbers and booleans as written, text quoted only when it must be,
/// arrays and objects as their JSON.
pub(super) fn csv_field(v: &Value) -> String {
    let text = match v {
        Value::Null => return String::new(),
        Value::String(s) if s.is_empty() => return "\"\"".into(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => return v.to_string(),
        other => other.to_string(),
    };
    let needs_quotes = text.contains([',', '"', '\n', '\r'])
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace);
    if needs_quotes {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The second text block of a truncated result: how to ask for less.
pub fn narrowing_hint(t: &Truncation) -> String {
    let what = match t.reason {
        TruncReason::MaxResultRows => format!("{} rows (max_result_rows)", t.limit),
        TruncReason::MaxResultBytes => format!("{} bytes (max_result_bytes)", t.limit),
    };
    format!(
        "The result was truncated at {what}; {} rows were returned. To see what you need, narrow the query: \
         aggregate (GROUP BY, count(), sum(), uniq()), filter with WHERE, add a LIMIT, or select fewer columns.",
        t.returned_rows
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Vec<Column> {
        vec![Column {
            name: "n".into(),
            ch_type: "UInt64".into(),
        }]
    }

    #[test]
    fn row_cap_stops_after_limit_rows() {
        let mut b = ResultBuilder::new(Caps {
            rows: Some(3),
            bytes: None,
        });
        b.columns(cols());
        let accepted = (0..10).take_while(|i| b.row(vec![json!(i)])).count();
        assert_eq!(accepted, 3);
        let t = b.truncation().cloned().unwrap();
        assert_eq!(
            (t.reason, t.limit, t.returned_rows),
            (TruncReason::MaxResultRows, 3, 3)
        );
        let v = b.finish(1);
        assert_eq!(v["row_count"], 3);
        assert_eq!(v["rows"][0], json!(["0"]), "UInt64 values are strings");
        assert_eq!(v["truncated"]["reason"], "max_result_rows");
    }

    #[test]
    fn exact_fit_is_not_truncated() {
        let mut b = ResultBuilder::new(Caps {
            rows: Some(3),
            bytes: None,
        });
        b.columns(cols());
        assert!((0..3).all(|i| b.row(vec![json!(i)])));
        assert!(b.truncation().is_none());
        assert!(b.finish(0).get("truncated").is_none());
    }

    #[test]
    fn byte_cap_keeps_the_whole_json_within_the_limit() {
        let limit = 2_000;
        let mut b = ResultBuilder::new(Caps {
            rows: None,
            bytes: Some(limit),
        });
        b.columns(vec![Column {
            name: "s".into(),
            ch_type: "String".into(),
        }]);
        let mut n = 0;
        while b.row(vec![json!("x".repeat(50))]) {
            n += 1;
        }
        let t = b.truncation().cloned().unwrap();
        assert_eq!(t.reason, TruncReason::MaxResultBytes);
        assert_eq!(t.returned_rows, n);
        let text = serde_json::to_string(&b.finish(12345)).unwrap();
        assert!(text.len() as u64 <= limit, "{} > {limit}", text.len());
        assert!(
            text.len() as u64 > limit - 200,
            "cap should be nearly used: {}",
            text.len()
        );
    }

    #[test]
    fn uncapped_takes_everything() {
        let mut b = ResultBuilder::new(Caps::default());
        b.columns(cols());
        assert!((0..10_000).all(|i| b.row(vec![json!(i)])));
        assert_eq!(b.finish(0)["row_count"], 10_000);
    }

    #[test]
    fn compact_text_is_csv_with_a_header_and_a_summary() {
        let v = json!({
            "columns": [{"name": "id", "type": "UInt64"}, {"name": "s", "type": "Nullable(String)"}, {"name": "a", "type": "Array(UInt8)"}],
            "rows": [["1", "plain", [1, 2]], ["2", "a, \"quoted\"\nline", []], ["3", null, []], ["4", "", []], ["5", " pad", []]],
            "row_count": 5,
            "elapsed_ms": 7
        });
        let t = compact_text(&v);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "id,s,a");
        assert_eq!(lines[1], "1,plain,\"[1,2]\"");
        assert_eq!(lines[2], "2,\"a, \"\"quoted\"\"");
        assert_eq!(lines[3], "line\",[]");
        assert_eq!(lines[4], "3,,[]", "NULL is an empty field");
        assert_eq!(lines[5], "4,\"\",[]", "an empty string is quoted");
        assert_eq!(lines[6], "5,\" pad\",[]");
        assert_eq!(
            lines[7],
            "(5 row(s) in 7 ms; columns: id UInt64, s Nullable(String), a Array(UInt8))"
        );
    }

    #[test]
    fn hint_names_the_cap() {
        let t = Truncation {
            reason: TruncReason::MaxResultBytes,
            limit: 50_000,
            returned_rows: 10,
            returned_bytes: 49_990,
        };
        let h = narrowing_hint(&t);
        assert!(
            h.contains("50000 bytes (max_result_bytes)") && h.contains("LIMIT"),
            "{h}"
        );
    }

    #[test]
    fn room_is_what_a_row_may_still_take_and_a_too_large_row_truncates() {
        let mut b = ResultBuilder::new(Caps {
            rows: None,
            bytes: Some(1_000),
        });
        b.columns(cols());
        let before = b.room().unwrap();
        assert!(b.row(vec![json!(1)]));
        assert_eq!(b.room(), Some(before - 6), "`[\"1\"]` and its comma");
        b.row_too_large(5_000);
        let t = b.truncation().cloned().unwrap();
        assert_eq!(
            (t.reason, t.limit, t.returned_rows),
            (TruncReason::MaxResultBytes, 1_000, 1)
        );
        assert_eq!(ResultBuilder::new(Caps::default()).room(), None);
    }
}

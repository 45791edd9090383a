//! What a query read, as ClickHouse reports it: the `statistics` object at the end of a
//! JSON-format body (every version, counted to the end of the query), else the
//! `X-ClickHouse-Summary` header (modern servers; sent with the headers, so it counts
//! only what was read before the first byte of the body).

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadStats {
    pub rows: u64,
    pub bytes: u64,
}

/// `"rows_read": N` and `"bytes_read": N` in the text after the rows. The statistics
/// object is the document's last: `totals` and `extremes` before it carry the caller's
/// values, and a string value `'statistics'` prints as the key does.
pub fn from_trailer(text: &[u8]) -> Option<ReadStats> {
    let text = std::str::from_utf8(text).ok()?;
    let (_, stats) = text.rsplit_once("\"statistics\"")?;
    Some(ReadStats {
        rows: number_after(stats, "\"rows_read\"")?,
        bytes: number_after(stats, "\"bytes_read\"")?,
    })
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = text.split(key).nth(1)?;
    let digits: String = rest
        .trim_start_matches(|c: char| c == ':' || c == '"' || c.is_whitespace())
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The `X-ClickHouse-Summary` header: `{"read_rows":"N","read_bytes":"N",...}`.
pub fn from_summary(header: &str) -> Option<ReadStats> {
    let v: Value = serde_json::from_str(header).ok()?;
    let n = |k: &str| match v.get(k)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    Some(ReadStats {
        rows: n("read_rows")?,
        bytes: n("read_bytes")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trailer_and_the_summary_header_are_read() {
        let trailer = b"\n\t],\n\n\t\"rows\": 1,\n\n\t\"statistics\":\n\t{\n\t\t\"elapsed\": 0.009,\n\t\t\"rows_read\": 1000000,\n\t\t\"bytes_read\": 8000000\n\t}\n}\n";
        assert_eq!(
            from_trailer(trailer),
            Some(ReadStats {
                rows: 1_000_000,
                bytes: 8_000_000
            })
        );
        assert_eq!(from_trailer(b"\"rows\": 1}"), None);
        // `SELECT 1 AS k, any('statistics') ... WITH TOTALS`: the caller's string comes
        // first; the server's statistics still count.
        let totals = b"\n\t],\n\t\"totals\": [0, \"statistics\"],\n\t\"rows\": 1,\n\t\"statistics\":\n\t{\n\t\t\"elapsed\": 0.001,\n\t\t\"rows_read\": 7,\n\t\t\"bytes_read\": 56\n\t}\n}\n";
        assert_eq!(from_trailer(totals), Some(ReadStats { rows: 7, bytes: 56 }));
        assert_eq!(
            from_summary(r#"{"read_rows": "12", "read_bytes": "408", "written_rows": "0"}"#),
            Some(ReadStats {
                rows: 12,
                bytes: 408
            })
        );
        assert_eq!(from_summary("not json"), None);
    }
}

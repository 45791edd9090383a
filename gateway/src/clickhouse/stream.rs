//! An incremental reader of ClickHouse's `JSONCompact` output, so rows can be counted
//! (and the query stopped) while the response is still arriving.
//!
//! The document is `{"meta": [...], "data": [[...], ...], "rows": N, ...}`; JSONCompact
//! is chosen because every server version has it. An exception raised after the
//! headers were sent arrives as plain text inside the body; it is reported as such.

use serde::Deserialize;
use serde_json::Value;

use super::error::ServerError;
use super::types::JsonKind;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ch_type: String,
}

#[derive(Debug, PartialEq)]
pub enum Event {
    Columns(Vec<Column>),
    Row(Vec<Value>),
    /// The `data` array closed: no more rows.
    End,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StreamError {
    #[error("{0}")]
    Server(ServerError),
    #[error(
        "ClickHouse's response is not JSONCompact ({0}); remove any FORMAT clause from the query"
    )]
    Format(String),
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum State {
    #[default]
    Header,
    Rows,
    Done,
}

/// Where the bracket/string-aware scan of the row in progress stands. Kept across
/// pushes so each byte is examined once, however the row is split into chunks.
#[derive(Debug, Default, Clone, Copy)]
struct RowScan {
    /// Offset of the row's opening `[` in `buf`.
    start: usize,
    /// The next byte to examine.
    at: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// Hex digits of a `\uXXXX` escape still to skip.
    hex_left: u8,
    /// Inside a number or literal outside strings.
    in_scalar: bool,
    /// The least number of bytes the row's JSON can take (see `scan_row`).
    min_json: u64,
}

#[derive(Debug, Default)]
pub struct CompactReader {
    buf: Vec<u8>,
    /// Everything before this offset has been consumed.
    pos: usize,
    state: State,
    /// How far the header search got, so the next push resumes there.
    header_scanned: usize,
    row: Option<RowScan>,
    /// Bytes looked at by the scanner and the row parser: the work done so far.
    examined: u64,
    /// Per column, whether its numbers must keep their text (`JsonKind::keeps_text`);
    /// empty when no column's do, so ordinary rows take the direct parse.
    exact: Vec<bool>,
    /// The quoted copy of the current row, reused from row to row.
    quoted: Vec<u8>,
}

/// Consumed bytes are dropped once this much has piled up, to bound memory.
const COMPACT_AFTER: usize = 64 * 1024;
/// No FORMAT-JSON document is this long without reaching `data`.
const MAX_HEADER: usize = 1 << 20;
/// How much of a broken body an error message is built from.
const FAILURE_TEXT: usize = 16 * 1024;

impl CompactReader {
    pub fn push(&mut self, chunk: &[u8]) {
        if self.pos > COMPACT_AFTER {
            let gone = self.pos;
            self.buf.drain(..gone);
            self.pos = 0;
            self.header_scanned = self.header_scanned.saturating_sub(gone);
            if let Some(r) = &mut self.row {
                r.start -= gone;
                r.at -= gone;
            }
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes examined so far (scanning plus parsing): linear in the input by design.
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    /// What has arrived but not been consumed (after `End`: the start of the trailer).
    pub fn unread(&self) -> &[u8] {
        tail(&self.buf, self.pos)
    }

    /// The least JSON the row still arriving will take (0 between rows), so a caller
    /// can give up on a row that cannot fit before all of it has arrived.
    pub fn pending_row_min_bytes(&self) -> u64 {
        self.row.map_or(0, |r| r.min_json)
    }

    /// The next complete event, or `None` when more input is needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, StreamError> {
        match self.state {
            State::Header => self.header(),
            State::Rows => self.row(),
            State::Done => Ok(None),
        }
    }

    /// Call at end of input: an error if the document stopped early.
    /// An empty body (statements that return nothing) is a clean end.
    pub fn finish(&self) -> Result<bool, StreamError> {
        let rest = tail(&self.buf, self.pos);
        match self.state {
            State::Done => Ok(true),
            State::Header if rest.trim_ascii().is_empty() => Ok(false),
            _ => Err(self.failure(self.pos)),
        }
    }

    /// What went wrong from `from` on: a server exception if the text carries one.
    fn failure(&self, from: usize) -> StreamError {
        let text = tail(&self.buf, from);
        // An exception is appended after whatever was sent; read it from its code on.
        let code_at = find(text, b"Code: ");
        if code_at.is_some() || find(text, b"Exception").is_some() {
            let message: String = String::from_utf8_lossy(tail(text, code_at.unwrap_or(0)))
                .chars()
                .take(FAILURE_TEXT)
                .collect();
            return StreamError::Server(ServerError::parse(0, &message));
        }
        let snippet: String = String::from_utf8_lossy(text)
            .trim()
            .chars()
            .take(80)
            .collect();
        StreamError::Format(format!("unexpected `{snippet}`"))
    }

    fn header(&mut self) -> Result<Option<Event>, StreamError> {
        const DATA: &[u8] = b"\"data\":";
        // Resume the search where the last push left it (minus a needle's overlap).
        let from = self.header_scanned.max(self.pos);
        let found = find(tail(&self.buf, from), DATA).map(|i| from + i);
        self.examined += (self.buf.len() - from) as u64;
        let Some(data_at) = found else {
            let text = tail(&self.buf, self.pos);
            if text.len() > MAX_HEADER
                || (!text.is_empty() && !text.trim_ascii_start().starts_with(b"{"))
            {
                return Err(self.failure(self.pos));
            }
            self.header_scanned = self.buf.len().saturating_sub(DATA.len() - 1);
            return Ok(None);
        };
        let after_data = tail(&self.buf, data_at + DATA.len());
        let Some(open) = after_data.iter().position(|b| !b.is_ascii_whitespace()) else {
            self.header_scanned = data_at;
            return Ok(None);
        };
        if after_data.get(open) != Some(&b'[') {
            return Err(self.failure(self.pos));
        }
        let text = self.buf.get(self.pos..data_at).unwrap_or_default();
        let meta_at = find(text, b"\"meta\":").ok_or_else(|| self.failure(self.pos))?;
        let mut it = serde_json::Deserializer::from_slice(tail(text, meta_at + 7))
            .into_iter::<Vec<Column>>();
        let columns = match it.next() {
            Some(Ok(c)) => c,
            _ => return Err(StreamError::Format("unreadable column list".into())),
        };
        self.exact = columns
            .iter()
            .map(|c| JsonKind::of(&c.ch_type).keeps_text())
            .collect();
        if !self.exact.contains(&true) {
            self.exact.clear();
        }
        self.pos = data_at + DATA.len() + open + 1;
        self.state = State::Rows;
        Ok(Some(Event::Columns(columns)))
    }

    fn row(&mut self) -> Result<Option<Event>, StreamError> {
        let mut scan = match self.row {
            Some(scan) => scan,
            None => {
                while self
                    .buf
                    .get(self.pos)
                    .is_some_and(|b| b.is_ascii_whitespace() || *b == b',')
                {
                    self.pos += 1;
                }
                match self.buf.get(self.pos) {
                    None => return Ok(None),
                    Some(b']') => {
                        self.pos += 1;
                        self.state = State::Done;
                        return Ok(Some(Event::End));
                    }
                    Some(b'[') => RowScan {
                        start: self.pos,
                        at: self.pos,
                        ..RowScan::default()
                    },
                    Some(_) => return Err(self.failure(self.pos)),
                }
            }
        };
        let end = scan_row(&self.buf, &mut scan);
        self.examined += (scan.at - self.row.map_or(scan.start, |r| r.at)) as u64;
        let Some(end) = end else {
            self.row = Some(scan);
            return Ok(None);
        };
        self.row = None;
        let raw = self.buf.get(scan.start..end).unwrap_or_default();
        self.examined += raw.len() as u64;
        let parsed = if self.exact.is_empty() {
            serde_json::from_slice::<Vec<Value>>(raw).ok()
        } else if quote_exact_numbers(raw, &self.exact, &mut self.quoted) {
            serde_json::from_slice::<Vec<Value>>(&self.quoted).ok()
        } else {
            None
        };
        match parsed {
            Some(row) => {
                self.pos = end;
                Ok(Some(Event::Row(row)))
            }
            None => Err(self.failure(scan.start)),
        }
    }
}

/// Writes into `out` `row` (one JSONCompact row) with every bare number inside the cells
/// `exact` marks wrapped in quotes, so the JSON parser keeps its digits: ClickHouse 18.16
/// writes decimals as bare numbers (it has no `output_format_json_quote_decimals`), and
/// `12345678901234567890.1234567890` read as an f64 would come out as
/// `1.2345678901234567e19`. False when a quoted number is not a JSON number (`1.2.3`,
/// `01`, `-`): quoting must not turn what the parser would refuse into a string.
fn quote_exact_numbers(row: &[u8], exact: &[bool], out: &mut Vec<u8>) -> bool {
    out.clear();
    out.reserve(row.len() + 16);
    let (mut depth, mut cell, mut number_at) = (0u32, 0usize, 0usize);
    let (mut in_string, mut escaped, mut in_number) = (false, false, false);
    for &b in row {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        if in_number && !(b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')) {
            if !is_json_number(out.get(number_at..).unwrap_or_default()) {
                return false;
            }
            out.push(b'"');
            in_number = false;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => cell += 1,
            b'-' | b'0'..=b'9' if !in_number && exact.get(cell).copied().unwrap_or(false) => {
                out.push(b'"');
                number_at = out.len();
                in_number = true;
            }
            _ => {}
        }
        out.push(b);
    }
    !in_number
}

/// Whether `s` is a number as JSON writes it: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &[u8]) -> bool {
    let digits_from = |mut i: usize| {
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let start = usize::from(s.first() == Some(&b'-'));
    let mut i = digits_from(start);
    if i == start || (i - start > 1 && s.get(start) == Some(&b'0')) {
        return false;
    }
    if s.get(i) == Some(&b'.') {
        let end = digits_from(i + 1);
        if end == i + 1 {
            return false;
        }
        i = end;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits_from(i);
        if end == i {
            return false;
        }
        i = end;
    }
    i == s.len()
}

/// `buf` from `from` on (empty past the end): offsets come from the scanner's own
/// arithmetic, and a slip must never panic on network input.
fn tail(buf: &[u8], from: usize) -> &[u8] {
    buf.get(from..).unwrap_or_default()
}

/// Advances `scan` over `buf`; the offset just past the row's closing `]` once found.
/// Also counts the least JSON the bytes seen can become once re-serialized: whitespace
/// outside strings is dropped, an escape may shrink to one byte, a number to one digit.
fn scan_row(buf: &[u8], scan: &mut RowScan) -> Option<usize> {
    while let Some(&b) = buf.get(scan.at) {
        scan.at += 1;
        if scan.in_string {
            if scan.hex_left > 0 {
                scan.hex_left -= 1;
            } else if scan.escaped {
                scan.escaped = false;
                scan.min_json += 1;
                if b == b'u' {
                    scan.hex_left = 4;
                }
            } else if b == b'\\' {
                scan.escaped = true;
            } else {
                scan.in_string = b != b'"';
                scan.min_json += 1;
            }
            continue;
        }
        let in_scalar = std::mem::take(&mut scan.in_scalar);
        match b {
            b'"' => {
                scan.in_string = true;
                scan.min_json += 1;
            }
            b'[' | b'{' => {
                scan.depth += 1;
                scan.min_json += 1;
            }
            b']' | b'}' => {
                scan.depth = scan.depth.saturating_sub(1);
                scan.min_json += 1;
                if scan.depth == 0 {
                    return Some(scan.at);
                }
            }
            b',' | b':' => scan.min_json += 1,
            b if b.is_ascii_whitespace() => {}
            _ => {
                // A number or literal: counted once, at its first byte.
                if !in_scalar {
                    scan.min_json += 1;
                }
                scan.in_scalar = true;
            }
        }
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DOC: &str = "{\n\t\"meta\":\n\t[\n\t\t{\n\t\t\t\"name\": \"n\",\n\t\t\t\"type\": \"UInt64\"\n\t\t},\n\t\t{\"name\": \"s\", \"type\": \"String\"}\n\t],\n\n\t\"data\":\n\t[\n\t\t[\"1\", \"a]\"],\n\t\t[\"2\", \"b\"]\n\t],\n\n\t\"rows\": 2\n}\n";

    fn drain(r: &mut CompactReader) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = r.next_event().unwrap() {
            out.push(e);
        }
        out
    }

    #[test]
    fn decimals_and_wide_integers_keep_their_digits_and_floats_stay_numbers() {
        // As ClickHouse 18.16 writes them: decimals bare, 64-bit integers quoted.
        let doc = r#"{"meta": [{"name": "d", "type": "Decimal(38, 10)"}, {"name": "f", "type": "Float64"},
            {"name": "a", "type": "Array(Decimal(18, 2))"}, {"name": "n", "type": "Nullable(Decimal(9, 2))"},
            {"name": "s", "type": "String"}, {"name": "i", "type": "Int64"}],
            "data": [[12345678901234567890.1234567890, 0.1, [2.10, -1.5e2], null, "7, \"8\"]", -9007199254740993],
                     [-0.50, 1e300, [], 1.50, "", "5"]], "rows": 2}"#;
        let mut r = CompactReader::default();
        r.push(doc.as_bytes());
        let events = drain(&mut r);
        assert_eq!(
            events[1],
            Event::Row(vec![
                json!("12345678901234567890.1234567890"),
                json!(0.1),
                json!(["2.10", "-1.5e2"]),
                json!(null),
                json!("7, \"8\"]"),
                // Read exactly as an i64 (no quoting needed); `JsonKind::normalize` makes
                // it the string the client receives.
                json!(-9007199254740993i64),
            ])
        );
        assert_eq!(
            events[2],
            Event::Row(vec![
                json!("-0.50"),
                json!(1e300),
                json!([]),
                json!("1.50"),
                json!(""),
                json!("5"),
            ])
        );
    }

    #[test]
    fn a_malformed_number_in_a_decimal_cell_fails_the_row_instead_of_becoming_text() {
        for bad in ["1.2.3", "01", "-", "1e", "1-2", "1.", ".5"] {
            let doc = format!(
                r#"{{"meta": [{{"name": "d", "type": "Decimal(9, 2)"}}], "data": [[{bad}]], "rows": 1}}"#
            );
            let mut r = CompactReader::default();
            r.push(doc.as_bytes());
            assert!(
                matches!(r.next_event(), Ok(Some(Event::Columns(_)))),
                "{bad}"
            );
            assert!(r.next_event().is_err(), "{bad} was accepted");
        }
    }

    mod hostile {
        use super::super::quote_exact_numbers;
        use proptest::prelude::*;
        use serde_json::Value;

        /// One cell as ClickHouse could write it: a number's exact text, a string (any
        /// characters, escaped), null, or an array of numbers.
        fn cell() -> impl Strategy<Value = String> {
            let number = "-?(0|[1-9][0-9]{0,39})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?";
            prop_oneof![
                number.prop_map(|n| n),
                any::<String>().prop_map(|t| Value::String(t).to_string()),
                Just("null".to_string()),
                prop::collection::vec(number, 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            ]
        }

        proptest! {
            /// Whatever the row holds (strings full of quotes, brackets, commas and
            /// escapes included), quoting keeps it valid JSON, leaves strings and nulls as
            /// they were, and turns every number of a marked cell into its exact text.
            #[test]
            fn quoting_keeps_every_row_valid_and_every_digit(
                cells in prop::collection::vec((cell(), any::<bool>()), 1..8)
            ) {
                let row = format!("[{}]", cells.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", "));
                let exact: Vec<bool> = cells.iter().map(|(_, e)| *e).collect();
                let mut quoted = Vec::new();
                prop_assert!(quote_exact_numbers(row.as_bytes(), &exact, &mut quoted));
                let parsed: Vec<Value> = serde_json::from_slice(&quoted).expect("valid JSON");
                prop_assert_eq!(parsed.len(), cells.len());
                for ((text, marked), got) in cells.iter().zip(&parsed) {
                    let plain: Value = serde_json::from_str(text).expect("a valid cell");
                    let want = match (&plain, marked) {
                        (Value::Number(_), true) => Value::String(text.clone()),
                        (Value::Array(_), true) => Value::Array(
                            text.trim_matches(|c| c == '[' || c == ']')
                                .split(", ")
                                .filter(|t| !t.is_empty())
                                .map(|t| Value::String(t.to_string()))
                                .collect(),
                        ),
                        _ => plain.clone(),
                    };
                    prop_assert_eq!(got, &want);
                }
            }
        }
    }

    #[test]
    fn reads_a_whole_document() {
        let mut r = CompactReader::default();
        r.push(DOC.as_bytes());
        let events = drain(&mut r);
        assert_eq!(events.len(), 4);
        assert_eq!(events[1], Event::Row(vec![json!("1"), json!("a]")]));
        assert_eq!(events[3], Event::End);
        assert_eq!(r.finish(), Ok(true));
    }

    #[test]
    fn reads_the_same_document_one_byte_at_a_time() {
        let mut r = CompactReader::default();
        let mut events = Vec::new();
        for b in DOC.as_bytes() {
            r.push(&[*b]);
            events.extend(drain(&mut r));
        }
        assert_eq!(events.len(), 4);
        assert_eq!(events[2], Event::Row(vec![json!("2"), json!("b")]));
    }

    #[test]
    fn exception_after_rows_is_a_server_error() {
        let mut r = CompactReader::default();
        r.push(b"{\"meta\": [{\"name\":\"x\",\"type\":\"UInt8\"}], \"data\": [[1],\nCode: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded, e.what() = DB::Exception\n");
        assert!(matches!(r.next_event(), Ok(Some(Event::Columns(_)))));
        assert_eq!(r.next_event(), Ok(Some(Event::Row(vec![json!(1)]))));
        match r.next_event() {
            Err(StreamError::Server(e)) => assert_eq!(e.code, Some(241)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_body_is_a_clean_end_and_cut_body_is_not() {
        assert_eq!(CompactReader::default().finish(), Ok(false));
        let mut r = CompactReader::default();
        r.push(b"{\"meta\": [], \"data\": [[1]");
        drain(&mut r);
        assert!(r.finish().is_err());
    }

    #[test]
    fn other_formats_are_named() {
        let mut r = CompactReader::default();
        r.push(b"1\tfoo\n");
        assert!(matches!(r.next_event(), Err(StreamError::Format(_))));
    }

    /// A JSONCompact document with one row of `n` quoted numbers, split header/row/trailer.
    fn one_big_row(n: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let head = b"{\n\t\"meta\":\n\t[\n\t\t{\"name\": \"a\", \"type\": \"Array(UInt64)\"}\n\t],\n\n\t\"data\":\n\t[\n\t\t[[".to_vec();
        let mut row = Vec::with_capacity(n * 10);
        for i in 0..n {
            if i > 0 {
                row.extend_from_slice(b", ");
            }
            row.extend_from_slice(format!("\"{i}\"").as_bytes());
        }
        (head, row, b"]]\n\t],\n\t\"rows\": 1\n}\n".to_vec())
    }

    #[test]
    fn an_8_mib_row_in_4_kib_chunks_is_examined_a_linear_number_of_times() {
        let (head, row, tail) = one_big_row(1_000_000);
        let doc = [head, row, tail].concat();
        assert!(doc.len() > 8_000_000, "{}", doc.len());
        let mut r = CompactReader::default();
        let mut events = Vec::new();
        for chunk in doc.chunks(4096) {
            r.push(chunk);
            events.extend(drain(&mut r));
        }
        assert_eq!(events.len(), 3);
        match &events[1] {
            Event::Row(v) => assert_eq!(v[0].as_array().map(Vec::len), Some(1_000_000)),
            other => panic!("{other:?}"),
        }
        // Each byte is scanned once and each complete row parsed once: about 2n. The old
        // reader re-parsed the partial row on every chunk: about n²/(2·4096).
        let n = doc.len() as u64;
        assert!(
            r.bytes_examined() <= 3 * n,
            "examined {} bytes for a {n}-byte document",
            r.bytes_examined()
        );
    }

    #[test]
    fn rows_with_brackets_quotes_and_escapes_read_the_same_split_anywhere() {
        let doc = br#"{"meta": [{"name": "a", "type": "Array(String)"}, {"name": "t", "type": "Tuple(UInt8, Array(UInt8))"}], "data": [[["x\"]", "\\", "[{"], [1, [2, 3]]], [[], [0, []]]], "rows": 2}"#;
        let mut whole = CompactReader::default();
        whole.push(doc);
        let expected = drain(&mut whole);
        assert_eq!(expected.len(), 4);
        assert_eq!(
            expected[1],
            Event::Row(vec![json!(["x\"]", "\\", "[{"]), json!([1, [2, 3]])])
        );
        for cut in 1..doc.len() {
            let mut r = CompactReader::default();
            r.push(&doc[..cut]);
            let mut got = drain(&mut r);
            r.push(&doc[cut..]);
            got.extend(drain(&mut r));
            assert_eq!(got, expected, "split at {cut}");
            assert_eq!(r.finish(), Ok(true));
        }
    }

    #[test]
    fn a_partial_row_reports_a_lower_bound_of_its_json() {
        let row = br#"[ "a\/b" ,	1.50e+10 , "\u0041\n" , [ true , null ] ]"#;
        let mut r = CompactReader::default();
        r.push(b"{\"meta\": [], \"data\": [");
        assert!(matches!(r.next_event(), Ok(Some(Event::Columns(_)))));
        let mut seen = 0;
        for (i, b) in row.iter().enumerate() {
            r.push(&[*b]);
            if i + 1 < row.len() {
                assert_eq!(r.next_event(), Ok(None));
                let now = r.pending_row_min_bytes();
                assert!(now >= seen, "the bound only grows");
                seen = now;
            }
        }
        let Ok(Some(Event::Row(values))) = r.next_event() else {
            panic!("the row completes");
        };
        let json = serde_json::to_string(&values).unwrap();
        assert!(seen > 10, "the bound counts the row: {seen}");
        assert!(
            seen <= json.len() as u64,
            "{seen} is not a lower bound of {json} ({} bytes)",
            json.len()
        );
        assert_eq!(r.pending_row_min_bytes(), 0, "no row in progress");
    }
}

// lint pass pending merge
#![allow(
    clippy::indexing_slicing,
    clippy::string_slice,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
//! An incremental reader of ClickHouse's `JSONCompact` output, so rows can be counted
//! (and the query stopped) while the response is still arriving.
//!
//! The document is `{"meta": [...], "data": [[...], ...], "rows": N, ...}`; JSONCompact
//! is chosen because every server version has it. An exception raised after the
//! headers were sent arrives as plain text inside the body; it is reported as such.

use serde::Deserialize;
use serde_json::Value;

use super::error::ServerError;

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

#[derive(Debug, Default)]
pub struct CompactReader {
    buf: Vec<u8>,
    pos: usize,
    state: State,
}

/// Consumed bytes are dropped once this much has piled up, to bound memory.
const COMPACT_AFTER: usize = 64 * 1024;

impl CompactReader {
    pub fn push(&mut self, chunk: &[u8]) {
        if self.pos > COMPACT_AFTER {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
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
        let rest = String::from_utf8_lossy(&self.buf[self.pos..]);
        match self.state {
            State::Done => Ok(true),
            State::Header if rest.trim().is_empty() => Ok(false),
            _ => Err(self.failure(&rest)),
        }
    }

    fn failure(&self, text: &str) -> StreamError {
        if text.contains("Code: ") || text.contains("Exception") {
            StreamError::Server(ServerError::parse(0, text))
        } else {
            let snippet: String = text.trim().chars().take(80).collect();
            StreamError::Format(format!("unexpected `{snippet}`"))
        }
    }

    fn header(&mut self) -> Result<Option<Event>, StreamError> {
        let text = &self.buf[self.pos..];
        let Some(data_at) = find(text, b"\"data\":") else {
            // No FORMAT-JSON document is this long without reaching `data`.
            if text.len() > 1 << 20
                || (!text.is_empty() && !text.trim_ascii_start().starts_with(b"{"))
            {
                return Err(self.failure(&String::from_utf8_lossy(text)));
            }
            return Ok(None);
        };
        let after_data = &text[data_at + 7..];
        let Some(open) = after_data.iter().position(|b| !b.is_ascii_whitespace()) else {
            return Ok(None);
        };
        if after_data[open] != b'[' {
            return Err(self.failure(&String::from_utf8_lossy(text)));
        }
        let meta_at = find(&text[..data_at], b"\"meta\":")
            .ok_or_else(|| self.failure(&String::from_utf8_lossy(text)))?;
        let mut it = serde_json::Deserializer::from_slice(&text[meta_at + 7..data_at])
            .into_iter::<Vec<Column>>();
        let columns = match it.next() {
            Some(Ok(c)) => c,
            _ => return Err(StreamError::Format("unreadable column list".into())),
        };
        self.pos += data_at + 7 + open + 1;
        self.state = State::Rows;
        Ok(Some(Event::Columns(columns)))
    }

    fn row(&mut self) -> Result<Option<Event>, StreamError> {
        while self.pos < self.buf.len()
            && (self.buf[self.pos].is_ascii_whitespace() || self.buf[self.pos] == b',')
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
            Some(b'[') => {}
            Some(_) => return Err(self.failure(&String::from_utf8_lossy(&self.buf[self.pos..]))),
        }
        let mut it =
            serde_json::Deserializer::from_slice(&self.buf[self.pos..]).into_iter::<Vec<Value>>();
        match it.next() {
            Some(Ok(row)) => {
                self.pos += it.byte_offset();
                Ok(Some(Event::Row(row)))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            None => Ok(None),
            Some(Err(_)) => Err(self.failure(&String::from_utf8_lossy(&self.buf[self.pos..]))),
        }
    }
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
}

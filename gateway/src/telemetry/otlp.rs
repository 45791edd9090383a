//! The OTLP/HTTP trace exporter: finished spans are queued (bounded; a full queue
//! drops spans, never blocks a request), batched, encoded as an
//! `ExportTraceServiceRequest` protobuf by hand (the five messages the gateway fills;
//! docs/decisions.md says why not the `opentelemetry` crates) and POSTed with
//! `Content-Type: application/x-protobuf`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use tokio::sync::{mpsc, oneshot};

use super::trace::{AttrValue, SpanRecord};
use crate::config::OtlpConfig;

/// Spans waiting for the exporter; beyond this they are dropped (and counted in a log).
const QUEUE: usize = 4096;
/// Spans per POST.
const BATCH: usize = 512;
/// How long a batch waits for more spans.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    #[error("telemetry.otlp.headers.{0}: not a valid HTTP header")]
    Header(String),
    #[error("telemetry.otlp: could not build the HTTP client: {0}")]
    Client(String),
    #[error("telemetry.otlp: the exporter needs a running async runtime")]
    NoRuntime,
}

/// Records spans for export. Process-wide (`telemetry` is restart-only).
pub struct Tracer {
    tx: mpsc::Sender<SpanRecord>,
    /// Asks the exporter to send what is queued now (shutdown), acknowledged when sent.
    flush: mpsc::Sender<oneshot::Sender<()>>,
    sample_ratio: f64,
    pub include_sql: bool,
}

impl Tracer {
    /// Starts the exporter task on the current runtime.
    pub fn start(c: &OtlpConfig, include_sql: bool) -> Result<Arc<Self>, TracerError> {
        let mut headers = HeaderMap::new();
        for (k, v) in &c.headers {
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| TracerError::Header(k.clone()))?;
            let mut value =
                HeaderValue::from_str(v.expose()).map_err(|_| TracerError::Header(k.clone()))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        let http = reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .default_headers(headers)
            .build()
            .map_err(|e| TracerError::Client(e.to_string()))?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TracerError::NoRuntime)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (flush, flushes) = mpsc::channel(1);
        let exporter = Exporter {
            http,
            url: traces_url(&c.endpoint),
            resource: encode_resource(&c.service_name),
        };
        runtime.spawn(exporter.run(rx, flushes));
        Ok(Arc::new(Self {
            tx,
            flush,
            sample_ratio: c.sample_ratio,
            include_sql,
        }))
    }

    /// A tracer whose spans go to the returned queue instead of an exporter (tests).
    #[cfg(test)]
    pub(crate) fn queue_only(
        sample_ratio: f64,
        include_sql: bool,
    ) -> (Arc<Self>, mpsc::Receiver<SpanRecord>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (flush, _) = mpsc::channel(1);
        let t = Self {
            tx,
            flush,
            sample_ratio,
            include_sql,
        };
        (Arc::new(t), rx)
    }

    /// Head sampling of a trace the gateway starts.
    pub fn sample(&self) -> bool {
        self.sample_ratio >= 1.0 || fastrand::f64() < self.sample_ratio
    }

    /// Sends every span queued so far (graceful shutdown), waiting at most `within`: the
    /// last requests' spans are the ones an operator looks for after a restart.
    pub async fn flush(&self, within: Duration) {
        let (ack, done) = oneshot::channel();
        if self.flush.send(ack).await.is_ok() {
            let _ = tokio::time::timeout(within, done).await;
        }
    }

    /// Queues a finished span; never waits.
    pub fn export(&self, span: SpanRecord) {
        if self.tx.try_send(span).is_err() {
            tracing::debug!("OTLP queue full: a span was dropped");
        }
    }
}

/// OTLP/HTTP's convention: a base URL (no path) gets `/v1/traces`; a URL with a path
/// is used as given.
pub fn traces_url(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(u) if u.path() == "/" || u.path().is_empty() => {
            format!("{}/v1/traces", endpoint.trim_end_matches('/'))
        }
        _ => endpoint.to_string(),
    }
}

struct Exporter {
    http: reqwest::Client,
    url: String,
    resource: Vec<u8>,
}

impl Exporter {
    async fn run(
        self,
        mut rx: mpsc::Receiver<SpanRecord>,
        mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    if batch.len() < BATCH {
                        // Wait a moment for more spans, unless a flush is asked for.
                        tokio::select! {
                            () = tokio::time::sleep(FLUSH_EVERY) => {}
                            Some(ack) = flushes.recv() => {
                                self.drain(&mut rx, &mut batch).await;
                                let _ = ack.send(());
                                continue;
                            }
                        }
                        while batch.len() < BATCH {
                            match rx.try_recv() {
                                Ok(s) => batch.push(s),
                                Err(_) => break,
                            }
                        }
                    }
                    self.send(&mut batch).await;
                }
                Some(ack) = flushes.recv() => {
                    self.drain(&mut rx, &mut batch).await;
                    let _ = ack.send(());
                }
            }
        }
    }

    /// Sends `batch` and everything queued behind it.
    async fn drain(&self, rx: &mut mpsc::Receiver<SpanRecord>, batch: &mut Vec<SpanRecord>) {
        while let Ok(s) = rx.try_recv() {
            batch.push(s);
            if batch.len() == BATCH {
                self.send(batch).await;
            }
        }
        if !batch.is_empty() {
            self.send(batch).await;
        }
    }

    async fn send(&self, batch: &mut Vec<SpanRecord>) {
        let body = encode_request(&self.resource, batch);
        batch.clear();
        match self.http.post(&self.url).body(body).send().await {
            Ok(r) if r.status().is_success() => {}
            // Neither the URL's query nor the headers are logged: they may hold keys.
            Ok(r) => tracing::warn!(
                status = r.status().as_u16(),
                "the OTLP endpoint refused a batch of spans"
            ),
            Err(e) => tracing::warn!(
                timeout = e.is_timeout(),
                connect = e.is_connect(),
                "could not send spans to the OTLP endpoint"
            ),
        }
    }
}

// Protobuf wire format, for the OTLP trace messages (opentelemetry-proto
// `collector/trace/v1`, `trace/v1`, `resource/v1`, `common/v1`).

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn tag(buf: &mut Vec<u8>, field: u32, wire: u8) {
    varint(buf, u64::from(field) << 3 | u64::from(wire));
}

fn bytes_field(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    tag(buf, field, LEN);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

fn message(buf: &mut Vec<u8>, field: u32, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    fill(&mut inner);
    bytes_field(buf, field, &inner);
}

/// `KeyValue { key = 1; AnyValue value = 2 }`, `AnyValue { string = 1; bool = 2; int = 3 }`.
fn key_value(buf: &mut Vec<u8>, field: u32, key: &str, value: &AttrValue) {
    message(buf, field, |kv| {
        bytes_field(kv, 1, key.as_bytes());
        message(kv, 2, |any| match value {
            AttrValue::Str(s) => bytes_field(any, 1, s.as_bytes()),
            AttrValue::Bool(b) => {
                tag(any, 2, VARINT);
                varint(any, u64::from(*b));
            }
            AttrValue::Int(i) => {
                tag(any, 3, VARINT);
                varint(any, *i as u64);
            }
        });
    });
}

/// `Resource { repeated KeyValue attributes = 1 }` with `service.name`.
fn encode_resource(service_name: &str) -> Vec<u8> {
    let mut r = Vec::new();
    key_value(&mut r, 1, "service.name", &AttrValue::from(service_name));
    key_value(
        &mut r,
        1,
        "service.version",
        &AttrValue::from(env!("CARGO_PKG_VERSION")),
    );
    r
}

/// `ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }`;
/// `ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2 }`;
/// `ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2 }`.
pub fn encode_request(resource: &[u8], spans: &[SpanRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    message(&mut out, 1, |rs| {
        bytes_field(rs, 1, resource);
        message(rs, 2, |ss| {
            message(ss, 1, |scope| {
                bytes_field(scope, 1, b"chmcp-gateway");
                bytes_field(scope, 2, env!("CARGO_PKG_VERSION").as_bytes());
            });
            for s in spans {
                message(ss, 2, |b| encode_span(b, s));
            }
        });
    });
    out
}

/// `Span { trace_id = 1; span_id = 2; parent_span_id = 4; name = 5; kind = 6;
/// start_time_unix_nano = 7 (fixed64); end_time_unix_nano = 8; attributes = 9;
/// Status status = 15 { message = 2; code = 3 } }`.
fn encode_span(b: &mut Vec<u8>, s: &SpanRecord) {
    bytes_field(b, 1, &s.ctx.trace_id);
    bytes_field(b, 2, &s.ctx.span_id);
    if let Some(p) = &s.parent {
        bytes_field(b, 4, p);
    }
    bytes_field(b, 5, s.name.as_bytes());
    tag(b, 6, VARINT);
    varint(b, s.kind as u64);
    tag(b, 7, FIXED64);
    b.extend_from_slice(&s.start_unix_nanos.to_le_bytes());
    tag(b, 8, FIXED64);
    b.extend_from_slice(&s.end_unix_nanos.to_le_bytes());
    for (k, v) in &s.attributes {
        key_value(b, 9, k, v);
    }
    message(b, 15, |st| match &s.error {
        Some(m) => {
            bytes_field(st, 2, m.as_bytes());
            tag(st, 3, VARINT);
            varint(st, 2); // STATUS_CODE_ERROR
        }
        None => {
            tag(st, 3, VARINT);
            varint(st, 1); // STATUS_CODE_OK
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::trace::{SpanKind, TraceContext};

    #[test]
    fn varints_follow_the_protobuf_encoding() {
        let mut b = Vec::new();
        varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        b.clear();
        varint(&mut b, 1);
        assert_eq!(b, [1]);
    }

    #[test]
    fn a_span_encodes_its_ids_name_and_times_at_their_field_numbers() {
        let ctx = TraceContext {
            trace_id: [7; 16],
            span_id: [9; 8],
            sampled: true,
        };
        let span = SpanRecord {
            ctx,
            parent: None,
            name: "n".into(),
            kind: SpanKind::Server,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: vec![("k", AttrValue::Int(5))],
            error: None,
        };
        let mut b = Vec::new();
        encode_span(&mut b, &span);
        // trace_id: field 1, length 16.
        assert_eq!(b.get(..2), Some(&[0x0a, 16][..]));
        assert_eq!(b.get(2..18), Some(&[7u8; 16][..]));
        // span_id: field 2, length 8; then name (field 5) "n"; kind (field 6) = 2.
        assert_eq!(b.get(18..20), Some(&[0x12, 8][..]));
        assert_eq!(b.get(28..34), Some(&[0x2a, 1, b'n', 0x30, 2, 0x39][..]));
    }

    #[test]
    fn a_base_endpoint_gets_the_traces_path() {
        assert_eq!(
            traces_url("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://collector:4318/custom/path"),
            "http://collector:4318/custom/path"
        );
    }
}

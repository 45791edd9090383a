//! Request traces: the W3C trace context a request carries, the spans the gateway
//! records for it, and the facts of a tool call for its audit line.
//!
//! The current request's context travels in a task-local ([`Current`]), so the
//! ClickHouse client adds `traceparent` and the steps open child spans without the
//! context being passed through every signature. With tracing off nothing is recorded:
//! a child span is a task-local read and a branch, and the only per-request work is the
//! context itself (so ClickHouse still gets a `traceparent`, see [`traceparent`]).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::Either;
use futures::FutureExt;

use super::otlp::Tracer;
use crate::fingerprint::{hex, push_hex};

/// A W3C trace context (`traceparent`, version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceContext {
    /// Parses a `traceparent` value; `None` for anything the W3C spec says to ignore
    /// (bad shape, upper-case hex, all-zero ids, version `ff`).
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        let mut parts = v.splitn(5, '-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        // Version 00 has exactly four fields; a later version may append more.
        if (version == "00" && parts.next().is_some()) || version == "ff" {
            return None;
        }
        let version = hex_bytes::<1>(version)?;
        let trace_id = hex_bytes::<16>(trace)?;
        let span_id = hex_bytes::<8>(span)?;
        let flags = hex_bytes::<1>(flags)?;
        if version.len() != 1 || trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags[0] & 1 == 1,
        })
    }

    /// A new trace: random ids.
    pub fn fresh(sampled: bool) -> Self {
        Self {
            trace_id: nonzero_id::<16>(),
            span_id: nonzero_id::<8>(),
            sampled,
        }
    }

    /// The same trace, a new span id.
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero_id::<8>(),
            ..*self
        }
    }

    /// `00-<trace id>-<span id>-<flags>`, written into one string: every ClickHouse
    /// request carries one.
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        push_hex(&mut out, &self.trace_id);
        out.push('-');
        push_hex(&mut out, &self.span_id);
        out.push_str(if self.sampled { "-01" } else { "-00" });
        out
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

fn hex_bytes<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let (hi, lo) = match pair {
            [h, l] => (digit(*h)?, digit(*l)?),
            _ => return None,
        };
        *o = hi << 4 | lo;
    }
    Some(out)
}

fn nonzero_id<const N: usize>() -> [u8; N] {
    loop {
        let mut id = [0u8; N];
        id.iter_mut().for_each(|b| *b = fastrand::u8(..));
        if id != [0; N] {
            return id;
        }
    }
}

/// An attribute value (the OTLP `AnyValue` kinds the gateway uses).
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        Self::Str(s.to_string())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}
impl From<u64> for AttrValue {
    fn from(n: u64) -> Self {
        Self::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}
impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

/// OTLP span kinds used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanKind {
    #[default]
    Internal = 1,
    Server = 2,
    Client = 3,
}

/// A finished span, ready to export.
#[derive(Debug, Clone, Default)]
pub struct SpanRecord {
    pub ctx: TraceContext,
    pub parent: Option<[u8; 8]>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attributes: Vec<(&'static str, AttrValue)>,
    /// `Some(message)` when the span failed.
    pub error: Option<String>,
}

/// A span being recorded; sent to the exporter when dropped (so a cancelled step is
/// still exported, with the time it ran).
struct OpenSpan {
    tracer: Arc<Tracer>,
    record: Mutex<SpanRecord>,
}

impl Drop for OpenSpan {
    fn drop(&mut self) {
        if let Ok(r) = self.record.get_mut() {
            r.end_unix_nanos = now_nanos();
            self.tracer.export(std::mem::take(r));
        }
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What one tool call did, for its audit line (filled by the ClickHouse client and
/// the result builder while the call runs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallFacts {
    /// The last query the call sent (a listing tool may send more than one).
    pub query_id: Option<String>,
    pub rows: u64,
    pub bytes: u64,
    pub truncated: bool,
    /// Rows and bytes ClickHouse read for the call's queries, summed (`clickhouse::stats`);
    /// `None` when no query reported them.
    pub read_rows: Option<u64>,
    pub read_bytes: Option<u64>,
    /// The scan budget refused the call: `estimate` (before running) or `running`.
    pub budget_refusal: Option<&'static str>,
}

/// The request's trace state, task-local.
#[derive(Clone)]
struct Current {
    ctx: TraceContext,
    /// The span children attach to; `None` when not recording.
    span: Option<Arc<OpenSpan>>,
    include_sql: bool,
    facts: Option<Arc<Mutex<CallFacts>>>,
}

tokio::task_local! {
    static CURRENT: Current;
}

fn current<R>(f: impl FnOnce(&Current) -> R) -> Option<R> {
    CURRENT.try_with(f).ok()
}

/// The root span of one JSON-RPC request: its name (`tools/call <tool>` or the
/// method), the MCP attributes, and the client's context from `params._meta.traceparent`.
pub fn request_span(
    id: &serde_json::Value,
    method: &str,
    params: Option<&serde_json::Value>,
) -> (String, Vec<(&'static str, AttrValue)>) {
    let method = clip(method);
    let tool = (method == "tools/call")
        .then(|| params?.get("name")?.as_str().map(clip))
        .flatten();
    let mut attrs: Vec<(&'static str, AttrValue)> = vec![
        ("mcp.method.name", method.clone().into()),
        ("jsonrpc.request.id", clip(&id.to_string()).into()),
    ];
    let name = match &tool {
        Some(t) => format!("{method} {t}"),
        None => method,
    };
    if let Some(t) = tool {
        attrs.push(("gen_ai.tool.name", t.into()));
    }
    (name, attrs)
}

/// The client's trace context from `params._meta.traceparent`, when it sent a valid one.
pub fn meta_context(params: Option<&serde_json::Value>) -> Option<TraceContext> {
    params
        .and_then(|p| p.get("_meta")?.get("traceparent")?.as_str())
        .and_then(TraceContext::parse)
}

/// Request text in a span: bounded, so a client cannot make spans huge.
fn clip(s: &str) -> String {
    s.chars().take(128).collect()
}

/// Runs one MCP request under its trace: the root span (recorded when `tracer` is on
/// and the trace is sampled) continues `incoming` when the client sent a context.
/// With tracing off the incoming context (or a fresh unsampled one) is only carried,
/// so ClickHouse still sees the client's trace id.
pub fn in_request<F: Future>(
    tracer: Option<&Arc<Tracer>>,
    incoming: Option<TraceContext>,
    // The span's name and attributes, built only when a span is recorded (tracing off
    // costs no allocation for them).
    describe: impl FnOnce() -> (String, Vec<(&'static str, AttrValue)>),
    fut: F,
) -> impl Future<Output = F::Output> {
    let cur = match tracer {
        Some(t) => {
            // Parent-based sampling: a client's decision is kept; a new trace is
            // sampled at `sample_ratio`.
            let sampled = incoming.map_or_else(|| t.sample(), |c| c.sampled);
            let ctx = match incoming {
                Some(c) => TraceContext {
                    sampled,
                    ..c.child()
                },
                None => TraceContext::fresh(sampled),
            };
            let span = sampled.then(|| {
                let (name, attributes) = describe();
                open(
                    t,
                    ctx,
                    incoming.map(|c| c.span_id),
                    name,
                    SpanKind::Server,
                    attributes,
                )
            });
            Current {
                ctx,
                span,
                include_sql: t.include_sql,
                facts: None,
            }
        }
        None => Current {
            ctx: incoming.unwrap_or_else(|| TraceContext::fresh(false)),
            span: None,
            include_sql: false,
            facts: None,
        },
    };
    CURRENT.scope(cur, fut)
}

fn open(
    tracer: &Arc<Tracer>,
    ctx: TraceContext,
    parent: Option<[u8; 8]>,
    name: String,
    kind: SpanKind,
    attributes: Vec<(&'static str, AttrValue)>,
) -> Arc<OpenSpan> {
    Arc::new(OpenSpan {
        tracer: tracer.clone(),
        record: Mutex::new(SpanRecord {
            ctx,
            parent,
            name,
            kind,
            start_unix_nanos: now_nanos(),
            end_unix_nanos: 0,
            attributes,
            error: None,
        }),
    })
}

/// Runs `fut` as a child span of the current one; just runs it when not recording.
/// Not an `async fn`: the returned future holds `fut` once (an `async fn` would keep
/// the argument and the scoped future side by side, doubling deep request futures).
pub fn child<F: Future>(
    name: &'static str,
    kind: SpanKind,
    fut: F,
) -> impl Future<Output = F::Output> {
    let next = current(|c| {
        let parent = c.span.as_ref()?;
        let ctx = c.ctx.child();
        let span = open(
            &parent.tracer,
            ctx,
            Some(c.ctx.span_id),
            name.to_string(),
            kind,
            Vec::new(),
        );
        Some(Current {
            ctx,
            span: Some(span),
            ..c.clone()
        })
    })
    .flatten();
    match next {
        Some(c) => Either::Left(CURRENT.scope(c, fut)),
        None => Either::Right(fut),
    }
}

/// Adds an attribute to the current span (nothing when not recording).
pub fn set(key: &'static str, value: impl Into<AttrValue>) {
    current(|c| {
        if let Some(s) = &c.span {
            if let Ok(mut r) = s.record.lock() {
                r.attributes.push((key, value.into()));
            }
        }
    });
}

/// Marks the current span failed. The message must not carry secrets (callers pass
/// ClickHouse's or the gate's own error text).
pub fn set_error(message: &str) {
    current(|c| {
        if let Some(s) = &c.span {
            if let Ok(mut r) = s.record.lock() {
                r.error = Some(message.to_string());
            }
        }
    });
}

/// Whether SQL text may go into span attributes (`telemetry.include_sql`).
pub fn include_sql() -> bool {
    current(|c| c.include_sql && c.span.is_some()).unwrap_or(false)
}

/// The `traceparent` to send to ClickHouse: the current span's context, or a fresh
/// unsampled one outside any request (stdio, background work), so every query has one.
pub fn traceparent() -> String {
    current(|c| c.ctx)
        .unwrap_or_else(|| TraceContext::fresh(false))
        .traceparent()
}

/// `fut` carrying the current trace context (not its span: the span ends with the
/// request), for work spawned from a request, such as a `KILL QUERY`.
pub fn carry<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let ctx = current(|c| c.ctx).unwrap_or_else(|| TraceContext::fresh(false));
    CURRENT.scope(
        Current {
            ctx,
            span: None,
            include_sql: false,
            facts: None,
        },
        fut,
    )
}

/// `fut` in the current request's trace, span included: for a request answered as a
/// stream, whose work outlives the handler (the span ends when the stream does).
pub fn keep<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let cur = current(Current::clone).unwrap_or_else(|| Current {
        ctx: TraceContext::fresh(false),
        span: None,
        include_sql: false,
        facts: None,
    });
    CURRENT.scope(cur, fut)
}

/// The current trace id, for log lines.
pub fn trace_id() -> Option<String> {
    current(|c| c.ctx.trace_id_hex())
}

/// Runs a tool call collecting its [`CallFacts`].
pub fn collect_facts<F: Future>(fut: F) -> impl Future<Output = (F::Output, CallFacts)> {
    let facts = Arc::new(Mutex::new(CallFacts::default()));
    let cur = current(Clone::clone).unwrap_or_else(|| Current {
        ctx: TraceContext::fresh(false),
        span: None,
        include_sql: false,
        facts: None,
    });
    let scoped = CURRENT.scope(
        Current {
            facts: Some(facts.clone()),
            ..cur
        },
        fut,
    );
    scoped.map(move |out| {
        let facts = facts.lock().map(|f| f.clone()).unwrap_or_default();
        (out, facts)
    })
}

/// Notes a fact of the running tool call (nothing outside one).
pub fn note(f: impl FnOnce(&mut CallFacts)) {
    current(|c| {
        if let Some(facts) = &c.facts {
            if let Ok(mut facts) = facts.lock() {
                f(&mut facts);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_keeps_the_sampled_flag() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = TraceContext::parse(s).expect("valid");
        assert!(c.sampled);
        assert_eq!(c.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.traceparent(), s);
        let unsampled = TraceContext::parse(&s.replace("-01", "-00")).expect("valid");
        assert!(!unsampled.sampled);
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        // A later version may append fields; the first four are still read.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
    }

    #[tokio::test]
    async fn tracing_off_still_carries_the_client_trace_to_clickhouse() {
        let incoming =
            TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let tp = in_request(None, incoming, || ("x".into(), Vec::new()), async {
            child("step", SpanKind::Internal, async { traceparent() }).await
        })
        .await;
        // Nothing records, so the client's own context is what ClickHouse continues.
        assert_eq!(
            tp,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        // Outside a request every query still gets a (fresh, unsampled) traceparent.
        let outside = traceparent();
        assert!(outside.ends_with("-00") && outside.len() == 55);
    }

    #[test]
    fn a_request_span_is_named_after_method_and_tool_and_reads_meta_traceparent() {
        let params = serde_json::json!({
            "name": "execute_query",
            "_meta": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
        });
        let (name, attrs) = request_span(&serde_json::json!(7), "tools/call", Some(&params));
        let meta = meta_context(Some(&params));
        assert_eq!(name, "tools/call execute_query");
        assert!(attrs.contains(&("gen_ai.tool.name", AttrValue::from("execute_query"))));
        assert!(attrs.contains(&("mcp.method.name", AttrValue::from("tools/call"))));
        assert_eq!(
            meta.map(|m| m.trace_id_hex()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        // A huge method name is clipped; no `_meta` means no client context.
        let (name, _) = request_span(&serde_json::json!(1), &"m".repeat(10_000), None);
        let meta = meta_context(None);
        assert_eq!((name.len(), meta), (128, None));
    }

    fn drain(rx: &mut tokio::sync::mpsc::Receiver<SpanRecord>) -> Vec<SpanRecord> {
        let mut out = Vec::new();
        while let Ok(s) = rx.try_recv() {
            out.push(s);
        }
        out
    }

    #[tokio::test]
    async fn recorded_children_nest_under_the_root_which_continues_the_client() {
        let (tracer, mut rx) = Tracer::queue_only(0.0, false);
        let client = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let sent = in_request(
            Some(&tracer),
            client,
            || ("root".into(), Vec::new()),
            async {
                child("outer", SpanKind::Internal, async {
                    child("query", SpanKind::Client, async {
                        set("db.query.id", "q1");
                        if include_sql() {
                            set("db.query.text", "SELECT 1");
                        }
                        set_error("boom");
                        traceparent()
                    })
                    .await
                })
                .await
            },
        )
        .await;
        let spans = drain(&mut rx);
        let by_name = |n: &str| spans.iter().find(|s| s.name == n).expect(n);
        let (root, outer, query) = (by_name("root"), by_name("outer"), by_name("query"));
        assert_eq!(spans.len(), 3);
        assert!(spans.iter().all(|s| s.ctx.trace_id == root.ctx.trace_id));
        assert_eq!(root.ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            root.parent.map(|p| hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(outer.parent, Some(root.ctx.span_id));
        assert_eq!(query.parent, Some(outer.ctx.span_id));
        assert_eq!(query.kind, SpanKind::Client);
        assert_eq!(query.error.as_deref(), Some("boom"));
        assert_eq!(
            query.attributes,
            vec![("db.query.id", AttrValue::from("q1"))]
        );
        // ClickHouse gets the innermost span's context; the client's sampled flag wins
        // over a ratio of 0.
        assert_eq!(sent, query.ctx.traceparent());
        assert!(sent.ends_with("-01"));
        assert!(root.end_unix_nanos >= query.end_unix_nanos);
    }

    #[tokio::test]
    async fn sql_text_is_recorded_only_with_include_sql_and_unsampled_traces_record_nothing() {
        let (tracer, mut rx) = Tracer::queue_only(1.0, true);
        in_request(Some(&tracer), None, || ("root".into(), Vec::new()), async {
            assert!(include_sql());
        })
        .await;
        assert_eq!(drain(&mut rx).len(), 1);
        let (tracer, mut rx) = Tracer::queue_only(0.0, true);
        let tp = in_request(Some(&tracer), None, || ("root".into(), Vec::new()), async {
            child("c", SpanKind::Internal, async {
                (include_sql(), traceparent())
            })
            .await
        })
        .await;
        assert!(!tp.0, "nothing recorded, so no SQL either");
        assert!(tp.1.ends_with("-00"));
        assert!(drain(&mut rx).is_empty());
    }

    #[tokio::test]
    async fn call_facts_are_collected_inside_and_ignored_outside() {
        note(|f| f.rows = 99);
        let ((), facts) = collect_facts(async {
            note(|f| {
                f.rows += 3;
                f.query_id = Some("q1".into());
            });
            note(|f| f.truncated = true);
        })
        .await;
        assert_eq!(
            facts,
            CallFacts {
                query_id: Some("q1".into()),
                rows: 3,
                bytes: 0,
                truncated: true,
                ..Default::default()
            }
        );
    }
}

//! The one SSE answer the gateway gives (gateway.md: "an SSE response is allowed only
//! where a tool streams progress"): a `tools/call` whose client sent a `progressToken`
//! and accepts `text/event-stream` gets its `notifications/progress` and then its
//! response as events of the POST's own stream. The call runs inside the body: a client
//! that hangs up drops it, and with it the ClickHouse query (killed as always).

use std::future::Future;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

/// The call, producing its JSON-RPC response text.
pub type Work = Pin<Box<dyn Future<Output = String> + Send>>;

/// Whether the client takes an event stream as the answer to its POST.
pub fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

/// One SSE event carrying one JSON-RPC message.
fn event(json: &str) -> Bytes {
    Bytes::from(format!("event: message\ndata: {json}\n\n"))
}

/// The answer: every notification `rx` receives while `work` runs, then `work`'s
/// JSON-RPC response text, then the end of the stream.
pub fn response(rx: UnboundedReceiver<Value>, work: Work) -> Response {
    let stream = futures::stream::unfold(Some((work, rx)), |state| async move {
        let (mut work, mut rx): (Work, _) = state?;
        tokio::select! {
            biased;
            Some(note) = rx.recv() => {
                Some((Ok::<_, std::convert::Infallible>(event(&note.to_string())), Some((work, rx))))
            }
            text = &mut work => Some((Ok(event(&text)), None)),
        }
    });
    let mut r = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stream_is_accepted_among_other_types() {
        let mut h = HeaderMap::new();
        assert!(!accepts_event_stream(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream;q=0.9"),
        );
        assert!(accepts_event_stream(&h));
    }

    #[tokio::test]
    async fn notifications_come_first_and_the_response_ends_the_stream() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let work = async move {
            let _ = tx.send(serde_json::json!({"method": "notifications/progress"}));
            tokio::task::yield_now().await;
            "{\"id\":1}".to_string()
        };
        let r = response(rx, Box::pin(work));
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
        let body = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        assert_eq!(
            String::from_utf8_lossy(&body),
            "event: message\ndata: {\"method\":\"notifications/progress\"}\n\nevent: message\ndata: {\"id\":1}\n\n"
        );
    }
}

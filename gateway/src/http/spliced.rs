//! A response body of a few ready chunks, written as they are: a tools/list answer is
//! the catalog's serialized list between a short head and tail, and the list's bytes are
//! shared with the catalog (a reference count) instead of copied into every response.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use http_body::{Frame, SizeHint};

use crate::mcp::dispatch::Reply;
use crate::reply::text_response;

/// Text lent to a response body as bytes, without a copy.
struct SharedText(Arc<str>);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Chunks in order; the exact length is known up front, so hyper sends Content-Length.
struct Chunks {
    left: VecDeque<Bytes>,
    len: u64,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.left.pop_front();
        if let Some(chunk) = &next {
            self.len -= chunk.len() as u64;
        }
        Poll::Ready(next.map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.left.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

/// The HTTP response for a JSON-RPC reply: one buffer, or the spliced chunks.
pub fn reply_response(status: StatusCode, reply: Reply) -> Response {
    match reply {
        Reply::Whole(text) => text_response(status, text),
        Reply::Spliced { head, shared, tail } => {
            let shared = Bytes::from_owner(SharedText(shared));
            let left: VecDeque<Bytes> = [Bytes::from(head), shared, Bytes::from(tail)]
                .into_iter()
                .filter(|c| !c.is_empty())
                .collect();
            let len = left.iter().map(|c| c.len() as u64).sum();
            let mut r = text_response(status, String::new());
            *r.body_mut() = Body::new(Chunks { left, len });
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spliced_chunks_arrive_whole_with_their_exact_length() {
        let reply = Reply::Spliced {
            head: "{\"result\":{\"tools\":".into(),
            shared: Arc::from("[{\"name\":\"t\"}]"),
            tail: "}}".into(),
        };
        let r = reply_response(StatusCode::OK, reply);
        assert_eq!(
            r.headers()
                .get(axum::http::header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
        let whole = b"{\"result\":{\"tools\":[{\"name\":\"t\"}]}}";
        assert_eq!(
            http_body::Body::size_hint(r.body()).exact(),
            Some(whole.len() as u64)
        );
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        assert_eq!(&body[..], whole);
    }
}

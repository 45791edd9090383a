//! The HTTP listener: accepts connections and bounds what each may cost (docs/spec-notes.md,
//! "Transports": connections are bounded). A connection gets `header_read_timeout` to send a request's
//! headers, `body_read_timeout` (from its headers) to send the body, and is closed after
//! `idle_timeout` without a request; beyond `max_connections`, new ones are answered
//! `503` at once and closed, while established ones keep being served.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use crate::config::ServerConfig;

/// After a failed `accept` (e.g. out of file descriptors), wait before the next one
/// instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a refused connection is told; written without reading its request.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Retry-After: 1\r\n\
Content-Type: application/json\r\n\
Content-Length: 93\r\n\
Connection: close\r\n\
\r\n\
{\"error\":\"over_capacity\",\"error_description\":\"Too many connections (server.max_connections)\"}";

/// The listener settings (restart-only: read once when the listener starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ConnectionLimits {
    pub fn from_config(s: &ServerConfig) -> Self {
        Self {
            header_read_timeout: s.header_read_timeout.get(),
            body_read_timeout: s.body_read_timeout.get(),
            idle_timeout: s.idle_timeout.get(),
            max_connections: s.max_connections,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's own header timer also runs while a keep-alive connection waits for its next
    // request, which would cut idle connections at the header timeout; `BoundedIo` keeps
    // the two apart.
    http.header_read_timeout(None);
    let mut refusing = false;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if !refusing {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "connection limit reached (server.max_connections); refusing new connections"
                );
                refusing = true;
            }
            refuse(stream);
            continue;
        };
        refusing = false;
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let io = TokioIo::new(BoundedIo::new(stream, activity.clone(), limits));
        let service = ConnectionService {
            router: router.clone(),
            activity,
            body_read_timeout: limits.body_read_timeout,
        };
        let conn = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers a connection over the cap without reading from it: one non-blocking write,
/// so a flood of refused connections costs the accept loop nothing but the syscalls.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(OVER_CAPACITY);
}

/// What the connection's requests are doing, shared by the service (which sees requests
/// begin and end) and the IO (which applies the idle and header deadlines).
#[derive(Debug, Default)]
struct Activity {
    /// Requests whose response has not been fully sent.
    in_flight: AtomicU64,
    /// Bumped whenever a request begins or ends, so the IO notices a new idle period.
    generation: AtomicU64,
    /// The connection task, as last seen reading while a request was in flight: woken
    /// when the request ends so the idle deadline starts even if hyper read first.
    reader: Mutex<Option<Waker>>,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }
}

/// Held until a response body is dropped (sent or abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let before = self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        if before == 1 {
            let waker = self.0.reader.lock().ok().and_then(|mut w| w.take());
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// The per-connection hyper service: the router, with each request's body under a
/// deadline and the connection's activity tracked.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    activity: Arc<Activity>,
    body_read_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.body_read_timeout;
        let req = req.map(|inner| {
            Body::new(DeadlineBody {
                inner,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                timed_out: timed_out.clone(),
            })
        });
        let mut router = self.router.clone();
        Box::pin(async move {
            // A Router is always ready (axum documents `poll_ready` as a no-op).
            let response = match tower_service::Service::call(&mut router, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let response = if timed_out.load(Ordering::SeqCst) {
                body_timeout_response()
            } else {
                response
            };
            Ok(response.map(|inner| {
                Body::new(TrackedBody {
                    inner,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// `408` for a body that did not arrive in time; the connection closes after it.
fn body_timeout_response() -> Response<Body> {
    let body = serde_json::json!({
        "error": "request_timeout",
        "error_description": "The request body did not arrive within server.body_read_timeout",
    });
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body did not arrive within server.body_read_timeout")]
    Timeout,
    #[error(transparent)]
    Read(#[from] hyper::Error),
}

/// A request body that fails once its deadline passes (counted from the headers, so a
/// client trickling a byte at a time cannot stretch it).
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::from)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::SeqCst);
            return Poll::Ready(Some(Err(BodyError::Timeout)));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that marks its request finished when dropped.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a connection between requests stands.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    /// The `Activity::generation` this idle period belongs to.
    generation: u64,
    /// A request's first bytes have arrived: the header deadline applies.
    header_started: bool,
}

/// The connection's socket, failing reads once the connection has waited too long
/// between requests: `idle_timeout` with nothing sent, `header_read_timeout` once a
/// request has started to arrive. While a request is in flight neither applies.
struct BoundedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    waiting: Option<Waiting>,
    deadline: Pin<Box<Sleep>>,
}

impl BoundedIo {
    fn new(inner: TcpStream, activity: Arc<Activity>, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            activity,
            limits,
            waiting: None,
            deadline: Box::pin(tokio::time::sleep(limits.idle_timeout)),
        }
    }
}

impl AsyncRead for BoundedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.activity.in_flight.load(Ordering::SeqCst) > 0 {
            self.waiting = None;
            if read.is_pending() {
                if let Ok(mut w) = self.activity.reader.lock() {
                    *w = Some(cx.waker().clone());
                }
            }
            return read;
        }
        let now = Instant::now();
        let generation = self.activity.generation.load(Ordering::SeqCst);
        if self.waiting.map(|w| w.generation) != Some(generation) {
            self.waiting = Some(Waiting {
                generation,
                header_started: false,
            });
            let at = now + self.limits.idle_timeout;
            self.deadline.as_mut().reset(at);
        }
        let got_bytes = matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        if got_bytes {
            if let Some(w) = self.waiting.as_mut().filter(|w| !w.header_started) {
                w.header_started = true;
                let at = now + self.limits.header_read_timeout;
                self.deadline.as_mut().reset(at);
            }
        }
        if read.is_pending() && self.deadline.as_mut().poll(cx).is_ready() {
            let what = if self.waiting.is_some_and(|w| w.header_started) {
                "request headers did not arrive within server.header_read_timeout"
            } else {
                "connection idle for server.idle_timeout"
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
        }
        read
    }
}

impl AsyncWrite for BoundedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_over_capacity_answer_declares_its_body_length() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert!(head.starts_with("HTTP/1.1 503") && head.contains("Retry-After: 1"));
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}

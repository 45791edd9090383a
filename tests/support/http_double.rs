//! A tiny HTTP/1.1 server for TEST DOUBLES of ClickHouse: it records every request and
//! answers with what the test's handler says. Whatever stands behind it is a double,
//! and the test using it says so in its name.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the double saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request line's target after `?` (the URL query, still percent-encoded).
    pub query: String,
    /// Header lines, as sent.
    pub head: String,
    pub body: String,
}

pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_string(),
        }
    }
}

pub struct HttpDouble {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpDouble {
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind double");
        let port = listener.local_addr().expect("double address").port();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler = Arc::new(handler);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    let reply = handler(&req);
                    log.lock().expect("double log").push(req);
                    let resp = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        reply.status,
                        reply.body.len(),
                        reply.body
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        Self { port, seen }
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Seen> {
        self.seen.lock().expect("double log").clone()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Seen> {
    let (head, body) = read_raw_request(sock).await?;
    let target = head.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    Some(Seen {
        query: query.to_string(),
        head: head.clone(),
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

/// One HTTP/1.1 request from `sock`: its head (request line and header lines) and its
/// body, `Content-Length` bytes as sent. `None` when the peer closes first.
pub async fn read_raw_request(sock: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(chunk.get(..n)?);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(buf.get(..end)?).to_string();
        let body = end + 4..end + 4 + content_length(&head);
        if let Some(body) = buf.get(body) {
            return Some((head, body.to_vec()));
        }
    }
}

/// The `Content-Length` of a request head (0 when absent or unreadable).
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        })
        .unwrap_or(0)
}

//! A logging pass-through in front of a real server (not a double: the server behind it
//! answers every request, byte for byte). It records the head of each HTTP/1.1 request
//! on the way in, so a test can see the headers the gateway sent to ClickHouse.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Relay {
    pub port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    /// Relays loopback connections to `127.0.0.1:upstream`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = heads.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    // Answers flow back untouched.
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    });
                    let mut pending: Vec<u8> = Vec::new();
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        pending.extend_from_slice(chunk);
                        record_heads(&mut pending, &log);
                        if sw.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { port, heads }
    }

    /// Each request's head (request line and headers), in arrival order.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("relay log").clone()
    }
}

/// Takes every complete request (head + Content-Length body) off the front of `pending`.
fn record_heads(pending: &mut Vec<u8>, log: &Mutex<Vec<String>>) {
    loop {
        let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
            return;
        };
        let head = String::from_utf8_lossy(&pending[..end]).to_string();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        if pending.len() < end + 4 + length {
            return;
        }
        pending.drain(..end + 4 + length);
        log.lock().expect("relay log").push(head);
    }
}

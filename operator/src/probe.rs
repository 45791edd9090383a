//! `chmcp-operator check-ready URL`: one HTTP GET, success on a 2xx. The chart's
//! `helm test` pod runs it from the operator image, which has no shell or curl.

use std::time::Duration;

use http::Uri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the whole check may take: a ready operator answers at once.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The status line and headers of a /readyz reply fit easily.
const MAX_REPLY: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}: not an http:// URL with a host")]
    Url(String),
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: no answer within {TIMEOUT:?}")]
    Timeout(String),
    #[error("{url}: not an HTTP reply: {line:?}")]
    Reply { url: String, line: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
}

/// GETs `url` (plain http; the metrics port is inside the cluster) and expects a 2xx.
pub async fn check_ready(url: &str) -> Result<u16, ProbeError> {
    tokio::time::timeout(TIMEOUT, get(url))
        .await
        .map_err(|_| ProbeError::Timeout(url.into()))?
}

async fn get(url: &str) -> Result<u16, ProbeError> {
    let uri: Uri = url.parse().map_err(|_| ProbeError::Url(url.into()))?;
    let host = match (uri.scheme_str(), uri.host()) {
        (Some("http"), Some(host)) => host,
        _ => return Err(ProbeError::Url(url.into())),
    };
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let io = |source| ProbeError::Io {
        url: url.into(),
        source,
    };
    let mut stream = TcpStream::connect((host, port)).await.map_err(io)?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut reply = Vec::new();
    (&mut stream)
        .take(MAX_REPLY as u64)
        .read_to_end(&mut reply)
        .await
        .map_err(io)?;
    let status = status_of(&reply).ok_or_else(|| ProbeError::Reply {
        url: url.into(),
        line: String::from_utf8_lossy(&reply)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    })?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(ProbeError::Status {
            url: url.into(),
            status,
        })
    }
}

/// The status code of an HTTP/1.x reply: `HTTP/1.1 200 OK` → 200.
fn status_of(reply: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(reply);
    let mut words = text.lines().next()?.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/1."))?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(reply: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        format!("http://{addr}/readyz")
    }

    #[tokio::test]
    async fn a_2xx_is_ready_and_anything_else_is_not() {
        let url = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
        assert_eq!(check_ready(&url).await.unwrap(), 200);
        let url = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert!(matches!(
            check_ready(&url).await,
            Err(ProbeError::Status { status: 503, .. })
        ));
        let url = serve_once("SSH-2.0-OpenSSH\r\n").await;
        assert!(matches!(
            check_ready(&url).await,
            Err(ProbeError::Reply { .. })
        ));
    }

    #[tokio::test]
    async fn only_plain_http_urls_with_a_host() {
        for bad in ["https://x/readyz", "/readyz", "x:80"] {
            assert!(
                matches!(check_ready(bad).await, Err(ProbeError::Url(_))),
                "{bad}"
            );
        }
    }
}

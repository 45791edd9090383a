//! The wire under the ClickHouse client: hyper-util's pooled HTTP/1.1 client over a
//! connector that dials `connect_host` instead of the endpoint's name, speaks TLS with
//! rustls (ring; webpki-roots plus `clickhouse.tls.ca_cert`; mutual TLS from
//! `client_cert`/`client_key`) and bounds the whole connect, TLS handshake included.
//!
//! It replaced reqwest on this path only (docs/decisions.md, "The ClickHouse client on
//! hyper-util"): reqwest parsed every query's URL three times. The settings below are
//! the ones the reqwest client had, so pooling, timeouts and errors read the same.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Incoming};
use hyper::{HeaderMap, Request, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::client::ClientBuildError;
use crate::config::TlsConfig;
use crate::error_chain::error_chain;

/// Dialling, TCP and the TLS handshake together (reqwest's `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle pooled connection is closed after this (as the reqwest client was set up; the
/// server's `keep_alive_timeout` is often shorter, and then it closes first).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP keep-alive and user timeout as reqwest set them: a peer that vanished without a
/// FIN is noticed instead of waited on for the kernel's two hours.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;
#[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

type Connector = TimedConnect<HttpsConnector<HttpConnector<Resolver>>>;

/// The pooled client and the dial map; cheap to share (the pool is behind an `Arc`).
pub(super) struct Transport {
    client: Client<Connector, String>,
    dial: Arc<DialMap>,
}

/// A response whose body has not been read yet.
pub(super) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
}

impl Transport {
    pub(super) fn new(tls: &TlsConfig) -> Result<Self, ClientBuildError> {
        let dial = Arc::new(DialMap::default());
        let mut http = HttpConnector::new_with_resolver(Resolver(dial.clone()));
        // https URLs go through this connector too; TLS is the wrapper's.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_keepalive(Some(TCP_KEEPALIVE));
        http.set_keepalive_interval(Some(TCP_KEEPALIVE));
        http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        http.set_tcp_user_timeout(Some(TCP_USER_TIMEOUT));
        // https or plain http by the URL's scheme; the server name is the URL's host.
        // (Not hyper-rustls's builder: it refuses a config that already names its ALPN.)
        let https = HttpsConnector::from((http, tls_client_config(tls)?));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(TimedConnect(https));
        Ok(Self { client, dial })
    }

    /// Dial `connect` whenever a URL names `host` (the Host header and SNI stay `host`);
    /// `None`: dial `host` itself (an endpoint without `connect_host` forgets an old one).
    pub(super) fn dial(&self, host: &str, connect: Option<&str>) {
        self.dial.set(host, connect);
    }

    /// Sends one request; the body is read by the caller, chunk by chunk.
    pub(super) async fn send(&self, req: Request<String>) -> Result<Response, SendError> {
        let resp = self.client.request(req).await.map_err(SendError)?;
        let (head, body) = resp.into_parts();
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body,
        })
    }
}

impl Response {
    /// The next piece of the body; `None` at its end (trailers, which ClickHouse does
    /// not send, are skipped).
    pub(super) async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx)).await;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(BodyError(e)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// Up to `max` bytes of the body, read to its end when it fits (so the connection
    /// goes back to the pool); a broken body gives what arrived.
    pub(super) async fn collect(mut self, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while let Ok(Some(c)) = self.chunk().await {
            let room = max.saturating_sub(out.len());
            out.extend_from_slice(c.get(..room).unwrap_or(&c));
            if out.len() >= max {
                break;
            }
        }
        out
    }
}

/// The request could not be sent or got no response head.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(super) struct SendError(hyper_util::client::legacy::Error);

/// The response body broke off.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(super) struct BodyError(hyper::Error);

impl SendError {
    /// What a person reads: the class (timed out, connection failed, request failed)
    /// and every cause, e.g. `connection failed: client error (Connect): tcp connect
    /// error: Connection refused (os error 111)` or `...: invalid peer certificate:
    /// UnknownIssuer`. The URL is never in it (its query string carries parameters).
    pub(super) fn describe(&self) -> String {
        let class = if timed_out(&self.0) {
            "timed out"
        } else if self.0.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        format!("{class}: {}", error_chain(&self.0))
    }
}

impl BodyError {
    pub(super) fn describe(&self) -> String {
        let class = if timed_out(&self.0) {
            "timed out"
        } else {
            "request failed"
        };
        format!("{class}: {}", error_chain(&self.0))
    }
}

/// Whether anything in the chain is a timeout (ours around the connect, or the socket's).
fn timed_out(top: &(dyn std::error::Error + 'static)) -> bool {
    let mut src = Some(top);
    while let Some(e) = src {
        if e.is::<ConnectTimedOut>()
            || e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        src = e.source();
    }
    false
}

/// rustls with ring, TLS 1.2 and 1.3, HTTP/1.1 by ALPN: webpki-roots (the public CAs
/// reqwest's `rustls-tls` trusted) plus the configured bundle, and the client identity.
fn tls_client_config(tls: &TlsConfig) -> Result<ClientConfig, ClientBuildError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| config_error("clickhouse.tls", e.to_string()))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
    } else {
        builder.with_root_certificates(root_store(&tls.ca_cert)?)
    };
    let mut config = if tls.client_cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let (chain, key) = client_identity(&tls.client_cert, &tls.client_key)?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| config_error("clickhouse.tls.client_cert", e.to_string()))?
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn root_store(ca_cert: &str) -> Result<RootCertStore, ClientBuildError> {
    const KEY: &str = "clickhouse.tls.ca_cert";
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if ca_cert.is_empty() {
        return Ok(roots);
    }
    let pem = read(KEY, ca_cert)?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| config_error(KEY, format!("{ca_cert}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| config_error(KEY, format!("{ca_cert}: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(config_error(
            KEY,
            format!("{ca_cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        ));
    }
    Ok(roots)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The certificate chain (from `client_cert`) and its key (PKCS#8, PKCS#1 or SEC1 PEM,
/// from `client_key`, or from `client_cert` when that file holds both, as reqwest's
/// `Identity::from_pem` took them concatenated).
fn client_identity(cert_path: &str, key_path: &str) -> Result<Identity, ClientBuildError> {
    const CERT: &str = "clickhouse.tls.client_cert";
    const KEY: &str = "clickhouse.tls.client_key";
    let cert_pem = read(CERT, cert_path)?;
    let key_pem = read(KEY, key_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_error(CERT, format!("{cert_path}: {e}")))?;
    if chain.is_empty() {
        return Err(config_error(
            CERT,
            format!("{cert_path} holds no PEM certificate"),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .or_else(|_| PrivateKeyDer::from_pem_slice(&cert_pem))
        .map_err(|e| config_error(KEY, format!("{key_path}: no private key: {e}")))?;
    Ok((chain, key))
}

fn read(key: &'static str, path: &str) -> Result<Vec<u8>, ClientBuildError> {
    std::fs::read(path).map_err(|e| config_error(key, format!("cannot read {path}: {e}")))
}

fn config_error(key: &'static str, message: String) -> ClientBuildError {
    ClientBuildError::Config { key, message }
}

/// `clickhouse.tls.insecure_skip_verify`: any certificate for any name is taken. The
/// handshake's signatures are still checked, so the peer holds the certificate's key.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Host → address to dial (`connect_host`), filled as endpoints are used.
#[derive(Default)]
struct DialMap(RwLock<HashMap<String, String>>);

impl DialMap {
    fn set(&self, host: &str, connect: Option<&str>) {
        let known = self
            .0
            .read()
            .map(|m| m.get(host).map(String::as_str) == connect)
            .unwrap_or(false);
        if !known {
            if let Ok(mut m) = self.0.write() {
                match connect {
                    Some(c) => m.insert(host.to_string(), c.to_string()),
                    None => m.remove(host),
                };
            }
        }
    }

    fn target(&self, host: &str) -> String {
        self.0
            .read()
            .ok()
            .and_then(|m| m.get(host).cloned())
            .unwrap_or_else(|| host.to_string())
    }
}

/// The connector's DNS: the system resolver, asked for `connect_host` when the URL's
/// host has one. (An IP literal in the URL is dialled as it is, as before.)
#[derive(Clone)]
struct Resolver(Arc<DialMap>);

type Resolving =
    Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let target = self.0.target(name.as_str());
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.as_str(), 0))
                .await?
                .collect();
            Ok(addrs.into_iter())
        })
    }
}

/// The whole connect (resolve, TCP, TLS) within [`CONNECT_TIMEOUT`].
#[derive(Clone)]
struct TimedConnect<C>(C);

/// Named in the error chain as the socket's own timeout is ("operation timed out").
#[derive(Debug, thiserror::Error)]
#[error("operation timed out")]
struct ConnectTimedOut;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Stream = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

impl<C> tower_service::Service<Uri> for TimedConnect<C>
where
    C: tower_service::Service<Uri, Response = Stream, Error = BoxError>,
    C::Future: Send + 'static,
{
    type Response = Stream;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.0.call(dst);
        Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                Ok(r) => r,
                Err(_) => Err(Box::new(ConnectTimedOut) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(ca_cert: &str) -> TlsConfig {
        TlsConfig {
            ca_cert: ca_cert.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_ca_bundle_without_certificates_stops_startup_naming_the_key() {
        let dir = std::env::temp_dir().join(format!("chmcp-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        for (path, words) in [
            (empty.display().to_string(), "holds no PEM certificate"),
            (dir.join("missing.pem").display().to_string(), "cannot read"),
        ] {
            match Transport::new(&tls(&path)) {
                Err(ClientBuildError::Config { key, message }) => {
                    assert_eq!(key, "clickhouse.tls.ca_cert");
                    assert!(message.contains(words), "{message}");
                }
                Ok(_) => panic!("{path} was taken as a CA bundle"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_tls_shape_builds_without_files() {
        // Plain, and verification off; a panic here (e.g. a connector builder that
        // refuses the ALPN list) would stop every start-up.
        assert!(Transport::new(&TlsConfig::default()).is_ok());
        let insecure = TlsConfig {
            enabled: true,
            insecure_skip_verify: true,
            ..Default::default()
        };
        assert!(Transport::new(&insecure).is_ok());
    }

    #[test]
    fn the_dial_map_sends_a_host_to_its_connect_host_and_others_to_themselves() {
        let map = DialMap::default();
        map.set("ch.example", Some("10.0.0.7"));
        assert_eq!(map.target("ch.example"), "10.0.0.7");
        assert_eq!(map.target("other.example"), "other.example");
        map.set("ch.example", Some("10.0.0.8"));
        assert_eq!(map.target("ch.example"), "10.0.0.8");
        // An endpoint of that host without connect_host (a cluster override) dials it.
        map.set("ch.example", None);
        assert_eq!(map.target("ch.example"), "ch.example");
    }
}

//! The ClickHouse client over TLS to a real ClickHouse 18.16 (`https_port`, OpenSSL on the
//! server side), with a throwaway CA made by the `openssl` CLI: the extra CA bundle
//! (`clickhouse.tls.ca_cert`), mutual TLS (`client_cert`/`client_key`), the dial address
//! (`connect_host`) apart from the name the certificate is checked against, the pooled
//! connection, and the words a person reads when the connection fails (refused, timed
//! out, TLS).

use std::net::TcpListener;
use std::time::Duration;

use chmcp_gateway::clickhouse::client::{
    ClickHouse as Client, Credentials, Endpoint, QueryError, QueryOptions,
};
use chmcp_gateway::config::{ClickHouseConfig, Secret, TlsConfig};
use chmcp_tests::clickhouse::{ClickHouse, Https, Users};
use chmcp_tests::pki::Pki;
use chmcp_tests::{free_port, temp_dir};
use serde_json::json;

/// The name the server certificate is issued for; nothing resolves it, so every test
/// that uses it also proves the client dials `connect_host` and checks this name.
const CERT_NAME: &str = "clickhouse.chmcp.test";

struct Setup {
    pki: Pki,
    ch: ClickHouse,
    dir: std::path::PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn setup(require_client_cert: bool) -> Setup {
    let dir = temp_dir("tls");
    let pki = Pki::make(&dir, &[CERT_NAME, "127.0.0.1"]);
    let https = Https {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: require_client_cert.then(|| pki.ca.clone()),
    };
    let ch = ClickHouse::start_https(Users::default(), &https);
    Setup { pki, ch, dir }
}

/// TLS to `CERT_NAME`, dialled at 127.0.0.1; `ca`/`client` choose what is configured.
fn tls_config(s: &Setup, ca: bool, client: bool) -> ClickHouseConfig {
    let path = |p: &std::path::Path| p.display().to_string();
    ClickHouseConfig {
        host: CERT_NAME.into(),
        connect_host: "127.0.0.1".into(),
        port: s.ch.https_port.expect("https port"),
        tls: TlsConfig {
            enabled: true,
            ca_cert: if ca { path(&s.pki.ca) } else { String::new() },
            client_cert: if client {
                path(&s.pki.client_cert)
            } else {
                String::new()
            },
            client_key: if client {
                path(&s.pki.client_key)
            } else {
                String::new()
            },
            insecure_skip_verify: false,
        },
        ..Default::default()
    }
}

/// `SELECT 1` through the client built from `config`.
async fn select_one(config: &ClickHouseConfig) -> Result<Vec<Vec<serde_json::Value>>, QueryError> {
    let client = Client::new(config).expect("client");
    let creds = Credentials::Basic {
        user: "default".into(),
        password: Secret::default(),
    };
    let opts = QueryOptions {
        sql: "SELECT 1 AS one".into(),
        query_id: format!("tls-{:x}", unique_id()),
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let (_, rows) = client
        .query_all(&Endpoint::from_config(config), &creds, &opts, 10)
        .await?;
    Ok(rows)
}

/// Distinct per call within a run (ClickHouse refuses a second running query with one id).
fn unique_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// `SELECT 1` answers `[[1]]` through the client built from `config`.
async fn assert_answers(config: &ClickHouseConfig, what: &str) {
    let rows = select_one(config)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(rows, vec![vec![json!(1)]], "{what}");
}

/// The `Unreachable` message, or a panic naming what came instead.
fn unreachable_message(r: Result<Vec<Vec<serde_json::Value>>, QueryError>) -> String {
    match r {
        Err(QueryError::Unreachable { endpoint, message }) => {
            let full = format!("cannot reach ClickHouse at {endpoint}: {message}");
            eprintln!("{full}");
            full
        }
        other => panic!("expected the server to be unreachable, got {other:?}"),
    }
}

/// The words a person reads when `config`'s server cannot be reached: they start with
/// the endpoint and `class` (connection failed, timed out); returned for more checks.
async fn unreachable_with(config: &ClickHouseConfig, endpoint: &str, class: &str) -> String {
    let msg = unreachable_message(select_one(config).await);
    assert!(
        msg.starts_with(&format!("cannot reach ClickHouse at {endpoint}: {class}")),
        "{msg}"
    );
    msg
}

/// ClickHouse at 127.0.0.1:`port`, with TLS or without, nothing else configured.
fn loopback(port: u16, tls: bool) -> ClickHouseConfig {
    ClickHouseConfig {
        host: "127.0.0.1".into(),
        port,
        tls: TlsConfig {
            enabled: tls,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn https_with_the_configured_ca_answers_and_without_it_fails_naming_the_certificate() {
    let s = setup(false);
    assert_answers(&tls_config(&s, true, false), "https with the CA bundle").await;

    // The throwaway CA is in no public root store: the server's chain is refused.
    let endpoint = format!("{CERT_NAME}:{}", s.ch.https_port.unwrap_or(0));
    let msg = unreachable_with(
        &tls_config(&s, false, false),
        &endpoint,
        "connection failed",
    )
    .await;
    assert!(msg.contains("invalid peer certificate"), "{msg}");
    assert!(msg.contains("UnknownIssuer"), "{msg}");

    // `insecure_skip_verify` takes the unknown chain (and any name).
    let mut insecure = tls_config(&s, false, false);
    insecure.tls.insecure_skip_verify = true;
    assert_answers(&insecure, "https without verification").await;
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate_and_takes_the_configured_one() {
    let s = setup(true);
    assert_answers(
        &tls_config(&s, true, true),
        "mutual TLS with the configured client certificate",
    )
    .await;

    // The server asks for a certificate and gets none: under TLS 1.3 the client's side
    // of the handshake is done by then, so the refusal arrives as an alert on the request.
    let msg = unreachable_message(select_one(&tls_config(&s, true, false)).await);
    assert!(msg.contains("cannot reach ClickHouse at"), "{msg}");
    assert!(
        msg.contains("received fatal alert: CertificateRequired"),
        "{msg}"
    );
}

#[tokio::test]
async fn queries_over_https_share_one_pooled_connection() {
    let s = setup(false);
    let config = tls_config(&s, true, false);
    let client = Client::new(&config).expect("client");
    let ep = Endpoint::from_config(&config);
    let creds = Credentials::Basic {
        user: "default".into(),
        password: Secret::default(),
    };
    // Each query reads its own client port from ClickHouse's process list: one pooled
    // connection means one port; a connection per query (e.g. a body left unread, so
    // the connection cannot go back to the pool) would show as many ports as queries.
    let mut ports = Vec::new();
    for i in 0..5 {
        let query_id = format!("tls-pool-{i}-{:x}", unique_id());
        let opts = QueryOptions {
            sql: format!("SELECT port FROM system.processes WHERE query_id = '{query_id}'"),
            query_id,
            timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let (_, rows) = client
            .query_all(&ep, &creds, &opts, 10)
            .await
            .expect("query over https");
        ports.push(rows);
    }
    assert_eq!(ports[0].len(), 1, "{ports:?}");
    assert!(ports.iter().all(|p| *p == ports[0]), "{ports:?}");
}

#[tokio::test]
async fn a_refused_connection_says_so() {
    // Bound, then released: nothing listens there now.
    let port = free_port();
    let endpoint = format!("127.0.0.1:{port}");
    let msg = unreachable_with(&loopback(port, false), &endpoint, "connection failed").await;
    assert!(msg.contains("Connection refused"), "{msg}");
}

#[tokio::test]
async fn a_server_that_never_answers_the_tls_handshake_times_out_at_connect() {
    // The kernel completes the TCP handshake from the backlog; nobody ever accepts, so
    // the TLS handshake never starts and only the connect timeout (5 s) can end it.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    unreachable_with(
        &loopback(port, true),
        &format!("127.0.0.1:{port}"),
        "timed out",
    )
    .await;
    drop(silent);
}

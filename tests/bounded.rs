//! Cost bounds for hostile results and hostile connections (gateway.md: "Cost bounds hold
//! for hostile results", "Connections are bounded").

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chmcp_gateway::clickhouse::client::{
    ClickHouse as Client, Credentials, Endpoint, QueryError, QueryOptions,
};
use chmcp_gateway::config::{ClickHouseConfig, Secret};
use chmcp_gateway::tools::result::{Caps, ResultBuilder};
use chmcp_tests::clickhouse::ClickHouse;
use chmcp_tests::gateway::{config, Gateway};
use chmcp_tests::inproc::NOBODY_LISTENS;
use chmcp_tests::mcp::Mcp;
use serde_json::json;

// ---------------------------------------------------------------- hostile results

#[tokio::test]
async fn a_single_8_mib_row_is_truncated_at_the_byte_cap_well_within_the_time_bound() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(ch.http_port, "  max_execution_time: 10\n"));
    let mcp = Mcp::new(gw.mcp_url());
    let started = Instant::now();
    let r = mcp
        .query("SELECT groupArray(number) FROM (SELECT number FROM system.numbers LIMIT 1000000)")
        .await;
    let took = started.elapsed();
    assert_ne!(r["isError"], json!(true), "{r}");
    let s = &r["structuredContent"];
    assert_eq!(s["truncated"]["reason"], "max_result_bytes", "{s}");
    assert_eq!(s["truncated"]["limit"], 50_000);
    assert_eq!(s["row_count"], 0, "the one row cannot fit");
    // The outcome is what matters; this bound only says "not after the query's own
    // max_execution_time" (the old reader took over a minute of CPU).
    assert!(took < Duration::from_secs(8), "answered after {took:?}");
}

/// A ClickHouse **test double**: answers every query with a JSONCompact header and then
/// one row that never ends, streamed as fast as it is read. (A real server cannot be
/// made to stream an endless single row.) `KILL QUERY` gets an empty `200`.
fn endless_row_clickhouse_double() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind double");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || answer_endlessly(conn));
        }
    });
    port
}

fn answer_endlessly(mut conn: TcpStream) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    if String::from_utf8_lossy(&body).contains("KILL QUERY") {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let head = "{\n\t\"meta\":\n\t[\n\t\t{\"name\": \"a\", \"type\": \"Array(UInt64)\"}\n\t],\n\n\t\"data\":\n\t[\n\t\t[[";
    if conn
        .write_all(
            format!("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n{head}").as_bytes(),
        )
        .is_err()
    {
        return;
    }
    let chunk: String = (0..6_000).map(|i| format!("\"{i}\", ")).collect();
    while conn.write_all(chunk.as_bytes()).is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_fires_while_an_endless_row_is_being_parsed() {
    let port = endless_row_clickhouse_double();
    let config = ClickHouseConfig {
        host: "127.0.0.1".into(),
        port,
        ..Default::default()
    };
    let client = Client::new(&config).expect("client");
    let ep = Endpoint::from_config(&config);
    let creds = Credentials::Basic {
        user: "default".into(),
        password: Secret::default(),
    };
    let opts = QueryOptions {
        sql: "SELECT hostile".into(),
        query_id: "bounded-endless-row".into(),
        timeout: Duration::from_secs(1),
        ..Default::default()
    };
    // No caps: nothing but the time bound can stop this query.
    let query = tokio::spawn(async move {
        let mut sink = ResultBuilder::new(Caps::default());
        client.query_rows(&ep, &creds, &opts, &mut sink).await
    });
    // The watchdog runs on another worker, so it fires even if the query hogs its own.
    let outcome = tokio::time::timeout(Duration::from_secs(15), query).await;
    match outcome {
        Ok(Ok(Err(QueryError::Timeout(d)))) => assert_eq!(d, Duration::from_secs(1)),
        Ok(other) => panic!("expected the 1 s timeout, got {other:?}"),
        Err(_) => panic!("the query's 1 s timeout had not fired 15 s later"),
    }
}

// ------------------------------------------------------------ hostile connections

/// A gateway whose ClickHouse is never asked (only `/livez` and a body-reading `/mcp`).
fn gateway(server: &str) -> Gateway {
    Gateway::start(&config(NOBODY_LISTENS, &format!("server:\n{server}")))
}

fn connect(gw: &Gateway) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(8))).ok();
    s
}

/// Reads one response (status line, headers, `Content-Length` body).
fn read_response(r: &mut BufReader<TcpStream>) -> Option<(u16, String)> {
    let mut status = String::new();
    if r.read_line(&mut status).ok()? == 0 {
        return None;
    }
    let code = status.split_whitespace().nth(1)?.parse().ok()?;
    let mut length = 0;
    let mut head = status.clone();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some((code, head + &String::from_utf8_lossy(&body)))
}

/// Waits for the server to close: `Ok(elapsed)` on EOF or reset, `Err` if still open.
fn closed_within(s: &mut TcpStream, within: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    s.set_read_timeout(Some(within)).ok();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => Ok(started.elapsed()),
        Ok(n) => Err(format!(
            "server sent {:?}",
            String::from_utf8_lossy(&buf[..n])
        )),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(started.elapsed()),
        Err(e) => Err(format!("still open after {:?} ({e})", started.elapsed())),
    }
}

const LIVEZ: &[u8] = b"GET /livez HTTP/1.1\r\nHost: gw\r\n\r\n";

#[test]
fn half_a_header_is_disconnected_after_header_read_timeout() {
    let gw = gateway("  header_read_timeout: 1s\n  idle_timeout: 30s\n");
    let mut s = connect(&gw);
    s.write_all(b"GET /livez HTTP/1.1\r\nHost: gw\r\nX-Slow: ")
        .unwrap();
    let took = closed_within(&mut s, Duration::from_secs(6)).expect("disconnected");
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_idle_timeout_not_header_read_timeout() {
    let gw = gateway("  header_read_timeout: 1s\n  idle_timeout: 3s\n");
    let mut s = connect(&gw);
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(LIVEZ).unwrap();
    assert_eq!(read_response(&mut r).map(|x| x.0), Some(200));
    // Idle for longer than the header timeout: still open, a keep-alive connection.
    std::thread::sleep(Duration::from_millis(2000));
    s.write_all(LIVEZ).unwrap();
    assert_eq!(
        read_response(&mut r).map(|x| x.0),
        Some(200),
        "idle is bounded by idle_timeout, not header_read_timeout"
    );
    let took = closed_within(&mut s, Duration::from_secs(8)).expect("idle connection closed");
    assert!(
        took > Duration::from_secs(2) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
}

#[test]
fn beyond_max_connections_new_ones_get_503_while_established_ones_are_served() {
    let gw = gateway("  max_connections: 5\n");
    let mut held: Vec<(TcpStream, BufReader<TcpStream>)> = (0..5)
        .map(|_| {
            let mut s = connect(&gw);
            let mut r = BufReader::new(s.try_clone().unwrap());
            s.write_all(LIVEZ).unwrap();
            assert_eq!(read_response(&mut r).map(|x| x.0), Some(200));
            (s, r)
        })
        .collect();

    let sixth = connect(&gw);
    let started = Instant::now();
    let mut r = BufReader::new(sixth);
    let (code, text) = read_response(&mut r).expect("an answer without sending anything");
    assert_eq!(code, 503, "{text}");
    assert!(text.contains("Retry-After: 1"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));

    for (s, r) in &mut held {
        s.write_all(LIVEZ).unwrap();
        assert_eq!(
            read_response(r).map(|x| x.0),
            Some(200),
            "established ones keep being served"
        );
    }

    // A closed connection frees its slot.
    drop(held.pop());
    let started = Instant::now();
    loop {
        let mut s = connect(&gw);
        let mut r = BufReader::new(s.try_clone().unwrap());
        let _ = s.write_all(LIVEZ);
        if read_response(&mut r).map(|x| x.0) == Some(200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "slot never freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_body_slower_than_body_read_timeout_is_cut_off() {
    let gw = gateway("  body_read_timeout: 1s\n");
    let mut s = connect(&gw);
    let mut r = BufReader::new(s.try_clone().unwrap());
    s.write_all(b"POST /mcp HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"")
        .unwrap();
    let started = Instant::now();
    // Trickle more bytes: the deadline counts from the headers, not from the last byte.
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(200));
            if w.write_all(b" ").is_err() {
                return;
            }
        }
    });
    let (code, text) = read_response(&mut r).expect("an answer");
    assert_eq!(code, 408, "{text}");
    assert!(text.contains("body_read_timeout"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the connection closes after the 408");
}

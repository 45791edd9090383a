//! The network edge against the real gateway binary: input that once panicked a handler
//! is answered over stdio, and request text cannot forge a log line. (The same input over
//! HTTP, the `Origin` rules and metric labels are proved in process: http_rules.rs.)

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::time::Duration;

use chmcp_tests::clickhouse::ClickHouse;
use chmcp_tests::free_port;
use chmcp_tests::gateway::{config, spawn_stdio, Gateway};
use chmcp_tests::idp::Idp;
use chmcp_tests::inproc::NOBODY_LISTENS;
use chmcp_tests::mcp::Mcp;
use serde_json::{json, Value};

/// A table URI whose last segment splits a `%XX` escape with a two-byte UTF-8 character:
/// a decoder that slices by byte offsets panics on it.
const SPLIT_ESCAPE_URI: &str = "clickhouse://table/x/%a\u{e9}";

#[test]
fn resource_read_of_a_split_escape_is_answered_over_stdio() {
    // The URI is refused before ClickHouse would be asked, so none is started.
    let mut child = spawn_stdio(NOBODY_LISTENS);
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    // Lines arrive on a channel so a request that is never answered fails the test
    // instead of hanging it.
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        }
    });
    let read = json!({"jsonrpc": "2.0", "id": 7, "method": "resources/read", "params": {"uri": SPLIT_ESCAPE_URI}});
    writeln!(stdin, "{read}").expect("write");
    let answer = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("resources/read was never answered");
    assert_eq!(answer["id"], 7, "{answer}");
    assert!(answer["error"]["code"].is_i64(), "{answer}");
    writeln!(
        stdin,
        "{}",
        json!({"jsonrpc": "2.0", "id": 8, "method": "ping"})
    )
    .expect("write");
    let pong = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the stdio loop stopped serving");
    assert_eq!(pong, json!({"jsonrpc": "2.0", "id": 8, "result": {}}));
    drop(stdin);
    let _ = child.wait();
}

fn broker_config(ch_port: u16, idp: &Idp, port: u16, format: &str) -> String {
    format!(
        "clickhouse:\n  host: 127.0.0.1\n  port: {ch_port}\nlogging:\n  level: debug\n  format: {format}\nserver:\n  oauth:\n    enabled: true\n    broker: true\n    issuer: {issuer}\n    audience: https://mcp.example.com/\n    public_auth_server_url: http://127.0.0.1:{port}\n    client_id: {cid}\n    client_secret: {secret}\n    signing_secret: edges-test-signing-secret-0123456789abcdef\n",
        issuer = idp.issuer,
        cid = idp.broker_client_id,
        secret = idp.client_secret,
    )
}

/// Text that carries a newline, sent every way it could reach a static-credential
/// gateway's log: a JSON-RPC method name, and a query whose ClickHouse error quotes it.
async fn forge_through_mcp(mcp: &Mcp) {
    let r = mcp.request("x\nFORGED method line", json!({})).await;
    assert_eq!(r.body["error"]["code"], -32601, "{:?}", r.body);
    let r = mcp.query("SELECT 1 2\nFORGED query line").await;
    assert_eq!(r["isError"], true, "{r}");
}

/// The same at the broker's unauthenticated endpoints: a token form key, and a client id.
async fn forge_through_broker(gw: &Gateway) {
    let http = reqwest::Client::new();
    // A form key, repeated so the token endpoint refuses it by name.
    let token = http
        .post(format!("{}/oauth/token", gw.base()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a%0AFORGED+form+line=1&a%0AFORGED+form+line=2")
        .send()
        .await
        .expect("POST /oauth/token");
    assert_eq!(token.status().as_u16(), 400);
    // A metadata-document client id with a query, which the CIMD rules refuse.
    let _ = http
        .get(format!(
            "{}/oauth/authorize?response_type=code&client_id=https%3A%2F%2Fx.example%2Fc.json%3F%0AFORGED+client+line&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&code_challenge=x&code_challenge_method=S256",
            gw.base()
        ))
        .send()
        .await
        .expect("GET /oauth/authorize");
}

/// Asserts the attempts reached the log (or the test would prove nothing) and that
/// none of them starts a line of its own.
async fn assert_no_forged_lines(gw: &Gateway, what: &str, markers: &[&str]) {
    // stderr is written as events happen; give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = gw.log();
    for marker in markers {
        assert!(
            log.contains(marker),
            "{what}: `{marker}` must reach the log for this test to prove anything:\n{log}"
        );
    }
    for line in log.lines() {
        assert!(
            !line.trim_start().starts_with("FORGED"),
            "{what}: a request forged a log line: {line:?}\nfull log:\n{log}"
        );
    }
}

#[tokio::test]
async fn request_and_clickhouse_text_cannot_forge_log_lines() {
    let ch = ClickHouse::start();
    let idp = Idp::start().expect("IdP");
    for format in ["text", "json"] {
        let logging = format!("logging:\n  level: debug\n  format: {format}\n");
        let gw = Gateway::start(&config(ch.http_port, &logging));
        forge_through_mcp(&Mcp::new(gw.mcp_url())).await;
        assert_no_forged_lines(
            &gw,
            &format!("mcp, {format}"),
            &["FORGED method line", "FORGED query line"],
        )
        .await;

        let port = free_port();
        let gw = Gateway::start_on(port, &broker_config(ch.http_port, &idp, port, format));
        forge_through_broker(&gw).await;
        assert_no_forged_lines(
            &gw,
            &format!("broker, {format}"),
            &["FORGED form line", "FORGED client line"],
        )
        .await;
    }
}

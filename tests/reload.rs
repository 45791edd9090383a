//! Reload puts into service only a configuration that a fresh start would accept, and
//! the parts built from `server.oauth` follow the file instead of keeping start-up
//! values. The gateway binary, real signals; no ClickHouse is asked (every request here
//! is answered before one would be).

use std::time::{Duration, Instant};

use chmcp_tests::gateway::Gateway;

const MULTI: &str = "clickhouse:
  host: 127.0.0.1
  port: 9
server:
  oauth: {enabled: true, broker: false, issuer: 'http://127.0.0.1:9/', audience: 'https://mcp.example.com/', validate_tokens: true}
multicluster:
  enabled: true
  cluster_allowlist: [a]
";

async fn status(url: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .expect("gateway answers")
        .status()
        .as_u16()
}

/// Waits until the gateway has logged `needle` `count` times (reloads are asynchronous).
fn wait_log(gw: &Gateway, needle: &str, count: usize) {
    let started = Instant::now();
    while gw.log().matches(needle).count() < count {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no `{needle}` in the log:\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_reload_that_would_turn_oauth_off_under_multicluster_is_rejected() {
    let gw = Gateway::start(MULTI);
    let url = format!("{}/mcp/a", gw.base());
    assert_eq!(status(&url).await, 401, "no bearer: the challenge");
    // The file alone is valid (single-cluster, static credentials); as it would run,
    // with the running multicluster block kept, it is not.
    let single = MULTI
        .replace("enabled: true, broker", "enabled: false, broker")
        .split("multicluster:")
        .next()
        .unwrap_or_default()
        .to_string();
    std::fs::write(&gw.config_path, single).unwrap();
    gw.signal("HUP");
    wait_log(&gw, "reload rejected", 1);
    assert!(
        gw.log().contains("server.oauth.enabled"),
        "the rejection names the key:\n{}",
        gw.log()
    );
    assert_eq!(
        status(&url).await,
        401,
        "/mcp/{{cluster}} must never become static-credential access"
    );
}

#[tokio::test]
async fn broker_mode_follows_a_reload() {
    let gw = Gateway::start(MULTI);
    let meta = format!("{}/.well-known/oauth-authorization-server", gw.base());
    let get = |u: String| async move { reqwest::get(u).await.unwrap().status().as_u16() };
    assert_eq!(
        get(meta.clone()).await,
        404,
        "resource-server mode: no broker"
    );
    let broker = MULTI.replace(
        "broker: false,",
        "broker: true, public_auth_server_url: 'http://127.0.0.1:9', client_id: c, client_secret: s, signing_secret: '0123456789abcdef0123456789abcdef',",
    );
    std::fs::write(&gw.config_path, broker).unwrap();
    gw.signal("HUP");
    wait_log(&gw, "configuration reloaded", 1);
    let started = Instant::now();
    while get(meta.clone()).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the broker did not start answering after the reload:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

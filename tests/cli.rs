//! The `chmcp-gateway` command line: check-config, version, stdio.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;

use chmcp_tests::binary;
use chmcp_tests::clickhouse::ClickHouse;
use chmcp_tests::gateway::spawn_stdio;
use serde_json::{json, Value};

fn check_config(text: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = chmcp_tests::temp_dir("cli");
    let file = dir.join("c.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(binary("chmcp-gateway"))
        .arg("check-config")
        .arg(&file)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    std::fs::remove_dir_all(dir).ok();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn check_config_names_a_misspelt_key_and_fails() {
    let (code, _, err) = check_config("clickhouse:\n  max_result_row: 5\n", &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("clickhouse.max_result_row: unknown key (did you mean `max_result_rows`?)"),
        "{err}"
    );
}

#[test]
fn check_config_prints_effective_config_with_secrets_redacted() {
    let (code, out, err) = check_config(
        "clickhouse:\n  password: hunter2\n",
        &[("CHMCP_CLICKHOUSE_PORT", "9999")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("port: 9999"), "{out}");
    assert!(
        out.contains("<redacted>") && !out.contains("hunter2"),
        "{out}"
    );
}

#[test]
fn stdio_transport_speaks_newline_delimited_json_rpc() {
    let ch = ClickHouse::start();
    let mut child = spawn_stdio(ch.http_port);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut send = |v: Value| writeln!(stdin, "{v}").unwrap();
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    );
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let init: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "execute_query", "arguments": {"query": "SELECT 40 + 2 AS answer"}}}),
    );
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let r: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(r["id"], 2);
    assert_eq!(r["result"]["structuredContent"]["rows"], json!([[42]]));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

const UNVERIFIED: &str = "server:
  oauth:
    enabled: true
    broker: false
    issuer: https://idp.example.com
    validate_tokens: false
";

#[test]
fn validate_tokens_false_alone_is_refused_naming_both_keys() {
    let (code, _, err) = check_config(UNVERIFIED, &[]);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("server.oauth.validate_tokens")
            && err.contains("server.oauth.trust_clickhouse_token_checks"),
        "{err}"
    );
}

#[test]
fn validate_tokens_false_with_the_trust_statement_is_accepted_with_a_warning() {
    let (code, out, err) = check_config(
        &format!("{UNVERIFIED}    trust_clickhouse_token_checks: true\n"),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: server.oauth.validate_tokens is false"),
        "{err}"
    );
    assert!(out.contains("trust_clickhouse_token_checks: true"), "{out}");
}

/// Issue 20: header values and the userinfo and query of configured URLs were printed.
#[test]
fn check_config_redacts_header_values_and_the_secret_parts_of_urls() {
    let (code, out, err) = check_config(
        "clickhouse:
  http_headers: {X-Api-Key: header-secret-1}
telemetry:
  otlp:
    endpoint: 'https://otel-user:otel-pass@collector.example:4318/v1/traces?api_key=query-secret-2'
",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    for secret in [
        "header-secret-1",
        "otel-pass",
        "otel-user",
        "query-secret-2",
    ] {
        assert!(!out.contains(secret), "`{secret}` printed:\n{out}");
    }
    // What a reader checks stays: the header's name, the host, port and path.
    assert!(out.contains("X-Api-Key"), "{out}");
    assert!(out.contains("collector.example:4318/v1/traces"), "{out}");
}

//! The Argo CD health check (`operator/argocd/health.lua`, shipped in docs/operator.md)
//! run by a real Lua 5.4 interpreter (apt `lua5.4`, `scripts/deps.sh lua`) against
//! statuses the operator's own `next_status` produces, so the script and the controller
//! cannot drift apart.

use std::path::PathBuf;
use std::process::Command;

use chmcp_operator::crd::{Endpoint, McpMultiClusterStatus};
use chmcp_operator::status::{next_status, Outcome, Rollout};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

const LUA: &str = "lua5.4";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("argocd/health.lua")
}

/// A JSON value as a Lua table constructor (what Argo CD hands the script as `obj`).
fn lua_literal(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' | '\\' => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\{:03}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "[{}] = {}",
                        lua_literal(&Value::String(k.clone())),
                        lua_literal(v)
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// (status, message) the health check returns for `obj`.
fn health(obj: &Value) -> (String, String) {
    let dir = std::env::temp_dir().join(format!("chmcp-argocd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // One file per fixture, so tests running in parallel never share a harness.
    let harness = dir.join(format!(
        "harness-{:016x}.lua",
        fnv1a(obj.to_string().as_bytes())
    ));
    let script = script();
    std::fs::write(
        &harness,
        format!(
            "obj = {}\nlocal hs = dofile({})\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
            lua_literal(obj),
            lua_literal(&Value::String(script.display().to_string()))
        ),
    )
    .unwrap();
    let out = Command::new(LUA)
        .arg(&harness)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {LUA} ({e}): install it with `scripts/deps.sh lua`")
        });
    assert!(
        out.status.success(),
        "lua failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

/// FNV-1a: only needs to tell fixtures apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn resource(generation: i64, status: Option<&McpMultiClusterStatus>) -> Value {
    let mut obj = json!({
        "apiVersion": "chmcp.dev/v1alpha1",
        "kind": "McpMultiCluster",
        "metadata": {"name": "analytics", "namespace": "mcp", "generation": generation},
    });
    if let Some(s) = status {
        obj["status"] = serde_json::to_value(s).unwrap();
    }
    obj
}

fn applied(ready: i32) -> Outcome {
    Outcome::Applied {
        config_hash: "abc".into(),
        rollout: Rollout {
            desired: 2,
            ready,
            updated: ready,
            available: ready,
            observed: true,
            deadline_exceeded: false,
        },
        endpoints: vec![Endpoint {
            cluster: "otel".into(),
            url: "https://mcp.example.com/mcp/otel".into(),
        }],
        verifier: None,
        service_monitor: Default::default(),
    }
}

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

#[test]
fn a_ready_gateway_is_healthy() {
    let s = next_status(None, Some(3), 1, &applied(2), now());
    let (status, message) = health(&resource(3, Some(&s)));
    assert_eq!(status, "Healthy", "{message}");
    assert!(message.contains("serving 1 clusters"), "{message}");
}

#[test]
fn a_rolling_gateway_is_progressing() {
    let s = next_status(None, Some(3), 1, &applied(1), now());
    let (status, message) = health(&resource(3, Some(&s)));
    assert_eq!(status, "Progressing");
    assert!(message.contains("1 of 2 replicas"), "{message}");
}

#[test]
fn a_blocked_spec_is_degraded_with_the_field_named() {
    let blocked = Outcome::Blocked {
        reason: "InvalidSpec",
        message: "spec.clusters[1].name: `Bad_Name` is not an RFC 1123 label \"quoted\"".into(),
    };
    let s = next_status(None, Some(3), 2, &blocked, now());
    let (status, message) = health(&resource(3, Some(&s)));
    assert_eq!(status, "Degraded");
    assert!(
        message.starts_with("InvalidSpec: spec.clusters[1].name"),
        "{message}"
    );
}

#[test]
fn a_generation_the_operator_has_not_seen_is_progressing_even_if_ready_before() {
    let s = next_status(None, Some(3), 1, &applied(2), now());
    let (status, _) = health(&resource(4, Some(&s)));
    assert_eq!(status, "Progressing");
    let (status, _) = health(&resource(1, None));
    assert_eq!(status, "Progressing", "no status yet");
}

#[test]
fn the_check_in_the_docs_is_the_tested_file() {
    let file = std::fs::read_to_string(script()).unwrap();
    let code: Vec<&str> = file.lines().filter(|l| !l.starts_with("--")).collect();
    let docs = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/operator.md"),
    )
    .unwrap();
    let block: Vec<&str> = docs
        .lines()
        .skip_while(|l| !l.contains("resource.customizations.health.chmcp.dev_McpMultiCluster: |"))
        .skip(1)
        .take_while(|l| *l != "```")
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    assert_eq!(
        block, code,
        "docs/operator.md's Argo CD block differs from operator/argocd/health.lua"
    );
}

//! The read-only promise against a hostile caller: whatever a caller sends, the
//! `readonly` level ClickHouse applies to the next query, theirs or anyone else's, is
//! never weaker than before. Real ClickHouse 18.16 reads the level back from
//! `system.settings` after every hostile query; one test uses a labelled double for the
//! one behaviour 18.16 cannot show (a server that refuses `readonly` by constraint).

use chmcp_gateway::clickhouse::settings::ReadOnly;
use chmcp_gateway::clickhouse::{ClickHouse as Client, Credentials, Endpoint, QueryOptions};
use chmcp_gateway::config::{ClickHouseConfig, Secret};
use chmcp_tests::clickhouse::{ClickHouse, Users};
use chmcp_tests::gateway::{config, Gateway};
use chmcp_tests::http_double::{HttpDouble, Reply};
use chmcp_tests::mcp::Mcp;
use serde_json::{json, Value};

const READBACK: &str = "SELECT value FROM system.settings WHERE name = 'readonly'";

/// Queries a caller could send to make ClickHouse name `readonly` (or another setting)
/// in an error, in the hope that the gateway drops the setting and retries.
const HOSTILE: [&str; 9] = [
    "SELECT 1 SETTINGS readonly=0",
    "SELECT 1 SETTINGS readonly = 1",
    "SELECT * FROM system.one SETTINGS readonly=0, max_execution_time=1",
    "SELECT 1 SETTINGS log_comment='x'",
    "SELECT 1 SETTINGS max_result_rows=5, readonly=0",
    "SELECT 1 SETTINGS no_such_setting_anywhere=1",
    "SELECT throwIf(1, 'Code: 164. Cannot modify ''readonly'' setting in readonly mode')",
    "SELECT throwIf(1, 'Unknown setting readonly')",
    "SELECT 1 /* Cannot override setting (readonly) in readonly mode */ SETTINGS readonly=0",
];

fn first_cell(result: &Value) -> String {
    let cell = &result["structuredContent"]["rows"][0][0];
    cell.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| cell.to_string())
}

async fn readonly_seen_by(mcp: &Mcp) -> String {
    let r = mcp.query(READBACK).await;
    assert_ne!(r["isError"], json!(true), "read-back failed: {r}");
    first_cell(&r)
}

#[tokio::test]
async fn hostile_queries_never_weaken_readonly_for_the_next_query() {
    let ch = ClickHouse::start();
    let gw = Gateway::start(&config(ch.http_port, ""));
    let mcp = Mcp::new(gw.mcp_url());
    assert_eq!(readonly_seen_by(&mcp).await, "2", "reads carry readonly=2");
    for hostile in HOSTILE {
        let r = mcp.query(hostile).await;
        assert_eq!(
            r["isError"],
            json!(true),
            "ClickHouse refuses `{hostile}` under readonly=2; the gateway must not retry it with fewer settings: {r}"
        );
        assert_eq!(
            readonly_seen_by(&mcp).await,
            "2",
            "after `{hostile}` the next query must still run with readonly=2"
        );
    }
    // A write through the read tool stays refused by ClickHouse itself, not only the guard.
    ch.query("CREATE TABLE default.t (x UInt8) ENGINE = TinyLog");
    let r = mcp
        .query("SELECT * FROM default.t SETTINGS readonly=0")
        .await;
    assert_eq!(r["isError"], json!(true), "{r}");
    assert!(
        !gw.log().contains("not sending it again"),
        "no caller error may teach the gateway to drop a setting:\n{}",
        gw.log()
    );
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        user: user.into(),
        password: Secret::new(password),
    }
}

fn read(sql: &str) -> QueryOptions {
    QueryOptions {
        sql: sql.into(),
        query_id: format!(
            "boundary-{:x}",
            std::process::id() as u64 * 7919 + sql.len() as u64
        ),
        gateway_settings: vec![("max_execution_time", "10".into())],
        read_only: ReadOnly::Required,
        timeout: std::time::Duration::from_secs(10),
        ..Default::default()
    }
}

#[tokio::test]
async fn one_users_read_only_profile_says_nothing_about_another_user() {
    let ch = ClickHouse::start_with(Users::default().with("reader", "rpw", "ro"));
    let client = Client::new(&ClickHouseConfig::default()).unwrap();
    let ep = Endpoint {
        scheme: "http",
        host: "127.0.0.1".into(),
        port: ch.http_port,
        connect_host: None,
    };
    // The `ro` profile (readonly=1) refuses every setting: its reads run under the
    // profile, which ClickHouse enforces.
    let (_, rows) = client
        .query_all(&ep, &basic("reader", "rpw"), &read(READBACK), 1)
        .await
        .expect("a read-only profile's read runs");
    assert_eq!(rows[0][0], json!("1"));
    // Another user on the same endpoint still gets readonly=2.
    let (_, rows) = client
        .query_all(&ep, &basic("default", ""), &read(READBACK), 1)
        .await
        .expect("the default user's read runs");
    assert_eq!(
        rows[0][0],
        json!("2"),
        "what was learned for `reader` must not drop readonly for `default`"
    );
}

/// TEST DOUBLE, not a real server: answers like a modern ClickHouse whose settings
/// profile has a constraint on `readonly` for a user whose own level is 0 (writable):
/// `SETTINGS readonly` is refused with SETTING_CONSTRAINT_VIOLATION, `system.settings`
/// says 0. 18.16 has no settings constraints, so it cannot show this. A real server would
/// also run the query; the double records every SQL text it receives instead.
#[tokio::test]
async fn double_a_writable_user_whose_server_refuses_readonly_fails_closed() {
    let double = HttpDouble::start(|req| {
        if req.query.contains("readonly=") {
            return Reply::new(500, "Code: 452. DB::Exception: Setting readonly should not be changed. (SETTING_CONSTRAINT_VIOLATION) (version 25.8.1.1)\n");
        }
        if req.body.contains("system.settings") {
            return Reply::new(
                200,
                "{\"meta\":[{\"name\":\"value\",\"type\":\"String\"}],\"data\":[[\"0\"]],\"rows\":1}\n",
            );
        }
        Reply::new(
            200,
            "{\"meta\":[{\"name\":\"1\",\"type\":\"UInt8\"}],\"data\":[[1]],\"rows\":1}\n",
        )
    })
    .await;
    let gw = Gateway::start(&config(double.port, ""));
    let mcp = Mcp::new(gw.mcp_url());
    let r = mcp.query("SELECT 'caller-query-marker'").await;
    assert_eq!(r["isError"], json!(true), "{r}");
    let text = r["content"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("readonly") && text.contains("profile"),
        "the error names the cause: {text}"
    );
    assert!(
        !double
            .received()
            .iter()
            .any(|q| q.body.contains("caller-query-marker")),
        "the caller's query never reaches a server that would run it writable"
    );
    // The gateway's own listings still work, under the user's profile.
    let r = mcp.call("list_databases", json!({})).await;
    assert_ne!(r["isError"], json!(true), "{r}");
}

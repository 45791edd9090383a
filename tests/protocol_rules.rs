//! The JSON-RPC and MCP protocol rules of the stateless HTTP endpoint, proved in process
//! against the gateway's router with a ClickHouse address nobody listens on: message
//! kinds, both protocol eras (`initialize` and 2026-07-28 `server/discover`), and the
//! `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` header rules.

use chmcp_tests::inproc::{single_cluster, Gateway};
use chmcp_tests::mcp::initialize;
use serde_json::{json, Value};

const STATELESS: &str = "2026-07-28";

fn gateway() -> Gateway {
    Gateway::new(&single_cluster(""))
}

/// The `_meta` every 2026-07-28 request carries.
fn meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": STATELESS, "io.modelcontextprotocol/clientCapabilities": {}})
}

/// A 2026-07-28 request (`id` 1) with `_meta` added to `params`.
fn stateless(method: &str, mut params: Value) -> Value {
    params["_meta"] = meta();
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

fn execute_select_1() -> Value {
    stateless(
        "tools/call",
        json!({"name": "execute_query", "arguments": {"query": "SELECT 1"}}),
    )
}

#[tokio::test]
async fn notifications_and_client_responses_are_accepted_with_202_and_no_body() {
    let gw = gateway();
    for message in [
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}),
        json!({"jsonrpc": "2.0", "id": 4, "result": {}}),
        json!({"jsonrpc": "2.0", "id": 5, "error": {"code": -1, "message": "no"}}),
    ] {
        let r = gw.post_json("/mcp", &message, &[]).await;
        assert_eq!(r.status, 202, "{message}");
        assert_eq!(r.body, json!(""), "{message}");
    }
}

#[tokio::test]
async fn a_batch_or_a_malformed_message_is_a_400_invalid_request() {
    let gw = gateway();
    for (message, says) in [
        (
            json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
            "batches",
        ),
        (
            json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}),
            "jsonrpc",
        ),
        (
            json!({"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}),
            "`id`",
        ),
        (json!({"jsonrpc": "2.0", "id": 1, "method": 7}), "`method`"),
        (json!("ping"), "object"),
    ] {
        let r = gw.post_json("/mcp", &message, &[]).await;
        assert_eq!(r.status, 400, "{message}");
        assert_eq!(r.body["error"]["code"], -32600, "{message}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(says),
            "{message}: {:?}",
            r.body
        );
    }
}

#[tokio::test]
async fn an_unknown_method_is_method_not_found_with_its_id() {
    let r = gateway().rpc("/mcp", "no/such", json!({})).await;
    assert_eq!(r.body["error"]["code"], -32601, "{:?}", r.body);
    assert_eq!(r.body["id"], 1);
}

#[tokio::test]
async fn initialize_answers_the_requested_era_version_and_opens_no_session() {
    let gw = gateway();
    for (asked, answered) in [
        ("2025-03-26", "2025-03-26"),
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        // An unknown version gets the newest one that still has `initialize`.
        ("1999-01-01", "2025-11-25"),
    ] {
        let r = gw.post_json("/mcp", &initialize(asked), &[]).await;
        assert_eq!(r.status, 200, "{asked}: {:?}", r.body);
        assert_eq!(r.body["result"]["protocolVersion"], answered, "{asked}");
        assert!(
            r.body["result"]["capabilities"]["tools"].is_object(),
            "{asked}"
        );
        assert!(
            r.headers.get("mcp-session-id").is_none(),
            "stateless: no session id"
        );
    }
}

#[tokio::test]
async fn an_unsupported_protocol_version_header_is_400_naming_the_supported_ones() {
    let r = gateway()
        .post_json(
            "/mcp",
            &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            &[("mcp-protocol-version", "1999-01-01")],
        )
        .await;
    assert_eq!(r.status, 400);
    let message = r.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("2025-11-25") && message.contains(STATELESS),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn server_discover_lists_the_supported_versions_in_the_stateless_era() {
    let gw = gateway();
    let headers = [
        ("mcp-protocol-version", STATELESS),
        ("mcp-method", "server/discover"),
    ];
    let r = gw
        .post_json("/mcp", &stateless("server/discover", json!({})), &headers)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let versions = r.body["result"]["supportedVersions"].as_array().unwrap();
    for v in ["2025-03-26", "2025-06-18", "2025-11-25", STATELESS] {
        assert!(versions.contains(&json!(v)), "{v} missing: {versions:?}");
    }
    // Without `_meta` the request has no era: invalid params, naming what is missing.
    let bare = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover"});
    let r = gw.post_json("/mcp", &bare, &headers).await;
    assert_eq!(
        (r.status, r.body["error"]["code"].clone()),
        (400, json!(-32602))
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("io.modelcontextprotocol/protocolVersion"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn a_stateless_tool_call_with_matching_headers_reaches_the_tool() {
    let headers = [
        ("mcp-protocol-version", STATELESS),
        ("mcp-method", "tools/call"),
        ("mcp-name", "execute_query"),
    ];
    let r = gateway()
        .post_json("/mcp", &execute_select_1(), &headers)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The tool ran: nobody listens where ClickHouse should be, so its answer is a tool
    // error in a complete 2026-era result (the query's success is proved in gateway.rs).
    assert_eq!(r.body["result"]["resultType"], "complete", "{:?}", r.body);
    assert_eq!(r.body["result"]["isError"], json!(true), "{:?}", r.body);
}

#[tokio::test]
async fn mcp_method_or_name_headers_that_disagree_with_the_body_are_header_mismatch() {
    let gw = gateway();
    for (headers, names) in [
        (
            vec![("mcp-method", "tools/call"), ("mcp-name", "list_tables")],
            "Mcp-Name",
        ),
        (
            vec![("mcp-method", "tools/list"), ("mcp-name", "execute_query")],
            "Mcp-Method",
        ),
        (vec![("mcp-name", "execute_query")], "Mcp-Method"),
    ] {
        let mut all = vec![("mcp-protocol-version", STATELESS)];
        all.extend(headers.iter().copied());
        let r = gw.post_json("/mcp", &execute_select_1(), &all).await;
        assert_eq!(
            (r.status, r.body["error"]["code"].clone()),
            (400, json!(-32020)),
            "{headers:?}: {:?}",
            r.body
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(names),
            "{headers:?}: {:?}",
            r.body
        );
    }
}

#[tokio::test]
async fn a_protocol_version_header_that_disagrees_with_meta_is_header_mismatch() {
    let headers = [
        ("mcp-protocol-version", "2025-11-25"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "execute_query"),
    ];
    let r = gateway()
        .post_json("/mcp", &execute_select_1(), &headers)
        .await;
    assert_eq!(
        (r.status, r.body["error"]["code"].clone()),
        (400, json!(-32020)),
        "{:?}",
        r.body
    );
}

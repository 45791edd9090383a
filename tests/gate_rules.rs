//! Routing and the OAuth gate, proved in process against the gateway's router with
//! cluster addresses nobody listens on: unknown clusters are 404 before auth, a missing
//! or bad bearer gets the exact challenge, protected-resource metadata is served at every
//! path, and token checks (signature, audience, expiry, scope) against the real test IdP
//! (`e2e/idp`) decide before ClickHouse could be asked.

use chmcp_tests::gateway::{clusters_a_b, resource_server};
use chmcp_tests::idp::{clients, Idp};
use chmcp_tests::inproc::{single_cluster, Gateway, NOBODY_LISTENS};
use chmcp_tests::jwt;
use serde_json::json;

/// An issuer no test contacts: these tests never get as far as checking a token.
const UNCONTACTED_ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "https://mcp.example.com/";

/// Multi-cluster mode (clusters `a` and `b`), OAuth in resource-server mode.
fn multi_cluster(issuer: &str, audience: &str) -> String {
    clusters_a_b(
        &resource_server(issuer, audience, ""),
        NOBODY_LISTENS,
        NOBODY_LISTENS,
    )
}

fn fleet() -> Gateway {
    Gateway::new(&multi_cluster(UNCONTACTED_ISSUER, AUDIENCE))
}

fn tools_list() -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
}

#[tokio::test]
async fn unknown_or_malformed_clusters_are_one_404_before_auth() {
    let gw = fleet();
    let mut replies = Vec::new();
    for path in ["/mcp/c", "/mcp/Bad_Name", "/mcp/-a", "/mcp/a/extra", "/mcp"] {
        let r = gw.post_json(path, &tools_list(), &[]).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.headers.get("www-authenticate").is_none(),
            "{path}: 404 comes before auth"
        );
        replies.push(r.body);
    }
    assert!(
        replies[..4].windows(2).all(|w| w[0] == w[1]),
        "one reply for every cause: {replies:?}"
    );
    // A valid name on the allow-list is routed, with or without a trailing slash: the
    // gate answers (401), so the 404s above were the router's.
    for path in ["/mcp/a", "/mcp/b/"] {
        let r = gw.post_json(path, &tools_list(), &[]).await;
        assert_eq!(r.status, 401, "{path}: {:?}", r.body);
    }
}

#[tokio::test]
async fn a_request_without_a_bearer_gets_the_exact_challenge() {
    let gw = fleet();
    let r = gw.post_json("/mcp/a", &tools_list(), &[]).await;
    assert_eq!(r.status, 401);
    let expected = format!(
        "Bearer error=\"invalid_token\", error_description=\"no bearer token in the Authorization header\", resource_metadata=\"{}/mcp/a/.well-known/oauth-protected-resource\", scope=\"openid email\"",
        gw.base()
    );
    assert_eq!(r.headers["www-authenticate"], expected.as_str());
}

#[tokio::test]
async fn protected_resource_metadata_is_served_at_all_three_paths() {
    let gw = fleet();
    let base = gw.base();
    for path in [
        "/mcp/a/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp/a",
    ] {
        let r = gw.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        let doc = r.body;
        assert_eq!(doc["resource"], format!("{base}/mcp/a"), "{path}");
        assert_eq!(doc["authorization_servers"], json!([UNCONTACTED_ISSUER]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert!(doc["resource_name"].as_str().unwrap().contains('a'));
    }
    let root = gw.get("/.well-known/oauth-protected-resource").await;
    assert_eq!(root.status, 200);
    assert_eq!(root.body["resource"], base);
    // The metadata paths follow the same name rules as the MCP paths.
    for path in [
        "/.well-known/oauth-protected-resource/mcp/zzz",
        "/.well-known/oauth-protected-resource/mcp/Bad_Name",
        "/mcp/zzz/.well-known/oauth-protected-resource",
    ] {
        assert_eq!(gw.get(path).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn protected_resource_metadata_is_readable_cross_origin() {
    // In-browser clients (MCP Inspector) fetch the metadata from their own origin during
    // sign-in; the document is public, so any origin may read it.
    let gw = fleet();
    let browser = [
        ("origin", "https://inspector.example"),
        ("access-control-request-method", "GET"),
    ];
    for path in [
        "/mcp/a/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp/a",
        "/.well-known/oauth-protected-resource",
    ] {
        let doc = gw.send("GET", path, &browser[..1], "").await;
        assert_eq!(doc.status, 200, "{path}");
        assert_eq!(doc.headers["access-control-allow-origin"], "*", "{path}");
        let pre = gw.send("OPTIONS", path, &browser, "").await;
        assert_eq!(pre.status, 204, "{path}: preflight");
        assert_eq!(pre.headers["access-control-allow-origin"], "*", "{path}");
        assert!(
            pre.headers["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("GET"),
            "{path}"
        );
    }
}

/// `ping` on `/mcp` with `token`: (status, WWW-Authenticate, body).
async fn ping(gw: &Gateway, token: &str) -> (u16, String, String) {
    let bearer = format!("Bearer {token}");
    let r = gw
        .post_json(
            "/mcp",
            &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            &[("authorization", &bearer)],
        )
        .await;
    let www = r
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (r.status, www, r.body.to_string())
}

#[tokio::test]
async fn an_expired_bearer_is_refused_on_every_method() {
    let idp = Idp::shared();
    let gw = Gateway::new(&multi_cluster(&idp.issuer, &idp.audience));
    let mut expired = jwt::claims_for(idp, "alice");
    expired["exp"] = json!(jwt::now() - 120);
    let bearer = format!("Bearer {}", jwt::signed_by(idp, &expired));
    for method in ["tools/list", "initialize", "ping"] {
        let r = gw
            .post_json(
                "/mcp/a",
                &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}),
                &[("authorization", &bearer)],
            )
            .await;
        assert_eq!(
            r.status, 401,
            "{method}: an expired JWT is refused on every method"
        );
        let www = r.headers["www-authenticate"].to_str().unwrap();
        assert!(www.contains("expired"), "{method}: {www}");
    }
}

#[tokio::test]
async fn the_gate_checks_signature_audience_and_scopes() {
    let idp = Idp::shared();
    // Single-cluster mode, as most deployments run the resource server.
    let gw = Gateway::new(&single_cluster(&resource_server(
        &idp.issuer,
        &idp.audience,
        "    validate_tokens: true\n    required_scopes: [\"mcp:read\"]\n",
    )));

    let good = idp
        .token(clients::ALICE, "mcp:read", &idp.audience)
        .await
        .unwrap();
    let (status, _, body) = ping(&gw, &good).await;
    assert_eq!(status, 200, "{body}");

    let other_aud = idp
        .token(clients::ALICE, "mcp:read", &idp.other_audience)
        .await
        .unwrap();
    let (status, www, _) = ping(&gw, &other_aud).await;
    assert_eq!(status, 401);
    assert!(
        www.contains("invalid_token") && www.contains("aud"),
        "{www}"
    );

    // The claims of a good token, signed with a key the IdP never had.
    let forged = jwt::signed_with(&idp.foreign_key_pem, &idp.kid, &jwt::claims_of(&good));
    let (status, www, _) = ping(&gw, &forged).await;
    assert_eq!(status, 401);
    assert!(www.contains("signature"), "{www}");

    let no_read = idp
        .token(clients::ALICE, "mcp:write", &idp.audience)
        .await
        .unwrap();
    let (status, www, body) = ping(&gw, &no_read).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        www.starts_with("Bearer error=\"insufficient_scope\""),
        "{www}"
    );
    assert!(body.contains("mcp:read"), "{body}");
}

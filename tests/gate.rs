//! The OAuth gate with `validate_tokens: true` against a real OpenID provider
//! (npm `oidc-provider`, `e2e/idp`): signature, `iss`, `aud` and scopes are checked
//! before anything reaches ClickHouse.

use chmcp_tests::clickhouse::ClickHouse;
use chmcp_tests::gateway::Gateway;
use chmcp_tests::idp::{clients, Idp};
use chmcp_tests::mcp::Mcp;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn gateway(idp: &Idp, ch: &ClickHouse) -> Gateway {
    Gateway::start(&format!(
        "clickhouse:
  host: 127.0.0.1
  port: {}
server:
  oauth:
    enabled: true
    broker: false
    validate_tokens: true
    issuer: {}
    audience: {}
    required_scopes: [\"mcp:read\"]
",
        ch.http_port, idp.issuer, idp.audience
    ))
}

async fn ping(gw: &Gateway, token: &str) -> (u16, String, String) {
    let mut m = Mcp::new(gw.mcp_url());
    m.bearer = Some(token.to_string());
    let r = m.request("ping", json!({})).await;
    let www = r
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (r.status, www, r.body.to_string())
}

#[tokio::test]
async fn the_gate_checks_signature_audience_and_scopes() {
    let idp = Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"));
    let ch = ClickHouse::start();
    let gw = gateway(&idp, &ch);

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

    // Same claims as a good token, signed with a key the IdP never had.
    let payload = good.split('.').nth(1).unwrap();
    let claims: serde_json::Value = {
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(idp.kid.clone());
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(&idp.foreign_key_pem).unwrap(),
    )
    .unwrap();
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

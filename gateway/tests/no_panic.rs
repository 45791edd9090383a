//! Property tests: text from the network (or a configuration file) never panics the
//! code that parses it. Each property only has to return; a panic fails it.

use axum::http::{HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chmcp_gateway::config::{parse_document, validate};
use chmcp_gateway::identity::claims::UnverifiedPayload;
use chmcp_gateway::mcp::{classify_message, protocol, Incoming};
use chmcp_gateway::net::{parse_secure_url, OriginPolicy, WebOrigin};
use chmcp_gateway::oauth::broker::cimd::check_document_url;
use chmcp_gateway::oauth::broker::token::form_decode;
use chmcp_gateway::oauth::jwks::{peek_kid, validate_jwt, Expectations, KeySet};
use chmcp_gateway::tools::resources::TableUri;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Strings rich in what breaks byte-offset code: `%`, multi-byte characters, separators.
fn tricky_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("%".to_string()),
            Just("é".to_string()),
            Just("😀".to_string()),
            Just("/".to_string()),
            Just(":".to_string()),
            Just(".".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("\n".to_string()),
            "[0-9a-fA-F]{1,2}",
            any::<char>().prop_map(String::from),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// Runs a JSON-RPC message through what both transports run before dispatch.
fn classify_all(value: Value, headers: &HeaderMap) {
    if let Ok(Incoming::Request { method, params, .. }) = classify_message(value.clone()) {
        let _ = protocol::classify(headers, &method, params.as_ref(), true);
    }
    if let Ok(Incoming::Notification { method, params }) = classify_message(value) {
        let _ = protocol::classify(headers, &method, params.as_ref(), false);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn json_rpc_parsing_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            classify_all(v, &HeaderMap::new());
        }
    }

    #[test]
    fn json_rpc_classification_never_panics_on_shaped_messages(
        method in tricky_text(),
        version in tricky_text(),
        meta_version in tricky_text(),
        header_method in tricky_text(),
        id in prop_oneof![Just(json!(1)), Just(json!("a")), Just(json!(null)), Just(json!([]))],
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in [("mcp-protocol-version", &version), ("mcp-method", &header_method), ("mcp-name", &method)] {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        }
        let msg = json!({
            "jsonrpc": "2.0", "id": id, "method": method,
            "params": {"name": method, "_meta": {"io.modelcontextprotocol/protocolVersion": meta_version}},
        });
        classify_all(msg, &headers);
    }

    #[test]
    fn resource_uri_decoding_never_panics(rest in tricky_text()) {
        let _ = TableUri::parse(&format!("clickhouse://table/{rest}"));
        let _ = TableUri::parse(&format!("clickhouse://table/db/{rest}"));
        let _ = form_decode(&rest);
    }

    #[test]
    fn config_loading_never_panics(text in tricky_text(), key in "[a-z_.]{1,30}") {
        for doc in [text.clone(), format!("{key}: {text}"), format!("server:\n  {key}: {text}")] {
            if let Ok(config) = parse_document(&doc) {
                let _ = validate(&config);
            }
        }
    }

    #[test]
    fn jwt_parsing_never_panics(
        header in prop::collection::vec(any::<u8>(), 0..64),
        claims in prop::collection::vec(any::<u8>(), 0..64),
        raw in tricky_text(),
    ) {
        let shaped = format!("{}.{}.sig", URL_SAFE_NO_PAD.encode(&header), URL_SAFE_NO_PAD.encode(&claims));
        let keys = KeySet::from_json(br#"{"keys": []}"#).ok();
        let expect = Expectations {
            issuer: "https://idp.example".into(),
            audience: "aud".into(),
            leeway_secs: 0,
            required_scopes: vec![],
        };
        for token in [shaped.as_str(), raw.as_str()] {
            let _ = peek_kid(token);
            let _ = UnverifiedPayload::decode(token).map(|p| (p.exp(), p.audience_contains("aud")));
            if let Some(keys) = &keys {
                let _ = validate_jwt(token, keys, &expect, 0);
            }
        }
        let _ = KeySet::from_json(&claims);
    }

    #[test]
    fn url_rules_never_panic(rest in tricky_text(), scheme in "(https?|HTTP|ftp|)") {
        let url = format!("{scheme}://{rest}");
        for text in [url.as_str(), rest.as_str()] {
            let _ = check_document_url(text, true);
            let _ = check_document_url(text, false);
            let _ = parse_secure_url(text);
            let _ = WebOrigin::parse(text);
            let _ = OriginPolicy::new(&[text.to_string()], [text], true).check([text.as_bytes()]);
        }
    }
}

//! RFC 8414 authorization-server metadata, served at both
//! `/.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`
//! with exactly the fields of docs/spec-notes.md ("Broker mode").

use serde_json::{json, Value};

use super::Settings;

pub fn authorization_server_metadata(s: &Settings) -> Value {
    let base = &s.issuer;
    json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "registration_endpoint": format!("{base}/oauth/register"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "client_id_metadata_document_supported": true,
        "scopes_supported": s.scopes,
        "authorization_response_iss_parameter_supported": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OAuthConfig, Secret};

    #[test]
    fn metadata_has_exactly_the_fields_of_the_spec() {
        let cfg = OAuthConfig {
            enabled: true,
            issuer: "https://idp.example.com".into(),
            public_auth_server_url: "https://mcp.example.com/".into(),
            client_id: "c".into(),
            client_secret: Secret::new("s"),
            ..OAuthConfig::default()
        };
        let m = authorization_server_metadata(&Settings::from_config(&cfg));
        let mut keys: Vec<_> = m.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "authorization_endpoint",
                "authorization_response_iss_parameter_supported",
                "client_id_metadata_document_supported",
                "code_challenge_methods_supported",
                "grant_types_supported",
                "issuer",
                "registration_endpoint",
                "response_types_supported",
                "scopes_supported",
                "token_endpoint",
                "token_endpoint_auth_methods_supported",
            ]
        );
        assert_eq!(m["issuer"], "https://mcp.example.com");
        assert_eq!(m["token_endpoint"], "https://mcp.example.com/oauth/token");
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["scopes_supported"], json!(["openid", "email"]));
    }
}

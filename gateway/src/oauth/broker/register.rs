//! `POST /oauth/register`: RFC 7591 dynamic client registration, stateless. The issued
//! `client_id` is the registered metadata, sealed (client.rs), so any replica can read it.

use serde_json::{json, Map, Value};

use super::client::{
    check_redirect_uri, AuthMethod, RegisteredClient, MAX_CLIENT_NAME_LEN, MAX_REDIRECT_URIS,
    MAX_SCOPE_LEN,
};
use super::error::{ErrorCode, OAuthError};

/// A registration body larger than this is not a client's metadata.
pub const MAX_REGISTRATION_BYTES: usize = 16 * 1024;

fn metadata_error(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

fn redirect_error(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, d)
}

fn string_list(doc: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, OAuthError> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| metadata_error(format!("{key} must be a list of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(metadata_error(format!("{key} must be a list of strings"))),
    }
}

fn opt_string(
    doc: &Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<String>, OAuthError> {
    match doc.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= max => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(metadata_error(format!(
            "{key} is longer than {max} characters"
        ))),
        Some(_) => Err(metadata_error(format!("{key} must be a string"))),
    }
}

/// Checks client metadata (a registration body or a Client ID Metadata Document) and
/// keeps what the broker uses. Unknown fields are ignored (RFC 7591 §2).
pub fn validate_metadata(
    doc: &Map<String, Value>,
    issued_at: u64,
) -> Result<RegisteredClient, OAuthError> {
    let redirect_uris = string_list(doc, "redirect_uris")?.unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(redirect_error(
            "redirect_uris is required: this server only issues authorization codes",
        ));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(redirect_error(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris may be registered"
        )));
    }
    for uri in &redirect_uris {
        check_redirect_uri(uri).map_err(redirect_error)?;
    }

    // RFC 7591 §2: the default is client_secret_basic.
    let auth_method = match opt_string(doc, "token_endpoint_auth_method", 64)? {
        None => AuthMethod::ClientSecretBasic,
        Some(m) => AuthMethod::parse(&m).ok_or_else(|| {
            metadata_error(format!("token_endpoint_auth_method `{m}` is not supported (none, client_secret_basic, client_secret_post)"))
        })?,
    };
    if let Some(grants) = string_list(doc, "grant_types")? {
        if let Some(g) = grants
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
        {
            return Err(metadata_error(format!(
                "grant_types: `{g}` is not supported (authorization_code, refresh_token)"
            )));
        }
    }
    if let Some(types) = string_list(doc, "response_types")? {
        if let Some(t) = types.iter().find(|t| t.as_str() != "code") {
            return Err(metadata_error(format!(
                "response_types: `{t}` is not supported (code)"
            )));
        }
    }
    Ok(RegisteredClient {
        redirect_uris,
        client_name: opt_string(doc, "client_name", MAX_CLIENT_NAME_LEN)?,
        auth_method,
        scope: opt_string(doc, "scope", MAX_SCOPE_LEN)?,
        issued_at,
    })
}

/// Parses and checks a registration request body.
pub fn parse_registration(body: &[u8], issued_at: u64) -> Result<RegisteredClient, OAuthError> {
    if body.len() > MAX_REGISTRATION_BYTES {
        return Err(metadata_error(format!(
            "the registration is larger than {MAX_REGISTRATION_BYTES} bytes"
        )));
    }
    let doc: Value = serde_json::from_slice(body)
        .map_err(|e| metadata_error(format!("the body is not JSON: {e}")))?;
    let Value::Object(doc) = doc else {
        return Err(metadata_error("the body must be a JSON object"));
    };
    validate_metadata(&doc, issued_at)
}

/// The RFC 7591 §3.2.1 answer.
pub fn registration_response(
    client_id: &str,
    secret: Option<&str>,
    reg: &RegisteredClient,
) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("client_id".into(), json!(client_id));
    out.insert("client_id_issued_at".into(), json!(reg.issued_at));
    out.insert("redirect_uris".into(), json!(reg.redirect_uris));
    out.insert(
        "token_endpoint_auth_method".into(),
        json!(reg.auth_method.as_str()),
    );
    out.insert(
        "grant_types".into(),
        json!(["authorization_code", "refresh_token"]),
    );
    out.insert("response_types".into(), json!(["code"]));
    if let Some(name) = &reg.client_name {
        out.insert("client_name".into(), json!(name));
    }
    if let Some(scope) = &reg.scope {
        out.insert("scope".into(), json!(scope));
    }
    if let Some(secret) = secret {
        out.insert("client_secret".into(), json!(secret));
        // 0: the secret does not expire (RFC 7591 §3.2.1).
        out.insert("client_secret_expires_at".into(), json!(0));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<RegisteredClient, OAuthError> {
        parse_registration(v.to_string().as_bytes(), 5)
    }

    #[test]
    fn a_typical_mcp_client_registers_as_public() {
        let r = parse(json!({
            "redirect_uris": ["http://localhost:3030/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "Claude",
            "logo_uri": "ignored"
        }))
        .unwrap();
        assert_eq!(r.auth_method, AuthMethod::None);
        assert_eq!(r.client_name.as_deref(), Some("Claude"));
    }

    #[test]
    fn the_default_auth_method_is_client_secret_basic() {
        let r = parse(json!({"redirect_uris": ["https://app.example.com/cb"]})).unwrap();
        assert_eq!(r.auth_method, AuthMethod::ClientSecretBasic);
    }

    #[test]
    fn redirect_problems_are_invalid_redirect_uri() {
        for body in [
            json!({}),
            json!({"redirect_uris": []}),
            json!({"redirect_uris": ["http://evil.example.com/cb"]}),
            json!({"redirect_uris": (0..=MAX_REDIRECT_URIS).map(|i| format!("https://a.example/{i}")).collect::<Vec<_>>()}),
        ] {
            assert_eq!(
                parse(body.clone()).unwrap_err().code,
                ErrorCode::InvalidRedirectUri,
                "{body}"
            );
        }
    }

    #[test]
    fn other_problems_are_invalid_client_metadata() {
        for body in [
            json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]}),
            json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            json!({"redirect_uris": ["https://a.example/cb"], "client_name": "x".repeat(MAX_CLIENT_NAME_LEN + 1)}),
            json!({"redirect_uris": "https://a.example/cb"}),
            json!([1, 2]),
        ] {
            assert_eq!(
                parse(body.clone()).unwrap_err().code,
                ErrorCode::InvalidClientMetadata,
                "{body}"
            );
        }
    }

    #[test]
    fn an_oversize_body_is_refused_before_parsing() {
        let body = vec![b' '; MAX_REGISTRATION_BYTES + 1];
        assert_eq!(
            parse_registration(&body, 0).unwrap_err().code,
            ErrorCode::InvalidClientMetadata
        );
    }

    #[test]
    fn the_response_has_the_rfc7591_fields() {
        let r = parse(json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_post"})).unwrap();
        let v = registration_response("ID", Some("SECRET"), &r);
        assert_eq!(v["client_id"], "ID");
        assert_eq!(v["client_secret"], "SECRET");
        assert_eq!(v["client_secret_expires_at"], 0);
        assert_eq!(v["client_id_issued_at"], 5);
        assert_eq!(v["token_endpoint_auth_method"], "client_secret_post");
    }
}

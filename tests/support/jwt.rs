//! Unsigned-by-any-IdP JWTs for tests where the gateway only reads claims (it never
//! checks signatures unless `validate_tokens` is on; ClickHouse or the verifier do).

use base64::Engine;
use serde_json::{json, Value};

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A JWT with these claims and a placeholder signature.
pub fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(claims)
    )
}

/// A token for `user` that expires in an hour.
pub fn for_user(user: &str) -> String {
    unsigned(
        &json!({"sub": format!("id-{user}"), "preferred_username": user, "email": format!("{user}@example.com"), "exp": now() + 3600}),
    )
}

//! JWTs for tests: tokens signed with the test IdP's own key (the gateway validates
//! tokens by default, so anything that must get past the gate is signed), and unsigned
//! or forged ones for the tests that prove they are refused.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::idp::Idp;

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A JWT with these claims and a placeholder signature nobody signed.
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(claims)
    )
}

/// An `alg: none` JWT (RFC 7519 §6): no signature at all.
pub fn alg_none(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// The claims of a token for `user` that the test IdP could have issued: its issuer, the
/// gateway's audience, an hour to live.
pub fn claims_for(idp: &Idp, user: &str) -> Value {
    json!({
        "iss": idp.issuer,
        "aud": idp.audience,
        "sub": format!("id-{user}"),
        "preferred_username": user,
        "email": format!("{user}@example.com"),
        "email_verified": true,
        "scope": "mcp:read",
        "iat": now(),
        "exp": now() + 3600,
    })
}

/// `claims` signed with the test IdP's own key (RS256, its `kid`): what the IdP would
/// issue for an account it does not have (`mallory`), or with claims it will not set
/// (already expired).
pub fn signed_by(idp: &Idp, claims: &Value) -> String {
    signed_with(&idp.signing_key_pem, &idp.kid, claims)
}

/// `claims` signed RS256 with `pem` under `kid`: with the IdP's `foreign_key_pem`, a
/// token that names the IdP's key but was signed by a key the IdP never had.
pub fn signed_with(pem: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    // What the test IdP puts in its access tokens (RFC 9068).
    header.typ = Some("at+jwt".into());
    let key = EncodingKey::from_rsa_pem(pem)
        .unwrap_or_else(|e| panic!("a test signing key does not load: {e}"));
    jsonwebtoken::encode(&header, claims, &key)
        .unwrap_or_else(|e| panic!("cannot sign a test token: {e}"))
}

/// The claims of a JWT, read without checking anything.
pub fn claims_of(token: &str) -> Value {
    let payload = token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_else(|e| panic!("a JWT payload that is not base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("a JWT payload that is not JSON: {e}"))
}

/// A token for `user`, signed by the test IdP's key.
pub fn for_user(idp: &Idp, user: &str) -> String {
    signed_by(idp, &claims_for(idp, user))
}

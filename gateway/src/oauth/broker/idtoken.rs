//! The upstream id_token check, on the shared JWKS cache and validator (`oauth::jwks`):
//! the broker judges id_tokens by the same code the verifier uses for access tokens.

use std::sync::Arc;

use super::{now, BoxFuture, IdTokenVerifier, Settings};
use crate::oauth::jwks::{peek_kid, DEFAULT_LEEWAY_SECS};
use crate::oauth::{validate_jwt, Claims, Expectations, JwksCache, JwksSource};

pub struct JwksIdTokens {
    keys: JwksCache,
    expect: Expectations,
    /// What the gate expects of the tokens clients present (sealed mode checks the
    /// upstream token against these before sealing it).
    gate: Expectations,
}

impl JwksIdTokens {
    /// Keys from `oauth.jwks_url`, else from the issuer's discovery document; `aud` must
    /// be the gateway's own client id at the IdP (OIDC Core §3.1.3.7).
    pub fn new(s: &Settings, http: reqwest::Client) -> Arc<Self> {
        let source = if s.jwks_url.is_empty() {
            JwksSource::Discovery {
                issuer: s.upstream_issuer.clone(),
            }
        } else {
            JwksSource::Url(s.jwks_url.clone())
        };
        Arc::new(Self {
            keys: JwksCache::new(source, http),
            expect: Expectations {
                issuer: s.upstream_issuer.clone(),
                audience: s.upstream_client_id.clone(),
                leeway_secs: DEFAULT_LEEWAY_SECS,
                required_scopes: Vec::new(),
            },
            gate: Expectations {
                issuer: s.upstream_issuer.clone(),
                audience: s.audience.clone(),
                leeway_secs: DEFAULT_LEEWAY_SECS,
                // Scopes are the gate's to judge (a 403 there, not a refusal to mint).
                required_scopes: Vec::new(),
            },
        })
    }

    async fn check(&self, token: &str, expect: &Expectations) -> Result<Claims, String> {
        let kid = peek_kid(token).map_err(|e| e.to_string())?;
        let keys = self
            .keys
            .keys_for(kid.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        validate_jwt(token, &keys, expect, now()).map_err(|e| e.to_string())
    }
}

impl IdTokenVerifier for JwksIdTokens {
    fn verify<'a>(&'a self, id_token: &'a str) -> BoxFuture<'a, Result<Claims, String>> {
        Box::pin(self.check(id_token, &self.expect))
    }

    fn verify_for_gate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Claims, String>> {
        Box::pin(self.check(token, &self.gate))
    }
}

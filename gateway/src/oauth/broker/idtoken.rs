//! The upstream id_token check, on the shared JWKS cache and validator (`oauth::jwks`):
//! the broker judges id_tokens by the same code the verifier uses for access tokens.

use std::sync::Arc;

use super::{now, BoxFuture, IdTokenVerifier, Settings};
use crate::oauth::jwks::{peek_kid, DEFAULT_LEEWAY_SECS};
use crate::oauth::{validate_jwt, Claims, Expectations, JwksCache, JwksSource};

pub struct JwksIdTokens {
    keys: JwksCache,
    expect: Expectations,
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
        })
    }
}

impl IdTokenVerifier for JwksIdTokens {
    fn verify<'a>(&'a self, id_token: &'a str) -> BoxFuture<'a, Result<Claims, String>> {
        Box::pin(async move {
            let kid = peek_kid(id_token).map_err(|e| e.to_string())?;
            let keys = self
                .keys
                .keys_for(kid.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            validate_jwt(id_token, &keys, &self.expect, now()).map_err(|e| e.to_string())
        })
    }
}

//! The gateway as an OAuth client of the upstream IdP: where to send the browser, how to
//! redeem and refresh codes, and the Google / everyone-else differences (docs/spec-notes.md, "Broker mode").

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::Settings;
use crate::config::Secret;

/// Upstream calls are on the user's critical path; a stuck IdP must not hold a token
/// request forever.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// IdP answers (discovery, token responses) are small; anything bigger is refused.
const MAX_UPSTREAM_BODY: usize = 256 * 1024;

/// Where the upstream IdP takes authorization and token requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
}

/// Google's issuer: it takes no `audience`, and offline access is `access_type=offline`.
pub fn is_google(issuer: &str) -> bool {
    reqwest::Url::parse(issuer)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.eq_ignore_ascii_case("accounts.google.com"))
        })
        .unwrap_or(false)
}

/// The upstream authorization URL for one sign-in: the gateway's own client id,
/// callback and PKCE challenge, and the sealed `state`.
pub fn authorization_url(
    s: &Settings,
    endpoint: &str,
    state: &str,
    challenge: &str,
) -> Result<String, String> {
    let mut u = reqwest::Url::parse(endpoint)
        .map_err(|e| format!("upstream authorization endpoint `{endpoint}`: {e}"))?;
    let mut scopes = s.scopes.clone();
    if s.offline && !s.google && !scopes.iter().any(|x| x == "offline_access") {
        scopes.push("offline_access".into());
    }
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &s.upstream_client_id)
            .append_pair("redirect_uri", &s.callback_url())
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if s.offline {
            // OIDC Core §11: offline access needs a consent prompt (oidc-provider drops
            // offline_access without it); Google issues a refresh token only on consent.
            q.append_pair("prompt", "consent");
            if s.google {
                q.append_pair("access_type", "offline");
            }
        }
        if !s.google && !s.audience.is_empty() {
            // Auth0 issues a JWT access token for this API only when asked by audience.
            q.append_pair("audience", &s.audience);
        }
    }
    Ok(u.into())
}

/// What the upstream token endpoint answered.
#[derive(Clone, Default, Deserialize)]
pub struct UpstreamTokens {
    pub access_token: Option<String>,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a token, even in a debug dump.
        f.debug_struct("UpstreamTokens")
            .field("access_token", &self.access_token.is_some())
            .field("id_token", &self.id_token.is_some())
            .field("refresh_token", &self.refresh_token.is_some())
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The IdP refused the grant (RFC 6749 error from its token endpoint).
    #[error("the identity provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        error: String,
        description: Option<String>,
    },
    #[error("the identity provider is unreachable: {0}")]
    Unreachable(String),
    #[error("the identity provider answered unexpectedly: {0}")]
    Invalid(String),
}

/// Talks to the upstream IdP. Endpoints come from configuration or OIDC discovery
/// (fetched once; a failed discovery is retried on the next request).
pub struct Upstream {
    http: reqwest::Client,
    issuer: String,
    client_id: String,
    client_secret: Secret,
    configured: Option<Endpoints>,
    configured_auth_url: String,
    configured_token_url: String,
    discovered: tokio::sync::Mutex<Option<Endpoints>>,
}

impl Upstream {
    pub fn new(s: &Settings, http: reqwest::Client) -> Self {
        let configured = (!s.auth_url.is_empty() && !s.token_url.is_empty()).then(|| Endpoints {
            authorization: s.auth_url.clone(),
            token: s.token_url.clone(),
        });
        Self {
            http,
            issuer: s.upstream_issuer.clone(),
            client_id: s.upstream_client_id.clone(),
            client_secret: s.upstream_client_secret.clone(),
            configured,
            configured_auth_url: s.auth_url.clone(),
            configured_token_url: s.token_url.clone(),
            discovered: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn endpoints(&self) -> Result<Endpoints, UpstreamError> {
        if let Some(e) = &self.configured {
            return Ok(e.clone());
        }
        let mut slot = self.discovered.lock().await;
        if let Some(e) = slot.as_ref() {
            return Ok(e.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let doc = self.get_json(&url).await?;
        let e = endpoints_from_discovery(
            &doc,
            &self.issuer,
            &self.configured_auth_url,
            &self.configured_token_url,
        )
        .map_err(UpstreamError::Invalid)?;
        *slot = Some(e.clone());
        Ok(e)
    }

    /// Redeems an upstream authorization code (with the gateway's PKCE verifier).
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<UpstreamTokens, UpstreamError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        self.token_request(&form).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<UpstreamTokens, UpstreamError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
        ];
        self.token_request(&form).await
    }

    /// client_secret_post: the one method Google, Auth0, Keycloak, Entra and Okta all
    /// accept, and without Basic's URL-encoding pitfalls.
    async fn token_request(&self, form: &[(&str, &str)]) -> Result<UpstreamTokens, UpstreamError> {
        let endpoint = self.endpoints().await?.token;
        let resp = self
            .http
            .post(&endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .timeout(UPSTREAM_TIMEOUT)
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(e.without_url().to_string()))?;
        let status = resp.status();
        let body = read_capped(resp).await?;
        let doc: Value = serde_json::from_slice(&body).map_err(|_| {
            UpstreamError::Invalid(format!(
                "HTTP {} with a body that is not JSON",
                status.as_u16()
            ))
        })?;
        if !status.is_success() {
            return Err(match doc.get("error").and_then(Value::as_str) {
                Some(error) => UpstreamError::Rejected {
                    error: error.to_string(),
                    description: doc
                        .get("error_description")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                },
                None => UpstreamError::Invalid(format!("HTTP {}", status.as_u16())),
            });
        }
        serde_json::from_value(doc)
            .map_err(|e| UpstreamError::Invalid(format!("token response: {e}")))
    }

    async fn get_json(&self, url: &str) -> Result<Value, UpstreamError> {
        let resp = self
            .http
            .get(url)
            .timeout(UPSTREAM_TIMEOUT)
            .send()
            .await
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(UpstreamError::Invalid(format!(
                "{url} answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        let body = read_capped(resp).await?;
        serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Invalid(format!("{url}: not JSON: {e}")))
    }
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| UpstreamError::Unreachable(e.without_url().to_string()))?
    {
        if body.len() + chunk.len() > MAX_UPSTREAM_BODY {
            return Err(UpstreamError::Invalid("answer too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Endpoints from an OIDC discovery document, with configured overrides winning. The
/// document must be for the configured issuer (OIDC Discovery §4.3), and endpoints must
/// be https (or loopback http) so codes and secrets never cross the network in clear.
pub fn endpoints_from_discovery(
    doc: &Value,
    issuer: &str,
    auth_url: &str,
    token_url: &str,
) -> Result<Endpoints, String> {
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(format!(
            "the discovery document is not for issuer `{issuer}`"
        ));
    }
    let pick = |configured: &str, key: &str| -> Result<String, String> {
        let url = if configured.is_empty() {
            doc.get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("the discovery document has no {key}"))?
        } else {
            configured
        };
        secure_url(url)
            .map(|_| url.to_string())
            .map_err(|m| format!("{key} {m}"))
    };
    Ok(Endpoints {
        authorization: pick(auth_url, "authorization_endpoint")?,
        token: pick(token_url, "token_endpoint")?,
    })
}

fn secure_url(url: &str) -> Result<(), String> {
    crate::net::parse_secure_url(url)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OAuthConfig, UpstreamToken};

    fn settings(issuer: &str, offline: bool) -> Settings {
        let cfg = OAuthConfig {
            enabled: true,
            issuer: issuer.into(),
            audience: "https://mcp.example.com/".into(),
            public_auth_server_url: "https://gw.example.com".into(),
            client_id: "gw-client".into(),
            client_secret: Secret::new("s"),
            upstream_offline_access: offline,
            upstream_token: UpstreamToken::Auto,
            ..OAuthConfig::default()
        };
        Settings::from_config(&cfg)
    }

    fn params(url: &str) -> Vec<(String, String)> {
        reqwest::Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
        p.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn google_gets_access_type_offline_and_no_audience() {
        let s = settings("https://accounts.google.com", true);
        assert!(s.google);
        let p = params(
            &authorization_url(
                &s,
                "https://accounts.google.com/o/oauth2/v2/auth",
                "ST",
                "CH",
            )
            .unwrap(),
        );
        assert_eq!(get(&p, "access_type"), Some("offline"));
        assert_eq!(get(&p, "prompt"), Some("consent"));
        assert_eq!(get(&p, "audience"), None);
        assert_eq!(get(&p, "scope"), Some("openid email"));
        assert_eq!(
            get(&p, "redirect_uri"),
            Some("https://gw.example.com/oauth/callback")
        );
        assert_eq!(get(&p, "code_challenge_method"), Some("S256"));
        assert_eq!(get(&p, "client_id"), Some("gw-client"));
    }

    #[test]
    fn others_get_audience_and_the_offline_access_scope() {
        let s = settings("https://tenant.auth0.com/", true);
        assert!(!s.google);
        let p = params(
            &authorization_url(&s, "https://tenant.auth0.com/authorize", "ST", "CH").unwrap(),
        );
        assert_eq!(get(&p, "audience"), Some("https://mcp.example.com/"));
        assert_eq!(get(&p, "scope"), Some("openid email offline_access"));
        assert_eq!(get(&p, "prompt"), Some("consent"));
        assert_eq!(get(&p, "access_type"), None);
        assert_eq!(get(&p, "state"), Some("ST"));
        assert_eq!(get(&p, "code_challenge"), Some("CH"));
    }

    #[test]
    fn without_offline_access_nothing_asks_for_a_refresh_token() {
        let s = settings("https://idp.example.com", false);
        let p =
            params(&authorization_url(&s, "https://idp.example.com/auth?x=1", "ST", "CH").unwrap());
        assert_eq!(get(&p, "scope"), Some("openid email"));
        assert_eq!(
            get(&p, "x"),
            Some("1"),
            "existing query parameters are kept"
        );
    }

    #[test]
    fn discovery_must_match_the_issuer_and_be_secure() {
        let doc = serde_json::json!({
            "issuer": "https://idp.example.com",
            "authorization_endpoint": "https://idp.example.com/auth",
            "token_endpoint": "https://idp.example.com/token"
        });
        let e = endpoints_from_discovery(&doc, "https://idp.example.com", "", "").unwrap();
        assert_eq!(e.token, "https://idp.example.com/token");
        assert!(endpoints_from_discovery(&doc, "https://other.example.com", "", "").is_err());
        let e = endpoints_from_discovery(
            &doc,
            "https://idp.example.com",
            "",
            "https://proxy.example.com/token",
        )
        .unwrap();
        assert_eq!(e.token, "https://proxy.example.com/token");
        let insecure = serde_json::json!({"issuer": "https://idp.example.com", "authorization_endpoint": "http://idp.example.com/auth", "token_endpoint": "https://idp.example.com/token"});
        assert!(endpoints_from_discovery(&insecure, "https://idp.example.com", "", "").is_err());
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let t = UpstreamTokens {
            access_token: Some("SECRET-AT".into()),
            refresh_token: Some("SECRET-RT".into()),
            ..Default::default()
        };
        let d = format!("{t:?}");
        assert!(!d.contains("SECRET"), "{d}");
    }
}

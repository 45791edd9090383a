//! Who an OAuth client is: a dynamically registered one (its metadata sealed into its
//! `client_id`) or one identified by a Client ID Metadata Document URL. Pure rules only;
//! fetching documents lives in `cimd.rs`.

use serde::{Deserialize, Serialize};

use super::crypto::{constant_time_eq, sha256_b64, Kind, SealError, Sealer};

/// RFC 7591 caps we impose so a sealed client id stays small enough for URLs.
pub const MAX_REDIRECT_URIS: usize = 5;
pub const MAX_REDIRECT_URI_LEN: usize = 512;
pub const MAX_CLIENT_NAME_LEN: usize = 128;
pub const MAX_SCOPE_LEN: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A public client: PKCE is its only proof.
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl AuthMethod {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }
}

/// The metadata sealed inside a registered `client_id`. Short field names: it travels in
/// every authorization URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredClient {
    #[serde(rename = "r")]
    pub redirect_uris: Vec<String>,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(rename = "m")]
    pub auth_method: AuthMethod,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Issued-at; also makes two registrations with equal metadata distinct.
    #[serde(rename = "t")]
    pub issued_at: u64,
}

/// Sealed inside a client secret: which client it belongs to.
#[derive(Debug, Serialize, Deserialize)]
struct SecretPayload {
    #[serde(rename = "c")]
    client: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientSource {
    Registered,
    MetadataDocument,
}

/// A client as the authorization and token endpoints see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub auth_method: AuthMethod,
    pub source: ClientSource,
}

impl Client {
    /// The `redirect_uri` of an authorization request, checked by exact string match
    /// against the registered ones. Omitted is allowed only when exactly one is registered.
    pub fn redirect_for(&self, requested: Option<&str>) -> Option<String> {
        match requested {
            Some(r) => self.redirect_uris.iter().find(|u| u.as_str() == r).cloned(),
            None if self.redirect_uris.len() == 1 => self.redirect_uris.first().cloned(),
            None => None,
        }
    }

    pub fn is_confidential(&self) -> bool {
        self.auth_method != AuthMethod::None
    }

    /// A compact, stable binding of this client inside other sealed artifacts.
    pub fn binding(&self) -> String {
        client_binding(&self.id)
    }
}

pub fn client_binding(client_id: &str) -> String {
    sha256_b64(client_id)
}

/// A client id that names a Client ID Metadata Document rather than a registration.
pub fn is_metadata_document_id(client_id: &str) -> bool {
    crate::net::parse_http_url(client_id).is_ok()
}

/// Seals a registration into its `client_id` (never expires: clients keep their ids),
/// plus a secret bound to that id for confidential clients.
pub fn issue(
    sealer: &Sealer,
    reg: &RegisteredClient,
) -> Result<(String, Option<String>), SealError> {
    let id = sealer.seal(Kind::ClientId, reg, 0)?;
    let secret = if reg.auth_method == AuthMethod::None {
        None
    } else {
        Some(sealer.seal(
            Kind::ClientSecret,
            &SecretPayload {
                client: client_binding(&id),
            },
            0,
        )?)
    };
    Ok((id, secret))
}

/// Opens a registered `client_id`.
pub fn open_registered(sealer: &Sealer, client_id: &str) -> Result<Client, SealError> {
    let reg: RegisteredClient = sealer.open(Kind::ClientId, client_id, 0)?;
    Ok(Client {
        id: client_id.to_string(),
        name: reg.client_name,
        redirect_uris: reg.redirect_uris,
        auth_method: reg.auth_method,
        source: ClientSource::Registered,
    })
}

/// Whether `secret` is the one issued to `client_id`.
pub fn secret_matches(sealer: &Sealer, client_id: &str, secret: &str) -> bool {
    match sealer.open::<SecretPayload>(Kind::ClientSecret, secret, 0) {
        Ok(p) => constant_time_eq(&p.client, &client_binding(client_id)),
        Err(_) => false,
    }
}

/// Redirect URIs must be https, or http on a loopback host (native apps, RFC 8252), with
/// no fragment and no credentials. Returns why not, for `invalid_redirect_uri`.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(format!(
            "a redirect URI is longer than {MAX_REDIRECT_URI_LEN} characters"
        ));
    }
    let u =
        crate::net::Url::parse(uri).map_err(|e| format!("`{uri}` is not an absolute URL: {e}"))?;
    if u.fragment().is_some() {
        return Err(format!("`{uri}` has a fragment"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("`{uri}` carries credentials"));
    }
    match crate::net::parse_secure_url(uri) {
        Ok(_) => Ok(()),
        Err(crate::net::UrlError::Insecure(_)) => Err(format!(
            "`{uri}`: plain http is allowed only on a loopback host"
        )),
        Err(_) => Err(format!("`{uri}` must be https (or http on loopback)")),
    }
}

/// The host of a redirect URI, for the consent page and the trusted-host list.
pub fn redirect_host(uri: &str) -> String {
    reqwest::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn reg(method: AuthMethod) -> RegisteredClient {
        RegisteredClient {
            redirect_uris: vec![
                "https://app.example.com/cb".into(),
                "http://127.0.0.1:3000/cb".into(),
            ],
            client_name: Some("App".into()),
            auth_method: method,
            scope: None,
            issued_at: 1,
        }
    }

    #[test]
    fn a_registered_id_carries_its_metadata() {
        let s = sealer();
        let (id, secret) = issue(&s, &reg(AuthMethod::None)).unwrap();
        assert!(secret.is_none());
        let c = open_registered(&s, &id).unwrap();
        assert_eq!(c.redirect_uris.len(), 2);
        assert_eq!(c.name.as_deref(), Some("App"));
        assert!(!c.is_confidential());
    }

    #[test]
    fn a_secret_belongs_to_exactly_one_client() {
        let s = sealer();
        let (id, secret) = issue(&s, &reg(AuthMethod::ClientSecretPost)).unwrap();
        let secret = secret.unwrap();
        assert!(secret_matches(&s, &id, &secret));
        let (other, _) = issue(&s, &reg(AuthMethod::ClientSecretPost)).unwrap();
        assert!(!secret_matches(&s, &other, &secret));
        assert!(!secret_matches(&s, &id, "guess"));
        // A client id is not a secret, even though both are sealed.
        assert!(!secret_matches(&s, &id, &id));
    }

    #[test]
    fn redirect_matching_is_exact() {
        let s = sealer();
        let (id, _) = issue(&s, &reg(AuthMethod::None)).unwrap();
        let c = open_registered(&s, &id).unwrap();
        assert!(c.redirect_for(Some("https://app.example.com/cb")).is_some());
        assert!(c
            .redirect_for(Some("https://app.example.com/cb/"))
            .is_none());
        assert!(c
            .redirect_for(Some("https://app.example.com/cb?x=1"))
            .is_none());
        assert!(c.redirect_for(Some("HTTPS://app.example.com/cb")).is_none());
        // Two registered: the request must say which.
        assert!(c.redirect_for(None).is_none());
    }

    #[test]
    fn redirect_uri_rules() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "javascript:alert(1)",
            "/relative",
            "ftp://x/",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
        assert!(check_redirect_uri(&format!(
            "https://a.example/{}",
            "x".repeat(MAX_REDIRECT_URI_LEN)
        ))
        .is_err());
    }

    #[test]
    fn metadata_document_ids_are_urls() {
        assert!(is_metadata_document_id(
            "https://app.example.com/client.json"
        ));
        assert!(!is_metadata_document_id("AbC-123"));
    }
}

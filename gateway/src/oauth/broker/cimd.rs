//! Client ID Metadata Documents: a `client_id` that is an https URL names a JSON document
//! describing the client. Fetching a URL a stranger chose is a server-side request
//! forgery risk, so the rules of docs/spec-notes.md ("Broker mode") apply: https on port 443 only, no userinfo,
//! query or fragment; the resolved address must be public, checked after DNS and then
//! pinned for the connection (no second lookup an attacker could rebind); no redirects,
//! no proxy, 3 s, 5 KiB, JSON only; the document must name its own URL as `client_id`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::header;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::client::{AuthMethod, Client, ClientSource};
use super::register::validate_metadata;

/// docs/spec-notes.md, "Broker mode": 3 s timeout, 5 KiB body, cached at most 1 h, failures briefly.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Used when the document's server says nothing about caching.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Failures are remembered this long, so a flood of authorize requests naming one bad
/// URL costs one fetch, while a fixed document is picked up quickly.
pub const FAILURE_TTL: Duration = Duration::from_secs(10);
/// Entries kept at most; past this, new documents are fetched but not cached.
pub const MAX_CACHE_ENTRIES: usize = 1024;
const MAX_URL_LEN: usize = 1024;
/// Metadata fetches (DNS included) in flight at once, gateway-wide. Over it, a request
/// is refused at once: a flood of client-metadata URLs waits on nobody's resources.
pub const MAX_CONCURRENT_FETCHES: usize = 32;
/// Hosts whose resolution is remembered (answers and failures), so many document URLs
/// on one slow or dead host cost one lookup.
pub const MAX_HOST_ENTRIES: usize = 256;
pub const HOST_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CimdError {
    #[error("client_id `{0}` is not an acceptable metadata document URL: {1}")]
    BadUrl(String, String),
    #[error("client metadata document host {0} resolves to a non-public address")]
    NonPublicAddress(String),
    #[error("cannot resolve the client metadata document host {0}")]
    Unresolvable(String),
    #[error("fetching the client metadata document failed: {0}")]
    Fetch(String),
    #[error("the client metadata document is invalid: {0}")]
    Invalid(String),
    #[error(
        "too many client metadata documents are being fetched right now: try again in a moment"
    )]
    Busy,
}

/// The URL rules, checked before any network access. `dev_insecure` additionally allows
/// plain http to a loopback host on any port (tests and local development only).
pub fn check_document_url(url: &str, dev_insecure: bool) -> Result<reqwest::Url, CimdError> {
    let bad = |why: &str| CimdError::BadUrl(url.to_string(), why.to_string());
    if url.len() > MAX_URL_LEN {
        return Err(bad("too long"));
    }
    let u = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("it carries userinfo"));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad("it has a query or fragment"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    match u.scheme() {
        "https" if u.port_or_known_default() == Some(443) => {}
        "https" => return Err(bad("only port 443 is allowed")),
        "http" if dev_insecure && crate::net::is_loopback_url(&u) => {}
        "http" => return Err(bad("it must be https")),
        _ => return Err(bad("it must be https")),
    }
    if u.path() == "/" || u.path().is_empty() {
        return Err(bad("it must have a path"));
    }
    Ok(u)
}

/// Whether an address is one a metadata fetch may connect to: globally routable unicast.
/// Everything private, loopback, link-local, shared, documentation, benchmarking,
/// multicast, reserved, or an IPv6 form embedding such an IPv4 address, is refused.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0                                   // "this network"
        || a == 10                                          // private
        || (a == 100 && (64..128).contains(&b))             // shared address space (CGN)
        || a == 127                                         // loopback
        || (a == 169 && b == 254)                           // link-local (cloud metadata)
        || (a == 172 && (16..32).contains(&b))              // private
        || (a == 192 && b == 0 && c == 0)                   // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)                   // documentation
        || (a == 192 && b == 88 && c == 99)                 // 6to4 relay anycast
        || (a == 192 && b == 168)                           // private
        || (a == 198 && (18..20).contains(&b))              // benchmarking
        || (a == 198 && b == 51 && c == 100)                // documentation
        || (a == 203 && b == 0 && c == 113)                 // documentation
        || a >= 224; // multicast, reserved, broadcast
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Only global unicast (2000::/3) is routable; loopback, unspecified, ULA (fc00::/7),
    // link-local (fe80::/10), multicast, NAT64 (64:ff9b::/96) all fall outside it.
    let global_unicast = (s[0] & 0xe000) == 0x2000;
    // 2001::/23 is IETF special (Teredo, benchmarking, ORCHID), 2001:db8::/32 is
    // documentation, 2002::/16 is 6to4 (embeds an arbitrary IPv4 address).
    let special = (s[0] == 0x2001 && (s[1] < 0x0200 || s[1] == 0x0db8)) || s[0] == 0x2002;
    global_unicast && !special
}

/// How long a fetched document may be reused, from its `Cache-Control`.
pub fn cache_ttl(cache_control: Option<&str>) -> Duration {
    let Some(cc) = cache_control else {
        return DEFAULT_CACHE_TTL;
    };
    let mut ttl = DEFAULT_CACHE_TTL;
    for directive in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if directive == "no-store" || directive == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(v) = directive.strip_prefix("max-age=") {
            ttl = v
                .trim_matches('"')
                .parse::<u64>()
                .map(Duration::from_secs)
                .unwrap_or(Duration::ZERO);
        }
    }
    ttl.min(MAX_CACHE_TTL)
}

/// Checks a fetched document against the URL it came from.
pub fn parse_document(url: &str, body: &[u8]) -> Result<Client, CimdError> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| CimdError::Invalid(format!("not JSON: {e}")))?;
    let Value::Object(doc) = doc else {
        return Err(CimdError::Invalid("not a JSON object".into()));
    };
    if doc.get("client_id").and_then(Value::as_str) != Some(url) {
        return Err(CimdError::Invalid(
            "its client_id is not the URL it was fetched from".into(),
        ));
    }
    // A document cannot hold a shared secret: such clients are public (PKCE only).
    if let Some(m) = doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
    {
        if m != "none" {
            return Err(CimdError::Invalid(format!(
                "token_endpoint_auth_method `{m}` is not supported for metadata documents (none)"
            )));
        }
    }
    let reg = validate_metadata(&doc, 0).map_err(|e| CimdError::Invalid(e.description))?;
    Ok(Client {
        id: url.to_string(),
        name: reg.client_name,
        redirect_uris: reg.redirect_uris,
        auth_method: AuthMethod::None,
        source: ClientSource::MetadataDocument,
    })
}

/// A cached answer and when it stops being valid.
type CacheEntry = (Instant, Result<Client, CimdError>);
/// A host's resolution and when it stops being valid.
type HostEntry = (Instant, Result<Vec<IpAddr>, CimdError>);

/// Fetches and caches metadata documents.
///
/// Name resolution is glibc's `getaddrinfo` on tokio's blocking pool, bounded: every
/// lookup holds a permit of one gateway-wide semaphore until the lookup itself returns
/// (not merely until its request gave up), so at most [`MAX_CONCURRENT_FETCHES`] blocking
/// threads ever wait on DNS, whatever DNS does; the request itself waits at most
/// [`FETCH_TIMEOUT`] for resolution and fetch together. docs/decisions.md says why this
/// rather than an async resolver crate.
pub struct CimdResolver {
    dev_insecure: bool,
    cache: Mutex<HashMap<String, CacheEntry>>,
    hosts: Mutex<HashMap<String, HostEntry>>,
    permits: Arc<Semaphore>,
}

impl CimdResolver {
    pub fn new(dev_insecure: bool) -> Self {
        Self::with_capacity(dev_insecure, MAX_CONCURRENT_FETCHES)
    }

    pub fn with_capacity(dev_insecure: bool, max_fetches: usize) -> Self {
        if dev_insecure {
            tracing::warn!("server.oauth.dev_allow_insecure_client_metadata is ON: client metadata documents may be fetched over plain http from loopback. NEVER use this in production");
        }
        Self {
            dev_insecure,
            cache: Mutex::new(HashMap::new()),
            hosts: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(max_fetches)),
        }
    }

    pub async fn resolve(&self, client_id: &str) -> Result<Client, CimdError> {
        if let Some(hit) = self.cached(client_id) {
            return hit;
        }
        // Checked before taking a permit: a malformed URL costs nothing.
        let url = check_document_url(client_id, self.dev_insecure)?;
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            tracing::info!("client metadata fetch refused: the concurrent fetch cap is reached");
            return Err(CimdError::Busy);
        };
        let permit = Arc::new(permit);
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, self.fetch(client_id, url, &permit))
            .await
            .unwrap_or_else(|_| {
                Err(CimdError::Fetch(format!(
                    "no answer within {} s (name resolution included)",
                    FETCH_TIMEOUT.as_secs()
                )))
            });
        drop(permit);
        let (result, ttl) = match fetched {
            Ok((client, ttl)) => (Ok(client), ttl),
            Err(e) => (Err(e), FAILURE_TTL),
        };
        if let Err(e) = &result {
            tracing::info!(client_id, error = ?e.to_string(), "client metadata document refused");
        }
        self.store(client_id, &result, ttl);
        result
    }

    fn cached(&self, client_id: &str) -> Option<Result<Client, CimdError>> {
        let cache = self.cache.lock().ok()?;
        let (until, res) = cache.get(client_id)?;
        (Instant::now() < *until).then(|| res.clone())
    }

    fn store(&self, client_id: &str, result: &Result<Client, CimdError>, ttl: Duration) {
        if let Ok(mut cache) = self.cache.lock() {
            remember(
                &mut cache,
                client_id,
                result.clone(),
                ttl,
                MAX_CACHE_ENTRIES,
            );
        }
    }

    /// The host's addresses: cached, or looked up on the blocking pool under `permit`.
    async fn lookup(
        &self,
        host: &str,
        port: u16,
        permit: &Arc<OwnedSemaphorePermit>,
    ) -> Result<Vec<IpAddr>, CimdError> {
        if let Some((until, res)) = self.hosts.lock().ok().and_then(|h| h.get(host).cloned()) {
            if Instant::now() < until {
                return res;
            }
        }
        let name = host.to_string();
        let held = Arc::clone(permit);
        let looked = tokio::task::spawn_blocking(move || {
            // The permit lives as long as this thread waits on DNS.
            let _held = held;
            (name.as_str(), port)
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip()).collect::<Vec<_>>())
        })
        .await;
        let res = match looked {
            Ok(Ok(ips)) if !ips.is_empty() => Ok(ips),
            _ => Err(CimdError::Unresolvable(host.to_string())),
        };
        let ttl = if res.is_ok() { HOST_TTL } else { FAILURE_TTL };
        if let Ok(mut hosts) = self.hosts.lock() {
            remember(&mut hosts, host, res.clone(), ttl, MAX_HOST_ENTRIES);
        }
        res
    }

    async fn fetch(
        &self,
        client_id: &str,
        url: reqwest::Url,
        permit: &Arc<OwnedSemaphorePermit>,
    ) -> Result<(Client, Duration), CimdError> {
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let addr = self.pick_address(&url, &host, port, permit).await?;

        // Pin the connection to the address just checked: reqwest would otherwise
        // resolve the name again, and a rebinding DNS server could answer differently.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .resolve(host.trim_start_matches('[').trim_end_matches(']'), addr)
            .build()
            .map_err(|e| CimdError::Fetch(e.to_string()))?;
        let mut resp = http
            .get(url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| CimdError::Fetch(e.without_url().to_string()))?;
        if resp.status() != reqwest::StatusCode::OK {
            // Redirects land here too: they are not followed.
            return Err(CimdError::Fetch(format!("HTTP {}", resp.status().as_u16())));
        }
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mime = ctype
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(CimdError::Fetch(format!(
                "content type `{mime}` is not JSON"
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(CimdError::Fetch(format!(
                "larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        let ttl = cache_ttl(
            resp.headers()
                .get(header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        );
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| CimdError::Fetch(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(CimdError::Fetch(format!(
                    "larger than {MAX_DOCUMENT_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((parse_document(client_id, &body)?, ttl))
    }

    /// Resolves the host and insists that every answer is public (so round-robin
    /// answers cannot smuggle a private address in), then returns the first.
    async fn pick_address(
        &self,
        url: &reqwest::Url,
        host: &str,
        port: u16,
        permit: &Arc<OwnedSemaphorePermit>,
    ) -> Result<SocketAddr, CimdError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => self
                .lookup(bare, port, permit)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        };
        let first = *addrs
            .first()
            .ok_or_else(|| CimdError::Unresolvable(host.to_string()))?;
        let dev_loopback = self.dev_insecure && url.scheme() == "http";
        let allowed = |a: &SocketAddr| {
            if dev_loopback {
                a.ip().is_loopback()
            } else {
                is_public_address(a.ip())
            }
        };
        if !addrs.iter().all(allowed) {
            return Err(CimdError::NonPublicAddress(host.to_string()));
        }
        Ok(first)
    }
}

/// Puts `value` in a bounded TTL map: expired entries go first; when still full, the
/// value is not remembered (it is fetched again next time).
fn remember<V>(
    map: &mut HashMap<String, (Instant, V)>,
    key: &str,
    value: V,
    ttl: Duration,
    max: usize,
) {
    if ttl.is_zero() {
        return;
    }
    let now = Instant::now();
    if map.len() >= max {
        map.retain(|_, (until, _)| *until > now);
    }
    if map.len() < max {
        map.insert(key.to_string(), (now + ttl, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn over_the_fetch_cap_a_request_is_refused_at_once() {
        let r = CimdResolver::with_capacity(false, 0);
        assert_eq!(
            r.resolve("https://client.example.com/meta.json").await,
            Err(CimdError::Busy)
        );
        // A URL that breaks the rules is refused for that, before any permit.
        assert!(matches!(
            r.resolve("http://client.example.com/meta.json").await,
            Err(CimdError::BadUrl(..))
        ));
        // Busy is not remembered: with a permit free, the next try goes ahead.
        assert!(r.cached("https://client.example.com/meta.json").is_none());
    }

    #[test]
    fn bounded_maps_drop_expired_entries_and_then_stop_growing() {
        let mut m: HashMap<String, (Instant, u8)> = HashMap::new();
        remember(&mut m, "a", 1, Duration::from_secs(60), 2);
        remember(&mut m, "b", 2, Duration::from_secs(60), 2);
        remember(&mut m, "c", 3, Duration::from_secs(60), 2);
        assert_eq!(m.len(), 2);
        assert!(!m.contains_key("c"));
        remember(&mut m, "z", 9, Duration::ZERO, 2);
        assert!(!m.contains_key("z"));
        m.insert("a".into(), (Instant::now() - Duration::from_secs(1), 1));
        remember(&mut m, "c", 3, Duration::from_secs(60), 2);
        assert!(m.contains_key("c") && !m.contains_key("a"));
    }

    #[test]
    fn url_rules() {
        assert!(check_document_url("https://app.example.com/oauth/client.json", false).is_ok());
        assert!(check_document_url("https://app.example.com:443/c.json", false).is_ok());
        for bad in [
            "http://app.example.com/c.json",
            "https://app.example.com:8443/c.json",
            "https://user@app.example.com/c.json",
            "https://app.example.com/c.json?x=1",
            "https://app.example.com/c.json#f",
            "https://app.example.com/",
            "ftp://app.example.com/c.json",
            "http://127.0.0.1:8080/c.json",
        ] {
            assert!(check_document_url(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_dev_flag_allows_http_on_loopback_only() {
        assert!(check_document_url("http://127.0.0.1:8080/c.json", true).is_ok());
        assert!(check_document_url("http://localhost:8080/c.json", true).is_ok());
        assert!(check_document_url("http://app.example.com/c.json", true).is_err());
    }

    #[test]
    fn special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "2001:db8::1",
            "2002:a00:1::",
            "64:ff9b::a00:1",
            "ff02::1",
        ] {
            assert!(!is_public_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public_address(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn cache_control_is_honoured_up_to_an_hour() {
        assert_eq!(
            cache_ttl(Some("public, max-age=60")),
            Duration::from_secs(60)
        );
        assert_eq!(cache_ttl(Some("max-age=999999")), MAX_CACHE_TTL);
        assert_eq!(cache_ttl(Some("no-store")), Duration::ZERO);
        assert_eq!(cache_ttl(Some("max-age=junk")), Duration::ZERO);
        assert_eq!(cache_ttl(None), DEFAULT_CACHE_TTL);
    }

    #[test]
    fn a_document_must_name_its_own_url() {
        let url = "https://app.example.com/c.json";
        let good = serde_json::json!({"client_id": url, "redirect_uris": ["https://app.example.com/cb"], "client_name": "App"});
        let c = parse_document(url, good.to_string().as_bytes()).unwrap();
        assert_eq!(c.auth_method, AuthMethod::None);
        assert_eq!(c.source, ClientSource::MetadataDocument);
        let other = serde_json::json!({"client_id": "https://evil.example.com/c.json", "redirect_uris": ["https://app.example.com/cb"]});
        assert!(matches!(
            parse_document(url, other.to_string().as_bytes()),
            Err(CimdError::Invalid(_))
        ));
        let secret = serde_json::json!({"client_id": url, "redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "client_secret_basic"});
        assert!(parse_document(url, secret.to_string().as_bytes()).is_err());
        assert!(parse_document(url, b"<html>").is_err());
    }

    #[tokio::test]
    async fn private_and_loopback_hosts_are_refused_before_connecting() {
        let r = CimdResolver::new(false);
        // An IP literal in a URL is "resolved" without DNS and checked the same way.
        assert!(matches!(
            r.resolve("https://10.0.0.1/c.json").await,
            Err(CimdError::NonPublicAddress(_))
        ));
        assert!(matches!(
            r.resolve("https://127.0.0.1/c.json").await,
            Err(CimdError::NonPublicAddress(_))
        ));
        assert!(matches!(
            r.resolve("https://[::1]/c.json").await,
            Err(CimdError::NonPublicAddress(_))
        ));
        assert!(matches!(
            r.resolve("https://localhost/c.json").await,
            Err(CimdError::NonPublicAddress(_))
        ));
        // The failure is cached: the second answer is the same.
        assert!(matches!(
            r.resolve("https://10.0.0.1/c.json").await,
            Err(CimdError::NonPublicAddress(_))
        ));
    }
}

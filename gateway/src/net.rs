//! URL and host rules for text from the network and from the configuration: web
//! origins (the DNS-rebinding `Origin` check), loopback hosts, and "https, or plain
//! http on loopback" URLs.
//!
//! Everything is parsed with the `url` crate and compared as values (scheme, [`Host`],
//! port): never by prefix, so `http://127.evil.example` is a foreign domain, not a
//! loopback address. One home for these rules; every other module asks here.

use std::net::IpAddr;

use axum::http::{header, HeaderMap, HeaderValue};

pub use url::{Host, Url};

/// Why a URL from the configuration or a client is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{0}` is not an absolute URL: {1}")]
    NotAUrl(String, url::ParseError),
    #[error("`{0}` is not an http(s) URL")]
    NotHttp(String),
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("`{0}` must be https (plain http is allowed only on a loopback host)")]
    Insecure(String),
}

/// Why an `Origin` header (or a configured origin) is not one origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// `Origin: null`: an opaque origin (sandboxed frame, `file:`), which names no site.
    #[error("the opaque origin `null` is never trusted")]
    Null,
    #[error("not an http(s) origin (scheme://host[:port])")]
    Malformed,
}

/// Loopback: an IP literal in `127.0.0.0/8` or `::1` (parsed, so `127.0.0.1.evil.example`
/// is a domain), or exactly the name `localhost`. `url` lower-cases domains already.
pub fn is_loopback_host<S: AsRef<str>>(host: &Host<S>) -> bool {
    match host {
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
        Host::Domain(d) => d.as_ref().eq_ignore_ascii_case("localhost"),
    }
}

/// Whether a parsed URL's host is loopback (see [`is_loopback_host`]).
pub fn is_loopback_url(url: &Url) -> bool {
    url.host().is_some_and(|h| is_loopback_host(&h))
}

/// Whether a listen address (`server.address`: an IP literal, `[::1]`, or a name) is
/// loopback. A name other than `localhost` is not: it may resolve anywhere.
pub fn is_loopback_address(address: &str) -> bool {
    let bare = address
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(address);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// Parses an absolute http(s) URL with a host.
pub fn parse_http_url(text: &str) -> Result<Url, UrlError> {
    let url = Url::parse(text).map_err(|e| UrlError::NotAUrl(text.to_string(), e))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::NotHttp(text.to_string()));
    }
    if url.host().is_none() {
        return Err(UrlError::NoHost(text.to_string()));
    }
    Ok(url)
}

/// `https`, or plain `http` to a loopback host (local use, tests, native-app redirects).
pub fn parse_secure_url(text: &str) -> Result<Url, UrlError> {
    let url = parse_http_url(text)?;
    if url.scheme() == "https" || is_loopback_url(&url) {
        Ok(url)
    } else {
        Err(UrlError::Insecure(text.to_string()))
    }
}

/// Whether `text` is an absolute https URL (TLS ends somewhere in front of the gateway).
pub fn is_https_url(text: &str) -> bool {
    Url::parse(text).is_ok_and(|u| u.scheme() == "https")
}

/// `host[:port]` of a URL as it would appear in a `Host` header (IPv6 in brackets, the
/// port only when one was written and is not the scheme's default).
pub fn authority(url: &Url) -> Option<String> {
    let host = url.host()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// A web origin (RFC 6454): scheme, host and port, compared as values. Default ports
/// are filled in, so `http://localhost` and `http://LOCALHOST:80` are one origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebOrigin {
    scheme: String,
    host: Host<String>,
    port: u16,
}

impl WebOrigin {
    /// An `Origin` header value, or a configured origin: `scheme://host[:port]` and
    /// nothing else (a trailing `/` is tolerated in configuration). `null` is refused.
    pub fn parse(text: &str) -> Result<Self, OriginError> {
        if text.trim().eq_ignore_ascii_case("null") {
            return Err(OriginError::Null);
        }
        let url = Url::parse(text).map_err(|_| OriginError::Malformed)?;
        let bare = url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        if !bare {
            return Err(OriginError::Malformed);
        }
        Self::of(&url).ok_or(OriginError::Malformed)
    }

    /// The origin of an http(s) URL (a configured public URL, which may have a path).
    pub fn of(url: &Url) -> Option<Self> {
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(Self {
            scheme: url.scheme().to_string(),
            host: url.host()?.to_owned(),
            port: url.port_or_known_default()?,
        })
    }

    /// The origin of a configured URL; `None` when it is empty or not http(s).
    pub fn of_text(text: &str) -> Option<Self> {
        Url::parse(text).ok().as_ref().and_then(Self::of)
    }

    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// `scheme://host[:port]`, the port omitted when it is the scheme's default: the
    /// form browsers send, and the one echoed in `Access-Control-Allow-Origin`.
    pub fn serialize(&self) -> String {
        let default = match self.scheme.as_str() {
            "https" => 443,
            _ => 80,
        };
        if self.port == default {
            format!("{}://{}", self.scheme, self.host)
        } else {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// Which origins a gateway trusts (docs/spec-notes.md, "Transports").
/// Built once per configuration generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// `server.allowed_origins` contains `"*"`.
    pub any: bool,
    /// `server.allowed_origins` and the gateway's own public origins.
    pub listed: Vec<WebOrigin>,
    /// The listener is on loopback, so loopback origins are the gateway's own.
    pub loopback: bool,
}

/// What the `Origin` check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No `Origin` header (not a browser): allowed, no CORS headers.
    Absent,
    /// Allowed; the serialized origin to echo in CORS headers.
    Allowed(String),
    /// Refused (`403`), with the reason to tell the client.
    Denied(OriginRefusal),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginRefusal {
    #[error("more than one Origin header")]
    Repeated,
    #[error("the Origin header is not one origin: {0}")]
    Unreadable(OriginError),
    #[error("Origin {0} is not allowed; add it to server.allowed_origins")]
    NotAllowed(String),
}

impl OriginPolicy {
    /// `allowed` is `server.allowed_origins` (entries that do not parse are skipped:
    /// configuration validation reports them); `public_urls` the gateway's own URLs.
    pub fn new<'a>(
        allowed: &[String],
        public_urls: impl IntoIterator<Item = &'a str>,
        loopback_listener: bool,
    ) -> Self {
        let any = allowed.iter().any(|a| a == "*");
        let listed = allowed
            .iter()
            .filter_map(|a| WebOrigin::parse(a).ok())
            .chain(public_urls.into_iter().filter_map(WebOrigin::of_text))
            .collect();
        Self {
            any,
            listed,
            loopback: loopback_listener,
        }
    }

    /// Judges the `Origin` header values of one request (all of them: a repeated
    /// header is refused rather than one copy picked).
    pub fn check<'v>(&self, values: impl IntoIterator<Item = &'v [u8]>) -> OriginVerdict {
        let mut values = values.into_iter();
        let Some(first) = values.next() else {
            return OriginVerdict::Absent;
        };
        if values.next().is_some() {
            return OriginVerdict::Denied(OriginRefusal::Repeated);
        }
        let parsed = std::str::from_utf8(first)
            .map_err(|_| OriginError::Malformed)
            .and_then(WebOrigin::parse);
        let origin = match parsed {
            Ok(o) => o,
            Err(e) => return OriginVerdict::Denied(OriginRefusal::Unreadable(e)),
        };
        if self.any || self.listed.contains(&origin) || (self.loopback && origin.is_loopback()) {
            OriginVerdict::Allowed(origin.serialize())
        } else {
            OriginVerdict::Denied(OriginRefusal::NotAllowed(origin.serialize()))
        }
    }
}

/// The `Origin` header values of a request, all of them, for [`OriginPolicy::check`]
/// (a repeated header is refused, never one copy picked).
pub fn origin_values(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::ORIGIN)
        .iter()
        .map(HeaderValue::as_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(policy: &OriginPolicy, origin: &str) -> OriginVerdict {
        policy.check([origin.as_bytes()])
    }

    #[test]
    fn every_origin_header_is_judged() {
        let mut h = HeaderMap::new();
        h.append(header::ORIGIN, HeaderValue::from_static("http://localhost"));
        let policy = OriginPolicy::new(&[], [], true);
        assert!(matches!(
            policy.check(origin_values(&h)),
            OriginVerdict::Allowed(_)
        ));
        h.append(header::ORIGIN, HeaderValue::from_static("http://localhost"));
        assert!(matches!(
            policy.check(origin_values(&h)),
            OriginVerdict::Denied(_)
        ));
    }

    #[test]
    fn origins_are_judged_by_exact_host() {
        let loopback = OriginPolicy::new(&[], [], true);
        // (origin, allowed while listening on loopback)
        let table = [
            ("http://localhost:6274", true),
            ("http://localhost", true),
            ("HTTP://LOCALHOST:3000", true),
            ("https://localhost", true),
            ("http://127.0.0.1:8080", true),
            ("http://127.1.2.3", true),
            ("http://[::1]:3000", true),
            ("http://[::1]", true),
            ("http://localhost:6274/", true),
            ("http://127.evil.example", false),
            ("http://127.0.0.1.evil.example", false),
            ("http://localhost.evil.example", false),
            ("http://evil.example", false),
            ("http://[::2]", false),
            ("http://128.0.0.1", false),
            ("http://0.0.0.0", false),
            ("null", false),
            ("NULL", false),
            ("", false),
            ("localhost", false),
            ("http://", false),
            ("file:///etc/passwd", false),
            ("http://user@localhost", false),
            ("http://localhost/path", false),
            ("http://localhost?x=1", false),
            ("ftp://localhost", false),
        ];
        for (origin, want) in table {
            let got = judge(&loopback, origin);
            assert_eq!(
                matches!(got, OriginVerdict::Allowed(_)),
                want,
                "{origin}: {got:?}"
            );
        }
        // Not listening on loopback: loopback origins are foreign too.
        let public = OriginPolicy::new(&[], [], false);
        assert!(matches!(
            judge(&public, "http://localhost:6274"),
            OriginVerdict::Denied(OriginRefusal::NotAllowed(_))
        ));
    }

    #[test]
    fn listed_and_public_origins_match_as_values() {
        let policy = OriginPolicy::new(
            &[
                "https://claude.ai/".to_string(),
                "not an origin".to_string(),
            ],
            ["https://mcp.example.com/mcp/", ""],
            false,
        );
        assert_eq!(
            judge(&policy, "https://claude.ai"),
            OriginVerdict::Allowed("https://claude.ai".into())
        );
        assert_eq!(
            judge(&policy, "https://CLAUDE.ai:443"),
            OriginVerdict::Allowed("https://claude.ai".into())
        );
        assert!(matches!(
            judge(&policy, "https://mcp.example.com"),
            OriginVerdict::Allowed(_)
        ));
        for foreign in [
            "http://claude.ai",
            "https://claude.ai:8443",
            "https://claude.ai.evil.example",
            "https://mcp.example.com.evil.example",
        ] {
            assert!(
                matches!(judge(&policy, foreign), OriginVerdict::Denied(_)),
                "{foreign}"
            );
        }
        let any = OriginPolicy::new(&["*".to_string()], [], false);
        assert!(matches!(
            judge(&any, "https://x.y"),
            OriginVerdict::Allowed(_)
        ));
        assert!(
            matches!(judge(&any, "null"), OriginVerdict::Denied(_)),
            "`*` still refuses the opaque origin"
        );
    }

    #[test]
    fn absent_repeated_and_unreadable_origins() {
        let policy = OriginPolicy::new(&["*".to_string()], [], true);
        assert_eq!(policy.check(std::iter::empty()), OriginVerdict::Absent);
        assert_eq!(
            policy.check([
                b"http://localhost".as_slice(),
                b"http://localhost".as_slice()
            ]),
            OriginVerdict::Denied(OriginRefusal::Repeated)
        );
        assert!(matches!(
            policy.check([b"http://\xff".as_slice()]),
            OriginVerdict::Denied(OriginRefusal::Unreadable(_))
        ));
        assert_eq!(
            judge(&policy, "null"),
            OriginVerdict::Denied(OriginRefusal::Unreadable(OriginError::Null))
        );
    }

    #[test]
    fn secure_urls_are_https_or_loopback_http() {
        for ok in [
            "https://idp.example.com",
            "https://idp",
            "http://127.0.0.1:9000/x",
            "http://localhost",
            "http://LOCALHOST:8080/cb",
            "http://[::1]:3030/callback",
        ] {
            assert!(parse_secure_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example.com",
            "http://localhost.evil.com",
            "http://127.evil.example",
            "http://127.0.0.1.evil.example/cb",
            "https://",
            "ftp://localhost",
            "localhost:8080",
            "",
        ] {
            assert!(parse_secure_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        for (a, want) in [
            ("127.0.0.1", true),
            ("127.9.9.9", true),
            ("::1", true),
            ("[::1]", true),
            ("localhost", true),
            ("0.0.0.0", false),
            ("::", false),
            ("127.evil.example", false),
            ("10.0.0.1", false),
        ] {
            assert_eq!(is_loopback_address(a), want, "{a}");
        }
    }

    #[test]
    fn authority_and_serialization() {
        let u = Url::parse("https://mcp.example.com:8443/mcp").unwrap();
        assert_eq!(authority(&u).as_deref(), Some("mcp.example.com:8443"));
        let u = Url::parse("http://[::1]/x").unwrap();
        assert_eq!(authority(&u).as_deref(), Some("[::1]"));
        assert_eq!(
            WebOrigin::parse("http://[::1]:3000").unwrap().serialize(),
            "http://[::1]:3000"
        );
        assert!(is_https_url("HTTPS://x.example"));
        assert!(!is_https_url("https//x"));
    }
}

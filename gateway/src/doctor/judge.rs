//! The checks themselves: each takes what the server answered and says whether a client
//! gets through, and if not, why and what to change. No I/O here (`walk.rs` fetches);
//! nothing is chmcp-specific in what is required, only in some hints.

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use super::challenge;
use super::report::Check;
use crate::net::{is_loopback_url, Url};

/// What one HTTP exchange returned (or why there was no answer).
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// All values of a header, joined as one list (repeated headers are one list, RFC 9110 §5.3).
    fn header_list(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `error: error_description` of an RFC 6749-style JSON error body, else the start of
    /// the body.
    fn error_text(&self) -> String {
        if let Some(v) = self.json() {
            let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            match (field("error"), field("error_description")) {
                (Some(e), Some(d)) => return format!("{e}: {d}"),
                (Some(e), None) => return e,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&self.body);
        let short: String = text.chars().take(200).collect();
        if short.trim().is_empty() {
            "(empty body)".to_string()
        } else {
            short.trim().to_string()
        }
    }
}

/// A fetch: the answer, or the transport error's text.
pub type Outcome = Result<Fetched, String>;

/// The browser origin the CORS checks send unless `--origin` names one: the MCP
/// Inspector's web UI (its default address), the commonest browser-based MCP client.
pub const BROWSER_ORIGIN: &str = "http://localhost:6274";
/// The non-safelisted headers a browser MCP client sends, as its preflight lists them.
pub const BROWSER_REQUEST_HEADERS: [&str; 3] =
    ["authorization", "content-type", "mcp-protocol-version"];
/// The protocol version the `initialize` probe offers (any supported one would do).
pub const PROBE_PROTOCOL_VERSION: &str = "2025-06-18";
/// A clock more than this far from the server's makes fresh tokens look expired
/// (or not yet valid) to verifiers that allow the usual 60 s leeway.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;
/// Certificates closer than this to expiry are a warning: renewals that stall are
/// found while there is still time.
pub const CERT_WARN_DAYS: i64 = 14;

/// The body of the unauthenticated `initialize` every client starts with.
pub fn initialize_request() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROBE_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "chmcp-gateway-doctor", "version": env!("CARGO_PKG_VERSION")},
        },
    })
}

fn unreachable_check(id: &'static str, what: &str, url: &str, err: &str) -> Check {
    Check::fail(
        id,
        format!("{what} {url}: no answer"),
        err.to_string(),
        "check that the host name resolves, the port is open and nothing in between drops the request",
    )
}

// ---------------------------------------------------------------------------------------
// 1. The challenge

/// The unauthenticated POST: a `401` whose `WWW-Authenticate` is a Bearer challenge,
/// ideally naming the metadata (`resource_metadata`, RFC 9728 §5.1). Returns the
/// metadata URL when the challenge names one.
pub fn challenge(outcome: &Outcome, url: &str) -> (Check, Option<String>) {
    const ID: &str = "challenge";
    let r = match outcome {
        Ok(r) => r,
        Err(e) => return (unreachable_check(ID, "POST", url, e), None),
    };
    let said = format!("POST {url} without a token: {}", r.status);
    match r.status {
        401 => {}
        200..=299 => {
            return (
                Check::fail(
                    ID,
                    said,
                    "the server answers without asking for a token, so clients never start the sign-in",
                    "enable OAuth on the server (chmcp: server.oauth.enabled: true); if this URL is meant to be open, clients need no sign-in and the rest does not apply",
                ),
                None,
            )
        }
        301 | 302 | 303 | 307 | 308 => {
            let to = r.header("location").unwrap_or("(no Location)");
            return (
                Check::fail(
                    ID,
                    format!("{said}, redirect to {to}"),
                    "clients do not follow redirects on the MCP endpoint reliably (a POST may turn into a GET)",
                    format!("paste the final URL ({to}) into the client instead"),
                ),
                None,
            );
        }
        404 => {
            return (
                Check::fail(
                    ID,
                    said,
                    "nothing is served at this path",
                    "check the path: chmcp serves /mcp, or /mcp/{cluster} in multi-cluster mode; other servers often use /mcp or /sse",
                ),
                None,
            )
        }
        status => {
            return (
                Check::fail(
                    ID,
                    format!("{said} ({})", r.error_text()),
                    format!("clients start the sign-in only on 401; {status} ends the connection attempt"),
                    "answer requests without a token with 401 and a WWW-Authenticate: Bearer challenge",
                ),
                None,
            )
        }
    }
    let header = r.header_list("www-authenticate");
    if header.is_empty() {
        return (
            Check::fail(
                ID,
                format!("{said}, but no WWW-Authenticate header"),
                "clients learn where to sign in from the challenge (RFC 9728 §5.1) and give up without it",
                "send WWW-Authenticate: Bearer resource_metadata=\"<URL of the protected-resource metadata>\"; behind a proxy, make sure it passes the header through",
            ),
            None,
        );
    }
    let Some(bearer) = challenge::bearer(&header) else {
        return (
            Check::fail(
                ID,
                format!("{said}, WWW-Authenticate: {header}"),
                "no Bearer challenge: MCP clients sign in with OAuth bearer tokens only",
                "send a Bearer challenge (WWW-Authenticate: Bearer resource_metadata=\"...\")",
            ),
            None,
        );
    };
    let error_note = match bearer.param("error") {
        None => String::new(),
        Some(e @ ("invalid_request" | "invalid_token" | "insufficient_scope")) => {
            format!(", error=\"{e}\"")
        }
        Some(other) => {
            return (
                Check::fail(
                    ID,
                    format!("{said}, Bearer error=\"{other}\""),
                    "the error code is none of RFC 6750 §3.1's (invalid_request, invalid_token, insufficient_scope)",
                    "use one of RFC 6750's error codes, or none for a request without a token",
                ).warning(),
                bearer.param("resource_metadata").map(str::to_string),
            )
        }
    };
    match bearer.param("resource_metadata") {
        None => (
            Check::fail(
                ID,
                format!("{said}, Bearer challenge without resource_metadata{error_note}"),
                "clients must then guess the metadata URL from the well-known paths (older clients do not)",
                "add resource_metadata=\"<metadata URL>\" to the challenge (RFC 9728 §5.1)",
            ).warning(),
            None,
        ),
        Some(m) if Url::parse(m).is_err() => (
            Check::fail(
                ID,
                format!("{said}, resource_metadata=\"{m}\""),
                "resource_metadata is not an absolute URL",
                "make resource_metadata the full https URL of the metadata document",
            ),
            None,
        ),
        Some(m) => (
            Check::pass(
                ID,
                format!("{said}, Bearer resource_metadata=\"{m}\"{error_note}"),
            ),
            Some(m.to_string()),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// 2. Protected-resource metadata (RFC 9728)

/// The two well-known URLs of a resource's metadata: the RFC 9728 §3.1 path-inserted
/// form (`None` when the URL has no path), and the root form.
pub fn resource_metadata_urls(resource: &Url) -> (Option<Url>, Url) {
    let mut root = resource.clone();
    root.set_path("/.well-known/oauth-protected-resource");
    root.set_query(None);
    root.set_fragment(None);
    let path = resource.path();
    let inserted = (path != "/" && !path.is_empty()).then(|| {
        let mut u = root.clone();
        u.set_path(&format!("/.well-known/oauth-protected-resource{path}"));
        u
    });
    (inserted, root)
}

/// How `got` differs from `want`, in the words a person can act on.
pub fn url_difference(got: &str, want: &str) -> String {
    if got.trim_end_matches('/') == want.trim_end_matches('/') {
        let (with, without) = if got.ends_with('/') {
            ("the server's", "yours")
        } else {
            ("yours", "the server's")
        };
        return format!("they differ only by a trailing slash: {with} has it, {without} does not");
    }
    match (Url::parse(got), Url::parse(want)) {
        (Ok(g), Ok(w)) if g.scheme() != w.scheme() => format!(
            "the scheme differs ({} vs {}){}",
            g.scheme(),
            w.scheme(),
            if g.scheme() == "http" {
                ": TLS probably ends at a proxy and the server does not know its public URL is https"
            } else {
                ""
            }
        ),
        (Ok(g), Ok(w)) if g.host_str() != w.host_str() || g.port() != w.port() => format!(
            "the host differs ({} vs {}): the server names another public address",
            crate::net::authority(&g).unwrap_or_default(),
            crate::net::authority(&w).unwrap_or_default()
        ),
        (Ok(g), Ok(w)) if w.path().starts_with(g.path().trim_end_matches('/')) => format!(
            "the server names a parent path ({} vs {}): one shared identifier for several endpoints; the official SDKs tolerate a parent, RFC 9728 §3.3 and stricter clients do not",
            g.path(),
            w.path()
        ),
        (Ok(g), Ok(w)) => format!(
            "the path differs ({} vs {}): the wrong endpoint pasted, or the server names another one",
            g.path(),
            w.path()
        ),
        _ => "the server's value is not an absolute URL".to_string(),
    }
}

/// The metadata fields a client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceMetadata {
    pub resource: String,
    pub authorization_servers: Vec<String>,
    /// `scopes_supported`: what a client asks for when the challenge names no `scope`.
    pub scopes: Vec<String>,
}

/// Which of the well-known forms a document was fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataForm {
    /// The URL named by the challenge.
    Challenge,
    /// `/.well-known/oauth-protected-resource/<path>` (RFC 9728 §3.1).
    PathInserted,
    /// `/.well-known/oauth-protected-resource`.
    Root,
}

impl MetadataForm {
    pub fn id(self) -> &'static str {
        match self {
            MetadataForm::Challenge => "resource_metadata.challenge_url",
            MetadataForm::PathInserted => "resource_metadata.path_inserted",
            MetadataForm::Root => "resource_metadata.root",
        }
    }
}

const RESOURCE_FIX: &str = "make the metadata's `resource` exactly the URL people paste into the client (chmcp: with sealed tokens each endpoint's URL under server.oauth.public_auth_server_url; with token_mode: passthrough server.oauth.public_resource_url, or leave it empty to name each endpoint's own URL)";

/// One metadata document: found, JSON, `resource` exactly the pasted URL, at least one
/// authorization server. `pasted` is the URL as the person typed it.
///
/// The root form of a URL with a path describes the origin's resource, which may be
/// another resource (RFC 9728 §3.1); clients read it only when the path form is missing,
/// so `path_form_ok` says whether a mismatch there matters.
pub fn resource_metadata(
    form: MetadataForm,
    url: &str,
    outcome: &Outcome,
    pasted: &str,
    path_form_ok: bool,
) -> (Check, Option<ResourceMetadata>) {
    let id = form.id();
    let r = match outcome {
        Ok(r) => r,
        Err(e) if url.starts_with("https:") && pasted.starts_with("http:") && is_tls_error(e) => {
            return (
                Check::fail(
                    id,
                    format!("GET {url}: no TLS there"),
                    format!("the metadata URL is https but you pasted an http URL, and TLS to it failed ({e})"),
                    "name the metadata with the scheme clients reach the server by (chmcp: the challenge says https whenever public_resource_url or public_auth_server_url is https, for TLS ending at a proxy: paste the proxy's https URL)",
                ),
                None,
            )
        }
        Err(e) => return (unreachable_check(id, "GET", url, e), None),
    };
    let lenient = form == MetadataForm::Root && path_form_ok;
    if r.status != 200 {
        let detail = format!("GET {url}: {}", r.status);
        if lenient {
            return (
                Check::pass(
                    id,
                    format!("{detail} (fine: clients read the path form first, and it works)"),
                ),
                None,
            );
        }
        let cause = match form {
            MetadataForm::Challenge => "the challenge names a metadata URL that does not serve the document".to_string(),
            MetadataForm::PathInserted => "clients that do not read the challenge look here first (RFC 9728 §3.1, MCP authorization spec)".to_string(),
            MetadataForm::Root => "with the path form missing too, clients find no metadata at all".to_string(),
        };
        return (
            Check::fail(
                id,
                detail,
                cause,
                "serve the protected-resource metadata (JSON) at this path without authentication; behind a proxy, route /.well-known/* to the server",
            ),
            None,
        );
    }
    let Some(doc) = r.json().filter(Value::is_object) else {
        return (
            Check::fail(
                id,
                format!("GET {url}: 200, but not a JSON object"),
                "clients parse the metadata as JSON (RFC 9728 §3.2)",
                "serve application/json; a login page or an HTML error here means a proxy or SSO layer is intercepting /.well-known/*",
            ),
            None,
        );
    };
    let resource = doc
        .get("resource")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let strings = |key: &str| -> Vec<String> {
        doc.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let servers = strings("authorization_servers");
    if resource.is_empty() {
        return (
            Check::fail(
                id,
                format!("GET {url}: no `resource`"),
                "`resource` is required (RFC 9728 §2) and clients check it against the URL they were given",
                RESOURCE_FIX,
            ),
            None,
        );
    }
    if resource != pasted {
        let detail = format!("GET {url}: resource \"{resource}\", you pasted \"{pasted}\"");
        if lenient {
            return (
                Check::pass(
                    id,
                    format!("{detail} (another resource: clients read the path form first, and it matches)"),
                ),
                None,
            );
        }
        return (
            Check::fail(
                id,
                detail,
                format!(
                    "{}; clients compare exactly and refuse metadata for another resource (RFC 9728 §3.3)",
                    url_difference(resource, pasted)
                ),
                format!("{RESOURCE_FIX}; or, if \"{resource}\" is the address people should use, paste that"),
            ),
            None,
        );
    }
    if servers.is_empty() {
        return (
            Check::fail(
                id,
                format!("GET {url}: no `authorization_servers`"),
                "MCP clients find the authorization server only through this list",
                "list the authorization server's issuer URL in `authorization_servers` (chmcp: broker mode names the gateway, resource-server mode names server.oauth.issuer)",
            ),
            None,
        );
    }
    (
        Check::pass(
            id,
            format!(
                "GET {url}: resource \"{resource}\" matches, authorization server {}",
                servers.join(", ")
            ),
        ),
        Some(ResourceMetadata {
            resource: resource.to_string(),
            authorization_servers: servers,
            scopes: strings("scopes_supported"),
        }),
    )
}

// ---------------------------------------------------------------------------------------
// 3-5. Authorization-server metadata, PKCE, registration

/// Where clients look for an authorization server's metadata, in the order the MCP
/// authorization spec tries them: RFC 8414 path-inserted, OIDC path-inserted, OIDC
/// path-appended; for an issuer without a path, the two root forms.
pub fn auth_server_metadata_urls(issuer: &Url) -> Vec<(&'static str, Url)> {
    let path = issuer.path().trim_end_matches('/').to_string();
    let at = |p: &str| {
        let mut u = issuer.clone();
        u.set_path(p);
        u.set_query(None);
        u.set_fragment(None);
        u
    };
    if path.is_empty() {
        vec![
            ("RFC 8414", at("/.well-known/oauth-authorization-server")),
            ("OpenID Connect", at("/.well-known/openid-configuration")),
        ]
    } else {
        vec![
            (
                "RFC 8414",
                at(&format!("/.well-known/oauth-authorization-server{path}")),
            ),
            (
                "OpenID Connect, path-inserted",
                at(&format!("/.well-known/openid-configuration{path}")),
            ),
            (
                "OpenID Connect, path-appended",
                at(&format!("{path}/.well-known/openid-configuration")),
            ),
        ]
    }
}

/// The metadata as clients find it: the first variant that serves a JSON object is the
/// one they use, and its `issuer` must be exactly the authorization server's URL
/// (RFC 8414 §3.3), or they stop (mix-up defence).
pub fn auth_server_metadata(
    issuer: &str,
    tried: &[(&'static str, String, Outcome)],
) -> (Check, Option<Value>) {
    const ID: &str = "auth_server_metadata";
    let mut missing = Vec::new();
    for (variant, url, outcome) in tried {
        let doc = match outcome {
            Ok(r) if r.status == 200 => r.json().filter(Value::is_object),
            _ => None,
        };
        let Some(doc) = doc else {
            let why = match outcome {
                Ok(r) => r.status.to_string(),
                Err(e) => e.clone(),
            };
            missing.push(format!("{variant} {url}: {why}"));
            continue;
        };
        let got = doc
            .get("issuer")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let also = if missing.is_empty() {
            String::new()
        } else {
            format!(" (not found first: {})", missing.join("; "))
        };
        if got != issuer {
            return (
                Check::fail(
                    ID,
                    format!("{variant} {url}: issuer \"{got}\", expected \"{issuer}\"{also}"),
                    if got.is_empty() {
                        "the document has no `issuer`".to_string()
                    } else {
                        format!(
                            "{}; clients refuse metadata whose issuer is not the authorization server they were sent to (RFC 8414 §3.3)",
                            url_difference(got, issuer)
                        )
                    },
                    "make `authorization_servers` in the resource metadata exactly the `issuer` of the authorization server (chmcp broker: server.oauth.public_auth_server_url)",
                ),
                None,
            );
        }
        return (
            Check::pass(ID, format!("{variant} {url}: issuer matches{also}")),
            Some(doc),
        );
    }
    (
        Check::fail(
            ID,
            format!("no metadata for {issuer}: {}", missing.join("; ")),
            "clients cannot find the authorization, token and registration endpoints",
            "serve RFC 8414 metadata at /.well-known/oauth-authorization-server (path-inserted for an issuer with a path) or OpenID Connect discovery; check `authorization_servers` names the right URL",
        ),
        None,
    )
}

/// PKCE with S256 must be advertised: MCP clients refuse to proceed without it.
pub fn pkce(doc: &Value) -> Check {
    const ID: &str = "pkce";
    let methods: Vec<&str> = doc
        .get("code_challenge_methods_supported")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if methods.contains(&"S256") {
        Check::pass(
            ID,
            format!("code_challenge_methods_supported: {}", methods.join(", ")),
        )
    } else {
        Check::fail(
            ID,
            if methods.is_empty() {
                "code_challenge_methods_supported is missing".to_string()
            } else {
                format!("code_challenge_methods_supported: {} (no S256)", methods.join(", "))
            },
            "MCP clients require PKCE S256 and refuse an authorization server that does not advertise it",
            "enable PKCE (S256) at the authorization server and list it in code_challenge_methods_supported",
        )
    }
}

/// How a client can get a client id: dynamic registration (RFC 7591) and/or Client ID
/// Metadata Documents. Returns the registration endpoint when advertised.
pub fn registration(doc: &Value) -> (Check, Option<String>) {
    const ID: &str = "registration";
    let dcr = doc
        .get("registration_endpoint")
        .and_then(Value::as_str)
        .filter(|e| Url::parse(e).is_ok())
        .map(str::to_string);
    let cimd = doc.get("client_id_metadata_document_supported") == Some(&Value::Bool(true));
    let check = match (&dcr, cimd) {
        (Some(e), true) => Check::pass(
            ID,
            format!("dynamic registration at {e}; client ID metadata documents supported"),
        ),
        (Some(e), false) => Check::pass(ID, format!("dynamic registration at {e}")),
        (None, true) => Check::pass(
            ID,
            "client ID metadata documents supported (no dynamic registration)",
        ),
        (None, false) => Check::fail(
            ID,
            "neither registration_endpoint nor client_id_metadata_document_supported",
            "claude.ai, ChatGPT and Claude Code have no client id at this server and no way to get one",
            "enable dynamic client registration (RFC 7591) or client ID metadata documents at the authorization server (chmcp: broker mode, server.oauth.broker: true, offers both)",
        ),
    };
    (check, dcr)
}

/// A client whose redirect URI the doctor registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownClient {
    pub id: &'static str,
    pub name: &'static str,
    pub redirect_uri: &'static str,
}

/// The redirect URIs the known clients register. Claude Code (and other CLIs) pick a
/// free loopback port each time, so a server must accept any port (RFC 8252 §7.3);
/// one fixed port stands for all of them here.
pub const KNOWN_CLIENTS: [KnownClient; 3] = [
    KnownClient {
        id: "registration.claude_ai",
        name: "claude.ai",
        redirect_uri: "https://claude.ai/api/mcp/auth_callback",
    },
    KnownClient {
        id: "registration.chatgpt",
        name: "ChatGPT",
        redirect_uri: "https://chatgpt.com/connector_platform_oauth_redirect",
    },
    KnownClient {
        id: "registration.claude_code",
        name: "Claude Code",
        redirect_uri: "http://localhost:54545/callback",
    },
];

/// The throwaway RFC 7591 registration the doctor sends as `client`: a public client,
/// as the MCP clients register.
pub fn registration_request(client: &KnownClient) -> Value {
    json!({
        "client_name": format!("chmcp doctor check as {} (throwaway)", client.name),
        "redirect_uris": [client.redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

/// The registration answer: `201` (or `200`) with a `client_id`.
pub fn registered(client: &KnownClient, endpoint: &str, outcome: &Outcome) -> Check {
    let r = match outcome {
        Ok(r) => r,
        Err(e) => return unreachable_check(client.id, "POST", endpoint, e),
    };
    let id = r.json().and_then(|v| {
        v.get("client_id")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match (r.status, id) {
        (200 | 201, Some(_)) => Check::pass(
            client.id,
            format!("{} redirect URI {} registered", client.name, client.redirect_uri),
        ),
        (200 | 201, None) => Check::fail(
            client.id,
            format!("{}: {} without a client_id", client.name, r.status),
            "the registration response lacks client_id (RFC 7591 §3.2.1)",
            "return the issued client_id in the registration response",
        ),
        (status, _) => Check::fail(
            client.id,
            format!("{} redirect URI {} refused: {status} {}", client.name, client.redirect_uri, r.error_text()),
            format!("{} cannot register, so its sign-in stops before it starts", client.name),
            "accept https redirect URIs and loopback http ones on any port (RFC 8252 §7.3) from public clients (token_endpoint_auth_method none); if the server restricts registration, allow this redirect URI",
        ),
    }
}

// ---------------------------------------------------------------------------------------
// 6. CORS, as a browser client needs it

/// Whether a comma-separated CORS header list allows `name` (`*` covers everything but
/// `authorization`, Fetch standard).
fn lists(list: &str, name: &str) -> bool {
    list.split(',').map(str::trim).any(|h| {
        h.eq_ignore_ascii_case(name) || (h == "*" && !name.eq_ignore_ascii_case("authorization"))
    })
}

fn allows_origin(r: &Fetched, origin: &str) -> Result<(), String> {
    match r.header("access-control-allow-origin") {
        Some(o) if o == origin || o == "*" => Ok(()),
        Some(o) => Err(format!("Access-Control-Allow-Origin is {o}, not {origin}")),
        None => Err("no Access-Control-Allow-Origin".to_string()),
    }
}

fn origin_fix(origin: &str) -> String {
    format!("allow the browser origin {origin} at the server and any proxy in front (chmcp: add it to server.allowed_origins)")
}

/// CORS matters only to clients that run in a browser page (the MCP Inspector, in-browser
/// apps): claude.ai and ChatGPT call MCP servers from their own servers and send no
/// `Origin`. Unless an origin was named with `--origin`, a CORS finding is a note (a
/// warning that does not fail the run), saying so.
pub fn as_note(c: Check) -> Check {
    if c.level != super::report::Level::Fail {
        return c;
    }
    let cause = format!(
        "{} (only browser-based clients such as the MCP Inspector or an in-browser app are affected; claude.ai and ChatGPT call from their servers and send no Origin; run with --origin URL to make this a hard check for that origin)",
        c.cause.clone().unwrap_or_default()
    );
    Check {
        cause: Some(cause),
        ..c
    }
    .warning()
}

/// The preflight a browser sends before its first POST: a 2xx that allows the origin and
/// every non-safelisted header (POST itself is a safelisted method).
pub fn preflight(url: &str, origin: &str, outcome: &Outcome) -> Check {
    const ID: &str = "cors.preflight";
    let r = match outcome {
        Ok(r) => r,
        Err(e) => return unreachable_check(ID, "OPTIONS", url, e),
    };
    let said = format!("OPTIONS {url} from {origin}: {}", r.status);
    if !(200..300).contains(&r.status) {
        return Check::fail(
            ID,
            format!("{said} ({})", r.error_text()),
            "the browser blocks the MCP request when its preflight is refused",
            origin_fix(origin),
        );
    }
    if let Err(why) = allows_origin(r, origin) {
        return Check::fail(
            ID,
            format!("{said}, {why}"),
            "the browser blocks the MCP request",
            origin_fix(origin),
        );
    }
    let allowed = r.header_list("access-control-allow-headers");
    let missing: Vec<&str> = BROWSER_REQUEST_HEADERS
        .into_iter()
        .filter(|h| !lists(&allowed, h))
        .collect();
    if !missing.is_empty() {
        return Check::fail(
            ID,
            format!("{said}, Access-Control-Allow-Headers: {allowed}"),
            format!("the browser may not send {}", missing.join(", ")),
            format!(
                "list {} in Access-Control-Allow-Headers (authorization must be named: `*` does not cover it)",
                BROWSER_REQUEST_HEADERS.join(", ")
            ),
        );
    }
    Check::pass(
        ID,
        format!(
            "{said}, origin and headers {} allowed",
            BROWSER_REQUEST_HEADERS.join(", ")
        ),
    )
}

/// The cross-origin 401: the browser shows the client the challenge only when the origin
/// is allowed and `WWW-Authenticate` is exposed.
pub fn cross_origin_challenge(url: &str, origin: &str, outcome: &Outcome) -> Check {
    const ID: &str = "cors.challenge";
    let r = match outcome {
        Ok(r) => r,
        Err(e) => return unreachable_check(ID, "POST", url, e),
    };
    let said = format!("POST {url} from {origin}: {}", r.status);
    if let Err(why) = allows_origin(r, origin) {
        return Check::fail(
            ID,
            format!("{said}, {why}"),
            "a browser client cannot read the 401, so it never starts the sign-in",
            origin_fix(origin),
        );
    }
    let exposed = r.header_list("access-control-expose-headers");
    if r.status == 401 && !lists(&exposed, "www-authenticate") {
        return Check::fail(
            ID,
            format!("{said}, WWW-Authenticate not in Access-Control-Expose-Headers"),
            "a browser client cannot read the challenge's resource_metadata",
            "add Access-Control-Expose-Headers: WWW-Authenticate",
        );
    }
    Check::pass(
        ID,
        format!("{said}, origin allowed, WWW-Authenticate exposed"),
    )
}

/// A metadata document read from a browser needs `Access-Control-Allow-Origin`.
/// Only browser-based clients (MCP Inspector, web apps) fetch it from the page: claude.ai,
/// ChatGPT and Claude Code fetch it from their servers or the CLI, so this is a warning.
pub fn metadata_cors(id: &'static str, url: &str, origin: &str, outcome: &Outcome) -> Check {
    let r = match outcome {
        Ok(r) => r,
        Err(e) => return unreachable_check(id, "GET", url, e),
    };
    match allows_origin(r, origin) {
        Ok(()) => Check::pass(id, format!("GET {url} from {origin}: {}, origin allowed", r.status)),
        Err(why) => Check::fail(
            id,
            format!("GET {url} from {origin}: {}, {why}", r.status),
            "clients that discover from a browser page (MCP Inspector, web apps) cannot read it; claude.ai, ChatGPT and Claude Code are not affected",
            "send Access-Control-Allow-Origin: * on the metadata (it is public and uses no cookies)",
        ).warning(),
    }
}

// ---------------------------------------------------------------------------------------
// 7-8. TLS and clock

/// The transport: https with a certificate valid now and for a while (the handshake
/// itself already checked chain and name), or plain http on loopback.
pub fn tls(url: &Url, peer_certificate: Option<&[u8]>, now: i64) -> Check {
    const ID: &str = "tls";
    if url.scheme() != "https" {
        return if is_loopback_url(url) {
            Check::skip(
                ID,
                "plain http on loopback: no TLS to check (local use only)",
            )
        } else {
            Check::fail(
                ID,
                "plain http",
                "claude.ai and ChatGPT connect only to https URLs, and OAuth forbids plain http except on loopback",
                "serve https (a certificate from a public CA for this host name), directly or at a proxy",
            )
        };
    }
    let Some(validity) = peer_certificate.and_then(super::cert::validity) else {
        return Check::fail(
            ID,
            "handshake ok, certificate not readable",
            "the server's certificate validity could not be read, so its expiry is unknown",
            "check the certificate with `openssl s_client -connect host:443`",
        )
        .warning();
    };
    let until = fmt_unix(validity.not_after);
    let days_left = (validity.not_after - now).div_euclid(86_400);
    if now > validity.not_after || now < validity.not_before {
        return Check::fail(
            ID,
            format!("certificate valid until {until}"),
            "the certificate is not valid now",
            "renew the certificate",
        );
    }
    if days_left < CERT_WARN_DAYS {
        return Check::fail(
            ID,
            format!("certificate valid until {until}: {days_left} day(s) left"),
            format!(
                "it expires in under {CERT_WARN_DAYS} days; then every client fails to connect"
            ),
            "renew it now and check that automatic renewal (cert-manager, certbot) runs",
        )
        .warning();
    }
    Check::pass(
        ID,
        format!("certificate valid until {until} ({days_left} days left)"),
    )
}

/// A connection that failed in the TLS handshake (untrusted chain, wrong name, expired).
pub fn tls_failure(url: &str, error: &str) -> Check {
    Check::fail(
        "tls",
        format!("TLS handshake with {url} failed"),
        error.to_string(),
        "serve a certificate from a public CA that covers this host name, with its intermediate chain, and renew it before it expires",
    )
}

/// Whether a transport error's text is about TLS (so the report names TLS, not the network).
pub fn is_tls_error(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    // rustls's words: a bad chain names the certificate; plain http where TLS was
    // expected is a "corrupt message".
    [
        "corrupt message",
        "certificate",
        "tls",
        "handshake",
        "unknownissuer",
        "notvalidforname",
    ]
    .iter()
    .any(|w| e.contains(w))
}

fn fmt_unix(secs: i64) -> String {
    let t = u64::try_from(secs)
        .ok()
        .and_then(|s| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(s)));
    match t {
        Some(t) => httpdate::fmt_http_date(t),
        None => format!("{secs} (Unix seconds)"),
    }
}

/// The server's `Date` against this machine's clock, both UTC seconds.
pub fn clock(date: Option<&str>, now: i64) -> Check {
    const ID: &str = "clock";
    let Some(date) = date else {
        return Check::fail(
            ID,
            "no Date header",
            "the server's clock cannot be compared (RFC 9110 §6.6.1 asks servers to send Date)",
            "send a Date header; make sure the server's clock is synchronised (NTP)",
        )
        .warning();
    };
    let server = httpdate::parse_http_date(date)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    let Some(server) = server else {
        return Check::fail(
            ID,
            format!("Date: {date} is not an HTTP date"),
            "the server's clock cannot be compared",
            "send Date in the IMF-fixdate form (RFC 9110 §5.6.7)",
        )
        .warning();
    };
    let skew = server - now;
    let said = format!(
        "server clock {} s {} this machine's",
        skew.abs(),
        if skew < 0 { "behind" } else { "ahead of" }
    );
    if skew.abs() > MAX_CLOCK_SKEW_SECS {
        Check::fail(
            ID,
            said,
            format!("beyond {MAX_CLOCK_SKEW_SECS} s, tokens look expired or not yet valid on one side"),
            "synchronise the clocks (NTP: chrony, systemd-timesyncd) on the server, and on this machine if it is the one that is off",
        ).warning()
    } else {
        Check::pass(ID, said)
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;
    use crate::doctor::report::Level;

    fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Outcome {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Ok(Fetched {
            status,
            headers: h,
            body: body.as_bytes().to_vec(),
        })
    }

    const MCP: &str = "https://mcp.example.com/mcp";
    const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    #[test]
    fn a_401_with_a_bearer_challenge_naming_the_metadata_passes_and_yields_its_url() {
        let (c, url) = challenge(
            &reply(
                401,
                &[(
                    "www-authenticate",
                    &format!("Bearer error=\"invalid_token\", resource_metadata=\"{PRM}\""),
                )],
                "{}",
            ),
            MCP,
        );
        assert_eq!(c.level, Level::Pass, "{c:?}");
        assert_eq!(url.as_deref(), Some(PRM));
    }

    #[test]
    fn an_open_endpoint_a_404_and_a_missing_challenge_fail_with_their_cause() {
        let (c, _) = challenge(&reply(200, &[], "{}"), MCP);
        assert_eq!(c.level, Level::Fail);
        assert!(c.fix.unwrap().contains("server.oauth.enabled"));
        let (c, _) = challenge(&reply(404, &[], ""), MCP);
        assert!(c.cause.unwrap().contains("nothing is served"));
        let (c, _) = challenge(&reply(401, &[], ""), MCP);
        assert!(c.detail.contains("no WWW-Authenticate"), "{c:?}");
        let (c, _) = challenge(
            &reply(401, &[("www-authenticate", "Basic realm=\"x\"")], ""),
            MCP,
        );
        assert!(c.cause.unwrap().contains("no Bearer challenge"));
        let (c, _) = challenge(&Err("connection refused".into()), MCP);
        assert_eq!(c.cause.as_deref(), Some("connection refused"));
    }

    #[test]
    fn a_challenge_without_resource_metadata_is_a_warning() {
        let (c, url) = challenge(
            &reply(401, &[("www-authenticate", "Bearer realm=\"mcp\"")], ""),
            MCP,
        );
        assert_eq!(c.level, Level::Warn);
        assert_eq!(url, None);
    }

    #[test]
    fn well_known_resource_urls_insert_the_path_and_drop_the_query() {
        let (inserted, root) =
            resource_metadata_urls(&Url::parse("https://h.example/mcp/otel?x=1").unwrap());
        assert_eq!(
            inserted.unwrap().as_str(),
            "https://h.example/.well-known/oauth-protected-resource/mcp/otel"
        );
        assert_eq!(
            root.as_str(),
            "https://h.example/.well-known/oauth-protected-resource"
        );
        let (inserted, _) = resource_metadata_urls(&Url::parse("https://h.example/").unwrap());
        assert_eq!(inserted, None);
    }

    fn prm(resource: &str) -> Outcome {
        reply(
            200,
            &[],
            &json!({"resource": resource, "authorization_servers": ["https://mcp.example.com"]})
                .to_string(),
        )
    }

    #[test]
    fn an_https_metadata_url_for_an_http_paste_names_the_scheme() {
        let (c, _) = resource_metadata(
            MetadataForm::Challenge,
            "https://127.0.0.1:1/.well-known/oauth-protected-resource/mcp",
            &Err("error sending request for url (https://127.0.0.1:1/.well-known/oauth-protected-resource/mcp): client error (Connect): received corrupt message of type InvalidContentType".into()),
            "http://127.0.0.1:1/mcp",
            false,
        );
        assert!(c
            .cause
            .unwrap()
            .contains("the metadata URL is https but you pasted an http URL"));
    }

    #[test]
    fn metadata_naming_exactly_the_pasted_url_passes() {
        let (c, doc) = resource_metadata(MetadataForm::PathInserted, PRM, &prm(MCP), MCP, false);
        assert_eq!(c.level, Level::Pass, "{c:?}");
        assert_eq!(
            doc.unwrap().authorization_servers,
            ["https://mcp.example.com"]
        );
    }

    #[test]
    fn a_trailing_slash_mismatch_is_named_as_such_both_ways() {
        let (c, _) = resource_metadata(
            MetadataForm::PathInserted,
            PRM,
            &prm("https://mcp.example.com/mcp/"),
            MCP,
            false,
        );
        assert_eq!(c.level, Level::Fail);
        let cause = c.cause.unwrap();
        assert!(
            cause.contains("only by a trailing slash: the server's has it, yours does not"),
            "{cause}"
        );
        assert!(c.fix.unwrap().contains("public_resource_url"));
        assert!(url_difference("https://h/mcp", "https://h/mcp/")
            .contains("yours has it, the server's does not"));
    }

    #[test]
    fn scheme_host_and_path_mismatches_are_named() {
        assert!(url_difference("http://h/mcp", "https://h/mcp")
            .contains("scheme differs (http vs https): TLS probably ends at a proxy"));
        assert!(url_difference("https://other.example/mcp", "https://h/mcp")
            .contains("host differs (other.example vs h)"));
        assert!(url_difference("https://h/", "https://h/mcp/otel")
            .contains("parent path (/ vs /mcp/otel)"));
        assert!(
            url_difference("https://h/mcp/antalya", "https://h/mcp/otel")
                .contains("path differs (/mcp/antalya vs /mcp/otel)")
        );
    }

    #[test]
    fn the_root_form_may_describe_another_resource_when_the_path_form_works() {
        let root = "https://mcp.example.com/.well-known/oauth-protected-resource";
        let other = prm("https://mcp.example.com");
        let (c, _) = resource_metadata(MetadataForm::Root, root, &other, MCP, true);
        assert_eq!(c.level, Level::Pass, "{c:?}");
        let (c, _) = resource_metadata(MetadataForm::Root, root, &other, MCP, false);
        assert_eq!(c.level, Level::Fail, "{c:?}");
        let (c, _) = resource_metadata(MetadataForm::Root, root, &reply(404, &[], ""), MCP, true);
        assert_eq!(c.level, Level::Pass);
    }

    #[test]
    fn missing_html_and_serverless_metadata_fail() {
        let (c, _) = resource_metadata(
            MetadataForm::PathInserted,
            PRM,
            &reply(404, &[], ""),
            MCP,
            false,
        );
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.contains(": 404"));
        let (c, _) = resource_metadata(
            MetadataForm::Challenge,
            PRM,
            &reply(200, &[], "<html>login</html>"),
            MCP,
            false,
        );
        assert!(c.detail.contains("not a JSON object"));
        let (c, _) = resource_metadata(
            MetadataForm::Challenge,
            PRM,
            &reply(200, &[], &json!({"resource": MCP}).to_string()),
            MCP,
            false,
        );
        assert!(c.detail.contains("no `authorization_servers`"));
    }

    #[test]
    fn auth_server_metadata_urls_follow_the_mcp_discovery_order() {
        let urls = |i: &str| -> Vec<String> {
            auth_server_metadata_urls(&Url::parse(i).unwrap())
                .into_iter()
                .map(|(_, u)| u.to_string())
                .collect()
        };
        assert_eq!(
            urls("https://as.example"),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            urls("https://as.example/tenant/1/"),
            [
                "https://as.example/.well-known/oauth-authorization-server/tenant/1",
                "https://as.example/.well-known/openid-configuration/tenant/1",
                "https://as.example/tenant/1/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn the_first_document_found_must_name_the_issuer_exactly() {
        let issuer = "https://as.example";
        let doc = |iss: &str| reply(200, &[], &json!({"issuer": iss}).to_string());
        let tried = vec![
            ("RFC 8414", "u1".to_string(), reply(404, &[], "")),
            ("OpenID Connect", "u2".to_string(), doc(issuer)),
        ];
        let (c, d) = auth_server_metadata(issuer, &tried);
        assert_eq!(c.level, Level::Pass, "{c:?}");
        assert!(c.detail.contains("not found first: RFC 8414 u1: 404"));
        assert!(d.is_some());
        let tried = vec![("RFC 8414", "u1".to_string(), doc("https://as.example/"))];
        let (c, _) = auth_server_metadata(issuer, &tried);
        assert_eq!(c.level, Level::Fail);
        assert!(c.cause.unwrap().contains("trailing slash"));
        let (c, _) = auth_server_metadata(
            issuer,
            &[("RFC 8414", "u1".to_string(), Err("timeout".into()))],
        );
        assert!(c.detail.contains("RFC 8414 u1: timeout"), "{c:?}");
    }

    #[test]
    fn pkce_needs_s256() {
        assert_eq!(
            pkce(&json!({"code_challenge_methods_supported": ["plain", "S256"]})).level,
            Level::Pass
        );
        assert_eq!(
            pkce(&json!({"code_challenge_methods_supported": ["plain"]})).level,
            Level::Fail
        );
        assert!(pkce(&json!({})).detail.contains("missing"));
    }

    #[test]
    fn registration_needs_dcr_or_cimd() {
        let (c, e) = registration(&json!({"registration_endpoint": "https://as.example/register"}));
        assert_eq!(
            (c.level, e.as_deref()),
            (Level::Pass, Some("https://as.example/register"))
        );
        let (c, e) = registration(&json!({"client_id_metadata_document_supported": true}));
        assert_eq!((c.level, e), (Level::Pass, None));
        let (c, _) = registration(&json!({"client_id_metadata_document_supported": false}));
        assert_eq!(c.level, Level::Fail);
    }

    #[test]
    fn a_refused_redirect_uri_names_the_client_and_the_servers_reason() {
        let client = &KNOWN_CLIENTS[0];
        let ok = registered(client, "e", &reply(201, &[], r#"{"client_id":"x"}"#));
        assert_eq!(ok.level, Level::Pass);
        let no = registered(
            client,
            "e",
            &reply(
                400,
                &[],
                r#"{"error":"invalid_redirect_uri","error_description":"https only"}"#,
            ),
        );
        assert_eq!(no.level, Level::Fail);
        assert!(no.detail.contains("https://claude.ai/api/mcp/auth_callback refused: 400 invalid_redirect_uri: https only"), "{}", no.detail);
        assert_eq!(
            registration_request(client)["redirect_uris"],
            json!([client.redirect_uri])
        );
    }

    #[test]
    fn a_preflight_must_allow_the_origin_and_name_authorization() {
        let good = reply(
            204,
            &[
                ("access-control-allow-origin", BROWSER_ORIGIN),
                (
                    "access-control-allow-headers",
                    "Content-Type, Authorization, MCP-Protocol-Version",
                ),
            ],
            "",
        );
        assert_eq!(preflight(MCP, BROWSER_ORIGIN, &good).level, Level::Pass);
        let star = reply(
            204,
            &[
                ("access-control-allow-origin", "*"),
                ("access-control-allow-headers", "*"),
            ],
            "",
        );
        let c = preflight(MCP, BROWSER_ORIGIN, &star);
        assert_eq!(c.level, Level::Fail);
        assert!(c.cause.unwrap().contains("may not send authorization"));
        let refused = reply(
            403,
            &[],
            r#"{"error":"forbidden_origin","error_description":"Origin http://localhost:6274 is not allowed"}"#,
        );
        let c = preflight(MCP, BROWSER_ORIGIN, &refused);
        assert!(c.detail.contains("403 (forbidden_origin"), "{c:?}");
        assert!(c.fix.unwrap().contains("server.allowed_origins"));
        let other = reply(
            204,
            &[("access-control-allow-origin", "https://evil.example")],
            "",
        );
        assert!(preflight(MCP, BROWSER_ORIGIN, &other)
            .detail
            .contains("is https://evil.example, not http://localhost:6274"));
    }

    #[test]
    fn a_cross_origin_401_must_expose_the_challenge() {
        let h = [
            ("access-control-allow-origin", BROWSER_ORIGIN),
            ("access-control-expose-headers", "WWW-Authenticate"),
        ];
        assert_eq!(
            cross_origin_challenge(MCP, BROWSER_ORIGIN, &reply(401, &h, "")).level,
            Level::Pass
        );
        let c = cross_origin_challenge(MCP, BROWSER_ORIGIN, &reply(401, &h[..1], ""));
        assert_eq!(c.level, Level::Fail);
        // Without --origin it is a note: a warning naming the browser-based clients.
        let note = as_note(c);
        assert_eq!(note.level, Level::Warn);
        assert!(note.cause.unwrap().contains("MCP Inspector"));
        let pass = Check::pass("x", "fine");
        assert_eq!(as_note(pass.clone()), pass);
    }

    #[test]
    fn metadata_without_cors_is_only_a_warning() {
        assert_eq!(
            metadata_cors("cors.x", PRM, BROWSER_ORIGIN, &reply(200, &[], "")).level,
            Level::Warn
        );
        assert_eq!(
            metadata_cors(
                "cors.x",
                PRM,
                BROWSER_ORIGIN,
                &reply(200, &[("access-control-allow-origin", "*")], "")
            )
            .level,
            Level::Pass
        );
    }

    #[test]
    fn tls_is_skipped_on_loopback_http_and_required_elsewhere() {
        assert_eq!(
            tls(&Url::parse("http://127.0.0.1:1/mcp").unwrap(), None, 0).level,
            Level::Skip
        );
        assert_eq!(
            tls(&Url::parse("http://mcp.example.com/mcp").unwrap(), None, 0).level,
            Level::Fail
        );
        assert!(is_tls_error("invalid peer certificate: Expired"));
        assert!(!is_tls_error("connection refused"));
    }

    #[test]
    fn a_certificate_close_to_expiry_warns_and_an_expired_one_fails() {
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                include_str!("testdata/cert.der.b64")
                    .split_whitespace()
                    .collect::<String>(),
            )
            .unwrap();
        let https = Url::parse("https://mcp.example.com/mcp").unwrap();
        let not_after = crate::doctor::cert::unix_seconds(2054, 4, 19, 0, 30, 2);
        let c = tls(&https, Some(&der), not_after - 100 * 86_400);
        assert_eq!(c.level, Level::Pass, "{c:?}");
        assert!(
            c.detail
                .contains("Sun, 19 Apr 2054 00:30:02 GMT (100 days left)"),
            "{}",
            c.detail
        );
        let c = tls(&https, Some(&der), not_after - 3 * 86_400);
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.contains("3 day(s) left"));
        assert_eq!(tls(&https, Some(&der), not_after + 1).level, Level::Fail);
        assert_eq!(tls(&https, Some(b"junk"), 0).level, Level::Warn);
    }

    #[test]
    fn clock_skew_beyond_a_minute_warns() {
        let at = crate::doctor::cert::unix_seconds(1994, 11, 6, 8, 49, 37);
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(clock(Some(date), at + 30).level, Level::Pass);
        let c = clock(Some(date), at + 61);
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.contains("61 s behind"), "{}", c.detail);
        assert_eq!(clock(Some("yesterday"), at).level, Level::Warn);
        assert_eq!(clock(None, at).level, Level::Warn);
    }
}

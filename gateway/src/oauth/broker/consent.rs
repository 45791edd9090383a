//! The consent page. One upstream client id serves every MCP client, so without this
//! page any website could register itself and silently receive codes for a user who is
//! already signed in at the IdP (the MCP security guidance's "confused deputy").
//!
//! CSRF without server state: the page carries a sealed ticket holding the checked
//! request and a hash of a random nonce that is also set as an HttpOnly, SameSite=Strict
//! cookie. Only a POST presenting both a valid ticket and the matching cookie proceeds,
//! so a cross-site form cannot replay a ticket the attacker fetched for themselves.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::{Deserialize, Serialize};

use super::authorize::{cookie_secure_attr, go_upstream, send_error, Onward, Pending};
use super::client::{Client, ClientSource};
use super::crypto::{constant_time_eq, sha256_b64, Kind};
use super::error::{invalid_request, ErrorCode, OAuthError};
use super::page::{html_escape, html_response, layout};
use super::{now, BrokerState, Step};

/// A consent page is answered within this time, or the flow starts over.
pub const TICKET_TTL_SECS: u64 = 600;
const COOKIE: &str = "chmcp_consent";

#[derive(Debug, Serialize, Deserialize)]
pub struct Ticket {
    #[serde(rename = "q")]
    pub pending: Pending,
    /// sha256 of the browser nonce in the consent cookie.
    #[serde(rename = "b")]
    pub browser: String,
}

#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    #[serde(default)]
    pub ticket: String,
    #[serde(default)]
    pub action: String,
}

/// Everything the consent page says, gathered before rendering (pure, testable).
#[derive(Debug, Clone)]
pub struct ConsentView<'a> {
    /// The gateway's display name.
    pub brand: &'a str,
    pub client: &'a Client,
    /// The gateway's public base URL (to read clusters out of `resource`).
    pub issuer: &'a str,
    pub resource: Option<&'a str>,
    pub redirect_uri: &'a str,
    /// Host of the IdP's sign-in page: where Approve sends the browser first.
    pub idp_host: &'a str,
    pub scopes: &'a [String],
    pub ticket: &'a str,
}

/// The host (and port, when not the scheme's default) a person should recognise in a URL.
pub fn shown_authority(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}:{p}", h.to_ascii_lowercase()),
            (Some(h), None) => h.to_ascii_lowercase(),
            _ => u.scheme().to_string(),
        },
        Err(_) => String::new(),
    }
}

/// What a token for `resource` reaches, in words (HTML): one cluster, or all of them.
pub fn reach(issuer: &str, resource: Option<&str>) -> String {
    let every = "every cluster of this gateway".to_string();
    let Some(r) = resource else {
        return every;
    };
    let r = r.trim_end_matches('/');
    let prefix = format!("{}/mcp/", issuer.trim_end_matches('/'));
    match r.strip_prefix(&prefix) {
        Some(cluster) if !cluster.is_empty() => format!(
            "only the cluster <strong><code>{}</code></strong>",
            html_escape(cluster)
        ),
        _ => format!("{every} (<code>{}</code>)", html_escape(r)),
    }
}

/// A scope in plain words; unknown scopes are named as the IdP's own.
pub fn scope_words(scope: &str) -> String {
    let known = match scope {
        "openid" => "Confirm who you are at your identity provider",
        "email" => "See your email address",
        "profile" => "See your name and username",
        "offline_access" => "Stay connected when you are away (a refresh token)",
        "mcp:read" => "Run read-only queries as you",
        "mcp:write" => "Write to the tables this gateway allows, as you",
        _ => {
            return format!(
                "<code>{}</code> (a permission your identity provider defines)",
                html_escape(scope)
            )
        }
    };
    format!(
        "{known} <span class=\"muted\">(<code>{}</code>)</span>",
        html_escape(scope)
    )
}

/// The page itself: no script, one form with `approve` and `deny`.
pub fn render(v: &ConsentView<'_>) -> String {
    let name = v
        .client
        .name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or("An unnamed application");
    let identity = match v.client.source {
        ClientSource::MetadataDocument => format!(
            "<p>Identified by its website <strong>{}</strong> (<code>{}</code>).</p>",
            html_escape(&shown_authority(&v.client.id)),
            html_escape(&v.client.id)
        ),
        // A registered client named itself: say so, and let the redirect host speak.
        ClientSource::Registered => "<p class=\"warn\">This application registered itself: \
its name is <strong>not verified</strong>. Check where it sends you back to, below.</p>"
            .to_string(),
    };
    let scope_items: String = v
        .scopes
        .iter()
        .map(|s| format!("<li>{}</li>", scope_words(s)))
        .collect();
    let back = shown_authority(v.redirect_uri);
    let body = format!(
        "<h1>Allow {name} to use ClickHouse as you?</h1>{identity}\
<h2>It will reach</h2><p id=\"reach\">{reach}</p>\
<h2>It asks to</h2><ul id=\"scopes\">{scope_items}</ul>\
<h2>What happens next</h2><p id=\"next\">Approve: you sign in at <strong>{idp}</strong>, \
then your browser goes back to <strong>{back}</strong> \
(<code>{redirect}</code>). Deny: you go back there and nothing is shared.</p>\
<form method=\"post\" action=\"/oauth/authorize\">\
<input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
<div class=\"actions\">\
<button type=\"submit\" name=\"action\" value=\"deny\">Deny</button>\
<button type=\"submit\" name=\"action\" value=\"approve\" class=\"primary\">Approve</button>\
</div></form>\
<p class=\"muted\">Approve only if you started this sign-in yourself, from this application.</p>",
        name = html_escape(name),
        reach = reach(v.issuer, v.resource),
        idp = html_escape(v.idp_host),
        back = html_escape(&back),
        redirect = html_escape(v.redirect_uri),
        ticket = html_escape(v.ticket),
    );
    layout(v.brand, "Allow access?", &body, None)
}

/// The page the consent POST answers with: it moves on to `location` by itself (no
/// script: a meta refresh), with a link for browsers that do not.
pub fn continue_page(brand: &str, location: &str, whither: &str) -> Response {
    let body = format!(
        "<h1>Continuing {whither}\u{2026}</h1>\
<div class=\"actions\"><a class=\"button primary\" id=\"continue\" href=\"{href}\">Continue</a></div>",
        whither = html_escape(whither),
        href = html_escape(location),
    );
    html_response(
        StatusCode::OK,
        layout(brand, "Continuing", &body, Some(location)),
    )
}

/// The scopes a consent page names: the client's request, else what the gateway asks for.
pub fn shown_scopes(pending: &Pending, configured: &[String]) -> Vec<String> {
    match pending
        .scope
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(s) => s.split_whitespace().map(str::to_string).collect(),
        None => configured.to_vec(),
    }
}

/// Shows the consent page for a checked request.
pub async fn show(b: &BrokerState, client: &Client, pending: Pending) -> Response {
    let built = (|| {
        let nonce = b.sealer.random_token(16)?;
        let ticket = Ticket {
            pending: pending.clone(),
            browser: sha256_b64(&nonce),
        };
        let sealed = b
            .sealer
            .seal(Kind::ConsentTicket, &ticket, now() + TICKET_TTL_SECS)?;
        Ok::<_, super::crypto::SealError>((nonce, sealed))
    })();
    let (nonce, sealed) = match built {
        Ok(x) => x,
        Err(e) => {
            return b.fail_page(
                Step::Authorize,
                OAuthError::new(ErrorCode::ServerError, e.to_string()),
            )
        }
    };
    // Where Approve leads: the IdP's sign-in page (discovered, cached), else its issuer.
    let idp_host = match b.upstream.endpoints().await {
        Ok(e) => shown_authority(&e.authorization),
        Err(_) => shown_authority(&b.settings.upstream_issuer),
    };
    let scopes = shown_scopes(&pending, &b.settings.scopes);
    let html = render(&ConsentView {
        brand: &b.settings.brand,
        client,
        issuer: &b.settings.issuer,
        resource: pending.resource.as_deref(),
        redirect_uri: &pending.redirect_uri,
        idp_host: &idp_host,
        scopes: &scopes,
        ticket: &sealed,
    });
    let mut r = html_response(StatusCode::OK, html);
    let secure = cookie_secure_attr(&b.settings.issuer);
    let cookie = format!("{COOKIE}={nonce}; Path=/oauth; HttpOnly; SameSite=Strict; Max-Age={TICKET_TTL_SECS}{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    b.count(Step::Authorize, "consent_shown");
    r
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A browser sends `Origin` on a form POST; when it does, it must be this server. A
/// browser that says where the request comes from (`Sec-Fetch-Site`) must say this same
/// origin. (The page's `Referrer-Policy: same-origin` is what makes Chromium send the
/// real origin here rather than `null`.)
pub fn origin_allowed(headers: &HeaderMap, issuer: &str) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    if fetch_site.is_some_and(|s| s != "same-origin") {
        return false;
    }
    let mine = crate::net::OriginPolicy::new(&[], [issuer], false);
    !matches!(
        mine.check(crate::net::origin_values(headers)),
        crate::net::OriginVerdict::Denied(_)
    )
}

/// Opens the ticket and checks it belongs to this browser.
pub fn check_ticket(
    b: &BrokerState,
    headers: &HeaderMap,
    ticket: &str,
) -> Result<Pending, OAuthError> {
    let t: Ticket = b
        .sealer
        .open(Kind::ConsentTicket, ticket, now())
        .map_err(|e| invalid_request(format!("consent ticket: {e}")))?;
    let nonce = cookie_value(headers, COOKIE)
        .ok_or_else(|| invalid_request("the consent cookie is missing: start the sign-in again"))?;
    if !constant_time_eq(&sha256_b64(nonce), &t.browser) {
        return Err(invalid_request(
            "this consent was not given in the browser that opened it",
        ));
    }
    Ok(t.pending)
}

/// `POST /oauth/authorize`: the consent form's answer.
pub async fn authorize_post(
    State(b): State<Arc<BrokerState>>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    if !origin_allowed(&headers, &b.settings.issuer) {
        return b.fail_page(
            Step::Authorize,
            OAuthError::new(ErrorCode::AccessDenied, "cross-origin consent is refused"),
        );
    }
    let pending = match check_ticket(&b, &headers, &form.ticket) {
        Ok(p) => p,
        Err(e) => return b.fail_page(Step::Authorize, e),
    };
    match form.action.as_str() {
        "approve" => go_upstream(&b, Onward::Page, pending).await,
        "deny" => {
            b.count(Step::Authorize, "access_denied");
            let e = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            send_error(&b, Onward::Page, &pending, &e)
        }
        _ => b.fail_page(
            Step::Authorize,
            invalid_request("action must be approve or deny"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::AuthMethod;
    use super::*;

    fn client(name: &str) -> Client {
        Client {
            id: "x".into(),
            name: Some(name.into()),
            redirect_uris: vec!["https://app.example.com/cb".into()],
            auth_method: AuthMethod::None,
            source: ClientSource::Registered,
        }
    }

    fn view<'a>(c: &'a Client, resource: Option<&'a str>, scopes: &'a [String]) -> ConsentView<'a> {
        ConsentView {
            brand: "Acme <Analytics>",
            client: c,
            issuer: "https://gw.example.com",
            resource,
            redirect_uri: "https://app.example.com/cb",
            idp_host: "idp.example.com",
            scopes,
            ticket: "T\"K",
        }
    }

    #[test]
    fn the_page_names_gateway_client_clusters_next_hop_and_scopes_escaped() {
        let c = client("<script>x</script>");
        let scopes = ["openid".to_string(), "mcp:read".into(), "x<y".into()];
        let html = render(&view(&c, Some("https://gw.example.com/mcp/otel"), &scopes));
        assert!(html.contains("Acme &lt;Analytics&gt;"));
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!html.contains("<script"));
        assert!(html.contains("not verified"));
        assert!(html.contains("only the cluster <strong><code>otel</code></strong>"));
        assert!(html.contains("idp.example.com") && html.contains("app.example.com"));
        assert!(html.contains("Run read-only queries as you"));
        assert!(html.contains("<code>x&lt;y</code> (a permission"));
        assert!(html.contains("value=\"T&quot;K\""));
        assert_eq!(html.matches("<form").count(), 1);
        assert!(html.contains("value=\"approve\"") && html.contains("value=\"deny\""));
    }

    #[test]
    fn no_resource_or_the_fleet_reaches_every_cluster() {
        assert_eq!(
            reach("https://gw.example.com", None),
            "every cluster of this gateway"
        );
        assert!(reach(
            "https://gw.example.com",
            Some("https://gw.example.com/mcp/")
        )
        .starts_with("every cluster of this gateway"));
        assert!(reach(
            "https://gw.example.com/",
            Some("https://gw.example.com/mcp/a")
        )
        .contains("<code>a</code>"));
    }

    #[test]
    fn a_metadata_document_client_is_named_by_its_host() {
        let mut c = client("Tool");
        c.id = "https://tool.example.org/oauth/client.json".into();
        c.source = ClientSource::MetadataDocument;
        let html = render(&view(&c, None, &[]));
        assert!(html.contains("<strong>tool.example.org</strong>"));
        assert!(!html.contains("not verified"));
    }

    #[tokio::test]
    async fn the_continue_page_moves_on_without_script() {
        let r = continue_page("GW", "https://idp.example.com/auth?a=1&b=2", "to sign in");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get(header::LOCATION).is_none());
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("content=\"0;url=https://idp.example.com/auth?a=1&amp;b=2\""));
        assert!(body.contains("href=\"https://idp.example.com/auth?a=1&amp;b=2\""));
        assert!(!body.contains("<script"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; chmcp_consent=NONCE; b=2"),
        );
        assert_eq!(cookie_value(&h, COOKIE), Some("NONCE"));
        assert_eq!(cookie_value(&h, "zzz"), None);
    }

    #[test]
    fn only_our_own_origin_may_post() {
        let mut h = HeaderMap::new();
        assert!(origin_allowed(&h, "https://gw.example.com"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://gw.example.com"),
        );
        assert!(origin_allowed(&h, "https://gw.example.com"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example.com"),
        );
        assert!(!origin_allowed(&h, "https://gw.example.com"));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!origin_allowed(&h, "https://gw.example.com"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://gw.example.com"),
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(!origin_allowed(&h, "https://gw.example.com"));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(origin_allowed(&h, "https://gw.example.com"));
    }
}

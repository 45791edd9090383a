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
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::{Deserialize, Serialize};

use super::authorize::{cookie_secure_attr, go_upstream, redirect_error, Pending};
use super::client::{redirect_host, Client, ClientSource};
use super::crypto::{constant_time_eq, sha256_b64, Kind};
use super::error::{html_escape, invalid_request, no_frames, ErrorCode, OAuthError};
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

/// The page itself: plain HTML, no script, one form with `approve` and `deny`.
pub fn render(client: &Client, redirect_uri: &str, scopes: &[String], ticket: &str) -> String {
    let name = client.name.as_deref().unwrap_or("An unnamed application");
    let identity = match client.source {
        ClientSource::MetadataDocument => {
            format!("<p>Client: <code>{}</code></p>", html_escape(&client.id))
        }
        // A registered client named itself: say so, and let the redirect host speak.
        ClientSource::Registered => {
            "<p>This application registered itself; its name is not verified.</p>".to_string()
        }
    };
    let scope_items: String = scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", html_escape(s)))
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorize access</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head><body>\
<h1>Authorize {name}?</h1>{identity}\
<p>After you sign in, you will be sent back to <strong>{host}</strong>.</p>\
<p>It asks for these scopes:</p><ul>{scope_items}</ul>\
<form method=\"post\" action=\"/oauth/authorize\">\
<input type=\"hidden\" name=\"ticket\" value=\"{ticket}\">\
<button type=\"submit\" name=\"action\" value=\"approve\">Approve</button> \
<button type=\"submit\" name=\"action\" value=\"deny\">Deny</button>\
</form></body></html>\n",
        name = html_escape(name),
        host = html_escape(&redirect_host(redirect_uri)),
        ticket = html_escape(ticket),
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
pub fn show(b: &BrokerState, _headers: &HeaderMap, client: &Client, pending: Pending) -> Response {
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
    let html = render(
        client,
        &pending.redirect_uri,
        &shown_scopes(&pending, &b.settings.scopes),
        &sealed,
    );
    let mut r = (StatusCode::OK, html).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_frames(&mut r);
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

/// A browser sends `Origin` on a form POST; when it does, it must be this server.
pub fn origin_allowed(headers: &HeaderMap, issuer: &str) -> bool {
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
        "approve" => go_upstream(&b, StatusCode::SEE_OTHER, pending).await,
        "deny" => {
            b.count(Step::Authorize, "access_denied");
            let e = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            redirect_error(
                StatusCode::SEE_OTHER,
                &b.settings.issuer,
                &pending.redirect_uri,
                pending.state.as_deref(),
                &e,
            )
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

    #[test]
    fn the_page_names_client_host_and_scopes_and_escapes_them() {
        let html = render(
            &client("<script>x</script>"),
            "https://app.example.com/cb",
            &["openid".into(), "mcp:read".into()],
            "T\"K",
        );
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("app.example.com"));
        assert!(html.contains("<code>mcp:read</code>"));
        assert!(html.contains("value=\"T&quot;K\""));
        assert_eq!(html.matches("<form").count(), 1);
        assert!(html.contains("value=\"approve\"") && html.contains("value=\"deny\""));
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
    }
}

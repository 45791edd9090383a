//! The look and the headers of every HTML page the broker shows a person: the consent
//! page, the "continuing" step after it, and the error pages. One layout, so they read
//! as one product.
//!
//! Self-contained on purpose: no external asset (nothing to fetch, nothing to track the
//! person), no script at all (CSP `default-src 'none'`), one inline stylesheet. Readable
//! from 360 px phones to desktops, light and dark (`prefers-color-scheme`), with a
//! visible keyboard focus.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The stylesheet, inline (CSP `style-src 'unsafe-inline'`: styles only, never script).
const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f4f5f7;--card:#fff;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;\
--accent:#0b57d0;--accent-fg:#fff;--warn-bg:#fff8e1;--warn-fg:#6b4e00;--focus:#0b57d0}\
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--fg:#e6edf3;--muted:#9da7b3;\
--line:#30363d;--accent:#4c8dff;--accent-fg:#0d1117;--warn-bg:#3a2f00;--warn-fg:#f2cc60;--focus:#79b0ff}}\
*{box-sizing:border-box}\
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}\
main{max-width:34rem;margin:0 auto;padding:1.5rem 1rem}\
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:1.25rem 1.25rem 1.5rem}\
.brand{margin:0 0 .75rem;color:var(--muted);font-size:.875rem;font-weight:600;letter-spacing:.02em}\
h1{font-size:1.375rem;line-height:1.3;margin:0 0 1rem;overflow-wrap:anywhere}\
h2{font-size:.8125rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);margin:1.25rem 0 .375rem}\
p{margin:.25rem 0 .5rem}ul{margin:.25rem 0 .5rem;padding-left:1.25rem}li{margin:.2rem 0}\
code{font:.875em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}\
.muted{color:var(--muted);font-size:.875rem}\
.warn{background:var(--warn-bg);color:var(--warn-fg);border-radius:8px;padding:.5rem .75rem;font-size:.9375rem}\
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.5rem}\
button,.button{flex:1 1 8rem;min-height:2.75rem;font:inherit;font-weight:600;border-radius:8px;cursor:pointer;\
padding:.5rem 1rem;border:1px solid var(--line);background:var(--card);color:var(--fg);text-align:center;text-decoration:none}\
button.primary,.button.primary{background:var(--accent);border-color:var(--accent);color:var(--accent-fg)}\
button:focus-visible,.button:focus-visible,a:focus-visible{outline:3px solid var(--focus);outline-offset:2px}\
a{color:var(--accent)}";

/// A whole page: `brand` (the gateway's display name) above a card holding `body`
/// (already-escaped HTML). `refresh_to`: a URL the page moves on to by itself
/// (`<meta http-equiv="refresh">`, no script).
pub fn layout(brand: &str, title: &str, body: &str, refresh_to: Option<&str>) -> String {
    let refresh = refresh_to
        .map(|u| {
            format!(
                "<meta http-equiv=\"refresh\" content=\"0;url={}\">",
                html_escape(u)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light dark\">{refresh}\
<title>{title}</title><style>{STYLE}</style></head><body><main><div class=\"card\">\
<p class=\"brand\">{brand}</p>{body}</div></main></body></html>\n",
        title = html_escape(title),
        brand = html_escape(brand),
    )
}

/// The Content-Security-Policy of every broker page. `form-action 'self'`: the only form
/// (consent) posts to this server, and the answer to that POST is a page, not a redirect,
/// so Chromium's checking of `form-action` along the redirects that follow a submission
/// never meets the IdP's or the client's origin (see `consent.rs`).
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
frame-ancestors 'none'; base-uri 'none'";

/// An HTML answer with the headers every broker page carries.
pub fn html_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    protect(&mut r);
    r
}

/// Headers of every HTML page the broker serves: never framed (clickjacking: XFO and
/// `frame-ancestors`), never cached, and a referrer policy that sends the full URL (which
/// may carry the client's `state`) only to this origin. `same-origin` rather than
/// `no-referrer`: with `no-referrer` Chromium sends `Origin: null` on the consent page's
/// own POST, which the cross-origin check must then refuse.
pub fn protect(r: &mut Response) {
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_escapes_and_carries_no_script_or_external_asset() {
        let html = layout("<Acme>", "T\"", "<p>x</p>", Some("https://idp/a?b=1&c=\"2"));
        assert!(html.contains("&lt;Acme&gt;"));
        assert!(html.contains("<title>T&quot;</title>"));
        assert!(html.contains("url=https://idp/a?b=1&amp;c=&quot;2\""));
        assert!(!html.contains("<script"));
        assert!(!html.contains("src="));
        assert!(!html.contains("<link"));
        assert!(html.contains("prefers-color-scheme:dark"));
        assert!(html.contains(":focus-visible"));
    }

    #[test]
    fn pages_are_unframeable_uncached_and_keep_the_referrer_at_home() {
        let r = html_response(StatusCode::OK, String::new());
        let h = r.headers();
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
        let csp = h
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"));
        assert!(csp.contains("default-src 'none'"));
        assert_eq!(h.get(header::REFERRER_POLICY).unwrap(), "same-origin");
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store");
    }
}

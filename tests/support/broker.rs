//! The broker-mode sign-in as a person and a client do it, shared by the broker, sealed
//! and doctor tests: the `server.oauth` block for the real IdP (`e2e/idp`), and a
//! cookie-keeping browser that registers a client, authorizes, approves the gateway's
//! consent page, signs in and consents at the IdP, comes back through the callback and
//! redeems the code. Every response it receives is kept, for tests that search them.

use std::collections::HashMap;

use chmcp_gateway::oauth::broker::crypto::sha256_b64;
use serde_json::{json, Value};

use super::idp::Idp;

/// The audience every broker test configures.
pub const AUDIENCE: &str = "https://mcp.example.com/";
/// The client's redirect URI: nothing listens there; the tests read the Location header.
pub const CLIENT_REDIRECT: &str = "http://127.0.0.1:9/cb";
/// The `state` the client sends, and must get back.
pub const CLIENT_STATE: &str = "client-state-1";

/// The `server.oauth` block (indented under `server:`) of a broker for `idp` whose
/// authorization server is `public_url`, sealing with `signing_secret`; `extra` continues
/// the block (four spaces).
pub fn oauth(idp: &Idp, public_url: &str, signing_secret: &str, extra: &str) -> String {
    format!(
        "  oauth:\n    enabled: true\n    broker: true\n    issuer: {issuer}\n    audience: {AUDIENCE}\n    public_auth_server_url: {public_url}\n    client_id: {cid}\n    client_secret: {secret}\n    signing_secret: {signing_secret}\n{extra}",
        issuer = idp.issuer,
        cid = idp.broker_client_id,
        secret = idp.client_secret,
    )
}

/// An HTTP client that follows no redirect: the tests look at each Location themselves.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build the HTTP client")
}

/// `rel` resolved against `base`.
pub fn resolve(base: &str, rel: &str) -> String {
    reqwest::Url::parse(base)
        .and_then(|b| b.join(rel))
        .unwrap_or_else(|e| panic!("{rel} against {base}: {e}"))
        .to_string()
}

/// The query parameters of `url`, decoded.
pub fn query_of(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The value of `attr="..."` in the first tag starting with `tag_start`.
pub fn attr(html: &str, tag_start: &str, attr: &str) -> Option<String> {
    let rest = html.get(html.find(tag_start)?..)?;
    let tag = rest.get(..rest.find('>')?)?;
    let key = format!("{attr}=\"");
    let v = tag.get(tag.find(&key)? + key.len()..)?;
    Some(
        v.get(..v.find('"')?)?
            .replace("&amp;", "&")
            .replace("&quot;", "\""),
    )
}

/// A JSON answer, or the text as `{"raw": text}` when it is not JSON.
pub fn json_or_raw(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!({ "raw": text }))
}

/// A PKCE pair (RFC 7636, S256) whose verifier starts with `seed`.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce(seed: &str) -> Pkce {
    let verifier = format!("{seed}-{}", "v".repeat(50));
    Pkce {
        challenge: sha256_b64(&verifier),
        verifier,
    }
}

/// The authorization request of a public client registered for [`CLIENT_REDIRECT`], with
/// `extra` query pairs appended.
pub fn authorize_url(base: &str, client_id: &str, p: &Pkce, extra: &[(&str, &str)]) -> String {
    let mut u = reqwest::Url::parse(&format!("{base}/oauth/authorize"))
        .unwrap_or_else(|e| panic!("{base}: {e}"));
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", CLIENT_REDIRECT)
            .append_pair("state", CLIENT_STATE)
            .append_pair("code_challenge", &p.challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("scope", "openid email");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

/// One response as the browser received it.
pub struct Page {
    pub url: String,
    pub status: u16,
    /// The Location header, resolved against `url`.
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

/// A headless browser: follows nothing by itself and keeps cookies per host (as browsers
/// do: cookies are not isolated by port, RFC 6265 §8.5).
#[derive(Default)]
pub struct Browser {
    jar: HashMap<String, HashMap<String, String>>,
    /// Every response, as text: URL and status, every header, the body.
    pub received: Vec<String>,
}

impl Browser {
    pub async fn send(&mut self, req: reqwest::RequestBuilder, url: &str) -> Page {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no host in {url}"));
        let cookies = self.jar.get(&host).map(|c| {
            c.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        });
        let req = match cookies {
            Some(c) if !c.is_empty() => req.header("cookie", c),
            _ => req,
        };
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        for sc in resp.headers().get_all("set-cookie") {
            let sc = sc.to_str().expect("a set-cookie header in ASCII");
            if let Some((k, v)) = sc.split(';').next().and_then(|kv| kv.split_once('=')) {
                self.jar
                    .entry(host.clone())
                    .or_default()
                    .insert(k.trim().to_string(), v.to_string());
            }
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut location = headers
            .get("location")
            .map(|l| resolve(url, l.to_str().expect("a Location header in ASCII")));
        let body = resp.text().await.unwrap_or_default();
        // The broker's "continuing" page (after the consent POST) moves on by itself with
        // a meta refresh, as a browser follows it; its Continue link names the same URL.
        if location.is_none() && status == 200 && body.contains("http-equiv=\"refresh\"") {
            location = attr(&body, "<a class=\"button primary\" id=\"continue\"", "href")
                .map(|href| resolve(url, &href));
        }
        let mut record = format!("{url} -> {status}\n");
        for (k, v) in &headers {
            record.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        record.push_str(&body);
        self.received.push(record);
        Page {
            url: url.to_string(),
            status,
            location,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.send(http().get(url), url).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        self.send(http().post(url).form(form), url).await
    }

    /// The status and the JSON answer (see [`json_or_raw`]) of `req` to `url`.
    pub async fn json(&mut self, req: reqwest::RequestBuilder, url: &str) -> (u16, Value) {
        let p = self.send(req, url).await;
        (p.status, json_or_raw(&p.body))
    }

    /// A dynamic client registration (RFC 7591) with `body`.
    pub async fn register(&mut self, base: &str, body: &Value) -> (u16, Value) {
        let url = format!("{base}/oauth/register");
        let req = http()
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.json(req, &url).await
    }

    /// Registers a public client named `name` for [`CLIENT_REDIRECT`]; its client id.
    pub async fn public_client(&mut self, base: &str, name: &str) -> String {
        let body = json!({"redirect_uris": [CLIENT_REDIRECT], "token_endpoint_auth_method": "none", "client_name": name});
        let (status, reg) = self.register(base, &body).await;
        assert_eq!(status, 201, "{reg}");
        reg["client_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no client_id in {reg}"))
            .to_string()
    }

    /// Approves on the consent page `consent_html` (its form's ticket), as the person would.
    pub async fn approve(&mut self, auth_base: &str, consent_html: &str) -> Page {
        let ticket = attr(
            consent_html,
            "<input type=\"hidden\" name=\"ticket\"",
            "value",
        )
        .unwrap_or_else(|| panic!("the consent page carries no ticket: {consent_html}"));
        self.post(
            &format!("{auth_base}/oauth/authorize"),
            &[("ticket", &ticket), ("action", "approve")],
        )
        .await
    }

    /// Follows redirects and answers the IdP's login (as `alice`) and consent forms until
    /// the browser is sent to `stop_prefix` (after `rewrite`, the test's load balancer);
    /// returns that URL.
    pub async fn drive_until(
        &mut self,
        start: Page,
        stop_prefix: &str,
        rewrite: &dyn Fn(String) -> String,
    ) -> String {
        let mut page = start;
        for _ in 0..20 {
            if let Some(loc) = page.location.take() {
                let loc = rewrite(loc);
                if loc.starts_with(stop_prefix) {
                    return loc;
                }
                page = self.get(&loc).await;
                continue;
            }
            assert_eq!(page.status, 200, "unexpected page: {}", page.body);
            let action = attr(&page.body, "<form", "action")
                .unwrap_or_else(|| panic!("no form in page: {}", page.body));
            let action = resolve(&page.url, &action);
            page = if page.body.contains("name=\"login\"") {
                self.post(
                    &action,
                    &[("prompt", "login"), ("login", "alice"), ("password", "any")],
                )
                .await
            } else {
                self.post(&action, &[("prompt", "consent")]).await
            };
        }
        panic!("the sign-in did not finish within 20 steps");
    }

    /// authorize on `auth_base` (with `extra` query pairs) → the gateway's consent page,
    /// approved → the IdP's login and consent → the callback, served by `callback_base`
    /// (another replica behind the same public URL, or the same). Returns the consent page
    /// and the URL the client is sent back to.
    pub async fn sign_in(
        &mut self,
        idp: &Idp,
        auth_base: &str,
        callback_base: &str,
        client_id: &str,
        p: &Pkce,
        extra: &[(&str, &str)],
    ) -> (Page, String) {
        let consent = self
            .get(&authorize_url(auth_base, client_id, p, extra))
            .await;
        assert_eq!(consent.status, 200, "{}", consent.body);
        let approved = self.approve(auth_base, &consent.body).await;
        assert_eq!(
            approved.status, 200,
            "the continuing page: {}",
            approved.body
        );
        let to_idp = approved.location.as_deref().unwrap_or_default();
        assert!(to_idp.starts_with(&idp.issuer), "{to_idp}");
        let (from, to) = (
            format!("{auth_base}/oauth/callback"),
            format!("{callback_base}/oauth/callback"),
        );
        let at_callback = self
            .drive_until(approved, &to, &|loc: String| loc.replacen(&from, &to, 1))
            .await;
        let back = self.get(&at_callback).await;
        assert_eq!(back.status, 302, "{}", back.body);
        let back = back.location.expect("the callback redirects to the client");
        (consent, back)
    }

    /// A token request with `form`.
    pub async fn token(&mut self, base: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let url = format!("{base}/oauth/token");
        self.json(http().post(&url).form(form), &url).await
    }

    /// Redeems `code` for the public client `client_id`, with `extra` form fields.
    pub async fn redeem(
        &mut self,
        base: &str,
        client_id: &str,
        code: &str,
        verifier: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CLIENT_REDIRECT),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ];
        form.extend_from_slice(extra);
        self.token(base, &form).await
    }
}

/// `chmcp-gateway serve` in a private mount namespace whose `/etc/resolv.conf` names a
/// UDP port that never answers (testing.md, "a black-hole DNS"): every name lookup the
/// gateway makes hangs until the resolver gives up. Root only; killed on drop.
pub struct BlackHoleGateway {
    child: std::process::Child,
    dir: std::path::PathBuf,
    pub port: u16,
    _sink: std::net::UdpSocket,
}

impl BlackHoleGateway {
    /// Why it cannot run here, if it cannot (not root, or no `unshare --mount`).
    pub fn unavailable() -> Option<String> {
        let ok = std::process::Command::new("unshare")
            .args(["--mount", "true"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        (!ok).then(|| "`unshare --mount` is not permitted here (needs root)".to_string())
    }

    /// Starts the gateway with `config(public_url)` behind the black hole.
    pub fn start(config: impl FnOnce(&str) -> String) -> Self {
        use std::process::{Command, Stdio};
        let dir = crate::temp_dir("blackhole-dns");
        // A loopback address of its own (127/8 is all loopback on Linux), port 53 as
        // resolv.conf requires; bound and never read: queries vanish.
        let mut sink = None;
        for last in 2..250u8 {
            if let Ok(s) =
                std::net::UdpSocket::bind((std::net::Ipv4Addr::new(127, 53, 19, last), 53))
            {
                sink = Some(s);
                break;
            }
        }
        let sink = sink.expect("a UDP port 53 on some 127.53.19.x");
        let ns = sink.local_addr().expect("the sink's address").ip();
        let resolv = dir.join("resolv.conf");
        std::fs::write(
            &resolv,
            format!("nameserver {ns}\noptions timeout:30 attempts:1\n"),
        )
        .expect("write resolv.conf");
        let port = crate::free_port();
        let public = format!("http://127.0.0.1:{port}");
        let cfg = dir.join("config.yaml");
        std::fs::write(&cfg, config(&public)).expect("write the config");
        let log = std::fs::File::create(dir.join("process.log")).expect("log file");
        let child = Command::new("unshare")
            .args(["--mount", "sh", "-c"])
            .arg(r#"mount --bind "$1" /etc/resolv.conf && exec "$2" serve --config "$3" --set server.address=127.0.0.1 --set server.port="$4""#)
            .arg("sh")
            .arg(&resolv)
            .arg(crate::gateway_binary())
            .arg(&cfg)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn unshare");
        let gw = Self {
            child,
            dir,
            port,
            _sink: sink,
        };
        let started = std::time::Instant::now();
        while !gw.log().contains("chmcp gateway listening") {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(15),
                "the gateway did not listen; log:\n{}",
                gw.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        gw
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("process.log")).unwrap_or_default()
    }

    /// The gateway's thread count now (`exec` kept the child's pid).
    pub fn threads(&self) -> usize {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().parse().ok()))
                    .flatten()
            })
            .unwrap_or(0)
    }
}

impl Drop for BlackHoleGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! `chmcp-gateway doctor URL` against a real gateway binary in broker mode with the real
//! IdP (npm `oidc-provider`, `e2e/idp`): green when everything is right, and for each
//! deliberately broken set-up a failure that names the broken link. Where the gateway
//! cannot be broken by configuration, a labelled PROXY DOUBLE stands in front of the real
//! gateway and changes exactly one answer (see [`ProxyDouble`]).

use std::process::Command;
use std::sync::Arc;

use chmcp_gateway::doctor::checks_after_challenge;
use chmcp_tests::broker;
use chmcp_tests::gateway::{self, Gateway};
use chmcp_tests::gateway_binary;
use chmcp_tests::http_double::read_raw_request;
use chmcp_tests::idp::Idp;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const SIGNING_SECRET: &str = "doctor-test-signing-secret-0123456789abcdef";
const CLAUDE: &str = "  allowed_origins: [\"https://claude.ai\"]\n";

/// A broker-mode gateway (the demo set-up of the README) whose public URL is `public_url`.
/// `oauth_extra` lands under `server.oauth`, `server_extra` under `server`.
fn broker_config(idp: &Idp, public_url: &str, oauth_extra: &str, server_extra: &str) -> String {
    let oauth = broker::oauth(idp, public_url, SIGNING_SECRET, oauth_extra);
    gateway::config(9, &format!("server:\n{server_extra}{oauth}"))
}

fn broker_gateway(idp: &Idp, oauth_extra: &str, server_extra: &str) -> Gateway {
    Gateway::start_at_own_url(|base| broker_config(idp, base, oauth_extra, server_extra))
}

/// The doctor's run: exit code, the JSON report, and the same run's text form.
struct Run {
    code: Option<i32>,
    json: Value,
    text: String,
}

impl Run {
    fn check(&self, id: &str) -> &Value {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id} in {}", self.json))
    }

    fn failed(&self) -> Vec<String> {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    }
}

async fn doctor(url: &str) -> Run {
    doctor_with(url, &[]).await
}

/// The doctor with more arguments (`--origin URL`).
async fn doctor_with(url: &str, more: &[&str]) -> Run {
    let url = url.to_string();
    let more: Vec<String> = more.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let run = |json: bool| {
            let mut cmd = Command::new(gateway_binary());
            cmd.args(["doctor", &url]).args(&more);
            if json {
                cmd.arg("--json");
            }
            cmd.output().expect("run chmcp-gateway doctor")
        };
        let json = run(true);
        let text = run(false);
        assert_eq!(json.status.code(), text.status.code());
        Run {
            code: json.status.code(),
            json: serde_json::from_slice(&json.stdout).unwrap_or_else(|e| {
                panic!(
                    "not JSON ({e}): {}{}",
                    String::from_utf8_lossy(&json.stdout),
                    String::from_utf8_lossy(&json.stderr)
                )
            }),
            text: String::from_utf8_lossy(&text.stdout).to_string(),
        }
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// The proxy double

/// One answer of the real gateway, as the double may change it.
struct Upstream {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

type Rewrite = dyn Fn(&str, Upstream) -> Upstream + Send + Sync;

/// A PROXY DOUBLE: forwards every request (method, headers including `Host`, body) to the
/// real gateway and passes its answer back through `rewrite(path, answer)`. What a real
/// deployment does differently: nothing, except the one answer the test's `rewrite`
/// changes, standing for a proxy or server that serves that link wrongly.
struct ProxyDouble {
    port: u16,
    listener: Option<TcpListener>,
}

impl ProxyDouble {
    async fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self {
            port: listener.local_addr().unwrap().port(),
            listener: Some(listener),
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self, upstream_port: u16, rewrite: Arc<Rewrite>) {
        let listener = self.listener.take().unwrap();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let rewrite = rewrite.clone();
                tokio::spawn(async move {
                    let _ = forward(sock, upstream_port, &*rewrite).await;
                });
            }
        });
    }
}

async fn forward(
    mut sock: tokio::net::TcpStream,
    upstream_port: u16,
    rewrite: &Rewrite,
) -> Option<()> {
    let (head, body) = read_raw_request(&mut sock).await?;
    let mut lines = head.lines();
    let mut request_line = lines.next()?.split_whitespace();
    let (method, target) = (request_line.next()?, request_line.next()?);
    let mut req = broker::http()
        .request(
            method.parse().ok()?,
            format!("http://127.0.0.1:{upstream_port}{target}"),
        )
        .body(body);
    for (k, v) in lines.filter_map(|l| l.split_once(':')) {
        if !k.eq_ignore_ascii_case("content-length") && !k.eq_ignore_ascii_case("connection") {
            req = req.header(k.trim(), v.trim());
        }
    }
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            )
        })
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.bytes().await.ok()?.to_vec();
    let path = target.split('?').next().unwrap_or(target);
    let out = rewrite(
        path,
        Upstream {
            status,
            headers,
            body,
        },
    );
    let mut wire = format!("HTTP/1.1 {} X\r\n", out.status);
    for (k, v) in &out.headers {
        wire.push_str(&format!("{k}: {v}\r\n"));
    }
    wire.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        out.body.len()
    ));
    let mut bytes = wire.into_bytes();
    bytes.extend_from_slice(&out.body);
    sock.write_all(&bytes).await.ok()
}

/// A gateway behind a proxy double: the gateway's public URL is the double's.
async fn behind_double(
    idp: &Idp,
    server_extra: &str,
    rewrite: Arc<Rewrite>,
) -> (Gateway, ProxyDouble) {
    let mut double = ProxyDouble::bind().await;
    let gw = Gateway::start(&broker_config(idp, &double.base(), "", server_extra));
    double.start(gw.port, rewrite);
    (gw, double)
}

// ---------------------------------------------------------------------------------------
// Green

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_is_green_against_the_broker_with_the_real_idp_in_both_token_modes() {
    let idp = Idp::start().unwrap();
    // Sealed is the broker's default; passthrough is the opt-out.
    // No server.allowed_origins: right for claude.ai and ChatGPT, which call from their
    // servers and send no Origin. CORS for a browser page is then a note, not a failure.
    for mode in ["", "    token_mode: passthrough\n"] {
        let gw = broker_gateway(&idp, mode, "");
        let run = doctor(&gw.mcp_url()).await;
        println!("{}", run.text);
        assert_eq!(run.code, Some(0), "{mode}: {}", run.text);
        assert_eq!(run.json["ok"], true);
        assert!(run.failed().is_empty(), "{mode}: {:?}", run.failed());
        for id in std::iter::once("challenge").chain(checks_after_challenge()) {
            assert_eq!(
                run.check(id)["level"],
                "pass",
                "{mode}{id}: {}",
                run.check(id)
            );
        }
        assert_eq!(run.check("tls")["level"], "skip");
        assert!(run.text.contains("✔ challenge"), "{}", run.text);
    }
    // Browser origins limited to one app, claude.ai not among them (it sends no Origin):
    // still green. Before issue 19 the doctor failed this with "2 failed".
    let gw = broker_gateway(&idp, "", "  allowed_origins: [\"https://chatgpt.com\"]\n");
    let run = doctor(&gw.mcp_url()).await;
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert_eq!(run.check("cors.preflight")["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_is_green_on_a_cluster_url_in_multi_cluster_mode() {
    // Each cluster URL is its own resource; the root document describes the gateway
    // (another resource), which is fine because the path form matches.
    let idp = Idp::start().unwrap();
    let gw = Gateway::start_at_own_url(|base| {
        format!(
            "{}multicluster:\n  enabled: true\n  cluster_allowlist: [otel, antalya]\n",
            broker_config(&idp, base, "", CLAUDE)
        )
    });
    let run = doctor(&format!("{}/mcp/otel", gw.base())).await;
    println!("{}", run.text);
    assert_eq!(run.code, Some(0), "{}", run.text);
    let root = run.check("resource_metadata.root");
    assert!(
        root["detail"]
            .as_str()
            .unwrap()
            .contains("another resource"),
        "{root}"
    );
    assert_eq!(
        run.check("resource_metadata.path_inserted")["level"],
        "pass"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_is_green_through_a_pass_through_proxy_double() {
    // The double's baseline: passing every answer through unchanged breaks nothing,
    // so the failures in the tests below come from their one change.
    let idp = Idp::start().unwrap();
    let (_gw, double) = behind_double(&idp, CLAUDE, Arc::new(|_, up| up)).await;
    let run = doctor(&format!("{}/mcp", double.base())).await;
    assert_eq!(run.code, Some(0), "{}", run.text);
}

// ---------------------------------------------------------------------------------------
// Broken, one link at a time

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_public_resource_url_fails_the_metadata_and_names_the_difference() {
    let idp = Idp::start().unwrap();
    let gw = broker_gateway(
        &idp,
        // `public_resource_url` names the audience in passthrough mode (sealed mode
        // names each cluster's own URL).
        "    token_mode: passthrough\n    public_resource_url: https://mcp.example.com/\n",
        CLAUDE,
    );
    let run = doctor(&gw.mcp_url()).await;
    println!("{}", run.text);
    assert_eq!(run.code, Some(1), "{}", run.text);
    let c = run.check("resource_metadata.path_inserted");
    assert_eq!(c["ok"], false);
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("resource \"https://mcp.example.com/\""),
        "{c}"
    );
    assert!(
        c["cause"].as_str().unwrap().contains("scheme differs"),
        "{c}"
    );
    assert!(
        c["fix"].as_str().unwrap().contains("public_resource_url"),
        "{c}"
    );
    assert_eq!(run.check("resource_metadata.challenge_url")["ok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailing_slash_mismatch_is_named_as_one() {
    let idp = Idp::start().unwrap();
    let gw = Gateway::start_at_own_url(|base| {
        broker_config(
            &idp,
            base,
            &format!("    token_mode: passthrough\n    public_resource_url: {base}/mcp/\n"),
            CLAUDE,
        )
    });
    let run = doctor(&gw.mcp_url()).await;
    println!("{}", run.text);
    assert_eq!(run.code, Some(1), "{}", run.text);
    let c = run.check("resource_metadata.path_inserted");
    assert!(
        c["cause"]
            .as_str()
            .unwrap()
            .contains("only by a trailing slash: the server's has it, yours does not"),
        "{c}"
    );
    assert!(
        run.text.contains("✘ resource_metadata.path_inserted"),
        "{}",
        run.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_metadata_path_fails_the_links_that_use_it() {
    let idp = Idp::start().unwrap();
    let (_gw, double) = behind_double(
        &idp,
        CLAUDE,
        Arc::new(|path, up| {
            if path == "/.well-known/oauth-protected-resource/mcp" {
                Upstream {
                    status: 404,
                    headers: vec![],
                    body: b"not here".to_vec(),
                }
            } else {
                up
            }
        }),
    )
    .await;
    let run = doctor(&format!("{}/mcp", double.base())).await;
    println!("{}", run.text);
    assert_eq!(run.code, Some(1), "{}", run.text);
    // In single-cluster mode the challenge names this very path, so both links break;
    // the root form still works and nothing after discovery is affected.
    assert_eq!(
        run.failed(),
        [
            "resource_metadata.challenge_url",
            "resource_metadata.path_inserted"
        ],
        "{}",
        run.text
    );
    assert_eq!(run.check("resource_metadata.root")["level"], "pass");
    let c = run.check("resource_metadata.path_inserted");
    assert!(c["detail"].as_str().unwrap().ends_with(": 404"), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_off_server_fails_the_challenge() {
    // The same URL served with OAuth off: no challenge, and no metadata behind it.
    let gw = Gateway::start("clickhouse:\n  host: 127.0.0.1\n  port: 9\n");
    let run = doctor(&gw.mcp_url()).await;
    assert_eq!(run.code, Some(1), "{}", run.text);
    let c = run.check("challenge");
    assert!(c["detail"].as_str().unwrap().contains(": 200"), "{c}");
    assert!(
        c["fix"].as_str().unwrap().contains("server.oauth.enabled"),
        "{c}"
    );
    assert_eq!(run.check("resource_metadata.path_inserted")["ok"], false);
    assert_eq!(run.check("auth_server_metadata")["level"], "blocked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_registration_fails_registration() {
    // The gateway always offers both DCR and client ID metadata documents; the double
    // removes both from the authorization-server metadata, as a server without them has.
    let idp = Idp::start().unwrap();
    let (_gw, double) = behind_double(
        &idp,
        CLAUDE,
        Arc::new(|path, mut up| {
            if path == "/.well-known/oauth-authorization-server" {
                let mut doc: Value = serde_json::from_slice(&up.body).unwrap();
                let m = doc.as_object_mut().unwrap();
                m.remove("registration_endpoint");
                m.remove("client_id_metadata_document_supported");
                up.body = doc.to_string().into_bytes();
            }
            up
        }),
    )
    .await;
    let run = doctor(&format!("{}/mcp", double.base())).await;
    println!("{}", run.text);
    assert_eq!(run.code, Some(1), "{}", run.text);
    let c = run.check("registration");
    assert_eq!(c["level"], "fail");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("neither registration_endpoint nor client_id_metadata_document_supported"),
        "{c}"
    );
    assert_eq!(run.check("registration.claude_ai")["level"], "blocked");
    assert_eq!(run.check("pkce")["level"], "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_named_with_origin_is_a_hard_check_naming_allowed_origins() {
    // server.allowed_origins lists the MCP Inspector's origin only.
    let idp = Idp::start().unwrap();
    let inspector = "http://localhost:6274";
    let gw = broker_gateway(&idp, "", &format!("  allowed_origins: [\"{inspector}\"]\n"));
    let run = doctor_with(&gw.mcp_url(), &["--origin", "https://app.example.com"]).await;
    println!("{}", run.text);
    assert_eq!(run.code, Some(1), "{}", run.text);
    let c = run.check("cors.preflight");
    assert_eq!(c["ok"], false);
    assert_eq!(c["level"], "fail");
    assert!(c["detail"].as_str().unwrap().contains("403"), "{c}");
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("server.allowed_origins"),
        "{c}"
    );
    assert_eq!(run.check("cors.challenge")["ok"], false);
    assert_eq!(run.check("challenge")["ok"], true);

    // The allowed origin passes as a hard check.
    let run = doctor_with(&gw.mcp_url(), &["--origin", inspector]).await;
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert_eq!(run.check("cors.preflight")["level"], "pass");
    assert_eq!(run.check("cors.challenge")["level"], "pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_fails_the_first_link_and_blocks_the_rest() {
    let port = chmcp_tests::free_port();
    let run = doctor(&format!("http://127.0.0.1:{port}/mcp")).await;
    assert_eq!(run.code, Some(1), "{}", run.text);
    assert_eq!(run.check("challenge")["ok"], false);
    assert_eq!(run.check("pkce")["level"], "blocked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_is_not_one_is_a_usage_error() {
    let out = tokio::task::spawn_blocking(|| {
        Command::new(gateway_binary())
            .args(["doctor", "mcp.example.com/mcp"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mcp.example.com/mcp"));
}

// ---------------------------------------------------------------------------------------
// --login: the whole flow, the person played by an HTTP client that keeps cookies

/// What a person's browser does here: follows redirects by hand, keeps cookies per host,
/// approves the gateway's consent page, and signs in at the IdP as alice.
#[derive(Default)]
struct Person {
    cookies: std::collections::HashMap<String, Vec<(String, String)>>,
}

/// The value of `name="value"` inside the first `<tag ...>` that contains `marker`.
fn attribute(html: &str, marker: &str, name: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..=at].rfind('<')?;
    let tag = &html[start..start + html[start..].find('>')?];
    let key = format!("{name}=\"");
    let from = tag.find(&key)? + key.len();
    let value = &tag[from..from + tag[from..].find('"')?];
    Some(value.replace("&amp;", "&").replace("&quot;", "\""))
}

impl Person {
    async fn go(
        &mut self,
        method: &str,
        url: &str,
        form: &[(&str, &str)],
    ) -> (u16, Option<String>, String) {
        let parsed = reqwest::Url::parse(url).unwrap();
        let host = parsed.host_str().unwrap().to_string();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut req = if method == "POST" {
            client.post(url).form(form)
        } else {
            client.get(url)
        };
        if let Some(jar) = self.cookies.get(&host) {
            let line: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", line.join("; "));
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        for sc in resp.headers().get_all("set-cookie") {
            let first = sc.to_str().unwrap().split(';').next().unwrap();
            if let Some((k, v)) = first.split_once('=') {
                let jar = self.cookies.entry(host.clone()).or_default();
                jar.retain(|(name, _)| name != k.trim());
                jar.push((k.trim().to_string(), v.to_string()));
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|l| parsed.join(l.to_str().unwrap()).unwrap().to_string());
        (status, location, resp.text().await.unwrap_or_default())
    }

    /// From the authorization URL to the client's redirect, answering every page.
    async fn sign_in(&mut self, authorize: &str, stop_at: &str) -> String {
        let (mut status, mut location, mut body) = self.go("GET", authorize, &[]).await;
        let mut url = authorize.to_string();
        for _ in 0..25 {
            if let Some(next) = location.take() {
                if next.starts_with(stop_at) {
                    return next;
                }
                url = next;
                (status, location, body) = self.go("GET", &url, &[]).await;
                continue;
            }
            assert_eq!(status, 200, "{url}: {body}");
            if body.contains("http-equiv=\"refresh\"") {
                // The gateway's continuing page after consent: follow its meta refresh.
                let href = attribute(&body, "id=\"continue\"", "href")
                    .unwrap_or_else(|| panic!("no continue link: {body}"));
                location = Some(
                    reqwest::Url::parse(&url)
                        .unwrap()
                        .join(&href)
                        .unwrap()
                        .to_string(),
                );
                continue;
            }
            if let Some(ticket) = attribute(&body, "name=\"ticket\"", "value") {
                // The gateway's consent page.
                let action = reqwest::Url::parse(&url)
                    .unwrap()
                    .join("/oauth/authorize")
                    .unwrap();
                (status, location, body) = self
                    .go(
                        "POST",
                        action.as_str(),
                        &[("ticket", &ticket), ("action", "approve")],
                    )
                    .await;
                continue;
            }
            let action =
                attribute(&body, "<form", "action").unwrap_or_else(|| panic!("no form: {body}"));
            let action = reqwest::Url::parse(&url)
                .unwrap()
                .join(&action)
                .unwrap()
                .to_string();
            let form: &[(&str, &str)] = if body.contains("name=\"login\"") {
                &[("prompt", "login"), ("login", "alice"), ("password", "any")]
            } else {
                &[("prompt", "consent")]
            };
            url = action.clone();
            (status, location, body) = self.go("POST", &action, form).await;
        }
        panic!("the sign-in did not finish in 25 steps");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_signs_in_through_the_real_idp_and_lists_the_tools() {
    use std::io::{BufRead, BufReader};
    let idp = Idp::start().unwrap();
    let gw = broker_gateway(&idp, "", CLAUDE);
    let mut child = Command::new(gateway_binary())
        .args(["doctor", &gw.mcp_url(), "--login", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let authorize = tokio::task::spawn_blocking(move || loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the doctor printed no authorization URL");
        if let Some(url) = line.trim().strip_prefix("http") {
            break format!("http{url}");
        }
    })
    .await
    .unwrap();
    assert!(
        authorize.starts_with(&format!("{}/oauth/authorize?", gw.base())),
        "{authorize}"
    );
    let redirect_uri = reqwest::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .to_string();
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:"),
        "{redirect_uri}"
    );
    let back = Person::default().sign_in(&authorize, &redirect_uri).await;
    // The browser lands on the doctor's loopback listener.
    let page = reqwest::get(&back).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Signed in"));
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let login = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "login")
        .unwrap()
        .clone();
    assert_eq!(login["level"], "pass", "{login}\n{}", gw.log());
    let detail = login["detail"].as_str().unwrap();
    assert!(
        detail.contains("tools/list with the new token:"),
        "{detail}"
    );
    assert!(!detail.contains(": 0 tool(s)"), "{detail}");
    assert_eq!(out.status.code(), Some(0), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_url_on_a_plain_http_port_fails_tls_in_rustls_words() {
    // A TEST DOUBLE of a plain-HTTP server where the URL says https: it answers every
    // connection with an HTTP 400 at once, as real HTTP servers answer a TLS ClientHello
    // they cannot parse. What a real one does differently: nothing the client sees.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let run = doctor(&format!("https://127.0.0.1:{port}/mcp")).await;
    assert_eq!(run.code, Some(1), "{}", run.text);
    let tls = run.check("tls");
    assert_eq!(tls["level"], "fail", "{tls}");
    assert!(
        tls["cause"].as_str().unwrap().contains("corrupt message"),
        "{tls}"
    );
    assert_eq!(run.check("pkce")["level"], "blocked");
}

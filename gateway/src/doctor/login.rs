//! `doctor --login`: the authorization-code flow a CLI client (Claude Code) runs: a
//! throwaway registration with a loopback redirect, PKCE S256, the person signs in in a
//! browser, the code comes back to a one-shot listener, the token is fetched, and
//! `tools/list` runs with it. The token is used, never printed.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::judge::{self, Fetched};
use super::report::Check;
use super::walk::{self, Discovered};
use crate::net::Url;

const ID: &str = "login";
/// How long the person has to finish signing in.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);
/// The callback's request head is small; anything longer is not a browser redirect.
const CALLBACK_HEAD_CAP: usize = 16 * 1024;

/// Why the flow stopped, as the check's cause.
struct Stop {
    detail: String,
    cause: String,
    fix: &'static str,
}

fn stop(detail: impl Into<String>, cause: impl Into<String>, fix: &'static str) -> Stop {
    Stop {
        detail: detail.into(),
        cause: cause.into(),
        fix,
    }
}

/// Runs the flow; progress and the authorization URL go to stderr (and `notes`) so the
/// person sees them while the doctor waits.
pub(super) async fn run(pasted: &str, found: &Discovered, notes: &mut Vec<String>) -> Check {
    match flow(pasted, found, notes).await {
        Ok(detail) => Check::pass(ID, detail),
        Err(s) => Check::fail(ID, s.detail, s.cause, s.fix),
    }
}

fn random_b64(bytes: usize) -> Result<String, Stop> {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .map_err(|_| stop("no randomness", "the system random source failed", "retry"))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The S256 challenge of a PKCE verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn endpoint(doc: &Value, name: &str) -> Result<String, Stop> {
    doc.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            stop(
                format!("no {name}"),
                format!("the authorization-server metadata has no {name}"),
                "advertise the endpoint in the metadata",
            )
        })
}

async fn flow(pasted: &str, found: &Discovered, notes: &mut Vec<String>) -> Result<String, Stop> {
    let client = walk::http_client().map_err(|e| stop("no HTTP client", e.to_string(), "retry"))?;
    let doc = &found.auth_server;
    let authorize = endpoint(doc, "authorization_endpoint")?;
    let token_endpoint = endpoint(doc, "token_endpoint")?;
    let register = endpoint(doc, "registration_endpoint").map_err(|_| {
        stop(
            "no dynamic registration",
            "--login registers a throwaway client and needs registration_endpoint",
            "enable dynamic client registration, or test the sign-in with a client that has a client ID metadata document",
        )
    })?;

    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| {
        stop(
            "cannot listen on loopback",
            e.to_string(),
            "free a loopback port",
        )
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| stop("cannot listen on loopback", e.to_string(), "retry"))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");

    let registered = walk::send(
        client
            .post(&register)
            .header(CONTENT_TYPE, "application/json")
            .body(
                json!({
                    "client_name": "chmcp doctor --login",
                    "redirect_uris": [redirect_uri],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "none",
                })
                .to_string(),
            ),
    )
    .await
    .outcome;
    let client_id = json_field(&registered, "client_id").ok_or_else(|| {
        stop(
            format!("registration of {redirect_uri} failed"),
            describe(&registered),
            "accept loopback http redirect URIs on any port (RFC 8252 §7.3)",
        )
    })?;

    let verifier = random_b64(32)?;
    let state = random_b64(16)?;
    let mut url = Url::parse(&authorize).map_err(|e| {
        stop(
            "authorization_endpoint is not a URL",
            e.to_string(),
            "fix the metadata",
        )
    })?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("resource", &found.resource);
        if !found.scopes.is_empty() {
            q.append_pair("scope", &found.scopes.join(" "));
        }
    }
    let line = format!("Open this URL in a browser to sign in:\n  {url}");
    eprintln!(
        "{line}\nWaiting up to {} s for the redirect to {redirect_uri} ...",
        SIGN_IN_TIMEOUT.as_secs()
    );
    notes.push(line);

    let query = tokio::time::timeout(SIGN_IN_TIMEOUT, callback(&listener))
        .await
        .map_err(|_| {
            stop(
                "no redirect arrived",
                format!("nobody signed in within {} s", SIGN_IN_TIMEOUT.as_secs()),
                "open the printed URL in a browser on this machine",
            )
        })??;
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let Some(error) = param("error") {
        return Err(stop(
            format!("the authorization server redirected with error={error}"),
            param("error_description").unwrap_or_default(),
            "see the server's log for why the authorization was refused",
        ));
    }
    if param("state").as_deref() != Some(state.as_str()) {
        return Err(stop(
            "the redirect carried another state",
            "the state parameter was not returned unchanged (RFC 6749 §4.1.2)",
            "return the client's state unchanged",
        ));
    }
    let issuer = doc
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(iss) = param("iss").filter(|i| i != issuer) {
        return Err(stop(
            format!("the redirect names issuer {iss}"),
            format!("expected {issuer} (RFC 9207 mix-up defence)"),
            "make the iss parameter the issuer of the metadata",
        ));
    }
    let code = param("code").ok_or_else(|| {
        stop(
            "the redirect has no code",
            "no code parameter",
            "return the authorization code",
        )
    })?;

    let token = walk::send(client.post(&token_endpoint).form(&[
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", client_id.as_str()),
        ("code_verifier", verifier.as_str()),
        ("resource", found.resource.as_str()),
    ]))
    .await
    .outcome;
    let access_token = json_field(&token, "access_token").ok_or_else(|| {
        stop(
            "the token request failed",
            describe(&token),
            "see the authorization server's log for the token endpoint's error",
        )
    })?;
    let tools = list_tools(&client, pasted, &access_token).await?;
    let line = format!("tools/list with the new token: {tools} tool(s)");
    notes.push(line.clone());
    Ok(format!("signed in through {authorize}; {line}"))
}

fn json_field(outcome: &judge::Outcome, name: &str) -> Option<String> {
    let r = outcome.as_ref().ok()?;
    if !(200..300).contains(&r.status) {
        return None;
    }
    serde_json::from_slice::<Value>(&r.body)
        .ok()?
        .get(name)?
        .as_str()
        .map(str::to_string)
}

fn describe(outcome: &judge::Outcome) -> String {
    match outcome {
        Ok(r) => format!(
            "{} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
                .chars()
                .take(300)
                .collect::<String>()
        ),
        Err(e) => e.clone(),
    }
}

/// Accepts connections until one is a GET for `/callback`; answers it with a page saying
/// the window can be closed, and returns its query parameters.
async fn callback(listener: &TcpListener) -> Result<Vec<(String, String)>, Stop> {
    loop {
        let (mut sock, _) = listener
            .accept()
            .await
            .map_err(|e| stop("the loopback listener failed", e.to_string(), "retry"))?;
        let mut head = Vec::new();
        let mut chunk = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < CALLBACK_HEAD_CAP {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
        let text = String::from_utf8_lossy(&head);
        let target = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_default();
        let parsed = Url::parse(&format!("http://127.0.0.1{target}")).ok();
        let Some(url) = parsed.filter(|u| u.path() == "/callback") else {
            let _ = sock
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            continue;
        };
        let page = "<!doctype html><title>chmcp doctor</title><p>Signed in. You can close this window and go back to the terminal.</p>";
        let _ = sock
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                )
                .as_bytes(),
            )
            .await;
        return Ok(url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect());
    }
}

/// A JSON-RPC result from a JSON or an SSE (`data:` lines) response body.
fn rpc_result(r: &Fetched) -> Option<Value> {
    let body = String::from_utf8_lossy(&r.body);
    let direct = serde_json::from_str::<Value>(&body).ok();
    let message = direct.or_else(|| {
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("result").is_some() || v.get("error").is_some())
    })?;
    message.get("result").cloned()
}

/// The JSON-RPC result of a 200 answer.
fn ok_result(outcome: &judge::Outcome) -> Option<Value> {
    outcome
        .as_ref()
        .ok()
        .filter(|r| r.status == 200)
        .and_then(rpc_result)
}

/// `initialize`, `notifications/initialized`, then `tools/list` with the token; the count.
async fn list_tools(client: &reqwest::Client, url: &str, token: &str) -> Result<usize, Stop> {
    let bearer = format!("Bearer {token}");
    let post = |body: Value, version: Option<&str>| {
        let mut req = client
            .post(url)
            .header(AUTHORIZATION, bearer.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .body(body.to_string());
        if let Some(v) = version {
            req = req.header("mcp-protocol-version", v);
        }
        req
    };
    let init = walk::send(post(judge::initialize_request(), None))
        .await
        .outcome;
    let version = ok_result(&init)
        .and_then(|v| v.get("protocolVersion").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| {
            stop(
                "initialize with the token failed",
                describe(&init),
                "the server refused its own token: check the audience (resource) and the server's log",
            )
        })?;
    let _ = walk::send(post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(&version),
    ))
    .await;
    let listed = walk::send(post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}),
        Some(&version),
    ))
    .await
    .outcome;
    ok_result(&listed)
        .and_then(|v| v.get("tools").and_then(Value::as_array).map(Vec::len))
        .ok_or_else(|| {
            stop(
                "tools/list with the token failed",
                describe(&listed),
                "see the server's log for why tools/list failed",
            )
        })
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderMap;

    use super::*;

    #[test]
    fn pkce_challenge_is_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn rpc_results_are_read_from_json_and_from_sse() {
        let fetched = |body: &str| Fetched {
            status: 200,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        };
        let json = fetched(r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{},{}]}}"#);
        assert_eq!(
            rpc_result(&json).unwrap()["tools"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let sse = fetched(
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}}\n\n",
        );
        assert_eq!(rpc_result(&sse).unwrap()["tools"], json!([]));
        assert_eq!(rpc_result(&fetched("nope")), None);
    }
}

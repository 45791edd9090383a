//! Sealed token mode (`server.oauth.token_mode: sealed`, the broker default) against the
//! real OpenID Provider (npm `oidc-provider`, `e2e/idp`) and the real ClickHouse 18.16
//! behind a labelled logging pass-through: clients hold only the gateway's opaque token,
//! ClickHouse gets the upstream one, a token is valid only for the cluster it was issued
//! for, and altered, expired, foreign-secret or raw IdP tokens are refused before
//! anything reaches ClickHouse.

use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chmcp_gateway::oauth::broker::crypto::{Kind, Sealer};
use chmcp_gateway::oauth::broker::token::RefreshWrapper;
use chmcp_gateway::oauth::sealed::{open_access_token, SealedAccess, PREFIX};
use chmcp_tests::broker::{
    self, http, pkce, query_of, Browser, Page, Pkce, CLIENT_REDIRECT, CLIENT_STATE,
};
use chmcp_tests::clickhouse::ClickHouse;
use chmcp_tests::free_port;
use chmcp_tests::gateway::Gateway;
use chmcp_tests::http_double::read_raw_request;
use chmcp_tests::idp::Idp;
use chmcp_tests::jwt::now;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const SIGNING_SECRET: &str = "sealed-test-signing-secret-0123456789abcdef";
/// The user the IdP signs in (e2e/idp: the `alice` account).
const ALICE: &str = "alice@example.com";

// ---------------------------------------------------------------------------------------
// LOGGING PASS-THROUGH — a TEST DOUBLE in front of the real ClickHouse 18.16.
//
// What it does: records the credentials of every request, refuses `Bearer` the way a
// ClickHouse without token processors does (code 516, so the gateway's probe moves on to
// Basic), and forwards Basic requests to the real 18.16 as its `default` user.
// What the real thing does differently: a modern ClickHouse whose users are
// `IDENTIFIED WITH http SERVER 'chmcp_verify'` sends the Basic credentials to the
// verifier, which checks the token's signature and that the username is its `email`;
// this double checks nothing (e2e/broker.sh runs the same flow with the real verifier).
// It exists so a test can see exactly which credential the gateway presented.

#[derive(Debug, Clone, PartialEq)]
struct Presented {
    user: String,
    password: String,
}

struct LoggingPassThrough {
    port: u16,
    seen: Arc<Mutex<Vec<Presented>>>,
    bearers: Arc<Mutex<Vec<String>>>,
}

impl LoggingPassThrough {
    async fn start(clickhouse_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<Presented>>> = Arc::default();
        let bearers: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, b) = (seen.clone(), bearers.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (s, b) = (s.clone(), b.clone());
                tokio::spawn(async move { pass(sock, clickhouse_port, s, b).await });
            }
        });
        Self {
            port,
            seen,
            bearers,
        }
    }

    fn presented(&self) -> Vec<Presented> {
        self.seen.lock().unwrap().clone()
    }

    fn bearers(&self) -> Vec<String> {
        self.bearers.lock().unwrap().clone()
    }
}

async fn pass(
    mut sock: tokio::net::TcpStream,
    ch_port: u16,
    seen: Arc<Mutex<Vec<Presented>>>,
    bearers: Arc<Mutex<Vec<String>>>,
) {
    let Some((head, body)) = read_raw_request(&mut sock).await else {
        return;
    };
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("POST").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let auth = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let reply = |status: u16, body: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    let out = match auth.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            bearers.lock().unwrap().push(token.to_string());
            reply(401, b"Code: 516. DB::Exception: default: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)\n")
        }
        Some((scheme, b64)) if scheme.eq_ignore_ascii_case("basic") => {
            let raw =
                String::from_utf8(STANDARD.decode(b64).unwrap_or_default()).unwrap_or_default();
            let (user, password) = raw.split_once(':').unwrap_or((&raw, ""));
            seen.lock().unwrap().push(Presented {
                user: user.to_string(),
                password: password.to_string(),
            });
            let sep = if target.contains('?') { '&' } else { '?' };
            let url = format!("http://127.0.0.1:{ch_port}{target}{sep}user=default");
            let req = reqwest::Client::new()
                .request(method.parse().unwrap_or(reqwest::Method::POST), url)
                .body(body);
            match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body = r.bytes().await.unwrap_or_default();
                    reply(status, &body)
                }
                Err(e) => reply(502, e.to_string().as_bytes()),
            }
        }
        _ => reply(
            401,
            b"Code: 194. DB::Exception: Password required for user default (REQUIRED_PASSWORD)\n",
        ),
    };
    let _ = sock.write_all(&out).await;
}

// ---------------------------------------------------------------------------------------
// The client: a `broker::Browser`, which keeps every response it (and the person's
// browser) receives during the flow — status, every header, the body — to be searched
// for token bytes.

/// One MCP request with `bearer`; the whole response page.
async fn mcp(client: &mut Browser, url: &str, bearer: &str, method: &str, params: Value) -> Page {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let req = http()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .bearer_auth(bearer)
        .body(body.to_string());
    client.send(req, url).await
}

/// Signs `client` in through `base` (asking for `resource`, when given); the
/// authorization code.
async fn sign_in(
    client: &mut Browser,
    idp: &Idp,
    base: &str,
    client_id: &str,
    p: &Pkce,
    resource: Option<&str>,
) -> String {
    let extra: Vec<(&str, &str)> = resource.map(|r| ("resource", r)).into_iter().collect();
    let (_, back) = client.sign_in(idp, base, base, client_id, p, &extra).await;
    assert!(back.starts_with(CLIENT_REDIRECT), "{back}");
    let q = query_of(&back);
    assert_eq!(q["state"], CLIENT_STATE);
    q["code"].clone()
}

// ---------------------------------------------------------------------------------------
// The fleet: IdP, ClickHouse, the pass-through, and gateways serving `otel` and `antalya`

struct Fleet {
    idp: Idp,
    _ch: ClickHouse,
    ch_double: LoggingPassThrough,
}

async fn fleet() -> Fleet {
    let idp = Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"));
    let ch = ClickHouse::start();
    let ch_double = LoggingPassThrough::start(ch.http_port).await;
    Fleet {
        idp,
        _ch: ch,
        ch_double,
    }
}

impl Fleet {
    /// A gateway listening on `port` whose public URL is `public` (its own, or another
    /// replica's), with `extra` appended under `server.oauth`.
    fn gateway(&self, port: u16, public: &str, secret: &str, extra: &str) -> Gateway {
        Gateway::start_on(port, &self.config(public, secret, extra))
    }

    fn own_gateway(&self, extra: &str) -> Gateway {
        Gateway::start_at_own_url(|public| self.config(public, SIGNING_SECRET, extra))
    }

    fn config(&self, public: &str, secret: &str, extra: &str) -> String {
        let p = self.ch_double.port;
        let oauth = broker::oauth(
            &self.idp,
            public,
            secret,
            &format!("    upstream_offline_access: true\n{extra}"),
        );
        format!(
            "clickhouse:
  host: 127.0.0.1
multicluster:
  enabled: true
  cluster_allowlist: [otel, antalya]
  clusters: {{otel: {{port: {p}}}, antalya: {{port: {p}}}}}
server:
{oauth}"
        )
    }
}

fn sealer() -> Sealer {
    Sealer::new(SIGNING_SECRET.as_bytes()).unwrap()
}

/// The upstream token inside one of the gateway's sealed access tokens.
fn opened(access: &str) -> SealedAccess {
    open_access_token(&sealer(), access, now()).expect("a sealed token of ours")
}

fn upstream_refresh(refresh: &str) -> String {
    sealer()
        .open::<RefreshWrapper>(Kind::RefreshToken, refresh, now())
        .expect("a refresh wrapper of ours")
        .upstream
}

fn jwt_exp(token: &str) -> u64 {
    let payload = token.split('.').nth(1).expect("an upstream JWT");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["exp"].as_u64().expect("exp")
}

fn assert_sealed_shape(access: &str, upstream: &str) {
    assert!(access.starts_with(PREFIX), "{access}");
    assert_eq!(
        access.matches('.').count(),
        1,
        "not a JWT's shape: {access}"
    );
    assert_ne!(access, upstream);
    assert_eq!(
        upstream.matches('.').count(),
        2,
        "the upstream is the IdP's JWT"
    );
}

/// No 16-byte window of `secret` occurs anywhere in `haystack`.
fn assert_no_window(haystack: &[String], secret: &str, what: &str) {
    assert!(secret.len() >= 16, "{what} is too short to search");
    for (i, record) in haystack.iter().enumerate() {
        for start in 0..=secret.len() - 16 {
            let w = &secret[start..start + 16];
            assert!(
                !record.contains(w),
                "bytes {start}..{} of the {what} appear in response #{i}:\n{record}",
                start + 16
            );
        }
    }
}

fn challenge(p: &Page) -> String {
    p.headers
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Tests

/// The whole flow as an MCP client sees it — metadata, registration, authorize, consent,
/// callback, token, MCP calls, refresh, and a second replica that shares only the secret
/// — with every response recorded: the client's token is the gateway's own, ClickHouse
/// gets the upstream token inside it, and no 16 bytes of the upstream access or refresh
/// token ever reach the client.
#[tokio::test]
async fn clients_hold_only_sealed_tokens_and_clickhouse_gets_the_upstream_one() {
    let f = fleet().await;
    let port_a = free_port();
    let public = format!("http://127.0.0.1:{port_a}");
    let a = f.gateway(port_a, &public, SIGNING_SECRET, "");
    let b = f.gateway(free_port(), &public, SIGNING_SECRET, "");
    let otel = format!("{public}/mcp/otel");
    let mut client = Browser::default();

    // Discovery as clients do it: the 401, then the metadata documents.
    let first = mcp(&mut client, &otel, "no-token-yet", "tools/list", json!({})).await;
    assert_eq!(first.status, 401);
    let prm = client
        .get(&format!("{otel}/.well-known/oauth-protected-resource"))
        .await;
    let prm: Value = serde_json::from_str(&prm.body).unwrap();
    assert_eq!(
        prm["resource"],
        otel.as_str(),
        "each cluster names its own URL"
    );
    client
        .get(&format!("{public}/.well-known/oauth-authorization-server"))
        .await;

    let client_id = client.public_client(&public, "sealed test").await;
    let p = pkce("sealed");
    let code = sign_in(&mut client, &f.idp, &public, &client_id, &p, Some(&otel)).await;
    let (status, t) = client
        .redeem(&public, &client_id, &code, &p.verifier, &[])
        .await;
    assert_eq!(status, 200, "{t}\n{}", a.log());
    let access = t["access_token"].as_str().unwrap().to_string();
    let sealed = opened(&access);
    let upstream = sealed.upstream.clone();
    assert_sealed_shape(&access, &upstream);
    assert_eq!(sealed.resource.as_deref(), Some(otel.as_str()));
    assert_eq!(sealed.email.as_deref(), Some(ALICE));
    let expires_in = t["expires_in"].as_u64().unwrap();
    let upstream_left = jwt_exp(&upstream).saturating_sub(now());
    assert!(
        expires_in > 0 && expires_in <= upstream_left + 1,
        "expires_in {expires_in} must not outlive the upstream token ({upstream_left} s left)"
    );
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let upstream_rt = upstream_refresh(&refresh);

    // MCP calls on A: ClickHouse (through the pass-through) is presented the upstream
    // token, as Basic with the username from the claims the broker verified.
    let listed = mcp(&mut client, &otel, &access, "tools/list", json!({})).await;
    assert_eq!(listed.status, 200, "{}\n{}", listed.body, a.log());
    let call = mcp(
        &mut client,
        &otel,
        &access,
        "tools/call",
        json!({"name": "execute_query", "arguments": {"query": "SELECT 40 + 2 AS answer"}}),
    )
    .await;
    assert_eq!(call.status, 200, "{}", call.body);
    assert!(call.body.contains("42"), "{}", call.body);
    let presented = f.ch_double.presented();
    assert!(!presented.is_empty(), "ClickHouse saw no request");
    assert!(
        presented
            .iter()
            .all(|p| p.user == ALICE && p.password == upstream),
        "ClickHouse must get the upstream token and nothing else: {presented:?}"
    );
    assert!(
        f.ch_double.bearers().iter().all(|t| *t == upstream),
        "the Bearer probe, too, presents the upstream token"
    );

    // Refresh: the upstream is refreshed and re-sealed.
    let (status, r) = client
        .token(
            &public,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(status, 200, "{r}\n{}", a.log());
    let access2 = r["access_token"].as_str().unwrap().to_string();
    let sealed2 = opened(&access2);
    assert_sealed_shape(&access2, &sealed2.upstream);
    assert_ne!(sealed2.upstream, upstream, "a fresh upstream token");
    assert_eq!(sealed2.resource.as_deref(), Some(otel.as_str()));
    let refresh2 = r["refresh_token"].as_str().unwrap().to_string();
    let upstream_rt2 = upstream_refresh(&refresh2);

    // Replica B, which shares only the signing secret, accepts A's token.
    let on_b = format!("{}/mcp/otel", b.base());
    let call = mcp(
        &mut client,
        &on_b,
        &access2,
        "tools/call",
        json!({"name": "execute_query", "arguments": {"query": "SELECT 6 * 7 AS answer"}}),
    )
    .await;
    assert_eq!(call.status, 200, "{}\n{}", call.body, b.log());
    assert!(call.body.contains("42"), "{}", call.body);
    assert_eq!(
        f.ch_double.presented().last(),
        Some(&Presented {
            user: ALICE.into(),
            password: sealed2.upstream.clone()
        }),
        "B presented the refreshed upstream token"
    );

    // Nothing a client received carries upstream token bytes; nor does either log. (The
    // search does look at what the client got: the sealed tokens are found in it.)
    for t in [&access, &access2, &refresh] {
        assert!(client.received.iter().any(|r| r.contains(t.as_str())));
    }
    assert!(
        client.received.len() >= 12,
        "every step recorded: {}",
        client.received.len()
    );
    for (secret, what) in [
        (&upstream, "upstream access token"),
        (&sealed2.upstream, "refreshed upstream access token"),
        (&upstream_rt, "upstream refresh token"),
        (&upstream_rt2, "refreshed upstream refresh token"),
    ] {
        assert_no_window(&client.received, secret, what);
        assert_no_window(&[a.log(), b.log()], secret, what);
    }
    for t in [&access, &access2] {
        assert!(!a.log().contains(t.as_str()) && !b.log().contains(t.as_str()));
    }
}

/// RFC 8707: a token requested for `/mcp/otel` works there and is `401` on
/// `/mcp/antalya` with antalya's challenge; without `resource` it serves every cluster;
/// a resource this gateway does not serve is `invalid_target`.
#[tokio::test]
async fn a_cluster_token_is_refused_on_another_cluster_with_that_clusters_challenge() {
    let f = fleet().await;
    let gw = f.own_gateway("");
    let base = gw.base();
    let (otel, antalya) = (format!("{base}/mcp/otel"), format!("{base}/mcp/antalya"));
    let mut client = Browser::default();
    let prm = client
        .get(&format!("{antalya}/.well-known/oauth-protected-resource"))
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&prm.body).unwrap()["resource"],
        antalya.as_str()
    );

    let client_id = client.public_client(&base, "sealed test").await;
    let p = pkce("audience");
    let code = sign_in(&mut client, &f.idp, &base, &client_id, &p, Some(&otel)).await;
    // Asking for another resource than the one authorized, or one not served here.
    for (resource, why) in [
        (antalya.as_str(), "differs from the one authorized"),
        ("https://elsewhere.example.com/mcp/otel", "not served"),
    ] {
        let (status, e) = client
            .redeem(
                &base,
                &client_id,
                &code,
                &p.verifier,
                &[("resource", resource)],
            )
            .await;
        assert_eq!(
            (status, e["error"].as_str()),
            (400, Some("invalid_target")),
            "{e}"
        );
        assert!(
            e["error_description"].as_str().unwrap().contains(why),
            "{e}"
        );
    }
    let (status, t) = client
        .redeem(&base, &client_id, &code, &p.verifier, &[])
        .await;
    assert_eq!(status, 200, "{t}\n{}", gw.log());
    let for_otel = t["access_token"].as_str().unwrap().to_string();

    let ok = mcp(&mut client, &otel, &for_otel, "tools/list", json!({})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let before = f.ch_double.presented().len() + f.ch_double.bearers().len();
    let refused = mcp(&mut client, &antalya, &for_otel, "tools/list", json!({})).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let www = challenge(&refused);
    assert!(
        www.starts_with("Bearer error=\"invalid_token\"")
            && www.contains(&format!(
                "resource_metadata=\"{antalya}/.well-known/oauth-protected-resource\""
            ))
            && www.contains("another MCP resource"),
        "{www}"
    );
    assert_eq!(
        f.ch_double.presented().len() + f.ch_double.bearers().len(),
        before,
        "refused before ClickHouse"
    );

    // Without `resource`: the shared audience, every cluster.
    let client_id = client.public_client(&base, "sealed test").await;
    let p = pkce("shared");
    let code = sign_in(&mut client, &f.idp, &base, &client_id, &p, None).await;
    let (status, t) = client
        .redeem(&base, &client_id, &code, &p.verifier, &[])
        .await;
    assert_eq!(status, 200, "{t}");
    let shared = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(opened(&shared).resource, None);
    for url in [&otel, &antalya] {
        let r = mcp(&mut client, url, &shared, "tools/list", json!({})).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
    }
}

/// A sealed token altered by one byte, past its expiry, or sealed under another secret,
/// and the raw IdP token that ClickHouse itself would accept, are all `401` with the
/// challenge, and none of them reaches ClickHouse.
#[tokio::test]
async fn altered_expired_foreign_and_raw_idp_tokens_are_401_before_clickhouse() {
    let f = fleet().await;
    let gw = f.own_gateway("");
    let base = gw.base();
    let otel = format!("{base}/mcp/otel");
    let mut client = Browser::default();
    let client_id = client.public_client(&base, "sealed test").await;
    let p = pkce("refusals");
    let code = sign_in(&mut client, &f.idp, &base, &client_id, &p, None).await;
    let (status, t) = client
        .redeem(&base, &client_id, &code, &p.verifier, &[])
        .await;
    assert_eq!(status, 200, "{t}");
    let good = t["access_token"].as_str().unwrap().to_string();
    let ok = mcp(&mut client, &otel, &good, "tools/list", json!({})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let payload = opened(&good);

    // One character of the sealed part changed (in the middle: every bit there counts).
    let mut chars: Vec<char> = good.chars().collect();
    let i = PREFIX.len() + (chars.len() - PREFIX.len()) / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let altered: String = chars.into_iter().collect();
    // The same payload sealed with an expiry that has passed.
    let past = now() - 5;
    let expired_payload = SealedAccess {
        expires: past,
        ..payload.clone()
    };
    let expired = format!(
        "{PREFIX}{}",
        sealer()
            .seal(Kind::AccessToken, &expired_payload, past)
            .unwrap()
    );
    // The same payload sealed under another signing secret.
    let foreign = format!(
        "{PREFIX}{}",
        Sealer::new(b"another-signing-secret-0123456789abcdef")
            .unwrap()
            .seal(Kind::AccessToken, &payload, payload.expires)
            .unwrap()
    );

    let before = f.ch_double.presented().len() + f.ch_double.bearers().len();
    for (token, why) in [
        (altered.as_str(), "not valid"),
        (expired.as_str(), "expired"),
        (foreign.as_str(), "not valid"),
        (
            payload.upstream.as_str(),
            "accepts only the access tokens it issues",
        ),
    ] {
        let r = mcp(&mut client, &otel, token, "tools/list", json!({})).await;
        assert_eq!(r.status, 401, "{why}: {}", r.body);
        let www = challenge(&r);
        assert!(
            www.starts_with("Bearer error=\"invalid_token\"") && www.contains(why),
            "{why}: {www}"
        );
    }
    assert_eq!(
        f.ch_double.presented().len() + f.ch_double.bearers().len(),
        before,
        "no refused token reached ClickHouse"
    );
}

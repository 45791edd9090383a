//! `chmcp-gateway verify` end to end: the real binary against a real OpenID Provider
//! (npm `oidc-provider`, `e2e/idp`). Tokens come from the IdP's token endpoint; the few
//! the IdP cannot be asked for (expired, another issuer, another key) are signed with the
//! IdP's own key or with a key it never had.
//!
//! Needs the binary built first (`cargo build -p chmcp-gateway`; `make test` does it)
//! and node on PATH (a missing node fails the tests, it never skips them).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use chmcp_tests::idp::{clients, Idp};
use chmcp_tests::jwt;
use chmcp_tests::metrics::Metrics;
use chmcp_tests::process::{NotReady, Process};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Harness

/// A running verifier. Its log is kept for the no-token-in-logs check.
struct Verifier {
    process: Process,
    base: String,
    /// How long it took to log that it listens.
    started: Duration,
}

impl Verifier {
    fn start(config_yaml: &str) -> Self {
        let spawned = Instant::now();
        let process = match Process::start("verify", config_yaml, [""; 0], "listening on ") {
            Ok(p) => p,
            Err(NotReady::Exited(log) | NotReady::TimedOut(log)) => {
                panic!("the verifier did not start; its log:\n{log}")
            }
        };
        let started = spawned.elapsed();
        let log = process.log();
        let base = log
            .lines()
            .find_map(|l| l.split("listening on ").nth(1))
            .map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .expect("the listening line names the address");
        Self {
            process,
            base,
            started,
        }
    }

    fn log(&self) -> String {
        self.process.log()
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.base))
            .await
            .expect("request");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    /// GET /verify with the given Authorization header.
    async fn verify(&self, authorization: Option<String>) -> (u16, Value) {
        let mut request = reqwest::Client::new().get(format!("{}/verify", self.base));
        if let Some(a) = authorization {
            request = request.header("Authorization", a);
        }
        let r = request.send().await.expect("verify request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn verify_basic(&self, user: &str, token: &str) -> (u16, Value) {
        self.verify(Some(basic(user, token))).await
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.get("/readyz").await.0 == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never ready; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metrics(&self) -> Metrics {
        Metrics::scrape(&self.base).await
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn config_for(idp: &Idp, extra: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
oauth:
  issuer: {issuer}
  jwks_url: ""
  audience: {audience}
  required_scopes: ["mcp:read"]
identity:
  username_claim: email
  match: case_insensitive
  require_email_verified: true
  allowed_email_domains: [example.com]
settings_from_scope:
  "mcp:read": {{readonly: "2", max_result_rows: "10000"}}
  "mcp:write": {{readonly: "0"}}
cache: {{positive_ttl: 30s, negative_ttl: 5s}}
{extra}"#,
        issuer = idp.issuer,
        audience = idp.audience,
    )
}

/// What the IdP puts in alice's access token, for tokens the tests sign themselves.
fn alice_claims(idp: &Idp) -> Value {
    jwt::claims_for(idp, "alice")
}

async fn alice_token(idp: &Idp) -> String {
    idp.token(clients::ALICE, "mcp:read mcp:write", &idp.audience)
        .await
        .expect("alice's token")
}

fn reason(body: &Value) -> &str {
    body.get("reason")
        .and_then(Value::as_str)
        .unwrap_or("<none>")
}

// ---------------------------------------------------------------------------------------
// Accepted

#[tokio::test]
async fn idp_issued_token_is_accepted_with_scope_settings() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let token = alice_token(idp).await;

    let (status, body) = v.verify_basic("alice@example.com", &token).await;
    assert_eq!(status, 200, "{body}");
    // mcp:write is listed after mcp:read, so its readonly wins.
    assert_eq!(
        body,
        json!({"settings": {"readonly": "0", "max_result_rows": "10000"}})
    );

    // Case-insensitive username match (the default), and POST answers the same.
    let (status, _) = v.verify_basic("Alice@Example.COM", &token).await;
    assert_eq!(status, 200);
    let r = reqwest::Client::new()
        .post(format!("{}/verify", v.base))
        .header("Authorization", basic("alice@example.com", &token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let read_only = idp
        .token(clients::ALICE, "mcp:read", &idp.audience)
        .await
        .unwrap();
    let (status, body) = v.verify_basic("alice@example.com", &read_only).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"settings": {"readonly": "2", "max_result_rows": "10000"}})
        )
    );
}

#[tokio::test]
async fn request_exactly_as_clickhouse_sends_it_is_accepted() {
    // ClickHouse's HTTP authentication client: a bare HTTP/1.1 GET to the configured
    // URI, Basic credentials, and the client headers listed in `forward_headers`. Sent
    // over a raw socket so nothing a richer client adds can make it pass.
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let token = alice_token(idp).await;
    let host = v.base.trim_start_matches("http://").to_string();
    let request = format!(
        "GET /verify HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\nCustom-Auth-Header-1: forwarded-value\r\n\
         X-Forwarded-For: 10.0.0.7\r\nConnection: close\r\n\r\n",
        basic("alice@example.com", &token)
    );
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body expected:\n{response}"));
    assert_eq!(body["settings"]["max_result_rows"], "10000");
}

#[tokio::test]
async fn explicit_jwks_url_works_without_discovery() {
    let idp = Idp::shared();
    let config =
        config_for(idp, "").replace("jwks_url: \"\"", &format!("jwks_url: {}", idp.jwks_url()));
    let v = Verifier::start(&config);
    let (status, body) = v
        .verify_basic("alice@example.com", &alice_token(idp).await)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn token_expired_within_the_leeway_is_accepted() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let mut claims = alice_claims(idp);
    claims["exp"] = json!(jwt::now() - 30);
    let (status, body) = v
        .verify_basic("alice@example.com", &jwt::signed_by(idp, &claims))
        .await;
    assert_eq!(status, 200, "{body}");
}

// ---------------------------------------------------------------------------------------
// Each check fails on its own: 403 with its reason

#[tokio::test]
async fn wrong_audience_is_403() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let token = idp
        .token(clients::ALICE, "mcp:read", &idp.other_audience)
        .await
        .unwrap();
    let (status, body) = v.verify_basic("alice@example.com", &token).await;
    assert_eq!((status, reason(&body)), (403, "wrong_audience"), "{body}");
}

#[tokio::test]
async fn wrong_issuer_is_403() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let mut claims = alice_claims(idp);
    claims["iss"] = json!(format!("{}/other-tenant", idp.issuer));
    let (status, body) = v
        .verify_basic("alice@example.com", &jwt::signed_by(idp, &claims))
        .await;
    assert_eq!((status, reason(&body)), (403, "wrong_issuer"), "{body}");
}

#[tokio::test]
async fn expired_token_is_403() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let mut claims = alice_claims(idp);
    claims["iat"] = json!(jwt::now() - 1200);
    claims["exp"] = json!(jwt::now() - 120);
    let (status, body) = v
        .verify_basic("alice@example.com", &jwt::signed_by(idp, &claims))
        .await;
    assert_eq!((status, reason(&body)), (403, "expired"), "{body}");
}

#[tokio::test]
async fn signature_by_a_key_the_idp_never_had_is_403() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    // The IdP's kid, so the verifier picks the IdP's key and the signature fails.
    let token = jwt::signed_with(&idp.foreign_key_pem, &idp.kid, &alice_claims(idp));
    let (status, body) = v.verify_basic("alice@example.com", &token).await;
    assert_eq!((status, reason(&body)), (403, "bad_signature"), "{body}");
}

#[tokio::test]
async fn missing_required_scope_is_403() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let token = idp
        .token(clients::ALICE, "mcp:write", &idp.audience)
        .await
        .unwrap();
    let (status, body) = v.verify_basic("alice@example.com", &token).await;
    assert_eq!((status, reason(&body)), (403, "missing_scope"), "{body}");
}

#[tokio::test]
async fn unverified_email_is_403() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let token = idp
        .token(clients::BOB, "mcp:read", &idp.audience)
        .await
        .unwrap();
    let (status, body) = v.verify_basic("bob@example.com", &token).await;
    assert_eq!(
        (status, reason(&body)),
        (403, "email_not_verified"),
        "{body}"
    );
}

#[tokio::test]
async fn email_domain_outside_the_allowed_list_is_403() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let token = idp
        .token(clients::EVE, "mcp:read", &idp.audience)
        .await
        .unwrap();
    let (status, body) = v.verify_basic("eve@elsewhere.test", &token).await;
    assert_eq!(
        (status, reason(&body)),
        (403, "email_domain_not_allowed"),
        "{body}"
    );
}

#[tokio::test]
async fn basic_username_other_than_the_token_email_is_403() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let token = alice_token(idp).await;
    for user in ["admin", "default", "bob@example.com"] {
        let (status, body) = v.verify_basic(user, &token).await;
        assert_eq!(
            (status, reason(&body)),
            (403, "username_mismatch"),
            "{user}: {body}"
        );
    }
    // The same token is still good for alice: the refusals were cached per username.
    assert_eq!(v.verify_basic("alice@example.com", &token).await.0, 200);
}

#[tokio::test]
async fn malformed_authorization_header_is_401() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let token = alice_token(idp).await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let cases = [
        (None, "missing_authorization"),
        (Some(format!("Bearer {token}")), "not_basic"),
        (Some("Basic %%%not-base64%%%".to_string()), "bad_base64"),
        (
            Some(format!(
                "Basic {}",
                b64(&format!("alice@example.com{token}"))
            )),
            "no_colon",
        ),
    ];
    for (header, want) in cases {
        let (status, body) = v.verify(header.clone()).await;
        assert_eq!((status, reason(&body)), (401, want), "{header:?}: {body}");
    }
    // A password that is not a JWT is a failed check, not a malformed header.
    let (status, body) = v.verify_basic("alice@example.com", "hunter2").await;
    assert_eq!((status, reason(&body)), (403, "malformed_token"), "{body}");
}

// ---------------------------------------------------------------------------------------
// JWKS, cache, operations

#[tokio::test]
async fn unknown_kid_flood_causes_exactly_one_jwks_refetch() {
    // Its own IdP: the JWKS request count must not include other tests' verifiers.
    let idp = Idp::start().unwrap_or_else(|e| panic!("cannot start the test IdP: {e:#}"));
    let v = Verifier::start(&config_for(&idp, ""));
    v.wait_ready().await;
    let before = idp.jwks_fetches().await.unwrap();
    assert_eq!(before, 1, "the startup load");

    // 40 tokens with made-up kids, half concurrently, half one after another.
    let tokens: Vec<String> = (0..40)
        .map(|i| {
            jwt::signed_with(
                &idp.foreign_key_pem,
                &format!("rotated-{i}"),
                &alice_claims(&idp),
            )
        })
        .collect();
    let concurrent: Vec<_> = tokens[..20]
        .iter()
        .map(|t| {
            let (base, header) = (v.base.clone(), basic("alice@example.com", t));
            tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .get(format!("{base}/verify"))
                    .header("Authorization", header)
                    .send()
                    .await;
                r.map(|r| r.status().as_u16()).unwrap_or(0)
            })
        })
        .collect();
    for call in concurrent {
        assert_eq!(call.await.unwrap(), 403);
    }
    for t in &tokens[20..] {
        let (status, body) = v.verify_basic("alice@example.com", t).await;
        assert_eq!((status, reason(&body)), (403, "unknown_key"), "{body}");
    }

    assert_eq!(
        idp.jwks_fetches().await.unwrap() - before,
        1,
        "one refetch for 40 unknown kids"
    );
    assert_eq!(
        v.metrics()
            .await
            .value("chmcp_verify_jwks_fetches_total", &[("outcome", "ok")]),
        2.0
    );
    // Tokens with the IdP's real kid still pass.
    assert_eq!(
        v.verify_basic("alice@example.com", &alice_token(&idp).await)
            .await
            .0,
        200
    );
    assert_eq!(idp.jwks_fetches().await.unwrap() - before, 1);
}

#[tokio::test]
async fn repeated_verification_is_answered_from_the_cache() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let token = alice_token(idp).await;
    for _ in 0..5 {
        assert_eq!(v.verify_basic("alice@example.com", &token).await.0, 200);
    }
    assert_eq!(
        v.metrics()
            .await
            .value("chmcp_verify_cache_misses_total", &[]),
        1.0
    );
    assert_eq!(
        v.metrics()
            .await
            .value("chmcp_verify_cache_hits_total", &[]),
        4.0
    );
    assert_eq!(
        v.metrics()
            .await
            .value("chmcp_verify_requests_total", &[("outcome", "allowed")]),
        5.0
    );
    // A refused token is cached too, under its own reason.
    let other = idp
        .token(clients::ALICE, "mcp:read", &idp.other_audience)
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(v.verify_basic("alice@example.com", &other).await.0, 403);
    }
    assert_eq!(
        v.metrics()
            .await
            .value("chmcp_verify_cache_hits_total", &[]),
        6.0
    );
    assert_eq!(
        v.metrics().await.value(
            "chmcp_verify_refusals_total",
            &[("reason", "wrong_audience")]
        ),
        3.0
    );
}

#[tokio::test]
async fn health_readiness_and_metrics_endpoints() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    assert_eq!(v.get("/healthz").await.0, 200);
    v.wait_ready().await;
    let (status, page) = v.get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "chmcp_verify_requests_total",
        "chmcp_verify_duration_seconds",
        "chmcp_verify_jwks_fetches_total",
        "chmcp_verify_cache_hits_total",
    ] {
        assert!(page.contains(name), "{name} missing from /metrics:\n{page}");
    }
}

#[tokio::test]
async fn startup_does_not_wait_for_an_unresponsive_idp() {
    // An "IdP" that accepts connections and never answers: a JWKS fetch would hang for
    // its whole timeout. The verifier must serve /healthz at once and report not ready.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", blackhole.local_addr().unwrap());
    let v = Verifier::start(&format!(
        "listen: 127.0.0.1:0\noauth: {{issuer: \"{issuer}\", audience: https://mcp.example.com/}}\n"
    ));
    assert!(
        v.started < Duration::from_secs(5),
        "took {:?} to listen",
        v.started
    );
    assert_eq!(v.get("/healthz").await.0, 200);
    assert_eq!(v.get("/readyz").await.0, 503);
    drop(blackhole);
}

#[tokio::test]
async fn no_token_appears_in_the_log() {
    let idp = Idp::shared();
    let v = Verifier::start(&config_for(idp, ""));
    let good = alice_token(idp).await;
    let foreign = jwt::signed_with(&idp.foreign_key_pem, &idp.kid, &alice_claims(idp));
    let unknown = jwt::signed_with(&idp.foreign_key_pem, "never-seen", &alice_claims(idp));
    assert_eq!(v.verify_basic("alice@example.com", &good).await.0, 200);
    assert_eq!(v.verify_basic("admin", &good).await.0, 403);
    assert_eq!(v.verify_basic("alice@example.com", &foreign).await.0, 403);
    assert_eq!(v.verify_basic("alice@example.com", &unknown).await.0, 403);
    assert_eq!(v.verify(Some(format!("Bearer {good}"))).await.0, 401);
    // Log lines are written asynchronously; give the reader thread a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = v.log();
    assert!(log.contains("refused"), "refusals are logged:\n{log}");
    for token in [&good, &foreign, &unknown] {
        for (i, part) in token.split('.').enumerate() {
            assert!(
                !log.contains(part),
                "part {i} of a token is in the log:\n{log}"
            );
        }
    }
}

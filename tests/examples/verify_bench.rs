//! How long one verification takes, cached and uncached.
//!
//! `cargo run -p chmcp-tests --release --example verify_bench` (`make bench`). Starts the
//! real test IdP (e2e/idp), takes one of its RS256 access tokens, and measures, side by
//! side in one run: the pure `validate_jwt` call, a result-cache lookup, and `GET /verify`
//! over loopback HTTP against an in-process verifier with the cache on and off. Prints a
//! table of medians; asserts nothing (timings belong here, not in tests).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use chmcp_gateway::oauth::{validate_jwt, KeySet};
use chmcp_gateway::verify::cache::{ResultCache, Verdict};
use chmcp_gateway::verify::checks::TokenDigest;
use chmcp_gateway::verify::config::{parse, VerifyConfig};
use chmcp_tests::idp::{clients, Idp};

const ITERATIONS: usize = 2000;

struct Stats {
    median: Duration,
    p90: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    Stats {
        median: samples[samples.len() / 2],
        p90: samples[samples.len() * 9 / 10],
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn config(idp: &Idp, positive_ttl: &str) -> anyhow::Result<VerifyConfig> {
    let text = format!(
        "listen: 127.0.0.1:0\noauth: {{issuer: \"{}\", audience: \"{}\", required_scopes: [\"mcp:read\"]}}\n\
         settings_from_scope: {{\"mcp:read\": {{readonly: 2}}}}\ncache: {{positive_ttl: {positive_ttl}}}\n",
        idp.issuer, idp.audience
    );
    Ok(parse(&text, "bench")?)
}

/// An in-process verifier on a loopback port; returns its /verify URL.
async fn start_verifier(config: VerifyConfig) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/verify", listener.local_addr()?);
    tokio::spawn(chmcp_gateway::verify::serve(config, listener));
    Ok(url)
}

async fn time_http(url: &str, authorization: &str) -> anyhow::Result<Stats> {
    let client = reqwest::Client::new();
    let mut samples = Vec::with_capacity(ITERATIONS);
    // Warm-up: connection, JWKS load, first cache fill.
    for _ in 0..20 {
        let status = client
            .get(url)
            .header("Authorization", authorization)
            .send()
            .await?
            .status();
        anyhow::ensure!(status == 200, "warm-up got {status}");
    }
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        let response = client
            .get(url)
            .header("Authorization", authorization)
            .send()
            .await?;
        let _ = response.bytes().await?;
        samples.push(started.elapsed());
    }
    Ok(stats(samples))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let idp = Idp::start().context("the bench needs the test IdP (node + e2e/idp)")?;
    let token = idp.token(clients::ALICE, "mcp:read", &idp.audience).await?;
    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("alice@example.com:{token}"))
    );

    // In-process: the pure check and the cache lookup.
    let jwks = reqwest::get(idp.jwks_url()).await?.bytes().await?;
    let keys = KeySet::from_json(&jwks).map_err(anyhow::Error::msg)?;
    let expect = config(&idp, "30s")?.expectations();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        let claims = validate_jwt(&token, &keys, &expect, now);
        samples.push(started.elapsed());
        anyhow::ensure!(claims.is_ok(), "the IdP's token must validate: {claims:?}");
    }
    let pure = stats(samples);

    let cache = ResultCache::new(1000);
    let digest = TokenDigest::of(&token);
    cache.insert(
        digest,
        "alice@example.com",
        Verdict::Allowed(Arc::default()),
        Duration::from_secs(60),
        Instant::now(),
    );
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        // What a cached request does: hash the token, look it up.
        let hit = cache.get(TokenDigest::of(&token), "alice@example.com", Instant::now());
        samples.push(started.elapsed());
        anyhow::ensure!(hit.is_some(), "cache miss");
    }
    let lookup = stats(samples);

    // Over HTTP: the same verifier with the cache off (every request verifies the
    // signature) and on.
    let uncached = time_http(&start_verifier(config(&idp, "0s")?).await?, &authorization).await?;
    let cached = time_http(&start_verifier(config(&idp, "30s")?).await?, &authorization).await?;

    let profile = if cfg!(debug_assertions) {
        "debug (use --release for real figures)"
    } else {
        "release"
    };
    println!("verify_bench: {ITERATIONS} iterations each, RS256 token from oidc-provider, build {profile}");
    println!();
    println!("| measurement                                   | median µs |    p90 µs |");
    println!("|-----------------------------------------------|----------:|----------:|");
    for (name, s) in [
        ("validate_jwt (signature + claims), in-process", &pure),
        ("sha256 + cache lookup, in-process", &lookup),
        ("GET /verify over loopback, uncached", &uncached),
        ("GET /verify over loopback, cached", &cached),
    ] {
        println!(
            "| {name:<45} | {:>9.1} | {:>9.1} |",
            micros(s.median),
            micros(s.p90)
        );
    }
    println!();
    println!(
        "uncached / cached over HTTP: {:.2}x; validate_jwt / cache lookup: {:.0}x",
        micros(uncached.median) / micros(cached.median),
        micros(pure.median) / micros(lookup.median)
    );
    Ok(())
}

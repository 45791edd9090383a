//! Metrics and logs.

pub mod logging;
pub mod metrics;

pub use metrics::Metrics;

/// A short, non-reversible tag for a token, safe for logs (never the token itself).
pub fn token_tag(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect()
}

//! The cache key: bound to the raw token itself, never to its claims.

use std::fmt;

#[cfg(test)]
use crate::fingerprint::{hex, token_fingerprint};
use crate::fingerprint::{sha256, short_fingerprint};

/// `sha256(raw bearer) + "\x00" + cluster` (docs/spec-notes.md, "Catalog cache"), held as the digest and the
/// cluster name: the raw token is never stored. A forged claim set cannot reuse another
/// person's catalog, and a new token is a new entry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CatalogKey {
    token_sha256: [u8; 32],
    /// Empty for the implicit cluster of single-cluster mode.
    cluster: Box<str>,
}

impl CatalogKey {
    pub fn new(raw_bearer: &str, cluster: &str) -> Self {
        Self::of_digest(sha256(raw_bearer.as_bytes()), cluster)
    }

    /// The key from the bearer's sha256 the gate already computed (one hash per request).
    pub fn of_digest(token_sha256: [u8; 32], cluster: &str) -> Self {
        Self {
            token_sha256,
            cluster: cluster.into(),
        }
    }

    /// The sha256 of the credential this key is bound to.
    pub fn token_sha256(&self) -> &[u8; 32] {
        &self.token_sha256
    }

    /// The same credential's key for another cluster (the fleet connector derives each
    /// cluster's key from the one the gate built, without holding the raw token again).
    pub fn for_cluster(&self, cluster: &str) -> Self {
        Self {
            token_sha256: self.token_sha256,
            cluster: cluster.into(),
        }
    }

    /// The token's sha256: who the caller is, for the discovery queue's per-caller lane.
    pub fn token_digest(&self) -> [u8; 32] {
        self.token_sha256
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The spec's key bytes: `sha256(raw bearer) ‖ 0x00 ‖ cluster`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(33 + self.cluster.len());
        out.extend_from_slice(&self.token_sha256);
        out.push(0);
        out.extend_from_slice(self.cluster.as_bytes());
        out
    }

    /// A short, log-safe name for the token: the first 8 hex digits of its sha256.
    pub fn token_fingerprint(&self) -> String {
        short_fingerprint(&self.token_sha256)
    }
}

impl fmt::Debug for CatalogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CatalogKey({}…, {:?})",
            self.token_fingerprint(),
            self.cluster
        )
    }
}

/// A digest of a catalog's content, so that identical catalogs are stored once.
///
/// Only constructible from the content's bytes via sha256: a weak hash here could make
/// two different catalogs collide, and one token would then see another's tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Digest of a canonical serialization of the catalog (e.g. its tools as JSON).
    pub fn of(content: &[u8]) -> Self {
        Self(sha256(content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_sha256_of_token_then_nul_then_cluster() {
        let k = CatalogKey::new("abc", "otel");
        let bytes = k.to_bytes();
        // sha256("abc") is a published test vector.
        assert_eq!(
            hex(&bytes[..32]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(&bytes[32..], b"\x00otel");
    }

    #[test]
    fn same_token_on_two_clusters_and_two_tokens_on_one_cluster_are_different_keys() {
        assert_ne!(CatalogKey::new("t", "a"), CatalogKey::new("t", "b"));
        assert_ne!(CatalogKey::new("t1", "a"), CatalogKey::new("t2", "a"));
        assert_eq!(CatalogKey::new("t", "a"), CatalogKey::new("t", "a"));
    }

    #[test]
    fn debug_and_fingerprint_never_show_the_token() {
        let token = "eyJhbGciOiJIUzI1NiJ9.secret-payload.sig";
        let k = CatalogKey::new(token, "otel");
        let shown = format!("{k:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(k.token_fingerprint().len(), 8);
        assert_eq!(k.token_fingerprint(), token_fingerprint(token));
    }

    #[test]
    fn content_hash_depends_only_on_content() {
        assert_eq!(ContentHash::of(b"[1,2]"), ContentHash::of(b"[1,2]"));
        assert_ne!(ContentHash::of(b"[1,2]"), ContentHash::of(b"[2,1]"));
    }
}

//! The per-token catalog cache (multicluster.md, "Catalog cache").
//!
//! Pure of I/O: the caller supplies the discovery as a future; the cache decides when
//! to run it, shares it between concurrent misses, bounds it, and keeps its result.

mod cache;
mod key;

pub use cache::{
    positive_expiry, CacheConfig, CacheStats, CatalogCache, CatalogOutcome, DiscoveryError,
    StaticReason, DISCOVERY_BUDGET, EVICT_FROM_FILL, MAX_CONCURRENT_DISCOVERIES,
    SATURATION_WARN_EVERY, SWEEP_EVERY,
};
pub use key::{sha256_hex, token_fingerprint, CatalogKey, ContentHash};

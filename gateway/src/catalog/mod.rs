//! The per-token catalog cache (docs/spec-notes.md, "Catalog cache").
//!
//! The cache is pure of I/O: the caller supplies the discovery as a future; the cache
//! decides when to run it, shares it between concurrent misses, bounds it, and keeps its
//! result. `discover` is that discovery, run with the caller's credentials.

mod cache;
mod discover;
mod key;

pub use discover::{catalog_and_reach, catalog_for, discover_catalog, Reach};

pub use cache::{
    positive_expiry, CacheConfig, CacheMetrics, CacheStats, CatalogCache, CatalogOutcome,
    DiscoveryError, StaticReason, DISCOVERY_BUDGET, EVICT_FROM_FILL, MAX_CONCURRENT_DISCOVERIES,
    SATURATION_WARN_EVERY, SWEEP_EVERY,
};
pub use key::{CatalogKey, ContentHash};

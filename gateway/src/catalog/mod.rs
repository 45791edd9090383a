//! The per-token catalog cache (docs/spec-notes.md, "Catalog cache").
//!
//! The cache is pure of I/O: the caller supplies the discovery as a future; the cache
//! decides when to run it, shares it between concurrent misses, bounds it, and keeps its
//! result. `discover` is that discovery, run with the caller's credentials.

mod admission;
mod cache;
mod discover;
mod key;

pub use admission::{
    Admission, MAX_CONCURRENT_DISCOVERIES, MAX_DISCOVERIES_PER_CALLER, MAX_DISCOVERIES_PER_SERVER,
};
pub use discover::{catalog_and_reach, catalog_for, catalog_within, discover_catalog, Reach};

pub use cache::{
    positive_expiry, CacheConfig, CacheMetrics, CacheStats, CatalogCache, CatalogOutcome,
    DiscoveryError, Lookup, StaticReason, ANSWER_BUDGET, DISCOVERY_BUDGET, EVICT_FROM_FILL,
    MIN_DISCOVERY_TIME, QUEUE_BUDGET, SATURATION_WARN_EVERY, SWEEP_EVERY,
};
pub use key::{CatalogKey, ContentHash};

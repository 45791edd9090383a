//! chmcp gateway: an MCP server in front of one or many ClickHouse clusters.
//!
//! A request flows transport → routing → gate → identity → tools/catalog → clickhouse →
//! result → transport; see `docs/ARCHITECTURE.md`.

pub mod catalog;
pub mod clickhouse;
pub mod config;
pub mod identity;
// Temporary, until `oauth/mod.rs` (owned on another branch) lands: then this block
// becomes `pub mod oauth;` and that file gains `pub mod gate; pub mod metadata;`.
pub mod oauth {
    pub mod gate;
    pub mod metadata;
}
pub mod routing;
pub mod serve;
pub mod verify;

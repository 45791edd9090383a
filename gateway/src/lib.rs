//! chmcp gateway: an MCP server in front of one or many ClickHouse clusters.
//!
//! A request flows transport → routing → gate → identity → tools/catalog → clickhouse →
//! result → transport; see `docs/ARCHITECTURE.md`.

pub mod config;
pub mod oauth;
pub mod routing;
pub mod serve;
pub mod verify;
pub mod clickhouse;
pub mod tools;
pub mod app;
pub mod mcp;
pub mod telemetry;
// TEMPORARY until branch `verify` (which adds `oauth/mod.rs`) is merged: then this
// becomes `pub mod broker;` inside `oauth/mod.rs`.
#[path = "oauth/broker/mod.rs"]
pub mod oauth_broker;

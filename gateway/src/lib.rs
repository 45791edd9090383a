//! chmcp gateway: an MCP server in front of one or many ClickHouse clusters.
//!
//! A request flows transport → routing → gate → identity → tools/catalog → clickhouse →
//! result → transport; see `docs/ARCHITECTURE.md`.

pub mod app;
pub mod catalog;
pub mod clickhouse;
pub mod config;
pub mod identity;
pub mod mcp;
pub mod net;
pub mod oauth;
pub mod routing;
pub mod serve;
pub mod telemetry;
pub mod tools;
pub mod verify;

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

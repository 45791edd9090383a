//! chmcp gateway: an MCP server in front of one or many ClickHouse clusters.
//!
//! A request flows transport → routing → gate → identity → tools/catalog → clickhouse →
//! result → transport; see `docs/ARCHITECTURE.md`.

// Input from the network must never reach code that can panic (docs/spec-notes.md,
// "Health, metrics, logs"): no slicing or indexing by offsets, no unwrap/expect, no panic!. A
// site that provably cannot fail carries `#[allow(clippy::...)]` and says why.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::string_slice,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

pub mod app;
pub mod catalog;
pub mod clickhouse;
pub mod config;
pub mod cost;
pub mod doctor;
pub mod error_chain;
pub mod fingerprint;
pub mod http;
pub mod identity;
pub mod inflight;
pub mod listener;
pub mod mcp;
pub mod net;
pub mod oauth;
pub mod reply;
pub mod routing;
pub mod serve;
pub mod telemetry;
pub mod tools;
pub mod verify;

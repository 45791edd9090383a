//! Metrics, logs, traces and readiness. The HTTP steps that count requests and catch
//! panics, and the operational endpoints, are the edge's (`http::observe`, `http::ops`).

pub mod logging;
pub mod metrics;
pub mod otlp;
pub mod readiness;
pub mod trace;

pub use metrics::Metrics;

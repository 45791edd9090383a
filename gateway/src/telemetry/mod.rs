//! Metrics, logs and traces: the registry, the request-level pipeline steps (counting,
//! panics) and the operational endpoints.

pub mod endpoints;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod otlp;
pub mod trace;

pub use metrics::Metrics;

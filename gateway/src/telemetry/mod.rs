//! Metrics and logs: the registry, the request-level pipeline steps (counting,
//! panics) and the operational endpoints.

pub mod endpoints;
pub mod http;
pub mod logging;
pub mod metrics;

pub use metrics::Metrics;

//! Talking to ClickHouse over its HTTP interface.

pub mod client;
pub mod error;
pub mod lexer;
pub mod policy;
pub mod settings;
pub mod sql;
pub mod stats;
pub mod stream;
mod transport;
pub mod types;

pub use client::{ClickHouse, Credentials, Endpoint, QueryError, QueryOptions, RowsOutcome};
pub use error::ServerError;

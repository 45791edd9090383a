//! OAuth: the gate on MCP requests, protected-resource metadata, JWKS, the broker.
//!
//! `jwks` holds the IdP key cache (discovery, refetch on unknown `kid`, rate-limited) and
//! the pure JWT validation shared by the gateway's gate and the ClickHouse-side verifier,
//! so a token the gateway accepts is judged by exactly the same rules as the verifier
//! applies in front of ClickHouse.

pub mod gate;
pub mod jwks;
pub mod metadata;

pub use jwks::{
    validate_jwt, Claims, Expectations, FetchObserver, FetchOutcome, JwksCache, JwksError,
    JwksSource, KeySet, TokenRejection,
};

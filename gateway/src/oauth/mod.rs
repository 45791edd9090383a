//! OAuth building blocks shared by the gateway's gate and the ClickHouse-side verifier.
//!
//! `jwks` holds the IdP key cache (discovery, refetch on unknown `kid`, rate-limited) and
//! the pure JWT validation both sides use, so a token the gateway accepts is judged by
//! exactly the same rules as the verifier applies in front of ClickHouse.

pub mod broker;
pub mod jwks;

pub use jwks::{
    validate_jwt, Claims, Expectations, FetchObserver, FetchOutcome, JwksCache, JwksError,
    JwksSource, KeySet, TokenRejection,
};

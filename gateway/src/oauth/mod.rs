//! OAuth: the gate on MCP requests and protected-resource metadata (resource server),
//! the IdP key cache and JWT validation (shared by the gate, the broker and the
//! ClickHouse-side verifier, so a token is judged by the same rules everywhere), and
//! the broker (the gateway as authorization server), and the sealed access tokens the
//! broker mints and the gate opens.

pub mod broker;
pub mod exp_memo;
pub mod gate;
pub mod jwks;
pub mod metadata;
pub mod sealed;

pub use crate::identity::claims::Claims;
pub use jwks::{
    validate_jwt, Expectations, FetchObserver, FetchOutcome, JwksCache, JwksError, JwksSource,
    KeySet, TokenRejection,
};

//! OAuth: the gate on MCP requests, protected-resource metadata, JWKS, the broker.

pub mod gate;
pub mod metadata;

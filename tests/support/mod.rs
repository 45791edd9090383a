//! Shared harnesses for the cross-crate integration tests.

pub mod idp;

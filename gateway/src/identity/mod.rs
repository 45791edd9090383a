//! Who the caller is toward ClickHouse: claims read from the bearer, the Bearer/Basic
//! probe per endpoint, and roles from a claim (multicluster.md, "Identity").

pub mod claims;
pub mod probe;
pub mod roles;

pub use claims::{username_from_claims, Claims, ClaimsError};
pub use probe::{IdentityProber, Method, ProbeCount, ProbeError, REPROBE_EVERY};
pub use roles::{RoleError, RolePolicy};

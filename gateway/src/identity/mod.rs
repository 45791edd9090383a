//! Who the caller is toward ClickHouse: the gate's orchestration (bearer → verified
//! claims → identity), claims, roles, the Bearer/Basic probe per endpoint and its
//! re-probe, and the log-safe names of a token (multicluster.md, "Identity").

pub mod claims;
pub mod credentials;
pub mod fingerprint;
pub mod probe;
pub mod request;
pub mod resolve;
pub mod roles;

pub use claims::{username_from_claims, Claims, ClaimsError};
pub use credentials::{AuthOutcome, RequestCredentials};
pub use fingerprint::token_fingerprint;
pub use probe::{AuthScheme, IdentityProber, ProbeCount, ProbeError, REPROBE_EVERY};
pub use request::{static_identity, Principal, RequestIdentity, TokenIdentity, DEFAULT_CLUSTER};
pub use roles::{RoleError, RolePolicy};

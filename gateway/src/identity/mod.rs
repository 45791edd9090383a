//! Who the caller is toward ClickHouse: the gate's orchestration (bearer → verified
//! claims → identity), claims, roles, the Bearer/Basic probe per endpoint and its
//! re-probe (docs/spec-notes.md, "Identity").

pub mod claims;
pub mod credentials;
pub mod probe;
pub mod request;
pub mod resolve;
pub mod roles;

pub use claims::{username_from_claims, Claims, ClaimsError};
pub use credentials::{AuthOutcome, RequestCredentials};
pub use probe::{AuthScheme, IdentityProber, ProbeCount, ProbeError, REPROBE_EVERY};
pub use request::{static_identity, Caller, Principal, RequestIdentity, TokenIdentity};
pub use roles::{RoleError, RolePolicy};

//! The one error type of a reconciliation; each variant names the step that failed.
//!
//! An invalid spec is not an error here: validate returns its issues, which the status
//! reports (see `status::Outcome::Blocked`). A missing Secret is dereference's
//! [`Error::SecretMissing`]: the user must fix it too, so reconcile reports it through
//! the status instead of retrying.

use crate::render::RenderError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dereference: {0}")]
    SecretMissing(String),
    #[error("dereference: cannot read Secret {namespace}/{name}: {source}")]
    Dereference {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("render: {0}")]
    Render(#[from] RenderError),
    #[error("apply: {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("prune: {kind} {name}: {source}")]
    Prune {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("status: cannot update the status of {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The metrics label: which step failed.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::SecretMissing(_) => crate::reconcile::REASON_SECRET_MISSING,
            Self::Dereference { .. } => "DereferenceFailed",
            Self::Render(_) => "RenderFailed",
            Self::Apply { .. } => "ApplyFailed",
            Self::Prune { .. } => "PruneFailed",
            Self::Status { .. } => "StatusFailed",
        }
    }
}

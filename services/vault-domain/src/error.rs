//! The domain's one error enum. The service maps every variant to an HTTP status in one
//! exhaustive `match`, so a new variant cannot compile until someone chooses its status.
//!
//! No variant carries identity data: messages name fields and reasons, never values.

use crate::ports::StoreError;

/// Why a use case did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// A well-formed request whose content is invalid; `field` names the culprit.
    #[error("{field}: {reason}")]
    Invalid {
        /// Dotted path of the offending field, as in the request body.
        field: String,
        /// Why it was refused (never the value).
        reason: String,
    },
    /// Well-formed but not computable or not allowed as given, with its own code (unknown
    /// policy, no policy in force, a missing input the policy needs, …).
    #[error("{message}")]
    Unprocessable {
        /// Stable machine-readable code.
        code: &'static str,
        /// The field at fault.
        field: Option<String>,
        /// Human text.
        message: String,
    },
    /// The caller is not authenticated, or its token was revoked.
    #[error("authentication required")]
    Unauthenticated,
    /// The caller's role may not do this.
    #[error("the {role} role may not {action}")]
    Forbidden {
        /// The caller's role.
        role: &'static str,
        /// What was attempted, in words.
        action: &'static str,
    },
    /// Not found, or outside the caller's jurisdiction (indistinguishable by design).
    #[error("{what} not found")]
    NotFound {
        /// What kind of record.
        what: &'static str,
    },
    /// The record is in the wrong state for this, or the caller already acted.
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human text; names the current state where there is one.
        message: String,
    },
    /// Too many attempts.
    #[error("rate limited")]
    RateLimited,
    /// The access trail could not be appended: the action did not happen.
    #[error("the access trail is unavailable; nothing was done")]
    AuditUnavailable(#[source] StoreError),
    /// Keys could not be used: the action did not happen and nothing protected left.
    #[error("the keyring is unavailable; nothing was done")]
    KeyringUnavailable(String),
    /// A stored ciphertext failed its integrity check: tampered, swapped or corrupt.
    #[error("a stored record failed its integrity check; nothing was disclosed")]
    Integrity,
    /// The store failed.
    #[error("the store is unavailable; nothing was done")]
    Store(#[from] StoreError),
}

impl DomainError {
    /// A 422 naming the field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A 409 with a code and message.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

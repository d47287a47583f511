//! Why opening or provisioning the PKCS#11 token failed.
//!
//! Messages name the module path, the token label and the PKCS#11 return code so an operator
//! can act on them; they never contain the PIN, key material or plaintext.

use vault_domain::ports::KeyError;

/// Errors from [`crate::Pkcs11Keys::open`] and [`crate::provision`].
///
/// Every variant fails closed: there is no fallback to software keys. Inside the
/// [`vault_domain::ports::KeyProvider`] methods each one becomes
/// [`KeyError::Unavailable`] with the same text.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    /// The module (shared library) could not be loaded or initialised.
    #[error("PKCS#11 module {path} could not be loaded: {reason}")]
    Module {
        /// The configured module path.
        path: String,
        /// What the dynamic loader or `C_Initialize` said.
        reason: String,
    },
    /// No slot holds a token with the configured label.
    #[error("PKCS#11 token '{0}' not found")]
    TokenNotFound(String),
    /// More than one slot holds a token with the configured label.
    #[error("PKCS#11 token label '{0}' matches more than one token")]
    TokenAmbiguous(String),
    /// `C_Login` as the normal user failed (`PIN incorrect`, `PIN locked`, …).
    #[error("PKCS#11 login failed: {reason} (token '{label}')")]
    Login {
        /// The token label.
        label: String,
        /// A fixed description of the failure, never the PIN.
        reason: String,
    },
    /// The token holds no reporter-vault keys yet.
    #[error(
        "PKCS#11 token '{0}' holds no reporter-vault keys; provision it first (reporter-vault keys init-hsm)"
    )]
    NotProvisioned(String),
    /// The token's objects are not what this crate creates (an extractable KEK, two root
    /// keys, a root key missing while KEKs exist, …). Refused rather than guessed at.
    #[error("PKCS#11 token '{label}': {reason}")]
    Inconsistent {
        /// The token label.
        label: String,
        /// What is wrong.
        reason: String,
    },
    /// A PKCS#11 call failed.
    #[error("PKCS#11 token '{label}': {op} failed: {rv}")]
    Operation {
        /// The token label.
        label: String,
        /// The PKCS#11 function, e.g. `C_Encrypt`.
        op: &'static str,
        /// The return code (e.g. `TokenNotPresent`) or the wrapper's error.
        rv: String,
    },
    /// The log origin is not a valid note key name.
    #[error("invalid log origin '{0}': a note key name has no spaces, '+' or control characters")]
    Origin(String),
}

impl From<HsmError> for KeyError {
    fn from(e: HsmError) -> Self {
        KeyError::Unavailable(e.to_string())
    }
}

/// A short, secret-free description of a `cryptoki` error: the return code's name for a
/// PKCS#11 error (`PinIncorrect`), the wrapper's text otherwise.
pub(crate) fn describe(e: &cryptoki::error::Error) -> String {
    match e {
        cryptoki::error::Error::Pkcs11(rv, _) => format!("{rv:?}"),
        other => other.to_string(),
    }
}

/// Maps a failed call to [`HsmError::Operation`].
pub(crate) fn op(label: &str, op: &'static str) -> impl Fn(cryptoki::error::Error) -> HsmError {
    let label = label.to_owned();
    move |e| HsmError::Operation {
        label: label.clone(),
        op,
        rv: describe(&e),
    }
}

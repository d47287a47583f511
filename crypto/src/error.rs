//! Error types.
//!
//! Decryption failures are deliberately opaque: a caller (or an attacker
//! probing an oracle) learns that an envelope failed to open, never which
//! byte or which key was wrong. No message ever contains plaintext, key
//! material or a passphrase.

/// Errors from the cryptographic primitives and formats of this crate.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: the data was altered, moved to another record or
    /// jurisdiction, or the key is wrong. Opaque on purpose (no decryption oracle).
    #[error("integrity check failed")]
    Integrity,
    /// The input is structurally malformed (bad magic, version, length) before
    /// any cryptography runs, or an input is too long to encode.
    #[error("malformed envelope")]
    Format,
    /// The KEK version named by an envelope is not in the keyring (never
    /// existed or was retired).
    #[error("unknown key version {0}")]
    UnknownKeyVersion(u32),
    /// The random source failed; callers must fail closed rather than fall
    /// back to weaker randomness.
    #[error("random source failed")]
    Random,
    /// An `age` operation failed. The string comes from `age` or from this crate
    /// and never contains plaintext.
    #[error("age: {0}")]
    Age(String),
    /// A key-lifecycle request was refused (retiring the active KEK, or
    /// running out of version numbers). Refusing keeps every live envelope
    /// openable.
    #[error("key lifecycle refused: {0}")]
    KeyLifecycle(&'static str),
}

/// Errors from loading or saving the keyring file.
///
/// Paths appear in messages so an operator can act on them; secret values
/// (passphrases, keys, identity contents) never do.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The file could not be opened, read, written or synced.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file grants some permission to group or others; key files must be
    /// private to the service user, so it is refused before it is read.
    #[error("{path} is readable by group or others (mode 0{mode:03o}); chmod 600 it")]
    InsecurePermissions {
        /// The file concerned.
        path: String,
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// The `age` layer rejected the passphrase or identity. Indistinguishable
    /// from each other on purpose.
    #[error("{path} could not be decrypted with the given passphrase or identity")]
    WrongPassphraseOrKey {
        /// The keyring file concerned.
        path: String,
    },
    /// The file decrypted (or was parsed) but its content is invalid.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The file concerned.
        path: String,
        /// A fixed description that never contains file content.
        reason: &'static str,
    },
    /// No way to unlock the keyring was configured.
    #[error(
        "no keyring protector configured: set RV_KEYRING_PASSPHRASE or RV_KEYRING_PASSPHRASE_FILE"
    )]
    NoProtector,
    /// A cryptographic operation inside keyring handling failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

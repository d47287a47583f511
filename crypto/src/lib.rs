//! `vault-crypto`: the cryptographic core of reporter-vault.
//!
//! Everything here is pure and synchronous. Randomness is a parameter
//! ([`random::RandomSource`]) so every format this crate defines has
//! known-answer vectors, and time is a parameter (`now_unix`) for the same
//! reason.
//!
//! # What each module protects
//!
//! | module | threat it answers |
//! |---|---|
//! | [`envelope`] | a stolen database: each identity is sealed under its own data key, wrapped by a key-encryption key (KEK) kept outside the database, and bound to its record, jurisdiction and KEK version so rows cannot be swapped |
//! | [`keyring`] | a stolen disk: the KEKs and the index/MAC/signing keys live in one `age`-encrypted file that must be mode 0600 |
//! | [`mac`] | linkage without decryption: blind indexes let the vault find duplicates; disclosure MACs let auditors match a leaked value to the accesses that released it |
//! | [`token`] | a stolen token table: only SHA-256 of each bearer token is stored |
//! | [`claim`] | a stolen claim-code table: only Argon2id hashes of reporters' claim codes are stored |
//! | [`ids`] | linkability: pseudonyms and ids are pure randomness, never derived from a person |
//! | [`agefmt`] | data leaving the vault: users receive standard `age` files they decrypt with the `age` tool |
//!
//! # Secret types
//!
//! Every key type ([`secret::Key32`], [`mac::BlindIndexKey`],
//! [`mac::DisclosureMacKey`], [`keyring::Keyring`], [`keyring::Kek`]) wipes
//! itself on drop and implements neither `Debug` nor `Clone`, so a key cannot
//! reach a log through `{:?}` nor multiply silently in memory. The one exit is
//! a method whose name says so (`expose_secret`).
//!
//! ```compile_fail,E0277
//! fn needs_clone<T: Clone>() {}
//! needs_clone::<vault_crypto::secret::Key32>();
//! ```
//! ```compile_fail,E0277
//! fn needs_debug<T: std::fmt::Debug>() {}
//! needs_debug::<vault_crypto::secret::Key32>();
//! ```
//! ```compile_fail,E0277
//! fn needs_clone<T: Clone>() {}
//! needs_clone::<vault_crypto::mac::BlindIndexKey>();
//! ```
//! ```compile_fail,E0277
//! fn needs_debug<T: std::fmt::Debug>() {}
//! needs_debug::<vault_crypto::mac::BlindIndexKey>();
//! ```
//! ```compile_fail,E0277
//! fn needs_clone<T: Clone>() {}
//! needs_clone::<vault_crypto::mac::DisclosureMacKey>();
//! ```
//! ```compile_fail,E0277
//! fn needs_debug<T: std::fmt::Debug>() {}
//! needs_debug::<vault_crypto::mac::DisclosureMacKey>();
//! ```
//! ```compile_fail,E0277
//! fn needs_clone<T: Clone>() {}
//! needs_clone::<vault_crypto::keyring::Keyring>();
//! ```
//! ```compile_fail,E0277
//! fn needs_debug<T: std::fmt::Debug>() {}
//! needs_debug::<vault_crypto::keyring::Keyring>();
//! ```
//! ```compile_fail,E0277
//! fn needs_clone<T: Clone>() {}
//! needs_clone::<vault_crypto::keyring::Kek>();
//! ```
//! ```compile_fail,E0277
//! fn needs_debug<T: std::fmt::Debug>() {}
//! needs_debug::<vault_crypto::keyring::Kek>();
//! ```
//! ```compile_fail,E0277
//! fn needs_clone<T: Clone>() {}
//! needs_clone::<vault_crypto::token::Token>();
//! ```
//! ```compile_fail,E0277
//! fn needs_debug<T: std::fmt::Debug>() {}
//! needs_debug::<vault_crypto::token::Token>();
//! ```
//!
//! The same bounds are satisfiable by an ordinary type, so the failures above
//! are caused by the missing traits and not by a typo:
//!
//! ```
//! fn needs_clone<T: Clone>() {}
//! fn needs_debug<T: std::fmt::Debug>() {}
//! needs_clone::<u8>();
//! needs_debug::<vault_crypto::CryptoError>();
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agefmt;
pub mod checkpoint;
pub mod claim;
pub mod envelope;
mod error;
pub mod ids;
pub mod keyring;
pub mod mac;
pub mod merkle;
pub mod random;
pub mod secret;
pub mod token;

pub use error::{CryptoError, KeyringError};

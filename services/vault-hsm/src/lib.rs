//! `vault-hsm`: the PKCS#11 key provider. The key-encryption keys (KEKs) are
//! non-extractable AES-256 keys inside a hardware security module (or SoftHSM2 in
//! development and tests); [`Pkcs11Keys`] implements
//! [`vault_domain::ports::KeyProvider`] (`provider_kind() == "pkcs11"`) as the alternative
//! to the age-protected local keyring. `docs/pkcs11.md` is the operator's version of this
//! page.
//!
//! # Configuration
//!
//! [`Pkcs11Config`]: the module path (e.g. `/usr/lib/softhsm/libsofthsm2.so`), the token
//! label and the normal user's PIN (a `SecretString`). [`Pkcs11Keys::open`] loads the module
//! with `cryptoki` (which uses `libloading`), finds the one slot whose token has that label,
//! logs in as the user, and keeps one anchor session plus a small mutex-protected pool of
//! sessions (a `cryptoki` session is `Send` but not `Sync`).
//!
//! # Objects on the token
//!
//! | object | label (also `CKA_ID`) | type | allowed use |
//! |---|---|---|---|
//! | KEK version `N` | `reporter-vault/kek/vN` | `CKK_AES`, 32 bytes | `CKA_ENCRYPT`, `CKA_DECRYPT` |
//! | root key | `reporter-vault/root` | `CKK_GENERIC_SECRET`, 32 bytes | `CKA_SIGN` (HMAC) |
//!
//! Every object is a private token object with `CKA_SENSITIVE=true`,
//! `CKA_EXTRACTABLE=false` and `CKA_MODIFIABLE=false`, generated inside the token
//! (`C_GenerateKey`), so its value never exists outside it. An object labelled like ours
//! that is extractable or not sensitive (imported by hand, say) is refused at open and
//! reload. A KEK's creation time (Unix seconds) is kept beside it in a private, read-only
//! data object (`CKO_DATA`, same label, `CKA_APPLICATION` `reporter-vault/kek-created-at`,
//! `CKA_VALUE` the decimal seconds); a KEK without one reports 0. Not `CKA_START_DATE`: it
//! holds only a date, and SoftHSM 2.6.1 cannot read it back from a private object
//! (`CKR_GENERAL_ERROR`). The record is written before the key and removed after it.
//!
//! # Wrapping data keys
//!
//! [`Pkcs11Wrapper`] implements [`vault_crypto::envelope::KeyWrapper`], so
//! `envelope::seal`, `open` and `rewrap` and envelope format v1 are unchanged. The DEK is
//! encrypted inside the token with `C_Encrypt`/`C_Decrypt` and `CKM_AES_GCM`: a 12-byte IV
//! from the service's `RandomSource`, the envelope's wrap AAD (which binds record,
//! jurisdiction and KEK version) as GCM AAD, a 128-bit tag. The wrap is IV ‖ ciphertext ‖
//! tag, 60 bytes, as for the local keyring. A version the token does not hold is
//! `CryptoError::UnknownKeyVersion`; a failed tag is `CryptoError::Integrity`.
//!
//! SoftHSM2 (2.6.1) answers a failed GCM tag with `CKR_GENERAL_ERROR` rather than
//! `CKR_ENCRYPTED_DATA_INVALID`, and `CKR_GENERAL_ERROR` also means "the token broke". So
//! on that code the provider probes the token (see *Failing closed*): healthy means the tag
//! failed (`Integrity`), unhealthy means an outage (`Unavailable`). Tokens that return
//! `CKR_ENCRYPTED_DATA_INVALID`/`_LEN_RANGE` are classified directly.
//!
//! Caller-chosen GCM IVs: PKCS#11 v2.40 `CK_GCM_PARAMS` takes the IV from the caller, which
//! SoftHSM2 and most HSMs accept. Some FIPS-mode HSMs refuse caller IVs for encryption and
//! insist on generating them; such a token fails at the first seal with a clear
//! `C_Encrypt` error, and would need the PKCS#11 3.0 message API (not implemented).
//!
//! # The other keys: derived once, held in memory
//!
//! The blind-index key, the disclosure-MAC key and the log signing seed are
//! HMAC-SHA256(root, label), computed inside the token (`C_Sign` with
//! `CKM_SHA256_HMAC`) at start-up with the distinct labels [`BLIND_INDEX_KEY_LABEL`],
//! [`DISCLOSURE_MAC_KEY_LABEL`] and [`LOG_SIGNING_SEED_LABEL`]; the statement key is derived
//! from the log seed exactly as the local provider does (`StatementSigner::derive`). The
//! derived 32-byte keys then live in memory (wiped on drop), as the local provider's do.
//!
//! The trade-off: the KEKs never leave the HSM, so a copy of the database plus a memory
//! dump of one replica still cannot open envelopes offline once the HSM access is revoked;
//! but lookups (blind indexes, disclosure MACs) and checkpoint signatures do not cost an
//! HSM round trip each, and Ed25519 note signing does not depend on the HSM supporting
//! `CKM_EDDSA`. A memory dump does expose the derived keys, as it would with the local
//! keyring; the HSM makes them reproducible only for holders of the PIN, and they are the
//! same on every replica because they are derived from the same root.
//!
//! # Lifecycle
//!
//! * [`provision`] creates the root key and KEK v1 on a token that has none (for
//!   `reporter-vault keys init-hsm`, and tests). It is idempotent, and refuses a token that
//!   has KEKs but no root, since a new root would change every blind index.
//! * The active version is the highest version present on the token.
//! * `rotate(now)` re-reads the token and generates KEK `newest + 1`, so version numbers
//!   are never reused (the active, newest version can never be retired).
//! * `retire(v)` destroys the key object(s) of `v` and then its creation-time record
//!   (refusing the active version and unknown versions with `KeyError::Refused`).
//! * `key_versions()` is the list read at open or at the last rotate/retire/reload;
//!   `reload()` re-reads the object list, so a replica picks up another replica's or the
//!   CLI's rotation. An envelope naming a version newer than any known (sealed by a replica
//!   that rotated) triggers one reload and a retry, so replicas need not poll to open each
//!   other's new envelopes. A version retired elsewhere is `Integrity` until the next
//!   reload drops it from the list.
//! * Two processes rotating at the same moment may both create `vN`. Both objects are
//!   kept: wrapping uses one of them and unwrapping tries each (the GCM tag tells which),
//!   so no envelope is lost; `retire` destroys both.
//!
//! # Failing closed
//!
//! Every failure is [`HsmError`] at start-up and `KeyError::Unavailable` afterwards, with
//! a message naming the module or token and the PKCS#11 return code, never the PIN:
//! `PKCS#11 module /path could not be loaded: …`, `PKCS#11 token 'X' not found`,
//! `PKCS#11 login failed: PIN incorrect (token 'X')`. There is no fallback to software
//! keys, and no panic.
//!
//! `check()` is the probe: `C_GetSessionInfo` on the anchor session (it must be a user
//! session) and a `C_FindObjects` for the root key, which must be the very object found at
//! start-up (same handle). It fails when the token is gone, logged out, emptied, or wiped
//! and re-provisioned under the running process. `reload`, `rotate` and `retire` run the
//! probe first, so KEKs are only ever adopted from the token the derived keys came from.
//!
//! A seal, open or rewrap that fails because of the token is `Unavailable`, never
//! `Integrity`, so callers do not mistake an HSM outage for a damaged record: when the
//! token says a KEK handle is invalid, the probe decides between "retired elsewhere"
//! (healthy token: unknown version) and an outage. What stays available when the token
//! disappears: the in-memory derived keys (blind indexes, MACs, checkpoint signatures);
//! readiness (`check`) is what takes such a replica out of service. Re-login is not
//! attempted; a replica whose token was lost stays not ready until it is restarted.
//!
//! # One module per process
//!
//! A PKCS#11 module is initialised once per process and its login state is shared by all
//! sessions of the process. The crate keeps a process-wide registry of loaded modules (never
//! finalised); a second provider on the same token reuses the login, and must present the
//! same PIN (compared as a keyed hash, never stored) or it is refused as `PIN incorrect`.
//!
//! SoftHSM2 caches a token's state per process: after another process re-initialises the
//! token, a process that was logged in keeps its old view (the old login, even the old PIN).
//! The running provider fails closed (the probe sees a different root key), but restart
//! every process after re-initialising a token.
//!
//! The `KeyProvider` methods block on the token; async callers should use
//! `spawn_blocking` for the envelope operations as they would for any slow I/O.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod objects;
mod provider;
mod token;

pub use error::HsmError;
pub use objects::{CREATED_AT_APPLICATION, KEK_LABEL_PREFIX, ROOT_LABEL, kek_label};
pub use provider::{
    BLIND_INDEX_KEY_LABEL, DISCLOSURE_MAC_KEY_LABEL, LOG_SIGNING_SEED_LABEL, Pkcs11Config,
    Pkcs11Keys, Pkcs11Wrapper, Provisioned, WRAP_LEN, provision,
};

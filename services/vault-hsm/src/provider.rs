//! [`Pkcs11Keys`]: the [`KeyProvider`] over a PKCS#11 token, and [`provision`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::ObjectHandle;
use secrecy::SecretString;
use vault_crypto::CryptoError;
use vault_crypto::checkpoint::{Checkpoint, LogSigner, StatementSigner};
use vault_crypto::envelope::{self, EnvelopeContext, KeyWrapper};
use vault_crypto::mac::{BlindIndexKey, DisclosureMacKey};
use vault_crypto::random::RandomSource;
use vault_crypto::secret::Key32;
use vault_domain::ports::{KeyError, KeyProvider, KeyVersion};
use zeroize::Zeroizing;

use crate::error::{HsmError, describe, op};
use crate::objects::{self, KekSet};
use crate::token::Token;

/// HMAC labels under which the root key derives the in-memory keys (see the crate docs).
pub const BLIND_INDEX_KEY_LABEL: &[u8] = b"reporter-vault/hsm/blind-index-key/v1";
/// See [`BLIND_INDEX_KEY_LABEL`].
pub const DISCLOSURE_MAC_KEY_LABEL: &[u8] = b"reporter-vault/hsm/disclosure-mac-key/v1";
/// See [`BLIND_INDEX_KEY_LABEL`].
pub const LOG_SIGNING_SEED_LABEL: &[u8] = b"reporter-vault/hsm/log-signing-seed/v1";

const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;
const DEK_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// IV ‖ AES-256-GCM(KEK, DEK) ‖ tag: 60 bytes, the same size as the local keyring's wrap.
pub const WRAP_LEN: usize = IV_LEN + DEK_LEN + TAG_LEN;

/// How to reach the token.
///
/// `Debug` shows the module and label; the PIN prints as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token's label (as set at `C_InitToken`, without the blank padding).
    pub token_label: String,
    /// The normal user's PIN.
    pub pin: SecretString,
}

impl Pkcs11Config {
    /// A configuration for `token_label` in `module`, logging in with `pin`.
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        pin: SecretString,
    ) -> Self {
        Self {
            module: module.into(),
            token_label: token_label.into(),
            pin,
        }
    }
}

/// What [`provision`] created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioned {
    /// The root key `reporter-vault/root` was created.
    pub created_root: bool,
    /// KEK version 1 was created.
    pub created_kek: bool,
}

/// Creates the root key and KEK version 1 on a token that has none (for
/// `reporter-vault keys init-hsm`). Idempotent: on a provisioned token it creates nothing.
///
/// A token that has KEKs but no root key is refused ([`HsmError::Inconsistent`]): a new
/// root would silently change every blind index and the log signing key.
pub fn provision(config: &Pkcs11Config, now_unix: i64) -> Result<Provisioned, HsmError> {
    let token = Token::connect(&config.module, &config.token_label, &config.pin)?;
    let label = token.label().to_owned();
    let roots = token
        .with_session(objects::read_roots)
        .map_err(op(&label, "C_FindObjects"))?;
    let root = objects::root_handle(&label, &roots)?;
    let keks = read_kek_set(&token)?;
    let mut done = Provisioned {
        created_root: false,
        created_kek: false,
    };
    if root.is_none() {
        if !keks.versions.is_empty() {
            return Err(HsmError::Inconsistent {
                label,
                reason: format!(
                    "KEKs exist but the root key {} is missing; refusing to create a new root \
                     (it would change every blind index and the log key)",
                    objects::ROOT_LABEL
                ),
            });
        }
        token
            .with_session(objects::generate_root)
            .map_err(op(&label, "C_GenerateKey"))?;
        done.created_root = true;
    }
    if keks.versions.is_empty() {
        create_kek(&token, 1, now_unix)?;
        done.created_kek = true;
    }
    Ok(done)
}

/// Writes the creation-time record, then generates the key; if generating fails, the
/// record is removed again (best effort: a stray record is replaced by the next rotation).
fn create_kek(token: &Token, version: u32, now_unix: i64) -> Result<(), HsmError> {
    let label = token.label();
    let record = token
        .with_session(|s| objects::write_created_at(s, version, now_unix))
        .map_err(op(label, "C_CreateObject"))?;
    let generated = token.with_session(|s| objects::generate_kek(s, version));
    if let Err(e) = generated {
        let _ = token.with_session(|s| s.destroy_object(record));
        return Err(op(label, "C_GenerateKey")(e));
    }
    Ok(())
}

fn read_kek_set(token: &Token) -> Result<KekSet, HsmError> {
    let raw = token
        .with_session(objects::read_keks)
        .map_err(op(token.label(), "C_FindObjects"))?;
    KekSet::from_raw(token.label(), raw)
}

fn key32(bytes: &[u8]) -> Option<Key32> {
    let arr: Zeroizing<[u8; 32]> = Zeroizing::new(bytes.try_into().ok()?);
    Some(Key32::from_bytes(*arr))
}

/// Keys in a PKCS#11 token: KEKs that never leave it, and index, MAC and signing keys
/// derived inside it at start-up (see the crate documentation).
pub struct Pkcs11Keys {
    token: Token,
    keks: RwLock<Arc<KekSet>>,
    /// Serialises rotate, retire and reload within this process.
    lifecycle: Mutex<()>,
    rng: Arc<dyn RandomSource>,
    blind_index: BlindIndexKey,
    disclosure_mac: DisclosureMacKey,
    signer: LogSigner,
    statements: StatementSigner,
}

impl Pkcs11Keys {
    /// Opens the token, logs in, reads the KEK objects and derives the in-memory keys.
    ///
    /// `origin` names the access trail in its checkpoints; without one it is
    /// `reporter-vault/` and the first 16 hex digits of SHA-256 of the log public key, as
    /// for the local keyring. Fails closed: a missing module, token or root key, a wrong
    /// PIN, or a token without KEKs is an error, never a fallback.
    pub fn open(
        config: &Pkcs11Config,
        rng: Arc<dyn RandomSource>,
        origin: Option<&str>,
    ) -> Result<Self, HsmError> {
        let token = Token::connect(&config.module, &config.token_label, &config.pin)?;
        let label = token.label().to_owned();
        let roots = token
            .with_session(objects::read_roots)
            .map_err(op(&label, "C_FindObjects"))?;
        let root = objects::root_handle(&label, &roots)?;
        let keks = read_kek_set(&token)?;
        let root = match (root, keks.versions.is_empty()) {
            (Some(root), false) => root,
            (None, true) => return Err(HsmError::NotProvisioned(label)),
            (None, false) => {
                return Err(HsmError::Inconsistent {
                    label,
                    reason: format!("the root key {} is missing", objects::ROOT_LABEL),
                });
            }
            (Some(_), true) => {
                return Err(HsmError::Inconsistent {
                    label,
                    reason: "no KEK on the token (reporter-vault/kek/vN)".into(),
                });
            }
        };
        token.pin_root(root);
        let derived = token
            .with_session(|s| {
                let mech = Mechanism::Sha256Hmac;
                Ok([
                    Zeroizing::new(s.sign(&mech, root, BLIND_INDEX_KEY_LABEL)?),
                    Zeroizing::new(s.sign(&mech, root, DISCLOSURE_MAC_KEY_LABEL)?),
                    Zeroizing::new(s.sign(&mech, root, LOG_SIGNING_SEED_LABEL)?),
                ])
            })
            .map_err(op(&label, "C_Sign (CKM_SHA256_HMAC)"))?;
        let [blind, mac, seed] = derived;
        let wrong_len = || HsmError::Inconsistent {
            label: label.clone(),
            reason: "HMAC-SHA256 with the root key did not return 32 bytes".into(),
        };
        let blind_index = BlindIndexKey::from_key(key32(&blind).ok_or_else(wrong_len)?);
        let disclosure_mac = DisclosureMacKey::from_key(key32(&mac).ok_or_else(wrong_len)?);
        let seed = key32(&seed).ok_or_else(wrong_len)?;

        let origin = match origin {
            Some(o) => o.to_owned(),
            None => {
                let probe = LogSigner::from_seed("reporter-vault", &seed)
                    .map_err(|_| HsmError::Origin("reporter-vault".into()))?;
                let digest = ring::digest::digest(&ring::digest::SHA256, &probe.public_key());
                let prefix: String = hex::encode(digest.as_ref()).chars().take(16).collect();
                format!("reporter-vault/{prefix}")
            }
        };
        let signer =
            LogSigner::from_seed(&origin, &seed).map_err(|_| HsmError::Origin(origin.clone()))?;
        let statements = StatementSigner::derive(&format!("{origin}/receipts"), &seed)
            .map_err(|_| HsmError::Origin(origin.clone()))?;
        Ok(Self {
            token,
            keks: RwLock::new(Arc::new(keks)),
            lifecycle: Mutex::new(()),
            rng,
            blind_index,
            disclosure_mac,
            signer,
            statements,
        })
    }

    /// The KEKs as last read, for one operation.
    fn snapshot(&self) -> Arc<KekSet> {
        // The set is swapped whole, so even a poisoned lock holds a consistent one.
        let guard = self
            .keks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(&guard)
    }

    fn replace(&self, fresh: KekSet) -> bool {
        let mut guard = self
            .keks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = guard.summary() != fresh.summary()
            || guard
                .versions
                .iter()
                .zip(fresh.versions.iter())
                .any(|((_, a), (_, b))| a.handles != b.handles);
        *guard = Arc::new(fresh);
        changed
    }

    /// A [`KeyWrapper`] over the KEKs as they are now, so `envelope::seal`, `open` and
    /// `rewrap` work unchanged. New envelopes go to the newest version.
    pub fn key_wrapper(&self) -> Pkcs11Wrapper<'_> {
        Pkcs11Wrapper {
            token: &self.token,
            keks: self.snapshot(),
            fault: Mutex::new(None),
        }
    }

    /// Runs an envelope operation; when it names a KEK version newer than any known here
    /// (another replica rotated), reloads the object list once and retries.
    fn with_newest<T>(
        &self,
        f: impl Fn(&Pkcs11Wrapper<'_>) -> Result<T, CryptoError>,
    ) -> Result<T, KeyError> {
        let wrapper = self.key_wrapper();
        match f(&wrapper) {
            Ok(v) => Ok(v),
            Err(CryptoError::UnknownKeyVersion(v))
                if wrapper.fault().is_none() && v > wrapper.active_version() =>
            {
                if !self.reload()? {
                    return Err(KeyError::Integrity);
                }
                let fresh = self.key_wrapper();
                f(&fresh).map_err(|e| fresh.key_error(&e))
            }
            Err(e) => Err(wrapper.key_error(&e)),
        }
    }

    fn lock_lifecycle(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lifecycle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// [`KeyWrapper`] over the token's KEKs: AES-256-GCM inside the token
/// (`C_Encrypt`/`C_Decrypt` with `CKM_AES_GCM`, a 12-byte IV from the caller's random
/// source, the envelope's wrap AAD as GCM AAD, a 128-bit tag). A wrap is IV ‖ ciphertext ‖
/// tag, 60 bytes.
///
/// A version the token does not hold is [`CryptoError::UnknownKeyVersion`]; a failed tag
/// is [`CryptoError::Integrity`]. When the *token* fails (gone, logged out, device error)
/// the method returns [`CryptoError::KeyLifecycle`] and [`Pkcs11Wrapper::fault`] says what
/// happened, so callers can tell a broken HSM from a broken envelope.
pub struct Pkcs11Wrapper<'a> {
    token: &'a Token,
    keks: Arc<KekSet>,
    fault: Mutex<Option<String>>,
}

/// The error returned when the token, not the data, failed.
const TOKEN_FAULT: CryptoError = CryptoError::KeyLifecycle("PKCS#11 token unavailable");

impl Pkcs11Wrapper<'_> {
    /// Why the last failing call failed, when the token (not the data) was at fault.
    pub fn fault(&self) -> Option<String> {
        self.fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn record(&self, message: String) -> CryptoError {
        *self
            .fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message);
        TOKEN_FAULT
    }

    fn record_call(&self, op: &str, e: &CkError) -> CryptoError {
        self.record(format!(
            "PKCS#11 token '{}': {op} failed: {}",
            self.token.label(),
            describe(e)
        ))
    }

    /// A KEK object we knew of is gone: destroyed by another process (then the version is
    /// unknown), or the whole token is (then it is a fault).
    fn missing_key(&self, version: u32) -> CryptoError {
        match self.token.probe() {
            Ok(()) => CryptoError::UnknownKeyVersion(version),
            Err(message) => self.record(message),
        }
    }

    /// The KeyError for a failed envelope operation: the token's fault if it had one,
    /// otherwise what the data said (every data failure looks the same: integrity).
    fn key_error(&self, e: &CryptoError) -> KeyError {
        match self.fault() {
            Some(message) => KeyError::Unavailable(message),
            None => match e {
                CryptoError::Random => KeyError::Unavailable(e.to_string()),
                _ => KeyError::Integrity,
            },
        }
    }
}

fn key_handle_gone(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _)
    )
}

/// The return codes PKCS#11 defines for ciphertext that does not authenticate.
fn tag_failed(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange,
            _
        )
    )
}

impl KeyWrapper for Pkcs11Wrapper<'_> {
    fn active_version(&self) -> u32 {
        self.keks.active()
    }

    fn wrap(
        &self,
        version: u32,
        dek: &Key32,
        aad: &[u8],
        rng: &dyn RandomSource,
    ) -> Result<Vec<u8>, CryptoError> {
        let handle: ObjectHandle = *self
            .keks
            .handles(version)
            .and_then(<[ObjectHandle]>::first)
            .ok_or(CryptoError::UnknownKeyVersion(version))?;
        let mut iv = [0u8; IV_LEN];
        rng.fill(&mut iv)?;
        let sealed = self.token.with_session(|s| {
            let mut iv_param = iv;
            let params = GcmParams::new(&mut iv_param, aad, TAG_BITS.into())?;
            s.encrypt(&Mechanism::AesGcm(params), handle, dek.expose_secret())
        });
        match sealed {
            Ok(ct) if ct.len() == DEK_LEN + TAG_LEN => {
                let mut out = Vec::with_capacity(WRAP_LEN);
                out.extend_from_slice(&iv);
                out.extend_from_slice(&ct);
                Ok(out)
            }
            Ok(_) => Err(self.record(format!(
                "PKCS#11 token '{}': C_Encrypt (CKM_AES_GCM) returned an output of unexpected length",
                self.token.label()
            ))),
            Err(e) if key_handle_gone(&e) => Err(self.missing_key(version)),
            Err(e) => Err(self.record_call("C_Encrypt (CKM_AES_GCM)", &e)),
        }
    }

    fn unwrap(&self, version: u32, wrapped: &[u8], aad: &[u8]) -> Result<Key32, CryptoError> {
        let handles = self
            .keks
            .handles(version)
            .ok_or(CryptoError::UnknownKeyVersion(version))?;
        if wrapped.len() != WRAP_LEN {
            return Err(CryptoError::Format);
        }
        let (iv, ct) = wrapped
            .split_first_chunk::<IV_LEN>()
            .ok_or(CryptoError::Format)?;
        let mut missing = false;
        let mut rejected = false;
        // Normally one object per version; with duplicates (see `KekEntry`) the tag tells
        // which one wrapped this DEK.
        for &handle in handles {
            let opened = self.token.with_session(|s| {
                let mut iv_param = *iv;
                let params = GcmParams::new(&mut iv_param, aad, TAG_BITS.into())?;
                s.decrypt(&Mechanism::AesGcm(params), handle, ct)
                    .map(Zeroizing::new)
            });
            match opened {
                Ok(plain) => return key32(&plain).ok_or(CryptoError::Integrity),
                Err(e) if tag_failed(&e) => rejected = true,
                // SoftHSM2 (2.6.1) reports a failed GCM tag as CKR_GENERAL_ERROR, which also
                // means "something broke". A healthy token (present, logged in, root key
                // there) makes it the tag; otherwise it is the token's fault.
                Err(CkError::Pkcs11(RvError::GeneralError, _)) => match self.token.probe() {
                    Ok(()) => rejected = true,
                    Err(message) => return Err(self.record(message)),
                },
                Err(e) if key_handle_gone(&e) => missing = true,
                Err(e) => return Err(self.record_call("C_Decrypt (CKM_AES_GCM)", &e)),
            }
        }
        if missing && !rejected {
            return Err(self.missing_key(version));
        }
        Err(CryptoError::Integrity)
    }
}

fn refused(message: impl Into<String>) -> KeyError {
    KeyError::Refused(message.into())
}

impl KeyProvider for Pkcs11Keys {
    fn seal(
        &self,
        record_id: &str,
        jurisdiction: &str,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, u32), KeyError> {
        let wrapper = self.key_wrapper();
        let ctx = EnvelopeContext {
            record_id,
            jurisdiction,
        };
        match envelope::seal(&wrapper, &ctx, plaintext, self.rng.as_ref()) {
            Ok(env) => Ok((env, wrapper.active_version())),
            Err(e) => Err(KeyError::Unavailable(
                wrapper.fault().unwrap_or_else(|| e.to_string()),
            )),
        }
    }

    fn open(
        &self,
        record_id: &str,
        jurisdiction: &str,
        env: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let ctx = EnvelopeContext {
            record_id,
            jurisdiction,
        };
        self.with_newest(|w| envelope::open(w, &ctx, env))
    }

    fn blind_index(&self, kind: &str, normalized: &str) -> Result<[u8; 32], KeyError> {
        Ok(self.blind_index.index(kind, normalized))
    }

    fn field_mac(&self, field: &str, normalized: &str) -> Result<[u8; 32], KeyError> {
        Ok(self.disclosure_mac.field_mac(field, normalized))
    }

    fn log_origin(&self) -> String {
        self.signer.name().to_owned()
    }

    fn sign_checkpoint(&self, cp: &Checkpoint) -> Result<String, KeyError> {
        self.signer
            .sign(cp)
            .map_err(|e| KeyError::Unavailable(e.to_string()))
    }

    fn log_verifier_key(&self) -> String {
        self.signer.verifier_key()
    }

    fn sign_statement(&self, text: &str) -> Result<String, KeyError> {
        self.statements
            .sign(text)
            .map_err(|e| KeyError::Unavailable(e.to_string()))
    }

    fn statement_verifier_key(&self) -> String {
        self.statements.verifier_key()
    }

    fn provider_kind(&self) -> &'static str {
        "pkcs11"
    }

    fn active_version(&self) -> u32 {
        self.snapshot().active()
    }

    fn key_versions(&self) -> Result<Vec<KeyVersion>, KeyError> {
        Ok(self.snapshot().summary())
    }

    fn rotate(&self, now_unix: i64) -> Result<u32, KeyError> {
        let _serial = self.lock_lifecycle();
        self.token.probe().map_err(KeyError::Unavailable)?;
        let label = self.token.label();
        let current = read_kek_set(&self.token)?;
        let next = current
            .active()
            .checked_add(1)
            .ok_or_else(|| refused("KEK version numbers exhausted"))?;
        create_kek(&self.token, next, now_unix)?;
        let fresh = read_kek_set(&self.token)?;
        if fresh.handles(next).is_none() {
            return Err(KeyError::Unavailable(format!(
                "PKCS#11 token '{label}': the new KEK v{next} cannot be found after creating it"
            )));
        }
        self.replace(fresh);
        Ok(next)
    }

    fn retire(&self, version: u32) -> Result<(), KeyError> {
        let _serial = self.lock_lifecycle();
        self.token.probe().map_err(KeyError::Unavailable)?;
        let label = self.token.label();
        let current = read_kek_set(&self.token)?;
        if version == current.active() {
            return Err(refused("the active KEK cannot be retired; rotate first"));
        }
        let handles = current
            .handles(version)
            .ok_or_else(|| refused(format!("no KEK version {version}")))?
            .to_vec();
        for handle in handles {
            self.token
                .with_session(|s| s.destroy_object(handle))
                .map_err(op(label, "C_DestroyObject"))?;
        }
        // The key is what matters; its creation-time record goes after it.
        self.token
            .with_session(|s| {
                for record in objects::created_at_handles(s, version)? {
                    s.destroy_object(record)?;
                }
                Ok(())
            })
            .map_err(op(label, "C_DestroyObject"))?;
        let fresh = read_kek_set(&self.token)?;
        self.replace(fresh);
        Ok(())
    }

    fn rewrap(
        &self,
        record_id: &str,
        jurisdiction: &str,
        env: &[u8],
    ) -> Result<(Vec<u8>, u32), KeyError> {
        let ctx = EnvelopeContext {
            record_id,
            jurisdiction,
        };
        self.with_newest(|w| {
            let to = w.active_version();
            envelope::rewrap(w, &ctx, env, to, self.rng.as_ref()).map(|out| (out, to))
        })
    }

    fn reload(&self) -> Result<bool, KeyError> {
        let _serial = self.lock_lifecycle();
        // KEKs are only adopted from the token the provider started with (same root key).
        self.token.probe().map_err(KeyError::Unavailable)?;
        let fresh = read_kek_set(&self.token)?;
        if fresh.versions.is_empty() {
            return Err(KeyError::Unavailable(format!(
                "PKCS#11 token '{}' no longer holds any KEK",
                self.token.label()
            )));
        }
        Ok(self.replace(fresh))
    }

    fn check(&self) -> Result<(), KeyError> {
        self.token.probe().map_err(KeyError::Unavailable)
    }
}

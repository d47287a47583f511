//! The local keyring: KEKs, the blind-index key, the disclosure-MAC key and
//! the log signing seed, in one `age`-encrypted file.
//!
//! # Threats answered
//!
//! * **Stolen disk or backup**: the file is `age`-encrypted, either to an
//!   operator passphrase (scrypt, about one second per attempt) or to an
//!   `age` X25519 identity kept elsewhere (e.g. a Kubernetes secret).
//! * **Over-broad permissions**: the keyring file and the identity file are
//!   refused, before any byte is read, if group or others have any
//!   permission bit; they are created 0600 from the first syscall.
//! * **Crash mid-save**: the new file is written beside the old one, synced,
//!   renamed over it and the directory synced, so a reader sees the old or
//!   the new keyring, never half of one.
//! * **Key material in memory**: the JSON plaintext is built and parsed in
//!   wiping buffers sized up front (no reallocation leaves copies), and every
//!   key type wipes itself on drop.
//!
//! # File content (inside `age`)
//!
//! ```json
//! {"format":1,"active_kek":2,
//!  "keks":[{"version":1,"created_at":1700000000,"key":"<base64>"}, …],
//!  "blind_index_key":"<base64>","disclosure_mac_key":"<base64>",
//!  "log_signing_seed":"<base64>"}
//! ```
//!
//! Keys are standard base64 (with padding) of 32 bytes; `created_at` is Unix
//! seconds. Unknown fields are refused. The active KEK is always the newest
//! version, so a retired version number is never reused.
//!
//! # Wrap format
//!
//! As a [`KeyWrapper`], the keyring wraps a DEK as 12-byte random nonce ‖
//! AES-256-GCM(KEK, DEK, aad) = 60 bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, Nonce};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

use crate::envelope::{KeyWrapper, aead_key};
use crate::mac::{BlindIndexKey, DisclosureMacKey};
use crate::random::RandomSource;
use crate::secret::Key32;
use crate::{CryptoError, KeyringError};

/// The keyring plaintext format written by [`Keyring::save`].
const KEYRING_FORMAT: u32 = 1;
/// Upper bound on a keyring file; far above any real keyring, low enough
/// that a wrong path (a disk image, a log) is not read into memory.
const MAX_KEYRING_FILE: u64 = 16 * 1024 * 1024;
/// Upper bound on an identity file.
const MAX_IDENTITY_FILE: u64 = 64 * 1024;
/// Length of the local wrap: nonce ‖ DEK ‖ tag.
const WRAP_LEN: usize = 12 + 32 + 16;

/// One key-encryption key version.
///
/// Wiped on drop; no `Debug` or `Clone`. The key itself never leaves the
/// keyring except through [`KeyWrapper`] operations.
pub struct Kek {
    version: u32,
    key: Key32,
    created_at_unix: i64,
}

impl Kek {
    /// The version number envelopes record to name this KEK.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// When this version was created (Unix seconds), for rotation policy.
    pub fn created_at_unix(&self) -> i64 {
        self.created_at_unix
    }

    #[cfg(test)]
    pub(crate) fn for_tests(version: u32, key: Key32, created_at_unix: i64) -> Kek {
        Kek {
            version,
            key,
            created_at_unix,
        }
    }
}

/// All long-lived secret keys of one vault deployment.
///
/// No `Debug`, `Clone` or `Serialize`: it is written only through
/// [`Keyring::save`], which encrypts it.
pub struct Keyring {
    /// Sorted by version, versions unique; never empty.
    keks: Vec<Kek>,
    /// Always the newest version in `keks`.
    active: u32,
    blind_index_key: BlindIndexKey,
    disclosure_mac_key: DisclosureMacKey,
    log_signing_seed: Key32,
}

/// How the keyring file is protected at rest.
///
/// No `Debug`: even a redacted passphrase does not belong in a log.
pub enum KeyringProtector {
    /// An operator passphrase (age scrypt recipient, ~1 s per attempt).
    Passphrase(SecretString),
    /// A file holding an `age` X25519 identity (`AGE-SECRET-KEY-1…`), which
    /// must itself be mode 0600.
    IdentityFile(PathBuf),
}

impl KeyringProtector {
    /// Generates a new `age` X25519 identity and writes it to `path` in the
    /// format `age-keygen` uses (so `age -d -i path` works), created with
    /// mode 0600 from the first syscall. Refuses to overwrite an existing
    /// file: overwriting an identity would make its keyring undecryptable.
    pub fn create_identity_file(path: &Path) -> Result<(), KeyringError> {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public().to_string();
        let secret = identity.to_string();
        let mut contents = Zeroizing::new(String::with_capacity(
            96 + recipient.len() + secret.expose_secret().len(),
        ));
        contents.push_str("# reporter-vault keyring identity\n# public key: ");
        contents.push_str(&recipient);
        contents.push('\n');
        contents.push_str(secret.expose_secret());
        contents.push('\n');

        let io = |source| io_err(path, source);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(contents.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        sync_parent_dir(path)
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn io_err(path: &Path, source: std::io::Error) -> KeyringError {
    KeyringError::Io {
        path: display(path),
        source,
    }
}

fn corrupt(path: &Path, reason: &'static str) -> KeyringError {
    KeyringError::Corrupt {
        path: display(path),
        reason,
    }
}

/// Opens `path`, checks (on the open handle, so the file checked is the file
/// read) that it is a regular file with no group/other permission bits, and
/// only then reads it into a wiping buffer.
fn read_private_file(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
    let io = |source| io_err(path, source);
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(corrupt(path, "not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyringError::InsecurePermissions {
            path: display(path),
            mode,
        });
    }
    if meta.len() > limit {
        return Err(corrupt(path, "file is too large"));
    }
    // Capacity for the whole file plus one byte, so reading to EOF does not
    // reallocate (and strand an unwiped copy) unless the file grows meanwhile.
    let capacity = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io)?;
    if u64::try_from(buf.len()).unwrap_or(u64::MAX) > limit {
        return Err(corrupt(path, "file is too large"));
    }
    Ok(buf)
}

fn read_identity_file(path: &Path) -> Result<age::IdentityFile<age::NoCallbacks>, KeyringError> {
    let data = read_private_file(path, MAX_IDENTITY_FILE)?;
    let file = age::IdentityFile::from_buffer(data.as_slice())
        .map_err(|_| corrupt(path, "not an age identity file"))?;
    Ok(file)
}

fn sync_parent_dir(path: &Path) -> Result<(), KeyringError> {
    let dir = parent_dir(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically: a 0600 temporary file in the same
/// directory, fsync, rename over `path`, fsync the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KeyringError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        io_err(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = parent_dir(path).join(tmp_name);

    let result = (|| {
        let io = |source| io_err(&tmp, source);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| io_err(path, e))
    })();
    if result.is_err() {
        // Best effort: the temporary holds only ciphertext, but do not litter.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_parent_dir(path)
}

fn map_decrypt_error(path: &Path, e: age::DecryptError) -> KeyringError {
    use age::DecryptError as D;
    match e {
        D::DecryptionFailed | D::KeyDecryptionFailed | D::NoMatchingKeys => {
            KeyringError::WrongPassphraseOrKey {
                path: display(path),
            }
        }
        D::ExcessiveWork { .. } => corrupt(
            path,
            "passphrase work factor is far above what this machine allows",
        ),
        D::InvalidMac => corrupt(path, "age header authentication failed"),
        // age reads from an in-memory buffer here, so its I/O errors (such as
        // an unexpected end) mean a truncated or malformed file.
        _ => corrupt(path, "not a valid age file"),
    }
}

// ---- JSON (de)serialization, never through an unwiped String ----

fn serialize_key<S: Serializer>(key: &&Key32, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = Zeroizing::new([0u8; 44]);
    let n = STANDARD
        .encode_slice(key.expose_secret(), buf.as_mut_slice())
        .map_err(serde::ser::Error::custom)?;
    let text = buf
        .get(..n)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(|| serde::ser::Error::custom("base64"))?;
    s.serialize_str(text)
}

#[derive(Serialize)]
struct KekOut<'a> {
    version: u32,
    created_at: i64,
    #[serde(serialize_with = "serialize_key")]
    key: &'a Key32,
}

#[derive(Serialize)]
struct FileOut<'a> {
    format: u32,
    active_kek: u32,
    keks: Vec<KekOut<'a>>,
    #[serde(serialize_with = "serialize_key")]
    blind_index_key: &'a Key32,
    #[serde(serialize_with = "serialize_key")]
    disclosure_mac_key: &'a Key32,
    #[serde(serialize_with = "serialize_key")]
    log_signing_seed: &'a Key32,
}

/// A key decoded straight from the JSON input into a wiping container.
struct B64Key(Key32);

impl<'de> Deserialize<'de> for B64Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = B64Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64-encoded 32-byte key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<B64Key, E> {
                // Fixed messages: serde must not echo the (secret) input.
                let mut buf = Zeroizing::new([0u8; 48]);
                let n = STANDARD
                    .decode_slice(v, buf.as_mut_slice())
                    .map_err(|_| E::custom("invalid key encoding"))?;
                let bytes = buf
                    .get(..n)
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| E::custom("invalid key length"))?;
                let mut key = Key32::zeroed();
                key.as_mut_bytes().copy_from_slice(bytes);
                Ok(B64Key(key))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KekIn {
    version: u32,
    created_at: i64,
    key: B64Key,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIn {
    format: u32,
    active_kek: u32,
    keks: Vec<KekIn>,
    blind_index_key: B64Key,
    disclosure_mac_key: B64Key,
    log_signing_seed: B64Key,
}

impl Keyring {
    /// A new keyring: KEK version 1 (active) and fresh blind-index,
    /// disclosure-MAC and Ed25519 log-signing keys, drawn from `rng` in that
    /// order.
    pub fn generate(rng: &dyn RandomSource, now_unix: i64) -> Result<Keyring, CryptoError> {
        let kek = Kek {
            version: 1,
            key: Key32::generate(rng)?,
            created_at_unix: now_unix,
        };
        Ok(Keyring {
            keks: vec![kek],
            active: 1,
            blind_index_key: BlindIndexKey::from_key(Key32::generate(rng)?),
            disclosure_mac_key: DisclosureMacKey::from_key(Key32::generate(rng)?),
            log_signing_seed: Key32::generate(rng)?,
        })
    }

    /// Assembles a keyring, enforcing its invariants (non-empty, versions
    /// unique and ≥ 1, active = newest).
    pub(crate) fn from_parts(
        mut keks: Vec<Kek>,
        active: u32,
        blind_index_key: BlindIndexKey,
        disclosure_mac_key: DisclosureMacKey,
        log_signing_seed: Key32,
    ) -> Result<Keyring, &'static str> {
        keks.sort_by_key(|k| k.version);
        if keks.iter().any(|k| k.version == 0) {
            return Err("KEK version 0 is not allowed");
        }
        if keks.windows(2).any(|w| match w {
            [a, b] => a.version == b.version,
            _ => false,
        }) {
            return Err("duplicate KEK version");
        }
        match keks.last() {
            None => return Err("no KEK"),
            Some(newest) if newest.version != active => {
                return Err("active KEK is not the newest version");
            }
            Some(_) => {}
        }
        Ok(Keyring {
            keks,
            active,
            blind_index_key,
            disclosure_mac_key,
            log_signing_seed,
        })
    }

    /// Loads and decrypts the keyring at `path`.
    ///
    /// The keyring file (and, for [`KeyringProtector::IdentityFile`], the
    /// identity file) is refused with [`KeyringError::InsecurePermissions`]
    /// if it has any group/other permission bit, before it is read. A wrong
    /// passphrase or identity is [`KeyringError::WrongPassphraseOrKey`].
    pub fn load(path: &Path, protector: &KeyringProtector) -> Result<Keyring, KeyringError> {
        let data = read_private_file(path, MAX_KEYRING_FILE)?;
        let identities: Vec<Box<dyn age::Identity + Send + Sync>> = match protector {
            KeyringProtector::Passphrase(p) => {
                vec![Box::new(age::scrypt::Identity::new(p.clone()))]
            }
            KeyringProtector::IdentityFile(id_path) => read_identity_file(id_path)?
                .into_identities()
                .map_err(|_| corrupt(id_path, "unsupported identity type"))?,
        };
        let decryptor = age::Decryptor::new_buffered(data.as_slice())
            .map_err(|e| map_decrypt_error(path, e))?;
        let mut reader = decryptor
            .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| map_decrypt_error(path, e))?;
        // The plaintext is shorter than the ciphertext: no reallocation.
        let mut plaintext = Zeroizing::new(Vec::with_capacity(data.len()));
        reader
            .read_to_end(&mut plaintext)
            .map_err(|_| corrupt(path, "age payload failed authentication"))?;
        Self::from_json(&plaintext).map_err(|reason| corrupt(path, reason))
    }

    fn from_json(plaintext: &[u8]) -> Result<Keyring, &'static str> {
        // The serde error is dropped: its message could quote the input.
        let file: FileIn =
            serde_json::from_slice(plaintext).map_err(|_| "keyring content is not valid")?;
        if file.format != KEYRING_FORMAT {
            return Err("unsupported keyring format");
        }
        let keks = file
            .keks
            .into_iter()
            .map(|k| Kek {
                version: k.version,
                key: k.key.0,
                created_at_unix: k.created_at,
            })
            .collect();
        Self::from_parts(
            keks,
            file.active_kek,
            BlindIndexKey::from_key(file.blind_index_key.0),
            DisclosureMacKey::from_key(file.disclosure_mac_key.0),
            file.log_signing_seed.0,
        )
    }

    fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let doc = FileOut {
            format: KEYRING_FORMAT,
            active_kek: self.active,
            keks: self
                .keks
                .iter()
                .map(|k| KekOut {
                    version: k.version,
                    created_at: k.created_at_unix,
                    key: &k.key,
                })
                .collect(),
            blind_index_key: self.blind_index_key.key(),
            disclosure_mac_key: self.disclosure_mac_key.key(),
            log_signing_seed: &self.log_signing_seed,
        };
        // Each KEK entry is under 110 bytes and the rest under 300: sized so
        // serde_json never reallocates and strands an unwiped copy.
        let capacity = 1024usize.saturating_add(self.keks.len().saturating_mul(160));
        let mut out = Zeroizing::new(Vec::with_capacity(capacity));
        serde_json::to_writer(&mut *out, &doc).map_err(|_| CryptoError::Format)?;
        Ok(out)
    }

    /// Encrypts the keyring with `protector` and atomically replaces `path`
    /// with it (mode 0600). With a passphrase, age picks an scrypt work
    /// factor of about one second on this machine.
    pub fn save(&self, path: &Path, protector: &KeyringProtector) -> Result<(), KeyringError> {
        self.save_inner(path, protector, None)
    }

    /// [`Keyring::save`] with an explicit scrypt work factor (`log2 N`,
    /// 1..=63) for passphrase protection, so tests need not spend a second
    /// per save. Production code uses [`Keyring::save`].
    #[doc(hidden)]
    pub fn save_with_work_factor(
        &self,
        path: &Path,
        protector: &KeyringProtector,
        log_n: u8,
    ) -> Result<(), KeyringError> {
        self.save_inner(path, protector, Some(log_n))
    }

    fn save_inner(
        &self,
        path: &Path,
        protector: &KeyringProtector,
        log_n: Option<u8>,
    ) -> Result<(), KeyringError> {
        let plaintext = self.to_json()?;
        let age_err = |e: age::EncryptError| KeyringError::Crypto(CryptoError::Age(e.to_string()));
        let encryptor = match protector {
            KeyringProtector::Passphrase(p) => {
                let mut recipient = age::scrypt::Recipient::new(p.clone());
                if let Some(n) = log_n {
                    // age asserts this range; check first so we never panic.
                    if n == 0 || n >= 64 {
                        return Err(
                            CryptoError::Age("scrypt work factor out of range".into()).into()
                        );
                    }
                    recipient.set_work_factor(n);
                }
                age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                    .map_err(age_err)?
            }
            KeyringProtector::IdentityFile(id_path) => {
                let recipients = read_identity_file(id_path)?
                    .to_recipients()
                    .map_err(|_| corrupt(id_path, "unsupported identity type"))?;
                if recipients.is_empty() {
                    return Err(corrupt(id_path, "no identity in file"));
                }
                age::Encryptor::with_recipients(
                    recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
                )
                .map_err(age_err)?
            }
        };
        let mut ciphertext = Vec::with_capacity(plaintext.len().saturating_add(1024));
        let io = |source| io_err(path, source);
        let mut writer = encryptor.wrap_output(&mut ciphertext).map_err(io)?;
        writer.write_all(&plaintext).map_err(io)?;
        writer.finish().map_err(io)?;
        write_atomic(path, &ciphertext)
    }

    /// Adds a new KEK (version = newest + 1) and makes it active for new
    /// envelopes. Older versions stay until [`Keyring::retire`]d, so existing
    /// envelopes keep opening while they are rewrapped.
    pub fn rotate(&mut self, rng: &dyn RandomSource, now_unix: i64) -> Result<u32, CryptoError> {
        let newest = self.keks.last().map_or(0, |k| k.version);
        let version = newest
            .checked_add(1)
            .ok_or(CryptoError::KeyLifecycle("KEK version numbers exhausted"))?;
        self.keks.push(Kek {
            version,
            key: Key32::generate(rng)?,
            created_at_unix: now_unix,
        });
        self.active = version;
        Ok(version)
    }

    /// Destroys KEK `version` (its key is wiped). Envelopes still wrapped
    /// under it become unopenable, so retire only after rewrapping them.
    /// Refuses the active version.
    pub fn retire(&mut self, version: u32) -> Result<(), CryptoError> {
        if version == self.active {
            return Err(CryptoError::KeyLifecycle(
                "the active KEK cannot be retired; rotate first",
            ));
        }
        let index = self
            .keks
            .iter()
            .position(|k| k.version == version)
            .ok_or(CryptoError::UnknownKeyVersion(version))?;
        drop(self.keks.remove(index));
        Ok(())
    }

    /// The KEK version new envelopes are wrapped under.
    pub fn active_version(&self) -> u32 {
        self.active
    }

    /// Every KEK version held, oldest first, with its creation time (Unix
    /// seconds), for rotation jobs and operator reports.
    pub fn versions(&self) -> Vec<(u32, i64)> {
        self.keks
            .iter()
            .map(|k| (k.version, k.created_at_unix))
            .collect()
    }

    /// The key for blind lookup indexes.
    pub fn blind_index_key(&self) -> &BlindIndexKey {
        &self.blind_index_key
    }

    /// The key for MACs of disclosed values in the audit trail.
    pub fn disclosure_mac_key(&self) -> &DisclosureMacKey {
        &self.disclosure_mac_key
    }

    /// The Ed25519 seed that signs audit-log checkpoints.
    pub fn log_signing_seed(&self) -> &Key32 {
        &self.log_signing_seed
    }

    fn kek(&self, version: u32) -> Result<&Kek, CryptoError> {
        self.keks
            .iter()
            .find(|k| k.version == version)
            .ok_or(CryptoError::UnknownKeyVersion(version))
    }
}

impl KeyWrapper for Keyring {
    fn active_version(&self) -> u32 {
        self.active
    }

    fn wrap(
        &self,
        version: u32,
        dek: &Key32,
        aad: &[u8],
        rng: &dyn RandomSource,
    ) -> Result<Vec<u8>, CryptoError> {
        let kek = self.kek(version)?;
        let mut nonce = [0u8; 12];
        rng.fill(&mut nonce)?;
        let key = aead_key(&kek.key)?;
        let mut out = Vec::with_capacity(WRAP_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(dek.expose_secret());
        let sealed = match out.get_mut(nonce.len()..) {
            Some(buf) => key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    buf,
                )
                .map_err(|_| CryptoError::Format),
            None => Err(CryptoError::Format),
        };
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                Ok(out)
            }
            Err(e) => {
                out.zeroize();
                Err(e)
            }
        }
    }

    fn unwrap(&self, version: u32, wrapped: &[u8], aad: &[u8]) -> Result<Key32, CryptoError> {
        let kek = self.kek(version)?;
        if wrapped.len() != WRAP_LEN {
            return Err(CryptoError::Format);
        }
        let (nonce, sealed) = wrapped
            .split_first_chunk::<12>()
            .ok_or(CryptoError::Format)?;
        let key = aead_key(&kek.key)?;
        let mut buf = Zeroizing::new([0u8; WRAP_LEN - 12]);
        buf.copy_from_slice(sealed);
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                buf.as_mut_slice(),
            )
            .map_err(|_| CryptoError::Integrity)?;
        let mut dek = Key32::zeroed();
        if plain.len() != 32 {
            return Err(CryptoError::Integrity);
        }
        dek.as_mut_bytes().copy_from_slice(plain);
        Ok(dek)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{self, EnvelopeContext};
    use crate::random::DeterministicRandom;
    use std::time::Instant;

    /// Low scrypt work factor for tests (2^10): milliseconds, not a second.
    const FAST: u8 = 10;
    const CTX: EnvelopeContext<'static> = EnvelopeContext {
        record_id: "rec_1",
        jurisdiction: "CN-14",
    };

    fn pass(s: &str) -> KeyringProtector {
        KeyringProtector::Passphrase(SecretString::from(s))
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn identity_protector(dir: &Path) -> KeyringProtector {
        let id = dir.join("identity.txt");
        KeyringProtector::create_identity_file(&id).unwrap();
        KeyringProtector::IdentityFile(id)
    }

    /// Every secret byte string held by the keyring, for comparisons.
    fn secrets(kr: &Keyring) -> Vec<[u8; 32]> {
        let mut out: Vec<[u8; 32]> = kr.keks.iter().map(|k| *k.key.expose_secret()).collect();
        out.push(*kr.blind_index_key.key().expose_secret());
        out.push(*kr.disclosure_mac_key.key().expose_secret());
        out.push(*kr.log_signing_seed.expose_secret());
        out
    }

    fn assert_same(a: &Keyring, b: &Keyring) {
        assert_eq!(secrets(a), secrets(b));
        assert_eq!(a.versions(), b.versions());
        assert_eq!(a.active_version(), b.active_version());
    }

    fn sample(seed: u64) -> Keyring {
        let rng = DeterministicRandom::new(seed);
        let mut kr = Keyring::generate(&rng, 1_700_000_000).unwrap();
        kr.rotate(&rng, 1_700_086_400).unwrap();
        kr
    }

    #[test]
    fn generate_draws_distinct_keys() {
        let kr = Keyring::generate(&DeterministicRandom::new(1), 5).unwrap();
        assert_eq!(kr.active_version(), 1);
        assert_eq!(kr.versions(), vec![(1, 5)]);
        let s = secrets(&kr);
        for i in 0..s.len() {
            for j in i + 1..s.len() {
                assert_ne!(s[i], s[j]);
            }
        }
    }

    #[test]
    fn round_trip_identity_file() {
        let dir = tempfile::tempdir().unwrap();
        let prot = identity_protector(dir.path());
        let path = dir.path().join("keyring.age");
        let kr = sample(1);
        kr.save(&path, &prot).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let loaded = Keyring::load(&path, &prot).unwrap();
        assert_same(&kr, &loaded);
        // The loaded keyring opens what the original sealed.
        let env = envelope::seal(&kr, &CTX, b"id", &DeterministicRandom::new(2)).unwrap();
        assert_eq!(
            envelope::open(&loaded, &CTX, &env).unwrap().as_slice(),
            b"id"
        );
    }

    #[test]
    fn round_trip_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.age");
        let kr = sample(2);
        kr.save_with_work_factor(&path, &pass("correct horse battery staple"), FAST)
            .unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let loaded = Keyring::load(&path, &pass("correct horse battery staple")).unwrap();
        assert_same(&kr, &loaded);
    }

    #[test]
    fn passphrase_default_work_factor_timing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.age");
        let kr = sample(3);
        let t = Instant::now();
        kr.save(&path, &pass("pw")).unwrap();
        let saved = t.elapsed();
        let t = Instant::now();
        let loaded = Keyring::load(&path, &pass("pw")).unwrap();
        let load = t.elapsed();
        assert_same(&kr, &loaded);
        eprintln!("passphrase keyring: save {saved:?}, load {load:?}");
    }

    #[test]
    fn fail_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.age");
        sample(4)
            .save_with_work_factor(&path, &pass("right-passphrase"), FAST)
            .unwrap();
        let err = Keyring::load(&path, &pass("wrong-passphrase"))
            .err()
            .unwrap();
        assert!(
            matches!(err, KeyringError::WrongPassphraseOrKey { .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(!msg.contains("wrong-passphrase") && !msg.contains("right-passphrase"));
        assert!(msg.contains("could not be decrypted with the given passphrase or identity"));
    }

    #[test]
    fn fail_wrong_identity_or_protector_kind() {
        let dir = tempfile::tempdir().unwrap();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let (prot_a, prot_b) = (identity_protector(a.path()), identity_protector(b.path()));
        let path = dir.path().join("keyring.age");
        sample(5).save(&path, &prot_a).unwrap();
        for wrong in [prot_b, pass("anything")] {
            let err = Keyring::load(&path, &wrong).err().unwrap();
            assert!(
                matches!(err, KeyringError::WrongPassphraseOrKey { .. }),
                "{err}"
            );
        }
        // A passphrase file opened with an identity is refused the same way.
        sample(5)
            .save_with_work_factor(&path, &pass("pw"), FAST)
            .unwrap();
        let err = Keyring::load(&path, &prot_a).err().unwrap();
        assert!(
            matches!(err, KeyringError::WrongPassphraseOrKey { .. }),
            "{err}"
        );
    }

    #[test]
    fn fail_keyring_0644_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.age");
        sample(6)
            .save_with_work_factor(&path, &pass("pw"), FAST)
            .unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610] {
            chmod(&path, mode);
            let err = Keyring::load(&path, &pass("pw")).err().unwrap();
            assert!(
                matches!(err, KeyringError::InsecurePermissions { mode: m, .. } if m == mode),
                "{err}"
            );
        }
        chmod(&path, 0o644);
        let err = Keyring::load(&path, &pass("pw")).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is readable by group or others (mode 0644); chmod 600 it",
                path.display()
            )
        );
        // Garbage content with bad permissions: the mode check comes first.
        fs::write(&path, b"not an age file").unwrap();
        chmod(&path, 0o644);
        let err = Keyring::load(&path, &pass("pw")).err().unwrap();
        assert!(matches!(err, KeyringError::InsecurePermissions { .. }));
        chmod(&path, 0o400);
        let err = Keyring::load(&path, &pass("pw")).err().unwrap();
        assert!(matches!(err, KeyringError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn fail_identity_file_0640_refused() {
        let dir = tempfile::tempdir().unwrap();
        let prot = identity_protector(dir.path());
        let KeyringProtector::IdentityFile(id) = &prot else {
            unreachable!()
        };
        let path = dir.path().join("keyring.age");
        sample(7).save(&path, &prot).unwrap();
        chmod(id, 0o640);
        let err = Keyring::load(&path, &prot).err().unwrap();
        assert!(
            matches!(err, KeyringError::InsecurePermissions { mode: 0o640, ref path } if path == &id.display().to_string()),
            "{err}"
        );
        let err = sample(7).save(&path, &prot).err().unwrap();
        assert!(
            matches!(err, KeyringError::InsecurePermissions { .. }),
            "{err}"
        );
    }

    #[test]
    fn create_identity_file_is_private_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("id.txt");
        KeyringProtector::create_identity_file(&id).unwrap();
        assert_eq!(mode_of(&id), 0o600);
        let before = fs::read(&id).unwrap();
        let text = String::from_utf8(before.clone()).unwrap();
        assert!(text.contains("# public key: age1"));
        assert!(text.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")));
        let err = KeyringProtector::create_identity_file(&id).err().unwrap();
        assert!(matches!(err, KeyringError::Io { .. }), "{err}");
        assert_eq!(fs::read(&id).unwrap(), before);
    }

    #[test]
    fn save_replaces_insecure_file_with_private_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.age");
        fs::write(&path, b"old").unwrap();
        chmod(&path, 0o644);
        sample(8)
            .save_with_work_factor(&path, &pass("pw"), FAST)
            .unwrap();
        assert_eq!(mode_of(&path), 0o600);
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("keyring.age")]);
    }

    #[test]
    fn file_on_disk_contains_no_key_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let prot = identity_protector(dir.path());
        let kr = sample(9);
        for (i, (path, prot)) in [
            (dir.path().join("a.age"), &prot),
            (dir.path().join("b.age"), &pass("pw")),
        ]
        .into_iter()
        .enumerate()
        {
            if i == 0 {
                kr.save(&path, prot).unwrap();
            } else {
                kr.save_with_work_factor(&path, prot, FAST).unwrap();
            }
            let bytes = fs::read(&path).unwrap();
            assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
            for secret in secrets(&kr) {
                let b64 = STANDARD.encode(secret);
                let hexed = hex::encode(secret);
                for needle in [&secret[..], &secret[..8], b64.as_bytes(), hexed.as_bytes()] {
                    assert!(!bytes.windows(needle.len()).any(|w| w == needle));
                }
            }
        }
    }

    #[test]
    fn rotate_and_retire() {
        let rng = DeterministicRandom::new(10);
        let mut kr = Keyring::generate(&rng, 100).unwrap();
        let old = envelope::seal(&kr, &CTX, b"one", &rng).unwrap();
        assert_eq!(kr.rotate(&rng, 200).unwrap(), 2);
        assert_eq!(kr.rotate(&rng, 300).unwrap(), 3);
        assert_eq!(kr.active_version(), 3);
        assert_eq!(kr.versions(), vec![(1, 100), (2, 200), (3, 300)]);
        let new = envelope::seal(&kr, &CTX, b"two", &rng).unwrap();
        assert_eq!(envelope::kek_version(&new).unwrap(), 3);
        assert_eq!(envelope::open(&kr, &CTX, &old).unwrap().as_slice(), b"one");

        assert!(matches!(kr.retire(3), Err(CryptoError::KeyLifecycle(_))));
        assert!(matches!(
            kr.retire(9),
            Err(CryptoError::UnknownKeyVersion(9))
        ));
        let moved = envelope::rewrap(&kr, &CTX, &old, 3, &rng).unwrap();
        kr.retire(1).unwrap();
        kr.retire(2).unwrap();
        assert!(matches!(
            kr.retire(1),
            Err(CryptoError::UnknownKeyVersion(1))
        ));
        assert_eq!(kr.versions(), vec![(3, 300)]);
        assert!(matches!(
            envelope::open(&kr, &CTX, &old),
            Err(CryptoError::UnknownKeyVersion(1))
        ));
        assert_eq!(
            envelope::open(&kr, &CTX, &moved).unwrap().as_slice(),
            b"one"
        );
        // Numbers are never reused.
        assert_eq!(kr.rotate(&rng, 400).unwrap(), 4);
    }

    #[test]
    fn rotation_survives_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let prot = identity_protector(dir.path());
        let path = dir.path().join("keyring.age");
        let rng = DeterministicRandom::new(11);
        let mut kr = Keyring::generate(&rng, 1).unwrap();
        kr.rotate(&rng, 2).unwrap();
        kr.rotate(&rng, 3).unwrap();
        kr.retire(1).unwrap();
        kr.save(&path, &prot).unwrap();
        let loaded = Keyring::load(&path, &prot).unwrap();
        assert_eq!(loaded.versions(), vec![(2, 2), (3, 3)]);
        assert_eq!(loaded.active_version(), 3);
        assert_same(&kr, &loaded);
    }

    /// Encrypts a hand-written plaintext as a keyring file.
    fn write_plaintext(path: &Path, prot: &KeyringProtector, json: &str) {
        let KeyringProtector::IdentityFile(id) = prot else {
            unreachable!()
        };
        let recipients = read_identity_file(id).unwrap().to_recipients().unwrap();
        let enc = age::Encryptor::with_recipients(
            recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
        )
        .unwrap();
        let mut out = vec![];
        let mut w = enc.wrap_output(&mut out).unwrap();
        w.write_all(json.as_bytes()).unwrap();
        w.finish().unwrap();
        write_atomic(path, &out).unwrap();
    }

    #[test]
    fn fail_invalid_contents_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let prot = identity_protector(dir.path());
        let path = dir.path().join("keyring.age");
        let k = STANDARD.encode([1u8; 32]);
        let good = format!(
            r#"{{"format":1,"active_kek":2,"keks":[{{"version":1,"created_at":5,"key":"{k}"}},{{"version":2,"created_at":6,"key":"{k}"}}],"blind_index_key":"{k}","disclosure_mac_key":"{k}","log_signing_seed":"{k}"}}"#
        );
        write_plaintext(&path, &prot, &good);
        let loaded = Keyring::load(&path, &prot).unwrap();
        assert_eq!(loaded.versions(), vec![(1, 5), (2, 6)]);

        let short = STANDARD.encode([1u8; 31]);
        let cases = [
            good.replace(r#""format":1"#, r#""format":2"#),
            good.replace(r#""active_kek":2"#, r#""active_kek":1"#),
            good.replace(r#""active_kek":2"#, r#""active_kek":3"#),
            good.replace(r#""version":2"#, r#""version":1"#),
            good.replace(r#""version":1"#, r#""version":0"#),
            good.replace(r#""log_signing_seed""#, r#""extra":1,"log_signing_seed""#),
            good.replace(r#""created_at":5"#, r#""created_at":5,"note":"x""#),
            good.replace(r#","log_signing_seed":""#, r#","unused":""#),
            good.replacen(&k, &short, 1),
            good.replacen(&k, "!!!!", 1),
            good.replace(
                r#"[{"version":1,"created_at":5,"key":""#,
                r#"[{"version":1,"created_at":5,"key":"x"#,
            ),
            r#"{"format":1,"active_kek":1,"keks":[],"blind_index_key":"","disclosure_mac_key":"","log_signing_seed":""}"#.to_string(),
            "not json".to_string(),
        ];
        for case in cases {
            write_plaintext(&path, &prot, &case);
            let err = Keyring::load(&path, &prot).err().unwrap();
            assert!(matches!(err, KeyringError::Corrupt { .. }), "{case}: {err}");
            // The message never quotes file content.
            assert!(!err.to_string().contains(&k));
        }
    }

    #[test]
    fn fail_tampered_file_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let prot = identity_protector(dir.path());
        let path = dir.path().join("keyring.age");
        sample(12).save(&path, &prot).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        write_atomic(&path, &bytes).unwrap();
        let err = Keyring::load(&path, &prot).err().unwrap();
        assert!(matches!(err, KeyringError::Corrupt { .. }), "{err}");
        write_atomic(&path, b"").unwrap();
        let err = Keyring::load(&path, &prot).err().unwrap();
        assert!(matches!(err, KeyringError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn fail_missing_files_are_io_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = Keyring::load(&dir.path().join("nope.age"), &pass("pw"))
            .err()
            .unwrap();
        assert!(matches!(err, KeyringError::Io { .. }), "{err}");
        let prot = KeyringProtector::IdentityFile(dir.path().join("no-identity"));
        let err = sample(13)
            .save(&dir.path().join("k.age"), &prot)
            .err()
            .unwrap();
        assert!(matches!(err, KeyringError::Io { .. }), "{err}");
    }

    #[test]
    fn fail_work_factor_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.age");
        for n in [0, 64, 255] {
            let err = sample(14)
                .save_with_work_factor(&path, &pass("pw"), n)
                .err()
                .unwrap();
            assert!(matches!(err, KeyringError::Crypto(CryptoError::Age(_))));
        }
        assert!(!path.exists());
    }

    #[test]
    fn no_protector_message() {
        assert_eq!(
            KeyringError::NoProtector.to_string(),
            "no keyring protector configured: set RV_KEYRING_PASSPHRASE or RV_KEYRING_PASSPHRASE_FILE"
        );
    }

    #[test]
    fn wrap_is_60_bytes_and_bound_to_aad() {
        let kr = sample(15);
        let rng = DeterministicRandom::new(1);
        let dek = Key32::generate(&rng).unwrap();
        let w = kr.wrap(2, &dek, b"aad", &rng).unwrap();
        assert_eq!(w.len(), 60);
        assert_eq!(
            kr.unwrap(2, &w, b"aad").unwrap().expose_secret(),
            dek.expose_secret()
        );
        assert!(matches!(
            kr.unwrap(2, &w, b"aae"),
            Err(CryptoError::Integrity)
        ));
        assert!(matches!(
            kr.unwrap(1, &w, b"aad"),
            Err(CryptoError::Integrity)
        ));
        assert!(matches!(
            kr.unwrap(9, &w, b"aad"),
            Err(CryptoError::UnknownKeyVersion(9))
        ));
        assert!(matches!(
            kr.wrap(9, &dek, b"aad", &rng),
            Err(CryptoError::UnknownKeyVersion(9))
        ));
        assert!(matches!(
            kr.unwrap(2, &w[..59], b"aad"),
            Err(CryptoError::Format)
        ));
    }
}

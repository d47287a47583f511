//! The local key provider: the age-protected keyring file in the data directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use vault_crypto::checkpoint::{Checkpoint, LogSigner, StatementSigner};
use vault_crypto::envelope::{self, EnvelopeContext};
use vault_crypto::keyring::{Keyring, KeyringProtector};
use vault_crypto::random::RandomSource;
use vault_domain::ports::{KeyError, KeyProvider, KeyVersion};
use zeroize::Zeroizing;

/// Keys held in memory after the keyring file was decrypted at start-up.
///
/// Rotation and retirement write the keyring file back (atomically, still age-encrypted
/// under the same protector); other processes sharing the file (replicas with the same
/// Secret, the `keys` CLI) pick the change up through [`KeyProvider::reload`], which
/// re-reads the file only when its modification time changed.
pub struct LocalKeys {
    keyring: RwLock<Keyring>,
    rng: Arc<dyn RandomSource>,
    signer: LogSigner,
    statements: StatementSigner,
    file: Option<KeyringFile>,
}

/// Where the keyring came from, so it can be written back and re-read.
struct KeyringFile {
    path: PathBuf,
    protector: KeyringProtector,
    /// Modification time when last read or written.
    seen: Mutex<Option<SystemTime>>,
}

/// Runs `f`, which may take a second (the keyring's scrypt), without stalling the async
/// tasks that share this worker thread: on a multi-threaded runtime they move to another
/// worker meanwhile. Elsewhere (a blocking thread, no runtime) it simply runs.
fn off_the_runtime<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn unavailable(e: impl std::fmt::Display) -> KeyError {
    KeyError::Unavailable(e.to_string())
}

fn poisoned<T>(_: T) -> KeyError {
    KeyError::Unavailable("keyring lock poisoned".into())
}

impl LocalKeys {
    /// Wraps a loaded keyring. `origin` names the access trail in its checkpoints; without
    /// one it is `reporter-vault/` and the first 16 hex digits of SHA-256 of the log public
    /// key, stable for the keyring's lifetime.
    pub fn new(
        keyring: Keyring,
        rng: Arc<dyn RandomSource>,
        origin: Option<&str>,
    ) -> Result<Self, vault_crypto::CryptoError> {
        let origin = match origin {
            Some(o) => o.to_owned(),
            None => {
                let probe = LogSigner::from_seed("reporter-vault", keyring.log_signing_seed())?;
                let digest = ring::digest::digest(&ring::digest::SHA256, &probe.public_key());
                let prefix: String = hex::encode(digest.as_ref()).chars().take(16).collect();
                format!("reporter-vault/{prefix}")
            }
        };
        let signer = LogSigner::from_seed(&origin, keyring.log_signing_seed())?;
        let statements =
            StatementSigner::derive(&format!("{origin}/receipts"), keyring.log_signing_seed())?;
        Ok(Self {
            keyring: RwLock::new(keyring),
            rng,
            signer,
            statements,
            file: None,
        })
    }

    /// Ties the keys to the file they were loaded from: rotation and retirement write it
    /// back, and [`KeyProvider::reload`] re-reads it when another process changed it.
    pub fn backed_by(mut self, path: PathBuf, protector: KeyringProtector) -> Self {
        let seen = Mutex::new(mtime(&path));
        self.file = Some(KeyringFile {
            path,
            protector,
            seen,
        });
        self
    }

    /// Applies `change` to a copy of the keyring re-read from its file, writes it back, and
    /// swaps it in. Without a file, changes the keyring in memory only.
    fn change(
        &self,
        change: impl FnOnce(&mut Keyring) -> Result<u32, vault_crypto::CryptoError>,
    ) -> Result<u32, KeyError> {
        let Some(f) = &self.file else {
            let mut current = self.keyring.write().map_err(poisoned)?;
            return change(&mut current).map_err(lifecycle);
        };
        // `seen` serialises changers; the keyring itself is locked only for the swap, so
        // seals and opens go on while the file is decrypted and re-encrypted (scrypt).
        let mut seen = f.seen.lock().map_err(poisoned)?;
        // Start from the file, not memory: another process may have rotated.
        let mut fresh =
            off_the_runtime(|| Keyring::load(&f.path, &f.protector)).map_err(unavailable)?;
        same_lineage(
            &*self.keyring.read().map_err(poisoned)?,
            &fresh,
            self.rng.as_ref(),
        )?;
        let out = change(&mut fresh).map_err(lifecycle)?;
        off_the_runtime(|| fresh.save(&f.path, &f.protector)).map_err(unavailable)?;
        *seen = mtime(&f.path);
        *self.keyring.write().map_err(poisoned)? = fresh;
        Ok(out)
    }
}

impl KeyProvider for LocalKeys {
    fn seal(
        &self,
        record_id: &str,
        jurisdiction: &str,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, u32), KeyError> {
        let kr = self.keyring.read().map_err(poisoned)?;
        let ctx = EnvelopeContext {
            record_id,
            jurisdiction,
        };
        let env = envelope::seal(&*kr, &ctx, plaintext, self.rng.as_ref())
            .map_err(|e| KeyError::Unavailable(e.to_string()))?;
        Ok((env, kr.active_version()))
    }

    fn open(
        &self,
        record_id: &str,
        jurisdiction: &str,
        env: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        // An envelope newer than every KEK held here was sealed by a replica (or after a
        // CLI rotation) this process has not reloaded yet: reload once, then open.
        if let Ok(v) = envelope::kek_version(env) {
            let newest = self
                .keyring
                .read()
                .map_err(poisoned)?
                .versions()
                .last()
                .map_or(0, |(v, _)| *v);
            if v > newest {
                self.reload()?;
            }
        }
        let kr = self.keyring.read().map_err(poisoned)?;
        let ctx = EnvelopeContext {
            record_id,
            jurisdiction,
        };
        envelope::open(&*kr, &ctx, env).map_err(|e| match e {
            vault_crypto::CryptoError::Random => KeyError::Unavailable(e.to_string()),
            // A wrong key version, bad format or failed tag all mean the stored bytes are not
            // what this record was sealed as.
            _ => KeyError::Integrity,
        })
    }

    fn blind_index(&self, kind: &str, normalized: &str) -> Result<[u8; 32], KeyError> {
        let kr = self.keyring.read().map_err(poisoned)?;
        Ok(kr.blind_index_key().index(kind, normalized))
    }

    fn field_mac(&self, field: &str, normalized: &str) -> Result<[u8; 32], KeyError> {
        let kr = self.keyring.read().map_err(poisoned)?;
        Ok(kr.disclosure_mac_key().field_mac(field, normalized))
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
        "local"
    }

    fn active_version(&self) -> u32 {
        self.keyring.read().map(|k| k.active_version()).unwrap_or(0)
    }

    fn key_versions(&self) -> Result<Vec<KeyVersion>, KeyError> {
        let kr = self.keyring.read().map_err(poisoned)?;
        Ok(kr
            .versions()
            .into_iter()
            .map(|(version, created_at_unix)| KeyVersion {
                version,
                created_at_unix,
            })
            .collect())
    }

    fn rotate(&self, now_unix: i64) -> Result<u32, KeyError> {
        let rng = self.rng.clone();
        self.change(move |kr| kr.rotate(rng.as_ref(), now_unix))
    }

    fn retire(&self, version: u32) -> Result<(), KeyError> {
        self.change(|kr| kr.retire(version).map(|()| version))
            .map(|_| ())
    }

    fn rewrap(
        &self,
        record_id: &str,
        jurisdiction: &str,
        env: &[u8],
    ) -> Result<(Vec<u8>, u32), KeyError> {
        let kr = self.keyring.read().map_err(poisoned)?;
        let ctx = EnvelopeContext {
            record_id,
            jurisdiction,
        };
        let to = kr.active_version();
        let out =
            envelope::rewrap(&*kr, &ctx, env, to, self.rng.as_ref()).map_err(|e| match e {
                // A version this process does not hold yet is not a damaged envelope.
                vault_crypto::CryptoError::Random
                | vault_crypto::CryptoError::UnknownKeyVersion(_) => {
                    KeyError::Unavailable(e.to_string())
                }
                _ => KeyError::Integrity,
            })?;
        Ok((out, to))
    }

    fn reload(&self) -> Result<bool, KeyError> {
        let Some(f) = &self.file else {
            return Ok(false);
        };
        // Lock order as in `change`: `seen` (serialises reloaders and changers, never seals),
        // then the keyring, only for the comparison and the swap.
        let mut seen = f.seen.lock().map_err(poisoned)?;
        let now = mtime(&f.path);
        if now.is_some() && *seen == now {
            return Ok(false);
        }
        let fresh =
            off_the_runtime(|| Keyring::load(&f.path, &f.protector)).map_err(unavailable)?;
        // A file that decrypts but holds other keys (a keyring from another deployment copied
        // over this one) is refused: adopting it would seal new records under foreign keys
        // and stop old ones from opening. The keys in memory stay in use.
        same_lineage(
            &*self.keyring.read().map_err(poisoned)?,
            &fresh,
            self.rng.as_ref(),
        )?;
        let mut current = self.keyring.write().map_err(poisoned)?;
        let changed = fresh.versions() != current.versions()
            || fresh.active_version() != current.active_version();
        *current = fresh;
        *seen = now;
        Ok(changed)
    }

    fn check(&self) -> Result<(), KeyError> {
        self.keyring.read().map(|_| ()).map_err(poisoned)
    }
}

/// Whether `fresh` is this keyring, possibly rotated or with versions retired: the same
/// blind-index, disclosure-MAC and log keys, and the same key for every KEK version both
/// hold (a data key wrapped by one unwraps with the other).
fn same_lineage(
    current: &Keyring,
    fresh: &Keyring,
    rng: &dyn RandomSource,
) -> Result<(), KeyError> {
    use vault_crypto::envelope::KeyWrapper;
    let foreign = || {
        KeyError::Unavailable(
            "the keyring file now holds keys of another keyring; keeping the keys in use".into(),
        )
    };
    let probe = |k: &Keyring| {
        (
            k.blind_index_key().index("lineage", "probe"),
            k.disclosure_mac_key().field_mac("lineage", "probe"),
        )
    };
    if probe(current) != probe(fresh)
        || current.log_signing_seed().expose_secret() != fresh.log_signing_seed().expose_secret()
    {
        return Err(foreign());
    }
    let dek = vault_crypto::secret::Key32::generate(rng).map_err(unavailable)?;
    for (version, _) in current.versions() {
        if !fresh.versions().iter().any(|(v, _)| *v == version) {
            continue;
        }
        let wrapped = current
            .wrap(version, &dek, b"reporter-vault/lineage", rng)
            .map_err(unavailable)?;
        if fresh
            .unwrap(version, &wrapped, b"reporter-vault/lineage")
            .is_err()
        {
            return Err(foreign());
        }
    }
    Ok(())
}

fn lifecycle(e: vault_crypto::CryptoError) -> KeyError {
    match e {
        vault_crypto::CryptoError::KeyLifecycle(m) => KeyError::Refused(m.to_owned()),
        vault_crypto::CryptoError::UnknownKeyVersion(v) => {
            KeyError::Refused(format!("no KEK version {v}"))
        }
        other => KeyError::Unavailable(other.to_string()),
    }
}

/// Where the keyring and its protector live in a data directory.
pub struct KeyringPaths {
    /// `DATA_DIR/keyring.age`.
    pub keyring: PathBuf,
    /// `DATA_DIR/keyring-identity.txt` (development protector).
    pub identity: PathBuf,
}

impl KeyringPaths {
    /// The paths inside `data_dir`.
    pub fn in_dir(data_dir: &Path) -> Self {
        Self {
            keyring: data_dir.join("keyring.age"),
            identity: data_dir.join("keyring-identity.txt"),
        }
    }
}

/// How the keyring is protected, decided from the environment.
pub fn protector(
    passphrase: Option<secrecy::SecretString>,
    paths: &KeyringPaths,
    embedded: bool,
) -> Result<KeyringProtector, vault_crypto::KeyringError> {
    match passphrase {
        Some(p) => Ok(KeyringProtector::Passphrase(p)),
        None if embedded => Ok(KeyringProtector::IdentityFile(paths.identity.clone())),
        None => Err(vault_crypto::KeyringError::NoProtector),
    }
}

//! The local key provider: the age-protected keyring file in the data directory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use vault_crypto::checkpoint::{Checkpoint, LogSigner, StatementSigner};
use vault_crypto::envelope::{self, EnvelopeContext};
use vault_crypto::keyring::{Keyring, KeyringProtector};
use vault_crypto::random::RandomSource;
use vault_domain::ports::{KeyError, KeyProvider};
use zeroize::Zeroizing;

/// Keys held in memory after the keyring file was decrypted at start-up.
pub struct LocalKeys {
    keyring: RwLock<Keyring>,
    rng: Arc<dyn RandomSource>,
    signer: LogSigner,
    statements: StatementSigner,
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
        })
    }

    /// Whether the keyring can be used now.
    pub fn ready(&self) -> bool {
        self.keyring.read().is_ok()
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

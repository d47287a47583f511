//! Start-up: data directory, store, keyring, first-start bootstrap, and the server itself.
//! The server takes a bound listener and a shutdown future (as mini-redis does), so tests
//! run it on port 0 and SIGTERM drains it gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;
use vault_crypto::keyring::{Keyring, KeyringProtector};
use vault_crypto::random::RandomSource;
use vault_domain::clock::Clock;
use vault_domain::ports::{KeyProvider, Notifier, Store};
use vault_domain::values::{Jurisdiction, Role};
use vault_domain::{DisclosureConfig, Vault, VaultDeps};
use vault_storage::{Engine, SqlStore, SqliteSync, StoreOptions};

use crate::http::{self, AppState};
use crate::keys::{KeyringPaths, LocalKeys, protector};
use crate::notify::{FileNotifier, WebhookNotifier};

/// Why the service refused to start. Messages name files and settings, never secret values.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// The keyring could not be opened or created.
    #[error("keyring: {0}")]
    Keyring(#[from] vault_crypto::KeyringError),
    /// The store could not be opened or migrated.
    #[error("store: {0}")]
    Store(#[from] vault_domain::ports::StoreError),
    /// A first-start step failed.
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] vault_domain::DomainError),
    /// A reward policy file is invalid.
    #[error("reward policies: {0}")]
    Policies(String),
    /// `audit verify` found the trail altered, or could not read it.
    #[error("{0}")]
    Audit(String),
    /// Files or sockets.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let context = context.into();
    move |source| StartError::Io { context, source }
}

/// Where to deliver reporter messages.
#[derive(Clone)]
pub enum NotifierConfig {
    /// `DATA_DIR/outbox.jsonl`, contacts masked.
    File,
    /// An HTTPS gateway.
    Webhook {
        /// URL.
        url: String,
        /// HMAC secret.
        secret: Arc<SecretString>,
    },
}

/// Where the KEKs live.
#[derive(Clone, Default)]
pub enum KeyProviderConfig {
    /// The age-protected keyring file in the data directory (the embedded default).
    #[default]
    Local,
    /// Non-extractable keys in an HSM over PKCS#11.
    Pkcs11(vault_hsm::Pkcs11Config),
}

/// Operations settings: key provider, lifecycle, erasure ledger, leadership.
#[derive(Clone)]
pub struct OpsConfig {
    /// `RV_KEY_PROVIDER`.
    pub key_provider: KeyProviderConfig,
    /// Erasure quorum, retention, rewrap batch, retire grace.
    pub lifecycle: vault_domain::LifecycleConfig,
    /// `RV_ERASURE_LEDGER`; `None` means `DATA_DIR/erasure-ledger.jsonl`.
    pub erasure_ledger: Option<PathBuf>,
    /// How often every replica re-reads its keys (rotations made elsewhere).
    pub key_reload_every: Duration,
    /// `RV_AUTH_CACHE_SECONDS`: how long an authenticated token is remembered. `None`: 2 s on
    /// the embedded SQLite store (one process: a revocation there clears it at once), off on
    /// PostgreSQL, where a revocation made on another replica would otherwise take up to that
    /// long to reach this one. Zero turns the cache off.
    pub auth_cache_ttl: Option<Duration>,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            key_provider: KeyProviderConfig::Local,
            lifecycle: vault_domain::LifecycleConfig::default(),
            erasure_ledger: None,
            key_reload_every: Duration::from_secs(5),
            auth_cache_ttl: None,
        }
    }
}

/// Everything the vault needs to open its store and keys.
#[derive(Clone)]
pub struct VaultConfig {
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--database-url`; `None` means SQLite at `DATA_DIR/vault.db`.
    pub database_url: Option<String>,
    /// `RV_KEYRING_PASSPHRASE` / `_FILE`.
    pub passphrase: Option<Arc<SecretString>>,
    /// SQLite durability.
    pub sqlite_sync: SqliteSync,
    /// Disclosure quorum per purpose.
    pub disclosure: DisclosureConfig,
    /// The access trail's origin line; `None` derives one from the log key.
    pub log_origin: Option<String>,
    /// Leak traces per auditor per minute.
    pub leak_traces_per_minute: u32,
    /// Reward policy directory; `None` for tools that need no policies.
    pub policies_dir: Option<PathBuf>,
    /// Reward settlement defaults.
    pub settlement: vault_domain::settlement::SettlementConfig,
    /// Keys, lifecycle, ledger.
    pub ops: OpsConfig,
}

/// The server's settings.
#[derive(Clone)]
pub struct ServeConfig {
    /// Store and keys.
    pub vault: VaultConfig,
    /// `--listen`.
    pub listen: SocketAddr,
    /// Request body limit in bytes.
    pub max_body: usize,
    /// Delivery.
    pub notifier: NotifierConfig,
    /// Create one principal per role and write their tokens to `DATA_DIR/demo-tokens.json`.
    pub demo: bool,
    /// Sign a checkpoint after this many new events…
    pub checkpoint_every_events: u64,
    /// …or this long after the last one, whichever comes first.
    pub checkpoint_every: Duration,
    /// Slow-loris and connection limits.
    pub limits: crate::serve::ServerLimits,
    /// A stalled request body is answered 408 after this long.
    pub body_timeout: Duration,
}

/// An opened vault: store, keys and use cases.
pub struct OpenedVault {
    /// Use cases.
    pub vault: Vault,
    /// Store.
    pub store: SqlStore,
    /// Keys.
    pub keys: Arc<dyn vault_domain::ports::KeyProvider>,
    /// Whether this start created the store.
    pub admin_token_written: Option<PathBuf>,
}

impl OpenedVault {
    /// What the HTTP handlers share: the opened vault, the injected clock and randomness,
    /// fresh wake-ups, and "not the leader" until the lease says otherwise. The one place it
    /// is assembled (the server and `in_process_router` both come here).
    pub fn into_state(self, clock: Arc<dyn Clock>, rng: Arc<dyn RandomSource>) -> AppState {
        AppState::new(http::AppStateInner {
            vault: self.vault,
            store: self.store,
            keys: self.keys,
            clock,
            rng,
            wake_notifier: Arc::new(tokio::sync::Notify::new()),
            wake_jobs: Arc::new(tokio::sync::Notify::new()),
            leader: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }
}

/// Loads and validates every policy in `dir`.
pub fn load_policies(dir: &Path) -> Result<vault_policy::PolicySet, StartError> {
    if !dir.is_dir() {
        return Err(StartError::Policies(format!(
            "{} is not a directory (set --policies / RV_POLICIES)",
            dir.display()
        )));
    }
    vault_policy::PolicySet::load_dir(dir).map_err(|e| StartError::Policies(e.to_string()))
}

fn check_private(path: &Path) -> Result<(), StartError> {
    let meta = std::fs::metadata(path).map_err(io(format!("reading {}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StartError::Config(format!(
            "{} is readable by group or others (mode {mode:04o}); chmod 600 it",
            path.display()
        )));
    }
    Ok(())
}

/// Reads a secret from `VAR`, or from the file named by `VAR_FILE` (which must be private).
pub fn secret_from_env(var: &str) -> Result<Option<SecretString>, StartError> {
    if let Ok(v) = std::env::var(var)
        && !v.is_empty()
    {
        return Ok(Some(SecretString::from(v)));
    }
    let file_var = format!("{var}_FILE");
    if let Ok(path) = std::env::var(&file_var) {
        let path = PathBuf::from(path);
        check_private(&path)?;
        let raw = zeroize::Zeroizing::new(
            std::fs::read_to_string(&path).map_err(io(format!("reading {file_var}")))?,
        );
        let v = raw.trim_end_matches(['\n', '\r']);
        if v.is_empty() {
            return Err(StartError::Config(format!(
                "{file_var} names an empty file"
            )));
        }
        return Ok(Some(SecretString::from(v.to_owned())));
    }
    Ok(None)
}

fn create_private_dir(dir: &Path) -> Result<(), StartError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("securing {}", dir.display())))?;
    }
    Ok(())
}

/// Writes `contents` to a new file readable by the owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), StartError> {
    use std::io::Write;
    if path.exists() {
        std::fs::remove_file(path).map_err(io(format!("replacing {}", path.display())))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("writing {}", path.display())))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(io(format!("writing {}", path.display())))
}

impl VaultConfig {
    fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("vault.db").display()
            )
        })
    }

    fn open_local_keys(
        &self,
        engine: Engine,
        empty: bool,
        clock: &dyn Clock,
        rng: Arc<dyn RandomSource>,
    ) -> Result<Arc<dyn KeyProvider>, StartError> {
        let paths = KeyringPaths::in_dir(&self.data_dir);
        let protector = protector(
            self.passphrase
                .as_ref()
                .map(|p| SecretString::from(p.expose_secret().to_owned())),
            &paths,
            engine == Engine::Sqlite,
        )?;
        if let KeyringProtector::IdentityFile(id) = &protector {
            tracing::warn!(
                identity_file = %id.display(),
                "DEVELOPMENT SETUP: the keyring is protected by an age identity file stored \
                 beside it. Anyone who can read the data directory can read every identity. \
                 Set RV_KEYRING_PASSPHRASE_FILE (or use an HSM) for real use."
            );
        }
        let keyring = if paths.keyring.exists() {
            Keyring::load(&paths.keyring, &protector)?
        } else if !empty {
            return Err(StartError::Config(format!(
                "{} is missing but the store already holds data: restore the keyring; a new \
                 one would make every sealed identity unreadable",
                paths.keyring.display()
            )));
        } else {
            if let KeyringProtector::IdentityFile(id) = &protector
                && !id.exists()
            {
                KeyringProtector::create_identity_file(id)?;
            }
            let kr = Keyring::generate(rng.as_ref(), clock.now().unix_timestamp())
                .map_err(vault_crypto::KeyringError::from)?;
            kr.save(&paths.keyring, &protector)?;
            tracing::info!(path = %paths.keyring.display(), "created keyring");
            kr
        };
        Ok(Arc::new(
            LocalKeys::new(keyring, rng, self.log_origin.as_deref())
                .map_err(vault_crypto::KeyringError::from)?
                .backed_by(paths.keyring.clone(), protector),
        ))
    }

    /// Opens (or on first start, creates) store, keyring and admin principal.
    pub async fn open(
        &self,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn RandomSource>,
    ) -> Result<OpenedVault, StartError> {
        create_private_dir(&self.data_dir)?;
        // Policies first: an invalid policy refuses the start before anything is touched.
        let policies = match &self.policies_dir {
            Some(dir) => load_policies(dir)?,
            None => vault_policy::PolicySet::from_policies(Vec::new())
                .map_err(|e| StartError::Policies(e.to_string()))?,
        };
        if self.database_url.is_none() {
            // SQLite creates the -wal and -shm files with the database file's mode, so
            // creating it private first keeps all three private.
            let db = self.data_dir.join("vault.db");
            if !db.exists() {
                write_private(&db, b"")?;
            }
        }
        let url = self.database_url();
        let engine = Engine::of_url(&url).ok_or_else(|| {
            StartError::Config("RV_DATABASE_URL must start with sqlite: or postgres:".into())
        })?;
        let store = SqlStore::connect(
            &url,
            &StoreOptions {
                sqlite_sync: self.sqlite_sync,
                ..StoreOptions::default()
            },
        )
        .await?;
        store.migrate().await?;
        let empty = store.read().await?.principal_count().await? == 0;
        let keys: Arc<dyn KeyProvider> = match &self.ops.key_provider {
            KeyProviderConfig::Local => {
                self.open_local_keys(engine, empty, clock.as_ref(), rng.clone())?
            }
            KeyProviderConfig::Pkcs11(cfg) => {
                let cfg = cfg.clone();
                let origin = self.log_origin.clone();
                let rng = rng.clone();
                // Module loading and login block: keep them off the async workers.
                let keys = tokio::task::spawn_blocking(move || {
                    vault_hsm::Pkcs11Keys::open(&cfg, rng, origin.as_deref())
                })
                .await
                .map_err(|e| StartError::Config(format!("PKCS#11: {e}")))?
                .map_err(|e| StartError::Config(format!("PKCS#11: {e}")))?;
                tracing::info!(provider = "pkcs11", "key provider opened");
                Arc::new(keys)
            }
        };
        let ledger_path = self
            .ops
            .erasure_ledger
            .clone()
            .unwrap_or_else(|| self.data_dir.join("erasure-ledger.jsonl"));
        let vault = Vault::new(VaultDeps {
            store: Arc::new(store.clone()),
            keys: keys.clone(),
            clock,
            rng,
            disclosure: self.disclosure,
            leak_traces_per_minute: self.leak_traces_per_minute,
            policies: Arc::new(policies),
            settlement: self.settlement,
            lifecycle: self.ops.lifecycle,
            erasure_ledger: Some(Arc::new(crate::ledger::FileLedger::new(ledger_path))),
            auth_cache_ttl: time::Duration::try_from(self.ops.auth_cache_ttl.unwrap_or(
                match engine {
                    Engine::Sqlite => Duration::from_secs(2),
                    Engine::Postgres => Duration::ZERO,
                },
            ))
            .unwrap_or(time::Duration::ZERO),
        });
        vault.register_key_versions().await?;
        if self.policies_dir.is_some() {
            let added = vault.archive_policies().await?;
            tracing::info!(
                policies = vault.policies().len(),
                new_versions = added,
                "reward policies loaded"
            );
        }
        let mut admin_token_written = None;
        if let Some(admin) = vault.bootstrap_admin().await? {
            let path = self.data_dir.join("admin.token");
            write_private(&path, admin.token.expose_secret().as_bytes())?;
            tracing::info!(path = %path.display(), "created the admin principal; its token is in this file");
            admin_token_written = Some(path);
        }
        Ok(OpenedVault {
            vault,
            store,
            keys,
            admin_token_written,
        })
    }
}

/// Connects and applies migrations only (the deployment's migration job).
pub async fn migrate_only(cfg: &VaultConfig) -> Result<i64, StartError> {
    create_private_dir(&cfg.data_dir)?;
    let url = cfg.database_url();
    let store = SqlStore::connect(&url, &StoreOptions::default()).await?;
    store.migrate().await?;
    store.close().await;
    Ok(vault_storage::SCHEMA_VERSION)
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    max_body: usize,
    body_timeout: Duration,
    notifier: Arc<dyn Notifier>,
    checkpoint_every_events: u64,
    checkpoint_every: Duration,
    key_reload_every: Duration,
    limits: crate::serve::ServerLimits,
}

impl Application {
    /// Opens the vault and binds the listener (port 0 picks a free port).
    pub async fn build(
        cfg: ServeConfig,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn RandomSource>,
    ) -> Result<Application, StartError> {
        let opened = cfg.vault.open(clock.clone(), rng.clone()).await?;
        if cfg.demo {
            create_demo_principals(&opened.vault, &cfg.vault.data_dir).await?;
        }
        let notifier: Arc<dyn Notifier> = match &cfg.notifier {
            NotifierConfig::File => Arc::new(FileNotifier::new(
                cfg.vault.data_dir.join("outbox.jsonl"),
                clock.clone(),
            )),
            NotifierConfig::Webhook { url, secret } => Arc::new(
                WebhookNotifier::new(url.clone(), secret, clock.clone())
                    .map_err(StartError::Config)?,
            ),
        };
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(io(format!("binding {}", cfg.listen)))?;
        let state = opened.into_state(clock, rng);
        Ok(Application {
            listener,
            state,
            max_body: cfg.max_body,
            body_timeout: cfg.body_timeout,
            notifier,
            checkpoint_every_events: cfg.checkpoint_every_events.max(1),
            checkpoint_every: cfg.checkpoint_every,
            key_reload_every: cfg.vault.ops.key_reload_every,
            limits: cfg.limits,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, StartError> {
        self.listener
            .local_addr()
            .map_err(io("reading local address"))
    }

    /// Serves until `shutdown` completes, then drains in-flight requests and stops the
    /// delivery worker.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(crate::notify::run_worker(
            self.state.vault.clone(),
            self.notifier.clone(),
            self.state.wake_notifier.clone(),
            Duration::from_secs(2),
            stop_rx,
        ));
        // Leadership stops on its own signal, sent only after the final checkpoint and the
        // job runner are done, so the lease is never released with a signature pending.
        let (lead_stop_tx, lead_stop_rx) = tokio::sync::watch::channel(false);
        let leadership = tokio::spawn(crate::leader::run_leadership(
            self.state.store.clone(),
            self.state.leader.clone(),
            lead_stop_rx,
        ));
        let checkpoints = tokio::spawn(run_checkpointer(
            self.state.vault.clone(),
            self.state.leader.clone(),
            self.checkpoint_every_events,
            self.checkpoint_every,
            stop_tx.subscribe(),
        ));
        let jobs = tokio::spawn(crate::leader::run_jobs(
            self.state.vault.clone(),
            self.state.leader.clone(),
            self.state.wake_jobs.clone(),
            stop_tx.subscribe(),
        ));
        let reload = tokio::spawn(crate::leader::run_key_reload(
            self.state.keys.clone(),
            self.key_reload_every,
            stop_tx.subscribe(),
        ));
        let store = self.state.store.clone();
        let addr = self.local_addr()?;
        let app = http::router(self.state, self.max_body, self.body_timeout);
        tracing::info!(%addr, "reporter-vault listening");
        let served = crate::serve::serve(self.listener, app, self.limits, shutdown)
            .await
            .map_err(io("serving"));
        let _ = stop_tx.send(true);
        let _ = worker.await;
        let _ = checkpoints.await;
        let _ = jobs.await;
        let _ = reload.await;
        // Last: the lease is released only after the final checkpoint was signed.
        let _ = lead_stop_tx.send(true);
        let _ = leadership.await;
        store.close().await;
        tracing::info!("reporter-vault stopped");
        served
    }
}

/// The periodic jobs: expires rewards whose claim window closed, and signs a checkpoint every
/// `every_events` new events or every `every`, whichever comes first, and once more at
/// shutdown.
async fn run_checkpointer(
    vault: Vault,
    leader: Arc<std::sync::atomic::AtomicBool>,
    every_events: u64,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    // Often enough that "every N events" holds under a burst, not only at the next second.
    let poll = Duration::from_millis(250).min(every);
    let mut last_size = 0u64;
    let mut last_at = tokio::time::Instant::now();
    loop {
        let stop = tokio::select! {
            _ = tokio::time::sleep(poll) => false,
            _ = shutdown.changed() => true,
        };
        // One replica at a time signs checkpoints and expires rewards.
        if !leader.load(std::sync::atomic::Ordering::Acquire) {
            if stop || *shutdown.borrow() {
                return;
            }
            last_at = tokio::time::Instant::now();
            continue;
        }
        // Claim windows close at 24:00 CST; the job moves unclaimed rewards to expired.
        match vault.expire_rewards().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "reward claim windows closed"),
            Err(e) => tracing::warn!(error = %e, "could not expire rewards"),
        }
        match vault.tree_head().await {
            Ok(head) => {
                let due = head.size > last_size
                    && (head.size - last_size >= every_events
                        || last_at.elapsed() >= every
                        || stop);
                if due {
                    match vault.make_leader_checkpoint().await {
                        Ok(_) => {
                            last_size = head.size;
                            last_at = tokio::time::Instant::now();
                        }
                        Err(e) => tracing::warn!(error = %e, "could not sign a checkpoint"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the tree head"),
        }
        if stop || *shutdown.borrow() {
            return;
        }
    }
}

async fn create_demo_principals(vault: &Vault, data_dir: &Path) -> Result<(), StartError> {
    let path = data_dir.join("demo-tokens.json");
    if path.exists() {
        return Ok(());
    }
    let national = Jurisdiction::NATIONAL;
    let mut out = serde_json::Map::new();
    for (key, name, role) in [
        ("case_system", "demo case system", Role::CaseSystem),
        ("custodian", "demo custodian 1", Role::Custodian),
        ("custodian2", "demo custodian 2", Role::Custodian),
        ("finance", "demo finance 1", Role::Finance),
        ("finance2", "demo finance 2", Role::Finance),
        ("auditor", "demo auditor", Role::Auditor),
    ] {
        let created = vault
            .create_principal(None, name, role, national, None)
            .await?;
        out.insert(
            key.to_owned(),
            serde_json::json!({
                "id": created.principal.id,
                "token": created.token.expose_secret(),
            }),
        );
    }
    let bytes = serde_json::to_vec_pretty(&out).unwrap_or_default();
    write_private(&path, &bytes)?;
    tracing::info!(path = %path.display(), "demo principals created; their tokens are in this file");
    Ok(())
}

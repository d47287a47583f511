//! The command line. Every flag also reads an environment variable; secrets only come from
//! the environment or from private files (`*_FILE`), never from flags that `ps` would show.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::ExposeSecret;
use vault_crypto::random::SystemRandomSource;
use vault_domain::DisclosureConfig;
use vault_domain::clock::SystemClock;
use vault_domain::values::{Jurisdiction, Purpose, Role};
use vault_storage::SqliteSync;

use crate::app::{
    Application, KeyProviderConfig, NotifierConfig, OpsConfig, ServeConfig, StartError,
    VaultConfig, secret_from_env,
};
use crate::telemetry::{self, LogFormat};

/// reporter-vault: vaults reporter identities and settles rewards.
#[derive(Parser)]
#[command(name = "reporter-vault", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(
        long,
        env = "RV_LOG_FORMAT",
        value_enum,
        default_value = "json",
        global = true
    )]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve(ServeArgs),
    /// Manage principals offline (with access to the data directory).
    Principal {
        #[command(subcommand)]
        command: PrincipalCommand,
    },
    /// Open store and keyring, report what would be served, and exit.
    CheckConfig(StoreArgs),
    /// Apply schema migrations and exit (the Helm pre-install/pre-upgrade hook).
    Migrate(StoreArgs),
    /// Key-encryption keys: status, rotation, rewrap, retirement.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Write an age-encrypted, consistent snapshot of the whole store (online).
    Backup {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        opts: crate::backup_cli::BackupOpts,
    },
    /// Restore a backup into an empty store, verified before anything is written.
    Restore {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        opts: crate::backup_cli::RestoreOpts,
    },
    /// Reward policies offline.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Rewards offline.
    Reward {
        #[command(subcommand)]
        command: RewardCommand,
    },
    /// The access trail offline.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate every policy file in DIR (default ./policies); exits non-zero naming each
    /// file, key and problem.
    Check {
        /// Policy directory.
        #[arg(env = "RV_POLICIES", default_value = "./policies")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum RewardCommand {
    /// Compute a quote from a JSON file shaped like the body of POST /v1/rewards/quote;
    /// prints the same JSON the endpoint answers.
    Quote {
        /// The request body.
        #[arg(long)]
        input: PathBuf,
        /// Policy directory.
        #[arg(long, env = "RV_POLICIES", default_value = "./policies")]
        policies: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every leaf, every checkpoint's root and signature, and consistency between them.
    /// Exits non-zero naming the first bad index.
    Verify(AuditVerifyArgs),
    /// Write the leaves and checkpoints to a file an independent verifier can check.
    Export(AuditExportArgs),
}

#[derive(Args)]
struct AuditVerifyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Verify this export file instead of the store (needs --public-key).
    #[arg(long)]
    file: Option<PathBuf>,
    /// The log's note verifier key, obtained out of band (GET /v1/audit/public-key).
    #[arg(long)]
    public_key: Option<String>,
    /// A checkpoint saved earlier (repeatable): the log must still contain it.
    #[arg(long)]
    checkpoint: Vec<PathBuf>,
    /// Also prove every leaf is a canonical, well-formed event (about 4x slower).
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
struct AuditExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Provider, active version, and records per version.
    Status(StoreArgs),
    /// Create a new KEK version, active for every new record.
    Rotate(StoreArgs),
    /// Re-wrap every data key to the active version (resumable; safe while serving).
    Rewrap(StoreArgs),
    /// Destroy a KEK version no record uses.
    Retire {
        #[command(flatten)]
        store: StoreArgs,
        /// The version.
        version: u32,
    },
    /// Create the root key and KEK v1 in an empty PKCS#11 token.
    InitHsm(StoreArgs),
}

#[derive(Subcommand)]
enum PrincipalCommand {
    /// Create a principal and print it with its token (shown once).
    Add(PrincipalAddArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum SyncArg {
    /// Survives a killed process.
    Normal,
    /// Survives power loss too.
    Full,
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Data directory: SQLite database, keyring, admin token.
    #[arg(long, env = "RV_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Database URL (`postgres://…`); default SQLite at DATA_DIR/vault.db. Also
    /// RV_DATABASE_URL_FILE.
    #[arg(long, env = "RV_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// SQLite durability.
    #[arg(
        long,
        env = "RV_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value = "normal"
    )]
    sqlite_synchronous: SyncArg,
    /// Custodians required per disclosure purpose, e.g. `judicial_transfer=3,verification_contact=1`
    /// (defaults: 1, and 2 for judicial_transfer and false_accusation).
    #[arg(long, env = "RV_DISCLOSURE_QUORUM")]
    disclosure_quorum: Option<String>,
    /// The access trail's name in its checkpoints (default: derived from the log key).
    #[arg(long, env = "RV_LOG_ORIGIN")]
    log_origin: Option<String>,
    /// Leak traces allowed per auditor per minute.
    #[arg(long, env = "RV_LEAK_TRACES_PER_MINUTE", default_value_t = 30)]
    leak_traces_per_minute: u32,
    /// Two distinct finance approvals at or above this amount (yuan) when the policy names
    /// no threshold.
    #[arg(long, env = "RV_DUAL_APPROVAL_THRESHOLD", default_value = "50000.00")]
    dual_approval_threshold: rust_decimal::Decimal,
    /// Claim window in days when the policy names none.
    #[arg(long, env = "RV_DEFAULT_CLAIM_DAYS", default_value_t = 60)]
    default_claim_days: u32,
    /// Where the KEKs live: `local` (age-protected keyring file) or `pkcs11` (an HSM).
    #[arg(long, env = "RV_KEY_PROVIDER", value_enum, default_value = "local")]
    key_provider: ProviderArg,
    /// PKCS#11 module (.so) for `pkcs11`.
    #[arg(long, env = "RV_PKCS11_MODULE")]
    pkcs11_module: Option<PathBuf>,
    /// Token label for `pkcs11` (PIN from RV_PKCS11_PIN or RV_PKCS11_PIN_FILE).
    #[arg(long, env = "RV_PKCS11_TOKEN_LABEL")]
    pkcs11_token_label: Option<String>,
    /// Custodians required to approve an erasure.
    #[arg(long, env = "RV_ERASURE_QUORUM", default_value_t = 2)]
    erasure_quorum: u32,
    /// Erase a reporter this many years after the last of its cases closed; 0 = never.
    #[arg(long, env = "RV_RETENTION_YEARS", default_value_t = 0)]
    retention_years: u32,
    /// The erasure ledger file (default DATA_DIR/erasure-ledger.jsonl).
    #[arg(long, env = "RV_ERASURE_LEDGER")]
    erasure_ledger: Option<PathBuf>,
    /// Seconds after a rotation before the previous version may be retired.
    #[arg(long, env = "RV_KEY_RETIRE_GRACE_SECONDS", default_value_t = 15)]
    key_retire_grace_seconds: u32,
    /// Disclosure requests per requesting principal per minute (429 beyond).
    #[arg(long, env = "RV_DISCLOSURE_REQUESTS_PER_MINUTE", default_value_t = 30)]
    disclosure_requests_per_minute: u32,
    /// Seconds between key reloads (rotations made by other replicas or the CLI).
    #[arg(long, env = "RV_KEY_RELOAD_SECONDS", default_value_t = 5)]
    key_reload_seconds: u32,
    /// Seconds an authenticated token is remembered (0: not at all). Default: 2 on the
    /// embedded SQLite store, off on PostgreSQL (a principal revoked on another replica would be
    /// refused here only within this time; on the replica that revoked it, at once).
    #[arg(long, env = "RV_AUTH_CACHE_SECONDS", value_parser = clap::value_parser!(u32).range(0..=60))]
    auth_cache_seconds: Option<u32>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProviderArg {
    /// The age-protected keyring file.
    Local,
    /// An HSM over PKCS#11.
    Pkcs11,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "RV_LISTEN", default_value = "127.0.0.1:8700")]
    listen: SocketAddr,
    /// Reward policy directory.
    #[arg(long, env = "RV_POLICIES", default_value = "./policies")]
    policies: PathBuf,
    /// Request body limit in bytes.
    #[arg(long, env = "RV_MAX_BODY_BYTES", default_value_t = 65536)]
    max_body_bytes: usize,
    /// Deliver reporter messages to this gateway URL (secret from RV_NOTIFY_WEBHOOK_SECRET or
    /// RV_NOTIFY_WEBHOOK_SECRET_FILE). Without it, messages go to DATA_DIR/outbox.jsonl.
    #[arg(long, env = "RV_NOTIFY_WEBHOOK_URL")]
    notify_webhook_url: Option<String>,
    /// Create one principal per role and write their tokens to DATA_DIR/demo-tokens.json.
    #[arg(long)]
    demo: bool,
    /// Sign an access-trail checkpoint after this many new events…
    #[arg(long, env = "RV_CHECKPOINT_EVERY_EVENTS", default_value_t = 1000)]
    checkpoint_every_events: u64,
    /// …or this many seconds after the last one.
    #[arg(long, env = "RV_CHECKPOINT_EVERY_SECONDS", default_value_t = 60)]
    checkpoint_every_seconds: u64,
    /// Seconds a client has to send its request line and headers (slow-loris guard).
    #[arg(long, env = "RV_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    header_timeout_seconds: u64,
    /// Seconds a request body may take to arrive (408 after).
    #[arg(long, env = "RV_BODY_TIMEOUT_SECONDS", default_value_t = 10)]
    body_timeout_seconds: u64,
    /// Open connections at most; more wait in the accept queue.
    #[arg(long, env = "RV_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
}

#[derive(Args)]
struct PrincipalAddArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Role.
    #[arg(long)]
    role: String,
    /// GB/T 2260 code.
    #[arg(long)]
    jurisdiction: String,
    /// Display name.
    #[arg(long)]
    name: String,
    /// age recipient (age1…) that disclosures to this principal are encrypted to.
    #[arg(long)]
    age_recipient: Option<String>,
}

/// Parses `purpose=n,…` over the defaults.
pub fn parse_quorum(s: &str) -> Result<DisclosureConfig, String> {
    let mut cfg = DisclosureConfig::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("RV_DISCLOSURE_QUORUM: `{part}` is not purpose=number"))?;
        let purpose = Purpose::parse(k.trim())
            .ok_or_else(|| format!("RV_DISCLOSURE_QUORUM: unknown purpose `{}`", k.trim()))?;
        let n: u32 = v
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=10).contains(n))
            .ok_or_else(|| format!("RV_DISCLOSURE_QUORUM: {k} must be 1–10"))?;
        match purpose {
            Purpose::VerificationContact => cfg.verification_contact = n,
            Purpose::RewardPayment => cfg.reward_payment = n,
            Purpose::JudicialTransfer => cfg.judicial_transfer = n,
            Purpose::FalseAccusation => cfg.false_accusation = n,
        }
    }
    Ok(cfg)
}

impl StoreArgs {
    fn vault_config(&self) -> Result<VaultConfig, StartError> {
        let database_url = match &self.database_url {
            Some(u) => Some(u.clone()),
            None => secret_from_env("RV_DATABASE_URL")?.map(|s| s.expose_secret().to_owned()),
        };
        Ok(VaultConfig {
            data_dir: self.data_dir.clone(),
            database_url,
            passphrase: secret_from_env("RV_KEYRING_PASSPHRASE")?.map(Arc::new),
            sqlite_sync: match self.sqlite_synchronous {
                SyncArg::Normal => SqliteSync::Normal,
                SyncArg::Full => SqliteSync::Full,
            },
            disclosure: match &self.disclosure_quorum {
                Some(q) => parse_quorum(q).map_err(StartError::Config)?,
                None => DisclosureConfig::default(),
            },
            log_origin: self.log_origin.clone(),
            leak_traces_per_minute: self.leak_traces_per_minute,
            policies_dir: None,
            settlement: vault_domain::settlement::SettlementConfig {
                default_dual_threshold: self.dual_approval_threshold,
                default_claim_days: self.default_claim_days,
            },
            ops: self.ops_config()?,
        })
    }

    fn ops_config(&self) -> Result<OpsConfig, StartError> {
        if !(1..=10).contains(&self.erasure_quorum) {
            return Err(StartError::Config("RV_ERASURE_QUORUM must be 1–10".into()));
        }
        if self.retention_years > 200 {
            return Err(StartError::Config(
                "RV_RETENTION_YEARS must be 0–200".into(),
            ));
        }
        let key_provider = match self.key_provider {
            ProviderArg::Local => KeyProviderConfig::Local,
            ProviderArg::Pkcs11 => {
                let module = self.pkcs11_module.clone().ok_or_else(|| {
                    StartError::Config("RV_KEY_PROVIDER=pkcs11 needs RV_PKCS11_MODULE".into())
                })?;
                let label = self.pkcs11_token_label.clone().ok_or_else(|| {
                    StartError::Config("RV_KEY_PROVIDER=pkcs11 needs RV_PKCS11_TOKEN_LABEL".into())
                })?;
                let pin = secret_from_env("RV_PKCS11_PIN")?.ok_or_else(|| {
                    StartError::Config(
                        "RV_KEY_PROVIDER=pkcs11 needs RV_PKCS11_PIN_FILE (or RV_PKCS11_PIN)".into(),
                    )
                })?;
                KeyProviderConfig::Pkcs11(vault_hsm::Pkcs11Config::new(module, label, pin))
            }
        };
        Ok(OpsConfig {
            key_provider,
            lifecycle: vault_domain::LifecycleConfig {
                erasure_quorum: self.erasure_quorum,
                retention_years: self.retention_years,
                disclosure_requests_per_minute: self.disclosure_requests_per_minute.max(1),
                retire_grace: time::Duration::seconds(i64::from(self.key_retire_grace_seconds)),
                ..vault_domain::LifecycleConfig::default()
            },
            erasure_ledger: self.erasure_ledger.clone(),
            key_reload_every: std::time::Duration::from_secs(u64::from(
                self.key_reload_seconds.max(1),
            )),
            auth_cache_ttl: self
                .auth_cache_seconds
                .map(|s| std::time::Duration::from_secs(u64::from(s))),
        })
    }
}

/// Runs the CLI.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("reporter-vault: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the OTLP exporter's gRPC channel lives on it. The guard flushes the
    // last spans when it drops at the end of `main`, before the runtime does.
    let _telemetry = {
        let _runtime = runtime.enter();
        telemetry::init(cli.log_format)
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "reporter-vault refused to start");
            eprintln!("reporter-vault: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), StartError> {
    let clock = Arc::new(SystemClock);
    let rng = Arc::new(SystemRandomSource);
    match command {
        Command::Serve(args) => {
            let notifier = match &args.notify_webhook_url {
                Some(url) => NotifierConfig::Webhook {
                    url: url.clone(),
                    secret: Arc::new(secret_from_env("RV_NOTIFY_WEBHOOK_SECRET")?.ok_or_else(
                        || {
                            StartError::Config(
                                "RV_NOTIFY_WEBHOOK_URL needs RV_NOTIFY_WEBHOOK_SECRET or \
                                 RV_NOTIFY_WEBHOOK_SECRET_FILE"
                                    .into(),
                            )
                        },
                    )?),
                },
                None => NotifierConfig::File,
            };
            let mut vault = args.store.vault_config()?;
            vault.policies_dir = Some(args.policies.clone());
            let cfg = ServeConfig {
                vault,
                listen: args.listen,
                max_body: args.max_body_bytes,
                notifier,
                demo: args.demo,
                checkpoint_every_events: args.checkpoint_every_events,
                checkpoint_every: std::time::Duration::from_secs(
                    args.checkpoint_every_seconds.max(1),
                ),
                limits: crate::serve::ServerLimits {
                    header_timeout: std::time::Duration::from_secs(
                        args.header_timeout_seconds.max(1),
                    ),
                    max_connections: args.max_connections.max(1),
                    ..crate::serve::ServerLimits::default()
                },
                body_timeout: std::time::Duration::from_secs(args.body_timeout_seconds.max(1)),
            };
            let app = Application::build(cfg, clock, rng).await?;
            app.run(shutdown_signal()).await
        }
        Command::Principal {
            command: PrincipalCommand::Add(args),
        } => {
            let role = Role::parse(&args.role).ok_or_else(|| {
                StartError::Config(
                    "--role must be admin, case_system, custodian, finance or auditor".into(),
                )
            })?;
            let jurisdiction = Jurisdiction::parse(&args.jurisdiction)
                .map_err(|e| StartError::Config(format!("--jurisdiction: {}", e.reason)))?;
            let opened = args.store.vault_config()?.open(clock, rng).await?;
            let created = opened
                .vault
                .create_principal(
                    None,
                    &args.name,
                    role,
                    jurisdiction,
                    args.age_recipient.as_deref(),
                )
                .await?;
            let view = crate::http::dto::PrincipalView::of(
                &created.principal,
                Some(created.token.expose_secret().to_owned()),
            );
            out(serde_json::to_string_pretty(&view).unwrap_or_default());
            opened.store.close().await;
            Ok(())
        }
        Command::Policy {
            command: PolicyCommand::Check { dir },
        } => {
            let set = crate::app::load_policies(&dir)?;
            for p in set.iter() {
                out(format!("ok  {}  {}  {}", p.id(), p.version(), p.file()));
            }
            out(format!("{} policies valid", set.len()));
            Ok(())
        }
        Command::Reward {
            command: RewardCommand::Quote { input, policies },
        } => {
            let set = crate::app::load_policies(&policies)?;
            let bytes = std::fs::read(&input).map_err(|e| StartError::Io {
                context: format!("reading {}", input.display()),
                source: e,
            })?;
            let body: vault_policy::QuoteInput = crate::http::parse_json(&bytes).map_err(|e| {
                StartError::Config(format!(
                    "{}: {} {}",
                    input.display(),
                    e.field.unwrap_or_default(),
                    e.message
                ))
            })?;
            let quote = vault_domain::rewards::compute_quote(&set, &body)?;
            out(serde_json::to_string_pretty(&quote).unwrap_or_default());
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify(args),
        } => {
            let report = match (&args.file, &args.public_key) {
                (Some(file), Some(key)) => {
                    crate::audit_cli::verify_file(file, key, &args.checkpoint, args.strict)
                }
                (Some(_), None) => {
                    return Err(StartError::Config("--file needs --public-key".into()));
                }
                (None, _) => {
                    let opened = args.store.vault_config()?.open(clock, rng).await?;
                    let r = crate::audit_cli::verify_store(&opened, &args.checkpoint, args.strict)
                        .await;
                    opened.store.close().await;
                    r
                }
            };
            match report {
                Ok(r) => {
                    out(format!(
                        "ok: {} events, {} checkpoints verified; root {}",
                        r.events,
                        r.checkpoints,
                        hex::encode(r.root)
                    ));
                    Ok(())
                }
                Err(e) => Err(StartError::Audit(e.to_string())),
            }
        }
        Command::Audit {
            command: AuditCommand::Export(args),
        } => {
            let opened = args.store.vault_config()?.open(clock, rng).await?;
            let n = crate::audit_cli::export(&opened, &args.out)
                .await
                .map_err(|e| StartError::Audit(e.to_string()))?;
            opened.store.close().await;
            out(format!("exported {n} events to {}", args.out.display()));
            Ok(())
        }
        Command::Backup { store, opts } => {
            crate::backup_cli::backup(&store.vault_config()?, &opts, clock, rng)
                .await
                .map(|_| ())
        }
        Command::Restore { store, opts } => {
            crate::backup_cli::restore(&store.vault_config()?, &opts, clock, rng)
                .await
                .map(|_| ())
        }
        Command::Migrate(args) => {
            let cfg = args.vault_config()?;
            let n = crate::app::migrate_only(&cfg).await?;
            out(format!("ok: schema at version {n}"));
            Ok(())
        }
        Command::Keys { command } => crate::keys_cli::run(command_of(command), clock, rng).await,
        Command::CheckConfig(args) => {
            let opened = args.vault_config()?.open(clock, rng).await?;
            out(format!(
                "ok: store {} reachable and migrated, keyring opened",
                opened.store.engine_kind().as_str()
            ));
            opened.store.close().await;
            Ok(())
        }
    }
}

fn command_of(c: KeysCommand) -> crate::keys_cli::KeysAction {
    use crate::keys_cli::KeysAction as A;
    let cfg = |s: StoreArgs| s.vault_config();
    match c {
        KeysCommand::Status(s) => A::Status(cfg(s)),
        KeysCommand::Rotate(s) => A::Rotate(cfg(s)),
        KeysCommand::Rewrap(s) => A::Rewrap(cfg(s)),
        KeysCommand::Retire { store, version } => A::Retire(cfg(store), version),
        KeysCommand::InitHsm(s) => A::InitHsm(cfg(s)),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining");
}

/// Prints a line; a closed stdout (`| head`) is not an error worth a panic.
fn out(line: String) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}

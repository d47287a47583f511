//! `reporter-vault backup` and `reporter-vault restore`: an encrypted, consistent, online
//! snapshot of the whole store, and an all-or-nothing restore into an empty store of either
//! engine, verified before anything is written.
//!
//! # Archive format (version 1)
//!
//! An `age` file, encrypted to one or more X25519 recipients or to one scrypt passphrase, so
//! `age -d -i key.txt backup.age` opens it. The plaintext is JSON lines:
//!
//! 1. `{"type":"header","format":"reporter-vault-backup","version":1,"schema_version":7,
//!    "engine":"sqlite","created_at":"<RFC 3339>","tree_size":n,"tree_root":"<hex>",
//!    "log_verifier_key":"<note verifier key>","tables":[{"name":…,"columns":[[name,kind],…],
//!    "rows":n},…]}`: kinds are `int`, `text` and `blob`; the tables are
//!    [`vault_storage::backup::TABLES`], in load order.
//! 2. Per table, in header order: `{"type":"table","name":…,"rows":n}`, then `n` lines, each a
//!    JSON array of one row's values in column order: integers as numbers, text as strings,
//!    bytes as standard base64, NULL as `null`.
//! 3. `{"type":"checkpoint","note":…}`: the snapshot's tree head, signed at backup time with
//!    the log key, so every event in the archive is covered by a signature (the store's own
//!    checkpoints may lag behind its newest events).
//! 4. `{"type":"end","sha256":"<hex>"}`: SHA-256 of every byte before this line.
//!
//! Rows hold what the database holds: envelopes, blind indexes, MACs, token and claim-code
//! hashes, pseudonyms and record ids, never a plaintext identity. The keyring is not in the
//! archive: restore needs the same keyring in the target data directory.
//!
//! # Restore
//!
//! Into an empty store only. The archive is read twice: the first pass checks its structure,
//! its trailer, and the access trail (every leaf canonical and at its index, every stored
//! checkpoint's signature and root, the snapshot checkpoint, the stored tree nodes and the
//! leak-tracing index recomputed from the leaves) before anything is written; the second pass
//! loads every row in one transaction and must read exactly the bytes the first pass verified.
//! Then the store is opened as the service opens it, every erasure in the erasure ledger is
//! applied again, and `audit verify` runs on the store.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
use vault_crypto::checkpoint::{Checkpoint, NoteVerifier};
use vault_crypto::keyring::Keyring;
use vault_crypto::merkle::{Frontier, leaf_hash};
use vault_crypto::random::RandomSource;
use vault_domain::audit::Event;
use vault_domain::clock::Clock;
use vault_domain::lifecycle::LedgerEntry;
use vault_domain::ports::KeyProvider;
use vault_domain::verify::LogVerifier;
use vault_storage::backup::{Kind, Restore, RestoreStart, RowCounts, TABLES, Table, Value};
use vault_storage::{Engine, SCHEMA_VERSION, SqlStore, StoreOptions};

use crate::app::{KeyProviderConfig, StartError, VaultConfig, secret_from_env, write_private};
use crate::keys::{KeyringPaths, LocalKeys, protector};

/// The archive's format name.
pub const FORMAT: &str = "reporter-vault-backup";
/// The archive's format version.
pub const FORMAT_VERSION: u32 = 1;
/// No line of a real archive comes near this (the largest rows are policy texts).
const MAX_LINE: u64 = 64 << 20;
/// The passphrase variable (`RV_BACKUP_PASSPHRASE_FILE` names a private file holding it).
const PASSPHRASE_VAR: &str = "RV_BACKUP_PASSPHRASE";

/// `reporter-vault backup`.
#[derive(Args, Debug)]
pub struct BackupOpts {
    /// The archive to write (age-encrypted, mode 0600; written beside it, fsynced, then
    /// renamed over it).
    #[arg(long)]
    pub out: PathBuf,
    /// Encrypt to this age X25519 recipient (`age1…`). Repeatable.
    #[arg(long = "recipient", value_name = "AGE_RECIPIENT")]
    pub recipients: Vec<String>,
    /// Encrypt to every recipient in this file (one `age1…` per line, `#` comments).
    /// Without recipients, the passphrase in RV_BACKUP_PASSPHRASE_FILE is used (scrypt).
    #[arg(long, env = "RV_BACKUP_RECIPIENTS_FILE")]
    pub recipients_file: Option<PathBuf>,
}

/// `reporter-vault restore`.
#[derive(Args, Debug)]
pub struct RestoreOpts {
    /// The archive to restore.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// age identity file to decrypt with (repeatable). Without one, the passphrase in
    /// RV_BACKUP_PASSPHRASE_FILE is used. The erasure ledger (`--erasure-ledger`, default
    /// DATA_DIR/erasure-ledger.jsonl) must exist: every erasure it records is applied again
    /// after the restore; an empty file means no erasures.
    #[arg(
        long = "identity",
        env = "RV_BACKUP_IDENTITY_FILE",
        value_name = "FILE"
    )]
    pub identities: Vec<PathBuf>,
}

fn failed(msg: impl std::fmt::Display) -> StartError {
    StartError::Audit(format!("backup failed: {msg}"))
}

fn refused(msg: impl std::fmt::Display) -> StartError {
    StartError::Audit(format!("restore refused: {msg}"))
}

fn io_ctx(context: String) -> impl FnOnce(std::io::Error) -> StartError {
    move |source| StartError::Io { context, source }
}

/// Prints one line on stdout; a closed stdout is not worth a panic.
fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
}

fn bar(len: u64, what: &'static str) -> ProgressBar {
    // Drawn on stderr only when it is a terminal.
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

// ------------------------------------------------------------------------------------------
// Store and keys
// ------------------------------------------------------------------------------------------

/// The store's URL and engine. For the embedded default, `create` makes an empty private
/// database file if there is none (restore); otherwise a missing file is an error (backup).
fn store_url(cfg: &VaultConfig, create: bool) -> Result<(String, Engine, bool), StartError> {
    match &cfg.database_url {
        Some(url) => {
            let engine = Engine::of_url(url).ok_or_else(|| {
                StartError::Config("RV_DATABASE_URL must start with sqlite: or postgres:".into())
            })?;
            Ok((url.clone(), engine, true))
        }
        None => {
            let db = cfg.data_dir.join("vault.db");
            let existed = db.exists();
            if !existed {
                if !create {
                    return Err(StartError::Config(format!(
                        "there is no store at {}: nothing to back up (set --data-dir or \
                         --database-url)",
                        db.display()
                    )));
                }
                // Created private first, so SQLite's -wal and -shm files are private too.
                write_private(&db, b"")?;
            }
            let mode = if create { "?mode=rwc" } else { "" };
            Ok((
                format!("sqlite://{}{mode}", db.display()),
                Engine::Sqlite,
                existed,
            ))
        }
    }
}

/// The configured key provider's log keys, opened as the service opens them but never
/// created: the keyring (or the HSM's keys) must be the ones the store was sealed with.
async fn open_log_keys(
    cfg: &VaultConfig,
    engine: Engine,
    rng: Arc<dyn RandomSource>,
) -> Result<Arc<dyn KeyProvider>, StartError> {
    if let KeyProviderConfig::Pkcs11(hsm) = &cfg.ops.key_provider {
        let hsm = hsm.clone();
        let origin = cfg.log_origin.clone();
        // Module loading and login block: keep them off the async workers.
        let keys = tokio::task::spawn_blocking(move || {
            vault_hsm::Pkcs11Keys::open(&hsm, rng, origin.as_deref())
        })
        .await
        .map_err(|e| StartError::Config(format!("PKCS#11: {e}")))?
        .map_err(|e| StartError::Config(format!("PKCS#11: {e}")))?;
        return Ok(Arc::new(keys));
    }
    let paths = KeyringPaths::in_dir(&cfg.data_dir);
    if !paths.keyring.exists() {
        return Err(StartError::Config(format!(
            "{} is missing. The keyring is not in the archive (it is backed up separately): \
             put the keyring the store was sealed with, and its protector, in the data directory",
            paths.keyring.display()
        )));
    }
    let passphrase = cfg
        .passphrase
        .as_ref()
        .map(|p| SecretString::from(p.expose_secret().to_owned()));
    let protector = protector(passphrase, &paths, engine == Engine::Sqlite)?;
    let keyring = Keyring::load(&paths.keyring, &protector)?;
    let keys = LocalKeys::new(keyring, rng, cfg.log_origin.as_deref())
        .map_err(|e| StartError::Keyring(vault_crypto::KeyringError::from(e)))?;
    Ok(Arc::new(keys))
}

fn not_empty(occupied: &RowCounts) -> StartError {
    let list: Vec<String> = occupied.iter().map(|(t, n)| format!("{t}: {n}")).collect();
    refused(format!(
        "the target store is not empty ({}). Restore only into an empty store (a new \
         database, or a data directory without vault.db): it never merges",
        list.join(", ")
    ))
}

// ------------------------------------------------------------------------------------------
// The archive: header, rows, writer and reader
// ------------------------------------------------------------------------------------------

/// The first line of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// `header`.
    #[serde(rename = "type")]
    pub kind: String,
    /// [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The store's schema version (`rv_schema_migrations`).
    pub schema_version: i64,
    /// The engine the snapshot was read from.
    pub engine: String,
    /// When the backup was taken (RFC 3339, UTC).
    pub created_at: String,
    /// Events in the access trail at the snapshot.
    pub tree_size: u64,
    /// Its root (hex).
    pub tree_root: String,
    /// The log's note verifier key.
    pub log_verifier_key: String,
    /// Every table, in load order.
    pub tables: Vec<TableHeader>,
}

/// One table in the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableHeader {
    /// Its name.
    pub name: String,
    /// `[name, kind]` per column, in row order.
    pub columns: Vec<(String, String)>,
    /// Rows in the archive.
    pub rows: u64,
}

fn table_header(t: &Table, rows: u64) -> TableHeader {
    TableHeader {
        name: t.name.to_owned(),
        columns: t
            .columns
            .iter()
            .map(|c| (c.name.to_owned(), c.kind.as_str().to_owned()))
            .collect(),
        rows,
    }
}

/// The lines after the header that are not rows.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Marker {
    Table { name: String, rows: u64 },
    Checkpoint { note: String },
    End { sha256: String },
}

fn encode_row(row: Vec<Value>) -> Json {
    Json::Array(
        row.into_iter()
            .map(|v| match v {
                Value::Null => Json::Null,
                Value::Int(i) => Json::from(i),
                Value::Text(s) => Json::String(s),
                Value::Blob(b) => Json::String(B64.encode(b)),
            })
            .collect(),
    )
}

fn decode_row(t: &Table, line: &[u8]) -> Result<Vec<Value>, String> {
    let values: Vec<Json> = serde_json::from_slice(line)
        .map_err(|_| format!("a row of {} is not a JSON array", t.name))?;
    if values.len() != t.columns.len() {
        return Err(format!(
            "a row of {} has {} values for {} columns",
            t.name,
            values.len(),
            t.columns.len()
        ));
    }
    t.columns
        .iter()
        .zip(values)
        .map(|(c, v)| {
            match (c.kind, v) {
                (_, Json::Null) => Some(Value::Null),
                (Kind::Int, Json::Number(n)) => n.as_i64().map(Value::Int),
                (Kind::Text, Json::String(s)) => Some(Value::Text(s)),
                (Kind::Blob, Json::String(s)) => B64.decode(s).ok().map(Value::Blob),
                _ => None,
            }
            .ok_or_else(|| {
                format!(
                    "{}.{} holds a value that is not {}",
                    t.name,
                    c.name,
                    c.kind.as_str()
                )
            })
        })
        .collect()
}

/// Writes lines and hashes them for the trailer.
struct LineSink<W: Write> {
    out: W,
    sha: ring::digest::Context,
}

impl<W: Write> LineSink<W> {
    fn new(out: W) -> Self {
        Self {
            out,
            sha: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    fn line(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.out.write_all(b"\n")?;
        self.sha.update(bytes);
        self.sha.update(b"\n");
        Ok(())
    }

    fn json(&mut self, v: &impl Serialize) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(v).map_err(std::io::Error::other)?;
        self.line(&bytes)
    }
}

/// One item of an archive after its header.
enum Item {
    Row(&'static Table, Vec<Value>),
    Checkpoint(String),
    /// The trailer, already checked against the bytes read.
    End([u8; 32]),
}

enum ReadState {
    Tables { next: usize, left: u64 },
    Checkpoint,
    End,
    Done,
}

/// Decrypts and parses an archive as a stream, checking its structure and trailer.
struct ArchiveReader {
    input: Box<dyn BufRead>,
    sha: ring::digest::Context,
    header: Header,
    header_line: Vec<u8>,
    state: ReadState,
    table: Option<&'static Table>,
    buf: Vec<u8>,
}

fn age_error(e: age::DecryptError) -> StartError {
    use age::DecryptError as D;
    refused(match e {
        D::NoMatchingKeys | D::DecryptionFailed | D::KeyDecryptionFailed => {
            "the archive cannot be decrypted with the given identity or passphrase (wrong \
             --identity, or wrong RV_BACKUP_PASSPHRASE_FILE)"
                .to_owned()
        }
        D::InvalidMac => "the archive's age header failed authentication: wrong passphrase, or \
                          the file was altered"
            .to_owned(),
        D::ExcessiveWork { .. } => {
            "the archive's passphrase work factor is far above what this machine allows".to_owned()
        }
        D::InvalidHeader | D::UnknownFormat => {
            "the file is not an age-encrypted reporter-vault archive".to_owned()
        }
        other => format!("the archive could not be decrypted: {other}"),
    })
}

impl ArchiveReader {
    fn open(
        path: &Path,
        identities: &[Box<dyn age::Identity + Send + Sync>],
    ) -> Result<Self, StartError> {
        let file = File::open(path).map_err(io_ctx(format!("reading {}", path.display())))?;
        let decryptor = age::Decryptor::new_buffered(BufReader::new(file)).map_err(age_error)?;
        let reader = decryptor
            .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(age_error)?;
        let mut input: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 16, reader));
        let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = Vec::new();
        if !read_line(&mut input, &mut buf)? {
            return Err(refused("the archive is empty"));
        }
        sha.update(&buf);
        sha.update(b"\n");
        let header: Header = serde_json::from_slice(&buf).map_err(|_| {
            refused("the archive does not start with a reporter-vault backup header")
        })?;
        if header.kind != "header" || header.format != FORMAT {
            return Err(refused(
                "the archive does not start with a reporter-vault backup header",
            ));
        }
        if header.version != FORMAT_VERSION {
            return Err(refused(format!(
                "the archive is format version {}; this build reads version {FORMAT_VERSION}",
                header.version
            )));
        }
        if header.schema_version != SCHEMA_VERSION {
            return Err(refused(format!(
                "the archive holds schema version {} but this build's schema is version \
                 {SCHEMA_VERSION}: restore with the build that made the backup, then upgrade",
                header.schema_version
            )));
        }
        let expected: Vec<TableHeader> = TABLES
            .iter()
            .zip(&header.tables)
            .map(|(t, h)| table_header(t, h.rows))
            .collect();
        if header.tables.len() != TABLES.len() || expected != header.tables {
            return Err(refused(
                "the archive's tables or columns differ from this build's schema",
            ));
        }
        Ok(Self {
            input,
            sha,
            header,
            header_line: buf.clone(),
            state: ReadState::Tables { next: 0, left: 0 },
            table: None,
            buf,
        })
    }

    fn line(&mut self, what: &str) -> Result<(), StartError> {
        if !read_line(&mut self.input, &mut self.buf)? {
            return Err(refused(format!(
                "the archive ends early: {what} is missing"
            )));
        }
        Ok(())
    }

    fn hashed_line(&mut self, what: &str) -> Result<(), StartError> {
        self.line(what)?;
        self.sha.update(&self.buf);
        self.sha.update(b"\n");
        Ok(())
    }

    fn marker(&self, what: &str) -> Result<Marker, StartError> {
        serde_json::from_slice(&self.buf)
            .map_err(|_| refused(format!("the archive is malformed: expected {what}")))
    }

    fn next(&mut self) -> Result<Option<Item>, StartError> {
        loop {
            match self.state {
                ReadState::Tables { next, left } if left > 0 => {
                    let t = self
                        .table
                        .ok_or_else(|| refused("the archive is malformed"))?;
                    self.hashed_line(&format!("a row of {}", t.name))?;
                    let row = decode_row(t, &self.buf).map_err(refused)?;
                    self.state = ReadState::Tables {
                        next,
                        left: left - 1,
                    };
                    return Ok(Some(Item::Row(t, row)));
                }
                ReadState::Tables { next, .. } => {
                    let (Some(t), Some(rows_expected)) = (
                        TABLES.get(next),
                        self.header.tables.get(next).map(|h| h.rows),
                    ) else {
                        self.state = ReadState::Checkpoint;
                        continue;
                    };
                    let what = format!("the start of table {}", t.name);
                    self.hashed_line(&what)?;
                    match self.marker(&what)? {
                        Marker::Table { name, rows } if name == t.name && rows == rows_expected => {
                            self.table = Some(t);
                            self.state = ReadState::Tables {
                                next: next + 1,
                                left: rows,
                            };
                        }
                        _ => {
                            return Err(refused(format!(
                                "the archive is malformed: expected {what} with {} rows \
                                 (rows were added or removed)",
                                rows_expected
                            )));
                        }
                    }
                }
                ReadState::Checkpoint => {
                    self.hashed_line("the snapshot checkpoint")?;
                    let Marker::Checkpoint { note } = self.marker("the snapshot checkpoint")?
                    else {
                        return Err(refused(
                            "the archive is malformed: expected the snapshot checkpoint \
                             (rows were added?)",
                        ));
                    };
                    self.state = ReadState::End;
                    return Ok(Some(Item::Checkpoint(note)));
                }
                ReadState::End => {
                    self.line("the SHA-256 trailer")?;
                    let Marker::End { sha256 } = self.marker("the SHA-256 trailer")? else {
                        return Err(refused("the archive is malformed: expected its trailer"));
                    };
                    let digest = self.sha.clone().finish();
                    if hex::decode(&sha256).ok().as_deref() != Some(digest.as_ref()) {
                        return Err(refused(
                            "the archive's content does not match its SHA-256 trailer: it was \
                             altered or damaged",
                        ));
                    }
                    if read_line(&mut self.input, &mut self.buf)? {
                        return Err(refused("the archive has data after its trailer"));
                    }
                    self.state = ReadState::Done;
                    let mut out = [0u8; 32];
                    out.copy_from_slice(digest.as_ref());
                    return Ok(Some(Item::End(out)));
                }
                ReadState::Done => return Ok(None),
            }
        }
    }
}

/// Reads one `\n`-terminated line into `buf` (without the newline); `false` at the end.
fn read_line(input: &mut Box<dyn BufRead>, buf: &mut Vec<u8>) -> Result<bool, StartError> {
    buf.clear();
    let n = input
        .as_mut()
        .take(MAX_LINE + 1)
        .read_until(b'\n', buf)
        .map_err(|_| {
            refused(
                "the archive failed authentication while decrypting: it was altered or is \
                 truncated",
            )
        })?;
    if n == 0 {
        return Ok(false);
    }
    if buf.pop() != Some(b'\n') {
        return Err(refused(
            "the archive is malformed: a line is unterminated or too long",
        ));
    }
    Ok(true)
}

// ------------------------------------------------------------------------------------------
// backup
// ------------------------------------------------------------------------------------------

enum Protection {
    Recipients(Vec<age::x25519::Recipient>),
    Passphrase(SecretString),
}

fn parse_recipient(s: &str, origin: &str) -> Result<age::x25519::Recipient, StartError> {
    // Never echoed: a secret key pasted by mistake must not reach the terminal or a log.
    age::x25519::Recipient::from_str(s.trim())
        .map_err(|_| StartError::Config(format!("{origin}: not an age X25519 recipient (age1…)")))
}

fn protection(opts: &BackupOpts) -> Result<Protection, StartError> {
    let mut recipients = Vec::new();
    for r in &opts.recipients {
        recipients.push(parse_recipient(r, "--recipient")?);
    }
    if let Some(path) = &opts.recipients_file {
        let text =
            std::fs::read_to_string(path).map_err(io_ctx(format!("reading {}", path.display())))?;
        let before = recipients.len();
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            recipients.push(parse_recipient(
                l,
                &format!("{} line {}", path.display(), i + 1),
            )?);
        }
        if recipients.len() == before {
            return Err(StartError::Config(format!(
                "{} names no recipient",
                path.display()
            )));
        }
    }
    let passphrase = secret_from_env(PASSPHRASE_VAR)?;
    match (recipients.is_empty(), passphrase) {
        (false, Some(_)) => Err(StartError::Config(
            "give either age recipients (--recipient, --recipients-file) or \
             RV_BACKUP_PASSPHRASE_FILE, not both: age encrypts to a passphrase alone"
                .into(),
        )),
        (false, None) => Ok(Protection::Recipients(recipients)),
        (true, Some(p)) => Ok(Protection::Passphrase(p)),
        (true, None) => Err(StartError::Config(
            "the archive is always encrypted: give --recipient age1… (repeatable), \
             --recipients-file FILE, or RV_BACKUP_PASSPHRASE_FILE"
                .into(),
        )),
    }
}

/// Removes a temporary file unless disarmed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// What a backup wrote.
#[derive(Debug)]
pub struct BackupSummary {
    /// The header written.
    pub header: Header,
    /// Bytes of the encrypted file.
    pub bytes: u64,
}

/// `reporter-vault backup`: a consistent snapshot of the whole store, read while the service
/// keeps serving, encrypted and written atomically.
pub async fn backup(
    cfg: &VaultConfig,
    opts: &BackupOpts,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn RandomSource>,
) -> Result<BackupSummary, StartError> {
    let protection = protection(opts)?;
    let (url, engine, _) = store_url(cfg, false)?;
    let keys = open_log_keys(cfg, engine, rng).await?;
    let store = SqlStore::connect(
        &url,
        &StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        },
    )
    .await?;
    let written = write_archive(
        &store,
        engine,
        keys.as_ref(),
        &protection,
        &opts.out,
        clock.as_ref(),
    )
    .await;
    store.close().await;
    let summary = written?;
    let h = &summary.header;
    let rows: u64 = h.tables.iter().map(|t| t.rows).sum();
    say(&format!(
        "backup written: {} ({} bytes, age-encrypted); {} store, schema {}, {} tables, {rows} \
         rows; access trail {} events, root {}",
        opts.out.display(),
        summary.bytes,
        h.engine,
        h.schema_version,
        h.tables.len(),
        h.tree_size,
        h.tree_root
    ));
    Ok(summary)
}

async fn write_archive(
    store: &SqlStore,
    engine: Engine,
    keys: &dyn KeyProvider,
    protection: &Protection,
    out: &Path,
    clock: &dyn Clock,
) -> Result<BackupSummary, StartError> {
    let name = out
        .file_name()
        .ok_or_else(|| StartError::Config("--out must name a file".into()))?;
    let dir = parent_dir(out);
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_ctx(format!("creating {}", tmp.display())))?;
    let mut guard = TempFile(Some(tmp.clone()));
    let encryptor = match protection {
        Protection::Recipients(rs) => {
            age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| failed(format!("age: {e}")))?
        }
        Protection::Passphrase(p) => age::Encryptor::with_user_passphrase(p.clone()),
    };
    let write_err = io_ctx(format!("writing {}", tmp.display()));
    let stream = encryptor
        .wrap_output(BufWriter::with_capacity(1 << 16, file))
        .map_err(io_ctx(format!("writing {}", tmp.display())))?;
    let mut sink = LineSink::new(stream);

    let (mut snap, info) = store.snapshot().await?;
    let header = Header {
        kind: "header".into(),
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        schema_version: info.schema_version,
        engine: engine.as_str().into(),
        created_at: clock
            .now()
            .to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        tree_size: info.tree_size,
        tree_root: hex::encode(info.tree_root),
        log_verifier_key: keys.log_verifier_key(),
        tables: TABLES
            .iter()
            .zip(&info.counts)
            .map(|(t, (_, n))| table_header(t, *n))
            .collect(),
    };
    let result: Result<(), StartError> = async {
        sink.json(&header)
            .map_err(io_ctx(format!("writing {}", tmp.display())))?;
        let mut tree = Frontier::new();
        let pb = bar(info.counts.iter().map(|(_, n)| n).sum(), "rows");
        for (t, (_, counted)) in TABLES.iter().zip(&info.counts) {
            sink.json(&json!({"type": "table", "name": t.name, "rows": counted}))
                .map_err(io_ctx(format!("writing {}", tmp.display())))?;
            let leaf_col = (t.name == "audit_events")
                .then(|| t.column("leaf"))
                .flatten();
            let read = snap
                .rows(t, |row: Vec<Value>| -> Result<(), StartError> {
                    if let Some(Value::Blob(leaf)) = leaf_col.and_then(|i| row.get(i)) {
                        tree.push(leaf_hash(leaf))
                            .map_err(|_| failed("the access trail is too large"))?;
                    }
                    let bytes = serde_json::to_vec(&encode_row(row))
                        .map_err(|e| failed(format!("encoding a row: {e}")))?;
                    sink.line(&bytes)
                        .map_err(io_ctx(format!("writing {}", tmp.display())))?;
                    pb.inc(1);
                    Ok(())
                })
                .await?;
            if read != *counted {
                return Err(failed(format!(
                    "table {}: {read} rows read but {counted} counted in the same snapshot",
                    t.name
                )));
            }
        }
        pb.finish_and_clear();
        if tree.size() != info.tree_size || tree.root() != info.tree_root {
            return Err(failed(
                "the store's access-trail events do not match its stored tree: run \
                 `reporter-vault audit verify`",
            ));
        }
        Ok(())
    }
    .await;
    snap.finish().await?;
    result?;
    // Every event in the archive is covered by a signature, including those after the store's
    // newest checkpoint.
    let note = keys
        .sign_checkpoint(&Checkpoint {
            origin: keys.log_origin(),
            size: info.tree_size,
            root: info.tree_root,
        })
        .map_err(|e| failed(format!("signing the snapshot checkpoint: {e}")))?;
    sink.json(&json!({"type": "checkpoint", "note": note}))
        .map_err(io_ctx(format!("writing {}", tmp.display())))?;
    let digest = sink.sha.clone().finish();
    let end = serde_json::to_vec(&json!({"type": "end", "sha256": hex::encode(digest.as_ref())}))
        .map_err(|e| failed(format!("encoding the trailer: {e}")))?;
    let mut stream = sink.out;
    stream
        .write_all(&end)
        .and_then(|()| stream.write_all(b"\n"))
        .map_err(io_ctx(format!("writing {}", tmp.display())))?;
    let buffered = stream.finish().map_err(write_err)?;
    let file = buffered.into_inner().map_err(|e| StartError::Io {
        context: format!("writing {}", tmp.display()),
        source: e.into_error(),
    })?;
    file.sync_all()
        .map_err(io_ctx(format!("syncing {}", tmp.display())))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);
    std::fs::rename(&tmp, out).map_err(io_ctx(format!("renaming to {}", out.display())))?;
    guard.0 = None;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_ctx(format!("syncing {}", dir.display())))?;
    Ok(BackupSummary { header, bytes })
}

// ------------------------------------------------------------------------------------------
// restore: verification (first pass)
// ------------------------------------------------------------------------------------------

/// Per-level digests of tree nodes `(index, hash)` in index order: equal digests mean equal
/// node sets, in O(1) memory.
struct NodeDigests {
    levels: Vec<(u64, ring::digest::Context)>,
}

impl NodeDigests {
    fn new() -> Self {
        Self {
            levels: (0..64)
                .map(|_| (0, ring::digest::Context::new(&ring::digest::SHA256)))
                .collect(),
        }
    }

    fn add(&mut self, level: u32, index: u64, hash: &[u8]) -> bool {
        let Some((n, ctx)) = self.levels.get_mut(level as usize) else {
            return false;
        };
        *n += 1;
        ctx.update(&index.to_be_bytes());
        ctx.update(hash);
        true
    }

    fn finish(self) -> Vec<(u64, Vec<u8>)> {
        self.levels
            .into_iter()
            .map(|(n, c)| (n, c.finish().as_ref().to_vec()))
            .collect()
    }
}

/// The leak-tracing index (`audit_field_macs`) as a digest of `(idx, field, mac)`, sorted
/// within each event, so the archive's rows can be compared with what the leaves disclose.
struct MacDigest {
    ctx: ring::digest::Context,
    rows: u64,
    group: Option<(i64, Vec<(String, String)>)>,
}

impl MacDigest {
    fn new() -> Self {
        Self {
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            rows: 0,
            group: None,
        }
    }

    fn add(&mut self, idx: i64, field: String, mac: String) {
        match &mut self.group {
            Some((i, rows)) if *i == idx => rows.push((field, mac)),
            _ => {
                self.flush();
                self.group = Some((idx, vec![(field, mac)]));
            }
        }
    }

    fn flush(&mut self) {
        if let Some((idx, mut rows)) = self.group.take() {
            rows.sort();
            for (f, m) in rows {
                self.ctx.update(&idx.to_be_bytes());
                self.ctx.update(f.as_bytes());
                self.ctx.update(&[0]);
                self.ctx.update(m.as_bytes());
                self.ctx.update(&[0]);
                self.rows += 1;
            }
        }
    }

    fn finish(mut self) -> (u64, Vec<u8>) {
        self.flush();
        (self.rows, self.ctx.finish().as_ref().to_vec())
    }
}

fn col<'a>(t: &Table, row: &'a [Value], name: &str) -> &'a Value {
    t.column(name)
        .and_then(|i| row.get(i))
        .unwrap_or(&Value::Null)
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn text_of(v: &Value) -> Option<&str> {
    match v {
        Value::Text(s) => Some(s),
        _ => None,
    }
}

fn blob_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Blob(b) => Some(b),
        _ => None,
    }
}

/// The access trail's checks over one streaming pass.
struct TrailCheck {
    verifier: NoteVerifier,
    notes: Vec<String>,
    log: Option<LogVerifier>,
    tree: Frontier,
    expected_nodes: NodeDigests,
    archived_nodes: NodeDigests,
    expected_macs: MacDigest,
    archived_macs: MacDigest,
}

fn altered(msg: impl std::fmt::Display) -> StartError {
    refused(format!(
        "{msg}: the archive was altered or is not from this vault"
    ))
}

impl TrailCheck {
    fn new(verifier: NoteVerifier) -> Self {
        Self {
            verifier,
            notes: Vec::new(),
            log: None,
            tree: Frontier::new(),
            expected_nodes: NodeDigests::new(),
            archived_nodes: NodeDigests::new(),
            expected_macs: MacDigest::new(),
            archived_macs: MacDigest::new(),
        }
    }

    fn log(&mut self) -> Result<&mut LogVerifier, StartError> {
        if self.log.is_none() {
            let v = LogVerifier::new(self.verifier.clone(), &self.notes)
                .map_err(|e| altered(format!("the access trail does not verify ({e})")))?;
            self.log = Some(v);
        }
        self.log
            .as_mut()
            .ok_or_else(|| refused("the access trail verifier is missing"))
    }

    fn row(&mut self, t: &'static Table, row: &[Value]) -> Result<(), StartError> {
        match t.name {
            "audit_checkpoints" => self.checkpoint(t, row),
            "audit_events" => self.event(t, row),
            "audit_field_macs" => {
                let (Some(idx), Some(field), Some(mac)) = (
                    int_of(col(t, row, "idx")),
                    text_of(col(t, row, "field")),
                    text_of(col(t, row, "mac")),
                ) else {
                    return Err(altered("an audit_field_macs row is incomplete"));
                };
                self.archived_macs
                    .add(idx, field.to_owned(), mac.to_owned());
                Ok(())
            }
            "audit_nodes" => {
                let (Some(level), Some(idx), Some(hash)) = (
                    int_of(col(t, row, "level")),
                    int_of(col(t, row, "idx")),
                    blob_of(col(t, row, "hash")),
                ) else {
                    return Err(altered("an audit_nodes row is incomplete"));
                };
                let ok = u32::try_from(level)
                    .ok()
                    .zip(u64::try_from(idx).ok())
                    .is_some_and(|(l, i)| hash.len() == 32 && self.archived_nodes.add(l, i, hash));
                if !ok {
                    return Err(altered("an audit_nodes row is out of range"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn checkpoint(&mut self, t: &Table, row: &[Value]) -> Result<(), StartError> {
        let (Some(size), Some(root), Some(note)) = (
            int_of(col(t, row, "size")),
            blob_of(col(t, row, "root")),
            text_of(col(t, row, "note")),
        ) else {
            return Err(altered("a stored checkpoint row is incomplete"));
        };
        let cp = self.verifier.verify(note).map_err(|_| {
            altered(format!(
                "the stored checkpoint for tree size {size} does not verify with this \
                 keyring's log key"
            ))
        })?;
        if i64::try_from(cp.size).ok() != Some(size) || cp.root.as_slice() != root {
            return Err(altered(format!(
                "the stored checkpoint for tree size {size}: its size or root column differs \
                 from its signed note"
            )));
        }
        self.notes.push(note.to_owned());
        Ok(())
    }

    fn event(&mut self, t: &Table, row: &[Value]) -> Result<(), StartError> {
        let position = self.tree.size();
        let (Some(idx), Some(leaf)) = (int_of(col(t, row, "idx")), blob_of(col(t, row, "leaf")))
        else {
            return Err(altered(format!(
                "access trail event {position} is incomplete"
            )));
        };
        if u64::try_from(idx).ok() != Some(position) {
            return Err(altered(format!(
                "the access trail has a gap at index {position} (the next event is {idx}): \
                 events were removed, added or reordered"
            )));
        }
        let ev = Event::parse_leaf(leaf).ok_or_else(|| {
            altered(format!(
                "access trail event {position} is not a canonical event encoding"
            ))
        })?;
        self.log()?
            .push(leaf)
            .map_err(|e| altered(format!("the access trail does not verify ({e})")))?;
        let nodes = self
            .tree
            .push(leaf_hash(leaf))
            .map_err(|_| altered("the access trail is too large"))?;
        for (l, i, h) in nodes {
            self.expected_nodes.add(l, i, &h);
        }
        // The columns copied from the leaf for queries must say what the leaf says.
        let time = if ev.time.is_empty() {
            Some(0)
        } else {
            time::OffsetDateTime::parse(&ev.time, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp())
        };
        let record_col = text_of(col(t, row, "record"));
        let same = time.is_some()
            && int_of(col(t, row, "time")) == time
            && text_of(col(t, row, "action")) == Some(ev.action.as_str())
            && text_of(col(t, row, "actor_id")) == ev.actor_id.as_deref()
            && text_of(col(t, row, "disclosure_id")) == ev.disclosure_id.as_deref()
            && text_of(col(t, row, "pseudonym")) == ev.pseudonym.as_deref()
            // Events appended before the record column existed (schema 5) have it NULL.
            && (record_col == ev.record.as_deref() || record_col.is_none());
        if !same {
            return Err(altered(format!(
                "access trail event {position}: its indexed columns differ from its leaf"
            )));
        }
        for m in &ev.disclosed {
            self.expected_macs
                .add(idx, m.field.as_str().to_owned(), m.mac.clone());
        }
        Ok(())
    }

    /// Ends the pass: every checkpoint reached, the tree and the index equal to what the
    /// leaves give, the header's head and the snapshot checkpoint equal to the log's.
    fn finish(
        mut self,
        header: &Header,
        snapshot_note: Option<&str>,
    ) -> Result<vault_domain::verify::VerifyReport, StartError> {
        self.log()?;
        let log = self
            .log
            .take()
            .ok_or_else(|| refused("the access trail verifier is missing"))?;
        let report = log
            .finish()
            .map_err(|e| altered(format!("the access trail does not verify ({e})")))?;
        if report.events != header.tree_size || hex::encode(report.root) != header.tree_root {
            return Err(altered(format!(
                "the header names a trail of {} events with root {}, but the events give {} \
                 with root {}",
                header.tree_size,
                header.tree_root,
                report.events,
                hex::encode(report.root)
            )));
        }
        if self.expected_nodes.finish() != self.archived_nodes.finish() {
            return Err(altered(
                "the stored Merkle tree nodes (audit_nodes) differ from the tree of the events",
            ));
        }
        if self.expected_macs.finish() != self.archived_macs.finish() {
            return Err(altered(
                "the leak-tracing index (audit_field_macs) differs from what the events disclose",
            ));
        }
        let note = snapshot_note.ok_or_else(|| refused("the snapshot checkpoint is missing"))?;
        let cp = self.verifier.verify(note).map_err(|_| {
            altered("the snapshot checkpoint does not verify with this keyring's log key")
        })?;
        if cp.size != report.events || cp.root != report.root {
            return Err(altered(format!(
                "the signed snapshot checkpoint names a trail of {} events with root {}, but \
                 the archive's events give {} with root {}",
                cp.size,
                hex::encode(cp.root),
                report.events,
                hex::encode(report.root)
            )));
        }
        Ok(report)
    }
}

/// What the first pass established.
struct Verified {
    header: Header,
    header_line: Vec<u8>,
    digest: [u8; 32],
    report: vault_domain::verify::VerifyReport,
    /// Sealed envelopes per KEK version.
    envelopes_per_kek: std::collections::BTreeMap<i64, u64>,
}

fn verify_archive(
    path: &Path,
    identities: &[Box<dyn age::Identity + Send + Sync>],
    verifier_key: &str,
) -> Result<Verified, StartError> {
    let mut r = ArchiveReader::open(path, identities)?;
    let header = r.header.clone();
    if header.log_verifier_key != verifier_key {
        return Err(refused(format!(
            "the archive's access trail is signed with the log key {}, but the keyring in this \
             data directory has {verifier_key}: restore with the keyring (and RV_LOG_ORIGIN) \
             the backup was made with",
            header.log_verifier_key
        )));
    }
    let verifier = NoteVerifier::parse(verifier_key)
        .map_err(|_| refused("the keyring's log verifier key does not parse"))?;
    let mut trail = TrailCheck::new(verifier);
    let mut snapshot_note = None;
    let mut digest = None;
    let mut envelopes_per_kek = std::collections::BTreeMap::new();
    let pb = bar(header.tables.iter().map(|t| t.rows).sum(), "rows verified");
    while let Some(item) = r.next()? {
        match item {
            Item::Row(t, row) => {
                if t.name == "reporters"
                    && matches!(col(t, &row, "envelope"), Value::Blob(_))
                    && let Some(v) = int_of(col(t, &row, "kek_version"))
                {
                    *envelopes_per_kek.entry(v).or_insert(0u64) += 1;
                }
                trail.row(t, &row)?;
                pb.inc(1);
            }
            Item::Checkpoint(note) => snapshot_note = Some(note),
            Item::End(d) => digest = Some(d),
        }
    }
    pb.finish_and_clear();
    let digest = digest.ok_or_else(|| refused("the archive has no trailer"))?;
    let report = trail.finish(&header, snapshot_note.as_deref())?;
    Ok(Verified {
        header,
        header_line: r.header_line,
        digest,
        report,
        envelopes_per_kek,
    })
}

// ------------------------------------------------------------------------------------------
// restore: loading (second pass) and the checks after it
// ------------------------------------------------------------------------------------------

fn read_ledger(path: &Path) -> Result<Vec<LedgerEntry>, StartError> {
    if !path.exists() {
        return Err(refused(format!(
            "the erasure ledger {} does not exist. Restore applies again every erasure the \
             ledger records, so that records erased after this backup was taken stay erased; \
             without the ledger it cannot know them. Point --erasure-ledger \
             (RV_ERASURE_LEDGER) at the ledger kept outside the database. If no record was \
             ever erased, create an empty file: an empty ledger means \"no erasures\"",
            path.display()
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(io_ctx(format!("reading {}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || {
            refused(format!(
                "{} line {}: not an erasure ledger entry \
                 ({{\"record_id\":\"rec_…\",\"erasure_id\":\"era_…\",\"erased_at\":\"RFC 3339\"}})",
                path.display(),
                i + 1
            ))
        };
        let e: LedgerEntry = serde_json::from_str(line).map_err(|_| bad())?;
        let when_ok = time::OffsetDateTime::parse(
            &e.erased_at,
            &time::format_description::well_known::Rfc3339,
        )
        .is_ok();
        if !e.record_id.starts_with("rec_") || !e.erasure_id.starts_with("era_") || !when_ok {
            return Err(bad());
        }
        out.push(e);
    }
    Ok(out)
}

fn check_private_file(path: &Path) -> Result<(), StartError> {
    let meta = std::fs::metadata(path).map_err(io_ctx(format!("reading {}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StartError::Config(format!(
            "{} is readable by group or others (mode {mode:04o}); chmod 600 it",
            path.display()
        )));
    }
    Ok(())
}

fn decryption_identities(
    opts: &RestoreOpts,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, StartError> {
    let mut out: Vec<Box<dyn age::Identity + Send + Sync>> = Vec::new();
    for path in &opts.identities {
        check_private_file(path)?;
        let file =
            age::IdentityFile::from_file(path.to_string_lossy().into_owned()).map_err(|_| {
                StartError::Config(format!("{} is not an age identity file", path.display()))
            })?;
        let ids = file.into_identities().map_err(|_| {
            StartError::Config(format!(
                "{} holds an identity type this build cannot use (X25519 only)",
                path.display()
            ))
        })?;
        out.extend(ids);
    }
    if let Some(p) = secret_from_env(PASSPHRASE_VAR)? {
        out.push(Box::new(age::scrypt::Identity::new(p)));
    }
    if out.is_empty() {
        return Err(StartError::Config(
            "restore needs --identity FILE (the age identity the backup was encrypted to) or \
             RV_BACKUP_PASSPHRASE_FILE"
                .into(),
        ));
    }
    Ok(out)
}

async fn load_rows(
    restore: &mut Restore,
    path: &Path,
    identities: &[Box<dyn age::Identity + Send + Sync>],
    verified: &Verified,
) -> Result<(), StartError> {
    let changed =
        || refused("the archive changed between verification and loading; nothing was written");
    let mut r = ArchiveReader::open(path, identities)?;
    if r.header_line != verified.header_line {
        return Err(changed());
    }
    let pb = bar(
        verified.header.tables.iter().map(|t| t.rows).sum(),
        "rows loaded",
    );
    while let Some(item) = r.next().map_err(|e| match e {
        StartError::Audit(m) => refused(format!("{m} (while loading; nothing was written)")),
        other => other,
    })? {
        match item {
            Item::Row(t, row) => {
                restore.insert(t, row).await?;
                pb.inc(1);
            }
            Item::Checkpoint(_) => {}
            Item::End(d) if d == verified.digest => {}
            Item::End(_) => return Err(changed()),
        }
    }
    pb.finish_and_clear();
    Ok(())
}

/// What a restore did.
#[derive(Debug)]
pub struct RestoreSummary {
    /// Rows loaded per table.
    pub rows: RowCounts,
    /// Events in the restored trail after erasures were applied again.
    pub events: u64,
    /// Ledger entries, and how many of them destroyed an envelope.
    pub ledger: (usize, usize),
}

/// `reporter-vault restore`: verifies the archive, loads it into an empty store in one
/// transaction, applies the erasure ledger again and verifies the store's trail.
pub async fn restore(
    cfg: &VaultConfig,
    opts: &RestoreOpts,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn RandomSource>,
) -> Result<RestoreSummary, StartError> {
    let ledger_path = cfg
        .ops
        .erasure_ledger
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("erasure-ledger.jsonl"));
    let ledger = read_ledger(&ledger_path)?;
    let identities = decryption_identities(opts)?;
    let engine = match &cfg.database_url {
        Some(u) => Engine::of_url(u).ok_or_else(|| {
            StartError::Config("RV_DATABASE_URL must start with sqlite: or postgres:".into())
        })?,
        None => Engine::Sqlite,
    };
    let keys = open_log_keys(cfg, engine, rng.clone()).await?;
    // Fail fast on a store in use, before the archive is read (checked again, under lock,
    // in the loading transaction).
    let existing = cfg.database_url.is_some() || cfg.data_dir.join("vault.db").exists();
    if existing {
        let (url, _, _) = store_url(cfg, true)?;
        let store = SqlStore::connect(&url, &StoreOptions::default()).await?;
        let occupied = store.occupied_tables().await;
        store.close().await;
        let occupied = occupied?;
        if !occupied.is_empty() {
            return Err(not_empty(&occupied));
        }
    }
    let verified = verify_archive(&opts.input, &identities, &keys.log_verifier_key())?;
    tracing::info!(
        events = verified.report.events,
        checkpoints = verified.report.checkpoints,
        "backup archive verified; loading"
    );
    // Envelopes wrapped under a KEK version the keys no longer hold (retired after the
    // backup, or another keyring) cannot be opened: restored anyway, and said loudly.
    let held: std::collections::BTreeSet<i64> = keys
        .key_versions()
        .map_err(|e| StartError::Config(format!("reading the key versions: {e}")))?
        .into_iter()
        .map(|k| i64::from(k.version))
        .collect();
    let unreadable: Vec<String> = verified
        .envelopes_per_kek
        .iter()
        .filter(|(v, _)| !held.contains(v))
        .map(|(v, n)| format!("{n} under KEK version {v}"))
        .collect();
    let unreadable = (!unreadable.is_empty()).then(|| {
        let msg = format!(
            "WARNING: the archive holds envelopes wrapped under KEK versions these keys do not \
             hold ({}): those identities cannot be opened. Restore the keyring backup from the \
             time of this archive to read them",
            unreadable.join(", ")
        );
        tracing::warn!("{msg}");
        msg
    });

    let (url, _, _) = store_url(cfg, true)?;
    let store = SqlStore::connect(&url, &StoreOptions::default()).await?;
    let loaded = async {
        store.migrate().await?;
        let mut restore = match store.begin_restore().await? {
            RestoreStart::Ready(r) => r,
            RestoreStart::NotEmpty(occupied) => return Err(not_empty(&occupied)),
        };
        if let Err(e) = load_rows(&mut restore, &opts.input, &identities, &verified).await {
            let _ = restore.rollback().await;
            return Err(e);
        }
        let rows = restore.commit().await?;
        let expected: Vec<u64> = verified.header.tables.iter().map(|t| t.rows).collect();
        let got: Vec<u64> = rows.iter().map(|(_, n)| *n).collect();
        if expected != got {
            return Err(StartError::Audit(
                "restore FAILED after commit: the rows loaded differ from the archive's counts"
                    .into(),
            ));
        }
        Ok(rows)
    }
    .await;
    store.close().await;
    let rows = loaded?;

    // Opened as the service opens it: the store is no longer empty, so nothing is bootstrapped.
    let opened = cfg.open(clock, rng).await?;
    let mut destroyed = 0usize;
    for e in &ledger {
        if opened
            .vault
            .reapply_erasure(&e.record_id, &e.erasure_id)
            .await?
        {
            destroyed += 1;
        }
    }
    let report = crate::audit_cli::verify_store(&opened, &[], false).await;
    opened.store.close().await;
    let report = report.map_err(|e| {
        StartError::Audit(format!(
            "the archive was restored, but the store's access trail does not verify: {e}"
        ))
    })?;
    let counts: Vec<String> = rows
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    say(&format!(
        "restored {} into the {} store: {}",
        opts.input.display(),
        engine.as_str(),
        counts.join(", ")
    ));
    say(&format!(
        "access trail verified: {} events, {} checkpoints, root {}",
        report.events,
        report.checkpoints,
        hex::encode(report.root)
    ));
    say(&format!(
        "erasure ledger {}: {} entries, {destroyed} records erased again",
        ledger_path.display(),
        ledger.len()
    ));
    if let Some(msg) = unreadable {
        say(&msg);
    }
    Ok(RestoreSummary {
        rows,
        events: report.events,
        ledger: (ledger.len(), destroyed),
    })
}

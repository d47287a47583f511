//! This suite's harness: one throwaway PostgreSQL database, three real `reporter-vault serve`
//! processes on it (each with its own `application_name`, so the database can say which
//! replica holds the leader lease or signed a checkpoint), their JSON logs, an HTTP client
//! that reports every failure instead of panicking, and a superuser connection.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Once;
use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};
use tempfile::TempDir;
use tokio::process::Child;
use vault_crypto::checkpoint::{Checkpoint, NoteVerifier};
use vault_crypto::keyring::{Keyring, KeyringProtector};
use vault_crypto::random::{RandomSource, SystemRandomSource};
use vault_domain::clock::{Clock, SystemClock};

pub use crate::pgdb::PgDb;

/// The advisory lock key of the leader lease (`vault_storage::leader::LEADER_LOCK`).
pub const LEADER_LOCK: i64 = 7_270_003;
/// What the leader logs when it takes the lease.
pub const LEADS_MSG: &str = "this replica leads";
/// What a replica logs when its lease is gone.
pub const LOST_MSG: &str = "lost the leader lease";
/// A `received_at` safely in the past.
pub const RECEIVED_AT: &str = "2026-11-20T08:00:00+08:00";
/// The jurisdiction test reports are filed in.
pub const JURISDICTION: &str = "140100";

/// How long one test may run before the whole suite is stopped.
const TEST_LIMIT: Duration = Duration::from_secs(170);

/// Exits the test binary if the test still runs after [`TEST_LIMIT`]: a hung process or
/// runtime must fail the suite, not hang it. Dropping the guard disarms it.
pub struct Watchdog {
    _disarm: std::sync::mpsc::Sender<()>,
}

pub fn watchdog(test: &'static str) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TEST_LIMIT) {
            eprintln!("replicas suite: {test} still running after {TEST_LIMIT:?}; stopping");
            std::process::exit(101);
        }
    });
    Watchdog { _disarm: tx }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandomSource.fill(&mut buf).expect("randomness");
    hex::encode(buf)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    // reqwest is built with `rustls-no-provider`: it needs a process-wide provider.
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client with keep-alive connections.
pub fn client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// A client that opens a fresh connection for every request, so a request is never written
/// onto a keep-alive connection the server is closing at that moment.
pub fn fresh_connection_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .expect("reqwest client")
}

/// What became of one request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A complete answer.
    Answered { status: u16, body: Vec<u8> },
    /// No answer at all: refused, reset or closed before the response head.
    NoResponse { connect: bool, error: String },
    /// A response head, then the body failed (cut off mid-response).
    CutOff { status: u16, error: String },
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Answered { status, .. } | Outcome::CutOff { status, .. } => Some(*status),
            Outcome::NoResponse { .. } => None,
        }
    }

    pub fn is_2xx(&self) -> bool {
        matches!(self, Outcome::Answered { status, .. } if (200..300).contains(status))
    }

    pub fn json(&self) -> Value {
        match self {
            Outcome::Answered { body, .. } => serde_json::from_slice(body).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Outcome::Answered { body, .. } => String::from_utf8_lossy(body).into_owned(),
            Outcome::NoResponse { error, .. } | Outcome::CutOff { error, .. } => error.clone(),
        }
    }

    /// `error.code` of an error body.
    pub fn code(&self) -> String {
        self.json()
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// A short description for failure lists.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Answered { status, .. } => format!("{status} {}", self.code()),
            Outcome::NoResponse { connect, error } => {
                format!("no response (connect: {connect}): {error}")
            }
            Outcome::CutOff { status, error } => format!("{status} cut off: {error}"),
        }
    }

    #[track_caller]
    pub fn expect(&self, status: u16, what: &str) -> Value {
        assert_eq!(
            self.status(),
            Some(status),
            "{what}: expected {status}, got {}: {}",
            self.describe(),
            self.text()
        );
        assert!(
            matches!(self, Outcome::Answered { .. }),
            "{what}: {}",
            self.describe()
        );
        self.json()
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// One request; never panics.
pub async fn call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Outcome {
    let mut rb = client.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        rb = rb.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(serde_json::to_vec(b).expect("json"));
    }
    let res = match rb.send().await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::NoResponse {
                connect: e.is_connect(),
                error: chain(&e),
            };
        }
    };
    let status = res.status().as_u16();
    match res.bytes().await {
        Ok(b) => Outcome::Answered {
            status,
            body: b.to_vec(),
        },
        Err(e) => Outcome::CutOff {
            status,
            error: chain(&e),
        },
    }
}

/// The demo principals' tokens and the admin token.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub case_system: String,
    pub custodian: String,
    pub auditor: String,
    pub admin: String,
}

/// A seal body with a unique identity (no ID number: every seal is a new record).
pub fn seal_body(n: usize) -> Value {
    json!({
        "jurisdiction": JURISDICTION,
        "case_ref": format!("RP-2026-{n:06}"),
        "received_at": RECEIVED_AT, "channel": "web",
        "employee_of_reported_unit": false,
        "identity": {"name": format!("副本{n}"), "phone": format!("139{:08}", n % 100_000_000)},
    })
}

/// A disclosure request for `pseudonym`'s phone number.
pub fn disclosure_body(pseudonym: &str) -> Value {
    json!({
        "pseudonym": pseudonym, "purpose": "verification_contact",
        "justification": "核查需要联系举报人补充材料", "fields": ["phone"],
    })
}

/// Keyring passphrase-protected with a low scrypt work factor, so starts stay fast.
fn make_fast_keyring(dir: &Path, passphrase: &str) {
    let kr = Keyring::generate(&SystemRandomSource, SystemClock.now().unix_timestamp())
        .expect("keyring generation");
    kr.save_with_work_factor(
        &dir.join("keyring.age"),
        &KeyringProtector::Passphrase(SecretString::from(passphrase.to_owned())),
        10,
    )
    .expect("saving the keyring");
}

/// One `reporter-vault serve` process.
pub struct Replica {
    /// `r1`, `r2`, `r3`: also its PostgreSQL `application_name` (`rv-r1`…).
    pub name: String,
    pub base: String,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Replica {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// Every JSON log line (stderr).
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines whose message starts with `prefix`.
    pub fn logged(&self, prefix: &str) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|v| message(v).starts_with(prefix))
            .collect()
    }

    /// Times it logged taking the lease (`leader=true`).
    pub fn leads_logged(&self) -> usize {
        self.logged(LEADS_MSG)
            .iter()
            .filter(|v| field(v, "leader") == Some(&Value::Bool(true)))
            .count()
    }

    /// SIGKILL: no drain, no last checkpoint, no lease release.
    pub async fn kill9(&mut self) {
        let mut child = self.child.take().expect("a running replica");
        child.start_kill().expect("SIGKILL");
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("a SIGKILLed process exits");
    }

    /// Sends SIGTERM; the caller waits with [`Replica::wait_exit`].
    pub fn sigterm(&self) {
        let pid = self.pid().expect("a running replica");
        let ok = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill -TERM")
            .success();
        assert!(ok, "kill -TERM {pid}");
    }

    /// Waits up to `limit` for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take().expect("a running replica");
        match tokio::time::timeout(limit, child.wait()).await {
            Ok(Ok(s)) => s.code(),
            _ => {
                let _ = child.kill().await;
                panic!(
                    "{} did not exit within {limit:?} of SIGTERM:\n{}",
                    self.name,
                    tail(&self.log_text(), 40)
                );
            }
        }
    }

    /// SIGTERM and a clean exit.
    pub async fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.sigterm();
        let code = self.wait_exit(Duration::from_secs(30)).await;
        assert_eq!(
            code,
            Some(0),
            "{} exit status after SIGTERM:\n{}",
            self.name,
            tail(&self.log_text(), 40)
        );
    }
}

/// The message of a JSON log line (nested under `fields` or flattened).
pub fn message(v: &Value) -> &str {
    v.pointer("/fields/message")
        .or_else(|| v.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A field of a JSON log line (nested under `fields` or flattened).
pub fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get("fields")
        .and_then(|f| f.get(name))
        .or_else(|| v.get(name))
}

pub fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How the replicas keep their data directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dirs {
    /// One directory each, holding a copy of the one keyring.
    Copied,
    /// One directory for all (the Helm chart's `ReadWriteMany` volume): a key rotation
    /// rewrites the one `keyring.age` every replica re-reads.
    Shared,
}

/// Options for [`Cluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterOpts {
    pub replicas: usize,
    pub dirs: Dirs,
    /// Record every checkpoint's signer and the lease holder at that moment (a trigger).
    pub record_signers: bool,
    /// Extra environment for every replica.
    pub env: Vec<(String, String)>,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        Self {
            replicas: 3,
            dirs: Dirs::Copied,
            record_signers: false,
            env: Vec::new(),
        }
    }
}

/// Three processes on one database.
pub struct Cluster {
    pub db: PgDb,
    pub passphrase: String,
    pub replicas: Vec<Replica>,
    pub tokens: Tokens,
    pub client: reqwest::Client,
    opts: ClusterOpts,
    dirs: Vec<TempDir>,
    _logs: TempDir,
}

/// The table and trigger of [`ClusterOpts::record_signers`]: each committed checkpoint's
/// size, the inserting session's `application_name`, and which sessions held the leader
/// lease in that instant.
const SIGNER_TRIGGER: &str = r"
CREATE TABLE rv_test_signers (
    seq    BIGSERIAL PRIMARY KEY,
    size   BIGINT NOT NULL,
    signer TEXT NOT NULL,
    holder TEXT,
    at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION rv_test_record_signer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rv_test_signers (size, signer, holder)
    VALUES (NEW.size, current_setting('application_name'),
        (SELECT string_agg(a.application_name, ',' ORDER BY a.application_name)
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0
            AND l.objid = 7270003 AND l.objsubid = 1
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())));
    RETURN NEW;
END;
$$;
CREATE TRIGGER rv_test_record_signer AFTER INSERT ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION rv_test_record_signer();
";

impl Cluster {
    pub async fn start(opts: ClusterOpts) -> Cluster {
        let db = PgDb::create("rv_replicas").await;
        let passphrase = format!("replicas-{}", random_hex(8));
        let logs = tempfile::Builder::new()
            .prefix("rv-replicas-logs-")
            .tempdir()
            .expect("tempdir");
        let ndirs = match opts.dirs {
            Dirs::Copied => opts.replicas,
            Dirs::Shared => 1,
        };
        let dirs: Vec<TempDir> = (0..ndirs)
            .map(|_| {
                tempfile::Builder::new()
                    .prefix("rv-replica-")
                    .tempdir()
                    .expect("tempdir")
            })
            .collect();
        make_fast_keyring(dirs[0].path(), &passphrase);
        for d in &dirs[1..] {
            std::fs::copy(
                dirs[0].path().join("keyring.age"),
                d.path().join("keyring.age"),
            )
            .expect("copying the keyring");
        }
        let mut cluster = Cluster {
            db,
            passphrase,
            replicas: Vec::new(),
            tokens: Tokens {
                case_system: String::new(),
                custodian: String::new(),
                auditor: String::new(),
                admin: String::new(),
            },
            client: client(),
            opts: opts.clone(),
            dirs,
            _logs: logs,
        };
        if opts.record_signers {
            // The schema first, so the trigger sees the very first checkpoint.
            let out = cluster.cli(&["migrate"]).await;
            assert!(out.0 == Some(0), "reporter-vault migrate: {}", out.1);
            let mut c = cluster.superuser().await;
            sqlx::raw_sql(AssertSqlSafe(SIGNER_TRIGGER))
                .execute(&mut c)
                .await
                .expect("installing the signer trigger");
            let _ = c.close().await;
        }
        for i in 0..opts.replicas {
            let r = cluster.spawn(i).await;
            cluster.replicas.push(r);
            if i == 0 {
                let dir = cluster.dir_of(0);
                let demo: Value = serde_json::from_slice(
                    &std::fs::read(dir.join("demo-tokens.json")).expect("demo tokens"),
                )
                .expect("demo tokens JSON");
                let tok = |k: &str| demo[k]["token"].as_str().expect("token").to_owned();
                cluster.tokens = Tokens {
                    case_system: tok("case_system"),
                    custodian: tok("custodian"),
                    auditor: tok("auditor"),
                    admin: std::fs::read_to_string(dir.join("admin.token"))
                        .expect("admin token")
                        .trim()
                        .to_owned(),
                };
            }
        }
        cluster
    }

    fn dir_of(&self, i: usize) -> PathBuf {
        match self.opts.dirs {
            Dirs::Copied => self.dirs[i].path().to_owned(),
            Dirs::Shared => self.dirs[0].path().to_owned(),
        }
    }

    /// The database URL replica `name` uses: its own `application_name`.
    fn url_for(&self, app_name: &str) -> String {
        let sep = if self.db.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}application_name={app_name}", self.db.url)
    }

    async fn spawn(&self, i: usize) -> Replica {
        let name = format!("r{}", i + 1);
        let data_dir = self.dir_of(i);
        let port = free_port();
        let log = self._logs.path().join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_reporter-vault"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--database-url")
            .arg(self.url_for(&format!("rv-{name}")))
            .arg("--policies")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies"))
            .arg("--checkpoint-every-seconds")
            .arg("1")
            .arg("--checkpoint-every-events")
            .arg("50")
            .env("RV_KEYRING_PASSPHRASE", &self.passphrase)
            .env("RV_LOG_FORMAT", "json")
            .env("NO_COLOR", "1")
            // The load requests far more disclosures than a person would.
            .env("RV_DISCLOSURE_REQUESTS_PER_MINUTE", "1000000")
            .env_remove("RV_DATABASE_URL")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        if i == 0 {
            cmd.arg("--demo");
        }
        let child = cmd.spawn().expect("spawning reporter-vault serve");
        let base = format!("http://127.0.0.1:{port}");
        let mut r = Replica {
            name,
            base,
            log,
            child: Some(child),
        };
        for _ in 0..300 {
            if let Outcome::Answered { status: 200, .. } =
                call(&self.client, &r.base, Method::GET, "/readyz", None, None).await
            {
                return r;
            }
            if let Some(c) = r.child.as_mut()
                && let Ok(Some(s)) = c.try_wait()
            {
                panic!("{} exited with {s}:\n{}", r.name, tail(&r.log_text(), 40));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{} did not become ready:\n{}",
            r.name,
            tail(&r.log_text(), 40)
        );
    }

    pub fn replica(&self, name: &str) -> &Replica {
        self.replicas
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no replica {name}"))
    }

    pub fn replica_mut(&mut self, name: &str) -> &mut Replica {
        self.replicas
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no replica {name}"))
    }

    pub fn alive(&self) -> Vec<&Replica> {
        self.replicas.iter().filter(|r| r.alive()).collect()
    }

    /// A direct superuser connection to the database.
    pub async fn superuser(&self) -> PgConnection {
        PgConnection::connect(&self.db.url)
            .await
            .unwrap_or_else(|e| panic!("direct connection: {e}"))
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        let mut c = self.superuser().await;
        let v = scalar_i64(&mut c, sql).await;
        let _ = c.close().await;
        v
    }

    /// The `application_name`s of the sessions holding the leader lease in this database.
    pub async fn lease_holders(&self, c: &mut PgConnection) -> Vec<String> {
        self.lease_sessions(c)
            .await
            .into_iter()
            .map(|s| s.1)
            .collect()
    }

    /// `(backend pid, application_name)` of the sessions holding the leader lease.
    pub async fn lease_sessions(&self, c: &mut PgConnection) -> Vec<(i32, String)> {
        sqlx::query(
            "SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0
                AND l.objid = $1 AND l.objsubid = 1
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              ORDER BY 2",
        )
        .bind(LEADER_LOCK)
        .fetch_all(&mut *c)
        .await
        .expect("reading pg_locks")
        .iter()
        .map(|r| (r.get::<i32, _>(0), r.get::<String, _>(1)))
        .collect()
    }

    /// Waits until exactly one session holds the lease and it is not `except`; returns the
    /// replica's name and how long it took.
    pub async fn wait_for_leader(
        &self,
        except: Option<&str>,
        limit: Duration,
    ) -> (String, Duration) {
        let started = Instant::now();
        let mut c = self.superuser().await;
        let mut seen = Vec::new();
        while started.elapsed() < limit {
            seen = self.lease_holders(&mut c).await;
            if let [one] = seen.as_slice()
                && let Some(name) = one.strip_prefix("rv-")
                && Some(name) != except
            {
                let took = started.elapsed();
                let _ = c.close().await;
                return (name.to_owned(), took);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no new leader within {limit:?} (lease holders: {seen:?}); logs:\n{}",
            self.log_tails(20)
        );
    }

    /// The last `lines` log lines of every replica, request lines left out.
    pub fn log_tails(&self, lines: usize) -> String {
        self.replicas
            .iter()
            .map(|r| {
                let text: Vec<&str> = Vec::new();
                let all = r.log_text();
                let mut kept: Vec<&str> = all
                    .lines()
                    .filter(|l| !l.contains(r#""message":"request""#))
                    .collect();
                kept.extend(text);
                format!("--- {}:\n{}", r.name, tail(&kept.join("\n"), lines))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs the real `reporter-vault` with the first replica's data directory and the
    /// database (`args` first); returns the exit code and everything it printed.
    pub async fn cli(&self, args: &[&str]) -> (Option<i32>, String) {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_reporter-vault"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.dir_of(0))
            .arg("--database-url")
            .arg(self.url_for("rv-cli"))
            .env("RV_KEYRING_PASSPHRASE", &self.passphrase)
            .env("RV_LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .env_remove("RV_DATABASE_URL")
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("reporter-vault {args:?} did not finish within 60 s"))
            .unwrap_or_else(|e| panic!("running reporter-vault {args:?}: {e}"));
        (
            out.status.code(),
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The log's note verifier key, as a replica serves it.
    pub async fn public_key(&self, base: &str) -> String {
        let r = call(
            &self.client,
            base,
            Method::GET,
            "/v1/audit/public-key",
            None,
            None,
        )
        .await;
        assert_eq!(r.status(), Some(200), "public key: {}", r.describe());
        r.text().trim().to_owned()
    }

    /// The latest checkpoint via `base`, verified with `vkey`.
    pub async fn checkpoint(&self, base: &str, vkey: &str) -> Checkpoint {
        let r = call(
            &self.client,
            base,
            Method::GET,
            "/v1/audit/checkpoint",
            Some(&self.tokens.auditor),
            None,
        )
        .await;
        assert_eq!(r.status(), Some(200), "checkpoint: {}", r.describe());
        verify_note(vkey, &r.text())
    }

    /// Stops every live replica with SIGTERM (each must exit 0).
    pub async fn stop_all(&mut self) {
        for r in &mut self.replicas {
            r.stop().await;
        }
    }

    /// Every stored checkpoint, by size: `(size, note)`.
    pub async fn stored_checkpoints(&self) -> Vec<(i64, String)> {
        let mut c = self.superuser().await;
        let rows = sqlx::query("SELECT size, note FROM audit_checkpoints ORDER BY size")
            .fetch_all(&mut c)
            .await
            .expect("reading checkpoints");
        let _ = c.close().await;
        rows.iter()
            .map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1)))
            .collect()
    }

    /// Rows of the signer trigger, in commit order: `(seq, size, signer, holder)`.
    pub async fn signers(&self) -> Vec<(i64, i64, String, Option<String>)> {
        let mut c = self.superuser().await;
        let rows =
            sqlx::query("SELECT seq, size, signer, holder FROM rv_test_signers ORDER BY seq")
                .fetch_all(&mut c)
                .await
                .expect("reading rv_test_signers");
        let _ = c.close().await;
        rows.iter()
            .map(|r| {
                (
                    r.get::<i64, _>(0),
                    r.get::<i64, _>(1),
                    r.get::<String, _>(2),
                    r.get::<Option<String>, _>(3),
                )
            })
            .collect()
    }
}

pub fn verify_note(vkey: &str, note: &str) -> Checkpoint {
    NoteVerifier::parse(vkey)
        .expect("the public key is a note verifier key")
        .verify(note)
        .unwrap_or_else(|e| panic!("checkpoint does not verify ({e}): {note:?}"))
}

pub async fn scalar_i64(conn: &mut PgConnection, sql: &str) -> i64 {
    let row = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.try_get::<i64, _>(0)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Strings of one column.
pub async fn column(conn: &mut PgConnection, sql: &str) -> Vec<String> {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

/// Counts of outcomes per kind, for reports.
pub fn tally(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for o in outcomes {
        let k = match o {
            Outcome::Answered { status, .. } if (200..300).contains(status) => "2xx".to_owned(),
            Outcome::Answered { status, .. } => format!("{status} {}", o.code()),
            Outcome::NoResponse { connect: true, .. } => "connect error".to_owned(),
            Outcome::NoResponse { .. } => "no response".to_owned(),
            Outcome::CutOff { .. } => "cut off".to_owned(),
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

//! This suite's harness: the real `reporter-vault serve --demo` as a child process on a store
//! that outlives it (SQLite in a data directory, or a PostgreSQL database), a non-panicking
//! HTTP client for load, raw sockets for slow clients, direct database access for consistency
//! checks, the real CLI for `audit verify`, and a seeded PRNG.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};
use tempfile::TempDir;
use vault_crypto::keyring::{Keyring, KeyringProtector};
use vault_crypto::random::{RandomSource, SystemRandomSource};
use vault_domain::clock::{Clock, SystemClock};

#[path = "../support/pgdb.rs"]
mod pgdb;
pub use pgdb::PgDb;

/// How long one test may run before the whole suite is stopped.
const TEST_LIMIT: Duration = Duration::from_secs(200);

/// Exits the test binary (status 101, with the test's name) if the test is still running
/// after [`TEST_LIMIT`]: a hung server or runtime must fail the suite, not hang it.
pub struct Watchdog {
    _disarm: std::sync::mpsc::Sender<()>,
}

pub fn watchdog(test: &'static str) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TEST_LIMIT) {
            eprintln!(
                "robustness suite: {test} still running after {TEST_LIMIT:?}; stopping the suite"
            );
            std::process::exit(101);
        }
    });
    Watchdog { _disarm: tx }
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandomSource.fill(&mut buf).expect("randomness");
    hex::encode(buf)
}

// ------------------------------------------------------------------------------------------
// A seeded PRNG (SplitMix64): the seed is printed, and RV_ROBUSTNESS_SEED replays it.
// ------------------------------------------------------------------------------------------

pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `RV_ROBUSTNESS_SEED`, or from the system; prints the seed.
    pub fn seeded(what: &str) -> Rng {
        let seed = std::env::var("RV_ROBUSTNESS_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| {
                let mut b = [0u8; 8];
                SystemRandomSource.fill(&mut b).expect("randomness");
                u64::from_le_bytes(b)
            });
        eprintln!("{what}: seed {seed} (replay with RV_ROBUSTNESS_SEED={seed})");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}

// ------------------------------------------------------------------------------------------
// The store: a data directory and (optionally) a PostgreSQL database
// ------------------------------------------------------------------------------------------

/// A data directory and its database; outlives any one server process.
pub struct Store {
    data_dir: PathBuf,
    _tmp: Option<TempDir>,
    /// `--database-url` (PostgreSQL).
    pub db_url: Option<String>,
    /// The keyring passphrase (PostgreSQL; SQLite uses the development identity file).
    pub passphrase: Option<String>,
    _pg: Option<PgDb>,
}

/// A passphrase keyring with a cheap scrypt work factor, so that every start and every CLI
/// run does not spend a second in scrypt.
pub fn make_fast_keyring(dir: &Path, passphrase: &str) {
    let kr = Keyring::generate(&SystemRandomSource, SystemClock.now().unix_timestamp())
        .expect("keyring generation");
    kr.save_with_work_factor(
        &dir.join("keyring.age"),
        &KeyringProtector::Passphrase(SecretString::from(passphrase.to_owned())),
        10,
    )
    .expect("saving the keyring");
}

fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temporary directory")
}

impl Store {
    /// SQLite in a fresh temporary data directory.
    pub fn sqlite() -> Store {
        let tmp = tempdir("rv-robust-");
        Store {
            data_dir: tmp.path().to_owned(),
            _tmp: Some(tmp),
            db_url: None,
            passphrase: None,
            _pg: None,
        }
    }

    /// SQLite in `dir` (which the caller owns, e.g. a tmpfs mount point).
    pub fn sqlite_in(dir: &Path) -> Store {
        Store {
            data_dir: dir.to_owned(),
            _tmp: None,
            db_url: None,
            passphrase: None,
            _pg: None,
        }
    }

    /// A fresh database on the shared PostgreSQL server (`RV_TEST_PG_URL`).
    pub async fn postgres() -> Store {
        let pg = PgDb::create("rv_robust").await;
        let mut s = Self::postgres_at(&pg.url);
        s._pg = Some(pg);
        s
    }

    /// PostgreSQL at `url` (a cluster the test runs itself).
    pub fn postgres_at(url: &str) -> Store {
        let tmp = tempdir("rv-robust-");
        let pass = format!("robust-{}", random_hex(8));
        make_fast_keyring(tmp.path(), &pass);
        Store {
            data_dir: tmp.path().to_owned(),
            _tmp: Some(tmp),
            db_url: Some(url.to_owned()),
            passphrase: Some(pass),
            _pg: None,
        }
    }

    pub async fn new(engine: Engine) -> Store {
        match engine {
            Engine::Sqlite => Self::sqlite(),
            Engine::Postgres => Self::postgres().await,
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A direct connection, bypassing the service.
    pub async fn connect(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        let url = match &self.db_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("vault.db").display()),
        };
        let mut conn = tokio::time::timeout(Duration::from_secs(15), AnyConnection::connect(&url))
            .await
            .unwrap_or_else(|_| panic!("direct connection to {url}: timed out"))
            .unwrap_or_else(|e| panic!("direct connection to {url}: {e}"));
        if self.db_url.is_none() {
            sqlx::raw_sql("PRAGMA busy_timeout = 10000;")
                .execute(&mut conn)
                .await
                .expect("busy_timeout");
        }
        conn
    }

    /// Runs the real `reporter-vault` with this store's settings; `args` come first.
    pub async fn cli(&self, args: &[&str]) -> CliOut {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_reporter-vault"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("RV_LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .env_remove("RV_DATABASE_URL")
            .env_remove("RV_KEYRING_PASSPHRASE")
            .env_remove("RV_KEYRING_PASSPHRASE_FILE")
            .kill_on_drop(true);
        if let Some(u) = &self.db_url {
            cmd.arg("--database-url").arg(u);
        }
        if let Some(p) = &self.passphrase {
            cmd.env("RV_KEYRING_PASSPHRASE", p);
        }
        let started = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("reporter-vault {args:?} did not finish within 60 s"))
            .unwrap_or_else(|e| panic!("running reporter-vault {args:?}: {e}"));
        CliOut {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// `reporter-vault audit verify` must pass; returns how long it took.
    pub async fn audit_verify(&self, when: &str) -> Duration {
        let out = self.cli(&["audit", "verify"]).await;
        assert!(
            out.code == Some(0),
            "audit verify failed {when}: exit {:?}\n{}\n{}",
            out.code,
            out.stdout,
            out.stderr
        );
        out.elapsed
    }
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct CliOut {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

pub async fn scalar(conn: &mut AnyConnection, sql: &str) -> i64 {
    let row = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.try_get::<i64, _>(0)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub async fn strings(conn: &mut AnyConnection, sql: &str) -> Vec<String> {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            r.try_get::<String, _>(0)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
        .collect()
}

pub async fn blobs(conn: &mut AnyConnection, sql: &str) -> Vec<Vec<u8>> {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            r.try_get::<Vec<u8>, _>(0)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// HTTP
// ------------------------------------------------------------------------------------------

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    // reqwest is built with `rustls-no-provider`: it needs a process-wide provider.
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub fn client(timeout: Duration) -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("reqwest client")
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `error.code`, if this is an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[track_caller]
    pub fn expect(&self, status: u16, what: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{what}: expected {status}, got {} with body {}",
            self.status,
            self.text()
        );
        self.json()
    }
}

/// One request; `Err` on a transport failure (refused, reset, timeout).
pub async fn request(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Resp, String> {
    let mut rb = client.request(method.clone(), format!("{base}{path}"));
    if let Some(t) = token {
        rb = rb.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(serde_json::to_vec(b).expect("json"));
    }
    let started = Instant::now();
    let res = rb
        .send()
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = res.status().as_u16();
    let body = res
        .bytes()
        .await
        .map_err(|e| format!("{method} {path}: reading the body: {e}"))?
        .to_vec();
    Ok(Resp {
        status,
        body,
        elapsed: started.elapsed(),
    })
}

// ------------------------------------------------------------------------------------------
// The real binary
// ------------------------------------------------------------------------------------------

/// A demo principal.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: String,
    pub token: String,
}

/// `reporter-vault serve --demo` as a child process; killed (SIGKILL) on drop.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub stderr: PathBuf,
    _logs: TempDir,
    pub admin: String,
    pub principals: BTreeMap<String, Principal>,
    pub client: reqwest::Client,
}

fn command(store: &Store, extra_env: &[(&str, &str)], logs: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_reporter-vault"));
    cmd.arg("serve")
        .arg("--demo")
        .arg("--data-dir")
        .arg(store.data_dir())
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--policies")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies"))
        .env("RV_LOG_FORMAT", "text")
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("RV_KEYRING_PASSPHRASE")
        .env_remove("RV_KEYRING_PASSPHRASE_FILE")
        .env_remove("RV_DATABASE_URL")
        .env_remove("RV_DATABASE_URL_FILE")
        .env_remove("RV_NOTIFY_WEBHOOK_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(logs.join("stdout.log")).expect("stdout file"))
        .stderr(std::fs::File::create(logs.join("stderr.log")).expect("stderr file"));
    if let Some(u) = &store.db_url {
        cmd.arg("--database-url").arg(u);
    }
    if let Some(p) = &store.passphrase {
        cmd.env("RV_KEYRING_PASSPHRASE", p);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// The address in the "reporter-vault listening addr=…" log line, once it is there.
fn listening_addr(log: &str) -> Option<std::net::SocketAddr> {
    let line = log
        .lines()
        .find(|l| l.contains("reporter-vault listening"))?;
    let at = line.find("addr=")? + 5;
    let rest = line.get(at..)?;
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest.get(..end)?.trim_matches('"').parse().ok()
}

impl Server {
    /// Starts the binary on `store` and waits until `/healthz` answers.
    pub async fn start(store: &Store, extra_env: &[(&str, &str)]) -> Server {
        let logs = tempdir("rv-robust-logs-");
        let mut child = command(store, extra_env, logs.path())
            .spawn()
            .expect("spawn reporter-vault");
        let stderr = logs.path().join("stderr.log");
        let client = client(Duration::from_secs(30));
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "reporter-vault exited with {status} before listening; stderr:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            if let Some(a) = listening_addr(&std::fs::read_to_string(&stderr).unwrap_or_default()) {
                break a;
            }
            assert!(
                Instant::now() < deadline,
                "reporter-vault did not listen within 60 s; stderr:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let base = format!("http://{addr}");
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "reporter-vault did not answer /healthz within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let admin = std::fs::read_to_string(store.data_dir().join("admin.token"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let demo: Value = serde_json::from_slice(
            &std::fs::read(store.data_dir().join("demo-tokens.json")).expect("demo tokens"),
        )
        .expect("demo tokens JSON");
        let principals = demo
            .as_object()
            .expect("demo tokens object")
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Principal {
                        id: v["id"].as_str().expect("id").to_owned(),
                        token: v["token"].as_str().expect("token").to_owned(),
                    },
                )
            })
            .collect();
        Server {
            child,
            base,
            addr,
            stderr,
            _logs: logs,
            admin,
            principals,
            client,
        }
    }

    /// Starts the binary expecting it to refuse: returns (exit code, stderr, time to exit).
    pub async fn start_expect_failure(
        store: &Store,
        extra_env: &[(&str, &str)],
    ) -> (Option<i32>, String, Duration) {
        let logs = tempdir("rv-robust-logs-");
        let started = Instant::now();
        let mut child = command(store, extra_env, logs.path())
            .spawn()
            .expect("spawn reporter-vault");
        let stderr = logs.path().join("stderr.log");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return (
                    status.code(),
                    std::fs::read_to_string(&stderr).unwrap_or_default(),
                    started.elapsed(),
                );
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "reporter-vault neither started nor refused within 20 s; stderr:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            if listening_addr(&log).is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("reporter-vault started although it should have refused; stderr:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn token(&self, who: &str) -> String {
        self.principals
            .get(who)
            .unwrap_or_else(|| panic!("no demo principal {who}"))
            .token
            .clone()
    }

    pub fn id(&self, who: &str) -> String {
        self.principals
            .get(who)
            .unwrap_or_else(|| panic!("no demo principal {who}"))
            .id
            .clone()
    }

    /// Any request; `Err` on a transport failure.
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Resp, String> {
        request(&self.client, &self.base, method, path, token, body).await
    }

    /// Any request; panics on a transport failure or a 500.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Resp {
        let r = self
            .try_call(method, path, token, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(r.status, 500, "{path}: a 500: {}", r.text());
        r
    }

    pub async fn get(&self, path: &str, who: &str) -> Resp {
        let t = self.token(who);
        self.call(Method::GET, path, Some(&t), None).await
    }

    pub async fn post(&self, path: &str, who: &str, body: Value) -> Resp {
        let t = self.token(who);
        self.call(Method::POST, path, Some(&t), Some(&body)).await
    }

    /// Creates a principal through the API; returns it.
    pub async fn principal(&self, role: &str, name: &str) -> Principal {
        let v = self
            .call(
                Method::POST,
                "/v1/principals",
                Some(&self.admin),
                Some(&json!({"name": name, "role": role, "jurisdiction": "000000"})),
            )
            .await
            .expect(201, "create a principal");
        Principal {
            id: v["id"].as_str().expect("id").to_owned(),
            token: v["token"].as_str().expect("token").to_owned(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no warning, no drain.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let st = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(st.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!("reporter-vault did not stop within 30 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only our own child, by its handle.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Valid identity values and bodies
// ------------------------------------------------------------------------------------------

/// GB 11643 check character of 17 digits.
pub fn gb11643_check(first17: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).expect("digit") * w)
        .sum();
    char::from(b"10X98765432"[(sum % 11) as usize])
}

/// `digits` completed with a Luhn check digit.
pub fn luhn_complete(digits: &str) -> String {
    let sum: u32 = digits
        .chars()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = c.to_digit(10).expect("digit");
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    format!("{digits}{}", (10 - sum % 10) % 10)
}

/// The `n`th of a family of distinct people (distinct for n < 16,800,000).
pub fn identity(n: u64) -> Value {
    let first17 = format!(
        "370102{:04}{:02}{:02}{:03}",
        1950 + n % 50,
        1 + (n / 50) % 12,
        1 + (n / 600) % 28,
        (n / 16_800) % 1000
    );
    json!({
        "name": format!("举报人{n}"),
        "id_number": format!("{first17}{}", gb11643_check(&first17)),
        "phone": format!("138{:08}", n % 100_000_000),
        "bank_account": luhn_complete(&format!("62220202{:010}", n % 10_000_000_000)),
        "bank_name": "中国工商银行济南分行",
    })
}

/// A seal body.
pub fn seal_body(jurisdiction: &str, case_ref: &str, identity: Value) -> Value {
    json!({
        "jurisdiction": jurisdiction, "case_ref": case_ref,
        "received_at": "2026-11-02T09:00:00+08:00", "channel": "web",
        "employee_of_reported_unit": false, "identity": identity,
    })
}

/// A disclosure request body (one custodian suffices for verification_contact).
pub fn disclosure_body(pseudonym: &str) -> Value {
    json!({
        "pseudonym": pseudonym, "purpose": "verification_contact",
        "justification": "核查需要联系举报人补充材料 (robustness)",
        "fields": ["phone"],
    })
}

/// A Shandong major-hazard reward for one report (50 % of 20000.00: 10000.00, one approval).
pub fn reward_body(case_ref: &str, pseudonym: &str) -> Value {
    json!({
        "case_ref": case_ref,
        "jurisdiction": "370100",
        "verified_on": "2026-11-18",
        "industry": "hazardous_chemicals",
        "outcome": {"kind": "major_hazard", "penalty": "20000.00"},
        "reports": [{"pseudonym": pseudonym}],
    })
}

/// The p-th percentile (0–100, nearest rank) of `v` (sorted in place).
pub fn percentile(v: &mut [Duration], p: usize) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let rank = (p * v.len()).div_ceil(100);
    v[rank.clamp(1, v.len()) - 1]
}

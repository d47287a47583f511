//! This suite's own harness: a data directory and (for PostgreSQL) a fresh database per test,
//! the service started in-process on 127.0.0.1:0 exactly as `reporter-vault serve` builds it,
//! a small HTTP client, the real binary for the CLI, and a superuser connection for tampering.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vault_crypto::keyring::{Keyring, KeyringProtector};
use vault_crypto::random::{RandomSource, SystemRandomSource};
use vault_domain::DisclosureConfig;
use vault_domain::clock::{Clock, SystemClock};
use vault_service::app::{Application, NotifierConfig, ServeConfig, StartError, VaultConfig};
use vault_storage::SqliteSync;

/// How long one test may run before the whole suite is stopped.
const TEST_LIMIT: Duration = Duration::from_secs(120);

/// Exits the test binary (status 101, with the test's name) if the test is still running after
/// [`TEST_LIMIT`]: a hung runtime must fail the suite, not hang it. (sqlx 0.9.0's pool
/// maintenance task can spin forever without yielding: launchbadge/sqlx#3645.) Dropping the
/// guard, when the test ends or unwinds, disarms it.
pub struct Watchdog {
    _disarm: std::sync::mpsc::Sender<()>,
}

pub fn watchdog(test: &'static str) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TEST_LIMIT) {
            eprintln!(
                "trail suite: {test} still running after {TEST_LIMIT:?}; stopping the suite \
                 (a hung runtime or server must fail, not hang)"
            );
            std::process::exit(101);
        }
    });
    Watchdog { _disarm: tx }
}

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite in the data directory.
    Sqlite,
    /// A fresh database on the server of `RV_TEST_PG_URL`.
    Postgres,
}

/// A `received_at` safely in the past.
pub const RECEIVED_AT: &str = "2026-11-20T08:00:00+08:00";
/// The jurisdiction test reports are filed in.
pub const JURISDICTION: &str = "140100";

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandomSource.fill(&mut buf).expect("randomness");
    hex::encode(buf)
}

fn pg_admin_url() -> String {
    std::env::var("RV_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into())
}

/// `(scheme://, userinfo or "", host[:port], query incl. '?')` of a PostgreSQL URL.
fn split_pg_url(url: &str) -> (String, String, String, String) {
    let (no_query, query) = match url.split_once('?') {
        Some((u, q)) => (u.to_owned(), format!("?{q}")),
        None => (url.to_owned(), String::new()),
    };
    let scheme_end = no_query.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = no_query.split_at(scheme_end);
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (u.to_owned(), h.to_owned()),
        None => (String::new(), authority.to_owned()),
    };
    (scheme.to_owned(), userinfo, host, query)
}

async fn pg_admin_conn(url: &str) -> sqlx::PgConnection {
    let connect = tokio::time::timeout(Duration::from_secs(15), sqlx::PgConnection::connect(url));
    match connect.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!(
            "PostgreSQL is unreachable at {url} ({e}). This suite must run on PostgreSQL: start \
             the server or point RV_TEST_PG_URL at one."
        ),
        Err(_) => panic!("PostgreSQL at {url} did not answer within 15 s"),
    }
}

/// A throwaway PostgreSQL database (and optionally a login role owning it), dropped when
/// this is dropped.
pub struct PgDb {
    pub name: String,
    /// The database as the superuser of `RV_TEST_PG_URL` sees it (tampering, counting).
    pub super_url: String,
    /// The URL the service uses: the owner role's if there is one, else `super_url`.
    pub service_url: String,
    /// The owner role, if the service runs as a non-superuser.
    pub role: Option<String>,
    admin_url: String,
}

impl PgDb {
    pub async fn create(with_role: bool) -> PgDb {
        let admin_url = pg_admin_url();
        let mut conn = pg_admin_conn(&admin_url).await;
        let name = format!("rv_trail_{}", random_hex(6));
        let (scheme, userinfo, host, query) = split_pg_url(&admin_url);
        let role = if with_role {
            let role = format!("rv_app_{}", random_hex(4));
            let password = random_hex(12);
            sqlx::query(AssertSqlSafe(format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{password}'"
            )))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE ROLE {role}: {e}"));
            Some((role, password))
        } else {
            None
        };
        let owner = role
            .as_ref()
            .map(|(r, _)| format!(" OWNER {r}"))
            .unwrap_or_default();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}{owner}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let _ = conn.close().await;
        let at = if userinfo.is_empty() {
            String::new()
        } else {
            format!("{userinfo}@")
        };
        let super_url = format!("{scheme}{at}{host}/{name}{query}");
        let service_url = match &role {
            Some((r, p)) => format!("{scheme}{r}:{p}@{host}/{name}{query}"),
            None => super_url.clone(),
        };
        PgDb {
            name,
            super_url,
            service_url,
            role: role.map(|(r, _)| r),
            admin_url,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let role = self.role.clone();
        // Drop may run inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                    if let Some(r) = role {
                        let _ = sqlx::query(AssertSqlSafe(format!("DROP ROLE IF EXISTS {r}")))
                            .execute(&mut c)
                            .await;
                    }
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}

/// Options for [`Storage::new`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StorageOpts {
    /// PostgreSQL: the service logs in as a fresh non-superuser role owning the database.
    pub pg_role: bool,
}

/// A data directory and its database; outlives any one server.
pub struct Storage {
    pub engine: Engine,
    pub dir: TempDir,
    pub pg: Option<PgDb>,
    /// The keyring passphrase (PostgreSQL; SQLite uses the development identity file).
    pub passphrase: Option<String>,
}

/// Creates a passphrase-protected keyring in `dir` with a low scrypt work factor, so that
/// every start and every CLI run does not spend a second in scrypt.
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

impl Storage {
    pub async fn new(engine: Engine) -> Arc<Storage> {
        Self::with(engine, StorageOpts::default()).await
    }

    pub async fn with(engine: Engine, opts: StorageOpts) -> Arc<Storage> {
        let dir = tempfile::Builder::new()
            .prefix("rv-trail-")
            .tempdir()
            .expect("a temporary directory");
        let (pg, passphrase) = match engine {
            Engine::Sqlite => (None, None),
            Engine::Postgres => {
                let pass = format!("trail-test-{}", random_hex(8));
                make_fast_keyring(dir.path(), &pass);
                (Some(PgDb::create(opts.pg_role).await), Some(pass))
            }
        };
        Arc::new(Storage {
            engine,
            dir,
            pg,
            passphrase,
        })
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL the service is configured with (`None`: SQLite in the data directory).
    pub fn service_url(&self) -> Option<String> {
        self.pg.as_ref().map(|p| p.service_url.clone())
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir().join("vault.db")
    }

    /// A direct connection with full rights: the PostgreSQL superuser, or the SQLite file.
    pub async fn superuser(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        let url = match &self.pg {
            Some(pg) => pg.super_url.clone(),
            None => format!("sqlite://{}", self.sqlite_path().display()),
        };
        let mut conn = AnyConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("direct connection to {url}: {e}"));
        if self.pg.is_none() {
            sqlx::raw_sql("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = OFF;")
                .execute(&mut conn)
                .await
                .expect("pragmas");
        }
        conn
    }

    /// Rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        let mut c = self.superuser().await;
        let n = scalar_i64(&mut c, &format!("SELECT COUNT(*) AS n FROM {table}")).await;
        let _ = c.close().await;
        n
    }

    /// Runs the real `reporter-vault` with this store's `--data-dir`, `--database-url` and
    /// keyring passphrase; `args` come first (e.g. `["audit", "verify"]`).
    pub async fn cli(&self, args: &[&str]) -> CliOut {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_reporter-vault"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("RV_LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .env_remove("RV_DATABASE_URL")
            .env_remove("RV_KEYRING_PASSPHRASE")
            .kill_on_drop(true);
        if let Some(pg) = &self.pg {
            cmd.arg("--database-url").arg(&pg.service_url);
        }
        if let Some(p) = &self.passphrase {
            cmd.env("RV_KEYRING_PASSPHRASE", p);
        }
        run_cli(cmd, args).await
    }
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct CliOut {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOut {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub async fn run_cli(mut cmd: tokio::process::Command, what: &[&str]) -> CliOut {
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("reporter-vault {what:?} did not finish within 60 s"))
        .unwrap_or_else(|e| panic!("running reporter-vault {what:?}: {e}"));
    CliOut {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether `msg` names `index` as a log index ("index 17", not "index 170").
pub fn names_index(msg: &str, index: u64) -> bool {
    let needle = format!("index {index}");
    msg.match_indices(&needle).any(|(at, _)| {
        !msg[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

pub async fn scalar_i64(conn: &mut AnyConnection, sql: &str) -> i64 {
    let row = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.try_get::<i64, _>(0)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

// ------------------------------------------------------------------------------------------
// The server, in-process
// ------------------------------------------------------------------------------------------

/// How to build the server.
#[derive(Clone)]
pub struct Options {
    pub leak_traces_per_minute: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            leak_traces_per_minute: 30,
        }
    }
}

/// The demo principals' tokens and ids.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: String,
    pub token: String,
}

pub struct TestApp {
    pub base: String,
    pub storage: Arc<Storage>,
    pub admin: String,
    pub principals: BTreeMap<String, Principal>,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), StartError>>>,
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    // reqwest is built with `rustls-no-provider`: it needs a process-wide provider.
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub fn client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// An answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `error.code`, if this is an error body.
    pub fn code(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()?
            .pointer("/error/code")?
            .as_str()
            .map(str::to_owned)
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
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub async fn send(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut rb = client.request(method.clone(), format!("{base}{path}"));
    if let Some(t) = token {
        rb = rb.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        rb = rb
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&b).expect("json"));
    }
    let started = Instant::now();
    let res = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status().as_u16();
    let body = res
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"))
        .to_vec();
    let r = Resp {
        status,
        body,
        elapsed: started.elapsed(),
    };
    assert_ne!(r.status, 500, "{method} {path}: a 500: {}", r.text());
    r
}

pub fn serve_config(storage: &Storage, opts: &Options) -> ServeConfig {
    ServeConfig {
        vault: VaultConfig {
            data_dir: storage.data_dir().to_owned(),
            database_url: storage.service_url(),
            passphrase: storage
                .passphrase
                .clone()
                .map(|p| Arc::new(SecretString::from(p))),
            sqlite_sync: SqliteSync::Normal,
            disclosure: DisclosureConfig::default(),
            log_origin: None,
            leak_traces_per_minute: opts.leak_traces_per_minute,
            policies_dir: None,
            settlement: Default::default(),
            ops: Default::default(),
        },
        listen: "127.0.0.1:0".parse().expect("address"),
        max_body: 64 * 1024,
        notifier: NotifierConfig::File,
        demo: true,
        // Checkpoints are made by the tests, on demand; the periodic job stays quiet.
        checkpoint_every_events: 1_000_000,
        checkpoint_every: Duration::from_secs(3600),
        limits: Default::default(),
        body_timeout: Duration::from_secs(10),
    }
}

impl TestApp {
    pub async fn spawn(engine: Engine) -> TestApp {
        let storage = Storage::new(engine).await;
        Self::start(&storage, Options::default()).await
    }

    pub async fn start(storage: &Arc<Storage>, opts: Options) -> TestApp {
        let cfg = serve_config(storage, &opts);
        let app = Application::build(cfg, Arc::new(SystemClock), Arc::new(SystemRandomSource))
            .await
            .unwrap_or_else(|e| panic!("the service refused to start: {e}"));
        let addr = app.local_addr().expect("local address");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async move {
            let _ = rx.await;
        }));
        let admin = std::fs::read_to_string(storage.data_dir().join("admin.token"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let demo: Value = serde_json::from_slice(
            &std::fs::read(storage.data_dir().join("demo-tokens.json")).expect("demo tokens"),
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
        TestApp {
            base: format!("http://{addr}"),
            storage: storage.clone(),
            admin,
            principals,
            client: client(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and waits for it (its pools are closed afterwards).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            match tokio::time::timeout(Duration::from_secs(20), h).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => panic!("the server stopped with an error: {e}"),
                Ok(Err(e)) => panic!("the server task failed: {e}"),
                Err(_) => panic!("the server did not stop within 20 s"),
            }
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

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        send(&self.client, &self.base, method, path, token, body).await
    }

    pub async fn get(&self, path: &str, who: &str) -> Resp {
        let t = self.token(who);
        self.call(Method::GET, path, Some(&t), None).await
    }

    pub async fn post(&self, path: &str, who: &str, body: Value) -> Resp {
        let t = self.token(who);
        self.call(Method::POST, path, Some(&t), Some(body)).await
    }

    pub async fn seal_raw(&self, identity: Value, case_ref: &str) -> Resp {
        self.post(
            "/v1/reporters",
            "case_system",
            json!({
                "jurisdiction": JURISDICTION, "case_ref": case_ref,
                "received_at": RECEIVED_AT, "channel": "web",
                "employee_of_reported_unit": false, "identity": identity,
            }),
        )
        .await
    }

    /// Seals an identity; returns the pseudonym.
    pub async fn seal(&self, identity: Value) -> String {
        let case_ref = format!("SX-2026-{}", &random_hex(3)[..6]);
        let r = self.seal_raw(identity, &case_ref).await;
        r.expect(201, "seal")["pseudonym"]
            .as_str()
            .expect("pseudonym")
            .to_owned()
    }

    /// Requests a disclosure as `requester` and has custodian 1 approve it; returns its id.
    pub async fn approved_disclosure(
        &self,
        requester: &str,
        pseudonym: &str,
        purpose: &str,
        fields: &[&str],
    ) -> String {
        let d = self
            .post(
                "/v1/disclosures",
                requester,
                json!({
                    "pseudonym": pseudonym, "purpose": purpose,
                    "justification": "核查需要联系举报人补充材料 (trail test)",
                    "fields": fields,
                }),
            )
            .await
            .expect(201, "request disclosure");
        let id = d["id"].as_str().expect("disclosure id").to_owned();
        let a = self
            .post(
                &format!("/v1/disclosures/{id}/approve"),
                "custodian",
                json!({"comment": "ok"}),
            )
            .await
            .expect(200, "approve disclosure");
        assert_eq!(
            a["status"], "approved",
            "one approval suffices for {purpose}"
        );
        id
    }

    /// Opens a disclosure as `requester`.
    pub async fn open(&self, requester: &str, id: &str) -> Resp {
        let t = self.token(requester);
        self.call(
            Method::POST,
            &format!("/v1/disclosures/{id}/open"),
            Some(&t),
            None,
        )
        .await
    }

    /// Requests, approves and opens; returns the disclosure id and the opened body.
    pub async fn disclose(
        &self,
        requester: &str,
        pseudonym: &str,
        purpose: &str,
        fields: &[&str],
    ) -> (String, Value) {
        let id = self
            .approved_disclosure(requester, pseudonym, purpose, fields)
            .await;
        let body = self
            .open(requester, &id)
            .await
            .expect(200, "open disclosure");
        (id, body)
    }

    /// Signs a checkpoint now (auditor).
    pub async fn sign_checkpoint(&self) -> String {
        let t = self.token("auditor");
        self.call(Method::POST, "/v1/audit/checkpoint", Some(&t), None)
            .await
            .expect(200, "sign checkpoint");
        self.latest_checkpoint().await
    }

    pub async fn latest_checkpoint(&self) -> String {
        let r = self.get("/v1/audit/checkpoint", "auditor").await;
        r.expect(200, "latest checkpoint");
        r.text()
    }

    pub async fn public_key(&self) -> String {
        let r = self
            .call(Method::GET, "/v1/audit/public-key", None, None)
            .await;
        r.expect(200, "public key");
        r.text().trim().to_owned()
    }

    /// Every event: `(index, leaf bytes, parsed event)`, and the tree size the last page named.
    pub async fn events(&self) -> (Vec<(u64, Vec<u8>, Value)>, u64) {
        events_via(&self.client, &self.base, &self.token("auditor")).await
    }
}

pub async fn events_via(
    client: &reqwest::Client,
    base: &str,
    auditor: &str,
) -> (Vec<(u64, Vec<u8>, Value)>, u64) {
    let mut out = Vec::new();
    let mut tree_size = 0;
    loop {
        let r = send(
            client,
            base,
            Method::GET,
            &format!("/v1/audit/events?start={}&limit=1000", out.len()),
            Some(auditor),
            None,
        )
        .await;
        let page = r.expect(200, "events page");
        tree_size = page["tree_size"].as_u64().unwrap_or(tree_size);
        let events = page["events"].as_array().expect("events array").clone();
        if events.is_empty() {
            break;
        }
        for e in events {
            let leaf = STANDARD
                .decode(e["leaf"].as_str().expect("leaf"))
                .expect("leaf is base64");
            out.push((
                e["index"].as_u64().expect("index"),
                leaf,
                e["event"].clone(),
            ));
        }
    }
    (out, tree_size)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

// ------------------------------------------------------------------------------------------
// Valid identity values
// ------------------------------------------------------------------------------------------

/// An 18-character resident ID number from 17 digits, with its GB 11643 check character.
pub fn resident_id(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: &[u8; 11] = b"10X98765432";
    let sum: u32 = body17
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).expect("digit") * w)
        .sum();
    format!("{body17}{}", C[(sum % 11) as usize] as char)
}

/// A Luhn-valid account number from its digits but the last.
pub fn luhn(prefix: &str) -> String {
    let digits: Vec<u32> = prefix
        .chars()
        .map(|c| c.to_digit(10).expect("digit"))
        .collect();
    let mut sum = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        // From the right of the full number the check digit is position 0, so the last digit
        // of the prefix is doubled.
        let v = if i % 2 == 0 { d * 2 } else { *d };
        sum += if v > 9 { v - 9 } else { v };
    }
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

/// The `action` of an event.
pub fn action(ev: &Value) -> &str {
    ev["action"].as_str().unwrap_or_default()
}

/// A file in the test's data directory with `contents`.
pub fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("writing a file");
    p
}

//! The real binary on a throwaway store: `serve --demo` on 127.0.0.1 with the lifecycle
//! settings a test asks for, the `keys` and `audit` subcommands as an operator runs them, and
//! direct database access to look at envelopes as they are stored.
//!
//! SQLite stores use the embedded default's development protector (an age identity file in
//! the data directory, created by the first start); PostgreSQL stores need a passphrase, and
//! get a keyring pre-made with a cheap scrypt work factor (a rotation writes it back with the
//! service's own work factor).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};
use tempfile::TempDir;
use vault_crypto::keyring::{Keyring, KeyringProtector};
use vault_crypto::random::{RandomSource, SystemRandomSource};

#[path = "../support/pgdb.rs"]
mod pgdb;
pub use pgdb::PgDb;

/// The shipped policy directory.
pub const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies");
/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_reporter-vault");

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite in the data directory.
    Sqlite,
    /// A throwaway database on the PostgreSQL server of `RV_TEST_PG_URL`.
    Postgres,
}

/// Random hex, for unique names.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandomSource.fill(&mut buf).expect("randomness");
    hex::encode(buf)
}

// ------------------------------------------------------------------------------------------
// The store
// ------------------------------------------------------------------------------------------

/// A data directory (keyring, tokens, ledger) and its database.
pub struct Store {
    /// The data directory.
    pub dir: TempDir,
    /// The PostgreSQL database.
    pub pg: Option<PgDb>,
    /// The keyring passphrase (PostgreSQL only).
    pub passphrase: Option<String>,
}

impl Store {
    /// An empty store. On PostgreSQL, with a passphrase keyring made with a cheap work factor;
    /// on SQLite, the embedded default (the service makes the keyring and its identity file).
    pub async fn new(engine: Engine) -> Store {
        Store::make(engine, engine == Engine::Postgres).await
    }

    /// An empty store with a passphrase keyring on either engine, as production runs it.
    pub async fn with_passphrase(engine: Engine) -> Store {
        Store::make(engine, true).await
    }

    async fn make(engine: Engine, passphrase: bool) -> Store {
        let dir = tempfile::Builder::new()
            .prefix("rv-lifecycle-")
            .tempdir()
            .expect("tempdir");
        let store = Store {
            dir,
            pg: match engine {
                Engine::Sqlite => None,
                Engine::Postgres => Some(PgDb::create("rv_life").await),
            },
            passphrase: passphrase.then(|| format!("kr-{}", random_hex(8))),
        };
        if let Some(p) = &store.passphrase {
            Keyring::generate(&SystemRandomSource, 1_790_000_000)
                .expect("keyring")
                .save_with_work_factor(
                    &store.keyring_path(),
                    &KeyringProtector::Passphrase(SecretString::from(p.clone())),
                    10,
                )
                .expect("save keyring");
        }
        store
    }

    /// An empty store for a PKCS#11 provider: no keyring file at all.
    pub async fn for_hsm(engine: Engine) -> Store {
        let dir = tempfile::Builder::new()
            .prefix("rv-lifecycle-hsm-")
            .tempdir()
            .expect("tempdir");
        Store {
            dir,
            pg: match engine {
                Engine::Sqlite => None,
                Engine::Postgres => Some(PgDb::create("rv_life").await),
            },
            passphrase: None,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `DATA_DIR/keyring.age`.
    pub fn keyring_path(&self) -> PathBuf {
        self.data_dir().join("keyring.age")
    }

    /// `DATA_DIR/erasure-ledger.jsonl`.
    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir().join("erasure-ledger.jsonl")
    }

    /// The binary with this store's settings and nothing inherited that could change them.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("RV_LOG_FORMAT", "json")
            .env_remove("RUST_LOG")
            .env_remove("RV_KEYRING_PASSPHRASE")
            .env_remove("RV_KEYRING_PASSPHRASE_FILE")
            .env_remove("RV_DATABASE_URL")
            .env_remove("RV_DATABASE_URL_FILE")
            .env_remove("RV_ERASURE_LEDGER")
            .env_remove("RV_ERASURE_QUORUM")
            .env_remove("RV_RETENTION_YEARS")
            .env_remove("RV_KEY_PROVIDER")
            .env_remove("RV_PKCS11_MODULE")
            .env_remove("RV_PKCS11_TOKEN_LABEL")
            .env_remove("RV_PKCS11_PIN")
            .env_remove("RV_PKCS11_PIN_FILE")
            .env_remove("RV_KEY_RETIRE_GRACE_SECONDS")
            .env_remove("RV_KEY_RELOAD_SECONDS")
            .env_remove("RV_NOTIFY_WEBHOOK_URL")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .stdin(Stdio::null());
        if let Some(p) = &self.passphrase {
            cmd.env("RV_KEYRING_PASSPHRASE", p);
        }
        if let Some(pg) = &self.pg {
            cmd.arg("--database-url").arg(&pg.url);
        }
        cmd
    }

    /// Runs a subcommand to completion (off the async workers).
    pub async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || cmd.output().expect("run reporter-vault"))
            .await
            .expect("join")
    }

    /// `reporter-vault audit verify`, asserted to pass.
    pub async fn audit_verify(&self, env: &[(&str, &str)]) {
        let out = self.run(&["audit", "verify"], env).await;
        assert_ok(&out, "audit verify");
    }

    /// A direct connection to the database.
    pub async fn connect_db(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        let url = match &self.pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", self.data_dir().join("vault.db").display()),
        };
        let mut c = AnyConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        if self.pg.is_none() {
            sqlx::query("PRAGMA busy_timeout = 10000")
                .execute(&mut c)
                .await
                .expect("busy_timeout");
        }
        c
    }

    /// The vault record behind a pseudonym.
    pub async fn record_of(&self, pseudonym: &str) -> String {
        let mut c = self.connect_db().await;
        let id: String = sqlx::query("SELECT reporter_id FROM pseudonyms WHERE pseudonym = $1")
            .bind(pseudonym.to_owned())
            .fetch_one(&mut c)
            .await
            .unwrap_or_else(|e| panic!("the record of {pseudonym}: {e}"))
            .get("reporter_id");
        let _ = c.close().await;
        id
    }

    /// The stored row of a vault record.
    pub async fn reporter_row(&self, record: &str) -> ReporterRow {
        let mut c = self.connect_db().await;
        let row = sqlx::query(
            "SELECT envelope, blind_index, kek_version, erased_at FROM reporters WHERE id = $1",
        )
        .bind(record.to_owned())
        .fetch_one(&mut c)
        .await
        .unwrap_or_else(|e| panic!("the row of {record}: {e}"));
        let out = ReporterRow {
            envelope: row.get("envelope"),
            blind_index: row.get("blind_index"),
            kek_version: row.get("kek_version"),
            erased_at: row.get("erased_at"),
        };
        let _ = c.close().await;
        out
    }

    /// Every live envelope: (record id, kek_version column, envelope).
    pub async fn envelopes(&self) -> Vec<(String, i64, Vec<u8>)> {
        let mut c = self.connect_db().await;
        let rows = sqlx::query(
            "SELECT id, kek_version, envelope FROM reporters WHERE envelope IS NOT NULL ORDER BY id",
        )
        .fetch_all(&mut c)
        .await
        .expect("envelopes");
        let out = rows
            .iter()
            .map(|r| (r.get("id"), r.get("kek_version"), r.get("envelope")))
            .collect();
        let _ = c.close().await;
        out
    }

    /// One integer from a query.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let mut c = self.connect_db().await;
        let n: i64 = sqlx::query(AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0);
        let _ = c.close().await;
        n
    }
}

/// A `reporters` row.
#[derive(Debug, Clone)]
pub struct ReporterRow {
    /// The envelope (NULL once erased).
    pub envelope: Option<Vec<u8>>,
    /// The blind index (NULL once erased).
    pub blind_index: Option<Vec<u8>>,
    /// The KEK version column.
    pub kek_version: Option<i64>,
    /// When it was erased.
    pub erased_at: Option<i64>,
}

// ------------------------------------------------------------------------------------------
// Envelopes (docs/envelope-format.md)
// ------------------------------------------------------------------------------------------

/// The KEK version in an envelope's header.
pub fn env_version(env: &[u8]) -> u32 {
    assert_eq!(&env[..4], b"RVE\x01", "envelope magic and format version");
    u32::from_be_bytes(env[4..8].try_into().expect("4 bytes"))
}

/// Header + wrapped data key.
pub fn env_head(env: &[u8]) -> &[u8] {
    let w = usize::from(u16::from_be_bytes(env[8..10].try_into().expect("2 bytes")));
    &env[..10 + w]
}

/// The data part: nonce, ciphertext and tag (everything after the wrapped data key).
pub fn env_data(env: &[u8]) -> &[u8] {
    &env[env_head(env).len()..]
}

// ------------------------------------------------------------------------------------------
// Processes
// ------------------------------------------------------------------------------------------

/// Standard output and error of a run, as text, with the exit status in front.
pub fn describe(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts a successful run.
#[track_caller]
pub fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", describe(out));
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP client.
pub fn client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The demo principals' tokens (`DATA_DIR/demo-tokens.json`) and the admin token.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// case_system.
    pub case: String,
    /// custodian.
    pub custodian: String,
    /// custodian2.
    pub custodian2: String,
    /// auditor.
    pub auditor: String,
    /// finance.
    pub finance: String,
    /// The bootstrap admin (`DATA_DIR/admin.token`).
    pub admin: String,
    /// Principal ids by demo key.
    pub ids: Value,
}

/// `serve --demo` on a free port.
pub struct Server {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Tokens.
    pub tokens: Tokens,
    /// A client.
    pub client: reqwest::Client,
    logs: TempDir,
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (Null if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status; returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16, what: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{what}: expected {status}, got {}: {}",
            self.status,
            self.text()
        );
        self.json()
    }

    /// Asserts an error answer with `status` and `error.code`; returns the error object.
    #[track_caller]
    pub fn expect_err(&self, status: u16, code: &str, what: &str) -> Value {
        let v = self.expect(status, what);
        assert_eq!(
            v["error"]["code"].as_str(),
            Some(code),
            "{what}: error code in {v}"
        );
        v["error"].clone()
    }
}

impl Server {
    /// Starts `serve --demo` with `env` and waits for `/healthz`.
    pub async fn start(store: &Store, env: &[(&str, &str)]) -> Server {
        install_crypto_provider();
        let logs = tempfile::tempdir().expect("logs");
        let port = free_port();
        let mut cmd = store.command(&["serve", "--demo"]);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--policies")
            .arg(POLICIES)
            .stdout(std::fs::File::create(logs.path().join("stdout")).expect("log"))
            .stderr(std::fs::File::create(logs.path().join("stderr")).expect("log"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn reporter-vault serve");
        let base = format!("http://127.0.0.1:{port}");
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "reporter-vault serve exited with {status}: {}",
                    std::fs::read_to_string(logs.path().join("stderr")).unwrap_or_default()
                );
            }
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "no /healthz within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let t: Value = serde_json::from_slice(
            &std::fs::read(store.data_dir().join("demo-tokens.json")).expect("demo tokens"),
        )
        .expect("demo tokens JSON");
        let tok = |k: &str| t[k]["token"].as_str().expect("token").to_owned();
        let admin = std::fs::read_to_string(store.data_dir().join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_owned();
        Server {
            child,
            base,
            tokens: Tokens {
                case: tok("case_system"),
                custodian: tok("custodian"),
                custodian2: tok("custodian2"),
                auditor: tok("auditor"),
                finance: tok("finance"),
                admin,
                ids: t.clone(),
            },
            client,
            logs,
        }
    }

    /// One request.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = r.status().as_u16();
        let body = r.bytes().await.expect("body").to_vec();
        let resp = Resp { status, body };
        assert_ne!(status, 500, "{path}: a 500: {}", resp.text());
        if status >= 400 && path.starts_with("/v1/") {
            let v = resp.json();
            assert!(
                v["error"]["code"].is_string(),
                "{path}: error {status} without error.code: {}",
                resp.text()
            );
        }
        resp
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// POST JSON with a token.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// POST without a body.
    pub async fn post_empty(&self, path: &str, token: &str) -> Resp {
        self.call(Method::POST, path, Some(token), None).await
    }

    /// Seals `person` for `case_ref` received at `received_at` in 140100; the answer.
    pub async fn seal_at(&self, person: &Person, case_ref: &str, received_at: &str) -> Value {
        self.post(
            "/v1/reporters",
            &self.tokens.case,
            seal_body("140100", case_ref, received_at, person),
        )
        .await
        .expect(201, "seal")
    }

    /// Seals `person` (received this morning); returns the pseudonym.
    pub async fn seal(&self, person: &Person, case_ref: &str) -> String {
        self.seal_at(person, case_ref, &received_days_ago(0)).await["pseudonym"]
            .as_str()
            .expect("pseudonym")
            .to_owned()
    }

    /// `GET /v1/pseudonyms/{p}`'s status.
    pub async fn pseudonym_status(&self, p: &str) -> String {
        let v = self
            .get(&format!("/v1/pseudonyms/{p}"), &self.tokens.case)
            .await
            .expect(200, "read a pseudonym");
        v["status"].as_str().expect("status").to_owned()
    }

    /// Requests a disclosure of `fields`; returns its id.
    pub async fn request_disclosure(&self, p: &str, fields: &[&str]) -> String {
        let v = self
            .post(
                "/v1/disclosures",
                &self.tokens.case,
                json!({"pseudonym": p, "purpose": "verification_contact",
                       "justification": "核查需要联系举报人补充材料", "fields": fields}),
            )
            .await
            .expect(201, "request a disclosure");
        v["id"].as_str().expect("id").to_owned()
    }

    /// Requests a disclosure of `fields` and has a custodian approve it; returns its id.
    pub async fn approved_disclosure(&self, p: &str, fields: &[&str]) -> String {
        let id = self.request_disclosure(p, fields).await;
        self.post(
            &format!("/v1/disclosures/{id}/approve"),
            &self.tokens.custodian,
            json!({"comment": "同意"}),
        )
        .await
        .expect(200, "approve a disclosure");
        id
    }

    /// `POST /v1/disclosures/{id}/open` as the requester.
    pub async fn open(&self, id: &str) -> Resp {
        self.post_empty(&format!("/v1/disclosures/{id}/open"), &self.tokens.case)
            .await
    }

    /// `GET /v1/admin/keys`.
    pub async fn keys(&self) -> Value {
        self.get("/v1/admin/keys", &self.tokens.admin)
            .await
            .expect(200, "GET /v1/admin/keys")
    }

    /// `POST /v1/admin/keys/rotate`; the new active version.
    pub async fn rotate(&self) -> u64 {
        let v = self
            .post_empty("/v1/admin/keys/rotate", &self.tokens.admin)
            .await
            .expect(201, "rotate");
        v["active_version"].as_u64().expect("active_version")
    }

    /// `POST /v1/admin/keys/rewrap`, then polls the job until it finishes; the final job.
    pub async fn rewrap_to_completion(&self) -> Value {
        let v = self
            .post_empty("/v1/admin/keys/rewrap", &self.tokens.admin)
            .await
            .expect(202, "rewrap");
        let id = v["job_id"].as_str().expect("job_id").to_owned();
        assert!(id.starts_with("job_"), "job id {id}");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let j = self
                .get(&format!("/v1/admin/jobs/{id}"), &self.tokens.admin)
                .await
                .expect(200, "GET job");
            assert_eq!(j["id"], id.as_str());
            assert_eq!(j["kind"], "rewrap");
            match j["status"].as_str() {
                Some("completed") => return j,
                Some("failed") => panic!("the rewrap job failed: {j}"),
                Some("queued" | "running") => {}
                other => panic!("unexpected job status {other:?}: {j}"),
            }
            assert!(
                Instant::now() < deadline,
                "the rewrap job did not finish in 90 s: {j}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST /v1/admin/keys/{v}/retire` as admin.
    pub async fn retire(&self, version: &str) -> Resp {
        self.post_empty(
            &format!("/v1/admin/keys/{version}/retire"),
            &self.tokens.admin,
        )
        .await
    }

    /// Every event of the access trail, as the auditor.
    pub async fn events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self
                .get(
                    &format!("/v1/audit/events?start={}&limit=1000", out.len()),
                    &self.tokens.auditor,
                )
                .await
                .expect(200, "audit events");
            let page = v["events"].as_array().expect("events").clone();
            let n = page.len();
            out.extend(page.into_iter().map(|e| e["event"].clone()));
            if n < 1000 {
                return out;
            }
        }
    }

    /// Everything the process logged so far.
    pub fn output(&self) -> String {
        let mut all = std::fs::read_to_string(self.logs.path().join("stdout")).unwrap_or_default();
        all.push_str(&std::fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default());
        all
    }

    /// SIGTERM (to our own child, by pid) and a clean exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().to_string();
        let st = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "serve did not stop within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `serve` expecting it to refuse: waits for the exit (at most 60 s) and returns the
/// status and everything it wrote. Panics if it starts answering instead.
pub async fn serve_refused(store: &Store, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let logs = tempfile::tempdir().expect("logs");
    let port = free_port();
    let mut cmd = store.command(&["serve", "--demo"]);
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--policies")
        .arg(POLICIES)
        .stdout(std::fs::File::create(logs.path().join("stdout")).expect("log"))
        .stderr(std::fs::File::create(logs.path().join("stderr")).expect("log"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn reporter-vault serve");
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status().is_success()
        {
            let _ = child.kill();
            let _ = child.wait();
            panic!("reporter-vault serve started although it should have refused");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("reporter-vault serve neither started nor exited within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut all = std::fs::read_to_string(logs.path().join("stdout")).unwrap_or_default();
    all.push_str(&std::fs::read_to_string(logs.path().join("stderr")).unwrap_or_default());
    (status, all)
}

/// The entry of `versions` for `version` in a `GET /v1/admin/keys` answer.
#[track_caller]
pub fn key_version(keys: &Value, version: u64) -> Value {
    keys["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["version"].as_u64() == Some(version))
        .unwrap_or_else(|| panic!("no version {version} in {keys}"))
        .clone()
}

// ------------------------------------------------------------------------------------------
// People
// ------------------------------------------------------------------------------------------

/// Now in China Standard Time (the binary runs on the machine's clock).
// The service under test runs on the system clock, and so does its test.
#[allow(clippy::disallowed_methods)]
pub fn cst_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+8))
}

/// A `received_at` `days` days (and an hour) before now, RFC 3339 in CST.
pub fn received_days_ago(days: i64) -> String {
    (cst_now() - time::Duration::days(days) - time::Duration::hours(1))
        .replace_nanosecond(0)
        .expect("nanosecond")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

/// The CST date `days` days before today, `YYYY-MM-DD`.
pub fn date_days_ago(days: i64) -> String {
    (cst_now() - time::Duration::days(days)).date().to_string()
}

/// A reporter with valid identity values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// 姓名.
    pub name: String,
    /// Resident ID.
    pub id_number: String,
    /// Mobile.
    pub phone: String,
    /// E-mail.
    pub email: String,
    /// Address.
    pub address: String,
}

fn gb11643_check(first17: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).expect("digit") * w)
        .sum();
    b"10X98765432"[(sum % 11) as usize] as char
}

const SURNAMES: [&str; 6] = ["张", "李", "王", "赵", "钱", "孙"];
const GIVEN: [&str; 6] = ["建国", "秀英", "志强", "丽华", "海燕", "德明"];

impl Person {
    /// The `n`th of a family of distinct valid people (distinct resident IDs and phones for
    /// every `n` below 15,000,000).
    pub fn nth(n: u32) -> Person {
        let body = format!(
            "140105{:04}{:02}{:02}{:03}",
            1950 + (n / 336) % 50,
            1 + (n / 28) % 12,
            1 + n % 28,
            100 + (n / 16_800) % 900
        );
        Person {
            name: format!(
                "{}{}",
                SURNAMES[(n % 6) as usize],
                GIVEN[(n / 6 % 6) as usize]
            ),
            id_number: format!("{body}{}", gb11643_check(&body)),
            phone: format!("139{:08}", n),
            email: format!("reporter{n}@example.cn"),
            address: format!("山西省太原市小店区长风街{}号", 10 + n),
        }
    }

    /// The `identity` object.
    pub fn identity(&self) -> Value {
        json!({"name": self.name, "id_number": self.id_number, "phone": self.phone,
               "email": self.email, "address": self.address})
    }

    /// Every value, for "this must not appear" checks.
    pub fn values(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.id_number.clone(),
            self.phone.clone(),
            self.email.clone(),
            self.address.clone(),
        ]
    }
}

/// The identity fields a full disclosure asks for.
pub const ALL_FIELDS: [&str; 5] = ["name", "id_number", "phone", "email", "address"];

/// A seal body.
pub fn seal_body(jurisdiction: &str, case_ref: &str, received_at: &str, p: &Person) -> Value {
    json!({
        "jurisdiction": jurisdiction, "case_ref": case_ref, "received_at": received_at,
        "channel": "web", "employee_of_reported_unit": false, "identity": p.identity(),
    })
}

/// Asserts that an opened disclosure of [`ALL_FIELDS`] holds exactly `p`'s identity.
#[track_caller]
pub fn assert_discloses(opened: &Value, p: &Person, what: &str) {
    assert_eq!(
        opened["fields"],
        json!({"name": p.name, "id_number": p.id_number, "phone": p.phone,
               "email": p.email, "address": p.address}),
        "{what}: the opened identity"
    );
}

/// Asserts that none of `p`'s values occurs in `haystack`.
#[track_caller]
pub fn assert_no_identity(haystack: &[u8], p: &Person, what: &str) {
    for v in p.values() {
        assert!(
            !haystack.windows(v.len()).any(|w| w == v.as_bytes()),
            "{what} contains the identity value {v:?}"
        );
    }
}

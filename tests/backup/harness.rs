//! The real binary on a throwaway store: `serve --demo` on 127.0.0.1, and the offline
//! subcommands (`backup`, `restore`, `audit verify`) as an operator runs them. Every store's
//! keyring is passphrase-protected (PostgreSQL needs that, and it lets one keyring move
//! between engines), made with a cheap scrypt work factor so tests do not spend a second per
//! load.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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
const BIN: &str = env!("CARGO_BIN_EXE_reporter-vault");

/// Which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite in the data directory.
    Sqlite,
    /// A throwaway database on the PostgreSQL server of `RV_TEST_PG_URL`.
    Postgres,
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandomSource.fill(&mut buf).expect("randomness");
    hex::encode(buf)
}

/// A data directory (keyring, tokens, ledger) and its database.
pub struct Store {
    pub dir: TempDir,
    pub pg: Option<PgDb>,
    pub passphrase: String,
}

impl Store {
    /// An empty store with a fresh keyring.
    pub async fn new(engine: Engine) -> Store {
        let store = Store::bare(engine, format!("kr-{}", random_hex(8))).await;
        Keyring::generate(&SystemRandomSource, 1_790_000_000)
            .expect("keyring")
            .save_with_work_factor(
                &store.keyring_path(),
                &KeyringProtector::Passphrase(SecretString::from(store.passphrase.clone())),
                10,
            )
            .expect("save keyring");
        store
    }

    /// An empty store holding a copy of `other`'s keyring (what an operator restoring does).
    pub async fn with_keyring_of(engine: Engine, other: &Store) -> Store {
        let store = Store::bare(engine, other.passphrase.clone()).await;
        std::fs::copy(other.keyring_path(), store.keyring_path()).expect("copy keyring");
        set_private(&store.keyring_path());
        store
    }

    /// An empty store without a keyring.
    pub async fn without_keyring(engine: Engine) -> Store {
        Store::bare(engine, format!("kr-{}", random_hex(8))).await
    }

    async fn bare(engine: Engine, passphrase: String) -> Store {
        let dir = tempfile::Builder::new()
            .prefix("rv-backup-")
            .tempdir()
            .expect("tempdir");
        let pg = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(PgDb::create("rv_backup").await),
        };
        Store {
            dir,
            pg,
            passphrase,
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn keyring_path(&self) -> PathBuf {
        self.data_dir().join("keyring.age")
    }

    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir().join("erasure-ledger.jsonl")
    }

    /// Writes an empty erasure ledger ("no erasures").
    pub fn empty_ledger(&self) {
        std::fs::write(self.ledger_path(), b"").expect("ledger");
    }

    /// The binary with this store's settings and nothing inherited that could change them.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("RV_LOG_FORMAT", "json")
            .env("RV_KEYRING_PASSPHRASE", &self.passphrase)
            .env_remove("RUST_LOG")
            .env_remove("RV_KEYRING_PASSPHRASE_FILE")
            .env_remove("RV_DATABASE_URL")
            .env_remove("RV_DATABASE_URL_FILE")
            .env_remove("RV_BACKUP_PASSPHRASE")
            .env_remove("RV_BACKUP_PASSPHRASE_FILE")
            .env_remove("RV_BACKUP_IDENTITY_FILE")
            .env_remove("RV_BACKUP_RECIPIENTS_FILE")
            .env_remove("RV_ERASURE_LEDGER")
            .env_remove("RV_KEY_PROVIDER")
            .stdin(Stdio::null());
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

    /// A direct connection to the database.
    pub async fn connect_db(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        let url = match &self.pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", self.data_dir().join("vault.db").display()),
        };
        AnyConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
    }

    /// Rows in `table`; `None` if the table (or the SQLite file) does not exist.
    pub async fn count(&self, table: &str) -> Option<i64> {
        if self.pg.is_none() && !self.data_dir().join("vault.db").exists() {
            return None;
        }
        let mut c = self.connect_db().await;
        let n = sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM {table}")))
            .fetch_one(&mut c)
            .await
            .ok()
            .map(|r| r.get::<i64, _>("n"));
        let _ = c.close().await;
        n
    }
}

pub fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// Standard output and error of a run, as text, with the exit status in front.
pub fn describe(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
pub fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", describe(out));
}

/// Asserts a refusal: a non-zero exit whose stderr says `needle`.
#[track_caller]
pub fn assert_refused(out: &Output, needle: &str, what: &str) {
    assert!(
        !out.status.success(),
        "{what} should have been refused: {}",
        describe(out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(needle),
        "{what}: expected {needle:?} in stderr: {}",
        describe(out)
    );
}

// ------------------------------------------------------------------------------------------
// The service
// ------------------------------------------------------------------------------------------

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The demo principals' tokens (`DATA_DIR/demo-tokens.json`).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub case: String,
    pub custodian: String,
    pub custodian2: String,
    pub finance: String,
    pub auditor: String,
}

/// `serve --demo` on a free port.
pub struct Server {
    child: std::process::Child,
    pub base: String,
    pub tokens: Tokens,
    pub client: reqwest::Client,
    logs: TempDir,
}

impl Server {
    pub async fn start(store: &Store) -> Server {
        install_crypto_provider();
        let logs = tempfile::tempdir().expect("logs");
        let port = free_port();
        let mut cmd = store.command(&["serve", "--demo"]);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--policies")
            .arg(POLICIES)
            // Stored checkpoints while the test runs, so restore checks them too.
            .arg("--checkpoint-every-events")
            .arg("7")
            .stdout(std::fs::File::create(logs.path().join("stdout")).expect("log"))
            .stderr(std::fs::File::create(logs.path().join("stderr")).expect("log"));
        let mut child = cmd.spawn().expect("spawn reporter-vault serve");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
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
        Server {
            child,
            base,
            tokens: Tokens {
                case: tok("case_system"),
                custodian: tok("custodian"),
                custodian2: tok("custodian2"),
                finance: tok("finance"),
                auditor: tok("auditor"),
            },
            client,
            logs,
        }
    }

    /// One request; returns the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Seals `person` in 140100; returns the pseudonym.
    pub async fn seal(&self, person: &Person, case_ref: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/reporters",
                &self.tokens.case,
                Some(seal_body(
                    "140100",
                    case_ref,
                    "2026-11-20T08:00:00+08:00",
                    person,
                )),
            )
            .await;
        assert_eq!(s, 201, "seal: {v}");
        v["pseudonym"].as_str().expect("pseudonym").to_owned()
    }

    /// Requests a disclosure of `fields` and has a custodian approve it; returns its id.
    pub async fn approved_disclosure(&self, pseudonym: &str, fields: &[&str]) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/disclosures",
                &self.tokens.case,
                Some(
                    json!({"pseudonym": pseudonym, "purpose": "verification_contact",
                    "justification": "核查需要联系举报人补充材料", "fields": fields}),
                ),
            )
            .await;
        assert_eq!(s, 201, "request a disclosure: {v}");
        let id = v["id"].as_str().expect("id").to_owned();
        let (s, v) = self
            .call(
                Method::POST,
                &format!("/v1/disclosures/{id}/approve"),
                &self.tokens.custodian,
                Some(json!({"comment": "同意"})),
            )
            .await;
        assert_eq!(s, 200, "approve: {v}");
        id
    }

    /// Everything the process logged so far.
    pub fn output(&self) -> Vec<u8> {
        let mut all = std::fs::read(self.logs.path().join("stdout")).unwrap_or_default();
        all.extend(std::fs::read(self.logs.path().join("stderr")).unwrap_or_default());
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

// ------------------------------------------------------------------------------------------
// People
// ------------------------------------------------------------------------------------------

/// A reporter with valid identity values.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub id_number: String,
    pub phone: String,
    pub email: String,
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
    /// The `n`th of a family of distinct valid people.
    pub fn nth(n: u32) -> Person {
        let body = format!(
            "140105198{}{:02}{:02}{:03}",
            n % 10,
            1 + n % 12,
            1 + n % 28,
            100 + n % 900
        );
        Person {
            name: format!(
                "{}{}{}",
                SURNAMES[(n % 6) as usize],
                GIVEN[(n / 6 % 6) as usize],
                ["", "一", "二", "三", "四", "五", "六", "七"][(n / 36 % 8) as usize]
            ),
            id_number: format!("{body}{}", gb11643_check(&body)),
            phone: format!("1390013{:04}", 1000 + n),
            email: format!("reporter{n}@example.cn"),
            address: format!("山西省太原市小店区长风街{}号", 10 + n),
        }
    }

    pub fn identity(&self) -> Value {
        json!({"name": self.name, "id_number": self.id_number, "phone": self.phone,
               "email": self.email, "address": self.address})
    }

    /// The values that must never appear in an archive, a log or an output.
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

pub fn seal_body(jurisdiction: &str, case_ref: &str, received_at: &str, p: &Person) -> Value {
    json!({
        "jurisdiction": jurisdiction, "case_ref": case_ref, "received_at": received_at,
        "channel": "web", "employee_of_reported_unit": false, "identity": p.identity(),
    })
}

/// Asserts that no identity value of `people` occurs in `haystack`.
#[track_caller]
pub fn assert_no_identity(haystack: &[u8], people: &[Person], what: &str) {
    for p in people {
        for v in p.values() {
            assert!(
                !haystack.windows(v.len()).any(|w| w == v.as_bytes()),
                "{what} contains the identity value {v:?}"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// The reference age tool
// ------------------------------------------------------------------------------------------

/// `age-keygen -o path`; returns the recipient.
pub fn age_keygen(path: &Path) -> String {
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("age-keygen is not installed ({e}): apt-get install age"));
    assert!(out.status.success(), "age-keygen: {}", describe(&out));
    set_private(path);
    std::fs::read_to_string(path)
        .expect("identity")
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("public key line")
        .trim()
        .to_owned()
}

/// `age -d -i identity file`: the plaintext.
pub fn age_decrypt(identity: &Path, file: &Path) -> Vec<u8> {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("age is not installed ({e}): apt-get install age"));
    assert!(out.status.success(), "age -d: {}", describe(&out));
    out.stdout
}

/// `age -r recipient -o out` of `plaintext`.
pub fn age_encrypt(recipient: &str, plaintext: &[u8], out: &Path) {
    use std::io::Write;
    let mut child = Command::new("age")
        .arg("-r")
        .arg(recipient)
        .arg("-o")
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("age");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(plaintext)
        .expect("write to age");
    assert!(child.wait().expect("age").success(), "age -r failed");
}

// ------------------------------------------------------------------------------------------
// The archive plaintext
// ------------------------------------------------------------------------------------------

/// A decrypted archive, line by line.
#[derive(Debug, Clone)]
pub struct Plain {
    pub lines: Vec<Value>,
}

impl Plain {
    pub fn parse(bytes: &[u8]) -> Plain {
        let text = std::str::from_utf8(bytes).expect("the archive plaintext is UTF-8");
        assert!(text.ends_with('\n'), "the archive ends with a newline");
        Plain {
            lines: text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect(),
        }
    }

    pub fn header(&self) -> &Value {
        &self.lines[0]
    }

    /// The rows of `table`, in order.
    pub fn rows(&self, table: &str) -> Vec<Vec<Value>> {
        let start = self
            .lines
            .iter()
            .position(|l| l["type"] == "table" && l["name"] == table)
            .unwrap_or_else(|| panic!("no table {table}"));
        self.lines[start + 1..]
            .iter()
            .take_while(|l| l.is_array())
            .map(|l| l.as_array().expect("row").clone())
            .collect()
    }

    /// Column `name` of `table` as the header lists it.
    pub fn column(&self, table: &str, name: &str) -> usize {
        let t = self.header()["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["name"] == table)
            .unwrap_or_else(|| panic!("no table {table} in the header"));
        t["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .position(|c| c[0] == name)
            .unwrap_or_else(|| panic!("no column {table}.{name}"))
    }

    /// The plaintext again, with the trailer recomputed (a forger who knows the format).
    pub fn to_bytes_resealed(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for l in &self.lines[..self.lines.len() - 1] {
            out.extend(serde_json::to_vec(l).expect("json"));
            out.push(b'\n');
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &out);
        out.extend(
            serde_json::to_vec(&json!({"type": "end", "sha256": hex::encode(digest.as_ref())}))
                .expect("json"),
        );
        out.push(b'\n');
        out
    }
}

/// The leaf of an event row, decoded.
pub fn leaf_of(plain: &Plain, row: &[Value]) -> Value {
    use base64::Engine as _;
    let b64 = row[plain.column("audit_events", "leaf")]
        .as_str()
        .expect("leaf");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 leaf");
    serde_json::from_slice(&bytes).expect("leaf JSON")
}

//! Spawning the service for a test: a fresh data directory and (for PostgreSQL) a fresh
//! database per test, the server on 127.0.0.1:0, and a client whose every answer is checked
//! against the contract's invariants (an `x-request-id`, no `500`, errors in the error shape).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{AnyConnection, AssertSqlSafe, Connection};
use tempfile::TempDir;
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vault_crypto::random::{RandomSource, SystemRandomSource};
use vault_domain::DisclosureConfig;
use vault_domain::clock::{Clock, ManualClock, SystemClock};
use vault_service::app::{Application, NotifierConfig, ServeConfig, StartError, VaultConfig};
use vault_storage::SqliteSync;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The embedded default: SQLite in the data directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server named by `RV_TEST_PG_URL`.
    Postgres,
}

/// Where the manual clock starts: a weekday morning in China Standard Time.
pub const T0: OffsetDateTime = datetime!(2026-11-20 12:00:00 +08:00);
/// A `received_at` a few hours before [`T0`] (and in the past for the system clock too).
pub const RECEIVED_AT: &str = "2026-11-20T08:00:00+08:00";

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandomSource
        .fill(&mut buf)
        .expect("the system random source works");
    hex::encode(buf)
}

// ------------------------------------------------------------------------------------------
// Storage: data directory + database, outliving any one server (restart tests)
// ------------------------------------------------------------------------------------------

#[path = "../support/pgdb.rs"]
mod pgdb;
pub use pgdb::PgDb;

/// A data directory and its database; survives server restarts.
pub struct Storage {
    /// The data directory (keyring, admin token, SQLite files, outbox).
    pub dir: TempDir,
    /// The PostgreSQL database, for [`Engine::Postgres`].
    pub pg: Option<PgDb>,
    /// The keyring passphrase, if the keyring is passphrase-protected.
    pub passphrase: Option<String>,
}

impl Storage {
    /// A fresh store. PostgreSQL needs a keyring passphrase (the identity-file protector is
    /// for the embedded default only); SQLite uses the development identity file unless
    /// `passphrase` is given.
    pub async fn new(engine: Engine, passphrase: Option<String>) -> Arc<Storage> {
        let dir = tempfile::Builder::new()
            .prefix("rv-blackbox-")
            .tempdir()
            .expect("a temporary directory");
        let (pg, passphrase) = match engine {
            Engine::Sqlite => (None, passphrase),
            Engine::Postgres => (
                Some(PgDb::create("rv_test").await),
                Some(passphrase.unwrap_or_else(|| format!("pg-test-passphrase-{}", random_hex(8)))),
            ),
        };
        Arc::new(Storage {
            dir,
            pg,
            passphrase,
        })
    }

    /// A fresh store whose passphrase keyring (PostgreSQL) is pre-made with a cheap scrypt
    /// work factor, as an operator restoring a keyring would leave it: the service's default
    /// costs about a second of CPU per save and per load, which the tests that are not about
    /// the keyring need not pay. The keyring tests use [`Storage::new`].
    pub async fn new_fast(engine: Engine) -> Arc<Storage> {
        let storage = Storage::new(engine, None).await;
        if let Some(p) = &storage.passphrase {
            let keyring =
                vault_crypto::keyring::Keyring::generate(&SystemRandomSource, T0.unix_timestamp())
                    .expect("generate a keyring");
            keyring
                .save_with_work_factor(
                    &storage.data_dir().join("keyring.age"),
                    &vault_crypto::keyring::KeyringProtector::Passphrase(SecretString::from(
                        p.clone(),
                    )),
                    10,
                )
                .expect("save the keyring");
        }
        storage
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--database-url` (None: SQLite in the data directory).
    pub fn database_url(&self) -> Option<String> {
        self.pg.as_ref().map(|p| p.url.clone())
    }

    /// A direct connection to the database, bypassing the service (tampering, row counts).
    pub async fn connect_db(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        let url = match &self.pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", self.data_dir().join("vault.db").display()),
        };
        let mut conn = AnyConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("direct connection to {url}: {e}"));
        if self.pg.is_none() {
            sqlx::query("PRAGMA busy_timeout = 10000")
                .execute(&mut conn)
                .await
                .expect("busy_timeout");
        }
        conn
    }

    /// Rows in `table`, read directly from the database.
    pub async fn count_rows(&self, table: &str) -> i64 {
        use sqlx::Row;
        let mut conn = self.connect_db().await;
        let row = sqlx::query(AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM {table}")))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("counting {table}: {e}"));
        let n: i64 = row.get("n");
        let _ = conn.close().await;
        n
    }
}

// ------------------------------------------------------------------------------------------
// The server
// ------------------------------------------------------------------------------------------

/// Which clock the server gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockKind {
    /// A [`ManualClock`] at [`T0`], moved by the test.
    Manual,
    /// The system clock (needed where real waiting is under test: delivery retries).
    System,
}

/// How to build the server.
#[derive(Clone)]
pub struct Options {
    /// Delivery of reporter messages.
    pub notifier: NotifierConfig,
    /// Clock.
    pub clock: ClockKind,
    /// Override of the storage's passphrase (`Some(None)`: start without one).
    pub passphrase: Option<Option<String>>,
    /// Body limit.
    pub max_body: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            notifier: NotifierConfig::File,
            clock: ClockKind::Manual,
            passphrase: None,
            max_body: 64 * 1024,
        }
    }
}

/// A running server and a checked client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bootstrap admin's token, read from `DATA_DIR/admin.token`.
    pub admin_token: String,
    /// The manual clock, if the server has one.
    pub manual_clock: Option<Arc<ManualClock>>,
    /// Data directory and database.
    pub storage: Arc<Storage>,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), StartError>>>,
}

/// A principal created through the API.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `prn_…`.
    pub id: String,
    /// Bearer token.
    pub token: String,
}

/// What a request sends as its body.
pub enum Body {
    /// No body.
    None,
    /// `application/json`.
    Json(Value),
    /// Exactly these bytes with this content type.
    Raw(&'static str, Vec<u8>),
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON (panics with the body if it is not).
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `error.code` of an error answer.
    #[track_caller]
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {}", self.text()))
            .to_owned()
    }

    /// `error.field` of an error answer, if any.
    pub fn field(&self) -> Option<String> {
        self.json()["error"]["field"].as_str().map(str::to_owned)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Asserts the status, showing the body otherwise; returns the JSON body if any.
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

    /// Asserts an error answer with `status` and `code`.
    #[track_caller]
    pub fn expect_err(&self, status: u16, code: &str, what: &str) {
        self.expect(status, what);
        assert_eq!(self.code(), code, "{what}: error code in {}", self.text());
    }
}

/// The invariants every answer of the service keeps, whatever was asked.
#[track_caller]
pub fn check_invariants(r: &Resp, what: &str) {
    assert_ne!(
        r.status,
        500,
        "{what}: a 500 (no request may get one): {}",
        r.text()
    );
    let rid = r
        .header("x-request-id")
        .unwrap_or_else(|| panic!("{what}: no x-request-id header (status {})", r.status));
    assert!(!rid.is_empty(), "{what}: empty x-request-id");
    if r.status >= 400 {
        let ct = r.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "{what}: error answer {} with content-type {ct:?}: {}",
            r.status,
            r.text()
        );
        let v: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {}", r.text()));
        let top: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            top,
            ["error", "request_id"],
            "{what}: error body shape: {v}"
        );
        assert_eq!(
            v["request_id"].as_str(),
            Some(rid.as_str()),
            "{what}: request_id != x-request-id"
        );
        let err = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: error is not an object: {v}"));
        for k in err.keys() {
            assert!(
                ["code", "message", "field"].contains(&k.as_str()),
                "{what}: unexpected key {k:?} in error: {v}"
            );
        }
        let code = err.get("code").and_then(Value::as_str).unwrap_or_default();
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{what}: error.code is not snake_case: {v}"
        );
        assert!(
            err.get("message").is_some_and(Value::is_string),
            "{what}: no error.message: {v}"
        );
    }
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    // reqwest is built with `rustls-no-provider`: its client builder needs a process-wide
    // provider even for plain-HTTP use.
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP client for tests.
pub fn client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

/// Sends one request to `base` and checks the invariants of its answer.
pub async fn send(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Body,
) -> Resp {
    let what = format!("{method} {path}");
    let mut rb = client.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        rb = rb.header("authorization", format!("Bearer {t}"));
    }
    rb = match body {
        Body::None => rb,
        Body::Json(v) => rb
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&v).expect("json")),
        Body::Raw(ct, bytes) => rb.header("content-type", ct).body(bytes),
    };
    let res = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{what}: request failed: {e}"));
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"))
        .to_vec();
    let r = Resp {
        status,
        headers,
        body,
    };
    check_invariants(&r, &what);
    r
}

/// Starts a server on a fresh store with default options.
pub async fn spawn_app(engine: Engine) -> TestApp {
    spawn_with(engine, Options::default()).await
}

/// Starts a server on a fresh store.
pub async fn spawn_with(engine: Engine, opts: Options) -> TestApp {
    let storage = Storage::new_fast(engine).await;
    start(&storage, opts).await
}

/// Starts a server on an existing store (panics if it refuses).
pub async fn start(storage: &Arc<Storage>, opts: Options) -> TestApp {
    match try_start(storage, opts).await {
        Ok(app) => app,
        Err(e) => panic!("the service refused to start: {e}"),
    }
}

/// The configuration a test server gets.
pub fn serve_config(storage: &Storage, opts: &Options) -> ServeConfig {
    let passphrase = match &opts.passphrase {
        Some(p) => p.clone(),
        None => storage.passphrase.clone(),
    };
    ServeConfig {
        vault: VaultConfig {
            data_dir: storage.data_dir().to_owned(),
            database_url: storage.database_url(),
            passphrase: passphrase.map(|p| Arc::new(SecretString::from(p))),
            sqlite_sync: SqliteSync::Normal,
            disclosure: DisclosureConfig::default(),
            log_origin: None,
            leak_traces_per_minute: 30,
            // The identity vault under test needs no reward policies; the binary tests load
            // the shipped ones.
            policies_dir: None,
            settlement: Default::default(),
            ops: Default::default(),
        },
        listen: "127.0.0.1:0".parse().expect("address"),
        max_body: opts.max_body,
        notifier: opts.notifier.clone(),
        demo: false,
        checkpoint_every_events: 1000,
        checkpoint_every: Duration::from_secs(60),
        limits: Default::default(),
        body_timeout: Duration::from_secs(10),
    }
}

/// Builds the application; the error is the service's refusal.
pub async fn build_app(
    storage: &Storage,
    opts: &Options,
) -> Result<(Application, Option<Arc<ManualClock>>), StartError> {
    let (clock, manual): (Arc<dyn Clock>, _) = match opts.clock {
        ClockKind::Manual => {
            let c = Arc::new(ManualClock::new(T0));
            (c.clone(), Some(c))
        }
        ClockKind::System => (Arc::new(SystemClock), None),
    };
    let app = Application::build(
        serve_config(storage, opts),
        clock,
        Arc::new(SystemRandomSource),
    )
    .await?;
    Ok((app, manual))
}

/// Starts a server on `storage`, or returns why it refused.
pub async fn try_start(storage: &Arc<Storage>, opts: Options) -> Result<TestApp, StartError> {
    let (app, manual_clock) = build_app(storage, &opts).await?;
    let addr: SocketAddr = app.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    let token_path = storage.data_dir().join("admin.token");
    let admin_token = std::fs::read_to_string(&token_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", token_path.display()))
        .trim()
        .to_owned();
    Ok(TestApp {
        base: format!("http://{addr}"),
        admin_token,
        manual_clock,
        storage: storage.clone(),
        client: client(),
        shutdown: Some(tx),
        server: Some(server),
    })
}

// ------------------------------------------------------------------------------------------
// Test data: valid and nearly valid identity values
// ------------------------------------------------------------------------------------------

/// The GB 11643 check character of 17 digits.
pub fn gb11643_check(first17: &str) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    assert_eq!(first17.len(), 17, "17 digits: {first17}");
    let sum: u32 = first17
        .chars()
        .zip(W)
        .map(|(c, w)| c.to_digit(10).expect("digit") * w)
        .sum();
    b"10X98765432"[(sum % 11) as usize] as char
}

/// A resident ID from area code, birth date `YYYYMMDD` and 3-digit sequence, with the right
/// check character.
pub fn resident_id(area: &str, birth: &str, seq: &str) -> String {
    let body = format!("{area}{birth}{seq}");
    format!("{body}{}", gb11643_check(&body))
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

/// A reporter with every identity field filled with valid values.
#[derive(Debug, Clone)]
pub struct Person {
    /// 姓名.
    pub name: String,
    /// Resident ID, normal form.
    pub id_number: String,
    /// Mobile, normal form.
    pub phone: String,
    /// E-mail, normal form.
    pub email: String,
    /// Bank card, normal form.
    pub bank_account: String,
    /// Address.
    pub address: String,
}

const NAMES: [&str; 8] = [
    "张三",
    "李四",
    "王小五",
    "赵六",
    "钱七七",
    "孙八",
    "周九",
    "吴十一",
];

impl Person {
    /// The example of API.md.
    pub fn zhang_san() -> Person {
        Person {
            name: "张三".into(),
            id_number: "11010519491231002X".into(),
            phone: "13800138000".into(),
            email: "zhangsan@example.cn".into(),
            bank_account: luhn_complete("622202100000000001"),
            address: "山西省太原市迎泽区迎泽大街1号".into(),
        }
    }

    /// The `n`th of a family of distinct valid people.
    pub fn nth(n: u32) -> Person {
        let birth = format!("1980{:02}{:02}", 1 + n % 12, 1 + n % 28);
        Person {
            name: format!(
                "{}{}",
                NAMES[(n % 8) as usize],
                ["", "明", "华", "强"][(n / 8 % 4) as usize]
            ),
            id_number: resident_id("140105", &birth, &format!("{:03}", 100 + n % 900)),
            phone: format!("1390013{:04}", 1000 + n),
            email: format!("reporter{n}@example.cn"),
            bank_account: luhn_complete(&format!("62220212{:010}", 1000 + n)),
            address: format!("山西省太原市小店区长风街{}号", 10 + n),
        }
    }

    /// The full `identity` object.
    pub fn identity(&self) -> Value {
        json!({
            "name": self.name, "id_number": self.id_number, "phone": self.phone,
            "email": self.email, "address": self.address, "bank_account": self.bank_account,
            "bank_name": "中国工商银行太原分行", "employer": null
        })
    }

    /// Every value, for "this must not appear" checks.
    pub fn values(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.id_number.clone(),
            self.phone.clone(),
            self.email.clone(),
            self.bank_account.clone(),
            self.address.clone(),
        ]
    }
}

/// A seal body.
pub fn seal_body(jurisdiction: &str, case_ref: &str, identity: Value) -> Value {
    json!({
        "jurisdiction": jurisdiction,
        "case_ref": case_ref,
        "received_at": RECEIVED_AT,
        "channel": "web",
        "employee_of_reported_unit": false,
        "identity": identity,
    })
}

/// Asserts that none of `values` occurs in `haystack`.
#[track_caller]
pub fn assert_absent(haystack: &[u8], values: &[String], what: &str) {
    for v in values {
        if contains(haystack, v.as_bytes()) {
            let shown = match std::str::from_utf8(haystack) {
                Ok(s) if s.len() < 4000 => s.to_owned(),
                _ => format!("<{} bytes>", haystack.len()),
            };
            panic!("{what} contains the identity value {v:?}: {shown}");
        }
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

// ------------------------------------------------------------------------------------------
// The client side of the contract
// ------------------------------------------------------------------------------------------

impl TestApp {
    /// The manual clock (panics for a system-clock server).
    pub fn clock(&self) -> &ManualClock {
        self.manual_clock
            .as_deref()
            .expect("this server runs on the system clock")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.storage.data_dir().to_owned()
    }

    /// Stops the server gracefully and returns its storage for a restart.
    pub async fn stop(mut self) -> Arc<Storage> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let res = tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .expect("the server stops within 20 s of shutdown");
            res.expect("server task")
                .expect("the server stopped cleanly");
        }
        self.storage.clone()
    }

    /// Any request.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Body) -> Resp {
        send(&self.client, &self.base, method, path, token, body).await
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), Body::None).await
    }

    /// POST JSON with a token.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Body::Json(body))
            .await
    }

    /// `POST /v1/principals` as the bootstrap admin; asserts `201`.
    pub async fn create_principal(
        &self,
        role: &str,
        jurisdiction: &str,
        age_recipient: Option<&str>,
    ) -> Principal {
        let mut body = json!({"name": format!("{role} of {jurisdiction}"), "role": role, "jurisdiction": jurisdiction});
        if let Some(r) = age_recipient {
            body["age_recipient"] = json!(r);
        }
        let r = self.post("/v1/principals", &self.admin_token, body).await;
        let v = r.expect(201, "create principal");
        assert_eq!(v["role"], role);
        assert_eq!(v["jurisdiction"], jurisdiction);
        Principal {
            id: v["id"].as_str().expect("id").to_owned(),
            token: v["token"].as_str().expect("token").to_owned(),
        }
    }

    /// `POST /v1/reporters`.
    pub async fn seal(&self, token: &str, body: Value) -> Resp {
        self.post("/v1/reporters", token, body).await
    }

    /// Seals `person` (or an anonymous report) and returns the answer; asserts `201`.
    pub async fn seal_ok(
        &self,
        token: &str,
        jurisdiction: &str,
        case_ref: &str,
        person: Option<&Person>,
    ) -> Value {
        let identity = person.map_or(Value::Null, Person::identity);
        self.seal(token, seal_body(jurisdiction, case_ref, identity))
            .await
            .expect(201, "seal")
    }

    /// `GET /v1/pseudonyms/{p}`.
    pub async fn get_pseudonym(&self, token: &str, p: &str) -> Resp {
        self.get(&format!("/v1/pseudonyms/{p}"), token).await
    }

    /// `POST /v1/pseudonyms/{p}/handoff`.
    pub async fn handoff(&self, token: &str, p: &str, body: Value) -> Resp {
        self.post(&format!("/v1/pseudonyms/{p}/handoff"), token, body)
            .await
    }

    /// `POST /v1/pseudonyms/{p}/rotate` (no body).
    pub async fn rotate(&self, token: &str, p: &str) -> Resp {
        self.call(
            Method::POST,
            &format!("/v1/pseudonyms/{p}/rotate"),
            Some(token),
            Body::None,
        )
        .await
    }

    /// `POST /v1/pseudonyms/{p}/messages`.
    pub async fn message(&self, token: &str, p: &str, kind: &str, text: &str) -> Resp {
        self.post(
            &format!("/v1/pseudonyms/{p}/messages"),
            token,
            json!({"kind": kind, "body": text}),
        )
        .await
    }

    /// `POST /v1/disclosures`.
    pub async fn request_disclosure(
        &self,
        token: &str,
        p: &str,
        purpose: &str,
        fields: &[&str],
    ) -> Resp {
        self.post(
            "/v1/disclosures",
            token,
            json!({
                "pseudonym": p,
                "purpose": purpose,
                "justification": "需要核实举报内容，联系举报人补充材料 (verification)",
                "fields": fields,
            }),
        )
        .await
    }

    /// Requests a disclosure and returns its id; asserts `201`.
    pub async fn request_disclosure_ok(
        &self,
        token: &str,
        p: &str,
        purpose: &str,
        fields: &[&str],
    ) -> String {
        let v = self
            .request_disclosure(token, p, purpose, fields)
            .await
            .expect(201, "request disclosure");
        v["id"].as_str().expect("disclosure id").to_owned()
    }

    /// `POST /v1/disclosures/{id}/approve`.
    pub async fn approve(&self, token: &str, id: &str) -> Resp {
        self.post(
            &format!("/v1/disclosures/{id}/approve"),
            token,
            json!({"comment": "同意：核实需要"}),
        )
        .await
    }

    /// `POST /v1/disclosures/{id}/deny`.
    pub async fn deny(&self, token: &str, id: &str) -> Resp {
        self.post(
            &format!("/v1/disclosures/{id}/deny"),
            token,
            json!({"comment": "不同意：理由不足"}),
        )
        .await
    }

    /// `GET /v1/disclosures/{id}`.
    pub async fn get_disclosure(&self, token: &str, id: &str) -> Resp {
        self.get(&format!("/v1/disclosures/{id}"), token).await
    }

    /// `POST /v1/disclosures/{id}/open` (no body).
    pub async fn open(&self, token: &str, id: &str) -> Resp {
        self.call(
            Method::POST,
            &format!("/v1/disclosures/{id}/open"),
            Some(token),
            Body::None,
        )
        .await
    }

    /// Every event of the access trail, read page by page as an auditor.
    pub async fn events(&self, auditor_token: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let r = self
                .get(
                    &format!("/v1/audit/events?start={}&limit=1000", out.len()),
                    auditor_token,
                )
                .await;
            let v = r.expect(200, "audit events");
            let page = v["events"].as_array().expect("events").clone();
            let n = page.len();
            out.extend(page);
            if n < 1000 {
                return out;
            }
        }
    }

    /// The access trail's size.
    pub async fn tree_size(&self, auditor_token: &str) -> u64 {
        let v = self
            .get("/v1/audit/events?start=0&limit=1", auditor_token)
            .await
            .expect(200, "audit events");
        v["tree_size"].as_u64().expect("tree_size")
    }
}

// ------------------------------------------------------------------------------------------
// The real binary
// ------------------------------------------------------------------------------------------

/// `reporter-vault serve` as a child process, its output captured to files.
pub struct Binary {
    /// The child.
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Captured stdout.
    pub stdout: PathBuf,
    /// Captured stderr.
    pub stderr: PathBuf,
    /// The bootstrap admin's token.
    pub admin_token: String,
    client: reqwest::Client,
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts the real binary on `storage` with JSON logs and waits until it answers.
/// `logs` is where its output goes (outside the data directory, so the data directory holds
/// only what the service itself wrote).
pub async fn spawn_binary(storage: &Storage, logs: &Path, extra_env: &[(&str, &str)]) -> Binary {
    let port = free_port();
    let stdout = logs.join("stdout.log");
    let stderr = logs.join("stderr.log");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_reporter-vault"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(storage.data_dir())
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--policies")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies"))
        .env("RV_LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .env_remove("RV_KEYRING_PASSPHRASE")
        .env_remove("RV_KEYRING_PASSPHRASE_FILE")
        .env_remove("RV_DATABASE_URL")
        .env_remove("RV_NOTIFY_WEBHOOK_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    if let Some(url) = storage.database_url() {
        cmd.arg("--database-url").arg(url);
    }
    if let Some(p) = &storage.passphrase {
        cmd.env("RV_KEYRING_PASSPHRASE", p);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn reporter-vault");
    let base = format!("http://127.0.0.1:{port}");
    let client = client();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "reporter-vault exited with {status} before answering; stderr:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reporter-vault did not answer /healthz within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let admin_token = std::fs::read_to_string(storage.data_dir().join("admin.token"))
        .expect("admin.token")
        .trim()
        .to_owned();
    Binary {
        child,
        base,
        stdout,
        stderr,
        admin_token,
        client,
    }
}

impl Binary {
    /// Any request.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Body) -> Resp {
        send(&self.client, &self.base, method, path, token, body).await
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let st = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(st.success(), "kill -TERM {pid}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("reporter-vault did not stop within 30 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the process wrote to stdout and stderr.
    pub fn output(&self) -> Vec<u8> {
        let mut all = std::fs::read(&self.stdout).unwrap_or_default();
        all.extend(std::fs::read(&self.stderr).unwrap_or_default());
        all
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        // Only our own child, by its handle.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

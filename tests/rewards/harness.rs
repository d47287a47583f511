//! The service in-process for one test: a fresh data directory (and for PostgreSQL a fresh
//! database), the shipped reward policies, a [`ManualClock`] the test moves, the server on
//! 127.0.0.1:0, and a client whose every answer is checked against the contract's invariants
//! (an `x-request-id`, never a `500`, errors in the error shape).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use tempfile::TempDir;
use time::OffsetDateTime;
use time::macros::datetime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vault_crypto::random::{RandomSource, SystemRandomSource};
use vault_domain::DisclosureConfig;
use vault_domain::clock::{Clock, ManualClock};
use vault_service::app::{Application, NotifierConfig, ServeConfig, StartError, VaultConfig};
use vault_storage::SqliteSync;

/// The shipped policy directory.
pub const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies");

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite in the data directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server of `RV_TEST_PG_URL`.
    Postgres,
}

/// Where the manual clock starts: Friday 2026-11-20, 12:00 China Standard Time.
pub const T0: OffsetDateTime = datetime!(2026-11-20 12:00:00 +08:00);

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandomSource
        .fill(&mut buf)
        .expect("system randomness");
    hex::encode(buf)
}

// ------------------------------------------------------------------------------------------
// PostgreSQL: one throwaway database per test
// ------------------------------------------------------------------------------------------

#[path = "../support/pgdb.rs"]
mod pgdb;
use pgdb::PgDb;

// ------------------------------------------------------------------------------------------
// Answers
// ------------------------------------------------------------------------------------------

/// An answer, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `error.code`.
    #[track_caller]
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error.code in {}", self.text()))
            .to_owned()
    }

    /// `error.field`.
    pub fn field(&self) -> Option<String> {
        self.json()["error"]["field"].as_str().map(str::to_owned)
    }

    /// `error.message`.
    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Asserts the status and returns the JSON body (`Null` if none).
    #[track_caller]
    pub fn ok(&self, status: u16, what: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{what}: expected {status}, got {}: {}",
            self.status,
            self.text()
        );
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Asserts an error with this status and code.
    #[track_caller]
    pub fn err(&self, status: u16, code: &str, what: &str) {
        self.ok(status, what);
        assert_eq!(self.code(), code, "{what}: error code in {}", self.text());
    }

    /// Asserts an error with this status, code and field.
    #[track_caller]
    pub fn err_field(&self, status: u16, code: &str, field: &str, what: &str) {
        self.err(status, code, what);
        assert_eq!(
            self.field().as_deref(),
            Some(field),
            "{what}: error.field in {}",
            self.text()
        );
    }
}

/// What every answer keeps: an `x-request-id`, never a `500`, errors as
/// `{"error": {"code", "message", "field"?}, "request_id"}`.
#[track_caller]
fn check_invariants(status: u16, rid: Option<&str>, body: &[u8], what: &str) {
    assert_ne!(
        status,
        500,
        "{what}: a 500: {}",
        String::from_utf8_lossy(body)
    );
    let rid = rid.unwrap_or_else(|| panic!("{what}: no x-request-id (status {status})"));
    assert!(!rid.is_empty(), "{what}: empty x-request-id");
    if status >= 400 {
        let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{what}: error body is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        });
        let mut top: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        top.sort_unstable();
        assert_eq!(top, ["error", "request_id"], "{what}: error shape: {v}");
        assert_eq!(v["request_id"].as_str(), Some(rid), "{what}: request_id");
        let code = v["error"]["code"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{what}: error.code not snake_case: {v}"
        );
        assert!(v["error"]["message"].is_string(), "{what}: no message: {v}");
    }
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

// ------------------------------------------------------------------------------------------
// The server
// ------------------------------------------------------------------------------------------

/// A principal created through `POST /v1/principals`.
#[derive(Debug, Clone)]
pub struct Principal {
    pub id: String,
    pub token: String,
}

/// The people a reward passes through.
#[derive(Debug, Clone)]
pub struct Cast {
    /// The case system that seals reports and files rewards (`000000`).
    pub case: Principal,
    /// Finance officer 1 (`000000`).
    pub fin1: Principal,
    /// Finance officer 2 (`000000`).
    pub fin2: Principal,
    /// The auditor (`000000`).
    pub auditor: Principal,
}

/// A running service.
pub struct TestApp {
    pub base: String,
    pub admin_token: String,
    pub clock: Arc<ManualClock>,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), StartError>>>,
    // Dropped last: the server must be gone before its database and directory.
    _pg: Option<PgDb>,
    dir: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}

/// Starts the service on a fresh store with the shipped policies.
pub async fn spawn(engine: Engine) -> TestApp {
    spawn_with_policies(engine, Path::new(POLICIES)).await
}

/// Starts the service on a fresh store with the policies of `policies`.
pub async fn spawn_with_policies(engine: Engine, policies: &Path) -> TestApp {
    install_crypto_provider();
    let dir = tempfile::Builder::new()
        .prefix("rv-rewards-")
        .tempdir()
        .expect("a temporary directory");
    let (pg, passphrase) = match engine {
        Engine::Sqlite => (None, None),
        Engine::Postgres => {
            let pass = format!("rewards-test-{}", random_hex(8));
            // A keyring made with a cheap scrypt work factor, as an operator restoring one
            // would leave it: the default costs about a second per load.
            let keyring =
                vault_crypto::keyring::Keyring::generate(&SystemRandomSource, T0.unix_timestamp())
                    .expect("generate a keyring");
            keyring
                .save_with_work_factor(
                    &dir.path().join("keyring.age"),
                    &vault_crypto::keyring::KeyringProtector::Passphrase(SecretString::from(
                        pass.clone(),
                    )),
                    10,
                )
                .expect("save the keyring");
            (Some(PgDb::create("rv_rewards").await), Some(pass))
        }
    };
    let cfg = ServeConfig {
        vault: VaultConfig {
            data_dir: dir.path().to_owned(),
            database_url: pg.as_ref().map(|p| p.url.clone()),
            passphrase: passphrase.map(|p| Arc::new(SecretString::from(p))),
            sqlite_sync: SqliteSync::Normal,
            disclosure: DisclosureConfig::default(),
            log_origin: None,
            leak_traces_per_minute: 30,
            policies_dir: Some(PathBuf::from(policies)),
            settlement: Default::default(),
            ops: Default::default(),
        },
        listen: "127.0.0.1:0".parse().expect("address"),
        max_body: 64 * 1024,
        notifier: NotifierConfig::File,
        demo: false,
        checkpoint_every_events: 100_000,
        checkpoint_every: Duration::from_secs(3600),
        limits: Default::default(),
        body_timeout: Duration::from_secs(10),
    };
    let clock = Arc::new(ManualClock::new(T0));
    let app = Application::build(
        cfg,
        clock.clone() as Arc<dyn Clock>,
        Arc::new(SystemRandomSource),
    )
    .await
    .unwrap_or_else(|e| panic!("the service refused to start: {e}"));
    let addr = app.local_addr().expect("bound address");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = rx.await;
    }));
    let admin_token = std::fs::read_to_string(dir.path().join("admin.token"))
        .expect("DATA_DIR/admin.token")
        .trim()
        .to_owned();
    TestApp {
        base: format!("http://{addr}"),
        admin_token,
        clock,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("reqwest client"),
        shutdown: Some(tx),
        server: Some(server),
        _pg: pg,
        dir,
    }
}

impl TestApp {
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends one request, with extra headers, and checks the invariants of the answer.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Resp {
        let what = format!("{method} {path}");
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b).expect("json"));
        }
        let res = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: request failed: {e}"));
        let status = res.status().as_u16();
        let rid = res
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = res
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"))
            .to_vec();
        check_invariants(status, rid.as_deref(), &body, &what);
        Resp {
            status,
            content_type,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call_with(Method::GET, path, Some(token), &[], None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call_with(Method::POST, path, Some(token), &[], Some(&body))
            .await
    }

    /// `POST /v1/principals` as the bootstrap admin.
    pub async fn principal(&self, role: &str, jurisdiction: &str, name: &str) -> Principal {
        let v = self
            .post(
                "/v1/principals",
                &self.admin_token,
                json!({"name": name, "role": role, "jurisdiction": jurisdiction}),
            )
            .await
            .ok(201, "create principal");
        Principal {
            id: v["id"].as_str().expect("id").to_owned(),
            token: v["token"].as_str().expect("token").to_owned(),
        }
    }

    /// The usual cast, all at `000000`.
    pub async fn cast(&self) -> Cast {
        Cast {
            case: self.principal("case_system", "000000", "案件系统").await,
            fin1: self.principal("finance", "000000", "财务一").await,
            fin2: self.principal("finance", "000000", "财务二").await,
            auditor: self.principal("auditor", "000000", "审计").await,
        }
    }

    /// Seals one report; returns the `201` body (`pseudonym`, `claim_code` for anonymous).
    pub async fn seal(&self, case_token: &str, rep: &Report<'_>) -> Value {
        let identity = rep.person.map(Person::identity).unwrap_or(Value::Null);
        self.post(
            "/v1/reporters",
            case_token,
            json!({
                "jurisdiction": rep.jurisdiction,
                "case_ref": rep.case_ref,
                "received_at": rep.received_at,
                "channel": "web",
                "employee_of_reported_unit": rep.employee,
                "identity": identity,
            }),
        )
        .await
        .ok(201, "seal a report")
    }

    /// Seals a report and returns its pseudonym.
    pub async fn seal_p(&self, case_token: &str, rep: &Report<'_>) -> String {
        self.seal(case_token, rep).await["pseudonym"]
            .as_str()
            .expect("pseudonym")
            .to_owned()
    }

    /// `GET /v1/rewards/{id}`.
    pub async fn reward(&self, token: &str, id: &str) -> Value {
        self.get(&format!("/v1/rewards/{id}"), token)
            .await
            .ok(200, "read the reward")
    }

    /// Every event of the access trail, paged.
    pub async fn events(&self, auditor_token: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self
                .get(
                    &format!("/v1/audit/events?start={}&limit=1000", out.len()),
                    auditor_token,
                )
                .await
                .ok(200, "read events");
            let page = v["events"].as_array().cloned().unwrap_or_default();
            if page.is_empty() {
                return out;
            }
            out.extend(page);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Test data
// ------------------------------------------------------------------------------------------

/// The GB 11643 check character of 17 digits.
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

/// A real-name reporter with valid identity values.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub id_number: String,
    pub phone: String,
    pub bank_account: String,
    pub bank_name: String,
}

impl Person {
    /// The `n`th of a family of distinct people (resident IDs of 370102, 山东济南历下区).
    pub fn nth(n: u32) -> Person {
        let first17 = format!(
            "3701021985{:02}{:02}{:03}",
            1 + n % 12,
            1 + n % 28,
            100 + n % 900
        );
        Person {
            name: format!("举报人{n}"),
            id_number: format!("{first17}{}", gb11643_check(&first17)),
            phone: format!("1380013{:04}", 1000 + n),
            bank_account: luhn_complete(&format!("62220202{:010}", 5_000 + n)),
            bank_name: "中国工商银行济南分行".into(),
        }
    }

    pub fn identity(&self) -> Value {
        json!({
            "name": self.name, "id_number": self.id_number, "phone": self.phone,
            "email": null, "address": null, "bank_account": self.bank_account,
            "bank_name": self.bank_name, "employer": null
        })
    }
}

/// One report to seal.
pub struct Report<'a> {
    pub jurisdiction: &'a str,
    pub case_ref: &'a str,
    pub received_at: &'a str,
    pub person: Option<&'a Person>,
    pub employee: bool,
}

impl<'a> Report<'a> {
    /// A real-name, non-employee report.
    pub fn named(
        jurisdiction: &'a str,
        case_ref: &'a str,
        received_at: &'a str,
        person: &'a Person,
    ) -> Self {
        Report {
            jurisdiction,
            case_ref,
            received_at,
            person: Some(person),
            employee: false,
        }
    }
}

/// A `POST /v1/rewards` body.
pub fn reward_body(
    case_ref: &str,
    jurisdiction: &str,
    verified_on: &str,
    outcome: Value,
    reports: Vec<Value>,
) -> Value {
    json!({
        "case_ref": case_ref,
        "jurisdiction": jurisdiction,
        "verified_on": verified_on,
        "industry": "hazardous_chemicals",
        "outcome": outcome,
        "reports": reports,
    })
}

/// A major hazard with this penalty.
pub fn major_hazard(penalty: &str) -> Value {
    json!({"kind": "major_hazard", "penalty": penalty})
}

/// Seals a real-name report in 370100 and files a Shandong major-hazard reward for it
/// (50 % of `penalty`); returns (reward id, pseudonym).
pub async fn file_single(
    app: &TestApp,
    cast: &Cast,
    case_ref: &str,
    person: &Person,
    penalty: &str,
) -> (String, String) {
    let p = app
        .seal_p(
            &cast.case.token,
            &Report::named("370100", case_ref, "2026-11-02T09:00:00+08:00", person),
        )
        .await;
    let v = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                case_ref,
                "370100",
                "2026-11-18",
                major_hazard(penalty),
                vec![json!({"pseudonym": p})],
            ),
        )
        .await
        .ok(201, "file a reward");
    (v["id"].as_str().expect("id").to_owned(), p)
}

/// A reward taken to `claimed` (single approval by finance 1, claim by pseudonym).
pub async fn claimed_reward(
    app: &TestApp,
    cast: &Cast,
    case_ref: &str,
    person: &Person,
    penalty: &str,
) -> (String, String) {
    let (id, p) = file_single(app, cast, case_ref, person, penalty).await;
    app.post(
        &format!("/v1/rewards/{id}/approve"),
        &cast.fin1.token,
        json!({}),
    )
    .await
    .ok(200, "approve");
    let v = app
        .post(
            &format!("/v1/rewards/{id}/claims"),
            &cast.case.token,
            json!({"pseudonym": p, "identity_checked": true}),
        )
        .await
        .ok(200, "claim");
    assert_eq!(v["status"], "claimed", "{v}");
    (id, p)
}

/// The awards of a reward by pseudonym: (amount, reason).
pub fn award_of(reward: &Value, pseudonym: &str) -> (String, Option<String>) {
    let a = reward["awards"]
        .as_array()
        .expect("awards")
        .iter()
        .find(|a| a["pseudonym"] == pseudonym)
        .unwrap_or_else(|| panic!("no award for {pseudonym} in {reward}"));
    (
        a["amount"].as_str().expect("amount").to_owned(),
        a["reason"].as_str().map(str::to_owned),
    )
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

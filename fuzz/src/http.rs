//! The in-process service for the `http_bodies` target: the real router, assembled by the
//! service itself (`vault_service::in_process_router`), on a real SQLite store in a scratch
//! directory, driven with `tower::ServiceExt::oneshot`, so the fuzzer exercises exactly what
//! the server runs for a request (extractors, `parse_json`, the DTOs' validation, the domain
//! call, the error shaping), without sockets.
//!
//! Built once per process. Randomness and time are fixed (`DeterministicRandom`,
//! `ManualClock`), and the store is seeded through the same router with one real-name report,
//! one anonymous report, a pending disclosure and two rewards, so request bodies can refer
//! to things that exist. A body may name them with markers that are replaced before sending:
//! `@P@` the real-name pseudonym, `@A@` the anonymous one, `@C@` its claim code, `@R@` the
//! approved reward, `@Q@` the pending one, `@D@` the disclosure.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use vault_crypto::random::DeterministicRandom;
use vault_domain::DisclosureConfig;
use vault_domain::clock::{Clock, ManualClock};
use vault_service::app::VaultConfig;
use vault_storage::SqliteSync;

/// Request body limit, as the service's default order of magnitude.
pub const MAX_BODY: usize = 64 * 1024;
/// Time allowed to read a body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// The bootstrap admin.
    Admin,
    /// A case system.
    Case,
    /// A custodian.
    Custodian,
    /// Finance.
    Finance,
    /// An auditor.
    Auditor,
}

/// Where a fuzzed input goes.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    /// GET or POST.
    pub method: &'static str,
    /// The path; `{p}`, `{d}`, `{r}` are the seeded pseudonym, disclosure and reward. For a
    /// GET, the input becomes the query string.
    pub path: &'static str,
    /// The principal whose token is sent.
    pub who: Who,
}

const fn post(path: &'static str, who: Who) -> Endpoint {
    Endpoint {
        method: "POST",
        path,
        who,
    }
}

const fn get(path: &'static str, who: Who) -> Endpoint {
    Endpoint {
        method: "GET",
        path,
        who,
    }
}

/// Every endpoint that reads a JSON body or a query string (input byte 0 selects one).
pub const ENDPOINTS: [Endpoint; 22] = [
    post("/v1/principals", Who::Admin),
    post("/v1/reporters", Who::Case),
    post("/v1/pseudonyms/{p}/handoff", Who::Case),
    post("/v1/pseudonyms/{p}/messages", Who::Case),
    post("/v1/disclosures", Who::Case),
    post("/v1/disclosures/{d}/approve", Who::Custodian),
    post("/v1/disclosures/{d}/deny", Who::Custodian),
    post("/v1/audit/leak-trace", Who::Auditor),
    post("/v1/rewards/quote", Who::Finance),
    post("/v1/rewards", Who::Case),
    post("/v1/rewards/{r}/reject", Who::Finance),
    post("/v1/rewards/{r}/cancel", Who::Case),
    post("/v1/rewards/{r}/claims", Who::Case),
    post("/v1/rewards/{r}/extend", Who::Finance),
    post("/v1/rewards/{r}/payments", Who::Finance),
    post("/v1/receipts", Who::Case),
    get("/v1/audit/events", Who::Auditor),
    get("/v1/audit/proofs/inclusion", Who::Auditor),
    get("/v1/audit/proofs/consistency", Who::Auditor),
    get("/v1/rewards", Who::Finance),
    get("/v1/stats/rewards", Who::Auditor),
    get("/v1/oversight/rewards", Who::Finance),
];

/// The seeded records.
#[derive(Debug, Clone)]
pub struct Refs {
    /// Real-name pseudonym.
    pub pseudonym: String,
    /// Anonymous pseudonym.
    pub anon_pseudonym: String,
    /// Its claim code.
    pub claim_code: String,
    /// A pending disclosure.
    pub disclosure: String,
    /// An approved reward (for the real-name pseudonym).
    pub reward_approved: String,
    /// A pending reward (for the anonymous pseudonym).
    pub reward_pending: String,
}

/// The running service.
pub struct Harness {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    tokens: Vec<(Who, String)>,
    /// The seeded records.
    pub refs: Refs,
}

/// An answer.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// `content-type`, if any.
    pub content_type: Option<String>,
    /// Whether `x-request-id` was set.
    pub has_request_id: bool,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Harness {
    /// The process-wide service (built on first use).
    pub fn get() -> &'static Harness {
        static H: OnceLock<Harness> = OnceLock::new();
        H.get_or_init(build)
    }

    fn token(&self, who: Who) -> &str {
        self.tokens
            .iter()
            .find(|(w, _)| *w == who)
            .map(|(_, t)| t.as_str())
            .unwrap_or_default()
    }

    /// Replaces the `@X@` markers of a body or query (see the module documentation).
    pub fn expand(&self, bytes: &[u8]) -> Vec<u8> {
        if !bytes.contains(&b'@') {
            return bytes.to_vec();
        }
        let r = &self.refs;
        let mut out = bytes.to_vec();
        for (marker, value) in [
            ("@P@", &r.pseudonym),
            ("@A@", &r.anon_pseudonym),
            ("@C@", &r.claim_code),
            ("@D@", &r.disclosure),
            ("@R@", &r.reward_approved),
            ("@Q@", &r.reward_pending),
        ] {
            out = replace(&out, marker.as_bytes(), value.as_bytes());
        }
        out
    }

    /// The path of `e` with its placeholders filled; `alt` picks the pending reward.
    pub fn path(&self, e: &Endpoint, alt: bool) -> String {
        let r = &self.refs;
        e.path
            .replace("{p}", &r.pseudonym)
            .replace("{d}", &r.disclosure)
            .replace(
                "{r}",
                if alt {
                    &r.reward_pending
                } else {
                    &r.reward_approved
                },
            )
    }

    /// Sends one request through the router. `None` if `uri` is not a valid request target
    /// (hyper would refuse it before the router, so there is nothing to fuzz).
    pub fn call(
        &self,
        method: &str,
        uri: &str,
        who: Option<Who>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Option<Answer> {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).ok()?)
            .uri(uri);
        if let Some(w) = who {
            req = req.header("authorization", format!("Bearer {}", self.token(w)));
        }
        if method == "POST" {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Body::from(body)).ok()?;
        let app = self.app.clone();
        Some(self.rt.block_on(async move {
            let res = app.oneshot(req).await.unwrap_or_else(|e| match e {});
            let status = res.status();
            let content_type = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let has_request_id = res.headers().contains_key("x-request-id");
            let body = res
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            Answer {
                status,
                content_type,
                has_request_id,
                body,
            }
        }))
    }

    fn call_json(&self, method: &str, uri: &str, who: Who, body: &Value) -> (StatusCode, Value) {
        let a = self
            .call(method, uri, Some(who), &[], body.to_string().into_bytes())
            .unwrap_or_else(|| panic!("setup request {uri} could not be built"));
        let v = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        (a.status, v)
    }
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Shipped policies.
fn policies_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// 2026-11-20 00:00 CST.
fn t0() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-20 00:00:00 +08:00)
}

/// A real-name identity of valid values.
pub fn identity_json() -> Value {
    json!({
        "name": "举报人甲", "id_number": "370102198501010011", "phone": "13800131000",
        "email": "reporter@example.cn", "address": "山东省济南市历下区 1 号",
        "bank_account": "6222020200000050001", "bank_name": "中国工商银行济南分行",
        "employer": null
    })
}

fn build() -> Harness {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let data_dir = crate::scratch_dir("http").join("data");
    let _ = std::fs::remove_dir_all(&data_dir);
    let cfg = VaultConfig {
        data_dir: data_dir.clone(),
        database_url: None,
        passphrase: None,
        sqlite_sync: SqliteSync::Normal,
        disclosure: DisclosureConfig::default(),
        log_origin: None,
        leak_traces_per_minute: u32::MAX,
        policies_dir: Some(policies_dir()),
        settlement: Default::default(),
        ops: Default::default(),
    };
    let clock = Arc::new(ManualClock::new(t0()));
    let rng = Arc::new(DeterministicRandom::new(0x00f0_220b));
    // The service's own assembly of the app (not the leader: no background job runs).
    let app = rt
        .block_on(vault_service::in_process_router(
            &cfg,
            clock as Arc<dyn Clock>,
            rng,
            MAX_BODY,
            BODY_TIMEOUT,
        ))
        .unwrap_or_else(|e| panic!("open the vault: {e}"));
    let admin = std::fs::read_to_string(data_dir.join("admin.token"))
        .unwrap_or_else(|e| panic!("admin.token: {e}"))
        .trim()
        .to_owned();
    let mut h = Harness {
        rt,
        app,
        tokens: vec![(Who::Admin, admin)],
        refs: Refs {
            pseudonym: String::new(),
            anon_pseudonym: String::new(),
            claim_code: String::new(),
            disclosure: String::new(),
            reward_approved: String::new(),
            reward_pending: String::new(),
        },
    };
    seed(&mut h);
    h
}

fn must(what: &str, (status, v): (StatusCode, Value), want: StatusCode) -> Value {
    assert_eq!(status, want, "setup: {what}: {v}");
    v
}

fn field(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("setup: no {k} in {v}"))
        .to_owned()
}

fn seed(h: &mut Harness) {
    for (who, role, name) in [
        (Who::Case, "case_system", "fuzz case system"),
        (Who::Custodian, "custodian", "fuzz custodian"),
        (Who::Finance, "finance", "fuzz finance"),
        (Who::Auditor, "auditor", "fuzz auditor"),
    ] {
        let v = must(
            "create principal",
            h.call_json(
                "POST",
                "/v1/principals",
                Who::Admin,
                &json!({"name": name, "role": role, "jurisdiction": "000000"}),
            ),
            StatusCode::CREATED,
        );
        h.tokens.push((who, field(&v, "token")));
    }
    let seal = |h: &Harness, case_ref: &str, identity: Value| {
        must(
            "seal",
            h.call_json(
                "POST",
                "/v1/reporters",
                Who::Case,
                &json!({
                    "jurisdiction": "370100", "case_ref": case_ref,
                    "received_at": "2026-11-02T09:00:00+08:00", "channel": "web",
                    "employee_of_reported_unit": false, "identity": identity,
                }),
            ),
            StatusCode::CREATED,
        )
    };
    let named = seal(h, "FZ-0001", identity_json());
    let anon = seal(h, "FZ-0002", Value::Null);
    h.refs.pseudonym = field(&named, "pseudonym");
    h.refs.anon_pseudonym = field(&anon, "pseudonym");
    h.refs.claim_code = field(&anon, "claim_code");
    let d = must(
        "request a disclosure",
        h.call_json(
            "POST",
            "/v1/disclosures",
            Who::Case,
            &json!({"pseudonym": h.refs.pseudonym, "purpose": "verification_contact",
                    "justification": "fuzz setup", "fields": ["phone"]}),
        ),
        StatusCode::CREATED,
    );
    h.refs.disclosure = field(&d, "id");
    let file = |h: &Harness, case_ref: &str, p: &str, industry: &str, outcome: Value| {
        let v = must(
            "file a reward",
            h.call_json(
                "POST",
                "/v1/rewards",
                Who::Case,
                &json!({"case_ref": case_ref, "jurisdiction": "370100",
                        "verified_on": "2026-11-18", "industry": industry,
                        "outcome": outcome, "reports": [{"pseudonym": p}]}),
            ),
            StatusCode::CREATED,
        );
        field(&v, "id")
    };
    let approved = file(
        h,
        "FZ-0001",
        &h.refs.pseudonym.clone(),
        "hazardous_chemicals",
        json!({"kind": "major_hazard", "penalty": "10000.00"}),
    );
    // The national mines policy rewards anonymous reporters (claim code).
    let pending = file(
        h,
        "FZ-0002",
        &h.refs.anon_pseudonym.clone(),
        "coal_mine",
        json!({"kind": "major_hazard", "penalty": "10000.00", "report_grade": 1}),
    );
    must(
        "approve",
        h.call_json(
            "POST",
            &format!("/v1/rewards/{approved}/approve"),
            Who::Finance,
            &json!({}),
        ),
        StatusCode::OK,
    );
    h.refs.reward_approved = approved;
    h.refs.reward_pending = pending;
}

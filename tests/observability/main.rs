//! The observability suite (issue 6): the real `reporter-vault` binary, its traces received
//! by a real OTLP/gRPC collector on loopback, its `/metrics`, its JSON logs, after a seal and
//! disclosure flow with known identity values. Every check also asserts that none of those
//! values reaches a span, a metric or a log line.

// A test's helpers fail by panicking with the reason: that is the report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::float_arithmetic,
    // The service under test runs on the system clock, and so does its test.
    clippy::disallowed_methods
)]

mod prom;
mod receiver;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use reqwest::Method;
use serde_json::{Value, json};

use receiver::{Receiver, attr};

/// The seeded reporter, and every spelling in which it must not reappear.
const NAME: &str = "欧阳锋";
const ID_NUMBER: &str = "11010519491231002X";
const PHONE: &str = "13800138000";
const EMAIL: &str = "ouyang.feng@example.cn";
const ADDRESS: &str = "浙江省杭州市西湖区文三路90号";

fn seeded_forms() -> Vec<String> {
    vec![
        NAME.into(),
        ID_NUMBER.into(),
        ID_NUMBER.to_ascii_lowercase(),
        // The ID number without its check character, and the birth date run inside it.
        ID_NUMBER[..17].into(),
        PHONE.into(),
        EMAIL.into(),
        ADDRESS.into(),
    ]
}

fn assert_no_identity(what: &str, haystack: &[u8]) {
    for form in seeded_forms() {
        assert!(
            !haystack.windows(form.len()).any(|w| w == form.as_bytes()),
            "{what} contains the seeded identity value {form:?}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// The binary and a client that remembers every answer
// ------------------------------------------------------------------------------------------

fn client() -> reqwest::Client {
    static ONCE: Once = Once::new();
    // reqwest is built with `rustls-no-provider`: its builder needs a process-wide provider
    // even for plain HTTP.
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One answered request.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    route: &'static str,
    status: u16,
    request_id: String,
}

struct Service {
    child: std::process::Child,
    base: String,
    data: tempfile::TempDir,
    stderr: PathBuf,
    stdout: PathBuf,
    client: reqwest::Client,
    calls: Vec<Call>,
    _logs: tempfile::TempDir,
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn expect(&self, status: u16, what: &str) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

impl Service {
    /// `reporter-vault serve --demo` on a fresh SQLite data directory, JSON logs to files.
    async fn start(env: &[(&str, &str)]) -> Service {
        // The port is free when picked but may be taken before the binary binds it (another
        // test's receiver): then start over on a fresh data directory.
        for _ in 0..5 {
            if let Some(svc) = Self::try_start(env).await {
                return svc;
            }
        }
        panic!("reporter-vault could not bind a free port in 5 attempts");
    }

    async fn try_start(env: &[(&str, &str)]) -> Option<Service> {
        let data = tempfile::Builder::new()
            .prefix("rv-obs-")
            .tempdir()
            .expect("data dir");
        let logs = tempfile::tempdir().expect("logs dir");
        let port = free_port();
        let stdout = logs.path().join("stdout.log");
        let stderr = logs.path().join("stderr.log");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_reporter-vault"));
        cmd.arg("serve")
            .arg("--demo")
            .arg("--data-dir")
            .arg(data.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--policies")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies"))
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        for (k, _) in std::env::vars() {
            if k.starts_with("RV_") || k.starts_with("OTEL_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd.env("RV_LOG_FORMAT", "json");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn reporter-vault");
        let mut svc = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
            data,
            stderr,
            stdout,
            client: client(),
            calls: Vec::new(),
            _logs: logs,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = svc.child.try_wait().expect("try_wait") {
                let log = std::fs::read_to_string(&svc.stderr).unwrap_or_default();
                if log.contains("Address already in use") {
                    return None;
                }
                panic!("reporter-vault exited with {status}; stderr:\n{log}");
            }
            if let Ok(r) = svc.client.get(format!("{}/healthz", svc.base)).send().await {
                let id = r
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                svc.calls.push(Call {
                    method: "GET".into(),
                    route: "/healthz",
                    status: r.status().as_u16(),
                    request_id: id,
                });
                if r.status().is_success() {
                    return Some(svc);
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "reporter-vault did not answer /healthz within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn token(&self, role: &str) -> String {
        let t: Value = serde_json::from_slice(
            &std::fs::read(self.data.path().join("demo-tokens.json")).expect("demo tokens"),
        )
        .expect("demo tokens JSON");
        t[role]["token"].as_str().expect("token").to_owned()
    }

    /// Sends a request to `path` (the route template `route` is what the server should
    /// report) and remembers the answer.
    async fn call(
        &mut self,
        method: Method,
        route: &'static str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let request_id = res
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("every answer has an x-request-id")
            .to_owned();
        let body = res.bytes().await.expect("body").to_vec();
        self.calls.push(Call {
            method: method.as_str().to_owned(),
            route,
            status,
            request_id,
        });
        Answer { status, body }
    }

    /// SIGTERM, and the exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
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

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).expect("stderr log")
    }

    fn stdout_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.stdout).expect("stdout log")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn received_at() -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::hours(2))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

// ------------------------------------------------------------------------------------------
// The flow
// ------------------------------------------------------------------------------------------

/// What the flow produced, for the checks.
struct Flow {
    pseudonym: String,
    verification: String,
    judicial: String,
}

/// Seal, look up, request + approve + open a disclosure, request + deny another, then the
/// things a careless or hostile caller does: an ID number in a path, a phone number as a
/// path segment, a method token that is an ID number, a leak trace for the phone. Ends with
/// an explicit checkpoint.
async fn drive(svc: &mut Service) -> Flow {
    let cs = svc.token("case_system");
    let custodian = svc.token("custodian");
    let custodian2 = svc.token("custodian2");
    let auditor = svc.token("auditor");

    let sealed = svc
        .call(
            Method::POST,
            "/v1/reporters",
            "/v1/reporters",
            Some(&cs),
            Some(json!({
                "jurisdiction": "140100", "case_ref": "SX-2026-000123",
                "received_at": received_at(), "channel": "web",
                "employee_of_reported_unit": false,
                "identity": {"name": NAME, "id_number": ID_NUMBER, "phone": PHONE,
                             "email": EMAIL, "address": ADDRESS}
            })),
        )
        .await;
    let pseudonym = sealed.expect(201, "seal").json()["pseudonym"]
        .as_str()
        .expect("pseudonym")
        .to_owned();
    svc.call(
        Method::GET,
        "/v1/pseudonyms/{p}",
        &format!("/v1/pseudonyms/{pseudonym}"),
        Some(&cs),
        None,
    )
    .await
    .expect(200, "read the pseudonym");

    // Verification contact: one custodian, then the requester opens it.
    let d = svc
        .call(
            Method::POST,
            "/v1/disclosures",
            "/v1/disclosures",
            Some(&cs),
            Some(json!({"pseudonym": pseudonym, "purpose": "verification_contact",
                        "justification": "核查需要联系举报人补充材料", "fields": ["phone", "name"]})),
        )
        .await;
    let verification = d.expect(201, "request a disclosure").json()["id"]
        .as_str()
        .expect("disclosure id")
        .to_owned();
    svc.call(
        Method::POST,
        "/v1/disclosures/{id}/approve",
        &format!("/v1/disclosures/{verification}/approve"),
        Some(&custodian),
        Some(json!({"comment": "同意"})),
    )
    .await
    .expect(200, "approve");
    let opened = svc
        .call(
            Method::POST,
            "/v1/disclosures/{id}/open",
            &format!("/v1/disclosures/{verification}/open"),
            Some(&cs),
            None,
        )
        .await;
    opened.expect(200, "open");
    // The values really flowed through the service (so their absence below means something).
    let body = String::from_utf8_lossy(&opened.body).into_owned();
    assert!(
        body.contains(PHONE) && body.contains(NAME),
        "opened: {body}"
    );

    // Judicial transfer: two custodians needed; the first denies.
    let d = svc
        .call(
            Method::POST,
            "/v1/disclosures",
            "/v1/disclosures",
            Some(&cs),
            Some(json!({"pseudonym": pseudonym, "purpose": "judicial_transfer",
                        "justification": "移送司法机关需要举报人身份信息", "fields": ["id_number"]})),
        )
        .await;
    let judicial = d.expect(201, "request a second disclosure").json()["id"]
        .as_str()
        .expect("disclosure id")
        .to_owned();
    svc.call(
        Method::POST,
        "/v1/disclosures/{id}/deny",
        &format!("/v1/disclosures/{judicial}/deny"),
        Some(&custodian2),
        Some(json!({"comment": "理由不足"})),
    )
    .await
    .expect(200, "deny");

    // Careless and hostile callers.
    svc.call(
        Method::GET,
        "/v1/disclosures/{id}",
        &format!("/v1/disclosures/{ID_NUMBER}"),
        Some(&cs),
        None,
    )
    .await
    .expect(404, "an ID number as a disclosure id");
    svc.call(
        Method::GET,
        "/v1/pseudonyms/{p}",
        &format!("/v1/pseudonyms/{PHONE}"),
        Some(&cs),
        None,
    )
    .await
    .expect(404, "a phone number as a pseudonym");
    svc.call(
        Method::GET,
        "/v1/audit/events",
        &format!("/v1/audit/events?start=0&limit=5&id_number={ID_NUMBER}"),
        Some(&auditor),
        None,
    )
    .await
    .expect(422, "an ID number in the query");
    let odd = Method::from_bytes(ID_NUMBER.as_bytes()).expect("a valid method token");
    // The path matched a route, so its template is reported; the method is `_OTHER`.
    let a = svc
        .call(odd, "/v1/reporters", "/v1/reporters", Some(&cs), None)
        .await;
    assert!(
        a.status == 405 || a.status == 404,
        "a method token that is an ID number: {}",
        a.status
    );
    let traced = svc
        .call(
            Method::POST,
            "/v1/audit/leak-trace",
            "/v1/audit/leak-trace",
            Some(&auditor),
            Some(json!({"field": "phone", "value": PHONE})),
        )
        .await;
    assert_eq!(
        traced.expect(200, "leak trace").json()["matches"]
            .as_array()
            .expect("matches")
            .len(),
        1,
        "the leak trace finds the one opening"
    );
    svc.call(
        Method::POST,
        "/v1/audit/checkpoint",
        "/v1/audit/checkpoint",
        Some(&auditor),
        None,
    )
    .await
    .expect(200, "sign a checkpoint");
    Flow {
        pseudonym,
        verification,
        judicial,
    }
}

// ------------------------------------------------------------------------------------------
// Checks
// ------------------------------------------------------------------------------------------

/// The calls whose route the server knows, grouped by (method, route, status).
fn expected_counts(calls: &[Call]) -> BTreeMap<(String, &'static str, u16), u64> {
    let mut out = BTreeMap::new();
    for c in calls {
        if matches!(c.method.as_str(), "GET" | "POST") {
            *out.entry((c.method.clone(), c.route, c.status))
                .or_insert(0) += 1;
        }
    }
    out
}

fn check_metrics(text: &str, calls: &[Call], flow: &Flow) {
    assert_no_identity("/metrics", text.as_bytes());
    for s in [&flow.pseudonym, &flow.verification, &flow.judicial] {
        assert!(!text.contains(s.as_str()), "/metrics names {s}");
    }
    let exp = prom::parse(text).unwrap_or_else(|e| panic!("/metrics is not valid: {e}\n{text}"));

    // The gauges that were there before.
    assert_eq!(exp.value("rv_up", &[]), Some(1.0));
    let tree = exp
        .value("rv_audit_tree_size", &[])
        .expect("rv_audit_tree_size");
    assert!(tree >= 10.0, "tree size {tree}");
    assert_eq!(exp.types["rv_rewards"], "gauge");

    // Requests: one histogram observation and one count per request, by method, route
    // template and status.
    assert_eq!(exp.types["rv_http_request_duration_seconds"], "histogram");
    assert_eq!(exp.types["rv_http_requests_total"], "counter");
    for ((method, route, status), n) in expected_counts(calls) {
        let status = status.to_string();
        let labels = [
            ("method", method.as_str()),
            ("route", route),
            ("status", status.as_str()),
        ];
        assert_eq!(
            exp.value("rv_http_request_duration_seconds_count", &labels),
            Some(n as f64),
            "histogram count for {labels:?}"
        );
        assert_eq!(
            exp.value("rv_http_requests_total", &labels),
            Some(n as f64),
            "request count for {labels:?}"
        );
    }
    // The method token that was an ID number is counted as `_OTHER`.
    assert!(
        !exp.find("rv_http_requests_total", &[("method", "_OTHER")])
            .is_empty(),
        "the odd method is counted as _OTHER"
    );
    // Every route label is a template (or says it matched none), never a path.
    let templates: Vec<&str> = calls.iter().map(|c| c.route).collect();
    for s in exp.find("rv_http_requests_total", &[]) {
        let route = &s.labels["route"];
        assert!(
            templates.contains(&route.as_str()) || route == "unmatched" || route == "unknown",
            "route label {route}"
        );
    }

    // Disclosures by purpose and outcome.
    assert_eq!(exp.types["rv_disclosures_total"], "counter");
    for (purpose, outcome, n) in [
        ("verification_contact", "requested", 1.0),
        ("verification_contact", "approved", 1.0),
        ("verification_contact", "opened", 1.0),
        ("judicial_transfer", "requested", 1.0),
        ("judicial_transfer", "denied", 1.0),
    ] {
        assert_eq!(
            exp.value(
                "rv_disclosures_total",
                &[("purpose", purpose), ("outcome", outcome)]
            ),
            Some(n),
            "rv_disclosures_total {purpose} {outcome}"
        );
    }
    // Every purpose and outcome has a series from the start; these stayed at zero.
    for (purpose, outcome) in [
        ("verification_contact", "denied"),
        ("verification_contact", "expired"),
        ("judicial_transfer", "approved"),
        ("judicial_transfer", "opened"),
        ("reward_payment", "requested"),
        ("false_accusation", "opened"),
    ] {
        assert_eq!(
            exp.value(
                "rv_disclosures_total",
                &[("purpose", purpose), ("outcome", outcome)]
            ),
            Some(0.0),
            "rv_disclosures_total {purpose} {outcome}"
        );
    }
    assert_eq!(exp.find("rv_disclosures_total", &[]).len(), 20);

    // The access trail: one append observation per event at least, none failed, and the
    // checkpoint just signed is young.
    assert_eq!(exp.types["rv_audit_append_duration_seconds"], "histogram");
    let appends = exp
        .value("rv_audit_append_duration_seconds_count", &[])
        .expect("append count");
    assert!(
        appends >= tree,
        "{appends} appends observed for {tree} events"
    );
    assert_eq!(exp.value("rv_audit_append_failures_total", &[]), Some(0.0));
    // Traces are on and the collector takes every batch.
    assert_eq!(exp.value("rv_trace_export_failures_total", &[]), Some(0.0));
    let sum = exp
        .value("rv_audit_append_duration_seconds_sum", &[])
        .expect("append sum");
    assert!(sum > 0.0 && sum < appends * 2.5, "append time sum {sum}");
    let age = exp
        .value("rv_audit_checkpoint_age_seconds", &[])
        .expect("checkpoint age");
    assert!((0.0..60.0).contains(&age), "checkpoint age {age}");

    // Process basics.
    let rss = exp
        .value("process_resident_memory_bytes", &[])
        .expect("rss");
    assert!(rss > 1_000_000.0, "rss {rss}");
    assert!(exp.value("process_open_fds", &[]).expect("fds") > 2.0);
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    let started = exp
        .value("process_start_time_seconds", &[])
        .expect("start time");
    assert!(started <= now && started > now - 600.0, "start {started}");
    assert!(exp.value("process_cpu_seconds_total", &[]).expect("cpu") > 0.0);
}

fn span_by_name<'a>(spans: &'a [&'a Span], name: &str) -> Vec<&'a Span> {
    spans.iter().copied().filter(|s| s.name == name).collect()
}

/// The spans of the trace whose server span carries `request_id`: (server span, the others).
fn trace_of<'a>(all: &'a [Span], request_id: &str) -> (&'a Span, Vec<&'a Span>) {
    let server = all
        .iter()
        .find(|s| attr(&s.attributes, "request_id").as_deref() == Some(request_id))
        .unwrap_or_else(|| panic!("no span for request {request_id}"));
    let rest = all
        .iter()
        .filter(|s| s.trace_id == server.trace_id && s.span_id != server.span_id)
        .collect();
    (server, rest)
}

/// Whether `span` descends from `ancestor` through the spans of its trace.
fn descends(span: &Span, ancestor: &Span, trace: &[&Span]) -> bool {
    let mut parent = span.parent_span_id.clone();
    for _ in 0..16 {
        if parent == ancestor.span_id {
            return true;
        }
        match trace.iter().find(|s| s.span_id == parent) {
            Some(p) => parent = p.parent_span_id.clone(),
            None => return false,
        }
    }
    false
}

fn check_traces(receiver: &Receiver, calls: &[Call], flow: &Flow) {
    // No seeded value in any byte the collector received, encoded or decoded.
    for (i, req) in receiver.requests().iter().enumerate() {
        assert_no_identity(&format!("OTLP export {i} (protobuf)"), &req.encode_to_vec());
        let dump = format!("{req:?}");
        assert_no_identity(&format!("OTLP export {i} (decoded)"), dump.as_bytes());
        assert!(
            !dump.contains(&flow.pseudonym),
            "a span names the pseudonym"
        );
    }
    let with_resource = receiver.spans();
    for (resource, _) in &with_resource {
        assert_eq!(
            attr(resource, "service.name").as_deref(),
            Some("rv-observability-test")
        );
    }
    let all: Vec<Span> = with_resource.into_iter().map(|(_, s)| s).collect();
    // Span attributes are an allow-list: no URL, path, query, header or body attribute.
    for s in &all {
        for kv in &s.attributes {
            assert!(
                !kv.key.starts_with("url.")
                    && !kv.key.starts_with("http.request.header")
                    && !kv.key.starts_with("http.response.header")
                    && kv.key != "http.target"
                    && kv.key != "http.url",
                "span {} has attribute {}",
                s.name,
                kv.key
            );
        }
    }

    // One server span per request, named by method and route template.
    for c in calls.iter().filter(|c| !c.request_id.is_empty()) {
        let (server, _) = trace_of(&all, &c.request_id);
        assert_eq!(server.kind, SpanKind::Server as i32, "{c:?}");
        assert!(
            server.parent_span_id.is_empty(),
            "a request span is a root: {c:?}"
        );
        assert_eq!(
            attr(&server.attributes, "http.route").as_deref(),
            Some(c.route),
            "{c:?}"
        );
        assert_eq!(
            attr(&server.attributes, "http.response.status_code"),
            Some(c.status.to_string()),
            "{c:?}"
        );
        let method = if matches!(c.method.as_str(), "GET" | "POST") {
            c.method.as_str()
        } else {
            "_OTHER"
        };
        assert_eq!(
            attr(&server.attributes, "http.request.method").as_deref(),
            Some(method),
            "{c:?}"
        );
        if method != "_OTHER" {
            assert_eq!(server.name, format!("{method} {}", c.route), "{c:?}");
        }
    }

    // Domain operations nest under their request.
    let find = |route: &str, method: &str| -> Vec<&Call> {
        calls
            .iter()
            .filter(|c| c.route == route && c.method == method)
            .collect()
    };
    let seal = find("/v1/reporters", "POST")[0];
    let (server, trace) = trace_of(&all, &seal.request_id);
    let op = span_by_name(&trace, "vault.seal");
    assert_eq!(op.len(), 1, "one vault.seal span in the seal's trace");
    assert_eq!(
        op[0].parent_span_id, server.span_id,
        "vault.seal is the request's child"
    );
    assert_eq!(
        attr(&op[0].attributes, "actor_role").as_deref(),
        Some("case_system")
    );
    assert_eq!(
        attr(&op[0].attributes, "anonymous").as_deref(),
        Some("false")
    );
    let auth = span_by_name(&trace, "vault.authenticate");
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0].parent_span_id, server.span_id);
    // A seal is one write unit (its checks, inserts and trail append), committed with
    // whatever other units the SQLite writer thread grouped it with.
    let units = span_by_name(&trace, "store.commit_unit");
    assert_eq!(units.len(), 1, "the seal's write unit has a span");
    let unit = units[0];
    assert!(
        descends(unit, op[0], &trace),
        "store.commit_unit under vault.seal"
    );
    assert_eq!(
        attr(&unit.attributes, "db.system").as_deref(),
        Some("sqlite")
    );
    assert_eq!(
        attr(&unit.attributes, "unit.appends").as_deref(),
        Some("1"),
        "the seal appends one event"
    );
    let group: u64 = attr(&unit.attributes, "group.size")
        .and_then(|g| g.parse().ok())
        .expect("the group size is recorded");
    assert!(group >= 1, "group.size {group}");

    let expect_op = |call: &Call, name: &str, fields: &[(&str, &str)]| {
        let (server, trace) = trace_of(&all, &call.request_id);
        let op = span_by_name(&trace, name);
        assert_eq!(op.len(), 1, "one {name} in {call:?}");
        assert_eq!(
            op[0].parent_span_id, server.span_id,
            "{name} under its request"
        );
        for (k, v) in fields {
            assert_eq!(
                attr(&op[0].attributes, k).as_deref(),
                Some(*v),
                "{name}.{k}"
            );
        }
    };
    let requests = find("/v1/disclosures", "POST");
    expect_op(
        requests[0],
        "vault.request_disclosure",
        &[
            ("purpose", "verification_contact"),
            ("outcome", "requested"),
            ("disclosure_id", &flow.verification),
        ],
    );
    expect_op(
        requests[1],
        "vault.request_disclosure",
        &[("purpose", "judicial_transfer"), ("outcome", "requested")],
    );
    expect_op(
        find("/v1/disclosures/{id}/approve", "POST")[0],
        "vault.decide_disclosure",
        &[
            ("disclosure_id", &flow.verification),
            ("approve", "true"),
            ("outcome", "approved"),
            ("purpose", "verification_contact"),
        ],
    );
    expect_op(
        find("/v1/disclosures/{id}/deny", "POST")[0],
        "vault.decide_disclosure",
        &[
            ("disclosure_id", &flow.judicial),
            ("approve", "false"),
            ("outcome", "denied"),
        ],
    );
    expect_op(
        find("/v1/disclosures/{id}/open", "POST")[0],
        "vault.open_disclosure",
        &[("disclosure_id", &flow.verification), ("outcome", "opened")],
    );
    // An ID number where a disclosure id belongs is not recorded as one.
    expect_op(
        find("/v1/disclosures/{id}", "GET")[0],
        "vault.get_disclosure",
        &[("disclosure_id", "malformed")],
    );
    expect_op(
        find("/v1/audit/leak-trace", "POST")[0],
        "vault.leak_trace",
        &[("field", "phone"), ("actor_role", "auditor")],
    );
}

fn check_logs(svc: &Service, calls: &[Call]) {
    let text = svc.stderr_text();
    assert_no_identity("stderr", text.as_bytes());
    assert_no_identity("stdout", &svc.stdout_bytes());
    let mut request_lines: HashMap<String, Value> = HashMap::new();
    let mut lines = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        lines += 1;
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        assert!(
            obj.get("level")
                .and_then(Value::as_str)
                .is_some_and(|l| ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&l)),
            "no level: {line}"
        );
        let message = obj
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no message: {line}"));
        assert!(obj.get("timestamp").is_some(), "no timestamp: {line}");
        // Log lines carry no span context: spans are for traces.
        assert!(
            obj.get("spans").is_none() && obj.get("span").is_none(),
            "{line}"
        );
        if message == "request" {
            let id = obj
                .get("request_id")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("a request line without request_id: {line}"));
            request_lines.insert(id.to_owned(), v.clone());
        }
    }
    assert!(lines > 5, "only {lines} log lines");
    assert!(
        text.contains("exporting traces over OTLP/gRPC"),
        "the start-up line says traces are exported"
    );
    for c in calls.iter().filter(|c| !c.request_id.is_empty()) {
        let line = request_lines
            .get(&c.request_id)
            .unwrap_or_else(|| panic!("no request line for {c:?}"));
        assert_eq!(line["route"], c.route, "{c:?}");
        assert_eq!(line["status"], c.status, "{c:?}");
        assert!(line["latency_us"].is_u64(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_metrics_and_logs_carry_no_identity() {
    let receiver = Receiver::start().await;
    let mut svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "rv-observability-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ])
    .await;
    let flow = drive(&mut svc).await;

    // Spans arrive while the service runs (the batch processor's schedule).
    let seal_id = svc
        .calls
        .iter()
        .find(|c| c.route == "/v1/reporters" && c.method == "POST")
        .expect("seal call")
        .request_id
        .clone();
    receiver
        .wait_for(Duration::from_secs(20), |spans| {
            spans
                .iter()
                .any(|(_, s)| attr(&s.attributes, "request_id").as_deref() == Some(&seal_id))
        })
        .await;
    assert!(
        receiver
            .spans()
            .iter()
            .any(|(_, s)| attr(&s.attributes, "request_id").as_deref() == Some(&seal_id)),
        "the seal's span was exported while the service runs"
    );

    let calls_before_scrape = svc.calls.clone();
    let metrics = svc
        .call(Method::GET, "/metrics", "/metrics", None, None)
        .await;
    metrics.expect(200, "/metrics");
    check_metrics(
        &String::from_utf8(metrics.body.clone()).expect("UTF-8 metrics"),
        &calls_before_scrape,
        &flow,
    );

    // SIGTERM: the guard flushes what is still queued before the process exits.
    let status = svc.terminate().await;
    assert!(status.success(), "exit status {status}");
    let calls = svc.calls.clone();
    let last = calls.last().expect("calls").request_id.clone();
    receiver
        .wait_for(Duration::from_secs(10), |spans| {
            spans
                .iter()
                .any(|(_, s)| attr(&s.attributes, "request_id").as_deref() == Some(&last))
        })
        .await;
    check_traces(&receiver, &calls, &flow);
    check_logs(&svc, &calls);
}

/// `OTEL_SDK_DISABLED=true` turns export off even with an endpoint set; with no endpoint at
/// all nothing is exported and the log does not claim otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_export_without_an_endpoint_or_when_disabled() {
    let receiver = Receiver::start().await;
    for env in [
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        vec![("OTEL_BSP_SCHEDULE_DELAY", "100")],
    ] {
        let mut svc = Service::start(&env).await;
        let cs = svc.token("case_system");
        svc.call(Method::GET, "/v1/policies", "/v1/policies", Some(&cs), None)
            .await
            .expect(200, "list policies");
        // Metrics do not depend on traces.
        let m = svc
            .call(Method::GET, "/metrics", "/metrics", None, None)
            .await;
        let text = String::from_utf8(m.body.clone()).expect("UTF-8");
        let exp = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            exp.value(
                "rv_http_requests_total",
                &[
                    ("method", "GET"),
                    ("route", "/v1/policies"),
                    ("status", "200")
                ]
            ),
            Some(1.0)
        );
        assert!(
            exp.find("rv_trace_export_failures_total", &[]).is_empty(),
            "no exporter, no export metric"
        );
        assert!(svc.terminate().await.success());
        let log = svc.stderr_text();
        assert!(!log.contains("exporting traces"), "{env:?}: {log}");
        assert!(!log.contains("could not start"), "{env:?}: {log}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.requests().is_empty(), "spans were exported");
}

/// Spans still queued when SIGTERM arrives are flushed before the process exits: with a
/// ten-minute batch schedule nothing leaves while the service runs, everything at exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_spans_are_flushed_at_exit() {
    let receiver = Receiver::start().await;
    let mut svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ])
    .await;
    let cs = svc.token("case_system");
    svc.call(Method::GET, "/v1/policies", "/v1/policies", Some(&cs), None)
        .await
        .expect(200, "list policies");
    let id = svc.calls.last().expect("call").request_id.clone();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        receiver.requests().is_empty(),
        "spans left before the schedule said so"
    );
    assert!(svc.terminate().await.success());
    // The exporter finished before the process exited: no waiting needed.
    let spans = receiver.spans();
    let server = spans
        .iter()
        .find(|(_, s)| attr(&s.attributes, "request_id").as_deref() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("the request's span was not flushed at exit: {spans:?}"));
    assert_eq!(server.1.name, "GET /v1/policies");
    assert_eq!(
        attr(&server.0, "service.name").as_deref(),
        Some("reporter-vault"),
        "the default service name"
    );
}

/// A collector that cannot be reached costs the service nothing but a warning: requests are
/// answered, the export failure is logged (as JSON, without identity data), and shutdown
/// gives up on the last spans within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_does_not_hold_up_the_service() {
    // A port that was free a moment ago: nothing listens there.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut svc = Service::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
    ])
    .await;
    let cs = svc.token("case_system");
    let started = std::time::Instant::now();
    for _ in 0..5 {
        svc.call(
            Method::POST,
            "/v1/reporters",
            "/v1/reporters",
            Some(&cs),
            Some(json!({
                "jurisdiction": "140100", "case_ref": "SX-2026-000124",
                "received_at": received_at(), "channel": "web",
                "employee_of_reported_unit": false,
                "identity": {"name": NAME, "id_number": ID_NUMBER, "phone": PHONE}
            })),
        )
        .await
        .expect(201, "seal with the collector down");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "requests waited for the collector: {:?}",
        started.elapsed()
    );
    // Let the batch processor try (and fail) at least once.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !svc
        .stderr_text()
        .contains("could not export spans to the OTLP collector")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no warning about the unreachable collector:\n{}",
            svc.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = svc
        .call(Method::GET, "/metrics", "/metrics", None, None)
        .await;
    let text = String::from_utf8(m.body.clone()).expect("UTF-8");
    let exp = prom::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let failures = exp
        .value("rv_trace_export_failures_total", &[])
        .expect("rv_trace_export_failures_total");
    assert!(failures >= 1.0, "{failures} failed exports counted");
    let stopping = std::time::Instant::now();
    assert!(svc.terminate().await.success());
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    let log = svc.stderr_text();
    assert_no_identity("stderr", log.as_bytes());
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
}

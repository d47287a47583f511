//! Key rotation and rewrap while the service is under continuous load (issue 6, item 1):
//! clients keep sealing, re-sealing, reading and disclosing while the admin endpoint rotates
//! and rewraps, the `keys` CLI rotates, rewraps and retires beside the running server, and
//! not one request may fail. Rewrap must not decrypt any identity: the data part of every
//! envelope is byte-identical before and after, only the header and wrapped key change.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    ALL_FIELDS, Engine, Person, Server, Store, assert_discloses, assert_ok, describe, env_data,
    env_head, env_version, key_version, received_days_ago, seal_body,
};

/// On both engines with a passphrase keyring (production), and on SQLite with the embedded
/// default's identity-file keyring (no scrypt on a keyring write).
mod rotation_and_rewrap_under_load_fail_no_request {
    use crate::harness::Engine;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        super::rotation_and_rewrap_under_load_fail_no_request(Engine::Sqlite, true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::rotation_and_rewrap_under_load_fail_no_request(Engine::Postgres, true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_identity_file_keyring() {
        super::rotation_and_rewrap_under_load_fail_no_request(Engine::Sqlite, false).await;
    }
}

/// The server's settings: fast retirement and reload, and no disclosure-request limit in the
/// way of the load.
const SERVE_ENV: [(&str, &str); 3] = [
    ("RV_KEY_RETIRE_GRACE_SECONDS", "1"),
    ("RV_KEY_RELOAD_SECONDS", "1"),
    ("RV_DISCLOSURE_REQUESTS_PER_MINUTE", "1000000"),
];
const CLI_ENV: [(&str, &str); 1] = [("RV_KEY_RETIRE_GRACE_SECONDS", "1")];

const INITIAL: u32 = 30;
const CLIENTS: u32 = 4;

/// What the test is doing while the load runs, so a failure says when it happened.
const PHASES: [&str; 8] = [
    "load only",
    "endpoint rotate",
    "endpoint rewrap",
    "CLI rotate",
    "CLI rewrap",
    "endpoint retire v1",
    "CLI retire v2",
    "after the retirements",
];

/// Per-operation counters of the load.
#[derive(Default)]
struct Stats {
    ok: Mutex<BTreeMap<&'static str, u64>>,
    failures: Mutex<Vec<String>>,
    phase: AtomicUsize,
    max_latency_ms: AtomicU64,
    slow: AtomicU64,
}

impl Stats {
    fn total_ok(&self) -> u64 {
        self.ok.lock().unwrap().values().sum()
    }

    fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
    }

    fn fail(&self, what: String) {
        let phase = PHASES[self.phase.load(Ordering::SeqCst)];
        self.failures
            .lock()
            .unwrap()
            .push(format!("[during {phase}] {what}"));
    }
}

/// What the load knows: every sealed pseudonym and whose it is.
type Sealed = Arc<Mutex<Vec<(String, Person)>>>;

struct Client {
    http: reqwest::Client,
    base: String,
    case: String,
    custodian: String,
    stats: Arc<Stats>,
}

impl Client {
    /// One request; counts it as ok when its status is `want`, otherwise records a failure.
    async fn req(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: u16,
    ) -> Option<Value> {
        let started = Instant::now();
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await;
        let res = match res {
            Ok(r) => {
                let status = r.status().as_u16();
                r.bytes().await.map(|b| (status, b))
            }
            Err(e) => Err(e),
        };
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.stats.max_latency_ms.fetch_max(ms, Ordering::Relaxed);
        if ms > 2000 {
            self.stats.slow.fetch_add(1, Ordering::Relaxed);
        }
        match res {
            Ok((status, bytes)) if status == want => {
                *self.stats.ok.lock().unwrap().entry(op).or_default() += 1;
                Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
            }
            Ok((status, bytes)) => {
                self.stats.fail(format!(
                    "{op} {path}: {status} after {ms} ms: {}",
                    String::from_utf8_lossy(&bytes)
                ));
                None
            }
            Err(e) => {
                self.stats
                    .fail(format!("{op} {path}: transport error after {ms} ms: {e}"));
                None
            }
        }
    }

    fn fail(&self, what: String) {
        self.stats.fail(what);
    }
}

/// xorshift: enough to pick pseudonyms without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One load client: seals a new reporter, reads a pseudonym, every third round re-seals a
/// reporter the load sealed earlier (the same resident ID: re-sealed under a fresh data key),
/// every other round asks for, approves and opens a disclosure and checks the values.
#[allow(clippy::too_many_arguments)]
async fn client_loop(
    c: Client,
    id: u32,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU32>,
    initial: Arc<Vec<(String, Person)>>,
    sealed: Sealed,
    reseal_pool: Sealed,
) {
    let mut rng = 0x9E37_79B9_7F4A_7C15_u64 ^ ((u64::from(id) + 1) * 0x1234_5678_9ABC_DEF1);
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let person = Person::nth(n);
        let case_ref = format!("SX-LOAD-{n}");
        if let Some(v) = c
            .req(
                "seal",
                Method::POST,
                "/v1/reporters",
                &c.case,
                Some(seal_body(
                    "140100",
                    &case_ref,
                    &received_days_ago(0),
                    &person,
                )),
                201,
            )
            .await
        {
            let p = v["pseudonym"].as_str().unwrap_or_default().to_owned();
            if v["reporter_seen_before"] != false {
                c.fail(format!(
                    "seal of a new reporter: reporter_seen_before in {v}"
                ));
            }
            sealed.lock().unwrap().push((p.clone(), person.clone()));
            reseal_pool.lock().unwrap().push((p, person));
        }

        // Read a pseudonym: one of the initial ones or any sealed so far.
        let (p, _) = {
            let all = sealed.lock().unwrap();
            let r = next(&mut rng) as usize;
            if r.is_multiple_of(2) || all.is_empty() {
                initial[r / 2 % initial.len()].clone()
            } else {
                all[r / 2 % all.len()].clone()
            }
        };
        if let Some(v) = c
            .req(
                "read",
                Method::GET,
                &format!("/v1/pseudonyms/{p}"),
                &c.case,
                None,
                200,
            )
            .await
            && v["status"] != "active"
        {
            c.fail(format!("read {p}: not active: {v}"));
        }

        if round.is_multiple_of(3) {
            let picked = {
                let pool = reseal_pool.lock().unwrap();
                (!pool.is_empty()).then(|| pool[next(&mut rng) as usize % pool.len()].clone())
            };
            if let Some((_, person)) = picked {
                let case_ref = format!("SX-AGAIN-{id}-{round}");
                if let Some(v) = c
                    .req(
                        "reseal",
                        Method::POST,
                        "/v1/reporters",
                        &c.case,
                        Some(seal_body(
                            "140100",
                            &case_ref,
                            &received_days_ago(0),
                            &person,
                        )),
                        201,
                    )
                    .await
                {
                    if v["reporter_seen_before"] != true {
                        c.fail(format!("re-seal: reporter_seen_before in {v}"));
                    }
                    let p = v["pseudonym"].as_str().unwrap_or_default().to_owned();
                    sealed.lock().unwrap().push((p, person));
                }
            }
        }

        if round.is_multiple_of(2) {
            let (p, person) = {
                let all = sealed.lock().unwrap();
                let r = next(&mut rng) as usize;
                if r.is_multiple_of(2) || all.is_empty() {
                    initial[r / 2 % initial.len()].clone()
                } else {
                    all[r / 2 % all.len()].clone()
                }
            };
            let Some(v) = c
                .req(
                    "disclosure_request",
                    Method::POST,
                    "/v1/disclosures",
                    &c.case,
                    Some(json!({"pseudonym": p, "purpose": "verification_contact",
                        "justification": "核查需要联系举报人补充材料", "fields": ["phone", "id_number"]})),
                    201,
                )
                .await
            else {
                continue;
            };
            let d = v["id"].as_str().unwrap_or_default().to_owned();
            if c.req(
                "disclosure_approve",
                Method::POST,
                &format!("/v1/disclosures/{d}/approve"),
                &c.custodian,
                Some(json!({"comment": "同意"})),
                200,
            )
            .await
            .is_none()
            {
                continue;
            }
            if let Some(v) = c
                .req(
                    "disclosure_open",
                    Method::POST,
                    &format!("/v1/disclosures/{d}/open"),
                    &c.case,
                    None,
                    200,
                )
                .await
                && (v["fields"]["phone"] != person.phone.as_str()
                    || v["fields"]["id_number"] != person.id_number.as_str())
            {
                c.fail(format!(
                    "disclosure {d} of {p} opened to other values: {}",
                    v["fields"]
                ));
            }
        }
    }
}

async fn rotation_and_rewrap_under_load_fail_no_request(engine: Engine, passphrase: bool) {
    let started = Instant::now();
    let label = format!(
        "{engine:?}, {} keyring",
        if passphrase {
            "passphrase"
        } else {
            "identity-file"
        }
    );
    // A passphrase keyring, as production runs: every keyring write and load costs a scrypt.
    let store = if passphrase {
        Store::with_passphrase(engine).await
    } else {
        Store::new(engine).await
    };
    let server = Server::start(&store, &SERVE_ENV).await;
    let t = server.tokens.clone();

    let k = server.keys().await;
    assert_eq!(k["provider"], "local", "{k}");
    assert_eq!(k["active_version"], 1, "{k}");

    // The reporters sealed under version 1, and an approved disclosure opened only at the end.
    let mut initial = Vec::new();
    for i in 0..INITIAL {
        let person = Person::nth(i);
        let p = server.seal(&person, &format!("SX-INIT-{i}")).await;
        initial.push((p, person));
    }
    let pre_rotation = server.approved_disclosure(&initial[0].0, &ALL_FIELDS).await;
    let mut records = Vec::new();
    for (p, _) in &initial {
        records.push(store.record_of(p).await);
    }
    let mut before: HashMap<String, Vec<u8>> = HashMap::new();
    for r in &records {
        let row = store.reporter_row(r).await;
        let env = row.envelope.expect("an envelope");
        assert_eq!(env_version(&env), 1);
        assert_eq!(row.kek_version, Some(1));
        before.insert(r.clone(), env);
    }
    let k = server.keys().await;
    assert_eq!(key_version(&k, 1)["records"], u64::from(INITIAL), "{k}");

    // The load.
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let counter = Arc::new(AtomicU32::new(1000));
    let initial = Arc::new(initial);
    let sealed: Sealed = Arc::new(Mutex::new(Vec::new()));
    let reseal_pool: Sealed = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for id in 0..CLIENTS {
        let c = Client {
            http: server.client.clone(),
            base: server.base.clone(),
            case: t.case.clone(),
            custodian: t.custodian.clone(),
            stats: stats.clone(),
        };
        tasks.push(tokio::spawn(client_loop(
            c,
            id,
            stop.clone(),
            counter.clone(),
            initial.clone(),
            sealed.clone(),
            reseal_pool.clone(),
        )));
    }
    wait_for!(
        Duration::from_secs(30),
        "the load gets going",
        (stats.total_ok() >= 40).then_some(())
    );

    // 1. Rotation through the endpoint: new seals go to version 2 at once.
    stats.set_phase(1);
    assert_eq!(server.rotate().await, 2);
    let endpoint_rotated_at = Instant::now();
    wait_for!(
        Duration::from_secs(10),
        "seals under version 2 after the rotation",
        {
            let k = server.keys().await;
            (k["active_version"] == 2 && key_version(&k, 2)["records"].as_u64() > Some(0))
                .then_some(())
        }
    );

    // 2. Rewrap through the endpoint, polled to completion.
    stats.set_phase(2);
    let job = server.rewrap_to_completion().await;
    assert_eq!(job["failed"], 0, "{job}");
    assert!(
        job["done"].as_u64().unwrap() >= u64::from(INITIAL),
        "the job moved at least the {INITIAL} initial records: {job}"
    );
    assert!(job["total"].as_u64() >= job["done"].as_u64(), "{job}");
    assert!(job["finished_at"].is_string(), "{job}");
    let k = server.keys().await;
    assert_eq!(key_version(&k, 1)["records"], 0, "nothing left on v1: {k}");

    // Nothing was decrypted: the data part is the same bytes, only header and wrap changed.
    for r in &records {
        let row = store.reporter_row(r).await;
        let env = row.envelope.expect("an envelope");
        let old = &before[r];
        assert_eq!(env_version(&env), 2, "record {r} rewrapped to v2");
        assert_eq!(row.kek_version, Some(2), "kek_version column of {r}");
        assert_eq!(env_data(&env), env_data(old), "data part of {r}");
        assert_ne!(env_head(&env), env_head(old), "header and wrap of {r}");
        assert_eq!(env_head(&env).len(), 10 + 60, "local wrap is 60 bytes");
    }

    // 3. Rotation through the CLI beside the running server: it seals under v3 within a few
    //    seconds (RV_KEY_RELOAD_SECONDS=1).
    stats.set_phase(3);
    let out = store.run(&["keys", "rotate"], &CLI_ENV).await;
    assert_ok(&out, "keys rotate");
    let rotated_at = Instant::now();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("ok: key version 3 is active for new records"),
        "{}",
        describe(&out)
    );
    wait_for!(
        Duration::from_secs(30),
        "the server seals under the CLI's version 3",
        {
            let k = server.keys().await;
            (k["active_version"] == 3 && key_version(&k, 3)["records"].as_u64() > Some(0))
                .then_some(())
        }
    );
    let picked_up = rotated_at.elapsed();
    eprintln!("[{label}] the server sealed under the CLI's version 3 after {picked_up:?}");
    // The reload interval is 1 s; a passphrase keyring costs one scrypt per load on top (the
    // service's default work factor: about a second by design, several in a debug build on
    // a busy machine).
    assert!(
        picked_up < Duration::from_secs(if passphrase { 20 } else { 5 }),
        "the server took {picked_up:?} to use the CLI's new version"
    );

    // 4. Rewrap through the CLI.
    stats.set_phase(4);
    let k = server.keys().await;
    let on_v2 = key_version(&k, 2)["records"].as_u64().unwrap();
    let out = store.run(&["keys", "rewrap"], &CLI_ENV).await;
    assert_ok(&out, "keys rewrap");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ok: "))
        .unwrap_or_else(|| panic!("no ok line: {}", describe(&out)));
    let rest = line.strip_prefix("ok: ").unwrap();
    let (n, rest) = rest.split_once(' ').unwrap();
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("count in {line:?}"));
    assert!(
        rest.starts_with("records rewrapped to version 3, 0 failed (job job_"),
        "{line:?}"
    );
    // Re-seals move some v2 records to v3 between the count and the rewrap; nothing new
    // lands on v2 any more.
    assert!(
        n > 0 && n <= on_v2,
        "the CLI rewrapped {n} records; {on_v2} were on v2 before"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rewrap: "),
        "progress lines on stderr when not a terminal: {}",
        describe(&out)
    );
    let k = server.keys().await;
    for v in [1, 2] {
        assert_eq!(
            key_version(&k, v)["records"],
            0,
            "nothing on v{v} after the CLI rewrap: {k}"
        );
    }

    // 5. Retire v1 through the endpoint and v2 through the CLI.
    stats.set_phase(5);
    // v1 may be retired once the grace (1 s) after v2 appeared is over: with a fast keyring
    // the phases before take less than that.
    let wait = Duration::from_millis(1300).saturating_sub(endpoint_rotated_at.elapsed());
    tokio::time::sleep(wait).await;
    let r = server.retire("1").await;
    let v = r.expect(200, "retire v1");
    assert_eq!(v, json!({"version": 1, "retired": true}));
    let wait = Duration::from_millis(1300).saturating_sub(rotated_at.elapsed());
    tokio::time::sleep(wait).await;
    stats.set_phase(6);
    let out = store.run(&["keys", "retire", "2"], &CLI_ENV).await;
    assert_ok(&out, "keys retire 2");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok: key version 2 retired"),
        "{}",
        describe(&out)
    );

    // The load goes on a little after the retirements (the server reloads without v2).
    stats.set_phase(7);
    let after_retire = stats.total_ok();
    wait_for!(
        Duration::from_secs(30),
        "load continues after retirement",
        (stats.total_ok() >= after_retire + 60).then_some(())
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("a load client panicked");
    }

    let counts = stats.ok.lock().unwrap().clone();
    let failures = stats.failures.lock().unwrap().clone();
    eprintln!(
        "[{label}] load: {} requests answered as expected {counts:?}; {} failed; max latency \
         {} ms, {} over 2 s",
        stats.total_ok(),
        failures.len(),
        stats.max_latency_ms.load(Ordering::Relaxed),
        stats.slow.load(Ordering::Relaxed),
    );
    if !failures.is_empty() {
        let log = server.output();
        let problems: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
            .collect();
        eprintln!(
            "[{label}] the server's warnings and errors:\n{}",
            problems[problems.len().saturating_sub(40)..].join("\n")
        );
    }
    // Everything else is checked first; the failed requests fail the test at the end.
    let failed_requests = (!failures.is_empty()).then(|| {
        let text = format!(
            "{} requests failed during rotation/rewrap/retirement: {:#?}",
            failures.len(),
            &failures[..failures.len().min(30)]
        );
        eprintln!("[{label}] {text}");
        text
    });
    for op in [
        "seal",
        "reseal",
        "read",
        "disclosure_request",
        "disclosure_approve",
        "disclosure_open",
    ] {
        assert!(
            counts.get(op).copied().unwrap_or(0) >= 5,
            "too little {op} load to mean anything: {counts:?}"
        );
    }

    // Every pseudonym still resolves.
    let sealed = sealed.lock().unwrap().clone();
    for (p, _) in initial.iter().chain(sealed.iter()) {
        assert_eq!(server.pseudonym_status(p).await, "active", "{p}");
    }

    // The disclosure approved before any rotation opens to exactly what was sealed.
    let r = server.open(&pre_rotation).await;
    let v = r.expect(200, "open the pre-rotation disclosure");
    assert_discloses(
        &v,
        &initial[0].1,
        "pre-rotation disclosure after two rewraps",
    );

    // Records only on v3; v1 and v2 retired.
    let k = server.keys().await;
    assert_eq!(k["active_version"], 3, "{k}");
    let live = u64::try_from(
        store
            .scalar("SELECT COUNT(*) FROM reporters WHERE envelope IS NOT NULL")
            .await,
    )
    .unwrap();
    let versions = k["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3, "{k}");
    for v in [1, 2] {
        let e = key_version(&k, v);
        assert_eq!(e["retired"], true, "v{v}: {k}");
        assert_eq!(e["records"], 0, "v{v}: {k}");
    }
    let e = key_version(&k, 3);
    assert_eq!(e["retired"], false, "{k}");
    assert_eq!(e["records"], live, "every live record on v3: {k}");
    assert_eq!(
        live,
        u64::from(INITIAL) + counts["seal"],
        "one record per distinct reporter"
    );
    for (id, col, env) in store.envelopes().await {
        assert_eq!(col, 3, "kek_version column of {id}");
        assert_eq!(env_version(&env), 3, "envelope header of {id}");
    }
    // Two rewraps later, the initial records still carry their original data part.
    for r in &records {
        let env = store.reporter_row(r).await.envelope.unwrap();
        assert_eq!(env_data(&env), env_data(&before[r]), "data part of {r}");
    }

    // The trail tells the story.
    let events = server.events().await;
    let count = |a: &str| events.iter().filter(|e| e["action"] == a).count();
    assert_eq!(count("key_rotated"), 2, "two rotations");
    assert_eq!(count("keys_rewrap_started"), 2, "two rewraps started");
    assert_eq!(count("keys_rewrapped"), 2, "two rewraps finished");
    assert_eq!(count("key_retired"), 2, "two retirements");
    let via_cli = events
        .iter()
        .filter(|e| e["action"] == "key_rotated" && e["detail"]["via"] == "cli")
        .count();
    assert_eq!(via_cli, 1, "one rotation by the CLI");

    server.stop().await;
    store.audit_verify(&[]).await;
    let out = store.run(&["keys", "status"], &[]).await;
    assert_ok(&out, "keys status");
    eprintln!(
        "[{label}] keys status:\n{}\nrotation test took {:?}",
        String::from_utf8_lossy(&out.stdout),
        started.elapsed()
    );
    if let Some(text) = failed_requests {
        panic!("{text}");
    }
}

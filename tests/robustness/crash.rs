//! Crash consistency: 20 rounds per engine of write load (seals, disclosure requests and
//! approvals, rewards filed, approved, claimed and paid), each ended by SIGKILL at a random
//! moment (seeded; the seed is printed), then a restart on the same store and three checks:
//!
//! 1. every request acknowledged with 2xx before the kill is there (over HTTP for the round,
//!    in the database for every earlier round);
//! 2. nothing is half there, whether acknowledged or not (read from the database directly:
//!    every pseudonym has its `reporter_sealed` event and vice versa, every reporter a
//!    pseudonym, every disclosure and approval its event and vice versa, every payment row a
//!    paid reward and vice versa, every reward transition its event);
//! 3. `reporter-vault audit verify` passes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Engine, Rng, Server, Store, blobs, disclosure_body, identity, request, reward_body, scalar,
    seal_body, strings,
};

const ROUNDS: usize = 20;
const WORKERS_DISCLOSURE: usize = 2;
const WORKERS_REWARD: usize = 3;
const WORKERS_SEAL: usize = 1;

/// What the server acknowledged (2xx) during one round.
#[derive(Default, Debug)]
struct Acked {
    sealed: Vec<String>,
    requested: Vec<String>,
    approved: Vec<String>,
    filed: Vec<String>,
    reward_approved: Vec<String>,
    claimed: Vec<String>,
    paid: Vec<String>,
    /// Answers that were neither the expected 2xx nor a transport failure.
    unexpected: Vec<String>,
}

impl Acked {
    fn merge(&mut self, o: Acked) {
        self.sealed.extend(o.sealed);
        self.requested.extend(o.requested);
        self.approved.extend(o.approved);
        self.filed.extend(o.filed);
        self.reward_approved.extend(o.reward_approved);
        self.claimed.extend(o.claimed);
        self.paid.extend(o.paid);
        self.unexpected.extend(o.unexpected);
    }

    fn total(&self) -> usize {
        self.sealed.len()
            + self.requested.len()
            + self.approved.len()
            + self.filed.len()
            + self.reward_approved.len()
            + self.claimed.len()
            + self.paid.len()
    }
}

#[derive(Clone)]
struct Ctx {
    base: String,
    client: reqwest::Client,
    tokens: Arc<BTreeMap<String, String>>,
    counter: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

enum Step {
    Ok(Resp2),
    /// A non-2xx answer (recorded as unexpected).
    Refused,
    /// Transport failure: the server is gone.
    Gone,
}

struct Resp2(Value);

impl Ctx {
    fn token(&self, who: &str) -> String {
        self.tokens.get(who).cloned().unwrap_or_default()
    }

    async fn post(&self, a: &mut Acked, path: &str, who: &str, body: Value, want: u16) -> Step {
        let t = self.token(who);
        match request(
            &self.client,
            &self.base,
            Method::POST,
            path,
            Some(&t),
            Some(&body),
        )
        .await
        {
            Err(_) => Step::Gone,
            Ok(r) if r.status == want => Step::Ok(Resp2(r.json())),
            Ok(r) => {
                a.unexpected
                    .push(format!("POST {path}: {} {}", r.status, r.text()));
                Step::Refused
            }
        }
    }

    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

/// Seal → request a disclosure → a custodian approves it.
async fn disclosure_worker(ctx: Ctx) -> Acked {
    let mut a = Acked::default();
    while !ctx.stop.load(Ordering::SeqCst) {
        let n = ctx.next();
        let body = seal_body("140100", &format!("RB-D-{n}"), identity(n));
        let p = match ctx
            .post(&mut a, "/v1/reporters", "case_system", body, 201)
            .await
        {
            Step::Ok(Resp2(v)) => s(&v, "pseudonym"),
            Step::Refused => continue,
            Step::Gone => break,
        };
        a.sealed.push(p.clone());
        let d = match ctx
            .post(
                &mut a,
                "/v1/disclosures",
                "case_system",
                disclosure_body(&p),
                201,
            )
            .await
        {
            Step::Ok(Resp2(v)) => s(&v, "id"),
            Step::Refused => continue,
            Step::Gone => break,
        };
        a.requested.push(d.clone());
        let who = if n.is_multiple_of(2) {
            "custodian"
        } else {
            "custodian2"
        };
        match ctx
            .post(
                &mut a,
                &format!("/v1/disclosures/{d}/approve"),
                who,
                json!({"comment": "同意 (robustness)"}),
                200,
            )
            .await
        {
            Step::Ok(Resp2(v)) => {
                if v["status"] == "approved" {
                    a.approved.push(d);
                } else {
                    a.unexpected.push(format!("approve {d}: {v}"));
                }
            }
            Step::Refused => continue,
            Step::Gone => break,
        }
    }
    a
}

/// Seal (370100) → file a reward → finance approves → the case system claims → finance pays.
async fn reward_worker(ctx: Ctx) -> Acked {
    let mut a = Acked::default();
    while !ctx.stop.load(Ordering::SeqCst) {
        let n = ctx.next();
        let case = format!("RB-R-{n}");
        let p = match ctx
            .post(
                &mut a,
                "/v1/reporters",
                "case_system",
                seal_body("370100", &case, identity(n)),
                201,
            )
            .await
        {
            Step::Ok(Resp2(v)) => s(&v, "pseudonym"),
            Step::Refused => continue,
            Step::Gone => break,
        };
        a.sealed.push(p.clone());
        let id = match ctx
            .post(
                &mut a,
                "/v1/rewards",
                "case_system",
                reward_body(&case, &p),
                201,
            )
            .await
        {
            Step::Ok(Resp2(v)) => s(&v, "id"),
            Step::Refused => continue,
            Step::Gone => break,
        };
        a.filed.push(id.clone());
        match ctx
            .post(
                &mut a,
                &format!("/v1/rewards/{id}/approve"),
                "finance",
                json!({}),
                200,
            )
            .await
        {
            Step::Ok(Resp2(v)) if v["status"] == "approved" => a.reward_approved.push(id.clone()),
            Step::Ok(Resp2(v)) => {
                a.unexpected.push(format!("approve reward {id}: {v}"));
                continue;
            }
            Step::Refused => continue,
            Step::Gone => break,
        }
        match ctx
            .post(
                &mut a,
                &format!("/v1/rewards/{id}/claims"),
                "case_system",
                json!({"pseudonym": p, "identity_checked": true}),
                200,
            )
            .await
        {
            Step::Ok(Resp2(v)) if v["status"] == "claimed" => a.claimed.push(id.clone()),
            Step::Ok(Resp2(v)) => {
                a.unexpected.push(format!("claim reward {id}: {v}"));
                continue;
            }
            Step::Refused => continue,
            Step::Gone => break,
        }
        match ctx
            .post(
                &mut a,
                &format!("/v1/rewards/{id}/payments"),
                "finance2",
                json!({"payment_ref": format!("PAY-{n}"), "amount": "10000.00", "paid_on": "2026-11-21"}),
                201,
            )
            .await
        {
            Step::Ok(Resp2(v)) if v["status"] == "paid" => a.paid.push(id.clone()),
            Step::Ok(Resp2(v)) => a.unexpected.push(format!("pay reward {id}: {v}")),
            Step::Refused => continue,
            Step::Gone => break,
        }
    }
    a
}

/// Seals only, real-name and anonymous alternately.
async fn seal_worker(ctx: Ctx) -> Acked {
    let mut a = Acked::default();
    while !ctx.stop.load(Ordering::SeqCst) {
        let n = ctx.next();
        let id = if n.is_multiple_of(2) {
            identity(n)
        } else {
            Value::Null
        };
        match ctx
            .post(
                &mut a,
                "/v1/reporters",
                "case_system",
                seal_body("140100", &format!("RB-S-{n}"), id),
                201,
            )
            .await
        {
            Step::Ok(Resp2(v)) => a.sealed.push(s(&v, "pseudonym")),
            Step::Refused => continue,
            Step::Gone => break,
        }
    }
    a
}

fn ctx_for(server: &Server, counter: &Arc<AtomicU64>) -> Ctx {
    Ctx {
        base: server.base.clone(),
        client: crate::harness::client(Duration::from_secs(20)),
        tokens: Arc::new(
            server
                .principals
                .iter()
                .map(|(k, p)| (k.clone(), p.token.clone()))
                .collect(),
        ),
        counter: counter.clone(),
        stop: Arc::new(AtomicBool::new(false)),
    }
}

/// Every acknowledged item of one round, checked over HTTP.
async fn verify_http(server: &Server, a: &Acked) -> Vec<String> {
    let mut checks: Vec<(String, &'static str, String)> = Vec::new();
    for p in &a.sealed {
        checks.push((format!("/v1/pseudonyms/{p}"), "sealed", String::new()));
    }
    for d in &a.requested {
        checks.push((format!("/v1/disclosures/{d}"), "requested", String::new()));
    }
    let approved: HashSet<&String> = a.approved.iter().collect();
    let mut reward_want: BTreeMap<&String, &'static str> = BTreeMap::new();
    for id in &a.filed {
        reward_want.insert(id, "filed");
    }
    for id in &a.reward_approved {
        reward_want.insert(id, "approved");
    }
    for id in &a.claimed {
        reward_want.insert(id, "claimed");
    }
    for id in &a.paid {
        reward_want.insert(id, "paid");
    }
    for (id, want) in &reward_want {
        checks.push((format!("/v1/rewards/{id}"), want, (*id).clone()));
    }
    let checks = Arc::new(checks);
    let mut set = tokio::task::JoinSet::new();
    const PAR: usize = 6;
    for w in 0..PAR {
        let checks = checks.clone();
        let base = server.base.clone();
        let client = server.client.clone();
        let cs = server.token("case_system");
        let fin = server.token("finance");
        let approved: HashSet<String> = approved.iter().map(|s| (*s).clone()).collect();
        set.spawn(async move {
            let mut problems = Vec::new();
            for (path, kind, _) in checks.iter().skip(w).step_by(PAR) {
                let token = if path.starts_with("/v1/rewards") {
                    &fin
                } else {
                    &cs
                };
                let r = match request(&client, &base, Method::GET, path, Some(token), None).await {
                    Ok(r) => r,
                    Err(e) => {
                        problems.push(format!("{path}: {e}"));
                        continue;
                    }
                };
                if r.status != 200 {
                    problems.push(format!(
                        "acknowledged ({kind}) but GET {path} answers {} {}",
                        r.status,
                        r.text()
                    ));
                    continue;
                }
                let v = r.json();
                let status = v["status"].as_str().unwrap_or_default().to_owned();
                match *kind {
                    "requested" => {
                        let id = path.rsplit('/').next().unwrap_or_default();
                        if approved.contains(id) && status != "approved" {
                            problems.push(format!(
                                "approval of {id} acknowledged, but the disclosure is {status}"
                            ));
                        }
                    }
                    "approved" if !["approved", "claimed", "paid"].contains(&status.as_str()) => {
                        problems.push(format!("reward approval acknowledged: {path} is {status}"));
                    }
                    "claimed" if !["claimed", "paid"].contains(&status.as_str()) => {
                        problems.push(format!("claim acknowledged: {path} is {status}"));
                    }
                    "paid" if status != "paid" || v["payment"].is_null() => {
                        problems.push(format!("payment acknowledged: {path} is {status}: {v}"));
                    }
                    _ => {}
                }
            }
            problems
        });
    }
    let mut problems = Vec::new();
    while let Some(r) = set.join_next().await {
        problems.extend(r.expect("verifier task"));
    }
    problems
}

/// What the database holds, read directly; `problems` lists every half-present item.
pub(crate) struct DbState {
    pub(crate) pseudonyms: HashSet<String>,
    pub(crate) approved_disclosures: HashSet<String>,
    pub(crate) paid_rewards: HashSet<String>,
    pub(crate) counts: String,
    pub(crate) problems: Vec<String>,
}

pub(crate) async fn db_state(store: &Store) -> DbState {
    let mut c = store.connect().await;
    let mut problems = Vec::new();
    let zero_checks: &[(&str, &str)] = &[
        (
            "pseudonyms (sealed) without their reporter_sealed event",
            "SELECT COUNT(*) FROM pseudonyms p WHERE p.origin = 'seal' AND NOT EXISTS \
             (SELECT 1 FROM audit_events e WHERE e.action = 'reporter_sealed' \
              AND e.pseudonym = p.pseudonym)",
        ),
        (
            "reporter_sealed events without their pseudonym",
            "SELECT COUNT(*) FROM audit_events e WHERE e.action = 'reporter_sealed' AND NOT EXISTS \
             (SELECT 1 FROM pseudonyms p WHERE p.pseudonym = e.pseudonym)",
        ),
        (
            "reporter_sealed events without their reporter",
            "SELECT COUNT(*) FROM audit_events e WHERE e.action = 'reporter_sealed' AND NOT EXISTS \
             (SELECT 1 FROM reporters r WHERE r.id = e.record)",
        ),
        (
            "reporters without a pseudonym",
            "SELECT COUNT(*) FROM reporters r WHERE NOT EXISTS \
             (SELECT 1 FROM pseudonyms p WHERE p.reporter_id = r.id)",
        ),
        (
            "disclosures without their disclosure_requested event",
            "SELECT COUNT(*) FROM disclosures d WHERE NOT EXISTS \
             (SELECT 1 FROM audit_events e WHERE e.action = 'disclosure_requested' \
              AND e.disclosure_id = d.id)",
        ),
        (
            "disclosure_requested events without their disclosure",
            "SELECT COUNT(*) FROM audit_events e WHERE e.action = 'disclosure_requested' \
             AND NOT EXISTS (SELECT 1 FROM disclosures d WHERE d.id = e.disclosure_id)",
        ),
        (
            "approvals without their disclosure_approved event",
            "SELECT COUNT(*) FROM disclosure_decisions c WHERE c.approve = 1 AND NOT EXISTS \
             (SELECT 1 FROM audit_events e WHERE e.action = 'disclosure_approved' \
              AND e.disclosure_id = c.disclosure_id AND e.actor_id = c.principal_id)",
        ),
        (
            "disclosure_approved events without their approval",
            "SELECT COUNT(*) FROM audit_events e WHERE e.action = 'disclosure_approved' \
             AND NOT EXISTS (SELECT 1 FROM disclosure_decisions c WHERE c.approve = 1 \
              AND c.disclosure_id = e.disclosure_id AND c.principal_id = e.actor_id)",
        ),
        (
            "disclosures 'approved' short of their quorum",
            "SELECT COUNT(*) FROM disclosures d WHERE d.status = 'approved' AND \
             (SELECT COUNT(*) FROM disclosure_decisions c WHERE c.disclosure_id = d.id \
              AND c.approve = 1) < d.approvals_required",
        ),
        (
            "disclosures 'pending' with their quorum",
            "SELECT COUNT(*) FROM disclosures d WHERE d.status = 'pending' AND \
             (SELECT COUNT(*) FROM disclosure_decisions c WHERE c.disclosure_id = d.id \
              AND c.approve = 1) >= d.approvals_required",
        ),
        (
            "payment rows of rewards that are not 'paid'",
            "SELECT COUNT(*) FROM reward_payments m JOIN rewards r ON r.id = m.reward_id \
             WHERE r.status <> 'paid'",
        ),
        (
            "'paid' rewards without a payment row",
            "SELECT COUNT(*) FROM rewards r WHERE r.status = 'paid' AND NOT EXISTS \
             (SELECT 1 FROM reward_payments m WHERE m.reward_id = r.id)",
        ),
        (
            "rewards without awards",
            "SELECT COUNT(*) FROM rewards r WHERE NOT EXISTS \
             (SELECT 1 FROM reward_awards w WHERE w.reward_id = r.id)",
        ),
        (
            "audit events without their level-0 Merkle node",
            "SELECT COUNT(*) FROM audit_events e WHERE e.idx >= 0 AND NOT EXISTS \
             (SELECT 1 FROM audit_nodes n WHERE n.level = 0 AND n.idx = e.idx)",
        ),
        (
            "gaps in the audit index sequence",
            "SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_events) - \
             (SELECT COUNT(*) FROM audit_events)",
        ),
    ];
    for (what, sql) in zero_checks {
        let n = scalar(&mut c, sql).await;
        if n != 0 {
            problems.push(format!("{n} {what}"));
        }
    }
    // Reward transitions and their events, from the leaves.
    let mut by_action: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for leaf in blobs(
        &mut c,
        "SELECT leaf FROM audit_events WHERE action IN \
         ('reward_filed', 'reward_approved', 'reward_claimed', 'reward_paid')",
    )
    .await
    {
        let ev: Value = serde_json::from_slice(&leaf).unwrap_or(Value::Null);
        if ev["outcome"] != "ok" {
            problems.push(format!("a reward event that is not ok: {ev}"));
        }
        by_action
            .entry(ev["action"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .insert(ev["target"].as_str().unwrap_or_default().to_owned());
    }
    let ids = |status: &str| {
        format!(
            "SELECT id FROM rewards WHERE status IN ({})",
            status
                .split(',')
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let all: HashSet<String> = strings(&mut c, "SELECT id FROM rewards")
        .await
        .into_iter()
        .collect();
    let approved_or_later: HashSet<String> = strings(&mut c, &ids("approved,claimed,paid"))
        .await
        .into_iter()
        .collect();
    let claimed_or_later: HashSet<String> = strings(&mut c, &ids("claimed,paid"))
        .await
        .into_iter()
        .collect();
    let payments: HashSet<String> = strings(&mut c, "SELECT reward_id FROM reward_payments")
        .await
        .into_iter()
        .collect();
    let empty = HashSet::new();
    let ev = |a: &str| by_action.get(a).unwrap_or(&empty);
    let mut compare = |what: &str, rows: &HashSet<String>, events: &HashSet<String>| {
        let rows_only: Vec<_> = rows.difference(events).collect();
        let events_only: Vec<_> = events.difference(rows).collect();
        if !rows_only.is_empty() || !events_only.is_empty() {
            problems.push(format!(
                "{what}: rows without events {rows_only:?}, events without rows {events_only:?}"
            ));
        }
    };
    compare("rewards filed", &all, ev("reward_filed"));
    compare(
        "rewards approved (single approval)",
        &approved_or_later,
        ev("reward_approved"),
    );
    compare("rewards claimed", &claimed_or_later, ev("reward_claimed"));
    compare("rewards paid", &payments, ev("reward_paid"));

    let pseudonyms: HashSet<String> = strings(&mut c, "SELECT pseudonym FROM pseudonyms")
        .await
        .into_iter()
        .collect();
    let approved_disclosures: HashSet<String> = strings(
        &mut c,
        "SELECT id FROM disclosures WHERE status = 'approved'",
    )
    .await
    .into_iter()
    .collect();
    let counts = format!(
        "reporters {}, pseudonyms {}, disclosures {} ({} approved), rewards {} ({} paid), events {}",
        scalar(&mut c, "SELECT COUNT(*) FROM reporters").await,
        pseudonyms.len(),
        scalar(&mut c, "SELECT COUNT(*) FROM disclosures").await,
        approved_disclosures.len(),
        all.len(),
        payments.len(),
        scalar(&mut c, "SELECT COUNT(*) FROM audit_events").await,
    );
    use sqlx::Connection as _;
    let _ = c.close().await;
    DbState {
        pseudonyms,
        approved_disclosures,
        paid_rewards: payments,
        counts,
        problems,
    }
}

async fn crash_rounds(engine: Engine) {
    let started = Instant::now();
    let mut rng = Rng::seeded(&format!("crash consistency ({engine:?})"));
    let store = Store::new(engine).await;
    let env: &[(&str, &str)] = &[
        // The load requests far more than 30 disclosures a minute.
        ("RV_DISCLOSURE_REQUESTS_PER_MINUTE", "1000000"),
        // Checkpoints get signed under load too, so a kill can land in one.
        ("RV_CHECKPOINT_EVERY_EVENTS", "200"),
        ("RV_CHECKPOINT_EVERY_SECONDS", "1"),
    ];
    let mut server = Server::start(&store, env).await;
    let counter = Arc::new(AtomicU64::new(rng.range(0, 1_000_000) * 10));
    let mut all = Acked::default();
    let mut problems: Vec<String> = Vec::new();
    let mut kill_ms = Vec::new();
    let mut restart_ms = Vec::new();
    let mut verify_ms = Vec::new();
    for round in 0..ROUNDS {
        let ctx = ctx_for(&server, &counter);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..WORKERS_DISCLOSURE {
            set.spawn(disclosure_worker(ctx.clone()));
        }
        for _ in 0..WORKERS_REWARD {
            set.spawn(reward_worker(ctx.clone()));
        }
        for _ in 0..WORKERS_SEAL {
            set.spawn(seal_worker(ctx.clone()));
        }
        let at = rng.range(250, 1500);
        kill_ms.push(at);
        tokio::time::sleep(Duration::from_millis(at)).await;
        server.kill9();
        ctx.stop.store(true, Ordering::SeqCst);
        let mut acked = Acked::default();
        let join = async {
            while let Some(r) = set.join_next().await {
                acked.merge(r.expect("a load task"));
            }
        };
        tokio::time::timeout(Duration::from_secs(30), join)
            .await
            .expect("the load tasks stop within 30 s of the kill");

        let t = Instant::now();
        server = Server::start(&store, env).await;
        restart_ms.push(t.elapsed().as_millis());

        // 1. What was acknowledged this round, over HTTP.
        for p in verify_http(&server, &acked).await {
            problems.push(format!("round {round}: {p}"));
        }
        for u in &acked.unexpected {
            problems.push(format!("round {round}: unexpected answer under load: {u}"));
        }
        let round_total = acked.total();
        let round_summary = format!(
            "sealed {}, disclosures requested {} approved {}, rewards filed {} approved {} \
             claimed {} paid {}",
            acked.sealed.len(),
            acked.requested.len(),
            acked.approved.len(),
            acked.filed.len(),
            acked.reward_approved.len(),
            acked.claimed.len(),
            acked.paid.len()
        );
        all.merge(acked);

        // 2. Nothing half there; every earlier acknowledgement still there.
        let db = db_state(&store).await;
        for p in &db.problems {
            problems.push(format!("round {round}: {p}"));
        }
        let lost_p = all
            .sealed
            .iter()
            .filter(|p| !db.pseudonyms.contains(*p))
            .count();
        let lost_d = all
            .approved
            .iter()
            .filter(|d| !db.approved_disclosures.contains(*d))
            .count();
        let lost_r = all
            .paid
            .iter()
            .filter(|r| !db.paid_rewards.contains(*r))
            .count();
        if lost_p + lost_d + lost_r > 0 {
            problems.push(format!(
                "round {round}: acknowledged but missing in the database: {lost_p} seals, \
                 {lost_d} approvals, {lost_r} payments"
            ));
        }

        // 3. The trail verifies.
        let out = store.cli(&["audit", "verify"]).await;
        verify_ms.push(out.elapsed.as_millis());
        if out.code != Some(0) {
            problems.push(format!(
                "round {round}: audit verify failed ({:?}): {}\n{}",
                out.code, out.stdout, out.stderr
            ));
        }
        eprintln!(
            "crash ({engine:?}) round {round:2}: killed after {at:4} ms with {round_total:3} \
             acknowledged ({round_summary}); restart {} ms; db: {}",
            restart_ms[round], db.counts
        );
        if problems.len() > 20 {
            break;
        }
    }
    server.terminate().await;
    eprintln!(
        "crash ({engine:?}): {ROUNDS} rounds in {:.1} s; acknowledged in total: sealed {}, \
         disclosures requested {} approved {}, rewards filed {} approved {} claimed {} paid {}; \
         kill at {kill_ms:?} ms; restart ms {restart_ms:?}; audit verify ms {verify_ms:?}",
        started.elapsed().as_secs_f64(),
        all.sealed.len(),
        all.requested.len(),
        all.approved.len(),
        all.filed.len(),
        all.reward_approved.len(),
        all.claimed.len(),
        all.paid.len(),
    );
    assert!(
        problems.is_empty(),
        "crash consistency ({engine:?}):\n{}",
        problems.join("\n")
    );
    // The load did what it was meant to: approvals and payments were in flight.
    assert!(
        all.approved.len() >= ROUNDS / 2 && all.paid.len() >= ROUNDS / 2,
        "too little load to mean anything: {} approvals, {} payments acknowledged",
        all.approved.len(),
        all.paid.len()
    );
}

both_engines!(crash_rounds);

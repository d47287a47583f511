//! Many writers, one log (PostgreSQL): three real `reporter-vault serve` processes on one
//! database, each with its own data directory holding a copy of the one keyring, sealing
//! concurrently. The result is one linear log: indexes 0..n-1 with no gap and no duplicate,
//! every seal that answered 201 in it exactly once, and `audit verify` passes.

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::Child;

use crate::harness::{
    Engine, JURISDICTION, RECEIVED_AT, Storage, action, client, events_via, scalar_i64, send,
};

const PROCESSES: usize = 3;
const SEALS_PER_PROCESS: usize = 100;
const TASKS_PER_PROCESS: usize = 25;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Server {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Server {
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM to this child only: it drains and signs a last checkpoint.
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(s)) => assert!(
                s.success(),
                "{} exited with {s}: {}",
                self.base,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ),
            _ => {
                let _ = self.child.kill().await;
                panic!("{} did not stop on SIGTERM", self.base);
            }
        }
    }
}

async fn spawn_server(storage: &Storage, data_dir: &std::path::Path, demo: bool) -> Server {
    let pg = storage.pg.as_ref().expect("PostgreSQL");
    let port = free_port();
    let log = data_dir.join("server.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_reporter-vault"));
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--database-url")
        .arg(&pg.service_url)
        .arg("--policies")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies"))
        .arg("--checkpoint-every-seconds")
        .arg("1")
        .arg("--checkpoint-every-events")
        .arg("50")
        .env(
            "RV_KEYRING_PASSPHRASE",
            storage.passphrase.as_deref().expect("passphrase"),
        )
        .env("RV_LOG_FORMAT", "text")
        .env("NO_COLOR", "1")
        .env_remove("RV_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true);
    if demo {
        cmd.arg("--demo");
    }
    let child = cmd.spawn().expect("spawning reporter-vault serve");
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    for _ in 0..200 {
        if let Ok(r) = c.get(format!("{base}/readyz")).send().await
            && r.status().as_u16() == 200
        {
            return Server { child, base, log };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{base} did not become ready: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Seals one report through `base`: its status and error code.
async fn seal(
    c: &reqwest::Client,
    base: &str,
    token: &str,
    case_ref: &str,
    identity: Value,
) -> (u16, Option<String>) {
    let r = send(
        c,
        base,
        Method::POST,
        "/v1/reporters",
        Some(token),
        Some(json!({
            "jurisdiction": JURISDICTION,
            "case_ref": case_ref,
            "received_at": RECEIVED_AT, "channel": "web",
            "employee_of_reported_unit": false,
            "identity": identity,
        })),
    )
    .await;
    (r.status, r.code())
}

/// `n` processes on one database. The first creates the store and the demo principals with
/// the keyring in its data directory; the others get a copy of the keyring file (all
/// `VaultConfig::open` needs besides the database and the passphrase). Also the demo tokens,
/// and the other processes' data directories (removed when dropped).
async fn spawn_replicas(
    storage: &Storage,
    n: usize,
) -> (Vec<Server>, Value, Vec<tempfile::TempDir>) {
    let mut servers = vec![spawn_server(storage, storage.data_dir(), true).await];
    let mut extra_dirs = Vec::new();
    for _ in 1..n {
        let dir = tempfile::Builder::new()
            .prefix("rv-trail-replica-")
            .tempdir()
            .expect("tempdir");
        std::fs::copy(
            storage.data_dir().join("keyring.age"),
            dir.path().join("keyring.age"),
        )
        .expect("copying the keyring");
        servers.push(spawn_server(storage, dir.path(), false).await);
        extra_dirs.push(dir);
    }
    let tokens: Value = serde_json::from_slice(
        &std::fs::read(storage.data_dir().join("demo-tokens.json")).expect("demo tokens"),
    )
    .expect("json");
    (servers, tokens, extra_dirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_one_log() {
    let _w = crate::harness::watchdog("three_processes_one_log");
    let storage = Storage::new(Engine::Postgres).await;
    let (servers, tokens, _extra_dirs) = spawn_replicas(&storage, PROCESSES).await;
    let cs = Arc::new(
        tokens["case_system"]["token"]
            .as_str()
            .expect("token")
            .to_owned(),
    );
    let auditor = tokens["auditor"]["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let c = client();
    let mut tasks = Vec::new();
    for (s, server) in servers.iter().enumerate() {
        for t in 0..TASKS_PER_PROCESS {
            let (c, base, cs) = (c.clone(), server.base.clone(), cs.clone());
            tasks.push(tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in (t..SEALS_PER_PROCESS).step_by(TASKS_PER_PROCESS) {
                    let n = s * SEALS_PER_PROCESS + i;
                    statuses.push(
                        seal(
                            &c,
                            &base,
                            &cs,
                            &format!("MW-2026-{n:06}"),
                            json!({"name": format!("并发{n}"), "phone": format!("1370000{n:04}")}),
                        )
                        .await,
                    );
                }
                statuses
            }));
        }
    }
    let mut created = 0usize;
    let mut failures = Vec::new();
    for t in tasks {
        for (status, code) in t.await.expect("task") {
            if status == 201 {
                created += 1;
            } else {
                failures.push((status, code));
            }
        }
    }
    let total = PROCESSES * SEALS_PER_PROCESS;
    eprintln!("three processes: {created}/{total} seals answered 201; others: {failures:?}");

    // One linear log, read through every process.
    let mut logs = Vec::new();
    for server in &servers {
        logs.push(events_via(&c, &server.base, &auditor).await);
    }
    let (events, tree_size) = &logs[0];
    for (other, size) in &logs[1..] {
        assert_eq!(size, tree_size, "every process sees the same log");
        assert_eq!(
            other.iter().map(|e| &e.1).collect::<Vec<_>>(),
            events.iter().map(|e| &e.1).collect::<Vec<_>>(),
            "every process serves the same leaves"
        );
    }
    assert_eq!(events.len() as u64, *tree_size);
    for (pos, (index, _, ev)) in events.iter().enumerate() {
        assert_eq!(*index, pos as u64, "no gap, no duplicate: position {pos}");
        assert_eq!(ev["index"], pos as u64, "the leaf carries its position");
    }
    let sealed = events
        .iter()
        .filter(|e| action(&e.2) == "reporter_sealed")
        .count();
    assert_eq!(sealed, created, "one reporter_sealed event per 201");
    let mut conn = storage.superuser().await;
    let n = scalar_i64(&mut conn, "SELECT COUNT(*) FROM audit_events").await;
    let distinct = scalar_i64(&mut conn, "SELECT COUNT(DISTINCT idx) FROM audit_events").await;
    let max = scalar_i64(&mut conn, "SELECT COALESCE(MAX(idx), -1) FROM audit_events").await;
    let leaves = scalar_i64(
        &mut conn,
        "SELECT COUNT(*) FROM audit_nodes WHERE level = 0",
    )
    .await;
    let pseudonyms = scalar_i64(&mut conn, "SELECT COUNT(*) FROM pseudonyms").await;
    drop(conn);
    assert_eq!((n, distinct, max + 1), (n, n, n), "dense, unique indexes");
    assert_eq!(leaves, n, "one Merkle leaf node per event");
    assert_eq!(pseudonyms as usize, created, "one pseudonym per 201");
    assert_eq!(events.len() as i64, n);

    for s in servers {
        s.stop().await;
    }
    let out = storage.cli(&["audit", "verify"]).await;
    assert!(
        out.ok(),
        "audit verify after concurrent writers: {}",
        out.all()
    );
    // The leader signed the log the three processes wrote, up to its end (periodically
    // while they wrote, or, when all 300 seals landed within one of its 250 ms polls, once
    // then; and at its shutdown if anything came after). How many checkpoints that takes
    // depends on the machine's speed, so only the coverage is asserted.
    let mut conn = storage.superuser().await;
    let signed = scalar_i64(
        &mut conn,
        "SELECT COALESCE(MAX(size), 0) FROM audit_checkpoints",
    )
    .await;
    drop(conn);
    assert_eq!(signed, n, "the signed checkpoints cover the whole log");
    assert!(
        failures.is_empty(),
        "{} of {total} concurrent seals failed: {failures:?}",
        failures.len()
    );
}

/// Two processes receive reports of one new person at the same moment: each commits its
/// concurrent seals in groups, so both groups try to insert that person's record. The
/// loser's group is refused by the unique blind index and must then apply its units one by
/// one (the person is now on record: re-sealed), not fail: every report answers 201 and
/// the person has one record holding every pseudonym.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_report_one_new_person() {
    let _w = crate::harness::watchdog("two_processes_report_one_new_person");
    let storage = Storage::new(Engine::Postgres).await;
    let (servers, tokens, _extra_dirs) = spawn_replicas(&storage, 2).await;
    let cs = Arc::new(
        tokens["case_system"]["token"]
            .as_str()
            .expect("token")
            .to_owned(),
    );
    let c = client();
    const ROUNDS: usize = 4;
    const PER_SERVER: usize = 8;
    let mut statuses = Vec::new();
    for round in 0..ROUNDS {
        // A new person each round, reported PER_SERVER times through each process, among
        // as many reports of other new people, all at once.
        let person = crate::harness::resident_id(&format!("11010519900301{round:03}"));
        let mut tasks = Vec::new();
        for (s, server) in servers.iter().enumerate() {
            for i in 0..PER_SERVER * 2 {
                let (c, base, cs) = (c.clone(), server.base.clone(), cs.clone());
                let same = i % 2 == 0;
                let n = (round * 2 + s) * PER_SERVER * 2 + i;
                let id_number = if same {
                    person.clone()
                } else {
                    crate::harness::resident_id(&format!(
                        "1101051980{:02}{:02}002",
                        n / 28 + 1,
                        n % 28 + 1
                    ))
                };
                let case_ref = if same {
                    format!("SAME-{round}-{n:04}")
                } else {
                    format!("OTHER-{round}-{n:04}")
                };
                tasks.push(tokio::spawn(async move {
                    seal(
                        &c,
                        &base,
                        &cs,
                        &case_ref,
                        json!({"name": "同一人", "id_number": id_number}),
                    )
                    .await
                }));
            }
        }
        for t in tasks {
            statuses.push(t.await.expect("task"));
        }
    }
    let mut conn = storage.superuser().await;
    let mut records = Vec::new();
    for round in 0..ROUNDS {
        records.push(
            scalar_i64(
                &mut conn,
                &format!(
                    "SELECT COUNT(DISTINCT reporter_id) FROM pseudonyms WHERE case_ref LIKE 'SAME-{round}-%'"
                ),
            )
            .await,
        );
    }
    let same = scalar_i64(
        &mut conn,
        "SELECT COUNT(*) FROM pseudonyms WHERE case_ref LIKE 'SAME-%'",
    )
    .await;
    let others = scalar_i64(
        &mut conn,
        "SELECT COUNT(DISTINCT reporter_id) FROM pseudonyms WHERE case_ref LIKE 'OTHER-%'",
    )
    .await;
    drop(conn);
    for s in servers {
        s.stop().await;
    }
    let failed: Vec<_> = statuses.iter().filter(|(s, _)| *s != 201).collect();
    assert!(
        failed.is_empty(),
        "{} of {} concurrent reports failed: {failed:?}",
        failed.len(),
        statuses.len()
    );
    assert_eq!(records, vec![1; ROUNDS], "one record per person");
    assert_eq!(
        same as usize,
        ROUNDS * 2 * PER_SERVER,
        "one pseudonym per report"
    );
    assert_eq!(
        others as usize,
        ROUNDS * 2 * PER_SERVER,
        "one record per other person"
    );
    let out = storage.cli(&["audit", "verify"]).await;
    assert!(out.ok(), "audit verify: {}", out.all());
}

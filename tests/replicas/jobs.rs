//! Test 2: a rewrap job outlives the leader running it. The replicas share one data
//! directory, as the Helm chart's `ReadWriteMany` volume does, so a key rotation rewrites the
//! one `keyring.age` every replica re-reads.
//!
//! The job is paused deterministically from outside: a superuser transaction holds a row
//! lock on one reporter (or on the job's row), so the leader's batch (or its progress save)
//! waits on it while the test SIGKILLs the leader. The service's `lock_timeout` is 2 s, so
//! every pause is released well within that.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::checks;
use crate::harness::{Cluster, ClusterOpts, Dirs, Outcome, call, disclosure_body, seal_body};

/// Records sealed before the rotation: 4 batches of 200 (`LifecycleConfig::rewrap_batch`),
/// the last one partial.
const RECORDS: usize = 700;
/// The reporter (in the job's `ORDER BY id`) whose row lock stops the third batch.
const LOCKED_AT: usize = 450;

fn shared(reload_seconds: u32) -> ClusterOpts {
    ClusterOpts {
        dirs: Dirs::Shared,
        env: vec![(
            "RV_KEY_RELOAD_SECONDS".to_owned(),
            reload_seconds.to_string(),
        )],
        ..ClusterOpts::default()
    }
}

/// Seals `n` reporters through every live replica, 8 at a time; all must answer 201.
async fn seal_many(cluster: &Cluster, from: usize, n: usize, bases: &[String]) -> Vec<String> {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (client, cs, bases) = (
            cluster.client.clone(),
            cluster.tokens.case_system.clone(),
            bases.to_vec(),
        );
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (t..n).step_by(8) {
                let base = &bases[i % bases.len()];
                let o = call(
                    &client,
                    base,
                    Method::POST,
                    "/v1/reporters",
                    Some(&cs),
                    Some(&seal_body(from + i)),
                )
                .await;
                let v = o.expect(201, "seal");
                out.push(v["pseudonym"].as_str().expect("pseudonym").to_owned());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("seal task"));
    }
    all
}

async fn admin(cluster: &Cluster, base: &str, method: Method, path: &str) -> Outcome {
    call(
        &cluster.client,
        base,
        method,
        path,
        Some(&cluster.tokens.admin),
        None,
    )
    .await
}

async fn job(cluster: &Cluster, base: &str, id: &str) -> Value {
    admin(cluster, base, Method::GET, &format!("/v1/admin/jobs/{id}"))
        .await
        .expect(200, "job")
}

async fn key_status(cluster: &Cluster, base: &str) -> Value {
    admin(cluster, base, Method::GET, "/v1/admin/keys")
        .await
        .expect(200, "key status")
}

/// Records per KEK version, from `GET /v1/admin/keys`.
fn records_per_version(status: &Value) -> Vec<(u64, u64)> {
    status["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().expect("version"),
                v["records"].as_u64().expect("records"),
            )
        })
        .collect()
}

/// Rotates through `base` and waits until every live replica has reloaded the new version.
async fn rotate_everywhere(cluster: &Cluster, base: &str) -> u64 {
    let v = admin(cluster, base, Method::POST, "/v1/admin/keys/rotate")
        .await
        .expect(201, "rotate")["active_version"]
        .as_u64()
        .expect("active_version");
    let deadline = Instant::now() + Duration::from_secs(10);
    for r in cluster.alive() {
        loop {
            let s = key_status(cluster, &r.base).await;
            if s["active_version"].as_u64() == Some(v) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} still on {} 10 s after the rotation",
                r.name,
                s["active_version"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    v
}

/// Takes a row lock on the reporter at `offset` among those on `version`, in the job's order.
async fn lock_reporter(c: &mut PgConnection, version: i64, offset: usize) -> String {
    // Found first, locked apart: `FOR UPDATE` with `OFFSET` would lock every skipped row too.
    let id: String = sqlx::query_scalar(
        "SELECT id FROM reporters WHERE envelope IS NOT NULL AND kek_version = $1
          ORDER BY id OFFSET $2 LIMIT 1",
    )
    .bind(version)
    .bind(i64::try_from(offset).expect("offset"))
    .fetch_one(&mut *c)
    .await
    .expect("finding a reporter row");
    sqlx::raw_sql("BEGIN")
        .execute(&mut *c)
        .await
        .expect("BEGIN");
    sqlx::query("SELECT id FROM reporters WHERE id = $1 FOR UPDATE")
        .bind(&id)
        .execute(&mut *c)
        .await
        .expect("locking a reporter row");
    id
}

async fn commit(c: &mut PgConnection) {
    sqlx::raw_sql("COMMIT")
        .execute(&mut *c)
        .await
        .expect("COMMIT");
}

/// Polls the job through `base` until `done >= at_least`; returns it.
async fn wait_done(cluster: &Cluster, base: &str, id: &str, at_least: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let j = job(cluster, base, id).await;
        if j["done"].as_u64().unwrap_or(0) >= at_least {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not reach {at_least} within 10 s: {j}\n{}",
            cluster.log_tails(20)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the job through `base` until it is no longer queued or running.
async fn wait_finished(
    cluster: &Cluster,
    base: &str,
    id: &str,
    limit: Duration,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let j = job(cluster, base, id).await;
        if !matches!(j["status"].as_str(), Some("queued" | "running")) {
            return (j, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "the job did not finish within {limit:?}: {j}\n{}",
            cluster.log_tails(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn on_version(cluster: &Cluster, version: i64) -> i64 {
    cluster
        .scalar(&format!(
            "SELECT COUNT(*) FROM reporters WHERE envelope IS NOT NULL AND kek_version = {version}"
        ))
        .await
}

/// Requests, approves and opens a disclosure of `p`'s phone through `base`: the envelope
/// opens under the key it now has.
async fn opens(cluster: &Cluster, base: &str, p: &str) {
    let c = &cluster.client;
    let d = call(
        c,
        base,
        Method::POST,
        "/v1/disclosures",
        Some(&cluster.tokens.case_system),
        Some(&disclosure_body(p)),
    )
    .await
    .expect(201, "disclosure request")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    call(
        c,
        base,
        Method::POST,
        &format!("/v1/disclosures/{d}/approve"),
        Some(&cluster.tokens.custodian),
        Some(&json!({"comment": "同意"})),
    )
    .await
    .expect(200, "approve");
    let o = call(
        c,
        base,
        Method::POST,
        &format!("/v1/disclosures/{d}/open"),
        Some(&cluster.tokens.case_system),
        None,
    )
    .await;
    assert_eq!(
        o.status(),
        Some(200),
        "opening {p} after the rewrap: {}",
        o.text()
    );
}

/// The job, its totals and every record on the new version, after it finished.
async fn assert_completed(
    cluster: &Cluster,
    base: &str,
    j: &Value,
    version: u64,
    total: u64,
    records: u64,
) {
    assert_eq!(j["status"], "completed", "job: {j}");
    assert_eq!(j["failed"], 0, "no record failed: {j}");
    assert_eq!(j["total"], total, "total: {j}");
    assert_eq!(j["done"], j["total"], "done == total: {j}");
    let s = key_status(cluster, base).await;
    assert_eq!(s["active_version"], version, "{s}");
    for (v, n) in records_per_version(&s) {
        let want = if v == version { records } else { 0 };
        assert_eq!(n, want, "records on version {v} after the rewrap: {s}");
    }
    let stale = cluster
        .scalar(&format!(
            "SELECT COUNT(*) FROM reporters WHERE envelope IS NOT NULL AND kek_version <> {version}"
        ))
        .await;
    assert_eq!(stale, 0, "records on an older version in the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewrap_job_survives_its_leader() {
    let _serial = crate::serial().await;
    let _w = crate::harness::watchdog("rewrap_job_survives_its_leader");
    let started = Instant::now();
    let mut cluster = Cluster::start(shared(1)).await;
    let (leader, _) = cluster.wait_for_leader(None, Duration::from_secs(10)).await;
    let lbase = cluster.replica(&leader).base.clone();
    let bases: Vec<String> = cluster.replicas.iter().map(|r| r.base.clone()).collect();
    let pseudonyms = seal_many(&cluster, 0, RECORDS, &bases).await;
    let version = rotate_everywhere(&cluster, &lbase).await;
    assert_eq!(version, 2);

    // The third batch waits on a row lock while the leader is killed.
    let mut lock = cluster.superuser().await;
    let locked = lock_reporter(&mut lock, 1, LOCKED_AT).await;
    let o = admin(&cluster, &lbase, Method::POST, "/v1/admin/keys/rewrap").await;
    let id = o.expect(202, "rewrap")["job_id"]
        .as_str()
        .expect("job_id")
        .to_owned();
    let j = wait_done(&cluster, &lbase, &id, 400).await;
    assert_eq!(j["status"], "running", "{j}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let j = job(&cluster, &lbase, &id).await;
    assert_eq!(j["done"], 400, "the third batch waits on {locked}: {j}");
    cluster.replica_mut(&leader).kill9().await;
    // Counted while the row lock still holds any new leader at row LOCKED_AT.
    let moved_by_dead = on_version(&cluster, 2).await;
    commit(&mut lock).await;
    let _ = lock.close().await;
    let (new_leader, took) = cluster
        .wait_for_leader(Some(&leader), Duration::from_secs(10))
        .await;
    let nbase = cluster.replica(&new_leader).base.clone();
    let (j, finished) = wait_finished(&cluster, &nbase, &id, Duration::from_secs(30)).await;
    eprintln!(
        "job: {leader} killed with {moved_by_dead} of {RECORDS} records moved; {new_leader} took \
         the lease after {} ms and finished the job {} ms later: {j}",
        took.as_millis(),
        finished.as_millis()
    );
    assert!(took < Duration::from_secs(5), "takeover took {took:?}");
    assert_eq!(
        moved_by_dead, 400,
        "two batches were committed before the kill"
    );
    assert_completed(
        &cluster,
        &nbase,
        &j,
        version,
        RECORDS as u64,
        RECORDS as u64,
    )
    .await;
    // Records moved by either leader open.
    opens(&cluster, &nbase, &pseudonyms[0]).await;
    opens(&cluster, &nbase, &pseudonyms[RECORDS - 1]).await;
    cluster.stop_all().await;
    checks::audit_verifies(&cluster).await;
    eprintln!("job: {:?} in all", started.elapsed());
}

/// The leader dies after a batch committed but before the job's progress was saved (its
/// row is locked from outside at that moment). The next leader must still end with
/// `done == total`: progress that lives apart from the batch it counts is lost with the
/// process.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewrap_progress_exact_when_leader_dies_between_batch_and_save() {
    let _serial = crate::serial().await;
    let _w =
        crate::harness::watchdog("rewrap_progress_exact_when_leader_dies_between_batch_and_save");
    let mut cluster = Cluster::start(shared(1)).await;
    let (leader, _) = cluster.wait_for_leader(None, Duration::from_secs(10)).await;
    let lbase = cluster.replica(&leader).base.clone();
    let bases: Vec<String> = cluster.replicas.iter().map(|r| r.base.clone()).collect();
    seal_many(&cluster, 100_000, RECORDS, &bases).await;
    let version = rotate_everywhere(&cluster, &lbase).await;

    let mut rows = cluster.superuser().await;
    let mut jobrow = cluster.superuser().await;
    lock_reporter(&mut rows, 1, LOCKED_AT).await;
    let id = admin(&cluster, &lbase, Method::POST, "/v1/admin/keys/rewrap")
        .await
        .expect(202, "rewrap")["job_id"]
        .as_str()
        .expect("job_id")
        .to_owned();
    wait_done(&cluster, &lbase, &id, 400).await;
    // Hold the job's row, let the third batch through: it commits, its save waits.
    sqlx::raw_sql("BEGIN")
        .execute(&mut jobrow)
        .await
        .expect("BEGIN");
    sqlx::query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(&id)
        .execute(&mut jobrow)
        .await
        .expect("locking the job row");
    commit(&mut rows).await;
    let deadline = Instant::now() + Duration::from_millis(1500);
    while on_version(&cluster, 2).await < 600 {
        assert!(Instant::now() < deadline, "the third batch did not commit");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.replica_mut(&leader).kill9().await;
    // Read while the job row is still held: no new leader has touched it yet.
    let survivor = if bases[0] == lbase {
        &bases[1]
    } else {
        &bases[0]
    };
    let saved = job(&cluster, survivor, &id).await;
    commit(&mut jobrow).await;
    let _ = rows.close().await;
    let _ = jobrow.close().await;
    let (new_leader, _) = cluster
        .wait_for_leader(Some(&leader), Duration::from_secs(10))
        .await;
    let nbase = cluster.replica(&new_leader).base.clone();
    let (j, _) = wait_finished(&cluster, &nbase, &id, Duration::from_secs(30)).await;
    eprintln!(
        "job progress: 600 records moved, the job row said {} when {leader} died; {new_leader} \
         finished: {j}",
        saved["done"]
    );
    assert_completed(
        &cluster,
        &nbase,
        &j,
        version,
        RECORDS as u64,
        RECORDS as u64,
    )
    .await;
    cluster.stop_all().await;
}

/// An administrator rotates and starts a rewrap through a follower (any replica answers the
/// admin API). The leader runs the job, but until its next key reload it still believes the
/// old version is active. The job must still move every record to the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rewrap_started_on_a_follower_right_after_rotation() {
    let _serial = crate::serial().await;
    let _w = crate::harness::watchdog("rewrap_started_on_a_follower_right_after_rotation");
    // Replicas re-read the keyring every 30 s (RV_KEY_RELOAD_SECONDS; the default is 5 s,
    // which only narrows the window).
    let mut cluster = Cluster::start(shared(30)).await;
    let (leader, _) = cluster.wait_for_leader(None, Duration::from_secs(10)).await;
    let follower = cluster
        .replicas
        .iter()
        .find(|r| r.name != leader)
        .expect("a follower")
        .base
        .clone();
    seal_many(&cluster, 200_000, 300, std::slice::from_ref(&follower)).await;
    let v = admin(&cluster, &follower, Method::POST, "/v1/admin/keys/rotate")
        .await
        .expect(201, "rotate")["active_version"]
        .as_u64()
        .expect("active_version");
    // New records sealed through the follower use the new version.
    seal_many(&cluster, 300_000, 20, std::slice::from_ref(&follower)).await;
    let id = admin(&cluster, &follower, Method::POST, "/v1/admin/keys/rewrap")
        .await
        .expect(202, "rewrap")["job_id"]
        .as_str()
        .expect("job_id")
        .to_owned();
    let (j, took) = wait_finished(&cluster, &follower, &id, Duration::from_secs(20)).await;
    let s = key_status(&cluster, &follower).await;
    let alarms: usize = cluster
        .replicas
        .iter()
        .map(|r| r.logged("rewrap: envelope failed authentication").len())
        .sum();
    eprintln!(
        "stale leader: job finished after {} ms: {j}; keys {:?}; {alarms} 'envelope failed \
         authentication' errors logged by {leader}",
        took.as_millis(),
        records_per_version(&s)
    );
    assert_eq!(
        alarms, 0,
        "healthy envelopes reported as failing authentication"
    );
    assert_completed(&cluster, &follower, &j, v, 300, 320).await;
    cluster.stop_all().await;
}

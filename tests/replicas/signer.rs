//! Test 4: only the leaseholder signs checkpoints. A test-owned trigger on
//! `audit_checkpoints` records, for every committed checkpoint, the inserting session's
//! `application_name` (each replica has its own) and the sessions holding the lease at that
//! instant.

use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::checks;
use crate::harness::{Cluster, ClusterOpts, LEADER_LOCK, LOST_MSG};
use crate::load::Load;

fn targets(cluster: &Cluster) -> Vec<(String, String)> {
    cluster
        .alive()
        .iter()
        .map(|r| (r.name.clone(), r.base.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_signs_checkpoints() {
    let _serial = crate::serial().await;
    let _w = crate::harness::watchdog("only_the_leader_signs_checkpoints");
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOpts {
        record_signers: true,
        ..ClusterOpts::default()
    })
    .await;
    let (leader, _) = cluster.wait_for_leader(None, Duration::from_secs(10)).await;
    let vkey = cluster.public_key(&cluster.replicas[0].base).await;
    // Idle for a moment: how many new database sessions do the replicas open?
    let mut c = cluster.superuser().await;
    let sessions = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()";
    let s0 = crate::harness::scalar_i64(&mut c, sessions).await;
    let mut pids = std::collections::BTreeSet::new();
    let idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(3) {
        let now: Vec<(i32, String)> = sqlx::query_as(
            "SELECT pid, application_name FROM pg_stat_activity
              WHERE datname = current_database() AND application_name LIKE 'rv-r%'",
        )
        .fetch_all(&mut c)
        .await
        .expect("pg_stat_activity");
        pids.extend(now);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s1 = crate::harness::scalar_i64(&mut c, sessions).await;
    let _ = c.close().await;
    let per: std::collections::BTreeMap<String, usize> =
        pids.iter().fold(Default::default(), |mut m, (_, a)| {
            *m.entry(a.clone()).or_default() += 1;
            m
        });
    eprintln!(
        "signer: in 3 idle seconds the replicas opened {} database sessions; backends seen per \
         replica {per:?} (leader {leader})",
        s1 - s0
    );
    let load = Load::start(
        &cluster.client,
        &cluster.tokens,
        &targets(&cluster),
        2,
        false,
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let recs = load.finish().await;
    let failures = checks::failures(recs.iter());
    assert!(failures.is_empty(), "requests failed: {failures:?}");

    // The window with all three alive.
    let rows = cluster.signers().await;
    assert!(
        rows.len() >= 4,
        "a checkpoint per second or per 50 events: only {} in 6 s: {rows:?}",
        rows.len()
    );
    let foreign: Vec<_> = rows
        .iter()
        .filter(|r| r.2 != format!("rv-{leader}"))
        .collect();
    assert!(
        foreign.is_empty(),
        "checkpoints signed by a replica that is not the leader ({leader}): {foreign:?}"
    );
    checks::signed_by_leaseholder(&cluster).await;
    for r in &cluster.replicas {
        if r.name != leader {
            assert_eq!(
                r.leads_logged(),
                0,
                "{} never led:\n{}",
                r.name,
                r.log_text()
            );
        }
    }
    // Every stored checkpoint verifies under the one log key and was recorded once.
    let stored = cluster.stored_checkpoints().await;
    let recorded: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let mut stored_sizes: Vec<i64> = stored.iter().map(|s| s.0).collect();
    for (size, note) in &stored {
        let cp = crate::harness::verify_note(&vkey, note);
        assert_eq!(
            i64::try_from(cp.size).ok(),
            Some(*size),
            "the note's size is the row's"
        );
    }
    stored_sizes.sort_unstable();
    // The leader keeps signing (every second while events arrive): a checkpoint stored
    // after the trigger rows were read is newer, so larger, than every one of them.
    let newest = recorded.last().copied().unwrap_or(-1);
    stored_sizes.retain(|size| *size <= newest);
    assert_eq!(
        stored_sizes, recorded,
        "one trigger row per stored checkpoint, in size order"
    );
    eprintln!(
        "signer: {} checkpoints in 6 s of load, all by {leader}, sizes {:?}",
        rows.len(),
        recorded
    );

    // Shutdown hands the lease on; the last checkpoints are still the leaseholder's.
    cluster.stop_all().await;
    let n = checks::signed_by_leaseholder(&cluster).await;
    eprintln!(
        "signer: {n} checkpoints after the shutdowns; {:?} in all",
        started.elapsed()
    );
}

/// The leader's lease connection is cut (a PostgreSQL restart, a network blip, an idle
/// connection killed by a proxy: here `pg_terminate_backend`) while its process lives on.
/// PostgreSQL releases the lock at once and a follower takes it; the old leader must not sign
/// another checkpoint (nor run jobs) once it no longer holds the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_connection_lost_while_the_process_lives() {
    let _serial = crate::serial().await;
    let _w = crate::harness::watchdog("lease_connection_lost_while_the_process_lives");
    let mut cluster = Cluster::start(ClusterOpts {
        record_signers: true,
        ..ClusterOpts::default()
    })
    .await;
    let (mut leader, _) = cluster.wait_for_leader(None, Duration::from_secs(10)).await;
    let load = Load::start(
        &cluster.client,
        &cluster.tokens,
        &targets(&cluster),
        2,
        false,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut c = cluster.superuser().await;
    let mut takeovers = Vec::new();
    for _ in 0..4 {
        let pid: i32 = sqlx::query_scalar(
            "SELECT l.pid FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = $1
                AND l.objsubid = 1
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(LEADER_LOCK)
        .fetch_one(&mut c)
        .await
        .expect("the lease's backend");
        let cut = Instant::now();
        let ok: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut c)
            .await
            .expect("pg_terminate_backend");
        assert!(ok, "terminated the lease's session");
        // Anyone may win the lease again, the old leader included (on a new session).
        let mut holder = None;
        while cut.elapsed() < Duration::from_secs(5) {
            if let [(p, one)] = cluster.lease_sessions(&mut c).await.as_slice()
                && *p != pid
            {
                holder = Some(one.trim_start_matches("rv-").to_owned());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let holder = holder.unwrap_or_else(|| {
            panic!(
                "nobody took the lease within 5 s:\n{}",
                cluster.log_tails(20)
            )
        });
        takeovers.push((leader.clone(), holder.clone(), cut.elapsed()));
        leader = holder;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let _ = c.close().await;
    let recs = load.finish().await;
    eprintln!("lease cut: (from, to, took) {takeovers:?}");
    let lost: usize = cluster
        .replicas
        .iter()
        .map(|r| r.logged(LOST_MSG).len())
        .sum();
    assert!(
        lost >= 4,
        "every cut lease was noticed ({lost} 'lost' log lines)"
    );
    let failures = checks::failures(recs.iter());
    assert!(failures.is_empty(), "requests failed: {failures:?}");
    checks::signed_by_leaseholder(&cluster).await;
    cluster.stop_all().await;
}

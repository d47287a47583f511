//! Test 1: one leader among three; SIGKILL it under load spread over all three.

use std::time::{Duration, Instant};

use crate::checks;
use crate::harness::{Cluster, ClusterOpts, Outcome};
use crate::load::Load;

/// Client tasks per replica.
const TASKS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_under_load() {
    let _serial = crate::serial().await;
    let _w = crate::harness::watchdog("leader_killed_under_load");
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOpts {
        record_signers: true,
        ..ClusterOpts::default()
    })
    .await;

    // Exactly one leader: in the database and in the logs.
    let (leader, _) = cluster.wait_for_leader(None, Duration::from_secs(10)).await;
    // Two lease polls: every follower has tried and failed at least once.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let mut c = cluster.superuser().await;
    assert_eq!(
        cluster.lease_holders(&mut c).await,
        vec![format!("rv-{leader}")],
        "exactly one session holds the advisory lock"
    );
    for r in &cluster.replicas {
        let want = usize::from(r.name == leader);
        assert_eq!(
            r.leads_logged(),
            want,
            "{} logged leadership {} times (leader: {leader}):\n{}",
            r.name,
            r.leads_logged(),
            r.log_text()
        );
    }
    let vkey = cluster.public_key(&cluster.replicas[0].base).await;
    for r in &cluster.replicas {
        assert_eq!(cluster.public_key(&r.base).await, vkey, "one log key");
    }

    // Load on all three.
    let targets: Vec<(String, String)> = cluster
        .replicas
        .iter()
        .map(|r| (r.name.clone(), r.base.clone()))
        .collect();
    let load = Load::start(&cluster.client, &cluster.tokens, &targets, TASKS, true);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = cluster
        .checkpoint(&cluster.replica(&leader).base, &vkey)
        .await;
    assert!(before.size > 0, "checkpoints are signed under load");

    // SIGKILL the leader.
    let killed_at = Instant::now();
    cluster.replica_mut(&leader).kill9().await;
    let (new_leader, took) = cluster
        .wait_for_leader(Some(&leader), Duration::from_secs(10))
        .await;
    let size_at_kill = u64::try_from(
        cluster
            .scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_events")
            .await,
    )
    .expect("size");
    eprintln!(
        "failover: {leader} SIGKILLed; {new_leader} holds the lease after {} ms",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(5), "takeover took {took:?}");
    // The new leader says so in its log.
    let nl = cluster.replica(&new_leader);
    let logged = async {
        while nl.leads_logged() != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), logged)
        .await
        .unwrap_or_else(|_| panic!("{new_leader} never logged leadership:\n{}", nl.log_text()));

    // Checkpoints keep advancing, signed by the same key, past the log at the kill.
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let cp = cluster.checkpoint(&nl.base, &vkey).await;
        if cp.size > size_at_kill {
            break cp;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint past size {size_at_kill} within 5 s of the takeover (latest {})",
            cp.size
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after.origin, before.origin, "same log");
    eprintln!(
        "failover: checkpoint {} before the kill, {} after (log size at the kill {size_at_kill})",
        before.size, after.size
    );

    tokio::time::sleep(Duration::from_secs(3)).await;
    let recs = load.finish().await;

    // Survivors answered everything with 2xx; the killed one, only 2xx until it died and
    // then nothing at all (never an error answer).
    let survivors = checks::failures(recs.iter().filter(|r| r.replica != leader));
    let killed: Vec<&crate::load::Rec> = recs.iter().filter(|r| r.replica == leader).collect();
    let killed_bad: Vec<String> = killed
        .iter()
        .filter(|r| !r.outcome.is_2xx())
        .filter(|r| !(checks::no_answer(&r.outcome) && r.finished >= killed_at))
        .map(|r| format!("{:?}: {}", r.op, r.outcome.describe()))
        .collect();
    let in_flight = killed
        .iter()
        .filter(|r| r.started < killed_at && r.finished >= killed_at)
        .count();
    let survivors_during: usize = recs
        .iter()
        .filter(|r| r.replica != leader && r.started >= killed_at && r.started <= killed_at + took)
        .count();
    eprintln!(
        "failover: {} requests; survivors {:?}; killed {leader} {:?} ({in_flight} in flight at the kill); \
         {survivors_during} survivor requests started during the takeover",
        recs.len(),
        crate::harness::tally(
            &recs
                .iter()
                .filter(|r| r.replica != leader)
                .map(|r| r.outcome.clone())
                .collect::<Vec<Outcome>>()
        ),
        crate::harness::tally(&killed.iter().map(|r| r.outcome.clone()).collect::<Vec<_>>()),
    );
    assert!(
        survivors.is_empty(),
        "{} requests to surviving replicas failed: {:?}",
        survivors.len(),
        &survivors[..survivors.len().min(20)]
    );
    assert!(
        killed_bad.is_empty(),
        "the killed replica answered with an error before dying: {killed_bad:?}"
    );

    // Every acknowledged write is there, nothing is half-there.
    let acked = checks::acked(&recs);
    checks::acknowledged_present(&cluster, &nl.base, &acked).await;
    let (pseudonyms, disclosures, events) = checks::consistent(&cluster, &acked).await;
    eprintln!(
        "failover: {} seals, {} disclosures, {} approvals acknowledged; in the database {pseudonyms} \
         pseudonyms, {disclosures} disclosures, {events} events",
        acked.pseudonyms.len(),
        acked.disclosures.len(),
        acked.approved.len()
    );
    // SIGTERM the survivors (each exits 0 and hands the lease on), then check every
    // checkpoint of the run, the shutdowns' last ones included.
    cluster.stop_all().await;
    let signed = checks::signed_by_leaseholder(&cluster).await;
    checks::audit_verifies(&cluster).await;
    eprintln!(
        "failover: {signed} checkpoints, each signed by the leaseholder; {:?} in all",
        started.elapsed()
    );
}

/// The leader's process freezes (SIGSTOP: a VM pause, a hung runtime, a host cut off the
/// network without a FIN or RST). Its sockets stay open and the kernel still answers
/// PostgreSQL's keepalives, so the session — and with it the advisory lock — lives on:
/// nothing bounds how long a lease outlives a leader that no longer works. Checkpoints and
/// jobs must not stop for the whole cluster: another replica takes over within a bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frozen_leader_is_replaced() {
    let _serial = crate::serial().await;
    let _w = crate::harness::watchdog("frozen_leader_is_replaced");
    let mut cluster = Cluster::start(ClusterOpts {
        record_signers: true,
        ..ClusterOpts::default()
    })
    .await;
    let (leader, _) = cluster.wait_for_leader(None, Duration::from_secs(10)).await;
    let vkey = cluster.public_key(&cluster.replicas[0].base).await;
    let follower = cluster
        .replicas
        .iter()
        .find(|r| r.name != leader)
        .expect("a follower")
        .base
        .clone();
    // The leader has signed its first checkpoints.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = cluster.checkpoint(&follower, &vkey).await;
    let pid = cluster.replica(&leader).pid().expect("pid");
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} {pid}");
    };
    signal("STOP");
    let frozen_at = Instant::now();
    let limit = Duration::from_secs(10);
    let mut c = cluster.superuser().await;
    let mut holders = Vec::new();
    let mut n = 0;
    while frozen_at.elapsed() < limit {
        // The followers keep serving and the log keeps growing.
        let o = crate::harness::call(
            &cluster.client,
            &follower,
            reqwest::Method::POST,
            "/v1/reporters",
            Some(&cluster.tokens.case_system),
            Some(&crate::harness::seal_body(900_000 + n)),
        )
        .await;
        o.expect(201, "seal through a follower while the leader is frozen");
        n += 1;
        holders = cluster.lease_holders(&mut c).await;
        if holders.len() == 1 && holders[0] != format!("rv-{leader}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = frozen_at.elapsed();
    let cp = cluster.checkpoint(&follower, &vkey).await;
    let size = cluster
        .scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_events")
        .await;
    signal("CONT");
    let _ = sqlx::Connection::close(c).await;
    eprintln!(
        "frozen leader: lease holders after {} ms: {holders:?}; {n} seals; latest checkpoint {} \
         (before the freeze {}) of a log of {size}",
        took.as_millis(),
        cp.size,
        before.size
    );
    assert!(
        took < limit,
        "{leader} was frozen for {limit:?} and still held the lease ({holders:?}): no checkpoint \
         was signed meanwhile (latest covers {} of {size} events) and no job ran",
        cp.size
    );
    cluster.stop_all().await;
}

//! Test 3: SIGTERM drains. 32 clients seal through the leader, each request on a fresh
//! connection; SIGTERM arrives while many are in flight. Every request the server had
//! accepted gets a complete 2xx answer, none is cut off, the process exits 0 promptly, and
//! the lease passes to another replica.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::checks;
use crate::harness::{Cluster, ClusterOpts, Outcome, call, fresh_connection_client, seal_body};

const CLIENTS: usize = 32;
/// A request sent this long before SIGTERM was certainly accepted (read) by the server.
const SURELY_ACCEPTED: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_requests() {
    let _serial = crate::serial().await;
    let _w = crate::harness::watchdog("sigterm_drains_in_flight_requests");
    let started = Instant::now();
    let mut cluster = Cluster::start(ClusterOpts::default()).await;
    let (leader, _) = cluster.wait_for_leader(None, Duration::from_secs(10)).await;
    let base = cluster.replica(&leader).base.clone();
    let client = fresh_connection_client();
    let cs = Arc::new(cluster.tokens.case_system.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..CLIENTS {
        let (client, cs, base, stop, in_flight) = (
            client.clone(),
            cs.clone(),
            base.clone(),
            stop.clone(),
            in_flight.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut out: Vec<(Instant, Instant, Outcome)> = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Acquire) {
                let n = 500_000 + t * 10_000 + i;
                i += 1;
                let s = Instant::now();
                in_flight.fetch_add(1, Ordering::AcqRel);
                let o = call(
                    &client,
                    &base,
                    Method::POST,
                    "/v1/reporters",
                    Some(&cs),
                    Some(&seal_body(n)),
                )
                .await;
                in_flight.fetch_sub(1, Ordering::AcqRel);
                let gone = matches!(o, Outcome::NoResponse { .. });
                out.push((s, Instant::now(), o));
                if gone {
                    // The server stopped listening: this client is done.
                    break;
                }
            }
            out
        }));
    }
    // Let the load settle so requests queue up inside the server.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let flying = in_flight.load(Ordering::Acquire);
    let term_at = Instant::now();
    cluster.replica(&leader).sigterm();
    let code = cluster
        .replica_mut(&leader)
        .wait_exit(Duration::from_secs(20))
        .await;
    let exit_took = term_at.elapsed();
    let (new_leader, after_exit) = cluster
        .wait_for_leader(Some(&leader), Duration::from_secs(10))
        .await;
    let after_term = term_at.elapsed();
    stop.store(true, Ordering::Release);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    eprintln!(
        "shutdown: {flying} requests in flight at SIGTERM; {leader} exited with {code:?} after {} ms; \
         {new_leader} leads {} ms after the exit ({} ms after SIGTERM); outcomes {:?}",
        exit_took.as_millis(),
        after_exit.as_millis(),
        after_term.as_millis(),
        crate::harness::tally(&all.iter().map(|r| r.2.clone()).collect::<Vec<_>>())
    );
    assert!(
        after_exit < Duration::from_secs(5),
        "lease handoff took {after_exit:?} after the exit"
    );
    assert_eq!(
        code,
        Some(0),
        "exit status after SIGTERM:\n{}",
        cluster.replica(&leader).log_text()
    );
    assert!(
        exit_took < Duration::from_secs(15),
        "exit took {exit_took:?}"
    );
    let log = cluster.replica(&leader).log_text();
    assert!(
        log.contains("reporter-vault stopped"),
        "a clean stop is logged:\n{log}"
    );

    let mut bad = Vec::new();
    let mut drained = 0;
    for (s, f, o) in &all {
        match o {
            Outcome::Answered { status, .. } if (200..300).contains(status) => {
                if *s < term_at && *f > term_at {
                    drained += 1;
                }
            }
            Outcome::NoResponse { .. } if *s + SURELY_ACCEPTED > term_at => {}
            _ => bad.push(format!(
                "sent {} ms before SIGTERM: {}",
                term_at.saturating_duration_since(*s).as_millis(),
                o.describe()
            )),
        }
    }
    eprintln!("shutdown: {drained} requests in flight at SIGTERM answered 2xx after it");
    for (s, f, o) in &all {
        if let Outcome::NoResponse {
            connect: false,
            error,
        } = o
        {
            let rel = |t: &Instant| {
                if *t >= term_at {
                    format!("+{} ms", t.duration_since(term_at).as_millis())
                } else {
                    format!("-{} ms", term_at.duration_since(*t).as_millis())
                }
            };
            eprintln!(
                "shutdown: a request sent at {} (SIGTERM = 0) got no answer at {}: {error}",
                rel(s),
                rel(f)
            );
        }
    }
    assert!(
        bad.is_empty(),
        "requests the server had accepted did not get a complete 2xx answer: {bad:?}"
    );
    assert!(drained > 0, "SIGTERM arrived with requests in flight");

    // Every acknowledged seal is in the store.
    let acked: Vec<String> = all
        .iter()
        .filter(|r| r.2.is_2xx())
        .filter_map(|r| r.2.json()["pseudonym"].as_str().map(str::to_owned))
        .collect();
    let mut c = cluster.superuser().await;
    let stored: std::collections::BTreeSet<String> =
        crate::harness::column(&mut c, "SELECT pseudonym FROM pseudonyms")
            .await
            .into_iter()
            .collect();
    let lost: Vec<_> = acked.iter().filter(|p| !stored.contains(*p)).collect();
    assert!(lost.is_empty(), "acknowledged seals missing: {lost:?}");
    drop(c);
    cluster.stop_all().await;
    checks::audit_verifies(&cluster).await;
    eprintln!(
        "shutdown: {} seals acknowledged; {:?} in all",
        acked.len(),
        started.elapsed()
    );
}

/// The leader's last checkpoint on SIGTERM is slow (a busy database: here the checkpoint
/// table is locked from outside for 1.3 s, under the service's 2 s `lock_timeout`). The
/// lease must be held until that checkpoint is committed, or it is committed by a replica
/// that no longer leads — possibly while the next leader signs its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_keeps_the_lease_until_the_last_checkpoint() {
    let _serial = crate::serial().await;
    let _w = crate::harness::watchdog("sigterm_keeps_the_lease_until_the_last_checkpoint");
    let mut cluster = Cluster::start(ClusterOpts {
        record_signers: true,
        ..ClusterOpts::default()
    })
    .await;
    let (leader, _) = cluster.wait_for_leader(None, Duration::from_secs(10)).await;
    let base = cluster.replica(&leader).base.clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut lock = cluster.superuser().await;
    sqlx::raw_sql("BEGIN; LOCK TABLE audit_checkpoints IN EXCLUSIVE MODE")
        .execute(&mut lock)
        .await
        .expect("locking the checkpoint table");
    // New events: a last checkpoint is due at shutdown.
    for i in 0..3 {
        call(
            &cluster.client,
            &base,
            Method::POST,
            "/v1/reporters",
            Some(&cluster.tokens.case_system),
            Some(&seal_body(800_000 + i)),
        )
        .await
        .expect(201, "seal");
    }
    let term_at = Instant::now();
    cluster.replica(&leader).sigterm();
    let mut c = cluster.superuser().await;
    // Hold the table until the lease is let go (or 1.3 s, if it rightly is not), then let
    // the pending checkpoint through before a new leader's checkpointer gets to it.
    let mut released = None;
    while term_at.elapsed() < Duration::from_millis(1300) {
        if !cluster
            .lease_holders(&mut c)
            .await
            .contains(&format!("rv-{leader}"))
        {
            released = Some(term_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut lock)
        .await
        .expect("COMMIT");
    let code = cluster
        .replica_mut(&leader)
        .wait_exit(Duration::from_secs(20))
        .await;
    assert_eq!(code, Some(0), "exit status after SIGTERM");
    let rows = cluster.signers().await;
    eprintln!(
        "last checkpoint: {leader} let go of the lease {:?} after SIGTERM, its checkpoint table \
         write still waiting; checkpoints (seq, size, signer, holder) {rows:?}",
        released.map(|d| d.as_millis())
    );
    let _ = sqlx::Connection::close(c).await;
    checks::signed_by_leaseholder(&cluster).await;
    cluster.stop_all().await;
}

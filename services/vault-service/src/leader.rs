//! The jobs one replica at a time runs, and the lease that decides which one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vault_domain::Vault;
use vault_domain::ports::KeyProvider;
use vault_storage::SqlStore;
use vault_storage::leader::LeaderLease;

/// How often a follower tries to take the lease, and the leader checks it still holds it.
const LEASE_POLL: Duration = Duration::from_secs(1);

/// Keeps `leader` true while this replica holds the lease. A follower tries every second, so
/// a dead leader is replaced within about a second of PostgreSQL noticing its connection
/// closed.
pub async fn run_leadership(
    store: SqlStore,
    leader: Arc<AtomicBool>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut lease: Option<LeaderLease> = None;
    loop {
        match lease.as_mut() {
            None => match store.try_lead().await {
                Ok(Some(l)) => {
                    lease = Some(l);
                    leader.store(true, Ordering::Release);
                    tracing::info!(
                        leader = true,
                        "this replica leads: checkpoints and jobs run here"
                    );
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not try the leader lease"),
            },
            Some(l) => {
                if !l.alive().await {
                    leader.store(false, Ordering::Release);
                    lease = None;
                    tracing::warn!(leader = false, "lost the leader lease");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(LEASE_POLL) => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() {
            break;
        }
    }
    if let Some(l) = lease {
        l.release().await;
    }
    leader.store(false, Ordering::Release);
}

/// The leader's job runner: queued jobs (key rewrap), and the retention job once a minute.
pub async fn run_jobs(
    vault: Vault,
    leader: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_retention: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = wake.notified() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        if !leader.load(Ordering::Acquire) {
            continue;
        }
        match vault.next_job().await {
            Ok(Some(job)) => {
                let id = job.id.clone();
                tracing::info!(job = %id, kind = %job.kind, "job started");
                let mut stop = shutdown.clone();
                let run = vault.run_job(job, vault_domain::lifecycle::JobRunner::Leader, |j| {
                    tracing::debug!(job = %j.id, done = j.done, total = j.total, "job progress");
                });
                tokio::select! {
                    r = run => match r {
                        Ok(j) => tracing::info!(job = %id, done = j.done, failed = j.failed, "job completed"),
                        Err(e) => tracing::warn!(job = %id, error = %e, "job failed"),
                    },
                    // Shutdown: the job stays `running` and the next leader resumes it.
                    _ = stop.changed() => return,
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the job queue"),
        }
        if last_retention.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            last_retention = Some(tokio::time::Instant::now());
            match vault.apply_retention().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(erased = n, "retention: records erased"),
                Err(e) => tracing::warn!(error = %e, "retention job failed"),
            }
        }
    }
}

/// Every replica re-reads its keys now and then, so a rotation made by another replica or the
/// CLI is used here too.
pub async fn run_key_reload(
    keys: Arc<dyn KeyProvider>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let k = keys.clone();
        match tokio::task::spawn_blocking(move || k.reload()).await {
            Ok(Ok(true)) => tracing::info!(active_version = keys.active_version(), "keys reloaded"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not reload keys"),
            Err(_) => {}
        }
    }
}

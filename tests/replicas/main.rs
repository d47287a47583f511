//! Replicas (issue 6): three real `reporter-vault serve` processes on one PostgreSQL
//! database. Exactly one leads (the session advisory lock 7270003, and its log line); when
//! it is SIGKILLed under load another takes the lease within seconds, checkpoints keep
//! advancing under the same log key, every acknowledged write is there and nothing is
//! half-there, and the survivors never stop answering. A rewrap job outlives the leader that
//! started it. SIGTERM drains in-flight requests and hands the lease on. Only the leaseholder
//! signs checkpoints (a test-owned trigger records, for every committed checkpoint, which
//! replica inserted it and which held the lease at that instant).
//!
//! Beyond those four, the suite holds the leader to its word where the lease can be lost
//! without the process dying: a cut lease connection, a frozen leader, a slow last
//! checkpoint at SIGTERM; and a job's progress and target version across leaders.
//!
//! PostgreSQL only, never skipped: an unreachable server (`RV_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) fails the suite. The tests run one at a
//! time (each starts three servers; takeover times mean little on an overloaded machine).

// A test's helpers fail by panicking with the reason: that is the report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../support/pgdb.rs"]
mod pgdb;

mod checks;
mod failover;
mod harness;
mod jobs;
mod load;
mod shutdown;
mod signer;

/// One test at a time: each runs three servers and measures takeover times.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

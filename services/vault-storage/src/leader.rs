//! Leadership among replicas: one replica at a time signs checkpoints and runs jobs.
//!
//! PostgreSQL: the leader holds the session-level advisory lock 7270003 on a connection of
//! its own, taken out of the pool. When the process dies its connection closes and
//! PostgreSQL releases the lock at once, so another replica takes over at its next attempt.
//! SQLite serves one process: it always leads.
//!
//! Fencing. A leader whose lease session was cut (a network blip, a restarted proxy) while
//! its process lives on learns it only at its next check; until then it must not write as
//! the leader. Taking the lease therefore bumps an epoch in the `rv_lease` row and records the
//! lease session's backend pid; every leader-only write calls [`Tx::fence`] first, which, in
//! the write's own transaction, share-locks that row and requires both that it still names
//! this lease and that the lease session still holds the advisory lock. A new leader's bump
//! waits for the share lock, so an old leader's write either committed before the new leader
//! began or is refused.
//!
//! [`Tx::fence`]: vault_domain::ports::Tx::fence

use std::sync::{Arc, Mutex};

use sqlx::{AnyConnection, Connection as _, Row as _};
use vault_domain::ports::StoreError;

use crate::{Engine, SqlStore, unavailable};

/// The advisory lock key of the leader lease.
pub const LEADER_LOCK: i64 = 7_270_003;

/// What a leader-only write checks: the epoch this process took the lease at, and the
/// backend pid of its lease session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseToken {
    epoch: i64,
    pid: i64,
}

/// This process's lease, if it holds one; shared by the store and its transactions.
#[derive(Debug, Clone, Default)]
pub(crate) struct LeaseSlot(Arc<Mutex<Option<LeaseToken>>>);

impl LeaseSlot {
    pub(crate) fn current(&self) -> Option<LeaseToken> {
        self.0.lock().ok().and_then(|g| *g)
    }

    fn set(&self, token: Option<LeaseToken>) {
        if let Ok(mut g) = self.0.lock() {
            *g = token;
        }
    }
}

pub(crate) fn not_leader() -> StoreError {
    StoreError::Unavailable("this replica does not hold the leader lease".into())
}

/// Inside the caller's transaction: the lease row still names `token` and its session still
/// holds the lock; share-locks the row until the transaction ends.
pub(crate) async fn fence(conn: &mut AnyConnection, token: LeaseToken) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT epoch FROM rv_lease
          WHERE id = 1 AND epoch = $1 AND holder_pid = $2
            AND EXISTS (
                SELECT 1 FROM pg_locks
                 WHERE locktype = 'advisory' AND granted AND classid = 0 AND objsubid = 1
                   AND objid::bigint = $3 AND pid::bigint = $2
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
          FOR SHARE OF rv_lease",
    )
    .bind(token.epoch)
    .bind(token.pid)
    .bind(LEADER_LOCK)
    .fetch_optional(conn)
    .await
    .map_err(unavailable)?;
    match row {
        Some(_) => Ok(()),
        None => Err(not_leader()),
    }
}

/// A held leader lease. Dropping it closes the connection, which releases the lock.
pub struct LeaderLease {
    conn: Option<AnyConnection>,
    slot: LeaseSlot,
}

impl Drop for LeaderLease {
    fn drop(&mut self) {
        // Whatever happens to the connection, this process stops writing as the leader.
        self.slot.set(None);
    }
}

impl SqlStore {
    /// Takes the leader lease if no other replica holds it.
    pub async fn try_lead(&self) -> Result<Option<LeaderLease>, StoreError> {
        match self.engine_kind() {
            Engine::Sqlite => Ok(Some(LeaderLease {
                conn: None,
                slot: self.lease_slot().clone(),
            })),
            Engine::Postgres => {
                let mut conn = self
                    .writer_pool()
                    .acquire()
                    .await
                    .map_err(unavailable)?
                    .detach();
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(LEADER_LOCK)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(unavailable)?;
                if got {
                    // A leader that stops answering (frozen, or its host gone without a
                    // reset) must lose the lease in seconds, not after the kernel's two-hour
                    // keepalive: the live leader queries every second, so an idle session of
                    // 5 s means it is gone, and PostgreSQL ends it, releasing the lock.
                    for set in [
                        "SET idle_session_timeout = '5s'",
                        "SET tcp_keepalives_idle = 2",
                        "SET tcp_keepalives_interval = 1",
                        "SET tcp_keepalives_count = 3",
                    ] {
                        sqlx::query(sqlx::AssertSqlSafe(set))
                            .execute(&mut conn)
                            .await
                            .map_err(unavailable)?;
                    }
                    // The fencing epoch: waits for an old leader's in-flight fenced write.
                    let bumped = sqlx::query(
                        "UPDATE rv_lease
                            SET epoch = epoch + 1, holder_pid = pg_backend_pid(),
                                taken_at = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)
                          WHERE id = 1
                      RETURNING epoch, CAST(holder_pid AS BIGINT) AS pid",
                    )
                    .fetch_one(&mut conn)
                    .await;
                    let token = match bumped {
                        Ok(row) => LeaseToken {
                            epoch: row.try_get("epoch").map_err(unavailable)?,
                            pid: row.try_get("pid").map_err(unavailable)?,
                        },
                        Err(e) => {
                            let _ = conn.close().await;
                            return Err(unavailable(e));
                        }
                    };
                    self.lease_slot().set(Some(token));
                    Ok(Some(LeaderLease {
                        conn: Some(conn),
                        slot: self.lease_slot().clone(),
                    }))
                } else {
                    let _ = conn.close().await;
                    Ok(None)
                }
            }
        }
    }
}

impl LeaderLease {
    /// Whether the lease still holds: its connection answers and still owns the lock.
    pub async fn alive(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return true;
        };
        let slot = self.slot.clone();
        let check = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND pid = pg_backend_pid() AND classid = 0 AND objsubid = 1
               AND objid::bigint = $1",
        )
        .bind(LEADER_LOCK)
        .fetch_one(conn);
        let alive = matches!(
            tokio::time::timeout(std::time::Duration::from_secs(3), check).await,
            Ok(Ok(n)) if n > 0
        );
        if !alive {
            slot.set(None);
        }
        alive
    }

    /// Gives the lease up (graceful shutdown).
    pub async fn release(mut self) {
        self.slot.set(None);
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

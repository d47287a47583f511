//! Leadership among replicas: one replica at a time signs checkpoints and runs jobs.
//!
//! PostgreSQL: the leader holds the session-level advisory lock 7270003 on a connection of
//! its own, taken out of the pool. When the process dies its connection closes and
//! PostgreSQL releases the lock at once, so another replica takes over at its next attempt.
//! SQLite serves one process: it always leads.

use sqlx::{AnyConnection, Connection as _};
use vault_domain::ports::StoreError;

use crate::{Engine, SqlStore, unavailable};

/// The advisory lock key of the leader lease.
pub const LEADER_LOCK: i64 = 7_270_003;

/// A held leader lease. Dropping it closes the connection, which releases the lock.
pub struct LeaderLease {
    conn: Option<AnyConnection>,
}

impl SqlStore {
    /// Takes the leader lease if no other replica holds it.
    pub async fn try_lead(&self) -> Result<Option<LeaderLease>, StoreError> {
        match self.engine_kind() {
            Engine::Sqlite => Ok(Some(LeaderLease { conn: None })),
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
                    Ok(Some(LeaderLease { conn: Some(conn) }))
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
        let check = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND pid = pg_backend_pid() AND classid = 0 AND objsubid = 1
               AND objid::bigint = $1",
        )
        .bind(LEADER_LOCK)
        .fetch_one(conn);
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(3), check).await,
            Ok(Ok(n)) if n > 0
        )
    }

    /// Gives the lease up (graceful shutdown).
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

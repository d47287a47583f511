//! A small migration runner: the SQL files in `migrations/<engine>/` are embedded in the
//! binary and applied in order, each in the transaction that records it. Append-only: a
//! shipped migration is never edited; a change is a new file.

use sqlx::{AnyPool, Row};
use vault_domain::ports::StoreError;

use crate::{Engine, unavailable};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "identity_vault",
        sqlite: include_str!("../../../migrations/sqlite/0001_identity_vault.sql"),
        postgres: include_str!("../../../migrations/postgres/0001_identity_vault.sql"),
    },
    Migration {
        version: 2,
        name: "merkle_log",
        sqlite: include_str!("../../../migrations/sqlite/0002_merkle_log.sql"),
        postgres: include_str!("../../../migrations/postgres/0002_merkle_log.sql"),
    },
    Migration {
        version: 3,
        name: "policy_versions",
        sqlite: include_str!("../../../migrations/sqlite/0003_policy_versions.sql"),
        postgres: include_str!("../../../migrations/postgres/0003_policy_versions.sql"),
    },
    Migration {
        version: 4,
        name: "rewards",
        sqlite: include_str!("../../../migrations/sqlite/0004_rewards.sql"),
        postgres: include_str!("../../../migrations/postgres/0004_rewards.sql"),
    },
    Migration {
        version: 5,
        name: "event_record_index",
        sqlite: include_str!("../../../migrations/sqlite/0005_event_record_index.sql"),
        postgres: include_str!("../../../migrations/postgres/0005_event_record_index.sql"),
    },
    Migration {
        version: 6,
        name: "heartbeat",
        sqlite: include_str!("../../../migrations/sqlite/0006_heartbeat.sql"),
        postgres: include_str!("../../../migrations/postgres/0006_heartbeat.sql"),
    },
    Migration {
        version: 7,
        name: "keys_erasure_jobs",
        sqlite: include_str!("../../../migrations/sqlite/0007_keys_erasure_jobs.sql"),
        postgres: include_str!("../../../migrations/postgres/0007_keys_erasure_jobs.sql"),
    },
    Migration {
        version: 8,
        name: "leader_lease",
        sqlite: include_str!("../../../migrations/sqlite/0008_leader_lease.sql"),
        postgres: include_str!("../../../migrations/postgres/0008_leader_lease.sql"),
    },
];

/// The newest schema version this build knows.
pub const LATEST: i64 = 8;

pub(crate) async fn run(pool: &AnyPool, engine: Engine) -> Result<(), StoreError> {
    let mut tx = match engine {
        Engine::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Engine::Postgres => pool.begin().await,
    }
    .map_err(unavailable)?;
    if engine == Engine::Postgres {
        // Several replicas may start at once: one migrates, the others wait and find it done.
        sqlx::query("SELECT pg_advisory_xact_lock(7270000)")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS rv_schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    let current: i64 =
        sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM rv_schema_migrations")
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get::<i64, _>("v"))
            .map_err(unavailable)?;
    if current > LATEST {
        return Err(StoreError::Unavailable(format!(
            "the database schema (version {current}) is newer than this build (version {LATEST})"
        )));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let sql = match engine {
            Engine::Sqlite => m.sqlite,
            Engine::Postgres => m.postgres,
        };
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("INSERT INTO rv_schema_migrations (version, name) VALUES ($1, $2)")
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    tx.commit().await.map_err(unavailable)
}

//! Backup and restore (issue 6), as an operator meets them: the real binary serving on SQLite
//! and on PostgreSQL while `reporter-vault backup` takes an online snapshot, the reference
//! `age` tool opening the archive, and `reporter-vault restore` into empty stores of both
//! engines (so a SQLite backup restores into PostgreSQL and back), then the restored service
//! answering as before and `audit verify` passing. Tampered archives, wrong keys, a non-empty
//! target and a missing erasure ledger are refused and leave the target as it was. A schema
//! test fails when a migration adds a table or column the backup does not cover.
//!
//! The PostgreSQL tests never skip: an unreachable server (`RV_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) fails them.

// A test's helpers fail by panicking with the reason: that is the report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// Instantiates `async fn $name(engine: Engine)` as `$name::sqlite` and `$name::postgres`.
macro_rules! both_engines {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::harness::Engine::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(crate::harness::Engine::Postgres).await;
                }
            }
        )+
    };
}

mod erasure;
mod harness;
mod online;
mod refusals;
mod schema;

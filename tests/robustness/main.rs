//! Robustness of the real binary (issue 7, items 4–6): crash consistency under SIGKILL on
//! both engines, real faults (PostgreSQL stopped and restarted mid-load, a full disk, a
//! garbled keyring), and abuse limits (rate limits, oversized and deeply nested bodies,
//! slow-loris heads and bodies, the connection cap), each measured and printed.
//!
//! Every test drives `reporter-vault serve --demo` as a child process on a real store
//! (SQLite, or PostgreSQL at `RV_TEST_PG_URL` / 127.0.0.1:5432). The fault tests need root
//! (a tmpfs mount, `runuser -u postgres` for a cluster of their own) and the PostgreSQL
//! server binaries in `/usr/lib/postgresql/*/bin`; nothing skips. Random choices are seeded
//! and the seed is printed (`RV_ROBUSTNESS_SEED` replays it); every measurement is printed
//! (`--nocapture`).

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
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    let _w = crate::harness::watchdog(concat!(module_path!(), "::sqlite"));
                    super::$name(crate::harness::Engine::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    let _w = crate::harness::watchdog(concat!(module_path!(), "::postgres"));
                    super::$name(crate::harness::Engine::Postgres).await;
                }
            }
        )+
    };
}

mod crash;
mod faults;
mod harness;
mod limits;

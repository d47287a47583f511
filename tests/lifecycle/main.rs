//! Key lifecycle, erasure and retention (issue 6), as operators and the case system meet them:
//! the real binary (`serve --demo`) on SQLite and on a real PostgreSQL server, the `keys` and
//! `audit` subcommands beside it, a real SoftHSM2 token for the PKCS#11 provider, and the
//! stored rows read straight from the database.
//!
//! - `rotation`: rotation and rewrap (endpoint and CLI) under continuous load with zero failed
//!   requests; rewrap leaves every envelope's data part byte-identical.
//! - `retire`: the rules for retiring a key version.
//! - `rewrap`: a rewrap job over several batches with one damaged envelope.
//! - `erasure`: two-custodian erasure of every pseudonym of a reporter, the ledger, the trail;
//!   an unwritable ledger fails closed; a denial erases nothing.
//! - `retention`: reporters whose cases all closed long ago are erased by the leader's job.
//! - `pkcs11`: the service on a SoftHSM2 token, including losing the token while running.
//!
//! The PostgreSQL tests never skip: an unreachable server (`RV_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) fails them. SoftHSM2 is required too
//! (`apt-get install softhsm2`).

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
                    super::$name(crate::harness::Engine::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$name(crate::harness::Engine::Postgres).await;
                }
            }
        )+
    };
}

/// Evaluates `$poll` (an expression that may `.await`) every 100 ms until it is `Some(x)`, and
/// yields `x`; panics with `$what` after `$timeout`.
macro_rules! wait_for {
    ($timeout:expr, $what:expr, $poll:expr $(,)?) => {{
        let timeout: std::time::Duration = $timeout;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(x) = $poll {
                break x;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {timeout:?}: {}",
                $what
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }};
}

mod erasure;
mod harness;
mod pkcs11;
mod retention;
mod retire;
mod rewrap;
mod rotation;

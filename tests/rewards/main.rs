//! The reward suite: quoting and settlement as finance, the case system and auditors meet
//! them — over HTTP on a real socket, with a manual clock the tests move (claim windows are
//! injected, never slept), on SQLite and on a real PostgreSQL server; and the offline CLI
//! (`reward quote`, `policy check`) as the real binary.
//!
//! Every test that touches the store is written once as `async fn x(engine)` and instantiated
//! by `both_engines!` as `x::sqlite` and `x::postgres`. The PostgreSQL tests never skip: an
//! unreachable server (`RV_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`)
//! fails them.

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

mod cancel;
mod cli;
mod concurrency;
mod determination;
mod harness;
mod payee;
mod quote;
mod receipts;
mod states;
mod stats;
mod window;

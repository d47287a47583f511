//! The black-box suite: the service as its users meet it — over HTTP, on a real socket, on
//! SQLite and on a real PostgreSQL server, with the reference `age` tool for what users
//! decrypt and the real binary where logs and files are what is under test.
//!
//! Every test that makes sense on both engines is written once as `async fn x(engine)` and
//! instantiated by `both_engines!` as `x::sqlite` and `x::postgres`. The PostgreSQL tests
//! never skip: an unreachable server fails them.

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

mod age_cli;
mod authz;
mod bad_input;
mod cli;
mod flow;
mod harness;
mod pii;
mod relay;
mod restart;
mod tamper;

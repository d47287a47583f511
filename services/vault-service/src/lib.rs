//! The `reporter-vault` service: configuration, the HTTP surface, the CLI, key and delivery
//! adapters. The only crate that knows axum.

pub mod app;
pub mod audit_cli;
pub mod backup_cli;
pub mod cli;
pub mod http;
pub mod keys;
pub mod keys_cli;
pub mod leader;
pub mod ledger;
pub mod log_writer;
pub mod notify;
pub mod serve;
pub mod telemetry;

/// The whole HTTP surface in process: opens the vault of `cfg` and returns the router that
/// `app::Application` serves, without a listener and without the background tasks (this
/// replica is not the leader). For callers that drive the router directly, such as the fuzz
/// targets, so that they never assemble `http::AppState` by hand.
pub async fn in_process_router(
    cfg: &app::VaultConfig,
    clock: std::sync::Arc<dyn vault_domain::clock::Clock>,
    rng: std::sync::Arc<dyn vault_crypto::random::RandomSource>,
    max_body: usize,
    body_timeout: std::time::Duration,
) -> Result<axum::Router, app::StartError> {
    let state = cfg
        .open(clock.clone(), rng.clone())
        .await?
        .into_state(clock, rng);
    Ok(http::router(state, max_body, body_timeout))
}

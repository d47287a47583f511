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
pub mod notify;
pub mod serve;
pub mod telemetry;

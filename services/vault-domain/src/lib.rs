//! The vault's domain: reporter identities, pseudonyms, custodian-approved disclosure and the
//! access trail, as use cases over port traits.
//!
//! This crate knows no HTTP and no SQL. The service crate parses requests into the value
//! objects of [`values`] and calls one method of [`Vault`]; the storage crate implements the
//! [`ports`]. Every security-relevant action appends an access-trail event in the same
//! transaction as the action itself, so an action without its event cannot be committed.

pub mod audit;
mod authcache;
pub(crate) mod blocking;
pub mod clock;
pub mod error;
pub mod identity;
pub mod lifecycle;
pub mod model;
pub mod obs;
pub mod ports;
pub mod ratelimit;
pub mod receipts;
pub mod rewards;
pub mod settlement;
mod trail;
pub mod values;
pub mod vault;
pub mod verify;

pub use error::DomainError;
pub use lifecycle::{ErasureLedger, LedgerEntry, LifecycleConfig};
pub use trail::{InclusionProof, LeakMatch, TreeHead};
pub use vault::{DisclosureConfig, Vault, VaultDeps};

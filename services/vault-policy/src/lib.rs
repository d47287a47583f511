//! Reward policies for reporter-vault: versioned TOML files in, validated policies and
//! explainable quotes out.
//!
//! Rewards for safety-production reports are public money paid under published measures
//! that differ by province and change over time (REWARD-RULES.md). This crate is the pure
//! part of paying them right:
//!
//! * [`PolicySet::load_dir`] reads every policy file of a directory and refuses the whole set
//!   if any file is invalid, naming the file, the key and the problem. Each [`Policy`] keeps
//!   its exact text ([`Policy::source_text`]) and its version, `sha256:` of the file bytes
//!   ([`Policy::version`]), so a stored reward can be recomputed and explained later from the
//!   archived text ([`Policy::parse`]).
//! * [`PolicySet::select`] chooses the policy for a case by date, jurisdiction and sector.
//! * [`evaluate`] turns a policy and a [`QuoteInput`] into a [`Quote`]: eligibility, amount
//!   and a trace of every step in words a finance officer can check by hand.
//!
//! Money is [`rust_decimal::Decimal`] throughout, read from and written to decimal strings;
//! floating point is banned in this crate by lint (`clippy::float_arithmetic`, and
//! `clippy::disallowed_types` for `f32`/`f64` via this crate's `clippy.toml`). No I/O
//! happens outside [`PolicySet::load_dir`]; nothing reads a clock.
//!
//! The file format, the selection rule and the rounding rule are documented for policy
//! authors in `policies/README.md`.

#![deny(clippy::float_arithmetic, clippy::disallowed_types)]
#![warn(missing_docs)]

mod error;
mod eval;
mod money;
mod policy;
mod scope;
mod set;

pub use error::{PolicyError, Problem};
pub use eval::{
    Decision, Outcome, PolicyRef, Quote, QuoteInput, Reason, Reporter, Step, TraceStep, evaluate,
    evaluate_amount,
};
pub use money::{AmountError, MAX_YUAN, Money, Percent};
pub use policy::{
    Eligibility, EmployeeUplift, FORMAT_VERSION, FamilyMember, Joint, Policy, Rounding, Rule,
    Sectors,
};
pub use scope::{
    AccidentLevel, DateError, Industry, Jurisdiction, JurisdictionError, Level, OutcomeKind,
    PolicyDate, Precision,
};
pub use set::{PolicySet, SelectError};

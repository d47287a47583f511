//! Observability of the use cases: counters through the `metrics` facade and the fields the
//! operation spans carry. Nothing here names a person: labels and span fields are purposes,
//! outcomes, roles and the vault's own random identifiers, never a pseudonym, an identity
//! value or anything a caller typed that was not checked to be one of those identifiers.
//!
//! Without an installed recorder (the domain's own tests, the offline CLI) every call here is
//! a no-op.

use time::Duration;

use crate::error::DomainError;
use crate::model::Disclosure;
use crate::vault::Vault;

/// `rv_disclosures_total{purpose, outcome}`.
pub const DISCLOSURES_TOTAL: &str = "rv_disclosures_total";

/// The outcomes `rv_disclosures_total` counts.
pub mod outcome {
    /// A disclosure was requested.
    pub const REQUESTED: &str = "requested";
    /// The last approval the quorum needed was given.
    pub const APPROVED: &str = "approved";
    /// A custodian denied it.
    pub const DENIED: &str = "denied";
    /// The requester opened it: identity data left the vault.
    pub const OPENED: &str = "opened";
    /// An open attempt found the 24-hour window after approval had passed.
    pub const EXPIRED: &str = "expired";
}

/// Every outcome, in the order a disclosure meets them.
pub const OUTCOMES: [&str; 5] = [
    outcome::REQUESTED,
    outcome::APPROVED,
    outcome::DENIED,
    outcome::OPENED,
    outcome::EXPIRED,
];

/// Registers every `rv_disclosures_total` series at zero, so a rate or an alert has a series
/// before the first disclosure of a kind.
pub fn register_disclosure_series() {
    for purpose in crate::values::Purpose::ALL {
        for outcome in OUTCOMES {
            metrics::counter!(
                DISCLOSURES_TOTAL,
                "purpose" => purpose.as_str(),
                "outcome" => outcome,
            )
            .increment(0);
        }
    }
}

/// Counts a disclosure outcome and records it (and the disclosure's id and purpose) on the
/// current operation span.
pub(crate) fn disclosure(d: &Disclosure, outcome: &'static str) {
    metrics::counter!(
        DISCLOSURES_TOTAL,
        "purpose" => d.purpose.as_str(),
        "outcome" => outcome,
    )
    .increment(1);
    let span = tracing::Span::current();
    span.record("outcome", outcome);
    span.record("purpose", d.purpose.as_str());
    span.record("disclosure_id", d.id.as_str());
}

/// The outcome of a custodian's decision, if it settled the disclosure.
pub(crate) fn decided(d: &Disclosure, approve: bool) {
    use crate::model::DisclosureStatus;
    match (approve, d.status) {
        (false, _) => disclosure(d, outcome::DENIED),
        (true, DisclosureStatus::Approved) => disclosure(d, outcome::APPROVED),
        // An approval short of the quorum: the trail has it; the counter waits for the last.
        (true, _) => {
            let span = tracing::Span::current();
            span.record("outcome", "approval_recorded");
            span.record("purpose", d.purpose.as_str());
        }
    }
}

/// `id` when it has the shape of one of the vault's identifiers with `prefix` (`prefix_` and
/// 26 lowercase base32 characters), else `"malformed"`. Callers put anything into a path
/// segment, an ID number included; only a well-formed identifier may reach a span.
pub fn id_field<'a>(id: &'a str, prefix: &str) -> &'a str {
    let well_formed = id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| {
            body.len() == 26
                && body
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        });
    if well_formed { id } else { "malformed" }
}

impl Vault {
    /// How long ago the newest checkpoint was signed, by the injected clock; `None` before
    /// the first one. Never negative.
    pub async fn checkpoint_age(&self) -> Result<Option<Duration>, DomainError> {
        let latest = self.deps.store.read().await?.latest_checkpoint().await?;
        Ok(latest.map(|cp| (self.now() - cp.created_at).max(Duration::ZERO)))
    }
}

#[cfg(test)]
mod tests {
    use super::id_field;

    #[test]
    fn only_well_formed_ids_pass() {
        let ok = "dis_abcdefghijklmnopqrstuvwxyz";
        assert_eq!(id_field(ok, "dis"), ok);
        assert_eq!(
            id_field("rwd_234567abcdefghijklmnopqrst", "rwd"),
            "rwd_234567abcdefghijklmnopqrst"
        );
        for bad in [
            "11010519491231002X",
            "dis_11010519491231002X",
            "dis_13800138000",
            "dis_ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "dis_abcdefghijklmnopqrstuvwxy",
            "prn_abcdefghijklmnopqrstuvwxyz",
            "dis_abcdefghijklmnopqrstuvwx张",
            "",
        ] {
            assert_eq!(id_field(bad, "dis"), "malformed", "{bad}");
        }
    }
}

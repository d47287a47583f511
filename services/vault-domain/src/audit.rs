//! Access-trail events and their canonical leaf encoding.
//!
//! Each event is stored as the exact bytes that will be hashed into the Merkle log
//! (RFC 6962 leaf = SHA-256(0x00 ‖ leaf bytes)). The encoding is canonical JSON: an object
//! whose keys appear in lexicographic order, no insignificant whitespace, absent values
//! omitted, strings escaped as RFC 8259 requires (serde_json's escaper). An independent
//! verifier needs only these bytes; it never has to re-encode anything.
//!
//! Events never hold plaintext identity data. A disclosed value is recorded as a keyed MAC
//! (HMAC-SHA256 under the disclosure-MAC key, see `vault_crypto::mac`) of its normalised
//! form, so auditors can match a leaked value without the trail holding it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::Actor;
use crate::values::IdentityField;

/// Leaf encoding version.
pub const LEAF_VERSION: u32 = 1;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The store and keyring were created.
    StoreInitialised,
    /// A reporter identity was sealed and a pseudonym issued.
    ReporterSealed,
    /// A pseudonym was issued to another jurisdiction.
    PseudonymHandedOff,
    /// A pseudonym was replaced.
    PseudonymRotated,
    /// A message was queued for a reporter.
    MessageRelayed,
    /// A disclosure was requested.
    DisclosureRequested,
    /// A custodian approved a disclosure.
    DisclosureApproved,
    /// A custodian denied a disclosure.
    DisclosureDenied,
    /// The requester opened an approved disclosure: identity data left the vault.
    DisclosureOpened,
    /// A principal was created.
    PrincipalCreated,
    /// A principal was revoked.
    PrincipalRevoked,
    /// Something was attempted and refused (role, scope or state).
    AccessDenied,
    /// An auditor traced a leaked value.
    LeakTrace,
    /// A reward policy version was loaded for the first time.
    PolicyLoaded,
    /// A reward case was filed.
    RewardFiled,
    /// A finance officer approved a reward.
    RewardApproved,
    /// A finance officer rejected a reward.
    RewardRejected,
    /// A claim window was extended.
    RewardExtended,
    /// An award was claimed.
    RewardClaimed,
    /// Payee details left the vault for finance.
    PayeeReleased,
    /// A payment was recorded.
    RewardPaid,
    /// A claim window closed unclaimed.
    RewardExpired,
    /// A receipt was issued to a reporter (through the case system).
    ReceiptIssued,
    /// The filer withdrew a reward before any decision.
    RewardCancelled,
    /// A new KEK version became active.
    KeyRotated,
    /// A KEK version no record used was destroyed.
    KeyRetired,
    /// A rewrap job was queued.
    KeysRewrapStarted,
    /// A rewrap job finished.
    KeysRewrapped,
    /// An erasure was requested.
    ErasureRequested,
    /// A custodian approved an erasure.
    ErasureApproved,
    /// A custodian denied an erasure.
    ErasureDenied,
    /// A reporter's envelope was destroyed (crypto-shredding).
    ReporterErased,
    /// The case system closed a case (retention counts from here).
    CaseClosed,
}

impl Action {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StoreInitialised => "store_initialised",
            Self::ReporterSealed => "reporter_sealed",
            Self::PseudonymHandedOff => "pseudonym_handed_off",
            Self::PseudonymRotated => "pseudonym_rotated",
            Self::MessageRelayed => "message_relayed",
            Self::DisclosureRequested => "disclosure_requested",
            Self::DisclosureApproved => "disclosure_approved",
            Self::DisclosureDenied => "disclosure_denied",
            Self::DisclosureOpened => "disclosure_opened",
            Self::PrincipalCreated => "principal_created",
            Self::PrincipalRevoked => "principal_revoked",
            Self::AccessDenied => "access_denied",
            Self::LeakTrace => "leak_trace",
            Self::PolicyLoaded => "policy_loaded",
            Self::RewardFiled => "reward_filed",
            Self::RewardApproved => "reward_approved",
            Self::RewardRejected => "reward_rejected",
            Self::RewardExtended => "reward_extended",
            Self::RewardClaimed => "reward_claimed",
            Self::PayeeReleased => "payee_released",
            Self::RewardPaid => "reward_paid",
            Self::RewardExpired => "reward_expired",
            Self::ReceiptIssued => "receipt_issued",
            Self::RewardCancelled => "reward_cancelled",
            Self::KeyRotated => "key_rotated",
            Self::KeyRetired => "key_retired",
            Self::KeysRewrapStarted => "keys_rewrap_started",
            Self::KeysRewrapped => "keys_rewrapped",
            Self::ErasureRequested => "erasure_requested",
            Self::ErasureApproved => "erasure_approved",
            Self::ErasureDenied => "erasure_denied",
            Self::ReporterErased => "reporter_erased",
            Self::CaseClosed => "case_closed",
        }
    }
}

/// A keyed MAC of one value that left the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMac {
    /// Which field.
    pub field: IdentityField,
    /// Lowercase hex HMAC-SHA256 of the normalised value.
    pub mac: String,
}

/// An event before the log gives it an index.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    /// When.
    pub time: Option<OffsetDateTime>,
    /// What.
    pub action: Option<Action>,
    /// `ok` or `denied`.
    pub denied: bool,
    /// For a denied attempt: the refusal code; for others, unused.
    pub reason: Option<String>,
    /// Who (absent for system events).
    pub actor_id: Option<String>,
    /// Their role.
    pub actor_role: Option<String>,
    /// Their name at the time.
    pub actor_name: Option<String>,
    /// Their jurisdiction.
    pub actor_jurisdiction: Option<String>,
    /// Jurisdiction of the record acted on.
    pub jurisdiction: Option<String>,
    /// The pseudonym acted on.
    pub pseudonym: Option<String>,
    /// The vault record acted on.
    pub record: Option<String>,
    /// The disclosure acted on.
    pub disclosure_id: Option<String>,
    /// Another record acted on (a principal, a new pseudonym, a message).
    pub target: Option<String>,
    /// Disclosure purpose.
    pub purpose: Option<String>,
    /// MACs of each value that left.
    pub disclosed: Vec<FieldMac>,
    /// Further non-identifying facts (destination jurisdiction, message kind, fields asked).
    pub detail: BTreeMap<String, String>,
    /// The HTTP request.
    pub request_id: Option<String>,
}

impl NewEvent {
    /// An event by `actor` at `time`.
    pub fn by(actor: &Actor, action: Action, time: OffsetDateTime) -> Self {
        Self {
            time: Some(time),
            action: Some(action),
            actor_id: Some(actor.principal.id.clone()),
            actor_role: Some(actor.principal.role.as_str().to_owned()),
            actor_name: Some(actor.principal.name.clone()),
            actor_jurisdiction: Some(actor.principal.jurisdiction.to_string()),
            request_id: Some(actor.request_id.clone()),
            ..Self::default()
        }
    }

    /// A system event (no principal).
    pub fn system(action: Action, time: OffsetDateTime) -> Self {
        Self {
            time: Some(time),
            action: Some(action),
            ..Self::default()
        }
    }

    /// Adds a detail.
    pub fn with_detail(mut self, key: &str, value: impl Into<String>) -> Self {
        self.detail.insert(key.to_owned(), value.into());
        self
    }
}

/// The parsed form of a leaf, as the events endpoint shows it. Field order is the canonical
/// (lexicographic) key order, which is what makes `serde_json` output canonical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// What.
    pub action: Action,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// Their jurisdiction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_jurisdiction: Option<String>,
    /// Their name at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_name: Option<String>,
    /// Their role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_role: Option<String>,
    /// Further non-identifying facts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, String>,
    /// MACs of values that left.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disclosed: Vec<FieldMac>,
    /// Disclosure acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure_id: Option<String>,
    /// Position in the log.
    pub index: u64,
    /// Jurisdiction of the record acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// `ok` or `denied`.
    pub outcome: String,
    /// Pseudonym acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym: Option<String>,
    /// Disclosure purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Refusal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Vault record acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// HTTP request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Another record acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// RFC 3339, UTC, whole seconds.
    pub time: String,
    /// Leaf encoding version.
    pub v: u32,
}

impl Event {
    /// Fixes `new` at log position `index`.
    pub fn from_new(index: u64, new: &NewEvent) -> Self {
        let time = new
            .time
            .and_then(|t| {
                t.to_offset(time::UtcOffset::UTC)
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        Self {
            action: new.action.unwrap_or(Action::AccessDenied),
            actor_id: new.actor_id.clone(),
            actor_jurisdiction: new.actor_jurisdiction.clone(),
            actor_name: new.actor_name.clone(),
            actor_role: new.actor_role.clone(),
            detail: new.detail.clone(),
            disclosed: new.disclosed.clone(),
            disclosure_id: new.disclosure_id.clone(),
            index,
            jurisdiction: new.jurisdiction.clone(),
            outcome: if new.denied { "denied" } else { "ok" }.to_owned(),
            pseudonym: new.pseudonym.clone(),
            purpose: new.purpose.clone(),
            reason: new.reason.clone(),
            record: new.record.clone(),
            request_id: new.request_id.clone(),
            target: new.target.clone(),
            time,
            v: LEAF_VERSION,
        }
    }

    /// The canonical leaf bytes.
    pub fn leaf_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings, integers and maps of strings cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses leaf bytes and checks they are canonical: re-encoding gives the same bytes.
    pub fn parse_leaf(bytes: &[u8]) -> Option<Self> {
        let event: Self = serde_json::from_slice(bytes).ok()?;
        (event.leaf_bytes() == bytes).then_some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_encoding_is_canonical_and_stable() {
        let mut new = NewEvent::system(
            Action::DisclosureOpened,
            time::macros::datetime!(2026-11-20 08:00:00 +08:00),
        );
        new.disclosed.push(FieldMac {
            field: IdentityField::Phone,
            mac: "ab".into(),
        });
        new.detail.insert("z".into(), "1".into());
        new.detail.insert("a".into(), "2".into());
        let ev = Event::from_new(7, &new);
        let bytes = ev.leaf_bytes();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            r#"{"action":"disclosure_opened","detail":{"a":"2","z":"1"},"disclosed":[{"field":"phone","mac":"ab"}],"index":7,"outcome":"ok","time":"2026-11-20T00:00:00Z","v":1}"#
        );
        assert_eq!(Event::parse_leaf(&bytes), Some(ev));
    }

    #[test]
    fn fail_non_canonical_leaf_is_refused() {
        let spaced = br#"{"action":"access_denied", "index":1,"outcome":"denied","time":"2026-11-20T00:00:00Z","v":1}"#;
        assert!(Event::parse_leaf(spaced).is_none());
        let reordered = br#"{"index":1,"action":"access_denied","outcome":"denied","time":"2026-11-20T00:00:00Z","v":1}"#;
        assert!(Event::parse_leaf(reordered).is_none());
    }
}

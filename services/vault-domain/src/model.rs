//! Records the vault keeps. None holds plaintext identity data: a reporter's identity exists
//! only as an envelope (see `vault_crypto::envelope`) and as keyed blind indexes.

use time::OffsetDateTime;

use crate::values::{CaseRef, Channel, IdentityField, Jurisdiction, MessageKind, Purpose, Role};

/// An authenticated caller: a system or officer with one role and one jurisdiction.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `prn_…`.
    pub id: String,
    /// Display name (an office, not a reporter).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// What it may see: records in jurisdictions this code covers.
    pub jurisdiction: Jurisdiction,
    /// Where disclosures to it are encrypted (`age1…`), if set.
    pub age_recipient: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was revoked; a revoked principal's token stops working at once on the replica
    /// that revoked it, and on the others within `RV_AUTH_CACHE_SECONDS` (default 2).
    pub revoked_at: Option<OffsetDateTime>,
}

/// The request an action belongs to, carried into its access-trail event.
#[derive(Debug, Clone)]
pub struct Actor {
    /// Who is acting.
    pub principal: Principal,
    /// The `x-request-id` of the HTTP request (or a CLI marker).
    pub request_id: String,
}

/// A vault record: one per person (real-name reports with the same resident ID share it), or
/// one per anonymous report.
pub struct ReporterRecord {
    /// `rec_…`; bound into the envelope's associated data.
    pub id: String,
    /// Jurisdiction of the first report; bound into the envelope's associated data.
    pub jurisdiction: Jurisdiction,
    /// Keyed blind index of the resident ID (never a plain hash), if one was given.
    pub blind_index: Option<[u8; 32]>,
    /// The sealed identity; `None` for anonymous reports and after erasure.
    pub envelope: Option<Vec<u8>>,
    /// KEK version the envelope's data key is wrapped under.
    pub kek_version: Option<u32>,
    /// No identity was given.
    pub anonymous: bool,
    /// Argon2id PHC string of the anonymous reporter's claim code.
    pub claim_code_hash: Option<String>,
    /// First seal.
    pub created_at: OffsetDateTime,
    /// Last re-seal.
    pub updated_at: OffsetDateTime,
    /// When the data key was destroyed.
    pub erased_at: Option<OffsetDateTime>,
}

/// Lifecycle of a pseudonym.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudonymStatus {
    /// Usable.
    Active,
    /// Replaced after suspected exposure; still readable, no longer usable.
    Revoked,
    /// The reporter's record was erased.
    Erased,
}

impl PseudonymStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Erased => "erased",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "revoked" => Some(Self::Revoked),
            "erased" => Some(Self::Erased),
            _ => None,
        }
    }
}

/// How a pseudonym came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudonymOrigin {
    /// Issued when the identity was sealed.
    Seal,
    /// Issued to a receiving jurisdiction (交办/转办).
    Handoff,
    /// Issued to replace a possibly exposed one.
    Rotate,
}

impl PseudonymOrigin {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seal => "seal",
            Self::Handoff => "handoff",
            Self::Rotate => "rotate",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "seal" => Some(Self::Seal),
            "handoff" => Some(Self::Handoff),
            "rotate" => Some(Self::Rotate),
            _ => None,
        }
    }
}

/// One pseudonym: what the case system holds instead of an identity, one per case (and per
/// receiving jurisdiction). Pseudonyms are random, so two of them cannot be linked without the
/// vault.
#[derive(Debug, Clone)]
pub struct PseudonymRecord {
    /// `rp_…`.
    pub pseudonym: String,
    /// The vault record behind it. Never leaves the vault.
    pub reporter_id: String,
    /// The jurisdiction the case sits in.
    pub jurisdiction: Jurisdiction,
    /// The case system's case reference.
    pub case_ref: CaseRef,
    /// When the report was received (first-reporter rule).
    pub received_at: OffsetDateTime,
    /// How it came in.
    pub channel: Channel,
    /// Reporter works for the reported unit (employee uplift).
    pub employee_of_reported_unit: bool,
    /// Anonymous report.
    pub anonymous: bool,
    /// Active or revoked as stored; `Erased` is derived from the record.
    pub status: PseudonymStatus,
    /// Issued at.
    pub created_at: OffsetDateTime,
    /// Issued by.
    pub created_by: String,
    /// Why it was issued.
    pub origin: PseudonymOrigin,
    /// The pseudonym it was issued from (hand-off, rotation).
    pub parent: Option<String>,
}

/// Lifecycle of a disclosure request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisclosureStatus {
    /// Waiting for custodians.
    Pending,
    /// Quorum reached; the requester may open it once within 24 hours.
    Approved,
    /// A custodian denied it.
    Denied,
    /// Opened by the requester.
    Opened,
    /// Approved but not opened within 24 hours.
    Expired,
}

impl DisclosureStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Opened => "opened",
            Self::Expired => "expired",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "approved" => Some(Self::Approved),
            "denied" => Some(Self::Denied),
            "opened" => Some(Self::Opened),
            "expired" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// A custodian's decision on a disclosure.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The custodian.
    pub principal_id: String,
    /// Approve (true) or deny.
    pub approve: bool,
    /// When.
    pub at: OffsetDateTime,
    /// Why, in the custodian's words.
    pub comment: String,
}

/// How long an approved disclosure may be opened.
pub const DISCLOSURE_OPEN_WINDOW: time::Duration = time::Duration::hours(24);

/// A request to disclose some fields of an identity for a stated purpose.
#[derive(Debug, Clone)]
pub struct Disclosure {
    /// `dis_…`.
    pub id: String,
    /// The pseudonym it was asked about.
    pub pseudonym: String,
    /// The record behind it.
    pub reporter_id: String,
    /// The pseudonym's jurisdiction (custodians and auditors in scope of it decide and see).
    pub jurisdiction: Jurisdiction,
    /// Who asked; the only one who may open it.
    pub requester_id: String,
    /// Why.
    pub purpose: Purpose,
    /// The requester's justification.
    pub justification: String,
    /// Which fields.
    pub fields: Vec<IdentityField>,
    /// Stored status (never `Expired`; that is derived from the clock).
    pub status: DisclosureStatus,
    /// Distinct custodians needed.
    pub approvals_required: u32,
    /// Decisions so far, oldest first.
    pub decisions: Vec<Decision>,
    /// Requested at.
    pub created_at: OffsetDateTime,
    /// Quorum reached at.
    pub approved_at: Option<OffsetDateTime>,
    /// Opened at.
    pub opened_at: Option<OffsetDateTime>,
}

impl Disclosure {
    /// The status as of `now`: an approved disclosure not opened within 24 hours is expired.
    pub fn status_at(&self, now: OffsetDateTime) -> DisclosureStatus {
        match (self.status, self.expires_at()) {
            (DisclosureStatus::Approved, Some(exp)) if now >= exp => DisclosureStatus::Expired,
            (s, _) => s,
        }
    }

    /// The end of the open window, once approved.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.approved_at.map(|a| a + DISCLOSURE_OPEN_WINDOW)
    }
}

/// A message for a reporter, waiting in the outbox for the notifier.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    /// `msg_…`.
    pub id: String,
    /// Addressed to.
    pub pseudonym: String,
    /// Resolved to a contact only at delivery time, inside the vault.
    pub reporter_id: String,
    /// What kind of message.
    pub kind: MessageKind,
    /// The text.
    pub body: String,
    /// Queued at.
    pub created_at: OffsetDateTime,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Not before.
    pub next_attempt_at: OffsetDateTime,
}

//! Wire types: what the contract's JSON looks like, and the one place each field is parsed
//! into a domain value (with the field's dotted name for the 422).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vault_domain::DomainError;
use vault_domain::clock::rfc3339_cst;
use vault_domain::identity::Identity;
use vault_domain::model::{Disclosure, Principal, PseudonymRecord};
use vault_domain::values::{
    Address, BankAccount, BankName, CaseRef, Channel, Email, Employer, IdentityField, Jurisdiction,
    MessageKind, PersonName, Phone, Purpose, ResidentId, Role, ValueError,
};

fn field_err(field: &str) -> impl Fn(ValueError) -> DomainError + '_ {
    move |e| DomainError::invalid(field, e.reason)
}

/// Parses a jurisdiction code, naming `field` on failure.
pub fn jurisdiction(field: &str, s: &str) -> Result<Jurisdiction, DomainError> {
    Jurisdiction::parse(s).map_err(field_err(field))
}

/// Parses an RFC 3339 time with offset.
pub fn rfc3339(field: &str, s: &str) -> Result<OffsetDateTime, DomainError> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| DomainError::invalid(field, "must be an RFC 3339 time with offset"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPrincipal {
    pub name: String,
    pub role: Role,
    pub jurisdiction: String,
    #[serde(default)]
    pub age_recipient: Option<String>,
}

#[derive(Serialize)]
pub struct PrincipalView {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    pub jurisdiction: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_recipient: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl PrincipalView {
    pub fn of(p: &Principal, token: Option<String>) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            role: p.role.as_str(),
            jurisdiction: p.jurisdiction.to_string(),
            age_recipient: p.age_recipient.clone(),
            created_at: rfc3339_cst(p.created_at),
            revoked_at: p.revoked_at.map(rfc3339_cst),
            token,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityIn {
    pub name: Option<String>,
    #[serde(default)]
    pub id_number: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub bank_account: Option<String>,
    #[serde(default)]
    pub bank_name: Option<String>,
    #[serde(default)]
    pub employer: Option<String>,
}

fn opt<T>(
    field: &str,
    v: &Option<String>,
    parse: impl Fn(&str) -> Result<T, ValueError>,
) -> Result<Option<T>, DomainError> {
    v.as_deref()
        .map(parse)
        .transpose()
        .map_err(field_err(field))
}

impl IdentityIn {
    /// Every field parsed once; the first failure names its field.
    pub fn parse(&self) -> Result<Identity, DomainError> {
        let name = match &self.name {
            Some(n) => PersonName::parse(n).map_err(field_err("identity.name"))?,
            None => {
                return Err(DomainError::invalid(
                    "identity.name",
                    "is required for a real-name report (send \"identity\": null for an anonymous one)",
                ));
            }
        };
        Ok(Identity {
            name: Some(name),
            id_number: opt("identity.id_number", &self.id_number, ResidentId::parse)?,
            phone: opt("identity.phone", &self.phone, Phone::parse)?,
            email: opt("identity.email", &self.email, Email::parse)?,
            address: opt("identity.address", &self.address, Address::parse)?,
            bank_account: opt(
                "identity.bank_account",
                &self.bank_account,
                BankAccount::parse,
            )?,
            bank_name: opt("identity.bank_name", &self.bank_name, BankName::parse)?,
            employer: opt("identity.employer", &self.employer, Employer::parse)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealIn {
    pub jurisdiction: String,
    pub case_ref: String,
    pub received_at: String,
    pub channel: Channel,
    pub employee_of_reported_unit: bool,
    pub identity: Option<IdentityIn>,
}

#[derive(Serialize)]
pub struct SealOut {
    pub pseudonym: String,
    pub jurisdiction: String,
    pub case_ref: String,
    pub anonymous: bool,
    pub reporter_seen_before: bool,
    pub prior_case_refs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_code: Option<String>,
}

#[derive(Serialize)]
pub struct PseudonymView {
    pub pseudonym: String,
    pub jurisdiction: String,
    pub case_ref: String,
    pub created_at: String,
    pub anonymous: bool,
    pub employee_of_reported_unit: bool,
    pub status: &'static str,
}

impl PseudonymView {
    pub fn of(p: &PseudonymRecord) -> Self {
        Self {
            pseudonym: p.pseudonym.clone(),
            jurisdiction: p.jurisdiction.to_string(),
            case_ref: p.case_ref.to_string(),
            created_at: rfc3339_cst(p.created_at),
            anonymous: p.anonymous,
            employee_of_reported_unit: p.employee_of_reported_unit,
            status: p.status.as_str(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffIn {
    pub to_jurisdiction: String,
    #[serde(default)]
    pub case_ref: Option<String>,
}

impl HandoffIn {
    pub fn parse(&self) -> Result<(Jurisdiction, Option<CaseRef>), DomainError> {
        Ok((
            jurisdiction("to_jurisdiction", &self.to_jurisdiction)?,
            self.case_ref
                .as_deref()
                .map(CaseRef::parse)
                .transpose()
                .map_err(field_err("case_ref"))?,
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    pub kind: MessageKind,
    pub body: String,
}

#[derive(Serialize)]
pub struct MessageOut {
    pub id: String,
    pub status: &'static str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureIn {
    pub pseudonym: String,
    pub purpose: Purpose,
    pub justification: String,
    pub fields: Vec<IdentityField>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    #[serde(default)]
    pub comment: String,
}

#[derive(Serialize)]
pub struct DecisionView {
    pub principal_id: String,
    pub at: String,
    pub comment: String,
}

#[derive(Serialize)]
pub struct DisclosureView {
    pub id: String,
    pub pseudonym: String,
    pub purpose: &'static str,
    pub fields: Vec<&'static str>,
    pub justification: String,
    pub status: &'static str,
    pub requested_by: String,
    pub created_at: String,
    pub approvals_required: u32,
    pub approvals: Vec<DecisionView>,
    pub denials: Vec<DecisionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<String>,
}

impl DisclosureView {
    pub fn of(d: &Disclosure, now: OffsetDateTime) -> Self {
        let view = |approve: bool| {
            d.decisions
                .iter()
                .filter(|x| x.approve == approve)
                .map(|x| DecisionView {
                    principal_id: x.principal_id.clone(),
                    at: rfc3339_cst(x.at),
                    comment: x.comment.clone(),
                })
                .collect()
        };
        Self {
            id: d.id.clone(),
            pseudonym: d.pseudonym.clone(),
            purpose: d.purpose.as_str(),
            fields: d.fields.iter().map(|f| f.as_str()).collect(),
            justification: d.justification.clone(),
            status: d.status_at(now).as_str(),
            requested_by: d.requester_id.clone(),
            created_at: rfc3339_cst(d.created_at),
            approvals_required: d.approvals_required,
            approvals: view(true),
            denials: view(false),
            approved_at: d.approved_at.map(rfc3339_cst),
            expires_at: d.expires_at().map(rfc3339_cst),
            opened_at: d.opened_at.map(rfc3339_cst),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[serde(default)]
    pub start: Option<u64>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Serialize)]
pub struct EventOut {
    pub index: u64,
    pub leaf: String,
    pub event: vault_domain::audit::Event,
}

#[derive(Serialize)]
pub struct EventsOut {
    pub events: Vec<EventOut>,
    pub tree_size: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    pub index: u64,
    pub tree_size: u64,
}

#[derive(Serialize)]
pub struct InclusionOut {
    pub index: u64,
    pub tree_size: u64,
    pub hashes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    pub first: u64,
    pub second: u64,
}

#[derive(Serialize)]
pub struct ConsistencyOut {
    pub first: u64,
    pub second: u64,
    pub hashes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakTraceIn {
    pub field: IdentityField,
    pub value: String,
}

#[derive(Serialize)]
pub struct LeakMatchOut {
    pub index: u64,
    pub time: String,
    pub principal_id: Option<String>,
    pub principal_name: Option<String>,
    pub action: &'static str,
    pub purpose: Option<String>,
    pub disclosure_id: Option<String>,
}

impl LeakMatchOut {
    pub fn of(m: vault_domain::LeakMatch) -> Self {
        Self {
            index: m.index,
            time: m.time,
            principal_id: m.principal_id,
            principal_name: m.principal_name,
            action: m.action.as_str(),
            purpose: m.purpose,
            disclosure_id: m.disclosure_id,
        }
    }
}

#[derive(Serialize)]
pub struct LeakTraceOut {
    pub matches: Vec<LeakMatchOut>,
}

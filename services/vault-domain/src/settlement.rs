//! Reward settlement: from a verified outcome to payment.
//!
//! ```text
//!   file ──▶ pending_approval ──approve (1 or 2 finance)──▶ approved ──claim──▶ claimed ──pay──▶ paid
//!                 │                                           │    ▲
//!                 ├──reject──▶ rejected                       │    └──extend── expired
//!                 └──cancel──▶ cancelled                      └──window closes──▶ expired
//! ```
//!
//! The vault applies the rules itself (REWARD-RULES.md items 5–8): it reads who reported,
//! when, and whether anonymously from its own sealed records, so neither the case system nor
//! finance needs an identity to settle a reward. Every transition is a compare-and-set on the
//! reward's version inside one transaction with its access-trail event: two officers acting
//! at once produce one outcome.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use vault_policy::{Joint, Money, OutcomeKind, QuoteInput, Reporter};
use zeroize::Zeroizing;

use crate::audit::{Action, FieldMac, NewEvent};
use crate::clock::{CST, rfc3339_cst};
use crate::error::DomainError;
use crate::identity::IdentityFields;
use crate::model::{Actor, OutboxMessage, PseudonymStatus};
use crate::values::{IdentityField, Jurisdiction, MessageKind, Role};
use crate::vault::{OpenedDisclosure, Vault, audit_err, key_err};

/// Where a reward is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardStatus {
    /// Filed, waiting for finance.
    PendingApproval,
    /// Approved; the claim window is open.
    Approved,
    /// Claimed by every awarded reporter.
    Claimed,
    /// Paid.
    Paid,
    /// Rejected by finance.
    Rejected,
    /// The claim window closed unclaimed.
    Expired,
    /// Withdrawn by the filer before approval.
    Cancelled,
}

impl RewardStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingApproval => "pending_approval",
            Self::Approved => "approved",
            Self::Claimed => "claimed",
            Self::Paid => "paid",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::PendingApproval,
            Self::Approved,
            Self::Claimed,
            Self::Paid,
            Self::Rejected,
            Self::Expired,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One report's determination.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Award {
    /// The report's pseudonym.
    pub pseudonym: String,
    /// The vault record behind it (never leaves the vault).
    pub reporter_id: String,
    /// Yuan, two decimals.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Why nothing (or less) is awarded.
    pub reason: Option<String>,
    /// Anonymous report (claims by claim code).
    pub anonymous: bool,
    /// When claimed.
    pub claimed_at: Option<OffsetDateTime>,
}

/// A finance approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    /// The finance principal.
    pub principal_id: String,
    /// When.
    pub at: OffsetDateTime,
}

/// A claim-window extension.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extension {
    /// Days added.
    pub days: u32,
    /// Why.
    pub reason: String,
    /// By whom.
    pub principal_id: String,
    /// When.
    pub at: OffsetDateTime,
}

/// The recorded payment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payment {
    /// Finance's reference.
    pub payment_ref: String,
    /// Yuan.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// `YYYY-MM-DD`.
    pub paid_on: String,
    /// By whom.
    pub recorded_by: String,
    /// When recorded.
    pub at: OffsetDateTime,
}

/// A reward case.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reward {
    /// `rwd_…`.
    pub id: String,
    /// The case.
    pub case_ref: String,
    /// The accepting jurisdiction, which pays (谁受理、谁奖励).
    pub jurisdiction: Jurisdiction,
    /// The verified outcome and case facts, as quoted.
    pub input: QuoteInput,
    /// Policy id.
    pub policy_id: String,
    /// Policy version (`sha256:` of its file; the text is archived).
    pub policy_version: String,
    /// Total of the awards.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// State.
    pub status: RewardStatus,
    /// Who filed it.
    pub filed_by: String,
    /// When.
    pub created_at: OffsetDateTime,
    /// Per report.
    pub awards: Vec<Award>,
    /// Finance approvals so far.
    pub approvals: Vec<Approval>,
    /// Distinct approvals needed.
    pub approvals_required: u32,
    /// The evaluation trace of the awarded report.
    pub trace: serde_json::Value,
    /// Why it was rejected.
    pub rejection_reason: Option<String>,
    /// When the reporter was notified (approval).
    pub notice_at: Option<OffsetDateTime>,
    /// The instant the claim window closes (24:00 CST of the last day).
    pub claim_deadline: Option<OffsetDateTime>,
    /// Extensions granted.
    pub extensions: Vec<Extension>,
    /// The payment.
    pub payment: Option<Payment>,
    /// Compare-and-set version.
    pub version: i64,
}

/// One report of the matter, as the case system lists it.
#[derive(Debug, Clone)]
pub struct ReportIn {
    /// Its pseudonym.
    pub pseudonym: String,
    /// When it was received, as the case system has it (must match the vault's record).
    pub received_at: Option<OffsetDateTime>,
    /// Joint report group.
    pub joint_group: Option<String>,
    /// Order of signature within the group (1 = first).
    pub signatory_order: Option<u32>,
    /// The reporter has safety-supervision duties (or is a relative or agent of such).
    pub supervisory_staff: bool,
}

/// A reward filing.
#[derive(Debug, Clone)]
pub struct FileReward {
    /// The case.
    pub case_ref: String,
    /// Accepting jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// Outcome and policy facts (the `reporter` part is ignored: the vault fills it per report).
    pub input: QuoteInput,
    /// Reports of the matter.
    pub reports: Vec<ReportIn>,
}

/// How a claim proves the claimant.
pub enum ClaimBy {
    /// The case system checked the real-name reporter's ID in person.
    Pseudonym(String),
    /// An anonymous reporter's claim code.
    ClaimCode(Zeroizing<String>),
}

/// Reward settlement settings.
#[derive(Debug, Clone, Copy)]
pub struct SettlementConfig {
    /// Dual approval at or above this amount when the policy names no threshold.
    pub default_dual_threshold: Decimal,
    /// Claim days when the policy names none (the national measures: 60).
    pub default_claim_days: u32,
}

impl Default for SettlementConfig {
    fn default() -> Self {
        Self {
            default_dual_threshold: Decimal::new(5_000_000, 2),
            default_claim_days: 60,
        }
    }
}

/// Filters for listing rewards.
#[derive(Debug, Clone, Default)]
pub struct RewardFilter {
    /// State.
    pub status: Option<RewardStatus>,
    /// Jurisdiction (must be within the caller's).
    pub jurisdiction: Option<Jurisdiction>,
    /// Filed on or after (CST date).
    pub from: Option<Date>,
    /// Filed on or before (CST date).
    pub to: Option<Date>,
}

/// A statistics group.
#[derive(Debug, Clone)]
pub struct StatGroup {
    /// The group key.
    pub key: String,
    /// `None` when suppressed (fewer than 3 distinct reporters).
    pub count_sum: Option<(u64, Decimal)>,
}

fn money(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// The instant a claim window that starts with a notice at `notice` closes: the notice day is
/// not counted, and the window ends at 24:00 China Standard Time of the last day.
pub fn claim_deadline(notice: OffsetDateTime, days: u32) -> OffsetDateTime {
    let notice_day = notice.to_offset(CST).date();
    let last = notice_day + time::Duration::days(i64::from(days));
    let end = last + time::Duration::days(1);
    end.midnight().assume_offset(CST)
}

fn month_of(d: Date) -> String {
    format!("{:04}-{:02}", d.year(), u8::from(d.month()))
}

impl Vault {
    fn settlement(&self) -> SettlementConfig {
        self.deps.settlement
    }

    async fn reward_in_scope(
        &self,
        actor: &Actor,
        id: &str,
        attempted: &'static str,
    ) -> Result<Reward, DomainError> {
        let r = self
            .deps
            .store
            .read()
            .await?
            .reward(id)
            .await?
            .ok_or(DomainError::NotFound { what: "reward" })?;
        let mut ev = NewEvent::by(actor, Action::AccessDenied, self.now());
        ev.target = Some(r.id.clone());
        self.require_scope(actor, r.jurisdiction, "reward", attempted, ev)
            .await?;
        Ok(r)
    }

    fn reward_event(&self, actor: &Actor, r: &Reward, action: Action) -> NewEvent {
        let mut ev = NewEvent::by(actor, action, self.now())
            .with_detail("status", r.status.as_str())
            .with_detail("amount", format!("{:.2}", r.amount));
        ev.target = Some(r.id.clone());
        ev.jurisdiction = Some(r.jurisdiction.to_string());
        ev
    }

    /// Saves a transition with its event, or reports that someone else moved it first.
    async fn save_transition(
        &self,
        actor: &Actor,
        r: &Reward,
        expected_version: i64,
        ev: NewEvent,
        messages: Vec<OutboxMessage>,
    ) -> Result<(), DomainError> {
        let mut tx = self.deps.store.begin().await?;
        if !tx.update_reward(r, expected_version).await? {
            drop(tx);
            let current = self.deps.store.read().await?.reward(&r.id).await?;
            let state = current.map(|c| c.status.as_str()).unwrap_or("gone");
            return Err(self
                .conflict(
                    actor,
                    "move rewards",
                    ev,
                    "concurrent_update",
                    format!("the reward was changed concurrently; it is now {state}"),
                )
                .await);
        }
        for m in &messages {
            tx.insert_message(m).await?;
        }
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(())
    }

    /// The status as callers see it: approved past the deadline is expired.
    fn shown_status(&self, r: &Reward) -> RewardStatus {
        if r.status == RewardStatus::Approved && r.claim_deadline.is_some_and(|d| self.now() >= d) {
            RewardStatus::Expired
        } else {
            r.status
        }
    }

    async fn wrong_state(&self, actor: &Actor, r: &Reward, attempted: &'static str) -> DomainError {
        let mut ev = NewEvent::by(actor, Action::AccessDenied, self.now());
        ev.target = Some(r.id.clone());
        self.conflict(
            actor,
            attempted,
            ev,
            "invalid_state",
            format!("the reward is {}", self.shown_status(r).as_str()),
        )
        .await
    }

    /// Files a reward case: determines the award(s) under the policy and stores them
    /// `pending_approval`.
    #[tracing::instrument(
        name = "vault.file_reward",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            reports = f.reports.len(),
        )
    )]
    pub async fn file_reward(&self, actor: &Actor, f: FileReward) -> Result<Reward, DomainError> {
        self.require_role(actor, &[Role::CaseSystem], "file rewards")
            .await?;
        if !actor.principal.jurisdiction.covers(&f.jurisdiction) {
            return Err(DomainError::invalid(
                "jurisdiction",
                "outside the caller's jurisdiction",
            ));
        }
        if f.reports.is_empty() {
            return Err(DomainError::invalid(
                "reports",
                "must list at least one report",
            ));
        }
        let set = self.deps.policies.clone();
        let mut input = f.input.clone();
        let policy = set
            .select(
                input.jurisdiction,
                input.industry,
                input.verified_on,
                input.policy_id.as_deref(),
            )
            .map_err(|e| DomainError::Unprocessable {
                code: e.code(),
                field: Some(e.field().to_owned()),
                message: e.to_string(),
            })?;
        input.policy_id = Some(policy.id().to_owned());

        // The vault's own facts about each report.
        let mut repo = self.deps.store.read().await?;
        let mut reports = Vec::with_capacity(f.reports.len());
        for (i, rep) in f.reports.iter().enumerate() {
            let field = format!("reports[{i}].pseudonym");
            let rec = repo
                .pseudonym(&rep.pseudonym)
                .await?
                .filter(|p| actor.principal.jurisdiction.covers(&p.jurisdiction))
                .ok_or_else(|| DomainError::invalid(&field, "no such pseudonym in scope"))?;
            if rec.status == PseudonymStatus::Erased {
                return Err(DomainError::invalid(
                    &field,
                    "the reporter's record was erased",
                ));
            }
            if reports
                .iter()
                .any(|(_, r): &(&ReportIn, crate::model::PseudonymRecord)| {
                    r.reporter_id == rec.reporter_id && r.pseudonym == rec.pseudonym
                })
            {
                return Err(DomainError::invalid(&field, "listed twice"));
            }
            if let Some(at) = rep.received_at
                && at != rec.received_at
            {
                return Err(DomainError::invalid(
                    format!("reports[{i}].received_at"),
                    "does not match the vault's record of the report",
                ));
            }
            reports.push((rep, rec));
        }
        drop(repo);
        // First accepted first; ties by pseudonym for a stable order.
        reports.sort_by(|a, b| {
            (a.1.received_at, &a.1.pseudonym).cmp(&(b.1.received_at, &b.1.pseudonym))
        });

        let reporter_facts = |rep: &ReportIn, rec: &crate::model::PseudonymRecord| Reporter {
            employee_of_reported_unit: rec.employee_of_reported_unit,
            supervisory_staff: rep.supervisory_staff,
            anonymous: rec.anonymous,
        };
        let mut awards: Vec<Award> = Vec::new();
        // Each report's own eligibility first; the first eligible one (by acceptance) wins.
        let mut winner: Option<(usize, vault_policy::Quote)> = None;
        let mut own_reason: Vec<Option<String>> = Vec::with_capacity(reports.len());
        for (i, (rep, rec)) in reports.iter().enumerate() {
            let mut q_in = input.clone();
            q_in.reporter = reporter_facts(rep, rec);
            let quote = crate::rewards::compute_quote(&set, &q_in)?;
            if quote.eligible {
                own_reason.push(None);
                if winner.is_none() {
                    winner = Some((i, quote));
                }
            } else {
                own_reason.push(Some(
                    quote
                        .reason
                        .map(|r| r.code().to_owned())
                        .unwrap_or_else(|| "not_eligible".to_owned()),
                ));
            }
            awards.push(Award {
                pseudonym: rec.pseudonym.clone(),
                reporter_id: rec.reporter_id.clone(),
                amount: Decimal::ZERO,
                reason: None,
                anonymous: rec.anonymous,
                claimed_at: None,
            });
        }
        let Some((wi, quote)) = winner else {
            return Err(DomainError::Unprocessable {
                code: "no_eligible_report",
                field: Some("reports".into()),
                message: "no report of this matter is eligible under the policy".into(),
            });
        };
        let total = quote.amount.as_decimal();
        // The joint group of the first eligible report shares one award, among its eligible
        // members only: an excluded co-signatory is never paid, whatever its place.
        let group = reports.get(wi).and_then(|(rep, _)| rep.joint_group.clone());
        let mut members: Vec<usize> = match &group {
            Some(g) => reports
                .iter()
                .enumerate()
                .filter(|(i, (rep, _))| {
                    rep.joint_group.as_deref() == Some(g.as_str())
                        && own_reason.get(*i).is_some_and(Option::is_none)
                })
                .map(|(i, _)| i)
                .collect(),
            None => vec![wi],
        };
        members.sort_by_key(|i| {
            reports
                .get(*i)
                .map(|(rep, rec)| (rep.signatory_order.unwrap_or(u32::MAX), rec.received_at))
        });
        for (i, award) in awards.iter_mut().enumerate() {
            award.reason = match own_reason.get(i).cloned().flatten() {
                Some(r) => Some(r),
                None if members.contains(&i) => None,
                None => Some("not_first_reporter".to_owned()),
            };
        }
        let mut shares: BTreeMap<usize, Decimal> = BTreeMap::new();
        match (policy.joint(), members.len()) {
            (Joint::EqualSplit, n) if n > 1 => {
                let n_dec = Decimal::from(n as u64);
                let each = (total / n_dec).round_dp_with_strategy(2, RoundingStrategy::ToZero);
                let remainder = total - each * n_dec;
                for (k, i) in members.iter().enumerate() {
                    shares.insert(*i, if k == 0 { each + remainder } else { each });
                }
            }
            _ => {
                if let Some(first) = members.first() {
                    shares.insert(*first, total);
                }
            }
        }
        // Per-reporter monthly caps, across cases, through the vault's own record link. Read
        // and written in one transaction that holds the filing lock, so two filings at once
        // cannot both use the same room under the cap.
        let kind = input.outcome.kind;
        let month = month_of(input.verified_on);
        let cap = policy.monthly_cap(kind).map(|m| m.as_decimal());
        let mut tx = self.deps.store.begin().await?;
        tx.lock_reward_filing().await?;
        for (i, award) in awards.iter_mut().enumerate() {
            let Some(share) = shares.get(&i) else {
                // Co-signatories of a first-signatory award are part of the one award.
                if members.contains(&i) {
                    award.reason = Some("joint_report_member".into());
                }
                continue;
            };
            award.reason = None;
            let mut amount = *share;
            if let Some(cap) = cap {
                let used = tx
                    .awarded_in_month(&award.reporter_id, kind_str(kind), &month)
                    .await?;
                let room = (cap - used).max(Decimal::ZERO);
                if amount > room {
                    amount = room;
                    award.reason = Some("monthly_cap_reached".into());
                }
            }
            award.amount = money(amount);
        }
        let total: Decimal = awards.iter().map(|a| a.amount).sum();
        let threshold = policy
            .dual_approval_threshold()
            .map(|m| m.as_decimal())
            .unwrap_or(self.settlement().default_dual_threshold);
        let now = self.now();
        let reward = Reward {
            id: self.new_id("rwd")?,
            case_ref: f.case_ref,
            jurisdiction: f.jurisdiction,
            input,
            policy_id: policy.id().to_owned(),
            policy_version: policy.version().to_owned(),
            amount: money(total),
            status: RewardStatus::PendingApproval,
            filed_by: actor.principal.id.clone(),
            created_at: now,
            awards,
            approvals: Vec::new(),
            approvals_required: if total >= threshold { 2 } else { 1 },
            trace: serde_json::to_value(&quote.trace).unwrap_or_default(),
            rejection_reason: None,
            notice_at: None,
            claim_deadline: None,
            extensions: Vec::new(),
            payment: None,
            version: 1,
        };
        let ev = self
            .reward_event(actor, &reward, Action::RewardFiled)
            .with_detail("policy_version", reward.policy_version.clone());
        tx.insert_reward(&reward, kind_str(kind), &month).await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(reward)
    }

    /// A reward in the caller's scope.
    #[tracing::instrument(
        name = "vault.get_reward",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            reward_id = crate::obs::id_field(id, "rwd"),
        )
    )]
    pub async fn get_reward(&self, actor: &Actor, id: &str) -> Result<Reward, DomainError> {
        self.require_role(
            actor,
            &[Role::CaseSystem, Role::Finance, Role::Auditor],
            "read rewards",
        )
        .await?;
        let mut r = self.reward_in_scope(actor, id, "read rewards").await?;
        // An approved reward whose window has closed reads as expired even before the job
        // has run.
        if r.status == RewardStatus::Approved && r.claim_deadline.is_some_and(|d| self.now() >= d) {
            r.status = RewardStatus::Expired;
        }
        Ok(r)
    }

    /// Rewards in scope matching `filter`.
    #[tracing::instrument(
        name = "vault.list_rewards",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
        )
    )]
    pub async fn list_rewards(
        &self,
        actor: &Actor,
        filter: &RewardFilter,
    ) -> Result<Vec<Reward>, DomainError> {
        self.require_role(
            actor,
            &[Role::CaseSystem, Role::Finance, Role::Auditor],
            "list rewards",
        )
        .await?;
        let scope = filter.jurisdiction.unwrap_or(actor.principal.jurisdiction);
        if !actor.principal.jurisdiction.covers(&scope) {
            return Err(DomainError::invalid(
                "jurisdiction",
                "outside the caller's jurisdiction",
            ));
        }
        let from = filter.from.map(|d| d.midnight().assume_offset(CST));
        // The end of the `to` day; none past the calendar's end.
        let to = filter
            .to
            .and_then(|d| d.next_day())
            .map(|d| d.midnight().assume_offset(CST));
        let all = self
            .deps
            .store
            .read()
            .await?
            .rewards_between(from, to)
            .await?;
        let now = self.now();
        Ok(all
            .into_iter()
            .filter(|r| scope.covers(&r.jurisdiction))
            .map(|mut r| {
                // The same view as GET: an approved reward past its deadline is expired,
                // whether or not the job has run yet.
                if r.status == RewardStatus::Approved && r.claim_deadline.is_some_and(|d| now >= d)
                {
                    r.status = RewardStatus::Expired;
                }
                r
            })
            .filter(|r| filter.status.is_none_or(|s| s == r.status))
            .collect())
    }

    /// A finance approval; the last one needed approves the reward, notifies the reporter
    /// and opens the claim window.
    #[tracing::instrument(
        name = "vault.approve_reward",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            reward_id = crate::obs::id_field(id, "rwd"),
        )
    )]
    pub async fn approve_reward(&self, actor: &Actor, id: &str) -> Result<Reward, DomainError> {
        self.require_role(actor, &[Role::Finance], "approve rewards")
            .await?;
        let mut r = self.reward_in_scope(actor, id, "approve rewards").await?;
        if r.status != RewardStatus::PendingApproval {
            return Err(self.wrong_state(actor, &r, "approve rewards").await);
        }
        let ev = self.reward_event(actor, &r, Action::RewardApproved);
        if r.filed_by == actor.principal.id {
            return Err(self
                .conflict(
                    actor,
                    "approve rewards",
                    ev,
                    "own_filing",
                    "the filer cannot approve".into(),
                )
                .await);
        }
        if r.approvals
            .iter()
            .any(|a| a.principal_id == actor.principal.id)
        {
            return Err(self
                .conflict(
                    actor,
                    "approve rewards",
                    ev,
                    "already_approved",
                    "this officer has already approved; a second, different officer must".into(),
                )
                .await);
        }
        let expected = r.version;
        let now = self.now();
        r.approvals.push(Approval {
            principal_id: actor.principal.id.clone(),
            at: now,
        });
        let mut messages = Vec::new();
        if u32::try_from(r.approvals.len()).unwrap_or(u32::MAX) >= r.approvals_required {
            let days = self
                .deps
                .policies
                .get(&r.policy_id)
                .and_then(|p| p.claim_days())
                .unwrap_or(self.settlement().default_claim_days);
            let deadline = claim_deadline(now, days);
            r.status = RewardStatus::Approved;
            r.notice_at = Some(now);
            r.claim_deadline = Some(deadline);
            let last_day = (deadline - time::Duration::days(1)).to_offset(CST).date();
            for a in r
                .awards
                .iter()
                .filter(|a| a.amount > Decimal::ZERO && !a.anonymous)
            {
                messages.push(OutboxMessage {
                    id: self.new_id("msg")?,
                    pseudonym: a.pseudonym.clone(),
                    reporter_id: a.reporter_id.clone(),
                    kind: MessageKind::RewardNotice,
                    body: format!(
                        "您的举报奖励 {:.2} 元已批准，请于 {} 24:00 前申领。",
                        a.amount, last_day
                    ),
                    created_at: now,
                    attempts: 0,
                    next_attempt_at: now,
                });
            }
        }
        r.version += 1;
        let ev = self.reward_event(actor, &r, Action::RewardApproved);
        self.save_transition(actor, &r, expected, ev, messages)
            .await?;
        Ok(r)
    }

    /// Finance rejects a pending reward.
    #[tracing::instrument(
        name = "vault.reject_reward",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            reward_id = crate::obs::id_field(id, "rwd"),
        )
    )]
    pub async fn reject_reward(
        &self,
        actor: &Actor,
        id: &str,
        reason: &str,
    ) -> Result<Reward, DomainError> {
        self.require_role(actor, &[Role::Finance], "reject rewards")
            .await?;
        let reason = reason.trim();
        if reason.chars().count() < 2 || reason.chars().count() > 2000 {
            return Err(DomainError::invalid("reason", "must be 2–2000 characters"));
        }
        let mut r = self.reward_in_scope(actor, id, "reject rewards").await?;
        if r.status != RewardStatus::PendingApproval {
            return Err(self.wrong_state(actor, &r, "reject rewards").await);
        }
        let expected = r.version;
        r.status = RewardStatus::Rejected;
        r.rejection_reason = Some(reason.to_owned());
        r.version += 1;
        let ev = self.reward_event(actor, &r, Action::RewardRejected);
        self.save_transition(actor, &r, expected, ev, Vec::new())
            .await?;
        Ok(r)
    }

    /// The filer withdraws a reward before any decision (filed in error, outcome overturned).
    #[tracing::instrument(
        name = "vault.cancel_reward",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            reward_id = crate::obs::id_field(id, "rwd"),
        )
    )]
    pub async fn cancel_reward(
        &self,
        actor: &Actor,
        id: &str,
        reason: &str,
    ) -> Result<Reward, DomainError> {
        self.require_role(actor, &[Role::CaseSystem], "cancel rewards")
            .await?;
        let reason = reason.trim();
        if reason.chars().count() < 2 || reason.chars().count() > 2000 {
            return Err(DomainError::invalid("reason", "must be 2–2000 characters"));
        }
        let mut r = self.reward_in_scope(actor, id, "cancel rewards").await?;
        if r.status != RewardStatus::PendingApproval {
            return Err(self.wrong_state(actor, &r, "cancel rewards").await);
        }
        let expected = r.version;
        r.status = RewardStatus::Cancelled;
        r.rejection_reason = Some(reason.to_owned());
        r.version += 1;
        let ev = self.reward_event(actor, &r, Action::RewardCancelled);
        self.save_transition(actor, &r, expected, ev, Vec::new())
            .await?;
        Ok(r)
    }

    /// Finance extends the claim window (also reopens an expired reward).
    #[tracing::instrument(
        name = "vault.extend_reward",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            reward_id = crate::obs::id_field(id, "rwd"),
            days = days,
        )
    )]
    pub async fn extend_reward(
        &self,
        actor: &Actor,
        id: &str,
        days: u32,
        reason: &str,
    ) -> Result<Reward, DomainError> {
        self.require_role(actor, &[Role::Finance], "extend claim windows")
            .await?;
        if !(1..=365).contains(&days) {
            return Err(DomainError::invalid("days", "must be 1–365"));
        }
        let reason = reason.trim();
        if reason.chars().count() < 2 || reason.chars().count() > 2000 {
            return Err(DomainError::invalid("reason", "must be 2–2000 characters"));
        }
        let mut r = self
            .reward_in_scope(actor, id, "extend claim windows")
            .await?;
        if !matches!(r.status, RewardStatus::Approved | RewardStatus::Expired) {
            return Err(self.wrong_state(actor, &r, "extend claim windows").await);
        }
        let expected = r.version;
        let now = self.now();
        // A window still open is extended from its end; a closed one (whether or not the job
        // has marked it expired) from the end of today, so deadlines stay at 24:00 CST.
        let base = if self.shown_status(&r) == RewardStatus::Expired {
            claim_deadline(now, 0)
        } else {
            r.claim_deadline.unwrap_or_else(|| claim_deadline(now, 0))
        };
        r.claim_deadline = Some(base + time::Duration::days(i64::from(days)));
        r.status = RewardStatus::Approved;
        r.extensions.push(Extension {
            days,
            reason: reason.to_owned(),
            principal_id: actor.principal.id.clone(),
            at: now,
        });
        r.version += 1;
        let ev = self
            .reward_event(actor, &r, Action::RewardExtended)
            .with_detail("days", days.to_string());
        self.save_transition(actor, &r, expected, ev, Vec::new())
            .await?;
        Ok(r)
    }

    /// A claim: by the case system for a real-name reporter whose ID it checked, or with an
    /// anonymous reporter's claim code (attempts rate limited per reward).
    #[tracing::instrument(
        name = "vault.claim_reward",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            reward_id = crate::obs::id_field(id, "rwd"),
            by_claim_code = matches!(by, ClaimBy::ClaimCode(_)),
        )
    )]
    pub async fn claim_reward(
        &self,
        actor: &Actor,
        id: &str,
        by: ClaimBy,
    ) -> Result<Reward, DomainError> {
        self.require_role(actor, &[Role::CaseSystem], "claim rewards")
            .await?;
        let mut r = self.reward_in_scope(actor, id, "claim rewards").await?;
        let now = self.now();
        let closed = r.claim_deadline.is_some_and(|d| now >= d);
        if r.status == RewardStatus::Expired || (r.status == RewardStatus::Approved && closed) {
            let ev = self.reward_event(actor, &r, Action::RewardClaimed);
            return Err(self
                .conflict(
                    actor,
                    "claim rewards",
                    ev,
                    "claim_window_closed",
                    "the claim window has closed; finance may extend it".into(),
                )
                .await);
        }
        if r.status != RewardStatus::Approved {
            return Err(self.wrong_state(actor, &r, "claim rewards").await);
        }
        let idx = match &by {
            ClaimBy::Pseudonym(p) => r
                .awards
                .iter()
                .position(|a| &a.pseudonym == p && a.amount > Decimal::ZERO && !a.anonymous)
                .ok_or_else(|| {
                    DomainError::invalid(
                        "pseudonym",
                        "not a real-name awarded report of this reward",
                    )
                })?,
            ClaimBy::ClaimCode(code) => {
                if !self.claim_limiter.allow(&r.id, now) {
                    let ev = self.reward_event(actor, &r, Action::RewardClaimed);
                    self.record_denial(actor, "claim rewards", ev, "rate_limited")
                        .await;
                    return Err(DomainError::RateLimited);
                }
                let normalized = vault_crypto::claim::normalize_claim_code(code)
                    .ok_or_else(|| DomainError::invalid("claim_code", "not a claim code"))?;
                let normalized = Zeroizing::new(normalized);
                let mut repo = self.deps.store.read().await?;
                let mut found = None;
                for (i, a) in r.awards.iter().enumerate() {
                    if !a.anonymous || a.amount <= Decimal::ZERO {
                        continue;
                    }
                    if let Some(rec) = repo.reporter(&a.reporter_id).await?
                        && let Some(hash) = rec.claim_code_hash
                        && crate::blocking::run(|| {
                            vault_crypto::claim::verify_claim_code(&normalized, &hash)
                        })
                    {
                        found = Some(i);
                        break;
                    }
                }
                drop(repo);
                match found {
                    Some(i) => i,
                    None => {
                        let ev = self.reward_event(actor, &r, Action::RewardClaimed);
                        self.record_denial(actor, "claim rewards", ev, "wrong_claim_code")
                            .await;
                        return Err(DomainError::invalid(
                            "claim_code",
                            "does not match an award of this reward",
                        ));
                    }
                }
            }
        };
        let expected = r.version;
        let Some(award) = r.awards.get_mut(idx) else {
            return Err(DomainError::NotFound { what: "award" });
        };
        if award.claimed_at.is_some() {
            let ev = self.reward_event(actor, &r, Action::RewardClaimed);
            return Err(self
                .conflict(
                    actor,
                    "claim rewards",
                    ev,
                    "already_claimed",
                    "this award has already been claimed".into(),
                )
                .await);
        }
        award.claimed_at = Some(now);
        let pseudonym = award.pseudonym.clone();
        if r.awards
            .iter()
            .filter(|a| a.amount > Decimal::ZERO)
            .all(|a| a.claimed_at.is_some())
        {
            r.status = RewardStatus::Claimed;
        }
        r.version += 1;
        let mut ev = self.reward_event(actor, &r, Action::RewardClaimed);
        ev.pseudonym = Some(pseudonym);
        self.save_transition(actor, &r, expected, ev, Vec::new())
            .await?;
        Ok(r)
    }

    /// Finance receives the payee details of a claimed reward: name, bank account and bank
    /// name only. The release, with a keyed MAC of every value, is committed to the access
    /// trail before the caller gets any byte.
    #[tracing::instrument(
        name = "vault.release_payee",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            reward_id = crate::obs::id_field(id, "rwd"),
        )
    )]
    pub async fn release_payee(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<OpenedDisclosure, DomainError> {
        self.require_role(actor, &[Role::Finance], "read payee details")
            .await?;
        let r = self
            .reward_in_scope(actor, id, "read payee details")
            .await?;
        if r.status != RewardStatus::Claimed {
            return Err(self.wrong_state(actor, &r, "read payee details").await);
        }
        let fields = [
            IdentityField::Name,
            IdentityField::BankAccount,
            IdentityField::BankName,
        ];
        // One event per payee, bound to its vault record, so leak traces and the reporter's
        // receipt both find the release.
        let mut events = Vec::new();
        let mut body = Zeroizing::new(Vec::with_capacity(256));
        body.extend_from_slice(b"{\"reward_id\":");
        crate::vault::write_json_str(&mut body, &r.id);
        body.extend_from_slice(b",\"payees\":[");
        let mut repo = self.deps.store.read().await?;
        let mut first = true;
        for a in r.awards.iter().filter(|a| a.amount > Decimal::ZERO) {
            let mut ev = self.reward_event(actor, &r, Action::PayeeReleased);
            ev.purpose = Some("reward_payment".into());
            ev.pseudonym = Some(a.pseudonym.clone());
            ev.record = Some(a.reporter_id.clone());
            if !first {
                body.push(b',');
            }
            first = false;
            body.extend_from_slice(b"{\"pseudonym\":");
            crate::vault::write_json_str(&mut body, &a.pseudonym);
            body.extend_from_slice(format!(",\"amount\":\"{:.2}\"", a.amount).as_bytes());
            let rec = repo
                .reporter(&a.reporter_id)
                .await?
                .ok_or(DomainError::Integrity)?;
            let identity = match &rec.envelope {
                Some(env) => {
                    let plain = self
                        .deps
                        .keys
                        .open(&rec.id, &rec.jurisdiction.to_string(), env)
                        .map_err(key_err)?;
                    IdentityFields::from_plaintext(&plain).ok_or(DomainError::Integrity)?
                }
                None => IdentityFields::default(),
            };
            body.extend_from_slice(format!(",\"anonymous\":{}", a.anonymous).as_bytes());
            for f in fields {
                body.push(b',');
                crate::vault::write_json_str(&mut body, f.as_str());
                body.push(b':');
                match identity.get(f) {
                    Some(v) => {
                        crate::vault::write_json_str(&mut body, v);
                        let mac = self.deps.keys.field_mac(f.as_str(), v).map_err(key_err)?;
                        ev.disclosed.push(FieldMac {
                            field: f,
                            mac: hex::encode(mac),
                        });
                    }
                    None => body.extend_from_slice(b"null"),
                }
            }
            body.push(b'}');
            events.push(ev);
        }
        drop(repo);
        body.extend_from_slice(b"]}");
        let out = match &actor.principal.age_recipient {
            Some(rcpt) => OpenedDisclosure::Age(
                vault_crypto::agefmt::encrypt_to_recipient(rcpt, &body)
                    .map_err(|_| DomainError::KeyringUnavailable("age encryption failed".into()))?,
            ),
            None => OpenedDisclosure::Json(body),
        };
        let mut tx = self.deps.store.begin().await?;
        for ev in &events {
            tx.append_event(ev).await.map_err(audit_err)?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records the payment; the amount must equal the approved amount, and a reward is paid
    /// once.
    #[tracing::instrument(
        name = "vault.pay_reward",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            reward_id = crate::obs::id_field(id, "rwd"),
        )
    )]
    pub async fn pay_reward(
        &self,
        actor: &Actor,
        id: &str,
        payment_ref: &str,
        amount: Money,
        paid_on: Date,
    ) -> Result<Reward, DomainError> {
        self.require_role(actor, &[Role::Finance], "record payments")
            .await?;
        let payment_ref = payment_ref.trim();
        if payment_ref.is_empty() || payment_ref.chars().count() > 100 {
            return Err(DomainError::invalid(
                "payment_ref",
                "must be 1–100 characters",
            ));
        }
        let mut r = self.reward_in_scope(actor, id, "record payments").await?;
        if r.status == RewardStatus::Paid {
            let ev = self.reward_event(actor, &r, Action::RewardPaid);
            return Err(self
                .conflict(
                    actor,
                    "record payments",
                    ev,
                    "already_paid",
                    "the reward has already been paid".into(),
                )
                .await);
        }
        if r.status != RewardStatus::Claimed {
            return Err(self.wrong_state(actor, &r, "record payments").await);
        }
        if amount.as_decimal() != r.amount {
            return Err(DomainError::Unprocessable {
                code: "amount_mismatch",
                field: Some("amount".into()),
                message: format!("the payment must equal the approved amount {:.2}", r.amount),
            });
        }
        let expected = r.version;
        r.status = RewardStatus::Paid;
        r.payment = Some(Payment {
            payment_ref: payment_ref.to_owned(),
            amount: r.amount,
            paid_on: paid_on.to_string(),
            recorded_by: actor.principal.id.clone(),
            at: self.now(),
        });
        r.version += 1;
        let ev = self.reward_event(actor, &r, Action::RewardPaid);
        self.save_transition(actor, &r, expected, ev, Vec::new())
            .await?;
        Ok(r)
    }

    /// Moves approved rewards whose window has closed to `expired` (the job).
    pub async fn expire_rewards(&self) -> Result<usize, DomainError> {
        let now = self.now();
        let due = self
            .deps
            .store
            .read()
            .await?
            .rewards_due_to_expire(now)
            .await?;
        let mut n = 0;
        for mut r in due {
            let expected = r.version;
            r.status = RewardStatus::Expired;
            r.version += 1;
            let mut ev = NewEvent::system(Action::RewardExpired, now)
                .with_detail("status", r.status.as_str());
            ev.target = Some(r.id.clone());
            ev.jurisdiction = Some(r.jurisdiction.to_string());
            let mut tx = self.deps.store.begin().await?;
            if tx.update_reward(&r, expected).await? {
                tx.append_event(&ev).await.map_err(audit_err)?;
                tx.commit().await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Counts and sums by jurisdiction, outcome kind or industry; a group with fewer than 3
    /// distinct reporters is suppressed, so statistics never single a reporter out.
    #[tracing::instrument(
        name = "vault.reward_stats",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
        )
    )]
    pub async fn reward_stats(
        &self,
        actor: &Actor,
        group_by: &str,
        from: Option<Date>,
        to: Option<Date>,
    ) -> Result<Vec<StatGroup>, DomainError> {
        self.require_role(actor, &[Role::Auditor, Role::Finance], "read statistics")
            .await?;
        if !matches!(group_by, "jurisdiction" | "outcome_kind" | "industry") {
            return Err(DomainError::invalid(
                "group_by",
                "must be jurisdiction, outcome_kind or industry",
            ));
        }
        let filter = RewardFilter {
            from,
            to,
            ..RewardFilter::default()
        };
        let mut groups: BTreeMap<String, (u64, Decimal, std::collections::BTreeSet<String>)> =
            BTreeMap::new();
        for r in self.list_rewards(actor, &filter).await? {
            if matches!(r.status, RewardStatus::Rejected | RewardStatus::Cancelled) {
                continue;
            }
            let key = match group_by {
                "jurisdiction" => r.jurisdiction.to_string(),
                "outcome_kind" => kind_str(r.input.outcome.kind).to_owned(),
                _ => serde_json::to_value(r.input.industry)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            };
            let g = groups.entry(key).or_default();
            g.0 += 1;
            g.1 += r.amount;
            for a in r.awards.iter().filter(|a| a.amount > Decimal::ZERO) {
                g.2.insert(a.reporter_id.clone());
            }
        }
        Ok(groups
            .into_iter()
            .map(|(key, (count, sum, reporters))| StatGroup {
                key,
                count_sum: (reporters.len() >= 3).then_some((count, sum)),
            })
            .collect())
    }
}

/// The outcome kind's wire name.
pub fn kind_str(kind: OutcomeKind) -> &'static str {
    match serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
    {
        Some(s) => match s.as_str() {
            "major_hazard" => "major_hazard",
            "illegal_production" => "illegal_production",
            "violation" => "violation",
            "concealed_accident" => "concealed_accident",
            "general_hazard" => "general_hazard",
            _ => "other",
        },
        None => "other",
    }
}

/// RFC 3339 (CST) of an optional instant.
pub fn opt_time(t: Option<OffsetDateTime>) -> Option<String> {
    t.map(rfc3339_cst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_window_ends_at_midnight_cst_of_the_last_day_notice_day_not_counted() {
        // Notice 2026-11-20 15:00 CST, 60 days: last day 2027-01-19, closes 2027-01-20 00:00 CST.
        let notice = time::macros::datetime!(2026-11-20 15:00 +08:00);
        let d = claim_deadline(notice, 60);
        assert_eq!(d, time::macros::datetime!(2027-01-20 00:00 +08:00));
        // A notice late in the UTC day that is already the next day in CST.
        let notice = time::macros::datetime!(2026-11-20 17:30 UTC); // 01:30 CST on the 21st
        assert_eq!(
            claim_deadline(notice, 1),
            time::macros::datetime!(2026-11-23 00:00 +08:00)
        );
    }

    #[test]
    fn status_names_round_trip() {
        for s in [
            RewardStatus::PendingApproval,
            RewardStatus::Approved,
            RewardStatus::Claimed,
            RewardStatus::Paid,
            RewardStatus::Rejected,
            RewardStatus::Expired,
            RewardStatus::Cancelled,
        ] {
            assert_eq!(RewardStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(RewardStatus::parse("lost"), None);
    }
}

impl Vault {
    /// The first answer to a request repeated with the same Idempotency-Key, if any. The same
    /// key with a different body is refused: a key names one request.
    #[tracing::instrument(
        name = "vault.idempotent_replay",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
        )
    )]
    pub async fn idempotent_replay(
        &self,
        actor: &Actor,
        key: &str,
        request_hash: &str,
    ) -> Result<Option<(u16, String)>, DomainError> {
        let found = self
            .deps
            .store
            .read()
            .await?
            .idempotent_answer(&actor.principal.id, key)
            .await?;
        match found {
            Some((hash, status, body)) if hash == request_hash => Ok(Some((status, body))),
            Some(_) => Err(DomainError::Unprocessable {
                code: "idempotency_key_reused",
                field: Some("Idempotency-Key".into()),
                message: "this Idempotency-Key was used with a different request body".into(),
            }),
            None => Ok(None),
        }
    }

    /// Remembers the answer to a request made with an Idempotency-Key.
    #[tracing::instrument(
        name = "vault.idempotent_remember",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            status = status,
        )
    )]
    pub async fn idempotent_remember(
        &self,
        actor: &Actor,
        key: &str,
        request_hash: &str,
        status: u16,
        body: &str,
    ) -> Result<(), DomainError> {
        let mut tx = self.deps.store.begin().await?;
        tx.store_idempotent_answer(
            &actor.principal.id,
            key,
            request_hash,
            status,
            body,
            self.now(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Rewards that need someone's attention (督办).
#[derive(Debug, Clone, Default)]
pub struct Oversight {
    /// Approved rewards whose claim window closes within the horizon.
    pub closing: Vec<Reward>,
    /// Rewards waiting for finance approval longer than the limit.
    pub stale_approvals: Vec<Reward>,
}

impl Vault {
    /// Claim windows closing within `within_days`, and approvals waiting more than
    /// `waiting_days`, in the caller's scope.
    #[tracing::instrument(
        name = "vault.reward_oversight",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
        )
    )]
    pub async fn reward_oversight(
        &self,
        actor: &Actor,
        within_days: u32,
        waiting_days: u32,
    ) -> Result<Oversight, DomainError> {
        self.require_role(
            actor,
            &[Role::Finance, Role::Auditor],
            "read oversight lists",
        )
        .await?;
        if within_days > 3650 {
            return Err(DomainError::invalid("within_days", "must be at most 3650"));
        }
        if waiting_days > 3650 {
            return Err(DomainError::invalid("waiting_days", "must be at most 3650"));
        }
        let now = self.now();
        let horizon = now + time::Duration::days(i64::from(within_days));
        let stale_before = now - time::Duration::days(i64::from(waiting_days));
        let mut out = Oversight::default();
        for r in self.list_rewards(actor, &RewardFilter::default()).await? {
            match r.status {
                RewardStatus::Approved
                    if r.claim_deadline.is_some_and(|d| d > now && d <= horizon) =>
                {
                    out.closing.push(r)
                }
                RewardStatus::PendingApproval if r.created_at <= stale_before => {
                    out.stale_approvals.push(r)
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Figures for `/metrics`: no identifiers, only counts.
#[derive(Debug, Clone, Default)]
pub struct SettlementGauges {
    /// Rewards per status (as callers see it).
    pub by_status: BTreeMap<&'static str, u64>,
    /// Approved rewards whose claim window closes within 7 days.
    pub closing_within_7_days: u64,
    /// Rewards waiting for approval more than 15 days.
    pub approvals_waiting_over_15_days: u64,
}

impl Vault {
    /// Counts for the metrics endpoint (system-wide; no record is named).
    pub async fn settlement_gauges(&self) -> Result<SettlementGauges, DomainError> {
        let now = self.now();
        let all = self
            .deps
            .store
            .read()
            .await?
            .rewards_between(None, None)
            .await?;
        let mut g = SettlementGauges::default();
        for r in &all {
            let shown = self.shown_status(r);
            *g.by_status.entry(shown.as_str()).or_default() += 1;
            if shown == RewardStatus::Approved
                && r.claim_deadline
                    .is_some_and(|d| d <= now + time::Duration::days(7))
            {
                g.closing_within_7_days += 1;
            }
            if r.status == RewardStatus::PendingApproval
                && r.created_at <= now - time::Duration::days(15)
            {
                g.approvals_waiting_over_15_days += 1;
            }
        }
        Ok(g)
    }
}

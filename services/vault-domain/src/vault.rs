//! The use cases. Each public method is one thing a caller can ask for: it checks the role
//! and the jurisdiction scope, does the work in one transaction with its access-trail event,
//! and returns. Refused attempts by an authenticated caller are themselves events.

use std::sync::Arc;

use secrecy::SecretString;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::audit::{Action, Event, FieldMac, NewEvent};
use crate::clock::Clock;
use crate::error::DomainError;
use crate::identity::{Identity, IdentityFields};
use crate::model::{
    Actor, Decision, Disclosure, DisclosureStatus, OutboxMessage, Principal, PseudonymOrigin,
    PseudonymRecord, PseudonymStatus, ReporterRecord,
};
use crate::ports::{
    Delivery, KeyError, KeyProvider, Notifier, RandomSource, Store, StoreError, UnitOp,
    UnitOutcome, UnitRefusal, WriteUnit,
};
use crate::values::{CaseRef, Channel, IdentityField, Jurisdiction, MessageKind, Purpose, Role};

/// How many distinct custodians must approve a disclosure, per purpose.
#[derive(Debug, Clone, Copy)]
pub struct DisclosureConfig {
    /// `verification_contact`.
    pub verification_contact: u32,
    /// `reward_payment`.
    pub reward_payment: u32,
    /// `judicial_transfer`.
    pub judicial_transfer: u32,
    /// `false_accusation`.
    pub false_accusation: u32,
}

impl Default for DisclosureConfig {
    /// One custodian, and two where the identity leaves the department for good
    /// (judicial transfer, false-accusation proceedings).
    fn default() -> Self {
        Self {
            verification_contact: 1,
            reward_payment: 1,
            judicial_transfer: 2,
            false_accusation: 2,
        }
    }
}

impl DisclosureConfig {
    /// Custodians required for `purpose`.
    pub fn required(&self, purpose: Purpose) -> u32 {
        match purpose {
            Purpose::VerificationContact => self.verification_contact,
            Purpose::RewardPayment => self.reward_payment,
            Purpose::JudicialTransfer => self.judicial_transfer,
            Purpose::FalseAccusation => self.false_accusation,
        }
    }
}

/// What the vault needs from the outside.
#[derive(Clone)]
pub struct VaultDeps {
    /// Records and the access trail.
    pub store: Arc<dyn Store>,
    /// Envelopes, blind indexes, MACs.
    pub keys: Arc<dyn KeyProvider>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Randomness.
    pub rng: Arc<dyn RandomSource>,
    /// Disclosure quorum.
    pub disclosure: DisclosureConfig,
    /// Leak traces allowed per auditor per minute.
    pub leak_traces_per_minute: u32,
    /// The loaded reward policies.
    pub policies: Arc<vault_policy::PolicySet>,
    /// Reward settlement defaults.
    pub settlement: crate::settlement::SettlementConfig,
    /// Key lifecycle, erasure and retention settings.
    pub lifecycle: crate::lifecycle::LifecycleConfig,
    /// Where erasures are recorded outside the database; erasure refuses without one.
    pub erasure_ledger: Option<Arc<dyn crate::lifecycle::ErasureLedger>>,
    /// How long an authenticated token is remembered (zero: not at all). A revocation made
    /// on another replica would take effect here only within this time, so the service sets
    /// it only for the one-process SQLite store unless the operator asks.
    pub auth_cache_ttl: time::Duration,
}

/// The identity vault.
#[derive(Clone)]
pub struct Vault {
    pub(crate) deps: VaultDeps,
    pub(crate) leak_limiter: Arc<crate::ratelimit::RateLimiter>,
    pub(crate) claim_limiter: Arc<crate::ratelimit::RateLimiter>,
    pub(crate) disclosure_limiter: Arc<crate::ratelimit::RateLimiter>,
    auth_cache: Arc<crate::authcache::AuthCache>,
}

/// A seal request, every field parsed.
pub struct SealRequest {
    /// Where the case sits.
    pub jurisdiction: Jurisdiction,
    /// The case.
    pub case_ref: CaseRef,
    /// When the report came in.
    pub received_at: OffsetDateTime,
    /// How.
    pub channel: Channel,
    /// Reporter works for the reported unit.
    pub employee_of_reported_unit: bool,
    /// `None` for an anonymous report.
    pub identity: Option<Identity>,
}

/// What sealing answers.
pub struct SealOutcome {
    /// The new pseudonym.
    pub pseudonym: PseudonymRecord,
    /// An earlier report of the same person exists within the caller's scope.
    pub reporter_seen_before: bool,
    /// Case refs of those earlier reports, oldest first, distinct.
    pub prior_case_refs: Vec<String>,
    /// For anonymous reports: the claim code, shown once.
    pub claim_code: Option<SecretString>,
}

/// A disclosure request, parsed.
pub struct DisclosureRequest {
    /// About whom.
    pub pseudonym: String,
    /// Why.
    pub purpose: Purpose,
    /// In words (10–2000 characters).
    pub justification: String,
    /// Which fields (non-empty, distinct).
    pub fields: Vec<IdentityField>,
}

/// An opened disclosure, ready to send.
pub enum OpenedDisclosure {
    /// `application/json`.
    Json(Zeroizing<Vec<u8>>),
    /// `application/age`, encrypted to the requester's recipient.
    Age(Vec<u8>),
}

/// A principal just created, with its token (shown once).
pub struct CreatedPrincipal {
    /// The record.
    pub principal: Principal,
    /// The bearer token.
    pub token: vault_crypto::token::Token,
}

const MAX_BODY_CHARS: usize = 2000;
const MESSAGE_MAX_ATTEMPTS: u32 = 10;

pub(crate) fn key_err(e: KeyError) -> DomainError {
    match e {
        KeyError::Integrity => DomainError::Integrity,
        KeyError::Unavailable(m) => DomainError::KeyringUnavailable(m),
        KeyError::Refused(m) => DomainError::conflict("key_lifecycle", m),
    }
}

fn rng_err(_: vault_crypto::CryptoError) -> DomainError {
    DomainError::KeyringUnavailable("random source failed".into())
}

/// The `reporter_sealed` event of a new pseudonym.
fn seal_event(actor: &Actor, p: &PseudonymRecord, now: OffsetDateTime) -> NewEvent {
    let mut ev = NewEvent::by(actor, Action::ReporterSealed, now)
        .with_detail("channel", p.channel.as_str())
        .with_detail("anonymous", if p.anonymous { "true" } else { "false" });
    ev.jurisdiction = Some(p.jurisdiction.to_string());
    ev.pseudonym = Some(p.pseudonym.clone());
    ev.record = Some(p.reporter_id.clone());
    ev
}

fn retired_beyond_reload() -> DomainError {
    DomainError::KeyringUnavailable(
        "the key version in use was retired and no newer one could be loaded".into(),
    )
}

pub(crate) fn audit_err(e: StoreError) -> DomainError {
    DomainError::AuditUnavailable(e)
}

/// Text fields that are neither identity data nor free of limits.
pub(crate) fn check_text(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<String, DomainError> {
    let trimmed = value.trim();
    let n = trimmed.chars().count();
    if n < min || n > max {
        return Err(DomainError::invalid(
            field,
            format!("must be {min}–{max} characters"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(DomainError::invalid(field, "contains control characters"));
    }
    Ok(trimmed.to_owned())
}

impl Vault {
    /// A vault over `deps`.
    pub fn new(deps: VaultDeps) -> Self {
        let leak_limiter = Arc::new(crate::ratelimit::RateLimiter::new(
            deps.leak_traces_per_minute.max(1),
            time::Duration::minutes(1),
        ));
        // Claim codes carry 100 bits, but Argon2 makes each guess cost the server: a handful
        // of attempts per reward per ten minutes is plenty for a reporter typing one.
        let claim_limiter = Arc::new(crate::ratelimit::RateLimiter::new(
            5,
            time::Duration::minutes(10),
        ));
        // Disclosure requests per requesting principal: a compromised case-system token
        // cannot queue requests for a whole register in one go.
        let disclosure_limiter = Arc::new(crate::ratelimit::RateLimiter::new(
            deps.lifecycle.disclosure_requests_per_minute.max(1),
            time::Duration::minutes(1),
        ));
        let auth_cache = Arc::new(crate::authcache::AuthCache::new(deps.auth_cache_ttl));
        Self {
            deps,
            leak_limiter,
            claim_limiter,
            disclosure_limiter,
            auth_cache,
        }
    }

    /// The store (for readiness checks and jobs in the service).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.deps.store
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.deps.clock.now()
    }

    pub(crate) fn new_id(&self, prefix: &str) -> Result<String, DomainError> {
        vault_crypto::ids::new_id(self.deps.rng.as_ref(), prefix).map_err(rng_err)
    }

    // ---------------------------------------------------------------- access control

    /// Appends a refusal in its own transaction. The refusal stands even if the trail is
    /// down (fail closed); that failure goes to the log.
    pub(crate) async fn record_denial(
        &self,
        actor: &Actor,
        attempted: &'static str,
        event: NewEvent,
        reason: &str,
    ) {
        let mut ev = event;
        ev.action = Some(Action::AccessDenied);
        ev.denied = true;
        ev.reason = Some(reason.to_owned());
        ev.detail.insert("attempted".into(), attempted.into());
        let result = async {
            let mut tx = self.deps.store.begin().await?;
            tx.append_event(&ev).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, principal = %actor.principal.id, attempted, "could not record a denied attempt");
        }
    }

    /// Refuses a role not in `roles` (403), recording the attempt.
    pub(crate) async fn require_role(
        &self,
        actor: &Actor,
        roles: &[Role],
        attempted: &'static str,
    ) -> Result<(), DomainError> {
        if roles.contains(&actor.principal.role) {
            return Ok(());
        }
        let ev = NewEvent::by(actor, Action::AccessDenied, self.now());
        self.record_denial(actor, attempted, ev, "role").await;
        Err(DomainError::Forbidden {
            role: actor.principal.role.as_str(),
            action: attempted,
        })
    }

    /// Refuses a record outside the caller's scope as if it did not exist (404), recording
    /// the attempt with what was reached for.
    pub(crate) async fn require_scope(
        &self,
        actor: &Actor,
        jurisdiction: Jurisdiction,
        what: &'static str,
        attempted: &'static str,
        mut ev: NewEvent,
    ) -> Result<(), DomainError> {
        if actor.principal.jurisdiction.covers(&jurisdiction) {
            return Ok(());
        }
        ev.jurisdiction = Some(jurisdiction.to_string());
        self.record_denial(actor, attempted, ev, "out_of_scope")
            .await;
        Err(DomainError::NotFound { what })
    }

    /// Records a refused state transition and returns the conflict.
    pub(crate) async fn conflict(
        &self,
        actor: &Actor,
        attempted: &'static str,
        ev: NewEvent,
        code: &'static str,
        message: String,
    ) -> DomainError {
        self.record_denial(actor, attempted, ev, code).await;
        DomainError::conflict(code, message)
    }

    // ---------------------------------------------------------------- principals

    /// The principal a bearer token belongs to. Unknown and revoked tokens are the same 401.
    #[tracing::instrument(name = "vault.authenticate", skip_all)]
    pub async fn authenticate(&self, token: &str) -> Result<Principal, DomainError> {
        let hash = vault_crypto::token::hash_token(token);
        let now = self.now();
        if let Some(p) = self.auth_cache.get(&hash, now) {
            return Ok(p);
        }
        let generation = self.auth_cache.generation();
        let mut repo = self.deps.store.read().await?;
        match repo.principal_by_token_hash(&hash).await? {
            Some((p, stored)) if vault_crypto::token::hashes_equal(&hash, &stored) => {
                if p.revoked_at.is_some() {
                    Err(DomainError::Unauthenticated)
                } else {
                    self.auth_cache.put(hash, &p, now, generation);
                    Ok(p)
                }
            }
            _ => Err(DomainError::Unauthenticated),
        }
    }

    fn build_principal(
        &self,
        name: &str,
        role: Role,
        jurisdiction: Jurisdiction,
        age_recipient: Option<&str>,
    ) -> Result<(Principal, vault_crypto::token::Token, [u8; 32]), DomainError> {
        let name = check_text("name", name, 1, 100)?;
        if let Some(r) = age_recipient {
            vault_crypto::agefmt::validate_recipient(r).map_err(|_| {
                DomainError::invalid("age_recipient", "not an age X25519 recipient (age1…)")
            })?;
        }
        let token = vault_crypto::token::generate_token(self.deps.rng.as_ref()).map_err(rng_err)?;
        let hash = vault_crypto::token::hash_token(token.expose_secret());
        let principal = Principal {
            id: self.new_id("prn")?,
            name,
            role,
            jurisdiction,
            // Stored in the canonical form (bech32: trimmed, lowercase).
            age_recipient: age_recipient.map(|r| r.trim().to_ascii_lowercase()),
            created_at: self.now(),
            revoked_at: None,
        };
        Ok((principal, token, hash))
    }

    /// On an empty store, creates the national admin and returns its token; otherwise `None`.
    #[tracing::instrument(name = "vault.bootstrap_admin", skip_all)]
    pub async fn bootstrap_admin(&self) -> Result<Option<CreatedPrincipal>, DomainError> {
        let mut tx = self.deps.store.begin().await?;
        if tx.principal_count().await? > 0 {
            return Ok(None);
        }
        let (principal, token, hash) =
            self.build_principal("admin", Role::Admin, Jurisdiction::NATIONAL, None)?;
        tx.insert_principal(&principal, &hash).await?;
        let now = self.now();
        tx.append_event(&NewEvent::system(Action::StoreInitialised, now))
            .await
            .map_err(audit_err)?;
        let mut ev = NewEvent::system(Action::PrincipalCreated, now)
            .with_detail("role", Role::Admin.as_str());
        ev.target = Some(principal.id.clone());
        ev.jurisdiction = Some(principal.jurisdiction.to_string());
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(Some(CreatedPrincipal { principal, token }))
    }

    /// Creates a principal. `actor` is `None` for the offline CLI (`principal add`), which
    /// runs with the operator's access to the data directory.
    #[tracing::instrument(
        name = "vault.create_principal",
        skip_all,
        fields(
            new_role = role.as_str(),
        )
    )]
    pub async fn create_principal(
        &self,
        actor: Option<&Actor>,
        name: &str,
        role: Role,
        jurisdiction: Jurisdiction,
        age_recipient: Option<&str>,
    ) -> Result<CreatedPrincipal, DomainError> {
        if let Some(actor) = actor {
            self.require_role(actor, &[Role::Admin], "create principals")
                .await?;
            if !actor.principal.jurisdiction.covers(&jurisdiction) {
                let ev = NewEvent::by(actor, Action::AccessDenied, self.now());
                self.record_denial(actor, "create principals", ev, "out_of_scope")
                    .await;
                return Err(DomainError::invalid(
                    "jurisdiction",
                    "outside the jurisdiction of the creating admin",
                ));
            }
        }
        let (principal, token, hash) =
            self.build_principal(name, role, jurisdiction, age_recipient)?;
        let now = self.now();
        let mut ev = match actor {
            Some(a) => NewEvent::by(a, Action::PrincipalCreated, now),
            None => NewEvent::system(Action::PrincipalCreated, now).with_detail("via", "cli"),
        }
        .with_detail("role", role.as_str());
        ev.target = Some(principal.id.clone());
        ev.jurisdiction = Some(jurisdiction.to_string());
        let mut tx = self.deps.store.begin().await?;
        tx.insert_principal(&principal, &hash).await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(CreatedPrincipal { principal, token })
    }

    /// Revokes a principal; its token stops working with the next request.
    #[tracing::instrument(
        name = "vault.revoke_principal",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            principal_id = crate::obs::id_field(id, "prn"),
        )
    )]
    pub async fn revoke_principal(&self, actor: &Actor, id: &str) -> Result<(), DomainError> {
        self.require_role(actor, &[Role::Admin], "revoke principals")
            .await?;
        let target = self
            .deps
            .store
            .read()
            .await?
            .principal(id)
            .await?
            .ok_or(DomainError::NotFound { what: "principal" })?;
        let mut ev = NewEvent::by(actor, Action::PrincipalRevoked, self.now());
        ev.target = Some(target.id.clone());
        ev.jurisdiction = Some(target.jurisdiction.to_string());
        self.require_scope(
            actor,
            target.jurisdiction,
            "principal",
            "revoke principals",
            ev.clone(),
        )
        .await?;
        let mut tx = self.deps.store.begin().await?;
        // Re-read under the write lock: the checks below must see the current state.
        let target = tx
            .principal(id)
            .await?
            .ok_or(DomainError::NotFound { what: "principal" })?;
        let refusal = if target.revoked_at.is_some() {
            Some(("already_revoked", "the principal is already revoked"))
        } else if target.role == Role::Admin && tx.active_admin_count().await? <= 1 {
            Some(("last_admin", "the last active admin cannot be revoked"))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            drop(tx);
            return Err(self
                .conflict(actor, "revoke principals", ev, code, message.into())
                .await);
        }
        tx.revoke_principal(id, self.now()).await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        self.auth_cache.forget_principal(id);
        Ok(())
    }

    // ---------------------------------------------------------------- identities

    /// Seals one reporter identity for one case and issues a pseudonym.
    #[tracing::instrument(
        name = "vault.seal",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            anonymous = req.identity.is_none(),
        )
    )]
    pub async fn seal(&self, actor: &Actor, req: SealRequest) -> Result<SealOutcome, DomainError> {
        self.require_role(actor, &[Role::CaseSystem], "seal identities")
            .await?;
        let now = self.now();
        if !actor.principal.jurisdiction.covers(&req.jurisdiction) {
            let mut ev = NewEvent::by(actor, Action::AccessDenied, now);
            ev.jurisdiction = Some(req.jurisdiction.to_string());
            self.record_denial(actor, "seal identities", ev, "out_of_scope")
                .await;
            return Err(DomainError::invalid(
                "jurisdiction",
                "outside the caller's jurisdiction",
            ));
        }
        if req.received_at > now + time::Duration::minutes(5) {
            return Err(DomainError::invalid("received_at", "is in the future"));
        }
        let rng = self.deps.rng.as_ref();
        let pseudonym = vault_crypto::ids::new_pseudonym(rng).map_err(rng_err)?;

        // Everything slow or fallible that needs no lock happens before the transaction:
        // the claim code's Argon2id hash, the blind index, the first envelope.
        let anonymous = req.identity.is_none();
        let (claim_code, claim_hash) = if anonymous {
            let code = vault_crypto::claim::generate_claim_code(rng).map_err(rng_err)?;
            let hash = {
                use secrecy::ExposeSecret;
                // The one use of the plaintext code: hashing it for storage.
                crate::blocking::run(|| {
                    vault_crypto::claim::hash_claim_code(code.expose_secret(), rng)
                })
                .map_err(rng_err)?
            };
            (Some(code), Some(hash))
        } else {
            (None, None)
        };
        let fields = req.identity.map(Identity::into_fields);
        let blind_index = match fields.as_ref().and_then(|f| f.get(IdentityField::IdNumber)) {
            Some(id) => Some(
                self.deps
                    .keys
                    .blind_index(IdentityField::IdNumber.as_str(), id)
                    .map_err(key_err)?,
            ),
            None => None,
        };

        // A person not on record (or with no ID number to recognise them by): one write
        // unit, prepared in full before the store is touched, which checks in its own
        // transaction that no record holds the blind index. When one does (a repeated
        // reporter, or a first report of the same person committed meanwhile) the request
        // takes the re-seal path below.
        // A new record, and the new pseudonym, as both paths below store them.
        let new_record = |id: String,
                          sealed: Option<(Vec<u8>, u32)>,
                          blind_index: Option<[u8; 32]>| ReporterRecord {
            id,
            jurisdiction: req.jurisdiction,
            blind_index,
            kek_version: sealed.as_ref().map(|(_, v)| *v),
            envelope: sealed.map(|(e, _)| e),
            anonymous,
            claim_code_hash: claim_hash.clone(),
            created_at: now,
            updated_at: now,
            erased_at: None,
        };
        let pseudonym_record = |reporter_id: String| PseudonymRecord {
            pseudonym: pseudonym.clone(),
            reporter_id,
            jurisdiction: req.jurisdiction,
            case_ref: req.case_ref.clone(),
            received_at: req.received_at,
            channel: req.channel,
            employee_of_reported_unit: req.employee_of_reported_unit,
            anonymous,
            status: PseudonymStatus::Active,
            created_at: now,
            created_by: actor.principal.id.clone(),
            origin: PseudonymOrigin::Seal,
            parent: None,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let id = self.new_id("rec")?;
            let sealed = self.seal_fields(&id, req.jurisdiction, fields.as_ref())?;
            let mut unit = WriteUnit::default();
            if let Some(bi) = blind_index {
                unit.ops.push(UnitOp::RequireUnknown(bi));
            }
            if let Some((_, v)) = &sealed {
                // Checked in the same transaction: a version retired meanwhile (this process
                // had not reloaded a rotation made elsewhere) makes it reload the keys and
                // seal again, so no record is ever stored under a destroyed key.
                unit.ops.push(UnitOp::RequireKekUsable(*v));
            }
            unit.ops.push(UnitOp::InsertReporter(new_record(
                id.clone(),
                sealed,
                blind_index,
            )));
            let record = pseudonym_record(id);
            unit.ops.push(UnitOp::InsertPseudonym(record.clone()));
            unit.ops
                .push(UnitOp::AppendEvent(seal_event(actor, &record, now)));
            match self.deps.store.commit_unit(unit).await {
                Ok(UnitOutcome::Committed { .. }) => {
                    return Ok(SealOutcome {
                        pseudonym: record,
                        reporter_seen_before: false,
                        prior_case_refs: Vec::new(),
                        claim_code,
                    });
                }
                Ok(UnitOutcome::Refused(UnitRefusal::KekRetired(v))) => {
                    tracing::info!(
                        kek_version = v,
                        "sealed under a retired key version; reloading the keys"
                    );
                    if attempt >= 3 {
                        return Err(retired_beyond_reload());
                    }
                    self.deps.keys.reload().map_err(key_err)?;
                }
                Ok(UnitOutcome::Refused(UnitRefusal::Known)) => break,
                Ok(UnitOutcome::Refused(UnitRefusal::Changed(what))) => {
                    return Err(DomainError::Store(StoreError::Conflict(format!(
                        "the {what} changed while this request ran; retry"
                    ))));
                }
                // The same person, sealed by a concurrent request (PostgreSQL: both checks
                // ran before either insert committed): check again.
                Err(StoreError::Conflict(_)) if attempt < 3 => {}
                Err(e) => return Err(e.into()),
            }
        }

        // The same person again (or a record erased since): one transaction that reads the
        // record, merges the newer details in and seals again.
        let mut attempt = 0;
        let (mut tx, reporter_id, prior) = loop {
            attempt += 1;
            let mut tx = self.deps.store.begin().await?;
            let existing = match &blind_index {
                Some(bi) => tx.reporter_by_blind_index(bi).await?,
                None => None,
            };
            let sealed_under: Option<u32>;
            let (reporter_id, prior) = match (existing, fields.clone()) {
                (Some(rec), Some(newer)) if rec.erased_at.is_none() => {
                    // Same person again: one record, re-sealed with the newer details merged in.
                    let jurisdiction = rec.jurisdiction.to_string();
                    let older = match &rec.envelope {
                        Some(env) => {
                            let plain = self
                                .deps
                                .keys
                                .open(&rec.id, &jurisdiction, env)
                                .map_err(key_err)?;
                            IdentityFields::from_plaintext(&plain).ok_or(DomainError::Integrity)?
                        }
                        None => IdentityFields::default(),
                    };
                    let merged = older.merge_newer(newer);
                    let (env, ver) = self
                        .deps
                        .keys
                        .seal(&rec.id, &jurisdiction, &merged.to_plaintext())
                        .map_err(key_err)?;
                    sealed_under = Some(ver);
                    tx.update_reporter_envelope(&rec.id, &env, ver, now).await?;
                    let prior = tx.pseudonyms_of_reporter(&rec.id).await?;
                    (rec.id, prior)
                }
                (existing, fields) => {
                    // A new person, an anonymous report, or a person whose record was erased
                    // (erasure is final: a new report starts a new record).
                    let id = self.new_id("rec")?;
                    let sealed = self.seal_fields(&id, req.jurisdiction, fields.as_ref())?;
                    sealed_under = sealed.as_ref().map(|(_, v)| *v);
                    // An erased record keeps its index slot; the new record goes unindexed
                    // rather than relinking the person to what was erased.
                    let record = new_record(
                        id.clone(),
                        sealed,
                        if existing.is_some() {
                            None
                        } else {
                            blind_index
                        },
                    );
                    tx.insert_reporter(&record).await?;
                    (id, Vec::new())
                }
            };
            match sealed_under {
                Some(v) if !tx.kek_version_usable(v).await? => {
                    drop(tx);
                    tracing::info!(
                        kek_version = v,
                        "sealed under a retired key version; reloading the keys"
                    );
                    if attempt >= 3 {
                        return Err(retired_beyond_reload());
                    }
                    self.deps.keys.reload().map_err(key_err)?;
                }
                _ => break (tx, reporter_id, prior),
            }
        };

        // Earlier cases, only within the caller's scope: a department learns nothing about
        // reports made elsewhere.
        let mut prior_case_refs: Vec<String> = Vec::new();
        for p in prior
            .iter()
            .filter(|p| actor.principal.jurisdiction.covers(&p.jurisdiction))
        {
            let r = p.case_ref.to_string();
            if !prior_case_refs.contains(&r) {
                prior_case_refs.push(r);
            }
        }
        let record = pseudonym_record(reporter_id);
        tx.insert_pseudonym(&record).await?;
        tx.append_event(&seal_event(actor, &record, now))
            .await
            .map_err(audit_err)?;
        tx.commit().await?;
        Ok(SealOutcome {
            pseudonym: record,
            reporter_seen_before: !prior_case_refs.is_empty(),
            prior_case_refs,
            claim_code,
        })
    }

    /// Seals identity fields into a new record's envelope under the active key; `None` for
    /// an anonymous report.
    fn seal_fields(
        &self,
        record_id: &str,
        jurisdiction: Jurisdiction,
        fields: Option<&IdentityFields>,
    ) -> Result<Option<(Vec<u8>, u32)>, DomainError> {
        fields
            .map(|f| {
                self.deps
                    .keys
                    .seal(record_id, &jurisdiction.to_string(), &f.to_plaintext())
                    .map_err(key_err)
            })
            .transpose()
    }

    /// Loads a pseudonym the caller may see, or 404 (recording an out-of-scope reach).
    pub(crate) async fn pseudonym_in_scope(
        &self,
        actor: &Actor,
        p: &str,
        attempted: &'static str,
    ) -> Result<PseudonymRecord, DomainError> {
        let mut repo = self.deps.store.read().await?;
        let rec = repo
            .pseudonym(p)
            .await?
            .ok_or(DomainError::NotFound { what: "pseudonym" })?;
        drop(repo);
        let mut ev = NewEvent::by(actor, Action::AccessDenied, self.now());
        ev.pseudonym = Some(rec.pseudonym.clone());
        self.require_scope(actor, rec.jurisdiction, "pseudonym", attempted, ev)
            .await?;
        Ok(rec)
    }

    /// A pseudonym's non-identifying facts (any role, in scope).
    #[tracing::instrument(
        name = "vault.get_pseudonym",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
        )
    )]
    pub async fn get_pseudonym(
        &self,
        actor: &Actor,
        p: &str,
    ) -> Result<PseudonymRecord, DomainError> {
        self.pseudonym_in_scope(actor, p, "read pseudonyms").await
    }

    fn require_active(rec: &PseudonymRecord) -> Result<(), (&'static str, String)> {
        match rec.status {
            PseudonymStatus::Active => Ok(()),
            s => Err((
                "pseudonym_not_active",
                format!("the pseudonym is {}", s.as_str()),
            )),
        }
    }

    async fn issue_from(
        &self,
        actor: &Actor,
        from: &PseudonymRecord,
        jurisdiction: Jurisdiction,
        case_ref: CaseRef,
        origin: PseudonymOrigin,
    ) -> Result<PseudonymRecord, DomainError> {
        let now = self.now();
        let new = PseudonymRecord {
            pseudonym: vault_crypto::ids::new_pseudonym(self.deps.rng.as_ref()).map_err(rng_err)?,
            reporter_id: from.reporter_id.clone(),
            jurisdiction,
            case_ref,
            received_at: from.received_at,
            channel: from.channel,
            employee_of_reported_unit: from.employee_of_reported_unit,
            anonymous: from.anonymous,
            status: PseudonymStatus::Active,
            created_at: now,
            created_by: actor.principal.id.clone(),
            origin,
            parent: Some(from.pseudonym.clone()),
        };
        let action = match origin {
            PseudonymOrigin::Rotate => Action::PseudonymRotated,
            _ => Action::PseudonymHandedOff,
        };
        let mut tx = self.deps.store.begin().await?;
        // Re-read inside the transaction: the status may have changed since.
        let current = tx
            .pseudonym(&from.pseudonym)
            .await?
            .ok_or(DomainError::NotFound { what: "pseudonym" })?;
        let mut ev = NewEvent::by(actor, action, now);
        ev.pseudonym = Some(from.pseudonym.clone());
        ev.jurisdiction = Some(from.jurisdiction.to_string());
        if let Err((code, msg)) = Self::require_active(&current) {
            drop(tx);
            let attempted = match origin {
                PseudonymOrigin::Rotate => "rotate pseudonyms",
                _ => "hand off pseudonyms",
            };
            return Err(self.conflict(actor, attempted, ev, code, msg).await);
        }
        tx.insert_pseudonym(&new).await?;
        if origin == PseudonymOrigin::Rotate {
            tx.set_pseudonym_status(&from.pseudonym, PseudonymStatus::Revoked)
                .await?;
        }
        ev.target = Some(new.pseudonym.clone());
        ev.record = Some(new.reporter_id.clone());
        ev.detail
            .insert("to_jurisdiction".into(), new.jurisdiction.to_string());
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(new)
    }

    /// Issues a pseudonym in a receiving jurisdiction (交办/转办); the old one stays valid.
    #[tracing::instrument(
        name = "vault.handoff",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
        )
    )]
    pub async fn handoff(
        &self,
        actor: &Actor,
        p: &str,
        to: Jurisdiction,
        case_ref: Option<CaseRef>,
    ) -> Result<PseudonymRecord, DomainError> {
        self.require_role(actor, &[Role::CaseSystem], "hand off pseudonyms")
            .await?;
        let from = self
            .pseudonym_in_scope(actor, p, "hand off pseudonyms")
            .await?;
        let case_ref = case_ref.unwrap_or_else(|| from.case_ref.clone());
        self.issue_from(actor, &from, to, case_ref, PseudonymOrigin::Handoff)
            .await
    }

    /// Replaces a possibly exposed pseudonym; the old one becomes `revoked`.
    #[tracing::instrument(
        name = "vault.rotate",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
        )
    )]
    pub async fn rotate(&self, actor: &Actor, p: &str) -> Result<PseudonymRecord, DomainError> {
        self.require_role(
            actor,
            &[Role::CaseSystem, Role::Custodian],
            "rotate pseudonyms",
        )
        .await?;
        let from = self
            .pseudonym_in_scope(actor, p, "rotate pseudonyms")
            .await?;
        self.issue_from(
            actor,
            &from,
            from.jurisdiction,
            from.case_ref.clone(),
            PseudonymOrigin::Rotate,
        )
        .await
    }

    /// Queues a message for the reporter behind a pseudonym; the contact never leaves.
    #[tracing::instrument(
        name = "vault.relay_message",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            kind = kind.as_str(),
        )
    )]
    pub async fn relay_message(
        &self,
        actor: &Actor,
        p: &str,
        kind: MessageKind,
        body: &str,
    ) -> Result<String, DomainError> {
        self.require_role(actor, &[Role::CaseSystem], "relay messages")
            .await?;
        let body = check_text("body", body, 1, MAX_BODY_CHARS)?;
        let rec = self.pseudonym_in_scope(actor, p, "relay messages").await?;
        let now = self.now();
        let mut ev =
            NewEvent::by(actor, Action::MessageRelayed, now).with_detail("kind", kind.as_str());
        ev.pseudonym = Some(rec.pseudonym.clone());
        ev.jurisdiction = Some(rec.jurisdiction.to_string());
        if let Err((code, msg)) = Self::require_active(&rec) {
            return Err(self.conflict(actor, "relay messages", ev, code, msg).await);
        }
        let mut tx = self.deps.store.begin().await?;
        let reporter = tx
            .reporter(&rec.reporter_id)
            .await?
            .ok_or(DomainError::NotFound { what: "pseudonym" })?;
        let reachable = match &reporter.envelope {
            Some(env) => {
                let plain = self
                    .deps
                    .keys
                    .open(&reporter.id, &reporter.jurisdiction.to_string(), env)
                    .map_err(key_err)?;
                IdentityFields::from_plaintext(&plain)
                    .ok_or(DomainError::Integrity)?
                    .has_contact()
            }
            None => false,
        };
        if !reachable {
            drop(tx);
            return Err(self
                .conflict(
                    actor,
                    "relay messages",
                    ev,
                    "no_contact",
                    "the reporter left no phone or e-mail to relay to".into(),
                )
                .await);
        }
        let msg = OutboxMessage {
            id: self.new_id("msg")?,
            pseudonym: rec.pseudonym.clone(),
            reporter_id: rec.reporter_id.clone(),
            kind,
            body,
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
        };
        tx.insert_message(&msg).await?;
        ev.target = Some(msg.id.clone());
        ev.record = Some(rec.reporter_id.clone());
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(msg.id)
    }

    /// Delivers due messages through `notifier`; returns how many were delivered. Each
    /// message is leased first, so several workers never deliver the same one.
    pub async fn deliver_due_messages(
        &self,
        notifier: &dyn Notifier,
        limit: u32,
    ) -> Result<usize, DomainError> {
        let now = self.now();
        let mut tx = self.deps.store.begin().await?;
        let due = tx
            .lease_due_messages(now, now + time::Duration::seconds(60), limit)
            .await?;
        tx.commit().await?;
        let mut delivered = 0;
        for m in due {
            let result = self.deliver_one(notifier, &m).await;
            let mut tx = self.deps.store.begin().await?;
            match result {
                Ok(()) => {
                    tx.mark_message_delivered(&m.id, self.now()).await?;
                    delivered += 1;
                }
                Err(reason) => {
                    let attempts = m.attempts.saturating_add(1);
                    // Exponential backoff from 2 s, capped at an hour.
                    let next = (attempts < MESSAGE_MAX_ATTEMPTS).then(|| {
                        let secs = 2_i64.saturating_pow(attempts.min(11)).min(3600);
                        self.now() + time::Duration::seconds(secs)
                    });
                    tracing::warn!(message_id = %m.id, attempts, error = %reason, "message delivery failed");
                    tx.mark_message_failed_attempt(&m.id, attempts, next, &reason)
                        .await?;
                }
            }
            tx.commit().await?;
        }
        Ok(delivered)
    }

    async fn deliver_one(&self, notifier: &dyn Notifier, m: &OutboxMessage) -> Result<(), String> {
        let mut repo = self.deps.store.read().await.map_err(|e| e.to_string())?;
        let reporter = repo
            .reporter(&m.reporter_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("record gone")?;
        drop(repo);
        let env = reporter.envelope.ok_or("record erased or anonymous")?;
        let plain = self
            .deps
            .keys
            .open(&reporter.id, &reporter.jurisdiction.to_string(), &env)
            .map_err(|e| e.to_string())?;
        let fields = IdentityFields::from_plaintext(&plain).ok_or("integrity")?;
        notifier
            .deliver(&Delivery {
                message_id: &m.id,
                pseudonym: &m.pseudonym,
                kind: m.kind,
                body: &m.body,
                phone: fields.get(IdentityField::Phone),
                email: fields.get(IdentityField::Email),
            })
            .await
    }

    // ---------------------------------------------------------------- disclosure

    /// Requests the disclosure of some identity fields for a purpose.
    #[tracing::instrument(
        name = "vault.request_disclosure",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            purpose = req.purpose.as_str(),
            disclosure_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn request_disclosure(
        &self,
        actor: &Actor,
        req: DisclosureRequest,
    ) -> Result<Disclosure, DomainError> {
        self.require_role(
            actor,
            &[Role::CaseSystem, Role::Finance],
            "request disclosures",
        )
        .await?;
        let justification = check_text("justification", &req.justification, 10, 2000)?;
        if !self
            .disclosure_limiter
            .allow(&actor.principal.id, self.now())
        {
            let ev = NewEvent::by(actor, Action::AccessDenied, self.now());
            self.record_denial(actor, "request disclosures", ev, "rate_limited")
                .await;
            return Err(DomainError::RateLimited);
        }
        if req.fields.is_empty() {
            return Err(DomainError::invalid(
                "fields",
                "must name at least one field",
            ));
        }
        let mut fields: Vec<IdentityField> = Vec::new();
        for f in req.fields {
            if fields.contains(&f) {
                return Err(DomainError::invalid("fields", "lists a field twice"));
            }
            fields.push(f);
        }
        let rec = self
            .pseudonym_in_scope(actor, &req.pseudonym, "request disclosures")
            .await?;
        let now = self.now();
        let mut ev = NewEvent::by(actor, Action::DisclosureRequested, now);
        ev.pseudonym = Some(rec.pseudonym.clone());
        ev.jurisdiction = Some(rec.jurisdiction.to_string());
        ev.purpose = Some(req.purpose.as_str().to_owned());
        if let Err((code, msg)) = Self::require_active(&rec) {
            return Err(self
                .conflict(actor, "request disclosures", ev, code, msg)
                .await);
        }
        if rec.anonymous {
            return Err(self
                .conflict(
                    actor,
                    "request disclosures",
                    ev,
                    "anonymous_reporter",
                    "the report is anonymous: there is no identity to disclose".into(),
                )
                .await);
        }
        let d = Disclosure {
            id: self.new_id("dis")?,
            pseudonym: rec.pseudonym.clone(),
            reporter_id: rec.reporter_id.clone(),
            jurisdiction: rec.jurisdiction,
            requester_id: actor.principal.id.clone(),
            purpose: req.purpose,
            justification,
            fields,
            status: DisclosureStatus::Pending,
            approvals_required: self.deps.disclosure.required(req.purpose).max(1),
            decisions: Vec::new(),
            created_at: now,
            approved_at: None,
            opened_at: None,
        };
        ev.disclosure_id = Some(d.id.clone());
        ev.record = Some(d.reporter_id.clone());
        ev.detail.insert(
            "fields".into(),
            d.fields
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(","),
        );
        let mut tx = self.deps.store.begin().await?;
        tx.insert_disclosure(&d).await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        crate::obs::disclosure(&d, crate::obs::outcome::REQUESTED);
        Ok(d)
    }

    async fn disclosure_in_scope(
        &self,
        actor: &Actor,
        id: &str,
        attempted: &'static str,
    ) -> Result<Disclosure, DomainError> {
        let mut repo = self.deps.store.read().await?;
        let d = repo
            .disclosure(id)
            .await?
            .ok_or(DomainError::NotFound { what: "disclosure" })?;
        drop(repo);
        let mut ev = NewEvent::by(actor, Action::AccessDenied, self.now());
        ev.disclosure_id = Some(d.id.clone());
        self.require_scope(actor, d.jurisdiction, "disclosure", attempted, ev)
            .await?;
        Ok(d)
    }

    /// A disclosure as its requester, custodians and auditors in scope see it.
    #[tracing::instrument(
        name = "vault.get_disclosure",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            disclosure_id = crate::obs::id_field(id, "dis"),
        )
    )]
    pub async fn get_disclosure(&self, actor: &Actor, id: &str) -> Result<Disclosure, DomainError> {
        let d = self
            .disclosure_in_scope(actor, id, "read disclosures")
            .await?;
        let mut ev = NewEvent::by(actor, Action::AccessDenied, self.now());
        ev.disclosure_id = Some(d.id.clone());
        match actor.principal.role {
            Role::Custodian | Role::Auditor => {}
            Role::CaseSystem | Role::Finance if d.requester_id == actor.principal.id => {}
            // Another department's request: as if it did not exist.
            Role::CaseSystem | Role::Finance => {
                self.record_denial(actor, "read disclosures", ev, "not_requester")
                    .await;
                return Err(DomainError::NotFound { what: "disclosure" });
            }
            Role::Admin => {
                self.record_denial(actor, "read disclosures", ev, "role")
                    .await;
                return Err(DomainError::Forbidden {
                    role: actor.principal.role.as_str(),
                    action: "read disclosures",
                });
            }
        }
        Ok(d)
    }

    /// A custodian's approval (`approve = true`) or denial.
    #[tracing::instrument(
        name = "vault.decide_disclosure",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            disclosure_id = crate::obs::id_field(id, "dis"),
            approve = approve,
            purpose = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn decide_disclosure(
        &self,
        actor: &Actor,
        id: &str,
        approve: bool,
        comment: &str,
    ) -> Result<Disclosure, DomainError> {
        let attempted = if approve {
            "approve disclosures"
        } else {
            "deny disclosures"
        };
        self.require_role(actor, &[Role::Custodian], attempted)
            .await?;
        let comment = check_text("comment", comment, 0, 2000)?;
        self.disclosure_in_scope(actor, id, attempted).await?;
        let now = self.now();
        let mut tx = self.deps.store.begin().await?;
        let mut d = tx
            .disclosure(id)
            .await?
            .ok_or(DomainError::NotFound { what: "disclosure" })?;
        let mut ev = NewEvent::by(
            actor,
            if approve {
                Action::DisclosureApproved
            } else {
                Action::DisclosureDenied
            },
            now,
        );
        ev.disclosure_id = Some(d.id.clone());
        ev.pseudonym = Some(d.pseudonym.clone());
        ev.jurisdiction = Some(d.jurisdiction.to_string());
        ev.purpose = Some(d.purpose.as_str().to_owned());
        let refusal = if d.requester_id == actor.principal.id {
            Some((
                "own_request",
                "the requester cannot decide its own request".to_owned(),
            ))
        } else if d
            .decisions
            .iter()
            .any(|x| x.principal_id == actor.principal.id)
        {
            Some((
                "already_decided",
                "this custodian has already decided this request".to_owned(),
            ))
        } else {
            match d.status_at(now) {
                DisclosureStatus::Pending => None,
                s => Some(("invalid_state", format!("the disclosure is {}", s.as_str()))),
            }
        };
        if let Some((code, msg)) = refusal {
            drop(tx);
            return Err(self.conflict(actor, attempted, ev, code, msg).await);
        }
        let decision = Decision {
            principal_id: actor.principal.id.clone(),
            approve,
            at: now,
            comment,
        };
        tx.insert_decision(&d.id, &decision).await?;
        d.decisions.push(decision);
        let approvals = d.decisions.iter().filter(|x| x.approve).count();
        if !approve {
            d.status = DisclosureStatus::Denied;
            tx.update_disclosure_status(&d.id, d.status, None, None)
                .await?;
        } else if u32::try_from(approvals).unwrap_or(u32::MAX) >= d.approvals_required {
            d.status = DisclosureStatus::Approved;
            d.approved_at = Some(now);
            tx.update_disclosure_status(&d.id, d.status, Some(now), None)
                .await?;
        }
        ev.detail.insert("status".into(), d.status.as_str().into());
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        crate::obs::decided(&d, approve);
        Ok(d)
    }

    /// Opens an approved disclosure: once, by its requester, within 24 hours of approval.
    ///
    /// The identity is decrypted and the response body built in memory first; then the
    /// disclosure is marked opened and its event — with a keyed MAC of every value that
    /// leaves — committed. Only after that commit does the caller get the bytes to send.
    #[tracing::instrument(
        name = "vault.open_disclosure",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            disclosure_id = crate::obs::id_field(id, "dis"),
            purpose = tracing::field::Empty,
            outcome = tracing::field::Empty,
        )
    )]
    pub async fn open_disclosure(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<OpenedDisclosure, DomainError> {
        self.require_role(
            actor,
            &[Role::CaseSystem, Role::Finance],
            "open disclosures",
        )
        .await?;
        self.disclosure_in_scope(actor, id, "open disclosures")
            .await?;
        let now = self.now();
        // Everything is read and prepared (opened, encoded, encrypted to the caller) outside
        // any transaction; one write unit then checks that the disclosure is still approved
        // and the record not erased, marks it opened and appends the event. Only when that
        // commits does the identity leave.
        let mut tx = self.deps.store.read().await?;
        let d = tx
            .disclosure(id)
            .await?
            .ok_or(DomainError::NotFound { what: "disclosure" })?;
        let mut ev = NewEvent::by(actor, Action::DisclosureOpened, now);
        ev.disclosure_id = Some(d.id.clone());
        ev.pseudonym = Some(d.pseudonym.clone());
        ev.jurisdiction = Some(d.jurisdiction.to_string());
        ev.purpose = Some(d.purpose.as_str().to_owned());
        ev.record = Some(d.reporter_id.clone());
        if d.requester_id != actor.principal.id {
            drop(tx);
            self.record_denial(actor, "open disclosures", ev, "not_requester")
                .await;
            return Err(DomainError::Forbidden {
                role: actor.principal.role.as_str(),
                action: "open a disclosure it did not request",
            });
        }
        let refusal = {
            match d.status_at(now) {
                DisclosureStatus::Approved => None,
                s => Some(("invalid_state", format!("the disclosure is {}", s.as_str()))),
            }
        };
        if d.status_at(now) == DisclosureStatus::Expired {
            crate::obs::disclosure(&d, crate::obs::outcome::EXPIRED);
        }
        if let Some((code, msg)) = refusal {
            drop(tx);
            return Err(self
                .conflict(actor, "open disclosures", ev, code, msg)
                .await);
        }
        let reporter = tx
            .reporter(&d.reporter_id)
            .await?
            .ok_or(DomainError::NotFound { what: "disclosure" })?;
        drop(tx);
        let Some(env) = reporter.envelope.as_ref() else {
            return Err(self
                .conflict(
                    actor,
                    "open disclosures",
                    ev,
                    "erased",
                    "the reporter's record was erased".into(),
                )
                .await);
        };
        let opened = self
            .deps
            .keys
            .open(&reporter.id, &reporter.jurisdiction.to_string(), env)
            .map_err(key_err)
            .and_then(|plain| IdentityFields::from_plaintext(&plain).ok_or(DomainError::Integrity));
        let identity = match opened {
            Ok(i) => i,
            Err(e) => {
                if matches!(e, DomainError::Integrity) {
                    // A tampered or swapped record is itself something auditors must see.
                    self.record_denial(actor, "open disclosures", ev, "integrity_failure")
                        .await;
                }
                return Err(e);
            }
        };

        // Build `{"disclosure_id","pseudonym","fields":{…}}` straight into a wiped buffer.
        let mut body = Zeroizing::new(Vec::with_capacity(256));
        body.extend_from_slice(b"{\"disclosure_id\":");
        write_json_str(&mut body, &d.id);
        body.extend_from_slice(b",\"pseudonym\":");
        write_json_str(&mut body, &d.pseudonym);
        body.extend_from_slice(b",\"fields\":{");
        for (i, field) in d.fields.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            write_json_str(&mut body, field.as_str());
            body.push(b':');
            match identity.get(*field) {
                Some(v) => {
                    write_json_str(&mut body, v);
                    let mac = self
                        .deps
                        .keys
                        .field_mac(field.as_str(), v)
                        .map_err(key_err)?;
                    ev.disclosed.push(FieldMac {
                        field: *field,
                        mac: hex::encode(mac),
                    });
                }
                None => body.extend_from_slice(b"null"),
            }
        }
        body.extend_from_slice(b"}}");
        let out = match &actor.principal.age_recipient {
            Some(r) => OpenedDisclosure::Age(
                vault_crypto::agefmt::encrypt_to_recipient(r, &body)
                    .map_err(|_| DomainError::KeyringUnavailable("age encryption failed".into()))?,
            ),
            None => OpenedDisclosure::Json(body),
        };
        let unit = WriteUnit {
            ops: vec![
                UnitOp::RequireNotErased(reporter.id.clone()),
                UnitOp::OpenDisclosure {
                    id: d.id.clone(),
                    at: now,
                },
                UnitOp::AppendEvent(ev.clone()),
            ],
        };
        match self.deps.store.commit_unit(unit).await? {
            UnitOutcome::Committed { .. } => {}
            UnitOutcome::Refused(refusal) => {
                // Changed between the read and the write: an erasure, or another open of the
                // same disclosure (or a revocation) that committed first.
                ev.disclosed.clear();
                let (code, msg) = match refusal {
                    UnitRefusal::Changed("reporter") => {
                        ("erased", "the reporter's record was erased".to_owned())
                    }
                    _ => (
                        "invalid_state",
                        "the disclosure is no longer approved".to_owned(),
                    ),
                };
                return Err(self
                    .conflict(actor, "open disclosures", ev, code, msg)
                    .await);
            }
        }
        crate::obs::disclosure(&d, crate::obs::outcome::OPENED);
        Ok(out)
    }

    // ---------------------------------------------------------------- access trail

    /// A page of the access trail (auditors), with the number of events in the log.
    // `#[instrument]` repeats the return type in its expansion, past clippy's complexity bar.
    #[allow(clippy::type_complexity)]
    #[tracing::instrument(
        name = "vault.events",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            start = start,
            limit = limit,
        )
    )]
    pub async fn events(
        &self,
        actor: &Actor,
        start: u64,
        limit: u32,
    ) -> Result<(Vec<(Event, Vec<u8>)>, u64), DomainError> {
        self.require_role(actor, &[Role::Auditor], "read the access trail")
            .await?;
        let mut repo = self.deps.store.read().await?;
        let size = repo.event_count().await?;
        Ok((repo.events(start, limit.clamp(1, 1000)).await?, size))
    }
}

pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if serde_json::to_writer(&mut *out, s).is_err() {
        out.extend_from_slice(b"null");
    }
}

//! Reporter receipts: a signed statement, for the reporter, of their rewards' state and of
//! every time their identity left the vault (when, which role, which purpose — never who),
//! with inclusion proofs of those accesses in the access trail.
//!
//! The statement is a C2SP signed note under the statement key (derived from, but not equal
//! to, the log key). Each access is given by its leaf hash, index and inclusion proof against
//! a signed checkpoint, so the reporter (or anyone they show it to) can check that the vault
//! cannot later deny or rewrite those accesses, without learning who made them.

use serde::Serialize;
use vault_crypto::checkpoint::NoteVerifier;
use vault_crypto::merkle;

use crate::audit::{Action, NewEvent};
use crate::clock::rfc3339_cst;
use crate::error::DomainError;
use crate::model::Actor;
use crate::values::Role;
use crate::vault::{Vault, key_err};

/// What a receipt answers.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    /// The signed statement (C2SP signed note; the text is one JSON line after a title line).
    pub statement: String,
    /// The statement key's note verifier key.
    pub statement_key: String,
    /// The signed checkpoint the proofs are against.
    pub checkpoint: String,
    /// The log key's note verifier key.
    pub log_key: String,
    /// One inclusion proof per listed access.
    pub proofs: Vec<ReceiptProof>,
}

/// An access and its inclusion proof.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiptProof {
    /// Log index.
    pub index: u64,
    /// RFC 6962 leaf hash (hex) of the event.
    pub leaf_hash: String,
    /// Proof hashes (hex), bottom-up.
    pub hashes: Vec<String>,
}

#[derive(Serialize)]
struct Statement<'a> {
    disclosures: Vec<serde_json::Value>,
    issued_at: String,
    pseudonym: &'a str,
    rewards: Vec<serde_json::Value>,
    tree_size: u64,
}

impl Vault {
    /// A receipt for the reporter behind `pseudonym`. The case system asks for a real-name
    /// reporter it has identified; an anonymous reporter's request must carry the claim code.
    #[tracing::instrument(
        name = "vault.receipt",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            with_claim_code = claim_code.is_some(),
        )
    )]
    pub async fn receipt(
        &self,
        actor: &Actor,
        pseudonym: &str,
        claim_code: Option<&str>,
    ) -> Result<Receipt, DomainError> {
        self.require_role(actor, &[Role::CaseSystem], "issue receipts")
            .await?;
        let mut repo = self.deps.store.read().await?;
        let rec = repo
            .pseudonym(pseudonym)
            .await?
            .filter(|p| actor.principal.jurisdiction.covers(&p.jurisdiction))
            .ok_or(DomainError::NotFound { what: "pseudonym" })?;
        if rec.anonymous {
            let now = self.now();
            if !self
                .claim_limiter
                .allow(&format!("receipt:{pseudonym}"), now)
            {
                return Err(DomainError::RateLimited);
            }
            let code = claim_code
                .and_then(vault_crypto::claim::normalize_claim_code)
                .map(zeroize::Zeroizing::new)
                .ok_or_else(|| {
                    DomainError::invalid("claim_code", "required for an anonymous report")
                })?;
            let reporter = repo
                .reporter(&rec.reporter_id)
                .await?
                .ok_or(DomainError::NotFound { what: "pseudonym" })?;
            let ok = reporter.claim_code_hash.as_deref().is_some_and(|h| {
                crate::blocking::run(|| vault_crypto::claim::verify_claim_code(&code, h))
            });
            if !ok {
                drop(repo);
                let mut ev = NewEvent::by(actor, Action::AccessDenied, now);
                ev.pseudonym = Some(pseudonym.to_owned());
                self.record_denial(actor, "issue receipts", ev, "wrong_claim_code")
                    .await;
                return Err(DomainError::invalid(
                    "claim_code",
                    "does not match this report",
                ));
            }
        }
        let events = repo.events_of_record(&rec.reporter_id).await?;
        let mut rewards = Vec::new();
        for id in repo.reward_ids_of_record(&rec.reporter_id).await? {
            if let Some(r) = repo.reward(&id).await? {
                let mine: rust_decimal::Decimal = r
                    .awards
                    .iter()
                    .filter(|a| a.reporter_id == rec.reporter_id)
                    .map(|a| a.amount)
                    .sum();
                rewards.push(serde_json::json!({
                    "reward_id": r.id, "status": r.status.as_str(),
                    "amount": format!("{mine:.2}"),
                    "claim_deadline": r.claim_deadline.map(rfc3339_cst),
                }));
            }
        }
        drop(repo);
        let accesses: Vec<_> = events
            .into_iter()
            .filter(|e| matches!(e.action, Action::DisclosureOpened | Action::PayeeReleased))
            .collect();

        // A checkpoint that covers every listed access.
        let note = self.make_checkpoint(None).await?;
        let cp = NoteVerifier::parse(&self.deps.keys.log_verifier_key())
            .and_then(|v| v.verify(&note))
            .map_err(|_| DomainError::Integrity)?;
        let mut proofs = Vec::new();
        let mut repo = self.deps.store.read().await?;
        for e in &accesses {
            let leaf = repo
                .events(e.index, 1)
                .await?
                .into_iter()
                .next()
                .map(|(_, leaf)| leaf)
                .ok_or(DomainError::Integrity)?;
            let hashes = crate::trail::proof_from_store(repo.as_mut(), e.index, cp.size).await?;
            proofs.push(ReceiptProof {
                index: e.index,
                leaf_hash: hex::encode(merkle::leaf_hash(&leaf)),
                hashes: hashes.iter().map(hex::encode).collect(),
            });
        }
        let statement = Statement {
            disclosures: accesses
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "index": e.index, "time": e.time, "action": e.action.as_str(),
                        "role": e.actor_role, "purpose": e.purpose,
                    })
                })
                .collect(),
            issued_at: rfc3339_cst(self.now()),
            pseudonym,
            rewards,
            tree_size: cp.size,
        };
        let text = format!(
            "reporter-vault receipt v1\n{}\n",
            serde_json::to_string(&statement).unwrap_or_default()
        );
        let signed = self.deps.keys.sign_statement(&text).map_err(key_err)?;
        // Who asked for a reporter's history is itself part of that history.
        let mut ev = NewEvent::by(actor, Action::ReceiptIssued, self.now());
        ev.pseudonym = Some(pseudonym.to_owned());
        ev.record = Some(rec.reporter_id.clone());
        ev.jurisdiction = Some(rec.jurisdiction.to_string());
        let mut tx = self.deps.store.begin().await?;
        tx.append_event(&ev)
            .await
            .map_err(crate::vault::audit_err)?;
        tx.commit().await?;
        Ok(Receipt {
            statement: signed,
            statement_key: self.deps.keys.statement_verifier_key(),
            checkpoint: note,
            log_key: self.deps.keys.log_verifier_key(),
            proofs,
        })
    }

    /// The statement key's note verifier key.
    pub fn statement_public_key(&self) -> String {
        self.deps.keys.statement_verifier_key()
    }
}

//! Reward quotes and the policies behind them. Quoting is pure computation over the loaded
//! policy set: nothing is stored, nothing about a reporter is read.

use vault_policy::{Policy, PolicySet, Quote, QuoteInput};

use crate::audit::{Action, NewEvent};
use crate::error::DomainError;
use crate::model::Actor;
use crate::values::Role;
use crate::vault::{Vault, audit_err};

/// Selects the policy and evaluates: the quote the HTTP API and the offline CLI both give.
pub fn compute_quote(set: &PolicySet, input: &QuoteInput) -> Result<Quote, DomainError> {
    let quote = set.quote(input).map_err(|e| DomainError::Unprocessable {
        code: e.code(),
        field: Some(e.field().to_owned()),
        message: e.to_string(),
    })?;
    match quote.reason {
        // A policy the caller named that has no rule for the kind cannot answer it.
        Some(r @ vault_policy::Reason::KindNotCovered) if input.policy_id.is_some() => {
            Err(DomainError::Unprocessable {
                code: r.code(),
                field: Some(r.field().to_owned()),
                message: "the named policy has no rule for this outcome kind".into(),
            })
        }
        // The request cannot be answered as given (a missing or unlisted input).
        Some(r) if r.is_input_error() => Err(DomainError::Unprocessable {
            code: r.code(),
            field: Some(r.field().to_owned()),
            message: format!("not computable as given: {}", r.code()),
        }),
        _ => Ok(quote),
    }
}

impl Vault {
    /// Computes a reward under the policy in force (or the one named), with its trace.
    #[tracing::instrument(
        name = "vault.quote",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
        )
    )]
    pub async fn quote(&self, actor: &Actor, input: &QuoteInput) -> Result<Quote, DomainError> {
        self.require_role(actor, &[Role::CaseSystem, Role::Finance], "quote rewards")
            .await?;
        // The same GB/T 2260 rule as everywhere else in the API.
        crate::values::Jurisdiction::parse(&input.jurisdiction.to_string())
            .map_err(|e| DomainError::invalid("jurisdiction", e.reason))?;
        compute_quote(&self.deps.policies, input)
    }

    /// The loaded policies (any role).
    pub fn policies(&self) -> Vec<&Policy> {
        self.deps.policies.iter().collect()
    }

    /// One loaded policy (any role).
    pub fn policy(&self, id: &str) -> Result<&Policy, DomainError> {
        self.deps
            .policies
            .get(id)
            .ok_or(DomainError::NotFound { what: "policy" })
    }

    /// Archives the text of every loaded policy version not seen before, with a
    /// `policy_loaded` event each. Run at start-up.
    pub async fn archive_policies(&self) -> Result<usize, DomainError> {
        let now = self.now();
        let mut tx = self.deps.store.begin().await?;
        let mut added = 0;
        for p in self.deps.policies.iter() {
            let new = tx
                .archive_policy_version(p.version(), p.id(), p.file(), p.source_text(), now)
                .await?;
            if new {
                let ev = NewEvent::system(Action::PolicyLoaded, now)
                    .with_detail("policy_id", p.id())
                    .with_detail("version", p.version());
                tx.append_event(&ev).await.map_err(audit_err)?;
                added += 1;
            }
        }
        tx.commit().await?;
        Ok(added)
    }
}

//! The access trail as a verifiable log: tree heads, signed checkpoints, inclusion and
//! consistency proofs, and leak tracing.
//!
//! Proofs are computed from stored complete subtree nodes. Which nodes a proof needs depends
//! only on the index and sizes, so the use case first asks the proof algorithm which nodes it
//! would read (with a recording source), fetches exactly those in one query, then runs it for
//! real: O(log n) reads, never a rebuild.

use std::cell::RefCell;
use std::collections::HashMap;

use vault_crypto::checkpoint::Checkpoint;
use vault_crypto::merkle::{self, Hash, NodeSource, ProofError};

use crate::audit::{Action, NewEvent};
use crate::error::DomainError;
use crate::model::Actor;
use crate::ports::{Repo, StoredCheckpoint};
use crate::values::{IdentityField, Role, normalize_for_trace};
use crate::vault::{Vault, audit_err, key_err};

/// The size and root of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of events.
    pub size: u64,
    /// RFC 6962 root hash.
    pub root: Hash,
}

/// An inclusion or consistency proof.
#[derive(Debug, Clone)]
pub struct InclusionProof {
    /// The proof's hashes, bottom-up.
    pub hashes: Vec<Hash>,
}

/// One event that disclosed a traced value.
#[derive(Debug, Clone)]
pub struct LeakMatch {
    /// Log index.
    pub index: u64,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Who.
    pub principal_id: Option<String>,
    /// Their name at the time.
    pub principal_name: Option<String>,
    /// What (`disclosure_opened`, later `payee_released`).
    pub action: Action,
    /// Why.
    pub purpose: Option<String>,
    /// Which disclosure.
    pub disclosure_id: Option<String>,
}

struct Recorder(RefCell<Vec<(u32, u64)>>);

impl NodeSource for Recorder {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.0.borrow_mut().push((level, index));
        Ok([0; 32])
    }
}

struct MapSource(HashMap<(u32, u64), Hash>);

impl NodeSource for MapSource {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.0
            .get(&(level, index))
            .copied()
            .ok_or(ProofError::MissingNode { level, index })
    }
}

fn proof_err(e: ProofError) -> DomainError {
    match e {
        ProofError::MissingNode { level, index } => {
            tracing::error!(level, index, "access trail node missing");
            DomainError::Integrity
        }
        _ => DomainError::invalid("tree_size", "index and sizes do not fit the log"),
    }
}

/// Runs `f` once to learn which nodes it reads, fetches them, and runs it again.
async fn with_nodes<T>(
    repo: &mut dyn Repo,
    f: impl Fn(&dyn NodeSource) -> Result<T, ProofError>,
) -> Result<T, DomainError> {
    let coords = {
        let rec = Recorder(RefCell::new(Vec::new()));
        f(&rec).map_err(proof_err)?;
        rec.0.into_inner()
    };
    let nodes = repo.tree_nodes(&coords).await?;
    let map = MapSource(nodes.into_iter().map(|(l, i, h)| ((l, i), h)).collect());
    f(&map).map_err(proof_err)
}

/// Inclusion proof of `index` at `tree_size` from stored nodes.
pub(crate) async fn proof_from_store(
    repo: &mut dyn Repo,
    index: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, DomainError> {
    with_nodes(repo, |src| merkle::inclusion_proof(src, index, tree_size)).await
}

impl Vault {
    /// The current tree head.
    pub async fn tree_head(&self) -> Result<TreeHead, DomainError> {
        let mut repo = self.deps.store.read().await?;
        let size = repo.event_count().await?;
        let root = with_nodes(repo.as_mut(), |src| merkle::root_from_source(src, size)).await?;
        Ok(TreeHead { size, root })
    }

    /// Signs a checkpoint of the current tree, unless the newest one already covers it.
    /// `actor` is `None` for the periodic job.
    #[tracing::instrument(
        name = "vault.make_checkpoint",
        skip_all,
        fields(
            actor_role = actor.map(|a| a.principal.role.as_str()),
        )
    )]
    pub async fn make_checkpoint(&self, actor: Option<&Actor>) -> Result<String, DomainError> {
        if let Some(actor) = actor {
            self.require_role(actor, &[Role::Auditor, Role::Admin], "sign checkpoints")
                .await?;
        }
        self.checkpoint(false).await
    }

    /// The periodic checkpoint, which only the leader replica signs: fenced on the leader
    /// lease, so a replica that lost it (its lease session cut while the process lives)
    /// signs nothing more. On-demand checkpoints (an auditor's request, a receipt) may be
    /// signed by any replica: same key, same log.
    #[tracing::instrument(name = "vault.leader_checkpoint", skip_all)]
    pub async fn make_leader_checkpoint(&self) -> Result<String, DomainError> {
        self.checkpoint(true).await
    }

    async fn checkpoint(&self, fenced: bool) -> Result<String, DomainError> {
        let head = self.tree_head().await?;
        let mut repo = self.deps.store.read().await?;
        if let Some(latest) = repo.latest_checkpoint().await?
            && latest.size >= head.size
        {
            return Ok(latest.note);
        }
        drop(repo);
        let cp = Checkpoint {
            origin: self.deps.keys.log_origin(),
            size: head.size,
            root: head.root,
        };
        let note = self.deps.keys.sign_checkpoint(&cp).map_err(key_err)?;
        let stored = StoredCheckpoint {
            size: head.size,
            root: head.root,
            note: note.clone(),
            created_at: self.now(),
        };
        let mut tx = self.deps.store.begin().await?;
        if fenced {
            tx.fence().await.map_err(audit_err)?;
        }
        match tx.insert_checkpoint(&stored).await {
            Ok(()) => tx.commit().await.map_err(audit_err)?,
            // Another replica signed the same size first: theirs is as good.
            Err(crate::ports::StoreError::Conflict(_)) => {}
            Err(e) => return Err(audit_err(e)),
        }
        Ok(note)
    }

    /// The newest checkpoint (signing one if none exists yet).
    #[tracing::instrument(
        name = "vault.latest_checkpoint",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
        )
    )]
    pub async fn latest_checkpoint(&self, actor: &Actor) -> Result<String, DomainError> {
        self.require_role(actor, &[Role::Auditor], "read checkpoints")
            .await?;
        let latest = self.deps.store.read().await?.latest_checkpoint().await?;
        match latest {
            Some(cp) => Ok(cp.note),
            None => self.make_checkpoint(None).await,
        }
    }

    /// The note verifier key of the log.
    pub fn log_public_key(&self) -> String {
        self.deps.keys.log_verifier_key()
    }

    /// Inclusion proof of event `index` in the tree of size `tree_size`.
    #[tracing::instrument(
        name = "vault.inclusion_proof",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            index = index,
            tree_size = tree_size,
        )
    )]
    pub async fn inclusion_proof(
        &self,
        actor: &Actor,
        index: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, DomainError> {
        self.require_role(actor, &[Role::Auditor], "read proofs")
            .await?;
        let mut repo = self.deps.store.read().await?;
        let size = repo.event_count().await?;
        if tree_size > size || index >= tree_size {
            return Err(DomainError::invalid(
                "tree_size",
                format!("index must be below tree_size, and tree_size at most {size}"),
            ));
        }
        let hashes = with_nodes(repo.as_mut(), |src| {
            merkle::inclusion_proof(src, index, tree_size)
        })
        .await?;
        Ok(InclusionProof { hashes })
    }

    /// Consistency proof between tree sizes `first` and `second`.
    #[tracing::instrument(
        name = "vault.consistency_proof",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            first = first,
            second = second,
        )
    )]
    pub async fn consistency_proof(
        &self,
        actor: &Actor,
        first: u64,
        second: u64,
    ) -> Result<InclusionProof, DomainError> {
        self.require_role(actor, &[Role::Auditor], "read proofs")
            .await?;
        let mut repo = self.deps.store.read().await?;
        let size = repo.event_count().await?;
        if second > size || first > second {
            return Err(DomainError::invalid(
                "second",
                format!("need first ≤ second ≤ {size}"),
            ));
        }
        let hashes = with_nodes(repo.as_mut(), |src| {
            merkle::consistency_proof(src, first, second)
        })
        .await?;
        Ok(InclusionProof { hashes })
    }

    /// Every event that disclosed `value` of `field`, after normalising it as stored values
    /// are normalised. The trace is itself an event; auditors are rate limited.
    #[tracing::instrument(
        name = "vault.leak_trace",
        skip_all,
        fields(
            actor_role = actor.principal.role.as_str(),
            field = field.as_str(),
        )
    )]
    pub async fn leak_trace(
        &self,
        actor: &Actor,
        field: IdentityField,
        value: &str,
    ) -> Result<Vec<LeakMatch>, DomainError> {
        self.require_role(actor, &[Role::Auditor], "run leak traces")
            .await?;
        let now = self.now();
        if !self.leak_limiter.allow(&actor.principal.id, now) {
            let ev = NewEvent::by(actor, Action::AccessDenied, now);
            self.record_denial(actor, "run leak traces", ev, "rate_limited")
                .await;
            return Err(DomainError::RateLimited);
        }
        let normalized = zeroize::Zeroizing::new(
            normalize_for_trace(field, value)
                .map_err(|e| DomainError::invalid("value", e.reason))?,
        );
        let mac = hex::encode(
            self.deps
                .keys
                .field_mac(field.as_str(), &normalized)
                .map_err(key_err)?,
        );
        // The trace event records which field was traced, never the value (nor its MAC, which
        // would make the trace itself look like a disclosure of it).
        let ev = NewEvent::by(actor, Action::LeakTrace, now).with_detail("field", field.as_str());
        let mut tx = self.deps.store.begin().await?;
        let events = tx.events_disclosing(field.as_str(), &mac).await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(events
            .into_iter()
            .map(|e| LeakMatch {
                index: e.index,
                time: e.time,
                principal_id: e.actor_id,
                principal_name: e.actor_name,
                action: e.action,
                purpose: e.purpose,
                disclosure_id: e.disclosure_id,
            })
            .collect())
    }
}

//! Key lifecycle (rotation, rewrap, retirement), erasure by crypto-shredding, retention and
//! background jobs.
//!
//! Rotation makes a new KEK version active for new envelopes; a rewrap job moves every
//! existing envelope's data key to it without decrypting any identity (only the data key is
//! unwrapped and wrapped again, inside the key provider); a version can be retired once no
//! record uses it and every replica has had time to stop sealing under it.
//!
//! Erasure destroys a reporter's envelope — the wrapped data key and the ciphertext — and its
//! blind index, so the identity can no longer be opened or found; every pseudonym of the
//! reporter then reports `erased`. Each erasure is also written to an erasure ledger kept
//! outside the database, so a restore from an older backup erases it again.

use time::{Date, OffsetDateTime};

use crate::audit::{Action, NewEvent};
use crate::clock::CST;
use crate::error::DomainError;
use crate::model::{Actor, Decision};
use crate::ports::StoreError;
use crate::values::{Jurisdiction, Role};
use crate::vault::{Vault, audit_err, check_text, key_err};

/// Lifecycle settings (and the per-principal disclosure request limit).
#[derive(Debug, Clone, Copy)]
pub struct LifecycleConfig {
    /// Distinct custodians needed to approve an erasure (irreversible: default 2).
    pub erasure_quorum: u32,
    /// Erase a reporter this many years after the last of its cases closed; 0 = never.
    pub retention_years: u32,
    /// A KEK version may be retired only this long after a newer one became active, so every
    /// replica has reloaded its keys and stopped sealing under it.
    pub retire_grace: time::Duration,
    /// Envelopes rewrapped per transaction.
    pub rewrap_batch: u32,
    /// Disclosure requests per requesting principal per minute (429 beyond).
    pub disclosure_requests_per_minute: u32,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            erasure_quorum: 2,
            retention_years: 0,
            retire_grace: time::Duration::seconds(15),
            rewrap_batch: 200,
            disclosure_requests_per_minute: 30,
        }
    }
}

/// One line of the erasure ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    /// The vault record whose envelope was destroyed.
    pub record_id: String,
    /// The erasure (`era_…`).
    pub erasure_id: String,
    /// When (RFC 3339).
    pub erased_at: String,
}

/// Where erasures are recorded outside the database (a file on durable storage). Writing must
/// be durable before it returns: the erasure commits only after it.
pub trait ErasureLedger: Send + Sync {
    /// Appends one entry durably. The error text must not contain identity data.
    fn record(&self, entry: &LedgerEntry) -> Result<(), String>;
}

/// State of an erasure request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErasureStatus {
    /// Waiting for custodians.
    Pending,
    /// A custodian denied it.
    Denied,
    /// The envelope was destroyed.
    Completed,
}

impl ErasureStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Denied => "denied",
            Self::Completed => "completed",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "denied" => Self::Denied,
            "completed" => Self::Completed,
            _ => return None,
        })
    }
}

/// An erasure request.
#[derive(Debug, Clone)]
pub struct Erasure {
    /// `era_…`.
    pub id: String,
    /// The pseudonym it was asked about.
    pub pseudonym: String,
    /// The record behind it.
    pub reporter_id: String,
    /// The pseudonym's jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// Who asked (`system:retention` for the retention job).
    pub requester_id: String,
    /// `request` or `retention`.
    pub reason: String,
    /// Why, in the requester's words.
    pub justification: String,
    /// State.
    pub status: ErasureStatus,
    /// Distinct custodians needed.
    pub approvals_required: u32,
    /// Decisions so far.
    pub decisions: Vec<Decision>,
    /// Requested at.
    pub created_at: OffsetDateTime,
    /// Destroyed at.
    pub completed_at: Option<OffsetDateTime>,
}

/// A KEK version as the store records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyVersionRow {
    /// Version.
    pub version: u32,
    /// Created at.
    pub created_at: OffsetDateTime,
    /// Retired (destroyed) at.
    pub retired_at: Option<OffsetDateTime>,
}

/// One KEK version in a status report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyVersionStatus {
    /// Version.
    pub version: u32,
    /// Created at.
    pub created_at: OffsetDateTime,
    /// Envelopes wrapped under it.
    pub records: u64,
    /// Destroyed.
    pub retired: bool,
}

/// What `keys status` shows.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    /// `local` or `pkcs11`.
    pub provider: &'static str,
    /// The version new envelopes use.
    pub active_version: u32,
    /// Every version, oldest first.
    pub versions: Vec<KeyVersionStatus>,
}

/// State of a background job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Waiting for the leader.
    Queued,
    /// Being worked on.
    Running,
    /// Finished.
    Completed,
    /// Stopped on an error (`error` says which); can be started again.
    Failed,
}

impl JobStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A background job.
#[derive(Debug, Clone)]
pub struct Job {
    /// `job_…`.
    pub id: String,
    /// `rewrap`.
    pub kind: String,
    /// State.
    pub status: JobStatus,
    /// Principal id, or `cli`.
    pub requested_by: String,
    /// Items to do when the job started (envelopes not on the active version).
    pub total: u64,
    /// Items done.
    pub done: u64,
    /// Items that failed (e.g. an envelope that fails authentication).
    pub failed: u64,
    /// Created at.
    pub created_at: OffsetDateTime,
    /// Last progress.
    pub updated_at: OffsetDateTime,
    /// Finished at.
    pub finished_at: Option<OffsetDateTime>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Progress of one rewrap step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapProgress {
    /// Envelopes moved in this step.
    pub rewrapped: u64,
    /// Records whose envelope could not be moved (integrity failure); left as they are.
    pub failed: Vec<String>,
    /// The last record id this step looked at: the next step starts after it. `None` when
    /// the step found nothing left after its cursor.
    pub cursor: Option<String>,
    /// Whether the step looked at fewer records than it could have: the end of the pass.
    pub end_of_pass: bool,
}

/// Passes a rewrap job makes over the records at most: the first moves everything it can;
/// another is made only if records were re-sealed under the old version meanwhile (a replica
/// that had not reloaded the keys yet).
const REWRAP_PASSES: u32 = 3;

const RETENTION_REQUESTER: &str = "system:retention";

/// Who requested a job the `keys` CLI started (and runs itself).
const CLI_REQUESTER: &str = "cli";

/// How long a job the CLI runs may go without progress before the leader takes it over.
const CLI_JOB_STALE: time::Duration = time::Duration::seconds(30);

/// Who runs a job, and so whether its writes are fenced on the leader lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRunner {
    /// The leader replica: every write checks, in its transaction, that this process still
    /// holds the lease, so a replica that lost it stops at its next batch.
    Leader,
    /// The `keys` CLI, beside the service: runs the job it started, unfenced (it never
    /// leads); the leader leaves that job alone while it makes progress.
    Cli,
}

impl JobRunner {
    async fn fence(self, tx: &mut dyn crate::ports::Tx) -> Result<(), DomainError> {
        match self {
            JobRunner::Leader => Ok(tx.fence().await?),
            JobRunner::Cli => Ok(()),
        }
    }
}

impl Vault {
    fn lifecycle(&self) -> LifecycleConfig {
        self.deps.lifecycle
    }

    // ------------------------------------------------------------------ keys

    /// Provider, active version and records per version (admin).
    pub async fn key_status(&self, actor: Option<&Actor>) -> Result<KeyStatus, DomainError> {
        if let Some(actor) = actor {
            self.require_role(actor, &[Role::Admin], "manage keys")
                .await?;
        }
        self.key_status_unchecked().await
    }

    async fn key_status_unchecked(&self) -> Result<KeyStatus, DomainError> {
        let keys = &self.deps.keys;
        // One consistent view of the provider's keys: a reload (a rotation made by another
        // process) may land between the two reads.
        let (active_version, held) = {
            let mut tries = 0;
            loop {
                let before = keys.active_version();
                let held = keys.key_versions().map_err(key_err)?;
                tries += 1;
                if (keys.active_version() == before && held.iter().any(|h| h.version == before))
                    || tries >= 5
                {
                    break (before, held);
                }
            }
        };
        let mut repo = self.deps.store.read().await?;
        let counts = repo.records_per_key_version().await?;
        let rows = repo.key_version_rows().await?;
        drop(repo);
        let mut versions: Vec<KeyVersionStatus> = Vec::new();
        for h in &held {
            versions.push(KeyVersionStatus {
                version: h.version,
                created_at: OffsetDateTime::from_unix_timestamp(h.created_at_unix)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                records: 0,
                retired: false,
            });
        }
        for r in &rows {
            if r.retired_at.is_some() && !versions.iter().any(|v| v.version == r.version) {
                versions.push(KeyVersionStatus {
                    version: r.version,
                    created_at: r.created_at,
                    records: 0,
                    retired: true,
                });
            }
        }
        for (version, n) in counts {
            match versions.iter_mut().find(|v| v.version == version) {
                Some(v) => v.records = n,
                // Records under a version the provider no longer holds: say so loudly.
                None => versions.push(KeyVersionStatus {
                    version,
                    created_at: OffsetDateTime::UNIX_EPOCH,
                    records: n,
                    retired: true,
                }),
            }
        }
        versions.sort_by_key(|v| v.version);
        Ok(KeyStatus {
            provider: keys.provider_kind(),
            active_version,
            versions,
        })
    }

    /// Records every KEK version the provider holds in the store, so the list survives
    /// retirement. Called at start-up and after rotation.
    pub async fn register_key_versions(&self) -> Result<(), DomainError> {
        let held = self.deps.keys.key_versions().map_err(key_err)?;
        let mut tx = self.deps.store.begin().await?;
        for h in held {
            let at = OffsetDateTime::from_unix_timestamp(h.created_at_unix)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            tx.insert_key_version(h.version, self.deps.keys.provider_kind(), at)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Creates a new KEK version, active for every new envelope (admin, or the CLI with
    /// `actor = None`). The trail is probed before the provider creates the key, and the
    /// event commits right after it; only a trail failure in between that instant leaves a
    /// version without its `key_rotated` event (`keys status` still lists it).
    #[tracing::instrument(name = "vault.rotate_keys", skip_all)]
    pub async fn rotate_keys(&self, actor: Option<&Actor>) -> Result<u32, DomainError> {
        if let Some(actor) = actor {
            self.require_role(actor, &[Role::Admin], "manage keys")
                .await?;
        }
        let now = self.now();
        let from = self.deps.keys.active_version();
        self.deps
            .store
            .probe_trail()
            .await
            .map_err(DomainError::AuditUnavailable)?;
        let mut ev = match actor {
            Some(a) => NewEvent::by(a, Action::KeyRotated, now),
            None => NewEvent::system(Action::KeyRotated, now).with_detail("via", "cli"),
        };
        ev.detail.insert("from_version".into(), from.to_string());
        // The provider's work (an scrypt-protected file rewrite, or an HSM call) happens with
        // no transaction open, so sealing is never held up behind it.
        let version = self
            .deps
            .keys
            .rotate(now.unix_timestamp())
            .map_err(key_err)?;
        let mut tx = self.deps.store.begin().await?;
        ev.detail.insert("to_version".into(), version.to_string());
        ev.detail
            .insert("provider".into(), self.deps.keys.provider_kind().into());
        tx.insert_key_version(version, self.deps.keys.provider_kind(), now)
            .await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(version)
    }

    /// Destroys KEK `version` once nothing uses it (admin, or the CLI).
    #[tracing::instrument(name = "vault.retire_key", skip_all)]
    pub async fn retire_key(&self, actor: Option<&Actor>, version: u32) -> Result<(), DomainError> {
        if let Some(actor) = actor {
            self.require_role(actor, &[Role::Admin], "manage keys")
                .await?;
        }
        // Pick up a rotation made elsewhere before judging what is active.
        self.deps.keys.reload().map_err(key_err)?;
        let status = self.key_status_unchecked().await?;
        let Some(v) = status.versions.iter().find(|v| v.version == version) else {
            return Err(DomainError::NotFound {
                what: "key version",
            });
        };
        if v.retired {
            return Err(DomainError::conflict(
                "key_retired",
                format!("key version {version} is already retired"),
            ));
        }
        if version == status.active_version {
            return Err(DomainError::conflict(
                "key_active",
                format!("key version {version} is the active version; rotate first"),
            ));
        }
        if v.records > 0 {
            return Err(DomainError::conflict(
                "key_in_use",
                format!(
                    "{} records still use key version {version}; run a rewrap first",
                    v.records
                ),
            ));
        }
        let now = self.now();
        let successor = status
            .versions
            .iter()
            .filter(|s| s.version > version)
            .map(|s| s.created_at)
            .min();
        if let Some(since) = successor
            && now - since < self.lifecycle().retire_grace
        {
            return Err(DomainError::conflict(
                "key_retire_too_soon",
                format!(
                    "key version {version} was replaced less than {} s ago; replicas may still \
                     be sealing under it. Retry later",
                    self.lifecycle().retire_grace.whole_seconds()
                ),
            ));
        }
        let mut ev = match actor {
            Some(a) => NewEvent::by(a, Action::KeyRetired, now),
            None => NewEvent::system(Action::KeyRetired, now).with_detail("via", "cli"),
        };
        ev.detail.insert("version".into(), version.to_string());
        self.deps
            .store
            .probe_trail()
            .await
            .map_err(DomainError::AuditUnavailable)?;
        // Marked retired first, and counted again in the same transaction: from its commit
        // on, a seal under this version is refused in its own transaction (and sealed again
        // under a newer one), and a seal in flight was waited for and is counted here. So no
        // record can end up under the key destroyed below.
        let mut tx = self.deps.store.begin().await?;
        tx.retire_key_version(version, now).await?;
        let still = tx
            .records_per_key_version()
            .await?
            .into_iter()
            .find(|(v, _)| *v == version)
            .map_or(0, |(_, n)| n);
        if still > 0 {
            drop(tx);
            return Err(DomainError::conflict(
                "key_in_use",
                format!("{still} records still use key version {version}; run a rewrap first"),
            ));
        }
        tx.commit().await?;
        // Outside any transaction: the provider's file rewrite or HSM call can take seconds.
        // Should it fail, the version stays marked retired (nothing seals under it) and is
        // still held, so a retry finishes the job.
        self.deps.keys.retire(version).map_err(key_err)?;
        let mut tx = self.deps.store.begin().await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves up to `limit` envelopes that are not on the active KEK version to it. Each
    /// envelope is swapped only if it is still the one read (compare-and-set), so a record
    /// changed meanwhile is simply picked up by the next step.
    #[tracing::instrument(name = "vault.rewrap_step", skip_all)]
    pub async fn rewrap_step(
        &self,
        after: Option<&str>,
        limit: u32,
        runner: JobRunner,
    ) -> Result<RewrapProgress, DomainError> {
        let active = self.deps.keys.active_version();
        let todo = self
            .deps
            .store
            .read()
            .await?
            .reporters_not_on_key_version(active, after, limit)
            .await?;
        let mut progress = RewrapProgress {
            cursor: todo.last().map(|r| r.id.clone()),
            end_of_pass: todo.len() < usize::try_from(limit).unwrap_or(usize::MAX),
            ..RewrapProgress::default()
        };
        let now = self.now();
        let mut tx = self.deps.store.begin().await?;
        // A replica that lost the leader lease stops here.
        runner.fence(&mut *tx).await?;
        for r in todo {
            let (Some(env), Some(old)) = (r.envelope.as_ref(), r.kek_version) else {
                continue;
            };
            match self
                .deps
                .keys
                .rewrap(&r.id, &r.jurisdiction.to_string(), env)
            {
                Ok((new_env, to)) => {
                    if tx
                        .swap_reporter_envelope(&r.id, env, &new_env, old, to, now)
                        .await?
                    {
                        progress.rewrapped += 1;
                    }
                }
                Err(crate::ports::KeyError::Integrity) => {
                    tracing::error!(record = %r.id, "rewrap: envelope failed authentication; left as is");
                    progress.failed.push(r.id.clone());
                }
                Err(e) => return Err(key_err(e)),
            }
        }
        tx.commit().await?;
        Ok(progress)
    }

    /// Queues a rewrap job (admin); the leader runs it. Returns the job.
    #[tracing::instrument(name = "vault.start_rewrap", skip_all)]
    pub async fn start_rewrap(&self, actor: Option<&Actor>) -> Result<Job, DomainError> {
        if let Some(actor) = actor {
            self.require_role(actor, &[Role::Admin], "manage keys")
                .await?;
        }
        let active = self.deps.keys.active_version();
        let now = self.now();
        let total = self
            .deps
            .store
            .read()
            .await?
            .count_not_on_key_version(active)
            .await?;
        let job = Job {
            id: self.new_id("job")?,
            kind: "rewrap".into(),
            // The CLI runs the job it starts at once; the leader must not pick it up as well.
            status: if actor.is_none() {
                JobStatus::Running
            } else {
                JobStatus::Queued
            },
            requested_by: actor
                .map_or_else(|| CLI_REQUESTER.to_owned(), |a| a.principal.id.clone()),
            total,
            done: 0,
            failed: 0,
            created_at: now,
            updated_at: now,
            finished_at: None,
            error: None,
        };
        let mut ev = match actor {
            Some(a) => NewEvent::by(a, Action::KeysRewrapStarted, now),
            None => NewEvent::system(Action::KeysRewrapStarted, now).with_detail("via", "cli"),
        };
        ev.target = Some(job.id.clone());
        ev.detail.insert("to_version".into(), active.to_string());
        ev.detail.insert("records".into(), total.to_string());
        let mut tx = self.deps.store.begin().await?;
        tx.insert_job(&job).await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(job)
    }

    /// A job's progress (admin).
    pub async fn job(&self, actor: &Actor, id: &str) -> Result<Job, DomainError> {
        self.require_role(actor, &[Role::Admin], "read jobs")
            .await?;
        self.deps
            .store
            .read()
            .await?
            .job(id)
            .await?
            .ok_or(DomainError::NotFound { what: "job" })
    }

    /// Runs one queued or running job to completion (the leader calls this; the CLI calls it
    /// for the job it started). `on_progress` sees each step. Resumable: a job interrupted
    /// by a crash is picked up again where the records say it is.
    #[tracing::instrument(name = "vault.run_job", skip_all)]
    pub async fn run_job(
        &self,
        mut job: Job,
        runner: JobRunner,
        mut on_progress: impl FnMut(&Job) + Send,
    ) -> Result<Job, DomainError> {
        // The replica that queued the job may have known an older active version than this
        // one: take the newest keys before deciding what "current" is.
        self.deps.keys.reload().map_err(key_err)?;
        job.status = JobStatus::Running;
        job.updated_at = self.now();
        self.save_job(&job, runner).await?;
        let batch = self.lifecycle().rewrap_batch.max(1);
        // A resumed job walks the records again from the start, so it counts failures anew;
        // each damaged envelope once, however often it is met.
        let mut failed: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        job.failed = 0;
        let mut left = 0;
        for _pass in 0..REWRAP_PASSES {
            let mut cursor: Option<String> = None;
            loop {
                let step = match self.rewrap_step(cursor.as_deref(), batch, runner).await {
                    Ok(s) => s,
                    Err(e) => {
                        job.status = JobStatus::Failed;
                        job.error = Some(e.to_string());
                        job.updated_at = self.now();
                        // Best effort: the store may be what failed.
                        let _ = self.save_job(&job, runner).await;
                        return Err(e);
                    }
                };
                job.done += step.rewrapped;
                failed.extend(step.failed);
                job.failed = u64::try_from(failed.len()).unwrap_or(u64::MAX);
                job.total = job.total.max(job.done + job.failed);
                job.updated_at = self.now();
                on_progress(&job);
                self.save_job(&job, runner).await?;
                match step.cursor {
                    Some(c) if !step.end_of_pass => cursor = Some(c),
                    _ => break,
                }
            }
            let remaining = self
                .deps
                .store
                .read()
                .await?
                .count_not_on_key_version(self.deps.keys.active_version())
                .await?;
            // `remaining` includes the envelopes that failed: they stay on their version.
            job.total = job.total.max(job.done + remaining.max(job.failed));
            left = remaining.saturating_sub(job.failed);
            if left == 0 {
                break;
            }
        }
        let now = self.now();
        // Progress is saved after each batch commits; a leader that died between the two
        // under-counted. At the end the records themselves say what was done.
        job.done = job.total.saturating_sub(job.failed + left);
        job.status = JobStatus::Completed;
        job.finished_at = Some(now);
        job.updated_at = now;
        let mut ev = NewEvent::system(Action::KeysRewrapped, now);
        ev.target = Some(job.id.clone());
        ev.detail.insert("rewrapped".into(), job.done.to_string());
        ev.detail.insert("failed".into(), job.failed.to_string());
        ev.detail.insert(
            "to_version".into(),
            self.deps.keys.active_version().to_string(),
        );
        let mut tx = self.deps.store.begin().await?;
        runner.fence(&mut *tx).await?;
        tx.update_job(&job).await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        on_progress(&job);
        Ok(job)
    }

    async fn save_job(&self, job: &Job, runner: JobRunner) -> Result<(), DomainError> {
        let mut tx = self.deps.store.begin().await?;
        runner.fence(&mut *tx).await?;
        tx.update_job(job).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The oldest job the leader should run: a queued one, or one left running by an earlier
    /// leader (which died or lost the lease: fencing stopped it). A job the `keys` CLI is
    /// running is left to it unless it has made no progress for [`CLI_JOB_STALE`] (the CLI
    /// was killed).
    pub async fn next_job(&self) -> Result<Option<Job>, DomainError> {
        let now = self.now();
        Ok(self
            .deps
            .store
            .read()
            .await?
            .unfinished_jobs()
            .await?
            .into_iter()
            .find(|j| {
                !(j.status == JobStatus::Running
                    && j.requested_by == CLI_REQUESTER
                    && now - j.updated_at < CLI_JOB_STALE)
            }))
    }

    // ------------------------------------------------------------------ erasure

    /// Asks for a reporter's erasure (case system, admin). Custodians approve it like a
    /// disclosure.
    #[tracing::instrument(name = "vault.request_erasure", skip_all)]
    pub async fn request_erasure(
        &self,
        actor: &Actor,
        pseudonym: &str,
        justification: &str,
    ) -> Result<Erasure, DomainError> {
        self.require_role(actor, &[Role::CaseSystem, Role::Admin], "request erasures")
            .await?;
        let justification = check_text("justification", justification, 10, 2000)?;
        let rec = self
            .pseudonym_in_scope(actor, pseudonym, "request erasures")
            .await?;
        let now = self.now();
        let mut ev = NewEvent::by(actor, Action::ErasureRequested, now);
        ev.pseudonym = Some(rec.pseudonym.clone());
        ev.jurisdiction = Some(rec.jurisdiction.to_string());
        ev.record = Some(rec.reporter_id.clone());
        if rec.status == crate::model::PseudonymStatus::Erased {
            return Err(self
                .conflict(
                    actor,
                    "request erasures",
                    ev,
                    "erased",
                    "the reporter's record is already erased".into(),
                )
                .await);
        }
        let e = Erasure {
            id: self.new_id("era")?,
            pseudonym: rec.pseudonym.clone(),
            reporter_id: rec.reporter_id.clone(),
            jurisdiction: rec.jurisdiction,
            requester_id: actor.principal.id.clone(),
            reason: "request".into(),
            justification,
            status: ErasureStatus::Pending,
            approvals_required: self.lifecycle().erasure_quorum.max(1),
            decisions: Vec::new(),
            created_at: now,
            completed_at: None,
        };
        ev.target = Some(e.id.clone());
        let mut tx = self.deps.store.begin().await?;
        tx.insert_erasure(&e).await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(e)
    }

    async fn erasure_in_scope(
        &self,
        actor: &Actor,
        id: &str,
        attempted: &'static str,
    ) -> Result<Erasure, DomainError> {
        let e = self
            .deps
            .store
            .read()
            .await?
            .erasure(id)
            .await?
            .ok_or(DomainError::NotFound { what: "erasure" })?;
        let mut ev = NewEvent::by(actor, Action::AccessDenied, self.now());
        ev.target = Some(e.id.clone());
        self.require_scope(actor, e.jurisdiction, "erasure", attempted, ev)
            .await?;
        Ok(e)
    }

    /// An erasure request (requester, custodians, auditors in scope).
    #[tracing::instrument(name = "vault.get_erasure", skip_all)]
    pub async fn get_erasure(&self, actor: &Actor, id: &str) -> Result<Erasure, DomainError> {
        self.require_role(
            actor,
            &[
                Role::CaseSystem,
                Role::Admin,
                Role::Custodian,
                Role::Auditor,
            ],
            "read erasures",
        )
        .await?;
        let e = self.erasure_in_scope(actor, id, "read erasures").await?;
        if matches!(actor.principal.role, Role::CaseSystem | Role::Admin)
            && e.requester_id != actor.principal.id
        {
            let mut ev = NewEvent::by(actor, Action::AccessDenied, self.now());
            ev.target = Some(e.id.clone());
            self.record_denial(actor, "read erasures", ev, "not_requester")
                .await;
            return Err(DomainError::NotFound { what: "erasure" });
        }
        Ok(e)
    }

    /// A custodian's decision on an erasure. At quorum the envelope is destroyed in the same
    /// transaction, after the ledger has the entry.
    #[tracing::instrument(name = "vault.decide_erasure", skip_all)]
    pub async fn decide_erasure(
        &self,
        actor: &Actor,
        id: &str,
        approve: bool,
        comment: &str,
    ) -> Result<Erasure, DomainError> {
        let attempted = if approve {
            "approve erasures"
        } else {
            "deny erasures"
        };
        self.require_role(actor, &[Role::Custodian], attempted)
            .await?;
        let comment = check_text("comment", comment, 0, 2000)?;
        self.erasure_in_scope(actor, id, attempted).await?;
        let now = self.now();
        let mut tx = self.deps.store.begin().await?;
        let mut e = tx
            .erasure(id)
            .await?
            .ok_or(DomainError::NotFound { what: "erasure" })?;
        // The record's row before the trail (as a re-seal takes them): this decision may
        // shred it, and the two must not wait for each other in a circle.
        if approve {
            tx.lock_reporter(&e.reporter_id).await?;
        }
        let mut ev = NewEvent::by(
            actor,
            if approve {
                Action::ErasureApproved
            } else {
                Action::ErasureDenied
            },
            now,
        );
        ev.target = Some(e.id.clone());
        ev.pseudonym = Some(e.pseudonym.clone());
        ev.jurisdiction = Some(e.jurisdiction.to_string());
        let refusal = if e.requester_id == actor.principal.id {
            Some((
                "own_request",
                "the requester cannot decide its own request".to_owned(),
            ))
        } else if e
            .decisions
            .iter()
            .any(|x| x.principal_id == actor.principal.id)
        {
            Some((
                "already_decided",
                "this custodian has already decided this request".to_owned(),
            ))
        } else if e.status != ErasureStatus::Pending {
            Some((
                "invalid_state",
                format!("the erasure is {}", e.status.as_str()),
            ))
        } else {
            None
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
        tx.insert_erasure_decision(&e.id, &decision).await?;
        e.decisions.push(decision);
        let approvals = e.decisions.iter().filter(|x| x.approve).count();
        if !approve {
            e.status = ErasureStatus::Denied;
            tx.update_erasure_status(&e.id, e.status, None).await?;
        }
        let quorum =
            approve && u32::try_from(approvals).unwrap_or(u32::MAX) >= e.approvals_required;
        // The status this decision leads to (the shredding below completes it).
        let status = if quorum {
            ErasureStatus::Completed
        } else {
            e.status
        };
        ev.detail.insert("status".into(), status.as_str().into());
        tx.append_event(&ev).await.map_err(audit_err)?;
        if quorum {
            self.shred_in(&mut *tx, &mut e, now).await?;
        }
        tx.commit().await?;
        Ok(e)
    }

    /// Destroys the envelope of `e`'s record inside `tx`: ledger first (durable), then the
    /// row and the `reporter_erased` event, committed by the caller.
    async fn shred_in(
        &self,
        tx: &mut dyn crate::ports::Tx,
        e: &mut Erasure,
        now: OffsetDateTime,
    ) -> Result<(), DomainError> {
        let entry = LedgerEntry {
            record_id: e.reporter_id.clone(),
            erasure_id: e.id.clone(),
            erased_at: crate::clock::rfc3339_cst(now),
        };
        match &self.deps.erasure_ledger {
            Some(ledger) => ledger.record(&entry).map_err(|m| {
                DomainError::Store(StoreError::Unavailable(format!("erasure ledger: {m}")))
            })?,
            None => {
                return Err(DomainError::Store(StoreError::Unavailable(
                    "no erasure ledger is configured; nothing was erased".into(),
                )));
            }
        }
        tx.erase_reporter(&e.reporter_id, now).await?;
        e.status = ErasureStatus::Completed;
        e.completed_at = Some(now);
        tx.update_erasure_status(&e.id, e.status, Some(now)).await?;
        let mut ev = NewEvent::system(Action::ReporterErased, now);
        ev.target = Some(e.id.clone());
        ev.record = Some(e.reporter_id.clone());
        ev.jurisdiction = Some(e.jurisdiction.to_string());
        ev.detail.insert("reason".into(), e.reason.clone());
        tx.append_event(&ev).await.map_err(audit_err)?;
        Ok(())
    }

    /// Erases a record again after a restore from a backup older than its erasure (the
    /// erasure ledger names it). Returns whether anything was destroyed.
    #[tracing::instrument(name = "vault.reapply_erasure", skip_all)]
    pub async fn reapply_erasure(
        &self,
        record_id: &str,
        erasure_id: &str,
    ) -> Result<bool, DomainError> {
        let now = self.now();
        let mut tx = self.deps.store.begin().await?;
        let Some(r) = tx.reporter(record_id).await? else {
            return Ok(false);
        };
        if r.erased_at.is_some() && r.envelope.is_none() {
            return Ok(false);
        }
        tx.erase_reporter(record_id, now).await?;
        if tx.erasure(erasure_id).await?.is_some() {
            tx.update_erasure_status(erasure_id, ErasureStatus::Completed, Some(now))
                .await?;
        }
        let mut ev = NewEvent::system(Action::ReporterErased, now);
        ev.target = Some(erasure_id.to_owned());
        ev.record = Some(record_id.to_owned());
        ev.jurisdiction = Some(r.jurisdiction.to_string());
        ev.detail
            .insert("reason".into(), "ledger_after_restore".into());
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(true)
    }

    // ------------------------------------------------------------------ retention

    /// Records that a case was closed (case system, in scope). Retention counts from the
    /// latest closure among a reporter's cases.
    #[tracing::instrument(name = "vault.close_case", skip_all)]
    pub async fn close_case(
        &self,
        actor: &Actor,
        pseudonym: &str,
        closed_on: Date,
    ) -> Result<Date, DomainError> {
        self.require_role(actor, &[Role::CaseSystem], "close cases")
            .await?;
        let rec = self
            .pseudonym_in_scope(actor, pseudonym, "close cases")
            .await?;
        let now = self.now();
        if closed_on > now.to_offset(CST).date() {
            return Err(DomainError::invalid(
                "closed_on",
                "must not be in the future",
            ));
        }
        if closed_on < rec.received_at.to_offset(CST).date() {
            return Err(DomainError::invalid(
                "closed_on",
                "must not be before the report was received",
            ));
        }
        let mut ev = NewEvent::by(actor, Action::CaseClosed, now);
        ev.pseudonym = Some(rec.pseudonym.clone());
        ev.jurisdiction = Some(rec.jurisdiction.to_string());
        ev.detail.insert("closed_on".into(), closed_on.to_string());
        let mut tx = self.deps.store.begin().await?;
        tx.close_case(&rec.pseudonym, closed_on, &actor.principal.id, now)
            .await?;
        tx.append_event(&ev).await.map_err(audit_err)?;
        tx.commit().await?;
        Ok(closed_on)
    }

    /// The retention job: erases every record whose cases all closed more than
    /// `retention_years` ago and that no open reward still needs. Returns how many.
    #[tracing::instrument(name = "vault.apply_retention", skip_all)]
    pub async fn apply_retention(&self) -> Result<usize, DomainError> {
        let years = self.lifecycle().retention_years;
        if years == 0 {
            return Ok(0);
        }
        let now = self.now();
        let today = now.to_offset(CST).date();
        let cutoff = years_before(today, years)
            .ok_or_else(|| DomainError::invalid("retention_years", "out of range"))?;
        let due = self
            .deps
            .store
            .read()
            .await?
            .reporters_due_for_retention(cutoff, 100)
            .await?;
        let mut n = 0;
        for (reporter_id, jurisdiction, pseudonym) in due {
            let mut e = Erasure {
                id: self.new_id("era")?,
                pseudonym,
                reporter_id,
                jurisdiction,
                requester_id: RETENTION_REQUESTER.into(),
                reason: "retention".into(),
                justification: format!("retention: every case closed more than {years} years ago"),
                status: ErasureStatus::Pending,
                approvals_required: 0,
                decisions: Vec::new(),
                created_at: now,
                completed_at: None,
            };
            let mut tx = self.deps.store.begin().await?;
            // The leader's job: a replica that lost the lease erases nothing more.
            tx.fence().await?;
            tx.insert_erasure(&e).await?;
            self.shred_in(&mut *tx, &mut e, now).await?;
            tx.commit().await?;
            n += 1;
        }
        Ok(n)
    }
}

/// `today` minus `years` calendar years (29 February becomes 28 February).
fn years_before(today: Date, years: u32) -> Option<Date> {
    let year = today.year().checked_sub(i32::try_from(years).ok()?)?;
    today
        .replace_year(year)
        .ok()
        .or_else(|| today.previous_day().and_then(|d| d.replace_year(year).ok()))
}

//! The ports the domain needs: a transactional store, a key provider and a notifier.
//! Adapters live elsewhere (`vault-storage` for SQL, the service crate for keys and delivery).

use std::collections::HashSet;

use async_trait::async_trait;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::audit::{Event, NewEvent};
use crate::model::{
    Decision, Disclosure, DisclosureStatus, OutboxMessage, Principal, PseudonymRecord,
    PseudonymStatus, ReporterRecord,
};

/// Why the store failed. Stays coarse on purpose: the domain only needs to know whether to
/// answer 503 or report a conflict.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached, timed out, or refused the write.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness constraint refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored row could not be read back into the model.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// The store: transactions for writes, plain connections for reads.
#[async_trait]
pub trait Store: Send + Sync {
    /// Begins a write transaction. Writes are serialised per store, so the access trail
    /// stays linear.
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError>;
    /// A connection for reads outside a transaction.
    async fn read(&self) -> Result<Box<dyn Repo>, StoreError>;
    /// `sqlite` or `postgres`.
    fn engine(&self) -> &'static str;
    /// Whether an access-trail append would succeed now: tries one in a transaction that is
    /// rolled back. Readiness uses it, so `/readyz` recovers by itself when the fault clears.
    async fn probe_trail(&self) -> Result<(), StoreError>;
    /// Applies a [`WriteUnit`] atomically: its checks, then its writes, or nothing.
    ///
    /// The hot writes (a seal, a disclosure opening) are shaped as units so that every slow
    /// step (key work, JSON, age encryption) happens before the store is touched and an
    /// adapter can run the whole unit in one step. The default runs the unit's operations
    /// through [`Store::begin`] in order; the SQLite adapter runs units on a dedicated
    /// writer thread and commits many together (group commit).
    async fn commit_unit(&self, unit: WriteUnit) -> Result<UnitOutcome, StoreError> {
        commit_unit_in_tx(self.begin().await?, &unit).await
    }
}

/// [`Store::commit_unit`] through one transaction, operation by operation.
pub async fn commit_unit_in_tx(
    mut tx: Box<dyn Tx>,
    unit: &WriteUnit,
) -> Result<UnitOutcome, StoreError> {
    let mut appended = Vec::new();
    for op in &unit.ops {
        if let Some(refusal) = apply_unit_op(tx.as_mut(), op, &mut appended).await? {
            return Ok(UnitOutcome::Refused(refusal));
        }
    }
    tx.commit().await?;
    Ok(UnitOutcome::Committed { events: appended })
}

/// Several units through one transaction, in two phases: every unit's checks in order,
/// then the writes of every unit its checks let through.
///
/// This is group commit for a store whose units each cost round trips (PostgreSQL): one
/// `BEGIN … COMMIT`, one trail lock and one WAL flush for the whole group, and the writes
/// go in by kind, each kind in as few statements as the store can ([`Repo::insert_reporters`],
/// [`Repo::insert_pseudonyms`], [`Repo::append_events`]); so do the checks that lock
/// ([`Repo::live_reporters`], then [`Repo::open_approved_disclosures`], each taking its rows
/// in id order). The checks come first so the group takes its locks in the order a single
/// unit does (records, disclosures, then the access trail) and never deadlocks with another
/// transaction over them. A check of a later unit does not see an earlier unit's writes, so the
/// group answers for them itself: a blind index that an earlier unit of the group inserts
/// is already `Known`, and a KEK version checked once is not read again (the check holds
/// its row share-locked until the commit).
///
/// Every unit must be [`WriteUnit::checks_first`]. `Err` fails the group as a whole: the
/// transaction is rolled back and nothing of any unit is written; on a
/// [`StoreError::Conflict`] (a write refused by a constraint, e.g. another process inserted
/// the same person meanwhile) the caller should apply the units one by one instead.
pub async fn commit_units_in_tx(
    mut tx: Box<dyn Tx>,
    units: &[&WriteUnit],
) -> Result<Vec<UnitOutcome>, StoreError> {
    // Checks. Whether people are known, and whether records are live (locking them), is
    // asked once for the whole group.
    let asked: Vec<[u8; 32]> = units
        .iter()
        .flat_map(|u| u.ops.iter())
        .filter_map(|op| match op {
            UnitOp::RequireUnknown(bi) => Some(*bi),
            _ => None,
        })
        .collect();
    let mut known = if asked.is_empty() {
        HashSet::new()
    } else {
        tx.known_blind_indexes(&asked).await?
    };
    let records: Vec<&str> = units
        .iter()
        .flat_map(|u| u.ops.iter())
        .filter_map(|op| match op {
            UnitOp::RequireNotErased(id) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let live = if records.is_empty() {
        HashSet::new()
    } else {
        tx.live_reporters(&records).await?
    };
    let mut usable_keks = HashSet::new();
    let mut refused: Vec<Option<UnitRefusal>> = Vec::with_capacity(units.len());
    // The units whose checks passed up to their disclosure, which is opened below.
    let mut opens: Vec<(usize, &str, OffsetDateTime)> = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        let mut refusal = None;
        for op in unit.ops.iter().filter(|op| op.is_check()) {
            refusal = match op {
                UnitOp::RequireUnknown(bi) => known.contains(bi).then_some(UnitRefusal::Known),
                UnitOp::RequireNotErased(id) => {
                    (!live.contains(id.as_str())).then_some(UnitRefusal::Changed("reporter"))
                }
                UnitOp::RequireKekUsable(v) if usable_keks.contains(v) => None,
                UnitOp::RequireKekUsable(v) => {
                    let usable = tx.kek_version_usable(*v).await?;
                    if usable {
                        usable_keks.insert(*v);
                    }
                    (!usable).then_some(UnitRefusal::KekRetired(*v))
                }
                // The last check of its unit (`checks_first`).
                UnitOp::OpenDisclosure { id, at } => {
                    opens.push((i, id, *at));
                    None
                }
                _ => None,
            };
            if refusal.is_some() {
                break;
            }
        }
        if refusal.is_none() {
            // A later unit of the group reporting the same person finds them on record.
            for op in &unit.ops {
                if let UnitOp::InsertReporter(r) = op
                    && let Some(bi) = r.blind_index
                {
                    known.insert(bi);
                }
            }
        }
        refused.push(refusal);
    }
    if !opens.is_empty() {
        let asked: Vec<(&str, OffsetDateTime)> =
            opens.iter().map(|(_, id, at)| (*id, *at)).collect();
        let mut opened = tx.open_approved_disclosures(&asked).await?;
        // Two units opening one disclosure: the first in the group has it.
        for (i, id, _) in opens {
            if !opened.remove(id)
                && let Some(r) = refused.get_mut(i)
            {
                *r = Some(UnitRefusal::Changed("disclosure"));
            }
        }
    }
    // Writes, by kind: records before the pseudonyms that refer to them, and the events in
    // unit order, so the trail reads as if the units had committed one after another.
    let (mut reporters, mut pseudonyms, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for (unit, refusal) in units.iter().zip(&refused) {
        if refusal.is_some() {
            continue;
        }
        for op in &unit.ops {
            match op {
                UnitOp::InsertReporter(r) => reporters.push(r),
                UnitOp::InsertPseudonym(p) => pseudonyms.push(p),
                UnitOp::AppendEvent(e) => events.push(e),
                _ => {}
            }
        }
    }
    if !reporters.is_empty() {
        tx.insert_reporters(&reporters).await?;
    }
    if !pseudonyms.is_empty() {
        tx.insert_pseudonyms(&pseudonyms).await?;
    }
    let mut indexes = if events.is_empty() {
        Vec::new()
    } else {
        tx.append_events(&events).await?
    }
    .into_iter();
    let mut outcomes = Vec::with_capacity(units.len());
    for (unit, refusal) in units.iter().zip(refused) {
        outcomes.push(match refusal {
            Some(r) => UnitOutcome::Refused(r),
            None => {
                let appends = unit
                    .ops
                    .iter()
                    .filter(|op| matches!(op, UnitOp::AppendEvent(_)))
                    .count();
                UnitOutcome::Committed {
                    events: indexes.by_ref().take(appends).collect(),
                }
            }
        });
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// A list of checks and writes that commit together. Checks come first in practice, but
/// the operations run in the order given, so a check sees the unit's earlier writes. Not
/// `Debug`: it carries envelopes and claim-code hashes.
#[derive(Default)]
pub struct WriteUnit {
    /// The operations, in order.
    pub ops: Vec<UnitOp>,
}

impl WriteUnit {
    /// Whether every check comes before every write, and the one check that also writes
    /// ([`UnitOp::OpenDisclosure`]) is the last check: then a refused unit has written
    /// nothing, and [`commit_units_in_tx`] can run it with others. A unit that opens a
    /// disclosure must also insert no record: the group opens its disclosures after every
    /// unit's other checks, when later units may already have counted on the record.
    pub fn checks_first(&self) -> bool {
        let opens = self
            .ops
            .iter()
            .any(|op| matches!(op, UnitOp::OpenDisclosure { .. }));
        let inserts = self
            .ops
            .iter()
            .any(|op| matches!(op, UnitOp::InsertReporter(_)));
        if opens && inserts {
            return false;
        }
        let mut written = false;
        for op in &self.ops {
            if op.is_check() {
                if written {
                    return false;
                }
                written = matches!(op, UnitOp::OpenDisclosure { .. });
            } else {
                written = true;
            }
        }
        true
    }
}

impl UnitOp {
    /// Whether the operation can refuse its unit.
    fn is_check(&self) -> bool {
        matches!(
            self,
            UnitOp::RequireUnknown(_)
                | UnitOp::RequireKekUsable(_)
                | UnitOp::RequireNotErased(_)
                | UnitOp::OpenDisclosure { .. }
        )
    }
}

/// One step of a [`WriteUnit`].
pub enum UnitOp {
    /// Refuses the unit ([`UnitRefusal::Known`]) when a reporter record holds this blind
    /// index: the person is on record, and the caller re-seals that record instead.
    RequireUnknown([u8; 32]),
    /// Refuses the unit ([`UnitRefusal::KekRetired`]) unless this KEK version is not retired:
    /// nothing may be stored under a key that is being destroyed.
    RequireKekUsable(u32),
    /// Refuses the unit ([`UnitRefusal::Changed`]) unless the reporter record exists and is
    /// not erased; on PostgreSQL it also locks the row, so an erasure waits for the unit.
    RequireNotErased(String),
    /// Inserts a reporter record; a taken id or blind index is [`StoreError::Conflict`].
    InsertReporter(ReporterRecord),
    /// Inserts a pseudonym.
    InsertPseudonym(PseudonymRecord),
    /// Moves an approved disclosure to opened; refuses the unit ([`UnitRefusal::Changed`])
    /// when it is no longer approved (opened, revoked, expired meanwhile).
    OpenDisclosure {
        /// The disclosure.
        id: String,
        /// When it was opened.
        at: OffsetDateTime,
    },
    /// Appends an event to the access trail.
    AppendEvent(NewEvent),
}

/// Why a unit was not applied although the store worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitRefusal {
    /// [`UnitOp::RequireKekUsable`] failed: reload the keys and prepare the unit again.
    KekRetired(u32),
    /// A row the unit depends on changed after it was read: read again.
    Changed(&'static str),
    /// [`UnitOp::RequireUnknown`] failed: the person is on record.
    Known,
}

/// What [`Store::commit_unit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitOutcome {
    /// Everything was written; the trail indexes of the appended events, in order.
    Committed {
        /// Trail indexes.
        events: Vec<u64>,
    },
    /// Nothing was written.
    Refused(UnitRefusal),
}

/// One [`UnitOp`] through a transaction; `Some` when
/// the unit must be refused, and the transaction is then dropped (rolled back) by the caller.
async fn apply_unit_op(
    tx: &mut dyn Tx,
    op: &UnitOp,
    appended: &mut Vec<u64>,
) -> Result<Option<UnitRefusal>, StoreError> {
    match op {
        UnitOp::RequireUnknown(bi) => {
            if tx.reporter_by_blind_index(bi).await?.is_some() {
                return Ok(Some(UnitRefusal::Known));
            }
        }
        UnitOp::RequireKekUsable(v) => {
            if !tx.kek_version_usable(*v).await? {
                return Ok(Some(UnitRefusal::KekRetired(*v)));
            }
        }
        UnitOp::RequireNotErased(reporter_id) => {
            tx.lock_reporter(reporter_id).await?;
            let live = tx
                .reporter(reporter_id)
                .await?
                .is_some_and(|r| r.erased_at.is_none() && r.envelope.is_some());
            if !live {
                return Ok(Some(UnitRefusal::Changed("reporter")));
            }
        }
        UnitOp::InsertReporter(r) => tx.insert_reporter(r).await?,
        UnitOp::InsertPseudonym(p) => tx.insert_pseudonym(p).await?,
        UnitOp::OpenDisclosure { id, at } => {
            if !tx.open_approved_disclosure(id, *at).await? {
                return Ok(Some(UnitRefusal::Changed("disclosure")));
            }
        }
        UnitOp::AppendEvent(e) => appended.push(tx.append_event(e).await?),
    }
    Ok(None)
}

/// Queries and writes over one connection (inside or outside a transaction).
#[async_trait]
pub trait Repo: Send {
    /// Number of principals ever created (0 on an empty store).
    async fn principal_count(&mut self) -> Result<u64, StoreError>;
    /// Active admins covering a jurisdiction's root.
    async fn active_admin_count(&mut self) -> Result<u64, StoreError>;
    /// The principal whose token hashes to `hash` (revoked ones included; callers check).
    async fn principal_by_token_hash(
        &mut self,
        hash: &[u8; 32],
    ) -> Result<Option<(Principal, [u8; 32])>, StoreError>;
    /// A principal by id.
    async fn principal(&mut self, id: &str) -> Result<Option<Principal>, StoreError>;
    /// Stores a new principal with its token hash.
    async fn insert_principal(
        &mut self,
        p: &Principal,
        token_hash: &[u8; 32],
    ) -> Result<(), StoreError>;
    /// Marks a principal revoked.
    async fn revoke_principal(&mut self, id: &str, at: OffsetDateTime) -> Result<(), StoreError>;

    /// The record whose resident-ID blind index is `index`. In a PostgreSQL transaction the
    /// row is locked until the transaction ends (a re-seal then sees an erasure that
    /// committed meanwhile, instead of overwriting it).
    async fn reporter_by_blind_index(
        &mut self,
        index: &[u8; 32],
    ) -> Result<Option<ReporterRecord>, StoreError>;
    /// A record by id.
    async fn reporter(&mut self, id: &str) -> Result<Option<ReporterRecord>, StoreError>;
    /// Locks a record's row until the transaction ends (PostgreSQL; SQLite has one writer).
    /// Every transaction that changes a record and appends to the access trail takes the row
    /// first and the trail second, so two of them never wait for each other in a circle.
    async fn lock_reporter(&mut self, id: &str) -> Result<(), StoreError>;
    /// Stores a new record.
    async fn insert_reporter(&mut self, r: &ReporterRecord) -> Result<(), StoreError>;
    /// Stores new records, in as few statements as the adapter can.
    async fn insert_reporters(&mut self, rs: &[&ReporterRecord]) -> Result<(), StoreError>;
    /// Of these records, the ones that exist and are not erased. In a PostgreSQL transaction
    /// every one found is locked until the transaction ends, in id order, as
    /// [`Repo::lock_reporter`] locks one.
    async fn live_reporters(
        &mut self,
        ids: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError>;
    /// Which of these blind indexes a record already holds (no rows are locked).
    async fn known_blind_indexes(
        &mut self,
        indexes: &[[u8; 32]],
    ) -> Result<std::collections::HashSet<[u8; 32]>, StoreError>;
    /// Replaces a record's envelope (re-seal with merged identity).
    async fn update_reporter_envelope(
        &mut self,
        id: &str,
        envelope: &[u8],
        kek_version: u32,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// A pseudonym, with `Erased` status if its record was erased.
    async fn pseudonym(&mut self, p: &str) -> Result<Option<PseudonymRecord>, StoreError>;
    /// Every pseudonym of a record, oldest first.
    async fn pseudonyms_of_reporter(
        &mut self,
        reporter_id: &str,
    ) -> Result<Vec<PseudonymRecord>, StoreError>;
    /// Stores a new pseudonym.
    async fn insert_pseudonym(&mut self, p: &PseudonymRecord) -> Result<(), StoreError>;
    /// Stores new pseudonyms, in one statement where the adapter can.
    async fn insert_pseudonyms(&mut self, ps: &[&PseudonymRecord]) -> Result<(), StoreError>;
    /// Changes a pseudonym's status.
    async fn set_pseudonym_status(
        &mut self,
        p: &str,
        status: PseudonymStatus,
    ) -> Result<(), StoreError>;

    /// Stores a new disclosure request.
    async fn insert_disclosure(&mut self, d: &Disclosure) -> Result<(), StoreError>;
    /// A disclosure with its decisions.
    async fn disclosure(&mut self, id: &str) -> Result<Option<Disclosure>, StoreError>;
    /// Records a custodian's decision.
    async fn insert_decision(&mut self, id: &str, d: &Decision) -> Result<(), StoreError>;
    /// Sets an approved disclosure to opened at `at`; false (nothing changed) when it is not
    /// approved any more. Locks the row on PostgreSQL, so two opens cannot both succeed.
    async fn open_approved_disclosure(
        &mut self,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// [`Repo::open_approved_disclosure`] for several disclosures in one statement where the
    /// adapter can, each at its own time (the first given, if one is given twice): the ids
    /// it opened. On PostgreSQL the rows are locked in id order.
    async fn open_approved_disclosures(
        &mut self,
        opens: &[(&str, OffsetDateTime)],
    ) -> Result<std::collections::HashSet<String>, StoreError>;
    /// Moves a disclosure to a new status.
    async fn update_disclosure_status(
        &mut self,
        id: &str,
        status: DisclosureStatus,
        approved_at: Option<OffsetDateTime>,
        opened_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;

    /// Queues a message for the notifier.
    async fn insert_message(&mut self, m: &OutboxMessage) -> Result<(), StoreError>;
    /// Takes a lease on up to `limit` due messages so only one worker delivers each.
    async fn lease_due_messages(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError>;
    /// Marks a message delivered.
    async fn mark_message_delivered(
        &mut self,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Schedules another attempt, or gives up when `next` is `None`.
    async fn mark_message_failed_attempt(
        &mut self,
        id: &str,
        attempts: u32,
        next: Option<OffsetDateTime>,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Appends one event to the access trail and returns its index. Appends are serialised;
    /// indexes are dense from 0.
    async fn append_event(&mut self, e: &NewEvent) -> Result<u64, StoreError>;
    /// Appends events in order, in as few statements as the adapter can; their indexes.
    async fn append_events(&mut self, es: &[&NewEvent]) -> Result<Vec<u64>, StoreError>;
    /// Events `[start, start+limit)`, as (event, exact leaf bytes).
    async fn events(&mut self, start: u64, limit: u32)
    -> Result<Vec<(Event, Vec<u8>)>, StoreError>;
    /// Number of events.
    async fn event_count(&mut self) -> Result<u64, StoreError>;
    /// Stored complete Merkle subtree nodes at the given `(level, index)` coordinates (those
    /// that exist).
    async fn tree_nodes(
        &mut self,
        coords: &[(u32, u64)],
    ) -> Result<Vec<(u32, u64, [u8; 32])>, StoreError>;
    /// Stores a signed checkpoint (append-only; a size already checkpointed is a conflict).
    async fn insert_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), StoreError>;
    /// The checkpoint with the largest tree size.
    async fn latest_checkpoint(&mut self) -> Result<Option<StoredCheckpoint>, StoreError>;
    /// Every checkpoint, by size.
    async fn checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, StoreError>;
    /// Archives a policy version's exact text; false if that version was already archived.
    async fn archive_policy_version(
        &mut self,
        version: &str,
        policy_id: &str,
        file: &str,
        text: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// The archived text of a policy version.
    async fn policy_version_text(&mut self, version: &str) -> Result<Option<String>, StoreError>;
    /// Serialises reward filings (monthly caps are read, then written): a no-op where writes
    /// are already serial (SQLite), a transaction-scoped advisory lock on PostgreSQL.
    async fn lock_reward_filing(&mut self) -> Result<(), StoreError>;
    /// Stores a new reward and its award index rows (for monthly caps).
    async fn insert_reward(
        &mut self,
        r: &crate::settlement::Reward,
        kind: &str,
        month: &str,
    ) -> Result<(), StoreError>;
    /// A reward.
    async fn reward(&mut self, id: &str) -> Result<Option<crate::settlement::Reward>, StoreError>;
    /// Saves `r` if its stored version is still `expected_version` (compare-and-set); false
    /// if someone else moved it first. Records the payment row when `r` is paid.
    async fn update_reward(
        &mut self,
        r: &crate::settlement::Reward,
        expected_version: i64,
    ) -> Result<bool, StoreError>;
    /// Rewards filed in `[from, to)`.
    async fn rewards_between(
        &mut self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<Vec<crate::settlement::Reward>, StoreError>;
    /// Approved rewards whose claim window closed by `now`.
    async fn rewards_due_to_expire(
        &mut self,
        now: OffsetDateTime,
    ) -> Result<Vec<crate::settlement::Reward>, StoreError>;
    /// Sum awarded to one vault record for one outcome kind in one month (`YYYY-MM`), over
    /// rewards not rejected, cancelled or expired.
    async fn awarded_in_month(
        &mut self,
        reporter_id: &str,
        kind: &str,
        month: &str,
    ) -> Result<rust_decimal::Decimal, StoreError>;
    /// A stored Idempotency-Key answer: (request hash, status, body).
    async fn idempotent_answer(
        &mut self,
        principal_id: &str,
        key: &str,
    ) -> Result<Option<(String, u16, String)>, StoreError>;
    /// Stores an Idempotency-Key answer (first writer wins).
    async fn store_idempotent_answer(
        &mut self,
        principal_id: &str,
        key: &str,
        request_hash: &str,
        status: u16,
        body: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Every event about one vault record, in log order.
    async fn events_of_record(&mut self, record: &str) -> Result<Vec<Event>, StoreError>;
    /// Rewards with a positive award to one vault record.
    async fn reward_ids_of_record(&mut self, record: &str) -> Result<Vec<String>, StoreError>;
    /// Envelopes per KEK version (records with an envelope only).
    async fn records_per_key_version(&mut self) -> Result<Vec<(u32, u64)>, StoreError>;
    /// Every KEK version recorded, oldest first.
    async fn key_version_rows(
        &mut self,
    ) -> Result<Vec<crate::lifecycle::KeyVersionRow>, StoreError>;
    /// Records a KEK version (no-op if known).
    async fn insert_key_version(
        &mut self,
        version: u32,
        provider: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Whether records may still be sealed under KEK version `version` (its row is not marked
    /// retired; a version with no row is usable). In a PostgreSQL transaction it share-locks
    /// the row until the transaction ends, so a retirement waits for every seal in flight
    /// under that version and then counts it.
    async fn kek_version_usable(&mut self, version: u32) -> Result<bool, StoreError>;
    /// Marks a KEK version retired.
    async fn retire_key_version(
        &mut self,
        version: u32,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Up to `limit` records with an envelope not on KEK version `active`, by id, starting
    /// after the record id `after` (a cursor, so a record left as it is — a damaged
    /// envelope — is not met again by every batch).
    async fn reporters_not_on_key_version(
        &mut self,
        active: u32,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ReporterRecord>, StoreError>;
    /// How many records have an envelope not on KEK version `active`.
    async fn count_not_on_key_version(&mut self, active: u32) -> Result<u64, StoreError>;
    /// Replaces a record's envelope only if it is still `old_envelope` (compare-and-set).
    async fn swap_reporter_envelope(
        &mut self,
        id: &str,
        old_envelope: &[u8],
        new_envelope: &[u8],
        old_version: u32,
        new_version: u32,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Stores a new job.
    async fn insert_job(&mut self, job: &crate::lifecycle::Job) -> Result<(), StoreError>;
    /// Updates a job's progress and state.
    async fn update_job(&mut self, job: &crate::lifecycle::Job) -> Result<(), StoreError>;
    /// One job.
    async fn job(&mut self, id: &str) -> Result<Option<crate::lifecycle::Job>, StoreError>;
    /// Queued and running jobs, oldest first.
    async fn unfinished_jobs(&mut self) -> Result<Vec<crate::lifecycle::Job>, StoreError>;
    /// Stores an erasure request.
    async fn insert_erasure(&mut self, e: &crate::lifecycle::Erasure) -> Result<(), StoreError>;
    /// One erasure request with its decisions.
    async fn erasure(&mut self, id: &str) -> Result<Option<crate::lifecycle::Erasure>, StoreError>;
    /// Records a custodian's decision on an erasure.
    async fn insert_erasure_decision(&mut self, id: &str, d: &Decision) -> Result<(), StoreError>;
    /// Sets an erasure's state.
    async fn update_erasure_status(
        &mut self,
        id: &str,
        status: crate::lifecycle::ErasureStatus,
        completed_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;
    /// Destroys a record's envelope, blind index and claim code, and marks it erased.
    async fn erase_reporter(&mut self, id: &str, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Records (or moves) a case's closure date.
    async fn close_case(
        &mut self,
        pseudonym: &str,
        closed_on: time::Date,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Records not yet erased whose every case closed before `cutoff` and that no open reward
    /// (pending approval, approved, claimed) still needs: (record, jurisdiction, a pseudonym).
    async fn reporters_due_for_retention(
        &mut self,
        cutoff: time::Date,
        limit: u32,
    ) -> Result<Vec<(String, crate::values::Jurisdiction, String)>, StoreError>;
    /// Events that disclosed a value whose keyed MAC for `field` is `mac_hex`.
    async fn events_disclosing(
        &mut self,
        field: &str,
        mac_hex: &str,
    ) -> Result<Vec<Event>, StoreError>;
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Root hash at that size.
    pub root: [u8; 32],
    /// The signed note text.
    pub note: String,
    /// When it was signed.
    pub created_at: OffsetDateTime,
}

/// A write transaction: everything in it commits together, or nothing does.
#[async_trait]
pub trait Tx: Repo {
    /// For writes only the leader may make (periodic checkpoints, jobs): fails unless this
    /// process holds the leader lease, and keeps a new leader from starting until this
    /// transaction ends. Always succeeds where one process owns the store (SQLite).
    async fn fence(&mut self) -> Result<(), StoreError>;
    /// Makes the transaction durable.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The ciphertext failed authentication (tampered, swapped, or wrong key).
    #[error("integrity check failed")]
    Integrity,
    /// The keys cannot be used right now (HSM unreachable, keyring not loaded, …).
    #[error("keys unavailable: {0}")]
    Unavailable(String),
    /// A key lifecycle request that cannot be done (retiring the active version, an unknown
    /// version).
    #[error("{0}")]
    Refused(String),
}

/// Where envelopes are sealed and opened, and keyed indexes computed. The local keyring is
/// one implementation; an HSM over PKCS#11 is another.
pub trait KeyProvider: Send + Sync {
    /// Seals `plaintext` for record `record_id` in `jurisdiction`; returns the envelope and
    /// the KEK version its data key is wrapped under.
    fn seal(
        &self,
        record_id: &str,
        jurisdiction: &str,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, u32), KeyError>;
    /// Opens an envelope bound to `record_id` and `jurisdiction`.
    fn open(
        &self,
        record_id: &str,
        jurisdiction: &str,
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyError>;
    /// Keyed blind index for finding a record by a normalised value (never a plain hash).
    fn blind_index(&self, kind: &str, normalized: &str) -> Result<[u8; 32], KeyError>;
    /// Keyed MAC of a normalised value that left the vault (leak tracing).
    fn field_mac(&self, field: &str, normalized: &str) -> Result<[u8; 32], KeyError>;
    /// The access trail's origin line (the log's name in its checkpoints).
    fn log_origin(&self) -> String;
    /// Signs a checkpoint of the access trail as a C2SP signed note.
    fn sign_checkpoint(
        &self,
        cp: &vault_crypto::checkpoint::Checkpoint,
    ) -> Result<String, KeyError>;
    /// The note verifier key `<name>+<hex id>+<base64 key>`.
    fn log_verifier_key(&self) -> String;
    /// Signs a statement for a reporter (a receipt) with the statement key, which is not the
    /// log key.
    fn sign_statement(&self, text: &str) -> Result<String, KeyError>;
    /// The statement key's note verifier key.
    fn statement_verifier_key(&self) -> String;

    /// `local` (the age-protected keyring) or `pkcs11` (an HSM).
    fn provider_kind(&self) -> &'static str;
    /// The KEK version new envelopes are wrapped under.
    fn active_version(&self) -> u32;
    /// Every KEK version the provider holds, oldest first.
    fn key_versions(&self) -> Result<Vec<KeyVersion>, KeyError>;
    /// Creates a new KEK version (newest + 1), makes it active for new envelopes and persists
    /// it (keyring file, or a new key object in the HSM). Returns the new version.
    fn rotate(&self, now_unix: i64) -> Result<u32, KeyError>;
    /// Destroys KEK `version`. Refuses the active version. The caller checks first that no
    /// record uses it.
    fn retire(&self, version: u32) -> Result<(), KeyError>;
    /// Re-wraps an envelope's data key under the active version, returning the new envelope
    /// and its version. Only the data key is unwrapped: the identity is never decrypted.
    fn rewrap(
        &self,
        record_id: &str,
        jurisdiction: &str,
        envelope: &[u8],
    ) -> Result<(Vec<u8>, u32), KeyError>;
    /// Picks up versions another process created or retired (another replica, the CLI).
    /// Returns whether anything changed.
    fn reload(&self) -> Result<bool, KeyError>;
    /// Whether the keys can be used right now (keyring loaded, HSM token present and logged
    /// in). Readiness and fail-closed checks call this; it must be cheap.
    fn check(&self) -> Result<(), KeyError>;
}

/// One KEK version held by a key provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyVersion {
    /// Version number, as envelopes record it.
    pub version: u32,
    /// When it was created (Unix seconds).
    pub created_at_unix: i64,
}

/// One message on its way to a reporter's contact. Lives only for the delivery attempt.
pub struct Delivery<'a> {
    /// `msg_…`.
    pub message_id: &'a str,
    /// The pseudonym it is addressed to (the gateway may show it to the reporter).
    pub pseudonym: &'a str,
    /// Kind of message.
    pub kind: crate::values::MessageKind,
    /// Text.
    pub body: &'a str,
    /// Mobile or landline, if the reporter gave one.
    pub phone: Option<&'a str>,
    /// E-mail, if the reporter gave one.
    pub email: Option<&'a str>,
}

/// Delivers messages to reporters (SMS/e-mail gateway webhook; a local file in development).
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Attempts one delivery. The error text must not contain the contact.
    async fn deliver(&self, d: &Delivery<'_>) -> Result<(), String>;
}

/// Randomness is a port too, so identifiers and claim codes are reproducible in tests.
pub use vault_crypto::random::RandomSource;

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(ops: Vec<UnitOp>) -> WriteUnit {
        WriteUnit { ops }
    }

    fn open() -> UnitOp {
        UnitOp::OpenDisclosure {
            id: "dis_x".into(),
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn append() -> UnitOp {
        UnitOp::AppendEvent(NewEvent::default())
    }

    #[test]
    fn checks_first_is_checks_then_writes() {
        // The shapes the vault builds: a seal and an opening.
        assert!(
            unit(vec![
                UnitOp::RequireUnknown([1; 32]),
                UnitOp::RequireKekUsable(1),
                append()
            ])
            .checks_first()
        );
        assert!(
            unit(vec![
                UnitOp::RequireNotErased("rec_x".into()),
                open(),
                append()
            ])
            .checks_first()
        );
        assert!(unit(vec![]).checks_first());
        // A check after a write, or after the check that writes, could refuse a unit that
        // has written something: not for a group.
        assert!(!unit(vec![append(), UnitOp::RequireKekUsable(1)]).checks_first());
        assert!(!unit(vec![open(), UnitOp::RequireNotErased("rec_x".into())]).checks_first());
        assert!(!unit(vec![open(), open()]).checks_first());
        // An opening decided after the group's checks must not take a record with it.
        let record = crate::model::ReporterRecord {
            id: "rec_x".into(),
            jurisdiction: crate::values::Jurisdiction::NATIONAL,
            blind_index: Some([2; 32]),
            envelope: None,
            kek_version: None,
            anonymous: true,
            claim_code_hash: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            erased_at: None,
        };
        assert!(!unit(vec![open(), UnitOp::InsertReporter(record)]).checks_first());
    }
}

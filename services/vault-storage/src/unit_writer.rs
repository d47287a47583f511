//! SQLite's hot writes: whole [`WriteUnit`]s on one dedicated thread, committed in groups.
//!
//! Through sqlx every statement is a round trip to the connection's worker thread, and
//! between two statements the request's task waits for a runtime worker that 31 other
//! requests also want: a seal of seven statements held SQLite's one write lock for
//! hundreds of microseconds, most of it waiting. Here a unit is prepared in full before it
//! reaches the store (key work, JSON, age encryption all done), travels to this thread in
//! one hand-off, and runs with cached prepared statements and no waiting at all. Units that
//! arrive while a group is being written form the next group: one `BEGIN IMMEDIATE … COMMIT`
//! for all of them, each unit inside its own savepoint so a refused or failed unit leaves
//! the others whole. A failed COMMIT fails every unit in the group; nothing is reported
//! written that is not.
//!
//! The thread shares SQLite's single write lock with the sqlx writer connection by holding
//! that connection (checked out of its one-connection pool) for the length of each group,
//! so the two never contend on the file lock, and it keeps the process's access-trail
//! frontier cache current for the sqlx path. Durability settings are the sqlx writer's.

use std::cell::Cell;
use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::hooks::Wal;
use rusqlite::{Connection, ErrorCode, OpenFlags, params};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};
use vault_crypto::merkle::{self, Frontier};
use vault_domain::audit::{Event, NewEvent};
use vault_domain::model::{PseudonymRecord, ReporterRecord};
use vault_domain::ports::{StoreError, UnitOp, UnitOutcome, UnitRefusal, WriteUnit};

use crate::repo::{FrontierCache, frontier_coords};
use crate::wal::{self, Plan, WalCopy};

/// Units in one group at most: bounds how long one COMMIT keeps the others waiting.
const MAX_GROUP: usize = 64;
/// How long the thread keeps the write token across back-to-back groups.
const HOLD_TOKEN: Duration = Duration::from_millis(20);
/// Units waiting for the thread at most; beyond that a caller waits to enqueue.
const QUEUE: usize = 1024;
/// The connection's busy timeout, as on the sqlx connections.
const BUSY_TIMEOUT: Duration = Duration::from_millis(2000);

thread_local! {
    /// Frames in the WAL after this thread's last commit, from SQLite's WAL hook (which runs
    /// on the committing thread).
    static WAL_FRAMES: Cell<i32> = const { Cell::new(0) };
}

/// The writer connection's WAL hook. Installing it also removes SQLite's automatic
/// checkpoint from this connection: [`crate::wal`] does that work instead.
fn note_wal_frames(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(frames));
    Ok(())
}

/// The unit's result, and how many units its group held.
pub(crate) type Reply = oneshot::Sender<(Result<UnitOutcome, StoreError>, usize)>;

/// Queues `unit` for a group writer and waits for its group's result.
pub(crate) async fn hand_off(
    queue: &mpsc::Sender<(WriteUnit, Reply)>,
    unit: WriteUnit,
) -> Result<(Result<UnitOutcome, StoreError>, usize), StoreError> {
    let stopped = || StoreError::Unavailable("the group writer has stopped".into());
    let (reply, answer) = oneshot::channel();
    queue.send((unit, reply)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())
}

/// The handle requests use; the thread ends when every handle is gone.
#[derive(Clone)]
pub(crate) struct UnitWriter {
    queue: mpsc::Sender<(WriteUnit, Reply)>,
}

/// What the thread needs.
pub(crate) struct UnitWriterConfig {
    /// The database file.
    pub path: PathBuf,
    /// `PRAGMA synchronous` value: `NORMAL` or `FULL`.
    pub synchronous: &'static str,
    /// The sqlx writer pool (one connection): held for each group as the write token.
    pub token: AnyPool,
    /// How long to wait for the token before answering "unavailable".
    pub acquire_timeout: Duration,
    /// The process's access-trail frontier cache, shared with the sqlx path.
    pub frontier: FrontierCache,
    /// Shared with the store's checkpoint task: who copies the log when, and when this
    /// thread starts it over.
    pub wal: Arc<WalCopy>,
}

impl UnitWriter {
    /// Starts the writer thread. Must be called within a tokio runtime.
    pub(crate) fn start(cfg: UnitWriterConfig) -> Result<UnitWriter, StoreError> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("rv-sqlite-writer".into())
            .spawn(move || run(cfg, rx, handle))
            .map_err(|e| StoreError::Unavailable(format!("could not start the writer: {e}")))?;
        Ok(UnitWriter { queue })
    }

    /// Applies `unit` with the next group; also says how many units that group held.
    pub(crate) async fn commit(
        &self,
        unit: WriteUnit,
    ) -> Result<(Result<UnitOutcome, StoreError>, usize), StoreError> {
        hand_off(&self.queue, unit).await
    }
}

fn run(
    cfg: UnitWriterConfig,
    mut rx: mpsc::Receiver<(WriteUnit, Reply)>,
    handle: tokio::runtime::Handle,
) {
    use tokio::sync::mpsc::error::TryRecvError;
    // The token's drop returns it to the pool with a spawned task: needs the runtime.
    let _rt = handle.enter();
    let mut conn: Option<Connection> = None;
    let mut group: Vec<(WriteUnit, Reply)> = Vec::with_capacity(MAX_GROUP);
    // The write token, kept from one group to the next while units keep coming (returning
    // it to the pool is a task on the runtime, and taking it back waits for that task), but
    // never longer than HOLD_TOKEN at a time, so the sqlx path's writers get their turn.
    let mut token: Option<(sqlx::pool::PoolConnection<sqlx::Any>, Instant)> = None;
    loop {
        let first = match rx.try_recv() {
            Ok(unit) => unit,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                token = None;
                match rx.blocking_recv() {
                    Some(unit) => unit,
                    None => break,
                }
            }
        };
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        if token
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() >= HOLD_TOKEN)
        {
            token = None;
        }
        let results = match &token {
            Some(_) => None,
            None => match handle.block_on(tokio::time::timeout(
                cfg.acquire_timeout,
                cfg.token.acquire(),
            )) {
                Ok(Ok(t)) => {
                    token = Some((t, Instant::now()));
                    None
                }
                Ok(Err(e)) => Some(crate::unavailable(e)),
                Err(_) => Some(StoreError::Unavailable("timed out waiting to write".into())),
            },
        };
        let size = group.len();
        let results = match results {
            Some(e) => group.iter().map(|_| Err(e.clone())).collect(),
            None => {
                let units: Vec<&WriteUnit> = group.iter().map(|(u, _)| u).collect();
                let (results, failed) = write_group(&cfg, &mut conn, &units);
                if failed {
                    token = None;
                }
                results
            }
        };
        for ((_, reply), result) in group.drain(..).zip(results) {
            let _ = reply.send((result, size));
        }
        // Between groups, with the token held (no writer of this process is in the way), and
        // after the replies: only the units queued meanwhile wait for it.
        let frames = i64::from(WAL_FRAMES.with(Cell::get));
        if token.is_some()
            && cfg.wal.plan(frames) == Plan::Restart
            && let Some(c) = &conn
            && wal::restart(c, &cfg.wal, BUSY_TIMEOUT)
        {
            WAL_FRAMES.with(|f| f.set(0));
        }
    }
}

/// One group, with the token held. Every unit gets exactly one result; `true` when the
/// group as a whole failed.
fn write_group(
    cfg: &UnitWriterConfig,
    conn: &mut Option<Connection>,
    units: &[&WriteUnit],
) -> (Vec<Result<UnitOutcome, StoreError>>, bool) {
    let all = |e: StoreError| (units.iter().map(|_| Err(e.clone())).collect(), true);
    if conn.is_none() {
        match open(cfg) {
            Ok(c) => *conn = Some(c),
            Err(e) => return all(e),
        }
    }
    let Some(c) = conn.as_mut() else {
        return all(StoreError::Unavailable("no writer connection".into()));
    };
    match in_transaction(cfg, c, units) {
        Ok(results) => (results, false),
        Err(e) => {
            // The handle may keep failing after an I/O error (disk full, file turned
            // read-only): open a fresh one for the next group.
            let _ = c.execute_batch("ROLLBACK");
            *conn = None;
            if let Ok(mut cache) = cfg.frontier.lock() {
                *cache = None;
            }
            let appends: usize = units.iter().map(|u| appends_in(u)).sum();
            for _ in 0..appends {
                crate::obs::append_lost();
            }
            all(e)
        }
    }
}

fn appends_in(u: &WriteUnit) -> usize {
    u.ops
        .iter()
        .filter(|op| matches!(op, UnitOp::AppendEvent(_)))
        .count()
}

fn open(cfg: &UnitWriterConfig) -> Result<Connection, StoreError> {
    let c = Connection::open_with_flags(
        &cfg.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(store_err)?;
    // The same settings as the sqlx connections (the journal mode is the file's own), and
    // the units' savepoint journals in memory: a group's outgrew SQLite's 64 KiB in-memory
    // spill limit, and every group then created, wrote and unlinked a temporary file.
    c.execute_batch(&format!(
        "PRAGMA synchronous={}; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;",
        cfg.synchronous
    ))
    .map_err(store_err)?;
    c.busy_timeout(BUSY_TIMEOUT).map_err(store_err)?;
    WAL_FRAMES.with(|f| f.set(0));
    c.wal_hook(Some(note_wal_frames));
    c.set_prepared_statement_cache_capacity(32);
    Ok(c)
}

/// `BEGIN IMMEDIATE`, every unit in its savepoint, `COMMIT`. `Err` only for what fails the
/// whole group (the caller rolls back); a unit's own failure is its result.
fn in_transaction(
    cfg: &UnitWriterConfig,
    c: &mut Connection,
    units: &[&WriteUnit],
) -> Result<Vec<Result<UnitOutcome, StoreError>>, StoreError> {
    c.execute_batch("BEGIN IMMEDIATE").map_err(store_err)?;
    // The log's size now, with the lock held: another process (the CLI) may have appended
    // since this one last did. A cached frontier of that size is current; otherwise the
    // O(log n) frontier nodes are read.
    let size: i64 = c
        .prepare_cached("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_events")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(store_err)?;
    let size = u64::try_from(size).map_err(|_| corrupt("event index"))?;
    let cached = cfg
        .frontier
        .lock()
        .ok()
        .and_then(|g| g.as_ref().filter(|f| f.size() == size).cloned());
    let mut frontier = match cached {
        Some(f) => f,
        None => load_frontier(c, size)?,
    };
    let mut results = Vec::with_capacity(units.len());
    let mut appended_any = false;
    for unit in units {
        c.execute_batch("SAVEPOINT unit").map_err(store_err)?;
        let before = frontier.clone();
        let timer = (appends_in(unit) > 0).then(Instant::now);
        match apply(c, unit, &mut frontier) {
            Ok(outcome) => {
                if matches!(outcome, UnitOutcome::Committed { .. }) {
                    c.execute_batch("RELEASE unit").map_err(store_err)?;
                    appended_any |= appends_in(unit) > 0;
                } else {
                    c.execute_batch("ROLLBACK TO unit; RELEASE unit")
                        .map_err(store_err)?;
                    frontier = before;
                }
                if let Some(t) = timer {
                    metrics::histogram!(crate::obs::AUDIT_APPEND_DURATION)
                        .record(t.elapsed().as_secs_f64());
                }
                results.push(Ok(outcome));
            }
            Err(e) => {
                c.execute_batch("ROLLBACK TO unit; RELEASE unit")
                    .map_err(store_err)?;
                frontier = before;
                if timer.is_some() {
                    crate::obs::append_lost();
                }
                // An I/O error, unlike a conflict, is the file's and fails the group.
                if matches!(e, StoreError::Unavailable(_)) {
                    return Err(e);
                }
                results.push(Err(e));
            }
        }
    }
    c.execute_batch("COMMIT").map_err(store_err)?;
    if appended_any && let Ok(mut cache) = cfg.frontier.lock() {
        *cache = Some(frontier);
    }
    Ok(results)
}

fn load_frontier(c: &Connection, size: u64) -> Result<Frontier, StoreError> {
    let mut hashes = Vec::new();
    let mut stmt = c
        .prepare_cached("SELECT hash FROM audit_nodes WHERE level = ?1 AND idx = ?2")
        .map_err(store_err)?;
    for (level, index) in frontier_coords(size) {
        let idx = i64::try_from(index).map_err(|_| corrupt("node index"))?;
        let h: Vec<u8> = stmt
            .query_row(params![i64::from(level), idx], |r| r.get(0))
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => corrupt("access trail node missing"),
                other => store_err(other),
            })?;
        hashes.push(<[u8; 32]>::try_from(h).map_err(|_| corrupt("hash is not 32 bytes"))?);
    }
    Frontier::from_parts(size, hashes).map_err(|_| corrupt("access trail frontier"))
}

/// The unit's operations in order, inside its savepoint.
fn apply(
    c: &Connection,
    unit: &WriteUnit,
    frontier: &mut Frontier,
) -> Result<UnitOutcome, StoreError> {
    let mut events = Vec::new();
    for op in &unit.ops {
        match op {
            UnitOp::RequireUnknown(bi) => {
                let known: Option<i64> = c
                    .prepare_cached("SELECT 1 FROM reporters WHERE blind_index = ?1")
                    .and_then(|mut s| optional(s.query_row([bi.as_slice()], |r| r.get(0))))
                    .map_err(store_err)?;
                if known.is_some() {
                    return Ok(UnitOutcome::Refused(UnitRefusal::Known));
                }
            }
            UnitOp::RequireKekUsable(v) => {
                let retired: Option<Option<i64>> = c
                    .prepare_cached("SELECT retired_at FROM key_versions WHERE version = ?1")
                    .and_then(|mut s| optional(s.query_row([i64::from(*v)], |r| r.get(0))))
                    .map_err(store_err)?;
                if matches!(retired, Some(Some(_))) {
                    return Ok(UnitOutcome::Refused(UnitRefusal::KekRetired(*v)));
                }
            }
            UnitOp::RequireNotErased(reporter_id) => {
                let live: Option<i64> = c
                    .prepare_cached(
                        "SELECT 1 FROM reporters WHERE id = ?1 AND erased_at IS NULL
                         AND envelope IS NOT NULL",
                    )
                    .and_then(|mut s| optional(s.query_row([reporter_id], |r| r.get(0))))
                    .map_err(store_err)?;
                if live.is_none() {
                    return Ok(UnitOutcome::Refused(UnitRefusal::Changed("reporter")));
                }
            }
            UnitOp::InsertReporter(r) => insert_reporter(c, r)?,
            UnitOp::InsertPseudonym(p) => insert_pseudonym(c, p)?,
            UnitOp::OpenDisclosure { id, at } => {
                let n = c
                    .prepare_cached(
                        "UPDATE disclosures SET status = 'opened', opened_at = ?1
                         WHERE id = ?2 AND status = 'approved'",
                    )
                    .and_then(|mut s| s.execute(params![at.unix_timestamp(), id]))
                    .map_err(store_err)?;
                if n != 1 {
                    return Ok(UnitOutcome::Refused(UnitRefusal::Changed("disclosure")));
                }
            }
            UnitOp::AppendEvent(e) => events.push(append(c, e, frontier)?),
        }
    }
    Ok(UnitOutcome::Committed { events })
}

fn insert_reporter(c: &Connection, r: &ReporterRecord) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO reporters (id, jurisdiction, blind_index, envelope, kek_version, anonymous,
            claim_code_hash, created_at, updated_at, erased_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.id,
            r.jurisdiction.to_string(),
            r.blind_index.map(|b| b.to_vec()),
            r.envelope,
            r.kek_version.map(i64::from),
            i64::from(r.anonymous),
            r.claim_code_hash,
            r.created_at.unix_timestamp(),
            r.updated_at.unix_timestamp(),
        ])
    })
    .map_err(store_err)?;
    Ok(())
}

fn insert_pseudonym(c: &Connection, p: &PseudonymRecord) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO pseudonyms (pseudonym, reporter_id, jurisdiction, case_ref, received_at,
            channel, employee_of_reported_unit, anonymous, status, created_at, created_by,
            origin, parent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .and_then(|mut s| {
        s.execute(params![
            p.pseudonym,
            p.reporter_id,
            p.jurisdiction.to_string(),
            p.case_ref.to_string(),
            p.received_at.unix_timestamp(),
            p.channel.as_str(),
            i64::from(p.employee_of_reported_unit),
            i64::from(p.anonymous),
            p.status.as_str(),
            p.created_at.unix_timestamp(),
            p.created_by,
            p.origin.as_str(),
            p.parent,
        ])
    })
    .map_err(store_err)?;
    Ok(())
}

/// The event at the log's end: its Merkle nodes, the event, its field MACs.
fn append(c: &Connection, e: &NewEvent, frontier: &mut Frontier) -> Result<u64, StoreError> {
    let index = frontier.size();
    let idx = i64::try_from(index).map_err(|_| corrupt("event index"))?;
    let event = Event::from_new(index, e);
    let leaf = event.leaf_bytes();
    let nodes = frontier
        .push(merkle::leaf_hash(&leaf))
        .map_err(|_| corrupt("access trail frontier"))?;
    {
        let mut s = c
            .prepare_cached("INSERT INTO audit_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
            .map_err(store_err)?;
        for (level, node, hash) in &nodes {
            let node = i64::try_from(*node).map_err(|_| corrupt("node index"))?;
            s.execute(params![i64::from(*level), node, hash.as_slice()])
                .map_err(store_err)?;
        }
    }
    c.prepare_cached(
        "INSERT INTO audit_events (idx, leaf, time, action, actor_id, disclosure_id, pseudonym,
            record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut s| {
        s.execute(params![
            idx,
            leaf,
            e.time.map(|t| t.unix_timestamp()).unwrap_or(0),
            event.action.as_str(),
            event.actor_id,
            event.disclosure_id,
            event.pseudonym,
            event.record,
        ])
    })
    .map_err(store_err)?;
    if !event.disclosed.is_empty() {
        let mut s = c
            .prepare_cached("INSERT INTO audit_field_macs (idx, field, mac) VALUES (?1, ?2, ?3)")
            .map_err(store_err)?;
        for m in &event.disclosed {
            s.execute(params![idx, m.field.as_str(), m.mac])
                .map_err(store_err)?;
        }
    }
    Ok(index)
}

fn optional<T>(r: rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// A uniqueness violation is a conflict (the caller reads again); anything else is the
/// database being unavailable. Never carries bound values: SQLite's messages name
/// columns, not values.
fn store_err(e: rusqlite::Error) -> StoreError {
    match &e {
        // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY, as sqlx's
        // `is_unique_violation`.
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == ErrorCode::ConstraintViolation
                && matches!(f.extended_code, 2067 | 1555) =>
        {
            StoreError::Conflict(e.to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

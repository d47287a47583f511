//! The queries. One implementation serves a pooled connection (reads) and a transaction
//! (writes), because both deref to an `AnyConnection`.

use async_trait::async_trait;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;
use vault_domain::audit::{Event, NewEvent};
use vault_domain::lifecycle::{Erasure, ErasureStatus, Job, JobStatus, KeyVersionRow};
use vault_domain::model::{
    Decision, Disclosure, DisclosureStatus, OutboxMessage, Principal, PseudonymOrigin,
    PseudonymRecord, PseudonymStatus, ReporterRecord,
};
use vault_domain::ports::{Repo, StoreError, Tx};
use vault_domain::values::{
    CaseRef, Channel, IdentityField, Jurisdiction, MessageKind, Purpose, Role,
};

use std::sync::{Arc, Mutex};

use vault_crypto::merkle::{self, Frontier};
use vault_domain::ports::StoredCheckpoint;

use crate::{Engine, unavailable};

/// The access trail's frontier after the last commit of this process.
pub(crate) type FrontierCache = Arc<Mutex<Option<Frontier>>>;

/// The `(level, index)` of the maximal complete subtrees of a tree of `size` leaves, leftmost
/// first: exactly the nodes a frontier holds.
pub(crate) fn frontier_coords(size: u64) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for level in (0..64u32).rev() {
        if size >> level & 1 == 1 {
            out.push((level, pos >> level));
            pos += 1u64 << level;
        }
    }
    out
}

enum Inner {
    Pooled(PoolConnection<Any>),
    Tx(Transaction<'static, Any>),
}

/// A connection, in a transaction or not.
pub struct SqlConn {
    inner: Inner,
    engine: Engine,
    frontier: FrontierCache,
    /// The frontier after this transaction's appends; published to the cache on commit only,
    /// so a rolled-back append never poisons it.
    pending: Option<Frontier>,
    /// Raised when the commit fails, so the pool replaces the connection.
    broken: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// This process's leader lease, for [`Tx::fence`].
    lease: crate::leader::LeaseSlot,
    /// PostgreSQL: this transaction holds the access trail's advisory lock.
    trail_locked: bool,
    /// Events this transaction appended: all lost if its commit fails.
    appended: usize,
}

impl SqlConn {
    pub(crate) fn tx(
        tx: Transaction<'static, Any>,
        engine: Engine,
        frontier: FrontierCache,
    ) -> Self {
        Self {
            inner: Inner::Tx(tx),
            engine,
            frontier,
            pending: None,
            broken: None,
            lease: crate::leader::LeaseSlot::default(),
            trail_locked: false,
            appended: 0,
        }
    }

    /// Lets [`Tx::fence`] see this process's leader lease.
    pub(crate) fn with_lease(mut self, lease: crate::leader::LeaseSlot) -> Self {
        self.lease = lease;
        self
    }

    pub(crate) fn with_broken_flag(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.broken = Some(flag);
        self
    }

    pub(crate) fn pooled(
        conn: PoolConnection<Any>,
        engine: Engine,
        frontier: FrontierCache,
    ) -> Self {
        Self {
            inner: Inner::Pooled(conn),
            engine,
            frontier,
            pending: None,
            broken: None,
            lease: crate::leader::LeaseSlot::default(),
            trail_locked: false,
            appended: 0,
        }
    }

    /// The frontier of a log of `size` events: this transaction's, the cached one if it is
    /// still current, or O(log n) stored nodes.
    async fn frontier_at(&mut self, size: u64) -> Result<Frontier, StoreError> {
        if let Some(f) = self.pending.take().filter(|f| f.size() == size) {
            return Ok(f);
        }
        if let Ok(cache) = self.frontier.lock()
            && let Some(f) = cache.as_ref().filter(|f| f.size() == size)
        {
            return Ok(f.clone());
        }
        let coords = frontier_coords(size);
        let nodes = self.tree_nodes(&coords).await?;
        let mut hashes = Vec::with_capacity(coords.len());
        for c in &coords {
            let h = nodes
                .iter()
                .find(|(l, i, _)| (*l, *i) == *c)
                .map(|(_, _, h)| *h)
                .ok_or_else(|| corrupt("access trail node missing"))?;
            hashes.push(h);
        }
        Frontier::from_parts(size, hashes).map_err(|_| corrupt("access trail frontier"))
    }

    async fn insert_nodes(&mut self, nodes: &[(u32, u64, [u8; 32])]) -> Result<(), StoreError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO audit_nodes (level, idx, hash) VALUES {}",
            placeholders(nodes.len(), 3)
        );
        // Only placeholders are interpolated; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (level, index, hash) in nodes {
            q = q
                .bind(i64::from(*level))
                .bind(i64::try_from(*index).map_err(|_| corrupt("node index"))?)
                .bind(hash.to_vec());
        }
        q.execute(self.c()).await.map_err(unavailable)?;
        Ok(())
    }

    /// Appends `e` as event `index`: its Merkle nodes, the event, its field MACs. Fails with
    /// [`StoreError::Conflict`], having written nothing, when `index` is already taken.
    async fn append_at(&mut self, index: u64, e: &NewEvent) -> Result<u64, StoreError> {
        let next = i64::try_from(index).map_err(|_| corrupt("event index"))?;
        let event = Event::from_new(index, e);
        let leaf = event.leaf_bytes();
        let mut frontier = self.frontier_at(index).await?;
        let nodes = frontier
            .push(merkle::leaf_hash(&leaf))
            .map_err(|_| corrupt("access trail frontier"))?;
        self.insert_nodes(&nodes).await?;
        sqlx::query(
            "INSERT INTO audit_events (idx, leaf, time, action, actor_id, disclosure_id, pseudonym, record)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(next)
        .bind(leaf)
        .bind(e.time.map(ts).unwrap_or(0))
        .bind(event.action.as_str())
        .bind(event.actor_id.clone())
        .bind(event.disclosure_id.clone())
        .bind(event.pseudonym.clone())
        .bind(event.record.clone())
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        for m in &event.disclosed {
            sqlx::query("INSERT INTO audit_field_macs (idx, field, mac) VALUES ($1, $2, $3)")
                .bind(next)
                .bind(m.field.as_str())
                .bind(m.mac.clone())
                .execute(self.c())
                .await
                .map_err(unavailable)?;
        }
        self.pending = Some(frontier);
        self.appended += 1;
        Ok(index)
    }

    /// Appends `es` as events `index..`, with one statement each for their Merkle nodes,
    /// the events and their field MACs (per chunk of rows). The caller holds the trail and
    /// knows `index` is the log's end (this transaction appended just before it).
    async fn append_batch_at(
        &mut self,
        index: u64,
        es: &[&NewEvent],
    ) -> Result<Vec<u64>, StoreError> {
        let mut frontier = self.frontier_at(index).await?;
        let mut nodes = Vec::new();
        let mut events = Vec::with_capacity(es.len());
        for (i, e) in (index..).zip(es) {
            let event = Event::from_new(i, e);
            let leaf = event.leaf_bytes();
            nodes.extend(
                frontier
                    .push(merkle::leaf_hash(&leaf))
                    .map_err(|_| corrupt("access trail frontier"))?,
            );
            events.push((i, event, leaf, e.time.map(ts).unwrap_or(0)));
        }
        for chunk in nodes.chunks(300) {
            self.insert_nodes(chunk).await?;
        }
        for chunk in events.chunks(100) {
            let sql = format!(
                "INSERT INTO audit_events (idx, leaf, time, action, actor_id, disclosure_id, pseudonym, record) VALUES {}",
                placeholders(chunk.len(), 8)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (i, event, leaf, time) in chunk {
                q = q
                    .bind(i64::try_from(*i).map_err(|_| corrupt("event index"))?)
                    .bind(leaf.clone())
                    .bind(*time)
                    .bind(event.action.as_str())
                    .bind(event.actor_id.clone())
                    .bind(event.disclosure_id.clone())
                    .bind(event.pseudonym.clone())
                    .bind(event.record.clone());
            }
            q.execute(self.c()).await.map_err(unavailable)?;
        }
        let macs: Vec<(i64, &str, &str)> = events
            .iter()
            .flat_map(|(i, event, _, _)| {
                let i = i64::try_from(*i).unwrap_or(i64::MAX);
                event
                    .disclosed
                    .iter()
                    .map(move |m| (i, m.field.as_str(), m.mac.as_str()))
            })
            .collect();
        for chunk in macs.chunks(300) {
            let sql = format!(
                "INSERT INTO audit_field_macs (idx, field, mac) VALUES {}",
                placeholders(chunk.len(), 3)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (i, field, mac) in chunk {
                q = q.bind(*i).bind(field.to_string()).bind(mac.to_string());
            }
            q.execute(self.c()).await.map_err(unavailable)?;
        }
        self.pending = Some(frontier);
        self.appended += events.len();
        Ok(events.iter().map(|(i, ..)| *i).collect())
    }

    /// Gives every event its Merkle nodes (events appended before the tree existed).
    pub(crate) async fn backfill_nodes(&mut self) -> Result<(), StoreError> {
        let have: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_nodes WHERE level = 0")
            .fetch_one(self.c())
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(unavailable)?;
        let total = self.event_count().await?;
        let mut done = u64::try_from(have).unwrap_or(0);
        if done >= total {
            return Ok(());
        }
        let mut frontier = self.frontier_at(done).await?;
        while done < total {
            let batch = self.events(done, 1000).await?;
            if batch.is_empty() {
                break;
            }
            let mut nodes = Vec::new();
            for (_, leaf) in &batch {
                nodes.extend(
                    frontier
                        .push(merkle::leaf_hash(leaf))
                        .map_err(|_| corrupt("access trail frontier"))?,
                );
            }
            for chunk in nodes.chunks(300) {
                self.insert_nodes(chunk).await?;
            }
            done = frontier.size();
        }
        tracing::info!(events = done, "built access-trail Merkle nodes");
        Ok(())
    }

    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        self.c()
    }

    fn c(&mut self) -> &mut AnyConnection {
        match &mut self.inner {
            Inner::Pooled(c) => c,
            Inner::Tx(t) => t,
        }
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// `($1, …, $cols), ($cols+1, …), …` for a multi-row `VALUES`: only placeholders, never
/// values, go into SQL text.
pub(crate) fn placeholders(rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * cols + c + 1));
        }
        out.push(')');
    }
    out
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn from_ts(v: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(v).map_err(|_| corrupt("timestamp out of range"))
}

fn from_ts_opt(v: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    v.map(from_ts).transpose()
}

fn get<'r, T>(row: &'r AnyRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get::<T, _>(col).map_err(unavailable)
}

fn hash32(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    v.try_into().map_err(|_| corrupt("hash is not 32 bytes"))
}

fn u32_of(v: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(what))
}

fn principal_of(row: &AnyRow) -> Result<Principal, StoreError> {
    Ok(Principal {
        id: get(row, "id")?,
        name: get(row, "name")?,
        role: Role::parse(&get::<String>(row, "role")?).ok_or_else(|| corrupt("role"))?,
        jurisdiction: Jurisdiction::parse(&get::<String>(row, "jurisdiction")?)
            .map_err(|_| corrupt("jurisdiction"))?,
        age_recipient: get(row, "age_recipient")?,
        created_at: from_ts(get(row, "created_at")?)?,
        revoked_at: from_ts_opt(get(row, "revoked_at")?)?,
    })
}

/// `$1, $2, …, $n`.
fn numbered(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn reporter_of(row: &AnyRow) -> Result<ReporterRecord, StoreError> {
    let kek: Option<i64> = get(row, "kek_version")?;
    Ok(ReporterRecord {
        id: get(row, "id")?,
        jurisdiction: Jurisdiction::parse(&get::<String>(row, "jurisdiction")?)
            .map_err(|_| corrupt("jurisdiction"))?,
        blind_index: get::<Option<Vec<u8>>>(row, "blind_index")?
            .map(hash32)
            .transpose()?,
        envelope: get(row, "envelope")?,
        kek_version: kek.map(|v| u32_of(v, "kek_version")).transpose()?,
        anonymous: get::<i64>(row, "anonymous")? != 0,
        claim_code_hash: get(row, "claim_code_hash")?,
        created_at: from_ts(get(row, "created_at")?)?,
        updated_at: from_ts(get(row, "updated_at")?)?,
        erased_at: from_ts_opt(get(row, "erased_at")?)?,
    })
}

const PSEUDONYM_COLS: &str = "p.pseudonym, p.reporter_id, p.jurisdiction, p.case_ref, \
     p.received_at, p.channel, p.employee_of_reported_unit, p.anonymous, p.status, \
     p.created_at, p.created_by, p.origin, p.parent, r.erased_at AS erased_at";

fn pseudonym_of(row: &AnyRow) -> Result<PseudonymRecord, StoreError> {
    let erased: Option<i64> = get(row, "erased_at")?;
    let status = PseudonymStatus::parse(&get::<String>(row, "status")?)
        .ok_or_else(|| corrupt("pseudonym status"))?;
    Ok(PseudonymRecord {
        pseudonym: get(row, "pseudonym")?,
        reporter_id: get(row, "reporter_id")?,
        jurisdiction: Jurisdiction::parse(&get::<String>(row, "jurisdiction")?)
            .map_err(|_| corrupt("jurisdiction"))?,
        case_ref: CaseRef::parse(&get::<String>(row, "case_ref")?)
            .map_err(|_| corrupt("case_ref"))?,
        received_at: from_ts(get(row, "received_at")?)?,
        channel: Channel::parse(&get::<String>(row, "channel")?)
            .ok_or_else(|| corrupt("channel"))?,
        employee_of_reported_unit: get::<i64>(row, "employee_of_reported_unit")? != 0,
        anonymous: get::<i64>(row, "anonymous")? != 0,
        status: if erased.is_some() {
            PseudonymStatus::Erased
        } else {
            status
        },
        created_at: from_ts(get(row, "created_at")?)?,
        created_by: get(row, "created_by")?,
        origin: PseudonymOrigin::parse(&get::<String>(row, "origin")?)
            .ok_or_else(|| corrupt("origin"))?,
        parent: get(row, "parent")?,
    })
}

fn disclosure_of(row: &AnyRow) -> Result<Disclosure, StoreError> {
    let fields: String = get(row, "fields")?;
    let fields = fields
        .split(',')
        .map(|f| IdentityField::parse(f).ok_or_else(|| corrupt("disclosure field")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Disclosure {
        id: get(row, "id")?,
        pseudonym: get(row, "pseudonym")?,
        reporter_id: get(row, "reporter_id")?,
        jurisdiction: Jurisdiction::parse(&get::<String>(row, "jurisdiction")?)
            .map_err(|_| corrupt("jurisdiction"))?,
        requester_id: get(row, "requester_id")?,
        purpose: Purpose::parse(&get::<String>(row, "purpose")?)
            .ok_or_else(|| corrupt("purpose"))?,
        justification: get(row, "justification")?,
        fields,
        status: DisclosureStatus::parse(&get::<String>(row, "status")?)
            .ok_or_else(|| corrupt("disclosure status"))?,
        approvals_required: u32_of(get(row, "approvals_required")?, "approvals_required")?,
        decisions: Vec::new(),
        created_at: from_ts(get(row, "created_at")?)?,
        approved_at: from_ts_opt(get(row, "approved_at")?)?,
        opened_at: from_ts_opt(get(row, "opened_at")?)?,
    })
}

fn message_of(row: &AnyRow) -> Result<OutboxMessage, StoreError> {
    Ok(OutboxMessage {
        id: get(row, "id")?,
        pseudonym: get(row, "pseudonym")?,
        reporter_id: get(row, "reporter_id")?,
        kind: MessageKind::parse(&get::<String>(row, "kind")?)
            .ok_or_else(|| corrupt("message kind"))?,
        body: get(row, "body")?,
        created_at: from_ts(get(row, "created_at")?)?,
        attempts: u32_of(get(row, "attempts")?, "attempts")?,
        next_attempt_at: from_ts(get::<Option<i64>>(row, "next_attempt_at")?.unwrap_or(0))?,
    })
}

fn b(v: bool) -> i64 {
    i64::from(v)
}

#[async_trait]
impl Repo for SqlConn {
    async fn principal_count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM principals")
            .fetch_one(self.c())
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn active_admin_count(&mut self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM principals WHERE role = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(self.c())
        .await
        .and_then(|r| r.try_get("n"))
        .map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn principal_by_token_hash(
        &mut self,
        hash: &[u8; 32],
    ) -> Result<Option<(Principal, [u8; 32])>, StoreError> {
        let row = sqlx::query("SELECT * FROM principals WHERE token_hash = $1")
            .bind(hash.to_vec())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?;
        match row {
            Some(r) => Ok(Some((principal_of(&r)?, hash32(get(&r, "token_hash")?)?))),
            None => Ok(None),
        }
    }

    async fn principal(&mut self, id: &str) -> Result<Option<Principal>, StoreError> {
        sqlx::query("SELECT * FROM principals WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
            .map(|r| principal_of(&r))
            .transpose()
    }

    async fn insert_principal(
        &mut self,
        p: &Principal,
        token_hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO principals (id, name, role, jurisdiction, age_recipient, token_hash, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(p.id.clone())
        .bind(p.name.clone())
        .bind(p.role.as_str())
        .bind(p.jurisdiction.to_string())
        .bind(p.age_recipient.clone())
        .bind(token_hash.to_vec())
        .bind(ts(p.created_at))
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn revoke_principal(&mut self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE principals SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(ts(at))
            .bind(id.to_owned())
            .execute(self.c())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn reporter_by_blind_index(
        &mut self,
        index: &[u8; 32],
    ) -> Result<Option<ReporterRecord>, StoreError> {
        let sql = if self.engine == Engine::Postgres && matches!(self.inner, Inner::Tx(_)) {
            "SELECT * FROM reporters WHERE blind_index = $1 FOR UPDATE"
        } else {
            "SELECT * FROM reporters WHERE blind_index = $1"
        };
        sqlx::query(sql)
            .bind(index.to_vec())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
            .map(|r| reporter_of(&r))
            .transpose()
    }

    async fn reporter(&mut self, id: &str) -> Result<Option<ReporterRecord>, StoreError> {
        sqlx::query("SELECT * FROM reporters WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
            .map(|r| reporter_of(&r))
            .transpose()
    }

    async fn lock_reporter(&mut self, id: &str) -> Result<(), StoreError> {
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT id FROM reporters WHERE id = $1 FOR UPDATE")
                .bind(id.to_owned())
                .fetch_optional(self.c())
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn insert_reporter(&mut self, r: &ReporterRecord) -> Result<(), StoreError> {
        self.insert_reporters(&[r]).await
    }

    async fn insert_reporters(&mut self, rs: &[&ReporterRecord]) -> Result<(), StoreError> {
        for chunk in rs.chunks(100) {
            let sql = format!(
                "INSERT INTO reporters (id, jurisdiction, blind_index, envelope, kek_version, anonymous,
                    claim_code_hash, created_at, updated_at) VALUES {}",
                placeholders(chunk.len(), 9)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                q = q
                    .bind(r.id.clone())
                    .bind(r.jurisdiction.to_string())
                    .bind(r.blind_index.map(|b| b.to_vec()))
                    .bind(r.envelope.clone())
                    .bind(r.kek_version.map(i64::from))
                    .bind(b(r.anonymous))
                    .bind(r.claim_code_hash.clone())
                    .bind(ts(r.created_at))
                    .bind(ts(r.updated_at));
            }
            q.execute(self.c()).await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn known_blind_indexes(
        &mut self,
        indexes: &[[u8; 32]],
    ) -> Result<std::collections::HashSet<[u8; 32]>, StoreError> {
        let mut known = std::collections::HashSet::new();
        for chunk in indexes.chunks(200) {
            let sql = format!(
                "SELECT blind_index FROM reporters WHERE blind_index IN ({})",
                numbered(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for bi in chunk {
                q = q.bind(bi.to_vec());
            }
            for row in q.fetch_all(self.c()).await.map_err(unavailable)? {
                known.insert(hash32(get(&row, "blind_index")?)?);
            }
        }
        Ok(known)
    }

    async fn live_reporters(
        &mut self,
        ids: &[&str],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut ids: Vec<&str> = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        // PostgreSQL locks the rows as it returns them: in id order, the order every group
        // and every other transaction that locks several records takes them in.
        let lock = if self.engine == Engine::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let mut live = std::collections::HashSet::new();
        for chunk in ids.chunks(200) {
            let sql = format!(
                "SELECT id FROM reporters WHERE id IN ({}) AND erased_at IS NULL \
                 AND envelope IS NOT NULL ORDER BY id{lock}",
                numbered(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind((*id).to_owned());
            }
            for row in q.fetch_all(self.c()).await.map_err(unavailable)? {
                live.insert(get::<String>(&row, "id")?);
            }
        }
        Ok(live)
    }

    async fn update_reporter_envelope(
        &mut self,
        id: &str,
        envelope: &[u8],
        kek_version: u32,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // Never on an erased record: an erasure that committed after this transaction read
        // the record must not be undone by a new report of the same person.
        let done = sqlx::query(
            "UPDATE reporters SET envelope = $1, kek_version = $2, updated_at = $3
             WHERE id = $4 AND erased_at IS NULL",
        )
        .bind(envelope.to_vec())
        .bind(i64::from(kek_version))
        .bind(ts(at))
        .bind(id.to_owned())
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict(
                "the record was erased while this request ran; retry".into(),
            ));
        }
        Ok(())
    }

    async fn pseudonym(&mut self, p: &str) -> Result<Option<PseudonymRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {PSEUDONYM_COLS} FROM pseudonyms p JOIN reporters r ON r.id = p.reporter_id WHERE p.pseudonym = $1"
        ));
        sqlx::query(sql)
            .bind(p.to_owned())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
            .map(|r| pseudonym_of(&r))
            .transpose()
    }

    async fn pseudonyms_of_reporter(
        &mut self,
        reporter_id: &str,
    ) -> Result<Vec<PseudonymRecord>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {PSEUDONYM_COLS} FROM pseudonyms p JOIN reporters r ON r.id = p.reporter_id
             WHERE p.reporter_id = $1 ORDER BY p.received_at, p.created_at, p.pseudonym"
        ));
        sqlx::query(sql)
            .bind(reporter_id.to_owned())
            .fetch_all(self.c())
            .await
            .map_err(unavailable)?
            .iter()
            .map(pseudonym_of)
            .collect()
    }

    async fn insert_pseudonym(&mut self, p: &PseudonymRecord) -> Result<(), StoreError> {
        self.insert_pseudonyms(&[p]).await
    }

    async fn insert_pseudonyms(&mut self, ps: &[&PseudonymRecord]) -> Result<(), StoreError> {
        for chunk in ps.chunks(100) {
            let sql = format!(
                "INSERT INTO pseudonyms (pseudonym, reporter_id, jurisdiction, case_ref, received_at, channel,
                    employee_of_reported_unit, anonymous, status, created_at, created_by, origin, parent)
                 VALUES {}",
                placeholders(chunk.len(), 13)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in chunk {
                q = q
                    .bind(p.pseudonym.clone())
                    .bind(p.reporter_id.clone())
                    .bind(p.jurisdiction.to_string())
                    .bind(p.case_ref.to_string())
                    .bind(ts(p.received_at))
                    .bind(p.channel.as_str())
                    .bind(b(p.employee_of_reported_unit))
                    .bind(b(p.anonymous))
                    .bind(p.status.as_str())
                    .bind(ts(p.created_at))
                    .bind(p.created_by.clone())
                    .bind(p.origin.as_str())
                    .bind(p.parent.clone());
            }
            q.execute(self.c()).await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn set_pseudonym_status(
        &mut self,
        p: &str,
        status: PseudonymStatus,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE pseudonyms SET status = $1 WHERE pseudonym = $2")
            .bind(status.as_str())
            .bind(p.to_owned())
            .execute(self.c())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn insert_disclosure(&mut self, d: &Disclosure) -> Result<(), StoreError> {
        let fields = d
            .fields
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",");
        sqlx::query(
            "INSERT INTO disclosures (id, pseudonym, reporter_id, jurisdiction, requester_id, purpose,
                justification, fields, status, approvals_required, created_at, approved_at, opened_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL)",
        )
        .bind(d.id.clone())
        .bind(d.pseudonym.clone())
        .bind(d.reporter_id.clone())
        .bind(d.jurisdiction.to_string())
        .bind(d.requester_id.clone())
        .bind(d.purpose.as_str())
        .bind(d.justification.clone())
        .bind(fields)
        .bind(d.status.as_str())
        .bind(i64::from(d.approvals_required))
        .bind(ts(d.created_at))
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn disclosure(&mut self, id: &str) -> Result<Option<Disclosure>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM disclosures WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let mut d = disclosure_of(&row)?;
        let rows = sqlx::query(
            "SELECT principal_id, approve, comment, at FROM disclosure_decisions
             WHERE disclosure_id = $1 ORDER BY at, principal_id",
        )
        .bind(id.to_owned())
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?;
        for r in rows {
            d.decisions.push(Decision {
                principal_id: get(&r, "principal_id")?,
                approve: get::<i64>(&r, "approve")? != 0,
                comment: get(&r, "comment")?,
                at: from_ts(get(&r, "at")?)?,
            });
        }
        Ok(Some(d))
    }

    async fn insert_decision(&mut self, id: &str, d: &Decision) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO disclosure_decisions (disclosure_id, principal_id, approve, comment, at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_owned())
        .bind(d.principal_id.clone())
        .bind(b(d.approve))
        .bind(d.comment.clone())
        .bind(ts(d.at))
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn open_approved_disclosure(
        &mut self,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE disclosures SET status = 'opened', opened_at = $1
             WHERE id = $2 AND status = 'approved'",
        )
        .bind(ts(at))
        .bind(id.to_owned())
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn open_approved_disclosures(
        &mut self,
        opens: &[(&str, OffsetDateTime)],
    ) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut opens: Vec<(&str, OffsetDateTime)> = opens.to_vec();
        opens.sort_by(|a, b| a.0.cmp(b.0));
        opens.dedup_by(|later, first| later.0 == first.0);
        let mut opened = std::collections::HashSet::new();
        for chunk in opens.chunks(100) {
            // One time per disclosure: CASE id WHEN $1 THEN $2 WHEN $3 THEN $4 … END.
            let n = chunk.len();
            let cases: String = (0..n)
                .map(|i| format!(" WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2))
                .collect();
            let ids: Vec<String> = (0..n).map(|i| format!("${}", 2 * n + 1 + i)).collect();
            let ids = ids.join(", ");
            // PostgreSQL: the rows locked in id order first, as `live_reporters` does.
            let which = if self.engine == Engine::Postgres {
                format!(
                    "(SELECT id FROM disclosures WHERE id IN ({ids}) AND status = 'approved' \
                     ORDER BY id FOR UPDATE)"
                )
            } else {
                format!("({ids})")
            };
            let sql = format!(
                "UPDATE disclosures SET status = 'opened', opened_at = CASE id{cases} END \
                 WHERE status = 'approved' AND id IN {which} RETURNING id"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, at) in chunk {
                q = q.bind((*id).to_owned()).bind(ts(*at));
            }
            for (id, _) in chunk {
                q = q.bind((*id).to_owned());
            }
            for row in q.fetch_all(self.c()).await.map_err(unavailable)? {
                opened.insert(get::<String>(&row, "id")?);
            }
        }
        Ok(opened)
    }

    async fn update_disclosure_status(
        &mut self,
        id: &str,
        status: DisclosureStatus,
        approved_at: Option<OffsetDateTime>,
        opened_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE disclosures SET status = $1, approved_at = COALESCE($2, approved_at),
                opened_at = COALESCE($3, opened_at) WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(approved_at.map(ts))
        .bind(opened_at.map(ts))
        .bind(id.to_owned())
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn insert_message(&mut self, m: &OutboxMessage) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO outbox (id, pseudonym, reporter_id, kind, body, created_at, attempts, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(m.id.clone())
        .bind(m.pseudonym.clone())
        .bind(m.reporter_id.clone())
        .bind(m.kind.as_str())
        .bind(m.body.clone())
        .bind(ts(m.created_at))
        .bind(i64::from(m.attempts))
        .bind(ts(m.next_attempt_at))
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn lease_due_messages(
        &mut self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM outbox WHERE delivered_at IS NULL AND next_attempt_at IS NOT NULL
               AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(ts(now))
        .bind(i64::from(limit))
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let m = message_of(&r)?;
            // Take the lease only if nobody else took it in between.
            let taken = sqlx::query(
                "UPDATE outbox SET lease_until = $1 WHERE id = $2
                   AND (lease_until IS NULL OR lease_until <= $3)",
            )
            .bind(ts(lease_until))
            .bind(m.id.clone())
            .bind(ts(now))
            .execute(self.c())
            .await
            .map_err(unavailable)?
            .rows_affected();
            if taken == 1 {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn mark_message_delivered(
        &mut self,
        id: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET delivered_at = $1, lease_until = NULL, attempts = attempts + 1 WHERE id = $2",
        )
        .bind(ts(at))
        .bind(id.to_owned())
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn mark_message_failed_attempt(
        &mut self,
        id: &str,
        attempts: u32,
        next: Option<OffsetDateTime>,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = $1, next_attempt_at = $2, lease_until = NULL, last_error = $3
             WHERE id = $4",
        )
        .bind(i64::from(attempts))
        .bind(next.map(ts))
        .bind(error.chars().take(500).collect::<String>())
        .bind(id.to_owned())
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    #[tracing::instrument(
        name = "store.append_event",
        skip_all,
        fields(db.system = self.engine.as_str())
    )]
    async fn append_event(&mut self, e: &NewEvent) -> Result<u64, StoreError> {
        let timer = crate::obs::AppendTimer::start();
        if self.engine == Engine::Postgres {
            if self.trail_locked {
                // The lock is ours since this transaction's first append, so the log ends
                // where that append left it: no need to ask (a group of units appends many).
                if let Some(next) = self.pending.as_ref().map(Frontier::size) {
                    let index = self.append_at(next, e).await?;
                    timer.succeeded();
                    return Ok(index);
                }
            } else {
                // Serialise appends across every replica: one linear log, no gaps, no forks.
                sqlx::query("SELECT pg_advisory_xact_lock(7270001)")
                    .execute(self.c())
                    .await
                    .map_err(unavailable)?;
                self.trail_locked = true;
            }
        }
        // SQLite has one writer per process, so the size this process last committed (or
        // this transaction reached) is almost always the log's: use it and save a round
        // trip. Another process (the CLI) may have appended meanwhile; then the index is
        // taken, the insert fails on the primary key before writing anything, and the size
        // is read from the log instead.
        let guess = if self.engine == Engine::Sqlite {
            self.pending.as_ref().map(Frontier::size).or_else(|| {
                self.frontier
                    .lock()
                    .ok()
                    .and_then(|c| c.as_ref().map(Frontier::size))
            })
        } else {
            None
        };
        if let Some(next) = guess {
            match self.append_at(next, e).await {
                Ok(index) => {
                    timer.succeeded();
                    return Ok(index);
                }
                Err(StoreError::Conflict(_)) => {
                    self.pending = None;
                    if let Ok(mut c) = self.frontier.lock() {
                        *c = None;
                    }
                }
                Err(other) => return Err(other),
            }
        }
        let next: i64 = sqlx::query("SELECT COALESCE(MAX(idx) + 1, 0) AS n FROM audit_events")
            .fetch_one(self.c())
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(unavailable)?;
        let next = u64::try_from(next).map_err(|_| corrupt("event index"))?;
        let index = self.append_at(next, e).await?;
        timer.succeeded();
        Ok(index)
    }

    async fn append_events(&mut self, es: &[&NewEvent]) -> Result<Vec<u64>, StoreError> {
        let Some((first, rest)) = es.split_first() else {
            return Ok(Vec::new());
        };
        // The first the usual way: it takes the trail (PostgreSQL's lock) and finds its end.
        let first = self.append_event(first).await?;
        if rest.is_empty() {
            return Ok(vec![first]);
        }
        let started = std::time::Instant::now();
        match self.append_batch_at(first + 1, rest).await {
            Ok(mut indexes) => {
                for _ in rest {
                    metrics::histogram!(crate::obs::AUDIT_APPEND_DURATION)
                        .record(started.elapsed().as_secs_f64());
                }
                indexes.insert(0, first);
                Ok(indexes)
            }
            Err(e) => {
                for _ in rest {
                    crate::obs::append_lost();
                }
                Err(e)
            }
        }
    }

    async fn events(
        &mut self,
        start: u64,
        limit: u32,
    ) -> Result<Vec<(Event, Vec<u8>)>, StoreError> {
        let start = i64::try_from(start).unwrap_or(i64::MAX);
        let rows =
            sqlx::query("SELECT idx, leaf FROM audit_events WHERE idx >= $1 ORDER BY idx LIMIT $2")
                .bind(start)
                .bind(i64::from(limit))
                .fetch_all(self.c())
                .await
                .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                let leaf: Vec<u8> = get(r, "leaf")?;
                let ev = Event::parse_leaf(&leaf).ok_or_else(|| corrupt("event leaf"))?;
                Ok((ev, leaf))
            })
            .collect()
    }

    async fn tree_nodes(
        &mut self,
        coords: &[(u32, u64)],
    ) -> Result<Vec<(u32, u64, [u8; 32])>, StoreError> {
        let mut out = Vec::with_capacity(coords.len());
        // Proofs need at most ~130 nodes; keep each statement's bind count modest.
        for chunk in coords.chunks(100) {
            let mut sql = String::from("SELECT level, idx, hash FROM audit_nodes WHERE ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                sql.push_str(&format!(
                    "(level = ${} AND idx = ${})",
                    2 * i + 1,
                    2 * i + 2
                ));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (level, index) in chunk {
                q = q
                    .bind(i64::from(*level))
                    .bind(i64::try_from(*index).map_err(|_| corrupt("node index"))?);
            }
            for r in q.fetch_all(self.c()).await.map_err(unavailable)? {
                out.push((
                    u32_of(get(&r, "level")?, "node level")?,
                    u64::try_from(get::<i64>(&r, "idx")?).map_err(|_| corrupt("node index"))?,
                    hash32(get(&r, "hash")?)?,
                ));
            }
        }
        Ok(out)
    }

    async fn insert_checkpoint(&mut self, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(i64::try_from(cp.size).map_err(|_| corrupt("checkpoint size"))?)
        .bind(cp.root.to_vec())
        .bind(cp.note.clone())
        .bind(ts(cp.created_at))
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn latest_checkpoint(&mut self) -> Result<Option<StoredCheckpoint>, StoreError> {
        sqlx::query("SELECT * FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
            .map(|r| checkpoint_of(&r))
            .transpose()
    }

    async fn checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        sqlx::query("SELECT * FROM audit_checkpoints ORDER BY size")
            .fetch_all(self.c())
            .await
            .map_err(unavailable)?
            .iter()
            .map(checkpoint_of)
            .collect()
    }

    async fn archive_policy_version(
        &mut self,
        version: &str,
        policy_id: &str,
        file: &str,
        text: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let exists = sqlx::query("SELECT 1 AS x FROM policy_versions WHERE version = $1")
            .bind(version.to_owned())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
            .is_some();
        if exists {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO policy_versions (version, policy_id, file, text, loaded_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(version.to_owned())
        .bind(policy_id.to_owned())
        .bind(file.to_owned())
        .bind(text.to_owned())
        .bind(ts(at))
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(true)
    }

    async fn policy_version_text(&mut self, version: &str) -> Result<Option<String>, StoreError> {
        sqlx::query("SELECT text FROM policy_versions WHERE version = $1")
            .bind(version.to_owned())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
            .map(|r| get::<String>(&r, "text"))
            .transpose()
    }

    async fn lock_reward_filing(&mut self) -> Result<(), StoreError> {
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7270002)")
                .execute(self.c())
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn insert_reward(
        &mut self,
        r: &vault_domain::settlement::Reward,
        kind: &str,
        month: &str,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_string(r).map_err(|_| corrupt("reward encoding"))?;
        sqlx::query(
            "INSERT INTO rewards (id, jurisdiction, status, created_at, claim_deadline, doc, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.id.clone())
        .bind(r.jurisdiction.to_string())
        .bind(r.status.as_str())
        .bind(ts(r.created_at))
        .bind(r.claim_deadline.map(ts))
        .bind(doc)
        .bind(r.version)
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        for a in r.awards.iter().filter(|a| !a.amount.is_zero()) {
            sqlx::query(
                "INSERT INTO reward_awards (reward_id, reporter_id, kind, month, amount)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(r.id.clone())
            .bind(a.reporter_id.clone())
            .bind(kind.to_owned())
            .bind(month.to_owned())
            .bind(a.amount.to_string())
            .execute(self.c())
            .await
            .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn reward(
        &mut self,
        id: &str,
    ) -> Result<Option<vault_domain::settlement::Reward>, StoreError> {
        sqlx::query("SELECT doc FROM rewards WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
            .map(|r| reward_of(&r))
            .transpose()
    }

    async fn update_reward(
        &mut self,
        r: &vault_domain::settlement::Reward,
        expected_version: i64,
    ) -> Result<bool, StoreError> {
        let doc = serde_json::to_string(r).map_err(|_| corrupt("reward encoding"))?;
        let n = sqlx::query(
            "UPDATE rewards SET status = $1, claim_deadline = $2, doc = $3, version = $4
             WHERE id = $5 AND version = $6",
        )
        .bind(r.status.as_str())
        .bind(r.claim_deadline.map(ts))
        .bind(doc)
        .bind(r.version)
        .bind(r.id.clone())
        .bind(expected_version)
        .execute(self.c())
        .await
        .map_err(unavailable)?
        .rows_affected();
        if n != 1 {
            return Ok(false);
        }
        if let (vault_domain::settlement::RewardStatus::Paid, Some(p)) = (r.status, &r.payment) {
            // The primary key makes a second payment of one reward impossible, whatever the
            // application does.
            sqlx::query(
                "INSERT INTO reward_payments (reward_id, payment_ref, amount, paid_on, recorded_by, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(r.id.clone())
            .bind(p.payment_ref.clone())
            .bind(p.amount.to_string())
            .bind(p.paid_on.clone())
            .bind(p.recorded_by.clone())
            .bind(ts(p.at))
            .execute(self.c())
            .await
            .map_err(unavailable)?;
        }
        Ok(true)
    }

    async fn rewards_between(
        &mut self,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
    ) -> Result<Vec<vault_domain::settlement::Reward>, StoreError> {
        sqlx::query(
            "SELECT doc FROM rewards WHERE created_at >= $1 AND created_at < $2
             ORDER BY created_at, id",
        )
        .bind(from.map(ts).unwrap_or(i64::MIN))
        .bind(to.map(ts).unwrap_or(i64::MAX))
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?
        .iter()
        .map(reward_of)
        .collect()
    }

    async fn rewards_due_to_expire(
        &mut self,
        now: OffsetDateTime,
    ) -> Result<Vec<vault_domain::settlement::Reward>, StoreError> {
        sqlx::query(
            "SELECT doc FROM rewards WHERE status = 'approved' AND claim_deadline <= $1 LIMIT 500",
        )
        .bind(ts(now))
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?
        .iter()
        .map(reward_of)
        .collect()
    }

    async fn awarded_in_month(
        &mut self,
        reporter_id: &str,
        kind: &str,
        month: &str,
    ) -> Result<rust_decimal::Decimal, StoreError> {
        let rows = sqlx::query(
            "SELECT a.amount AS amount FROM reward_awards a JOIN rewards r ON r.id = a.reward_id
             WHERE a.reporter_id = $1 AND a.kind = $2 AND a.month = $3
               AND r.status NOT IN ('rejected', 'cancelled', 'expired')",
        )
        .bind(reporter_id.to_owned())
        .bind(kind.to_owned())
        .bind(month.to_owned())
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?;
        let mut sum = rust_decimal::Decimal::ZERO;
        for r in rows {
            let text: String = get(&r, "amount")?;
            sum += text
                .parse::<rust_decimal::Decimal>()
                .map_err(|_| corrupt("award amount"))?;
        }
        Ok(sum)
    }

    async fn idempotent_answer(
        &mut self,
        principal_id: &str,
        key: &str,
    ) -> Result<Option<(String, u16, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT request_hash, status, body FROM idempotency WHERE principal_id = $1 AND key = $2",
        )
        .bind(principal_id.to_owned())
        .bind(key.to_owned())
        .fetch_optional(self.c())
        .await
        .map_err(unavailable)?;
        match row {
            Some(r) => Ok(Some((
                get(&r, "request_hash")?,
                u16::try_from(get::<i64>(&r, "status")?).map_err(|_| corrupt("status"))?,
                get(&r, "body")?,
            ))),
            None => Ok(None),
        }
    }

    async fn store_idempotent_answer(
        &mut self,
        principal_id: &str,
        key: &str,
        request_hash: &str,
        status: u16,
        body: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO idempotency (principal_id, key, request_hash, status, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(principal_id.to_owned())
        .bind(key.to_owned())
        .bind(request_hash.to_owned())
        .bind(i64::from(status))
        .bind(body.to_owned())
        .bind(ts(at))
        .execute(self.c())
        .await;
        match r.map_err(unavailable) {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn events_of_record(&mut self, record: &str) -> Result<Vec<Event>, StoreError> {
        sqlx::query("SELECT leaf FROM audit_events WHERE record = $1 ORDER BY idx")
            .bind(record.to_owned())
            .fetch_all(self.c())
            .await
            .map_err(unavailable)?
            .iter()
            .map(event_of)
            .collect()
    }

    async fn reward_ids_of_record(&mut self, record: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query("SELECT reward_id FROM reward_awards WHERE reporter_id = $1 ORDER BY reward_id")
            .bind(record.to_owned())
            .fetch_all(self.c())
            .await
            .map_err(unavailable)?
            .iter()
            .map(|r| get::<String>(r, "reward_id"))
            .collect()
    }

    async fn events_disclosing(
        &mut self,
        field: &str,
        mac_hex: &str,
    ) -> Result<Vec<Event>, StoreError> {
        sqlx::query(
            "SELECT e.leaf AS leaf FROM audit_field_macs m JOIN audit_events e ON e.idx = m.idx
             WHERE m.field = $1 AND m.mac = $2 ORDER BY e.idx",
        )
        .bind(field.to_owned())
        .bind(mac_hex.to_owned())
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?
        .iter()
        .map(event_of)
        .collect()
    }

    async fn records_per_key_version(&mut self) -> Result<Vec<(u32, u64)>, StoreError> {
        sqlx::query(
            "SELECT kek_version, COUNT(*) AS n FROM reporters
             WHERE envelope IS NOT NULL AND kek_version IS NOT NULL
             GROUP BY kek_version ORDER BY kek_version",
        )
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| {
            Ok((
                u32_of(get(r, "kek_version")?, "kek_version")?,
                u64::try_from(get::<i64>(r, "n")?).unwrap_or(0),
            ))
        })
        .collect()
    }

    async fn key_version_rows(&mut self) -> Result<Vec<KeyVersionRow>, StoreError> {
        sqlx::query("SELECT version, created_at, retired_at FROM key_versions ORDER BY version")
            .fetch_all(self.c())
            .await
            .map_err(unavailable)?
            .iter()
            .map(|r| {
                Ok(KeyVersionRow {
                    version: u32_of(get(r, "version")?, "version")?,
                    created_at: from_ts(get(r, "created_at")?)?,
                    retired_at: from_ts_opt(get(r, "retired_at")?)?,
                })
            })
            .collect()
    }

    async fn insert_key_version(
        &mut self,
        version: u32,
        provider: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO key_versions (version, provider, created_at, retired_at)
             VALUES ($1, $2, $3, NULL) ON CONFLICT (version) DO NOTHING",
        )
        .bind(i64::from(version))
        .bind(provider.to_owned())
        .bind(ts(at))
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn kek_version_usable(&mut self, version: u32) -> Result<bool, StoreError> {
        let sql = match self.engine {
            // One writer at a time: the transaction itself keeps retirement out.
            Engine::Sqlite => "SELECT retired_at FROM key_versions WHERE version = $1",
            Engine::Postgres => "SELECT retired_at FROM key_versions WHERE version = $1 FOR SHARE",
        };
        let row = sqlx::query(sql)
            .bind(i64::from(version))
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?;
        match row {
            None => Ok(true),
            Some(r) => Ok(r
                .try_get::<Option<i64>, _>("retired_at")
                .map_err(unavailable)?
                .is_none()),
        }
    }

    async fn retire_key_version(
        &mut self,
        version: u32,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE key_versions SET retired_at = $1 WHERE version = $2")
            .bind(ts(at))
            .bind(i64::from(version))
            .execute(self.c())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn reporters_not_on_key_version(
        &mut self,
        active: u32,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ReporterRecord>, StoreError> {
        sqlx::query(
            "SELECT * FROM reporters WHERE envelope IS NOT NULL AND kek_version <> $1
               AND id > $2
             ORDER BY id LIMIT $3",
        )
        .bind(i64::from(active))
        .bind(after.unwrap_or("").to_owned())
        .bind(i64::from(limit))
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?
        .iter()
        .map(reporter_of)
        .collect()
    }

    async fn count_not_on_key_version(&mut self, active: u32) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM reporters WHERE envelope IS NOT NULL AND kek_version <> $1",
        )
        .bind(i64::from(active))
        .fetch_one(self.c())
        .await
        .and_then(|r| r.try_get("n"))
        .map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn swap_reporter_envelope(
        &mut self,
        id: &str,
        old_envelope: &[u8],
        new_envelope: &[u8],
        old_version: u32,
        new_version: u32,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE reporters SET envelope = $1, kek_version = $2, updated_at = $3
             WHERE id = $4 AND kek_version = $5 AND envelope = $6",
        )
        .bind(new_envelope.to_vec())
        .bind(i64::from(new_version))
        .bind(ts(at))
        .bind(id.to_owned())
        .bind(i64::from(old_version))
        .bind(old_envelope.to_vec())
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_job(&mut self, job: &Job) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO jobs (id, kind, status, requested_by, total, done, failed, created_at,
                updated_at, finished_at, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(job.id.clone())
        .bind(job.kind.clone())
        .bind(job.status.as_str())
        .bind(job.requested_by.clone())
        .bind(i64::try_from(job.total).unwrap_or(i64::MAX))
        .bind(i64::try_from(job.done).unwrap_or(i64::MAX))
        .bind(i64::try_from(job.failed).unwrap_or(i64::MAX))
        .bind(ts(job.created_at))
        .bind(ts(job.updated_at))
        .bind(job.finished_at.map(ts))
        .bind(job.error.clone())
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn update_job(&mut self, job: &Job) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = $1, total = $2, done = $3, failed = $4, updated_at = $5,
                finished_at = $6, error = $7 WHERE id = $8",
        )
        .bind(job.status.as_str())
        .bind(i64::try_from(job.total).unwrap_or(i64::MAX))
        .bind(i64::try_from(job.done).unwrap_or(i64::MAX))
        .bind(i64::try_from(job.failed).unwrap_or(i64::MAX))
        .bind(ts(job.updated_at))
        .bind(job.finished_at.map(ts))
        .bind(job.error.clone())
        .bind(job.id.clone())
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn job(&mut self, id: &str) -> Result<Option<Job>, StoreError> {
        sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
            .as_ref()
            .map(job_of)
            .transpose()
    }

    async fn unfinished_jobs(&mut self) -> Result<Vec<Job>, StoreError> {
        sqlx::query(
            "SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id",
        )
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?
        .iter()
        .map(job_of)
        .collect()
    }

    async fn insert_erasure(&mut self, e: &Erasure) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO erasures (id, pseudonym, reporter_id, jurisdiction, requester_id, reason,
                justification, status, approvals_required, created_at, completed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(e.id.clone())
        .bind(e.pseudonym.clone())
        .bind(e.reporter_id.clone())
        .bind(e.jurisdiction.to_string())
        .bind(e.requester_id.clone())
        .bind(e.reason.clone())
        .bind(e.justification.clone())
        .bind(e.status.as_str())
        .bind(i64::from(e.approvals_required))
        .bind(ts(e.created_at))
        .bind(e.completed_at.map(ts))
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn erasure(&mut self, id: &str) -> Result<Option<Erasure>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM erasures WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(self.c())
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let decisions = sqlx::query(
            "SELECT principal_id, approve, comment, at FROM erasure_decisions
             WHERE erasure_id = $1 ORDER BY at, principal_id",
        )
        .bind(id.to_owned())
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| {
            Ok(Decision {
                principal_id: get(r, "principal_id")?,
                approve: get::<i64>(r, "approve")? != 0,
                comment: get(r, "comment")?,
                at: from_ts(get(r, "at")?)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(Erasure {
            id: get(&row, "id")?,
            pseudonym: get(&row, "pseudonym")?,
            reporter_id: get(&row, "reporter_id")?,
            jurisdiction: Jurisdiction::parse(&get::<String>(&row, "jurisdiction")?)
                .map_err(|_| corrupt("jurisdiction"))?,
            requester_id: get(&row, "requester_id")?,
            reason: get(&row, "reason")?,
            justification: get(&row, "justification")?,
            status: ErasureStatus::parse(&get::<String>(&row, "status")?)
                .ok_or_else(|| corrupt("erasure status"))?,
            approvals_required: u32_of(get(&row, "approvals_required")?, "approvals_required")?,
            decisions,
            created_at: from_ts(get(&row, "created_at")?)?,
            completed_at: from_ts_opt(get(&row, "completed_at")?)?,
        }))
    }

    async fn insert_erasure_decision(&mut self, id: &str, d: &Decision) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO erasure_decisions (erasure_id, principal_id, approve, comment, at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_owned())
        .bind(d.principal_id.clone())
        .bind(b(d.approve))
        .bind(d.comment.clone())
        .bind(ts(d.at))
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn update_erasure_status(
        &mut self,
        id: &str,
        status: ErasureStatus,
        completed_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE erasures SET status = $1, completed_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(completed_at.map(ts))
            .bind(id.to_owned())
            .execute(self.c())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn erase_reporter(&mut self, id: &str, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE reporters SET envelope = NULL, kek_version = NULL, blind_index = NULL,
                claim_code_hash = NULL, erased_at = COALESCE(erased_at, $1), updated_at = $1
             WHERE id = $2",
        )
        .bind(ts(at))
        .bind(id.to_owned())
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn close_case(
        &mut self,
        pseudonym: &str,
        closed_on: time::Date,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO case_closures (pseudonym, closed_on, closed_by, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (pseudonym) DO UPDATE SET closed_on = excluded.closed_on,
                closed_by = excluded.closed_by, at = excluded.at",
        )
        .bind(pseudonym.to_owned())
        .bind(closed_on.to_string())
        .bind(by.to_owned())
        .bind(ts(at))
        .execute(self.c())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn reporters_due_for_retention(
        &mut self,
        cutoff: time::Date,
        limit: u32,
    ) -> Result<Vec<(String, Jurisdiction, String)>, StoreError> {
        // ISO dates compare as text. A reporter qualifies when it has cases, every one of
        // them is closed (pseudonyms replaced by rotation no longer count), the latest closure is before the cutoff, and no reward still needs
        // it to claim or be paid.
        sqlx::query(
            "SELECT r.id AS id, r.jurisdiction AS jurisdiction, MIN(p.pseudonym) AS pseudonym
             FROM reporters r
             JOIN pseudonyms p ON p.reporter_id = r.id AND p.status = 'active'
             LEFT JOIN case_closures c ON c.pseudonym = p.pseudonym
             WHERE r.erased_at IS NULL
               AND NOT EXISTS (
                   SELECT 1 FROM reward_awards a JOIN rewards w ON w.id = a.reward_id
                   WHERE a.reporter_id = r.id
                     AND w.status IN ('pending_approval', 'approved', 'claimed'))
             GROUP BY r.id, r.jurisdiction
             HAVING COUNT(c.pseudonym) = COUNT(p.pseudonym) AND MAX(c.closed_on) < $1
             ORDER BY r.id LIMIT $2",
        )
        .bind(cutoff.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.c())
        .await
        .map_err(unavailable)?
        .iter()
        .map(|r| {
            Ok((
                get(r, "id")?,
                Jurisdiction::parse(&get::<String>(r, "jurisdiction")?)
                    .map_err(|_| corrupt("jurisdiction"))?,
                get(r, "pseudonym")?,
            ))
        })
        .collect()
    }

    async fn event_count(&mut self) -> Result<u64, StoreError> {
        // Indexes are dense from 0, so the count is MAX+1: an index lookup, not a scan.
        let n: i64 = sqlx::query("SELECT COALESCE(MAX(idx) + 1, 0) AS n FROM audit_events")
            .fetch_one(self.c())
            .await
            .and_then(|r| r.try_get("n"))
            .map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[async_trait]
impl Tx for SqlConn {
    async fn fence(&mut self) -> Result<(), StoreError> {
        if self.engine == Engine::Sqlite {
            // One process per SQLite file: it always leads.
            return Ok(());
        }
        let Some(token) = self.lease.current() else {
            return Err(crate::leader::not_leader());
        };
        crate::leader::fence(self.conn(), token).await
    }

    #[tracing::instrument(
        name = "store.commit",
        skip_all,
        fields(db.system = self.engine.as_str())
    )]
    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let this = *self;
        match this.inner {
            Inner::Tx(t) => {
                if let Err(e) = t.commit().await {
                    for _ in 0..this.appended {
                        crate::obs::append_lost();
                    }
                    if let Some(flag) = &this.broken {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    return Err(unavailable(e));
                }
                if let Some(f) = this.pending
                    && let Ok(mut cache) = this.frontier.lock()
                {
                    *cache = Some(f);
                }
                Ok(())
            }
            Inner::Pooled(_) => Ok(()),
        }
    }
}

/// An event from its stored leaf bytes (which must be canonical).
fn job_of(row: &AnyRow) -> Result<Job, StoreError> {
    let count = |col: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(get::<i64>(row, col)?).unwrap_or(0))
    };
    Ok(Job {
        id: get(row, "id")?,
        kind: get(row, "kind")?,
        status: JobStatus::parse(&get::<String>(row, "status")?)
            .ok_or_else(|| corrupt("job status"))?,
        requested_by: get(row, "requested_by")?,
        total: count("total")?,
        done: count("done")?,
        failed: count("failed")?,
        created_at: from_ts(get(row, "created_at")?)?,
        updated_at: from_ts(get(row, "updated_at")?)?,
        finished_at: from_ts_opt(get(row, "finished_at")?)?,
        error: get(row, "error")?,
    })
}

fn event_of(row: &AnyRow) -> Result<Event, StoreError> {
    let leaf: Vec<u8> = get(row, "leaf")?;
    Event::parse_leaf(&leaf).ok_or_else(|| corrupt("event leaf"))
}

fn reward_of(row: &AnyRow) -> Result<vault_domain::settlement::Reward, StoreError> {
    let doc: String = get(row, "doc")?;
    serde_json::from_str(&doc).map_err(|_| corrupt("reward document"))
}

fn checkpoint_of(row: &AnyRow) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: u64::try_from(get::<i64>(row, "size")?).map_err(|_| corrupt("checkpoint size"))?,
        root: hash32(get(row, "root")?)?,
        note: get(row, "note")?,
        created_at: from_ts(get(row, "created_at")?)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(super::placeholders(1, 1), "($1)");
        assert_eq!(super::placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(super::placeholders(0, 3), "");
    }
}

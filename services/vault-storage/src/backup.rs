//! Backup and restore at the storage level, engine-neutral: a consistent snapshot read of every
//! table the vault needs, and an all-or-nothing bulk load into an empty store.
//!
//! The tables and columns are listed explicitly ([`TABLES`]) for the current schema
//! ([`crate::SCHEMA_VERSION`]). A migration that adds a table or a column must add it here too;
//! a test compares this list with the live schema of both engines, and [`Snapshot`] refuses a
//! store whose schema has anything the list does not cover, so a backup is never silently
//! incomplete.
//!
//! Values are typed by the column ([`Kind`]): integers, text and byte strings, each possibly
//! NULL. That is all the schema uses on both engines, so a snapshot of SQLite loads into
//! PostgreSQL and back unchanged.
//!
//! Consistency: one read transaction. PostgreSQL takes `REPEATABLE READ READ ONLY`, so every
//! statement sees the same committed state; SQLite reads on one connection inside one
//! transaction, which in WAL mode is a snapshot fixed by its first read. Writers are never
//! blocked: the service keeps serving while a backup runs.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};
use vault_crypto::merkle::Frontier;
use vault_domain::ports::StoreError;

use crate::{Engine, SqlStore, unavailable};

/// A column's value type, the same on both engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `INTEGER` / `BIGINT`.
    Int,
    /// `TEXT`.
    Text,
    /// `BLOB` / `BYTEA`.
    Blob,
}

impl Kind {
    /// Lowercase name, as the archive header spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Int => "int",
            Kind::Text => "text",
            Kind::Blob => "blob",
        }
    }
}

/// One column of a backed-up table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
}

/// One backed-up table.
#[derive(Debug)]
pub struct Table {
    /// Its name.
    pub name: &'static str,
    /// Every column, in the order rows carry them.
    pub columns: &'static [Column],
    /// The snapshot's row order: the primary key, so an archive is deterministic. The access
    /// trail's tables are read in log order, which restore's verification relies on.
    pub order_by: &'static str,
}

impl Table {
    /// Position of `column`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

const fn int(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Int,
    }
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Text,
    }
}

const fn blob(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Blob,
    }
}

/// Every table a restore needs, in load order: a table comes after the tables its foreign
/// keys name, and the access trail's checkpoints come before its events, which come before
/// the rows derived from them, so a restore can verify the trail in one streaming pass.
pub const TABLES: &[Table] = &[
    Table {
        name: "principals",
        columns: &[
            text("id"),
            text("name"),
            text("role"),
            text("jurisdiction"),
            text("age_recipient"),
            blob("token_hash"),
            int("created_at"),
            int("revoked_at"),
        ],
        order_by: "id",
    },
    Table {
        name: "reporters",
        columns: &[
            text("id"),
            text("jurisdiction"),
            blob("blind_index"),
            blob("envelope"),
            int("kek_version"),
            int("anonymous"),
            text("claim_code_hash"),
            int("created_at"),
            int("updated_at"),
            int("erased_at"),
        ],
        order_by: "id",
    },
    Table {
        name: "pseudonyms",
        columns: &[
            text("pseudonym"),
            text("reporter_id"),
            text("jurisdiction"),
            text("case_ref"),
            int("received_at"),
            text("channel"),
            int("employee_of_reported_unit"),
            int("anonymous"),
            text("status"),
            int("created_at"),
            text("created_by"),
            text("origin"),
            text("parent"),
        ],
        order_by: "pseudonym",
    },
    Table {
        name: "case_closures",
        columns: &[
            text("pseudonym"),
            text("closed_on"),
            text("closed_by"),
            int("at"),
        ],
        order_by: "pseudonym",
    },
    Table {
        name: "disclosures",
        columns: &[
            text("id"),
            text("pseudonym"),
            text("reporter_id"),
            text("jurisdiction"),
            text("requester_id"),
            text("purpose"),
            text("justification"),
            text("fields"),
            text("status"),
            int("approvals_required"),
            int("created_at"),
            int("approved_at"),
            int("opened_at"),
        ],
        order_by: "id",
    },
    Table {
        name: "disclosure_decisions",
        columns: &[
            text("disclosure_id"),
            text("principal_id"),
            int("approve"),
            text("comment"),
            int("at"),
        ],
        order_by: "disclosure_id, principal_id",
    },
    Table {
        name: "erasures",
        columns: &[
            text("id"),
            text("pseudonym"),
            text("reporter_id"),
            text("jurisdiction"),
            text("requester_id"),
            text("reason"),
            text("justification"),
            text("status"),
            int("approvals_required"),
            int("created_at"),
            int("completed_at"),
        ],
        order_by: "id",
    },
    Table {
        name: "erasure_decisions",
        columns: &[
            text("erasure_id"),
            text("principal_id"),
            int("approve"),
            text("comment"),
            int("at"),
        ],
        order_by: "erasure_id, principal_id",
    },
    Table {
        name: "outbox",
        columns: &[
            text("id"),
            text("pseudonym"),
            text("reporter_id"),
            text("kind"),
            text("body"),
            int("created_at"),
            int("attempts"),
            int("next_attempt_at"),
            int("lease_until"),
            int("delivered_at"),
            text("last_error"),
        ],
        order_by: "id",
    },
    Table {
        name: "policy_versions",
        columns: &[
            text("version"),
            text("policy_id"),
            text("file"),
            text("text"),
            int("loaded_at"),
        ],
        order_by: "version",
    },
    Table {
        name: "rewards",
        columns: &[
            text("id"),
            text("jurisdiction"),
            text("status"),
            int("created_at"),
            int("claim_deadline"),
            text("doc"),
            int("version"),
        ],
        order_by: "id",
    },
    Table {
        name: "reward_awards",
        columns: &[
            text("reward_id"),
            text("reporter_id"),
            text("kind"),
            text("month"),
            text("amount"),
        ],
        order_by: "reward_id, reporter_id",
    },
    Table {
        name: "reward_payments",
        columns: &[
            text("reward_id"),
            text("payment_ref"),
            text("amount"),
            text("paid_on"),
            text("recorded_by"),
            int("recorded_at"),
        ],
        order_by: "reward_id",
    },
    // Kept: a client retrying a request made before the snapshot must get the first answer
    // after a restore too, not a second reward filed.
    Table {
        name: "idempotency",
        columns: &[
            text("principal_id"),
            text("key"),
            text("request_hash"),
            int("status"),
            text("body"),
            int("created_at"),
        ],
        order_by: "principal_id, key",
    },
    Table {
        name: "key_versions",
        columns: &[
            int("version"),
            text("provider"),
            int("created_at"),
            int("retired_at"),
        ],
        order_by: "version",
    },
    // A job that was running at the snapshot resumes after a restore (a rewrap is a
    // compare-and-set per record, so resuming is safe).
    Table {
        name: "jobs",
        columns: &[
            text("id"),
            text("kind"),
            text("status"),
            text("requested_by"),
            int("total"),
            int("done"),
            int("failed"),
            int("created_at"),
            int("updated_at"),
            int("finished_at"),
            text("error"),
        ],
        order_by: "id",
    },
    Table {
        name: "audit_checkpoints",
        columns: &[int("size"), blob("root"), text("note"), int("created_at")],
        order_by: "size",
    },
    Table {
        name: "audit_events",
        columns: &[
            int("idx"),
            blob("leaf"),
            int("time"),
            text("action"),
            text("actor_id"),
            text("disclosure_id"),
            text("pseudonym"),
            text("record"),
        ],
        order_by: "idx",
    },
    Table {
        name: "audit_field_macs",
        columns: &[int("idx"), text("field"), text("mac")],
        order_by: "idx, field, mac",
    },
    Table {
        name: "audit_nodes",
        columns: &[int("level"), int("idx"), blob("hash")],
        order_by: "level, idx",
    },
];

/// Tables deliberately left out, and why.
pub const NOT_BACKED_UP: &[(&str, &str)] = &[
    (
        "rv_schema_migrations",
        "the archive records the schema version; restore applies the migrations itself",
    ),
    (
        "rv_heartbeat",
        "a scratch row the readiness probe rewrites; the restored service writes its own",
    ),
    (
        "rv_lease",
        "the leader lease's fencing row: the migration creates it, the first leader takes it",
    ),
];

/// The backed-up table called `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// Whether the value fits a column of `kind` (NULL fits any; the schema enforces NOT NULL).
    pub fn fits(&self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Value::Null, _)
                | (Value::Int(_), Kind::Int)
                | (Value::Text(_), Kind::Text)
                | (Value::Blob(_), Kind::Blob)
        )
    }
}

/// Rows per backed-up table, in [`TABLES`] order.
pub type RowCounts = Vec<(&'static str, u64)>;

fn count_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Every table of the schema with its columns, as the database itself reports them
/// (`sqlite_master` and `pragma_table_info`, or `information_schema`); SQLite's own tables
/// are left out.
async fn live_schema(
    conn: &mut AnyConnection,
    engine: Engine,
) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
    let sql = match engine {
        Engine::Sqlite => {
            "SELECT m.name AS t, p.name AS c FROM sqlite_master AS m, pragma_table_info(m.name) AS p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid"
        }
        Engine::Postgres => {
            "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns
             WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        }
    };
    let rows = sqlx::query(sql)
        .fetch_all(conn)
        .await
        .map_err(unavailable)?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        let t: String = r.try_get("t").map_err(unavailable)?;
        let c: String = r.try_get("c").map_err(unavailable)?;
        out.entry(t).or_default().push(c);
    }
    Ok(out)
}

/// What the live schema has that [`TABLES`] does not cover, or the other way round; empty
/// when the backup covers the schema exactly.
pub fn coverage_gaps(schema: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut gaps = Vec::new();
    for (t, cols) in schema {
        if NOT_BACKED_UP.iter().any(|(n, _)| n == t) {
            continue;
        }
        match table(t) {
            None => gaps.push(format!("table {t} is not backed up")),
            Some(spec) => {
                for c in cols {
                    if spec.column(c).is_none() {
                        gaps.push(format!("column {t}.{c} is not backed up"));
                    }
                }
                for c in spec.columns {
                    if !cols.iter().any(|x| x == c.name) {
                        gaps.push(format!("column {t}.{} is backed up but missing", c.name));
                    }
                }
            }
        }
    }
    for spec in TABLES {
        if !schema.contains_key(spec.name) {
            gaps.push(format!("table {} is backed up but missing", spec.name));
        }
    }
    gaps
}

async fn schema_version(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM rv_schema_migrations")
        .fetch_one(conn)
        .await
        .and_then(|r| r.try_get::<i64, _>("v"))
        .map_err(unavailable)
}

fn select_sql(t: &Table) -> String {
    let cols: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        t.name,
        t.order_by
    )
}

fn row_values(t: &Table, row: &AnyRow) -> Result<Vec<Value>, StoreError> {
    let mut out = Vec::with_capacity(t.columns.len());
    for (i, c) in t.columns.iter().enumerate() {
        let v = match c.kind {
            Kind::Int => row
                .try_get::<Option<i64>, _>(i)
                .map_err(unavailable)?
                .map_or(Value::Null, Value::Int),
            Kind::Text => row
                .try_get::<Option<String>, _>(i)
                .map_err(unavailable)?
                .map_or(Value::Null, Value::Text),
            Kind::Blob => row
                .try_get::<Option<Vec<u8>>, _>(i)
                .map_err(unavailable)?
                .map_or(Value::Null, Value::Blob),
        };
        out.push(v);
    }
    Ok(out)
}

/// A consistent read of the whole store, open until [`Snapshot::finish`].
pub struct Snapshot {
    tx: Transaction<'static, Any>,
    engine: Engine,
}

/// What a snapshot holds, read inside it before any row.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    /// `rv_schema_migrations`' newest version.
    pub schema_version: i64,
    /// Rows per table.
    pub counts: RowCounts,
    /// Events in the access trail.
    pub tree_size: u64,
    /// The access trail's root at that size, from the stored tree nodes.
    pub tree_root: [u8; 32],
}

impl SqlStore {
    /// Opens a snapshot: one read transaction that never blocks writers. Refuses a store whose
    /// schema is not the one this build backs up (another version, or a table or column
    /// [`TABLES`] does not list).
    pub async fn snapshot(&self) -> Result<(Snapshot, SnapshotInfo), StoreError> {
        let mut tx = match self.engine {
            Engine::Sqlite => self.reader.begin().await,
            Engine::Postgres => {
                self.reader
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
            }
        }
        .map_err(unavailable)?;
        if self.engine == Engine::Postgres {
            // The pool's 10 s statement limit is for requests; one table of a large store
            // may stream for longer.
            sqlx::query("SET LOCAL statement_timeout = 0")
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        // SQLite fixes the snapshot at this first read; everything below sees that state.
        let schema = live_schema(&mut tx, self.engine).await?;
        if !schema.contains_key("rv_schema_migrations") {
            return Err(StoreError::Unavailable(
                "the store has no schema yet: there is nothing to back up".into(),
            ));
        }
        let version = schema_version(&mut tx).await?;
        if version != crate::SCHEMA_VERSION {
            return Err(StoreError::Unavailable(format!(
                "the store's schema is version {version} but this build backs up version {}: \
                 use the build that serves this store",
                crate::SCHEMA_VERSION
            )));
        }
        let gaps = coverage_gaps(&schema);
        if !gaps.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "the backup does not cover this store's schema ({}): refusing to write an \
                 incomplete backup",
                gaps.join("; ")
            )));
        }
        let mut counts = Vec::with_capacity(TABLES.len());
        for t in TABLES {
            counts.push((t.name, count_rows(&mut tx, t.name).await?));
        }
        let (tree_size, tree_root) = tree_head(&mut tx).await?;
        Ok((
            Snapshot {
                tx,
                engine: self.engine,
            },
            SnapshotInfo {
                schema_version: version,
                counts,
                tree_size,
                tree_root,
            },
        ))
    }
}

async fn count_rows(conn: &mut AnyConnection, table: &str) -> Result<u64, StoreError> {
    // Table names come from `TABLES` only.
    let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM {table}"
    )))
    .fetch_one(conn)
    .await
    .and_then(|r| r.try_get("n"))
    .map_err(unavailable)?;
    Ok(count_of(n))
}

/// Size and root of the access trail from its stored nodes (the frontier of the tree).
async fn tree_head(conn: &mut AnyConnection) -> Result<(u64, [u8; 32]), StoreError> {
    let n: i64 = sqlx::query("SELECT COALESCE(MAX(idx) + 1, 0) AS n FROM audit_events")
        .fetch_one(&mut *conn)
        .await
        .and_then(|r| r.try_get("n"))
        .map_err(unavailable)?;
    let size = count_of(n);
    let mut hashes = Vec::new();
    for (level, index) in crate::repo::frontier_coords(size) {
        let row = sqlx::query("SELECT hash FROM audit_nodes WHERE level = $1 AND idx = $2")
            .bind(i64::from(level))
            .bind(i64::try_from(index).unwrap_or(i64::MAX))
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| StoreError::Corrupt("access trail node missing".into()))?;
        let h: Vec<u8> = row.try_get("hash").map_err(unavailable)?;
        hashes.push(
            <[u8; 32]>::try_from(h)
                .map_err(|_| StoreError::Corrupt("access trail node is not 32 bytes".into()))?,
        );
    }
    let f = Frontier::from_parts(size, hashes)
        .map_err(|_| StoreError::Corrupt("access trail frontier".into()))?;
    Ok((size, f.root()))
}

impl Snapshot {
    /// Streams every row of `table` to `sink`, in the table's order; returns how many.
    pub async fn rows<E, F>(&mut self, table: &Table, mut sink: F) -> Result<u64, E>
    where
        E: From<StoreError>,
        F: FnMut(Vec<Value>) -> Result<(), E>,
    {
        let sql = select_sql(table);
        let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *self.tx);
        let mut n = 0u64;
        while let Some(row) = stream.try_next().await.map_err(unavailable)? {
            sink(row_values(table, &row)?)?;
            n += 1;
        }
        Ok(n)
    }

    /// The engine read.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Ends the read transaction.
    pub async fn finish(self) -> Result<(), StoreError> {
        self.tx.rollback().await.map_err(unavailable)
    }
}

// ------------------------------------------------------------------------------------------
// Restore
// ------------------------------------------------------------------------------------------

/// Rows per INSERT are bounded so a statement never binds more than this many values (below
/// SQLite's historic limit of 999, far below PostgreSQL's 65535).
const MAX_BINDS: usize = 990;

/// An all-or-nothing load into an empty store: one transaction; dropping it without
/// [`Restore::commit`] rolls everything back.
pub struct Restore {
    tx: Transaction<'static, Any>,
    table: Option<&'static Table>,
    batch: Vec<Vec<Value>>,
    inserted: Vec<u64>,
}

/// How [`SqlStore::begin_restore`] went.
pub enum RestoreStart {
    /// The store is empty and locked for the load.
    Ready(Restore),
    /// The store already holds rows (table, rows): a restore never merges.
    NotEmpty(RowCounts),
}

impl SqlStore {
    /// The backed-up tables that hold rows; tables that do not exist yet count as empty.
    pub async fn occupied_tables(&self) -> Result<RowCounts, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(unavailable)?;
        occupied(&mut conn, self.engine).await
    }

    /// The schema as the database reports it: table → columns (`sqlite_master` and
    /// `pragma_table_info`, or `information_schema`).
    pub async fn live_schema(&self) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(unavailable)?;
        live_schema(&mut conn, self.engine).await
    }

    /// Starts a restore on a migrated store: takes the write lock (SQLite) or the migration and
    /// access-trail locks (PostgreSQL), so nothing else writes while it runs, and checks inside
    /// that transaction that every backed-up table is empty.
    pub async fn begin_restore(&self) -> Result<RestoreStart, StoreError> {
        let mut tx = match self.engine {
            Engine::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.writer.begin().await,
        }
        .map_err(unavailable)?;
        if self.engine == Engine::Postgres {
            sqlx::raw_sql(
                "SELECT pg_advisory_xact_lock(7270000); SELECT pg_advisory_xact_lock(7270001); \
                 SELECT pg_advisory_xact_lock(7270002); SET LOCAL statement_timeout = 0; \
                 SET LOCAL idle_in_transaction_session_timeout = 0;",
            )
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        let occupied = occupied(&mut tx, self.engine).await?;
        if !occupied.is_empty() {
            tx.rollback().await.map_err(unavailable)?;
            return Ok(RestoreStart::NotEmpty(occupied));
        }
        Ok(RestoreStart::Ready(Restore {
            tx,
            table: None,
            batch: Vec::new(),
            inserted: vec![0; TABLES.len()],
        }))
    }
}

async fn occupied(conn: &mut AnyConnection, engine: Engine) -> Result<RowCounts, StoreError> {
    let schema = live_schema(conn, engine).await?;
    let mut out = Vec::new();
    for t in TABLES.iter().filter(|t| schema.contains_key(t.name)) {
        let n = count_rows(conn, t.name).await?;
        if n > 0 {
            out.push((t.name, n));
        }
    }
    Ok(out)
}

/// A table's place in [`TABLES`], by name (a `const` slice may have several addresses).
fn position(table: &Table) -> Option<usize> {
    TABLES.iter().position(|t| t.name == table.name)
}

fn bad_row(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

impl Restore {
    /// Adds one row of `table`. Tables must come in [`TABLES`] order, each once.
    pub async fn insert(
        &mut self,
        table: &'static Table,
        row: Vec<Value>,
    ) -> Result<(), StoreError> {
        if row.len() != table.columns.len() {
            return Err(bad_row(format!(
                "{}: a row has {} values for {} columns",
                table.name,
                row.len(),
                table.columns.len()
            )));
        }
        if let Some((c, _)) = table
            .columns
            .iter()
            .zip(&row)
            .find(|(c, v)| !v.fits(c.kind))
        {
            return Err(bad_row(format!(
                "{}.{}: a value is not {}",
                table.name,
                c.name,
                c.kind.as_str()
            )));
        }
        let same = self.table.is_some_and(|t| t.name == table.name);
        if !same {
            self.flush().await?;
            let pos = position(table);
            let prev = self.table.and_then(position);
            if pos.is_none() || pos <= prev {
                return Err(bad_row(format!("{}: tables out of order", table.name)));
            }
            self.table = Some(table);
        }
        self.batch.push(row);
        if self.batch.len() >= (MAX_BINDS / table.columns.len()).max(1) {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StoreError> {
        let Some(table) = self.table else {
            return Ok(());
        };
        if self.batch.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.batch);
        let ncols = table.columns.len();
        let cols: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            table.name,
            cols.join(", "),
            crate::repo::placeholders(rows.len(), ncols)
        );
        // Names come from `TABLES`; every value is bound, NULLs typed by their column.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in &rows {
            for (c, v) in table.columns.iter().zip(row) {
                q = match (v, c.kind) {
                    (Value::Int(i), _) => q.bind(*i),
                    (Value::Text(s), _) => q.bind(s.clone()),
                    (Value::Blob(b), _) => q.bind(b.clone()),
                    (Value::Null, Kind::Int) => q.bind(None::<i64>),
                    (Value::Null, Kind::Text) => q.bind(None::<String>),
                    (Value::Null, Kind::Blob) => q.bind(None::<Vec<u8>>),
                };
            }
        }
        q.execute(&mut *self.tx).await.map_err(unavailable)?;
        if let Some(pos) = position(table)
            && let Some(n) = self.inserted.get_mut(pos)
        {
            *n += rows.len() as u64;
        }
        Ok(())
    }

    /// Rows loaded so far per table (after the last flush).
    pub fn inserted(&self) -> RowCounts {
        TABLES
            .iter()
            .zip(&self.inserted)
            .map(|(t, n)| (t.name, *n))
            .collect()
    }

    /// Loads what is buffered and commits; returns the rows loaded per table.
    pub async fn commit(mut self) -> Result<RowCounts, StoreError> {
        self.flush().await?;
        let counts = self.inserted();
        self.tx.commit().await.map_err(unavailable)?;
        Ok(counts)
    }

    /// Abandons the load: nothing is written.
    pub async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_listed_once_with_distinct_columns() {
        let mut names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLES.len());
        for t in TABLES {
            let mut cols: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
            cols.sort_unstable();
            cols.dedup();
            assert_eq!(cols.len(), t.columns.len(), "{}", t.name);
            assert!(t.columns.len() <= MAX_BINDS, "{}", t.name);
        }
    }

    #[test]
    fn trail_tables_come_in_verification_order() {
        let pos = |n: &str| TABLES.iter().position(|t| t.name == n);
        assert!(pos("audit_checkpoints") < pos("audit_events"));
        assert!(pos("audit_events") < pos("audit_field_macs"));
        assert!(pos("audit_events") < pos("audit_nodes"));
        assert!(pos("principals") < pos("disclosures"));
        assert!(pos("reporters") < pos("pseudonyms"));
        assert!(pos("rewards") < pos("reward_awards"));
    }

    #[test]
    fn gaps_name_missing_and_extra_columns() {
        let mut schema: BTreeMap<String, Vec<String>> = TABLES
            .iter()
            .map(|t| {
                (
                    t.name.to_owned(),
                    t.columns.iter().map(|c| c.name.to_owned()).collect(),
                )
            })
            .collect();
        schema.insert("rv_heartbeat".into(), vec!["id".into(), "at".into()]);
        assert!(coverage_gaps(&schema).is_empty());
        if let Some(cols) = schema.get_mut("reporters") {
            cols.push("future_column".into());
        }
        schema.insert("future_table".into(), vec!["id".into()]);
        let gaps = coverage_gaps(&schema);
        assert!(gaps.contains(&"column reporters.future_column is not backed up".to_owned()));
        assert!(gaps.contains(&"table future_table is not backed up".to_owned()));
    }
}

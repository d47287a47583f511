//! SQL adapters for the domain's store port, one codebase for SQLite (the embedded default)
//! and PostgreSQL (production), through sqlx's `Any` driver.
//!
//! Portable by construction: every column is TEXT, BIGINT/INTEGER or BLOB/BYTEA; times are
//! unix seconds; booleans 0/1; placeholders `$N`, which both engines accept. The two engines
//! differ only in DDL (one migrations folder each) and in how appends to the access trail are
//! serialised: SQLite has one writer connection, PostgreSQL takes a transaction-scoped
//! advisory lock. `sqlx::Error` never leaves this crate: it becomes a [`StoreError`].

pub mod backup;
pub mod leader;
mod migrate;
pub mod obs;
mod repo;
mod tx_group;
mod unit_writer;
mod wal;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use vault_domain::ports::{Repo, Store, StoreError, Tx, UnitOutcome, WriteUnit};

pub use migrate::LATEST as SCHEMA_VERSION;
pub use repo::SqlConn;

/// Which database engine a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite in WAL mode: one file in the data directory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Engine {
    /// From a database URL's scheme.
    pub fn of_url(url: &str) -> Option<Engine> {
        if url.starts_with("sqlite:") {
            Some(Engine::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Engine::Postgres)
        } else {
            None
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    }
}

/// How SQLite makes commits durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    /// WAL with `synchronous=NORMAL`: a committed transaction survives the process being
    /// killed (`kill -9`); the last commits before a power cut may be lost.
    Normal,
    /// `synchronous=FULL`: every commit is fsynced; survives power loss; slower.
    Full,
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections for reads (PostgreSQL: for everything).
    pub max_connections: u32,
    /// How long to wait for a connection before answering "unavailable": short, so a dead
    /// database makes requests fail promptly instead of hanging.
    pub acquire_timeout: Duration,
    /// SQLite durability.
    pub sqlite_sync: SqliteSync,
    /// SQLite: copy the write-ahead log into the database file from a background task this
    /// often, so that commits seldom do it themselves. A commit that finds 1000 pages not yet
    /// copied still checkpoints (SQLite's default; 10,000 on the group-commit writer
    /// thread, which must not stall every waiting unit), which bounds the log if the task
    /// falls behind: an unbounded log can fill the disk with itself, and then freeing space
    /// elsewhere is not enough to recover. `None`: only SQLite's automatic checkpoints.
    pub wal_checkpoint_every: Option<Duration>,
    /// Commit concurrent write units (seals, disclosure openings) together: on SQLite on a
    /// dedicated writer thread, on PostgreSQL as one transaction per group. Off: each unit
    /// is its own transaction through sqlx, statement by statement.
    pub group_commit: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            // Under the 2 s a client may wait for a 503: sqlx retries a refused connection
            // until this runs out, so it bounds how long an outage holds each request.
            acquire_timeout: Duration::from_millis(1500),
            sqlite_sync: SqliteSync::Normal,
            wal_checkpoint_every: Some(Duration::from_millis(10)),
            group_commit: true,
        }
    }
}

/// The store over one database.
#[derive(Clone)]
pub struct SqlStore {
    engine: Engine,
    /// Set when a COMMIT failed at the database: the writer connection is then replaced when
    /// it returns to the pool, so the store recovers once the fault clears.
    writer_broken: Arc<AtomicBool>,
    /// The access trail's right-hand frontier after the last commit this process made; used
    /// only when its size still equals the log's (another replica may have appended).
    frontier: repo::FrontierCache,
    /// This process's leader lease (PostgreSQL), which leader-only writes fence on.
    lease: leader::LeaseSlot,
    /// SQLite: exactly one connection, so writes never contend for the file lock and the
    /// access trail's indexes are assigned one transaction at a time.
    writer: AnyPool,
    reader: AnyPool,
    /// Where write units go when they are committed in groups.
    units: Option<GroupCommit>,
}

/// Group commit of write units, per engine.
#[derive(Clone)]
enum GroupCommit {
    /// SQLite: a dedicated thread with its own connection.
    Thread(unit_writer::UnitWriter),
    /// PostgreSQL: a task that runs each group as one transaction.
    Task(tx_group::TxGroupWriter),
}

/// A connection goes back to the pool only outside a transaction. A COMMIT that failed (disk
/// full, file made read-only) leaves it inside one; closing it lets the next request start
/// clean, so the service recovers by itself once the fault clears.
fn release_ok(conn: &mut sqlx::AnyConnection) -> bool {
    use sqlx::Connection as _;
    !conn.is_in_transaction()
}

/// SQLITE_BUSY / SQLITE_LOCKED, or no pooled connection in time: waiting, not broken.
fn is_lock_wait(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => {
            matches!(
                db.code().as_deref(),
                Some("5") | Some("6") | Some("517") | Some("262")
            ) || db.message().contains("locked")
        }
        _ => false,
    }
}

/// The database file of a `sqlite:` URL.
fn sqlite_file(url: &str) -> Result<std::path::PathBuf, StoreError> {
    Ok(url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .map_err(|_| StoreError::Unavailable("the database URL could not be parsed".into()))?
        .get_filename()
        .to_path_buf())
}

pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

impl SqlStore {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`), creating a SQLite file if
    /// missing. Does not migrate.
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let engine = Engine::of_url(url).ok_or_else(|| {
            StoreError::Unavailable("database URL must start with sqlite: or postgres:".into())
        })?;
        let mut connect: AnyConnectOptions = url
            .parse()
            .map_err(|_| StoreError::Unavailable("the database URL could not be parsed".into()))?;
        // Statement logging would put bound parameters (pseudonyms, ids) in the log.
        connect = connect.disable_statement_logging();
        let writer_broken = Arc::new(AtomicBool::new(false));
        let wal_copy = Arc::new(wal::WalCopy::default());
        let (writer, reader) = match engine {
            Engine::Sqlite => {
                let sync = match opts.sqlite_sync {
                    SqliteSync::Normal => "NORMAL",
                    SqliteSync::Full => "FULL",
                };
                // With group commit the group writer starts the log over (`wal`); SQLite's
                // automatic checkpoint on these connections is then only a far backstop.
                let autocheckpoint = if opts.group_commit {
                    format!(" PRAGMA wal_autocheckpoint={};", wal::SQLX_AUTOCHECKPOINT)
                } else {
                    String::new()
                };
                let pragmas = Arc::new(format!(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; \
                     PRAGMA busy_timeout=2000;{autocheckpoint}"
                ));
                let make = |max: u32, broken: Option<Arc<AtomicBool>>| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .min_connections(1)
                        .acquire_timeout(opts.acquire_timeout)
                        // A ping before every checkout is a round trip to the connection's
                        // worker thread that catches nothing the statement itself would not;
                        // broken connections are dropped on release instead (below).
                        .test_before_acquire(false)
                        // sqlx 0.9.0's idle reaper can spin forever (launchbadge/sqlx#3645):
                        // SQLite connections are cheap to keep, so keep them.
                        .idle_timeout(None)
                        .max_lifetime(None)
                        .after_release(move |conn, _| {
                            // After a failed write the SQLite handle may keep failing (an I/O
                            // error in WAL mode): replace it rather than reuse it.
                            let replace = broken
                                .as_ref()
                                .is_some_and(|b| b.swap(false, Ordering::SeqCst));
                            Box::pin(async move { Ok(!replace && release_ok(conn)) })
                        })
                        .after_connect({
                            let pragmas = pragmas.clone();
                            move |conn, _| {
                                // Built from constants above: no input reaches it.
                                let sql = sqlx::AssertSqlSafe(pragmas.to_string());
                                Box::pin(async move {
                                    conn.execute(sqlx::raw_sql(sql)).await?;
                                    Ok(())
                                })
                            }
                        })
                };
                let writer = make(1, Some(writer_broken.clone()))
                    .connect_with(connect.clone())
                    .await
                    .map_err(unavailable)?;
                let reader = make(opts.max_connections.max(1), None)
                    .connect_with(connect)
                    .await
                    .map_err(unavailable)?;
                if let Some(every) = opts.wal_checkpoint_every {
                    tokio::spawn(wal::checkpoint_task(
                        reader.clone(),
                        sqlite_file(url)?,
                        every,
                        wal_copy.clone(),
                    ));
                }
                (writer, reader)
            }
            Engine::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections.max(2))
                    .acquire_timeout(opts.acquire_timeout)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .after_release(|conn, _| Box::pin(async move { Ok(release_ok(conn)) }))
                    // A blocked append must fail promptly (503), never hang the request.
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(sqlx::raw_sql(
                                "SET lock_timeout = '2s'; SET statement_timeout = '10s'; \
                                 SET idle_in_transaction_session_timeout = '30s';",
                            ))
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(connect)
                    .await
                    .map_err(unavailable)?;
                (pool.clone(), pool)
            }
        };
        let frontier = repo::FrontierCache::default();
        let units = match engine {
            Engine::Sqlite if opts.group_commit => Some(GroupCommit::Thread(
                unit_writer::UnitWriter::start(unit_writer::UnitWriterConfig {
                    path: sqlite_file(url)?,
                    synchronous: match opts.sqlite_sync {
                        SqliteSync::Normal => "NORMAL",
                        SqliteSync::Full => "FULL",
                    },
                    token: writer.clone(),
                    acquire_timeout: opts.acquire_timeout,
                    frontier: frontier.clone(),
                    wal: wal_copy.clone(),
                })?,
            )),
            _ => None,
        };
        let mut store = SqlStore {
            engine,
            writer_broken,
            frontier,
            lease: leader::LeaseSlot::default(),
            writer,
            reader,
            units,
        };
        if engine == Engine::Postgres && opts.group_commit {
            // The task's own store has no group writer: it runs each group itself.
            store.units = Some(GroupCommit::Task(tx_group::TxGroupWriter::start(
                store.clone(),
            )));
        }
        Ok(store)
    }

    /// Applies pending migrations for this engine, then makes sure every event has its
    /// Merkle nodes (events appended before the tree existed get them here, once).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate::run(&self.writer, self.engine).await?;
        let tx = match self.engine {
            Engine::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.writer.begin().await,
        }
        .map_err(unavailable)?;
        let mut conn = SqlConn::tx(tx, self.engine, self.frontier.clone());
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7270001)")
                .execute(conn.conn())
                .await
                .map_err(unavailable)?;
        }
        conn.backfill_nodes().await?;
        Box::new(conn).commit().await
    }

    /// Whether the store can answer a trivial query now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Leaves `[start, start+limit)` exactly as stored, without parsing them (the offline
    /// verifier reports unparseable leaves at their index instead of failing the read).
    pub async fn raw_leaves(&self, start: u64, limit: u32) -> Result<Vec<Vec<u8>>, StoreError> {
        use sqlx::Row;
        let rows =
            sqlx::query("SELECT leaf FROM audit_events WHERE idx >= $1 ORDER BY idx LIMIT $2")
                .bind(i64::try_from(start).unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await
                .map_err(unavailable)?;
        rows.iter()
            .map(|r| r.try_get::<Vec<u8>, _>("leaf").map_err(unavailable))
            .collect()
    }

    /// The leaf hashes kept in the tree (level-0 nodes) for indexes `[start, start+limit)`.
    pub async fn leaf_hashes(
        &self,
        start: u64,
        limit: u32,
    ) -> Result<std::collections::HashMap<u64, [u8; 32]>, StoreError> {
        use sqlx::Row;
        let start_i = i64::try_from(start).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT idx, hash FROM audit_nodes WHERE level = 0 AND idx >= $1 AND idx < $2",
        )
        .bind(start_i)
        .bind(start_i.saturating_add(i64::from(limit)))
        .fetch_all(&self.reader)
        .await
        .map_err(unavailable)?;
        let mut out = std::collections::HashMap::with_capacity(rows.len());
        for r in rows {
            let idx: i64 = r.try_get("idx").map_err(unavailable)?;
            let hash: Vec<u8> = r.try_get("hash").map_err(unavailable)?;
            if let (Ok(i), Ok(h)) = (u64::try_from(idx), <[u8; 32]>::try_from(hash)) {
                out.insert(i, h);
            }
        }
        Ok(out)
    }

    pub(crate) fn lease_slot(&self) -> &leader::LeaseSlot {
        &self.lease
    }

    pub(crate) fn writer_pool(&self) -> &AnyPool {
        &self.writer
    }

    /// The engine.
    pub fn engine_kind(&self) -> Engine {
        self.engine
    }

    /// Closes the pools (graceful shutdown).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn begin(&self) -> Result<Box<dyn Tx>, StoreError> {
        let tx = match self.engine {
            // IMMEDIATE takes the write lock up front, so a read-then-write transaction
            // never fails halfway on a lock upgrade.
            Engine::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.writer.begin().await,
        }
        .map_err(|e| {
            // A BEGIN that waited out another process's lock leaves the connection healthy:
            // keep it (reconnecting would wait for the lock again). Any other failure (an I/O
            // error on a file that turned read-only) marks it for replacement.
            if !is_lock_wait(&e) {
                self.writer_broken.store(true, Ordering::SeqCst);
            }
            unavailable(e)
        })?;
        Ok(Box::new(
            SqlConn::tx(tx, self.engine, self.frontier.clone())
                .with_broken_flag(self.writer_broken.clone())
                .with_lease(self.lease.clone()),
        ))
    }

    #[tracing::instrument(
        name = "store.commit_unit",
        skip_all,
        fields(
            db.system = self.engine.as_str(),
            unit.ops = unit.ops.len(),
            unit.appends = unit
                .ops
                .iter()
                .filter(|op| matches!(op, vault_domain::ports::UnitOp::AppendEvent(_)))
                .count(),
            group.size = tracing::field::Empty,
        )
    )]
    async fn commit_unit(&self, unit: WriteUnit) -> Result<UnitOutcome, StoreError> {
        let (result, group) = match &self.units {
            Some(GroupCommit::Thread(w)) => w.commit(unit).await?,
            Some(GroupCommit::Task(w)) => w.commit(unit).await?,
            None => {
                return vault_domain::ports::commit_unit_in_tx(self.begin().await?, &unit).await;
            }
        };
        tracing::Span::current().record("group.size", group);
        result
    }

    async fn read(&self) -> Result<Box<dyn Repo>, StoreError> {
        let conn = self.reader.acquire().await.map_err(unavailable)?;
        Ok(Box::new(SqlConn::pooled(
            conn,
            self.engine,
            self.frontier.clone(),
        )))
    }

    fn engine(&self) -> &'static str {
        self.engine.as_str()
    }

    async fn probe_trail(&self) -> Result<(), StoreError> {
        let mut tx = match self.engine {
            Engine::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.writer.begin().await,
        }
        .map_err(unavailable)?;
        // An index no real event can have; the transaction is rolled back.
        sqlx::query(
            "INSERT INTO audit_events (idx, leaf, time, action) VALUES (-1, $1, 0, 'probe')",
        )
        .bind(Vec::<u8>::new())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.rollback().await.map_err(unavailable)?;
        // And one write that really reaches the file: a database that can no longer be
        // written (read-only, disk full) fails here even though the rollback above succeeds.
        let mut tx = match self.engine {
            Engine::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Engine::Postgres => self.writer.begin().await,
        }
        .map_err(unavailable)?;
        sqlx::query("DELETE FROM rv_heartbeat WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("INSERT INTO rv_heartbeat (id, at) VALUES (1, 0)")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(|e| {
            self.writer_broken.store(true, Ordering::SeqCst);
            unavailable(e)
        })
    }
}

//! SQL adapters for the domain's store port, one codebase for SQLite (the embedded default)
//! and PostgreSQL (production), through sqlx's `Any` driver.
//!
//! Portable by construction: every column is TEXT, BIGINT/INTEGER or BLOB/BYTEA; times are
//! unix seconds; booleans 0/1; placeholders `$N`, which both engines accept. The two engines
//! differ only in DDL (one migrations folder each) and in how appends to the access trail are
//! serialised: SQLite has one writer connection, PostgreSQL takes a transaction-scoped
//! advisory lock. `sqlx::Error` never leaves this crate: it becomes a [`StoreError`].

mod migrate;
mod repo;

use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};
use vault_domain::ports::{Repo, Store, StoreError, Tx};

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
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(2),
            sqlite_sync: SqliteSync::Normal,
        }
    }
}

/// The store over one database.
#[derive(Clone)]
pub struct SqlStore {
    engine: Engine,
    /// SQLite: exactly one connection, so writes never contend for the file lock and the
    /// access trail's indexes are assigned one transaction at a time.
    writer: AnyPool,
    reader: AnyPool,
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
        let (writer, reader) = match engine {
            Engine::Sqlite => {
                let sync = match opts.sqlite_sync {
                    SqliteSync::Normal => "NORMAL",
                    SqliteSync::Full => "FULL",
                };
                let pragmas: &'static str = match sync {
                    "FULL" => {
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;"
                    }
                    _ => {
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;"
                    }
                };
                let make = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .min_connections(1)
                        .acquire_timeout(opts.acquire_timeout)
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                conn.execute(sqlx::raw_sql(pragmas)).await?;
                                Ok(())
                            })
                        })
                };
                let writer = make(1)
                    .connect_with(connect.clone())
                    .await
                    .map_err(unavailable)?;
                let reader = make(opts.max_connections.max(1))
                    .connect_with(connect)
                    .await
                    .map_err(unavailable)?;
                (writer, reader)
            }
            Engine::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections.max(2))
                    .acquire_timeout(opts.acquire_timeout)
                    .connect_with(connect)
                    .await
                    .map_err(unavailable)?;
                (pool.clone(), pool)
            }
        };
        Ok(SqlStore {
            engine,
            writer,
            reader,
        })
    }

    /// Applies pending migrations for this engine.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate::run(&self.writer, self.engine).await
    }

    /// Whether the store can answer a trivial query now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(unavailable)?;
        Ok(())
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
        .map_err(unavailable)?;
        Ok(Box::new(SqlConn::tx(tx, self.engine)))
    }

    async fn read(&self) -> Result<Box<dyn Repo>, StoreError> {
        let conn = self.reader.acquire().await.map_err(unavailable)?;
        Ok(Box::new(SqlConn::pooled(conn, self.engine)))
    }

    fn engine(&self) -> &'static str {
        self.engine.as_str()
    }
}

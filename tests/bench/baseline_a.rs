//! Baseline A for the load benchmark (issue 7): the floor of the machine.
//!
//! A minimal axum + sqlx service with the same durability settings as reporter-vault and
//! nothing else: no authentication, no cryptography, no access trail.
//!
//! * `POST /v1/items`: parses the JSON body (the same body `POST /v1/reporters` takes) and
//!   makes one durable insert of its bytes under a fresh random id; answers 201 `{"id": …}`.
//!   SQLite: WAL, `synchronous=NORMAL`, one writer connection (as the service). PostgreSQL:
//!   the server's defaults (as the service). By default the INSERT runs on its own
//!   (autocommit: one statement, one transaction); `--tx` wraps it in `BEGIN [IMMEDIATE]` …
//!   `COMMIT` as three statements, like the service's transactions.
//! * `GET /v1/items/{id}`: one select by primary key on the read pool; 200 or 404.
//!
//! Pools as the service's: one SQLite writer connection, eight readers (PostgreSQL: eight),
//! sqlx's defaults otherwise. `--driver any` runs the same queries through sqlx's `Any` driver
//! (the service's) and `--no-ping` turns off sqlx's ping before each acquire, to separate those
//! costs from the rest. Run by `tests/bench/run` with the defaults; not shipped.

use std::net::SocketAddr;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Parser, ValueEnum};
use ring::rand::{SecureRandom as _, SystemRandom};
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AnyPool, Executor as _, PgPool, Row as _, SqlitePool};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EngineArg {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DriverArg {
    /// sqlx's engine-specific driver.
    Native,
    /// sqlx's `Any` driver, as reporter-vault uses.
    Any,
}

/// Baseline A: one durable insert per request, one select by primary key.
#[derive(Parser, Debug)]
#[command(name = "bench-baseline-a")]
struct Args {
    /// Database engine.
    #[arg(long, value_enum, default_value = "sqlite")]
    engine: EngineArg,
    /// `sqlite://PATH` (created) or `postgres://…` (an existing, empty database).
    #[arg(long)]
    database_url: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8790")]
    listen: SocketAddr,
    /// Read connections (SQLite; PostgreSQL: all connections), as the service's default.
    #[arg(long, default_value_t = 8)]
    max_connections: u32,
    /// Which sqlx driver.
    #[arg(long, value_enum, default_value = "native")]
    driver: DriverArg,
    /// Wrap each insert in an explicit transaction (BEGIN [IMMEDIATE] / INSERT / COMMIT).
    #[arg(long)]
    tx: bool,
    /// Skip sqlx's ping of a pooled connection before handing it out (`test_before_acquire`,
    /// on by default in sqlx and in the service): one round trip to the database (SQLite: to
    /// its worker thread) less per request.
    #[arg(long)]
    no_ping: bool,
}

#[derive(Clone)]
enum Db {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
    Any {
        writer: AnyPool,
        reader: AnyPool,
        sqlite: bool,
    },
}

#[derive(Clone)]
struct AppState {
    db: Db,
    tx: bool,
    rng: Arc<SystemRandom>,
}

const DDL: &str =
    "CREATE TABLE IF NOT EXISTS bench_items (id TEXT PRIMARY KEY, body BYTEA NOT NULL)";
const DDL_SQLITE: &str =
    "CREATE TABLE IF NOT EXISTS bench_items (id TEXT PRIMARY KEY, body BLOB NOT NULL)";
const INSERT: &str = "INSERT INTO bench_items (id, body) VALUES ($1, $2)";
const SELECT: &str = "SELECT body FROM bench_items WHERE id = $1";

fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, BoxErr> {
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(2)))
}

async fn open(args: &Args) -> Result<Db, BoxErr> {
    let acquire = Duration::from_secs(2);
    match (args.driver, args.engine) {
        (DriverArg::Native, EngineArg::Sqlite) => {
            let opts = sqlite_options(&args.database_url)?;
            let make = |max: u32| {
                SqlitePoolOptions::new()
                    .test_before_acquire(!args.no_ping)
                    .max_connections(max)
                    .min_connections(1)
                    .acquire_timeout(acquire)
                    .idle_timeout(None)
                    .max_lifetime(None)
            };
            let writer = make(1).connect_with(opts.clone()).await?;
            writer.execute(DDL_SQLITE).await?;
            let reader = make(args.max_connections.max(1)).connect_with(opts).await?;
            Ok(Db::Sqlite { writer, reader })
        }
        (DriverArg::Native, EngineArg::Postgres) => {
            let pool = PgPoolOptions::new()
                .test_before_acquire(!args.no_ping)
                .max_connections(args.max_connections.max(2))
                .acquire_timeout(acquire)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect(&args.database_url)
                .await?;
            pool.execute(DDL).await?;
            Ok(Db::Postgres(pool))
        }
        (DriverArg::Any, engine) => {
            sqlx::any::install_default_drivers();
            let sqlite = engine == EngineArg::Sqlite;
            if sqlite {
                // Create the file (the Any driver's URL options do not).
                drop(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(sqlite_options(&args.database_url)?)
                        .await?,
                );
            }
            let make = |max: u32| {
                AnyPoolOptions::new()
                    .test_before_acquire(!args.no_ping)
                    .max_connections(max)
                    .min_connections(1)
                    .acquire_timeout(acquire)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            if sqlite {
                                conn.execute(sqlx::raw_sql(
                                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                                     PRAGMA foreign_keys=ON; PRAGMA busy_timeout=2000;",
                                ))
                                .await?;
                            }
                            Ok(())
                        })
                    })
            };
            let (writer, reader) = if sqlite {
                let w = make(1).connect(&args.database_url).await?;
                let r = make(args.max_connections.max(1))
                    .connect(&args.database_url)
                    .await?;
                (w, r)
            } else {
                let p = make(args.max_connections.max(2))
                    .connect(&args.database_url)
                    .await?;
                (p.clone(), p)
            };
            writer
                .execute(if sqlite { DDL_SQLITE } else { DDL })
                .await?;
            Ok(Db::Any {
                writer,
                reader,
                sqlite,
            })
        }
    }
}

fn fail(e: impl std::fmt::Display) -> Response {
    eprintln!("bench-baseline-a: {e}");
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}

async fn insert(State(s): State<AppState>, body: Bytes) -> Response {
    // Parse like the service does (a typed parse there; a generic one here), and keep the
    // parsed document's bytes.
    let doc: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return StatusCode::UNPROCESSABLE_ENTITY.into_response(),
    };
    let bytes = match serde_json::to_vec(&doc) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let mut raw = [0u8; 16];
    if let Err(e) = s.rng.fill(&mut raw) {
        return fail(format!("{e:?}"));
    }
    let id = hex::encode(raw);
    let done = match (&s.db, s.tx) {
        (Db::Sqlite { writer, .. }, false) => sqlx::query(INSERT)
            .bind(&id)
            .bind(bytes)
            .execute(writer)
            .await
            .map(drop),
        (Db::Sqlite { writer, .. }, true) => {
            async {
                let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(INSERT)
                    .bind(&id)
                    .bind(bytes)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await
        }
        (Db::Postgres(pool), false) => sqlx::query(INSERT)
            .bind(&id)
            .bind(bytes)
            .execute(pool)
            .await
            .map(drop),
        (Db::Postgres(pool), true) => {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query(INSERT)
                    .bind(&id)
                    .bind(bytes)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await
        }
        (Db::Any { writer, .. }, false) => sqlx::query(INSERT)
            .bind(&id)
            .bind(bytes)
            .execute(writer)
            .await
            .map(drop),
        (Db::Any { writer, sqlite, .. }, true) => {
            async {
                let mut tx = if *sqlite {
                    writer.begin_with("BEGIN IMMEDIATE").await?
                } else {
                    writer.begin().await?
                };
                sqlx::query(INSERT)
                    .bind(&id)
                    .bind(bytes)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await
        }
    };
    match done {
        Ok(()) => (StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response(),
        Err(e) => fail(e),
    }
}

async fn read(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let row = match &s.db {
        Db::Sqlite { reader, .. } => sqlx::query(SELECT)
            .bind(&id)
            .fetch_optional(reader)
            .await
            .and_then(|r| r.map(|r| r.try_get::<Vec<u8>, _>("body")).transpose()),
        Db::Postgres(pool) => sqlx::query(SELECT)
            .bind(&id)
            .fetch_optional(pool)
            .await
            .and_then(|r| r.map(|r| r.try_get::<Vec<u8>, _>("body")).transpose()),
        Db::Any { reader, .. } => sqlx::query(SELECT)
            .bind(&id)
            .fetch_optional(reader)
            .await
            .and_then(|r| r.map(|r| r.try_get::<Vec<u8>, _>("body")).transpose()),
    };
    match row {
        Ok(Some(body)) => {
            let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            Json(serde_json::json!({ "id": id, "body": doc })).into_response()
        }
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => fail(e),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxErr> {
    let args = Args::parse();
    let db = open(&args).await?;
    let state = AppState {
        db,
        tx: args.tx,
        rng: Arc::new(SystemRandom::new()),
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/items", post(insert))
        .route("/v1/items/{id}", get(read))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    eprintln!("bench-baseline-a listening on {}", args.listen);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

//! The backup lists its tables and columns explicitly. This test reads the schema the
//! migrations really create — `sqlite_master` and `pragma_table_info`, or PostgreSQL's
//! `information_schema` — and fails when a migration adds a table or a column (or changes a
//! column's type) that `vault_storage::backup::TABLES` does not cover.

use std::collections::BTreeMap;

use sqlx::Row;
use vault_storage::backup::{Kind, NOT_BACKED_UP, TABLES};
use vault_storage::{SqlStore, StoreOptions};

use crate::harness::{Engine, PgDb};

both_engines!(backup_covers_every_table_and_column);

fn kind_of(declared: &str) -> Option<Kind> {
    match declared.to_ascii_lowercase().as_str() {
        "integer" | "bigint" => Some(Kind::Int),
        "text" => Some(Kind::Text),
        "blob" | "bytea" => Some(Kind::Blob),
        _ => None,
    }
}

async fn backup_covers_every_table_and_column(engine: Engine) {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => Some(PgDb::create("rv_backup_schema").await),
    };
    let url = match &pg {
        Some(pg) => pg.url.clone(),
        None => format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display()),
    };
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    store.close().await;

    // The schema as the database reports it, independently of the code under test.
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect");
    let sql = match engine {
        Engine::Sqlite => {
            "SELECT m.name AS t, p.name AS c, p.type AS k FROM sqlite_master AS m,
                 pragma_table_info(m.name) AS p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid"
        }
        Engine::Postgres => {
            "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS k
             FROM information_schema.columns WHERE table_schema = current_schema()
             ORDER BY table_name, ordinal_position"
        }
    };
    let mut live: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in sqlx::query(sql).fetch_all(&mut conn).await.expect("schema") {
        live.entry(r.get::<String, _>("t"))
            .or_default()
            .push((r.get::<String, _>("c"), r.get::<String, _>("k")));
    }
    assert!(
        live.contains_key("reporters") && live.contains_key("audit_events"),
        "the schema query found the tables: {live:?}"
    );

    let mut problems = Vec::new();
    for (table, cols) in &live {
        if NOT_BACKED_UP.iter().any(|(n, _)| n == table) {
            continue;
        }
        let Some(spec) = TABLES.iter().find(|t| t.name == table) else {
            problems.push(format!(
                "table {table} is created by the migrations but not backed up"
            ));
            continue;
        };
        for (c, declared) in cols {
            match spec.columns.iter().find(|x| x.name == c) {
                None => problems.push(format!("column {table}.{c} is not backed up")),
                Some(x) if kind_of(declared) != Some(x.kind) => problems.push(format!(
                    "column {table}.{c} is {declared} but backed up as {}",
                    x.kind.as_str()
                )),
                Some(_) => {}
            }
        }
        for x in spec.columns {
            if !cols.iter().any(|(c, _)| c == x.name) {
                problems.push(format!(
                    "column {table}.{} is backed up but does not exist",
                    x.name
                ));
            }
        }
    }
    for spec in TABLES {
        if !live.contains_key(spec.name) {
            problems.push(format!(
                "table {} is backed up but does not exist",
                spec.name
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the backup does not cover the {engine:?} schema exactly; update \
         services/vault-storage/src/backup.rs (TABLES):\n{}",
        problems.join("\n")
    );
    // The exclusions are real tables, not stale names.
    for (n, _) in NOT_BACKED_UP {
        assert!(live.contains_key(*n), "{n} is excluded but does not exist");
    }
    // And the store-side check agrees.
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .expect("connect");
    let schema = store.live_schema().await.expect("live schema");
    assert_eq!(
        vault_storage::backup::coverage_gaps(&schema),
        Vec::<String>::new()
    );
    store.close().await;
}

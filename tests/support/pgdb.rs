//! A throwaway PostgreSQL database per test, shared by the black-box and reward suites
//! (included with `#[path]`). It panics, never skips, when the server cannot be reached.

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use vault_crypto::random::{RandomSource, SystemRandomSource};

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandomSource
        .fill(&mut buf)
        .expect("system randomness");
    hex::encode(buf)
}

/// A throwaway PostgreSQL database, dropped (best effort) when this is dropped.
pub struct PgDb {
    /// `<prefix>_<hex>`.
    pub name: String,
    /// URL of this database.
    pub url: String,
    admin_url: String,
}

fn split_pg_url(url: &str) -> (String, String) {
    let (without_query, query) = match url.split_once('?') {
        Some((u, q)) => (u.to_owned(), format!("?{q}")),
        None => (url.to_owned(), String::new()),
    };
    let scheme_end = without_query.find("://").map_or(0, |i| i + 3);
    let base = match without_query[scheme_end..].find('/') {
        Some(i) => without_query[..scheme_end + i].to_owned(),
        None => without_query,
    };
    (base, query)
}

impl PgDb {
    /// Creates `<prefix>_<random>` on the server of `RV_TEST_PG_URL`. Panics — never skips —
    /// if the server cannot be reached.
    pub async fn create(prefix: &str) -> PgDb {
        let admin_url = std::env::var("RV_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.into());
        let connect =
            tokio::time::timeout(Duration::from_secs(15), PgConnection::connect(&admin_url));
        let mut conn = match connect.await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!(
                "PostgreSQL is unreachable at {admin_url} ({e}). The PostgreSQL suite must run: \
                 start the server (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) \
                 main start) or point RV_TEST_PG_URL at one."
            ),
            Err(_) => panic!(
                "PostgreSQL at {admin_url} did not answer within 15 s. The PostgreSQL suite \
                 must run: start the server or point RV_TEST_PG_URL at one."
            ),
        };
        let name = format!("{prefix}_{}", random_hex(8));
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin_url}: {e}"));
        let _ = conn.close().await;
        let (base, query) = split_pg_url(&admin_url);
        PgDb {
            url: format!("{base}/{name}{query}"),
            name,
            admin_url,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut c) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                    let _ = c.close().await;
                }
            });
        })
        .join();
    }
}

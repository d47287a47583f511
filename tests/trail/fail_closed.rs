//! Fail closed, never hang, under real faults (no flag in the code):
//!
//! * PostgreSQL: the service logs in as a non-superuser role owning its database; the
//!   superuser revokes INSERT on `audit_events` from it while the server runs.
//! * SQLite: the tests run as root, and root ignores file permissions, so `chmod` is no fault.
//!   What does stop root is the immutable attribute: `chattr +i` on `vault.db` and
//!   `vault.db-wal` makes every write to them fail with EPERM (SQLite: disk I/O error), which
//!   is exactly "the file became read-only". (`vault.db-shm` is left alone: it is mmapped,
//!   and an immutable mapping faults with SIGBUS instead of an error.) A second SQLite test
//!   holds the write lock from another connection (`BEGIN EXCLUSIVE`), the other real fault a
//!   SQLite deployment meets; there the answer may take the 2 s busy timeout.
//!
//! Under the fault a seal and a disclosure open answer 503, return nothing protected and write
//! nothing; `/readyz` is 503 `not_ready`; when the fault clears, `/readyz` is 200 again and
//! the same actions succeed.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sqlx::{AnyConnection, Connection};

use crate::harness::{Engine, Options, Resp, Storage, StorageOpts, TestApp};

const PHONE: &str = "13800138000";

/// Undoes `chattr +i` even if the test panics (the temporary directory must stay removable).
struct Immutable(Vec<PathBuf>);

fn chattr(flag: &str, path: &PathBuf) -> bool {
    std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

impl Immutable {
    fn set(paths: Vec<PathBuf>) -> Immutable {
        for p in &paths {
            assert!(p.exists(), "{} exists", p.display());
            assert!(
                chattr("+i", p),
                "chattr +i {} failed: this suite needs CAP_LINUX_IMMUTABLE on an ext4/xfs/btrfs \
                 temporary directory to make the SQLite file read-only for root",
                p.display()
            );
        }
        Immutable(paths)
    }

    fn clear(&mut self) {
        for p in self.0.drain(..) {
            chattr("-i", &p);
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        self.clear();
    }
}

enum Fault {
    Immutable(Immutable),
    Revoked,
    Locked(AnyConnection),
}

async fn inject(storage: &Storage, lock: bool) -> Fault {
    match storage.engine {
        Engine::Sqlite if lock => {
            let mut c = storage.superuser().await;
            sqlx::raw_sql("BEGIN EXCLUSIVE")
                .execute(&mut c)
                .await
                .expect("taking the write lock");
            Fault::Locked(c)
        }
        Engine::Sqlite => {
            let db = storage.sqlite_path();
            let wal = PathBuf::from(format!("{}-wal", db.display()));
            Fault::Immutable(Immutable::set(vec![db, wal]))
        }
        Engine::Postgres => {
            let role = storage
                .pg
                .as_ref()
                .and_then(|p| p.role.clone())
                .expect("the service runs as its own role");
            let mut c = storage.superuser().await;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "REVOKE INSERT ON audit_events FROM {role}"
            )))
            .execute(&mut c)
            .await
            .expect("REVOKE");
            let _ = c.close().await;
            Fault::Revoked
        }
    }
}

async fn clear(storage: &Storage, fault: Fault) {
    match fault {
        Fault::Immutable(mut i) => i.clear(),
        Fault::Locked(mut c) => {
            sqlx::raw_sql("ROLLBACK")
                .execute(&mut c)
                .await
                .expect("releasing the lock");
            let _ = c.close().await;
        }
        Fault::Revoked => {
            let role = storage
                .pg
                .as_ref()
                .and_then(|p| p.role.clone())
                .expect("role");
            let mut c = storage.superuser().await;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "GRANT INSERT ON audit_events TO {role}"
            )))
            .execute(&mut c)
            .await
            .expect("GRANT");
            let _ = c.close().await;
        }
    }
}

async fn readyz(app: &TestApp) -> Resp {
    app.call(Method::GET, "/readyz", None, None).await
}

async fn fail_closed_scenario(engine: Engine, lock: bool, limit: Duration) {
    let storage = Storage::with(engine, StorageOpts { pg_role: true }).await;
    let app = TestApp::start(&storage, Options::default()).await;
    if let Some(pg) = &storage.pg {
        assert!(
            pg.service_url.contains("rv_app_"),
            "the service logs in as its own role"
        );
    }
    let p = app.seal(json!({"name": "张三", "phone": PHONE})).await;
    let d = app
        .approved_disclosure("case_system", &p, "verification_contact", &["phone"])
        .await;
    readyz(&app).await.expect(200, "ready before the fault");
    let events_before = storage.count("audit_events").await;
    let pseudonyms_before = storage.count("pseudonyms").await;
    let reporters_before = storage.count("reporters").await;

    let fault = inject(&storage, lock).await;
    let mut problems: Vec<String> = Vec::new();
    let mut codes: Vec<String> = Vec::new();

    // Readiness must see the fault before any action trips over it…
    check_not_ready(
        &readyz(&app).await,
        "before any action",
        limit,
        &mut problems,
    );
    let seal = app
        .seal_raw(
            json!({"name": "李四", "phone": "13900139000"}),
            "SX-2026-000777",
        )
        .await;
    let open = app.open("case_system", &d).await;
    for (what, r) in [("seal", &seal), ("disclosure open", &open)] {
        if r.status != 503 {
            problems.push(format!(
                "{what}: expected 503, got {} {}",
                r.status,
                r.text()
            ));
        }
        let code = r.code().unwrap_or_default();
        if code != "audit_unavailable" && code != "store_unavailable" {
            problems.push(format!("{what}: error code {code:?}: {}", r.text()));
        }
        codes.push(format!("{what}: {code}"));
        if r.elapsed > limit {
            problems.push(format!(
                "{what}: answered after {:?} (limit {limit:?})",
                r.elapsed
            ));
        }
        if r.text().contains(PHONE) || r.text().contains("pseudonym\"") {
            problems.push(format!(
                "{what}: protected data in the answer: {}",
                r.text()
            ));
        }
    }
    // …and after.
    check_not_ready(
        &readyz(&app).await,
        "after the failed actions",
        limit,
        &mut problems,
    );

    clear(&storage, fault).await;

    // Nothing was written.
    let after = (
        storage.count("audit_events").await,
        storage.count("pseudonyms").await,
        storage.count("reporters").await,
    );
    if after != (events_before, pseudonyms_before, reporters_before) {
        problems.push(format!(
            "rows written under the fault: (events, pseudonyms, reporters) {:?} -> {after:?}",
            (events_before, pseudonyms_before, reporters_before)
        ));
    }
    let status = app
        .get(&format!("/v1/disclosures/{d}"), "case_system")
        .await
        .expect(200, "disclosure");
    if status["status"] != "approved" {
        problems.push(format!(
            "the disclosure is {} after the failed open",
            status["status"]
        ));
    }

    // Recovery, within a few seconds, without a restart.
    let mut ready_again = readyz(&app).await;
    for _ in 0..20 {
        if ready_again.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        ready_again = readyz(&app).await;
    }
    if ready_again.status != 200 {
        problems.push(format!(
            "/readyz 5 s after the fault was cleared: {} {}",
            ready_again.status,
            ready_again.text()
        ));
    }
    let seal = app
        .seal_raw(
            json!({"name": "李四", "phone": "13900139000"}),
            "SX-2026-000778",
        )
        .await;
    if seal.status != 201 {
        problems.push(format!(
            "a seal after the fault was cleared: {} {}",
            seal.status,
            seal.text()
        ));
    } else {
        let opened = app.open("case_system", &d).await;
        if opened.status != 200 || !opened.text().contains(PHONE) {
            problems.push(format!(
                "the disclosure open after recovery: {} {}",
                opened.status,
                opened.text()
            ));
        }
    }
    app.stop().await;
    let out = storage.cli(&["audit", "verify"]).await;
    if !out.ok() {
        problems.push(format!(
            "the trail does not verify after the fault: {}",
            out.all()
        ));
    }

    eprintln!("fail-closed ({engine:?}, lock={lock}) answered: {codes:?}");
    assert!(
        problems.is_empty(),
        "fail-closed under a real fault ({engine:?}{}):\n{}",
        if lock { ", write lock held" } else { "" },
        problems.join("\n")
    );
}

fn check_not_ready(r: &Resp, when: &str, limit: Duration, problems: &mut Vec<String>) {
    if r.status != 503 || !r.text().contains("not_ready") {
        problems.push(format!(
            "/readyz during the fault ({when}): expected 503 not_ready, got {} {}",
            r.status,
            r.text()
        ));
    }
    if r.elapsed > limit {
        problems.push(format!("/readyz ({when}) answered after {:?}", r.elapsed));
    }
}

async fn fail_closed(engine: Engine) {
    fail_closed_scenario(engine, false, Duration::from_secs(2)).await;
}

both_engines!(fail_closed);

/// SQLite only: another connection holds the write lock. The busy timeout is 2 s, so an
/// answer within 3 s is prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_sqlite_write_lock_held() {
    let _w = crate::harness::watchdog("fail_closed_sqlite_write_lock_held");
    fail_closed_scenario(Engine::Sqlite, true, Duration::from_secs(3)).await;
}

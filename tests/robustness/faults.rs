//! Real faults under write load, cleared without restarting the service:
//!
//! * database unreachable: a PostgreSQL cluster this test starts itself (`initdb`, `pg_ctl`)
//!   is stopped with `pg_ctl stop -m immediate` mid-load and started again (crash recovery);
//! * disk full: the SQLite data directory is a 8 MiB tmpfs, filled up by a filler file while
//!   writes continue, then the filler is removed;
//! * keyring unreadable: the keyring file is garbled, emptied and deleted while the service
//!   runs with a 1 s key reload (the keys in memory must stay and serve), and a start with a
//!   garbled, empty or missing keyring must refuse promptly with a clear message.
//!
//! For the first two: failing requests answer 503 promptly (p99 measured), nothing hangs,
//! `/readyz` turns 503 and back to 200 by itself, every acknowledged write is still there, the
//! database is consistent and `audit verify` passes. (An unwritable access trail is covered
//! in tests/trail/fail_closed.rs.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::harness::{
    Server, Store, client, disclosure_body, identity, percentile, random_hex, request, seal_body,
};

/// The load requests far more than 30 disclosures a minute.
const LOAD_ENV: &[(&str, &str)] = &[("RV_DISCLOSURE_REQUESTS_PER_MINUTE", "1000000")];

// ------------------------------------------------------------------------------------------
// Load with every request timed
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Sample {
    /// When the request started, from the start of the load.
    at: Duration,
    /// `None`: a transport failure.
    status: Option<u16>,
    code: String,
    elapsed: Duration,
    what: &'static str,
}

#[derive(Default)]
struct WorkerOut {
    samples: Vec<Sample>,
    sealed: Vec<String>,
    approved: Vec<String>,
}

struct Load {
    t0: Instant,
    stop: Arc<AtomicBool>,
    workers: tokio::task::JoinSet<WorkerOut>,
}

struct LoadOut {
    samples: Vec<Sample>,
    readyz: Vec<Sample>,
    sealed: Vec<String>,
    approved: Vec<String>,
}

/// Where timed requests go and what their times count from.
struct Target<'a> {
    c: &'a reqwest::Client,
    base: &'a str,
    t0: Instant,
}

async fn timed(
    t: &Target<'_>,
    what: &'static str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (Sample, Value) {
    let (c, base, t0) = (t.c, t.base, t.t0);
    let at = t0.elapsed();
    let started = Instant::now();
    let r = request(c, base, method, path, token, body).await;
    let elapsed = started.elapsed();
    match r {
        Ok(r) => (
            Sample {
                at,
                status: Some(r.status),
                code: r.code(),
                elapsed,
                what,
            },
            r.json(),
        ),
        Err(_) => (
            Sample {
                at,
                status: None,
                code: String::new(),
                elapsed,
                what,
            },
            Value::Null,
        ),
    }
}

impl Load {
    /// `workers` tasks seal, request and approve disclosures; one more polls `/readyz` every
    /// 100 ms.
    fn start(server: &Server, workers: usize, counter: &Arc<AtomicU64>) -> Load {
        let t0 = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        let tokens: Arc<BTreeMap<String, String>> = Arc::new(
            server
                .principals
                .iter()
                .map(|(k, p)| (k.clone(), p.token.clone()))
                .collect(),
        );
        for _ in 0..workers {
            let stop = stop.clone();
            let base = server.base.clone();
            let c = client(Duration::from_secs(30));
            let tokens = tokens.clone();
            let counter = counter.clone();
            set.spawn(async move {
                let cs = tokens["case_system"].clone();
                let cu = tokens["custodian"].clone();
                let mut out = WorkerOut::default();
                while !stop.load(Ordering::SeqCst) {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let body = seal_body("140100", &format!("RB-F-{n}"), identity(n));
                    let (s, v) = timed(
                        &Target {
                            c: &c,
                            base: &base,
                            t0,
                        },
                        "seal",
                        Method::POST,
                        "/v1/reporters",
                        Some(&cs),
                        Some(&body),
                    )
                    .await;
                    let ok = s.status == Some(201);
                    out.samples.push(s);
                    if !ok {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    let p = v["pseudonym"].as_str().unwrap_or_default().to_owned();
                    out.sealed.push(p.clone());
                    let (s, v) = timed(
                        &Target {
                            c: &c,
                            base: &base,
                            t0,
                        },
                        "request",
                        Method::POST,
                        "/v1/disclosures",
                        Some(&cs),
                        Some(&disclosure_body(&p)),
                    )
                    .await;
                    let ok = s.status == Some(201);
                    out.samples.push(s);
                    if !ok {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    let d = v["id"].as_str().unwrap_or_default().to_owned();
                    let (s, v) = timed(
                        &Target {
                            c: &c,
                            base: &base,
                            t0,
                        },
                        "approve",
                        Method::POST,
                        &format!("/v1/disclosures/{d}/approve"),
                        Some(&cu),
                        Some(&json!({"comment": "同意"})),
                    )
                    .await;
                    let ok = s.status == Some(200) && v["status"] == "approved";
                    out.samples.push(s);
                    if ok {
                        out.approved.push(d);
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    // A read too: reads may keep working while writes cannot.
                    let (s, _) = timed(
                        &Target {
                            c: &c,
                            base: &base,
                            t0,
                        },
                        "read",
                        Method::GET,
                        &format!("/v1/pseudonyms/{p}"),
                        Some(&cs),
                        None,
                    )
                    .await;
                    out.samples.push(s);
                }
                out
            });
        }
        {
            let stop = stop.clone();
            let base = server.base.clone();
            let c = client(Duration::from_secs(30));
            set.spawn(async move {
                let mut out = WorkerOut::default();
                while !stop.load(Ordering::SeqCst) {
                    let (s, _) = timed(
                        &Target {
                            c: &c,
                            base: &base,
                            t0,
                        },
                        "readyz",
                        Method::GET,
                        "/readyz",
                        None,
                        None,
                    )
                    .await;
                    out.samples.push(s);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                out
            });
        }
        Load {
            t0,
            stop,
            workers: set,
        }
    }

    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Samples so far are not visible until the end; this waits for `/readyz` 200 and a
    /// successful seal by polling on its own, returning how long after `since` that took.
    async fn wait_recovered(&self, server: &Server, limit: Duration) -> Option<Duration> {
        let since = Instant::now();
        let c = client(Duration::from_secs(10));
        let cs = server.token("case_system");
        let mut ready = false;
        while since.elapsed() < limit {
            if !ready
                && let Ok(r) = request(&c, &server.base, Method::GET, "/readyz", None, None).await
                && r.status == 200
            {
                ready = true;
            }
            if ready {
                let n = 900_000_000 + u64::from(since.elapsed().subsec_nanos() % 1000);
                let body = seal_body("140100", &format!("RB-REC-{n}"), Value::Null);
                if let Ok(r) = request(
                    &c,
                    &server.base,
                    Method::POST,
                    "/v1/reporters",
                    Some(&cs),
                    Some(&body),
                )
                .await
                    && r.status == 201
                {
                    return Some(since.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    async fn finish(mut self) -> LoadOut {
        self.stop.store(true, Ordering::SeqCst);
        let mut out = LoadOut {
            samples: Vec::new(),
            readyz: Vec::new(),
            sealed: Vec::new(),
            approved: Vec::new(),
        };
        let join = async {
            while let Some(r) = self.workers.join_next().await {
                let w = r.expect("a load task");
                for s in w.samples {
                    if s.what == "readyz" {
                        out.readyz.push(s);
                    } else {
                        out.samples.push(s);
                    }
                }
                out.sealed.extend(w.sealed);
                out.approved.extend(w.approved);
            }
        };
        tokio::time::timeout(Duration::from_secs(60), join)
            .await
            .expect("the load stops within 60 s (a request hung)");
        out
    }
}

/// Checks the load's samples against the fault window; returns problems and a summary.
fn analyse(
    what: &str,
    out: &LoadOut,
    fault_at: Duration,
    clear_at: Duration,
    limit_p99: Duration,
) -> (Vec<String>, String) {
    let mut problems = Vec::new();
    // Requests that started after the fault was in place and before it was cleared.
    let settle = Duration::from_millis(300);
    let in_fault = |s: &&Sample| s.at >= fault_at + settle && s.at < clear_at;
    let failing: Vec<&Sample> = out
        .samples
        .iter()
        .filter(in_fault)
        .filter(|s| s.status.is_none_or(|c| !(200..300).contains(&c)))
        .collect();
    let ok_in_fault: BTreeMap<&str, usize> = out
        .samples
        .iter()
        .filter(in_fault)
        .filter(|s| s.status.is_some_and(|c| (200..300).contains(&c)))
        .fold(BTreeMap::new(), |mut m, s| {
            *m.entry(s.what).or_default() += 1;
            m
        });
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for s in &failing {
        let k = match s.status {
            Some(c) => format!("{} {} {}", s.what, c, s.code),
            None => format!("{} transport-error", s.what),
        };
        *codes.entry(k).or_default() += 1;
    }
    let mut lat: Vec<Duration> = failing.iter().map(|s| s.elapsed).collect();
    let p50 = percentile(&mut lat, 50);
    let p99 = percentile(&mut lat, 99);
    let max = lat.last().copied().unwrap_or_default();
    if failing.len() < 5 {
        problems.push(format!(
            "{what}: only {} failing requests during the fault: the fault did not bite",
            failing.len()
        ));
    }
    for s in &failing {
        match s.status {
            Some(503) => {}
            Some(c) => problems.push(format!(
                "{what}: a {} during the fault answered {c} {} (expected 503)",
                s.what, s.code
            )),
            None => problems.push(format!(
                "{what}: a {} during the fault failed at the transport level after {:?}",
                s.what, s.elapsed
            )),
        }
    }
    if p99 >= limit_p99 {
        problems.push(format!(
            "{what}: p99 latency of the failing requests {p99:?} (limit {limit_p99:?}; max \
             {max:?})"
        ));
    }
    // No request anywhere in the run hung or got a 500.
    for s in &out.samples {
        if s.elapsed > Duration::from_secs(5) {
            problems.push(format!(
                "{what}: a {} at {:?} took {:?} (hang)",
                s.what, s.at, s.elapsed
            ));
        }
        if s.status == Some(500) {
            problems.push(format!("{what}: a {} answered 500 at {:?}", s.what, s.at));
        }
    }
    // Readiness.
    let not_ready_at = out
        .readyz
        .iter()
        .find(|s| s.at >= fault_at && s.status == Some(503))
        .map(|s| s.at + s.elapsed - fault_at);
    let ready_during_fault = out
        .readyz
        .iter()
        .filter(|s| s.at >= fault_at + Duration::from_secs(2) && s.at + s.elapsed < clear_at)
        .filter(|s| s.status == Some(200))
        .count();
    let mut rlat: Vec<Duration> = out
        .readyz
        .iter()
        .filter(|s| s.at >= fault_at && s.at < clear_at)
        .map(|s| s.elapsed)
        .collect();
    let readyz_max = percentile(&mut rlat, 100);
    let ready_again = out
        .readyz
        .iter()
        .find(|s| s.at >= clear_at && s.status == Some(200))
        .map(|s| s.at + s.elapsed - clear_at);
    match not_ready_at {
        Some(t) if t <= Duration::from_secs(3) => {}
        other => problems.push(format!(
            "{what}: /readyz did not turn 503 within 3 s of the fault (first 503 after {other:?})"
        )),
    }
    if ready_during_fault > 0 {
        problems.push(format!(
            "{what}: /readyz answered 200 {ready_during_fault} times while the fault held"
        ));
    }
    if readyz_max > Duration::from_millis(2500) {
        problems.push(format!(
            "{what}: /readyz took {readyz_max:?} during the fault"
        ));
    }
    let summary = format!(
        "{what}: fault at {fault_at:.2?}, cleared at {clear_at:.2?}; {} failing requests during \
         the fault: p50 {p50:.1?}, p99 {p99:.1?}, max {max:.1?}; answers {codes:?}; successes \
         during the fault {ok_in_fault:?}; /readyz 503 {not_ready_at:.2?} after the fault, max \
         latency {readyz_max:.1?}, 200 again {ready_again:.2?} after clearing; {} requests in \
         all",
        failing.len(),
        out.samples.len()
    );
    (problems, summary)
}

/// Every acknowledged seal and approval is still there (over HTTP), the database is
/// consistent, and the trail verifies.
async fn nothing_lost(what: &str, server: &Server, store: &Store, out: &LoadOut) -> Vec<String> {
    let mut problems = Vec::new();
    let c = client(Duration::from_secs(10));
    let cs = server.token("case_system");
    for p in &out.sealed {
        match request(
            &c,
            &server.base,
            Method::GET,
            &format!("/v1/pseudonyms/{p}"),
            Some(&cs),
            None,
        )
        .await
        {
            Ok(r) if r.status == 200 => {}
            other => problems.push(format!(
                "{what}: acknowledged seal {p} lost: {:?}",
                other.map(|r| (r.status, r.text()))
            )),
        }
    }
    for d in &out.approved {
        match request(
            &c,
            &server.base,
            Method::GET,
            &format!("/v1/disclosures/{d}"),
            Some(&cs),
            None,
        )
        .await
        {
            Ok(r) if r.status == 200 && r.json()["status"] == "approved" => {}
            other => problems.push(format!(
                "{what}: acknowledged approval of {d} lost: {:?}",
                other.map(|r| (r.status, r.text()))
            )),
        }
    }
    let db = crate::crash::db_state(store).await;
    for p in db.problems {
        problems.push(format!("{what}: {p}"));
    }
    let out_v = store.cli(&["audit", "verify"]).await;
    if out_v.code != Some(0) {
        problems.push(format!(
            "{what}: audit verify failed: {}\n{}",
            out_v.stdout, out_v.stderr
        ));
    }
    eprintln!(
        "{what}: {} acknowledged seals and {} approvals all checked; db: {}",
        out.sealed.len(),
        out.approved.len(),
        db.counts
    );
    problems
}

// ------------------------------------------------------------------------------------------
// (a) PostgreSQL stopped (immediate) and started again mid-load
// ------------------------------------------------------------------------------------------

fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql: the PostgreSQL server binaries are needed")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join(name).exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .unwrap_or_else(|| panic!("no {name} under /usr/lib/postgresql/*/bin"))
        .join(name)
}

fn run_as_postgres(args: &[&str]) -> std::process::Output {
    std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .output()
        .expect("runuser")
}

/// A PostgreSQL cluster of this test's own, stopped (immediate) when dropped.
struct PgCluster {
    dir: TempDir,
    port: u16,
}

impl PgCluster {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn init() -> PgCluster {
        let dir = tempfile::Builder::new()
            .prefix("rv-robust-pg-")
            .tempdir()
            .expect("tempdir");
        let st = std::process::Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(st.success(), "chown postgres {}", dir.path().display());
        let data = dir.path().join("data");
        let out = run_as_postgres(&[
            pg_bin("initdb").to_str().expect("path"),
            "-D",
            data.to_str().expect("path"),
            "--auth=trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        PgCluster { dir, port }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) -> Duration {
        let t = Instant::now();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on",
            self.port,
            self.data().display()
        );
        let log = self.dir.path().join("pg.log");
        let out = run_as_postgres(&[
            pg_bin("pg_ctl").to_str().expect("path"),
            "-D",
            self.data().to_str().expect("path"),
            "-l",
            log.to_str().expect("path"),
            "-w",
            "-t",
            "60",
            "-o",
            &opts,
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        t.elapsed()
    }

    fn stop_immediate(&self) -> bool {
        run_as_postgres(&[
            pg_bin("pg_ctl").to_str().expect("path"),
            "-D",
            self.data().to_str().expect("path"),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .status
        .success()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop_immediate();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_unreachable_then_restarted() {
    let _w = crate::harness::watchdog("database_unreachable_then_restarted");
    let cluster = tokio::task::spawn_blocking(|| {
        let c = PgCluster::init();
        c.start();
        c
    })
    .await
    .expect("a PostgreSQL cluster");
    let store = Store::postgres_at(&cluster.url());
    let mut server = Server::start(&store, LOAD_ENV).await;
    let counter = Arc::new(AtomicU64::new(1_000_000));
    let load = Load::start(&server, 6, &counter);
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let fault_at = load.now();
    let stopped = tokio::task::block_in_place(|| cluster.stop_immediate());
    assert!(stopped, "pg_ctl stop -m immediate");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    // The fault is certain to hold only until `pg_ctl start` begins: PostgreSQL accepts
    // connections some time before `pg_ctl -w` notices (it polls every 100 ms), so a seal or a
    // /readyz 200 between the two is the service recovering, not a fault being missed. The
    // window therefore closes when the restart begins (CI once saw a 200 in that gap).
    let clear_at = load.now();
    let pg_start = tokio::task::block_in_place(|| cluster.start());
    let recovered = load.wait_recovered(&server, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = load.finish().await;

    let (mut problems, summary) = analyse(
        "PostgreSQL stopped",
        &out,
        fault_at,
        clear_at,
        Duration::from_secs(2),
    );
    eprintln!(
        "{summary}; pg_ctl start (crash recovery) took {pg_start:.2?}; /readyz 200 and a seal \
         succeeded {recovered:.2?} after pg_ctl start returned (\"cleared\" is when it began)"
    );
    if recovered.is_none() {
        problems.push("the service did not recover within 20 s of PostgreSQL's restart".into());
    }
    assert!(server.alive(), "the service is still running");
    problems.extend(nothing_lost("PostgreSQL stopped", &server, &store, &out).await);
    server.terminate().await;
    assert!(
        problems.is_empty(),
        "database unreachable:\n{}",
        problems.join("\n")
    );
}

// ------------------------------------------------------------------------------------------
// (b) Disk full: the SQLite data directory on a small tmpfs
// ------------------------------------------------------------------------------------------

/// A tmpfs mounted on a fresh directory; unmounted (lazily if busy) and removed on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("rv-robust-tmpfs-{}", random_hex(6)));
        std::fs::create_dir(&dir).expect("mount point");
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(&dir)
            .status()
            .expect("mount");
        assert!(
            st.success(),
            "mount -t tmpfs failed: this test needs root (CAP_SYS_ADMIN)"
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.dir)
                .status();
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Writes `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(_) => break,
        }
    }
    // Whatever is left, byte by byte chunks.
    let small = [0u8; 512];
    while let Ok(k) = f.write(&small) {
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    let _ = f.sync_all();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disk_full_then_freed() {
    let _w = crate::harness::watchdog("disk_full_then_freed");
    let fs = Tmpfs::mount("8m");
    let data = fs.dir.join("data");
    let store = Store::sqlite_in(&data);
    let mut server = Server::start(&store, LOAD_ENV).await;
    let counter = Arc::new(AtomicU64::new(2_000_000));
    let load = Load::start(&server, 4, &counter);
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let fault_at = load.now();
    let filler = fs.dir.join("filler");
    let filled = tokio::task::block_in_place(|| fill(&filler));
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // Top up: the service may have freed (checkpointed) space in between.
    let topped = tokio::task::block_in_place(|| {
        let more = fs.dir.join("filler2");
        fill(&more)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let clear_at = load.now();
    std::fs::remove_file(&filler).expect("remove the filler");
    let _ = std::fs::remove_file(fs.dir.join("filler2"));
    let recovered = load.wait_recovered(&server, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = load.finish().await;

    let (mut problems, summary) = analyse(
        "disk full",
        &out,
        fault_at,
        clear_at,
        Duration::from_secs(2),
    );
    eprintln!(
        "{summary}; filler {filled} + {topped} bytes; readyz 200 and a seal succeeded \
         {recovered:.2?} after the filler was removed"
    );
    if recovered.is_none() {
        problems.push("the service did not recover within 20 s of freeing the disk".into());
    }
    assert!(server.alive(), "the service is still running");
    problems.extend(nothing_lost("disk full", &server, &store, &out).await);
    server.terminate().await;
    drop(server);
    assert!(problems.is_empty(), "disk full:\n{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------
// (c) Keyring garbled, emptied or deleted while running; and at start
// ------------------------------------------------------------------------------------------

/// Seals a reporter with `phone`, has a custodian approve a disclosure of it and opens it;
/// returns the phone that came back.
async fn disclose_phone(server: &Server, n: u64) -> Result<(), String> {
    let id = identity(n);
    let phone = id["phone"].as_str().unwrap_or_default().to_owned();
    let r = server
        .post(
            "/v1/reporters",
            "case_system",
            seal_body("140100", &format!("RB-K-{n}"), id),
        )
        .await;
    if r.status != 201 {
        return Err(format!("seal: {} {}", r.status, r.text()));
    }
    let p = r.json()["pseudonym"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let d = server
        .post("/v1/disclosures", "case_system", disclosure_body(&p))
        .await;
    if d.status != 201 {
        return Err(format!("request: {} {}", d.status, d.text()));
    }
    let d = d.json()["id"].as_str().unwrap_or_default().to_owned();
    let a = server
        .post(
            &format!("/v1/disclosures/{d}/approve"),
            "custodian",
            json!({"comment": "同意"}),
        )
        .await;
    if a.status != 200 {
        return Err(format!("approve: {} {}", a.status, a.text()));
    }
    open_phone(server, &d, &phone).await
}

async fn open_phone(server: &Server, d: &str, phone: &str) -> Result<(), String> {
    let t = server.token("case_system");
    let o = server
        .call(
            Method::POST,
            &format!("/v1/disclosures/{d}/open"),
            Some(&t),
            None,
        )
        .await;
    if o.status != 200 || o.json()["fields"]["phone"] != phone {
        return Err(format!("open: {} {}", o.status, o.text()));
    }
    Ok(())
}

fn warnings(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("could not reload keys"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyring_unreadable() {
    let _w = crate::harness::watchdog("keyring_unreadable");
    let store = Store::sqlite();
    let env: &[(&str, &str)] = &[("RV_KEY_RELOAD_SECONDS", "1")];
    let mut server = Server::start(&store, env).await;
    let keyring = store.data_dir().join("keyring.age");
    let original = std::fs::read(&keyring).expect("the keyring");
    let mut problems: Vec<String> = Vec::new();

    // An approved, unopened disclosure of a reporter sealed before the fault.
    let before = identity(3_000_000);
    let phone_before = before["phone"].as_str().unwrap().to_owned();
    let p = server
        .post(
            "/v1/reporters",
            "case_system",
            seal_body("140100", "RB-K-BEFORE", before),
        )
        .await
        .expect(201, "seal before")["pseudonym"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut pending: Vec<String> = Vec::new();
    for _ in 0..3 {
        let d = server
            .post("/v1/disclosures", "case_system", disclosure_body(&p))
            .await
            .expect(201, "request")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        server
            .post(
                &format!("/v1/disclosures/{d}/approve"),
                "custodian",
                json!({"comment": "同意"}),
            )
            .await
            .expect(200, "approve");
        pending.push(d);
    }
    disclose_phone(&server, 3_000_001)
        .await
        .expect("a disclosure before the fault");

    let mut n = 3_000_010;
    let garble = |path: &Path| {
        let mut junk = b"age-encryption.org/v1\n-> X25519 garbled\n".to_vec();
        junk.extend(random_hex(200).into_bytes());
        std::fs::write(path, junk).expect("garble the keyring");
    };
    type Fault<'a> = (&'a str, Box<dyn Fn(&Path) + 'a>);
    let faults: Vec<Fault> = vec![
        ("garbled", Box::new(garble)),
        (
            "empty",
            Box::new(|p: &Path| std::fs::write(p, b"").expect("empty the keyring")),
        ),
        (
            "deleted",
            Box::new(|p: &Path| std::fs::remove_file(p).expect("delete the keyring")),
        ),
    ];
    for (i, (what, apply)) in faults.iter().enumerate() {
        let w0 = warnings(&server.log());
        apply(&keyring);
        // Three reload periods.
        tokio::time::sleep(Duration::from_millis(3200)).await;
        let w1 = warnings(&server.log());
        if !server.alive() {
            problems.push(format!(
                "keyring {what}: the service died:\n{}",
                server.log()
            ));
            break;
        }
        if w1 <= w0 {
            problems.push(format!(
                "keyring {what}: no 'could not reload keys' warning in the log"
            ));
        }
        let ready = server.call(Method::GET, "/readyz", None, None).await;
        if ready.status != 200 {
            problems.push(format!(
                "keyring {what}: /readyz {} {} (the keys in memory still work)",
                ready.status,
                ready.text()
            ));
        }
        // Old records open, new ones seal and open.
        if let Err(e) = open_phone(&server, &pending[i], &phone_before).await {
            problems.push(format!("keyring {what}: opening an old record: {e}"));
        }
        n += 1;
        if let Err(e) = disclose_phone(&server, n).await {
            problems.push(format!("keyring {what}: a new seal and disclosure: {e}"));
        }
        // A rotation needs the file: it must fail cleanly, and change nothing.
        let rot = server
            .call(
                Method::POST,
                "/v1/admin/keys/rotate",
                Some(&server.admin.clone()),
                None,
            )
            .await;
        if (200..300).contains(&rot.status) {
            problems.push(format!(
                "keyring {what}: a rotation succeeded on an unreadable keyring: {}",
                rot.text()
            ));
        }
        eprintln!(
            "keyring {what} at runtime: alive, {} reload warnings in 3.2 s, /readyz {}, \
             rotation answered {} {}",
            w1 - w0,
            ready.status,
            rot.status,
            rot.code()
        );
        std::fs::write(&keyring, &original).expect("restore the keyring");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o600))
                .expect("chmod 600");
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    // Restored: still fine, and quiet.
    let w0 = warnings(&server.log());
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let w1 = warnings(&server.log());
    if w1 != w0 {
        problems.push(format!(
            "after restoring the keyring: still {} reload warnings",
            w1 - w0
        ));
    }
    n += 1;
    if let Err(e) = disclose_phone(&server, n).await {
        problems.push(format!("after restoring the keyring: {e}"));
    }
    let st = server.terminate().await;
    assert!(st.success(), "exit status {st}");

    // A start with an unreadable keyring refuses, promptly and clearly.
    let starts: Vec<Fault> = vec![
        ("garbled", Box::new(garble)),
        (
            "empty",
            Box::new(|p: &Path| std::fs::write(p, b"").expect("empty")),
        ),
        (
            "a directory",
            Box::new(|p: &Path| {
                std::fs::remove_file(p).expect("remove");
                std::fs::create_dir(p).expect("mkdir");
            }),
        ),
        (
            "missing",
            Box::new(|p: &Path| std::fs::remove_file(p).expect("remove")),
        ),
    ];
    for (what, apply) in &starts {
        apply(&keyring);
        let (code, stderr, took) = Server::start_expect_failure(&store, env).await;
        let last = stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("reporter-vault:"))
            .unwrap_or_default()
            .to_owned();
        eprintln!("start with the keyring {what}: exit {code:?} after {took:.2?}: {last}");
        if code == Some(0) || code.is_none() {
            problems.push(format!("start with the keyring {what}: exit {code:?}"));
        }
        if took > Duration::from_secs(5) {
            problems.push(format!(
                "start with the keyring {what}: refused only after {took:?}"
            ));
        }
        if !last.to_lowercase().contains("keyring") {
            problems.push(format!(
                "start with the keyring {what}: the message does not name the keyring: {last:?}"
            ));
        }
        if stderr.contains(&phone_before) {
            problems.push(format!(
                "start with the keyring {what}: identity data in the log"
            ));
        }
        if keyring.is_dir() {
            std::fs::remove_dir(&keyring).expect("rmdir");
        } else if keyring.exists() {
            std::fs::remove_file(&keyring).expect("rm");
        }
        std::fs::write(&keyring, &original).expect("restore the keyring");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600");
    }
    // And with the keyring back, it starts and serves what it held.
    let mut server = Server::start(&store, env).await;
    server
        .get(&format!("/v1/pseudonyms/{p}"), "case_system")
        .await
        .expect(200, "the record sealed before the faults");
    n += 1;
    if let Err(e) = disclose_phone(&server, n).await {
        problems.push(format!("after a restart with the keyring restored: {e}"));
    }
    server.terminate().await;
    store.audit_verify("after the keyring faults").await;
    assert!(
        problems.is_empty(),
        "keyring unreadable:\n{}",
        problems.join("\n")
    );
}

/// The keyring file replaced at runtime by another valid keyring (a wrong restore, a file
/// from another environment) under the same protector. The keys in memory must not be
/// taken away: records sealed before must still open, and nothing sealed meanwhile may be
/// lost once the right keyring is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyring_replaced_by_another() {
    let _w = crate::harness::watchdog("keyring_replaced_by_another");
    let store = Store::sqlite();
    let env: &[(&str, &str)] = &[("RV_KEY_RELOAD_SECONDS", "1")];
    let mut server = Server::start(&store, env).await;
    let keyring = store.data_dir().join("keyring.age");
    let original = std::fs::read(&keyring).expect("the keyring");
    let approved = |p: String| {
        let server = &server;
        async move {
            let d = server
                .post("/v1/disclosures", "case_system", disclosure_body(&p))
                .await
                .expect(201, "request")["id"]
                .as_str()
                .unwrap()
                .to_owned();
            server
                .post(
                    &format!("/v1/disclosures/{d}/approve"),
                    "custodian",
                    json!({"comment": "同意"}),
                )
                .await
                .expect(200, "approve");
            d
        }
    };
    let seal = |n: u64| {
        let server = &server;
        async move {
            let id = identity(n);
            let phone = id["phone"].as_str().unwrap().to_owned();
            let p = server
                .post(
                    "/v1/reporters",
                    "case_system",
                    seal_body("140100", &format!("RB-KR-{n}"), id),
                )
                .await
                .expect(201, "seal")["pseudonym"]
                .as_str()
                .unwrap()
                .to_owned();
            (p, phone)
        }
    };
    let (p1, phone1) = seal(3_100_000).await;
    let d1a = approved(p1.clone()).await;
    let d1b = approved(p1.clone()).await;

    // Another valid keyring, encrypted to the same development identity.
    let other = vault_crypto::keyring::Keyring::generate(
        &vault_crypto::random::SystemRandomSource,
        vault_domain::clock::Clock::now(&vault_domain::clock::SystemClock).unix_timestamp(),
    )
    .expect("a keyring");
    let w0 = warnings(&server.log());
    other
        .save(
            &keyring,
            &vault_crypto::keyring::KeyringProtector::IdentityFile(
                store.data_dir().join("keyring-identity.txt"),
            ),
        )
        .expect("save the other keyring");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let w1 = warnings(&server.log());
    let mut problems = Vec::new();
    let old_open = open_phone(&server, &d1a, &phone1).await;
    if let Err(e) = &old_open {
        problems.push(format!(
            "with another keyring in the file, a record sealed before no longer opens: {e}"
        ));
    }
    // Sealed while the wrong keyring is in the file.
    let (p2, phone2) = seal(3_100_001).await;
    let d2 = approved(p2.clone()).await;
    let reloaded = server
        .log()
        .lines()
        .filter(|l| l.contains("keys reloaded"))
        .count();

    std::fs::write(&keyring, &original).expect("restore the keyring");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keyring, std::fs::Permissions::from_mode(0o600))
            .expect("chmod 600");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    if let Err(e) = open_phone(&server, &d1b, &phone1).await {
        problems.push(format!(
            "after restoring the keyring, a record sealed before does not open: {e}"
        ));
    }
    if let Err(e) = open_phone(&server, &d2, &phone2).await {
        problems.push(format!(
            "a record sealed (and acknowledged 201) while the other keyring was in the file is \
             unreadable once the right keyring is back: {e}"
        ));
    }
    eprintln!(
        "keyring replaced by another valid keyring at runtime: {} reload warnings, {reloaded} \
         'keys reloaded' lines; a record sealed before: {:?}",
        w1 - w0,
        old_open
    );
    server.terminate().await;
    assert!(
        problems.is_empty(),
        "keyring replaced by another:\n{}",
        problems.join("\n")
    );
}

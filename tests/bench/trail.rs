//! Access-trail benchmark (issue 3, section "Benchmark").
//!
//! Measures, on one machine and over the same bytes:
//!
//! 1. the canonical leaves of `--events` (default 1,000,000) realistic events, built in memory
//!    with `Event::from_new` (average leaf size reported);
//! 2. the raw SHA-256 rate: `leaf_hash` (ring) over exactly those leaf bytes;
//! 3. verification throughput: `LogVerifier` over the same leaves ending in one signed
//!    checkpoint, and its ratio to raw SHA-256 (aim ≥ 50 %), with a breakdown of where the
//!    time goes (JSON scan, typed parse, canonical re-encode, tree) and a probe of a
//!    multi-threaded verifier built from the same public functions;
//! 4. append throughput through the real store (`SqlStore`, `Store::begin`, `append_event`)
//!    on SQLite, one event per transaction and batched, and on PostgreSQL if reachable;
//! 5. inclusion and consistency proofs at `--proof-events` (default 1,000,000) events in a
//!    SQLite store, through the same steps as the domain's proof use cases (read connection,
//!    `event_count`, recording pass, `Repo::tree_nodes`, `merkle::*_proof`), every proof
//!    verified against roots computed independently in memory.
//!
//! Writes `tests/bench/results/latest-trail.json` and `.md`. Run with `tests/bench/trail`.
//!
//! Timing uses `std::time::Instant` only; event times come from a fixed date (the clock is
//! injected everywhere else in this code base, see `clippy.toml`).

#![allow(
    clippy::float_arithmetic,
    reason = "a benchmark reports rates, ratios and percentiles"
)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use vault_crypto::checkpoint::{Checkpoint, LogSigner};
use vault_crypto::ids::{new_id, new_pseudonym};
use vault_crypto::merkle::{
    self, Frontier, Hash, MemoryTree, NodeSource, ProofError, leaf_hash, root_from_source,
    root_of_leaves, verify_consistency, verify_inclusion,
};
use vault_crypto::random::{DeterministicRandom, RandomSource};
use vault_crypto::secret::Key32;
use vault_domain::audit::{Action, Event, FieldMac, NewEvent};
use vault_domain::ports::{Repo, Store};
use vault_domain::values::IdentityField;
use vault_domain::verify::LogVerifier;
use vault_storage::{SqlStore, StoreOptions};

type BoxErr = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, BoxErr>;

/// Access-trail benchmark: SHA-256 baseline, verification, appends, proofs.
#[derive(Parser, Debug)]
#[command(name = "bench-trail")]
struct Args {
    /// Events in the in-memory log (raw SHA-256 and verification).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events appended one per transaction on SQLite.
    #[arg(long, default_value_t = 20_000)]
    append_events: u64,
    /// Events appended in batched transactions on SQLite (and PostgreSQL).
    #[arg(long, default_value_t = 20_000)]
    batched_events: u64,
    /// Events per transaction in the batched append run.
    #[arg(long, default_value_t = 1_000)]
    batch: u64,
    /// Events appended one per transaction on PostgreSQL (batched run uses the same count).
    #[arg(long, default_value_t = 5_000)]
    pg_events: u64,
    /// PostgreSQL server (a fresh database is created on it and dropped afterwards).
    #[arg(
        long,
        env = "RV_TEST_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pg_url: String,
    /// Skip PostgreSQL.
    #[arg(long)]
    no_pg: bool,
    /// Stop after the raw SHA-256 and `LogVerifier` runs (to profile them, e.g. under
    /// `perf record`); writes nothing.
    #[arg(long)]
    verify_only: bool,
    /// Log size of the SQLite store the proofs are measured on.
    #[arg(long)]
    proof_events: Option<u64>,
    /// Events per transaction when loading the proof store.
    #[arg(long, default_value_t = 10_000)]
    load_batch: u64,
    /// Inclusion proofs and consistency proofs timed (each).
    #[arg(long, default_value_t = 1_000)]
    proofs: usize,
    /// Threads of the parallel-verifier probe (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Where latest-trail.json and latest-trail.md are written.
    #[arg(long)]
    out: Option<PathBuf>,
}

// ------------------------------------------------------------------ realistic events

/// Every event time is this fixed instant plus a few seconds per event.
const T0: OffsetDateTime = datetime!(2026-11-20 08:00:00 +08:00);
/// District-level GB/T 2260 codes (Hangzhou, Shanghai, Beijing, Guangzhou, Chengdu).
const JURISDICTIONS: [&str; 14] = [
    "330102", "330105", "330106", "330108", "330109", "330110", "310101", "310104", "310115",
    "110101", "110105", "440103", "440106", "510104",
];
const CHANNELS: [&str; 6] = ["web", "wechat", "phone", "letter", "visit", "email"];
const PURPOSES: [&str; 4] = [
    "verification_contact",
    "reward_payment",
    "judicial_transfer",
    "false_accusation",
];
const KINDS: [&str; 4] = ["acceptance", "supplement_request", "progress", "result"];
const SURNAMES: [&str; 10] = ["张", "王", "李", "刘", "陈", "杨", "赵", "黄", "周", "吴"];
const GIVEN: [&str; 10] = [
    "伟", "芳", "娜", "敏", "静", "磊", "洋", "军", "秀英", "建华",
];

#[derive(Clone)]
struct Principal {
    id: String,
    role: &'static str,
    name: String,
    jurisdiction: &'static str,
}

fn pick<T: Copy>(xs: &[T], n: u64) -> Res<T> {
    let len = u64::try_from(xs.len())?;
    let i = usize::try_from(n.checked_rem(len).ok_or("empty pool")?)?;
    xs.get(i).copied().ok_or_else(|| "pool index".into())
}

/// SplitMix64: deterministic choices and random proof indexes.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `[lo, hi)` (`lo < hi`).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// 64 principals: intake systems that seal and request, custodians who approve.
fn principals() -> Res<Vec<Principal>> {
    let rng = DeterministicRandom::new(0x5052_494e);
    let mut out = Vec::new();
    for i in 0..64u64 {
        let jurisdiction = pick(&JURISDICTIONS, i)?;
        let (role, name) = if i < 40 {
            (
                "case_system",
                format!("12345热线受理-{jurisdiction}-{:02}", i % 8),
            )
        } else {
            (
                "custodian",
                format!("{}{}", pick(&SURNAMES, i)?, pick(&GIVEN, i / 3)?),
            )
        };
        out.push(Principal {
            id: new_id(&rng, "prn")?,
            role,
            name,
            jurisdiction,
        });
    }
    Ok(out)
}

/// Event `i` of the synthetic log: 75 % `reporter_sealed`, then 5 % each of
/// `disclosure_requested`, `disclosure_approved`, `disclosure_opened` (two field MACs),
/// `message_relayed` and `access_denied`, shaped as `vault.rs` builds them. Pure in `i`.
fn gen_event(i: u64, people: &[Principal]) -> Res<NewEvent> {
    let rng = DeterministicRandom::new(i ^ 0x7472_6169_6c00_0000);
    let mut mix = SplitMix(i.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let secs = i64::try_from(i)?.checked_mul(3).ok_or("time overflow")?;
    let time = T0
        .checked_add(time::Duration::seconds(secs))
        .ok_or("time overflow")?;
    let kind = i % 20;
    let actor_ix = if kind == 16 {
        40 + mix.next() % 24
    } else {
        mix.next() % 40
    };
    let actor = people
        .get(usize::try_from(actor_ix)?)
        .ok_or("principal index")?;
    let jurisdiction = pick(&JURISDICTIONS, mix.next())?;
    let mut ev = NewEvent {
        time: Some(time),
        actor_id: Some(actor.id.clone()),
        actor_role: Some(actor.role.to_owned()),
        actor_name: Some(actor.name.clone()),
        actor_jurisdiction: Some(actor.jurisdiction.to_owned()),
        jurisdiction: Some(jurisdiction.to_owned()),
        pseudonym: Some(new_pseudonym(&rng)?),
        request_id: Some(new_id(&rng, "req")?),
        ..NewEvent::default()
    };
    match kind {
        0..=14 => {
            ev.action = Some(Action::ReporterSealed);
            ev.record = Some(new_id(&rng, "rec")?);
            ev.detail
                .insert("channel".into(), pick(&CHANNELS, mix.next())?.into());
            let anonymous = mix.next().is_multiple_of(4);
            ev.detail.insert(
                "anonymous".into(),
                if anonymous { "true" } else { "false" }.into(),
            );
        }
        15 => {
            ev.action = Some(Action::DisclosureRequested);
            ev.disclosure_id = Some(new_id(&rng, "dis")?);
            ev.record = Some(new_id(&rng, "rec")?);
            ev.purpose = Some(pick(&PURPOSES, mix.next())?.into());
            ev.detail
                .insert("fields".into(), "name,id_number,phone".into());
        }
        16 => {
            ev.action = Some(Action::DisclosureApproved);
            ev.disclosure_id = Some(new_id(&rng, "dis")?);
            ev.record = Some(new_id(&rng, "rec")?);
            ev.purpose = Some(pick(&PURPOSES, mix.next())?.into());
            ev.detail.insert("status".into(), "approved".into());
        }
        17 => {
            ev.action = Some(Action::DisclosureOpened);
            ev.disclosure_id = Some(new_id(&rng, "dis")?);
            ev.record = Some(new_id(&rng, "rec")?);
            ev.purpose = Some(pick(&PURPOSES, mix.next())?.into());
            for field in [IdentityField::Phone, IdentityField::IdNumber] {
                let mut mac = [0u8; 32];
                rng.fill(&mut mac)?;
                ev.disclosed.push(FieldMac {
                    field,
                    mac: hex::encode(mac),
                });
            }
        }
        18 => {
            ev.action = Some(Action::MessageRelayed);
            ev.target = Some(new_id(&rng, "msg")?);
            ev.detail
                .insert("kind".into(), pick(&KINDS, mix.next())?.into());
        }
        _ => {
            ev.action = Some(Action::AccessDenied);
            ev.denied = true;
            ev.reason = Some("out_of_scope".into());
            ev.detail
                .insert("attempted".into(), "read pseudonyms".into());
        }
    }
    Ok(ev)
}

// ------------------------------------------------------------------ helpers

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `q` quantile (nearest rank) of sorted durations, in ms.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted
        .get(rank.min(sorted.len()) - 1)
        .map_or(f64::NAN, |d| ms(*d))
}

fn stats_ms(mut v: Vec<Duration>) -> Value {
    v.sort_unstable();
    let mean = v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / (v.len().max(1) as f64) * 1e3;
    json!({
        "n": v.len(),
        "p50_ms": quantile_ms(&v, 0.50),
        "p90_ms": quantile_ms(&v, 0.90),
        "p99_ms": quantile_ms(&v, 0.99),
        "max_ms": quantile_ms(&v, 1.0),
        "mean_ms": mean,
    })
}

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn say(msg: &str) {
    eprintln!("[bench-trail] {msg}");
}

/// Thousands separators for the table.
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let s = format!("{:.0}", x.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// Wall-clock and on-CPU time of a single-threaded section. On-CPU time is the measuring
/// thread's own run time from `/proc/thread-self/schedstat` (no `unsafe`, no extra crate):
/// on a machine shared with other work the wall clock also counts time spent waiting for a
/// core (`wait`), the on-CPU time does not.
#[derive(Clone, Copy, Debug, Default)]
struct Timing {
    wall: Duration,
    cpu: Duration,
    wait: Duration,
}

/// (on-CPU ns, run-queue wait ns) of the calling thread.
fn schedstat() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|x| x.parse::<u64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn on_cpu(f: impl FnOnce() -> Duration) -> Timing {
    let (c0, w0) = schedstat();
    let wall = f();
    let (c1, w1) = schedstat();
    Timing {
        wall,
        cpu: Duration::from_nanos(c1.saturating_sub(c0)),
        wait: Duration::from_nanos(w1.saturating_sub(w0)),
    }
}

/// As [`on_cpu`] for a fallible section timed by the wall clock around it.
fn on_cpu_res<T>(f: impl FnOnce() -> Res<T>) -> Res<(T, Timing)> {
    let (c0, w0) = schedstat();
    let t = Instant::now();
    let out = f()?;
    let wall = t.elapsed();
    let (c1, w1) = schedstat();
    Ok((
        out,
        Timing {
            wall,
            cpu: Duration::from_nanos(c1.saturating_sub(c0)),
            wait: Duration::from_nanos(w1.saturating_sub(w0)),
        },
    ))
}

/// The fastest wall clock and the smallest on-CPU time of several runs.
fn best(runs: &[Timing]) -> Timing {
    Timing {
        wall: runs.iter().map(|t| t.wall).min().unwrap_or_default(),
        cpu: runs.iter().map(|t| t.cpu).min().unwrap_or_default(),
        wait: runs.iter().map(|t| t.wait).min().unwrap_or_default(),
    }
}

/// Run-queue wait (runnable but not running) summed over every thread of this process, ns.
/// Read around each timed proof, outside the `Instant` measurement, to tell a slow code path
/// from a proof that waited for a core while other work ran on the machine.
fn process_wait_ns() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|t| {
            t.split_whitespace()
                .nth(1)
                .and_then(|w| w.parse::<u64>().ok())
        })
        .sum()
}

fn waits_ms(waits: &[u64]) -> Value {
    stats_ms(waits.iter().map(|w| Duration::from_nanos(*w)).collect())
}

// ------------------------------------------------------------------ proofs, as trail.rs

/// Records the coordinates a proof algorithm reads (as `vault_domain::trail` does).
struct Recorder(RefCell<Vec<(u32, u64)>>);

impl NodeSource for Recorder {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.0.borrow_mut().push((level, index));
        Ok([0; 32])
    }
}

struct MapSource(HashMap<(u32, u64), Hash>);

impl NodeSource for MapSource {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.0
            .get(&(level, index))
            .copied()
            .ok_or(ProofError::MissingNode { level, index })
    }
}

/// `vault_domain::trail::with_nodes`: learn the coordinates, fetch them in one query, rerun.
/// Returns the result, the number of nodes read and the time spent in `tree_nodes`.
async fn with_nodes<T>(
    repo: &mut dyn Repo,
    f: impl Fn(&dyn NodeSource) -> Result<T, ProofError>,
) -> Res<(T, usize, Duration)> {
    let coords = {
        let rec = Recorder(RefCell::new(Vec::new()));
        f(&rec)?;
        rec.0.into_inner()
    };
    let t = Instant::now();
    let nodes = repo.tree_nodes(&coords).await?;
    let fetch = t.elapsed();
    let count = nodes.len();
    let map = MapSource(nodes.into_iter().map(|(l, i, h)| ((l, i), h)).collect());
    Ok((f(&map)?, count, fetch))
}

// ------------------------------------------------------------------ store helpers

async fn open_sqlite(dir: &Path, name: &str) -> Res<SqlStore> {
    let url = format!("sqlite://{}?mode=rwc", dir.join(name).display());
    let store = SqlStore::connect(&url, &StoreOptions::default()).await?;
    store.migrate().await?;
    let mut repo = store.read().await?;
    let n = repo.event_count().await?;
    if n != 0 {
        return Err(format!("a fresh store already holds {n} events").into());
    }
    Ok(store)
}

/// Appends `events` in transactions of `per_tx`; returns the wall time.
async fn append_all(store: &SqlStore, events: &[NewEvent], per_tx: usize) -> Res<Duration> {
    let t = Instant::now();
    for chunk in events.chunks(per_tx.max(1)) {
        let mut tx = store.begin().await?;
        for ev in chunk {
            tx.append_event(ev).await?;
        }
        tx.commit().await?;
    }
    Ok(t.elapsed())
}

/// The store's root at its full size must equal the in-memory root of the same leaves.
async fn check_store_root(store: &SqlStore, expect_size: u64, expect_root: &Hash) -> Res<()> {
    let mut repo = store.read().await?;
    let size = repo.event_count().await?;
    let (root, _, _) = with_nodes(repo.as_mut(), |src| root_from_source(src, size)).await?;
    if size != expect_size || root != *expect_root {
        return Err(format!(
            "store holds {size} events with root {}, expected {expect_size} with {}",
            hex::encode(root),
            hex::encode(expect_root)
        )
        .into());
    }
    Ok(())
}

struct AppendResult {
    engine: &'static str,
    mode: String,
    events: u64,
    per_tx: u64,
    wall: Duration,
}

impl AppendResult {
    fn json(&self) -> Value {
        json!({
            "engine": self.engine,
            "mode": self.mode,
            "events": self.events,
            "events_per_tx": self.per_tx,
            "seconds": self.wall.as_secs_f64(),
            "events_per_s": rate(self.events, self.wall),
            "ms_per_tx": ms(self.wall) / (self.events.div_ceil(self.per_tx.max(1)).max(1) as f64),
        })
    }
}

async fn sqlite_appends(
    dir: &Path,
    name: &str,
    events: &[NewEvent],
    hashes: &[Hash],
    per_tx: u64,
) -> Res<AppendResult> {
    let store = open_sqlite(dir, name).await?;
    let wall = append_all(&store, events, usize::try_from(per_tx)?).await?;
    let n = u64::try_from(events.len())?;
    let part = hashes.get(..events.len()).ok_or("leaf hashes")?;
    check_store_root(&store, n, &root_of_leaves(part)).await?;
    store.close().await;
    Ok(AppendResult {
        engine: "sqlite",
        mode: if per_tx == 1 {
            "one event per transaction".into()
        } else {
            format!("batched, {per_tx} per transaction")
        },
        events: n,
        per_tx,
        wall,
    })
}

/// `postgres://…/db?x` with the database name replaced.
fn with_database(url: &str, db: &str) -> Res<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (server, _) = base
        .rsplit_once('/')
        .filter(|(s, _)| s.contains("://") && !s.ends_with('/'))
        .map_or((base, ""), |x| x);
    let mut out = format!("{server}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

async fn pg_admin(url: &str, sql: String) -> Res<()> {
    use sqlx::Connection as _;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::postgres::PgConnection::connect(url),
    )
    .await
    .map_err(|_| "connect timed out")??;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

async fn pg_appends(
    admin_url: &str,
    events: &[NewEvent],
    hashes: &[Hash],
    batch: u64,
) -> Res<Vec<AppendResult>> {
    let base = format!("rv_bench_trail_{}", std::process::id());
    let mut out = Vec::new();
    for (per_tx, suffix) in [(1u64, "one"), (batch, "batched")] {
        // A scratch database per run, so both start from an empty log; dropped afterwards.
        let db = format!("{base}_{suffix}");
        pg_admin(admin_url, format!("CREATE DATABASE {db}")).await?;
        let url = with_database(admin_url, &db)?;
        let res = async {
            let store = SqlStore::connect(&url, &StoreOptions::default()).await?;
            store.migrate().await?;
            let wall = append_all(&store, events, usize::try_from(per_tx)?).await?;
            let n = u64::try_from(events.len())?;
            let part = hashes.get(..events.len()).ok_or("leaf hashes")?;
            check_store_root(&store, n, &root_of_leaves(part)).await?;
            store.close().await;
            Ok::<_, BoxErr>(AppendResult {
                engine: "postgres",
                mode: if per_tx == 1 {
                    "one event per transaction".into()
                } else {
                    format!("batched, {per_tx} per transaction")
                },
                events: n,
                per_tx,
                wall,
            })
        }
        .await;
        let dropped = pg_admin(
            admin_url,
            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        )
        .await;
        out.push(res?);
        dropped?;
    }
    Ok(out)
}

// ------------------------------------------------------------------ verification parts

/// Raw SHA-256: `leaf_hash` over every leaf.
fn raw_sha(leaves: &[Vec<u8>]) -> Duration {
    let t = Instant::now();
    let mut acc = 0u8;
    for leaf in leaves {
        let h = leaf_hash(black_box(leaf));
        acc ^= h.first().copied().unwrap_or(0);
    }
    black_box(acc);
    t.elapsed()
}

/// Raw SHA-256 on `threads` threads over contiguous chunks (wall clock): the machine's
/// aggregate rate, the fair baseline for a multi-threaded verifier.
fn raw_sha_parallel(leaves: &[Vec<u8>], threads: usize) -> Duration {
    let chunk = leaves.len().div_ceil(threads.max(1)).max(1);
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in leaves.chunks(chunk) {
            s.spawn(move || black_box(raw_sha(part)));
        }
    });
    t.elapsed()
}

/// Leaf hashes pushed into the frontier: verification without the parse.
fn hash_and_tree(leaves: &[Vec<u8>]) -> Res<(Duration, Hash)> {
    let t = Instant::now();
    let mut fr = Frontier::new();
    for leaf in leaves {
        fr.push(leaf_hash(leaf))?;
    }
    let root = fr.root();
    Ok((t.elapsed(), root))
}

/// Pure JSON syntax scan (serde_json into `IgnoredAny`): the floor of any JSON check.
fn json_scan(leaves: &[Vec<u8>]) -> Res<Duration> {
    let t = Instant::now();
    for leaf in leaves {
        let v: serde::de::IgnoredAny = serde_json::from_slice(leaf)?;
        black_box(v);
    }
    Ok(t.elapsed())
}

/// Typed parse into `Event` (allocates every string).
fn typed_parse(leaves: &[Vec<u8>]) -> Res<Duration> {
    let t = Instant::now();
    for leaf in leaves {
        let ev: Event = serde_json::from_slice(leaf)?;
        black_box(ev);
    }
    Ok(t.elapsed())
}

/// `Event::parse_leaf`: typed parse + canonical re-encode + byte comparison.
fn parse_leaf_all(leaves: &[Vec<u8>]) -> Res<Duration> {
    let t = Instant::now();
    for leaf in leaves {
        let ev = Event::parse_leaf(leaf).ok_or("non-canonical leaf")?;
        black_box(ev);
    }
    Ok(t.elapsed())
}

/// Components measured on the first `sample` leaves (per event, wall and on-CPU ns):
/// re-encoding parsed `Event`s with `leaf_bytes`, and the prototype's borrowed parse and its
/// two ways of checking the re-encoding (comparing writer, reused buffer).
fn sample_parts(leaves: &[Vec<u8>], sample: usize) -> Res<(Value, f64)> {
    let part = leaves.get(..sample.min(leaves.len())).ok_or("sample")?;
    let k = part.len().max(1) as f64;
    let per = |t: Timing| json!({"wall": t.wall.as_secs_f64() * 1e9 / k, "on_cpu": t.cpu.as_secs_f64() * 1e9 / k});
    let events: Vec<Event> = part
        .iter()
        .map(|l| serde_json::from_slice(l))
        .collect::<Result<_, _>>()?;
    let leaf_bytes_t = on_cpu(|| {
        let t = Instant::now();
        for ev in &events {
            black_box(ev.leaf_bytes());
        }
        t.elapsed()
    });
    drop(events);
    let mut refs = Vec::with_capacity(part.len());
    let parse_t = on_cpu(|| {
        let t = Instant::now();
        for l in part {
            refs.push(serde_json::from_slice::<proto::EventRef<'_>>(l).ok());
        }
        t.elapsed()
    });
    let mut ok = 0usize;
    let cmp_t = on_cpu(|| {
        let t = Instant::now();
        for (ev, l) in refs.iter().zip(part) {
            if let Some(ev) = ev {
                ok += usize::from(proto::same_encoding_writer(ev, l));
            }
        }
        t.elapsed()
    });
    let mut buf = Vec::with_capacity(1024);
    let buf_t = on_cpu(|| {
        let t = Instant::now();
        for (ev, l) in refs.iter().zip(part) {
            if let Some(ev) = ev {
                ok += usize::from(proto::same_encoding_buf(ev, l, &mut buf));
            }
        }
        t.elapsed()
    });
    black_box(ok);
    let leaf_bytes_cpu_ns = leaf_bytes_t.cpu.as_secs_f64() * 1e9 / k;
    Ok((
        json!({
            "sample": part.len(),
            "reencode_leaf_bytes": per(leaf_bytes_t),
            "prototype_borrowed_parse": per(parse_t),
            "prototype_compare_writer": per(cmp_t),
            "prototype_reused_buffer_compare": per(buf_t),
        }),
        leaf_bytes_cpu_ns,
    ))
}

// ------------------------------------------------------------------ prototype (suggestion)

/// A borrowed mirror of `vault_domain::audit::Event` (same fields, order and skip rules), used
/// only to measure the suggested fix: parse without allocating (`&str` borrowed from the leaf)
/// and check canonicality by re-serialising into a reused buffer instead of a new `Vec` each time.
/// A leaf whose strings contain escapes cannot be borrowed and falls back to
/// `Event::parse_leaf`. Not used for any result other than the "prototype" rows.
mod proto {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};
    use vault_domain::audit::{Action, Event};
    use vault_domain::values::IdentityField;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FieldMacRef<'a> {
        pub field: IdentityField,
        pub mac: &'a str,
    }

    type S<'a> = Option<&'a str>;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct EventRef<'a> {
        pub action: Action,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub actor_id: S<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub actor_jurisdiction: S<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub actor_name: S<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub actor_role: S<'a>,
        #[serde(borrow, default, skip_serializing_if = "BTreeMap::is_empty")]
        pub detail: BTreeMap<&'a str, &'a str>,
        #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
        pub disclosed: Vec<FieldMacRef<'a>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub disclosure_id: S<'a>,
        pub index: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub jurisdiction: S<'a>,
        pub outcome: &'a str,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub pseudonym: S<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub purpose: S<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reason: S<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub record: S<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub request_id: S<'a>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub target: S<'a>,
        pub time: &'a str,
        pub v: u32,
    }

    /// An `io::Write` that succeeds only while what is written is a prefix of `rest`.
    struct Compare<'a> {
        rest: &'a [u8],
    }

    impl std::io::Write for Compare<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            match self.rest.strip_prefix(buf) {
                Some(rest) => {
                    self.rest = rest;
                    Ok(buf.len())
                }
                None => Err(std::io::ErrorKind::InvalidData.into()),
            }
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Whether `ev` re-encodes to exactly `leaf`, streaming into a comparing writer.
    pub fn same_encoding_writer(ev: &EventRef<'_>, leaf: &[u8]) -> bool {
        let mut cmp = Compare { rest: leaf };
        serde_json::to_writer(&mut cmp, ev).is_ok() && cmp.rest.is_empty()
    }

    /// Whether `ev` re-encodes to exactly `leaf`, encoding into a reused buffer.
    pub fn same_encoding_buf(ev: &EventRef<'_>, leaf: &[u8], buf: &mut Vec<u8>) -> bool {
        buf.clear();
        serde_json::to_writer(&mut *buf, ev).is_ok() && buf.as_slice() == leaf
    }

    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
    }

    /// The index of a canonical leaf, or `None` (same acceptance as `Event::parse_leaf`).
    pub fn canonical_index(leaf: &[u8]) -> Option<u64> {
        match serde_json::from_slice::<EventRef<'_>>(leaf) {
            Ok(ev) => BUF
                .with(|b| same_encoding_buf(&ev, leaf, &mut b.borrow_mut()))
                .then_some(ev.index),
            // Escaped strings cannot be borrowed (or the leaf is bad): the owned path decides.
            Err(_) => Event::parse_leaf(leaf).map(|e| e.index),
        }
    }
}

/// The prototype check + hashing + frontier, single thread.
fn proto_verify(leaves: &[Vec<u8>]) -> Res<(Duration, Hash)> {
    let t = Instant::now();
    let mut fr = Frontier::new();
    for leaf in leaves {
        if proto::canonical_index(leaf) != Some(fr.size()) {
            return Err("prototype: bad leaf".into());
        }
        fr.push(leaf_hash(leaf))?;
    }
    Ok((t.elapsed(), fr.root()))
}

/// The prototype must accept and refuse exactly what `Event::parse_leaf` does.
fn proto_agrees(leaves: &[Vec<u8>]) -> Res<()> {
    for leaf in leaves {
        let a = Event::parse_leaf(leaf).map(|e| e.index);
        if a != proto::canonical_index(leaf) {
            return Err("prototype disagrees with Event::parse_leaf".into());
        }
    }
    let mut bad: Vec<Vec<u8>> = vec![
        br#"{"action":"access_denied", "index":1,"outcome":"denied","time":"2026-11-20T00:00:00Z","v":1}"#.to_vec(),
        br#"{"index":1,"action":"access_denied","outcome":"denied","time":"2026-11-20T00:00:00Z","v":1}"#.to_vec(),
        br#"{"action":"access_denied","index":1,"outcome":"denied","time":"2026-11-20T00:00:00Z","v":1,"x":1}"#.to_vec(),
        br#"{"action":"access_denied","index":1,"outcome":"d\u0065nied","time":"2026-11-20T00:00:00Z","v":1}"#.to_vec(),
    ];
    if let Some(first) = leaves.first() {
        let mut trailing = first.clone();
        trailing.push(b' ');
        bad.push(trailing);
    }
    for leaf in &bad {
        if Event::parse_leaf(leaf).is_some() || proto::canonical_index(leaf).is_some() {
            return Err("a non-canonical leaf was accepted".into());
        }
    }
    // A canonical leaf with escapes (quote, backslash, control character) takes the fallback.
    let escaped = Event::from_new(
        9,
        &NewEvent {
            time: Some(T0),
            action: Some(Action::PrincipalCreated),
            actor_name: Some("O\"Brien \\ tab\t".into()),
            ..NewEvent::default()
        },
    )
    .leaf_bytes();
    if Event::parse_leaf(&escaped).map(|e| e.index) != Some(9)
        || proto::canonical_index(&escaped) != Some(9)
    {
        return Err("an escaped canonical leaf was refused".into());
    }
    Ok(())
}

/// A multi-threaded check of each chunk with `check`, then the in-order frontier fold.
fn parallel_with(
    leaves: &[Vec<u8>],
    threads: usize,
    check: fn(&[u8]) -> Option<u64>,
) -> Res<(Duration, Hash)> {
    let t = Instant::now();
    let chunk = leaves.len().div_ceil(threads.max(1)).max(1);
    let parts: Vec<Res<Vec<Hash>>> = std::thread::scope(|s| {
        let handles: Vec<_> = leaves
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || -> Res<Vec<Hash>> {
                    let base = u64::try_from(c * chunk)?;
                    let mut out = Vec::with_capacity(part.len());
                    for (j, leaf) in part.iter().enumerate() {
                        if check(leaf) != Some(base + u64::try_from(j)?) {
                            return Err("bad leaf".into());
                        }
                        out.push(leaf_hash(leaf));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let mut fr = Frontier::new();
    for part in parts {
        for h in part? {
            fr.push(h)?;
        }
    }
    Ok((t.elapsed(), fr.root()))
}

fn parse_leaf_index(leaf: &[u8]) -> Option<u64> {
    Event::parse_leaf(leaf).map(|e| e.index)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ------------------------------------------------------------------ machine

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim())
        .to_owned();
    let sha_ni = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|w| w == "sha_ni"));
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let nproc = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    json!({
        "nproc": nproc,
        "cpu": cpu,
        "sha_ni": sha_ni,
        "mem_gib": mem_kib as f64 / 1024.0 / 1024.0,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "date": std::env::var("RV_BENCH_DATE").ok(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "loadavg_at_start": loadavg(),
    })
}

// ------------------------------------------------------------------ main

#[tokio::main]
async fn main() -> Res<()> {
    let args = Args::parse();
    let started = Instant::now();
    let n = args.events;
    let n_usize = usize::try_from(n)?;
    let proof_n = args.proof_events.unwrap_or(n);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    if cfg!(debug_assertions) {
        say("WARNING: debug build; numbers are meaningless (use --release)");
    }
    let machine = machine();

    // 1. events and leaves -------------------------------------------------------------
    let people = principals()?;
    let gen_n = n
        .max(proof_n)
        .max(args.append_events)
        .max(args.batched_events)
        .max(args.pg_events);
    say(&format!("building {gen_n} events …"));
    let t = Instant::now();
    let mut events = Vec::with_capacity(usize::try_from(gen_n)?);
    for i in 0..gen_n {
        events.push(gen_event(i, &people)?);
    }
    let leaves_all: Vec<Vec<u8>> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Ok(Event::from_new(u64::try_from(i)?, e).leaf_bytes()))
        .collect::<Res<_>>()?;
    let build_time = t.elapsed();
    let leaves = leaves_all.get(..n_usize).ok_or("leaves")?;
    let total_bytes: u64 = leaves.iter().map(|l| l.len() as u64).sum();
    let avg_leaf = total_bytes as f64 / (n.max(1) as f64);
    let max_leaf = leaves.iter().map(Vec::len).max().unwrap_or(0);
    let min_leaf = leaves.iter().map(Vec::len).min().unwrap_or(0);
    say(&format!(
        "{n} leaves, {:.1} MB, average {avg_leaf:.1} B (min {min_leaf}, max {max_leaf}), built in {:.1} s",
        total_bytes as f64 / 1e6,
        build_time.as_secs_f64()
    ));
    let mut sample = Vec::new();
    for (label, i) in [("reporter_sealed", 0usize), ("disclosure_opened", 17usize)] {
        if let Some(l) = leaves.get(i) {
            sample
                .push(json!({"kind": label, "bytes": l.len(), "leaf": String::from_utf8_lossy(l)}));
        }
    }

    // 2. raw SHA-256 ----------------------------------------------------------------------
    // Warm the caches once, then take the best of three (wall clock and on-CPU separately).
    let _ = raw_sha(leaves);
    let raw_runs: Vec<Timing> = (0..3).map(|_| on_cpu(|| raw_sha(leaves))).collect();
    let raw = best(&raw_runs);
    let raw_eps = rate(n, raw.wall);
    let raw_eps_cpu = rate(n, raw.cpu);
    let raw_mbs = total_bytes as f64 / raw.wall.as_secs_f64().max(1e-9) / 1e6;
    let raw_mbs_cpu = total_bytes as f64 / raw.cpu.as_secs_f64().max(1e-9) / 1e6;
    say(&format!(
        "raw SHA-256 (leaf_hash): {:.3} s, {raw_eps:.0} events/s, {raw_mbs:.0} MB/s (on-CPU: {raw_eps_cpu:.0} events/s, {raw_mbs_cpu:.0} MB/s)",
        raw.wall.as_secs_f64()
    ));

    // 3. verification -----------------------------------------------------------------------
    let (tree_root, tree_t) = on_cpu_res(|| hash_and_tree(leaves))?;
    let (tree_d, root) = tree_root;
    let tree_t = Timing {
        wall: tree_d,
        ..tree_t
    };
    let signer =
        LogSigner::from_seed("reporter-vault.bench/audit", &Key32::from_bytes([0x42; 32]))?;
    let note = signer.sign(&Checkpoint {
        origin: signer.name().to_owned(),
        size: n,
        root,
    })?;
    say("LogVerifier over the log …");
    let mut verify_runs = Vec::new();
    for _ in 0..2 {
        let (res, timing) = on_cpu_res(|| -> Res<()> {
            let mut v = LogVerifier::new(signer.verifier(), std::slice::from_ref(&note))?;
            for leaf in leaves {
                v.push(leaf)?;
            }
            let report = v.finish()?;
            if report.events != n || report.checkpoints != 1 || report.root != root {
                return Err("LogVerifier: unexpected report".into());
            }
            Ok(())
        })?;
        black_box(res);
        verify_runs.push(timing);
    }
    let verify = best(&verify_runs);
    let verify_eps = rate(n, verify.wall);
    let verify_eps_cpu = rate(n, verify.cpu);
    let ratio = verify_eps / raw_eps;
    let ratio_cpu = verify_eps_cpu / raw_eps_cpu;
    say(&format!(
        "LogVerifier: {:.3} s, {verify_eps:.0} events/s = {:.1} % of raw SHA-256 (on-CPU: {verify_eps_cpu:.0} events/s = {:.1} %)",
        verify.wall.as_secs_f64(),
        ratio * 100.0,
        ratio_cpu * 100.0
    ));

    if args.verify_only {
        return Ok(());
    }

    say("profiling the verifier's parts …");
    let (scan_d, scan_t) = on_cpu_res(|| json_scan(leaves))?;
    let (typed_d, typed_t) = on_cpu_res(|| typed_parse(leaves))?;
    let (parse_d, parse_leaf_t) = on_cpu_res(|| parse_leaf_all(leaves))?;
    let (parts, reenc_per_event_ns_cpu) = sample_parts(leaves, 200_000)?;
    say("prototype check (borrowed parse + reused re-encode buffer) …");
    proto_agrees(leaves)?;
    let (proto_out, proto_t) = on_cpu_res(|| proto_verify(leaves))?;
    let (proto_d, proto_root) = proto_out;
    let raw_par = (0..3)
        .map(|_| raw_sha_parallel(leaves, threads))
        .min()
        .unwrap_or_default();
    let raw_par_eps = rate(n, raw_par);
    let (par_t, par_root) = parallel_with(leaves, threads, parse_leaf_index)?;
    let (proto_par_t, proto_par_root) = parallel_with(leaves, threads, proto::canonical_index)?;
    if par_root != root || proto_root != root || proto_par_root != root {
        return Err("a probe's root differs".into());
    }
    let scan_t = Timing {
        wall: scan_d,
        ..scan_t
    };
    let typed_t = Timing {
        wall: typed_d,
        ..typed_t
    };
    let parse_leaf_t = Timing {
        wall: parse_d,
        ..parse_leaf_t
    };
    let proto_t = Timing {
        wall: proto_d,
        ..proto_t
    };
    let per_ev = |d: Duration| d.as_secs_f64() * 1e9 / (n.max(1) as f64);
    let ns = |t: Timing| json!({"wall": per_ev(t.wall), "on_cpu": per_ev(t.cpu)});
    let probe = |d: Duration, th: usize, what: &str| {
        json!({
            "what": what,
            "threads": th,
            "seconds": d.as_secs_f64(),
            "events_per_s": rate(n, d),
            "ratio_to_raw_sha256": rate(n, d) / raw_eps,
            "ratio_to_raw_sha256_same_threads": rate(n, d) / raw_par_eps,
        })
    };
    let profile = json!({
        "per_event_ns": {
            "raw_sha256_leaf_hash": ns(raw),
            "leaf_hash_plus_frontier_push": ns(tree_t),
            "json_syntax_scan_ignoredany": ns(scan_t),
            "typed_parse_event": ns(typed_t),
            "parse_leaf_total": ns(parse_leaf_t),
            "log_verifier_total": ns(verify),
            "prototype_total": ns(proto_t),
        },
        "components_on_sample": parts,
        "share_of_verifier_cpu_time": {
            "parse_leaf": parse_leaf_t.cpu.as_secs_f64() / verify.cpu.as_secs_f64().max(1e-9),
            "hashing_and_tree": tree_t.cpu.as_secs_f64() / verify.cpu.as_secs_f64().max(1e-9),
        },
        "raw_sha256_n_threads": {
            "threads": threads,
            "seconds": raw_par.as_secs_f64(),
            "events_per_s": raw_par_eps,
            "mb_per_s": total_bytes as f64 / raw_par.as_secs_f64().max(1e-9) / 1e6,
        },
        "hash_and_tree_only_events_per_s": rate(n, tree_t.wall),
        "hash_and_tree_only_ratio_to_raw": rate(n, tree_t.wall) / raw_eps,
        "hash_and_tree_only_ratio_to_raw_on_cpu": rate(n, tree_t.cpu) / raw_eps_cpu,
        "probes": {
            "prototype_1_thread": {
                "what": "borrowed (&str) mirror of Event + re-serialise into a reused thread-local buffer and compare, falling back to Event::parse_leaf for leaves with escapes; accepts and refuses exactly what parse_leaf does on every leaf, 5 non-canonical ones and an escaped canonical one",
                "threads": 1,
                "seconds": proto_t.wall.as_secs_f64(),
                "events_per_s": rate(n, proto_t.wall),
                "ratio_to_raw_sha256": rate(n, proto_t.wall) / raw_eps,
                "events_per_s_on_cpu": rate(n, proto_t.cpu),
                "ratio_to_raw_sha256_on_cpu": rate(n, proto_t.cpu) / raw_eps_cpu,
            },
            "parse_leaf_n_threads": probe(par_t, threads, "Event::parse_leaf + leaf_hash in contiguous chunks on N threads, frontier fold in order on one"),
            "prototype_n_threads": probe(proto_par_t, threads, "the prototype check + leaf_hash on N threads, frontier fold in order"),
        },
    });
    say(&format!(
        "on-CPU per event: sha {:.0} ns, sha+tree {:.0} ns, json scan {:.0} ns, typed parse {:.0} ns, re-encode {:.0} ns, parse_leaf {:.0} ns, verifier {:.0} ns, prototype {:.0} ns; {threads}-thread wall: parse_leaf {:.0} events/s, prototype {:.0} events/s",
        per_ev(raw.cpu),
        per_ev(tree_t.cpu),
        per_ev(scan_t.cpu),
        per_ev(typed_t.cpu),
        reenc_per_event_ns_cpu,
        per_ev(parse_leaf_t.cpu),
        per_ev(verify.cpu),
        per_ev(proto_t.cpu),
        rate(n, par_t),
        rate(n, proto_par_t),
    ));

    // In-memory reference tree over every generated leaf (roots at any size, leaf hashes).
    let hashes_all: Vec<Hash> = leaves_all.iter().map(|l| leaf_hash(l)).collect();

    // 4. appends ------------------------------------------------------------------------------
    let dir = tempfile::tempdir()?;
    let mut appends = Vec::new();
    let slice =
        |k: u64| -> Res<&[NewEvent]> { Ok(events.get(..usize::try_from(k)?).ok_or("events")?) };
    say(&format!(
        "SQLite: {} appends, one per transaction …",
        args.append_events
    ));
    appends.push(
        sqlite_appends(
            dir.path(),
            "one.db",
            slice(args.append_events)?,
            &hashes_all,
            1,
        )
        .await?,
    );
    say(&format!(
        "SQLite: {} appends, {} per transaction …",
        args.batched_events, args.batch
    ));
    appends.push(
        sqlite_appends(
            dir.path(),
            "batched.db",
            slice(args.batched_events)?,
            &hashes_all,
            args.batch,
        )
        .await?,
    );
    let mut pg_status = Value::Null;
    if args.no_pg {
        pg_status = json!("skipped (--no-pg)");
    } else {
        say(&format!(
            "PostgreSQL: {} appends, one per transaction and batched …",
            args.pg_events
        ));
        match pg_appends(
            &args.pg_url,
            slice(args.pg_events)?,
            &hashes_all,
            args.batch,
        )
        .await
        {
            Ok(rs) => appends.extend(rs),
            Err(e) => {
                say(&format!("PostgreSQL skipped: {e}"));
                pg_status = json!(format!("skipped: {e}"));
            }
        }
    }
    for a in &appends {
        say(&format!(
            "{} {}: {} events in {:.2} s = {:.0} events/s",
            a.engine,
            a.mode,
            a.events,
            a.wall.as_secs_f64(),
            rate(a.events, a.wall)
        ));
    }

    // 5. proofs at proof_n events ----------------------------------------------------------
    let proof_events = slice(proof_n)?;
    let proof_hashes = hashes_all
        .get(..usize::try_from(proof_n)?)
        .ok_or("hashes")?;
    let mem = MemoryTree::from_leaf_hashes(proof_hashes)?;
    say(&format!(
        "loading {proof_n} events into SQLite, {} per transaction …",
        args.load_batch
    ));
    let store = open_sqlite(dir.path(), "proofs.db").await?;
    let t = Instant::now();
    let per = usize::try_from(args.load_batch.max(1))?;
    let mut done = 0usize;
    for chunk in proof_events.chunks(per) {
        let mut tx = store.begin().await?;
        for ev in chunk {
            tx.append_event(ev).await?;
        }
        tx.commit().await?;
        done += chunk.len();
        if done.is_multiple_of(per * 10) || done == proof_events.len() {
            say(&format!(
                "  {done} events, {:.0} events/s",
                rate(u64::try_from(done)?, t.elapsed())
            ));
        }
    }
    let load_t = t.elapsed();
    check_store_root(&store, proof_n, &mem.root()).await?;
    let db_bytes = std::fs::metadata(dir.path().join("proofs.db")).map_or(0, |m| m.len())
        + std::fs::metadata(dir.path().join("proofs.db-wal")).map_or(0, |m| m.len());

    let mut rng = SplitMix(0x5052_4f4f_4653);
    let mut incl_total = Vec::new();
    let mut incl_fetch = Vec::new();
    let mut incl_nodes = 0usize;
    let mut incl_mem = Vec::new();
    let mut incl_wait = Vec::new();
    let mut cons_wait = Vec::new();
    let mut cons_mem = Vec::new();
    let mut incl_len = 0usize;
    // Warm-up (first connection, statement cache), not counted.
    for _ in 0..20 {
        let mut repo = store.read().await?;
        let size = repo.event_count().await?;
        let idx = rng.range(0, size);
        black_box(with_nodes(repo.as_mut(), |src| merkle::inclusion_proof(src, idx, size)).await?);
    }
    say(&format!("{} inclusion proofs …", args.proofs));
    for _ in 0..args.proofs {
        let idx = rng.range(0, proof_n);
        let w0 = process_wait_ns();
        let t = Instant::now();
        // As Vault::inclusion_proof: a read connection, the log size, then the nodes.
        let mut repo = store.read().await?;
        let size = repo.event_count().await?;
        if idx >= size {
            return Err("index beyond the log".into());
        }
        let (proof, nodes, fetch) =
            with_nodes(repo.as_mut(), |src| merkle::inclusion_proof(src, idx, size)).await?;
        drop(repo);
        incl_total.push(t.elapsed());
        incl_wait.push(process_wait_ns().saturating_sub(w0));
        incl_fetch.push(fetch);
        incl_nodes += nodes;
        incl_len += proof.len();
        let leaf = mem.node(0, idx)?;
        verify_inclusion(&leaf, idx, size, &proof, &mem.root())?;
        // The algorithm alone, over the in-memory tree (what the SQL round trip adds to).
        let tm = Instant::now();
        black_box(merkle::inclusion_proof(&mem, idx, size)?);
        incl_mem.push(tm.elapsed());
    }
    say(&format!("{} consistency proofs …", args.proofs));
    let mut cons_total = Vec::new();
    let mut cons_fetch = Vec::new();
    let mut cons_nodes = 0usize;
    let mut cons_len = 0usize;
    for _ in 0..args.proofs {
        let second = rng.range(2, proof_n + 1);
        let first = rng.range(1, second);
        let w0 = process_wait_ns();
        let t = Instant::now();
        let mut repo = store.read().await?;
        let size = repo.event_count().await?;
        if second > size || first > second {
            return Err("sizes beyond the log".into());
        }
        let (proof, nodes, fetch) = with_nodes(repo.as_mut(), |src| {
            merkle::consistency_proof(src, first, second)
        })
        .await?;
        drop(repo);
        cons_total.push(t.elapsed());
        cons_wait.push(process_wait_ns().saturating_sub(w0));
        cons_fetch.push(fetch);
        cons_nodes += nodes;
        cons_len += proof.len();
        let r1 = root_from_source(&mem, first)?;
        let r2 = root_from_source(&mem, second)?;
        verify_consistency(first, second, &r1, &r2, &proof)?;
        let tm = Instant::now();
        black_box(merkle::consistency_proof(&mem, first, second)?);
        cons_mem.push(tm.elapsed());
    }
    store.close().await;
    let pcount = args.proofs.max(1) as f64;
    let incl_wait = waits_ms(&incl_wait);
    let cons_wait = waits_ms(&cons_wait);
    let inclusion = stats_ms(incl_total);
    let consistency = stats_ms(cons_total);
    let incl_fetch = stats_ms(incl_fetch);
    let cons_fetch = stats_ms(cons_fetch);
    let incl_mem = stats_ms(incl_mem);
    let cons_mem = stats_ms(cons_mem);
    say(&format!(
        "inclusion p50 {:.3} ms p99 {:.3} ms; consistency p50 {:.3} ms p99 {:.3} ms (all verified)",
        f(&inclusion, "p50_ms"),
        f(&inclusion, "p99_ms"),
        f(&consistency, "p50_ms"),
        f(&consistency, "p99_ms")
    ));

    let total = started.elapsed();

    // 6. report -----------------------------------------------------------------------------
    let verdict_verify = ratio >= 0.5;
    let verdict_proofs = f(&inclusion, "p99_ms") < 1.0 && f(&consistency, "p99_ms") < 1.0;
    let report = json!({
        "benchmark": "access-trail",
        "machine": machine,
        "log": {
            "events": n,
            "leaf_bytes_total": total_bytes,
            "leaf_bytes_avg": avg_leaf,
            "leaf_bytes_min": min_leaf,
            "leaf_bytes_max": max_leaf,
            "mix": "75% reporter_sealed; 5% each disclosure_requested, disclosure_approved, disclosure_opened (2 field MACs), message_relayed, access_denied",
            "build_seconds": build_time.as_secs_f64(),
            "sample_leaves": sample,
        },
        "raw_sha256": {
            "what": "ring SHA-256 via vault_crypto::merkle::leaf_hash over every leaf (one thread, best of 3)",
            "seconds": raw.wall.as_secs_f64(),
            "events_per_s": raw_eps,
            "mb_per_s": raw_mbs,
            "on_cpu_seconds": raw.cpu.as_secs_f64(),
            "on_cpu_events_per_s": raw_eps_cpu,
            "on_cpu_mb_per_s": raw_mbs_cpu,
            "runs": raw_runs.iter().map(|t| json!({"wall_s": t.wall.as_secs_f64(), "cpu_s": t.cpu.as_secs_f64(), "wait_s": t.wait.as_secs_f64()})).collect::<Vec<_>>(),
        },
        "verification": {
            "what": "vault_domain::verify::LogVerifier: every leaf parsed as canonical JSON, its index checked, hashed into the frontier; one signed checkpoint at the end (best of 2)",
            "seconds": verify.wall.as_secs_f64(),
            "events_per_s": verify_eps,
            "mb_per_s": total_bytes as f64 / verify.wall.as_secs_f64().max(1e-9) / 1e6,
            "ratio_to_raw_sha256": ratio,
            "on_cpu_seconds": verify.cpu.as_secs_f64(),
            "on_cpu_events_per_s": verify_eps_cpu,
            "on_cpu_ratio_to_raw_sha256": ratio_cpu,
            "runs": verify_runs.iter().map(|t| json!({"wall_s": t.wall.as_secs_f64(), "cpu_s": t.cpu.as_secs_f64(), "wait_s": t.wait.as_secs_f64()})).collect::<Vec<_>>(),
            "target_ratio": 0.5,
            "meets_target": verdict_verify,
            "root": hex::encode(root),
        },
        "verification_profile": profile,
        "append": appends.iter().map(AppendResult::json).collect::<Vec<_>>(),
        "postgres": pg_status,
        "sqlite_sync": "NORMAL (StoreOptions::default, the service default)",
        "proofs": {
            "log_events": proof_n,
            "load": {
                "events_per_tx": args.load_batch,
                "seconds": load_t.as_secs_f64(),
                "events_per_s": rate(proof_n, load_t),
                "db_bytes": db_bytes,
            },
            "path": "store.read() + event_count + recording pass + Repo::tree_nodes (one query) + merkle proof, as vault_domain::trail::with_nodes",
            "inclusion": inclusion,
            "inclusion_run_queue_wait_of_process_threads": incl_wait,
            "inclusion_tree_nodes_query": incl_fetch,
            "inclusion_in_memory_algorithm": incl_mem,
            "inclusion_avg_nodes_read": incl_nodes as f64 / pcount,
            "inclusion_avg_proof_len": incl_len as f64 / pcount,
            "consistency": consistency,
            "consistency_run_queue_wait_of_process_threads": cons_wait,
            "consistency_tree_nodes_query": cons_fetch,
            "consistency_in_memory_algorithm": cons_mem,
            "consistency_avg_nodes_read": cons_nodes as f64 / pcount,
            "consistency_avg_proof_len": cons_len as f64 / pcount,
            "all_verified": true,
            "target_ms": 1.0,
            "meets_target": verdict_proofs,
        },
        "total_seconds": total.as_secs_f64(),
        "loadavg_at_end": loadavg(),
    });

    let md = markdown(&report, &appends);
    println!("\n{md}");
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bench/results"));
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(
        out_dir.join("latest-trail.json"),
        serde_json::to_string_pretty(&report)? + "\n",
    )?;
    std::fs::write(out_dir.join("latest-trail.md"), md)?;
    say(&format!(
        "wrote {} (total {:.1} s)",
        out_dir.join("latest-trail.{json,md}").display(),
        total.as_secs_f64()
    ));
    Ok(())
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter()
        .try_fold(v, |acc, k| acc.get(k))
        .unwrap_or(&Value::Null)
}

fn num(v: &Value, path: &[&str]) -> f64 {
    get(v, path).as_f64().unwrap_or(f64::NAN)
}

fn markdown(r: &Value, appends: &[AppendResult]) -> String {
    let m = get(r, &["machine"]);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Access-trail benchmark — {} × {}{}, {:.1} GiB RAM, {} build{}.\n",
        get(m, &["nproc"]),
        get(m, &["cpu"]).as_str().unwrap_or("?"),
        if get(m, &["sha_ni"]).as_bool() == Some(true) {
            " (SHA-NI)"
        } else {
            ""
        },
        num(m, &["mem_gib"]),
        get(m, &["profile"]).as_str().unwrap_or("?"),
        get(m, &["date"])
            .as_str()
            .map_or(String::new(), |d| format!("; {d}")),
    );
    let n = num(r, &["log", "events"]);
    let _ = writeln!(
        s,
        "Log: {} events, average leaf {:.1} bytes ({:.1} MB of canonical JSON; {}).\n",
        thousands(n),
        num(r, &["log", "leaf_bytes_avg"]),
        num(r, &["log", "leaf_bytes_total"]) / 1e6,
        get(r, &["log", "mix"]).as_str().unwrap_or(""),
    );
    let ratio = num(r, &["verification", "ratio_to_raw_sha256"]);
    let ratio_cpu = num(r, &["verification", "on_cpu_ratio_to_raw_sha256"]);
    let p = get(r, &["verification_profile"]);
    let _ = writeln!(
        s,
        "Single-thread rates are given by the wall clock (`Instant`) and, in brackets, by the thread's on-CPU time (`/proc/thread-self/schedstat`), which leaves out time spent waiting for a core while other work runs.\n"
    );
    let _ = writeln!(s, "| measurement | result | target |");
    let _ = writeln!(s, "|---|---:|---|");
    let _ = writeln!(
        s,
        "| raw SHA-256 over the leaves (`leaf_hash`, 1 thread) | {} events/s, {:.0} MB/s [on-CPU {} events/s, {:.0} MB/s] | baseline |",
        thousands(num(r, &["raw_sha256", "events_per_s"])),
        num(r, &["raw_sha256", "mb_per_s"]),
        thousands(num(r, &["raw_sha256", "on_cpu_events_per_s"])),
        num(r, &["raw_sha256", "on_cpu_mb_per_s"]),
    );
    let _ = writeln!(
        s,
        "| verification, `LogVerifier`, {} events + 1 signed checkpoint | {} events/s ({:.2} s) = **{:.1} %** of raw SHA-256 [on-CPU {} events/s = **{:.1} %**] | ≥ 50 % {} |",
        thousands(n),
        thousands(num(r, &["verification", "events_per_s"])),
        num(r, &["verification", "seconds"]),
        ratio * 100.0,
        thousands(num(r, &["verification", "on_cpu_events_per_s"])),
        ratio_cpu * 100.0,
        if ratio >= 0.5 && ratio_cpu >= 0.5 {
            "✅"
        } else {
            "❌"
        },
    );
    let _ = writeln!(
        s,
        "| — hashing + tree only (no parse; the ceiling for any verifier) | {} events/s = {:.1} % of raw [on-CPU {:.1} %] | — |",
        thousands(num(p, &["hash_and_tree_only_events_per_s"])),
        num(p, &["hash_and_tree_only_ratio_to_raw"]) * 100.0,
        num(p, &["hash_and_tree_only_ratio_to_raw_on_cpu"]) * 100.0,
    );
    {
        let q = get(p, &["probes", "prototype_1_thread"]);
        let _ = writeln!(
            s,
            "| — prototype check (borrowed parse + re-encode into a reused buffer), 1 thread | {} events/s = {:.1} % of raw [on-CPU {:.1} %] | — |",
            thousands(num(q, &["events_per_s"])),
            num(q, &["ratio_to_raw_sha256"]) * 100.0,
            num(q, &["ratio_to_raw_sha256_on_cpu"]) * 100.0,
        );
    }
    let _ = writeln!(
        s,
        "| raw SHA-256 on {} threads (wall) | {} events/s, {:.0} MB/s | — |",
        get(p, &["raw_sha256_n_threads", "threads"]),
        thousands(num(p, &["raw_sha256_n_threads", "events_per_s"])),
        num(p, &["raw_sha256_n_threads", "mb_per_s"]),
    );
    for (key, label) in [
        (
            "parse_leaf_n_threads",
            "— probe: `parse_leaf` checks on {T} threads",
        ),
        (
            "prototype_n_threads",
            "— probe: prototype checks on {T} threads",
        ),
    ] {
        let q = get(p, &["probes", key]);
        let th = get(q, &["threads"]);
        let _ = writeln!(
            s,
            "| {} | {} events/s = {:.1} % of raw 1-thread SHA-256, {:.1} % of raw SHA-256 on {} threads (wall) | — |",
            label.replace("{T}", &th.to_string()),
            thousands(num(q, &["events_per_s"])),
            num(q, &["ratio_to_raw_sha256"]) * 100.0,
            num(q, &["ratio_to_raw_sha256_same_threads"]) * 100.0,
            th,
        );
    }
    for a in appends {
        let _ = writeln!(
            s,
            "| append, {}, {} ({} events) | {} events/s ({:.2} ms per transaction) | — |",
            a.engine,
            a.mode,
            thousands(a.events as f64),
            thousands(rate(a.events, a.wall)),
            ms(a.wall) / (a.events.div_ceil(a.per_tx.max(1)).max(1) as f64),
        );
    }
    if let Some(pg) = get(r, &["postgres"]).as_str() {
        let _ = writeln!(s, "| append, postgres | {pg} | — |");
    }
    let pe = num(r, &["proofs", "log_events"]);
    let _ = writeln!(
        s,
        "| load {} events into SQLite ({} per transaction) | {:.1} s = {} events/s | — |",
        thousands(pe),
        get(r, &["proofs", "load", "events_per_tx"]),
        num(r, &["proofs", "load", "seconds"]),
        thousands(num(r, &["proofs", "load", "events_per_s"])),
    );
    for (label, key) in [("inclusion", "inclusion"), ("consistency", "consistency")] {
        let p50 = num(r, &["proofs", key, "p50_ms"]);
        let p99 = num(r, &["proofs", key, "p99_ms"]);
        let _ = writeln!(
            s,
            "| {label} proof at {} events ({} random, all verified) | p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms | < 1 ms {} |",
            thousands(pe),
            get(r, &["proofs", key, "n"]),
            p50,
            p99,
            num(r, &["proofs", key, "max_ms"]),
            if p99 < 1.0 { "✅" } else { "❌" },
        );
    }
    let _ = writeln!(
        s,
        "\nVerifier on-CPU time per event (ns, 1 thread): raw SHA-256 {:.0}; SHA-256 + frontier {:.0}; JSON syntax scan alone {:.0}; typed parse into `Event` {:.0}; canonical re-encode (`leaf_bytes`) {:.0}; `Event::parse_leaf` {:.0}; whole `LogVerifier::push` {:.0}; prototype check + hash + tree {:.0} (of which borrowed parse {:.0}, re-encode-and-compare {:.0} into a reused buffer, {:.0} through a comparing writer). `parse_leaf` is {:.0} % of the verifier's CPU time.",
        num(p, &["per_event_ns", "raw_sha256_leaf_hash", "on_cpu"]),
        num(
            p,
            &["per_event_ns", "leaf_hash_plus_frontier_push", "on_cpu"]
        ),
        num(
            p,
            &["per_event_ns", "json_syntax_scan_ignoredany", "on_cpu"]
        ),
        num(p, &["per_event_ns", "typed_parse_event", "on_cpu"]),
        num(
            p,
            &["components_on_sample", "reencode_leaf_bytes", "on_cpu"]
        ),
        num(p, &["per_event_ns", "parse_leaf_total", "on_cpu"]),
        num(p, &["per_event_ns", "log_verifier_total", "on_cpu"]),
        num(p, &["per_event_ns", "prototype_total", "on_cpu"]),
        num(
            p,
            &["components_on_sample", "prototype_borrowed_parse", "on_cpu"]
        ),
        num(
            p,
            &[
                "components_on_sample",
                "prototype_reused_buffer_compare",
                "on_cpu"
            ]
        ),
        num(
            p,
            &["components_on_sample", "prototype_compare_writer", "on_cpu"]
        ),
        num(p, &["share_of_verifier_cpu_time", "parse_leaf"]) * 100.0,
    );
    let _ = writeln!(
        s,
        "\nLoad average (1/5/15 min) at start {}, at end {} — other work on this machine competes for its {} cores.",
        get(m, &["loadavg_at_start"]).as_str().unwrap_or("?"),
        get(r, &["loadavg_at_end"]).as_str().unwrap_or("?"),
        get(m, &["nproc"]),
    );
    let _ = writeln!(
        s,
        "\nProofs follow the domain path (read connection, `event_count`, recording pass, one `Repo::tree_nodes` query, `merkle::*_proof`); the `tree_nodes` query alone: inclusion p50 {:.3} ms, consistency p50 {:.3} ms; the proof algorithm alone over an in-memory tree: p50 {:.4} / {:.4} ms; {:.1} / {:.1} nodes read on average; time the process's threads spent waiting for a core during a proof (summed, read from `/proc/self/task/*/schedstat`): p50 {:.3} / {:.3} ms, p99 {:.3} / {:.3} ms. SQLite synchronous=NORMAL (service default). Total run time {:.0} s.",
        num(r, &["proofs", "inclusion_tree_nodes_query", "p50_ms"]),
        num(r, &["proofs", "consistency_tree_nodes_query", "p50_ms"]),
        num(r, &["proofs", "inclusion_in_memory_algorithm", "p50_ms"]),
        num(r, &["proofs", "consistency_in_memory_algorithm", "p50_ms"]),
        num(r, &["proofs", "inclusion_avg_nodes_read"]),
        num(r, &["proofs", "consistency_avg_nodes_read"]),
        num(
            r,
            &[
                "proofs",
                "inclusion_run_queue_wait_of_process_threads",
                "p50_ms"
            ]
        ),
        num(
            r,
            &[
                "proofs",
                "consistency_run_queue_wait_of_process_threads",
                "p50_ms"
            ]
        ),
        num(
            r,
            &[
                "proofs",
                "inclusion_run_queue_wait_of_process_threads",
                "p99_ms"
            ]
        ),
        num(
            r,
            &[
                "proofs",
                "consistency_run_queue_wait_of_process_threads",
                "p99_ms"
            ]
        ),
        num(r, &["total_seconds"]),
    );
    s
}

//! SQLite: keeping the write-ahead log short without stalling the writer.
//!
//! Committed pages reach the database file only through checkpoints, and the log file starts
//! over from its beginning only at a write transaction that begins when every frame has been
//! copied and no reader is still on the log. Under a steady stream of seals neither happens
//! by itself: the writer appends while a checkpoint copies. SQLite's own answer, the
//! automatic checkpoint, runs in the COMMIT that crosses its threshold, on the writer, which
//! then copies whatever is left and syncs both files while every unit queued behind it
//! waits. Sealing at 32 connections writes ~90,000 frames a second; at a 10,000-frame
//! threshold that was a 20-35 ms stall every ~110 ms, growing with the database (more
//! distinct pages to sync per copy), and it was the seal's p99 (`tests/bench/run
//! --connections 32 --engines sqlite --only seal,baseline-a`).
//!
//! Here the work is split so the writer only ever copies a short tail:
//! 1. the store's checkpoint task ([`checkpoint_task`]) copies the log every few
//!    milliseconds on a reader connection (PASSIVE: it never blocks anyone) and publishes how
//!    far it got;
//! 2. when the log passes [`RESTART_AT`] frames the group writer asks the task to
//!    [drain](WalCopy::want_restart): copy again at once, each pass copying only what was
//!    written during the last, so the uncopied tail shrinks;
//! 3. once the tail is at most [`RESTART_TAIL`] frames, the writer, between two groups,
//!    copies it itself and waits out the readers still on the log (`RESTART`), and its next
//!    group starts the log over ([`restart`]).
//!
//! If the task is missing or cannot keep up, the writer restarts anyway at twice
//! [`RESTART_AT`], so the log is bounded either way.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use sqlx::AnyPool;

/// Log frames (4 KiB pages) after which the group writer starts the log over: 64 MiB, the
/// log file's size from then on. Larger means rarer restarts (each one holds the writer for
/// a tail copy of a few milliseconds); smaller, a smaller file.
pub(crate) const RESTART_AT: i64 = 16_384;
/// The uncopied tail the writer is willing to copy itself (about 2 ms of syncing).
pub(crate) const RESTART_TAIL: i64 = 256;
/// The sqlx connections' own automatic checkpoint: a backstop for a log the group writer is
/// not restarting (no seals for a while, yet writes through sqlx), far above where the group
/// writer acts so it never lands in the middle of a sealing load.
pub(crate) const SQLX_AUTOCHECKPOINT: i64 = 4 * RESTART_AT;
/// How long the task pauses between passes while draining.
const DRAIN_PAUSE: Duration = Duration::from_millis(1);
/// How long a restart waits for another process's writer or for a reader on an old snapshot
/// before giving up until the next group.
const RESTART_WAIT: Duration = Duration::from_millis(100);

/// How this process's checkpoints take turns: one store's task and group writer.
#[derive(Default)]
pub(crate) struct WalCopy {
    /// Set while one of them runs a checkpoint; whoever sets it runs the one checkpoint.
    busy: AtomicBool,
    /// Frames of the current log the task's last checkpoint had copied.
    copied: AtomicI64,
    /// The writer wants to start the log over: the task copies without its usual pause.
    draining: AtomicBool,
}

/// One checkpoint at a time in this process; released on drop (the task's future can be
/// dropped mid-checkpoint when the runtime shuts down).
struct Turn<'a>(&'a AtomicBool);

impl<'a> Turn<'a> {
    fn take(flag: &'a AtomicBool) -> Option<Self> {
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then_some(Turn(flag))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What the group writer should do after a commit that left `frames` frames in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Keep writing.
    Write,
    /// Keep writing; the task is draining the log.
    Wait,
    /// Copy the tail and start the log over now.
    Restart,
}

impl WalCopy {
    /// Decides, after a commit that left `frames` frames in the log; asks the task to drain
    /// when the log is long.
    pub(crate) fn plan(&self, frames: i64) -> Plan {
        if frames < RESTART_AT {
            return Plan::Write;
        }
        self.draining.store(true, Ordering::Release);
        let tail = frames - self.copied.load(Ordering::Acquire);
        if tail <= RESTART_TAIL || frames >= 2 * RESTART_AT {
            Plan::Restart
        } else {
            Plan::Wait
        }
    }

    /// Whether the writer has asked the task to drain.
    pub(crate) fn want_restart(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    fn restarted(&self) {
        self.copied.store(0, Ordering::Release);
        self.draining.store(false, Ordering::Release);
    }
}

/// The group writer's part: with its turn, copies the rest of the log and waits (at most
/// [`RESTART_WAIT`]) for the readers still on it, so that its next transaction starts the
/// log over. `true` when that is done; `false` when it must try again after the next group
/// (the task is mid-copy, another process writes, a reader holds on).
pub(crate) fn restart(c: &Connection, wal: &WalCopy, busy_timeout: Duration) -> bool {
    let Some(_turn) = Turn::take(&wal.busy) else {
        return false;
    };
    let _ = c.busy_timeout(RESTART_WAIT);
    // (busy, log frames, copied frames); busy 0: all copied and no reader left on the log.
    let done = c.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0));
    let _ = c.busy_timeout(busy_timeout);
    let restarted = matches!(done, Ok(0));
    if restarted {
        wal.restarted();
    }
    restarted
}

/// The store's checkpoint task: every `every` (every [`DRAIN_PAUSE`] while the writer wants
/// to restart), a PASSIVE checkpoint on a reader connection, which blocks neither the
/// writer nor readers, then a sync of the database file `db`. Ends when the pool is closed.
///
/// SQLite syncs the database file only after a checkpoint that reached the end of the log,
/// which under steady writes is only the writer's restart: that one sync then wrote out
/// every page copied since the last restart (more, the larger the database: 5 ms growing to
/// 30 ms within ten seconds of sealing). Synced here after each copy, the restart's sync
/// covers only its own tail.
pub(crate) async fn checkpoint_task(
    pool: AnyPool,
    db: PathBuf,
    every: Duration,
    wal: std::sync::Arc<WalCopy>,
) {
    let mut failing = false;
    loop {
        let pause = if wal.want_restart() {
            DRAIN_PAUSE.min(every)
        } else {
            every
        };
        tokio::time::sleep(pause).await;
        if pool.is_closed() {
            return;
        }
        // The group writer is restarting the log: it copies what there is to copy.
        let Some(turn) = Turn::take(&wal.busy) else {
            continue;
        };
        let copy = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await;
        drop(turn);
        match copy {
            Ok((_, _, copied)) => {
                failing = false;
                let before = wal.copied.swap(copied, Ordering::AcqRel);
                if copied != before {
                    sync_file(&db).await;
                }
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                // Disk full, file made read-only: the writes fail and say so; log once.
                if !failing {
                    tracing::warn!(error = %e, "could not checkpoint the write-ahead log");
                }
                failing = true;
            }
        }
    }
}

/// `fdatasync` of `path`, off the runtime's workers. A failure is not the task's to report:
/// SQLite syncs again before it reuses the log, and reports that.
async fn sync_file(path: &Path) {
    let path = path.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || File::open(path).and_then(|f| f.sync_data())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_log_is_left_alone() {
        let wal = WalCopy::default();
        assert_eq!(wal.plan(RESTART_AT - 1), Plan::Write);
        assert!(!wal.want_restart());
    }

    #[test]
    fn a_long_log_waits_for_the_task_until_the_tail_is_short() {
        let wal = WalCopy::default();
        wal.copied.store(RESTART_AT - 5_000, Ordering::Release);
        assert_eq!(wal.plan(RESTART_AT), Plan::Wait);
        assert!(wal.want_restart());
        wal.copied
            .store(RESTART_AT + 100 - RESTART_TAIL, Ordering::Release);
        assert_eq!(wal.plan(RESTART_AT + 100), Plan::Restart);
        wal.restarted();
        assert!(!wal.want_restart());
        assert_eq!(wal.copied.load(Ordering::Acquire), 0);
    }

    #[test]
    fn without_the_task_the_writer_restarts_at_twice_the_threshold() {
        let wal = WalCopy::default();
        assert_eq!(wal.plan(2 * RESTART_AT - 1), Plan::Wait);
        assert_eq!(wal.plan(2 * RESTART_AT), Plan::Restart);
    }

    thread_local! {
        static FRAMES: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
    }

    fn note(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
        FRAMES.with(|f| f.set(i64::from(frames)));
        Ok(())
    }

    /// A WAL database with a writer whose commits report the log's length to `FRAMES`.
    fn database() -> (tempfile::TempDir, PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
             CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB NOT NULL);",
        )
        .unwrap();
        c.wal_hook(Some(note));
        (dir, path, c)
    }

    /// One transaction of `n` rows with random keys: many distinct pages, as seals write.
    fn write(c: &Connection, from: u32, n: u32) {
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        for i in from..from + n {
            c.execute(
                "INSERT INTO t (k, v) VALUES (randomblob(16), zeroblob(200) || ?1)",
                [i],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }

    fn rows(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_restart_starts_the_log_over_and_keeps_every_row() {
        let (_dir, path, c) = database();
        write(&c, 0, 2_000);
        let long = FRAMES.with(|f| f.get());
        assert!(long > 50, "the log holds the rows: {long} frames");
        let wal = WalCopy::default();
        assert!(restart(&c, &wal, Duration::from_secs(2)));
        write(&c, 2_000, 1);
        let short = FRAMES.with(|f| f.get());
        assert!(
            short < long / 10,
            "{short} frames after the restart, {long} before"
        );
        assert_eq!(rows(&path), 2_001);
    }

    #[test]
    fn a_reader_on_the_log_holds_a_restart_off_until_it_ends() {
        let (_dir, path, c) = database();
        write(&c, 0, 500);
        // A reader whose snapshot is this log, then more writes after it.
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let seen: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seen, 500);
        write(&c, 500, 500);
        let wal = WalCopy::default();
        let t = std::time::Instant::now();
        assert!(!restart(&c, &wal, Duration::from_secs(2)));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "gave up after {:?}",
            t.elapsed()
        );
        // The connection's own busy timeout is back.
        reader.execute_batch("COMMIT").unwrap();
        assert!(restart(&c, &wal, Duration::from_secs(2)));
        assert_eq!(rows(&path), 1_000);
    }

    #[test]
    fn the_writer_does_not_restart_while_the_task_copies() {
        let (_dir, _path, c) = database();
        write(&c, 0, 100);
        let wal = WalCopy::default();
        let task = Turn::take(&wal.busy).unwrap();
        assert!(!restart(&c, &wal, Duration::from_secs(2)));
        drop(task);
        assert!(restart(&c, &wal, Duration::from_secs(2)));
    }

    #[test]
    fn one_checkpoint_at_a_time() {
        let busy = AtomicBool::new(false);
        let first = Turn::take(&busy).expect("free");
        assert!(Turn::take(&busy).is_none());
        drop(first);
        assert!(Turn::take(&busy).is_some());
    }
}

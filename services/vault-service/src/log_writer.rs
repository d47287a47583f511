//! The log lines' writer: request threads hand each formatted line to one writer thread
//! instead of writing it to stderr themselves.
//!
//! Written in place, every request paid a `write(2)` under the stderr lock, and at tens of
//! thousands of requests a second the two runtime workers queued on that lock. Here a line is
//! one channel send; the writer thread takes whatever has queued into a buffer and writes it
//! in one call. A quiet service's line is written at once; a busy one's within a millisecond.
//!
//! Nothing is dropped: the queue is bounded and a full queue makes the sender wait, which is
//! what writing in place did when stderr was slow. [`LogFlush`] (held by the telemetry guard)
//! writes out what is queued when `main` ends. Only a process killed outright (SIGKILL) can
//! lose the lines still queued: at most what arrived in the last instant.

use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Lines that may wait for the writer thread before a sender waits.
pub const QUEUE_LINES: usize = 16 * 1024;
/// How long [`LogFlush`] waits for the writer thread at exit.
const FLUSH_WAIT: Duration = Duration::from_secs(2);
/// The writer thread's buffer; a full one is written out even while lines keep coming.
const BUFFER_BYTES: usize = 64 * 1024;
/// How long the writer thread waits for more lines after writing some out. Also the most a
/// line waits in the queue while the service is busy.
const BUSY_PAUSE: Duration = Duration::from_millis(1);

enum Msg {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// The `MakeWriter` the log layer formats into: each event's line becomes one message.
#[derive(Clone)]
pub struct LogSink {
    tx: SyncSender<Msg>,
}

/// Writes out every queued line when dropped (or on [`LogFlush::flush`]).
pub struct LogFlush {
    tx: SyncSender<Msg>,
}

/// Starts the writer thread over `out`. `queue` is the number of lines that may wait.
///
/// If the thread cannot be started the lines are written in place instead: logging must not
/// be what stops the service.
pub fn spawn<W: Write + Send + 'static>(out: W, queue: usize) -> (LogSink, LogFlush) {
    let (tx, rx) = mpsc::sync_channel(queue);
    // On failure the closure, and with it the receiver, is dropped: sends then fail and
    // `LogSink` writes in place.
    let started = std::thread::Builder::new()
        .name("rv-log".into())
        .spawn(move || write_lines(rx, out));
    if let Err(e) = started {
        eprintln!("reporter-vault: cannot start the log writer thread ({e}); logging in place");
    }
    (LogSink { tx: tx.clone() }, LogFlush { tx })
}

/// The writer thread. It blocks only when the queue was empty a whole [`BUSY_PAUSE`] after
/// its last write: while lines keep coming it wakes by itself once per pause and takes all of
/// them, so a busy service's senders only push (waking a blocked thread per line cost as much
/// as the write it replaced).
fn write_lines<W: Write>(rx: Receiver<Msg>, out: W) {
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, out);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        loop {
            while let Some(msg) = next {
                match msg {
                    // A line that cannot be written (stderr closed) is not worth stopping for.
                    Msg::Line(line) => drop(out.write_all(&line)),
                    Msg::Flush(done) => {
                        drop(out.flush());
                        let _ = done.send(());
                    }
                }
                next = rx.try_recv().ok();
            }
            drop(out.flush());
            std::thread::sleep(BUSY_PAUSE);
            next = rx.try_recv().ok();
            if next.is_none() {
                break;
            }
        }
    }
    drop(out.flush());
}

impl Write for &LogSink {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        match self.tx.send(Msg::Line(line.to_vec())) {
            Ok(()) => Ok(line.len()),
            // The writer thread is gone (it never started, or it panicked): write in place.
            Err(mpsc::SendError(Msg::Line(line))) => io::stderr().write(&line),
            Err(_) => Ok(line.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = &'a LogSink;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl LogFlush {
    /// Waits (at most 2 s) until every line queued before this call is written out.
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(FLUSH_WAIT);
        }
    }
}

impl Drop for LogFlush {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// An output that counts its `write` calls, so batching can be seen.
    #[derive(Clone, Default)]
    struct Shared {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.bytes.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_small_queue_under_many_writers_keeps_every_line_in_each_writers_order() {
        let out = Shared::default();
        // 4 lines of queue for 8 threads × 2,000 lines: senders must wait, never drop.
        let (sink, flush) = spawn(out.clone(), 4);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let line = format!("thread {t} line {i}\n");
                        (&mut sink.make_writer())
                            .write_all(line.as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        flush.flush();
        let text = String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 16_000);
        for t in 0..8 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..2_000).collect::<Vec<_>>(), "thread {t}");
        }
        // Queued lines were written together, not one write per line.
        assert!(*out.writes.lock().unwrap() < 16_000);
    }

    #[test]
    fn dropping_the_flush_handle_writes_out_what_is_queued() {
        let out = Shared::default();
        let (sink, flush) = spawn(out.clone(), QUEUE_LINES);
        for i in 0..500 {
            (&mut sink.make_writer())
                .write_all(format!("{i}\n").as_bytes())
                .unwrap();
        }
        drop(flush);
        assert_eq!(
            String::from_utf8_lossy(&out.bytes.lock().unwrap())
                .lines()
                .count(),
            500
        );
    }

    #[test]
    fn a_quiet_log_is_written_without_a_flush() {
        let out = Shared::default();
        let (sink, _flush) = spawn(out.clone(), QUEUE_LINES);
        (&mut sink.make_writer()).write_all(b"one line\n").unwrap();
        // The writer thread writes a lone line out at once; give it up to 5 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.bytes.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*out.bytes.lock().unwrap(), b"one line\n");
    }
}

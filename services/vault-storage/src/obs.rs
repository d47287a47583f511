//! What the store measures about the access trail: how long each append takes and how many
//! fail, through the `metrics` facade (a no-op until the service installs a recorder). No
//! label: an append is an append, whoever it concerns.

use std::time::Instant;

/// `rv_audit_append_duration_seconds`: one observation per append attempt.
pub const AUDIT_APPEND_DURATION: &str = "rv_audit_append_duration_seconds";
/// `rv_audit_append_failures_total`: appends that failed, in the statement or at the commit
/// of their transaction.
pub const AUDIT_APPEND_FAILURES: &str = "rv_audit_append_failures_total";

/// Times one append; an append dropped before [`AppendTimer::succeeded`] (an error returned
/// with `?`, or the caller gave up) counts as failed.
pub(crate) struct AppendTimer {
    started: Instant,
    ok: bool,
}

impl AppendTimer {
    pub(crate) fn start() -> Self {
        Self {
            started: Instant::now(),
            ok: false,
        }
    }

    /// The append's statements all succeeded.
    pub(crate) fn succeeded(mut self) {
        self.ok = true;
    }
}

impl Drop for AppendTimer {
    fn drop(&mut self) {
        metrics::histogram!(AUDIT_APPEND_DURATION).record(self.started.elapsed().as_secs_f64());
        if !self.ok {
            metrics::counter!(AUDIT_APPEND_FAILURES).increment(1);
        }
    }
}

/// A transaction holding an appended event failed to commit: the event is not in the trail.
pub(crate) fn append_lost() {
    metrics::counter!(AUDIT_APPEND_FAILURES).increment(1);
}

//! The erasure ledger: one JSON line per erasure, appended and fsynced before the erasure
//! commits. It lives outside the database (by default beside the keyring, in the data
//! directory; on replicas, on a shared volume), so restoring a backup taken before an erasure
//! erases the record again (`reporter-vault restore` reads it).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use vault_domain::lifecycle::{ErasureLedger, LedgerEntry};

/// The ledger file.
pub struct FileLedger {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileLedger {
    /// A ledger at `path` (created on first erasure, mode 0600).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl ErasureLedger for FileLedger {
    fn record(&self, entry: &LedgerEntry) -> Result<(), String> {
        let _guard = self
            .lock
            .lock()
            .map_err(|_| "ledger lock poisoned".to_owned())?;
        let mut line = serde_json::to_vec(entry).map_err(|_| "could not encode".to_owned())?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| format!("cannot open {}: {}", self.path.display(), e.kind()))?;
        f.write_all(&line)
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write {}: {}", self.path.display(), e.kind()))
    }
}

/// Reads every entry of a ledger file. A missing file is an error: restore must not guess
/// that nothing was erased.
pub fn read_ledger(path: &Path) -> Result<Vec<LedgerEntry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the erasure ledger {}: {} (an empty file means no erasures)",
            path.display(),
            e.kind()
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|_| format!("{} line {}: not a ledger entry", path.display(), i + 1))
        })
        .collect()
}

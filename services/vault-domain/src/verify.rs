//! The offline verifier of the access trail, written from RFC 6962 and the C2SP specs: it
//! needs only the leaves in order, the checkpoints and the log's public key.
//!
//! It checks that every leaf is canonical and carries its own index (so a swapped, deleted or
//! inserted row is caught at the first wrong position), recomputes the tree, and checks every
//! checkpoint's signature and root at its size. Recomputing every root from one leaf
//! sequence is what consistency between consecutive checkpoints means; a checkpoint whose
//! size exceeds the log (truncation, roll-back) fails too. A checkpoint saved earlier by an
//! auditor can be passed in as well, which catches a roll-back that also removed the later
//! checkpoints from the database.

use std::collections::BTreeMap;

use vault_crypto::checkpoint::{Checkpoint, NoteVerifier};
use vault_crypto::merkle::{Frontier, leaf_hash};

use crate::audit::Event;

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Leaf at position `index` is malformed, non-canonical or carries another index.
    #[error("bad leaf at index {index}: {reason}")]
    Leaf {
        /// Position in the log.
        index: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A checkpoint's signature does not verify.
    #[error("checkpoint for tree size {size}: signature invalid")]
    Signature {
        /// Its claimed size (0 if unreadable).
        size: u64,
    },
    /// A checkpoint's root differs from the recomputed one: the log changed at or before
    /// `first_bad_index_at_most`.
    #[error(
        "checkpoint for tree size {size}: root does not match the log (the first bad index is in [{from}, {size}))"
    )]
    Root {
        /// The checkpoint's size.
        size: u64,
        /// The size of the last checkpoint that verified (0 if none): the change lies at or
        /// after this index.
        from: u64,
    },
    /// A checkpoint covers more events than the log has: truncated or rolled back.
    #[error(
        "checkpoint for tree size {size} but the log ends at {log_size}: the log was truncated or rolled back (first missing index {log_size})"
    )]
    Truncated {
        /// The checkpoint's size.
        size: u64,
        /// Events present.
        log_size: u64,
    },
}

impl VerifyError {
    /// The first log index known to be bad (for the exit message).
    pub fn first_bad_index(&self) -> Option<u64> {
        match self {
            VerifyError::Leaf { index, .. } => Some(*index),
            VerifyError::Truncated { log_size, .. } => Some(*log_size),
            VerifyError::Root { from, .. } => Some(*from),
            VerifyError::Signature { .. } => None,
        }
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events checked.
    pub events: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Root of the whole log.
    pub root: [u8; 32],
}

/// Streams leaves through the checks.
pub struct LogVerifier {
    frontier: Frontier,
    /// Parsed checkpoints by size, waiting for the log to reach them.
    pending: BTreeMap<u64, Checkpoint>,
    checked: u64,
    last_good: u64,
    strict: bool,
}

/// The top-level `index` of a canonical leaf, read without parsing the rest: keys are in
/// lexicographic order and `action` always comes first, so the top-level key is the first
/// `,"index":` followed by a digit (a `detail` entry named `index` has a string value, and
/// every quote inside a string value is escaped).
pub fn leaf_index(leaf: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b",\"index\":";
    let mut from = 0;
    while let Some(pos) = leaf.get(from..)?.windows(KEY.len()).position(|w| w == KEY) {
        let start = from + pos + KEY.len();
        let digits: &[u8] = leaf.get(start..)?;
        let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if n > 0 {
            // Canonical integers have no leading zero.
            if n > 1 && digits.first() == Some(&b'0') {
                return None;
            }
            return std::str::from_utf8(digits.get(..n)?).ok()?.parse().ok();
        }
        from = start;
    }
    None
}

impl LogVerifier {
    /// Verifies signatures with `verifier`; `notes` are every checkpoint to check.
    pub fn new(verifier: NoteVerifier, notes: &[String]) -> Result<Self, VerifyError> {
        let mut pending = BTreeMap::new();
        for note in notes {
            let cp = verifier.verify(note).map_err(|_| VerifyError::Signature {
                // The body is everything up to and including the newline before the blank
                // line that starts the signatures.
                size: note
                    .rfind("\n\n")
                    .and_then(|i| note.get(..=i))
                    .and_then(|body| Checkpoint::parse_body(body).ok())
                    .map(|c| c.size)
                    .unwrap_or(0),
            })?;
            pending.insert(cp.size, cp);
        }
        let mut v = Self {
            frontier: Frontier::new(),
            pending,
            checked: 0,
            last_good: 0,
            strict: false,
        };
        v.check_due()?;
        Ok(v)
    }

    fn check_due(&mut self) -> Result<(), VerifyError> {
        let size = self.frontier.size();
        if let Some(cp) = self.pending.remove(&size) {
            if cp.root != self.frontier.root() {
                return Err(VerifyError::Root {
                    size,
                    from: self.last_good,
                });
            }
            self.checked += 1;
            self.last_good = size;
        }
        Ok(())
    }

    /// The next leaf, which must be the one at `self.size()`.
    pub fn push(&mut self, leaf: &[u8]) -> Result<(), VerifyError> {
        let index = self.frontier.size();
        let carried = if self.strict {
            Event::parse_leaf(leaf)
                .ok_or(VerifyError::Leaf {
                    index,
                    reason: "not a canonical event encoding",
                })?
                .index
        } else {
            leaf_index(leaf).ok_or(VerifyError::Leaf {
                index,
                reason: "no index in the leaf",
            })?
        };
        if carried != index {
            return Err(VerifyError::Leaf {
                index,
                reason: "the leaf carries another index (rows deleted, inserted or swapped)",
            });
        }
        self.frontier
            .push(leaf_hash(leaf))
            .map_err(|_| VerifyError::Leaf {
                index,
                reason: "log too large",
            })?;
        self.check_due()
    }

    /// Like [`LogVerifier::push`], also comparing the leaf's hash with the hash the store
    /// kept in its tree: a leaf edited in place is then named at its exact index.
    pub fn push_with_stored_hash(
        &mut self,
        leaf: &[u8],
        stored: Option<[u8; 32]>,
    ) -> Result<(), VerifyError> {
        if let Some(h) = stored
            && h != leaf_hash(leaf)
        {
            return Err(VerifyError::Leaf {
                index: self.frontier.size(),
                reason: "the leaf differs from the hash stored in the tree when it was appended",
            });
        }
        self.push(leaf)
    }

    /// Also proves every leaf is the canonical encoding of a well-formed event (a full parse
    /// and re-encode per leaf, about four times slower). Without it, each leaf's bytes are
    /// still hashed into the tree and its index checked, so any change to any byte is caught
    /// by the checkpoint roots; strict mode additionally names a malformed leaf by index.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Leaves checked so far.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Ends the stream: every checkpoint must have been reached.
    pub fn finish(self) -> Result<VerifyReport, VerifyError> {
        let log_size = self.frontier.size();
        if let Some((&size, _)) = self.pending.iter().next() {
            return Err(VerifyError::Truncated { size, log_size });
        }
        Ok(VerifyReport {
            events: log_size,
            checkpoints: self.checked,
            root: self.frontier.root(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Action, NewEvent};

    #[test]
    fn leaf_index_reads_the_top_level_index_only() {
        let mut ev = NewEvent::system(
            Action::DisclosureOpened,
            time::macros::datetime!(2026-11-20 08:00 UTC),
        );
        ev.detail.insert("index".into(), "999".into());
        ev.detail.insert("a".into(), ",\"index\":7".into());
        let leaf = Event::from_new(42, &ev).leaf_bytes();
        assert_eq!(leaf_index(&leaf), Some(42));
        assert_eq!(
            leaf_index(b"{\"action\":\"x\",\"index\":0,\"v\":1}"),
            Some(0)
        );
        // fail: leading zero, no index, no digits.
        assert_eq!(leaf_index(b"{\"action\":\"x\",\"index\":07}"), None);
        assert_eq!(leaf_index(b"{\"action\":\"x\"}"), None);
        assert_eq!(leaf_index(b"{\"action\":\"x\",\"index\":\"7\"}"), None);
    }
}

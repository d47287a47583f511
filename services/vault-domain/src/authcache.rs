//! A short-lived cache of authenticated principals by token hash, so most requests skip the
//! principal lookup (a database round trip on every call).
//!
//! A revocation made through this process removes the principal's entries at once, and a
//! lookup that raced it is not cached (a generation counter). One made through another
//! replica would take effect here only within the time to live, which breaks the contract's
//! "the token stops working at once": so the service turns the cache on by default only on
//! the embedded SQLite store (one process), and off on PostgreSQL unless the operator sets
//! `RV_AUTH_CACHE_SECONDS`. Only principals that authenticated are kept, never a miss, so an
//! unknown token always reaches the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

use crate::model::Principal;

/// Entries kept at most; beyond, the cache starts over (a flood of valid tokens is rare and
/// costs only the lookups it would have cost anyway).
const MAX_ENTRIES: usize = 10_000;

pub(crate) struct AuthCache {
    ttl: time::Duration,
    entries: Mutex<HashMap<[u8; 32], (Principal, OffsetDateTime)>>,
    /// Bumped by every revocation: a lookup that began before one is not cached.
    generation: AtomicU64,
}

impl AuthCache {
    pub(crate) fn new(ttl: time::Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Taken before reading the principal from the store; hand it back to [`Self::put`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The principal cached for `hash`, if it was cached less than the time to live ago.
    pub(crate) fn get(&self, hash: &[u8; 32], now: OffsetDateTime) -> Option<Principal> {
        if self.ttl <= time::Duration::ZERO {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (p, at) = entries.get(hash)?;
        // A clock that went backwards also misses.
        let age = now - *at;
        (age >= time::Duration::ZERO && age < self.ttl).then(|| p.clone())
    }

    /// Caches `p`, unless a revocation happened since `generation` was taken.
    pub(crate) fn put(&self, hash: [u8; 32], p: &Principal, now: OffsetDateTime, generation: u64) {
        if self.ttl <= time::Duration::ZERO {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            // Checked under the lock `forget_principal` bumps it under.
            if self.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(hash, (p.clone(), now));
        }
    }

    /// Forgets every token of principal `id` (it was revoked).
    pub(crate) fn forget_principal(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.retain(|_, (p, _)| p.id != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::{Jurisdiction, Role};

    fn principal(id: &str) -> Principal {
        Principal {
            id: id.into(),
            name: "n".into(),
            role: Role::Auditor,
            jurisdiction: Jurisdiction::NATIONAL,
            age_recipient: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            revoked_at: None,
        }
    }

    #[test]
    fn entries_expire_and_revocation_forgets_them() {
        let t0 = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let c = AuthCache::new(time::Duration::seconds(2));
        c.put([1; 32], &principal("prn_a"), t0, c.generation());
        c.put([2; 32], &principal("prn_b"), t0, c.generation());
        assert_eq!(c.get(&[1; 32], t0).map(|p| p.id), Some("prn_a".into()));
        assert!(c.get(&[3; 32], t0).is_none(), "never put");
        let later = t0 + time::Duration::milliseconds(1999);
        assert!(c.get(&[1; 32], later).is_some(), "within the time to live");
        assert!(
            c.get(&[1; 32], t0 + time::Duration::seconds(2)).is_none(),
            "expired"
        );
        assert!(
            c.get(&[1; 32], t0 - time::Duration::seconds(1)).is_none(),
            "clock went back"
        );
        c.forget_principal("prn_a");
        assert!(c.get(&[1; 32], t0).is_none(), "revoked");
        assert!(c.get(&[2; 32], t0).is_some(), "others stay");
    }

    #[test]
    fn a_lookup_that_raced_a_revocation_is_not_cached() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let c = AuthCache::new(time::Duration::seconds(2));
        let before = c.generation();
        // The store said "not revoked"; the revocation commits before the answer is cached.
        c.forget_principal("prn_a");
        c.put([1; 32], &principal("prn_a"), t0, before);
        assert!(c.get(&[1; 32], t0).is_none());
        c.put([1; 32], &principal("prn_a"), t0, c.generation());
        assert!(c.get(&[1; 32], t0).is_some(), "a fresh lookup is cached");
    }

    #[test]
    fn a_zero_time_to_live_caches_nothing() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let c = AuthCache::new(time::Duration::ZERO);
        c.put([1; 32], &principal("prn_a"), t0, c.generation());
        assert!(c.get(&[1; 32], t0).is_none());
    }
}

//! The Merkle proof verifiers (`verify_inclusion`, `verify_consistency`) with fuzzed proofs,
//! sizes and indices, plus proof generation, `root_from_source` and `Frontier` on a small
//! real tree built here.
//!
//! Two oracles:
//! * an independent recursive implementation of the RFC 9162 definitions (written from the
//!   `PATH`/`SUBPROOF` recursions, not from the iterative verifiers under test): the verifier
//!   must accept exactly when the recursion reproduces the given root(s) — at every size up
//!   to `u64::MAX`;
//! * the real tree of `n ≤ 40` leaves: for its sizes and its roots, a proof verifies exactly
//!   when it is the proof the tree generates.
//!
//! Input (a little byte-code, so seeds are easy to write): see `Cursor` and `hash`.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vault_crypto::merkle::{
    self, EMPTY_ROOT, Frontier, Hash, MemoryTree, NodeSource as _, ProofError,
};
use vault_fuzz::{MAX_TREE, merkle_leaves};

/// Reads the input front to back; past the end every read is 0.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    /// A tag byte below 0x80 is the value itself; otherwise 8 little-endian bytes follow.
    fn u64(&mut self) -> u64 {
        let tag = self.byte();
        if tag < 0x80 {
            return u64::from(tag);
        }
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        match tag {
            0xff => u64::MAX - u64::from_le_bytes(b) % 256,
            _ => u64::from_le_bytes(b),
        }
    }
    fn raw32(&mut self) -> Hash {
        let mut h = [0u8; 32];
        for x in &mut h {
            *x = self.byte();
        }
        h
    }
}

/// The trees of 0..=MAX_TREE leaves (tree `n` holds leaves `0..n`).
fn trees() -> &'static [MemoryTree] {
    static T: OnceLock<Vec<MemoryTree>> = OnceLock::new();
    T.get_or_init(|| {
        (0..=MAX_TREE)
            .map(|n| MemoryTree::from_leaf_hashes(&merkle_leaves()[..n]).expect("tree"))
            .collect()
    })
}

fn real_root(size: u64) -> Option<Hash> {
    let s = usize::try_from(size).ok().filter(|s| *s <= MAX_TREE)?;
    Some(merkle::root_of_leaves(&merkle_leaves()[..s]))
}

/// A hash chosen by one selector byte: element `k` of `real` (the real proof, if any), a
/// leaf, a real root of any size, a stored node of the full tree, or 32 raw bytes.
fn hash(c: &mut Cursor<'_>, real: &[Hash]) -> Hash {
    let full = &trees()[MAX_TREE];
    match c.byte() % 5 {
        0 => {
            let k = usize::from(c.byte());
            real.get(k).or(real.last()).copied().unwrap_or(EMPTY_ROOT)
        }
        1 => merkle_leaves()[usize::from(c.byte()) % MAX_TREE],
        2 => real_root(u64::from(c.byte()) % (MAX_TREE as u64 + 1)).unwrap_or(EMPTY_ROOT),
        3 => {
            let level = u32::from(c.byte() % 7);
            let index = u64::from(c.byte());
            full.node(level, index).unwrap_or(EMPTY_ROOT)
        }
        _ => c.raw32(),
    }
}

/// A proof: count byte 0xff = the real proof itself, else `count % 70` selected hashes.
fn proof(c: &mut Cursor<'_>, real: &[Hash]) -> Vec<Hash> {
    let count = c.byte();
    if count == 0xff {
        return real.to_vec();
    }
    (0..count % 70).map(|_| hash(c, real)).collect()
}

/// The largest power of two strictly below `n` (n ≥ 2), computed by doubling.
fn split(n: u64) -> u64 {
    let mut k = 1u64;
    while k.checked_mul(2).is_some_and(|d| d < n) {
        k *= 2;
    }
    k
}

/// Root of the tree of `size` leaves given leaf `idx` and its audit path (RFC 9162 `PATH`,
/// deepest sibling first), by the recursive definition; `None` if the path has the wrong
/// number of elements.
fn path_root(leaf: &Hash, idx: u64, size: u64, path: &[Hash]) -> Option<Hash> {
    if size == 1 {
        return path.is_empty().then_some(*leaf);
    }
    let (last, rest) = path.split_last()?;
    let k = split(size);
    if idx < k {
        Some(merkle::node_hash(&path_root(leaf, idx, k, rest)?, last))
    } else {
        Some(merkle::node_hash(last, &path_root(leaf, idx - k, size - k, rest)?))
    }
}

/// (old root, new root) implied by a `SUBPROOF(m, D[n], b)` and the old root the verifier
/// already knows (used where `b` holds and the subtree is the whole old tree).
fn subproof_roots(m: u64, n: u64, proof: &[Hash], b: bool, known: &Hash) -> Option<(Hash, Hash)> {
    if m == n {
        return if b {
            proof.is_empty().then_some((*known, *known))
        } else {
            match proof {
                [only] => Some((*only, *only)),
                _ => None,
            }
        };
    }
    let (last, rest) = proof.split_last()?;
    let k = split(n);
    if m <= k {
        let (old, new) = subproof_roots(m, k, rest, b, known)?;
        Some((old, merkle::node_hash(&new, last)))
    } else {
        let (old, new) = subproof_roots(m - k, n - k, rest, false, known)?;
        Some((merkle::node_hash(last, &old), merkle::node_hash(last, &new)))
    }
}

/// Whether the recursive definitions accept a consistency claim.
fn consistency_ok(first: u64, second: u64, r1: &Hash, r2: &Hash, proof: &[Hash]) -> bool {
    if first > second {
        return false;
    }
    if first == 0 || first == second {
        return proof.is_empty()
            && (first != 0 || *r1 == EMPTY_ROOT)
            && (first != second || r1 == r2);
    }
    subproof_roots(first, second, proof, true, r1) == Some((*r1, *r2))
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor(data);
    let n = usize::from(c.byte()) % (MAX_TREE + 1);
    let tree = &trees()[n];
    let all = merkle_leaves();
    let leaves = &all[..n];
    match c.byte() % 4 {
        0 => {
            // Inclusion.
            let index = c.u64();
            let size = c.u64();
            let real = merkle::inclusion_proof(tree, index, size);
            match &real {
                Ok(p) => {
                    // A proof reads only the nodes it needs (none beyond the last leaf for
                    // the last index), so a size beyond the tree may still be answered; the
                    // domain checks sizes against the log. Whatever is answered is right.
                    assert!(index < size);
                    if let Some(root) = real_root(size) {
                        let full = merkle::inclusion_proof(&trees()[MAX_TREE], index, size);
                        assert_eq!(full.as_ref().ok(), Some(p), "proof differs from the full tree's");
                        merkle::verify_inclusion(&all[index as usize], index, size, p, &root)
                            .expect("a generated proof verifies");
                    }
                }
                Err(ProofError::InvalidIndex) => assert!(index >= size),
                Err(ProofError::MissingNode { .. }) => assert!(size > n as u64),
                Err(e) => panic!("inclusion_proof: unexpected {e}"),
            }
            let real = real.unwrap_or_default();
            let root_is_real = c.byte() & 1 == 0;
            let root = match (root_is_real, real_root(size)) {
                (true, Some(r)) => r,
                _ => hash(&mut c, &real),
            };
            let leaf = hash(&mut c, &real);
            let p = proof(&mut c, &real);
            let got = merkle::verify_inclusion(&leaf, index, size, &p, &root);
            let want = index < size && path_root(&leaf, index, size, &p) == Some(root);
            assert_eq!(got.is_ok(), want, "verify_inclusion disagrees with PATH: {got:?}");
            if index >= size {
                assert_eq!(got, Err(ProofError::InvalidIndex));
            }
            if root_is_real && size <= n as u64 && index < size {
                let genuine = leaf == all[index as usize] && p == real;
                assert_eq!(got.is_ok(), genuine, "accepted a proof the real tree does not make");
            }
        }
        1 => {
            // Consistency.
            let first = c.u64();
            let second = c.u64();
            let real = merkle::consistency_proof(tree, first, second);
            match &real {
                Ok(p) => {
                    assert!(first <= second);
                    if let (Some(r1), Some(r2)) = (real_root(first), real_root(second)) {
                        let full = merkle::consistency_proof(&trees()[MAX_TREE], first, second);
                        assert_eq!(full.as_ref().ok(), Some(p), "proof differs from the full tree's");
                        merkle::verify_consistency(first, second, &r1, &r2, p)
                            .expect("a generated proof verifies");
                    }
                }
                Err(ProofError::InvalidSize) => assert!(first > second),
                Err(ProofError::MissingNode { .. }) => assert!(second > n as u64),
                Err(e) => panic!("consistency_proof: unexpected {e}"),
            }
            let real = real.unwrap_or_default();
            let sel = c.byte();
            let r1 = match (sel & 1 == 0, real_root(first)) {
                (true, Some(r)) => r,
                _ => hash(&mut c, &real),
            };
            let r2 = match (sel & 2 == 0, real_root(second)) {
                (true, Some(r)) => r,
                _ => hash(&mut c, &real),
            };
            let p = proof(&mut c, &real);
            let got = merkle::verify_consistency(first, second, &r1, &r2, &p);
            let want = consistency_ok(first, second, &r1, &r2, &p);
            assert_eq!(got.is_ok(), want, "verify_consistency disagrees with SUBPROOF: {got:?}");
            if sel & 3 == 0 && second <= n as u64 && first <= second {
                assert_eq!(got.is_ok(), p == real, "accepted a proof the real tree does not make");
            }
        }
        2 => {
            // Roots from the store, for any size.
            let size = c.u64();
            match merkle::root_from_source(tree, size) {
                Ok(r) => assert_eq!(Some(r), real_root(size).filter(|_| size <= n as u64)),
                Err(ProofError::MissingNode { .. }) => assert!(size > n as u64),
                Err(e) => panic!("root_from_source: unexpected {e}"),
            }
            assert_eq!(tree.root(), merkle::root_of_leaves(leaves));
        }
        _ => {
            // A frontier restored from arbitrary parts.
            let size = c.u64();
            let count = usize::from(c.byte() % 66);
            let hashes: Vec<Hash> = (0..count).map(|_| hash(&mut c, &[])).collect();
            match Frontier::from_parts(size, hashes.clone()) {
                Ok(mut f) => {
                    assert_eq!(hashes.len() as u32, size.count_ones());
                    let before = f.root();
                    match f.push(merkle_leaves()[0]) {
                        Ok(created) => {
                            assert_eq!(f.size(), size + 1);
                            assert_eq!(created.first().map(|c| (c.0, c.1)), Some((0, size)));
                            assert_eq!(created.len() as u32, size.trailing_ones() + 1);
                            assert_eq!(f.hashes().len() as u32, (size + 1).count_ones());
                        }
                        Err(e) => {
                            assert_eq!(size, u64::MAX, "push failed below u64::MAX: {e}");
                            assert_eq!(f.root(), before);
                        }
                    }
                }
                Err(e) => {
                    assert_eq!(e, ProofError::InvalidSize);
                    assert_ne!(hashes.len() as u32, size.count_ones());
                }
            }
            // A frontier grown leaf by leaf matches the reference root.
            let mut f = Frontier::new();
            for l in leaves {
                f.push(*l).expect("push");
            }
            assert_eq!(&f, tree.frontier());
            assert_eq!(f.root(), merkle::root_of_leaves(leaves));
        }
    }
});

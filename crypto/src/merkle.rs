//! RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification.
//!
//! The access trail is an append-only Merkle log so that an auditor holding
//! one signed checkpoint can check that any later checkpoint extends it
//! (consistency) and that a given event is in it (inclusion), without trusting
//! the vault or its operators. Every format here is the one of RFC 9162
//! section 2.1 so that existing transparency-log tooling and an auditor's own
//! verifier, written from the RFC alone, agree with it byte for byte.
//!
//! # Hashes
//!
//! * leaf: `SHA-256(0x00 ‖ leaf bytes)`; interior node: `SHA-256(0x01 ‖ left ‖
//!   right)`. The distinct prefixes stop a leaf from being passed off as an
//!   interior node (second-preimage attacks on the tree).
//! * the empty tree's root is `SHA-256("")` ([`EMPTY_ROOT`]).
//!
//! # Node addressing
//!
//! A *complete* subtree is named `(level, index)` and covers the leaves
//! `[index·2^level, (index+1)·2^level)`; level 0 holds the leaf hashes. A
//! complete subtree's hash never changes once its last leaf is appended, so a
//! store can persist it once, at append time (see [`Frontier::push`]), and
//! serve every later proof from it.
//!
//! Subtrees on the right edge of a tree whose size is not a power of two are
//! *incomplete*; their hashes depend on the tree size and are never stored.
//! They are recomputed here from at most ⌈log₂ n⌉ complete nodes, and any
//! inclusion or consistency proof needs at most one of them, so proof
//! generation reads O(log n) nodes (at most about 2·⌈log₂ n⌉), never the
//! whole tree.
//!
//! # Generation and verification are independent
//!
//! Proof generation follows the recursive definitions of RFC 9162 §2.1.3.1 and
//! §2.1.4.1 (unrolled into loops). Verification implements the iterative
//! algorithms of §2.1.3.2 and §2.1.4.2 exactly as written. The two share only
//! the two hash functions, so a bug in one is caught by tests of the other,
//! and both are checked against the published RFC 6962 test vectors.

use ring::digest;

/// A SHA-256 output: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Domain-separation prefix of a leaf hash.
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash.
const NODE_PREFIX: u8 = 0x01;

/// Why a proof could not be generated or did not verify.
///
/// Messages name sizes and node addresses only: everything in a proof is
/// public, so nothing here can leak a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index out of range for the tree size")]
    InvalidIndex,
    /// The tree sizes are impossible: a consistency proof whose first size
    /// exceeds the second, an empty tree where one is required to be
    /// non-empty, or a frontier whose parts do not fit its size.
    #[error("invalid tree size")]
    InvalidSize,
    /// The proof has more or fewer hashes than RFC 9162 prescribes for these
    /// sizes. Checked before hashing so a truncated or padded proof is named
    /// as such.
    #[error("proof has the wrong number of hashes")]
    WrongLength,
    /// The proof does not lead to the expected root(s): the leaf, the proof
    /// or a root was altered.
    #[error("proof does not match the root hash")]
    Mismatch,
    /// A node source does not hold a complete subtree that the tree size
    /// implies must exist (a gap in the store, or a size beyond its log).
    #[error("missing tree node at level {level}, index {index}")]
    MissingNode {
        /// Level of the missing node (0 = leaves).
        level: u32,
        /// Index of the missing node within its level.
        index: u64,
    },
}

/// The leaf hash of `leaf`: `SHA-256(0x00 ‖ leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[LEAF_PREFIX]);
    ctx.update(leaf);
    finish(ctx)
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[NODE_PREFIX]);
    ctx.update(left);
    ctx.update(right);
    finish(ctx)
}

fn finish(ctx: digest::Context) -> Hash {
    let mut out = [0u8; 32];
    // A SHA-256 digest is always 32 bytes; `zip` keeps this panic-free anyway.
    for (o, b) in out.iter_mut().zip(ctx.finish().as_ref()) {
        *o = *b;
    }
    out
}

/// The largest power of two strictly below `n` (the RFC's split point `k`).
/// Requires `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - n.saturating_sub(1).leading_zeros().min(63))
}

/// The Merkle tree hash (RFC 9162 §2.1.1, `MTH`) of a list of leaf hashes,
/// computed by the RFC's recursive definition.
///
/// O(n) and not incremental: it is the reference against which everything
/// else is tested, and what an offline verifier uses to recompute a root from
/// exported leaves without trusting any stored interior node.
pub fn root_of_leaves(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes {
        [] => EMPTY_ROOT,
        [only] => *only,
        _ => {
            let n = u64::try_from(leaf_hashes.len()).unwrap_or(u64::MAX);
            let k = usize::try_from(split_point(n)).unwrap_or(usize::MAX);
            match leaf_hashes.split_at_checked(k) {
                Some((left, right)) => node_hash(&root_of_leaves(left), &root_of_leaves(right)),
                // Unreachable: 1 <= k < len.
                None => EMPTY_ROOT,
            }
        }
    }
}

/// The right-hand frontier ("compact range") of a tree: the roots of the
/// maximal complete subtrees that make up a tree of `size` leaves, one per set
/// bit of `size`, largest (leftmost) first.
///
/// It is all the state an appender needs: appending is O(log n) and never
/// reads the rest of the tree, and the root is a fold over at most 64 hashes.
/// Persist it with [`Frontier::size`] and [`Frontier::hashes`] and restore it
/// with [`Frontier::from_parts`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// `hashes[i]` is the root of the i-th maximal complete subtree from the
    /// left; `hashes.len() == size.count_ones()`.
    hashes: Vec<Hash>,
}

/// A complete subtree node created by an append: `(level, index, hash)`.
pub type NewNode = (u32, u64, Hash);

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a frontier persisted from [`Frontier::size`] and
    /// [`Frontier::hashes`]. Refuses a hash count that does not match the
    /// size, which would otherwise yield wrong roots silently.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, ProofError> {
        if u64::try_from(hashes.len()).ok() != Some(u64::from(size.count_ones())) {
            return Err(ProofError::InvalidSize);
        }
        Ok(Self { size, hashes })
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The maximal complete subtree roots, leftmost (largest) first; the
    /// subtree for bit `b` of the size (highest first) has level `b`.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends one leaf hash in O(log n) and returns every complete subtree
    /// node this append completed, bottom-up: always the leaf itself at
    /// `(0, old size)`, then each parent whose right edge it closed.
    ///
    /// A store that persists every returned node holds every complete
    /// subtree of the log, which is what [`inclusion_proof`] and
    /// [`consistency_proof`] read. Fails only if the tree already holds
    /// `u64::MAX` leaves.
    pub fn push(&mut self, leaf_hash: Hash) -> Result<Vec<NewNode>, ProofError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(ProofError::InvalidSize)?;
        let mut created = Vec::with_capacity(1 + index.trailing_ones() as usize);
        created.push((0, index, leaf_hash));
        let mut hash = leaf_hash;
        let mut level = 0u32;
        // Each set low bit of the old size is a complete subtree of the same
        // level directly to the left: merge with it and carry upwards.
        while index.checked_shr(level).unwrap_or(0) & 1 == 1 {
            let left = self.hashes.pop().ok_or(ProofError::InvalidSize)?;
            hash = node_hash(&left, &hash);
            level += 1;
            created.push((level, index.checked_shr(level).unwrap_or(0), hash));
        }
        self.hashes.push(hash);
        self.size = new_size;
        Ok(created)
    }

    /// The tree root (RFC 9162 `MTH`) at the current size: the frontier
    /// folded from the right, as the RFC's split at the largest power of two
    /// prescribes.
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        match iter.next() {
            None => EMPTY_ROOT,
            Some(last) => iter.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// Read access to the stored complete subtree hashes of a log.
///
/// Implemented by the database store (and by [`MemoryTree`]). Only complete
/// nodes are ever requested, and only ones that exist in a tree of the size
/// being proved, so a missing node means the store is damaged or the size is
/// beyond the log: report it as [`ProofError::MissingNode`].
pub trait NodeSource {
    /// The hash of the complete subtree `(level, index)`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError>;
}

/// The Merkle tree hash of leaves `[start, end)`, where `start` is a multiple
/// of the smallest power of two ≥ `end - start` (every subtree the RFC's
/// recursions visit has this shape). Decomposes the range into maximal
/// aligned complete subtrees (at most one per bit of the width) and folds
/// them from the right, exactly as `MTH` splits: O(log n) node reads, and a
/// single read when the range is itself a complete subtree.
fn range_hash(src: &dyn NodeSource, start: u64, end: u64) -> Result<Hash, ProofError> {
    if start >= end {
        return Err(ProofError::InvalidSize);
    }
    let mut parts: Vec<Hash> = Vec::new();
    let mut pos = start;
    let mut prev_level = u32::MAX;
    while pos < end {
        let width = end - pos;
        let max_by_width = 63 - width.leading_zeros();
        let level = pos.trailing_zeros().min(max_by_width);
        // Levels must strictly decrease for the fold to be the RFC's MTH; a
        // misaligned range would otherwise hash to something meaningless.
        if level >= prev_level {
            return Err(ProofError::InvalidSize);
        }
        prev_level = level;
        parts.push(src.node(level, pos >> level)?);
        pos += 1u64 << level;
    }
    let mut iter = parts.iter().rev();
    match iter.next() {
        None => Err(ProofError::InvalidSize),
        Some(last) => Ok(iter.fold(*last, |acc, left| node_hash(left, &acc))),
    }
}

/// The root of the tree of the first `tree_size` leaves held by `src`, from at
/// most ⌈log₂ n⌉ node reads. Used to check a stored checkpoint against the
/// stored tree, and to answer for past sizes.
pub fn root_from_source(src: &dyn NodeSource, tree_size: u64) -> Result<Hash, ProofError> {
    if tree_size == 0 {
        return Ok(EMPTY_ROOT);
    }
    range_hash(src, 0, tree_size)
}

/// The inclusion proof (audit path, RFC 9162 §2.1.3.1 `PATH`) of leaf `index`
/// in the tree of the first `tree_size` leaves, bottom-up.
///
/// Reads one complete node per level plus, for the single right-edge sibling
/// that may be incomplete, up to ⌈log₂ n⌉ more: O(log n) reads.
pub fn inclusion_proof(
    src: &dyn NodeSource,
    index: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= tree_size {
        return Err(ProofError::InvalidIndex);
    }
    // Walk down from the root; PATH lists the deepest sibling first, so the
    // siblings collected top-down are reversed at the end.
    let mut siblings = Vec::new();
    let (mut lo, mut hi) = (0u64, tree_size);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            siblings.push(range_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            siblings.push(range_hash(src, lo, lo + k)?);
            lo += k;
        }
    }
    siblings.reverse();
    Ok(siblings)
}

/// The consistency proof (RFC 9162 §2.1.4.1 `PROOF`/`SUBPROOF`) that the tree
/// of `second` leaves extends the tree of `first` leaves.
///
/// Empty when `first == second` or `first == 0` (every tree extends the empty
/// tree and itself); `first > second` is [`ProofError::InvalidSize`]. O(log n)
/// node reads, as for [`inclusion_proof`].
pub fn consistency_proof(
    src: &dyn NodeSource,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, ProofError> {
    if first > second {
        return Err(ProofError::InvalidSize);
    }
    if first == 0 || first == second {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled: each step appends one sibling after
    // the sub-proof, so siblings are collected top-down and reversed.
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0u64, second);
    // `b` of the RFC: true while the current subtree is a prefix of the old
    // tree's own left spine, whose hash the verifier already knows.
    let mut on_left_spine = true;
    while first != hi {
        let k = split_point(hi - lo);
        if first <= lo + k {
            out.push(range_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            out.push(range_hash(src, lo, lo + k)?);
            lo += k;
            on_left_spine = false;
        }
    }
    if !on_left_spine {
        out.push(range_hash(src, lo, hi)?);
    }
    out.reverse();
    Ok(out)
}

/// Bit length of `x` (0 for 0), as Go's `bits.Len64`.
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// The number of hashes in an inclusion proof for `index` in a tree of
/// `size` leaves (`index < size`): one per level below the point where the
/// paths to `index` and to the last leaf diverge, plus one per left sibling
/// above it.
fn inclusion_proof_len(index: u64, size: u64) -> u64 {
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    u64::from(inner) + u64::from(border)
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `tree_size` leaves
/// whose root is `root`, with the algorithm of RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // 1. If leaf_index is greater than or equal to tree_size, fail.
    if index >= tree_size {
        return Err(ProofError::InvalidIndex);
    }
    if u64::try_from(proof.len()).ok() != Some(inclusion_proof_len(index, tree_size)) {
        return Err(ProofError::WrongLength);
    }
    // 2. fn = leaf_index, sn = tree_size - 1.
    let mut fnode = index;
    let mut snode = tree_size - 1;
    // 3. r = hash.
    let mut r = *leaf_hash;
    // 4. For each value p in the inclusion_path array:
    for p in proof {
        // a. If sn is 0, stop the iteration and fail the proof verification.
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fnode & 1 == 1 || fnode == snode {
            // 1. Set r to HASH(0x01 || p || r).
            r = node_hash(p, &r);
            // 2. If LSB(fn) is not set, right-shift fn and sn equally until
            //    either LSB(fn) is set or fn is 0.
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            // Otherwise: set r to HASH(0x01 || r || p).
            r = node_hash(&r, p);
        }
        // c. Finally, right-shift both fn and sn one time.
        fnode >>= 1;
        snode >>= 1;
    }
    // 5. Compare r against root; if sn is 0 and they are equal, verified.
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

/// Verifies that the tree of `second` leaves with root `second_root` extends
/// the tree of `first` leaves with root `first_root`, with the algorithm of
/// RFC 9162 §2.1.4.2.
///
/// The RFC algorithm covers `0 < first < second`. The edge cases are decided
/// as strictly as possible: `first == second` needs an empty proof and equal
/// roots; `first == 0` needs an empty proof and `first_root` equal to
/// [`EMPTY_ROOT`] (so a wrong "empty" root is caught, not waved through).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::InvalidSize);
    }
    if first == 0 || first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        if first == 0 && *first_root != EMPTY_ROOT {
            return Err(ProofError::Mismatch);
        }
        if first == second && first_root != second_root {
            return Err(ProofError::Mismatch);
        }
        return Ok(());
    }
    // Expected length: the inclusion proof of the old tree's last complete
    // subtree (at level `shift`) in the new tree, plus that subtree's own
    // hash unless it is the whole old tree.
    let shift = first.trailing_zeros();
    let first_is_pow2 = first.is_power_of_two();
    let want = inclusion_proof_len((first - 1) >> shift, ((second - 1) >> shift) + 1)
        + u64::from(!first_is_pow2);
    if u64::try_from(proof.len()).ok() != Some(want) {
        return Err(ProofError::WrongLength);
    }
    // 1. If consistency_path is an empty array, stop and fail.
    // 2. If first is an exact power of 2, prepend first_hash to the path.
    let mut path = proof.iter();
    let seed = if first_is_pow2 {
        first_root
    } else {
        path.next().ok_or(ProofError::WrongLength)?
    };
    // 3. fn = first - 1, sn = second - 1.
    let mut fnode = first - 1;
    let mut snode = second - 1;
    // 4. If LSB(fn) is set, right-shift fn and sn equally until it is not.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // 5. Set both fr and sr to the first value in the consistency_path.
    let mut fr = *seed;
    let mut sr = *seed;
    // 6. For each subsequent value c in the consistency_path array:
    for c in path {
        // a. If sn is 0, stop the iteration and fail.
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fnode & 1 == 1 || fnode == snode {
            // 1. fr = HASH(0x01 || c || fr); 2. sr = HASH(0x01 || c || sr).
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            // 3. If LSB(fn) is not set, right-shift fn and sn equally until
            //    either LSB(fn) is set or fn is 0.
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            // Otherwise: sr = HASH(0x01 || sr || c).
            sr = node_hash(&sr, c);
        }
        // c. Finally, right-shift both fn and sn one time.
        fnode >>= 1;
        snode >>= 1;
    }
    // 7. fr must equal first_hash, sr must equal second_hash, sn must be 0.
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *first_root || sr != *second_root {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

/// An in-memory log holding every complete subtree node.
///
/// The reference [`NodeSource`] for tests, and what the offline verifier
/// builds from exported leaves so that it can answer proofs without a
/// database. Memory is about 2·n hashes.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of the complete node `(l, i)`.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of the given leaf hashes, appended in order.
    pub fn from_leaf_hashes(leaf_hashes: &[Hash]) -> Result<Self, ProofError> {
        let mut tree = Self::new();
        for h in leaf_hashes {
            tree.push(*h)?;
        }
        Ok(tree)
    }

    /// Appends a leaf hash, storing every node the append completes.
    pub fn push(&mut self, leaf_hash: Hash) -> Result<(), ProofError> {
        for (level, index, hash) in self.frontier.push(leaf_hash)? {
            let lvl = usize::try_from(level).map_err(|_| ProofError::InvalidSize)?;
            while self.levels.len() <= lvl {
                self.levels.push(Vec::new());
            }
            let row = self
                .levels
                .get_mut(lvl)
                .ok_or(ProofError::MissingNode { level, index })?;
            // Nodes of a level complete strictly left to right.
            if u64::try_from(row.len()).ok() != Some(index) {
                return Err(ProofError::MissingNode { level, index });
            }
            row.push(hash);
        }
        Ok(())
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The frontier (as an appender would persist it).
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }
}

impl NodeSource for MemoryTree {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        let missing = ProofError::MissingNode { level, index };
        let lvl = usize::try_from(level).map_err(|_| missing)?;
        let idx = usize::try_from(index).map_err(|_| missing)?;
        self.levels
            .get(lvl)
            .and_then(|row| row.get(idx))
            .copied()
            .ok_or(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let d = digest::digest(&digest::SHA256, b"");
        assert_eq!(d.as_ref(), &EMPTY_ROOT[..]);
        assert_eq!(root_of_leaves(&[]), EMPTY_ROOT);
        assert_eq!(Frontier::new().root(), EMPTY_ROOT);
    }

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        for (n, k) in [
            (2u64, 1u64),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 40, 1 << 39),
        ] {
            assert_eq!(split_point(n), k, "n={n}");
        }
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn push_reports_completed_nodes() {
        let mut f = Frontier::new();
        let h = |i: u8| leaf_hash(&[i]);
        assert_eq!(f.push(h(0)).unwrap(), vec![(0, 0, h(0))]);
        let n01 = node_hash(&h(0), &h(1));
        assert_eq!(f.push(h(1)).unwrap(), vec![(0, 1, h(1)), (1, 0, n01)]);
        assert_eq!(f.push(h(2)).unwrap(), vec![(0, 2, h(2))]);
        let n23 = node_hash(&h(2), &h(3));
        let n0123 = node_hash(&n01, &n23);
        assert_eq!(
            f.push(h(3)).unwrap(),
            vec![(0, 3, h(3)), (1, 1, n23), (2, 0, n0123)]
        );
        assert_eq!(f.hashes(), &[n0123]);
    }

    #[test]
    fn fail_frontier_parts_must_match_size() {
        assert_eq!(
            Frontier::from_parts(3, vec![EMPTY_ROOT]),
            Err(ProofError::InvalidSize)
        );
        assert!(Frontier::from_parts(3, vec![EMPTY_ROOT; 2]).is_ok());
        let mut full = Frontier::from_parts(u64::MAX, vec![EMPTY_ROOT; 64]).unwrap();
        assert_eq!(full.push(EMPTY_ROOT), Err(ProofError::InvalidSize));
    }

    #[test]
    fn fail_misaligned_range_is_refused() {
        let t = MemoryTree::from_leaf_hashes(&[EMPTY_ROOT; 8]).unwrap();
        assert_eq!(range_hash(&t, 1, 4), Err(ProofError::InvalidSize));
        assert_eq!(range_hash(&t, 2, 2), Err(ProofError::InvalidSize));
        assert!(range_hash(&t, 4, 7).is_ok());
    }

    #[test]
    fn fail_missing_node_is_named() {
        let t = MemoryTree::from_leaf_hashes(&[EMPTY_ROOT; 5]).unwrap();
        assert_eq!(
            inclusion_proof(&t, 0, 6),
            Err(ProofError::MissingNode { level: 1, index: 2 })
        );
        assert_eq!(
            root_from_source(&t, 6),
            Err(ProofError::MissingNode { level: 1, index: 2 })
        );
    }
}

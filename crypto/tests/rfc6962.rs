//! Known-answer tests of `vault_crypto::merkle` against the published RFC 6962
//! test vectors, with negative (`fail_*`) cases and property tests.
//!
//! Sources of the vectors (see `vectors/rfc6962.json` and its generator
//! `vectors/gen_rfc6962_vectors.py`):
//!
//! * transparency-dev/merkle `testonly/constants.go`: the 8 reference leaves,
//!   the hash of every complete subtree (`NodeHashes`) and the root of every
//!   size 0..=8 (`RootHashes`);
//! * transparency-dev/merkle `proof/verify_test.go`: the `inclusionProofs` and
//!   `consistencyProofs` tables, and the corruptions of `corruptInclusionProof`
//!   and `corruptConsistencyProof` that the `fail_*` tests below mirror;
//! * transparency-dev/merkle `proof/proof_test.go`: the node-address shapes of
//!   proofs in trees of 7, 8, 15, 31 and 95 leaves (`TestInclusion`,
//!   `TestConsistency`), used for trees bigger than the reference tree;
//! * the full (index, size) and (m, n) tables for the reference tree are
//!   derived by the generator from the RFC 6962 §2.1 definitions, after it
//!   reproduces every published value above.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use serde::Deserialize;
use vault_crypto::merkle::{
    EMPTY_ROOT, Frontier, Hash, MemoryTree, NodeSource, ProofError, consistency_proof,
    inclusion_proof, leaf_hash, node_hash, root_from_source, root_of_leaves, verify_consistency,
    verify_inclusion,
};

const VECTORS: &str = include_str!("vectors/rfc6962.json");

#[derive(Deserialize)]
struct Vectors {
    leaves: Vec<String>,
    leaf_hashes: Vec<String>,
    nodes: Vec<Vec<String>>,
    roots: Vec<String>,
    published_inclusion: Vec<Inclusion>,
    published_consistency: Vec<Consistency>,
    inclusion: Vec<Inclusion>,
    consistency: Vec<Consistency>,
}

#[derive(Deserialize)]
struct Inclusion {
    index: u64,
    size: u64,
    path: Vec<String>,
}

#[derive(Deserialize)]
struct Consistency {
    first: u64,
    second: u64,
    proof: Vec<String>,
}

fn vectors() -> Vectors {
    serde_json::from_str(VECTORS).unwrap()
}

fn h(s: &str) -> Hash {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).unwrap();
    out
}

fn hs(v: &[String]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

fn leaf_hashes(v: &Vectors) -> Vec<Hash> {
    v.leaves
        .iter()
        .map(|l| leaf_hash(&hex::decode(l).unwrap()))
        .collect()
}

fn root(v: &Vectors, size: u64) -> Hash {
    h(&v.roots[size as usize])
}

/// A tree of `n` synthetic leaves (leaf i = i as 8 big-endian bytes).
fn synthetic(n: u64) -> (MemoryTree, Vec<Hash>) {
    let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    (MemoryTree::from_leaf_hashes(&leaves).unwrap(), leaves)
}

// --- Known answers ------------------------------------------------------------

#[test]
fn kat_leaf_hashes_and_nodes() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    assert_eq!(leaves, hs(&v.leaf_hashes));
    assert_eq!(leaves, hs(&v.nodes[0]));
    // Every complete subtree the frontier reports equals the published one,
    // and every published one is reported.
    let mut f = Frontier::new();
    let mut seen = 0;
    for l in &leaves {
        for (level, index, hash) in f.push(*l).unwrap() {
            assert_eq!(hash, h(&v.nodes[level as usize][index as usize]));
            seen += 1;
        }
    }
    assert_eq!(seen, v.nodes.iter().map(Vec::len).sum::<usize>());
    let tree = MemoryTree::from_leaf_hashes(&leaves).unwrap();
    for (level, row) in v.nodes.iter().enumerate() {
        for (index, want) in row.iter().enumerate() {
            assert_eq!(tree.node(level as u32, index as u64).unwrap(), h(want));
        }
    }
}

#[test]
fn kat_roots_every_size() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    let full = MemoryTree::from_leaf_hashes(&leaves).unwrap();
    let mut f = Frontier::new();
    assert_eq!(root(&v, 0), EMPTY_ROOT);
    assert_eq!(f.root(), EMPTY_ROOT);
    for size in 0..=8u64 {
        let want = root(&v, size);
        assert_eq!(
            root_of_leaves(&leaves[..size as usize]),
            want,
            "size {size}"
        );
        assert_eq!(root_from_source(&full, size).unwrap(), want, "size {size}");
        let exact = MemoryTree::from_leaf_hashes(&leaves[..size as usize]).unwrap();
        assert_eq!(exact.root(), want);
        assert_eq!(root_from_source(&exact, size).unwrap(), want);
        // A frontier restored from its persisted parts gives the same root.
        let restored = Frontier::from_parts(f.size(), f.hashes().to_vec()).unwrap();
        assert_eq!(restored.root(), want);
        assert_eq!(f.root(), want);
        if size < 8 {
            f.push(leaves[size as usize]).unwrap();
        }
    }
}

#[test]
fn kat_published_inclusion_proofs() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    let tree = MemoryTree::from_leaf_hashes(&leaves).unwrap();
    assert_eq!(v.published_inclusion.len(), 4);
    for c in &v.published_inclusion {
        let path = hs(&c.path);
        assert_eq!(inclusion_proof(&tree, c.index, c.size).unwrap(), path);
        verify_inclusion(
            &leaves[c.index as usize],
            c.index,
            c.size,
            &path,
            &root(&v, c.size),
        )
        .unwrap();
    }
}

#[test]
fn kat_published_consistency_proofs() {
    let v = vectors();
    let tree = MemoryTree::from_leaf_hashes(&leaf_hashes(&v)).unwrap();
    assert_eq!(v.published_consistency.len(), 5);
    for c in &v.published_consistency {
        let proof = hs(&c.proof);
        assert_eq!(consistency_proof(&tree, c.first, c.second).unwrap(), proof);
        verify_consistency(
            c.first,
            c.second,
            &root(&v, c.first),
            &root(&v, c.second),
            &proof,
        )
        .unwrap();
    }
}

#[test]
fn kat_every_inclusion_proof() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    let full = MemoryTree::from_leaf_hashes(&leaves).unwrap();
    assert_eq!(v.inclusion.len(), 36); // every 0 <= index < size <= 8
    for c in &v.inclusion {
        let path = hs(&c.path);
        // From the stored tree of 8 (a past size) and from a tree of exactly
        // that size: the stored complete nodes serve every past size.
        let exact = MemoryTree::from_leaf_hashes(&leaves[..c.size as usize]).unwrap();
        assert_eq!(inclusion_proof(&full, c.index, c.size).unwrap(), path);
        assert_eq!(inclusion_proof(&exact, c.index, c.size).unwrap(), path);
        verify_inclusion(
            &leaves[c.index as usize],
            c.index,
            c.size,
            &path,
            &root(&v, c.size),
        )
        .unwrap_or_else(|e| panic!("({}, {}): {e}", c.index, c.size));
    }
}

#[test]
fn kat_every_consistency_proof() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    let full = MemoryTree::from_leaf_hashes(&leaves).unwrap();
    assert_eq!(v.consistency.len(), 36); // every 1 <= m <= n <= 8
    for c in &v.consistency {
        let proof = hs(&c.proof);
        let exact = MemoryTree::from_leaf_hashes(&leaves[..c.second as usize]).unwrap();
        assert_eq!(consistency_proof(&full, c.first, c.second).unwrap(), proof);
        assert_eq!(consistency_proof(&exact, c.first, c.second).unwrap(), proof);
        verify_consistency(
            c.first,
            c.second,
            &root(&v, c.first),
            &root(&v, c.second),
            &proof,
        )
        .unwrap_or_else(|e| panic!("({}, {}): {e}", c.first, c.second));
    }
}

/// Node-address shapes from transparency-dev/merkle `proof/proof_test.go`:
/// `(level, index)` nodes, where the run `rehash` (if any) is folded into one
/// hash, each later node being the left sibling of the fold so far (Go's
/// `Nodes.Rehash`).
struct Shape {
    ids: &'static [(u32, u64)],
    rehash: Option<(usize, usize)>,
}

fn expected_from_shape(tree: &MemoryTree, s: &Shape) -> Vec<Hash> {
    let hashes: Vec<Hash> = s
        .ids
        .iter()
        .map(|&(l, i)| tree.node(l, i).unwrap())
        .collect();
    match s.rehash {
        None => hashes,
        Some((begin, end)) => {
            let mut out = hashes[..begin].to_vec();
            let mut acc = hashes[begin];
            for left in &hashes[begin + 1..end] {
                acc = node_hash(left, &acc);
            }
            out.push(acc);
            out.extend_from_slice(&hashes[end..]);
            out
        }
    }
}

#[test]
fn kat_published_inclusion_shapes() {
    let (tree, leaves) = synthetic(95);
    #[rustfmt::skip]
    let cases: &[(u64, u64, Shape)] = &[
        (7, 0, Shape { ids: &[(0, 1), (1, 1), (0, 6), (1, 2)], rehash: Some((2, 4)) }),
        (7, 2, Shape { ids: &[(0, 3), (1, 0), (0, 6), (1, 2)], rehash: Some((2, 4)) }),
        (7, 4, Shape { ids: &[(0, 5), (0, 6), (2, 0)], rehash: None }),
        (7, 6, Shape { ids: &[(1, 2), (2, 0)], rehash: None }),
        (5, 3, Shape { ids: &[(0, 2), (1, 0), (0, 4)], rehash: None }),
        (6, 4, Shape { ids: &[(0, 5), (2, 0)], rehash: None }),
        (15, 10, Shape { ids: &[(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)], rehash: Some((2, 4)) }),
        (31, 24, Shape { ids: &[(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)], rehash: Some((2, 4)) }),
        (95, 81, Shape { ids: &[(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)], rehash: Some((3, 6)) }),
    ];
    for (size, index, shape) in cases {
        let want = expected_from_shape(&tree, shape);
        assert_eq!(
            inclusion_proof(&tree, *index, *size).unwrap(),
            want,
            "{size}:{index}"
        );
        let root = root_of_leaves(&leaves[..*size as usize]);
        verify_inclusion(&leaves[*index as usize], *index, *size, &want, &root).unwrap();
    }
}

#[test]
fn kat_published_consistency_shapes() {
    let (tree, leaves) = synthetic(95);
    #[rustfmt::skip]
    let cases: &[(u64, u64, Shape)] = &[
        (1, 2, Shape { ids: &[(0, 1)], rehash: None }),
        (1, 4, Shape { ids: &[(0, 1), (1, 1)], rehash: None }),
        (1, 6, Shape { ids: &[(0, 1), (1, 1), (1, 2)], rehash: None }),
        (2, 3, Shape { ids: &[(0, 2)], rehash: None }),
        (2, 8, Shape { ids: &[(1, 1), (2, 1)], rehash: None }),
        (3, 7, Shape { ids: &[(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)], rehash: Some((3, 5)) }),
        (4, 7, Shape { ids: &[(0, 6), (1, 2)], rehash: Some((0, 2)) }),
        (5, 7, Shape { ids: &[(0, 4), (0, 5), (0, 6), (2, 0)], rehash: None }),
        (6, 7, Shape { ids: &[(1, 2), (0, 6), (2, 0)], rehash: None }),
        (7, 8, Shape { ids: &[(0, 6), (0, 7), (1, 2), (2, 0)], rehash: None }),
        (2, 4, Shape { ids: &[(1, 1)], rehash: None }),
        (3, 5, Shape { ids: &[(0, 2), (0, 3), (1, 0), (0, 4)], rehash: None }),
        (3, 6, Shape { ids: &[(0, 2), (0, 3), (1, 0), (1, 2)], rehash: None }),
        (4, 6, Shape { ids: &[(1, 2)], rehash: None }),
        (1, 7, Shape { ids: &[(0, 1), (1, 1), (0, 6), (1, 2)], rehash: Some((2, 4)) }),
        (10, 15, Shape { ids: &[(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)], rehash: Some((2, 4)) }),
        (24, 31, Shape { ids: &[(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)], rehash: Some((1, 4)) }),
        (81, 95, Shape { ids: &[(0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)], rehash: Some((4, 7)) }),
    ];
    for (first, second, shape) in cases {
        let want = expected_from_shape(&tree, shape);
        assert_eq!(
            consistency_proof(&tree, *first, *second).unwrap(),
            want,
            "{first}:{second}"
        );
        let r1 = root_of_leaves(&leaves[..*first as usize]);
        let r2 = root_of_leaves(&leaves[..*second as usize]);
        verify_consistency(*first, *second, &r1, &r2, &want).unwrap();
    }
}

// --- Edge cases (transparency-dev/merkle TestVerifyInclusion, TestVerifyConsistency)

#[test]
fn edge_single_leaf_and_empty_trees() {
    let leaf = leaf_hash(b"data");
    verify_inclusion(&leaf, 0, 1, &[], &leaf).unwrap();
    assert_eq!(
        verify_inclusion(&leaf, 0, 1, &[], &EMPTY_ROOT),
        Err(ProofError::Mismatch)
    );
    for (index, size) in [(0, 0), (1, 0), (2, 1), (1, 1)] {
        assert_eq!(
            verify_inclusion(&leaf, index, size, &[], &leaf),
            Err(ProofError::InvalidIndex)
        );
    }
    let (tree, _) = synthetic(4);
    assert_eq!(inclusion_proof(&tree, 0, 0), Err(ProofError::InvalidIndex));
    assert_eq!(inclusion_proof(&tree, 4, 4), Err(ProofError::InvalidIndex));
    assert_eq!(root_from_source(&tree, 0).unwrap(), EMPTY_ROOT);

    let r1 = [1u8; 32];
    let r2 = [2u8; 32];
    // Always consistent: equal sizes with equal roots, and the empty tree.
    verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]).unwrap();
    verify_consistency(0, 1, &EMPTY_ROOT, &r2, &[]).unwrap();
    verify_consistency(1, 1, &r2, &r2, &[]).unwrap();
    assert_eq!(consistency_proof(&tree, 0, 4).unwrap(), Vec::<Hash>::new());
    assert_eq!(consistency_proof(&tree, 4, 4).unwrap(), Vec::<Hash>::new());
    // Roots differ at equal sizes; a non-empty proof where none is due; a
    // wrong root for the empty tree (stricter than Go, which ignores it).
    assert_eq!(
        verify_consistency(1, 1, &r1, &r2, &[]),
        Err(ProofError::Mismatch)
    );
    assert_eq!(
        verify_consistency(0, 0, &r1, &r1, &[]),
        Err(ProofError::Mismatch)
    );
    assert_eq!(
        verify_consistency(0, 1, &r1, &r2, &[]),
        Err(ProofError::Mismatch)
    );
    for (m, n) in [(0, 0), (0, 1), (1, 1)] {
        assert_eq!(
            verify_consistency(m, n, &EMPTY_ROOT, &EMPTY_ROOT, &[EMPTY_ROOT]),
            Err(ProofError::WrongLength)
        );
    }
    // Time travel to the past, and an empty proof for a real extension.
    assert_eq!(
        verify_consistency(1, 0, &r1, &r2, &[]),
        Err(ProofError::InvalidSize)
    );
    assert_eq!(
        verify_consistency(2, 1, &r1, &r2, &[]),
        Err(ProofError::InvalidSize)
    );
    assert_eq!(
        verify_consistency(1, 2, &r1, &r2, &[]),
        Err(ProofError::WrongLength)
    );
    assert_eq!(consistency_proof(&tree, 3, 2), Err(ProofError::InvalidSize));
}

// --- fail_*: every corruption of every reference-tree proof must fail --------

fn flip(h: &Hash, bit: u8) -> Hash {
    let mut out = *h;
    out[0] ^= bit;
    out
}

fn some_hash() -> Hash {
    h("abacaba000000000000000000000000000000000000000000060061e00123456")
}

#[test]
fn fail_flipped_inclusion_proof_hash() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    for c in &v.inclusion {
        let path = hs(&c.path);
        let root = root(&v, c.size);
        for i in 0..path.len() {
            let mut bad = path.clone();
            bad[i] = flip(&bad[i], 8);
            assert_eq!(
                verify_inclusion(&leaves[c.index as usize], c.index, c.size, &bad, &root),
                Err(ProofError::Mismatch),
                "({}, {}) element {i}",
                c.index,
                c.size
            );
        }
    }
}

#[test]
fn fail_wrong_inclusion_index() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    for c in &v.inclusion {
        let path = hs(&c.path);
        let leaf = leaves[c.index as usize];
        let root = root(&v, c.size);
        for index in [c.index.wrapping_sub(1), c.index + 1, c.index ^ 2] {
            if index != c.index {
                assert!(
                    verify_inclusion(&leaf, index, c.size, &path, &root).is_err(),
                    "({}, {}) as index {index}",
                    c.index,
                    c.size
                );
            }
        }
    }
}

#[test]
fn fail_wrong_inclusion_size() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    for c in &v.inclusion {
        let path = hs(&c.path);
        let leaf = leaves[c.index as usize];
        let root = root(&v, c.size);
        // Go's corruptions. (Neighbouring sizes can share a proof shape, e.g.
        // (0, 3) and (0, 4): the root, bound to its size by the signed
        // checkpoint, is what tells them apart, not the proof.)
        for size in [c.size * 2, c.size / 2] {
            if size != c.size {
                assert!(
                    verify_inclusion(&leaf, c.index, size, &path, &root).is_err(),
                    "({}, {}) as size {size}",
                    c.index,
                    c.size
                );
            }
        }
    }
}

#[test]
fn fail_wrong_inclusion_leaf_or_root() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    for c in &v.inclusion {
        let path = hs(&c.path);
        let leaf = leaves[c.index as usize];
        let root = root(&v, c.size);
        let wrong_leaf = leaf_hash(b"WrongLeaf");
        assert!(verify_inclusion(&wrong_leaf, c.index, c.size, &path, &root).is_err());
        assert!(verify_inclusion(&leaf, c.index, c.size, &path, &EMPTY_ROOT).is_err());
        assert!(verify_inclusion(&leaf, c.index, c.size, &path, &some_hash()).is_err());
        // The raw leaf bytes instead of the leaf hash (a missing 0x00 prefix).
        let unprefixed = h(&hex::encode(
            ring::digest::digest(
                &ring::digest::SHA256,
                &hex::decode(&v.leaves[c.index as usize]).unwrap(),
            )
            .as_ref(),
        ));
        assert!(verify_inclusion(&unprefixed, c.index, c.size, &path, &root).is_err());
    }
}

#[test]
fn fail_truncated_or_extended_inclusion_proof() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    for c in &v.inclusion {
        let path = hs(&c.path);
        let leaf = leaves[c.index as usize];
        let root = root(&v, c.size);
        let wrong_len = |p: &[Hash]| {
            assert_eq!(
                verify_inclusion(&leaf, c.index, c.size, p, &root),
                Err(ProofError::WrongLength),
                "({}, {}) len {}",
                c.index,
                c.size,
                p.len()
            );
        };
        // Trailing and preceding garbage, root appended or prepended.
        for extra in [[0u8; 32], root, some_hash()] {
            let mut longer = path.clone();
            longer.push(extra);
            wrong_len(&longer);
            let mut longer = vec![extra];
            longer.extend_from_slice(&path);
            wrong_len(&longer);
        }
        if !path.is_empty() {
            wrong_len(&path[..path.len() - 1]);
            wrong_len(&path[1..]);
        }
        if path.len() > 1 {
            // Inserted component: same length as a valid one plus one.
            let mut inserted = vec![path[0], some_hash()];
            inserted.extend_from_slice(&path[1..]);
            wrong_len(&inserted);
            // Swapped components: right length, wrong hashes.
            let mut swapped = path.clone();
            swapped.swap(0, 1);
            if swapped != path {
                assert_eq!(
                    verify_inclusion(&leaf, c.index, c.size, &swapped, &root),
                    Err(ProofError::Mismatch)
                );
            }
        }
    }
}

#[test]
fn fail_swapped_leaves() {
    let v = vectors();
    let leaves = leaf_hashes(&v);
    // Another leaf presented at this index with this index's proof.
    for c in &v.inclusion {
        let path = hs(&c.path);
        let root = root(&v, c.size);
        for other in 0..c.size {
            if other != c.index {
                assert_eq!(
                    verify_inclusion(&leaves[other as usize], c.index, c.size, &path, &root),
                    Err(ProofError::Mismatch)
                );
            }
        }
    }
    // Two leaves swapped in the log change every root that covers both, and
    // the honest consistency proof from before the swap no longer verifies.
    let full = MemoryTree::from_leaf_hashes(&leaves).unwrap();
    for a in 0..8usize {
        for b in a + 1..8 {
            let mut swapped = leaves.clone();
            swapped.swap(a, b);
            let tampered = MemoryTree::from_leaf_hashes(&swapped).unwrap();
            assert_ne!(tampered.root(), full.root(), "swap {a},{b}");
            let first = b as u64 + 1;
            if first < 8 {
                let proof = consistency_proof(&full, first, 8).unwrap();
                assert!(
                    verify_consistency(first, 8, &root(&v, first), &tampered.root(), &proof)
                        .is_err()
                );
            }
        }
    }
}

#[test]
fn fail_corrupted_consistency_proofs() {
    let v = vectors();
    for c in &v.consistency {
        if c.first == c.second {
            continue;
        }
        let proof = hs(&c.proof);
        let (m, n) = (c.first, c.second);
        let (r1, r2) = (root(&v, m), root(&v, n));
        let fails = |m: u64, n: u64, r1: &Hash, r2: &Hash, p: &[Hash], what: &str| {
            assert!(
                verify_consistency(m, n, r1, r2, p).is_err(),
                "({}, {}) {what}",
                c.first,
                c.second
            );
        };
        // Wrong sizes.
        fails(m - 1, n, &r1, &r2, &proof, "size1 - 1");
        fails(m + 1, n, &r1, &r2, &proof, "size1 + 1");
        if m ^ 2 != m {
            fails(m ^ 2, n, &r1, &r2, &proof, "size1 ^ 2");
        }
        fails(m, n * 2, &r1, &r2, &proof, "size2 * 2");
        fails(m, n / 2, &r1, &r2, &proof, "size2 / 2");
        // Wrong or swapped roots.
        fails(m, n, &some_hash(), &r2, &proof, "wrong root1");
        fails(m, n, &r1, &some_hash(), &proof, "wrong root2");
        fails(m, n, &r2, &r1, &proof, "swapped roots");
        // Empty, extended, prepended, truncated.
        fails(m, n, &r1, &r2, &[], "empty proof");
        for extra in [[0u8; 32], r1, r2] {
            let mut longer = proof.clone();
            longer.push(extra);
            fails(m, n, &r1, &r2, &longer, "trailing");
            let mut longer = vec![extra];
            longer.extend_from_slice(&proof);
            fails(m, n, &r1, &r2, &longer, "preceding");
        }
        let mut dup = vec![proof[0]];
        dup.extend_from_slice(&proof);
        fails(m, n, &r1, &r2, &dup, "preceding proof[0]");
        fails(m, n, &r1, &r2, &proof[..proof.len() - 1], "truncated");
        assert_eq!(
            verify_consistency(m, n, &r1, &r2, &proof[..proof.len() - 1]),
            Err(ProofError::WrongLength)
        );
        // Every single element flipped.
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i] = flip(&bad[i], 16);
            assert_eq!(
                verify_consistency(m, n, &r1, &r2, &bad),
                Err(ProofError::Mismatch),
                "({m}, {n}) element {i}"
            );
        }
    }
}

// --- Exhaustive small trees and properties -----------------------------------

/// Every proof in every tree up to 64 leaves, generated from one stored tree,
/// verifies; each flipped element fails.
#[test]
fn exhaustive_up_to_64() {
    let (tree, leaves) = synthetic(64);
    let roots: Vec<Hash> = (0..=64).map(|n| root_of_leaves(&leaves[..n])).collect();
    for n in 1..=64u64 {
        assert_eq!(root_from_source(&tree, n).unwrap(), roots[n as usize]);
        for i in 0..n {
            let p = inclusion_proof(&tree, i, n).unwrap();
            verify_inclusion(&leaves[i as usize], i, n, &p, &roots[n as usize]).unwrap();
            for k in 0..p.len() {
                let mut bad = p.clone();
                bad[k] = flip(&bad[k], 1);
                assert!(
                    verify_inclusion(&leaves[i as usize], i, n, &bad, &roots[n as usize]).is_err()
                );
            }
        }
        for m in 0..=n {
            let p = consistency_proof(&tree, m, n).unwrap();
            verify_consistency(m, n, &roots[m as usize], &roots[n as usize], &p)
                .unwrap_or_else(|e| panic!("({m}, {n}): {e}"));
            for k in 0..p.len() {
                let mut bad = p.clone();
                bad[k] = flip(&bad[k], 1);
                assert!(
                    verify_consistency(m, n, &roots[m as usize], &roots[n as usize], &bad).is_err()
                );
            }
        }
    }
}

/// Counts node reads, to hold proof generation to its O(log n) bound.
struct Counting<'a> {
    inner: &'a MemoryTree,
    reads: std::cell::Cell<u64>,
}

impl NodeSource for Counting<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, ProofError> {
        self.reads.set(self.reads.get() + 1);
        self.inner.node(level, index)
    }
}

#[test]
fn proofs_read_o_log_n_nodes() {
    let (tree, _) = synthetic(1000);
    let src = Counting {
        inner: &tree,
        reads: std::cell::Cell::new(0),
    };
    let bound = |n: u64| 2 * u64::from(64 - (n - 1).leading_zeros()) + 1;
    for n in [1u64, 2, 3, 7, 100, 511, 999, 1000] {
        for i in [0, n / 3, n - 1] {
            src.reads.set(0);
            inclusion_proof(&src, i, n).unwrap();
            assert!(
                src.reads.get() <= bound(n),
                "inclusion {i}/{n}: {}",
                src.reads.get()
            );
        }
        for m in [1, n / 2, n - 1] {
            src.reads.set(0);
            consistency_proof(&src, m.max(1), n).unwrap();
            assert!(
                src.reads.get() <= bound(n),
                "consistency {m}/{n}: {}",
                src.reads.get()
            );
        }
        src.reads.set(0);
        root_from_source(&src, n).unwrap();
        assert!(src.reads.get() <= u64::from(n.count_ones()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_frontier_matches_reference(leaves in proptest::collection::vec(any::<[u8; 4]>(), 0..300)) {
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        let mut f = Frontier::new();
        for (n, lh) in hashes.iter().enumerate() {
            prop_assert_eq!(f.root(), root_of_leaves(&hashes[..n]));
            f.push(*lh).unwrap();
        }
        prop_assert_eq!(f.root(), root_of_leaves(&hashes));
        prop_assert_eq!(f.size(), hashes.len() as u64);
        let restored = Frontier::from_parts(f.size(), f.hashes().to_vec()).unwrap();
        prop_assert_eq!(restored.root(), f.root());
    }

    #[test]
    fn prop_generated_proofs_verify(
        extra in 0u64..50,
        n in 1u64..300,
        i_seed in any::<u64>(),
        m_seed in any::<u64>(),
        bit in 0usize..256,
    ) {
        // The store holds more leaves than the tree being proved (a past size).
        let (tree, leaves) = synthetic(n + extra);
        let root_n = root_of_leaves(&leaves[..n as usize]);
        prop_assert_eq!(root_from_source(&tree, n).unwrap(), root_n);

        let i = i_seed % n;
        let p = inclusion_proof(&tree, i, n).unwrap();
        prop_assert!(verify_inclusion(&leaves[i as usize], i, n, &p, &root_n).is_ok());
        if !p.is_empty() {
            let mut bad = p.clone();
            let k = bit / 8 % bad.len();
            bad[k][bit % 32] ^= 1 << (bit % 8);
            prop_assert!(verify_inclusion(&leaves[i as usize], i, n, &bad, &root_n).is_err());
        }

        let m = m_seed % (n + 1);
        let root_m = root_of_leaves(&leaves[..m as usize]);
        let c = consistency_proof(&tree, m, n).unwrap();
        prop_assert!(verify_consistency(m, n, &root_m, &root_n, &c).is_ok());
        if !c.is_empty() {
            let mut bad = c.clone();
            let k = bit / 8 % bad.len();
            bad[k][bit % 32] ^= 1 << (bit % 8);
            prop_assert!(verify_consistency(m, n, &root_m, &root_n, &bad).is_err());
            prop_assert!(verify_consistency(m, n, &root_m, &root_n, &c[1..]).is_err());
        }
    }
}

# Independent generator for crypto/tests/vectors/rfc6962.json (Python, hashlib only).
#
# Implements MTH, PATH and PROOF/SUBPROOF literally as written in RFC 6962
# section 2.1 (= RFC 9162 sections 2.1.1, 2.1.3.1, 2.1.4.1) over the 8-leaf
# reference tree used by every Certificate Transparency implementation, and
# refuses to write anything unless its output reproduces the published values:
#
#   * transparency-dev/merkle, testonly/constants.go: LeafInputs(),
#     NodeHashes() (every complete subtree) and RootHashes() (sizes 0..8);
#   * transparency-dev/merkle, proof/verify_test.go: the inclusionProofs and
#     consistencyProofs tables (a subset of the pairs enumerated here).
#
# The enumerated proofs for every (index, size) and every (m, n) are therefore
# derived from published node hashes by the RFC's own definitions, not by the
# Rust code under test.
import hashlib, json

def H(b): return hashlib.sha256(b).digest()
def leaf(d): return H(b"\x00" + d)
def node(l, r): return H(b"\x01" + l + r)

def k_of(n):
    k = 1
    while k * 2 < n: k *= 2
    return k

def MTH(D):
    n = len(D)
    if n == 0: return H(b"")
    if n == 1: return leaf(D[0])
    k = k_of(n)
    return node(MTH(D[:k]), MTH(D[k:]))

def PATH(m, D):
    n = len(D)
    if n == 1: return []
    k = k_of(n)
    if m < k: return PATH(m, D[:k]) + [MTH(D[k:])]
    return PATH(m - k, D[k:]) + [MTH(D[:k])]

def SUBPROOF(m, D, b):
    n = len(D)
    if m == n: return [] if b else [MTH(D)]
    k = k_of(n)
    if m <= k: return SUBPROOF(m, D[:k], b) + [MTH(D[k:])]
    return SUBPROOF(m - k, D[k:], False) + [MTH(D[:k])]

def PROOF(m, D):
    return SUBPROOF(m, D, True)

LEAVES = [bytes.fromhex(x) for x in ["", "00", "10", "2021", "3031", "40414243",
          "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]

# transparency-dev/merkle testonly/constants.go NodeHashes()
PUBLISHED_NODES = [
  ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
   "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
   "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
   "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
   "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
   "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
   "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
   "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"],
  ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
   "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
   "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
   "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"],
  ["d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
   "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
  ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
# transparency-dev/merkle testonly/constants.go RootHashes(), sizes 0..8
PUBLISHED_ROOTS = [
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# transparency-dev/merkle proof/verify_test.go inclusionProofs (leaf is 1-based there;
# stored 0-based here) and consistencyProofs.
PUBLISHED_INCLUSION = [
  (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
          "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
  (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
          "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
          "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
  (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
  (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
          "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]
PUBLISHED_CONSISTENCY = [
  (1, 1, []),
  (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
          "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
  (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
          "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
          "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
  (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
          "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
  (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
          "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
          "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]

hx = lambda bs: [b.hex() for b in bs]

# Anchor 1: every complete subtree hash and every root matches the publication.
for level, row in enumerate(PUBLISHED_NODES):
    w = 1 << level
    for i, want in enumerate(row):
        assert MTH(LEAVES[i * w:(i + 1) * w]).hex() == want, (level, i)
for n, want in enumerate(PUBLISHED_ROOTS):
    assert MTH(LEAVES[:n]).hex() == want, n
# Anchor 2: the published proofs are what the RFC definitions give.
for m, n, want in PUBLISHED_INCLUSION:
    assert hx(PATH(m, LEAVES[:n])) == want, (m, n)
for m, n, want in PUBLISHED_CONSISTENCY:
    got = [] if m == n else PROOF(m, LEAVES[:n])
    assert hx(got) == want, (m, n)

out = {
  "description": "RFC 6962 reference tree (8 leaves) known-answer vectors. Leaves, node hashes and roots are "
                 "those published in transparency-dev/merkle testonly/constants.go; published_inclusion and "
                 "published_consistency are copied from transparency-dev/merkle proof/verify_test.go (leaf "
                 "index made 0-based). inclusion/consistency enumerate every (index, size) and every "
                 "1 <= m <= n <= 8, derived by gen_rfc6962_vectors.py from the RFC 6962 section 2.1 "
                 "definitions after checking they reproduce every published value.",
  "leaves": hx(LEAVES),
  "leaf_hashes": hx([leaf(d) for d in LEAVES]),
  "nodes": PUBLISHED_NODES,
  "roots": PUBLISHED_ROOTS,
  "published_inclusion": [{"index": m, "size": n, "path": p} for m, n, p in PUBLISHED_INCLUSION],
  "published_consistency": [{"first": m, "second": n, "proof": p} for m, n, p in PUBLISHED_CONSISTENCY],
  "inclusion": [{"index": m, "size": n, "path": hx(PATH(m, LEAVES[:n]))}
                for n in range(1, 9) for m in range(n)],
  "consistency": [{"first": m, "second": n, "proof": hx([] if m == n else PROOF(m, LEAVES[:n]))}
                  for n in range(1, 9) for m in range(1, n + 1)],
}
with open(__file__.replace("gen_rfc6962_vectors.py", "rfc6962.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("inclusion", len(out["inclusion"]), "consistency", len(out["consistency"]))

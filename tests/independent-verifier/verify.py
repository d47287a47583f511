#!/usr/bin/env python3
"""An independent verifier of a reporter-vault access-trail export.

Written from the specifications alone, sharing no code with the service:

* RFC 6962 section 2.1 / RFC 9162 section 2.1 (Merkle Tree Hash): leaf hash =
  SHA-256(0x00 || leaf), interior node = SHA-256(0x01 || left || right), the
  tree of n > 1 leaves split at the largest power of two smaller than n, the
  empty tree's root SHA-256("").
* c2sp.org/tlog-checkpoint: the note text is "<origin>\\n<size>\\n<base64 root>\\n"
  optionally followed by extension lines.
* c2sp.org/signed-note: text, a blank line, then signature lines
  "\\u2014 <key name> <base64(key id (4 bytes) || signature)>\\n". An Ed25519
  verifier key is "<name>+<hex key id>+<base64(0x01 || 32-byte public key)>",
  with key id = SHA-256(name || "\\n" || 0x01 || public key)[:4]. Signatures by
  other keys are ignored; at least one by ours must verify.
* RFC 8032 section 6: Ed25519 verification (the reference code, transcribed).

Input: the JSON-lines export of `reporter-vault audit export` (a header line,
one {"type":"leaf","index":n,"leaf":"<base64>"} per event in order, one
{"type":"checkpoint","note":"<signed note>"} per checkpoint) and the log's
verifier key obtained out of band (GET /v1/audit/public-key). The verifier key
in the file's header is NOT trusted.

Besides the Merkle and signature checks, it reads the documented leaf encoding
(a JSON object carrying its own "index") only to name the first bad position
when rows were deleted, inserted or swapped.

Exit status: 0 and the root printed on success; 1 with the first bad index or
checkpoint on a verification failure (an export without any signed checkpoint
is a failure too: nothing vouches for its leaves); 2 on unusable input (bad
key, unreadable file). Python 3.11 standard library only.

Usage:
  verify.py EXPORT.jsonl VERIFIER_KEY [--checkpoint SAVED_NOTE_FILE ...]
  verify.py --self-test
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sys

# ---------------------------------------------------------------------------
# RFC 8032 section 6: Ed25519 reference code (verification only)
# ---------------------------------------------------------------------------

_P = 2**255 - 19
_Q = 2**252 + 27742317777372353535851937790883648493


def _modp_inv(x: int) -> int:
    return pow(x, _P - 2, _P)


_D = -121665 * _modp_inv(121666) % _P
_MODP_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _sha512_modq(s: bytes) -> int:
    return int.from_bytes(hashlib.sha512(s).digest(), "little") % _Q


def _point_add(P, Q):
    A, B = (P[1] - P[0]) * (Q[1] - Q[0]) % _P, (P[1] + P[0]) * (Q[1] + Q[0]) % _P
    C, D = 2 * P[3] * Q[3] * _D % _P, 2 * P[2] * Q[2] % _P
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F, G * H, F * G, E * H)


def _point_mul(s: int, P):
    Q = (0, 1, 1, 0)  # neutral element
    while s > 0:
        if s & 1:
            Q = _point_add(Q, P)
        P = _point_add(P, P)
        s >>= 1
    return Q


def _point_equal(P, Q) -> bool:
    if (P[0] * Q[2] - Q[0] * P[2]) % _P != 0:
        return False
    if (P[1] * Q[2] - Q[1] * P[2]) % _P != 0:
        return False
    return True


def _recover_x(y: int, sign: int):
    if y >= _P:
        return None
    x2 = (y * y - 1) * _modp_inv(_D * y * y + 1)
    if x2 == 0:
        if sign:
            return None
        return 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _MODP_SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


_G_Y = 4 * _modp_inv(5) % _P
_G_X = _recover_x(_G_Y, 0)
_G = (_G_X, _G_Y, 1, _G_X * _G_Y % _P)


def _point_decompress(s: bytes):
    if len(s) != 32:
        raise ValueError("invalid input length for decompression")
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _P)


def ed25519_verify(public: bytes, msg: bytes, signature: bytes) -> bool:
    """RFC 8032 section 6 `verify`."""
    if len(public) != 32 or len(signature) != 64:
        return False
    A = _point_decompress(public)
    if not A:
        return False
    Rs = signature[:32]
    R = _point_decompress(Rs)
    if not R:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _Q:
        return False
    h = _sha512_modq(Rs + public + msg)
    sB = _point_mul(s, _G)
    hA = _point_mul(h, A)
    return _point_equal(sB, _point_add(R, hA))


# ---------------------------------------------------------------------------
# RFC 6962 / RFC 9162 section 2.1: Merkle Tree Hash
# ---------------------------------------------------------------------------

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaf_hashes: list[bytes]) -> bytes:
    """The recursive definition, verbatim (used by the self-test)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


class StreamingTree:
    """MTH over a stream of leaves without keeping them: a stack of the roots of
    the perfect subtrees the leaves so far decompose into (largest first).
    Folding that stack from the right is exactly MTH's split at the largest
    power of two, applied recursively."""

    def __init__(self) -> None:
        self.size = 0
        self.stack: list[tuple[int, bytes]] = []  # (subtree leaf count, hash)

    def push(self, h: bytes) -> None:
        count = 1
        while self.stack and self.stack[-1][0] == count:
            left_count, left = self.stack.pop()
            h = node_hash(left, h)
            count += left_count
        self.stack.append((count, h))
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        acc = self.stack[-1][1]
        for _, left in reversed(self.stack[:-1]):
            acc = node_hash(left, acc)
        return acc


# ---------------------------------------------------------------------------
# c2sp.org/signed-note and c2sp.org/tlog-checkpoint
# ---------------------------------------------------------------------------


class VerifyFailure(Exception):
    """The trail is not what it should be (exit 1)."""


class InputError(Exception):
    """The input cannot be used (exit 2)."""


def b64decode_strict(s: str) -> bytes:
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"not base64: {e}") from None
    if base64.b64encode(raw).decode("ascii") != s:
        raise ValueError("non-canonical base64")
    return raw


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + b"\x01" + public).digest()[:4]


def valid_key_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


class Verifier:
    def __init__(self, vkey: str) -> None:
        parts = vkey.strip().split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3:
            raise InputError("verifier key must be <name>+<hex key id>+<base64 key>")
        name, id_hex, key_b64 = parts
        if not valid_key_name(name):
            raise InputError("verifier key: invalid key name")
        try:
            kid = bytes.fromhex(id_hex)
            key = b64decode_strict(key_b64)
        except ValueError as e:
            raise InputError(f"verifier key: {e}") from None
        if len(kid) != 4 or id_hex != id_hex.lower():
            raise InputError("verifier key: key id must be 8 lowercase hex digits")
        if len(key) != 33 or key[0] != 0x01:
            raise InputError("verifier key: not an Ed25519 key (type 0x01 + 32 bytes)")
        public = key[1:]
        if key_id(name, public) != kid:
            raise InputError("verifier key: key id does not match the name and key")
        self.name = name
        self.kid = kid
        self.public = public

    def open(self, note: str) -> str:
        """Returns the signed text, or raises VerifyFailure."""
        if "\n\n" not in note:
            raise VerifyFailure("not a signed note (no blank line before the signatures)")
        split = note.rindex("\n\n")
        text, sigs = note[: split + 1], note[split + 2 :]
        for c in note:
            if c != "\n" and (ord(c) < 0x20 or ord(c) == 0x7F):
                raise VerifyFailure("note contains a control character")
        if not sigs.endswith("\n"):
            raise VerifyFailure("signature block does not end in a newline")
        ok = False
        msg = text.encode("utf-8")
        for line in sigs[:-1].split("\n"):
            if not line.startswith("\u2014 "):
                raise VerifyFailure(f"malformed signature line {line!r}")
            rest = line[2:]
            if rest.count(" ") != 1:
                raise VerifyFailure(f"malformed signature line {line!r}")
            name, blob_b64 = rest.split(" ")
            try:
                blob = b64decode_strict(blob_b64)
            except ValueError:
                raise VerifyFailure(f"signature line is not base64: {line!r}") from None
            if len(blob) < 5:
                raise VerifyFailure("signature too short")
            if name != self.name or blob[:4] != self.kid:
                continue  # another key's signature (a witness): not ours to judge
            if not ed25519_verify(self.public, msg, blob[4:]):
                raise VerifyFailure("Ed25519 signature by the log key does not verify")
            ok = True
        if not ok:
            raise VerifyFailure("no valid signature by the log key")
        return text


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise VerifyFailure("checkpoint body must have origin, size and root lines")
    origin, size_s, root_b64 = lines[0], lines[1], lines[2]
    if not origin:
        raise VerifyFailure("checkpoint has an empty origin")
    if not size_s.isascii() or not size_s.isdigit() or (len(size_s) > 1 and size_s[0] == "0"):
        raise VerifyFailure(f"checkpoint size {size_s!r} is not a canonical decimal")
    size = int(size_s)
    if size >= 2**64:
        raise VerifyFailure("checkpoint size out of range")
    try:
        root = b64decode_strict(root_b64)
    except ValueError as e:
        raise VerifyFailure(f"checkpoint root: {e}") from None
    if len(root) != 32:
        raise VerifyFailure("checkpoint root is not 32 bytes")
    return origin, size, root


# ---------------------------------------------------------------------------
# The export
# ---------------------------------------------------------------------------


def load_export(path: str) -> tuple[list[bytes], list[str]]:
    leaves: list[bytes] = []
    notes: list[str] = []
    try:
        f = open(path, "r", encoding="utf-8")
    except OSError as e:
        raise InputError(f"{path}: {e}") from None
    with f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not JSON: {e}") from None
            kind = rec.get("type")
            if kind == "leaf":
                position = len(leaves)
                if rec.get("index") != position:
                    raise VerifyFailure(
                        f"first bad index {position}: export line {lineno} carries index "
                        f"{rec.get('index')!r} at position {position}"
                    )
                try:
                    leaves.append(base64.b64decode(rec.get("leaf", ""), validate=True))
                except (binascii.Error, ValueError):
                    raise VerifyFailure(
                        f"first bad index {position}: leaf is not base64"
                    ) from None
            elif kind == "checkpoint":
                note = rec.get("note")
                if not isinstance(note, str):
                    raise InputError(f"{path}:{lineno}: checkpoint without a note")
                notes.append(note)
            elif kind == "header":
                pass
            else:
                raise InputError(f"{path}:{lineno}: unknown record type {kind!r}")
    return leaves, notes


def leaf_self_index(leaf: bytes):
    """The "index" the documented leaf encoding carries, if it parses."""
    try:
        obj = json.loads(leaf)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("index"), int):
        return obj["index"]
    return None


def verify(path: str, vkey: str, saved: list[str]) -> tuple[int, int, bytes]:
    v = Verifier(vkey)
    leaves, notes = load_export(path)
    notes = notes + saved

    # Every checkpoint: signature, body, origin.
    checkpoints: list[tuple[int, bytes, int]] = []  # (size, root, note number)
    for i, note in enumerate(notes):
        try:
            text = v.open(note)
            origin, size, root = parse_checkpoint(text)
        except VerifyFailure as e:
            raise VerifyFailure(f"bad checkpoint #{i} ({first_line_size(note)}): {e}") from None
        if origin != v.name:
            raise VerifyFailure(
                f"bad checkpoint #{i} (size {size}): origin {origin!r} is not the key name {v.name!r}"
            )
        checkpoints.append((size, root, i))
    checkpoints.sort(key=lambda c: c[0])

    # The leaves: each must carry its own position (when it parses), and every
    # checkpoint's root must be the MTH of the first `size` leaves.
    tree = StreamingTree()
    pending = list(checkpoints)
    last_good = 0

    def check_due() -> None:
        nonlocal last_good
        while pending and pending[0][0] == tree.size:
            size, root, num = pending.pop(0)
            if tree.root() != root:
                lo = last_good
                where = f"first bad index {lo}" if size - lo == 1 else (
                    f"first bad index in [{lo}, {size})"
                )
                raise VerifyFailure(
                    f"checkpoint #{num} (size {size}): root {root.hex()} does not match the "
                    f"recomputed root {tree.root().hex()}; {where}"
                )
            last_good = size

    check_due()
    for position, leaf in enumerate(leaves):
        own = leaf_self_index(leaf)
        if own is not None and own != position:
            raise VerifyFailure(
                f"first bad index {position}: the leaf at position {position} says it is "
                f"index {own} (rows deleted, inserted or swapped)"
            )
        tree.push(leaf_hash(leaf))
        check_due()
    if pending:
        size, _, num = pending[0]
        raise VerifyFailure(
            f"checkpoint #{num} (size {size}) but the export has {tree.size} leaves: "
            f"truncated or rolled back; first bad index {tree.size}"
        )
    if not checkpoints:
        raise VerifyFailure(
            "no signed checkpoint: nothing vouches for these leaves (sign one with "
            "POST /v1/audit/checkpoint and export again)"
        )
    if last_good < tree.size:
        print(
            f"note: leaves {last_good}..{tree.size - 1} come after the last checkpoint and "
            f"are not covered by a signature yet",
            file=sys.stderr,
        )
    return tree.size, len(checkpoints), tree.root()


def first_line_size(note: str) -> str:
    lines = note.split("\n")
    return f"size {lines[1]}" if len(lines) > 1 else "unreadable"


# ---------------------------------------------------------------------------
# Self-test against published vectors
# ---------------------------------------------------------------------------


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(f"self-test failed: {what}")


def self_test() -> None:
    # RFC 8032 section 7.1, TEST 1 and TEST 2.
    pk1 = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig1 = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    check(ed25519_verify(pk1, b"", sig1), "RFC 8032 TEST 1")
    check(not ed25519_verify(pk1, b"\x00", sig1), "RFC 8032 TEST 1, other message")
    pk2 = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
    sig2 = bytes.fromhex(
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    )
    check(ed25519_verify(pk2, b"\x72", sig2), "RFC 8032 TEST 2")
    check(not ed25519_verify(pk2, b"\x73", sig2), "RFC 8032 TEST 2, other message")

    # RFC 6962 tree hashes over the CT test leaves (certificate-transparency).
    leaves = [bytes.fromhex(h) for h in [
        "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]]
    roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    check(
        EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "empty root",
    )
    hashes = [leaf_hash(x) for x in leaves]
    tree = StreamingTree()
    for n, want in enumerate(roots, start=1):
        check(mth(hashes[:n]).hex() == want, f"size {n}")
        tree.push(hashes[n - 1])
        check(tree.root().hex() == want, f"size {n}")
    # Streaming and recursive agree on every size up to 70.
    many = [leaf_hash(bytes([i])) for i in range(70)]
    tree = StreamingTree()
    for n in range(1, 71):
        tree.push(many[n - 1])
        check(tree.root() == mth(many[:n]), f"size {n}")

    # The signed-note example of golang.org/x/mod/sumdb/note (c2sp.org/signed-note).
    v = Verifier("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    text = ("If you think cryptography is the answer to your problem,\n"
            "then you don't know what your problem is.\n")
    sig = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
           "KvqfqdngotpRZb6KE6RyyBwJnAM=\n")
    enoch = ("\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01"
             "oOTGwnWLox33WWd1RvMc+QQ=\n")
    check(v.open(text + "\n" + sig) == text, "Go note vector")
    check(v.open(text + "\n" + enoch + sig) == text, "Go note vector with a foreign cosignature")
    for bad in [text + "\n" + enoch, text.replace("think", "thing") + "\n" + sig, text + sig]:
        try:
            v.open(bad)
        except VerifyFailure:
            continue
        raise AssertionError(f"accepted {bad!r}")
    try:
        Verifier("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    except InputError:
        pass
    else:
        raise AssertionError("accepted a wrong key id")
    print("self-test ok")


def main(argv: list[str]) -> int:
    if argv == ["--self-test"]:
        self_test()
        return 0
    positional: list[str] = []
    saved_paths: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "--checkpoint":
            try:
                saved_paths.append(next(it))
            except StopIteration:
                print("verify.py: --checkpoint needs a file", file=sys.stderr)
                return 2
        else:
            positional.append(a)
    if len(positional) != 2:
        print(__doc__.strip().split("Usage:")[1], file=sys.stderr)
        return 2
    path, vkey = positional
    try:
        saved = []
        for p in saved_paths:
            try:
                with open(p, "r", encoding="utf-8") as f:
                    saved.append(f.read())
            except OSError as e:
                raise InputError(f"{p}: {e}") from None
        n, k, root = verify(path, vkey, saved)
    except InputError as e:
        print(f"verify.py: unusable input: {e}", file=sys.stderr)
        return 2
    except VerifyFailure as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    print(f"ok: {n} leaves, {k} checkpoints verified")
    print(f"root {root.hex()} {base64.b64encode(root).decode('ascii')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

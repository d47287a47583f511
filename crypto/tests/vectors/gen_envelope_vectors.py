# Independent generator for crypto/tests/vectors/envelope.json (Python + pyca/cryptography).
import hashlib, json, struct
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

class Drbg:
    def __init__(s, seed): s.seed, s.ctr, s.buf = seed, 0, b""
    def take(s, n):
        while len(s.buf) < n:
            s.buf += hashlib.sha256(struct.pack(">QQ", s.seed, s.ctr)).digest(); s.ctr += 1
        out, s.buf = s.buf[:n], s.buf[n:]; return out

def lp16(x): b = x.encode(); return struct.pack(">H", len(b)) + b
def wrap_aad(v, r, j): return b"reporter-vault/envelope/wrap" + b"\x01" + struct.pack(">I", v) + lp16(r) + lp16(j)
def data_aad(r, j): return b"reporter-vault/envelope/data" + b"\x01" + lp16(r) + lp16(j)
def wrap(kek, v, dek, r, j, rng):
    n = rng.take(12); return n + AESGCM(kek).encrypt(n, dek, wrap_aad(v, r, j))
def env(v, wrapped, rest): return b"RVE\x01" + struct.pack(">IH", v, len(wrapped)) + wrapped + rest

def seal(kek, v, seed, r, j, pt):
    rng = Drbg(seed); dek = rng.take(32); w = wrap(kek, v, dek, r, j, rng)
    dn = rng.take(12); return env(v, w, dn + AESGCM(dek).encrypt(dn, pt, data_aad(r, j))), dek

cases = [
  dict(name="identity_json", kek_version=1, kek=bytes(range(32)), seed=1, record_id="rec_01", jurisdiction="CN-14",
       plaintext='{"name":"张三","phone":"+8613800138000"}'.encode()),
  dict(name="empty_everything", kek_version=7, kek=bytes(range(0x80, 0xa0)), seed=2, record_id="", jurisdiction="", plaintext=b""),
  dict(name="max_version_long_fields", kek_version=0xffffffff, kek=bytes([0xa5]*32), seed=3, record_id="r"*300,
       jurisdiction="CN-14-01-02", plaintext=bytes(i % 251 for i in range(1000))),
]
out = {"description": "reporter-vault envelope format v1 known-answer vectors; generated independently by a Python script using pyca/cryptography AESGCM and the DeterministicRandom definition (block i = SHA-256(seed u64 BE || i u64 BE)).",
       "seal": [], "rewrap": []}
for c in cases:
    e, dek = seal(c["kek"], c["kek_version"], c["seed"], c["record_id"], c["jurisdiction"], c["plaintext"])
    out["seal"].append(dict(name=c["name"], kek_version=c["kek_version"], kek_hex=c["kek"].hex(), seed=c["seed"],
        record_id=c["record_id"], jurisdiction=c["jurisdiction"], plaintext_hex=c["plaintext"].hex(), dek_hex=dek.hex(), envelope_hex=e.hex()))
# rewrap case 0 from version 1 to version 2
c = cases[0]; e, dek = seal(c["kek"], 1, c["seed"], c["record_id"], c["jurisdiction"], c["plaintext"])
kek2 = bytes(range(0x20, 0x40)); rng = Drbg(4)
w2 = wrap(kek2, 2, dek, c["record_id"], c["jurisdiction"], rng)
data_part = e[4+4+2+60:]
out["rewrap"].append(dict(name="v1_to_v2", from_kek_version=1, from_kek_hex=c["kek"].hex(), to_kek_version=2, to_kek_hex=kek2.hex(),
    seed=4, record_id=c["record_id"], jurisdiction=c["jurisdiction"], envelope_hex=e.hex(), rewrapped_hex=env(2, w2, data_part).hex()))
print(json.dumps(out, indent=2, ensure_ascii=False))

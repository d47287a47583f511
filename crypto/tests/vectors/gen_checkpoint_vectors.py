# Independent generator for crypto/tests/vectors/checkpoint.json (Python + pyca/cryptography).
#
# Follows c2sp.org/signed-note (Ed25519, signature type 0x01) and
# c2sp.org/tlog-checkpoint, and verifier keys as golang.org/x/mod/sumdb/note
# encodes them ("<name>+<hex key id>+<base64(0x01 || public key)>"). Before
# writing anything it reproduces the published example of
# golang.org/x/mod/sumdb/note/note_test.go (TestSign / TestNewVerifier), so the
# construction here is the one existing tooling uses.
import base64, hashlib, json
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

def pub(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

def key_id(name, pk):
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + pk).digest()[:4]

def vkey(name, seed):
    pk = pub(seed)
    return "%s+%s+%s" % (name, key_id(name, pk).hex(), base64.b64encode(b"\x01" + pk).decode())

def sign_note(name, seed, text):
    assert text.endswith("\n")
    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(text.encode())
    return text + "\n" + "\u2014 " + name + " " + base64.b64encode(key_id(name, pub(seed)) + sig).decode() + "\n"

# Published anchor: golang.org/x/mod/sumdb/note/note_test.go.
go_skey = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
assert go_skey[0] == 1
go_seed = go_skey[1:]
assert vkey("PeterNeumann", go_seed) == "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
go_text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
assert sign_note("PeterNeumann", go_seed, go_text) == go_text + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"

SEED = bytes(range(1, 33))
NAME = "reporter-vault.example/audit"
cases = [
  (0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
  # Root of the 8-leaf RFC 6962 reference tree (see rfc6962.json).
  (8, "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
  (18446744073709551615, "00" * 32),
]
out = {
  "description": "C2SP tlog-checkpoint in a C2SP signed-note, Ed25519 (type 0x01), generated independently by "
                 "gen_checkpoint_vectors.py with pyca/cryptography after reproducing the golang.org/x/mod "
                 "sumdb/note TestSign vector.",
  "seed_hex": SEED.hex(),
  "name": NAME,
  "public_key_hex": pub(SEED).hex(),
  "key_id_hex": key_id(NAME, pub(SEED)).hex(),
  "verifier_key": vkey(NAME, SEED),
  "checkpoints": [],
}
for size, root in cases:
    body = "%s\n%d\n%s\n" % (NAME, size, base64.b64encode(bytes.fromhex(root)).decode())
    out["checkpoints"].append({"size": size, "root_hex": root, "body": body, "note": sign_note(NAME, SEED, body)})
with open(__file__.replace("gen_checkpoint_vectors.py", "checkpoint.json"), "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(json.dumps(out, indent=1, ensure_ascii=False))

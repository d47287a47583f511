//! Signed checkpoints of the access trail: a C2SP `tlog-checkpoint` inside a
//! C2SP `signed-note`, signed with the log's Ed25519 key.
//!
//! # Why these formats
//!
//! A checkpoint commits the log to a tree size and root. Signed, it is what an
//! auditor keeps: any later checkpoint must be provably consistent with it, so
//! an operator cannot rewrite or roll back the trail without producing two
//! signed, inconsistent checkpoints. Using the C2SP formats unchanged means
//! existing transparency tooling (Go `sumdb/note`, `transparency-dev/formats`,
//! witnesses) verifies our checkpoints, and an auditor can write a verifier
//! from the specifications alone.
//!
//! # Formats (c2sp.org/tlog-checkpoint, c2sp.org/signed-note)
//!
//! ```text
//! <origin>\n<tree size, decimal, no leading zeros>\n<base64(root)>\n
//! \n
//! — <key name> <base64(key id (4 bytes) ‖ Ed25519 signature (64 bytes))>\n
//! ```
//!
//! The signature covers the body (the first three lines, final newline
//! included). The key id is `SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key)[..4]`
//! and the verifier key, which `GET /v1/audit/public-key` serves, is
//! `<key name>+<hex key id>+<base64(0x01 ‖ public key)>`.
//!
//! # Choices beyond the specifications
//!
//! * The origin must equal the key name (the spec's "SHOULD match"), both when
//!   signing and when verifying: a checkpoint signed by this log's key for any
//!   other origin is refused rather than mistaken for this log's state.
//! * No extension lines are written, and a body with any is refused: they are
//!   not auditable by log monitors, and a verifier that dropped them would
//!   hide what was signed.
//! * Verification is strict: anything the specification does not allow
//!   (control characters, a missing blank line, an unparsable signature line,
//!   more than 100 signatures, a non-canonical size or root) is
//!   [`CryptoError::Format`]; a failed or absent signature by this key is
//!   [`CryptoError::Integrity`]. Signatures from other keys (witness
//!   cosignatures, a rotated key) are ignored as the specification requires.
//!
//! # Key material
//!
//! [`LogSigner`] holds a `ring` Ed25519 key pair for as long as it lives. `ring`
//! does not wipe its key pairs on drop; the seed itself stays in the
//! [`Key32`] of the keyring, which does. A signer therefore keeps one unwiped
//! copy of the expanded key in memory for the life of the process, which adds
//! nothing an attacker able to read process memory would not already find in
//! the keyring.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::digest;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};

use crate::CryptoError;
use crate::merkle::Hash;
use crate::secret::Key32;

/// Signature type byte for Ed25519 in c2sp.org/signed-note.
const SIG_TYPE_ED25519: u8 = 0x01;
/// Em dash (U+2014) and space: the start of every signature line.
const SIG_LINE_PREFIX: &str = "\u{2014} ";
/// Length of an Ed25519 signature.
const ED25519_SIG_LEN: usize = 64;
/// The spec requires accepting at least 16 signatures; Go's `sumdb/note`
/// stops at 100. Bounding the count bounds the work an attacker-supplied note
/// can cause.
const MAX_SIGNATURES: usize = 100;
/// Far above any checkpoint with 100 post-quantum cosignatures (~5 kB each),
/// low enough that a wrong input is refused before it is scanned.
const MAX_NOTE_BYTES: usize = 1024 * 1024;

/// A key name (and our origin) per c2sp.org/signed-note: non-empty, no
/// Unicode white space, no `+`. Control characters are refused too, since a
/// note may not contain them.
fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[..4]`, the Ed25519 key id of
/// c2sp.org/signed-note.
fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n");
    ctx.update(&[SIG_TYPE_ED25519]);
    ctx.update(public_key);
    let d = ctx.finish();
    let mut id = [0u8; 4];
    for (o, b) in id.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    id
}

/// `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
fn encode_verifier_key(name: &str, id: &[u8; 4], public_key: &[u8; 32]) -> String {
    let mut key = Vec::with_capacity(33);
    key.push(SIG_TYPE_ED25519);
    key.extend_from_slice(public_key);
    format!("{name}+{}+{}", hex::encode(id), STANDARD.encode(key))
}

/// Decodes standard padded base64, refusing any non-canonical spelling so
/// that a given value has exactly one accepted text form.
fn decode_canonical_b64(s: &str) -> Result<Vec<u8>, CryptoError> {
    let bytes = STANDARD.decode(s).map_err(|_| CryptoError::Format)?;
    if STANDARD.encode(&bytes) != s {
        return Err(CryptoError::Format);
    }
    Ok(bytes)
}

/// A tree head: the log's identity, its size and its RFC 6962 root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity (first line); equal to the signing key's name.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 root hash of the first `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`, with no extension lines.
    ///
    /// The origin is written as is; [`LogSigner::sign`] checks it before
    /// signing.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Parses a checkpoint body strictly: exactly three lines each ending in
    /// a newline, a non-empty origin without control characters, a decimal
    /// size without sign or leading zeros that fits in a `u64`, and the
    /// canonical base64 of exactly 32 bytes. Extension lines are refused (see
    /// the module documentation).
    pub fn parse_body(text: &str) -> Result<Checkpoint, CryptoError> {
        let content = text.strip_suffix('\n').ok_or(CryptoError::Format)?;
        let mut lines = content.split('\n');
        let (Some(origin), Some(size), Some(root), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(CryptoError::Format);
        };
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(CryptoError::Format);
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: parse_size(size)?,
            root: parse_root(root)?,
        })
    }
}

/// ASCII decimal, no leading zeros unless the value is `0`. `u64::from_str`
/// alone would accept `+5` and `007`, two spellings of one size.
fn parse_size(s: &str) -> Result<u64, CryptoError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(CryptoError::Format);
    }
    s.parse::<u64>().map_err(|_| CryptoError::Format)
}

fn parse_root(s: &str) -> Result<Hash, CryptoError> {
    let bytes = decode_canonical_b64(s)?;
    Hash::try_from(bytes.as_slice()).map_err(|_| CryptoError::Format)
}

/// Signs checkpoints with the log's Ed25519 key.
///
/// Built from the keyring's log-signing seed. No `Debug` or `Clone`: it holds
/// the private key (see the module documentation on wiping).
///
/// ```compile_fail,E0277
/// fn needs_clone<T: Clone>() {}
/// needs_clone::<vault_crypto::checkpoint::LogSigner>();
/// ```
/// ```compile_fail,E0277
/// fn needs_debug<T: std::fmt::Debug>() {}
/// needs_debug::<vault_crypto::checkpoint::LogSigner>();
/// ```
pub struct LogSigner {
    name: String,
    key_id: [u8; 4],
    public_key: [u8; 32],
    key_pair: Ed25519KeyPair,
}

impl LogSigner {
    /// A signer named `name` (the log's origin, e.g.
    /// `reporter-vault.example/audit`) from a 32-byte Ed25519 seed
    /// ([`crate::keyring::Keyring::log_signing_seed`]).
    ///
    /// A name that is empty or contains white space, `+` or a control
    /// character is [`CryptoError::Format`]: it could not appear in a note.
    pub fn from_seed(name: &str, seed: &Key32) -> Result<LogSigner, CryptoError> {
        if !is_valid_key_name(name) {
            return Err(CryptoError::Format);
        }
        // Seed exposed only to derive the key pair, which `ring` keeps (and
        // does not wipe) for the signer's life; see the module documentation.
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed.expose_secret())
            .map_err(|_| CryptoError::Format)?;
        let public_key = <[u8; 32]>::try_from(key_pair.public_key().as_ref())
            .map_err(|_| CryptoError::Format)?;
        Ok(LogSigner {
            name: name.to_owned(),
            key_id: key_id(name, &public_key),
            public_key,
            key_pair,
        })
    }

    /// The key name, which is also the origin of every checkpoint it signs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// The note verifier key `<name>+<hex key id>+<base64(0x01 ‖ public
    /// key)>`, as served by `GET /v1/audit/public-key` and accepted by
    /// [`NoteVerifier::parse`] and Go's `note.NewVerifier`.
    pub fn verifier_key(&self) -> String {
        encode_verifier_key(&self.name, &self.key_id, &self.public_key)
    }

    /// The verifier for this signer's own notes (e.g. to check a checkpoint
    /// read back from storage before serving it).
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            public_key: self.public_key,
        }
    }

    /// The signed note of `cp`: its body, a blank line and one signature
    /// line.
    ///
    /// Refuses ([`CryptoError::Format`]) a checkpoint whose origin is not this
    /// signer's name, so a misconfigured origin can never be signed into a
    /// checkpoint verifiers would then refuse or misattribute.
    pub fn sign(&self, cp: &Checkpoint) -> Result<String, CryptoError> {
        if cp.origin != self.name {
            return Err(CryptoError::Format);
        }
        self.sign_text(&cp.body())
    }

    /// Signs arbitrary note text (which must end in a newline and contain no
    /// control character but newline). Private: the log signs only
    /// checkpoints, so its key can never be made to sign anything else.
    pub(crate) fn sign_text(&self, text: &str) -> Result<String, CryptoError> {
        if !text.ends_with('\n') || has_forbidden_control(text) {
            return Err(CryptoError::Format);
        }
        let sig = self.key_pair.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + ED25519_SIG_LEN);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(sig.as_ref());
        Ok(format!(
            "{text}\n{SIG_LINE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        ))
    }
}

/// A note contains no ASCII control character other than newline.
fn has_forbidden_control(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 && b != b'\n')
}

/// Verifies checkpoints signed by one log key, given its verifier key.
///
/// Holds only public data, so it is `Clone` and `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    public_key: [u8; 32],
}

impl NoteVerifier {
    /// Parses a verifier key `<name>+<8 hex digits>+<base64(0x01 ‖ 32-byte
    /// Ed25519 public key)>`.
    ///
    /// The key id must be the one the name and key imply, so a key with a
    /// typo in any part is refused here rather than failing every
    /// verification later. Anything else is [`CryptoError::Format`].
    pub fn parse(verifier_key: &str) -> Result<NoteVerifier, CryptoError> {
        let (name, rest) = verifier_key.split_once('+').ok_or(CryptoError::Format)?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or(CryptoError::Format)?;
        if !is_valid_key_name(name) || id_hex.len() != 8 {
            return Err(CryptoError::Format);
        }
        let mut id = [0u8; 4];
        hex::decode_to_slice(id_hex, &mut id).map_err(|_| CryptoError::Format)?;
        let key = decode_canonical_b64(key_b64)?;
        let public_key = match key.split_first() {
            Some((&SIG_TYPE_ED25519, pk)) => {
                <[u8; 32]>::try_from(pk).map_err(|_| CryptoError::Format)?
            }
            _ => return Err(CryptoError::Format),
        };
        if key_id(name, &public_key) != id {
            return Err(CryptoError::Format);
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: id,
            public_key,
        })
    }

    /// The key name (and expected checkpoint origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key in its canonical text form (lowercase hex).
    pub fn verifier_key(&self) -> String {
        encode_verifier_key(&self.name, &self.key_id, &self.public_key)
    }

    /// Verifies a signed checkpoint note and returns the checkpoint.
    ///
    /// Accepts any number (up to 100) of signature lines; lines from other
    /// keys are ignored, every line from this key (same name and key id)
    /// must verify, and at least one must be present. The body must be a
    /// checkpoint of this log (origin equal to the key name).
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CryptoError> {
        let text = self.open(note)?;
        let cp = Checkpoint::parse_body(text)?;
        if cp.origin != self.name {
            return Err(CryptoError::Integrity);
        }
        Ok(cp)
    }

    /// Verifies any signed note by this key (a statement) and returns its text.
    pub fn verify_text<'a>(&self, note: &'a str) -> Result<&'a str, CryptoError> {
        self.open(note)
    }

    /// Checks the signed-note framing and this key's signature(s); returns
    /// the signed text.
    fn open<'a>(&self, note: &'a str) -> Result<&'a str, CryptoError> {
        if note.len() > MAX_NOTE_BYTES || has_forbidden_control(note) {
            return Err(CryptoError::Format);
        }
        // The text is separated from the signatures by the last empty line.
        let split = note.rfind("\n\n").ok_or(CryptoError::Format)?;
        let text = note.get(..=split).ok_or(CryptoError::Format)?;
        let sigs = note.get(split + 2..).ok_or(CryptoError::Format)?;
        let sigs = sigs.strip_suffix('\n').ok_or(CryptoError::Format)?;

        let mut verified = false;
        for (n, line) in sigs.split('\n').enumerate() {
            if n >= MAX_SIGNATURES {
                return Err(CryptoError::Format);
            }
            let line = line
                .strip_prefix(SIG_LINE_PREFIX)
                .ok_or(CryptoError::Format)?;
            let (name, b64) = line.split_once(' ').ok_or(CryptoError::Format)?;
            if !is_valid_key_name(name) || b64.is_empty() {
                return Err(CryptoError::Format);
            }
            let blob = decode_canonical_b64(b64)?;
            let (id, sig) = match blob.split_first_chunk::<4>() {
                Some((id, sig)) if !sig.is_empty() => (id, sig),
                _ => return Err(CryptoError::Format),
            };
            // Other keys (witnesses, a previous log key) are not ours to judge.
            if name != self.name || *id != self.key_id {
                continue;
            }
            if sig.len() != ED25519_SIG_LEN {
                return Err(CryptoError::Integrity);
            }
            UnparsedPublicKey::new(&ED25519, &self.public_key)
                .verify(text.as_bytes(), sig)
                .map_err(|_| CryptoError::Integrity)?;
            verified = true;
        }
        if verified {
            Ok(text)
        } else {
            Err(CryptoError::Integrity)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const VECTORS: &str = include_str!("../tests/vectors/checkpoint.json");

    #[derive(Deserialize)]
    struct Vectors {
        seed_hex: String,
        name: String,
        public_key_hex: String,
        key_id_hex: String,
        verifier_key: String,
        checkpoints: Vec<CpVector>,
    }

    #[derive(Deserialize)]
    struct CpVector {
        size: u64,
        root_hex: String,
        body: String,
        note: String,
    }

    fn vectors() -> Vectors {
        serde_json::from_str(VECTORS).unwrap()
    }

    fn seed_from_hex(h: &str) -> Key32 {
        let mut s = [0u8; 32];
        hex::decode_to_slice(h, &mut s).unwrap();
        Key32::from_bytes(s)
    }

    fn signer() -> LogSigner {
        let v = vectors();
        LogSigner::from_seed(&v.name, &seed_from_hex(&v.seed_hex)).unwrap()
    }

    fn cp(size: u64, root: Hash) -> Checkpoint {
        Checkpoint {
            origin: vectors().name,
            size,
            root,
        }
    }

    fn good_note() -> String {
        signer().sign(&cp(8, [7u8; 32])).unwrap()
    }

    // --- Published vector: golang.org/x/mod/sumdb/note/note_test.go ---------

    /// `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEK…` from TestSign: type byte 0x01
    /// followed by the Ed25519 seed.
    fn peter() -> LogSigner {
        let skey = STANDARD
            .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .unwrap();
        assert_eq!(skey[0], 1);
        let seed = Key32::from_bytes(skey[1..].try_into().unwrap());
        LogSigner::from_seed("PeterNeumann", &seed).unwrap()
    }
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    #[test]
    fn go_sumdb_note_verifier_key_kat() {
        assert_eq!(peter().verifier_key(), PETER_VKEY);
        assert_eq!(NoteVerifier::parse(PETER_VKEY).unwrap(), peter().verifier());
        assert_eq!(
            NoteVerifier::parse(ENOCH_VKEY).unwrap().verifier_key(),
            ENOCH_VKEY
        );
    }

    #[test]
    fn go_sumdb_note_sign_kat() {
        let want = format!("{GO_TEXT}\n{PETER_SIG}");
        assert_eq!(peter().sign_text(GO_TEXT).unwrap(), want);
    }

    #[test]
    fn go_sumdb_note_open_kat() {
        let peter = NoteVerifier::parse(PETER_VKEY).unwrap();
        let enoch = NoteVerifier::parse(ENOCH_VKEY).unwrap();
        let both = format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
        // Each key finds its own signature and ignores the other's.
        assert_eq!(peter.open(&both).unwrap(), GO_TEXT);
        assert_eq!(enoch.open(&both).unwrap(), GO_TEXT);
        // Go's "invalid signature" case: a known key's signature altered.
        let bad = format!("{GO_TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
        assert!(matches!(peter.open(&bad), Err(CryptoError::Integrity)));
        // Go's "invalid encoded message syntax" cases.
        let bad_msgs = [
            GO_TEXT.to_string(),
            format!("{GO_TEXT}\n"),
            format!("{GO_TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
            format!("\x01{GO_TEXT}\n{PETER_SIG}"),
            format!(
                "{GO_TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
            ),
            format!("{GO_TEXT}\n{PETER_SIG}Unexpected line.\n"),
            format!("{GO_TEXT}\n{}", PETER_SIG.repeat(101)),
        ];
        for msg in &bad_msgs {
            assert!(
                matches!(peter.open(msg), Err(CryptoError::Format)),
                "{msg:?}"
            );
        }
        // Only unknown signatures: no verifiable signature.
        let only_enoch = format!("{GO_TEXT}\n{ENOCH_SIG}");
        assert!(matches!(
            peter.open(&only_enoch),
            Err(CryptoError::Integrity)
        ));
    }

    #[test]
    fn go_sumdb_note_verifier_key_manglings_fail() {
        // As TestNewVerifier: every proper substring and every single-byte
        // increment of the key is refused.
        let b = PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i == 0 && j == b.len() {
                    continue;
                }
                let s = std::str::from_utf8(&b[i..j]).unwrap();
                assert!(NoteVerifier::parse(s).is_err(), "{s}");
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1);
            if let Ok(s) = std::str::from_utf8(&m) {
                assert!(NoteVerifier::parse(s).is_err(), "{s}");
            }
        }
        // Wrong key length and unknown algorithm, each with a matching key id.
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
            )
            .is_err()
        );
        assert!(
            NoteVerifier::parse(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
            )
            .is_err()
        );
    }

    // --- This crate's KAT (tests/vectors/checkpoint.json) -------------------

    #[test]
    fn checkpoint_kat() {
        let v = vectors();
        let s = signer();
        assert_eq!(hex::encode(s.public_key()), v.public_key_hex);
        assert_eq!(hex::encode(s.key_id), v.key_id_hex);
        assert_eq!(s.verifier_key(), v.verifier_key);
        let verifier = NoteVerifier::parse(&v.verifier_key).unwrap();
        for c in &v.checkpoints {
            let mut root = [0u8; 32];
            hex::decode_to_slice(&c.root_hex, &mut root).unwrap();
            let checkpoint = cp(c.size, root);
            assert_eq!(checkpoint.body(), c.body);
            assert_eq!(s.sign(&checkpoint).unwrap(), c.note);
            assert_eq!(Checkpoint::parse_body(&c.body).unwrap(), checkpoint);
            assert_eq!(verifier.verify(&c.note).unwrap(), checkpoint);
        }
    }

    #[test]
    fn round_trip_and_cosignatures() {
        let s = signer();
        let note = good_note();
        assert_eq!(s.verifier().verify(&note).unwrap(), cp(8, [7u8; 32]));
        // A witness cosignature before or after ours is ignored.
        let witness = LogSigner::from_seed("witness.example", &Key32::from_bytes([9; 32])).unwrap();
        let w_line = witness
            .sign_text(&cp(8, [7u8; 32]).body())
            .unwrap()
            .rsplit_once("\n\n")
            .unwrap()
            .1
            .to_string();
        let (body, ours) = note.rsplit_once("\n\n").unwrap();
        for n in [
            format!("{body}\n\n{w_line}{ours}"),
            format!("{body}\n\n{ours}{w_line}"),
        ] {
            assert_eq!(s.verifier().verify(&n).unwrap(), cp(8, [7u8; 32]));
        }
        // The witness' own verifier accepts the note only with its line.
        assert!(witness.verifier().verify(&note).is_err());
    }

    // --- fail_* --------------------------------------------------------------

    fn assert_rejected(note: &str) {
        assert!(signer().verifier().verify(note).is_err(), "{note:?}");
    }

    #[test]
    fn fail_altered_size() {
        let note = good_note();
        assert_rejected(&note.replacen("\n8\n", "\n9\n", 1));
        assert_rejected(&note.replacen("\n8\n", "\n08\n", 1));
    }

    #[test]
    fn fail_altered_root() {
        let note = good_note();
        let root_b64 = STANDARD.encode([7u8; 32]);
        let other = STANDARD.encode([8u8; 32]);
        assert!(note.contains(&root_b64));
        assert!(matches!(
            signer()
                .verifier()
                .verify(&note.replacen(&root_b64, &other, 1)),
            Err(CryptoError::Integrity)
        ));
    }

    #[test]
    fn fail_altered_origin() {
        let note = good_note();
        let altered = note.replacen(
            "reporter-vault.example/audit\n",
            "reporter-vault.example/audiT\n",
            1,
        );
        assert!(matches!(
            signer().verifier().verify(&altered),
            Err(CryptoError::Integrity)
        ));
        // The log key never signs another origin, and refuses one it signed.
        let foreign = Checkpoint {
            origin: "other.example/log".into(),
            size: 1,
            root: [0; 32],
        };
        assert!(matches!(signer().sign(&foreign), Err(CryptoError::Format)));
        let forged = signer().sign_text(&foreign.body()).unwrap();
        assert!(matches!(
            signer().verifier().verify(&forged),
            Err(CryptoError::Integrity)
        ));
    }

    #[test]
    fn fail_wrong_key() {
        let v = vectors();
        let other = LogSigner::from_seed(&v.name, &Key32::from_bytes([0x42; 32])).unwrap();
        let note = other.sign(&cp(8, [7u8; 32])).unwrap();
        // Same name, different key id: not ours, so no valid signature.
        assert!(matches!(
            signer().verifier().verify(&note),
            Err(CryptoError::Integrity)
        ));
        // Same name and key id but a signature by another key: invalid.
        let (body, line) = note.rsplit_once("\n\n").unwrap();
        let (_, b64) = line.trim_end().rsplit_once(' ').unwrap();
        let mut blob = STANDARD.decode(b64).unwrap();
        blob[..4].copy_from_slice(&signer().key_id);
        let spliced = format!("{body}\n\n— {} {}\n", v.name, STANDARD.encode(blob));
        assert!(matches!(
            signer().verifier().verify(&spliced),
            Err(CryptoError::Integrity)
        ));
    }

    #[test]
    fn fail_truncated_signature() {
        let note = good_note();
        let (body, line) = note.rsplit_once("\n\n").unwrap();
        let (prefix, b64) = line.trim_end().rsplit_once(' ').unwrap();
        let blob = STANDARD.decode(b64).unwrap();
        for cut in [blob.len() - 1, 36, 5] {
            let short = format!("{body}\n\n{prefix} {}\n", STANDARD.encode(&blob[..cut]));
            assert!(matches!(
                signer().verifier().verify(&short),
                Err(CryptoError::Integrity)
            ));
        }
        // Shorter than a key id, or text cut inside the base64: malformed.
        let tiny = format!("{body}\n\n{prefix} {}\n", STANDARD.encode(&blob[..4]));
        assert!(matches!(
            signer().verifier().verify(&tiny),
            Err(CryptoError::Format)
        ));
        let cut_text = format!("{body}\n\n{prefix} {}\n", &b64[..b64.len() - 3]);
        assert!(matches!(
            signer().verifier().verify(&cut_text),
            Err(CryptoError::Format)
        ));
        // No trailing newline.
        assert_rejected(note.trim_end());
    }

    #[test]
    fn fail_missing_blank_line() {
        let note = good_note();
        assert_rejected(&note.replacen("=\n\n—", "=\n—", 1));
        assert_rejected(&note.replacen("\n\n", "\n \n", 1));
    }

    #[test]
    fn fail_malformed_bodies() {
        let root = STANDARD.encode([1u8; 32]);
        let name = vectors().name;
        for body in [
            String::new(),
            format!("{name}\n1\n{root}"),
            format!("{name}\n1\n{root}\nextension\n"),
            format!("{name}\n\n1\n{root}\n"),
            format!("\n1\n{root}\n"),
            format!("{name}\n+1\n{root}\n"),
            format!("{name}\n01\n{root}\n"),
            format!("{name}\n-1\n{root}\n"),
            format!("{name}\n 1\n{root}\n"),
            format!("{name}\n18446744073709551616\n{root}\n"),
            format!("{name}\n1\n{}\n", STANDARD.encode([1u8; 31])),
            format!("{name}\n1\n{}\n", STANDARD.encode([1u8; 33])),
            format!("{name}\n1\n{}\n", root.trim_end_matches('=')),
            format!("{name}\n1\n{}\n", hex::encode([1u8; 32])),
            format!("{name}\r\n1\n{root}\n"),
        ] {
            assert!(Checkpoint::parse_body(&body).is_err(), "{body:?}");
            // Signed with the right key, still refused.
            if let Ok(note) = signer().sign_text(&body) {
                assert_rejected(&note);
            }
        }
        // Non-canonical base64 (non-zero trailing bits) for the root.
        // "…AQE=": 'E' (000100) carries 4 data bits and 2 zero padding bits;
        // 'F' (000101) decodes to the same bytes with a padding bit set.
        assert!(root.ends_with("E="));
        let nc = format!("{}F=", &root[..root.len() - 2]);
        assert_eq!(
            base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true)
            )
            .decode(&nc)
            .unwrap(),
            [1u8; 32]
        );
        assert!(Checkpoint::parse_body(&format!("{name}\n1\n{nc}\n")).is_err());
    }

    #[test]
    fn fail_bad_signer_names() {
        for name in ["", "a b", "a+b", "a\u{2003}b", "a\nb", "a\x01b"] {
            assert!(
                LogSigner::from_seed(name, &Key32::from_bytes([1; 32])).is_err(),
                "{name:?}"
            );
        }
    }

    #[test]
    fn fail_oversized_note() {
        let note = good_note();
        let padded = format!("{}{note}", "x".repeat(MAX_NOTE_BYTES));
        assert!(matches!(
            signer().verifier().verify(&padded),
            Err(CryptoError::Format)
        ));
    }
}

/// Signs statements for reporters (reward and disclosure receipts) as C2SP signed notes.
///
/// Its key is derived from the log seed with domain separation
/// (HMAC-SHA256(seed, "reporter-vault/statement-key/v1")), so it is a different key from the
/// log's: a statement can never pass as a checkpoint, nor a checkpoint as a statement, and
/// the log key keeps signing checkpoints only.
pub struct StatementSigner {
    inner: LogSigner,
}

impl StatementSigner {
    /// The statement signer named `name`, derived from the log signing seed.
    pub fn derive(name: &str, log_seed: &Key32) -> Result<StatementSigner, CryptoError> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, log_seed.expose_secret());
        let tag = ring::hmac::sign(&key, b"reporter-vault/statement-key/v1");
        let mut seed = [0u8; 32];
        seed.copy_from_slice(tag.as_ref().get(..32).ok_or(CryptoError::Format)?);
        let derived = Key32::from_bytes(seed);
        seed.fill(0);
        Ok(StatementSigner {
            inner: LogSigner::from_seed(name, &derived)?,
        })
    }

    /// Signs `text` (ending in a newline, no control characters but newline).
    pub fn sign(&self, text: &str) -> Result<String, CryptoError> {
        self.inner.sign_text(text)
    }

    /// The note verifier key of statements.
    pub fn verifier_key(&self) -> String {
        self.inner.verifier_key()
    }
}

#[cfg(test)]
mod statement_tests {
    use super::*;

    #[test]
    fn statements_use_a_key_of_their_own_and_verify() {
        let seed = Key32::from_bytes([7; 32]);
        let log = LogSigner::from_seed("rv/log", &seed).unwrap();
        let st = StatementSigner::derive("rv/receipts", &seed).unwrap();
        assert_ne!(log.public_key(), st.inner.public_key());
        let note = st.sign("hello\n").unwrap();
        let v = NoteVerifier::parse(&st.verifier_key()).unwrap();
        assert_eq!(v.verify_text(&note).unwrap(), "hello\n");
        // Not a checkpoint, and not verifiable with the log's key.
        assert!(v.verify(&note).is_err());
        let lv = NoteVerifier::parse(&log.verifier_key()).unwrap();
        assert!(lv.verify_text(&note).is_err());
        // fail: altered text.
        assert!(v.verify_text(&note.replacen("hello", "hellp", 1)).is_err());
    }
}

//! The checkpoint / signed-note parsers: `Checkpoint::parse_body`, `NoteVerifier::parse`,
//! `NoteVerifier::verify` and `verify_text`, on arbitrary text, against a fixed log key and
//! the statement key derived from it.
//!
//! Input: byte 0 selects extra work, the rest must be UTF-8 text (anything else is skipped:
//! every parser here takes `&str`).
//!
//! Beyond "never panics":
//! * the checkpoint body grammar is canonical: a parsed body re-serialises to the same text;
//! * a parsed verifier key re-serialises to a key that parses to the same verifier;
//! * `verify` accepts only notes carrying the exact signature line our key makes for that
//!   body (Ed25519 here is deterministic), and only checkpoints of this log; likewise
//!   `verify_text` for statements;
//! * byte 0 odd: a note signed here from fuzzed size/root verifies, and no single-byte change
//!   to it does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_crypto::checkpoint::{Checkpoint, LogSigner, NoteVerifier, StatementSigner};
use vault_crypto::secret::Key32;
use vault_fuzz::{LOG_NAME, LOG_SEED};

struct Keys {
    log: LogSigner,
    log_v: NoteVerifier,
    st: StatementSigner,
    st_v: NoteVerifier,
}

fn keys() -> &'static Keys {
    static K: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    K.get_or_init(|| {
        let seed = Key32::from_bytes(LOG_SEED);
        let log = LogSigner::from_seed(LOG_NAME, &seed).expect("log signer");
        let st = StatementSigner::derive("fuzz.example/receipts", &seed).expect("statements");
        let log_v = NoteVerifier::parse(&log.verifier_key()).expect("log verifier");
        let st_v = NoteVerifier::parse(&st.verifier_key()).expect("statement verifier");
        Keys {
            log,
            log_v,
            st,
            st_v,
        }
    })
}

/// The last line (the signature line, without its newline) of a note we signed.
fn sig_line(note: &str) -> &str {
    note.trim_end_matches('\n')
        .rsplit('\n')
        .next()
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let [sel, rest @ ..] = data else {
        return;
    };
    let k = keys();

    if let Ok(text) = std::str::from_utf8(rest) {
        // Checkpoint bodies: strict, hence canonical.
        if let Ok(cp) = Checkpoint::parse_body(text) {
            assert_eq!(cp.body(), text, "a checkpoint body has two spellings");
            assert_eq!(Checkpoint::parse_body(&cp.body()).ok(), Some(cp));
        }

        // Verifier keys.
        if let Ok(v) = NoteVerifier::parse(text) {
            // Canonical except for the case of the hex key id.
            let canon = v.verifier_key();
            let split = |s: &str| -> Option<(String, String, String)> {
                let (name, rest) = s.split_once('+')?;
                let (id, key) = rest.split_once('+')?;
                Some((name.to_owned(), id.to_ascii_lowercase(), key.to_owned()))
            };
            assert_eq!(split(&canon), split(text), "verifier key re-serialised differently");
            assert_eq!(NoteVerifier::parse(&canon).ok(), Some(v.clone()));
        }

        // Notes against the log key.
        if let Ok(cp) = k.log_v.verify(text) {
            assert_eq!(cp.origin, LOG_NAME, "verified a checkpoint of another origin");
            let ours = k.log.sign(&cp).expect("sign the verified checkpoint");
            assert!(
                text.starts_with(&cp.body()),
                "the verified body is not the note's text"
            );
            assert!(
                text.split('\n').any(|l| l == sig_line(&ours)),
                "verified a note without our signature line"
            );
        }
        if let Ok(signed) = k.log_v.verify_text(text) {
            // The log key signs checkpoints of its own origin only, so whatever it verified
            // must be one, carrying the line we would sign it with.
            assert!(text.starts_with(signed));
            let cp = Checkpoint::parse_body(signed)
                .expect("the log key verified a text that is not a checkpoint");
            let ours = k.log.sign(&cp).expect("the log key verified a foreign origin");
            assert!(text.split('\n').any(|l| l == sig_line(&ours)));
        }

        // Notes against the statement key.
        if let Ok(signed) = k.st_v.verify_text(text) {
            let ours = k.st.sign(signed).expect("sign the verified statement");
            assert!(text.starts_with(signed));
            assert!(
                text.split('\n').any(|l| l == sig_line(&ours)),
                "verified a statement without our signature line"
            );
        }
        // A statement never passes as a checkpoint (different keys), and vice versa.
        assert!(!(k.st_v.verify(text).is_ok() && k.log_v.verify(text).is_ok()));
    }

    if sel & 1 == 1 && rest.len() >= 10 {
        // Sign a checkpoint made from the input, then mutate one byte.
        let size = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
        let mut root = [0u8; 32];
        for (i, b) in rest[8..].iter().take(32).enumerate() {
            root[i] = *b;
        }
        let cp = Checkpoint {
            origin: LOG_NAME.to_owned(),
            size,
            root,
        };
        let note = k.log.sign(&cp).expect("sign");
        assert_eq!(k.log_v.verify(&note).ok(), Some(cp.clone()));
        assert!(k.st_v.verify_text(&note).is_err(), "a checkpoint passed as a statement");
        let mut bytes = note.clone().into_bytes();
        let pos = usize::from(rest[8]) * 256 + usize::from(rest[9]);
        let pos = pos % bytes.len();
        let new = rest.get(10).copied().unwrap_or(b'A');
        if bytes[pos] != new {
            bytes[pos] = new;
            if let Ok(bad) = std::str::from_utf8(&bytes) {
                assert!(
                    k.log_v.verify(bad).is_err(),
                    "a note altered at byte {pos} still verifies: {bad:?}"
                );
            }
        }
    }
});

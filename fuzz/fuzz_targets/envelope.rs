//! Envelope decoder: `open`, `kek_version` and `rewrap` on arbitrary bytes against a fixed
//! keyring (KEK 1 retired, 2 held, 3 active).
//!
//! Input: byte 0 selects the context (`CONTEXTS`), byte 1 the rewrap target version
//! (`REWRAP_TO`), the rest is the envelope.
//!
//! Beyond "never panics":
//! * `kek_version` and `open` agree on structure (a Format error from one is one from both);
//! * an envelope that opens is bound to its context (opens under no other) and rewraps to
//!   every held version, keeping the data part byte for byte;
//! * a successful rewrap opens exactly as the original did;
//! * `seal` of the input as plaintext opens back to it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_crypto::CryptoError;
use vault_crypto::envelope;
use vault_crypto::random::DeterministicRandom;
use vault_fuzz::{CONTEXTS, REWRAP_TO, envelope_keyring};

/// Magic, format version, KEK version, wrapped length.
const HEADER: usize = 10;
/// The keyring's wrap: nonce ‖ DEK ‖ tag.
const WRAP_LEN: usize = 60;

fuzz_target!(|data: &[u8]| {
    let [sel_ctx, sel_to, env @ ..] = data else {
        return;
    };
    let kr = envelope_keyring();
    let ctx = CONTEXTS[usize::from(*sel_ctx) % CONTEXTS.len()];
    let to = REWRAP_TO[usize::from(*sel_to) % REWRAP_TO.len()];
    let held = |v: u32| kr.versions().iter().any(|(h, _)| *h == v);

    let kv = envelope::kek_version(env);
    let opened = envelope::open(kr, &ctx, env);
    match (&kv, &opened) {
        (Err(CryptoError::Format), Err(CryptoError::Format)) => {}
        (Err(e), _) => panic!("kek_version failed with {e:?} but open gave {:?}", opened.as_ref().map(|p| p.len())),
        (Ok(_), Err(CryptoError::Format)) => {
            // Structure parsed, but the wrap is not the keyring's 60 bytes.
            assert_ne!(wrapped_len(env), Some(WRAP_LEN), "60-byte wrap refused as Format");
        }
        (Ok(v), Err(CryptoError::UnknownKeyVersion(u))) => {
            assert_eq!(v, u);
            assert!(!held(*v), "held version {v} reported unknown");
        }
        (Ok(_), Err(CryptoError::Integrity)) => {}
        (Ok(v), Ok(_)) => assert!(held(*v)),
        (Ok(_), Err(e)) => panic!("unexpected open error {e:?}"),
    }

    if let Ok(plain) = &opened {
        // Bound to its context.
        for other in CONTEXTS.iter() {
            if other.record_id != ctx.record_id || other.jurisdiction != ctx.jurisdiction {
                assert!(
                    matches!(envelope::open(kr, other, env), Err(CryptoError::Integrity)),
                    "an envelope opened under two contexts"
                );
            }
        }
        // Rewraps to every held version, keeping the data part.
        for (v, _) in kr.versions() {
            let rng = DeterministicRandom::new(u64::from(v));
            let new = envelope::rewrap(kr, &ctx, env, v, &rng)
                .unwrap_or_else(|e| panic!("an envelope that opens failed to rewrap to {v}: {e}"));
            assert_eq!(envelope::kek_version(&new).ok(), Some(v));
            assert_eq!(new.get(HEADER + WRAP_LEN..), env.get(HEADER + WRAP_LEN..));
            let again = envelope::open(kr, &ctx, &new).expect("rewrapped envelope opens");
            assert_eq!(again.as_slice(), plain.as_slice());
        }
    }

    let rng = DeterministicRandom::new(u64::from(to));
    match envelope::rewrap(kr, &ctx, env, to, &rng) {
        Ok(new) => {
            assert!(kv.is_ok(), "rewrap accepted what kek_version refuses");
            assert!(held(to), "rewrapped to a version not held");
            assert_eq!(envelope::kek_version(&new).ok(), Some(to));
            assert_eq!(new.get(HEADER + WRAP_LEN..), env.get(HEADER + WRAP_LEN..));
            match (&opened, envelope::open(kr, &ctx, &new)) {
                (Ok(a), Ok(b)) => assert_eq!(a.as_slice(), b.as_slice()),
                (Err(CryptoError::Integrity), Err(CryptoError::Integrity)) => {}
                (a, b) => panic!(
                    "rewrap changed the outcome of open: {:?} -> {:?}",
                    a.as_ref().map(|p| p.len()),
                    b.map(|p| p.len())
                ),
            }
        }
        Err(CryptoError::UnknownKeyVersion(v)) => assert!(!held(v)),
        Err(_) => {}
    }

    // Seal and open the input itself as a plaintext.
    let rng = DeterministicRandom::new(env.len() as u64);
    let sealed = envelope::seal(kr, &ctx, env, &rng).expect("seal");
    assert_eq!(envelope::kek_version(&sealed).ok(), Some(kr.active_version()));
    assert_eq!(sealed.len(), HEADER + WRAP_LEN + 12 + env.len() + 16);
    let back = envelope::open(kr, &ctx, &sealed).expect("sealed envelope opens");
    assert_eq!(back.as_slice(), env);
});

/// The wrapped-key length field of a structurally parsed envelope.
fn wrapped_len(env: &[u8]) -> Option<usize> {
    let b = env.get(8..10)?;
    Some(usize::from(u16::from_be_bytes([b[0], b[1]])))
}

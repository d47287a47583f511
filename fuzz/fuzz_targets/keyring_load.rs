//! The keyring loader: `Keyring::load` (the only way in: it reads a 0600 file) with the
//! fixed test `age` identity as protector.
//!
//! Input: byte 0 chooses the mode.
//! * even: the rest is the keyring *file* (an `age` file, or anything) — exercises the `age`
//!   header/payload parsing and the loader's error mapping;
//! * odd: the rest is the keyring *plaintext* (the JSON document), encrypted to the test
//!   identity here first — exercises the JSON decoding and the keyring invariants behind it,
//!   which the fuzzer could never reach through a valid `age` MAC by itself.
//!
//! Beyond "never panics": a keyring that loads satisfies its invariants (versions unique,
//! ≥ 1, sorted, active = newest), seals and opens an envelope under every version, and
//! survives a save/load round trip unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_crypto::KeyringError;
use vault_crypto::envelope::{self, EnvelopeContext};
use vault_crypto::keyring::{Keyring, KeyringProtector};
use vault_crypto::random::DeterministicRandom;
use vault_fuzz::{age_encrypt_to_test_identity, scratch_dir, test_identity_file, write_private};

const CTX: EnvelopeContext<'static> = EnvelopeContext {
    record_id: "rec_01",
    jurisdiction: "140105",
};

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let dir = scratch_dir("keyring");
    let path = dir.join("keyring.age");
    let file = if mode & 1 == 1 {
        age_encrypt_to_test_identity(rest)
    } else {
        rest.to_vec()
    };
    write_private(&path, &file);
    let protector = KeyringProtector::IdentityFile(test_identity_file().to_owned());
    let kr = match Keyring::load(&path, &protector) {
        Ok(kr) => kr,
        Err(
            KeyringError::Corrupt { .. }
            | KeyringError::WrongPassphraseOrKey { .. }
            | KeyringError::Crypto(_),
        ) => return,
        Err(e) => panic!("unexpected keyring error for a 0600 file: {e}"),
    };

    // Invariants.
    let versions = kr.versions();
    assert!(!versions.is_empty(), "loaded a keyring with no KEK");
    assert!(versions.iter().all(|(v, _)| *v >= 1), "KEK version 0 loaded");
    assert!(
        versions.windows(2).all(|w| w[0].0 < w[1].0),
        "versions not strictly increasing: {versions:?}"
    );
    assert_eq!(
        Some(kr.active_version()),
        versions.last().map(|v| v.0),
        "active KEK is not the newest"
    );
    for (v, _) in &versions {
        let rng = DeterministicRandom::new(u64::from(*v));
        let env = envelope::seal(&kr, &CTX, b"x", &rng).expect("seal under the active KEK");
        let moved = envelope::rewrap(&kr, &CTX, &env, *v, &rng).expect("rewrap to a held KEK");
        assert_eq!(
            envelope::open(&kr, &CTX, &moved).expect("open").as_slice(),
            b"x"
        );
    }

    // Save/load round trip.
    let copy = dir.join("copy.age");
    kr.save(&copy, &protector).expect("save a loaded keyring");
    let again = Keyring::load(&copy, &protector).expect("load a saved keyring");
    assert_eq!(again.versions(), versions);
    assert_eq!(again.active_version(), kr.active_version());
    assert_eq!(
        again.log_signing_seed().expose_secret(),
        kr.log_signing_seed().expose_secret()
    );
    let rng = DeterministicRandom::new(9);
    let env = envelope::seal(&kr, &CTX, b"y", &rng).expect("seal");
    assert_eq!(
        envelope::open(&again, &CTX, &env).expect("reloaded keyring opens").as_slice(),
        b"y"
    );
});

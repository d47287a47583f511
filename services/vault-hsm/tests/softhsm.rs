//! The PKCS#11 provider against a real SoftHSM2 token. Never skipped: without
//! `softhsm2-util` and `/usr/lib/softhsm/libsofthsm2.so` (Debian package `softhsm2`) these
//! tests fail.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once, at `C_Initialize`, and a PKCS#11 module is
//! initialised once per process; and `std::env::set_var` is `unsafe` in edition 2024, which
//! this workspace forbids. So each test runs its body in a child process (this same test
//! binary, filtered to that one test) with its own temporary `softhsm2.conf`, token
//! directory and freshly initialised token. A test that needs a second process (another
//! replica) starts the same test again in another role against the same token directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki::session::Session;
use secrecy::SecretString;
use vault_crypto::CryptoError;
use vault_crypto::checkpoint::{Checkpoint, NoteVerifier};
use vault_crypto::envelope::{self, EnvelopeContext};
use vault_crypto::keyring::Keyring;
use vault_crypto::mac::BlindIndexKey;
use vault_crypto::random::SystemRandomSource;
use vault_crypto::secret::Key32;
use vault_domain::ports::{KeyError, KeyProvider, KeyVersion};
use vault_hsm::{HsmError, Pkcs11Config, Pkcs11Keys, Provisioned, provision};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const LABEL: &str = "rv-test";
/// Distinctive, so a leak into any message is easy to spot.
const PIN: &str = "rv-user-pin-4821";
const WRONG_PIN: &str = "rv-wrong-pin-9137";
const SO_PIN: &str = "rv-so-pin-5678";
const NEW_PIN: &str = "rv-new-pin-2468";
/// 2026-05-03T13:14:15Z.
const NOW: i64 = 1_777_814_055;
const DAY: i64 = 86_400;

const CHILD_DIR: &str = "RV_HSM_TEST_DIR";
const CHILD_ROLE: &str = "RV_HSM_TEST_ROLE";

const PLAINTEXT: &[u8] = "{\"name\":\"张三\",\"phone\":\"+8613800138000\"}".as_bytes();
const REC: &str = "rec_01";
const JUR: &str = "CN-14";
/// Magic, format version, KEK version, wrapped length.
const HEADER: usize = 10;
const WRAP: usize = vault_hsm::WRAP_LEN;

// ---------------------------------------------------------------- harness

/// What a test body sees: its token directory and its role.
struct Env {
    dir: PathBuf,
    role: String,
    test: String,
}

impl Env {
    fn config(&self) -> Pkcs11Config {
        Pkcs11Config::new(MODULE, LABEL, SecretString::from(PIN))
    }

    fn config_with_pin(&self, pin: &str) -> Pkcs11Config {
        Pkcs11Config::new(MODULE, LABEL, SecretString::from(pin))
    }

    fn open(&self) -> Pkcs11Keys {
        Pkcs11Keys::open(&self.config(), Arc::new(SystemRandomSource), None).unwrap()
    }

    fn provision(&self) {
        let done = provision(&self.config(), NOW).unwrap();
        assert_eq!(
            done,
            Provisioned {
                created_root: true,
                created_kek: true
            }
        );
    }

    /// Runs this test again in another process with `role`, against the same token.
    fn spawn_role(&self, role: &str) {
        run_child(&self.test, &self.dir, role);
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn softhsm2_util() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("softhsm2-util"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("softhsm2-util not found: apt-get install softhsm2"))
}

/// Runs `body` in a child process with a fresh SoftHSM2 token labelled [`LABEL`] (PIN
/// [`PIN`]); in the child, runs `body`.
fn run(test: &str, body: fn(&Env)) {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let env = Env {
            dir: PathBuf::from(dir),
            role: std::env::var(CHILD_ROLE).unwrap_or_default(),
            test: test.to_owned(),
        };
        body(&env);
        return;
    }
    assert!(
        Path::new(MODULE).is_file(),
        "{MODULE} not found: apt-get install softhsm2"
    );
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new(softhsm2_util())
        .args([
            "--init-token",
            "--free",
            "--label",
            LABEL,
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "softhsm2-util --init-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_child(test, tmp.path(), "main");
}

fn run_child(test: &str, dir: &Path, role: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        .env(CHILD_DIR, dir)
        .env(CHILD_ROLE, role)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // "1 passed" guards against a filter that matched nothing.
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} ({role}) failed in its child process:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    print!("{stdout}");
}

fn ctx() -> EnvelopeContext<'static> {
    EnvelopeContext {
        record_id: REC,
        jurisdiction: JUR,
    }
}

fn assert_no_pin(message: &str) {
    assert!(
        !message.contains(PIN)
            && !message.contains(WRONG_PIN)
            && !message.contains(SO_PIN)
            && !message.contains(NEW_PIN),
        "message leaks a PIN: {message}"
    );
}

fn unavailable(r: Result<impl Sized, KeyError>) -> String {
    match r {
        Err(KeyError::Unavailable(m)) => {
            assert_no_pin(&m);
            m
        }
        Err(e) => panic!("expected Unavailable, got {e:?}"),
        Ok(_) => panic!("expected Unavailable, got Ok"),
    }
}

fn hsm_err(r: Result<impl Sized, HsmError>) -> HsmError {
    match r {
        Err(e) => {
            assert_no_pin(&e.to_string());
            assert_no_pin(&format!("{e:?}"));
            e
        }
        Ok(_) => panic!("expected an error"),
    }
}

/// A raw `cryptoki` session on the test token in this process, for inspecting objects.
/// The module is already initialised and logged in by the provider in the same process.
fn raw_session() -> Session {
    let ctx = Pkcs11::new(MODULE).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == LABEL)
        .unwrap();
    ctx.open_rw_session(slot).unwrap()
}

fn find_key(s: &Session, label: &str) -> cryptoki::object::ObjectHandle {
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "{label}");
    found[0]
}

// ---------------------------------------------------------------- tests

#[test]
fn provision_then_seal_and_open_round_trip() {
    run("provision_then_seal_and_open_round_trip", |env| {
        // Before provisioning: a clear refusal, not empty keys.
        let e = hsm_err(Pkcs11Keys::open(
            &env.config(),
            Arc::new(SystemRandomSource),
            None,
        ));
        assert!(matches!(e, HsmError::NotProvisioned(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "PKCS#11 token 'rv-test' holds no reporter-vault keys; provision it first (reporter-vault keys init-hsm)"
        );

        env.provision();
        // Idempotent.
        assert_eq!(
            provision(&env.config(), NOW + DAY).unwrap(),
            Provisioned {
                created_root: false,
                created_kek: false
            }
        );

        let keys = env.open();
        assert_eq!(keys.provider_kind(), "pkcs11");
        assert_eq!(keys.active_version(), 1);
        assert_eq!(
            keys.key_versions().unwrap(),
            vec![KeyVersion {
                version: 1,
                created_at_unix: NOW
            }]
        );
        keys.check().unwrap();

        let (env1, version) = keys.seal(REC, JUR, PLAINTEXT).unwrap();
        assert_eq!(version, 1);
        // Envelope format v1, readable without any key.
        assert_eq!(&env1[..4], b"RVE\x01");
        assert_eq!(envelope::kek_version(&env1).unwrap(), 1);
        assert_eq!(&env1[8..10], &u16::try_from(WRAP).unwrap().to_be_bytes());
        assert_eq!(env1.len(), HEADER + WRAP + 12 + PLAINTEXT.len() + 16);
        assert_eq!(keys.open(REC, JUR, &env1).unwrap().as_slice(), PLAINTEXT);

        // The same envelope through the KeyWrapper port, as `envelope` sees it.
        let wrapper = keys.key_wrapper();
        assert_eq!(
            envelope::open(&wrapper, &ctx(), &env1).unwrap().as_slice(),
            PLAINTEXT
        );

        // Fresh IVs and DEKs every time.
        let (env2, _) = keys.seal(REC, JUR, PLAINTEXT).unwrap();
        assert_ne!(env1, env2);
        assert_eq!(keys.open(REC, JUR, &env2).unwrap().as_slice(), PLAINTEXT);

        // Bound to record and jurisdiction.
        assert!(matches!(
            keys.open("rec_02", JUR, &env1),
            Err(KeyError::Integrity)
        ));
        assert!(matches!(
            keys.open(REC, "CN-11", &env1),
            Err(KeyError::Integrity)
        ));

        // Tampering anywhere in the wrap (IV, ciphertext, tag) or the data part fails the
        // tag, inside the HSM or in software.
        let wrap_positions = [HEADER, HEADER + 11, HEADER + 12, HEADER + 43, HEADER + 44];
        let data_positions = [HEADER + WRAP, HEADER + WRAP + 12, env1.len() - 1];
        for i in wrap_positions.into_iter().chain(data_positions) {
            let mut bad = env1.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(keys.open(REC, JUR, &bad), Err(KeyError::Integrity)),
                "byte {i}"
            );
            assert!(
                matches!(
                    envelope::open(&wrapper, &ctx(), &bad),
                    Err(CryptoError::Integrity)
                ),
                "byte {i}"
            );
            assert!(wrapper.fault().is_none());
        }
        // A version the token does not hold.
        let mut other = env1.clone();
        other[4..8].copy_from_slice(&7u32.to_be_bytes());
        assert!(matches!(
            envelope::open(&wrapper, &ctx(), &other),
            Err(CryptoError::UnknownKeyVersion(7))
        ));
        assert!(matches!(
            keys.open(REC, JUR, &other),
            Err(KeyError::Integrity)
        ));
        // Truncated.
        for len in [0, 9, HEADER + WRAP - 1, HEADER + WRAP + 27] {
            assert!(matches!(
                keys.open(REC, JUR, &env1[..len]),
                Err(KeyError::Integrity)
            ));
        }
        // The KEK cannot be swapped for the root key by relabelling the version: v1 with the
        // wrap moved to another record fails.
        let (env3, _) = keys.seal("rec_02", JUR, PLAINTEXT).unwrap();
        let mut moved = env3[..HEADER + WRAP].to_vec();
        moved.extend_from_slice(&env1[HEADER + WRAP..]);
        assert!(matches!(
            keys.open(REC, JUR, &moved),
            Err(KeyError::Integrity)
        ));
    });
}

#[test]
fn rotate_rewrap_and_retire() {
    run("rotate_rewrap_and_retire", |env| {
        env.provision();
        let keys = env.open();
        let (old, v1) = keys.seal(REC, JUR, PLAINTEXT).unwrap();
        assert_eq!(v1, 1);

        assert_eq!(keys.rotate(NOW + 30 * DAY).unwrap(), 2);
        assert_eq!(keys.active_version(), 2);
        assert_eq!(
            keys.key_versions().unwrap(),
            vec![
                KeyVersion {
                    version: 1,
                    created_at_unix: NOW
                },
                KeyVersion {
                    version: 2,
                    created_at_unix: NOW + 30 * DAY
                },
            ]
        );
        // New seals use v2; v1 envelopes still open.
        let (new, v2) = keys.seal(REC, JUR, PLAINTEXT).unwrap();
        assert_eq!(v2, 2);
        assert_eq!(envelope::kek_version(&new).unwrap(), 2);
        assert_eq!(keys.open(REC, JUR, &old).unwrap().as_slice(), PLAINTEXT);

        // Rewrap: only the wrapped DEK changes; the data part is copied byte for byte.
        let (rewrapped, to) = keys.rewrap(REC, JUR, &old).unwrap();
        assert_eq!(to, 2);
        assert_eq!(envelope::kek_version(&rewrapped).unwrap(), 2);
        assert_eq!(&rewrapped[HEADER + WRAP..], &old[HEADER + WRAP..]);
        assert_ne!(&rewrapped[..HEADER + WRAP], &old[..HEADER + WRAP]);
        assert_eq!(
            keys.open(REC, JUR, &rewrapped).unwrap().as_slice(),
            PLAINTEXT
        );
        // Rewrapping for another record fails; the wrap is bound to it.
        assert!(matches!(
            keys.rewrap("rec_02", JUR, &old),
            Err(KeyError::Integrity)
        ));

        // Retiring: never the active version, never an unknown one.
        assert!(matches!(keys.retire(2), Err(KeyError::Refused(_))));
        assert!(matches!(keys.retire(9), Err(KeyError::Refused(_))));
        keys.retire(1).unwrap();
        assert_eq!(
            keys.key_versions().unwrap(),
            vec![KeyVersion {
                version: 2,
                created_at_unix: NOW + 30 * DAY
            }]
        );
        assert!(matches!(
            keys.open(REC, JUR, &old),
            Err(KeyError::Integrity)
        ));
        assert!(matches!(
            envelope::open(&keys.key_wrapper(), &ctx(), &old),
            Err(CryptoError::UnknownKeyVersion(1))
        ));
        assert_eq!(
            keys.open(REC, JUR, &rewrapped).unwrap().as_slice(),
            PLAINTEXT
        );
        assert_eq!(keys.open(REC, JUR, &new).unwrap().as_slice(), PLAINTEXT);
        // The object is really gone from the token.
        let s = raw_session();
        assert!(
            s.find_objects(&[Attribute::Label(b"reporter-vault/kek/v1".to_vec())])
                .unwrap()
                .is_empty()
        );

        // Version numbers are never reused.
        assert_eq!(keys.rotate(NOW + 60 * DAY).unwrap(), 3);
        // A reopened provider sees the same state.
        drop(keys);
        let again = env.open();
        assert_eq!(again.active_version(), 3);
        assert_eq!(
            again
                .key_versions()
                .unwrap()
                .iter()
                .map(|k| k.version)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(
            again.open(REC, JUR, &rewrapped).unwrap().as_slice(),
            PLAINTEXT
        );
    });
}

#[test]
fn another_replica_sees_rotation_after_reload() {
    run("another_replica_sees_rotation_after_reload", |env| {
        match env.role.as_str() {
            "main" => {
                env.provision();
                let a = env.open();
                let (e1, _) = a.seal(REC, JUR, PLAINTEXT).unwrap();
                std::fs::write(env.file("e1"), &e1).unwrap();

                // Another process (a replica, or the CLI) rotates.
                env.spawn_role("rotate");
                let e2 = std::fs::read(env.file("e2")).unwrap();
                assert_eq!(envelope::kek_version(&e2).unwrap(), 2);

                // Not yet seen here...
                assert_eq!(a.active_version(), 1);
                // ...until reload.
                assert!(a.reload().unwrap());
                assert!(!a.reload().unwrap());
                assert_eq!(a.active_version(), 2);
                assert_eq!(
                    a.key_versions()
                        .unwrap()
                        .iter()
                        .map(|k| k.version)
                        .collect::<Vec<_>>(),
                    vec![1, 2]
                );
                assert_eq!(a.seal(REC, JUR, PLAINTEXT).unwrap().1, 2);
                assert_eq!(a.open(REC, JUR, &e2).unwrap().as_slice(), PLAINTEXT);

                // A second provider in the same process shares the module and login.
                let b = env.open();
                assert_eq!(b.active_version(), 2);
                assert_eq!(b.rotate(NOW + DAY).unwrap(), 3);
                let (e3, v3) = b.seal(REC, JUR, PLAINTEXT).unwrap();
                assert_eq!(v3, 3);
                // An envelope on a version newer than `a` knows: `a` reloads by itself.
                assert_eq!(a.open(REC, JUR, &e3).unwrap().as_slice(), PLAINTEXT);
                assert_eq!(a.active_version(), 3);

                // Another process retires v1 after everything was rewrapped.
                let (e1b, _) = a.rewrap(REC, JUR, &e1).unwrap();
                env.spawn_role("retire");
                // The stale view: SoftHSM2 says the handle is invalid, the token is healthy,
                // so the version is unknown (not an outage).
                assert!(matches!(a.open(REC, JUR, &e1), Err(KeyError::Integrity)));
                assert!(matches!(
                    envelope::open(&a.key_wrapper(), &ctx(), &e1),
                    Err(CryptoError::UnknownKeyVersion(1))
                ));
                assert!(a.reload().unwrap());
                assert_eq!(
                    a.key_versions()
                        .unwrap()
                        .iter()
                        .map(|k| k.version)
                        .collect::<Vec<_>>(),
                    vec![2, 3]
                );
                assert!(matches!(a.open(REC, JUR, &e1), Err(KeyError::Integrity)));
                assert_eq!(a.open(REC, JUR, &e1b).unwrap().as_slice(), PLAINTEXT);
                a.check().unwrap();
            }
            "rotate" => {
                let r = env.open();
                assert_eq!(r.active_version(), 1);
                let e1 = std::fs::read(env.file("e1")).unwrap();
                // Same token, same KEK: the other process's envelope opens here.
                assert_eq!(r.open(REC, JUR, &e1).unwrap().as_slice(), PLAINTEXT);
                assert_eq!(r.rotate(NOW + DAY).unwrap(), 2);
                let (e2, _) = r.seal(REC, JUR, PLAINTEXT).unwrap();
                std::fs::write(env.file("e2"), e2).unwrap();
            }
            "retire" => {
                let r = env.open();
                assert_eq!(r.active_version(), 3);
                r.retire(1).unwrap();
            }
            other => panic!("unknown role {other}"),
        }
    });
}

#[test]
fn keys_are_sensitive_and_never_extractable() {
    run("keys_are_sensitive_and_never_extractable", |env| {
        env.provision();
        let keys = env.open();
        let s = raw_session();
        let kek = find_key(&s, "reporter-vault/kek/v1");
        let root = find_key(&s, vault_hsm::ROOT_LABEL);

        let want = [
            AttributeType::Class,
            AttributeType::KeyType,
            AttributeType::ValueLen,
            AttributeType::Token,
            AttributeType::Private,
            AttributeType::Sensitive,
            AttributeType::AlwaysSensitive,
            AttributeType::Extractable,
            AttributeType::NeverExtractable,
            AttributeType::Local,
            AttributeType::Modifiable,
            AttributeType::Encrypt,
            AttributeType::Decrypt,
            AttributeType::Sign,
            AttributeType::Verify,
            AttributeType::Wrap,
            AttributeType::Unwrap,
            AttributeType::Derive,
            AttributeType::Id,
        ];
        for (handle, key_type, usage, label) in [
            (
                kek,
                KeyType::AES,
                (true, true, false),
                "reporter-vault/kek/v1",
            ),
            (
                root,
                KeyType::GENERIC_SECRET,
                (false, false, true),
                vault_hsm::ROOT_LABEL,
            ),
        ] {
            let attrs = s.get_attributes(handle, &want).unwrap();
            assert_eq!(attrs.len(), want.len(), "{label}: {attrs:?}");
            for a in &attrs {
                match a {
                    Attribute::Class(c) => assert_eq!(*c, ObjectClass::SECRET_KEY),
                    Attribute::KeyType(k) => assert_eq!(*k, key_type),
                    Attribute::ValueLen(l) => assert_eq!(u64::from(*l), 32),
                    Attribute::Token(b)
                    | Attribute::Private(b)
                    | Attribute::Sensitive(b)
                    | Attribute::AlwaysSensitive(b)
                    | Attribute::NeverExtractable(b)
                    | Attribute::Local(b) => assert!(*b, "{label}: {a:?}"),
                    Attribute::Extractable(b)
                    | Attribute::Modifiable(b)
                    | Attribute::Verify(b)
                    | Attribute::Wrap(b)
                    | Attribute::Unwrap(b)
                    | Attribute::Derive(b) => assert!(!*b, "{label}: {a:?}"),
                    Attribute::Encrypt(b) => assert_eq!(*b, usage.0, "{label}"),
                    Attribute::Decrypt(b) => assert_eq!(*b, usage.1, "{label}"),
                    Attribute::Sign(b) => assert_eq!(*b, usage.2, "{label}"),
                    Attribute::Id(id) => assert_eq!(id.as_slice(), label.as_bytes()),
                    other => panic!("unexpected {other:?}"),
                }
            }

            // The value cannot be read...
            let info = s
                .get_attribute_info(handle, &[AttributeType::Value])
                .unwrap();
            assert!(
                matches!(info.as_slice(), [AttributeInfo::Sensitive]),
                "{label}: {info:?}"
            );
            assert!(
                s.get_attributes(handle, &[AttributeType::Value])
                    .unwrap()
                    .is_empty(),
                "{label}"
            );
            // ...nor wrapped out under a key of ours...
            let wrapping = s
                .generate_key(
                    &Mechanism::AesKeyGen,
                    &[
                        Attribute::Token(false),
                        Attribute::ValueLen(32.into()),
                        Attribute::Wrap(true),
                    ],
                )
                .unwrap();
            let wrapped = s.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, handle);
            assert!(
                matches!(wrapped, Err(CkError::Pkcs11(RvError::KeyUnextractable, _))),
                "{label}: {wrapped:?}"
            );
            // ...nor made extractable, relabelled, or copied into an extractable object.
            assert!(
                s.update_attributes(handle, &[Attribute::Extractable(true)])
                    .is_err()
            );
            assert!(
                s.update_attributes(handle, &[Attribute::Sensitive(false)])
                    .is_err()
            );
            assert!(
                s.update_attributes(
                    handle,
                    &[Attribute::Label(b"reporter-vault/kek/v9".to_vec())]
                )
                .is_err()
            );
            assert!(
                s.copy_object(handle, &[Attribute::Extractable(true)])
                    .is_err()
            );
        }
        // Still usable after all that.
        let (e, _) = keys.seal(REC, JUR, PLAINTEXT).unwrap();
        assert_eq!(keys.open(REC, JUR, &e).unwrap().as_slice(), PLAINTEXT);
    });
}

#[test]
fn derived_keys_are_stable_and_separate() {
    run("derived_keys_are_stable_and_separate", |env| {
        env.provision();
        let a = env.open();
        let phone = "+8613800138000";
        let index = a.blind_index("phone", phone).unwrap();
        let mac = a.field_mac("phone", phone).unwrap();
        let origin = a.log_origin();
        let log_key = a.log_verifier_key();
        let statement_key = a.statement_verifier_key();
        drop(a);

        // Another instance derives the same keys from the same root.
        let b = env.open();
        assert_eq!(b.blind_index("phone", phone).unwrap(), index);
        assert_eq!(b.field_mac("phone", phone).unwrap(), mac);
        assert_eq!(b.log_origin(), origin);
        assert_eq!(b.log_verifier_key(), log_key);
        assert_eq!(b.statement_verifier_key(), statement_key);

        // Separate keys and families.
        assert_ne!(index, mac);
        assert_ne!(b.blind_index("resident_id", phone).unwrap(), index);
        assert_ne!(log_key, statement_key);
        // Default origin: reporter-vault/ and 16 hex digits.
        let suffix = origin.strip_prefix("reporter-vault/").unwrap();
        assert_eq!(suffix.len(), 16);
        assert!(suffix.bytes().all(|c| c.is_ascii_hexdigit()));

        // Not the local keyring's keys.
        let local = Keyring::generate(&SystemRandomSource, NOW).unwrap();
        assert_ne!(local.blind_index_key().index("phone", phone), index);
        assert_ne!(local.disclosure_mac_key().field_mac("phone", phone), mac);

        // The derivation is the documented one: HMAC-SHA256(root, label) inside the token.
        let s = raw_session();
        let root = find_key(&s, vault_hsm::ROOT_LABEL);
        let derived = s
            .sign(
                &Mechanism::Sha256Hmac,
                root,
                vault_hsm::BLIND_INDEX_KEY_LABEL,
            )
            .unwrap();
        let key = BlindIndexKey::from_key(Key32::from_bytes(derived.try_into().unwrap()));
        assert_eq!(key.index("phone", phone), index);
    });
}

#[test]
fn checkpoints_and_statements_verify() {
    run("checkpoints_and_statements_verify", |env| {
        env.provision();
        let keys = env.open();
        let cp = Checkpoint {
            origin: keys.log_origin(),
            size: 5,
            root: [7; 32],
        };
        let note = keys.sign_checkpoint(&cp).unwrap();
        let verifier = NoteVerifier::parse(&keys.log_verifier_key()).unwrap();
        assert_eq!(verifier.verify(&note).unwrap(), cp);

        let statement = keys.sign_statement("reward rwd_01 paid\n").unwrap();
        let statements = NoteVerifier::parse(&keys.statement_verifier_key()).unwrap();
        assert_eq!(
            statements.verify_text(&statement).unwrap(),
            "reward rwd_01 paid\n"
        );
        assert!(verifier.verify_text(&statement).is_err());

        // A configured origin.
        let named = Pkcs11Keys::open(
            &env.config(),
            Arc::new(SystemRandomSource),
            Some("vault.example/audit"),
        )
        .unwrap();
        assert_eq!(named.log_origin(), "vault.example/audit");
        let cp = Checkpoint {
            origin: "vault.example/audit".into(),
            size: 1,
            root: [1; 32],
        };
        let note = named.sign_checkpoint(&cp).unwrap();
        assert_eq!(
            NoteVerifier::parse(&named.log_verifier_key())
                .unwrap()
                .verify(&note)
                .unwrap(),
            cp
        );
        // Same seed, so the same public key under another name.
        assert_eq!(
            keys.log_verifier_key().rsplit('+').next(),
            named.log_verifier_key().rsplit('+').next()
        );
    });
}

#[test]
fn concurrent_use_shares_the_session_pool() {
    run("concurrent_use_shares_the_session_pool", |env| {
        env.provision();
        let keys = Arc::new(env.open());
        let workers: Vec<_> = (0..8)
            .map(|t| {
                let keys = Arc::clone(&keys);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let record = format!("rec_{t}_{i}");
                        let (e, v) = keys.seal(&record, JUR, PLAINTEXT).unwrap();
                        assert_eq!(v, 1);
                        assert_eq!(keys.open(&record, JUR, &e).unwrap().as_slice(), PLAINTEXT);
                        assert!(matches!(keys.open(REC, JUR, &e), Err(KeyError::Integrity)));
                        keys.check().unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        // An invalid origin is refused with the origin in the message.
        let e = hsm_err(Pkcs11Keys::open(
            &env.config(),
            Arc::new(SystemRandomSource),
            Some("bad origin"),
        ));
        assert_eq!(
            e.to_string(),
            "invalid log origin 'bad origin': a note key name has no spaces, '+' or control characters"
        );
    });
}

#[test]
fn fails_closed_on_wrong_pin_unknown_token_and_bad_module() {
    run(
        "fails_closed_on_wrong_pin_unknown_token_and_bad_module",
        |env| {
            let rng = || Arc::new(SystemRandomSource);
            // Wrong PIN, nothing logged in yet: the token says CKR_PIN_INCORRECT.
            let e = hsm_err(provision(&env.config_with_pin(WRONG_PIN), NOW));
            assert_eq!(
                e.to_string(),
                "PKCS#11 login failed: PIN incorrect (token 'rv-test')"
            );
            env.provision();
            let e = hsm_err(Pkcs11Keys::open(
                &env.config_with_pin(WRONG_PIN),
                rng(),
                None,
            ));
            assert_eq!(
                e.to_string(),
                "PKCS#11 login failed: PIN incorrect (token 'rv-test')"
            );
            // Wrong PIN while this process is logged in (C_Login says "already logged in"
            // without checking): still refused.
            let good = env.open();
            let e = hsm_err(Pkcs11Keys::open(
                &env.config_with_pin(WRONG_PIN),
                rng(),
                None,
            ));
            assert_eq!(
                e.to_string(),
                "PKCS#11 login failed: PIN incorrect (token 'rv-test')"
            );
            good.check().unwrap();
            drop(good);
            // SoftHSM2 does not lock the PIN after failures: the right one still works.
            for _ in 0..5 {
                hsm_err(Pkcs11Keys::open(
                    &env.config_with_pin(WRONG_PIN),
                    rng(),
                    None,
                ));
            }
            env.open().check().unwrap();

            // Unknown token label.
            let e = hsm_err(Pkcs11Keys::open(
                &Pkcs11Config::new(MODULE, "no-such-token", SecretString::from(PIN)),
                rng(),
                None,
            ));
            assert_eq!(e.to_string(), "PKCS#11 token 'no-such-token' not found");

            // Module that does not exist, and a file that is not a shared library.
            let e = hsm_err(Pkcs11Keys::open(
                &Pkcs11Config::new("/nonexistent/libnope.so", LABEL, SecretString::from(PIN)),
                rng(),
                None,
            ));
            assert!(
                e.to_string()
                    .starts_with("PKCS#11 module /nonexistent/libnope.so could not be loaded: "),
                "{e}"
            );
            let not_a_module = env.file("not-a-module.so");
            std::fs::write(&not_a_module, "not a library").unwrap();
            let e = hsm_err(provision(
                &Pkcs11Config::new(&not_a_module, LABEL, SecretString::from(PIN)),
                NOW,
            ));
            assert!(
                e.to_string().starts_with(&format!(
                    "PKCS#11 module {} could not be loaded: ",
                    not_a_module.display()
                )),
                "{e}"
            );
            // The configuration's Debug does not show the PIN either.
            assert_no_pin(&format!("{:?}", env.config()));
        },
    );
}

#[test]
fn logged_out_token_fails_closed() {
    run("logged_out_token_fails_closed", |env| {
        env.provision();
        let keys = env.open();
        let (e1, _) = keys.seal(REC, JUR, PLAINTEXT).unwrap();
        // Logging out any session logs out the whole application.
        raw_session().logout().unwrap();
        let m = unavailable(keys.check());
        assert_eq!(m, "PKCS#11 token 'rv-test' is not logged in");
        // Logged out, SoftHSM2 hides private objects: the KEK handle is invalid, and the
        // provider's probe tells that apart from a retired key.
        for m in [
            unavailable(keys.seal(REC, JUR, PLAINTEXT)),
            unavailable(keys.open(REC, JUR, &e1)),
            unavailable(keys.rewrap(REC, JUR, &e1)),
        ] {
            assert_eq!(m, "PKCS#11 token 'rv-test' is not logged in");
        }
        for m in [
            unavailable(keys.reload()),
            unavailable(keys.rotate(NOW)),
            unavailable(keys.retire(1)),
        ] {
            assert_eq!(m, "PKCS#11 token 'rv-test' is not logged in");
        }
        // The in-memory derived keys still answer.
        keys.blind_index("phone", "1").unwrap();
        // A fresh provider logs in again and works.
        drop(keys);
        let again = env.open();
        again.check().unwrap();
        assert_eq!(again.open(REC, JUR, &e1).unwrap().as_slice(), PLAINTEXT);
    });
}

#[test]
fn deleted_token_fails_closed() {
    run("deleted_token_fails_closed", |env| {
        env.provision();
        let keys = env.open();
        let (e1, _) = keys.seal(REC, JUR, PLAINTEXT).unwrap();
        let index = keys.blind_index("phone", "1").unwrap();

        // The token directory is removed under the running provider.
        let out = Command::new(softhsm2_util())
            .args(["--delete-token", "--token", LABEL])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // SoftHSM2 keeps the sessions and the login, but the objects are gone: the KEK
        // handle is invalid and the probe finds no root key. Never `Integrity`, never a
        // panic, never a software fallback.
        let gone = "PKCS#11 token 'rv-test' no longer holds the root key reporter-vault/root";
        assert_eq!(unavailable(keys.check()), gone);
        assert_eq!(unavailable(keys.seal(REC, JUR, PLAINTEXT)), gone);
        assert_eq!(unavailable(keys.open(REC, JUR, &e1)), gone);
        assert_eq!(unavailable(keys.rewrap(REC, JUR, &e1)), gone);
        assert_eq!(unavailable(keys.reload()), gone);
        assert_eq!(unavailable(keys.rotate(NOW)), gone);
        assert_eq!(unavailable(keys.retire(1)), gone);
        // The derived keys live in memory and still answer (see the crate docs); readiness
        // (`check`) is what takes the replica out of service.
        assert_eq!(keys.blind_index("phone", "1").unwrap(), index);
        // A new provider does not start.
        let e = hsm_err(Pkcs11Keys::open(
            &env.config(),
            Arc::new(SystemRandomSource),
            None,
        ));
        assert_eq!(e.to_string(), "PKCS#11 token 'rv-test' not found");
    });
}

#[test]
fn reinitialised_token_fails_closed() {
    run("reinitialised_token_fails_closed", |env| {
        match env.role.as_str() {
            "main" => {
                env.provision();
                let keys = env.open();
                let (e1, _) = keys.seal(REC, JUR, PLAINTEXT).unwrap();
                let index = keys.blind_index("phone", "1").unwrap();

                // Another process wipes the token, re-initialises it under the same label with
                // a new PIN, and provisions new keys on it.
                let out = Command::new(softhsm2_util())
                    .args([
                        "--init-token",
                        "--token",
                        LABEL,
                        "--label",
                        LABEL,
                        "--so-pin",
                        SO_PIN,
                        "--pin",
                        NEW_PIN,
                    ])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                env.spawn_role("reprovision");
                let e_new = std::fs::read(env.file("e_new")).unwrap();

                // The running provider neither opens old envelopes with the new keys nor
                // new ones with the old: the token it started with is gone.
                let m = unavailable(keys.check());
                assert_eq!(
                    m,
                    "PKCS#11 token 'rv-test': the root key reporter-vault/root was replaced since start-up"
                );
                for r in [
                    keys.open(REC, JUR, &e1).map(|_| ()),
                    keys.open(REC, JUR, &e_new).map(|_| ()),
                    keys.seal(REC, JUR, PLAINTEXT).map(|_| ()),
                    keys.rewrap(REC, JUR, &e1).map(|_| ()),
                    keys.reload().map(|_| ()),
                    keys.rotate(NOW).map(|_| ()),
                    keys.retire(1),
                ] {
                    assert_eq!(unavailable(r), m);
                }
                assert_eq!(keys.blind_index("phone", "1").unwrap(), index);
            }
            "reprovision" => {
                // A fresh process sees the new token.
                let old = hsm_err(provision(&env.config(), NOW));
                assert_eq!(
                    old.to_string(),
                    "PKCS#11 login failed: PIN incorrect (token 'rv-test')"
                );
                let config = env.config_with_pin(NEW_PIN);
                provision(&config, NOW).unwrap();
                let keys = Pkcs11Keys::open(&config, Arc::new(SystemRandomSource), None).unwrap();
                let (e_new, _) = keys.seal(REC, JUR, PLAINTEXT).unwrap();
                std::fs::write(env.file("e_new"), e_new).unwrap();
            }
            other => panic!("unknown role {other}"),
        }
    });
}

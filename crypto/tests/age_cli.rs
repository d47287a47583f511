//! Interoperability with the real `age` command-line tool: what the vault
//! writes, users and operators must be able to open with stock tools, and
//! what they encrypt with stock tools the vault must read.
//!
//! Requires `age` and `age-keygen` on `PATH` (Debian package `age`; CI
//! installs it). There is no skip: what users decrypt must be proven to decrypt.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use vault_crypto::agefmt;
use vault_crypto::keyring::{Keyring, KeyringProtector};
use vault_crypto::random::DeterministicRandom;

fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The `age` and `age-keygen` binaries; their absence fails the test.
fn age_tools() -> Option<(PathBuf, PathBuf)> {
    match (tool("age"), tool("age-keygen")) {
        (Some(a), Some(k)) => Some((a, k)),
        _ => panic!("`age` and `age-keygen` must be on PATH (apt-get install age)"),
    }
}

fn run(cmd: &mut Command, stdin: &[u8]) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn recipient_of(keygen: &Path, identity: &Path) -> String {
    let out = run(Command::new(keygen).arg("-y").arg(identity), b"");
    String::from_utf8(out).unwrap().trim().to_string()
}

#[test]
fn keyring_saved_by_vault_decrypts_with_age_cli() {
    let Some((age, keygen)) = age_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("identity.txt");
    KeyringProtector::create_identity_file(&id).unwrap();
    let prot = KeyringProtector::IdentityFile(id.clone());
    let rng = DeterministicRandom::new(1);
    let mut kr = Keyring::generate(&rng, 1_700_000_000).unwrap();
    kr.rotate(&rng, 1_700_000_100).unwrap();
    let path = dir.path().join("keyring.age");
    kr.save(&path, &prot).unwrap();

    let plain = run(
        Command::new(&age).arg("-d").arg("-i").arg(&id).arg(&path),
        b"",
    );
    let doc: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(doc["format"], 1);
    assert_eq!(doc["active_kek"], 2);
    let keks = doc["keks"].as_array().unwrap();
    assert_eq!(keks.len(), 2);
    assert_eq!(keks[0]["version"], 1);
    assert_eq!(keks[0]["created_at"], 1_700_000_000);
    assert_eq!(
        doc["log_signing_seed"].as_str().unwrap(),
        STANDARD.encode(kr.log_signing_seed().expose_secret())
    );

    // And the other way: a keyring encrypted by the age CLI loads.
    let recipient = recipient_of(&keygen, &id);
    let reencrypted = run(Command::new(&age).arg("-r").arg(&recipient), &plain);
    let other = dir.path().join("from-cli.age");
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&other)
        .unwrap()
        .write_all(&reencrypted)
        .unwrap();
    let loaded = Keyring::load(&other, &prot).unwrap();
    assert_eq!(loaded.versions(), kr.versions());
    assert_eq!(
        loaded.log_signing_seed().expose_secret(),
        kr.log_signing_seed().expose_secret()
    );
    assert_eq!(
        loaded.blind_index_key().index("phone", "+8613800138000"),
        kr.blind_index_key().index("phone", "+8613800138000")
    );
}

#[test]
fn identity_file_from_age_keygen_is_accepted() {
    let Some((age, keygen)) = age_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("key.txt");
    run(Command::new(&keygen).arg("-o").arg(&id), b"");
    // age-keygen may create the file 0600 already; make sure, as an operator would.
    fs::set_permissions(&id, fs::Permissions::from_mode(0o600)).unwrap();
    let prot = KeyringProtector::IdentityFile(id.clone());
    let kr = Keyring::generate(&DeterministicRandom::new(2), 0).unwrap();
    let path = dir.path().join("keyring.age");
    kr.save(&path, &prot).unwrap();
    let loaded = Keyring::load(&path, &prot).unwrap();
    assert_eq!(loaded.versions(), vec![(1, 0)]);
    let plain = run(
        Command::new(&age).arg("-d").arg("-i").arg(&id).arg(&path),
        b"",
    );
    assert!(plain.starts_with(b"{\"format\":1,"));
}

#[test]
fn disclosure_encrypted_by_vault_decrypts_with_age_cli() {
    let Some((age, keygen)) = age_tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("custodian.txt");
    run(Command::new(&keygen).arg("-o").arg(&id), b"");
    let recipient = recipient_of(&keygen, &id);
    agefmt::validate_recipient(&recipient).unwrap();
    let secret = "{\"name\":\"张三\",\"resident_id\":\"11010519491231002X\"}".as_bytes();
    let ct = agefmt::encrypt_to_recipient(&recipient, secret).unwrap();
    assert!(ct.starts_with(b"age-encryption.org/v1\n"));
    let file = dir.path().join("disclosure.age");
    fs::write(&file, &ct).unwrap();
    let plain = run(
        Command::new(&age).arg("-d").arg("-i").arg(&id).arg(&file),
        b"",
    );
    assert_eq!(plain, secret);
}

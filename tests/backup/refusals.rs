//! What restore refuses, and that a refusal leaves the target exactly as it was: tampered
//! archives (re-encrypted, with the trailer recomputed, as a forger who knows the format
//! would), wrong identities and passphrases, another keyring, a missing erasure ledger; and
//! what backup refuses (no encryption, two kinds at once).

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Engine, Person, Plain, Server, Store, age_decrypt, age_encrypt, age_keygen, assert_ok,
    assert_refused, describe, set_private,
};

both_engines!(tampered_archives_are_refused_and_leave_the_target_empty);

/// The target holds nothing: no database yet, or every table empty.
async fn assert_empty(tgt: &Store, what: &str) {
    for t in [
        "principals",
        "reporters",
        "pseudonyms",
        "audit_events",
        "audit_nodes",
    ] {
        let n = tgt.count(t).await;
        assert!(n.is_none() || n == Some(0), "{what}: {t} holds {n:?} rows");
    }
}

/// A small source store: seals, a disclosure, stored checkpoints; then stopped.
async fn small_source() -> (Store, Vec<Person>) {
    let src = Store::new(Engine::Sqlite).await;
    let server = Server::start(&src).await;
    let mut people = Vec::new();
    for i in 0..5 {
        let p = Person::nth(200 + i);
        let ps = server.seal(&p, &format!("SX-T-{i}")).await;
        if i == 0 {
            server.approved_disclosure(&ps, &["phone"]).await;
        }
        people.push(p);
    }
    let (s, v) = server
        .call(
            Method::POST,
            "/v1/audit/checkpoint",
            &server.tokens.auditor,
            None,
        )
        .await;
    assert!(s == 200 || s == 201, "sign a checkpoint: {v}");
    // An event after the newest stored checkpoint too: killed, so no checkpoint is signed
    // at shutdown (the seal was acknowledged, so it is committed).
    let p = Person::nth(209);
    server.seal(&p, "SX-T-9").await;
    people.push(p);
    drop(server);
    (src, people)
}

fn event_line(plain: &Plain, index: usize) -> usize {
    let start = plain
        .lines
        .iter()
        .position(|l| l["type"] == "table" && l["name"] == "audit_events")
        .unwrap();
    start + 1 + index
}

fn set_rows(plain: &mut Plain, table: &str, delta: i64) {
    for l in plain.lines.iter_mut() {
        if l["type"] == "table" && l["name"] == table {
            l["rows"] = json!(l["rows"].as_i64().unwrap() + delta);
        }
    }
    let tables = plain.lines[0]["tables"].as_array_mut().unwrap();
    for t in tables {
        if t["name"] == table {
            t["rows"] = json!(t["rows"].as_i64().unwrap() + delta);
        }
    }
}

fn edit_leaf(plain: &mut Plain, index: usize, edit: impl Fn(&mut Vec<u8>)) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let col = plain.column("audit_events", "leaf");
    let line = event_line(plain, index);
    let mut leaf = b64
        .decode(plain.lines[line][col].as_str().unwrap())
        .unwrap();
    edit(&mut leaf);
    plain.lines[line][col] = Value::String(b64.encode(&leaf));
}

/// Recomputes `audit_nodes` and the header's tree root from the (edited) leaves.
fn reforge_tree(plain: &mut Plain) {
    use base64::Engine as _;
    use vault_crypto::merkle::{Frontier, leaf_hash};
    let b64 = base64::engine::general_purpose::STANDARD;
    let col = plain.column("audit_events", "leaf");
    let mut tree = Frontier::new();
    let mut nodes = Vec::new();
    for row in plain.rows("audit_events") {
        let leaf = b64.decode(row[col].as_str().unwrap()).unwrap();
        nodes.extend(tree.push(leaf_hash(&leaf)).unwrap());
    }
    nodes.sort_by_key(|(l, i, _)| (*l, *i));
    let start = plain
        .lines
        .iter()
        .position(|l| l["type"] == "table" && l["name"] == "audit_nodes")
        .unwrap();
    let old = plain.rows("audit_nodes").len();
    assert_eq!(old, nodes.len(), "the same tree shape");
    for (k, (l, i, h)) in nodes.into_iter().enumerate() {
        plain.lines[start + 1 + k] = json!([l, i, b64.encode(h)]);
    }
    plain.lines[0]["tree_root"] = json!(hex::encode(tree.root()));
}

async fn tampered_archives_are_refused_and_leave_the_target_empty(target: Engine) {
    let (src, _people) = small_source().await;
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("id.key");
    let recipient = age_keygen(&identity);
    let archive = keys.path().join("vault.age");
    let out = src
        .run(
            &[
                "backup",
                "--out",
                archive.to_str().unwrap(),
                "--recipient",
                &recipient,
            ],
            &[],
        )
        .await;
    assert_ok(&out, "backup");
    let plain = Plain::parse(&age_decrypt(&identity, &archive));
    let checkpoints = plain.rows("audit_checkpoints");
    assert!(!checkpoints.is_empty(), "the source has stored checkpoints");
    let events = plain.rows("audit_events").len();
    assert!(events > 8);

    let tgt = Store::with_keyring_of(target, &src).await;
    tgt.empty_ledger();
    let restore = |file: std::path::PathBuf| {
        let args: Vec<String> = vec![
            "restore".into(),
            "--in".into(),
            file.to_str().unwrap().into(),
            "--identity".into(),
            identity.to_str().unwrap().into(),
        ];
        let tgt = &tgt;
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            tgt.run(&a, &[]).await
        }
    };

    let mut cases: Vec<(&str, Plain, &str)> = Vec::new();
    // One byte inside an event leaf, in a field no column copies (the principal's name).
    let by_demo = (0..events)
        .find(|i| {
            let l = crate::harness::leaf_of(&plain, &plain.rows("audit_events")[*i]);
            l["actor_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("demo "))
        })
        .expect("an event by a demo principal");
    let mut p = plain.clone();
    edit_leaf(&mut p, by_demo, |leaf| {
        let at = leaf
            .windows(6)
            .position(|w| w == b"\"demo ")
            .expect("an actor name in the leaf");
        leaf[at + 1] = b'D';
    });
    cases.push((
        "a byte flipped inside an event leaf",
        p,
        "the archive was altered",
    ));
    // One byte of the newest event, which no stored checkpoint covers: the signed snapshot
    // checkpoint does.
    let mut p = plain.clone();
    edit_leaf(&mut p, events - 1, |leaf| {
        let at = leaf
            .windows(12)
            .position(|w| w == b"\"request_id\"")
            .expect("a request id");
        leaf[at + 15] ^= 0x01;
    });
    cases.push((
        "a byte flipped in the newest event",
        p,
        "the archive was altered",
    ));
    // The same, by a forger who also recomputes the header's root and every tree node: only
    // the snapshot checkpoint's signature can tell.
    let mut p = plain.clone();
    edit_leaf(&mut p, events - 1, |leaf| {
        let at = leaf
            .windows(12)
            .position(|w| w == b"\"request_id\"")
            .expect("a request id");
        leaf[at + 15] ^= 0x01;
    });
    reforge_tree(&mut p);
    cases.push((
        "the newest event edited, tree and header recomputed",
        p,
        "the signed snapshot checkpoint names a trail of",
    ));
    // An event removed (and the counts fixed so only the trail can tell).
    let mut p = plain.clone();
    p.lines.remove(event_line(&p, 4));
    set_rows(&mut p, "audit_events", -1);
    cases.push(("an event removed", p, "gap at index 4"));
    // A stored checkpoint edited: its note claims another root.
    let mut p = plain.clone();
    let note_col = p.column("audit_checkpoints", "note");
    let line = p
        .lines
        .iter()
        .position(|l| l["type"] == "table" && l["name"] == "audit_checkpoints")
        .unwrap()
        + 1;
    let note = p.lines[line][note_col].as_str().unwrap().to_owned();
    let mut note_lines: Vec<String> = note.split('\n').map(str::to_owned).collect();
    let root = note_lines[2].clone();
    note_lines[2] = format!(
        "{}{}",
        if root.starts_with('A') { 'B' } else { 'A' },
        &root[1..]
    );
    p.lines[line][note_col] = Value::String(note_lines.join("\n"));
    cases.push((
        "a stored checkpoint edited",
        p,
        "does not verify with this keyring's log key",
    ));
    // The snapshot checkpoint removed.
    let mut p = plain.clone();
    let at = p
        .lines
        .iter()
        .position(|l| l["type"] == "checkpoint")
        .unwrap();
    p.lines.remove(at);
    cases.push(("the snapshot checkpoint removed", p, "snapshot checkpoint"));

    for (i, (what, p, needle)) in cases.into_iter().enumerate() {
        let file = keys.path().join(format!("tampered-{i}.age"));
        age_encrypt(&recipient, &p.to_bytes_resealed(), &file);
        let out = restore(file).await;
        assert_refused(&out, "restore refused", what);
        assert_refused(&out, needle, what);
        assert_empty(&tgt, what).await;
    }

    // A corruption that keeps the structure but not the trailer.
    let mut bytes = age_decrypt(&identity, &archive);
    // A case reference in a pseudonym row: nothing but the trailer covers it.
    let at = bytes.windows(8).position(|w| w == b"\"SX-T-1\"").unwrap();
    bytes[at + 6] = b'7';
    let file = keys.path().join("trailer.age");
    age_encrypt(&recipient, &bytes, &file);
    let out = restore(file).await;
    assert_refused(&out, "SHA-256 trailer", "a byte changed, trailer kept");
    assert_empty(&tgt, "trailer").await;

    // The encrypted file truncated.
    let enc = std::fs::read(&archive).unwrap();
    let file = keys.path().join("truncated.age");
    std::fs::write(&file, &enc[..enc.len() - 40]).unwrap();
    let out = restore(file).await;
    assert_refused(&out, "restore refused", "a truncated archive");
    assert_empty(&tgt, "truncated").await;

    // The genuine archive restores into the same target: the refusals left it empty.
    let out = restore(archive.clone()).await;
    assert_ok(&out, "the genuine archive after the refusals");
    assert_eq!(tgt.count("audit_events").await, Some(events as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_missing_ledger_and_bad_options_are_refused() {
    let (src, people) = small_source().await;
    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("id.key");
    let recipient = age_keygen(&identity);
    let stranger = keys.path().join("stranger.key");
    age_keygen(&stranger);
    let pass_file = keys.path().join("backup.pass");
    std::fs::write(&pass_file, "correct horse battery staple 备份\n").unwrap();
    set_private(&pass_file);
    let wrong_pass = keys.path().join("wrong.pass");
    std::fs::write(&wrong_pass, "incorrect horse\n").unwrap();
    set_private(&wrong_pass);
    let pass_env = [("RV_BACKUP_PASSPHRASE_FILE", pass_file.to_str().unwrap())];

    // backup: never unencrypted, never two kinds at once, a recipient checked (and not echoed).
    let out_path = keys.path().join("x.age");
    let out = src
        .run(&["backup", "--out", out_path.to_str().unwrap()], &[])
        .await;
    assert_refused(&out, "always encrypted", "backup without encryption");
    let out = src
        .run(
            &[
                "backup",
                "--out",
                out_path.to_str().unwrap(),
                "--recipient",
                &recipient,
            ],
            &pass_env,
        )
        .await;
    assert_refused(&out, "not both", "backup to a recipient and a passphrase");
    let secret = std::fs::read_to_string(&identity)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_owned();
    let out = src
        .run(
            &[
                "backup",
                "--out",
                out_path.to_str().unwrap(),
                "--recipient",
                &secret,
            ],
            &[],
        )
        .await;
    assert_refused(
        &out,
        "not an age X25519 recipient",
        "a secret key as recipient",
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&secret));
    assert!(!out_path.exists());

    let by_pass = keys.path().join("pass.age");
    let out = src
        .run(&["backup", "--out", by_pass.to_str().unwrap()], &pass_env)
        .await;
    assert_ok(&out, "backup with a passphrase");
    let by_key = keys.path().join("key.age");
    let out = src
        .run(
            &[
                "backup",
                "--out",
                by_key.to_str().unwrap(),
                "--recipient",
                &recipient,
            ],
            &[],
        )
        .await;
    assert_ok(&out, "backup to a recipient");

    let tgt = Store::with_keyring_of(Engine::Sqlite, &src).await;
    // No erasure ledger: refused, and the message says what an empty one means.
    let out = tgt
        .run(&["restore", "--in", by_pass.to_str().unwrap()], &pass_env)
        .await;
    assert_refused(&out, "erasure ledger", "restore without a ledger");
    assert_refused(
        &out,
        "an empty ledger means \"no erasures\"",
        "restore without a ledger",
    );
    assert!(
        !tgt.data_dir().join("vault.db").exists(),
        "{}",
        describe(&out)
    );
    tgt.empty_ledger();

    let wrong_env = [("RV_BACKUP_PASSPHRASE_FILE", wrong_pass.to_str().unwrap())];
    let out = tgt
        .run(&["restore", "--in", by_pass.to_str().unwrap()], &wrong_env)
        .await;
    assert_refused(&out, "cannot be decrypted", "a wrong passphrase");
    let out = tgt
        .run(
            &[
                "restore",
                "--in",
                by_key.to_str().unwrap(),
                "--identity",
                stranger.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_refused(&out, "cannot be decrypted", "another identity");
    let out = tgt
        .run(
            &[
                "restore",
                "--in",
                by_pass.to_str().unwrap(),
                "--identity",
                identity.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_refused(
        &out,
        "cannot be decrypted",
        "an identity for a passphrase archive",
    );
    let out = tgt
        .run(&["restore", "--in", by_key.to_str().unwrap()], &[])
        .await;
    assert!(!out.status.success(), "no identity: {}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--identity"));
    // An identity file others can read is refused before it is read.
    let open_identity = keys.path().join("open.key");
    std::fs::copy(&identity, &open_identity).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open_identity, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = tgt
        .run(
            &[
                "restore",
                "--in",
                by_key.to_str().unwrap(),
                "--identity",
                open_identity.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_refused(
        &out,
        "readable by group or others",
        "a readable identity file",
    );

    // Another keyring (another vault's log key): refused before anything is written.
    let stranger_store = Store::new(Engine::Sqlite).await;
    stranger_store.empty_ledger();
    let out = stranger_store
        .run(
            &[
                "restore",
                "--in",
                by_key.to_str().unwrap(),
                "--identity",
                identity.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_refused(&out, "log key", "a restore with another keyring");
    assert_empty(&stranger_store, "another keyring").await;
    // No keyring at all.
    let bare = Store::without_keyring(Engine::Sqlite).await;
    bare.empty_ledger();
    let out = bare
        .run(
            &[
                "restore",
                "--in",
                by_key.to_str().unwrap(),
                "--identity",
                identity.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_refused(
        &out,
        "keyring.age is missing",
        "a restore without the keyring",
    );

    assert_empty(&tgt, "after the refusals").await;
    let out = tgt
        .run(&["restore", "--in", by_pass.to_str().unwrap()], &pass_env)
        .await;
    assert_ok(&out, "the right passphrase");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("access trail verified"), "{stdout}");
    crate::harness::assert_no_identity(&out.stdout, &people, "restore stdout");
    crate::harness::assert_no_identity(&out.stderr, &people, "restore stderr");
    assert!(!stdout.contains("WARNING"), "{stdout}");

    // The same log key but the KEK the envelopes use retired since: restored, and said loudly.
    let rotated = Store::with_keyring_of(Engine::Sqlite, &src).await;
    rotated.empty_ledger();
    let protector = vault_crypto::keyring::KeyringProtector::Passphrase(
        secrecy::SecretString::from(src.passphrase.clone()),
    );
    let mut kr = vault_crypto::keyring::Keyring::load(&rotated.keyring_path(), &protector)
        .expect("load the copied keyring");
    let v2 = kr
        .rotate(&vault_crypto::random::SystemRandomSource, 1_790_000_100)
        .unwrap();
    kr.retire(1).unwrap();
    kr.save_with_work_factor(&rotated.keyring_path(), &protector, 10)
        .unwrap();
    assert_eq!(v2, 2);
    let out = rotated
        .run(
            &[
                "restore",
                "--in",
                by_key.to_str().unwrap(),
                "--identity",
                identity.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_ok(&out, "a restore with a retired KEK");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "WARNING: the archive holds envelopes wrapped under KEK versions these keys do not \
             hold ({} under KEK version 1)",
            people.len()
        )),
        "{}",
        describe(&out)
    );
}

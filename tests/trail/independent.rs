//! The independent verifier (`tests/independent-verifier/verify.py`, written from RFC 6962,
//! RFC 8032 and the C2SP specifications alone) over a real export written by the real binary:
//! it accepts the genuine export with the same root as the service, and rejects tampered
//! copies naming the first bad index or checkpoint.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use vault_crypto::checkpoint::LogSigner;
use vault_crypto::secret::Key32;

use crate::harness::{CliOut, Engine, names_index, run_cli};
use crate::tamper::{build, change_time_digit, parse_note, replace_signature, signature_of};

const VERIFY_PY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/independent-verifier/verify.py"
);

async fn python(args: &[&str]) -> CliOut {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg(VERIFY_PY).args(args).kill_on_drop(true);
    run_cli(cmd, args).await
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("export file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Writes `lines` as an export file, renumbering the leaf lines' `index` in order (as a
/// forger re-exporting an edited database would).
fn write_lines(dir: &Path, name: &str, lines: &[Value]) -> PathBuf {
    let mut n = 0u64;
    let mut out = String::new();
    for l in lines {
        let mut l = l.clone();
        if l["type"] == "leaf" {
            l["index"] = json!(n);
            n += 1;
        }
        out.push_str(&serde_json::to_string(&l).expect("json"));
        out.push('\n');
    }
    let p = dir.join(name);
    std::fs::write(&p, out).expect("writing a tampered export");
    p
}

fn leaf_pos(lines: &[Value], k: u64) -> usize {
    lines
        .iter()
        .position(|l| l["type"] == "leaf" && l["index"] == k)
        .expect("leaf line")
}

#[track_caller]
fn assert_rejected(out: &CliOut, what: &str) {
    assert_eq!(
        out.code,
        Some(1),
        "{what}: the independent verifier must reject it: {}",
        out.all()
    );
    assert!(out.stderr.contains("FAILED"), "{what}: {}", out.all());
}

async fn independent_verifier_on_real_export(engine: Engine) {
    let selftest = python(&["--self-test"]).await;
    assert!(selftest.ok(), "verify.py --self-test: {}", selftest.all());

    let f = build(engine).await;
    let dir = f.storage.data_dir().to_owned();
    let export = dir.join("trail-export.jsonl");
    let export_s = export.to_str().expect("utf-8").to_owned();
    let out = f
        .storage
        .cli(&["audit", "export", "--out", &export_s])
        .await;
    assert!(out.ok(), "audit export: {}", out.all());
    let lines = read_lines(&export);
    assert_eq!(lines[0]["type"], "header");
    assert_eq!(
        lines.iter().filter(|l| l["type"] == "leaf").count() as u64,
        f.n
    );
    assert_eq!(
        lines.iter().filter(|l| l["type"] == "checkpoint").count(),
        2
    );

    // Genuine: accepted, with the root of the latest signed checkpoint and of the service's
    // own verifier.
    let out = python(&[&export_s, &f.vkey]).await;
    assert!(
        out.ok(),
        "verify.py rejects the genuine export: {}",
        out.all()
    );
    let root_hex = hex::encode(parse_note(&f.vkey, &f.saved).root);
    assert!(
        out.stdout.contains(&format!("root {root_hex}")),
        "verify.py prints the checkpoint's root {root_hex}: {}",
        out.all()
    );
    assert!(
        out.stdout
            .contains(&format!("ok: {} leaves, 2 checkpoints", f.n))
    );
    let rust = f.storage.cli(&["audit", "verify"]).await;
    assert!(
        rust.stdout.contains(&format!("root {root_hex}")),
        "the service's verifier agrees on the root: {}",
        rust.all()
    );
    let rust_file = f
        .storage
        .cli(&[
            "audit",
            "verify",
            "--file",
            &export_s,
            "--public-key",
            &f.vkey,
        ])
        .await;
    assert!(rust_file.ok(), "audit verify --file: {}", rust_file.all());
    // The saved checkpoint can be passed in too.
    let saved = f.saved_file();
    let out = python(&[
        &export_s,
        &f.vkey,
        "--checkpoint",
        saved.to_str().expect("utf-8"),
    ])
    .await;
    assert!(out.ok(), "with the saved checkpoint: {}", out.all());

    let k = f.k();
    let (s1, n) = (f.s1, f.n);

    // A byte of a leaf's value changed (still a canonical event): the root no longer matches
    // the second checkpoint; the first bad index lies after the first checkpoint.
    let mut t = lines.clone();
    let pos = leaf_pos(&t, k);
    let leaf = STANDARD
        .decode(t[pos]["leaf"].as_str().expect("leaf"))
        .expect("b64");
    t[pos]["leaf"] = json!(STANDARD.encode(change_time_digit(&leaf)));
    let p = write_lines(&dir, "t-byte.jsonl", &t);
    let p = p.to_str().expect("utf-8");
    let out = python(&[p, &f.vkey]).await;
    assert_rejected(&out, "a leaf byte changed");
    assert!(
        out.stderr
            .contains(&format!("first bad index in [{s1}, {n})")),
        "names the range after the last good checkpoint: {}",
        out.all()
    );
    let out = f
        .storage
        .cli(&["audit", "verify", "--file", p, "--public-key", &f.vkey])
        .await;
    assert!(
        !out.ok(),
        "audit verify --file catches it too: {}",
        out.all()
    );

    // A leaf deleted, leaves swapped, the tail cut: named at k.
    let mut deleted = lines.clone();
    deleted.remove(leaf_pos(&deleted, k));
    let mut swapped = lines.clone();
    let (a, b) = (leaf_pos(&swapped, k), leaf_pos(&swapped, k + 1));
    let tmp = swapped[a]["leaf"].clone();
    swapped[a]["leaf"] = swapped[b]["leaf"].clone();
    swapped[b]["leaf"] = tmp;
    let cut: Vec<Value> = lines
        .iter()
        .filter(|l| l["type"] != "leaf" || l["index"].as_u64().expect("index") < k)
        .cloned()
        .collect();
    for (name, t) in [
        ("t-deleted.jsonl", deleted),
        ("t-swapped.jsonl", swapped),
        ("t-truncated.jsonl", cut),
    ] {
        let p = write_lines(&dir, name, &t);
        let out = python(&[p.to_str().expect("utf-8"), &f.vkey]).await;
        assert_rejected(&out, name);
        assert!(
            names_index(&out.stderr, k),
            "{name}: names index {k}: {}",
            out.all()
        );
    }

    // A checkpoint's signature replaced by the log key's signature of another checkpoint.
    let mut t = lines.clone();
    let cp = t
        .iter()
        .position(|l| l["type"] == "checkpoint")
        .expect("checkpoint line");
    let note = t[cp]["note"].as_str().expect("note").to_owned();
    t[cp]["note"] = json!(replace_signature(&note, &signature_of(&f.saved)));
    let p = write_lines(&dir, "t-signature.jsonl", &t);
    let out = python(&[p.to_str().expect("utf-8"), &f.vkey]).await;
    assert_rejected(&out, "a checkpoint signature replaced");
    assert!(
        out.stderr.contains("bad checkpoint") && out.stderr.contains("signature"),
        "{}",
        out.all()
    );

    // Another key with the same name: its key id differs, so no signature is by the key
    // given out of band.
    let origin = parse_note(&f.vkey, &f.saved).origin;
    let other = LogSigner::from_seed(&origin, &Key32::from_bytes([0x42; 32]))
        .expect("signer")
        .verifier_key();
    let out = python(&[&export_s, &other]).await;
    assert_rejected(&out, "the wrong verifier key");

    // A rolled-back export, caught by the checkpoint the auditor saved earlier.
    let rolled: Vec<Value> = lines
        .iter()
        .filter(|l| match l["type"].as_str() {
            Some("leaf") => l["index"].as_u64().expect("index") < k,
            Some("checkpoint") => parse_note(&f.vkey, l["note"].as_str().expect("note")).size <= k,
            _ => true,
        })
        .cloned()
        .collect();
    let p = write_lines(&dir, "t-rolled-back.jsonl", &rolled);
    let p = p.to_str().expect("utf-8");
    let out = python(&[p, &f.vkey]).await;
    assert!(
        out.ok(),
        "a consistent older state verifies alone: {}",
        out.all()
    );
    let out = python(&[p, &f.vkey, "--checkpoint", saved.to_str().expect("utf-8")]).await;
    assert_rejected(&out, "rolled back, against the saved checkpoint");
    assert!(names_index(&out.stderr, k), "{}", out.all());
}

both_engines!(independent_verifier_on_real_export);

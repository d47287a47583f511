//! `reporter-vault audit export|verify`: the access trail offline.
//!
//! Export format (JSON lines): one `{"type":"header","format":1,"verifier_key":…}`, then one
//! `{"type":"leaf","index":n,"leaf":"<base64 of the exact leaf bytes>"}` per event in order,
//! then one `{"type":"checkpoint","note":"<signed note>"}` per checkpoint. A verifier needs
//! nothing else: RFC 6962 hashing over the decoded leaves and the C2SP note format.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use base64::Engine as _;
use indicatif::{ProgressBar, ProgressStyle};
use vault_crypto::checkpoint::NoteVerifier;
use vault_domain::ports::Store;
use vault_domain::verify::{LogVerifier, VerifyError, VerifyReport};

use crate::app::{OpenedVault, StartError};

const PAGE: u32 = 5000;

/// One line of the export file.
#[derive(serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Line {
    Header {
        #[allow(dead_code)]
        format: u32,
        #[allow(dead_code)]
        verifier_key: String,
    },
    Leaf {
        #[allow(dead_code)]
        index: u64,
        leaf: String,
    },
    Checkpoint {
        note: String,
    },
}

fn parse_line(line: &str) -> Result<Line, AuditCliError> {
    serde_json::from_str(line).map_err(|e| other(format!("export file: {e}")))
}

fn bar(len: u64) -> ProgressBar {
    // Drawn on stderr only when it is a terminal; CI and scripts see just the result.
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

/// Why `audit verify` failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditCliError {
    /// The trail is not what its checkpoints say.
    #[error("access trail verification FAILED: {0}")]
    Tampered(#[from] VerifyError),
    /// Reading it failed.
    #[error("{0}")]
    Other(String),
}

impl From<StartError> for AuditCliError {
    fn from(e: StartError) -> Self {
        AuditCliError::Other(e.to_string())
    }
}

fn other(e: impl std::fmt::Display) -> AuditCliError {
    AuditCliError::Other(e.to_string())
}

fn extra_checkpoints(paths: &[std::path::PathBuf]) -> Result<Vec<String>, AuditCliError> {
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).map_err(|e| other(format!("{}: {e}", p.display()))))
        .collect()
}

/// Verifies the trail in the store against the keyring's log key.
pub async fn verify_store(
    opened: &OpenedVault,
    saved: &[std::path::PathBuf],
    strict: bool,
) -> Result<VerifyReport, AuditCliError> {
    let verifier = NoteVerifier::parse(&opened.vault.log_public_key()).map_err(other)?;
    let mut repo = opened.store.read().await.map_err(other)?;
    let mut notes: Vec<String> = repo
        .checkpoints()
        .await
        .map_err(other)?
        .into_iter()
        .map(|c| c.note)
        .collect();
    notes.extend(extra_checkpoints(saved)?);
    let total = repo.event_count().await.map_err(other)?;
    let mut v = LogVerifier::new(verifier, &notes)?.strict(strict);
    let pb = bar(total);
    drop(repo);
    loop {
        // Raw bytes, never parsed by the store: a leaf that no longer parses is reported at
        // its index by the verifier, not as a read error.
        let first = v.size();
        let page = opened.store.raw_leaves(first, PAGE).await.map_err(other)?;
        if page.is_empty() {
            break;
        }
        let stored = opened.store.leaf_hashes(first, PAGE).await.map_err(other)?;
        for (i, leaf) in page.iter().enumerate() {
            let kept = stored.get(&(first + i as u64)).copied();
            v.push_with_stored_hash(leaf, kept)?;
        }
        pb.set_position(v.size());
    }
    pb.finish_and_clear();
    Ok(v.finish()?)
}

/// Verifies an exported file against a verifier key given out of band.
pub fn verify_file(
    path: &Path,
    verifier_key: &str,
    saved: &[std::path::PathBuf],
    strict: bool,
) -> Result<VerifyReport, AuditCliError> {
    let verifier = NoteVerifier::parse(verifier_key.trim())
        .map_err(|_| other("--public-key is not a note verifier key"))?;
    let read = || -> Result<std::io::BufReader<std::fs::File>, AuditCliError> {
        Ok(std::io::BufReader::new(
            std::fs::File::open(path).map_err(|e| other(format!("{}: {e}", path.display())))?,
        ))
    };
    // First pass: the checkpoints (they sit at the end of the file).
    let mut notes = extra_checkpoints(saved)?;
    for line in read()?.lines() {
        let line = line.map_err(other)?;
        if let Line::Checkpoint { note } = parse_line(&line)? {
            notes.push(note);
        }
    }
    let mut v = LogVerifier::new(verifier, &notes)?.strict(strict);
    let pb = bar(0);
    for line in read()?.lines() {
        let line = line.map_err(other)?;
        let Line::Leaf { leaf, .. } = parse_line(&line)? else {
            continue;
        };
        let leaf = base64::engine::general_purpose::STANDARD
            .decode(leaf)
            .map_err(|_| VerifyError::Leaf {
                index: v.size(),
                reason: "leaf is not base64",
            })?;
        v.push(&leaf)?;
        if v.size() % 10_000 == 0 {
            pb.set_position(v.size());
        }
    }
    pb.finish_and_clear();
    Ok(v.finish()?)
}

/// Writes the export file.
pub async fn export(opened: &OpenedVault, out: &Path) -> Result<u64, AuditCliError> {
    let file = std::fs::File::create(out).map_err(|e| other(format!("{}: {e}", out.display())))?;
    let mut w = BufWriter::new(file);
    let header = serde_json::json!({
        "type": "header", "format": 1, "verifier_key": opened.vault.log_public_key(),
    });
    writeln!(w, "{header}").map_err(other)?;
    let mut repo = opened.store.read().await.map_err(other)?;
    let total = repo.event_count().await.map_err(other)?;
    let pb = bar(total);
    let mut next = 0u64;
    loop {
        let page = opened.store.raw_leaves(next, PAGE).await.map_err(other)?;
        if page.is_empty() {
            break;
        }
        for leaf in page {
            let line = serde_json::json!({
                "type": "leaf", "index": next,
                "leaf": base64::engine::general_purpose::STANDARD.encode(&leaf),
            });
            writeln!(w, "{line}").map_err(other)?;
            next += 1;
        }
        pb.set_position(next);
    }
    for cp in repo.checkpoints().await.map_err(other)? {
        writeln!(
            w,
            "{}",
            serde_json::json!({"type": "checkpoint", "note": cp.note})
        )
        .map_err(other)?;
    }
    w.flush().map_err(other)?;
    pb.finish_and_clear();
    Ok(next)
}

//! `reporter-vault keys …`: the same key lifecycle as the admin endpoints, for operators with
//! access to the data directory / database and the keyring (or HSM). Safe while the service
//! runs: rotations are picked up by every replica within RV_KEY_RELOAD_SECONDS, and rewrap
//! swaps each envelope only if it is unchanged since it was read.

use std::sync::Arc;

use vault_crypto::random::RandomSource;
use vault_domain::clock::Clock;

use crate::app::{KeyProviderConfig, StartError, VaultConfig};

/// What `keys` was asked to do (with its configuration, or why it could not be read).
pub enum KeysAction {
    /// `keys status`.
    Status(Result<VaultConfig, StartError>),
    /// `keys rotate`.
    Rotate(Result<VaultConfig, StartError>),
    /// `keys rewrap`.
    Rewrap(Result<VaultConfig, StartError>),
    /// `keys retire N`.
    Retire(Result<VaultConfig, StartError>, u32),
    /// `keys init-hsm`.
    InitHsm(Result<VaultConfig, StartError>),
}

fn out(s: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{s}");
}

fn status_text(k: &vault_domain::lifecycle::KeyStatus) -> String {
    let mut t = format!(
        "provider {}  active version {}\nversion  created                    records  state\n",
        k.provider, k.active_version
    );
    for v in &k.versions {
        let state = if v.retired {
            "retired"
        } else if v.version == k.active_version {
            "active"
        } else {
            "held"
        };
        t.push_str(&format!(
            "{:>7}  {:<25}  {:>7}  {state}\n",
            v.version,
            vault_domain::clock::rfc3339_cst(v.created_at),
            v.records
        ));
    }
    t
}

/// Runs one `keys` subcommand.
pub async fn run(
    action: KeysAction,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn RandomSource>,
) -> Result<(), StartError> {
    if let KeysAction::InitHsm(cfg) = action {
        let cfg = cfg?;
        let KeyProviderConfig::Pkcs11(hsm) = &cfg.ops.key_provider else {
            return Err(StartError::Config(
                "keys init-hsm needs RV_KEY_PROVIDER=pkcs11".into(),
            ));
        };
        let hsm = hsm.clone();
        let now = clock.now().unix_timestamp();
        let p = tokio::task::spawn_blocking(move || vault_hsm::provision(&hsm, now))
            .await
            .map_err(|e| StartError::Config(format!("PKCS#11: {e}")))?
            .map_err(|e| StartError::Config(format!("PKCS#11: {e}")))?;
        out(format!(
            "ok: root key {}, KEK v1 {}",
            if p.created_root { "created" } else { "present" },
            if p.created_kek { "created" } else { "present" }
        ));
        return Ok(());
    }
    let (cfg, what) = match action {
        KeysAction::Status(c) => (c?, Op::Status),
        KeysAction::Rotate(c) => (c?, Op::Rotate),
        KeysAction::Rewrap(c) => (c?, Op::Rewrap),
        KeysAction::Retire(c, v) => (c?, Op::Retire(v)),
        KeysAction::InitHsm(_) => return Ok(()),
    };
    let opened = cfg.open(clock, rng).await?;
    let vault = &opened.vault;
    let result = async {
        match what {
            Op::Status => {
                let k = vault.key_status(None).await?;
                out(status_text(&k));
            }
            Op::Rotate => {
                let v = vault.rotate_keys(None).await?;
                out(format!(
                    "ok: key version {v} is active for new records; run `keys rewrap` to move \
                     existing records to it"
                ));
            }
            Op::Retire(v) => {
                vault.retire_key(None, v).await?;
                out(format!("ok: key version {v} retired (destroyed)"));
            }
            Op::Rewrap => {
                let job = vault.start_rewrap(None).await?;
                let bar = indicatif::ProgressBar::new(job.total.max(1));
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "rewrap {bar:40} {pos}/{len} records  {per_sec}  eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                // Not a terminal (CI, a pipe): one line per step instead of redrawing.
                let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
                let done = vault
                    .run_job(job, vault_domain::lifecycle::JobRunner::Cli, |j| {
                        bar.set_length(j.total.max(1));
                        bar.set_position(j.done + j.failed);
                        if !tty {
                            eprintln!("rewrap: {}/{} records", j.done + j.failed, j.total);
                        }
                    })
                    .await?;
                bar.finish_and_clear();
                out(format!(
                    "ok: {} records rewrapped to version {}, {} failed (job {})",
                    done.done,
                    opened.keys.active_version(),
                    done.failed,
                    done.id
                ));
                if done.failed > 0 {
                    return Err(vault_domain::DomainError::Integrity);
                }
            }
        }
        Ok::<(), vault_domain::DomainError>(())
    }
    .await;
    opened.store.close().await;
    result.map_err(StartError::from)
}

enum Op {
    Status,
    Rotate,
    Rewrap,
    Retire(u32),
}

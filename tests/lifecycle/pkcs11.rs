//! The service on a PKCS#11 token (a real SoftHSM2, one token directory and configuration per
//! test, handed to the child processes through SOFTHSM2_CONF): provisioning with
//! `keys init-hsm`, start-up refusals that name PKCS#11 and never the PIN, seal / disclose /
//! open, rotation + rewrap + retirement through the endpoints, and losing the token while
//! the service runs (fail closed: not ready, nothing disclosed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use tempfile::TempDir;

use crate::harness::{
    ALL_FIELDS, Engine, Person, Server, Store, assert_discloses, assert_no_identity, assert_ok,
    describe, env_data, env_head, env_version, key_version, random_hex, serve_refused,
};

both_engines!(the_service_runs_on_a_pkcs11_token);

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Distinctive, so a leak into any output is easy to spot.
const PIN: &str = "rv-life-pin-73519";
const WRONG_PIN: &str = "rv-life-wrong-pin-28461";
const SO_PIN: &str = "rv-life-so-pin-5678";

/// A SoftHSM2 configuration and token directory of its own.
struct SoftHsm {
    dir: TempDir,
    label: String,
}

fn softhsm2_util() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("softhsm2-util"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("softhsm2-util not found: apt-get install softhsm2"))
}

impl SoftHsm {
    /// A fresh token with [`PIN`].
    fn new() -> SoftHsm {
        assert!(
            Path::new(MODULE).is_file(),
            "{MODULE} not found: apt-get install softhsm2"
        );
        let dir = tempfile::Builder::new()
            .prefix("rv-life-softhsm-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
                 slots.removable = false\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let hsm = SoftHsm {
            dir,
            label: format!("rv-life-{}", random_hex(4)),
        };
        let out = hsm.util(&[
            "--init-token",
            "--free",
            "--label",
            &hsm.label,
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ]);
        assert_ok(&out, "softhsm2-util --init-token");
        hsm
    }

    fn conf(&self) -> String {
        self.dir
            .path()
            .join("softhsm2.conf")
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn util(&self, args: &[&str]) -> std::process::Output {
        Command::new(softhsm2_util())
            .args(args)
            .env("SOFTHSM2_CONF", self.conf())
            .output()
            .expect("softhsm2-util")
    }

    /// The environment of a process using this token.
    fn env(&self, label: &str, pin: &str) -> Vec<(String, String)> {
        vec![
            ("SOFTHSM2_CONF".into(), self.conf()),
            ("RV_KEY_PROVIDER".into(), "pkcs11".into()),
            ("RV_PKCS11_MODULE".into(), MODULE.into()),
            ("RV_PKCS11_TOKEN_LABEL".into(), label.into()),
            ("RV_PKCS11_PIN".into(), pin.into()),
            ("RV_KEY_RETIRE_GRACE_SECONDS".into(), "1".into()),
            ("RV_KEY_RELOAD_SECONDS".into(), "1".into()),
        ]
    }
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[track_caller]
fn assert_no_pin(text: &str, what: &str) {
    for pin in [PIN, WRONG_PIN, SO_PIN] {
        assert!(!text.contains(pin), "{what} contains a PIN: {text}");
    }
}

async fn the_service_runs_on_a_pkcs11_token(engine: Engine) {
    let hsm = SoftHsm::new();
    let store = Store::for_hsm(engine).await;
    let good = hsm.env(&hsm.label, PIN);
    let good = borrowed(&good);

    // A token that was never provisioned is refused.
    let (status, out) = serve_refused(&store, &good).await;
    assert!(!status.success());
    assert!(
        out.contains("holds no reporter-vault keys") && out.contains("init-hsm"),
        "unprovisioned token: {out}"
    );
    assert_no_pin(&out, "the unprovisioned refusal");

    // Provisioning, idempotent.
    let out = store.run(&["keys", "init-hsm"], &good).await;
    assert_ok(&out, "keys init-hsm");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok: root key created, KEK v1 created"),
        "{}",
        describe(&out)
    );
    let out = store.run(&["keys", "init-hsm"], &good).await;
    assert_ok(&out, "keys init-hsm again");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok: root key present, KEK v1 present"),
        "{}",
        describe(&out)
    );

    // Wrong PIN and unknown token: a clear refusal at start, no PIN anywhere.
    let wrong = hsm.env(&hsm.label, WRONG_PIN);
    let (status, out) = serve_refused(&store, &borrowed(&wrong)).await;
    assert!(!status.success(), "wrong PIN: {status}");
    assert!(
        out.contains("PKCS#11") && out.contains("PIN incorrect"),
        "wrong PIN: {out}"
    );
    assert_no_pin(&out, "the wrong-PIN refusal");
    eprintln!("[{engine:?}] wrong PIN: {status}: {}", out.trim());
    let unknown = hsm.env("no-such-token", PIN);
    let (status, out) = serve_refused(&store, &borrowed(&unknown)).await;
    assert!(!status.success(), "unknown token: {status}");
    assert!(
        out.contains("PKCS#11 token 'no-such-token' not found"),
        "unknown token: {out}"
    );
    assert_no_pin(&out, "the unknown-token refusal");
    eprintln!("[{engine:?}] unknown token: {status}: {}", out.trim());
    let out = store.run(&["keys", "status"], &borrowed(&wrong)).await;
    assert!(!out.status.success(), "keys status with a wrong PIN");
    assert_no_pin(&describe(&out), "keys status with a wrong PIN");

    // The service on the token.
    let server = Server::start(&store, &good).await;
    let t = server.tokens.clone();
    assert!(
        !store.keyring_path().exists(),
        "no local keyring is made when the keys are in the HSM"
    );
    let k = server.keys().await;
    assert_eq!(k["provider"], "pkcs11", "{k}");
    assert_eq!(k["active_version"], 1, "{k}");

    let a = Person::nth(500);
    let pa = server.seal(&a, "SX-HSM-1").await;
    let d = server.approved_disclosure(&pa, &ALL_FIELDS).await;
    let v = server.open(&d).await.expect(200, "open under the HSM");
    assert_discloses(&v, &a, "under the HSM");
    let record = store.record_of(&pa).await;
    let before = store.reporter_row(&record).await.envelope.unwrap();
    assert_eq!(env_version(&before), 1);
    assert_eq!(env_head(&before).len(), 10 + 60, "IV ‖ wrapped DEK ‖ tag");

    // Rotate, rewrap and retire through the endpoints.
    assert_eq!(server.rotate().await, 2);
    let b = Person::nth(501);
    let pb = server.seal(&b, "SX-HSM-2").await;
    let rb = store.record_of(&pb).await;
    assert_eq!(store.reporter_row(&rb).await.kek_version, Some(2));
    let job = server.rewrap_to_completion().await;
    assert_eq!(
        (job["done"].as_u64(), job["failed"].as_u64()),
        (Some(1), Some(0)),
        "{job}"
    );
    let after = store.reporter_row(&record).await.envelope.unwrap();
    assert_eq!(env_version(&after), 2);
    assert_eq!(
        env_data(&after),
        env_data(&before),
        "data part unchanged by the HSM rewrap"
    );
    assert_ne!(env_head(&after), env_head(&before));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let v = server.retire("1").await.expect(200, "retire v1");
    assert_eq!(v["retired"], true);
    let k = server.keys().await;
    assert_eq!(k["provider"], "pkcs11");
    assert_eq!(k["active_version"], 2, "{k}");
    assert_eq!(key_version(&k, 1)["retired"], true, "{k}");
    assert_eq!(key_version(&k, 1)["records"], 0, "{k}");
    assert_eq!(key_version(&k, 2)["records"], 2, "{k}");
    let d = server.approved_disclosure(&pa, &ALL_FIELDS).await;
    let v = server.open(&d).await.expect(200, "open after rotation");
    assert_discloses(&v, &a, "after rotation, rewrap and retirement");
    let d = server.approved_disclosure(&pb, &ALL_FIELDS).await;
    let v = server.open(&d).await.expect(200, "open B");
    assert_discloses(&v, &b, "B under v2");
    // The CLI sees the same token.
    let out = store.run(&["keys", "status"], &good).await;
    assert_ok(&out, "keys status");
    let status_text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        status_text.contains("provider pkcs11  active version 2"),
        "{status_text}"
    );

    // Lose the token while serving: not ready, and an approved disclosure does not open.
    let waiting = server
        .approved_disclosure(&pa, &["phone", "id_number"])
        .await;
    let r = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, 200, "ready before: {}", r.text());
    let out = hsm.util(&["--delete-token", "--token", &hsm.label]);
    assert_ok(&out, "softhsm2-util --delete-token");
    let lost = Instant::now();
    let ready = wait_for!(Duration::from_secs(10), "/readyz turns 503", {
        let r = server.call(Method::GET, "/readyz", None, None).await;
        (r.status == 503).then_some(r)
    });
    eprintln!(
        "[{engine:?}] /readyz after the token was deleted ({:?}): {}",
        lost.elapsed(),
        ready.text()
    );
    assert_eq!(
        ready.json()["checks"]["keyring"],
        "unavailable",
        "{}",
        ready.text()
    );
    let r = server.open(&waiting).await;
    r.expect_err(503, "keyring_unavailable", "open without the token");
    assert_no_identity(&r.body, &a, "the refused open");
    let v = server
        .get(&format!("/v1/disclosures/{waiting}"), &t.case)
        .await
        .expect(200, "the disclosure after the refused open");
    assert_eq!(v["status"], "approved", "not opened: {v}");
    let r = server
        .post(
            "/v1/reporters",
            &t.case,
            crate::harness::seal_body(
                "140100",
                "SX-HSM-3",
                &crate::harness::received_days_ago(0),
                &Person::nth(502),
            ),
        )
        .await;
    eprintln!(
        "[{engine:?}] seal without the token: {} {}",
        r.status,
        r.text()
    );
    r.expect_err(503, "keyring_unavailable", "seal without the token");
    let events = server.events().await;
    let opened = events
        .iter()
        .filter(|e| e["action"] == "disclosure_opened" && e["disclosure_id"] == waiting.as_str())
        .count();
    assert_eq!(opened, 0, "no disclosure_opened event for the refused open");
    assert_no_pin(&server.output(), "the server's logs");
    server.stop().await;
}

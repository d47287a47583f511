//! The binary as an operator meets it: `principal add` offline, and an acknowledged seal
//! that survives `kill -9`.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Body, Engine, Person, Storage, seal_body, spawn_binary};

both_engines!(
    principal_add_offline_then_serve,
    acknowledged_seals_survive_kill_9
);

fn principal_add(storage: &Storage, role: &str, jurisdiction: &str) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reporter-vault"));
    cmd.args([
        "principal",
        "add",
        "--role",
        role,
        "--jurisdiction",
        jurisdiction,
    ])
    .args(["--name", "offline case system", "--data-dir"])
    .arg(storage.data_dir())
    .env("RV_LOG_FORMAT", "json")
    .env_remove("RV_KEYRING_PASSPHRASE")
    .env_remove("RV_DATABASE_URL");
    if let Some(url) = storage.database_url() {
        cmd.arg("--database-url").arg(url);
    }
    if let Some(p) = &storage.passphrase {
        cmd.env("RV_KEYRING_PASSPHRASE", p);
    }
    let out = cmd.output().expect("run reporter-vault principal add");
    assert!(
        out.status.success(),
        "principal add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "principal add printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    let token = v["token"].as_str().expect("token");
    assert!(!stderr.contains(token), "the token is in the log");
    v
}

async fn principal_add_offline_then_serve(engine: Engine) {
    let storage = Storage::new_fast(engine).await;
    // On an empty data directory: creates store, keyring and admin, then the principal.
    let created = principal_add(&storage, "case_system", "140100");
    assert_eq!(created["role"], "case_system");
    assert_eq!(created["jurisdiction"], "140100");
    assert!(
        created["id"]
            .as_str()
            .is_some_and(|s| s.starts_with("prn_"))
    );
    let token = created["token"].as_str().expect("token").to_owned();
    assert!(storage.data_dir().join("admin.token").exists());

    let logs = tempfile::tempdir().expect("logs");
    let mut bin = spawn_binary(&storage, logs.path(), &[]).await;
    let v = bin
        .call(
            Method::POST,
            "/v1/reporters",
            Some(&token),
            Body::Json(seal_body("140100", "SX-CLI-1", Person::nth(80).identity())),
        )
        .await
        .expect(201, "seal with the offline-created token");
    assert!(
        v["pseudonym"]
            .as_str()
            .is_some_and(|p| p.starts_with("rp_"))
    );
    // An unknown role is refused without touching anything.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reporter-vault"));
    let out = cmd
        .args([
            "principal",
            "add",
            "--role",
            "superuser",
            "--jurisdiction",
            "140100",
        ])
        .args(["--name", "x", "--data-dir"])
        .arg(storage.data_dir())
        .output()
        .expect("run");
    assert!(!out.status.success(), "an unknown role was accepted");
    let status = bin.terminate().await;
    assert!(status.success(), "exit status {status}");
}

async fn acknowledged_seals_survive_kill_9(engine: Engine) {
    let storage = Storage::new_fast(engine).await;
    let logs = tempfile::tempdir().expect("logs");
    let mut bin = spawn_binary(&storage, logs.path(), &[]).await;
    let admin = bin.admin_token.clone();
    let mk = |role: &str, j: &str| json!({"name": role, "role": role, "jurisdiction": j});
    let cs = bin
        .call(
            Method::POST,
            "/v1/principals",
            Some(&admin),
            Body::Json(mk("case_system", "140100")),
        )
        .await
        .expect(201, "cs");
    let cust = bin
        .call(
            Method::POST,
            "/v1/principals",
            Some(&admin),
            Body::Json(mk("custodian", "140000")),
        )
        .await
        .expect(201, "custodian");
    let cs_t = cs["token"].as_str().expect("token").to_owned();
    let cust_t = cust["token"].as_str().expect("token").to_owned();
    let mut sealed = Vec::new();
    for i in 0..20 {
        let person = Person::nth(100 + i);
        let v = bin
            .call(
                Method::POST,
                "/v1/reporters",
                Some(&cs_t),
                Body::Json(seal_body(
                    "140100",
                    &format!("SX-K9-{i}"),
                    person.identity(),
                )),
            )
            .await
            .expect(201, "seal");
        sealed.push((v["pseudonym"].as_str().expect("p").to_owned(), person));
    }
    // No warning, no drain: the process dies on the spot.
    bin.child.kill().expect("SIGKILL our own child");
    let _ = bin.child.wait();

    let logs2 = tempfile::tempdir().expect("logs");
    let mut bin = spawn_binary(&storage, logs2.path(), &[]).await;
    for (p, _) in &sealed {
        bin.call(
            Method::GET,
            &format!("/v1/pseudonyms/{p}"),
            Some(&cs_t),
            Body::None,
        )
        .await
        .expect(200, "an acknowledged seal after kill -9");
    }
    let (p, person) = &sealed[sealed.len() - 1];
    let d = bin
        .call(
            Method::POST,
            "/v1/disclosures",
            Some(&cs_t),
            Body::Json(json!({"pseudonym": p, "purpose": "verification_contact",
                              "justification": "核实举报内容，需要联系举报人", "fields": ["phone"]})),
        )
        .await
        .expect(201, "request")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    bin.call(
        Method::POST,
        &format!("/v1/disclosures/{d}/approve"),
        Some(&cust_t),
        Body::Json(json!({"comment": "同意"})),
    )
    .await
    .expect(200, "approve");
    let r = bin
        .call(
            Method::POST,
            &format!("/v1/disclosures/{d}/open"),
            Some(&cs_t),
            Body::None,
        )
        .await;
    r.expect(200, "open the last seal before the kill");
    assert_eq!(r.json()["fields"]["phone"], person.phone.as_str());
    let status = bin.terminate().await;
    assert!(status.success(), "exit status {status}");
}

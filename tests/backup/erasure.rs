//! A record erased after the backup was taken stays erased after a restore: restore applies
//! every erasure of the erasure ledger (kept outside the database and the archive) again.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;

use crate::harness::{
    Engine, Person, Server, Store, age_keygen, assert_no_identity, assert_ok, describe,
};

both_engines!(erasures_after_the_backup_stay_erased_after_a_restore);

async fn erasures_after_the_backup_stay_erased_after_a_restore(target: Engine) {
    let src = Store::new(Engine::Sqlite).await;
    let server = Server::start(&src).await;
    let (a, b) = (Person::nth(300), Person::nth(301));
    let pa = server.seal(&a, "SX-E-1").await;
    let pb = server.seal(&b, "SX-E-2").await;
    let disclosure = server.approved_disclosure(&pa, &["phone"]).await;

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

    // After the backup: A is erased (two custodians approve).
    let t = server.tokens.clone();
    let (s, v) = server
        .call(
            Method::POST,
            "/v1/erasures",
            &t.case,
            Some(json!({"pseudonym": pa, "justification": "举报人依法申请删除个人信息"})),
        )
        .await;
    assert_eq!(s, 201, "request an erasure: {v}");
    let era = v["id"].as_str().unwrap().to_owned();
    for tok in [&t.custodian, &t.custodian2] {
        let (s, v) = server
            .call(
                Method::POST,
                &format!("/v1/erasures/{era}/approve"),
                tok,
                Some(json!({"comment": "同意删除"})),
            )
            .await;
        assert_eq!(s, 200, "approve the erasure: {v}");
    }
    let (s, v) = server
        .call(Method::GET, &format!("/v1/erasures/{era}"), &t.case, None)
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("completed")), "{v}");
    server.stop().await;
    let ledger = std::fs::read_to_string(src.ledger_path()).expect("the erasure ledger");
    let entries: Vec<Value> = ledger
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{ledger}");
    assert_eq!(entries[0]["erasure_id"], era.as_str());
    let record = entries[0]["record_id"].as_str().unwrap().to_owned();

    // Restored from the older archive, with the ledger.
    let tgt = Store::with_keyring_of(target, &src).await;
    std::fs::copy(
        src.data_dir().join("demo-tokens.json"),
        tgt.data_dir().join("demo-tokens.json"),
    )
    .unwrap();
    let out = tgt
        .run(
            &[
                "restore",
                "--in",
                archive.to_str().unwrap(),
                "--identity",
                identity.to_str().unwrap(),
                "--erasure-ledger",
                src.ledger_path().to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_ok(&out, "restore with the ledger");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 entries, 1 records erased again"),
        "{}",
        describe(&out)
    );
    assert_no_identity(&out.stdout, &[a.clone(), b.clone()], "restore stdout");
    assert_no_identity(&out.stderr, &[a.clone(), b.clone()], "restore stderr");

    let mut db = tgt.connect_db().await;
    let row = sqlx::query("SELECT envelope, blind_index, erased_at FROM reporters WHERE id = $1")
        .bind(record.clone())
        .fetch_one(&mut db)
        .await
        .expect("the erased record's row");
    assert!(row.get::<Option<Vec<u8>>, _>("envelope").is_none());
    assert!(row.get::<Option<Vec<u8>>, _>("blind_index").is_none());
    assert!(row.get::<Option<i64>, _>("erased_at").is_some());
    let live: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM reporters WHERE envelope IS NOT NULL AND erased_at IS NULL",
    )
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get("n");
    assert_eq!(live, 1, "B keeps its envelope");
    drop(db);

    let server = Server::start(&tgt).await;
    let t = server.tokens.clone();
    let (s, v) = server
        .call(Method::GET, &format!("/v1/pseudonyms/{pa}"), &t.case, None)
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("erased")), "{v}");
    let (s, v) = server
        .call(Method::GET, &format!("/v1/pseudonyms/{pb}"), &t.case, None)
        .await;
    assert_eq!(s, 200);
    assert_ne!(v["status"], "erased");
    let (s, v) = server
        .call(
            Method::POST,
            &format!("/v1/disclosures/{disclosure}/open"),
            &t.case,
            None,
        )
        .await;
    assert_ne!(
        s, 200,
        "an erased identity was disclosed after a restore: {v}"
    );
    assert_no_identity(
        v.to_string().as_bytes(),
        std::slice::from_ref(&a),
        "the refused open",
    );
    server.stop().await;
    let out = tgt.run(&["audit", "verify"], &[]).await;
    assert_ok(&out, "audit verify after the re-erasure");
}

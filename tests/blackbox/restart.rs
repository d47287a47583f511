//! Restarting on the same data directory keeps everything openable; a wrong passphrase or a
//! keyring readable by others is a clear refusal to start, naming the keyring and never the
//! secret.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::flow::Cast;
use crate::harness::{Engine, Options, Person, Storage, start, try_start};

both_engines!(
    restart_on_the_same_data_directory_keeps_everything,
    wrong_passphrase_is_a_clear_refusal,
);

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

async fn restart_on_the_same_data_directory_keeps_everything(engine: Engine) {
    let storage = Storage::new_fast(engine).await;
    let app = start(&storage, Options::default()).await;
    let c = Cast::create(&app).await;
    let person = Person::nth(60);
    let p = app
        .seal_ok(&c.cs.token, "140100", "SX-RESTART-1", Some(&person))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let approved = app
        .request_disclosure_ok(
            &c.cs.token,
            &p,
            "verification_contact",
            &["name", "phone", "bank_account"],
        )
        .await;
    app.approve(&c.cust1.token, &approved)
        .await
        .expect(200, "approve");
    let pending = app
        .request_disclosure_ok(&c.cs.token, &p, "judicial_transfer", &["id_number"])
        .await;
    app.approve(&c.cust1.token, &pending)
        .await
        .expect(200, "first of two");
    let admin_token = app.admin_token.clone();
    let size_before = app.tree_size(&c.auditor.token).await;

    let storage = app.stop().await;
    let dir = storage.data_dir().to_owned();
    assert_eq!(mode(&dir.join("admin.token")), 0o600, "admin.token mode");
    assert_eq!(mode(&dir.join("keyring.age")), 0o600, "keyring.age mode");
    if engine == Engine::Sqlite {
        assert_eq!(mode(&dir.join("vault.db")), 0o600, "vault.db mode");
        assert_eq!(
            mode(&dir.join("keyring-identity.txt")),
            0o600,
            "identity file mode"
        );
    }
    let keyring_before = std::fs::read(dir.join("keyring.age")).expect("keyring");

    let app = start(&storage, Options::default()).await;
    assert_eq!(
        app.admin_token, admin_token,
        "a restart must not mint a new admin"
    );
    assert_eq!(
        std::fs::read(dir.join("keyring.age")).expect("keyring"),
        keyring_before,
        "a restart must reuse the keyring"
    );
    assert_eq!(
        app.tree_size(&c.auditor.token).await,
        size_before,
        "the trail survived"
    );

    // Tokens, pseudonyms and disclosures carry over.
    let v = app
        .get_pseudonym(&c.cs.token, &p)
        .await
        .expect(200, "pseudonym after restart");
    assert_eq!(v["status"], "active");
    assert_eq!(v["case_ref"], "SX-RESTART-1");
    let r = app.open(&c.cs.token, &approved).await;
    r.expect(200, "open after restart");
    assert_eq!(
        r.json()["fields"],
        json!({"name": person.name, "phone": person.phone, "bank_account": person.bank_account})
    );
    app.approve(&c.cust1.token, &pending).await.expect_err(
        409,
        "already_decided",
        "the first approval survived",
    );
    app.approve(&c.cust2.token, &pending)
        .await
        .expect(200, "second of two");
    let r = app.open(&c.cs.token, &pending).await;
    r.expect(200, "open");
    assert_eq!(r.json()["fields"], json!({"id_number": person.id_number}));

    // The blind index key survived too: the same person is recognised.
    let v = app
        .seal_ok(&c.cs.token, "140100", "SX-RESTART-2", Some(&person))
        .await;
    assert_eq!(v["reporter_seen_before"], true);
    assert_eq!(v["prior_case_refs"], json!(["SX-RESTART-1"]));

    // One linear trail across the restart.
    let events = app.events(&c.auditor.token).await;
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["index"].as_u64(),
            Some(i as u64),
            "gap or reorder in the trail"
        );
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"]["action"] == "store_initialised")
            .count(),
        1
    );
}

async fn wrong_passphrase_is_a_clear_refusal(engine: Engine) {
    let right = "right-passphrase-5a7e1c";
    let wrong = "wrong-passphrase-93b0d4";
    let storage = Storage::new(engine, Some(right.to_owned())).await;
    let app = start(&storage, Options::default()).await;
    let cs = app.create_principal("case_system", "140100", None).await;
    let cust = app.create_principal("custodian", "140000", None).await;
    let person = Person::nth(61);
    let p = app
        .seal_ok(&cs.token, "140100", "SX-PASS-1", Some(&person))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let d = app
        .request_disclosure_ok(&cs.token, &p, "verification_contact", &["phone"])
        .await;
    app.approve(&cust.token, &d).await.expect(200, "approve");
    let storage = app.stop().await;
    let keyring = storage.data_dir().join("keyring.age");
    let keyring_bytes = std::fs::read(&keyring).expect("keyring");
    assert!(
        !crate::harness::contains(&keyring_bytes, right.as_bytes()),
        "the passphrase is in the keyring file"
    );
    if engine == Engine::Sqlite {
        assert!(
            !storage.data_dir().join("keyring-identity.txt").exists(),
            "a passphrase-protected keyring needs no identity file"
        );
    }

    let refused = try_start(
        &storage,
        Options {
            passphrase: Some(Some(wrong.to_owned())),
            ..Options::default()
        },
    )
    .await;
    let e = match refused {
        Ok(_) => panic!("started with a wrong passphrase"),
        Err(e) => e,
    };
    let msg = e.to_string();
    let debug = format!("{e:?}");
    assert!(
        msg.to_lowercase().contains("keyring"),
        "the refusal does not name the keyring: {msg}"
    );
    assert!(
        msg.to_lowercase().contains("passphrase"),
        "the refusal does not say the passphrase is wrong: {msg}"
    );
    for shown in [&msg, &debug] {
        assert!(
            !shown.contains(wrong),
            "the refusal shows the wrong passphrase: {shown}"
        );
        assert!(
            !shown.contains(right),
            "the refusal shows the right passphrase: {shown}"
        );
    }

    // Without any passphrase: refused too, with a message that says what is missing.
    let refused = try_start(
        &storage,
        Options {
            passphrase: Some(None),
            ..Options::default()
        },
    )
    .await;
    let msg = match refused {
        Ok(_) => panic!("started a passphrase-protected keyring without a passphrase"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.to_lowercase().contains("keyring") || msg.contains("PASSPHRASE"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&keyring).expect("keyring"),
        keyring_bytes,
        "a refused start changed the keyring"
    );

    // The right passphrase still opens everything.
    let app = start(&storage, Options::default()).await;
    let r = app.open(&cs.token, &d).await;
    r.expect(200, "open after the refused starts");
    assert_eq!(r.json()["fields"]["phone"], person.phone.as_str());
}

/// A keyring or identity file readable by group or others is refused before it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyring_readable_by_others_is_refused() {
    let storage = Storage::new(Engine::Sqlite, None).await;
    let app = start(&storage, Options::default()).await;
    let cs = app.create_principal("case_system", "140100", None).await;
    let p = app
        .seal_ok(&cs.token, "140100", "SX-MODE-1", Some(&Person::nth(62)))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let storage = app.stop().await;
    let dir = storage.data_dir().to_owned();

    for (file, bad_mode) in [
        ("keyring.age", 0o644),
        ("keyring.age", 0o640),
        ("keyring-identity.txt", 0o644),
    ] {
        let path = dir.join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad_mode)).expect("chmod");
        let e = match try_start(&storage, Options::default()).await {
            Ok(_) => panic!("started with {file} at mode {bad_mode:o}"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains(file) || e.to_lowercase().contains("keyring"),
            "the refusal does not name {file}: {e}"
        );
        assert!(
            e.contains("permission")
                || e.contains("readable")
                || e.contains("mode")
                || e.contains("chmod"),
            "the refusal does not say what is wrong with {file}: {e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod back");
    }

    // A missing keyring beside existing data: refused, never silently replaced.
    let keyring = dir.join("keyring.age");
    let saved = dir.join("keyring.age.saved");
    std::fs::rename(&keyring, &saved).expect("move keyring away");
    let e = match try_start(&storage, Options::default()).await {
        Ok(_) => panic!("started without its keyring, over existing data"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("keyring"), "{e}");
    assert!(!keyring.exists(), "a refused start created a new keyring");
    std::fs::rename(&saved, &keyring).expect("restore keyring");

    let app = start(&storage, Options::default()).await;
    app.get_pseudonym(&cs.token, &p)
        .await
        .expect(200, "back to normal");
}

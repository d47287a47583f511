//! An online backup while a writer keeps sealing, opened with the real `age` tool, restored
//! into an empty SQLite store and an empty PostgreSQL database, and served again.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Engine, Person, Plain, Server, Store, age_decrypt, age_keygen, assert_no_identity, assert_ok,
    assert_refused, describe, leaf_of, seal_body,
};

both_engines!(online_backup_restores_into_both_engines);

/// Every backed-up table's row count, read directly from the database.
async fn all_counts(store: &Store) -> BTreeMap<&'static str, Option<i64>> {
    let mut out = BTreeMap::new();
    for t in vault_storage::backup::TABLES {
        out.insert(t.name, store.count(t.name).await);
    }
    out
}

/// Waits until the writer has sealed at least `n`.
async fn wait_for(sealed: &Mutex<Vec<(Person, String)>>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sealed.lock().unwrap().len() < n {
        assert!(Instant::now() < deadline, "the writer stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn online_backup_restores_into_both_engines(engine: Engine) {
    let src = Store::new(engine).await;
    let server = Server::start(&src).await;

    // Seeded before the backup: sealed reporters, an approved (not yet opened) disclosure and
    // a reward.
    let mut people = Vec::new();
    let mut pseudonyms = Vec::new();
    for i in 0..6 {
        let p = Person::nth(i);
        pseudonyms.push(server.seal(&p, &format!("SX-BK-{i}")).await);
        people.push(p);
    }
    let disclosure = server
        .approved_disclosure(&pseudonyms[0], &["name", "phone", "id_number"])
        .await;
    let rewarded = Person::nth(40);
    let (s, v) = server
        .call(
            Method::POST,
            "/v1/reporters",
            &server.tokens.case,
            Some(seal_body(
                "370100",
                "SD-BK-1",
                "2026-11-02T09:00:00+08:00",
                &rewarded,
            )),
        )
        .await;
    assert_eq!(s, 201, "seal for the reward: {v}");
    let rewarded_p = v["pseudonym"].as_str().unwrap().to_owned();
    let (s, v) = server
        .call(
            Method::POST,
            "/v1/rewards",
            &server.tokens.case,
            Some(json!({
                "case_ref": "SD-BK-1", "jurisdiction": "370100", "verified_on": "2026-11-18",
                "industry": "hazardous_chemicals",
                "outcome": {"kind": "major_hazard", "penalty": "20000"},
                "reports": [{"pseudonym": rewarded_p}],
            })),
        )
        .await;
    assert_eq!(s, 201, "file a reward: {v}");
    let reward_id = v["id"].as_str().unwrap().to_owned();
    people.push(rewarded);
    let seeded_reporters = people.len();

    // A writer keeps sealing through the whole backup.
    let stop = Arc::new(AtomicBool::new(false));
    let sealed: Arc<Mutex<Vec<(Person, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let writer = {
        let (client, base, token) = (
            server.client.clone(),
            server.base.clone(),
            server.tokens.case.clone(),
        );
        let (stop, sealed, failures) = (stop.clone(), sealed.clone(), failures.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let p = Person::nth(100 + i);
                let r = client
                    .post(format!("{base}/v1/reporters"))
                    .header("authorization", format!("Bearer {token}"))
                    .json(&seal_body(
                        "140100",
                        &format!("SX-W-{i}"),
                        "2026-11-20T08:00:00+08:00",
                        &p,
                    ))
                    .send()
                    .await
                    .expect("seal request");
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if status == 201 {
                    let ps = v["pseudonym"].as_str().unwrap().to_owned();
                    sealed.lock().unwrap().push((p, ps));
                } else {
                    failures.lock().unwrap().push(format!("{status}: {v}"));
                }
                i += 1;
            }
        })
    };
    wait_for(&sealed, 3).await;
    let committed_before = sealed.lock().unwrap().len();

    let keys = tempfile::tempdir().unwrap();
    let identity = keys.path().join("backup.key");
    let recipient = age_keygen(&identity);
    let other_identity = keys.path().join("other.key");
    let other_recipient = age_keygen(&other_identity);
    let backups = tempfile::tempdir().unwrap();
    let archive = backups.path().join("vault.age");
    let out = src
        .run(
            &[
                "backup",
                "--out",
                archive.to_str().unwrap(),
                "--recipient",
                &recipient,
                "--recipient",
                &other_recipient,
            ],
            &[],
        )
        .await;
    let committed_after = sealed.lock().unwrap().len();
    wait_for(&sealed, committed_after + 3).await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert_ok(&out, "backup while serving");
    assert!(
        failures.lock().unwrap().is_empty(),
        "the service failed writes during the backup: {:?}",
        failures.lock().unwrap()
    );
    let written: Vec<(Person, String)> = sealed.lock().unwrap().clone();
    let mut everyone = people.clone();
    everyone.extend(written.iter().map(|(p, _)| p.clone()));
    assert_no_identity(&out.stdout, &everyone, "backup stdout");
    assert_no_identity(&out.stderr, &everyone, "backup stderr");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("backup written"), "{}", describe(&out));

    // Private, complete, nothing left beside it.
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "archive mode");
    let names: Vec<String> = std::fs::read_dir(backups.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["vault.age"], "only the archive is left");
    let encrypted = std::fs::read(&archive).unwrap();
    assert!(encrypted.starts_with(b"age-encryption.org/v1\n"));
    assert_no_identity(&encrypted, &everyone, "the encrypted archive");

    // Users open it with the reference tool, with either recipient's identity.
    let bytes = age_decrypt(&identity, &archive);
    assert_eq!(age_decrypt(&other_identity, &archive), bytes);
    assert_no_identity(&bytes, &everyone, "the archive plaintext");
    let plain = Plain::parse(&bytes);
    let h = plain.header();
    assert_eq!(h["type"], "header");
    assert_eq!(h["format"], "reporter-vault-backup");
    assert_eq!(h["version"], 1);
    assert_eq!(h["schema_version"], vault_storage::SCHEMA_VERSION);
    assert_eq!(
        h["engine"],
        match engine {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
    );
    let created = time::OffsetDateTime::parse(
        h["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("created_at is RFC 3339");
    assert!(
        (vault_domain::clock::Clock::now(&vault_domain::clock::SystemClock) - created)
            .whole_seconds()
            .abs()
            < 300
    );

    // The trailer is SHA-256 of everything before it.
    let last_nl = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes[..=last_nl]);
    let end = plain.lines.last().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["sha256"], hex::encode(digest.as_ref()));

    // Consistent: every count in the header is what follows; the tree size is the events;
    // every reporter has its seal event and every pseudonym its reporter.
    for t in h["tables"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        assert_eq!(
            plain.rows(name).len() as u64,
            t["rows"].as_u64().unwrap(),
            "rows of {name}"
        );
    }
    let events = plain.rows("audit_events");
    assert_eq!(h["tree_size"].as_u64().unwrap(), events.len() as u64);
    let leaves: Vec<Value> = events.iter().map(|r| leaf_of(&plain, r)).collect();
    for (i, l) in leaves.iter().enumerate() {
        assert_eq!(l["index"], i as u64, "events are dense and in order");
    }
    let sealed_records: BTreeSet<String> = leaves
        .iter()
        .filter(|l| l["action"] == "reporter_sealed")
        .map(|l| l["record"].as_str().unwrap().to_owned())
        .collect();
    let id_col = plain.column("reporters", "id");
    let reporters: BTreeSet<String> = plain
        .rows("reporters")
        .iter()
        .map(|r| r[id_col].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reporters, sealed_records,
        "every reporter in the archive has its seal event, and every seal event its reporter"
    );
    let p_col = plain.column("pseudonyms", "pseudonym");
    let r_col = plain.column("pseudonyms", "reporter_id");
    let archived_pseudonyms: BTreeSet<String> = plain
        .rows("pseudonyms")
        .iter()
        .map(|r| {
            assert!(reporters.contains(r[r_col].as_str().unwrap()));
            r[p_col].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(archived_pseudonyms.len(), reporters.len());
    // Online: the seals acknowledged before the backup started are in it, the ones made after
    // it finished are not, and the writer was sealing throughout.
    let from_writer = reporters.len() - seeded_reporters;
    assert!(
        from_writer >= committed_before && from_writer <= committed_after,
        "{from_writer} writer seals in the archive; {committed_before} were acknowledged \
         before the backup and {committed_after} when it ended"
    );
    assert!(from_writer < written.len());
    for p in &pseudonyms {
        assert!(archived_pseudonyms.contains(p));
    }
    for (_, p) in &written[..committed_before] {
        assert!(
            archived_pseudonyms.contains(p),
            "an acknowledged seal is missing"
        );
    }
    let (_, missing_p) = written.last().unwrap();
    assert!(!archived_pseudonyms.contains(missing_p));
    // Not in the archive: the keyring, any key.
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("log_signing_seed") && !text.contains("blind_index_key"));
    assert!(!text.contains("AGE-SECRET-KEY"));

    server.stop().await;

    // A restore into the live store is refused and changes nothing.
    let before = all_counts(&src).await;
    src.empty_ledger();
    let out = src
        .run(
            &[
                "restore",
                "--in",
                archive.to_str().unwrap(),
                "--identity",
                identity.to_str().unwrap(),
            ],
            &[],
        )
        .await;
    assert_refused(
        &out,
        "the target store is not empty",
        "restore into the source",
    );
    assert_refused(&out, "it never merges", "restore into the source");
    assert_eq!(
        all_counts(&src).await,
        before,
        "a refused restore changed the store"
    );

    for target in [Engine::Sqlite, Engine::Postgres] {
        let what = format!("{engine:?} backup restored into {target:?}");
        let tgt = Store::with_keyring_of(target, &src).await;
        tgt.empty_ledger();
        // The demo principals come back with the store; keep their tokens file so `serve
        // --demo` does not create new ones.
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
                    other_identity.to_str().unwrap(),
                ],
                &[],
            )
            .await;
        assert_ok(&out, &what);
        assert_no_identity(&out.stdout, &everyone, "restore stdout");
        assert_no_identity(&out.stderr, &everyone, "restore stderr");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("access trail verified: {} events", events.len())),
            "{what}: {}",
            describe(&out)
        );
        assert!(
            stdout.contains("0 entries, 0 records erased again"),
            "{stdout}"
        );
        for t in h["tables"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap();
            assert_eq!(
                tgt.count(name).await,
                Some(t["rows"].as_i64().unwrap()),
                "{what}: rows of {name}"
            );
        }

        let server = Server::start(&tgt).await;
        let tokens = &server.tokens;
        for p in pseudonyms.iter().chain([&written[0].1]) {
            let (s, v) = server
                .call(
                    Method::GET,
                    &format!("/v1/pseudonyms/{p}"),
                    &tokens.case,
                    None,
                )
                .await;
            assert_eq!(s, 200, "{what}: {p} resolves: {v}");
            assert_eq!(v["jurisdiction"], "140100");
        }
        let (s, _) = server
            .call(
                Method::GET,
                &format!("/v1/pseudonyms/{missing_p}"),
                &tokens.case,
                None,
            )
            .await;
        assert_eq!(
            s, 404,
            "{what}: a seal made after the backup is not restored"
        );
        // The disclosure approved before the backup opens to the same identity.
        let (s, v) = server
            .call(
                Method::POST,
                &format!("/v1/disclosures/{disclosure}/open"),
                &tokens.case,
                None,
            )
            .await;
        assert_eq!(s, 200, "{what}: open the restored disclosure: {v}");
        assert_eq!(v["fields"]["name"], people[0].name.as_str());
        assert_eq!(v["fields"]["phone"], people[0].phone.as_str());
        assert_eq!(v["fields"]["id_number"], people[0].id_number.as_str());
        let (s, v) = server
            .call(
                Method::GET,
                &format!("/v1/rewards/{reward_id}"),
                &tokens.finance,
                None,
            )
            .await;
        assert_eq!(s, 200, "{what}: the reward: {v}");
        assert_eq!(v["id"], reward_id.as_str());
        // New seals continue the restored trail.
        server.seal(&Person::nth(90), "SX-AFTER-1").await;
        let log = server.output();
        server.stop().await;
        assert_no_identity(&log, &everyone, "the restored service's logs");

        let out = tgt.run(&["audit", "verify"], &[]).await;
        assert_ok(&out, &format!("{what}: audit verify"));
        let verified = String::from_utf8_lossy(&out.stdout);
        assert!(verified.starts_with("ok: "), "{verified}");
        let n: usize = verified
            .trim_start_matches("ok: ")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(n > events.len(), "{what}: the trail grew after the restore");
    }
}

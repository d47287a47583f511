//! Erasure by crypto-shredding: asked by the case system, approved by two distinct
//! custodians, it destroys the reporter's envelope and blind index, so every pseudonym of the
//! reporter reports `erased`, an approved disclosure can no longer open, and the erasure is in
//! the erasure ledger (outside the database) and the access trail. An unwritable ledger fails
//! the erasure closed; a denial erases nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{
    ALL_FIELDS, Engine, Person, Server, Store, assert_discloses, assert_no_identity, key_version,
    received_days_ago,
};

both_engines!(
    two_custodians_erase_every_pseudonym_of_a_reporter,
    an_unwritable_ledger_fails_the_erasure_closed
);

const JUSTIFICATION: &str = "举报人依法申请删除其个人信息 (PIPL art. 47)";

fn ledger_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("ledger line {l:?}: {e}")))
        .collect()
}

async fn request_erasure(server: &Server, p: &str) -> Value {
    server
        .post(
            "/v1/erasures",
            &server.tokens.case,
            json!({"pseudonym": p, "justification": JUSTIFICATION}),
        )
        .await
        .expect(201, "request an erasure")
}

async fn decide(server: &Server, id: &str, token: &str, verb: &str) -> crate::harness::Resp {
    server
        .post(
            &format!("/v1/erasures/{id}/{verb}"),
            token,
            json!({"comment": "经核实，同意"}),
        )
        .await
}

async fn two_custodians_erase_every_pseudonym_of_a_reporter(engine: Engine) {
    let store = Store::new(engine).await;
    let server = Server::start(&store, &[]).await;
    let t = server.tokens.clone();
    let case_id = t.ids["case_system"]["id"].as_str().unwrap().to_owned();
    let (a, b, c) = (Person::nth(300), Person::nth(301), Person::nth(302));

    // A has two pseudonyms: the original case and a hand-off to Shandong.
    let pa = server.seal(&a, "SX-ER-1").await;
    let v = server
        .post(
            &format!("/v1/pseudonyms/{pa}/handoff"),
            &t.case,
            json!({"to_jurisdiction": "370100", "case_ref": "SD-ER-1"}),
        )
        .await
        .expect(201, "hand off");
    let pa2 = v["pseudonym"].as_str().unwrap().to_owned();
    let pb = server.seal(&b, "SX-ER-2").await;
    let pc = server.seal(&c, "SX-ER-3").await;
    let record = store.record_of(&pa).await;
    assert_eq!(
        store.record_of(&pa2).await,
        record,
        "one record behind both"
    );
    // Approved before the erasure, never opened.
    let waiting = server.approved_disclosure(&pa2, &ALL_FIELDS).await;

    // Refusals before anything happens.
    let r = server
        .post(
            "/v1/erasures",
            &t.case,
            json!({"pseudonym": pa, "justification": "short"}),
        )
        .await;
    let e = r.expect_err(422, "invalid_field", "a too short justification");
    assert_eq!(e["field"], "justification");
    for tok in [&t.custodian, &t.auditor, &t.finance] {
        server
            .post(
                "/v1/erasures",
                tok,
                json!({"pseudonym": pa, "justification": JUSTIFICATION}),
            )
            .await
            .expect_err(403, "forbidden", "only case system and admin ask");
    }
    server
        .post(
            "/v1/erasures",
            &t.case,
            json!({"pseudonym": "psn_doesnotexist0000000000", "justification": JUSTIFICATION}),
        )
        .await
        .expect_err(404, "not_found", "an unknown pseudonym");

    // The request.
    let v = request_erasure(&server, &pa).await;
    let era = v["id"].as_str().unwrap().to_owned();
    assert!(era.starts_with("era_"), "{v}");
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["reason"], "request", "{v}");
    assert_eq!(v["pseudonym"], pa.as_str(), "{v}");
    assert_eq!(v["approvals_required"], 2, "{v}");
    assert_eq!(v["requested_by"], case_id.as_str(), "{v}");
    assert_eq!(v["approvals"], json!([]), "{v}");
    for tok in [&t.case, &t.custodian, &t.auditor] {
        let v = server
            .get(&format!("/v1/erasures/{era}"), tok)
            .await
            .expect(200, "read the erasure");
        assert_eq!(v["status"], "pending");
    }
    // Another case system does not see someone else's request.
    let other = server
        .post(
            "/v1/principals",
            &t.admin,
            json!({"name": "another case system", "role": "case_system", "jurisdiction": "000000"}),
        )
        .await
        .expect(201, "create a second case system");
    server
        .get(
            &format!("/v1/erasures/{era}"),
            other["token"].as_str().unwrap(),
        )
        .await
        .expect_err(404, "not_found", "another case system reads the erasure");

    // The requester cannot decide (it is not a custodian); one custodian is not enough.
    decide(&server, &era, &t.case, "approve").await.expect_err(
        403,
        "forbidden",
        "the requester approves",
    );
    let v = decide(&server, &era, &t.custodian, "approve")
        .await
        .expect(200, "first approval");
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["approvals"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(server.pseudonym_status(&pa).await, "active");
    assert!(store.reporter_row(&record).await.envelope.is_some());
    assert!(
        ledger_lines(&store.ledger_path()).is_empty(),
        "no ledger entry yet"
    );
    for verb in ["approve", "deny"] {
        decide(&server, &era, &t.custodian, verb).await.expect_err(
            409,
            "already_decided",
            &format!("the same custodian {verb}s again"),
        );
    }

    // The second custodian completes it.
    let v = decide(&server, &era, &t.custodian2, "approve")
        .await
        .expect(200, "second approval");
    assert_eq!(v["status"], "completed", "{v}");
    assert!(v["completed_at"].is_string(), "{v}");
    assert_eq!(v["approvals"].as_array().unwrap().len(), 2, "{v}");
    let v = server
        .get(&format!("/v1/erasures/{era}"), &t.case)
        .await
        .expect(200, "read the completed erasure");
    assert_eq!(v["status"], "completed", "{v}");

    // Every pseudonym of A is erased; B and C are not.
    assert_eq!(server.pseudonym_status(&pa).await, "erased");
    assert_eq!(server.pseudonym_status(&pa2).await, "erased");
    assert_eq!(server.pseudonym_status(&pb).await, "active");
    assert_eq!(server.pseudonym_status(&pc).await, "active");

    // The approved disclosure can no longer open, and shows nothing.
    let r = server.open(&waiting).await;
    r.expect_err(409, "erased", "open after the erasure");
    assert_no_identity(&r.body, &a, "the refused open");
    // Nothing more to erase or decide.
    server
        .post(
            "/v1/erasures",
            &t.case,
            json!({"pseudonym": pa2, "justification": JUSTIFICATION}),
        )
        .await
        .expect_err(409, "erased", "erase again");
    decide(&server, &era, &t.custodian2, "deny")
        .await
        .expect_err(409, "already_decided", "deny after completion");

    // The row: envelope and blind index gone.
    let row = store.reporter_row(&record).await;
    assert!(row.envelope.is_none(), "envelope NULL");
    assert!(row.blind_index.is_none(), "blind_index NULL");
    assert!(row.kek_version.is_none(), "kek_version NULL");
    assert!(row.erased_at.is_some(), "erased_at set");
    let k = server.keys().await;
    assert_eq!(key_version(&k, 1)["records"], 2, "B and C only: {k}");

    // The ledger: exactly one line naming the record and the erasure.
    let lines = ledger_lines(&store.ledger_path());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["record_id"], record.as_str(), "{lines:?}");
    assert_eq!(lines[0]["erasure_id"], era.as_str(), "{lines:?}");
    assert!(lines[0]["erased_at"].is_string(), "{lines:?}");
    let raw = std::fs::read(store.ledger_path()).unwrap();
    assert_no_identity(&raw, &a, "the ledger");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(store.ledger_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the ledger is private: {mode:o}");
    }

    // The trail.
    let events = server.events().await;
    let of = |action: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["action"] == action && e["target"] == era.as_str())
            .cloned()
            .collect()
    };
    let requested = of("erasure_requested");
    assert_eq!(requested.len(), 1, "{requested:?}");
    assert_eq!(requested[0]["pseudonym"], pa.as_str());
    assert_eq!(requested[0]["record"], record.as_str());
    let approved = of("erasure_approved");
    assert_eq!(approved.len(), 2, "{approved:?}");
    let approvers: Vec<&str> = approved
        .iter()
        .map(|e| e["actor_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        approvers,
        [
            t.ids["custodian"]["id"].as_str().unwrap(),
            t.ids["custodian2"]["id"].as_str().unwrap()
        ]
    );
    let erased = of("reporter_erased");
    assert_eq!(erased.len(), 1, "{erased:?}");
    assert_eq!(erased[0]["record"], record.as_str());
    assert_eq!(erased[0]["detail"]["reason"], "request");
    let refused = events
        .iter()
        .filter(|e| e["action"] == "access_denied" && e["target"] == era.as_str())
        .count();
    assert!(
        refused >= 3,
        "the refused decisions are in the trail ({refused})"
    );

    // A reports again: a fresh record, not linked to the erased one.
    let v = server.seal_at(&a, "SX-ER-4", &received_days_ago(0)).await;
    let fresh = v["pseudonym"].as_str().unwrap().to_owned();
    assert_eq!(v["reporter_seen_before"], false, "{v}");
    assert_eq!(v["prior_case_refs"], json!([]), "{v}");
    assert!(fresh != pa && fresh != pa2);
    assert_eq!(server.pseudonym_status(&fresh).await, "active");
    let fresh_record = store.record_of(&fresh).await;
    assert_ne!(fresh_record, record, "a new record");
    let d = server.approved_disclosure(&fresh, &ALL_FIELDS).await;
    let v = server.open(&d).await.expect(200, "open the fresh record");
    assert_discloses(&v, &a, "the fresh record");
    assert!(store.reporter_row(&record).await.envelope.is_none());

    // The deny path: C is asked about, a custodian denies, nothing is erased.
    let c_record = store.record_of(&pc).await;
    let before = store.reporter_row(&c_record).await;
    let v = request_erasure(&server, &pc).await;
    let era_c = v["id"].as_str().unwrap().to_owned();
    let v = decide(&server, &era_c, &t.custodian, "deny")
        .await
        .expect(200, "deny");
    assert_eq!(v["status"], "denied", "{v}");
    assert_eq!(v["denials"].as_array().unwrap().len(), 1, "{v}");
    decide(&server, &era_c, &t.custodian2, "approve")
        .await
        .expect_err(409, "invalid_state", "approve a denied erasure");
    let v = server
        .get(&format!("/v1/erasures/{era_c}"), &t.custodian2)
        .await
        .expect(200, "read the denied erasure");
    assert_eq!(v["status"], "denied", "{v}");
    assert_eq!(server.pseudonym_status(&pc).await, "active");
    let after = store.reporter_row(&c_record).await;
    assert_eq!(after.envelope, before.envelope, "C's envelope untouched");
    assert_eq!(
        after.blind_index, before.blind_index,
        "C's blind index untouched"
    );
    assert!(after.erased_at.is_none());
    assert_eq!(
        ledger_lines(&store.ledger_path()).len(),
        1,
        "still one ledger line"
    );
    let events = server.events().await;
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "erasure_denied" && e["target"] == era_c.as_str()),
        "erasure_denied in the trail"
    );
    assert!(
        !events
            .iter()
            .any(|e| e["action"] == "reporter_erased" && e["target"] == era_c.as_str()),
        "no reporter_erased for the denied erasure"
    );

    server.stop().await;
    store.audit_verify(&[]).await;
}

async fn an_unwritable_ledger_fails_the_erasure_closed(engine: Engine) {
    let store = Store::new(engine).await;
    // The ledger's parent is a regular file: opening the ledger fails even for root (which
    // ignores permission bits, so a read-only directory would not do).
    let parent = store.data_dir().join("ledger-volume");
    std::fs::write(&parent, b"not a directory").unwrap();
    let ledger = parent.join("erasure-ledger.jsonl");
    let server = Server::start(&store, &[("RV_ERASURE_LEDGER", ledger.to_str().unwrap())]).await;
    let t = server.tokens.clone();
    let a = Person::nth(310);
    let pa = server.seal(&a, "SX-LF-1").await;
    let record = store.record_of(&pa).await;
    let before = store.reporter_row(&record).await;
    let era = request_erasure(&server, &pa).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    decide(&server, &era, &t.custodian, "approve")
        .await
        .expect(200, "first approval");

    let started = Instant::now();
    let r = decide(&server, &era, &t.custodian2, "approve").await;
    let took = started.elapsed();
    r.expect_err(
        503,
        "store_unavailable",
        "the final approval without a ledger",
    );
    assert!(took < Duration::from_secs(5), "answered in {took:?}");
    assert!(
        !r.text().contains("ledger-volume"),
        "no path in the answer: {}",
        r.text()
    );

    // Nothing was erased, and the failed decision was not kept.
    assert_eq!(server.pseudonym_status(&pa).await, "active");
    let row = store.reporter_row(&record).await;
    assert_eq!(row.envelope, before.envelope, "envelope intact");
    assert_eq!(row.blind_index, before.blind_index, "blind index intact");
    assert!(row.erased_at.is_none());
    let v = server
        .get(&format!("/v1/erasures/{era}"), &t.custodian)
        .await
        .expect(200, "read the erasure");
    assert_eq!(v["status"], "pending", "{v}");
    assert_eq!(v["approvals"].as_array().unwrap().len(), 1, "{v}");
    let d = server.approved_disclosure(&pa, &ALL_FIELDS).await;
    let opened = server.open(&d).await.expect(200, "open: still there");
    assert_discloses(&opened, &a, "after the failed erasure");
    let events = server.events().await;
    assert!(
        !events.iter().any(|e| e["action"] == "reporter_erased"),
        "no reporter_erased event"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "erasure_approved")
            .count(),
        1,
        "only the first approval is in the trail"
    );
    assert!(!ledger.exists());

    // Once the ledger can be written, the same approval goes through.
    std::fs::remove_file(&parent).unwrap();
    std::fs::create_dir(&parent).unwrap();
    let v = decide(&server, &era, &t.custodian2, "approve")
        .await
        .expect(200, "the final approval with a ledger");
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(server.pseudonym_status(&pa).await, "erased");
    let lines = ledger_lines(&ledger);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["record_id"], record.as_str());
    assert_eq!(lines[0]["erasure_id"], era.as_str());
    assert!(store.reporter_row(&record).await.envelope.is_none());

    server.stop().await;
    store.audit_verify(&[]).await;
}

both_engines!(an_erasure_racing_a_new_report_of_the_same_person_stays_erased);

/// The final approval of an erasure and a new report by the same person (the same resident
/// ID: the vault re-seals the existing record) arrive together, with the report a few ms
/// later each round. Whatever the order, an erased record must not get an envelope back, and
/// an approved disclosure of it must not open.
async fn an_erasure_racing_a_new_report_of_the_same_person_stays_erased(engine: Engine) {
    const ROUNDS: u32 = 30;
    let store = Store::new(engine).await;
    let server = std::sync::Arc::new(
        Server::start(&store, &[("RV_DISCLOSURE_REQUESTS_PER_MINUTE", "100000")]).await,
    );
    let t = server.tokens.clone();
    let mut outcomes = Vec::new();
    let mut broken = Vec::new();
    for i in 0..ROUNDS {
        let person = Person::nth(600 + i);
        let p = server.seal(&person, &format!("SX-RACE-{i}")).await;
        let record = store.record_of(&p).await;
        let d = server.approved_disclosure(&p, &["phone"]).await;
        let era = request_erasure(&server, &p).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        decide(&server, &era, &t.custodian, "approve")
            .await
            .expect(200, "first approval");
        let approve = {
            let server = server.clone();
            let (era, tok) = (era.clone(), t.custodian2.clone());
            tokio::spawn(async move { decide(&server, &era, &tok, "approve").await })
        };
        let report = {
            let server = server.clone();
            let person = person.clone();
            let delay = Duration::from_micros(u64::from(i % 15) * 700);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                server
                    .post(
                        "/v1/reporters",
                        &server.tokens.case,
                        crate::harness::seal_body(
                            "140100",
                            &format!("SX-RACE-AGAIN-{i}"),
                            &received_days_ago(0),
                            &person,
                        ),
                    )
                    .await
            })
        };
        let (approve, report) = (approve.await.unwrap(), report.await.unwrap());
        let seen_before = report.json()["reporter_seen_before"].clone();
        outcomes.push(format!(
            "round {i}: approve {} {} report {} {} seen_before {seen_before}",
            approve.status,
            approve.json()["error"]["code"],
            report.status,
            report.json()["error"]["code"]
        ));
        let row = store.reporter_row(&record).await;
        if row.erased_at.is_some() && row.envelope.is_some() {
            let opened = server.open(&d).await;
            broken.push(format!(
                "round {i}: record {record} is erased but has an envelope again (approve {}, \
                 report {} seen_before {seen_before}); its approved disclosure answers {}{}",
                approve.status,
                report.status,
                opened.status,
                if opened.status == 200 && opened.text().contains(&person.phone) {
                    " WITH THE ERASED PHONE NUMBER"
                } else {
                    ""
                }
            ));
        }
    }
    eprintln!("[{engine:?}] {}", outcomes.join("\n"));
    if outcomes.iter().any(|o| o.contains(" 503 ")) {
        let log = server.output();
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("\"ERROR\"")).collect();
        eprintln!("[{engine:?}] server errors:\n{}", errors.join("\n"));
    }
    assert!(broken.is_empty(), "[{engine:?}] {broken:#?}");
    let failed: Vec<&String> = outcomes
        .iter()
        .filter(|o| !(o.contains("approve 200 null") && o.contains("report 201 null")))
        .collect();
    assert!(
        failed.is_empty(),
        "requests failed in the race: {failed:#?}"
    );
    let n = store
        .scalar(
            "SELECT COUNT(*) FROM reporters WHERE erased_at IS NOT NULL AND envelope IS NOT NULL",
        )
        .await;
    assert_eq!(n, 0, "erased records with an envelope");
}

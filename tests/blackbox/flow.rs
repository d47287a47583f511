//! The life of a report: seal → pseudonym → disclosure request → custodian approval → open,
//! and the rules around it (quorum, requester never approves, once only, 24 h window,
//! repeated reporters, anonymous reports, hand-off, rotation).

use serde_json::{Value, json};

use crate::harness::{Engine, Person, Principal, TestApp, assert_absent, spawn_app};

/// The principals of one province's deployment, plus a neighbouring province's.
pub struct Cast {
    /// Case system of Taiyuan (140100).
    pub cs: Principal,
    /// A second case system of Shanxi (140000).
    pub cs2: Principal,
    /// Custodians of Shanxi.
    pub cust1: Principal,
    /// Second custodian of Shanxi.
    pub cust2: Principal,
    /// Finance of Shanxi.
    pub finance: Principal,
    /// A national auditor.
    pub auditor: Principal,
    /// Case system of Shandong (370000).
    pub cs_sd: Principal,
    /// Custodian of Shandong.
    pub cust_sd: Principal,
}

impl Cast {
    /// Creates the cast through the API.
    pub async fn create(app: &TestApp) -> Cast {
        Cast {
            cs: app.create_principal("case_system", "140100", None).await,
            cs2: app.create_principal("case_system", "140000", None).await,
            cust1: app.create_principal("custodian", "140000", None).await,
            cust2: app.create_principal("custodian", "140000", None).await,
            finance: app.create_principal("finance", "140000", None).await,
            auditor: app.create_principal("auditor", "000000", None).await,
            cs_sd: app.create_principal("case_system", "370000", None).await,
            cust_sd: app.create_principal("custodian", "370000", None).await,
        }
    }
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

const IDENTITY_KEYS: [&str; 8] = [
    "name",
    "id_number",
    "phone",
    "email",
    "address",
    "bank_account",
    "bank_name",
    "employer",
];

both_engines!(
    seal_request_approve_open,
    judicial_transfer_needs_two_distinct_custodians,
    denied_disclosure_never_opens,
    disclosure_expires_24_hours_after_approval,
    repeated_reporter_is_recognised_within_scope_only,
    anonymous_report_gets_a_one_time_claim_code,
    handoff_issues_a_pseudonym_in_the_receiving_jurisdiction,
    rotate_revokes_the_old_pseudonym,
    concurrent_reports_of_one_person_make_one_record,
    concurrent_opens_disclose_once,
    concurrent_opens_of_many_disclosures_open_each_once,
);

async fn seal_request_approve_open(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let zs = Person::zhang_san();

    let sealed = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-000123", Some(&zs))
        .await;
    assert_eq!(
        keys(&sealed),
        [
            "anonymous",
            "case_ref",
            "jurisdiction",
            "prior_case_refs",
            "pseudonym",
            "reporter_seen_before"
        ],
        "seal answer (no claim_code for a real-name report): {sealed}"
    );
    let p = sealed["pseudonym"].as_str().expect("pseudonym").to_owned();
    assert!(p.starts_with("rp_") && p.len() > 10, "pseudonym shape: {p}");
    assert_eq!(sealed["jurisdiction"], "140100");
    assert_eq!(sealed["case_ref"], "SX-2026-000123");
    assert_eq!(sealed["anonymous"], false);
    assert_eq!(sealed["reporter_seen_before"], false);
    assert_eq!(sealed["prior_case_refs"], json!([]));

    // The pseudonym, as every role in scope sees it: never an identity field.
    for who in [&c.cs, &c.cust1, &c.finance, &c.auditor] {
        let r = app.get_pseudonym(&who.token, &p).await;
        let v = r.expect(200, "read pseudonym");
        assert_eq!(
            keys(&v),
            [
                "anonymous",
                "case_ref",
                "created_at",
                "employee_of_reported_unit",
                "jurisdiction",
                "pseudonym",
                "status"
            ]
        );
        assert_eq!(v["pseudonym"], p.as_str());
        assert_eq!(v["status"], "active");
        assert_eq!(v["anonymous"], false);
        assert_eq!(v["case_ref"], "SX-2026-000123");
        assert_eq!(v["created_at"], "2026-11-20T12:00:00+08:00");
        for k in IDENTITY_KEYS {
            assert!(v.get(k).is_none(), "pseudonym view has {k}");
        }
        assert_absent(&r.body, &zs.values(), "the pseudonym view");
    }

    // Request.
    let r = app
        .request_disclosure(&c.cs.token, &p, "verification_contact", &["name", "phone"])
        .await;
    let d = r.expect(201, "request disclosure");
    let id = d["id"].as_str().expect("id").to_owned();
    assert_eq!(d["status"], "pending");
    assert_eq!(d["approvals_required"], 1);
    assert_eq!(d["approvals"], json!([]));
    assert_eq!(d["pseudonym"], p.as_str());
    assert_eq!(d["fields"], json!(["name", "phone"]));
    assert_absent(&r.body, &zs.values(), "the disclosure request answer");

    // Nothing opens before approval.
    app.open(&c.cs.token, &id)
        .await
        .expect_err(409, "invalid_state", "open while pending");

    // The requester's role may not approve; a custodian may not open.
    app.approve(&c.cs.token, &id)
        .await
        .expect_err(403, "forbidden", "requester approves");
    let r = app.approve(&c.cust1.token, &id).await;
    let v = r.expect(200, "custodian approves");
    assert_eq!(v["status"], "approved");
    assert_eq!(v["approvals"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["approvals"][0]["principal_id"], c.cust1.id.as_str());
    assert_eq!(v["approvals"][0]["comment"], "同意：核实需要");
    assert_eq!(v["approvals"][0]["at"], "2026-11-20T12:00:00+08:00");
    app.approve(&c.cust1.token, &id).await.expect_err(
        409,
        "already_decided",
        "same custodian again",
    );
    app.open(&c.cust1.token, &id)
        .await
        .expect_err(403, "forbidden", "custodian opens");

    // Open: exactly the requested fields.
    let r = app.open(&c.cs.token, &id).await;
    r.expect(200, "requester opens");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        r.json(),
        json!({"disclosure_id": id, "pseudonym": p, "fields": {"name": "张三", "phone": "13800138000"}})
    );

    // Once only.
    app.open(&c.cs.token, &id)
        .await
        .expect_err(409, "invalid_state", "second open");
    let v = app
        .get_disclosure(&c.cs.token, &id)
        .await
        .expect(200, "get disclosure");
    assert_eq!(v["status"], "opened");
    assert_eq!(v["opened_at"], "2026-11-20T12:00:00+08:00");

    // The trail holds the open, with a MAC per disclosed field and no plaintext.
    let events = app.events(&c.auditor.token).await;
    let opened: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"]["action"] == "disclosure_opened")
        .collect();
    assert_eq!(opened.len(), 1, "one disclosure_opened event");
    let ev = &opened[0]["event"];
    assert_eq!(ev["disclosure_id"], id.as_str());
    assert_eq!(ev["actor_id"], c.cs.id.as_str());
    let macs = ev["disclosed"].as_array().expect("disclosed");
    let fields: Vec<&str> = macs.iter().filter_map(|m| m["field"].as_str()).collect();
    assert_eq!(fields, ["name", "phone"]);
    for m in macs {
        let mac = m["mac"].as_str().expect("mac");
        assert_eq!(mac.len(), 64, "hex HMAC-SHA256");
    }
    let all = serde_json::to_vec(&events).expect("json");
    assert_absent(&all, &zs.values(), "the access trail");
    for action in [
        "reporter_sealed",
        "disclosure_requested",
        "disclosure_approved",
    ] {
        assert!(
            events.iter().any(|e| e["event"]["action"] == action),
            "no {action} event"
        );
    }
}

async fn judicial_transfer_needs_two_distinct_custodians(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let person = Person::nth(1);
    let p = app
        .seal_ok(&c.cs.token, "140105", "SX-2026-000200", Some(&person))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let r = app
        .request_disclosure(&c.cs.token, &p, "judicial_transfer", &["name", "id_number"])
        .await;
    let d = r.expect(201, "request");
    assert_eq!(d["approvals_required"], 2);
    let id = d["id"].as_str().expect("id").to_owned();

    let v = app
        .approve(&c.cust1.token, &id)
        .await
        .expect(200, "first approval");
    assert_eq!(
        v["status"], "pending",
        "one of two approvals leaves it pending"
    );
    assert_eq!(v["approvals"].as_array().map(Vec::len), Some(1));
    app.open(&c.cs.token, &id).await.expect_err(
        409,
        "invalid_state",
        "open with one of two approvals",
    );
    app.approve(&c.cust1.token, &id).await.expect_err(
        409,
        "already_decided",
        "the same custodian twice",
    );
    let v = app
        .get_disclosure(&c.cust2.token, &id)
        .await
        .expect(200, "get");
    assert_eq!(v["status"], "pending", "a repeated approval does not count");

    let v = app
        .approve(&c.cust2.token, &id)
        .await
        .expect(200, "second custodian");
    assert_eq!(v["status"], "approved");
    let approvers: Vec<&str> = v["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .filter_map(|a| a["principal_id"].as_str())
        .collect();
    assert_eq!(approvers, [c.cust1.id.as_str(), c.cust2.id.as_str()]);

    let r = app.open(&c.cs.token, &id).await;
    r.expect(200, "open");
    assert_eq!(
        r.json(),
        json!({"disclosure_id": id, "pseudonym": p,
               "fields": {"name": person.name, "id_number": person.id_number}})
    );

    // A finance officer's disclosure for payment: the requester opens it, nobody else.
    let id2 = app
        .request_disclosure_ok(
            &c.finance.token,
            &p,
            "reward_payment",
            &["name", "bank_account"],
        )
        .await;
    app.approve(&c.finance.token, &id2).await.expect_err(
        403,
        "forbidden",
        "finance approves its own",
    );
    app.approve(&c.cust2.token, &id2)
        .await
        .expect(200, "approve");
    app.get_disclosure(&c.cs.token, &id2).await.expect_err(
        404,
        "not_found",
        "another requester reads it",
    );
    let r = app.open(&c.finance.token, &id2).await;
    r.expect(200, "finance opens");
    assert_eq!(
        r.json()["fields"],
        json!({"name": person.name, "bank_account": person.bank_account})
    );
}

async fn denied_disclosure_never_opens(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let p = app
        .seal_ok(
            &c.cs.token,
            "140100",
            "SX-2026-000300",
            Some(&Person::nth(2)),
        )
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let id = app
        .request_disclosure_ok(&c.cs.token, &p, "verification_contact", &["phone"])
        .await;
    app.deny(&c.cs.token, &id)
        .await
        .expect_err(403, "forbidden", "requester denies");
    let v = app.deny(&c.cust1.token, &id).await.expect(200, "deny");
    assert_eq!(v["status"], "denied");
    assert_eq!(v["denials"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["denials"][0]["principal_id"], c.cust1.id.as_str());
    assert_eq!(v["approvals"], json!([]));
    app.open(&c.cs.token, &id)
        .await
        .expect_err(409, "invalid_state", "open a denied disclosure");
    app.approve(&c.cust2.token, &id).await.expect_err(
        409,
        "invalid_state",
        "approve after a denial",
    );
    let v = app
        .get_disclosure(&c.auditor.token, &id)
        .await
        .expect(200, "auditor reads");
    assert_eq!(v["status"], "denied");
    // The refusals are in the trail.
    let events = app.events(&c.auditor.token).await;
    assert!(
        events
            .iter()
            .any(|e| e["event"]["action"] == "disclosure_denied")
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"]["action"] == "access_denied"
                && e["event"]["disclosure_id"] == id.as_str()
                && e["event"]["actor_id"] == c.cs.id.as_str()),
        "the refused open is an access_denied event"
    );
}

async fn disclosure_expires_24_hours_after_approval(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let person = Person::nth(3);
    let p = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-000400", Some(&person))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let early = app
        .request_disclosure_ok(&c.cs.token, &p, "verification_contact", &["phone"])
        .await;
    let late = app
        .request_disclosure_ok(&c.cs.token, &p, "verification_contact", &["name"])
        .await;
    let v = app
        .approve(&c.cust1.token, &early)
        .await
        .expect(200, "approve");
    assert_eq!(v["expires_at"], "2026-11-21T12:00:00+08:00");
    app.approve(&c.cust1.token, &late)
        .await
        .expect(200, "approve");

    app.clock()
        .advance(time::Duration::hours(23) + time::Duration::minutes(59));
    let r = app.open(&c.cs.token, &early).await;
    r.expect(200, "open within 24 h");
    assert_eq!(r.json()["fields"]["phone"], person.phone.as_str());

    app.clock()
        .advance(time::Duration::hours(1) + time::Duration::minutes(1));
    let v = app
        .get_disclosure(&c.cs.token, &late)
        .await
        .expect(200, "get");
    assert_eq!(v["status"], "expired");
    let r = app.open(&c.cs.token, &late).await;
    r.expect_err(409, "invalid_state", "open after 25 h");
    assert!(
        r.text().contains("expired"),
        "the refusal names the state: {}",
        r.text()
    );
    assert_absent(&r.body, &person.values(), "the refusal");
    // The opened one stays opened, not expired.
    let v = app
        .get_disclosure(&c.cs.token, &early)
        .await
        .expect(200, "get");
    assert_eq!(v["status"], "opened");
}

async fn repeated_reporter_is_recognised_within_scope_only(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let zs = Person::zhang_san();
    let first = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-000501", Some(&zs))
        .await;
    assert_eq!(first["reporter_seen_before"], false);
    // Reports arrive minutes apart: "oldest first" is then well defined.
    let tick = || app.clock().advance(time::Duration::minutes(5));
    tick();

    // The same resident ID, written the way people write it (grouped, lower-case x).
    let mut again = zs.identity();
    again["id_number"] = json!("110105 19491231 002x");
    let second = app
        .seal(
            &c.cs.token,
            crate::harness::seal_body("140100", "SX-2026-000502", again),
        )
        .await
        .expect(201, "second seal");
    assert_eq!(second["reporter_seen_before"], true);
    assert_eq!(second["prior_case_refs"], json!(["SX-2026-000501"]));
    assert_ne!(
        second["pseudonym"], first["pseudonym"],
        "a new pseudonym per case"
    );
    tick();

    // Another province's case system seals the same person: it learns nothing of Shanxi.
    let sd = app
        .seal_ok(&c.cs_sd.token, "370100", "SD-2026-000001", Some(&zs))
        .await;
    let refs = sd["prior_case_refs"].as_array().expect("refs");
    assert!(
        !refs
            .iter()
            .any(|r| r.as_str().is_some_and(|s| s.starts_with("SX-"))),
        "Shandong sees Shanxi's cases: {sd}"
    );
    assert_eq!(sd["reporter_seen_before"], false, "{sd}");
    for earlier in [&first, &second] {
        assert_ne!(sd["pseudonym"], earlier["pseudonym"]);
    }
    tick();

    // Back in Shanxi: both Shanxi cases, not Shandong's.
    let third = app
        .seal_ok(&c.cs2.token, "140200", "SX-2026-000503", Some(&zs))
        .await;
    assert_eq!(third["reporter_seen_before"], true);
    assert_eq!(
        third["prior_case_refs"],
        json!(["SX-2026-000501", "SX-2026-000502"])
    );

    // A different person is not seen before.
    let other = app
        .seal_ok(
            &c.cs.token,
            "140100",
            "SX-2026-000504",
            Some(&Person::nth(4)),
        )
        .await;
    assert_eq!(other["reporter_seen_before"], false);
    assert_eq!(other["prior_case_refs"], json!([]));
}

async fn anonymous_report_gets_a_one_time_claim_code(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let a = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-000601", None)
        .await;
    assert_eq!(a["anonymous"], true);
    assert_eq!(a["reporter_seen_before"], false);
    assert_eq!(a["prior_case_refs"], json!([]));
    let code_a = a["claim_code"].as_str().expect("claim_code").to_owned();
    assert!(
        code_a.len() >= 8,
        "claim code too short to resist guessing: {code_a}"
    );

    let b = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-000602", None)
        .await;
    let code_b = b["claim_code"].as_str().expect("claim_code").to_owned();
    assert_ne!(
        code_a, code_b,
        "every anonymous report gets its own claim code"
    );
    assert_ne!(a["pseudonym"], b["pseudonym"]);

    let pa = a["pseudonym"].as_str().expect("p");
    let v = app.get_pseudonym(&c.cs.token, pa).await.expect(200, "get");
    assert_eq!(v["anonymous"], true);
    assert!(
        v.get("claim_code").is_none(),
        "the claim code is shown once"
    );
    let r = app.get_pseudonym(&c.cs.token, pa).await;
    assert!(!r.text().contains(&code_a), "claim code shown again");

    // No identity to disclose.
    app.request_disclosure(&c.cs.token, pa, "verification_contact", &["name"])
        .await
        .expect_err(409, "anonymous_reporter", "disclose an anonymous reporter");

    // The claim code is stored only as a slow hash: not in the database in plaintext.
    let events = app.events(&c.auditor.token).await;
    let trail = serde_json::to_vec(&events).expect("json");
    assert!(
        !crate::harness::contains(&trail, code_a.as_bytes()),
        "claim code in the trail"
    );
    let mut conn = app.storage.connect_db().await;
    use sqlx::Row;
    let rows = sqlx::query("SELECT claim_code_hash FROM reporters WHERE anonymous = 1")
        .fetch_all(&mut conn)
        .await
        .expect("select");
    assert_eq!(rows.len(), 2);
    for row in rows {
        let h: String = row.get("claim_code_hash");
        assert!(
            h.starts_with("$argon2id$"),
            "claim code hash is Argon2id: {h}"
        );
        assert!(!h.contains(&code_a) && !h.contains(&code_b));
    }
}

async fn handoff_issues_a_pseudonym_in_the_receiving_jurisdiction(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let person = Person::nth(5);
    let old = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-000701", Some(&person))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();

    let r = app
        .handoff(
            &c.cs.token,
            &old,
            json!({"to_jurisdiction": "370100", "case_ref": "SD-2026-000701"}),
        )
        .await;
    let v = r.expect(201, "hand off");
    let new = v["pseudonym"].as_str().expect("new").to_owned();
    assert_ne!(new, old);
    assert_eq!(v["jurisdiction"], "370100");
    assert_eq!(v["case_ref"], "SD-2026-000701");
    assert_eq!(v["status"], "active");
    assert_absent(&r.body, &person.values(), "the hand-off answer");

    // The receiver sees the new pseudonym, not the old; the sender keeps the old.
    let v = app
        .get_pseudonym(&c.cs_sd.token, &new)
        .await
        .expect(200, "receiver reads new");
    assert_eq!(v["jurisdiction"], "370100");
    app.get_pseudonym(&c.cs_sd.token, &old).await.expect_err(
        404,
        "not_found",
        "receiver reads old",
    );
    let v = app
        .get_pseudonym(&c.cs.token, &old)
        .await
        .expect(200, "sender reads old");
    assert_eq!(
        v["status"], "active",
        "the old pseudonym stays valid for the sender"
    );
    app.get_pseudonym(&c.cs.token, &new).await.expect_err(
        404,
        "not_found",
        "sender reads the receiver's",
    );
    app.message(&c.cs.token, &old, "progress", "案件已转交山东省办理")
        .await
        .expect(202, "sender still relays on the old one");

    // The receiving department can have the identity disclosed by its own custodian.
    let id = app
        .request_disclosure_ok(
            &c.cs_sd.token,
            &new,
            "verification_contact",
            &["name", "phone"],
        )
        .await;
    app.approve(&c.cust1.token, &id).await.expect_err(
        404,
        "not_found",
        "a Shanxi custodian approves a Shandong disclosure",
    );
    app.approve(&c.cust_sd.token, &id)
        .await
        .expect(200, "Shandong custodian approves");
    let r = app.open(&c.cs_sd.token, &id).await;
    r.expect(200, "open");
    assert_eq!(
        r.json()["fields"],
        json!({"name": person.name, "phone": person.phone})
    );

    // Without case_ref the hand-off keeps the case's reference.
    let v = app
        .handoff(&c.cs.token, &old, json!({"to_jurisdiction": "140200"}))
        .await
        .expect(201, "hand off within the province");
    assert_eq!(v["case_ref"], "SX-2026-000701");
    assert_eq!(v["jurisdiction"], "140200");

    // Only case systems hand off; a bad destination is a 422 naming it.
    app.handoff(&c.cust1.token, &old, json!({"to_jurisdiction": "370100"}))
        .await
        .expect_err(403, "forbidden", "custodian hands off");
    let r = app
        .handoff(&c.cs.token, &old, json!({"to_jurisdiction": "990100"}))
        .await;
    r.expect_err(422, "invalid_field", "bad destination");
    assert_eq!(r.field().as_deref(), Some("to_jurisdiction"));

    let events = app.events(&c.auditor.token).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"]["action"] == "pseudonym_handed_off")
            .count(),
        2
    );
}

async fn rotate_revokes_the_old_pseudonym(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let person = Person::nth(6);
    let old = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-000801", Some(&person))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let v = app.rotate(&c.cs.token, &old).await.expect(201, "rotate");
    let new = v["pseudonym"].as_str().expect("new").to_owned();
    assert_ne!(new, old);
    assert_eq!(v["jurisdiction"], "140100");
    assert_eq!(v["case_ref"], "SX-2026-000801");
    assert_eq!(v["status"], "active");

    let v = app
        .get_pseudonym(&c.cs.token, &old)
        .await
        .expect(200, "old");
    assert_eq!(v["status"], "revoked");

    // Nothing more happens on the revoked one.
    app.message(&c.cs.token, &old, "progress", "进展通知")
        .await
        .expect_err(409, "pseudonym_not_active", "message on revoked");
    app.request_disclosure(&c.cs.token, &old, "verification_contact", &["phone"])
        .await
        .expect_err(409, "pseudonym_not_active", "disclosure on revoked");
    app.rotate(&c.cs.token, &old).await.expect_err(
        409,
        "pseudonym_not_active",
        "rotate revoked again",
    );
    app.handoff(&c.cs.token, &old, json!({"to_jurisdiction": "140200"}))
        .await
        .expect_err(409, "pseudonym_not_active", "hand off revoked");

    // The new one carries on, for the same person.
    app.message(&c.cs.token, &new, "progress", "进展通知")
        .await
        .expect(202, "message on new");
    let id = app
        .request_disclosure_ok(&c.cs.token, &new, "verification_contact", &["phone"])
        .await;
    app.approve(&c.cust1.token, &id)
        .await
        .expect(200, "approve");
    let r = app.open(&c.cs.token, &id).await;
    r.expect(200, "open");
    assert_eq!(r.json()["fields"]["phone"], person.phone.as_str());

    // A custodian may rotate too (suspected exposure); auditors and finance may not.
    app.rotate(&c.cust1.token, &new)
        .await
        .expect(201, "custodian rotates");
    let v = app
        .get_pseudonym(&c.cs.token, &new)
        .await
        .expect(200, "new");
    assert_eq!(v["status"], "revoked");
    let events = app.events(&c.auditor.token).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"]["action"] == "pseudonym_rotated")
            .count(),
        2
    );
}

/// Twelve reports of one person and twelve of twelve others, all at once: on SQLite they
/// share group commits, where the person's concurrent first seals conflict on the blind index
/// and all but one must roll back alone, read again and re-seal; the others in the same
/// groups must commit untouched. One record for the person, every answer 201, one trail
/// event per seal, and the merged record still opens.
async fn concurrent_reports_of_one_person_make_one_record(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let zs = Person::zhang_san();
    let reporters_before = app.storage.count_rows("reporters").await;
    let pseudonyms_before = app.storage.count_rows("pseudonyms").await;
    let events_before = app.tree_size(&c.auditor.token).await;
    let mut calls = Vec::new();
    for i in 0..12u32 {
        let same =
            crate::harness::seal_body("140100", &format!("SX-2026-0009{i:02}"), zs.identity());
        let other = crate::harness::seal_body(
            "140100",
            &format!("SX-2026-0008{i:02}"),
            Person::nth(100 + i).identity(),
        );
        calls.push((true, same));
        calls.push((false, other));
    }
    let answers = futures_util::future::join_all(calls.into_iter().map(|(same, body)| {
        let app = &app;
        let token = c.cs.token.clone();
        async move { (same, app.seal(&token, body).await) }
    }))
    .await;
    let mut first_seen = 0;
    let mut pseudonyms = Vec::new();
    for (same, r) in answers {
        let v = r.expect(201, "concurrent seal");
        if same {
            if v["reporter_seen_before"] == false {
                first_seen += 1;
            }
            pseudonyms.push(v["pseudonym"].as_str().expect("pseudonym").to_owned());
        } else {
            assert_eq!(v["reporter_seen_before"], false, "{v}");
        }
    }
    assert_eq!(
        first_seen, 1,
        "exactly one of the person's reports created the record; the others saw it"
    );
    assert_eq!(
        app.storage.count_rows("reporters").await - reporters_before,
        13,
        "one record for the person, one for each other person"
    );
    assert_eq!(
        app.storage.count_rows("pseudonyms").await - pseudonyms_before,
        24
    );
    assert_eq!(
        app.tree_size(&c.auditor.token).await - events_before,
        24,
        "one trail event per seal, none for a rolled-back attempt"
    );
    // Every pseudonym of the person leads to the one record, which opens.
    let d = app
        .request_disclosure_ok(
            &c.cs.token,
            &pseudonyms[11],
            "verification_contact",
            &["phone"],
        )
        .await;
    app.approve(&c.cust1.token, &d).await.expect(200, "approve");
    let opened = app.open(&c.cs.token, &d).await.expect(200, "open");
    assert_eq!(opened["fields"]["phone"], zs.phone.as_str());
}

/// An approved disclosure opened by eight concurrent requests: the check that it is still
/// approved runs in the same write that marks it opened, so exactly one answer carries the
/// identity and the others are refused with the state named; one `disclosure_opened` event.
async fn concurrent_opens_disclose_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let zs = Person::zhang_san();
    let sealed = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-000951", Some(&zs))
        .await;
    let p = sealed["pseudonym"].as_str().expect("pseudonym").to_owned();
    // Several rounds, many requests each: the window between one open's read and its write
    // is short, and every round is another chance for two opens to fall into it.
    for round in 0..6 {
        let d = app
            .request_disclosure_ok(&c.cs.token, &p, "verification_contact", &["phone"])
            .await;
        app.approve(&c.cust1.token, &d).await.expect(200, "approve");
        let answers =
            futures_util::future::join_all((0..24).map(|_| app.open(&c.cs.token, &d))).await;
        let mut opened = 0;
        for r in &answers {
            match r.status {
                200 => {
                    opened += 1;
                    assert_eq!(r.json()["fields"]["phone"], zs.phone.as_str());
                }
                409 => {
                    assert_eq!(r.code(), "invalid_state", "{}", r.text());
                    assert_absent(&r.body, &zs.values(), "a refused concurrent open");
                }
                other => panic!("concurrent open answered {other}: {}", r.text()),
            }
        }
        assert_eq!(
            opened, 1,
            "round {round}: exactly one concurrent open discloses"
        );
        let events = app.events(&c.auditor.token).await;
        assert_eq!(
            openings(&events, &d),
            1,
            "round {round}: one disclosure_opened event"
        );
    }
}

/// Opens of different disclosures that arrive together are committed together (one group on
/// PostgreSQL: every record checked and locked in one statement, every disclosure opened in
/// another): each discloses its own person, exactly once, and the trail has one opening each.
async fn concurrent_opens_of_many_disclosures_open_each_once(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let people: Vec<Person> = (0..8).map(|n| Person::nth(500 + n)).collect();
    let mut disclosures = Vec::new();
    for (n, person) in people.iter().enumerate() {
        let sealed = app
            .seal_ok(
                &c.cs.token,
                "140100",
                &format!("SX-2026-0012{n:02}"),
                Some(person),
            )
            .await;
        let p = sealed["pseudonym"].as_str().expect("pseudonym");
        let d = app
            .request_disclosure_ok(&c.cs.token, p, "verification_contact", &["phone"])
            .await;
        app.approve(&c.cust1.token, &d).await.expect(200, "approve");
        disclosures.push(d);
    }
    // Three opens of each, interleaved: 24 at once.
    let order: Vec<usize> = (0..3).flat_map(|_| 0..disclosures.len()).collect();
    let answers = futures_util::future::join_all(
        order
            .iter()
            .map(|&i| app.open(&c.cs.token, &disclosures[i])),
    )
    .await;
    let mut opened = vec![0; disclosures.len()];
    for (&i, r) in order.iter().zip(&answers) {
        match r.status {
            200 => {
                opened[i] += 1;
                assert_eq!(
                    r.json()["fields"]["phone"],
                    people[i].phone.as_str(),
                    "disclosure {i} discloses its own person"
                );
            }
            409 => assert_eq!(r.code(), "invalid_state", "{}", r.text()),
            other => panic!("concurrent open answered {other}: {}", r.text()),
        }
    }
    assert_eq!(
        opened,
        vec![1; disclosures.len()],
        "each opens exactly once"
    );
    let events = app.events(&c.auditor.token).await;
    for d in &disclosures {
        assert_eq!(openings(&events, d), 1, "{d}: one disclosure_opened event");
        let stored = app
            .get_disclosure(&c.cs.token, d)
            .await
            .expect(200, "get disclosure");
        assert_eq!(stored["status"], "opened", "{d}");
        assert!(stored["opened_at"].is_string(), "{d}: {stored}");
    }
}

/// How many `disclosure_opened` events of the trail name disclosure `d`.
fn openings(events: &[Value], d: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event"]["action"] == "disclosure_opened" && e["event"]["disclosure_id"] == d)
        .count()
}

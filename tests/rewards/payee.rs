//! Identity-blind payout: `GET /v1/rewards/{id}/payee` gives finance name, bank account and
//! bank name of a claimed reward only; the release is in the access trail (a leak trace finds
//! it) and the bank account is in no event and no reward view.

use base64::Engine as _;
use serde_json::json;

use crate::harness::{Engine, Person, contains, file_single, spawn};

async fn payee_release_is_traced_and_never_logged(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let mut person = Person::nth(91);
    person.bank_account = "6222020200112345679".into();
    let (id, p) = file_single(&app, &cast, "PAYEE-1", &person, "20000.00").await;
    let payee = format!("/v1/rewards/{id}/payee");

    // Not before the reward is claimed.
    let r = app.get(&payee, &cast.fin1.token).await;
    r.err(409, "invalid_state", "payee while pending");
    app.post(
        &format!("/v1/rewards/{id}/approve"),
        &cast.fin1.token,
        json!({}),
    )
    .await
    .ok(200, "approve");
    let r = app.get(&payee, &cast.fin1.token).await;
    r.err(409, "invalid_state", "payee while approved");
    assert!(r.message().contains("approved"), "{}", r.text());
    app.post(
        &format!("/v1/rewards/{id}/claims"),
        &cast.case.token,
        json!({"pseudonym": p, "identity_checked": true}),
    )
    .await
    .ok(200, "claim");

    // Finance only.
    for (who, token) in [
        ("case system", &cast.case.token),
        ("auditor", &cast.auditor.token),
    ] {
        app.get(&payee, token).await.err(403, "forbidden", who);
    }
    let custodian = app.principal("custodian", "000000", "保密员").await;
    app.get(&payee, &custodian.token)
        .await
        .err(403, "forbidden", "custodian");

    let r = app.get(&payee, &cast.fin1.token).await;
    let v = r.ok(200, "payee");
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    assert_eq!(v["reward_id"], id.as_str(), "{v}");
    let payees = v["payees"].as_array().expect("payees");
    assert_eq!(payees.len(), 1, "{v}");
    let got = &payees[0];
    assert_eq!(got["pseudonym"], p.as_str());
    assert_eq!(got["amount"], "10000.00");
    assert_eq!(got["name"], person.name.as_str());
    assert_eq!(got["bank_account"], person.bank_account.as_str());
    assert_eq!(got["bank_name"], person.bank_name.as_str());
    let mut keys: Vec<&str> = got
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "amount",
            "anonymous",
            "bank_account",
            "bank_name",
            "name",
            "pseudonym"
        ],
        "name and bank details only: {v}"
    );
    for hidden in [&person.phone, &person.id_number] {
        assert!(!contains(&r.body, hidden.as_bytes()), "{hidden} in {v}");
    }
    assert!(!r.text().contains("id_number") && !r.text().contains("phone"));

    // The leak trace finds the release, the account written with spaces.
    let v = app
        .post(
            "/v1/audit/leak-trace",
            &cast.auditor.token,
            json!({"field": "bank_account", "value": "6222 0202 0011 2345 679"}),
        )
        .await
        .ok(200, "leak trace");
    let matches = v["matches"].as_array().expect("matches");
    let releases: Vec<_> = matches
        .iter()
        .filter(|m| m["action"] == "payee_released")
        .collect();
    assert_eq!(releases.len(), 1, "one payee release: {v}");
    assert_eq!(releases[0]["principal_id"], cast.fin1.id.as_str(), "{v}");
    assert_eq!(releases[0]["purpose"], "reward_payment", "{v}");
    // By name too.
    let v = app
        .post(
            "/v1/audit/leak-trace",
            &cast.auditor.token,
            json!({"field": "name", "value": person.name}),
        )
        .await
        .ok(200, "leak trace by name");
    assert!(
        v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["action"] == "payee_released"),
        "{v}"
    );
    // The phone did not leave: no match.
    let v = app
        .post(
            "/v1/audit/leak-trace",
            &cast.auditor.token,
            json!({"field": "phone", "value": person.phone}),
        )
        .await
        .ok(200, "leak trace by phone");
    assert_eq!(v["matches"], json!([]), "{v}");

    // Pay, then look everywhere for the account.
    app.post(
        &format!("/v1/rewards/{id}/payments"),
        &cast.fin1.token,
        json!({"payment_ref": "PAY-P1", "amount": "10000.00", "paid_on": "2026-11-21"}),
    )
    .await
    .ok(201, "pay");
    let needles = [
        person.bank_account.clone(),
        "6222 0202 0011 2345 679".to_owned(),
        person.name.clone(),
        person.phone.clone(),
        person.id_number.clone(),
    ];
    let events = app.events(&cast.auditor.token).await;
    assert!(events.len() > 10, "{} events", events.len());
    let mut released = 0;
    for e in &events {
        let leaf = base64::engine::general_purpose::STANDARD
            .decode(e["leaf"].as_str().unwrap())
            .unwrap();
        let parsed = e["event"].to_string();
        for n in &needles {
            assert!(
                !contains(&leaf, n.as_bytes()),
                "event {} leaf has {n}",
                e["index"]
            );
            assert!(!parsed.contains(n.as_str()), "event {} has {n}", e["index"]);
        }
        if e["event"]["action"] == "payee_released" {
            released += 1;
            let fields: Vec<&str> = e["event"]["disclosed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["field"].as_str().unwrap())
                .collect();
            assert_eq!(fields, ["name", "bank_account", "bank_name"], "{e}");
            assert_eq!(e["event"]["actor_id"], cast.fin1.id.as_str());
        }
    }
    assert_eq!(released, 1, "one payee_released event");
    for view in [
        app.get(&format!("/v1/rewards/{id}"), &cast.fin1.token)
            .await
            .text(),
        app.get("/v1/rewards", &cast.auditor.token).await.text(),
        app.get("/v1/stats/rewards?group_by=industry", &cast.auditor.token)
            .await
            .text(),
    ] {
        for n in &needles {
            assert!(!view.contains(n.as_str()), "{n} in {view}");
        }
    }
    // Paid: no more payee releases.
    app.get(&payee, &cast.fin1.token)
        .await
        .err(409, "invalid_state", "payee after payment");
}

both_engines!(payee_release_is_traced_and_never_logged);

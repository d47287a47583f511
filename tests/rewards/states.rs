//! The reward state machine over HTTP: every valid transition, invalid ones as `409` naming
//! the current state, four-eyes approval around the threshold, claims (by pseudonym or
//! claim code, rate limited), payments and idempotency.

use serde_json::{Value, json};

use crate::harness::{
    Cast, Engine, Person, Report, TestApp, claimed_reward, file_single, major_hazard, reward_body,
    spawn,
};

async fn approve(app: &TestApp, token: &str, id: &str) -> crate::harness::Resp {
    app.post(&format!("/v1/rewards/{id}/approve"), token, json!({}))
        .await
}

/// Every action that is not allowed in `state` answers `409 invalid_state` naming it (the
/// actions in `skip` are not attempted).
async fn refused_in_state(app: &TestApp, cast: &Cast, id: &str, state: &str, skip: &[&str]) {
    for what in ["approve", "reject", "claim", "extend", "payee", "payment"] {
        if skip.contains(&what) {
            continue;
        }
        let r = match what {
            "approve" => approve(app, &cast.fin2.token, id).await,
            "reject" => {
                app.post(
                    &format!("/v1/rewards/{id}/reject"),
                    &cast.fin2.token,
                    json!({"reason": "不符合条件"}),
                )
                .await
            }
            "claim" => {
                app.post(
                    &format!("/v1/rewards/{id}/claims"),
                    &cast.case.token,
                    json!({"pseudonym": "rp_x", "identity_checked": true}),
                )
                .await
            }
            "extend" => {
                app.post(
                    &format!("/v1/rewards/{id}/extend"),
                    &cast.fin1.token,
                    json!({"days": 5, "reason": "住院无法申领"}),
                )
                .await
            }
            "payee" => {
                app.get(&format!("/v1/rewards/{id}/payee"), &cast.fin1.token)
                    .await
            }
            _ => {
                app.post(
                    &format!("/v1/rewards/{id}/payments"),
                    &cast.fin1.token,
                    json!({"payment_ref": "PAY-X", "amount": "0.01", "paid_on": "2026-11-20"}),
                )
                .await
            }
        };
        let what = format!("{what} while {state}");
        r.err(409, "invalid_state", &what);
        assert!(
            r.message().contains(state),
            "{what}: the message names the state: {}",
            r.text()
        );
    }
    let v = app.reward(&cast.fin1.token, id).await;
    assert_eq!(v["status"], state, "unchanged by refused transitions: {v}");
}

async fn four_eyes_thresholds(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    // No shipped policy names a threshold: the default 50000.00 applies.
    // Below: 50 % of 99999.98 = 49999.99 → one approval approves.
    let (below, _) = file_single(&app, &cast, "FE-BELOW", &Person::nth(51), "99999.98").await;
    let v = app.reward(&cast.fin1.token, &below).await;
    assert_eq!(v["amount"], "49999.99");
    assert_eq!(v["approvals_required"], 1, "{v}");
    approve(&app, &cast.case.token, &below).await.err(
        403,
        "forbidden",
        "the filer (case system) approves",
    );
    approve(&app, &cast.auditor.token, &below)
        .await
        .err(403, "forbidden", "an auditor approves");
    let v = approve(&app, &cast.fin1.token, &below)
        .await
        .ok(200, "approve below");
    assert_eq!(v["status"], "approved", "{v}");
    assert_eq!(v["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(v["approvals"][0]["principal_id"], cast.fin1.id.as_str());
    assert!(v["claim_deadline"].is_string(), "{v}");

    // At (50000.00) and above (50000.01): two distinct finance officers.
    for (case_ref, n, penalty, amount) in [
        ("FE-AT", 52, "100000.00", "50000.00"),
        ("FE-ABOVE", 53, "100000.02", "50000.01"),
    ] {
        let (id, _) = file_single(&app, &cast, case_ref, &Person::nth(n), penalty).await;
        let v = approve(&app, &cast.fin1.token, &id)
            .await
            .ok(200, "first approval");
        assert_eq!(v["amount"], amount);
        assert_eq!(v["approvals_required"], 2, "{v}");
        assert_eq!(v["status"], "pending_approval", "one of two: {v}");
        assert!(v.get("claim_deadline").is_none(), "no window yet: {v}");
        approve(&app, &cast.fin1.token, &id).await.err(
            409,
            "already_approved",
            "the same officer again",
        );
        let v = app.reward(&cast.fin2.token, &id).await;
        assert_eq!(v["approvals"].as_array().unwrap().len(), 1, "counts once");
        let v = approve(&app, &cast.fin2.token, &id)
            .await
            .ok(200, "second approval");
        assert_eq!(v["status"], "approved", "{v}");
        let approvers: Vec<&str> = v["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["principal_id"].as_str().unwrap())
            .collect();
        assert_eq!(approvers, [cast.fin1.id.as_str(), cast.fin2.id.as_str()]);
        assert!(v["claim_deadline"].is_string(), "{v}");
    }
}

async fn every_transition(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;

    // pending_approval → rejected.
    let (rej, _) = file_single(&app, &cast, "ST-REJ", &Person::nth(61), "20000.00").await;
    refused_in_state(
        &app,
        &cast,
        &rej,
        "pending_approval",
        &["approve", "reject"],
    )
    .await;
    let r = app
        .post(
            &format!("/v1/rewards/{rej}/reject"),
            &cast.fin1.token,
            json!({"reason": " "}),
        )
        .await;
    r.err_field(422, "invalid_field", "reason", "an empty reason");
    app.post(
        &format!("/v1/rewards/{rej}/reject"),
        &cast.case.token,
        json!({"reason": "不符合条件"}),
    )
    .await
    .err(403, "forbidden", "the case system rejects");
    let v = app
        .post(
            &format!("/v1/rewards/{rej}/reject"),
            &cast.fin1.token,
            json!({"reason": "举报内容与查实事项不符"}),
        )
        .await
        .ok(200, "reject");
    assert_eq!(v["status"], "rejected", "{v}");
    assert_eq!(v["rejection_reason"], "举报内容与查实事项不符", "{v}");
    refused_in_state(&app, &cast, &rej, "rejected", &[]).await;

    // pending_approval → approved → (extend) → claimed → paid.
    let (id, p) = file_single(&app, &cast, "ST-PAY", &Person::nth(62), "20000.00").await;
    let v = approve(&app, &cast.fin1.token, &id)
        .await
        .ok(200, "approve");
    assert_eq!(v["status"], "approved");
    assert_eq!(v["notice_at"], "2026-11-20T12:00:00+08:00", "{v}");
    // Shandong names no claim days: the default 60; notice day not counted.
    assert_eq!(v["claim_deadline"], "2027-01-20T00:00:00+08:00", "{v}");
    refused_in_state(&app, &cast, &id, "approved", &["claim", "extend"]).await;
    let v = app
        .post(
            &format!("/v1/rewards/{id}/extend"),
            &cast.fin1.token,
            json!({"days": 10, "reason": "举报人出差"}),
        )
        .await
        .ok(200, "extend an open window");
    assert_eq!(v["status"], "approved");
    assert_eq!(v["claim_deadline"], "2027-01-30T00:00:00+08:00", "{v}");
    assert_eq!(v["extensions"][0]["days"], 10, "{v}");
    assert_eq!(v["extensions"][0]["reason"], "举报人出差", "{v}");
    app.post(
        &format!("/v1/rewards/{id}/extend"),
        &cast.case.token,
        json!({"days": 10, "reason": "举报人出差"}),
    )
    .await
    .err(403, "forbidden", "the case system extends");
    app.post(
        &format!("/v1/rewards/{id}/extend"),
        &cast.fin1.token,
        json!({"days": 0, "reason": "举报人出差"}),
    )
    .await
    .err_field(422, "invalid_field", "days", "zero days");
    app.post(
        &format!("/v1/rewards/{id}/extend"),
        &cast.fin1.token,
        json!({"days": 5}),
    )
    .await
    .err_field(422, "missing_field", "reason", "no reason");
    // Claims: identity_checked must be true; only the awarded real-name report; case
    // system only.
    app.post(
        &format!("/v1/rewards/{id}/claims"),
        &cast.case.token,
        json!({"pseudonym": p, "identity_checked": false}),
    )
    .await
    .err_field(
        422,
        "invalid_field",
        "identity_checked",
        "identity not checked",
    );
    app.post(
        &format!("/v1/rewards/{id}/claims"),
        &cast.case.token,
        json!({"pseudonym": "rp_someoneelse", "identity_checked": true}),
    )
    .await
    .err_field(422, "invalid_field", "pseudonym", "not an awarded report");
    app.post(
        &format!("/v1/rewards/{id}/claims"),
        &cast.fin1.token,
        json!({"pseudonym": p, "identity_checked": true}),
    )
    .await
    .err(403, "forbidden", "finance claims");
    let v = app
        .post(
            &format!("/v1/rewards/{id}/claims"),
            &cast.case.token,
            json!({"pseudonym": p, "identity_checked": true}),
        )
        .await
        .ok(200, "claim");
    assert_eq!(v["status"], "claimed", "{v}");
    assert_eq!(v["awards"][0]["claimed"], true, "{v}");
    refused_in_state(&app, &cast, &id, "claimed", &["payee", "payment"]).await;
    // Payment: finance only, the approved amount exactly, once.
    let pay = |amount: &str, pref: &str| json!({"payment_ref": pref, "amount": amount, "paid_on": "2026-11-21"});
    app.post(
        &format!("/v1/rewards/{id}/payments"),
        &cast.case.token,
        pay("10000.00", "PAY-1"),
    )
    .await
    .err(403, "forbidden", "the case system pays");
    for wrong in ["9999.99", "10000.01", "100000.00"] {
        app.post(
            &format!("/v1/rewards/{id}/payments"),
            &cast.fin1.token,
            pay(wrong, "PAY-1"),
        )
        .await
        .err_field(422, "amount_mismatch", "amount", "wrong amount");
    }
    let v = app
        .post(
            &format!("/v1/rewards/{id}/payments"),
            &cast.fin2.token,
            pay("10000.00", "PAY-1"),
        )
        .await
        .ok(201, "pay");
    assert_eq!(v["status"], "paid", "{v}");
    assert_eq!(v["payment"]["amount"], "10000.00", "{v}");
    assert_eq!(v["payment"]["payment_ref"], "PAY-1", "{v}");
    assert_eq!(v["payment"]["paid_on"], "2026-11-21", "{v}");
    assert_eq!(v["payment"]["recorded_by"], cast.fin2.id.as_str(), "{v}");
    app.post(
        &format!("/v1/rewards/{id}/payments"),
        &cast.fin1.token,
        pay("10000.00", "PAY-2"),
    )
    .await
    .err(409, "already_paid", "a second payment");
    refused_in_state(&app, &cast, &id, "paid", &["payment"]).await;

    // Out of scope is not found; so is an unknown id.
    let gd = app.principal("finance", "440000", "广东财务").await;
    app.get(&format!("/v1/rewards/{id}"), &gd.token)
        .await
        .err(404, "not_found", "out of scope");
    approve(&app, &gd.token, &rej)
        .await
        .err(404, "not_found", "approve out of scope");
    app.get("/v1/rewards/rwd_nosuchreward", &cast.fin1.token)
        .await
        .err(404, "not_found", "unknown id");

    // Listing by status.
    let v = app
        .get("/v1/rewards?status=paid", &cast.auditor.token)
        .await
        .ok(200, "list paid");
    let ids: Vec<&str> = v["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    app.get("/v1/rewards?status=lost", &cast.auditor.token)
        .await
        .err_field(422, "invalid_field", "status", "unknown status");
}

async fn idempotent_payments_and_filings(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let (id, _) = claimed_reward(&app, &cast, "ID-1", &Person::nth(71), "20000.00").await;
    let body = json!({"payment_ref": "PAY-IDEM", "amount": "10000.00", "paid_on": "2026-11-21"});
    let path = format!("/v1/rewards/{id}/payments");
    let send = |key: &'static str, body: Value| {
        let app = &app;
        let path = path.clone();
        let token = cast.fin1.token.clone();
        async move {
            app.call_with(
                reqwest::Method::POST,
                &path,
                Some(&token),
                &[("idempotency-key", key)],
                Some(&body),
            )
            .await
        }
    };
    let first = send("pay-key-1", body.clone()).await;
    first.ok(201, "first payment");
    let again = send("pay-key-1", body.clone()).await;
    again.ok(201, "the same key and body");
    assert_eq!(again.body, first.body, "the first answer, byte for byte");
    let mut other = body.clone();
    other["payment_ref"] = json!("PAY-OTHER");
    send("pay-key-1", other)
        .await
        .err(422, "idempotency_key_reused", "the same key, another body");
    send("pay-key-2", body.clone())
        .await
        .err(409, "already_paid", "another key");
    let v = app.reward(&cast.fin1.token, &id).await;
    assert_eq!(v["payment"]["payment_ref"], "PAY-IDEM", "one payment: {v}");

    // Filing a reward with a key: a retry gets the same reward, not a second one.
    let p = app
        .seal_p(
            &cast.case.token,
            &Report::named(
                "370100",
                "ID-2",
                "2026-11-02T09:00:00+08:00",
                &Person::nth(72),
            ),
        )
        .await;
    let body = reward_body(
        "ID-2",
        "370100",
        "2026-11-18",
        major_hazard("20000.00"),
        vec![json!({"pseudonym": p})],
    );
    let file = |key: &'static str| {
        let app = &app;
        let token = cast.case.token.clone();
        let body = body.clone();
        async move {
            app.call_with(
                reqwest::Method::POST,
                "/v1/rewards",
                Some(&token),
                &[("idempotency-key", key)],
                Some(&body),
            )
            .await
        }
    };
    let a = file("file-key-1").await.ok(201, "file");
    let b = file("file-key-1").await.ok(201, "file again");
    assert_eq!(a["id"], b["id"], "the same reward");
    let v = app
        .get("/v1/rewards?jurisdiction=370100", &cast.auditor.token)
        .await
        .ok(200, "list");
    let n = v["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["case_ref"] == "ID-2")
        .count();
    assert_eq!(n, 1, "one reward filed");
}

/// An Idempotency-Key names one request: the same key and body sent to *another* reward's
/// payments is not a repeat of the first request and must not get the first reward's answer
/// (leaving the second reward unpaid while the caller sees `201`).
async fn idempotency_key_is_bound_to_the_reward(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let (a, _) = claimed_reward(&app, &cast, "IK-A", &Person::nth(73), "20000.00").await;
    let (b, _) = claimed_reward(&app, &cast, "IK-B", &Person::nth(74), "20000.00").await;
    let body = json!({"payment_ref": "PAY-BATCH-7", "amount": "10000.00", "paid_on": "2026-11-21"});
    let pay = |id: String| {
        let app = &app;
        let token = cast.fin1.token.clone();
        let body = body.clone();
        async move {
            app.call_with(
                reqwest::Method::POST,
                &format!("/v1/rewards/{id}/payments"),
                Some(&token),
                &[("idempotency-key", "batch-7")],
                Some(&body),
            )
            .await
        }
    };
    let first = pay(a.clone()).await.ok(201, "pay A");
    assert_eq!(first["id"], a.as_str());
    let r = pay(b.clone()).await;
    let got_b = app.reward(&cast.fin1.token, &b).await;
    if r.status == 201 {
        assert_eq!(
            r.json()["id"],
            b.as_str(),
            "a 201 for B's payment must be B's: got {} while B is {}",
            r.text(),
            got_b["status"]
        );
        assert_eq!(got_b["status"], "paid", "{got_b}");
    } else {
        r.err(422, "idempotency_key_reused", "the key on another reward");
        assert_eq!(got_b["status"], "claimed", "{got_b}");
    }
}

async fn anonymous_claim_by_code(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    // Shanxi housing (14xxxx, housing construction) rewards anonymous reports.
    let anon = app
        .seal(
            &cast.case.token,
            &Report {
                jurisdiction: "140100",
                case_ref: "SX-CODE-1",
                received_at: "2026-11-03T08:00:00+08:00",
                person: None,
                employee: false,
            },
        )
        .await;
    let p = anon["pseudonym"].as_str().unwrap().to_owned();
    let code = anon["claim_code"].as_str().unwrap().to_owned();
    let mut body = reward_body(
        "SX-CODE-1",
        "140100",
        "2026-11-18",
        major_hazard("100000.00"),
        vec![json!({"pseudonym": p})],
    );
    body["industry"] = json!("housing_construction");
    let v = app
        .post("/v1/rewards", &cast.case.token, body)
        .await
        .ok(201, "file");
    let id = v["id"].as_str().unwrap().to_owned();
    let claims = format!("/v1/rewards/{id}/claims");
    // Before approval a claim code claim is refused on the state.
    app.post(&claims, &cast.case.token, json!({"claim_code": code}))
        .await
        .err(409, "invalid_state", "claim before approval");
    approve(&app, &cast.fin1.token, &id)
        .await
        .ok(200, "approve");
    // The pseudonym route is for real-name reports; both at once is ambiguous.
    app.post(
        &claims,
        &cast.case.token,
        json!({"pseudonym": p, "identity_checked": true}),
    )
    .await
    .err_field(422, "invalid_field", "pseudonym", "anonymous by pseudonym");
    app.post(
        &claims,
        &cast.case.token,
        json!({"pseudonym": p, "identity_checked": true, "claim_code": code}),
    )
    .await
    .ok(422, "both");
    // A wrong (well-formed) code: 422, five times; then 429 even for the right one.
    let first = code.chars().next().unwrap();
    let wrong = format!(
        "{}{}",
        if first == '7' { '8' } else { '7' },
        &code[first.len_utf8()..]
    );
    for i in 0..5 {
        app.post(&claims, &cast.case.token, json!({"claim_code": wrong}))
            .await
            .err_field(
                422,
                "invalid_field",
                "claim_code",
                &format!("wrong code {i}"),
            );
    }
    app.post(&claims, &cast.case.token, json!({"claim_code": code}))
        .await
        .err(429, "rate_limited", "the sixth attempt");
    let v = app.reward(&cast.fin1.token, &id).await;
    assert_eq!(v["status"], "approved", "{v}");
    // Ten minutes later (manual clock) the right code claims, in lower case and spaced.
    app.clock.advance(time::Duration::minutes(11));
    let typed = code.to_lowercase().replace('-', " ");
    let v = app
        .post(&claims, &cast.case.token, json!({"claim_code": typed}))
        .await
        .ok(200, "the right code");
    assert_eq!(v["status"], "claimed", "{v}");
    app.post(&claims, &cast.case.token, json!({"claim_code": code}))
        .await
        .err(409, "invalid_state", "claimed twice");
}

both_engines!(
    four_eyes_thresholds,
    every_transition,
    idempotent_payments_and_filings,
    idempotency_key_is_bound_to_the_reward,
    anonymous_claim_by_code
);

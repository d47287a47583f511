//! `GET /v1/stats/rewards`: counts and sums by jurisdiction, outcome kind and industry; a
//! group of fewer than 3 distinct reporters is suppressed.

use serde_json::{Value, json};

use crate::harness::{Engine, Person, Report, TestApp, file_single, reward_body, spawn};

async fn groups(app: &TestApp, token: &str, q: &str) -> Vec<Value> {
    let v = app
        .get(&format!("/v1/stats/rewards?{q}"), token)
        .await
        .ok(200, q);
    v["groups"].as_array().expect("groups").clone()
}

#[track_caller]
fn group<'a>(gs: &'a [Value], key: &str) -> &'a Value {
    gs.iter()
        .find(|g| g["key"] == key)
        .unwrap_or_else(|| panic!("no group {key} in {gs:?}"))
}

#[track_caller]
fn shown(gs: &[Value], key: &str, count: u64, sum: &str) {
    let g = group(gs, key);
    assert_eq!(
        g,
        &json!({"key": key, "count": count, "sum": sum}),
        "group {key}"
    );
}

#[track_caller]
fn suppressed(gs: &[Value], key: &str) {
    let g = group(gs, key);
    assert_eq!(g, &json!({"key": key, "suppressed": true}), "group {key}");
}

async fn stats_suppress_small_groups(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    // Shandong, hazardous chemicals, major hazards: three distinct reporters, 10000.00 each.
    for n in 0..3 {
        file_single(
            &app,
            &cast,
            &format!("ST-SD-{n}"),
            &Person::nth(300 + n),
            "20000.00",
        )
        .await;
    }
    // A rejected one does not count.
    let (rej, _) = file_single(&app, &cast, "ST-SD-R", &Person::nth(310), "20000.00").await;
    app.post(
        &format!("/v1/rewards/{rej}/reject"),
        &cast.fin1.token,
        json!({"reason": "重复举报"}),
    )
    .await
    .ok(200, "reject");
    // Henan, chemicals, illegal production: three rewards but one reporter.
    let henan = Person::nth(320);
    for n in 0..3 {
        let case_ref = format!("ST-HN-{n}");
        let p = app
            .seal_p(
                &cast.case.token,
                &Report::named("410100", &case_ref, "2026-11-02T09:00:00+08:00", &henan),
            )
            .await;
        let mut body = reward_body(
            &case_ref,
            "410100",
            "2026-11-18",
            json!({"kind": "illegal_production", "penalty": "100000.00"}),
            vec![json!({"pseudonym": p})],
        );
        body["industry"] = json!("chemical");
        let v = app
            .post("/v1/rewards", &cast.case.token, body)
            .await
            .ok(201, "file");
        assert_eq!(v["amount"], "15000.00", "{v}");
    }
    // Longhua, other industry, a general hazard: one reporter.
    let lh = Person::nth(330);
    let p = app
        .seal_p(
            &cast.case.token,
            &Report::named("440309", "ST-LH-0", "2026-11-02T09:00:00+08:00", &lh),
        )
        .await;
    let mut body = reward_body(
        "ST-LH-0",
        "440309",
        "2026-11-18",
        json!({"kind": "general_hazard"}),
        vec![json!({"pseudonym": p})],
    );
    body["industry"] = json!("other");
    app.post("/v1/rewards", &cast.case.token, body)
        .await
        .ok(201, "file");

    for token in [&cast.auditor.token, &cast.fin1.token] {
        let gs = groups(&app, token, "group_by=jurisdiction").await;
        assert_eq!(gs.len(), 3, "{gs:?}");
        shown(&gs, "370100", 3, "30000.00");
        suppressed(&gs, "410100");
        suppressed(&gs, "440309");

        let gs = groups(&app, token, "group_by=outcome_kind").await;
        assert_eq!(gs.len(), 3, "{gs:?}");
        shown(&gs, "major_hazard", 3, "30000.00");
        suppressed(&gs, "illegal_production");
        suppressed(&gs, "general_hazard");

        let gs = groups(&app, token, "group_by=industry").await;
        assert_eq!(gs.len(), 3, "{gs:?}");
        shown(&gs, "hazardous_chemicals", 3, "30000.00");
        suppressed(&gs, "chemical");
        suppressed(&gs, "other");
    }
    // The period: everything was filed on 2026-11-20 (CST).
    let gs = groups(
        &app,
        &cast.auditor.token,
        "group_by=jurisdiction&from=2026-11-20&to=2026-11-20",
    )
    .await;
    shown(&gs, "370100", 3, "30000.00");
    let gs = groups(
        &app,
        &cast.auditor.token,
        "group_by=jurisdiction&from=2026-11-21",
    )
    .await;
    assert!(gs.is_empty(), "{gs:?}");

    app.get("/v1/stats/rewards?group_by=reporter", &cast.auditor.token)
        .await
        .err_field(422, "invalid_field", "group_by", "bad group_by");
    app.get(
        "/v1/stats/rewards?group_by=jurisdiction&from=yesterday",
        &cast.auditor.token,
    )
    .await
    .err_field(422, "invalid_field", "from", "bad from");
    app.get("/v1/stats/rewards?group_by=jurisdiction", &cast.case.token)
        .await
        .err(403, "forbidden", "the case system reads statistics");
}

both_engines!(stats_suppress_small_groups);

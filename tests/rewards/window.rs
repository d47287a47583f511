//! The claim window with an injected clock: the notice day is not counted, the window closes
//! at 24:00 China Standard Time of the last day, finance may extend it, and the expiry job
//! moves unclaimed rewards to `expired`.

use std::time::Duration;

use serde_json::{Value, json};
use time::macros::datetime;

use crate::harness::{Engine, Person, Report, TestApp, major_hazard, reward_body, spawn};

async fn ids_with_status(app: &TestApp, token: &str, status: &str) -> Vec<String> {
    let v = app
        .get(&format!("/v1/rewards?status={status}"), token)
        .await
        .ok(200, "list");
    v["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn claim_window_closes_at_midnight_cst(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    // Three national (cn-national-2018: claim_days 60) rewards, approved at T0 =
    // 2026-11-20 12:00 CST: the last day is 2027-01-19, closing at 2027-01-20 00:00 CST.
    let mut rewards: Vec<(String, String, Person)> = Vec::new();
    for n in 0..3u32 {
        let person = Person::nth(80 + n);
        let case_ref = format!("BJ-WIN-{n}");
        let p = app
            .seal_p(
                &cast.case.token,
                &Report::named("110105", &case_ref, "2026-11-02T09:00:00+08:00", &person),
            )
            .await;
        let v = app
            .post(
                "/v1/rewards",
                &cast.case.token,
                reward_body(
                    &case_ref,
                    "110105",
                    "2026-11-18",
                    major_hazard("100000.00"),
                    vec![json!({"pseudonym": p})],
                ),
            )
            .await
            .ok(201, "file");
        assert_eq!(v["policy"]["id"], "cn-national-2018");
        let id = v["id"].as_str().unwrap().to_owned();
        let v = app
            .post(
                &format!("/v1/rewards/{id}/approve"),
                &cast.fin1.token,
                json!({}),
            )
            .await
            .ok(200, "approve");
        assert_eq!(v["claim_deadline"], "2027-01-20T00:00:00+08:00", "{v}");
        rewards.push((id, p, person));
    }
    let claim = |id: String, p: String| {
        let app = &app;
        let token = cast.case.token.clone();
        async move {
            app.post(
                &format!("/v1/rewards/{id}/claims"),
                &token,
                json!({"pseudonym": p, "identity_checked": true}),
            )
            .await
        }
    };

    // Each reporter is sent a reward notice naming the last day, without the contact.
    let outbox = app.data_dir().join("outbox.jsonl");
    let mut lines: Vec<Value> = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&outbox)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|l: &Value| l["kind"] == "reward_notice")
            .collect();
        if lines.len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lines.len(), 3, "three reward notices: {lines:?}");
    for (_, p, person) in &rewards {
        let l = lines
            .iter()
            .find(|l| l["pseudonym"] == p.as_str())
            .unwrap_or_else(|| panic!("a notice to {p}: {lines:?}"));
        let body = l["body"].as_str().unwrap();
        assert!(
            body.contains("15000.00") && body.contains("2027-01-19"),
            "{body}"
        );
        let text = l.to_string();
        assert!(
            !text.contains(&person.phone),
            "the contact is masked: {text}"
        );
    }

    // 23:59:59 CST on the last day: still open.
    app.clock.set(datetime!(2027-01-19 23:59:59 +08:00));
    let v = claim(rewards[0].0.clone(), rewards[0].1.clone())
        .await
        .ok(200, "claim at 23:59:59 on the last day");
    assert_eq!(v["status"], "claimed", "{v}");

    // 00:00:00 CST the next day (16:00 UTC the day before): closed.
    app.clock.set(datetime!(2027-01-19 16:00:00 UTC));
    claim(rewards[1].0.clone(), rewards[1].1.clone()).await.err(
        409,
        "claim_window_closed",
        "claim at 00:00:00 the next day",
    );
    // Reads as expired at once; the job (every second) moves both to expired in the store.
    let v = app.reward(&cast.auditor.token, &rewards[2].0).await;
    assert_eq!(v["status"], "expired", "{v}");
    let listed = ids_with_status(&app, &cast.auditor.token, "expired").await;
    let mut want = vec![rewards[1].0.clone(), rewards[2].0.clone()];
    want.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, want, "the list reads the unclaimed two as expired");
    // The job records each expiry in the access trail as a system event.
    let mut expired: Vec<String> = Vec::new();
    for _ in 0..100 {
        expired = app
            .events(&cast.auditor.token)
            .await
            .iter()
            .filter(|e| e["event"]["action"] == "reward_expired")
            .map(|e| e["event"]["target"].as_str().unwrap_or_default().to_owned())
            .collect();
        if expired.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expired.sort();
    assert_eq!(expired, want, "the expiry job moved the unclaimed two");
    assert_eq!(
        ids_with_status(&app, &cast.auditor.token, "claimed").await,
        [rewards[0].0.clone()],
        "the claimed one stays claimed"
    );
    // Expired: claims stay refused; approving or paying is a state conflict.
    claim(rewards[1].0.clone(), rewards[1].1.clone()).await.err(
        409,
        "claim_window_closed",
        "claim while expired",
    );
    let r = app
        .post(
            &format!("/v1/rewards/{}/payments", rewards[1].0),
            &cast.fin1.token,
            json!({"payment_ref": "P", "amount": "15000.00", "paid_on": "2027-01-20"}),
        )
        .await;
    r.err(409, "invalid_state", "pay while expired");
    assert!(r.message().contains("expired"), "{}", r.text());
    // Only finance extends, with days and a reason; an expired window reopens from the end
    // of today (2027-01-20) for 3 more days: last day 2027-01-23.
    app.post(
        &format!("/v1/rewards/{}/extend", rewards[1].0),
        &cast.case.token,
        json!({"days": 3, "reason": "举报人住院，逾期有正当理由"}),
    )
    .await
    .err(403, "forbidden", "the case system extends");
    let v = app
        .post(
            &format!("/v1/rewards/{}/extend", rewards[1].0),
            &cast.fin2.token,
            json!({"days": 3, "reason": "举报人住院，逾期有正当理由"}),
        )
        .await
        .ok(200, "extend");
    assert_eq!(v["status"], "approved", "{v}");
    assert_eq!(v["claim_deadline"], "2027-01-24T00:00:00+08:00", "{v}");
    assert_eq!(
        v["extensions"][0]["reason"], "举报人住院，逾期有正当理由",
        "{v}"
    );
    assert_eq!(v["extensions"][0]["principal_id"], cast.fin2.id.as_str());
    let v = claim(rewards[1].0.clone(), rewards[1].1.clone())
        .await
        .ok(200, "claim after the extension");
    assert_eq!(v["status"], "claimed", "{v}");
    // The third stays expired.
    let v = app.reward(&cast.auditor.token, &rewards[2].0).await;
    assert_eq!(v["status"], "expired", "{v}");
    // The transitions are in the access trail, the expiry by the system.
    let events = app.events(&cast.auditor.token).await;
    let actions: Vec<&str> = events
        .iter()
        .filter(|e| e["event"]["target"] == rewards[1].0.as_str())
        .filter(|e| e["event"]["outcome"] == "ok")
        .filter_map(|e| e["event"]["action"].as_str())
        .collect();
    for a in [
        "reward_filed",
        "reward_approved",
        "reward_expired",
        "reward_extended",
        "reward_claimed",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
}

/// Extending a window that has closed gives a window that again ends at 24:00 CST, whether
/// or not the expiry job has already stored the reward as `expired` (GET already reads it
/// as expired). Here finance extends at 10:00 the morning after, right after the clock
/// moves, before the once-a-second job has (usually) run.
async fn extend_after_close_ends_at_midnight(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let person = Person::nth(85);
    let p = app
        .seal_p(
            &cast.case.token,
            &Report::named("110105", "BJ-WIN-X", "2026-11-02T09:00:00+08:00", &person),
        )
        .await;
    let v = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                "BJ-WIN-X",
                "110105",
                "2026-11-18",
                major_hazard("100000.00"),
                vec![json!({"pseudonym": p})],
            ),
        )
        .await
        .ok(201, "file");
    let id = v["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/rewards/{id}/approve"),
        &cast.fin1.token,
        json!({}),
    )
    .await
    .ok(200, "approve");
    app.clock.set(datetime!(2027-01-20 10:00:00 +08:00));
    let v = app
        .post(
            &format!("/v1/rewards/{id}/extend"),
            &cast.fin1.token,
            json!({"days": 3, "reason": "举报人住院，逾期有正当理由"}),
        )
        .await
        .ok(200, "extend a closed window");
    assert_eq!(v["status"], "approved", "{v}");
    // Reopened from the end of today (2027-01-20) for 3 days: last day 2027-01-23.
    assert_eq!(
        v["claim_deadline"], "2027-01-24T00:00:00+08:00",
        "an extended window closes at 24:00 CST, as it does once the job has run: {v}"
    );
}

/// Once the window has closed the API shows the reward as `expired` (GET and the list);
/// a refused transition must name that state, not the stored `approved` the job has not
/// (usually) replaced yet.
async fn refusal_after_close_names_the_state_shown(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let p = app
        .seal_p(
            &cast.case.token,
            &Report::named(
                "110105",
                "BJ-WIN-Y",
                "2026-11-02T09:00:00+08:00",
                &Person::nth(86),
            ),
        )
        .await;
    let v = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                "BJ-WIN-Y",
                "110105",
                "2026-11-18",
                major_hazard("100000.00"),
                vec![json!({"pseudonym": p})],
            ),
        )
        .await
        .ok(201, "file");
    let id = v["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/v1/rewards/{id}/approve"),
        &cast.fin1.token,
        json!({}),
    )
    .await
    .ok(200, "approve");
    app.clock.set(datetime!(2027-01-20 10:00:00 +08:00));
    let r = app
        .post(
            &format!("/v1/rewards/{id}/payments"),
            &cast.fin1.token,
            json!({"payment_ref": "P", "amount": "15000.00", "paid_on": "2027-01-20"}),
        )
        .await;
    let shown = app.reward(&cast.fin1.token, &id).await;
    assert_eq!(shown["status"], "expired", "{shown}");
    r.err(409, "invalid_state", "pay after the window closed");
    assert!(
        r.message().contains("expired"),
        "the 409 names the state GET shows (expired): {}",
        r.text()
    );
}

both_engines!(
    claim_window_closes_at_midnight_cst,
    extend_after_close_ends_at_midnight,
    refusal_after_close_names_the_state_shown
);

//! Two finance officers acting on the same reward at the same moment produce one outcome:
//! one approval of a single-approval reward, one payment, never a double payment.

use serde_json::json;

use crate::harness::{Engine, Person, Resp, claimed_reward, file_single, spawn};

const ROUNDS: u32 = 10;

#[track_caller]
fn one_winner(a: &Resp, b: &Resp, ok: u16, what: &str) -> usize {
    let oks = [a, b].iter().filter(|r| r.status == ok).count();
    assert_eq!(
        oks,
        1,
        "{what}: exactly one succeeds: {} {} / {} {}",
        a.status,
        a.text(),
        b.status,
        b.text()
    );
    let loser = if a.status == ok { b } else { a };
    assert_eq!(loser.status, 409, "{what}: the other is a conflict");
    let code = loser.code();
    assert!(
        ["invalid_state", "concurrent_update", "already_paid"].contains(&code.as_str()),
        "{what}: conflict code {code}"
    );
    if a.status == ok { 0 } else { 1 }
}

async fn concurrent_approvals(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    for round in 0..ROUNDS {
        // 10000.00: one approval approves.
        let (id, _) = file_single(
            &app,
            &cast,
            &format!("CC-A-{round}"),
            &Person::nth(100 + round),
            "20000.00",
        )
        .await;
        let path = format!("/v1/rewards/{id}/approve");
        let (a, b) = tokio::join!(
            app.post(&path, &cast.fin1.token, json!({})),
            app.post(&path, &cast.fin2.token, json!({}))
        );
        let w = one_winner(&a, &b, 200, &format!("approve round {round}"));
        let v = app.reward(&cast.auditor.token, &id).await;
        assert_eq!(v["status"], "approved", "{v}");
        let approvals = v["approvals"].as_array().unwrap();
        assert_eq!(approvals.len(), 1, "one approval recorded: {v}");
        let winner = if w == 0 { &cast.fin1.id } else { &cast.fin2.id };
        assert_eq!(approvals[0]["principal_id"], winner.as_str(), "{v}");
    }
    // The same officer twice at once on a dual-approval reward counts once.
    for round in 0..3 {
        let (id, _) = file_single(
            &app,
            &cast,
            &format!("CC-D-{round}"),
            &Person::nth(150 + round),
            "200000.00",
        )
        .await;
        let path = format!("/v1/rewards/{id}/approve");
        let (a, b) = tokio::join!(
            app.post(&path, &cast.fin1.token, json!({})),
            app.post(&path, &cast.fin1.token, json!({}))
        );
        let oks = [&a, &b].iter().filter(|r| r.status == 200).count();
        assert_eq!(oks, 1, "one of the same officer's approvals: {a:?} {b:?}");
        let v = app.reward(&cast.auditor.token, &id).await;
        assert_eq!(v["status"], "pending_approval", "{v}");
        assert_eq!(v["approvals"].as_array().unwrap().len(), 1, "{v}");
    }
}

/// Approve and reject at once: one of them happens, and the reward shows that one.
async fn concurrent_approve_and_reject(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    for round in 0..5 {
        let (id, _) = file_single(
            &app,
            &cast,
            &format!("CC-R-{round}"),
            &Person::nth(170 + round),
            "20000.00",
        )
        .await;
        let approve = format!("/v1/rewards/{id}/approve");
        let reject = format!("/v1/rewards/{id}/reject");
        let (a, b) = tokio::join!(
            app.post(&approve, &cast.fin1.token, json!({})),
            app.post(&reject, &cast.fin2.token, json!({"reason": "材料不全"}))
        );
        let w = one_winner(&a, &b, 200, &format!("approve/reject round {round}"));
        let v = app.reward(&cast.auditor.token, &id).await;
        let want = if w == 0 { "approved" } else { "rejected" };
        assert_eq!(v["status"], want, "{v}");
        assert_eq!(
            v["approvals"].as_array().unwrap().len(),
            usize::from(w == 0),
            "{v}"
        );
    }
    // Two distinct officers at once on a dual-approval reward: both count, or one is told
    // to retry; the stored state always matches what was answered.
    for round in 0..5 {
        let (id, _) = file_single(
            &app,
            &cast,
            &format!("CC-2-{round}"),
            &Person::nth(180 + round),
            "200000.00",
        )
        .await;
        let path = format!("/v1/rewards/{id}/approve");
        let (a, b) = tokio::join!(
            app.post(&path, &cast.fin1.token, json!({})),
            app.post(&path, &cast.fin2.token, json!({}))
        );
        let oks = [&a, &b].iter().filter(|r| r.status == 200).count();
        for r in [&a, &b] {
            if r.status != 200 {
                r.err(409, "concurrent_update", "the other officer");
            }
        }
        let v = app.reward(&cast.auditor.token, &id).await;
        assert_eq!(v["approvals"].as_array().unwrap().len(), oks, "{v}");
        let want = if oks == 2 {
            "approved"
        } else {
            "pending_approval"
        };
        assert_eq!(v["status"], want, "{v}");
    }
}

async fn concurrent_payments(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    for round in 0..ROUNDS {
        let (id, _) = claimed_reward(
            &app,
            &cast,
            &format!("CC-P-{round}"),
            &Person::nth(200 + round),
            "20000.00",
        )
        .await;
        let path = format!("/v1/rewards/{id}/payments");
        let body =
            |r: &str| json!({"payment_ref": r, "amount": "10000.00", "paid_on": "2026-11-21"});
        let (a, b) = tokio::join!(
            app.post(&path, &cast.fin1.token, body("PAY-A")),
            app.post(&path, &cast.fin2.token, body("PAY-B"))
        );
        let w = one_winner(&a, &b, 201, &format!("pay round {round}"));
        let v = app.reward(&cast.auditor.token, &id).await;
        assert_eq!(v["status"], "paid", "{v}");
        assert_eq!(
            v["payment"]["payment_ref"],
            if w == 0 { "PAY-A" } else { "PAY-B" },
            "the winner's payment is the one recorded: {v}"
        );
    }
    // One reward_paid event per reward.
    let events = app.events(&cast.auditor.token).await;
    let paid = events
        .iter()
        .filter(|e| e["event"]["action"] == "reward_paid" && e["event"]["outcome"] == "ok")
        .count();
    assert_eq!(paid, ROUNDS as usize, "one payment event per reward");
}

both_engines!(
    concurrent_approvals,
    concurrent_approve_and_reject,
    concurrent_payments
);

//! The filer may withdraw a reward before any decision; nothing else can, and not after.

use serde_json::json;

use crate::harness::{Engine, Person, file_single, spawn};

async fn filer_cancels_only_while_pending(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let (id, _) = file_single(&app, &cast, "CANCEL-1", &Person::nth(151), "20000.00").await;
    let cancel = format!("/v1/rewards/{id}/cancel");
    app.post(&cancel, &cast.fin1.token, json!({"reason": "撤回"}))
        .await
        .err(403, "forbidden", "finance cancels");
    app.post(&cancel, &cast.case.token, json!({"reason": ""}))
        .await
        .err_field(422, "invalid_field", "reason", "empty reason");
    let v = app
        .post(
            &cancel,
            &cast.case.token,
            json!({"reason": "核查结论被撤销"}),
        )
        .await
        .ok(200, "cancel");
    assert_eq!(v["status"], "cancelled", "{v}");
    let r = app
        .post(
            &format!("/v1/rewards/{id}/approve"),
            &cast.fin1.token,
            json!({}),
        )
        .await;
    r.err(409, "invalid_state", "approve a cancelled reward");
    assert!(r.message().contains("cancelled"), "{}", r.text());
    app.post(&cancel, &cast.case.token, json!({"reason": "再次撤回"}))
        .await
        .err(409, "invalid_state", "cancel twice");
    let events = app.events(&cast.auditor.token).await;
    assert!(
        events
            .iter()
            .any(|e| e["event"]["action"] == "reward_cancelled"
                && e["event"]["target"] == id.as_str())
    );
}

both_engines!(filer_cancels_only_while_pending);

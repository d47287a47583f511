//! Reporter receipts: a signed statement of the reporter's rewards and of every time their
//! identity left the vault (when, role, purpose — never who), with inclusion proofs that
//! verify against a signed checkpoint. Anonymous reporters need their claim code.

use serde_json::json;
use vault_crypto::checkpoint::NoteVerifier;
use vault_crypto::merkle::verify_inclusion;

use crate::harness::{Engine, Person, Report, claimed_reward, spawn};

fn hex32(s: &str) -> [u8; 32] {
    let v = hex::decode(s).expect("hex");
    v.try_into().expect("32 bytes")
}

async fn receipt_lists_payee_release_with_proofs_and_never_who(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let person = Person::nth(131);
    let (id, p) = claimed_reward(&app, &cast, "RECEIPT-1", &person, "20000.00").await;
    app.get(&format!("/v1/rewards/{id}/payee"), &cast.fin1.token)
        .await
        .ok(200, "payee release");

    let r = app
        .post("/v1/receipts", &cast.case.token, json!({"pseudonym": p}))
        .await
        .ok(200, "receipt");
    // The statement verifies under the statement key, and is not a checkpoint.
    let st_key = NoteVerifier::parse(r["statement_key"].as_str().unwrap()).unwrap();
    let note = r["statement"].as_str().unwrap();
    let text = st_key.verify_text(note).expect("statement signature");
    assert!(text.starts_with("reporter-vault receipt v1\n"), "{text}");
    let body: serde_json::Value =
        serde_json::from_str(text.lines().nth(1).unwrap()).expect("statement JSON");
    assert_eq!(body["pseudonym"], p.as_str());
    assert_eq!(body["rewards"][0]["reward_id"], id.as_str());
    assert_eq!(body["rewards"][0]["status"], "claimed");
    assert_eq!(body["rewards"][0]["amount"], "10000.00");
    let accesses = body["disclosures"].as_array().unwrap();
    assert_eq!(accesses.len(), 1, "{body}");
    assert_eq!(accesses[0]["action"], "payee_released");
    assert_eq!(accesses[0]["role"], "finance");
    assert_eq!(accesses[0]["purpose"], "reward_payment");
    // Never who.
    assert!(
        !text.contains(&cast.fin1.id),
        "the statement names the officer: {text}"
    );
    assert!(
        !text.contains("财务一"),
        "the statement names the officer: {text}"
    );
    assert!(!text.contains(&person.bank_account), "{text}");
    // A statement is not a checkpoint, and the log key does not sign statements.
    assert!(st_key.verify(note).is_err());
    let log_key = NoteVerifier::parse(r["log_key"].as_str().unwrap()).unwrap();
    assert!(log_key.verify_text(note).is_err());

    // Each access is proven included in the signed log.
    let cp = log_key
        .verify(r["checkpoint"].as_str().unwrap())
        .expect("checkpoint signature");
    assert_eq!(body["tree_size"], cp.size);
    let proofs = r["proofs"].as_array().unwrap();
    assert_eq!(proofs.len(), 1);
    for pr in proofs {
        let leaf = hex32(pr["leaf_hash"].as_str().unwrap());
        let hashes: Vec<[u8; 32]> = pr["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hex32(h.as_str().unwrap()))
            .collect();
        let index = pr["index"].as_u64().unwrap();
        verify_inclusion(&leaf, index, cp.size, &hashes, &cp.root).expect("inclusion");
        // fail: a different leaf hash does not verify.
        let mut other = leaf;
        other[0] ^= 1;
        assert!(verify_inclusion(&other, index, cp.size, &hashes, &cp.root).is_err());
    }
    // Issuing it is itself in the trail.
    let events = app.events(&cast.auditor.token).await;
    assert!(
        events
            .iter()
            .any(|e| e["event"]["action"] == "receipt_issued"
                && e["event"]["pseudonym"] == p.as_str()),
        "receipt_issued event"
    );
}

async fn anonymous_receipt_needs_the_claim_code(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let sealed = app
        .seal(
            &cast.case.token,
            &Report {
                jurisdiction: "370100",
                case_ref: "RECEIPT-ANON",
                received_at: "2026-11-02T09:00:00+08:00",
                person: None,
                employee: false,
            },
        )
        .await;
    let p = sealed["pseudonym"].as_str().unwrap().to_owned();
    let code = sealed["claim_code"].as_str().unwrap().to_owned();
    app.post("/v1/receipts", &cast.case.token, json!({"pseudonym": p}))
        .await
        .err_field(422, "invalid_field", "claim_code", "no claim code");
    app.post(
        "/v1/receipts",
        &cast.case.token,
        json!({"pseudonym": p, "claim_code": "AAAAA-AAAAA-AAAAA-AAAAA"}),
    )
    .await
    .err_field(422, "invalid_field", "claim_code", "wrong claim code");
    let r = app
        .post(
            "/v1/receipts",
            &cast.case.token,
            json!({"pseudonym": p, "claim_code": code.to_lowercase()}),
        )
        .await
        .ok(200, "the right code, typed in lowercase");
    assert!(r["statement"].as_str().unwrap().contains(&p));
    // Other roles may not ask.
    app.post("/v1/receipts", &cast.fin1.token, json!({"pseudonym": p}))
        .await
        .err(403, "forbidden", "finance asks for a receipt");
}

/// `/metrics` (no token) exports the oversight counts, and never an identifier.
async fn metrics_export_reward_states_and_no_identifiers(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let person = Person::nth(141);
    let (id, p) = claimed_reward(&app, &cast, "METRICS-1", &person, "20000.00").await;
    let r = reqwest::get(format!("{}/metrics", app.base))
        .await
        .expect("GET /metrics");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.expect("body");
    assert!(text.contains("rv_rewards{status=\"claimed\"} 1"), "{text}");
    assert!(text.contains("rv_reward_approvals_waiting 0"), "{text}");
    assert!(text.contains("rv_audit_tree_size "), "{text}");
    for secret in [id.as_str(), p.as_str(), person.bank_account.as_str()] {
        assert!(!text.contains(secret), "metrics name {secret}: {text}");
    }
}

both_engines!(
    receipt_lists_payee_release_with_proofs_and_never_who,
    anonymous_receipt_needs_the_claim_code,
    metrics_export_reward_states_and_no_identifiers,
);

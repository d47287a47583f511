//! Checkpoints, events, inclusion and consistency proofs fetched over HTTP and checked in the
//! test with the RFC 9162 verification algorithms and the signed-note verifier.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use vault_crypto::checkpoint::NoteVerifier;
use vault_crypto::merkle::{
    EMPTY_ROOT, Hash, leaf_hash, root_of_leaves, verify_consistency, verify_inclusion,
};

use crate::harness::{Engine, TestApp, action};
use crate::tamper::identity;

fn hashes(v: &Value) -> Vec<Hash> {
    v["hashes"]
        .as_array()
        .expect("hashes")
        .iter()
        .map(|h| {
            STANDARD
                .decode(h.as_str().expect("base64 string"))
                .expect("base64")
                .try_into()
                .expect("32-byte hash")
        })
        .collect()
}

async fn proofs_over_http_verify(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    for i in 0..5 {
        app.seal(identity(i)).await;
    }
    let vkey = app.public_key().await;
    let verifier = NoteVerifier::parse(&vkey).expect("GET /v1/audit/public-key is a verifier key");
    let cp1 = verifier
        .verify(&app.sign_checkpoint().await)
        .expect("checkpoint 1 verifies");
    for i in 5..12 {
        app.seal(identity(i)).await;
    }
    let p = app.seal(identity(12)).await;
    app.disclose(
        "case_system",
        &p,
        "verification_contact",
        &["phone", "name"],
    )
    .await;
    let note = app.sign_checkpoint().await;
    let cp2 = verifier.verify(&note).expect("checkpoint 2 verifies");
    assert_eq!(cp1.origin, verifier.name());
    assert_eq!(cp2.origin, verifier.name());
    // The latest checkpoint is what GET serves.
    assert_eq!(app.latest_checkpoint().await, note);

    // Events page: exact leaf bytes, in order, each the canonical JSON of its `event`.
    let (events, tree_size) = app.events().await;
    let n = cp2.size;
    assert_eq!(tree_size, n);
    assert_eq!(events.len() as u64, n, "one event per leaf, the whole log");
    assert!(n >= 20, "enough events for interesting trees: {n}");
    for (pos, (index, leaf, ev)) in events.iter().enumerate() {
        assert_eq!(*index, pos as u64, "indexes are dense from 0");
        let parsed: Value = serde_json::from_slice(leaf).expect("leaf is JSON");
        assert_eq!(&parsed, ev, "`event` is the leaf, parsed");
        assert_eq!(ev["index"], *index, "the leaf carries its own index");
    }
    assert!(events.iter().any(|e| action(&e.2) == "disclosure_opened"));
    // A page from the middle.
    let page = app
        .get("/v1/audit/events?start=7&limit=3", "auditor")
        .await
        .expect(200, "page");
    let page = page["events"].as_array().expect("events").clone();
    assert_eq!(page.len(), 3);
    assert_eq!(page[0]["index"], 7);
    assert_eq!(
        STANDARD
            .decode(page[2]["leaf"].as_str().expect("leaf"))
            .expect("b64"),
        events[9].1
    );

    // Roots recomputed from the leaves (RFC 9162 MTH) match both signed checkpoints.
    let lh: Vec<Hash> = events.iter().map(|e| leaf_hash(&e.1)).collect();
    let root_at = |size: u64| root_of_leaves(&lh[..size as usize]);
    assert_eq!(root_at(cp1.size), cp1.root, "checkpoint 1 root");
    assert_eq!(root_at(n), cp2.root, "checkpoint 2 root");
    assert_eq!(root_at(0), EMPTY_ROOT);

    // Inclusion proofs.
    let m = cp1.size;
    let mut cases: Vec<(u64, u64)> = [0, 1, m - 1, m, n / 2, n - 2, n - 1]
        .iter()
        .map(|i| (*i, n))
        .collect();
    cases.extend([
        (0, 1),
        (2, 3),
        (m - 1, m),
        (5, 13),
        (6, 7),
        (8, 16),
        (16, 17),
    ]);
    for (index, size) in cases {
        let r = app
            .get(
                &format!("/v1/audit/proofs/inclusion?index={index}&tree_size={size}"),
                "auditor",
            )
            .await
            .expect(200, "inclusion proof");
        assert_eq!(r["index"], index);
        assert_eq!(r["tree_size"], size);
        let proof = hashes(&r);
        let root = root_at(size);
        verify_inclusion(&lh[index as usize], index, size, &proof, &root).unwrap_or_else(|e| {
            panic!("inclusion proof of {index} in {size} does not verify: {e}")
        });
        // Negative: another leaf, another index, or an altered hash must fail.
        let other = (index + 1) % size;
        if other != index {
            assert!(verify_inclusion(&lh[other as usize], index, size, &proof, &root).is_err());
        }
        if let Some(first) = proof.first() {
            let mut bad = proof.clone();
            bad[0] = leaf_hash(first);
            assert!(verify_inclusion(&lh[index as usize], index, size, &bad, &root).is_err());
        }
    }

    // Consistency proofs.
    for (first, second) in [
        (1, n),
        (m, n),
        (3, 7),
        (4, 8),
        (5, 13),
        (7, 16),
        (n - 1, n),
        (n, n),
        (0, n),
        (1, 2),
    ] {
        let r = app
            .get(
                &format!("/v1/audit/proofs/consistency?first={first}&second={second}"),
                "auditor",
            )
            .await
            .expect(200, "consistency proof");
        assert_eq!(r["first"], first);
        assert_eq!(r["second"], second);
        let proof = hashes(&r);
        let (r1, r2) = (root_at(first), root_at(second));
        verify_consistency(first, second, &r1, &r2, &proof).unwrap_or_else(|e| {
            panic!("consistency proof {first} -> {second} does not verify: {e}")
        });
        if first > 0 && first < second {
            let wrong = root_at(first - 1);
            assert!(verify_consistency(first, second, &wrong, &r2, &proof).is_err());
            let mut bad = proof.clone();
            let last = bad.len() - 1;
            bad[last] = leaf_hash(&bad[last]);
            assert!(verify_consistency(first, second, &r1, &r2, &bad).is_err());
        }
    }
    // The signed checkpoints are consistent with each other.
    let r = app
        .get(
            &format!(
                "/v1/audit/proofs/consistency?first={}&second={}",
                cp1.size, n
            ),
            "auditor",
        )
        .await
        .expect(200, "consistency between the checkpoints");
    verify_consistency(cp1.size, n, &cp1.root, &cp2.root, &hashes(&r))
        .expect("signed checkpoints are consistent");

    // Out of range: 422.
    for q in [
        format!("inclusion?index={n}&tree_size={n}"),
        format!("inclusion?index={}&tree_size={n}", n + 5),
        "inclusion?index=5&tree_size=5".to_owned(),
        "inclusion?index=0&tree_size=0".to_owned(),
        format!("inclusion?index=0&tree_size={}", n + 1),
        format!("consistency?first=5&second={}", n + 1),
        "consistency?first=6&second=5".to_owned(),
    ] {
        let r = app.get(&format!("/v1/audit/proofs/{q}"), "auditor").await;
        r.expect(422, &q);
    }
    // Proofs are for auditors.
    let r = app
        .get(
            "/v1/audit/proofs/inclusion?index=0&tree_size=1",
            "case_system",
        )
        .await;
    r.expect(403, "a case system reading proofs");
    app.stop().await;
}

both_engines!(proofs_over_http_verify);

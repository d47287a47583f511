//! Retiring a KEK version: never the active one, never one that records still use, not
//! within the grace period after its successor appeared, only by an admin, and the version
//! in the path must be a number. The CLI follows the same rules.

use std::time::Duration;

use reqwest::Method;

use crate::harness::{
    ALL_FIELDS, Engine, Person, Server, Store, assert_discloses, describe, env_version, key_version,
};

both_engines!(retiring_a_key_version_follows_the_rules);

async fn retiring_a_key_version_follows_the_rules(engine: Engine) {
    let store = Store::new(engine).await;
    let server = Server::start(
        &store,
        &[
            ("RV_KEY_RETIRE_GRACE_SECONDS", "30"),
            ("RV_KEY_RELOAD_SECONDS", "1"),
        ],
    )
    .await;
    let t = server.tokens.clone();
    let people: Vec<Person> = (200..203).map(Person::nth).collect();
    let mut pseudonyms = Vec::new();
    for (i, p) in people.iter().enumerate() {
        pseudonyms.push(server.seal(p, &format!("SX-RET-{i}")).await);
    }

    // Only an admin manages keys.
    for (who, tok) in [
        ("case_system", &t.case),
        ("custodian", &t.custodian),
        ("auditor", &t.auditor),
        ("finance", &t.finance),
    ] {
        let r = server
            .call(Method::POST, "/v1/admin/keys/1/retire", Some(tok), None)
            .await;
        r.expect_err(403, "forbidden", &format!("{who} retires a key"));
        for (m, path) in [
            (Method::GET, "/v1/admin/keys"),
            (Method::POST, "/v1/admin/keys/rotate"),
            (Method::POST, "/v1/admin/keys/rewrap"),
        ] {
            let r = server.call(m.clone(), path, Some(tok), None).await;
            r.expect_err(403, "forbidden", &format!("{who}: {m} {path}"));
        }
    }
    let r = server
        .call(Method::POST, "/v1/admin/keys/1/retire", None, None)
        .await;
    r.expect_err(401, "unauthenticated", "retire without a token");

    // The version must be a number.
    for bad in ["abc", "1.5", "-1", "v1", "99999999999"] {
        let r = server.retire(bad).await;
        let e = r.expect_err(422, "invalid_field", &format!("retire {bad:?}"));
        assert_eq!(e["field"], "version", "retire {bad:?}: {e}");
    }
    // An unknown version.
    server
        .retire("7")
        .await
        .expect_err(404, "not_found", "retire an unknown version");

    // The active version.
    let e = server
        .retire("1")
        .await
        .expect_err(409, "key_active", "retire the active version");
    assert!(e["message"].as_str().unwrap().contains('1'), "{e}");

    // A version records still use: the answer names how many.
    assert_eq!(server.rotate().await, 2);
    server
        .retire("2")
        .await
        .expect_err(409, "key_active", "retire the new active version");
    let e = server
        .retire("1")
        .await
        .expect_err(409, "key_in_use", "retire a version in use");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("3 records"), "the count of records: {msg}");
    let out = store
        .run(
            &["keys", "retire", "1"],
            &[("RV_KEY_RETIRE_GRACE_SECONDS", "0")],
        )
        .await;
    assert!(
        !out.status.success(),
        "CLI retire of v1 in use: {}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 records still use key version 1"),
        "{}",
        describe(&out)
    );

    // Within the grace period after v2 appeared (30 s here).
    let job = server.rewrap_to_completion().await;
    assert_eq!(
        (job["done"].as_u64(), job["failed"].as_u64()),
        (Some(3), Some(0)),
        "{job}"
    );
    let e = server.retire("1").await.expect_err(
        409,
        "key_retire_too_soon",
        "retire within the grace period",
    );
    assert!(e["message"].as_str().unwrap().contains("30 s"), "{e}");
    let out = store
        .run(
            &["keys", "retire", "1"],
            &[("RV_KEY_RETIRE_GRACE_SECONDS", "30")],
        )
        .await;
    assert!(
        !out.status.success(),
        "CLI retire too soon: {}",
        describe(&out)
    );
    let k = server.keys().await;
    assert_eq!(
        key_version(&k, 1)["retired"],
        false,
        "nothing retired yet: {k}"
    );

    // An operator whose replicas have all reloaded may shorten the grace (CLI, grace 0).
    let out = store
        .run(
            &["keys", "retire", "1"],
            &[("RV_KEY_RETIRE_GRACE_SECONDS", "0")],
        )
        .await;
    assert!(out.status.success(), "CLI retire v1: {}", describe(&out));
    // The server sees it (its own retire re-reads the keys first).
    server
        .retire("1")
        .await
        .expect_err(409, "key_retired", "retire v1 again");
    wait_for!(
        Duration::from_secs(5),
        "GET /v1/admin/keys shows v1 retired",
        {
            let k = server.keys().await;
            (key_version(&k, 1)["retired"] == true).then_some(())
        }
    );
    let k = server.keys().await;
    assert_eq!(k["active_version"], 2, "{k}");
    assert_eq!(key_version(&k, 1)["records"], 0, "{k}");
    assert_eq!(key_version(&k, 2)["records"], 3, "{k}");
    assert_eq!(key_version(&k, 2)["retired"], false, "{k}");

    // Everything still opens.
    let d = server
        .approved_disclosure(&pseudonyms[2], &ALL_FIELDS)
        .await;
    let v = server.open(&d).await.expect(200, "open after retirement");
    assert_discloses(&v, &people[2], "after retirement");

    let events = server.events().await;
    let denied = events
        .iter()
        .filter(|e| e["action"] == "access_denied" && e["reason"] == "role")
        .count();
    assert!(
        denied >= 16,
        "the refused key operations are in the trail ({denied})"
    );
    server.stop().await;
    store.audit_verify(&[]).await;
}

both_engines!(a_process_that_missed_a_rotation_never_seals_under_a_retired_key);

/// A server that has not reloaded the keys yet (reload every hour here) still seals under
/// v1 after the CLI rotated to v2 and retired v1 with no grace. Each such seal is refused in
/// its own transaction, the server reloads and seals again under v2: the record opens, and
/// no record is ever stored under the destroyed key. Without the check, the seal would store
/// a v1 envelope that nothing can open any more.
async fn a_process_that_missed_a_rotation_never_seals_under_a_retired_key(engine: Engine) {
    let store = Store::new(engine).await;
    let server = Server::start(
        &store,
        &[
            ("RV_KEY_RELOAD_SECONDS", "3600"),
            ("RV_KEY_RETIRE_GRACE_SECONDS", "0"),
        ],
    )
    .await;
    // Nothing sealed yet: v1 is in use by no record, so the CLI may retire it at once.
    let cli = [("RV_KEY_RETIRE_GRACE_SECONDS", "0")];
    let out = store.run(&["keys", "rotate"], &cli).await;
    assert!(out.status.success(), "CLI rotate: {}", describe(&out));
    let out = store.run(&["keys", "retire", "1"], &cli).await;
    assert!(out.status.success(), "CLI retire v1: {}", describe(&out));

    let person = Person::nth(777);
    let p = server.seal(&person, "SX-STALE-1").await;
    let record = store.record_of(&p).await;
    let row = store.reporter_row(&record).await;
    let envs = store.envelopes().await;
    let (_, col, env) = envs
        .iter()
        .find(|(id, _, _)| *id == record)
        .expect("the sealed record's envelope");
    assert_eq!(
        (*col, env_version(env)),
        (2, 2),
        "sealed under the retired v1 instead of v2 ({row:?})"
    );
    let k = server.keys().await;
    assert_eq!(key_version(&k, 2)["records"], 1, "{k}");
    assert_eq!(key_version(&k, 1)["records"], 0, "{k}");
    assert_eq!(key_version(&k, 1)["retired"], true, "{k}");
    let d = server.approved_disclosure(&p, &ALL_FIELDS).await;
    let opened = server.open(&d).await.expect(200, "open the record");
    assert_discloses(&opened, &person, "the record sealed after the retirement");
    server.stop().await;
}

//! A rewrap job over more records than one batch, with one envelope whose wrapped data key
//! was damaged in the database: the job completes, reports exactly that one envelope as
//! failed, moves every other record, and the old version stays in use (so it cannot be
//! retired) only because of the damaged one.

use std::sync::Arc;

use crate::harness::{Engine, Person, Server, Store, env_version, key_version};

both_engines!(a_rewrap_job_counts_a_damaged_envelope_once_and_moves_every_other);

/// Two batches of the job's default 200, so the damaged record is met by more than one.
const RECORDS: u32 = 400;

async fn a_rewrap_job_counts_a_damaged_envelope_once_and_moves_every_other(engine: Engine) {
    let store = Store::new(engine).await;
    let server = Arc::new(Server::start(&store, &[("RV_KEY_RETIRE_GRACE_SECONDS", "0")]).await);

    // Seal the records with a few clients at once.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..RECORDS).step_by(8) {
                server
                    .seal(&Person::nth(2000 + i), &format!("SX-RW-{i}"))
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        store.scalar("SELECT COUNT(*) FROM reporters").await,
        i64::from(RECORDS)
    );

    // Damage the wrapped data key of the record the job meets first (ORDER BY id).
    let mut envs = store.envelopes().await;
    envs.sort_by(|a, b| a.0.cmp(&b.0));
    let (bad_id, _, bad_env) = envs[0].clone();
    let mut damaged = bad_env.clone();
    damaged[20] ^= 0x01;
    {
        let mut db = store.connect_db().await;
        let n = sqlx::query("UPDATE reporters SET envelope = $1 WHERE id = $2")
            .bind(damaged.clone())
            .bind(bad_id.clone())
            .execute(&mut db)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 1);
    }

    assert_eq!(server.rotate().await, 2);
    let job = server.rewrap_to_completion().await;
    let k = server.keys().await;
    let on_v1 = key_version(&k, 1)["records"].as_u64().unwrap();
    let on_v2 = key_version(&k, 2)["records"].as_u64().unwrap();
    eprintln!("[{engine:?}] rewrap job: {job}; records on v1 {on_v1}, on v2 {on_v2}");
    // Every good record moved; only the damaged one stays on v1.
    assert_eq!(
        (on_v1, on_v2),
        (1, u64::from(RECORDS) - 1),
        "records per version after the job: {k}"
    );
    for (id, col, env) in store.envelopes().await {
        let want: u32 = if id == bad_id { 1 } else { 2 };
        assert_eq!(
            (col, env_version(&env)),
            (i64::from(want), want),
            "record {id}"
        );
    }
    assert_eq!(
        store.reporter_row(&bad_id).await.envelope,
        Some(damaged),
        "the damaged envelope is left as it is"
    );
    // The job's report says the same.
    assert_eq!(job["failed"], 1, "one damaged envelope: {job}");
    assert_eq!(job["done"], RECORDS - 1, "the others were rewrapped: {job}");
    assert_eq!(job["total"], RECORDS, "{job}");
    let events = server.events().await;
    let done = events
        .iter()
        .find(|e| e["action"] == "keys_rewrapped")
        .expect("keys_rewrapped event");
    assert_eq!(done["detail"]["failed"], "1", "{done}");
    assert_eq!(
        done["detail"]["rewrapped"],
        (RECORDS - 1).to_string(),
        "{done}"
    );

    // v1 cannot be retired while the damaged record is on it.
    let e = server.retire("1").await.expect_err(
        409,
        "key_in_use",
        "retire v1 with the damaged record on it",
    );
    assert!(
        e["message"].as_str().unwrap().starts_with("1 records"),
        "{e}"
    );
    match Arc::try_unwrap(server) {
        Ok(s) => s.stop().await,
        Err(_) => panic!("the server is still shared"),
    }
}

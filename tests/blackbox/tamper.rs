//! Tampering with a stored envelope — a flipped bit anywhere, a re-labelled key version, a
//! truncation, an envelope moved to another row, a record moved to another jurisdiction —
//! makes the open fail with an integrity error. It never returns wrong data.

use sqlx::{AnyConnection, Connection, Row};

use crate::flow::Cast;
use crate::harness::{Engine, Person, Resp, TestApp, assert_absent, spawn_app};

both_engines!(tampered_envelopes_fail_closed);

async fn reporter_of(conn: &mut AnyConnection, pseudonym: &str) -> String {
    let row = sqlx::query("SELECT reporter_id FROM pseudonyms WHERE pseudonym = $1")
        .bind(pseudonym.to_owned())
        .fetch_one(&mut *conn)
        .await
        .expect("pseudonym row");
    row.get("reporter_id")
}

async fn envelope(conn: &mut AnyConnection, id: &str) -> Vec<u8> {
    let row = sqlx::query("SELECT envelope FROM reporters WHERE id = $1")
        .bind(id.to_owned())
        .fetch_one(&mut *conn)
        .await
        .expect("reporter row");
    row.get("envelope")
}

async fn set_envelope(conn: &mut AnyConnection, id: &str, env: &[u8]) {
    let n = sqlx::query("UPDATE reporters SET envelope = $1 WHERE id = $2")
        .bind(env.to_vec())
        .bind(id.to_owned())
        .execute(&mut *conn)
        .await
        .expect("update envelope")
        .rows_affected();
    assert_eq!(n, 1);
}

async fn set_jurisdiction(conn: &mut AnyConnection, id: &str, j: &str) {
    sqlx::query("UPDATE reporters SET jurisdiction = $1 WHERE id = $2")
        .bind(j.to_owned())
        .bind(id.to_owned())
        .execute(&mut *conn)
        .await
        .expect("update jurisdiction");
}

#[track_caller]
fn assert_integrity_failure(r: &Resp, what: &str, values: &[String]) {
    r.expect_err(503, "integrity_failure", what);
    assert_absent(&r.body, values, what);
}

fn flipped(env: &[u8], at: usize) -> Vec<u8> {
    let mut out = env.to_vec();
    out[at] ^= 0x01;
    out
}

async fn open_ok(app: &TestApp, token: &str, id: &str) -> Resp {
    let r = app.open(token, id).await;
    r.expect(200, "open");
    r
}

async fn tampered_envelopes_fail_closed(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let a = Person::nth(70);
    let b = Person::nth(71);
    let fields = ["name", "id_number", "phone"];
    let mut ids = Vec::new();
    let mut pseudonyms = Vec::new();
    for (i, who) in [&a, &b].into_iter().enumerate() {
        let p = app
            .seal_ok(&c.cs.token, "140100", &format!("SX-TAMPER-{i}"), Some(who))
            .await["pseudonym"]
            .as_str()
            .expect("p")
            .to_owned();
        // Several approved disclosures per reporter: a failed open must not consume one,
        // and the last proves the record opens again once restored.
        let mut mine = Vec::new();
        for _ in 0..2 {
            let d = app
                .request_disclosure_ok(&c.cs.token, &p, "verification_contact", &fields)
                .await;
            app.approve(&c.cust1.token, &d).await.expect(200, "approve");
            mine.push(d);
        }
        ids.push(mine);
        pseudonyms.push(p);
    }
    let (da, db) = (ids[0][0].clone(), ids[1][0].clone());
    let mut values = a.values();
    values.extend(b.values());

    let mut conn = app.storage.connect_db().await;
    let rec_a = reporter_of(&mut conn, &pseudonyms[0]).await;
    let rec_b = reporter_of(&mut conn, &pseudonyms[1]).await;
    let env_a = envelope(&mut conn, &rec_a).await;
    let env_b = envelope(&mut conn, &rec_b).await;
    assert!(env_a.starts_with(b"RVE\x01"), "envelope format v1");
    assert_absent(&env_a, &a.values(), "the stored envelope");
    let wrap_len = usize::from(u16::from_be_bytes([env_a[8], env_a[9]]));
    let data_start = 10 + wrap_len + 12;
    assert!(
        env_a.len() > data_start + 16,
        "envelope too short: {}",
        env_a.len()
    );

    let mut variants: Vec<(&str, Vec<u8>)> = vec![
        ("a flipped bit in the tag", flipped(&env_a, env_a.len() - 1)),
        (
            "a flipped bit in the ciphertext",
            flipped(&env_a, data_start + 3),
        ),
        (
            "a flipped bit in the data nonce",
            flipped(&env_a, 10 + wrap_len + 2),
        ),
        (
            "a flipped bit in the wrapped key",
            flipped(&env_a, 10 + wrap_len / 2),
        ),
        (
            "a flipped bit in the wrapped-key nonce",
            flipped(&env_a, 11),
        ),
        ("the magic changed", flipped(&env_a, 0)),
        ("the format version changed", flipped(&env_a, 3)),
        ("a truncated envelope", env_a[..env_a.len() - 20].to_vec()),
        ("an envelope cut to its header", env_a[..10].to_vec()),
        ("an empty envelope", Vec::new()),
        ("a wrapped-key length past the end", {
            let mut e = env_a.clone();
            e[8] = 0xff;
            e[9] = 0xff;
            e
        }),
    ];
    for version in [0u32, 2, 0xffff_ffff] {
        let mut e = env_a.clone();
        e[4..8].copy_from_slice(&version.to_be_bytes());
        variants.push(("the KEK version relabelled", e));
    }
    variants.push(("reporter B's envelope on A's row", env_b.clone()));

    for (what, bytes) in &variants {
        set_envelope(&mut conn, &rec_a, bytes).await;
        let r = app.open(&c.cs.token, &da).await;
        assert_integrity_failure(&r, &format!("open after {what}"), &values);
        // The relay, which also opens the envelope, fails closed too.
        let r = app
            .message(&c.cs.token, &pseudonyms[0], "progress", "进展")
            .await;
        assert_integrity_failure(&r, &format!("relay after {what}"), &values);
        set_envelope(&mut conn, &rec_a, &env_a).await;
    }

    // Swapped between the two rows: neither opens, and A's request never yields B's data.
    set_envelope(&mut conn, &rec_a, &env_b).await;
    set_envelope(&mut conn, &rec_b, &env_a).await;
    assert_integrity_failure(
        &app.open(&c.cs.token, &da).await,
        "open A after a swap",
        &values,
    );
    assert_integrity_failure(
        &app.open(&c.cs.token, &db).await,
        "open B after a swap",
        &values,
    );
    // Re-sealing the same person over a swapped envelope must not merge in the other's data.
    let r = app
        .seal(
            &c.cs.token,
            crate::harness::seal_body("140100", "SX-TAMPER-9", a.identity()),
        )
        .await;
    assert_integrity_failure(&r, "re-seal over a swapped envelope", &values);
    set_envelope(&mut conn, &rec_a, &env_a).await;
    set_envelope(&mut conn, &rec_b, &env_b).await;

    // The record moved to another jurisdiction: the envelope is bound to the one it was
    // sealed for.
    set_jurisdiction(&mut conn, &rec_a, "140200").await;
    assert_integrity_failure(
        &app.open(&c.cs.token, &da).await,
        "open after re-labelling the jurisdiction",
        &values,
    );
    set_jurisdiction(&mut conn, &rec_a, "140100").await;
    let _ = conn.close().await;

    // None of the failed opens consumed the disclosures; restored, they open with the right
    // data.
    for (d, who) in [(&da, &a), (&db, &b), (&ids[0][1], &a), (&ids[1][1], &b)] {
        let v = app.get_disclosure(&c.cs.token, d).await.expect(200, "get");
        assert_eq!(
            v["status"], "approved",
            "a failed open changed the disclosure"
        );
        let r = open_ok(&app, &c.cs.token, d).await;
        let f = r.json()["fields"].clone();
        assert_eq!(f["name"], who.name.as_str());
        assert_eq!(f["id_number"], who.id_number.as_str());
        assert_eq!(f["phone"], who.phone.as_str());
    }
    // And the repeated reporter is recognised once the envelope is intact.
    let v = app
        .seal_ok(&c.cs.token, "140100", "SX-TAMPER-10", Some(&a))
        .await;
    assert_eq!(v["reporter_seen_before"], true);
}

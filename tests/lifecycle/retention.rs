//! Retention: with RV_RETENTION_YEARS=1 the leader erases every reporter whose cases all
//! closed more than a year ago and whom no open reward still needs; the job runs once at start
//! and then once a minute. Closure dates are driven through the API: a report received two
//! years ago, closed eighteen months ago.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Engine, Person, Server, Store, date_days_ago, received_days_ago, seal_body};

both_engines!(retention_erases_reporters_whose_cases_all_closed_long_ago);

const TWO_YEARS: i64 = 730;
const EIGHTEEN_MONTHS: i64 = 548;

async fn close(server: &Server, p: &str, on: &str) -> crate::harness::Resp {
    server
        .post(
            &format!("/v1/pseudonyms/{p}/close"),
            &server.tokens.case,
            json!({"closed_on": on}),
        )
        .await
}

async fn close_ok(server: &Server, p: &str, days_ago: i64) {
    let on = date_days_ago(days_ago);
    let v = close(server, p, &on).await.expect(200, "close a case");
    assert_eq!(v, json!({"pseudonym": p, "case_closed_on": on}));
}

async fn seal_old(server: &Server, person: &Person, jurisdiction: &str, case_ref: &str) -> String {
    let v = server
        .post(
            "/v1/reporters",
            &server.tokens.case,
            seal_body(
                jurisdiction,
                case_ref,
                &received_days_ago(TWO_YEARS),
                person,
            ),
        )
        .await
        .expect(201, "seal an old report");
    v["pseudonym"].as_str().unwrap().to_owned()
}

async fn retention_erases_reporters_whose_cases_all_closed_long_ago(engine: Engine) {
    let store = Store::new(engine).await;
    // Without retention while the data set is made.
    let server = Server::start(&store, &[]).await;
    let t = server.tokens.clone();

    // X: one case, received two years ago, closed eighteen months ago → erased.
    let x = Person::nth(400);
    let px = seal_old(&server, &x, "140100", "SX-RT-1").await;
    // Y: two cases, one closed long ago, one still open → kept.
    let y = Person::nth(401);
    let py1 = seal_old(&server, &y, "140100", "SX-RT-2").await;
    let py2 = seal_old(&server, &y, "140100", "SX-RT-3").await;
    // Z: closed six months ago → kept.
    let z = Person::nth(402);
    let pz = seal_old(&server, &z, "140100", "SX-RT-4").await;
    // W: closed long ago but a reward awaits approval → kept.
    let w = Person::nth(403);
    let pw = seal_old(&server, &w, "370100", "SD-RT-5").await;
    let v = server
        .post(
            "/v1/rewards",
            &t.case,
            json!({
                "case_ref": "SD-RT-5", "jurisdiction": "370100",
                "verified_on": date_days_ago(600),
                "industry": "hazardous_chemicals",
                "outcome": {"kind": "major_hazard", "penalty": "20000"},
                "reports": [{"pseudonym": pw}],
            }),
        )
        .await
        .expect(201, "file a reward");
    assert_eq!(v["status"], "pending_approval", "{v}");
    let reward = v["id"].as_str().unwrap().to_owned();
    // V: received today, never closed → kept.
    let pv = server.seal(&Person::nth(404), "SX-RT-6").await;

    // Validation of closed_on.
    for (bad, what) in [
        (date_days_ago(-1), "tomorrow"),
        (
            date_days_ago(TWO_YEARS + 30),
            "before the report was received",
        ),
        ("2025-13-01".to_owned(), "not a date"),
        ("01/02/2025".to_owned(), "not ISO"),
    ] {
        let e = close(&server, &px, &bad).await.expect_err(
            422,
            "invalid_field",
            &format!("closed_on {what}"),
        );
        assert_eq!(e["field"], "closed_on", "{what}: {e}");
    }
    server
        .post(
            &format!("/v1/pseudonyms/{px}/close"),
            &t.custodian,
            json!({"closed_on": date_days_ago(EIGHTEEN_MONTHS)}),
        )
        .await
        .expect_err(403, "forbidden", "a custodian closes a case");

    close_ok(&server, &px, EIGHTEEN_MONTHS).await;
    close_ok(&server, &py1, EIGHTEEN_MONTHS).await;
    close_ok(&server, &pz, 180).await;
    close_ok(&server, &pw, EIGHTEEN_MONTHS).await;
    let events = server.events().await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "case_closed")
            .count(),
        4
    );
    server.stop().await;

    // With retention: the job runs at start.
    let server = Server::start(&store, &[("RV_RETENTION_YEARS", "1")]).await;
    let started = Instant::now();
    wait_for!(
        Duration::from_secs(75),
        "retention erases X",
        (server.pseudonym_status(&px).await == "erased").then_some(())
    );
    eprintln!(
        "[{engine:?}] retention erased X {:?} after the start",
        started.elapsed()
    );
    // Give a wrongly eager job the chance to erase more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (p, who) in [
        (&py1, "Y (closed)"),
        (&py2, "Y (open)"),
        (&pz, "Z"),
        (&pw, "W"),
        (&pv, "V"),
    ] {
        assert_eq!(server.pseudonym_status(p).await, "active", "{who} is kept");
    }
    let rx = store.record_of(&px).await;
    let row = store.reporter_row(&rx).await;
    assert!(row.envelope.is_none() && row.blind_index.is_none() && row.erased_at.is_some());
    for p in [&py1, &pz, &pw, &pv] {
        let r = store.record_of(p).await;
        assert!(
            store.reporter_row(&r).await.envelope.is_some(),
            "{p} keeps its envelope"
        );
    }

    // The erasure says why and who.
    let lines: Vec<Value> = std::fs::read_to_string(store.ledger_path())
        .expect("the ledger")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["record_id"], rx.as_str());
    let era = lines[0]["erasure_id"].as_str().unwrap().to_owned();
    let v = server
        .get(&format!("/v1/erasures/{era}"), &t.custodian)
        .await
        .expect(200, "read the retention erasure");
    assert_eq!(v["reason"], "retention", "{v}");
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["requested_by"], "system:retention", "{v}");
    assert_eq!(v["pseudonym"], px.as_str(), "{v}");
    let events = server.events().await;
    let erased: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "reporter_erased")
        .collect();
    assert_eq!(erased.len(), 1, "{erased:?}");
    assert_eq!(erased[0]["record"], rx.as_str());
    assert_eq!(erased[0]["target"], era.as_str());
    assert_eq!(erased[0]["detail"]["reason"], "retention");
    let r = server
        .call(
            Method::GET,
            &format!("/v1/rewards/{reward}"),
            Some(&t.finance),
            None,
        )
        .await;
    assert_eq!(r.expect(200, "the reward")["status"], "pending_approval");

    // The job runs again a minute later: closing Y's last case makes Y due.
    if engine == Engine::Sqlite {
        close_ok(&server, &py2, EIGHTEEN_MONTHS).await;
        let closed = Instant::now();
        wait_for!(
            Duration::from_secs(75),
            "retention erases Y at its next run",
            (server.pseudonym_status(&py2).await == "erased").then_some(())
        );
        let took = closed.elapsed();
        eprintln!("[{engine:?}] retention erased Y {took:?} after its last case closed");
        assert!(
            started.elapsed() >= Duration::from_secs(55),
            "the second run came {:?} after the start, not about a minute",
            started.elapsed()
        );
        assert_eq!(server.pseudonym_status(&py1).await, "erased");
        assert_eq!(server.pseudonym_status(&pz).await, "active");
        assert_eq!(server.pseudonym_status(&pw).await, "active");
    }

    server.stop().await;
    store.audit_verify(&[]).await;
}

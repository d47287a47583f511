//! Leak tracing: every disclosure of a value, found from the value written any way it is
//! normalised, and nothing else; the trace is itself an event without the value; rate limited
//! per auditor.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Engine, Options, Storage, TestApp, action, resident_id};

const PHONE_A: &str = "13800138000";
const PHONE_B: &str = "13900139000";
const ID_A: &str = "11010519491231002X";

async fn trace(app: &TestApp, who: &str, field: &str, value: &str) -> Vec<Value> {
    let r = app
        .post(
            "/v1/audit/leak-trace",
            who,
            json!({"field": field, "value": value}),
        )
        .await;
    let v = r.expect(200, &format!("leak trace of {field} {value:?}"));
    v["matches"].as_array().expect("matches").clone()
}

fn ids(matches: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = matches
        .iter()
        .map(|m| m["disclosure_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

async fn leak_trace_finds_exactly_the_disclosures(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let a = app
        .seal(json!({"name": "张三", "id_number": ID_A, "phone": PHONE_A}))
        .await;
    let b = app.seal(json!({"name": "李四", "phone": PHONE_B})).await;
    // Two disclosures of A's phone, by different principals for different purposes, and one
    // of B's phone.
    let (d1, body1) = app
        .disclose("case_system", &a, "verification_contact", &["phone"])
        .await;
    let (d2, body2) = app
        .disclose("finance", &a, "reward_payment", &["phone", "id_number"])
        .await;
    let (d3, body3) = app
        .disclose("case_system", &b, "verification_contact", &["phone"])
        .await;
    assert_eq!(body1["fields"]["phone"], PHONE_A);
    assert_eq!(body2["fields"]["phone"], PHONE_A);
    assert_eq!(body2["fields"]["id_number"], ID_A);
    assert_eq!(body3["fields"]["phone"], PHONE_B);
    // A disclosure approved but never opened discloses nothing.
    app.approved_disclosure("case_system", &b, "verification_contact", &["name"])
        .await;

    let (events, _) = app.events().await;
    let opened_index = |d: &str| {
        events
            .iter()
            .find(|e| action(&e.2) == "disclosure_opened" && e.2["disclosure_id"] == d)
            .map(|e| e.0)
            .unwrap_or_else(|| panic!("no disclosure_opened event for {d}"))
    };

    let mut want = vec![d1.clone(), d2.clone()];
    want.sort();
    let mut traced: Vec<(&str, &str)> = Vec::new();
    for written in [
        "+86 138 0013 8000",
        "138-0013-8000",
        PHONE_A,
        "0086 13800138000",
    ] {
        let m = trace(&app, "auditor", "phone", written).await;
        traced.push(("phone", written));
        assert_eq!(
            ids(&m),
            want,
            "phone written {written:?}: exactly D1 and D2: {m:?}"
        );
        for x in &m {
            let d = x["disclosure_id"].as_str().expect("disclosure id");
            let (who, name, purpose) = if d == d1 {
                ("case_system", "demo case system", "verification_contact")
            } else {
                ("finance", "demo finance 1", "reward_payment")
            };
            assert_eq!(x["principal_id"], app.id(who).as_str(), "{x}");
            assert_eq!(x["principal_name"], name, "{x}");
            assert_eq!(x["purpose"], purpose, "{x}");
            assert_eq!(x["action"], "disclosure_opened", "{x}");
            assert_eq!(x["index"], opened_index(d), "{x}");
            assert!(x["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{x}");
        }
    }
    // ID number with a lowercase x: only D2 disclosed it.
    let lower = ID_A.to_lowercase();
    let m = trace(&app, "auditor", "id_number", &lower).await;
    traced.push(("id_number", &lower));
    assert_eq!(ids(&m), vec![d2.clone()], "lowercase x: {m:?}");
    let spaced = "110105 19491231 002x";
    let m = trace(&app, "auditor", "id_number", spaced).await;
    traced.push(("id_number", spaced));
    assert_eq!(ids(&m), vec![d2.clone()], "grouped ID number: {m:?}");
    // B's phone: only D3.
    let b_written = "+86 139-0013-9000";
    let m = trace(&app, "auditor", "phone", b_written).await;
    traced.push(("phone", b_written));
    assert_eq!(ids(&m), vec![d3.clone()], "B's phone: {m:?}");
    // Never disclosed: a phone nobody has, and A's name (sealed but never disclosed), and
    // B's name (in a disclosure approved but never opened).
    let other_id = resident_id("11010519800101001");
    for (field, value) in [
        ("phone", "13700137000"),
        ("name", "张三"),
        ("name", "李四"),
        ("id_number", other_id.as_str()),
    ] {
        let m = trace(&app, "auditor", field, value).await;
        traced.push((field, value));
        assert!(m.is_empty(), "{field} {value:?} was never disclosed: {m:?}");
    }
    // A value that does not parse as the field is a 422, not an empty answer.
    let r = app
        .post(
            "/v1/audit/leak-trace",
            "auditor",
            json!({"field": "phone", "value": "not a phone"}),
        )
        .await;
    r.expect(422, "unparseable phone");
    // Only auditors trace.
    let r = app
        .post(
            "/v1/audit/leak-trace",
            "case_system",
            json!({"field": "phone", "value": PHONE_A}),
        )
        .await;
    r.expect(403, "a case system tracing");

    // Every trace is an event: by the auditor, naming the field, never the value.
    let (events, _) = app.events().await;
    let traces: Vec<&(u64, Vec<u8>, Value)> = events
        .iter()
        .filter(|e| action(&e.2) == "leak_trace")
        .collect();
    assert_eq!(traces.len(), traced.len(), "one leak_trace event per trace");
    let disclosed_macs: Vec<String> = events
        .iter()
        .filter(|e| action(&e.2) == "disclosure_opened")
        .flat_map(|e| e.2["disclosed"].as_array().cloned().unwrap_or_default())
        .map(|m| m["mac"].as_str().expect("mac").to_owned())
        .collect();
    assert_eq!(disclosed_macs.len(), 4, "phone, phone + id_number, phone");
    for ((_, leaf, ev), (field, value)) in traces.iter().zip(&traced) {
        let text = String::from_utf8_lossy(leaf);
        for mac in &disclosed_macs {
            assert!(
                !text.contains(mac.as_str()),
                "a trace leaf holds a MAC: {text}"
            );
        }
        assert_eq!(ev["actor_id"], app.id("auditor").as_str());
        assert_eq!(ev["detail"]["field"], *field);
        assert!(
            ev.get("disclosed").is_none(),
            "a trace discloses nothing: {ev}"
        );
        let text = String::from_utf8_lossy(leaf);
        for form in [
            *value,
            PHONE_A,
            PHONE_B,
            ID_A,
            &ID_A.to_lowercase(),
            "张三",
            "李四",
        ] {
            assert!(
                !text.contains(form),
                "leak_trace leaf holds {form:?}: {text}"
            );
        }
    }
    app.stop().await;
}

async fn leak_trace_rate_limited(engine: Engine) {
    let storage = Storage::new(engine).await;
    let app = TestApp::start(
        &storage,
        Options {
            leak_traces_per_minute: 3,
        },
    )
    .await;
    for _ in 0..3 {
        trace(&app, "auditor", "phone", PHONE_A).await;
    }
    let r = app
        .post(
            "/v1/audit/leak-trace",
            "auditor",
            json!({"field": "phone", "value": PHONE_A}),
        )
        .await;
    r.expect(429, "the fourth trace in a minute");
    assert_eq!(r.code().as_deref(), Some("rate_limited"), "{}", r.text());
    // The limit is per auditor: another auditor may still trace.
    let created = app
        .call(
            Method::POST,
            "/v1/principals",
            Some(&app.admin),
            Some(json!({"name": "second auditor", "role": "auditor", "jurisdiction": "000000"})),
        )
        .await
        .expect(201, "create a second auditor");
    let token = created["token"].as_str().expect("token").to_owned();
    let r = app
        .call(
            Method::POST,
            "/v1/audit/leak-trace",
            Some(&token),
            Some(json!({"field": "phone", "value": PHONE_A})),
        )
        .await;
    r.expect(200, "another auditor");
    // The refused trace is on the record as a denial; the others as leak_trace events.
    let (events, _) = app.events().await;
    let auditor = app.id("auditor");
    assert_eq!(
        events
            .iter()
            .filter(|e| action(&e.2) == "leak_trace" && e.2["actor_id"] == auditor.as_str())
            .count(),
        3
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| action(&e.2) == "leak_trace")
            .count(),
        4
    );
    let denied = events
        .iter()
        .find(|e| action(&e.2) == "access_denied" && e.2["actor_id"] == auditor.as_str())
        .expect("the refused trace is recorded");
    assert_eq!(denied.2["reason"], "rate_limited", "{}", denied.2);
    app.stop().await;
}

both_engines!(
    leak_trace_finds_exactly_the_disclosures,
    leak_trace_rate_limited
);

//! Every class of bad input gets its 4xx in the error shape, names the field at fault, never
//! echoes what was sent, and writes nothing: not a record, not an event, not a blind index.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Body, Engine, Person, TestApp, assert_absent, luhn_complete, resident_id, seal_body, spawn_app,
};

both_engines!(
    every_bad_seal_is_refused_naming_the_field_and_writes_nothing,
    bad_disclosure_and_message_requests_write_nothing,
    oversized_unknown_and_unauthenticated_requests_keep_the_error_shape,
);

struct Case {
    what: &'static str,
    body: Body,
    status: u16,
    code: &'static str,
    /// `Some(Some(f))`: field must be `f`; `Some(None)`: no field; `None`: not checked
    /// beyond "not the submitted value".
    field: Option<Option<&'static str>>,
    /// Values that must not come back.
    secrets: Vec<String>,
}

fn with(base: &Value, path: &[&str], v: Value) -> Value {
    let mut out = base.clone();
    let mut cur = &mut out;
    for (i, k) in path.iter().enumerate() {
        if i + 1 == path.len() {
            cur[*k] = v.clone();
        } else {
            cur = &mut cur[*k];
        }
    }
    out
}

fn without(base: &Value, path: &[&str]) -> Value {
    let mut out = base.clone();
    let mut cur = &mut out;
    for (i, k) in path.iter().enumerate() {
        if i + 1 == path.len() {
            cur.as_object_mut().expect("object").remove(*k);
        } else {
            cur = &mut cur[*k];
        }
    }
    out
}

fn case(
    what: &'static str,
    body: Value,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
    secrets: &[&str],
) -> Case {
    Case {
        what,
        body: Body::Json(body),
        status,
        code,
        field: Some(field),
        secrets: secrets.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Sends one bad request and returns what is wrong with the answer (empty: all good). The
/// whole table runs before anything fails, so one report shows every deviation.
async fn check_case(
    app: &TestApp,
    token: &str,
    path: &str,
    c: Case,
    always_secret: &[String],
) -> Vec<String> {
    let r = app.call(Method::POST, path, Some(token), c.body).await;
    let mut problems = Vec::new();
    let what = c.what;
    let body = r.text();
    if r.status != c.status {
        problems.push(format!(
            "{what}: status {} instead of {}: {body}",
            r.status, c.status
        ));
    }
    if r.status >= 400 && r.code() != c.code {
        problems.push(format!(
            "{what}: code {} instead of {}: {body}",
            r.code(),
            c.code
        ));
    }
    let field = if r.status >= 400 { r.field() } else { None };
    match c.field {
        Some(Some(f)) if field.as_deref() != Some(f) => {
            problems.push(format!(
                "{what}: error.field {field:?} instead of {f:?}: {body}"
            ));
        }
        Some(None) if field.is_some() => {
            problems.push(format!(
                "{what}: error.field {field:?} where none is at fault: {body}"
            ));
        }
        _ => {}
    }
    if field.as_deref() == Some("") {
        problems.push(format!("{what}: error.field is an empty string: {body}"));
    }
    for v in c.secrets.iter().chain(always_secret) {
        if crate::harness::contains(&r.body, v.as_bytes()) {
            problems.push(format!("{what}: the answer echoes {v:?}: {body}"));
        }
    }
    problems
}

async fn every_bad_seal_is_refused_naming_the_field_and_writes_nothing(engine: Engine) {
    let app = spawn_app(engine).await;
    let cs = app.create_principal("case_system", "140100", None).await;
    let auditor = app.create_principal("auditor", "000000", None).await;
    let person = Person::nth(10);
    let base = seal_body("140100", "SX-BAD-0001", person.identity());

    let id = person.id_number.clone();
    let wrong_check = {
        let last = id.chars().last().expect("last");
        let replacement = if last == '0' { '1' } else { '0' };
        format!("{}{replacement}", &id[..17])
    };
    let bad_date = resident_id("140105", "19490230", "123");
    let bad_province = resident_id("990105", "19800101", "123");
    let short_id = id[..17].to_owned();
    let bad_luhn = {
        let b = &person.bank_account;
        let last = b
            .chars()
            .last()
            .and_then(|c| c.to_digit(10))
            .expect("digit");
        format!("{}{}", &b[..b.len() - 1], (last + 1) % 10)
    };
    assert_ne!(
        luhn_complete(&person.bank_account[..person.bank_account.len() - 1]),
        bad_luhn
    );
    let long_name = "欧".repeat(65);
    let phone_digits = person.phone.clone();

    let cases = vec![
        case(
            "bad ID checksum",
            with(&base, &["identity", "id_number"], json!(wrong_check)),
            422,
            "invalid_field",
            Some("identity.id_number"),
            &[&wrong_check],
        ),
        case(
            "invalid birth date",
            with(&base, &["identity", "id_number"], json!(bad_date)),
            422,
            "invalid_field",
            Some("identity.id_number"),
            &[&bad_date],
        ),
        case(
            "unknown province",
            with(&base, &["identity", "id_number"], json!(bad_province)),
            422,
            "invalid_field",
            Some("identity.id_number"),
            &[&bad_province],
        ),
        case(
            "short ID",
            with(&base, &["identity", "id_number"], json!(short_id)),
            422,
            "invalid_field",
            Some("identity.id_number"),
            &[&short_id],
        ),
        case(
            "bad phone (12x)",
            with(&base, &["identity", "phone"], json!("12800138000")),
            422,
            "invalid_field",
            Some("identity.phone"),
            &["12800138000"],
        ),
        case(
            "bad phone (10 digits)",
            with(&base, &["identity", "phone"], json!("1380013800")),
            422,
            "invalid_field",
            Some("identity.phone"),
            &["1380013800"],
        ),
        case(
            "foreign phone",
            with(&base, &["identity", "phone"], json!("+1 415 555 0100")),
            422,
            "invalid_field",
            Some("identity.phone"),
            &["415 555 0100"],
        ),
        case(
            "Luhn-failing bank account",
            with(&base, &["identity", "bank_account"], json!(bad_luhn)),
            422,
            "invalid_field",
            Some("identity.bank_account"),
            &[&bad_luhn],
        ),
        case(
            "65-character name",
            with(&base, &["identity", "name"], json!(long_name)),
            422,
            "invalid_field",
            Some("identity.name"),
            &[&long_name],
        ),
        case(
            "empty name",
            with(&base, &["identity", "name"], json!("  ")),
            422,
            "invalid_field",
            Some("identity.name"),
            &[],
        ),
        case(
            "name with a control character",
            with(&base, &["identity", "name"], json!("张\u{0007}三")),
            422,
            "invalid_field",
            Some("identity.name"),
            &["张\u{0007}三"],
        ),
        case(
            "bad email",
            with(&base, &["identity", "email"], json!("zhang san@example")),
            422,
            "invalid_field",
            Some("identity.email"),
            &["zhang san@example"],
        ),
        case(
            "identity without a name",
            without(&base, &["identity", "name"]),
            422,
            "invalid_field",
            Some("identity.name"),
            &[],
        ),
        case(
            "bad jurisdiction (unknown province)",
            with(&base, &["jurisdiction"], json!("990100")),
            422,
            "invalid_field",
            Some("jurisdiction"),
            &[],
        ),
        case(
            "bad jurisdiction (5 digits)",
            with(&base, &["jurisdiction"], json!("14010")),
            422,
            "invalid_field",
            Some("jurisdiction"),
            &[],
        ),
        case(
            "bad channel",
            with(&base, &["channel"], json!("carrier_pigeon")),
            422,
            "invalid_field",
            Some("channel"),
            &["carrier_pigeon"],
        ),
        case(
            "received_at without offset",
            with(&base, &["received_at"], json!("2026-11-20T08:00:00")),
            422,
            "invalid_field",
            Some("received_at"),
            &[],
        ),
        case(
            "received_at not a time",
            with(&base, &["received_at"], json!("yesterday")),
            422,
            "invalid_field",
            Some("received_at"),
            &["yesterday"],
        ),
        case(
            "received_at in the future",
            with(&base, &["received_at"], json!("2026-11-22T08:00:00+08:00")),
            422,
            "invalid_field",
            Some("received_at"),
            &[],
        ),
        case(
            "empty case_ref",
            with(&base, &["case_ref"], json!("   ")),
            422,
            "invalid_field",
            Some("case_ref"),
            &[],
        ),
        case(
            "missing channel",
            without(&base, &["channel"]),
            422,
            "missing_field",
            Some("channel"),
            &[],
        ),
        case(
            "unknown top-level field",
            with(&base, &["reporter_phone"], json!(phone_digits)),
            400,
            "unknown_field",
            Some("reporter_phone"),
            &[],
        ),
        case(
            "unknown identity field",
            with(&base, &["identity", "nickname"], json!("小张")),
            400,
            "unknown_field",
            Some("identity.nickname"),
            &["小张"],
        ),
        Case {
            what: "unknown identity field whose name is a name",
            body: Body::Json(with(&base, &["identity", "欧阳修"], json!("x"))),
            status: 400,
            code: "unknown_field",
            field: None,
            secrets: vec!["欧阳修".into()],
        },
        Case {
            what: "unknown identity field whose name is a phone number",
            body: Body::Json(with(&base, &["identity", "13912345678"], json!("x"))),
            status: 400,
            code: "unknown_field",
            field: None,
            secrets: vec!["13912345678".into()],
        },
        case(
            "wrong type (string for bool)",
            with(&base, &["employee_of_reported_unit"], json!("yes")),
            422,
            "invalid_field",
            Some("employee_of_reported_unit"),
            &[],
        ),
        case(
            "wrong type (number for phone)",
            with(&base, &["identity", "phone"], json!(13_912_345_679_u64)),
            422,
            "invalid_field",
            Some("identity.phone"),
            &["13912345679"],
        ),
        case(
            "wrong type (string for identity)",
            with(&base, &["identity"], json!("王五 13912345670")),
            422,
            "invalid_field",
            Some("identity"),
            &["王五", "13912345670"],
        ),
        Case {
            what: "a JSON array",
            body: Body::Json(json!([base.clone()])),
            status: 422,
            code: "invalid_field",
            field: None,
            secrets: vec![],
        },
        Case {
            what: "malformed JSON",
            body: Body::Raw(
                "application/json",
                format!(
                    r#"{{"jurisdiction":"140100","identity":{{"name":"{}","phone":"{}""#,
                    person.name, person.phone
                )
                .into_bytes(),
            ),
            status: 400,
            code: "malformed_json",
            field: Some(None),
            secrets: vec![],
        },
        Case {
            what: "trailing garbage after the JSON",
            body: Body::Raw("application/json", {
                let mut b = serde_json::to_vec(&base).expect("json");
                b.extend_from_slice(format!(" {}", person.phone).as_bytes());
                b
            }),
            status: 400,
            code: "malformed_json",
            field: Some(None),
            secrets: vec![],
        },
        Case {
            what: "not JSON at all",
            body: Body::Raw(
                "application/json",
                format!("name={}&phone={}", person.name, person.phone).into_bytes(),
            ),
            status: 400,
            code: "malformed_json",
            field: Some(None),
            secrets: vec![],
        },
        Case {
            what: "invalid UTF-8",
            body: Body::Raw(
                "application/json",
                b"{\"jurisdiction\":\"\xff\xfe\"}".to_vec(),
            ),
            status: 400,
            code: "malformed_json",
            field: None,
            secrets: vec![],
        },
        Case {
            what: "not declared as JSON",
            body: Body::Raw("text/plain", serde_json::to_vec(&base).expect("json")),
            status: 415,
            code: "unsupported_media_type",
            field: Some(None),
            secrets: vec![],
        },
    ];

    let trail_before = app.tree_size(&auditor.token).await;
    let reporters_before = app.storage.count_rows("reporters").await;
    let pseudonyms_before = app.storage.count_rows("pseudonyms").await;
    let all = person.values();
    let mut problems = Vec::new();
    for c in cases {
        let what = c.what;
        problems.extend(check_case(&app, &cs.token, "/v1/reporters", c, &all).await);
        assert_eq!(
            app.tree_size(&auditor.token).await,
            trail_before,
            "{what}: the access trail grew"
        );
    }
    assert_eq!(
        app.storage.count_rows("reporters").await,
        reporters_before,
        "a reporter row was written"
    );
    assert_eq!(
        app.storage.count_rows("pseudonyms").await,
        pseudonyms_before,
        "a pseudonym row was written"
    );

    // Nothing was remembered of the refused submissions: the same person is new.
    let v = app
        .seal_ok(&cs.token, "140100", "SX-BAD-0002", Some(&person))
        .await;
    assert_eq!(
        v["reporter_seen_before"], false,
        "a refused seal left a trace: {v}"
    );
    assert_eq!(v["prior_case_refs"], json!([]));
    assert_eq!(app.tree_size(&auditor.token).await, trail_before + 1);

    // The same seal as a positional array: the contract is JSON objects with named fields
    // (serde would otherwise fill a struct from a sequence, bypassing field names entirely).
    // Last, because a wrongly accepted one writes a record.
    let positional = json!([
        "140100",
        "SX-BAD-0003",
        crate::harness::RECEIVED_AT,
        "web",
        false,
        Value::Null
    ]);
    let r = app.seal(&cs.token, positional).await;
    if r.status != 400 && r.status != 422 {
        problems.push(format!(
            "a seal sent as a positional JSON array: expected 400/422, got {} {}",
            r.status,
            r.text()
        ));
    }
    assert!(
        problems.is_empty(),
        "bad seals answered wrongly:\n  {}",
        problems.join("\n  ")
    );
}

async fn bad_disclosure_and_message_requests_write_nothing(engine: Engine) {
    let app = spawn_app(engine).await;
    let cs = app.create_principal("case_system", "140100", None).await;
    let auditor = app.create_principal("auditor", "000000", None).await;
    let person = Person::nth(11);
    let p = app
        .seal_ok(&cs.token, "140100", "SX-BAD-0100", Some(&person))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let ok = json!({"pseudonym": p, "purpose": "verification_contact",
                    "justification": "需要核实举报内容的真实性", "fields": ["name"]});
    let cases = vec![
        case(
            "justification too short",
            with(&ok, &["justification"], json!("太短")),
            422,
            "invalid_field",
            Some("justification"),
            &[],
        ),
        case(
            "justification too long",
            with(&ok, &["justification"], json!("长".repeat(2001))),
            422,
            "invalid_field",
            Some("justification"),
            &[],
        ),
        case(
            "no fields",
            with(&ok, &["fields"], json!([])),
            422,
            "invalid_field",
            Some("fields"),
            &[],
        ),
        case(
            "a field twice",
            with(&ok, &["fields"], json!(["name", "name"])),
            422,
            "invalid_field",
            Some("fields"),
            &[],
        ),
        case(
            "unknown identity field",
            with(&ok, &["fields"], json!(["name", "shoe_size"])),
            422,
            "invalid_field",
            Some("fields[1]"),
            &["shoe_size"],
        ),
        case(
            "unknown purpose",
            with(&ok, &["purpose"], json!("curiosity")),
            422,
            "invalid_field",
            Some("purpose"),
            &["curiosity"],
        ),
        case(
            "unknown field",
            with(&ok, &["reason"], json!("x")),
            400,
            "unknown_field",
            Some("reason"),
            &[],
        ),
        case(
            "missing pseudonym",
            without(&ok, &["pseudonym"]),
            422,
            "missing_field",
            Some("pseudonym"),
            &[],
        ),
    ];
    let before = app.tree_size(&auditor.token).await;
    let all = person.values();
    let mut problems = Vec::new();
    for c in cases {
        let what = c.what;
        problems.extend(check_case(&app, &cs.token, "/v1/disclosures", c, &all).await);
        assert_eq!(
            app.tree_size(&auditor.token).await,
            before,
            "{what}: the trail grew"
        );
    }
    assert_eq!(app.storage.count_rows("disclosures").await, 0);

    // Unknown pseudonym: 404, and the body does not echo what was asked for.
    let r = app
        .post(
            "/v1/disclosures",
            &cs.token,
            with(&ok, &["pseudonym"], json!(person.id_number)),
        )
        .await;
    r.expect_err(404, "not_found", "disclosure of an unknown pseudonym");
    assert_absent(&r.body, &all, "404 for an unknown pseudonym");

    let path = format!("/v1/pseudonyms/{p}/messages");
    let msg = json!({"kind": "progress", "body": "案件正在办理中"});
    let cases = vec![
        case(
            "unknown kind",
            with(&msg, &["kind"], json!("gossip")),
            422,
            "invalid_field",
            Some("kind"),
            &["gossip"],
        ),
        case(
            "empty body",
            with(&msg, &["body"], json!("")),
            422,
            "invalid_field",
            Some("body"),
            &[],
        ),
        case(
            "body too long",
            with(&msg, &["body"], json!("字".repeat(2001))),
            422,
            "invalid_field",
            Some("body"),
            &[],
        ),
        case(
            "unknown field",
            with(&msg, &["to"], json!(person.phone)),
            400,
            "unknown_field",
            Some("to"),
            &[],
        ),
    ];
    let before = app.tree_size(&auditor.token).await;
    for c in cases {
        let what = c.what;
        problems.extend(check_case(&app, &cs.token, &path, c, &all).await);
        assert_eq!(
            app.tree_size(&auditor.token).await,
            before,
            "{what}: the trail grew"
        );
    }
    assert_eq!(app.storage.count_rows("outbox").await, 0);

    let r = app
        .handoff(
            &cs.token,
            &p,
            json!({"to_jurisdiction": "140100", "phone": person.phone}),
        )
        .await;
    r.expect_err(400, "unknown_field", "hand-off with an unknown field");
    assert_absent(&r.body, &all, "hand-off refusal");
    assert_eq!(app.tree_size(&auditor.token).await, before);
    assert!(
        problems.is_empty(),
        "bad requests answered wrongly:\n  {}",
        problems.join("\n  ")
    );
}

async fn oversized_unknown_and_unauthenticated_requests_keep_the_error_shape(engine: Engine) {
    let app = spawn_app(engine).await;
    let cs = app.create_principal("case_system", "140100", None).await;
    let auditor = app.create_principal("auditor", "000000", None).await;
    let person = Person::nth(12);
    let before = app.tree_size(&auditor.token).await;

    // Over 64 KiB.
    let mut identity = person.identity();
    identity["address"] = json!("太原市".repeat(22_000));
    let big = seal_body("140100", "SX-BIG-0001", identity);
    let bytes = serde_json::to_vec(&big).expect("json");
    assert!(bytes.len() > 64 * 1024);
    let r = app
        .call(
            Method::POST,
            "/v1/reporters",
            Some(&cs.token),
            Body::Raw("application/json", bytes),
        )
        .await;
    r.expect_err(413, "payload_too_large", "64 KiB limit");
    assert_absent(&r.body, &person.values(), "413");
    assert_eq!(app.tree_size(&auditor.token).await, before);
    assert_eq!(app.storage.count_rows("reporters").await, 0);

    // Unknown routes and methods.
    for (m, path, token) in [
        (Method::GET, "/v1/nope", Some(cs.token.as_str())),
        (Method::GET, "/v1/nope", None),
        (Method::POST, "/v1/reporters/extra", Some(cs.token.as_str())),
        (Method::GET, "/", None),
    ] {
        let r = app.call(m.clone(), path, token, Body::None).await;
        r.expect_err(404, "not_found", &format!("{m} {path}"));
    }
    let r = app
        .call(Method::DELETE, "/v1/reporters", Some(&cs.token), Body::None)
        .await;
    r.expect_err(405, "method_not_allowed", "DELETE /v1/reporters");

    // Unknown pseudonym, even one that looks like an identity value.
    let r = app.get_pseudonym(&cs.token, &person.id_number).await;
    r.expect_err(404, "not_found", "unknown pseudonym");
    assert_absent(&r.body, &person.values(), "404");

    // Authentication comes first: a bad body without a token is a 401, not a parse error.
    let r = app
        .call(
            Method::POST,
            "/v1/reporters",
            None,
            Body::Raw("application/json", b"{not json".to_vec()),
        )
        .await;
    r.expect_err(401, "unauthenticated", "no token, bad body");
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));

    // A client's request id is kept; a hostile one is replaced.
    let client = crate::harness::client();
    let res = client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "case-sys-42.a_b")
        .send()
        .await
        .expect("send");
    assert_eq!(
        res.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("case-sys-42.a_b")
    );
    let res = client
        .get(format!("{}/v1/nope", app.base))
        .header("x-request-id", format!("{} <script>", person.phone))
        .send()
        .await
        .expect("send");
    let rid = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("x-request-id");
    assert!(
        !rid.contains("<script>") && !rid.is_empty(),
        "hostile request id echoed: {rid}"
    );

    // Health endpoints need no token and still carry request ids.
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        app.call(Method::GET, path, None, Body::None)
            .await
            .expect(200, path);
    }
    assert_eq!(app.tree_size(&auditor.token).await, before);
}

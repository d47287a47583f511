//! Seeded identities never leave the vault except through an opened disclosure: not in a log
//! line, not in an error body, not in any byte of the data directory, not in a PostgreSQL
//! dump. Runs the real binary, since logs and files are what is under test.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Body, Engine, Person, Resp, Storage, contains, luhn_complete, resident_id, seal_body,
    spawn_binary,
};

both_engines!(seeded_identities_never_reach_logs_error_bodies_or_storage);

/// A seeded person: what is submitted, and every form in which it must not reappear.
struct Seeded {
    identity: Value,
    forms: Vec<String>,
}

fn grouped(s: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut rest = s;
    for &n in sizes {
        if rest.len() <= n {
            break;
        }
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out.push(rest);
    out.join(sep)
}

fn seeded() -> Vec<Seeded> {
    let mut out = Vec::new();
    // As in API.md, with the lower-case x and grouping people write.
    let zs = Person::zhang_san();
    // A second person with every value spelled unusually; the stored forms are normalised.
    let id2 = resident_id("330106", "19880229", "157");
    let bank2 = luhn_complete("621700123456789012");
    let people = [
        (
            zs.clone(),
            json!({"name": zs.name, "id_number": "110105 19491231 002x", "phone": "138-0013-8000",
                   "email": zs.email, "address": zs.address, "bank_account": grouped(&zs.bank_account, &[4, 4, 4, 4], " "),
                   "bank_name": "中国银行", "employer": "太原某化工有限公司"}),
        ),
        (
            Person {
                name: "欧阳娜娜".into(),
                id_number: id2.clone(),
                phone: "13912345678".into(),
                email: "Nana.Ouyang@example.cn".into(),
                bank_account: bank2.clone(),
                address: "浙江省杭州市西湖区文三路90号".into(),
            },
            json!({"name": "  欧阳娜娜 ", "id_number": id2, "phone": "+86 139 1234 5678",
                   "email": "Nana.Ouyang@EXAMPLE.CN", "address": "浙江省杭州市西湖区文三路90号",
                   "bank_account": bank2, "bank_name": null, "employer": null}),
        ),
        (Person::nth(40), Person::nth(40).identity()),
        (
            Person {
                name: "买买提·艾力".into(),
                id_number: resident_id("650102", "19750615", "031"),
                phone: "09913456789".into(),
                email: "maimaiti@example.cn".into(),
                bank_account: luhn_complete("622848001234567890"),
                address: "新疆乌鲁木齐市天山区解放南路12号".into(),
            },
            json!({"name": "买买提•艾力", "id_number": resident_id("650102", "19750615", "031"),
                   "phone": "0991-3456789", "email": "maimaiti@example.cn",
                   "address": "新疆乌鲁木齐市天山区解放南路12号",
                   "bank_account": luhn_complete("622848001234567890"), "bank_name": null, "employer": null}),
        ),
    ];
    for (p, identity) in people {
        let mut forms = p.values();
        for key in ["name", "id_number", "phone", "email", "bank_account"] {
            if let Some(s) = identity[key].as_str() {
                forms.push(s.trim().to_owned());
            }
        }
        forms.push(p.id_number.to_lowercase());
        forms.push(grouped(&p.id_number, &[6, 8], " "));
        forms.push(grouped(&p.phone, &[3, 4], " "));
        forms.push(grouped(&p.phone, &[3, 4], "-"));
        forms.push(grouped(&p.bank_account, &[4, 4, 4, 4], " "));
        forms.push(p.email.to_lowercase());
        forms.sort();
        forms.dedup();
        out.push(Seeded { identity, forms });
    }
    out
}

/// Every form, raw and as the hex a bytea column or a dump would show.
fn needles(forms: &[String]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for f in forms {
        out.push((f.clone(), f.as_bytes().to_vec()));
        out.push((format!("hex({f})"), hex::encode(f.as_bytes()).into_bytes()));
        out.push((
            format!("HEX({f})"),
            hex::encode_upper(f.as_bytes()).into_bytes(),
        ));
    }
    out
}

fn scan(haystack: &[u8], needles: &[(String, Vec<u8>)], place: &str, leaks: &mut Vec<String>) {
    for (label, n) in needles {
        if contains(haystack, n) {
            leaks.push(format!("{place} contains {label}"));
        }
    }
}

fn scan_dir(
    dir: &Path,
    needles: &[(String, Vec<u8>)],
    leaks: &mut Vec<String>,
    files: &mut Vec<String>,
) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if path.is_dir() {
            scan_dir(&path, needles, leaks, files);
        } else {
            let bytes = std::fs::read(&path).expect("read data file");
            files.push(format!("{} ({} bytes)", path.display(), bytes.len()));
            scan(&bytes, needles, &path.display().to_string(), leaks);
        }
    }
}

async fn seeded_identities_never_reach_logs_error_bodies_or_storage(engine: Engine) {
    let storage = Storage::new_fast(engine).await;
    let logs = tempfile::tempdir().expect("logs dir");
    let mut bin = spawn_binary(&storage, logs.path(), &[]).await;
    let admin = bin.admin_token.clone();
    let mk = |role: &str, j: &str| json!({"name": format!("{role} {j}"), "role": role, "jurisdiction": j});
    let cs = bin
        .call(
            Method::POST,
            "/v1/principals",
            Some(&admin),
            Body::Json(mk("case_system", "140100")),
        )
        .await
        .expect(201, "cs");
    let cust = bin
        .call(
            Method::POST,
            "/v1/principals",
            Some(&admin),
            Body::Json(mk("custodian", "140000")),
        )
        .await
        .expect(201, "cust");
    let cs_t = cs["token"].as_str().expect("token").to_owned();
    let cust_t = cust["token"].as_str().expect("token").to_owned();

    let people = seeded();
    let all_forms: Vec<String> = people.iter().flat_map(|p| p.forms.clone()).collect();
    let needles = needles(&all_forms);
    let mut leaks = Vec::new();
    // Every answer except an opened disclosure's body must be free of identity data.
    let mut answers: Vec<(String, Resp)> = Vec::new();
    let mut pseudonyms = Vec::new();
    let mut message_ids = Vec::new();

    for (i, p) in people.iter().enumerate() {
        let r = bin
            .call(
                Method::POST,
                "/v1/reporters",
                Some(&cs_t),
                Body::Json(seal_body(
                    "140100",
                    &format!("SX-PII-{i}"),
                    p.identity.clone(),
                )),
            )
            .await;
        let v = r.expect(201, "seal");
        let ps = v["pseudonym"].as_str().expect("p").to_owned();
        answers.push((format!("seal {i}"), r));
        // Again, for another case: the repeated-reporter path re-seals the record.
        let r = bin
            .call(
                Method::POST,
                "/v1/reporters",
                Some(&cs_t),
                Body::Json(seal_body(
                    "140100",
                    &format!("SX-PII-{i}-b"),
                    p.identity.clone(),
                )),
            )
            .await;
        assert_eq!(r.expect(201, "second seal")["reporter_seen_before"], true);
        answers.push((format!("second seal {i}"), r));
        let r = bin
            .call(
                Method::GET,
                &format!("/v1/pseudonyms/{ps}"),
                Some(&cs_t),
                Body::None,
            )
            .await;
        r.expect(200, "get pseudonym");
        answers.push((format!("get pseudonym {i}"), r));

        // Disclosure: request, approve, open (the open's body is the one place values go).
        let r = bin
            .call(Method::POST, "/v1/disclosures", Some(&cs_t), Body::Json(json!({
                "pseudonym": ps, "purpose": "verification_contact",
                "justification": "核实举报内容，需要联系举报人", "fields": ["name", "id_number", "phone", "email", "bank_account", "address"]})))
            .await;
        let id = r.expect(201, "request")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        answers.push((format!("request {i}"), r));
        let r = bin
            .call(
                Method::POST,
                &format!("/v1/disclosures/{id}/approve"),
                Some(&cust_t),
                Body::Json(json!({"comment": "同意"})),
            )
            .await;
        r.expect(200, "approve");
        answers.push((format!("approve {i}"), r));
        let r = bin
            .call(
                Method::POST,
                &format!("/v1/disclosures/{id}/open"),
                Some(&cs_t),
                Body::None,
            )
            .await;
        r.expect(200, "open");
        let fields = r.json()["fields"].clone();
        assert!(
            fields["phone"].as_str().is_some_and(|s| !s.is_empty()),
            "opened: {fields}"
        );
        let r = bin
            .call(
                Method::GET,
                &format!("/v1/disclosures/{id}"),
                Some(&cs_t),
                Body::None,
            )
            .await;
        r.expect(200, "get disclosure");
        answers.push((format!("get disclosure {i}"), r));
        // A second open is refused, without the data.
        let r = bin
            .call(
                Method::POST,
                &format!("/v1/disclosures/{id}/open"),
                Some(&cs_t),
                Body::None,
            )
            .await;
        r.expect(409, "second open");
        answers.push((format!("second open {i}"), r));

        // Messages through the relay (file notifier: outbox.jsonl in the data directory).
        let r = bin
            .call(
                Method::POST,
                &format!("/v1/pseudonyms/{ps}/messages"),
                Some(&cs_t),
                Body::Json(json!({"kind": "acceptance", "body": "您的举报已受理，编号见短信。"})),
            )
            .await;
        let v = r.expect(202, "message");
        message_ids.push(v["id"].as_str().expect("message id").to_owned());
        answers.push((format!("message {i}"), r));
        pseudonyms.push(ps);
    }

    // A reward carried to payment: payee details go to finance (that body is the one place
    // they appear), and never into a log, another answer or the store.
    let fin = bin
        .call(
            Method::POST,
            "/v1/principals",
            Some(&admin),
            Body::Json(mk("finance", "140000")),
        )
        .await
        .expect(201, "finance");
    let fin_t = fin["token"].as_str().expect("token").to_owned();
    let r = bin
        .call(
            Method::POST,
            "/v1/rewards",
            Some(&cs_t),
            Body::Json(json!({
                "case_ref": "SX-PII-0", "jurisdiction": "140100", "verified_on": "2026-11-25",
                "industry": "hazardous_chemicals",
                "outcome": {"kind": "major_hazard", "penalty": "20000.00"},
                "reports": [{"pseudonym": pseudonyms[0]}]})),
        )
        .await;
    let reward = r.expect(201, "file reward")["id"]
        .as_str()
        .expect("reward id")
        .to_owned();
    answers.push(("file reward".into(), r));
    for (what, method, path, token, body) in [
        (
            "approve reward",
            Method::POST,
            format!("/v1/rewards/{reward}/approve"),
            &fin_t,
            Body::None,
        ),
        (
            "claim reward",
            Method::POST,
            format!("/v1/rewards/{reward}/claims"),
            &cs_t,
            Body::Json(json!({"pseudonym": pseudonyms[0], "identity_checked": true})),
        ),
    ] {
        let r = bin.call(method, &path, Some(token), body).await;
        r.expect(200, what);
        answers.push((what.into(), r));
    }
    let payee = bin
        .call(
            Method::GET,
            &format!("/v1/rewards/{reward}/payee"),
            Some(&fin_t),
            Body::None,
        )
        .await;
    let payee_body = payee.expect(200, "payee");
    assert!(
        payee_body["payees"][0]["bank_account"].is_string(),
        "the payee answer carries the bank account: {payee_body}"
    );
    let r = bin
        .call(
            Method::POST,
            &format!("/v1/rewards/{reward}/payments"),
            Some(&fin_t),
            Body::Json(
                json!({"payment_ref": "PAY-PII-1", "amount": "3000.00", "paid_on": "2026-11-28"}),
            ),
        )
        .await;
    r.expect(201, "payment");
    answers.push(("payment".into(), r));

    // Bad inputs that carry the seeded values.
    let zs = &people[0].identity;
    let bad_bodies: Vec<(&str, Body)> = vec![
        (
            "bad checksum beside good values",
            Body::Json(seal_body("140100", "SX-PII-X", {
                let mut i = zs.clone();
                i["id_number"] = json!("110105194912310021");
                i
            })),
        ),
        (
            "bad phone beside good values",
            Body::Json(seal_body("140100", "SX-PII-X", {
                let mut i = people[1].identity.clone();
                i["phone"] = json!("+1 139 1234 5678");
                i
            })),
        ),
        (
            "value in an unknown top-level field",
            Body::Json({
                let mut b = seal_body("140100", "SX-PII-X", zs.clone());
                b["reporter_id_number"] = json!("11010519491231002X");
                b
            }),
        ),
        (
            "value as an unknown field's name",
            Body::Json({
                let mut b = seal_body("140100", "SX-PII-X", zs.clone());
                b["identity"]["13912345678"] = json!(true);
                b
            }),
        ),
        (
            "a name as an unknown field's name",
            Body::Json({
                let mut b = seal_body("140100", "SX-PII-X", zs.clone());
                b["identity"]["欧阳娜娜"] = json!(true);
                b
            }),
        ),
        (
            "value of the wrong type",
            Body::Json({
                let mut b = seal_body("140100", "SX-PII-X", zs.clone());
                b["identity"]["phone"] = json!(13_912_345_678_u64);
                b
            }),
        ),
        (
            "value where an enum goes",
            Body::Json({
                let mut b = seal_body("140100", "SX-PII-X", zs.clone());
                b["channel"] = json!("13912345678");
                b
            }),
        ),
        (
            "value where a jurisdiction goes",
            Body::Json(seal_body("11010519491231002X", "SX-PII-X", zs.clone())),
        ),
        (
            "value where a time goes",
            Body::Json({
                let mut b = seal_body("140100", "SX-PII-X", zs.clone());
                b["received_at"] = json!("13800138000");
                b
            }),
        ),
        (
            "malformed JSON",
            Body::Raw(
                "application/json",
                r#"{"identity":{"name":"欧阳娜娜","phone":"13912345678","#
                    .as_bytes()
                    .to_vec(),
            ),
        ),
    ];
    for (what, body) in bad_bodies {
        let r = bin
            .call(Method::POST, "/v1/reporters", Some(&cs_t), body)
            .await;
        assert!(
            r.status >= 400 && r.status < 500,
            "{what}: {} {}",
            r.status,
            r.text()
        );
        answers.push((what.to_owned(), r));
    }
    // Values where an integrator might mistakenly put them: the path and the query.
    for (what, path) in [
        (
            "an ID number as a pseudonym",
            "/v1/pseudonyms/11010519491231002X".to_owned(),
        ),
        (
            "a phone as a pseudonym",
            "/v1/pseudonyms/13912345678".to_owned(),
        ),
        (
            "a phone as a disclosure id",
            "/v1/disclosures/13800138000".to_owned(),
        ),
    ] {
        let r = bin.call(Method::GET, &path, Some(&cs_t), Body::None).await;
        r.expect(404, what);
        answers.push((what.to_owned(), r));
    }
    let r = bin
        .call(
            Method::POST,
            "/v1/disclosures",
            Some(&cs_t),
            Body::Json(json!({
            "pseudonym": "13912345678", "purpose": "verification_contact",
            "justification": "核实举报内容，需要联系举报人", "fields": ["phone"]})),
        )
        .await;
    r.expect(404, "disclosure of a phone number");
    answers.push(("disclosure of a phone number".into(), r));

    // Wait for the relay to write every message.
    let outbox = storage.data_dir().join("outbox.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&outbox).unwrap_or_default();
        if message_ids.iter().all(|m| text.contains(m.as_str())) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "messages not delivered to outbox.jsonl: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // While it runs (SQLite's -wal and -shm exist only now), and again after it stopped.
    let mut files = Vec::new();
    scan_dir(storage.data_dir(), &needles, &mut leaks, &mut files);
    if engine == Engine::Sqlite {
        assert!(
            files.iter().any(|f| f.contains("vault.db-wal")),
            "no WAL among {files:?}"
        );
    }

    let status = bin.terminate().await;
    assert!(
        status.success(),
        "reporter-vault did not exit cleanly on SIGTERM: {status}"
    );

    // 1. Answers.
    for (what, r) in &answers {
        scan(
            &r.body,
            &needles,
            &format!("the answer to {what}"),
            &mut leaks,
        );
    }

    // 2. Every byte of every file in the data directory.
    scan_dir(storage.data_dir(), &needles, &mut leaks, &mut files);
    if engine == Engine::Sqlite {
        assert!(
            files.iter().any(|f| f.contains("vault.db")),
            "no vault.db among {files:?}"
        );
    }
    assert!(
        files.iter().any(|f| f.contains("outbox.jsonl")),
        "no outbox among {files:?}"
    );

    // 3. A PostgreSQL dump of the whole database.
    if let Some(pg) = &storage.pg {
        let out = std::process::Command::new("pg_dump")
            .arg("--dbname")
            .arg(&pg.url)
            .output()
            .unwrap_or_else(|e| {
                panic!("pg_dump is not installed ({e}): apt-get install postgresql-client")
            });
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dump = out.stdout;
        assert!(
            contains(&dump, b"reporters") && contains(&dump, b"audit_events"),
            "the dump is not of the vault"
        );
        scan(&dump, &needles, "the pg_dump", &mut leaks);
    }

    // 4. The log output: JSON lines, none with identity data, tokens or the passphrase.
    let output = bin.output();
    let text = String::from_utf8_lossy(&output).into_owned();
    assert!(
        text.lines().count() > 10,
        "suspiciously little log output:\n{text}"
    );
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "a log line that is not JSON: {line}"
        );
    }
    for line in text.lines() {
        for (label, n) in &needles {
            if contains(line.as_bytes(), n) {
                leaks.push(format!("the log line {line} contains {label}"));
            }
        }
    }
    let mut secrets = vec![
        ("the admin token".to_owned(), admin.clone().into_bytes()),
        ("a principal token".to_owned(), cs_t.clone().into_bytes()),
    ];
    if let Some(p) = &storage.passphrase {
        secrets.push(("the keyring passphrase".to_owned(), p.clone().into_bytes()));
    }
    scan(&output, &secrets, "the log output", &mut leaks);

    assert!(
        leaks.is_empty(),
        "identity data or secrets left the vault:\n  {}\nfiles scanned: {files:?}",
        leaks.join("\n  ")
    );
}

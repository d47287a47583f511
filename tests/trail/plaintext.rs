//! No plaintext identity value appears in any leaf: identities are sealed and every field of
//! them disclosed, then every leaf of the log is searched for every value, as typed and as
//! normalised (the form the opened disclosure returned).

use serde_json::{Value, json};

use crate::harness::{Engine, TestApp, luhn, resident_id};

const FIELDS: [&str; 8] = [
    "name",
    "id_number",
    "phone",
    "email",
    "address",
    "bank_account",
    "bank_name",
    "employer",
];

fn identities() -> Vec<Value> {
    let id1 = resident_id("14010119850615123");
    let id2 = resident_id("37010219900101777");
    let id3 = resident_id("11010519491231002");
    let acct1 = luhn("621700123456789012");
    let acct2 = luhn("622202100112345678");
    let acct3 = luhn("6228480402564890");
    let spaced = |s: &str| {
        s.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    vec![
        json!({
            "name": "  王  小明 ", "id_number": id1.to_lowercase(), "phone": "+86 139 1234 5678",
            "email": "wang.xm@Example.COM", "address": "山西省太原市  迎泽区 柳巷 12 号",
            "bank_account": spaced(&acct1), "bank_name": "中国建设银行  太原分行",
            "employer": "太原某化工有限公司",
        }),
        json!({
            "name": "买买提•艾力", "id_number": id2, "phone": "0351-7654321",
            "email": "maimaiti@example.cn", "address": "济南市历下区泉城路 88 号",
            "bank_account": acct2, "bank_name": "工商银行", "employer": "济南矿业集团",
        }),
        json!({
            "name": "Zhang San", "id_number": id3, "phone": "138-0013-8001",
            "email": "zs@mail.example.org", "address": "北京市东城区 1 号院",
            "bank_account": acct3, "bank_name": "农业银行北京分行", "employer": "北京某建筑公司",
        }),
    ]
}

/// The forms of a value to search for: as typed, trimmed, without separators.
fn forms(raw: &str) -> Vec<String> {
    let mut v = vec![raw.to_owned(), raw.trim().to_owned()];
    let compact: String = raw
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    v.push(compact.clone());
    v.push(compact.to_uppercase());
    v.push(compact.to_lowercase());
    // The digits of a phone without its country code.
    if let Some(rest) = compact.strip_prefix("+86") {
        v.push(rest.to_owned());
    }
    // JSON-escaped (non-ASCII as \u escapes), in case a leaf escaped it.
    let escaped: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                format!("\\u{:04x}", c as u32)
            }
        })
        .collect();
    v.push(escaped);
    v.retain(|s| s.chars().count() >= 4 || !s.is_ascii());
    v
}

async fn no_plaintext_in_any_leaf(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut needles: Vec<(String, String)> = Vec::new();
    for (i, identity) in identities().into_iter().enumerate() {
        let p = app.seal(identity.clone()).await;
        // Every field leaves the vault, once per requester role.
        let (_, body) = app
            .disclose("case_system", &p, "verification_contact", &FIELDS)
            .await;
        let (_, body2) = app
            .disclose(
                "finance",
                &p,
                "reward_payment",
                &["name", "bank_account", "bank_name"],
            )
            .await;
        for f in FIELDS {
            let raw = identity[f].as_str().expect("string");
            let normal = body["fields"][f]
                .as_str()
                .unwrap_or_else(|| panic!("identity {i}: field {f} was disclosed: {body}"));
            for form in forms(raw).into_iter().chain(forms(normal)) {
                needles.push((format!("identity {i} {f}"), form));
            }
            if let Some(v) = body2["fields"][f].as_str() {
                assert_eq!(v, normal, "the same normal form for every requester");
            }
        }
        // Handoff-free activity on the pseudonym too: a message relayed.
        app.post(
            &format!("/v1/pseudonyms/{p}/messages"),
            "case_system",
            json!({"kind": "acceptance", "body": "您的举报已受理。"}),
        )
        .await
        .expect(202, "relay a message");
    }
    // A leak trace of each phone adds trace events too.
    for identity in identities() {
        app.post(
            "/v1/audit/leak-trace",
            "auditor",
            json!({"field": "phone", "value": identity["phone"]}),
        )
        .await
        .expect(200, "leak trace");
    }

    let (events, size) = app.events().await;
    assert_eq!(events.len() as u64, size);
    let opened = events
        .iter()
        .filter(|e| e.2["action"] == "disclosure_opened")
        .count();
    assert_eq!(opened, 6, "every disclosure is in the log");
    // Values left as keyed MACs instead: one per disclosed field, the same value giving the
    // same MAC whoever opened it.
    let mut macs: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for (_, _, ev) in events
        .iter()
        .filter(|e| e.2["action"] == "disclosure_opened")
    {
        let disclosed = ev["disclosed"].as_array().expect("disclosed MACs");
        assert!(disclosed.len() == 8 || disclosed.len() == 3, "{ev}");
        for m in disclosed {
            let mac = m["mac"].as_str().expect("mac");
            assert!(
                mac.len() == 64 && mac.chars().all(|c| c.is_ascii_hexdigit()),
                "{ev}"
            );
            let key = (
                ev["record"].as_str().expect("record").to_owned(),
                m["field"].as_str().expect("field").to_owned(),
            );
            macs.entry(key).or_default().push(mac.to_owned());
        }
    }
    for ((record, field), list) in &macs {
        assert!(
            list.windows(2).all(|w| w[0] == w[1]),
            "{record} {field}: one value, one MAC: {list:?}"
        );
    }
    let mut found = Vec::new();
    for (index, leaf, _) in &events {
        let text = String::from_utf8_lossy(leaf);
        for (what, needle) in &needles {
            if text.contains(needle.as_str()) {
                found.push(format!("leaf {index} holds {what} as {needle:?}: {text}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "plaintext identity data in the access trail:\n{}",
        found.join("\n")
    );
    app.stop().await;
}

both_engines!(no_plaintext_in_any_leaf);

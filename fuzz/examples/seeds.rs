//! Writes the seed corpus of every target to `fuzz/corpus/<target>/` (files named by the
//! SHA-256 of their content, like libFuzzer's own, so re-running adds nothing twice):
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! Seeds come from the repository's own material: the shipped policies, the known-answer
//! vectors of `crypto/tests/vectors`, the valid values of the domain's tests, and envelopes,
//! keyrings and notes made with the targets' own fixed keys.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vault_crypto::checkpoint::{Checkpoint, LogSigner, StatementSigner};
use vault_crypto::envelope;
use vault_crypto::keyring::{Keyring, KeyringProtector};
use vault_crypto::random::DeterministicRandom;
use vault_crypto::secret::Key32;
use vault_fuzz::http::{ENDPOINTS, identity_json};
use vault_fuzz::{
    CONTEXTS, LOG_NAME, LOG_SEED, envelope_keyring, scratch_dir, test_identity_file,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn write(target: &str, bytes: &[u8]) {
    let dir = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let name = hex::encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes));
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn with(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    v.extend_from_slice(rest);
    v
}

fn read_json(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(root().join(rel)).expect(rel)).expect(rel)
}

fn envelope_seeds() {
    let kr = envelope_keyring();
    for (i, ctx) in CONTEXTS.iter().enumerate() {
        for (j, pt) in [&b""[..], b"x", "{\"name\":\"张三\",\"phone\":\"+8613800138000\"}".as_bytes()]
            .iter()
            .enumerate()
        {
            let env = envelope::seal(kr, ctx, pt, &DeterministicRandom::new((i * 10 + j) as u64))
                .expect("seal");
            write("envelope", &with(&[i as u8, (i + j) as u8], &env));
        }
    }
    // The known-answer vectors (other keys: they parse, and fail to open).
    let v = read_json("crypto/tests/vectors/envelope.json");
    for c in v["seal"].as_array().into_iter().flatten() {
        let env = hex::decode(c["envelope_hex"].as_str().unwrap_or_default()).expect("hex");
        write("envelope", &with(&[0, 1], &env));
    }
}

fn b64_key(byte: u8) -> String {
    // Standard base64 of 32 equal bytes.
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = [byte; 32];
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for k in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * k)) & 63) as usize]));
        }
    }
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

fn keyring_seeds() {
    // Mode 0: real keyring files, encrypted to the test identity.
    let protector = KeyringProtector::IdentityFile(test_identity_file().to_owned());
    let dir = scratch_dir("seeds");
    for seed in [1u64, 2] {
        let rng = DeterministicRandom::new(seed);
        let mut kr = Keyring::generate(&rng, 1_700_000_000).expect("generate");
        if seed == 2 {
            kr.rotate(&rng, 1_700_000_100).expect("rotate");
            kr.rotate(&rng, 1_700_000_200).expect("rotate");
            kr.retire(1).expect("retire");
        }
        let path = dir.join(format!("keyring-{seed}.age"));
        kr.save(&path, &protector).expect("save");
        write("keyring_load", &with(&[0], &std::fs::read(&path).expect("read")));
    }
    // Mode 1: keyring plaintexts (the loader's JSON).
    let doc = |keks: Value, active: u32| {
        json!({"format": 1, "active_kek": active, "keks": keks,
               "blind_index_key": b64_key(0xb1), "disclosure_mac_key": b64_key(0xd1),
               "log_signing_seed": b64_key(0x5e)})
        .to_string()
    };
    let kek = |v: u32, b: u8| json!({"version": v, "created_at": 1_700_000_000, "key": b64_key(b)});
    for text in [
        doc(json!([kek(1, 7)]), 1),
        doc(json!([kek(1, 7), kek(2, 8)]), 2),
        doc(json!([kek(2, 8), kek(5, 9)]), 5),
        doc(json!([kek(1, 7), kek(1, 8)]), 1),
        doc(json!([kek(0, 7)]), 0),
        doc(json!([]), 1),
    ] {
        write("keyring_load", &with(&[1], text.as_bytes()));
    }
}

fn policy_seeds() {
    let quotes = [
        json!({"jurisdiction": "370100", "industry": "hazardous_chemicals", "verified_on": "2026-11-01",
               "outcome": {"kind": "major_hazard", "penalty": "100000.00"},
               "reporter": {"employee_of_reported_unit": true, "supervisory_staff": false, "anonymous": false}}),
        json!({"jurisdiction": "140105", "industry": "coal_mine", "verified_on": "2025-03-01",
               "outcome": {"kind": "concealed_accident", "accident_level": "major", "concealed_deaths": 3},
               "reporter": {"employee_of_reported_unit": false, "supervisory_staff": false, "anonymous": true}}),
        json!({"jurisdiction": "000000", "industry": "other", "verified_on": "2026-01-01",
               "outcome": {"kind": "general_hazard", "proposed_amount": "800.00", "report_grade": 1, "penalty": "0"},
               "reporter": {"employee_of_reported_unit": false, "supervisory_staff": true, "anonymous": false}}),
    ];
    let mut entries: Vec<_> = std::fs::read_dir(root().join("policies"))
        .expect("policies")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    entries.sort();
    for (i, p) in entries.iter().enumerate() {
        let text = std::fs::read(p).expect("policy");
        write("policy", &text);
        let q = &quotes[i % quotes.len()];
        write("policy", &[&text[..], b"\0", q.to_string().as_bytes()].concat());
        write("policy", &[&text[..], b"\0", &[1, 0, 1, 3, 1, 2, 1, 1, 0, 1, 7, 1, 5, 0, 0, 1, 0, 1, 1, 1]].concat());
    }
}

fn domain_seeds() {
    for s in [
        // ResidentId (the domain tests' valid IDs, and spellings of one).
        "11010519491231002X", "34052419800101001X", "140105200002291230", "81000019991231999X",
        "370102198501010011", " 370102 19850101 0011 ", "３７０１０２１９８５０１０１００１１",
        "11010519491231002x",
        // Phone.
        "13800138000", "+86 138-0013-8000", "0086 13800138000", "(010) 1234 5678", "0351-1234567",
        "+86 10 12345678", "８６１３８００１３８０００",
        // Bank account.
        "6222020200000050001", "6222 0202 0000 0050 001",
        // Names, e-mail, free text.
        "买买提•艾力", "  张　三  ", "reporter@Example.CN", "a@b.c", "山东省济南市历下区 1 号",
        // Jurisdictions and pairs.
        "000000", "370000", "370100", "370102", "140105", "810000", "|370000|370102",
        "|370100|370102", "|000000|140105",
        // Case refs and enums.
        "SX-2026-000123", "name", "id_number", "bank_account", "wechat", "case_system",
        "verification_contact", "reward_notice", "major_hazard", "hazardous_chemicals", "larger",
        // Policy scalars.
        "3000.00", "999999999999.99", "0.5", "12.5", "100", "2018-01-04", "2025-05", "2021",
    ] {
        write("domain_values", s.as_bytes());
    }
}

fn checkpoint_seeds() {
    let seed = Key32::from_bytes(LOG_SEED);
    let log = LogSigner::from_seed(LOG_NAME, &seed).expect("signer");
    let st = StatementSigner::derive("fuzz.example/receipts", &seed).expect("statements");
    for size in [0u64, 1, 8, u64::MAX] {
        let cp = Checkpoint {
            origin: LOG_NAME.to_owned(),
            size,
            root: [size as u8; 32],
        };
        let note = log.sign(&cp).expect("sign");
        write("checkpoint_note", &with(&[0], note.as_bytes()));
        write("checkpoint_note", &with(&[0], cp.body().as_bytes()));
        // A witness cosignature line from another key in front of ours.
        let other = LogSigner::from_seed("witness.example", &Key32::from_bytes([9; 32]))
            .expect("witness");
        let cosig = other.sign(&Checkpoint {
            origin: "witness.example".into(),
            ..cp.clone()
        });
        if let Ok(c) = cosig {
            let line = c.trim_end().rsplit('\n').next().unwrap_or_default().to_owned();
            write("checkpoint_note", &with(&[0], format!("{note}{line}\n").as_bytes()));
        }
    }
    let mut seed_bytes = 5u64.to_le_bytes().to_vec();
    seed_bytes.extend_from_slice(&[3; 32]);
    write("checkpoint_note", &with(&[1], &seed_bytes));
    write("checkpoint_note", &with(&[0], log.verifier_key().as_bytes()));
    write("checkpoint_note", &with(&[0], st.verifier_key().as_bytes()));
    write("checkpoint_note", &with(&[0], st.sign("receipt: reward rwd_1 paid\n").expect("sign").as_bytes()));
    let v = read_json("crypto/tests/vectors/checkpoint.json");
    write("checkpoint_note", &with(&[0], v["verifier_key"].as_str().unwrap_or_default().as_bytes()));
    for c in v["checkpoints"].as_array().into_iter().flatten() {
        write("checkpoint_note", &with(&[0], c["note"].as_str().unwrap_or_default().as_bytes()));
    }
}

fn merkle_seeds() {
    // See the byte-code of fuzz_targets/merkle_proofs.rs.
    for s in [
        // Inclusion: n, op 0, index, size, real root, leaf 1:index, real proof.
        vec![8, 0, 3, 8, 0, 1, 3, 0xff],
        vec![40, 0, 17, 33, 0, 1, 17, 0xff],
        vec![40, 0, 0, 1, 0, 1, 0, 0xff],
        vec![5, 0, 4, 5, 0, 1, 4, 2, 0, 0, 0, 1],
        // Inclusion with a huge size.
        vec![8, 0, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0xff],
        // Consistency: n, op 1, first, second, both roots real, real proof.
        vec![8, 1, 3, 8, 0, 0xff],
        vec![40, 1, 7, 40, 0, 0xff],
        vec![40, 1, 16, 33, 0, 0xff],
        vec![40, 1, 0, 5, 0, 0xff],
        vec![40, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0],
        // root_from_source and frontiers.
        vec![40, 2, 37],
        vec![40, 3, 5, 2, 2, 3, 2, 1],
        vec![40, 3, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 64],
    ] {
        write("merkle_proofs", &s);
    }
}

fn http_seeds() {
    let body = |path: &str| -> Option<Value> {
        Some(match path {
            "/v1/principals" => json!({"name": "新的财务", "role": "finance", "jurisdiction": "370000",
                                       "age_recipient": vault_fuzz::TEST_AGE_RECIPIENT}),
            "/v1/reporters" => json!({"jurisdiction": "370102", "case_ref": "FZ-0100",
                                      "received_at": "2026-11-03T10:00:00+08:00", "channel": "phone",
                                      "employee_of_reported_unit": true, "identity": identity_json()}),
            "/v1/pseudonyms/{p}/handoff" => json!({"to_jurisdiction": "370102", "case_ref": "FZ-0101"}),
            "/v1/pseudonyms/{p}/messages" => json!({"kind": "progress", "body": "案件已受理"}),
            "/v1/disclosures" => json!({"pseudonym": "@P@", "purpose": "reward_payment",
                                        "justification": "支付奖励", "fields": ["name", "bank_account"]}),
            "/v1/disclosures/{d}/approve" | "/v1/disclosures/{d}/deny" => json!({"comment": "ok"}),
            "/v1/audit/leak-trace" => json!({"field": "phone", "value": "+86 138 0013 1000"}),
            "/v1/rewards/quote" => json!({"jurisdiction": "370100", "industry": "hazardous_chemicals",
                                          "verified_on": "2026-11-01",
                                          "outcome": {"kind": "major_hazard", "penalty": "100000.00"},
                                          "reporter": {"employee_of_reported_unit": true,
                                                       "supervisory_staff": false, "anonymous": false}}),
            "/v1/rewards" => json!({"case_ref": "FZ-0001", "jurisdiction": "370100", "verified_on": "2026-11-18",
                                    "industry": "hazardous_chemicals",
                                    "outcome": {"kind": "major_hazard", "penalty": "2000.00"},
                                    "reports": [{"pseudonym": "@P@", "received_at": "2026-11-02T09:00:00+08:00",
                                                 "joint_group": "g1", "signatory_order": 1,
                                                 "supervisory_staff": false},
                                                {"pseudonym": "@A@"}]}),
            "/v1/rewards/{r}/reject" | "/v1/rewards/{r}/cancel" => json!({"reason": "重复举报"}),
            "/v1/rewards/{r}/claims" => json!({"pseudonym": "@P@", "identity_checked": true}),
            "/v1/rewards/{r}/extend" => json!({"days": 30, "reason": "举报人住院"}),
            "/v1/rewards/{r}/payments" => json!({"payment_ref": "PAY-1", "amount": "5000.00", "paid_on": "2026-11-21"}),
            "/v1/receipts" => json!({"pseudonym": "@A@", "claim_code": "@C@"}),
            _ => return None,
        })
    };
    let queries = |path: &str| -> &'static [&'static str] {
        match path {
            "/v1/audit/events" => &["start=0&limit=5", "start=18446744073709551615&limit=4294967295"],
            "/v1/audit/proofs/inclusion" => &["index=0&tree_size=3", "index=2&tree_size=18446744073709551615"],
            "/v1/audit/proofs/consistency" => &["first=1&second=4", "first=9223372036854775808&second=9223372036854775809"],
            "/v1/rewards" => &["status=approved&jurisdiction=370100&from=2026-01-01&to=2026-12-31", ""],
            "/v1/stats/rewards" => &["group_by=jurisdiction&from=2026-01-01", "group_by=policy"],
            "/v1/oversight/rewards" => &["within_days=7&waiting_days=15", "within_days=4294967295"],
            _ => &[],
        }
    };
    for (i, e) in ENDPOINTS.iter().enumerate() {
        if e.method == "POST" {
            if let Some(b) = body(e.path) {
                write("http_bodies", &with(&[i as u8, 0], b.to_string().as_bytes()));
            }
            if e.path == "/v1/rewards/{r}/claims" {
                let b = json!({"claim_code": "@C@"});
                write("http_bodies", &with(&[i as u8, 1], b.to_string().as_bytes()));
            }
            if e.path == "/v1/rewards" || e.path.ends_with("/payments") {
                if let Some(b) = body(e.path) {
                    write("http_bodies", &with(&[i as u8, 2], b.to_string().as_bytes()));
                }
            }
        } else {
            for q in queries(e.path) {
                write("http_bodies", &with(&[i as u8, 0], q.as_bytes()));
            }
        }
    }
}

fn main() {
    envelope_seeds();
    keyring_seeds();
    policy_seeds();
    domain_seeds();
    checkpoint_seeds();
    merkle_seeds();
    http_seeds();
    println!("seeds written under {}", root().join("fuzz/corpus").display());
}

//! A requester with an `age_recipient` receives its disclosure as `application/age`, and the
//! reference `age` tool — what the department actually uses — decrypts it to the JSON.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::flow::Cast;
use crate::harness::{Engine, Person, assert_absent, spawn_app};

both_engines!(opened_disclosure_decrypts_with_the_age_cli);

/// Generates an identity with `age-keygen` and returns its public key.
fn age_keygen(path: &Path) -> String {
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("age-keygen is not installed ({e}): apt-get install age — this test must run")
        });
    assert!(out.status.success(), "age-keygen failed: {:?}", out);
    let text = std::fs::read_to_string(path).expect("identity file");
    text.lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("a `# public key:` line")
        .trim()
        .to_owned()
}

fn age_decrypt(identity: &Path, ciphertext: &Path) -> std::process::Output {
    Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(ciphertext)
        .output()
        .unwrap_or_else(|e| {
            panic!("age is not installed ({e}): apt-get install age — this test must run")
        })
}

async fn opened_disclosure_decrypts_with_the_age_cli(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let keys = tempfile::tempdir().expect("tempdir");
    let id_file = keys.path().join("requester.key");
    let recipient = age_keygen(&id_file);
    assert!(recipient.starts_with("age1"), "{recipient}");
    let cs = app
        .create_principal("case_system", "140100", Some(&recipient))
        .await;

    let person = Person::nth(7);
    let p = app
        .seal_ok(&cs.token, "140100", "SX-2026-000900", Some(&person))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let id = app
        .request_disclosure_ok(
            &cs.token,
            &p,
            "verification_contact",
            &["name", "phone", "id_number", "email"],
        )
        .await;
    app.approve(&c.cust1.token, &id)
        .await
        .expect(200, "approve");

    let r = app.open(&cs.token, &id).await;
    r.expect(200, "open");
    assert_eq!(r.header("content-type").as_deref(), Some("application/age"));
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
    assert_absent(&r.body, &person.values(), "the age-encrypted body");
    assert!(
        r.body.starts_with(b"age-encryption.org/v1\n")
            || r.body.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----"),
        "not an age file: {:?}",
        String::from_utf8_lossy(&r.body[..r.body.len().min(40)])
    );

    let ct = keys.path().join("disclosure.age");
    std::fs::write(&ct, &r.body).expect("write ciphertext");
    let out = age_decrypt(&id_file, &ct);
    assert!(
        out.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("the plaintext is JSON");
    assert_eq!(
        v,
        json!({
            "disclosure_id": id,
            "pseudonym": p,
            "fields": {
                "name": person.name,
                "phone": person.phone,
                "id_number": person.id_number,
                "email": person.email,
            }
        })
    );

    // Another key does not open it.
    let other = keys.path().join("other.key");
    age_keygen(&other);
    let out = age_decrypt(&other, &ct);
    assert!(
        !out.status.success(),
        "a different age identity decrypted the disclosure"
    );

    // A principal with a malformed recipient is refused at creation.
    let r = app
        .post(
            "/v1/principals",
            &app.admin_token,
            json!({"name": "bad key", "role": "case_system", "jurisdiction": "140100",
                   "age_recipient": "age1notakey"}),
        )
        .await;
    r.expect_err(422, "invalid_field", "malformed age recipient");
    assert_eq!(r.field().as_deref(), Some("age_recipient"));
}

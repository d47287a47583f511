//! The contact relay: the case system writes to a pseudonym, the vault delivers to the
//! reporter's contact — signed, to a real HTTP receiver, retried — and the case system never
//! sees the contact.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use ring::hmac;
use secrecy::SecretString;
use serde_json::{Value, json};
use vault_service::app::NotifierConfig;

use crate::flow::Cast;
use crate::harness::{ClockKind, Engine, Options, Person, assert_absent, spawn_app, spawn_with};

both_engines!(
    webhook_delivery_is_signed_and_retried,
    file_outbox_holds_only_masked_contacts,
    reporters_without_contact_cannot_be_messaged,
);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    timestamp: Option<String>,
    signature: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
    answered: u16,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
}

async fn receive(
    State(rx): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut got = rx.got.lock().expect("lock");
    // The gateway is down for the first attempt.
    let answered = if got.is_empty() { 500 } else { 200 };
    got.push(Received {
        timestamp: h("x-rv-timestamp"),
        signature: h("x-rv-signature"),
        content_type: h("content-type"),
        body: body.to_vec(),
        answered,
    });
    StatusCode::from_u16(answered).expect("status")
}

/// A gateway on loopback: fails the first request, accepts the rest.
async fn spawn_receiver() -> (String, Receiver, tokio::sync::oneshot::Sender<()>) {
    let rx = Receiver::default();
    let app = axum::Router::new()
        .route("/sms", axum::routing::post(receive))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await;
    });
    (format!("http://{addr}/sms"), rx, tx)
}

/// The signature, computed independently of the service's code.
fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = timestamp.as_bytes().to_vec();
    msg.push(b'.');
    msg.extend_from_slice(body);
    format!("sha256={}", hex::encode(hmac::sign(&key, &msg).as_ref()))
}

async fn webhook_delivery_is_signed_and_retried(engine: Engine) {
    let (url, receiver, _stop) = spawn_receiver().await;
    let secret = "gateway-shared-secret-0123456789";
    let app = spawn_with(
        engine,
        Options {
            notifier: NotifierConfig::Webhook {
                url,
                secret: Arc::new(SecretString::from(secret.to_owned())),
            },
            // Real time: the retry waits for its backoff.
            clock: ClockKind::System,
            ..Options::default()
        },
    )
    .await;
    let c = Cast::create(&app).await;
    let zs = Person::zhang_san();
    let p = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-001000", Some(&zs))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();

    let r = app
        .message(&c.cs.token, &p, "supplement_request", "请补充现场照片。")
        .await;
    let v = r.expect(202, "relay");
    assert_absent(&r.body, &zs.values(), "the relay answer");
    assert_eq!(v["status"], "queued");
    let message_id = v["id"].as_str().expect("id").to_owned();

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got = receiver.got.lock().expect("lock").clone();
        if got.iter().any(|g| g.answered == 200) {
            break got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered within 20 s; attempts so far: {}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(got.len(), 2, "one failed attempt, one delivery: {got:?}");
    for g in &got {
        assert_eq!(g.content_type.as_deref(), Some("application/json"));
        let ts = g.timestamp.as_deref().expect("x-rv-timestamp");
        let ts_num: i64 = ts.parse().expect("unix seconds");
        assert!(ts_num > 1_700_000_000, "timestamp {ts}");
        let sig = g.signature.as_deref().expect("x-rv-signature");
        assert_eq!(
            sig,
            expected_signature(secret, ts, &g.body),
            "signature of attempt"
        );
        assert_ne!(sig, expected_signature("wrong secret", ts, &g.body));
        let body: Value = serde_json::from_slice(&g.body).expect("JSON body");
        assert_eq!(body["message_id"], message_id.as_str());
        assert_eq!(body["pseudonym"], p.as_str());
        assert_eq!(body["kind"], "supplement_request");
        assert_eq!(body["body"], "请补充现场照片。");
        assert_eq!(body["contact"]["phone"], "13800138000");
        assert_eq!(body["contact"]["email"], zs.email.as_str());
        // The gateway needs the contact, not who the reporter is.
        for v in [&zs.name, &zs.id_number, &zs.bank_account, &zs.address] {
            assert!(
                !crate::harness::contains(&g.body, v.as_bytes()),
                "webhook body carries {v}"
            );
        }
    }

    // Delivered once: no further attempts.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        receiver.got.lock().expect("lock").len(),
        2,
        "delivered more than once"
    );

    // The trail records the relay without the contact.
    let events = app.events(&c.auditor.token).await;
    let relayed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"]["action"] == "message_relayed")
        .collect();
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0]["event"]["target"], message_id.as_str());
    let all = serde_json::to_vec(&events).expect("json");
    assert_absent(&all, &zs.values(), "the trail");
}

async fn file_outbox_holds_only_masked_contacts(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let zs = Person::zhang_san();
    let p = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-001100", Some(&zs))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let r = app
        .message(&c.cs.token, &p, "acceptance", "您的举报已受理。")
        .await;
    let v = r.expect(202, "relay");
    assert_absent(&r.body, &zs.values(), "the relay answer");
    let id = v["id"].as_str().expect("id").to_owned();

    let outbox = app.data_dir().join("outbox.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let line = loop {
        let text = std::fs::read_to_string(&outbox).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains(&id)) {
            break l.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no outbox line for {id}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let v: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(v["message_id"], id.as_str());
    assert_eq!(v["pseudonym"], p.as_str());
    assert_eq!(v["kind"], "acceptance");
    assert_eq!(v["body"], "您的举报已受理。");
    assert_eq!(v["to"]["phone"], "138****8000");
    assert_eq!(v["to"]["email"], "z***@example.cn");
    let bytes = std::fs::read(&outbox).expect("outbox");
    assert_absent(&bytes, &zs.values(), "outbox.jsonl");
    assert_absent(
        &bytes,
        &["38001380".to_owned()],
        "outbox.jsonl (phone middle digits)",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&outbox)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(
            mode & 0o077,
            0,
            "outbox.jsonl is readable by others: {mode:o}"
        );
    }
}

async fn reporters_without_contact_cannot_be_messaged(engine: Engine) {
    let app = spawn_app(engine).await;
    let c = Cast::create(&app).await;
    let anon = app
        .seal_ok(&c.cs.token, "140100", "SX-2026-001200", None)
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    app.message(&c.cs.token, &anon, "progress", "进展")
        .await
        .expect_err(409, "no_contact", "anonymous reporter");

    // A real name without phone or e-mail: nobody to deliver to either.
    let mut person = Person::nth(50).identity();
    person["phone"] = Value::Null;
    person["email"] = Value::Null;
    let p = app
        .seal(
            &c.cs.token,
            crate::harness::seal_body("140100", "SX-2026-001201", person),
        )
        .await
        .expect(201, "seal without contact")["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    app.message(&c.cs.token, &p, "progress", "进展")
        .await
        .expect_err(409, "no_contact", "reporter without contact");
    assert_eq!(app.storage.count_rows("outbox").await, 0, "nothing queued");

    // Refusals are in the trail.
    let events = app.events(&c.auditor.token).await;
    let refusals = events
        .iter()
        .filter(|e| e["event"]["action"] == "access_denied" && e["event"]["reason"] == "no_contact")
        .count();
    assert_eq!(refusals, 2);
}

/// The real binary configured with a webhook gateway starts, serves and delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_with_webhook_gateway_starts_and_delivers() {
    let (url, receiver, _stop) = spawn_receiver().await;
    let storage = crate::harness::Storage::new(Engine::Sqlite, None).await;
    let logs = tempfile::tempdir().expect("logs");
    let secret = "binary-gateway-secret";
    let mut bin = crate::harness::spawn_binary(
        &storage,
        logs.path(),
        &[
            ("RV_NOTIFY_WEBHOOK_URL", url.as_str()),
            ("RV_NOTIFY_WEBHOOK_SECRET", secret),
        ],
    )
    .await;
    let admin = bin.admin_token.clone();
    let cs = bin
        .call(
            reqwest::Method::POST,
            "/v1/principals",
            Some(&admin),
            crate::harness::Body::Json(
                json!({"name": "cs", "role": "case_system", "jurisdiction": "140100"}),
            ),
        )
        .await
        .expect(201, "principal");
    let t = cs["token"].as_str().expect("token").to_owned();
    let p = bin
        .call(
            reqwest::Method::POST,
            "/v1/reporters",
            Some(&t),
            crate::harness::Body::Json(crate::harness::seal_body(
                "140100",
                "SX-BIN-1",
                Person::zhang_san().identity(),
            )),
        )
        .await
        .expect(201, "seal")["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    bin.call(
        reqwest::Method::POST,
        &format!("/v1/pseudonyms/{p}/messages"),
        Some(&t),
        crate::harness::Body::Json(json!({"kind": "acceptance", "body": "已受理"})),
    )
    .await
    .expect(202, "relay");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = receiver.got.lock().expect("lock").clone();
        if let Some(g) = got.iter().find(|g| g.answered == 200) {
            let ts = g.timestamp.as_deref().expect("timestamp");
            assert_eq!(
                g.signature.as_deref(),
                Some(expected_signature(secret, ts, &g.body).as_str())
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the binary did not deliver"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = bin.terminate().await;
    assert!(status.success(), "exit status {status}");
    let out = bin.output();
    assert!(
        !crate::harness::contains(&out, secret.as_bytes()),
        "the webhook secret is in the log"
    );
    assert!(
        !crate::harness::contains(&out, b"13800138000"),
        "the phone is in the log"
    );
}

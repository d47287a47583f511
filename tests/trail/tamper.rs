//! Tampering, as a database superuser would do it (triggers dropped or disabled), caught by
//! the real `reporter-vault audit verify`, every kind on both engines; and the append-only
//! triggers refusing the same edits when they are not bypassed.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Row};
use vault_crypto::checkpoint::{Checkpoint, NoteVerifier};

use crate::harness::{Engine, Storage, TestApp, names_index, write_file};

/// A log with two signed checkpoints, the server stopped.
pub struct Fixture {
    pub storage: Arc<Storage>,
    /// Size of the first checkpoint.
    pub s1: u64,
    /// Size of the log and of the second (latest) checkpoint.
    pub n: u64,
    /// The first checkpoint's note.
    pub note1: String,
    /// The latest checkpoint as an auditor fetched it (`GET /v1/audit/checkpoint`).
    pub saved: String,
    /// `GET /v1/audit/public-key`.
    pub vkey: String,
}

impl Fixture {
    /// An index strictly between the two checkpoints (so the first checkpoint still holds).
    pub fn k(&self) -> u64 {
        self.s1 + 2
    }

    /// Writes the saved checkpoint where an auditor would keep it.
    pub fn saved_file(&self) -> PathBuf {
        write_file(
            self.storage.data_dir(),
            "auditor-saved-checkpoint.txt",
            &self.saved,
        )
    }
}

pub fn parse_note(vkey: &str, note: &str) -> Checkpoint {
    NoteVerifier::parse(vkey)
        .expect("the public key is a note verifier key")
        .verify(note)
        .unwrap_or_else(|e| panic!("checkpoint does not verify ({e}): {note:?}"))
}

pub fn identity(i: usize) -> serde_json::Value {
    json!({"name": format!("测试人{i}"), "phone": format!("1390013{:04}", i)})
}

/// Builds a log: bootstrap events, 4 seals, checkpoint 1, 5 seals and an opened disclosure
/// (so field MACs exist), checkpoint 2. The untampered log verifies.
pub async fn build(engine: Engine) -> Fixture {
    let app = TestApp::spawn(engine).await;
    for i in 0..4 {
        app.seal(identity(i)).await;
    }
    let note1 = app.sign_checkpoint().await;
    for i in 4..9 {
        app.seal(identity(i)).await;
    }
    let p = app.seal(identity(9)).await;
    app.disclose("case_system", &p, "verification_contact", &["phone"])
        .await;
    app.sign_checkpoint().await;
    let saved = app.latest_checkpoint().await;
    let vkey = app.public_key().await;
    let s1 = parse_note(&vkey, &note1).size;
    let n = parse_note(&vkey, &saved).size;
    let (events, size) = app.events().await;
    assert_eq!(size, n, "the latest checkpoint covers the whole log");
    assert_eq!(events.len() as u64, n);
    assert!(n >= s1 + 6, "room between the checkpoints: {s1} .. {n}");
    let storage = app.storage.clone();
    app.stop().await;
    let out = storage.cli(&["audit", "verify"]).await;
    assert!(out.ok(), "the untampered log must verify: {}", out.all());
    assert!(
        out.stdout.contains(&format!("ok: {n} events")),
        "verify reports every event: {}",
        out.all()
    );
    Fixture {
        storage,
        s1,
        n,
        note1,
        saved,
        vkey,
    }
}

/// A superuser's connection with the append-only triggers out of the way.
pub struct Superuser {
    conn: AnyConnection,
    engine: Engine,
}

const TRAIL_TABLES: [&str; 4] = [
    "audit_events",
    "audit_field_macs",
    "audit_nodes",
    "audit_checkpoints",
];

impl Superuser {
    pub async fn bypass(storage: &Storage) -> Superuser {
        let mut conn = storage.superuser().await;
        match storage.engine {
            Engine::Sqlite => {
                for t in TRAIL_TABLES {
                    for op in ["update", "delete"] {
                        sqlx::query(AssertSqlSafe(format!("DROP TRIGGER {t}_no_{op}")))
                            .execute(&mut conn)
                            .await
                            .unwrap_or_else(|e| panic!("DROP TRIGGER {t}_no_{op}: {e}"));
                    }
                }
            }
            Engine::Postgres => {
                for t in TRAIL_TABLES {
                    sqlx::query(AssertSqlSafe(format!(
                        "ALTER TABLE {t} DISABLE TRIGGER ALL"
                    )))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("disabling the triggers of {t}: {e}"));
                }
            }
        }
        Superuser {
            conn,
            engine: storage.engine,
        }
    }

    async fn exec(&mut self, sql: &str, binds: &[i64]) -> u64 {
        let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
        for b in binds {
            q = q.bind(*b);
        }
        q.execute(&mut self.conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .rows_affected()
    }

    pub async fn leaf(&mut self, idx: u64) -> Vec<u8> {
        sqlx::query("SELECT leaf FROM audit_events WHERE idx = $1")
            .bind(idx as i64)
            .fetch_one(&mut self.conn)
            .await
            .unwrap_or_else(|e| panic!("reading leaf {idx}: {e}"))
            .try_get("leaf")
            .expect("leaf column")
    }

    pub async fn set_leaf(&mut self, idx: u64, leaf: Vec<u8>) {
        let n = sqlx::query("UPDATE audit_events SET leaf = $1 WHERE idx = $2")
            .bind(leaf)
            .bind(idx as i64)
            .execute(&mut self.conn)
            .await
            .unwrap_or_else(|e| panic!("rewriting leaf {idx}: {e}"))
            .rows_affected();
        assert_eq!(n, 1, "leaf {idx} rewritten");
    }

    /// Deletes event `idx` (and its MAC rows).
    pub async fn delete_event(&mut self, idx: u64) {
        let i = idx as i64;
        self.exec("DELETE FROM audit_field_macs WHERE idx = $1", &[i])
            .await;
        let n = self
            .exec("DELETE FROM audit_events WHERE idx = $1", &[i])
            .await;
        assert_eq!(n, 1, "event {idx} deleted");
    }

    /// Deletes every event from `idx` on, with their MACs and every Merkle node covering
    /// them: what a careful superuser does so the service keeps appending afterwards.
    pub async fn delete_from(&mut self, idx: u64) {
        let i = idx as i64;
        self.exec("DELETE FROM audit_field_macs WHERE idx >= $1", &[i])
            .await;
        let n = self
            .exec("DELETE FROM audit_events WHERE idx >= $1", &[i])
            .await;
        assert!(n > 0, "events from {idx} deleted");
        for level in 0..40i64 {
            self.exec(
                "DELETE FROM audit_nodes WHERE level = $1 AND idx >= $2",
                &[level, i >> level],
            )
            .await;
        }
    }

    pub async fn delete_checkpoints_above(&mut self, size: u64) {
        self.exec(
            "DELETE FROM audit_checkpoints WHERE size > $1",
            &[size as i64],
        )
        .await;
    }

    pub async fn checkpoint_note(&mut self, size: u64) -> String {
        sqlx::query("SELECT note FROM audit_checkpoints WHERE size = $1")
            .bind(size as i64)
            .fetch_one(&mut self.conn)
            .await
            .unwrap_or_else(|e| panic!("reading checkpoint {size}: {e}"))
            .try_get("note")
            .expect("note column")
    }

    pub async fn set_checkpoint_note(&mut self, size: u64, note: &str) {
        let n = sqlx::query("UPDATE audit_checkpoints SET note = $1 WHERE size = $2")
            .bind(note.to_owned())
            .bind(size as i64)
            .execute(&mut self.conn)
            .await
            .unwrap_or_else(|e| panic!("rewriting checkpoint {size}: {e}"))
            .rows_affected();
        assert_eq!(n, 1, "checkpoint {size} rewritten");
    }

    /// Puts the triggers back (PostgreSQL), as someone covering their tracks would.
    pub async fn done(mut self) {
        if self.engine == Engine::Postgres {
            for t in TRAIL_TABLES {
                sqlx::query(AssertSqlSafe(format!("ALTER TABLE {t} ENABLE TRIGGER ALL")))
                    .execute(&mut self.conn)
                    .await
                    .unwrap_or_else(|e| panic!("enabling the triggers of {t}: {e}"));
            }
        }
        let _ = self.conn.close().await;
    }
}

/// The leaf with one digit of its `time` changed: still a canonical event, another hash.
pub fn change_time_digit(leaf: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(leaf).expect("leaves are UTF-8");
    let at = text.find("\"time\":\"").expect("a time field") + "\"time\":\"".len();
    let end = at + text[at..].find('"').expect("end of time");
    // The last digit of the seconds, just before the `Z`.
    let pos = end - 2;
    let mut out = leaf.to_vec();
    let d = out[pos];
    assert!(d.is_ascii_digit(), "seconds digit in {text}");
    out[pos] = if d == b'9' { b'0' } else { d + 1 };
    out
}

/// Replaces the signature bytes (after the 4-byte key id) of a note's last signature line.
pub fn replace_signature(note: &str, sig: &[u8]) -> String {
    let (body, line) = note.trim_end().rsplit_once('\n').expect("a signature line");
    let (prefix, b64) = line.rsplit_once(' ').expect("signature line shape");
    let mut blob = STANDARD.decode(b64).expect("signature base64");
    assert_eq!(blob.len(), 68, "key id + Ed25519 signature");
    blob.truncate(4);
    blob.extend_from_slice(sig);
    format!("{body}\n{prefix} {}\n", STANDARD.encode(blob))
}

pub fn signature_of(note: &str) -> Vec<u8> {
    let line = note
        .trim_end()
        .rsplit('\n')
        .next()
        .expect("a signature line");
    let b64 = line.rsplit(' ').next().expect("signature");
    STANDARD.decode(b64).expect("base64")[4..].to_vec()
}

#[track_caller]
fn assert_caught(out: &crate::harness::CliOut, k: u64, what: &str) {
    assert!(
        !out.ok(),
        "{what}: `audit verify` must fail, but it passed: {}",
        out.all()
    );
    assert!(
        names_index(&out.all(), k),
        "{what}: detected, but the message does not name the first bad index {k}: {}",
        out.all()
    );
}

async fn tamper_leaf_byte_structural(engine: Engine) {
    let f = build(engine).await;
    let k = f.k();
    let mut su = Superuser::bypass(&f.storage).await;
    let mut leaf = su.leaf(k).await;
    assert_eq!(leaf[0], b'{');
    leaf[0] = b'[';
    su.set_leaf(k, leaf).await;
    su.done().await;
    let out = f.storage.cli(&["audit", "verify"]).await;
    assert_caught(&out, k, "a leaf's first byte changed");
}

/// A value byte changed keeps the leaf canonical, so only the Merkle root shows it. The
/// stored level-0 node still holds the leaf's hash as appended, and the checkpoint before it
/// still verifies, so the verifier has what it needs to name the exact first bad index (the
/// issue: "exits non-zero naming the first bad index"), not just "below the checkpoint size".
async fn tamper_leaf_byte_in_value(engine: Engine) {
    let f = build(engine).await;
    let k = f.k();
    let mut su = Superuser::bypass(&f.storage).await;
    let leaf = su.leaf(k).await;
    su.set_leaf(k, change_time_digit(&leaf)).await;
    su.done().await;
    let out = f.storage.cli(&["audit", "verify"]).await;
    assert_caught(
        &out,
        k,
        "one digit of a leaf's time changed (still canonical)",
    );
}

async fn tamper_delete_row(engine: Engine) {
    let f = build(engine).await;
    let k = f.k();
    let mut su = Superuser::bypass(&f.storage).await;
    su.delete_event(k).await;
    su.done().await;
    let out = f.storage.cli(&["audit", "verify"]).await;
    assert_caught(&out, k, "a row deleted");
}

async fn tamper_swap_rows(engine: Engine) {
    let f = build(engine).await;
    let k = f.k();
    let j = k + 2;
    let mut su = Superuser::bypass(&f.storage).await;
    let (a, b) = (su.leaf(k).await, su.leaf(j).await);
    su.set_leaf(k, b).await;
    su.set_leaf(j, a).await;
    su.done().await;
    let out = f.storage.cli(&["audit", "verify"]).await;
    assert_caught(&out, k, "two rows' leaves swapped");
}

async fn tamper_truncate(engine: Engine) {
    let f = build(engine).await;
    let k = f.k();
    let mut su = Superuser::bypass(&f.storage).await;
    su.delete_from(k).await;
    su.done().await;
    assert_eq!(f.storage.count("audit_events").await, k as i64);
    let out = f.storage.cli(&["audit", "verify"]).await;
    assert_caught(&out, k, "the log truncated (tail deleted)");
}

async fn tamper_checkpoint_signature(engine: Engine) {
    let f = build(engine).await;
    let mut su = Superuser::bypass(&f.storage).await;
    let stored = su.checkpoint_note(f.s1).await;
    assert_eq!(stored, f.note1);
    // A genuine signature by the log key, but over another checkpoint.
    let borrowed = replace_signature(&stored, &signature_of(&f.saved));
    su.set_checkpoint_note(f.s1, &borrowed).await;
    let out = f.storage.cli(&["audit", "verify"]).await;
    let msg = out.all();
    assert!(!out.ok(), "a borrowed signature must fail: {msg}");
    assert!(
        msg.contains("signature") && msg.contains(&format!("size {}", f.s1)),
        "the message names the checkpoint (size {}) and its signature: {msg}",
        f.s1
    );
    // Random bytes of the right length.
    let random = replace_signature(&stored, &[0x5a; 64]);
    su.set_checkpoint_note(f.s1, &random).await;
    su.done().await;
    let out = f.storage.cli(&["audit", "verify"]).await;
    let msg = out.all();
    assert!(!out.ok(), "a random signature must fail: {msg}");
    assert!(
        msg.contains("signature") && msg.contains(&format!("size {}", f.s1)),
        "the message names the checkpoint (size {}) and its signature: {msg}",
        f.s1
    );
}

async fn tamper_rollback(engine: Engine) {
    let f = build(engine).await;
    let k = f.k();
    let saved = f.saved_file();
    let saved_arg = saved.to_str().expect("utf-8 path");
    let mut su = Superuser::bypass(&f.storage).await;
    su.delete_from(k).await;
    su.delete_checkpoints_above(k).await;
    su.done().await;
    assert_eq!(f.storage.count("audit_checkpoints").await, 1);

    // What is left is a consistent older state: only the auditor's saved checkpoint shows it.
    let out = f.storage.cli(&["audit", "verify"]).await;
    assert!(
        out.ok(),
        "precondition: the rolled-back log is self-consistent: {}",
        out.all()
    );
    let out = f
        .storage
        .cli(&["audit", "verify", "--checkpoint", saved_arg])
        .await;
    assert_caught(
        &out,
        k,
        "rolled back (tail events and later checkpoints deleted)",
    );

    // The service keeps going on the rolled-back log (a fork): still caught.
    let app = TestApp::start(&f.storage, Default::default()).await;
    let mut size = k;
    let mut i = 100;
    while size <= f.n + 1 {
        app.seal(identity(i)).await;
        i += 1;
        size = app.events().await.1;
    }
    app.sign_checkpoint().await;
    app.stop().await;
    let out = f.storage.cli(&["audit", "verify"]).await;
    assert!(out.ok(), "the fork is self-consistent: {}", out.all());
    let out = f
        .storage
        .cli(&["audit", "verify", "--checkpoint", saved_arg])
        .await;
    assert!(
        !out.ok(),
        "a fork past the saved checkpoint must fail against it: {}",
        out.all()
    );
}

/// Without bypassing the triggers, every UPDATE and DELETE (and on PostgreSQL TRUNCATE) of the
/// trail's tables is refused, even for the database owner or superuser.
async fn triggers_refuse_updates_and_deletes(engine: Engine) {
    let f = build(engine).await;
    let storage = &f.storage;
    let counts_before = {
        let mut v = Vec::new();
        for t in TRAIL_TABLES {
            v.push(storage.count(t).await);
        }
        v
    };
    assert!(counts_before.iter().all(|n| *n > 0), "{counts_before:?}");
    let mut conn = storage.superuser().await;
    let mut statements = vec![
        "UPDATE audit_events SET leaf = leaf WHERE idx = 1".to_owned(),
        "UPDATE audit_events SET action = 'x' WHERE idx = 1".to_owned(),
        "DELETE FROM audit_events WHERE idx = 1".to_owned(),
        format!("DELETE FROM audit_events WHERE idx >= {}", f.k()),
        "UPDATE audit_nodes SET hash = hash WHERE level = 0 AND idx = 0".to_owned(),
        "DELETE FROM audit_nodes WHERE level = 0 AND idx = 0".to_owned(),
        "UPDATE audit_checkpoints SET note = note".to_owned(),
        format!("DELETE FROM audit_checkpoints WHERE size = {}", f.n),
        "UPDATE audit_field_macs SET mac = mac".to_owned(),
        "DELETE FROM audit_field_macs".to_owned(),
    ];
    if engine == Engine::Postgres {
        for t in TRAIL_TABLES {
            statements.push(format!("TRUNCATE {t} CASCADE"));
        }
    }
    for sql in &statements {
        match sqlx::query(AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
        {
            Ok(r) => panic!(
                "{sql}: the append-only trigger let it through ({} rows)",
                r.rows_affected()
            ),
            Err(e) => assert!(
                e.to_string().contains("append-only"),
                "{sql}: refused, but not by the append-only trigger: {e}"
            ),
        }
    }
    let _ = conn.close().await;
    for (t, before) in TRAIL_TABLES.iter().zip(&counts_before) {
        assert_eq!(storage.count(t).await, *before, "{t} unchanged");
    }
    let out = storage.cli(&["audit", "verify"]).await;
    assert!(out.ok(), "still verifies: {}", out.all());
}

both_engines!(
    tamper_leaf_byte_structural,
    tamper_leaf_byte_in_value,
    tamper_delete_row,
    tamper_swap_rows,
    tamper_truncate,
    tamper_checkpoint_signature,
    tamper_rollback,
    triggers_refuse_updates_and_deletes,
);

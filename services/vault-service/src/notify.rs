//! Contact relay delivery: a webhook to the department's SMS/e-mail gateway (production) or
//! a JSON-lines file in the data directory (embedded default). The case system never sees
//! the contact; only the gateway does, because delivering is its job.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::AsyncWriteExt;
use vault_domain::Vault;
use vault_domain::clock::{Clock, rfc3339_cst};
use vault_domain::ports::{Delivery, Notifier};

/// POSTs each message as JSON to a gateway URL, signed with HMAC-SHA256.
///
/// Headers: `x-rv-timestamp` (unix seconds) and
/// `x-rv-signature: sha256=<hex HMAC-SHA256(secret, timestamp ‖ "." ‖ body)>`, so the gateway
/// can reject forged and replayed requests.
pub struct WebhookNotifier {
    url: String,
    key: hmac::Key,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl WebhookNotifier {
    /// A notifier posting to `url`, signing with `secret`.
    pub fn new(url: String, secret: &SecretString, clock: Arc<dyn Clock>) -> Result<Self, String> {
        // reqwest is built without a default TLS crypto provider: use ring, the project's
        // one cryptographic library. Installing twice is harmless (the first one stays).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(Self {
            url,
            // The one use of the webhook secret: the HMAC key.
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes()),
            client,
            clock,
        })
    }
}

#[derive(serde::Serialize)]
struct WebhookBody<'a> {
    message_id: &'a str,
    pseudonym: &'a str,
    kind: &'a str,
    body: &'a str,
    contact: Contact<'a>,
}

#[derive(serde::Serialize)]
struct Contact<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
}

/// The signature header value for `timestamp` and `body`.
pub fn webhook_signature(key: &hmac::Key, timestamp: i64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn deliver(&self, d: &Delivery<'_>) -> Result<(), String> {
        let body = zeroize::Zeroizing::new(
            serde_json::to_vec(&WebhookBody {
                message_id: d.message_id,
                pseudonym: d.pseudonym,
                kind: d.kind.as_str(),
                body: d.body,
                contact: Contact {
                    phone: d.phone,
                    email: d.email,
                },
            })
            .map_err(|_| "encode".to_owned())?,
        );
        let ts = self.clock.now().unix_timestamp();
        let sig = webhook_signature(&self.key, ts, &body);
        let res = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-rv-timestamp", ts.to_string())
            .header("x-rv-signature", sig)
            .body(body.to_vec())
            .send()
            .await
            // reqwest errors name the URL, never the body.
            .map_err(|e| format!("webhook request failed: {}", e.without_url()))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {}", res.status().as_u16()))
        }
    }
}

/// Development delivery: one JSON line per message in `DATA_DIR/outbox.jsonl`, with the
/// contact masked (`138****8000`) so the file never holds a reporter's contact.
pub struct FileNotifier {
    path: PathBuf,
    clock: Arc<dyn Clock>,
}

impl FileNotifier {
    /// Appends to `path`.
    pub fn new(path: PathBuf, clock: Arc<dyn Clock>) -> Self {
        Self { path, clock }
    }
}

/// Masks all but the first three and last four characters (phones), or the local part of an
/// e-mail address after its first character.
pub fn mask_contact(v: &str) -> String {
    if let Some((local, domain)) = v.split_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = v.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars.iter().take(3).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

#[async_trait]
impl Notifier for FileNotifier {
    async fn deliver(&self, d: &Delivery<'_>) -> Result<(), String> {
        let line = serde_json::json!({
            "delivered_at": rfc3339_cst(self.clock.now()),
            "message_id": d.message_id,
            "pseudonym": d.pseudonym,
            "kind": d.kind.as_str(),
            "body": d.body,
            "to": {
                "phone": d.phone.map(mask_contact),
                "email": d.email.map(mask_contact),
            },
        });
        let mut bytes = serde_json::to_vec(&line).map_err(|_| "encode".to_owned())?;
        bytes.push(b'\n');
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .await
            .map_err(|e| format!("outbox file: {}", e.kind()))?;
        f.write_all(&bytes)
            .await
            .map_err(|e| format!("outbox file: {}", e.kind()))?;
        f.sync_data()
            .await
            .map_err(|e| format!("outbox file: {}", e.kind()))
    }
}

/// Runs deliveries until `shutdown` fires: every `interval`, or at once when woken.
pub async fn run_worker(
    vault: Vault,
    notifier: Arc<dyn Notifier>,
    wake: Arc<tokio::sync::Notify>,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match vault.deliver_due_messages(notifier.as_ref(), 50).await {
            Ok(n) if n > 0 => tracing::info!(delivered = n, "relayed messages"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "message delivery round failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = wake.notified() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_what_a_reporter_would_recognise() {
        assert_eq!(mask_contact("13800138000"), "138****8000");
        assert_eq!(mask_contact("01012345678"), "010****5678");
        assert_eq!(mask_contact("zhang@example.cn"), "z***@example.cn");
        assert!(!mask_contact("13800138000").contains("0013800"));
    }

    #[test]
    fn signature_is_hmac_over_timestamp_dot_body() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"secret");
        let sig = webhook_signature(&key, 1_700_000_000, b"{}");
        let expected = hmac::sign(&key, b"1700000000.{}");
        assert_eq!(sig, format!("sha256={}", hex::encode(expected.as_ref())));
        assert_ne!(sig, webhook_signature(&key, 1_700_000_001, b"{}"));
    }
}

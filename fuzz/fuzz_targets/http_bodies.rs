//! JSON request bodies (and query strings) through the real router, in process, on a SQLite
//! store: exactly what the server does with a request's bytes (`RawJson`/`JsonBody`,
//! `parse_json`, each DTO's field parsing, the domain call, the error shaping).
//!
//! Input: byte 0 selects the endpoint (`vault_fuzz::http::ENDPOINTS`), byte 1 holds flags
//! (bit 0: the pending rather than the approved reward in the path; bit 1: send an
//! `Idempotency-Key`), the rest is the JSON body (POST) or the query string (GET). Markers
//! `@P@`, `@A@`, `@C@`, `@D@`, `@R@`, `@Q@` in it name the seeded records.
//!
//! Properties beyond "never panics" (a handler panic would be caught by the router's
//! `CatchPanicLayer` and answered 500, so a 5xx is treated as a crash):
//! * no 5xx answer, whatever the body;
//! * every answer has an `x-request-id`; every error answer is the contract's JSON error
//!   shape (`{"error": {"code", "message"}, "request_id"}`);
//! * no answer echoes identity data from the body: a digit-bearing value sent as an identity
//!   field, a leak-trace value or a claim code never appears in the answer.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vault_fuzz::http::{ENDPOINTS, Harness};

/// Strings of the body that are identity data (and so must never be echoed), with the
/// strings that are not (an echo of those may legitimately contain the same text).
fn secrets_and_public(body: &Value) -> (Vec<String>, Vec<String>) {
    fn walk(v: &Value, secret: bool, key: &str, s: &mut Vec<String>, p: &mut Vec<String>) {
        match v {
            Value::String(t) => {
                if secret || matches!(key, "value" | "claim_code") {
                    s.push(t.clone());
                } else {
                    p.push(t.clone());
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, secret, key, s, p)),
            Value::Object(o) => {
                for (k, x) in o {
                    p.push(k.clone());
                    walk(x, secret || k == "identity", k, s, p);
                }
            }
            other => p.push(other.to_string()),
        }
    }
    let (mut s, mut p) = (Vec::new(), Vec::new());
    walk(body, false, "", &mut s, &mut p);
    (s, p)
}

/// Looks like identity data worth checking for: at least 8 characters and 6 digits, so it
/// cannot be a word of an error message or a small number (a line or column).
fn data_like(s: &str) -> bool {
    s.chars().count() >= 8 && s.chars().filter(char::is_ascii_digit).count() >= 6
}

fuzz_target!(|data: &[u8]| {
    let [sel, flags, rest @ ..] = data else {
        return;
    };
    let h = Harness::get();
    let e = ENDPOINTS[usize::from(*sel) % ENDPOINTS.len()];
    let path = h.path(&e, flags & 1 == 1);
    let input = h.expand(rest);
    let mut headers = Vec::new();
    if flags & 2 == 2 {
        headers.push(("idempotency-key", "fuzz-key-1"));
    }
    let (uri, body) = if e.method == "GET" {
        let Ok(q) = std::str::from_utf8(&input) else {
            return;
        };
        (format!("{path}?{q}"), Vec::new())
    } else {
        (path.clone(), input.clone())
    };
    let Some(a) = h.call(e.method, &uri, Some(e.who), &headers, body) else {
        return;
    };
    let text = String::from_utf8_lossy(&a.body);
    assert!(
        !a.status.is_server_error(),
        "{} {uri} answered {}: {text}",
        e.method,
        a.status
    );
    assert!(a.has_request_id, "no x-request-id");
    if a.status.is_client_error() {
        let v: Value = serde_json::from_slice(&a.body)
            .unwrap_or_else(|err| panic!("error body is not JSON ({err}): {text}"));
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "error body without the contract's shape: {text}"
        );
        assert!(
            a.content_type.as_deref().is_some_and(|c| c.starts_with("application/json")),
            "error answer content-type {:?}",
            a.content_type
        );
    }
    if e.method == "POST"
        && let Ok(req) = serde_json::from_slice::<Value>(&input)
    {
        let (secrets, public) = secrets_and_public(&req);
        for s in secrets.iter().filter(|s| data_like(s)) {
            let elsewhere = public.iter().any(|p| p.contains(s.as_str()))
                || path.contains(s.as_str());
            assert!(
                elsewhere || !text.contains(s.as_str()),
                "{} {uri} ({}) echoed identity data {s:?}: {text}",
                e.method,
                a.status
            );
        }
    }
});

//! Abuse limits, each measured against the real binary:
//!
//! * rate limits: disclosure requests per principal (`RV_DISCLOSURE_REQUESTS_PER_MINUTE`),
//!   leak traces per auditor (`RV_LEAK_TRACES_PER_MINUTE`), claim-code attempts per reward
//!   (5 per 10 minutes): the limit+1st attempt is 429, other principals and rewards are not
//!   affected, and the refusal is an `access_denied` event with reason `rate_limited`;
//! * bodies: over `RV_MAX_BODY_BYTES` is 413 without the whole body being read; 100k nested
//!   `[` is a prompt 4xx and the server lives on;
//! * slow clients: a head trickled a byte a second is cut off after
//!   `RV_HEADER_TIMEOUT_SECONDS`; a body trickled after the head is answered 408 after
//!   `RV_BODY_TIMEOUT_SECONDS`; 200 slow-loris connections do not slow normal requests;
//! * `RV_MAX_CONNECTIONS`: with the cap reached by idle connections, what a new request sees.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{
    Server, Store, client, disclosure_body, identity, percentile, request, seal_body,
};

/// Every event of the trail (auditor).
async fn events(server: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let page = server
            .get(
                &format!("/v1/audit/events?start={}&limit=1000", out.len()),
                "auditor",
            )
            .await
            .expect(200, "events");
        let evs = page["events"].as_array().cloned().unwrap_or_default();
        if evs.is_empty() {
            return out;
        }
        out.extend(evs.into_iter().map(|e| e["event"].clone()));
    }
}

fn rate_limited_by<'a>(evs: &'a [Value], actor: &str) -> Vec<&'a Value> {
    evs.iter()
        .filter(|e| {
            e["action"] == "access_denied"
                && e["reason"] == "rate_limited"
                && e["actor_id"] == actor
        })
        .collect()
}

async fn seal_p(server: &Server, n: u64) -> String {
    server
        .post(
            "/v1/reporters",
            "case_system",
            seal_body("140100", &format!("RB-L-{n}"), identity(n)),
        )
        .await
        .expect(201, "seal")["pseudonym"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disclosure_requests_rate_limited() {
    let _w = crate::harness::watchdog("disclosure_requests_rate_limited");
    let store = Store::sqlite();
    let server = Server::start(&store, &[]).await;
    let p = seal_p(&server, 5_000_000).await;
    let other = server.principal("case_system", "另一案件系统").await;
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..32 {
        let r = server
            .post("/v1/disclosures", "case_system", disclosure_body(&p))
            .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.code(), "rate_limited", "{}", r.text());
        }
    }
    let took = started.elapsed();
    let accepted = statuses.iter().take_while(|s| **s == 201).count();
    let o = server
        .call(
            Method::POST,
            "/v1/disclosures",
            Some(&other.token),
            Some(&disclosure_body(&p)),
        )
        .await;
    let evs = events(&server).await;
    let denied = rate_limited_by(&evs, &server.id("case_system"));
    let requested = evs
        .iter()
        .filter(|e| e["action"] == "disclosure_requested")
        .count();
    eprintln!(
        "disclosure requests: {accepted} accepted, then {:?} (32 in {took:.2?}); another \
         principal: {}; rate_limited events {}; disclosure_requested events {requested}",
        &statuses[accepted..],
        o.status,
        denied.len()
    );
    assert_eq!(
        accepted, 30,
        "the default limit is 30 a minute: {statuses:?}"
    );
    assert_eq!(&statuses[30..], &[429, 429], "{statuses:?}");
    assert_eq!(
        o.status,
        201,
        "another principal is unaffected: {}",
        o.text()
    );
    assert_eq!(
        denied.len(),
        2,
        "one access_denied (rate_limited) per refusal"
    );
    assert_eq!(
        denied[0]["attempted"]
            .as_str()
            .or(denied[0]["detail"]["attempted"].as_str()),
        Some("request disclosures"),
        "{}",
        denied[0]
    );
    assert_eq!(requested, 31, "nothing was requested beyond the limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_traces_rate_limited() {
    let _w = crate::harness::watchdog("leak_traces_rate_limited");
    let store = Store::sqlite();
    let server = Server::start(&store, &[]).await;
    let other = server.principal("auditor", "另一审计").await;
    let body = json!({"field": "phone", "value": "13800138000"});
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..32 {
        let r = server
            .post("/v1/audit/leak-trace", "auditor", body.clone())
            .await;
        statuses.push(r.status);
    }
    let took = started.elapsed();
    let accepted = statuses.iter().take_while(|s| **s == 200).count();
    let o = server
        .call(
            Method::POST,
            "/v1/audit/leak-trace",
            Some(&other.token),
            Some(&body),
        )
        .await;
    let evs = events(&server).await;
    let denied = rate_limited_by(&evs, &server.id("auditor"));
    let traces = evs.iter().filter(|e| e["action"] == "leak_trace").count();
    eprintln!(
        "leak traces: {accepted} accepted, then {:?} (32 in {took:.2?}); another auditor: {}; \
         rate_limited events {}; leak_trace events {traces}",
        &statuses[accepted..],
        o.status,
        denied.len()
    );
    assert_eq!(
        accepted, 30,
        "the default limit is 30 a minute: {statuses:?}"
    );
    assert_eq!(&statuses[30..], &[429, 429], "{statuses:?}");
    assert_eq!(o.status, 200, "another auditor is unaffected: {}", o.text());
    assert_eq!(
        denied.len(),
        2,
        "one access_denied (rate_limited) per refusal"
    );
    assert_eq!(traces, 31, "a refused trace is not a trace");
}

/// An anonymous report in Shanxi (housing construction rewards anonymous reports), a reward
/// for it, approved; returns (reward id, claim code).
async fn anonymous_reward(server: &Server, case: &str) -> (String, String) {
    let v = server
        .post(
            "/v1/reporters",
            "case_system",
            seal_body("140100", case, Value::Null),
        )
        .await
        .expect(201, "anonymous seal");
    let p = v["pseudonym"].as_str().unwrap().to_owned();
    let code = v["claim_code"].as_str().expect("a claim code").to_owned();
    let mut body = crate::harness::reward_body(case, &p);
    body["jurisdiction"] = json!("140100");
    body["industry"] = json!("housing_construction");
    body["outcome"] = json!({"kind": "major_hazard", "penalty": "100000.00"});
    let id = server
        .post("/v1/rewards", "case_system", body)
        .await
        .expect(201, "file")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut v = server
        .post(&format!("/v1/rewards/{id}/approve"), "finance", json!({}))
        .await
        .expect(200, "approve");
    if v["status"] == "pending_approval" {
        v = server
            .post(&format!("/v1/rewards/{id}/approve"), "finance2", json!({}))
            .await
            .expect(200, "second approval");
    }
    assert_eq!(v["status"], "approved", "{v}");
    (id, code)
}

fn wrong_code(code: &str) -> String {
    let first = code.chars().next().unwrap();
    format!(
        "{}{}",
        if first == '7' { '8' } else { '7' },
        &code[first.len_utf8()..]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_code_attempts_rate_limited() {
    let _w = crate::harness::watchdog("claim_code_attempts_rate_limited");
    let store = Store::sqlite();
    let server = Server::start(&store, &[]).await;
    let (a, code_a) = anonymous_reward(&server, "RB-CLAIM-A").await;
    let (b, code_b) = anonymous_reward(&server, "RB-CLAIM-B").await;
    let claims = |id: &str| format!("/v1/rewards/{id}/claims");
    let mut statuses = Vec::new();
    let mut lat = Vec::new();
    for _ in 0..5 {
        let r = server
            .post(
                &claims(&a),
                "case_system",
                json!({"claim_code": wrong_code(&code_a)}),
            )
            .await;
        statuses.push((r.status, r.code()));
        lat.push(r.elapsed);
    }
    let sixth = server
        .post(&claims(&a), "case_system", json!({"claim_code": code_a}))
        .await;
    // Another reward is not affected: a wrong code is still 422 there, the right one claims.
    let b_wrong = server
        .post(
            &claims(&b),
            "case_system",
            json!({"claim_code": wrong_code(&code_b)}),
        )
        .await;
    let b_right = server
        .post(&claims(&b), "case_system", json!({"claim_code": code_b}))
        .await;
    let va = server
        .get(&format!("/v1/rewards/{a}"), "finance")
        .await
        .json();
    let evs = events(&server).await;
    let limited = evs
        .iter()
        .filter(|e| {
            e["action"] == "access_denied"
                && e["reason"] == "rate_limited"
                && e["target"] == a.as_str()
        })
        .count();
    let wrong = evs
        .iter()
        .filter(|e| {
            e["action"] == "access_denied"
                && e["reason"] == "wrong_claim_code"
                && e["target"] == a.as_str()
        })
        .count();
    let mut l = lat.clone();
    eprintln!(
        "claim codes: 5 wrong attempts {statuses:?} (p50 {:.1?} each, Argon2id), the right code \
         6th: {} {}; reward B: wrong {} then right {}; events for A: {wrong} wrong_claim_code, \
         {limited} rate_limited",
        percentile(&mut l, 50),
        sixth.status,
        sixth.code(),
        b_wrong.status,
        b_right.status
    );
    for (s, c) in &statuses {
        assert_eq!((*s, c.as_str()), (422, "invalid_field"), "a wrong code");
    }
    assert_eq!(
        sixth.status,
        429,
        "the 6th attempt within 10 minutes: {}",
        sixth.text()
    );
    assert_eq!(sixth.code(), "rate_limited");
    assert_eq!(va["status"], "approved", "A was not claimed: {va}");
    assert_eq!(b_wrong.status, 422, "{}", b_wrong.text());
    assert_eq!(b_right.status, 200, "{}", b_right.text());
    assert_eq!(b_right.json()["status"], "claimed");
    assert_eq!((wrong, limited), (5, 1), "the trail records every refusal");
}

// ------------------------------------------------------------------------------------------
// Bodies
// ------------------------------------------------------------------------------------------

/// Reads an HTTP/1.1 answer's status line and whatever follows, until the peer closes or
/// `limit` passes; returns (status, bytes read, time to the first byte, whether it closed).
async fn read_answer(
    s: &mut TcpStream,
    limit: Duration,
) -> (Option<u16>, Vec<u8>, Option<Duration>, bool) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut first = None;
    let mut closed = false;
    let mut chunk = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                first.get_or_insert(started.elapsed());
                buf.extend_from_slice(&chunk[..n]);
                // A complete answer with a Content-Length: stop.
                if let Some(end) = find(&buf, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    if let Some(cl) = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        && buf.len() >= end + 4 + cl
                    {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    let status = std::str::from_utf8(&buf)
        .ok()
        .and_then(|t| t.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    (status, buf, first, closed)
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn head(server: &Server, path: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\ncontent-type: \
         application/json\r\n{extra}\r\n",
        server.addr,
        server.token("case_system")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies() {
    let _w = crate::harness::watchdog("oversized_bodies");
    let store = Store::sqlite();
    let server = Server::start(&store, &[]).await;

    // (1) Content-Length 100 MB, 128 KiB sent, then nothing: 413 at once.
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(head(&server, "/v1/reporters", "content-length: 100000000\r\n").as_bytes())
        .await
        .expect("head");
    let chunk = vec![b' '; 128 * 1024];
    let sent_at = Instant::now();
    let _ = s.write_all(&chunk).await;
    let (status, _, first, closed) = read_answer(&mut s, Duration::from_secs(5)).await;
    eprintln!(
        "body of 100 MB announced, 128 KiB sent: {status:?} after {first:.1?} (since the last \
         byte sent: {:.1?}), connection closed: {closed}",
        sent_at.elapsed()
    );
    assert_eq!(status, Some(413), "over the limit");
    assert!(
        first.is_some_and(|t| t < Duration::from_secs(1)),
        "413 promptly, without waiting for the other 99.9 MB: {first:?}"
    );

    // (2) Content-Length 100 MB and no body at all: refused on the announced length?
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(head(&server, "/v1/reporters", "content-length: 100000000\r\n").as_bytes())
        .await
        .expect("head");
    let (status2, _, first2, _) = read_answer(&mut s, Duration::from_secs(4)).await;
    eprintln!(
        "body of 100 MB announced, none sent: {status2:?} after {first2:.1?} (a 413 on the \
         announced length needs no body byte; otherwise the body timeout decides)"
    );

    // (3) Chunked, 1 MiB: 413 as well.
    let mut s = TcpStream::connect(server.addr).await.expect("connect");
    s.write_all(head(&server, "/v1/reporters", "transfer-encoding: chunked\r\n").as_bytes())
        .await
        .expect("head");
    let mut sent = 0usize;
    let piece = format!("{:x}\r\n{}\r\n", 16 * 1024, " ".repeat(16 * 1024));
    while sent < 1024 * 1024 {
        if s.write_all(piece.as_bytes()).await.is_err() {
            break;
        }
        sent += 16 * 1024;
    }
    let (status3, _, _, _) = read_answer(&mut s, Duration::from_secs(5)).await;
    eprintln!("chunked body, {sent} bytes written before the answer/close: {status3:?}");
    assert_eq!(status3, Some(413), "a chunked body over the limit");

    // (4) Exactly at the limit is read (and judged on its content, not its size).
    let mut body =
        serde_json::to_vec(&seal_body("140100", "RB-AT-LIMIT", identity(5_100_000))).unwrap();
    body.pop();
    let pad = 65536 - body.len() - 1;
    body.extend(std::iter::repeat_n(b' ', pad));
    body.push(b'}');
    assert_eq!(body.len(), 65536);
    let t = server.token("case_system");
    let r = server
        .client
        .post(format!("{}/v1/reporters", server.base))
        .header("authorization", format!("Bearer {t}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    eprintln!("a valid seal of exactly 65536 bytes: {}", r.status());
    assert_eq!(r.status().as_u16(), 201, "at the limit is allowed");
    let _ = status2;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_json() {
    let _w = crate::harness::watchdog("deeply_nested_json");
    let store = Store::sqlite();
    // A body limit large enough that the nesting, not the size, is what is judged.
    let server = Server::start(&store, &[("RV_MAX_BODY_BYTES", "4000000")]).await;
    let t = server.token("case_system");
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("100k [", vec![b'['; 100_000]),
        ("1M [", vec![b'['; 1_000_000]),
        ("100k [ closed", {
            let mut v = vec![b'['; 100_000];
            v.extend(vec![b']'; 100_000]);
            v
        }),
        ("identity: 100k {\"a\":", {
            let mut v = b"{\"identity\":".to_vec();
            for _ in 0..100_000 {
                v.extend_from_slice(b"{\"a\":");
            }
            v
        }),
        ("60k [ (under the default limit)", vec![b'['; 60_000]),
    ];
    for (what, body) in bodies {
        let started = Instant::now();
        let r = server
            .client
            .post(format!("{}/v1/reporters", server.base))
            .header("authorization", format!("Bearer {t}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let took = started.elapsed();
        let (status, text) = match r {
            Ok(r) => {
                let s = r.status().as_u16();
                (Some(s), r.text().await.unwrap_or_default())
            }
            Err(e) => (None, e.to_string()),
        };
        eprintln!("nested JSON {what}: {status:?} in {took:.1?}: {text}");
        assert!(
            status.is_some_and(|s| (400..500).contains(&s)),
            "{what}: a 4xx, got {status:?} {text}"
        );
        assert!(
            took < Duration::from_secs(2),
            "{what}: answered after {took:?}"
        );
    }
    server
        .call(Method::GET, "/healthz", None, None)
        .await
        .expect(200, "still alive");
    seal_p(&server, 5_200_000).await;
}

// ------------------------------------------------------------------------------------------
// Slow clients
// ------------------------------------------------------------------------------------------

const HEAD_TIMEOUT: &str = "2";
const BODY_TIMEOUT: &str = "2";

fn slow_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("RV_HEADER_TIMEOUT_SECONDS", HEAD_TIMEOUT),
        ("RV_BODY_TIMEOUT_SECONDS", BODY_TIMEOUT),
    ]
}

/// Sends `bytes` one per `every` until the peer closes; returns when it noticed the close
/// (since connecting) and how many bytes went out, or None if it never closed within `limit`.
async fn trickle(
    addr: std::net::SocketAddr,
    prefix: &[u8],
    bytes: &[u8],
    every: Duration,
    limit: Duration,
) -> (Option<Duration>, usize, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    if !prefix.is_empty() {
        s.write_all(prefix).await.expect("prefix");
    }
    let (mut rd, mut wr) = s.into_split();
    let got = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let closed_at = Arc::new(tokio::sync::Mutex::new(None));
    let reader = {
        let got = got.clone();
        let closed_at = closed_at.clone();
        tokio::spawn(async move {
            let mut b = [0u8; 1024];
            loop {
                match rd.read(&mut b).await {
                    Ok(0) | Err(_) => {
                        *closed_at.lock().await = Some(started.elapsed());
                        return;
                    }
                    Ok(n) => got.lock().await.extend_from_slice(&b[..n]),
                }
            }
        })
    };
    let mut sent = 0;
    for b in bytes {
        if closed_at.lock().await.is_some() || started.elapsed() > limit {
            break;
        }
        if wr.write_all(&[*b]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(every).await;
    }
    while closed_at.lock().await.is_none() && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader.abort();
    let at = *closed_at.lock().await;
    let got = got.lock().await.clone();
    (at, sent, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_head() {
    let _w = crate::harness::watchdog("slow_loris_head");
    let store = Store::sqlite();
    let server = Server::start(&store, &slow_env()).await;
    let head = head(&server, "/v1/reporters", "content-length: 2\r\n");
    // A head trickled a byte a second, and a connection that sends nothing at all.
    let (a, b) = tokio::join!(
        trickle(
            server.addr,
            b"",
            head.as_bytes(),
            Duration::from_secs(1),
            Duration::from_secs(8)
        ),
        trickle(
            server.addr,
            b"",
            b"",
            Duration::from_secs(1),
            Duration::from_secs(8)
        ),
    );
    eprintln!(
        "slow-loris head (1 byte/s, RV_HEADER_TIMEOUT_SECONDS={HEAD_TIMEOUT}): closed after \
         {:.2?}, {} bytes sent, answer {:?}; a silent connection: closed after {:.2?}",
        a.0,
        a.1,
        String::from_utf8_lossy(&a.2).lines().next(),
        b.0
    );
    for (what, closed) in [("trickled head", a.0), ("silent connection", b.0)] {
        let t = closed.unwrap_or_else(|| panic!("{what}: still open after 8 s"));
        assert!(
            t >= Duration::from_millis(1500) && t < Duration::from_millis(3500),
            "{what}: closed after {t:?}; the header timeout is {HEAD_TIMEOUT} s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body() {
    let _w = crate::harness::watchdog("slow_body");
    let store = Store::sqlite();
    let server = Server::start(&store, &slow_env()).await;
    let body = serde_json::to_vec(&seal_body("140100", "RB-SLOW", identity(5_300_000))).unwrap();
    let head = head(
        &server,
        "/v1/reporters",
        &format!("content-length: {}\r\n", body.len()),
    );
    // Without a token the answer (401) comes before any body byte is read.
    let anon_head = format!(
        "POST /v1/reporters HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    // The head at once, then (a) nothing, (b) the body a byte every 500 ms, (c) the same
    // without a token.
    let (a, b, c) = tokio::join!(
        trickle(
            server.addr,
            head.as_bytes(),
            b"",
            Duration::from_millis(500),
            Duration::from_secs(8)
        ),
        trickle(
            server.addr,
            head.as_bytes(),
            &body,
            Duration::from_millis(500),
            Duration::from_secs(8)
        ),
        trickle(
            server.addr,
            anon_head.as_bytes(),
            &body,
            Duration::from_millis(500),
            Duration::from_secs(8)
        ),
    );
    let status = |got: &[u8]| {
        String::from_utf8_lossy(got)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    eprintln!(
        "slow body (RV_BODY_TIMEOUT_SECONDS={BODY_TIMEOUT}): head then nothing: {:?} closed \
         after {:.2?}; head then a byte every 500 ms: {:?} closed after {:.2?} with {} of {} \
         body bytes sent; without a token: {:?} closed after {:.2?}",
        status(&a.2),
        a.0,
        status(&b.2),
        b.0,
        b.1,
        body.len(),
        status(&c.2),
        c.0
    );
    let mut problems = Vec::new();
    for (what, (closed, _, got)) in [("stalled body", &a), ("trickled body", &b)] {
        let line = status(got);
        if !line.contains(" 408") {
            problems.push(format!(
                "{what}: expected a 408, got {line:?} (closed after {closed:?})"
            ));
        }
        match closed {
            Some(t) if *t < Duration::from_millis(3500) => {}
            other => problems.push(format!(
                "{what}: the connection was still held after {other:?} (body timeout \
                 {BODY_TIMEOUT} s)"
            )),
        }
    }
    if !status(&c.2).contains(" 401") || c.0.is_none_or(|t| t > Duration::from_millis(3500)) {
        problems.push(format!(
            "without a token: {:?}, closed after {:?}",
            status(&c.2),
            c.0
        ));
    }
    assert!(problems.is_empty(), "slow bodies:\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_loris_crowd_does_not_starve_others() {
    let _w = crate::harness::watchdog("slow_loris_crowd_does_not_starve_others");
    let store = Store::sqlite();
    let server = Server::start(&store, &slow_env()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicUsize::new(0));
    let cut = Arc::new(AtomicUsize::new(0));
    let head = head(&server, "/v1/reporters", "content-length: 2\r\n").into_bytes();
    let mut loris = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (stop, open, cut, head, addr) = (
            stop.clone(),
            open.clone(),
            cut.clone(),
            head.clone(),
            server.addr,
        );
        loris.spawn(async move {
            // Reconnects whenever the server cuts it off, so 200 stay open.
            while !stop.load(Ordering::SeqCst) {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                open.fetch_add(1, Ordering::SeqCst);
                let mut i = 0;
                let mut buf = [0u8; 256];
                let tick = tokio::time::sleep(Duration::ZERO);
                tokio::pin!(tick);
                while !stop.load(Ordering::SeqCst) {
                    // A byte a second; a close is noticed at once.
                    tokio::select! {
                        r = s.read(&mut buf) => match r {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        },
                        () = &mut tick => {
                            let at = i % head.len();
                            if s.write_all(&head[at..at + 1]).await.is_err() {
                                break;
                            }
                            i += 1;
                            tick.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(1));
                        }
                    }
                }
                open.fetch_sub(1, Ordering::SeqCst);
                if !stop.load(Ordering::SeqCst) {
                    cut.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    let ramp = Instant::now();
    while open.load(Ordering::SeqCst) < 195 && ramp.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_at_start = open.load(Ordering::SeqCst);
    // Normal clients, fresh connections each time, for 5 s.
    let mut lat = Vec::new();
    let mut fails = Vec::new();
    let mut min_open = usize::MAX;
    let mut open_samples = Vec::new();
    let started = Instant::now();
    let mut n = 5_400_000u64;
    while started.elapsed() < Duration::from_secs(5) {
        min_open = min_open.min(open.load(Ordering::SeqCst));
        open_samples.push(open.load(Ordering::SeqCst));
        let c = client(Duration::from_secs(10));
        n += 1;
        let t0 = Instant::now();
        let r = request(
            &c,
            &server.base,
            Method::POST,
            "/v1/reporters",
            Some(&server.token("case_system")),
            Some(&seal_body("140100", &format!("RB-N-{n}"), identity(n))),
        )
        .await;
        let took = t0.elapsed();
        match r {
            Ok(r) if r.status == 201 => lat.push(took),
            Ok(r) => fails.push(format!("{} {}", r.status, r.text())),
            Err(e) => fails.push(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    loris.abort_all();
    let ok = lat.len();
    let mean_open = open_samples.iter().sum::<usize>() / open_samples.len().max(1);
    let p50 = percentile(&mut lat, 50);
    let p99 = percentile(&mut lat, 99);
    let max = percentile(&mut lat, 100);
    eprintln!(
        "200 slow-loris connections (open at start {open_at_start}, at least {min_open} and on \
         average {mean_open} during \
         the run, {} cut off by the server and reopened): {ok} normal seals on fresh \
         connections, p50 {p50:.1?}, p99 {p99:.1?}, max {max:.1?}; failures {fails:?}",
        cut.load(Ordering::SeqCst)
    );
    assert!(fails.is_empty(), "normal requests failed: {fails:?}");
    assert!(ok >= 20, "only {ok} normal requests in 5 s");
    assert!(
        open_at_start >= 195 && mean_open >= 180,
        "the crowd was not there: {open_at_start} open at the start, {mean_open} on average"
    );
    assert!(
        p99 < Duration::from_secs(1),
        "p99 {p99:?} with 200 slow clients"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_cap() {
    let _w = crate::harness::watchdog("connection_cap");
    let store = Store::sqlite();
    let server = Server::start(
        &store,
        &[
            ("RV_MAX_CONNECTIONS", "50"),
            ("RV_HEADER_TIMEOUT_SECONDS", "3"),
        ],
    )
    .await;
    // Phase A: 60 idle connections; a request waits until we close 15 of them.
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = server.base.clone();
    let waiting = tokio::spawn(async move {
        let c = client(Duration::from_secs(20));
        let t = Instant::now();
        let r = request(&c, &base, Method::GET, "/healthz", None, None).await;
        (r.map(|r| r.status), t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let closed_at = opened.elapsed();
    let still_waiting = !waiting.is_finished();
    // The first 15 were accepted first (FIFO).
    for s in idle.drain(..15) {
        drop(s);
    }
    let (status_a, took_a) = waiting.await.expect("task");
    eprintln!(
        "RV_MAX_CONNECTIONS=50 with 60 idle connections: a new request was {} after 1 s; we \
         closed 15 idle ones at {closed_at:.2?}; it was answered {status_a:?} {took_a:.2?} after \
         it was sent",
        if still_waiting {
            "still waiting"
        } else {
            "already answered"
        }
    );
    // Phase B: the server cuts the idle ones by itself (header timeout 3 s).
    let mut readers = tokio::task::JoinSet::new();
    for mut s in idle.drain(..) {
        readers.spawn(async move {
            let mut b = [0u8; 16];
            let r = tokio::time::timeout(Duration::from_secs(8), s.read(&mut b)).await;
            (matches!(r, Ok(Ok(0)) | Ok(Err(_))), opened.elapsed())
        });
    }
    let mut cut = Vec::new();
    while let Some(r) = readers.join_next().await {
        cut.push(r.expect("reader"));
    }
    let all_cut = cut.iter().all(|c| c.0);
    let last = cut.iter().map(|c| c.1).max().unwrap_or_default();
    // Phase C: 60 idle again, nobody closes: a request waits for the header timeout.
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..60 {
        idle.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = client(Duration::from_secs(20));
    let t = Instant::now();
    let r = request(&c, &server.base, Method::GET, "/healthz", None, None).await;
    let took_c = t.elapsed();
    eprintln!(
        "the server closed the remaining {} idle connections by itself: {all_cut}, the last \
         {last:.2?} after they were opened; with 60 idle connections again and nobody closing, \
         a new request was answered {:?} after {took_c:.2?}",
        cut.len(),
        r.as_ref().map(|r| r.status)
    );
    drop(idle);
    assert!(
        still_waiting,
        "at the cap a new connection waits (it was served at once)"
    );
    assert_eq!(
        status_a.as_ref().ok(),
        Some(&200),
        "answered once some closed"
    );
    assert!(
        took_a >= Duration::from_millis(900) && took_a < Duration::from_millis(1900),
        "answered when the idle connections closed (after {took_a:?})"
    );
    assert!(
        all_cut,
        "idle connections are cut after the header timeout: {cut:?}"
    );
    assert!(
        last < Duration::from_secs(8),
        "the last idle connection closed at {last:?}"
    );
    assert_eq!(
        r.map(|r| r.status).ok(),
        Some(200),
        "answered without anybody closing"
    );
    assert!(
        took_c < Duration::from_secs(5),
        "with the cap reached by idle clients a request waits at most about the header timeout \
         (3 s): {took_c:?}"
    );
}

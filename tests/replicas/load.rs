//! Continuous load: client tasks per replica sealing reporters, and for every other seal
//! requesting a disclosure of the phone number and having a custodian approve it, all
//! through the same replica. Every request's outcome is kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::task::JoinHandle;

use crate::harness::{Outcome, Tokens, call, disclosure_body, seal_body};

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Seal,
    RequestDisclosure,
    Approve,
}

/// One request and what became of it.
#[derive(Debug, Clone)]
pub struct Rec {
    pub replica: String,
    pub op: Op,
    pub started: Instant,
    pub finished: Instant,
    pub outcome: Outcome,
    /// The pseudonym (seal) or disclosure id (request, approve) it concerns, when known.
    pub id: Option<String>,
}

/// Running client tasks.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<Rec>>>,
}

/// Where the case numbers of a load start, so loads in one test never collide.
static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Load {
    /// `per_replica` tasks against each `(name, base)`.
    pub fn start(
        client: &reqwest::Client,
        tokens: &Tokens,
        replicas: &[(String, String)],
        per_replica: usize,
        disclosures: bool,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (name, base) in replicas {
            for _ in 0..per_replica {
                let (client, tokens, name, base, stop) = (
                    client.clone(),
                    tokens.clone(),
                    name.clone(),
                    base.clone(),
                    stop.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    run_client(client, tokens, name, base, stop, disclosures).await
                }));
            }
        }
        Load { stop, tasks }
    }

    /// Stops the tasks after their current request; every record.
    pub async fn finish(self) -> Vec<Rec> {
        self.stop.store(true, Ordering::Release);
        let mut out = Vec::new();
        for t in self.tasks {
            out.extend(t.await.expect("a load task"));
        }
        out
    }
}

async fn timed(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: &str,
    body: &serde_json::Value,
) -> (Instant, Instant, Outcome) {
    let started = Instant::now();
    let o = call(client, base, method, path, Some(token), Some(body)).await;
    (started, Instant::now(), o)
}

async fn run_client(
    client: reqwest::Client,
    tokens: Tokens,
    name: String,
    base: String,
    stop: Arc<AtomicBool>,
    disclosures: bool,
) -> Vec<Rec> {
    let mut recs = Vec::new();
    let rec = |op, (started, finished, outcome): (Instant, Instant, Outcome), id| Rec {
        replica: name.clone(),
        op,
        started,
        finished,
        outcome,
        id,
    };
    let mut i = 0usize;
    while !stop.load(Ordering::Acquire) {
        i += 1;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let r = timed(
            &client,
            &base,
            Method::POST,
            "/v1/reporters",
            &tokens.case_system,
            &seal_body(n),
        )
        .await;
        let pseudonym =
            r.2.is_2xx()
                .then(|| r.2.json()["pseudonym"].as_str().map(str::to_owned))
                .flatten();
        let failed = !r.2.is_2xx();
        recs.push(rec(Op::Seal, r, pseudonym.clone()));
        if failed {
            // A dead replica: do not spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let Some(p) = pseudonym else { continue };
        if !disclosures || i.is_multiple_of(2) {
            continue;
        }
        let r = timed(
            &client,
            &base,
            Method::POST,
            "/v1/disclosures",
            &tokens.case_system,
            &disclosure_body(&p),
        )
        .await;
        let id =
            r.2.is_2xx()
                .then(|| r.2.json()["id"].as_str().map(str::to_owned))
                .flatten();
        recs.push(rec(Op::RequestDisclosure, r, id.clone()));
        let Some(id) = id else { continue };
        let r = timed(
            &client,
            &base,
            Method::POST,
            &format!("/v1/disclosures/{id}/approve"),
            &tokens.custodian,
            &serde_json::json!({"comment": "同意核查"}),
        )
        .await;
        recs.push(rec(Op::Approve, r, Some(id)));
    }
    recs
}

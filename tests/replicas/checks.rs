//! What must hold after a run: every acknowledged write is there (through the API and in
//! the database), nothing is half-there, the trail verifies, and every checkpoint was
//! signed by the replica holding the lease at that moment.

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::Method;
use sqlx::Connection;

use crate::harness::{Cluster, Outcome, call, column, scalar_i64};
use crate::load::{Op, Rec};

/// Acknowledged pseudonyms, disclosures and approvals in `recs`.
pub struct Acked {
    pub pseudonyms: Vec<String>,
    pub disclosures: Vec<String>,
    pub approved: BTreeSet<String>,
}

pub fn acked(recs: &[Rec]) -> Acked {
    let ids = |op| -> Vec<String> {
        recs.iter()
            .filter(|r| r.op == op && r.outcome.is_2xx())
            .filter_map(|r| r.id.clone())
            .collect()
    };
    Acked {
        pseudonyms: ids(Op::Seal),
        disclosures: ids(Op::RequestDisclosure),
        approved: ids(Op::Approve).into_iter().collect(),
    }
}

/// Every acknowledged pseudonym resolves and every acknowledged disclosure exists (approved
/// if its approval was acknowledged), read through `base`.
pub async fn acknowledged_present(cluster: &Cluster, base: &str, a: &Acked) {
    let client = cluster.client.clone();
    let cs = Arc::new(cluster.tokens.case_system.clone());
    let cu = Arc::new(cluster.tokens.custodian.clone());
    let base = Arc::new(base.to_owned());
    let mut missing = Vec::new();
    // 16 at a time.
    for chunk in a.pseudonyms.chunks(16) {
        let mut tasks = Vec::new();
        for p in chunk {
            let (client, cs, base, p) = (client.clone(), cs.clone(), base.clone(), p.clone());
            tasks.push(tokio::spawn(async move {
                let o = call(
                    &client,
                    &base,
                    Method::GET,
                    &format!("/v1/pseudonyms/{p}"),
                    Some(&cs),
                    None,
                )
                .await;
                (p, o)
            }));
        }
        for t in tasks {
            let (p, o) = t.await.expect("task");
            if !o.is_2xx() || o.json()["pseudonym"] != p.as_str() {
                missing.push(format!("pseudonym {p}: {}", o.describe()));
            }
        }
    }
    for chunk in a.disclosures.chunks(16) {
        let mut tasks = Vec::new();
        for d in chunk {
            let (client, cu, base, d) = (client.clone(), cu.clone(), base.clone(), d.clone());
            tasks.push(tokio::spawn(async move {
                let o = call(
                    &client,
                    &base,
                    Method::GET,
                    &format!("/v1/disclosures/{d}"),
                    Some(&cu),
                    None,
                )
                .await;
                (d, o)
            }));
        }
        for t in tasks {
            let (d, o) = t.await.expect("task");
            let status = o.json()["status"].as_str().unwrap_or_default().to_owned();
            if !o.is_2xx() {
                missing.push(format!("disclosure {d}: {}", o.describe()));
            } else if a.approved.contains(&d) && status != "approved" {
                missing.push(format!(
                    "disclosure {d}: approval acknowledged, status {status}"
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} acknowledged writes are missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
}

/// Nothing half-present: one reporter and one `reporter_sealed` event per pseudonym, one
/// `disclosure_requested` event per disclosure and one `disclosure_approved` event per
/// approval, and every acknowledged id among them. Returns (pseudonyms, disclosures, events).
pub async fn consistent(cluster: &Cluster, a: &Acked) -> (usize, usize, i64) {
    let mut c = cluster.superuser().await;
    let reporters = scalar_i64(&mut c, "SELECT COUNT(*) FROM reporters").await;
    let pseudonyms: BTreeSet<String> = column(&mut c, "SELECT pseudonym FROM pseudonyms")
        .await
        .into_iter()
        .collect();
    let sealed_events: Vec<String> = column(
        &mut c,
        "SELECT COALESCE(pseudonym, '') FROM audit_events WHERE action = 'reporter_sealed'",
    )
    .await;
    let sealed_set: BTreeSet<String> = sealed_events.iter().cloned().collect();
    let disclosures: BTreeSet<String> = column(&mut c, "SELECT id FROM disclosures")
        .await
        .into_iter()
        .collect();
    let requested_events: Vec<String> = column(
        &mut c,
        "SELECT COALESCE(disclosure_id, '') FROM audit_events WHERE action = 'disclosure_requested'",
    )
    .await;
    let requested_set: BTreeSet<String> = requested_events.iter().cloned().collect();
    let decisions = scalar_i64(&mut c, "SELECT COUNT(*) FROM disclosure_decisions").await;
    let approved_events = scalar_i64(
        &mut c,
        "SELECT COUNT(*) FROM audit_events WHERE action = 'disclosure_approved'",
    )
    .await;
    let approved_status = scalar_i64(
        &mut c,
        "SELECT COUNT(*) FROM disclosures WHERE status = 'approved'",
    )
    .await;
    let events = scalar_i64(&mut c, "SELECT COUNT(*) FROM audit_events").await;
    let distinct = scalar_i64(&mut c, "SELECT COUNT(DISTINCT idx) FROM audit_events").await;
    let max = scalar_i64(&mut c, "SELECT COALESCE(MAX(idx), -1) FROM audit_events").await;
    let leaves = scalar_i64(&mut c, "SELECT COUNT(*) FROM audit_nodes WHERE level = 0").await;
    let _ = c.close().await;

    assert_eq!(
        reporters as usize,
        pseudonyms.len(),
        "one reporter per pseudonym (every seal is a new identity)"
    );
    assert_eq!(
        sealed_events.len(),
        sealed_set.len(),
        "no pseudonym sealed twice in the trail"
    );
    let no_event: Vec<_> = pseudonyms.difference(&sealed_set).collect();
    let no_row: Vec<_> = sealed_set.difference(&pseudonyms).collect();
    assert!(
        no_event.is_empty(),
        "pseudonyms without a reporter_sealed event: {no_event:?}"
    );
    assert!(
        no_row.is_empty(),
        "reporter_sealed events without a pseudonym: {no_row:?}"
    );
    assert_eq!(
        requested_events.len(),
        requested_set.len(),
        "no disclosure requested twice in the trail"
    );
    let no_event: Vec<_> = disclosures.difference(&requested_set).collect();
    let no_row: Vec<_> = requested_set.difference(&disclosures).collect();
    assert!(
        no_event.is_empty(),
        "disclosures without a disclosure_requested event: {no_event:?}"
    );
    assert!(
        no_row.is_empty(),
        "disclosure_requested events without a disclosure: {no_row:?}"
    );
    assert_eq!(
        decisions, approved_events,
        "one disclosure_approved event per decision"
    );
    assert_eq!(
        approved_status, decisions,
        "every approved disclosure (quorum 1) has its decision"
    );
    assert_eq!(
        (distinct, max + 1),
        (events, events),
        "dense, unique event indexes"
    );
    assert_eq!(leaves, events, "one Merkle leaf per event");
    let lost: Vec<_> = a
        .pseudonyms
        .iter()
        .filter(|p| !pseudonyms.contains(*p))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged seals missing from the database: {lost:?}"
    );
    let lost: Vec<_> = a
        .disclosures
        .iter()
        .filter(|d| !disclosures.contains(*d))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged disclosures missing from the database: {lost:?}"
    );
    (pseudonyms.len(), disclosures.len(), events)
}

/// Every committed checkpoint was inserted by the replica that held the lease at that
/// instant, and sizes grow strictly in commit order. Returns how many were recorded.
pub async fn signed_by_leaseholder(cluster: &Cluster) -> usize {
    let rows = cluster.signers().await;
    let mut bad = Vec::new();
    let mut last = -1i64;
    for (seq, size, signer, holder) in &rows {
        if holder.as_deref() != Some(signer.as_str()) {
            bad.push(format!(
                "checkpoint {size} (commit #{seq}) signed by {signer} while the lease was held by {}",
                holder.as_deref().unwrap_or("nobody")
            ));
        }
        if *size <= last {
            bad.push(format!(
                "checkpoint {size} (commit #{seq}) committed after checkpoint {last}"
            ));
        }
        last = last.max(*size);
    }
    assert!(
        bad.is_empty(),
        "checkpoints signed outside the lease ({} of {}): {bad:#?}\nall: {rows:?}",
        bad.len(),
        rows.len()
    );
    rows.len()
}

/// `reporter-vault audit verify` on the database passes.
pub async fn audit_verifies(cluster: &Cluster) {
    let (code, out) = cluster.cli(&["audit", "verify"]).await;
    assert_eq!(code, Some(0), "reporter-vault audit verify: {out}");
}

/// Non-2xx answers (of any kind) among `recs`.
pub fn failures<'a>(recs: impl Iterator<Item = &'a Rec>) -> Vec<String> {
    recs.filter(|r| !r.outcome.is_2xx())
        .map(|r| format!("{} {:?}: {}", r.replica, r.op, r.outcome.describe()))
        .collect()
}

/// Whether an outcome is the kind a killed process leaves: no answer at all.
pub fn no_answer(o: &Outcome) -> bool {
    matches!(o, Outcome::NoResponse { .. })
}

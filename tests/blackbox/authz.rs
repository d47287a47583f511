//! Every endpoint × every role, in scope and out of scope; unauthenticated and revoked
//! callers; and every refusal of an authenticated caller in the access trail.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Body, Engine, Person, Principal, Resp, TestApp, spawn_app};

both_engines!(
    every_endpoint_by_every_role,
    out_of_scope_records_do_not_exist,
    unauthenticated_and_revoked_callers_get_401,
);

const ROLES: [&str; 5] = ["admin", "case_system", "custodian", "finance", "auditor"];

#[derive(Debug, Clone, Copy)]
enum Ep {
    CreatePrincipal,
    RevokePrincipal,
    Seal,
    GetPseudonym,
    Handoff,
    Rotate,
    Message,
    RequestDisclosure,
    GetDisclosure,
    Approve,
    Deny,
    Open,
    Events,
    Healthz,
    Readyz,
    OpenApi,
}

/// The expected answers, per role in [`ROLES`] order. Where the contract allows either of two
/// answers (a record the role may never see: "forbidden" or "not found"), both are listed.
fn table() -> Vec<(Ep, [&'static [u16]; 5])> {
    use Ep::*;
    const OK200: &[u16] = &[200];
    const C201: &[u16] = &[201];
    const F403: &[u16] = &[403];
    vec![
        (CreatePrincipal, [C201, F403, F403, F403, F403]),
        (RevokePrincipal, [&[204], F403, F403, F403, F403]),
        (Seal, [F403, C201, F403, F403, F403]),
        (GetPseudonym, [OK200, OK200, OK200, OK200, OK200]),
        (Handoff, [F403, C201, F403, F403, F403]),
        (Rotate, [F403, C201, C201, F403, F403]),
        (Message, [F403, &[202], F403, F403, F403]),
        (RequestDisclosure, [F403, C201, F403, C201, F403]),
        // Requested by the case system. Finance did not request it: not its record.
        // Admin's role may never read disclosures: "403 role may not do this" (API.md).
        (GetDisclosure, [F403, OK200, OK200, &[403, 404], OK200]),
        (Approve, [F403, F403, OK200, F403, F403]),
        (Deny, [F403, F403, OK200, F403, F403]),
        // Opened by a requester of that role where the role may request.
        (Open, [F403, OK200, F403, OK200, F403]),
        (Events, [F403, F403, F403, F403, OK200]),
        (Healthz, [OK200; 5]),
        (Readyz, [OK200; 5]),
        (OpenApi, [OK200; 5]),
    ]
}

struct World {
    app: TestApp,
    /// Principals by role, all in Shanxi (admin and auditor national/provincial).
    by_role: BTreeMap<&'static str, Principal>,
    cs: Principal,
    custodian: Principal,
    n: std::sync::atomic::AtomicU32,
}

impl World {
    async fn new(engine: Engine) -> World {
        let app = spawn_app(engine).await;
        let admin_id = admin_id(&app).await;
        let cs = app.create_principal("case_system", "140100", None).await;
        let custodian = app.create_principal("custodian", "140000", None).await;
        let finance = app.create_principal("finance", "140000", None).await;
        let auditor = app.create_principal("auditor", "140000", None).await;
        let mut by_role = BTreeMap::new();
        by_role.insert(
            "admin",
            Principal {
                id: admin_id,
                token: app.admin_token.clone(),
            },
        );
        by_role.insert("case_system", cs.clone());
        by_role.insert("custodian", custodian.clone());
        by_role.insert("finance", finance);
        by_role.insert("auditor", auditor);
        World {
            app,
            by_role,
            cs,
            custodian,
            n: std::sync::atomic::AtomicU32::new(100),
        }
    }

    fn next(&self) -> u32 {
        self.n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    async fn pseudonym(&self) -> String {
        let n = self.next();
        self.app
            .seal_ok(
                &self.cs.token,
                "140100",
                &format!("SX-AUTHZ-{n}"),
                Some(&Person::nth(n)),
            )
            .await["pseudonym"]
            .as_str()
            .expect("p")
            .to_owned()
    }

    async fn disclosure(&self, requester: &Principal, approved: bool) -> String {
        let p = self.pseudonym().await;
        let purpose = "verification_contact";
        let id = self
            .app
            .request_disclosure_ok(&requester.token, &p, purpose, &["name"])
            .await;
        if approved {
            self.app
                .approve(&self.custodian.token, &id)
                .await
                .expect(200, "approve for the table");
        }
        id
    }

    async fn attempt(&self, ep: Ep, who: &Principal, role: &str) -> Resp {
        let app = &self.app;
        let t = who.token.as_str();
        match ep {
            Ep::CreatePrincipal => {
                app.post(
                    "/v1/principals",
                    t,
                    json!({"name": "new one", "role": "auditor", "jurisdiction": "140000"}),
                )
                .await
            }
            Ep::RevokePrincipal => {
                let victim = app.create_principal("auditor", "140000", None).await;
                app.call(
                    Method::DELETE,
                    &format!("/v1/principals/{}", victim.id),
                    Some(t),
                    Body::None,
                )
                .await
            }
            Ep::Seal => {
                let n = self.next();
                app.seal(
                    t,
                    crate::harness::seal_body(
                        "140100",
                        &format!("SX-AUTHZ-{n}"),
                        Person::nth(n).identity(),
                    ),
                )
                .await
            }
            Ep::GetPseudonym => {
                let p = self.pseudonym().await;
                app.get_pseudonym(t, &p).await
            }
            Ep::Handoff => {
                let p = self.pseudonym().await;
                app.handoff(t, &p, json!({"to_jurisdiction": "140200"}))
                    .await
            }
            Ep::Rotate => {
                let p = self.pseudonym().await;
                app.rotate(t, &p).await
            }
            Ep::Message => {
                let p = self.pseudonym().await;
                app.message(t, &p, "acceptance", "您的举报已受理").await
            }
            Ep::RequestDisclosure => {
                let p = self.pseudonym().await;
                app.request_disclosure(t, &p, "verification_contact", &["phone"])
                    .await
            }
            Ep::GetDisclosure => {
                let id = self.disclosure(&self.cs, false).await;
                app.get_disclosure(t, &id).await
            }
            Ep::Approve => {
                let id = self.disclosure(&self.cs, false).await;
                app.approve(t, &id).await
            }
            Ep::Deny => {
                let id = self.disclosure(&self.cs, false).await;
                app.deny(t, &id).await
            }
            Ep::Open => {
                let requester = if role == "finance" { who } else { &self.cs };
                let id = self.disclosure(requester, true).await;
                app.open(t, &id).await
            }
            Ep::Events => app.get("/v1/audit/events", t).await,
            Ep::Healthz => app.get("/healthz", t).await,
            Ep::Readyz => app.get("/readyz", t).await,
            Ep::OpenApi => app.get("/openapi.json", t).await,
        }
    }
}

async fn admin_id(app: &TestApp) -> String {
    // The bootstrap admin is the target of the first principal_created event; read it with
    // a throwaway auditor.
    let auditor = app.create_principal("auditor", "000000", None).await;
    let events = app.events(&auditor.token).await;
    events
        .iter()
        .find(|e| e["event"]["action"] == "principal_created")
        .and_then(|e| e["event"]["target"].as_str())
        .expect("the bootstrap admin's principal_created event")
        .to_owned()
}

fn denials_by_actor(events: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        let ev = &e["event"];
        if ev["action"] == "access_denied" {
            assert_eq!(ev["outcome"], "denied", "{ev}");
            let actor = ev["actor_id"].as_str().unwrap_or("").to_owned();
            *out.entry(actor).or_insert(0) += 1;
        }
    }
    out
}

async fn every_endpoint_by_every_role(engine: Engine) {
    let w = World::new(engine).await;
    let mut mismatches = Vec::new();
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    for (ep, expected) in table() {
        for (role, allowed) in ROLES.iter().zip(expected) {
            let who = w.by_role[role].clone();
            let r = w.attempt(ep, &who, role).await;
            if !allowed.contains(&r.status) {
                mismatches.push(format!(
                    "{ep:?} as {role}: expected {allowed:?}, got {} {}",
                    r.status,
                    r.text()
                ));
            }
            if r.status == 403 {
                assert_eq!(r.code(), "forbidden", "{ep:?} as {role}");
            }
            if [403, 404, 409].contains(&r.status) {
                *refused.entry(who.id.clone()).or_insert(0) += 1;
            }
        }
    }

    // A case system in scope that did not request a disclosure may not open it: not a
    // state conflict, a matter of who is asking.
    let cs2 = w.app.create_principal("case_system", "140000", None).await;
    let id = w.disclosure(&w.cs, true).await;
    let r = w.app.open(&cs2.token, &id).await;
    if ![403, 404].contains(&r.status) {
        mismatches.push(format!(
            "Open as a case system that is not the requester: expected [403, 404], got {} {}",
            r.status,
            r.text()
        ));
    }
    *refused.entry(cs2.id.clone()).or_insert(0) += 1;
    // And the disclosure is untouched: the requester still opens it.
    w.app
        .open(&w.cs.token, &id)
        .await
        .expect(200, "requester opens after a refused attempt");

    // Every refusal of an authenticated caller is an access_denied event by that caller.
    let auditor = &w.by_role["auditor"];
    let events = w.app.events(&auditor.token).await;
    let recorded = denials_by_actor(&events);
    for (actor, n) in &refused {
        let got = recorded.get(actor).copied().unwrap_or(0);
        if got != *n {
            mismatches.push(format!(
                "principal {actor}: {n} refusals answered, {got} access_denied events recorded"
            ));
        }
    }
    let role_refusal = events.iter().find(|e| {
        e["event"]["action"] == "access_denied"
            && e["event"]["actor_id"] == w.custodian.id.as_str()
            && e["event"]["reason"] == "role"
    });
    let ev = &role_refusal.expect("a custodian's refused seal is in the trail")["event"];
    assert_eq!(ev["actor_role"], "custodian");
    assert!(
        ev["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{ev}"
    );

    assert!(
        mismatches.is_empty(),
        "authorisation table mismatches:\n  {}",
        mismatches.join("\n  ")
    );
}

async fn out_of_scope_records_do_not_exist(engine: Engine) {
    let app = spawn_app(engine).await;
    let cs = app.create_principal("case_system", "140100", None).await;
    let cust = app.create_principal("custodian", "140000", None).await;
    let person = Person::nth(20);
    let p = app
        .seal_ok(&cs.token, "140100", "SX-SCOPE-1", Some(&person))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let pending = app
        .request_disclosure_ok(&cs.token, &p, "verification_contact", &["phone"])
        .await;
    let approved = app
        .request_disclosure_ok(&cs.token, &p, "verification_contact", &["name"])
        .await;
    app.approve(&cust.token, &approved)
        .await
        .expect(200, "approve");

    let sd: BTreeMap<&str, Principal> = {
        let mut m = BTreeMap::new();
        for role in ROLES {
            m.insert(role, app.create_principal(role, "370000", None).await);
        }
        m
    };
    let auditor = app.create_principal("auditor", "000000", None).await;
    let before = crate::authz::denials_by_actor(&app.events(&auditor.token).await);

    let mut mismatches = Vec::new();
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut check = |what: String, r: Resp, allowed: &[u16], actor: &Principal| {
        if !allowed.contains(&r.status) {
            mismatches.push(format!(
                "{what}: expected {allowed:?}, got {} {}",
                r.status,
                r.text()
            ));
        }
        assert!(
            !r.text().contains(&person.phone),
            "{what}: leaked the phone"
        );
        if r.status >= 400 {
            *refused.entry(actor.id.clone()).or_insert(0) += 1;
        }
    };
    for role in ROLES {
        let who = &sd[role];
        check(
            format!("GET pseudonym as {role} of 370000"),
            app.get_pseudonym(&who.token, &p).await,
            &[404],
            who,
        );
        check(
            format!("GET disclosure as {role} of 370000"),
            app.get_disclosure(&who.token, &pending).await,
            &[404],
            who,
        );
    }
    let cs_sd = &sd["case_system"];
    let cust_sd = &sd["custodian"];
    let fin_sd = &sd["finance"];
    let admin_sd = &sd["admin"];
    check(
        "hand off as 370000".into(),
        app.handoff(&cs_sd.token, &p, json!({"to_jurisdiction": "370100"}))
            .await,
        &[404],
        cs_sd,
    );
    check(
        "rotate as case system of 370000".into(),
        app.rotate(&cs_sd.token, &p).await,
        &[404],
        cs_sd,
    );
    check(
        "rotate as custodian of 370000".into(),
        app.rotate(&cust_sd.token, &p).await,
        &[404],
        cust_sd,
    );
    check(
        "message as 370000".into(),
        app.message(&cs_sd.token, &p, "progress", "进展").await,
        &[404],
        cs_sd,
    );
    check(
        "request disclosure as case system of 370000".into(),
        app.request_disclosure(&cs_sd.token, &p, "verification_contact", &["phone"])
            .await,
        &[404],
        cs_sd,
    );
    check(
        "request disclosure as finance of 370000".into(),
        app.request_disclosure(&fin_sd.token, &p, "reward_payment", &["name"])
            .await,
        &[404],
        fin_sd,
    );
    check(
        "approve as custodian of 370000".into(),
        app.approve(&cust_sd.token, &pending).await,
        &[404],
        cust_sd,
    );
    check(
        "deny as custodian of 370000".into(),
        app.deny(&cust_sd.token, &pending).await,
        &[404],
        cust_sd,
    );
    check(
        "open as case system of 370000".into(),
        app.open(&cs_sd.token, &approved).await,
        &[404],
        cs_sd,
    );
    check(
        "seal into 140100 as case system of 370000".into(),
        app.seal(
            &cs_sd.token,
            crate::harness::seal_body("140100", "SX-SCOPE-2", Person::nth(21).identity()),
        )
        .await,
        &[403, 404, 422],
        cs_sd,
    );
    check(
        "revoke a Shanxi principal as admin of 370000".into(),
        app.call(
            Method::DELETE,
            &format!("/v1/principals/{}", cust.id),
            Some(&admin_sd.token),
            Body::None,
        )
        .await,
        &[404],
        admin_sd,
    );
    check(
        "create a Shanxi principal as admin of 370000".into(),
        app.post(
            "/v1/principals",
            &admin_sd.token,
            json!({"name": "x", "role": "custodian", "jurisdiction": "140000"}),
        )
        .await,
        &[403, 404, 422],
        admin_sd,
    );

    // The hierarchy: a county sees only itself; a city sees its counties.
    let county = app.create_principal("case_system", "140105", None).await;
    let city_rec = p.clone();
    check(
        "GET a city record as a county".into(),
        app.get_pseudonym(&county.token, &city_rec).await,
        &[404],
        &county,
    );
    let county_rec = app
        .seal_ok(
            &county.token,
            "140105",
            "SX-SCOPE-3",
            Some(&Person::nth(22)),
        )
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    check(
        "GET a county record as its city".into(),
        app.get_pseudonym(&cs.token, &county_rec).await,
        &[200],
        &cs,
    );
    check(
        "GET a county record as its province".into(),
        app.get_pseudonym(&cust.token, &county_rec).await,
        &[200],
        &cust,
    );
    let other_county = app.create_principal("case_system", "140106", None).await;
    check(
        "GET a county record as a sibling county".into(),
        app.get_pseudonym(&other_county.token, &county_rec).await,
        &[404],
        &other_county,
    );

    // Out-of-scope records are indistinguishable from missing ones.
    let r1 = app.get_pseudonym(&cs_sd.token, &p).await;
    *refused.entry(cs_sd.id.clone()).or_insert(0) += 1;
    let r2 = app
        .get_pseudonym(&cs_sd.token, "rp_aaaaaaaaaaaaaaaaaaaaaaaaaa")
        .await;
    assert_eq!(r1.status, r2.status);
    assert_eq!(r1.json()["error"]["message"], r2.json()["error"]["message"]);

    // The Shanxi records were not touched.
    let v = app
        .get_pseudonym(&cs.token, &p)
        .await
        .expect(200, "still there");
    assert_eq!(v["status"], "active");
    let v = app
        .get_disclosure(&cs.token, &pending)
        .await
        .expect(200, "still pending");
    assert_eq!(v["status"], "pending");
    let r = app.open(&cs.token, &approved).await;
    r.expect(200, "the requester still opens it");

    // Every out-of-scope reach is in the trail.
    let after = denials_by_actor(&app.events(&auditor.token).await);
    for (actor, n) in &refused {
        let got = after.get(actor).copied().unwrap_or(0) - before.get(actor).copied().unwrap_or(0);
        if got != *n {
            mismatches.push(format!(
                "principal {actor}: {n} refusals, {got} access_denied events"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "scope mismatches:\n  {}",
        mismatches.join("\n  ")
    );
}

async fn unauthenticated_and_revoked_callers_get_401(engine: Engine) {
    let app = spawn_app(engine).await;
    let cs = app.create_principal("case_system", "140100", None).await;
    let auditor = app.create_principal("auditor", "000000", None).await;
    let p = app
        .seal_ok(&cs.token, "140100", "SX-AUTH-1", Some(&Person::nth(30)))
        .await["pseudonym"]
        .as_str()
        .expect("p")
        .to_owned();
    let d = app
        .request_disclosure_ok(&cs.token, &p, "verification_contact", &["name"])
        .await;
    let before = app.tree_size(&auditor.token).await;

    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/v1/principals".into(),
            Some(json!({"name": "x", "role": "admin", "jurisdiction": "000000"})),
        ),
        (Method::DELETE, format!("/v1/principals/{}", cs.id), None),
        (
            Method::POST,
            "/v1/reporters".into(),
            Some(crate::harness::seal_body("140100", "X", Value::Null)),
        ),
        (Method::GET, format!("/v1/pseudonyms/{p}"), None),
        (
            Method::POST,
            format!("/v1/pseudonyms/{p}/handoff"),
            Some(json!({"to_jurisdiction": "140200"})),
        ),
        (Method::POST, format!("/v1/pseudonyms/{p}/rotate"), None),
        (
            Method::POST,
            format!("/v1/pseudonyms/{p}/messages"),
            Some(json!({"kind": "progress", "body": "x"})),
        ),
        (
            Method::POST,
            "/v1/disclosures".into(),
            Some(
                json!({"pseudonym": p, "purpose": "verification_contact", "justification": "0123456789", "fields": ["name"]}),
            ),
        ),
        (Method::GET, format!("/v1/disclosures/{d}"), None),
        (
            Method::POST,
            format!("/v1/disclosures/{d}/approve"),
            Some(json!({"comment": ""})),
        ),
        (
            Method::POST,
            format!("/v1/disclosures/{d}/deny"),
            Some(json!({"comment": ""})),
        ),
        (Method::POST, format!("/v1/disclosures/{d}/open"), None),
        (Method::GET, "/v1/audit/events".into(), None),
    ];
    let long = "a".repeat(300);
    let garbage_tokens: Vec<Option<String>> = vec![
        None,
        Some("Bearer ".into()),
        Some("Bearer not-a-token".into()),
        Some(format!("Bearer {long}")),
        Some(format!("Basic {}", cs.token)),
        Some(format!("bearer{}", cs.token)),
        Some(format!("Bearer {}x", cs.token)),
    ];
    let client = crate::harness::client();
    for (m, path, body) in &requests {
        for auth in &garbage_tokens {
            let mut rb = client.request(m.clone(), format!("{}{path}", app.base));
            if let Some(a) = auth {
                rb = rb.header("authorization", a);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let res = rb.send().await.expect("send");
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let r = Resp {
                status,
                headers,
                body: res.bytes().await.expect("body").to_vec(),
            };
            crate::harness::check_invariants(&r, path);
            r.expect_err(401, "unauthenticated", &format!("{m} {path} with {auth:?}"));
            assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
        }
    }
    assert_eq!(
        app.tree_size(&auditor.token).await,
        before,
        "unauthenticated requests wrote to the trail"
    );
    let v = app
        .get_disclosure(&cs.token, &d)
        .await
        .expect(200, "untouched");
    assert_eq!(v["status"], "pending");

    // Revocation takes effect at once.
    let victim = app.create_principal("case_system", "140100", None).await;
    app.get_pseudonym(&victim.token, &p)
        .await
        .expect(200, "before revocation");
    app.call(
        Method::DELETE,
        &format!("/v1/principals/{}", victim.id),
        Some(&app.admin_token),
        Body::None,
    )
    .await
    .expect(204, "revoke");
    app.get_pseudonym(&victim.token, &p)
        .await
        .expect_err(401, "unauthenticated", "revoked token");
    app.seal(
        &victim.token,
        crate::harness::seal_body("140100", "SX-AUTH-2", Value::Null),
    )
    .await
    .expect_err(401, "unauthenticated", "revoked token seals");
    app.call(
        Method::DELETE,
        &format!("/v1/principals/{}", victim.id),
        Some(&app.admin_token),
        Body::None,
    )
    .await
    .expect_err(409, "already_revoked", "revoke twice");
    app.call(
        Method::DELETE,
        "/v1/principals/prn_doesnotexist",
        Some(&app.admin_token),
        Body::None,
    )
    .await
    .expect_err(404, "not_found", "revoke unknown");
    let events = app.events(&auditor.token).await;
    assert!(
        events
            .iter()
            .any(|e| e["event"]["action"] == "principal_revoked"
                && e["event"]["target"] == victim.id.as_str()),
        "revocation is in the trail"
    );

    // The last admin cannot lock everyone out.
    let admin_id = admin_id(&app).await;
    app.call(
        Method::DELETE,
        &format!("/v1/principals/{admin_id}"),
        Some(&app.admin_token),
        Body::None,
    )
    .await
    .expect_err(409, "last_admin", "revoke the last admin");
    app.get("/v1/audit/events", &auditor.token)
        .await
        .expect(200, "still working");
}

//! `POST /v1/rewards`: the vault determines the award(s) from its own record of each report —
//! first accepted eligible report, supervisory-staff exclusion, anonymity, joint groups and
//! per-reporter monthly caps across cases.

use serde_json::{Value, json};

use crate::harness::{
    Engine, POLICIES, Person, Report, award_of, major_hazard, reward_body, spawn,
    spawn_with_policies,
};

async fn first_reporter_by_acceptance(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let people: Vec<Person> = (1..=3).map(Person::nth).collect();
    // Accepted at 09:00, 08:00 and 10:00; listed in that (not chronological) order.
    let times = [
        "2026-11-02T09:00:00+08:00",
        "2026-11-02T08:00:00+08:00",
        "2026-11-02T10:00:00+08:00",
    ];
    let mut ps = Vec::new();
    for (person, at) in people.iter().zip(times) {
        ps.push(
            app.seal_p(
                &cast.case.token,
                &Report::named("370100", "SD-FIRST-1", at, person),
            )
            .await,
        );
    }
    // Every order of listing gives the same determination.
    for (n, order) in [[0usize, 1, 2], [2, 1, 0], [1, 2, 0]].iter().enumerate() {
        let reports: Vec<Value> = order
            .iter()
            .map(|&i| json!({"pseudonym": ps[i], "received_at": times[i]}))
            .collect();
        let v = app
            .post(
                "/v1/rewards",
                &cast.case.token,
                reward_body(
                    &format!("SD-FIRST-1/{n}"),
                    "370100",
                    "2026-11-18",
                    major_hazard("20000.00"),
                    reports,
                ),
            )
            .await
            .ok(201, "file");
        assert_eq!(v["status"], "pending_approval", "{v}");
        assert_eq!(v["amount"], "10000.00", "50 % of 20000.00: {v}");
        assert_eq!(v["policy"]["id"], "shandong-2022", "{v}");
        assert!(
            v["policy"]["version"]
                .as_str()
                .is_some_and(|s| s.starts_with("sha256:")),
            "{v}"
        );
        assert_eq!(v["awards"].as_array().unwrap().len(), 3, "{v}");
        assert_eq!(award_of(&v, &ps[1]), ("10000.00".into(), None), "{v}");
        for i in [0, 2] {
            assert_eq!(
                award_of(&v, &ps[i]),
                ("0.00".into(), Some("not_first_reporter".into())),
                "{v}"
            );
        }
        let got = app
            .reward(&cast.fin1.token, v["id"].as_str().unwrap())
            .await;
        assert_eq!(got["awards"], v["awards"], "GET shows the same awards");
    }

    // A received_at that does not match the vault's record is refused, naming the report.
    let r = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                "SD-FIRST-1/x",
                "370100",
                "2026-11-18",
                major_hazard("20000.00"),
                vec![
                    json!({"pseudonym": ps[0], "received_at": times[0]}),
                    json!({"pseudonym": ps[1], "received_at": "2026-11-01T08:00:00+08:00"}),
                ],
            ),
        )
        .await;
    r.err_field(
        422,
        "invalid_field",
        "reports[1].received_at",
        "received_at mismatch",
    );
    // The same instant in another offset is the same time, not a mismatch.
    app.post(
        "/v1/rewards",
        &cast.case.token,
        reward_body(
            "SD-FIRST-1/y",
            "370100",
            "2026-11-18",
            major_hazard("20000.00"),
            vec![json!({"pseudonym": ps[1], "received_at": "2026-11-02T00:00:00Z"})],
        ),
    )
    .await
    .ok(201, "received_at in UTC");
    // An unknown pseudonym, an empty list, and filing by finance.
    app.post(
        "/v1/rewards",
        &cast.case.token,
        reward_body(
            "SD-FIRST-1/z",
            "370100",
            "2026-11-18",
            major_hazard("20000.00"),
            vec![
                json!({"pseudonym": ps[0]}),
                json!({"pseudonym": "rp_nosuchthing"}),
            ],
        ),
    )
    .await
    .err_field(
        422,
        "invalid_field",
        "reports[1].pseudonym",
        "unknown pseudonym",
    );
    let r = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                "SD-FIRST-1/z",
                "370100",
                "2026-11-18",
                major_hazard("20000.00"),
                vec![],
            ),
        )
        .await;
    r.ok(422, "no reports");
    assert_eq!(r.field().as_deref(), Some("reports"), "{}", r.text());
    app.post(
        "/v1/rewards",
        &cast.fin1.token,
        reward_body(
            "SD-FIRST-1/z",
            "370100",
            "2026-11-18",
            major_hazard("20000.00"),
            vec![json!({"pseudonym": ps[0]})],
        ),
    )
    .await
    .err(403, "forbidden", "finance files");
}

async fn exclusions_and_anonymity(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let a = Person::nth(11);
    let b = Person::nth(12);
    let c = Person::nth(13);
    // Supervisory staff (national measures exclude them) at 08:00: the next eligible wins.
    let pa = app
        .seal_p(
            &cast.case.token,
            &Report::named("110105", "BJ-EXCL-1", "2026-11-02T08:00:00+08:00", &a),
        )
        .await;
    let pb = app
        .seal_p(
            &cast.case.token,
            &Report::named("110105", "BJ-EXCL-1", "2026-11-02T09:00:00+08:00", &b),
        )
        .await;
    let pc = app
        .seal_p(
            &cast.case.token,
            &Report::named("110105", "BJ-EXCL-1", "2026-11-02T10:00:00+08:00", &c),
        )
        .await;
    let v = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                "BJ-EXCL-1",
                "110105",
                "2026-11-18",
                major_hazard("100000.00"),
                vec![
                    json!({"pseudonym": pc}),
                    json!({"pseudonym": pa, "supervisory_staff": true}),
                    json!({"pseudonym": pb, "supervisory_staff": false}),
                ],
            ),
        )
        .await
        .ok(201, "file");
    assert_eq!(v["policy"]["id"], "cn-national-2018", "{v}");
    assert_eq!(v["amount"], "15000.00", "{v}");
    assert_eq!(
        award_of(&v, &pa),
        ("0.00".into(), Some("excluded_reporter".into()))
    );
    assert_eq!(award_of(&v, &pb), ("15000.00".into(), None));
    assert_eq!(
        award_of(&v, &pc),
        ("0.00".into(), Some("not_first_reporter".into()))
    );

    // An anonymous report first, under a policy rewarding real-name reporters only.
    let anon = app
        .seal(
            &cast.case.token,
            &Report {
                jurisdiction: "110105",
                case_ref: "BJ-ANON-1",
                received_at: "2026-11-03T08:00:00+08:00",
                person: None,
                employee: false,
            },
        )
        .await;
    assert_eq!(anon["anonymous"], true, "{anon}");
    assert!(anon["claim_code"].is_string(), "{anon}");
    let pan = anon["pseudonym"].as_str().unwrap().to_owned();
    let pd = app
        .seal_p(
            &cast.case.token,
            &Report::named(
                "110105",
                "BJ-ANON-1",
                "2026-11-03T09:00:00+08:00",
                &Person::nth(14),
            ),
        )
        .await;
    let v = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                "BJ-ANON-1",
                "110105",
                "2026-11-18",
                major_hazard("100000.00"),
                vec![json!({"pseudonym": pd}), json!({"pseudonym": pan})],
            ),
        )
        .await
        .ok(201, "file");
    assert_eq!(
        award_of(&v, &pan),
        ("0.00".into(), Some("anonymous_not_eligible".into()))
    );
    assert_eq!(award_of(&v, &pd), ("15000.00".into(), None));
    // Only the anonymous report: nothing to award.
    app.post(
        "/v1/rewards",
        &cast.case.token,
        reward_body(
            "BJ-ANON-1",
            "110105",
            "2026-11-18",
            major_hazard("100000.00"),
            vec![json!({"pseudonym": pan})],
        ),
    )
    .await
    .err_field(422, "no_eligible_report", "reports", "anonymous only");

    // Under the Shanxi housing measures anonymous reports are rewarded.
    let anon = app
        .seal(
            &cast.case.token,
            &Report {
                jurisdiction: "140100",
                case_ref: "SX-ANON-1",
                received_at: "2026-11-03T08:00:00+08:00",
                person: None,
                employee: false,
            },
        )
        .await;
    let pan = anon["pseudonym"].as_str().unwrap().to_owned();
    let mut body = reward_body(
        "SX-ANON-1",
        "140100",
        "2026-11-18",
        major_hazard("100000.00"),
        vec![json!({"pseudonym": pan})],
    );
    body["industry"] = json!("housing_construction");
    let v = app
        .post("/v1/rewards", &cast.case.token, body)
        .await
        .ok(201, "file");
    assert_eq!(v["policy"]["id"], "shanxi-housing-2024", "{v}");
    assert_eq!(award_of(&v, &pan), ("15000.00".into(), None), "{v}");
}

async fn joint_report_first_signatory(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let a = Person::nth(21);
    let b = Person::nth(22);
    let c = Person::nth(23);
    // A signed second but the group's report was accepted first; C reported alone, later.
    let pa = app
        .seal_p(
            &cast.case.token,
            &Report::named("110105", "BJ-JOINT-1", "2026-11-02T08:00:00+08:00", &a),
        )
        .await;
    let pb = app
        .seal_p(
            &cast.case.token,
            &Report::named("110105", "BJ-JOINT-1", "2026-11-02T08:05:00+08:00", &b),
        )
        .await;
    let pc = app
        .seal_p(
            &cast.case.token,
            &Report::named("110105", "BJ-JOINT-1", "2026-11-02T09:00:00+08:00", &c),
        )
        .await;
    let v = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                "BJ-JOINT-1",
                "110105",
                "2026-11-18",
                major_hazard("100000.00"),
                vec![
                    json!({"pseudonym": pc}),
                    json!({"pseudonym": pa, "joint_group": "g1", "signatory_order": 2}),
                    json!({"pseudonym": pb, "joint_group": "g1", "signatory_order": 1}),
                ],
            ),
        )
        .await
        .ok(201, "file");
    assert_eq!(v["policy"]["id"], "cn-national-2018", "{v}");
    assert_eq!(v["amount"], "15000.00", "one award for the group: {v}");
    assert_eq!(
        award_of(&v, &pb),
        ("15000.00".into(), None),
        "first signatory: {v}"
    );
    assert_eq!(
        award_of(&v, &pa),
        ("0.00".into(), Some("joint_report_member".into())),
        "{v}"
    );
    assert_eq!(
        award_of(&v, &pc),
        ("0.00".into(), Some("not_first_reporter".into())),
        "{v}"
    );
}

/// No shipped policy says `joint = "equal_split"`; this runs the rule on a copy of the
/// shipped directory where Shandong 2022 does (a test fixture, not a shipped policy).
async fn joint_report_equal_split_fixture(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(POLICIES).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let file = dir.path().join("shandong-2022.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let split = text.replacen(
        "sectors = \"all\"\n",
        "sectors = \"all\"\njoint = \"equal_split\"\n",
        1,
    );
    assert_ne!(split, text);
    std::fs::write(&file, split).unwrap();
    let app = spawn_with_policies(engine, dir.path()).await;
    let cast = app.cast().await;
    let mut ps = Vec::new();
    for (n, at) in [
        (31, "2026-11-02T08:00:00+08:00"),
        (32, "2026-11-02T08:01:00+08:00"),
        (33, "2026-11-02T08:02:00+08:00"),
    ] {
        ps.push(
            app.seal_p(
                &cast.case.token,
                &Report::named("370100", "SD-SPLIT-1", at, &Person::nth(n)),
            )
            .await,
        );
    }
    // 50 % of 20000.02 = 10000.01; three shares of 3333.33 and the 0.02 remainder to the
    // first signatory (signatory order, not acceptance order).
    let v = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                "SD-SPLIT-1",
                "370100",
                "2026-11-18",
                major_hazard("20000.02"),
                vec![
                    json!({"pseudonym": ps[0], "joint_group": "g", "signatory_order": 3}),
                    json!({"pseudonym": ps[1], "joint_group": "g", "signatory_order": 1}),
                    json!({"pseudonym": ps[2], "joint_group": "g", "signatory_order": 2}),
                ],
            ),
        )
        .await
        .ok(201, "file");
    assert_eq!(v["amount"], "10000.01", "{v}");
    assert_eq!(award_of(&v, &ps[1]), ("3333.35".into(), None), "{v}");
    assert_eq!(award_of(&v, &ps[0]), ("3333.33".into(), None), "{v}");
    assert_eq!(award_of(&v, &ps[2]), ("3333.33".into(), None), "{v}");
}

async fn monthly_cap_across_cases(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let person = Person::nth(41);
    let other = Person::nth(42);
    // Longhua: general hazards 500.00 a case, at most 1000.00 per reporter per month.
    let mut ids = Vec::new();
    let file = |case_ref: String, p: String, verified_on: &'static str, kind: &'static str| {
        let app = &app;
        let token = cast.case.token.clone();
        async move {
            app.post(
                "/v1/rewards",
                &token,
                reward_body(
                    &case_ref,
                    "440309",
                    verified_on,
                    json!({"kind": kind}),
                    vec![json!({"pseudonym": p})],
                ),
            )
            .await
            .ok(201, "file")
        }
    };
    let mut seals = Vec::new();
    for n in 1..=6 {
        let s = app
            .seal(
                &cast.case.token,
                &Report::named(
                    "440309",
                    &format!("LH-{n}"),
                    "2026-10-20T08:00:00+08:00",
                    &person,
                ),
            )
            .await;
        assert_eq!(
            s["reporter_seen_before"],
            n > 1,
            "same ID, same vault record: {s}"
        );
        seals.push(s["pseudonym"].as_str().unwrap().to_owned());
    }
    for (n, day) in [(0usize, "2026-11-03"), (1, "2026-11-10")] {
        let v = file(
            format!("LH-{}", n + 1),
            seals[n].clone(),
            day,
            "general_hazard",
        )
        .await;
        assert_eq!(v["policy"]["id"], "guangdong-shenzhen-longhua-2022", "{v}");
        assert_eq!(award_of(&v, &seals[n]), ("500.00".into(), None), "{v}");
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    // The third case of the same kind in November: the month's 1000.00 is used up.
    let v = file(
        "LH-3".into(),
        seals[2].clone(),
        "2026-11-17",
        "general_hazard",
    )
    .await;
    assert_eq!(
        award_of(&v, &seals[2]),
        ("0.00".into(), Some("monthly_cap_reached".into())),
        "{v}"
    );
    assert_eq!(v["amount"], "0.00", "{v}");
    // Another kind has its own cap; another month starts afresh; another person is not
    // affected.
    let v = file("LH-4".into(), seals[3].clone(), "2026-11-18", "violation").await;
    assert_eq!(award_of(&v, &seals[3]), ("500.00".into(), None), "{v}");
    let v = file(
        "LH-5".into(),
        seals[4].clone(),
        "2026-10-30",
        "general_hazard",
    )
    .await;
    assert_eq!(award_of(&v, &seals[4]), ("500.00".into(), None), "{v}");
    let po = app
        .seal_p(
            &cast.case.token,
            &Report::named("440309", "LH-O", "2026-10-20T08:00:00+08:00", &other),
        )
        .await;
    let v = file("LH-O".into(), po.clone(), "2026-11-19", "general_hazard").await;
    assert_eq!(award_of(&v, &po), ("500.00".into(), None), "{v}");
    // A rejected reward frees its share of the month.
    app.post(
        &format!("/v1/rewards/{}/reject", ids[1]),
        &cast.fin1.token,
        json!({"reason": "核查后撤销"}),
    )
    .await
    .ok(200, "reject");
    let v = file(
        "LH-6".into(),
        seals[5].clone(),
        "2026-11-19",
        "general_hazard",
    )
    .await;
    assert_eq!(award_of(&v, &seals[5]), ("500.00".into(), None), "{v}");
    // The link is never exposed: no reward view carries a reporter id.
    let all = app
        .get("/v1/rewards?jurisdiction=440309", &cast.auditor.token)
        .await
        .ok(200, "list");
    let text = all.to_string();
    assert!(!text.contains("reporter_id"), "{text}");
    assert!(!text.contains(&person.id_number), "{text}");
}

/// A joint group whose first signatory is supervisory staff (excluded by the national
/// measures): the group's award must not go to the excluded member — it goes to the first
/// *eligible* signatory, and the excluded one keeps `excluded_reporter`.
async fn joint_report_excluded_first_signatory_gets_nothing(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let pa = app
        .seal_p(
            &cast.case.token,
            &Report::named(
                "110105",
                "BJ-JOINT-X",
                "2026-11-02T08:00:00+08:00",
                &Person::nth(24),
            ),
        )
        .await;
    let pb = app
        .seal_p(
            &cast.case.token,
            &Report::named(
                "110105",
                "BJ-JOINT-X",
                "2026-11-02T08:00:00+08:00",
                &Person::nth(25),
            ),
        )
        .await;
    let v = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                "BJ-JOINT-X",
                "110105",
                "2026-11-18",
                major_hazard("100000.00"),
                vec![
                    json!({"pseudonym": pa, "joint_group": "g", "signatory_order": 1,
                           "supervisory_staff": true}),
                    json!({"pseudonym": pb, "joint_group": "g", "signatory_order": 2}),
                ],
            ),
        )
        .await
        .ok(201, "file");
    assert_eq!(
        award_of(&v, &pa),
        ("0.00".into(), Some("excluded_reporter".into())),
        "an excluded reporter is never paid, even as first signatory: {v}"
    );
    assert_eq!(award_of(&v, &pb), ("15000.00".into(), None), "{v}");
}

/// The employee flag is the vault's own record of the report (sealed with it), not the
/// filer's: Shandong 100000.00 → 60000.00 for an employee.
async fn employee_uplift_from_the_sealed_record(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let person = Person::nth(26);
    let s = app
        .seal(
            &cast.case.token,
            &Report {
                jurisdiction: "370100",
                case_ref: "SD-EMP-1",
                received_at: "2026-11-02T08:00:00+08:00",
                person: Some(&person),
                employee: true,
            },
        )
        .await;
    let p = s["pseudonym"].as_str().unwrap().to_owned();
    let v = app
        .post(
            "/v1/rewards",
            &cast.case.token,
            reward_body(
                "SD-EMP-1",
                "370100",
                "2026-11-18",
                major_hazard("100000.00"),
                vec![json!({"pseudonym": p})],
            ),
        )
        .await
        .ok(201, "file");
    assert_eq!(award_of(&v, &p), ("60000.00".into(), None), "{v}");
    assert_eq!(
        v["approvals_required"], 2,
        "60000.00 needs two approvals: {v}"
    );
}

/// Per-reporter monthly caps hold when two filings for the same person arrive at once
/// (Longhua: 1000.00 a month for general hazards; 500.00 already awarded, so at most one
/// more 500.00).
async fn monthly_cap_holds_under_concurrent_filings(engine: Engine) {
    let app = spawn(engine).await;
    let cast = app.cast().await;
    let person = Person::nth(43);
    let months = ["2026-05", "2026-06", "2026-07", "2026-08", "2026-09"];
    let mut ps = Vec::new();
    for n in 0..months.len() * 3 {
        ps.push(
            app.seal_p(
                &cast.case.token,
                &Report::named(
                    "440309",
                    &format!("LHC-{n}"),
                    "2026-04-20T08:00:00+08:00",
                    &person,
                ),
            )
            .await,
        );
    }
    let file = |n: usize, day: String| {
        let app = &app;
        let token = cast.case.token.clone();
        let p = ps[n].clone();
        async move {
            app.post(
                "/v1/rewards",
                &token,
                reward_body(
                    &format!("LHC-{n}"),
                    "440309",
                    &day,
                    json!({"kind": "general_hazard"}),
                    vec![json!({"pseudonym": p})],
                ),
            )
            .await
            .ok(201, "file")
        }
    };
    for (m, month) in months.iter().enumerate() {
        let v = file(m * 3, format!("{month}-05")).await;
        assert_eq!(v["amount"], "500.00", "{v}");
        let (a, b) = tokio::join!(
            file(m * 3 + 1, format!("{month}-10")),
            file(m * 3 + 2, format!("{month}-11"))
        );
        // In fen.
        let total: i64 = [&a, &b]
            .iter()
            .map(|v| {
                v["amount"]
                    .as_str()
                    .unwrap()
                    .replace('.', "")
                    .parse::<i64>()
                    .unwrap()
            })
            .sum();
        assert!(
            total <= 50_000,
            "{month}: the month's cap of 1000.00 was exceeded by concurrent filings: \
             500.00 + {} + {}",
            a["amount"],
            b["amount"]
        );
    }
}

both_engines!(
    joint_report_excluded_first_signatory_gets_nothing,
    employee_uplift_from_the_sealed_record,
    monthly_cap_holds_under_concurrent_filings
);

both_engines!(
    first_reporter_by_acceptance,
    exclusions_and_anonymity,
    joint_report_first_signatory,
    joint_report_equal_split_fixture,
    monthly_cap_across_cases
);

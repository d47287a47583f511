//! The shipped policies: every file loads, and worked examples from the published figures
//! (REWARD-RULES.md) come out to the fen for every policy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{detail, pays, q, refuses, shipped};
use vault_policy::{Joint, OutcomeKind, Policy, PolicySet, Precision, Rounding, SelectError, Step};

// ------------------------------------------------------------------------------------------
// Loading
// ------------------------------------------------------------------------------------------

#[test]
fn every_shipped_file_loads() {
    let set = shipped();
    let ids: Vec<&str> = set.iter().map(Policy::id).collect();
    assert_eq!(
        ids,
        [
            "cn-mines-2021",
            "cn-national-2018",
            "fujian-xiamen",
            "guangdong-shenzhen-longhua-2022",
            "henan-2025",
            "jiangsu-taizhou-2020",
            "shandong-2021",
            "shandong-2022",
            "shanxi-housing-2024",
            "sichuan-2021",
        ]
    );
    let files = std::fs::read_dir(common::policies_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(files, set.len(), "every *.toml file is a loaded policy");
    for p in set.iter() {
        let bytes = std::fs::read(common::policies_dir().join(format!("{}.toml", p.id()))).unwrap();
        assert_eq!(
            p.source_text().as_bytes(),
            bytes,
            "{}: source text kept verbatim",
            p.id()
        );
        assert!(p.version().starts_with("sha256:") && p.version().len() == 7 + 64);
        // Re-reading the archived text gives the same policy and version.
        let again = Policy::parse("archived", p.source_text().as_bytes()).unwrap();
        assert_eq!(again.version(), p.version());
        assert_eq!(again.rules(), p.rules());
        assert!(!p.source().is_empty());
        // Every file keeps its source in comments too.
        assert!(
            p.source_text().starts_with('#'),
            "{}: no source comment",
            p.id()
        );
        // None of the sources state a rounding unit or a dual-approval threshold.
        assert_eq!(p.rounding(), Rounding::Fen);
        assert_eq!(p.dual_approval_threshold(), None);
    }
}

#[test]
fn version_is_sha256_of_the_file_bytes() {
    // Known answer: sha256 of these exact bytes, computed independently (Python hashlib).
    let text = "format = 1\nid = \"kat\"\nsource = \"test\"\neffective_from = \"2020-01-01\"\njurisdiction = \"000000\"\nsectors = \"all\"\n\n[rules.general_hazard]\ntype = \"fixed\"\namount = \"500.00\"\n";
    let p = Policy::parse("kat.toml", text.as_bytes()).unwrap();
    assert_eq!(p.version(), KAT_VERSION);
    // One byte more (a trailing newline) is another version.
    let mut changed = text.to_owned();
    changed.push('\n');
    let p2 = Policy::parse("kat.toml", changed.as_bytes()).unwrap();
    assert_ne!(p2.version(), p.version());
}

const KAT_VERSION: &str = include_str!("kat_version.txt");

#[test]
fn metadata_is_carried() {
    let set = shipped();
    let national = set.get("cn-national-2018").unwrap();
    assert_eq!(national.document_number(), Some("安监总财〔2018〕19号"));
    assert_eq!(national.title(), Some("安全生产领域举报奖励办法"));
    assert_eq!(
        national.issuing_bodies(),
        ["国家安全生产监督管理总局", "财政部"]
    );
    assert_eq!(national.claim_days(), Some(60));
    assert_eq!(national.joint(), Joint::FirstSignatory);
    assert!(!national.eligibility().anonymous_allowed());
    assert!(national.eligibility().excludes_supervisory_staff());
    assert!(national.eligibility().supervisory_stated());
    assert_eq!(national.effective_from().unwrap().to_string(), "2018-01-04");
    assert!(national.employee_uplift().is_none());

    let longhua = set.get("guangdong-shenzhen-longhua-2022").unwrap();
    assert_eq!(
        longhua
            .monthly_cap(OutcomeKind::GeneralHazard)
            .unwrap()
            .to_string(),
        "1000.00"
    );
    assert_eq!(
        longhua
            .monthly_cap(OutcomeKind::Violation)
            .unwrap()
            .to_string(),
        "1000.00"
    );
    assert_eq!(longhua.monthly_cap(OutcomeKind::MajorHazard), None);

    let henan = set.get("henan-2025").unwrap();
    assert_eq!(
        henan.effective_from().unwrap().precision(),
        Precision::Month
    );
    assert_eq!(henan.claim_days(), None, "not in the sources");

    let xiamen = set.get("fujian-xiamen").unwrap();
    assert!(xiamen.effective_from().is_none(), "no date in the sources");
    assert_eq!(xiamen.title(), None);
    assert!(xiamen.issuing_bodies().is_empty());

    let shandong = set.get("shandong-2022").unwrap();
    assert_eq!(shandong.employee_uplift().unwrap().family_members.len(), 3);

    // The policies endpoint can serialise a policy as JSON, money as strings.
    let json = serde_json::to_value(national).unwrap();
    assert_eq!(json["rules"]["major_hazard"]["floor"], "3000.00");
    assert_eq!(json["rules"]["major_hazard"]["type"], "percent");
    assert_eq!(
        json["rules"]["concealed_accident"]["per_death"]["especially_major"],
        "60000.00"
    );
    assert_eq!(json["version"], national.version());
    assert_eq!(json["jurisdiction"], "000000");
    assert_eq!(json["sectors"], "all");
    let mines = serde_json::to_value(set.get("cn-mines-2021").unwrap()).unwrap();
    assert_eq!(mines["sectors"][0], "coal_mine");
    assert_eq!(
        mines["rules"]["major_hazard"]["percent_by_grade"]["2"],
        "12"
    );
}

// ------------------------------------------------------------------------------------------
// Selection
// ------------------------------------------------------------------------------------------

#[test]
fn selection_by_date_jurisdiction_and_sector() {
    let s = shipped();
    let pick = |j: &str, industry: &str, date: &str| {
        q(j, "major_hazard")
            .industry(industry)
            .on(date)
            .penalty("100000.00")
            .quote(&s)
            .policy
            .id
    };
    // National everywhere without a local policy.
    assert_eq!(pick("110105", "chemical", "2026-11-01"), "cn-national-2018");
    // Shanxi: housing sector only, from 2024-04-16.
    assert_eq!(
        pick("140105", "housing_construction", "2024-04-15"),
        "cn-national-2018"
    );
    assert_eq!(
        pick("140105", "housing_construction", "2024-04-16"),
        "shanxi-housing-2024"
    );
    assert_eq!(pick("140105", "chemical", "2026-11-01"), "cn-national-2018");
    // A sector-specific policy comes before a general one, even a more local one.
    assert_eq!(pick("370100", "coal_mine", "2026-11-01"), "cn-mines-2021");
    assert_eq!(
        pick("370100", "metal_nonmetal_mine", "2026-11-01"),
        "cn-mines-2021"
    );
    assert_eq!(
        pick("370100", "oil_extraction", "2026-11-01"),
        "shandong-2022"
    );
    assert_eq!(
        pick("140105", "coal_mine", "2020-12-31"),
        "cn-national-2018"
    );
    assert_eq!(pick("140105", "coal_mine", "2021-01-01"), "cn-mines-2021");
    // Then the most specific jurisdiction.
    assert_eq!(
        pick("370100", "hazardous_chemicals", "2026-11-01"),
        "shandong-2022"
    );
    assert_eq!(
        pick("440309", "other", "2026-11-01"),
        "guangdong-shenzhen-longhua-2022"
    );
    assert_eq!(pick("440303", "other", "2026-11-01"), "cn-national-2018");
    assert_eq!(pick("440300", "other", "2026-11-01"), "cn-national-2018");
    // Versions by date.
    assert_eq!(pick("370100", "other", "2020-12-31"), "cn-national-2018");
    assert_eq!(pick("370100", "other", "2021-01-01"), "shandong-2021");
    assert_eq!(pick("370100", "other", "2021-12-31"), "shandong-2021");
    assert_eq!(pick("370100", "other", "2022-01-01"), "shandong-2022");
    assert_eq!(pick("510105", "other", "2021-09-14"), "cn-national-2018");
    assert_eq!(pick("510105", "other", "2021-09-15"), "sichuan-2021");
    assert_eq!(pick("410105", "other", "2025-04-30"), "cn-national-2018");
    assert_eq!(pick("410105", "other", "2025-05-01"), "henan-2025");
    assert_eq!(
        pick("321202", "other", "2020-01-01"),
        "jiangsu-taizhou-2020"
    );
    // Xiamen: no start date in the sources, so never chosen automatically.
    assert_eq!(pick("350203", "other", "2026-11-01"), "cn-national-2018");
}

#[test]
fn fail_selection_errors() {
    let s = shipped();
    let err = |qq: common::Q| qq.penalty("1.00").try_quote(&s).unwrap_err();
    // A date before every policy.
    let e = err(q("110105", "major_hazard").on("2018-01-03"));
    assert!(matches!(e, SelectError::NoPolicyInForce { .. }));
    assert_eq!(e.code(), "no_policy_in_force");
    assert_eq!(e.field(), "verified_on");
    assert_eq!(
        e.to_string(),
        "no policy in force on 2018-01-03 covers jurisdiction 110105 and industry other"
    );
    // Unknown policy id.
    let e = err(q("110105", "major_hazard").policy("no-such-policy"));
    assert_eq!(e, SelectError::UnknownPolicy("no-such-policy".to_owned()));
    assert_eq!(e.code(), "unknown_policy");
    assert_eq!(e.field(), "policy_id");
    // Named, but for another jurisdiction.
    let e = err(q("350100", "major_hazard").policy("fujian-xiamen"));
    assert_eq!(e.code(), "policy_out_of_jurisdiction");
    assert_eq!(
        e.to_string(),
        "policy `fujian-xiamen` covers jurisdiction 350200, which does not include 350100"
    );
    // Named, but for another sector.
    let e = err(q("140105", "major_hazard").policy("shanxi-housing-2024"));
    assert_eq!(e.code(), "policy_sector_not_covered");
    // Named, but not yet in force / ended.
    let e = err(q("370100", "major_hazard")
        .policy("shandong-2022")
        .on("2021-06-01"));
    assert_eq!(e.code(), "policy_not_in_force");
    let e = err(q("370100", "major_hazard")
        .policy("shandong-2021")
        .on("2022-01-01"));
    assert_eq!(e.code(), "policy_not_in_force");
    assert_eq!(
        e.to_string(),
        "policy `shandong-2021` is not in force on 2022-01-01"
    );
}

// ------------------------------------------------------------------------------------------
// National: 安监总财〔2018〕19号
// ------------------------------------------------------------------------------------------

const N: &str = "cn-national-2018";

#[test]
fn national_percent_floor_cap_and_boundaries() {
    let s = shipped();
    let major = |p: &str| q("110105", "major_hazard").penalty(p).quote(&s);
    let quote = pays(major("100000.00"), N, "15000.00");
    assert_eq!(
        detail(&quote, Step::Base),
        "15% of penalty 100000.00 = 15000.00"
    );
    assert_eq!(
        detail(&quote, Step::Floor),
        "15000.00 is not below the floor 3000.00: unchanged"
    );
    assert_eq!(
        detail(&quote, Step::Cap),
        "15000.00 is within the cap 300000.00: unchanged"
    );
    // Floor.
    let quote = pays(major("10000.00"), N, "3000.00");
    assert_eq!(
        detail(&quote, Step::Floor),
        "1500.00 is below the floor 3000.00, so 3000.00"
    );
    pays(major("0.01"), N, "3000.00");
    // Exactly at the floor, and one fen below it.
    pays(major("20000.00"), N, "3000.00");
    let quote = pays(major("19999.99"), N, "3000.00");
    assert_eq!(
        detail(&quote, Step::Base),
        "15% of penalty 19999.99 = 2999.9985"
    );
    pays(major("20000.07"), N, "3000.01"); // 3000.0105
    // Exactly at the cap, and one fen above it.
    pays(major("2000000.00"), N, "300000.00");
    let quote = pays(major("2000000.01"), N, "300000.00");
    assert_eq!(
        detail(&quote, Step::Cap),
        "300000.0015 exceeds the cap 300000.00, so 300000.00"
    );
    pays(major("99999999.99"), N, "300000.00");
    // Fen precision, rounded once at the end.
    let quote = pays(major("123456.78"), N, "18518.52"); // 18518.517
    assert_eq!(
        detail(&quote, Step::Rounding),
        "18518.517 rounded half away from zero to the fen (0.01 yuan) = 18518.52"
    );
    // Half away from zero, not half to even: 15000.045 → 15000.05 (banker's: 15000.04).
    pays(major("100000.30"), N, "15000.05");
    pays(major("100000.10"), N, "15000.02"); // 15000.015
    pays(major("100000.03"), N, "15000.00"); // 15000.0045
    // Illegal production: the same figures.
    pays(
        q("110105", "illegal_production")
            .penalty("54321.00")
            .quote(&s),
        N,
        "8148.15", // 8148.15 exactly
    );
}

#[test]
fn national_per_death_by_level_with_cap() {
    let s = shipped();
    let death = |level: &str, n: u32| {
        q("110105", "concealed_accident")
            .level(level)
            .deaths(n)
            .quote(&s)
    };
    let quote = pays(death("general", 3), N, "90000.00");
    assert_eq!(
        detail(&quote, Step::Base),
        "3 verified concealed deaths × 30000.00 per death for a 一般事故 general accident = 90000.00"
    );
    pays(death("general", 1), N, "30000.00");
    pays(death("larger", 1), N, "40000.00");
    pays(death("major", 1), N, "50000.00");
    pays(death("especially_major", 1), N, "60000.00");
    pays(death("general", 10), N, "300000.00"); // exactly the cap
    let quote = pays(death("general", 11), N, "300000.00"); // 330000
    assert_eq!(
        detail(&quote, Step::Cap),
        "330000.00 exceeds the cap 300000.00, so 300000.00"
    );
    pays(death("especially_major", 5), N, "300000.00");
    pays(death("especially_major", 6), N, "300000.00");
    pays(death("larger", 7), N, "280000.00");
    pays(death("major", 7), N, "300000.00"); // 350000 capped
    // The level is an input: 1 death in an especially major accident pays 60000.
    refuses(death("general", 0), N, "no_concealed_deaths");
    refuses(
        q("110105", "concealed_accident").level("general").quote(&s),
        N,
        "missing_concealed_deaths",
    );
    refuses(
        q("110105", "concealed_accident").deaths(2).quote(&s),
        N,
        "missing_accident_level",
    );
}

#[test]
fn national_eligibility_and_uncovered_kinds() {
    let s = shipped();
    let base = q("110105", "major_hazard").penalty("100000.00");
    // Real-name only.
    let quote = refuses(
        base.clone().anonymous().quote(&s),
        N,
        "anonymous_not_eligible",
    );
    assert_eq!(
        detail(&quote, Step::Eligibility),
        "the reporter is anonymous; this policy rewards real-name reporters only"
    );
    // Supervisory staff excluded (M).
    let quote = refuses(base.clone().supervisory().quote(&s), N, "excluded_reporter");
    assert!(detail(&quote, Step::Eligibility).contains("excluded by this policy"));
    // No employee uplift nationally: an employee gets the same, and the trace says why.
    let quote = pays(base.clone().employee().quote(&s), N, "15000.00");
    assert_eq!(
        detail(&quote, Step::Uplift),
        "the reporter is an employee of the reported unit, but this policy has no employee uplift"
    );
    // No fine and no no-penalty amount.
    let quote = refuses(
        q("110105", "major_hazard").penalty("0.00").quote(&s),
        N,
        "no_penalty",
    );
    assert!(detail(&quote, Step::Base).starts_with("no administrative penalty (0.00)"));
    refuses(q("110105", "major_hazard").quote(&s), N, "missing_penalty");
    // Kinds the national figures do not cover.
    let quote = refuses(
        q("110105", "violation").penalty("1000.00").quote(&s),
        N,
        "kind_not_covered",
    );
    assert_eq!(
        detail(&quote, Step::Rule),
        "the policy has no rule for violation (安全生产违法行为 violation); it covers: major_hazard, illegal_production, concealed_accident"
    );
    refuses(
        q("110105", "general_hazard").proposed("500.00").quote(&s),
        N,
        "kind_not_covered",
    );
}

#[test]
fn trace_reads_as_a_whole() {
    let s = shipped();
    let quote = q("110105", "major_hazard").penalty("100000.00").quote(&s);
    let steps: Vec<Step> = quote.trace.iter().map(|t| t.step).collect();
    assert_eq!(
        steps,
        [
            Step::Policy,
            Step::Rule,
            Step::Eligibility,
            Step::Base,
            Step::Floor,
            Step::Cap,
            Step::Rounding,
            Step::Result
        ]
    );
    let rules: Vec<&str> = quote.trace.iter().map(|t| t.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "policy",
            "rules.major_hazard",
            "eligibility",
            "rules.major_hazard.percent",
            "rules.major_hazard.floor",
            "rules.major_hazard.cap",
            "rounding",
            "result"
        ]
    );
    assert!(detail(&quote, Step::Policy).starts_with(
        "policy cn-national-2018 《安全生产领域举报奖励办法》 安监总财〔2018〕19号, version sha256:"
    ));
    assert_eq!(detail(&quote, Step::Result), "eligible: 15000.00 CNY");
    // The JSON the service passes through (API.md).
    let json = serde_json::to_value(&quote).unwrap();
    assert_eq!(json["eligible"], true);
    assert_eq!(json["amount"], "15000.00");
    assert_eq!(json["currency"], "CNY");
    assert_eq!(json["policy"]["id"], N);
    assert!(
        json["policy"]["version"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(json.get("reason").is_none());
    assert_eq!(json["trace"][3]["step"], "base");
    assert_eq!(json["trace"][3]["rule"], "rules.major_hazard.percent");
    assert_eq!(
        json["trace"][3]["detail"],
        "15% of penalty 100000.00 = 15000.00"
    );
    let refused = q("110105", "major_hazard")
        .penalty("1.00")
        .anonymous()
        .quote(&s);
    let json = serde_json::to_value(&refused).unwrap();
    assert_eq!(json["reason"], "anonymous_not_eligible");
    assert_eq!(json["amount"], "0.00");
}

// ------------------------------------------------------------------------------------------
// Shanxi housing & construction: 晋建质规字〔2024〕75号
// ------------------------------------------------------------------------------------------

#[test]
fn shanxi_housing_as_national_with_anonymous_reports() {
    let s = shipped();
    const P: &str = "shanxi-housing-2024";
    let housing = |kind: &str| {
        q("140105", kind)
            .industry("housing_construction")
            .on("2025-03-01")
    };
    pays(
        housing("major_hazard").penalty("100000.00").quote(&s),
        P,
        "15000.00",
    );
    pays(
        housing("illegal_production").penalty("10000.00").quote(&s),
        P,
        "3000.00",
    );
    pays(
        housing("major_hazard").penalty("2500000.00").quote(&s),
        P,
        "300000.00",
    );
    pays(
        housing("concealed_accident")
            .level("major")
            .deaths(6)
            .quote(&s),
        P,
        "300000.00",
    );
    pays(
        housing("concealed_accident")
            .level("larger")
            .deaths(2)
            .quote(&s),
        P,
        "80000.00",
    );
    // Anonymous reports are rewarded here (claim code) ...
    let quote = pays(
        housing("major_hazard")
            .penalty("100000.00")
            .anonymous()
            .quote(&s),
        P,
        "15000.00",
    );
    assert!(detail(&quote, Step::Eligibility).starts_with("anonymous reporter"));
    // ... but not the day before the measure, under the national one.
    refuses(
        housing("major_hazard")
            .penalty("100000.00")
            .anonymous()
            .on("2024-04-15")
            .quote(&s),
        N,
        "anonymous_not_eligible",
    );
    // Silent on supervisory staff: the national exclusion applies, and the trace says so.
    let quote = refuses(
        housing("major_hazard")
            .penalty("100000.00")
            .supervisory()
            .quote(&s),
        P,
        "excluded_reporter",
    );
    assert!(detail(&quote, Step::Eligibility).contains("the national measure's exclusion applies"));
    refuses(
        housing("violation").penalty("1.00").quote(&s),
        P,
        "kind_not_covered",
    );
}

// ------------------------------------------------------------------------------------------
// Sichuan 2021
// ------------------------------------------------------------------------------------------

#[test]
fn sichuan_no_penalty_amount_floor_and_caps() {
    let s = shipped();
    const P: &str = "sichuan-2021";
    let major = |p: &str| q("510105", "major_hazard").penalty(p);
    // Verified, no fine: 1,000.
    let quote = pays(major("0.00").quote(&s), P, "1000.00");
    assert_eq!(
        detail(&quote, Step::Base),
        "no administrative penalty (0.00): the amount for a verified report without a fine is 1000.00; floor and cap do not apply"
    );
    pays(
        q("510105", "illegal_production").penalty("0").quote(&s),
        P,
        "1000.00",
    );
    // The smallest fine already earns the floor, above the no-fine amount.
    pays(major("0.01").quote(&s), P, "3000.00");
    pays(major("19999.99").quote(&s), P, "3000.00");
    pays(major("100000.00").quote(&s), P, "15000.00");
    pays(major("2000000.00").quote(&s), P, "300000.00");
    pays(major("3000000.00").quote(&s), P, "300000.00");
    pays(
        q("510105", "concealed_accident")
            .level("general")
            .deaths(2)
            .quote(&s),
        P,
        "60000.00",
    );
    pays(
        q("510105", "concealed_accident")
            .level("especially_major")
            .deaths(9)
            .quote(&s),
        P,
        "300000.00",
    );
    // Employees: capped at 300,000, but the sources give no uplift rate: no uplift.
    let quote = pays(major("100000.00").employee().quote(&s), P, "15000.00");
    assert_eq!(
        detail(&quote, Step::Uplift),
        "the reporter is an employee of the reported unit: the policy states no uplift rate or minimum, so the uplift is 0.00; 15000.00 + 0.00 = 15000.00"
    );
    assert_eq!(
        detail(&quote, Step::UpliftCap),
        "15000.00 is within the total cap for an employee 300000.00: unchanged"
    );
    pays(major("3000000.00").employee().quote(&s), P, "300000.00");
    // Before 2021-09-15 the national policy has no no-fine amount.
    refuses(major("0.00").on("2021-09-14").quote(&s), N, "no_penalty");
}

// ------------------------------------------------------------------------------------------
// Shandong 2021 and 2021 + 2022
// ------------------------------------------------------------------------------------------

#[test]
fn shandong_fifty_percent_with_employee_uplift_and_ranges() {
    let s = shipped();
    const P: &str = "shandong-2022";
    // The API.md example: 370100, hazardous chemicals, 100000.00 fine.
    let major = |p: &str| {
        q("370100", "major_hazard")
            .industry("hazardous_chemicals")
            .penalty(p)
    };
    let quote = pays(major("100000.00").quote(&s), P, "50000.00");
    assert_eq!(
        detail(&quote, Step::Base),
        "50% of penalty 100000.00 = 50000.00"
    );
    // Floor 5,000, exact boundary and fen rounding.
    pays(major("10000.00").quote(&s), P, "5000.00");
    pays(major("9999.99").quote(&s), P, "5000.00"); // 4999.995
    pays(major("10000.01").quote(&s), P, "5000.01"); // 5000.005 half away from zero
    // Cap 500,000.
    pays(major("1000000.00").quote(&s), P, "500000.00");
    pays(major("1000000.02").quote(&s), P, "500000.00");
    pays(
        q("370100", "violation").penalty("30000.00").quote(&s),
        P,
        "15000.00",
    );
    // Employee: +20%.
    let quote = pays(major("100000.00").employee().quote(&s), P, "60000.00");
    assert_eq!(
        detail(&quote, Step::Uplift),
        "the reporter is an employee of the reported unit: uplift 20% of 50000.00 = 10000.00; 50000.00 + 10000.00 = 60000.00"
    );
    pays(major("10000.00").employee().quote(&s), P, "6000.00");
    // Employee uplift reaching its cap: one fen below, rounding up to it, and over it.
    pays(major("833333.32").employee().quote(&s), P, "499999.99"); // 416666.66 + 83333.332
    pays(major("833333.33").employee().quote(&s), P, "500000.00"); // 499999.998 → fen
    let quote = pays(major("1000000.00").employee().quote(&s), P, "500000.00");
    assert_eq!(
        detail(&quote, Step::UpliftCap),
        "600000.00 exceeds the total cap for an employee 500000.00, so 500000.00"
    );
    // Per death, cap 500,000.
    pays(
        q("370100", "concealed_accident")
            .level("larger")
            .deaths(9)
            .quote(&s),
        P,
        "360000.00",
    );
    pays(
        q("370100", "concealed_accident")
            .level("larger")
            .deaths(13)
            .quote(&s),
        P,
        "500000.00",
    );
    pays(
        q("370100", "concealed_accident")
            .level("especially_major")
            .deaths(8)
            .employee()
            .quote(&s),
        P,
        "500000.00", // 480000 + 96000 = 576000, capped
    );
    // General hazards: a proposed amount within 500–5,000.
    let gh = |a: &str| q("370100", "general_hazard").proposed(a);
    let quote = pays(gh("2000.00").quote(&s), P, "2000.00");
    assert_eq!(
        detail(&quote, Step::Base),
        "proposed amount 2000.00 lies within the range 500.00 to 5000.00"
    );
    pays(gh("500.00").quote(&s), P, "500.00");
    pays(gh("5000.00").quote(&s), P, "5000.00");
    pays(gh("5000.00").employee().quote(&s), P, "6000.00");
    pays(gh("1234.56").employee().quote(&s), P, "1481.47"); // 1481.472
    let quote = refuses(gh("499.99").quote(&s), P, "amount_out_of_range");
    assert_eq!(
        detail(&quote, Step::Base),
        "proposed amount 499.99 is outside the range 500.00 to 5000.00"
    );
    refuses(gh("5000.01").quote(&s), P, "amount_out_of_range");
    refuses(
        q("370100", "general_hazard").quote(&s),
        P,
        "missing_proposed_amount",
    );
    // Illegal production is not among Shandong's figures.
    refuses(
        q("370100", "illegal_production")
            .penalty("100000.00")
            .quote(&s),
        P,
        "kind_not_covered",
    );
    // 2021 version: the same amounts, no employee uplift.
    let quote = pays(
        major("100000.00").on("2021-06-01").employee().quote(&s),
        "shandong-2021",
        "50000.00",
    );
    assert!(detail(&quote, Step::Uplift).contains("this policy has no employee uplift"));
    pays(
        q("370100", "general_hazard")
            .proposed("800.00")
            .on("2021-12-31")
            .quote(&s),
        "shandong-2021",
        "800.00",
    );
}

// ------------------------------------------------------------------------------------------
// Henan 2025
// ------------------------------------------------------------------------------------------

#[test]
fn henan_employee_uplift_minimum_and_cap() {
    let s = shipped();
    const P: &str = "henan-2025";
    let major = |p: &str| q("410105", "major_hazard").penalty(p);
    pays(major("100000.00").quote(&s), P, "15000.00");
    // 15% uplift: 15000 + 2250.
    pays(major("100000.00").employee().quote(&s), P, "17250.00");
    // Minimum uplift 1,000: base at the floor 3000, 15% = 450 < 1000.
    let quote = pays(major("10000.00").employee().quote(&s), P, "4000.00");
    assert_eq!(
        detail(&quote, Step::Uplift),
        "the reporter is an employee of the reported unit: uplift 15% of 3000.00 = 450.00, below the minimum uplift 1000.00, so uplift 1000.00; 3000.00 + 1000.00 = 4000.00"
    );
    // Exactly where the rate reaches the minimum: base 6666.67 → 1000.0005.
    pays(major("44444.47").employee().quote(&s), P, "7666.67"); // 6666.6705 + 1000.000575
    // Uplift meeting its cap: the base is already at 300,000, the employee gets 300,000.
    let quote = pays(major("2000000.00").employee().quote(&s), P, "300000.00");
    assert_eq!(
        detail(&quote, Step::UpliftCap),
        "345000.00 exceeds the total cap for an employee 300000.00, so 300000.00"
    );
    pays(major("1800000.00").employee().quote(&s), P, "300000.00"); // 270000 + 40500
    pays(major("1700000.00").employee().quote(&s), P, "293250.00"); // 255000 + 38250
    // Rounding once, at the end: 18518.517 + 2777.77755 = 21296.29455 → 21296.29
    // (rounding base and uplift separately would give 18518.52 + 2777.78 = 21296.30).
    let quote = pays(major("123456.78").employee().quote(&s), P, "21296.29");
    assert_eq!(
        detail(&quote, Step::Rounding),
        "21296.29455 rounded half away from zero to the fen (0.01 yuan) = 21296.29"
    );
    // Per death, with the uplift.
    pays(
        q("410105", "concealed_accident")
            .level("general")
            .deaths(2)
            .employee()
            .quote(&s),
        P,
        "69000.00",
    );
    pays(
        q("410105", "concealed_accident")
            .level("especially_major")
            .deaths(5)
            .employee()
            .quote(&s),
        P,
        "300000.00",
    );
    // An employee who is also supervisory staff is excluded (national rule by default).
    refuses(
        major("100000.00").employee().supervisory().quote(&s),
        P,
        "excluded_reporter",
    );
    // Before the revision: national, no uplift.
    pays(
        major("100000.00").employee().on("2025-04-30").quote(&s),
        N,
        "15000.00",
    );
}

// ------------------------------------------------------------------------------------------
// Xiamen
// ------------------------------------------------------------------------------------------

#[test]
fn xiamen_employee_uplift_thirty_percent_cap_390000() {
    let s = shipped();
    const P: &str = "fujian-xiamen";
    let named = |kind: &str| q("350203", kind).policy(P);
    pays(
        named("major_hazard").penalty("100000.00").quote(&s),
        P,
        "15000.00",
    );
    pays(
        named("major_hazard")
            .penalty("100000.00")
            .employee()
            .quote(&s),
        P,
        "19500.00",
    );
    pays(
        named("major_hazard")
            .penalty("10000.00")
            .employee()
            .quote(&s),
        P,
        "3900.00",
    );
    // The uplift meets its cap exactly: 300000 + 90000 = 390000.
    pays(
        named("major_hazard")
            .penalty("2000000.00")
            .employee()
            .quote(&s),
        P,
        "390000.00",
    );
    pays(
        named("major_hazard")
            .penalty("9000000.00")
            .employee()
            .quote(&s),
        P,
        "390000.00",
    );
    pays(
        named("concealed_accident")
            .level("especially_major")
            .deaths(5)
            .employee()
            .quote(&s),
        P,
        "390000.00",
    );
    pays(
        named("concealed_accident")
            .level("general")
            .deaths(1)
            .employee()
            .quote(&s),
        P,
        "39000.00",
    );
    // Fen: 18518.517 × 1.3 = 24074.0721.
    pays(
        named("illegal_production")
            .penalty("123456.78")
            .employee()
            .quote(&s),
        P,
        "24074.07",
    );
    let quote = named("major_hazard").penalty("100000.00").quote(&s);
    assert!(detail(&quote, Step::Policy).contains("start date not given in the sources"));
    // Not chosen automatically: no date in the sources.
    pays(
        q("350203", "major_hazard")
            .penalty("100000.00")
            .employee()
            .quote(&s),
        N,
        "15000.00",
    );
}

// ------------------------------------------------------------------------------------------
// Taizhou 2020
// ------------------------------------------------------------------------------------------

#[test]
fn taizhou_categories_and_unlisted_level() {
    let s = shipped();
    const P: &str = "jiangsu-taizhou-2020";
    let t = |kind: &str| q("321202", kind).on("2021-03-01");
    // General hazard: 500–2,000.
    pays(
        t("general_hazard").proposed("2000.00").quote(&s),
        P,
        "2000.00",
    );
    pays(
        t("general_hazard").proposed("500.00").quote(&s),
        P,
        "500.00",
    );
    refuses(
        t("general_hazard").proposed("2000.01").quote(&s),
        P,
        "amount_out_of_range",
    );
    refuses(
        t("general_hazard").proposed("0.00").quote(&s),
        P,
        "amount_out_of_range",
    );
    // Violation: 15%, floor 2,000, cap 100,000.
    pays(t("violation").penalty("10000.00").quote(&s), P, "2000.00");
    pays(t("violation").penalty("13333.33").quote(&s), P, "2000.00"); // 1999.9995
    pays(t("violation").penalty("13333.34").quote(&s), P, "2000.00"); // 2000.001
    pays(t("violation").penalty("13333.37").quote(&s), P, "2000.01"); // 2000.0055
    pays(t("violation").penalty("100000.00").quote(&s), P, "15000.00");
    pays(
        t("violation").penalty("666666.67").quote(&s),
        P,
        "100000.00",
    ); // 100000.0005 capped
    pays(
        t("violation").penalty("1000000.00").quote(&s),
        P,
        "100000.00",
    );
    // Major hazard / illegal production: 20%, floor 5,000, cap 300,000.
    pays(
        t("major_hazard").penalty("100000.00").quote(&s),
        P,
        "20000.00",
    );
    pays(
        t("major_hazard").penalty("10000.00").quote(&s),
        P,
        "5000.00",
    );
    pays(
        t("illegal_production").penalty("1500000.00").quote(&s),
        P,
        "300000.00",
    );
    pays(
        t("illegal_production").penalty("1499999.99").quote(&s),
        P,
        "300000.00",
    ); // 299999.998
    pays(
        t("illegal_production").penalty("1499999.97").quote(&s),
        P,
        "299999.99",
    ); // 299999.994
    // Per death: 30/40/50k, cap 500,000; no 特别重大 rate.
    pays(
        t("concealed_accident").level("major").deaths(10).quote(&s),
        P,
        "500000.00",
    );
    pays(
        t("concealed_accident").level("major").deaths(11).quote(&s),
        P,
        "500000.00",
    );
    pays(
        t("concealed_accident").level("larger").deaths(3).quote(&s),
        P,
        "120000.00",
    );
    let quote = refuses(
        t("concealed_accident")
            .level("especially_major")
            .deaths(1)
            .quote(&s),
        P,
        "level_not_covered",
    );
    assert_eq!(
        detail(&quote, Step::Base),
        "the policy gives no per-death amount for a 特别重大事故 especially major accident (it lists: general, larger, major)"
    );
    assert!(quote.reason.unwrap().is_input_error());
    assert_eq!(quote.reason.unwrap().field(), "outcome.accident_level");
    // No employee uplift in the sources.
    pays(
        t("major_hazard").penalty("100000.00").employee().quote(&s),
        P,
        "20000.00",
    );
}

// ------------------------------------------------------------------------------------------
// Mines 2021
// ------------------------------------------------------------------------------------------

#[test]
fn mines_graded_percentages() {
    let s = shipped();
    const P: &str = "cn-mines-2021";
    let mine = |kind: &str| q("140105", kind).industry("coal_mine").on("2022-06-01");
    let quote = pays(
        mine("major_hazard").penalty("100000.00").grade(1).quote(&s),
        P,
        "15000.00",
    );
    assert_eq!(
        detail(&quote, Step::Base),
        "report grade 1: 15% of penalty 100000.00 = 15000.00"
    );
    assert_eq!(quote.trace[3].rule, "rules.major_hazard.percent_by_grade.1");
    pays(
        mine("major_hazard").penalty("100000.00").grade(2).quote(&s),
        P,
        "12000.00",
    );
    pays(
        mine("illegal_production")
            .penalty("100000.00")
            .grade(2)
            .quote(&s),
        P,
        "12000.00",
    );
    // Floor and cap per grade.
    pays(
        mine("major_hazard").penalty("20000.00").grade(2).quote(&s),
        P,
        "3000.00",
    ); // 2400
    pays(
        mine("major_hazard").penalty("25000.00").grade(2).quote(&s),
        P,
        "3000.00",
    ); // exactly
    pays(
        mine("major_hazard").penalty("25000.05").grade(2).quote(&s),
        P,
        "3000.01",
    ); // 3000.006
    pays(
        mine("major_hazard")
            .penalty("2500000.00")
            .grade(2)
            .quote(&s),
        P,
        "300000.00",
    );
    pays(
        mine("major_hazard")
            .penalty("2500000.00")
            .grade(1)
            .quote(&s),
        P,
        "300000.00",
    );
    // Fen: 12% of 123456.78 = 14814.8136.
    pays(
        mine("major_hazard").penalty("123456.78").grade(2).quote(&s),
        P,
        "14814.81",
    );
    // Anonymous reports allowed.
    pays(
        mine("major_hazard")
            .penalty("100000.00")
            .grade(1)
            .anonymous()
            .quote(&s),
        P,
        "15000.00",
    );
    // Inputs a graded rule needs.
    let quote = refuses(
        mine("major_hazard").penalty("100000.00").quote(&s),
        P,
        "missing_report_grade",
    );
    assert!(quote.reason.unwrap().is_input_error());
    refuses(
        mine("major_hazard").penalty("100000.00").grade(3).quote(&s),
        P,
        "grade_not_covered",
    );
    // Kinds the mines figures do not cover.
    refuses(
        mine("concealed_accident")
            .level("general")
            .deaths(1)
            .quote(&s),
        P,
        "kind_not_covered",
    );
    // Metal and non-metal mines too; oil extraction is not a mine sector.
    pays(
        mine("major_hazard")
            .industry("metal_nonmetal_mine")
            .penalty("100000.00")
            .grade(1)
            .quote(&s),
        P,
        "15000.00",
    );
}

// ------------------------------------------------------------------------------------------
// Shenzhen Longhua 2022
// ------------------------------------------------------------------------------------------

#[test]
fn longhua_fixed_amounts_monthly_caps_and_major_hazard_floor() {
    let s = shipped();
    const P: &str = "guangdong-shenzhen-longhua-2022";
    let l = |kind: &str| q("440309", kind).on("2023-05-01");
    let quote = pays(l("general_hazard").quote(&s), P, "500.00");
    assert_eq!(detail(&quote, Step::Base), "fixed amount per case: 500.00");
    assert_eq!(
        detail(&quote, Step::MonthlyCap),
        "at most 1000.00 per reporter per calendar month for general_hazard, across cases: checked when the reward is filed, not in this quote"
    );
    pays(l("violation").penalty("80000.00").quote(&s), P, "500.00");
    // Major hazard: at least 3,000, no rate or maximum in the sources.
    pays(
        l("major_hazard").proposed("3000.00").quote(&s),
        P,
        "3000.00",
    );
    pays(
        l("major_hazard").proposed("12000.00").quote(&s),
        P,
        "12000.00",
    );
    refuses(
        l("major_hazard").proposed("2999.99").quote(&s),
        P,
        "amount_out_of_range",
    );
    refuses(
        l("major_hazard").penalty("100000.00").quote(&s),
        P,
        "missing_proposed_amount",
    );
    // Per death as national.
    pays(
        l("concealed_accident").level("major").deaths(2).quote(&s),
        P,
        "100000.00",
    );
    pays(
        l("concealed_accident")
            .level("especially_major")
            .deaths(6)
            .quote(&s),
        P,
        "300000.00",
    );
    refuses(
        l("illegal_production").penalty("100000.00").quote(&s),
        P,
        "kind_not_covered",
    );
    // A neighbouring district is under the national policy.
    refuses(
        q("440303", "general_hazard").quote(&s),
        N,
        "kind_not_covered",
    );
    // Before 2022: national.
    refuses(
        l("general_hazard").on("2021-12-31").quote(&s),
        N,
        "kind_not_covered",
    );
}

// ------------------------------------------------------------------------------------------
// Bad input on the wire
// ------------------------------------------------------------------------------------------

#[test]
fn fail_bad_quote_input_is_refused_with_a_clear_message() {
    let err = |v: serde_json::Value| -> String {
        serde_json::from_value::<vault_policy::QuoteInput>(v)
            .unwrap_err()
            .to_string()
    };
    let base = q("110105", "major_hazard").penalty("100.00").0;
    let with = |path: &[&str], value: serde_json::Value| {
        let mut v = base.clone();
        match path {
            [a] => v[*a] = value,
            [a, b] => v[*a][*b] = value,
            _ => unreachable!(),
        }
        v
    };
    assert!(
        err(with(&["outcome", "penalty"], "-100.00".into())).contains("is not a decimal amount")
    );
    assert!(err(with(&["outcome", "penalty"], "abc".into())).contains("is not a decimal amount"));
    assert!(err(with(&["outcome", "penalty"], "1.005".into())).contains("is not a decimal amount"));
    assert!(
        err(with(&["outcome", "penalty"], serde_json::json!(100.5))).contains("decimal string")
    );
    assert!(err(with(&["outcome", "kind"], "arson".into())).contains("unknown variant `arson`"));
    assert!(
        err(with(&["outcome", "accident_level"], "huge".into())).contains("unknown variant `huge`")
    );
    assert!(err(with(&["industry"], "mining".into())).contains("unknown variant `mining`"));
    assert!(err(with(&["jurisdiction"], "3701".into())).contains("6-digit"));
    assert!(err(with(&["verified_on"], "2026-13-01".into())).contains("is not a date"));
    assert!(err(with(&["outcome", "extra"], "x".into())).contains("unknown field `extra`"));
    assert!(err(with(&["surprise"], "x".into())).contains("unknown field `surprise`"));
    let mut no_reporter_flag = base.clone();
    no_reporter_flag["reporter"]
        .as_object_mut()
        .unwrap()
        .remove("anonymous");
    assert!(err(no_reporter_flag).contains("missing field `anonymous`"));
    // A request round-trips through JSON unchanged (the offline CLI reads the same).
    let input: vault_policy::QuoteInput = serde_json::from_value(base.clone()).unwrap();
    assert_eq!(serde_json::to_value(&input).unwrap(), base);
}

#[test]
fn select_and_evaluate_separately_agree_with_quote() {
    let s: PolicySet = shipped();
    let input = q("370100", "major_hazard")
        .penalty("100000.00")
        .employee()
        .input();
    let p = s
        .select(input.jurisdiction, input.industry, input.verified_on, None)
        .unwrap();
    assert_eq!(vault_policy::evaluate(p, &input), s.quote(&input).unwrap());
    let d = vault_policy::evaluate_amount(p, &input);
    assert!(d.eligible);
    assert_eq!(d.amount.to_string(), "60000.00");
}

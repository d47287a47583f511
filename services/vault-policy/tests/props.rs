//! Properties of evaluation over every shipped policy (and two synthetic ones that use the
//! format's other options): never negative, never above the applicable cap, non-decreasing
//! in the penalty, never lower for an employee, exact to the rounding unit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use rust_decimal::Decimal;
use time::{Date, Month};
use vault_policy::{
    AccidentLevel, Industry, Jurisdiction, Money, Outcome, OutcomeKind, Policy, PolicySet,
    QuoteInput, Reporter, Step, evaluate, evaluate_amount,
};

/// Uses the options no shipped policy uses: yuan rounding, a minimum uplift with no rate,
/// graded and fixed rules, uplift limited to some kinds.
const SYNTHETIC_YUAN: &str = r#"
format = 1
id = "synthetic-yuan"
source = "test"
effective_from = "2020-01-01"
jurisdiction = "000000"
sectors = "all"
rounding = "yuan"

[rules.major_hazard]
type = "graded"
percent_by_grade = { 1 = "17.5", 2 = "9.25" }
floor = "2001.00"
cap = "123457.00"
no_penalty_amount = "999.00"

[rules.violation]
type = "percent"
percent = "33.3333"
cap = "77777.00"

[rules.general_hazard]
type = "fixed"
amount = "333.00"

[rules.concealed_accident]
type = "per_death"
cap = "250001.00"

[rules.concealed_accident.per_death]
general = "12345.00"
especially_major = "99999.00"

[employee_uplift]
min = "777.00"
cap = "260000.00"
kinds = ["major_hazard", "violation", "concealed_accident"]
"#;

/// A fen-rounded policy with a rate, a minimum and no total cap.
const SYNTHETIC_UNCAPPED_UPLIFT: &str = r#"
format = 1
id = "synthetic-uplift"
source = "test"
effective_from = "2020-01-01"
jurisdiction = "000000"
sectors = "all"

[rules.illegal_production]
type = "percent"
percent = "12.5"
floor = "100.00"

[rules.general_hazard]
type = "range"
min = "1.00"
max = "4999.99"

[employee_uplift]
percent = "7.77"
min = "0.01"
"#;

fn shipped() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(common::shipped)
}

fn policies() -> &'static [Policy] {
    static ALL: OnceLock<Vec<Policy>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<Policy> = shipped().iter().cloned().collect();
        for text in [SYNTHETIC_YUAN, SYNTHETIC_UNCAPPED_UPLIFT] {
            all.push(Policy::parse("synthetic.toml", text.as_bytes()).unwrap());
        }
        all
    })
}

fn money(fen: u64) -> Money {
    Money::from_decimal(Decimal::new(i64::try_from(fen).unwrap(), 2)).unwrap()
}

#[derive(Clone, Debug)]
struct Case {
    policy: usize,
    kind: OutcomeKind,
    penalty: Option<u64>,
    level: Option<AccidentLevel>,
    deaths: Option<u32>,
    grade: Option<u8>,
    proposed: Option<u64>,
    employee: bool,
    supervisory: bool,
    anonymous: bool,
}

fn fen() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..=1_000,
        0u64..=10_000_000,
        0u64..=1_000_000_000,
        0u64..=99_999_999_999_999,
    ]
}

fn case(n: usize) -> impl Strategy<Value = Case> {
    (
        0..n,
        proptest::sample::select(OutcomeKind::ALL.to_vec()),
        proptest::option::weighted(0.95, fen()),
        proptest::option::weighted(0.9, proptest::sample::select(AccidentLevel::ALL.to_vec())),
        proptest::option::weighted(0.9, 0u32..40),
        proptest::option::weighted(0.9, 0u8..=3),
        proptest::option::weighted(0.9, 0u64..=1_000_000),
        any::<bool>(),
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.2),
    )
        .prop_map(
            |(
                policy,
                kind,
                penalty,
                level,
                deaths,
                grade,
                proposed,
                employee,
                supervisory,
                anonymous,
            )| Case {
                policy,
                kind,
                penalty,
                level,
                deaths,
                grade,
                proposed,
                employee,
                supervisory,
                anonymous,
            },
        )
}

fn input(c: &Case) -> QuoteInput {
    QuoteInput {
        jurisdiction: Jurisdiction::NATIONAL,
        industry: Industry::Other,
        policy_id: None,
        verified_on: Date::from_calendar_date(2026, Month::November, 1).unwrap(),
        outcome: Outcome {
            kind: c.kind,
            penalty: c.penalty.map(money),
            accident_level: c.level,
            concealed_deaths: c.deaths,
            report_grade: c.grade,
            proposed_amount: c.proposed.map(money),
        },
        reporter: Reporter {
            employee_of_reported_unit: c.employee,
            supervisory_staff: c.supervisory,
            anonymous: c.anonymous,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn never_negative_never_above_the_cap_exact_to_the_unit(c in case(policies().len())) {
        let all = policies();
        let p = &all[c.policy];
        let quote = evaluate(p, &input(&c));
        let amount = quote.amount.as_decimal();
        prop_assert!(amount >= Decimal::ZERO);
        prop_assert_eq!(amount.scale(), 2);
        if !quote.eligible {
            prop_assert!(amount.is_zero());
            prop_assert!(quote.reason.is_some());
        } else {
            prop_assert!(quote.reason.is_none());
        }
        if let Some(cap) = p.max_award(c.kind, c.employee) {
            prop_assert!(amount <= cap.as_decimal(), "{} above cap {} under {}", amount, cap, p.id());
        }
        let unit = p.rounding().unit();
        prop_assert!((amount % unit).is_zero(), "{} not a multiple of {}", amount, unit);
        // The fast path computes exactly the same.
        let d = evaluate_amount(p, &input(&c));
        prop_assert_eq!((d.eligible, d.amount, d.reason), (quote.eligible, quote.amount, quote.reason));
        // The trace starts with the policy and ends with the result.
        prop_assert_eq!(quote.trace.first().map(|s| s.step), Some(Step::Policy));
        prop_assert_eq!(quote.trace.last().map(|s| s.step), Some(Step::Result));
        prop_assert!(quote.trace.iter().all(|s| !s.rule.is_empty() && !s.detail.is_empty()));
    }

    #[test]
    fn non_decreasing_in_the_penalty(c in case(policies().len()), a in fen(), b in fen()) {
        let all = policies();
        let p = &all[c.policy];
        let (low, high) = (a.min(b), a.max(b));
        let with = |pen| Case { penalty: Some(pen), ..c.clone() };
        let q_low = evaluate_amount(p, &input(&with(low)));
        let q_high = evaluate_amount(p, &input(&with(high)));
        prop_assert!(
            q_low.amount <= q_high.amount,
            "{} for {} but {} for {} under {}", q_low.amount, low, q_high.amount, high, p.id()
        );
    }

    #[test]
    fn never_lower_for_an_employee(c in case(policies().len())) {
        let all = policies();
        let p = &all[c.policy];
        let employee = evaluate_amount(p, &input(&Case { employee: true, ..c.clone() }));
        let other = evaluate_amount(p, &input(&Case { employee: false, ..c.clone() }));
        prop_assert!(employee.amount >= other.amount, "{} < {} under {}", employee.amount, other.amount, p.id());
        prop_assert_eq!(employee.eligible, other.eligible);
    }

    #[test]
    fn selection_is_the_best_candidate(
        province in 10u32..=65,
        city in 0u32..=20,
        county in 0u32..=20,
        industry in proptest::sample::select(Industry::ALL.to_vec()),
        days in 0i64..(12 * 366),
    ) {
        let set = shipped();
        // Codes near the shipped jurisdictions are the interesting ones.
        let code = match province % 4 {
            0 => format!("37{city:02}{county:02}"),
            1 => format!("4403{:02}", county % 12),
            2 => format!("3502{county:02}"),
            _ => format!("{province:02}{city:02}{county:02}"),
        };
        let j = Jurisdiction::parse(&code).unwrap();
        let date = Date::from_calendar_date(2017, Month::June, 1).unwrap() + time::Duration::days(days);
        match set.select(j, industry, date, None) {
            Ok(p) => {
                prop_assert!(p.in_force_on(date));
                prop_assert!(p.jurisdiction().covers(&j));
                prop_assert!(p.sectors().includes(industry));
                let rank = |q: &Policy| (q.sectors().is_specific(), q.jurisdiction().level());
                for other in set.iter().filter(|q| q.id() != p.id()) {
                    if other.in_force_on(date) && other.jurisdiction().covers(&j) && other.sectors().includes(industry) {
                        prop_assert!(rank(other) < rank(p), "{} ties or beats {}", other.id(), p.id());
                    }
                }
            }
            Err(_) => {
                prop_assert!(!set.iter().any(|q| q.in_force_on(date) && q.jurisdiction().covers(&j) && q.sectors().includes(industry)));
            }
        }
    }
}

//! Evaluation: one policy and one verified outcome in, an amount and its explanation out.
//!
//! Pure and exact: no I/O, no clock, no floating point. Intermediate amounts are kept exact
//! (`Decimal`) and rounded once, at the end, half away from zero, to the policy's unit
//! (REWARD-RULES.md, semantics 4). The same code path computes [`evaluate`] (with a trace)
//! and [`evaluate_amount`] (without one), so the two cannot disagree.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::Date;

use crate::money::{Money, Percent, show};
use crate::policy::{Policy, Rule};
use crate::scope::{AccidentLevel, Industry, Jurisdiction, OutcomeKind, parse_ymd, ymd};

/// The body of `POST /v1/rewards/quote` (API.md), as the service receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteInput {
    /// Where the case is (6-digit code).
    pub jurisdiction: Jurisdiction,
    /// The reported unit's sector.
    pub industry: Industry,
    /// A policy named by the caller; `None` to select by date, jurisdiction and sector.
    #[serde(default)]
    pub policy_id: Option<String>,
    /// The day the outcome was verified (`YYYY-MM-DD`, China Standard Time).
    #[serde(serialize_with = "ser_date", deserialize_with = "de_date")]
    pub verified_on: Date,
    /// What was verified.
    pub outcome: Outcome,
    /// Who reported.
    pub reporter: Reporter,
}

/// The verified outcome of a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// What the report established.
    pub kind: OutcomeKind,
    /// The administrative penalty imposed, in yuan (`"0.00"` for none); used by percent and
    /// graded rules.
    #[serde(default)]
    pub penalty: Option<Money>,
    /// The finally confirmed accident level; used by per-death rules.
    #[serde(default)]
    pub accident_level: Option<AccidentLevel>,
    /// Verified concealed deaths; used by per-death rules.
    #[serde(default)]
    pub concealed_deaths: Option<u32>,
    /// Report grade (1 or 2); used by graded rules.
    #[serde(default)]
    pub report_grade: Option<u8>,
    /// The amount the department proposes; used by range rules.
    #[serde(default)]
    pub proposed_amount: Option<Money>,
}

/// Facts about the reporter that the rules look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reporter {
    /// An employee of the reported unit (or, where the policy says so, a family member).
    pub employee_of_reported_unit: bool,
    /// Has safety-supervision duties, is a close relative of such staff, or acts for them.
    pub supervisory_staff: bool,
    /// Reported without giving a name (claims with a claim code).
    pub anonymous: bool,
}

fn ser_date<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&ymd(*date))
}

fn de_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_ymd(&text).ok_or_else(|| {
        serde::de::Error::custom(format!("`{text}` is not a date like \"2026-11-01\""))
    })
}

/// Why a quote is not eligible.
///
/// Some reasons are facts about the case (the reporter is excluded, there was no fine); the
/// others say the request cannot be answered as given ([`Reason::is_input_error`]), which the
/// HTTP API answers with `422`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The policy has no rule for the outcome kind (`422` where the caller named the
    /// policy).
    KindNotCovered,
    /// Penalty 0 and the rule has no amount for a report without a fine.
    NoPenalty,
    /// Zero verified concealed deaths.
    NoConcealedDeaths,
    /// The policy gives no per-death amount for this accident level.
    LevelNotCovered,
    /// The proposed amount lies outside the rule's range.
    AmountOutOfRange,
    /// Supervisory staff (or their relatives or agents), excluded by the policy.
    ExcludedReporter,
    /// An anonymous reporter under a policy that rewards real-name reporters only.
    AnonymousNotEligible,
    /// A percent or graded rule needs `outcome.penalty`.
    MissingPenalty,
    /// A per-death rule needs `outcome.accident_level`.
    MissingAccidentLevel,
    /// A per-death rule needs `outcome.concealed_deaths`.
    MissingConcealedDeaths,
    /// A graded rule needs `outcome.report_grade`.
    MissingReportGrade,
    /// The policy gives no percentage for this report grade.
    GradeNotCovered,
    /// A range rule needs `outcome.proposed_amount`.
    MissingProposedAmount,
}

impl Reason {
    /// The snake_case code.
    pub const fn code(&self) -> &'static str {
        match self {
            Reason::KindNotCovered => "kind_not_covered",
            Reason::NoPenalty => "no_penalty",
            Reason::NoConcealedDeaths => "no_concealed_deaths",
            Reason::LevelNotCovered => "level_not_covered",
            Reason::AmountOutOfRange => "amount_out_of_range",
            Reason::ExcludedReporter => "excluded_reporter",
            Reason::AnonymousNotEligible => "anonymous_not_eligible",
            Reason::MissingPenalty => "missing_penalty",
            Reason::MissingAccidentLevel => "missing_accident_level",
            Reason::MissingConcealedDeaths => "missing_concealed_deaths",
            Reason::MissingReportGrade => "missing_report_grade",
            Reason::GradeNotCovered => "grade_not_covered",
            Reason::MissingProposedAmount => "missing_proposed_amount",
        }
    }

    /// True where the request, not the case, is at fault: the API answers `422` with
    /// [`Reason::field`]. `KindNotCovered` is not among them: it is a plain "not eligible"
    /// unless the caller named the policy, which only the caller knows.
    pub const fn is_input_error(&self) -> bool {
        match self {
            Reason::LevelNotCovered
            | Reason::AmountOutOfRange
            | Reason::MissingPenalty
            | Reason::MissingAccidentLevel
            | Reason::MissingConcealedDeaths
            | Reason::MissingReportGrade
            | Reason::GradeNotCovered
            | Reason::MissingProposedAmount => true,
            Reason::KindNotCovered
            | Reason::NoPenalty
            | Reason::NoConcealedDeaths
            | Reason::ExcludedReporter
            | Reason::AnonymousNotEligible => false,
        }
    }

    /// The request field the reason is about.
    pub const fn field(&self) -> &'static str {
        match self {
            Reason::KindNotCovered => "outcome.kind",
            Reason::NoPenalty | Reason::MissingPenalty => "outcome.penalty",
            Reason::NoConcealedDeaths | Reason::MissingConcealedDeaths => {
                "outcome.concealed_deaths"
            }
            Reason::LevelNotCovered | Reason::MissingAccidentLevel => "outcome.accident_level",
            Reason::AmountOutOfRange | Reason::MissingProposedAmount => "outcome.proposed_amount",
            Reason::ExcludedReporter => "reporter.supervisory_staff",
            Reason::AnonymousNotEligible => "reporter.anonymous",
            Reason::MissingReportGrade | Reason::GradeNotCovered => "outcome.report_grade",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The kind of a trace step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Which policy and version.
    Policy,
    /// Which rule of the policy.
    Rule,
    /// Whether the reporter may be rewarded.
    Eligibility,
    /// The amount before floor and cap.
    Base,
    /// The floor.
    Floor,
    /// The cap.
    Cap,
    /// The employee uplift.
    Uplift,
    /// The cap on base plus uplift.
    UpliftCap,
    /// The one rounding.
    Rounding,
    /// A per-reporter monthly cap that applies when the reward is filed.
    MonthlyCap,
    /// The outcome.
    Result,
}

/// One line of the explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    /// What kind of step.
    pub step: Step,
    /// The key in the policy file that the step applied (`rules.major_hazard.floor`), so the
    /// reader can find the figure in the file.
    pub rule: String,
    /// The step in words, with the numbers.
    pub detail: String,
}

/// Which policy answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    /// The policy id.
    pub id: String,
    /// `sha256:` of the policy file's bytes.
    pub version: String,
}

/// The answer to a quote (API.md `200` body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Quote {
    /// Whether a reward is due.
    pub eligible: bool,
    /// The reward in yuan, two decimals; `0.00` when not eligible.
    pub amount: Money,
    /// Always `CNY`.
    pub currency: &'static str,
    /// The policy and version used.
    pub policy: PolicyRef,
    /// Why not eligible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Every step, in order.
    pub trace: Vec<TraceStep>,
}

/// The result without the trace: what [`evaluate_amount`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether a reward is due.
    pub eligible: bool,
    /// The reward; `0.00` when not eligible.
    pub amount: Money,
    /// Why not eligible.
    pub reason: Option<Reason>,
}

/// Evaluates `policy` for `input`, with a full trace.
pub fn evaluate(policy: &Policy, input: &QuoteInput) -> Quote {
    let mut trace = Trace(Vec::with_capacity(12));
    let d = run(policy, input, &mut trace);
    Quote {
        eligible: d.eligible,
        amount: d.amount,
        currency: "CNY",
        policy: PolicyRef {
            id: policy.id().to_owned(),
            version: policy.version().to_owned(),
        },
        reason: d.reason,
        trace: trace.0,
    }
}

/// Evaluates `policy` for `input` without building the trace: the same computation as
/// [`evaluate`], for bulk use.
pub fn evaluate_amount(policy: &Policy, input: &QuoteInput) -> Decision {
    run(policy, input, &mut NoTrace)
}

// ---------------------------------------------------------------------------------------

/// Where trace steps go. The closures are only called when a trace is kept, so the fast
/// path formats nothing.
trait Tracer {
    fn step(&mut self, step: Step, f: impl FnOnce() -> (String, String));
}

struct Trace(Vec<TraceStep>);

impl Tracer for Trace {
    fn step(&mut self, step: Step, f: impl FnOnce() -> (String, String)) {
        let (rule, detail) = f();
        self.0.push(TraceStep { step, rule, detail });
    }
}

struct NoTrace;

impl Tracer for NoTrace {
    #[inline(always)]
    fn step(&mut self, _step: Step, _f: impl FnOnce() -> (String, String)) {}
}

/// What a rule computes from, once the inputs it needs are known to be present.
enum Basis {
    Percent {
        key: String,
        percent: Percent,
        grade: Option<u8>,
        penalty: Money,
        floor: Option<Money>,
        cap: Option<Money>,
        no_penalty_amount: Option<Money>,
    },
    PerDeath {
        level: AccidentLevel,
        amount: Money,
        deaths: u32,
        cap: Option<Money>,
    },
    Proposed {
        amount: Money,
        min: Money,
        max: Option<Money>,
    },
    Fixed {
        amount: Money,
    },
}

fn not_eligible<T: Tracer>(t: &mut T, reason: Reason) -> Decision {
    t.step(Step::Result, || {
        (
            "result".to_owned(),
            format!("not eligible ({}): 0.00 CNY", reason.code()),
        )
    });
    Decision {
        eligible: false,
        amount: Money::ZERO,
        reason: Some(reason),
    }
}

fn describe_rule(rule: &Rule) -> String {
    match rule {
        Rule::Percent { .. } => "a percentage of the administrative penalty".to_owned(),
        Rule::Graded { .. } => {
            "a percentage of the administrative penalty, by report grade".to_owned()
        }
        Rule::PerDeath { .. } => {
            "an amount per verified concealed death, by the confirmed accident level".to_owned()
        }
        Rule::Range { min, max } => match max {
            Some(max) => format!("an amount the department proposes, from {min} to {max}"),
            None => format!(
                "an amount the department proposes, at least {min} (the sources give no maximum)"
            ),
        },
        Rule::Fixed { amount } => format!("a fixed {amount} per case"),
    }
}

/// Checks that the inputs the rule needs are present and covered.
fn basis(kind: OutcomeKind, rule: &Rule, o: &Outcome) -> Result<Basis, Reason> {
    match rule {
        Rule::Percent {
            percent,
            floor,
            cap,
            no_penalty_amount,
        } => Ok(Basis::Percent {
            key: format!("rules.{kind}.percent"),
            percent: *percent,
            grade: None,
            penalty: o.penalty.ok_or(Reason::MissingPenalty)?,
            floor: *floor,
            cap: *cap,
            no_penalty_amount: *no_penalty_amount,
        }),
        Rule::Graded {
            percent_by_grade,
            floor,
            cap,
            no_penalty_amount,
        } => {
            let grade = o.report_grade.ok_or(Reason::MissingReportGrade)?;
            let percent = *percent_by_grade
                .get(&grade)
                .ok_or(Reason::GradeNotCovered)?;
            Ok(Basis::Percent {
                key: format!("rules.{kind}.percent_by_grade.{grade}"),
                percent,
                grade: Some(grade),
                penalty: o.penalty.ok_or(Reason::MissingPenalty)?,
                floor: *floor,
                cap: *cap,
                no_penalty_amount: *no_penalty_amount,
            })
        }
        Rule::PerDeath { per_death, cap } => {
            let level = o.accident_level.ok_or(Reason::MissingAccidentLevel)?;
            let amount = *per_death.get(&level).ok_or(Reason::LevelNotCovered)?;
            let deaths = o.concealed_deaths.ok_or(Reason::MissingConcealedDeaths)?;
            Ok(Basis::PerDeath {
                level,
                amount,
                deaths,
                cap: *cap,
            })
        }
        Rule::Range { min, max } => {
            let amount = o.proposed_amount.ok_or(Reason::MissingProposedAmount)?;
            if amount < *min || max.is_some_and(|m| amount > m) {
                return Err(Reason::AmountOutOfRange);
            }
            Ok(Basis::Proposed {
                amount,
                min: *min,
                max: *max,
            })
        }
        Rule::Fixed { amount } => Ok(Basis::Fixed { amount: *amount }),
    }
}

fn input_error_detail(
    kind: OutcomeKind,
    rule: &Rule,
    o: &Outcome,
    reason: Reason,
) -> (String, String) {
    let k = format!("rules.{kind}");
    match reason {
        Reason::MissingPenalty => (
            k,
            "outcome.penalty is required for this rule (\"0.00\" where no fine was imposed)"
                .to_owned(),
        ),
        Reason::MissingReportGrade => (
            format!("{k}.percent_by_grade"),
            "outcome.report_grade (1 or 2) is required for this rule".to_owned(),
        ),
        Reason::GradeNotCovered => (
            format!("{k}.percent_by_grade"),
            format!(
                "the policy gives no percentage for report grade {}",
                o.report_grade.map_or_else(|| "(none)".to_owned(), |g| g.to_string())
            ),
        ),
        Reason::MissingAccidentLevel => (
            format!("{k}.per_death"),
            "outcome.accident_level is required for this rule".to_owned(),
        ),
        Reason::LevelNotCovered => {
            let listed = match rule {
                Rule::PerDeath { per_death, .. } => per_death
                    .keys()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => String::new(),
            };
            (
                format!("{k}.per_death"),
                format!(
                    "the policy gives no per-death amount for a {} (it lists: {listed})",
                    o.accident_level.map_or("(none)", |l| l.label())
                ),
            )
        }
        Reason::MissingConcealedDeaths => (
            k,
            "outcome.concealed_deaths is required for this rule".to_owned(),
        ),
        Reason::MissingProposedAmount => (
            k,
            "outcome.proposed_amount is required: the department proposes the amount within the rule's range".to_owned(),
        ),
        Reason::AmountOutOfRange => {
            let range = match rule {
                Rule::Range { min, max: Some(max) } => format!("{min} to {max}"),
                Rule::Range { min, max: None } => format!("at least {min}"),
                _ => String::new(),
            };
            (
                k,
                format!(
                    "proposed amount {} is outside the range {range}",
                    o.proposed_amount.map_or_else(String::new, |a| a.to_string())
                ),
            )
        }
        Reason::KindNotCovered
        | Reason::NoPenalty
        | Reason::NoConcealedDeaths
        | Reason::ExcludedReporter
        | Reason::AnonymousNotEligible => (k, reason.code().to_owned()),
    }
}

fn run<T: Tracer>(p: &Policy, input: &QuoteInput, t: &mut T) -> Decision {
    t.step(Step::Policy, || {
        ("policy".to_owned(), p.summary().to_owned())
    });

    let o = &input.outcome;
    let kind = o.kind;
    let Some(rule) = p.rule(kind) else {
        t.step(Step::Rule, || {
            let covered: Vec<&str> = p.rules().keys().map(OutcomeKind::as_str).collect();
            (
                format!("rules.{kind}"),
                format!(
                    "the policy has no rule for {kind} ({}); it covers: {}",
                    kind.label(),
                    covered.join(", ")
                ),
            )
        });
        return not_eligible(t, Reason::KindNotCovered);
    };
    t.step(Step::Rule, || {
        (
            format!("rules.{kind}"),
            format!("{kind} ({}): {}", kind.label(), describe_rule(rule)),
        )
    });

    let basis = match basis(kind, rule, o) {
        Ok(b) => b,
        Err(reason) => {
            t.step(Step::Base, || input_error_detail(kind, rule, o, reason));
            return not_eligible(t, reason);
        }
    };

    // Eligibility of the reporter (REWARD-RULES.md, semantics 5).
    let el = p.eligibility();
    let r = &input.reporter;
    if r.supervisory_staff && el.excludes_supervisory_staff() {
        t.step(Step::Eligibility, || {
            (
                "eligibility.exclude_supervisory_staff".to_owned(),
                format!(
                    "the reporter has safety-supervision duties (or is a close relative of, or acts for, such staff); excluded{}",
                    if el.supervisory_stated() {
                        " by this policy"
                    } else {
                        ": this policy does not say, so the national measure's exclusion applies"
                    }
                ),
            )
        });
        return not_eligible(t, Reason::ExcludedReporter);
    }
    if r.anonymous && !el.anonymous_allowed() {
        t.step(Step::Eligibility, || {
            (
                "eligibility.anonymous_allowed".to_owned(),
                format!(
                    "the reporter is anonymous; {}",
                    if el.anonymous_stated() {
                        "this policy rewards real-name reporters only"
                    } else {
                        "this policy does not say, so the national measure's rule applies: real-name reporters only"
                    }
                ),
            )
        });
        return not_eligible(t, Reason::AnonymousNotEligible);
    }
    t.step(Step::Eligibility, || {
        let who = if r.anonymous {
            "anonymous reporter (claims with a claim code), allowed by this policy"
        } else {
            "real-name reporter"
        };
        let duty = if r.supervisory_staff {
            "with safety-supervision duties, which this policy does not exclude"
        } else {
            "without safety-supervision duties"
        };
        ("eligibility".to_owned(), format!("{who}, {duty}: eligible"))
    });

    // Base, floor and cap (semantics 2).
    let base: Decimal = match basis {
        Basis::Percent {
            key,
            percent,
            grade,
            penalty,
            floor,
            cap,
            no_penalty_amount,
        } => {
            if penalty.is_zero() {
                let Some(np) = no_penalty_amount else {
                    t.step(Step::Base, || {
                        (
                            format!("rules.{kind}"),
                            "no administrative penalty (0.00), and the policy sets no amount for a verified report without a fine".to_owned(),
                        )
                    });
                    return not_eligible(t, Reason::NoPenalty);
                };
                t.step(Step::Base, || {
                    (
                        format!("rules.{kind}.no_penalty_amount"),
                        format!("no administrative penalty (0.00): the amount for a verified report without a fine is {np}; floor and cap do not apply"),
                    )
                });
                np.as_decimal()
            } else {
                let raw = percent.of(penalty.as_decimal());
                t.step(Step::Base, || {
                    let graded = grade.map_or_else(String::new, |g| format!("report grade {g}: "));
                    (
                        key,
                        format!("{graded}{percent} of penalty {penalty} = {}", show(raw)),
                    )
                });
                let floored = apply_floor(t, kind, raw, floor);
                apply_cap(t, &format!("rules.{kind}.cap"), floored, cap)
            }
        }
        Basis::PerDeath {
            level,
            amount,
            deaths,
            cap,
        } => {
            if deaths == 0 {
                t.step(Step::Base, || {
                    (
                        format!("rules.{kind}.per_death"),
                        "no verified concealed deaths (0)".to_owned(),
                    )
                });
                return not_eligible(t, Reason::NoConcealedDeaths);
            }
            // amount ≤ MAX_YUAN and deaths ≤ u32::MAX: the product fits in a Decimal.
            let raw = amount.as_decimal() * Decimal::from(deaths);
            t.step(Step::Base, || {
                (
                    format!("rules.{kind}.per_death.{level}"),
                    format!(
                        "{deaths} verified concealed death{} × {amount} per death for a {} = {}",
                        if deaths == 1 { "" } else { "s" },
                        level.label(),
                        show(raw)
                    ),
                )
            });
            apply_cap(t, &format!("rules.{kind}.cap"), raw, cap)
        }
        Basis::Proposed { amount, min, max } => {
            t.step(Step::Base, || {
                let range = match max {
                    Some(max) => format!("the range {min} to {max}"),
                    None => format!("the minimum {min} (no maximum in the sources)"),
                };
                (
                    format!("rules.{kind}"),
                    format!("proposed amount {amount} lies within {range}"),
                )
            });
            amount.as_decimal()
        }
        Basis::Fixed { amount } => {
            t.step(Step::Base, || {
                (
                    format!("rules.{kind}.amount"),
                    format!("fixed amount per case: {amount}"),
                )
            });
            amount.as_decimal()
        }
    };

    // Employee uplift, on the base after its floor and cap (semantics 3).
    let total = match p.employee_uplift() {
        None => {
            if r.employee_of_reported_unit {
                t.step(Step::Uplift, || {
                    (
                        "employee_uplift".to_owned(),
                        "the reporter is an employee of the reported unit, but this policy has no employee uplift".to_owned(),
                    )
                });
            }
            base
        }
        Some(_) if !r.employee_of_reported_unit => {
            t.step(Step::Uplift, || {
                (
                    "employee_uplift".to_owned(),
                    "the reporter is not an employee of the reported unit: no uplift".to_owned(),
                )
            });
            base
        }
        Some(u) if !u.applies_to(kind) => {
            t.step(Step::Uplift, || {
                (
                    "employee_uplift.kinds".to_owned(),
                    format!("the reporter is an employee of the reported unit, but the uplift does not apply to {kind}"),
                )
            });
            base
        }
        Some(u) => {
            let by_rate = u.percent.map(|pct| pct.of(base));
            let uplift = match (by_rate, u.min) {
                (Some(a), Some(m)) => a.max(m.as_decimal()),
                (Some(a), None) => a,
                (None, Some(m)) => m.as_decimal(),
                (None, None) => Decimal::ZERO,
            };
            let sum = base + uplift;
            t.step(Step::Uplift, || {
                let mut d = "the reporter is an employee of the reported unit: ".to_owned();
                match (u.percent, by_rate, u.min) {
                    (Some(pct), Some(a), Some(m)) if a < m.as_decimal() => d.push_str(&format!(
                        "uplift {pct} of {} = {}, below the minimum uplift {m}, so uplift {m}",
                        show(base),
                        show(a)
                    )),
                    (Some(pct), Some(a), Some(m)) => d.push_str(&format!(
                        "uplift {pct} of {} = {}, not below the minimum uplift {m}",
                        show(base),
                        show(a)
                    )),
                    (Some(pct), Some(a), None) => {
                        d.push_str(&format!("uplift {pct} of {} = {}", show(base), show(a)))
                    }
                    (None, _, Some(m)) => d.push_str(&format!(
                        "uplift {m} (the policy gives a minimum uplift and no rate)"
                    )),
                    _ => d.push_str(
                        "the policy states no uplift rate or minimum, so the uplift is 0.00",
                    ),
                }
                d.push_str(&format!(
                    "; {} + {} = {}",
                    show(base),
                    show(uplift),
                    show(sum)
                ));
                let key = if u.percent.is_some() {
                    "employee_uplift.percent"
                } else if u.min.is_some() {
                    "employee_uplift.min"
                } else {
                    "employee_uplift"
                };
                (key.to_owned(), d)
            });
            match u.cap {
                Some(cap) => cap_step(
                    t,
                    Step::UpliftCap,
                    "employee_uplift.cap",
                    sum,
                    cap,
                    "the total cap for an employee",
                ),
                None => sum,
            }
        }
    };

    // One rounding, at the end (semantics 4).
    let unit = p.rounding();
    let rounded = total.round_dp_with_strategy(
        unit.decimal_places(),
        RoundingStrategy::MidpointAwayFromZero,
    );
    let amount = Money::from_decimal_unchecked(rounded);
    t.step(Step::Rounding, || {
        let detail = if rounded == total {
            format!(
                "{amount} is already exact to the {}; no rounding",
                unit.word()
            )
        } else {
            format!(
                "{} rounded half away from zero to the {} = {amount}",
                show(total),
                unit.word()
            )
        };
        ("rounding".to_owned(), detail)
    });

    if let Some(cap) = p.monthly_cap(kind) {
        t.step(Step::MonthlyCap, || {
            (
                format!("monthly_caps.{kind}"),
                format!("at most {cap} per reporter per calendar month for {kind}, across cases: checked when the reward is filed, not in this quote"),
            )
        });
    }
    t.step(Step::Result, || {
        ("result".to_owned(), format!("eligible: {amount} CNY"))
    });
    Decision {
        eligible: true,
        amount,
        reason: None,
    }
}

fn apply_floor<T: Tracer>(
    t: &mut T,
    kind: OutcomeKind,
    value: Decimal,
    floor: Option<Money>,
) -> Decimal {
    let Some(floor) = floor else { return value };
    let f = floor.as_decimal();
    if value < f {
        t.step(Step::Floor, || {
            (
                format!("rules.{kind}.floor"),
                format!("{} is below the floor {floor}, so {floor}", show(value)),
            )
        });
        f
    } else {
        t.step(Step::Floor, || {
            (
                format!("rules.{kind}.floor"),
                format!("{} is not below the floor {floor}: unchanged", show(value)),
            )
        });
        value
    }
}

fn apply_cap<T: Tracer>(t: &mut T, key: &str, value: Decimal, cap: Option<Money>) -> Decimal {
    match cap {
        Some(cap) => cap_step(t, Step::Cap, key, value, cap, "the cap"),
        None => value,
    }
}

fn cap_step<T: Tracer>(
    t: &mut T,
    step: Step,
    key: &str,
    value: Decimal,
    cap: Money,
    what: &str,
) -> Decimal {
    let c = cap.as_decimal();
    if value > c {
        t.step(step, || {
            (
                key.to_owned(),
                format!("{} exceeds {what} {cap}, so {cap}", show(value)),
            )
        });
        c
    } else {
        t.step(step, || {
            (
                key.to_owned(),
                format!("{} is within {what} {cap}: unchanged", show(value)),
            )
        });
        value
    }
}

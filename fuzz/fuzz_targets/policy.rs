//! The policy parser (`Policy::parse`: TOML, then every validation of one file) and, when a
//! policy parses, quote evaluation with a fuzzed outcome.
//!
//! Input: the policy file's bytes, then optionally a NUL byte (TOML text cannot contain one)
//! and the quote part. A quote part starting with `{` is a JSON `QuoteInput` (the
//! `POST /v1/rewards/quote` body); otherwise its bytes build one field by field (so every
//! input that parses as a policy is also evaluated).
//!
//! Properties beyond "never panics":
//! * the version is `sha256:` of the bytes and the source text is kept verbatim;
//! * `evaluate` and `evaluate_amount` agree (the documented "cannot disagree");
//! * a quote is consistent: not eligible ⇔ a reason ⇔ amount 0.00; the amount is exact to the
//!   policy's rounding unit; eligible amounts never exceed `Policy::max_award`;
//! * the trace starts with the policy summary and ends with the result step;
//! * the `QuoteInput` and the `Quote` serialise, and the input round-trips through JSON;
//! * a one-policy `PolicySet` selects and quotes without panicking, and a selected policy's
//!   quote is the same as evaluating it directly.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;
use time::{Date, Month};
use vault_policy::{
    AccidentLevel, Industry, Money, Outcome, OutcomeKind, Policy, PolicySet, QuoteInput,
    Reporter, Rounding, Step, evaluate, evaluate_amount,
};

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn pick<T: Copy>(&mut self, all: &[T]) -> T {
        all[usize::from(self.byte()) % all.len()]
    }
    /// `None` for an even selector byte.
    fn maybe<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (self.byte() & 1 == 1).then(|| f(self))
    }
    fn money(&mut self) -> Money {
        const FIXED: [&str; 8] = [
            "0", "0.00", "0.01", "1", "1000.5", "5000.00", "999999999999.99", "123456.78",
        ];
        match self.byte() % 3 {
            0 => Money::parse(self.pick(&FIXED)).expect("fixed amounts parse"),
            1 => Money::from_decimal(Decimal::new(i64::from(self.u32()), 2)).expect("fits"),
            _ => {
                let hi = u64::from(self.u32()) % 1_000_000;
                let lo = u64::from(self.u32());
                let cents = hi * 100_000_000 + lo % 100_000_000;
                Money::from_decimal(Decimal::new(cents as i64, 2)).unwrap_or(Money::ZERO)
            }
        }
    }
    fn date(&mut self) -> Date {
        let year = match self.byte() {
            0 => 0,
            255 => 9999,
            b => 1990 + i32::from(b % 60),
        };
        let month = Month::try_from(1 + self.byte() % 12).expect("month");
        let day = 1 + self.byte() % 31;
        Date::from_calendar_date(year, month, day)
            .or_else(|_| Date::from_calendar_date(year, month, 28))
            .expect("day 28 exists")
    }
}

fn build_input(policy: &Policy, c: &mut Cursor<'_>) -> QuoteInput {
    let jurisdiction = if c.byte() & 1 == 0 {
        policy.jurisdiction()
    } else {
        const J: [&str; 5] = ["000000", "370000", "370100", "370102", "140105"];
        vault_policy::Jurisdiction::parse(c.pick(&J)).expect("fixed codes parse")
    };
    QuoteInput {
        jurisdiction,
        industry: c.pick(Industry::ALL),
        policy_id: c.maybe(|_| policy.id().to_owned()),
        verified_on: c.date(),
        outcome: Outcome {
            kind: c.pick(OutcomeKind::ALL),
            penalty: c.maybe(Cursor::money),
            accident_level: c.maybe(|c| c.pick(AccidentLevel::ALL)),
            concealed_deaths: c.maybe(|c| match c.byte() % 3 {
                0 => u32::from(c.byte()),
                1 => u32::MAX - u32::from(c.byte()),
                _ => c.u32(),
            }),
            report_grade: c.maybe(Cursor::byte),
            proposed_amount: c.maybe(Cursor::money),
        },
        reporter: Reporter {
            employee_of_reported_unit: c.byte() & 1 == 1,
            supervisory_staff: c.byte() & 1 == 1,
            anonymous: c.byte() & 1 == 1,
        },
    }
}

/// The documented monotonicity of the rules (policy.rs validation comments): an employee of
/// the reported unit never receives less than anyone else for the same facts, and the award
/// never decreases as the penalty or the number of concealed deaths grows.
fn check_monotonic(policy: &Policy, input: &QuoteInput) {
    let amount = |i: &QuoteInput| evaluate_amount(policy, i).amount;
    let base = amount(input);

    let mut employee = input.clone();
    employee.reporter.employee_of_reported_unit = true;
    let mut other = input.clone();
    other.reporter.employee_of_reported_unit = false;
    assert!(
        amount(&employee) >= amount(&other),
        "an employee gets {} but a non-employee {} for {:?}",
        amount(&employee),
        amount(&other),
        input.outcome
    );

    if let Some(p) = input.outcome.penalty {
        for more in ["0.01", "1", "12345.67"] {
            let Ok(bigger) = Money::from_decimal(p.as_decimal() + Money::parse(more).expect("fixed").as_decimal())
            else {
                continue;
            };
            let mut up = input.clone();
            up.outcome.penalty = Some(bigger);
            assert!(
                amount(&up) >= base,
                "penalty {p} pays {base} but penalty {bigger} pays {}",
                amount(&up)
            );
        }
        let mut zero = input.clone();
        zero.outcome.penalty = Some(Money::ZERO);
        assert!(amount(&zero) <= base, "no fine pays {} but penalty {p} pays {base}", amount(&zero));
    }
    if let Some(d) = input.outcome.concealed_deaths
        && let Some(d1) = d.checked_add(1)
    {
        let mut up = input.clone();
        up.outcome.concealed_deaths = Some(d1);
        assert!(amount(&up) >= base, "{d1} deaths pay less than {d}");
    }
}

fn check_quote(policy: &Policy, input: &QuoteInput) {
    check_monotonic(policy, input);
    let q = evaluate(policy, input);
    let d = evaluate_amount(policy, input);
    assert_eq!(
        (q.eligible, q.amount, q.reason),
        (d.eligible, d.amount, d.reason),
        "evaluate and evaluate_amount disagree"
    );
    assert_eq!(q.eligible, q.reason.is_none());
    if !q.eligible {
        assert!(q.amount.is_zero(), "not eligible but {}", q.amount);
    }
    let amount = q.amount.as_decimal();
    assert!(!amount.is_sign_negative() || amount.is_zero());
    assert_eq!(amount.scale(), 2, "amount {amount} is not at the fen");
    if policy.rounding() == Rounding::Yuan {
        assert_eq!(amount.fract(), Decimal::ZERO, "{amount} under whole-yuan rounding");
    }
    if q.eligible
        && let Some(max) =
            policy.max_award(input.outcome.kind, input.reporter.employee_of_reported_unit)
    {
        assert!(
            q.amount <= max,
            "awarded {} above max_award {max} for {}",
            q.amount,
            input.outcome.kind
        );
    }
    assert_eq!(q.policy.id, policy.id());
    assert_eq!(q.policy.version, policy.version());
    assert_eq!(q.currency, "CNY");
    let first = q.trace.first().expect("a trace");
    assert_eq!((first.step, first.detail.as_str()), (Step::Policy, policy.summary()));
    assert_eq!(q.trace.last().map(|s| s.step), Some(Step::Result));

    serde_json::to_string(&q).expect("the quote serialises");
    let json = serde_json::to_string(input).expect("the input serialises");
    let back: QuoteInput = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("the input does not round-trip ({e}): {json}"));
    assert_eq!(&back, input);
}

fuzz_target!(|data: &[u8]| {
    let (file, quote) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let policy = match Policy::parse("fuzz.toml", file) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.problems().is_empty(), "an error without problems");
            let _ = e.to_string();
            return;
        }
    };
    let digest = sha256_hex(file);
    assert_eq!(policy.version(), format!("sha256:{digest}"));
    assert_eq!(policy.source_text().as_bytes(), file);
    assert!(!policy.rules().is_empty());
    serde_json::to_string(&policy).expect("the policy serialises");
    // Re-parsing the archived text gives the same policy (what explains stored rewards).
    let again = Policy::parse("fuzz.toml", policy.source_text().as_bytes()).expect("re-parse");
    assert_eq!(again.version(), policy.version());
    assert_eq!(again.rules(), policy.rules());

    let input = if quote.first() == Some(&b'{') {
        match serde_json::from_slice::<QuoteInput>(quote) {
            Ok(i) => i,
            Err(_) => return,
        }
    } else {
        build_input(&policy, &mut Cursor(quote))
    };
    check_quote(&policy, &input);
    // Every other kind too, with the same facts.
    for kind in OutcomeKind::ALL {
        let mut other = input.clone();
        other.outcome.kind = *kind;
        check_quote(&policy, &other);
    }

    let set = PolicySet::from_policies(vec![policy.clone()]).expect("one valid policy is a set");
    if let Ok(q) = set.quote(&input) {
        let direct = evaluate(&policy, &input);
        assert_eq!(q, direct, "the set's quote differs from evaluating the policy");
    }
});

/// Lower-case hex SHA-256 of the file bytes.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::{Value, json};
use vault_policy::{PolicySet, Quote, QuoteInput, SelectError, Step};

/// The shipped `policies/` directory.
pub fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

/// Every shipped policy.
pub fn shipped() -> PolicySet {
    match PolicySet::load_dir(policies_dir()) {
        Ok(set) => set,
        Err(e) => panic!("shipped policies do not load:\n{e}"),
    }
}

/// A quote request built as JSON, so every test also exercises the wire format.
#[derive(Clone)]
pub struct Q(pub Value);

/// A request for `kind` in `jurisdiction` on 2026-11-01, industry `other`, a real-name
/// non-employee reporter without supervision duties, every outcome field null.
pub fn q(jurisdiction: &str, kind: &str) -> Q {
    Q(json!({
        "jurisdiction": jurisdiction,
        "industry": "other",
        "policy_id": null,
        "verified_on": "2026-11-01",
        "outcome": {"kind": kind, "penalty": null, "accident_level": null,
                    "concealed_deaths": null, "report_grade": null, "proposed_amount": null},
        "reporter": {"employee_of_reported_unit": false, "supervisory_staff": false,
                     "anonymous": false}
    }))
}

impl Q {
    fn set(mut self, path: &[&str], v: Value) -> Q {
        let mut cur = &mut self.0;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                cur[*key] = v.clone();
            } else {
                cur = &mut cur[*key];
            }
        }
        self
    }
    pub fn penalty(self, p: &str) -> Q {
        self.set(&["outcome", "penalty"], json!(p))
    }
    pub fn level(self, l: &str) -> Q {
        self.set(&["outcome", "accident_level"], json!(l))
    }
    pub fn deaths(self, n: u32) -> Q {
        self.set(&["outcome", "concealed_deaths"], json!(n))
    }
    pub fn grade(self, g: u8) -> Q {
        self.set(&["outcome", "report_grade"], json!(g))
    }
    pub fn proposed(self, a: &str) -> Q {
        self.set(&["outcome", "proposed_amount"], json!(a))
    }
    pub fn employee(self) -> Q {
        self.set(&["reporter", "employee_of_reported_unit"], json!(true))
    }
    pub fn supervisory(self) -> Q {
        self.set(&["reporter", "supervisory_staff"], json!(true))
    }
    pub fn anonymous(self) -> Q {
        self.set(&["reporter", "anonymous"], json!(true))
    }
    pub fn industry(self, i: &str) -> Q {
        self.set(&["industry"], json!(i))
    }
    pub fn on(self, date: &str) -> Q {
        self.set(&["verified_on"], json!(date))
    }
    pub fn policy(self, id: &str) -> Q {
        self.set(&["policy_id"], json!(id))
    }
    pub fn input(&self) -> QuoteInput {
        match serde_json::from_value(self.0.clone()) {
            Ok(i) => i,
            Err(e) => panic!("bad test input {}: {e}", self.0),
        }
    }
    pub fn try_quote(&self, set: &PolicySet) -> Result<Quote, SelectError> {
        set.quote(&self.input())
    }
    pub fn quote(&self, set: &PolicySet) -> Quote {
        match self.try_quote(set) {
            Ok(quote) => quote,
            Err(e) => panic!("no policy for {}: {e}", self.0),
        }
    }
}

/// Asserts an eligible quote from `policy` for `amount`, and returns it.
#[track_caller]
pub fn pays(quote: Quote, policy: &str, amount: &str) -> Quote {
    assert_eq!(quote.policy.id, policy, "policy; trace: {:#?}", quote.trace);
    assert!(
        quote.eligible,
        "not eligible ({:?}); trace: {:#?}",
        quote.reason, quote.trace
    );
    assert_eq!(
        quote.amount.to_string(),
        amount,
        "amount; trace: {:#?}",
        quote.trace
    );
    assert_eq!(quote.reason, None);
    quote
}

/// Asserts a not-eligible quote from `policy` with `reason`, and returns it.
#[track_caller]
pub fn refuses(quote: Quote, policy: &str, reason: &str) -> Quote {
    assert_eq!(quote.policy.id, policy, "policy; trace: {:#?}", quote.trace);
    assert!(!quote.eligible, "eligible; trace: {:#?}", quote.trace);
    assert_eq!(quote.amount.to_string(), "0.00");
    assert_eq!(
        quote.reason.map(|r| r.code()),
        Some(reason),
        "trace: {:#?}",
        quote.trace
    );
    quote
}

/// The detail of the first trace step of kind `step`.
#[track_caller]
pub fn detail(quote: &Quote, step: Step) -> String {
    match quote.trace.iter().find(|s| s.step == step) {
        Some(s) => s.detail.clone(),
        None => panic!("no {step:?} step in {:#?}", quote.trace),
    }
}

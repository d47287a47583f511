//! The loaded policies and the choice of one for a case.

use std::collections::BTreeMap;
use std::path::Path;

use time::Date;

use crate::error::{PolicyError, Problem};
use crate::eval::{Quote, QuoteInput, evaluate};
use crate::policy::Policy;
use crate::scope::{Industry, Jurisdiction, ymd};

/// Every policy of a directory, validated together.
#[derive(Clone, Debug)]
pub struct PolicySet {
    /// By id; ids are unique.
    policies: BTreeMap<String, Policy>,
}

/// Why no policy could be chosen for a case. Every variant is a `422` in the HTTP API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// `policy_id` names no loaded policy.
    #[error("no policy has the id `{0}`")]
    UnknownPolicy(String),
    /// No policy is in force on the date for the jurisdiction and industry.
    #[error(
        "no policy in force on {date} covers jurisdiction {jurisdiction} and industry {industry}"
    )]
    NoPolicyInForce {
        /// The case's jurisdiction.
        jurisdiction: Jurisdiction,
        /// The case's industry.
        industry: Industry,
        /// `verified_on`, `YYYY-MM-DD`.
        date: String,
    },
    /// The named policy is not in force on the date.
    #[error("policy `{id}` is not in force on {date}")]
    NotInForce {
        /// The named policy.
        id: String,
        /// `verified_on`, `YYYY-MM-DD`.
        date: String,
    },
    /// The named policy's jurisdiction does not cover the case.
    #[error("policy `{id}` covers jurisdiction {covers}, which does not include {jurisdiction}")]
    OutOfJurisdiction {
        /// The named policy.
        id: String,
        /// The policy's jurisdiction.
        covers: Jurisdiction,
        /// The case's jurisdiction.
        jurisdiction: Jurisdiction,
    },
    /// The named policy's sectors do not include the industry.
    #[error("policy `{id}` does not cover the industry {industry}")]
    SectorNotCovered {
        /// The named policy.
        id: String,
        /// The case's industry.
        industry: Industry,
    },
}

impl SelectError {
    /// The snake_case error code for the API.
    pub const fn code(&self) -> &'static str {
        match self {
            SelectError::UnknownPolicy(_) => "unknown_policy",
            SelectError::NoPolicyInForce { .. } => "no_policy_in_force",
            SelectError::NotInForce { .. } => "policy_not_in_force",
            SelectError::OutOfJurisdiction { .. } => "policy_out_of_jurisdiction",
            SelectError::SectorNotCovered { .. } => "policy_sector_not_covered",
        }
    }

    /// The request field at fault.
    pub const fn field(&self) -> &'static str {
        match self {
            SelectError::UnknownPolicy(_) => "policy_id",
            SelectError::NoPolicyInForce { .. } | SelectError::NotInForce { .. } => "verified_on",
            SelectError::OutOfJurisdiction { .. } => "jurisdiction",
            SelectError::SectorNotCovered { .. } => "industry",
        }
    }
}

impl PolicySet {
    /// Reads and validates every `*.toml` file directly in `dir` (other files, such as
    /// `README.md`, and subdirectories are ignored), in file-name order.
    ///
    /// Reports every problem found, each naming the file and key. Besides each file's own
    /// checks ([`Policy::parse`]): the id must equal the file name without `.toml`, ids are
    /// unique, and two policies for the same jurisdiction whose sector scopes would tie in
    /// selection (both general, or both specific with a sector in common) must not have
    /// overlapping effective periods.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<PolicySet, PolicyError> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PolicyError::Io { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let path = entry.path();
            let is_file = entry.file_type().map_err(io(&path))?.is_file();
            if is_file && path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(PolicyError::Empty {
                dir: dir.to_path_buf(),
            });
        }
        let mut loaded = Vec::new();
        let mut problems = Vec::new();
        for path in files {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let name = path.display().to_string();
            match Policy::parse(&name, &bytes) {
                Ok(policy) => {
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                    if policy.id() != stem {
                        problems.push(Problem {
                            file: name,
                            key: "id".to_owned(),
                            message: format!(
                                "id `{}` differs from the file name; name the file `{}.toml`",
                                policy.id(),
                                policy.id()
                            ),
                        });
                    }
                    loaded.push(policy);
                }
                Err(PolicyError::Invalid(mut p)) => problems.append(&mut p),
                Err(other) => return Err(other),
            }
        }
        match PolicySet::from_policies(loaded) {
            Ok(set) if problems.is_empty() => Ok(set),
            Ok(_) => Err(PolicyError::Invalid(problems)),
            Err(PolicyError::Invalid(mut p)) => {
                problems.append(&mut p);
                Err(PolicyError::Invalid(problems))
            }
            Err(other) => Err(other),
        }
    }

    /// Builds a set from already-parsed policies, with the checks across policies (unique
    /// ids, no overlapping periods for the same scope).
    pub fn from_policies(policies: Vec<Policy>) -> Result<PolicySet, PolicyError> {
        let mut problems = Vec::new();
        let mut by_id: BTreeMap<String, Policy> = BTreeMap::new();
        for p in policies {
            if let Some(first) = by_id.get(p.id()) {
                problems.push(Problem {
                    file: p.file().to_owned(),
                    key: "id".to_owned(),
                    message: format!("id `{}` is already used by {}", p.id(), first.file()),
                });
                continue;
            }
            by_id.insert(p.id().to_owned(), p);
        }
        let all: Vec<&Policy> = by_id.values().collect();
        for (i, a) in all.iter().enumerate() {
            for b in all.iter().skip(i + 1) {
                if a.jurisdiction() != b.jurisdiction() || !a.sectors().clashes_with(b.sectors()) {
                    continue;
                }
                let (a_from, a_to) = a.period();
                let (b_from, b_to) = b.period();
                if a_from <= b_to && b_from <= a_to {
                    problems.push(Problem {
                        file: b.file().to_owned(),
                        key: "effective_from".to_owned(),
                        message: format!(
                            "the effective period {} overlaps that of `{}` ({}, {}) for the same jurisdiction {} and sectors ({} / {}): selection would be ambiguous; end one with effective_to",
                            describe_period(b),
                            a.id(),
                            a.file(),
                            describe_period(a),
                            a.jurisdiction(),
                            b.sectors(),
                            a.sectors(),
                        ),
                    });
                }
            }
        }
        if problems.is_empty() {
            Ok(PolicySet { policies: by_id })
        } else {
            Err(PolicyError::Invalid(problems))
        }
    }

    /// The policy with this id.
    pub fn get(&self, id: &str) -> Option<&Policy> {
        self.policies.get(id)
    }

    /// Every policy, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.policies.values()
    }

    /// How many policies are loaded.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// True when no policy is loaded (never, for a set from [`PolicySet::load_dir`]).
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Chooses the policy for a case (API.md, `POST /v1/rewards/quote`).
    ///
    /// With `policy_id`, that policy, provided it covers the jurisdiction and industry and is
    /// in force on `date` (a policy whose sources give no start date counts as started).
    /// Without, among the policies in force on `date` whose jurisdiction covers the case and
    /// whose sectors include the industry: a sector-specific policy before a general one,
    /// then the most specific jurisdiction. Load-time validation makes that choice unique.
    pub fn select(
        &self,
        jurisdiction: Jurisdiction,
        industry: Industry,
        date: Date,
        policy_id: Option<&str>,
    ) -> Result<&Policy, SelectError> {
        if let Some(id) = policy_id {
            let p = self
                .get(id)
                .ok_or_else(|| SelectError::UnknownPolicy(id.to_owned()))?;
            if !p.jurisdiction().covers(&jurisdiction) {
                return Err(SelectError::OutOfJurisdiction {
                    id: id.to_owned(),
                    covers: p.jurisdiction(),
                    jurisdiction,
                });
            }
            if !p.sectors().includes(industry) {
                return Err(SelectError::SectorNotCovered {
                    id: id.to_owned(),
                    industry,
                });
            }
            if !p.in_force_if_named(date) {
                return Err(SelectError::NotInForce {
                    id: id.to_owned(),
                    date: ymd(date),
                });
            }
            return Ok(p);
        }
        self.policies
            .values()
            .filter(|p| {
                p.in_force_on(date)
                    && p.jurisdiction().covers(&jurisdiction)
                    && p.sectors().includes(industry)
            })
            .max_by_key(|p| (p.sectors().is_specific(), p.jurisdiction().level()))
            .ok_or_else(|| SelectError::NoPolicyInForce {
                jurisdiction,
                industry,
                date: ymd(date),
            })
    }

    /// Selects the policy for `input` and evaluates it: what `POST /v1/rewards/quote`
    /// answers.
    pub fn quote(&self, input: &QuoteInput) -> Result<Quote, SelectError> {
        let policy = self.select(
            input.jurisdiction,
            input.industry,
            input.verified_on,
            input.policy_id.as_deref(),
        )?;
        Ok(evaluate(policy, input))
    }
}

fn describe_period(p: &Policy) -> String {
    let from = p
        .effective_from()
        .map_or_else(|| "(start not stated)".to_owned(), |d| d.to_string());
    let to = p
        .effective_to()
        .map_or_else(|| "open-ended".to_owned(), |d| d.to_string());
    format!("{from} to {to}")
}

//! One policy file: the TOML format, its validation, and the validated [`Policy`].
//!
//! The file is read in two stages. Serde reads it into `Raw*` structs that mirror the file
//! one to one (every struct denies unknown keys, money and percentages are accepted only as
//! strings); then [`Policy::parse`] checks what serde cannot (a cap below a floor, keys that
//! do not belong to the rule's type, an employee cap that could pay an employee less than a
//! non-employee, …) and builds the validated types, which have no invalid states left.
//! The format is documented for policy authors in `policies/README.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ring::digest;
use rust_decimal::Decimal;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use time::Date;

use crate::error::{PolicyError, Problem};
use crate::money::{Money, Percent};
use crate::scope::{AccidentLevel, Industry, Jurisdiction, OutcomeKind, PolicyDate};

/// The format version this crate reads (`format = 1`).
pub const FORMAT_VERSION: u32 = 1;

// ---------------------------------------------------------------------------------------
// Raw file structure
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    format: u32,
    id: String,
    title: Option<String>,
    document_number: Option<String>,
    issuing_bodies: Option<Vec<String>>,
    source: String,
    effective_from: Option<PolicyDate>,
    effective_to: Option<PolicyDate>,
    jurisdiction: Jurisdiction,
    sectors: Sectors,
    rounding: Option<Rounding>,
    joint: Option<Joint>,
    claim_days: Option<u32>,
    dual_approval_threshold: Option<Money>,
    eligibility: Option<RawEligibility>,
    rules: BTreeMap<OutcomeKind, RawRule>,
    employee_uplift: Option<RawUplift>,
    monthly_caps: Option<BTreeMap<OutcomeKind, Money>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEligibility {
    anonymous_allowed: Option<bool>,
    exclude_supervisory_staff: Option<bool>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RuleType {
    Percent,
    Graded,
    PerDeath,
    Range,
    Fixed,
}

impl RuleType {
    const fn as_str(self) -> &'static str {
        match self {
            RuleType::Percent => "percent",
            RuleType::Graded => "graded",
            RuleType::PerDeath => "per_death",
            RuleType::Range => "range",
            RuleType::Fixed => "fixed",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(rename = "type")]
    rule_type: RuleType,
    percent: Option<Percent>,
    percent_by_grade: Option<BTreeMap<String, Percent>>,
    floor: Option<Money>,
    cap: Option<Money>,
    no_penalty_amount: Option<Money>,
    per_death: Option<RawPerDeath>,
    min: Option<Money>,
    max: Option<Money>,
    amount: Option<Money>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPerDeath {
    general: Option<Money>,
    larger: Option<Money>,
    major: Option<Money>,
    especially_major: Option<Money>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUplift {
    percent: Option<Percent>,
    min: Option<Money>,
    cap: Option<Money>,
    kinds: Option<Vec<OutcomeKind>>,
    family_members: Option<Vec<FamilyMember>>,
}

// ---------------------------------------------------------------------------------------
// Validated policy
// ---------------------------------------------------------------------------------------

/// The sectors a policy covers: all, or a list of [`Industry`] values.
///
/// In the file: `sectors = "all"` or `sectors = ["coal_mine", "metal_nonmetal_mine"]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sectors {
    /// Every sector: a general policy.
    All,
    /// Only these: a sector-specific policy, preferred over a general one.
    Only(BTreeSet<Industry>),
}

impl Sectors {
    /// Whether the policy covers `industry`.
    pub fn includes(&self, industry: Industry) -> bool {
        match self {
            Sectors::All => true,
            Sectors::Only(set) => set.contains(&industry),
        }
    }

    /// True for a sector-specific policy.
    pub fn is_specific(&self) -> bool {
        matches!(self, Sectors::Only(_))
    }

    /// Whether two sector scopes can both match one case *at the same priority*: both
    /// general, or both specific with an industry in common.
    pub(crate) fn clashes_with(&self, other: &Sectors) -> bool {
        match (self, other) {
            (Sectors::All, Sectors::All) => true,
            (Sectors::Only(a), Sectors::Only(b)) => a.intersection(b).next().is_some(),
            _ => false,
        }
    }
}

impl fmt::Display for Sectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sectors::All => f.write_str("all sectors"),
            Sectors::Only(set) => {
                let names: Vec<&str> = set.iter().map(Industry::as_str).collect();
                f.write_str(&names.join(", "))
            }
        }
    }
}

impl Serialize for Sectors {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Sectors::All => serializer.serialize_str("all"),
            Sectors::Only(set) => serializer.collect_seq(set),
        }
    }
}

struct SectorsVisitor;

impl<'de> Visitor<'de> for SectorsVisitor {
    type Value = Sectors;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"all\" or a non-empty list of sectors like [\"coal_mine\"]")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Sectors, E> {
        if v == "all" {
            Ok(Sectors::All)
        } else {
            Err(E::custom(format!(
                "`{v}`: sectors is \"all\" or a list of sectors like [\"coal_mine\"]"
            )))
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sectors, A::Error> {
        let mut set = BTreeSet::new();
        while let Some(item) = seq.next_element::<Industry>()? {
            if !set.insert(item) {
                return Err(de::Error::custom(format!(
                    "sector `{item}` is listed twice"
                )));
            }
        }
        if set.is_empty() {
            return Err(de::Error::custom(
                "the sector list is empty; write \"all\" for a general policy",
            ));
        }
        Ok(Sectors::Only(set))
    }
}

impl<'de> Deserialize<'de> for Sectors {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SectorsVisitor)
    }
}

/// The unit the final amount is rounded to, half away from zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// To the fen (0.01 yuan). The default.
    #[default]
    Fen,
    /// To the whole yuan.
    Yuan,
}

impl Rounding {
    /// Decimal places kept.
    pub const fn decimal_places(&self) -> u32 {
        match self {
            Rounding::Fen => 2,
            Rounding::Yuan => 0,
        }
    }

    /// The unit in yuan: 0.01 or 1.
    pub const fn unit(&self) -> Decimal {
        match self {
            Rounding::Fen => Decimal::from_parts(1, 0, 0, false, 2),
            Rounding::Yuan => Decimal::ONE,
        }
    }

    /// The unit in words, for traces.
    pub const fn word(&self) -> &'static str {
        match self {
            Rounding::Fen => "fen (0.01 yuan)",
            Rounding::Yuan => "whole yuan",
        }
    }
}

/// How a joint report (one `joint_group`) is awarded. The default is one award to the
/// first signatory (REWARD-RULES.md, semantics 6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Joint {
    /// One award, collected by the first signatory.
    #[default]
    FirstSignatory,
    /// One award split equally, each share rounded to the fen, the remainder to the first
    /// signatory.
    EqualSplit,
}

/// Who, besides the employee, counts as "an employee of the reported unit" for the uplift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilyMember {
    /// 配偶.
    Spouse,
    /// 父母.
    Parents,
    /// 子女.
    Children,
}

/// Who may be rewarded.
///
/// Each value is `None` where the policy's sources do not say; the getters then apply the
/// national measure (安监总财〔2018〕19号): real-name reporters only, supervisory staff
/// excluded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Eligibility {
    anonymous_allowed: Option<bool>,
    exclude_supervisory_staff: Option<bool>,
}

impl Eligibility {
    /// Whether an anonymous reporter (claiming with a claim code) may be rewarded.
    pub fn anonymous_allowed(&self) -> bool {
        self.anonymous_allowed.unwrap_or(false)
    }
    /// Whether the policy itself states [`Self::anonymous_allowed`].
    pub fn anonymous_stated(&self) -> bool {
        self.anonymous_allowed.is_some()
    }
    /// Whether staff with safety-supervision duties, their close relatives and people acting
    /// for them are excluded.
    pub fn excludes_supervisory_staff(&self) -> bool {
        self.exclude_supervisory_staff.unwrap_or(true)
    }
    /// Whether the policy itself states [`Self::excludes_supervisory_staff`].
    pub fn supervisory_stated(&self) -> bool {
        self.exclude_supervisory_staff.is_some()
    }
}

impl Serialize for Eligibility {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Eligibility", 4)?;
        s.serialize_field("anonymous_allowed", &self.anonymous_allowed())?;
        s.serialize_field("anonymous_allowed_stated", &self.anonymous_stated())?;
        s.serialize_field(
            "exclude_supervisory_staff",
            &self.excludes_supervisory_staff(),
        )?;
        s.serialize_field(
            "exclude_supervisory_staff_stated",
            &self.supervisory_stated(),
        )?;
        s.end()
    }
}

/// How the base amount for one outcome kind is computed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Rule {
    /// `penalty × percent`, then at least `floor`, then at most `cap`. A penalty of zero
    /// pays `no_penalty_amount` where set, else is not eligible (`no_penalty`).
    Percent {
        /// Share of the administrative penalty.
        percent: Percent,
        /// Lowest award.
        #[serde(skip_serializing_if = "Option::is_none")]
        floor: Option<Money>,
        /// Highest award.
        #[serde(skip_serializing_if = "Option::is_none")]
        cap: Option<Money>,
        /// Award for a verified report that led to no fine.
        #[serde(skip_serializing_if = "Option::is_none")]
        no_penalty_amount: Option<Money>,
    },
    /// As `Percent`, with the percentage chosen by `report_grade`.
    Graded {
        /// Percentage per report grade (1 or 2).
        percent_by_grade: BTreeMap<u8, Percent>,
        /// Lowest award.
        #[serde(skip_serializing_if = "Option::is_none")]
        floor: Option<Money>,
        /// Highest award.
        #[serde(skip_serializing_if = "Option::is_none")]
        cap: Option<Money>,
        /// Award for a verified report that led to no fine.
        #[serde(skip_serializing_if = "Option::is_none")]
        no_penalty_amount: Option<Money>,
    },
    /// `per_death[accident_level] × concealed_deaths`, then at most `cap`.
    PerDeath {
        /// Amount per verified concealed death, by the finally confirmed accident level.
        per_death: BTreeMap<AccidentLevel, Money>,
        /// Highest award.
        #[serde(skip_serializing_if = "Option::is_none")]
        cap: Option<Money>,
    },
    /// The department proposes an amount; it must lie in `[min, max]`.
    Range {
        /// Lowest amount.
        min: Money,
        /// Highest amount; `None` where the sources give only a minimum.
        #[serde(skip_serializing_if = "Option::is_none")]
        max: Option<Money>,
    },
    /// A fixed amount per case.
    Fixed {
        /// The amount.
        amount: Money,
    },
}

impl Rule {
    /// The highest base this rule can produce, before any employee uplift; `None` when
    /// unbounded.
    pub fn max_base(&self) -> Option<Money> {
        match self {
            Rule::Percent { cap, .. } | Rule::Graded { cap, .. } | Rule::PerDeath { cap, .. } => {
                *cap
            }
            Rule::Range { max, .. } => *max,
            Rule::Fixed { amount } => Some(*amount),
        }
    }

    /// The type name used in the file (`percent`, `graded`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Rule::Percent { .. } => "percent",
            Rule::Graded { .. } => "graded",
            Rule::PerDeath { .. } => "per_death",
            Rule::Range { .. } => "range",
            Rule::Fixed { .. } => "fixed",
        }
    }
}

/// The uplift for a reporter who is an employee of the reported unit (应急〔2020〕69号):
/// `uplift = max(base × percent, min)`, `total = min(base + uplift, cap)`, applied to the
/// base after its floor and cap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EmployeeUplift {
    /// Uplift as a share of the base; `None` where the sources give no rate.
    pub percent: Option<Percent>,
    /// Lowest uplift.
    pub min: Option<Money>,
    /// Highest total (base plus uplift).
    pub cap: Option<Money>,
    /// The kinds it applies to; `None` = every kind the policy has a rule for.
    pub kinds: Option<BTreeSet<OutcomeKind>>,
    /// Family members who count as the employee (documentation for the case handler who sets
    /// `employee_of_reported_unit`).
    pub family_members: Vec<FamilyMember>,
}

impl EmployeeUplift {
    /// Whether the uplift applies to `kind`.
    pub fn applies_to(&self, kind: OutcomeKind) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
    }
}

/// A validated reward policy, with the exact text it was read from.
#[derive(Clone, Debug, Serialize)]
pub struct Policy {
    id: String,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document_number: Option<String>,
    issuing_bodies: Vec<String>,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_from: Option<PolicyDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_to: Option<PolicyDate>,
    jurisdiction: Jurisdiction,
    sectors: Sectors,
    rounding: Rounding,
    joint: Joint,
    #[serde(skip_serializing_if = "Option::is_none")]
    claim_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dual_approval_threshold: Option<Money>,
    eligibility: Eligibility,
    rules: BTreeMap<OutcomeKind, Rule>,
    #[serde(skip_serializing_if = "Option::is_none")]
    employee_uplift: Option<EmployeeUplift>,
    monthly_caps: BTreeMap<OutcomeKind, Money>,
    #[serde(skip)]
    file: String,
    #[serde(skip)]
    source_text: String,
    /// The first line of every trace, written once at load.
    #[serde(skip)]
    summary: String,
}

impl Policy {
    /// Reads one policy from the exact bytes of its file.
    ///
    /// `file` names the file in error messages (and is kept, see [`Policy::file`]). The
    /// version is `sha256:` + hex of `bytes`, so re-reading archived bytes gives the same
    /// version and the same results. Checks everything that can be checked within one file;
    /// [`crate::PolicySet`] adds the checks across files.
    pub fn parse(file: &str, bytes: &[u8]) -> Result<Policy, PolicyError> {
        let version = format!(
            "sha256:{}",
            hex::encode(digest::digest(&digest::SHA256, bytes))
        );
        let text = std::str::from_utf8(bytes).map_err(|e| {
            PolicyError::Invalid(vec![Problem {
                file: file.to_owned(),
                key: "(file)".to_owned(),
                message: format!("not UTF-8 text ({e})"),
            }])
        })?;
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            PolicyError::Invalid(vec![Problem {
                file: file.to_owned(),
                key: key_at(text, e.span(), e.message()),
                message: toml_message(text, &e),
            }])
        })?;
        let mut check = Checker {
            file,
            problems: Vec::new(),
        };
        let policy = check.policy(raw, file, version, text);
        match policy {
            Some(p) if check.problems.is_empty() => Ok(p),
            _ => Err(PolicyError::Invalid(check.problems)),
        }
    }

    /// The policy id (equal to the file name without `.toml` when loaded from a directory).
    pub fn id(&self) -> &str {
        &self.id
    }
    /// `sha256:` + lowercase hex of the file's bytes.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// The exact text of the file, to archive with every computation that used it.
    pub fn source_text(&self) -> &str {
        &self.source_text
    }
    /// One line naming the policy, its document, version, scope and period: the first step
    /// of every trace.
    pub fn summary(&self) -> &str {
        &self.summary
    }
    /// The file name given to [`Policy::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }
    /// The document's title, where the sources give it.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }
    /// The document number (文号), where the sources give it.
    pub fn document_number(&self) -> Option<&str> {
        self.document_number.as_deref()
    }
    /// The issuing bodies, where the sources name them.
    pub fn issuing_bodies(&self) -> &[String] {
        &self.issuing_bodies
    }
    /// Where the figures come from.
    pub fn source(&self) -> &str {
        &self.source
    }
    /// First day in force; `None` where the sources give no date (then the policy is used
    /// only when named by id).
    pub fn effective_from(&self) -> Option<PolicyDate> {
        self.effective_from
    }
    /// Last day in force; `None` while in force.
    pub fn effective_to(&self) -> Option<PolicyDate> {
        self.effective_to
    }
    /// The jurisdiction the policy covers.
    pub fn jurisdiction(&self) -> Jurisdiction {
        self.jurisdiction
    }
    /// The sectors the policy covers.
    pub fn sectors(&self) -> &Sectors {
        &self.sectors
    }
    /// The rounding unit.
    pub fn rounding(&self) -> Rounding {
        self.rounding
    }
    /// How a joint report is awarded.
    pub fn joint(&self) -> Joint {
        self.joint
    }
    /// Days to claim after the notice (the day of the notice not counted), where stated.
    pub fn claim_days(&self) -> Option<u32> {
        self.claim_days
    }
    /// Amount from which two distinct finance approvals are needed, where stated.
    pub fn dual_approval_threshold(&self) -> Option<Money> {
        self.dual_approval_threshold
    }
    /// Who may be rewarded.
    pub fn eligibility(&self) -> Eligibility {
        self.eligibility
    }
    /// The rule for `kind`, if the policy covers it.
    pub fn rule(&self, kind: OutcomeKind) -> Option<&Rule> {
        self.rules.get(&kind)
    }
    /// All rules.
    pub fn rules(&self) -> &BTreeMap<OutcomeKind, Rule> {
        &self.rules
    }
    /// The employee uplift, where the policy has one.
    pub fn employee_uplift(&self) -> Option<&EmployeeUplift> {
        self.employee_uplift.as_ref()
    }
    /// Per-reporter monthly cap for `kind`, where the policy has one.
    pub fn monthly_cap(&self, kind: OutcomeKind) -> Option<Money> {
        self.monthly_caps.get(&kind).copied()
    }
    /// All per-reporter monthly caps.
    pub fn monthly_caps(&self) -> &BTreeMap<OutcomeKind, Money> {
        &self.monthly_caps
    }

    /// Whether the policy is in force on `date`. A policy without a start date is never in
    /// force for automatic selection (see [`Policy::in_force_if_named`]).
    pub fn in_force_on(&self, date: Date) -> bool {
        self.effective_from.is_some_and(|f| f.first_day() <= date) && self.not_ended(date)
    }

    /// Whether the policy may be used on `date` when the caller names it: as
    /// [`Policy::in_force_on`], except that a policy whose sources give no start date counts
    /// as started.
    pub fn in_force_if_named(&self, date: Date) -> bool {
        self.effective_from.is_none_or(|f| f.first_day() <= date) && self.not_ended(date)
    }

    fn not_ended(&self, date: Date) -> bool {
        self.effective_to.is_none_or(|t| date <= t.last_day())
    }

    /// The period as an inclusive range of days, unbounded ends as `Date::MIN`/`MAX`.
    pub(crate) fn period(&self) -> (Date, Date) {
        (
            self.effective_from.map_or(Date::MIN, |d| d.first_day()),
            self.effective_to.map_or(Date::MAX, |d| d.last_day()),
        )
    }

    /// The highest amount the policy can award for `kind`, uplift included for an employee;
    /// `None` when unbounded or the kind is not covered.
    pub fn max_award(&self, kind: OutcomeKind, employee: bool) -> Option<Money> {
        let rule = self.rule(kind)?;
        match &self.employee_uplift {
            Some(u) if employee && u.applies_to(kind) => {
                // Without a rate or a minimum there is no uplift: the rule's own bound holds.
                if u.percent.is_none() && u.min.is_none() {
                    rule.max_base()
                } else {
                    u.cap
                }
            }
            _ => rule.max_base(),
        }
    }
}

fn summarise(p: &Policy) -> String {
    let mut d = format!("policy {}", p.id());
    if let Some(title) = p.title() {
        d.push_str(&format!(" 《{title}》"));
    }
    if let Some(no) = p.document_number() {
        d.push_str(&format!(" {no}"));
    }
    d.push_str(&format!(
        ", version {}; jurisdiction {}, {}; ",
        p.version(),
        p.jurisdiction(),
        p.sectors()
    ));
    match p.effective_from() {
        Some(f) => d.push_str(&format!("in force from {f}")),
        None => d.push_str("start date not given in the sources (used only when named)"),
    }
    if let Some(to) = p.effective_to() {
        d.push_str(&format!(" to {to}"));
    }
    d
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

struct Checker<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn fail(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            key: key.into(),
            message: message.into(),
        });
    }

    fn policy(
        &mut self,
        raw: RawPolicy,
        file: &str,
        version: String,
        text: &str,
    ) -> Option<Policy> {
        if raw.format != FORMAT_VERSION {
            self.fail(
                "format",
                format!(
                    "format {} is not supported; this build reads format {FORMAT_VERSION}",
                    raw.format
                ),
            );
        }
        let id_ok = !raw.id.is_empty()
            && raw.id.len() <= 64
            && raw
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.id.starts_with('-')
            && !raw.id.ends_with('-');
        if !id_ok {
            self.fail(
                "id",
                format!(
                    "`{}` is not a policy id: use 1–64 lowercase letters, digits and inner hyphens",
                    raw.id
                ),
            );
        }
        self.non_blank("title", raw.title.as_deref());
        self.non_blank("document_number", raw.document_number.as_deref());
        self.non_blank("source", Some(&raw.source));
        let issuing_bodies = raw.issuing_bodies.unwrap_or_default();
        for (i, body) in issuing_bodies.iter().enumerate() {
            self.non_blank(format!("issuing_bodies[{i}]"), Some(body));
        }
        if let (Some(from), Some(to)) = (raw.effective_from, raw.effective_to)
            && to.last_day() < from.first_day()
        {
            self.fail(
                "effective_to",
                format!("the policy ends ({to}) before it starts ({from})"),
            );
        }
        if raw.claim_days == Some(0) {
            self.fail(
                "claim_days",
                "a claim window of 0 days leaves no time to claim",
            );
        }
        let rounding = raw.rounding.unwrap_or_default();
        if raw.rules.is_empty() {
            self.fail(
                "rules",
                "the policy has no rules: add at least one [rules.<kind>] table",
            );
        }
        let mut rules = BTreeMap::new();
        for (kind, raw_rule) in raw.rules {
            if let Some(rule) = self.rule(kind, raw_rule) {
                rules.insert(kind, rule);
            }
        }
        let employee_uplift = raw.employee_uplift.and_then(|u| self.uplift(u, &rules));
        let mut monthly_caps = BTreeMap::new();
        for (kind, cap) in raw.monthly_caps.unwrap_or_default() {
            let key = format!("monthly_caps.{kind}");
            if !rules.contains_key(&kind) {
                self.fail(
                    &key,
                    format!(
                        "the policy has no rule for `{kind}`, so a monthly cap for it means nothing"
                    ),
                );
            }
            if cap.is_zero() {
                self.fail(
                    &key,
                    "a monthly cap of 0.00 would forbid every reward of this kind",
                );
            }
            monthly_caps.insert(kind, cap);
        }
        if let Some(threshold) = raw.dual_approval_threshold
            && threshold.is_zero()
        {
            self.fail(
                "dual_approval_threshold",
                "0.00 would require two approvals for every reward; leave the key out if the policy sets no threshold",
            );
        }
        let eligibility = raw
            .eligibility
            .map_or_else(Eligibility::default, |e| Eligibility {
                anonymous_allowed: e.anonymous_allowed,
                exclude_supervisory_staff: e.exclude_supervisory_staff,
            });
        let policy = Policy {
            id: raw.id,
            version,
            title: raw.title,
            document_number: raw.document_number,
            issuing_bodies,
            source: raw.source,
            effective_from: raw.effective_from,
            effective_to: raw.effective_to,
            jurisdiction: raw.jurisdiction,
            sectors: raw.sectors,
            rounding,
            joint: raw.joint.unwrap_or_default(),
            claim_days: raw.claim_days,
            dual_approval_threshold: raw.dual_approval_threshold,
            eligibility,
            rules,
            employee_uplift,
            monthly_caps,
            file: file.to_owned(),
            source_text: text.to_owned(),
            summary: String::new(),
        };
        let mut policy = policy;
        policy.summary = summarise(&policy);
        if rounding == Rounding::Yuan {
            self.whole_yuan(&policy);
        }
        Some(policy)
    }

    fn non_blank(&mut self, key: impl Into<String>, value: Option<&str>) {
        if value.is_some_and(|v| v.trim().is_empty()) {
            self.fail(
                key,
                "is blank; leave the key out where the sources do not give it",
            );
        }
    }

    /// Keys present in `raw` that the rule's type does not use.
    fn stray_keys(&mut self, base: &str, raw: &RawRule, allowed: &[&str]) {
        let present = [
            ("percent", raw.percent.is_some()),
            ("percent_by_grade", raw.percent_by_grade.is_some()),
            ("floor", raw.floor.is_some()),
            ("cap", raw.cap.is_some()),
            ("no_penalty_amount", raw.no_penalty_amount.is_some()),
            ("per_death", raw.per_death.is_some()),
            ("min", raw.min.is_some()),
            ("max", raw.max.is_some()),
            ("amount", raw.amount.is_some()),
        ];
        for (name, is_present) in present {
            if is_present && !allowed.contains(&name) {
                self.fail(
                    format!("{base}.{name}"),
                    format!(
                        "`{name}` does not belong to a rule of type \"{}\" (allowed: type, {})",
                        raw.rule_type.as_str(),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn require<T>(
        &mut self,
        base: &str,
        name: &str,
        rule_type: RuleType,
        v: Option<T>,
    ) -> Option<T> {
        if v.is_none() {
            self.fail(
                format!("{base}.{name}"),
                format!(
                    "missing: a rule of type \"{}\" needs `{name}`",
                    rule_type.as_str()
                ),
            );
        }
        v
    }

    fn floor_cap(
        &mut self,
        base: &str,
        floor: Option<Money>,
        cap: Option<Money>,
        no_penalty: Option<Money>,
    ) {
        if let (Some(floor), Some(cap)) = (floor, cap)
            && cap < floor
        {
            self.fail(
                format!("{base}.cap"),
                format!("cap {cap} is below floor {floor}"),
            );
        }
        if cap.is_some_and(|c| c.is_zero()) {
            self.fail(
                format!("{base}.cap"),
                "a cap of 0.00 would forbid every reward",
            );
        }
        if let Some(np) = no_penalty {
            // Keeps the award non-decreasing in the penalty: a verified report without a fine
            // must not earn more than one with the smallest fine, which earns the floor.
            match floor {
                None => self.fail(
                    format!("{base}.no_penalty_amount"),
                    "needs a `floor`: without one, a tiny fine would earn less than no fine",
                ),
                Some(floor) if np > floor => self.fail(
                    format!("{base}.no_penalty_amount"),
                    format!("no-penalty amount {np} is above floor {floor}: a verified report with a fine would earn less than one without"),
                ),
                Some(_) => {}
            }
            if np.is_zero() {
                self.fail(
                    format!("{base}.no_penalty_amount"),
                    "0.00: leave the key out instead (then a report without a fine is not eligible)",
                );
            }
        }
    }

    fn rule(&mut self, kind: OutcomeKind, raw: RawRule) -> Option<Rule> {
        let base = format!("rules.{kind}");
        let t = raw.rule_type;
        if (t == RuleType::PerDeath) != (kind == OutcomeKind::ConcealedAccident) {
            self.fail(
                format!("{base}.type"),
                if t == RuleType::PerDeath {
                    format!("a per_death rule needs accident levels and deaths, which only `concealed_accident` has; `{kind}` cannot use it")
                } else {
                    "`concealed_accident` is rewarded per verified concealed death: use type \"per_death\"".to_owned()
                },
            );
        }
        match t {
            RuleType::Percent => {
                self.stray_keys(
                    &base,
                    &raw,
                    &["percent", "floor", "cap", "no_penalty_amount"],
                );
                let percent = self.require(&base, "percent", t, raw.percent)?;
                self.floor_cap(&base, raw.floor, raw.cap, raw.no_penalty_amount);
                Some(Rule::Percent {
                    percent,
                    floor: raw.floor,
                    cap: raw.cap,
                    no_penalty_amount: raw.no_penalty_amount,
                })
            }
            RuleType::Graded => {
                self.stray_keys(
                    &base,
                    &raw,
                    &["percent_by_grade", "floor", "cap", "no_penalty_amount"],
                );
                let grades = self.require(&base, "percent_by_grade", t, raw.percent_by_grade)?;
                let mut by_grade = BTreeMap::new();
                for (grade, pct) in grades {
                    match grade.as_str() {
                        "1" => {
                            by_grade.insert(1, pct);
                        }
                        "2" => {
                            by_grade.insert(2, pct);
                        }
                        other => self.fail(
                            format!("{base}.percent_by_grade.{other}"),
                            "report grades are 1 or 2",
                        ),
                    }
                }
                if by_grade.is_empty() {
                    self.fail(
                        format!("{base}.percent_by_grade"),
                        "lists no grade: give a percentage for grade 1 and/or 2",
                    );
                }
                self.floor_cap(&base, raw.floor, raw.cap, raw.no_penalty_amount);
                Some(Rule::Graded {
                    percent_by_grade: by_grade,
                    floor: raw.floor,
                    cap: raw.cap,
                    no_penalty_amount: raw.no_penalty_amount,
                })
            }
            RuleType::PerDeath => {
                self.stray_keys(&base, &raw, &["per_death", "cap"]);
                let pd = self.require(&base, "per_death", t, raw.per_death)?;
                let mut per_death = BTreeMap::new();
                for (level, amount) in [
                    (AccidentLevel::General, pd.general),
                    (AccidentLevel::Larger, pd.larger),
                    (AccidentLevel::Major, pd.major),
                    (AccidentLevel::EspeciallyMajor, pd.especially_major),
                ] {
                    if let Some(amount) = amount {
                        if amount.is_zero() {
                            self.fail(
                                format!("{base}.per_death.{level}"),
                                "0.00 per death: leave the level out if the policy does not reward it",
                            );
                        }
                        per_death.insert(level, amount);
                    }
                }
                if per_death.is_empty() {
                    self.fail(
                        format!("{base}.per_death"),
                        "lists no accident level: give an amount for at least one of general, larger, major, especially_major",
                    );
                }
                if raw.cap.is_some_and(|c| c.is_zero()) {
                    self.fail(
                        format!("{base}.cap"),
                        "a cap of 0.00 would forbid every reward",
                    );
                }
                Some(Rule::PerDeath {
                    per_death,
                    cap: raw.cap,
                })
            }
            RuleType::Range => {
                self.stray_keys(&base, &raw, &["min", "max"]);
                let min = self.require(&base, "min", t, raw.min)?;
                if let Some(max) = raw.max
                    && max < min
                {
                    self.fail(
                        format!("{base}.max"),
                        format!("max {max} is below min {min}"),
                    );
                }
                if raw.max.is_some_and(|m| m.is_zero()) {
                    self.fail(
                        format!("{base}.max"),
                        "a max of 0.00 would forbid every reward",
                    );
                }
                Some(Rule::Range { min, max: raw.max })
            }
            RuleType::Fixed => {
                self.stray_keys(&base, &raw, &["amount"]);
                let amount = self.require(&base, "amount", t, raw.amount)?;
                if amount.is_zero() {
                    self.fail(
                        format!("{base}.amount"),
                        "a fixed amount of 0.00 rewards nothing",
                    );
                }
                Some(Rule::Fixed { amount })
            }
        }
    }

    fn uplift(
        &mut self,
        raw: RawUplift,
        rules: &BTreeMap<OutcomeKind, Rule>,
    ) -> Option<EmployeeUplift> {
        if raw.percent.is_none() && raw.min.is_none() && raw.cap.is_none() {
            self.fail(
                "employee_uplift",
                "has none of percent, min, cap: leave the table out if the policy has no employee uplift",
            );
        }
        let kinds = match raw.kinds {
            None => None,
            Some(list) => {
                let mut set = BTreeSet::new();
                for kind in list {
                    if !rules.contains_key(&kind) {
                        self.fail(
                            "employee_uplift.kinds",
                            format!("`{kind}` has no rule in this policy"),
                        );
                    }
                    if !set.insert(kind) {
                        self.fail("employee_uplift.kinds", format!("`{kind}` is listed twice"));
                    }
                }
                if set.is_empty() {
                    self.fail(
                        "employee_uplift.kinds",
                        "is empty; leave it out to apply the uplift to every kind",
                    );
                }
                Some(set)
            }
        };
        if raw.min.is_some_and(|m| m.is_zero()) {
            self.fail("employee_uplift.min", "0.00: leave the key out instead");
        }
        let uplift = EmployeeUplift {
            percent: raw.percent,
            min: raw.min,
            cap: raw.cap,
            kinds,
            family_members: raw.family_members.unwrap_or_default(),
        };
        if let Some(cap) = uplift.cap {
            // The total cap must never take an employee below what a non-employee gets for
            // the same outcome, so it must be at least every covered rule's highest base.
            for (kind, rule) in rules.iter().filter(|(k, _)| uplift.applies_to(**k)) {
                match rule.max_base() {
                    Some(max) if cap < max => self.fail(
                        "employee_uplift.cap",
                        format!("total cap {cap} is below {max}, the highest base of rules.{kind}: an employee would receive less than a non-employee"),
                    ),
                    Some(_) => {}
                    None => self.fail(
                        "employee_uplift.cap",
                        format!("rules.{kind} has no upper bound, so the total cap {cap} could pay an employee less than a non-employee; bound the rule or leave {kind} out of employee_uplift.kinds"),
                    ),
                }
            }
        }
        Some(uplift)
    }

    fn whole_yuan(&mut self, p: &Policy) {
        let mut check = |key: String, m: Option<Money>| {
            if let Some(m) = m
                && !m.as_decimal().fract().is_zero()
            {
                self.fail(
                    key,
                    format!("{m} is not a whole number of yuan, but the policy rounds to the yuan"),
                );
            }
        };
        for (kind, rule) in &p.rules {
            let b = format!("rules.{kind}");
            match rule {
                Rule::Percent {
                    floor,
                    cap,
                    no_penalty_amount,
                    ..
                }
                | Rule::Graded {
                    floor,
                    cap,
                    no_penalty_amount,
                    ..
                } => {
                    check(format!("{b}.floor"), *floor);
                    check(format!("{b}.cap"), *cap);
                    check(format!("{b}.no_penalty_amount"), *no_penalty_amount);
                }
                Rule::PerDeath { per_death, cap } => {
                    for (level, amount) in per_death {
                        check(format!("{b}.per_death.{level}"), Some(*amount));
                    }
                    check(format!("{b}.cap"), *cap);
                }
                Rule::Range { min, max } => {
                    check(format!("{b}.min"), Some(*min));
                    check(format!("{b}.max"), *max);
                }
                Rule::Fixed { amount } => check(format!("{b}.amount"), Some(*amount)),
            }
        }
        if let Some(u) = &p.employee_uplift {
            check("employee_uplift.min".to_owned(), u.min);
            check("employee_uplift.cap".to_owned(), u.cap);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Naming the key of a TOML error
// ---------------------------------------------------------------------------------------

/// The message of a TOML error with its line number, without the ASCII-art excerpt.
fn toml_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text
                .get(..span.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1;
            format!("{} (line {line})", e.message().trim_end())
        }
        None => e.message().trim_end().to_owned(),
    }
}

/// Best-effort dotted key path for a TOML error: the enclosing `[table]` header plus the key
/// written on the error's line (or, for a missing field, the field the message names).
pub(crate) fn key_at(text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    let Some(span) = span else {
        return missing.map_or_else(|| "(file)".to_owned(), str::to_owned);
    };
    let start = span.start.min(text.len());
    let line_start = text
        .get(..start)
        .and_then(|b| b.rfind('\n'))
        .map_or(0, |i| i + 1);
    let before = text.get(..line_start).unwrap_or("");
    let line_end = text
        .get(line_start..)
        .and_then(|rest| rest.find('\n'))
        .map_or(text.len(), |i| line_start + i);
    let line = text.get(line_start..line_end).unwrap_or("").trim();
    let header_of = |l: &str| -> Option<String> {
        let l = l.trim();
        if l.starts_with('[') {
            let inner = l.trim_start_matches('[');
            let inner = inner.split(']').next().unwrap_or("");
            Some(unquote_path(inner))
        } else {
            None
        }
    };
    if let Some(header) = header_of(line) {
        return match missing {
            Some(field) => format!("{header}.{field}"),
            None => header,
        };
    }
    let table = before.lines().rev().find_map(header_of);
    let join = |key: &str| match &table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    };
    if let Some(field) = missing {
        return join(field);
    }
    // The key on the error's line, or on the nearest line above that assigns one (a
    // multi-line array).
    let assigning = std::iter::once(line)
        .chain(before.lines().rev().map(str::trim))
        .find(|l| !l.starts_with('#') && l.contains('=') && !l.starts_with('['));
    match assigning.and_then(|l| l.split('=').next()) {
        Some(key) if !line.is_empty() && !line.starts_with('#') => join(&unquote_path(key)),
        _ => table.unwrap_or_else(|| "(file)".to_owned()),
    }
}

fn unquote_path(path: &str) -> String {
    path.split('.')
        .map(|part| part.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".")
}

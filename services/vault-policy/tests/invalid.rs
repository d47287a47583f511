//! Invalid policies: each validation rule refuses the file, naming the file, the key and the
//! problem.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use vault_policy::{Policy, PolicyError, PolicySet, Problem, Rounding};

const BASE: &str = r#"# test fixture
format = 1
id = "test"
source = "test fixture"
effective_from = "2020-01-01"
jurisdiction = "370000"
sectors = "all"

[rules.major_hazard]
type = "percent"
percent = "15"
floor = "3000.00"
cap = "300000.00"

[rules.concealed_accident]
type = "per_death"
cap = "300000.00"

[rules.concealed_accident.per_death]
general = "30000.00"

[employee_uplift]
percent = "10"
cap = "330000.00"
"#;

fn with(old: &str, new: &str) -> String {
    assert!(BASE.contains(old), "fixture lacks {old:?}");
    BASE.replacen(old, new, 1)
}

fn problems(text: &str) -> Vec<Problem> {
    match Policy::parse("policies/bad.toml", text.as_bytes()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            // The Display of the error lists every problem as `file: key: message`.
            let shown = e.to_string();
            for p in e.problems() {
                assert!(shown.contains(&p.to_string()));
            }
            e.problems().to_vec()
        }
    }
}

/// Asserts exactly one problem, at `key`, whose message contains `words`.
#[track_caller]
fn fails(text: &str, key: &str, words: &str) {
    let found = problems(text);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    let p = &found[0];
    assert_eq!(p.file, "policies/bad.toml");
    assert_eq!(p.key, key, "{p}");
    assert!(
        p.message.contains(words),
        "message {:?} lacks {words:?}",
        p.message
    );
}

#[test]
fn the_fixture_itself_is_valid() {
    let p = Policy::parse("policies/test.toml", BASE.as_bytes()).unwrap();
    assert_eq!(p.id(), "test");
}

// --- structure and unknown keys ---------------------------------------------------------

#[test]
fn fail_unknown_top_level_key() {
    fails(
        &with(
            "sectors = \"all\"\n",
            "sectors = \"all\"\ncolour = \"red\"\n",
        ),
        "colour",
        "unknown field `colour`",
    );
}

#[test]
fn fail_unknown_key_in_a_rule() {
    fails(
        &with(
            "percent = \"15\"\n",
            "percent = \"15\"\nceiling = \"1.00\"\n",
        ),
        "rules.major_hazard.ceiling",
        "unknown field `ceiling`",
    );
}

#[test]
fn fail_unknown_key_in_eligibility() {
    fails(
        &format!("{BASE}\n[eligibility]\nanonymous = true\n"),
        "eligibility.anonymous",
        "unknown field `anonymous`",
    );
}

#[test]
fn fail_unknown_outcome_kind() {
    fails(
        &with("[rules.major_hazard]", "[rules.arson]"),
        "rules.arson",
        "unknown variant `arson`",
    );
}

#[test]
fn fail_unknown_accident_level() {
    fails(
        &with("general = \"30000.00\"", "catastrophic = \"30000.00\""),
        "rules.concealed_accident.per_death.catastrophic",
        "unknown field `catastrophic`",
    );
}

#[test]
fn fail_unknown_rule_type() {
    fails(
        &with("type = \"percent\"", "type = \"lump_sum\""),
        "rules.major_hazard.type",
        "unknown variant `lump_sum`",
    );
}

#[test]
fn fail_missing_required_key() {
    fails(
        &with("source = \"test fixture\"\n", ""),
        "source",
        "missing field `source`",
    );
}

#[test]
fn fail_toml_syntax_error() {
    fails(
        &with("percent = \"15\"", "percent = "),
        "rules.major_hazard.percent",
        "line 11",
    );
}

#[test]
fn fail_not_utf8() {
    let mut bytes = BASE.as_bytes().to_vec();
    bytes.extend_from_slice(b"# \xff\n");
    let e = Policy::parse("policies/bad.toml", &bytes).unwrap_err();
    assert_eq!(e.problems()[0].key, "(file)");
    assert!(e.problems()[0].message.contains("not UTF-8"));
}

#[test]
fn fail_unsupported_format_version() {
    fails(
        &with("format = 1", "format = 2"),
        "format",
        "format 2 is not supported",
    );
}

#[test]
fn fail_bad_id() {
    fails(
        &with("id = \"test\"", "id = \"Test_1\""),
        "id",
        "is not a policy id",
    );
}

#[test]
fn fail_blank_title() {
    fails(
        &with("id = \"test\"\n", "id = \"test\"\ntitle = \" \"\n"),
        "title",
        "is blank",
    );
}

#[test]
fn fail_no_rules() {
    let text = BASE
        .split("[rules.major_hazard]")
        .next()
        .unwrap()
        .to_owned()
        + "[rules]\n";
    fails(&text, "rules", "no rules");
}

// --- money, percentages, dates, codes -----------------------------------------------------

#[test]
fn fail_percentage_over_100() {
    fails(
        &with("percent = \"15\"", "percent = \"150\""),
        "rules.major_hazard.percent",
        "percentage 150 is not above 0 and at most 100",
    );
}

#[test]
fn fail_percentage_zero() {
    fails(
        &with("percent = \"15\"", "percent = \"0\""),
        "rules.major_hazard.percent",
        "not above 0",
    );
}

#[test]
fn fail_uplift_percentage_over_100() {
    fails(
        &with("percent = \"10\"", "percent = \"100.5\""),
        "employee_uplift.percent",
        "at most 100",
    );
}

#[test]
fn fail_bad_money_string() {
    fails(
        &with("floor = \"3000.00\"", "floor = \"3,000\""),
        "rules.major_hazard.floor",
        "`3,000` is not a decimal amount in yuan",
    );
    fails(
        &with("floor = \"3000.00\"", "floor = \"-3000.00\""),
        "rules.major_hazard.floor",
        "is not a decimal amount",
    );
    fails(
        &with("floor = \"3000.00\"", "floor = \"3000.001\""),
        "rules.major_hazard.floor",
        "is not a decimal amount",
    );
}

#[test]
fn fail_money_as_a_number() {
    // Money is a decimal string: a TOML number might already have been through a float.
    fails(
        &with("floor = \"3000.00\"", "floor = 3000.0"),
        "rules.major_hazard.floor",
        "decimal string",
    );
    fails(
        &with(
            "cap = \"300000.00\"\n\n[rules.concealed",
            "cap = 300000\n\n[rules.concealed",
        ),
        "rules.major_hazard.cap",
        "decimal string",
    );
}

#[test]
fn fail_bad_date() {
    fails(
        &with(
            "effective_from = \"2020-01-01\"",
            "effective_from = \"2020-02-30\"",
        ),
        "effective_from",
        "is not a date",
    );
}

#[test]
fn fail_ends_before_it_starts() {
    fails(
        &with(
            "effective_from = \"2020-01-01\"",
            "effective_from = \"2020-01-01\"\neffective_to = \"2019\"",
        ),
        "effective_to",
        "ends (2019) before it starts (2020-01-01)",
    );
}

#[test]
fn fail_bad_jurisdiction() {
    fails(
        &with("jurisdiction = \"370000\"", "jurisdiction = \"37000\""),
        "jurisdiction",
        "not a 6-digit administrative division code",
    );
}

#[test]
fn fail_bad_sectors() {
    fails(
        &with("sectors = \"all\"", "sectors = [\"mining\"]"),
        "sectors",
        "unknown variant `mining`",
    );
    fails(
        &with("sectors = \"all\"", "sectors = []"),
        "sectors",
        "empty",
    );
    fails(
        &with("sectors = \"all\"", "sectors = \"most\""),
        "sectors",
        "\"all\" or a list",
    );
    fails(
        &with(
            "sectors = \"all\"",
            "sectors = [\"coal_mine\", \"coal_mine\"]",
        ),
        "sectors",
        "listed twice",
    );
}

#[test]
fn fail_claim_days() {
    fails(
        &with("sectors = \"all\"\n", "sectors = \"all\"\nclaim_days = 0\n"),
        "claim_days",
        "0 days",
    );
    fails(
        &with(
            "sectors = \"all\"\n",
            "sectors = \"all\"\nclaim_days = -60\n",
        ),
        "claim_days",
        "-60",
    );
}

#[test]
fn fail_dual_approval_threshold_zero() {
    fails(
        &with(
            "sectors = \"all\"\n",
            "sectors = \"all\"\ndual_approval_threshold = \"0.00\"\n",
        ),
        "dual_approval_threshold",
        "two approvals for every reward",
    );
}

// --- rules ------------------------------------------------------------------------------

#[test]
fn fail_cap_below_floor() {
    fails(
        &with(
            "cap = \"300000.00\"\n\n[rules.concealed",
            "cap = \"2000.00\"\n\n[rules.concealed",
        ),
        "rules.major_hazard.cap",
        "cap 2000.00 is below floor 3000.00",
    );
}

#[test]
fn fail_rule_missing_its_figure() {
    fails(
        &with("percent = \"15\"\n", ""),
        "rules.major_hazard.percent",
        "a rule of type \"percent\" needs `percent`",
    );
}

#[test]
fn fail_key_not_belonging_to_the_rule_type() {
    fails(
        &with("percent = \"15\"\n", "percent = \"15\"\nmin = \"500.00\"\n"),
        "rules.major_hazard.min",
        "`min` does not belong to a rule of type \"percent\"",
    );
}

#[test]
fn fail_per_death_rule_for_another_kind() {
    let text = format!(
        "{BASE}\n[rules.violation]\ntype = \"per_death\"\n[rules.violation.per_death]\ngeneral = \"1.00\"\n"
    );
    let found = problems(&text);
    assert!(
        found.iter().any(|p| p.key == "rules.violation.type"
            && p.message.contains("only `concealed_accident` has"))
    );
}

#[test]
fn fail_concealed_accident_not_per_death() {
    let text = with(
        "type = \"per_death\"\ncap = \"300000.00\"\n\n[rules.concealed_accident.per_death]\ngeneral = \"30000.00\"\n",
        "type = \"fixed\"\namount = \"500.00\"\n",
    );
    fails(
        &text,
        "rules.concealed_accident.type",
        "use type \"per_death\"",
    );
}

#[test]
fn fail_per_death_lists_no_level_or_zero() {
    fails(
        &with("general = \"30000.00\"\n", ""),
        "rules.concealed_accident.per_death",
        "lists no accident level",
    );
    fails(
        &with("general = \"30000.00\"", "general = \"0.00\""),
        "rules.concealed_accident.per_death.general",
        "0.00 per death",
    );
}

#[test]
fn fail_range_max_below_min() {
    let text = format!(
        "{BASE}\n[rules.general_hazard]\ntype = \"range\"\nmin = \"500.00\"\nmax = \"400.00\"\n"
    );
    let found = problems(&text);
    // The uplift cap also complains? No: 330000 is above 400 and 500. One problem only.
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key, "rules.general_hazard.max");
    assert_eq!(found[0].message, "max 400.00 is below min 500.00");
}

#[test]
fn fail_graded_rule_with_unknown_grade() {
    let text = with(
        "type = \"percent\"\npercent = \"15\"\n",
        "type = \"graded\"\npercent_by_grade = { 1 = \"15\", 3 = \"12\" }\n",
    );
    fails(
        &text,
        "rules.major_hazard.percent_by_grade.3",
        "report grades are 1 or 2",
    );
}

#[test]
fn fail_no_penalty_amount_without_floor_or_above_it() {
    fails(
        &with("floor = \"3000.00\"\n", "no_penalty_amount = \"1000.00\"\n"),
        "rules.major_hazard.no_penalty_amount",
        "needs a `floor`",
    );
    fails(
        &with(
            "floor = \"3000.00\"\n",
            "floor = \"3000.00\"\nno_penalty_amount = \"3500.00\"\n",
        ),
        "rules.major_hazard.no_penalty_amount",
        "is above floor 3000.00",
    );
}

// --- employee uplift, monthly caps, rounding ----------------------------------------------

#[test]
fn fail_uplift_cap_below_a_rule_cap() {
    // One problem per rule the uplift applies to.
    let found = problems(&with("cap = \"330000.00\"", "cap = \"200000.00\""));
    let messages: Vec<(&str, &str)> = found
        .iter()
        .map(|p| (p.key.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [
            (
                "employee_uplift.cap",
                "total cap 200000.00 is below 300000.00, the highest base of rules.major_hazard: an employee would receive less than a non-employee"
            ),
            (
                "employee_uplift.cap",
                "total cap 200000.00 is below 300000.00, the highest base of rules.concealed_accident: an employee would receive less than a non-employee"
            ),
        ]
    );
}

#[test]
fn fail_uplift_cap_over_an_unbounded_rule() {
    let text = format!("{BASE}\n[rules.general_hazard]\ntype = \"range\"\nmin = \"3000.00\"\n");
    fails(
        &text,
        "employee_uplift.cap",
        "rules.general_hazard has no upper bound",
    );
    // Limiting the uplift to bounded kinds is fine.
    let ok = text.replace(
        "cap = \"330000.00\"",
        "cap = \"330000.00\"\nkinds = [\"major_hazard\", \"concealed_accident\"]",
    );
    Policy::parse("policies/ok.toml", ok.as_bytes()).unwrap();
}

#[test]
fn fail_uplift_for_a_kind_without_rule() {
    fails(
        &with(
            "cap = \"330000.00\"",
            "cap = \"330000.00\"\nkinds = [\"violation\"]",
        ),
        "employee_uplift.kinds",
        "`violation` has no rule in this policy",
    );
}

#[test]
fn fail_empty_uplift() {
    fails(
        &with("percent = \"10\"\ncap = \"330000.00\"\n", ""),
        "employee_uplift",
        "has none of percent, min, cap",
    );
}

#[test]
fn fail_monthly_cap_for_a_kind_without_rule() {
    fails(
        &format!("{BASE}\n[monthly_caps]\nviolation = \"1000.00\"\n"),
        "monthly_caps.violation",
        "no rule for `violation`",
    );
}

#[test]
fn fail_fen_amount_under_yuan_rounding() {
    fails(
        &with(
            "sectors = \"all\"\n",
            "sectors = \"all\"\nrounding = \"yuan\"\n",
        )
        .replace("floor = \"3000.00\"", "floor = \"3000.50\""),
        "rules.major_hazard.floor",
        "3000.50 is not a whole number of yuan",
    );
}

#[test]
fn several_problems_are_all_reported() {
    let text =
        with("cap = \"330000.00\"", "cap = \"200000.00\"").replace("format = 1", "format = 3");
    let found = problems(&text);
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["format", "employee_uplift.cap", "employee_uplift.cap"]
    );
}

#[test]
fn optional_keys_parse() {
    let text = with(
        "sectors = \"all\"\n",
        "sectors = [\"coal_mine\"]\nrounding = \"yuan\"\njoint = \"equal_split\"\nclaim_days = 90\ndual_approval_threshold = \"50000.00\"\n",
    );
    let p = Policy::parse("policies/test.toml", text.as_bytes()).unwrap();
    assert_eq!(p.rounding(), Rounding::Yuan);
    assert_eq!(p.joint(), vault_policy::Joint::EqualSplit);
    assert_eq!(p.claim_days(), Some(90));
    assert_eq!(p.dual_approval_threshold().unwrap().to_string(), "50000.00");
    assert!(p.sectors().is_specific());
}

// --- across files -----------------------------------------------------------------------

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory holding `files`.
fn dir_with(files: &[(&str, &str)]) -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("vault-policy-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

fn policy(id: &str, extra_top: &str) -> String {
    with("id = \"test\"", &format!("id = \"{id}\"")).replacen(
        "sectors = \"all\"\n",
        &format!("sectors = \"all\"\n{extra_top}"),
        1,
    )
}

fn load_problems(dir: &PathBuf) -> Vec<Problem> {
    match PolicySet::load_dir(dir) {
        Ok(_) => panic!("accepted {}", dir.display()),
        Err(e) => e.problems().to_vec(),
    }
}

#[test]
fn fail_overlapping_periods_for_the_same_scope() {
    let dir = dir_with(&[
        ("a.toml", &policy("a", "")),
        ("b.toml", &policy("b", "").replace("2020-01-01", "2023-06")),
    ]);
    let found = load_problems(&dir);
    assert_eq!(found.len(), 1, "{found:#?}");
    let p = &found[0];
    assert!(p.file.ends_with("b.toml"));
    assert_eq!(p.key, "effective_from");
    assert!(
        p.message
            .contains("the effective period 2023-06 to open-ended overlaps that of `a`"),
        "{}",
        p.message
    );
    assert!(p.message.contains("a.toml"));
    // Ending the first the day before the second starts resolves it.
    let dir = dir_with(&[
        (
            "a.toml",
            &policy("a", "").replace(
                "effective_from = \"2020-01-01\"",
                "effective_from = \"2020-01-01\"\neffective_to = \"2023-05-31\"",
            ),
        ),
        ("b.toml", &policy("b", "").replace("2020-01-01", "2023-06")),
    ]);
    let set = PolicySet::load_dir(&dir).unwrap();
    assert_eq!(set.len(), 2);
}

#[test]
fn fail_overlap_counts_a_policy_without_start_date() {
    let dir = dir_with(&[
        ("a.toml", &policy("a", "")),
        (
            "b.toml",
            &policy("b", "").replace("effective_from = \"2020-01-01\"\n", ""),
        ),
    ]);
    let found = load_problems(&dir);
    assert!(
        found[0].message.contains("(start not stated)"),
        "{found:#?}"
    );
}

#[test]
fn sector_scopes_that_do_not_tie_may_overlap() {
    // A general and a specific policy never tie (the specific one wins); specific policies
    // with disjoint sectors never match the same case.
    let dir = dir_with(&[
        ("a.toml", &policy("a", "")),
        (
            "b.toml",
            &policy("b", "").replace("sectors = \"all\"", "sectors = [\"coal_mine\"]"),
        ),
        (
            "c.toml",
            &policy("c", "").replace("sectors = \"all\"", "sectors = [\"fireworks\"]"),
        ),
    ]);
    assert_eq!(PolicySet::load_dir(&dir).unwrap().len(), 3);
    // Specific policies sharing a sector do tie.
    let dir = dir_with(&[
        (
            "b.toml",
            &policy("b", "").replace("sectors = \"all\"", "sectors = [\"coal_mine\"]"),
        ),
        (
            "c.toml",
            &policy("c", "").replace(
                "sectors = \"all\"",
                "sectors = [\"fireworks\", \"coal_mine\"]",
            ),
        ),
    ]);
    let found = load_problems(&dir);
    assert_eq!(found[0].key, "effective_from");
    // Another jurisdiction never ties.
    let dir = dir_with(&[
        ("a.toml", &policy("a", "")),
        ("b.toml", &policy("b", "").replace("370000", "370100")),
    ]);
    assert_eq!(PolicySet::load_dir(&dir).unwrap().len(), 2);
}

#[test]
fn fail_id_differs_from_file_name() {
    let dir = dir_with(&[("other-name.toml", &policy("a", ""))]);
    let found = load_problems(&dir);
    assert_eq!(found.len(), 1);
    assert!(found[0].file.ends_with("other-name.toml"));
    assert_eq!(found[0].key, "id");
    assert!(found[0].message.contains("name the file `a.toml`"));
}

#[test]
fn fail_duplicate_id() {
    let a = Policy::parse("x/a.toml", policy("a", "").as_bytes()).unwrap();
    let b = Policy::parse(
        "y/a.toml",
        policy("a", "").replace("370000", "510000").as_bytes(),
    )
    .unwrap();
    let e = PolicySet::from_policies(vec![a, b]).unwrap_err();
    assert_eq!(e.problems()[0].file, "y/a.toml");
    assert_eq!(e.problems()[0].key, "id");
    assert!(e.problems()[0].message.contains("already used by x/a.toml"));
}

#[test]
fn fail_every_file_is_checked_and_all_problems_listed() {
    let dir = dir_with(&[
        (
            "a.toml",
            &policy("a", "").replace("percent = \"15\"", "percent = \"101\""),
        ),
        (
            "b.toml",
            &policy("b", "colour = \"red\"\n").replace("370000", "510000"),
        ),
        ("README.md", "not a policy"),
    ]);
    let e = PolicySet::load_dir(&dir).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("2 problems in the reward policies:"),
        "{text}"
    );
    assert!(
        text.contains("a.toml: rules.major_hazard.percent: percentage 101"),
        "{text}"
    );
    assert!(
        text.contains("b.toml: colour: unknown field `colour`"),
        "{text}"
    );
}

#[test]
fn fail_empty_or_missing_directory() {
    let dir = dir_with(&[("README.md", "nothing here")]);
    assert!(matches!(
        PolicySet::load_dir(&dir),
        Err(PolicyError::Empty { .. })
    ));
    let missing = dir.join("nope");
    let e = PolicySet::load_dir(&missing).unwrap_err();
    assert!(matches!(e, PolicyError::Io { .. }));
    assert!(e.to_string().contains("nope: cannot read"));
}

#[test]
fn yuan_rounding_policy_evaluates_to_whole_yuan() {
    let text = with(
        "sectors = \"all\"\n",
        "sectors = \"all\"\nrounding = \"yuan\"\n",
    );
    let dir = dir_with(&[("test.toml", &text)]);
    let set = PolicySet::load_dir(&dir).unwrap();
    let quote = common::q("370100", "major_hazard")
        .penalty("100003.30")
        .quote(&set);
    // 15000.495 → 15000; 100003.34 → 15000.501 → 15001; 100003.33 → 15000.4995 → 15000.
    assert_eq!(quote.amount.to_string(), "15000.00");
    let quote = common::q("370100", "major_hazard")
        .penalty("100003.34")
        .quote(&set);
    assert_eq!(quote.amount.to_string(), "15001.00");
    assert_eq!(
        common::detail(&quote, vault_policy::Step::Rounding),
        "15000.501 rounded half away from zero to the whole yuan = 15001.00"
    );
    // Exactly half a yuan goes up: 15000.50.
    let quote = common::q("370100", "major_hazard")
        .penalty("100003.34")
        .quote(&set);
    assert_eq!(quote.amount.to_string(), "15001.00");
    let quote = common::q("370100", "concealed_accident")
        .level("general")
        .deaths(1)
        .employee()
        .quote(&set);
    assert_eq!(quote.amount.to_string(), "33000.00");
}

#[test]
fn fail_missing_keys_are_named_with_their_table() {
    fails(
        &with("format = 1\n", ""),
        "format",
        "missing field `format`",
    );
    fails(
        &with("type = \"percent\"\n", ""),
        "rules.major_hazard.type",
        "missing field `type`",
    );
    fails(
        &with(
            "[rules.concealed_accident.per_death]\ngeneral = \"30000.00\"\n",
            "",
        )
        .replace("type = \"per_death\"\n", ""),
        "rules.concealed_accident.type",
        "missing field `type`",
    );
}

#[test]
fn fail_value_errors_in_inline_tables_and_arrays() {
    fails(
        &with(
            "type = \"percent\"\npercent = \"15\"\n",
            "type = \"graded\"\npercent_by_grade = { 1 = \"15\", 2 = \"120\" }\n",
        ),
        "rules.major_hazard.percent_by_grade",
        "percentage 120",
    );
    fails(
        &with(
            "cap = \"330000.00\"",
            "cap = \"330000.00\"\nkinds = [\n  \"major_hazard\",\n  \"arson\",\n]",
        ),
        "employee_uplift.kinds",
        "unknown variant `arson`",
    );
}

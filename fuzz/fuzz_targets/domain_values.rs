//! The value objects of `vault_domain::values` (resident ID, phone, bank account, name,
//! e-mail, free text, jurisdiction, case reference, the small enums) and the policy crate's
//! own scalar parsers (jurisdiction, money, percent, policy date), all on the same text.
//!
//! Input: UTF-8 text (anything else is skipped). Byte 0 of the text, when it is a `|`, splits
//! the rest into two values for the pairwise jurisdiction checks.
//!
//! Properties (cheap ones, on every input):
//! * normal forms are fixed points: a parsed value's normal form parses to the same value
//!   (one real-world value, one stored form, one blind index);
//! * normal forms have the documented shape (digits only, lengths, …);
//! * `normalize_for_trace` agrees with the parser of each field;
//! * public values round-trip through `Display`/`as_str` and through serde exactly as
//!   through `parse`;
//! * the domain's and the policy crate's jurisdiction parsers agree wherever the domain's
//!   (stricter) one accepts, on the text, the level and on `covers`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vault_domain::values::{
    Address, BankAccount, BankName, CaseRef, Channel, Email, Employer, IdentityField,
    Jurisdiction, JurisdictionLevel, MessageKind, PersonName, Phone, Purpose, ResidentId, Role,
    normalize_for_trace,
};

/// `T::parse(s)` succeeds ⇒ its normal form `n` parses to an equal value with normal form `n`.
macro_rules! fixed_point {
    ($ty:ty, $s:expr) => {{
        match <$ty>::parse($s) {
            Ok(v) => {
                let n = v.expose().to_owned();
                let again = <$ty>::parse(&n).unwrap_or_else(|e| {
                    panic!(
                        "{}: normal form {n:?} of {:?} refused: {e}",
                        stringify!($ty),
                        $s
                    )
                });
                assert!(again == v, "{}: {n:?} is not a fixed point", stringify!($ty));
                assert_eq!(again.normalized_for_mac(), n);
                Some(n)
            }
            Err(e) => {
                assert!(!e.reason.is_empty());
                None
            }
        }
    }};
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Enum `parse`, `FromStr`, `as_str` and serde agree.
macro_rules! enum_agrees {
    ($ty:ty, $s:expr) => {{
        let p = <$ty>::parse($s);
        let f = $s.parse::<$ty>().ok();
        let j = serde_json::from_str::<$ty>(&json_str($s)).ok();
        assert_eq!(p, f);
        assert_eq!(p, j);
        if let Some(v) = p {
            assert_eq!(v.as_str(), $s);
            assert_eq!(v.to_string(), $s);
        }
    }};
}

fn level_name(l: JurisdictionLevel) -> &'static str {
    match l {
        JurisdictionLevel::National => "national",
        JurisdictionLevel::Province => "province",
        JurisdictionLevel::City => "city",
        JurisdictionLevel::County => "county",
    }
}

fn policy_level_name(l: vault_policy::Level) -> &'static str {
    match l {
        vault_policy::Level::National => "national",
        vault_policy::Level::Province => "province",
        vault_policy::Level::City => "city",
        vault_policy::Level::County => "county",
    }
}

fn check_jurisdiction(s: &str) -> Option<(Jurisdiction, vault_policy::Jurisdiction)> {
    let d = Jurisdiction::parse(s);
    let serde = serde_json::from_str::<Jurisdiction>(&json_str(s));
    assert_eq!(d.is_ok(), serde.is_ok(), "serde and parse disagree on {s:?}");
    let p = vault_policy::Jurisdiction::parse(s);
    if let Ok(pj) = &p {
        assert_eq!(pj.to_string(), s);
        assert_eq!(vault_policy::Jurisdiction::parse(&pj.to_string()).ok(), Some(*pj));
    }
    let d = d.ok()?;
    assert_eq!(serde.ok(), Some(d));
    assert_eq!(d.to_string(), s, "jurisdiction text is not canonical");
    assert_eq!(d.as_str(), s);
    assert_eq!(format!("{:06}", d.as_u32()), s);
    let pj = p.unwrap_or_else(|e| panic!("domain accepts {s:?}, policy refuses: {e}"));
    assert_eq!(level_name(d.level()), policy_level_name(pj.level()));
    // Ancestors: most specific first, each covering the previous, ending national.
    let chain = d.ancestors_and_self();
    assert_eq!(chain.first(), Some(&d));
    assert_eq!(chain.last(), Some(&Jurisdiction::NATIONAL));
    for w in chain.windows(2) {
        assert!(w[1].covers(&w[0]) && w[1] != w[0]);
        assert!(Jurisdiction::parse(&w[1].to_string()).is_ok());
    }
    assert!(d.covers(&d));
    if let Some(p) = d.province() {
        assert!(p.covers(&d));
    }
    if let Some(c) = d.city() {
        assert!(c.covers(&d));
    }
    Some((d, pj))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    // Identity values.
    if let Some(n) = fixed_point!(ResidentId, s) {
        assert!(n.len() == 18 && n.bytes().take(17).all(|b| b.is_ascii_digit()));
        assert!(n.ends_with(|c: char| c.is_ascii_digit() || c == 'X'));
        let id = ResidentId::parse(s).expect("parsed above");
        assert!(id.birth_date().year() >= 1900);
        assert_eq!(id.birth_date(), ResidentId::parse(&n).expect("fixed point").birth_date());
    }
    if let Some(n) = fixed_point!(Phone, s) {
        assert!(n.bytes().all(|b| b.is_ascii_digit()), "phone normal form {n:?}");
        assert!((10..=12).contains(&n.len()), "phone normal form {n:?}");
        assert!(n.starts_with('0') || n.starts_with('1'));
        let p = Phone::parse(s).expect("parsed above");
        assert_eq!(p.is_mobile(), n.starts_with('1'));
        if p.is_mobile() {
            assert_eq!(n.len(), 11);
        }
    }
    if let Some(n) = fixed_point!(BankAccount, s) {
        assert!(n.bytes().all(|b| b.is_ascii_digit()) && (12..=19).contains(&n.len()));
    }
    for n in [
        fixed_point!(PersonName, s).map(|n| (n, PersonName::MAX_CHARS)),
        fixed_point!(Address, s).map(|n| (n, 200)),
        fixed_point!(BankName, s).map(|n| (n, 100)),
        fixed_point!(Employer, s).map(|n| (n, 200)),
    ]
    .into_iter()
    .flatten()
    {
        let (n, max) = n;
        let chars = n.chars().count();
        assert!((1..=max).contains(&chars), "{chars} characters");
        assert_eq!(n.trim(), n, "normal form not trimmed");
        assert!(!n.contains("  "), "normal form has a double space");
    }
    if let Some(n) = fixed_point!(Email, s) {
        assert!(n.len() <= 254 && n.matches('@').count() == 1);
    }

    // normalize_for_trace agrees with every parser.
    for f in IdentityField::ALL {
        let traced = normalize_for_trace(f, s).ok();
        let parsed = match f {
            IdentityField::Name => PersonName::parse(s).ok().map(|v| v.expose().to_owned()),
            IdentityField::IdNumber => ResidentId::parse(s).ok().map(|v| v.expose().to_owned()),
            IdentityField::Phone => Phone::parse(s).ok().map(|v| v.expose().to_owned()),
            IdentityField::Email => Email::parse(s).ok().map(|v| v.expose().to_owned()),
            IdentityField::Address => Address::parse(s).ok().map(|v| v.expose().to_owned()),
            IdentityField::BankAccount => {
                BankAccount::parse(s).ok().map(|v| v.expose().to_owned())
            }
            IdentityField::BankName => BankName::parse(s).ok().map(|v| v.expose().to_owned()),
            IdentityField::Employer => Employer::parse(s).ok().map(|v| v.expose().to_owned()),
        };
        assert_eq!(traced, parsed, "normalize_for_trace({f}) disagrees with the parser");
    }

    // Public values.
    match CaseRef::parse(s) {
        Ok(c) => {
            assert_eq!(CaseRef::parse(c.as_str()).ok(), Some(c.clone()));
            assert_eq!(c.as_str(), s.trim());
            assert!(c.as_str().chars().count() <= CaseRef::MAX_CHARS);
            let json = serde_json::to_string(&c).expect("serialise");
            assert_eq!(serde_json::from_str::<CaseRef>(&json).ok(), Some(c));
        }
        Err(_) => assert!(serde_json::from_str::<CaseRef>(&json_str(s)).is_err()),
    }
    enum_agrees!(IdentityField, s);
    enum_agrees!(Channel, s);
    enum_agrees!(Role, s);
    enum_agrees!(Purpose, s);
    enum_agrees!(MessageKind, s);
    if let Some(k) = vault_policy::OutcomeKind::parse(s) {
        assert_eq!((k.as_str(), k.to_string().as_str()), (s, s));
    }
    if let Some(i) = vault_policy::Industry::parse(s) {
        assert_eq!(i.as_str(), s);
    }
    if let Some(l) = vault_policy::AccidentLevel::parse(s) {
        assert_eq!(l.as_str(), s);
    }

    // Jurisdictions, alone and in pairs.
    check_jurisdiction(s);
    if let Some((a, b)) = s.strip_prefix('|').and_then(|r| r.split_once('|')) {
        if let (Some((da, pa)), Some((db, pb))) = (check_jurisdiction(a), check_jurisdiction(b)) {
            assert_eq!(da.covers(&db), pa.covers(&pb), "covers({a}, {b}) differs");
            assert_eq!(db.covers(&da), pb.covers(&pa), "covers({b}, {a}) differs");
            assert_eq!(da.ancestors_and_self().contains(&db), db.covers(&da));
        }
    }

    // The policy crate's scalars: canonical output re-parses to the same value.
    if let Ok(m) = vault_policy::Money::parse(s) {
        let t = m.to_string();
        assert_eq!(vault_policy::Money::parse(&t).ok(), Some(m), "money {s:?} -> {t:?}");
        assert!(t.split_once('.').is_some_and(|(_, f)| f.len() == 2));
        assert!(m.as_decimal() <= vault_policy::MAX_YUAN && !m.as_decimal().is_sign_negative());
        let json = serde_json::to_string(&m).expect("serialise");
        assert_eq!(serde_json::from_str::<vault_policy::Money>(&json).ok(), Some(m));
    }
    if let Ok(p) = vault_policy::Percent::parse(s) {
        let t = p.as_decimal().to_string();
        assert_eq!(vault_policy::Percent::parse(&t).ok(), Some(p), "percent {s:?} -> {t:?}");
        assert_eq!(p.to_string(), format!("{t}%"));
    }
    if let Ok(d) = vault_policy::PolicyDate::parse(s) {
        let t = d.to_string();
        assert_eq!(vault_policy::PolicyDate::parse(&t).ok(), Some(d), "date {s:?} -> {t:?}");
        assert!(d.first_day() <= d.last_day());
    }
});

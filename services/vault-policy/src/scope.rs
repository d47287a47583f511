//! What a policy applies to: jurisdiction, sectors, outcome kinds, accident levels, dates.
//!
//! These are this crate's own small types (the policy crate depends on nothing of the
//! vault), spelled exactly as API.md spells them on the wire.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Date, Month};

/// A 6-digit GB/T 2260 administrative division code.
///
/// `000000` is national, `PP0000` a province, `PPCC00` a city, anything else a county or
/// district. Scope rule (API.md): `000000` covers all; `PP0000` covers every `PPxxxx`;
/// `PPCC00` covers every `PPCCxx`; a county code covers itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Jurisdiction(u32);

/// Depth of a [`Jurisdiction`]: the larger, the more specific.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// `000000`.
    National,
    /// `PP0000`.
    Province,
    /// `PPCC00`.
    City,
    /// Any other code.
    County,
}

/// Why a jurisdiction string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a 6-digit administrative division code (GB/T 2260), like \"370100\"; codes starting 00 other than 000000 do not exist"
)]
pub struct JurisdictionError(pub String);

impl Jurisdiction {
    /// `000000`.
    pub const NATIONAL: Jurisdiction = Jurisdiction(0);

    /// Parses six ASCII digits. A code starting `00` must be `000000`.
    pub fn parse(text: &str) -> Result<Jurisdiction, JurisdictionError> {
        if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(JurisdictionError(text.to_owned()));
        }
        let code = u32::from_str(text).map_err(|_| JurisdictionError(text.to_owned()))?;
        if code != 0 && code < 10_000 {
            return Err(JurisdictionError(text.to_owned()));
        }
        Ok(Jurisdiction(code))
    }

    /// How specific the code is.
    pub const fn level(&self) -> Level {
        if self.0 == 0 {
            Level::National
        } else if self.0.is_multiple_of(10_000) {
            Level::Province
        } else if self.0.is_multiple_of(100) {
            Level::City
        } else {
            Level::County
        }
    }

    /// Whether a policy or principal at `self` covers a case at `other`.
    pub const fn covers(&self, other: &Jurisdiction) -> bool {
        match self.level() {
            Level::National => true,
            Level::Province => self.0 / 10_000 == other.0 / 10_000,
            Level::City => self.0 / 100 == other.0 / 100,
            Level::County => self.0 == other.0,
        }
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl FromStr for Jurisdiction {
    type Err = JurisdictionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jurisdiction::parse(s)
    }
}

impl Serialize for Jurisdiction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct JurisdictionVisitor;

impl Visitor<'_> for JurisdictionVisitor {
    type Value = Jurisdiction;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a 6-digit administrative division code as a string, like \"370100\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Jurisdiction, E> {
        Jurisdiction::parse(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Jurisdiction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(JurisdictionVisitor)
    }
}

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal / $label:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The wire spelling (API.md), e.g. `"major_hazard"`.
            pub const fn as_str(&self) -> &'static str {
                match self { $( $name::$variant => $wire, )+ }
            }

            /// The term used in the measures, for traces a finance officer reads.
            pub const fn label(&self) -> &'static str {
                match self { $( $name::$variant => $label, )+ }
            }

            /// Parses the wire spelling.
            pub fn parse(text: &str) -> Option<$name> {
                match text { $( $wire => Some($name::$variant), )+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// What a verified report established (API.md `outcome.kind`).
    OutcomeKind {
        /// 重大事故隐患.
        MajorHazard = "major_hazard" / "重大事故隐患 major accident hazard",
        /// 违法生产经营建设.
        IllegalProduction = "illegal_production" / "违法生产经营建设 illegal production, business or construction",
        /// 安全生产（非法）违法行为.
        Violation = "violation" / "安全生产违法行为 violation",
        /// 瞒报/谎报事故.
        ConcealedAccident = "concealed_accident" / "瞒报谎报事故 concealed or falsely reported accident",
        /// 一般事故隐患.
        GeneralHazard = "general_hazard" / "一般事故隐患 general hazard",
    }
}

wire_enum! {
    /// The finally confirmed accident level (API.md `outcome.accident_level`). An input: it
    /// may be set by injuries or losses, so it is never derived from the death count.
    AccidentLevel {
        /// 一般事故.
        General = "general" / "一般事故 general accident",
        /// 较大事故.
        Larger = "larger" / "较大事故 larger accident",
        /// 重大事故.
        Major = "major" / "重大事故 major accident",
        /// 特别重大事故.
        EspeciallyMajor = "especially_major" / "特别重大事故 especially major accident",
    }
}

wire_enum! {
    /// The sectors of 应急〔2023〕106号 (五), as API.md spells them, plus `housing_construction`
    /// (for the housing and construction departments' own measures) and `other`.
    Industry {
        /// 煤矿.
        CoalMine = "coal_mine" / "煤矿 coal mine",
        /// 金属与非金属矿山（含尾矿库）.
        MetalNonmetalMine = "metal_nonmetal_mine" / "金属与非金属矿山 metal and non-metal mine",
        /// 化工（含石油化工）.
        Chemical = "chemical" / "化工 chemical",
        /// 医药.
        Pharmaceutical = "pharmaceutical" / "医药 pharmaceutical",
        /// 危险化学品.
        HazardousChemicals = "hazardous_chemicals" / "危险化学品 hazardous chemicals",
        /// 烟花爆竹.
        Fireworks = "fireworks" / "烟花爆竹 fireworks",
        /// 石油开采.
        OilExtraction = "oil_extraction" / "石油开采 oil extraction",
        /// 冶金.
        Metallurgy = "metallurgy" / "冶金 metallurgy",
        /// 有色.
        Nonferrous = "nonferrous" / "有色 non-ferrous metals",
        /// 建材.
        BuildingMaterials = "building_materials" / "建材 building materials",
        /// 机械.
        Machinery = "machinery" / "机械 machinery",
        /// 轻工.
        LightIndustry = "light_industry" / "轻工 light industry",
        /// 纺织.
        Textile = "textile" / "纺织 textile",
        /// 烟草.
        Tobacco = "tobacco" / "烟草 tobacco",
        /// 商贸.
        CommerceTrade = "commerce_trade" / "商贸 commerce and trade",
        /// 房屋建筑和市政工程.
        HousingConstruction = "housing_construction" / "住房城乡建设 housing and construction",
        /// Anything else.
        Other = "other" / "其他 other",
    }
}

/// How precisely the sources give a date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// `YYYY-MM-DD`.
    Day,
    /// `YYYY-MM`: only the month is known.
    Month,
    /// `YYYY`: only the year is known.
    Year,
}

/// A date as precise as the sources give it: a day, a month or a year.
///
/// A partial date stands for the whole period: as a start it means the first day of the
/// period, as an end the last day (see `policies/README.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyDate {
    first: Date,
    last: Date,
    precision: Precision,
}

/// Why a date string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a date like \"2018-01-04\", a month like \"2025-05\" or a year like \"2021\""
)]
pub struct DateError(pub String);

fn parse_num<T: FromStr>(text: &str, len: usize) -> Option<T> {
    if text.len() == len && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

impl PolicyDate {
    /// Parses `YYYY-MM-DD`, `YYYY-MM` or `YYYY`.
    pub fn parse(text: &str) -> Result<PolicyDate, DateError> {
        let err = || DateError(text.to_owned());
        let mut parts = text.split('-');
        let year: i32 = parts.next().and_then(|y| parse_num(y, 4)).ok_or_else(err)?;
        let month: Option<u8> = match parts.next() {
            None => None,
            Some(m) => Some(parse_num(m, 2).ok_or_else(err)?),
        };
        let day: Option<u8> = match parts.next() {
            None => None,
            Some(d) => Some(parse_num(d, 2).ok_or_else(err)?),
        };
        if parts.next().is_some() {
            return Err(err());
        }
        let date = |m: u8, d: u8| {
            Month::try_from(m)
                .ok()
                .and_then(|m| Date::from_calendar_date(year, m, d).ok())
                .ok_or_else(err)
        };
        match (month, day) {
            (Some(m), Some(d)) => {
                let day = date(m, d)?;
                Ok(PolicyDate {
                    first: day,
                    last: day,
                    precision: Precision::Day,
                })
            }
            (Some(m), None) => {
                let first = date(m, 1)?;
                let month = first.month();
                let last = date(m, month.length(year))?;
                Ok(PolicyDate {
                    first,
                    last,
                    precision: Precision::Month,
                })
            }
            _ => Ok(PolicyDate {
                first: date(1, 1)?,
                last: date(12, 31)?,
                precision: Precision::Year,
            }),
        }
    }

    /// The first day of the period.
    pub const fn first_day(&self) -> Date {
        self.first
    }

    /// The last day of the period.
    pub const fn last_day(&self) -> Date {
        self.last
    }

    /// How precise the sources are.
    pub const fn precision(&self) -> Precision {
        self.precision
    }
}

impl fmt::Display for PolicyDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = (
            self.first.year(),
            u8::from(self.first.month()),
            self.first.day(),
        );
        match self.precision {
            Precision::Day => write!(f, "{y:04}-{m:02}-{d:02}"),
            Precision::Month => write!(f, "{y:04}-{m:02}"),
            Precision::Year => write!(f, "{y:04}"),
        }
    }
}

impl Serialize for PolicyDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

struct PolicyDateVisitor;

impl Visitor<'_> for PolicyDateVisitor {
    type Value = PolicyDate;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a date string like \"2018-01-04\", \"2025-05\" or \"2021\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<PolicyDate, E> {
        PolicyDate::parse(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for PolicyDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(PolicyDateVisitor)
    }
}

/// Formats a calendar date as `YYYY-MM-DD`.
pub(crate) fn ymd(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Parses exactly `YYYY-MM-DD` (API.md dates).
pub(crate) fn parse_ymd(text: &str) -> Option<Date> {
    match PolicyDate::parse(text) {
        Ok(d) if d.precision == Precision::Day => Some(d.first),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Jurisdiction {
        Jurisdiction::parse(s).unwrap()
    }

    #[test]
    fn jurisdiction_scope_rule() {
        assert!(j("000000").covers(&j("440309")));
        assert!(j("370000").covers(&j("370102")));
        assert!(j("370000").covers(&j("370000")));
        assert!(!j("370000").covers(&j("380102")));
        assert!(j("350200").covers(&j("350203")));
        assert!(!j("350200").covers(&j("350100")));
        assert!(!j("350200").covers(&j("350000")));
        assert!(j("440309").covers(&j("440309")));
        assert!(!j("440309").covers(&j("440300")));
        assert_eq!(j("000000").level(), Level::National);
        assert_eq!(j("140000").level(), Level::Province);
        assert_eq!(j("140100").level(), Level::City);
        assert_eq!(j("140105").level(), Level::County);
        for bad in [
            "", "37010", "3701000", "37010a", "001234", " 37010", "-37010",
        ] {
            assert!(Jurisdiction::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(j("000000").to_string(), "000000");
        assert_eq!(j("010100").to_string(), "010100");
    }

    #[test]
    fn policy_dates() {
        let d = PolicyDate::parse("2018-01-04").unwrap();
        assert_eq!(ymd(d.first_day()), "2018-01-04");
        assert_eq!(d.first_day(), d.last_day());
        let m = PolicyDate::parse("2024-02").unwrap();
        assert_eq!(ymd(m.first_day()), "2024-02-01");
        assert_eq!(ymd(m.last_day()), "2024-02-29");
        assert_eq!(m.to_string(), "2024-02");
        let y = PolicyDate::parse("2021").unwrap();
        assert_eq!(ymd(y.first_day()), "2021-01-01");
        assert_eq!(ymd(y.last_day()), "2021-12-31");
        assert_eq!(y.to_string(), "2021");
        for bad in [
            "",
            "21",
            "2021-1",
            "2021-13",
            "2021-02-30",
            "2021-01-01-01",
            "2021/01",
        ] {
            assert!(PolicyDate::parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse_ymd("2021").is_none());
        assert!(parse_ymd("2026-11-01").is_some());
    }

    #[test]
    fn wire_names_round_trip() {
        for k in OutcomeKind::ALL {
            assert_eq!(OutcomeKind::parse(k.as_str()), Some(*k));
        }
        for k in Industry::ALL {
            assert_eq!(Industry::parse(k.as_str()), Some(*k));
        }
        assert_eq!(Industry::ALL.len(), 17);
        for k in AccidentLevel::ALL {
            assert_eq!(AccidentLevel::parse(k.as_str()), Some(*k));
        }
    }
}

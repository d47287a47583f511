//! Money and percentages as exact decimals, parsed only from strings.
//!
//! Rewards are public money that a finance officer checks by hand, so no value here ever
//! passes through binary floating point: amounts and rates are read from decimal strings,
//! held as [`Decimal`], and written back as strings with exactly two decimals.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount accepted anywhere, in yuan: 999,999,999,999.99.
///
/// Far above any administrative penalty or reward, and low enough that every product the
/// evaluator forms (an amount times a percentage of at most 100, or a per-death amount times a
/// death count that fits in `u32`) stays well inside `Decimal`'s 28 digits, so no arithmetic
/// in this crate can overflow.
pub const MAX_YUAN: Decimal = Decimal::from_parts(0x107A_3FFF, 0x5AF3, 0, false, 2);

/// A non-negative amount of yuan with at most two decimals (fen precision).
///
/// Parsed values come only through [`Money::parse`] (and the `Deserialize` impl, which
/// calls it), so a parsed `Money` is proof that the text was a plain decimal string: no
/// sign, no exponent, no separators, no more than two decimals, not above [`MAX_YUAN`].
/// Computed awards are never negative and always at the fen; only a per-death rule without
/// a cap could take one above [`MAX_YUAN`]. A `Money` always displays and serialises with
/// exactly two decimals (`"15000.00"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

/// Why a money or percentage string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not of the form `123`, `123.4` or `123.45`.
    #[error(
        "`{0}` is not a decimal amount in yuan like \"3000.00\" (digits, optionally a point and one or two decimals; no sign, spaces or separators)"
    )]
    NotDecimal(String),
    /// More than [`MAX_YUAN`].
    #[error("`{0}` exceeds the largest accepted amount 999999999999.99")]
    TooLarge(String),
    /// Not of the form `15` or `12.5`.
    #[error(
        "`{0}` is not a percentage like \"15\" or \"12.5\" (digits, optionally a point and up to four decimals; no sign or % sign)"
    )]
    NotPercent(String),
    /// Zero or above one hundred.
    #[error("percentage {0} is not above 0 and at most 100")]
    PercentOutOfRange(String),
}

/// Checks `text` is `digits[.digits]` with at most `max_decimals` decimals.
fn plain_decimal(text: &str, max_decimals: usize) -> bool {
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (text, None),
    };
    let int_ok = !int.is_empty() && int.len() <= 15 && int.bytes().all(|b| b.is_ascii_digit());
    let frac_ok = match frac {
        None => true,
        Some(f) => {
            !f.is_empty() && f.len() <= max_decimals && f.bytes().all(|b| b.is_ascii_digit())
        }
    };
    int_ok && frac_ok
}

impl Money {
    /// Zero yuan.
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));

    /// Parses a decimal string in yuan: `"3000"`, `"3000.5"` or `"3000.00"`.
    pub fn parse(text: &str) -> Result<Money, AmountError> {
        if !plain_decimal(text, 2) {
            return Err(AmountError::NotDecimal(text.to_owned()));
        }
        let value =
            Decimal::from_str(text).map_err(|_| AmountError::NotDecimal(text.to_owned()))?;
        if value > MAX_YUAN {
            return Err(AmountError::TooLarge(text.to_owned()));
        }
        Ok(Money::from_decimal_unchecked(value))
    }

    /// Wraps a decimal the caller has already proven non-negative, at most two decimals and
    /// not above [`MAX_YUAN`]; normalises the scale to two.
    pub(crate) fn from_decimal_unchecked(value: Decimal) -> Money {
        let mut value = value;
        value.rescale(2);
        Money(value)
    }

    /// Builds a `Money` from a decimal, refusing negatives, more than two decimals and
    /// amounts above [`MAX_YUAN`].
    pub fn from_decimal(value: Decimal) -> Result<Money, AmountError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(AmountError::NotDecimal(value.to_string()));
        }
        if value.normalize().scale() > 2 {
            return Err(AmountError::NotDecimal(value.to_string()));
        }
        if value > MAX_YUAN {
            return Err(AmountError::TooLarge(value.to_string()));
        }
        Ok(Money::from_decimal_unchecked(value.abs()))
    }

    /// The amount as a decimal with scale 2.
    pub const fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// True for `0.00`.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Scale is always 2 (see `from_decimal_unchecked`), so this prints "15000.00".
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Money {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(s)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Accepts only strings: a JSON or TOML number is refused, because a number may already
/// have been rounded through binary floating point by whoever wrote it.
struct MoneyVisitor;

impl Visitor<'_> for MoneyVisitor {
    type Value = Money;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount in yuan as a decimal string, like \"3000.00\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
        Money::parse(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(MoneyVisitor)
    }
}

/// A percentage above 0 and at most 100, e.g. `15` for 15 %.
///
/// Written as a decimal string (`"15"`, `"12.5"`) with at most four decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(Decimal);

impl Percent {
    /// Parses `"15"` or `"12.5"`; refuses 0, anything above 100 and any other form.
    pub fn parse(text: &str) -> Result<Percent, AmountError> {
        if !plain_decimal(text, 4) {
            return Err(AmountError::NotPercent(text.to_owned()));
        }
        let value =
            Decimal::from_str(text).map_err(|_| AmountError::NotPercent(text.to_owned()))?;
        if value.is_zero() || value > Decimal::ONE_HUNDRED {
            return Err(AmountError::PercentOutOfRange(text.to_owned()));
        }
        Ok(Percent(value.normalize()))
    }

    /// The percentage as written (15 for 15 %).
    pub const fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// `amount × self / 100`, exact.
    pub fn of(&self, amount: Decimal) -> Decimal {
        // Both factors are bounded (amount ≤ MAX_YUAN, self ≤ 100): no overflow.
        amount * self.0 / Decimal::ONE_HUNDRED
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

struct PercentVisitor;

impl Visitor<'_> for PercentVisitor {
    type Value = Percent;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a percentage as a decimal string, like \"15\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Percent, E> {
        Percent::parse(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(PercentVisitor)
    }
}

/// Formats an intermediate (unrounded) amount for a trace: at least two decimals, and every
/// further decimal that is not a trailing zero, so `15000.0000` reads `15000.00` and
/// `1851.8505` stays exact.
pub(crate) fn show(value: Decimal) -> String {
    let mut v = value.normalize();
    if v.scale() < 2 {
        v.rescale(2);
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_yuan_is_what_the_docs_say() {
        assert_eq!(MAX_YUAN.to_string(), "999999999999.99");
    }

    #[test]
    fn money_forms() {
        assert_eq!(Money::parse("3000").unwrap().to_string(), "3000.00");
        assert_eq!(Money::parse("3000.5").unwrap().to_string(), "3000.50");
        assert_eq!(Money::parse("0.01").unwrap().to_string(), "0.01");
        assert_eq!(Money::ZERO.to_string(), "0.00");
        for bad in [
            "", "-1", "+1", "1e3", "1,000", " 1", "1.", ".5", "1.005", "abc", "1_000", "NaN",
        ] {
            assert!(Money::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            Money::parse("1000000000000.00"),
            Err(AmountError::TooLarge(_))
        ));
        assert!(Money::parse("999999999999.99").is_ok());
    }

    #[test]
    fn percent_forms() {
        assert_eq!(Percent::parse("15").unwrap().to_string(), "15%");
        assert_eq!(Percent::parse("12.50").unwrap().to_string(), "12.5%");
        assert!(Percent::parse("100").is_ok());
        assert!(matches!(
            Percent::parse("100.01"),
            Err(AmountError::PercentOutOfRange(_))
        ));
        assert!(matches!(
            Percent::parse("0"),
            Err(AmountError::PercentOutOfRange(_))
        ));
        assert!(Percent::parse("15%").is_err());
        assert!(Percent::parse("-5").is_err());
    }

    #[test]
    fn show_keeps_exact_digits() {
        assert_eq!(show(Decimal::new(150_000_000, 4)), "15000.00");
        assert_eq!(show(Decimal::new(18_518_505, 4)), "1851.8505");
        assert_eq!(show(Decimal::new(3000, 0)), "3000.00");
    }
}

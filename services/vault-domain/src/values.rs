//! Value objects: parsed once at the edge, proof of validity after (STYLE.md, "Parse, don't
//! validate").
//!
//! Two families live here:
//!
//! * **Identity values** ([`ResidentId`], [`Phone`], [`BankAccount`], [`PersonName`],
//!   [`Email`], [`FreeText`]): the data the vault exists to protect. They have no `Clone`,
//!   `Display` or `Serialize`; their `Debug` prints `TypeName([redacted])`; `expose()` is the
//!   one exit and `normalized_for_mac()` names the one other legitimate use. Parsing
//!   normalises, so one real-world value has exactly one stored form, and that form is what
//!   blind indexes and leak-trace MACs are computed over: two spellings of the same phone
//!   number must never produce two index entries or a missed leak trace.
//! * **Public values** ([`Jurisdiction`], [`CaseRef`] and the small enums): ordinary types
//!   with `Display` and serde.
//!
//! Every refusal is a [`ValueError`] whose reason is a `&'static str`: by construction it
//! cannot carry the refused input into an error body or a log line.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use time::{Date, Month};

/// Why a value was refused.
///
/// The reason is static text; it never contains the input, because the input may be identity
/// data and error bodies and logs must not hold any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ValueError {
    /// Human-readable reason, safe to show to the caller and to log.
    pub reason: &'static str,
}

impl ValueError {
    const fn new(reason: &'static str) -> Self {
        Self { reason }
    }
}

// ---------------------------------------------------------------------------------------------
// Secret storage
// ---------------------------------------------------------------------------------------------

/// Owned identity text, overwritten with zeros when dropped.
///
/// Best effort only: `unsafe` is forbidden in this workspace, so the wipe relies on
/// [`std::hint::black_box`] to keep the writes from being optimised away, and it cannot reach
/// copies the caller made (the request buffer, a `String` returned by
/// [`normalize_for_trace`]). Parsers build their output directly in a `Secret` sized up front
/// so that a refused value, too, is wiped and no reallocation leaves a stale copy behind.
#[derive(PartialEq, Eq)]
struct Secret(String);

impl Secret {
    fn with_capacity(capacity: usize) -> Self {
        Self(String::with_capacity(capacity))
    }

    fn as_str(&self) -> &str {
        &self.0
    }

    fn push(&mut self, c: char) {
        self.0.push(c);
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        let capacity = bytes.capacity();
        bytes.clear();
        // Zero the whole allocation, spare capacity included.
        bytes.resize(capacity, 0);
        std::hint::black_box(&mut bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// Character helpers
// ---------------------------------------------------------------------------------------------

/// Folds full-width ASCII (U+FF01..U+FF5E) and the ideographic space to their ASCII forms.
///
/// Chinese input methods type full-width digits as readily as ASCII ones, and a leaked number
/// pasted from a document is as likely to be `１３８００１３８０００` as `13800138000`. Used only
/// for the numeric identity values, whose normal form is ASCII.
fn fold_width(c: char) -> char {
    match c {
        '\u{3000}' => ' ',
        '\u{FF01}'..='\u{FF5E}' => u32::from(c)
            .checked_sub(0xFEE0)
            .and_then(char::from_u32)
            .unwrap_or(c),
        _ => c,
    }
}

/// Invisible characters (Unicode category Cf and friends) that are not `char::is_control`.
///
/// Refused in names and free text: bidirectional overrides can make a stored name display as
/// another one, and zero-width characters make two identical-looking values index differently.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Dash characters accepted as digit-group separators in phone and account numbers.
fn is_dash(c: char) -> bool {
    matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}')
}

/// Middle-dot look-alikes used between the parts of transliterated names (买买提·艾力).
///
/// All are stored as U+00B7 MIDDLE DOT, the form the public-security registry uses, so the
/// same name typed with a bullet or a katakana middle dot gets the same blind index.
/// (U+0387 is canonically equivalent to U+00B7; the others are what input methods produce.)
fn normalise_middle_dot(c: char) -> char {
    match c {
        '\u{0387}' | '\u{2022}' | '\u{2027}' | '\u{2219}' | '\u{22C5}' | '\u{30FB}'
        | '\u{FF65}' => '\u{00B7}',
        _ => c,
    }
}

/// Trims, refuses control and invisible characters, collapses every interior run of
/// whitespace to one U+0020 and applies `map` to every other character.
///
/// Length is counted in Unicode scalar values of the result, so `max` means characters, not
/// bytes (a Chinese character is three bytes and one character).
fn parse_text(
    raw: &str,
    max: usize,
    map: fn(char) -> char,
    too_long: &'static str,
) -> Result<Secret, ValueError> {
    let trimmed = raw.trim();
    let mut out = Secret::with_capacity(trimmed.len());
    let mut count: usize = 0;
    let mut pending_space = false;
    for c in trimmed.chars() {
        if c.is_control() || is_invisible(c) {
            return Err(ValueError::new(
                "must not contain control or invisible formatting characters",
            ));
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space {
            out.push(' ');
            count = count.saturating_add(1);
            pending_space = false;
        }
        out.push(map(c));
        count = count.saturating_add(1);
        if count > max {
            return Err(ValueError::new(too_long));
        }
    }
    if count == 0 {
        return Err(ValueError::new("must not be empty"));
    }
    Ok(out)
}

/// Writes `TypeName([redacted])`: the type is useful in a log, the value never is.
macro_rules! redacted_debug {
    ($ty:ident) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($ty), "([redacted])"))
            }
        }
    };
}

/// The two exits of an identity value.
macro_rules! identity_exits {
    ($field:ident) => {
        /// The normalised value. This is the one exit: every call site should say, beside
        /// it, why the identity leaves the type there (sealing, an approved disclosure, …).
        pub fn expose(&self) -> &str {
            self.$field.as_str()
        }

        /// The normal form over which blind indexes and leak-trace MACs are computed; the same
        /// text as [`Self::expose`], named for its use so that a MAC call site does not read
        /// as a disclosure.
        pub fn normalized_for_mac(&self) -> &str {
            self.$field.as_str()
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Provinces (GB/T 2260)
// ---------------------------------------------------------------------------------------------

/// Province-level division codes of GB/T 2260: the 31 mainland provinces, autonomous regions
/// and municipalities, plus Taiwan (71), Hong Kong (81) and Macao (82).
const PROVINCE_CODES: [u32; 34] = [
    11, 12, 13, 14, 15, // 北京 天津 河北 山西 内蒙古
    21, 22, 23, // 辽宁 吉林 黑龙江
    31, 32, 33, 34, 35, 36, 37, // 上海 江苏 浙江 安徽 福建 江西 山东
    41, 42, 43, 44, 45, 46, // 河南 湖北 湖南 广东 广西 海南
    50, 51, 52, 53, 54, // 重庆 四川 贵州 云南 西藏
    61, 62, 63, 64, 65, // 陕西 甘肃 青海 宁夏 新疆
    71, 81, 82, // 台湾 香港 澳门
];

fn is_province_code(two_digits: u32) -> bool {
    PROVINCE_CODES.contains(&two_digits)
}

/// Value of a run of ASCII digits; `None` if any byte is not a digit or the value overflows.
fn ascii_number(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, &b| {
        let digit = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(digit)
    })
}

// ---------------------------------------------------------------------------------------------
// ResidentId
// ---------------------------------------------------------------------------------------------

/// GB 11643-1999 weights of the first 17 characters.
const GB11643_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// GB 11643-1999 check character, indexed by the weighted sum mod 11.
const GB11643_CHECK: [u8; 11] = *b"10X98765432";

/// An 18-character resident identity number (居民身份证号码, GB 11643-1999).
///
/// Holds: 17 ASCII digits and a check character (digit or `X`) that matches; the first two
/// digits are a GB/T 2260 province code; digits 7–14 are a real calendar date no earlier than
/// 1900-01-01. Whether that date lies in the future is the caller's question, asked with the
/// injected clock via [`ResidentId::birth_date`].
///
/// Accepted spellings: surrounding and interior whitespace (the 6-8-4 grouping people write),
/// full-width digits, lower-case `x`. Normal form: the 18 characters, upper-case `X`.
#[derive(PartialEq, Eq)]
pub struct ResidentId {
    value: Secret,
    birth_date: Date,
}

redacted_debug!(ResidentId);

impl ResidentId {
    /// Parses and normalises a resident identity number.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        const LEN: usize = 18;
        let mut value = Secret::with_capacity(LEN);
        let mut count: usize = 0;
        for c in raw.chars().map(fold_width) {
            if c.is_whitespace() {
                continue;
            }
            count = count.saturating_add(1);
            if count > LEN {
                return Err(ValueError::new("must be 18 characters"));
            }
            value.push(if c == 'x' { 'X' } else { c });
        }
        if count != LEN {
            return Err(ValueError::new("must be 18 characters"));
        }

        let bytes = value.as_str().as_bytes();
        let (body, check) = match bytes.split_last() {
            Some((check, body)) if body.len() == LEN - 1 => (body, *check),
            // 18 characters that are not 18 bytes: something non-ASCII is in there.
            _ => {
                return Err(ValueError::new(
                    "must be 17 digits followed by a digit or X",
                ));
            }
        };
        if !body.iter().all(u8::is_ascii_digit) || !(check.is_ascii_digit() || check == b'X') {
            return Err(ValueError::new(
                "must be 17 digits followed by a digit or X",
            ));
        }

        let province = body.get(0..2).and_then(ascii_number);
        if !province.is_some_and(is_province_code) {
            return Err(ValueError::new(
                "area code does not start with a valid province code (GB/T 2260)",
            ));
        }

        let birth_date = birth_date(body).ok_or(ValueError::new("not a valid date of birth"))?;

        let sum = body
            .iter()
            .zip(GB11643_WEIGHTS)
            .map(|(&d, w)| u32::from(d - b'0') * w)
            .sum::<u32>();
        let expected = usize::try_from(sum % 11)
            .ok()
            .and_then(|i| GB11643_CHECK.get(i));
        if expected != Some(&check) {
            return Err(ValueError::new("check character does not match (GB 11643)"));
        }

        Ok(Self { value, birth_date })
    }

    /// The date of birth encoded in digits 7–14 (a real date, year ≥ 1900; not checked
    /// against today: compare with the injected clock).
    pub fn birth_date(&self) -> Date {
        self.birth_date
    }

    identity_exits!(value);
}

/// The date in positions 7–14 of an ID body of ASCII digits, if it is a real date ≥ 1900.
fn birth_date(body: &[u8]) -> Option<Date> {
    let year = body.get(6..10).and_then(ascii_number)?;
    let month = body.get(10..12).and_then(ascii_number)?;
    let day = body.get(12..14).and_then(ascii_number)?;
    if year < 1900 {
        return None;
    }
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()
}

// ---------------------------------------------------------------------------------------------
// Phone
// ---------------------------------------------------------------------------------------------

/// A mainland China phone number: an 11-digit mobile number (`1[3-9]` + 9 digits) or a
/// landline with its area code.
///
/// Accepted spellings: an optional country code `+86`, `0086` or `86`; spaces, hyphens and
/// parentheses anywhere as separators (`138-0013-8000`, `(010) 1234 5678`, `0351-1234567`);
/// full-width digits. After a country code a landline may omit its trunk `0`
/// (`+86 10 12345678`). Refused: other country codes, landlines without area code, extensions.
///
/// Landline shape: `0` + area code + 7–8 digit subscriber number, where the area code
/// (with its `0`) is `010` or `02X` (three digits) or `0[3-9]XX` (four digits).
///
/// Normal form: national digits only, trunk `0` included (`13800138000`, `01012345678`).
#[derive(PartialEq, Eq)]
pub struct Phone {
    value: Secret,
}

redacted_debug!(Phone);

impl Phone {
    /// Parses and normalises a phone number.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        // Longest accepted input: "0086" + 12-digit landline. Anything longer is refused
        // before more is copied.
        const MAX_DIGITS: usize = 16;
        let mut digits = Secret::with_capacity(MAX_DIGITS);
        let mut plus = false;
        let mut count: usize = 0;
        for c in raw.trim().chars().map(fold_width) {
            if c.is_whitespace() || is_dash(c) || c == '(' || c == ')' {
                continue;
            }
            if c == '+' && count == 0 && !plus {
                plus = true;
                continue;
            }
            if !c.is_ascii_digit() {
                return Err(ValueError::new(
                    "may contain only digits, spaces, hyphens, parentheses and a leading +",
                ));
            }
            count = count.saturating_add(1);
            if count > MAX_DIGITS {
                return Err(ValueError::new(
                    "must be a mainland mobile number or a landline with area code",
                ));
            }
            digits.push(c);
        }

        let all = digits.as_str();
        let (national, international) = if plus {
            match all.strip_prefix("86") {
                Some(rest) => (rest, true),
                None => {
                    return Err(ValueError::new(
                        "only mainland China numbers (+86) are accepted",
                    ));
                }
            }
        } else if let Some(rest) = all.strip_prefix("0086") {
            (rest, true)
        } else if let Some(rest) = all.strip_prefix("86") {
            // No domestic number starts with 8, so a bare 86 can only be the country code.
            (rest, true)
        } else {
            (all, false)
        };

        let bytes = national.as_bytes();
        let mut value = Secret::with_capacity(12);
        match bytes.first() {
            Some(b'1') if !international || matches!(bytes.get(1), Some(b'3'..=b'9')) => {
                check_mobile(bytes)?;
                national.chars().for_each(|c| value.push(c));
            }
            Some(b'0') => {
                check_landline(bytes)?;
                national.chars().for_each(|c| value.push(c));
            }
            Some(_) if international => {
                // International form drops the trunk 0 of a landline: put it back.
                value.push('0');
                national.chars().for_each(|c| value.push(c));
                check_landline(value.as_str().as_bytes())?;
            }
            _ => {
                return Err(ValueError::new(
                    "must be a mainland mobile number or a landline with area code",
                ));
            }
        }
        Ok(Self { value })
    }

    /// Whether this is a mobile (rather than landline) number: only a mobile receives SMS.
    pub fn is_mobile(&self) -> bool {
        self.value.as_str().starts_with('1')
    }

    identity_exits!(value);
}

fn check_mobile(digits: &[u8]) -> Result<(), ValueError> {
    let well_formed = digits.len() == 11
        && digits.first() == Some(&b'1')
        && matches!(digits.get(1), Some(b'3'..=b'9'));
    if well_formed {
        Ok(())
    } else {
        Err(ValueError::new(
            "mobile number must be 11 digits starting with 13 to 19",
        ))
    }
}

fn check_landline(digits: &[u8]) -> Result<(), ValueError> {
    let area_len = match (digits.first(), digits.get(1), digits.get(2)) {
        (Some(b'0'), Some(b'1'), Some(b'0')) | (Some(b'0'), Some(b'2'), Some(_)) => 3,
        (Some(b'0'), Some(b'3'..=b'9'), Some(_)) => 4,
        _ => return Err(ValueError::new("landline area code is not valid")),
    };
    let subscriber = digits.len().saturating_sub(area_len);
    if (7..=8).contains(&subscriber) {
        Ok(())
    } else {
        Err(ValueError::new(
            "landline must be an area code followed by a 7 or 8 digit number",
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// BankAccount
// ---------------------------------------------------------------------------------------------

/// A bank card or account number: 12–19 digits that pass the Luhn check (UnionPay cards).
///
/// Accepted spellings: spaces and hyphens between digit groups, full-width digits.
/// Normal form: the digits.
#[derive(PartialEq, Eq)]
pub struct BankAccount {
    value: Secret,
}

redacted_debug!(BankAccount);

impl BankAccount {
    /// Parses and normalises a bank account number.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        const MIN: usize = 12;
        const MAX: usize = 19;
        let mut value = Secret::with_capacity(MAX);
        let mut count: usize = 0;
        for c in raw.chars().map(fold_width) {
            if c.is_whitespace() || is_dash(c) {
                continue;
            }
            if !c.is_ascii_digit() {
                return Err(ValueError::new("may contain only digits and spaces"));
            }
            count = count.saturating_add(1);
            if count > MAX {
                return Err(ValueError::new("must be 12 to 19 digits"));
            }
            value.push(c);
        }
        if count < MIN {
            return Err(ValueError::new("must be 12 to 19 digits"));
        }
        if !luhn_valid(value.as_str().as_bytes()) {
            return Err(ValueError::new("fails the Luhn check"));
        }
        Ok(Self { value })
    }

    identity_exits!(value);
}

/// Luhn (ISO/IEC 7812-1) over ASCII digits: from the right, every second digit doubled.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &b)| {
            let d = u32::from(b.wrapping_sub(b'0'));
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum::<u32>();
    sum % 10 == 0
}

// ---------------------------------------------------------------------------------------------
// PersonName
// ---------------------------------------------------------------------------------------------

/// A person's name: 1–64 characters (Unicode scalar values, not bytes).
///
/// Normalisation: surrounding whitespace trimmed; every interior run of whitespace (including
/// the ideographic space U+3000) becomes one space; middle-dot look-alikes become U+00B7
/// (`买买提•艾力` → `买买提·艾力`). Control and invisible formatting characters are refused.
///
/// Not done, for want of the Unicode tables (std only): canonical (NFC) normalisation and case
/// folding. A decomposed accent or a CJK compatibility ideograph therefore indexes differently
/// from its composed form.
#[derive(PartialEq, Eq)]
pub struct PersonName {
    value: Secret,
}

redacted_debug!(PersonName);

impl PersonName {
    /// Maximum length in characters.
    pub const MAX_CHARS: usize = 64;

    /// Parses and normalises a name.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let value = parse_text(
            raw,
            Self::MAX_CHARS,
            normalise_middle_dot,
            "must be at most 64 characters",
        )?;
        Ok(Self { value })
    }

    identity_exits!(value);
}

// ---------------------------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------------------------

/// An e-mail address: `local@domain`.
///
/// Holds: exactly one `@`; a local part of 1–64 bytes; a domain of dot-separated non-empty
/// labels with at least one dot; at most 254 bytes in all (RFC 5321 limits are in octets);
/// no whitespace, control or invisible characters.
///
/// Normalisation: trimmed; the domain lower-cased (domains are case-insensitive); the local
/// part kept as given, because RFC 5321 lets the receiving host treat it case-sensitively.
#[derive(PartialEq, Eq)]
pub struct Email {
    value: Secret,
}

redacted_debug!(Email);

impl Email {
    /// Parses and normalises an e-mail address.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        const MAX_LEN: usize = 254;
        const MAX_LOCAL: usize = 64;
        let trimmed = raw.trim();
        if trimmed
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible(c))
        {
            return Err(ValueError::new(
                "must not contain whitespace, control or invisible characters",
            ));
        }
        let Some((local, domain)) = trimmed.split_once('@') else {
            return Err(ValueError::new("must contain one @"));
        };
        if domain.contains('@') {
            return Err(ValueError::new("must contain one @"));
        }
        if local.is_empty() {
            return Err(ValueError::new("local part must not be empty"));
        }
        if local.len() > MAX_LOCAL {
            return Err(ValueError::new("local part must be at most 64 bytes"));
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return Err(ValueError::new(
                "domain must be dot-separated labels, such as example.cn",
            ));
        }
        // Checked before lower-casing so the work is bounded, and again after, since
        // lower-casing can lengthen a non-ASCII domain.
        if trimmed.len() > MAX_LEN {
            return Err(ValueError::new("must be at most 254 bytes"));
        }
        let mut value = Secret::with_capacity(trimmed.len().saturating_mul(2));
        local.chars().for_each(|c| value.push(c));
        value.push('@');
        domain
            .chars()
            .flat_map(char::to_lowercase)
            .for_each(|c| value.push(c));
        if value.as_str().len() > MAX_LEN {
            return Err(ValueError::new("must be at most 254 bytes"));
        }
        Ok(Self { value })
    }

    identity_exits!(value);
}

// ---------------------------------------------------------------------------------------------
// FreeText
// ---------------------------------------------------------------------------------------------

/// Free identity text (an address, a bank's name, an employer): 1..=`MAX` characters.
///
/// Normalisation as for [`PersonName`] except middle dots: trimmed, interior whitespace runs
/// collapsed to one space (so a leaked address with different spacing still traces), control
/// and invisible characters refused. Length counts characters, not bytes.
#[derive(PartialEq, Eq)]
pub struct FreeText<const MAX: usize> {
    value: Secret,
}

/// A postal address, up to 200 characters.
pub type Address = FreeText<200>;
/// The name of the payee's bank, up to 100 characters.
pub type BankName = FreeText<100>;
/// The reporter's employer, up to 200 characters.
pub type Employer = FreeText<200>;

impl<const MAX: usize> fmt::Debug for FreeText<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FreeText<{MAX}>([redacted])")
    }
}

impl<const MAX: usize> FreeText<MAX> {
    /// Parses and normalises free text.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let value = parse_text(raw, MAX, std::convert::identity, "is too long")?;
        Ok(Self { value })
    }

    identity_exits!(value);
}

// ---------------------------------------------------------------------------------------------
// Small public enums
// ---------------------------------------------------------------------------------------------

/// A public enum with a snake_case wire form, `as_str`, `parse`, `FromStr`, `Display` and
/// `ALL`, ordered by declaration (so it can key a `BTreeMap`). The serde name of each variant
/// is the same literal as `as_str`, so the two cannot drift apart.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
        invalid = $invalid:literal;
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [Self; [$($text),+].len()] = [$(Self::$variant),+];

            /// The wire form (snake_case).
            pub const fn as_str(&self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }

            /// The variant whose wire form is exactly `s`.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $( $text => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        impl FromStr for $name {
            type Err = ValueError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s).ok_or(ValueError::new($invalid))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// A field of a reporter's identity record, as named in the API and in access-trail
    /// events (`field` of a `422`, `fields` of a disclosure, leak traces).
    pub enum IdentityField {
        /// `name`: [`PersonName`].
        Name = "name",
        /// `id_number`: [`ResidentId`].
        IdNumber = "id_number",
        /// `phone`: [`Phone`].
        Phone = "phone",
        /// `email`: [`Email`].
        Email = "email",
        /// `address`: [`Address`].
        Address = "address",
        /// `bank_account`: [`BankAccount`].
        BankAccount = "bank_account",
        /// `bank_name`: [`BankName`].
        BankName = "bank_name",
        /// `employer`: [`Employer`].
        Employer = "employer",
    }
    invalid = "not a known identity field";
}

string_enum! {
    /// How a report reached the department.
    pub enum Channel {
        /// Web form.
        Web = "web",
        /// WeChat.
        Wechat = "wechat",
        /// Telephone hotline (12350).
        Phone = "phone",
        /// Letter.
        Letter = "letter",
        /// In-person visit.
        Visit = "visit",
        /// E-mail.
        Email = "email",
    }
    invalid = "not a known channel";
}

string_enum! {
    /// A principal's role (API.md, "Roles").
    pub enum Role {
        /// Operators: principals, keys, policies; never identities.
        Admin = "admin",
        /// A department's case-management system.
        CaseSystem = "case_system",
        /// Confidentiality officer: approves disclosures and erasures.
        Custodian = "custodian",
        /// Finance office: rewards and payments.
        Finance = "finance",
        /// Discipline inspection / audit: access trail, leak traces, statistics.
        Auditor = "auditor",
    }
    invalid = "not a known role";
}

string_enum! {
    /// Why an identity is disclosed.
    pub enum Purpose {
        /// Contacting the reporter to verify the report.
        VerificationContact = "verification_contact",
        /// Paying a reward.
        RewardPayment = "reward_payment",
        /// Transfer to judicial organs.
        JudicialTransfer = "judicial_transfer",
        /// Investigating a suspected false accusation (诬告陷害).
        FalseAccusation = "false_accusation",
    }
    invalid = "not a known disclosure purpose";
}

string_enum! {
    /// What a message relayed to a reporter is about.
    pub enum MessageKind {
        /// The report was accepted (受理).
        Acceptance = "acceptance",
        /// The department asks for more material.
        SupplementRequest = "supplement_request",
        /// Progress of the handling.
        Progress = "progress",
        /// Result of the handling.
        Result = "result",
        /// A reward was granted.
        RewardNotice = "reward_notice",
    }
    invalid = "not a known message kind";
}

// ---------------------------------------------------------------------------------------------
// Leak tracing
// ---------------------------------------------------------------------------------------------

/// Normalises `raw` exactly as `field` is normalised when stored, for leak tracing: an
/// auditor pastes a leaked value in whatever formatting it was found, and it must MAC to the
/// same bytes as the disclosed value did.
///
/// The returned `String` is identity data the caller owns: it is not wiped on drop.
pub fn normalize_for_trace(field: IdentityField, raw: &str) -> Result<String, ValueError> {
    let normal = match field {
        IdentityField::Name => PersonName::parse(raw)?.normalized_for_mac().to_owned(),
        IdentityField::IdNumber => ResidentId::parse(raw)?.normalized_for_mac().to_owned(),
        IdentityField::Phone => Phone::parse(raw)?.normalized_for_mac().to_owned(),
        IdentityField::Email => Email::parse(raw)?.normalized_for_mac().to_owned(),
        IdentityField::Address => Address::parse(raw)?.normalized_for_mac().to_owned(),
        IdentityField::BankAccount => BankAccount::parse(raw)?.normalized_for_mac().to_owned(),
        IdentityField::BankName => BankName::parse(raw)?.normalized_for_mac().to_owned(),
        IdentityField::Employer => Employer::parse(raw)?.normalized_for_mac().to_owned(),
    };
    Ok(normal)
}

// ---------------------------------------------------------------------------------------------
// Jurisdiction
// ---------------------------------------------------------------------------------------------

/// Depth of a [`Jurisdiction`] in the GB/T 2260 hierarchy.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum JurisdictionLevel {
    /// `000000`.
    National,
    /// `PP0000`.
    Province,
    /// `PPCC00` (prefecture-level city, or a province's group of directly administered units).
    City,
    /// `PPCCXX` (county, district, county-level city).
    County,
}

/// A GB/T 2260 administrative division code: the scope of a principal or a record.
///
/// Holds: `000000` (national), or a valid province code followed by a city part and a county
/// part where a zero city part implies a zero county part (`PP00XX` is not a shape that
/// exists). Not secret: `Display` and serde use the 6-digit string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jurisdiction(u32);

impl Jurisdiction {
    /// `000000`: the whole country; covers every code.
    pub const NATIONAL: Jurisdiction = Jurisdiction(0);

    /// Parses exactly six ASCII digits (no surrounding whitespace: this is a code, not
    /// something typed by a reporter).
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let bytes = s.as_bytes();
        let code = if bytes.len() == 6 {
            ascii_number(bytes)
        } else {
            None
        }
        .ok_or(ValueError::new(
            "jurisdiction must be exactly 6 digits (GB/T 2260)",
        ))?;
        if code == 0 {
            return Ok(Self::NATIONAL);
        }
        if !is_province_code(code / 10_000) {
            return Err(ValueError::new(
                "jurisdiction does not start with a valid province code (GB/T 2260)",
            ));
        }
        if (code / 100) % 100 == 0 && code % 100 != 0 {
            return Err(ValueError::new(
                "jurisdiction with city part 00 must be a province code (PP0000)",
            ));
        }
        Ok(Self(code))
    }

    /// The 6-digit code, zero-padded.
    pub fn as_str(&self) -> String {
        self.to_string()
    }

    /// The code as an integer (`140105`; `0` for national), e.g. for an integer column.
    pub const fn as_u32(&self) -> u32 {
        self.0
    }

    /// National, province, city or county.
    pub const fn level(&self) -> JurisdictionLevel {
        if self.0 == 0 {
            JurisdictionLevel::National
        } else if self.0.is_multiple_of(10_000) {
            JurisdictionLevel::Province
        } else if self.0.is_multiple_of(100) {
            JurisdictionLevel::City
        } else {
            JurisdictionLevel::County
        }
    }

    /// The scope rule of API.md: `000000` covers all; `PP0000` covers every `PPxxxx`;
    /// `PPCC00` covers every `PPCCxx`; a county code covers itself only.
    pub const fn covers(&self, other: &Jurisdiction) -> bool {
        match self.level() {
            JurisdictionLevel::National => true,
            JurisdictionLevel::Province => self.0 / 10_000 == other.0 / 10_000,
            JurisdictionLevel::City => self.0 / 100 == other.0 / 100,
            JurisdictionLevel::County => self.0 == other.0,
        }
    }

    /// The province containing this code (itself for a province); `None` for national.
    pub const fn province(&self) -> Option<Jurisdiction> {
        match self.level() {
            JurisdictionLevel::National => None,
            _ => Some(Jurisdiction(self.0 / 10_000 * 10_000)),
        }
    }

    /// The city containing this code (itself for a city); `None` for national and provinces.
    pub const fn city(&self) -> Option<Jurisdiction> {
        match self.level() {
            JurisdictionLevel::National | JurisdictionLevel::Province => None,
            _ => Some(Jurisdiction(self.0 / 100 * 100)),
        }
    }

    /// This code and every code that covers it, most specific first, ending in
    /// [`Jurisdiction::NATIONAL`]: the order in which to look for an applicable policy.
    pub fn ancestors_and_self(&self) -> Vec<Jurisdiction> {
        let mut chain = Vec::with_capacity(4);
        chain.push(*self);
        if let Some(city) = self.city().filter(|c| c != self) {
            chain.push(city);
        }
        if let Some(province) = self.province().filter(|p| p != self) {
            chain.push(province);
        }
        if *self != Self::NATIONAL {
            chain.push(Self::NATIONAL);
        }
        chain
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}

impl FromStr for Jurisdiction {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Jurisdiction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Jurisdiction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseVisitor::<Self>::new(
            "a 6-digit GB/T 2260 jurisdiction code",
        ))
    }
}

/// Deserialises a string through `FromStr<Err = ValueError>`, so the wire and `parse` refuse
/// the same values with the same reason.
struct ParseVisitor<T> {
    expecting: &'static str,
    target: PhantomData<fn() -> T>,
}

impl<T> ParseVisitor<T> {
    const fn new(expecting: &'static str) -> Self {
        Self {
            expecting,
            target: PhantomData,
        }
    }
}

impl<T: FromStr<Err = ValueError>> serde::de::Visitor<'_> for ParseVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(|e: ValueError| E::custom(e.reason))
    }
}

// ---------------------------------------------------------------------------------------------
// CaseRef
// ---------------------------------------------------------------------------------------------

/// The case system's own reference for a case (`SX-2026-000123`). Not identity data.
///
/// Holds: 1–64 characters after trimming surrounding whitespace; no control or invisible
/// characters (a case reference is compared for equality and shown to officers, so it must
/// look like what it is). Interior spaces are kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseRef(String);

impl CaseRef {
    /// Maximum length in characters.
    pub const MAX_CHARS: usize = 64;

    /// Parses a case reference.
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(ValueError::new("case_ref must not be empty"));
        }
        if trimmed.chars().any(|c| c.is_control() || is_invisible(c)) {
            return Err(ValueError::new(
                "case_ref must not contain control or invisible characters",
            ));
        }
        if trimmed.chars().nth(Self::MAX_CHARS).is_some() {
            return Err(ValueError::new("case_ref must be at most 64 characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The reference as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CaseRef {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for CaseRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for CaseRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseVisitor::<Self>::new(
            "a case reference of 1 to 64 characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    // -----------------------------------------------------------------------------------------
    // Independent reference implementations (deliberately written differently from the code
    // under test, so a shared mistake is unlikely).
    // -----------------------------------------------------------------------------------------

    /// ISO 7064 MOD 11-2 as GB 11643 states it: weight of position i (1-based from the left
    /// of 18) is 2^(18-i) mod 11; check = (12 - sum mod 11) mod 11, 10 written X.
    fn reference_check(body: &str) -> char {
        assert_eq!(body.len(), 17);
        let mut sum = 0u64;
        for (i, c) in body.chars().enumerate() {
            let weight = (1u64 << (17 - i)) % 11;
            sum += weight * u64::from(c.to_digit(10).unwrap());
        }
        match (12 - sum % 11) % 11 {
            10 => 'X',
            n => char::from_digit(n as u32, 10).unwrap(),
        }
    }

    fn with_check(body: &str) -> String {
        format!("{body}{}", reference_check(body))
    }

    /// Luhn written as "sum of digits of 2·d for every second digit from the right".
    fn reference_luhn_complete(body: &str) -> String {
        for c in '0'..='9' {
            let candidate = format!("{body}{c}");
            let total: u32 = candidate
                .chars()
                .rev()
                .enumerate()
                .map(|(i, ch)| {
                    let d = ch.to_digit(10).unwrap();
                    if i % 2 == 1 {
                        (2 * d) / 10 + (2 * d) % 10
                    } else {
                        d
                    }
                })
                .sum();
            if total.is_multiple_of(10) {
                return candidate;
            }
        }
        unreachable!()
    }

    fn reason<T>(r: Result<T, ValueError>) -> &'static str {
        match r {
            Ok(_) => panic!("expected a refusal"),
            Err(e) => e.reason,
        }
    }

    // -----------------------------------------------------------------------------------------
    // ResidentId
    // -----------------------------------------------------------------------------------------

    /// Computed with the reference algorithm and cross-checked by hand/with an external script.
    const VALID_IDS: [&str; 8] = [
        "11010519491231002X", // the widely published GB 11643 example
        "34052419800101001X",
        "140105200002291230", // 2000-02-29: 2000 is a leap year
        "330102199003071230",
        "650102200012314564",
        "110101190001010006", // earliest accepted date
        "81000019991231999X", // Hong Kong province code
        "510107198508152344",
    ];

    #[test]
    fn published_example_is_valid() {
        let id = ResidentId::parse("11010519491231002X").unwrap();
        assert_eq!(id.expose(), "11010519491231002X");
        assert_eq!(id.normalized_for_mac(), "11010519491231002X");
        assert_eq!(id.birth_date(), date!(1949 - 12 - 31));
        // The reference implementation agrees with the published value.
        assert_eq!(reference_check("11010519491231002"), 'X');
    }

    #[test]
    fn computed_examples_are_valid_and_agree_with_reference() {
        for id in VALID_IDS {
            assert_eq!(reference_check(&id[..17]).to_string(), &id[17..], "{id}");
            let parsed = ResidentId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(parsed.expose(), id);
        }
        assert_eq!(
            ResidentId::parse("140105200002291230")
                .unwrap()
                .birth_date(),
            date!(2000 - 02 - 29)
        );
    }

    #[test]
    fn fail_the_lead_guess_with_wrong_check_char() {
        // 11010519491231002 has check X, so ...0029 is not a valid number.
        assert_eq!(
            reason(ResidentId::parse("110105194912310029")),
            "check character does not match (GB 11643)"
        );
    }

    #[test]
    fn fail_birth_year_before_1900_even_with_valid_check() {
        // Check character is right (computed), but 1880 is before the accepted range.
        assert_eq!(reference_check("44052418800101001"), '4');
        assert_eq!(
            reason(ResidentId::parse("440524188001010014")),
            "not a valid date of birth"
        );
    }

    #[test]
    fn accepted_spellings_normalise() {
        let cases = [
            (" 11010519491231002x\n", "11010519491231002X"),
            ("\t11010519491231002X ", "11010519491231002X"),
            ("110105 19491231 002X", "11010519491231002X"),
            ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002X"),
            ("１１０１０５１９４９１２３１００２ｘ", "11010519491231002X"),
            ("110105\u{3000}19491231\u{3000}002x", "11010519491231002X"),
        ];
        for (raw, normal) in cases {
            let id = ResidentId::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(id.expose(), normal);
            assert_eq!(id, ResidentId::parse(normal).unwrap());
        }
    }

    #[test]
    fn fail_every_wrong_check_char() {
        for id in VALID_IDS {
            let body = &id[..17];
            let right = &id[17..];
            for c in "0123456789X".chars() {
                let candidate = format!("{body}{c}");
                if c.to_string() == right {
                    assert!(ResidentId::parse(&candidate).is_ok());
                } else {
                    assert_eq!(
                        reason(ResidentId::parse(&candidate)),
                        "check character does not match (GB 11643)",
                        "{candidate}"
                    );
                }
            }
        }
    }

    #[test]
    fn fail_every_single_character_corruption() {
        let replacements = "0123456789XxAa中-.+/\u{0}\u{200B}";
        let mut tried = 0;
        for id in VALID_IDS {
            for pos in 0..18 {
                let original = id.chars().nth(pos).unwrap();
                for r in replacements.chars() {
                    if r.to_ascii_uppercase() == original {
                        continue; // not a corruption (x is X)
                    }
                    let corrupted: String = id
                        .chars()
                        .enumerate()
                        .map(|(i, c)| if i == pos { r } else { c })
                        .collect();
                    assert!(
                        ResidentId::parse(&corrupted).is_err(),
                        "accepted corruption {corrupted:?}"
                    );
                    tried += 1;
                }
            }
        }
        assert!(tried >= 8 * 18 * 19);
    }

    #[test]
    fn fail_invalid_birth_dates() {
        let bad_dates = [
            "19000229", // 1900 is not a leap year (divisible by 100, not by 400)
            "20230229", "20240230", "20240431", "20241301", "20240001", "20240100", "20240132",
            "18991231", "00000101",
        ];
        for d in bad_dates {
            let id = with_check(&format!("110105{d}123"));
            assert_eq!(
                reason(ResidentId::parse(&id)),
                "not a valid date of birth",
                "{id}"
            );
        }
        for (d, expected) in [
            ("20000229", date!(2000 - 02 - 29)),
            ("20240229", date!(2024 - 02 - 29)),
            ("19000228", date!(1900 - 02 - 28)),
            ("20991231", date!(2099 - 12 - 31)), // future: the caller's clock decides
        ] {
            let id = with_check(&format!("110105{d}123"));
            assert_eq!(ResidentId::parse(&id).unwrap().birth_date(), expected);
        }
    }

    #[test]
    fn fail_wrong_length() {
        for raw in [
            "",
            "   ",
            "11010519491231002",   // 17
            "11010519491231002XX", // 19
            "110105491231002",     // old 15-digit number
            "11010519491231002X0",
        ] {
            assert_eq!(
                reason(ResidentId::parse(raw)),
                "must be 18 characters",
                "{raw}"
            );
        }
        let very_long = "1".repeat(100_000);
        assert_eq!(
            reason(ResidentId::parse(&very_long)),
            "must be 18 characters"
        );
    }

    #[test]
    fn fail_non_digit() {
        for raw in [
            "1101051949123100XX",
            "X1010519491231002X",
            "11010519491231002Y",
            "11010519491231002-",
            "1101051949-231002X",
            "11010519491231002中", // 18 characters, 20 bytes
            "11010519491231002\u{0}",
        ] {
            assert_eq!(
                reason(ResidentId::parse(raw)),
                "must be 17 digits followed by a digit or X",
                "{raw:?}"
            );
        }
    }

    #[test]
    fn fail_unknown_province() {
        for prefix in [
            "00", "10", "16", "20", "30", "38", "47", "55", "60", "66", "70", "72", "80", "83",
            "90", "99",
        ] {
            let id = with_check(&format!("{prefix}010519491231002"));
            assert_eq!(
                reason(ResidentId::parse(&id)),
                "area code does not start with a valid province code (GB/T 2260)",
                "{id}"
            );
        }
        for province in PROVINCE_CODES {
            let id = with_check(&format!("{province:02}010519491231002"));
            assert!(ResidentId::parse(&id).is_ok(), "{id}");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Phone
    // -----------------------------------------------------------------------------------------

    #[test]
    fn phone_accepted_formats() {
        let cases = [
            ("13800138000", "13800138000"),
            (" 13800138000 ", "13800138000"),
            ("138 0013 8000", "13800138000"),
            ("138-0013-8000", "13800138000"),
            ("+86 138 0013 8000", "13800138000"),
            ("+8613800138000", "13800138000"),
            ("+86-138-0013-8000", "13800138000"),
            ("0086 13800138000", "13800138000"),
            ("8613800138000", "13800138000"),
            ("(+86) 138 0013 8000", "13800138000"),
            ("１３８００１３８０００", "13800138000"),
            ("＋８６ １３８－００１３－８０００", "13800138000"),
            ("19912345678", "19912345678"),
            ("010-12345678", "01012345678"),
            ("01012345678", "01012345678"),
            ("(010) 1234 5678", "01012345678"),
            ("0351-1234567", "03511234567"),
            ("03511234567", "03511234567"),
            ("0351-12345678", "035112345678"),
            ("021-1234567", "0211234567"),
            ("0755 8888 9999", "075588889999"),
            ("+86 10 12345678", "01012345678"),
            ("+86 351 1234567", "03511234567"),
            ("+86 (0)10 12345678", "01012345678"),
            ("0086-21-12345678", "02112345678"),
        ];
        for (raw, normal) in cases {
            let phone = Phone::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(phone.expose(), normal, "{raw:?}");
            assert_eq!(phone.normalized_for_mac(), normal);
        }
        assert!(Phone::parse("13800138000").unwrap().is_mobile());
        assert!(!Phone::parse("010-12345678").unwrap().is_mobile());
    }

    #[test]
    fn fail_phone_rejected_formats() {
        for raw in [
            "",
            "   ",
            "12800138000", // 12x is not a mobile prefix
            "11800138000",
            "10800138000",
            "1380013800",   // 10 digits
            "138001380001", // 12 digits
            "12345678",     // landline without area code
            "1234567",
            "62345678",
            "+1 415 555 0100", // not mainland
            "+44 20 7946 0958",
            "+852 2123 4567",   // Hong Kong has its own country code
            "010-12345678-123", // extension
            "010-12345678 ext 1",
            "010-123456",     // 6-digit subscriber
            "0351-123456789", // 9-digit subscriber
            "011-12345678",   // 01X other than 010
            "00-12345678",
            "0",
            "+86",
            "86",
            "0086",
            "138+00138000",
            "++8613800138000",
            "tel:13800138000",
            "13800138000#",
            "１３８００１３８００a",
            "138001380001380013800138000",
        ] {
            assert!(Phone::parse(raw).is_err(), "accepted {raw:?}");
        }
        assert_eq!(
            reason(Phone::parse("12800138000")),
            "mobile number must be 11 digits starting with 13 to 19"
        );
        assert_eq!(
            reason(Phone::parse("+1 415 555 0100")),
            "only mainland China numbers (+86) are accepted"
        );
        assert_eq!(
            reason(Phone::parse("011-12345678")),
            "landline area code is not valid"
        );
    }

    // -----------------------------------------------------------------------------------------
    // BankAccount
    // -----------------------------------------------------------------------------------------

    #[test]
    fn bank_account_luhn() {
        // Computed: 622202020011234567 + Luhn check 9.
        assert_eq!(
            reference_luhn_complete("622202020011234567"),
            "6222020200112345679"
        );
        for (raw, normal) in [
            ("6222020200112345679", "6222020200112345679"),
            ("6222 0202 0011 2345 679", "6222020200112345679"),
            ("6222-0202-0011-2345-679", "6222020200112345679"),
            (
                " ６２２２０２０２００１１２３４５６７９ ",
                "6222020200112345679",
            ),
            ("4111111111111111", "4111111111111111"), // the well-known Luhn-valid test card
        ] {
            let account = BankAccount::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(account.expose(), normal);
        }
        assert_eq!(
            reason(BankAccount::parse("6222020200112345678")),
            "fails the Luhn check"
        );
        assert_eq!(
            reason(BankAccount::parse("4111111111111112")),
            "fails the Luhn check"
        );
    }

    #[test]
    fn bank_account_length_bounds() {
        let twelve = reference_luhn_complete(&"1".repeat(11));
        let nineteen = reference_luhn_complete(&"2".repeat(18));
        let eleven = reference_luhn_complete(&"3".repeat(10));
        let twenty = reference_luhn_complete(&"4".repeat(19));
        assert!(BankAccount::parse(&twelve).is_ok());
        assert!(BankAccount::parse(&nineteen).is_ok());
        assert_eq!(
            reason(BankAccount::parse(&eleven)),
            "must be 12 to 19 digits"
        );
        assert_eq!(
            reason(BankAccount::parse(&twenty)),
            "must be 12 to 19 digits"
        );
        // Luhn-valid (the classic example) but too short.
        assert_eq!(
            reason(BankAccount::parse("79927398713")),
            "must be 12 to 19 digits"
        );
        assert_eq!(reason(BankAccount::parse("")), "must be 12 to 19 digits");
    }

    #[test]
    fn fail_bank_account_every_single_digit_change() {
        let valid = "6222020200112345679";
        for pos in 0..valid.len() {
            for d in '0'..='9' {
                let changed: String = valid
                    .chars()
                    .enumerate()
                    .map(|(i, c)| if i == pos { d } else { c })
                    .collect();
                assert_eq!(
                    BankAccount::parse(&changed).is_ok(),
                    changed == valid,
                    "{changed}"
                );
            }
        }
    }

    #[test]
    fn fail_bank_account_non_digits() {
        for raw in [
            "6222O20200112345679",
            "6222.0202.0011.2345.679",
            "+6222020200112345679",
        ] {
            assert_eq!(
                reason(BankAccount::parse(raw)),
                "may contain only digits and spaces",
                "{raw}"
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // PersonName
    // -----------------------------------------------------------------------------------------

    #[test]
    fn person_name_accepts_and_normalises() {
        for (raw, normal) in [
            ("张三", "张三"),
            ("  张三\n", "张三"),
            ("买买提·艾力", "买买提·艾力"),
            ("买买提•艾力", "买买提·艾力"),
            ("买买提・艾力", "买买提·艾力"),
            ("买买提\u{0387}艾力", "买买提·艾力"),
            ("John   Smith", "John Smith"),
            ("John \u{3000}\u{00A0} Smith", "John Smith"),
            ("张\u{3000}三", "张 三"),
            ("O'Brien-Lee", "O'Brien-Lee"),
        ] {
            let name = PersonName::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(name.expose(), normal, "{raw:?}");
        }
    }

    #[test]
    fn person_name_length_counts_characters_not_bytes() {
        let sixty_four = "张".repeat(64); // 192 bytes
        assert_eq!(PersonName::parse(&sixty_four).unwrap().expose(), sixty_four);
        assert_eq!(
            reason(PersonName::parse(&"张".repeat(65))),
            "must be at most 64 characters"
        );
        assert!(PersonName::parse(&"a".repeat(64)).is_ok());
        assert!(PersonName::parse(&"a".repeat(65)).is_err());
        // Counted after collapsing: 32 + 1 + 31 = 64 characters.
        let spaced = format!("{}{}{}", "a".repeat(32), " ".repeat(50), "b".repeat(31));
        assert_eq!(
            PersonName::parse(&spaced).unwrap().expose().chars().count(),
            64
        );
        // Surrounding whitespace does not count.
        assert!(PersonName::parse(&format!("   {}   ", "张".repeat(64))).is_ok());
        assert!(PersonName::parse(&"张".repeat(100_000)).is_err());
    }

    #[test]
    fn fail_person_name_control_invisible_empty() {
        for raw in [
            "张\n三",
            "张\t三",
            "张\u{0}三",
            "张\u{7F}三",
            "张\u{85}三",
            "张\u{202E}三",
            "张\u{200B}三",
            "\u{FEFF}张三",
            "张\u{2066}三",
        ] {
            assert_eq!(
                reason(PersonName::parse(raw)),
                "must not contain control or invisible formatting characters",
                "{raw:?}"
            );
        }
        for raw in ["", " ", "\n\t", "\u{3000}"] {
            assert_eq!(
                reason(PersonName::parse(raw)),
                "must not be empty",
                "{raw:?}"
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // Email
    // -----------------------------------------------------------------------------------------

    #[test]
    fn email_accepts_and_normalises() {
        for (raw, normal) in [
            ("zhangsan@example.cn", "zhangsan@example.cn"),
            (" Zhang.San@Example.COM \n", "Zhang.San@example.com"),
            ("a+tag@mail.gov.cn", "a+tag@mail.gov.cn"),
            ("用户@例子.中国", "用户@例子.中国"),
        ] {
            let email = Email::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(email.expose(), normal);
        }
    }

    #[test]
    fn fail_email_shapes() {
        for raw in [
            "",
            "no-at-sign",
            "a@@b.cn",
            "a@b@c.cn",
            "@b.cn",
            "a@",
            "a@localhost",
            "a@.cn",
            "a@b..cn",
            "a@b.cn.",
            "a b@c.cn",
            "a@b.cn\u{0}",
            "a\u{200B}@b.cn",
            "a@b\u{3000}.cn",
        ] {
            assert!(Email::parse(raw).is_err(), "accepted {raw:?}");
        }
    }

    #[test]
    fn email_length_limits() {
        let local64 = "l".repeat(64);
        assert!(Email::parse(&format!("{local64}@b.cn")).is_ok());
        assert_eq!(
            reason(Email::parse(&format!("{local64}l@b.cn"))),
            "local part must be at most 64 bytes"
        );
        // 254 bytes total: 64 + 1 + 189.
        let domain189 = format!("{}.cn", "d".repeat(186));
        let at_limit = format!("{local64}@{domain189}");
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&at_limit).is_ok());
        let over = format!("{local64}@d{domain189}");
        assert_eq!(reason(Email::parse(&over)), "must be at most 254 bytes");
    }

    // -----------------------------------------------------------------------------------------
    // FreeText
    // -----------------------------------------------------------------------------------------

    #[test]
    fn free_text_bounds_and_normalisation() {
        assert_eq!(
            Address::parse("  山西省太原市  迎泽区\u{3000}某街1号 ")
                .unwrap()
                .expose(),
            "山西省太原市 迎泽区 某街1号"
        );
        assert!(Address::parse(&"址".repeat(200)).is_ok());
        assert_eq!(reason(Address::parse(&"址".repeat(201))), "is too long");
        assert!(BankName::parse(&"行".repeat(100)).is_ok());
        assert_eq!(reason(BankName::parse(&"行".repeat(101))), "is too long");
        assert!(Employer::parse(&"e".repeat(200)).is_ok());
        assert!(Employer::parse(&"e".repeat(201)).is_err());
        assert_eq!(reason(Employer::parse(" ")), "must not be empty");
        assert!(Address::parse("第一行\n第二行").is_err());
        assert!(BankName::parse("中国银行\u{202E}").is_err());
        // Middle dots are a name rule, not a free-text one.
        assert_eq!(Employer::parse("某•公司").unwrap().expose(), "某•公司");
    }

    // -----------------------------------------------------------------------------------------
    // Secrets are types
    // -----------------------------------------------------------------------------------------

    #[test]
    fn debug_never_prints_the_value() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            id: ResidentId,
            phone: Phone,
            account: BankAccount,
            name: PersonName,
            email: Email,
            address: Address,
            bank: BankName,
        }
        let holder = Holder {
            id: ResidentId::parse("11010519491231002X").unwrap(),
            phone: Phone::parse("13800138000").unwrap(),
            account: BankAccount::parse("6222020200112345679").unwrap(),
            name: PersonName::parse("张三").unwrap(),
            email: Email::parse("zhangsan@example.cn").unwrap(),
            address: Address::parse("太原市迎泽区").unwrap(),
            bank: BankName::parse("中国工商银行").unwrap(),
        };
        assert_eq!(format!("{:?}", holder.id), "ResidentId([redacted])");
        assert_eq!(format!("{:?}", holder.phone), "Phone([redacted])");
        assert_eq!(format!("{:?}", holder.account), "BankAccount([redacted])");
        assert_eq!(format!("{:?}", holder.name), "PersonName([redacted])");
        assert_eq!(format!("{:?}", holder.email), "Email([redacted])");
        assert_eq!(format!("{:?}", holder.address), "FreeText<200>([redacted])");
        assert_eq!(format!("{:?}", holder.bank), "FreeText<100>([redacted])");
        for rendered in [format!("{holder:?}"), format!("{holder:#?}")] {
            for secret in [
                "110105", "1949", "002X", "138", "0013", "6222", "2345679", "张三", "zhangsan",
                "example", "太原", "工商",
            ] {
                assert!(!rendered.contains(secret), "{secret} leaked in {rendered}");
            }
        }
    }

    #[test]
    fn errors_never_echo_the_input() {
        type Refusal = fn(&str) -> Option<ValueError>;
        let inputs: [(&str, Refusal); 7] = [
            ("11010519491231002Y", |s| ResidentId::parse(s).err()),
            ("11010519491231003X", |s| ResidentId::parse(s).err()),
            ("12800138000", |s| Phone::parse(s).err()),
            ("6222020200112345678", |s| BankAccount::parse(s).err()),
            ("张\u{0}三", |s| PersonName::parse(s).err()),
            ("zhangsan@@example.cn", |s| Email::parse(s).err()),
            ("太原\u{0}市", |s| Address::parse(s).err()),
        ];
        for (input, parse) in inputs {
            let err = parse(input).unwrap();
            let text = format!("{err} {err:?}");
            for fragment in ["110105", "1949", "138", "6222", "张", "zhangsan", "太原"] {
                if input.contains(fragment) {
                    assert!(!text.contains(fragment), "{fragment} echoed in {text}");
                }
            }
        }
    }

    /// Compile-time proof that identity types have no `Clone`, `Display` or `Serialize`
    /// (the technique of `static_assertions::assert_not_impl_any!`): if one of them gains
    /// such an impl, `some_item` becomes ambiguous and this test module stops compiling.
    #[allow(dead_code)]
    fn identity_types_are_not_clone_display_or_serialize() {
        trait AmbiguousIfImpl<A> {
            fn some_item() {}
        }
        impl<T> AmbiguousIfImpl<()> for T {}
        struct IfClone;
        struct IfDisplay;
        struct IfSerialize;
        impl<T: Clone> AmbiguousIfImpl<IfClone> for T {}
        impl<T: fmt::Display> AmbiguousIfImpl<IfDisplay> for T {}
        impl<T: serde::Serialize> AmbiguousIfImpl<IfSerialize> for T {}
        let _ = <ResidentId as AmbiguousIfImpl<_>>::some_item;
        let _ = <Phone as AmbiguousIfImpl<_>>::some_item;
        let _ = <BankAccount as AmbiguousIfImpl<_>>::some_item;
        let _ = <PersonName as AmbiguousIfImpl<_>>::some_item;
        let _ = <Email as AmbiguousIfImpl<_>>::some_item;
        let _ = <Address as AmbiguousIfImpl<_>>::some_item;
        let _ = <BankName as AmbiguousIfImpl<_>>::some_item;
    }

    // -----------------------------------------------------------------------------------------
    // Leak-trace normalisation
    // -----------------------------------------------------------------------------------------

    #[test]
    fn normalize_for_trace_matches_stored_form() {
        let cases = [
            (
                IdentityField::IdNumber,
                "110105 19491231 002x",
                "11010519491231002X",
            ),
            (IdentityField::Phone, "+86 138-0013-8000", "13800138000"),
            (IdentityField::Phone, "(010) 1234-5678", "01012345678"),
            (
                IdentityField::BankAccount,
                "6222 0202 0011 2345 679",
                "6222020200112345679",
            ),
            (IdentityField::Name, " 买买提•艾力 ", "买买提·艾力"),
            (
                IdentityField::Email,
                "ZhangSan@EXAMPLE.cn",
                "ZhangSan@example.cn",
            ),
            (IdentityField::Address, " 太原市  迎泽区 ", "太原市 迎泽区"),
            (IdentityField::BankName, "中国  工商银行", "中国 工商银行"),
            (
                IdentityField::Employer,
                "某某化工\u{3000}有限公司",
                "某某化工 有限公司",
            ),
        ];
        for (field, raw, normal) in cases {
            assert_eq!(normalize_for_trace(field, raw).unwrap(), normal, "{field}");
        }
        assert_eq!(
            normalize_for_trace(IdentityField::IdNumber, "11010519491231002X").unwrap(),
            ResidentId::parse("11010519491231002x")
                .unwrap()
                .normalized_for_mac()
        );
        assert_eq!(
            reason(normalize_for_trace(
                IdentityField::IdNumber,
                "110105194912310029"
            )),
            "check character does not match (GB 11643)"
        );
        assert!(normalize_for_trace(IdentityField::BankName, &"x".repeat(101)).is_err());
        assert!(normalize_for_trace(IdentityField::Address, &"x".repeat(101)).is_ok());
    }

    // -----------------------------------------------------------------------------------------
    // Small enums
    // -----------------------------------------------------------------------------------------

    fn check_string_enum<T>(
        all: &[T],
        wire: &[&str],
        as_str: fn(&T) -> &'static str,
        parse: fn(&str) -> Option<T>,
    ) where
        T: Copy
            + Eq
            + fmt::Debug
            + fmt::Display
            + FromStr<Err = ValueError>
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        assert_eq!(all.len(), wire.len());
        for (value, name) in all.iter().zip(wire) {
            assert_eq!(as_str(value), *name);
            assert_eq!(value.to_string(), *name);
            assert_eq!(parse(name), Some(*value));
            assert_eq!(name.parse::<T>().unwrap(), *value);
            assert_eq!(serde_json::to_string(value).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<T>(&format!("\"{name}\"")).unwrap(),
                *value
            );
            assert_eq!(parse(&name.to_uppercase()), None);
            assert_eq!(parse(&format!(" {name}")), None);
        }
        assert_eq!(parse(""), None);
        assert_eq!(parse("unknown"), None);
        assert!("unknown".parse::<T>().is_err());
        assert!(serde_json::from_str::<T>("\"unknown\"").is_err());
    }

    #[test]
    fn identity_field_wire_names() {
        check_string_enum(
            &IdentityField::ALL,
            &[
                "name",
                "id_number",
                "phone",
                "email",
                "address",
                "bank_account",
                "bank_name",
                "employer",
            ],
            IdentityField::as_str,
            IdentityField::parse,
        );
        assert_eq!(IdentityField::ALL.len(), 8);
        // Ord follows declaration order (the lead keys BTreeMaps by field).
        assert!(IdentityField::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn channel_role_purpose_message_kind_wire_names() {
        check_string_enum(
            &Channel::ALL,
            &["web", "wechat", "phone", "letter", "visit", "email"],
            Channel::as_str,
            Channel::parse,
        );
        check_string_enum(
            &Role::ALL,
            &["admin", "case_system", "custodian", "finance", "auditor"],
            Role::as_str,
            Role::parse,
        );
        check_string_enum(
            &Purpose::ALL,
            &[
                "verification_contact",
                "reward_payment",
                "judicial_transfer",
                "false_accusation",
            ],
            Purpose::as_str,
            Purpose::parse,
        );
        check_string_enum(
            &MessageKind::ALL,
            &[
                "acceptance",
                "supplement_request",
                "progress",
                "result",
                "reward_notice",
            ],
            MessageKind::as_str,
            MessageKind::parse,
        );
    }

    // -----------------------------------------------------------------------------------------
    // Jurisdiction
    // -----------------------------------------------------------------------------------------

    fn j(s: &str) -> Jurisdiction {
        Jurisdiction::parse(s).unwrap()
    }

    #[test]
    fn jurisdiction_parse_display_level() {
        for (code, level) in [
            ("000000", JurisdictionLevel::National),
            ("140000", JurisdictionLevel::Province),
            ("110000", JurisdictionLevel::Province),
            ("820000", JurisdictionLevel::Province),
            ("710000", JurisdictionLevel::Province),
            ("140100", JurisdictionLevel::City),
            ("429000", JurisdictionLevel::City),
            ("140105", JurisdictionLevel::County),
            ("429004", JurisdictionLevel::County),
            ("110105", JurisdictionLevel::County),
        ] {
            let parsed = j(code);
            assert_eq!(parsed.to_string(), code);
            assert_eq!(parsed.as_str(), code);
            assert_eq!(parsed.level(), level, "{code}");
            assert_eq!(code.parse::<Jurisdiction>().unwrap(), parsed);
        }
        assert_eq!(Jurisdiction::NATIONAL.to_string(), "000000");
        assert_eq!(j("000000"), Jurisdiction::NATIONAL);
        assert_eq!(j("140105").as_u32(), 140_105);
    }

    #[test]
    fn fail_jurisdiction_shapes() {
        for (raw, why) in [
            ("", "jurisdiction must be exactly 6 digits (GB/T 2260)"),
            ("14010", "jurisdiction must be exactly 6 digits (GB/T 2260)"),
            (
                "1401050",
                "jurisdiction must be exactly 6 digits (GB/T 2260)",
            ),
            (
                "0000000",
                "jurisdiction must be exactly 6 digits (GB/T 2260)",
            ),
            (
                " 140100",
                "jurisdiction must be exactly 6 digits (GB/T 2260)",
            ),
            (
                "14010a",
                "jurisdiction must be exactly 6 digits (GB/T 2260)",
            ),
            (
                "+14010",
                "jurisdiction must be exactly 6 digits (GB/T 2260)",
            ),
            (
                "-14010",
                "jurisdiction must be exactly 6 digits (GB/T 2260)",
            ),
            (
                "１４０１００",
                "jurisdiction must be exactly 6 digits (GB/T 2260)",
            ),
            (
                "100000",
                "jurisdiction does not start with a valid province code (GB/T 2260)",
            ),
            (
                "000001",
                "jurisdiction does not start with a valid province code (GB/T 2260)",
            ),
            (
                "990000",
                "jurisdiction does not start with a valid province code (GB/T 2260)",
            ),
            (
                "720000",
                "jurisdiction does not start with a valid province code (GB/T 2260)",
            ),
            (
                "140005",
                "jurisdiction with city part 00 must be a province code (PP0000)",
            ),
        ] {
            assert_eq!(reason(Jurisdiction::parse(raw)), why, "{raw:?}");
        }
    }

    #[test]
    fn jurisdiction_covers_table() {
        let codes = [
            "000000", // 0 national
            "140000", // 1 Shanxi
            "370000", // 2 Shandong
            "140100", // 3 Taiyuan
            "140200", // 4 Datong
            "370100", // 5 Jinan
            "140105", // 6 Taiyuan county
            "140106", // 7 Taiyuan county
            "140205", // 8 Datong county
            "370102", // 9 Jinan county
        ];
        // expected[row][col] = codes[row].covers(codes[col]), written out by hand.
        let expected: [[u8; 10]; 10] = [
            //0  1  2  3  4  5  6  7  8  9
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], // national covers all
            [0, 1, 0, 1, 1, 0, 1, 1, 1, 0], // 140000: Shanxi only
            [0, 0, 1, 0, 0, 1, 0, 0, 0, 1], // 370000: Shandong only
            [0, 0, 0, 1, 0, 0, 1, 1, 0, 0], // 140100: Taiyuan
            [0, 0, 0, 0, 1, 0, 0, 0, 1, 0], // 140200: Datong
            [0, 0, 0, 0, 0, 1, 0, 0, 0, 1], // 370100: Jinan
            [0, 0, 0, 0, 0, 0, 1, 0, 0, 0], // county: itself
            [0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ];
        let mut level_pairs = std::collections::HashSet::new();
        for (row, a) in codes.iter().enumerate() {
            for (col, b) in codes.iter().enumerate() {
                let (a, b) = (j(a), j(b));
                assert_eq!(a.covers(&b), expected[row][col] == 1, "{a} covers {b}");
                level_pairs.insert((a.level(), b.level()));
            }
        }
        assert_eq!(level_pairs.len(), 16, "every level pair is exercised");
    }

    #[test]
    fn jurisdiction_ancestors() {
        assert_eq!(j("140105").province(), Some(j("140000")));
        assert_eq!(j("140105").city(), Some(j("140100")));
        assert_eq!(j("140100").province(), Some(j("140000")));
        assert_eq!(j("140100").city(), Some(j("140100")));
        assert_eq!(j("140000").province(), Some(j("140000")));
        assert_eq!(j("140000").city(), None);
        assert_eq!(Jurisdiction::NATIONAL.province(), None);
        assert_eq!(Jurisdiction::NATIONAL.city(), None);
        assert_eq!(
            j("140105").ancestors_and_self(),
            vec![
                j("140105"),
                j("140100"),
                j("140000"),
                Jurisdiction::NATIONAL
            ]
        );
        assert_eq!(
            j("140100").ancestors_and_self(),
            vec![j("140100"), j("140000"), Jurisdiction::NATIONAL]
        );
        assert_eq!(
            j("140000").ancestors_and_self(),
            vec![j("140000"), Jurisdiction::NATIONAL]
        );
        assert_eq!(
            Jurisdiction::NATIONAL.ancestors_and_self(),
            vec![Jurisdiction::NATIONAL]
        );
    }

    /// A small pool where most triples are related, so transitivity is actually exercised.
    fn jurisdiction_pool() -> Vec<Jurisdiction> {
        let mut pool = vec![Jurisdiction::NATIONAL];
        for p in [11, 14, 37, 82] {
            for c in 0..4 {
                for k in 0..4 {
                    if let Ok(code) = Jurisdiction::parse(&format!("{p:02}{c:02}{k:02}")) {
                        pool.push(code);
                    }
                }
            }
        }
        pool
    }

    #[test]
    fn jurisdiction_covers_is_a_partial_order_exhaustively() {
        let pool = jurisdiction_pool();
        assert_eq!(pool.len(), 1 + 4 * (1 + 3 * 4));
        for a in &pool {
            assert!(a.covers(a));
            assert!(Jurisdiction::NATIONAL.covers(a));
            for b in &pool {
                // covers is exactly "is an ancestor or self"
                assert_eq!(a.covers(b), b.ancestors_and_self().contains(a), "{a} {b}");
                if a.covers(b) && b.covers(a) {
                    assert_eq!(a, b);
                }
                for c in &pool {
                    if a.covers(b) && b.covers(c) {
                        assert!(a.covers(c), "{a} {b} {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn jurisdiction_serde_is_a_string() {
        assert_eq!(serde_json::to_string(&j("140100")).unwrap(), "\"140100\"");
        assert_eq!(
            serde_json::to_string(&Jurisdiction::NATIONAL).unwrap(),
            "\"000000\""
        );
        assert_eq!(
            serde_json::from_str::<Jurisdiction>("\"140105\"").unwrap(),
            j("140105")
        );
        assert!(serde_json::from_str::<Jurisdiction>("140105").is_err());
        let err = serde_json::from_str::<Jurisdiction>("\"140005\"").unwrap_err();
        assert!(err.to_string().contains("city part 00"), "{err}");
        assert_eq!(
            serde_json::to_string(&JurisdictionLevel::County).unwrap(),
            "\"county\""
        );
    }

    // -----------------------------------------------------------------------------------------
    // CaseRef
    // -----------------------------------------------------------------------------------------

    #[test]
    fn case_ref() {
        let r = CaseRef::parse("  SX-2026-000123 ").unwrap();
        assert_eq!(r.as_str(), "SX-2026-000123");
        assert_eq!(r.to_string(), "SX-2026-000123");
        assert_eq!(format!("{r:?}"), "CaseRef(\"SX-2026-000123\")");
        assert_eq!(r.clone(), r);
        assert_eq!(
            CaseRef::parse("晋应急〔2026〕12 号").unwrap().as_str(),
            "晋应急〔2026〕12 号"
        );
        assert!(CaseRef::parse(&"案".repeat(64)).is_ok());
        assert_eq!(
            reason(CaseRef::parse(&"案".repeat(65))),
            "case_ref must be at most 64 characters"
        );
        assert_eq!(reason(CaseRef::parse(" ")), "case_ref must not be empty");
        for raw in ["SX\n1", "SX\u{0}", "SX\u{202E}1", "\u{200B}"] {
            assert!(CaseRef::parse(raw).is_err(), "{raw:?}");
        }
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"SX-2026-000123\"");
        assert_eq!(
            serde_json::from_str::<CaseRef>("\"SX-2026-000123\"").unwrap(),
            r
        );
        assert!(serde_json::from_str::<CaseRef>("\"\"").is_err());
        assert!(serde_json::from_str::<CaseRef>("12").is_err());
    }

    #[test]
    fn value_error_display_is_the_reason() {
        let e = ValueError::new("must be 18 characters");
        assert_eq!(e.to_string(), "must be 18 characters");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn check_for(body: &str) -> char {
        let sum: u32 = body
            .bytes()
            .zip(GB11643_WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        char::from(GB11643_CHECK[(sum % 11) as usize])
    }

    fn valid_id_body() -> impl Strategy<Value = (String, Date)> {
        (
            prop::sample::select(PROVINCE_CODES.to_vec()),
            0u32..10_000,
            1900i32..=2099,
            1u8..=12,
            1u8..=31,
            0u32..1000,
        )
            .prop_filter_map("real dates only", |(p, area, y, m, d, seq)| {
                let month = Month::try_from(m).ok()?;
                let date = Date::from_calendar_date(y, month, d).ok()?;
                Some((format!("{p:02}{area:04}{y:04}{m:02}{d:02}{seq:03}"), date))
            })
    }

    fn valid_jurisdiction() -> impl Strategy<Value = Jurisdiction> {
        prop_oneof![
            1 => Just(Jurisdiction::NATIONAL),
            8 => (prop::sample::select(vec![11u32, 14, 37, 82]), 0u32..4, 0u32..4)
                .prop_map(|(p, c, k)| {
                    let k = if c == 0 { 0 } else { k };
                    Jurisdiction::parse(&format!("{p:02}{c:02}{k:02}")).unwrap()
                }),
            2 => (prop::sample::select(PROVINCE_CODES.to_vec()), 0u32..100, 0u32..100)
                .prop_map(|(p, c, k)| {
                    let k = if c == 0 { 0 } else { k };
                    Jurisdiction::parse(&format!("{p:02}{c:02}{k:02}")).unwrap()
                }),
        ]
    }

    fn separator() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", "", "", " ", "-", "  ", "\u{3000}", " - "])
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_any_string(s in any::<String>()) {
            let _ = ResidentId::parse(&s);
            let _ = Phone::parse(&s);
            let _ = BankAccount::parse(&s);
            let _ = PersonName::parse(&s);
            let _ = Email::parse(&s);
            let _ = Address::parse(&s);
            let _ = BankName::parse(&s);
            let _ = Jurisdiction::parse(&s);
            let _ = CaseRef::parse(&s);
            let _ = IdentityField::parse(&s);
            for field in IdentityField::ALL {
                let _ = normalize_for_trace(field, &s);
            }
        }

        #[test]
        fn parse_never_panics_on_near_miss_input(
            id in "[0-9Xx \u{3000}１]{0,24}",
            phone in "[+0-9 ()\u{2013}-]{0,24}",
            account in "[0-9 -]{0,25}",
            code in "[0-9]{0,8}",
        ) {
            let _ = ResidentId::parse(&id);
            let _ = Phone::parse(&phone);
            let _ = BankAccount::parse(&account);
            let _ = Jurisdiction::parse(&code);
        }

        /// Parsing the normal form gives the normal form back: one value, one stored form.
        #[test]
        fn normal_forms_are_fixed_points(s in any::<String>()) {
            if let Ok(v) = ResidentId::parse(&s) {
                let again = ResidentId::parse(v.expose()).unwrap();
                prop_assert_eq!(again.expose(), v.expose());
            }
            if let Ok(v) = Phone::parse(&s) {
                let again = Phone::parse(v.expose()).unwrap();
                prop_assert_eq!(again.expose(), v.expose());
            }
            if let Ok(v) = PersonName::parse(&s) {
                let again = PersonName::parse(v.expose()).unwrap();
                prop_assert_eq!(again.expose(), v.expose());
            }
            if let Ok(v) = Email::parse(&s) {
                let again = Email::parse(v.expose()).unwrap();
                prop_assert_eq!(again.expose(), v.expose());
            }
            if let Ok(v) = Address::parse(&s) {
                let again = Address::parse(v.expose()).unwrap();
                prop_assert_eq!(again.expose(), v.expose());
            }
            if let Ok(v) = CaseRef::parse(&s) {
                prop_assert_eq!(CaseRef::parse(v.as_str()).unwrap(), v);
            }
        }

        #[test]
        fn generated_ids_accepted_and_every_other_check_char_refused(
            (body, date) in valid_id_body(),
            lower in any::<bool>(),
        ) {
            let check = check_for(&body);
            let id = format!("{body}{check}");
            let raw = if lower { id.to_lowercase() } else { id.clone() };
            let parsed = ResidentId::parse(&raw).unwrap();
            prop_assert_eq!(parsed.expose(), id.as_str());
            prop_assert_eq!(parsed.birth_date(), date);
            prop_assert_eq!(ResidentId::parse(parsed.normalized_for_mac()).unwrap(), parsed);
            for c in "0123456789X".chars().filter(|&c| c != check) {
                let wrong = format!("{body}{c}");
                prop_assert!(ResidentId::parse(&wrong).is_err(), "accepted {}", wrong);
            }
        }

        #[test]
        fn luhn_detects_every_single_digit_error(
            body in "[0-9]{11,18}",
            pos in any::<prop::sample::Index>(),
            delta in 1u8..10,
        ) {
            let valid = (0..10u8)
                .map(|d| format!("{body}{d}"))
                .find(|c| luhn_valid(c.as_bytes()))
                .unwrap();
            prop_assert!(BankAccount::parse(&valid).is_ok());
            let i = pos.index(valid.len());
            let mut bytes = valid.clone().into_bytes();
            bytes[i] = b'0' + (bytes[i] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(BankAccount::parse(&changed).is_err());
        }

        #[test]
        fn mobile_formatting_does_not_change_the_normal_form(
            second in 3u8..=9,
            rest in "[0-9]{9}",
            prefix in prop::sample::select(vec!["", "+86", "+86 ", "0086", "0086-", "86", "(+86) "]),
            sep1 in separator(),
            sep2 in separator(),
            fullwidth in any::<bool>(),
        ) {
            let normal = format!("1{second}{rest}");
            let raw = format!(
                " {prefix}{}{sep1}{}{sep2}{} ",
                &normal[..3], &normal[3..7], &normal[7..]
            );
            let raw = if fullwidth {
                raw.chars().map(|c| if c.is_ascii_digit() {
                    char::from_u32(u32::from(c) + 0xFEE0).unwrap()
                } else { c }).collect()
            } else { raw };
            let phone = Phone::parse(&raw).unwrap();
            prop_assert_eq!(phone.expose(), normal.as_str());
            prop_assert_eq!(normalize_for_trace(IdentityField::Phone, &raw).unwrap(), normal);
        }

        #[test]
        fn covers_is_reflexive(a in valid_jurisdiction()) {
            prop_assert!(a.covers(&a));
            prop_assert!(Jurisdiction::NATIONAL.covers(&a));
            prop_assert_eq!(Jurisdiction::parse(&a.to_string()).unwrap(), a);
            prop_assert_eq!(a.ancestors_and_self().last().copied(), Some(Jurisdiction::NATIONAL));
            for ancestor in a.ancestors_and_self() {
                prop_assert!(ancestor.covers(&a));
            }
        }

        #[test]
        fn covers_is_transitive_and_antisymmetric(
            a in valid_jurisdiction(),
            b in valid_jurisdiction(),
            c in valid_jurisdiction(),
        ) {
            if a.covers(&b) && b.covers(&c) {
                prop_assert!(a.covers(&c));
            }
            if a.covers(&b) && b.covers(&a) {
                prop_assert_eq!(a, b);
            }
            prop_assert_eq!(a.covers(&b), b.ancestors_and_self().contains(&a));
        }
    }
}

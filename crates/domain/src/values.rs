//! Validated values. Each newtype is built only by `parse`, so inside the domain a unit code is a
//! real 12-digit division code, an ID number has a correct check character, and so on. The gRPC
//! edge parses every proto field exactly once and reports the first bad field as a [`FieldError`].

use std::fmt;

use jiff::civil::Date;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

/// A rejected input field: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// Path of the field in the request, e.g. `parties[1].phone`.
    pub field: String,
    /// What is wrong, in words a caller can act on.
    pub problem: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }

    /// The same problem, with the field path prefixed (`parties[0]` + `phone`).
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

/// Result of parsing one field.
pub type Parsed<T> = Result<T, FieldError>;

/// Characters that make no sense in a one-line field: controls (including newlines), and the
/// Unicode bidi overrides that can disguise text.
fn bad_inline_char(c: char) -> bool {
    c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// NFC-normalises and trims `raw`, and checks its length (in characters) and characters.
/// Multi-line text may hold `\n` and `\t`; one-line text holds no control character at all.
fn clean_text(field: &str, raw: &str, max: usize, multiline: bool, required: bool) -> Parsed<String> {
    let text: String = raw.nfc().collect::<String>().trim().to_owned();
    if text.is_empty() {
        if required {
            return Err(FieldError::new(field, "is required"));
        }
        return Ok(text);
    }
    let len = text.chars().count();
    if len > max {
        return Err(FieldError::new(field, format!("is {len} characters long; at most {max} are allowed")));
    }
    if let Some(c) =
        text.chars().find(|&c| if multiline && (c == '\n' || c == '\t') { false } else { bad_inline_char(c) })
    {
        return Err(FieldError::new(field, format!("contains the control character U+{:04X}", c as u32)));
    }
    Ok(text)
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, max = $max:expr, multiline = $ml:expr) => {
        text_type!($(#[$doc])* $name, max = $max, multiline = $ml, debug = |s: &str| s.to_owned());
    };
    ($(#[$doc:meta])* $name:ident, max = $max:expr, multiline = $ml:expr, debug = $debug:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&($debug)(self.0.as_str())).finish()
            }
        }

        impl $name {
            /// Longest accepted value, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Parses a required value.
            ///
            /// # Errors
            /// Empty, too long, or holding control characters.
            pub fn parse(field: &str, raw: &str) -> Parsed<Self> {
                clean_text(field, raw, $max, $ml, true).map(Self)
            }

            /// Parses an optional value: empty input gives `None`.
            ///
            /// # Errors
            /// Too long, or holding control characters.
            pub fn parse_optional(field: &str, raw: &str) -> Parsed<Option<Self>> {
                let text = clean_text(field, raw, $max, $ml, false)?;
                Ok((!text.is_empty()).then_some(Self(text)))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// A person's name (party, signatory), NFC-normalised. `Debug` shows it masked (张*三), so a
    /// logged command never carries a name.
    PersonName, max = 50, multiline = false, debug = crate::privacy::mask_name
);
text_type!(
    /// A dispute category such as 邻里纠纷 or 劳动争议.
    Category, max = 32, multiline = false
);
text_type!(
    /// A short one-line text: address, reason, place, note title.
    ShortText, max = 200, multiline = false
);
text_type!(
    /// A long text: description, session record, agreement terms.
    LongText, max = 10_000, multiline = true
);

/// An identifier chosen by an integrating system: committee, partner, mediator, session,
/// referral ids, external references (12345 work-order numbers) and idempotency keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

impl Ident {
    /// Longest accepted identifier.
    pub const MAX_LEN: usize = 128;

    /// Parses an identifier: 1 to 128 visible ASCII characters, no spaces.
    ///
    /// # Errors
    /// Empty, too long, or with a character outside visible ASCII.
    pub fn parse(field: &str, raw: &str) -> Parsed<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(FieldError::new(field, "is required"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(FieldError::new(
                field,
                format!("is {} characters long; at most {} are allowed", raw.len(), Self::MAX_LEN),
            ));
        }
        if let Some(c) = raw.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(FieldError::new(
                field,
                format!("contains {c:?}; only visible ASCII characters without spaces are allowed"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Parses an optional identifier: empty input gives `None`.
    ///
    /// # Errors
    /// As [`Ident::parse`] for non-empty input.
    pub fn parse_optional(field: &str, raw: &str) -> Parsed<Option<Self>> {
        if raw.trim().is_empty() { Ok(None) } else { Self::parse(field, raw).map(Some) }
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A case's identity: a UUID. Intake derives it from what identifies the dispute in the outside
/// world, so the same 12345 order or partner file always maps to the same case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CaseId(Uuid);

/// Namespace for name-based case ids (UUID v5).
const CASE_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c2e_9b7d_4e58_8f21_0c5d_e0a4_b713);

impl CaseId {
    /// Parses a case id.
    ///
    /// # Errors
    /// Not a UUID.
    pub fn parse(field: &str, raw: &str) -> Parsed<Self> {
        Uuid::parse_str(raw.trim())
            .map(Self)
            .map_err(|_| FieldError::new(field, "is not a case id (a UUID such as 0192f7c4-…)"))
    }

    /// The case for an external reference on a channel: the same pair always gives the same id,
    /// which makes intake idempotent for ever.
    pub fn for_external_ref(channel: i32, external_ref: &Ident) -> Self {
        Self(Uuid::new_v5(&CASE_NAMESPACE, format!("ref:{channel}:{}", external_ref.as_str()).as_bytes()))
    }

    /// The case for a partner's file number on an inbound channel (警调, 诉前委派, …): file numbers
    /// are unique only within one partner, so the partner is part of the name.
    pub fn for_partner_ref(channel: i32, partner_id: &Ident, external_ref: &Ident) -> Self {
        Self(Uuid::new_v5(
            &CASE_NAMESPACE,
            format!("partner-ref:{channel}:{}:{}", partner_id.as_str(), external_ref.as_str()).as_bytes(),
        ))
    }

    /// The case for a registration without external reference: derived from who registered it
    /// and the command's idempotency key, so a retried registration finds its case.
    pub fn for_registration(actor_subject: &str, idempotency_key: &Ident) -> Self {
        Self(Uuid::new_v5(&CASE_NAMESPACE, format!("key:{actor_subject}:{}", idempotency_key.as_str()).as_bytes()))
    }

    /// The UUID.
    pub fn uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Province-level prefixes of the statistical division codes (GB/T 2260).
const PROVINCES: &[&str] = &[
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43", "44",
    "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
];

/// A unit of the organisation tree: a 12-digit statistical division code (province 2, prefecture
/// 2, county 2, township 3, village 3), or a grid: its village's code plus a 1–6 digit suffix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitCode(String);

impl UnitCode {
    /// Parses a unit code.
    ///
    /// # Errors
    /// Not 12 digits (or 13–18 for a grid), an unknown province, a lower level filled in under an
    /// empty higher one, or a grid suffix on a code that is not a village.
    pub fn parse(field: &str, raw: &str) -> Parsed<Self> {
        let code = raw.trim();
        if code.is_empty() {
            return Err(FieldError::new(field, "is required"));
        }
        if !code.bytes().all(|b| b.is_ascii_digit()) || !(12..=18).contains(&code.len()) {
            return Err(FieldError::new(
                field,
                "must be a 12-digit statistical division code, or a grid code of 13 to 18 digits (village code plus suffix)",
            ));
        }
        if !PROVINCES.contains(&&code[..2]) {
            return Err(FieldError::new(field, format!("starts with {}, which is no province code", &code[..2])));
        }
        // Segments: province [0,2) prefecture [2,4) county [4,6) township [6,9) village [9,12).
        let segments = [&code[2..4], &code[4..6], &code[6..9], &code[9..12]];
        let first_zero = segments.iter().position(|s| s.bytes().all(|b| b == b'0'));
        if let Some(i) = first_zero
            && segments[i..].iter().any(|s| s.bytes().any(|b| b != b'0'))
        {
            return Err(FieldError::new(field, "fills in a lower level under an empty higher level"));
        }
        if code.len() > 12 && first_zero.is_some() {
            return Err(FieldError::new(field, "has a grid suffix, but its first 12 digits are not a village code"));
        }
        Ok(Self(code.to_owned()))
    }

    /// The significant prefix: the code without its empty lower levels. A unit's subtree is every
    /// code that starts with this prefix.
    pub fn prefix(&self) -> &str {
        if self.0.len() > 12 {
            return &self.0;
        }
        // Ends of the province, prefecture, county, township and village segments.
        const ENDS: [usize; 5] = [2, 4, 6, 9, 12];
        let mut end = 2;
        for w in ENDS.windows(2) {
            if self.0[w[0]..w[1]].bytes().all(|b| b == b'0') {
                break;
            }
            end = w[1];
        }
        &self.0[..end]
    }

    /// Whether `self` lies in the subtree of `ancestor` (a unit is in its own subtree).
    pub fn is_within(&self, ancestor: &UnitCode) -> bool {
        self.0.starts_with(ancestor.prefix())
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UnitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mainland resident ID number (GB 11643-1999): 17 digits and a MOD 11-2 check character.
/// `Debug` shows it masked (110101********123X).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResidentId(String);

impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResidentId").field(&crate::privacy::mask_resident_id(&self.0)).finish()
    }
}

impl ResidentId {
    /// Parses a resident ID number; a lowercase `x` check character is accepted and upper-cased.
    ///
    /// # Errors
    /// Wrong length or characters, an unknown province, a birth date that is no real date, or a
    /// wrong check character.
    pub fn parse(field: &str, raw: &str) -> Parsed<Self> {
        let id = raw.trim().to_ascii_uppercase();
        let bytes = id.as_bytes();
        if bytes.len() != 18
            || !bytes[..17].iter().all(u8::is_ascii_digit)
            || !(bytes[17].is_ascii_digit() || bytes[17] == b'X')
        {
            return Err(FieldError::new(field, "must be 18 characters: 17 digits and a digit or X"));
        }
        if !PROVINCES.contains(&&id[..2]) {
            return Err(FieldError::new(field, format!("starts with {}, which is no province code", &id[..2])));
        }
        let (year, month, day) = (num(&id[6..10]), num(&id[10..12]), num(&id[12..14]));
        let real_date = i16::try_from(year)
            .ok()
            .filter(|y| *y >= 1900)
            .and_then(|y| Date::new(y, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok());
        if real_date.is_none() {
            // The date itself is not repeated: error messages end up in logs.
            return Err(FieldError::new(field, "has a birth date (characters 7 to 14) that is no real date"));
        }
        const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        const CHECK: &[u8; 11] = b"10X98765432";
        let sum: u32 = bytes[..17].iter().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
        let expected = CHECK[(sum % 11) as usize];
        if bytes[17] != expected {
            return Err(FieldError::new(field, "has a wrong check character (GB 11643 MOD 11-2)"));
        }
        Ok(Self(id))
    }

    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn num(digits: &str) -> u32 {
    digits.bytes().fold(0, |n, b| n * 10 + u32::from(b - b'0'))
}

/// A mainland phone number: an 11-digit mobile number (1[3-9]…), or a landline with area code
/// (0 + 2–3 digits, then 7–8 digits). Stored without separators; a `+86`/`86` prefix on a mobile
/// number is dropped. `Debug` shows it masked (138****5678).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PhoneNumber").field(&crate::privacy::mask_phone(&self.0)).finish()
    }
}

impl PhoneNumber {
    /// Parses a phone number; spaces and dashes are ignored.
    ///
    /// # Errors
    /// Neither a mainland mobile nor a landline number with area code.
    pub fn parse(field: &str, raw: &str) -> Parsed<Self> {
        let mut digits: String = raw.trim().chars().filter(|c| *c != ' ' && *c != '-').collect();
        if let Some(rest) = digits.strip_prefix("+86") {
            digits = rest.to_owned();
        } else if digits.len() == 13 && digits.starts_with("861") {
            digits = digits[2..].to_owned();
        }
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let b = digits.as_bytes();
            let mobile = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
            let landline = b[0] == b'0' && b.get(1).is_some_and(|d| *d != b'0') && (10..=12).contains(&b.len());
            if mobile || landline {
                return Ok(Self(digits));
            }
        }
        Err(FieldError::new(
            field,
            "must be a mainland mobile number (11 digits starting 13–19) or a landline with area code (e.g. 023-12345678)",
        ))
    }

    /// The number, digits only.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_check_character() {
        assert!(ResidentId::parse("id", "11010519491231002X").is_ok());
        assert!(ResidentId::parse("id", "11010519491231002x").is_ok());
        let wrong = ResidentId::parse("id", "110105194912310021").unwrap_err();
        assert!(wrong.problem.contains("check character"), "{wrong}");
        let date = ResidentId::parse("id", "110105194902300027").unwrap_err();
        assert!(date.problem.contains("no real date"), "{date}");
        assert!(ResidentId::parse("id", "1101051949123100").is_err());
        assert!(ResidentId::parse("id", "99010519491231002X").is_err());
    }

    #[test]
    fn phone_numbers() {
        for ok in ["13812345678", "+86 138 1234 5678", "023-12345678", "0838-1234567", "8613812345678"] {
            assert!(PhoneNumber::parse("phone", ok).is_ok(), "{ok}");
        }
        for bad in ["", "12345", "12812345678", "138123456789", "000-1234567", "phone"] {
            assert!(PhoneNumber::parse("phone", bad).is_err(), "{bad}");
        }
        assert_eq!(PhoneNumber::parse("p", "+86 138-1234-5678").unwrap().as_str(), "13812345678");
    }

    #[test]
    fn unit_codes_and_subtrees() {
        let district = UnitCode::parse("u", "500116000000").unwrap();
        let street = UnitCode::parse("u", "500116001000").unwrap();
        let village = UnitCode::parse("u", "500116001002").unwrap();
        let grid = UnitCode::parse("u", "50011600100201").unwrap();
        let other = UnitCode::parse("u", "500117001002").unwrap();
        assert_eq!(district.prefix(), "500116");
        assert_eq!(street.prefix(), "500116001");
        assert_eq!(village.prefix(), "500116001002");
        assert!(grid.is_within(&village) && grid.is_within(&street) && grid.is_within(&district));
        assert!(village.is_within(&village));
        assert!(!street.is_within(&village));
        assert!(!other.is_within(&district));
        assert!(UnitCode::parse("u", "50011600100").is_err());
        assert!(UnitCode::parse("u", "990116001002").is_err());
        assert!(UnitCode::parse("u", "500116000002").is_err());
        assert!(UnitCode::parse("u", "50011600100001").is_err());
        assert!(UnitCode::parse("u", "5001160010a2").is_err());
    }

    #[test]
    fn text_is_normalised_and_bounded() {
        // "é" as e + combining acute becomes one precomposed character.
        let name = PersonName::parse("name", " Jose\u{301} ").unwrap();
        assert_eq!(name.as_str(), "Jos\u{e9}");
        assert!(PersonName::parse("name", "张\u{0}三").is_err());
        assert!(PersonName::parse("name", "张\n三").is_err());
        assert!(LongText::parse("d", "第一行\n第二行").is_ok());
        assert!(PersonName::parse("name", &"张".repeat(51)).is_err());
        assert!(PersonName::parse("name", "  ").unwrap_err().problem.contains("required"));
        assert!(ShortText::parse("a", "a\u{202e}b").is_err());
    }

    #[test]
    fn debug_output_masks_personal_data() {
        let shown = format!(
            "{:?} {:?} {:?}",
            PersonName::parse("n", "张小三").unwrap(),
            PhoneNumber::parse("p", "13812345678").unwrap(),
            ResidentId::parse("i", "11010519491231002X").unwrap()
        );
        assert_eq!(shown, r#"PersonName("张*三") PhoneNumber("138****5678") ResidentId("110105********002X")"#);
        assert_eq!(format!("{:?}", ShortText::parse("a", "地址").unwrap()), r#"ShortText("地址")"#);
    }

    #[test]
    fn case_ids_are_stable_per_reference() {
        let r = Ident::parse("ref", "GD2026112300001").unwrap();
        assert_eq!(CaseId::for_external_ref(1, &r), CaseId::for_external_ref(1, &r));
        assert_ne!(CaseId::for_external_ref(1, &r), CaseId::for_external_ref(6, &r));
        let (police_a, police_b) = (Ident::parse("p", "police-a").unwrap(), Ident::parse("p", "police-b").unwrap());
        assert_eq!(CaseId::for_partner_ref(7, &police_a, &r), CaseId::for_partner_ref(7, &police_a, &r));
        assert_ne!(CaseId::for_partner_ref(7, &police_a, &r), CaseId::for_partner_ref(7, &police_b, &r));
        assert_ne!(CaseId::for_partner_ref(7, &police_a, &r), CaseId::for_external_ref(7, &r));
    }
}

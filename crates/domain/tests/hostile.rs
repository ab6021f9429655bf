//! Hostile strings against the parsers and the masking: any input parses to a value or a
//! `FieldError` naming the field, never a panic; masking is total, and a masked phone or ID
//! number never shows the number it masks.

use fengqiao_domain::privacy::{mask_address, mask_free_text, mask_name, mask_phone, mask_resident_id};
use fengqiao_domain::values::{
    CaseId, Category, Ident, LongText, PersonName, PhoneNumber, ResidentId, ShortText, UnitCode,
};
use proptest::prelude::*;

/// Any string, biased towards what breaks parsers: digits, controls, bidi, CJK, combining marks.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9Xx+ \\-]{0,24}",
        "[\\x00-\\x1f\\u{202a}-\\u{202e}\\u{2066}-\\u{2069}e\\u{301}张三区镇街道市县0-9]{0,40}",
    ]
}

proptest! {
    #[test]
    fn parsers_answer_every_input_with_a_value_or_a_field_error(raw in hostile()) {
        let checks: [(&str, Option<String>); 9] = [
            ("a", PersonName::parse("a", &raw).err().map(|e| e.field)),
            ("b", Category::parse("b", &raw).err().map(|e| e.field)),
            ("c", ShortText::parse("c", &raw).err().map(|e| e.field)),
            ("d", LongText::parse("d", &raw).err().map(|e| e.field)),
            ("e", Ident::parse("e", &raw).err().map(|e| e.field)),
            ("f", UnitCode::parse("f", &raw).err().map(|e| e.field)),
            ("g", ResidentId::parse("g", &raw).err().map(|e| e.field)),
            ("h", PhoneNumber::parse("h", &raw).err().map(|e| e.field)),
            ("i", CaseId::parse("i", &raw).err().map(|e| e.field)),
        ];
        for (field, error) in checks {
            if let Some(named) = error {
                prop_assert_eq!(named, field);
            }
        }
        // One-line text never keeps a control or bidi character.
        if let Ok(text) = ShortText::parse("s", &raw) {
            let bad = |c: char| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c);
            prop_assert!(!text.as_str().chars().any(bad), "kept a control character");
        }
    }

    #[test]
    fn masking_is_total_and_hides_the_numbers(raw in hostile(), names in proptest::collection::vec(hostile(), 0..3)) {
        let _ = (mask_name(&raw), mask_address(&raw), mask_free_text(&raw, &names), mask_resident_id(&raw));
        if let Ok(phone) = PhoneNumber::parse("p", &raw) {
            let masked = mask_phone(phone.as_str());
            prop_assert!(!masked.contains(phone.as_str()), "{}", masked);
            prop_assert!(masked.chars().filter(|c| *c == '*').count() >= 3, "{}", masked);
        }
        if let Ok(id) = ResidentId::parse("i", &raw) {
            let masked = mask_resident_id(id.as_str());
            prop_assert!(!masked.contains(&id.as_str()[6..14]), "the birth date shows in {}", masked);
        }
    }
}

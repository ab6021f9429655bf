//! Masking of personal data: party names, phone numbers, resident ID numbers and addresses, as
//! shown to roles that do not need them in full (张*三, 138****5678, 110101********123X).
//!
//! These functions are pure and total: any input, well-formed or not, gives a masked string that
//! reveals no more than the well-formed case would. *Who* sees what in full is decided at the
//! service edge (`fengqiao::privacy`); this module only knows *how* to mask.
//!
//! Free text (descriptions, session records, notes) cannot be masked reliably; [`mask_free_text`]
//! masks what looks like a phone or ID number in it, a best effort on top of keeping such data
//! out of free text in the first place.

use crate::event::{Kind, pb};

/// The masking character.
const MASK: char = '*';

/// Masks a person's name: 张三 → 张*, 张小三 → 张*三, 欧阳小明 → 欧**明; one character → `*`.
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.trim().chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => MASK.to_string(),
        2 => format!("{}{MASK}", chars[0]),
        n => {
            let mut out = String::with_capacity(n * 3);
            out.push(chars[0]);
            out.extend(std::iter::repeat_n(MASK, n - 2));
            out.push(chars[n - 1]);
            out
        }
    }
}

/// Masks a phone number (digits only, as stored): a mobile number keeps its first 3 and last 4
/// digits (138****5678); a landline keeps its area code and last 4 digits (023****1234). Anything
/// else keeps its last 4 characters when it is at least 11 long, and nothing otherwise.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.trim().chars().filter(|c| *c != ' ' && *c != '-').collect();
    let n = digits.len();
    let is_digits = digits.iter().all(char::is_ascii_digit);
    let keep_front = if is_digits && n == 11 && digits[0] == '1' {
        3
    } else if is_digits && (10..=12).contains(&n) && digits[0] == '0' {
        // Area codes: 010 and 02x have three digits, every other one four.
        if matches!(digits[1], '1' | '2') { 3 } else { 4 }
    } else {
        0
    };
    let keep_back = if keep_front > 0 || n >= 11 { 4 } else { 0 };
    masked(&digits, keep_front, keep_back)
}

/// Masks a resident ID number: the first 6 characters (the issuing county) and the last 4 stay,
/// the birth date and sequence are hidden: 110101********123X. A value that is not 18 characters
/// long is masked entirely.
pub fn mask_resident_id(id: &str) -> String {
    let chars: Vec<char> = id.trim().chars().collect();
    if chars.len() == 18 { masked(&chars, 6, 4) } else { MASK.to_string().repeat(chars.len().min(18)) }
}

/// `chars` with all but the first `front` and last `back` replaced by [`MASK`].
fn masked(chars: &[char], front: usize, back: usize) -> String {
    let n = chars.len();
    chars.iter().enumerate().map(|(i, c)| if i < front || i + back >= n { *c } else { MASK }).collect()
}

/// Markers of the county level (and of the city, when no county is named).
const COUNTY: &[&str] = &["区", "县", "旗"];
const CITY: &[&str] = &["市", "州", "盟"];
/// Markers of the township level (street, town, township).
const TOWNSHIP: &[&str] = &["街道", "镇", "乡", "苏木"];

/// Characters before 区 that make it no district: 社区, 小区, 园区, 片区, 校区, 景区, 厂区, 街区.
const NOT_DISTRICT: &str = "社小园片校景厂街";

/// End (byte index) of the first occurrence of any marker in `text` at or after `from`.
fn first_end(text: &str, from: usize, markers: &[&str]) -> Option<usize> {
    markers
        .iter()
        .filter_map(|m| {
            text[from..]
                .match_indices(m)
                .map(|(i, _)| from + i)
                .find(|&at| *m != "区" || text[..at].chars().next_back().is_none_or(|c| !NOT_DISTRICT.contains(c)))
                .map(|at| at + m.len())
        })
        .min()
}

/// Truncates an address after its street or township (街道/镇/乡), or after its county or district
/// when none is named, and marks the cut: 重庆市江津区几江街道艾坪山社区3栋 → 重庆市江津区几江街道****.
/// An address with neither keeps at most its first 3 characters.
pub fn mask_address(address: &str) -> String {
    let text = address.trim();
    if text.is_empty() {
        return String::new();
    }
    let county = first_end(text, 0, COUNTY).or_else(|| first_end(text, 0, CITY));
    let cut = match county {
        Some(c) => first_end(text, c, TOWNSHIP).unwrap_or(c),
        None => {
            first_end(text, 0, TOWNSHIP).unwrap_or_else(|| text.char_indices().nth(3).map_or(text.len(), |(i, _)| i))
        }
    };
    if cut >= text.len() {
        // Nothing after the kept part, which may itself be the detail: keep its first 3 characters.
        let short: String = text.chars().take(3).collect();
        return format!("{short}{}", MASK.to_string().repeat(4));
    }
    format!("{}{}", &text[..cut], MASK.to_string().repeat(4))
}

/// Masks personal data inside free text: every occurrence of a known party name (`names`), and
/// what looks like a phone or ID number: runs of 11 digits starting with 1 (mobile), of 10 to 12
/// digits starting with 0 (landline, also written with one dash after the area code), and of 17
/// digits followed by a digit or X (resident ID).
pub fn mask_free_text(text: &str, names: &[String]) -> String {
    let mut text = text.to_owned();
    // Longest first, so 张小三 is masked whole before 张三 could match inside another name.
    let mut names: Vec<&str> = names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()).collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
    for name in names {
        text = text.replace(name, &mask_name(name));
    }
    mask_numbers(&text)
}

fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_ascii_alphanumeric()) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // A run of digits, allowing one dash after a leading 0xx(x) area code, and a final X.
        let mut j = i;
        let mut dash = false;
        while j < chars.len() {
            let c = chars[j];
            if c.is_ascii_digit() {
                j += 1;
            } else if c == '-' && !dash && chars[i] == '0' && (3..=4).contains(&(j - i)) {
                dash = true;
                j += 1;
            } else {
                break;
            }
        }
        if j - i == 17 && !dash && chars.get(j).is_some_and(|c| matches!(c, 'X' | 'x')) {
            j += 1;
        }
        let run: String = chars[i..j].iter().collect();
        let digits = run.chars().filter(char::is_ascii_alphanumeric).count();
        let boundary = chars.get(j).is_none_or(|c| !c.is_ascii_alphanumeric());
        let phone_like = (digits == 11 && chars[i] == '1') || ((10..=12).contains(&digits) && chars[i] == '0');
        if boundary && digits == 18 && !dash {
            out.push_str(&mask_resident_id(&run));
        } else if boundary && phone_like {
            out.push_str(&mask_phone(&run));
        } else {
            out.push_str(&run);
        }
        i = j;
    }
    out
}

/// Masks a party: name, phone and ID number; the party's role in the dispute stays.
pub fn mask_party(party: &mut pb::Party) {
    party.name = mask_name(&party.name);
    party.phone = mask_phone(&party.phone);
    party.resident_id = mask_resident_id(&party.resident_id);
}

fn mask_names(names: &mut [String]) {
    for n in names {
        *n = mask_name(n);
    }
}

/// Masks every piece of personal data an event carries; `names` are the case's party names, also
/// masked wherever free text mentions them. Exhaustive on purpose: a new event kind must be
/// placed here, so nobody adds a field holding personal data without deciding how it is shown.
pub fn mask_event(kind: &mut Kind, names: &[String]) {
    let mask_text = |text: &mut String| *text = mask_free_text(text, names);
    match kind {
        Kind::CaseRegistered(e) => {
            let names: Vec<String> = names.iter().chain(e.parties.iter().map(|p| &p.name)).cloned().collect();
            e.description = mask_free_text(&e.description, &names);
            e.parties.iter_mut().for_each(mask_party);
            e.address = mask_address(&e.address);
        }
        Kind::SessionHeld(e) => {
            mask_names(&mut e.attendees);
            mask_text(&mut e.record);
        }
        Kind::CaseSettled(e) => {
            if let Some(a) = e.agreement.as_mut() {
                let all: Vec<String> = names.iter().chain(&a.party_names).cloned().collect();
                let mask_text = |text: &mut String| *text = mask_free_text(text, &all);
                mask_names(&mut a.party_names);
                // The mediator signs as a public official; the parties' signatures are masked.
                let mediator = a.mediator_name.clone();
                for s in &mut a.signed_by {
                    if *s != mediator {
                        *s = mask_name(s);
                    }
                }
                mask_text(&mut a.facts);
                mask_text(&mut a.points_in_dispute);
                mask_text(&mut a.terms);
            }
        }
        Kind::CaseDispatched(e) => mask_text(&mut e.note),
        Kind::CaseReturned(e) => mask_text(&mut e.reason),
        Kind::SessionScheduled(e) => mask_text(&mut e.place),
        Kind::ArrivedOnSite(e) => mask_text(&mut e.note),
        Kind::ProgressReported(e) => mask_text(&mut e.note),
        Kind::ClockPaused(e) => mask_text(&mut e.reason),
        Kind::ClockResumed(e) => mask_text(&mut e.note),
        Kind::ExtensionGranted(e) => mask_text(&mut e.reason),
        Kind::ReferralMade(e) => mask_text(&mut e.reason),
        Kind::ReferralDeclined(e) => mask_text(&mut e.reason),
        Kind::ReferralReturned(e) => mask_text(&mut e.reason),
        Kind::ReferralConcluded(e) => mask_text(&mut e.summary),
        Kind::PerformanceRecorded(e) => mask_text(&mut e.note),
        Kind::JudicialConfirmationRuled(e) => mask_text(&mut e.reason),
        Kind::MediationFailed(e) => {
            mask_text(&mut e.reason);
            mask_text(&mut e.advice_note);
        }
        Kind::CaseEscalated(e) => mask_text(&mut e.reason),
        Kind::CaseClosed(e) => mask_text(&mut e.summary),
        Kind::FollowUpRecorded(e) => mask_text(&mut e.note),
        Kind::CaseReopened(e) => mask_text(&mut e.reason),
        Kind::CaseMerged(e) => mask_text(&mut e.reason),
        Kind::PartyContactCorrected(e) => {
            mask_text(&mut e.reason);
            e.party_name = mask_name(&e.party_name);
            e.old_phone = mask_phone(&e.old_phone);
            e.new_phone = mask_phone(&e.new_phone);
            e.old_resident_id = mask_resident_id(&e.old_resident_id);
            e.new_resident_id = mask_resident_id(&e.new_resident_id);
        }
        // Identifiers, codes, enums and times only.
        Kind::CaseAccepted(_)
        | Kind::MediatorsAssigned(_)
        | Kind::ReferralAccepted(_)
        | Kind::JudicialConfirmationRequested(_)
        | Kind::JudicialConfirmationAccepted(_)
        | Kind::DeadlineWarned(_)
        | Kind::DeadlineBreached(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("张小三"), "张*三");
        assert_eq!(mask_name("欧阳小明"), "欧**明");
        assert_eq!(mask_name("李"), "*");
        assert_eq!(mask_name(""), "");
        assert_eq!(mask_name("Jose"), "J**e");
    }

    #[test]
    fn phones() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("02347521234"), "023****1234");
        assert_eq!(mask_phone("023-47521234"), "023****1234");
        assert_eq!(mask_phone("01012345678"), "010****5678");
        assert_eq!(mask_phone("08381234567"), "0838***4567");
        assert_eq!(mask_phone(""), "");
        // Not a known shape: nothing but the last 4 of a long value survives.
        assert_eq!(mask_phone("12345"), "*****");
        assert_eq!(mask_phone("abcdefghijkl"), "********ijkl");
    }

    #[test]
    fn resident_ids() {
        assert_eq!(mask_resident_id("11010519491231002X"), "110105********002X");
        assert_eq!(mask_resident_id(""), "");
        assert_eq!(mask_resident_id("1234"), "****");
    }

    #[test]
    fn addresses() {
        assert_eq!(mask_address("重庆市江津区几江街道艾坪山社区3栋"), "重庆市江津区几江街道****");
        assert_eq!(mask_address("江津区白沙镇石坝村5组"), "江津区白沙镇****");
        assert_eq!(mask_address("重庆市江津区艾坪山社区3栋"), "重庆市江津区****");
        assert_eq!(mask_address("艾坪山社区3栋2单元"), "艾坪山****");
        assert_eq!(mask_address("江津区"), "江津区****");
        assert_eq!(mask_address(""), "");
    }

    #[test]
    fn free_text() {
        let none: &[String] = &[];
        assert_eq!(mask_free_text("请拨13812345678联系", none), "请拨138****5678联系");
        assert_eq!(mask_free_text("座机023-47521234。", none), "座机023****1234。");
        assert_eq!(mask_free_text("身份证11010519491231002X核实", none), "身份证110105********002X核实");
        assert_eq!(mask_free_text("赔偿12000元，2026年5月", none), "赔偿12000元，2026年5月");
        assert_eq!(mask_free_text("order GD2026112300001", none), "order GD2026112300001");
        let names = ["张三".to_owned(), "张小三".to_owned()];
        assert_eq!(mask_free_text("张小三与张三协商", &names), "张*三与张*协商");
    }

    #[test]
    fn registration_is_masked_throughout() {
        let mut kind = Kind::CaseRegistered(pb::CaseRegistered {
            parties: vec![pb::Party {
                name: "张三".into(),
                role: 1,
                phone: "13812345678".into(),
                resident_id: "11010519491231002X".into(),
            }],
            address: "重庆市江津区几江街道艾坪山社区3栋".into(),
            description: "张三（13812345678）反映漏水".into(),
            ..Default::default()
        });
        mask_event(&mut kind, &[]);
        let Kind::CaseRegistered(e) = kind else { unreachable!() };
        assert_eq!(e.parties[0].name, "张*");
        assert_eq!(e.parties[0].phone, "138****5678");
        assert_eq!(e.parties[0].resident_id, "110105********002X");
        assert_eq!(e.parties[0].role, 1);
        assert_eq!(e.address, "重庆市江津区几江街道****");
        assert_eq!(e.description, "张*（138****5678）反映漏水");
    }
}

//! Every way a calendar file is rejected.

use fengqiao_calendar::{Calendar, CalendarError};
use jiff::civil::Weekday;

const VALID: &str = r#"
format = 1
jurisdiction = "test"
name = "Test"
time_zone = "Asia/Shanghai"
year = 2026
version = "2026-1"
source = "test fixture"

[working_hours]
periods = [["09:00", "12:00"], ["13:30", "17:30"]]

[[holidays]]
name = "春节"
dates = ["2026-02-16", "2026-02-17"]

[[make_up_working_days]]
date = "2026-02-14"
for = "春节"
"#;

fn parse_with(from: &str, to: &str) -> Result<Calendar, CalendarError> {
    assert!(VALID.contains(from), "fixture lacks {from:?}");
    Calendar::parse(&VALID.replacen(from, to, 1))
}

fn err(from: &str, to: &str) -> CalendarError {
    match parse_with(from, to) {
        Ok(_) => panic!("replacing {from:?} by {to:?} should be rejected"),
        Err(e) => e,
    }
}

#[test]
fn fixture_is_valid() {
    let cal = Calendar::parse(VALID).expect("fixture parses");
    assert_eq!(cal.jurisdiction(), "test");
    // Optional fields and 24:00 as an end are accepted.
    let cal = parse_with(r#"periods = [["09:00", "12:00"], ["13:30", "17:30"]]"#, r#"periods = [["00:00", "24:00"]]"#)
        .expect("24h calendar parses");
    assert_eq!(cal.year(2026).expect("loaded").working_hours().periods().len(), 1);
    // Touching periods are allowed.
    parse_with(
        r#"periods = [["09:00", "12:00"], ["13:30", "17:30"]]"#,
        r#"periods = [["09:00", "12:00"], ["12:00", "17:30"]]"#,
    )
    .expect("touching periods parse");
}

#[test]
fn not_toml() {
    assert!(matches!(Calendar::parse("this is = = not toml"), Err(CalendarError::Toml { .. })));
}

#[test]
fn missing_field() {
    let e = err("version = \"2026-1\"\n", "");
    match e {
        CalendarError::Toml { message } => assert!(message.contains("version"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unknown_field_is_rejected() {
    let e = err("version = \"2026-1\"\n", "version = \"2026-1\"\nvesion = \"typo\"\n");
    match e {
        CalendarError::Toml { message } => assert!(message.contains("vesion"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn unsupported_or_missing_format() {
    assert_eq!(err("format = 1", "format = 2"), CalendarError::UnsupportedFormat { found: "2".into(), supported: 1 });
    assert!(matches!(err("format = 1\n", ""), CalendarError::UnsupportedFormat { .. }));
    assert!(matches!(err("format = 1", "format = \"1\""), CalendarError::UnsupportedFormat { .. }));
    // A newer format with new fields is reported as a format problem.
    assert!(matches!(err("format = 1", "format = 2\nnew_field = true"), CalendarError::UnsupportedFormat { .. }));
}

#[test]
fn bad_dates() {
    for bad in ["2026-2-16", "2026-02-30", "20260216", "2026/02/16", "", "2026-02-16T00:00"] {
        let e = err("\"2026-02-16\"", &format!("{bad:?}"));
        assert!(matches!(&e, CalendarError::BadDate { value, .. } if value == bad), "{bad:?}: {e:?}");
    }
    assert!(matches!(err("date = \"2026-02-14\"", "date = \"2026-13-14\""), CalendarError::BadDate { .. }));
    assert!(matches!(
        err("version = \"2026-1\"", "version = \"2026-1\"\npublished = \"yesterday\""),
        CalendarError::BadDate { .. }
    ));
}

#[test]
fn toml_native_dates_are_not_accepted() {
    assert!(matches!(err("\"2026-02-16\"", "2026-02-16"), CalendarError::Toml { .. }));
}

#[test]
fn make_up_day_that_is_not_a_weekend() {
    assert_eq!(
        err("date = \"2026-02-14\"", "date = \"2026-02-13\""),
        CalendarError::MakeUpDayNotWeekend { date: jiff::civil::date(2026, 2, 13), weekday: Weekday::Friday }
    );
}

#[test]
fn date_both_holiday_and_make_up_day() {
    // 2026-02-15 is a Sunday, so only the clash with the holiday is at fault.
    let text = VALID.replacen("\"2026-02-16\", \"2026-02-17\"", "\"2026-02-15\", \"2026-02-16\"", 1).replacen(
        "date = \"2026-02-14\"",
        "date = \"2026-02-15\"",
        1,
    );
    assert_eq!(
        Calendar::parse(&text).err(),
        Some(CalendarError::HolidayAndMakeUpDay { date: jiff::civil::date(2026, 2, 15), holiday: "春节".into() })
    );
}

#[test]
fn dates_outside_the_year() {
    assert!(matches!(err("\"2026-02-16\"", "\"2025-12-31\""), CalendarError::DateOutsideYear { year: 2026, .. }));
    assert!(matches!(
        err("date = \"2026-02-14\"", "date = \"2027-01-02\""),
        CalendarError::DateOutsideYear { year: 2026, .. }
    ));
}

#[test]
fn duplicate_dates_and_names() {
    assert!(matches!(err("\"2026-02-17\"", "\"2026-02-16\""), CalendarError::DuplicateDate { .. }));
    // The same date in two holidays.
    let two = VALID.replacen(
        "[[make_up_working_days]]",
        "[[holidays]]\nname = \"其他\"\ndates = [\"2026-02-17\"]\n\n[[make_up_working_days]]",
        1,
    );
    match Calendar::parse(&two) {
        Err(CalendarError::DuplicateDate { first, second, .. }) => {
            assert!(first.contains("春节") && second.contains("其他"), "{first} / {second}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Two holidays with one name.
    let same = VALID.replacen(
        "[[make_up_working_days]]",
        "[[holidays]]\nname = \"春节\"\ndates = [\"2026-02-18\"]\n\n[[make_up_working_days]]",
        1,
    );
    assert!(matches!(Calendar::parse(&same), Err(CalendarError::DuplicateHolidayName { .. })));
    // The same make-up day twice.
    let twice = format!("{VALID}\n[[make_up_working_days]]\ndate = \"2026-02-14\"\nfor = \"春节\"\n");
    assert!(matches!(Calendar::parse(&twice), Err(CalendarError::DuplicateDate { .. })));
}

#[test]
fn empty_holiday_and_unknown_holiday_reference() {
    assert_eq!(
        err("dates = [\"2026-02-16\", \"2026-02-17\"]", "dates = []"),
        CalendarError::EmptyHoliday { name: "春节".into() }
    );
    assert!(matches!(err("for = \"春节\"", "for = \"元旦\""), CalendarError::UnknownHoliday { .. }));
}

#[test]
fn working_hours_periods() {
    let periods = r#"periods = [["09:00", "12:00"], ["13:30", "17:30"]]"#;
    assert_eq!(err(periods, "periods = []"), CalendarError::NoWorkingHours);
    assert_eq!(
        err(periods, r#"periods = [["13:30", "17:30"], ["09:00", "12:00"]]"#),
        CalendarError::UnsortedPeriods { index: 1 }
    );
    assert_eq!(
        err(periods, r#"periods = [["09:00", "14:00"], ["13:30", "17:30"]]"#),
        CalendarError::OverlappingPeriods { index: 1 }
    );
    assert!(matches!(err(periods, r#"periods = [["12:00", "09:00"]]"#), CalendarError::EmptyPeriod { index: 0, .. }));
    assert!(matches!(err(periods, r#"periods = [["09:00", "09:00"]]"#), CalendarError::EmptyPeriod { index: 0, .. }));
    for bad in ["9:00", "09:60", "25:00", "24:30", "09h00", "09:00:00", ""] {
        let e = err(periods, &format!(r#"periods = [["{bad}", "23:00"]]"#));
        assert!(matches!(&e, CalendarError::BadTime { index: 0, value } if value == bad), "{bad:?}: {e:?}");
    }
    // 24:00 only as an end.
    assert!(matches!(err(periods, r#"periods = [["24:00", "24:00"]]"#), CalendarError::BadTime { index: 0, .. }));
    // A period needs exactly two times.
    assert!(matches!(err(periods, r#"periods = [["09:00"]]"#), CalendarError::Toml { .. }));
}

#[test]
fn unknown_time_zone() {
    for tz in ["Asia/Beijing", "CST", "+08:00", "Mars/Olympus_Mons"] {
        let e = err("\"Asia/Shanghai\"", &format!("{tz:?}"));
        assert!(matches!(&e, CalendarError::UnknownTimeZone { name, .. } if name == tz), "{tz}: {e:?}");
    }
}

#[test]
fn jurisdiction_and_empty_fields() {
    assert!(matches!(
        err("jurisdiction = \"test\"", "jurisdiction = \"Test Unit\""),
        CalendarError::InvalidJurisdiction { .. }
    ));
    assert!(matches!(
        err("jurisdiction = \"test\"", "jurisdiction = \"-x\""),
        CalendarError::InvalidJurisdiction { .. }
    ));
    parse_with("jurisdiction = \"test\"", "jurisdiction = \"cn-33.hz_1\"").expect("valid id");
    assert_eq!(
        err("jurisdiction = \"test\"", "jurisdiction = \" \""),
        CalendarError::EmptyField { field: "jurisdiction" }
    );
    assert_eq!(err("source = \"test fixture\"", "source = \"\""), CalendarError::EmptyField { field: "source" });
    assert_eq!(err("version = \"2026-1\"", "version = \"\""), CalendarError::EmptyField { field: "version" });
}

#[test]
fn year_out_of_range() {
    assert!(matches!(err("year = 2026", "year = 100000"), CalendarError::YearOutOfRange { year: 100000 }));
}

#[test]
fn merge_errors() {
    let base = Calendar::parse(VALID).expect("fixture parses");
    let other_j = Calendar::parse(&VALID.replacen("\"test\"", "\"other\"", 1)).expect("parses");
    assert!(matches!(base.clone().merge(other_j), Err(CalendarError::JurisdictionMismatch { .. })));
    let other_tz = Calendar::parse(
        &VALID
            .replacen("Asia/Shanghai", "Asia/Urumqi", 1)
            .replacen("year = 2026", "year = 2027", 1)
            .replace("2026-", "2027-")
            .replacen("2027-02-14", "2027-02-13", 1),
    )
    .expect("parses");
    assert!(matches!(base.clone().merge(other_tz), Err(CalendarError::TimeZoneMismatch { .. })));
    assert!(matches!(base.clone().merge(base.clone()), Err(CalendarError::DuplicateYear { year: 2026, .. })));
    assert_eq!(Calendar::from_files(&[]).err(), Some(CalendarError::NoFiles));
    match Calendar::from_files(&[VALID, "format = 1"]) {
        Err(CalendarError::InFile { index: 1, source }) => {
            assert!(matches!(*source, CalendarError::Toml { .. }));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn error_messages_name_the_problem() {
    let e = err("date = \"2026-02-14\"", "date = \"2026-02-13\"");
    assert_eq!(
        e.to_string(),
        "make-up working day 2026-02-13 is a Friday; a make-up working day must be a Saturday or Sunday"
    );
    let e = err(
        r#"periods = [["09:00", "12:00"], ["13:30", "17:30"]]"#,
        r#"periods = [["09:00", "14:00"], ["13:30", "17:30"]]"#,
    );
    assert_eq!(e.to_string(), "working_hours.periods[1] overlaps periods[0]");
}

//! Arithmetic is done in each calendar's local civil time: Asia/Shanghai
//! (no daylight saving) against Europe/Berlin (daylight saving changes on
//! 2026-03-29 and 2026-10-25).

mod common;

use common::{berlin, cn, show};
use fengqiao_calendar::Calendar;
use jiff::{SignedDuration, Timestamp};

const BERLIN_2026: &str = r#"
format = 1
jurisdiction = "test-de"
name = "Test calendar with daylight saving"
time_zone = "Europe/Berlin"
year = 2026
version = "test"
source = "test fixture"

[working_hours]
periods = [["08:00", "12:00"], ["13:00", "17:00"]]

[[holidays]]
name = "Ostern"
dates = ["2026-04-03", "2026-04-06"]
"#;

/// Every day is 00:00-24:00; the two DST Sundays are make-up working days.
const BERLIN_24H_2026: &str = r#"
format = 1
jurisdiction = "test-de-24h"
name = "Round the clock, to expose daylight-saving days"
time_zone = "Europe/Berlin"
year = 2026
version = "test"
source = "test fixture"

[working_hours]
periods = [["00:00", "24:00"]]

[[holidays]]
name = "none"
dates = ["2026-12-25"]

[[make_up_working_days]]
date = "2026-03-29"
for = "none"

[[make_up_working_days]]
date = "2026-10-25"
for = "none"
"#;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

#[test]
fn same_instant_different_calendars() {
    let cn = cn();
    let de = Calendar::parse(BERLIN_2026).expect("fixture parses");
    // Friday 2026-03-27 15:30 UTC: 23:30 in Shanghai, 16:30 in Berlin (CET).
    let t = ts("2026-03-27T15:30:00Z");
    let cn_due = cn.add_working_hours(t, hours(2)).expect("in range");
    assert_eq!(show(cn_due, "Asia/Shanghai"), "2026-03-30 11:00");
    assert_eq!(cn_due, ts("2026-03-30T03:00:00Z"));
    // Berlin: 30 min on Friday, 1h30 on Monday from 08:00, now CEST (+02:00).
    let de_due = de.add_working_hours(t, hours(2)).expect("in range");
    assert_eq!(show(de_due, "Europe/Berlin"), "2026-03-30 09:30");
    assert_eq!(de_due, ts("2026-03-30T07:30:00Z"));
    // Had the period been taken at Friday's offset (+01:00), it would be 08:30Z.
    assert_ne!(de_due, ts("2026-03-30T08:30:00Z"));

    // Local dates differ too: 2026-02-13 20:00 UTC is Saturday 04:00 in
    // Shanghai (a make-up working day) but Friday 21:00 in Berlin.
    let t = ts("2026-02-13T20:00:00Z");
    assert_eq!(cn.local_date(t), common::d("2026-02-14"));
    assert_eq!(de.local_date(t), common::d("2026-02-13"));
    let cn_due = cn.add_working_days(t, 1).expect("in range");
    assert_eq!(show(cn_due, "Asia/Shanghai"), "2026-02-24 17:30");
    let de_due = de.add_working_days(t, 1).expect("in range");
    assert_eq!(show(de_due, "Europe/Berlin"), "2026-02-16 17:00");
    assert_eq!(show(cn.add_working_days(t, 0).expect("in range"), "Asia/Shanghai"), "2026-02-14 17:30");
}

#[test]
fn berlin_across_spring_forward() {
    let de = Calendar::parse(BERLIN_2026).expect("fixture parses");
    // Friday 08:00 CET to Monday 17:00 CEST: two full 8-hour days.
    let a = berlin("2026-03-27 08:00");
    let b = berlin("2026-03-30 17:00");
    assert_eq!(de.working_time_between(a, b), hours(16));
    // Monday's periods are 08:00-12:00 and 13:00-17:00 local, at +02:00.
    let intervals = de.working_intervals(common::d("2026-03-30"));
    assert_eq!(
        intervals,
        vec![
            (ts("2026-03-30T06:00:00Z"), ts("2026-03-30T10:00:00Z")),
            (ts("2026-03-30T11:00:00Z"), ts("2026-03-30T15:00:00Z")),
        ]
    );
    // One working day from Friday: Monday's close of business, 17:00 CEST.
    let due = de.add_working_days(a, 1).expect("in range");
    assert_eq!(due, ts("2026-03-30T15:00:00Z"));
    // Holidays in that calendar: Good Friday and Easter Monday.
    let due = de.add_working_days(berlin("2026-04-02 10:00"), 1).expect("in range");
    assert_eq!(show(due, "Europe/Berlin"), "2026-04-07 17:00");
}

#[test]
fn berlin_across_fall_back() {
    let de = Calendar::parse(BERLIN_2026).expect("fixture parses");
    // Friday 2026-10-23 16:00 CEST + 2h: 1h Friday, 1h Monday from 08:00 CET.
    let due = de.add_working_hours(berlin("2026-10-23 16:00"), hours(2)).expect("in range");
    assert_eq!(show(due, "Europe/Berlin"), "2026-10-26 09:00");
    assert_eq!(due, ts("2026-10-26T08:00:00Z"));
}

#[test]
fn daylight_saving_days_have_23_and_25_working_hours() {
    let cal = Calendar::parse(BERLIN_24H_2026).expect("fixture parses");
    let spring = (berlin("2026-03-29 00:00"), berlin("2026-03-30 00:00"));
    assert_eq!(cal.working_time_between(spring.0, spring.1), hours(23));
    let autumn = (berlin("2026-10-25 00:00"), berlin("2026-10-26 00:00"));
    assert_eq!(cal.working_time_between(autumn.0, autumn.1), hours(25));
    // 3 working hours from midnight on the spring day is 04:00 local
    // (02:00-03:00 does not exist).
    let due = cal.add_working_hours(spring.0, hours(3)).expect("in range");
    assert_eq!(show(due, "Europe/Berlin"), "2026-03-29 04:00");
    // On the autumn day, 3 hours from midnight is the second 02:00 (CET).
    let due = cal.add_working_hours(autumn.0, hours(3)).expect("in range");
    assert_eq!(due, ts("2026-10-25T01:00:00Z"));
    // Round trip over both days.
    let due = cal.add_working_hours(berlin("2026-03-28 12:00"), hours(30)).expect("in range");
    assert_eq!(cal.working_time_between(berlin("2026-03-28 12:00"), due), hours(30));
}

#[test]
fn shanghai_has_no_daylight_saving() {
    let cn = cn();
    // Every working day of 2026 has exactly 7 working hours.
    let mut date = common::d("2026-01-01");
    while date.year() == 2026 {
        let total: SignedDuration = cn.working_intervals(date).iter().map(|(s, e)| s.duration_until(*e)).sum();
        let expected = if cn.is_working_day(date) { hours(7) } else { SignedDuration::ZERO };
        assert_eq!(total, expected, "{date}");
        date = date.tomorrow().expect("in range");
    }
}

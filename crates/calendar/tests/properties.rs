//! Property tests over the shipped national calendars (2025 and 2026 merged,
//! with instants reaching into the unloaded years either side) and a
//! daylight-saving test calendar.

mod common;

use std::sync::LazyLock;

use fengqiao_calendar::{Calendar, Clock, ClockUnit};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

static CN: LazyLock<Calendar> = LazyLock::new(common::cn);

static DE: LazyLock<Calendar> = LazyLock::new(|| {
    Calendar::parse(
        r#"
format = 1
jurisdiction = "test-de"
name = "Test calendar with daylight saving"
time_zone = "Europe/Berlin"
year = 2026
version = "test"
source = "test fixture"
[working_hours]
periods = [["01:30", "02:30"], ["08:00", "12:00"], ["13:00", "17:00"]]
[[holidays]]
name = "x"
dates = ["2026-04-03"]
[[make_up_working_days]]
date = "2026-03-29"
for = "x"
[[make_up_working_days]]
date = "2026-10-25"
for = "x"
"#,
    )
    .expect("fixture parses")
});

/// Instants from 2024-07-01 to 2027-07-01 UTC (covers the unloaded years'
/// fallback on both sides), at one-second resolution.
fn instant() -> impl Strategy<Value = Timestamp> {
    (1_719_792_000i64..1_814_400_000i64).prop_map(|s| Timestamp::from_second(s).expect("in range"))
}

/// Instants around the 2026 daylight-saving changes in Europe/Berlin.
fn instant_2026() -> impl Strategy<Value = Timestamp> {
    (1_767_225_600i64..1_798_761_600i64).prop_map(|s| Timestamp::from_second(s).expect("in range"))
}

/// Up to ~60 working days of working time, at one-second resolution.
fn working_amount() -> impl Strategy<Value = SignedDuration> {
    (0i64..60 * 7 * 3600).prop_map(SignedDuration::from_secs)
}

fn calendars() -> impl Strategy<Value = &'static Calendar> {
    prop_oneof![Just(&*CN), Just(&*DE)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn adding_working_hours_then_measuring_gives_them_back(
        cal in calendars(), start in instant(), amount in working_amount(), back in any::<bool>()
    ) {
        let amount = if back { -amount } else { amount };
        let end = cal.add_working_hours(start, amount).expect("in range");
        prop_assert_eq!(cal.working_time_between(start, end), amount);
        // The result is the earliest (latest, going back) such instant: it
        // lies in working time unless the amount is zero.
        if !amount.is_zero() {
            let probe = if back { end } else { end - SignedDuration::from_nanos(1) };
            prop_assert!(cal.is_working_time(probe));
        }
    }

    #[test]
    fn working_time_between_is_additive(
        cal in calendars(), a in instant(), b in instant(), c in instant()
    ) {
        prop_assert_eq!(
            cal.working_time_between(a, b) + cal.working_time_between(b, c),
            cal.working_time_between(a, c)
        );
    }

    #[test]
    fn add_working_days_is_monotonic(
        cal in calendars(), a in instant(), b in instant(), n in 0u32..40, m in 0u32..40
    ) {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        let (n, m) = if n <= m { (n, m) } else { (m, n) };
        let ra = cal.add_working_days(a, n).expect("in range");
        let rb = cal.add_working_days(b, n).expect("in range");
        prop_assert!(ra <= rb, "start {a} -> {ra}, later start {b} -> {rb}");
        let rm = cal.add_working_days(a, m).expect("in range");
        prop_assert!(ra <= rm);
        // Strictly increasing in n from 1 on. (0 working days after close
        // of business is the next working day's close, the same as 1.)
        if n >= 1 && n < m {
            prop_assert!(ra < rm);
        }
    }

    #[test]
    fn add_working_days_lands_on_close_of_a_working_day(
        cal in calendars(), start in instant(), n in 0u32..40
    ) {
        let due = cal.add_working_days(start, n).expect("in range");
        let day = cal.local_date(due);
        prop_assert!(cal.is_working_day(day), "{due} is on {day}");
        let close = cal.working_intervals(day).last().map(|&(_, e)| e);
        prop_assert_eq!(Some(due), close);
        prop_assert!(due >= start);
        if n >= 1 {
            prop_assert!(day > cal.local_date(start));
            // Exactly n working days strictly after the start's local date.
            let mut count = 0;
            let mut d = cal.local_date(start);
            while d < day {
                d = d.tomorrow().expect("in range");
                if cal.is_working_day(d) {
                    count += 1;
                }
            }
            prop_assert_eq!(count, n);
        }
    }

    #[test]
    fn pauses_shift_a_working_hours_deadline_by_the_paused_working_time(
        cal in calendars(),
        start in instant(),
        amount in (1i64..30 * 7 * 60).prop_map(SignedDuration::from_mins),
        cuts in proptest::collection::vec(0.0f64..1.0, 0..6),
    ) {
        let due = cal.add_working_hours(start, amount).expect("in range");
        // Disjoint pauses between start and the unpaused deadline.
        let span = start.duration_until(due).as_secs_f64();
        let mut points: Vec<Timestamp> = cuts
            .iter()
            .map(|f| start + SignedDuration::from_secs_f64(span * f))
            .collect();
        points.sort();
        let pauses: Vec<(Timestamp, Timestamp)> =
            points.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let paused: SignedDuration = pauses
            .iter()
            .map(|&(a, b)| cal.working_time_between(a, b))
            .sum();
        let shifted = cal
            .shift_by_pauses(due, &pauses, ClockUnit::WorkingHours)
            .expect("in range");
        prop_assert_eq!(cal.working_time_between(due, shifted), paused);
        // Equivalently: running (unpaused) working time from start to the
        // shifted deadline is the clock's amount.
        let with = cal
            .deadline_with_pauses(start, Clock::WorkingHours(amount), &pauses)
            .expect("in range");
        prop_assert_eq!(with, shifted);
        prop_assert_eq!(cal.working_time_between(start, with) - paused, amount);
        // Elapsed clocks shift by the plain length of the pauses.
        let plain: SignedDuration = pauses.iter().map(|&(a, b)| a.duration_until(b)).sum();
        let shifted_e = cal.shift_by_pauses(due, &pauses, ClockUnit::Elapsed).expect("in range");
        prop_assert_eq!(due.duration_until(shifted_e), plain);
    }

    #[test]
    fn pauses_shift_a_working_days_deadline_by_whole_days(
        cal in calendars(),
        start in instant(),
        n in 1u32..20,
        cuts in proptest::collection::vec(0.0f64..1.0, 0..6),
    ) {
        let due = cal.add_working_days(start, n).expect("in range");
        let span = start.duration_until(due).as_secs_f64();
        let mut points: Vec<Timestamp> = cuts
            .iter()
            .map(|f| start + SignedDuration::from_secs_f64(span * f))
            .collect();
        points.sort();
        let pauses: Vec<(Timestamp, Timestamp)> =
            points.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        let paused: SignedDuration = pauses
            .iter()
            .map(|&(a, b)| cal.working_time_between(a, b))
            .sum();
        let shifted = cal
            .shift_by_pauses(due, &pauses, ClockUnit::WorkingDays)
            .expect("in range");
        // Still a close of business, at least the paused working time later,
        // and less than one working day more than that.
        let day = cal.local_date(shifted);
        prop_assert!(cal.is_working_day(day));
        prop_assert_eq!(Some(shifted), cal.working_intervals(day).last().map(|&(_, e)| e));
        let moved = cal.working_time_between(due, shifted);
        prop_assert!(moved >= paused);
        let longest_day: SignedDuration = cal
            .working_intervals(day)
            .iter()
            .map(|&(s, e)| s.duration_until(e))
            .sum();
        prop_assert!(moved < paused + longest_day.max(SignedDuration::from_hours(8)));
        if paused.is_zero() {
            prop_assert_eq!(shifted, due);
        }
    }

    #[test]
    fn daylight_saving_round_trip(start in instant_2026(), amount in working_amount()) {
        let end = DE.add_working_hours(start, amount).expect("in range");
        prop_assert_eq!(DE.working_time_between(start, end), amount);
    }
}

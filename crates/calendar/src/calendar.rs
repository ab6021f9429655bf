//! [`Calendar`]: one jurisdiction's working-day calendar over one or more
//! years, and the working-time arithmetic on it.

use std::collections::BTreeMap;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::clock::{Clock, ClockUnit};
use crate::error::{CalendarError, DeadlineError};
use crate::format::{WorkingHours, YearCalendar};

/// What kind of day a date is in a [`Calendar`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind<'a> {
    /// An ordinary Monday–Friday working day.
    Working,
    /// A Saturday or Sunday that is a working day (调休上班日).
    MakeUpWorkingDay {
        /// The holiday it makes up for.
        for_holiday: &'a str,
    },
    /// An ordinary Saturday or Sunday.
    Weekend,
    /// A rest day of a published holiday (whatever its weekday).
    Holiday {
        /// The holiday's name.
        name: &'a str,
    },
}

impl DayKind<'_> {
    /// True for [`DayKind::Working`] and [`DayKind::MakeUpWorkingDay`].
    pub fn is_working(&self) -> bool {
        matches!(self, DayKind::Working | DayKind::MakeUpWorkingDay { .. })
    }
}

/// A jurisdiction's working-day calendar: holidays, make-up working days and
/// working hours for every loaded year, in one time zone.
///
/// Built from one or more calendar files ([`Calendar::parse`],
/// [`Calendar::from_files`], [`Calendar::merge`]). For a date in a year that
/// no loaded file covers, the calendar falls back to plain rules: Monday to
/// Friday are working days, Saturday and Sunday are not, and the working
/// hours are those of the latest loaded year before it (or, for a date
/// before every loaded year, of the earliest loaded year). Use
/// [`Calendar::covers`] to detect that a deadline relied on the fallback.
///
/// All arithmetic is done in the calendar's local civil time: working-hours
/// periods are local wall-clock times, converted to instants day by day, so a
/// daylight-saving change is handled correctly. Working time is real elapsed
/// time inside those periods.
#[derive(Debug, Clone)]
pub struct Calendar {
    jurisdiction: String,
    time_zone_name: String,
    time_zone: TimeZone,
    years: BTreeMap<i16, YearCalendar>,
}

impl Calendar {
    // -- construction -----------------------------------------------------

    /// Parses one calendar file (TOML, format 1) into a one-year calendar.
    ///
    /// # Errors
    ///
    /// Returns a [`CalendarError`] when the text is not valid TOML or does
    /// not match the format (missing/unknown fields, wrong types), the format
    /// version is unsupported, a date is malformed or outside the file's
    /// `year`, a date is listed twice, a make-up working day is not a
    /// Saturday or Sunday or is also a holiday or names an unknown holiday,
    /// the working-hours periods are empty, malformed, unsorted or
    /// overlapping, the time zone is unknown, or the jurisdiction id is
    /// malformed.
    pub fn parse(toml: &str) -> Result<Calendar, CalendarError> {
        let year = YearCalendar::parse(toml)?;
        let mut years = BTreeMap::new();
        let jurisdiction = year.jurisdiction.clone();
        let time_zone_name = year.time_zone_name.clone();
        let time_zone = year.time_zone.clone();
        years.insert(year.year(), year);
        Ok(Calendar { jurisdiction, time_zone_name, time_zone, years })
    }

    /// Parses several calendar files of one jurisdiction (typically one per
    /// year) and merges them into one calendar.
    ///
    /// # Errors
    ///
    /// [`CalendarError::NoFiles`] for an empty slice;
    /// [`CalendarError::InFile`] wrapping the error of the first file that
    /// does not parse (see [`Calendar::parse`]); or the errors of
    /// [`Calendar::merge`].
    pub fn from_files(files: &[&str]) -> Result<Calendar, CalendarError> {
        let mut merged: Option<Calendar> = None;
        for (index, text) in files.iter().enumerate() {
            let cal = Calendar::parse(text).map_err(|e| CalendarError::InFile { index, source: Box::new(e) })?;
            merged = Some(match merged {
                None => cal,
                Some(acc) => acc.merge(cal)?,
            });
        }
        merged.ok_or(CalendarError::NoFiles)
    }

    /// Merges two calendars of the same jurisdiction covering different
    /// years into one.
    ///
    /// # Errors
    ///
    /// [`CalendarError::JurisdictionMismatch`] if the jurisdictions differ,
    /// [`CalendarError::TimeZoneMismatch`] if the time zones differ,
    /// [`CalendarError::DuplicateYear`] if both cover the same year.
    pub fn merge(mut self, other: Calendar) -> Result<Calendar, CalendarError> {
        if self.jurisdiction != other.jurisdiction {
            return Err(CalendarError::JurisdictionMismatch { first: self.jurisdiction, second: other.jurisdiction });
        }
        if self.time_zone_name != other.time_zone_name {
            return Err(CalendarError::TimeZoneMismatch {
                jurisdiction: self.jurisdiction,
                first: self.time_zone_name,
                second: other.time_zone_name,
            });
        }
        if let Some(&year) = other.years.keys().find(|y| self.years.contains_key(y)) {
            return Err(CalendarError::DuplicateYear { jurisdiction: self.jurisdiction, year });
        }
        self.years.extend(other.years);
        Ok(self)
    }

    // -- metadata ----------------------------------------------------------

    /// The jurisdiction id, e.g. `cn`.
    pub fn jurisdiction(&self) -> &str {
        &self.jurisdiction
    }

    /// The human-readable name (of the latest loaded year's file).
    pub fn name(&self) -> &str {
        self.years.values().next_back().map_or(self.jurisdiction.as_str(), |y| y.name.as_str())
    }

    /// The calendar's time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The IANA name of the calendar's time zone, e.g. `Asia/Shanghai`.
    pub fn time_zone_name(&self) -> &str {
        &self.time_zone_name
    }

    /// The loaded years, in ascending order.
    pub fn years(&self) -> impl Iterator<Item = &YearCalendar> {
        self.years.values()
    }

    /// The loaded data for `year`, if any.
    pub fn year(&self, year: i16) -> Option<&YearCalendar> {
        self.years.get(&year)
    }

    /// True when `date`'s year is covered by a loaded file; false when the
    /// calendar falls back to plain weekday rules for it.
    pub fn covers(&self, date: Date) -> bool {
        self.years.contains_key(&date.year())
    }

    // -- days --------------------------------------------------------------

    /// What kind of day `date` is.
    pub fn day_kind(&self, date: Date) -> DayKind<'_> {
        if let Some(y) = self.years.get(&date.year()) {
            if let Some(m) = y.make_up_day_on(date) {
                return DayKind::MakeUpWorkingDay { for_holiday: &m.for_holiday };
            }
            if let Some(h) = y.holiday_on(date) {
                return DayKind::Holiday { name: &h.name };
            }
        }
        match date.weekday() {
            Weekday::Saturday | Weekday::Sunday => DayKind::Weekend,
            _ => DayKind::Working,
        }
    }

    /// True when `date` is a working day: a make-up working day, or a
    /// Monday–Friday that is not a holiday.
    pub fn is_working_day(&self, date: Date) -> bool {
        self.day_kind(date).is_working()
    }

    /// The working hours that apply on `date` (see the type-level docs for
    /// years without a file). Applies to working days only.
    pub fn working_hours_for(&self, date: Date) -> &WorkingHours {
        let y = self.years.range(..=date.year()).next_back().or_else(|| self.years.iter().next()).map(|(_, y)| y);
        match y {
            Some(y) => y.working_hours(),
            // Unreachable: a Calendar always holds at least one year.
            None => &FALLBACK_HOURS,
        }
    }

    /// The local civil date of instant `t` in the calendar's time zone.
    pub fn local_date(&self, t: Timestamp) -> Date {
        self.time_zone.to_datetime(t).date()
    }

    /// The first working day strictly after `date`.
    ///
    /// # Errors
    ///
    /// [`DeadlineError::OutOfRange`] if there is none before the end of the
    /// representable range.
    pub fn next_working_day(&self, date: Date) -> Result<Date, DeadlineError> {
        let mut d = date;
        loop {
            d = d.tomorrow().map_err(|_| DeadlineError::OutOfRange)?;
            if self.is_working_day(d) {
                return Ok(d);
            }
        }
    }

    /// True when instant `t` lies inside a working-hours period of a working
    /// day.
    pub fn is_working_time(&self, t: Timestamp) -> bool {
        let d = self.local_date(t);
        [d.yesterday().ok(), Some(d), d.tomorrow().ok()]
            .into_iter()
            .flatten()
            .flat_map(|d| self.intervals(d))
            .any(|(s, e)| s <= t && t < e)
    }

    /// The working-time intervals of `date` as instants, `[start, end)`, in
    /// order; empty for a day that is not a working day.
    ///
    /// Each period's local start and end are converted with the
    /// "compatible" rule (a time in a daylight-saving gap moves forward, a
    /// time in a fold takes the earlier instant); intervals are clamped to
    /// the day and to each other so that they never overlap.
    pub fn working_intervals(&self, date: Date) -> Vec<(Timestamp, Timestamp)> {
        self.intervals(date)
    }

    // -- arithmetic ----------------------------------------------------------

    /// The deadline `n` working days after `start`.
    ///
    /// Rule (as in "n个工作日内", following 《民法典》 art. 201 and 203: the
    /// day the period starts is not counted, and where there are business
    /// hours the period ends when business stops): let `D` be `start`'s local
    /// date. Count working days strictly after `D`; the deadline is the end
    /// of the last working-hours period (close of business) of the `n`-th.
    /// Where or at what time on `D` the clock starts does not matter, and `D`
    /// itself need not be a working day.
    ///
    /// `n == 0` means "by close of business today": the close of business of
    /// `D` if `D` is a working day and `start` is not after it, otherwise of
    /// the next working day. (Same as [`Calendar::close_of_business`].)
    ///
    /// Example: from Friday 2026-02-13 (any time), 3 working days →
    /// Sat 02-14 (make-up working day, 1), 02-15..02-23 holiday, Tue 02-24
    /// (2), Wed 02-25 (3) → 2026-02-25 17:30 Asia/Shanghai.
    ///
    /// # Errors
    ///
    /// [`DeadlineError::OutOfRange`] if the result is not representable.
    pub fn add_working_days(&self, start: Timestamp, n: u32) -> Result<Timestamp, DeadlineError> {
        if n == 0 {
            return self.close_of_business(start);
        }
        let mut date = self.local_date(start);
        // Each working day needs a calendar day: fail fast on absurd n.
        let days_left = date.until(Date::MAX).map_or(0, |span| span.get_days());
        if i64::from(n) > i64::from(days_left) {
            return Err(DeadlineError::OutOfRange);
        }
        let mut counted = 0u32;
        loop {
            date = date.tomorrow().map_err(|_| DeadlineError::OutOfRange)?;
            if self.is_working_day(date) {
                counted += 1;
                if counted == n {
                    return self.close_of(date);
                }
            }
        }
    }

    /// The first close of business (end of a working day's last working
    /// period) at or after `t`.
    ///
    /// # Errors
    ///
    /// [`DeadlineError::OutOfRange`] if the result is not representable.
    pub fn close_of_business(&self, t: Timestamp) -> Result<Timestamp, DeadlineError> {
        let local = self.local_date(t);
        let mut date = local.yesterday().unwrap_or(local);
        loop {
            if self.is_working_day(date)
                && let Ok(close) = self.close_of(date)
                && close >= t
            {
                return Ok(close);
            }
            date = date.tomorrow().map_err(|_| DeadlineError::OutOfRange)?;
        }
    }

    /// The instant at which `amount` of working time has elapsed after
    /// `start`, counting only time inside working-hours periods of working
    /// days.
    ///
    /// - `amount == 0` returns `start` unchanged.
    /// - A positive amount returns the earliest instant `t > start` with
    ///   `working_time_between(start, t) == amount`; if the amount runs out
    ///   exactly at the end of a period, the result is that end (e.g. 12:00),
    ///   not the start of the next period.
    /// - A negative amount counts backwards: the latest instant `t < start`
    ///   with `working_time_between(start, t) == amount` (e.g. "remind one
    ///   working hour before the deadline").
    ///
    /// A start outside working hours first waits for the next period.
    ///
    /// # Errors
    ///
    /// [`DeadlineError::OutOfRange`] if the result is not representable.
    pub fn add_working_hours(&self, start: Timestamp, amount: SignedDuration) -> Result<Timestamp, DeadlineError> {
        // Working time never exceeds elapsed time: fail fast when even plain
        // elapsed time would leave the representable range.
        if start.checked_add(amount).is_err() {
            return Err(DeadlineError::OutOfRange);
        }
        if amount.is_zero() {
            Ok(start)
        } else if amount.is_negative() {
            self.working_backward(start, amount.abs())
        } else {
            self.working_forward(start, amount)
        }
    }

    /// Working time elapsed between `a` and `b`: the total length of the
    /// parts of `[a, b)` that lie inside working-hours periods of working
    /// days. Negative when `b < a` (`working_time_between(b, a)` negated).
    pub fn working_time_between(&self, a: Timestamp, b: Timestamp) -> SignedDuration {
        if b < a {
            return -self.working_time_between(b, a);
        }
        let (first, last) = (self.local_date(a), self.local_date(b));
        let mut date = first.yesterday().unwrap_or(first);
        let last = last.tomorrow().unwrap_or(last);
        let mut total = SignedDuration::ZERO;
        loop {
            for (s, e) in self.intervals(date) {
                let (s, e) = (s.max(a), e.min(b));
                if s < e {
                    total += s.duration_until(e);
                }
            }
            if date >= last {
                return total;
            }
            match date.tomorrow() {
                Ok(d) => date = d,
                Err(_) => return total,
            }
        }
    }

    /// Plain elapsed time: `start + amount`, regardless of the calendar (for
    /// "30 days" or "1 minute" clocks counted in real time).
    ///
    /// # Errors
    ///
    /// [`DeadlineError::OutOfRange`] if the result is not representable.
    pub fn add_calendar_duration(&self, start: Timestamp, amount: SignedDuration) -> Result<Timestamp, DeadlineError> {
        start.checked_add(amount).map_err(|_| DeadlineError::OutOfRange)
    }

    /// The deadline of a clock started at `start`, without pauses: dispatches
    /// to [`Calendar::add_calendar_duration`],
    /// [`Calendar::add_working_hours`] or [`Calendar::add_working_days`].
    ///
    /// # Errors
    ///
    /// [`DeadlineError::OutOfRange`] if the result is not representable.
    pub fn deadline(&self, start: Timestamp, clock: Clock) -> Result<Timestamp, DeadlineError> {
        match clock {
            Clock::Elapsed(d) => self.add_calendar_duration(start, d),
            Clock::WorkingHours(d) => self.add_working_hours(start, d),
            Clock::WorkingDays(n) => self.add_working_days(start, n),
        }
    }

    /// Moves `deadline` later by the time the clock was paused.
    ///
    /// `pauses` are `[from, to)` intervals during which the clock was
    /// stopped; they may be unsorted or overlap (overlaps are counted once),
    /// and empty or reversed intervals are ignored. The caller passes only
    /// pauses after the clock started (or uses
    /// [`Calendar::deadline_with_pauses`], which clips them).
    ///
    /// Pauses are applied in time order to a running deadline `d`
    /// (initially `deadline`). A pause whose `from` is at or after `d` does
    /// not move it (the clock had already run out), nor does any later
    /// pause. Otherwise the pause's length is measured in the clock's unit
    /// and `d` is moved by it:
    ///
    /// - [`ClockUnit::Elapsed`]: `d += to - from`.
    /// - [`ClockUnit::WorkingHours`]: `d = add_working_hours(d,
    ///   working_time_between(from, to))` — the paused *working* time; a
    ///   pause overnight or over a weekend moves nothing.
    /// - [`ClockUnit::WorkingDays`]: the paused working time is added as for
    ///   working hours (accumulated over all pauses), then the result is
    ///   rounded up to the close of business of the working day it falls on
    ///   ([`Calendar::close_of_business`]). A part-day pause thus costs at
    ///   most one extra working day, rounding in favour of the party the
    ///   clock runs against.
    ///
    /// # Errors
    ///
    /// [`DeadlineError::OutOfRange`] if the result is not representable.
    pub fn shift_by_pauses(
        &self,
        deadline: Timestamp,
        pauses: &[(Timestamp, Timestamp)],
        unit: ClockUnit,
    ) -> Result<Timestamp, DeadlineError> {
        let pauses = normalize_pauses(pauses);
        match unit {
            ClockUnit::Elapsed => {
                let mut d = deadline;
                for (from, to) in pauses {
                    if from >= d {
                        break;
                    }
                    d = self.add_calendar_duration(d, from.duration_until(to))?;
                }
                Ok(d)
            }
            ClockUnit::WorkingHours => {
                let mut d = deadline;
                for (from, to) in pauses {
                    if from >= d {
                        break;
                    }
                    d = self.add_working_hours(d, self.working_time_between(from, to))?;
                }
                Ok(d)
            }
            ClockUnit::WorkingDays => {
                let mut raw = deadline;
                let mut rounded = deadline;
                for (from, to) in pauses {
                    if from >= rounded {
                        break;
                    }
                    raw = self.add_working_hours(raw, self.working_time_between(from, to))?;
                    rounded = self.close_of_business(raw)?;
                }
                Ok(rounded)
            }
        }
    }

    /// The deadline of a clock started at `start` that was paused during
    /// `pauses`: [`Calendar::deadline`] followed by
    /// [`Calendar::shift_by_pauses`] with the pauses clipped to start no
    /// earlier than `start`.
    ///
    /// A pause still open (the clock is paused now) has no deadline; pass it
    /// closed at "now" to get the deadline if the clock resumed now.
    ///
    /// # Errors
    ///
    /// [`DeadlineError::OutOfRange`] if the result is not representable.
    pub fn deadline_with_pauses(
        &self,
        start: Timestamp,
        clock: Clock,
        pauses: &[(Timestamp, Timestamp)],
    ) -> Result<Timestamp, DeadlineError> {
        let clipped: Vec<(Timestamp, Timestamp)> = pauses.iter().map(|&(from, to)| (from.max(start), to)).collect();
        let d = self.deadline(start, clock)?;
        self.shift_by_pauses(d, &clipped, clock.unit())
    }

    // -- internals ---------------------------------------------------------

    fn close_of(&self, date: Date) -> Result<Timestamp, DeadlineError> {
        if let Some(&(_, end)) = self.intervals(date).last() {
            return Ok(end);
        }
        // No non-empty interval (only possible when a daylight-saving gap
        // swallows the whole working day): use the nominal end.
        let hours = self.working_hours_for(date);
        let end = hours.periods().last().map_or(0, crate::format::Period::end_minutes);
        self.civil_to_instant(date, end).ok_or(DeadlineError::OutOfRange)
    }

    /// The instant of local civil time `minutes` after midnight of `date`
    /// (`minutes` may be 1440, the next midnight), by the compatible rule.
    fn civil_to_instant(&self, date: Date, minutes: u16) -> Option<Timestamp> {
        let dt: DateTime =
            date.to_datetime(Time::midnight()).checked_add(SignedDuration::from_mins(i64::from(minutes))).ok()?;
        self.time_zone.to_ambiguous_timestamp(dt).compatible().ok()
    }

    /// Non-empty, non-overlapping working intervals of `date`, in order.
    fn intervals(&self, date: Date) -> Vec<(Timestamp, Timestamp)> {
        if !self.is_working_day(date) {
            return Vec::new();
        }
        let Some(day_start) = self.civil_to_instant(date, 0) else {
            return Vec::new();
        };
        let day_end = self.civil_to_instant(date, 24 * 60).unwrap_or(Timestamp::MAX);
        let periods = self.working_hours_for(date).periods();
        let mut out = Vec::with_capacity(periods.len());
        let mut cursor = day_start;
        for p in periods {
            let (Some(s), Some(e)) =
                (self.civil_to_instant(date, p.start_minutes()), self.civil_to_instant(date, p.end_minutes()))
            else {
                continue;
            };
            let s = s.max(cursor);
            let e = e.min(day_end);
            if s < e {
                out.push((s, e));
                cursor = e;
            }
        }
        out
    }

    fn working_forward(&self, start: Timestamp, amount: SignedDuration) -> Result<Timestamp, DeadlineError> {
        let mut remaining = amount;
        let local = self.local_date(start);
        let mut date = local.yesterday().unwrap_or(local);
        loop {
            for (s, e) in self.intervals(date) {
                if e <= start {
                    continue;
                }
                let from = s.max(start);
                let available = from.duration_until(e);
                if remaining <= available {
                    return from.checked_add(remaining).map_err(|_| DeadlineError::OutOfRange);
                }
                remaining -= available;
            }
            date = date.tomorrow().map_err(|_| DeadlineError::OutOfRange)?;
        }
    }

    fn working_backward(&self, start: Timestamp, amount: SignedDuration) -> Result<Timestamp, DeadlineError> {
        let mut remaining = amount;
        let local = self.local_date(start);
        let mut date = local.tomorrow().unwrap_or(local);
        loop {
            for (s, e) in self.intervals(date).into_iter().rev() {
                if s >= start {
                    continue;
                }
                let to = e.min(start);
                let available = s.duration_until(to);
                if remaining <= available {
                    return to.checked_sub(remaining).map_err(|_| DeadlineError::OutOfRange);
                }
                remaining -= available;
            }
            date = date.yesterday().map_err(|_| DeadlineError::OutOfRange)?;
        }
    }
}

/// Sorted, merged, non-empty pause intervals.
fn normalize_pauses(pauses: &[(Timestamp, Timestamp)]) -> Vec<(Timestamp, Timestamp)> {
    let mut v: Vec<(Timestamp, Timestamp)> = pauses.iter().copied().filter(|(a, b)| a < b).collect();
    v.sort();
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

static FALLBACK_HOURS: std::sync::LazyLock<WorkingHours> = std::sync::LazyLock::new(WorkingHours::fallback);

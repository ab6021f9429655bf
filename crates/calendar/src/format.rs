//! The TOML file format (version 1) and its validation.
//!
//! See `docs/calendars.md` for the field-by-field description.

use std::collections::BTreeMap;
use std::fmt;

use jiff::SignedDuration;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::error::CalendarError;

/// The only calendar file format version this build reads.
pub const FORMAT_VERSION: u32 = 1;

const MINUTES_PER_DAY: u16 = 24 * 60;

// ---------------------------------------------------------------------------
// Raw (as written) structures.
// ---------------------------------------------------------------------------

/// Only the `format` field, read first so that a file of a newer format is
/// reported as such rather than as "unknown field".
#[derive(Deserialize)]
struct RawHeader {
    format: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[allow(dead_code)] // checked through RawHeader
    format: u32,
    jurisdiction: String,
    name: String,
    time_zone: String,
    year: i64,
    version: String,
    source: String,
    #[serde(default)]
    source_url: Option<String>,
    #[serde(default)]
    published: Option<String>,
    #[serde(default)]
    notes: Vec<String>,
    working_hours: RawWorkingHours,
    #[serde(default)]
    holidays: Vec<RawHoliday>,
    #[serde(default)]
    make_up_working_days: Vec<RawMakeUpDay>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkingHours {
    periods: Vec<[String; 2]>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    name: String,
    dates: Vec<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    unconfirmed: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMakeUpDay {
    date: String,
    #[serde(rename = "for")]
    for_holiday: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    unconfirmed: bool,
}

// ---------------------------------------------------------------------------
// Validated structures.
// ---------------------------------------------------------------------------

/// One working-hours period of a working day, in local civil time: from
/// `start` (inclusive) to `end` (exclusive), e.g. 09:00–12:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Period {
    start_min: u16,
    end_min: u16,
}

impl Period {
    /// Local civil time of the start of the period, as the time since local
    /// midnight.
    pub fn start(&self) -> SignedDuration {
        SignedDuration::from_mins(i64::from(self.start_min))
    }

    /// Local civil time of the end of the period, as the time since local
    /// midnight (at most 24 hours, meaning the following midnight).
    pub fn end(&self) -> SignedDuration {
        SignedDuration::from_mins(i64::from(self.end_min))
    }

    /// The nominal length of the period (local civil time; the real length
    /// differs on a day with a daylight-saving change inside the period).
    pub fn length(&self) -> SignedDuration {
        SignedDuration::from_mins(i64::from(self.end_min - self.start_min))
    }

    pub(crate) fn start_minutes(&self) -> u16 {
        self.start_min
    }

    pub(crate) fn end_minutes(&self) -> u16 {
        self.end_min
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_min / 60,
            self.start_min % 60,
            self.end_min / 60,
            self.end_min % 60
        )
    }
}

/// The working-hours periods of every working day of one calendar year:
/// non-empty, sorted, non-overlapping.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkingHours {
    periods: Vec<Period>,
}

impl WorkingHours {
    /// The periods in time order (never empty).
    pub fn periods(&self) -> &[Period] {
        &self.periods
    }

    /// The default used only if a calendar somehow has no year loaded:
    /// 09:00-12:00 and 13:30-17:30.
    pub(crate) fn fallback() -> WorkingHours {
        WorkingHours {
            periods: vec![
                Period { start_min: 9 * 60, end_min: 12 * 60 },
                Period { start_min: 13 * 60 + 30, end_min: 17 * 60 + 30 },
            ],
        }
    }

    /// Nominal working time of one working day (sum of period lengths).
    pub fn daily_total(&self) -> SignedDuration {
        SignedDuration::from_mins(self.periods.iter().map(|p| i64::from(p.end_min - p.start_min)).sum())
    }
}

/// A named holiday (放假调休 period) as published, with all its rest dates.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holiday {
    /// Name as in the notice, e.g. `春节`.
    pub name: String,
    /// Every rest date of the holiday (statutory days and swapped rest days,
    /// including those that fall on a weekend), sorted.
    pub dates: Vec<Date>,
    /// Free-text note.
    pub note: Option<String>,
    /// True when the dates could not be confirmed from the source.
    pub unconfirmed: bool,
}

/// A make-up working day (调休上班日): a Saturday or Sunday that is a working
/// day.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MakeUpDay {
    /// The date (a Saturday or Sunday).
    pub date: Date,
    /// Name of the holiday it makes up for.
    pub for_holiday: String,
    /// Free-text note.
    pub note: Option<String>,
    /// True when the date could not be confirmed from the source.
    pub unconfirmed: bool,
}

/// One year of one jurisdiction's calendar, as loaded from one file.
#[derive(Debug, Clone)]
pub struct YearCalendar {
    pub(crate) jurisdiction: String,
    pub(crate) name: String,
    pub(crate) time_zone_name: String,
    pub(crate) time_zone: TimeZone,
    year: i16,
    version: String,
    source: String,
    source_url: Option<String>,
    published: Option<Date>,
    notes: Vec<String>,
    working_hours: WorkingHours,
    holidays: Vec<Holiday>,
    make_up_days: Vec<MakeUpDay>,
    /// date -> index into `holidays`
    holiday_index: BTreeMap<Date, usize>,
    /// date -> index into `make_up_days`
    make_up_index: BTreeMap<Date, usize>,
}

impl YearCalendar {
    /// The calendar year this file covers.
    pub fn year(&self) -> i16 {
        self.year
    }

    /// The human-readable name of the calendar, e.g. `全国 (国务院办公厅)`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data version, e.g. `2026-1`; bumped when a notice is amended.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The document the dates come from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Where the source was read, if given.
    pub fn source_url(&self) -> Option<&str> {
        self.source_url.as_deref()
    }

    /// The date the source was published, if given.
    pub fn published(&self) -> Option<Date> {
        self.published
    }

    /// Free-text notes (e.g. what could not be confirmed).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Working-hours periods of every working day of this year.
    pub fn working_hours(&self) -> &WorkingHours {
        &self.working_hours
    }

    /// The named holidays, in file order.
    pub fn holidays(&self) -> &[Holiday] {
        &self.holidays
    }

    /// The make-up working days, sorted by date.
    pub fn make_up_days(&self) -> &[MakeUpDay] {
        &self.make_up_days
    }

    /// The holiday that `date` belongs to, if any.
    pub fn holiday_on(&self, date: Date) -> Option<&Holiday> {
        self.holiday_index.get(&date).and_then(|&i| self.holidays.get(i))
    }

    /// The make-up working day on `date`, if any.
    pub fn make_up_day_on(&self, date: Date) -> Option<&MakeUpDay> {
        self.make_up_index.get(&date).and_then(|&i| self.make_up_days.get(i))
    }

    /// Dates (holiday dates and make-up days) marked `unconfirmed`, sorted.
    /// They are applied like any other date; callers may want to warn.
    pub fn unconfirmed_dates(&self) -> Vec<Date> {
        let mut dates: Vec<Date> = self
            .holidays
            .iter()
            .filter(|h| h.unconfirmed)
            .flat_map(|h| h.dates.iter().copied())
            .chain(self.make_up_days.iter().filter(|m| m.unconfirmed).map(|m| m.date))
            .collect();
        dates.sort();
        dates
    }

    /// Parses and validates one calendar file.
    pub(crate) fn parse(text: &str) -> Result<YearCalendar, CalendarError> {
        let header: RawHeader = toml::from_str(text).map_err(toml_error)?;
        match header.format {
            Some(toml::Value::Integer(v)) if v == i64::from(FORMAT_VERSION) => {}
            Some(other) => {
                return Err(CalendarError::UnsupportedFormat { found: other.to_string(), supported: FORMAT_VERSION });
            }
            None => {
                return Err(CalendarError::UnsupportedFormat {
                    found: "missing".to_owned(),
                    supported: FORMAT_VERSION,
                });
            }
        }
        let raw: RawFile = toml::from_str(text).map_err(toml_error)?;
        validate(raw)
    }
}

fn toml_error(e: toml::de::Error) -> CalendarError {
    CalendarError::Toml { message: e.to_string().trim_end().to_owned() }
}

fn non_empty(field: &'static str, value: String) -> Result<String, CalendarError> {
    let trimmed = value.trim();
    if trimmed.is_empty() { Err(CalendarError::EmptyField { field }) } else { Ok(trimmed.to_owned()) }
}

fn valid_jurisdiction(id: &str) -> bool {
    let mut chars = id.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

/// Parses a strict `YYYY-MM-DD` date.
pub(crate) fn parse_date(context: &str, value: &str) -> Result<Date, CalendarError> {
    let bad = |reason: &str| CalendarError::BadDate {
        context: context.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let b = value.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(bad("expected YYYY-MM-DD"));
    }
    value.parse::<Date>().map_err(|e| bad(&e.to_string()))
}

/// Parses `HH:MM` into minutes since midnight; `24:00` is accepted (the
/// caller decides whether it is allowed where it appears).
fn parse_time(index: usize, value: &str) -> Result<u16, CalendarError> {
    let bad = || CalendarError::BadTime { index, value: value.to_owned() };
    let b = value.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return Err(bad());
    }
    let digits = [b[0], b[1], b[3], b[4]];
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let d = |c: u8| u16::from(c - b'0');
    let hour = d(b[0]) * 10 + d(b[1]);
    let minute = d(b[3]) * 10 + d(b[4]);
    if minute > 59 || hour > 24 || (hour == 24 && minute != 0) {
        return Err(bad());
    }
    Ok(hour * 60 + minute)
}

fn parse_working_hours(raw: RawWorkingHours) -> Result<WorkingHours, CalendarError> {
    if raw.periods.is_empty() {
        return Err(CalendarError::NoWorkingHours);
    }
    let mut periods: Vec<Period> = Vec::with_capacity(raw.periods.len());
    for (index, [start_s, end_s]) in raw.periods.iter().enumerate() {
        let start = parse_time(index, start_s)?;
        if start == MINUTES_PER_DAY {
            return Err(CalendarError::BadTime { index, value: start_s.clone() });
        }
        let end = parse_time(index, end_s)?;
        if end <= start {
            return Err(CalendarError::EmptyPeriod { index, start: start_s.clone(), end: end_s.clone() });
        }
        if let Some(prev) = periods.last() {
            if start < prev.start_min {
                return Err(CalendarError::UnsortedPeriods { index });
            }
            if start < prev.end_min {
                return Err(CalendarError::OverlappingPeriods { index });
            }
        }
        periods.push(Period { start_min: start, end_min: end });
    }
    Ok(WorkingHours { periods })
}

fn validate(raw: RawFile) -> Result<YearCalendar, CalendarError> {
    let jurisdiction = non_empty("jurisdiction", raw.jurisdiction)?;
    if !valid_jurisdiction(&jurisdiction) {
        return Err(CalendarError::InvalidJurisdiction { id: jurisdiction });
    }
    let name = non_empty("name", raw.name)?;
    let version = non_empty("version", raw.version)?;
    let source = non_empty("source", raw.source)?;
    let time_zone_name = non_empty("time_zone", raw.time_zone)?;
    let time_zone = TimeZone::get(&time_zone_name)
        .map_err(|e| CalendarError::UnknownTimeZone { name: time_zone_name.clone(), reason: e.to_string() })?;
    let year = i16::try_from(raw.year)
        .ok()
        .filter(|y| (-9998..=9998).contains(y))
        .ok_or(CalendarError::YearOutOfRange { year: raw.year })?;
    let published = raw.published.as_deref().map(|p| parse_date("published", p)).transpose()?;
    let working_hours = parse_working_hours(raw.working_hours)?;

    // Holidays.
    let mut holidays: Vec<Holiday> = Vec::with_capacity(raw.holidays.len());
    let mut holiday_index: BTreeMap<Date, usize> = BTreeMap::new();
    for raw_h in raw.holidays {
        let hname = non_empty("holidays.name", raw_h.name)?;
        if holidays.iter().any(|h| h.name == hname) {
            return Err(CalendarError::DuplicateHolidayName { name: hname });
        }
        if raw_h.dates.is_empty() {
            return Err(CalendarError::EmptyHoliday { name: hname });
        }
        let context = format!("holiday {hname:?}");
        let mut dates = Vec::with_capacity(raw_h.dates.len());
        for text in &raw_h.dates {
            let date = parse_date(&context, text)?;
            if date.year() != year {
                return Err(CalendarError::DateOutsideYear { context, date, year });
            }
            if let Some(&other) = holiday_index.get(&date) {
                let first = holidays.get(other).map_or_else(|| context.clone(), |h| format!("holiday {:?}", h.name));
                return Err(CalendarError::DuplicateDate { date, first, second: context });
            }
            holiday_index.insert(date, holidays.len());
            dates.push(date);
        }
        dates.sort();
        holidays.push(Holiday { name: hname, dates, note: raw_h.note, unconfirmed: raw_h.unconfirmed });
    }

    // Make-up working days.
    let mut make_up_days: Vec<MakeUpDay> = Vec::with_capacity(raw.make_up_working_days.len());
    for raw_m in raw.make_up_working_days {
        let date = parse_date("make_up_working_days.date", &raw_m.date)?;
        let context = format!("make-up working day {date}");
        if date.year() != year {
            return Err(CalendarError::DateOutsideYear { context, date, year });
        }
        if let Some(h) = holiday_index.get(&date).and_then(|&i| holidays.get(i)) {
            return Err(CalendarError::HolidayAndMakeUpDay { date, holiday: h.name.clone() });
        }
        let weekday = date.weekday();
        if !matches!(weekday, Weekday::Saturday | Weekday::Sunday) {
            return Err(CalendarError::MakeUpDayNotWeekend { date, weekday });
        }
        if make_up_days.iter().any(|m| m.date == date) {
            return Err(CalendarError::DuplicateDate { date, first: context.clone(), second: context });
        }
        let for_holiday = raw_m.for_holiday.trim().to_owned();
        if !holidays.iter().any(|h| h.name == for_holiday) {
            return Err(CalendarError::UnknownHoliday { date, name: for_holiday });
        }
        make_up_days.push(MakeUpDay { date, for_holiday, note: raw_m.note, unconfirmed: raw_m.unconfirmed });
    }
    make_up_days.sort_by_key(|m| m.date);
    let make_up_index = make_up_days.iter().enumerate().map(|(i, m)| (m.date, i)).collect();

    Ok(YearCalendar {
        jurisdiction,
        name,
        time_zone_name,
        time_zone,
        year,
        version,
        source,
        source_url: raw.source_url,
        published,
        notes: raw.notes,
        working_hours,
        holidays,
        make_up_days,
        holiday_index,
        make_up_index,
    })
}

//! Error types: [`CalendarError`] for loading calendar files and
//! [`DeadlineError`] for deadline arithmetic.

use jiff::civil::{Date, Weekday};

/// Why a calendar file (or a set of files) could not be loaded.
///
/// Every variant names the offending field or date so that an operator can
/// fix the file without reading code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    /// The text is not TOML, a required field is missing, a field has the
    /// wrong type, or an unknown field is present. The message comes from the
    /// TOML parser and includes the line and column.
    #[error("calendar file does not parse: {message}")]
    Toml {
        /// The parser's message.
        message: String,
    },

    /// The `format` field is missing or names a version this build does not
    /// read.
    #[error("unsupported calendar format {found}; this build reads format {supported}")]
    UnsupportedFormat {
        /// The value found (`"missing"` if absent).
        found: String,
        /// The only version this build reads.
        supported: u32,
    },

    /// A required text field is empty (or only whitespace).
    #[error("field `{field}` must not be empty")]
    EmptyField {
        /// The field name.
        field: &'static str,
    },

    /// The `jurisdiction` id has characters other than lowercase ASCII
    /// letters, digits, `-`, `_` and `.`, or does not start with a letter or
    /// digit.
    #[error(
        "invalid jurisdiction id {id:?}: use lowercase ASCII letters, digits, '-', '_' or '.', starting with a letter or digit"
    )]
    InvalidJurisdiction {
        /// The id as written.
        id: String,
    },

    /// The `time_zone` is not an IANA time zone name known to the bundled
    /// time zone database.
    #[error("unknown time zone {name:?}: {reason}")]
    UnknownTimeZone {
        /// The name as written.
        name: String,
        /// The time zone database's message.
        reason: String,
    },

    /// The `year` is outside the range of years that can be represented.
    #[error("year {year} is out of range")]
    YearOutOfRange {
        /// The year as written.
        year: i64,
    },

    /// A date is not of the form `YYYY-MM-DD` or is not a real date.
    #[error("{context}: invalid date {value:?}: {reason}")]
    BadDate {
        /// Where the date was found (e.g. `holiday "春节"`).
        context: String,
        /// The text as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A holiday or make-up working day lies outside the file's `year`.
    #[error("{context}: date {date} is outside the calendar year {year}")]
    DateOutsideYear {
        /// Where the date was found.
        context: String,
        /// The date.
        date: Date,
        /// The file's `year`.
        year: i16,
    },

    /// The same date is listed twice (as holidays, or as make-up days).
    #[error("date {date} is listed twice: in {first} and in {second}")]
    DuplicateDate {
        /// The date.
        date: Date,
        /// The first place it was listed.
        first: String,
        /// The second place it was listed.
        second: String,
    },

    /// Two `[[holidays]]` entries have the same `name`.
    #[error("holiday name {name:?} is used by more than one [[holidays]] entry")]
    DuplicateHolidayName {
        /// The repeated name.
        name: String,
    },

    /// A `[[holidays]]` entry has an empty `dates` list.
    #[error("holiday {name:?} lists no dates")]
    EmptyHoliday {
        /// The holiday's name.
        name: String,
    },

    /// A make-up working day (调休上班日) falls on Monday–Friday. Make-up days
    /// exist only to turn a weekend day into a working day.
    #[error("make-up working day {date} is a {weekday:?}; a make-up working day must be a Saturday or Sunday")]
    MakeUpDayNotWeekend {
        /// The date.
        date: Date,
        /// Its weekday.
        weekday: Weekday,
    },

    /// A date is listed both as a holiday and as a make-up working day.
    #[error("date {date} is both a holiday ({holiday}) and a make-up working day")]
    HolidayAndMakeUpDay {
        /// The date.
        date: Date,
        /// The holiday that lists it.
        holiday: String,
    },

    /// A make-up working day's `for` names no `[[holidays]]` entry of the
    /// same file.
    #[error("make-up working day {date} is `for` {name:?}, which is not a holiday in this file")]
    UnknownHoliday {
        /// The make-up day.
        date: Date,
        /// The name in its `for` field.
        name: String,
    },

    /// `working_hours.periods` is empty.
    #[error("working_hours.periods is empty: a calendar needs at least one working period")]
    NoWorkingHours,

    /// A working-hours time is not `HH:MM` between `00:00` and `24:00`
    /// (`24:00` is allowed only as the end of a period).
    #[error(
        "working_hours.periods[{index}]: invalid time {value:?}: expected HH:MM from 00:00 to 23:59 (24:00 only as an end)"
    )]
    BadTime {
        /// Index of the period (0-based).
        index: usize,
        /// The text as written.
        value: String,
    },

    /// A working-hours period does not end after it starts.
    #[error("working_hours.periods[{index}]: period {start}-{end} is empty or reversed")]
    EmptyPeriod {
        /// Index of the period (0-based).
        index: usize,
        /// Start as written.
        start: String,
        /// End as written.
        end: String,
    },

    /// A working-hours period starts before the previous one: periods must be
    /// listed in time order.
    #[error(
        "working_hours.periods[{index}] starts before periods[{}]; list periods in time order",
        index - 1
    )]
    UnsortedPeriods {
        /// Index of the out-of-order period (0-based, at least 1).
        index: usize,
    },

    /// A working-hours period starts before the previous one ends.
    #[error("working_hours.periods[{index}] overlaps periods[{}]", index - 1)]
    OverlappingPeriods {
        /// Index of the overlapping period (0-based, at least 1).
        index: usize,
    },

    /// [`Calendar::from_files`](crate::Calendar::from_files) was given no
    /// files.
    #[error("no calendar files were given")]
    NoFiles,

    /// Calendars of different jurisdictions cannot be merged.
    #[error("cannot merge calendars of different jurisdictions ({first:?} and {second:?})")]
    JurisdictionMismatch {
        /// The first calendar's jurisdiction.
        first: String,
        /// The second calendar's jurisdiction.
        second: String,
    },

    /// Calendars of one jurisdiction must use one time zone.
    #[error(
        "cannot merge calendars of jurisdiction {jurisdiction:?} with different time zones ({first:?} and {second:?})"
    )]
    TimeZoneMismatch {
        /// The jurisdiction.
        jurisdiction: String,
        /// The first calendar's time zone.
        first: String,
        /// The second calendar's time zone.
        second: String,
    },

    /// The same year of a jurisdiction was loaded twice.
    #[error("year {year} of jurisdiction {jurisdiction:?} is loaded more than once")]
    DuplicateYear {
        /// The jurisdiction.
        jurisdiction: String,
        /// The repeated year.
        year: i16,
    },

    /// An error in one of several files given to
    /// [`Calendar::from_files`](crate::Calendar::from_files).
    #[error("calendar file #{index}: {source}")]
    InFile {
        /// Index of the file in the slice (0-based).
        index: usize,
        /// The error in that file.
        source: Box<CalendarError>,
    },
}

/// Why a deadline could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeadlineError {
    /// The result would fall outside the range of instants and dates that can
    /// be represented (years −9999 to 9999).
    #[error("the deadline is outside the representable range of time")]
    OutOfRange,
}

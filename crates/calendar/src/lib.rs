//! Working-day calendars for Fengqiao deadlines.
//!
//! Dispute-mediation deadlines ("a committee signs for a dispatched case
//! within 2 working hours", "a partner accepts a referral within 3 working
//! days", "mediation completes within 30 days") are counted in a
//! jurisdiction's calendar. Working days skip weekends and the rest days of
//! published holidays; make-up working days (调休上班日, a Saturday or Sunday
//! declared a working day) count as working days.
//!
//! This crate is pure: no I/O and no clock reads. Calendar files are TOML
//! text passed in by the caller (see `deploy/calendars/` and
//! `docs/calendars.md`); instants are [`jiff::Timestamp`]s passed in.
//!
//! # Counting rules (summary)
//!
//! - **Working day**: a make-up working day, or a Monday–Friday that is not a
//!   holiday date. For a year no loaded file covers: Monday–Friday.
//! - **Working hours**: the file's local-time periods (default in the shipped
//!   files 09:00–12:00 and 13:30–17:30) on working days; working time is real
//!   elapsed time inside them ([`Calendar::working_time_between`]).
//! - **n working days** ([`Calendar::add_working_days`]): the start's local
//!   day is not counted; the deadline is the close of business (end of the
//!   last period) of the n-th working day after it.
//! - **Working hours clock** ([`Calendar::add_working_hours`]): the earliest
//!   instant at which that much working time has elapsed.
//! - **Elapsed clock** ([`Calendar::add_calendar_duration`]): plain addition.
//! - **Pauses** ([`Calendar::shift_by_pauses`]): the deadline moves by the
//!   paused time measured in the clock's own unit.
//!
//! # Example
//!
//! ```
//! use fengqiao_calendar::{Calendar, Clock};
//! use jiff::{SignedDuration, Timestamp};
//!
//! let cal = Calendar::from_files(&[
//!     include_str!("../../../deploy/calendars/cn-national-2025.toml"),
//!     include_str!("../../../deploy/calendars/cn-national-2026.toml"),
//! ])?;
//! // Friday 2026-02-13 10:00 in Shanghai, the day before Spring Festival.
//! let start: Timestamp = "2026-02-13T10:00:00+08:00".parse()?;
//! let due = cal.deadline(start, Clock::WorkingDays(3))?;
//! assert_eq!(due, "2026-02-25T17:30:00+08:00".parse::<Timestamp>()?);
//! let due = cal.deadline(start, Clock::WorkingHours(SignedDuration::from_hours(2)))?;
//! assert_eq!(due, "2026-02-13T12:00:00+08:00".parse::<Timestamp>()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod calendar;
mod clock;
mod error;
mod format;

pub use crate::calendar::{Calendar, DayKind};
pub use crate::clock::{Clock, ClockUnit};
pub use crate::error::{CalendarError, DeadlineError};
pub use crate::format::{FORMAT_VERSION, Holiday, MakeUpDay, Period, WorkingHours, YearCalendar};

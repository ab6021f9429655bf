//! Clock kinds for deadlines: elapsed time, working hours, working days.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

/// The unit a deadline clock counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockUnit {
    /// Plain elapsed (real) time, e.g. "30 days" or "1 minute".
    Elapsed,
    /// Working time: only time inside working-hours periods of working days,
    /// e.g. "within 2 working hours".
    WorkingHours,
    /// Whole working days, ending at close of business, e.g. "within 3
    /// working days" (3个工作日内).
    WorkingDays,
}

/// A deadline clock: a unit with an amount.
///
/// Serialized (with serde) as `{"unit": "working_hours", "amount": "PT2H"}`;
/// durations use jiff's ISO 8601 duration format, working days a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "unit", content = "amount", rename_all = "snake_case")]
pub enum Clock {
    /// `start + amount` in real time. See
    /// [`Calendar::add_calendar_duration`](crate::Calendar::add_calendar_duration).
    Elapsed(SignedDuration),
    /// `amount` of working time after start. See
    /// [`Calendar::add_working_hours`](crate::Calendar::add_working_hours).
    WorkingHours(SignedDuration),
    /// Close of business of the n-th working day after the start's local
    /// date. See
    /// [`Calendar::add_working_days`](crate::Calendar::add_working_days).
    WorkingDays(u32),
}

impl Clock {
    /// The clock's unit.
    pub fn unit(&self) -> ClockUnit {
        match self {
            Clock::Elapsed(_) => ClockUnit::Elapsed,
            Clock::WorkingHours(_) => ClockUnit::WorkingHours,
            Clock::WorkingDays(_) => ClockUnit::WorkingDays,
        }
    }
}

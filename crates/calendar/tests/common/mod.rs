//! Shared helpers for the integration tests.
#![allow(dead_code)]

use fengqiao_calendar::Calendar;
use jiff::Timestamp;
use jiff::civil::Date;

pub const CN_2025: &str = include_str!("../../../../deploy/calendars/cn-national-2025.toml");
pub const CN_2026: &str = include_str!("../../../../deploy/calendars/cn-national-2026.toml");

/// Both shipped national files merged.
pub fn cn() -> Calendar {
    Calendar::from_files(&[CN_2025, CN_2026]).expect("shipped calendars load")
}

pub fn cn_2025_only() -> Calendar {
    Calendar::parse(CN_2025).expect("shipped 2025 calendar loads")
}

pub fn cn_2026_only() -> Calendar {
    Calendar::parse(CN_2026).expect("shipped 2026 calendar loads")
}

/// `"2026-02-13"` → Date.
pub fn d(s: &str) -> Date {
    s.parse().expect("test date")
}

/// An instant from a civil time in Asia/Shanghai: `sh("2026-02-13 10:00")`.
pub fn sh(s: &str) -> Timestamp {
    local(s, "Asia/Shanghai")
}

/// An instant from a civil time in Europe/Berlin.
pub fn berlin(s: &str) -> Timestamp {
    local(s, "Europe/Berlin")
}

pub fn local(s: &str, tz: &str) -> Timestamp {
    let dt: jiff::civil::DateTime = s.replace(' ', "T").parse().expect("test datetime");
    dt.in_tz(tz).expect("test zone").timestamp()
}

/// Formats an instant as civil time in `tz`, `YYYY-MM-DD HH:MM`.
pub fn show(t: Timestamp, tz: &str) -> String {
    let z = t.in_tz(tz).expect("test zone");
    z.strftime("%Y-%m-%d %H:%M").to_string()
}

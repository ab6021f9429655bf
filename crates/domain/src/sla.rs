//! The SLA policy as data: which deadline clocks run for a case, how long each runs, when it warns,
//! whether pauses and extensions move it, and what a breach does (the escalation ladder).
//!
//! [`SlaPolicy::parse`] reads the TOML text of `deploy/sla.toml` (format in `docs/deadlines.md`);
//! [`Sla`] bundles the policy with the jurisdiction calendars it counts in. Reading the files is the
//! caller's job: this module is pure. What a case's events make of the policy is in
//! [`crate::deadlines`].

use std::collections::BTreeMap;

use fengqiao_calendar::Clock as Length;
use fengqiao_calendar::{Calendar, CalendarError};
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::directory::{Directory, DirectoryError};
use crate::event::pb;
use crate::values::UnitCode;

/// The only policy format this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// Every deadline clock, in proto order.
pub const CLOCKS: [pb::Clock; 9] = [
    pb::Clock::UrgentResponse,
    pb::Clock::UrgentArrival,
    pb::Clock::UrgentFeedback,
    pb::Clock::SignFor,
    pb::Clock::HotlineReply,
    pb::Clock::Mediation,
    pb::Clock::ReferralAcceptance,
    pb::Clock::JudicialConfirmationWindow,
    pb::Clock::FollowUp,
];

/// Why a policy (or the calendars it names) could not be loaded. Each message names the field.
///
/// ### Handling
/// Fatal at start-up: the operator fixes the file. Never fall back to another policy silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlaError {
    /// Not TOML, a missing or unknown field, or a wrong type (the message has line and column).
    #[error("SLA policy does not parse: {0}")]
    Toml(String),
    /// The `format` field names a version this build does not read.
    #[error("SLA policy format {found} is not supported; this build reads format {FORMAT_VERSION}")]
    UnsupportedFormat { found: u32 },
    /// A field has a value that does not make sense.
    #[error("SLA policy: {field}: {problem}")]
    Invalid { field: String, problem: String },
    /// A calendar file does not load.
    #[error("calendar: {0}")]
    Calendar(#[from] CalendarError),
    /// The committee directory does not load.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> SlaError {
    SlaError::Invalid { field: field.into(), problem: problem.into() }
}

/// A fraction of a clock's time, in basis points (7500 = 75 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fraction(u16);

impl Fraction {
    /// Parses a fraction strictly between 0 and 1.
    fn parse(field: &str, value: f64) -> Result<Self, SlaError> {
        if !(value > 0.0 && value < 1.0) {
            return Err(invalid(field, format!("{value} is not a fraction between 0 and 1 (e.g. 0.75)")));
        }
        // In range by the check above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let bp = (value * 10_000.0).round() as u16;
        Ok(Self(bp.clamp(1, 9_999)))
    }

    /// The fraction of `d`, rounded towards zero to the millisecond.
    pub fn of(self, d: SignedDuration) -> SignedDuration {
        let ms = d.as_millis() * i128::from(self.0) / 10_000;
        SignedDuration::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    /// The fraction as a number, e.g. 0.75.
    pub fn value(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }
}

/// What the policy selects on: the case as it stood when a clock started.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Subject {
    /// `pb::Channel` as recorded.
    pub channel: i32,
    pub category: String,
    /// `pb::Urgency` as registered (see [`SlaPolicy::urgency`] for the effective one).
    pub urgency: i32,
    /// `pb::RiskSignal`s as registered.
    pub risk_signals: Vec<i32>,
    /// `pb::Tier`; unspecified before dispatch.
    pub tier: i32,
}

/// Which cases a rule or a clock applies to: every selector given must list the case's value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub channels: Vec<pb::Channel>,
    pub categories: Vec<String>,
    pub urgencies: Vec<pb::Urgency>,
    pub tiers: Vec<pb::Tier>,
}

impl Selector {
    fn matches(&self, subject: &Subject, urgency: pb::Urgency) -> bool {
        fn ok<T: PartialEq>(list: &[T], value: &T) -> bool {
            list.is_empty() || list.contains(value)
        }
        ok(&self.channels, &pb::Channel::try_from(subject.channel).unwrap_or_default())
            && ok(&self.categories, &subject.category)
            && ok(&self.urgencies, &urgency)
            && ok(&self.tiers, &pb::Tier::try_from(subject.tier).unwrap_or_default())
    }
}

/// A length that applies to the cases a selector picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub when: Selector,
    pub length: Length,
    /// Overrides the clock's warning fraction.
    pub warn_at: Option<Fraction>,
}

/// What a breach does: the rung of the escalation ladder for one clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    /// Where the breach goes.
    pub route: pb::EscalationRoute,
    /// For [`pb::EscalationRoute::NextTier`]: the tiers from which a breach escalates the case.
    pub escalate_from: Vec<pb::Tier>,
    /// For [`pb::EscalationRoute::NextTier`]: where the breach goes from any other tier, or when no
    /// committee of the next tier is known.
    pub otherwise: pb::EscalationRoute,
}

impl Ladder {
    /// The route for a breach of a case at `tier`: the next tier only from the tiers listed.
    pub fn route_at(&self, tier: pb::Tier) -> pb::EscalationRoute {
        match self.route {
            pb::EscalationRoute::NextTier if self.escalate_from.contains(&tier) => self.route,
            pb::EscalationRoute::NextTier => self.otherwise,
            route => route,
        }
    }
}

/// The policy of one clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockPolicy {
    pub clock: pb::Clock,
    /// The length when no rule matches.
    pub length: Length,
    pub warn_at: Fraction,
    /// The clock runs only for cases this selects (all cases when `None`).
    pub only: Option<Selector>,
    /// Pauses (ClockPaused … ClockResumed) stop the clock and move its deadline.
    pub pausable: bool,
    /// Granted extensions add their days to the deadline.
    pub extendable: bool,
    /// A deadline sent by the hotline with the order replaces the length (12345 reply clock).
    pub hotline_deadline: bool,
    pub rules: Vec<Rule>,
    pub on_breach: Ladder,
}

/// A parsed SLA policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaPolicy {
    version: String,
    calendar: String,
    /// Unit-code prefix → calendar, longest first.
    unit_calendars: Vec<(String, String)>,
    emergency_risk_signals: Vec<pb::RiskSignal>,
    clocks: Vec<ClockPolicy>,
}

impl SlaPolicy {
    /// Parses a policy file.
    ///
    /// # Errors
    /// [`SlaError::Toml`] for bad TOML, missing or unknown fields and wrong types;
    /// [`SlaError::UnsupportedFormat`]; [`SlaError::Invalid`] naming the field for an unknown or
    /// missing clock, a bad length, fraction, channel, urgency, tier, risk signal, route or unit
    /// code, and for options that make no sense on a clock.
    pub fn parse(text: &str) -> Result<Self, SlaError> {
        let raw: raw::Policy = toml::from_str(text).map_err(|e| SlaError::Toml(e.to_string()))?;
        if raw.format != FORMAT_VERSION {
            return Err(SlaError::UnsupportedFormat { found: raw.format });
        }
        if raw.version.trim().is_empty() {
            return Err(invalid("version", "must not be empty"));
        }
        if raw.calendar.trim().is_empty() {
            return Err(invalid("calendar", "must not be empty"));
        }
        let mut unit_calendars = Vec::new();
        for (unit, calendar) in &raw.calendars {
            let field = format!("calendars.{unit}");
            let code = UnitCode::parse(&field, unit).map_err(|e| invalid(field.clone(), e.problem))?;
            if calendar.trim().is_empty() {
                return Err(invalid(field, "names no calendar"));
            }
            unit_calendars.push((code.prefix().to_owned(), calendar.clone()));
        }
        unit_calendars.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let warn_at = Fraction::parse("defaults.warn_at", raw.defaults.warn_at)?;
        let emergency_risk_signals = raw
            .defaults
            .emergency_risk_signals
            .iter()
            .enumerate()
            .map(|(i, s)| named(&format!("defaults.emergency_risk_signals[{i}]"), s, RISK_SIGNALS))
            .collect::<Result<_, _>>()?;
        let mut clocks = Vec::with_capacity(CLOCKS.len());
        for name in raw.clocks.keys() {
            if !CLOCKS.iter().any(|c| clock_name(*c) == name) {
                return Err(invalid(
                    format!("clocks.{name}"),
                    format!("is not a clock; the clocks are {}", CLOCKS.map(clock_name).join(", ")),
                ));
            }
        }
        for clock in CLOCKS {
            let name = clock_name(clock);
            let Some(c) = raw.clocks.get(name) else {
                return Err(invalid(format!("clocks.{name}"), "is missing; every clock must be defined"));
            };
            clocks.push(clock_policy(clock, c, warn_at)?);
        }
        Ok(Self { version: raw.version, calendar: raw.calendar, unit_calendars, emergency_risk_signals, clocks })
    }

    /// The policy's version, as written in the file.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The policy of `clock`.
    pub fn clock(&self, clock: pb::Clock) -> Option<&ClockPolicy> {
        self.clocks.iter().find(|c| c.clock == clock)
    }

    /// Every clock's policy, in proto order.
    pub fn clocks(&self) -> &[ClockPolicy] {
        &self.clocks
    }

    /// The calendar (jurisdiction id) a case in `unit` is counted in.
    pub fn calendar_for(&self, unit: &str) -> &str {
        self.unit_calendars
            .iter()
            .find(|(prefix, _)| unit.starts_with(prefix.as_str()))
            .map_or(self.calendar.as_str(), |(_, calendar)| calendar.as_str())
    }

    /// Every calendar the policy names.
    pub fn calendars(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.calendar.as_str()).chain(self.unit_calendars.iter().map(|(_, c)| c.as_str()))
    }

    /// The urgency the clocks use: emergency when an emergency risk signal is present.
    pub fn urgency(&self, subject: &Subject) -> pb::Urgency {
        let urgency = pb::Urgency::try_from(subject.urgency).unwrap_or_default();
        let risky = subject
            .risk_signals
            .iter()
            .any(|s| pb::RiskSignal::try_from(*s).is_ok_and(|s| self.emergency_risk_signals.contains(&s)));
        if risky { pb::Urgency::Emergency } else { urgency }
    }

    /// Whether `clock` runs for a case like `subject`.
    pub fn applies(&self, clock: &ClockPolicy, subject: &Subject) -> bool {
        clock.only.as_ref().is_none_or(|only| only.matches(subject, self.urgency(subject)))
    }

    /// The length and warning fraction of `clock` for a case like `subject`: the first matching
    /// rule's, else the clock's own.
    pub fn length(&self, clock: &ClockPolicy, subject: &Subject) -> (Length, Fraction) {
        let urgency = self.urgency(subject);
        match clock.rules.iter().find(|r| r.when.matches(subject, urgency)) {
            Some(rule) => (rule.length, rule.warn_at.unwrap_or(clock.warn_at)),
            None => (clock.length, clock.warn_at),
        }
    }
}

/// The snake-case name of a clock, as in the policy file and in deadline ids (`sign_for`).
pub fn clock_name(clock: pb::Clock) -> &'static str {
    match clock {
        pb::Clock::Unspecified => "unspecified",
        pb::Clock::UrgentResponse => "urgent_response",
        pb::Clock::UrgentArrival => "urgent_arrival",
        pb::Clock::UrgentFeedback => "urgent_feedback",
        pb::Clock::SignFor => "sign_for",
        pb::Clock::HotlineReply => "hotline_reply",
        pb::Clock::Mediation => "mediation",
        pb::Clock::ReferralAcceptance => "referral_acceptance",
        pb::Clock::JudicialConfirmationWindow => "judicial_confirmation_window",
        pb::Clock::FollowUp => "follow_up",
    }
}

/// A policy with the calendars it counts in and the committee directory its ladder escalates to:
/// everything needed to turn a case's clocks into deadlines and a breach into its consequences.
#[derive(Debug, Clone)]
pub struct Sla {
    policy: SlaPolicy,
    /// Where `next_tier` breaches find the next committee; empty: no automatic escalation.
    directory: Directory,
    /// By jurisdiction id.
    calendars: BTreeMap<String, Calendar>,
    /// The policy's own calendar, for units no entry maps elsewhere.
    default: Calendar,
}

/// The SLA policy shipped as `deploy/sla.toml`, compiled in.
pub const BUNDLED_POLICY: &str = include_str!("../../../deploy/sla.toml");
/// The national calendars shipped in `deploy/calendars/`, compiled in.
pub const BUNDLED_CALENDARS: [&str; 2] = [
    include_str!("../../../deploy/calendars/cn-national-2025.toml"),
    include_str!("../../../deploy/calendars/cn-national-2026.toml"),
];
/// The committee directory shipped as `deploy/committees.toml`, compiled in.
pub const BUNDLED_COMMITTEES: &str = include_str!("../../../deploy/committees.toml");

impl Sla {
    /// Bundles `policy` with `calendars` (one per jurisdiction, each possibly several years).
    ///
    /// # Errors
    /// [`SlaError::Invalid`] when a calendar the policy names is not among `calendars`, or two
    /// calendars have the same jurisdiction.
    pub fn new(policy: SlaPolicy, calendars: Vec<Calendar>) -> Result<Self, SlaError> {
        let mut by_id = BTreeMap::new();
        for calendar in calendars {
            let id = calendar.jurisdiction().to_owned();
            if by_id.insert(id.clone(), calendar).is_some() {
                return Err(invalid("calendars", format!("two calendars for jurisdiction {id}; merge their years")));
            }
        }
        if let Some(missing) = policy.calendars().find(|id| !by_id.contains_key(*id)) {
            let loaded: Vec<&str> = by_id.keys().map(String::as_str).collect();
            return Err(invalid(
                "calendar",
                format!("names calendar {missing:?}, which is not loaded (loaded: {})", loaded.join(", ")),
            ));
        }
        let default = by_id.get(&policy.calendar).cloned().ok_or_else(|| invalid("calendar", "is not loaded"))?;
        Ok(Self { policy, directory: Directory::default(), calendars: by_id, default })
    }

    /// Parses a policy and calendar files (any number of years and jurisdictions).
    ///
    /// # Errors
    /// As [`SlaPolicy::parse`], [`Calendar::parse`] and [`Sla::new`].
    pub fn from_texts(policy: &str, calendar_files: &[&str]) -> Result<Self, SlaError> {
        let mut calendars: Vec<Calendar> = Vec::new();
        for text in calendar_files {
            let calendar = Calendar::parse(text)?;
            match calendars.iter().position(|c| c.jurisdiction() == calendar.jurisdiction()) {
                Some(i) => {
                    let merged = calendars.swap_remove(i).merge(calendar)?;
                    calendars.push(merged);
                }
                None => calendars.push(calendar),
            }
        }
        Self::new(SlaPolicy::parse(policy)?, calendars)
    }

    /// The same rules escalating to the committees of `directory`.
    #[must_use]
    pub fn with_directory(mut self, directory: Directory) -> Self {
        self.directory = directory;
        self
    }

    /// The policy, national calendars and committee directory shipped in `deploy/`, compiled in:
    /// the default when no files are configured, and what tests use.
    ///
    /// # Errors
    /// Only if the shipped files are broken, which the tests rule out.
    pub fn bundled() -> Result<Self, SlaError> {
        let sla = Self::from_texts(BUNDLED_POLICY, &BUNDLED_CALENDARS)?;
        Ok(sla.with_directory(Directory::parse(BUNDLED_COMMITTEES)?))
    }

    /// The committee directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The policy.
    pub fn policy(&self) -> &SlaPolicy {
        &self.policy
    }

    /// The calendar a case in `unit` is counted in.
    pub fn calendar_for(&self, unit: &str) -> &Calendar {
        // `new` checked that every calendar the policy names is loaded.
        self.calendars.get(self.policy.calendar_for(unit)).unwrap_or(&self.default)
    }
}

// -- parsing --------------------------------------------------------------------------------------

/// How a proto enum's values are named in the file: the value's name without `prefix`, in snake case.
#[derive(Clone, Copy)]
struct EnumNames<E: 'static> {
    prefix: &'static str,
    from_name: fn(&str) -> Option<E>,
    to_name: fn(E) -> &'static str,
}

const CHANNELS: EnumNames<pb::Channel> =
    EnumNames { prefix: "CHANNEL_", from_name: pb::Channel::from_str_name, to_name: |c| c.as_str_name() };
const URGENCIES: EnumNames<pb::Urgency> =
    EnumNames { prefix: "URGENCY_", from_name: pb::Urgency::from_str_name, to_name: |u| u.as_str_name() };
const TIERS: EnumNames<pb::Tier> =
    EnumNames { prefix: "TIER_", from_name: pb::Tier::from_str_name, to_name: |t| t.as_str_name() };
const RISK_SIGNALS: EnumNames<pb::RiskSignal> =
    EnumNames { prefix: "RISK_SIGNAL_", from_name: pb::RiskSignal::from_str_name, to_name: |r| r.as_str_name() };
const ROUTES: EnumNames<pb::EscalationRoute> = EnumNames {
    prefix: "ESCALATION_ROUTE_",
    from_name: pb::EscalationRoute::from_str_name,
    to_name: |r| r.as_str_name(),
};

/// Parses the snake-case name of a proto enum value (`hotline_12345` for `CHANNEL_HOTLINE_12345`);
/// `unspecified` is never accepted.
fn named<E: Copy + TryFrom<i32>>(field: &str, raw: &str, kind: EnumNames<E>) -> Result<E, SlaError> {
    let upper = format!("{}{}", kind.prefix, raw.trim().to_ascii_uppercase());
    match (kind.from_name)(&upper) {
        Some(value) if !raw.trim().eq_ignore_ascii_case("unspecified") => Ok(value),
        _ => {
            let known: Vec<String> = (1..)
                .map_while(|i| E::try_from(i).ok())
                .map(|e| (kind.to_name)(e).trim_start_matches(kind.prefix).to_ascii_lowercase())
                .collect();
            Err(invalid(field, format!("unknown value {raw:?}; expected one of {}", known.join(", "))))
        }
    }
}

fn names<E: Copy + TryFrom<i32>>(field: &str, raw: &[String], kind: EnumNames<E>) -> Result<Vec<E>, SlaError> {
    raw.iter().enumerate().map(|(i, s)| named(&format!("{field}[{i}]"), s, kind)).collect()
}

fn selector(field: &str, raw: &raw::Selector) -> Result<Selector, SlaError> {
    if let Some(i) = raw.category.iter().position(|c| c.trim().is_empty()) {
        return Err(invalid(format!("{field}.category[{i}]"), "is empty"));
    }
    Ok(Selector {
        channels: names(&format!("{field}.channel"), &raw.channel, CHANNELS)?,
        categories: raw.category.iter().map(|c| c.trim().to_owned()).collect(),
        urgencies: names(&format!("{field}.urgency"), &raw.urgency, URGENCIES)?,
        tiers: names(&format!("{field}.tier"), &raw.tier, TIERS)?,
    })
}

/// Parses a length: `"<n> <unit>"` (elapsed) or `"<n> working <unit>"`, unit minute(s), hour(s)
/// or day(s); `n` at least 1.
pub fn parse_length(field: &str, raw: &str) -> Result<Length, SlaError> {
    let bad = || {
        invalid(
            field,
            format!(
                "{raw:?} is not a length; write e.g. \"1 minute\", \"24 hours\", \"30 days\", \
                 \"2 working hours\" or \"3 working days\""
            ),
        )
    };
    let words: Vec<&str> = raw.split_whitespace().collect();
    let (n, working, unit) = match words.as_slice() {
        [n, unit] => (n, false, unit),
        [n, w, unit] if w.eq_ignore_ascii_case("working") => (n, true, unit),
        _ => return Err(bad()),
    };
    let n: u32 = n.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(invalid(field, format!("{raw:?}: a clock runs for at least 1 {unit}")));
    }
    let minutes = match unit.to_ascii_lowercase().trim_end_matches('s') {
        "minute" => 1,
        "hour" => 60,
        "day" if working => return Ok(Length::WorkingDays(n)),
        "day" => 24 * 60,
        _ => return Err(bad()),
    };
    let d = SignedDuration::from_mins(i64::from(n) * minutes);
    Ok(if working { Length::WorkingHours(d) } else { Length::Elapsed(d) })
}

fn clock_policy(clock: pb::Clock, raw: &raw::Clock, default_warn: Fraction) -> Result<ClockPolicy, SlaError> {
    let field = format!("clocks.{}", clock_name(clock));
    let f = |name: &str| format!("{field}.{name}");
    let warn_at = raw.warn_at.map(|w| Fraction::parse(&f("warn_at"), w)).transpose()?.unwrap_or(default_warn);
    if raw.hotline_deadline && clock != pb::Clock::HotlineReply {
        return Err(invalid(f("hotline_deadline"), "only the hotline_reply clock takes the hotline's deadline"));
    }
    let route = named(&f("on_breach"), &raw.on_breach, ROUTES)?;
    let next_tier = route == pb::EscalationRoute::NextTier;
    let escalate_from = names(&f("escalate_from"), &raw.escalate_from, TIERS)?;
    let otherwise = match (&raw.otherwise, next_tier) {
        (Some(o), true) => named(&f("otherwise"), o, ROUTES)?,
        (None, true) => return Err(invalid(f("otherwise"), "is required with on_breach = \"next_tier\"")),
        (Some(_), false) => return Err(invalid(f("otherwise"), "only applies with on_breach = \"next_tier\"")),
        (None, false) => route,
    };
    if otherwise == pb::EscalationRoute::NextTier {
        return Err(invalid(f("otherwise"), "must name a queue, not next_tier"));
    }
    if next_tier && escalate_from.is_empty() {
        return Err(invalid(f("escalate_from"), "lists no tier; name the tiers whose overdue cases move up"));
    }
    if !next_tier && !escalate_from.is_empty() {
        return Err(invalid(f("escalate_from"), "only applies with on_breach = \"next_tier\""));
    }
    let rules = raw
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rf = format!("{field}.rules[{i}]");
            Ok(Rule {
                when: selector(&rf, &r.selector())?,
                length: parse_length(&format!("{rf}.length"), &r.length)?,
                warn_at: r.warn_at.map(|w| Fraction::parse(&format!("{rf}.warn_at"), w)).transpose()?,
            })
        })
        .collect::<Result<_, SlaError>>()?;
    Ok(ClockPolicy {
        clock,
        length: parse_length(&f("length"), &raw.length)?,
        warn_at,
        only: raw.only.as_ref().map(|o| selector(&f("only"), o)).transpose()?,
        pausable: raw.pausable,
        extendable: raw.extendable,
        hotline_deadline: raw.hotline_deadline,
        rules,
        on_breach: Ladder { route, escalate_from, otherwise },
    })
}

/// The file as written.
mod raw {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Policy {
        pub format: u32,
        pub version: String,
        pub calendar: String,
        #[serde(default)]
        pub calendars: BTreeMap<String, String>,
        pub defaults: Defaults,
        pub clocks: BTreeMap<String, Clock>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Defaults {
        pub warn_at: f64,
        #[serde(default)]
        pub emergency_risk_signals: Vec<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Clock {
        pub length: String,
        pub warn_at: Option<f64>,
        pub only: Option<Selector>,
        #[serde(default)]
        pub pausable: bool,
        #[serde(default)]
        pub extendable: bool,
        #[serde(default)]
        pub hotline_deadline: bool,
        pub on_breach: String,
        #[serde(default)]
        pub escalate_from: Vec<String>,
        pub otherwise: Option<String>,
        #[serde(default)]
        pub rules: Vec<Rule>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    pub struct Selector {
        #[serde(default)]
        pub channel: Vec<String>,
        #[serde(default)]
        pub category: Vec<String>,
        #[serde(default)]
        pub urgency: Vec<String>,
        #[serde(default)]
        pub tier: Vec<String>,
    }

    /// A rule: a selector's fields and a length side by side (`flatten` would lose
    /// `deny_unknown_fields`, so they are spelled out).
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Rule {
        #[serde(default)]
        pub channel: Vec<String>,
        #[serde(default)]
        pub category: Vec<String>,
        #[serde(default)]
        pub urgency: Vec<String>,
        #[serde(default)]
        pub tier: Vec<String>,
        pub length: String,
        pub warn_at: Option<f64>,
    }

    impl Rule {
        pub fn selector(&self) -> Selector {
            Selector {
                channel: self.channel.clone(),
                category: self.category.clone(),
                urgency: self.urgency.clone(),
                tier: self.tier.clone(),
            }
        }
    }
}

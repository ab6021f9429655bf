//! Deadlines of a case, derived from its events: [`Clocks`] folds the events (with the instants they
//! occurred at, from their envelopes) into the clocks they started, paused, extended and stopped;
//! [`Clocks::deadlines`] turns every open clock into a [`Deadline`] under an [`Sla`] (policy and
//! calendar). Pure: the same events and the same policy always give the same deadlines, which is
//! what lets a read model be rebuilt and several timer workers agree.
//!
//! Which event starts and stops which clock:
//!
//! | clock | starts at | stops at |
//! |---|---|---|
//! | `urgent_response` | `CaseRegistered` | `CaseDispatched` |
//! | `urgent_arrival` | `CaseRegistered` | `ArrivedOnSite` |
//! | `urgent_feedback` | `CaseRegistered` | `ProgressReported`, `CaseSettled`, `MediationFailed` |
//! | `sign_for` | `CaseDispatched`, `CaseEscalated` | `CaseAccepted`, `CaseReturned`, `CaseEscalated` |
//! | `hotline_reply` | `CaseRegistered`, `CaseReopened` | `CaseClosed` |
//! | `mediation` | `CaseAccepted`, `CaseReopened`, `ReferralReturned` (when none runs) | `CaseSettled`, `MediationFailed`, `CaseEscalated`, `CaseClosed` |
//! | `referral_acceptance` | `ReferralMade` | `ReferralAccepted`, `ReferralDeclined`, `ReferralReturned` of that referral |
//! | `judicial_confirmation_window` | `CaseSettled` (not on a personal-status matter) | `JudicialConfirmationRequested` (until a refusal), a later `CaseSettled` |
//! | `follow_up` | `CaseClosed` (not withdrawn) | `FollowUpRecorded`, `CaseReopened` |
//!
//! `CaseClosed` also stops the urgent clocks; `CaseMerged` stops everything. A clock the policy does
//! not apply to the case (the urgent clocks of a case that is no emergency, the hotline clock of a
//! walk-in) is followed all the same and simply has no deadline: the policy decides, not the fold.
//!
//! A deadline's id is `{clock}:{version of the event that started it}` (`mediation:4`): stable
//! across pauses and extensions, different for every start, so "fire once per deadline" has a key.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use fengqiao_calendar::{Calendar, Clock as Length, ClockUnit};

use crate::event::{Kind, pb};
use crate::sla::{Sla, Subject, clock_name};

/// One run of a clock: started by an event, open until an event stops it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// `pb::Clock`.
    pub clock: i32,
    /// Case version of the event that started it.
    pub start_version: u64,
    pub started_at: Timestamp,
    /// The case as it stood at the start: what the policy selects the length by.
    pub subject: Subject,
    /// A due time fixed from outside (the hotline's reply deadline).
    #[serde(default)]
    pub fixed_due: Option<Timestamp>,
    /// Days of extension granted while it ran.
    #[serde(default)]
    pub extension_days: u32,
    /// For a referral clock: the referral and the partner institution.
    #[serde(default)]
    pub referral_id: String,
    #[serde(default)]
    pub partner_id: String,
    /// Not running for now: a judicial-confirmation application is pending.
    #[serde(default)]
    pub held: bool,
    #[serde(default)]
    pub warned: bool,
    #[serde(default)]
    pub breached: bool,
}

impl Run {
    /// The clock.
    pub fn clock(&self) -> pb::Clock {
        pb::Clock::try_from(self.clock).unwrap_or_default()
    }

    /// The deadline id, e.g. `mediation:4`.
    pub fn id(&self) -> String {
        deadline_id(self.clock(), self.start_version)
    }
}

/// The id of the deadline of `clock` started by the event at case version `start_version`.
pub fn deadline_id(clock: pb::Clock, start_version: u64) -> String {
    format!("{}:{start_version}", clock_name(clock))
}

/// The deadline clocks of one case, folded from its events and the instants they occurred at.
///
/// Serializable, so that a read model can keep it between batches and fold only new events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Clocks {
    /// Events folded.
    pub version: u64,
    /// The case now: what a clock started next is selected by.
    pub subject: Subject,
    /// Where the dispute arose: which calendar counts its deadlines.
    pub unit_code: String,
    /// Unit of the committee that owns the case, empty when none does.
    pub owner_unit: String,
    /// Open runs, in the order they started.
    pub runs: Vec<Run>,
    /// Closed pauses `[from, to)` of the case's clock (ClockPaused … ClockResumed).
    pub pauses: Vec<(Timestamp, Timestamp)>,
    /// Start of the pause in progress.
    pub paused_since: Option<Timestamp>,
}

impl Clocks {
    /// Folds events, each with the instant it occurred at (its envelope's `occurred_at`).
    pub fn from_events<'a>(events: impl IntoIterator<Item = (&'a Kind, Timestamp)>) -> Self {
        let mut clocks = Self::default();
        for (event, at) in events {
            clocks.apply(event, at);
        }
        clocks
    }

    /// Folds one event that occurred at `at`. Never fails: events are facts.
    pub fn apply(&mut self, event: &Kind, at: Timestamp) {
        use pb::Clock as C;
        self.version += 1;
        match event {
            Kind::CaseRegistered(e) => {
                self.subject = Subject {
                    channel: e.channel,
                    category: e.category.clone(),
                    urgency: e.urgency,
                    risk_signals: e.risk_signals.clone(),
                    tier: 0,
                };
                self.unit_code.clone_from(&e.unit_code);
                for clock in [C::UrgentResponse, C::UrgentArrival, C::UrgentFeedback] {
                    self.start(clock, at);
                }
                let hotline = Timestamp::from_millisecond(e.reply_deadline_unix_ms).ok();
                self.start(C::HotlineReply, at);
                if let Some(run) = self.runs.last_mut() {
                    run.fixed_due = hotline.filter(|_| e.reply_deadline_unix_ms != 0);
                }
            }
            Kind::CaseDispatched(e) => {
                self.subject.tier = e.tier;
                if !e.category.is_empty() {
                    self.subject.category.clone_from(&e.category);
                }
                self.owner_unit.clone_from(&e.committee_unit_code);
                self.stop(&[C::UrgentResponse]);
                self.start(C::SignFor, at);
            }
            Kind::CaseReturned(_) => {
                self.owner_unit.clear();
                self.stop(&[C::SignFor]);
            }
            Kind::CaseAccepted(_) => {
                self.stop(&[C::SignFor]);
                self.start(C::Mediation, at);
            }
            Kind::ArrivedOnSite(_) => self.stop(&[C::UrgentArrival]),
            Kind::ProgressReported(_) => self.stop(&[C::UrgentFeedback]),
            Kind::ClockPaused(_) => {
                if self.paused_since.is_none() {
                    self.paused_since = Some(at);
                }
            }
            Kind::ClockResumed(_) => self.end_pause(at),
            Kind::ExtensionGranted(e) => {
                for run in &mut self.runs {
                    run.extension_days = run.extension_days.saturating_add(e.days);
                }
            }
            Kind::ReferralMade(e) => {
                self.start(C::ReferralAcceptance, at);
                if let Some(run) = self.runs.last_mut() {
                    run.referral_id.clone_from(&e.referral_id);
                    run.partner_id.clone_from(&e.partner_id);
                }
            }
            Kind::ReferralAccepted(e) => self.stop_referral(&e.referral_id),
            Kind::ReferralDeclined(e) => self.stop_referral(&e.referral_id),
            Kind::ReferralReturned(e) => {
                self.stop_referral(&e.referral_id);
                // The case is back in mediation: a clock that still runs goes on, else one starts.
                if !self.runs.iter().any(|r| r.clock() == C::Mediation) {
                    self.start(C::Mediation, at);
                }
            }
            Kind::CaseSettled(e) => {
                self.stop(&[C::Mediation, C::UrgentFeedback, C::JudicialConfirmationWindow]);
                if e.agreement.as_ref().is_some_and(|a| !a.personal_status_matter) {
                    self.start(C::JudicialConfirmationWindow, at);
                }
            }
            Kind::JudicialConfirmationRequested(_) => self.hold_window(true),
            Kind::JudicialConfirmationRuled(e) if e.granted => self.stop(&[C::JudicialConfirmationWindow]),
            // After a refusal the parties may apply again inside the same window.
            Kind::JudicialConfirmationRuled(_) => self.hold_window(false),
            Kind::MediationFailed(_) => self.stop(&[C::Mediation, C::UrgentFeedback]),
            Kind::CaseEscalated(e) => {
                self.subject.tier = e.to_tier;
                self.owner_unit.clone_from(&e.committee_unit_code);
                // Escalation clears a pause (the new committee starts afresh).
                self.end_pause(at);
                self.stop(&[C::SignFor, C::Mediation]);
                self.start(C::SignFor, at);
            }
            Kind::CaseClosed(e) => {
                self.stop(&[
                    C::UrgentResponse,
                    C::UrgentArrival,
                    C::UrgentFeedback,
                    C::SignFor,
                    C::HotlineReply,
                    C::Mediation,
                ]);
                // No clock that a pause stops survives closure; a pause left open is moot.
                self.end_pause(at);
                if e.outcome() != pb::ClosureOutcome::Withdrawn {
                    self.start(C::FollowUp, at);
                }
            }
            Kind::FollowUpRecorded(_) => self.stop(&[C::FollowUp]),
            Kind::CaseReopened(_) => {
                self.end_pause(at);
                self.stop(&[C::FollowUp]);
                // 二次办理: the handling clocks start again (the hotline's original deadline has passed).
                self.start(C::Mediation, at);
                self.start(C::HotlineReply, at);
            }
            Kind::CaseMerged(_) => {
                self.end_pause(at);
                self.runs.clear();
            }
            Kind::DeadlineWarned(e) => {
                if let Some(run) = self.runs.iter_mut().find(|r| r.id() == e.deadline_id) {
                    run.warned = true;
                }
            }
            Kind::DeadlineBreached(e) => {
                if let Some(run) = self.runs.iter_mut().find(|r| r.id() == e.deadline_id) {
                    run.breached = true;
                }
            }
            Kind::MediatorsAssigned(_)
            | Kind::SessionScheduled(_)
            | Kind::SessionHeld(_)
            | Kind::ReferralConcluded(_)
            | Kind::PerformanceRecorded(_)
            | Kind::JudicialConfirmationAccepted(_)
            | Kind::PartyContactCorrected(_) => {}
        }
    }

    fn start(&mut self, clock: pb::Clock, at: Timestamp) {
        self.runs.push(Run {
            clock: clock as i32,
            start_version: self.version,
            started_at: at,
            subject: self.subject.clone(),
            fixed_due: None,
            extension_days: 0,
            referral_id: String::new(),
            partner_id: String::new(),
            held: false,
            warned: false,
            breached: false,
        });
    }

    fn stop(&mut self, clocks: &[pb::Clock]) {
        self.runs.retain(|r| !clocks.contains(&r.clock()));
    }

    fn stop_referral(&mut self, referral_id: &str) {
        self.runs.retain(|r| !(r.clock() == pb::Clock::ReferralAcceptance && r.referral_id == referral_id));
    }

    fn hold_window(&mut self, held: bool) {
        for run in self.runs.iter_mut().filter(|r| r.clock() == pb::Clock::JudicialConfirmationWindow) {
            run.held = held;
        }
    }

    fn end_pause(&mut self, at: Timestamp) {
        if let Some(from) = self.paused_since.take() {
            self.pauses.push((from, at));
        }
    }

    /// The open run with deadline id `id`.
    pub fn run(&self, id: &str) -> Option<&Run> {
        self.runs.iter().find(|r| r.id() == id)
    }

    /// Every open deadline of the case under `sla`, in the order the clocks started.
    pub fn deadlines(&self, sla: &Sla) -> Vec<Deadline> {
        let calendar = sla.calendar_for(&self.unit_code);
        self.runs.iter().filter_map(|run| self.deadline_of(run, sla, calendar)).collect()
    }

    /// The deadline of the open run `id`, if it is open and the policy applies to it.
    pub fn deadline(&self, id: &str, sla: &Sla) -> Option<Deadline> {
        self.deadline_of(self.run(id)?, sla, sla.calendar_for(&self.unit_code))
    }

    fn deadline_of(&self, run: &Run, sla: &Sla, calendar: &Calendar) -> Option<Deadline> {
        let policy = sla.policy();
        let clock = policy.clock(run.clock())?;
        if run.held || !policy.applies(clock, &run.subject) {
            return None;
        }
        let start = run.started_at;
        let fixed = run.fixed_due.filter(|_| clock.hotline_deadline);
        let (length, fraction) = policy.length(clock, &run.subject);
        let unit = if fixed.is_some() { ClockUnit::Elapsed } else { length.unit() };
        let plain_due = match fixed {
            Some(due) => due,
            None => {
                let due = or_never(calendar.deadline(start, length));
                if clock.extendable { extend(calendar, due, length, run.extension_days) } else { due }
            }
        };
        let plain_warn = warn_point(calendar, start, plain_due, unit, fraction);
        let shifts = clock.pausable && fixed.is_none();
        let (due_at, warn_at, paused_since) = if shifts {
            // Pauses before the start do not concern this run; the open one counts up to now only
            // when it is closed, so for now it freezes the clock where it stood.
            let pauses: Vec<(Timestamp, Timestamp)> = self.pauses.iter().map(|&(f, t)| (f.max(start), t)).collect();
            let due = or_never(calendar.shift_by_pauses(plain_due, &pauses, unit));
            let warn_unit = if unit == ClockUnit::Elapsed { unit } else { ClockUnit::WorkingHours };
            let warn = or_never(calendar.shift_by_pauses(plain_warn, &pauses, warn_unit)).min(due);
            // A pause that began after the deadline had passed stops nothing.
            let paused = self.paused_since.map(|p| p.max(start)).filter(|p| *p < due);
            (due, warn, paused)
        } else {
            (plain_due, plain_warn, None)
        };
        Some(Deadline {
            clock: run.clock(),
            id: run.id(),
            started_at: start,
            due_at,
            warn_at,
            shifts_with_pauses: shifts,
            paused_since,
            warned: run.warned,
            breached: run.breached,
            referral_id: run.referral_id.clone(),
            partner_id: run.partner_id.clone(),
        })
    }
}

/// An unrepresentable deadline (beyond the year 9999) never comes.
fn or_never<E>(t: Result<Timestamp, E>) -> Timestamp {
    t.unwrap_or(Timestamp::MAX)
}

/// `due` moved later by `days` of extension, counted in the clock's unit: 24-hour days for an
/// elapsed clock, working days for the others.
fn extend(calendar: &Calendar, due: Timestamp, length: Length, days: u32) -> Timestamp {
    if days == 0 {
        return due;
    }
    or_never(match length {
        Length::Elapsed(_) => calendar.add_calendar_duration(due, SignedDuration::from_hours(24 * i64::from(days))),
        Length::WorkingDays(_) => calendar.add_working_days(due, days),
        Length::WorkingHours(_) => {
            let day = calendar.working_hours_for(calendar.local_date(due)).daily_total();
            calendar.add_working_hours(due, day.checked_mul(i32::try_from(days).unwrap_or(i32::MAX)).unwrap_or(day))
        }
    })
}

/// The instant at which `fraction` of the clock's time from `start` to `due` has run: real time
/// for an elapsed clock, working time for the others.
fn warn_point(
    calendar: &Calendar,
    start: Timestamp,
    due: Timestamp,
    unit: ClockUnit,
    fraction: crate::sla::Fraction,
) -> Timestamp {
    if due <= start || due == Timestamp::MAX {
        return due;
    }
    match unit {
        ClockUnit::Elapsed => or_never(start.checked_add(fraction.of(start.duration_until(due)))),
        ClockUnit::WorkingHours | ClockUnit::WorkingDays => {
            let working = calendar.working_time_between(start, due);
            if working <= SignedDuration::ZERO {
                return due;
            }
            or_never(calendar.add_working_hours(start, fraction.of(working))).min(due)
        }
    }
}

/// An open deadline of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub clock: pb::Clock,
    /// `{clock}:{start version}`, e.g. `sign_for:2`.
    pub id: String,
    pub started_at: Timestamp,
    /// When it is breached. While paused, the due time as it stood when the pause began; resuming
    /// moves it by the paused time.
    pub due_at: Timestamp,
    /// When its warning fires.
    pub warn_at: Timestamp,
    /// Whether pauses stop this clock and move its deadline.
    pub shifts_with_pauses: bool,
    /// The clock is stopped by a pause that began at this instant, before the deadline.
    pub paused_since: Option<Timestamp>,
    pub warned: bool,
    pub breached: bool,
    /// For a referral clock: the referral and the partner institution; empty otherwise.
    pub referral_id: String,
    pub partner_id: String,
}

impl Deadline {
    /// Whether the warning is due at `now` and has not fired.
    pub fn warning_due(&self, now: Timestamp) -> bool {
        !self.warned && self.warn_at <= now && self.paused_since.is_none_or(|p| self.warn_at <= p)
    }

    /// Whether the breach is due at `now` and has not fired.
    pub fn breach_due(&self, now: Timestamp) -> bool {
        !self.breached && self.due_at <= now && self.paused_since.is_none()
    }

    /// The next instant at which something fires for this deadline, if any.
    pub fn next_firing(&self) -> Option<Timestamp> {
        if self.paused_since.is_some() {
            return (!self.warned && self.paused_since.is_some_and(|p| self.warn_at <= p)).then_some(self.warn_at);
        }
        match (self.warned, self.breached) {
            (false, _) => Some(self.warn_at),
            (true, false) => Some(self.due_at),
            (true, true) => None,
        }
    }
}

/// `t` in `calendar`'s local time, RFC 3339 with the offset: `2026-02-25T17:30:00+08:00`.
pub fn local_time(calendar: &Calendar, t: Timestamp) -> String {
    t.to_zoned_datetime(calendar.time_zone().clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// The deadlines of a case given its events (each with its occurred-at instant) under `sla`.
pub fn deadlines_of<'a>(events: impl IntoIterator<Item = (&'a Kind, Timestamp)>, sla: &Sla) -> Vec<Deadline> {
    Clocks::from_events(events).deadlines(sla)
}

/// The due time a work queue sorts a case by: the earliest due time of its running (not paused)
/// deadlines, breached ones included; `None` when no clock runs.
pub fn primary_due(deadlines: &[Deadline]) -> Option<Timestamp> {
    deadlines.iter().filter(|d| d.paused_since.is_none()).map(|d| d.due_at).min()
}

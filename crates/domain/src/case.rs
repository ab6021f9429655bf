//! The case: its state folded from events ([`Case::apply_at`], [`Case::apply`]) and the decision
//! function ([`decide`]) that turns a command into events or a [`Rejection`].
//!
//! The transition table (states × commands) is in `docs/case-life.md`; keep the two in step.

use jiff::{SignedDuration, Timestamp};

use crate::command::{Agreement, Command, CommitteeRef, RegisterCase};
use crate::deadlines::{Clocks, Deadline, local_time};
use crate::event::{Kind, pb};
use crate::sla::Sla;
use crate::values::{PhoneNumber, ResidentId, ShortText};

/// Days after an agreement takes effect within which parties may apply for judicial confirmation.
pub const JUDICIAL_CONFIRMATION_WINDOW_DAYS: i64 = 30;
/// Longest single extension a committee lead may approve.
pub const MAX_EXTENSION_DAYS: u32 = 60;

/// Why a command was refused. Nothing was recorded.
///
/// ### Handling
/// `UnknownCase` is NOT_FOUND for a caller; `Refused` is FAILED_PRECONDITION and its reason is
/// meant for the mediator or clerk who sent the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The command needs an existing case and there is none.
    #[error("no such case")]
    UnknownCase,
    /// The command is not allowed in the case's present state.
    #[error("{0}")]
    Refused(String),
}

fn refuse<T>(reason: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::Refused(reason.into()))
}

/// Status of one referral to a linkage partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferralStatus {
    Pending,
    Accepted,
    Declined,
    Returned,
    Concluded,
}

impl ReferralStatus {
    /// Whether the partner still holds the referral.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Accepted)
    }
}

/// One referral (移交) of the case to a partner institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    pub id: String,
    pub partner_kind: pb::PartnerKind,
    pub partner_id: String,
    pub status: ReferralStatus,
}

/// Progress of a judicial confirmation (司法确认) application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudicialStatus {
    Requested,
    Accepted,
    Granted,
    Refused,
}

/// A case as its events leave it. `Case::default()` is "no case yet".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Case {
    /// Number of events applied; the next event gets `version + 1`.
    pub version: u64,
    pub state: Option<pb::CaseState>,
    pub channel: i32,
    pub external_ref: String,
    pub unit_code: String,
    /// The partner institution that sent the case in (inbound referral channels), if any.
    pub source_partner_id: String,
    pub urgency: i32,
    pub tier: Option<pb::Tier>,
    /// Committee id and its unit code, while one owns the case.
    pub committee: Option<(String, String)>,
    pub mediators: Vec<String>,
    /// Session ids, each with whether it has been held.
    pub sessions: Vec<(String, bool)>,
    pub arrived_on_site: bool,
    pub paused: bool,
    pub extension_days: u32,
    pub referrals: Vec<Referral>,
    pub party_names: Vec<String>,
    /// Each party's phone number and resident ID number as last recorded (registration, then
    /// corrections), in the order of `party_names`.
    pub party_contacts: Vec<(String, String)>,
    pub agreement: Option<pb::Agreement>,
    pub performance: Option<pb::PerformanceStatus>,
    pub judicial: Option<JudicialStatus>,
    /// The court a judicial confirmation was applied for at (its partner id): only it answers.
    pub judicial_court: Option<String>,
    pub closure: Option<pb::ClosureOutcome>,
    /// Satisfaction recorded since the last closure, if any.
    pub follow_up: Option<pb::Satisfaction>,
    pub merged_into: Option<String>,
    pub reopen_count: u32,
    /// Deadline ids that have warned / breached, so each fires once.
    pub warned: Vec<String>,
    pub breached: Vec<String>,
    /// The deadline clocks, followed only when events are folded with their times
    /// ([`Case::apply_at`]); the timers' commands are judged by them.
    pub clocks: Clocks,
}

impl Case {
    /// Rebuilds a case from its events, in order, without their times: the deadline clocks are
    /// not followed (see [`Case::from_timed_events`]).
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Kind>) -> Self {
        let mut case = Self::default();
        for event in events {
            case.apply(event);
        }
        case
    }

    /// Rebuilds a case from its events, in order, each with the instant it occurred at (its
    /// envelope's `occurred_at`), deadline clocks included.
    pub fn from_timed_events<'a>(events: impl IntoIterator<Item = (&'a Kind, Timestamp)>) -> Self {
        let mut case = Self::default();
        for (event, at) in events {
            case.apply_at(event, at);
        }
        case
    }

    /// Folds one event that occurred at `at`, deadline clocks included. Fold a case's whole history
    /// this way or entirely with [`Case::apply`]: the clocks count events to name deadlines.
    pub fn apply_at(&mut self, event: &Kind, at: Timestamp) {
        self.clocks.apply(event, at);
        self.apply(event);
    }

    /// Whether the case has been registered.
    pub fn exists(&self) -> bool {
        self.state.is_some()
    }

    /// The state, or `Registered` semantics for a case that does not exist yet.
    pub fn status(&self) -> pb::CaseState {
        self.state.unwrap_or(pb::CaseState::Unspecified)
    }

    /// Whether the case is still being handled (not closed or merged).
    pub fn is_open(&self) -> bool {
        !matches!(self.status(), pb::CaseState::Closed | pb::CaseState::Merged | pb::CaseState::Unspecified)
    }

    /// Folds one event into the state, without its time (the deadline clocks stay as they are).
    /// Events are facts: applying never fails.
    pub fn apply(&mut self, event: &Kind) {
        self.version += 1;
        self.state = Some(state_after(self.status(), event));
        match event {
            Kind::CaseRegistered(e) => {
                self.channel = e.channel;
                self.external_ref.clone_from(&e.external_ref);
                self.unit_code.clone_from(&e.unit_code);
                self.source_partner_id.clone_from(&e.source_partner_id);
                self.urgency = e.urgency;
                self.party_names = e.parties.iter().map(|p| p.name.clone()).collect();
                self.party_contacts = e.parties.iter().map(|p| (p.phone.clone(), p.resident_id.clone())).collect();
            }
            Kind::CaseDispatched(e) => {
                self.tier = Some(e.tier());
                self.committee = Some((e.committee_id.clone(), e.committee_unit_code.clone()));
            }
            Kind::CaseReturned(_) => {
                self.committee = None;
            }
            Kind::CaseAccepted(_) => {}
            Kind::MediatorsAssigned(e) => {
                for m in &e.mediator_ids {
                    if !self.mediators.contains(m) {
                        self.mediators.push(m.clone());
                    }
                }
            }
            Kind::SessionScheduled(e) => {
                self.sessions.push((e.session_id.clone(), false));
            }
            Kind::SessionHeld(e) => match self.sessions.iter_mut().find(|(id, _)| *id == e.session_id) {
                Some(session) => session.1 = true,
                None => self.sessions.push((e.session_id.clone(), true)),
            },
            Kind::ArrivedOnSite(_) => self.arrived_on_site = true,
            Kind::ProgressReported(_) => {}
            Kind::ClockPaused(_) => self.paused = true,
            Kind::ClockResumed(_) => self.paused = false,
            Kind::ExtensionGranted(e) => self.extension_days += e.days,
            Kind::ReferralMade(e) => self.referrals.push(Referral {
                id: e.referral_id.clone(),
                partner_kind: e.partner_kind(),
                partner_id: e.partner_id.clone(),
                status: ReferralStatus::Pending,
            }),
            Kind::ReferralAccepted(e) => self.set_referral(&e.referral_id, ReferralStatus::Accepted),
            Kind::ReferralDeclined(e) => self.set_referral(&e.referral_id, ReferralStatus::Declined),
            Kind::ReferralReturned(e) => {
                self.set_referral(&e.referral_id, ReferralStatus::Returned);
            }
            Kind::ReferralConcluded(e) => self.set_referral(&e.referral_id, ReferralStatus::Concluded),
            Kind::CaseSettled(e) => {
                self.agreement.clone_from(&e.agreement);
                self.performance = None;
                self.judicial = None;
                self.judicial_court = None;
            }
            Kind::PerformanceRecorded(e) => self.performance = Some(e.status()),
            Kind::JudicialConfirmationRequested(e) => {
                self.judicial = Some(JudicialStatus::Requested);
                self.judicial_court = Some(e.court_id.clone());
            }
            Kind::JudicialConfirmationAccepted(_) => self.judicial = Some(JudicialStatus::Accepted),
            Kind::JudicialConfirmationRuled(e) => {
                self.judicial = Some(if e.granted { JudicialStatus::Granted } else { JudicialStatus::Refused });
            }
            Kind::MediationFailed(_) => {}
            Kind::CaseEscalated(e) => {
                self.tier = Some(e.to_tier());
                self.committee = Some((e.committee_id.clone(), e.committee_unit_code.clone()));
                self.mediators.clear();
                self.paused = false;
            }
            Kind::CaseClosed(e) => {
                self.closure = Some(e.outcome());
                self.follow_up = None;
            }
            Kind::FollowUpRecorded(e) => self.follow_up = Some(e.satisfaction()),
            Kind::CaseReopened(_) => {
                self.closure = None;
                self.reopen_count += 1;
                self.paused = false;
            }
            Kind::CaseMerged(e) => {
                self.merged_into = Some(e.into_case_id.clone());
            }
            Kind::DeadlineWarned(e) => self.warned.push(e.deadline_id.clone()),
            Kind::DeadlineBreached(e) => self.breached.push(e.deadline_id.clone()),
            Kind::PartyContactCorrected(e) => {
                if let Some(contact) = usize::try_from(e.party_index).ok().and_then(|i| self.party_contacts.get_mut(i))
                {
                    if !e.new_phone.is_empty() {
                        contact.0.clone_from(&e.new_phone);
                    }
                    if !e.new_resident_id.is_empty() {
                        contact.1.clone_from(&e.new_resident_id);
                    }
                }
            }
        }
    }

    fn set_referral(&mut self, id: &str, status: ReferralStatus) {
        if let Some(r) = self.referrals.iter_mut().find(|r| r.id == id) {
            r.status = status;
        }
    }

    fn referral(&self, id: &str) -> Result<&Referral, Rejection> {
        self.referrals.iter().find(|r| r.id == id).map_or_else(|| refuse(format!("the case has no referral {id}")), Ok)
    }

    fn has_open_referral(&self) -> bool {
        self.referrals.iter().any(|r| r.status.is_open())
    }
}

/// The state a case in `current` moves to when `event` happens: the edges of the state machine.
/// Events that do not move the case leave it where it is. Read models use this too, so a queue
/// never disagrees with what commands see.
pub fn state_after(current: pb::CaseState, event: &Kind) -> pb::CaseState {
    use pb::CaseState as S;
    match event {
        Kind::CaseRegistered(_) | Kind::CaseReturned(_) => S::Registered,
        Kind::CaseDispatched(_) | Kind::CaseEscalated(_) => S::Dispatched,
        Kind::CaseAccepted(_) | Kind::CaseReopened(_) => S::Accepted,
        Kind::SessionScheduled(_) | Kind::SessionHeld(_) | Kind::ReferralReturned(_) => S::InMediation,
        Kind::CaseSettled(_) => S::Settled,
        Kind::MediationFailed(_) => S::Failed,
        Kind::CaseClosed(_) => S::Closed,
        Kind::CaseMerged(_) => S::Merged,
        _ => current,
    }
}

/// Human name of a state, for rejection reasons.
fn state_name(state: pb::CaseState) -> &'static str {
    use pb::CaseState as S;
    match state {
        S::Unspecified => "not registered",
        S::Registered => "registered and awaiting dispatch",
        S::Dispatched => "dispatched and awaiting sign-for",
        S::Accepted => "signed for by the committee",
        S::InMediation => "in mediation",
        S::Settled => "settled",
        S::Failed => "failed in mediation",
        S::Closed => "closed",
        S::Merged => "merged into another case",
    }
}

/// Refuses unless the case is in one of `allowed`; `what` names the action for the reason.
fn require(case: &Case, allowed: &[pb::CaseState], what: &str) -> Result<(), Rejection> {
    let state = case.status();
    if allowed.contains(&state) {
        return Ok(());
    }
    refuse(format!("cannot {what}: the case is {}", state_name(state)))
}

fn next_tier(tier: pb::Tier) -> Option<pb::Tier> {
    use pb::Tier as T;
    match tier {
        T::Grid => Some(T::Community),
        T::Community => Some(T::Street),
        T::Street => Some(T::District),
        T::District | T::Unspecified => None,
    }
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn opt(text: Option<&impl ToString>) -> String {
    text.map(ToString::to_string).unwrap_or_default()
}

/// Decides `command` against `case` at instant `now`: the events to record, in order, or why not.
///
/// # Errors
/// [`Rejection::UnknownCase`] when the case does not exist and the command is not a registration;
/// [`Rejection::Refused`] with a reason a mediator understands for any illegal transition.
pub fn decide(case: &Case, command: &Command, now: Timestamp) -> Result<Vec<Kind>, Rejection> {
    use pb::CaseState as S;
    if let Command::Register(register) = command {
        if case.exists() {
            return refuse("the case is already registered");
        }
        return Ok(vec![registered(register, now)]);
    }
    if !case.exists() {
        return Err(Rejection::UnknownCase);
    }
    if case.status() == S::Merged {
        return refuse("the case was merged into another case and accepts nothing more");
    }
    const HANDLING: &[S] = &[S::Accepted, S::InMediation];
    const OPEN: &[S] = &[S::Registered, S::Dispatched, S::Accepted, S::InMediation, S::Settled, S::Failed];
    let event = match command {
        // Decided above; reaching here would mean registering twice.
        Command::Register(_) => return refuse("the case is already registered"),
        Command::Dispatch { tier, committee, category, risk_level, note } => {
            require(case, &[S::Registered], "dispatch")?;
            if *tier == pb::Tier::Unspecified {
                return refuse("choose the tier that handles the case: grid, community, street or district");
            }
            Kind::CaseDispatched(pb::CaseDispatched {
                tier: *tier as i32,
                committee_id: committee.id.to_string(),
                committee_unit_code: committee.unit.to_string(),
                category: opt(category.as_ref()),
                risk_level: *risk_level as i32,
                note: opt(note.as_ref()),
            })
        }
        Command::Return { reason } => {
            require(case, &[S::Dispatched], "return the case (退单)")?;
            let committee_id = case.committee.as_ref().map(|c| c.0.clone()).unwrap_or_default();
            Kind::CaseReturned(pb::CaseReturned { committee_id, reason: reason.to_string() })
        }
        Command::Accept => {
            require(case, &[S::Dispatched], "sign for the case")?;
            let committee_id = case.committee.as_ref().map(|c| c.0.clone()).unwrap_or_default();
            Kind::CaseAccepted(pb::CaseAccepted { committee_id })
        }
        Command::AssignMediators { mediator_ids } => {
            require(case, HANDLING, "assign mediators")?;
            if mediator_ids.is_empty() {
                return refuse("name at least one mediator");
            }
            Kind::MediatorsAssigned(pb::MediatorsAssigned {
                mediator_ids: mediator_ids.iter().map(ToString::to_string).collect(),
            })
        }
        Command::ScheduleSession { scheduled_for, place, online } => {
            require(case, HANDLING, "schedule a mediation session")?;
            Kind::SessionScheduled(pb::SessionScheduled {
                session_id: format!("S{}", case.sessions.len() + 1),
                scheduled_for_unix_ms: ms(*scheduled_for),
                place: opt(place.as_ref()),
                online: *online,
            })
        }
        Command::RecordSession { session_id, attendees, record } => {
            require(case, HANDLING, "record a mediation session")?;
            let session_id = match session_id {
                Some(id) => match case.sessions.iter().find(|(s, _)| s == id.as_str()) {
                    Some((_, true)) => return refuse(format!("session {id} has already been recorded")),
                    Some(_) => id.to_string(),
                    None => return refuse(format!("the case has no session {id}")),
                },
                None => format!("S{}", case.sessions.len() + 1),
            };
            Kind::SessionHeld(pb::SessionHeld {
                session_id,
                held_at_unix_ms: ms(now),
                attendees: attendees.iter().map(ToString::to_string).collect(),
                record: record.to_string(),
            })
        }
        Command::RecordArrival { note } => {
            require(case, &[S::Dispatched, S::Accepted, S::InMediation], "record arrival on site")?;
            if case.arrived_on_site {
                return refuse("arrival on site has already been recorded");
            }
            Kind::ArrivedOnSite(pb::ArrivedOnSite { arrived_at_unix_ms: ms(now), note: opt(note.as_ref()) })
        }
        Command::ReportProgress { note } => {
            require(case, OPEN, "report progress")?;
            Kind::ProgressReported(pb::ProgressReported { note: note.to_string() })
        }
        Command::PauseClock { reason } => {
            require(case, HANDLING, "pause the clock")?;
            if case.paused {
                return refuse("the clock is already paused");
            }
            Kind::ClockPaused(pb::ClockPaused { reason: reason.to_string() })
        }
        Command::ResumeClock { note } => {
            require(case, OPEN, "resume the clock")?;
            if !case.paused {
                return refuse("the clock is not paused");
            }
            Kind::ClockResumed(pb::ClockResumed { note: opt(note.as_ref()) })
        }
        Command::GrantExtension { days, reason, approved_by } => {
            require(case, HANDLING, "grant an extension")?;
            if *days == 0 || *days > MAX_EXTENSION_DAYS {
                return refuse(format!("an extension is 1 to {MAX_EXTENSION_DAYS} days"));
            }
            Kind::ExtensionGranted(pb::ExtensionGranted {
                approved_by: approved_by.clone(),
                days: *days,
                reason: reason.to_string(),
            })
        }
        Command::Refer { partner_kind, partner_id, partner_name, reason } => {
            require(case, &[S::Accepted, S::InMediation, S::Failed], "refer the case to a partner")?;
            if case.referrals.iter().any(|r| r.partner_id == partner_id.as_str() && r.status.is_open()) {
                return refuse(format!("the case already has an open referral to {partner_id}"));
            }
            Kind::ReferralMade(pb::ReferralMade {
                referral_id: format!("R{}", case.referrals.len() + 1),
                partner_kind: *partner_kind as i32,
                partner_id: partner_id.to_string(),
                partner_name: partner_name.to_string(),
                reason: reason.to_string(),
            })
        }
        Command::AcceptReferral { referral_id } => {
            let referral = case.referral(referral_id.as_str())?;
            if referral.status != ReferralStatus::Pending {
                return refuse(format!("referral {referral_id} is not awaiting acceptance"));
            }
            Kind::ReferralAccepted(pb::ReferralAccepted { referral_id: referral_id.to_string() })
        }
        Command::DeclineReferral { referral_id, reason } => {
            let referral = case.referral(referral_id.as_str())?;
            if referral.status != ReferralStatus::Pending {
                return refuse(format!("referral {referral_id} is not awaiting acceptance"));
            }
            Kind::ReferralDeclined(pb::ReferralDeclined {
                referral_id: referral_id.to_string(),
                reason: reason.to_string(),
            })
        }
        Command::ReturnReferral { referral_id, reason } => {
            let referral = case.referral(referral_id.as_str())?;
            if !referral.status.is_open() {
                return refuse(format!("referral {referral_id} is no longer with the partner"));
            }
            require(case, &[S::Accepted, S::InMediation, S::Failed], "return the referral for mediation")?;
            Kind::ReferralReturned(pb::ReferralReturned {
                referral_id: referral_id.to_string(),
                reason: reason.to_string(),
            })
        }
        Command::ConcludeReferral { referral_id, outcome, summary } => {
            let referral = case.referral(referral_id.as_str())?;
            if referral.status != ReferralStatus::Accepted {
                return refuse(format!("referral {referral_id} must be accepted before it is concluded"));
            }
            Kind::ReferralConcluded(pb::ReferralConcluded {
                referral_id: referral_id.to_string(),
                outcome: *outcome as i32,
                summary: summary.to_string(),
            })
        }
        Command::Settle(agreement) => {
            require(case, HANDLING, "record a settlement")?;
            Kind::CaseSettled(pb::CaseSettled { agreement: Some(effective_agreement(case, agreement, now)?) })
        }
        Command::RecordPerformance { status, note } => {
            if case.agreement.is_none() {
                return refuse("performance is recorded only for a case with a mediation agreement");
            }
            require(case, &[S::Settled, S::Closed], "record performance")?;
            Kind::PerformanceRecorded(pb::PerformanceRecorded { status: *status as i32, note: opt(note.as_ref()) })
        }
        Command::RequestJudicialConfirmation { court_id, court_name } => {
            let Some(agreement) = case.agreement.as_ref().filter(|_| matches!(case.status(), S::Settled | S::Closed))
            else {
                return refuse("judicial confirmation needs a settled case with an effective mediation agreement");
            };
            if agreement.personal_status_matter {
                return refuse("agreements on identity, marriage or adoption cannot be judicially confirmed");
            }
            if matches!(
                case.judicial,
                Some(JudicialStatus::Requested | JudicialStatus::Accepted | JudicialStatus::Granted)
            ) {
                return refuse("judicial confirmation has already been applied for");
            }
            // In whole milliseconds, as the agreement records its effective time: a finer `now`
            // would otherwise close the window up to a millisecond early.
            let elapsed = SignedDuration::from_millis(ms(now).saturating_sub(agreement.effective_at_unix_ms));
            if elapsed > SignedDuration::from_hours(24 * JUDICIAL_CONFIRMATION_WINDOW_DAYS) {
                return refuse(format!(
                    "the {JUDICIAL_CONFIRMATION_WINDOW_DAYS}-day window for judicial confirmation after the agreement took effect has passed"
                ));
            }
            Kind::JudicialConfirmationRequested(pb::JudicialConfirmationRequested {
                court_id: court_id.to_string(),
                court_name: court_name.to_string(),
            })
        }
        Command::AcceptJudicialConfirmation { court_case_number } => {
            if case.judicial != Some(JudicialStatus::Requested) {
                return refuse("no judicial confirmation application is awaiting acceptance");
            }
            Kind::JudicialConfirmationAccepted(pb::JudicialConfirmationAccepted {
                court_case_number: court_case_number.to_string(),
            })
        }
        Command::RuleJudicialConfirmation { granted, reason } => {
            if case.judicial != Some(JudicialStatus::Accepted) {
                return refuse("the court must accept the judicial confirmation application before ruling");
            }
            Kind::JudicialConfirmationRuled(pb::JudicialConfirmationRuled {
                granted: *granted,
                reason: opt(reason.as_ref()),
            })
        }
        Command::RecordFailure { reason, advice, advice_note } => {
            require(case, HANDLING, "record that mediation failed")?;
            Kind::MediationFailed(pb::MediationFailed {
                reason: reason.to_string(),
                advice: *advice as i32,
                advice_note: opt(advice_note.as_ref()),
            })
        }
        Command::Escalate { committee, reason, automatic } => {
            escalated(case, committee, reason.to_string(), *automatic)?
        }
        Command::Close { outcome, summary } => {
            use pb::ClosureOutcome as O;
            require(case, &[S::Accepted, S::InMediation, S::Settled, S::Failed], "close the case")?;
            match outcome {
                O::Withdrawn | O::Merged | O::Unspecified => {
                    return refuse("withdrawal and merging have their own commands; close with another outcome");
                }
                O::Resolved | O::PartlyResolved
                    if case.status() == S::Failed
                        && !case.referrals.iter().any(|r| r.status == ReferralStatus::Concluded) =>
                {
                    return refuse("mediation failed and no referral was concluded: the case cannot close as resolved");
                }
                O::Transferred
                    if !case.referrals.iter().any(|r| r.status.is_open() || r.status == ReferralStatus::Concluded) =>
                {
                    return refuse(
                        "a case closes as transferred only when a partner holds or has concluded a referral of it",
                    );
                }
                _ => {}
            }
            if *outcome != O::Transferred && case.has_open_referral() {
                return refuse(
                    "a referral is still open with a partner: close as transferred, or wait for it to conclude",
                );
            }
            Kind::CaseClosed(pb::CaseClosed { outcome: *outcome as i32, summary: summary.to_string() })
        }
        Command::Withdraw { reason } => {
            require(case, OPEN, "withdraw the case")?;
            Kind::CaseClosed(pb::CaseClosed {
                outcome: pb::ClosureOutcome::Withdrawn as i32,
                summary: reason.to_string(),
            })
        }
        Command::Merge { into, reason } => {
            // A merged case accepts nothing, so an open referral would sit in the partner's queue for ever.
            if let Some(open) = case.referrals.iter().find(|r| r.status.is_open()) {
                return refuse(format!(
                    "cannot merge the case: referral {} is still open with {}",
                    open.id, open.partner_id
                ));
            }
            Kind::CaseMerged(pb::CaseMerged { into_case_id: into.to_string(), reason: reason.to_string() })
        }
        Command::RecordFollowUp { method, satisfaction, note } => {
            require(case, &[S::Closed], "record a follow-up (回访)")?;
            if case.follow_up.is_some() {
                return refuse("this closure has already been followed up");
            }
            let follow_up = Kind::FollowUpRecorded(pb::FollowUpRecorded {
                method: *method as i32,
                satisfaction: *satisfaction as i32,
                note: opt(note.as_ref()),
            });
            if *satisfaction == pb::Satisfaction::Dissatisfied && case.closure != Some(pb::ClosureOutcome::Withdrawn) {
                // 二次办理: a dissatisfied follow-up reopens the case in the same commit.
                return Ok(vec![
                    follow_up,
                    Kind::CaseReopened(pb::CaseReopened {
                        reason: "dissatisfied at follow-up (二次办理)".to_owned()
                    }),
                ]);
            }
            follow_up
        }
        Command::Reopen { reason } => {
            require(case, &[S::Closed], "reopen the case")?;
            if case.closure == Some(pb::ClosureOutcome::Withdrawn) {
                return refuse("a withdrawn case cannot be reopened; register the dispute again");
            }
            Kind::CaseReopened(pb::CaseReopened { reason: reason.to_string() })
        }
        Command::CorrectPartyContact { party_index, phone, resident_id, reason } => {
            corrected(case, *party_index, phone.as_ref(), resident_id.as_ref(), reason)?
        }
        Command::WarnDeadline { deadline_id, rules } => {
            let deadline = due_deadline(case, deadline_id.as_str(), &rules.0, now, Firing::Warning)?;
            Kind::DeadlineWarned(warned(case, &deadline))
        }
        Command::BreachDeadline { deadline_id, rules } => {
            let deadline = due_deadline(case, deadline_id.as_str(), &rules.0, now, Firing::Breach)?;
            return Ok(breach(case, &deadline, &rules.0));
        }
    };
    Ok(vec![event])
}

/// Which firing of a deadline a timer asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Firing {
    Warning,
    Breach,
}

/// The deadline `id` of `case`, provided its `firing` is due at `now` and has not happened.
fn due_deadline(case: &Case, id: &str, sla: &Sla, now: Timestamp, firing: Firing) -> Result<Deadline, Rejection> {
    let Some(deadline) = case.clocks.deadline(id, sla) else {
        return refuse(format!("no deadline {id} is running on this case"));
    };
    let local = |t: Timestamp| local_time(sla.calendar_for(&case.clocks.unit_code), t);
    let (done, at, what) = match firing {
        Firing::Warning => (deadline.warned || case.warned.iter().any(|w| w == id), deadline.warn_at, "warns"),
        Firing::Breach => (deadline.breached || case.breached.iter().any(|b| b == id), deadline.due_at, "is due"),
    };
    if done {
        let fired = if firing == Firing::Warning { "warned" } else { "been breached" };
        return refuse(format!("deadline {id} has already {fired}"));
    }
    let due = match firing {
        Firing::Warning => deadline.warning_due(now),
        Firing::Breach => deadline.breach_due(now),
    };
    if !due {
        if deadline.paused_since.is_some() {
            return refuse(format!("the clock of deadline {id} is paused"));
        }
        return refuse(format!("deadline {id} {what} at {}, not yet", local(at)));
    }
    Ok(deadline)
}

/// Who holds the case, as the deadline events record it.
fn holder(case: &Case) -> (i32, String, String) {
    let tier = case.tier.unwrap_or(pb::Tier::Unspecified) as i32;
    let (id, unit) = case.committee.clone().unwrap_or_default();
    (tier, id, unit)
}

fn warned(case: &Case, d: &Deadline) -> pb::DeadlineWarned {
    let (tier, committee_id, committee_unit_code) = holder(case);
    pb::DeadlineWarned {
        clock: d.clock as i32,
        deadline_id: d.id.clone(),
        due_at_unix_ms: ms(d.due_at),
        started_at_unix_ms: ms(d.started_at),
        warn_at_unix_ms: ms(d.warn_at),
        referral_id: d.referral_id.clone(),
        partner_id: d.partner_id.clone(),
        tier,
        committee_id,
        committee_unit_code,
    }
}

/// A breach and what the ladder makes of it: the warning first if it was never recorded, then the
/// breach, then (route next tier, when the directory names the next tier's committee and the case
/// can move there) the automatic escalation.
fn breach(case: &Case, d: &Deadline, sla: &Sla) -> Vec<Kind> {
    let mut events = Vec::with_capacity(3);
    if !d.warned {
        events.push(Kind::DeadlineWarned(warned(case, d)));
    }
    let tier = case.tier.unwrap_or(pb::Tier::Unspecified);
    let ladder = sla.policy().clock(d.clock).map(|c| c.on_breach.clone());
    let mut route = ladder.as_ref().map_or(pb::EscalationRoute::Dispatcher, |l| l.route_at(tier));
    let mut escalation = None;
    if route == pb::EscalationRoute::NextTier {
        let reason = format!("deadline {} breached: escalated to the next tier by the SLA policy", d.id);
        escalation = next_tier(tier)
            .and_then(|next| sla.directory().serving(&case.unit_code, next))
            .and_then(|committee| escalated(case, &committee.committee_ref(), reason, true).ok());
        if escalation.is_none() {
            route = ladder.map_or(pb::EscalationRoute::Dispatcher, |l| l.otherwise);
        }
    }
    let w = warned(case, d);
    events.push(Kind::DeadlineBreached(pb::DeadlineBreached {
        clock: w.clock,
        deadline_id: w.deadline_id,
        due_at_unix_ms: w.due_at_unix_ms,
        started_at_unix_ms: w.started_at_unix_ms,
        route: route as i32,
        referral_id: w.referral_id,
        partner_id: w.partner_id,
        tier: w.tier,
        committee_id: w.committee_id,
        committee_unit_code: w.committee_unit_code,
    }));
    events.extend(escalation);
    events
}

fn registered(c: &RegisterCase, now: Timestamp) -> Kind {
    Kind::CaseRegistered(pb::CaseRegistered {
        channel: c.channel as i32,
        external_ref: opt(c.external_ref.as_ref()),
        parties: c
            .parties
            .iter()
            .map(|p| pb::Party {
                name: p.name.to_string(),
                role: p.role as i32,
                phone: p.phone.as_ref().map(|x| x.as_str().to_owned()).unwrap_or_default(),
                resident_id: p.resident_id.as_ref().map(|x| x.as_str().to_owned()).unwrap_or_default(),
            })
            .collect(),
        category: c.category.to_string(),
        description: c.description.to_string(),
        unit_code: c.unit_code.to_string(),
        address: c.address.to_string(),
        urgency: c.urgency as i32,
        risk_signals: c.risk_signals.iter().map(|r| *r as i32).collect(),
        received_at_unix_ms: ms(c.received_at.unwrap_or(now)),
        reply_deadline_unix_ms: c.reply_deadline.map_or(0, ms),
        source_partner_kind: c.source_partner.as_ref().map_or(0, |p| p.0 as i32),
        source_partner_id: c.source_partner.as_ref().map(|p| p.1.to_string()).unwrap_or_default(),
        intake_channel: opt(c.intake_channel.as_ref()),
    })
}

/// A correction of a party's contact data: what changes, with the values it replaces. The
/// history keeps the old values; nothing is edited.
fn corrected(
    case: &Case,
    party_index: u32,
    phone: Option<&PhoneNumber>,
    resident_id: Option<&ResidentId>,
    reason: &ShortText,
) -> Result<Kind, Rejection> {
    let index = usize::try_from(party_index).unwrap_or(usize::MAX);
    let (Some(name), Some((old_phone, old_id))) = (case.party_names.get(index), case.party_contacts.get(index)) else {
        return refuse(format!("the case has no party {party_index} (parties are numbered from 0)"));
    };
    let phone = phone.map(PhoneNumber::as_str).filter(|p| p != old_phone);
    let resident_id = resident_id.map(ResidentId::as_str).filter(|i| i != old_id);
    if phone.is_none() && resident_id.is_none() {
        return refuse(
            "nothing to correct: give a phone number or resident ID number that differs from the recorded one",
        );
    }
    Ok(Kind::PartyContactCorrected(pb::PartyContactCorrected {
        party_index,
        party_name: name.clone(),
        old_phone: if phone.is_some() { old_phone.clone() } else { String::new() },
        new_phone: phone.unwrap_or_default().to_owned(),
        old_resident_id: if resident_id.is_some() { old_id.clone() } else { String::new() },
        new_resident_id: resident_id.unwrap_or_default().to_owned(),
        reason: reason.to_string(),
    }))
}

fn escalated(case: &Case, committee: &CommitteeRef, reason: String, automatic: bool) -> Result<Kind, Rejection> {
    use pb::CaseState as S;
    require(case, &[S::Dispatched, S::Accepted, S::InMediation, S::Failed], "escalate the case")?;
    let from = case.tier.unwrap_or(pb::Tier::Unspecified);
    let Some(to) = next_tier(from) else {
        return refuse("the case is already at district tier; there is no higher tier to escalate to");
    };
    if case.committee.as_ref().is_some_and(|(id, _)| id == committee.id.as_str()) {
        return refuse("escalation must move the case to another committee");
    }
    Ok(Kind::CaseEscalated(pb::CaseEscalated {
        from_tier: from as i32,
        to_tier: to as i32,
        committee_id: committee.id.to_string(),
        committee_unit_code: committee.unit.to_string(),
        reason,
        automatic,
    }))
}

/// Checks that the agreement is complete and signed by every party and the mediator, and makes it
/// effective now.
fn effective_agreement(case: &Case, a: &Agreement, now: Timestamp) -> Result<pb::Agreement, Rejection> {
    let named: Vec<&str> = a.party_names.iter().map(|n| n.as_str()).collect();
    if let Some(missing) = case.party_names.iter().find(|p| !named.contains(&p.as_str())) {
        return refuse(format!("the agreement does not name the registered party {missing}"));
    }
    let signed: Vec<&str> = a.signed_by.iter().map(|n| n.as_str()).collect();
    if let Some(unsigned) = named.iter().find(|p| !signed.contains(p)) {
        return refuse(format!("the agreement is not effective: {unsigned} has not signed"));
    }
    if !signed.contains(&a.mediator_name.as_str()) {
        return refuse("the agreement is not effective: the mediator has not signed");
    }
    Ok(pb::Agreement {
        party_names: named.iter().map(|s| (*s).to_owned()).collect(),
        facts: a.facts.to_string(),
        points_in_dispute: a.points_in_dispute.to_string(),
        terms: a.terms.to_string(),
        performance_method: a.performance_method.to_string(),
        performance_deadline_unix_ms: a.performance_deadline.map_or(0, ms),
        signed_by: signed.iter().map(|s| (*s).to_owned()).collect(),
        mediator_id: a.mediator_id.to_string(),
        mediator_name: a.mediator_name.to_string(),
        effective_at_unix_ms: ms(now),
        personal_status_matter: a.personal_status_matter,
    })
}

//! Commands: what an actor asks of a case, with every field already parsed into domain values.
//! The gRPC edge builds them; [`crate::case::decide`] turns them into events or a rejection.

use std::sync::Arc;

use jiff::Timestamp;

use crate::event::pb;
use crate::sla::Sla;
use crate::values::{CaseId, Category, Ident, LongText, PersonName, PhoneNumber, ResidentId, ShortText, UnitCode};

/// A party to the dispute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub name: PersonName,
    pub role: pb::PartyRole,
    pub phone: Option<PhoneNumber>,
    pub resident_id: Option<ResidentId>,
}

/// A committee (调委会) that can own a case, and the unit it hangs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeRef {
    pub id: Ident,
    pub unit: UnitCode,
}

/// Registration (受理登记) of a new dispute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterCase {
    pub channel: pb::Channel,
    /// 12345 work-order number or partner file number; intake is idempotent on it for ever.
    pub external_ref: Option<Ident>,
    pub parties: Vec<Party>,
    pub category: Category,
    pub description: LongText,
    pub unit_code: UnitCode,
    pub address: ShortText,
    pub urgency: pb::Urgency,
    pub risk_signals: Vec<pb::RiskSignal>,
    pub received_at: Option<Timestamp>,
    /// The hotline's own reply deadline.
    pub reply_deadline: Option<Timestamp>,
    /// The partner that sent an inbound referral.
    pub source_partner: Option<(pb::PartnerKind, Ident)>,
    /// How the caller reached the 12345 hotline (phone, web, app, …), when the hotline says.
    pub intake_channel: Option<ShortText>,
}

/// A mediation agreement (调解协议) as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    pub party_names: Vec<PersonName>,
    pub facts: LongText,
    pub points_in_dispute: LongText,
    pub terms: LongText,
    pub performance_method: ShortText,
    pub performance_deadline: Option<Timestamp>,
    /// Names of everyone who signed: each party and the mediator.
    pub signed_by: Vec<PersonName>,
    /// The mediator, by id; the mediator signs by name in `signed_by`.
    pub mediator_id: Ident,
    pub mediator_name: PersonName,
    /// Identity, marriage or adoption matters: these cannot be judicially confirmed.
    pub personal_status_matter: bool,
}

/// The SLA rules a deadline command is judged by: policy, calendars and committee directory. Every
/// command of a timer worker shares one; two are equal when they are the same rules.
#[derive(Clone)]
pub struct Rules(pub Arc<Sla>);

impl PartialEq for Rules {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Rules {}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rules(policy {})", self.0.policy().version())
    }
}

/// Everything that can be asked of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Register(Box<RegisterCase>),
    Dispatch {
        tier: pb::Tier,
        committee: CommitteeRef,
        category: Option<Category>,
        risk_level: pb::RiskLevel,
        note: Option<ShortText>,
    },
    Return {
        reason: ShortText,
    },
    Accept,
    AssignMediators {
        mediator_ids: Vec<Ident>,
    },
    ScheduleSession {
        scheduled_for: Timestamp,
        place: Option<ShortText>,
        online: bool,
    },
    RecordSession {
        session_id: Option<Ident>,
        attendees: Vec<PersonName>,
        record: LongText,
    },
    RecordArrival {
        note: Option<ShortText>,
    },
    ReportProgress {
        note: LongText,
    },
    PauseClock {
        reason: ShortText,
    },
    ResumeClock {
        note: Option<ShortText>,
    },
    GrantExtension {
        days: u32,
        reason: ShortText,
        /// Who approved the extension: the authenticated committee lead, filled in by the edge.
        approved_by: String,
    },
    Refer {
        partner_kind: pb::PartnerKind,
        partner_id: Ident,
        partner_name: ShortText,
        reason: ShortText,
    },
    AcceptReferral {
        referral_id: Ident,
    },
    DeclineReferral {
        referral_id: Ident,
        reason: ShortText,
    },
    ReturnReferral {
        referral_id: Ident,
        reason: ShortText,
    },
    ConcludeReferral {
        referral_id: Ident,
        outcome: pb::ReferralOutcome,
        summary: LongText,
    },
    Settle(Box<Agreement>),
    RecordPerformance {
        status: pb::PerformanceStatus,
        note: Option<ShortText>,
    },
    RequestJudicialConfirmation {
        court_id: Ident,
        court_name: ShortText,
    },
    AcceptJudicialConfirmation {
        court_case_number: Ident,
    },
    RuleJudicialConfirmation {
        granted: bool,
        reason: Option<ShortText>,
    },
    RecordFailure {
        reason: ShortText,
        advice: pb::FailureAdvice,
        advice_note: Option<ShortText>,
    },
    Escalate {
        committee: CommitteeRef,
        reason: ShortText,
        automatic: bool,
    },
    Close {
        outcome: pb::ClosureOutcome,
        summary: LongText,
    },
    Withdraw {
        reason: ShortText,
    },
    Merge {
        into: CaseId,
        reason: ShortText,
    },
    RecordFollowUp {
        method: pb::FollowUpMethod,
        satisfaction: pb::Satisfaction,
        note: Option<ShortText>,
    },
    Reopen {
        reason: ShortText,
    },
    /// Corrects a party's phone number and/or resident ID number (at least one is given).
    CorrectPartyContact {
        party_index: u32,
        phone: Option<PhoneNumber>,
        resident_id: Option<ResidentId>,
        reason: ShortText,
    },
    /// The timers: the deadline's warning time has come.
    WarnDeadline {
        deadline_id: Ident,
        rules: Rules,
    },
    /// The timers: the deadline has passed; escalate by the ladder.
    BreachDeadline {
        deadline_id: Ident,
        rules: Rules,
    },
}

impl Command {
    /// The command's name, as recorded in the commit.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Register(_) => "RegisterCase",
            Self::Dispatch { .. } => "DispatchCase",
            Self::Return { .. } => "ReturnCase",
            Self::Accept => "AcceptCase",
            Self::AssignMediators { .. } => "AssignMediators",
            Self::ScheduleSession { .. } => "ScheduleSession",
            Self::RecordSession { .. } => "RecordSession",
            Self::RecordArrival { .. } => "RecordArrival",
            Self::ReportProgress { .. } => "ReportProgress",
            Self::PauseClock { .. } => "PauseClock",
            Self::ResumeClock { .. } => "ResumeClock",
            Self::GrantExtension { .. } => "GrantExtension",
            Self::Refer { .. } => "ReferCase",
            Self::AcceptReferral { .. } => "AcceptReferral",
            Self::DeclineReferral { .. } => "DeclineReferral",
            Self::ReturnReferral { .. } => "ReturnReferral",
            Self::ConcludeReferral { .. } => "ConcludeReferral",
            Self::Settle(_) => "RecordSettlement",
            Self::RecordPerformance { .. } => "RecordPerformance",
            Self::RequestJudicialConfirmation { .. } => "RequestJudicialConfirmation",
            Self::AcceptJudicialConfirmation { .. } => "AcceptJudicialConfirmation",
            Self::RuleJudicialConfirmation { .. } => "RuleJudicialConfirmation",
            Self::RecordFailure { .. } => "RecordMediationFailure",
            Self::Escalate { .. } => "EscalateCase",
            Self::Close { .. } => "CloseCase",
            Self::Withdraw { .. } => "WithdrawCase",
            Self::Merge { .. } => "MergeCase",
            Self::RecordFollowUp { .. } => "RecordFollowUp",
            Self::Reopen { .. } => "ReopenCase",
            Self::CorrectPartyContact { .. } => "CorrectPartyContact",
            Self::WarnDeadline { .. } => "WarnDeadline",
            Self::BreachDeadline { .. } => "BreachDeadline",
        }
    }
}

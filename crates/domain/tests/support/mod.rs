//! Test support for the case domain: a given/when/then harness in the cqrs-es style, a fixed
//! clock, builders for realistic commands taken from the field reports (a 12345 order about a
//! neighbour's water leak in Jiangjin, Chongqing), and histories that bring a case to each state.
//!
//! Each integration-test binary uses part of this module, so unused items are expected.
#![allow(dead_code)]

use std::sync::{Arc, LazyLock};

use fengqiao_domain::case::Rejection;
use fengqiao_domain::command::{Agreement, CommitteeRef, Party, RegisterCase, Rules};
use fengqiao_domain::event::{Kind, pb, type_name};
use fengqiao_domain::sla::Sla;
use fengqiao_domain::values::{
    CaseId, Category, Ident, LongText, PersonName, PhoneNumber, ResidentId, ShortText, UnitCode,
};
use fengqiao_domain::{Case, Command, decide};
use jiff::{SignedDuration, Timestamp};

// ---------------------------------------------------------------------------------------------
// Time

/// The fixed "now" of every test: Friday 14 March 2025, 09:30 in Chongqing (UTC+8).
pub fn now() -> Timestamp {
    "2025-03-14T01:30:00Z".parse().expect("a valid timestamp")
}

/// `now()` moved by `hours` (negative for the past).
pub fn hours_later(hours: i64) -> Timestamp {
    now() + SignedDuration::from_hours(hours)
}

/// `now()` moved by `days` of 24 hours.
pub fn days_later(days: i64) -> Timestamp {
    hours_later(24 * days)
}

/// Epoch milliseconds of `t`, as events carry times.
pub fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

// ---------------------------------------------------------------------------------------------
// Given / when / then

/// A case known by its past events, about to receive a command.
pub struct Given {
    case: Case,
    now: Timestamp,
}

/// A case with these events in its past (none: the case does not exist yet), folded without their
/// times: its deadline clocks are not followed (histories built with [`History`] have them).
pub fn given(history: Vec<Kind>) -> Given {
    Given { case: Case::from_events(&history), now: now() }
}

/// No case at all.
pub fn given_no_case() -> Given {
    given(Vec::new())
}

impl Given {
    /// Decides at `now` instead of the fixed test instant.
    pub fn at(mut self, now: Timestamp) -> Self {
        self.now = now;
        self
    }

    /// Decides `command` against the case.
    pub fn when(self, command: Command) -> Then {
        let case = self.case.clone();
        let outcome = decide(&case, &command, self.now);
        // Deciding is pure: the same inputs give the same answer, and the case is untouched.
        assert_eq!(outcome, decide(&case, &command, self.now), "decide is not deterministic for {}", command.name());
        assert_eq!(case, self.case, "decide changed the case");
        Then { case, command, outcome, now: self.now }
    }
}

/// What a decision came to.
pub struct Then {
    case: Case,
    command: Command,
    outcome: Result<Vec<Kind>, Rejection>,
    now: Timestamp,
}

impl Then {
    /// Asserts the command was accepted with exactly `expected`; returns the case after them.
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<Kind>) -> Case {
        let events = self.accepted();
        assert_eq!(events, expected, "{} emitted other events than expected", self.command.name());
        self.fold(&events)
    }

    /// Asserts the command was accepted with events of these type names, in this order; returns
    /// the events, for checks on their fields.
    #[track_caller]
    pub fn then_expect_event_types(self, expected: &[&str]) -> Vec<Kind> {
        let events = self.accepted();
        let names: Vec<&str> = events.iter().map(type_name).collect();
        assert_eq!(names, expected, "{} emitted other event types than expected", self.command.name());
        events
    }

    /// Asserts the command was refused with a reason containing `contains`, which must read well to
    /// a mediator.
    #[track_caller]
    pub fn then_expect_rejection(self, contains: &str) {
        match self.outcome {
            Err(Rejection::Refused(reason)) => assert!(
                reason.contains(contains),
                "{} was refused with {reason:?}, which does not mention {contains:?}",
                self.command.name()
            ),
            other => panic!("{} should have been refused ({contains:?}) but got {other:?}", self.command.name()),
        }
    }

    /// Asserts the command was refused because there is no such case.
    #[track_caller]
    pub fn then_expect_unknown_case(self) {
        assert_eq!(self.outcome, Err(Rejection::UnknownCase), "{} on no case", self.command.name());
    }

    #[track_caller]
    fn accepted(&self) -> Vec<Kind> {
        match &self.outcome {
            Ok(events) => events.clone(),
            Err(rejection) => panic!("{} was refused: {rejection}", self.command.name()),
        }
    }

    fn fold(mut self, events: &[Kind]) -> Case {
        let before = self.case.version;
        // A case whose clocks are followed keeps following them.
        let timed = self.case.clocks.version == self.case.version;
        for event in events {
            if timed { self.case.apply_at(event, self.now) } else { self.case.apply(event) }
        }
        assert_eq!(self.case.version, before + events.len() as u64, "version must count every event");
        self.case
    }
}

// ---------------------------------------------------------------------------------------------
// Histories: a case brought to a state by accepted commands

/// A case's past built by running commands through `decide`, so every history is one the domain
/// itself would have recorded.
#[derive(Clone, Default)]
pub struct History {
    events: Vec<Kind>,
    case: Case,
}

impl History {
    /// No case yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `command` at the fixed `now`; panics if it is refused.
    #[track_caller]
    pub fn then(self, command: Command) -> Self {
        self.then_at(now(), command)
    }

    /// Runs `command` at `at`; panics if it is refused.
    #[track_caller]
    pub fn then_at(mut self, at: Timestamp, command: Command) -> Self {
        let name = command.name();
        let events = decide(&self.case, &command, at)
            .unwrap_or_else(|rejection| panic!("history step {name} was refused: {rejection}"));
        for event in events {
            self.case.apply_at(&event, at);
            self.events.push(event);
        }
        self
    }

    /// The recorded events.
    pub fn events(&self) -> Vec<Kind> {
        self.events.clone()
    }

    /// The case as the events leave it.
    pub fn case(&self) -> &Case {
        &self.case
    }

    /// Given/when/then from this history (deadline clocks included).
    pub fn given(&self) -> Given {
        Given { case: self.case.clone(), now: now() }
    }
}

/// Registered from the 12345 order, awaiting dispatch.
pub fn registered() -> History {
    History::new().then(register_12345())
}

/// Dispatched to the community committee at community tier.
pub fn dispatched() -> History {
    registered().then(dispatch(pb::Tier::Community, community_committee()))
}

/// Signed for by the community committee, mediator assigned.
pub fn accepted() -> History {
    dispatched().then(Command::Accept).then(assign(&[MEDIATOR_ID]))
}

/// In mediation: session S1 scheduled for tomorrow and not yet held.
pub fn in_mediation() -> History {
    accepted().then(schedule_session())
}

/// Settled: S1 held and the agreement signed by 张三, 李四 and the mediator at `now`.
pub fn settled() -> History {
    in_mediation().then(record_session(Some("S1"))).then(settle(agreement_signed_by_all()))
}

/// Mediation failed after session S1; the parties were advised to litigate.
pub fn failed() -> History {
    in_mediation().then(record_session(Some("S1"))).then(record_failure())
}

/// Settled and closed as resolved.
pub fn closed_resolved() -> History {
    settled().then(close(pb::ClosureOutcome::Resolved))
}

/// Withdrawn by the applicant while in mediation.
pub fn withdrawn() -> History {
    in_mediation().then(withdraw())
}

/// Registered, then merged into another case as a duplicate.
pub fn merged() -> History {
    registered().then(merge())
}

// ---------------------------------------------------------------------------------------------
// Values

/// Parses a person's name.
pub fn name(raw: &str) -> PersonName {
    PersonName::parse("name", raw).expect("a valid name")
}

/// Parses an identifier.
pub fn ident(raw: &str) -> Ident {
    Ident::parse("id", raw).expect("a valid identifier")
}

/// Parses a one-line text.
pub fn short(raw: &str) -> ShortText {
    ShortText::parse("text", raw).expect("a valid short text")
}

/// Parses a long text.
pub fn long(raw: &str) -> LongText {
    LongText::parse("text", raw).expect("a valid long text")
}

/// Parses a unit code.
pub fn unit(raw: &str) -> UnitCode {
    UnitCode::parse("unit", raw).expect("a valid unit code")
}

/// The village/community unit of the water-leak order: Jijiang street, Jiangjin district, Chongqing.
pub const UNIT: &str = "500116001002";
/// The 12345 work-order number.
pub const ORDER_NO: &str = "CQ12345-20250314-0817";
/// The applicant, whose ceiling is soaked.
pub const APPLICANT: &str = "张三";
/// The upstairs neighbour whose bathroom leaks.
pub const RESPONDENT: &str = "李四";
/// The people's mediator who handles the case, by id and by name.
pub const MEDIATOR_ID: &str = "med-500116001002-wangfang";
pub const MEDIATOR: &str = "王芳";
/// A court that takes judicial confirmation applications.
pub const COURT_ID: &str = "court-500116-jiangjin";

/// The committee of the grid the order falls in (grid tier).
pub fn grid_committee() -> CommitteeRef {
    CommitteeRef { id: ident("cmt-50011600100201"), unit: unit("50011600100201") }
}

/// The community's people's mediation committee (community tier).
pub fn community_committee() -> CommitteeRef {
    CommitteeRef { id: ident("cmt-500116001002"), unit: unit(UNIT) }
}

/// Jijiang street's committee (street tier).
pub fn street_committee() -> CommitteeRef {
    CommitteeRef { id: ident("cmt-500116001000"), unit: unit("500116001000") }
}

/// Jiangjin district's committee (district tier).
pub fn district_committee() -> CommitteeRef {
    CommitteeRef { id: ident("cmt-500116000000"), unit: unit("500116000000") }
}

// ---------------------------------------------------------------------------------------------
// Commands

/// The 12345 order: 李四's bathroom upstairs leaks into 张三's flat; talks between them failed.
pub fn register_12345() -> Command {
    Command::Register(Box::new(RegisterCase {
        channel: pb::Channel::Hotline12345,
        external_ref: Some(ident(ORDER_NO)),
        parties: vec![
            Party {
                name: name(APPLICANT),
                role: pb::PartyRole::Applicant,
                phone: Some(PhoneNumber::parse("phone", "138 2345 6789").expect("a valid mobile number")),
                resident_id: Some(ResidentId::parse("id", "500116198005121233").expect("a valid ID number")),
            },
            Party {
                name: name(RESPONDENT),
                role: pb::PartyRole::Respondent,
                phone: Some(PhoneNumber::parse("phone", "023-47521234").expect("a valid landline")),
                resident_id: None,
            },
        ],
        category: Category::parse("category", "邻里纠纷").expect("a valid category"),
        description: long(
            "楼上李四家卫生间漏水，渗到张三家客厅天花板，墙面发霉；双方自行协商未果，张三拨打12345求助。",
        ),
        unit_code: unit(UNIT),
        address: short("重庆市江津区几江街道某小区3栋2单元402室"),
        urgency: pb::Urgency::Normal,
        risk_signals: Vec::new(),
        received_at: Some(hours_later(-2)),
        reply_deadline: Some(days_later(7)),
        source_partner: None,
        intake_channel: Some(short("phone")),
    }))
}

/// Dispatch to `committee` at `tier`, as a neighbour dispute of low risk.
pub fn dispatch(tier: pb::Tier, committee: CommitteeRef) -> Command {
    Command::Dispatch {
        tier,
        committee,
        category: Some(Category::parse("category", "邻里纠纷").expect("a valid category")),
        risk_level: pb::RiskLevel::Low,
        note: Some(short("请尽快上门查看漏水情况")),
    }
}

/// The committee returns a misrouted case (退单).
pub fn return_case() -> Command {
    Command::Return { reason: short("该小区不属本调委会辖区") }
}

/// Assign these mediators.
pub fn assign(ids: &[&str]) -> Command {
    Command::AssignMediators { mediator_ids: ids.iter().map(|id| ident(id)).collect() }
}

/// Schedule a session tomorrow at the community office.
pub fn schedule_session() -> Command {
    Command::ScheduleSession {
        scheduled_for: days_later(1), place: Some(short("几江街道社区调解室")), online: false
    }
}

/// Record a session, either one that was scheduled (`Some("S1")`) or an unscheduled one (`None`).
pub fn record_session(session_id: Option<&str>) -> Command {
    Command::RecordSession {
        session_id: session_id.map(ident),
        attendees: vec![name(APPLICANT), name(RESPONDENT), name(MEDIATOR)],
        record: long("调解员现场查看漏水点，双方同意由李四请人维修防水层并赔偿张三天花板修复费用。"),
    }
}

/// Record arrival on site.
pub fn record_arrival() -> Command {
    Command::RecordArrival { note: Some(short("已到达3栋2单元")) }
}

/// Report progress.
pub fn report_progress() -> Command {
    Command::ReportProgress { note: long("已联系物业关闭楼上水阀，等待维修师傅。") }
}

/// Pause the mediation clock.
pub fn pause() -> Command {
    Command::PauseClock { reason: short("李四外出务工，春节后返回") }
}

/// Resume the mediation clock.
pub fn resume() -> Command {
    Command::ResumeClock { note: Some(short("李四已返回")) }
}

/// Grant an extension of `days`.
pub fn extend(days: u32) -> Command {
    Command::GrantExtension { days, reason: short("需等待防水检测报告"), approved_by: "lead-chen".to_owned() }
}

/// Refer the case to a partner.
pub fn refer(kind: pb::PartnerKind, partner_id: &str) -> Command {
    Command::Refer {
        partner_kind: kind,
        partner_id: ident(partner_id),
        partner_name: short("江津区几江派出所"),
        reason: short("双方发生推搡，需民警到场"),
    }
}

/// The partner accepts the referral.
pub fn accept_referral(id: &str) -> Command {
    Command::AcceptReferral { referral_id: ident(id) }
}

/// The partner declines the referral.
pub fn decline_referral(id: &str) -> Command {
    Command::DeclineReferral { referral_id: ident(id), reason: short("不属本单位管辖") }
}

/// The partner returns the referral for mediation.
pub fn return_referral(id: &str) -> Command {
    Command::ReturnReferral {
        referral_id: ident(id), reason: short("治安部分已处理，民事部分请继续调解")
    }
}

/// The partner concludes the referral as resolved.
pub fn conclude_referral(id: &str) -> Command {
    Command::ConcludeReferral {
        referral_id: ident(id),
        outcome: pb::ReferralOutcome::Resolved,
        summary: long("经民警调解，双方和解。"),
    }
}

/// The agreement on the water leak, naming 张三 and 李四, signed by both and by the mediator.
pub fn agreement_signed_by_all() -> Agreement {
    Agreement {
        party_names: vec![name(APPLICANT), name(RESPONDENT)],
        facts: long("李四家卫生间防水层老化漏水，致张三家客厅天花板受损。"),
        points_in_dispute: long("维修责任与赔偿金额。"),
        terms: long("一、李四于十日内请人修复卫生间防水层；二、李四赔偿张三天花板修复费用人民币一千五百元。"),
        performance_method: short("现金当面支付，维修完成后由社区见证"),
        performance_deadline: Some(days_later(10)),
        signed_by: vec![name(APPLICANT), name(RESPONDENT), name(MEDIATOR)],
        mediator_id: ident(MEDIATOR_ID),
        mediator_name: name(MEDIATOR),
        personal_status_matter: false,
    }
}

/// Record a settlement with `agreement`.
pub fn settle(agreement: Agreement) -> Command {
    Command::Settle(Box::new(agreement))
}

/// Record performance.
pub fn record_performance(status: pb::PerformanceStatus) -> Command {
    Command::RecordPerformance { status, note: Some(short("维修完成，赔偿款已付清")) }
}

/// The parties apply to Jiangjin's court for judicial confirmation.
pub fn request_judicial_confirmation() -> Command {
    Command::RequestJudicialConfirmation {
        court_id: ident(COURT_ID), court_name: short("重庆市江津区人民法院")
    }
}

/// The court accepts the application.
pub fn accept_judicial_confirmation() -> Command {
    // The court's file number (（2025）渝0116民特123号) in the ASCII form identifiers take.
    Command::AcceptJudicialConfirmation { court_case_number: ident("(2025)Yu0116MinTe123") }
}

/// The court rules.
pub fn rule_judicial_confirmation(granted: bool) -> Command {
    Command::RuleJudicialConfirmation {
        granted, reason: (!granted).then(|| short("协议内容违反法律强制性规定"))
    }
}

/// Record that mediation failed; litigation advised.
pub fn record_failure() -> Command {
    Command::RecordFailure {
        reason: short("双方对赔偿金额分歧过大"),
        advice: pb::FailureAdvice::Litigation,
        advice_note: Some(short("可向江津区人民法院起诉")),
    }
}

/// Escalate to `committee` by hand.
pub fn escalate(committee: CommitteeRef) -> Command {
    Command::Escalate { committee, reason: short("社区调解两次未果，提请街道调处"), automatic: false }
}

/// Close with `outcome`.
pub fn close(outcome: pb::ClosureOutcome) -> Command {
    Command::Close { outcome, summary: long("漏水已修复，赔偿已履行，办结。") }
}

/// The applicant withdraws.
pub fn withdraw() -> Command {
    Command::Withdraw { reason: short("双方已自行和解，申请撤回") }
}

/// Merge into the duplicate order's case.
pub fn merge() -> Command {
    Command::Merge {
        into: CaseId::for_external_ref(pb::Channel::Hotline12345 as i32, &ident("CQ12345-20250313-0542")),
        reason: short("同一漏水纠纷的重复工单"),
    }
}

/// Record a follow-up call with `satisfaction`.
pub fn follow_up(satisfaction: pb::Satisfaction) -> Command {
    Command::RecordFollowUp { method: pb::FollowUpMethod::Phone, satisfaction, note: Some(short("电话回访")) }
}

/// Reopen by hand.
pub fn reopen() -> Command {
    Command::Reopen { reason: short("天花板再次渗水，申请二次办理") }
}

/// The shipped SLA policy, national calendars and committee directory (`deploy/`), shared.
pub fn rules() -> Rules {
    static RULES: LazyLock<Rules> =
        LazyLock::new(|| Rules(Arc::new(Sla::bundled().expect("the shipped SLA rules load"))));
    RULES.clone()
}

/// The timers: deadline `id` warns.
pub fn warn_deadline(id: &str) -> Command {
    Command::WarnDeadline { deadline_id: ident(id), rules: rules() }
}

/// The timers: deadline `id` is breached.
pub fn breach_deadline(id: &str) -> Command {
    Command::BreachDeadline { deadline_id: ident(id), rules: rules() }
}

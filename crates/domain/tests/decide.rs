//! Given/when/then tests of [`fengqiao_domain::decide`]: for every command, the events it records
//! when it is allowed and the reason a mediator reads when it is not (each state guard and each
//! specific rule of the case's life). The last test checks the transition table of
//! `docs/case-life.md` against what `decide` actually does, so the two cannot drift apart.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use fengqiao_domain::case::{JUDICIAL_CONFIRMATION_WINDOW_DAYS, JudicialStatus, MAX_EXTENSION_DAYS, ReferralStatus};
use fengqiao_domain::event::{Kind, pb, type_name};
use fengqiao_domain::{Case, Command, decide};
use jiff::SignedDuration;
use support::*;

const POLICE: &str = "police-500116-jijiang";
const LAW_FIRM: &str = "lawfirm-500116-zhengyuan";

fn police_referral() -> Command {
    refer(pb::PartnerKind::Police, POLICE)
}

/// In mediation with referral R1 to the police station, awaiting its acceptance.
fn referred() -> History {
    in_mediation().then(police_referral())
}

/// In mediation with referral R1 accepted by the police station.
fn referral_accepted() -> History {
    referred().then(accept_referral("R1"))
}

/// Correct party 0's phone number (and, when given, resident ID number).
fn correct_contact(phone: Option<&str>, resident_id: Option<&str>) -> Command {
    use fengqiao_domain::values::{PhoneNumber, ResidentId};
    Command::CorrectPartyContact {
        party_index: 0,
        phone: phone.map(|p| PhoneNumber::parse("phone", p).expect("a valid phone")),
        resident_id: resident_id.map(|i| ResidentId::parse("resident_id", i).expect("a valid ID")),
        reason: short("当事人更换手机号码"),
    }
}

fn state(case: &Case) -> pb::CaseState {
    case.status()
}

// ---------------------------------------------------------------------------------------------
// RegisterCase

#[test]
fn registering_the_12345_order_records_parties_place_and_deadlines() {
    given_no_case().when(register_12345()).then_expect_events(vec![Kind::CaseRegistered(pb::CaseRegistered {
        channel: pb::Channel::Hotline12345 as i32,
        external_ref: ORDER_NO.to_owned(),
        parties: vec![
            pb::Party {
                name: APPLICANT.to_owned(),
                role: pb::PartyRole::Applicant as i32,
                phone: "13823456789".to_owned(),
                resident_id: "500116198005121233".to_owned(),
            },
            pb::Party {
                name: RESPONDENT.to_owned(),
                role: pb::PartyRole::Respondent as i32,
                phone: "02347521234".to_owned(),
                resident_id: String::new(),
            },
        ],
        category: "邻里纠纷".to_owned(),
        description: "楼上李四家卫生间漏水，渗到张三家客厅天花板，墙面发霉；双方自行协商未果，张三拨打12345求助。"
            .to_owned(),
        unit_code: UNIT.to_owned(),
        address: "重庆市江津区几江街道某小区3栋2单元402室".to_owned(),
        urgency: pb::Urgency::Normal as i32,
        risk_signals: Vec::new(),
        received_at_unix_ms: ms(hours_later(-2)),
        reply_deadline_unix_ms: ms(days_later(7)),
        source_partner_kind: 0,
        source_partner_id: String::new(),
        intake_channel: "phone".to_owned(),
    })]);
    let case = registered().case().clone();
    assert_eq!(state(&case), pb::CaseState::Registered);
    assert_eq!(case.party_names, [APPLICANT, RESPONDENT]);
    assert_eq!((case.version, case.unit_code.as_str(), case.external_ref.as_str()), (1, UNIT, ORDER_NO));
}

#[test]
fn a_walk_in_without_received_time_or_deadline_is_received_now() {
    let Command::Register(mut walk_in) = register_12345() else { unreachable!("register_12345 registers") };
    walk_in.channel = pb::Channel::WalkIn;
    walk_in.external_ref = None;
    walk_in.received_at = None;
    walk_in.reply_deadline = None;
    let events = given_no_case().when(Command::Register(walk_in)).then_expect_event_types(&["CaseRegistered"]);
    let Kind::CaseRegistered(e) = &events[0] else { unreachable!("checked above") };
    assert_eq!((e.received_at_unix_ms, e.reply_deadline_unix_ms), (ms(now()), 0));
    assert_eq!((e.channel, e.external_ref.as_str()), (pb::Channel::WalkIn as i32, ""));
}

#[test]
fn a_case_is_registered_only_once() {
    registered().given().when(register_12345()).then_expect_rejection("already registered");
    closed_resolved().given().when(register_12345()).then_expect_rejection("already registered");
    merged().given().when(register_12345()).then_expect_rejection("already registered");
}

#[test]
fn every_other_command_needs_an_existing_case() {
    for command in all_commands().into_iter().filter(|c| !matches!(c, Command::Register(_))) {
        given_no_case().when(command).then_expect_unknown_case();
    }
}

// ---------------------------------------------------------------------------------------------
// DispatchCase, ReturnCase (退单), AcceptCase (签收)

#[test]
fn dispatch_hands_a_registered_case_to_a_committee_at_a_tier() {
    let case =
        registered().given().when(dispatch(pb::Tier::Community, community_committee())).then_expect_events(vec![
            Kind::CaseDispatched(pb::CaseDispatched {
                tier: pb::Tier::Community as i32,
                committee_id: "cmt-500116001002".to_owned(),
                committee_unit_code: UNIT.to_owned(),
                category: "邻里纠纷".to_owned(),
                risk_level: pb::RiskLevel::Low as i32,
                note: "请尽快上门查看漏水情况".to_owned(),
            }),
        ]);
    assert_eq!(state(&case), pb::CaseState::Dispatched);
    assert_eq!(case.tier, Some(pb::Tier::Community));
    assert_eq!(case.committee, Some(("cmt-500116001002".to_owned(), UNIT.to_owned())));
}

#[test]
fn dispatch_is_only_for_a_registered_case() {
    let command = || dispatch(pb::Tier::Community, community_committee());
    dispatched().given().when(command()).then_expect_rejection("cannot dispatch: the case is dispatched");
    accepted().given().when(command()).then_expect_rejection("cannot dispatch: the case is signed for");
    closed_resolved().given().when(command()).then_expect_rejection("cannot dispatch: the case is closed");
}

#[test]
fn dispatch_must_name_a_tier() {
    registered()
        .given()
        .when(dispatch(pb::Tier::Unspecified, community_committee()))
        .then_expect_rejection("choose the tier");
}

#[test]
fn a_committee_returns_a_misrouted_case_which_can_be_dispatched_again() {
    let case =
        dispatched().given().when(return_case()).then_expect_events(vec![Kind::CaseReturned(pb::CaseReturned {
            committee_id: "cmt-500116001002".to_owned(),
            reason: "该小区不属本调委会辖区".to_owned(),
        })]);
    assert_eq!((state(&case), case.committee.as_ref()), (pb::CaseState::Registered, None));
    dispatched()
        .then(return_case())
        .given()
        .when(dispatch(pb::Tier::Grid, grid_committee()))
        .then_expect_event_types(&["CaseDispatched"]);
}

#[test]
fn only_a_dispatched_case_can_be_returned() {
    registered()
        .given()
        .when(return_case())
        .then_expect_rejection("cannot return the case (退单): the case is registered");
    accepted()
        .given()
        .when(return_case())
        .then_expect_rejection("cannot return the case (退单): the case is signed for");
}

#[test]
fn the_committee_signs_for_a_dispatched_case() {
    let case = dispatched()
        .given()
        .when(Command::Accept)
        .then_expect_events(vec![Kind::CaseAccepted(pb::CaseAccepted { committee_id: "cmt-500116001002".to_owned() })]);
    assert_eq!(state(&case), pb::CaseState::Accepted);
}

#[test]
fn only_a_dispatched_case_can_be_signed_for() {
    registered()
        .given()
        .when(Command::Accept)
        .then_expect_rejection("cannot sign for the case: the case is registered");
    accepted().given().when(Command::Accept).then_expect_rejection("cannot sign for the case: the case is signed for");
    in_mediation().given().when(Command::Accept).then_expect_rejection("the case is in mediation");
}

// ---------------------------------------------------------------------------------------------
// AssignMediators

#[test]
fn mediators_are_assigned_while_the_committee_handles_the_case() {
    let case = dispatched()
        .then(Command::Accept)
        .given()
        .when(assign(&[MEDIATOR_ID, "med-500116001002-chenjun"]))
        .then_expect_events(vec![Kind::MediatorsAssigned(pb::MediatorsAssigned {
            mediator_ids: vec![MEDIATOR_ID.to_owned(), "med-500116001002-chenjun".to_owned()],
        })]);
    assert_eq!(case.mediators, [MEDIATOR_ID, "med-500116001002-chenjun"]);
    // Assigning someone again records it but lists each mediator once.
    let case = in_mediation().given().when(assign(&[MEDIATOR_ID])).then_expect_events(vec![Kind::MediatorsAssigned(
        pb::MediatorsAssigned { mediator_ids: vec![MEDIATOR_ID.to_owned()] },
    )]);
    assert_eq!(case.mediators, [MEDIATOR_ID]);
}

#[test]
fn assigning_needs_a_mediator_and_a_case_in_hand() {
    accepted().given().when(assign(&[])).then_expect_rejection("name at least one mediator");
    dispatched()
        .given()
        .when(assign(&[MEDIATOR_ID]))
        .then_expect_rejection("cannot assign mediators: the case is dispatched and awaiting sign-for");
    settled()
        .given()
        .when(assign(&[MEDIATOR_ID]))
        .then_expect_rejection("cannot assign mediators: the case is settled");
}

// ---------------------------------------------------------------------------------------------
// ScheduleSession, RecordSession

#[test]
fn sessions_are_numbered_s1_s2_in_the_order_they_are_scheduled() {
    let case = accepted().given().when(schedule_session()).then_expect_events(vec![Kind::SessionScheduled(
        pb::SessionScheduled {
            session_id: "S1".to_owned(),
            scheduled_for_unix_ms: ms(days_later(1)),
            place: "几江街道社区调解室".to_owned(),
            online: false,
        },
    )]);
    assert_eq!(state(&case), pb::CaseState::InMediation);
    let second = in_mediation().given().when(schedule_session()).then_expect_event_types(&["SessionScheduled"]);
    assert!(matches!(&second[0], Kind::SessionScheduled(e) if e.session_id == "S2"), "{second:?}");
}

#[test]
fn a_scheduled_session_is_recorded_as_held_now() {
    let case = in_mediation().given().at(hours_later(26)).when(record_session(Some("S1"))).then_expect_events(vec![
        Kind::SessionHeld(pb::SessionHeld {
            session_id: "S1".to_owned(),
            held_at_unix_ms: ms(hours_later(26)),
            attendees: vec![APPLICANT.to_owned(), RESPONDENT.to_owned(), MEDIATOR.to_owned()],
            record: "调解员现场查看漏水点，双方同意由李四请人维修防水层并赔偿张三天花板修复费用。".to_owned(),
        }),
    ]);
    assert_eq!(case.sessions, [("S1".to_owned(), true)]);
}

#[test]
fn an_unscheduled_session_gets_the_next_number() {
    // Mediation on the spot, without scheduling: the accepted case goes straight into mediation.
    let events = accepted().given().when(record_session(None)).then_expect_event_types(&["SessionHeld"]);
    assert!(matches!(&events[0], Kind::SessionHeld(e) if e.session_id == "S1"), "{events:?}");
    let history = in_mediation().then(record_session(None)).then(schedule_session());
    let ids: Vec<&str> = history.case().sessions.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["S1", "S2", "S3"]);
    assert_eq!(history.case().sessions.iter().filter(|(_, held)| *held).count(), 1);
    assert_eq!(state(history.case()), pb::CaseState::InMediation);
}

#[test]
fn a_session_is_recorded_once_and_must_exist() {
    let held = in_mediation().then(record_session(Some("S1")));
    held.given().when(record_session(Some("S1"))).then_expect_rejection("session S1 has already been recorded");
    in_mediation().given().when(record_session(Some("S9"))).then_expect_rejection("the case has no session S9");
}

#[test]
fn sessions_belong_to_a_case_in_hand() {
    dispatched()
        .given()
        .when(schedule_session())
        .then_expect_rejection("cannot schedule a mediation session: the case is dispatched");
    settled().given().when(schedule_session()).then_expect_rejection("the case is settled");
    failed()
        .given()
        .when(record_session(None))
        .then_expect_rejection("cannot record a mediation session: the case is failed in mediation");
    closed_resolved().given().when(record_session(None)).then_expect_rejection("the case is closed");
}

// ---------------------------------------------------------------------------------------------
// RecordArrival, ReportProgress

#[test]
fn arrival_on_site_is_recorded_once() {
    let case =
        dispatched().given().at(hours_later(1)).when(record_arrival()).then_expect_events(vec![Kind::ArrivedOnSite(
            pb::ArrivedOnSite { arrived_at_unix_ms: ms(hours_later(1)), note: "已到达3栋2单元".to_owned() },
        )]);
    assert!(case.arrived_on_site);
    in_mediation().then(record_arrival()).given().when(record_arrival()).then_expect_rejection("already been recorded");
}

#[test]
fn arrival_is_for_a_dispatched_or_handled_case() {
    registered()
        .given()
        .when(record_arrival())
        .then_expect_rejection("cannot record arrival on site: the case is registered");
    settled()
        .given()
        .when(record_arrival())
        .then_expect_rejection("cannot record arrival on site: the case is settled");
}

#[test]
fn progress_is_reported_on_any_open_case() {
    for history in [registered(), dispatched(), accepted(), in_mediation(), settled(), failed()] {
        let case = history.given().when(report_progress()).then_expect_events(vec![Kind::ProgressReported(
            pb::ProgressReported { note: "已联系物业关闭楼上水阀，等待维修师傅。".to_owned() },
        )]);
        assert_eq!(state(&case), state(history.case()), "progress does not move the case");
    }
    closed_resolved()
        .given()
        .when(report_progress())
        .then_expect_rejection("cannot report progress: the case is closed");
}

// ---------------------------------------------------------------------------------------------
// PauseClock, ResumeClock, GrantExtension

#[test]
fn the_clock_pauses_and_resumes() {
    let case = in_mediation().given().when(pause()).then_expect_events(vec![Kind::ClockPaused(pb::ClockPaused {
        reason: "李四外出务工，春节后返回".to_owned(),
    })]);
    assert!(case.paused);
    let case = in_mediation()
        .then(pause())
        .given()
        .when(resume())
        .then_expect_events(vec![Kind::ClockResumed(pb::ClockResumed { note: "李四已返回".to_owned() })]);
    assert!(!case.paused);
}

#[test]
fn a_paused_clock_is_not_paused_again_nor_a_running_one_resumed() {
    accepted().then(pause()).given().when(pause()).then_expect_rejection("the clock is already paused");
    accepted().given().when(resume()).then_expect_rejection("the clock is not paused");
    dispatched().given().when(pause()).then_expect_rejection("cannot pause the clock: the case is dispatched");
    settled().given().when(pause()).then_expect_rejection("cannot pause the clock: the case is settled");
}

#[test]
fn a_clock_paused_before_closure_cannot_be_resumed_on_the_closed_case() {
    let paused_then_closed =
        in_mediation().then(pause()).then(settle(agreement_signed_by_all())).then(close(pb::ClosureOutcome::Resolved));
    assert!(paused_then_closed.case().paused);
    paused_then_closed.given().when(resume()).then_expect_rejection("cannot resume the clock: the case is closed");
    // Reopening restarts the clocks.
    let reopened = paused_then_closed.then(reopen());
    assert!(!reopened.case().paused);
}

#[test]
fn escalation_clears_a_pause() {
    let escalated = in_mediation().then(pause()).then(escalate(street_committee()));
    assert!(!escalated.case().paused);
}

#[test]
fn an_extension_is_one_to_sixty_days_and_adds_up() {
    assert_eq!(MAX_EXTENSION_DAYS, 60);
    let case =
        in_mediation().given().when(extend(1)).then_expect_events(vec![Kind::ExtensionGranted(pb::ExtensionGranted {
            approved_by: "lead-chen".to_owned(),
            days: 1,
            reason: "需等待防水检测报告".to_owned(),
        })]);
    assert_eq!(case.extension_days, 1);
    let both = accepted().then(extend(60)).then(extend(15));
    assert_eq!(both.case().extension_days, 75);
    in_mediation().given().when(extend(0)).then_expect_rejection("an extension is 1 to 60 days");
    in_mediation().given().when(extend(61)).then_expect_rejection("an extension is 1 to 60 days");
    failed()
        .given()
        .when(extend(10))
        .then_expect_rejection("cannot grant an extension: the case is failed in mediation");
}

// ---------------------------------------------------------------------------------------------
// Referrals (移交, 六调联动)

#[test]
fn referrals_are_numbered_r1_r2_and_start_pending() {
    let case =
        in_mediation().given().when(police_referral()).then_expect_events(vec![Kind::ReferralMade(pb::ReferralMade {
            referral_id: "R1".to_owned(),
            partner_kind: pb::PartnerKind::Police as i32,
            partner_id: POLICE.to_owned(),
            partner_name: "江津区几江派出所".to_owned(),
            reason: "双方发生推搡，需民警到场".to_owned(),
        })]);
    assert_eq!(case.referrals[0].status, ReferralStatus::Pending);
    // Another partner may hold a referral at the same time.
    let second =
        referred().given().when(refer(pb::PartnerKind::LawFirm, LAW_FIRM)).then_expect_event_types(&["ReferralMade"]);
    assert!(matches!(&second[0], Kind::ReferralMade(e) if e.referral_id == "R2"), "{second:?}");
}

#[test]
fn a_case_is_referred_from_a_committee_in_hand_or_after_failure() {
    accepted().given().when(police_referral()).then_expect_event_types(&["ReferralMade"]);
    failed().given().when(police_referral()).then_expect_event_types(&["ReferralMade"]);
    dispatched()
        .given()
        .when(police_referral())
        .then_expect_rejection("cannot refer the case to a partner: the case is dispatched");
    settled()
        .given()
        .when(police_referral())
        .then_expect_rejection("cannot refer the case to a partner: the case is settled");
    closed_resolved().given().when(police_referral()).then_expect_rejection("the case is closed");
}

#[test]
fn at_most_one_open_referral_per_partner_institution() {
    referred()
        .given()
        .when(police_referral())
        .then_expect_rejection(&format!("the case already has an open referral to {POLICE}"));
    referral_accepted().given().when(police_referral()).then_expect_rejection("already has an open referral");
    // Once the partner no longer holds it, the same partner can be asked again; the new one is R2.
    for closed in [
        referred().then(decline_referral("R1")),
        referred().then(return_referral("R1")),
        referral_accepted().then(conclude_referral("R1")),
    ] {
        let events = closed.given().when(police_referral()).then_expect_event_types(&["ReferralMade"]);
        assert!(matches!(&events[0], Kind::ReferralMade(e) if e.referral_id == "R2"), "{events:?}");
    }
}

#[test]
fn the_partner_accepts_or_declines_a_pending_referral() {
    let case = referred()
        .given()
        .when(accept_referral("R1"))
        .then_expect_events(vec![Kind::ReferralAccepted(pb::ReferralAccepted { referral_id: "R1".to_owned() })]);
    assert_eq!(case.referrals[0].status, ReferralStatus::Accepted);
    let case = referred().given().when(decline_referral("R1")).then_expect_events(vec![Kind::ReferralDeclined(
        pb::ReferralDeclined { referral_id: "R1".to_owned(), reason: "不属本单位管辖".to_owned() },
    )]);
    assert_eq!(case.referrals[0].status, ReferralStatus::Declined);
    assert_eq!(state(&case), pb::CaseState::InMediation, "a decline leaves the case with the committee");
}

#[test]
fn only_a_pending_referral_is_accepted_or_declined() {
    referral_accepted()
        .given()
        .when(accept_referral("R1"))
        .then_expect_rejection("referral R1 is not awaiting acceptance");
    referral_accepted()
        .given()
        .when(decline_referral("R1"))
        .then_expect_rejection("referral R1 is not awaiting acceptance");
    referred().then(decline_referral("R1")).given().when(accept_referral("R1")).then_expect_rejection("not awaiting");
    referred().given().when(accept_referral("R9")).then_expect_rejection("the case has no referral R9");
    in_mediation().given().when(decline_referral("R1")).then_expect_rejection("the case has no referral R1");
}

#[test]
fn the_partner_returns_an_open_referral_for_mediation() {
    let case =
        referral_accepted().given().when(return_referral("R1")).then_expect_events(vec![Kind::ReferralReturned(
            pb::ReferralReturned {
                referral_id: "R1".to_owned(),
                reason: "治安部分已处理，民事部分请继续调解".to_owned(),
            },
        )]);
    assert_eq!(case.referrals[0].status, ReferralStatus::Returned);
    // After a failure, a returned referral brings the case back into mediation.
    let after_failure = failed().then(police_referral());
    assert_eq!(state(after_failure.case()), pb::CaseState::Failed);
    let events = after_failure.given().when(return_referral("R1")).then_expect_event_types(&["ReferralReturned"]);
    let returned = Case::from_events(after_failure.events().iter().chain(&events));
    assert_eq!(state(&returned), pb::CaseState::InMediation);
}

#[test]
fn a_referral_is_returned_only_while_open_and_while_the_committee_can_take_it_back() {
    referred()
        .then(decline_referral("R1"))
        .given()
        .when(return_referral("R1"))
        .then_expect_rejection("referral R1 is no longer with the partner");
    referred()
        .then(close(pb::ClosureOutcome::Transferred))
        .given()
        .when(return_referral("R1"))
        .then_expect_rejection("cannot return the referral for mediation: the case is closed");
    referred()
        .then(settle(agreement_signed_by_all()))
        .given()
        .when(return_referral("R1"))
        .then_expect_rejection("cannot return the referral for mediation: the case is settled");
}

#[test]
fn an_accepted_referral_is_concluded_with_an_outcome() {
    let case =
        referral_accepted().given().when(conclude_referral("R1")).then_expect_events(vec![Kind::ReferralConcluded(
            pb::ReferralConcluded {
                referral_id: "R1".to_owned(),
                outcome: pb::ReferralOutcome::Resolved as i32,
                summary: "经民警调解，双方和解。".to_owned(),
            },
        )]);
    assert_eq!(case.referrals[0].status, ReferralStatus::Concluded);
    referred().given().when(conclude_referral("R1")).then_expect_rejection("must be accepted before it is concluded");
    referral_accepted()
        .then(conclude_referral("R1"))
        .given()
        .when(conclude_referral("R1"))
        .then_expect_rejection("must be accepted before it is concluded");
}

#[test]
fn the_partner_finishes_a_referral_of_a_case_closed_as_transferred() {
    let transferred = referred().then(close(pb::ClosureOutcome::Transferred));
    transferred.given().when(accept_referral("R1")).then_expect_event_types(&["ReferralAccepted"]);
    transferred.given().when(decline_referral("R1")).then_expect_event_types(&["ReferralDeclined"]);
    let concluded = transferred.then(accept_referral("R1")).then(conclude_referral("R1"));
    assert_eq!(concluded.case().referrals[0].status, ReferralStatus::Concluded);
    assert_eq!(state(concluded.case()), pb::CaseState::Closed, "the partner's work does not reopen the case");
}

// ---------------------------------------------------------------------------------------------
// RecordSettlement (调解协议)

#[test]
fn a_settlement_signed_by_every_party_and_the_mediator_takes_effect_now() {
    let case =
        in_mediation().given().at(hours_later(27)).when(settle(agreement_signed_by_all())).then_expect_events(vec![
            Kind::CaseSettled(pb::CaseSettled {
                agreement: Some(pb::Agreement {
                    party_names: vec![APPLICANT.to_owned(), RESPONDENT.to_owned()],
                    facts: "李四家卫生间防水层老化漏水，致张三家客厅天花板受损。".to_owned(),
                    points_in_dispute: "维修责任与赔偿金额。".to_owned(),
                    terms: "一、李四于十日内请人修复卫生间防水层；二、李四赔偿张三天花板修复费用人民币一千五百元。"
                        .to_owned(),
                    performance_method: "现金当面支付，维修完成后由社区见证".to_owned(),
                    performance_deadline_unix_ms: ms(days_later(10)),
                    signed_by: vec![APPLICANT.to_owned(), RESPONDENT.to_owned(), MEDIATOR.to_owned()],
                    mediator_id: MEDIATOR_ID.to_owned(),
                    mediator_name: MEDIATOR.to_owned(),
                    effective_at_unix_ms: ms(hours_later(27)),
                    personal_status_matter: false,
                }),
            }),
        ]);
    assert_eq!(state(&case), pb::CaseState::Settled);
    // Settling on the spot, straight from sign-for, is allowed too.
    accepted().given().when(settle(agreement_signed_by_all())).then_expect_event_types(&["CaseSettled"]);
}

#[test]
fn an_agreement_must_name_every_registered_party() {
    let mut agreement = agreement_signed_by_all();
    agreement.party_names.retain(|n| n.as_str() != RESPONDENT);
    in_mediation()
        .given()
        .when(settle(agreement))
        .then_expect_rejection("the agreement does not name the registered party 李四");
}

#[test]
fn an_agreement_is_effective_only_when_every_party_has_signed() {
    let mut agreement = agreement_signed_by_all();
    agreement.signed_by.retain(|n| n.as_str() != RESPONDENT);
    in_mediation()
        .given()
        .when(settle(agreement))
        .then_expect_rejection("the agreement is not effective: 李四 has not signed");
    // A further party named in the agreement must sign as well.
    let mut agreement = agreement_signed_by_all();
    agreement.party_names.push(name("李四之妻赵敏"));
    in_mediation().given().when(settle(agreement)).then_expect_rejection("李四之妻赵敏 has not signed");
}

#[test]
fn an_agreement_is_effective_only_when_the_mediator_has_signed() {
    let mut agreement = agreement_signed_by_all();
    agreement.signed_by.retain(|n| n.as_str() != MEDIATOR);
    in_mediation()
        .given()
        .when(settle(agreement))
        .then_expect_rejection("the agreement is not effective: the mediator has not signed");
}

#[test]
fn a_settlement_is_recorded_only_while_the_committee_handles_the_case() {
    dispatched()
        .given()
        .when(settle(agreement_signed_by_all()))
        .then_expect_rejection("cannot record a settlement: the case is dispatched");
    settled()
        .given()
        .when(settle(agreement_signed_by_all()))
        .then_expect_rejection("cannot record a settlement: the case is settled");
    failed().given().when(settle(agreement_signed_by_all())).then_expect_rejection("the case is failed in mediation");
}

#[test]
fn a_new_settlement_after_reopening_replaces_the_agreement_and_its_follow_through() {
    let reopened = settled()
        .then(record_performance(pb::PerformanceStatus::Breached))
        .then(request_judicial_confirmation())
        .then(close(pb::ClosureOutcome::Resolved))
        .then(follow_up(pb::Satisfaction::Dissatisfied));
    assert_eq!(reopened.case().judicial, Some(JudicialStatus::Requested));
    let resettled = reopened.then_at(days_later(3), settle(agreement_signed_by_all()));
    assert_eq!((resettled.case().performance, resettled.case().judicial), (None, None));
    assert_eq!(resettled.case().judicial_court, None);
    assert_eq!(resettled.case().agreement.as_ref().map(|a| a.effective_at_unix_ms), Some(ms(days_later(3))));
}

// ---------------------------------------------------------------------------------------------
// RecordPerformance

#[test]
fn performance_is_recorded_on_the_agreement_of_a_settled_or_closed_case() {
    let case = settled().given().when(record_performance(pb::PerformanceStatus::Performed)).then_expect_events(vec![
        Kind::PerformanceRecorded(pb::PerformanceRecorded {
            status: pb::PerformanceStatus::Performed as i32,
            note: "维修完成，赔偿款已付清".to_owned(),
        }),
    ]);
    assert_eq!(case.performance, Some(pb::PerformanceStatus::Performed));
    let case =
        closed_resolved().given().when(record_performance(pb::PerformanceStatus::Breached)).then_expect_events(vec![
            Kind::PerformanceRecorded(pb::PerformanceRecorded {
                status: pb::PerformanceStatus::Breached as i32,
                note: "维修完成，赔偿款已付清".to_owned(),
            }),
        ]);
    assert_eq!((state(&case), case.performance), (pb::CaseState::Closed, Some(pb::PerformanceStatus::Breached)));
}

#[test]
fn performance_needs_an_agreement_and_a_settled_or_closed_case() {
    let command = || record_performance(pb::PerformanceStatus::Performed);
    for history in [in_mediation(), failed(), failed().then(close(pb::ClosureOutcome::Unresolved))] {
        history
            .given()
            .when(command())
            .then_expect_rejection("performance is recorded only for a case with a mediation agreement");
    }
    // Reopened: the old agreement is still on file, but the case is being handled again.
    closed_resolved()
        .then(reopen())
        .given()
        .when(command())
        .then_expect_rejection("cannot record performance: the case is signed for by the committee");
}

// ---------------------------------------------------------------------------------------------
// Judicial confirmation (司法确认)

#[test]
fn the_parties_apply_for_judicial_confirmation_of_a_settled_case() {
    let case = settled().given().at(days_later(2)).when(request_judicial_confirmation()).then_expect_events(vec![
        Kind::JudicialConfirmationRequested(pb::JudicialConfirmationRequested {
            court_id: COURT_ID.to_owned(),
            court_name: "重庆市江津区人民法院".to_owned(),
        }),
    ]);
    assert_eq!(case.judicial, Some(JudicialStatus::Requested));
    assert_eq!(case.judicial_court.as_deref(), Some(COURT_ID), "only this court answers the application");
    closed_resolved()
        .given()
        .when(request_judicial_confirmation())
        .then_expect_event_types(&["JudicialConfirmationRequested"]);
}

#[test]
fn judicial_confirmation_is_applied_for_within_30_days_of_the_agreement_taking_effect() {
    assert_eq!(JUDICIAL_CONFIRMATION_WINDOW_DAYS, 30);
    // The agreement took effect at `now`; the last instant of the window is exactly 30 days later.
    settled()
        .given()
        .at(days_later(30))
        .when(request_judicial_confirmation())
        .then_expect_event_types(&["JudicialConfirmationRequested"]);
    settled()
        .given()
        .at(days_later(30) + SignedDuration::from_mins(1))
        .when(request_judicial_confirmation())
        .then_expect_rejection(
            "the 30-day window for judicial confirmation after the agreement took effect has passed",
        );
    closed_resolved()
        .given()
        .at(days_later(45))
        .when(request_judicial_confirmation())
        .then_expect_rejection("30-day window");
    // The agreement records its effective time in milliseconds; signed at a finer instant, it is
    // still in time exactly 30 days later.
    let signed_at = days_later(1) + SignedDuration::from_micros(700);
    in_mediation()
        .then(record_session(Some("S1")))
        .then_at(signed_at, settle(agreement_signed_by_all()))
        .given()
        .at(signed_at + SignedDuration::from_hours(24 * 30))
        .when(request_judicial_confirmation())
        .then_expect_event_types(&["JudicialConfirmationRequested"]);
}

#[test]
fn identity_marriage_and_adoption_agreements_are_never_judicially_confirmed() {
    let mut agreement = agreement_signed_by_all();
    agreement.personal_status_matter = true;
    in_mediation()
        .then(settle(agreement))
        .given()
        .when(request_judicial_confirmation())
        .then_expect_rejection("agreements on identity, marriage or adoption cannot be judicially confirmed");
}

#[test]
fn judicial_confirmation_needs_an_effective_agreement_on_a_settled_or_closed_case() {
    let reason = "judicial confirmation needs a settled case with an effective mediation agreement";
    in_mediation().given().when(request_judicial_confirmation()).then_expect_rejection(reason);
    failed()
        .then(close(pb::ClosureOutcome::Unresolved))
        .given()
        .when(request_judicial_confirmation())
        .then_expect_rejection(reason);
    closed_resolved().then(reopen()).given().when(request_judicial_confirmation()).then_expect_rejection(reason);
}

#[test]
fn judicial_confirmation_is_applied_for_once_unless_refused() {
    let requested = settled().then(request_judicial_confirmation());
    requested.given().when(request_judicial_confirmation()).then_expect_rejection("already been applied for");
    let accepted_by_court = requested.clone().then(accept_judicial_confirmation());
    accepted_by_court.given().when(request_judicial_confirmation()).then_expect_rejection("already been applied for");
    let granted = accepted_by_court.clone().then(rule_judicial_confirmation(true));
    granted.given().when(request_judicial_confirmation()).then_expect_rejection("already been applied for");
    // A refusal leaves the parties free to apply again (to another court, or with a corrected agreement).
    accepted_by_court
        .then(rule_judicial_confirmation(false))
        .given()
        .when(request_judicial_confirmation())
        .then_expect_event_types(&["JudicialConfirmationRequested"]);
}

#[test]
fn the_court_accepts_the_application_before_it_rules() {
    let requested = settled().then(request_judicial_confirmation());
    let case = requested.given().when(accept_judicial_confirmation()).then_expect_events(vec![
        Kind::JudicialConfirmationAccepted(pb::JudicialConfirmationAccepted {
            court_case_number: "(2025)Yu0116MinTe123".to_owned(),
        }),
    ]);
    assert_eq!(case.judicial, Some(JudicialStatus::Accepted));
    requested
        .given()
        .when(rule_judicial_confirmation(true))
        .then_expect_rejection("the court must accept the judicial confirmation application before ruling");
    settled()
        .given()
        .when(accept_judicial_confirmation())
        .then_expect_rejection("no judicial confirmation application is awaiting acceptance");
    let accepted_by_court = requested.then(accept_judicial_confirmation());
    accepted_by_court.given().when(accept_judicial_confirmation()).then_expect_rejection("awaiting acceptance");
}

#[test]
fn the_court_grants_or_refuses_confirmation() {
    let accepted_by_court =
        closed_resolved().then(request_judicial_confirmation()).then(accept_judicial_confirmation());
    let case = accepted_by_court.given().when(rule_judicial_confirmation(true)).then_expect_events(vec![
        Kind::JudicialConfirmationRuled(pb::JudicialConfirmationRuled { granted: true, reason: String::new() }),
    ]);
    assert_eq!(case.judicial, Some(JudicialStatus::Granted));
    let case = accepted_by_court.given().when(rule_judicial_confirmation(false)).then_expect_events(vec![
        Kind::JudicialConfirmationRuled(pb::JudicialConfirmationRuled {
            granted: false,
            reason: "协议内容违反法律强制性规定".to_owned(),
        }),
    ]);
    assert_eq!(case.judicial, Some(JudicialStatus::Refused));
    accepted_by_court
        .then(rule_judicial_confirmation(true))
        .given()
        .when(rule_judicial_confirmation(false))
        .then_expect_rejection("must accept");
}

// ---------------------------------------------------------------------------------------------
// RecordMediationFailure (调解不成)

#[test]
fn a_failure_records_reason_and_advice() {
    let case = in_mediation().given().when(record_failure()).then_expect_events(vec![Kind::MediationFailed(
        pb::MediationFailed {
            reason: "双方对赔偿金额分歧过大".to_owned(),
            advice: pb::FailureAdvice::Litigation as i32,
            advice_note: "可向江津区人民法院起诉".to_owned(),
        },
    )]);
    assert_eq!(state(&case), pb::CaseState::Failed);
    dispatched()
        .given()
        .when(record_failure())
        .then_expect_rejection("cannot record that mediation failed: the case is dispatched");
    settled().given().when(record_failure()).then_expect_rejection("the case is settled");
    failed().given().when(record_failure()).then_expect_rejection("the case is failed in mediation");
}

// ---------------------------------------------------------------------------------------------
// EscalateCase (上报)

#[test]
fn escalation_moves_the_case_to_the_next_tier_and_another_committee() {
    let case = in_mediation().given().when(escalate(street_committee())).then_expect_events(vec![Kind::CaseEscalated(
        pb::CaseEscalated {
            from_tier: pb::Tier::Community as i32,
            to_tier: pb::Tier::Street as i32,
            committee_id: "cmt-500116001000".to_owned(),
            committee_unit_code: "500116001000".to_owned(),
            reason: "社区调解两次未果，提请街道调处".to_owned(),
            automatic: false,
        },
    )]);
    assert_eq!(state(&case), pb::CaseState::Dispatched, "the new committee must sign for it");
    assert_eq!(case.tier, Some(pb::Tier::Street));
    assert_eq!(case.committee, Some(("cmt-500116001000".to_owned(), "500116001000".to_owned())));
    assert!(case.mediators.is_empty(), "the new committee assigns its own mediators");
}

#[test]
fn escalation_climbs_grid_community_street_district_and_stops_there() {
    let at_grid = registered().then(dispatch(pb::Tier::Grid, grid_committee()));
    let to_community =
        at_grid.given().when(escalate(community_committee())).then_expect_event_types(&["CaseEscalated"]);
    let Kind::CaseEscalated(e) = &to_community[0] else { unreachable!("checked above") };
    assert_eq!((e.from_tier(), e.to_tier()), (pb::Tier::Grid, pb::Tier::Community));
    let at_district = at_grid
        .then(escalate(community_committee()))
        .then(escalate(street_committee()))
        .then(escalate(district_committee()));
    assert_eq!(at_district.case().tier, Some(pb::Tier::District));
    at_district
        .given()
        .when(escalate(grid_committee()))
        .then_expect_rejection("the case is already at district tier; there is no higher tier to escalate to");
}

#[test]
fn escalation_must_change_the_committee() {
    in_mediation()
        .given()
        .when(escalate(community_committee()))
        .then_expect_rejection("escalation must move the case to another committee");
}

#[test]
fn a_failed_case_can_be_escalated_but_not_a_settled_or_closed_one() {
    failed().given().when(escalate(street_committee())).then_expect_event_types(&["CaseEscalated"]);
    registered()
        .given()
        .when(escalate(street_committee()))
        .then_expect_rejection("cannot escalate the case: the case is registered");
    settled()
        .given()
        .when(escalate(street_committee()))
        .then_expect_rejection("cannot escalate the case: the case is settled");
    closed_resolved().given().when(escalate(street_committee())).then_expect_rejection("the case is closed");
}

// ---------------------------------------------------------------------------------------------
// CloseCase (办结), WithdrawCase, MergeCase

#[test]
fn a_settled_case_closes_as_resolved() {
    let case = settled().given().when(close(pb::ClosureOutcome::Resolved)).then_expect_events(vec![Kind::CaseClosed(
        pb::CaseClosed {
            outcome: pb::ClosureOutcome::Resolved as i32,
            summary: "漏水已修复，赔偿已履行，办结。".to_owned(),
        },
    )]);
    assert_eq!((state(&case), case.closure), (pb::CaseState::Closed, Some(pb::ClosureOutcome::Resolved)));
    in_mediation().given().when(close(pb::ClosureOutcome::PartlyResolved)).then_expect_event_types(&["CaseClosed"]);
    accepted().given().when(close(pb::ClosureOutcome::Unresolved)).then_expect_event_types(&["CaseClosed"]);
}

#[test]
fn withdrawal_and_merging_are_not_closing_outcomes() {
    for outcome in [pb::ClosureOutcome::Withdrawn, pb::ClosureOutcome::Merged, pb::ClosureOutcome::Unspecified] {
        settled()
            .given()
            .when(close(outcome))
            .then_expect_rejection("withdrawal and merging have their own commands; close with another outcome");
    }
}

#[test]
fn after_failure_a_case_closes_as_resolved_only_through_a_concluded_referral() {
    let reason = "mediation failed and no referral was concluded: the case cannot close as resolved";
    failed().given().when(close(pb::ClosureOutcome::Resolved)).then_expect_rejection(reason);
    failed().given().when(close(pb::ClosureOutcome::PartlyResolved)).then_expect_rejection(reason);
    failed()
        .then(police_referral())
        .then(decline_referral("R1"))
        .given()
        .when(close(pb::ClosureOutcome::Resolved))
        .then_expect_rejection(reason);
    failed().given().when(close(pb::ClosureOutcome::Unresolved)).then_expect_event_types(&["CaseClosed"]);
    failed()
        .then(police_referral())
        .then(accept_referral("R1"))
        .then(conclude_referral("R1"))
        .given()
        .when(close(pb::ClosureOutcome::Resolved))
        .then_expect_event_types(&["CaseClosed"]);
}

#[test]
fn a_case_closes_as_transferred_only_when_a_partner_holds_or_concluded_a_referral() {
    let reason = "a case closes as transferred only when a partner holds or has concluded a referral of it";
    in_mediation().given().when(close(pb::ClosureOutcome::Transferred)).then_expect_rejection(reason);
    referred()
        .then(decline_referral("R1"))
        .given()
        .when(close(pb::ClosureOutcome::Transferred))
        .then_expect_rejection(reason);
    referred()
        .then(return_referral("R1"))
        .given()
        .when(close(pb::ClosureOutcome::Transferred))
        .then_expect_rejection(reason);
    for ok in [referred(), referral_accepted(), referral_accepted().then(conclude_referral("R1"))] {
        ok.given().when(close(pb::ClosureOutcome::Transferred)).then_expect_event_types(&["CaseClosed"]);
    }
}

#[test]
fn with_a_referral_open_a_case_closes_only_as_transferred() {
    for outcome in [pb::ClosureOutcome::Resolved, pb::ClosureOutcome::PartlyResolved, pb::ClosureOutcome::Unresolved] {
        referral_accepted().given().when(close(outcome)).then_expect_rejection(
            "a referral is still open with a partner: close as transferred, or wait for it to conclude",
        );
    }
    // A law-firm referral still open after settlement also blocks an ordinary closure.
    in_mediation()
        .then(refer(pb::PartnerKind::LawFirm, LAW_FIRM))
        .then(settle(agreement_signed_by_all()))
        .given()
        .when(close(pb::ClosureOutcome::Resolved))
        .then_expect_rejection("a referral is still open");
}

#[test]
fn only_a_case_in_hand_settled_or_failed_is_closed() {
    let command = || close(pb::ClosureOutcome::Unresolved);
    registered().given().when(command()).then_expect_rejection("cannot close the case: the case is registered");
    dispatched().given().when(command()).then_expect_rejection("cannot close the case: the case is dispatched");
    closed_resolved().given().when(command()).then_expect_rejection("cannot close the case: the case is closed");
}

#[test]
fn a_withdrawal_closes_any_open_case_as_withdrawn() {
    for history in [registered(), dispatched(), accepted(), in_mediation(), settled(), failed()] {
        let case = history.given().when(withdraw()).then_expect_events(vec![Kind::CaseClosed(pb::CaseClosed {
            outcome: pb::ClosureOutcome::Withdrawn as i32,
            summary: "双方已自行和解，申请撤回".to_owned(),
        })]);
        assert_eq!((state(&case), case.closure), (pb::CaseState::Closed, Some(pb::ClosureOutcome::Withdrawn)));
    }
    closed_resolved().given().when(withdraw()).then_expect_rejection("cannot withdraw the case: the case is closed");
    withdrawn().given().when(withdraw()).then_expect_rejection("the case is closed");
}

#[test]
fn a_duplicate_is_merged_into_another_case_open_or_closed() {
    let into = match merge() {
        Command::Merge { into, .. } => into.to_string(),
        _ => unreachable!("merge() merges"),
    };
    let case = registered().given().when(merge()).then_expect_events(vec![Kind::CaseMerged(pb::CaseMerged {
        into_case_id: into.clone(),
        reason: "同一漏水纠纷的重复工单".to_owned(),
    })]);
    assert_eq!((state(&case), case.merged_into.as_deref()), (pb::CaseState::Merged, Some(into.as_str())));
    for history in [dispatched(), in_mediation(), settled(), failed(), closed_resolved(), withdrawn()] {
        history.given().when(merge()).then_expect_event_types(&["CaseMerged"]);
    }
}

#[test]
fn a_case_with_an_open_referral_is_not_merged() {
    referred()
        .given()
        .when(merge())
        .then_expect_rejection(&format!("cannot merge the case: referral R1 is still open with {POLICE}"));
    referred().then(close(pb::ClosureOutcome::Transferred)).given().when(merge()).then_expect_rejection("still open");
    referred().then(decline_referral("R1")).given().when(merge()).then_expect_event_types(&["CaseMerged"]);
}

#[test]
fn a_merged_case_accepts_nothing() {
    for history in [merged(), closed_resolved().then(merge())] {
        for command in all_commands() {
            let expected = if matches!(command, Command::Register(_)) {
                "already registered"
            } else {
                "the case was merged into another case and accepts nothing more"
            };
            history.given().when(command).then_expect_rejection(expected);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RecordFollowUp (回访), ReopenCase (二次办理)

#[test]
fn a_satisfied_follow_up_is_recorded_and_the_case_stays_closed() {
    for satisfaction in [pb::Satisfaction::Satisfied, pb::Satisfaction::BasicallySatisfied] {
        let case = closed_resolved().given().at(days_later(1)).when(follow_up(satisfaction)).then_expect_events(vec![
            Kind::FollowUpRecorded(pb::FollowUpRecorded {
                method: pb::FollowUpMethod::Phone as i32,
                satisfaction: satisfaction as i32,
                note: "电话回访".to_owned(),
            }),
        ]);
        assert_eq!((state(&case), case.follow_up), (pb::CaseState::Closed, Some(satisfaction)));
    }
}

#[test]
fn a_dissatisfied_follow_up_reopens_the_case_in_the_same_decision() {
    let case = closed_resolved().given().when(follow_up(pb::Satisfaction::Dissatisfied)).then_expect_events(vec![
        Kind::FollowUpRecorded(pb::FollowUpRecorded {
            method: pb::FollowUpMethod::Phone as i32,
            satisfaction: pb::Satisfaction::Dissatisfied as i32,
            note: "电话回访".to_owned(),
        }),
        Kind::CaseReopened(pb::CaseReopened { reason: "dissatisfied at follow-up (二次办理)".to_owned() }),
    ]);
    assert_eq!(state(&case), pb::CaseState::Accepted, "handled again by the same committee");
    assert_eq!((case.closure, case.reopen_count), (None, 1));
    assert_eq!(case.committee, Some(("cmt-500116001002".to_owned(), UNIT.to_owned())));
}

#[test]
fn a_dissatisfied_follow_up_of_a_withdrawn_case_does_not_reopen_it() {
    let events = withdrawn()
        .given()
        .when(follow_up(pb::Satisfaction::Dissatisfied))
        .then_expect_event_types(&["FollowUpRecorded"]);
    let after = Case::from_events(withdrawn().events().iter().chain(&events));
    assert_eq!((state(&after), after.reopen_count), (pb::CaseState::Closed, 0));
}

#[test]
fn each_closure_is_followed_up_once() {
    let followed = closed_resolved().then(follow_up(pb::Satisfaction::Satisfied));
    followed
        .given()
        .when(follow_up(pb::Satisfaction::Dissatisfied))
        .then_expect_rejection("this closure has already been followed up");
    // Reopened and closed again: the new closure gets its own follow-up.
    followed
        .then(reopen())
        .then(close(pb::ClosureOutcome::Resolved))
        .given()
        .when(follow_up(pb::Satisfaction::Satisfied))
        .then_expect_event_types(&["FollowUpRecorded"]);
}

#[test]
fn follow_up_is_for_a_closed_case() {
    settled()
        .given()
        .when(follow_up(pb::Satisfaction::Satisfied))
        .then_expect_rejection("cannot record a follow-up (回访): the case is settled");
    registered().given().when(follow_up(pb::Satisfaction::Satisfied)).then_expect_rejection("the case is registered");
}

#[test]
fn a_closed_case_is_reopened_by_hand() {
    let case =
        closed_resolved().given().when(reopen()).then_expect_events(vec![Kind::CaseReopened(pb::CaseReopened {
            reason: "天花板再次渗水，申请二次办理".to_owned(),
        })]);
    assert_eq!((state(&case), case.reopen_count, case.closure), (pb::CaseState::Accepted, 1, None));
    let twice = closed_resolved().then(reopen()).then(close(pb::ClosureOutcome::Resolved)).then(reopen());
    assert_eq!(twice.case().reopen_count, 2);
}

#[test]
fn a_withdrawn_case_cannot_be_reopened() {
    withdrawn()
        .given()
        .when(reopen())
        .then_expect_rejection("a withdrawn case cannot be reopened; register the dispute again");
}

#[test]
fn only_a_closed_case_is_reopened() {
    settled().given().when(reopen()).then_expect_rejection("cannot reopen the case: the case is settled");
    in_mediation().given().when(reopen()).then_expect_rejection("cannot reopen the case: the case is in mediation");
}

// ---------------------------------------------------------------------------------------------
// CorrectPartyContact

#[test]
fn a_corrected_phone_is_a_new_event_naming_the_old_value() {
    let case = registered().given().when(correct_contact(Some("13900001111"), None)).then_expect_events(vec![
        Kind::PartyContactCorrected(pb::PartyContactCorrected {
            party_index: 0,
            party_name: APPLICANT.to_owned(),
            old_phone: "13823456789".to_owned(),
            new_phone: "13900001111".to_owned(),
            old_resident_id: String::new(),
            new_resident_id: String::new(),
            reason: "当事人更换手机号码".to_owned(),
        }),
    ]);
    assert_eq!(case.party_contacts[0], ("13900001111".to_owned(), "500116198005121233".to_owned()));
    assert_eq!(state(&case), pb::CaseState::Registered, "a correction changes no state");
}

#[test]
fn a_correction_must_change_something_about_a_party_that_exists() {
    registered().given().when(correct_contact(Some("13823456789"), None)).then_expect_rejection("nothing to correct");
    let nobody =
        Command::CorrectPartyContact { party_index: 7, phone: None, resident_id: None, reason: short("错误") };
    registered().given().when(nobody).then_expect_rejection("the case has no party 7");
    merged().given().when(correct_contact(Some("13900001111"), None)).then_expect_rejection("merged");
    given_no_case().when(correct_contact(Some("13900001111"), None)).then_expect_unknown_case();
    // A closed case's record is still corrected.
    closed_resolved()
        .given()
        .when(correct_contact(None, Some("11010519491231002X")))
        .then_expect_event_types(&["PartyContactCorrected"]);
}

// ---------------------------------------------------------------------------------------------
// The transition table of docs/case-life.md

/// One instance of every command, valid in form.
fn all_commands() -> Vec<Command> {
    candidates().into_iter().flat_map(|(_, commands)| commands).collect()
}

/// For each command, the instances tried against every fixture: the command is allowed in a state
/// when some instance is accepted for some case in that state.
fn candidates() -> Vec<(&'static str, Vec<Command>)> {
    use pb::ClosureOutcome as O;
    let commands = vec![
        vec![register_12345()],
        vec![dispatch(pb::Tier::Community, community_committee())],
        vec![return_case()],
        vec![Command::Accept],
        vec![assign(&[MEDIATOR_ID])],
        vec![schedule_session()],
        vec![record_session(None), record_session(Some("S1"))],
        vec![record_arrival()],
        vec![report_progress()],
        vec![pause()],
        vec![resume()],
        vec![extend(7)],
        vec![refer(pb::PartnerKind::LawFirm, LAW_FIRM)],
        vec![accept_referral("R1")],
        vec![decline_referral("R1")],
        vec![return_referral("R1")],
        vec![conclude_referral("R1")],
        vec![settle(agreement_signed_by_all())],
        vec![record_performance(pb::PerformanceStatus::Performed)],
        vec![request_judicial_confirmation()],
        vec![accept_judicial_confirmation()],
        vec![rule_judicial_confirmation(true)],
        vec![record_failure()],
        vec![escalate(street_committee()), escalate(district_committee())],
        vec![close(O::Resolved), close(O::PartlyResolved), close(O::Unresolved), close(O::Transferred)],
        vec![withdraw()],
        vec![merge()],
        vec![follow_up(pb::Satisfaction::Satisfied), follow_up(pb::Satisfaction::Dissatisfied)],
        vec![reopen()],
        vec![correct_contact(Some("13900001111"), None)],
        deadline_ids().iter().map(|id| warn_deadline(id)).collect(),
        deadline_ids().iter().map(|id| breach_deadline(id)).collect(),
    ];
    commands.into_iter().map(|c| (c[0].name(), c)).collect()
}

/// Every deadline id a fixture may have open: each clock, started by any of its first 20 events.
fn deadline_ids() -> Vec<String> {
    fengqiao_domain::sla::CLOCKS
        .iter()
        .flat_map(|clock| (1..=20).map(|version| fengqiao_domain::deadlines::deadline_id(*clock, version)))
        .collect()
}

/// When each command is tried on the fixtures (which all happen at `now()`): the timers' commands
/// a year later, when every deadline has passed.
fn decided_at(command: &str) -> jiff::Timestamp {
    match command {
        "WarnDeadline" | "BreachDeadline" => days_later(365),
        _ => now(),
    }
}

/// Cases in every state, with the context that lets each command's own rule pass where the state
/// allows it at all: pending and accepted referrals, a paused clock, an agreement, a judicial
/// confirmation application in progress (which survives reopening).
fn fixtures() -> Vec<History> {
    let paused = in_mediation().then(pause());
    let jc_requested = settled().then(request_judicial_confirmation());
    let jc_accepted = jc_requested.clone().then(accept_judicial_confirmation());
    let reopen_after = |h: &History| h.clone().then(close(pb::ClosureOutcome::Resolved)).then(reopen());
    let mut all = vec![
        History::new(),
        registered(),
        dispatched(),
        accepted(),
        in_mediation(),
        settled(),
        failed(),
        closed_resolved(),
        withdrawn(),
        merged(),
        closed_resolved().then(merge()),
        paused.clone().then(settle(agreement_signed_by_all())),
        paused.clone().then(settle(agreement_signed_by_all())).then(close(pb::ClosureOutcome::Resolved)),
        referred().then(settle(agreement_signed_by_all())),
        referral_accepted().then(settle(agreement_signed_by_all())),
        referred().then(close(pb::ClosureOutcome::Transferred)),
        referral_accepted().then(close(pb::ClosureOutcome::Transferred)),
        jc_requested.clone(),
        jc_accepted.clone(),
        jc_requested.clone().then(close(pb::ClosureOutcome::Resolved)),
        jc_accepted.clone().then(close(pb::ClosureOutcome::Resolved)),
    ];
    // Handled again (Accepted, then each state reachable from there), carrying that context along.
    let handled_again = [
        paused,
        accepted().then(pause()),
        accepted().then(police_referral()),
        accepted().then(police_referral()).then(accept_referral("R1")),
        referred(),
        referral_accepted(),
        reopen_after(&jc_requested),
        reopen_after(&jc_accepted),
    ];
    for base in handled_again {
        all.push(base.clone().then(schedule_session()));
        all.push(base.clone().then(record_failure()));
        all.push(base.clone().then(escalate(street_committee())));
        all.push(base.clone().then(escalate(street_committee())).then(return_case()));
        all.push(base);
    }
    all
}

/// The columns of the table, in order.
const STATES: [(pb::CaseState, &str); 9] = [
    (pb::CaseState::Unspecified, "no case"),
    (pb::CaseState::Registered, "Registered"),
    (pb::CaseState::Dispatched, "Dispatched"),
    (pb::CaseState::Accepted, "Accepted"),
    (pb::CaseState::InMediation, "InMediation"),
    (pb::CaseState::Settled, "Settled"),
    (pb::CaseState::Failed, "Failed"),
    (pb::CaseState::Closed, "Closed"),
    (pb::CaseState::Merged, "Merged"),
];

/// What `decide` does: per command, the states it can be accepted in and the event types it emits.
fn observed_table() -> Vec<(&'static str, [bool; 9], BTreeSet<&'static str>)> {
    let fixtures = fixtures();
    for (state, _) in STATES {
        assert!(fixtures.iter().any(|f| f.case().status() == state), "no fixture is in state {state:?}");
    }
    candidates()
        .into_iter()
        .map(|(name, commands)| {
            let mut allowed = [false; 9];
            let mut events = BTreeSet::new();
            for fixture in &fixtures {
                let column = STATES.iter().position(|(s, _)| *s == fixture.case().status()).expect("a known state");
                for command in &commands {
                    if let Ok(emitted) = decide(fixture.case(), command, decided_at(name)) {
                        allowed[column] = true;
                        events.extend(emitted.iter().map(type_name));
                    }
                }
            }
            (name, allowed, events)
        })
        .collect()
}

/// The table as written in `docs/case-life.md`, between its `transitions` markers.
fn documented_table() -> BTreeMap<String, (Vec<bool>, BTreeSet<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/case-life.md");
    let doc = std::fs::read_to_string(path).expect("docs/case-life.md is readable");
    let table = doc
        .split("<!-- transitions:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- transitions:end -->").next())
        .expect("docs/case-life.md marks its transition table with <!-- transitions:begin/end -->");
    let mut rows = BTreeMap::new();
    let mut lines = table.lines().map(str::trim).filter(|l| l.starts_with('|'));
    let header: Vec<&str> = lines.next().expect("a header row").split('|').map(str::trim).collect();
    let expected: Vec<&str> = STATES.iter().map(|(_, n)| *n).collect();
    assert_eq!(&header[2..11], expected.as_slice(), "state columns of the documented table");
    for line in lines.filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let command = cells[1].trim_matches('`').to_owned();
        let allowed = cells[2..11]
            .iter()
            .map(|c| match c.chars().next() {
                Some('✓') => true,
                Some('✗') => false,
                _ => panic!("cell {c:?} of {command} starts with neither ✓ nor ✗"),
            })
            .collect();
        let events = cells[11].split('`').skip(1).step_by(2).map(str::to_owned).collect();
        rows.insert(command, (allowed, events));
    }
    rows
}

#[test]
fn the_documented_transition_table_is_what_decide_does() {
    let observed = observed_table();
    let documented = documented_table();
    let mark = |b: bool| if b { "✓" } else { "✗" };
    let rendered: Vec<String> = observed
        .iter()
        .map(|(name, allowed, events)| {
            let cells: Vec<&str> = allowed.iter().map(|a| mark(*a)).collect();
            let events: Vec<String> = events.iter().map(|e| format!("`{e}`")).collect();
            format!("| `{name}` | {} | {} |", cells.join(" | "), events.join(", "))
        })
        .collect();
    let hint = format!("what decide does:\n{}", rendered.join("\n"));
    assert_eq!(documented.len(), observed.len(), "one documented row per command; {hint}");
    for (name, allowed, events) in &observed {
        let (doc_allowed, doc_events) =
            documented.get(*name).unwrap_or_else(|| panic!("docs/case-life.md has no row for {name}; {hint}"));
        assert_eq!(doc_allowed.as_slice(), allowed, "states allowing {name}; {hint}");
        let events: BTreeSet<String> = events.iter().map(|e| (*e).to_owned()).collect();
        assert_eq!(doc_events, &events, "events of {name}; {hint}");
    }
}

#[test]
fn a_closed_case_accepts_only_follow_up_reopening_merging_and_work_on_its_agreement_or_referrals() {
    let allowed_when_closed: BTreeSet<&str> =
        observed_table().into_iter().filter(|(_, allowed, _)| allowed[7]).map(|(name, _, _)| name).collect();
    let expected = BTreeSet::from([
        "RecordFollowUp",
        "ReopenCase",
        "MergeCase",
        "RecordPerformance",
        "RequestJudicialConfirmation",
        "AcceptJudicialConfirmation",
        "RuleJudicialConfirmation",
        "AcceptReferral",
        "DeclineReferral",
        "ConcludeReferral",
        "WarnDeadline",
        "BreachDeadline",
        // Corrections of the record stay possible after closure.
        "CorrectPartyContact",
    ]);
    assert_eq!(allowed_when_closed, expected);
}

//! Deadlines derived from a case's events under the shipped SLA policy (`deploy/sla.toml`) and the
//! national calendars: given the timed events of a case (decided by the domain itself), then these
//! open deadlines, with their due and warning times in Chongqing's local time. Property tests at the
//! end: folding is incremental, ids are stable, warnings come before breaches, pauses move elapsed
//! clocks by exactly the paused time, and the fold state survives serialisation.

mod support;

use std::sync::LazyLock;

use fengqiao_domain::command::RegisterCase;
use fengqiao_domain::deadlines::{Clocks, Deadline, deadlines_of, primary_due};
use fengqiao_domain::event::{Kind, pb};
use fengqiao_domain::sla::Sla;
use fengqiao_domain::values::Category;
use fengqiao_domain::{Case, Command, decide};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use support::*;

static SLA: LazyLock<Sla> = LazyLock::new(|| Sla::bundled().expect("the shipped policy and calendars load"));

/// An instant in Chongqing's local time, `2026-02-13 16:30`.
fn cq(local: &str) -> Timestamp {
    format!("{}:00+08:00", local.replace(' ', "T")).parse().expect("a local time")
}

/// An instant shown in Chongqing's local time, as `cq` reads it.
fn show(t: Timestamp) -> String {
    t.in_tz("Asia/Shanghai").expect("a known zone").strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

/// A case's life as the domain records it, each event with the instant it occurred at.
#[derive(Clone, Default)]
struct Timeline {
    case: Case,
    events: Vec<(Kind, Timestamp)>,
    at: Option<Timestamp>,
}

impl std::fmt::Debug for Timeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let steps: Vec<String> =
            self.events.iter().map(|(e, t)| format!("{} {}", show(*t), fengqiao_domain::event::type_name(e))).collect();
        f.debug_list().entries(steps).finish()
    }
}

impl Timeline {
    /// The clock now stands at `at`.
    fn at(mut self, at: Timestamp) -> Self {
        self.at = Some(at);
        self
    }

    /// The clock moves on by `d`.
    fn after(self, d: SignedDuration) -> Self {
        let at = self.now() + d;
        self.at(at)
    }

    fn now(&self) -> Timestamp {
        self.at.unwrap_or_else(now)
    }

    /// Decides `command` now and records its events; panics if it is refused.
    #[track_caller]
    fn then(mut self, command: Command) -> Self {
        let at = self.now();
        let events = decide(&self.case, &command, at).unwrap_or_else(|r| panic!("{} was refused: {r}", command.name()));
        for event in events {
            self.case.apply(&event);
            self.events.push((event, at));
        }
        self
    }

    /// Records an event as the timers would.
    fn record(mut self, event: Kind) -> Self {
        let at = self.now();
        self.case.apply(&event);
        self.events.push((event, at));
        self
    }

    fn clocks(&self) -> Clocks {
        Clocks::from_events(self.events.iter().map(|(e, t)| (e, *t)))
    }

    fn deadlines(&self) -> Vec<Deadline> {
        self.clocks().deadlines(&SLA)
    }

    /// The open deadline `id`; panics if there is none.
    #[track_caller]
    fn deadline(&self, id: &str) -> Deadline {
        let all = self.deadlines();
        all.iter()
            .find(|d| d.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("no open deadline {id}; open: {:?}", ids(&all)))
    }

    fn ids(&self) -> Vec<String> {
        ids(&self.deadlines())
    }
}

fn ids(deadlines: &[Deadline]) -> Vec<String> {
    deadlines.iter().map(|d| d.id.clone()).collect()
}

/// Registration of `register`, altered by `edit`, at `at`.
fn registered_with(at: Timestamp, edit: impl FnOnce(&mut RegisterCase)) -> Timeline {
    let Command::Register(mut register) = register_12345() else { unreachable!("register_12345 registers") };
    register.received_at = None;
    edit(&mut register);
    Timeline::default().at(at).then(Command::Register(register))
}

/// A grid worker's report of a fight between neighbours: an emergency (violence risk).
fn emergency_report(at: Timestamp) -> Timeline {
    registered_with(at, |r| {
        r.channel = pb::Channel::GridReport;
        r.external_ref = None;
        r.reply_deadline = None;
        r.urgency = pb::Urgency::Emergency;
        r.risk_signals = vec![pb::RiskSignal::Violence];
    })
}

/// A walk-in at the committee: no hotline clock, no urgent clocks.
fn walk_in(at: Timestamp) -> Timeline {
    registered_with(at, |r| {
        r.channel = pb::Channel::WalkIn;
        r.external_ref = None;
        r.reply_deadline = None;
    })
}

// ---------------------------------------------------------------------------------------------
// Urgent cases: 1 minute to respond, 5 to arrive, 10 to report back (seed 002)

#[test]
fn an_emergency_starts_the_1_5_10_minute_clocks_with_warnings_at_75_percent() {
    let t = cq("2026-03-02 22:15");
    let case = emergency_report(t);
    assert_eq!(case.ids(), ["urgent_response:1", "urgent_arrival:1", "urgent_feedback:1"]);
    let response = case.deadline("urgent_response:1");
    assert_eq!(response.clock, pb::Clock::UrgentResponse);
    assert_eq!(
        (response.started_at, response.due_at, response.warn_at),
        (t, t + mins(1), t + SignedDuration::from_secs(45))
    );
    assert!(!response.shifts_with_pauses);
    assert_eq!(case.deadline("urgent_arrival:1").due_at, t + mins(5));
    let feedback = case.deadline("urgent_feedback:1");
    assert_eq!((feedback.due_at, feedback.warn_at), (t + mins(10), t + SignedDuration::from_secs(450)));
    // Urgent clocks run in real time: 22:15 at night is no reason to wait for office hours.
    assert!(feedback.breach_due(t + mins(10)) && !feedback.breach_due(t + mins(10) - SignedDuration::from_millis(1)));
}

#[test]
fn a_violence_or_civil_to_criminal_risk_makes_any_case_an_emergency() {
    let case = registered_with(now(), |r| r.risk_signals = vec![pb::RiskSignal::CivilToCriminal]);
    assert!(case.ids().contains(&"urgent_response:1".to_owned()));
    let case = registered_with(now(), |r| r.risk_signals = vec![pb::RiskSignal::GroupIncident]);
    assert!(!case.ids().iter().any(|id| id.starts_with("urgent_")));
}

#[test]
fn dispatch_arrival_and_feedback_each_stop_their_urgent_clock() {
    let t = cq("2026-03-02 10:00");
    let case =
        emergency_report(t).after(SignedDuration::from_secs(40)).then(dispatch(pb::Tier::Grid, grid_committee()));
    assert_eq!(case.ids(), ["urgent_arrival:1", "urgent_feedback:1", "sign_for:2"]);
    // An emergency is signed for within a minute too, in real time.
    let sign_for = case.deadline("sign_for:2");
    assert_eq!(sign_for.due_at, t + SignedDuration::from_secs(100));
    let case = case.after(mins(1)).then(record_arrival()).after(mins(3)).then(report_progress());
    assert_eq!(case.ids(), ["sign_for:2"]);
}

// ---------------------------------------------------------------------------------------------
// Sign-for: 2 working hours, counted in the calendar with 调休

#[test]
fn sign_for_runs_2_working_hours_into_the_make_up_saturday_before_spring_festival() {
    // Friday 2026-02-13 16:30: 1 h on Friday, 1 h on Saturday 02-14 (a make-up working day).
    let case = walk_in(cq("2026-02-13 15:00"))
        .at(cq("2026-02-13 16:30"))
        .then(dispatch(pb::Tier::Community, community_committee()));
    let sign_for = case.deadline("sign_for:2");
    assert_eq!(show(sign_for.due_at), "2026-02-14 10:00:00");
    // 75 % of 2 working hours = 1 h 30 min of working time: 1 h on Friday, 30 min on Saturday.
    assert_eq!(show(sign_for.warn_at), "2026-02-14 09:30:00");
    // Dispatched on the last make-up day's evening, it waits for the week after the holiday.
    let case = walk_in(cq("2026-02-14 17:00")).then(dispatch(pb::Tier::Community, community_committee()));
    assert_eq!(show(case.deadline("sign_for:2").due_at), "2026-02-24 10:30:00");
}

#[test]
fn signing_for_stops_sign_for_and_starts_the_30_day_mediation_clock() {
    let t = cq("2026-03-02 09:00");
    let case =
        walk_in(t).then(dispatch(pb::Tier::Community, community_committee())).after(mins(20)).then(Command::Accept);
    assert_eq!(case.ids(), ["mediation:3"]);
    let mediation = case.deadline("mediation:3");
    assert_eq!(mediation.started_at, t + mins(20));
    assert_eq!(mediation.due_at, t + mins(20) + days(30));
    assert_eq!(mediation.warn_at, t + mins(20) + SignedDuration::from_hours(540));
    assert!(mediation.shifts_with_pauses);
}

#[test]
fn a_return_stops_sign_for_and_a_new_dispatch_starts_another() {
    let case = walk_in(now()).then(dispatch(pb::Tier::Community, community_committee())).then(return_case());
    assert!(case.ids().is_empty());
    let case = case.then(dispatch(pb::Tier::Grid, grid_committee()));
    assert_eq!(case.ids(), ["sign_for:4"]);
}

#[test]
fn escalation_stops_mediation_and_the_next_committee_must_sign_for() {
    let case = walk_in(cq("2026-03-02 09:00"))
        .then(dispatch(pb::Tier::Community, community_committee()))
        .then(Command::Accept)
        .after(days(3))
        .then(escalate(street_committee()));
    assert_eq!(case.ids(), ["sign_for:4"]);
    assert_eq!(show(case.deadline("sign_for:4").due_at), "2026-03-05 11:00:00");
}

// ---------------------------------------------------------------------------------------------
// 12345 orders: the hotline's own deadline, else the policy's

#[test]
fn a_12345_order_is_due_when_the_hotline_says_and_pauses_do_not_move_that() {
    let t = cq("2026-03-02 09:00");
    let sent = cq("2026-03-09 18:00");
    let case = registered_with(t, |r| r.reply_deadline = Some(sent));
    let reply = case.deadline("hotline_reply:1");
    assert_eq!(reply.clock, pb::Clock::HotlineReply);
    assert_eq!(reply.due_at, sent);
    // 75 % of the real time between registration and the hotline's deadline.
    assert_eq!(reply.warn_at, t + t.duration_until(sent).checked_mul(3).expect("small") / 4);
    assert!(!reply.shifts_with_pauses);
    let case = case
        .then(dispatch(pb::Tier::Community, community_committee()))
        .then(Command::Accept)
        .after(days(1))
        .then(pause())
        .after(days(2))
        .then(resume());
    assert_eq!(case.deadline("hotline_reply:1").due_at, sent);
    // It is the case's earliest deadline once the committee has it in hand.
    assert_eq!(primary_due(&case.deadlines()), Some(sent));
}

#[test]
fn a_12345_order_without_deadline_gets_the_policy_length_for_its_class() {
    let t = cq("2026-03-02 09:00");
    let general = registered_with(t, |r| r.reply_deadline = None);
    assert_eq!(general.deadline("hotline_reply:1").due_at, t + days(7));
    let utilities = registered_with(t, |r| {
        r.reply_deadline = None;
        r.category = Category::parse("category", "供水").expect("a category");
    });
    assert_eq!(utilities.deadline("hotline_reply:1").due_at, t + SignedDuration::from_hours(24));
    let emergency = registered_with(t, |r| {
        r.reply_deadline = None;
        r.urgency = pb::Urgency::Emergency;
    });
    assert_eq!(emergency.deadline("hotline_reply:1").due_at, t + SignedDuration::from_hours(2));
    assert!(walk_in(t).ids().is_empty(), "a walk-in has no hotline clock");
}

#[test]
fn closing_a_12345_order_stops_its_reply_clock_and_starts_the_follow_up() {
    let case = registered_with(cq("2026-03-02 09:00"), |_| {})
        .then(dispatch(pb::Tier::Community, community_committee()))
        .then(Command::Accept)
        .then(settle(agreement_signed_by_all()))
        .at(cq("2026-03-06 16:00"))
        .then(close(pb::ClosureOutcome::Resolved));
    assert_eq!(case.ids(), ["judicial_confirmation_window:4", "follow_up:5"]);
    // 1 working day after Friday: close of business on Monday.
    assert_eq!(show(case.deadline("follow_up:5").due_at), "2026-03-09 17:30:00");
}

// ---------------------------------------------------------------------------------------------
// Pauses, extensions, reopening

#[test]
fn pausing_for_3_days_moves_the_mediation_deadline_by_3_days() {
    let accepted_at = cq("2026-03-02 10:00");
    let case = walk_in(accepted_at)
        .then(dispatch(pb::Tier::Community, community_committee()))
        .then(Command::Accept)
        .after(days(5))
        .then(pause());
    let paused = case.deadline("mediation:3");
    assert_eq!(paused.paused_since, Some(accepted_at + days(5)));
    // While paused the deadline stands where it was and nothing fires, however late it gets.
    assert_eq!(paused.due_at, accepted_at + days(30));
    assert!(!paused.breach_due(accepted_at + days(90)) && !paused.warning_due(accepted_at + days(90)));
    assert_eq!(primary_due(&case.deadlines()), None);

    let resumed = case.after(days(3)).then(resume()).deadline("mediation:3");
    assert_eq!(resumed.paused_since, None);
    assert_eq!(resumed.due_at, accepted_at + days(33));
    assert_eq!(resumed.warn_at, accepted_at + SignedDuration::from_hours(540) + days(3));
}

#[test]
fn a_pause_after_the_warning_moves_only_the_breach_and_one_after_the_breach_moves_nothing() {
    let accepted_at = cq("2026-03-02 10:00");
    let accepted =
        walk_in(accepted_at).then(dispatch(pb::Tier::Community, community_committee())).then(Command::Accept);
    let late = accepted.clone().after(days(25)).then(pause()).after(days(2)).then(resume()).deadline("mediation:3");
    assert_eq!((late.warn_at, late.due_at), (accepted_at + SignedDuration::from_hours(540), accepted_at + days(32)));
    let too_late = accepted.after(days(31)).then(pause());
    let overdue = too_late.deadline("mediation:3");
    assert_eq!(overdue.paused_since, None, "a pause after the deadline stops nothing");
    assert!(overdue.breach_due(accepted_at + days(31)));
    assert_eq!(too_late.after(days(4)).then(resume()).deadline("mediation:3").due_at, accepted_at + days(30));
}

#[test]
fn extensions_add_their_days_to_the_mediation_clock_only() {
    let t = cq("2026-03-02 10:00");
    let case = registered_with(t, |r| r.reply_deadline = None)
        .then(dispatch(pb::Tier::Community, community_committee()))
        .then(Command::Accept)
        .then(extend(10))
        .then(extend(5));
    assert_eq!(case.deadline("mediation:3").due_at, t + days(45));
    assert_eq!(case.deadline("hotline_reply:1").due_at, t + days(7));
}

#[test]
fn a_dissatisfied_follow_up_reopens_the_case_and_restarts_the_handling_clocks() {
    let case = registered_with(cq("2026-03-02 09:00"), |r| r.reply_deadline = Some(cq("2026-03-09 09:00")))
        .then(dispatch(pb::Tier::Community, community_committee()))
        .then(Command::Accept)
        .after(days(2))
        .then(close(pb::ClosureOutcome::Resolved));
    assert_eq!(case.ids(), ["follow_up:4"]);
    let reopened_at = cq("2026-03-05 15:00");
    let case = case.at(reopened_at).then(follow_up(pb::Satisfaction::Dissatisfied));
    // FollowUpRecorded is version 5, CaseReopened version 6.
    assert_eq!(case.ids(), ["mediation:6", "hotline_reply:6"]);
    let mediation = case.deadline("mediation:6");
    assert_eq!((mediation.started_at, mediation.due_at), (reopened_at, reopened_at + days(30)));
    // The hotline's deadline is spent; the second handling gets the policy's 7 days.
    assert_eq!(case.deadline("hotline_reply:6").due_at, reopened_at + days(7));
}

// ---------------------------------------------------------------------------------------------
// Referrals, judicial confirmation, other categories

#[test]
fn a_partner_has_3_working_days_to_answer_a_referral_across_spring_festival() {
    let case = walk_in(cq("2026-02-09 09:00"))
        .then(dispatch(pb::Tier::Community, community_committee()))
        .then(Command::Accept)
        .at(cq("2026-02-13 10:00"))
        .then(refer(pb::PartnerKind::Police, "police-500116-jijiang"));
    let referral = case.deadline("referral_acceptance:4");
    // Day 1 = the make-up Saturday 02-14, then the rest until 02-23; days 2 and 3 = 02-24, 02-25.
    assert_eq!(show(referral.due_at), "2026-02-25 17:30:00");
    assert_eq!((referral.referral_id.as_str(), referral.partner_id.as_str()), ("R1", "police-500116-jijiang"));
    let case = case.then(accept_referral("R1"));
    assert_eq!(case.ids(), ["mediation:3"]);
}

#[test]
fn a_returned_referral_puts_a_failed_case_back_on_a_mediation_clock() {
    let case = walk_in(now())
        .then(dispatch(pb::Tier::Community, community_committee()))
        .then(Command::Accept)
        .then(record_failure())
        .then(refer(pb::PartnerKind::Court, COURT_ID));
    assert_eq!(case.ids(), ["referral_acceptance:5"]);
    let case = case.after(days(1)).then(return_referral("R1"));
    assert_eq!(case.ids(), ["mediation:6"]);
}

#[test]
fn the_judicial_confirmation_window_pauses_while_an_application_is_pending() {
    let settled_at = cq("2026-03-02 10:00");
    let case = walk_in(settled_at)
        .then(dispatch(pb::Tier::Community, community_committee()))
        .then(Command::Accept)
        .then(settle(agreement_signed_by_all()));
    assert_eq!(case.deadline("judicial_confirmation_window:4").due_at, settled_at + days(30));
    let case = case.then(request_judicial_confirmation());
    assert!(case.ids().is_empty());
    let case = case.then(accept_judicial_confirmation()).then(rule_judicial_confirmation(false));
    assert_eq!(case.ids(), ["judicial_confirmation_window:4"], "after a refusal the parties may apply again");
    let mut personal = agreement_signed_by_all();
    personal.personal_status_matter = true;
    let case = walk_in(settled_at)
        .then(dispatch(pb::Tier::Community, community_committee()))
        .then(Command::Accept)
        .then(settle(personal));
    assert!(case.ids().is_empty(), "no window for what cannot be confirmed");
}

#[test]
fn a_labour_dispute_is_mediated_within_15_days() {
    let t = cq("2026-03-02 10:00");
    let case = walk_in(t)
        .then(Command::Dispatch {
            tier: pb::Tier::Street,
            committee: street_committee(),
            category: Some(Category::parse("category", "劳动争议").expect("a category")),
            risk_level: pb::RiskLevel::Low,
            note: None,
        })
        .then(Command::Accept);
    assert_eq!(case.deadline("mediation:3").due_at, t + days(15));
}

#[test]
fn merging_stops_every_clock() {
    let case = emergency_report(now()).then(dispatch(pb::Tier::Grid, grid_committee())).then(merge());
    assert!(case.ids().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Firing state and the primary due time

#[test]
fn recorded_warnings_and_breaches_mark_their_deadline() {
    let t = cq("2026-03-02 22:15");
    let case = emergency_report(t).after(mins(2)).record(Kind::DeadlineWarned(pb::DeadlineWarned {
        clock: pb::Clock::UrgentResponse as i32,
        deadline_id: "urgent_response:1".to_owned(),
        due_at_unix_ms: (t + mins(1)).as_millisecond(),
        ..Default::default()
    }));
    let response = case.deadline("urgent_response:1");
    assert!(response.warned && !response.breached);
    assert!(!response.warning_due(t + mins(2)) && response.breach_due(t + mins(2)));
    let case = case.record(Kind::DeadlineBreached(pb::DeadlineBreached {
        clock: pb::Clock::UrgentResponse as i32,
        deadline_id: "urgent_response:1".to_owned(),
        due_at_unix_ms: (t + mins(1)).as_millisecond(),
        ..Default::default()
    }));
    let response = case.deadline("urgent_response:1");
    assert!(response.breached && !response.breach_due(t + mins(2)));
    // Breached and still open: it stays on the case, the earliest of its deadlines.
    assert_eq!(primary_due(&case.deadlines()), Some(t + mins(1)));
}

#[test]
fn the_primary_due_time_is_the_earliest_running_deadline() {
    let t = cq("2026-03-02 09:00");
    let case = registered_with(t, |r| r.reply_deadline = Some(t + days(5)))
        .then(dispatch(pb::Tier::Community, community_committee()));
    // Sign-for (11:00 the same day) comes before the hotline's deadline.
    assert_eq!(primary_due(&case.deadlines()), Some(cq("2026-03-02 11:00")));
    let case = case.then(Command::Accept);
    assert_eq!(primary_due(&case.deadlines()), Some(t + days(5)));
    assert_eq!(primary_due(&[]), None);
}

#[test]
fn deadlines_of_events_is_the_fold_of_the_same_events() {
    let case = registered_with(now(), |_| {}).then(dispatch(pb::Tier::Community, community_committee()));
    assert_eq!(deadlines_of(case.events.iter().map(|(e, t)| (e, *t)), &SLA), case.deadlines());
}

// ---------------------------------------------------------------------------------------------
// Properties

/// A command that moves a case through the clocks' starts and stops, weighted towards pauses and
/// extensions so that mediation clocks are often paused and extended.
fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        1 => Just(dispatch(pb::Tier::Grid, grid_committee())),
        1 => Just(dispatch(pb::Tier::Community, community_committee())),
        2 => Just(Command::Accept),
        1 => Just(return_case()),
        1 => Just(record_arrival()),
        1 => Just(report_progress()),
        6 => Just(pause()),
        6 => Just(resume()),
        3 => (1u32..20).prop_map(extend),
        2 => Just(refer(pb::PartnerKind::Police, "police-500116-jijiang")),
        1 => Just(accept_referral("R1")),
        1 => Just(return_referral("R1")),
        1 => Just(settle(agreement_signed_by_all())),
        1 => Just(request_judicial_confirmation()),
        1 => Just(record_failure()),
        1 => Just(escalate(street_committee())),
        1 => Just(escalate(district_committee())),
        1 => Just(close(pb::ClosureOutcome::Resolved)),
        1 => Just(follow_up(pb::Satisfaction::Dissatisfied)),
        1 => Just(follow_up(pb::Satisfaction::Satisfied)),
    ]
}

/// A registration (of any urgency, with or without the hotline's deadline), mostly dispatched and
/// signed for, then timed commands; refused commands are skipped.
fn timeline() -> impl Strategy<Value = Timeline> {
    let start = (0i64..(365 * 24 * 60)).prop_map(|m| cq("2025-06-01 00:00") + mins(m));
    let urgency = prop_oneof![Just(pb::Urgency::Normal), Just(pb::Urgency::Emergency)];
    let depth = prop_oneof![1 => Just(0usize), 1 => Just(1), 4 => Just(2)];
    let steps = prop::collection::vec((prop_oneof![0i64..120, 0i64..(60 * 24 * 20)], command()), 0..30);
    (start, urgency, any::<bool>(), depth, steps).prop_map(|(start, urgency, hotline_deadline, depth, steps)| {
        let mut case = registered_with(start, |r| {
            r.urgency = urgency;
            r.reply_deadline = hotline_deadline.then(|| start + days(7));
        });
        let opening = [dispatch(pb::Tier::Community, community_committee()), Command::Accept];
        for command in opening.into_iter().take(depth) {
            case = case.after(mins(30)).then(command);
        }
        for (minutes, command) in steps {
            case = case.after(mins(minutes));
            if decide(&case.case, &command, case.now()).is_ok() {
                case = case.then(command);
            }
        }
        case
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn folding_in_two_parts_gives_the_same_clocks(case in timeline(), cut in any::<prop::sample::Index>()) {
        let events = &case.events;
        let cut = cut.index(events.len() + 1);
        let mut resumed = Clocks::from_events(events[..cut].iter().map(|(e, t)| (e, *t)));
        for (e, t) in &events[cut..] {
            resumed.apply(e, *t);
        }
        prop_assert_eq!(&resumed, &case.clocks());
        // And through serialisation, as a read model keeps it between batches.
        let stored: Clocks = serde_json::from_str(&serde_json::to_string(&resumed).expect("serialises")).expect("reads back");
        prop_assert_eq!(stored.deadlines(&SLA), case.deadlines());
    }

    #[test]
    fn every_deadline_is_named_by_its_clock_and_the_event_that_started_it(case in timeline()) {
        let deadlines = case.deadlines();
        let mut seen = std::collections::BTreeSet::new();
        for d in &deadlines {
            prop_assert!(seen.insert(d.id.clone()), "deadline ids are unique: {}", d.id);
            let (clock, version) = d.id.split_once(':').expect("clock:version");
            prop_assert_eq!(clock, fengqiao_domain::sla::clock_name(d.clock));
            let version: usize = version.parse().expect("a version");
            let (_, started) = &case.events[version - 1];
            prop_assert_eq!(*started, d.started_at, "the clock starts when its event occurred");
            prop_assert!(d.started_at <= d.warn_at && d.warn_at <= d.due_at, "start ≤ warning ≤ due for {}", d.id);
        }
        // Appending an event that starts and stops nothing leaves every deadline as it was.
        let more = case.clone().record(Kind::ProgressReported(pb::ProgressReported { note: "…".to_owned() }));
        let kept: Vec<Deadline> = more.deadlines().into_iter().filter(|d| d.clock != pb::Clock::UrgentFeedback).collect();
        let before: Vec<Deadline> = deadlines.into_iter().filter(|d| d.clock != pb::Clock::UrgentFeedback).collect();
        prop_assert_eq!(kept, before);
    }

    #[test]
    fn the_mediation_deadline_is_30_days_plus_extensions_plus_the_paused_time(case in timeline()) {
        let clocks = case.clocks();
        for d in case.deadlines().iter().filter(|d| d.clock == pb::Clock::Mediation && d.paused_since.is_none()) {
            let run = clocks.run(&d.id).expect("an open run");
            let length = if run.subject.category == "劳动争议" { 15 } else { 30 };
            let plain = d.started_at + days(length + i64::from(run.extension_days));
            // Paused time after the start that began before the (running) deadline.
            let mut due = plain;
            let mut pauses: Vec<(Timestamp, Timestamp)> =
                clocks.pauses.iter().map(|&(f, t)| (f.max(d.started_at), t)).filter(|(f, t)| f < t).collect();
            pauses.sort();
            for (from, to) in pauses {
                if from < due {
                    due += from.duration_until(to);
                }
            }
            prop_assert_eq!(d.due_at, due);
        }
    }
}

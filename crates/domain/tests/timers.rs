//! Given/when/then tests of the timers' commands, `WarnDeadline` and `BreachDeadline`: each fires
//! only when due, at most once per deadline, and a breach escalates by the ladder of the shipped
//! policy (`deploy/sla.toml`) to the committees of `deploy/committees.toml`. A property test at the
//! end plays random case lives with the timers firing whatever is due.
//!
//! The fixed `now()` is Friday 2025-03-14 09:30 in Chongqing.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use fengqiao_domain::command::Rules;
use fengqiao_domain::directory::Directory;
use fengqiao_domain::event::{Kind, pb, type_name};
use fengqiao_domain::sla::Sla;
use fengqiao_domain::{Command, decide};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use support::*;

fn at(local: &str) -> Timestamp {
    format!("{}:00+08:00", local.replace(' ', "T")).parse().expect("a local time")
}

fn millis(local: &str) -> i64 {
    at(local).as_millisecond()
}

/// What a warning of deadline `id` records for the community committee's case.
fn community_warning(clock: pb::Clock, id: &str, started: &str, warn: &str, due: &str) -> pb::DeadlineWarned {
    pb::DeadlineWarned {
        clock: clock as i32,
        deadline_id: id.to_owned(),
        due_at_unix_ms: millis(due),
        started_at_unix_ms: millis(started),
        warn_at_unix_ms: millis(warn),
        referral_id: String::new(),
        partner_id: String::new(),
        tier: pb::Tier::Community as i32,
        committee_id: "cmt-500116001002".to_owned(),
        committee_unit_code: UNIT.to_owned(),
    }
}

fn breached(w: &pb::DeadlineWarned, route: pb::EscalationRoute) -> pb::DeadlineBreached {
    pb::DeadlineBreached {
        clock: w.clock,
        deadline_id: w.deadline_id.clone(),
        due_at_unix_ms: w.due_at_unix_ms,
        started_at_unix_ms: w.started_at_unix_ms,
        route: route as i32,
        referral_id: w.referral_id.clone(),
        partner_id: w.partner_id.clone(),
        tier: w.tier,
        committee_id: w.committee_id.clone(),
        committee_unit_code: w.committee_unit_code.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-for: warning at 75 %, breach to the dispatcher

#[test]
fn sign_for_warns_after_90_working_minutes_and_breaches_after_2_working_hours() {
    let warning =
        community_warning(pb::Clock::SignFor, "sign_for:2", "2025-03-14 09:30", "2025-03-14 11:00", "2025-03-14 11:30");
    dispatched()
        .given()
        .at(at("2025-03-14 10:59"))
        .when(warn_deadline("sign_for:2"))
        .then_expect_rejection("deadline sign_for:2 warns at 2025-03-14T11:00:00+08:00, not yet");
    let case = dispatched()
        .given()
        .at(at("2025-03-14 11:00"))
        .when(warn_deadline("sign_for:2"))
        .then_expect_events(vec![Kind::DeadlineWarned(warning.clone())]);
    assert_eq!(case.warned, ["sign_for:2"]);
    dispatched()
        .then_at(at("2025-03-14 11:00"), warn_deadline("sign_for:2"))
        .given()
        .at(at("2025-03-14 11:29"))
        .when(breach_deadline("sign_for:2"))
        .then_expect_rejection("is due at 2025-03-14T11:30:00+08:00, not yet");
    dispatched()
        .then_at(at("2025-03-14 11:00"), warn_deadline("sign_for:2"))
        .given()
        .at(at("2025-03-14 11:30"))
        .when(breach_deadline("sign_for:2"))
        .then_expect_events(vec![Kind::DeadlineBreached(breached(&warning, pb::EscalationRoute::Dispatcher))]);
}

#[test]
fn a_deadline_warns_once_and_is_breached_once() {
    let warned = dispatched().then_at(at("2025-03-14 11:00"), warn_deadline("sign_for:2"));
    warned
        .given()
        .at(at("2025-03-14 11:10"))
        .when(warn_deadline("sign_for:2"))
        .then_expect_rejection("deadline sign_for:2 has already warned");
    let breached = warned.then_at(at("2025-03-14 12:00"), breach_deadline("sign_for:2"));
    breached
        .given()
        .at(at("2025-03-14 13:00"))
        .when(breach_deadline("sign_for:2"))
        .then_expect_rejection("deadline sign_for:2 has already been breached");
}

#[test]
fn a_breach_whose_warning_was_missed_records_the_warning_first() {
    let warning =
        community_warning(pb::Clock::SignFor, "sign_for:2", "2025-03-14 09:30", "2025-03-14 11:00", "2025-03-14 11:30");
    let case =
        dispatched().given().at(at("2025-03-17 09:00")).when(breach_deadline("sign_for:2")).then_expect_events(vec![
            Kind::DeadlineWarned(warning.clone()),
            Kind::DeadlineBreached(breached(&warning, pb::EscalationRoute::Dispatcher)),
        ]);
    assert_eq!(case.warned, ["sign_for:2"]);
    assert_eq!(case.breached, ["sign_for:2"]);
    // So the warning, arriving late from another worker, is refused.
    dispatched()
        .then_at(at("2025-03-17 09:00"), breach_deadline("sign_for:2"))
        .given()
        .at(at("2025-03-17 09:00"))
        .when(warn_deadline("sign_for:2"))
        .then_expect_rejection("has already warned");
}

#[test]
fn a_clock_that_stopped_or_never_applied_fires_nothing() {
    accepted()
        .given()
        .at(days_later(400))
        .when(breach_deadline("sign_for:2"))
        .then_expect_rejection("no deadline sign_for:2 is running on this case");
    // The water-leak order is no emergency: its urgent clocks do not apply.
    registered()
        .given()
        .at(days_later(1))
        .when(breach_deadline("urgent_response:1"))
        .then_expect_rejection("no deadline urgent_response:1 is running");
    // A case folded without event times has no clocks to judge by.
    given(dispatched().events())
        .at(days_later(1))
        .when(breach_deadline("sign_for:2"))
        .then_expect_rejection("no deadline sign_for:2 is running");
    given_no_case().when(warn_deadline("sign_for:2")).then_expect_unknown_case();
    merged()
        .given()
        .at(days_later(30))
        .when(breach_deadline("hotline_reply:1"))
        .then_expect_rejection("merged into another case");
}

// ---------------------------------------------------------------------------------------------
// Mediation: the ladder

#[test]
fn overdue_mediation_at_community_tier_moves_the_case_to_the_street_committee() {
    let warning = community_warning(
        pb::Clock::Mediation,
        "mediation:3",
        "2025-03-14 09:30",
        "2025-04-05 21:30",
        "2025-04-13 09:30",
    );
    let case =
        accepted().given().at(at("2025-04-13 09:30")).when(breach_deadline("mediation:3")).then_expect_events(vec![
            Kind::DeadlineWarned(warning.clone()),
            Kind::DeadlineBreached(breached(&warning, pb::EscalationRoute::NextTier)),
            Kind::CaseEscalated(pb::CaseEscalated {
                from_tier: pb::Tier::Community as i32,
                to_tier: pb::Tier::Street as i32,
                committee_id: "cmt-500116001000".to_owned(),
                committee_unit_code: "500116001000".to_owned(),
                reason: "deadline mediation:3 breached: escalated to the next tier by the SLA policy".to_owned(),
                automatic: true,
            }),
        ]);
    assert_eq!(case.status(), pb::CaseState::Dispatched);
    assert_eq!(case.tier, Some(pb::Tier::Street));
    // The street committee must now sign for it.
    let ids: Vec<String> = case.clocks.deadlines(&rules().0).into_iter().map(|d| d.id).collect();
    assert_eq!(ids, ["hotline_reply:1", "sign_for:7"]);
}

#[test]
fn overdue_mediation_at_street_tier_goes_to_the_dispatcher_and_the_case_stays() {
    let street = registered().then(dispatch(pb::Tier::Street, street_committee())).then(Command::Accept);
    let events = street
        .given()
        .at(days_later(30))
        .when(breach_deadline("mediation:3"))
        .then_expect_event_types(&["DeadlineWarned", "DeadlineBreached"]);
    let Kind::DeadlineBreached(b) = &events[1] else { unreachable!("checked above") };
    assert_eq!(b.route(), pb::EscalationRoute::Dispatcher);
    assert_eq!((b.tier(), b.committee_id.as_str()), (pb::Tier::Street, "cmt-500116001000"));
}

#[test]
fn without_a_next_tier_committee_in_the_directory_the_breach_goes_to_the_dispatcher() {
    let no_directory =
        Rules(Arc::new(Sla::bundled().expect("the shipped rules load").with_directory(Directory::default())));
    let events = accepted()
        .given()
        .at(days_later(30))
        .when(Command::BreachDeadline { deadline_id: ident("mediation:3"), rules: no_directory })
        .then_expect_event_types(&["DeadlineWarned", "DeadlineBreached"]);
    let Kind::DeadlineBreached(b) = &events[1] else { unreachable!("checked above") };
    assert_eq!(b.route(), pb::EscalationRoute::Dispatcher);
}

#[test]
fn a_paused_mediation_clock_fires_nothing_and_resuming_moves_its_deadline() {
    let paused = accepted().then_at(days_later(1), pause());
    paused
        .given()
        .at(days_later(60))
        .when(breach_deadline("mediation:3"))
        .then_expect_rejection("the clock of deadline mediation:3 is paused");
    let resumed = paused.then_at(days_later(4), resume());
    resumed
        .given()
        .at(days_later(30))
        .when(breach_deadline("mediation:3"))
        .then_expect_rejection("deadline mediation:3 is due at 2025-04-16T09:30:00+08:00, not yet");
    resumed.given().at(days_later(33)).when(breach_deadline("mediation:3")).then_expect_event_types(&[
        "DeadlineWarned",
        "DeadlineBreached",
        "CaseEscalated",
    ]);
}

// ---------------------------------------------------------------------------------------------
// Referrals and closed cases

#[test]
fn an_unanswered_referral_goes_to_the_partners_supervisor_after_3_working_days() {
    let referred = accepted().then(refer(pb::PartnerKind::Police, "police-500116-jijiang"));
    referred
        .given()
        .at(at("2025-03-19 17:29"))
        .when(breach_deadline("referral_acceptance:5"))
        .then_expect_rejection("is due at 2025-03-19T17:30:00+08:00, not yet");
    let events = referred
        .given()
        .at(at("2025-03-19 17:30"))
        .when(breach_deadline("referral_acceptance:5"))
        .then_expect_event_types(&["DeadlineWarned", "DeadlineBreached"]);
    let Kind::DeadlineBreached(b) = &events[1] else { unreachable!("checked above") };
    assert_eq!(b.route(), pb::EscalationRoute::PartnerSupervisor);
    assert_eq!((b.referral_id.as_str(), b.partner_id.as_str()), ("R1", "police-500116-jijiang"));
}

#[test]
fn a_closed_case_still_has_its_follow_up_due() {
    // Closed on Friday at 09:30: the follow-up is due at close of business on Monday.
    let closed = closed_resolved();
    let events = closed
        .given()
        .at(at("2025-03-17 17:30"))
        .when(breach_deadline("follow_up:8"))
        .then_expect_event_types(&["DeadlineWarned", "DeadlineBreached"]);
    let Kind::DeadlineBreached(b) = &events[1] else { unreachable!("checked above") };
    assert_eq!(b.route(), pb::EscalationRoute::Owner);
}

// ---------------------------------------------------------------------------------------------
// Property: with the timers firing whatever is due, each deadline warns once and breaches once

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(dispatch(pb::Tier::Grid, grid_committee())),
        Just(dispatch(pb::Tier::Community, community_committee())),
        Just(Command::Accept),
        Just(return_case()),
        Just(pause()),
        Just(resume()),
        (1u32..10).prop_map(extend),
        Just(refer(pb::PartnerKind::Police, "police-500116-jijiang")),
        Just(accept_referral("R1")),
        Just(settle(agreement_signed_by_all())),
        Just(record_failure()),
        Just(escalate(street_committee())),
        Just(close(pb::ClosureOutcome::Resolved)),
        Just(follow_up(pb::Satisfaction::Dissatisfied)),
    ]
}

/// Steps: minutes to move on, then a command, or (`None`) a round of the timers.
fn steps() -> impl Strategy<Value = Vec<(i64, Option<Command>)>> {
    let wait = prop_oneof![0i64..180, 0i64..(60 * 24 * 12)];
    prop::collection::vec((wait, prop::option::weighted(0.7, command())), 1..50)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_timers_fire_each_deadline_once_and_only_when_due(steps in steps()) {
        let sla = rules();
        let mut history = registered();
        let mut t = now();
        let mut fired: BTreeMap<(String, &str), usize> = BTreeMap::new();
        for (minutes, step) in steps {
            t += SignedDuration::from_mins(minutes);
            match step {
                Some(command) => {
                    if decide(history.case(), &command, t).is_ok() {
                        history = history.then_at(t, command);
                    }
                }
                None => {
                    for deadline in history.case().clocks.deadlines(&sla.0) {
                        for (command, due) in [
                            (warn_deadline(&deadline.id), deadline.warning_due(t)),
                            (breach_deadline(&deadline.id), deadline.breach_due(t)),
                        ] {
                            let outcome = decide(history.case(), &command, t);
                            prop_assert_eq!(outcome.is_ok(), due, "{} {} at {}: {:?}", command.name(), deadline.id, t, outcome);
                            if due {
                                history = history.then_at(t, command);
                            }
                        }
                    }
                }
            }
        }
        for event in history.events() {
            if let Kind::DeadlineWarned(e) = &event {
                *fired.entry((e.deadline_id.clone(), type_name(&event))).or_default() += 1;
            }
            if let Kind::DeadlineBreached(e) = &event {
                prop_assert!(fired.contains_key(&(e.deadline_id.clone(), "DeadlineWarned")), "warned before breached");
                *fired.entry((e.deadline_id.clone(), type_name(&event))).or_default() += 1;
            }
        }
        prop_assert!(fired.values().all(|n| *n == 1), "each deadline fires each way once: {:?}", fired);
    }
}

//! Property tests of the case domain. For any sequence of commands (every `Command` variant, with
//! plausible and sometimes wrong arguments, at times moving forward by hours or weeks):
//!
//! - the case's invariants hold after every decision: at most one open referral per partner
//!   institution; a settled case has an agreement naming and signed by every registered party; a
//!   judicial confirmation or performance record implies an agreement; a closed case, and only a
//!   closed one, has a closure outcome; a case held by a committee has a committee and a tier;
//!   sessions and referrals are numbered S1, S2, … and R1, R2, … without gaps; `version` counts
//!   every event applied;
//! - a merged case refuses every command and never changes again;
//! - a refused command records nothing and leaves the case as it was; deciding is deterministic;
//! - a closed case accepts only follow-up, reopening, merging, work on its agreement (performance,
//!   judicial confirmation) and the partner's answers to its referrals;
//! - replaying the recorded events into `Case::default()` rebuilds exactly the state built
//!   incrementally.
//!
//! A last test checks that the generator reaches every state and gets every command accepted, so
//! the properties are not vacuous.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use fengqiao_domain::case::ReferralStatus;
use fengqiao_domain::event::{Kind, pb, type_name};
use fengqiao_domain::{Case, Command, decide};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};
use proptest::test_runner::{TestCaseError, TestRunner};
use support::*;

const PARTNERS: [(pb::PartnerKind, &str); 3] = [
    (pb::PartnerKind::Police, "police-500116-jijiang"),
    (pb::PartnerKind::Court, "court-500116-jiangjin"),
    (pb::PartnerKind::LawFirm, "lawfirm-500116-zhengyuan"),
];

/// Commands a closed case may accept.
const CLOSED_CASE_ACCEPTS: [&str; 10] = [
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
];

fn committee() -> impl Strategy<Value = fengqiao_domain::command::CommitteeRef> {
    prop_oneof![
        Just(grid_committee()),
        Just(community_committee()),
        Just(street_committee()),
        Just(district_committee()),
    ]
}

/// An agreement: mostly complete and signed, sometimes missing a party, a party's signature or
/// the mediator's; sometimes on a personal-status matter.
fn agreement() -> impl Strategy<Value = fengqiao_domain::command::Agreement> {
    (prop_oneof![7 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)], prop::bool::weighted(0.2)).prop_map(
        |(flaw, personal_status_matter)| {
            let mut agreement = agreement_signed_by_all();
            agreement.personal_status_matter = personal_status_matter;
            match flaw {
                1 => agreement.party_names.retain(|n| n.as_str() != RESPONDENT),
                2 => agreement.signed_by.retain(|n| n.as_str() != APPLICANT),
                3 => agreement.signed_by.retain(|n| n.as_str() != MEDIATOR),
                _ => {}
            }
            agreement
        },
    )
}

/// Any command, weighted towards those that move a case forward so that runs get deep into its life.
fn command() -> impl Strategy<Value = Command> {
    use pb::ClosureOutcome as O;
    let tier = prop_oneof![
        1 => Just(pb::Tier::Unspecified),
        3 => Just(pb::Tier::Grid),
        4 => Just(pb::Tier::Community),
        2 => Just(pb::Tier::Street),
        1 => Just(pb::Tier::District),
    ];
    let partner = prop::sample::select(PARTNERS.to_vec());
    // Mostly the first referrals, which exist more often; sometimes one that does not.
    let referral = || prop_oneof![4 => Just("R1"), 2 => Just("R2"), 1 => Just("R3"), 1 => Just("R4")];
    let session = prop::option::of(prop::sample::select(vec!["S1", "S2", "S3"]));
    let outcome = prop::sample::select(vec![
        O::Unspecified,
        O::Resolved,
        O::PartlyResolved,
        O::Unresolved,
        O::Withdrawn,
        O::Transferred,
        O::Merged,
    ]);
    let satisfaction = prop::sample::select(vec![
        pb::Satisfaction::Satisfied,
        pb::Satisfaction::BasicallySatisfied,
        pb::Satisfaction::Dissatisfied,
    ]);
    let performance = prop::sample::select(vec![pb::PerformanceStatus::Performed, pb::PerformanceStatus::Breached]);
    let mediators = prop::sample::subsequence(vec![MEDIATOR_ID, "med-500116001002-chenjun"], 0..=2);
    Union::new_weighted(vec![
        (1, Just(register_12345()).boxed()),
        (8, (tier, committee()).prop_map(|(t, c)| dispatch(t, c)).boxed()),
        (2, Just(return_case()).boxed()),
        (8, Just(Command::Accept).boxed()),
        (2, mediators.prop_map(|m| assign(&m)).boxed()),
        (4, Just(schedule_session()).boxed()),
        (4, session.prop_map(record_session).boxed()),
        (2, Just(record_arrival()).boxed()),
        (2, Just(report_progress()).boxed()),
        (4, Just(pause()).boxed()),
        (4, Just(resume()).boxed()),
        (2, (0u32..=70).prop_map(extend).boxed()),
        (6, partner.prop_map(|(kind, id)| refer(kind, id)).boxed()),
        (4, referral().prop_map(accept_referral).boxed()),
        (4, referral().prop_map(decline_referral).boxed()),
        (4, referral().prop_map(return_referral).boxed()),
        (6, referral().prop_map(conclude_referral).boxed()),
        (8, agreement().prop_map(settle).boxed()),
        (2, performance.prop_map(record_performance).boxed()),
        (4, Just(request_judicial_confirmation()).boxed()),
        (4, Just(accept_judicial_confirmation()).boxed()),
        (4, any::<bool>().prop_map(rule_judicial_confirmation).boxed()),
        (2, Just(record_failure()).boxed()),
        (4, committee().prop_map(escalate).boxed()),
        (8, outcome.prop_map(close).boxed()),
        (1, Just(withdraw()).boxed()),
        (1, Just(merge()).boxed()),
        (6, satisfaction.prop_map(follow_up).boxed()),
        (2, Just(reopen()).boxed()),
    ])
}

/// Hours to move the clock before the next command: mostly within a day, sometimes weeks (to cross
/// the judicial-confirmation window).
fn advance() -> impl Strategy<Value = i64> {
    prop_oneof![15 => 0i64..=24, 1 => (24 * 20i64)..=(24 * 40)]
}

/// How a run opens, so that runs of modest length also reach the late parts of a case's life: a
/// registration, then possibly dispatch and sign-for, then possibly a settlement or a failure.
fn opening() -> impl Strategy<Value = Vec<Command>> {
    (0usize..4).prop_map(|depth| {
        let mut commands = vec![register_12345()];
        if depth >= 1 {
            commands.extend([dispatch(pb::Tier::Community, community_committee()), Command::Accept]);
        }
        match depth {
            2 => commands.extend([schedule_session(), record_session(Some("S1")), settle(agreement_signed_by_all())]),
            3 => commands.extend([record_session(None), record_failure()]),
            _ => {}
        }
        commands
    })
}

/// A run: an opening played at the start, then up to 60 timed commands.
fn run() -> impl Strategy<Value = Vec<(i64, Command)>> {
    (opening(), prop::collection::vec((advance(), command()), 1..60)).prop_map(|(opening, steps)| {
        let mut all: Vec<(i64, Command)> = opening.into_iter().map(|c| (0, c)).collect();
        all.extend(steps);
        all
    })
}

/// One decided step of a run.
struct Step {
    command: &'static str,
    before: Case,
    outcome: Result<Vec<Kind>, fengqiao_domain::Rejection>,
}

/// Plays a run, folding accepted decisions into the case and the log, and hands each step to
/// `check` with the case and the log as they stand afterwards.
fn play(
    run: Vec<(i64, Command)>,
    mut check: impl FnMut(&Step, &Case, &[Kind]) -> Result<(), TestCaseError>,
) -> Result<(Case, Vec<Kind>), TestCaseError> {
    let mut case = Case::default();
    let mut log: Vec<Kind> = Vec::new();
    let mut at: Timestamp = now();
    for (hours, command) in run {
        at += SignedDuration::from_hours(hours);
        let before = case.clone();
        let outcome = decide(&case, &command, at);
        prop_assert_eq!(&outcome, &decide(&case, &command, at), "deciding is deterministic");
        if let Ok(events) = &outcome {
            for event in events {
                case.apply(event);
                log.push(event.clone());
            }
        }
        check(&Step { command: command.name(), before, outcome }, &case, &log)?;
    }
    Ok((case, log))
}

/// The invariants every case satisfies after every decision.
fn check_invariants(case: &Case, log: &[Kind]) -> Result<(), TestCaseError> {
    use pb::CaseState as S;
    prop_assert_eq!(case.version, log.len() as u64, "version counts every event, without gaps");

    let mut open_per_partner: BTreeMap<&str, usize> = BTreeMap::new();
    for referral in case.referrals.iter().filter(|r| r.status.is_open()) {
        *open_per_partner.entry(referral.partner_id.as_str()).or_default() += 1;
    }
    prop_assert!(open_per_partner.values().all(|n| *n <= 1), "open referrals per partner: {:?}", open_per_partner);

    if case.status() == S::Settled {
        let agreement = case.agreement.as_ref();
        prop_assert!(agreement.is_some(), "a settled case has an agreement");
        let agreement = agreement.expect("checked above");
        for party in &case.party_names {
            prop_assert!(agreement.party_names.contains(party), "the agreement names {}", party);
            prop_assert!(agreement.signed_by.contains(party), "{} signed the agreement", party);
        }
        prop_assert!(agreement.signed_by.len() > agreement.party_names.len(), "the mediator signed as well");
    }
    prop_assert!(case.judicial.is_none() || case.agreement.is_some(), "judicial confirmation without agreement");
    prop_assert!(case.performance.is_none() || case.agreement.is_some(), "performance without agreement");

    match case.status() {
        S::Closed => prop_assert!(case.closure.is_some(), "a closed case has an outcome"),
        S::Registered | S::Dispatched | S::Accepted | S::InMediation | S::Settled | S::Failed => {
            prop_assert!(case.closure.is_none(), "an open case has no closure outcome");
        }
        S::Merged => {
            prop_assert!(case.merged_into.is_some(), "a merged case names the case it went into");
            prop_assert!(!case.referrals.iter().any(|r| r.status.is_open()), "a merged case holds no open referral");
        }
        S::Unspecified => prop_assert!(false, "every run starts with a registration"),
    }
    if matches!(case.status(), S::Dispatched | S::Accepted | S::InMediation | S::Settled | S::Failed) {
        prop_assert!(case.committee.is_some(), "a committee holds a dispatched case");
        prop_assert!(
            matches!(case.tier, Some(t) if t != pb::Tier::Unspecified),
            "a dispatched case has a tier: {:?}",
            case.tier
        );
    }

    let sessions: Vec<&str> = case.sessions.iter().map(|(id, _)| id.as_str()).collect();
    let expected: Vec<String> = (1..=sessions.len()).map(|n| format!("S{n}")).collect();
    prop_assert_eq!(sessions, expected.iter().map(String::as_str).collect::<Vec<_>>(), "sessions are S1, S2, …");
    let referrals: Vec<&str> = case.referrals.iter().map(|r| r.id.as_str()).collect();
    let expected: Vec<String> = (1..=referrals.len()).map(|n| format!("R{n}")).collect();
    prop_assert_eq!(referrals, expected.iter().map(String::as_str).collect::<Vec<_>>(), "referrals are R1, R2, …");
    Ok(())
}

/// The rules about what a single decision may do, given the case before it.
fn check_step(step: &Step, case: &Case) -> Result<(), TestCaseError> {
    use pb::CaseState as S;
    match &step.outcome {
        Err(_) => prop_assert_eq!(case, &step.before, "a refused {} changed the case", step.command),
        Ok(events) => {
            let names: Vec<&str> = events.iter().map(type_name).collect();
            let expected_reopen = ["FollowUpRecorded", "CaseReopened"];
            prop_assert!(
                names.len() == 1 || names == expected_reopen,
                "{} emitted {:?}: one event, or a dissatisfied follow-up and the reopening",
                step.command,
                names
            );
            prop_assert!(step.before.status() != S::Merged, "a merged case accepted {}", step.command);
            if step.before.status() == S::Closed {
                prop_assert!(CLOSED_CASE_ACCEPTS.contains(&step.command), "a closed case accepted {}", step.command);
            }
            if names == expected_reopen {
                prop_assert_eq!(case.follow_up, Some(pb::Satisfaction::Dissatisfied));
                prop_assert_eq!(case.status(), S::Accepted, "二次办理 puts the case back in the committee's hands");
            }
        }
    }
    if step.before.status() == S::Merged {
        prop_assert!(step.outcome.is_err(), "a merged case accepted {}", step.command);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_command_sequence_keeps_the_invariants(run in run()) {
        play(run, |step, case, log| {
            check_step(step, case)?;
            check_invariants(case, log)
        })?;
    }

    #[test]
    fn replaying_the_recorded_events_rebuilds_the_same_case(run in run()) {
        let (case, log) = play(run, |_, case, log| {
            // After every decision, not only at the end.
            prop_assert_eq!(&Case::from_events(log), case);
            Ok(())
        })?;
        prop_assert_eq!(Case::from_events(&log), case.clone());
        // Folding a prefix and then the rest gives the same case as folding everything at once.
        let mut resumed = Case::from_events(&log[..log.len() / 2]);
        for event in &log[log.len() / 2..] {
            resumed.apply(event);
        }
        prop_assert_eq!(resumed, case);
    }
}

#[test]
fn the_generated_runs_reach_every_state_and_get_every_command_accepted() {
    let mut runner = TestRunner::deterministic();
    let strategy = run();
    let mut states = BTreeSet::new();
    let mut accepted = BTreeSet::new();
    let mut refused = 0usize;
    for _ in 0..512 {
        let run = strategy.new_tree(&mut runner).expect("a generated run").current();
        play(run, |step, case, _| {
            states.insert(case.status() as i32);
            if step.outcome.is_ok() {
                accepted.insert(step.command);
            } else {
                refused += 1;
            }
            Ok(())
        })
        .expect("playing a run never fails here");
    }
    let all_states: BTreeSet<i32> = (1..=8).collect();
    assert_eq!(states, all_states, "states reached (CaseState numbers)");
    let all_commands: BTreeSet<&str> = [
        "RegisterCase",
        "DispatchCase",
        "ReturnCase",
        "AcceptCase",
        "AssignMediators",
        "ScheduleSession",
        "RecordSession",
        "RecordArrival",
        "ReportProgress",
        "PauseClock",
        "ResumeClock",
        "GrantExtension",
        "ReferCase",
        "AcceptReferral",
        "DeclineReferral",
        "ReturnReferral",
        "ConcludeReferral",
        "RecordSettlement",
        "RecordPerformance",
        "RequestJudicialConfirmation",
        "AcceptJudicialConfirmation",
        "RuleJudicialConfirmation",
        "RecordMediationFailure",
        "EscalateCase",
        "CloseCase",
        "WithdrawCase",
        "MergeCase",
        "RecordFollowUp",
        "ReopenCase",
    ]
    .into();
    assert_eq!(accepted, all_commands, "commands accepted at least once");
    assert!(refused > 0, "the runs also exercise refusals");
    // The same for the referral life: every status reached somewhere.
    let statuses: BTreeSet<String> = {
        let mut runner = TestRunner::deterministic();
        let mut seen = BTreeSet::new();
        for _ in 0..128 {
            let run = strategy.new_tree(&mut runner).expect("a generated run").current();
            let (case, _) = play(run, |_, _, _| Ok(())).expect("playing a run never fails here");
            seen.extend(case.referrals.iter().map(|r| format!("{:?}", r.status)));
        }
        seen
    };
    let all_statuses: BTreeSet<String> = [
        ReferralStatus::Pending,
        ReferralStatus::Accepted,
        ReferralStatus::Declined,
        ReferralStatus::Returned,
        ReferralStatus::Concluded,
    ]
    .iter()
    .map(|s| format!("{s:?}"))
    .collect();
    assert_eq!(statuses, all_statuses, "referral statuses reached");
}

//! The escalation timers end to end (DESIGN §3), against real NATS and PostgreSQL with a manual
//! clock the tests move forward instead of sleeping:
//!
//! - an urgent case's 1-minute response and 10-minute feedback breaches, fired by the worker that
//!   `fengqiao serve` runs, with the events the ladder asks for;
//! - two workers on one database and stream: every deadline warns once and is breached once;
//! - a worker killed between deciding and committing, and deadlines missed during an outage:
//!   one warning and one breach after the restart;
//! - a pause of three days moves the mediation deadline by three days, and its breach escalates
//!   the case to the next tier;
//! - reopening after a dissatisfied follow-up restarts the handling clock, and a replay of the
//!   stream rebuilds the `deadlines` read model row for row;
//! - the escalation board: a unit subtree's warnings and breaches, oldest first, in local time.
//!
//! Calendar arithmetic (Spring Festival with make-up working days, the year boundary, Asia/Shanghai
//! beside a zone with daylight saving) is proved by the calendar crate's own tests
//! (`crates/calendar/tests/cn_national.rs`, `time_zones.rs`, `properties.rs`).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tonic::Code;

use fengqiao::timers::{Fired, Firing, FiringKind, TimerWorker};
use fengqiao_domain::event::{Kind, pb, type_name};
use fengqiao_domain::values::CaseId;
use fengqiao_projection::deadlines::{self, BoardPage, OpenDeadline, State};
use fengqiao_tests::*;

/// Monday 2 March 2026, 09:00 in Chongqing: a working day, inside the shipped calendars.
fn monday() -> Timestamp {
    "2026-03-02T09:00:00+08:00".parse().expect("an instant")
}

fn minutes(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

fn days(d: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * d)
}

/// A service with no timer worker of its own (the tests drive workers), its clock at `monday()`.
async fn app_without_timers() -> TestApp {
    let app = TestApp::spawn().await;
    app.clock.set(monday());
    app
}

/// Every event of a case as the stream holds it: (stream sequence, occurred at, event).
async fn stream_events(app: &TestApp, case_id: &str) -> Vec<(u64, Timestamp, Kind)> {
    let store = fengqiao::app::open_store(&app.settings).await.expect("event store");
    let id = CaseId::parse("case_id", case_id).expect("a case id");
    let mut out = Vec::new();
    for commit in store.load(id, 0).await.expect("case history") {
        for env in commit.commit.events {
            let at = Timestamp::from_millisecond(env.occurred_at_unix_ms).expect("an instant");
            let kind = env.event.and_then(|e| e.kind).expect("an event");
            out.push((commit.sequence, at, kind));
        }
    }
    out
}

/// The deadline ids warned and breached in a case's history, in order, each as often as recorded.
async fn firings(app: &TestApp, case_id: &str) -> (Vec<String>, Vec<String>) {
    let (mut warned, mut breached) = (Vec::new(), Vec::new());
    for (_, _, kind) in stream_events(app, case_id).await {
        match kind {
            Kind::DeadlineWarned(e) => warned.push(e.deadline_id),
            Kind::DeadlineBreached(e) => breached.push(e.deadline_id),
            _ => {}
        }
    }
    (warned, breached)
}

/// Waits until the `deadlines` read model has applied everything in the stream.
async fn projected(app: &TestApp) {
    let store = fengqiao::app::open_store(&app.settings).await.expect("event store");
    let last = store.last_sequence().await.expect("stream end");
    let db = app.db().await;
    fengqiao_projection::query::wait_for(&db, deadlines::NAME, None, last, Duration::from_secs(15))
        .await
        .expect("the deadlines read model catches up");
}

/// The open deadlines of a case in the read model, once it has caught up with the stream.
async fn open_deadlines(app: &TestApp, case_id: &str) -> Vec<OpenDeadline> {
    projected(app).await;
    let id = uuid::Uuid::parse_str(case_id).expect("a case id");
    deadlines::of_case(&app.db().await, id).await.expect("deadlines of the case")
}

/// Another timer worker on the test's stream and database, with the test's clock: as a separate
/// process would run it.
async fn worker(app: &TestApp) -> TimerWorker {
    TimerWorker::connect(&app.settings, app.clock.clone()).await.expect("timer worker")
}

/// Lets `worker` tick until nothing is due any more (each time after the read model has caught
/// up), at most five rounds; returns how many firings it recorded.
async fn drain(app: &TestApp, worker: &TimerWorker) -> usize {
    let mut recorded = 0;
    for _ in 0..5 {
        projected(app).await;
        let tick = worker.tick().await.expect("tick");
        assert_eq!(tick.failed, 0, "{tick:?}");
        recorded += tick.recorded;
        if tick.due == 0 {
            return recorded;
        }
    }
    panic!("firings still due after five ticks");
}

/// Commits every firing of `plan` with `worker`, in order.
async fn fire_all(worker: &TimerWorker, plan: &[Firing]) -> Vec<Fired> {
    let mut outcomes = Vec::new();
    for firing in plan {
        outcomes.push(worker.fire(firing).await.expect("fire"));
    }
    outcomes
}

/// Registers an emergency grid report (violence risk) in the community; returns its id.
async fn emergency(app: &TestApp, key: &str) -> String {
    let mut request = grid_report(key);
    request.urgency = events::Urgency::Emergency as i32;
    request.risk_signals = vec![events::RiskSignal::Violence as i32];
    app.intake()
        .await
        .register_case(req(&app.token("grid_worker", COMMUNITY), request))
        .await
        .expect("registered")
        .into_inner()
        .case_id
}

/// Registers a grid report in `unit` and dispatches it to the committee `(id, unit)` at `tier`.
async fn dispatched(app: &TestApp, key: &str, unit: &str, tier: events::Tier, committee: (&str, &str)) -> String {
    let mut request = grid_report(&format!("{key}-register"));
    request.unit_code = unit.to_owned();
    let id = app
        .intake()
        .await
        .register_case(req(&app.token("grid_worker", unit), request))
        .await
        .expect("registered")
        .into_inner()
        .case_id;
    app.work()
        .await
        .dispatch_case(req(
            &app.token("dispatcher", STREET),
            rpc::DispatchCaseRequest {
                meta: meta(&format!("{key}-dispatch")),
                case_id: id.clone(),
                tier: tier as i32,
                committee_id: committee.0.to_owned(),
                committee_unit_code: committee.1.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .expect("dispatched");
    id
}

/// Signs for a dispatched case as the committee lead of `unit`.
async fn accept(app: &TestApp, unit: &str, case_id: &str, key: &str) {
    app.work()
        .await
        .accept_case(req(
            &app.token("committee_lead", unit),
            rpc::AcceptCaseRequest { meta: meta(key), case_id: case_id.to_owned() },
        ))
        .await
        .expect("accepted");
}

/// The ids of the deadlines in `list`.
fn ids(list: &[OpenDeadline]) -> Vec<&str> {
    list.iter().map(|d| d.deadline.id.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------

/// Waits (bounded) until the case's history holds `what`, a `DeadlineWarned` or
/// `DeadlineBreached` of `deadline_id`; returns when it occurred and the event.
async fn fired(app: &TestApp, case_id: &str, what: &str, deadline_id: &str) -> (Timestamp, Kind) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let found = stream_events(app, case_id).await.into_iter().find(|(_, _, k)| match k {
            Kind::DeadlineWarned(e) => what == "DeadlineWarned" && e.deadline_id == deadline_id,
            Kind::DeadlineBreached(e) => what == "DeadlineBreached" && e.deadline_id == deadline_id,
            _ => false,
        });
        if let Some((_, at, kind)) = found {
            return (at, kind);
        }
        assert!(tokio::time::Instant::now() < give_up, "no {what} of {deadline_id} within 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_urgent_case_breaches_its_1_minute_response_and_10_minute_feedback_as_the_clock_advances() {
    // The service's own worker, scanning every 20 ms of real time.
    let app = TestApp::spawn_with(|s| {
        s.timers.enabled = true;
        s.timers.interval_ms = 20;
    })
    .await;
    app.clock.set(monday());
    let t0 = monday();
    let case = emergency(&app, "urgent-1").await;

    // 45 s: 75 % of the minute to respond. The warning occurs at the instant the clock shows.
    app.clock.set(t0 + SignedDuration::from_secs(45));
    let (at, warning) = fired(&app, &case, "DeadlineWarned", "urgent_response:1").await;
    assert_eq!(at, t0 + SignedDuration::from_secs(45));
    let Kind::DeadlineWarned(w) = warning else { unreachable!("asked for a warning") };
    assert_eq!(w.clock, pb::Clock::UrgentResponse as i32);
    assert_eq!(w.due_at_unix_ms, (t0 + minutes(1)).as_millisecond());

    // One minute: nobody dispatched the case; the breach goes to the command centre (督办).
    app.clock.set(t0 + minutes(1));
    let (at, breach) = fired(&app, &case, "DeadlineBreached", "urgent_response:1").await;
    assert_eq!(at, t0 + minutes(1), "the breach is recorded when due, not before");
    let Kind::DeadlineBreached(b) = breach else { unreachable!("asked for a breach") };
    assert_eq!(b.route, pb::EscalationRoute::Dispatcher as i32);
    assert_eq!(b.due_at_unix_ms, (t0 + minutes(1)).as_millisecond());
    let (warned, breached) = firings(&app, &case).await;
    assert!(!warned.contains(&"urgent_feedback:1".to_owned()), "the feedback warning is not due yet");
    assert_eq!(breached, ["urgent_response:1"]);

    // Ten minutes: no arrival, no feedback. The feedback warning (7.5 min) was passed over; the
    // breach records it first, in the same commit.
    app.clock.set(t0 + minutes(10));
    let (at, breach) = fired(&app, &case, "DeadlineBreached", "urgent_feedback:1").await;
    assert_eq!(at, t0 + minutes(10));
    let Kind::DeadlineBreached(b) = breach else { unreachable!("asked for a breach") };
    assert_eq!(b.clock, pb::Clock::UrgentFeedback as i32);
    assert_eq!(b.due_at_unix_ms, (t0 + minutes(10)).as_millisecond());
    assert_eq!(b.route, pb::EscalationRoute::Dispatcher as i32);
    fired(&app, &case, "DeadlineBreached", "urgent_arrival:1").await;

    // Nothing more is due: a further worker finds nothing to record, and every deadline has
    // warned once and been breached once.
    assert_eq!(drain(&app, &worker(&app).await).await, 0);
    let (mut warned, mut breached) = firings(&app, &case).await;
    warned.sort();
    breached.sort();
    let all = ["urgent_arrival:1", "urgent_feedback:1", "urgent_response:1"];
    assert_eq!(warned, all);
    assert_eq!(breached, all);
    app.finish().await;
}

#[tokio::test]
async fn two_workers_against_one_database_and_stream_fire_each_deadline_exactly_once() {
    let app = app_without_timers().await;
    let mut cases = Vec::new();
    for i in 0..6 {
        cases.push(emergency(&app, &format!("two-workers-{i}")).await);
    }
    // Every urgent deadline of every case (3 per case) is past due at once.
    app.clock.set(monday() + minutes(11));
    let (a, b) = (worker(&app).await, worker(&app).await);
    projected(&app).await;
    // Both decide on the same 18 firings before either commits, then race to commit them all
    // (in opposite orders, so they meet in the middle).
    let (plan_a, plan_b) = (a.plan().await.expect("plan"), b.plan().await.expect("plan"));
    assert_eq!(plan_a.len(), 18);
    assert_eq!(plan_a, plan_b);
    let reversed: Vec<Firing> = plan_b.into_iter().rev().collect();
    let (out_a, out_b) = tokio::join!(fire_all(&a, &plan_a), fire_all(&b, &reversed));
    let recorded = out_a.iter().chain(&out_b).filter(|o| matches!(o, Fired::Recorded { .. })).count();
    // One commit per deadline (each breach records its missed warning with it), whoever won;
    // the other attempt at each was turned away.
    assert_eq!(recorded, 18, "{out_a:?} {out_b:?}");
    assert_eq!(out_a.len() + out_b.len() - recorded, 18);
    assert_eq!(drain(&app, &a).await + drain(&app, &b).await, 0);
    for case in &cases {
        let (mut warned, mut breached) = firings(&app, case).await;
        warned.sort();
        breached.sort();
        let all = ["urgent_arrival:1", "urgent_feedback:1", "urgent_response:1"];
        assert_eq!(warned, all, "case {case}");
        assert_eq!(breached, all, "case {case}");
    }
    app.finish().await;
}

#[tokio::test]
async fn a_worker_killed_between_deciding_and_committing_and_an_outage_leave_exactly_one_firing() {
    let app = app_without_timers().await;
    // Dispatched Monday 09:00: the committee has 2 working hours to sign for it (warning 10:30,
    // due 11:00).
    let case = dispatched(&app, "killed", COMMUNITY, events::Tier::Community, ("cmt-500116001002", COMMUNITY)).await;
    let sign_for = open_deadlines(&app, &case).await;
    assert_eq!(ids(&sign_for), ["sign_for:2"]);
    assert_eq!(sign_for[0].deadline.warn_at, monday() + minutes(90));
    assert_eq!(sign_for[0].deadline.due_at, monday() + minutes(120));

    // No worker ran all morning. At 14:00 the first one decides: the breach, warning included.
    app.clock.set(monday() + minutes(300));
    let first = worker(&app).await;
    let plan = first.plan().await.expect("plan");
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].kind, FiringKind::Breach);
    assert_eq!(plan[0].deadline_id.as_str(), "sign_for:2");
    // …and is killed before it commits.
    drop(first);
    assert_eq!(firings(&app, &case).await, (vec![], vec![]));

    // Restarted, it fires once: the warning and the breach in one commit.
    let restarted = worker(&app).await;
    assert_eq!(drain(&app, &restarted).await, 1);
    let history = stream_events(&app, &case).await;
    let fired: Vec<(u64, &str)> = history
        .iter()
        .filter(|(_, _, k)| matches!(k, Kind::DeadlineWarned(_) | Kind::DeadlineBreached(_)))
        .map(|(seq, _, k)| (*seq, type_name(k)))
        .collect();
    assert_eq!(fired.len(), 2, "{fired:?}");
    assert_eq!(fired[0].1, "DeadlineWarned");
    assert_eq!(fired[1].1, "DeadlineBreached");
    assert_eq!(fired[0].0, fired[1].0, "one commit");

    // A worker that committed and died before hearing the answer sends the same firing again
    // when it comes back: answered from the idempotency key, nothing appended.
    let again = worker(&app).await;
    assert_eq!(again.fire(&plan[0]).await.expect("fire"), Fired::Replayed);
    assert_eq!(drain(&app, &again).await, 0);
    assert_eq!(firings(&app, &case).await, (vec!["sign_for:2".to_owned()], vec!["sign_for:2".to_owned()]));
    let left = open_deadlines(&app, &case).await;
    assert_eq!(left[0].state, State::Breached);
    assert_eq!(left[0].deadline.next_firing(), None);
    app.finish().await;
}

#[tokio::test]
async fn a_three_day_pause_moves_the_mediation_deadline_by_three_days_and_its_breach_escalates() {
    let app = app_without_timers().await;
    let t0 = monday();
    // At grid tier, with the grid's mediation group; accepted at once: 30 days of mediation.
    let case = dispatched(&app, "paused", GRID, events::Tier::Grid, ("cmt-50011600100201", GRID)).await;
    accept(&app, COMMUNITY, &case, "paused-accept").await;
    let mediation = open_deadlines(&app, &case).await;
    assert_eq!(ids(&mediation), ["mediation:3"]);
    assert_eq!(mediation[0].deadline.due_at, t0 + days(30));

    let lead = app.token("committee_lead", COMMUNITY);
    app.clock.set(t0 + days(1));
    app.work()
        .await
        .pause_clock(req(
            &lead,
            rpc::PauseClockRequest {
                meta: meta("paused-pause"),
                case_id: case.clone(),
                reason: "当事人住院，暂停调解".to_owned(),
            },
        ))
        .await
        .expect("paused");
    let paused = open_deadlines(&app, &case).await;
    assert_eq!(paused[0].deadline.paused_since, Some(t0 + days(1)));
    app.clock.set(t0 + days(4));
    app.work()
        .await
        .resume_clock(req(
            &lead,
            rpc::ResumeClockRequest { meta: meta("paused-resume"), case_id: case.clone(), note: String::new() },
        ))
        .await
        .expect("resumed");
    let resumed = open_deadlines(&app, &case).await;
    assert_eq!(resumed[0].deadline.paused_since, None);
    assert_eq!(resumed[0].deadline.due_at, t0 + days(33), "moved by the three paused days");
    assert_eq!(resumed[0].deadline.warn_at, t0 + SignedDuration::from_hours(22 * 24 + 12) + days(3));

    // An hour past the unpaused deadline: only the warning is due.
    let w = worker(&app).await;
    app.clock.set(t0 + days(30) + minutes(60));
    assert_eq!(drain(&app, &w).await, 1);
    assert_eq!(firings(&app, &case).await, (vec!["mediation:3".to_owned()], vec![]));

    // At the moved deadline the breach escalates the case to the community committee (小事不出
    // 网格: the ladder's next tier), in the same commit.
    app.clock.set(t0 + days(33));
    assert_eq!(drain(&app, &w).await, 1);
    let history = stream_events(&app, &case).await;
    let (breach_seq, breach) = history
        .iter()
        .find_map(|(seq, _, k)| match k {
            Kind::DeadlineBreached(b) => Some((*seq, b.clone())),
            _ => None,
        })
        .expect("breached");
    assert_eq!(breach.route, pb::EscalationRoute::NextTier as i32);
    assert_eq!(breach.due_at_unix_ms, (t0 + days(33)).as_millisecond());
    let (escalation_seq, escalation) = history
        .iter()
        .find_map(|(seq, _, k)| match k {
            Kind::CaseEscalated(e) => Some((*seq, e.clone())),
            _ => None,
        })
        .expect("escalated");
    assert_eq!(escalation_seq, breach_seq, "one commit");
    assert!(escalation.automatic);
    assert_eq!(escalation.to_tier, pb::Tier::Community as i32);
    assert_eq!(escalation.committee_id, "cmt-500116001002");
    // The community committee now has its own sign-for clock; the mediation deadline is gone.
    let after = open_deadlines(&app, &case).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].deadline.clock, pb::Clock::SignFor);
    assert_eq!(after[0].committee_id, "cmt-500116001002");
    app.finish().await;
}

#[tokio::test]
async fn reopening_after_a_dissatisfied_follow_up_restarts_the_handling_clock() {
    let app = app_without_timers().await;
    let t0 = monday();
    let case = dispatched(&app, "reopen", COMMUNITY, events::Tier::Community, ("cmt-500116001002", COMMUNITY)).await;
    accept(&app, COMMUNITY, &case, "reopen-accept").await;
    // 25 days on, the mediation deadline has warned.
    let w = worker(&app).await;
    app.clock.set(t0 + days(25));
    assert_eq!(drain(&app, &w).await, 1);
    assert_eq!(open_deadlines(&app, &case).await[0].state, State::Warned);

    let dispatcher = app.token("dispatcher", STREET);
    app.clock.set(t0 + days(26));
    app.work()
        .await
        .close_case(req(
            &dispatcher,
            rpc::CloseCaseRequest {
                meta: meta("reopen-close"),
                case_id: case.clone(),
                outcome: events::ClosureOutcome::Resolved as i32,
                summary: "双方达成口头和解。".to_owned(),
            },
        ))
        .await
        .expect("closed");
    assert_eq!(ids(&open_deadlines(&app, &case).await), ["follow_up:5"]);

    // The follow-up call finds the applicant dissatisfied: 二次办理.
    let reopened_at = t0 + days(26) + minutes(120);
    app.clock.set(reopened_at);
    app.follow_up()
        .await
        .record_follow_up(req(
            &dispatcher,
            rpc::RecordFollowUpRequest {
                meta: meta("reopen-follow-up"),
                case_id: case.clone(),
                method: events::FollowUpMethod::Phone as i32,
                satisfaction: events::Satisfaction::Dissatisfied as i32,
                note: String::new(),
            },
        ))
        .await
        .expect("followed up");
    let restarted = open_deadlines(&app, &case).await;
    assert_eq!(ids(&restarted), ["mediation:7"], "a new handling clock; the old one and the follow-up are gone");
    assert_eq!(restarted[0].deadline.started_at, reopened_at);
    assert_eq!(restarted[0].deadline.due_at, reopened_at + days(30));
    assert_eq!(restarted[0].state, State::Running, "the earlier warning belongs to the earlier clock");

    // Its own warning and breach come in their time.
    app.clock.set(reopened_at + days(30));
    assert_eq!(drain(&app, &w).await, 1);
    assert_eq!(
        firings(&app, &case).await,
        (vec!["mediation:3".to_owned(), "mediation:7".to_owned()], vec!["mediation:7".to_owned()])
    );

    // A replay of the stream into an empty database rebuilds the read model exactly.
    projected(&app).await;
    let store = fengqiao::app::open_store(&app.settings).await.expect("event store");
    let last = store.last_sequence().await.expect("stream end");
    let mut replay = app.settings.clone();
    replay.database_url = fresh_settings().database_url;
    create_database(&replay).await.expect("replay database");
    project_until(&replay, 2, last, Duration::from_secs(30)).await.expect("replayed");
    let only_deadlines = |all: std::collections::BTreeMap<String, Vec<String>>| {
        all.into_iter().filter(|(table, _)| table.starts_with("deadlines.")).collect::<Vec<_>>()
    };
    let live = only_deadlines(read_model_rows(&app.db().await).await.expect("rows"));
    let rebuilt =
        only_deadlines(read_model_rows(&connect(&replay.database_url).await.expect("db")).await.expect("rows"));
    assert!(live.iter().any(|(table, rows)| table == "deadlines.deadlines" && rows.len() == 1), "{live:?}");
    assert_eq!(live, rebuilt);
    cleanup(&replay).await;
    app.finish().await;
}

#[tokio::test]
async fn the_escalation_board_lists_a_subtrees_warnings_and_breaches_oldest_first_in_local_time() {
    let app = app_without_timers().await;
    let t0 = monday();
    // Two cases in the community (dispatched 09:00 and 09:30), one in another street's community.
    let first = dispatched(&app, "board-1", COMMUNITY, events::Tier::Community, ("cmt-500116001002", COMMUNITY)).await;
    app.clock.set(t0 + minutes(30));
    let second = dispatched(&app, "board-2", COMMUNITY, events::Tier::Community, ("cmt-500116001002", COMMUNITY)).await;
    let elsewhere = {
        let mut request = grid_report("board-3");
        request.unit_code = OTHER_COMMUNITY.to_owned();
        let id = app
            .intake()
            .await
            .register_case(req(&app.token("grid_worker", OTHER_COMMUNITY), request))
            .await
            .expect("registered")
            .into_inner()
            .case_id;
        app.work()
            .await
            .dispatch_case(req(
                &app.token("dispatcher", "500116002000"),
                rpc::DispatchCaseRequest {
                    meta: meta("board-3-dispatch"),
                    case_id: id.clone(),
                    tier: events::Tier::Community as i32,
                    committee_id: "cmt-500116002003".to_owned(),
                    committee_unit_code: OTHER_COMMUNITY.to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .expect("dispatched");
        id
    };
    // 11:15: the first case's sign-for is breached (11:00), the second's has warned (11:00; due
    // 11:30), the other street's (dispatched 09:30 too) has warned.
    app.clock.set(t0 + minutes(135));
    let w = worker(&app).await;
    assert_eq!(drain(&app, &w).await, 3);
    projected(&app).await;

    let list = |token: String, request: rpc::ListEscalationsRequest| {
        let app = &app;
        async move { app.escalations().await.list_escalations(req(&token, request)).await }
    };
    let street = app.token("dispatcher", STREET);
    let page = list(street.clone(), rpc::ListEscalationsRequest::default()).await.expect("board").into_inner();
    let seen: Vec<(&str, i32)> = page.items.iter().map(|i| (i.case_id.as_str(), i.state)).collect();
    assert_eq!(
        seen,
        [
            (first.as_str(), rpc::EscalationState::Breached as i32),
            (second.as_str(), rpc::EscalationState::Warned as i32)
        ],
        "the street's subtree, oldest due first"
    );
    let breached = &page.items[0];
    assert_eq!(breached.deadline_id, "sign_for:2");
    assert_eq!(breached.due_at_local, "2026-03-02T11:00:00+08:00");
    assert_eq!(breached.warn_at_local, "2026-03-02T10:30:00+08:00");
    assert_eq!(breached.time_zone, "Asia/Shanghai");
    assert_eq!(breached.jurisdiction, "cn");
    assert_eq!(breached.route, pb::EscalationRoute::Dispatcher as i32);
    assert_eq!(breached.overdue_ms, minutes(15).as_millis() as i64);
    assert_eq!(breached.committee_id, "cmt-500116001002");
    assert_eq!(page.items[1].due_at_local, "2026-03-02T11:30:00+08:00");
    assert_eq!(page.items[1].overdue_ms, 0);

    // Only breaches; paging one at a time.
    let breaches = list(
        street.clone(),
        rpc::ListEscalationsRequest { states: vec![rpc::EscalationState::Breached as i32], ..Default::default() },
    )
    .await
    .expect("board")
    .into_inner();
    assert_eq!(breaches.items.len(), 1);
    let one = list(street.clone(), rpc::ListEscalationsRequest { page_size: 1, ..Default::default() })
        .await
        .expect("board")
        .into_inner();
    let two = list(
        street.clone(),
        rpc::ListEscalationsRequest { page_size: 1, page_token: one.next_page_token.clone(), ..Default::default() },
    )
    .await
    .expect("board")
    .into_inner();
    assert_eq!(one.items[0].case_id, first);
    assert_eq!(two.items[0].case_id, second);

    // The district's supervisor sees all three; the other street sees only its own.
    let district = list(app.token("supervisor", DISTRICT), rpc::ListEscalationsRequest::default())
        .await
        .expect("board")
        .into_inner();
    assert_eq!(district.items.len(), 3);
    let other = list(app.token("dispatcher", "500116002000"), rpc::ListEscalationsRequest::default())
        .await
        .expect("board")
        .into_inner();
    assert_eq!(other.items.iter().map(|i| i.case_id.as_str()).collect::<Vec<_>>(), [elsewhere.as_str()]);

    // Outside the caller's unit, or not a supervising role: denied. A bad filter names the field.
    let outside = list(
        street.clone(),
        rpc::ListEscalationsRequest { unit_code: OTHER_COMMUNITY.to_owned(), ..Default::default() },
    )
    .await
    .expect_err("outside");
    assert_eq!(outside.code(), Code::PermissionDenied);
    let mediator = list(app.token("mediator", COMMUNITY), rpc::ListEscalationsRequest::default()).await;
    assert_eq!(mediator.expect_err("a mediator").code(), Code::PermissionDenied);
    let bad = list(street, rpc::ListEscalationsRequest { clocks: vec![99], ..Default::default() })
        .await
        .expect_err("unknown clock");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("clocks[0]"), "{}", bad.message());

    // Signing for the breached case takes it off the board.
    app.clock.set(t0 + minutes(140));
    accept(&app, COMMUNITY, &first, "board-1-accept").await;
    projected(&app).await;
    let after = list(app.token("supervisor", DISTRICT), rpc::ListEscalationsRequest::default())
        .await
        .expect("board")
        .into_inner();
    assert!(!after.items.iter().any(|i| i.case_id == first));
    app.finish().await;
}

/// Every node of a plan, as (node type, relation, index).
fn plan_nodes(plan: &serde_json::Value, out: &mut Vec<(String, String, String)>) {
    let text = |key: &str| plan.get(key).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    out.push((text("Node Type"), text("Relation Name"), text("Index Name")));
    for child in plan.get("Plans").and_then(serde_json::Value::as_array).into_iter().flatten() {
        plan_nodes(child, out);
    }
}

fn nodes_of(explained: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    plan_nodes(&explained[0]["Plan"], &mut out);
    out
}

#[tokio::test]
async fn the_timers_scan_and_the_board_read_their_indexes_at_volume() {
    let app = app_without_timers().await;
    let db = app.db().await;
    let schema: String = db
        .query_one("SELECT schema_name FROM projection_checkpoints WHERE projection = $1", &[&deadlines::NAME])
        .await
        .expect("checkpoint")
        .get(0);
    // 100,000 open cases in 50 communities of the street, two open deadlines each; one in ten
    // breached, one in ten warned; due times spread over 30 days.
    let base: i64 = 1_764_000_000_000;
    db.batch_execute(&format!(
        "CREATE TEMP TABLE gen AS
           SELECT i,
                  ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid AS case_id,
                  '5001160010' || lpad((i % 50)::text, 2, '0') AS unit,
                  {base} + (i::bigint * 104729) % 2592000000 AS due
           FROM generate_series(1, 100000) i;
         INSERT INTO {schema}.cases
           SELECT case_id, 4, 1, 'GEN-' || i, '邻里纠纷', '', unit, '', 1, '[]', '[]', 3, 'cmt-' || unit, unit, unit,
                  1, 4, now(), now(), i
           FROM gen;
         INSERT INTO {schema}.deadlines
           SELECT case_id, c.name || ':' || c.v, c.clock, due - 3600000, due - 900000, due + c.extra, NULL,
                  CASE i % 10 WHEN 0 THEN 3 WHEN 1 THEN 2 ELSE 1 END,
                  CASE WHEN i % 10 IN (0, 1) THEN due - 900000 END, CASE WHEN i % 10 = 0 THEN due END,
                  CASE WHEN i % 10 = 0 THEN 2 ELSE 0 END,
                  CASE i % 10 WHEN 0 THEN NULL WHEN 1 THEN due + c.extra ELSE due - 900000 END,
                  '', '', unit, 'cmt-' || unit, unit, 3, 'cn', 'Asia/Shanghai'
           FROM gen, (VALUES ('sign_for', 2, 4::smallint, 0::bigint), ('mediation', 3, 6::smallint, 86400000::bigint))
                AS c(name, v, clock, extra);
         ANALYZE {schema}.cases;
         ANALYZE {schema}.deadlines;"
    ))
    .await
    .expect("generated deadlines");

    // The timers' scan at an instant when a few hundred firings are due.
    let now = base + 3_000_000;
    let due = deadlines::due(&db, now, 500).await.expect("due");
    assert!(!due.is_empty() && due.len() < 500, "{} due", due.len());
    assert!(due.windows(2).all(|w| w[0].deadline.next_firing() <= w[1].deadline.next_firing()));
    let scan = nodes_of(&deadlines::explain_due(&db, now, 500).await.expect("plan"));
    // An index range of what is due (PostgreSQL may sort those few rows after a bitmap scan).
    assert!(
        scan.iter().any(|(node, _, index)| node.ends_with("Index Scan") && index == "deadlines_next_fire"),
        "the scan reads the deadlines_next_fire index: {scan:?}"
    );
    assert!(!scan.iter().any(|(node, _, _)| node == "Seq Scan"), "{scan:?}");

    // The street's board, first page: the board index in due order, no sort, no sequential scan.
    let page =
        BoardPage { unit_prefix: "500116001".to_owned(), states: vec![], clocks: vec![], after: None, limit: 50 };
    let board = nodes_of(&deadlines::explain_board(&db, &page).await.expect("plan"));
    assert!(
        board.iter().any(|(node, _, index)| node == "Index Scan" && index == "deadlines_board"),
        "the board reads the deadlines_board index: {board:?}"
    );
    assert!(!board.iter().any(|(node, _, _)| node == "Seq Scan" || node == "Sort"), "{board:?}");
    let items = deadlines::board(&db, &page).await.expect("board");
    assert_eq!(items.len(), 50);
    assert!(items.windows(2).all(|w| w[0].1.due_at_ms <= w[1].1.due_at_ms));
    app.finish().await;
}

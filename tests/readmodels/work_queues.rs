//! Committee and mediator work queues: contents, orders, filters, keyset paging, scoping, and
//! cases leaving the queues when they are closed, escalated or returned.

use fengqiao_domain::Clock as _;
use fengqiao_tests::*;
use tonic::Code;

use crate::desk::Desk;

fn ids(page: &rpc::WorkQueuePage) -> Vec<String> {
    page.items.iter().map(|i| i.summary.as_ref().unwrap().external_ref.clone()).collect()
}

async fn committee(
    desk: &Desk,
    token: &str,
    committee: &str,
    order: rpc::QueueOrder,
    filter: rpc::QueueFilter,
) -> rpc::WorkQueuePage {
    desk.work_queues()
        .await
        .list_committee_queue(req(
            token,
            rpc::ListCommitteeQueueRequest {
                committee_id: committee.to_owned(),
                filter: Some(filter),
                order: order as i32,
                min_sequence: Some(desk.last),
                ..Default::default()
            },
        ))
        .await
        .expect("committee queue")
        .into_inner()
}

async fn mediator(desk: &Desk, token: &str, mediator_id: &str) -> Result<rpc::WorkQueuePage, tonic::Status> {
    desk.work_queues()
        .await
        .list_mediator_queue(req(
            token,
            rpc::ListMediatorQueueRequest {
                mediator_id: mediator_id.to_owned(),
                min_sequence: Some(desk.last),
                ..Default::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn committee_and_mediator_queues_sort_filter_page_and_follow_the_case() {
    use events::Tier::Community;
    use rpc::QueueOrder::{Due, Priority, Registered};
    let mut desk = Desk::open().await;
    // A Monday morning in Chongqing: deadlines in working hours are predictable.
    desk.app.clock.set("2026-11-23T10:00:00+08:00".parse().unwrap());
    let now = desk.app.clock.now().as_millisecond();
    let hour = 3_600_000;
    let clock = desk.app.clock.clone();
    let tick = || clock.advance(jiff::SignedDuration::from_secs(1));
    let a = desk
        .register(rpc::RegisterCaseRequest {
            reply_deadline_unix_ms: now + 3 * hour,
            urgency: events::Urgency::Urgent as i32,
            ..hotline_order("WQ-A")
        })
        .await;
    tick();
    let b =
        desk.register(rpc::RegisterCaseRequest { reply_deadline_unix_ms: now + hour, ..hotline_order("WQ-B") }).await;
    tick();
    let c = desk
        .register(rpc::RegisterCaseRequest { urgency: events::Urgency::Emergency as i32, ..hotline_order("WQ-C") })
        .await;
    let d = desk.order("WQ-D", OTHER_COMMUNITY, "邻里纠纷").await;
    for case in [&a, &b, &c] {
        desk.dispatch(case, COMMITTEE, COMMUNITY, Community).await;
    }
    desk.dispatch(&d, "other-committee", OTHER_COMMUNITY, Community).await;
    let lead = desk.app.token("committee_lead", COMMUNITY);
    let any = rpc::QueueFilter::default;

    // Due: the emergency must be signed for within a minute of dispatch (DESIGN §3); the others
    // by the reply deadlines the hotline sent, which fall before their 2-working-hour sign-for.
    let page = committee(&desk, &lead, COMMITTEE, Due, any()).await;
    assert_eq!(ids(&page), ["WQ-C", "WQ-B", "WQ-A"]);
    let due = |i: usize| (page.items[i].summary.as_ref().unwrap().due_at_unix_ms, page.items[i].due_clock);
    assert_eq!(due(0), (now + 2_000 + 60_000, events::Clock::SignFor as i32));
    assert_eq!(due(1), (now + hour, events::Clock::HotlineReply as i32));
    assert_eq!(due(2), (now + 3 * hour, events::Clock::HotlineReply as i32));
    let priorities: Vec<i32> = page.items.iter().map(|i| i.priority).collect();
    use rpc::Priority as P;
    assert_eq!(priorities, [P::Critical as i32, P::Normal as i32, P::High as i32]);
    assert_eq!(ids(&committee(&desk, &lead, COMMITTEE, Priority, any()).await), ["WQ-C", "WQ-A", "WQ-B"]);
    assert_eq!(ids(&committee(&desk, &lead, COMMITTEE, Registered, any()).await), ["WQ-A", "WQ-B", "WQ-C"]);

    // The committee works with the parties; a supervisor reads the same queue masked.
    assert_eq!(page.items[0].summary.as_ref().unwrap().parties[0].phone, "13812345678");
    let supervisor = desk.app.token("supervisor", DISTRICT);
    let overseen = committee(&desk, &supervisor, COMMITTEE, Due, any()).await;
    assert_eq!(overseen.items[0].summary.as_ref().unwrap().parties[0].phone, "138****5678");
    assert_eq!(overseen.items[0].summary.as_ref().unwrap().parties[0].name, "张*");

    // A lead elsewhere sees nothing of this committee, and their own committee's case.
    let elsewhere = desk.app.token("committee_lead", OTHER_COMMUNITY);
    // A token that names its committee reads only that committee's queue.
    let claims = fengqiao::auth::Claims {
        committee: "other-committee".to_owned(),
        ..fengqiao::auth::claims(&desk.app.settings.auth, "lead-2", "committee_lead", COMMUNITY, "", 600)
    };
    let member = fengqiao::auth::mint(&desk.app.settings.auth, &claims).unwrap();
    let denied = desk
        .work_queues()
        .await
        .list_committee_queue(req(
            &member,
            rpc::ListCommitteeQueueRequest { committee_id: COMMITTEE.to_owned(), ..Default::default() },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(committee(&desk, &elsewhere, COMMITTEE, Due, any()).await.items.is_empty());
    assert_eq!(ids(&committee(&desk, &elsewhere, "other-committee", Due, any()).await), ["WQ-D"]);

    desk.accept(&a).await;
    desk.accept(&b).await;
    desk.assign(&a, &["m1"]).await;
    desk.assign(&b, &["m1", "m2"]).await;
    let m1 = desk.app.token_for("m1", "mediator", COMMUNITY, "");
    let m2 = desk.app.token_for("m2", "mediator", COMMUNITY, "");
    assert_eq!(ids(&mediator(&desk, &m1, "").await.unwrap()), ["WQ-B", "WQ-A"]);
    assert_eq!(ids(&mediator(&desk, &m2, "m2").await.unwrap()), ["WQ-B"]);
    assert_eq!(mediator(&desk, &m1, "m2").await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(ids(&mediator(&desk, &lead, "m2").await.unwrap()), ["WQ-B"]);
    assert_eq!(mediator(&desk, &m1, "").await.unwrap().items[1].mediator_ids, ["m1"]);

    // Filters.
    let dispatched = rpc::QueueFilter { states: vec![events::CaseState::Dispatched as i32], ..any() };
    assert_eq!(ids(&committee(&desk, &lead, COMMITTEE, Due, dispatched).await), ["WQ-C"]);
    let critical = rpc::QueueFilter { priorities: vec![P::Critical as i32, P::High as i32], ..any() };
    assert_eq!(ids(&committee(&desk, &lead, COMMITTEE, Due, critical).await), ["WQ-C", "WQ-A"]);
    let other_category = rpc::QueueFilter { category: "劳动争议".to_owned(), ..any() };
    assert!(committee(&desk, &lead, COMMITTEE, Due, other_category).await.items.is_empty());
    let overdue = rpc::QueueFilter { overdue_only: true, ..any() };
    assert!(committee(&desk, &lead, COMMITTEE, Due, overdue.clone()).await.items.is_empty());
    desk.app.clock.advance(jiff::SignedDuration::from_hours(2));
    let late = committee(&desk, &lead, COMMITTEE, Due, overdue).await;
    assert_eq!(ids(&late), ["WQ-C", "WQ-B"]);
    assert!(late.items.iter().all(|i| i.overdue));

    // Keyset paging, one item a page, in each order.
    for (order, expected) in [(Due, ["WQ-C", "WQ-B", "WQ-A"]), (Priority, ["WQ-C", "WQ-A", "WQ-B"])] {
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = desk
                .work_queues()
                .await
                .list_committee_queue(req(
                    &lead,
                    rpc::ListCommitteeQueueRequest {
                        committee_id: COMMITTEE.to_owned(),
                        order: order as i32,
                        page_size: 1,
                        page_token: token.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            seen.extend(ids(&page));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, expected, "{order:?}");
    }

    // Closing, escalating and returning take cases off the queues.
    desk.close(&a, events::ClosureOutcome::Resolved).await;
    desk.escalate(&b, "street-committee", STREET).await;
    desk.return_case(&c).await;
    assert!(committee(&desk, &lead, COMMITTEE, Due, any()).await.items.is_empty());
    assert!(mediator(&desk, &m1, "").await.unwrap().items.is_empty());
    let street_lead = desk.app.token("committee_lead", STREET);
    let street = committee(&desk, &street_lead, "street-committee", Due, any()).await;
    assert_eq!(ids(&street), ["WQ-B"]);
    assert!(street.items[0].mediator_ids.is_empty(), "escalation clears the mediators");
    desk.app.finish().await;
}

#[tokio::test]
async fn bad_queue_requests_are_invalid_arguments_naming_the_field() {
    let desk = Desk::open().await;
    let lead = desk.app.token("committee_lead", COMMUNITY);
    let base = || rpc::ListCommitteeQueueRequest { committee_id: COMMITTEE.to_owned(), ..Default::default() };
    let cases = [
        (rpc::ListCommitteeQueueRequest { committee_id: String::new(), ..base() }, "committee_id"),
        (rpc::ListCommitteeQueueRequest { page_token: "garbage".to_owned(), ..base() }, "page_token"),
        (rpc::ListCommitteeQueueRequest { page_size: 10_000, ..base() }, "page_size"),
        (rpc::ListCommitteeQueueRequest { order: 42, ..base() }, "order"),
        (
            rpc::ListCommitteeQueueRequest {
                filter: Some(rpc::QueueFilter { states: vec![1, 99], ..Default::default() }),
                ..base()
            },
            "filter.states[1]",
        ),
        (
            rpc::ListCommitteeQueueRequest {
                filter: Some(rpc::QueueFilter { category: "纠".repeat(40), ..Default::default() }),
                ..base()
            },
            "filter.category",
        ),
        (
            rpc::ListCommitteeQueueRequest {
                order: rpc::QueueOrder::Priority as i32,
                page_token: format!("d.5.{}", uuid::Uuid::nil()),
                ..base()
            },
            "page_token",
        ),
    ];
    for (request, field) in cases {
        let status = desk.work_queues().await.list_committee_queue(req(&lead, request)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(field), "expected {field} in {:?}", status.message());
    }
    let hotline = desk.app.token("hotline", COMMUNITY);
    let status = desk.work_queues().await.list_committee_queue(req(&hotline, base())).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    desk.app.finish().await;
}

//! Several instances of Fengqiao on one stream and one database, as a deployment beyond one
//! machine runs them: each keeps its own cache of the cases it has seen, and a case another
//! instance moved on must be decided on what the stream holds, not on that cache.

use fengqiao_tests::*;

/// Registers and dispatches a case through `app`, leaving it in that instance's cache.
async fn dispatched(app: &TestApp, dispatcher: &str, order: &str) -> String {
    let reg = app.intake().await.register_case(req(dispatcher, hotline_order(order))).await.unwrap().into_inner();
    app.work()
        .await
        .dispatch_case(req(
            dispatcher,
            rpc::DispatchCaseRequest {
                meta: meta(&format!("dispatch-{order}")),
                case_id: reg.case_id.clone(),
                tier: events::Tier::Community as i32,
                committee_id: COMMITTEE.to_owned(),
                committee_unit_code: COMMUNITY.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    reg.case_id
}

fn accept(case_id: &str, key: &str) -> rpc::AcceptCaseRequest {
    rpc::AcceptCaseRequest { meta: meta(key), case_id: case_id.to_owned() }
}

fn assign(case_id: &str, key: &str) -> rpc::AssignMediatorsRequest {
    rpc::AssignMediatorsRequest { meta: meta(key), case_id: case_id.to_owned(), mediator_ids: vec!["m-1".to_owned()] }
}

#[tokio::test]
async fn a_case_moved_on_by_another_instance_is_decided_on_the_stream_not_a_stale_cache() {
    let first = TestApp::spawn().await;
    let second = first.spawn_beside().await;
    let dispatcher = first.token("dispatcher", STREET);
    let lead = first.token("committee_lead", COMMUNITY);
    let case_id = dispatched(&first, &dispatcher, "GD-INSTANCES-1").await;

    // The second instance signs for it; the first still holds it as dispatched.
    second.work().await.accept_case(req(&lead, accept(&case_id, "accept-1"))).await.unwrap();
    let assigned = first.work().await.assign_mediators(req(&lead, assign(&case_id, "assign-1"))).await;
    let assigned = assigned.expect("the case is signed for: assigning mediators is allowed").into_inner();
    assert_eq!(assigned.version, 4);
    assert_eq!(first.stream_messages().await, 4);
    second.finish_beside().await;
    first.finish().await;
}

#[tokio::test]
async fn a_retry_sent_to_another_instance_converges_and_leaves_its_cache_current() {
    let first = TestApp::spawn().await;
    let second = first.spawn_beside().await;
    let dispatcher = first.token("dispatcher", STREET);
    let lead = first.token("committee_lead", COMMUNITY);
    let case_id = dispatched(&first, &dispatcher, "GD-INSTANCES-2").await;

    // Sign-for committed by the second instance, its answer lost; the client retries the same
    // request on the first, which holds the case as dispatched.
    let original =
        second.work().await.accept_case(req(&lead, accept(&case_id, "accept-2"))).await.unwrap().into_inner();
    let retried = first.work().await.accept_case(req(&lead, accept(&case_id, "accept-2"))).await.unwrap().into_inner();
    assert!(retried.replayed);
    assert_eq!((retried.version, retried.stream_sequence), (original.version, original.stream_sequence));
    // And the first instance goes on from the signed-for case.
    let assigned = first.work().await.assign_mediators(req(&lead, assign(&case_id, "assign-2"))).await;
    assert_eq!(assigned.expect("assigning after sign-for").into_inner().version, 4);
    assert_eq!(first.stream_messages().await, 4);
    second.finish_beside().await;
    first.finish().await;
}

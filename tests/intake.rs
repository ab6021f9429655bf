//! The foundation, end to end against real NATS and PostgreSQL: registration is visible in the
//! queue and the case file (read-your-writes), intake is idempotent across restarts, concurrent
//! commits conflict cleanly, bad input and bad tokens change nothing.

use fengqiao_tests::*;
use tonic::Code;

#[tokio::test]
async fn registered_case_appears_in_queue_and_case_file() {
    let app = TestApp::spawn().await;
    let hotline = app.token("hotline", COMMUNITY);
    let dispatcher = app.token("dispatcher", STREET);
    let result =
        app.intake().await.register_case(req(&hotline, hotline_order("GD20261123001"))).await.unwrap().into_inner();
    assert_eq!(result.version, 1);
    assert!(!result.replayed && !result.existing_case);

    let case = app.case(&dispatcher, &result.case_id, result.stream_sequence).await;
    let summary = case.summary.clone().unwrap();
    assert_eq!(summary.external_ref, "GD20261123001");
    assert_eq!(summary.state, events::CaseState::Registered as i32);
    assert_eq!(summary.parties.len(), 2);
    assert_eq!(event_types(&case), ["CaseRegistered"]);
    let actor = case.timeline[0].actor.clone().unwrap();
    assert_eq!(actor.subject, "test-hotline");
    assert_eq!(actor.role, events::Role::Hotline as i32);
    assert_eq!(case.timeline[0].unit_code, COMMUNITY);

    let queue = app
        .query()
        .await
        .list_queue(req(
            &dispatcher,
            rpc::ListQueueRequest {
                unit_code: COMMUNITY.to_owned(),
                min_sequence: Some(result.stream_sequence),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.cases.iter().map(|c| c.case_id.as_str()).collect::<Vec<_>>(), [result.case_id.as_str()]);
    app.finish().await;
}

#[tokio::test]
async fn same_work_order_twice_is_one_case_even_across_restarts() {
    let mut app = TestApp::spawn().await;
    let hotline = app.token("hotline", COMMUNITY);
    let first =
        app.intake().await.register_case(req(&hotline, hotline_order("GD-REPEAT-7"))).await.unwrap().into_inner();

    // The hotline resends the same order later with a fresh idempotency key, after a restart.
    app.restart().await;
    let mut again = hotline_order("GD-REPEAT-7");
    again.meta = meta("a-month-later");
    let second = app.intake().await.register_case(req(&hotline, again)).await.unwrap().into_inner();
    assert_eq!(second.case_id, first.case_id);
    assert!(second.existing_case);
    assert_eq!(second.stream_sequence, first.stream_sequence);

    // And an exact retry of the first request.
    let retry =
        app.intake().await.register_case(req(&hotline, hotline_order("GD-REPEAT-7"))).await.unwrap().into_inner();
    assert_eq!(retry.case_id, first.case_id);
    assert!(retry.replayed);
    assert_eq!(app.stream_messages().await, 1);
    app.finish().await;
}

#[tokio::test]
async fn retried_command_returns_first_result_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let dispatcher = app.token("dispatcher", STREET);
    let reg = app.intake().await.register_case(req(&dispatcher, grid_report("walk-in-1"))).await.unwrap().into_inner();
    let dispatch = || rpc::DispatchCaseRequest {
        meta: meta("dispatch-1"),
        case_id: reg.case_id.clone(),
        tier: events::Tier::Community as i32,
        committee_id: COMMITTEE.to_owned(),
        committee_unit_code: COMMUNITY.to_owned(),
        ..Default::default()
    };
    let mut work = app.work().await;
    let first = work.dispatch_case(req(&dispatcher, dispatch())).await.unwrap().into_inner();
    let second = work.dispatch_case(req(&dispatcher, dispatch())).await.unwrap().into_inner();
    assert_eq!((second.version, second.stream_sequence), (first.version, first.stream_sequence));
    assert!(second.replayed && !first.replayed);
    assert_eq!(app.stream_messages().await, 2);
    app.finish().await;
}

#[tokio::test]
async fn racing_commits_on_one_version_one_wins_other_aborted() {
    let app = TestApp::spawn().await;
    let dispatcher = app.token("dispatcher", STREET);
    let reg =
        app.intake().await.register_case(req(&dispatcher, hotline_order("GD-RACE-1"))).await.unwrap().into_inner();
    let attempt = |key: &'static str, committee: &'static str| {
        let app = &app;
        let token = dispatcher.clone();
        let case_id = reg.case_id.clone();
        async move {
            app.work()
                .await
                .dispatch_case(req(
                    &token,
                    rpc::DispatchCaseRequest {
                        meta: meta_at(key, 1),
                        case_id,
                        tier: events::Tier::Community as i32,
                        committee_id: committee.to_owned(),
                        committee_unit_code: COMMUNITY.to_owned(),
                        ..Default::default()
                    },
                ))
                .await
        }
    };
    let (a, b) = tokio::join!(attempt("race-a", "committee-a"), attempt("race-b", "committee-b"));
    let outcomes = [a.as_ref().map(|_| ()).map_err(|s| s.code()), b.as_ref().map(|_| ()).map_err(|s| s.code())];
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == Err(Code::Aborted)).count(), 1, "{outcomes:?}");
    assert_eq!(app.stream_messages().await, 2);
    app.finish().await;
}

/// Sends `request` and expects INVALID_ARGUMENT naming `field`.
async fn expect_invalid(app: &TestApp, token: &str, request: rpc::RegisterCaseRequest, field: &str) {
    let status = app.intake().await.register_case(req(token, request)).await.expect_err("must be rejected");
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(status.message().starts_with(field), "expected field {field} in {:?}", status.message());
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let hotline = app.token("hotline", COMMUNITY);
    let with_party = |p: events::Party| rpc::RegisterCaseRequest { parties: vec![p], ..hotline_order("GD-BAD-1") };
    use events::PartyRole::Applicant;
    // Resident ID: wrong check character, impossible birth date, wrong length.
    expect_invalid(
        &app,
        &hotline,
        with_party(party("张三", Applicant, "", "110105194912310021")),
        "parties[0].resident_id",
    )
    .await;
    expect_invalid(
        &app,
        &hotline,
        with_party(party("张三", Applicant, "", "110105194902300027")),
        "parties[0].resident_id",
    )
    .await;
    expect_invalid(&app, &hotline, with_party(party("张三", Applicant, "", "1101051949")), "parties[0].resident_id")
        .await;
    // Phone numbers.
    expect_invalid(&app, &hotline, with_party(party("张三", Applicant, "12812345678", "")), "parties[0].phone").await;
    expect_invalid(&app, &hotline, with_party(party("张三", Applicant, "555-1234", "")), "parties[0].phone").await;
    // Unit codes: too short, unknown province, grid suffix on a non-village.
    for bad in ["50011600100", "990116001002", "50011600100001"] {
        expect_invalid(
            &app,
            &hotline,
            rpc::RegisterCaseRequest { unit_code: bad.to_owned(), ..hotline_order("GD-BAD-2") },
            "unit_code",
        )
        .await;
    }
    // Required fields and limits.
    expect_invalid(
        &app,
        &hotline,
        rpc::RegisterCaseRequest { description: " ".to_owned(), ..hotline_order("GD-BAD-3") },
        "description",
    )
    .await;
    expect_invalid(
        &app,
        &hotline,
        rpc::RegisterCaseRequest { category: "纠".repeat(33), ..hotline_order("GD-BAD-4") },
        "category",
    )
    .await;
    expect_invalid(
        &app,
        &hotline,
        rpc::RegisterCaseRequest { external_ref: String::new(), ..hotline_order("GD-BAD-5") },
        "external_ref",
    )
    .await;
    expect_invalid(&app, &hotline, rpc::RegisterCaseRequest { channel: 0, ..hotline_order("GD-BAD-6") }, "channel")
        .await;
    expect_invalid(&app, &hotline, rpc::RegisterCaseRequest { meta: None, ..hotline_order("GD-BAD-7") }, "meta").await;
    expect_invalid(&app, &hotline, with_party(party("张\u{0}三", Applicant, "", "")), "parties[0].name").await;
    expect_invalid(
        &app,
        &hotline,
        rpc::RegisterCaseRequest { parties: vec![], ..hotline_order("GD-BAD-8") },
        "parties",
    )
    .await;

    assert_eq!(app.stream_messages().await, 0);
    app.finish().await;
}

#[tokio::test]
async fn missing_bad_or_expired_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let mut intake = app.intake().await;
    let status = intake.register_case(tonic::Request::new(hotline_order("GD-AUTH-1"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // Signed with another key.
    let mut other = app.settings.auth.clone();
    other.hmac_keys[0].secret = "not-the-server-secret".to_owned();
    let forged =
        fengqiao::auth::mint(&other, &fengqiao::auth::claims(&other, "x", "hotline", COMMUNITY, "", 600)).unwrap();
    let status = intake.register_case(req(&forged, hotline_order("GD-AUTH-2"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("signature"), "{status:?}");

    // Expired an hour ago.
    let auth = &app.settings.auth;
    let expired =
        fengqiao::auth::mint(auth, &fengqiao::auth::claims(auth, "x", "hotline", COMMUNITY, "", -3600)).unwrap();
    let status = intake.register_case(req(&expired, hotline_order("GD-AUTH-3"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{status:?}");

    let status = intake.register_case(req("not.a.jwt", hotline_order("GD-AUTH-4"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(app.stream_messages().await, 0);
    app.finish().await;
}

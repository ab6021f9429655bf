//! History is immutable: the stream refuses to delete or purge what it holds, and a wrong value is
//! corrected by a new event that keeps the old one in the timeline (in full for those who see the
//! parties in full, masked for the others) while the case file shows the new one.

use fengqiao_tests::*;
use tonic::Code;

#[tokio::test]
async fn the_stream_refuses_to_delete_or_purge_events() {
    let app = TestApp::spawn().await;
    let reg = app
        .intake()
        .await
        .register_case(req(&app.token("hotline", COMMUNITY), hotline_order("GD-IMMUTABLE-1")))
        .await
        .expect("register")
        .into_inner();
    let client = async_nats::connect(&app.settings.nats_url).await.expect("nats");
    let stream = async_nats::jetstream::new(client).get_stream(&app.settings.stream).await.expect("stream");
    assert!(stream.delete_message(reg.stream_sequence).await.is_err(), "the stream deleted an event");
    assert!(stream.purge().await.is_err(), "the stream purged its events");
    let config = stream.cached_info().config.clone();
    assert!(config.deny_delete && config.deny_purge, "{config:?}");
    assert_eq!(app.stream_messages().await, 1);
    app.finish().await;
}

#[tokio::test]
async fn a_corrected_phone_keeps_the_old_value_in_the_timeline() {
    let app = TestApp::spawn().await;
    let dispatcher = app.token("dispatcher", STREET);
    let reg = app
        .intake()
        .await
        .register_case(req(&app.token("hotline", COMMUNITY), hotline_order("GD-CORRECT-1")))
        .await
        .expect("register")
        .into_inner();
    let mut corrections = rpc::correction_service_client::CorrectionServiceClient::new(app.channel().await);
    let correct = |key: &str, phone: &str, resident_id: &str| rpc::CorrectPartyContactRequest {
        meta: meta(key),
        case_id: reg.case_id.clone(),
        party_index: 0,
        phone: phone.to_owned(),
        resident_id: resident_id.to_owned(),
        reason: "当事人更换手机号码".to_owned(),
    };

    // Bad input and roles that may not correct change nothing.
    let status = corrections.correct_party_contact(req(&dispatcher, correct("c-bad", "12345", ""))).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("phone"), "{status:?}");
    let status = corrections.correct_party_contact(req(&dispatcher, correct("c-none", "", ""))).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let supervisor = app.token("supervisor", DISTRICT);
    let status =
        corrections.correct_party_contact(req(&supervisor, correct("c-sup", "13900001111", ""))).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(app.stream_messages().await, 1);

    let done = corrections
        .correct_party_contact(req(&dispatcher, correct("c-1", "139-0000-1111", "")))
        .await
        .expect("correct")
        .into_inner();
    assert_eq!(done.version, 2);

    let full = app.case(&dispatcher, &reg.case_id, done.stream_sequence).await;
    assert_eq!(full.summary.as_ref().expect("summary").parties[0].phone, "13900001111");
    assert_eq!(event_types(&full), ["CaseRegistered", "PartyContactCorrected"]);
    let corrected = |case: &rpc::GetCaseResponse| match case.timeline[1].event.as_ref().and_then(|e| e.kind.clone()) {
        Some(events::event::Kind::PartyContactCorrected(c)) => c,
        other => panic!("expected the correction, got {other:?}"),
    };
    let c = corrected(&full);
    assert_eq!(
        (c.old_phone.as_str(), c.new_phone.as_str(), c.party_name.as_str()),
        ("13812345678", "13900001111", "张三")
    );
    // The registration itself is unchanged: history is not rewritten.
    match full.timeline[0].event.as_ref().and_then(|e| e.kind.clone()) {
        Some(events::event::Kind::CaseRegistered(r)) => assert_eq!(r.parties[0].phone, "13812345678"),
        other => panic!("expected the registration, got {other:?}"),
    }

    let masked = app.case(&supervisor, &reg.case_id, done.stream_sequence).await;
    assert_eq!(masked.summary.as_ref().expect("summary").parties[0].phone, "139****1111");
    let c = corrected(&masked);
    assert_eq!(
        (c.old_phone.as_str(), c.new_phone.as_str(), c.party_name.as_str()),
        ("138****5678", "139****1111", "张*")
    );

    // A retry appends nothing; the same value again is no correction.
    let again = corrections.correct_party_contact(req(&dispatcher, correct("c-1", "139-0000-1111", ""))).await;
    assert!(again.expect("retry").into_inner().replayed);
    let status =
        corrections.correct_party_contact(req(&dispatcher, correct("c-2", "13900001111", ""))).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(app.stream_messages().await, 2);
    app.finish().await;
}

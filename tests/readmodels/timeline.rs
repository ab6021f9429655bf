//! The case timeline is the case file: every event with who did it, for which unit, when, why,
//! and the event's own fields.

use fengqiao_tests::*;

use crate::desk::Desk;

#[tokio::test]
async fn case_file_shows_every_event_with_actor_unit_time_reason_and_fields() {
    let mut desk = Desk::open().await;
    let start: jiff::Timestamp = "2026-11-23T10:00:00+08:00".parse().unwrap();
    desk.app.clock.set(start);
    let case = desk.order("TL-1", COMMUNITY, "邻里纠纷").await;
    desk.app.clock.advance(jiff::SignedDuration::from_mins(5));
    desk.dispatch(&case, COMMITTEE, COMMUNITY, events::Tier::Community).await;
    desk.app.clock.advance(jiff::SignedDuration::from_mins(10));
    let returned = desk.return_case(&case).await;

    let file = desk.app.case(&desk.dispatcher, &case, desk.last).await;
    assert_eq!(event_types(&file), ["CaseRegistered", "CaseDispatched", "CaseReturned"]);
    let versions: Vec<u64> = file.timeline.iter().map(|t| t.case_version).collect();
    assert_eq!(versions, [1, 2, 3]);

    let entry = &file.timeline[2];
    let actor = entry.actor.clone().unwrap();
    assert_eq!(actor.subject, "test-committee_lead");
    assert_eq!(actor.role, events::Role::CommitteeLead as i32);
    assert_eq!(entry.unit_code, DISTRICT);
    let at = start.as_millisecond() + 15 * 60_000;
    assert_eq!((entry.occurred_at_unix_ms, entry.recorded_at_unix_ms), (at, at));
    assert_eq!(entry.stream_sequence, returned.stream_sequence);
    assert_eq!(entry.schema_version, 1);
    assert!(!entry.event_id.is_empty() && !entry.correlation_id.is_empty() && !entry.causation_id.is_empty());
    match entry.event.as_ref().and_then(|e| e.kind.as_ref()) {
        Some(events::event::Kind::CaseReturned(e)) => {
            assert_eq!(e.reason, "不属本委管辖");
            assert_eq!(e.committee_id, COMMITTEE);
        }
        other => panic!("expected CaseReturned, got {other:?}"),
    }
    // The registration keeps everything that was registered: the file of record.
    match file.timeline[0].event.as_ref().and_then(|e| e.kind.as_ref()) {
        Some(events::event::Kind::CaseRegistered(e)) => {
            assert_eq!(e.external_ref, "TL-1");
            assert_eq!(e.parties.len(), 2);
            assert_eq!(e.description, hotline_order("x").description);
        }
        other => panic!("expected CaseRegistered, got {other:?}"),
    }
    let dispatched = &file.timeline[1];
    assert_eq!(dispatched.occurred_at_unix_ms, start.as_millisecond() + 5 * 60_000);
    assert_eq!(dispatched.actor.as_ref().unwrap().subject, "test-dispatcher");
    desk.app.finish().await;
}

//! The projector is effectively-once: stopped in the middle of the stream and started again, it
//! leaves the read model exactly as a fresh replay from sequence 0 does.

use std::time::Duration;

use fengqiao_tests::*;

/// Every row of the read model, as comparable text.
async fn dump(db: &tokio_postgres::Client) -> (Vec<String>, Vec<String>) {
    let cases = db
        .query("SELECT row_to_json(c)::text FROM (SELECT * FROM cases ORDER BY case_id) c", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let events = db
        .query(
            "SELECT case_id::text || '/' || case_version || '/' || stream_sequence || '/' || event_type || '/' || md5(envelope) \
             FROM case_events ORDER BY case_id, case_version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (cases, events)
}

#[tokio::test]
async fn projector_restarted_mid_stream_equals_replay_from_zero() {
    let mut app = TestApp::spawn().await;
    let dispatcher = app.token("dispatcher", STREET);
    let mut last = 0;
    for i in 0..12 {
        let reg = app
            .intake()
            .await
            .register_case(req(&dispatcher, hotline_order(&format!("GD-PROJ-{i}"))))
            .await
            .unwrap()
            .into_inner();
        let d = app
            .work()
            .await
            .dispatch_case(req(
                &dispatcher,
                rpc::DispatchCaseRequest {
                    meta: meta(&format!("dispatch-{i}")),
                    case_id: reg.case_id,
                    tier: events::Tier::Community as i32,
                    committee_id: COMMITTEE.to_owned(),
                    committee_unit_code: COMMUNITY.to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        last = d.stream_sequence;
    }
    // Stop the service (and its projector), wipe the read model back to an empty generation,
    // then project in small batches, stopping part-way and resuming.
    app.stop().await;
    let db = app.db().await;
    db.batch_execute(
        "TRUNCATE rm_cases_1.cases, rm_cases_1.case_events; UPDATE projection_checkpoints SET sequence = 0 WHERE projection = 'cases'",
    )
    .await
    .unwrap();
    project_until(&app.settings, 3, 9, Duration::from_secs(30)).await.unwrap();
    let checkpoint: i64 = db
        .query_one("SELECT sequence FROM projection_checkpoints WHERE projection = 'cases'", &[])
        .await
        .unwrap()
        .get(0);
    assert!((9..last as i64).contains(&checkpoint), "stopped mid-stream at {checkpoint}");
    project_until(&app.settings, 3, last, Duration::from_secs(30)).await.unwrap();
    let resumed = dump(&db).await;

    // A replay from 0 in a fresh database of the same stream.
    let mut replay = app.settings.clone();
    replay.database_url = fresh_settings().database_url;
    create_database(&replay).await.unwrap();
    project_until(&replay, 1000, last, Duration::from_secs(30)).await.unwrap();
    let fresh = dump(&connect(&replay.database_url).await.unwrap()).await;
    assert_eq!(resumed.0.len(), 12);
    assert_eq!(resumed.1.len(), 24);
    assert_eq!(resumed, fresh);
    cleanup(&replay).await;
    app.finish().await;
}

#[tokio::test]
async fn projectors_of_several_instances_apply_each_commit_once() {
    let mut app = TestApp::spawn().await;
    let dispatcher = app.token("dispatcher", STREET);
    let mut last = 0;
    for i in 0..30 {
        let reg = app
            .intake()
            .await
            .register_case(req(&dispatcher, hotline_order(&format!("GD-TWO-PROJECTORS-{i}"))))
            .await
            .unwrap()
            .into_inner();
        last = reg.stream_sequence;
    }
    app.stop().await;
    let db = app.db().await;
    db.batch_execute(
        "TRUNCATE rm_cases_1.cases, rm_cases_1.case_events; UPDATE projection_checkpoints SET sequence = 0 WHERE projection = 'cases'",
    )
    .await
    .unwrap();
    // Three projectors at once on one read model, as three instances of the service run them,
    // in small batches so that they overlap.
    let within = Duration::from_secs(30);
    let (a, b, c) = tokio::join!(
        project_until(&app.settings, 2, last, within),
        project_until(&app.settings, 3, last, within),
        project_until(&app.settings, 5, last, within)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let failures: i64 = db
        .query_one("SELECT count(*) FROM projection_checkpoints WHERE failure IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(failures, 0);
    let together = dump(&db).await;
    assert_eq!(together.0.len(), 30);

    let mut replay = app.settings.clone();
    replay.database_url = fresh_settings().database_url;
    create_database(&replay).await.unwrap();
    project_until(&replay, 1000, last, within).await.unwrap();
    assert_eq!(together, dump(&connect(&replay.database_url).await.unwrap()).await);
    cleanup(&replay).await;
    app.finish().await;
}

//! Rebuilding read models under a running service: `fengqiao projections rebuild` builds each one
//! beside the live generation while commands keep arriving and queries keep being served, swaps it
//! in, and leaves exactly the rows a replay from sequence 0 gives; a read model stopped on a
//! commit it cannot apply shows in `fengqiao projections status` and a rebuild with a good
//! generation clears it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fengqiao::app::READ_MODELS;
use fengqiao::ops;
use fengqiao_projection::rebuild::RebuildConfig;
use fengqiao_tests::*;
use tonic::transport::Channel;

use crate::desk::Desk;
use events::ClosureOutcome::{Resolved, Unresolved};
use events::PartnerKind::Court;
use events::Tier::Community;

/// One case's worth of work: registered, dispatched, signed for, assigned, then one of four ends.
async fn work_one(desk: &mut Desk, i: usize) {
    let category = if i % 3 == 0 { "物业纠纷" } else { "邻里纠纷" };
    let case = desk.order(&format!("RB-{i}"), COMMUNITY, category).await;
    desk.dispatch(&case, COMMITTEE, COMMUNITY, Community).await;
    desk.accept(&case).await;
    desk.assign(&case, &["m-wang"]).await;
    match i % 4 {
        0 => {
            desk.close(&case, Resolved).await;
            desk.follow_up(&case, events::Satisfaction::Satisfied).await;
        }
        1 => {
            desk.refer(&case, Court, "jiangjin-court").await;
        }
        2 => {
            desk.fail(&case).await;
            desk.close(&case, Unresolved).await;
        }
        _ => {}
    }
}

/// Queries every read model once; the failures, as text.
async fn query_all(channel: &Channel, token: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let mut note = |what: &str, r: Result<(), tonic::Status>| {
        if let Err(s) = r {
            failures.push(format!("{what}: {s:?}"));
        }
    };
    let r = rpc::query_service_client::QueryServiceClient::new(channel.clone())
        .list_queue(req(token, rpc::ListQueueRequest { unit_code: COMMUNITY.to_owned(), ..Default::default() }))
        .await;
    note("cases", r.map(drop));
    let r = rpc::work_queue_service_client::WorkQueueServiceClient::new(channel.clone())
        .list_committee_queue(req(
            token,
            rpc::ListCommitteeQueueRequest { committee_id: COMMITTEE.to_owned(), ..Default::default() },
        ))
        .await;
    note("work_queues", r.map(drop));
    let r = rpc::linkage_queue_service_client::LinkageQueueServiceClient::new(channel.clone())
        .list_referrals(req(
            token,
            rpc::ListReferralsRequest {
                partner_kind: Court as i32,
                queue: rpc::LinkageQueue::Pending as i32,
                ..Default::default()
            },
        ))
        .await;
    note("referrals", r.map(drop));
    let r = rpc::statistics_service_client::StatisticsServiceClient::new(channel.clone())
        .get_statistics(req(
            token,
            rpc::GetStatisticsRequest {
                unit_code: STREET.to_owned(),
                from_date: "2026-01-01".to_owned(),
                to_date: "2026-12-31".to_owned(),
                by_child_unit: true,
                ..Default::default()
            },
        ))
        .await;
    note("statistics", r.map(drop));
    failures
}

/// The community's queue as the dispatcher sees it once the desk's last command is applied.
async fn community_queue(desk: &Desk) -> Result<rpc::ListQueueResponse, tonic::Status> {
    let r =
        rpc::ListQueueRequest { unit_code: COMMUNITY.to_owned(), min_sequence: Some(desk.last), ..Default::default() };
    let mut client = rpc::query_service_client::QueryServiceClient::new(desk.app.channel().await);
    client.list_queue(req(&desk.dispatcher, r)).await.map(tonic::Response::into_inner)
}

/// Scrapes the metrics endpoint at `addr` until its text contains every one of `lines` (at most
/// `within`); the last text seen.
async fn scrape_until(addr: std::net::SocketAddr, lines: &[&str], within: Duration) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let deadline = Instant::now() + within;
    loop {
        let mut text = String::new();
        if let Ok(mut socket) = tokio::net::TcpStream::connect(addr).await {
            let _ = socket.write_all(b"GET /metrics HTTP/1.1\r\nHost: fengqiao\r\nConnection: close\r\n\r\n").await;
            let _ = socket.read_to_string(&mut text).await;
        }
        if lines.iter().all(|l| text.lines().any(|t| t == *l)) {
            return text;
        }
        assert!(Instant::now() < deadline, "metrics never showed {lines:?}: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every read model of `db` has applied `sequence` (at most `within`).
async fn caught_up(db: &tokio_postgres::Client, sequence: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let at = checkpoints(db).await.unwrap();
        if at.len() == READ_MODELS.len() && at.values().all(|s| *s >= sequence) {
            return;
        }
        assert!(Instant::now() < deadline, "read models did not reach {sequence}: {at:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The rows of the same stream projected from sequence 0 into a fresh database.
async fn replayed(
    settings: &fengqiao::settings::Settings,
    upto: u64,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut replay = settings.clone();
    replay.database_url = fresh_settings().database_url;
    create_database(&replay).await.unwrap();
    project_until(&replay, 1000, upto, Duration::from_secs(60)).await.unwrap();
    let rows = read_model_rows(&connect(&replay.database_url).await.unwrap()).await.unwrap();
    cleanup(&replay).await;
    rows
}

#[tokio::test]
async fn rebuild_under_commands_and_queries_equals_a_replay_and_no_query_fails() {
    let mut desk = Desk::open().await;
    // Dated so that every case falls in the statistics' period.
    desk.app.clock.set("2026-11-23T10:00:00+08:00".parse().unwrap());
    for i in 0..24 {
        work_one(&mut desk, i).await;
    }
    let before = desk.last;

    // Queries against every read model, all along.
    let channel = desk.app.channel().await;
    let token = desk.app.token("supervisor", DISTRICT);
    let querying = Arc::new(AtomicBool::new(true));
    let queries = tokio::spawn({
        let querying = querying.clone();
        async move {
            let (mut rounds, mut failures) = (0u32, Vec::new());
            while querying.load(Ordering::Relaxed) {
                failures.extend(query_all(&channel, &token).await);
                rounds += 1;
            }
            (rounds, failures)
        }
    });
    // Every read model rebuilt in turn, in small batches so that each takes many transactions.
    let rebuilds = tokio::spawn({
        let settings = desk.app.settings.clone();
        async move {
            let config = RebuildConfig { max_batch: 20, ..RebuildConfig::default() };
            let mut done = Vec::new();
            for name in READ_MODELS {
                done.push(ops::rebuild(&settings, name, &config).await.expect("rebuild"));
            }
            done
        }
    });
    // Commands keep arriving until the last swap.
    let mut i = 24;
    while !rebuilds.is_finished() {
        work_one(&mut desk, i).await;
        i += 1;
    }
    let rebuilt = rebuilds.await.unwrap();
    let during = i - 24;
    for _ in 0..3 {
        work_one(&mut desk, i).await;
        i += 1;
    }
    querying.store(false, Ordering::Relaxed);
    let (rounds, failures) = queries.await.unwrap();
    assert!(failures.is_empty(), "queries failed during the rebuilds: {failures:#?}");
    assert!(rounds >= 4, "only {rounds} rounds of queries ran");
    assert!(during >= 1, "no command arrived during the rebuilds");

    // Each read model is now on generation 2, the old generation is gone, and the new one had
    // caught up with commands that arrived while it was built.
    let db = desk.app.db().await;
    for (name, r) in READ_MODELS.iter().zip(&rebuilt) {
        assert_eq!(
            (r.projection.as_str(), r.old_schema.clone(), r.new_schema.clone()),
            (*name, format!("rm_{name}_1"), format!("rm_{name}_2"))
        );
        assert!(r.sequence >= before, "{name} swapped at {} before the history {before}", r.sequence);
        assert_eq!((r.cleared_failure, r.old_dropped), (None, true));
        let old = db
            .query_opt("SELECT 1 FROM information_schema.schemata WHERE schema_name = $1", &[&r.old_schema])
            .await
            .unwrap();
        assert!(old.is_none(), "{} was not dropped", r.old_schema);
    }
    let last_swap = rebuilt.iter().map(|r| r.sequence).max().unwrap();
    assert!(desk.last > last_swap, "no command after the last swap");

    // The rebuilt and then incrementally continued tables equal a replay from sequence 0.
    caught_up(&db, desk.last, Duration::from_secs(30)).await;
    let live = read_model_rows(&db).await.unwrap();
    assert!(live["cases.case_events"].len() as u64 >= desk.last, "{} events", live["cases.case_events"].len());
    assert_eq!(live, replayed(&desk.app.settings, desk.last).await);
    let statuses = ops::statuses(&desk.app.settings).await.unwrap();
    assert!(statuses.iter().all(|s| s.generation == 2 && s.lag_events == 0 && s.failure.is_none()), "{statuses:?}");
    desk.app.finish().await;
}

#[tokio::test]
async fn a_stopped_read_model_shows_in_status_and_a_rebuild_clears_it() {
    // The Prometheus endpoint, as `fengqiao serve` installs it, on a free loopback port.
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    fengqiao::telemetry::serve_metrics(metrics).unwrap();
    let mut desk = Desk::open().await;
    desk.order("STOP-1", COMMUNITY, "邻里纠纷").await;
    let db = desk.app.db().await;
    caught_up(&db, desk.last, Duration::from_secs(30)).await;
    // A faulty generation: its table refuses what the next commit writes (as a bad schema change
    // would). The read model's own definition, which a rebuild uses, has no such constraint.
    db.batch_execute("ALTER TABLE rm_cases_1.cases ADD CONSTRAINT faulty CHECK (category <> '物业纠纷')")
        .await
        .unwrap();
    let stops = fengqiao_projection::projector::stops();
    desk.order("STOP-2", COMMUNITY, "物业纠纷").await;
    let failed_at = desk.last;
    desk.order("STOP-3", COMMUNITY, "邻里纠纷").await;

    // The cases model stops at that commit, loudly; the others go on.
    let deadline = Instant::now() + Duration::from_secs(30);
    let statuses = loop {
        let statuses = ops::statuses(&desk.app.settings).await.unwrap();
        let others_done = statuses.iter().filter(|s| s.projection != "cases").all(|s| s.sequence == desk.last);
        if statuses[0].failure.is_some() && others_done {
            break statuses;
        }
        assert!(Instant::now() < deadline, "the cases read model did not stop: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cases = &statuses[0];
    assert_eq!(cases.projection, "cases");
    let (at, problem) = cases.failure.clone().unwrap();
    assert_eq!(at, failed_at);
    assert!(problem.contains("faulty"), "{problem}");
    assert_eq!((cases.sequence, cases.lag_events), (failed_at - 1, 2));
    assert!(cases.lag_seconds.is_some_and(|s| s >= 0.0), "{cases:?}");
    assert!(fengqiao_projection::projector::stops() > stops);
    let table = ops::render(&statuses);
    assert!(table.contains(&format!("STOPPED at sequence {failed_at}")), "{table}");
    let within = Duration::from_secs(30);
    let stopped = [
        r#"fengqiao_projection_stopped{projection="cases"} 1"#,
        r#"fengqiao_projection_generation{projection="cases"} 1"#,
    ];
    let text = scrape_until(metrics, &stopped, within).await;
    assert!(text.contains(r#"fengqiao_projection_stops_total{projection="cases"}"#), "{text}");
    assert!(text.contains(r#"fengqiao_projection_lag_events{projection="cases"}"#), "{text}");
    // Queries that need the stopped part of the stream say so rather than answer stale data.
    let status = community_queue(&desk).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");

    // A rebuild builds a good generation past the failure, swaps it in and clears the failure;
    // the projector resumes.
    let r = ops::rebuild(&desk.app.settings, "cases", &RebuildConfig::default()).await.unwrap();
    assert_eq!((r.new_schema.as_str(), r.cleared_failure), ("rm_cases_2", Some(failed_at)));
    desk.order("STOP-4", COMMUNITY, "物业纠纷").await;
    caught_up(&db, desk.last, Duration::from_secs(30)).await;
    let statuses = ops::statuses(&desk.app.settings).await.unwrap();
    assert!(statuses.iter().all(|s| s.failure.is_none() && s.lag_events == 0), "{statuses:?}");
    let running = [
        r#"fengqiao_projection_stopped{projection="cases"} 0"#,
        r#"fengqiao_projection_generation{projection="cases"} 2"#,
    ];
    scrape_until(metrics, &running, within).await;
    let queue = community_queue(&desk).await.unwrap();
    let mut refs: Vec<&str> = queue.cases.iter().map(|c| c.external_ref.as_str()).collect();
    refs.sort_unstable();
    assert_eq!(refs, ["STOP-1", "STOP-2", "STOP-3", "STOP-4"]);
    assert_eq!(read_model_rows(&db).await.unwrap(), replayed(&desk.app.settings, desk.last).await);

    // An unknown read model is refused with the list of the known ones; nothing changes.
    let e = ops::rebuild(&desk.app.settings, "nonesuch", &RebuildConfig::default()).await.unwrap_err().to_string();
    assert_eq!(e, format!("unknown read model \"nonesuch\"; the read models are: {}", READ_MODELS.join(", ")));
    desk.app.finish().await;
}

#[tokio::test]
async fn a_watch_across_the_rebuild_of_a_stopped_queue_model_is_told_to_resync() {
    use rpc::queue_notice::Notice;
    let mut desk = Desk::open().await;
    let mut unit = crate::watch::watch(desk.app.channel().await, &desk.dispatcher, rpc::WatchedQueue::Unit, COMMUNITY)
        .await
        .unwrap();
    assert!(matches!(crate::watch::next(&mut unit).await, Notice::Started(_)));
    desk.order("WR-1", COMMUNITY, "邻里纠纷").await;
    let first = desk.last;
    let Notice::Change(c) = crate::watch::next(&mut unit).await else { panic!("expected a change") };
    assert_eq!(c.stream_sequence, first);

    // The work queues stop on a commit their faulty generation refuses; two more commits wait.
    let db = desk.app.db().await;
    db.batch_execute("ALTER TABLE rm_work_queues_1.cases ADD CONSTRAINT faulty CHECK (category <> '物业纠纷')")
        .await
        .unwrap();
    desk.order("WR-2", COMMUNITY, "物业纠纷").await;
    desk.order("WR-3", COMMUNITY, "邻里纠纷").await;
    let swapped = desk.last;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ops::statuses(&desk.app.settings).await.unwrap()[1].failure.is_none() {
        assert!(Instant::now() < deadline, "the work queues did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = ops::rebuild(&desk.app.settings, "work_queues", &RebuildConfig::default()).await.unwrap();
    assert_eq!((r.sequence, r.cleared_failure), (swapped, Some(swapped - 1)));

    // The projector resumes past commits it never announced: the watch is told to reload there,
    // and then follows the queue again.
    let Notice::Resync(resync) = crate::watch::next(&mut unit).await else { panic!("expected a resync") };
    assert_eq!(resync.sequence, swapped);
    assert!(resync.reason.contains("reload"), "{resync:?}");
    desk.order("WR-4", COMMUNITY, "物业纠纷").await;
    let Notice::Change(c) = crate::watch::next(&mut unit).await else { panic!("expected a change") };
    assert_eq!((c.stream_sequence, c.kind()), (desk.last, rpc::ChangeKind::Entered));
    desk.app.finish().await;
}

#[tokio::test]
async fn a_swap_waits_for_queries_reading_the_views_or_gives_up_leaving_the_live_generation() {
    let mut desk = Desk::open().await;
    desk.order("LOCK-1", COMMUNITY, "邻里纠纷").await;
    let db = desk.app.db().await;
    caught_up(&db, desk.last, Duration::from_secs(30)).await;
    // A long read of the statistics: its transaction holds the view until it ends.
    let reader = connect(&desk.app.settings.database_url).await.unwrap();
    reader.batch_execute("BEGIN; SELECT count(*) FROM statistics_daily").await.unwrap();

    let impatient =
        RebuildConfig { swap_lock_timeout: Duration::from_millis(100), swap_attempts: 2, ..RebuildConfig::default() };
    let e = ops::rebuild(&desk.app.settings, "statistics", &impatient).await.unwrap_err().to_string();
    assert!(e.contains("kept the views busy through 2 swaps"), "{e}");
    let statuses = ops::statuses(&desk.app.settings).await.unwrap();
    assert_eq!((statuses[3].projection.as_str(), statuses[3].generation), ("statistics", 1));
    let leftover = db
        .query_opt("SELECT 1 FROM information_schema.schemata WHERE schema_name = 'rm_statistics_2'", &[])
        .await
        .unwrap();
    assert!(leftover.is_none(), "the unfinished generation was left behind");

    // A patient rebuild swaps as soon as the reader is done.
    let patient =
        RebuildConfig { swap_lock_timeout: Duration::from_millis(100), swap_attempts: 600, ..RebuildConfig::default() };
    let settings = desk.app.settings.clone();
    let rebuild = tokio::spawn(async move { ops::rebuild(&settings, "statistics", &patient).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                   WHERE NOT l.granted AND d.datname = current_database()";
    while db.query_one(waiting, &[]).await.unwrap().get::<_, i64>(0) == 0 {
        assert!(Instant::now() < deadline, "the swap never waited for the reader");
        assert!(!rebuild.is_finished(), "the rebuild swapped under a reader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!rebuild.is_finished());
    reader.batch_execute("COMMIT").await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(30), rebuild).await.unwrap().unwrap().unwrap();
    assert_eq!(r.new_schema, "rm_statistics_2");
    desk.order("LOCK-2", COMMUNITY, "邻里纠纷").await;
    caught_up(&db, desk.last, Duration::from_secs(30)).await;
    assert_eq!(read_model_rows(&db).await.unwrap(), replayed(&desk.app.settings, desk.last).await);
    desk.app.finish().await;
}

//! Live watch: every change of a queue arrives, in stream order, as the projector commits it; a
//! client that falls behind, or whose server did not project some changes itself, is told to
//! resync instead of silently missing them; each caller holds a bounded number of watches.

use std::time::Duration;

use fengqiao_tests::*;
use tonic::Code;
use tonic::codec::Streaming;
use tonic::transport::{Channel, Endpoint};

use crate::desk::Desk;
use rpc::ChangeKind::{Entered, Left, Updated};
use rpc::queue_notice::Notice;

pub(crate) async fn watch(
    channel: Channel,
    token: &str,
    queue: rpc::WatchedQueue,
    id: &str,
) -> Result<Streaming<rpc::QueueNotice>, tonic::Status> {
    rpc::watch_service_client::WatchServiceClient::new(channel)
        .watch_queue(req(token, rpc::WatchQueueRequest { queue: queue as i32, id: id.to_owned() }))
        .await
        .map(tonic::Response::into_inner)
}

pub(crate) async fn next(stream: &mut Streaming<rpc::QueueNotice>) -> Notice {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("a notice within 20 s")
        .expect("the watch is healthy")
        .expect("the watch is open")
        .notice
        .expect("a notice")
}

/// The next notice as (sequence, kind), for a change.
async fn change(stream: &mut Streaming<rpc::QueueNotice>) -> (u64, rpc::ChangeKind, Option<rpc::WorkItem>) {
    match next(stream).await {
        Notice::Change(c) => (c.stream_sequence, c.kind(), c.item),
        other => panic!("expected a change, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_delivers_every_change_of_a_queue_in_order_as_it_is_committed() {
    let mut desk = Desk::open().await;
    let lead = desk.app.token("committee_lead", COMMUNITY);
    let mut committee = watch(desk.app.channel().await, &lead, rpc::WatchedQueue::Committee, COMMITTEE).await.unwrap();
    let mut unit = watch(desk.app.channel().await, &desk.dispatcher, rpc::WatchedQueue::Unit, COMMUNITY).await.unwrap();
    for stream in [&mut committee, &mut unit] {
        assert!(matches!(next(stream).await, Notice::Started(_)));
    }

    let a = desk.order("WT-A", COMMUNITY, "邻里纠纷").await;
    let registered_a = desk.last;
    let b = desk.order("WT-B", COMMUNITY, "邻里纠纷").await;
    let registered_b = desk.last;
    let dispatched = desk.dispatch(&a, COMMITTEE, COMMUNITY, events::Tier::Community).await.stream_sequence;
    // B goes to a committee of another community: it leaves this unit's screen.
    let moved = desk.dispatch(&b, "other-committee", OTHER_COMMUNITY, events::Tier::Community).await.stream_sequence;
    let accepted = desk.accept(&a).await.stream_sequence;
    let assigned = desk.assign(&a, &["m1"]).await.stream_sequence;
    let closed = desk.close(&a, events::ClosureOutcome::Resolved).await.stream_sequence;

    let (seq, kind, item) = change(&mut committee).await;
    assert_eq!((seq, kind), (dispatched, Entered));
    let item = item.unwrap();
    assert_eq!(item.summary.as_ref().unwrap().case_id, a);
    assert_eq!(item.summary.as_ref().unwrap().state, events::CaseState::Dispatched as i32);
    let (seq, kind, item) = change(&mut committee).await;
    assert_eq!(
        (seq, kind, item.unwrap().summary.unwrap().state),
        (accepted, Updated, events::CaseState::Accepted as i32)
    );
    let (seq, kind, item) = change(&mut committee).await;
    assert_eq!((seq, kind, item.unwrap().mediator_ids), (assigned, Updated, vec!["m1".to_owned()]));
    let (seq, kind, item) = change(&mut committee).await;
    assert_eq!((seq, kind, item), (closed, Left, None));

    let mut seen = Vec::new();
    for _ in 0..7 {
        let (seq, kind, _) = change(&mut unit).await;
        seen.push((seq, kind));
    }
    assert_eq!(
        seen,
        [
            (registered_a, Entered),
            (registered_b, Entered),
            (dispatched, Updated),
            (moved, Left),
            (accepted, Updated),
            (assigned, Updated),
            (closed, Left),
        ]
    );
    desk.app.finish().await;
}

#[tokio::test]
async fn a_watch_that_falls_behind_is_told_to_resync_and_misses_nothing_silently() {
    let mut desk = Desk::open_with(|s| s.watch_buffer = 4).await;
    // A client that reads nothing until the end: a small flow-control window stops the server
    // from sending after a few notices, so the watch falls behind the projector.
    let slow = Endpoint::from_shared(format!("http://{}", desk.app.addr))
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut stream = watch(slow, &desk.dispatcher, rpc::WatchedQueue::Unit, COMMUNITY).await.unwrap();
    let Notice::Started(started) = next(&mut stream).await else { panic!("the first notice is `started`") };
    let mut commits = Vec::new();
    for i in 0..60 {
        desk.order(&format!("WT-LAG-{i}"), COMMUNITY, "邻里纠纷").await;
        commits.push(desk.last);
    }
    assert!(commits.iter().all(|s| *s > started.sequence));

    let resyncs = delivered_or_covered(&mut stream, &commits).await;
    assert!(resyncs >= 1, "the slow client was never told to resync");
    desk.app.finish().await;
}

/// Reads `stream` until every one of `commits` (each a change of the watched queue) was either
/// delivered, in order, or covered by a resync; returns the number of resyncs.
async fn delivered_or_covered(stream: &mut Streaming<rpc::QueueNotice>, commits: &[u64]) -> usize {
    let last = *commits.last().unwrap();
    let mut pending = commits.iter().copied().peekable();
    let mut resyncs = 0;
    loop {
        match next(stream).await {
            Notice::Change(c) => {
                assert_eq!(Some(c.stream_sequence), pending.next(), "a change arrived out of order or after a gap");
                if c.stream_sequence == last {
                    break;
                }
            }
            Notice::Resync(r) => {
                resyncs += 1;
                assert!(r.reason.contains("reload"), "{r:?}");
                while pending.next_if(|s| *s <= r.sequence).is_some() {}
                if r.sequence >= last {
                    break;
                }
            }
            Notice::Started(s) => panic!("started twice: {s:?}"),
        }
    }
    assert!(pending.next().is_none());
    resyncs
}

#[tokio::test]
async fn a_watch_misses_nothing_another_instance_projected() {
    let mut desk = Desk::open().await;
    // Two instances on one stream and database: either projector may apply a batch first.
    let beside = desk.app.spawn_beside().await;
    let mut stream = watch(beside.channel().await, &desk.dispatcher, rpc::WatchedQueue::Unit, COMMUNITY).await.unwrap();
    let Notice::Started(started) = next(&mut stream).await else { panic!("the first notice is `started`") };
    let mut commits = Vec::new();
    for i in 0..40 {
        desk.order(&format!("WT-TWO-{i}"), COMMUNITY, "邻里纠纷").await;
        commits.push(desk.last);
    }
    assert!(commits.iter().all(|s| *s > started.sequence));
    delivered_or_covered(&mut stream, &commits).await;
    beside.finish_beside().await;
    desk.app.finish().await;
}

#[tokio::test]
async fn watches_per_caller_are_limited_and_watches_are_scoped() {
    let desk = Desk::open_with(|s| s.max_watches_per_caller = 2).await;
    let lead = desk.app.token("committee_lead", COMMUNITY);
    let open = || async { watch(desk.app.channel().await, &lead, rpc::WatchedQueue::Committee, COMMITTEE).await };
    let first = open().await.unwrap();
    let _second = open().await.unwrap();
    let status = open().await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Someone else is not limited by this caller's watches.
    let other = desk.app.token_for("lead-2", "committee_lead", COMMUNITY, "");
    let _theirs = watch(desk.app.channel().await, &other, rpc::WatchedQueue::Committee, COMMITTEE).await.unwrap();
    // Closing a watch frees its slot (once the server notices the stream is gone).
    drop(first);
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(stream) = open().await {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "the closed watch's slot was never freed");

    let m1 = desk.app.token_for("m1", "mediator", COMMUNITY, "");
    let status = watch(desk.app.channel().await, &m1, rpc::WatchedQueue::Mediator, "m2").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = watch(desk.app.channel().await, &m1, rpc::WatchedQueue::Unspecified, "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("queue"), "{status:?}");
    let status = watch(desk.app.channel().await, &lead, rpc::WatchedQueue::Unit, DISTRICT).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    desk.app.finish().await;
}

//! What must hold after a scenario, checked against the servers directly (never through the
//! proxies): every acknowledged command is in the stream exactly once, at the sequence and version
//! the client was told; every retried command converges to that one result when sent again; the
//! read models equal a fresh replay of the stream from sequence 0; every deadline fired at most
//! once and every due one fired; every callback of the 12345 bridge delivered (or dead-lettered
//! with its reason), in order per order, each delivery id with one content.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures::StreamExt as _;

use fengqiao::settings::Settings;
use fengqiao_tests::hotline::Received;
use fengqiao_tests::{checkpoints, connect, create_database, events as pb, project_until, read_model_rows};

use crate::workload::{Clients, Sent, Tokens, with_retries};

/// One commit as the stream holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub sequence: u64,
    pub case_id: String,
    pub key: String,
    pub version_before: u64,
    pub events: u64,
    /// The deadlines the commit fired (the timer worker's commits).
    pub fired: Vec<Fired>,
}

/// A `DeadlineWarned` or `DeadlineBreached` event.
#[derive(Debug, Clone)]
pub struct Fired {
    pub breached: bool,
    pub clock: i32,
    pub deadline_id: String,
}

/// The idempotency keys of the timer worker's commits start so (`timer:{kind}:{deadline}:{case}`).
const TIMER_KEY: &str = "timer:";

/// Reads every commit of `stream` from the servers at `urls` (comma-separated), in order.
///
/// # Errors
/// NATS unreachable, a commit that does not decode, or the read not finishing within a minute.
pub async fn read_stream(urls: &str, stream: &str) -> anyhow::Result<Vec<Stored>> {
    let servers: Vec<&str> = urls.split(',').collect();
    let client = async_nats::connect(servers.as_slice()).await?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(stream).await?;
    let last = stream.info().await?.state.last_sequence;
    let mut stored = Vec::new();
    if last == 0 {
        return Ok(stored);
    }
    let consumer =
        stream.create_consumer(OrderedConfig { deliver_policy: DeliverPolicy::All, ..Default::default() }).await?;
    let mut messages = consumer.messages().await?;
    let read = async {
        while let Some(message) = messages.next().await {
            let message = message?;
            let sequence = message.info().map_err(|e| anyhow::anyhow!("{e}"))?.stream_sequence;
            let commit = fengqiao_eventstore::decode(sequence, &message.payload)?.commit;
            let fired = commit
                .events
                .iter()
                .filter_map(|e| match e.event.as_ref()?.kind.as_ref()? {
                    pb::event::Kind::DeadlineWarned(w) => {
                        Some(Fired { breached: false, clock: w.clock, deadline_id: w.deadline_id.clone() })
                    }
                    pb::event::Kind::DeadlineBreached(b) => {
                        Some(Fired { breached: true, clock: b.clock, deadline_id: b.deadline_id.clone() })
                    }
                    _ => None,
                })
                .collect();
            stored.push(Stored {
                fired,
                sequence,
                case_id: commit.case_id,
                key: commit.idempotency_key,
                version_before: commit.version_before,
                events: commit.events.len() as u64,
            });
            if sequence >= last {
                break;
            }
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.context("reading the stream")??;
    Ok(stored)
}

/// The figures of one scenario and everything found wrong.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Commands acknowledged to a client (after the final resend of the ones it gave up on).
    pub acked: usize,
    /// Commands that needed more than one attempt.
    pub retried: usize,
    /// Acknowledged commands not in the stream.
    pub lost: usize,
    /// Commits beyond the first under one (case, idempotency key).
    pub duplicates: usize,
    pub problems: Vec<String>,
}

/// Holds the clients' records against the stream.
pub fn verify(records: &[Sent], stored: &[Stored]) -> Verdict {
    let mut v = Verdict::default();
    let mut by_key: HashMap<(&str, &str), Vec<&Stored>> = HashMap::new();
    let by_sequence: HashMap<u64, &Stored> = stored.iter().map(|s| (s.sequence, s)).collect();
    for s in stored {
        by_key.entry((s.case_id.as_str(), s.key.as_str())).or_default().push(s);
    }
    for ((case, key), commits) in &by_key {
        if commits.len() > 1 {
            v.duplicates += commits.len() - 1;
            let seqs: Vec<u64> = commits.iter().map(|c| c.sequence).collect();
            v.problems
                .push(format!("case {case} key {key} is in the stream {} times (sequences {seqs:?})", commits.len()));
        }
    }
    // The version chain of every case: each commit starts where the previous one ended.
    let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
    for s in stored {
        let at = versions.entry(s.case_id.as_str()).or_default();
        if s.version_before != *at {
            v.problems.push(format!(
                "case {} commit at sequence {} starts at version {}, the case was at {at}",
                s.case_id, s.sequence, s.version_before
            ));
        }
        *at = s.version_before + s.events;
    }
    let sent_keys: std::collections::HashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
    for s in stored {
        if !sent_keys.contains(s.key.as_str()) && !s.key.starts_with(TIMER_KEY) {
            v.problems.push(format!("sequence {} holds key {} that no client sent", s.sequence, s.key));
        }
    }
    for r in records {
        if !r.failed_attempts.is_empty() {
            v.retried += 1;
        }
        let Some(ack) = r.acked() else { continue };
        v.acked += 1;
        // An intake that found the case registered answers with that registration's commit.
        let found = if ack.existing_case {
            by_sequence.get(&ack.stream_sequence).filter(|s| s.case_id == ack.case_id).copied()
        } else {
            by_key.get(&(ack.case_id.as_str(), r.key.as_str())).and_then(|c| c.first().copied())
        };
        match found {
            None => {
                v.lost += 1;
                v.problems.push(format!(
                    "LOST: {} key {} on case {} acknowledged at sequence {} is not in the stream",
                    r.command.rpc(),
                    r.key,
                    ack.case_id,
                    ack.stream_sequence
                ));
            }
            Some(s) if s.sequence != ack.stream_sequence || s.version_before + s.events != ack.version => {
                v.problems.push(format!(
                    "{} key {} acknowledged as sequence {} version {}, stored at sequence {} version {}",
                    r.command.rpc(),
                    r.key,
                    ack.stream_sequence,
                    ack.version,
                    s.sequence,
                    s.version_before + s.events
                ));
            }
            Some(_) => {}
        }
    }
    v
}

/// Sends every command that was retried or given up on once more, as a client that lost track of
/// it would, and checks that it converges: an acknowledged one answers `replayed` with the same
/// result; one given up on is now acknowledged (first time, or replayed if it had committed).
/// Returns the records with the outcomes of the commands given up on replaced, and the problems.
pub async fn resend(records: Vec<Sent>, clients: &Clients, tokens: &Tokens) -> (Vec<Sent>, usize, Vec<String>) {
    let mut out = Vec::with_capacity(records.len());
    let mut problems = Vec::new();
    let mut gave_up = 0;
    for mut r in records {
        if r.failed_attempts.is_empty() && r.outcome.is_ok() {
            out.push(r);
            continue;
        }
        let (_, again) = with_retries(crate::workload::RETRY_BUDGET, || {
            let command = r.command.clone();
            async move { command.send(clients, tokens).await }
        })
        .await;
        match (&r.outcome, again) {
            (Ok(first), Ok(second)) => {
                let same = (first.case_id.as_str(), first.version, first.stream_sequence)
                    == (second.case_id.as_str(), second.version, second.stream_sequence);
                if !same || !second.replayed {
                    problems.push(format!(
                        "{} key {} did not converge: first {first:?}, sent again {second:?}",
                        r.command.rpc(),
                        r.key
                    ));
                }
            }
            (Err(_), Ok(second)) => {
                gave_up += 1;
                r.outcome = Ok(second);
            }
            (_, Err(status)) => {
                problems.push(format!("{} key {} sent again on a healthy service: {status:?}", r.command.rpc(), r.key));
            }
        }
        out.push(r);
    }
    (out, gave_up, problems)
}

/// Waits until every read model in `live_url` has applied `last`, replays the stream from 0 into a
/// fresh database `replay_url` (same server), and compares every row. Returns how long the live
/// read models took to catch up.
///
/// # Errors
/// A read model stopped or not caught up within a minute, or any row differing from the replay.
pub async fn read_models_match(
    settings: &Settings,
    live_url: &str,
    replay_url: &str,
    last: u64,
) -> anyhow::Result<Duration> {
    let live = connect(live_url).await?;
    let started = Instant::now();
    loop {
        let failed = live
            .query(
                "SELECT projection, failed_at_sequence, failure FROM projection_checkpoints WHERE failure IS NOT NULL",
                &[],
            )
            .await?;
        if let Some(f) = failed.first() {
            anyhow::bail!(
                "read model {} stopped at sequence {:?}: {:?}",
                f.get::<_, String>(0),
                f.get::<_, Option<i64>>(1),
                f.get::<_, Option<String>>(2)
            );
        }
        let at = checkpoints(&live).await?;
        if at.values().all(|s| *s >= last) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "read models not at sequence {last} after 60 s: {at:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up = started.elapsed();
    let mut replay = settings.clone();
    replay.database_url = replay_url.to_owned();
    create_database(&replay).await?;
    project_until(&replay, 1000, last, Duration::from_secs(60)).await?;
    let (ours, fresh) = (read_model_rows(&live).await?, read_model_rows(&connect(replay_url).await?).await?);
    let names = |m: &BTreeMap<String, Vec<String>>| m.keys().cloned().collect::<Vec<_>>();
    anyhow::ensure!(
        names(&ours) == names(&fresh),
        "read model tables differ: live {:?}, replay {:?}",
        names(&ours),
        names(&fresh)
    );
    for (table, rows) in &ours {
        let replayed = &fresh[table];
        if rows != replayed {
            let first = rows.iter().zip(replayed).find(|(a, b)| a != b);
            anyhow::bail!(
                "read model table {table} differs from a replay from 0: {} rows live, {} replayed; first difference {first:?}",
                rows.len(),
                replayed.len()
            );
        }
    }
    Ok(caught_up)
}

/// What the timer worker did in a scenario.
#[derive(Debug, Default)]
pub struct Deadlines {
    pub warned: usize,
    pub breached: usize,
    /// Deadlines fired more than once.
    pub problems: Vec<String>,
    /// Due deadlines not (yet) breached.
    pub missing: Vec<String>,
}

/// Holds the firings in the stream against the deadlines known to be due: no (case, deadline)
/// warned twice or breached twice, and every case of `due` has its `hotline_reply` breach.
pub fn deadlines(stored: &[Stored], due: &[String]) -> Deadlines {
    let mut d = Deadlines::default();
    let mut seen: HashMap<(&str, &str, bool), Vec<u64>> = HashMap::new();
    let mut reply_breached: HashSet<&str> = HashSet::new();
    for s in stored {
        for f in &s.fired {
            seen.entry((s.case_id.as_str(), f.deadline_id.as_str(), f.breached)).or_default().push(s.sequence);
            if f.breached {
                d.breached += 1;
                if f.clock == pb::Clock::HotlineReply as i32 {
                    reply_breached.insert(s.case_id.as_str());
                }
            } else {
                d.warned += 1;
            }
        }
    }
    for ((case, deadline, breached), seqs) in &seen {
        if seqs.len() > 1 {
            let what = if *breached { "breached" } else { "warned" };
            d.problems
                .push(format!("deadline {deadline} of case {case} {what} {} times (sequences {seqs:?})", seqs.len()));
        }
    }
    d.missing = due.iter().filter(|c| !reply_breached.contains(c.as_str())).cloned().collect();
    d
}

/// What became of the 12345 bridge's callbacks.
#[derive(Debug, Default)]
pub struct Callbacks {
    pub delivered: usize,
    pub dead: usize,
    /// Deliveries posted again after a 2xx (an answer the bridge lost): allowed, the hotline
    /// deduplicates on the delivery id.
    pub resent: usize,
    /// Requests the hotline answered with an error (503 while it was down).
    pub refused: usize,
    pub problems: Vec<String>,
}

/// Waits until the bridge has read the whole stream (its durable consumer has nothing pending
/// or unacknowledged) and has no callback left to post (none `pending` in the outbox).
///
/// # Errors
/// Not within `within`.
pub async fn callbacks_settled(settings: &Settings, within: Duration) -> anyhow::Result<Duration> {
    let servers: Vec<&str> = settings.nats_url.split(',').collect();
    let js = async_nats::jetstream::new(async_nats::connect(servers.as_slice()).await?);
    let db = connect(&settings.database_url).await?;
    crate::servers::until(within, "the hotline bridge has posted every callback", || async {
        let consumer = async {
            let stream = js.get_stream(&settings.stream).await.ok()?;
            let info = stream.consumer_info(&settings.hotline.consumer).await.ok()?;
            Some(info.num_pending == 0 && info.num_ack_pending == 0)
        };
        let pending = db.query_one("SELECT count(*) FROM hotline_deliveries WHERE status = 'pending'", &[]);
        consumer.await == Some(true) && pending.await.is_ok_and(|r| r.get::<_, i64>(0) == 0)
    })
    .await
}

/// Holds what the hotline received against the bridge's outbox (`hotline_deliveries` in
/// `database_url`), as docs/hotline.md promises: every callback delivered or dead-lettered with
/// its reason; every request signed; each delivery id always posted with the body the outbox
/// holds; every delivered one received with a 2xx; and per order, no callback posted before the
/// ones ahead of it were delivered (so the first deliveries arrive in order). A delivery posted
/// again after a 2xx is at-least-once delivery, counted, not a problem.
///
/// # Errors
/// PostgreSQL unreachable.
pub async fn callbacks(database_url: &str, received: &[Received]) -> anyhow::Result<Callbacks> {
    let db = connect(database_url).await?;
    let rows = db
        .query(
            "SELECT delivery_id::text, order_number, body, status, coalesce(last_error, '') FROM hotline_deliveries \
             ORDER BY order_number, stream_sequence, event_index",
            &[],
        )
        .await?;
    let mut c = Callbacks::default();
    // Per delivery id: its order and its place in the order's queue; per order, its queue.
    let mut outbox: HashMap<String, (String, serde_json::Value)> = HashMap::new();
    let mut queues: HashMap<String, Vec<String>> = HashMap::new();
    for row in &rows {
        let (id, order, body, status, error): (String, String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        match status.as_str() {
            "delivered" => c.delivered += 1,
            "dead" if !error.is_empty() => c.dead += 1,
            "dead" => c.problems.push(format!("callback {id} of order {order} dead-lettered without a reason")),
            other => c.problems.push(format!("callback {id} of order {order} still {other}")),
        }
        if status == "delivered" && !received.iter().any(|r| r.delivery_id == id && r.answered < 300) {
            c.problems.push(format!("callback {id} of order {order} is marked delivered but was never accepted"));
        }
        queues.entry(order.clone()).or_default().push(id.clone());
        outbox.insert(id, (order, serde_json::from_str(&body).unwrap_or_default()));
    }
    let mut accepted: HashSet<&str> = HashSet::new();
    for r in received {
        let Some((order, body)) = outbox.get(&r.delivery_id) else {
            c.problems
                .push(format!("the hotline received delivery {:?}, which the outbox does not hold", r.delivery_id));
            continue;
        };
        if !r.signed {
            c.problems.push(format!("delivery {} arrived without a valid signature", r.delivery_id));
        }
        if &r.body != body {
            c.problems.push(format!("delivery {} arrived as {}, the outbox holds {body}", r.delivery_id, r.body));
        }
        let queue = &queues[order];
        let ahead = queue.iter().take_while(|id| **id != r.delivery_id);
        if let Some(undelivered) = ahead.into_iter().find(|id| !accepted.contains(id.as_str())) {
            c.problems.push(format!(
                "delivery {} of order {order} posted before {undelivered}, ahead of it, was delivered",
                r.delivery_id
            ));
        }
        if r.answered < 300 {
            if !accepted.insert(r.delivery_id.as_str()) {
                c.resent += 1;
            }
        } else {
            c.refused += 1;
        }
    }
    Ok(c)
}

/// The checks themselves must be able to fail: a lost, a duplicated, a diverged and a phantom
/// commit are each reported.
#[test]
fn verify_reports_lost_duplicated_diverged_and_unknown_commits() {
    use fengqiao_tests::{grid_report, rpc};
    use std::time::Instant;
    use tonic::Code;

    use crate::workload::Command;

    let sent = |key: &str, case: &str, version: u64, sequence: u64| Sent {
        command: Command::Register { hotline: false, request: grid_report(key) },
        key: key.to_owned(),
        failed_attempts: vec![Code::Unavailable],
        outcome: Ok(rpc::CommandResult {
            case_id: case.to_owned(),
            version,
            stream_sequence: sequence,
            replayed: false,
            existing_case: false,
        }),
        at: Instant::now(),
        took: std::time::Duration::ZERO,
    };
    let stored = |sequence: u64, case: &str, key: &str, version_before: u64| Stored {
        sequence,
        case_id: case.to_owned(),
        key: key.to_owned(),
        version_before,
        events: 1,
        fired: Vec::new(),
    };
    let records = [sent("a", "c1", 1, 1), sent("b", "c1", 2, 2), sent("c", "c2", 1, 3), sent("lost", "c3", 1, 9)];
    // "b" twice (the second on the same version: a fork), "c" at another sequence than told,
    // "x" that nobody sent, "lost" missing.
    let log = [
        stored(1, "c1", "a", 0),
        stored(2, "c1", "b", 1),
        stored(4, "c1", "b", 1),
        stored(5, "c2", "c", 0),
        stored(6, "c4", "x", 0),
    ];
    let v = verify(&records, &log);
    assert_eq!((v.acked, v.retried, v.lost, v.duplicates), (4, 4, 1, 1));
    let all = v.problems.join("\n");
    for expected in [
        "LOST: RegisterCase key lost",
        "key b is in the stream 2 times",
        "commit at sequence 4 starts at version 1, the case was at 2",
        "key c acknowledged as sequence 3 version 1, stored at sequence 5",
        "sequence 6 holds key x that no client sent",
    ] {
        assert!(all.contains(expected), "{expected:?} not in:\n{all}");
    }
    assert_eq!(verify(&records[..3], &log[..2]).lost, 1);
    assert!(verify(&records[..2], &log[..2]).problems.is_empty());
}

/// A deadline breached twice, one warned twice and a due one never breached are each reported.
#[test]
fn deadlines_reports_repeated_and_missing_firings() {
    let commit = |sequence: u64, case: &str, fired: Vec<Fired>| Stored {
        sequence,
        case_id: case.to_owned(),
        key: format!("{TIMER_KEY}x"),
        version_before: 0,
        events: 1,
        fired,
    };
    let fired = |breached: bool, clock: pb::Clock, id: &str| Fired {
        breached,
        clock: clock as i32,
        deadline_id: id.to_owned(),
    };
    let reply = pb::Clock::HotlineReply;
    let log = [
        commit(1, "c1", vec![fired(false, reply, "hotline_reply:1")]),
        commit(2, "c1", vec![fired(true, reply, "hotline_reply:1")]),
        commit(3, "c2", vec![fired(true, reply, "hotline_reply:1")]),
        commit(4, "c2", vec![fired(true, reply, "hotline_reply:1")]),
        commit(5, "c3", vec![fired(false, pb::Clock::SignFor, "sign_for:2")]),
        commit(6, "c3", vec![fired(false, pb::Clock::SignFor, "sign_for:2")]),
    ];
    let due = ["c1".to_owned(), "c2".to_owned(), "c3".to_owned()];
    let d = deadlines(&log, &due);
    assert_eq!((d.warned, d.breached), (3, 3));
    assert_eq!(d.missing, ["c3"]);
    let all = d.problems.join("\n");
    assert_eq!(d.problems.len(), 2, "{all}");
    assert!(all.contains("hotline_reply:1 of case c2 breached 2 times"), "{all}");
    assert!(all.contains("sign_for:2 of case c3 warned 2 times"), "{all}");
    assert!(deadlines(&log[..3], &due[..1]).problems.is_empty());
}

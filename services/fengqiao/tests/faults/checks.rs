//! What must hold after a scenario, checked against the servers directly (never through the
//! proxies): every acknowledged command is in the stream exactly once, at the sequence and version
//! the client was told; every retried command converges to that one result when sent again; the
//! read models equal a fresh replay of the stream from sequence 0.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use futures::StreamExt as _;

use fengqiao::settings::Settings;
use fengqiao_tests::{checkpoints, connect, create_database, project_until, read_model_rows};

use crate::workload::{Clients, Sent, Tokens, with_retries};

/// One commit as the stream holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub sequence: u64,
    pub case_id: String,
    pub key: String,
    pub version_before: u64,
    pub events: u64,
}

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
            stored.push(Stored {
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
        if !sent_keys.contains(s.key.as_str()) {
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

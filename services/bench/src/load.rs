//! Load through the public gRPC API: closed-loop throughput with many concurrent clients
//! (registrations alone, and whole case lives), and open-loop latency at a fixed offered load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio::task::JoinSet;

use fengqiao_proto::api;

use crate::procfs::{CpuMeter, CpuUse};
use crate::serve::Server;
use crate::stats::{Samples, per_second};
use crate::workload::{CasePlan, Clients, FULL_LIFE, Geography, StepKind, Tokens, authorised};

/// Connections the clients share (HTTP/2 multiplexes the rest).
const CONNECTIONS: usize = 8;

/// What one closed-loop run achieved.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// Commands acknowledged inside the measured window.
    pub commands: u64,
    pub per_s: f64,
    pub latency: Samples,
    pub errors: u64,
    pub first_error: Option<String>,
    pub cpu: CpuUse,
}

/// Which commands the clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Each client registers new cases.
    Register,
    /// Each client takes one case after another through its whole life.
    WholeLife,
}

/// Shared bookkeeping of a run.
#[derive(Debug, Default)]
struct Tally {
    commands: u64,
    latency: Samples,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `clients` concurrent clients for `warmup` (not counted) and then `duration`.
///
/// # Errors
/// The service cannot be reached.
#[allow(clippy::too_many_arguments)]
pub async fn closed_loop(
    server: &Server,
    tokens: &Tokens,
    geo: Geography,
    tag: &str,
    mix: Mix,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS.min(clients) {
        channels.push(server.channel().await?);
    }
    let next_case = Arc::new(AtomicU64::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let start = Instant::now();
    let measure_from = start + warmup;
    let deadline = measure_from + duration;
    let mut tasks = JoinSet::new();
    for n in 0..clients {
        let mut api = Clients::new(channels[n % channels.len()].clone());
        let tokens = tokens.clone();
        let tag = tag.to_owned();
        let next_case = next_case.clone();
        let tally = tally.clone();
        tasks.spawn(async move {
            let mut mine = Tally::default();
            'cases: while Instant::now() < deadline {
                let plan = CasePlan::new(&tag, next_case.fetch_add(1, Ordering::Relaxed), &geo);
                let steps = if mix == Mix::Register { &FULL_LIFE[..1] } else { FULL_LIFE };
                for &step in steps {
                    let sent = Instant::now();
                    if sent >= deadline {
                        break 'cases;
                    }
                    let result =
                        api.send(&tokens, &plan, plan.step(step, jiff::Timestamp::now().as_millisecond())).await;
                    let done = Instant::now();
                    match result {
                        Ok(_) if sent >= measure_from && done <= deadline => {
                            mine.commands += 1;
                            mine.latency.record(done - sent);
                        }
                        Ok(_) => {}
                        Err(status) => {
                            mine.errors += 1;
                            mine.first_error.get_or_insert_with(|| format!("{status:?}"));
                            // The rest of this case's life would fail too.
                            continue 'cases;
                        }
                    }
                }
            }
            let mut all = tally.lock().await;
            all.commands += mine.commands;
            all.latency.merge(mine.latency);
            all.errors += mine.errors;
            if all.first_error.is_none() {
                all.first_error = mine.first_error;
            }
        });
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let meter = CpuMeter::start(Some(server.pid));
    tokio::time::sleep_until(deadline.into()).await;
    let cpu = meter.stop();
    while let Some(joined) = tasks.join_next().await {
        joined?;
    }
    let tally = std::mem::take(&mut *tally.lock().await);
    Ok(Throughput {
        commands: tally.commands,
        per_s: per_second(tally.commands, duration),
        latency: tally.latency,
        errors: tally.errors,
        first_error: tally.first_error,
        cpu,
    })
}

/// What the open-loop run saw.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Commands per second offered (half registrations, half dispatches).
    pub offered_per_s: f64,
    pub achieved_per_s: f64,
    /// Command due → acknowledged (registrations and dispatches).
    pub acknowledged: Samples,
    /// Registration due → the community's `ListQueue` returned with `min_sequence` at its commit.
    pub visible_in_list: Samples,
    /// Dispatch sent → the committee's work queue (`ListCommitteeQueue`) returned with
    /// `min_sequence` at its commit.
    pub visible_in_work_queue: Samples,
    pub errors: u64,
    pub first_error: Option<String>,
    pub cpu: CpuUse,
}

/// Latencies of one case's operation, or the status that stopped it.
type Observed = Result<[Duration; 4], tonic::Status>;

/// Offers `rate` commands per second for `duration`: every 2/`rate` seconds a new case is
/// registered (read back from its community's `ListQueue` with the commit's sequence as
/// `min_sequence`), then dispatched to its committee (read back from the committee's work queue
/// likewise). Latencies count from the moment each registration was due, so a stalled service
/// cannot hide its stall by slowing the load (no coordinated omission); a dispatch counts from
/// when it was sent.
///
/// # Errors
/// The service cannot be reached.
pub async fn open_loop(
    server: &Server,
    tokens: &Tokens,
    geo: Geography,
    tag: &str,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Latency> {
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(server.channel().await?);
    }
    let cases_per_s = (rate / 2.0).max(1.0);
    let interval = Duration::from_secs_f64(1.0 / cases_per_s);
    let total = (duration.as_secs_f64() * cases_per_s) as u64;
    let observed = Arc::new(Mutex::new(Vec::<Observed>::new()));
    let cpu = CpuMeter::start(Some(server.pid));
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = JoinSet::new();
    for n in 0..total {
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let api = Clients::new(channels[n as usize % channels.len()].clone());
        let tokens = tokens.clone();
        let plan = CasePlan::new(tag, n, &geo);
        let observed = observed.clone();
        tasks.spawn(async move {
            let outcome = one_case(api, &tokens, &plan, due).await;
            observed.lock().await.push(outcome);
        });
        // Reap finished operations so the set does not grow with the run.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let cpu = cpu.stop();
    let mut latency = Latency {
        offered_per_s: cases_per_s * 2.0,
        achieved_per_s: 0.0,
        acknowledged: Samples::default(),
        visible_in_list: Samples::default(),
        visible_in_work_queue: Samples::default(),
        errors: 0,
        first_error: None,
        cpu,
    };
    for outcome in std::mem::take(&mut *observed.lock().await) {
        match outcome {
            Ok([registered, listed, dispatched, queued]) => {
                latency.acknowledged.record(registered);
                latency.acknowledged.record(dispatched);
                latency.visible_in_list.record(listed);
                latency.visible_in_work_queue.record(queued);
            }
            Err(status) => {
                latency.errors += 1;
                latency.first_error.get_or_insert_with(|| format!("{status:?}"));
            }
        }
    }
    latency.achieved_per_s = per_second(latency.acknowledged.len() as u64, elapsed);
    Ok(latency)
}

/// Registers a case, reads it from its community's queue, dispatches it and reads it from its
/// committee's work queue: [registered, listed, dispatched, queued] latencies.
async fn one_case(mut api: Clients, tokens: &Tokens, plan: &CasePlan, due: Instant) -> Observed {
    let now_ms = || jiff::Timestamp::now().as_millisecond();
    let registered = api.send(tokens, plan, plan.step(StepKind::Register, now_ms())).await?;
    let registered_after = due.elapsed();
    let page = api::ListQueueRequest {
        unit_code: plan.community.clone(),
        min_sequence: Some(registered.stream_sequence),
        page_size: 10,
        ..Default::default()
    };
    api.query.list_queue(authorised(tokens.lead(&plan.community), page)).await?;
    let listed_after = due.elapsed();

    let sent = Instant::now();
    let dispatched = api.send(tokens, plan, plan.step(StepKind::Dispatch, now_ms())).await?;
    let dispatched_after = sent.elapsed();
    let page = api::ListCommitteeQueueRequest {
        committee_id: plan.committee(),
        min_sequence: Some(dispatched.stream_sequence),
        page_size: 10,
        ..Default::default()
    };
    api.work_queues.list_committee_queue(authorised(tokens.lead(&plan.community), page)).await?;
    Ok([registered_after, listed_after, dispatched_after, sent.elapsed()])
}

//! The machine's own limits, measured in the same run as Fengqiao's figures:
//!
//! - JetStream publish to a stream configured exactly like Fengqiao's (the service's own
//!   `open_store` creates it: file storage, server-wide `sync_interval: always`), with the
//!   message Fengqiao writes for a registration — the same payload size and the same
//!   `Nats-Msg-Id` and `Nats-Expected-Last-Subject-Sequence` headers, each to a new case subject —
//!   one at a time and pipelined;
//! - PostgreSQL batched insert of case-summary rows into the `cases` read model's own table (same
//!   columns and indexes), one `INSERT … SELECT FROM UNNEST` of a batch per transaction on one
//!   connection, as the projector writes.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use prost::Message as _;
use uuid::Uuid;

use fengqiao_domain::event::{self, pb};
use fengqiao_domain::{Case, Command, decide};
use fengqiao_projection::{cases, projector};

use fengqiao::settings::Settings;

use crate::stack::Stack;
use crate::stats::{Samples, per_second};
use crate::workload::{CasePlan, Geography};

/// Rounds of one-at-a-time then pipelined publishing.
const ROUNDS: u32 = 4;

/// Raw publish figures.
#[derive(Debug, Clone)]
pub struct PublishLimits {
    /// Acknowledged publishes per second, one at a time.
    pub sequential_per_s: f64,
    pub sequential_latency: Samples,
    /// Acknowledged publishes per second with `window` in flight.
    pub pipelined_per_s: f64,
    pub window: usize,
    pub payload_bytes: usize,
}

/// The commit Fengqiao writes when a 12345 order is registered, encoded.
///
/// # Errors
/// The bench's own registration does not parse or is refused (a bug).
pub fn registration_commit() -> anyhow::Result<Bytes> {
    let plan = CasePlan::new("limit", 0, &Geography { townships: 1, villages: 1 });
    let now = jiff::Timestamp::now();
    let crate::workload::Step::Register(request) = plan.step(crate::workload::StepKind::Register, now.as_millisecond())
    else {
        anyhow::bail!("the first step of a case is not its registration");
    };
    let register = fengqiao::grpc::parse::register(&request).map_err(|e| anyhow::anyhow!("{e}"))?;
    let command = Command::Register(Box::new(register));
    let events = decide(&Case::default(), &command, now)?;
    let key = request.meta.map(|m| m.idempotency_key).unwrap_or_default();
    let actor = pb::Actor {
        subject: "bench-dispatcher".to_owned(),
        role: pb::Role::Dispatcher as i32,
        unit_code: crate::workload::DISTRICT.to_owned(),
        partner_id: String::new(),
    };
    let events = events
        .into_iter()
        .enumerate()
        .map(|(i, kind)| pb::EventEnvelope {
            event_id: Uuid::now_v7().to_string(),
            case_id: plan.case_id.to_string(),
            event_type: event::type_name(&kind).to_owned(),
            schema_version: event::SCHEMA_VERSION,
            occurred_at_unix_ms: now.as_millisecond(),
            recorded_at_unix_ms: now.as_millisecond(),
            actor: Some(actor.clone()),
            unit_code: crate::workload::DISTRICT.to_owned(),
            correlation_id: plan.case_id.to_string(),
            causation_id: format!("command:{key}"),
            idempotency_key: key.clone(),
            case_version: i as u64 + 1,
            event: Some(event::wrap(kind)),
        })
        .collect();
    let commit = pb::Commit {
        case_id: plan.case_id.to_string(),
        idempotency_key: key,
        command_type: command.name().to_owned(),
        version_before: 0,
        events,
    };
    Ok(Bytes::from(commit.encode_to_vec()))
}

/// Publishes to a fresh stream (the one `settings` names) configured like Fengqiao's, for
/// `sequential` in all one at a time and for `pipelined` in all with `window` publishes in flight,
/// alternating in rounds.
///
/// # Errors
/// NATS unreachable or a publish failed.
pub async fn jetstream(
    settings: &Settings,
    sequential: Duration,
    pipelined: Duration,
    window: usize,
) -> anyhow::Result<PublishLimits> {
    let store = fengqiao::app::open_store(settings).await?;
    let js = store.jetstream().clone();
    let payload = registration_commit()?;
    let message = |n: u64| {
        let case = Uuid::new_v4();
        let publish = PublishMessage::build()
            .payload(payload.clone())
            .message_id(format!("{case}:register-{n}"))
            .expected_last_subject_sequence(0);
        (format!("{}.case.{case}", settings.subject_prefix), publish)
    };

    // Warm the connection and the stream's first block.
    for n in 0..20 {
        let (subject, publish) = message(n);
        js.send_publish(subject, publish).await?.await?;
    }

    // The two ways alternate in rounds, so that a burst of other work on the machine does not
    // fall on one of them only.
    let mut latency = Samples::default();
    let (mut sequential_count, mut sequential_time) = (0u64, Duration::ZERO);
    let (mut pipelined_count, mut pipelined_time) = (0u64, Duration::ZERO);
    let mut n = 0u64;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        while started.elapsed() < sequential / ROUNDS {
            let (subject, publish) = message(n);
            n += 1;
            let t = Instant::now();
            js.send_publish(subject, publish).await?.await.context("publish one at a time")?;
            latency.record(t.elapsed());
            sequential_count += 1;
        }
        sequential_time += started.elapsed();

        let mut in_flight = FuturesUnordered::new();
        let started = Instant::now();
        loop {
            if started.elapsed() < pipelined / ROUNDS && in_flight.len() < window {
                let (subject, publish) = message(n);
                n += 1;
                in_flight.push(js.send_publish(subject, publish).await?.into_future());
                continue;
            }
            match in_flight.next().await {
                Some(ack) => {
                    ack.context("pipelined publish")?;
                    pipelined_count += 1;
                }
                None => break,
            }
        }
        pipelined_time += started.elapsed();
    }
    let sequential_per_s = per_second(sequential_count, sequential_time);
    let pipelined_per_s = per_second(pipelined_count, pipelined_time);
    Ok(PublishLimits {
        sequential_per_s,
        sequential_latency: latency,
        pipelined_per_s,
        window,
        payload_bytes: payload.len(),
    })
}

/// Raw insert figures.
#[derive(Debug, Clone, Copy)]
pub struct InsertLimit {
    pub rows_per_s: f64,
    pub batch: usize,
}

/// Inserts case-summary rows in batches of `batch`, one transaction each, for `duration`, into a
/// spare generation of the `cases` read model's tables in a fresh database.
///
/// # Errors
/// PostgreSQL unreachable or an insert failed.
pub async fn postgres(
    stack: &Stack,
    settings: &Settings,
    duration: Duration,
    batch: usize,
) -> anyhow::Result<InsertLimit> {
    stack.create_database(settings).await?;
    let mut client = crate::stack::connect(&settings.database_url).await?;
    let schema = projector::create_generation(&client, &cases::Cases, 99).await?;
    let statement = client
        .prepare(&format!(
            "INSERT INTO {schema}.cases (case_id, state, channel, external_ref, category, description, unit_code, \
             address, urgency, risk_signals, parties, tier, committee_id, committee_unit_code, owner_unit, risk_level, \
             version, registered_at, updated_at, last_sequence) \
             SELECT * FROM UNNEST($1::uuid[], $2::int2[], $3::int2[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::text[], $9::int2[], $10::jsonb[], $11::jsonb[], $12::int2[], $13::text[], $14::text[], $15::text[], \
             $16::int2[], $17::int8[], $18::timestamptz[], $19::timestamptz[], $20::int8[])"
        ))
        .await?;
    let geo = Geography { townships: 20, villages: 50 };
    let parties = serde_json::json!([
        {"name": "张三", "role": 1, "phone": "13812345678", "resident_id": "11010519491231002X"},
        {"name": "李四", "role": 2, "phone": "023-47521234", "resident_id": ""}
    ]);
    let started = Instant::now();
    let mut rows = 0u64;
    let mut sequence = 0i64;
    while started.elapsed() < duration {
        let now = std::time::SystemTime::now();
        let ids: Vec<Uuid> = (0..batch).map(|_| Uuid::now_v7()).collect();
        let units: Vec<String> = (0..batch).map(|i| geo.community(rows + i as u64)).collect();
        let refs: Vec<String> = (0..batch).map(|i| format!("GD-limit-{}", rows + i as u64)).collect();
        let seqs: Vec<i64> = (0..batch).map(|i| sequence + i as i64 + 1).collect();
        sequence += batch as i64;
        let all = |v: &dyn Fn() -> String| (0..batch).map(|_| v()).collect::<Vec<String>>();
        let small = |v: i16| vec![v; batch];
        let tx = client.transaction().await?;
        tx.execute(
            &statement,
            &[
                &ids,
                &small(1),
                &small(1),
                &refs,
                &all(&|| "邻里纠纷".to_owned()),
                &all(&|| "楼上卫生间漏水渗入楼下卧室，双方协商未果，来电请求调解。".to_owned()),
                &units,
                &all(&|| "重庆市江津区几江街道艾坪山社区3栋2单元".to_owned()),
                &small(1),
                &vec![serde_json::json!([]); batch],
                &vec![parties.clone(); batch],
                &small(0),
                &all(&String::new),
                &all(&String::new),
                &units,
                &small(0),
                &vec![1i64; batch],
                &vec![now; batch],
                &vec![now; batch],
                &seqs,
            ],
        )
        .await?;
        tx.commit().await?;
        rows += batch as u64;
    }
    Ok(InsertLimit { rows_per_s: per_second(rows, started.elapsed()), batch })
}

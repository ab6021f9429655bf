//! Callbacks to the hotline: derived from the case stream, kept in a PostgreSQL outbox, delivered
//! in order per work order with retries, backoff and dead letters. Never sent from a command
//! handler: a command only appends to the stream; this module reads it.
//!
//! **The consumer** ([`consume`]) is a durable JetStream pull consumer of the case stream. For each
//! commit of a 12345 work order it updates the order's row in `hotline_orders` and queues one
//! callback per event the hotline cares about in `hotline_deliveries`, in one transaction, then
//! acknowledges the message. A commit is applied only when it directly follows the last one applied
//! to its order (by case version): a redelivered commit is acknowledged and skipped, one that comes
//! before its predecessor is handed back to the server to wait for it. So an order's callbacks are
//! queued exactly once and in the order its events happened, across restarts and redeliveries.
//!
//! **The worker** ([`deliver`]) posts the head of each order's queue (its oldest callback not yet
//! delivered), signed, with the delivery id the hotline deduplicates on. A failure is retried
//! after an exponential, jittered delay ([`Backoff`]); after `max_attempts` the callback becomes a
//! dead letter with its reason, and the callbacks after it on the same order wait. An operator
//! sends dead letters again with `fengqiao hotline redeliver` ([`redeliver`]).

use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::StreamExt as _;
use serde_json::json;
use uuid::Uuid;

use fengqiao_domain::case::state_after;
use fengqiao_domain::event::{Kind, pb};
use fengqiao_eventstore::{EventStore, StoredCommit, decode};
use fengqiao_projection::time_from_ms;

use super::Bridged;
use super::inbound::{outcome_name, state_name};
use super::signature;

/// Namespace of delivery ids (UUID v5 of the event id).
const DELIVERY_NAMESPACE: Uuid = Uuid::from_u128(0x3b0e_55d2_8c41_4f0a_9e6d_12a7_c4f8_0d19);
/// How long a commit that came before its predecessor waits before the server offers it again.
const GAP_DELAY: Duration = Duration::from_millis(500);

/// How long the JetStream server waits for a delivered commit's acknowledgement before offering
/// it again. A session that ends (its process killed, NATS or PostgreSQL lost) leaves the commits
/// it was handed unacknowledged, and the orders they belong to wait this long; applying one commit
/// is one short transaction, and a commit offered twice is skipped the second time.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// Orders whose head callbacks one delivery round looks at.
const ROUND: i64 = 256;
/// Most characters of a hotline's error answer kept as the reason.
const REASON_CHARS: usize = 300;

/// Retry delays: after the n-th failure, `base · 2^(n−1)` capped at `max`, of which half is fixed
/// and half spread by a hash of the delivery id and n ("equal jitter"), so callbacks that failed
/// together do not all retry together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay after the `failures`-th failed attempt of `delivery` (`failures` ≥ 1).
    pub fn delay(&self, delivery: Uuid, failures: u32) -> Duration {
        let doubling = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        let full = self.base.saturating_mul(doubling).min(self.max);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (delivery, failures).hash(&mut hasher);
        let spread = (hasher.finish() % 1_000) as u32;
        full / 2 + (full / 2) * spread / 1_000
    }
}

/// What a commit's event tells the hotline, if anything: the callback kind and its text, plus the
/// outcome for a final reply.
fn callback_of(event: &Kind) -> Option<(&'static str, String, Option<&'static str>)> {
    let tier = |t: pb::Tier| match t {
        pb::Tier::Grid => "网格",
        pb::Tier::Community => "社区",
        pb::Tier::Street => "街道",
        pb::Tier::District => "区县",
        pb::Tier::Unspecified => "",
    };
    Some(match event {
        Kind::CaseAccepted(e) => ("signed_for", format!("已签收（{}）", e.committee_id), None),
        Kind::CaseDispatched(e) => ("progress", format!("已派单至{}（{}）", e.committee_id, tier(e.tier())), None),
        Kind::ProgressReported(e) => ("progress", e.note.clone(), None),
        Kind::CaseEscalated(e) => {
            ("progress", format!("已上报至{}（{}）：{}", e.committee_id, tier(e.to_tier()), e.reason), None)
        }
        Kind::ReferralMade(e) => ("progress", format!("已移交{}：{}", e.partner_name, e.reason), None),
        Kind::CaseSettled(_) => ("progress", "调解成功，已签订调解协议".to_owned(), None),
        Kind::CaseReopened(e) => ("progress", format!("二次办理：{}", e.reason), None),
        Kind::CaseReturned(e) => ("return", e.reason.clone(), None),
        Kind::CaseClosed(e) => ("final_reply", e.summary.clone(), Some(outcome_name(e.outcome()))),
        Kind::CaseMerged(e) => (
            "final_reply",
            format!("已并入案件{}办理：{}", e.into_case_id, e.reason),
            Some(outcome_name(pb::ClosureOutcome::Merged)),
        ),
        _ => return None,
    })
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}

/// The consumer's memory of which cases are 12345 orders (a case's channel never changes).
#[derive(Default)]
struct Channels(HashMap<Uuid, bool>);

impl Channels {
    const CAPACITY: usize = 100_000;

    fn remember(&mut self, case: Uuid, hotline: bool) {
        if self.0.len() >= Self::CAPACITY {
            self.0.clear();
        }
        self.0.insert(case, hotline);
    }
}

/// Runs the durable consumer until `stop` resolves. Transient failures (NATS, PostgreSQL) are
/// logged and retried; nothing is acknowledged that was not applied.
///
/// # Errors
/// None in practice: the loop only ends on `stop`.
pub(crate) async fn consume(
    shared: Arc<Bridged>,
    store: EventStore,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let mut channels = Channels::default();
    let mut pause = Duration::from_millis(100);
    loop {
        let session = session(&shared, &store, &mut channels);
        let outcome = tokio::select! {
            () = &mut stop => return Ok(()),
            outcome = session => outcome,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %format!("{e:#}"), retry_in_ms = pause.as_millis() as u64, "hotline consumer interrupted");
        }
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// One consumer session: binds the durable consumer and applies messages until an error.
async fn session(shared: &Bridged, store: &EventStore, channels: &mut Channels) -> anyhow::Result<()> {
    let config = store.config();
    let stream = store.jetstream().get_stream(&config.stream).await.context("opening the case stream")?;
    let name = shared.settings.consumer.clone();
    let consumer = stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                description: Some("Fengqiao 12345 hotline bridge: derives callbacks".to_owned()),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                filter_subject: format!("{}.case.>", config.subject_prefix),
                ack_wait: ACK_WAIT,
                ..Default::default()
            },
        )
        .await
        .context("binding the durable consumer")?;
    let mut messages = consumer.messages().await.context("pulling from the durable consumer")?;
    while let Some(message) = messages.next().await {
        let message = message.context("receiving from the durable consumer")?;
        let sequence = message.info().map_err(|e| anyhow::anyhow!("{e}"))?.stream_sequence;
        let commit = match decode(sequence, &message.payload) {
            Ok(commit) => commit,
            Err(e) => {
                // Never skipped: it stays pending, offered again later, and is logged each time.
                tracing::error!(error = %e, "hotline consumer cannot decode a commit");
                message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(30))))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                continue;
            }
        };
        let ack = match apply(shared, &stream, channels, &commit).await? {
            Applied::Done => AckKind::Ack,
            Applied::Early => AckKind::Nak(Some(GAP_DELAY)),
        };
        message.ack_with(ack).await.map_err(|e| anyhow::anyhow!("acknowledging: {e}"))?;
    }
    anyhow::bail!("the durable consumer's message stream ended")
}

/// What became of a commit.
enum Applied {
    /// Applied, or nothing to do (not a work order, or applied before).
    Done,
    /// It came before the commit it follows: hand it back to wait.
    Early,
}

/// Whether `case` is a 12345 work order: its first commit registers it on that channel.
async fn is_hotline(
    shared: &Bridged,
    stream: &async_nats::jetstream::stream::Stream,
    channels: &mut Channels,
    commit: &StoredCommit,
    case: Uuid,
) -> anyhow::Result<bool> {
    if let Some(known) = channels.0.get(&case) {
        return Ok(*known);
    }
    let registered =
        |c: &pb::Commit| {
            c.version_before == 0
                && c.events.first().and_then(|e| e.event.as_ref()).and_then(|e| e.kind.as_ref()).is_some_and(
                    |k| matches!(k, Kind::CaseRegistered(r) if r.channel == pb::Channel::Hotline12345 as i32),
                )
        };
    let hotline = if commit.commit.version_before == 0 {
        registered(&commit.commit)
    } else {
        let db = shared.pool.get().await?;
        if db.query_opt("SELECT 1 FROM hotline_orders WHERE case_id = $1", &[&case]).await?.is_some() {
            true
        } else {
            // Not seen yet: read the case's first commit.
            let subject = format!("{}.case.{case}", subject_prefix(stream));
            let first = stream
                .direct_get_next_for_subject(subject, Some(1))
                .await
                .map_err(|e| anyhow::anyhow!("reading the first commit of case {case}: {e}"))?;
            registered(&decode(first.sequence, &first.payload)?.commit)
        }
    };
    channels.remember(case, hotline);
    Ok(hotline)
}

fn subject_prefix(stream: &async_nats::jetstream::stream::Stream) -> String {
    // The stream's subject is `{prefix}.case.>`.
    stream.cached_info().config.subjects.first().and_then(|s| s.strip_suffix(".case.>")).unwrap_or_default().to_owned()
}

/// Applies one commit to the order's row and the outbox, in one transaction.
async fn apply(
    shared: &Bridged,
    stream: &async_nats::jetstream::stream::Stream,
    channels: &mut Channels,
    stored: &StoredCommit,
) -> anyhow::Result<Applied> {
    let commit = &stored.commit;
    let Ok(case) = Uuid::parse_str(&commit.case_id) else {
        tracing::error!(sequence = stored.sequence, "commit without a valid case id; not a work order");
        return Ok(Applied::Done);
    };
    if !is_hotline(shared, stream, channels, stored, case).await? {
        return Ok(Applied::Done);
    }
    let mut db = shared.pool.get().await?;
    let tx = db.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT order_number, state, closure, committee_id, status_notes, last_version \
             FROM hotline_orders WHERE case_id = $1 FOR UPDATE",
            &[&case],
        )
        .await?;
    let version_before = i64::try_from(commit.version_before).unwrap_or(i64::MAX);
    let (order, mut state, mut closure, mut committee, mut notes) = match &row {
        Some(r) => {
            let last: i64 = r.get(5);
            if version_before < last {
                return Ok(Applied::Done);
            }
            if version_before > last {
                return Ok(Applied::Early);
            }
            let state: i16 = r.get(1);
            let closure: i16 = r.get(2);
            (r.get::<_, String>(0), state as i32, closure as i32, r.get::<_, String>(3), r.get::<_, String>(4))
        }
        None if version_before > 0 => return Ok(Applied::Early),
        None => (String::new(), 0, 0, String::new(), String::new()),
    };
    let mut order = order;
    let mut updated_ms = 0;
    let mut queued = 0;
    for (index, envelope) in commit.events.iter().enumerate() {
        let Some(kind) = envelope.event.as_ref().and_then(|e| e.kind.as_ref()) else { continue };
        updated_ms = envelope.occurred_at_unix_ms;
        let current = pb::CaseState::try_from(state).unwrap_or(pb::CaseState::Unspecified);
        state = state_after(current, kind) as i32;
        match kind {
            Kind::CaseRegistered(r) => {
                order.clone_from(&r.external_ref);
                tx.execute(
                    "INSERT INTO hotline_orders (case_id, order_number, category, unit_code, intake_channel, state, \
                     requested_at, updated_at, expected_at, last_version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, 0)",
                    &[
                        &case,
                        &r.external_ref,
                        &r.category,
                        &r.unit_code,
                        &r.intake_channel,
                        &(state as i16),
                        &time_from_ms(r.received_at_unix_ms),
                        &(r.reply_deadline_unix_ms != 0).then(|| time_from_ms(r.reply_deadline_unix_ms)),
                    ],
                )
                .await?;
            }
            Kind::CaseDispatched(e) => committee.clone_from(&e.committee_id),
            Kind::CaseEscalated(e) => committee.clone_from(&e.committee_id),
            Kind::CaseReturned(_) => committee.clear(),
            Kind::CaseClosed(e) => closure = e.outcome,
            Kind::CaseMerged(_) => closure = pb::ClosureOutcome::Merged as i32,
            Kind::CaseReopened(_) => closure = 0,
            _ => {}
        }
        let Some((callback, text, outcome)) = callback_of(kind) else { continue };
        notes.clone_from(&text);
        let delivery = Uuid::new_v5(&DELIVERY_NAMESPACE, envelope.event_id.as_bytes());
        let mut body = json!({
            "delivery_id": delivery.to_string(),
            "kind": callback,
            "order_number": order,
            "case_id": case.to_string(),
            "case_version": envelope.case_version,
            "occurred_at": rfc3339(envelope.occurred_at_unix_ms),
            "state": state_name(pb::CaseState::try_from(state).unwrap_or(pb::CaseState::Unspecified)).0,
            "text": text,
        });
        if let Some(outcome) = outcome {
            body["outcome"] = json!(outcome);
        }
        if !committee.is_empty() {
            body["committee_id"] = json!(committee);
        }
        let inserted = tx
            .execute(
                "INSERT INTO hotline_deliveries (delivery_id, case_id, order_number, stream_sequence, event_index, kind, body) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &delivery,
                    &case,
                    &order,
                    &i64::try_from(stored.sequence).unwrap_or(i64::MAX),
                    &(index as i32),
                    &callback,
                    &body.to_string(),
                ],
            )
            .await?;
        queued += inserted;
    }
    let last_version = version_before + commit.events.len() as i64;
    tx.execute(
        "UPDATE hotline_orders SET state = $2, closure = $3, committee_id = $4, status_notes = $5, \
         updated_at = $6, last_version = $7 WHERE case_id = $1",
        &[&case, &(state as i16), &(closure as i16), &committee, &notes, &time_from_ms(updated_ms), &last_version],
    )
    .await?;
    tx.commit().await?;
    if queued > 0 {
        metrics::counter!("fengqiao_hotline_callbacks_queued_total").increment(queued);
        shared.queued.notify_one();
    }
    Ok(Applied::Done)
}

/// Runs the delivery worker until `stop` resolves; a round in hand is finished first.
///
/// # Errors
/// None in practice: database trouble is logged and retried.
pub(crate) async fn deliver(
    shared: Arc<Bridged>,
    client: reqwest::Client,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    let poll = Duration::from_millis(shared.settings.poll_ms.max(1));
    // A head that is due but locked by another bridge is looked at again this soon at the earliest.
    let shortest = poll.min(Duration::from_millis(25));
    if shared.settings.callback_url.is_none() {
        tracing::warn!("no hotline callback URL is configured: callbacks wait in the outbox");
    }
    loop {
        let mut posted = 0;
        if let Some(url) = &shared.settings.callback_url {
            match due_heads(&shared.pool).await {
                Ok(due) => {
                    let concurrency = shared.settings.concurrency.max(1);
                    let results: Vec<bool> = futures::stream::iter(due)
                        .map(|id| {
                            let (shared, client) = (&shared, &client);
                            async move {
                                attempt(shared, client, url, id).await.unwrap_or_else(|e| {
                                    tracing::warn!(delivery_id = %id, error = %format!("{e:#}"), "callback attempt not recorded");
                                    false
                                })
                            }
                        })
                        .buffer_unordered(concurrency)
                        .collect()
                        .await;
                    posted = results.iter().filter(|p| **p).count();
                }
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot read the callback outbox"),
            }
        }
        let next_due = match shared.pool.get().await {
            Ok(db) => {
                if let Err(e) = publish_metrics(&db).await {
                    tracing::warn!(error = %e, "cannot read the callback outbox figures");
                }
                next_due_in(&db).await.unwrap_or(None)
            }
            Err(_) => None,
        };
        let wait = match (posted, &shared.settings.callback_url) {
            (1.., _) => Duration::ZERO,
            (0, None) => poll,
            (0, Some(_)) => next_due.map_or(poll, |d| d.clamp(shortest, poll)),
        };
        tokio::select! {
            biased;
            () = &mut stop => return Ok(()),
            () = shared.queued.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// SQL: the delivery `d` is the oldest callback of its order not yet delivered.
const IS_HEAD: &str = "NOT EXISTS (SELECT 1 FROM hotline_deliveries e WHERE e.case_id = d.case_id \
     AND e.status <> 'delivered' AND (e.stream_sequence, e.event_index) < (d.stream_sequence, d.event_index))";

/// Callbacks due now that head their order's queue.
async fn due_heads(pool: &deadpool_postgres::Pool) -> anyhow::Result<Vec<Uuid>> {
    let db = pool.get().await?;
    let rows = db
        .query(
            &format!(
                "SELECT d.delivery_id FROM hotline_deliveries d \
                 WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND {IS_HEAD} \
                 ORDER BY d.stream_sequence, d.event_index LIMIT $1"
            ),
            &[&ROUND],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// How long until the earliest pending head of an order's queue is due (zero when one is due
/// now); callbacks waiting behind a dead letter are never due.
async fn next_due_in(db: &tokio_postgres::Client) -> anyhow::Result<Option<Duration>> {
    let row = db
        .query_one(
            &format!(
                "SELECT EXTRACT(EPOCH FROM (min(d.next_attempt_at) - now()))::float8 FROM hotline_deliveries d \
                 WHERE d.status = 'pending' AND {IS_HEAD}"
            ),
            &[],
        )
        .await?;
    let secs: Option<f64> = row.get(0);
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// What an attempt came to.
enum Attempt {
    Delivered,
    /// Worth trying again (network, timeout, 408, 425, 429, 5xx).
    Retry(String),
    /// The hotline refused it for good (any other answer).
    Refused(String),
}

async fn post(shared: &Bridged, client: &reqwest::Client, url: &str, id: Uuid, body: &str) -> Attempt {
    let now = shared.clock.now().as_second();
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-fengqiao-delivery-id", id.to_string());
    for (name, value) in signature::headers(&shared.settings.outbound_key, now, body.as_bytes()) {
        request = request.header(name, value);
    }
    match request.body(body.to_owned()).send().await {
        Ok(response) if response.status().is_success() => Attempt::Delivered,
        Ok(response) => {
            let status = response.status();
            let text: String = response.text().await.unwrap_or_default().chars().take(REASON_CHARS).collect();
            let reason = format!("HTTP {status}: {}", text.trim());
            if status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429) {
                Attempt::Retry(reason)
            } else {
                Attempt::Refused(format!("the hotline refused the callback: {reason}"))
            }
        }
        Err(e) => Attempt::Retry(format!("cannot reach the hotline: {}", e.without_url())),
    }
}

/// One attempt at delivery `id`, under a row lock so that two workers never post the same callback
/// at once; the outcome is recorded in the same transaction. Returns whether it posted (not when
/// another worker holds the callback or it is no longer due).
async fn attempt(shared: &Bridged, client: &reqwest::Client, url: &str, id: Uuid) -> anyhow::Result<bool> {
    let mut db = shared.pool.get().await?;
    let tx = db.transaction().await?;
    let Some(row) = tx
        .query_opt(
            &format!(
                "SELECT d.body, d.attempts, d.order_number, d.kind FROM hotline_deliveries d \
                 WHERE d.delivery_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= now() AND {IS_HEAD} \
                 FOR UPDATE OF d SKIP LOCKED"
            ),
            &[&id],
        )
        .await?
    else {
        return Ok(false);
    };
    let (body, attempts, order, kind): (String, i32, String, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
    let attempts = attempts.saturating_add(1);
    let max = i32::try_from(shared.settings.max_attempts).unwrap_or(i32::MAX);
    match post(shared, client, url, id, &body).await {
        Attempt::Delivered => {
            tx.execute(
                "UPDATE hotline_deliveries SET status = 'delivered', attempts = $2, delivered_at = clock_timestamp() \
                 WHERE delivery_id = $1",
                &[&id, &attempts],
            )
            .await?;
            metrics::counter!("fengqiao_hotline_callbacks_delivered_total").increment(1);
            tracing::info!(delivery_id = %id, order_number = %order, kind, attempts, "callback delivered");
        }
        Attempt::Retry(reason) if attempts < max => {
            let delay = shared.settings.backoff().delay(id, attempts as u32);
            // From the end of this attempt: `now()` would be the transaction's start, before the POST.
            tx.execute(
                "UPDATE hotline_deliveries SET attempts = $2, last_error = $3, \
                 next_attempt_at = clock_timestamp() + make_interval(secs => $4) WHERE delivery_id = $1",
                &[&id, &attempts, &reason, &delay.as_secs_f64()],
            )
            .await?;
            metrics::counter!("fengqiao_hotline_callback_failures_total").increment(1);
            tracing::warn!(delivery_id = %id, order_number = %order, kind, attempts, retry_in_ms = delay.as_millis() as u64,
                reason = %reason, "callback failed; will retry");
        }
        Attempt::Retry(reason) | Attempt::Refused(reason) => {
            let reason = if attempts >= max && !reason.starts_with("the hotline refused") {
                format!("gave up after {attempts} attempts; last: {reason}")
            } else {
                reason
            };
            tx.execute(
                "UPDATE hotline_deliveries SET status = 'dead', attempts = $2, last_error = $3, dead_at = clock_timestamp() \
                 WHERE delivery_id = $1",
                &[&id, &attempts, &reason],
            )
            .await?;
            metrics::counter!("fengqiao_hotline_callback_failures_total").increment(1);
            metrics::counter!("fengqiao_hotline_dead_letters_total").increment(1);
            tracing::error!(delivery_id = %id, order_number = %order, kind, attempts, reason = %reason,
                "callback parked as a dead letter; `fengqiao hotline redeliver` sends it again");
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// The oldest callback still waiting.
#[derive(Debug, Clone, PartialEq)]
pub struct Oldest {
    pub delivery_id: Uuid,
    pub order_number: String,
    pub kind: String,
    pub queued_at: SystemTime,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// A callback parked after its last attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub delivery_id: Uuid,
    pub order_number: String,
    pub kind: String,
    pub attempts: i32,
    pub reason: String,
    pub dead_at: SystemTime,
}

/// The outbox in figures, for `fengqiao hotline status` and the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbox {
    /// Callbacks not delivered yet and not dead (the backlog).
    pub pending: i64,
    /// Of those, the ones that have failed at least once.
    pub failing: i64,
    pub delivered: i64,
    /// Callbacks parked as dead letters, oldest first.
    pub dead: Vec<DeadLetter>,
    pub oldest_pending: Option<Oldest>,
}

/// Reads the outbox figures, all from one snapshot (one statement), so that a callback moving on
/// while they are read is counted once.
///
/// # Errors
/// Database errors.
pub async fn outbox(db: &impl tokio_postgres::GenericClient) -> anyhow::Result<Outbox> {
    let rows = db
        .query(
            "SELECT * FROM ( \
               (SELECT 1 AS part, delivery_id, order_number, kind, created_at AS at, attempts, last_error, \
                       stream_sequence, event_index, 0::bigint AS pending, 0::bigint AS failing, 0::bigint AS delivered \
                FROM hotline_deliveries WHERE status = 'pending' \
                ORDER BY created_at, stream_sequence, event_index LIMIT 1) \
               UNION ALL \
               SELECT 2, delivery_id, order_number, kind, dead_at, attempts, last_error, stream_sequence, event_index, \
                      0, 0, 0 FROM hotline_deliveries WHERE status = 'dead' \
               UNION ALL \
               SELECT 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
                      count(*) FILTER (WHERE status = 'pending'), \
                      count(*) FILTER (WHERE status = 'pending' AND attempts > 0), \
                      count(*) FILTER (WHERE status = 'delivered') \
               FROM hotline_deliveries) o \
             ORDER BY part, at, stream_sequence, event_index",
            &[],
        )
        .await?;
    let mut outbox = Outbox { pending: 0, failing: 0, delivered: 0, dead: Vec::new(), oldest_pending: None };
    for r in &rows {
        match r.get::<_, i32>(0) {
            0 => (outbox.pending, outbox.failing, outbox.delivered) = (r.get(9), r.get(10), r.get(11)),
            1 => {
                outbox.oldest_pending = Some(Oldest {
                    delivery_id: r.get(1),
                    order_number: r.get(2),
                    kind: r.get(3),
                    queued_at: r.get(4),
                    attempts: r.get(5),
                    last_error: r.get(6),
                });
            }
            _ => outbox.dead.push(DeadLetter {
                delivery_id: r.get(1),
                order_number: r.get(2),
                kind: r.get(3),
                attempts: r.get(5),
                reason: r.get::<_, Option<String>>(6).unwrap_or_default(),
                dead_at: r.get(4),
            }),
        }
    }
    Ok(outbox)
}

/// Sets the outbox gauges: backlog, oldest pending age, failing and dead-letter counts.
async fn publish_metrics(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'pending'), \
                    count(*) FILTER (WHERE status = 'pending' AND attempts > 0), \
                    count(*) FILTER (WHERE status = 'dead'), \
                    coalesce(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE status = 'pending')), 0)::float8 \
             FROM hotline_deliveries WHERE status <> 'delivered'",
            &[],
        )
        .await?;
    metrics::gauge!("fengqiao_hotline_callback_backlog").set(row.get::<_, i64>(0) as f64);
    metrics::gauge!("fengqiao_hotline_callbacks_failing").set(row.get::<_, i64>(1) as f64);
    metrics::gauge!("fengqiao_hotline_dead_letters").set(row.get::<_, i64>(2) as f64);
    metrics::gauge!("fengqiao_hotline_oldest_pending_seconds").set(row.get::<_, f64>(3));
    Ok(())
}

/// The callbacks of one order by status, for the order's status answer.
///
/// # Errors
/// Database errors.
pub(crate) async fn counts_for(
    pool: &deadpool_postgres::Pool,
    case: fengqiao_domain::values::CaseId,
) -> anyhow::Result<serde_json::Value> {
    let db = pool.get().await?;
    let row = db
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'delivered'), \
             count(*) FILTER (WHERE status = 'dead') FROM hotline_deliveries WHERE case_id = $1",
            &[&case.uuid()],
        )
        .await?;
    Ok(json!({ "pending": row.get::<_, i64>(0), "delivered": row.get::<_, i64>(1), "dead": row.get::<_, i64>(2) }))
}

/// Which callbacks to send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeliver {
    /// One callback, dead or waiting for its next attempt.
    One(Uuid),
    /// Every dead letter.
    AllDead,
}

/// Makes callbacks due again with a fresh count of attempts; the running worker sends them, in
/// order per work order. Returns how many.
///
/// # Errors
/// An unknown or already delivered delivery id; database errors.
pub async fn redeliver(db: &impl tokio_postgres::GenericClient, which: Redeliver) -> anyhow::Result<u64> {
    const AGAIN: &str =
        "UPDATE hotline_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), dead_at = NULL";
    match which {
        Redeliver::AllDead => Ok(db.execute(&format!("{AGAIN} WHERE status = 'dead'"), &[]).await?),
        Redeliver::One(id) => {
            let status: Option<String> = db
                .query_opt("SELECT status FROM hotline_deliveries WHERE delivery_id = $1", &[&id])
                .await?
                .map(|r| r.get(0));
            match status.as_deref() {
                None => anyhow::bail!("no callback has delivery id {id}"),
                Some("delivered") => anyhow::bail!("callback {id} was delivered already; the hotline has it"),
                Some(_) => Ok(db.execute(&format!("{AGAIN} WHERE delivery_id = $1"), &[&id]).await?),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stays_under_its_cap() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) };
        let id = Uuid::from_u128(7);
        for n in 1..=10u32 {
            let full = Duration::from_millis(100 * 2u64.pow(n - 1)).min(Duration::from_secs(1));
            let d = b.delay(id, n);
            assert!(d >= full / 2 && d <= full, "attempt {n}: {d:?} not within [{:?}, {full:?}]", full / 2);
        }
        // Two callbacks that failed together do not retry together.
        let spread: std::collections::HashSet<Duration> = (0..20u128).map(|i| b.delay(Uuid::from_u128(i), 3)).collect();
        assert!(spread.len() > 10, "jitter spreads retries: {spread:?}");
    }
}

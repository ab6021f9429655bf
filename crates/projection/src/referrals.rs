//! The `referrals` read model: the six-way linkage queues (六调联动). One row per referral of a
//! case to a partner institution (court, police station, procuratorate, petition bureau,
//! administrative agency, reconsideration body, law firm, justice office), with its status and the
//! partner's acceptance deadline (3 working days by default, from the SLA policy).
//!
//! Queues, per partner institution and per partner kind: pending acceptance, overdue (pending past
//! the acceptance deadline), accepted, declined, returned for mediation, concluded. A page in any
//! queue is one index range scan, keyset-paged. Who may read which queue is the gRPC edge's rule:
//! a partner institution sees only what was referred to it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use fengqiao_domain::deadlines::Clocks;
use fengqiao_domain::event::{Kind, pb};
use fengqiao_domain::sla::Sla;
use fengqiao_eventstore::StoredCommit;

use crate::projector::ReadModel;
use crate::query::{CaseSummary, prefix_pattern, summary as summary_of};
use crate::summary::{self, CaseRow, Step, small, unapplicable};
use crate::{Result, ms_from_time};

/// Name of this read model in `projection_checkpoints` and on the command line.
pub const NAME: &str = "referrals";

/// Sort key of a pending referral without an acceptance deadline: after every real one.
const NO_DUE: i64 = i64::MAX;

/// The linkage queues read model.
#[derive(Debug, Clone)]
pub struct Referrals {
    /// The deadline policy and calendars that give each referral its acceptance deadline.
    sla: Arc<Sla>,
}

impl Referrals {
    /// The read model, acceptance deadlines by `sla`.
    pub fn new(sla: Arc<Sla>) -> Self {
        Self { sla }
    }
}

impl ReadModel for Referrals {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema_sql(&self) -> &'static str {
        concat!(include_str!("schema_summary.sql"), include_str!("schema_referrals.sql"))
    }

    fn views_sql(&self) -> &'static str {
        include_str!("views_referrals.sql")
    }

    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'_>,
        schema: &'a str,
        commits: &'a [StoredCommit],
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'a {
        apply(tx, schema, commits, &self.sla)
    }
}

/// Status of a referral, as stored and as the API numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending = 1,
    Accepted = 2,
    Declined = 3,
    Returned = 4,
    Concluded = 5,
}

/// One referral as the projector holds it while applying a batch.
#[derive(Debug, Clone, PartialEq)]
struct Referral {
    case_id: Uuid,
    referral_id: String,
    partner_kind: i16,
    partner_id: String,
    partner_name: String,
    reason: String,
    status: i16,
    made_at: SystemTime,
    made_by: String,
    made_unit: String,
    acceptance_due_ms: Option<i64>,
    answered_at: Option<SystemTime>,
    answer_reason: String,
    outcome: i16,
    outcome_summary: String,
    sort_key: i64,
}

impl Referral {
    fn made(step: &Step<'_>, e: &pb::ReferralMade) -> Self {
        Self {
            case_id: step.case_id,
            referral_id: e.referral_id.clone(),
            partner_kind: small(e.partner_kind),
            partner_id: e.partner_id.clone(),
            partner_name: e.partner_name.clone(),
            reason: e.reason.clone(),
            status: Status::Pending as i16,
            made_at: step.at,
            made_by: step.envelope.actor.as_ref().map(|a| a.subject.clone()).unwrap_or_default(),
            made_unit: step.envelope.unit_code.clone(),
            acceptance_due_ms: None,
            answered_at: None,
            answer_reason: String::new(),
            outcome: 0,
            outcome_summary: String::new(),
            sort_key: NO_DUE,
        }
    }

    fn answered(&mut self, status: Status, at: SystemTime, reason: &str) {
        self.status = status as i16;
        self.answered_at = Some(at);
        self.answer_reason = reason.to_owned();
        self.acceptance_due_ms = None;
        let ms = ms_from_time(at);
        // Accepted: oldest first, as a worklist; closed: newest first, as an archive.
        self.sort_key = if status == Status::Accepted { ms } else { -ms };
    }
}

async fn apply(tx: &Transaction<'_>, schema: &str, commits: &[StoredCommit], sla: &Sla) -> Result<()> {
    let steps = summary::steps(NAME, commits)?;
    let ids = summary::ids(&steps);
    let table = format!("{schema}.cases");
    let mut rows = summary::load(tx, &table, &ids).await?;
    let mut clocks = load_clocks(tx, schema, &ids).await?;
    let mut referrals = load_referrals(tx, schema, &ids).await?;
    for step in &steps {
        summary::fold(NAME, &mut rows, step)?;
        let case_clocks = clocks.entry(step.case_id).or_default();
        case_clocks.apply(step.kind, step.occurred());
        match step.kind {
            Kind::ReferralMade(e) => {
                referrals.insert((step.case_id, e.referral_id.clone()), Referral::made(step, e));
            }
            Kind::ReferralAccepted(e) => {
                answer(&mut referrals, step, Status::Accepted, &e.referral_id, "")?;
            }
            Kind::ReferralDeclined(e) => {
                answer(&mut referrals, step, Status::Declined, &e.referral_id, &e.reason)?;
            }
            Kind::ReferralReturned(e) => {
                answer(&mut referrals, step, Status::Returned, &e.referral_id, &e.reason)?;
            }
            Kind::ReferralConcluded(e) => {
                let referral = answer(&mut referrals, step, Status::Concluded, &e.referral_id, "")?;
                referral.outcome = small(e.outcome);
                referral.outcome_summary.clone_from(&e.summary);
            }
            _ => {}
        }
        settle_due(step.case_id, case_clocks, &mut referrals, sla);
    }
    let stored: Vec<&CaseRow> = rows.values().collect();
    summary::store(tx, &table, &stored).await?;
    store_clocks(tx, schema, &clocks).await?;
    store_referrals(tx, schema, &referrals).await
}

/// Records the partner's answer on referral `id` of the step's case.
///
/// # Errors
/// [`crate::Error::Unapplicable`] when the case has no such referral.
fn answer<'r>(
    referrals: &'r mut HashMap<(Uuid, String), Referral>,
    step: &Step<'_>,
    status: Status,
    id: &str,
    reason: &str,
) -> Result<&'r mut Referral> {
    let referral = referrals.get_mut(&(step.case_id, id.to_owned())).ok_or_else(|| {
        unapplicable(NAME, step.sequence, format!("referral {id} of case {} was never made", step.case_id))
    })?;
    referral.answered(status, step.at, reason);
    Ok(referral)
}

/// Sets the acceptance deadline of every pending referral of `case_id` from its clocks.
fn settle_due(case_id: Uuid, clocks: &Clocks, referrals: &mut HashMap<(Uuid, String), Referral>, sla: &Sla) {
    let mut pending = referrals.values_mut().filter(|r| r.case_id == case_id && r.status == Status::Pending as i16);
    let Some(first) = pending.next() else { return };
    let deadlines = clocks.deadlines(sla);
    for referral in std::iter::once(first).chain(pending) {
        let due = deadlines
            .iter()
            .find(|d| d.clock == pb::Clock::ReferralAcceptance && d.referral_id == referral.referral_id)
            .map(|d| d.due_at.as_millisecond());
        referral.acceptance_due_ms = due;
        referral.sort_key = due.unwrap_or(NO_DUE);
    }
}

async fn load_clocks(tx: &Transaction<'_>, schema: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Clocks>> {
    let mut clocks = HashMap::with_capacity(ids.len());
    for r in
        tx.query(&format!("SELECT case_id, clocks FROM {schema}.case_clocks WHERE case_id = ANY($1)"), &[&ids]).await?
    {
        let id: Uuid = r.get(0);
        clocks.insert(id, summary::clocks_from_json(NAME, id, r.get(1))?);
    }
    Ok(clocks)
}

async fn store_clocks(tx: &Transaction<'_>, schema: &str, clocks: &HashMap<Uuid, Clocks>) -> Result<()> {
    let ids: Vec<Uuid> = clocks.keys().copied().collect();
    let values = clocks.values().map(summary::clocks_to_json).collect::<Result<Vec<_>>>()?;
    tx.execute(
        &format!(
            "INSERT INTO {schema}.case_clocks (case_id, clocks) SELECT * FROM UNNEST($1::uuid[], $2::jsonb[]) \
             ON CONFLICT (case_id) DO UPDATE SET clocks = EXCLUDED.clocks"
        ),
        &[&ids, &values],
    )
    .await?;
    Ok(())
}

const REFERRAL_COLUMNS: &str = "case_id, referral_id, partner_kind, partner_id, partner_name, reason, status, made_at, \
    made_by, made_unit, acceptance_due_ms, answered_at, answer_reason, outcome, outcome_summary, sort_key";

async fn load_referrals(tx: &Transaction<'_>, schema: &str, ids: &[Uuid]) -> Result<HashMap<(Uuid, String), Referral>> {
    let mut referrals = HashMap::new();
    for r in
        tx.query(&format!("SELECT {REFERRAL_COLUMNS} FROM {schema}.referrals WHERE case_id = ANY($1)"), &[&ids]).await?
    {
        let referral = Referral {
            case_id: r.get(0),
            referral_id: r.get(1),
            partner_kind: r.get(2),
            partner_id: r.get(3),
            partner_name: r.get(4),
            reason: r.get(5),
            status: r.get(6),
            made_at: r.get(7),
            made_by: r.get(8),
            made_unit: r.get(9),
            acceptance_due_ms: r.get(10),
            answered_at: r.get(11),
            answer_reason: r.get(12),
            outcome: r.get(13),
            outcome_summary: r.get(14),
            sort_key: r.get(15),
        };
        referrals.insert((referral.case_id, referral.referral_id.clone()), referral);
    }
    Ok(referrals)
}

async fn store_referrals(
    tx: &Transaction<'_>,
    schema: &str,
    referrals: &HashMap<(Uuid, String), Referral>,
) -> Result<()> {
    if referrals.is_empty() {
        return Ok(());
    }
    let rows: Vec<&Referral> = referrals.values().collect();
    macro_rules! col {
        ($f:ident) => {
            rows.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    tx.execute(
        &format!(
            "INSERT INTO {schema}.referrals ({REFERRAL_COLUMNS}) SELECT * FROM UNNEST($1::uuid[], $2::text[], \
             $3::int2[], $4::text[], $5::text[], $6::text[], $7::int2[], $8::timestamptz[], $9::text[], $10::text[], \
             $11::int8[], $12::timestamptz[], $13::text[], $14::int2[], $15::text[], $16::int8[]) \
             ON CONFLICT (case_id, referral_id) DO UPDATE SET status = EXCLUDED.status, \
             acceptance_due_ms = EXCLUDED.acceptance_due_ms, answered_at = EXCLUDED.answered_at, \
             answer_reason = EXCLUDED.answer_reason, outcome = EXCLUDED.outcome, \
             outcome_summary = EXCLUDED.outcome_summary, sort_key = EXCLUDED.sort_key"
        ),
        &[
            &col!(case_id),
            &col!(referral_id),
            &col!(partner_kind),
            &col!(partner_id),
            &col!(partner_name),
            &col!(reason),
            &col!(status),
            &col!(made_at),
            &col!(made_by),
            &col!(made_unit),
            &col!(acceptance_due_ms),
            &col!(answered_at),
            &col!(answer_reason),
            &col!(outcome),
            &col!(outcome_summary),
            &col!(sort_key),
        ],
    )
    .await?;
    Ok(())
}

/// Which linkage queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// Awaiting the partner's acceptance (overdue ones included), soonest deadline first.
    Pending,
    /// Pending past the acceptance deadline.
    Overdue,
    /// Accepted and being handled, oldest acceptance first.
    Accepted,
    /// Declined by the partner, newest first.
    Declined,
    /// Returned for mediation, newest first.
    Returned,
    /// Concluded with an outcome, newest first.
    Concluded,
}

impl Queue {
    fn status(self) -> Status {
        match self {
            Self::Pending | Self::Overdue => Status::Pending,
            Self::Accepted => Status::Accepted,
            Self::Declined => Status::Declined,
            Self::Returned => Status::Returned,
            Self::Concluded => Status::Concluded,
        }
    }
}

/// Keyset position: the sort key of the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort_key: i64,
    pub case_id: Uuid,
    pub referral_id: String,
}

impl Cursor {
    /// The cursor as an opaque page token.
    pub fn token(&self) -> String {
        format!("{}.{}.{}", self.sort_key, self.case_id, self.referral_id)
    }

    /// Parses a token made by [`Cursor::token`]; `None` when it is not one.
    pub fn parse(token: &str) -> Option<Self> {
        let mut parts = token.splitn(3, '.');
        let sort_key = parts.next()?.parse().ok()?;
        let case_id = Uuid::parse_str(parts.next()?).ok()?;
        let referral_id = parts.next().filter(|r| !r.is_empty())?.to_owned();
        Some(Self { sort_key, case_id, referral_id })
    }
}

/// What a linkage queue page asks for. At least one of `partner_kind` and `partner_id` is set.
#[derive(Debug, Clone)]
pub struct Page {
    pub partner_kind: Option<i32>,
    pub partner_id: Option<String>,
    /// Only referrals of cases that arose in, or are owned within, this unit prefix; `None` for a
    /// partner institution reading its own queue.
    pub unit_prefix: Option<String>,
    pub queue: Queue,
    /// The present instant (ms), for the overdue queue.
    pub now_ms: i64,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// A referral as a linkage queue shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub case: CaseSummary,
    pub referral_id: String,
    pub partner_kind: i32,
    pub partner_id: String,
    pub partner_name: String,
    pub reason: String,
    /// [`Status`] as a number.
    pub status: i32,
    pub made_at_ms: i64,
    pub made_by: String,
    pub made_unit: String,
    pub acceptance_due_ms: Option<i64>,
    pub answered_at_ms: Option<i64>,
    pub answer_reason: String,
    pub outcome: i32,
    pub outcome_summary: String,
}

const ITEM: &str = "case_id, state, channel, external_ref, category, description, unit_code, address, urgency, \
    risk_signals, parties, tier, committee_id, committee_unit_code, owner_unit, risk_level, version, registered_at, \
    updated_at, referral_id, partner_kind, partner_id, partner_name, reason, status, made_at, made_by, made_unit, \
    acceptance_due_ms, answered_at, answer_reason, outcome, outcome_summary, sort_key";

/// A page of a linkage queue, with the cursor after each item.
///
/// # Errors
/// Database errors.
pub async fn list(client: &impl GenericClient, q: &Page) -> Result<Vec<(Item, Cursor)>> {
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut add = |value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    let status = add(Box::new(q.queue.status() as i16));
    let mut sql = match (&q.partner_id, q.partner_kind) {
        (Some(partner), kind) => {
            let mut s = format!(
                "SELECT {ITEM} FROM linkage_referral_items WHERE partner_id = {} AND status = {status}",
                add(Box::new(partner.clone()))
            );
            if let Some(kind) = kind {
                s.push_str(&format!(" AND partner_kind = {}", add(Box::new(small(kind)))));
            }
            s
        }
        (None, kind) => format!(
            "SELECT {ITEM} FROM linkage_referral_items WHERE partner_kind = {} AND status = {status}",
            add(Box::new(small(kind.unwrap_or_default())))
        ),
    };
    if q.queue == Queue::Overdue {
        sql.push_str(&format!(" AND sort_key < {}", add(Box::new(q.now_ms))));
    }
    if let Some(prefix) = &q.unit_prefix {
        let p = add(Box::new(prefix_pattern(prefix)));
        sql.push_str(&format!(" AND (unit_code LIKE {p} OR committee_unit_code LIKE {p})"));
    }
    if let Some(c) = &q.after {
        let (k, id, r) = (add(Box::new(c.sort_key)), add(Box::new(c.case_id)), add(Box::new(c.referral_id.clone())));
        sql.push_str(&format!(" AND (sort_key, case_id, referral_id) > ({k}, {id}, {r})"));
    }
    sql.push_str(&format!(" ORDER BY sort_key, case_id, referral_id LIMIT {}", add(Box::new(i64::from(q.limit)))));
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    let rows = client.query(&sql, &refs).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let item = Item {
                case: summary_of(r),
                referral_id: r.get(19),
                partner_kind: i32::from(r.get::<_, i16>(20)),
                partner_id: r.get(21),
                partner_name: r.get(22),
                reason: r.get(23),
                status: i32::from(r.get::<_, i16>(24)),
                made_at_ms: ms_from_time(r.get(25)),
                made_by: r.get(26),
                made_unit: r.get(27),
                acceptance_due_ms: r.get(28),
                answered_at_ms: r.get::<_, Option<SystemTime>>(29).map(ms_from_time),
                answer_reason: r.get(30),
                outcome: i32::from(r.get::<_, i16>(31)),
                outcome_summary: r.get(32),
            };
            let cursor =
                Cursor { sort_key: r.get(33), case_id: item.case.case_id, referral_id: item.referral_id.clone() };
            (item, cursor)
        })
        .collect())
}

//! The `work_queues` read model: what a committee and each of its mediators have to do.
//!
//! Every open case owned by a committee is on that committee's queue; once mediators are assigned
//! it is also on each mediator's queue. A case leaves the queues when it is closed or merged, when
//! it is returned (退单, no committee owns it), and a mediator's queue when escalation hands the
//! case to another committee. Each queue entry carries its sort keys (due time, priority,
//! registration time), so one page in any order is one index range scan, keyset-paged.
//!
//! After each committed batch the model announces what changed, commit by commit, to in-process
//! watchers ([`QueueChange`], published on a broadcast channel), so a committee's screen updates
//! without polling; commits applied without this process announcing them (by another instance,
//! or a rebuild) are announced as skipped, so watchers reload instead of missing them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::broadcast;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use fengqiao_domain::deadlines::{Clocks, Deadline, primary_due};
use fengqiao_domain::event::{Kind, pb};
use fengqiao_domain::sla::Sla;
use fengqiao_eventstore::StoredCommit;

use crate::projector::ReadModel;
use crate::query::{CaseSummary, prefix_pattern, summary as summary_of};
use crate::summary::{self, CaseRow, Step, small};
use crate::{Result, ms_from_time};

/// Name of this read model in `projection_checkpoints` and on the command line.
pub const NAME: &str = "work_queues";

/// Sort key of an entry without a deadline: after every real due time.
pub const NO_DUE: i64 = i64::MAX;

/// The committee and mediator work queues.
#[derive(Debug, Clone)]
pub struct WorkQueues {
    /// The deadline policy and calendars that give each case its due time.
    sla: Arc<Sla>,
    /// Where committed changes are announced; `None` projects silently (rebuilds, tools).
    announce: Option<broadcast::Sender<Arc<Announcement>>>,
    /// Changes of the batch being applied, published by [`ReadModel::committed`].
    pending: Arc<Mutex<Vec<QueueChange>>>,
}

impl WorkQueues {
    /// The read model, due times by `sla`, announcing nothing (rebuilds, migrations, tools).
    pub fn new(sla: Arc<Sla>) -> Self {
        Self { sla, announce: None, pending: Arc::default() }
    }

    /// The read model, announcing each committed change on `announce`.
    pub fn announcing(sla: Arc<Sla>, announce: broadcast::Sender<Arc<Announcement>>) -> Self {
        Self { sla, announce: Some(announce), pending: Arc::default() }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<QueueChange>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ReadModel for WorkQueues {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema_sql(&self) -> &'static str {
        concat!(include_str!("schema_summary.sql"), include_str!("schema_work_queues.sql"))
    }

    fn views_sql(&self) -> &'static str {
        include_str!("views_work_queues.sql")
    }

    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'_>,
        schema: &'a str,
        commits: &'a [StoredCommit],
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'a {
        self.apply_batch(tx, schema, commits)
    }

    fn committed(&self) {
        let changes = std::mem::take(&mut *self.pending());
        if let Some(announce) = &self.announce {
            for change in changes {
                // No receiver is not an error: nobody is watching.
                let _ = announce.send(Arc::new(Announcement::Changed(change)));
            }
        }
    }

    fn skipped(&self, through: u64) {
        if let Some(announce) = &self.announce {
            let _ = announce.send(Arc::new(Announcement::Skipped { through }));
        }
    }
}

/// Which kind of queue an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueKind {
    /// A committee's queue; the queue id is the committee id.
    Committee = 1,
    /// A mediator's queue; the queue id is the mediator id.
    Mediator = 2,
    /// Every open case by the unit that owns it (not stored as entries; for watchers of a unit
    /// subtree, such as a dispatcher's triage screen). The queue id is the owner unit.
    Unit = 3,
}

/// One queue a case is on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Membership {
    pub kind: QueueKind,
    pub queue_id: String,
    /// Unit the entry is scoped by: the owning committee's unit (or the owner unit).
    pub unit: String,
}

/// A case as a work queue shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkItem {
    pub summary: CaseSummary,
    pub mediator_ids: Vec<String>,
    /// 1 normal, 2 high, 3 critical.
    pub priority: i32,
    /// The deadline that governs the case now, if any.
    pub due_at_ms: Option<i64>,
    /// Which clock `due_at_ms` belongs to (a `pb::Clock` value).
    pub due_clock: i32,
}

/// What the projector announces to in-process watchers, in stream order.
// Sent behind an `Arc`, so the size of the larger variant costs nothing per receiver.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Announcement {
    /// What one commit changed.
    Changed(QueueChange),
    /// The read model applied commits up to `through` that were never announced here (another
    /// instance's projector applied them, or a rebuild swapped them in): watchers must reload
    /// the queue at `through`.
    Skipped { through: u64 },
}

/// What one commit changed on the queues, announced after the projector committed it.
#[derive(Debug, Clone)]
pub struct QueueChange {
    /// Stream sequence of the commit.
    pub sequence: u64,
    pub case_id: Uuid,
    /// Queues the case was on before the commit.
    pub before: Vec<Membership>,
    /// Queues the case is on after it.
    pub after: Vec<Membership>,
    /// The case after the commit.
    pub item: WorkItem,
}

/// Priority of a case: 3 (critical) for an emergency, a high risk level, or a violence, 民转刑 or
/// self-harm signal; 2 (high) for an urgent case, a medium risk level, or a group-incident or
/// repeated-petition signal; 1 (normal) otherwise.
pub fn priority(urgency: i32, risk_level: i32, risk_signals: &[i32]) -> i32 {
    use pb::RiskSignal as R;
    let signal = |s: R| risk_signals.contains(&(s as i32));
    if urgency == pb::Urgency::Emergency as i32
        || risk_level == pb::RiskLevel::High as i32
        || signal(R::Violence)
        || signal(R::CivilToCriminal)
        || signal(R::SelfHarm)
    {
        3
    } else if urgency == pb::Urgency::Urgent as i32
        || risk_level == pb::RiskLevel::Medium as i32
        || signal(R::GroupIncident)
        || signal(R::RepeatedPetition)
    {
        2
    } else {
        1
    }
}

/// What the queues keep about a case beyond its summary.
#[derive(Debug, Clone, Default, PartialEq)]
struct Work {
    mediator_ids: Vec<String>,
    due_at_ms: Option<i64>,
    due_clock: i16,
    dispatched_at: Option<SystemTime>,
    accepted_at: Option<SystemTime>,
    clocks: Clocks,
}

/// Whether `clock` is the committee's to meet. A partner's acceptance clock and the parties'
/// judicial-confirmation window run on the case too, but do not make the committee's work due.
fn committee_clock(clock: pb::Clock) -> bool {
    !matches!(clock, pb::Clock::ReferralAcceptance | pb::Clock::JudicialConfirmationWindow)
}

/// The deadline a work queue sorts a case by: of the committee's running deadlines, the one
/// [`primary_due`] picks (the earliest, breached ones included).
pub fn governing(deadlines: &[Deadline]) -> Option<&Deadline> {
    let own: Vec<Deadline> = deadlines.iter().filter(|d| committee_clock(d.clock)).cloned().collect();
    let due = primary_due(&own)?;
    deadlines.iter().find(|d| committee_clock(d.clock) && d.paused_since.is_none() && d.due_at == due)
}

impl Work {
    fn apply(&mut self, step: &Step<'_>) {
        self.clocks.apply(step.kind, step.occurred());
        match step.kind {
            Kind::CaseDispatched(_) => {
                self.dispatched_at = Some(step.at);
                self.accepted_at = None;
            }
            Kind::CaseEscalated(_) => {
                self.dispatched_at = Some(step.at);
                self.accepted_at = None;
                // The next tier's committee assigns its own mediators.
                self.mediator_ids.clear();
            }
            Kind::CaseReturned(_) => {
                self.dispatched_at = None;
                self.accepted_at = None;
            }
            Kind::CaseAccepted(_) => self.accepted_at = Some(step.at),
            Kind::MediatorsAssigned(e) => {
                for m in &e.mediator_ids {
                    if !self.mediator_ids.contains(m) {
                        self.mediator_ids.push(m.clone());
                    }
                }
            }
            _ => {}
        }
    }

    /// Recomputes the deadline that governs the case now (none once it is closed).
    fn settle_due(&mut self, row: &CaseRow, sla: &Sla) {
        let deadlines = if row.is_open() { self.clocks.deadlines(sla) } else { Vec::new() };
        let due = governing(&deadlines);
        self.due_at_ms = due.map(|d| d.due_at.as_millisecond());
        self.due_clock = due.map_or(0, |d| d.clock as i16);
    }
}

fn risks(row: &CaseRow) -> Vec<i32> {
    crate::query::risks_from_json(&row.risk_signals)
}

fn row_priority(row: &CaseRow) -> i32 {
    priority(i32::from(row.urgency), i32::from(row.risk_level), &risks(row))
}

/// The queues a case is on.
fn memberships(row: &CaseRow, work: &Work) -> Vec<Membership> {
    if !row.is_open() {
        return Vec::new();
    }
    let mut on = vec![Membership {
        kind: QueueKind::Unit,
        queue_id: row.owner_unit().to_owned(),
        unit: row.owner_unit().to_owned(),
    }];
    if !row.committee_id.is_empty() {
        let unit = row.committee_unit_code.clone();
        on.push(Membership { kind: QueueKind::Committee, queue_id: row.committee_id.clone(), unit: unit.clone() });
        for m in &work.mediator_ids {
            on.push(Membership { kind: QueueKind::Mediator, queue_id: m.clone(), unit: unit.clone() });
        }
    }
    on
}

fn item(row: &CaseRow, work: &Work) -> WorkItem {
    WorkItem {
        summary: row.to_summary(),
        mediator_ids: work.mediator_ids.clone(),
        priority: row_priority(row),
        due_at_ms: work.due_at_ms,
        due_clock: i32::from(work.due_clock),
    }
}

impl WorkQueues {
    /// Applies a batch of commits to the tables in `schema`.
    ///
    /// # Errors
    /// [`crate::Error::Unapplicable`] for a commit that does not fit the stored state; database
    /// errors otherwise.
    async fn apply_batch(&self, tx: &Transaction<'_>, schema: &str, commits: &[StoredCommit]) -> Result<()> {
        self.pending().clear();
        let steps = summary::steps(NAME, commits)?;
        let ids = summary::ids(&steps);
        let table = format!("{schema}.cases");
        let mut rows = summary::load(tx, &table, &ids).await?;
        let mut works = load_work(tx, schema, &ids).await?;
        let announcing = self.announce.is_some();
        let mut changes = Vec::new();
        let mut before = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let id = step.case_id;
            if announcing && (i == 0 || steps[i - 1].sequence != step.sequence) {
                // Where the case stood before the commit's first event.
                before = match rows.get(&id) {
                    Some(row) => memberships(row, &works.get(&id).cloned().unwrap_or_default()),
                    None => Vec::new(),
                };
            }
            let row = summary::fold(NAME, &mut rows, step)?;
            let work = works.entry(id).or_default();
            work.apply(step);
            work.settle_due(row, &self.sla);
            if announcing && steps.get(i + 1).is_none_or(|next| next.sequence != step.sequence) {
                let after = memberships(row, work);
                if !(before.is_empty() && after.is_empty()) {
                    let before = std::mem::take(&mut before);
                    changes.push(QueueChange {
                        sequence: step.sequence,
                        case_id: id,
                        before,
                        after,
                        item: item(row, work),
                    });
                }
            }
        }
        let stored: Vec<&CaseRow> = rows.values().collect();
        summary::store(tx, &table, &stored).await?;
        store_work(tx, schema, &rows, &works).await?;
        store_entries(tx, schema, &ids, &rows, &works).await?;
        *self.pending() = changes;
        Ok(())
    }
}

async fn load_work(tx: &Transaction<'_>, schema: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Work>> {
    let mut works = HashMap::with_capacity(ids.len());
    for r in tx
        .query(
            &format!(
                "SELECT case_id, mediator_ids, due_at_ms, due_clock, dispatched_at, accepted_at, clocks \
                 FROM {schema}.case_work WHERE case_id = ANY($1)"
            ),
            &[&ids],
        )
        .await?
    {
        let id: Uuid = r.get(0);
        let mediators: serde_json::Value = r.get(1);
        let clocks = summary::clocks_from_json(NAME, id, r.get(6))?;
        works.insert(
            id,
            Work {
                mediator_ids: strings(&mediators),
                due_at_ms: r.get(2),
                due_clock: r.get(3),
                dispatched_at: r.get(4),
                accepted_at: r.get(5),
                clocks,
            },
        );
    }
    Ok(works)
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

async fn store_work(
    tx: &Transaction<'_>,
    schema: &str,
    rows: &HashMap<Uuid, CaseRow>,
    works: &HashMap<Uuid, Work>,
) -> Result<()> {
    let mut ids = Vec::with_capacity(works.len());
    let mut mediators = Vec::with_capacity(works.len());
    let mut priorities = Vec::with_capacity(works.len());
    let mut due = Vec::with_capacity(works.len());
    let mut clock = Vec::with_capacity(works.len());
    let mut dispatched = Vec::with_capacity(works.len());
    let mut accepted = Vec::with_capacity(works.len());
    let mut clocks = Vec::with_capacity(works.len());
    for (id, w) in works {
        let Some(row) = rows.get(id) else { continue };
        ids.push(*id);
        mediators.push(serde_json::Value::from(w.mediator_ids.clone()));
        priorities.push(small(row_priority(row)));
        due.push(w.due_at_ms);
        clock.push(w.due_clock);
        dispatched.push(w.dispatched_at);
        accepted.push(w.accepted_at);
        clocks.push(summary::clocks_to_json(&w.clocks)?);
    }
    tx.execute(
        &format!(
            "INSERT INTO {schema}.case_work (case_id, mediator_ids, priority, due_at_ms, due_clock, dispatched_at, \
             accepted_at, clocks) \
             SELECT * FROM UNNEST($1::uuid[], $2::jsonb[], $3::int2[], $4::int8[], $5::int2[], $6::timestamptz[], \
             $7::timestamptz[], $8::jsonb[]) \
             ON CONFLICT (case_id) DO UPDATE SET mediator_ids = EXCLUDED.mediator_ids, priority = EXCLUDED.priority, \
             due_at_ms = EXCLUDED.due_at_ms, due_clock = EXCLUDED.due_clock, dispatched_at = EXCLUDED.dispatched_at, \
             accepted_at = EXCLUDED.accepted_at, clocks = EXCLUDED.clocks"
        ),
        &[&ids, &mediators, &priorities, &due, &clock, &dispatched, &accepted, &clocks],
    )
    .await?;
    Ok(())
}

/// Replaces the queue entries of the cases in `ids` by what their rows say now.
async fn store_entries(
    tx: &Transaction<'_>,
    schema: &str,
    ids: &[Uuid],
    rows: &HashMap<Uuid, CaseRow>,
    works: &HashMap<Uuid, Work>,
) -> Result<()> {
    tx.execute(&format!("DELETE FROM {schema}.queue_entries WHERE case_id = ANY($1)"), &[&ids]).await?;
    let mut kind = Vec::new();
    let mut queue = Vec::new();
    let mut case = Vec::new();
    let mut unit = Vec::new();
    let mut state = Vec::new();
    let mut prio = Vec::new();
    let mut rank = Vec::new();
    let mut urgency = Vec::new();
    let mut risk = Vec::new();
    let mut category = Vec::new();
    let mut due = Vec::new();
    let mut registered = Vec::new();
    for id in ids {
        let (Some(row), Some(work)) = (rows.get(id), works.get(id)) else { continue };
        let p = small(row_priority(row));
        for m in memberships(row, work).into_iter().filter(|m| m.kind != QueueKind::Unit) {
            kind.push(m.kind as i16);
            queue.push(m.queue_id);
            case.push(*id);
            unit.push(m.unit);
            state.push(row.state);
            prio.push(p);
            rank.push(4 - p);
            urgency.push(row.urgency);
            risk.push(row.risk_level);
            category.push(row.category.clone());
            due.push(work.due_at_ms.unwrap_or(NO_DUE));
            registered.push(ms_from_time(row.registered_at));
        }
    }
    if case.is_empty() {
        return Ok(());
    }
    tx.execute(
        &format!(
            "INSERT INTO {schema}.queue_entries (queue_kind, queue_id, case_id, unit, state, priority, priority_rank, \
             urgency, risk_level, category, due_key, registered_at_ms) \
             SELECT * FROM UNNEST($1::int2[], $2::text[], $3::uuid[], $4::text[], $5::int2[], $6::int2[], $7::int2[], \
             $8::int2[], $9::int2[], $10::text[], $11::int8[], $12::int8[])"
        ),
        &[&kind, &queue, &case, &unit, &state, &prio, &rank, &urgency, &risk, &category, &due, &registered],
    )
    .await?;
    Ok(())
}

/// Order of a queue page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueOrder {
    /// Soonest due first; cases without a deadline last.
    #[default]
    Due,
    /// Most urgent priority first, then soonest due.
    Priority,
    /// Oldest registration first.
    Registered,
}

/// Keyset position: the sort key of the last entry of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Due { due_key: i64, case_id: Uuid },
    Priority { rank: i16, due_key: i64, case_id: Uuid },
    Registered { at_ms: i64, case_id: Uuid },
}

impl Cursor {
    /// The cursor as an opaque page token.
    pub fn token(&self) -> String {
        match self {
            Self::Due { due_key, case_id } => format!("d.{due_key}.{case_id}"),
            Self::Priority { rank, due_key, case_id } => format!("p.{rank}.{due_key}.{case_id}"),
            Self::Registered { at_ms, case_id } => format!("r.{at_ms}.{case_id}"),
        }
    }

    /// Parses a page token made by [`Cursor::token`] for a page in `order`; `None` when it is not one.
    pub fn parse(token: &str, order: QueueOrder) -> Option<Self> {
        let parts: Vec<&str> = token.split('.').collect();
        match (order, parts.as_slice()) {
            (QueueOrder::Due, ["d", due, id]) => {
                Some(Self::Due { due_key: due.parse().ok()?, case_id: Uuid::parse_str(id).ok()? })
            }
            (QueueOrder::Priority, ["p", rank, due, id]) => Some(Self::Priority {
                rank: rank.parse().ok()?,
                due_key: due.parse().ok()?,
                case_id: Uuid::parse_str(id).ok()?,
            }),
            (QueueOrder::Registered, ["r", at, id]) => {
                Some(Self::Registered { at_ms: at.parse().ok()?, case_id: Uuid::parse_str(id).ok()? })
            }
            _ => None,
        }
    }
}

/// What a queue page asks for.
#[derive(Debug, Clone)]
pub struct QueuePage {
    pub kind: QueueKind,
    pub queue_id: String,
    /// Significant prefix of the unit subtree the caller may see.
    pub unit_prefix: String,
    pub states: Vec<i32>,
    pub priorities: Vec<i32>,
    pub risk_levels: Vec<i32>,
    pub urgencies: Vec<i32>,
    pub category: Option<String>,
    /// Only entries due before this instant (ms): the overdue filter.
    pub due_before: Option<i64>,
    pub order: QueueOrder,
    pub after: Option<Cursor>,
    pub limit: u32,
}

const ITEM: &str = "case_id, state, channel, external_ref, category, description, unit_code, address, urgency, \
    risk_signals, parties, tier, committee_id, committee_unit_code, owner_unit, risk_level, version, registered_at, \
    updated_at, mediator_ids, priority, due_at_ms, due_clock, priority_rank, due_key, registered_at_ms";

/// The page's SQL and parameters: one index range of `work_queue_items` in the page's order.
fn page_sql(q: &QueuePage) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut sql =
        format!("SELECT {ITEM} FROM work_queue_items WHERE queue_kind = $1 AND queue_id = $2 AND unit LIKE $3");
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> =
        vec![Box::new(q.kind as i16), Box::new(q.queue_id.clone()), Box::new(prefix_pattern(&q.unit_prefix))];
    let mut add = |sql: &mut String, clause: &str, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        sql.push_str(&clause.replace('#', &format!("${}", params.len())));
    };
    let smalls = |v: &[i32]| -> Vec<i16> { v.iter().filter_map(|x| i16::try_from(*x).ok()).collect() };
    if !q.states.is_empty() {
        add(&mut sql, " AND entry_state = ANY(#)", Box::new(smalls(&q.states)));
    }
    if !q.priorities.is_empty() {
        add(&mut sql, " AND priority = ANY(#)", Box::new(smalls(&q.priorities)));
    }
    if !q.risk_levels.is_empty() {
        add(&mut sql, " AND entry_risk_level = ANY(#)", Box::new(smalls(&q.risk_levels)));
    }
    if !q.urgencies.is_empty() {
        add(&mut sql, " AND entry_urgency = ANY(#)", Box::new(smalls(&q.urgencies)));
    }
    if let Some(category) = &q.category {
        add(&mut sql, " AND entry_category = #", Box::new(category.clone()));
    }
    if let Some(before) = q.due_before {
        add(&mut sql, " AND due_key < #", Box::new(before));
    }
    match q.after {
        Some(Cursor::Due { due_key, case_id }) => {
            add(&mut sql, " AND (due_key, case_id) > (#", Box::new(due_key));
            add(&mut sql, ", #)", Box::new(case_id));
        }
        Some(Cursor::Priority { rank, due_key, case_id }) => {
            add(&mut sql, " AND (priority_rank, due_key, case_id) > (#", Box::new(rank));
            add(&mut sql, ", #", Box::new(due_key));
            add(&mut sql, ", #)", Box::new(case_id));
        }
        Some(Cursor::Registered { at_ms, case_id }) => {
            add(&mut sql, " AND (registered_at_ms, case_id) > (#", Box::new(at_ms));
            add(&mut sql, ", #)", Box::new(case_id));
        }
        None => {}
    }
    sql.push_str(match q.order {
        QueueOrder::Due => " ORDER BY due_key, case_id",
        QueueOrder::Priority => " ORDER BY priority_rank, due_key, case_id",
        QueueOrder::Registered => " ORDER BY registered_at_ms, case_id",
    });
    add(&mut sql, " LIMIT #", Box::new(i64::from(q.limit)));
    (sql, params)
}

/// A page of a committee's or a mediator's queue, with the cursor after each item.
///
/// # Errors
/// Database errors.
pub async fn list(client: &impl GenericClient, q: &QueuePage) -> Result<Vec<(WorkItem, Cursor)>> {
    let (sql, params) = page_sql(q);
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    let rows = client.query(&sql, &refs).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let summary = summary_of(r);
            let case_id = summary.case_id;
            let mediators: serde_json::Value = r.get(19);
            let item = WorkItem {
                summary,
                mediator_ids: strings(&mediators),
                priority: i32::from(r.get::<_, i16>(20)),
                due_at_ms: r.get(21),
                due_clock: i32::from(r.get::<_, i16>(22)),
            };
            let cursor = match q.order {
                QueueOrder::Due => Cursor::Due { due_key: r.get(24), case_id },
                QueueOrder::Priority => Cursor::Priority { rank: r.get(23), due_key: r.get(24), case_id },
                QueueOrder::Registered => Cursor::Registered { at_ms: r.get(25), case_id },
            };
            (item, cursor)
        })
        .collect())
}

/// The query plan of [`list`] for `q`, as PostgreSQL's `EXPLAIN (FORMAT JSON)` gives it: how an
/// operator (or a test) checks that a page stays an index range scan.
///
/// # Errors
/// Database errors.
pub async fn explain(client: &impl GenericClient, q: &QueuePage) -> Result<serde_json::Value> {
    let (sql, params) = page_sql(q);
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    let row = client.query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &refs).await?;
    Ok(row.get(0))
}

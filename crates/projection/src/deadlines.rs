//! The `deadlines` read model: every open deadline of every case — each clock that runs or is
//! paused and that the SLA policy applies to — with its warning and due times, whether it has
//! warned or been breached, and who holds the case. Derived only from the events and the policy
//! ([`fengqiao_domain::deadlines`]), so a rebuild reconstructs it exactly.
//!
//! Two readers: the timers scan it for what is due ([`due`], one index range over `next_fire_ms`)
//! and fire through the command path; the escalation board lists warned and breached deadlines
//! of a unit subtree, oldest due time first ([`board`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use fengqiao_domain::deadlines::{Clocks, Deadline};
use fengqiao_domain::event::{Kind, pb};
use fengqiao_domain::sla::Sla;
use fengqiao_eventstore::StoredCommit;

use crate::Result;
use crate::projector::ReadModel;
use crate::query::prefix_pattern;
use crate::summary::{self, CaseRow, small};

/// Name of this read model in `projection_checkpoints` and on the command line.
pub const NAME: &str = "deadlines";

/// Where a deadline stands, as stored and as the API numbers it (`EscalationState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Running (or paused); nothing has fired.
    Running = 1,
    /// The warning has fired; the deadline has not passed (or its breach is not recorded yet).
    Warned = 2,
    /// The breach has fired.
    Breached = 3,
}

/// The deadlines read model.
#[derive(Debug, Clone)]
pub struct Deadlines {
    /// The policy and calendars the due times are computed by.
    sla: Arc<Sla>,
}

impl Deadlines {
    /// The read model, due times by `sla`.
    pub fn new(sla: Arc<Sla>) -> Self {
        Self { sla }
    }
}

impl ReadModel for Deadlines {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema_sql(&self) -> &'static str {
        concat!(include_str!("schema_summary.sql"), include_str!("schema_deadlines.sql"))
    }

    fn views_sql(&self) -> &'static str {
        include_str!("views_deadlines.sql")
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

/// When a deadline's warning and breach were recorded, and where the breach went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Fired {
    warned_at_ms: Option<i64>,
    breached_at_ms: Option<i64>,
    route: i32,
}

/// What the model keeps per case between batches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct Tracked {
    clocks: Clocks,
    /// By deadline id, for the open deadlines only.
    fired: BTreeMap<String, Fired>,
}

impl Tracked {
    fn apply(&mut self, kind: &Kind, at: jiff::Timestamp) {
        self.clocks.apply(kind, at);
        let ms = at.as_millisecond();
        match kind {
            Kind::DeadlineWarned(e) => {
                self.fired.entry(e.deadline_id.clone()).or_default().warned_at_ms.get_or_insert(ms);
            }
            Kind::DeadlineBreached(e) => {
                let fired = self.fired.entry(e.deadline_id.clone()).or_default();
                fired.breached_at_ms.get_or_insert(ms);
                fired.route = e.route;
            }
            _ => {}
        }
        // Firings of stopped clocks are of no further use.
        let clocks = &self.clocks;
        self.fired.retain(|id, _| clocks.run(id).is_some());
    }
}

/// A stored deadline row.
struct Row<'a> {
    case: &'a CaseRow,
    deadline: Deadline,
    fired: Fired,
    jurisdiction: String,
    time_zone: String,
}

impl Row<'_> {
    fn state(&self) -> State {
        if self.deadline.breached {
            State::Breached
        } else if self.deadline.warned {
            State::Warned
        } else {
            State::Running
        }
    }
}

async fn apply(tx: &Transaction<'_>, schema: &str, commits: &[StoredCommit], sla: &Sla) -> Result<()> {
    let steps = summary::steps(NAME, commits)?;
    let ids = summary::ids(&steps);
    let table = format!("{schema}.cases");
    let mut cases = summary::load(tx, &table, &ids).await?;
    let mut tracked = load_tracked(tx, schema, &ids).await?;
    for step in &steps {
        summary::fold(NAME, &mut cases, step)?;
        tracked.entry(step.case_id).or_default().apply(step.kind, step.occurred());
    }
    let stored: Vec<&CaseRow> = cases.values().collect();
    summary::store(tx, &table, &stored).await?;
    store_tracked(tx, schema, &tracked).await?;
    // The deadlines are a function of the clocks as the batch leaves them: computed once per case.
    let mut rows = Vec::new();
    for id in &ids {
        let (Some(case), Some(t)) = (cases.get(id), tracked.get(id)) else { continue };
        let calendar = sla.calendar_for(&t.clocks.unit_code);
        for deadline in t.clocks.deadlines(sla) {
            let fired = t.fired.get(&deadline.id).cloned().unwrap_or_default();
            rows.push(Row {
                case,
                deadline,
                fired,
                jurisdiction: calendar.jurisdiction().to_owned(),
                time_zone: calendar.time_zone_name().to_owned(),
            });
        }
    }
    store_rows(tx, schema, &ids, &rows).await
}

async fn load_tracked(tx: &Transaction<'_>, schema: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Tracked>> {
    let mut tracked = HashMap::with_capacity(ids.len());
    let sql = format!("SELECT case_id, tracked FROM {schema}.case_deadlines WHERE case_id = ANY($1)");
    for r in tx.query(&sql, &[&ids]).await? {
        let id: Uuid = r.get(0);
        let value: serde_json::Value = r.get(1);
        let t = serde_json::from_value(value).map_err(|e| {
            summary::unapplicable(NAME, 0, format!("stored deadlines of case {id} cannot be read: {e}"))
        })?;
        tracked.insert(id, t);
    }
    Ok(tracked)
}

async fn store_tracked(tx: &Transaction<'_>, schema: &str, tracked: &HashMap<Uuid, Tracked>) -> Result<()> {
    let ids: Vec<Uuid> = tracked.keys().copied().collect();
    let values = tracked
        .values()
        .map(|t| serde_json::to_value(t).map_err(|e| crate::Error::Config(e.to_string())))
        .collect::<Result<Vec<_>>>()?;
    tx.execute(
        &format!(
            "INSERT INTO {schema}.case_deadlines (case_id, tracked) SELECT * FROM UNNEST($1::uuid[], $2::jsonb[]) \
             ON CONFLICT (case_id) DO UPDATE SET tracked = EXCLUDED.tracked"
        ),
        &[&ids, &values],
    )
    .await?;
    Ok(())
}

const COLUMNS: &str = "case_id, deadline_id, clock, started_at_ms, warn_at_ms, due_at_ms, paused_since_ms, state, \
    warned_at_ms, breached_at_ms, route, next_fire_ms, referral_id, partner_id, unit_code, committee_id, \
    committee_unit_code, tier, jurisdiction, time_zone";

/// Replaces the deadline rows of the cases in `ids` by `rows`.
async fn store_rows(tx: &Transaction<'_>, schema: &str, ids: &[Uuid], rows: &[Row<'_>]) -> Result<()> {
    tx.execute(&format!("DELETE FROM {schema}.deadlines WHERE case_id = ANY($1)"), &[&ids]).await?;
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! col {
        (|$r:ident| $e:expr) => {
            rows.iter().map(|$r| $e).collect::<Vec<_>>()
        };
    }
    let ms = |t: jiff::Timestamp| t.as_millisecond();
    tx.execute(
        &format!(
            "INSERT INTO {schema}.deadlines ({COLUMNS}) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int2[], \
             $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int2[], $9::int8[], $10::int8[], $11::int2[], \
             $12::int8[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::int2[], $19::text[], \
             $20::text[])"
        ),
        &[
            &col!(|r| r.case.case_id),
            &col!(|r| r.deadline.id.clone()),
            &col!(|r| small(r.deadline.clock as i32)),
            &col!(|r| ms(r.deadline.started_at)),
            &col!(|r| ms(r.deadline.warn_at)),
            &col!(|r| ms(r.deadline.due_at)),
            &col!(|r| r.deadline.paused_since.map(ms)),
            &col!(|r| r.state() as i16),
            &col!(|r| r.fired.warned_at_ms),
            &col!(|r| r.fired.breached_at_ms),
            &col!(|r| small(r.fired.route)),
            &col!(|r| r.deadline.next_firing().map(ms)),
            &col!(|r| r.deadline.referral_id.clone()),
            &col!(|r| r.deadline.partner_id.clone()),
            &col!(|r| r.case.unit_code.clone()),
            &col!(|r| r.case.committee_id.clone()),
            &col!(|r| r.case.committee_unit_code.clone()),
            &col!(|r| r.case.tier),
            &col!(|r| r.jurisdiction.clone()),
            &col!(|r| r.time_zone.clone()),
        ],
    )
    .await?;
    Ok(())
}

/// An open deadline as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDeadline {
    pub case_id: Uuid,
    /// The deadline, as [`Clocks::deadlines`] computed it when the case last changed
    /// (`shifts_with_pauses` is not stored and reads `false`).
    pub deadline: Deadline,
    pub state: State,
    pub warned_at_ms: Option<i64>,
    pub breached_at_ms: Option<i64>,
    /// `pb::EscalationRoute` of the breach; 0 before one.
    pub route: i32,
    pub unit_code: String,
    pub committee_id: String,
    pub committee_unit_code: String,
    /// `pb::Tier`.
    pub tier: i32,
    pub jurisdiction: String,
    pub time_zone: String,
}

fn timestamp(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::MAX)
}

fn open_deadline(r: &tokio_postgres::Row) -> OpenDeadline {
    let state = match r.get::<_, i16>(7) {
        3 => State::Breached,
        2 => State::Warned,
        _ => State::Running,
    };
    OpenDeadline {
        case_id: r.get(0),
        deadline: Deadline {
            clock: pb::Clock::try_from(i32::from(r.get::<_, i16>(2))).unwrap_or_default(),
            id: r.get(1),
            started_at: timestamp(r.get(3)),
            warn_at: timestamp(r.get(4)),
            due_at: timestamp(r.get(5)),
            shifts_with_pauses: false,
            paused_since: r.get::<_, Option<i64>>(6).map(timestamp),
            warned: state != State::Running,
            breached: state == State::Breached,
            referral_id: r.get(12),
            partner_id: r.get(13),
        },
        state,
        warned_at_ms: r.get(8),
        breached_at_ms: r.get(9),
        route: i32::from(r.get::<_, i16>(10)),
        unit_code: r.get(14),
        committee_id: r.get(15),
        committee_unit_code: r.get(16),
        tier: i32::from(r.get::<_, i16>(17)),
        jurisdiction: r.get(18),
        time_zone: r.get(19),
    }
}

/// Up to `limit` open deadlines with a firing due at or before `now_ms` (a warning or a breach),
/// the longest due first: what the timers act on. A deadline appears here until the event that
/// records its firing has been projected.
///
/// # Errors
/// Database errors.
pub async fn due(client: &impl GenericClient, now_ms: i64, limit: u32) -> Result<Vec<OpenDeadline>> {
    let rows = client.query(&due_sql(), &[&now_ms, &i64::from(limit)]).await?;
    Ok(rows.iter().map(open_deadline).collect())
}

fn due_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM open_deadlines WHERE next_fire_ms <= $1 ORDER BY next_fire_ms, case_id, deadline_id \
         LIMIT $2"
    )
}

/// The query plan of [`due`], as PostgreSQL's `EXPLAIN (FORMAT JSON)` gives it: how an operator
/// (or a test) checks that the timers' scan stays an index range.
///
/// # Errors
/// Database errors.
pub async fn explain_due(client: &impl GenericClient, now_ms: i64, limit: u32) -> Result<serde_json::Value> {
    let row = client.query_one(&format!("EXPLAIN (FORMAT JSON) {}", due_sql()), &[&now_ms, &i64::from(limit)]).await?;
    Ok(row.get(0))
}

/// Every open deadline of one case, in the order the clocks started.
///
/// # Errors
/// Database errors.
pub async fn of_case(client: &impl GenericClient, case_id: Uuid) -> Result<Vec<OpenDeadline>> {
    let rows = client
        .query(&format!("SELECT {COLUMNS} FROM open_deadlines WHERE case_id = $1 ORDER BY started_at_ms"), &[&case_id])
        .await?;
    Ok(rows.iter().map(open_deadline).collect())
}

/// Keyset position on the board: the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub due_at_ms: i64,
    pub case_id: Uuid,
    pub deadline_id: String,
}

impl Cursor {
    /// The cursor as an opaque page token.
    pub fn token(&self) -> String {
        format!("{}.{}.{}", self.due_at_ms, self.case_id, self.deadline_id)
    }

    /// Parses a token made by [`Cursor::token`]; `None` when it is not one.
    pub fn parse(token: &str) -> Option<Self> {
        let mut parts = token.splitn(3, '.');
        let due_at_ms = parts.next()?.parse().ok()?;
        let case_id = Uuid::parse_str(parts.next()?).ok()?;
        let deadline_id = parts.next().filter(|d| !d.is_empty())?.to_owned();
        Some(Self { due_at_ms, case_id, deadline_id })
    }
}

/// What an escalation board page asks for.
#[derive(Debug, Clone)]
pub struct BoardPage {
    /// Significant prefix of the unit subtree: deadlines of cases that arose in it or whose
    /// committee hangs in it.
    pub unit_prefix: String,
    /// Which states ([`State::Warned`], [`State::Breached`]); empty: both.
    pub states: Vec<State>,
    /// Which clocks (`pb::Clock`); empty: all.
    pub clocks: Vec<i32>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// A warned or breached deadline as the board shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardItem {
    pub deadline: OpenDeadline,
    pub category: String,
    /// `pb::CaseState`.
    pub case_state: i32,
}

/// A page of the escalation board, oldest due time first, with the cursor after each item.
///
/// # Errors
/// Database errors.
pub async fn board(client: &impl GenericClient, q: &BoardPage) -> Result<Vec<(BoardItem, Cursor)>> {
    let (sql, params) = board_sql(q);
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    let rows = client.query(&sql, &refs).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let deadline = open_deadline(r);
            let cursor = Cursor {
                due_at_ms: deadline.deadline.due_at.as_millisecond(),
                case_id: deadline.case_id,
                deadline_id: deadline.deadline.id.clone(),
            };
            let item = BoardItem { deadline, category: r.get(20), case_state: i32::from(r.get::<_, i16>(21)) };
            (item, cursor)
        })
        .collect())
}

/// The query plan of [`board`] for `q` (`EXPLAIN (FORMAT JSON)`).
///
/// # Errors
/// Database errors.
pub async fn explain_board(client: &impl GenericClient, q: &BoardPage) -> Result<serde_json::Value> {
    let (sql, params) = board_sql(q);
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    let row = client.query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), &refs).await?;
    Ok(row.get(0))
}

/// The board page's SQL and parameters: the `deadlines_board` index in due order, filtered to
/// the unit subtree.
fn board_sql(q: &BoardPage) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut add = |value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    let states: Vec<i16> = if q.states.is_empty() {
        vec![State::Warned as i16, State::Breached as i16]
    } else {
        q.states.iter().map(|s| *s as i16).collect()
    };
    let p = add(Box::new(prefix_pattern(&q.unit_prefix)));
    let mut sql = format!(
        "SELECT {COLUMNS}, category, case_state FROM deadline_items WHERE state > 1 AND state = ANY({}) \
         AND (unit_code LIKE {p} OR committee_unit_code LIKE {p})",
        add(Box::new(states))
    );
    if !q.clocks.is_empty() {
        let clocks: Vec<i16> = q.clocks.iter().map(|c| small(*c)).collect();
        sql.push_str(&format!(" AND clock = ANY({})", add(Box::new(clocks))));
    }
    if let Some(c) = &q.after {
        let (d, id, dl) = (add(Box::new(c.due_at_ms)), add(Box::new(c.case_id)), add(Box::new(c.deadline_id.clone())));
        sql.push_str(&format!(" AND (due_at_ms, case_id, deadline_id) > ({d}, {id}, {dl})"));
    }
    sql.push_str(&format!(" ORDER BY due_at_ms, case_id, deadline_id LIMIT {}", add(Box::new(i64::from(q.limit)))));
    (sql, params)
}

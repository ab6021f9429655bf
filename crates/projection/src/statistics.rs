//! The `statistics` read model: the rates the field reports publish (化解率, 基层化解率, 响应率,
//! 解决率, 满意率) and order volume, per unit subtree, category and period, exact against the events.
//!
//! # Definitions
//!
//! A case is counted once, in the **period** containing the local date (in the jurisdiction
//! calendar of its unit) of its registration, under the **unit** where the dispute arose
//! (`CaseRegistered.unit_code`; a unit's figures cover its whole subtree), in its **current
//! category** (a dispatch may re-categorise it) and its registration **channel**. Its outcome is
//! the one in force now: the figures of a past period change while its cases are still handled.
//!
//! | counter | a case counts when |
//! |---|---|
//! | `received` (受理量, order volume by channel) | it is registered |
//! | `handled` (受理纠纷) | it is registered and not merged into another case (a duplicate is not a dispute of its own) |
//! | `resolved` (化解) | handled, and closed now with outcome *resolved* (a reopened case counts again only once closed again) |
//! | `resolved_at_grassroots` (基层化解) | resolved, at grid or community tier when it was closed |
//! | `dispatched` (派单) | handled, and dispatched at least once |
//! | `signed_in_time` (按时签收) | dispatched, and its first sign-for came no later than the sign-for deadline of its first dispatch (SLA `sign_for` clock: 2 working hours, emergencies 1 minute) |
//! | `closed` (办结) | handled, and closed now with any outcome but *withdrawn* |
//! | `followed_up` (回访) | handled, with at least one follow-up; the latest one counts |
//! | `satisfied`, `basically_satisfied`, `dissatisfied` | followed up, the latest follow-up recording that satisfaction |
//!
//! | rate | = |
//! |---|---|
//! | 化解率 | resolved / handled |
//! | 基层化解率 | resolved_at_grassroots / handled |
//! | 响应率 | signed_in_time / dispatched |
//! | 解决率 | resolved / closed |
//! | 满意率 | (satisfied + basically_satisfied) / followed_up |
//!
//! Storage: one `case_facts` row per case, and `daily` sums per (unit, local day, category,
//! channel) kept by deltas, so a query adds up a few rows per unit and day, not cases.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use fengqiao_domain::deadlines::Clocks;
use fengqiao_domain::event::{Kind, pb};
use fengqiao_domain::sla::Sla;
use fengqiao_eventstore::StoredCommit;

use crate::Result;
use crate::projector::ReadModel;
use crate::query::prefix_pattern;
use crate::summary::{self, Step, big, small};

/// Name of this read model in `projection_checkpoints` and on the command line.
pub const NAME: &str = "statistics";

/// The statistics read model.
#[derive(Debug, Clone)]
pub struct Statistics {
    /// The calendars (for the local date of registration) and the sign-for deadline policy.
    sla: Arc<Sla>,
}

impl Statistics {
    /// The read model, periods and sign-for deadlines by `sla`.
    pub fn new(sla: Arc<Sla>) -> Self {
        Self { sla }
    }
}

impl ReadModel for Statistics {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema_sql(&self) -> &'static str {
        include_str!("schema_statistics.sql")
    }

    fn views_sql(&self) -> &'static str {
        include_str!("views_statistics.sql")
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

/// The counters, in storage order.
pub const COUNTERS: [&str; 11] = [
    "received",
    "handled",
    "resolved",
    "resolved_at_grassroots",
    "dispatched",
    "signed_in_time",
    "closed",
    "followed_up",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
];

/// Counts of cases, by the definitions of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub received: i64,
    pub handled: i64,
    pub resolved: i64,
    pub resolved_at_grassroots: i64,
    pub dispatched: i64,
    pub signed_in_time: i64,
    pub closed: i64,
    pub followed_up: i64,
    pub satisfied: i64,
    pub basically_satisfied: i64,
    pub dissatisfied: i64,
}

impl Counts {
    fn from_array(a: [i64; 11]) -> Self {
        Self {
            received: a[0],
            handled: a[1],
            resolved: a[2],
            resolved_at_grassroots: a[3],
            dispatched: a[4],
            signed_in_time: a[5],
            closed: a[6],
            followed_up: a[7],
            satisfied: a[8],
            basically_satisfied: a[9],
            dissatisfied: a[10],
        }
    }

    fn add(&mut self, other: &Counts) {
        let mut a = self.to_array();
        for (x, y) in a.iter_mut().zip(other.to_array()) {
            *x += y;
        }
        *self = Self::from_array(a);
    }

    fn to_array(self) -> [i64; 11] {
        [
            self.received,
            self.handled,
            self.resolved,
            self.resolved_at_grassroots,
            self.dispatched,
            self.signed_in_time,
            self.closed,
            self.followed_up,
            self.satisfied,
            self.basically_satisfied,
            self.dissatisfied,
        ]
    }
}

/// What a case contributes, folded from its events.
#[derive(Debug, Clone, PartialEq)]
struct Facts {
    version: i64,
    unit_code: String,
    category: String,
    channel: i16,
    day: String,
    merged: bool,
    tier: i16,
    closure: i16,
    closed_tier: i16,
    dispatched: bool,
    sign_for_due_ms: Option<i64>,
    signed_at_ms: Option<i64>,
    satisfaction: i16,
    clocks: Clocks,
}

/// Where a contribution is summed: unit, local day, category, channel.
type Key = (String, String, String, i16);

impl Facts {
    fn registered(e: &pb::CaseRegistered, step: &Step<'_>, sla: &Sla) -> Self {
        let day = sla.calendar_for(&e.unit_code).local_date(step.occurred()).to_string();
        Self {
            version: 0,
            unit_code: e.unit_code.clone(),
            category: e.category.clone(),
            channel: small(e.channel),
            day,
            merged: false,
            tier: 0,
            closure: 0,
            closed_tier: 0,
            dispatched: false,
            sign_for_due_ms: None,
            signed_at_ms: None,
            satisfaction: 0,
            clocks: Clocks::default(),
        }
    }

    fn apply(&mut self, step: &Step<'_>, sla: &Sla) {
        use pb::ClosureOutcome as O;
        self.version = big(step.envelope.case_version);
        self.clocks.apply(step.kind, step.occurred());
        match step.kind {
            Kind::CaseDispatched(e) => {
                self.tier = small(e.tier);
                if !e.category.is_empty() {
                    self.category.clone_from(&e.category);
                }
                if !self.dispatched {
                    self.dispatched = true;
                    self.sign_for_due_ms = self
                        .clocks
                        .deadlines(sla)
                        .iter()
                        .find(|d| d.clock == pb::Clock::SignFor)
                        .map(|d| d.due_at.as_millisecond());
                }
            }
            Kind::CaseEscalated(e) => self.tier = small(e.to_tier),
            Kind::CaseAccepted(_) if self.dispatched && self.signed_at_ms.is_none() => {
                self.signed_at_ms = Some(step.envelope.occurred_at_unix_ms);
            }
            Kind::CaseClosed(e) => {
                self.closure = small(e.outcome);
                self.closed_tier = self.tier;
            }
            Kind::CaseReopened(_) => {
                self.closure = O::Unspecified as i16;
                self.closed_tier = 0;
            }
            Kind::CaseMerged(_) => self.merged = true,
            Kind::FollowUpRecorded(e) => self.satisfaction = small(e.satisfaction),
            _ => {}
        }
    }

    fn key(&self) -> Key {
        (self.unit_code.clone(), self.day.clone(), self.category.clone(), self.channel)
    }

    /// The counters this case adds to its key (see the module's definitions).
    fn contribution(&self) -> [i64; 11] {
        use pb::{ClosureOutcome as O, Satisfaction as S, Tier as T};
        let closure = i32::from(self.closure);
        let handled = !self.merged;
        let resolved = handled && closure == O::Resolved as i32;
        let grassroots = resolved && [T::Grid as i16, T::Community as i16].contains(&self.closed_tier);
        let dispatched = handled && self.dispatched;
        let in_time =
            dispatched && self.signed_at_ms.is_some_and(|signed| self.sign_for_due_ms.is_none_or(|due| signed <= due));
        let closed = handled && closure != O::Unspecified as i32 && closure != O::Withdrawn as i32;
        let satisfaction = i32::from(self.satisfaction);
        let followed = handled && satisfaction != S::Unspecified as i32;
        let is = |s: S| followed && satisfaction == s as i32;
        [
            true,
            handled,
            resolved,
            grassroots,
            dispatched,
            in_time,
            closed,
            followed,
            is(S::Satisfied),
            is(S::BasicallySatisfied),
            is(S::Dissatisfied),
        ]
        .map(i64::from)
    }
}

async fn apply(tx: &Transaction<'_>, schema: &str, commits: &[StoredCommit], sla: &Sla) -> Result<()> {
    let steps = summary::steps(NAME, commits)?;
    let ids = summary::ids(&steps);
    let mut facts = load(tx, schema, &ids).await?;
    let before: HashMap<Uuid, (Key, [i64; 11])> =
        facts.iter().map(|(id, f)| (*id, (f.key(), f.contribution()))).collect();
    for step in &steps {
        summary::check(NAME, facts.get(&step.case_id).map(|f| f.version), step)?;
        let f = match step.kind {
            Kind::CaseRegistered(e) => facts.entry(step.case_id).or_insert(Facts::registered(e, step, sla)),
            _ => facts.get_mut(&step.case_id).ok_or_else(|| {
                summary::unapplicable(NAME, step.sequence, format!("case {} vanished from the batch", step.case_id))
            })?,
        };
        f.apply(step, sla);
    }
    // The change of each touched case: minus what it contributed before, plus what it does now.
    let mut deltas: HashMap<Key, [i64; 11]> = HashMap::new();
    for (id, f) in &facts {
        if let Some((key, old)) = before.get(id) {
            let d = deltas.entry(key.clone()).or_default();
            d.iter_mut().zip(old).for_each(|(d, o)| *d -= o);
        }
        let d = deltas.entry(f.key()).or_default();
        d.iter_mut().zip(f.contribution()).for_each(|(d, n)| *d += n);
    }
    deltas.retain(|_, d| d.iter().any(|v| *v != 0));
    store(tx, schema, &facts).await?;
    store_deltas(tx, schema, &deltas).await
}

const FACT_COLUMNS: &str = "case_id, version, unit_code, category, channel, day, merged, tier, closure, closed_tier, \
    dispatched, sign_for_due_ms, signed_at_ms, satisfaction, clocks";

async fn load(tx: &Transaction<'_>, schema: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Facts>> {
    let mut facts = HashMap::with_capacity(ids.len());
    for r in
        tx.query(&format!("SELECT {FACT_COLUMNS} FROM {schema}.case_facts WHERE case_id = ANY($1)"), &[&ids]).await?
    {
        let id: Uuid = r.get(0);
        facts.insert(
            id,
            Facts {
                version: r.get(1),
                unit_code: r.get(2),
                category: r.get(3),
                channel: r.get(4),
                day: r.get(5),
                merged: r.get(6),
                tier: r.get(7),
                closure: r.get(8),
                closed_tier: r.get(9),
                dispatched: r.get(10),
                sign_for_due_ms: r.get(11),
                signed_at_ms: r.get(12),
                satisfaction: r.get(13),
                clocks: summary::clocks_from_json(NAME, id, r.get(14))?,
            },
        );
    }
    Ok(facts)
}

async fn store(tx: &Transaction<'_>, schema: &str, facts: &HashMap<Uuid, Facts>) -> Result<()> {
    let rows: Vec<(&Uuid, &Facts)> = facts.iter().collect();
    macro_rules! col {
        ($f:ident) => {
            rows.iter().map(|(_, r)| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| **id).collect();
    let clocks = rows.iter().map(|(_, f)| summary::clocks_to_json(&f.clocks)).collect::<Result<Vec<_>>>()?;
    tx.execute(
        &format!(
            "INSERT INTO {schema}.case_facts ({FACT_COLUMNS}) SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], \
             $4::text[], $5::int2[], $6::text[], $7::bool[], $8::int2[], $9::int2[], $10::int2[], $11::bool[], \
             $12::int8[], $13::int8[], $14::int2[], $15::jsonb[]) \
             ON CONFLICT (case_id) DO UPDATE SET version = EXCLUDED.version, category = EXCLUDED.category, \
             merged = EXCLUDED.merged, tier = EXCLUDED.tier, closure = EXCLUDED.closure, \
             closed_tier = EXCLUDED.closed_tier, dispatched = EXCLUDED.dispatched, \
             sign_for_due_ms = EXCLUDED.sign_for_due_ms, signed_at_ms = EXCLUDED.signed_at_ms, \
             satisfaction = EXCLUDED.satisfaction, clocks = EXCLUDED.clocks"
        ),
        &[
            &ids,
            &col!(version),
            &col!(unit_code),
            &col!(category),
            &col!(channel),
            &col!(day),
            &col!(merged),
            &col!(tier),
            &col!(closure),
            &col!(closed_tier),
            &col!(dispatched),
            &col!(sign_for_due_ms),
            &col!(signed_at_ms),
            &col!(satisfaction),
            &clocks,
        ],
    )
    .await?;
    Ok(())
}

async fn store_deltas(tx: &Transaction<'_>, schema: &str, deltas: &HashMap<Key, [i64; 11]>) -> Result<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut units = Vec::with_capacity(deltas.len());
    let mut days = Vec::with_capacity(deltas.len());
    let mut categories = Vec::with_capacity(deltas.len());
    let mut channels = Vec::with_capacity(deltas.len());
    let mut counters: Vec<Vec<i64>> = vec![Vec::with_capacity(deltas.len()); COUNTERS.len()];
    for ((unit, day, category, channel), d) in deltas {
        units.push(unit.clone());
        days.push(day.clone());
        categories.push(category.clone());
        channels.push(*channel);
        for (column, v) in counters.iter_mut().zip(d) {
            column.push(*v);
        }
    }
    let names = COUNTERS.join(", ");
    let arrays: Vec<String> = (0..COUNTERS.len()).map(|i| format!("${}::int8[]", i + 5)).collect();
    let sums: Vec<String> = COUNTERS.iter().map(|c| format!("{c} = daily.{c} + EXCLUDED.{c}")).collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&units, &days, &categories, &channels];
    params.extend(counters.iter().map(|c| c as &(dyn ToSql + Sync)));
    tx.execute(
        &format!(
            "INSERT INTO {schema}.daily AS daily (unit_code, day, category, channel, {names}) \
             SELECT u, d::date, c, ch, {names} FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int2[], {}) \
             AS t(u, d, c, ch, {names}) \
             ON CONFLICT (unit_code, day, category, channel) DO UPDATE SET {}",
            arrays.join(", "),
            sums.join(", ")
        ),
        &params,
    )
    .await?;
    // Every counter counts a subset of `received`: a row received nothing when it counts nothing.
    tx.execute(
        &format!(
            "DELETE FROM {schema}.daily WHERE received = 0 AND (unit_code, day, category, channel) IN \
             (SELECT u, d::date, c, ch FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int2[]) AS t(u, d, c, ch))"
        ),
        &[&units, &days, &categories, &channels],
    )
    .await?;
    Ok(())
}

/// What a statistics query asks for.
#[derive(Debug, Clone)]
pub struct Query {
    /// Significant prefix of the unit whose subtree is counted.
    pub unit_prefix: String,
    pub category: Option<String>,
    /// First and last local day of the period (`YYYY-MM-DD`), both included.
    pub from: String,
    pub to: String,
    /// Also break the figures down by the unit's children (the next level of the code).
    pub by_child_unit: bool,
}

/// The figures of one unit subtree.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Figures {
    /// The unit: the asked unit's prefix for the total, a child's code for a breakdown row.
    pub unit: String,
    pub counts: Counts,
    /// Cases received per channel (`pb::Channel`), channels without cases left out.
    pub received_by_channel: Vec<(i32, i64)>,
}

impl Figures {
    fn add(&mut self, channel: i32, counts: &Counts) {
        self.counts.add(counts);
        match self.received_by_channel.iter_mut().find(|(c, _)| *c == channel) {
            Some((_, n)) => *n += counts.received,
            None => self.received_by_channel.push((channel, counts.received)),
        }
        self.received_by_channel.sort_unstable();
    }
}

/// Length of the codes of a unit's children, from the length of its significant prefix:
/// province → prefecture → county → township → village → grids (the whole code).
fn child_length(prefix_len: usize) -> i32 {
    match prefix_len {
        0..=2 => 4,
        3..=4 => 6,
        5..=6 => 9,
        7..=9 => 12,
        _ => 18,
    }
}

/// The figures of a unit subtree for a period, and with `by_child_unit` those of each child
/// (children without cases left out; cases registered at the unit itself appear under its own
/// code).
///
/// # Errors
/// Database errors.
pub async fn figures(client: &impl GenericClient, q: &Query) -> Result<(Figures, Vec<Figures>)> {
    let group = if q.by_child_unit { child_length(q.unit_prefix.len()) } else { 0 };
    let sums: Vec<String> = COUNTERS.iter().map(|c| format!("sum({c})::int8")).collect();
    let pattern = prefix_pattern(&q.unit_prefix);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&pattern, &q.from, &q.to, &group];
    let mut sql = format!(
        "SELECT left(unit_code, $4) AS g, channel, {} FROM statistics_daily \
         WHERE unit_code LIKE $1 AND day BETWEEN $2::text::date AND $3::text::date",
        sums.join(", ")
    );
    if let Some(category) = &q.category {
        params.push(category);
        sql.push_str(" AND category = $5");
    }
    sql.push_str(" GROUP BY g, channel ORDER BY g, channel");
    let mut total = Figures { unit: q.unit_prefix.clone(), ..Figures::default() };
    let mut children: Vec<Figures> = Vec::new();
    for r in client.query(&sql, &params).await? {
        let unit: String = r.get(0);
        let channel = i32::from(r.get::<_, i16>(1));
        let mut a = [0i64; 11];
        for (i, v) in a.iter_mut().enumerate() {
            *v = r.get(i + 2);
        }
        let counts = Counts::from_array(a);
        total.add(channel, &counts);
        if q.by_child_unit {
            let code = if unit.len() < 12 { format!("{unit:0<12}") } else { unit };
            match children.iter_mut().find(|c| c.unit == code) {
                Some(child) => child.add(channel, &counts),
                None => {
                    let mut child = Figures { unit: code, ..Figures::default() };
                    child.add(channel, &counts);
                    children.push(child);
                }
            }
        }
    }
    Ok((total, children))
}

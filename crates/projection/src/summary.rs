//! The case summary fold shared by the read models that keep one row per case (`cases`,
//! `work_queues`): what a case is about and where it stands, folded event by event with the same
//! checks everywhere (registered once, versions without gaps), loaded and stored set-based.

use std::collections::HashMap;
use std::time::SystemTime;

use tokio_postgres::Transaction;
use uuid::Uuid;

use fengqiao_domain::case::state_after;
use fengqiao_domain::deadlines::Clocks;
use fengqiao_domain::event::{Kind, pb, type_name};
use fengqiao_eventstore::StoredCommit;

use crate::query::{CaseSummary, parties_from_json, risks_from_json};
use crate::{Error, Result, ms_from_time, time_from_ms};

/// A case summary row as a projector holds it while applying a batch.
#[derive(Debug, Clone)]
pub(crate) struct CaseRow {
    pub case_id: Uuid,
    pub state: i16,
    pub channel: i16,
    pub external_ref: String,
    pub category: String,
    pub description: String,
    pub unit_code: String,
    pub address: String,
    pub urgency: i16,
    pub risk_signals: serde_json::Value,
    pub parties: serde_json::Value,
    pub tier: i16,
    pub committee_id: String,
    pub committee_unit_code: String,
    pub risk_level: i16,
    pub version: i64,
    pub registered_at: SystemTime,
    pub updated_at: SystemTime,
    pub last_sequence: i64,
}

/// An `i32` proto enum as a `smallint`.
pub(crate) fn small(v: i32) -> i16 {
    i16::try_from(v).unwrap_or(i16::MAX)
}

/// A `u64` sequence or version as a `bigint`.
pub(crate) fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl CaseRow {
    fn registered(case_id: Uuid, e: &pb::CaseRegistered, at: SystemTime) -> Self {
        let parties = e
            .parties
            .iter()
            .map(
                |p| serde_json::json!({"name": p.name, "role": p.role, "phone": p.phone, "resident_id": p.resident_id}),
            )
            .collect();
        Self {
            case_id,
            state: pb::CaseState::Registered as i16,
            channel: small(e.channel),
            external_ref: e.external_ref.clone(),
            category: e.category.clone(),
            description: e.description.clone(),
            unit_code: e.unit_code.clone(),
            address: e.address.clone(),
            urgency: small(e.urgency),
            risk_signals: serde_json::Value::from(e.risk_signals.clone()),
            parties: serde_json::Value::Array(parties),
            tier: 0,
            committee_id: String::new(),
            committee_unit_code: String::new(),
            risk_level: 0,
            version: 0,
            registered_at: at,
            updated_at: at,
            last_sequence: 0,
        }
    }

    /// The unit whose queue shows the case: the owning committee's unit, else where it arose.
    pub fn owner_unit(&self) -> &str {
        if self.committee_unit_code.is_empty() { &self.unit_code } else { &self.committee_unit_code }
    }

    /// The state as the proto enum.
    pub fn case_state(&self) -> pb::CaseState {
        pb::CaseState::try_from(i32::from(self.state)).unwrap_or(pb::CaseState::Registered)
    }

    /// Whether the case is still being handled (not closed, not merged).
    pub fn is_open(&self) -> bool {
        !matches!(self.case_state(), pb::CaseState::Closed | pb::CaseState::Merged)
    }

    /// The row as queries return it.
    pub fn to_summary(&self) -> CaseSummary {
        CaseSummary {
            case_id: self.case_id,
            state: i32::from(self.state),
            channel: i32::from(self.channel),
            external_ref: self.external_ref.clone(),
            category: self.category.clone(),
            description: self.description.clone(),
            unit_code: self.unit_code.clone(),
            address: self.address.clone(),
            urgency: i32::from(self.urgency),
            risk_signals: risks_from_json(&self.risk_signals),
            parties: parties_from_json(&self.parties),
            tier: i32::from(self.tier),
            committee_id: self.committee_id.clone(),
            committee_unit_code: self.committee_unit_code.clone(),
            owner_unit: self.owner_unit().to_owned(),
            risk_level: i32::from(self.risk_level),
            version: u64::try_from(self.version).unwrap_or(0),
            registered_at_ms: ms_from_time(self.registered_at),
            updated_at_ms: ms_from_time(self.updated_at),
        }
    }

    /// Folds one event into the summary. The state follows the domain's own fold, so the queue
    /// never disagrees with what commands see.
    fn apply(&mut self, kind: &Kind) {
        self.state = state_after(self.case_state(), kind) as i16;
        match kind {
            Kind::CaseDispatched(e) => {
                self.tier = small(e.tier);
                self.committee_id.clone_from(&e.committee_id);
                self.committee_unit_code.clone_from(&e.committee_unit_code);
                self.risk_level = small(e.risk_level);
                if !e.category.is_empty() {
                    self.category.clone_from(&e.category);
                }
            }
            Kind::CaseReturned(_) => {
                self.committee_id.clear();
                self.committee_unit_code.clear();
            }
            Kind::CaseEscalated(e) => {
                self.tier = small(e.to_tier);
                self.committee_id.clone_from(&e.committee_id);
                self.committee_unit_code.clone_from(&e.committee_unit_code);
            }
            Kind::PartyContactCorrected(e) => {
                let party = usize::try_from(e.party_index).ok().and_then(|i| self.parties.get_mut(i));
                if let Some(serde_json::Value::Object(party)) = party {
                    if !e.new_phone.is_empty() {
                        party.insert("phone".to_owned(), e.new_phone.clone().into());
                    }
                    if !e.new_resident_id.is_empty() {
                        party.insert("resident_id".to_owned(), e.new_resident_id.clone().into());
                    }
                }
            }
            _ => {}
        }
    }
}

/// The error for a commit `projection` cannot apply.
pub(crate) fn unapplicable(projection: &str, sequence: u64, problem: String) -> Error {
    Error::Unapplicable { projection: projection.to_owned(), sequence, problem }
}

/// One event of a batch, as the folds see it.
pub(crate) struct Step<'a> {
    pub case_id: Uuid,
    pub sequence: u64,
    pub envelope: &'a pb::EventEnvelope,
    pub kind: &'a Kind,
    pub at: SystemTime,
}

impl Step<'_> {
    /// When the event occurred, as the deadline fold takes it.
    pub fn occurred(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.envelope.occurred_at_unix_ms).unwrap_or_default()
    }
}

/// A case's deadline clocks as stored (JSON).
///
/// # Errors
/// [`Error::Unapplicable`] naming `projection` when the stored value cannot be read back.
pub(crate) fn clocks_from_json(projection: &str, case_id: Uuid, value: serde_json::Value) -> Result<Clocks> {
    serde_json::from_value(value).map_err(|e| {
        unapplicable(projection, 0, format!("stored deadline clocks of case {case_id} cannot be read: {e}"))
    })
}

/// A case's deadline clocks to store (JSON).
///
/// # Errors
/// [`Error::Config`] if they cannot be serialised (they always can).
pub(crate) fn clocks_to_json(clocks: &Clocks) -> Result<serde_json::Value> {
    serde_json::to_value(clocks).map_err(|e| Error::Config(e.to_string()))
}

/// The distinct case ids of `steps`, in first-seen order.
pub(crate) fn ids(steps: &[Step<'_>]) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = Vec::new();
    for s in steps {
        if !ids.contains(&s.case_id) {
            ids.push(s.case_id);
        }
    }
    ids
}

/// Every event of `commits` in order, with its case id and kind.
///
/// # Errors
/// [`Error::Unapplicable`] for a bad case id or an envelope without an event.
pub(crate) fn steps<'a>(projection: &str, commits: &'a [StoredCommit]) -> Result<Vec<Step<'a>>> {
    let mut out = Vec::new();
    for c in commits {
        let case_id = Uuid::parse_str(&c.commit.case_id).map_err(|_| {
            unapplicable(projection, c.sequence, format!("case id {:?} is not a UUID", c.commit.case_id))
        })?;
        for envelope in &c.commit.events {
            let Some(kind) = envelope.event.as_ref().and_then(|e| e.kind.as_ref()) else {
                return Err(unapplicable(
                    projection,
                    c.sequence,
                    format!("event {} carries no event", envelope.event_id),
                ));
            };
            out.push(Step {
                case_id,
                sequence: c.sequence,
                envelope,
                kind,
                at: time_from_ms(envelope.occurred_at_unix_ms),
            });
        }
    }
    Ok(out)
}

/// Columns of a summary table, in the order [`load`] reads and [`store`] writes them.
pub(crate) const COLUMNS: &str = "case_id, state, channel, external_ref, category, description, unit_code, address, \
     urgency, risk_signals, parties, tier, committee_id, committee_unit_code, owner_unit, risk_level, version, \
     registered_at, updated_at, last_sequence";

/// The summary rows of `ids` in `table` (schema-qualified).
///
/// # Errors
/// Database errors.
pub(crate) async fn load(tx: &Transaction<'_>, table: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, CaseRow>> {
    let mut rows = HashMap::with_capacity(ids.len());
    for r in tx.query(&format!("SELECT {COLUMNS} FROM {table} WHERE case_id = ANY($1)"), &[&ids]).await? {
        let row = CaseRow {
            case_id: r.get(0),
            state: r.get(1),
            channel: r.get(2),
            external_ref: r.get(3),
            category: r.get(4),
            description: r.get(5),
            unit_code: r.get(6),
            address: r.get(7),
            urgency: r.get(8),
            risk_signals: r.get(9),
            parties: r.get(10),
            tier: r.get(11),
            committee_id: r.get(12),
            committee_unit_code: r.get(13),
            risk_level: r.get(15),
            version: r.get(16),
            registered_at: r.get(17),
            updated_at: r.get(18),
            last_sequence: r.get(19),
        };
        rows.insert(row.case_id, row);
    }
    Ok(rows)
}

/// Checks that `step` fits a case at `version` (`None`: not registered): a registration comes
/// first and once, and versions have no gaps.
///
/// # Errors
/// [`Error::Unapplicable`] naming what does not fit.
pub(crate) fn check(projection: &str, version: Option<i64>, step: &Step<'_>) -> Result<()> {
    let id = step.case_id;
    let fail = |problem: String| Err(unapplicable(projection, step.sequence, problem));
    let known = match (version, step.kind) {
        (None, Kind::CaseRegistered(_)) => 0,
        (Some(_), Kind::CaseRegistered(_)) => return fail(format!("case {id} is registered twice")),
        (Some(v), _) => v,
        (None, kind) => return fail(format!("{} for case {id}, which was never registered", type_name(kind))),
    };
    if big(step.envelope.case_version) != known + 1 {
        return fail(format!("case {id} jumps from version {known} to {}", step.envelope.case_version));
    }
    Ok(())
}

/// Folds `step` into its case's row in `rows`, creating it on registration.
///
/// # Errors
/// [`Error::Unapplicable`] when the event does not fit: an event for a case never registered, a
/// second registration, or a gap in the case's versions.
pub(crate) fn fold<'r>(
    projection: &str,
    rows: &'r mut HashMap<Uuid, CaseRow>,
    step: &Step<'_>,
) -> Result<&'r mut CaseRow> {
    let id = step.case_id;
    check(projection, rows.get(&id).map(|r| r.version), step)?;
    let row = match step.kind {
        Kind::CaseRegistered(e) => rows.entry(id).or_insert(CaseRow::registered(id, e, step.at)),
        _ => rows
            .get_mut(&id)
            .ok_or_else(|| unapplicable(projection, step.sequence, format!("case {id} vanished from the batch")))?,
    };
    row.apply(step.kind);
    row.version = big(step.envelope.case_version);
    row.updated_at = step.at;
    row.last_sequence = big(step.sequence);
    Ok(row)
}

/// Writes `rows` into `table` (schema-qualified), inserting new cases and updating the rest.
///
/// # Errors
/// Database errors.
pub(crate) async fn store(tx: &Transaction<'_>, table: &str, rows: &[&CaseRow]) -> Result<()> {
    macro_rules! col {
        ($f:ident) => {
            rows.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    let owner: Vec<String> = rows.iter().map(|r| r.owner_unit().to_owned()).collect();
    tx.execute(
        &format!(
            "INSERT INTO {table} ({COLUMNS}) SELECT * FROM UNNEST($1::uuid[], $2::int2[], $3::int2[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::int2[], $10::jsonb[], $11::jsonb[], $12::int2[], \
             $13::text[], $14::text[], $15::text[], $16::int2[], $17::int8[], $18::timestamptz[], $19::timestamptz[], \
             $20::int8[]) \
             ON CONFLICT (case_id) DO UPDATE SET state = EXCLUDED.state, category = EXCLUDED.category, \
             parties = EXCLUDED.parties, \
             tier = EXCLUDED.tier, committee_id = EXCLUDED.committee_id, \
             committee_unit_code = EXCLUDED.committee_unit_code, owner_unit = EXCLUDED.owner_unit, \
             risk_level = EXCLUDED.risk_level, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at, \
             last_sequence = EXCLUDED.last_sequence"
        ),
        &[
            &col!(case_id),
            &col!(state),
            &col!(channel),
            &col!(external_ref),
            &col!(category),
            &col!(description),
            &col!(unit_code),
            &col!(address),
            &col!(urgency),
            &col!(risk_signals),
            &col!(parties),
            &col!(tier),
            &col!(committee_id),
            &col!(committee_unit_code),
            &owner,
            &col!(risk_level),
            &col!(version),
            &col!(registered_at),
            &col!(updated_at),
            &col!(last_sequence),
        ],
    )
    .await?;
    Ok(())
}

//! Queries over the read models, and the read-your-writes wait that precedes them.

use std::time::{Duration, Instant};

use prost::Message as _;
use tokio::sync::watch;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use fengqiao_domain::event::pb;

use crate::{Error, Result, cases, ms_from_time, projector::checkpoint};

/// Waits until read model `projection` has applied stream sequence `min`, at most `timeout`.
/// Uses the in-process projector's announcements when there is one, and the stored checkpoint
/// (so a reader on another instance also sees the write).
///
/// # Errors
/// [`Error::NotCaughtUp`] when the deadline passes first.
pub async fn wait_for(
    client: &impl GenericClient,
    projection: &str,
    applied: Option<&watch::Receiver<u64>>,
    min: u64,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut applied = applied.cloned();
    loop {
        let seen = match applied.as_ref().map(|rx| *rx.borrow()) {
            Some(seq) if seq >= min => return Ok(()),
            _ => checkpoint(client, projection).await?.sequence,
        };
        if seen >= min {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::NotCaughtUp { wanted: min, applied: seen });
        }
        let pause = left.min(Duration::from_millis(50));
        match applied.as_mut() {
            Some(rx) => {
                let _ = tokio::time::timeout(pause, rx.changed()).await;
            }
            None => tokio::time::sleep(pause).await,
        }
    }
}

/// One case's summary and timeline.
#[derive(Debug, Clone)]
pub struct CaseFile {
    pub summary: CaseSummary,
    pub timeline: Vec<TimelineEntry>,
}

/// A row of the case summary read model.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSummary {
    pub case_id: Uuid,
    pub state: i32,
    pub channel: i32,
    pub external_ref: String,
    pub category: String,
    pub description: String,
    pub unit_code: String,
    pub address: String,
    pub urgency: i32,
    pub risk_signals: Vec<i32>,
    pub parties: Vec<pb::Party>,
    pub tier: i32,
    pub committee_id: String,
    pub committee_unit_code: String,
    pub owner_unit: String,
    pub risk_level: i32,
    pub version: u64,
    pub registered_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One event of a case, as the case file shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    pub stream_sequence: u64,
    pub envelope: pb::EventEnvelope,
}

/// Columns of a summary, in the order [`summary`] reads them.
pub(crate) const SUMMARY: &str = "case_id, state, channel, external_ref, category, description, unit_code, address, urgency, \
    risk_signals, parties, tier, committee_id, committee_unit_code, owner_unit, risk_level, version, registered_at, \
    updated_at";

/// Risk signals as stored (a JSON array of numbers).
pub(crate) fn risks_from_json(risks: &serde_json::Value) -> Vec<i32> {
    risks
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_i64).filter_map(|v| i32::try_from(v).ok()).collect())
        .unwrap_or_default()
}

/// Parties as stored (a JSON array of objects).
pub(crate) fn parties_from_json(parties: &serde_json::Value) -> Vec<pb::Party> {
    let text = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
    parties
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| pb::Party {
                    name: text(p, "name"),
                    role: p
                        .get("role")
                        .and_then(serde_json::Value::as_i64)
                        .and_then(|v| i32::try_from(v).ok())
                        .unwrap_or(0),
                    phone: text(p, "phone"),
                    resident_id: text(p, "resident_id"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A summary from the first 19 columns of `r`, in the order of [`SUMMARY`].
pub(crate) fn summary(r: &tokio_postgres::Row) -> CaseSummary {
    CaseSummary {
        case_id: r.get(0),
        state: i32::from(r.get::<_, i16>(1)),
        channel: i32::from(r.get::<_, i16>(2)),
        external_ref: r.get(3),
        category: r.get(4),
        description: r.get(5),
        unit_code: r.get(6),
        address: r.get(7),
        urgency: i32::from(r.get::<_, i16>(8)),
        risk_signals: risks_from_json(&r.get(9)),
        parties: parties_from_json(&r.get(10)),
        tier: i32::from(r.get::<_, i16>(11)),
        committee_id: r.get(12),
        committee_unit_code: r.get(13),
        owner_unit: r.get(14),
        risk_level: i32::from(r.get::<_, i16>(15)),
        version: u64::try_from(r.get::<_, i64>(16)).unwrap_or(0),
        registered_at_ms: ms_from_time(r.get(17)),
        updated_at_ms: ms_from_time(r.get(18)),
    }
}

/// The case file of one case, or `None` when the read model does not know it.
///
/// # Errors
/// Database errors; a stored envelope that cannot be decoded.
pub async fn get_case(client: &impl GenericClient, case_id: Uuid) -> Result<Option<CaseFile>> {
    let Some(row) = client.query_opt(&format!("SELECT {SUMMARY} FROM cases WHERE case_id = $1"), &[&case_id]).await?
    else {
        return Ok(None);
    };
    let mut timeline = Vec::new();
    for r in client
        .query(
            "SELECT stream_sequence, envelope FROM case_events WHERE case_id = $1 ORDER BY case_version",
            &[&case_id],
        )
        .await?
    {
        let sequence = u64::try_from(r.get::<_, i64>(0)).unwrap_or(0);
        let bytes: Vec<u8> = r.get(1);
        let envelope = pb::EventEnvelope::decode(bytes.as_slice()).map_err(|e| Error::Unapplicable {
            projection: cases::NAME.to_owned(),
            sequence,
            problem: format!("stored envelope cannot be decoded: {e}"),
        })?;
        timeline.push(TimelineEntry { stream_sequence: sequence, envelope });
    }
    Ok(Some(CaseFile { summary: summary(&row), timeline }))
}

/// Filters and position of a queue page.
#[derive(Debug, Clone, Default)]
pub struct QueueQuery {
    /// Significant prefix of the unit whose subtree is listed.
    pub unit_prefix: String,
    pub states: Vec<i32>,
    pub urgencies: Vec<i32>,
    pub limit: u32,
    /// Keyset position: (registered_at ms, case id) of the last row of the previous page.
    pub after: Option<(i64, Uuid)>,
}

/// A page of open cases owned within a unit subtree, oldest registration first.
///
/// # Errors
/// Database errors.
pub async fn list_queue(client: &impl GenericClient, q: &QueueQuery) -> Result<Vec<CaseSummary>> {
    let states: Vec<i16> = q.states.iter().filter_map(|s| i16::try_from(*s).ok()).collect();
    let urgencies: Vec<i16> = q.urgencies.iter().filter_map(|s| i16::try_from(*s).ok()).collect();
    let pattern = prefix_pattern(&q.unit_prefix);
    let (after_at, after_id) = q.after.map_or((None, None), |(at, id)| (Some(crate::time_from_ms(at)), Some(id)));
    let limit = i64::from(q.limit);
    let rows = client
        .query(
            &format!(
                "SELECT {SUMMARY} FROM cases WHERE owner_unit LIKE $1 \
                 AND (cardinality($2::int2[]) = 0 OR state = ANY($2)) \
                 AND (cardinality($3::int2[]) = 0 OR urgency = ANY($3)) \
                 AND ($4::timestamptz IS NULL OR (registered_at, case_id) > ($4, $5)) \
                 ORDER BY registered_at, case_id LIMIT $6"
            ),
            &[&pattern, &states, &urgencies, &after_at, &after_id, &limit],
        )
        .await?;
    Ok(rows.iter().map(summary).collect())
}

/// A `LIKE` pattern matching every text that starts with `prefix`.
pub(crate) fn prefix_pattern(prefix: &str) -> String {
    format!("{}%", prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

/// Stream sequence the `cases` read model has applied.
///
/// # Errors
/// Database errors.
pub async fn applied_sequence(client: &impl GenericClient) -> Result<u64> {
    Ok(checkpoint(client, cases::NAME).await?.sequence)
}

//! The `cases` read model: one summary row per case (what queues list) and every event of every
//! case (the timeline, the case file). Batches are applied with one read and two set-based writes.

use prost::Message as _;
use tokio_postgres::Transaction;

use fengqiao_domain::event::type_name;
use fengqiao_eventstore::StoredCommit;

use crate::Result;
use crate::projector::ReadModel;
use crate::summary::{self, big};

/// Name of this read model in `projection_checkpoints` and on the command line.
pub const NAME: &str = "cases";

/// The case summary and timeline read model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cases;

impl ReadModel for Cases {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema_sql(&self) -> &'static str {
        concat!(include_str!("schema_summary.sql"), include_str!("schema_cases.sql"))
    }

    fn views_sql(&self) -> &'static str {
        include_str!("views_cases.sql")
    }

    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'_>,
        schema: &'a str,
        commits: &'a [StoredCommit],
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'a {
        apply(tx, schema, commits)
    }
}

/// Applies a batch of commits to the tables in `schema`.
///
/// # Errors
/// [`crate::Error::Unapplicable`] for a commit that does not fit the stored state (unknown case, a
/// gap in case versions, a missing event); database errors otherwise.
async fn apply(tx: &Transaction<'_>, schema: &str, commits: &[StoredCommit]) -> Result<()> {
    let steps = summary::steps(NAME, commits)?;
    let table = format!("{schema}.cases");
    let mut rows = summary::load(tx, &table, &summary::ids(&steps)).await?;

    let mut ev_case = Vec::with_capacity(steps.len());
    let mut ev_version = Vec::with_capacity(steps.len());
    let mut ev_seq = Vec::with_capacity(steps.len());
    let mut ev_type = Vec::with_capacity(steps.len());
    let mut ev_at = Vec::with_capacity(steps.len());
    let mut ev_bytes = Vec::with_capacity(steps.len());
    for step in &steps {
        summary::fold(NAME, &mut rows, step)?;
        ev_case.push(step.case_id);
        ev_version.push(big(step.envelope.case_version));
        ev_seq.push(big(step.sequence));
        ev_type.push(type_name(step.kind).to_owned());
        ev_at.push(step.at);
        ev_bytes.push(step.envelope.encode_to_vec());
    }

    tx.execute(
        &format!(
            "INSERT INTO {schema}.case_events (case_id, case_version, stream_sequence, event_type, occurred_at, envelope) \
             SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::text[], $5::timestamptz[], $6::bytea[])"
        ),
        &[&ev_case, &ev_version, &ev_seq, &ev_type, &ev_at, &ev_bytes],
    )
    .await?;
    let rows: Vec<&summary::CaseRow> = rows.values().collect();
    summary::store(tx, &table, &rows).await
}

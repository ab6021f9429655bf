//! Where a read model stands against the stream: its generation, checkpoint, lag in commits and
//! in seconds, and the failure that stopped it, if any. What `fengqiao projections status` prints
//! and what the service exports as metrics.

use std::time::SystemTime;

use tokio_postgres::GenericClient;

use fengqiao_eventstore::EventStore;

use crate::projector::checkpoint;
use crate::rebuild::generation;
use crate::{Result, ms_from_time};

/// The state of one read model.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub projection: String,
    /// Generation schema the views point at (`rm_<name>_<n>`), and its `n`.
    pub schema: String,
    pub generation: u32,
    /// Last stream sequence applied.
    pub sequence: u64,
    /// Last sequence in the stream.
    pub stream_last: u64,
    /// Commits in the stream the read model has not applied.
    pub lag_events: u64,
    /// Age of the oldest commit not applied yet (0 when caught up); `None` when the stream could
    /// not say when it stored that commit.
    pub lag_seconds: Option<f64>,
    /// Sequence and cause of the commit that stopped the read model.
    pub failure: Option<(u64, String)>,
}

/// The status of read model `name`, with the stream's last sequence `stream_last` (read once for
/// all models).
///
/// # Errors
/// [`crate::Error::Missing`] when the read model was never set up; database errors. A stream that
/// cannot say when it stored a commit leaves `lag_seconds` empty rather than failing.
pub async fn status(client: &impl GenericClient, store: &EventStore, name: &str, stream_last: u64) -> Result<Status> {
    let at = checkpoint(client, name).await?;
    let lag_events = stream_last.saturating_sub(at.sequence);
    let lag_seconds = if lag_events == 0 {
        Some(0.0)
    } else {
        match store.stored_at(at.sequence + 1).await {
            Ok(stored) => {
                let now_ms = ms_from_time(SystemTime::now());
                Some((now_ms - stored.saturating_mul(1000)).max(0) as f64 / 1000.0)
            }
            Err(e) => {
                tracing::warn!(projection = name, sequence = at.sequence + 1, error = %e, "cannot read when the stream stored a commit");
                None
            }
        }
    };
    Ok(Status {
        projection: name.to_owned(),
        generation: generation(name, &at.schema).unwrap_or(0),
        schema: at.schema,
        sequence: at.sequence,
        stream_last,
        lag_events,
        lag_seconds,
        failure: at.failure,
    })
}

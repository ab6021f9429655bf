//! Read models in PostgreSQL, folded from the case stream.
//!
//! - [`migrate`]: the schema, applied once per database by `fengqiao migrate`;
//! - [`cases`]: the case summary and timeline read model;
//! - [`deadlines`]: every open deadline of every case, for the timers and the escalation board;
//! - [`projector`]: applies commits in stream order, batch by batch, with the checkpoint in the
//!   same transaction as the rows (effectively once), and stops loudly on an event it cannot apply;
//! - [`query`]: what the gRPC queries read, with read-your-writes waits;
//! - [`rebuild`]: a fresh generation of a read model built beside the live one, then swapped in;
//! - [`status`]: where each read model stands against the stream (lag, failure).

pub mod cases;
pub mod deadlines;
pub mod migrate;
pub mod projector;
pub mod query;
pub mod rebuild;
pub mod referrals;
pub mod statistics;
pub mod status;
mod summary;
pub mod work_queues;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Projection failures.
///
/// ### Handling
/// `Database` and `Stream` are retryable after a pause (the projector resumes from its
/// checkpoint); `Unapplicable` stops the read model until an operator fixes the cause;
/// `NotCaughtUp` tells a reader to retry later or drop its minimum sequence; `Rebuild` leaves
/// the live read model as it was, and the rebuild can be run again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("event stream: {0}")]
    Stream(String),
    #[error("event store: {0}")]
    Store(#[from] fengqiao_eventstore::Error),
    /// The projector met a commit it cannot apply; the read model is stopped at that sequence.
    #[error("read model {projection} stopped at stream sequence {sequence}: {problem}")]
    Unapplicable { projection: String, sequence: u64, problem: String },
    /// The read model has not reached the requested stream sequence in time.
    #[error("the read model has applied stream sequence {applied}, not yet {wanted}; retry shortly")]
    NotCaughtUp { wanted: u64, applied: u64 },
    /// The read model's configuration is unusable (e.g. the SLA policy or its calendars).
    #[error("read model configuration: {0}")]
    Config(String),
    /// A rebuild that cannot go on (another one runs, the swap could not get its locks); the live
    /// generation is unchanged.
    #[error("rebuild of read model {0}")]
    Rebuild(String),
    /// A read model that was never set up (run `fengqiao migrate`).
    #[error("read model {0} is not set up; run `fengqiao migrate`")]
    Missing(String),
}

/// Result of projection operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Milliseconds since the epoch as a `SystemTime` (PostgreSQL `timestamptz`).
pub fn time_from_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// A `SystemTime` as milliseconds since the epoch.
pub fn ms_from_time(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

//! Operating the read models from the command line: `fengqiao projections status` prints where
//! each read model stands against the stream, `fengqiao projections rebuild NAME` rebuilds one
//! beside the live generation and swaps it in while the service keeps serving
//! ([`fengqiao_projection::rebuild`]).

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::Context as _;

use fengqiao_projection::rebuild::{self, RebuildConfig, Rebuilt};
use fengqiao_projection::status::{self, Status};

use crate::app::{self, READ_MODELS};
use crate::settings::Settings;
use crate::with_read_model;

/// `fengqiao projections …`
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Per read model: generation, checkpoint, stream end, lag in commits and seconds, and the
    /// failure that stopped it. Exits with an error when a read model is stopped.
    Status,
    /// Build a fresh generation of read model NAME from stream sequence 1 beside the live one,
    /// while queries and the projector keep running, then swap it in atomically and drop the old
    /// one. Clears the failure of a stopped read model once the new generation has passed it.
    Rebuild {
        /// The read model (see `fengqiao projections status`).
        name: String,
        /// Most commits applied in one transaction.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
}

/// Runs a `projections` subcommand, printing its outcome.
///
/// # Errors
/// NATS or PostgreSQL unreachable, an unknown read model, a failed rebuild, or (for `status`) a
/// stopped read model.
pub async fn run(settings: &Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Status => {
            let statuses = statuses(settings).await?;
            print!("{}", render(&statuses));
            let stopped: Vec<&str> =
                statuses.iter().filter(|s| s.failure.is_some()).map(|s| s.projection.as_str()).collect();
            anyhow::ensure!(stopped.is_empty(), "read models stopped: {}", stopped.join(", "));
            Ok(())
        }
        Command::Rebuild { name, batch } => {
            crate::telemetry::init();
            let config = RebuildConfig { max_batch: batch.max(1), ..RebuildConfig::default() };
            let r = rebuild(settings, &name, &config).await?;
            println!(
                "rebuilt {}: {} commits applied; now {} at stream sequence {} ({} {}){}",
                r.projection,
                r.applied,
                r.new_schema,
                r.sequence,
                r.old_schema,
                if r.old_dropped { "dropped" } else { "NOT dropped: drop that schema by hand" },
                r.cleared_failure.map_or(String::new(), |s| format!("; failure at sequence {s} cleared")),
            );
            Ok(())
        }
    }
}

/// `name` as one of [`READ_MODELS`], or an error listing them.
///
/// # Errors
/// `name` is not a read model of this service.
pub fn read_model(name: &str) -> anyhow::Result<&'static str> {
    READ_MODELS
        .iter()
        .find(|n| **n == name)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("unknown read model {name:?}; the read models are: {}", READ_MODELS.join(", ")))
}

/// The status of every read model the service runs, in [`READ_MODELS`] order.
///
/// # Errors
/// NATS or PostgreSQL unreachable; migrations not run.
pub async fn statuses(settings: &Settings) -> anyhow::Result<Vec<Status>> {
    let store = app::open_store(settings).await?;
    let pool = app::pool(&settings.database_url, 1)?;
    let client = pool.get().await.context("connecting to PostgreSQL")?;
    collect(&**client, &store).await
}

/// The status of every read model, read through `client` and `store`.
///
/// # Errors
/// NATS or PostgreSQL unreachable; migrations not run.
pub async fn collect(
    client: &impl tokio_postgres::GenericClient,
    store: &fengqiao_eventstore::EventStore,
) -> anyhow::Result<Vec<Status>> {
    let stream_last = store.last_sequence().await.context("reading the end of the stream")?;
    let mut out = Vec::with_capacity(READ_MODELS.len());
    for name in READ_MODELS {
        out.push(status::status(client, store, name, stream_last).await?);
    }
    Ok(out)
}

/// Rebuilds read model `name` (see [`Command::Rebuild`]).
///
/// # Errors
/// An unknown read model (the error lists the known ones); NATS or PostgreSQL unreachable; the
/// rebuild failed (the live generation is then unchanged).
pub async fn rebuild(settings: &Settings, name: &str, config: &RebuildConfig) -> anyhow::Result<Rebuilt> {
    let name = read_model(name)?;
    let store = app::open_store(settings).await?;
    let pool = app::pool(&settings.database_url, 1)?;
    let sla = Arc::new(settings.rules.load()?);
    let rebuilt = with_read_model!(name, sla, |model| rebuild::run(&model, &store, &pool, config).await)
        .ok_or_else(|| anyhow::anyhow!("read model {name} has no rebuild: add it to fengqiao::with_read_model"))?;
    Ok(rebuilt?)
}

/// The statuses as a table.
pub fn render(statuses: &[Status]) -> String {
    let mut out = format!(
        "{:<14} {:>10} {:>12} {:>12} {:>10} {:>10}  {}\n",
        "READ MODEL", "GENERATION", "APPLIED", "STREAM", "LAG", "LAG (s)", "STATE"
    );
    for s in statuses {
        let seconds = s.lag_seconds.map_or("?".to_owned(), |t| format!("{t:.1}"));
        let state = match &s.failure {
            Some((at, problem)) => format!("STOPPED at sequence {at}: {problem}"),
            None => "running".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>12} {:>12} {:>10} {:>10}  {}",
            s.projection, s.generation, s.sequence, s.stream_last, s.lag_events, seconds, state
        );
    }
    out
}

/// How often the service refreshes the read-model gauges.
pub const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Sets the read-model gauges from `statuses` (names in docs/read-models.md, "Metrics").
pub fn record(statuses: &[Status]) {
    if let Some(first) = statuses.first() {
        metrics::gauge!("fengqiao_stream_last_sequence").set(first.stream_last as f64);
    }
    for s in statuses {
        let name = s.projection.clone();
        metrics::gauge!("fengqiao_projection_applied_sequence", "projection" => name.clone()).set(s.sequence as f64);
        metrics::gauge!("fengqiao_projection_lag_events", "projection" => name.clone()).set(s.lag_events as f64);
        if let Some(seconds) = s.lag_seconds {
            metrics::gauge!("fengqiao_projection_lag_seconds", "projection" => name.clone()).set(seconds);
        }
        metrics::gauge!("fengqiao_projection_generation", "projection" => name.clone()).set(f64::from(s.generation));
        let stopped = if s.failure.is_some() { 1.0 } else { 0.0 };
        metrics::gauge!("fengqiao_projection_stopped", "projection" => name).set(stopped);
    }
}

/// Refreshes the read-model gauges every [`REPORT_EVERY`] until `stop` resolves. A failed round
/// is logged and the next one tried; it never stops the service.
pub async fn report(
    pool: deadpool_postgres::Pool,
    store: fengqiao_eventstore::EventStore,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let round = async {
            let client = pool.get().await?;
            collect(&**client, &store).await
        };
        match round.await {
            Ok(statuses) => record(&statuses),
            Err(e) => tracing::warn!(error = %e, "cannot read the read models' status for metrics"),
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(REPORT_EVERY) => {}
        }
    }
}

//! The projector: reads the case stream from its checkpoint with one ordered consumer, applies
//! whatever is ready (up to a batch) in one transaction together with the new checkpoint, and
//! announces the applied sequence to in-process readers.
//!
//! A crash between two batches loses nothing and applies nothing twice: the checkpoint and the rows
//! commit together, and the next start resumes after the checkpoint. A commit the read model cannot
//! apply stops that read model: the failure is written to `projection_checkpoints`, logged at error
//! level and counted — it is never skipped — and the projector waits for a rebuild to clear it.
//!
//! Each batch locks its checkpoint row and re-reads the generation schema from it, so a rebuild
//! ([`crate::rebuild`]) can swap in a new generation under a running service.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{OrderedConfig, OrderedError};
use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio::sync::watch;

use fengqiao_eventstore::{EventStore, StoredCommit, decode};

use crate::{Error, Result};

/// A read model the projector can maintain: its tables (created per generation schema) and how a
/// batch of commits changes them. Implementations live beside their queries (e.g. [`crate::cases`]).
pub trait ReadModel: Send + Sync + 'static {
    /// Name in `projection_checkpoints`, on the command line and in metrics.
    fn name(&self) -> &'static str;

    /// DDL creating the model's tables in the schema named by the `{schema}` placeholder.
    fn schema_sql(&self) -> &'static str;

    /// DDL pointing the public query views at the schema named by `{schema}`.
    fn views_sql(&self) -> &'static str;

    /// Applies `commits` (in stream order) to the tables in `schema`, inside `tx`.
    ///
    /// # Errors
    /// [`Error::Unapplicable`] for a commit that does not fit the stored state; database errors.
    fn apply<'a>(
        &'a self,
        tx: &'a tokio_postgres::Transaction<'_>,
        schema: &'a str,
        commits: &'a [StoredCommit],
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'a;

    /// Called once the transaction of the batch last given to [`ReadModel::apply`] has committed
    /// (never for a batch that rolled back, nor during a rebuild). A model that announces its
    /// changes to live watchers publishes here what `apply` prepared; the default does nothing.
    fn committed(&self) {}

    /// Called when the read model has applied commits up to `through` that this projector did
    /// not apply: another instance's projector did, or a rebuild swapped in a generation that
    /// had applied them. What [`ReadModel::committed`] would have announced for them never was;
    /// a model with live watchers tells them to reload. The default does nothing.
    fn skipped(&self, _through: u64) {}
}

/// Creates generation `n` of `model`'s tables in schema `rm_<name>_<n>`; returns the schema.
///
/// # Errors
/// Database errors, e.g. when that generation exists already.
pub async fn create_generation(
    client: &impl tokio_postgres::GenericClient,
    model: &impl ReadModel,
    n: u32,
) -> Result<String> {
    let schema = format!("rm_{}_{n}", model.name());
    client.batch_execute(&model.schema_sql().replace("{schema}", &schema)).await?;
    Ok(schema)
}

/// Points `model`'s query views at `schema`.
///
/// # Errors
/// Database errors.
pub async fn point_views(
    client: &impl tokio_postgres::GenericClient,
    model: &impl ReadModel,
    schema: &str,
) -> Result<()> {
    client.batch_execute(&model.views_sql().replace("{schema}", schema)).await?;
    Ok(())
}

/// Sets up generation 1 of `model` unless it has a checkpoint already. Returns whether it did.
///
/// # Errors
/// Database errors.
pub async fn ensure(client: &impl tokio_postgres::GenericClient, model: &impl ReadModel) -> Result<bool> {
    let exists = client
        .query_opt("SELECT 1 FROM projection_checkpoints WHERE projection = $1", &[&model.name()])
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    let schema = create_generation(client, model, 1).await?;
    point_views(client, model, &schema).await?;
    client
        .execute(
            "INSERT INTO projection_checkpoints (projection, schema_name) VALUES ($1, $2)",
            &[&model.name(), &schema],
        )
        .await?;
    Ok(true)
}

/// Projector settings.
#[derive(Debug, Clone)]
pub struct ProjectorConfig {
    /// Most commits applied in one transaction.
    pub max_batch: usize,
    /// After this long without a message the projector compares its position with the end of
    /// the stream; behind it, the consumer is taken as lost and the session starts again from
    /// the checkpoint. The consumer lives on one NATS server and goes with it (a restart, a
    /// cluster node killed); the client library's own recovery took 15 s or more to notice.
    /// Also the longest the projector waits for its consumer to be created, or for the stream's
    /// end, before starting over.
    pub stall_check: Duration,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        Self { max_batch: 1000, stall_check: Duration::from_secs(2) }
    }
}

/// Where a read model stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub schema: String,
    pub sequence: u64,
    pub failure: Option<(u64, String)>,
}

/// Reads the checkpoint of `projection`.
///
/// # Errors
/// [`Error::Missing`] when the read model was never set up; database errors.
pub async fn checkpoint(client: &impl tokio_postgres::GenericClient, projection: &str) -> Result<Checkpoint> {
    let row = client
        .query_opt(
            "SELECT schema_name, sequence, failed_at_sequence, failure FROM projection_checkpoints WHERE projection = $1",
            &[&projection],
        )
        .await?
        .ok_or_else(|| Error::Missing(projection.to_owned()))?;
    Ok(checkpoint_of(&row))
}

fn checkpoint_of(row: &tokio_postgres::Row) -> Checkpoint {
    let failed: Option<i64> = row.get(2);
    let failure: Option<String> = row.get(3);
    Checkpoint {
        schema: row.get(0),
        sequence: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
        failure: failed.zip(failure).map(|(s, f)| (u64::try_from(s).unwrap_or(0), f)),
    }
}

/// Read models stopped on a commit they could not apply since this process started (all models).
static STOPS: AtomicU64 = AtomicU64::new(0);

/// How often a stopped read model looks whether an operator has cleared its failure (by a rebuild).
const STOPPED_POLL: Duration = Duration::from_secs(2);

/// Number of times a read model of this process stopped on a commit it could not apply: the
/// counter behind the error log and `projection_checkpoints.failure`, for metrics and tests.
pub fn stops() -> u64 {
    STOPS.load(Ordering::Relaxed)
}

/// Runs the projector of `model` until `shutdown` resolves. Every applied sequence is sent on
/// `applied`.
///
/// A commit the model cannot apply stops this read model (and only it): the failure is recorded in
/// `projection_checkpoints`, logged at error level and counted ([`stops`]); the projector then waits
/// until the failure is cleared — `fengqiao projections rebuild` does that when it swaps in a
/// generation built by fixed code — and resumes from the checkpoint. Nothing is ever skipped.
///
/// # Errors
/// [`Error::Missing`] before migrations ran. Transient database and stream errors are retried with
/// backoff, not returned.
pub async fn run<M: ReadModel>(
    model: M,
    store: EventStore,
    pool: Pool,
    config: ProjectorConfig,
    applied: watch::Sender<u64>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    const FIRST: Duration = Duration::from_millis(100);
    // Short: while the projector waits, reads with a minimum sequence wait too. A retry is one
    // connection attempt, cheap for the server that is coming back.
    const LONGEST: Duration = Duration::from_secs(1);
    let mut backoff = FIRST;
    // Newest sequence this projector applied or announced, across sessions.
    let mut committed: Option<u64> = None;
    loop {
        let mut progressed = false;
        let attempt = run_once(&model, &store, &pool, &config, &applied, &mut committed, &mut progressed);
        let result = tokio::select! {
            () = &mut shutdown => return Ok(()),
            result = attempt => result,
        };
        match result {
            Err(e @ Error::Missing(_)) => return Err(e),
            Err(Error::Unapplicable { projection, sequence, problem }) => {
                tracing::error!(projection, sequence, problem = %problem,
                    "read model stopped; rebuild it with fixed code (`fengqiao projections rebuild {projection}`)");
                loop {
                    tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        () = tokio::time::sleep(STOPPED_POLL) => {}
                    }
                    match pool.get().await {
                        Ok(client) => match checkpoint(&**client, model.name()).await {
                            Ok(c) if c.failure.is_none() => break,
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot read the stopped read model's checkpoint"),
                        },
                        Err(e) => tracing::warn!(error = %e, "cannot read the stopped read model's checkpoint"),
                    }
                }
                tracing::info!(projection = model.name(), "read model failure cleared; resuming");
            }
            Err(e) => {
                // A session that applied something was healthy: this is a new interruption, not
                // the same one again, so it starts from the shortest pause.
                if progressed {
                    backoff = FIRST;
                }
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "projector interrupted; resuming from checkpoint");
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(LONGEST);
            }
            Ok(never) => match never {},
        }
    }
}

/// Messages of the stream as the ordered consumer delivers them, a batch at a time.
pub(crate) type Batch = Vec<Result<async_nats::jetstream::Message, OrderedError>>;

/// Decodes a batch of stream messages, dropping those at or below `last` (redeliveries); `last`
/// moves to the newest sequence seen.
///
/// # Errors
/// `(sequence, problem)` for a message that is not a commit; [`Error::Stream`] otherwise.
pub(crate) fn decode_batch(batch: Batch, last: &mut u64) -> Result<Result<Vec<StoredCommit>, (u64, String)>> {
    let mut commits: Vec<StoredCommit> = Vec::with_capacity(batch.len());
    for message in batch {
        let message = message.map_err(|e| Error::Stream(e.to_string()))?;
        let sequence = message.info().map_err(|e| Error::Stream(e.to_string()))?.stream_sequence;
        if sequence <= *last {
            continue;
        }
        match decode(sequence, &message.payload) {
            Ok(commit) => commits.push(commit),
            Err(e) => return Ok(Err((sequence, e.to_string()))),
        }
        *last = sequence;
    }
    Ok(Ok(commits))
}

/// An ordered consumer of the stream from `start` (inclusive), batched up to `max_batch`.
pub(crate) async fn batches(
    store: &EventStore,
    start: u64,
    max_batch: usize,
) -> Result<impl futures::Stream<Item = Batch> + Unpin> {
    let stream =
        store.jetstream().get_stream(&store.config().stream).await.map_err(|e| Error::Stream(e.to_string()))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start.max(1) },
            ..Default::default()
        })
        .await
        .map_err(|e| Error::Stream(e.to_string()))?;
    let messages = consumer.messages().await.map_err(|e| Error::Stream(e.to_string()))?;
    Ok(messages.ready_chunks(max_batch))
}

/// Applies `commits` to `schema` inside `tx`, classifying failures: an event the model rejects, or
/// a row the database refuses (bad data class 22, constraint class 23), is unapplicable.
pub(crate) async fn apply_batch<M: ReadModel>(
    model: &M,
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    commits: &[StoredCommit],
) -> Result<()> {
    let newest = commits.last().map_or(0, |c| c.sequence);
    match model.apply(tx, schema, commits).await {
        Err(Error::Database(e))
            if e.code().is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23")) =>
        {
            // The server's message names the table and the constraint; the error's own text
            // says only "db error".
            let problem = e.as_db_error().map_or_else(|| e.to_string(), ToString::to_string);
            Err(Error::Unapplicable { projection: model.name().to_owned(), sequence: newest, problem })
        }
        other => other,
    }
}

/// Locks `name`'s checkpoint row for the rest of `tx`: the projector's batches and a rebuild's
/// swap take this lock first, so a swap never interleaves with a batch.
///
/// # Errors
/// [`Error::Missing`]; database errors.
pub(crate) async fn lock_checkpoint(tx: &tokio_postgres::Transaction<'_>, name: &str) -> Result<Checkpoint> {
    let row = tx
        .query_opt(
            "SELECT schema_name, sequence, failed_at_sequence, failure FROM projection_checkpoints \
             WHERE projection = $1 FOR UPDATE",
            &[&name],
        )
        .await?
        .ok_or_else(|| Error::Missing(name.to_owned()))?;
    Ok(checkpoint_of(&row))
}

/// One consumer session: from the checkpoint until an error (it never ends otherwise). Sets
/// `progressed` once it has committed a batch. `committed` is the newest sequence an earlier
/// session applied or announced; commits the checkpoint has moved past since are
/// [`ReadModel::skipped`].
///
/// Each batch locks the checkpoint row first and re-reads it: when a rebuild has swapped in a new
/// generation, the batch goes to the new schema and skips what the rebuild already applied.
async fn run_once<M: ReadModel>(
    model: &M,
    store: &EventStore,
    pool: &Pool,
    config: &ProjectorConfig,
    applied: &watch::Sender<u64>,
    committed: &mut Option<u64>,
    progressed: &mut bool,
) -> Result<std::convert::Infallible> {
    let mut client = pool.get().await?;
    let name = model.name();
    let start = checkpoint(&**client, name).await?;
    if let Some((sequence, problem)) = start.failure {
        return Err(Error::Unapplicable { projection: name.to_owned(), sequence, problem });
    }
    if committed.is_some_and(|c| start.sequence > c) {
        model.skipped(start.sequence);
    }
    *committed = Some(start.sequence);
    applied.send_replace(start.sequence);
    tracing::debug!(projection = name, checkpoint = start.sequence, "projector session starting");
    // A cluster electing a new metadata leader drops the request that creates the consumer; the
    // client would wait its whole request timeout (10 s) before trying again.
    let mut batches = tokio::time::timeout(config.stall_check, batches(store, start.sequence + 1, config.max_batch))
        .await
        .map_err(|_| Error::Stream("creating the consumer got no answer; starting over".to_owned()))??;
    let mut schema = start.schema;
    // Newest sequence received from the consumer.
    let mut last = start.sequence;
    loop {
        let batch = match tokio::time::timeout(config.stall_check, batches.next()).await {
            Ok(Some(batch)) => batch,
            Ok(None) => return Err(Error::Stream("the stream's message feed ended".to_owned())),
            // Quiet: either nothing new was written, or the consumer is gone without the feed
            // saying so. Only the stream itself can tell which.
            Err(_) => {
                // Bounded too: in a cluster electing new leaders the request can go unanswered
                // for the client's whole request timeout, and a fresh session costs little.
                let end = tokio::time::timeout(config.stall_check, store.last_sequence())
                    .await
                    .map_err(|_| Error::Stream("the stream does not answer; starting over".to_owned()))??;
                if end > last {
                    return Err(Error::Stream(format!(
                        "no message for {:?} while the stream is at {end}, past {last}: the consumer is lost",
                        config.stall_check
                    )));
                }
                continue;
            }
        };
        let mut commits = match decode_batch(batch, &mut last)? {
            Ok(commits) => commits,
            Err((sequence, problem)) => return Err(stop(&**client, name, sequence, problem).await),
        };
        if commits.is_empty() {
            continue;
        }
        let tx = client.transaction().await?;
        let now = lock_checkpoint(&tx, name).await?;
        if let Some((sequence, problem)) = now.failure {
            return Err(Error::Unapplicable { projection: name.to_owned(), sequence, problem });
        }
        let mine = committed.unwrap_or(start.sequence);
        if now.sequence < mine {
            return Err(Error::Stream(format!(
                "the checkpoint of {name} moved back from {mine} to {}; resuming from it",
                now.sequence
            )));
        }
        if now.sequence > mine {
            model.skipped(now.sequence);
            *committed = Some(now.sequence);
        }
        if now.schema != schema {
            tracing::info!(projection = name, from = %schema, to = %now.schema, at = now.sequence, "switching to the rebuilt generation");
            schema = now.schema;
        }
        commits.retain(|c| c.sequence > now.sequence);
        let Some(newest) = commits.last().map(|c| c.sequence) else {
            // Everything here was applied already (by a rebuild's swap).
            tx.commit().await?;
            *committed = Some(now.sequence);
            applied.send_replace(now.sequence);
            continue;
        };
        match apply_batch(model, &tx, &schema, &commits).await {
            Ok(()) => {}
            Err(Error::Unapplicable { sequence, problem, .. }) => {
                drop(tx);
                return Err(stop(&**client, name, sequence, problem).await);
            }
            Err(e) => return Err(e),
        }
        let seq = i64::try_from(newest).unwrap_or(i64::MAX);
        tx.execute(
            "UPDATE projection_checkpoints SET sequence = $2, updated_at = now() WHERE projection = $1",
            &[&name, &seq],
        )
        .await?;
        tx.commit().await?;
        *committed = Some(newest);
        // Readers first, then watchers: a watcher that reads the applied sequence after
        // subscribing is sure to receive every change past it.
        applied.send_replace(newest);
        model.committed();
        *progressed = true;
    }
}

/// Records that the read model stopped at `sequence` and returns the error to raise.
async fn stop(client: &impl tokio_postgres::GenericClient, name: &str, sequence: u64, problem: String) -> Error {
    STOPS.fetch_add(1, Ordering::Relaxed);
    metrics::counter!("fengqiao_projection_stops_total", "projection" => name.to_owned()).increment(1);
    tracing::error!(projection = name, sequence, problem = %problem, "read model stopped: a commit cannot be applied");
    let seq = i64::try_from(sequence).unwrap_or(i64::MAX);
    if let Err(e) = client
        .execute(
            "UPDATE projection_checkpoints SET failed_at_sequence = $2, failure = $3 WHERE projection = $1",
            &[&name, &seq, &problem],
        )
        .await
    {
        tracing::error!(error = %e, "could not record the read model's failure");
    }
    Error::Unapplicable { projection: name.to_owned(), sequence, problem }
}

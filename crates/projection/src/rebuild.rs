//! Rebuilding a read model while the service keeps serving it: generation `n + 1` is built beside
//! the live generation `n` from stream sequence 1, chasing the live projector, and then swapped in
//! atomically.
//!
//! 1. A session advisory lock makes sure only one rebuild of a read model runs at a time.
//! 2. The new generation's tables are created in schema `rm_<name>_<n+1>` (a leftover of an
//!    interrupted rebuild is dropped first: the views never pointed at it).
//! 3. Without any lock on the live model, the stream is applied to the new tables in batches, one
//!    transaction each, until the new generation is within a batch of the live checkpoint (of the
//!    end of the stream when the live model is stopped on a failure).
//! 4. The swap is one transaction: it locks the live checkpoint row (so no projector batch runs
//!    meanwhile), applies the last commits up to the live checkpoint, repoints the public views at
//!    the new schema and moves the checkpoint row to it. Queries see the old generation until the
//!    commit and the new one after; the projector's next batch reads the row and continues in the
//!    new schema (see [`crate::projector`]). Repointing a view waits for queries reading it; the
//!    wait is bounded by a lock timeout, and a swap that times out is tried again.
//! 5. The old schema is dropped.
//!
//! A live read model stopped on a commit it could not apply is rebuilt up to the end of the stream;
//! when the new generation has passed the failed sequence, the swap clears the failure and the
//! projector resumes. A commit the rebuilt generation cannot apply either fails the rebuild: the
//! new schema is dropped and the live generation is left as it was.

use std::collections::VecDeque;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt as _;

use fengqiao_eventstore::{EventStore, StoredCommit};

use crate::projector::{Batch, ReadModel, apply_batch, batches, checkpoint, create_generation, decode_batch};
use crate::projector::{lock_checkpoint, point_views};
use crate::{Error, Result};

/// Rebuild settings.
#[derive(Debug, Clone)]
pub struct RebuildConfig {
    /// Most commits applied in one transaction.
    pub max_batch: usize,
    /// How long the stream may stay silent before the rebuild asks it where its end is.
    pub quiet: Duration,
    /// Longest the swap waits for queries reading the old views before it gives up and tries again.
    pub swap_lock_timeout: Duration,
    /// Swaps tried before the rebuild gives up (the new generation is then dropped).
    pub swap_attempts: u32,
}

impl Default for RebuildConfig {
    fn default() -> Self {
        Self {
            max_batch: 1000,
            quiet: Duration::from_secs(2),
            swap_lock_timeout: Duration::from_secs(2),
            swap_attempts: 10,
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    pub projection: String,
    /// The generation schema that was live before.
    pub old_schema: String,
    /// Whether the old generation's schema was dropped (if not, nothing reads it any more; drop
    /// it by hand).
    pub old_dropped: bool,
    /// The generation schema now live.
    pub new_schema: String,
    /// The stream sequence the new generation had applied at the swap.
    pub sequence: u64,
    /// Commits the new generation applied.
    pub applied: u64,
    /// The failed sequence of a stopped read model that the swap cleared.
    pub cleared_failure: Option<u64>,
}

/// Arbitrary constant naming the advisory locks of rebuilds (the second key is the model's name).
const LOCK_CLASS: i32 = 0x0fe9_c1a0;

/// SQLSTATE `lock_not_available`: the swap's lock timeout passed.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// The generation number of `schema` (`rm_<name>_<n>`).
///
/// # Errors
/// [`Error::Rebuild`] when `schema` is not a generation schema of `name`.
pub fn generation(name: &str, schema: &str) -> Result<u32> {
    schema
        .strip_prefix(&format!("rm_{name}_"))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::Rebuild(format!("{name}: live schema {schema} is not named rm_{name}_<generation>")))
}

/// Rebuilds `model` from stream sequence 1 beside its live generation and swaps it in; see the
/// module documentation. Queries and the live projector keep running throughout.
///
/// # Errors
/// [`Error::Missing`] when the read model was never set up; [`Error::Rebuild`] when another
/// rebuild of it runs or the swap could not get its locks; [`Error::Unapplicable`] when the new
/// generation cannot apply a commit either; database and stream errors. In every case the live
/// generation is unchanged and the new one is dropped.
pub async fn run<M: ReadModel>(model: &M, store: &EventStore, pool: &Pool, config: &RebuildConfig) -> Result<Rebuilt> {
    let name = model.name();
    let mut client = pool.get().await?;
    let locked: bool =
        client.query_one("SELECT pg_try_advisory_lock($1, hashtext($2))", &[&LOCK_CLASS, &name]).await?.get(0);
    if !locked {
        return Err(Error::Rebuild(format!("{name}: another rebuild of this read model is running")));
    }
    let outcome = rebuild_locked(model, store, &mut client, config).await;
    // A pooled connection outlives this call: the session lock must be released explicitly.
    if let Err(e) = client.execute("SELECT pg_advisory_unlock($1, hashtext($2))", &[&LOCK_CLASS, &name]).await {
        tracing::warn!(projection = name, error = %e, "could not release the rebuild lock");
    }
    let mut rebuilt = outcome?;
    // Queries that began before the swap may still read the old tables; the drop waits for them.
    // The swap is done whatever happens here: a failed drop only leaves an unused schema.
    match client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", rebuilt.old_schema)).await {
        Ok(()) => rebuilt.old_dropped = true,
        Err(e) => tracing::warn!(projection = name, old = %rebuilt.old_schema, error = %e,
            "could not drop the old generation; drop the schema by hand"),
    }
    Ok(rebuilt)
}

/// The rebuild, once its lock is held: the new generation swapped in, or dropped on failure.
async fn rebuild_locked<M: ReadModel>(
    model: &M,
    store: &EventStore,
    client: &mut tokio_postgres::Client,
    config: &RebuildConfig,
) -> Result<Rebuilt> {
    let name = model.name();
    let live = checkpoint(&*client, name).await?;
    let schema = format!("rm_{name}_{}", generation(name, &live.schema)? + 1);
    let outcome = build_and_swap(model, store, client, config, &live.schema, &schema).await;
    if outcome.is_err() {
        // The views never pointed at it; nothing reads it.
        if let Err(e) = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await {
            tracing::warn!(projection = name, schema, error = %e, "could not drop the unfinished generation");
        }
    }
    outcome
}

async fn build_and_swap<M: ReadModel>(
    model: &M,
    store: &EventStore,
    client: &mut tokio_postgres::Client,
    config: &RebuildConfig,
    old_schema: &str,
    schema: &str,
) -> Result<Rebuilt> {
    let name = model.name();
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
    let n = generation(name, schema)?;
    create_generation(&*client, model, n).await?;
    tracing::info!(projection = name, schema, "rebuilding from sequence 1 beside {old_schema}");

    let mut feed =
        Feed { name, batches: batches(store, 1, config.max_batch).await?, pending: VecDeque::new(), received: 0 };
    let mut built = 0u64;
    let mut applied = 0u64;
    // Catch up without locks, chasing the live projector.
    loop {
        let live = checkpoint(&*client, name).await?;
        let target = if live.failure.is_some() { store.last_sequence().await? } else { live.sequence };
        if target.saturating_sub(built) <= config.max_batch as u64 {
            break;
        }
        while built < target {
            let commits = feed.take(store, config, target).await?;
            let Some(newest) = commits.last().map(|c| c.sequence) else { break };
            let tx = client.transaction().await?;
            apply_batch(model, &tx, schema, &commits).await?;
            tx.commit().await?;
            built = newest;
            applied += commits.len() as u64;
        }
        tracing::info!(projection = name, built, target, "rebuild catching up");
    }

    // Swap under the checkpoint lock.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let tx = client.transaction().await?;
        let now = lock_checkpoint(&tx, name).await?;
        if now.schema != old_schema {
            return Err(Error::Rebuild(format!(
                "{name}: the live generation changed from {old_schema} to {} during the rebuild",
                now.schema
            )));
        }
        let target = match &now.failure {
            Some(_) => store.last_sequence().await?.max(now.sequence),
            None => now.sequence,
        };
        if built > target {
            return Err(Error::Rebuild(format!(
                "{name}: the live checkpoint {target} is behind the rebuilt generation at {built}"
            )));
        }
        // Applied in this transaction: handed back to the feed if the swap rolls back.
        let mut in_swap: Vec<StoredCommit> = Vec::new();
        let mut swapped = built;
        while swapped < target {
            let commits = feed.take(store, config, target).await?;
            let Some(newest) = commits.last().map(|c| c.sequence) else { break };
            apply_batch(model, &tx, schema, &commits).await?;
            swapped = newest;
            in_swap.extend(commits);
        }
        if swapped < target {
            return Err(Error::Rebuild(format!(
                "{name}: the stream ended at {swapped}, before the live checkpoint {target}"
            )));
        }
        let timeout = format!("SET LOCAL lock_timeout = {}", config.swap_lock_timeout.as_millis().max(1));
        tx.batch_execute(&timeout).await?;
        let cleared = now.failure.as_ref().map(|(at, _)| *at).filter(|at| *at <= swapped);
        let keep_failure = now.failure.as_ref().filter(|(at, _)| *at > swapped);
        let swap = async {
            point_views(&tx, model, schema).await?;
            tx.execute(
                "UPDATE projection_checkpoints SET schema_name = $2, sequence = $3, failed_at_sequence = $4, \
                 failure = $5, updated_at = now() WHERE projection = $1",
                &[
                    &name,
                    &schema,
                    &i64::try_from(swapped).unwrap_or(i64::MAX),
                    &keep_failure.map(|(at, _)| i64::try_from(*at).unwrap_or(i64::MAX)),
                    &keep_failure.map(|(_, problem)| problem.as_str()),
                ],
            )
            .await?;
            Ok::<_, Error>(())
        };
        match swap.await {
            Ok(()) => {}
            Err(Error::Database(e)) if e.code().is_some_and(|c| c.code() == LOCK_NOT_AVAILABLE) => {
                drop(tx);
                if attempt >= config.swap_attempts {
                    return Err(Error::Rebuild(format!(
                        "{name}: queries kept the views busy through {attempt} swaps of {:?} each; \
                         run the rebuild again when they are shorter",
                        config.swap_lock_timeout
                    )));
                }
                tracing::warn!(
                    projection = name,
                    attempt,
                    "queries held the views past the lock timeout; swapping again"
                );
                for commit in in_swap.into_iter().rev() {
                    feed.pending.push_front(commit);
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        applied += in_swap.len() as u64;
        tracing::info!(projection = name, from = old_schema, to = schema, sequence = swapped, cleared_failure = ?cleared,
            "rebuilt generation swapped in");
        return Ok(Rebuilt {
            projection: name.to_owned(),
            old_schema: old_schema.to_owned(),
            old_dropped: false,
            new_schema: schema.to_owned(),
            sequence: swapped,
            applied,
            cleared_failure: cleared,
        });
    }
}

/// The stream from sequence 1, with the commits received but not applied yet.
struct Feed<S> {
    name: &'static str,
    batches: S,
    pending: VecDeque<StoredCommit>,
    /// Newest sequence received.
    received: u64,
}

impl<S: futures::Stream<Item = Batch> + Unpin> Feed<S> {
    /// The next commits up to `target` (inclusive), at most a batch; empty when the stream has
    /// nothing more up to `target`.
    async fn take(&mut self, store: &EventStore, config: &RebuildConfig, target: u64) -> Result<Vec<StoredCommit>> {
        while self.pending.front().is_none_or(|c| c.sequence <= target) && self.received < target {
            if self.pending.len() >= config.max_batch {
                break;
            }
            match tokio::time::timeout(config.quiet, self.batches.next()).await {
                Ok(Some(batch)) => match decode_batch(batch, &mut self.received)? {
                    Ok(commits) => self.pending.extend(commits),
                    Err((sequence, problem)) => {
                        return Err(Error::Unapplicable { projection: self.name.to_owned(), sequence, problem });
                    }
                },
                Ok(None) => return Err(Error::Stream("the stream's message feed ended".to_owned())),
                Err(_) => {
                    if store.last_sequence().await? <= self.received {
                        break;
                    }
                }
            }
        }
        let mut out = Vec::new();
        while out.len() < config.max_batch && self.pending.front().is_some_and(|c| c.sequence <= target) {
            out.extend(self.pending.pop_front());
        }
        Ok(out)
    }
}

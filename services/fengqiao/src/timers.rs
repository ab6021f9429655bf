//! The timer worker: fires the warnings and breaches of deadlines (DESIGN §3) through the normal
//! command path, so a firing is decided, recorded and escalated exactly like any other command.
//!
//! Each tick has two steps, kept apart so that a test can stop between them:
//!
//! 1. [`TimerWorker::plan`] reads the `deadlines` read model for what is due by the injected
//!    clock (one index range over `next_fire_ms`) and decides which firing each deadline needs:
//!    the breach once its due time has passed (it records a missed warning in the same commit),
//!    else the warning.
//! 2. [`TimerWorker::fire`] issues `WarnDeadline` or `BreachDeadline` for one firing with an
//!    idempotency key derived from the case, the deadline id and the firing.
//!
//! Exactly once, with any number of workers and any crash: the command is decided on the case as
//! the stream holds it, and the domain refuses a second warning or breach of a deadline id; the
//! append expects the case's last sequence, so of two workers racing only one commits and the
//! other decides again on the new state (and is refused); a firing whose commit was recorded but
//! whose answer was lost is answered from its idempotency key. A deadline missed while no worker
//! ran is due at the next scan and fires once. See `docs/deadlines.md`.

use std::sync::Arc;

use fengqiao_domain::command::Rules;
use fengqiao_domain::event::pb;
use fengqiao_domain::sla::Sla;
use fengqiao_domain::values::{CaseId, Ident, UnitCode};
use fengqiao_domain::{Clock, Command, Rejection};
use fengqiao_eventstore::EventStore;
use fengqiao_projection::deadlines::{self, OpenDeadline};

use crate::auth::Principal;
use crate::commands::{CommandError, CommandHandler, Meta};
use crate::settings::{Settings, TimerSettings};

/// Token subject recorded as the actor of the timers' events.
pub const ACTOR: &str = "fengqiao-timers";

/// Which firing of a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FiringKind {
    Warning,
    Breach,
}

impl FiringKind {
    fn name(self) -> &'static str {
        match self {
            Self::Warning => "warn",
            Self::Breach => "breach",
        }
    }
}

/// One firing the worker has decided on and not yet committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    pub case_id: CaseId,
    /// The deadline, e.g. `sign_for:2`.
    pub deadline_id: Ident,
    pub kind: FiringKind,
    /// Where the case arose: the unit the timers act for on it.
    pub unit: UnitCode,
}

impl Firing {
    /// The firing a due deadline needs at `now`, if any: the breach once the due time has passed,
    /// else the warning. `None` for a deadline row that cannot name a case or a deadline (it is
    /// logged; the row is the projector's, and nothing is appended for it).
    pub fn of(d: &OpenDeadline, now: jiff::Timestamp) -> Option<Self> {
        let kind = if d.deadline.breach_due(now) {
            FiringKind::Breach
        } else if d.deadline.warning_due(now) {
            FiringKind::Warning
        } else {
            return None;
        };
        let parsed = (|| {
            Ok::<_, fengqiao_domain::FieldError>((
                CaseId::parse("case_id", &d.case_id.to_string())?,
                Ident::parse("deadline_id", &d.deadline.id)?,
                UnitCode::parse("unit_code", &d.unit_code)?,
            ))
        })();
        match parsed {
            Ok((case_id, deadline_id, unit)) => Some(Self { case_id, deadline_id, kind, unit }),
            Err(e) => {
                tracing::error!(case_id = %d.case_id, deadline = %d.deadline.id, error = %e, "deadline row unusable");
                None
            }
        }
    }

    /// The idempotency key of the firing's command: the same for every worker and every attempt.
    pub fn idempotency_key(&self) -> Ident {
        let key = format!("timer:{}:{}:{}", self.kind.name(), self.deadline_id, self.case_id);
        // Deadline ids are short ASCII (`mediation:14`); the key stays well inside an Ident.
        Ident::parse("idempotency_key", &key).unwrap_or_else(|_| self.deadline_id.clone())
    }
}

/// What committing one firing came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    /// This worker recorded it, at this stream sequence.
    Recorded { sequence: u64 },
    /// Already recorded under the same key (another worker, or this one before a lost answer).
    Replayed,
    /// The case refused it: already fired by another commit, no longer due (paused, stopped),
    /// or the case moved on. The reason, for the log.
    Refused(String),
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    pub due: usize,
    pub recorded: usize,
    pub replayed: usize,
    pub refused: usize,
    /// Firings that failed for a reason worth retrying (store unavailable, repeated conflicts);
    /// they are due again at the next tick.
    pub failed: usize,
}

/// Fires due deadlines. Several may run against one database and stream.
pub struct TimerWorker {
    /// Its own command path (and case cache) on the shared stream.
    commands: CommandHandler,
    pool: deadpool_postgres::Pool,
    sla: Arc<Sla>,
    clock: Arc<dyn Clock>,
    batch: u32,
    concurrency: usize,
}

impl std::fmt::Debug for TimerWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerWorker").field("batch", &self.batch).finish_non_exhaustive()
    }
}

impl TimerWorker {
    /// A worker appending to `store`, reading the `deadlines` read model through `pool`, deciding
    /// by `sla` with time from `clock`.
    pub fn new(
        store: EventStore,
        pool: deadpool_postgres::Pool,
        sla: Arc<Sla>,
        clock: Arc<dyn Clock>,
        settings: &TimerSettings,
    ) -> Self {
        Self {
            commands: CommandHandler::new(store, clock.clone()),
            pool,
            sla,
            clock,
            batch: settings.batch.max(1),
            concurrency: settings.concurrency.max(1),
        }
    }

    /// A worker with its own connections to the stream and database of `settings`, deciding by its
    /// rules (`settings.rules`): another timer instance, as a separate process would run it.
    ///
    /// # Errors
    /// NATS or PostgreSQL unreachable; the rules unreadable or invalid.
    pub async fn connect(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = crate::app::open_store(settings).await?;
        let pool = crate::app::pool(&settings.database_url, 2)?;
        let sla = Arc::new(settings.rules.load()?);
        Ok(Self::new(store, pool, sla, clock, &settings.timers))
    }

    /// The firings due now by the worker's clock, the longest due first (at most the batch size).
    ///
    /// # Errors
    /// The database cannot be read.
    pub async fn plan(&self) -> Result<Vec<Firing>, fengqiao_projection::Error> {
        let now = self.clock.now();
        let client = self.pool.get().await?;
        let due = deadlines::due(&**client, now.as_millisecond(), self.batch).await?;
        metrics::gauge!("fengqiao_timer_due").set(due.len() as f64);
        Ok(due.iter().filter_map(|d| Firing::of(d, now)).collect())
    }

    /// Commits one firing through the command path.
    ///
    /// # Errors
    /// Retryable failures: the store unavailable, conflicts that did not settle. A refusal is not
    /// an error (see [`Fired::Refused`]).
    #[tracing::instrument(skip_all, fields(case_id = %firing.case_id, deadline = %firing.deadline_id))]
    pub async fn fire(&self, firing: &Firing) -> Result<Fired, CommandError> {
        let principal = Principal {
            subject: ACTOR.to_owned(),
            role: pb::Role::System,
            unit: firing.unit.clone(),
            partner_id: None,
            committee_id: None,
        };
        let meta = Meta { idempotency_key: firing.idempotency_key(), expected_version: None, correlation_id: None };
        let rules = Rules(self.sla.clone());
        let deadline_id = firing.deadline_id.clone();
        let command = match firing.kind {
            FiringKind::Warning => Command::WarnDeadline { deadline_id, rules },
            FiringKind::Breach => Command::BreachDeadline { deadline_id, rules },
        };
        // The timers act for the SLA policy on every case; no caller's reach applies.
        let anyone = |_: &fengqiao_domain::Case| Ok(());
        match self.commands.execute(&principal, firing.case_id, &meta, command, &anyone).await {
            Ok(outcome) if outcome.replayed => Ok(Fired::Replayed),
            Ok(outcome) => {
                metrics::counter!("fengqiao_timer_firings_total", "kind" => firing.kind.name()).increment(1);
                tracing::info!(kind = firing.kind.name(), sequence = outcome.sequence, "deadline fired");
                Ok(Fired::Recorded { sequence: outcome.sequence })
            }
            Err(CommandError::Rejected(Rejection::Refused(reason))) => Ok(Fired::Refused(reason)),
            Err(CommandError::Rejected(Rejection::UnknownCase)) => Ok(Fired::Refused("no such case".to_owned())),
            Err(e) => Err(e),
        }
    }

    /// Plans and fires everything due now.
    ///
    /// # Errors
    /// The read model cannot be read. Failures of single firings are counted in [`Tick::failed`]
    /// and logged; they are due again at the next tick.
    pub async fn tick(&self) -> Result<Tick, fengqiao_projection::Error> {
        use futures::StreamExt as _;
        let firings = self.plan().await?;
        let mut tick = Tick { due: firings.len(), ..Tick::default() };
        // One case's firings go one after another, each decided on the case the previous one left;
        // different cases go side by side, so their durable publishes share the stream's fsyncs.
        let mut cases: Vec<Vec<Firing>> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for firing in firings {
            let i = *index.entry(firing.case_id).or_insert_with(|| {
                cases.push(Vec::new());
                cases.len() - 1
            });
            cases[i].push(firing);
        }
        let outcomes: Vec<Vec<(Firing, Result<Fired, CommandError>)>> = futures::stream::iter(cases)
            .map(|group| async move {
                let mut out = Vec::with_capacity(group.len());
                for firing in group {
                    let outcome = self.fire(&firing).await;
                    out.push((firing, outcome));
                }
                out
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (firing, outcome) in outcomes.into_iter().flatten() {
            match outcome {
                Ok(Fired::Recorded { .. }) => tick.recorded += 1,
                Ok(Fired::Replayed) => tick.replayed += 1,
                Ok(Fired::Refused(reason)) => {
                    tracing::debug!(case_id = %firing.case_id, deadline = %firing.deadline_id, %reason, "not fired");
                    tick.refused += 1;
                }
                Err(e) => {
                    metrics::counter!("fengqiao_timer_failures_total").increment(1);
                    tracing::warn!(case_id = %firing.case_id, deadline = %firing.deadline_id, error = %e,
                        "firing failed; retrying at the next tick");
                    tick.failed += 1;
                }
            }
        }
        Ok(tick)
    }

    /// Ticks every `interval` until `shutdown` resolves; a tick in hand is finished first.
    pub async fn run(self, interval: std::time::Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                _ = every.tick() => {}
            }
            match self.tick().await {
                Ok(t) if t.due > 0 => tracing::debug!(?t, "timer tick"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "timer scan failed; retrying at the next tick"),
            }
        }
    }
}

//! The command path: load the case (from a bounded in-memory cache, topped up from the stream),
//! answer retries from the idempotency keys in its history, decide, and append one commit with
//! the expected last subject sequence. A conflict reloads and decides again, unless the client
//! pinned a version, in which case it is reported as [`CommandError::Conflict`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use fengqiao_domain::event::{self, Kind, pb};
use fengqiao_domain::values::{CaseId, FieldError, Ident};
use fengqiao_domain::{Case, Clock, Command, Rejection, decide};
use fengqiao_eventstore::{EventStore, StoredCommit};

use crate::auth::Principal;

/// Cases kept in memory between commands; past this the cache starts afresh.
const CACHE_CAPACITY: usize = 100_000;
/// Reload-and-decide rounds after conflicts before giving up with `Conflict`.
const MAX_ATTEMPTS: usize = 5;

/// Per-command metadata from the client.
#[derive(Debug, Clone)]
pub struct Meta {
    pub idempotency_key: Ident,
    pub expected_version: Option<u64>,
    pub correlation_id: Option<String>,
}

/// What a command produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub case_id: CaseId,
    pub version: u64,
    pub sequence: u64,
    /// A retry: the first result, nothing appended.
    pub replayed: bool,
    /// Intake found the case already registered for this reference.
    pub existing_case: bool,
}

/// Why a command did not commit.
///
/// ### Handling
/// Each variant maps to one gRPC code in `grpc::status`: `Invalid` → INVALID_ARGUMENT,
/// `Rejected(UnknownCase)` → NOT_FOUND, `Rejected(Refused)` → FAILED_PRECONDITION,
/// `Conflict` → ABORTED, `Denied` → PERMISSION_DENIED, `Store` → UNAVAILABLE or INTERNAL.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("the case is at version {actual}, not {expected}; reload it and retry")]
    Conflict { expected: u64, actual: u64 },
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Store(#[from] fengqiao_eventstore::Error),
}

/// A case as the command path holds it.
#[derive(Debug, Clone, Default)]
struct Loaded {
    case: Case,
    /// Stream sequence of the case's last commit (0: none).
    last_sequence: u64,
    /// Idempotency key → (version after, stream sequence, command name) of every commit.
    results: HashMap<String, (u64, u64, String)>,
}

impl Loaded {
    fn absorb(&mut self, commits: &[StoredCommit]) {
        for stored in commits {
            for env in &stored.commit.events {
                if let Some(kind) = env.event.as_ref().and_then(|e| e.kind.as_ref()) {
                    // With its time, so that the case's deadline clocks judge the timers' commands.
                    let at = jiff::Timestamp::from_millisecond(env.occurred_at_unix_ms).unwrap_or_default();
                    self.case.apply_at(kind, at);
                }
            }
            self.last_sequence = stored.sequence;
            self.results.insert(
                stored.commit.idempotency_key.clone(),
                (self.case.version, stored.sequence, stored.commit.command_type.clone()),
            );
        }
    }
}

/// What deciding a command on a loaded case came to.
enum Decided {
    /// Events to commit.
    Events(Vec<Kind>),
    /// A registration of a case that exists: intake answers with the existing case.
    Existing,
}

/// Authorisation of a command against the case it targets, decided after loading it.
pub type Authorize<'a> = &'a (dyn Fn(&Case) -> Result<(), String> + Send + Sync);

/// Executes commands against the event store.
pub struct CommandHandler {
    store: EventStore,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<CaseId, Arc<Loaded>>>,
}

impl std::fmt::Debug for CommandHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandHandler").field("store", &self.store).finish_non_exhaustive()
    }
}

impl CommandHandler {
    /// A handler on `store`, deciding with time from `clock`.
    pub fn new(store: EventStore, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock, cache: Mutex::new(HashMap::new()) }
    }

    /// The clock commands are decided with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn cached(&self, id: CaseId) -> Option<Arc<Loaded>> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id).cloned()
    }

    fn remember(&self, id: CaseId, loaded: Loaded) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&id) {
            cache.clear();
        }
        cache.insert(id, Arc::new(loaded));
    }

    /// Brings a (possibly cached) case up to the end of its subject; `latest` reads through the
    /// stream leader (see [`EventStore::load_latest`]).
    async fn refresh(&self, id: CaseId, from: Loaded, latest: bool) -> Result<Loaded, CommandError> {
        let mut loaded = from;
        let commits = if latest {
            self.store.load_latest(id, loaded.last_sequence).await?
        } else {
            self.store.load(id, loaded.last_sequence).await?
        };
        loaded.absorb(&commits);
        Ok(loaded)
    }

    /// The case `id` as its subject holds it now (`Case::default()` when none is registered).
    ///
    /// # Errors
    /// [`CommandError::Store`] when the stream cannot be read.
    pub async fn current(&self, id: CaseId) -> Result<Case, CommandError> {
        let cached = self.cached(id).map(|l| (*l).clone()).unwrap_or_default();
        Ok(self.refresh(id, cached, false).await?.case)
    }

    /// Runs one command on case `id` for `principal`.
    ///
    /// The case comes from the cache, which can be behind the stream: another instance may have
    /// moved it on, or an append whose answer was lost may have committed. That is harmless for
    /// a command that commits (the append names the sequence it expects, and a conflict or a
    /// resent publish reads the case again), but a refusal is only given once the case has been
    /// read through the stream leader in this call.
    ///
    /// # Errors
    /// See [`CommandError`]; nothing is appended on any error.
    pub async fn execute(
        &self,
        principal: &Principal,
        id: CaseId,
        meta: &Meta,
        command: Command,
        authorize: Authorize<'_>,
    ) -> Result<Outcome, CommandError> {
        let registering = matches!(command, Command::Register(_));
        let mut loaded = match self.cached(id) {
            Some(cached) => (*cached).clone(),
            // A new registration usually targets an empty subject: append optimistically and
            // let a conflict reveal an existing case, saving a read.
            None if registering => Loaded::default(),
            None => self.refresh(id, Loaded::default(), false).await?,
        };
        // Whether `loaded` was read through the leader during this call.
        let mut latest = false;
        for _ in 0..MAX_ATTEMPTS {
            let key = meta.idempotency_key.as_str();
            if let Some((version, sequence, first)) = loaded.results.get(key) {
                // A retry is the same command again; another command under a used key would
                // otherwise be answered as done without ever being decided.
                if first != command.name() {
                    return Err(CommandError::Invalid(FieldError::new(
                        "meta.idempotency_key",
                        format!("was already used for {first} on this case; send a new key for a new command"),
                    )));
                }
                let (version, sequence) = (*version, *sequence);
                self.remember(id, loaded);
                return Ok(Outcome { case_id: id, version, sequence, replayed: true, existing_case: false });
            }
            let now = self.clock.now();
            let events = match Self::decide(meta, &command, &loaded, authorize, now) {
                Ok(Decided::Events(events)) => events,
                Ok(Decided::Existing) => {
                    let (version, sequence) = (loaded.case.version, loaded.last_sequence);
                    self.remember(id, loaded);
                    return Ok(Outcome { case_id: id, version, sequence, replayed: true, existing_case: true });
                }
                Err(refusal) if latest => return Err(refusal),
                Err(_) => {
                    loaded = self.refresh(id, loaded, true).await?;
                    latest = true;
                    self.remember(id, loaded.clone());
                    continue;
                }
            };
            let commit = self.commit(principal, id, meta, &command, &loaded.case, events, now);
            match self.store.append(id, &commit, loaded.last_sequence).await {
                Ok(appended) if !appended.duplicate => {
                    let stored = StoredCommit { sequence: appended.sequence, commit };
                    loaded.absorb(std::slice::from_ref(&stored));
                    let version = loaded.case.version;
                    self.remember(id, loaded);
                    return Ok(Outcome {
                        case_id: id,
                        version,
                        sequence: appended.sequence,
                        replayed: false,
                        existing_case: false,
                    });
                }
                // The server already holds this very publish (a resend), or the case moved on:
                // read it again, from the leader, which holds both.
                Ok(_) | Err(fengqiao_eventstore::Error::Conflict { .. }) => {
                    loaded = self.refresh(id, loaded, true).await?;
                    latest = true;
                    self.remember(id, loaded.clone());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(CommandError::Conflict { expected: meta.expected_version.unwrap_or_default(), actual: loaded.case.version })
    }

    /// Decides `command` on `loaded`: the events to commit, or that intake found the case
    /// registered already, or why not (a refusal, a denial, a pinned version that differs).
    fn decide(
        meta: &Meta,
        command: &Command,
        loaded: &Loaded,
        authorize: Authorize<'_>,
        now: jiff::Timestamp,
    ) -> Result<Decided, CommandError> {
        let registering = matches!(command, Command::Register(_));
        if loaded.case.exists() {
            authorize(&loaded.case).map_err(CommandError::Denied)?;
            if registering {
                return Ok(Decided::Existing);
            }
        }
        if let Some(expected) = meta.expected_version
            && expected != loaded.case.version
        {
            return Err(CommandError::Conflict { expected, actual: loaded.case.version });
        }
        Ok(Decided::Events(decide(&loaded.case, command, now)?))
    }

    /// Builds the commit for `events`, numbering them after the case's version.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &self,
        principal: &Principal,
        id: CaseId,
        meta: &Meta,
        command: &Command,
        case: &Case,
        events: Vec<Kind>,
        now: jiff::Timestamp,
    ) -> pb::Commit {
        let now_ms = now.as_millisecond();
        let correlation = meta.correlation_id.clone().unwrap_or_else(|| id.to_string());
        let actor = principal.actor();
        let events = events
            .into_iter()
            .enumerate()
            .map(|(i, kind)| pb::EventEnvelope {
                event_id: Uuid::now_v7().to_string(),
                case_id: id.to_string(),
                event_type: event::type_name(&kind).to_owned(),
                schema_version: event::SCHEMA_VERSION,
                occurred_at_unix_ms: now_ms,
                recorded_at_unix_ms: now_ms,
                actor: Some(actor.clone()),
                unit_code: principal.unit.to_string(),
                correlation_id: correlation.clone(),
                causation_id: format!("command:{}", meta.idempotency_key),
                idempotency_key: meta.idempotency_key.to_string(),
                case_version: case.version + i as u64 + 1,
                event: Some(event::wrap(kind)),
            })
            .collect();
        pb::Commit {
            case_id: id.to_string(),
            idempotency_key: meta.idempotency_key.to_string(),
            command_type: command.name().to_owned(),
            version_before: case.version,
            events,
        }
    }
}

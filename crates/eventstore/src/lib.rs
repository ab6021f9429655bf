//! The log of record on NATS JetStream.
//!
//! One stream holds every case; each case has its own subject `{prefix}.case.{case_id}`. A command
//! commits exactly one message (a protobuf [`pb::Commit`] carrying its ordered events), so a commit
//! is atomic on any server version. Appends carry `Nats-Expected-Last-Subject-Sequence` (optimistic
//! concurrency per case) and `Nats-Msg-Id` (the server drops a resent publish inside its duplicate
//! window). Loading a case reads its subject with direct gets — no consumer is created per command.
//!
//! The stream denies deletes and purges: history is immutable, corrections are new events.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    context::PublishErrorKind,
    message::PublishMessage,
    stream::{self, DirectGetErrorKind, LastRawMessageErrorKind, StorageType},
};
use bytes::Bytes;
use prost::Message as _;

use fengqiao_domain::event::pb;
use fengqiao_domain::values::CaseId;

/// Where the log lives and how it is stored.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Stream name; tests use a fresh one each.
    pub stream: String,
    /// Subject prefix; every case subject is `{prefix}.case.{id}`.
    pub subject_prefix: String,
    /// Replicas: 1 on one machine, 3 on a cluster.
    pub replicas: usize,
    /// How long the server remembers message ids to drop resent publishes.
    pub duplicate_window: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            stream: "FENGQIAO_CASES".to_owned(),
            subject_prefix: "fengqiao".to_owned(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// Event-store failures.
///
/// ### Handling
/// - `Conflict`: the case moved on since it was read; reload and decide again, or report
///   `ABORTED` when the client pinned a version.
/// - `Unavailable`: NATS did not answer in time or the connection broke; retryable with the same
///   idempotency key.
/// - `StreamMismatch`, `Corrupt`: operator action needed; never retry blindly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The case's subject no longer ends at the expected sequence.
    #[error("the case changed since it was read (expected last sequence {expected})")]
    Conflict { expected: u64 },
    /// NATS is unreachable or timed out.
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// The existing stream is configured in a way Fengqiao cannot use.
    #[error("stream {stream} is misconfigured: {problem}")]
    StreamMismatch { stream: String, problem: String },
    /// A stored commit could not be decoded.
    #[error("commit at stream sequence {sequence} cannot be decoded: {problem}")]
    Corrupt { sequence: u64, problem: String },
    /// The commit is larger than the server accepts.
    #[error("the commit is too large for the event store: {0}")]
    TooLarge(String),
}

impl Error {
    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Conflict { .. } | Self::Unavailable(_))
    }
}

/// Result of event-store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A commit as read back, with its place in the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCommit {
    /// Stream sequence of the message.
    pub sequence: u64,
    pub commit: pb::Commit,
}

/// Outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Stream sequence of the commit.
    pub sequence: u64,
    /// True when the server recognised a resent publish and stored nothing new.
    pub duplicate: bool,
}

/// Handle on the case stream.
#[derive(Clone)]
pub struct EventStore {
    /// Context for publishes and stream management.
    js: jetstream::Context,
    /// The stream, for direct gets.
    stream: jetstream::stream::Stream,
    config: StoreConfig,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore").field("config", &self.config).finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(e.to_string())
}

impl EventStore {
    /// Creates the stream, or verifies an existing one, and returns a handle on it.
    ///
    /// # Errors
    /// `Unavailable` when NATS does not answer; `StreamMismatch` when an existing stream has other
    /// subjects, memory storage, or no direct gets.
    pub async fn open(client: async_nats::Client, config: StoreConfig) -> Result<Self> {
        let js = jetstream::new(client);
        let subjects = vec![format!("{}.case.>", config.subject_prefix)];
        let wanted = stream::Config {
            name: config.stream.clone(),
            subjects: subjects.clone(),
            storage: StorageType::File,
            num_replicas: config.replicas,
            allow_direct: true,
            deny_delete: true,
            deny_purge: true,
            duplicate_window: config.duplicate_window,
            description: Some("Fengqiao mediation cases: one subject per case, one message per command".to_owned()),
            ..Default::default()
        };
        let mut stream = js.get_or_create_stream(wanted).await.map_err(unavailable)?;
        let info = stream.info().await.map_err(unavailable)?.config.clone();
        let mismatch = |problem: String| Error::StreamMismatch { stream: config.stream.clone(), problem };
        if info.storage != StorageType::File {
            return Err(mismatch("it uses memory storage; the log of record needs file storage".to_owned()));
        }
        if info.subjects != subjects {
            return Err(mismatch(format!("its subjects are {:?}, expected {:?}", info.subjects, subjects)));
        }
        if !info.allow_direct {
            return Err(mismatch("direct gets are disabled".to_owned()));
        }
        // An existing stream keeps its replicas (changing them is an operator's decision, e.g.
        // `nats stream edit --replicas 3`); say so rather than run R1 on a cluster unknowingly.
        if info.num_replicas != config.replicas {
            tracing::warn!(
                stream = %config.stream,
                replicas = info.num_replicas,
                configured = config.replicas,
                "the stream exists with another number of replicas than configured; it keeps its own"
            );
        }
        Ok(Self { js, stream, config })
    }

    /// The configuration in use.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The JetStream context, for consumers of the stream.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The subject of a case.
    pub fn subject(&self, case: CaseId) -> String {
        format!("{}.case.{case}", self.config.subject_prefix)
    }

    /// Every commit of a case, in order, starting after stream sequence `after` (0 for all).
    ///
    /// Read with direct gets, which any replica of the stream may answer: on a cluster the answer
    /// can lag the latest acknowledged append by a moment. Good enough to decide on, since an
    /// append names the sequence it expects; [`EventStore::load_latest`] when it is not.
    ///
    /// # Errors
    /// `Unavailable` or `Corrupt`.
    pub async fn load(&self, case: CaseId, after: u64) -> Result<Vec<StoredCommit>> {
        let subject = self.subject(case);
        let mut commits = Vec::new();
        let mut next = after + 1;
        loop {
            match self.stream.direct_get_next_for_subject(subject.clone(), Some(next)).await {
                Ok(message) => {
                    commits.push(decode(message.sequence, &message.payload)?);
                    next = message.sequence + 1;
                }
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(commits),
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    /// As [`EventStore::load`], read through the stream's leader: every append acknowledged
    /// before the call is in the answer. Slower; for deciding that a command is refused, or for
    /// reading back a commit the server reports it already holds.
    ///
    /// # Errors
    /// `Unavailable` or `Corrupt`.
    pub async fn load_latest(&self, case: CaseId, after: u64) -> Result<Vec<StoredCommit>> {
        let subject = self.subject(case);
        let mut commits = Vec::new();
        let mut next = after + 1;
        loop {
            let get = self.stream.raw_message_builder().sequence(next).next_by_subject(subject.clone()).send().await;
            match get {
                Ok(message) => {
                    commits.push(decode(message.sequence, &message.payload)?);
                    next = message.sequence + 1;
                }
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => return Ok(commits),
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    /// Appends `commit` to its case's subject, provided the subject still ends at stream sequence
    /// `expected_last` (0: the case has no commit yet).
    ///
    /// # Errors
    /// `Conflict` when the case moved on; `Unavailable`, `TooLarge`.
    pub async fn append(&self, case: CaseId, commit: &pb::Commit, expected_last: u64) -> Result<Appended> {
        let payload = Bytes::from(commit.encode_to_vec());
        let publish = PublishMessage::build()
            .payload(payload)
            .message_id(format!("{case}:{}", commit.idempotency_key))
            .expected_last_subject_sequence(expected_last);
        let ack =
            self.js.send_publish(self.subject(case), publish).await.map_err(|e| publish_error(e, expected_last))?;
        let ack = ack.await.map_err(|e| publish_error(e, expected_last))?;
        Ok(Appended { sequence: ack.sequence, duplicate: ack.duplicate })
    }

    /// The last sequence in the stream (0 when empty).
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn last_sequence(&self) -> Result<u64> {
        let mut stream = self.stream.clone();
        Ok(stream.info().await.map_err(unavailable)?.state.last_sequence)
    }

    /// When the stream stored the message at `sequence`, in seconds since the epoch: how old the
    /// oldest commit a read model has not applied yet is.
    ///
    /// # Errors
    /// `Unavailable`, also when there is no message at `sequence`.
    pub async fn stored_at(&self, sequence: u64) -> Result<i64> {
        let message = self.stream.direct_get(sequence).await.map_err(unavailable)?;
        Ok(message.time.unix_timestamp())
    }
}

fn publish_error(e: async_nats::jetstream::context::PublishError, expected: u64) -> Error {
    match e.kind() {
        PublishErrorKind::WrongLastSequence => Error::Conflict { expected },
        PublishErrorKind::MaxPayloadExceeded => Error::TooLarge(e.to_string()),
        _ => unavailable(e),
    }
}

/// Decodes a stored commit.
///
/// # Errors
/// `Corrupt` when the bytes are not a commit.
pub fn decode(sequence: u64, payload: &[u8]) -> Result<StoredCommit> {
    let commit = pb::Commit::decode(payload).map_err(|e| Error::Corrupt { sequence, problem: e.to_string() })?;
    // Every event type is at schema version 1 so far; an upcaster for an older version goes here.
    Ok(StoredCommit { sequence, commit })
}

//! `WatchService`: pushes the changes of one work queue as the `work_queues` projector commits
//! them, so a committee's screen updates without polling.
//!
//! Each watch subscribes to the projector's in-process broadcast of [`Announcement`]s. It first
//! sends the sequence the queue stands at (`started`), then every change past it that concerns the
//! watched queue, in stream order. A watch whose client reads too slowly falls behind the
//! broadcast's buffer; it is then told to resync (with the sequence to reload at) instead of
//! silently missing changes. So is a watch when the read model applied commits this process did not
//! announce (another instance's projector applied them, or a rebuild swapped them in). Each caller
//! may hold a bounded number of watches at once.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use fengqiao_domain::event::pb;
use fengqiao_domain::values::{Ident, UnitCode};
use fengqiao_projection::work_queues::{self, Announcement, Membership, QueueChange, QueueKind};
use fengqiao_proto::api;

use super::work_queues::work_item;
use super::{Api, invalid};
use crate::auth::Principal;
use crate::state::Shared;

/// Notices buffered between a watch's task and its gRPC stream.
const SEND_BUFFER: usize = 16;

/// One open watch of a caller; dropping it frees the caller's slot.
struct Slot {
    shared: Arc<Shared>,
    subject: String,
}

impl Slot {
    /// Takes one of the caller's watch slots.
    fn take(shared: &Arc<Shared>, subject: &str) -> Result<Self, Status> {
        let limit = shared.settings.max_watches_per_caller;
        let mut open = shared.watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(subject.to_owned()).or_insert(0);
        if *n >= limit {
            return Err(Status::resource_exhausted(format!(
                "you have {limit} live watches open, the most allowed; close one first"
            )));
        }
        *n += 1;
        Ok(Self { shared: shared.clone(), subject: subject.to_owned() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.shared.watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.subject) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.subject);
            }
        }
    }
}

/// What a watch follows, as the caller may see it.
#[derive(Debug, Clone)]
struct Watched {
    kind: QueueKind,
    /// Committee or mediator id, or the unit prefix for a unit watch.
    id: String,
    /// The caller's unit prefix: committee and mediator entries outside it are not theirs.
    scope: String,
}

impl Watched {
    fn covers(&self, m: &Membership) -> bool {
        m.kind == self.kind
            && match self.kind {
                QueueKind::Unit => m.queue_id.starts_with(&self.id),
                QueueKind::Committee | QueueKind::Mediator => m.queue_id == self.id && m.unit.starts_with(&self.scope),
            }
    }

    /// The notice `change` gives this watch, if it concerns it.
    fn notice(&self, principal: &Principal, change: &QueueChange, now_ms: i64) -> Option<api::QueueNotice> {
        let (was, is) = (change.before.iter().any(|m| self.covers(m)), change.after.iter().any(|m| self.covers(m)));
        let kind = match (was, is) {
            (false, false) => return None,
            (false, true) => api::ChangeKind::Entered,
            (true, true) => api::ChangeKind::Updated,
            (true, false) => api::ChangeKind::Left,
        };
        let item = is.then(|| work_item(principal, change.item.clone(), now_ms));
        Some(api::QueueNotice {
            notice: Some(api::queue_notice::Notice::Change(api::QueueChange {
                stream_sequence: change.sequence,
                case_id: change.case_id.to_string(),
                kind: kind as i32,
                item,
            })),
        })
    }
}

fn started(sequence: u64) -> api::QueueNotice {
    api::QueueNotice { notice: Some(api::queue_notice::Notice::Started(api::WatchStarted { sequence })) }
}

fn resync(sequence: u64, reason: String) -> api::QueueNotice {
    api::QueueNotice { notice: Some(api::queue_notice::Notice::Resync(api::Resync { sequence, reason })) }
}

impl Api {
    /// Parses and authorises what the request asks to watch.
    fn watched(&self, principal: &Principal, r: &api::WatchQueueRequest) -> Result<Watched, Status> {
        let scope = principal.unit.prefix().to_owned();
        match api::WatchedQueue::try_from(r.queue) {
            Ok(api::WatchedQueue::Committee) => {
                let committee = Ident::parse("id", &r.id).map_err(invalid)?;
                if principal.committee_id.as_ref().is_some_and(|own| *own != committee) {
                    return Err(Status::permission_denied("id: you work in another committee"));
                }
                Ok(Watched { kind: QueueKind::Committee, id: committee.to_string(), scope })
            }
            Ok(api::WatchedQueue::Mediator) => {
                let mediator = match Ident::parse_optional("id", &r.id).map_err(invalid)? {
                    Some(m) => m.to_string(),
                    None => principal.subject.clone(),
                };
                if principal.role == pb::Role::Mediator && mediator != principal.subject {
                    return Err(Status::permission_denied("id: a mediator watches only their own queue"));
                }
                Ok(Watched { kind: QueueKind::Mediator, id: mediator, scope })
            }
            Ok(api::WatchedQueue::Unit) => {
                let unit = if r.id.is_empty() {
                    principal.unit.clone()
                } else {
                    UnitCode::parse("id", &r.id).map_err(invalid)?
                };
                if !unit.is_within(&principal.unit) {
                    return Err(Status::permission_denied("id: the unit is outside your unit"));
                }
                Ok(Watched { kind: QueueKind::Unit, id: unit.prefix().to_owned(), scope })
            }
            Ok(api::WatchedQueue::Unspecified) => Err(Status::invalid_argument("queue: is required")),
            Err(_) => Err(Status::invalid_argument(format!("queue: has unknown value {}", r.queue))),
        }
    }
}

/// The stream of a watch.
pub type NoticeStream = Pin<Box<dyn Stream<Item = Result<api::QueueNotice, Status>> + Send>>;

#[tonic::async_trait]
impl api::watch_service_server::WatchService for Api {
    type WatchQueueStream = NoticeStream;

    async fn watch_queue(
        &self,
        request: Request<api::WatchQueueRequest>,
    ) -> Result<Response<Self::WatchQueueStream>, Status> {
        let (principal, _) = self.begin(&request, "WatchQueue")?;
        let watched = self.watched(&principal, request.get_ref())?;
        let slot = Slot::take(&self.shared, &principal.subject)?;
        // Subscribe first, then read where the queue stands: every change past that sequence is
        // published after the projector announced it, so this watch receives it.
        let changes = self.shared.queue_changes.subscribe();
        let applied = self.shared.applied.get(work_queues::NAME).cloned();
        let start = applied.as_ref().map_or(0, |rx| *rx.borrow());
        let (tx, rx) = mpsc::channel(SEND_BUFFER);
        tx.try_send(Ok(started(start))).map_err(|_| Status::internal("internal error"))?;
        let api = self.clone();
        let stopping = self.shared.stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
            forward(&api, &principal, &watched, changes, applied, start, stopping, tx).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Forwards the changes that concern `watched` until the client goes away or the service stops.
#[allow(clippy::too_many_arguments)]
async fn forward(
    api: &Api,
    principal: &Principal,
    watched: &Watched,
    mut changes: broadcast::Receiver<Arc<Announcement>>,
    applied: Option<watch::Receiver<u64>>,
    start: u64,
    mut stopping: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<api::QueueNotice, Status>>,
) {
    // Changes at or below this sequence are already reflected in what the client loads.
    let mut floor = start;
    loop {
        let next = tokio::select! {
            () = tx.closed() => return,
            _ = stopping.wait_for(|s| *s) => return,
            next = changes.recv() => next,
        };
        let notice = match next.as_deref() {
            Ok(Announcement::Changed(change)) if change.sequence <= floor => continue,
            Ok(Announcement::Changed(change)) => match watched.notice(principal, change, api.now_ms()) {
                Some(notice) => notice,
                None => continue,
            },
            Ok(Announcement::Skipped { through }) if *through <= floor => continue,
            Ok(Announcement::Skipped { through }) => {
                floor = *through;
                tracing::info!(actor = %principal.subject, at = floor, "commits applied elsewhere; watch told to resync");
                resync(
                    floor,
                    format!(
                        "changes up to stream sequence {floor} were applied without this server announcing them \
                         (another instance, or a rebuild); reload the queue with min_sequence {floor}"
                    ),
                )
            }
            Err(broadcast::error::RecvError::Lagged(dropped)) => {
                let dropped = *dropped;
                floor = applied.as_ref().map_or(floor, |rx| *rx.borrow()).max(floor);
                tracing::info!(actor = %principal.subject, dropped, at = floor, "watch fell behind; told to resync");
                resync(
                    floor,
                    format!(
                        "this watch fell behind and {dropped} changes were dropped; reload the queue with min_sequence {floor}"
                    ),
                )
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        tokio::select! {
            sent = tx.send(Ok(notice)) => if sent.is_err() { return },
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

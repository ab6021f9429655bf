//! What every handler shares: settings, the authenticator, the command path, the database pool,
//! and the projector's announcements of applied stream sequences.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use fengqiao_domain::Clock;
use fengqiao_domain::sla::Sla;
use fengqiao_projection::work_queues::Announcement;

use crate::auth::Authenticator;
use crate::commands::CommandHandler;
use crate::settings::Settings;

/// Shared service state.
pub struct Shared {
    pub settings: Settings,
    pub authenticator: Authenticator,
    pub commands: CommandHandler,
    pub pool: deadpool_postgres::Pool,
    /// Latest stream sequence each in-process projector has committed, by read model name.
    pub applied: HashMap<&'static str, watch::Receiver<u64>>,
    /// The service's clock (what "overdue" is measured against).
    pub clock: Arc<dyn Clock>,
    /// The deadline policy and calendars the read models compute due times by.
    pub sla: Arc<Sla>,
    /// Work-queue changes as the projector commits them, for live watchers.
    pub queue_changes: broadcast::Sender<Arc<Announcement>>,
    /// Live watches open per caller (token subject), bounded by `max_watches_per_caller`.
    pub watches: Mutex<HashMap<String, usize>>,
    /// Becomes true when the service stops: long-lived streams end on it.
    pub stopping: watch::Receiver<bool>,
}

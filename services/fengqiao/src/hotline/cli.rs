//! `fengqiao hotline …`: run the bridge alone, read the callback outbox, send dead letters again;
//! and the bridge's settings that environment variables and flags override.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use uuid::Uuid;

use super::callbacks::{self, Redeliver};
use super::{Bridge, HotlineSettings};
use crate::settings::{HmacKey, Settings};

/// The bridge's overrides (environment, then flags), over the TOML file's `[hotline]` table.
#[derive(Debug, Args)]
pub struct HotlineOverrides {
    /// HTTP listen address of the hotline bridge.
    #[arg(long, global = true, env = "FENGQIAO_HOTLINE_ADDR")]
    hotline_addr: Option<SocketAddr>,
    /// Where callbacks to the hotline are posted.
    #[arg(long, global = true, env = "FENGQIAO_HOTLINE_CALLBACK_URL")]
    hotline_callback_url: Option<String>,
    /// HMAC secret the hotline signs its requests with (replaces the key list; key id `default`).
    #[arg(long, global = true, env = "FENGQIAO_HOTLINE_INBOUND_SECRET", hide_env_values = true)]
    hotline_inbound_secret: Option<String>,
    /// HMAC secret Fengqiao signs its callbacks with (key id `default`).
    #[arg(long, global = true, env = "FENGQIAO_HOTLINE_OUTBOUND_SECRET", hide_env_values = true)]
    hotline_outbound_secret: Option<String>,
}

impl HotlineOverrides {
    /// Applies the overrides that were given.
    pub fn apply(self, s: &mut HotlineSettings) {
        if let Some(v) = self.hotline_addr {
            s.addr = v;
        }
        if let Some(v) = self.hotline_callback_url {
            s.callback_url = Some(v).filter(|u| !u.trim().is_empty());
        }
        if let Some(secret) = self.hotline_inbound_secret {
            s.inbound_keys = vec![HmacKey { kid: "default".to_owned(), secret }];
        }
        if let Some(secret) = self.hotline_outbound_secret {
            s.outbound_key = HmacKey { kid: "default".to_owned(), secret };
        }
    }
}

/// `fengqiao hotline …`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hotline bridge alone: its HTTP API, the callback consumer and the delivery worker.
    Serve,
    /// Callbacks to the hotline: backlog, oldest pending, failures, dead letters.
    Status,
    /// Send callbacks again: one by delivery id (dead or waiting), or every dead letter.
    Redeliver {
        /// The delivery id (from `fengqiao hotline status`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        delivery_id: Option<Uuid>,
        /// Every dead letter.
        #[arg(long)]
        all: bool,
    },
}

fn age(since: SystemTime) -> String {
    let secs = SystemTime::now().duration_since(since).map_or(0, |d| d.as_secs());
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

/// Renders the outbox as `fengqiao hotline status` prints it.
pub fn render(o: &callbacks::Outbox) -> String {
    let mut out = format!(
        "callbacks: {} pending ({} failing), {} delivered, {} dead letters\n",
        o.pending,
        o.failing,
        o.delivered,
        o.dead.len()
    );
    match &o.oldest_pending {
        Some(p) => out.push_str(&format!(
            "oldest pending: {} ({} of order {}), queued {} ago, {} attempts{}\n",
            p.delivery_id,
            p.kind,
            p.order_number,
            age(p.queued_at),
            p.attempts,
            p.last_error.as_deref().map(|e| format!(", last error: {e}")).unwrap_or_default()
        )),
        None => out.push_str("oldest pending: none\n"),
    }
    for d in &o.dead {
        out.push_str(&format!(
            "dead letter: {} ({} of order {}), {} attempts, parked {} ago: {}\n",
            d.delivery_id,
            d.kind,
            d.order_number,
            d.attempts,
            age(d.dead_at),
            d.reason
        ));
    }
    out
}

/// Runs a `fengqiao hotline` command.
///
/// # Errors
/// Whatever the command met: unusable settings, NATS or PostgreSQL unreachable, an unknown
/// delivery id.
pub async fn run(settings: Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            crate::telemetry::init();
            let clock: Arc<dyn fengqiao_domain::Clock> = Arc::new(fengqiao_domain::clock::SystemClock);
            let bridge = Bridge::build(&settings, clock).await?;
            tracing::info!(addr = %bridge.local_addr()?, "fengqiao hotline bridge serving HTTP");
            bridge.run(crate::app::shutdown_signal()).await
        }
        Command::Status => {
            let pool = crate::app::pool(&settings.database_url, 1)?;
            let db = pool.get().await.context("connecting to PostgreSQL")?;
            print!("{}", render(&callbacks::outbox(&**db).await?));
            Ok(())
        }
        Command::Redeliver { delivery_id, all } => {
            let pool = crate::app::pool(&settings.database_url, 1)?;
            let db = pool.get().await.context("connecting to PostgreSQL")?;
            let which = match (delivery_id, all) {
                (Some(id), _) => Redeliver::One(id),
                (None, _) => Redeliver::AllDead,
            };
            let n = callbacks::redeliver(&**db, which).await?;
            println!("{n} callback(s) due again; a running bridge sends them in order");
            Ok(())
        }
    }
}

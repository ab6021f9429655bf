//! The 12345 hotline bridge: how Fengqiao meets a government-service hotline platform over HTTP
//! and JSON (the "接单—派单—办单—评单" loop).
//!
//! - [`inbound`]: the hotline posts work orders (接单) and callers' ratings (评单), and reads an
//!   order's status; each request is signed ([`signature`]) and becomes a command on the same
//!   command path as gRPC intake;
//! - [`callbacks`]: a durable consumer of the case stream turns what happened to each order into
//!   signed callbacks (签收, progress, 办结回复, 退单) kept in a PostgreSQL outbox, and a worker
//!   delivers them in order per order, with retries, backoff and dead letters;
//! - [`open311`]: a read-only Open311 GeoReport v2 view of the orders;
//! - [`cli`]: `fengqiao hotline serve | status | redeliver`.
//!
//! Same lifecycle as the gRPC service: [`Bridge::build`] → [`Bridge::local_addr`] →
//! [`Bridge::run`]. The protocol is described in `docs/hotline.md` and `docs/hotline-openapi.yaml`.

pub mod callbacks;
pub mod cli;
pub mod inbound;
pub mod open311;
pub mod signature;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use fengqiao_domain::Clock;
use fengqiao_domain::event::pb;
use fengqiao_domain::values::UnitCode;
use fengqiao_eventstore::EventStore;

use crate::auth::Principal;
use crate::commands::CommandHandler;
use crate::settings::{HmacKey, Settings};

/// The OpenAPI document of the bridge's HTTP API, served at `/hotline/v1/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../../docs/hotline-openapi.yaml");

/// Migrations of the bridge's tables, applied by `fengqiao migrate` after the read models'.
const MIGRATIONS: &[(&str, &str)] = &[("hotline_0001", include_str!("0001_hotline.sql"))];

/// Development keys: `fengqiao serve` and a local hotline simulator agree on them out of the box.
/// Production sets `FENGQIAO_HOTLINE_INBOUND_SECRET` and `FENGQIAO_HOTLINE_OUTBOUND_SECRET`.
pub const DEV_INBOUND_SECRET: &str = "fengqiao-local-hotline-inbound-secret-change-me";
pub const DEV_OUTBOUND_SECRET: &str = "fengqiao-local-hotline-outbound-secret-change-me";

/// Everything the bridge needs beyond the service's own settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotlineSettings {
    /// Whether `fengqiao serve` runs the bridge (`fengqiao hotline serve` always does): an
    /// instance that serves gRPC only sets it false.
    pub enabled: bool,
    /// HTTP listen address of the bridge; port 0 picks a free port (tests).
    pub addr: SocketAddr,
    /// The hotline's jurisdiction: work orders must lie in this unit's subtree.
    pub unit_code: String,
    /// Who the hotline is in case histories (the actor subject of its commands).
    pub subject: String,
    /// Keys the hotline signs its requests with, by key id (two during a rotation).
    pub inbound_keys: Vec<HmacKey>,
    /// Key Fengqiao signs its callbacks with.
    pub outbound_key: HmacKey,
    /// Where callbacks are posted. Without one, callbacks wait in the outbox (nothing is lost).
    pub callback_url: Option<String>,
    /// Largest accepted difference between a request's timestamp and Fengqiao's clock, in seconds.
    pub replay_window_secs: u64,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Durable name of the stream consumer that derives callbacks.
    pub consumer: String,
    /// Attempts before a callback is parked as a dead letter.
    pub max_attempts: u32,
    /// First retry delay; each further retry doubles it, up to `backoff_max_ms`, with jitter.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// How often the delivery worker looks for due callbacks when nothing wakes it.
    pub poll_ms: u64,
    /// Longest a callback POST may take before it counts as failed.
    pub request_timeout_ms: u64,
    /// Callbacks posted at once (each to a different order).
    pub concurrency: usize,
    /// Keys that Open311 readers pass as `api_key`; the Open311 view is off while this is empty.
    pub open311_api_keys: Vec<String>,
}

impl Default for HotlineSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            addr: SocketAddr::from(([127, 0, 0, 1], 18080)),
            unit_code: "500116000000".to_owned(),
            subject: "hotline-12345".to_owned(),
            inbound_keys: vec![HmacKey { kid: "dev".to_owned(), secret: DEV_INBOUND_SECRET.to_owned() }],
            outbound_key: HmacKey { kid: "dev".to_owned(), secret: DEV_OUTBOUND_SECRET.to_owned() },
            callback_url: None,
            replay_window_secs: 300,
            max_body_bytes: 64 * 1024,
            consumer: "hotline-callbacks".to_owned(),
            max_attempts: 12,
            backoff_base_ms: 1000,
            backoff_max_ms: 15 * 60 * 1000,
            poll_ms: 1000,
            request_timeout_ms: 10_000,
            concurrency: 8,
            open311_api_keys: Vec::new(),
        }
    }
}

impl std::fmt::Debug for HotlineSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.inbound_keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("HotlineSettings")
            .field("addr", &self.addr)
            .field("unit_code", &self.unit_code)
            .field("inbound_keys", &format!("{kids:?} (secrets redacted)"))
            .field("outbound_key", &self.outbound_key.kid)
            .field("callback_url", &self.callback_url)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

impl HotlineSettings {
    /// The settings with every secret replaced, for `--print-config`.
    pub fn redact(&mut self) {
        for key in self.inbound_keys.iter_mut().chain(std::iter::once(&mut self.outbound_key)) {
            key.secret = "<redacted>".to_owned();
        }
        for key in &mut self.open311_api_keys {
            *key = "<redacted>".to_owned();
        }
    }

    /// The hotline as the actor of its commands.
    ///
    /// # Errors
    /// `unit_code` is not a unit code.
    pub fn principal(&self) -> anyhow::Result<Principal> {
        let unit = UnitCode::parse("hotline.unit_code", &self.unit_code)?;
        Ok(Principal {
            subject: self.subject.clone(),
            role: pb::Role::Hotline,
            unit,
            partner_id: None,
            committee_id: None,
        })
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.inbound_keys.is_empty(), "hotline.inbound_keys: configure at least one key");
        for key in self.inbound_keys.iter().chain(std::iter::once(&self.outbound_key)) {
            anyhow::ensure!(!key.kid.trim().is_empty(), "hotline keys: a key id is empty");
            anyhow::ensure!(key.secret.len() >= 16, "hotline key {}: the secret is shorter than 16 bytes", key.kid);
        }
        anyhow::ensure!(self.max_attempts >= 1, "hotline.max_attempts must be at least 1");
        anyhow::ensure!(
            !self.consumer.is_empty() && !self.consumer.contains(['.', '*', '>', ' ']),
            "hotline.consumer {:?} is no valid durable consumer name",
            self.consumer
        );
        if let Some(url) = &self.callback_url {
            let parsed = reqwest::Url::parse(url).with_context(|| format!("hotline.callback_url {url:?}"))?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "http" | "https"),
                "hotline.callback_url must be an http or https URL"
            );
        }
        Ok(())
    }

    /// The retry delays.
    pub fn backoff(&self) -> callbacks::Backoff {
        callbacks::Backoff {
            base: Duration::from_millis(self.backoff_base_ms),
            max: Duration::from_millis(self.backoff_max_ms.max(self.backoff_base_ms)),
        }
    }
}

/// Applies the bridge's migrations not applied yet. Safe to run any number of times.
///
/// # Errors
/// Any database error; the transaction is rolled back.
pub async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<Vec<String>> {
    let tx = client.transaction().await?;
    let applied = fengqiao_projection::migrate::apply(&tx, MIGRATIONS).await.context("hotline bridge migrations")?;
    tx.commit().await?;
    Ok(applied)
}

/// What the bridge's handlers and workers share.
pub(crate) struct Bridged {
    pub settings: HotlineSettings,
    pub commands: CommandHandler,
    pub pool: deadpool_postgres::Pool,
    pub clock: Arc<dyn Clock>,
    /// The hotline as an actor.
    pub principal: Principal,
    /// Rung by the consumer when it queued callbacks, so the worker need not wait for its poll.
    pub queued: Notify,
}

/// A built, not yet running, hotline bridge.
pub struct Bridge {
    listener: TcpListener,
    shared: Arc<Bridged>,
    store: EventStore,
    client: reqwest::Client,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("addr", &self.listener.local_addr().ok()).finish_non_exhaustive()
    }
}

impl Bridge {
    /// Connects to NATS and PostgreSQL and binds the HTTP listener; nothing runs until
    /// [`Bridge::run`].
    ///
    /// # Errors
    /// Unusable hotline settings, NATS or PostgreSQL unreachable, the address in use.
    pub async fn build(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let hotline = settings.hotline.clone();
        hotline.check()?;
        let principal = hotline.principal()?;
        let store = crate::app::open_store(settings).await?;
        let pool = crate::app::pool(&settings.database_url, hotline.concurrency.max(1) + 4)?;
        drop(pool.get().await.context("connecting to PostgreSQL (is FENGQIAO_DATABASE_URL right?)")?);
        // Callbacks may go to an https URL: rustls on ring, the provider the gRPC TLS uses too.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(hotline.request_timeout_ms))
            .connect_timeout(Duration::from_millis(hotline.request_timeout_ms.min(5000)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the callback HTTP client")?;
        let listener = TcpListener::bind(hotline.addr)
            .await
            .with_context(|| format!("binding the hotline bridge to {}", hotline.addr))?;
        let shared = Arc::new(Bridged {
            commands: CommandHandler::new(store.clone(), clock.clone()),
            settings: hotline,
            pool,
            clock,
            principal,
            queued: Notify::new(),
        });
        Ok(Self { listener, shared, store, client })
    }

    /// The bound HTTP address (useful with port 0).
    ///
    /// # Errors
    /// The socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the HTTP API and runs the callback consumer and delivery worker until `shutdown`
    /// resolves; then stops accepting, finishes requests and deliveries in hand, and returns.
    ///
    /// # Errors
    /// The HTTP server failed, or the consumer or worker stopped on an error it cannot retry.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let router = inbound::router(self.shared.clone());
        let server = axum::serve(self.listener, router).with_graceful_shutdown(stopped());
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move { server.await.context("hotline HTTP server") });
        tasks.spawn(callbacks::consume(self.shared.clone(), self.store.clone(), stopped()));
        tasks.spawn(callbacks::deliver(self.shared.clone(), self.client.clone(), stopped()));
        tokio::pin!(shutdown);
        let outcome = tokio::select! {
            () = &mut shutdown => Ok(()),
            Some(done) = tasks.join_next() => match done {
                Ok(Ok(())) => Err(anyhow::anyhow!("a hotline bridge task ended unexpectedly")),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::anyhow!("hotline bridge task failed: {e}")),
            },
        };
        let _ = stop_tx.send(true);
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "hotline bridge task stopped with an error");
            }
        }
        outcome
    }
}

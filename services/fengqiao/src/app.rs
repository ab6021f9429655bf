//! The application: connects to NATS and PostgreSQL, opens (or creates) the stream, binds the gRPC
//! listener, and runs the gRPC services, the projectors and the timer worker until told to stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use fengqiao_domain::Clock;
use fengqiao_eventstore::{EventStore, StoreConfig};
use fengqiao_projection::projector::{self, ProjectorConfig, ReadModel};
use fengqiao_projection::{cases, deadlines, referrals, statistics, work_queues};
use fengqiao_proto::api;

use crate::auth::Authenticator;
use crate::commands::CommandHandler;
use crate::grpc::Api;
use crate::settings::Settings;
use crate::state::Shared;
use crate::timers::TimerWorker;

/// Names of the read models this service projects (see `run` for their projectors).
pub const READ_MODELS: [&str; 5] = [cases::NAME, work_queues::NAME, referrals::NAME, statistics::NAME, deadlines::NAME];

/// Evaluates `$body` with `$model` bound to the read model named `$name` (an `&str`), built with
/// the SLA policy `$sla` (an `Arc<Sla>`): `Some(body)`, or `None` for a name it does not know.
/// Operations (`fengqiao projections rebuild`) and tests reach every read model by name through
/// it, whatever its type; each name in [`READ_MODELS`] has an arm here.
#[macro_export]
macro_rules! with_read_model {
    ($name:expr, $sla:expr, |$model:ident| $body:expr) => {{
        use ::fengqiao_projection::{cases, deadlines, referrals, statistics, work_queues};
        match $name {
            cases::NAME => {
                let $model = cases::Cases;
                Some($body)
            }
            work_queues::NAME => {
                let $model = work_queues::WorkQueues::new($sla.clone());
                Some($body)
            }
            referrals::NAME => {
                let $model = referrals::Referrals::new($sla.clone());
                Some($body)
            }
            statistics::NAME => {
                let $model = statistics::Statistics::new($sla.clone());
                Some($body)
            }
            deadlines::NAME => {
                let $model = deadlines::Deadlines::new($sla.clone());
                Some($body)
            }
            _ => None,
        }
    }};
}

/// A built, not yet running, Fengqiao.
pub struct Application {
    listener: TcpListener,
    /// Certificate and key when the listener speaks TLS.
    tls: Option<tonic::transport::Identity>,
    shared: Arc<Shared>,
    store: EventStore,
    /// Senders of the projectors' applied sequences, handed to them in `run`.
    applied: HashMap<&'static str, watch::Sender<u64>>,
    /// Set when the service stops: the projectors, the server and the live watches end on it.
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("addr", &self.listener.local_addr().ok()).finish_non_exhaustive()
    }
}

/// A connection pool for `database_url`.
///
/// # Errors
/// A malformed URL.
pub fn pool(database_url: &str, size: usize) -> anyhow::Result<deadpool_postgres::Pool> {
    let config: tokio_postgres::Config =
        database_url.parse().context("FENGQIAO_DATABASE_URL is not a PostgreSQL URL")?;
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
    );
    // A request waits a bounded time for a connection and then fails UNAVAILABLE, never hangs.
    deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .context("building the database pool")
}

/// Opens the event store named in `settings`.
///
/// # Errors
/// NATS unreachable or the stream misconfigured.
pub async fn open_store(settings: &Settings) -> anyhow::Result<EventStore> {
    // A cluster is given as a comma-separated list; the client connects to any one of them and
    // fails over to the others.
    let servers: Vec<&str> = settings.nats_url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let client = async_nats::ConnectOptions::new()
        .name("fengqiao")
        .retry_on_initial_connect()
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(servers.as_slice())
        .await
        .with_context(|| format!("connecting to NATS at {}", settings.nats_url))?;
    let config = StoreConfig {
        stream: settings.stream.clone(),
        subject_prefix: settings.subject_prefix.clone(),
        replicas: settings.replicas,
        ..StoreConfig::default()
    };
    Ok(EventStore::open(client, config).await?)
}

impl Application {
    /// Connects everything and binds the listener; nothing is served until [`Application::run`].
    ///
    /// # Errors
    /// NATS or PostgreSQL unreachable, stream misconfigured, address in use, token keys or TLS
    /// files unreadable.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        settings.timers.check()?;
        let store = open_store(&settings).await?;
        // Each projector holds one connection for as long as it runs; queries share the rest.
        let pool = pool(&settings.database_url, settings.db_pool_size + READ_MODELS.len())?;
        drop(pool.get().await.with_context(|| "connecting to PostgreSQL (is FENGQIAO_DATABASE_URL right?)")?);
        let tls = match &settings.tls {
            Some(t) => {
                let read = |path: &std::path::Path, what: &str| {
                    std::fs::read(path).with_context(|| format!("reading the TLS {what} {}", path.display()))
                };
                Some(tonic::transport::Identity::from_pem(
                    read(&t.cert_file, "certificate")?,
                    read(&t.key_file, "key")?,
                ))
            }
            None => None,
        };
        let listener = TcpListener::bind(settings.grpc_addr)
            .await
            .with_context(|| format!("binding gRPC to {}", settings.grpc_addr))?;
        let mut applied = HashMap::new();
        let mut applied_rx = HashMap::new();
        for name in READ_MODELS {
            let (tx, rx) = watch::channel(0);
            applied.insert(name, tx);
            applied_rx.insert(name, rx);
        }
        let (queue_changes, _) = broadcast::channel(settings.watch_buffer.max(1));
        let (stop, stopping) = watch::channel(false);
        let sla = Arc::new(settings.rules.load()?);
        let shared = Arc::new(Shared {
            authenticator: Authenticator::new(&settings.auth)?,
            commands: CommandHandler::new(store.clone(), clock.clone()),
            clock,
            sla,
            queue_changes,
            watches: std::sync::Mutex::default(),
            stopping,
            pool,
            applied: applied_rx,
            settings,
        });
        Ok(Self { listener, tls, shared, store, applied, stop })
    }

    /// The bound gRPC address (useful with port 0).
    ///
    /// # Errors
    /// The socket has no local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes requests in hand and stops
    /// the projector between batches.
    ///
    /// # Errors
    /// The gRPC server or the projector failed (a read model that cannot apply a commit stops the
    /// service loudly rather than serving stale data silently).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = (self.stop, self.shared.stopping.clone());
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let shared = self.shared.clone();
        let mut applied = self.applied;
        let mut projectors = tokio::task::JoinSet::new();
        // One projector per read model; each name must also be in `READ_MODELS`.
        projectors_start(&mut projectors, &mut applied, &self.store, &shared, cases::Cases, stopped(stop_rx.clone()));
        let queues = work_queues::WorkQueues::announcing(shared.sla.clone(), shared.queue_changes.clone());
        projectors_start(&mut projectors, &mut applied, &self.store, &shared, queues, stopped(stop_rx.clone()));
        let linkage = referrals::Referrals::new(shared.sla.clone());
        projectors_start(&mut projectors, &mut applied, &self.store, &shared, linkage, stopped(stop_rx.clone()));
        let figures = statistics::Statistics::new(shared.sla.clone());
        projectors_start(&mut projectors, &mut applied, &self.store, &shared, figures, stopped(stop_rx.clone()));
        let timers = deadlines::Deadlines::new(shared.sla.clone());
        projectors_start(&mut projectors, &mut applied, &self.store, &shared, timers, stopped(stop_rx.clone()));

        // The timer worker fires due warnings and breaches (docs/deadlines.md).
        let timers = shared.settings.timers.enabled.then(|| {
            let worker = TimerWorker::new(
                self.store.clone(),
                shared.pool.clone(),
                shared.sla.clone(),
                shared.clock.clone(),
                &shared.settings.timers,
            );
            tokio::spawn(worker.run(shared.settings.timers.interval(), stopped(stop_rx.clone())))
        });

        // Read-model gauges (generation, applied sequence, lag, stopped) for the metrics endpoint.
        let gauges = crate::ops::report(shared.pool.clone(), self.store.clone(), stopped(stop_rx.clone()));
        let gauges = tokio::spawn(gauges);

        let api = Api { shared: shared.clone() };
        let max = shared.settings.max_message_bytes;
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<api::intake_service_server::IntakeServiceServer<Api>>().await;
        health_reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(fengqiao_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let mut builder = tonic::transport::Server::builder();
        if let Some(identity) = self.tls {
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .context("configuring TLS (is the key the certificate's?)")?;
        }
        let server = builder
            .add_service(health)
            .add_service(reflection)
            .add_service(
                api::intake_service_server::IntakeServiceServer::new(api.clone()).max_decoding_message_size(max),
            )
            .add_service(
                api::case_work_service_server::CaseWorkServiceServer::new(api.clone()).max_decoding_message_size(max),
            )
            .add_service(
                api::linkage_service_server::LinkageServiceServer::new(api.clone()).max_decoding_message_size(max),
            )
            .add_service(
                api::follow_up_service_server::FollowUpServiceServer::new(api.clone()).max_decoding_message_size(max),
            )
            .add_service(
                api::work_queue_service_server::WorkQueueServiceServer::new(api.clone()).max_decoding_message_size(max),
            )
            .add_service(
                api::linkage_queue_service_server::LinkageQueueServiceServer::new(api.clone())
                    .max_decoding_message_size(max),
            )
            .add_service(
                api::correction_service_server::CorrectionServiceServer::new(api.clone())
                    .max_decoding_message_size(max),
            )
            .add_service(
                api::statistics_service_server::StatisticsServiceServer::new(api.clone())
                    .max_decoding_message_size(max),
            )
            .add_service(
                api::escalation_board_service_server::EscalationBoardServiceServer::new(api.clone())
                    .max_decoding_message_size(max),
            )
            .add_service(api::watch_service_server::WatchServiceServer::new(api.clone()).max_decoding_message_size(max))
            .add_service(api::query_service_server::QueryServiceServer::new(api).max_decoding_message_size(max))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                stopped(stop_rx.clone()),
            );
        let mut server = tokio::spawn(server);

        tokio::pin!(shutdown);
        let outcome = tokio::select! {
            () = &mut shutdown => Ok(()),
            Some(r) = projectors.join_next() => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("projector stopped")),
                Err(e) => Err(anyhow::anyhow!("projector task failed: {e}")),
            },
            r = &mut server => r.map_err(anyhow::Error::from).and_then(|r| r.map_err(anyhow::Error::from)),
        };
        tracing::info!("stopping: finishing requests in hand");
        health_reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        let _ = stop_tx.send(true);
        if !server.is_finished() {
            let _ = server.await;
        }
        while projectors.join_next().await.is_some() {}
        let _ = gauges.await;
        if let Some(timers) = timers {
            let _ = timers.await;
        }
        outcome
    }
}

/// Starts the projector of one read model, handing it its applied-sequence sender.
fn projectors_start<M: ReadModel>(
    set: &mut tokio::task::JoinSet<fengqiao_projection::Result<()>>,
    senders: &mut HashMap<&'static str, watch::Sender<u64>>,
    store: &EventStore,
    shared: &Shared,
    model: M,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    if let Some(tx) = senders.remove(model.name()) {
        set.spawn(projector::run(model, store.clone(), shared.pool.clone(), ProjectorConfig::default(), tx, stop));
    }
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits at once.
pub async fn shutdown_signal() {
    let first = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    first.await;
    tracing::info!("shutdown requested; a second signal forces exit");
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

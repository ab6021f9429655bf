//! Test support: start a real Fengqiao against the local NATS and PostgreSQL, each test with its
//! own database and its own stream and subject prefix, so tests run in parallel safely.
//!
//! The servers come from `FENGQIAO_NATS_URL` and `FENGQIAO_DATABASE_URL` (set by
//! `deploy/local/test.sh`); the defaults match the local stack.

pub mod hotline;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use fengqiao::app::Application;
use fengqiao::auth;
use fengqiao::settings::Settings;
use fengqiao_domain::clock::ManualClock;
use fengqiao_domain::event::pb;
use fengqiao_proto::api;

pub use fengqiao_domain::event::pb as events;
pub use fengqiao_proto::api as rpc;

/// District, street, community and grid codes of Jiangjin, Chongqing, used across the tests.
pub const DISTRICT: &str = "500116000000";
pub const STREET: &str = "500116001000";
pub const COMMUNITY: &str = "500116001002";
pub const GRID: &str = "50011600100201";
pub const OTHER_COMMUNITY: &str = "500116002003";
pub const COMMITTEE: &str = "aipingshan-committee";

/// Settings pointing at the local stack with fresh names: database, stream, subject prefix.
pub fn fresh_settings() -> Settings {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut s = Settings::default();
    if let Ok(url) = std::env::var("FENGQIAO_NATS_URL") {
        s.nats_url = url;
    }
    let base = std::env::var("FENGQIAO_DATABASE_URL").unwrap_or(s.database_url.clone());
    s.database_url = with_database(&base, &format!("fq_test_{id}"));
    s.stream = format!("T_{id}");
    s.subject_prefix = format!("t{id}");
    s.grpc_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    s.db_pool_size = 4;
    // Timers would add their events to the histories of tests that move the clock on; the tests
    // of the timers turn them on (or drive a worker themselves).
    s.timers.enabled = false;
    s
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (head, query) = url.split_once('?').map_or((url, None), |(h, q)| (h, Some(q)));
    let base = match head.rfind('/') {
        Some(i) if i > head.find("://").map_or(0, |j| j + 2) => &head[..i],
        _ => head,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

fn database_name(url: &str) -> String {
    url.split('?').next().unwrap_or(url).rsplit('/').next().unwrap_or_default().to_owned()
}

/// Connects to `url` (a one-off client whose connection task runs in the background).
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// Creates the settings' database and migrates it.
pub async fn create_database(settings: &Settings) -> anyhow::Result<()> {
    let admin = connect(&with_database(&settings.database_url, "postgres")).await?;
    admin.batch_execute(&format!("CREATE DATABASE \"{}\"", database_name(&settings.database_url))).await?;
    let mut client = connect(&settings.database_url).await?;
    fengqiao_projection::migrate::run(&mut client).await?;
    fengqiao::hotline::migrate(&mut client).await?;
    Ok(())
}

/// Drops the test's database and stream (best effort: a failure only leaves litter).
pub async fn cleanup(settings: &Settings) {
    if let Ok(admin) = connect(&with_database(&settings.database_url, "postgres")).await {
        let _ = admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                database_name(&settings.database_url)
            ))
            .await;
    }
    if let Ok(client) = async_nats::connect(&settings.nats_url).await {
        let _ = async_nats::jetstream::new(client).delete_stream(&settings.stream).await;
    }
}

/// A running Fengqiao for one test.
pub struct TestApp {
    pub settings: Settings,
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Creates a database and starts Fengqiao on port 0, its clock at the present instant.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// As [`TestApp::spawn`], with settings that `edit` adjusts first (keys, TLS, limits).
    pub async fn spawn_with(edit: impl FnOnce(&mut Settings)) -> TestApp {
        let mut settings = fresh_settings();
        edit(&mut settings);
        create_database(&settings).await.expect("test database");
        let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
        Self::start(settings, clock).await
    }

    async fn start(settings: Settings, clock: Arc<ManualClock>) -> TestApp {
        let app = Application::build(settings.clone(), clock.clone()).await.expect("application builds");
        let addr = app.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        TestApp { settings, addr, clock, stop: Some(stop), server: Some(server) }
    }

    /// Another instance of the service on the same database and stream (its own port, cache and
    /// projector), as when several `fengqiao` processes serve one deployment.
    pub async fn spawn_beside(&self) -> TestApp {
        Self::start(self.settings.clone(), self.clock.clone()).await
    }

    /// Stops the service gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stopped cleanly");
        }
    }

    /// Stops and starts the service again on the same database and stream (new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let next = Self::start(self.settings.clone(), self.clock.clone()).await;
        *self = next;
    }

    /// Stops an instance started with [`TestApp::spawn_beside`], leaving the database and stream
    /// to the first.
    pub async fn finish_beside(mut self) {
        self.stop().await;
    }

    /// Stops the service and drops its database and stream.
    pub async fn finish(mut self) {
        self.stop().await;
        cleanup(&self.settings).await;
    }

    /// A bearer token for `role` at `unit`.
    pub fn token(&self, role: &str, unit: &str) -> String {
        self.token_for(&format!("test-{role}"), role, unit, "")
    }

    /// A bearer token with every claim chosen.
    pub fn token_for(&self, sub: &str, role: &str, unit: &str, partner: &str) -> String {
        auth::mint(&self.settings.auth, &auth::claims(&self.settings.auth, sub, role, unit, partner, 600))
            .expect("token")
    }

    /// A bearer token for a mediator or committee lead working in `committee`.
    pub fn token_in_committee(&self, role: &str, unit: &str, committee: &str) -> String {
        self.token_with(&format!("test-{role}-{committee}"), role, unit, |c| c.committee = committee.to_owned())
    }

    /// A bearer token whose claims `edit` adjusts before signing.
    pub fn token_with(&self, sub: &str, role: &str, unit: &str, edit: impl FnOnce(&mut auth::Claims)) -> String {
        let mut claims = auth::claims(&self.settings.auth, sub, role, unit, "", 600);
        edit(&mut claims);
        auth::mint(&self.settings.auth, &claims).expect("token")
    }

    /// A gRPC channel to the service.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).expect("uri").connect().await.expect("connect")
    }

    pub async fn intake(&self) -> api::intake_service_client::IntakeServiceClient<Channel> {
        api::intake_service_client::IntakeServiceClient::new(self.channel().await)
    }

    pub async fn work(&self) -> api::case_work_service_client::CaseWorkServiceClient<Channel> {
        api::case_work_service_client::CaseWorkServiceClient::new(self.channel().await)
    }

    pub async fn linkage(&self) -> api::linkage_service_client::LinkageServiceClient<Channel> {
        api::linkage_service_client::LinkageServiceClient::new(self.channel().await)
    }

    pub async fn follow_up(&self) -> api::follow_up_service_client::FollowUpServiceClient<Channel> {
        api::follow_up_service_client::FollowUpServiceClient::new(self.channel().await)
    }

    pub async fn escalations(&self) -> api::escalation_board_service_client::EscalationBoardServiceClient<Channel> {
        api::escalation_board_service_client::EscalationBoardServiceClient::new(self.channel().await)
    }

    pub async fn query(&self) -> api::query_service_client::QueryServiceClient<Channel> {
        api::query_service_client::QueryServiceClient::new(self.channel().await)
    }

    /// A client of the test's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        connect(&self.settings.database_url).await.expect("test database")
    }

    /// Number of messages in the test's stream.
    pub async fn stream_messages(&self) -> u64 {
        let client = async_nats::connect(&self.settings.nats_url).await.expect("nats");
        let mut stream = async_nats::jetstream::new(client).get_stream(&self.settings.stream).await.expect("stream");
        stream.info().await.expect("stream info").state.messages
    }

    /// Reads a case as `token` once the read model has applied `sequence`.
    pub async fn case(&self, token: &str, case_id: &str, sequence: u64) -> api::GetCaseResponse {
        self.query()
            .await
            .get_case(req(token, api::GetCaseRequest { case_id: case_id.to_owned(), min_sequence: Some(sequence) }))
            .await
            .expect("GetCase")
            .into_inner()
    }
}

/// A request carrying `token` as its bearer token.
pub fn req<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).expect("header value"));
    request
}

/// Command metadata with `key` as idempotency key.
pub fn meta(key: &str) -> Option<api::CommandMeta> {
    Some(api::CommandMeta { idempotency_key: key.to_owned(), ..Default::default() })
}

/// Command metadata pinned to an expected version.
pub fn meta_at(key: &str, version: u64) -> Option<api::CommandMeta> {
    Some(api::CommandMeta { idempotency_key: key.to_owned(), expected_version: Some(version), ..Default::default() })
}

/// A party.
pub fn party(name: &str, role: pb::PartyRole, phone: &str, resident_id: &str) -> pb::Party {
    pb::Party { name: name.to_owned(), role: role as i32, phone: phone.to_owned(), resident_id: resident_id.to_owned() }
}

/// A valid 12345 work-order registration in the community (a neighbours' water-leak dispute).
pub fn hotline_order(order_number: &str) -> api::RegisterCaseRequest {
    api::RegisterCaseRequest {
        meta: meta(&format!("register-{order_number}")),
        channel: pb::Channel::Hotline12345 as i32,
        external_ref: order_number.to_owned(),
        parties: vec![
            party("张三", pb::PartyRole::Applicant, "13812345678", "11010519491231002X"),
            party("李四", pb::PartyRole::Respondent, "023-47521234", ""),
        ],
        category: "邻里纠纷".to_owned(),
        description: "楼上卫生间漏水渗入楼下卧室，双方协商未果。".to_owned(),
        unit_code: COMMUNITY.to_owned(),
        address: "重庆市江津区几江街道艾坪山社区3栋".to_owned(),
        urgency: pb::Urgency::Normal as i32,
        ..Default::default()
    }
}

/// An agreement between the parties of [`hotline_order`] (张三, 李四), signed by both and by
/// mediator 王调解 (`m-wang`).
pub fn signed_agreement() -> pb::Agreement {
    pb::Agreement {
        party_names: vec!["张三".to_owned(), "李四".to_owned()],
        facts: "楼上卫生间漏水。".to_owned(),
        points_in_dispute: "维修费用承担。".to_owned(),
        terms: "李四承担维修费用2000元。".to_owned(),
        performance_method: "一次性支付".to_owned(),
        signed_by: vec!["张三".to_owned(), "李四".to_owned(), "王调解".to_owned()],
        mediator_id: "m-wang".to_owned(),
        mediator_name: "王调解".to_owned(),
        ..Default::default()
    }
}

/// A grid worker's report (no external reference).
pub fn grid_report(key: &str) -> api::RegisterCaseRequest {
    api::RegisterCaseRequest {
        meta: meta(key),
        channel: pb::Channel::GridReport as i32,
        external_ref: String::new(),
        category: "物业纠纷".to_owned(),
        description: "停车位分配引发业主与物业争执。".to_owned(),
        ..hotline_order("unused")
    }
}

/// Names of a timeline's events, in order.
pub fn event_types(case: &api::GetCaseResponse) -> Vec<String> {
    case.timeline.iter().map(|t| t.event_type.clone()).collect()
}

/// Every row of every read model in `db`, keyed by `<projection>.<table>` (so two databases with
/// different generation schemas compare), each table's rows as sorted JSON text. Generic on
/// purpose: a new read model is compared without anyone listing its tables here.
///
/// # Errors
/// Database errors.
pub async fn read_model_rows(
    db: &tokio_postgres::Client,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut all = std::collections::BTreeMap::new();
    let tables = db
        .query(
            "SELECT c.projection, t.table_schema, t.table_name \
             FROM projection_checkpoints c JOIN information_schema.tables t ON t.table_schema = c.schema_name \
             WHERE t.table_type = 'BASE TABLE' ORDER BY 1, 3",
            &[],
        )
        .await?;
    for t in tables {
        let (projection, schema, table): (String, String, String) = (t.get(0), t.get(1), t.get(2));
        let rows = db
            .query(&format!("SELECT row_to_json(r)::text AS j FROM \"{schema}\".\"{table}\" r ORDER BY j"), &[])
            .await?;
        all.insert(format!("{projection}.{table}"), rows.iter().map(|r| r.get(0)).collect());
    }
    Ok(all)
}

/// The checkpoint of every read model in `db`, by name.
///
/// # Errors
/// Database errors.
pub async fn checkpoints(db: &tokio_postgres::Client) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let rows = db.query("SELECT projection, sequence FROM projection_checkpoints", &[]).await?;
    Ok(rows.iter().map(|r| (r.get::<_, String>(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0))).collect())
}

/// Runs the projector of every read model the service runs (`fengqiao::app::READ_MODELS`) over
/// `settings`' stream and database until each has applied `upto`, then stops them. Fails after
/// `within`, and for a read model it does not know how to build.
///
/// # Errors
/// NATS or PostgreSQL unreachable, a projector failing, an unknown read model, or `within`
/// passing first.
pub async fn project_until(
    settings: &Settings,
    max_batch: usize,
    upto: u64,
    within: std::time::Duration,
) -> anyhow::Result<()> {
    use fengqiao_projection::projector::{self, ProjectorConfig};
    let store = fengqiao::app::open_store(settings).await?;
    // A connection per projector, held for its whole session.
    let pool = fengqiao::app::pool(&settings.database_url, fengqiao::app::READ_MODELS.len() + 1)?;
    let sla = Arc::new(fengqiao_domain::sla::Sla::bundled()?);
    let config = ProjectorConfig { max_batch, ..ProjectorConfig::default() };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut applied = Vec::new();
    for name in fengqiao::app::READ_MODELS {
        let (tx, rx) = tokio::sync::watch::channel(0);
        let mut stop = stop_rx.clone();
        let stop = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let (store, pool, config) = (store.clone(), pool.clone(), config.clone());
        let spawned = fengqiao::with_read_model!(name, sla, |model| {
            tasks.spawn(projector::run(model, store, pool, config, tx, stop))
        });
        if spawned.is_none() {
            anyhow::bail!("read model {name} is not known to fengqiao::with_read_model");
        }
        applied.push((name, rx));
    }
    let reached = tokio::time::timeout(within, async {
        for (name, rx) in &mut applied {
            if rx.wait_for(|s| *s >= upto).await.is_err() {
                return Err(anyhow::anyhow!("the projector of {name} stopped before sequence {upto}"));
            }
        }
        Ok(())
    })
    .await;
    stop_tx.send_replace(true);
    while let Some(task) = tasks.join_next().await {
        task.context("projector task")??;
    }
    reached.map_err(|_| anyhow::anyhow!("the read models did not reach sequence {upto} within {within:?}"))?
}

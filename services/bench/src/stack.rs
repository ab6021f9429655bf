//! The local stack the bench runs against: where NATS and PostgreSQL are, fresh database and
//! stream names for each measurement (removed again when the run ends, even after a failure), and
//! a description of the machine and the servers' configuration for the report.

use std::net::SocketAddr;
use std::sync::Mutex;

use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use fengqiao::settings::Settings;
pub use fengqiao_tests::{connect, with_database};

/// The servers, from the same `FENGQIAO_*` variables the service reads.
#[derive(Debug, Clone)]
pub struct Stack {
    pub nats_url: String,
    /// Database URL whose database name is replaced for every fresh database.
    pub database_url: String,
    /// NATS monitoring port, for `/varz` (the server's version and sync setting).
    pub nats_monitor_port: u16,
    /// Stream replicas: 1 on one machine, 3 on a cluster.
    pub replicas: usize,
    /// Settings of every database and stream created by this run, dropped by [`Stack::cleanup`].
    litter: std::sync::Arc<Mutex<Vec<Settings>>>,
    run_id: String,
}

impl Stack {
    /// Reads the environment (defaults: the local stack's ports).
    pub fn from_env() -> Self {
        let defaults = Settings::default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            nats_url: var("FENGQIAO_NATS_URL").unwrap_or(defaults.nats_url),
            database_url: var("FENGQIAO_DATABASE_URL").unwrap_or(defaults.database_url),
            nats_monitor_port: var("FENGQIAO_NATS_MONITOR_PORT").and_then(|p| p.parse().ok()).unwrap_or(18222),
            replicas: var("FENGQIAO_REPLICAS").and_then(|r| r.parse().ok()).unwrap_or(defaults.replicas),
            litter: Default::default(),
            run_id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        }
    }

    /// Service settings for the measurement called `what`: its own database, stream and subject
    /// prefix (recorded for clean-up), serving on a free loopback port.
    pub fn fresh(&self, what: &str) -> Settings {
        let tag = format!("{what}_{}", self.run_id);
        let settings = Settings {
            nats_url: self.nats_url.clone(),
            database_url: with_database(&self.database_url, &format!("fq_bench_{tag}")),
            stream: format!("BENCH_{}", tag.to_ascii_uppercase()),
            subject_prefix: format!("bench{}{}", what.replace('_', ""), self.run_id),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            replicas: self.replicas,
            ..Settings::default()
        };
        self.litter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(settings.clone());
        settings
    }

    /// Creates the settings' database and migrates it (every read model set up, empty).
    ///
    /// # Errors
    /// PostgreSQL unreachable or the migration failed.
    pub async fn create_database(&self, settings: &Settings) -> anyhow::Result<()> {
        fengqiao_tests::create_database(settings).await
    }

    /// Drops every database and stream this run created (best effort).
    pub async fn cleanup(&self) {
        let litter = std::mem::take(&mut *self.litter.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for settings in litter {
            fengqiao_tests::cleanup(&settings).await;
        }
    }
}

/// What the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub date: String,
    pub machine: Machine,
    pub nats: NatsInfo,
    /// Replicas of the streams the bench creates.
    pub stream_replicas: usize,
    pub postgres: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_mib: u64,
    pub kernel: String,
    /// 1-minute load average when the run started: other work on the machine skews every figure.
    pub load_at_start: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NatsInfo {
    pub version: String,
    /// `sync_interval: always` (fsync before every acknowledgement).
    pub sync_always: Option<bool>,
    pub sync_interval_ns: Option<u64>,
}

impl Environment {
    /// Reads `/proc`, NATS `/varz` and PostgreSQL's settings.
    pub async fn probe(stack: &Stack) -> Self {
        let proc = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let meminfo = proc("/proc/meminfo");
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let cpuinfo = proc("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
            .unwrap_or_else(|| "unknown".to_owned());
        let machine = Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_mib: memory_kib / 1024,
            kernel: proc("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_at_start: proc("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        };
        let nats = nats_info(stack.nats_monitor_port).await.unwrap_or(NatsInfo {
            version: "unknown (monitoring port not reachable)".to_owned(),
            sync_always: None,
            sync_interval_ns: None,
        });
        let postgres = postgres_settings(&stack.database_url).await.unwrap_or_default();
        Self {
            date: jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC").to_string(),
            machine,
            nats,
            stream_replicas: stack.replicas,
            postgres,
        }
    }
}

/// The server's `/varz`, read over a bare HTTP/1.0 request (no HTTP client needed for one GET).
async fn nats_info(port: u16) -> anyhow::Result<NatsInfo> {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    socket.write_all(b"GET /varz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let varz: serde_json::Value = serde_json::from_str(body)?;
    let config = &varz["jetstream"]["config"];
    Ok(NatsInfo {
        version: varz["version"].as_str().unwrap_or("unknown").to_owned(),
        sync_always: config["sync_always"].as_bool(),
        sync_interval_ns: config["sync_interval"].as_u64(),
    })
}

/// The PostgreSQL settings that bound write and read speed.
async fn postgres_settings(url: &str) -> anyhow::Result<Vec<(String, String)>> {
    let client = connect(&with_database(url, "postgres")).await?;
    let mut out = Vec::new();
    for name in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_level",
        "full_page_writes",
        "shared_buffers",
        "work_mem",
        "max_wal_size",
    ] {
        let row = client.query_one(&format!("SHOW {name}"), &[]).await?;
        out.push((name.to_owned(), row.get::<_, String>(0)));
    }
    Ok(out)
}

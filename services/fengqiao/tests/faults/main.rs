//! Faults survived with nothing lost. Each test is one scenario: a stage of servers the suite owns
//! (its own `nats-server` — one, or a three-node cluster —, its own PostgreSQL cluster, and
//! `fengqiao serve` as a child process, connected through TCP proxies the suite can cut), a
//! workload of clients taking cases through their whole life over gRPC and retrying with their
//! idempotency keys, and one fault injected while they run:
//!
//! | scenario | fault |
//! |---|---|
//! | `serve_killed` | `kill -9` of `fengqiao serve`, restarted on the same port |
//! | `nats_restarted` | SIGKILL of the NATS server, restarted on the same store |
//! | `postgres_restarted` | PostgreSQL immediate shutdown (as a crash), restarted with WAL recovery |
//! | `nats_cut` | every Fengqiao ↔ NATS connection reset and new ones refused for a while |
//! | `postgres_cut` | the same between Fengqiao and PostgreSQL |
//! | `cluster_leader_killed` | SIGKILL of the stream leader of a three-node NATS cluster (R3) |
//! | `instance_killed` | two `fengqiao serve` instances, clients taking them in turn; `kill -9` of one |
//! | `hotline_down` | the 12345 hotline answers every callback with 503 |
//!
//! `fengqiao serve` runs its timer worker (a scan every 200 ms) and its hotline bridge, which
//! posts callbacks to a fake hotline of the test (`fengqiao_tests::hotline::FakeHotline`); part
//! of the workload registers 12345 orders whose reply deadline falls during the scenario.
//!
//! After each: every acknowledged command is in the stream exactly once at the sequence and
//! version its client was told; every retried command converges to one result when sent again;
//! the read models equal a fresh replay from sequence 0; no deadline warned or breached twice and
//! every due one breached; every callback delivered, in order per order, each delivery id with one
//! content; the service answers its health check.
//! Each test prints one row of the table in `docs/faults.md`.
//!
//! This is an integration test of the `fengqiao` package so that cargo builds the `fengqiao`
//! binary for it (`CARGO_BIN_EXE_fengqiao`): the scenarios run the real `fengqiao serve` as a
//! child process, which is what `kill -9` needs. The scenarios run one at a time (a lock here;
//! a nextest test group in `.config/nextest.toml`), each in a few seconds.
//! `FENGQIAO_FAULTS_SOAK=1` runs the long mode: more clients, longer outages, five rounds.

mod checks;
mod proxy;
mod servers;
mod workload;

use std::time::{Duration, Instant};

use anyhow::Context as _;

use fengqiao::settings::Settings;
use fengqiao_tests::hotline::FakeHotline;
use fengqiao_tests::{create_database, fresh_settings};

use checks::{callbacks, callbacks_settled, deadlines, read_models_match, read_stream, resend, verify};
use proxy::Proxy;
use servers::{
    NatsNode, Postgres, Serve, TIMER_INTERVAL, TempDir, nats_cluster, nats_single, tail, until, write_config,
};
use workload::{Clients, Tokens, Workload, probe};

/// A command in flight when a fault that stops commands begins waits at least this long: proof
/// that the fault really stood in the way (half the shortest outage).
const OUTAGE_FELT: Duration = Duration::from_secs(1);

/// How long after a deadline fell due (and one timer scan) its breach may still be missing: time
/// for `fengqiao serve`, NATS and PostgreSQL to recover from the fault and the worker to commit.
const DEADLINE_SLACK: Duration = Duration::from_secs(15);

/// One scenario at a time, also under `cargo test` (which runs a binary's tests in threads).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How hard a run pushes.
#[derive(Debug, Clone)]
struct Profile {
    clients: usize,
    /// Acknowledged commands before the first fault.
    warmup_acks: usize,
    /// How long the fault is held.
    outage: Duration,
    /// Acknowledged commands after each recovery before the next round (or the end).
    tail_acks: usize,
    rounds: usize,
    /// Upper bound on acknowledged commands per scenario.
    max_acks: usize,
}

fn profile() -> Profile {
    if std::env::var_os("FENGQIAO_FAULTS_SOAK").is_some_and(|v| !v.is_empty() && v != "0") {
        Profile {
            clients: 16,
            warmup_acks: 500,
            outage: Duration::from_secs(8),
            tail_acks: 1000,
            rounds: 5,
            max_acks: 100_000,
        }
    } else {
        Profile {
            clients: 6,
            warmup_acks: 60,
            outage: Duration::from_secs(2),
            tail_acks: 60,
            rounds: 1,
            max_acks: 5_000,
        }
    }
}

/// Which servers a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topology {
    /// One NATS server, reached through a proxy.
    Single,
    /// Three NATS servers in a cluster, the stream R3, Fengqiao given all three URLs.
    Cluster,
}

/// What a scenario breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    KillServe,
    RestartNats,
    RestartPostgres,
    CutNats,
    CutPostgres,
    KillNatsLeader,
    /// `kill -9` of the first of several instances.
    KillInstance,
    /// The 12345 hotline answers every callback with 503.
    HotlineDown,
}

impl Fault {
    /// Whether the service must keep working during the fault (measured from the break), rather
    /// than recover after it is lifted (measured from the heal).
    fn continuity(self) -> bool {
        matches!(self, Self::KillNatsLeader | Self::KillInstance)
    }
}

/// The servers of one scenario. Fields drop in order: the service, the proxies, the servers,
/// and last the directory holding their data.
struct Stage {
    /// The instances of `fengqiao serve`, all on the same stream and database.
    serves: Vec<Serve>,
    /// The 12345 hotline the bridges post their callbacks to.
    hotline: FakeHotline,
    nats_proxy: Option<Proxy>,
    pg_proxy: Proxy,
    nats: Vec<NatsNode>,
    pg: Postgres,
    /// The stream and database `fengqiao serve` uses, reached directly: what the checks use.
    direct: Settings,
    /// Holds every server's data; removed last.
    _dir: TempDir,
}

impl Stage {
    async fn new(name: &str, topology: Topology, instances: usize) -> anyhow::Result<Self> {
        let dir = TempDir::new(name)?;
        let nats = match topology {
            Topology::Single => vec![nats_single(&dir.path).await?],
            Topology::Cluster => nats_cluster(&dir.path).await?,
        };
        let pg = Postgres::create(&dir.path).await?;
        let pg_proxy = Proxy::start(([127, 0, 0, 1], pg.port).into()).await?;
        let nats_proxy = match topology {
            Topology::Single => Some(Proxy::start(([127, 0, 0, 1], nats[0].port).into()).await?),
            Topology::Cluster => None,
        };
        let names = fresh_settings();
        let mut direct = names.clone();
        direct.nats_url = nats.iter().map(NatsNode::url).collect::<Vec<_>>().join(",");
        direct.database_url = pg.url("fengqiao");
        direct.replicas = nats.len();
        let mut settings = direct.clone();
        if let Some(p) = &nats_proxy {
            settings.nats_url = format!("nats://{}", p.addr);
        }
        settings.database_url = format!("postgres://postgres@{}/fengqiao", pg_proxy.addr);
        create_database(&direct).await?;
        let hotline = FakeHotline::start().await;
        let config = write_config(&dir.path)?;
        let mut serves = Vec::new();
        for n in 1..=instances {
            let mut serve = Serve::new(&settings, &config, &hotline.url, &dir.path, n)?;
            serve.start()?;
            serves.push(serve);
        }
        let stage = Self { serves, hotline, nats_proxy, pg_proxy, nats, pg, direct, _dir: dir };
        stage.wait_serving(Duration::from_secs(30)).await?;
        Ok(stage)
    }

    /// The instances' gRPC addresses.
    fn addrs(&self) -> Vec<std::net::SocketAddr> {
        self.serves.iter().map(|s| s.addr).collect()
    }

    /// Waits until every instance answers its health check with SERVING.
    async fn wait_serving(&self, within: Duration) -> anyhow::Result<Duration> {
        let clients = Clients::new(&self.addrs())?;
        until(within, "fengqiao serve healthy", || {
            let c = clients.clone();
            async move { c.serving().await }
        })
        .await
    }

    /// Fails if an instance has exited on its own.
    fn all_running(&mut self) -> anyhow::Result<()> {
        for serve in &mut self.serves {
            if let Some(status) = serve.exited() {
                anyhow::bail!("fengqiao serve ({}) exited on its own: {status}", serve.addr);
            }
        }
        Ok(())
    }

    /// The node leading the stream's RAFT group.
    async fn stream_leader(&self) -> anyhow::Result<usize> {
        let servers: Vec<String> = self.nats.iter().map(NatsNode::url).collect();
        let client = async_nats::connect(servers.as_slice()).await?;
        let mut stream = async_nats::jetstream::new(client).get_stream(&self.direct.stream).await?;
        let info = stream.info().await?;
        let leader = info.cluster.as_ref().and_then(|c| c.leader.clone()).context("the stream has no leader")?;
        self.nats.iter().position(|n| n.name == leader).with_context(|| format!("leader {leader} is not ours"))
    }

    async fn inject(&mut self, fault: Fault) -> anyhow::Result<Option<usize>> {
        match fault {
            Fault::KillServe | Fault::KillInstance => self.serves[0].kill9().await,
            Fault::RestartNats => self.nats[0].kill().await,
            Fault::RestartPostgres => self.pg.crash().await?,
            Fault::CutNats => self.nats_proxy.as_ref().context("no NATS proxy")?.cut(),
            Fault::CutPostgres => self.pg_proxy.cut(),
            Fault::HotlineDown => self.hotline.set_down(true),
            Fault::KillNatsLeader => {
                let leader = self.stream_leader().await?;
                self.nats[leader].kill().await;
                return Ok(Some(leader));
            }
        }
        Ok(None)
    }

    async fn lift(&mut self, fault: Fault, node: Option<usize>) -> anyhow::Result<()> {
        match fault {
            Fault::KillServe | Fault::KillInstance => self.serves[0].start()?,
            Fault::RestartNats => self.nats[0].start()?,
            Fault::RestartPostgres => self.pg.start()?,
            Fault::CutNats => self.nats_proxy.as_ref().context("no NATS proxy")?.restore(),
            Fault::CutPostgres => self.pg_proxy.restore(),
            Fault::HotlineDown => self.hotline.set_down(false),
            Fault::KillNatsLeader => {
                let node = &mut self.nats[node.context("no node was killed")?];
                node.start()?;
                node.wait_healthy(Duration::from_secs(30)).await?;
            }
        }
        Ok(())
    }

    /// The ends of the logs, for a failure message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for serve in &self.serves {
            out += &format!("--- fengqiao serve {}\n{}\n", serve.addr, tail(&serve.log, 30));
        }
        for n in &self.nats {
            out += &format!("--- {}\n{}\n", n.name, tail(&n.log, 10));
        }
        out + &format!("--- postgres\n{}\n", tail(&self.pg.log, 10))
    }
}

/// One row of the report.
#[derive(Debug)]
struct Row {
    scenario: &'static str,
    acked: usize,
    acked_while_broken: usize,
    /// The longest a client waited for one command (its retries included).
    slowest: Duration,
    retried: usize,
    gave_up: usize,
    lost: usize,
    duplicates: usize,
    /// Longest time from the fault's end (or, for continuity, its start) until a new case is
    /// registered (acknowledged), and until it is also read back from the read model.
    writes_back: Duration,
    reads_back: Duration,
    /// Time for the read models to reach the stream's end once the clients stopped.
    read_models: Duration,
    /// Deadlines the timer worker warned of and breached; the breaches that were due.
    warned: usize,
    breached: usize,
    due: usize,
    /// Callbacks the hotline bridge delivered, posted again after a lost answer, had refused
    /// (the hotline down), and dead-lettered.
    callbacks: checks::Callbacks,
    /// Once the due deadlines were breached, until the bridge had posted every callback.
    callbacks_caught_up: Duration,
}

const HEADER: &str = "| scenario | acknowledged | acked while broken | slowest command | retried | gave up, converged later | lost | duplicates | writes back in | reads back in | read models caught up in | deadlines warned / breached (due) | callbacks delivered (resent, refused, dead) | callbacks caught up in |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "| {} | {} | {} | {:.2} s | {} | {} | {} | {} | {:.2} s | {:.2} s | {:.2} s | {} / {} ({}) | {} ({}, {}, {}) | {:.2} s |",
            self.scenario,
            self.acked,
            self.acked_while_broken,
            self.slowest.as_secs_f64(),
            self.retried,
            self.gave_up,
            self.lost,
            self.duplicates,
            self.writes_back.as_secs_f64(),
            self.reads_back.as_secs_f64(),
            self.read_models.as_secs_f64(),
            self.warned,
            self.breached,
            self.due,
            self.callbacks.delivered,
            self.callbacks.resent,
            self.callbacks.refused,
            self.callbacks.dead,
            self.callbacks_caught_up.as_secs_f64()
        )
    }
}

/// Waits until `ledger` has `n` acknowledged commands, failing early if `fengqiao serve` died.
async fn acked_at_least(stage: &mut Stage, workload: &Workload, n: usize, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while workload.ledger.acked() < n {
        stage.all_running()?;
        anyhow::ensure!(
            started.elapsed() < within,
            "only {} of {n} commands acknowledged within {within:?}",
            workload.ledger.acked()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn scenario(name: &'static str, topology: Topology, instances: usize, fault: Fault) -> anyhow::Result<Row> {
    let p = profile();
    let mut stage = Stage::new(name, topology, instances).await?;
    let result = drive(name, &mut stage, fault, &p).await;
    result.with_context(|| stage.logs())
}

async fn drive(name: &'static str, stage: &mut Stage, fault: Fault, p: &Profile) -> anyhow::Result<Row> {
    let run = format!("{name}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let tokens = Tokens::new()?;
    let prober = Clients::new(&stage.addrs())?;
    let workload = Workload::start(&stage.addrs(), &run, p.clients, p.max_acks)?;
    acked_at_least(stage, &workload, p.warmup_acks, Duration::from_secs(60)).await?;
    let (mut writes_back, mut reads_back) = (Duration::ZERO, Duration::ZERO);
    let mut broken = Vec::new();
    for round in 0..p.rounds {
        let key = format!("{run}-probe-{round}");
        let broke_at = Instant::now();
        let node = stage.inject(fault).await?;
        let mut recovered = None;
        if fault.continuity() {
            recovered = Some(probe(&workload.ledger, &prober, &tokens, &key, broke_at).await?);
        }
        // The fault is held for its full length: this wait is part of the scenario.
        tokio::time::sleep(p.outage.saturating_sub(broke_at.elapsed())).await;
        stage.lift(fault, node).await?;
        let healed_at = Instant::now();
        broken.push((broke_at, healed_at));
        let (written, read) = match recovered {
            Some(r) => r,
            None => probe(&workload.ledger, &prober, &tokens, &key, healed_at).await?,
        };
        writes_back = writes_back.max(written);
        reads_back = reads_back.max(read);
        let target = workload.ledger.acked() + p.tail_acks;
        acked_at_least(stage, &workload, target.min(p.max_acks), Duration::from_secs(60)).await?;
    }
    let ledger = workload.stop().await?;
    stage.all_running()?;
    stage.wait_serving(Duration::from_secs(30)).await?;
    let problems = ledger.problems();
    anyhow::ensure!(problems.is_empty(), "the clients found problems: {problems:#?}");

    let records = ledger.records();
    let slowest = records.iter().map(|r| r.took).max().unwrap_or_default();
    let acked_while_broken =
        records.iter().filter(|r| r.outcome.is_ok() && broken.iter().any(|(b, h)| (*b..=*h).contains(&r.at))).count();
    let unexpected: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r.outcome
                .as_ref()
                .err()
                .filter(|(code, _)| !workload::retryable_code(*code))
                .map(|e| format!("{} {}: {e:?}", r.command.rpc(), r.key))
        })
        .collect();
    anyhow::ensure!(unexpected.is_empty(), "commands refused, not merely unavailable: {unexpected:#?}");
    let (records, gave_up, not_converged) = resend(records, &prober, &tokens).await;
    anyhow::ensure!(not_converged.is_empty(), "retried commands that did not converge: {not_converged:#?}");

    // The deadlines due: the hotline_reply deadlines of the 12345 orders registered to go overdue
    // (their reply deadline a few seconds after registration; nothing closes them, so nothing
    // stops the clock). By the last of them plus one timer scan and a recovery's slack, every one
    // must be breached; the other clocks of the workload run minutes or more and are not due.
    let (due, last_due) = overdue(&records);
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let wait = Duration::from_millis(u64::try_from(last_due - now_ms).unwrap_or(0)) + TIMER_INTERVAL + DEADLINE_SLACK;
    let (urls, stream) = (&stage.direct.nats_url, &stage.direct.stream);
    let all_breached = until(wait, "every due reply deadline breached", || async {
        read_stream(urls, stream).await.is_ok_and(|s| deadlines(&s, &due).missing.is_empty())
    })
    .await;
    let callbacks_caught_up = callbacks_settled(&stage.direct, Duration::from_secs(60)).await?;
    let stored = read_stream(urls, stream).await?;
    let fired = deadlines(&stored, &due);
    if let Err(e) = all_breached {
        anyhow::bail!("{e}: {} of {} due not breached: {:?}", fired.missing.len(), due.len(), fired.missing);
    }
    let callbacks = callbacks(&stage.direct.database_url, &stage.hotline.received()).await?;
    let verdict = verify(&records, &stored);
    let last = stored.last().map_or(0, |s| s.sequence);
    let replay_url = stage.pg.url("replay");
    let read_models = read_models_match(&stage.direct, &stage.pg.url("fengqiao"), &replay_url, last).await?;
    let row = Row {
        scenario: name,
        acked: verdict.acked,
        acked_while_broken,
        slowest,
        retried: verdict.retried,
        gave_up,
        lost: verdict.lost,
        duplicates: verdict.duplicates,
        writes_back,
        reads_back,
        read_models,
        warned: fired.warned,
        breached: fired.breached,
        due: due.len(),
        callbacks,
        callbacks_caught_up,
    };
    println!("{HEADER}\n{row}");
    anyhow::ensure!(fired.problems.is_empty(), "{row}\ndeadlines fired more than once: {:#?}", fired.problems);
    anyhow::ensure!(
        row.callbacks.problems.is_empty(),
        "{row}\nthe hotline's callbacks disagree with the outbox: {:#?}",
        row.callbacks.problems
    );
    // The bridge's retries (servers::write_config) outlast every outage of the suite.
    anyhow::ensure!(row.callbacks.dead == 0, "{row}\ncallbacks dead-lettered");
    anyhow::ensure!(
        verdict.problems.is_empty(),
        "{row}\nthe stream disagrees with the clients: {:#?}",
        verdict.problems
    );
    anyhow::ensure!(verdict.lost == 0 && verdict.duplicates == 0, "{row}");
    Ok(row)
}

/// The 12345 orders the clients registered with a reply deadline (the overdue ones), and the
/// latest of those deadlines (Unix ms).
fn overdue(records: &[workload::Sent]) -> (Vec<String>, i64) {
    let mut last = 0;
    let mut cases = Vec::new();
    for r in records {
        if let (workload::Command::Register { request, .. }, Some(ack)) = (&r.command, r.acked())
            && request.reply_deadline_unix_ms > 0
        {
            last = last.max(request.reply_deadline_unix_ms);
            cases.push(ack.case_id.clone());
        }
    }
    (cases, last)
}

/// Runs one scenario under the lock and fails the test on any finding.
async fn run(name: &'static str, topology: Topology, instances: usize, fault: Fault) -> Row {
    let _one_at_a_time = SERIAL.lock().await;
    match scenario(name, topology, instances, fault).await {
        Ok(row) => row,
        Err(e) => panic!("scenario {name} failed: {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed() {
    let row = run("serve_killed", Topology::Single, 1, Fault::KillServe).await;
    assert!(row.slowest >= OUTAGE_FELT, "commands in flight must have waited for the restart: {row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted() {
    let row = run("nats_restarted", Topology::Single, 1, Fault::RestartNats).await;
    assert!(row.slowest >= OUTAGE_FELT, "commands must have waited for NATS: {row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted() {
    let row = run("postgres_restarted", Topology::Single, 1, Fault::RestartPostgres).await;
    assert!(row.acked_while_broken > 0, "commands do not need PostgreSQL: {row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_cut() {
    let row = run("nats_cut", Topology::Single, 1, Fault::CutNats).await;
    assert!(row.slowest >= OUTAGE_FELT, "commands must have waited for NATS: {row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut() {
    let row = run("postgres_cut", Topology::Single, 1, Fault::CutPostgres).await;
    assert!(row.acked_while_broken > 0, "commands do not need PostgreSQL: {row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_leader_killed() {
    let row = run("cluster_leader_killed", Topology::Cluster, 1, Fault::KillNatsLeader).await;
    assert!(row.acked_while_broken > 0, "the cluster must go on acknowledging with a node down: {row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_killed() {
    let row = run("instance_killed", Topology::Single, 2, Fault::KillInstance).await;
    assert!(row.acked_while_broken > 0, "the other instance must go on acknowledging: {row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hotline_down() {
    let row = run("hotline_down", Topology::Single, 1, Fault::HotlineDown).await;
    assert!(row.callbacks.refused > 0, "callbacks must have been posted while the hotline was down: {row}");
    assert!(row.callbacks.delivered > 0, "{row}");
}

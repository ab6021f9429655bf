//! `fengqiao-bench`: Fengqiao's throughput, latency, rebuild and query speed, each set against the
//! machine's own limit measured in the same run, against the local stack (NATS JetStream with
//! `sync_interval: always`, PostgreSQL).
//!
//! One run measures, in order:
//! 1. the limits: raw JetStream publish (one at a time, pipelined) and raw PostgreSQL batched
//!    insert ([`limits`]);
//! 2. command throughput over gRPC with many clients: registrations, and whole case lives
//!    ([`load::closed_loop`]);
//! 3. latency at half the measured registration rate: acknowledged, and visible in the
//!    committee's queue ([`load::open_loop`]);
//! 4. rebuild of every read model from a generated stream ([`rebuild`]);
//! 5. query latency over the rebuilt read models;
//! 6. the service's peak memory during 2 and 4 (it runs as a child process, see [`serve`]).
//!
//! Every database and stream it creates is removed when it ends. Figures go to stdout as a table
//! (`--markdown` for Markdown) and to a JSON report.

mod limits;
mod load;
mod procfs;
mod rebuild;
mod report;
mod serve;
mod stack;
mod stats;
mod timers;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::report::{Row, mib, percentiles, rate, thousands};
use crate::stack::{Environment, Stack};
use crate::stats::per_second;
use crate::workload::{Geography, Tokens, generated_life};

/// Targets from the benchmark issue.
const TARGET_THROUGHPUT: f64 = 0.70;
const TARGET_VISIBLE_P99_MS: f64 = 25.0;
const TARGET_REBUILD: f64 = 0.25;
const TARGET_QUEUE_P99_MS: f64 = 5.0;
const TARGET_QUEUE_CASES: u64 = 1_000_000;

#[derive(Debug, Parser)]
#[command(name = "fengqiao-bench", version, about = "Fengqiao benchmarks against the machine's own limits")]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    options: Options,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// (internal) Serve Fengqiao for the bench in this process until stdin closes.
    #[command(hide = true)]
    Serve(serve::ServeArgs),
}

#[derive(Debug, clap::Args)]
struct Options {
    /// Smoke run: tiny counts and one-second phases (figures mean nothing).
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Full run: rebuild and queries over 1,000,000 cases (some 2.75 million events), longer phases.
    #[arg(long)]
    full: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/bench/report.json")]
    report: PathBuf,
    /// Print the table as Markdown (for BENCHMARKS.md).
    #[arg(long)]
    markdown: bool,
    /// Concurrent gRPC clients in the throughput runs.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Publishes in flight in the pipelined raw publish run.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Cases in the generated stream for the rebuild and the queries (default by mode).
    #[arg(long)]
    cases: Option<u64>,
    /// Seconds each throughput and latency run measures (default by mode).
    #[arg(long)]
    seconds: Option<u64>,
    /// Samples of each query (default by mode).
    #[arg(long)]
    query_samples: Option<usize>,
    /// Due deadlines the timer worker fires in X1 (default: 100,000; 2,000 with --quick).
    #[arg(long)]
    timer_deadlines: Option<u64>,
    /// Measure only the limits (L1–L3): what the machine allows right now.
    #[arg(long)]
    limits_only: bool,
}

/// Sizes of one run.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Plan {
    mode: &'static str,
    limit_seconds: u64,
    limits_only: bool,
    warmup_ms: u64,
    seconds: u64,
    clients: usize,
    window: usize,
    cases: u64,
    generator_concurrency: usize,
    query_samples: usize,
    timer_deadlines: u64,
}

impl Plan {
    fn from(o: &Options) -> Self {
        let (mode, limit_seconds, warmup_ms, seconds, cases, query_samples) = if o.quick {
            ("quick", 1, 300, 1, 2_000, 100)
        } else if o.full {
            ("full", 10, 3_000, 30, TARGET_QUEUE_CASES, 5_000)
        } else {
            ("default", 4, 2_000, 10, 60_000, 2_000)
        };
        Self {
            mode,
            limit_seconds,
            limits_only: o.limits_only,
            warmup_ms,
            seconds: o.seconds.unwrap_or(seconds),
            clients: o.clients.max(1),
            window: o.window.clamp(1, 5_000),
            cases: o.cases.unwrap_or(cases).max(20),
            generator_concurrency: 512,
            query_samples: o.query_samples.unwrap_or(query_samples).max(1),
            timer_deadlines: o.timer_deadlines.unwrap_or(if o.quick { 2_000 } else { 100_000 }).max(2),
        }
    }
}

/// Cases of the gRPC runs spread over 20 communities; the generated history over 1,000.
const LOAD_GEOGRAPHY: Geography = Geography { townships: 2, villages: 10 };
const HISTORY_GEOGRAPHY: Geography = Geography { townships: 20, villages: 50 };

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Some(Sub::Serve(args)) => runtime.block_on(serve::child(args)),
        None => runtime.block_on(bench(cli.options)),
    }
}

async fn bench(options: Options) -> anyhow::Result<()> {
    let plan = Plan::from(&options);
    let stack = Stack::from_env();
    let env = Environment::probe(&stack).await;
    eprintln!(
        "fengqiao-bench ({} run) on {} cores, {} MiB; NATS {} (sync always: {}); PostgreSQL {}",
        plan.mode,
        env.machine.cores,
        env.machine.memory_mib,
        env.nats.version,
        env.nats.sync_always.map_or("unknown".to_owned(), |s| s.to_string()),
        env.postgres.iter().find(|(k, _)| k == "server_version").map_or("unknown", |(_, v)| v.as_str()),
    );
    if env.nats.sync_always != Some(true) {
        eprintln!("WARNING: NATS does not report sync_interval: always; the figures are not for durable writes");
    }
    let outcome = tokio::select! {
        r = measure(&stack, plan) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    eprintln!("removing the bench's databases and streams");
    stack.cleanup().await;
    let (rows, details) = outcome?;

    let command = std::env::args().collect::<Vec<_>>().join(" ");
    println!();
    if options.markdown {
        print!("{}\n{}", setup(&env, &plan, &command, true), report::markdown(&rows));
    } else {
        print!("{}\n{}", setup(&env, &plan, &command, false), report::plain(&rows));
    }
    let report = json!({
        "command": command,
        "plan": plan,
        "environment": env,
        "rows": rows,
        "details": details,
    });
    report::write_json(&options.report, &report)?;
    eprintln!("\nreport written to {}", options.report.display());
    Ok(())
}

/// What the run was measured on and with, as a list (Markdown or plain).
fn setup(env: &Environment, plan: &Plan, command: &str, markdown: bool) -> String {
    let pg = env.postgres.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    let service = fengqiao::settings::Settings::default();
    let code = |s: &str| if markdown { format!("`{s}`") } else { s.to_owned() };
    let lines = [
        format!("date: {}", env.date),
        format!(
            "machine: {} cores ({}), {} MiB memory, Linux {}; load average at start {}",
            env.machine.cores,
            env.machine.cpu_model,
            env.machine.memory_mib,
            env.machine.kernel,
            env.machine.load_at_start
        ),
        format!("command: {}", code(command)),
        format!(
            "NATS {}: JetStream file storage, sync_interval {} (server-wide), {} replica(s), one subject per case",
            env.nats.version,
            match env.nats.sync_always {
                Some(true) => "always".to_owned(),
                Some(false) => format!("{} s (NOT always)", env.nats.sync_interval_ns.unwrap_or(0) / 1_000_000_000),
                None => "unknown".to_owned(),
            },
            env.stream_replicas
        ),
        format!("PostgreSQL: {pg}"),
        format!(
            "service: database pool {}, projector batches of up to {} commits, read-your-writes wait up to {} ms",
            service.db_pool_size,
            fengqiao_projection::projector::ProjectorConfig::default().max_batch,
            service.read_wait_ms
        ),
        format!(
            "run: {} mode; {} gRPC clients; {} s per throughput and latency run after {} ms warm-up; limits {} s each, \
             publish window {}; history of {} cases; {} samples per query",
            plan.mode,
            plan.clients,
            plan.seconds,
            plan.warmup_ms,
            plan.limit_seconds,
            plan.window,
            thousands(plan.cases),
            thousands(plan.query_samples as u64)
        ),
    ];
    lines.iter().map(|l| format!("- {l}\n")).collect()
}

/// What a run has found so far: the table's rows and the raw details for the JSON report.
#[derive(Debug, Default)]
struct Findings {
    rows: Vec<Row>,
    details: serde_json::Map<String, serde_json::Value>,
}

/// The limits the other figures are set against.
#[derive(Debug, Clone)]
struct Limits {
    publish: limits::PublishLimits,
    insert: limits::InsertLimit,
}

/// Runs every measurement.
async fn measure(stack: &Stack, plan: Plan) -> anyhow::Result<(Vec<Row>, serde_json::Value)> {
    let mut found = Findings::default();
    let limits = measure_limits(stack, &plan, &mut found).await?;
    if !plan.limits_only {
        let command_memory = measure_commands(stack, &plan, &limits, &mut found).await?;
        let rebuild_memory = measure_history(stack, &plan, &limits, &mut found).await?;
        found.rows.push(
            Row::new(
                "M1",
                "service peak RSS during T1–T2",
                Some(command_memory.peak.peak_kib as f64 / 1024.0),
                mib(command_memory.peak.peak_kib),
                "MiB",
            )
            .note(format!(
                "idle after start {}{}",
                mib(command_memory.idle.rss_kib),
                if command_memory.peak_reset { "" } else { "; peak counted from process start (clear_refs refused)" }
            )),
        );
        found.rows.push(
            Row::new(
                "M2",
                "service peak RSS during R1 (rebuild)",
                Some(rebuild_memory.peak_kib as f64 / 1024.0),
                mib(rebuild_memory.peak_kib),
                "MiB",
            )
            .note(format!("RSS at the end {}", mib(rebuild_memory.rss_kib))),
        );
        found.details.insert(
            "memory".to_owned(),
            json!({ "idle": command_memory.idle, "commands": command_memory.peak, "rebuild": rebuild_memory }),
        );
        measure_timers(stack, &plan, &limits, &mut found).await?;
    }
    Ok((found.rows, serde_json::Value::Object(found.details)))
}

/// 1. Raw JetStream publish and PostgreSQL batched insert (L1–L3).
async fn measure_limits(stack: &Stack, plan: &Plan, found: &mut Findings) -> anyhow::Result<Limits> {
    eprintln!("[1/6] limits: raw JetStream publish and PostgreSQL batched insert");
    let seconds = Duration::from_secs(plan.limit_seconds);
    let publish = limits::jetstream(&stack.fresh("raw"), seconds, seconds, plan.window).await?;
    let insert = limits::postgres(stack, &stack.fresh("pg"), seconds, 1_000).await?;
    let seq_latency = publish.sequential_latency.summary();
    found.rows.push(
        Row::new(
            "L1",
            "JetStream publish, one at a time (durable ack)",
            Some(publish.sequential_per_s),
            rate(publish.sequential_per_s),
            "/s",
        )
        .note(format!(
            "{} B commit; {}",
            publish.payload_bytes,
            seq_latency.map(|s| percentiles(&s)).unwrap_or_default()
        )),
    );
    found.rows.push(
        Row::new(
            "L2",
            format!("JetStream publish, pipelined ({} in flight)", publish.window),
            Some(publish.pipelined_per_s),
            rate(publish.pipelined_per_s),
            "/s",
        )
        .note("the limit for T1, T2"),
    );
    found.rows.push(
        Row::new(
            "L3",
            format!("PostgreSQL batched insert ({} case rows per transaction)", insert.batch),
            Some(insert.rows_per_s),
            rate(insert.rows_per_s),
            "/s",
        )
        .note("rows/s into the cases table with its indexes; the limit for R1"),
    );
    found.details.insert(
        "limits".to_owned(),
        json!({
            "publish_sequential_per_s": publish.sequential_per_s,
            "publish_sequential_latency": seq_latency,
            "publish_pipelined_per_s": publish.pipelined_per_s,
            "publish_window": publish.window,
            "payload_bytes": publish.payload_bytes,
            "insert_rows_per_s": insert.rows_per_s,
            "insert_batch": insert.batch,
        }),
    );
    Ok(Limits { publish, insert })
}

/// The service's memory over the command runs.
#[derive(Debug, Clone, Copy)]
struct CommandMemory {
    idle: procfs::Memory,
    peak: procfs::Memory,
    peak_reset: bool,
}

/// 2. and 3. Commands over gRPC on one service: throughput (T1, T2), then latency at half the
/// registration rate (A1–A3).
async fn measure_commands(
    stack: &Stack,
    plan: &Plan,
    limits: &Limits,
    found: &mut Findings,
) -> anyhow::Result<CommandMemory> {
    eprintln!("[2/6] command throughput over gRPC ({} clients)", plan.clients);
    let settings = stack.fresh("cmd");
    stack.create_database(&settings).await?;
    let server = serve::Server::start(&settings).await?;
    let tokens = Tokens::mint(&server.settings.auth, &LOAD_GEOGRAPHY)?;
    let idle = server.memory();
    let peak_reset = server.reset_peak_memory();
    let (warmup, seconds) = (Duration::from_millis(plan.warmup_ms), Duration::from_secs(plan.seconds));
    let run = |tag: &'static str, mix| {
        load::closed_loop(&server, &tokens, LOAD_GEOGRAPHY, tag, mix, plan.clients, warmup, seconds)
    };
    let register = run("reg", load::Mix::Register).await?;
    let mixed = run("mix", load::Mix::WholeLife).await?;
    let peak = server.memory();
    let limit = limits.publish.pipelined_per_s;
    for (r, id, what) in [
        (&register, "T1", "RegisterCase over gRPC"),
        (&mixed, "T2", "whole case lives over gRPC (9 commands: register … follow-up)"),
    ] {
        let met = r.per_s / limit.max(f64::MIN_POSITIVE) >= TARGET_THROUGHPUT;
        found.rows.push(
            Row::new(
                id,
                format!("{what}, {} clients", plan.clients),
                Some(r.per_s),
                format!("{} cmd", rate(r.per_s)),
                "/s",
            )
            .against("L2", limit)
            .target(&format!("≥ {:.0}% of L2", TARGET_THROUGHPUT * 100.0), Some(met && r.errors == 0))
            .note(format!(
                "{}; CPU: machine {:.0}%, service {:.0}% of a core{}",
                r.latency.summary().map(|s| percentiles(&s)).unwrap_or_default(),
                r.cpu.machine_busy_pct,
                r.cpu.service_core_pct.unwrap_or(0.0),
                errors_note(r.errors, r.first_error.as_deref()),
            )),
        );
    }
    found.details.insert(
        "throughput".to_owned(),
        json!({ "register": throughput_json(&register), "whole_life": throughput_json(&mixed) }),
    );

    eprintln!("[3/6] latency at half the measured registration rate");
    let offered = (register.per_s * 0.5).max(2.0);
    let latency = load::open_loop(&server, &tokens, LOAD_GEOGRAPHY, "lat", offered, seconds).await?;
    server.stop().await?;
    let ack = latency.acknowledged.summary();
    let listed = latency.visible_in_list.summary();
    let queued = latency.visible_in_work_queue.summary();
    found.rows.push(
        Row::new(
            "A1",
            format!("RegisterCase and DispatchCase acknowledged, {} offered (50% of T1)", rate(latency.offered_per_s)),
            ack.map(|s| s.p99_ms),
            ack.map(|s| percentiles(&s)).unwrap_or_else(|| "no samples".to_owned()),
            "ms",
        )
        .note(format!(
            "{} commands, achieved {}; CPU: machine {:.0}%, service {:.0}% of a core{}",
            thousands(latency.acknowledged.len() as u64),
            rate(latency.achieved_per_s),
            latency.cpu.machine_busy_pct,
            latency.cpu.service_core_pct.unwrap_or(0.0),
            errors_note(latency.errors, latency.first_error.as_deref()),
        )),
    );
    for (id, what, summary) in [
        ("A2", "DispatchCase → visible in the committee's work queue (ListCommitteeQueue, min_sequence)", queued),
        ("A3", "RegisterCase → visible in the community's ListQueue (min_sequence)", listed),
    ] {
        found.rows.push(
            Row::new(
                id,
                what,
                summary.map(|s| s.p99_ms),
                summary.map(|s| percentiles(&s)).unwrap_or_else(|| "no samples".to_owned()),
                "ms",
            )
            .target(
                &format!("p99 < {TARGET_VISIBLE_P99_MS} ms"),
                summary.map(|s| s.p99_ms < TARGET_VISIBLE_P99_MS && latency.errors == 0),
            )
            .note(format!("{} reads at half load", thousands(summary.map_or(0, |s| s.count) as u64))),
        );
    }
    found.details.insert(
        "latency".to_owned(),
        json!({
            "offered_per_s": latency.offered_per_s,
            "achieved_per_s": latency.achieved_per_s,
            "acknowledged": ack,
            "visible_in_work_queue": queued,
            "visible_in_list_queue": listed,
            "errors": latency.errors,
            "first_error": latency.first_error,
            "cpu": latency.cpu,
        }),
    );
    Ok(CommandMemory { idle, peak, peak_reset })
}

/// 4. and 5. A generated history: rebuild every read model from it (R1, with G1 the writing of
/// it), then query the rebuilt read models (Q1–Q8). Returns the service's memory after the rebuild.
async fn measure_history(
    stack: &Stack,
    plan: &Plan,
    limits: &Limits,
    found: &mut Findings,
) -> anyhow::Result<procfs::Memory> {
    eprintln!("[4/6] generating {} cases of history, then rebuilding the read models", thousands(plan.cases));
    let settings = stack.fresh("rebuild");
    let generated =
        rebuild::generate(&settings, HISTORY_GEOGRAPHY, "hist", plan.cases, plan.generator_concurrency, generated_life)
            .await?;
    let (server, rebuilt) = rebuild::rebuild(stack, &settings, &generated).await?;
    let scale_note = if generated.events >= 1_000_000 {
        String::new()
    } else {
        format!("; this run: {} events (--full: ≥ 1M)", thousands(generated.events))
    };
    let insert = limits.insert.rows_per_s;
    found.rows.push(
        Row::new(
            "R1",
            format!(
                "rebuild all read models ({}) from {} events / {} cases",
                rebuilt.read_models.join(", "),
                thousands(generated.events),
                thousands(generated.cases)
            ),
            Some(rebuilt.events_per_s),
            format!("{} events", rate(rebuilt.events_per_s)),
            "/s",
        )
        .against("L3", insert)
        .target(
            &format!("≥ {:.0}% of L3", TARGET_REBUILD * 100.0),
            Some(rebuilt.events_per_s / insert.max(f64::MIN_POSITIVE) >= TARGET_REBUILD),
        )
        .note(format!(
            "{:.1} s; CPU: machine {:.0}%, service {:.0}% of a core{scale_note}",
            rebuilt.elapsed.as_secs_f64(),
            rebuilt.cpu.machine_busy_pct,
            rebuilt.cpu.service_core_pct.unwrap_or(0.0)
        )),
    );
    let written = per_second(generated.commits, generated.elapsed);
    found.rows.push(
        Row::new(
            "G1",
            "(setup) history written through the command path, pipelined",
            Some(written),
            format!("{} commits", rate(written)),
            "/s",
        )
        .against("L2", limits.publish.pipelined_per_s)
        .note(format!(
            "{} commits in {:.1} s, {} in flight, no gRPC",
            thousands(generated.commits),
            generated.elapsed.as_secs_f64(),
            plan.generator_concurrency
        )),
    );
    found.details.insert(
        "rebuild".to_owned(),
        json!({
            "cases": generated.cases,
            "commits": generated.commits,
            "events": generated.events,
            "last_sequence": generated.last_sequence,
            "generation_seconds": generated.elapsed.as_secs_f64(),
            "seconds": rebuilt.elapsed.as_secs_f64(),
            "events_per_s": rebuilt.events_per_s,
            "commits_per_s": rebuilt.commits_per_s,
            "read_models": rebuilt.read_models,
            "cpu": rebuilt.cpu,
            "memory": rebuilt.memory,
        }),
    );

    eprintln!("[5/6] queries over {} cases", thousands(generated.cases));
    let tokens = Tokens::mint(&server.settings.auth, &HISTORY_GEOGRAPHY)?;
    let queries =
        rebuild::queries(&server, &tokens, HISTORY_GEOGRAPHY, "hist", generated.cases, plan.query_samples).await?;
    server.stop().await?;
    let at_scale = generated.cases >= TARGET_QUEUE_CASES;
    for q in &queries {
        let summary = q.latency.summary();
        let mut row = Row::new(
            q.id,
            q.what.clone(),
            summary.map(|s| s.p99_ms),
            summary.map(|s| percentiles(&s)).unwrap_or_else(|| "no samples".to_owned()),
            "ms",
        )
        .note(format!(
            "{} cases in the read models{}; {} sequential queries, no write load; {:.1} {} per answer",
            thousands(generated.cases),
            if at_scale { "" } else { " (--full: 1M)" },
            thousands(q.latency.len() as u64),
            q.mean_rows,
            q.rows_are
        ));
        // The queue pages that committees, mediators and partners work from.
        if matches!(q.id, "Q1" | "Q2" | "Q3" | "Q4") {
            row = row.target(
                &format!("p99 < {TARGET_QUEUE_P99_MS} ms at 1M cases"),
                summary.map(|s| s.p99_ms < TARGET_QUEUE_P99_MS).filter(|_| at_scale),
            );
        }
        found.rows.push(row);
    }
    found.details.insert(
        "queries".to_owned(),
        queries
            .iter()
            .map(|q| json!({"id": q.id, "what": q.what, "latency": q.latency.summary(), "mean_rows": q.mean_rows}))
            .collect(),
    );
    Ok(rebuilt.memory)
}

/// 6. The timer worker firing every due deadline of a history (X1).
async fn measure_timers(stack: &Stack, plan: &Plan, limits: &Limits, found: &mut Findings) -> anyhow::Result<()> {
    eprintln!("[6/6] timers: {} due deadlines scanned and fired", thousands(plan.timer_deadlines));
    let fired = timers::measure(stack, HISTORY_GEOGRAPHY, plan.timer_deadlines, plan.generator_concurrency).await?;
    found.rows.push(
        Row::new(
            "X1",
            format!("timers: scan and fire {} due deadlines (one worker)", thousands(fired.due)),
            Some(fired.per_s),
            format!("{:.1} s; {} firings", fired.elapsed.as_secs_f64(), rate(fired.per_s)),
            "/s",
        )
        .against("L1", limits.publish.sequential_per_s)
        .note(format!(
            "{} cases, each a dispatched 12345 order (reply and sign-for deadlines), clock moved 30 days on; \
             {} breaches recorded, {} re-decided before projection and refused, {} scans; CPU: machine {:.0}%",
            thousands(fired.cases),
            thousands(fired.recorded),
            thousands(fired.refused),
            fired.ticks,
            fired.cpu.machine_busy_pct
        )),
    );
    found.details.insert("timers".to_owned(), json!(fired));
    Ok(())
}

fn throughput_json(t: &load::Throughput) -> serde_json::Value {
    json!({
        "commands": t.commands,
        "per_s": t.per_s,
        "latency": t.latency.summary(),
        "errors": t.errors,
        "first_error": t.first_error,
        "cpu": t.cpu,
    })
}

fn errors_note(errors: u64, first: Option<&str>) -> String {
    match (errors, first) {
        (0, _) => String::new(),
        (n, Some(e)) => format!("; {n} ERRORS, first: {e}"),
        (n, None) => format!("; {n} ERRORS"),
    }
}

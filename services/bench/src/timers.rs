//! X1: how fast the timer worker scans for due deadlines and fires them. A history of 12345
//! orders, each registered (its reply deadline starts) and dispatched to its community committee
//! (its sign-for clock starts), gives two open deadlines per case. The service runs in this process
//! on a manual clock with no timer worker of its own; once the `deadlines` read model has caught up,
//! the clock jumps 30 days ahead, so every deadline is past due, and one `TimerWorker` — the
//! worker `fengqiao serve` runs — ticks until nothing is due. Each deadline is breached once (the
//! missed warning recorded in the same commit), through the normal command path with its durable
//! publish; the time counts the scans, the firings and the projection of what they recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use fengqiao::app::Application;
use fengqiao::timers::TimerWorker;
use fengqiao_domain::Clock as _;
use fengqiao_domain::clock::ManualClock;
use fengqiao_projection::deadlines;

use crate::procfs::{CpuMeter, CpuUse};
use crate::rebuild::{self, Generated};
use crate::stack::Stack;
use crate::workload::{Geography, StepKind};

/// How far the clock jumps: past every reply deadline (7 days for a general order) and sign-for
/// clock (2 working hours) the history started.
const JUMP: jiff::SignedDuration = jiff::SignedDuration::from_hours(30 * 24);

/// What the timers did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fired {
    /// Deadlines past due when the clock jumped.
    pub due: u64,
    pub cases: u64,
    /// Firings recorded (one commit each).
    pub recorded: u64,
    /// Firings decided again on a deadline whose breach was not yet projected, and refused.
    pub refused: u64,
    pub ticks: u64,
    #[serde(with = "secs")]
    pub elapsed: Duration,
    pub per_s: f64,
    pub cpu: CpuUse,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The life of every case of this history: registered and dispatched.
fn dispatched(_: u64) -> &'static [StepKind] {
    &[StepKind::Register, StepKind::Dispatch]
}

/// Writes `deadlines / 2` dispatched orders and times one timer worker firing all their deadlines.
///
/// # Errors
/// The stack unreachable, the read model stopped, or the worker not done within its time limit.
pub async fn measure(stack: &Stack, geo: Geography, deadlines: u64, concurrency: usize) -> anyhow::Result<Fired> {
    let mut settings = stack.fresh("timers");
    settings.timers.enabled = false;
    stack.create_database(&settings).await?;
    let cases = deadlines.div_ceil(2);
    let history = rebuild::generate(&settings, geo, "timers", cases, concurrency, dispatched).await?;

    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let app = Application::build(settings.clone(), clock.clone()).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let outcome = fire_all(&settings, clock, history).await;
    let _ = stop.send(());
    service.await.context("the service task")??;
    outcome
}

async fn fire_all(
    settings: &fengqiao::settings::Settings,
    clock: Arc<ManualClock>,
    history: Generated,
) -> anyhow::Result<Fired> {
    let db = crate::stack::connect(&settings.database_url).await?;
    let caught_up = Duration::from_secs(120 + history.events / 500);
    fengqiao_projection::query::wait_for(&db, deadlines::NAME, None, history.last_sequence, caught_up)
        .await
        .context("the deadlines read model catching up with the history")?;
    clock.set(clock.now() + JUMP);
    let due = db
        .query_one("SELECT count(*) FROM open_deadlines WHERE next_fire_ms <= $1", &[&clock.now().as_millisecond()])
        .await?
        .get::<_, i64>(0);
    let due = u64::try_from(due)?;

    let store = fengqiao::app::open_store(settings).await?;
    let pool = fengqiao::app::pool(&settings.database_url, 2)?;
    let sla = Arc::new(settings.rules.load()?);
    let worker = TimerWorker::new(store, pool, sla, clock, &settings.timers);
    let limit = Duration::from_secs(300 + due / 100);
    let cpu = CpuMeter::start(None);
    let started = Instant::now();
    let (mut recorded, mut refused, mut ticks) = (0u64, 0u64, 0u64);
    loop {
        let tick = worker.tick().await?;
        ticks += 1;
        anyhow::ensure!(tick.failed == 0, "{} firings failed in one tick (see the log)", tick.failed);
        recorded += tick.recorded as u64;
        refused += (tick.refused + tick.replayed) as u64;
        if tick.due == 0 {
            break;
        }
        anyhow::ensure!(started.elapsed() < limit, "the timers had not fired everything after {limit:?}");
    }
    let elapsed = started.elapsed();
    let cpu = cpu.stop();
    anyhow::ensure!(recorded >= due, "{due} deadlines were due but only {recorded} firings were recorded");
    Ok(Fired {
        due,
        cases: history.cases,
        recorded,
        refused,
        ticks,
        elapsed,
        per_s: crate::stats::per_second(recorded, elapsed),
        cpu,
    })
}

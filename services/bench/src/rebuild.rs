//! Read-model rebuild and queries over a large history: fill a stream with real commits through
//! the service's own command path (fast, no gRPC), start the service on a fresh database so its
//! projectors rebuild every read model from sequence 0, time that to the last sequence, then
//! query the rebuilt read models.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::task::JoinSet;

use fengqiao::app::READ_MODELS;
use fengqiao::commands::CommandHandler;
use fengqiao_proto::api;

use crate::procfs::{CpuMeter, CpuUse, Memory};
use crate::serve::Server;
use fengqiao::settings::Settings;

use crate::stack::Stack;
use crate::stats::{Samples, per_second};
use crate::workload::{self, CasePlan, Clients, Geography, StepKind, Tokens, authorised};

/// The history written for the rebuild.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    pub cases: u64,
    pub commits: u64,
    pub events: u64,
    pub last_sequence: u64,
    pub elapsed: Duration,
}

/// Writes `cases` cases (case `i` living `life(i)`, e.g. [`generated_life`]) to `settings'`
/// stream with `concurrency` cases in progress at a time.
///
/// # Errors
/// NATS unreachable or a step refused (a bug in the plan).
pub async fn generate(
    settings: &Settings,
    geo: Geography,
    tag: &str,
    cases: u64,
    concurrency: usize,
    life: fn(u64) -> &'static [StepKind],
) -> anyhow::Result<Generated> {
    let store = fengqiao::app::open_store(settings).await?;
    let handler = Arc::new(CommandHandler::new(store.clone(), Arc::new(fengqiao_domain::clock::SystemClock)));
    let next = Arc::new(AtomicU64::new(0));
    let commits = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (handler, next, commits, events, tag) =
            (handler.clone(), next.clone(), commits.clone(), events.clone(), tag.to_owned());
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= cases {
                    return anyhow::Ok(());
                }
                let plan = CasePlan::new(&tag, index, &geo);
                let mut version = 0;
                for &kind in life(index) {
                    let step = plan.step(kind, jiff::Timestamp::now().as_millisecond());
                    version = workload::execute(&handler, &plan, &step).await?.version;
                    commits.fetch_add(1, Ordering::Relaxed);
                }
                events.fetch_add(version, Ordering::Relaxed);
            }
        });
    }
    let progress = {
        let commits = commits.clone();
        let next = next.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                eprintln!(
                    "  … generating: {} of {cases} cases started, {} commits written",
                    next.load(Ordering::Relaxed).min(cases),
                    commits.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined.map_err(anyhow::Error::from).and_then(|r| r) {
            next.store(cases, Ordering::Relaxed);
            result = result.and(Err(e));
        }
    }
    progress.abort();
    result?;
    Ok(Generated {
        cases,
        commits: commits.load(Ordering::Relaxed),
        events: events.load(Ordering::Relaxed),
        last_sequence: store.last_sequence().await?,
        elapsed: started.elapsed(),
    })
}

/// How the rebuild went.
#[derive(Debug, Clone)]
pub struct Rebuild {
    pub elapsed: Duration,
    pub events_per_s: f64,
    pub commits_per_s: f64,
    /// The service's memory at the end of the rebuild (peak since it started).
    pub memory: Memory,
    pub cpu: CpuUse,
    pub read_models: Vec<String>,
}

/// Starts the service on a fresh, empty database over the generated stream and waits until every
/// read model has applied `generated.last_sequence`. Returns the still running service.
///
/// # Errors
/// The service failed to start, a read model stopped on a commit, or the rebuild timed out.
pub async fn rebuild(stack: &Stack, settings: &Settings, generated: &Generated) -> anyhow::Result<(Server, Rebuild)> {
    stack.create_database(settings).await?;
    let db = crate::stack::connect(&settings.database_url).await?;
    let server = Server::start(settings).await?;
    let started = Instant::now();
    let cpu = CpuMeter::start(Some(server.pid));
    let limit = Duration::from_secs(120 + generated.events / 500);
    let target = i64::try_from(generated.last_sequence)?;
    let mut last_report = Instant::now();
    loop {
        let rows = db
            .query(
                "SELECT projection, sequence, failure FROM projection_checkpoints WHERE projection = ANY($1)",
                &[&READ_MODELS.to_vec()],
            )
            .await?;
        if let Some(failure) = rows.iter().find_map(|r| r.get::<_, Option<String>>(2)) {
            anyhow::bail!("a read model stopped during the rebuild: {failure}");
        }
        let behind: Vec<(String, i64)> =
            rows.iter().map(|r| (r.get(0), r.get(1))).filter(|(_, seq): &(String, i64)| *seq < target).collect();
        if behind.is_empty() && rows.len() == READ_MODELS.len() {
            break;
        }
        anyhow::ensure!(started.elapsed() < limit, "the rebuild did not finish within {limit:?}: {behind:?}");
        if last_report.elapsed() > Duration::from_secs(15) {
            eprintln!("  … rebuilding: {behind:?} of {target}");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let rebuild = Rebuild {
        elapsed,
        events_per_s: per_second(generated.events, elapsed),
        commits_per_s: per_second(generated.commits, elapsed),
        memory: server.memory(),
        cpu: cpu.stop(),
        read_models: READ_MODELS.iter().map(|m| (*m).to_owned()).collect(),
    };
    Ok((server, rebuild))
}

/// Latencies of one query.
#[derive(Debug, Clone)]
pub struct QueryLatency {
    pub id: &'static str,
    pub what: String,
    pub latency: Samples,
    /// What each answer held, on average: rows of a page, entries of a timeline, cases counted.
    pub mean_rows: f64,
    /// What `mean_rows` counts.
    pub rows_are: &'static str,
}

/// A cheap deterministic spread over `n` choices (SplitMix64).
fn pick(i: u64, n: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % n.max(1)
}

/// The queries measured, in the order of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    CommitteeQueue,
    MediatorQueue,
    TribunalQueue,
    CommunityList,
    StreetList,
    CaseFile,
    StreetStatistics,
    DistrictStatistics,
}

const QUERIES: [Query; 8] = [
    Query::CommitteeQueue,
    Query::MediatorQueue,
    Query::TribunalQueue,
    Query::CommunityList,
    Query::StreetList,
    Query::CaseFile,
    Query::StreetStatistics,
    Query::DistrictStatistics,
];

/// Report ids of [`QUERIES`], in the same order.
const QUERY_IDS: [&str; 8] = ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "Q7", "Q8"];

/// The period the statistics queries cover: the last 30 local days, today included (the whole
/// history was registered today).
fn statistics_period() -> (String, String) {
    let now = jiff::Timestamp::now();
    let today = now.in_tz("Asia/Shanghai").unwrap_or_else(|_| now.to_zoned_datetime(jiff::tz::TimeZone::UTC)).date();
    let from = today.checked_sub(jiff::Span::new().days(30)).unwrap_or(today);
    (from.to_string(), today.to_string())
}

/// Runs each query `samples` times, one at a time, against the rebuilt read models of `cases`
/// cases (no concurrent write load), each time for another community or case.
///
/// # Errors
/// A query failed.
pub async fn queries(
    server: &Server,
    tokens: &Tokens,
    geo: Geography,
    tag: &str,
    cases: u64,
    samples: usize,
) -> anyhow::Result<Vec<QueryLatency>> {
    let mut api = Clients::new(server.channel().await?);
    let per_community = cases / geo.communities().max(1);
    let warmup = 50.min(samples);
    let mut latencies: Vec<Samples> = QUERIES.iter().map(|_| Samples::default()).collect();
    let mut rows_seen = [0usize; QUERIES.len()];
    let (from_date, to_date) = statistics_period();
    for i in 0..(samples + warmup) as u64 {
        let community = geo.community(pick(i, geo.communities()));
        for ((query, latency), seen) in QUERIES.iter().zip(latencies.iter_mut()).zip(rows_seen.iter_mut()) {
            let t = Instant::now();
            let rows = match query {
                Query::CommitteeQueue => {
                    let request = api::ListCommitteeQueueRequest {
                        committee_id: workload::committee_of(&community),
                        page_size: 50,
                        ..Default::default()
                    };
                    let page = api.work_queues.list_committee_queue(authorised(tokens.lead(&community), request));
                    page.await.context("ListCommitteeQueue")?.into_inner().items.len()
                }
                Query::MediatorQueue => {
                    let request = api::ListMediatorQueueRequest { page_size: 50, ..Default::default() };
                    let page = api.work_queues.list_mediator_queue(authorised(tokens.mediator(&community), request));
                    page.await.context("ListMediatorQueue")?.into_inner().items.len()
                }
                Query::TribunalQueue => {
                    let request = api::ListReferralsRequest {
                        queue: api::LinkageQueue::Pending as i32,
                        page_size: 50,
                        ..Default::default()
                    };
                    let page =
                        api.linkage_queues.list_referrals(authorised(tokens.tribunal_clerk(&community), request));
                    page.await.context("ListReferrals")?.into_inner().items.len()
                }
                Query::CommunityList => {
                    let request =
                        api::ListQueueRequest { unit_code: community.clone(), page_size: 50, ..Default::default() };
                    let page = api.query.list_queue(authorised(tokens.lead(&community), request));
                    page.await.context("ListQueue")?.into_inner().cases.len()
                }
                Query::StreetList => {
                    let request = api::ListQueueRequest {
                        unit_code: Geography::street_of(&community),
                        page_size: 50,
                        ..Default::default()
                    };
                    let page = api.query.list_queue(authorised(&tokens.dispatcher, request));
                    page.await.context("ListQueue (street)")?.into_inner().cases.len()
                }
                Query::StreetStatistics | Query::DistrictStatistics => {
                    let district = *query == Query::DistrictStatistics;
                    let request = api::GetStatisticsRequest {
                        unit_code: if district {
                            workload::DISTRICT.to_owned()
                        } else {
                            Geography::street_of(&community)
                        },
                        from_date: from_date.clone(),
                        to_date: to_date.clone(),
                        by_child_unit: district,
                        ..Default::default()
                    };
                    let report = api.statistics.get_statistics(authorised(&tokens.supervisor, request));
                    let report = report.await.context("GetStatistics")?.into_inner();
                    let received = report.total.and_then(|t| t.counts).map_or(0, |c| c.received);
                    // Every case of the history was registered in the period, in the district.
                    anyhow::ensure!(
                        !district || received == cases,
                        "the district's statistics count {received} cases received, not {cases}"
                    );
                    usize::try_from(received).unwrap_or(usize::MAX)
                }
                Query::CaseFile => {
                    let plan = CasePlan::new(tag, pick(i + 7, cases), &geo);
                    let request = api::GetCaseRequest { case_id: plan.case_id.to_string(), min_sequence: None };
                    let file = api.query.get_case(authorised(&tokens.dispatcher, request));
                    file.await.context("GetCase")?.into_inner().timeline.len()
                }
            };
            if i >= warmup as u64 {
                latency.record(t.elapsed());
                *seen += rows;
            }
            // A short page where the history holds more than a page would mean the query read
            // the wrong queue, and its speed would mean nothing.
            let paged = !matches!(query, Query::CaseFile | Query::StreetStatistics | Query::DistrictStatistics);
            anyhow::ensure!(
                !paged || rows == 50 || per_community < 1000,
                "{query:?} returned {rows} rows for community {community}, which holds some {per_community} cases"
            );
        }
    }
    let street = per_community * u64::from(geo.villages);
    let what = |q: Query| match q {
        Query::CommitteeQueue => {
            format!(
                "ListCommitteeQueue: a committee's work queue, first 50 by due time (~{per_community} cases in its community)"
            )
        }
        Query::MediatorQueue => "ListMediatorQueue: a mediator's own work queue, first 50 by due time".to_owned(),
        Query::TribunalQueue => {
            "ListReferrals: a tribunal clerk's pending referrals (六调联动), first 50 by acceptance deadline".to_owned()
        }
        Query::CommunityList => format!("ListQueue: a community's page, 50 of ~{per_community} cases"),
        Query::StreetList => format!("ListQueue: a street's page, 50 of ~{street} cases in its subtree"),
        Query::CaseFile => "GetCase: one case file (summary and timeline)".to_owned(),
        Query::StreetStatistics => {
            format!("GetStatistics: a street's subtree, last 30 days (~{street} cases)")
        }
        Query::DistrictStatistics => {
            format!("GetStatistics: the district with its {} streets, last 30 days ({cases} cases)", geo.townships)
        }
    };
    Ok(QUERIES
        .iter()
        .zip(latencies)
        .zip(rows_seen)
        .enumerate()
        .map(|(n, ((q, latency), rows))| QueryLatency {
            id: QUERY_IDS[n],
            what: what(*q),
            mean_rows: rows as f64 / samples as f64,
            rows_are: match q {
                Query::CaseFile => "timeline entries",
                Query::StreetStatistics | Query::DistrictStatistics => "cases counted",
                _ => "rows",
            },
            latency,
        })
        .collect())
}

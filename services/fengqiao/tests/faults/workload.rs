//! The load a scenario runs while it breaks things: clients that take cases through their whole
//! life over gRPC, as the people and systems of DESIGN §1 would, and retry the way a real client
//! does — the same request with the same idempotency key, on UNAVAILABLE and transport errors,
//! with backoff, for a bounded time.
//!
//! Every command sent is recorded in the [`Ledger`] with its outcome, so the checks can hold the
//! stream against what clients were told.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use fengqiao::auth;
use fengqiao::settings::AuthSettings;
use fengqiao_tests::{
    COMMITTEE, COMMUNITY, DISTRICT, STREET, events as pb, grid_report, hotline_order, meta, req, rpc as api,
};

/// How long one command is retried before the client gives up on it (and on its case).
pub const RETRY_BUDGET: Duration = Duration::from_secs(45);
/// Longest a single attempt may take; longer than the server's own 5 s wait for a publish ack,
/// so the server normally answers first.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);

/// The partner institution referrals go to.
const COURT: &str = "jiangjin-court";

/// Bearer tokens of everyone the workload acts as.
#[derive(Debug, Clone)]
pub struct Tokens {
    dispatcher: String,
    hotline: String,
    lead: String,
    mediator: String,
    partner: String,
}

impl Tokens {
    /// Tokens signed with the development key `fengqiao serve` verifies by default.
    ///
    /// # Errors
    /// A token cannot be signed.
    pub fn new() -> anyhow::Result<Self> {
        let settings = AuthSettings::default();
        let mint = |sub: &str, role: &str, unit: &str, partner: &str| {
            auth::mint(&settings, &auth::claims(&settings, sub, role, unit, partner, 3600))
        };
        Ok(Self {
            dispatcher: mint("faults-dispatcher", "dispatcher", STREET, "")?,
            hotline: mint("faults-hotline", "hotline", COMMUNITY, "")?,
            lead: mint("faults-lead", "committee_lead", COMMUNITY, "")?,
            mediator: mint("faults-mediator", "mediator", COMMUNITY, "")?,
            partner: mint("faults-court", "partner_agent", DISTRICT, COURT)?,
        })
    }
}

/// gRPC clients of the Fengqiao instances a deployment runs, taken in turn for every request (a
/// client-side round robin): a retry goes to the next instance, and consecutive commands on a
/// case reach different instances, whose caches of it are behind each other.
#[derive(Debug, Clone)]
pub struct Clients {
    targets: Arc<[Target]>,
    next: Arc<AtomicUsize>,
}

impl Clients {
    /// Clients of the instances at `addrs`.
    ///
    /// # Errors
    /// No address, or a malformed one.
    pub fn new(addrs: &[SocketAddr]) -> anyhow::Result<Self> {
        anyhow::ensure!(!addrs.is_empty(), "no Fengqiao address to send to");
        let targets = addrs.iter().map(|a| Target::new(*a)).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { targets: targets.into(), next: Arc::new(AtomicUsize::new(0)) })
    }

    /// The instance for the next request.
    fn pick(&self) -> Target {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
        self.targets[i].clone()
    }

    /// Whether every instance's gRPC health check answers SERVING.
    pub async fn serving(&self) -> bool {
        for target in self.targets.iter() {
            if !target.clone().serving().await {
                return false;
            }
        }
        true
    }
}

/// gRPC clients of one Fengqiao address, on one lazily (re)connecting channel.
#[derive(Debug, Clone)]
struct Target {
    intake: api::intake_service_client::IntakeServiceClient<Channel>,
    work: api::case_work_service_client::CaseWorkServiceClient<Channel>,
    linkage: api::linkage_service_client::LinkageServiceClient<Channel>,
    follow_up: api::follow_up_service_client::FollowUpServiceClient<Channel>,
    query: api::query_service_client::QueryServiceClient<Channel>,
    health: tonic_health::pb::health_client::HealthClient<Channel>,
}

impl Target {
    fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(1))
            .timeout(ATTEMPT_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self {
            intake: api::intake_service_client::IntakeServiceClient::new(channel.clone()),
            work: api::case_work_service_client::CaseWorkServiceClient::new(channel.clone()),
            linkage: api::linkage_service_client::LinkageServiceClient::new(channel.clone()),
            follow_up: api::follow_up_service_client::FollowUpServiceClient::new(channel.clone()),
            query: api::query_service_client::QueryServiceClient::new(channel.clone()),
            health: tonic_health::pb::health_client::HealthClient::new(channel),
        })
    }

    async fn serving(&mut self) -> bool {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
        self.health
            .check(HealthCheckRequest { service: String::new() })
            .await
            .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
    }
}

/// One command as a client sends it, kept so that it can be sent again unchanged.
#[derive(Debug, Clone)]
pub enum Command {
    Register { hotline: bool, request: api::RegisterCaseRequest },
    Dispatch(api::DispatchCaseRequest),
    Accept(api::AcceptCaseRequest),
    Assign(api::AssignMediatorsRequest),
    Schedule(api::ScheduleSessionRequest),
    RecordSession(api::RecordSessionRequest),
    Settle(api::RecordSettlementRequest),
    Fail(api::RecordMediationFailureRequest),
    Refer(api::ReferCaseRequest),
    AcceptReferral(api::AcceptReferralRequest),
    ConcludeReferral(api::ConcludeReferralRequest),
    Close(api::CloseCaseRequest),
    FollowUp(api::RecordFollowUpRequest),
}

impl Command {
    /// The RPC's name.
    pub fn rpc(&self) -> &'static str {
        match self {
            Self::Register { .. } => "RegisterCase",
            Self::Dispatch(_) => "DispatchCase",
            Self::Accept(_) => "AcceptCase",
            Self::Assign(_) => "AssignMediators",
            Self::Schedule(_) => "ScheduleSession",
            Self::RecordSession(_) => "RecordSession",
            Self::Settle(_) => "RecordSettlement",
            Self::Fail(_) => "RecordMediationFailure",
            Self::Refer(_) => "ReferCase",
            Self::AcceptReferral(_) => "AcceptReferral",
            Self::ConcludeReferral(_) => "ConcludeReferral",
            Self::Close(_) => "CloseCase",
            Self::FollowUp(_) => "RecordFollowUp",
        }
    }

    /// Sends the command once.
    ///
    /// # Errors
    /// The status the server (or the transport) answered.
    pub async fn send(&self, clients: &Clients, t: &Tokens) -> Result<api::CommandResult, Status> {
        let mut c = clients.pick();
        let reply = match self.clone() {
            Self::Register { hotline, request } => {
                c.intake.register_case(req(if hotline { &t.hotline } else { &t.dispatcher }, request)).await
            }
            Self::Dispatch(r) => c.work.dispatch_case(req(&t.dispatcher, r)).await,
            Self::Accept(r) => c.work.accept_case(req(&t.lead, r)).await,
            Self::Assign(r) => c.work.assign_mediators(req(&t.lead, r)).await,
            Self::Schedule(r) => c.work.schedule_session(req(&t.mediator, r)).await,
            Self::RecordSession(r) => c.work.record_session(req(&t.mediator, r)).await,
            Self::Settle(r) => c.work.record_settlement(req(&t.mediator, r)).await,
            Self::Fail(r) => c.work.record_mediation_failure(req(&t.mediator, r)).await,
            Self::Refer(r) => c.work.refer_case(req(&t.lead, r)).await,
            Self::AcceptReferral(r) => c.linkage.accept_referral(req(&t.partner, r)).await,
            Self::ConcludeReferral(r) => c.linkage.conclude_referral(req(&t.partner, r)).await,
            Self::Close(r) => c.work.close_case(req(&t.lead, r)).await,
            Self::FollowUp(r) => c.follow_up.record_follow_up(req(&t.dispatcher, r)).await,
        };
        reply.map(tonic::Response::into_inner)
    }
}

/// Whether a client retries after `status`: the service or the path to it was unavailable, the
/// attempt timed out or was cut, or the commit raced another (no version was pinned).
pub fn retryable(status: &Status) -> bool {
    retryable_code(status.code())
}

/// [`retryable`] by code.
pub fn retryable_code(code: Code) -> bool {
    matches!(code, Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted)
}

/// Calls `attempt` until it succeeds, fails with a status that is not [`retryable`], or
/// `budget` is spent; backs off from 25 ms, doubling up to 1 s. Returns the attempts made and the
/// codes of the failed ones.
pub async fn with_retries<T, F, Fut>(budget: Duration, mut attempt: F) -> (Vec<Code>, Result<T, Status>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let started = Instant::now();
    let mut backoff = Duration::from_millis(25);
    let mut failed = Vec::new();
    loop {
        match attempt().await {
            Ok(v) => return (failed, Ok(v)),
            Err(s) if retryable(&s) && started.elapsed() < budget => {
                failed.push(s.code());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(s) => {
                failed.push(s.code());
                return (failed, Err(s));
            }
        }
    }
}

/// One command sent by a client, and what became of it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub command: Command,
    pub key: String,
    /// Codes of the attempts that failed before the outcome (empty: first time right).
    pub failed_attempts: Vec<Code>,
    /// The acknowledgement, or the last status when the client gave up or was refused.
    pub outcome: Result<api::CommandResult, (Code, String)>,
    /// When the outcome arrived.
    pub at: Instant,
    /// From the first attempt to the outcome.
    pub took: Duration,
}

impl Sent {
    /// Whether the client was told the command committed.
    pub fn acked(&self) -> Option<&api::CommandResult> {
        self.outcome.as_ref().ok()
    }
}

/// Every command the clients sent, and the reads that failed.
#[derive(Debug, Default)]
pub struct Ledger {
    pub sent: Mutex<Vec<Sent>>,
    /// Problems found by the clients themselves (a read that disagrees with an acknowledgement,
    /// a read that never succeeded).
    pub problems: Mutex<Vec<String>>,
    pub acked: AtomicUsize,
}

impl Ledger {
    fn record(&self, sent: Sent) {
        if sent.outcome.is_ok() {
            self.acked.fetch_add(1, Ordering::SeqCst);
        }
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sent);
    }

    fn problem(&self, p: String) {
        self.problems.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(p);
    }

    /// Acknowledged commands so far.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// A copy of every record.
    pub fn records(&self) -> Vec<Sent> {
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A copy of the problems.
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Sends `command` with retries, records it, and returns the acknowledgement.
pub async fn execute(
    ledger: &Ledger,
    clients: &Clients,
    tokens: &Tokens,
    command: Command,
) -> Option<api::CommandResult> {
    let key = key_of(&command);
    let started = Instant::now();
    let (failed_attempts, outcome) = with_retries(RETRY_BUDGET, || {
        let command = command.clone();
        async move { command.send(clients, tokens).await }
    })
    .await;
    let outcome = outcome.map_err(|s| (s.code(), s.message().to_owned()));
    let acked = outcome.as_ref().ok().cloned();
    ledger.record(Sent { command, key, failed_attempts, outcome, at: Instant::now(), took: started.elapsed() });
    acked
}

/// The idempotency key a command carries.
pub fn key_of(command: &Command) -> String {
    let meta = match command {
        Command::Register { request, .. } => &request.meta,
        Command::Dispatch(r) => &r.meta,
        Command::Accept(r) => &r.meta,
        Command::Assign(r) => &r.meta,
        Command::Schedule(r) => &r.meta,
        Command::RecordSession(r) => &r.meta,
        Command::Settle(r) => &r.meta,
        Command::Fail(r) => &r.meta,
        Command::Refer(r) => &r.meta,
        Command::AcceptReferral(r) => &r.meta,
        Command::ConcludeReferral(r) => &r.meta,
        Command::Close(r) => &r.meta,
        Command::FollowUp(r) => &r.meta,
    };
    meta.as_ref().map(|m| m.idempotency_key.clone()).unwrap_or_default()
}

/// The three lives the clients take cases through, in turn.
#[derive(Debug, Clone, Copy)]
enum Life {
    /// Grid report → dispatch → sign-for → mediators → session → settlement → closure → satisfied.
    Settled,
    /// A 12345 order settled and closed, a dissatisfied follow-up reopens it (two events in one
    /// commit), closed again, followed up again.
    Reopened,
    /// Mediation fails, the case is referred to a court, which accepts and concludes it; closed
    /// as transferred.
    Referred,
    /// A 12345 order whose reply deadline falls [`REPLY_IN`] after its registration, dispatched
    /// and signed for, then left open: the timer worker must breach its `hotline_reply` deadline
    /// during the scenario, once.
    Overdue,
}

/// How far ahead of its registration an [`Life::Overdue`] order's reply deadline lies.
pub const REPLY_IN: Duration = Duration::from_secs(3);

/// The steps of `life` for case `case_id`, each with its idempotency key `{prefix}-{step}`.
fn steps(life: Life, prefix: &str, case_id: &str) -> Vec<Command> {
    let m = |step: &str| meta(&format!("{prefix}-{step}"));
    let id = case_id.to_owned();
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let dispatch = Command::Dispatch(api::DispatchCaseRequest {
        meta: m("dispatch"),
        case_id: id.clone(),
        tier: pb::Tier::Community as i32,
        committee_id: COMMITTEE.to_owned(),
        committee_unit_code: COMMUNITY.to_owned(),
        ..Default::default()
    });
    let accept = Command::Accept(api::AcceptCaseRequest { meta: m("accept"), case_id: id.clone() });
    let close = |step: &str, outcome: pb::ClosureOutcome| {
        Command::Close(api::CloseCaseRequest {
            meta: m(step),
            case_id: id.clone(),
            outcome: outcome as i32,
            summary: "双方达成一致，纠纷化解。".to_owned(),
        })
    };
    let follow_up = |step: &str, satisfaction: pb::Satisfaction| {
        Command::FollowUp(api::RecordFollowUpRequest {
            meta: m(step),
            case_id: id.clone(),
            method: pb::FollowUpMethod::Phone as i32,
            satisfaction: satisfaction as i32,
            note: String::new(),
        })
    };
    let mediate = [
        Command::Assign(api::AssignMediatorsRequest {
            meta: m("assign"),
            case_id: id.clone(),
            mediator_ids: vec!["faults-mediator".to_owned()],
        }),
        Command::Schedule(api::ScheduleSessionRequest {
            meta: m("schedule"),
            case_id: id.clone(),
            scheduled_for_unix_ms: now_ms + 86_400_000,
            place: "艾坪山社区调解室".to_owned(),
            ..Default::default()
        }),
        Command::RecordSession(api::RecordSessionRequest {
            meta: m("session"),
            case_id: id.clone(),
            session_id: "S1".to_owned(),
            attendees: vec!["张三".to_owned(), "李四".to_owned()],
            record: "双方陈述，调解员释法说理。".to_owned(),
        }),
    ];
    let settle = Command::Settle(api::RecordSettlementRequest {
        meta: m("settle"),
        case_id: id.clone(),
        agreement: Some(pb::Agreement {
            party_names: vec!["张三".to_owned(), "李四".to_owned()],
            facts: "楼上卫生间漏水渗入楼下卧室。".to_owned(),
            points_in_dispute: "维修责任与赔偿数额。".to_owned(),
            terms: "李四负责维修并赔偿张三八百元。".to_owned(),
            performance_method: "一次性支付".to_owned(),
            signed_by: vec!["张三".to_owned(), "李四".to_owned(), "王调解".to_owned()],
            mediator_id: "faults-mediator".to_owned(),
            mediator_name: "王调解".to_owned(),
            ..Default::default()
        }),
    });
    let mut all = vec![dispatch, accept];
    match life {
        Life::Overdue => {}
        Life::Settled => {
            all.extend(mediate);
            all.extend([settle, close("close", pb::ClosureOutcome::Resolved)]);
            all.push(follow_up("follow-up", pb::Satisfaction::Satisfied));
        }
        Life::Reopened => {
            all.extend(mediate);
            all.extend([settle, close("close", pb::ClosureOutcome::Resolved)]);
            all.push(follow_up("follow-up", pb::Satisfaction::Dissatisfied));
            all.push(close("close-again", pb::ClosureOutcome::Resolved));
            all.push(follow_up("follow-up-again", pb::Satisfaction::BasicallySatisfied));
        }
        Life::Referred => {
            all.push(Command::Fail(api::RecordMediationFailureRequest {
                meta: m("fail"),
                case_id: id.clone(),
                reason: "双方分歧较大，调解不成。".to_owned(),
                advice: pb::FailureAdvice::Litigation as i32,
                advice_note: String::new(),
            }));
            all.push(Command::Refer(api::ReferCaseRequest {
                meta: m("refer"),
                case_id: id.clone(),
                partner_kind: pb::PartnerKind::Court as i32,
                partner_id: COURT.to_owned(),
                partner_name: "江津区人民法院".to_owned(),
                reason: "诉调对接".to_owned(),
            }));
            all.push(Command::AcceptReferral(api::AcceptReferralRequest {
                meta: m("referral-accept"),
                case_id: id.clone(),
                referral_id: "R1".to_owned(),
            }));
            all.push(Command::ConcludeReferral(api::ConcludeReferralRequest {
                meta: m("referral-conclude"),
                case_id: id.clone(),
                referral_id: "R1".to_owned(),
                outcome: pb::ReferralOutcome::Resolved as i32,
                summary: "法院调解结案。".to_owned(),
            }));
            all.push(close("close", pb::ClosureOutcome::Transferred));
            all.push(follow_up("follow-up", pb::Satisfaction::Satisfied));
        }
    }
    all
}

/// The registration that opens case `n` of client `client`.
fn registration(life: Life, prefix: &str) -> Command {
    match life {
        Life::Reopened => {
            let mut request = hotline_order(&format!("GD-{prefix}"));
            request.meta = meta(&format!("{prefix}-register"));
            Command::Register { hotline: true, request }
        }
        Life::Overdue => {
            let mut request = hotline_order(&format!("GD-{prefix}"));
            request.meta = meta(&format!("{prefix}-register"));
            request.reply_deadline_unix_ms = jiff::Timestamp::now().as_millisecond() + REPLY_IN.as_millis() as i64;
            Command::Register { hotline: true, request }
        }
        Life::Settled | Life::Referred => {
            Command::Register { hotline: false, request: grid_report(&format!("{prefix}-register")) }
        }
    }
}

/// Registers a case and reads it back (read-your-writes), retrying both: what a scenario uses to
/// see that the service works end to end again. The commands it sends go to `ledger` like any
/// other.
///
/// Returns how long after `since` the registration was acknowledged and the case read back.
///
/// # Errors
/// The registration or the read did not succeed within the retry budget.
pub async fn probe(
    ledger: &Ledger,
    clients: &Clients,
    tokens: &Tokens,
    key: &str,
    since: Instant,
) -> anyhow::Result<(Duration, Duration)> {
    let register = Command::Register { hotline: false, request: grid_report(key) };
    let ack = execute(ledger, clients, tokens, register)
        .await
        .ok_or_else(|| anyhow::anyhow!("probe {key}: the registration was not acknowledged"))?;
    let written = since.elapsed();
    read_back(clients, tokens, &ack).await.map_err(|e| anyhow::anyhow!("probe {key}: {e}"))?;
    Ok((written, since.elapsed()))
}

/// Reads the case of `ack` once the read model has applied it and checks its version.
async fn read_back(clients: &Clients, tokens: &Tokens, ack: &api::CommandResult) -> Result<(), String> {
    let (_, read) = with_retries(RETRY_BUDGET, || {
        let mut q = clients.pick().query;
        let r = api::GetCaseRequest { case_id: ack.case_id.clone(), min_sequence: Some(ack.stream_sequence) };
        async move { q.get_case(req(&tokens.dispatcher, r)).await }
    })
    .await;
    let case = read.map_err(|s| format!("GetCase {} at {}: {s:?}", ack.case_id, ack.stream_sequence))?.into_inner();
    let version = case.summary.map(|s| s.version).unwrap_or_default();
    // No one else touches the case: the read shows exactly the acknowledged version.
    if version != ack.version {
        return Err(format!("GetCase {} shows version {version}, acknowledged {}", ack.case_id, ack.version));
    }
    Ok(())
}

/// Shared state of a running workload.
#[derive(Debug)]
pub struct Workload {
    pub ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// Starts `n` clients of the instances at `addrs`, case ids and keys prefixed by `run`. Each stops
    /// before its next command once [`Workload::stop`] is called or `max_acks` commands have been
    /// acknowledged in all.
    ///
    /// # Errors
    /// A malformed address or a token that cannot be signed.
    pub fn start(addrs: &[SocketAddr], run: &str, n: usize, max_acks: usize) -> anyhow::Result<Self> {
        let ledger = Arc::new(Ledger::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tokens = Tokens::new()?;
        let mut clients = Vec::new();
        for client in 0..n {
            let c = Clients::new(addrs)?;
            let (ledger, stop, tokens, run) = (ledger.clone(), stop.clone(), tokens.clone(), run.to_owned());
            clients.push(tokio::spawn(async move {
                let stopping = || stop.load(Ordering::SeqCst) || ledger.acked() >= max_acks;
                let mut n = 0usize;
                while !stopping() {
                    // The first client registers overdue orders one after another; the others
                    // take cases through the three whole lives in turn.
                    let life = if client == 0 {
                        Life::Overdue
                    } else {
                        [Life::Settled, Life::Reopened, Life::Referred][(client + n) % 3]
                    };
                    let prefix = format!("{run}-c{client}-{n}");
                    n += 1;
                    let Some(registered) = execute(&ledger, &c, &tokens, registration(life, &prefix)).await else {
                        continue;
                    };
                    let mut last = registered;
                    for step in steps(life, &prefix, &last.case_id.clone()) {
                        if stopping() {
                            break;
                        }
                        match execute(&ledger, &c, &tokens, step).await {
                            Some(ack) => last = ack,
                            None => break,
                        }
                    }
                    // An overdue order is not read back: the timer worker writes to it too, and
                    // this client goes on writing while reads wait for PostgreSQL (the scenarios
                    // that break it show commands do not need it).
                    if matches!(life, Life::Overdue) {
                        continue;
                    }
                    if let Err(p) = read_back(&c, &tokens, &last).await {
                        ledger.problem(p);
                    }
                }
            }));
        }
        Ok(Self { ledger, stop, clients })
    }

    /// Tells the clients to stop and waits for them (each finishes the command in hand, within
    /// its retry budget).
    ///
    /// # Errors
    /// A client task panicked, or they did not stop within twice the retry budget.
    pub async fn stop(self) -> anyhow::Result<Arc<Ledger>> {
        self.stop.store(true, Ordering::SeqCst);
        let all = futures::future::join_all(self.clients);
        let joined = tokio::time::timeout(RETRY_BUDGET * 2, all)
            .await
            .map_err(|_| anyhow::anyhow!("the clients did not stop within {:?}", RETRY_BUDGET * 2))?;
        for j in joined {
            j?;
        }
        Ok(self.ledger)
    }
}

//! The work the bench asks of Fengqiao: cases spread over the communities of one district, each
//! taken some way along its life (登记 → 派单 → 签收 → 指派 → 排期 → 调解 → 达成协议 → 办结 → 回访).
//!
//! A step is the public API request. The gRPC load sends it as is; the stream generator turns it
//! into the domain command the way the gRPC edge parses it and runs it through the service's own
//! [`CommandHandler`], so generated commits are the commits the service itself writes.

use std::collections::HashMap;

use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use fengqiao::auth::{self, Principal};
use fengqiao::commands::{CommandError, CommandHandler, Meta, Outcome};
use fengqiao::grpc::parse;
use fengqiao::settings::AuthSettings;
use fengqiao_domain::Command;
use fengqiao_domain::event::pb;
use fengqiao_domain::values::{CaseId, FieldError, Ident, LongText, ShortText, UnitCode};
use fengqiao_proto::api;

/// The district every bench case arises in (Jiangjin, Chongqing).
pub const DISTRICT: &str = "500116000000";

/// Names on every case; the agreement must name and be signed by both.
const APPLICANT: &str = "张三";
const RESPONDENT: &str = "李四";
const MEDIATOR: &str = "王调解";

/// What one step of a case's life does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Register,
    Dispatch,
    Accept,
    Assign,
    Schedule,
    Hold,
    Settle,
    Close,
    FollowUp,
    /// Refer the case to its street's people's tribunal (诉调对接).
    Refer,
}

use StepKind::{Accept, Assign, Close, Dispatch, FollowUp, Hold, Refer, Register, Schedule, Settle};

/// A whole case life, from registration to follow-up.
pub const FULL_LIFE: &[StepKind] = &[Register, Dispatch, Accept, Assign, Schedule, Hold, Settle, Close, FollowUp];

/// How the cases spread: `townships` streets of `villages` communities each.
#[derive(Debug, Clone, Copy)]
pub struct Geography {
    pub townships: u32,
    pub villages: u32,
}

impl Geography {
    /// Number of communities.
    pub fn communities(&self) -> u64 {
        u64::from(self.townships) * u64::from(self.villages)
    }

    /// The `n`-th community's unit code (12 digits: county 500116, township, village).
    pub fn community(&self, n: u64) -> String {
        let n = n % self.communities();
        let township = n / u64::from(self.villages) + 1;
        let village = n % u64::from(self.villages) + 1;
        format!("500116{township:03}{village:03}")
    }

    /// The street (township) above a community.
    pub fn street_of(community: &str) -> String {
        format!("{}000", &community[..9])
    }
}

/// One case of the run: where it arises and how far along its life it goes.
#[derive(Debug, Clone)]
pub struct CasePlan {
    pub index: u64,
    pub community: String,
    pub order_number: String,
    pub case_id: CaseId,
}

impl CasePlan {
    /// Case `index` of run `run`, arising in its community of `geo`.
    pub fn new(run: &str, index: u64, geo: &Geography) -> Self {
        let order_number = format!("GD-{run}-{index}");
        let reference = Ident::parse("external_ref", &order_number).unwrap_or_else(|_| unreachable!("ASCII id"));
        Self {
            index,
            community: geo.community(index),
            case_id: CaseId::for_external_ref(pb::Channel::Hotline12345 as i32, &reference),
            order_number,
        }
    }

    /// The community's mediation committee, which every dispatched case goes to.
    pub fn committee(&self) -> String {
        committee_of(&self.community)
    }

    fn meta(&self, step: &str) -> Option<api::CommandMeta> {
        Some(api::CommandMeta { idempotency_key: format!("{step}-{}", self.order_number), ..Default::default() })
    }

    /// The request of step `kind` for this case; `now_ms` dates a session.
    pub fn step(&self, kind: StepKind, now_ms: i64) -> Step {
        let case_id = self.case_id.to_string();
        match kind {
            Register => Step::Register(api::RegisterCaseRequest {
                meta: self.meta("register"),
                channel: pb::Channel::Hotline12345 as i32,
                external_ref: self.order_number.clone(),
                parties: vec![
                    party(APPLICANT, pb::PartyRole::Applicant, "13812345678", "11010519491231002X"),
                    party(RESPONDENT, pb::PartyRole::Respondent, "023-47521234", ""),
                ],
                category: "邻里纠纷".to_owned(),
                description: "楼上卫生间漏水渗入楼下卧室，双方协商未果，来电请求调解。".to_owned(),
                unit_code: self.community.clone(),
                address: "重庆市江津区几江街道艾坪山社区3栋2单元".to_owned(),
                urgency: pb::Urgency::Normal as i32,
                ..Default::default()
            }),
            Dispatch => Step::Dispatch(api::DispatchCaseRequest {
                meta: self.meta("dispatch"),
                case_id,
                tier: pb::Tier::Community as i32,
                committee_id: self.committee(),
                committee_unit_code: self.community.clone(),
                risk_level: pb::RiskLevel::Low as i32,
                ..Default::default()
            }),
            Accept => Step::Accept(api::AcceptCaseRequest { meta: self.meta("accept"), case_id }),
            Assign => Step::Assign(api::AssignMediatorsRequest {
                meta: self.meta("assign"),
                case_id,
                mediator_ids: vec![mediator_of(&self.community)],
            }),
            Schedule => Step::Schedule(api::ScheduleSessionRequest {
                meta: self.meta("schedule"),
                case_id,
                scheduled_for_unix_ms: now_ms + 86_400_000,
                place: "社区人民调解室".to_owned(),
                online: false,
                ..Default::default()
            }),
            Hold => Step::Hold(api::RecordSessionRequest {
                meta: self.meta("hold"),
                case_id,
                session_id: "S1".to_owned(),
                attendees: vec![APPLICANT.to_owned(), RESPONDENT.to_owned(), MEDIATOR.to_owned()],
                record: "双方陈述事实，调解员释法说理，双方同意由楼上住户负责维修并赔偿。".to_owned(),
            }),
            Settle => Step::Settle(api::RecordSettlementRequest {
                meta: self.meta("settle"),
                case_id,
                agreement: Some(pb::Agreement {
                    party_names: vec![APPLICANT.to_owned(), RESPONDENT.to_owned()],
                    facts: "楼上卫生间防水层破损导致楼下卧室渗水。".to_owned(),
                    points_in_dispute: "维修责任与损失赔偿金额。".to_owned(),
                    terms: "李四于十日内修复防水层并赔偿张三人民币二千元。".to_owned(),
                    performance_method: "一次性支付".to_owned(),
                    signed_by: vec![APPLICANT.to_owned(), RESPONDENT.to_owned(), MEDIATOR.to_owned()],
                    mediator_id: mediator_of(&self.community),
                    mediator_name: MEDIATOR.to_owned(),
                    ..Default::default()
                }),
            }),
            Close => Step::Close(api::CloseCaseRequest {
                meta: self.meta("close"),
                case_id,
                outcome: pb::ClosureOutcome::Resolved as i32,
                summary: "调解成功，协议已履行。".to_owned(),
            }),
            FollowUp => Step::FollowUp(api::RecordFollowUpRequest {
                meta: self.meta("follow-up"),
                case_id,
                method: pb::FollowUpMethod::Phone as i32,
                satisfaction: pb::Satisfaction::Satisfied as i32,
                note: "当事人对调解结果满意。".to_owned(),
            }),
            Refer => Step::Refer(api::ReferCaseRequest {
                meta: self.meta("refer"),
                case_id,
                partner_kind: pb::PartnerKind::Court as i32,
                partner_id: tribunal_of(&self.community),
                partner_name: "江津区人民法院人民法庭".to_owned(),
                reason: "涉及房屋质量鉴定，移交人民法庭诉前调解。".to_owned(),
            }),
        }
    }
}

/// The mediation committee of `community`.
pub fn committee_of(community: &str) -> String {
    format!("committee-{community}")
}

/// The mediator of `community`'s committee, assigned to every case it mediates.
pub fn mediator_of(community: &str) -> String {
    format!("mediator-{community}")
}

/// The people's tribunal of `community`'s street, to which its committee refers cases.
pub fn tribunal_of(community: &str) -> String {
    format!("tribunal-{}", Geography::street_of(community))
}

/// The life of case `index` of a generated history: most stay open in a committee's queue, some
/// await triage, some are being mediated, some were referred to a tribunal, a tenth went through
/// the whole life. About 2.75 commits per case on average.
pub fn generated_life(index: u64) -> &'static [StepKind] {
    match index % 20 {
        0..=10 => &FULL_LIFE[..2],
        11..=15 => &FULL_LIFE[..1],
        16 => &FULL_LIFE[..5],
        17 => &[Register, Dispatch, Accept, Assign, Refer],
        _ => FULL_LIFE,
    }
}

fn party(name: &str, role: pb::PartyRole, phone: &str, resident_id: &str) -> pb::Party {
    pb::Party { name: name.to_owned(), role: role as i32, phone: phone.to_owned(), resident_id: resident_id.to_owned() }
}

/// One command of a case's life, as its API request.
#[derive(Debug, Clone)]
pub enum Step {
    Register(api::RegisterCaseRequest),
    Dispatch(api::DispatchCaseRequest),
    Accept(api::AcceptCaseRequest),
    Assign(api::AssignMediatorsRequest),
    Schedule(api::ScheduleSessionRequest),
    Hold(api::RecordSessionRequest),
    Settle(api::RecordSettlementRequest),
    Close(api::CloseCaseRequest),
    FollowUp(api::RecordFollowUpRequest),
    Refer(api::ReferCaseRequest),
}

impl Step {
    /// Whether the district's dispatcher sends it (else the community's committee lead).
    fn by_dispatcher(&self) -> bool {
        matches!(self, Step::Register(_) | Step::Dispatch(_))
    }

    /// The domain command, parsed as the gRPC edge parses the request.
    fn command(&self) -> Result<(Meta, Command), FieldError> {
        let meta = |m: &Option<api::CommandMeta>| parse::meta(m.as_ref());
        Ok(match self {
            Step::Register(r) => (meta(&r.meta)?, Command::Register(Box::new(parse::register(r)?))),
            Step::Dispatch(r) => (meta(&r.meta)?, parse::dispatch(r)?),
            Step::Accept(r) => (meta(&r.meta)?, Command::Accept),
            Step::Assign(r) => (
                meta(&r.meta)?,
                Command::AssignMediators { mediator_ids: parse::idents("mediator_ids", &r.mediator_ids)? },
            ),
            Step::Schedule(r) => (
                meta(&r.meta)?,
                Command::ScheduleSession {
                    scheduled_for: parse::session_time(r.scheduled_for_unix_ms)?,
                    place: ShortText::parse_optional("place", &r.place)?,
                    online: r.online,
                },
            ),
            Step::Hold(r) => (
                meta(&r.meta)?,
                Command::RecordSession {
                    session_id: Ident::parse_optional("session_id", &r.session_id)?,
                    attendees: parse::attendees(&r.attendees)?,
                    record: LongText::parse("record", &r.record)?,
                },
            ),
            Step::Settle(r) => (meta(&r.meta)?, parse::settle(r)?),
            Step::Close(r) => (
                meta(&r.meta)?,
                Command::Close {
                    outcome: parse::enumeration("outcome", r.outcome)?,
                    summary: LongText::parse("summary", &r.summary)?,
                },
            ),
            Step::FollowUp(r) => (
                meta(&r.meta)?,
                Command::RecordFollowUp {
                    method: parse::enumeration("method", r.method)?,
                    satisfaction: parse::enumeration("satisfaction", r.satisfaction)?,
                    note: ShortText::parse_optional("note", &r.note)?,
                },
            ),
            Step::Refer(r) => (
                meta(&r.meta)?,
                Command::Refer {
                    partner_kind: parse::enumeration("partner_kind", r.partner_kind)?,
                    partner_id: Ident::parse("partner_id", &r.partner_id)?,
                    partner_name: ShortText::parse("partner_name", &r.partner_name)?,
                    reason: ShortText::parse("reason", &r.reason)?,
                },
            ),
        })
    }
}

/// Bearer tokens: the district dispatcher's and supervisor's, each community's committee lead's
/// and mediator's, and each street tribunal's partner agent's.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub dispatcher: String,
    /// A district leader's (read-only oversight, statistics).
    pub supervisor: String,
    leads: HashMap<String, String>,
    mediators: HashMap<String, String>,
    tribunals: HashMap<String, String>,
}

impl Tokens {
    /// Mints tokens for every community of `geo` with the service's keys.
    ///
    /// # Errors
    /// Signing failed.
    pub fn mint(auth_settings: &AuthSettings, geo: &Geography) -> anyhow::Result<Self> {
        // Committee staff's tokens name their committee, as the service expects of real ones.
        let token = |sub: &str, role: &str, unit: &str, partner: &str, committee: &str| {
            let mut claims = auth::claims(auth_settings, sub, role, unit, partner, 24 * 3600);
            claims.committee = committee.to_owned();
            auth::mint(auth_settings, &claims)
        };
        let dispatcher = token("bench-dispatcher", "dispatcher", DISTRICT, "", "")?;
        let supervisor = token("bench-supervisor", "supervisor", DISTRICT, "", "")?;
        let (mut leads, mut mediators, mut tribunals) = (HashMap::new(), HashMap::new(), HashMap::new());
        for n in 0..geo.communities() {
            let community = geo.community(n);
            let committee = committee_of(&community);
            let lead = token(&format!("bench-lead-{community}"), "committee_lead", &community, "", &committee)?;
            leads.insert(community.clone(), lead);
            let mediator = token(&mediator_of(&community), "mediator", &community, "", &committee)?;
            mediators.insert(community.clone(), mediator);
            let tribunal = tribunal_of(&community);
            if !tribunals.contains_key(&tribunal) {
                let street = Geography::street_of(&community);
                let agent = token(&format!("bench-clerk-{street}"), "partner_agent", &street, &tribunal, "")?;
                tribunals.insert(tribunal, agent);
            }
        }
        Ok(Self { dispatcher, supervisor, leads, mediators, tribunals })
    }

    /// The committee lead's token for `community` (the dispatcher's if it has none).
    pub fn lead(&self, community: &str) -> &str {
        self.leads.get(community).map_or(&self.dispatcher, String::as_str)
    }

    /// The token of `community`'s mediator (the dispatcher's if it has none).
    pub fn mediator(&self, community: &str) -> &str {
        self.mediators.get(community).map_or(&self.dispatcher, String::as_str)
    }

    /// The token of the clerk of the tribunal `community`'s cases are referred to (the
    /// dispatcher's if it has none).
    pub fn tribunal_clerk(&self, community: &str) -> &str {
        self.tribunals.get(&tribunal_of(community)).map_or(&self.dispatcher, String::as_str)
    }
}

/// A request carrying `token`.
pub fn authorised<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = MetadataValue::try_from(format!("Bearer {token}")) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// gRPC clients on one connection.
#[derive(Debug, Clone)]
pub struct Clients {
    intake: api::intake_service_client::IntakeServiceClient<Channel>,
    work: api::case_work_service_client::CaseWorkServiceClient<Channel>,
    follow_up: api::follow_up_service_client::FollowUpServiceClient<Channel>,
    pub query: api::query_service_client::QueryServiceClient<Channel>,
    pub work_queues: api::work_queue_service_client::WorkQueueServiceClient<Channel>,
    pub linkage_queues: api::linkage_queue_service_client::LinkageQueueServiceClient<Channel>,
    pub statistics: api::statistics_service_client::StatisticsServiceClient<Channel>,
}

impl Clients {
    /// Clients sharing `channel`.
    pub fn new(channel: Channel) -> Self {
        Self {
            intake: api::intake_service_client::IntakeServiceClient::new(channel.clone()),
            work: api::case_work_service_client::CaseWorkServiceClient::new(channel.clone()),
            follow_up: api::follow_up_service_client::FollowUpServiceClient::new(channel.clone()),
            query: api::query_service_client::QueryServiceClient::new(channel.clone()),
            work_queues: api::work_queue_service_client::WorkQueueServiceClient::new(channel.clone()),
            linkage_queues: api::linkage_queue_service_client::LinkageQueueServiceClient::new(channel.clone()),
            statistics: api::statistics_service_client::StatisticsServiceClient::new(channel),
        }
    }

    /// Sends `step` of `plan` over gRPC as the right actor.
    ///
    /// # Errors
    /// The service's status.
    pub async fn send(
        &mut self,
        tokens: &Tokens,
        plan: &CasePlan,
        step: Step,
    ) -> Result<api::CommandResult, tonic::Status> {
        let token = if step.by_dispatcher() { tokens.dispatcher.as_str() } else { tokens.lead(&plan.community) };
        let response = match step {
            Step::Register(r) => self.intake.register_case(authorised(token, r)).await,
            Step::Dispatch(r) => self.work.dispatch_case(authorised(token, r)).await,
            Step::Accept(r) => self.work.accept_case(authorised(token, r)).await,
            Step::Assign(r) => self.work.assign_mediators(authorised(token, r)).await,
            Step::Schedule(r) => self.work.schedule_session(authorised(token, r)).await,
            Step::Hold(r) => self.work.record_session(authorised(token, r)).await,
            Step::Settle(r) => self.work.record_settlement(authorised(token, r)).await,
            Step::Close(r) => self.work.close_case(authorised(token, r)).await,
            Step::FollowUp(r) => self.follow_up.record_follow_up(authorised(token, r)).await,
            Step::Refer(r) => self.work.refer_case(authorised(token, r)).await,
        };
        response.map(tonic::Response::into_inner)
    }
}

/// Runs `step` of `plan` straight through the service's command path (no gRPC, no
/// authorisation: the generator writes history, it does not test who may write it).
///
/// # Errors
/// A step the domain refuses (a bug in the plan) or an event-store failure.
pub async fn execute(handler: &CommandHandler, plan: &CasePlan, step: &Step) -> anyhow::Result<Outcome> {
    let (meta, command) = step.command().map_err(|e| anyhow::anyhow!("bench step does not parse: {e}"))?;
    let principal = if step.by_dispatcher() {
        Principal {
            subject: "bench-dispatcher".to_owned(),
            role: pb::Role::Dispatcher,
            unit: UnitCode::parse("unit", DISTRICT)?,
            partner_id: None,
            committee_id: None,
        }
    } else {
        Principal {
            subject: format!("bench-lead-{}", plan.community),
            role: pb::Role::CommitteeLead,
            unit: UnitCode::parse("unit", &plan.community)?,
            partner_id: None,
            committee_id: Some(Ident::parse("committee", &plan.committee())?),
        }
    };
    let allow = |_: &fengqiao_domain::Case| Ok(());
    handler
        .execute(&principal, plan.case_id, &meta, command, &allow)
        .await
        .map_err(|e: CommandError| anyhow::anyhow!("{} step of case {} failed: {e}", step_name(step), plan.index))
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Register(_) => "register",
        Step::Dispatch(_) => "dispatch",
        Step::Accept(_) => "accept",
        Step::Assign(_) => "assign",
        Step::Schedule(_) => "schedule",
        Step::Hold(_) => "hold session",
        Step::Settle(_) => "settle",
        Step::Close(_) => "close",
        Step::FollowUp(_) => "follow up",
        Step::Refer(_) => "refer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_are_valid_unit_codes_under_the_district() {
        let geo = Geography { townships: 3, villages: 4 };
        assert_eq!(geo.communities(), 12);
        let district = UnitCode::parse("unit", DISTRICT).expect("district");
        for n in 0..geo.communities() {
            let community = UnitCode::parse("unit", &geo.community(n)).expect("community code");
            assert!(community.is_within(&district));
            let street = UnitCode::parse("unit", &Geography::street_of(community.as_str())).expect("street");
            assert!(community.is_within(&street));
        }
        assert_eq!(geo.community(0), "500116001001");
        assert_eq!(geo.community(12), geo.community(0));
    }

    #[test]
    fn every_step_parses_into_a_command() {
        let plan = CasePlan::new("t", 7, &Geography { townships: 1, villages: 1 });
        for kind in FULL_LIFE.iter().chain([&Refer]) {
            assert!(plan.step(*kind, 1_800_000_000_000).command().is_ok(), "{kind:?}");
        }
    }

    #[test]
    fn generated_lives_average_under_three_commits() {
        let total: usize = (0..20).map(|i| generated_life(i).len()).sum();
        assert_eq!(total, 55);
        assert!((0..20).all(|i| generated_life(i)[0] == Register));
    }
}

//! The whole case life through real gRPC, NATS and PostgreSQL (DESIGN §2): five journeys from the
//! field, each read back from the case file (`GetCase`, read-your-writes) with who did what; every
//! mutating RPC retried with its idempotency key; and how lifecycle errors reach a client.

use jiff::{SignedDuration, Timestamp};
use prost::Message as _;
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

use events::Role;
use events::event::Kind;
use fengqiao_domain::Clock as _;
use fengqiao_tests::*;
use rpc::case_work_service_client::CaseWorkServiceClient;
use rpc::follow_up_service_client::FollowUpServiceClient;
use rpc::intake_service_client::IntakeServiceClient;
use rpc::linkage_service_client::LinkageServiceClient;

// ---------------------------------------------------------------------------------------------
// The people of the journeys (token subjects) and the institutions they work for.

/// The 12345 hotline integration of the district.
const HOTLINE: &str = "cq12345-hotline";
/// An operator at the street's command centre (几江街道综治中心).
const DISPATCHER: &str = "dispatcher-wang";
/// The director of the community's mediation committee (艾坪山社区调委会主任).
const LEAD: &str = "lead-chen";
/// A people's mediator of that committee.
const MEDIATOR: &str = "mediator-liu";
/// The name the mediator signs agreements with.
const MEDIATOR_NAME: &str = "刘调解";
/// The grid worker (网格员) of the community's first grid.
const GRID_WORKER: &str = "grid-worker-zhou";
/// The district court and a clerk who answers its referrals and judicial confirmations.
const COURT: &str = "jiangjin-court";
const CLERK: &str = "court-clerk-zhao";
/// A law firm on the street's legal-adviser roster, and one of its lawyers.
const LAW_FIRM: &str = "zhengda-law-firm";
const LAWYER: &str = "lawyer-sun";
/// The street's police station and an officer who transfers disputes (警调).
const POLICE: &str = "jijiang-police-station";
const OFFICER: &str = "officer-he";
/// The neighbouring community in the same street, its committee and that committee's director.
const NEIGHBOUR_COMMUNITY: &str = "500116001003";
const NEIGHBOUR_COMMITTEE: &str = "ailin-committee";
const NEIGHBOUR_LEAD: &str = "lead-huang";
/// The street's own mediation committee, the next tier up.
const STREET_COMMITTEE: &str = "jijiang-street-committee";

/// Tokens of everyone above.
struct People {
    hotline: String,
    dispatcher: String,
    lead: String,
    mediator: String,
    grid_worker: String,
    clerk: String,
    lawyer: String,
    officer: String,
    neighbour_lead: String,
}

fn people(app: &TestApp) -> People {
    People {
        hotline: app.token_for(HOTLINE, "hotline", DISTRICT, ""),
        dispatcher: app.token_for(DISPATCHER, "dispatcher", STREET, ""),
        lead: app.token_for(LEAD, "committee_lead", COMMUNITY, ""),
        mediator: app.token_for(MEDIATOR, "mediator", COMMUNITY, ""),
        grid_worker: app.token_for(GRID_WORKER, "grid_worker", GRID, ""),
        clerk: app.token_for(CLERK, "partner_agent", DISTRICT, COURT),
        lawyer: app.token_for(LAWYER, "partner_agent", STREET, LAW_FIRM),
        officer: app.token_for(OFFICER, "partner_agent", STREET, POLICE),
        neighbour_lead: app.token_for(NEIGHBOUR_LEAD, "committee_lead", NEIGHBOUR_COMMUNITY, ""),
    }
}

// ---------------------------------------------------------------------------------------------
// One case and a step function per RPC. Each step sends one command with the given idempotency
// key and returns the result or the status, unchanged.

type Reply = Result<rpc::CommandResult, Status>;

fn answer(response: Result<Response<rpc::CommandResult>, Status>) -> Reply {
    response.map(Response::into_inner)
}

/// The command clients of one test.
#[derive(Clone)]
struct Desk {
    intake: IntakeServiceClient<Channel>,
    work: CaseWorkServiceClient<Channel>,
    linkage: LinkageServiceClient<Channel>,
    follow_up: FollowUpServiceClient<Channel>,
}

impl Desk {
    async fn open(app: &TestApp) -> Desk {
        let channel = app.channel().await;
        Desk {
            intake: IntakeServiceClient::new(channel.clone()),
            work: CaseWorkServiceClient::new(channel.clone()),
            linkage: LinkageServiceClient::new(channel.clone()),
            follow_up: FollowUpServiceClient::new(channel),
        }
    }

    async fn register(&self, token: &str, request: rpc::RegisterCaseRequest) -> Reply {
        answer(self.intake.clone().register_case(req(token, request)).await)
    }

    /// Registers `request` and returns the new case.
    async fn new_case(&self, token: &str, request: rpc::RegisterCaseRequest) -> Case {
        let registered = self.register(token, request).await.expect("registered");
        self.case(&registered.case_id)
    }

    fn case(&self, id: &str) -> Case {
        Case { id: id.to_owned(), desk: self.clone() }
    }
}

struct Case {
    id: String,
    desk: Desk,
}

impl Case {
    fn work(&self) -> CaseWorkServiceClient<Channel> {
        self.desk.work.clone()
    }

    fn linkage(&self) -> LinkageServiceClient<Channel> {
        self.desk.linkage.clone()
    }

    async fn dispatch(&self, token: &str, key: &str, tier: events::Tier, committee: &str, unit: &str) -> Reply {
        let request = rpc::DispatchCaseRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            tier: tier as i32,
            committee_id: committee.to_owned(),
            committee_unit_code: unit.to_owned(),
            risk_level: events::RiskLevel::Low as i32,
            ..Default::default()
        };
        answer(self.work().dispatch_case(req(token, request)).await)
    }

    /// Dispatches to the community's committee at community tier with a risk level.
    async fn dispatch_here(&self, token: &str, key: &str, risk: events::RiskLevel) -> Reply {
        let request = rpc::DispatchCaseRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            tier: events::Tier::Community as i32,
            committee_id: COMMITTEE.to_owned(),
            committee_unit_code: COMMUNITY.to_owned(),
            category: "邻里纠纷".to_owned(),
            risk_level: risk as i32,
            note: "请社区调委会签收处理".to_owned(),
        };
        answer(self.work().dispatch_case(req(token, request)).await)
    }

    async fn return_case(&self, token: &str, key: &str, reason: &str) -> Reply {
        let request = rpc::ReturnCaseRequest { meta: meta(key), case_id: self.id.clone(), reason: reason.to_owned() };
        answer(self.work().return_case(req(token, request)).await)
    }

    async fn accept(&self, token: &str, key: &str) -> Reply {
        let request = rpc::AcceptCaseRequest { meta: meta(key), case_id: self.id.clone() };
        answer(self.work().accept_case(req(token, request)).await)
    }

    async fn assign(&self, token: &str, key: &str, mediators: &[&str]) -> Reply {
        let request = rpc::AssignMediatorsRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            mediator_ids: mediators.iter().map(|m| (*m).to_owned()).collect(),
        };
        answer(self.work().assign_mediators(req(token, request)).await)
    }

    async fn schedule(&self, token: &str, key: &str, at: Timestamp) -> Reply {
        let request = rpc::ScheduleSessionRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            session_id: String::new(),
            scheduled_for_unix_ms: at.as_millisecond(),
            place: "艾坪山社区人民调解室".to_owned(),
            online: false,
        };
        answer(self.work().schedule_session(req(token, request)).await)
    }

    /// Records a session: `session` names a scheduled one, or is empty for mediation on the spot.
    async fn hold(&self, token: &str, key: &str, session: &str, record: &str) -> Reply {
        let request = rpc::RecordSessionRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            session_id: session.to_owned(),
            attendees: vec!["张三".to_owned(), "李四".to_owned(), MEDIATOR_NAME.to_owned()],
            record: record.to_owned(),
        };
        answer(self.work().record_session(req(token, request)).await)
    }

    async fn arrive(&self, token: &str, key: &str, note: &str) -> Reply {
        let request = rpc::RecordArrivalRequest { meta: meta(key), case_id: self.id.clone(), note: note.to_owned() };
        answer(self.work().record_arrival(req(token, request)).await)
    }

    async fn progress(&self, token: &str, key: &str, note: &str) -> Reply {
        let request = rpc::ReportProgressRequest { meta: meta(key), case_id: self.id.clone(), note: note.to_owned() };
        answer(self.work().report_progress(req(token, request)).await)
    }

    async fn pause(&self, token: &str, key: &str, reason: &str) -> Reply {
        let request = rpc::PauseClockRequest { meta: meta(key), case_id: self.id.clone(), reason: reason.to_owned() };
        answer(self.work().pause_clock(req(token, request)).await)
    }

    async fn resume(&self, token: &str, key: &str) -> Reply {
        let request =
            rpc::ResumeClockRequest {
                meta: meta(key), case_id: self.id.clone(), note: "鉴定报告已出".to_owned()
            };
        answer(self.work().resume_clock(req(token, request)).await)
    }

    async fn extend(&self, token: &str, key: &str, days: u32) -> Reply {
        let request = rpc::GrantExtensionRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            days,
            reason: "需等待房屋安全鉴定".to_owned(),
        };
        answer(self.work().grant_extension(req(token, request)).await)
    }

    async fn refer(&self, token: &str, key: &str, kind: events::PartnerKind, partner: &str, name: &str) -> Reply {
        let request = rpc::ReferCaseRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            partner_kind: kind as i32,
            partner_id: partner.to_owned(),
            partner_name: name.to_owned(),
            reason: "调解不成，当事人同意移交".to_owned(),
        };
        answer(self.work().refer_case(req(token, request)).await)
    }

    async fn accept_referral(&self, token: &str, key: &str, referral: &str) -> Reply {
        let request =
            rpc::AcceptReferralRequest { meta: meta(key), case_id: self.id.clone(), referral_id: referral.to_owned() };
        answer(self.linkage().accept_referral(req(token, request)).await)
    }

    async fn decline_referral(&self, token: &str, key: &str, referral: &str, reason: &str) -> Reply {
        let request = rpc::DeclineReferralRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            referral_id: referral.to_owned(),
            reason: reason.to_owned(),
        };
        answer(self.linkage().decline_referral(req(token, request)).await)
    }

    async fn return_referral(&self, token: &str, key: &str, referral: &str) -> Reply {
        let request = rpc::ReturnReferralRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            referral_id: referral.to_owned(),
            reason: "宜由调委会继续调解".to_owned(),
        };
        answer(self.linkage().return_referral(req(token, request)).await)
    }

    async fn conclude_referral(&self, token: &str, key: &str, referral: &str, summary: &str) -> Reply {
        let request = rpc::ConcludeReferralRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            referral_id: referral.to_owned(),
            outcome: events::ReferralOutcome::Resolved as i32,
            summary: summary.to_owned(),
        };
        answer(self.linkage().conclude_referral(req(token, request)).await)
    }

    async fn settle_with(&self, token: &str, key: &str, agreement: events::Agreement) -> Reply {
        let request =
            rpc::RecordSettlementRequest { meta: meta(key), case_id: self.id.clone(), agreement: Some(agreement) };
        answer(self.work().record_settlement(req(token, request)).await)
    }

    /// Settles with an agreement between 张三 and 李四 that both and the mediator signed.
    async fn settle(&self, token: &str, key: &str) -> Reply {
        self.settle_with(token, key, agreement(&["张三", "李四"])).await
    }

    async fn perform(&self, token: &str, key: &str) -> Reply {
        let request = rpc::RecordPerformanceRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            status: events::PerformanceStatus::Performed as i32,
            note: "赔偿款已当面付清".to_owned(),
        };
        answer(self.work().record_performance(req(token, request)).await)
    }

    async fn request_confirmation(&self, token: &str, key: &str) -> Reply {
        let request = rpc::RequestJudicialConfirmationRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            court_id: COURT.to_owned(),
            court_name: "重庆市江津区人民法院".to_owned(),
        };
        answer(self.work().request_judicial_confirmation(req(token, request)).await)
    }

    async fn accept_confirmation(&self, token: &str, key: &str) -> Reply {
        let request = rpc::AcceptJudicialConfirmationRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            court_case_number: "(2026)Yu0116MinTe123".to_owned(),
        };
        answer(self.linkage().accept_judicial_confirmation(req(token, request)).await)
    }

    async fn rule_confirmation(&self, token: &str, key: &str) -> Reply {
        let request = rpc::RuleJudicialConfirmationRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            granted: true,
            reason: "协议内容合法，裁定有效".to_owned(),
        };
        answer(self.linkage().rule_judicial_confirmation(req(token, request)).await)
    }

    async fn fail(&self, token: &str, key: &str) -> Reply {
        let request = rpc::RecordMediationFailureRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            reason: "双方对赔偿金额分歧过大".to_owned(),
            advice: events::FailureAdvice::Litigation as i32,
            advice_note: "告知可向人民法院起诉".to_owned(),
        };
        answer(self.work().record_mediation_failure(req(token, request)).await)
    }

    async fn escalate(&self, token: &str, key: &str) -> Reply {
        let request = rpc::EscalateCaseRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            committee_id: STREET_COMMITTEE.to_owned(),
            committee_unit_code: STREET.to_owned(),
            reason: "涉及多户，社区无法化解".to_owned(),
        };
        answer(self.work().escalate_case(req(token, request)).await)
    }

    async fn close(&self, token: &str, key: &str, summary: &str) -> Reply {
        let request = rpc::CloseCaseRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            outcome: events::ClosureOutcome::Resolved as i32,
            summary: summary.to_owned(),
        };
        answer(self.work().close_case(req(token, request)).await)
    }

    async fn withdraw(&self, token: &str, key: &str) -> Reply {
        let request =
            rpc::WithdrawCaseRequest {
                meta: meta(key), case_id: self.id.clone(), reason: "申请人撤回申请".to_owned()
            };
        answer(self.work().withdraw_case(req(token, request)).await)
    }

    async fn merge_into(&self, token: &str, key: &str, into: &str) -> Reply {
        let request = rpc::MergeCaseRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            into_case_id: into.to_owned(),
            reason: "同一纠纷重复来电".to_owned(),
        };
        answer(self.work().merge_case(req(token, request)).await)
    }

    async fn follow_up(
        &self,
        token: &str,
        key: &str,
        method: events::FollowUpMethod,
        satisfaction: events::Satisfaction,
    ) -> Reply {
        let request = rpc::RecordFollowUpRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            method: method as i32,
            satisfaction: satisfaction as i32,
            note: "回访记录".to_owned(),
        };
        answer(self.desk.follow_up.clone().record_follow_up(req(token, request)).await)
    }

    async fn reopen(&self, token: &str, key: &str) -> Reply {
        let request = rpc::ReopenCaseRequest {
            meta: meta(key),
            case_id: self.id.clone(),
            reason: "当事人反映协议未履行".to_owned(),
        };
        answer(self.desk.follow_up.clone().reopen_case(req(token, request)).await)
    }

    /// The case file as `token` reads it once the read model has applied `sequence`, its
    /// versions checked to run without gaps.
    async fn file(&self, app: &TestApp, token: &str, sequence: u64) -> rpc::GetCaseResponse {
        let file = app.case(token, &self.id, sequence).await;
        assert_gapless(&file);
        file
    }

    /// Dispatched by the street to the community committee and signed for by its director.
    async fn signed_for(self, p: &People) -> Case {
        self.dispatch_here(&p.dispatcher, "dispatch", events::RiskLevel::Low).await.expect("dispatched");
        self.accept(&p.lead, "sign-for").await.expect("signed for");
        self
    }
}

/// An agreement naming `parties`, signed by every one of them and by the mediator.
fn agreement(parties: &[&str]) -> events::Agreement {
    let names: Vec<String> = parties.iter().map(|p| (*p).to_owned()).collect();
    events::Agreement {
        party_names: names.clone(),
        facts: "楼上卫生间防水层老化，渗水致楼下卧室墙面受损。".to_owned(),
        points_in_dispute: "维修责任与赔偿金额。".to_owned(),
        terms: "楼上住户十日内修复防水层，并赔偿楼下住户墙面修复费二千元。".to_owned(),
        performance_method: "当面支付".to_owned(),
        signed_by: names.into_iter().chain([MEDIATOR_NAME.to_owned()]).collect(),
        mediator_id: MEDIATOR.to_owned(),
        mediator_name: MEDIATOR_NAME.to_owned(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the case file.

/// Each timeline entry as (event type, actor, actor's role).
fn steps(file: &rpc::GetCaseResponse) -> Vec<(&str, &str, Role)> {
    file.timeline
        .iter()
        .map(|t| {
            let actor = t.actor.as_ref().expect("every event names its actor");
            (t.event_type.as_str(), actor.subject.as_str(), Role::try_from(actor.role).expect("known role"))
        })
        .collect()
}

/// The events of the case file, in order.
fn kinds(file: &rpc::GetCaseResponse) -> Vec<&Kind> {
    file.timeline.iter().map(|t| t.event.as_ref().and_then(|e| e.kind.as_ref()).expect("event body")).collect()
}

/// The last event of a kind in the case file.
macro_rules! last {
    ($file:expr, $kind:ident) => {
        kinds(&$file)
            .into_iter()
            .rev()
            .find_map(|k| match k {
                Kind::$kind(e) => Some(e.clone()),
                _ => None,
            })
            .expect(concat!("a ", stringify!($kind), " event"))
    };
}

/// Versions 1, 2, … without gaps, in stream order, and the summary at the last version.
fn assert_gapless(file: &rpc::GetCaseResponse) {
    let versions: Vec<u64> = file.timeline.iter().map(|t| t.case_version).collect();
    assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
    assert!(file.timeline.windows(2).all(|w| w[0].stream_sequence <= w[1].stream_sequence));
    assert_eq!(file.summary.as_ref().expect("summary").version, versions.len() as u64);
}

fn state(file: &rpc::GetCaseResponse) -> events::CaseState {
    events::CaseState::try_from(file.summary.as_ref().expect("summary").state).expect("known state")
}

fn now_ms(app: &TestApp) -> i64 {
    app.clock.now().as_millisecond()
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

// ---------------------------------------------------------------------------------------------
// a. 12345 order → 派单 → 签收 → session → settlement → 司法确认 granted → 办结 → 评单 satisfied

#[tokio::test]
async fn hotline_order_is_settled_judicially_confirmed_closed_and_rated_satisfied() {
    use events::Role::{CommitteeLead, Dispatcher, Hotline, Mediator, PartnerAgent};
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let case = desk.new_case(&p.hotline, hotline_order("CQ12345-20261123-0001")).await;

    case.dispatch_here(&p.dispatcher, "a-dispatch", events::RiskLevel::Low).await.unwrap();
    case.accept(&p.lead, "a-sign-for").await.unwrap();
    case.assign(&p.lead, "a-assign", &[MEDIATOR]).await.unwrap();
    let session_at = app.clock.now() + days(2);
    case.schedule(&p.mediator, "a-schedule", session_at).await.unwrap();
    app.clock.advance(days(2));
    case.hold(&p.mediator, "a-session", "S1", "双方同意由楼上修复防水层并赔偿二千元。").await.unwrap();
    case.settle(&p.mediator, "a-settle").await.unwrap();
    let effective_at = now_ms(&app);
    // The parties apply together a week later; the court accepts, then grants.
    app.clock.advance(days(7));
    case.request_confirmation(&p.mediator, "a-apply").await.unwrap();
    app.clock.advance(days(2));
    case.accept_confirmation(&p.clerk, "a-court-accepts").await.unwrap();
    app.clock.advance(days(10));
    case.rule_confirmation(&p.clerk, "a-court-grants").await.unwrap();
    case.close(&p.mediator, "a-close", "调解协议经司法确认，已履行完毕。").await.unwrap();
    let rated = case
        .follow_up(&p.hotline, "a-rating", events::FollowUpMethod::HotlineRating, events::Satisfaction::Satisfied)
        .await
        .unwrap();

    let file = case.file(&app, &p.lead, rated.stream_sequence).await;
    assert_eq!(
        steps(&file),
        [
            ("CaseRegistered", HOTLINE, Hotline),
            ("CaseDispatched", DISPATCHER, Dispatcher),
            ("CaseAccepted", LEAD, CommitteeLead),
            ("MediatorsAssigned", LEAD, CommitteeLead),
            ("SessionScheduled", MEDIATOR, Mediator),
            ("SessionHeld", MEDIATOR, Mediator),
            ("CaseSettled", MEDIATOR, Mediator),
            ("JudicialConfirmationRequested", MEDIATOR, Mediator),
            ("JudicialConfirmationAccepted", CLERK, PartnerAgent),
            ("JudicialConfirmationRuled", CLERK, PartnerAgent),
            ("CaseClosed", MEDIATOR, Mediator),
            ("FollowUpRecorded", HOTLINE, Hotline),
        ]
    );
    let summary = file.summary.clone().unwrap();
    assert_eq!(state(&file), events::CaseState::Closed);
    assert_eq!((summary.committee_id.as_str(), summary.tier), (COMMITTEE, events::Tier::Community as i32));
    assert_eq!(file.timeline[8].actor.as_ref().unwrap().partner_id, COURT, "the court's clerk acted for the court");

    assert_eq!(last!(file, CaseAccepted).committee_id, COMMITTEE);
    assert_eq!(last!(file, MediatorsAssigned).mediator_ids, [MEDIATOR]);
    let scheduled = last!(file, SessionScheduled);
    assert_eq!((scheduled.session_id.as_str(), scheduled.scheduled_for_unix_ms), ("S1", session_at.as_millisecond()));
    let held = last!(file, SessionHeld);
    assert_eq!((held.session_id.as_str(), held.attendees.len()), ("S1", 3));
    let agreement = last!(file, CaseSettled).agreement.unwrap();
    assert_eq!(agreement.effective_at_unix_ms, effective_at);
    assert_eq!(agreement.signed_by, ["张三", "李四", MEDIATOR_NAME]);
    assert_eq!(last!(file, JudicialConfirmationRequested).court_id, COURT);
    assert_eq!(last!(file, JudicialConfirmationAccepted).court_case_number, "(2026)Yu0116MinTe123");
    assert!(last!(file, JudicialConfirmationRuled).granted);
    assert_eq!(last!(file, CaseClosed).outcome(), events::ClosureOutcome::Resolved);
    let rating = last!(file, FollowUpRecorded);
    assert_eq!(
        (rating.method(), rating.satisfaction()),
        (events::FollowUpMethod::HotlineRating, events::Satisfaction::Satisfied)
    );
    // The court reads the case it confirmed, with its own work on it.
    let court_view = app.case(&p.clerk, &case.id, rated.stream_sequence).await;
    let confirmation: Vec<String> =
        event_types(&court_view).into_iter().filter(|t| t.starts_with("JudicialConfirmation")).collect();
    assert_eq!(
        confirmation,
        ["JudicialConfirmationRequested", "JudicialConfirmationAccepted", "JudicialConfirmationRuled"]
    );
    app.finish().await;
}

#[tokio::test]
async fn judicial_confirmation_is_refused_once_the_30_day_window_has_passed() {
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let late = desk.new_case(&p.hotline, hotline_order("CQ12345-20261123-0030")).await.signed_for(&p).await;
    late.settle(&p.mediator, "settle").await.unwrap();

    app.clock.advance(days(30) + SignedDuration::from_mins(1));
    let before = app.stream_messages().await;
    let refused = late.request_confirmation(&p.mediator, "apply").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        refused.message(),
        "the 30-day window for judicial confirmation after the agreement took effect has passed"
    );
    assert_eq!(app.stream_messages().await, before, "a refusal appends nothing");

    // The same application for an agreement that took effect 30 days ago to the minute is in time.
    let timely = desk.new_case(&p.hotline, hotline_order("CQ12345-20261223-0031")).await.signed_for(&p).await;
    timely.settle(&p.mediator, "settle").await.unwrap();
    app.clock.advance(days(30));
    let applied = timely.request_confirmation(&p.mediator, "apply").await.unwrap();
    let file = timely.file(&app, &p.lead, applied.stream_sequence).await;
    assert_eq!(kinds(&file).len(), 5);
    assert_eq!(file.timeline[4].event_type, "JudicialConfirmationRequested");
    app.finish().await;
}

// ---------------------------------------------------------------------------------------------
// b. grid report → 签收 → 调解不成 → court declines → law firm accepts and concludes → 办结

#[tokio::test]
async fn grid_report_fails_in_mediation_and_a_law_firm_concludes_it_after_the_court_declines() {
    use events::Role::{CommitteeLead, Dispatcher, GridWorker, Mediator, PartnerAgent};
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let report = rpc::RegisterCaseRequest { unit_code: GRID.to_owned(), ..grid_report("b-report") };
    let case = desk.new_case(&p.grid_worker, report).await.signed_for(&p).await;

    case.hold(&p.mediator, "b-on-the-spot", "", "物业坚持按合同分配车位，业主不接受。").await.unwrap();
    case.fail(&p.mediator, "b-failed").await.unwrap();
    case.refer(&p.mediator, "b-to-court", events::PartnerKind::Court, COURT, "江津区人民法院").await.unwrap();
    case.decline_referral(&p.clerk, "b-court-declines", "R1", "不属于诉前委派调解范围").await.unwrap();
    case.refer(&p.mediator, "b-to-lawyer", events::PartnerKind::LawFirm, LAW_FIRM, "正大律师事务所").await.unwrap();
    case.accept_referral(&p.lawyer, "b-lawyer-accepts", "R2").await.unwrap();
    case.conclude_referral(&p.lawyer, "b-lawyer-concludes", "R2", "律师主持和解，物业调整车位分配方案。")
        .await
        .unwrap();
    let closed = case.close(&p.lead, "b-close", "经律师调解化解。").await.unwrap();

    let file = case.file(&app, &p.lead, closed.stream_sequence).await;
    assert_eq!(
        steps(&file),
        [
            ("CaseRegistered", GRID_WORKER, GridWorker),
            ("CaseDispatched", DISPATCHER, Dispatcher),
            ("CaseAccepted", LEAD, CommitteeLead),
            ("SessionHeld", MEDIATOR, Mediator),
            ("MediationFailed", MEDIATOR, Mediator),
            ("ReferralMade", MEDIATOR, Mediator),
            ("ReferralDeclined", CLERK, PartnerAgent),
            ("ReferralMade", MEDIATOR, Mediator),
            ("ReferralAccepted", LAWYER, PartnerAgent),
            ("ReferralConcluded", LAWYER, PartnerAgent),
            ("CaseClosed", LEAD, CommitteeLead),
        ]
    );
    assert_eq!(state(&file), events::CaseState::Closed);
    assert_eq!(file.summary.as_ref().unwrap().unit_code, GRID);
    let made: Vec<(String, String, i32)> = kinds(&file)
        .into_iter()
        .filter_map(|k| match k {
            Kind::ReferralMade(r) => Some((r.referral_id.clone(), r.partner_id.clone(), r.partner_kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        made,
        [
            ("R1".to_owned(), COURT.to_owned(), events::PartnerKind::Court as i32),
            ("R2".to_owned(), LAW_FIRM.to_owned(), events::PartnerKind::LawFirm as i32),
        ]
    );
    assert_eq!(last!(file, SessionHeld).session_id, "S1");
    assert_eq!(last!(file, MediationFailed).advice(), events::FailureAdvice::Litigation);
    assert_eq!(last!(file, ReferralDeclined).reason, "不属于诉前委派调解范围");
    let concluded = last!(file, ReferralConcluded);
    assert_eq!((concluded.referral_id.as_str(), concluded.outcome()), ("R2", events::ReferralOutcome::Resolved));
    assert_eq!(file.timeline[9].actor.as_ref().unwrap().partner_id, LAW_FIRM);
    // The law firm reads the case referred to it, with its own referral's events.
    let firm_view = app.case(&p.lawyer, &case.id, closed.stream_sequence).await;
    let referral: Vec<String> = event_types(&firm_view).into_iter().filter(|t| t.starts_with("Referral")).collect();
    assert_eq!(referral, ["ReferralMade", "ReferralAccepted", "ReferralConcluded"]);
    app.finish().await;
}

// ---------------------------------------------------------------------------------------------
// c. 警调: a police transfer with violence risk, handled urgently on site

#[tokio::test]
async fn police_transfer_with_violence_risk_is_handled_urgently_on_site() {
    use events::Role::{CommitteeLead, Dispatcher, Mediator, PartnerAgent};
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let transfer = rpc::RegisterCaseRequest {
        meta: meta("c-transfer"),
        channel: events::Channel::PoliceTransfer as i32,
        external_ref: "JJPCS-2026-0815".to_owned(),
        source_partner_kind: events::PartnerKind::Police as i32,
        source_partner_id: POLICE.to_owned(),
        urgency: events::Urgency::Emergency as i32,
        risk_signals: vec![events::RiskSignal::Violence as i32, events::RiskSignal::CivilToCriminal as i32],
        category: "宅基地纠纷".to_owned(),
        description: "两户因宅基地边界争执，一方持农具威胁，民警出警后移交调解。".to_owned(),
        ..hotline_order("unused")
    };
    let case = desk.new_case(&p.officer, transfer).await;
    let registered_at = now_ms(&app);

    case.dispatch_here(&p.dispatcher, "c-dispatch", events::RiskLevel::High).await.unwrap();
    app.clock.advance(SignedDuration::from_secs(40));
    case.accept(&p.lead, "c-sign-for").await.unwrap();
    app.clock.advance(SignedDuration::from_mins(3));
    case.arrive(&p.mediator, "c-on-site", "调解员与网格员到场，已隔离双方。").await.unwrap();
    let arrived_at = now_ms(&app);
    app.clock.advance(SignedDuration::from_mins(4));
    case.progress(&p.mediator, "c-feedback", "现场情绪已平稳，约定明日实地勘界。").await.unwrap();
    let held = case.hold(&p.mediator, "c-on-the-spot", "", "双方同意由村委会与国土所共同勘界。").await.unwrap();

    let file = case.file(&app, &p.dispatcher, held.stream_sequence).await;
    assert_eq!(
        steps(&file),
        [
            ("CaseRegistered", OFFICER, PartnerAgent),
            ("CaseDispatched", DISPATCHER, Dispatcher),
            ("CaseAccepted", LEAD, CommitteeLead),
            ("ArrivedOnSite", MEDIATOR, Mediator),
            ("ProgressReported", MEDIATOR, Mediator),
            ("SessionHeld", MEDIATOR, Mediator),
        ]
    );
    let summary = file.summary.clone().unwrap();
    assert_eq!(summary.channel, events::Channel::PoliceTransfer as i32);
    assert_eq!(summary.urgency, events::Urgency::Emergency as i32);
    assert_eq!(summary.risk_level, events::RiskLevel::High as i32);
    assert_eq!(summary.risk_signals, [events::RiskSignal::Violence as i32, events::RiskSignal::CivilToCriminal as i32]);
    assert_eq!(state(&file), events::CaseState::InMediation);
    let registered = last!(file, CaseRegistered);
    assert_eq!(
        (registered.source_partner_kind(), registered.source_partner_id.as_str()),
        (events::PartnerKind::Police, POLICE)
    );
    assert_eq!(file.timeline[0].actor.as_ref().unwrap().partner_id, POLICE);
    // Signed for within a minute, on site within five, first feedback within ten (seed 002).
    let at = |i: usize| file.timeline[i].occurred_at_unix_ms - registered_at;
    assert_eq!((at(2), at(3), at(4)), (40_000, 220_000, 460_000));
    assert_eq!(last!(file, ArrivedOnSite).arrived_at_unix_ms, arrived_at);
    app.finish().await;
}

#[tokio::test]
async fn partner_file_numbers_are_per_partner_and_a_partner_sends_only_its_own_files() {
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let transfer = |partner: &str| rpc::RegisterCaseRequest {
        meta: meta(&format!("transfer-{partner}")),
        channel: events::Channel::PoliceTransfer as i32,
        external_ref: "2026-0001".to_owned(),
        source_partner_kind: events::PartnerKind::Police as i32,
        source_partner_id: partner.to_owned(),
        ..hotline_order("unused")
    };
    let other_officer = app.token_for("officer-xu", "partner_agent", STREET, "shuangfu-police-station");
    let ours = desk.register(&p.officer, transfer(POLICE)).await.unwrap();
    // Another station's file with the same number is another dispute.
    let theirs = desk.register(&other_officer, transfer("shuangfu-police-station")).await.unwrap();
    assert_ne!(ours.case_id, theirs.case_id);
    assert!(!theirs.existing_case);
    // Sent again a month later under a new key: the same case.
    app.clock.advance(days(30));
    let again =
        desk.register(&p.officer, rpc::RegisterCaseRequest { meta: meta("resent"), ..transfer(POLICE) }).await.unwrap();
    assert_eq!((again.case_id.as_str(), again.existing_case), (ours.case_id.as_str(), true));

    let status = desk.register(&other_officer, transfer(POLICE)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "source_partner_id is not your institution");
    assert_eq!(app.stream_messages().await, 2);
    app.finish().await;
}

// ---------------------------------------------------------------------------------------------
// d. dissatisfied follow-up → 二次办理 → handled again → closed → satisfied

#[tokio::test]
async fn dissatisfied_follow_up_reopens_the_case_for_a_second_handling() {
    use events::Role::{CommitteeLead, Dispatcher, Hotline, Mediator};
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let case = desk.new_case(&p.hotline, hotline_order("CQ12345-20261124-0007")).await.signed_for(&p).await;
    case.hold(&p.mediator, "d-first-session", "", "楼上同意自行维修。").await.unwrap();
    case.close(&p.mediator, "d-first-close", "楼上承诺自行维修。").await.unwrap();
    let rated = case
        .follow_up(&p.hotline, "d-rating", events::FollowUpMethod::HotlineRating, events::Satisfaction::Dissatisfied)
        .await
        .unwrap();

    let reopened = case.file(&app, &p.lead, rated.stream_sequence).await;
    assert_eq!(state(&reopened), events::CaseState::Accepted, "二次办理: back with the same committee");
    let tail: Vec<(&str, u64)> =
        reopened.timeline[5..].iter().map(|t| (t.event_type.as_str(), t.stream_sequence)).collect();
    assert_eq!(
        tail,
        [("FollowUpRecorded", rated.stream_sequence), ("CaseReopened", rated.stream_sequence)],
        "the rating and the reopening are one commit"
    );
    assert_eq!(rated.version, 7);
    assert_eq!(last!(reopened, CaseReopened).reason, "dissatisfied at follow-up (二次办理)");

    app.clock.advance(days(1));
    case.schedule(&p.mediator, "d-second-schedule", app.clock.now() + days(1)).await.unwrap();
    app.clock.advance(days(1));
    case.hold(&p.mediator, "d-second-session", "S2", "请物业见证，楼上当场确定维修日期并赔偿。").await.unwrap();
    case.settle(&p.mediator, "d-settle").await.unwrap();
    case.close(&p.lead, "d-second-close", "二次办理：达成书面协议并履行。").await.unwrap();
    let satisfied = case
        .follow_up(&p.mediator, "d-visit", events::FollowUpMethod::Visit, events::Satisfaction::Satisfied)
        .await
        .unwrap();

    let file = case.file(&app, &p.lead, satisfied.stream_sequence).await;
    assert_eq!(
        steps(&file),
        [
            ("CaseRegistered", HOTLINE, Hotline),
            ("CaseDispatched", DISPATCHER, Dispatcher),
            ("CaseAccepted", LEAD, CommitteeLead),
            ("SessionHeld", MEDIATOR, Mediator),
            ("CaseClosed", MEDIATOR, Mediator),
            ("FollowUpRecorded", HOTLINE, Hotline),
            ("CaseReopened", HOTLINE, Hotline),
            ("SessionScheduled", MEDIATOR, Mediator),
            ("SessionHeld", MEDIATOR, Mediator),
            ("CaseSettled", MEDIATOR, Mediator),
            ("CaseClosed", LEAD, CommitteeLead),
            ("FollowUpRecorded", MEDIATOR, Mediator),
        ]
    );
    assert_eq!(state(&file), events::CaseState::Closed);
    assert_eq!(last!(file, SessionHeld).session_id, "S2", "sessions keep their numbers across reopening");
    let satisfactions: Vec<events::Satisfaction> = kinds(&file)
        .into_iter()
        .filter_map(|k| match k {
            Kind::FollowUpRecorded(f) => Some(f.satisfaction()),
            _ => None,
        })
        .collect();
    assert_eq!(satisfactions, [events::Satisfaction::Dissatisfied, events::Satisfaction::Satisfied]);
    app.finish().await;
}

// ---------------------------------------------------------------------------------------------
// e. 退单 and re-dispatch; a duplicate merged, after which it accepts nothing

#[tokio::test]
async fn misrouted_case_is_returned_and_redispatched_to_the_right_committee() {
    use events::Role::{CommitteeLead, Dispatcher, Hotline};
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let case = desk.new_case(&p.hotline, hotline_order("CQ12345-20261125-0003")).await;
    case.dispatch(&p.dispatcher, "e-misroute", events::Tier::Community, NEIGHBOUR_COMMITTEE, NEIGHBOUR_COMMUNITY)
        .await
        .unwrap();
    let reason = "纠纷发生地属艾坪山社区，非本社区辖区";
    let returned = case.return_case(&p.neighbour_lead, "e-return", reason).await.unwrap();
    // The neighbour's retry of its 退单 is answered, though the case is no longer theirs…
    let retried = case.return_case(&p.neighbour_lead, "e-return", reason).await.unwrap();
    assert_eq!((retried.replayed, retried.stream_sequence), (true, returned.stream_sequence));
    // …but it cannot do anything new with it.
    let denied = case.accept(&p.neighbour_lead, "e-neighbour-signs").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    case.dispatch(&p.dispatcher, "e-redispatch", events::Tier::Community, COMMITTEE, COMMUNITY).await.unwrap();
    let signed = case.accept(&p.lead, "e-sign-for").await.unwrap();

    let file = case.file(&app, &p.dispatcher, signed.stream_sequence).await;
    assert_eq!(
        steps(&file),
        [
            ("CaseRegistered", HOTLINE, Hotline),
            ("CaseDispatched", DISPATCHER, Dispatcher),
            ("CaseReturned", NEIGHBOUR_LEAD, CommitteeLead),
            ("CaseDispatched", DISPATCHER, Dispatcher),
            ("CaseAccepted", LEAD, CommitteeLead),
        ]
    );
    let returned = last!(file, CaseReturned);
    assert_eq!((returned.committee_id.as_str(), returned.reason.as_str()), (NEIGHBOUR_COMMITTEE, reason));
    assert_eq!(file.timeline[2].unit_code, NEIGHBOUR_COMMUNITY);
    assert_eq!(last!(file, CaseAccepted).committee_id, COMMITTEE);
    let summary = file.summary.clone().unwrap();
    assert_eq!((summary.committee_id.as_str(), summary.committee_unit_code.as_str()), (COMMITTEE, COMMUNITY));
    assert_eq!(state(&file), events::CaseState::Accepted);
    app.finish().await;
}

#[tokio::test]
async fn duplicate_is_merged_and_the_merged_case_then_refuses_everything() {
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let original = desk.new_case(&p.hotline, hotline_order("CQ12345-20261126-0011")).await.signed_for(&p).await;
    // The same neighbour calls 12345 again the next day: a second work order, the same dispute.
    let duplicate = desk.new_case(&p.hotline, hotline_order("CQ12345-20261127-0042")).await;
    let merged = duplicate.merge_into(&p.dispatcher, "e-merge", &original.id).await.unwrap();

    let file = duplicate.file(&app, &p.dispatcher, merged.stream_sequence).await;
    assert_eq!(steps(&file)[1], ("CaseMerged", DISPATCHER, Role::Dispatcher));
    assert_eq!(state(&file), events::CaseState::Merged);
    let into = last!(file, CaseMerged);
    assert_eq!((into.into_case_id.as_str(), into.reason.as_str()), (original.id.as_str(), "同一纠纷重复来电"));

    let before = app.stream_messages().await;
    let refusals = [
        duplicate.dispatch_here(&p.dispatcher, "after-1", events::RiskLevel::Low).await,
        duplicate.progress(&p.dispatcher, "after-2", "补充材料").await,
        duplicate.withdraw(&p.dispatcher, "after-3").await,
        duplicate.merge_into(&p.dispatcher, "after-4", &original.id).await,
        duplicate.reopen(&p.dispatcher, "after-5").await,
        duplicate
            .follow_up(&p.hotline, "after-6", events::FollowUpMethod::Phone, events::Satisfaction::Satisfied)
            .await,
    ];
    for refused in refusals {
        let status = refused.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(status.message(), "the case was merged into another case and accepts nothing more");
    }
    // Nothing can be merged into it either: the dispute lives on in the original.
    let third = desk.new_case(&p.hotline, hotline_order("CQ12345-20261128-0001")).await;
    let status = third.merge_into(&p.dispatcher, "into-merged", &duplicate.id).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains(&original.id), "{status:?}");
    assert_eq!(app.stream_messages().await, before + 1, "only the third case's registration");

    // The original turns out to duplicate yet another order; the first merge's retry still answers.
    let fourth = desk.new_case(&p.hotline, hotline_order("CQ12345-20261129-0001")).await;
    original.merge_into(&p.dispatcher, "e-merge-original", &fourth.id).await.unwrap();
    let retried = duplicate.merge_into(&p.dispatcher, "e-merge", &original.id).await.unwrap();
    assert_eq!((retried.replayed, retried.stream_sequence), (true, merged.stream_sequence));
    app.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Retries: every mutating RPC, twice with the same key

/// Sends `$call` twice; the second must be the first's result, replayed, with nothing appended.
macro_rules! twice {
    ($app:expr, $covered:expr, $rpc:literal, $call:expr) => {{
        let before = $app.stream_messages().await;
        let first = $call.await.expect(concat!($rpc, " is legal at this point"));
        let again = $call.await.expect(concat!($rpc, " retried"));
        assert!(!first.replayed && again.replayed, "{}: {first:?} then {again:?}", $rpc);
        assert_eq!(
            (again.case_id.as_str(), again.version, again.stream_sequence),
            (first.case_id.as_str(), first.version, first.stream_sequence),
            "{} retried",
            $rpc
        );
        assert_eq!($app.stream_messages().await, before + 1, "{}: one commit for two calls", $rpc);
        $covered.push($rpc);
        first
    }};
}

/// The mutating RPCs of the API: every method that answers with a `CommandResult`.
fn mutating_rpcs() -> std::collections::BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(fengqiao_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    set.file
        .iter()
        .flat_map(|f| &f.service)
        .flat_map(|s| &s.method)
        .filter(|m| m.output_type() == ".fengqiao.api.v1.CommandResult")
        .map(|m| m.name().to_owned())
        .collect()
}

#[tokio::test]
async fn every_mutating_rpc_retried_with_its_key_returns_the_first_result_and_appends_nothing() {
    use events::FollowUpMethod::Phone;
    use events::PartnerKind::{Court, LawFirm};
    use events::Satisfaction::Satisfied;
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let mut covered: Vec<&str> = Vec::new();
    let order = hotline_order("CQ12345-20261201-0100");
    let registered = twice!(app, covered, "RegisterCase", desk.register(&p.hotline, order.clone()));
    let c = desk.case(&registered.case_id);

    twice!(app, covered, "DispatchCase", c.dispatch_here(&p.dispatcher, "k-dispatch", events::RiskLevel::Medium));
    twice!(app, covered, "ReturnCase", c.return_case(&p.lead, "k-return", "需补充当事人联系方式"));
    c.dispatch_here(&p.dispatcher, "k-redispatch", events::RiskLevel::Medium).await.unwrap();
    twice!(app, covered, "RecordArrival", c.arrive(&p.mediator, "k-arrive", "已到现场"));
    twice!(app, covered, "AcceptCase", c.accept(&p.lead, "k-accept"));
    twice!(app, covered, "AssignMediators", c.assign(&p.lead, "k-assign", &[MEDIATOR]));
    twice!(app, covered, "ScheduleSession", c.schedule(&p.mediator, "k-schedule", app.clock.now() + days(1)));
    twice!(app, covered, "RecordSession", c.hold(&p.mediator, "k-session", "S1", "首次调解，双方陈述意见。"));
    twice!(app, covered, "ReportProgress", c.progress(&p.mediator, "k-progress", "等待鉴定"));
    twice!(app, covered, "PauseClock", c.pause(&p.lead, "k-pause", "等待房屋安全鉴定"));
    twice!(app, covered, "ResumeClock", c.resume(&p.lead, "k-resume"));
    twice!(app, covered, "GrantExtension", c.extend(&p.lead, "k-extend", 15));
    twice!(app, covered, "ReferCase", c.refer(&p.mediator, "k-refer-court", Court, COURT, "江津区人民法院"));
    twice!(app, covered, "AcceptReferral", c.accept_referral(&p.clerk, "k-court-accepts", "R1"));
    twice!(app, covered, "ReturnReferral", c.return_referral(&p.clerk, "k-court-returns", "R1"));
    c.refer(&p.mediator, "k-refer-lawyer", LawFirm, LAW_FIRM, "正大律师事务所").await.unwrap();
    twice!(app, covered, "DeclineReferral", c.decline_referral(&p.lawyer, "k-lawyer-declines", "R2", "利益冲突"));
    c.refer(&p.mediator, "k-refer-lawyer-again", LawFirm, LAW_FIRM, "正大律师事务所").await.unwrap();
    c.accept_referral(&p.lawyer, "k-lawyer-accepts", "R3").await.unwrap();
    twice!(
        app,
        covered,
        "ConcludeReferral",
        c.conclude_referral(&p.lawyer, "k-lawyer-concludes", "R3", "提供法律意见")
    );
    twice!(app, covered, "RecordSettlement", c.settle(&p.mediator, "k-settle"));
    twice!(app, covered, "RecordPerformance", c.perform(&p.mediator, "k-perform"));
    twice!(app, covered, "RequestJudicialConfirmation", c.request_confirmation(&p.mediator, "k-apply"));
    twice!(app, covered, "AcceptJudicialConfirmation", c.accept_confirmation(&p.clerk, "k-court-accepts-jc"));
    twice!(app, covered, "RuleJudicialConfirmation", c.rule_confirmation(&p.clerk, "k-court-rules"));
    let corrections = rpc::correction_service_client::CorrectionServiceClient::new(app.channel().await);
    let correction = rpc::CorrectPartyContactRequest {
        meta: meta("k-correct"),
        case_id: registered.case_id.clone(),
        party_index: 0,
        phone: "13900001111".to_owned(),
        resident_id: String::new(),
        reason: "当事人更换手机号码".to_owned(),
    };
    twice!(app, covered, "CorrectPartyContact", async {
        answer(corrections.clone().correct_party_contact(req(&p.dispatcher, correction.clone())).await)
    });
    twice!(app, covered, "CloseCase", c.close(&p.mediator, "k-close", "已化解"));
    twice!(app, covered, "RecordFollowUp", c.follow_up(&p.mediator, "k-follow-up", Phone, Satisfied));
    twice!(app, covered, "ReopenCase", c.reopen(&p.lead, "k-reopen"));
    twice!(app, covered, "RecordMediationFailure", c.fail(&p.mediator, "k-fail"));
    twice!(app, covered, "EscalateCase", c.escalate(&p.lead, "k-escalate"));
    twice!(app, covered, "WithdrawCase", c.withdraw(&p.dispatcher, "k-withdraw"));
    let other = desk.new_case(&p.hotline, hotline_order("CQ12345-20261201-0101")).await;
    let last = twice!(app, covered, "MergeCase", c.merge_into(&p.dispatcher, "k-merge", &other.id));

    let covered: std::collections::BTreeSet<String> = covered.iter().map(|r| (*r).to_owned()).collect();
    assert_eq!(covered, mutating_rpcs(), "every mutating RPC is retried here");
    let file = c.file(&app, &p.dispatcher, last.stream_sequence).await;
    assert_eq!(file.timeline.len() as u64, last.version);
    // One event per commit here, plus the other case's registration: one message per first call.
    assert_eq!(app.stream_messages().await, last.version + 1);
    app.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Errors of lifecycle RPCs, as a client sees them; none of them appends anything.

#[tokio::test]
async fn an_illegal_transition_is_failed_precondition_with_a_reason_a_mediator_understands() {
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let case = desk.new_case(&p.hotline, hotline_order("CQ12345-20261202-0001")).await;
    let before = app.stream_messages().await;

    let status = case.accept(&p.lead, "too-early").await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "cannot sign for the case: the case is registered and awaiting dispatch");

    let case = case.signed_for(&p).await;
    let before_refusals = app.stream_messages().await;
    let unsigned = events::Agreement {
        signed_by: vec!["张三".to_owned(), MEDIATOR_NAME.to_owned()],
        ..agreement(&["张三", "李四"])
    };
    let status = case.settle_with(&p.mediator, "unsigned", unsigned).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::FailedPrecondition, "the agreement is not effective: 李四 has not signed")
    );
    let status = case.request_confirmation(&p.mediator, "not-settled").await.unwrap_err();
    assert_eq!(status.message(), "judicial confirmation needs a settled case with an effective mediation agreement");
    let status = case
        .follow_up(&p.hotline, "not-closed", events::FollowUpMethod::Phone, events::Satisfaction::Satisfied)
        .await
        .unwrap_err();
    assert_eq!(status.message(), "cannot record a follow-up (回访): the case is signed for by the committee");
    assert_eq!(app.stream_messages().await, before_refusals);
    assert_eq!(before_refusals, before + 2);

    // With one stream per test, the message count is the last stream sequence.
    let file = case.file(&app, &p.lead, before_refusals).await;
    assert_eq!(file.timeline.len(), 3, "refusals are not in the case file");
    app.finish().await;
}

#[tokio::test]
async fn an_unknown_case_is_not_found() {
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let nobody = desk.case("0192f7c4-0000-7000-8000-000000000000");
    let statuses = [
        nobody.accept(&p.lead, "k1").await.unwrap_err(),
        nobody.close(&p.mediator, "k2", "已化解").await.unwrap_err(),
        nobody.reopen(&p.dispatcher, "k3").await.unwrap_err(),
        nobody.conclude_referral(&p.lawyer, "k4", "R1", "结案").await.unwrap_err(),
    ];
    for status in statuses {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    // A duplicate cannot be merged into a case that does not exist.
    let duplicate = desk.new_case(&p.hotline, hotline_order("CQ12345-20261203-0001")).await;
    let status = duplicate.merge_into(&p.dispatcher, "merge", &nobody.id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().starts_with("into_case_id"), "{status:?}");
    assert_eq!(app.stream_messages().await, 1);
    app.finish().await;
}

/// Expects INVALID_ARGUMENT naming `field`.
fn assert_invalid(reply: Reply, field: &str) {
    let status = reply.expect_err("must be rejected");
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(status.message().starts_with(field), "expected field {field} in {:?}", status.message());
}

#[tokio::test]
async fn a_bad_field_is_invalid_argument_naming_it() {
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let case = desk.new_case(&p.hotline, hotline_order("CQ12345-20261204-0001")).await.signed_for(&p).await;
    let before = app.stream_messages().await;
    let mut work = desk.work.clone();

    assert_invalid(case.pause(&p.lead, "empty-reason", "  ").await, "reason");
    assert_invalid(case.fail(&p.mediator, "").await, "meta.idempotency_key");
    let odd_outcome = rpc::CloseCaseRequest {
        meta: meta("odd-outcome"),
        case_id: case.id.clone(),
        outcome: 42,
        summary: "已化解".to_owned(),
    };
    assert_invalid(answer(work.close_case(req(&p.mediator, odd_outcome)).await), "outcome");
    let no_kind = rpc::ReferCaseRequest {
        meta: meta("no-kind"),
        case_id: case.id.clone(),
        partner_id: COURT.to_owned(),
        partner_name: "江津区人民法院".to_owned(),
        reason: "移交".to_owned(),
        ..Default::default()
    };
    assert_invalid(answer(work.refer_case(req(&p.mediator, no_kind)).await), "partner_kind");
    let unsigned_by_nobody = events::Agreement { mediator_name: String::new(), ..agreement(&["张三", "李四"]) };
    assert_invalid(case.settle_with(&p.mediator, "no-mediator", unsigned_by_nobody).await, "agreement.mediator_name");
    assert_invalid(desk.case("case-42").accept(&p.lead, "bad-id").await, "case_id");
    let no_meta = rpc::AcceptCaseRequest { meta: None, case_id: case.id.clone() };
    assert_invalid(answer(work.accept_case(req(&p.lead, no_meta)).await), "meta");
    // A used key sent with another command is a client mistake, not a retry.
    assert_invalid(case.hold(&p.mediator, "sign-for", "", "另一个命令").await, "meta.idempotency_key");

    assert_eq!(app.stream_messages().await, before);
    app.finish().await;
}

#[tokio::test]
async fn a_stale_expected_version_is_aborted() {
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let case = desk.new_case(&p.hotline, hotline_order("CQ12345-20261205-0001")).await.signed_for(&p).await;
    let stale = rpc::ReportProgressRequest {
        meta: meta_at("seen-v2", 2),
        case_id: case.id.clone(),
        note: "已联系双方".to_owned(),
    };
    let status = desk.work.clone().report_progress(req(&p.mediator, stale)).await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(status.message().contains("version 3"), "{status:?}");
    let current = rpc::ReportProgressRequest {
        meta: meta_at("seen-v3", 3),
        case_id: case.id.clone(),
        note: "已联系双方".to_owned(),
    };
    let done = desk.work.clone().report_progress(req(&p.mediator, current)).await.unwrap().into_inner();
    assert_eq!(done.version, 4);
    app.finish().await;
}

#[tokio::test]
async fn a_role_or_unit_the_matrix_does_not_allow_is_permission_denied() {
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let case = desk.new_case(&p.hotline, hotline_order("CQ12345-20261206-0001")).await;
    let before = app.stream_messages().await;
    let denied = |reply: Reply| {
        let status = reply.expect_err("must be denied");
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        status.message().to_owned()
    };

    // Roles the matrix does not list for the RPC.
    let grid_dispatch = case.dispatch_here(&p.grid_worker, "grid-dispatches", events::RiskLevel::Low).await;
    assert_eq!(denied(grid_dispatch), "role ROLE_GRID_WORKER may not call DispatchCase");
    assert_eq!(
        denied(case.withdraw(&p.hotline, "hotline-withdraws").await),
        "role ROLE_HOTLINE may not call WithdrawCase"
    );
    let case = case.signed_for(&p).await;
    assert_eq!(
        denied(case.assign(&p.mediator, "self-assign", &[MEDIATOR]).await),
        "role ROLE_MEDIATOR may not call AssignMediators"
    );
    assert_eq!(
        denied(case.extend(&p.mediator, "self-extend", 10).await),
        "role ROLE_MEDIATOR may not call GrantExtension"
    );
    // A committee outside the case's unit, and a dispatch to a committee outside the caller's.
    let away = case.hold(&p.neighbour_lead, "not-ours", "", "越界记录").await;
    assert_eq!(denied(away), "the case is outside your unit");
    let other = desk.new_case(&p.hotline, hotline_order("CQ12345-20261206-0002")).await;
    let far = other.dispatch(&p.dispatcher, "far", events::Tier::Community, "far-committee", OTHER_COMMUNITY).await;
    assert_eq!(denied(far), "committee_unit_code is outside your unit");
    assert_eq!(app.stream_messages().await, before + 2 + 1);
    app.finish().await;
}

#[tokio::test]
async fn a_partner_agent_cannot_act_on_another_institutions_referral_or_confirmation() {
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let case = desk.new_case(&p.hotline, hotline_order("CQ12345-20261207-0001")).await.signed_for(&p).await;
    case.refer(&p.mediator, "to-court", events::PartnerKind::Court, COURT, "江津区人民法院").await.unwrap();
    let before = app.stream_messages().await;

    // The law firm (same street) tries to answer the court's referral.
    for reply in [
        case.accept_referral(&p.lawyer, "grab", "R1").await,
        case.decline_referral(&p.lawyer, "refuse", "R1", "不受理").await,
        case.return_referral(&p.lawyer, "send-back", "R1").await,
    ] {
        let status = reply.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(status.message(), "the referral is not addressed to your institution");
    }
    // A partner agent of a court the application was not made to cannot accept it either.
    case.return_referral(&p.clerk, "court-returns", "R1").await.unwrap();
    case.settle(&p.mediator, "settle").await.unwrap();
    case.request_confirmation(&p.mediator, "apply").await.unwrap();
    let other_court = app.token_for("clerk-qian", "partner_agent", DISTRICT, "yongchuan-court");
    let status = case.accept_confirmation(&other_court, "not-ours").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "the judicial confirmation application was not made to your court");
    let accepted = case.accept_confirmation(&p.clerk, "ours").await.unwrap();
    assert_eq!(app.stream_messages().await, before + 4, "only the court's own answers");

    let file = case.file(&app, &p.lead, accepted.stream_sequence).await;
    assert_eq!(file.timeline.last().unwrap().actor.as_ref().unwrap().partner_id, COURT);
    app.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Walk-ins: a committee takes on a dispute brought to its own door.

#[tokio::test]
async fn committee_registers_a_walk_in_and_dispatches_it_to_itself() {
    use events::Role::{CommitteeLead, Mediator};
    let app = TestApp::spawn().await;
    let p = people(&app);
    let desk = Desk::open(&app).await;
    let walk_in = |key: &str| rpc::RegisterCaseRequest { channel: events::Channel::WalkIn as i32, ..grid_report(key) };
    let case = desk.new_case(&p.mediator, walk_in("f-walk-in")).await;
    case.dispatch_here(&p.lead, "f-take-on", events::RiskLevel::Low).await.unwrap();
    case.accept(&p.lead, "f-sign-for").await.unwrap();
    case.hold(&p.mediator, "f-session", "", "当场调解。").await.unwrap();
    case.settle(&p.mediator, "f-settle").await.unwrap();
    let closed = case.close(&p.mediator, "f-close", "当场达成协议。").await.unwrap();
    let extended = desk.new_case(&p.mediator, walk_in("f-second-walk-in")).await;
    extended.dispatch_here(&p.lead, "f2-take-on", events::RiskLevel::Low).await.unwrap();
    extended.accept(&p.lead, "f2-sign-for").await.unwrap();
    let granted = extended.extend(&p.lead, "f2-extend", 15).await.unwrap();

    let file = case.file(&app, &p.lead, closed.stream_sequence).await;
    assert_eq!(
        steps(&file),
        [
            ("CaseRegistered", MEDIATOR, Mediator),
            ("CaseDispatched", LEAD, CommitteeLead),
            ("CaseAccepted", LEAD, CommitteeLead),
            ("SessionHeld", MEDIATOR, Mediator),
            ("CaseSettled", MEDIATOR, Mediator),
            ("CaseClosed", MEDIATOR, Mediator),
        ]
    );
    // The extension names the director who approved it.
    let file = extended.file(&app, &p.lead, granted.stream_sequence).await;
    let extension = last!(file, ExtensionGranted);
    assert_eq!((extension.approved_by.as_str(), extension.days), (LEAD, 15));
    app.finish().await;
}

//! `fengqiao demo`: registers disputes modelled on the field reports through the public gRPC API,
//! dispatches them to a community committee, and prints that committee's queue.

use fengqiao::auth;
use fengqiao::settings::Settings;
use fengqiao_domain::event::pb;
use fengqiao_proto::api;
use tonic::Request;
use tonic::metadata::MetadataValue;

const STREET: &str = "500116001000";
const COMMUNITY: &str = "500116001002";

struct Demo {
    channel: pb::Channel,
    reference: &'static str,
    category: &'static str,
    description: &'static str,
    address: &'static str,
    urgency: pb::Urgency,
    parties: [(&'static str, &'static str); 2],
}

const CASES: &[Demo] = &[
    Demo {
        channel: pb::Channel::Hotline12345,
        reference: "GD-DEMO-0001",
        category: "邻里纠纷",
        description: "楼上住户卫生间漏水，渗入楼下卧室，双方多次协商未果。",
        address: "重庆市江津区几江街道艾坪山社区3栋",
        urgency: pb::Urgency::Normal,
        parties: [("张三", "13812345678"), ("李四", "13987654321")],
    },
    Demo {
        channel: pb::Channel::GridReport,
        reference: "",
        category: "物业纠纷",
        description: "小区停车位分配引发业主与物业争执，网格员巡查发现。",
        address: "重庆市江津区几江街道艾坪山社区7栋",
        urgency: pb::Urgency::Normal,
        parties: [("王五", "023-47521234"), ("某物业公司", "")],
    },
    Demo {
        channel: pb::Channel::PoliceTransfer,
        reference: "JD-DEMO-0042",
        category: "家庭纠纷",
        description: "夫妻因赡养老人问题争吵，派出所出警后移交调解（警调）。",
        address: "重庆市江津区几江街道艾坪山社区12栋",
        urgency: pb::Urgency::Emergency,
        parties: [("赵六", "13611112222"), ("钱七", "13733334444")],
    },
];

fn authorised<T>(token: &str, message: T) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}"))?);
    Ok(request)
}

fn meta(key: String) -> Option<api::CommandMeta> {
    Some(api::CommandMeta { idempotency_key: key, ..Default::default() })
}

/// Runs the demo against the server at `addr`.
///
/// # Errors
/// The server is unreachable or refuses a command.
pub async fn run(settings: &Settings, addr: &str) -> anyhow::Result<()> {
    let token = |role: &str, unit: &str, partner: &str| {
        auth::mint(&settings.auth, &auth::claims(&settings.auth, &format!("demo-{role}"), role, unit, partner, 600))
    };
    let dispatcher = token("dispatcher", STREET, "")?;
    let lead = token("committee_lead", COMMUNITY, "")?;
    let channel = tonic::transport::Endpoint::from_shared(addr.to_owned())?.connect().await?;
    let mut intake = api::intake_service_client::IntakeServiceClient::new(channel.clone());
    let mut work = api::case_work_service_client::CaseWorkServiceClient::new(channel.clone());
    let mut query = api::query_service_client::QueryServiceClient::new(channel);
    let mut last = 0;
    for (i, d) in CASES.iter().enumerate() {
        let parties = d
            .parties
            .iter()
            .enumerate()
            .map(|(n, (name, phone))| pb::Party {
                name: (*name).to_owned(),
                role: if n == 0 { pb::PartyRole::Applicant } else { pb::PartyRole::Respondent } as i32,
                phone: (*phone).to_owned(),
                resident_id: String::new(),
            })
            .collect();
        let inbound = d.channel == pb::Channel::PoliceTransfer;
        let registered = intake
            .register_case(authorised(
                &dispatcher,
                api::RegisterCaseRequest {
                    meta: meta(format!("demo-register-{i}")),
                    channel: d.channel as i32,
                    external_ref: d.reference.to_owned(),
                    parties,
                    category: d.category.to_owned(),
                    description: d.description.to_owned(),
                    unit_code: COMMUNITY.to_owned(),
                    address: d.address.to_owned(),
                    urgency: d.urgency as i32,
                    risk_signals: if inbound { vec![pb::RiskSignal::Violence as i32] } else { vec![] },
                    source_partner_kind: if inbound { pb::PartnerKind::Police as i32 } else { 0 },
                    source_partner_id: if inbound { "jiangjin-jijiang-police".to_owned() } else { String::new() },
                    ..Default::default()
                },
            )?)
            .await?
            .into_inner();
        let dispatched = work
            .dispatch_case(authorised(
                &dispatcher,
                api::DispatchCaseRequest {
                    meta: meta(format!("demo-dispatch-{i}")),
                    case_id: registered.case_id.clone(),
                    tier: pb::Tier::Community as i32,
                    committee_id: "aipingshan-community-committee".to_owned(),
                    committee_unit_code: COMMUNITY.to_owned(),
                    risk_level: if inbound { pb::RiskLevel::High } else { pb::RiskLevel::Low } as i32,
                    ..Default::default()
                },
            )?)
            .await;
        let sequence = match dispatched {
            Ok(r) => r.into_inner().stream_sequence,
            // Running the demo twice: the case is already dispatched, which is fine.
            Err(s) if s.code() == tonic::Code::FailedPrecondition => registered.stream_sequence,
            Err(s) => return Err(s.into()),
        };
        last = last.max(sequence);
        println!(
            "{} case {} ({}){}",
            if registered.existing_case || registered.replayed { "found" } else { "registered" },
            registered.case_id,
            d.category,
            if d.reference.is_empty() { String::new() } else { format!(", reference {}", d.reference) },
        );
    }
    let queue = query
        .list_queue(authorised(
            &lead,
            api::ListQueueRequest { unit_code: COMMUNITY.to_owned(), min_sequence: Some(last), ..Default::default() },
        )?)
        .await?
        .into_inner();
    println!("\nqueue of unit {COMMUNITY} ({} cases):", queue.cases.len());
    for c in queue.cases {
        let state = pb::CaseState::try_from(c.state).map_or("?", |s| s.as_str_name());
        let urgency = pb::Urgency::try_from(c.urgency).map_or("?", |u| u.as_str_name());
        println!("  {}  {:<24} {:<18} {}  {}", c.case_id, state, urgency, c.category, c.committee_id);
    }
    Ok(())
}

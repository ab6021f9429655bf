//! Personal data, end to end: who sees parties in full and who sees them masked on `GetCase`
//! (summary and timeline) and `ListQueue`, what part of the timeline a partner sees, and a scan
//! of everything a full journey logs, at the most verbose level, for the parties' phone and ID
//! numbers.
//!
//! This binary installs a global subscriber writing every log line of the process into a buffer
//! (the service's tasks are spawned, so a scoped subscriber would miss them); each test runs in
//! its own process under nextest.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use fengqiao_tests::*;
use tonic::Code;

/// Everything logged in this process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

/// Installs the service's own log configuration at `trace` for everything, into a buffer.
fn capture_logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::util::SubscriberInitExt as _;
        let logs = Captured::default();
        let writer = logs.clone();
        fengqiao::telemetry::subscriber("trace", true, move || writer.clone())
            .try_init()
            .expect("the only global subscriber");
        logs
    })
    .clone()
}

const COURT: &str = "jiangjin-court";
const PHONE: &str = "13812345678";
const LANDLINE: &str = "47521234";
const RESIDENT_ID: &str = "11010519491231002X";

/// A case taken from registration through a court referral (accepted, then returned) to a signed
/// settlement and closure. Returns the case id, and the sequences after the referral was
/// accepted and after closure.
async fn journey(app: &TestApp) -> (String, u64, u64) {
    let hotline = app.token("hotline", COMMUNITY);
    let dispatcher = app.token("dispatcher", STREET);
    let lead = app.token_in_committee("committee_lead", COMMUNITY, COMMITTEE);
    let mediator = app.token_in_committee("mediator", COMMUNITY, COMMITTEE);
    let court = app.token_for("court-clerk", "partner_agent", DISTRICT, COURT);
    let mut order = hotline_order("GD-PRIV-1");
    order.description = format!("张三（电话{PHONE}）反映楼上卫生间漏水，身份证{RESIDENT_ID}。");
    let reg = app.intake().await.register_case(req(&hotline, order)).await.expect("register").into_inner();
    let case_id = reg.case_id.clone();
    let mut work = app.work().await;
    work.dispatch_case(req(
        &dispatcher,
        rpc::DispatchCaseRequest {
            meta: meta("dispatch"),
            case_id: case_id.clone(),
            tier: events::Tier::Community as i32,
            committee_id: COMMITTEE.to_owned(),
            committee_unit_code: COMMUNITY.to_owned(),
            ..Default::default()
        },
    ))
    .await
    .expect("dispatch");
    work.accept_case(req(&lead, rpc::AcceptCaseRequest { meta: meta("accept"), case_id: case_id.clone() }))
        .await
        .expect("accept");
    work.assign_mediators(req(
        &lead,
        rpc::AssignMediatorsRequest {
            meta: meta("assign"),
            case_id: case_id.clone(),
            mediator_ids: vec!["m-wang".to_owned()],
        },
    ))
    .await
    .expect("assign");
    work.record_session(req(
        &mediator,
        rpc::RecordSessionRequest {
            meta: meta("session"),
            case_id: case_id.clone(),
            attendees: vec!["张三".to_owned(), "李四".to_owned(), "王调解".to_owned()],
            record: format!("双方到场。张三称可拨打{PHONE}联系。"),
            ..Default::default()
        },
    ))
    .await
    .expect("session");
    work.refer_case(req(
        &mediator,
        rpc::ReferCaseRequest {
            meta: meta("refer"),
            case_id: case_id.clone(),
            partner_kind: events::PartnerKind::Court as i32,
            partner_id: COURT.to_owned(),
            partner_name: "江津区人民法院".to_owned(),
            reason: "涉及赔偿金额认定".to_owned(),
        },
    ))
    .await
    .expect("refer");
    let mut linkage = app.linkage().await;
    let accepted = linkage
        .accept_referral(req(
            &court,
            rpc::AcceptReferralRequest {
                meta: meta("court-accepts"),
                case_id: case_id.clone(),
                referral_id: "R1".to_owned(),
            },
        ))
        .await
        .expect("accept referral")
        .into_inner();
    linkage
        .return_referral(req(
            &court,
            rpc::ReturnReferralRequest {
                meta: meta("court-returns"),
                case_id: case_id.clone(),
                referral_id: "R1".to_owned(),
                reason: "适宜继续调解".to_owned(),
            },
        ))
        .await
        .expect("return referral");
    work.record_settlement(req(
        &mediator,
        rpc::RecordSettlementRequest {
            meta: meta("settle"),
            case_id: case_id.clone(),
            agreement: Some(signed_agreement()),
        },
    ))
    .await
    .expect("settle");
    let closed = work
        .close_case(req(
            &mediator,
            rpc::CloseCaseRequest {
                meta: meta("close"),
                case_id: case_id.clone(),
                outcome: events::ClosureOutcome::Resolved as i32,
                summary: "已履行。".to_owned(),
            },
        ))
        .await
        .expect("close")
        .into_inner();
    (case_id, accepted.stream_sequence, closed.stream_sequence)
}

fn registered_parties(case: &rpc::GetCaseResponse) -> Vec<events::Party> {
    case.timeline
        .iter()
        .find_map(|t| match t.event.as_ref().and_then(|e| e.kind.as_ref()) {
            Some(events::event::Kind::CaseRegistered(r)) => Some(r.parties.clone()),
            _ => None,
        })
        .expect("the timeline shows the registration")
}

fn agreement(case: &rpc::GetCaseResponse) -> events::Agreement {
    case.timeline
        .iter()
        .find_map(|t| match t.event.as_ref().and_then(|e| e.kind.as_ref()) {
            Some(events::event::Kind::CaseSettled(s)) => s.agreement.clone(),
            _ => None,
        })
        .expect("the timeline shows the settlement")
}

/// Asserts that `case` shows the parties in full.
fn assert_full(who: &str, case: &rpc::GetCaseResponse) {
    let summary = case.summary.as_ref().expect("summary");
    assert_eq!(summary.parties[0].name, "张三", "{who}");
    assert_eq!(summary.parties[0].phone, PHONE, "{who}");
    assert_eq!(summary.parties[0].resident_id, RESIDENT_ID, "{who}");
    assert_eq!(summary.parties[1].phone, "02347521234", "{who}");
    assert!(summary.address.ends_with("3栋"), "{who}: {}", summary.address);
    assert!(summary.description.contains(PHONE), "{who}");
    assert_eq!(registered_parties(case)[0].phone, PHONE, "{who}");
}

/// Asserts that nothing in `case` shows a party's name, phone or ID number in full.
fn assert_masked(who: &str, case: &rpc::GetCaseResponse) {
    let summary = case.summary.as_ref().expect("summary");
    let parties = [summary.parties.clone(), registered_parties(case)];
    for p in parties.iter().flatten() {
        assert!(["张*", "李*"].contains(&p.name.as_str()), "{who}: {}", p.name);
        assert!(["138****5678", "023****1234"].contains(&p.phone.as_str()), "{who}: {}", p.phone);
        assert!(["110105********002X", ""].contains(&p.resident_id.as_str()), "{who}: {}", p.resident_id);
    }
    assert_eq!(summary.address, "重庆市江津区几江街道****", "{who}");
    let everything = format!("{case:?}");
    for secret in [PHONE, LANDLINE, RESIDENT_ID, "张三", "李四", "3栋"] {
        assert!(!everything.contains(secret), "{who} sees {secret}");
    }
}

#[tokio::test]
async fn get_case_masks_personal_data_for_roles_that_do_not_need_it() {
    capture_logs();
    let app = TestApp::spawn().await;
    let (case_id, _, closed) = journey(&app).await;

    let full = [
        ("dispatcher of the street", app.token("dispatcher", STREET)),
        ("lead of the owning committee", app.token_in_committee("committee_lead", COMMUNITY, COMMITTEE)),
        ("mediator of the owning committee", app.token_in_committee("mediator", COMMUNITY, COMMITTEE)),
        ("mediator without committee claim", app.token("mediator", COMMUNITY)),
        ("grid worker of the community", app.token("grid_worker", COMMUNITY)),
    ];
    for (who, token) in &full {
        assert_full(who, &app.case(token, &case_id, closed).await);
    }
    let masked = [
        ("supervisor", app.token("supervisor", DISTRICT)),
        ("admin", app.token("admin", DISTRICT)),
        ("hotline", app.token("hotline", COMMUNITY)),
        ("mediator of another committee", app.token_in_committee("mediator", COMMUNITY, "traffic-committee")),
        ("court after returning the referral", app.token_for("court-clerk", "partner_agent", DISTRICT, COURT)),
    ];
    for (who, token) in &masked {
        assert_masked(who, &app.case(token, &case_id, closed).await);
    }

    // The agreement: party names and their signatures masked, the mediator's signature not.
    let supervisor = app.case(&masked[0].1, &case_id, closed).await;
    let a = agreement(&supervisor);
    assert_eq!(a.party_names, ["张*", "李*"]);
    assert_eq!(a.signed_by, ["张*", "李*", "王调解"]);
    let lead = app.case(&full[1].1, &case_id, closed).await;
    assert_eq!(agreement(&lead).signed_by, ["张三", "李四", "王调解"]);
    app.finish().await;
}

#[tokio::test]
async fn partner_sees_parties_while_holding_the_referral_and_only_what_it_needs() {
    capture_logs();
    let app = TestApp::spawn().await;
    let (case_id, accepted, closed) = journey(&app).await;
    let court = app.token_for("court-clerk", "partner_agent", DISTRICT, COURT);

    // Replayed to the moment the court held the referral: the read model is past that, so read
    // the case file as it is now and check the rule on its timeline instead.
    let now = app.case(&court, &case_id, closed).await;
    assert!(accepted < closed);
    let types = event_types(&now);
    assert!(types.contains(&"CaseRegistered".to_owned()) && types.contains(&"ReferralMade".to_owned()), "{types:?}");
    for hidden in ["SessionHeld", "MediatorsAssigned", "CaseDispatched", "CaseAccepted"] {
        assert!(!types.contains(&hidden.to_owned()), "a partner sees {hidden}: {types:?}");
    }
    assert!(types.contains(&"CaseSettled".to_owned()) && types.contains(&"CaseClosed".to_owned()), "{types:?}");
    assert_masked("court after the referral", &now);

    // A second referral, still open: the court sees the parties in full.
    let mediator = app.token_in_committee("mediator", COMMUNITY, COMMITTEE);
    app.follow_up()
        .await
        .reopen_case(req(
            &app.token_in_committee("committee_lead", COMMUNITY, COMMITTEE),
            rpc::ReopenCaseRequest {
                meta: meta("reopen"), case_id: case_id.clone(), reason: "当事人反悔".to_owned()
            },
        ))
        .await
        .expect("reopen");
    let referred = app
        .work()
        .await
        .refer_case(req(
            &mediator,
            rpc::ReferCaseRequest {
                meta: meta("refer-again"),
                case_id: case_id.clone(),
                partner_kind: events::PartnerKind::Court as i32,
                partner_id: COURT.to_owned(),
                partner_name: "江津区人民法院".to_owned(),
                reason: "申请诉讼".to_owned(),
            },
        ))
        .await
        .expect("refer again")
        .into_inner();
    let open = app.case(&court, &case_id, referred.stream_sequence).await;
    assert_full("court holding an open referral", &open);
    assert!(!event_types(&open).contains(&"SessionHeld".to_owned()));
    // Another institution does not even learn the case exists.
    let police = app.token_for("police-clerk", "partner_agent", DISTRICT, "jiangjin-police");
    let status = app
        .query()
        .await
        .get_case(req(&police, rpc::GetCaseRequest { case_id: case_id.clone(), min_sequence: None }))
        .await
        .expect_err("not the police's case");
    assert_eq!(status.code(), Code::NotFound);
    app.finish().await;
}

#[tokio::test]
async fn queue_rows_are_masked_for_supervisors_and_full_for_dispatchers() {
    capture_logs();
    let app = TestApp::spawn().await;
    let hotline = app.token("hotline", COMMUNITY);
    let reg = app.intake().await.register_case(req(&hotline, hotline_order("GD-QUEUE-1"))).await.unwrap().into_inner();
    let list = |token: String| {
        let app = &app;
        async move {
            app.query()
                .await
                .list_queue(req(
                    &token,
                    rpc::ListQueueRequest {
                        unit_code: COMMUNITY.to_owned(),
                        min_sequence: Some(reg.stream_sequence),
                        ..Default::default()
                    },
                ))
                .await
                .expect("queue")
                .into_inner()
        }
    };
    let supervisor = list(app.token("supervisor", DISTRICT)).await;
    assert_eq!(supervisor.cases.len(), 1);
    let row = &supervisor.cases[0];
    assert_eq!((row.parties[0].name.as_str(), row.parties[0].phone.as_str()), ("张*", "138****5678"));
    assert_eq!(row.parties[0].resident_id, "110105********002X");
    assert_eq!(row.address, "重庆市江津区几江街道****");
    let dispatcher = list(app.token("dispatcher", STREET)).await;
    let row = &dispatcher.cases[0];
    assert_eq!((row.parties[0].name.as_str(), row.parties[0].phone.as_str()), ("张三", PHONE));
    app.finish().await;
}

#[tokio::test]
async fn a_full_journey_logs_no_phone_or_id_number() {
    let logs = capture_logs();
    let app = TestApp::spawn().await;
    let (case_id, _, closed) = journey(&app).await;
    // Reads by every kind of reader, and failures that log: a bad phone, a denial, a bad token.
    for token in [app.token("dispatcher", STREET), app.token("supervisor", DISTRICT)] {
        app.case(&token, &case_id, closed).await;
    }
    let mut bad = hotline_order("GD-PRIV-BAD");
    bad.parties[0].phone = format!("{PHONE}9");
    let status = app.intake().await.register_case(req(&app.token("hotline", COMMUNITY), bad)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let denied = app.intake().await.register_case(req(&app.token("supervisor", DISTRICT), hotline_order("GD-X"))).await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    app.finish().await;

    let text = logs.text();
    // The capture works: it holds the service's own debug lines from its spawned tasks.
    assert!(text.contains(&case_id), "the log capture missed the service's lines");
    assert!(text.contains("denied"), "the log capture missed the denial");
    for secret in [PHONE, LANDLINE, RESIDENT_ID, "19491231", "张三", "李四"] {
        if let Some(at) = text.find(secret) {
            let line = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!("the logs hold {secret}: {}", &text[line..end]);
        }
    }
}

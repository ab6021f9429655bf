//! The authorisation matrix, enforced: every RPC of the compiled API (enumerated from the
//! descriptor set, so a new service is caught without touching this file) is called as every
//! role, inside and outside the role's reach, and the outcome is checked against
//! `fengqiao::authz::MATRIX`:
//!
//! - a role the matrix does not tick gets `PERMISSION_DENIED`, inside and outside;
//! - a command (its request carries `CommandMeta`) by a ticked role inside its reach passes
//!   authorisation: the request is sent with an impossible `expected_version`, so it ends in
//!   `ABORTED` and changes nothing; outside its reach it gets `PERMISSION_DENIED`;
//! - a query by a ticked role inside its reach succeeds; outside, it is denied, answers
//!   `NOT_FOUND`, or answers without any trace of the case.
//!
//! Requests are synthesised from the descriptors: every field gets a plausible valid value by
//! its name and type. An RPC with no row in the matrix fails the test.

use tonic::Code;

use fengqiao::authz::MATRIX;
use fengqiao_domain::event::pb::Role;
use fengqiao_tests::wire::{Api, COURT, Rpc, Target, call, synthesise};
use fengqiao_tests::*;

const ROLES: [(&str, Role); 8] = [
    ("hotline", Role::Hotline),
    ("grid_worker", Role::GridWorker),
    ("mediator", Role::Mediator),
    ("committee_lead", Role::CommitteeLead),
    ("dispatcher", Role::Dispatcher),
    ("partner_agent", Role::PartnerAgent),
    ("supervisor", Role::Supervisor),
    ("admin", Role::Admin),
];

/// A token for `role`, inside the fixture case's reach or outside it.
fn principal(app: &TestApp, name: &str, role: Role, inside: bool) -> String {
    let (unit, committee, partner) = match (role, inside) {
        (Role::Hotline | Role::GridWorker, true) => (COMMUNITY, "", ""),
        (Role::Hotline | Role::GridWorker, false) => (OTHER_COMMUNITY, "", ""),
        (Role::Mediator | Role::CommitteeLead, true) => (COMMUNITY, COMMITTEE, ""),
        (Role::Mediator | Role::CommitteeLead, false) => (OTHER_COMMUNITY, "other-committee", ""),
        (Role::Dispatcher, true) => (STREET, "", ""),
        (Role::Dispatcher, false) => ("500116002000", "", ""),
        (Role::PartnerAgent, true) => (DISTRICT, "", COURT),
        (Role::PartnerAgent, false) => (DISTRICT, "", "jiangjin-police"),
        (_, true) => (DISTRICT, "", ""),
        (_, false) => ("500117000000", "", ""),
    };
    let sub = format!("matrix-{name}-{}", if inside { "in" } else { "out" });
    app.token_with(&sub, name, unit, |c| {
        c.committee = committee.to_owned();
        c.partner = partner.to_owned();
    })
}

/// A 12345 case at the community: dispatched to the committee, signed for, referred to the
/// court (R1, pending), settled, and with a judicial confirmation applied for at the court; and
/// a second case dispatched to the same committee. Returns both ids.
async fn fixture(app: &TestApp) -> (String, String) {
    let reg = app
        .intake()
        .await
        .register_case(req(&app.token("hotline", COMMUNITY), hotline_order("GD-MATRIX-FIXTURE")))
        .await
        .expect("register")
        .into_inner();
    let id = reg.case_id;
    let mut work = app.work().await;
    let lead = app.token_in_committee("committee_lead", COMMUNITY, COMMITTEE);
    work.dispatch_case(req(
        &app.token("dispatcher", STREET),
        rpc::DispatchCaseRequest {
            meta: meta("f-dispatch"),
            case_id: id.clone(),
            tier: events::Tier::Community as i32,
            committee_id: COMMITTEE.to_owned(),
            committee_unit_code: COMMUNITY.to_owned(),
            ..Default::default()
        },
    ))
    .await
    .expect("dispatch");
    work.accept_case(req(&lead, rpc::AcceptCaseRequest { meta: meta("f-accept"), case_id: id.clone() }))
        .await
        .expect("accept");
    work.refer_case(req(
        &lead,
        rpc::ReferCaseRequest {
            meta: meta("f-refer"),
            case_id: id.clone(),
            partner_kind: events::PartnerKind::Court as i32,
            partner_id: COURT.to_owned(),
            partner_name: "江津区人民法院".to_owned(),
            reason: "诉前调解委派".to_owned(),
        },
    ))
    .await
    .expect("refer");
    work.record_settlement(req(
        &lead,
        rpc::RecordSettlementRequest {
            meta: meta("f-settle"),
            case_id: id.clone(),
            agreement: Some(signed_agreement()),
        },
    ))
    .await
    .expect("settle");
    let applied = work
        .request_judicial_confirmation(req(
            &lead,
            rpc::RequestJudicialConfirmationRequest {
                meta: meta("f-judicial"),
                case_id: id.clone(),
                court_id: COURT.to_owned(),
                court_name: "江津区人民法院".to_owned(),
            },
        ))
        .await
        .expect("judicial confirmation")
        .into_inner();
    let other = app
        .intake()
        .await
        .register_case(req(&app.token("grid_worker", COMMUNITY), grid_report("f-other")))
        .await
        .expect("second case")
        .into_inner()
        .case_id;
    work.dispatch_case(req(
        &app.token("dispatcher", STREET),
        rpc::DispatchCaseRequest {
            meta: meta("f-other-dispatch"),
            case_id: other.clone(),
            tier: events::Tier::Community as i32,
            committee_id: COMMITTEE.to_owned(),
            committee_unit_code: COMMUNITY.to_owned(),
            ..Default::default()
        },
    ))
    .await
    .expect("dispatch the second case");
    // Let the read models catch up, so queries see the case.
    app.case(&app.token("dispatcher", STREET), &id, applied.stream_sequence).await;
    (id, other)
}

/// How a call came out, against what the matrix says.
fn verdict(
    api: &Api,
    rpc: &Rpc,
    ticked: bool,
    inside: bool,
    code: Code,
    body: &[u8],
    case_id: &str,
) -> Result<(), String> {
    let leaks = || String::from_utf8_lossy(body).contains(case_id);
    let ok = match (ticked, inside, api.is_command(rpc)) {
        (false, _, _) => code == Code::PermissionDenied,
        (true, true, true) => code == Code::Aborted,
        // NOT_FOUND: a case named beside the command's own (a merge target) is out of reach.
        (true, false, true) => matches!(code, Code::PermissionDenied | Code::NotFound),
        (true, true, false) => code == Code::Ok,
        (true, false, false) => {
            matches!(code, Code::PermissionDenied | Code::NotFound) || (code == Code::Ok && !leaks())
        }
    };
    if ok {
        return Ok(());
    }
    let expected = match (ticked, inside, api.is_command(rpc)) {
        (false, _, _) => "PERMISSION_DENIED",
        (true, false, true) => "PERMISSION_DENIED or NOT_FOUND",
        (true, true, true) => "ABORTED (authorised; the pinned version stops it)",
        (true, true, false) => "OK",
        (true, false, false) => "PERMISSION_DENIED, NOT_FOUND, or OK without the case",
    };
    Err(format!(
        "expected {expected}, got {code:?}{}",
        if code == Code::Ok && leaks() { " showing the case" } else { "" }
    ))
}

#[tokio::test]
async fn every_rpc_as_every_role_inside_and_outside_its_reach_matches_the_matrix() {
    let app = TestApp::spawn().await;
    let api = Api::load();
    assert!(api.rpcs.len() > 30, "the descriptor set lists only {} RPCs", api.rpcs.len());
    let missing: Vec<&str> =
        api.rpcs.iter().map(|r| r.method.as_str()).filter(|m| !MATRIX.iter().any(|(n, _, _)| n == m)).collect();
    assert!(missing.is_empty(), "RPCs without a row in authz::MATRIX (add one): {missing:?}");
    let stale: Vec<&str> =
        MATRIX.iter().map(|(n, _, _)| *n).filter(|n| !api.rpcs.iter().any(|r| r.method == *n)).collect();
    assert!(stale.is_empty(), "rows of authz::MATRIX naming no RPC: {stale:?}");

    let (case_id, other_case_id) = fixture(&app).await;
    let messages_before = app.stream_messages().await;
    let channel = app.channel().await;
    let mut failures = Vec::new();
    for rpc in &api.rpcs {
        let roles = MATRIX.iter().find(|(n, _, _)| *n == rpc.method).map(|(_, r, _)| *r).unwrap_or_default();
        for (name, role) in ROLES {
            for inside in [true, false] {
                let token = principal(&app, name, role, inside);
                let body =
                    synthesise(&api, &rpc.input, &Target { case_id: &case_id, other_case_id: &other_case_id, role });
                let (code, response) = call(&channel, rpc, &token, body).await;
                if let Err(why) = verdict(&api, rpc, roles.contains(&role), inside, code, &response, &case_id) {
                    let place = if inside { "inside" } else { "outside" };
                    failures.push(format!("{} as {name} {place} its reach: {why}", rpc.method));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} calls disagree with the matrix:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(app.stream_messages().await, messages_before, "a matrix call changed a case");
    app.finish().await;
}

#[tokio::test]
async fn committee_staff_act_only_on_their_committees_cases() {
    let app = TestApp::spawn().await;
    let api = Api::load();
    let (case_id, other_case_id) = fixture(&app).await;
    let channel = app.channel().await;
    let other = |role: &str| app.token_in_committee(role, COMMUNITY, "traffic-committee");
    let unclaimed = |role: &str| app.token(role, COMMUNITY);
    let mut failures = Vec::new();
    for rpc in api.rpcs.iter().filter(|r| api.is_command(r) && r.method != "RegisterCase") {
        let roles = MATRIX.iter().find(|(n, _, _)| *n == rpc.method).map(|(_, r, _)| *r).unwrap_or_default();
        for (name, role) in [("mediator", Role::Mediator), ("committee_lead", Role::CommitteeLead)] {
            if !roles.contains(&role) {
                continue;
            }
            let body =
                || synthesise(&api, &rpc.input, &Target { case_id: &case_id, other_case_id: &other_case_id, role });
            // Same unit, another committee: denied (a merge target out of reach: not found).
            let (code, _) = call(&channel, rpc, &other(name), body()).await;
            if !matches!(code, Code::PermissionDenied | Code::NotFound) {
                failures.push(format!("{} as {name} of another committee: {code:?}", rpc.method));
            }
            // No committee claim: the committee's unit in their subtree is enough.
            let (code, _) = call(&channel, rpc, &unclaimed(name), body()).await;
            if code != Code::Aborted {
                failures.push(format!("{} as {name} without committee claim: {code:?}", rpc.method));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Reading stays possible (masked) within the unit subtree.
    let read = app
        .query()
        .await
        .get_case(req(&other("mediator"), rpc::GetCaseRequest { case_id: case_id.clone(), min_sequence: None }))
        .await
        .expect("a mediator reads the cases of their unit")
        .into_inner();
    assert_eq!(read.summary.expect("summary").parties[0].name, "张*");
    app.finish().await;
}

#[tokio::test]
async fn hotline_and_partners_reach_only_their_own_cases() {
    let app = TestApp::spawn().await;
    let (case_id, _) = fixture(&app).await;
    let hotline = app.token("hotline", COMMUNITY);
    let dispatcher = app.token("dispatcher", STREET);
    // A grid worker's report in the hotline's subtree is not the hotline's.
    let report = app
        .intake()
        .await
        .register_case(req(&app.token("grid_worker", COMMUNITY), grid_report("grid-walk-1")))
        .await
        .expect("grid report")
        .into_inner();
    app.case(&dispatcher, &report.case_id, report.stream_sequence).await;
    let read = |token: String, id: String| {
        let app = &app;
        async move { app.query().await.get_case(req(&token, rpc::GetCaseRequest { case_id: id, min_sequence: None })).await }
    };
    assert!(read(hotline.clone(), case_id.clone()).await.is_ok(), "the hotline reads its own order");
    assert_eq!(read(hotline.clone(), report.case_id.clone()).await.unwrap_err().code(), Code::NotFound);
    // The hotline registers 12345 orders only.
    let status = app.intake().await.register_case(req(&hotline, grid_report("by-hotline"))).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // A partner in whose unit the case lies, without a referral, does not learn of it.
    let police = app.token_for("police", "partner_agent", COMMUNITY, "jiangjin-police");
    assert_eq!(read(police.clone(), case_id.clone()).await.unwrap_err().code(), Code::NotFound);
    // A partner registers only what its own institution sends in.
    let transfer = |source: &str| rpc::RegisterCaseRequest {
        channel: events::Channel::PoliceTransfer as i32,
        source_partner_kind: events::PartnerKind::Police as i32,
        source_partner_id: source.to_owned(),
        ..hotline_order("JZ-2026-118")
    };
    let status = app.intake().await.register_case(req(&police, transfer(COURT))).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let sent = app.intake().await.register_case(req(&police, transfer("jiangjin-police"))).await.expect("transfer");
    let sent = sent.into_inner();
    // The sender reads its transfer (and may resend it), masked: it holds no referral.
    app.case(&dispatcher, &sent.case_id, sent.stream_sequence).await;
    let own = read(police.clone(), sent.case_id.clone()).await.expect("the police read their transfer").into_inner();
    assert_eq!(own.summary.expect("summary").parties[0].phone, "138****5678");
    let again = app.intake().await.register_case(req(&police, transfer("jiangjin-police"))).await.expect("resend");
    assert!(again.into_inner().replayed);
    app.finish().await;
}

#[tokio::test]
async fn supervisors_and_admins_have_no_command_and_no_rpc_edits_history() {
    let api = Api::load();
    for rpc in api.rpcs.iter().filter(|r| api.is_command(r)) {
        let roles = MATRIX.iter().find(|(n, _, _)| *n == rpc.method).map(|(_, r, _)| *r).unwrap_or_default();
        assert!(!roles.contains(&Role::Supervisor), "supervisors may call {}", rpc.method);
        assert!(!roles.contains(&Role::Admin), "admins may call {}", rpc.method);
    }
    for rpc in &api.rpcs {
        for verb in ["Delete", "Purge", "Edit", "Update", "Rewrite", "Remove"] {
            assert!(!rpc.method.starts_with(verb), "{} looks like it edits history", rpc.method);
        }
    }
}

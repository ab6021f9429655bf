//! The 12345 hotline bridge end to end, against real NATS and PostgreSQL, with a real HTTP server
//! in the test playing the hotline: signed work orders in (idempotent for ever), signed callbacks
//! out (in order, retried with backoff, dead-lettered and redelivered, nothing lost), ratings in,
//! and the Open311 view.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};

use fengqiao::hotline::callbacks::{self, Redeliver};
use fengqiao::hotline::cli::render;
use fengqiao::settings::HmacKey;
use fengqiao_tests::hotline::*;
use fengqiao_tests::*;

const WAIT: Duration = Duration::from_secs(20);

/// The app, a fake hotline and a bridge posting to it.
async fn setup() -> (TestApp, FakeHotline, TestBridge) {
    let app = TestApp::spawn().await;
    let hotline = FakeHotline::start().await;
    let bridge = TestBridge::spawn(&app, test_settings(Some(hotline.url.clone()))).await;
    (app, hotline, bridge)
}

/// Posts a work order and returns its case id.
async fn order_in(bridge: &TestBridge, number: &str) -> String {
    let (status, body) = bridge.post("/hotline/v1/orders", &work_order(number)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["case_id"].as_str().expect("case id").to_owned()
}

async fn dispatch(app: &TestApp, case_id: &str) -> u64 {
    let request = rpc::DispatchCaseRequest {
        meta: meta("dispatch"),
        case_id: case_id.to_owned(),
        tier: events::Tier::Community as i32,
        committee_id: COMMITTEE.to_owned(),
        committee_unit_code: COMMUNITY.to_owned(),
        risk_level: events::RiskLevel::Low as i32,
        ..Default::default()
    };
    let dispatcher = app.token("dispatcher", STREET);
    app.work().await.dispatch_case(req(&dispatcher, request)).await.expect("dispatched").into_inner().stream_sequence
}

fn lead(app: &TestApp) -> String {
    app.token_in_committee("committee_lead", COMMUNITY, COMMITTEE)
}

async fn sign_for(app: &TestApp, case_id: &str) {
    let request = rpc::AcceptCaseRequest { meta: meta("sign-for"), case_id: case_id.to_owned() };
    app.work().await.accept_case(req(&lead(app), request)).await.expect("signed for");
}

async fn progress(app: &TestApp, case_id: &str, note: &str) {
    let request =
        rpc::ReportProgressRequest { meta: meta("progress"), case_id: case_id.to_owned(), note: note.to_owned() };
    app.work().await.report_progress(req(&lead(app), request)).await.expect("progress");
}

fn kinds(received: &[Received]) -> Vec<String> {
    received.iter().map(|r| r.body["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn rows(app: &TestApp, table: &str) -> i64 {
    app.db().await.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.expect("count").get(0)
}

#[tokio::test]
async fn an_order_posted_twice_is_one_case_even_after_a_restart() {
    let (mut app, _hotline, mut bridge) = setup().await;
    let (status, first) = bridge.post("/hotline/v1/orders", &work_order("GD20261123001")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["created"], json!(true));
    let case_id = first["case_id"].as_str().expect("case id").to_owned();

    let (status, again) = bridge.post("/hotline/v1/orders", &work_order("GD20261123001")).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!((again["case_id"].as_str(), again["created"].clone()), (Some(case_id.as_str()), json!(false)));

    // A month later, after both processes restarted, with the content edited by the hotline.
    app.restart().await;
    bridge.restart().await;
    let mut edited = work_order("GD20261123001");
    edited["content"] = json!("再次来电催办。");
    let (status, later) = bridge.post("/hotline/v1/orders", &edited).await;
    assert_eq!(status, StatusCode::OK, "{later}");
    assert_eq!(later["case_id"].as_str(), Some(case_id.as_str()));

    // gRPC intake of the same order number finds the same case: one path, one id.
    let hotline_token = app.token("hotline", COMMUNITY);
    let grpc = app.intake().await.register_case(req(&hotline_token, hotline_order("GD20261123001"))).await;
    let grpc = grpc.expect("gRPC intake").into_inner();
    assert_eq!((grpc.case_id.as_str(), grpc.existing_case), (case_id.as_str(), true));
    assert_eq!(app.stream_messages().await, 1);

    // The status, and the hotline's reply deadline as the case's hotline clock.
    let (status, order) = bridge.get("/hotline/v1/orders/GD20261123001").await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["state"], json!("registered"));
    let store = fengqiao::app::open_store(&app.settings).await.expect("store");
    let id = fengqiao_domain::values::CaseId::parse("case_id", &case_id).expect("uuid");
    let mut case = fengqiao_domain::Case::default();
    for commit in store.load(id, 0).await.expect("load") {
        for e in &commit.commit.events {
            let at = jiff::Timestamp::from_millisecond(e.occurred_at_unix_ms).expect("time");
            case.apply_at(e.event.as_ref().and_then(|e| e.kind.as_ref()).expect("event"), at);
        }
    }
    let sla = fengqiao_domain::sla::Sla::bundled().expect("sla");
    let due = case.clocks.deadline("hotline_reply:1", &sla).expect("hotline clock").due_at;
    assert_eq!(due, "2026-11-30T18:00:00+08:00".parse::<jiff::Timestamp>().expect("time"));
    let (status, missing) = bridge.get("/hotline/v1/orders/GD-NEVER-SENT").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");

    bridge.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn bad_signatures_are_refused_and_nothing_is_stored() {
    let (app, _hotline, mut bridge) = setup().await;
    let body = work_order("GD-FORGED-1").to_string();
    let key = inbound_key();
    let now = bridge.now();
    let refused = |(status, answer): (StatusCode, Value), why: &str| {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {answer}");
        let text = answer["error"].as_str().unwrap_or_default().to_owned();
        assert!(text.contains(why), "{why:?} not in {text:?}");
    };

    // Tampered body: signed one thing, sent another.
    let mut request = reqwest::Client::new().post(bridge.url("/hotline/v1/orders"));
    for (name, value) in fengqiao::hotline::signature::headers(&key, now, body.as_bytes()) {
        request = request.header(name, value);
    }
    let tampered = body.replace("13812345678", "13900000000");
    let response = request.body(tampered).send().await.expect("answer");
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.text().await.expect("text").contains("does not match"));

    let wrong_secret = HmacKey { kid: key.kid.clone(), secret: "not-the-shared-secret-at-all".to_owned() };
    refused(bridge.post_signed("/hotline/v1/orders", &body, &wrong_secret, now).await, "does not match");
    let unknown_kid = HmacKey { kid: "someone-else".to_owned(), secret: key.secret.clone() };
    refused(bridge.post_signed("/hotline/v1/orders", &body, &unknown_kid, now).await, "is not a key");
    refused(bridge.post_signed("/hotline/v1/orders", &body, &key, now - 600).await, "replay window");
    refused(bridge.post_signed("/hotline/v1/orders", &body, &key, now + 600).await, "replay window");
    let unsigned = reqwest::Client::new().post(bridge.url("/hotline/v1/orders")).body(body.clone()).send().await;
    assert_eq!(unsigned.expect("answer").status().as_u16(), 401);
    // Reads are signed too.
    let unsigned_read = reqwest::Client::new().get(bridge.url("/hotline/v1/orders/GD-FORGED-1")).send().await;
    assert_eq!(unsigned_read.expect("answer").status().as_u16(), 401);

    // Signed but malformed: 400 naming the field.
    let mut bad = work_order("GD-BAD-1");
    bad["caller"]["phone"] = json!("12");
    let (status, answer) = bridge.post("/hotline/v1/orders", &bad).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("caller.phone")), "{answer}");
    let mut outside = work_order("GD-BAD-2");
    outside["location"]["unit_code"] = json!(OTHER_DISTRICT_UNIT);
    let (status, answer) = bridge.post("/hotline/v1/orders", &outside).await;
    assert_eq!((status, answer["field"].as_str()), (StatusCode::BAD_REQUEST, Some("location.unit_code")), "{answer}");

    assert_eq!(app.stream_messages().await, 0);
    assert_eq!(rows(&app, "hotline_orders").await, 0);
    bridge.stop().await;
    app.finish().await;
}

/// A unit in another district than the bridge's (Yubei, Chongqing).
const OTHER_DISTRICT_UNIT: &str = "500112001001";

#[tokio::test]
async fn callbacks_survive_three_failures_and_arrive_once_in_order() {
    let (app, hotline, mut bridge) = setup().await;
    hotline.fail_next(3);
    let case_id = order_in(&bridge, "GD-FLAKY-1").await;
    dispatch(&app, &case_id).await;
    sign_for(&app, &case_id).await;
    progress(&app, &case_id, "已联系双方，约定周五现场调解。").await;

    let received = hotline
        .wait_for(WAIT, "three callbacks accepted", |r| r.iter().filter(|r| r.answered == 200).count() >= 3)
        .await;
    let accepted = hotline.accepted();
    assert_eq!(kinds(&accepted), ["progress", "signed_for", "progress"]);
    assert_eq!(accepted[2].body["text"], json!("已联系双方，约定周五现场调解。"));
    assert_eq!(accepted[1].body["order_number"], json!("GD-FLAKY-1"));
    assert!(received.iter().all(|r| r.signed), "every callback is signed with the outbound key");
    let versions: Vec<u64> = accepted.iter().map(|r| r.body["case_version"].as_u64().unwrap_or(0)).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "in case order: {versions:?}");
    // The first callback failed three times before it got through; nothing overtook it.
    assert_eq!(received.len(), 6, "{received:#?}");
    let first = &accepted[0].delivery_id;
    assert!(received[..4].iter().all(|r| &r.delivery_id == first));
    assert_eq!(received[..4].iter().map(|r| r.answered).collect::<Vec<_>>(), [503, 503, 503, 200]);
    // ... after backoff: at least half of 40, 80, 160 ms between the attempts.
    for (k, pair) in received[..4].windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(20 << k), "attempt {} came {gap:?} after the one before", k + 2);
    }
    // Delivered once: every delivery id once among the accepted, and the outbox agrees.
    let mut ids: Vec<&str> = accepted.iter().map(|r| r.delivery_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let outbox = callbacks::outbox(&app.db().await).await.expect("outbox");
    assert_eq!((outbox.pending, outbox.delivered, outbox.dead.len()), (0, 3, 0));
    let attempts: i32 = app
        .db()
        .await
        .query_one("SELECT attempts FROM hotline_deliveries WHERE delivery_id = $1::text::uuid", &[&first.as_str()])
        .await
        .expect("row")
        .get(0);
    assert_eq!(attempts, 4);
    bridge.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_hotline_down_for_good_gets_dead_letters_that_an_operator_redelivers() {
    let (app, hotline, mut bridge) = setup().await;
    hotline.set_down(true);
    let case_id = order_in(&bridge, "GD-DOWN-1").await;
    dispatch(&app, &case_id).await;
    sign_for(&app, &case_id).await;

    let db = app.db().await;
    let outbox = eventually(WAIT, "a dead letter", || async {
        let o = callbacks::outbox(&db).await.expect("outbox");
        (!o.dead.is_empty()).then_some(o)
    })
    .await;
    let dead = &outbox.dead[0];
    assert_eq!((dead.kind.as_str(), dead.attempts), ("progress", 5));
    assert!(dead.reason.contains("gave up after 5 attempts") && dead.reason.contains("503"), "{}", dead.reason);
    // Nothing lost: the sign-for waits behind it, never sent out of order.
    assert_eq!(outbox.pending, 1);
    let received = hotline.received();
    assert_eq!(received.len(), 5);
    assert!(received.iter().all(|r| r.delivery_id == dead.delivery_id.to_string()));
    let shown = render(&outbox);
    assert!(
        shown.contains("1 pending")
            && shown.contains("1 dead letters")
            && shown.contains(&dead.delivery_id.to_string()),
        "{shown}"
    );

    // A restart keeps the outbox as it is.
    bridge.restart().await;
    let after = callbacks::outbox(&db).await.expect("outbox");
    assert_eq!((after.pending, after.dead.len()), (1, 1));

    // The hotline is back; the operator redelivers.
    hotline.set_down(false);
    assert_eq!(callbacks::redeliver(&db, Redeliver::AllDead).await.expect("redeliver"), 1);
    hotline.wait_for(WAIT, "both callbacks accepted", |r| r.iter().filter(|r| r.answered == 200).count() >= 2).await;
    let accepted = hotline.accepted();
    assert_eq!(kinds(&accepted), ["progress", "signed_for"]);
    assert_eq!(accepted[0].delivery_id, dead.delivery_id.to_string());
    let done = eventually(WAIT, "the outbox emptied", || async {
        let o = callbacks::outbox(&db).await.expect("outbox");
        (o.delivered == 2).then_some(o)
    })
    .await;
    assert_eq!((done.pending, done.dead.len()), (0, 0));
    let again = callbacks::redeliver(&db, Redeliver::One(dead.delivery_id)).await;
    assert!(again.expect_err("delivered already").to_string().contains("delivered already"));
    bridge.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn full_loop_from_order_to_a_dissatisfied_rating_that_reopens_the_case() {
    let (app, hotline, mut bridge) = setup().await;
    let case_id = order_in(&bridge, "GD-LOOP-1").await;
    dispatch(&app, &case_id).await;
    sign_for(&app, &case_id).await;
    hotline.wait_for(WAIT, "the sign-for callback", |r| kinds(r).contains(&"signed_for".to_owned())).await;

    // Rating an open case is refused: the hotline rates after the final reply.
    let rating = json!({"rating_id": "R-1", "satisfaction": "dissatisfied", "note": "漏水仍未修好"});
    let (status, early) = bridge.post("/hotline/v1/orders/GD-LOOP-1/rating", &rating).await;
    assert_eq!(status, StatusCode::CONFLICT, "{early}");

    let agreement = events::Agreement {
        party_names: vec!["张三".to_owned()],
        facts: "楼上卫生间漏水。".to_owned(),
        points_in_dispute: "维修费用承担。".to_owned(),
        terms: "楼上住户承担维修费用2000元。".to_owned(),
        performance_method: "一次性支付".to_owned(),
        signed_by: vec!["张三".to_owned(), "王调解".to_owned()],
        mediator_id: "m-wang".to_owned(),
        mediator_name: "王调解".to_owned(),
        ..Default::default()
    };
    let settle =
        rpc::RecordSettlementRequest { meta: meta("settle"), case_id: case_id.clone(), agreement: Some(agreement) };
    app.work().await.record_settlement(req(&lead(&app), settle)).await.expect("settled");
    let close = rpc::CloseCaseRequest {
        meta: meta("close"),
        case_id: case_id.clone(),
        outcome: events::ClosureOutcome::Resolved as i32,
        summary: "经调解，双方达成协议，维修费用由楼上住户承担。".to_owned(),
    };
    app.work().await.close_case(req(&lead(&app), close)).await.expect("closed");
    let received = hotline.wait_for(WAIT, "the final reply", |r| kinds(r).contains(&"final_reply".to_owned())).await;
    let reply = received.iter().find(|r| r.body["kind"] == json!("final_reply")).expect("final reply");
    assert_eq!(reply.body["text"], json!("经调解，双方达成协议，维修费用由楼上住户承担。"));
    assert_eq!(reply.body["outcome"], json!("resolved"));

    // Open311 shows it closed, with the final reply as its notes.
    let closed = eventually(WAIT, "the Open311 view to show the closure", || async {
        let (status, text) =
            bridge.get_plain(&format!("/open311/v2/requests/GD-LOOP-1.json?api_key={OPEN311_KEY}")).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        (v[0]["status"] == json!("closed")).then_some(v)
    })
    .await;
    let request = &closed[0];
    assert_eq!(request["service_request_id"], json!("GD-LOOP-1"));
    assert_eq!(request["status_notes"], json!("经调解，双方达成协议，维修费用由楼上住户承担。"));
    assert_eq!(request["agency_responsible"], json!(COMMITTEE));
    assert_eq!(request["requested_datetime"], json!("2026-11-23T09:15:00+08:00"));
    assert_eq!(request["expected_datetime"], json!("2026-11-30T18:00:00+08:00"));
    assert!(request.get("description").is_none() && request.get("address").is_none(), "no personal data: {request}");

    // 评单: dissatisfied → reopened (二次办理); a resend changes nothing.
    let (status, rated) = bridge.post("/hotline/v1/orders/GD-LOOP-1/rating", &rating).await;
    assert_eq!(status, StatusCode::OK, "{rated}");
    assert_eq!(
        (rated["recorded"].clone(), rated["state"].clone(), rated["reopened_times"].clone()),
        (json!(true), json!("accepted"), json!(1))
    );
    let messages = app.stream_messages().await;
    let (status, resent) = bridge.post("/hotline/v1/orders/GD-LOOP-1/rating", &rating).await;
    assert_eq!((status, resent["recorded"].clone()), (StatusCode::OK, json!(false)), "{resent}");
    assert_eq!(app.stream_messages().await, messages);

    let hotline_token = app.token("hotline", COMMUNITY);
    let case = app.case(&hotline_token, &case_id, 0).await;
    let types = event_types(&case);
    assert_eq!(types[types.len() - 2..], ["FollowUpRecorded", "CaseReopened"]);
    // The hotline hears of the reopening, and Open311 shows the order open again.
    hotline
        .wait_for(WAIT, "the reopening", |r| {
            r.iter().any(|r| r.body["text"].as_str().is_some_and(|t| t.starts_with("二次办理")))
        })
        .await;
    eventually(WAIT, "the Open311 view to reopen", || async {
        let (_, text) = bridge.get_plain(&format!("/open311/v2/requests.json?api_key={OPEN311_KEY}&status=open")).await;
        let v: Value = serde_json::from_str(&text).expect("json");
        (v.as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await;
    let kinds = kinds(&hotline.accepted());
    assert_eq!(kinds, ["progress", "signed_for", "progress", "final_reply", "progress"]);
    let listed = |query: &'static str| {
        let bridge = &bridge;
        async move {
            let (status, text) =
                bridge.get_plain(&format!("/open311/v2/requests.json?api_key={OPEN311_KEY}&{query}")).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            serde_json::from_str::<Value>(&text).expect("json").as_array().map_or(0, Vec::len)
        }
    };
    assert_eq!(listed("service_request_id=GD-LOOP-1,GD-NONE").await, 1);
    assert_eq!(listed("status=closed").await, 0);
    assert_eq!(listed("start_date=2026-11-23T09:15:00%2B08:00").await, 1);
    assert_eq!(listed("end_date=2026-11-23T09:15:00%2B08:00").await, 0);
    let (status, _) =
        bridge.get_plain(&format!("/open311/v2/requests.json?api_key={OPEN311_KEY}&status=pending")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = bridge.get_plain("/open311/v2/requests.json?api_key=wrong").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, document) = bridge.get_plain("/hotline/v1/openapi.yaml").await;
    assert_eq!((status, document.as_str()), (StatusCode::OK, fengqiao::hotline::OPENAPI));
    bridge.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn a_refused_callback_is_parked_at_once_with_the_hotlines_reason() {
    let (app, hotline, mut bridge) = setup().await;
    hotline.refuse_next(1);
    let case_id = order_in(&bridge, "GD-REFUSED-1").await;
    dispatch(&app, &case_id).await;
    let db = app.db().await;
    let outbox = eventually(WAIT, "a dead letter", || async {
        let o = callbacks::outbox(&db).await.expect("outbox");
        (!o.dead.is_empty()).then_some(o)
    })
    .await;
    // A 4xx is not retried: one attempt, the hotline's own words as the reason.
    assert_eq!(outbox.dead[0].attempts, 1);
    assert!(outbox.dead[0].reason.contains("refused") && outbox.dead[0].reason.contains("unknown order number"));
    assert_eq!(hotline.received().len(), 1);
    // Redelivered once the hotline knows the order.
    callbacks::redeliver(&db, Redeliver::One(outbox.dead[0].delivery_id)).await.expect("redeliver");
    hotline.wait_for(WAIT, "the callback accepted", |r| r.iter().any(|r| r.answered == 200)).await;
    bridge.stop().await;
    app.finish().await;
}

#[tokio::test]
async fn two_bridges_on_one_deployment_deliver_each_callback_once_and_in_order() {
    let (app, hotline, mut first) = setup().await;
    let mut second = TestBridge::spawn(&app, test_settings(Some(hotline.url.clone()))).await;
    hotline.fail_next(4);
    let lead = lead(&app);
    let orders = ["GD-PAIR-1", "GD-PAIR-2", "GD-PAIR-3"];
    for (i, number) in orders.iter().enumerate() {
        let bridge = if i % 2 == 0 { &first } else { &second };
        let case_id = order_in(bridge, number).await;
        dispatch(&app, &case_id).await;
        // 退单: the committee returns it as outside its remit, and it is dispatched again.
        let back = rpc::ReturnCaseRequest {
            meta: meta("return"),
            case_id: case_id.clone(),
            reason: "不属于本调委会受理范围".to_owned(),
        };
        app.work().await.return_case(req(&lead, back)).await.expect("returned");
        let again = rpc::DispatchCaseRequest {
            meta: meta("dispatch-again"),
            case_id: case_id.clone(),
            tier: events::Tier::Community as i32,
            committee_id: COMMITTEE.to_owned(),
            committee_unit_code: COMMUNITY.to_owned(),
            risk_level: events::RiskLevel::Low as i32,
            ..Default::default()
        };
        app.work().await.dispatch_case(req(&app.token("dispatcher", STREET), again)).await.expect("dispatched again");
        sign_for(&app, &case_id).await;
        progress(&app, &case_id, "已约双方面谈。").await;
    }
    hotline.wait_for(WAIT, "every callback accepted", |r| r.iter().filter(|r| r.answered == 200).count() >= 15).await;
    let accepted = hotline.accepted();
    assert_eq!(accepted.len(), 15);
    let mut ids: Vec<&str> = accepted.iter().map(|r| r.delivery_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 15, "each callback accepted once");
    for number in orders {
        let of_order: Vec<Received> =
            accepted.iter().filter(|r| r.body["order_number"] == json!(number)).cloned().collect();
        assert_eq!(kinds(&of_order), ["progress", "return", "progress", "signed_for", "progress"], "{number}");
        assert_eq!(of_order[1].body["text"], json!("不属于本调委会受理范围"));
        let versions: Vec<u64> = of_order.iter().map(|r| r.body["case_version"].as_u64().unwrap_or(0)).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{number} in case order: {versions:?}");
    }
    second.stop().await;
    first.stop().await;
    app.finish().await;
}

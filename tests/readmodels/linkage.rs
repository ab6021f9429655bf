//! Six-way linkage queues: per institution and per partner kind, pending (with the 3-working-day
//! acceptance deadline), overdue, accepted, declined, returned, concluded; and an institution
//! never sees what was referred to another.

use fengqiao_tests::*;
use tonic::Code;

use crate::desk::{Answer, Desk};
use events::PartnerKind::{Court, Police};
use rpc::LinkageQueue as Q;

const COURT: &str = "jiangjin-court";
const OTHER_COURT: &str = "yongchuan-court";
const POLICE: &str = "jijiang-police";
/// Where the partners' staff act from: a township of the district outside the cases' street.
const PARTNER_UNIT: &str = "500116100000";

async fn list(
    desk: &Desk,
    token: &str,
    kind: Option<events::PartnerKind>,
    partner: &str,
    queue: Q,
) -> Result<rpc::ReferralPage, tonic::Status> {
    rpc::linkage_queue_service_client::LinkageQueueServiceClient::new(desk.app.channel().await)
        .list_referrals(req(
            token,
            rpc::ListReferralsRequest {
                partner_kind: kind.map_or(0, |k| k as i32),
                partner_id: partner.to_owned(),
                queue: queue as i32,
                min_sequence: Some(desk.last),
                ..Default::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn refs(page: &rpc::ReferralPage) -> Vec<String> {
    page.items.iter().map(|i| i.case.as_ref().unwrap().external_ref.clone()).collect()
}

#[tokio::test]
async fn linkage_queues_follow_each_referral_and_keep_institutions_apart() {
    let mut desk = Desk::open().await;
    let monday: jiff::Timestamp = "2026-11-23T10:00:00+08:00".parse().unwrap();
    desk.app.clock.set(monday);
    let mut cases = Vec::new();
    for (n, kind, partner) in [("LK-X", Court, COURT), ("LK-Y", Police, POLICE), ("LK-Z", Court, OTHER_COURT)] {
        let case = desk.order(n, COMMUNITY, "邻里纠纷").await;
        desk.dispatch(&case, COMMITTEE, COMMUNITY, events::Tier::Community).await;
        desk.accept(&case).await;
        desk.refer(&case, kind, partner).await;
        cases.push(case);
    }
    let (x, y, z) = (&cases[0], &cases[1], &cases[2]);
    let judge = desk.app.token_for("judge-1", "partner_agent", PARTNER_UNIT, COURT);
    let other_judge = desk.app.token_for("judge-2", "partner_agent", PARTNER_UNIT, OTHER_COURT);
    let officer = desk.app.token_for("officer-1", "partner_agent", PARTNER_UNIT, POLICE);

    // Pending, with the acceptance deadline: 3 working days, close of business on Thursday.
    let pending = list(&desk, &judge, None, "", Q::Pending).await.unwrap();
    assert_eq!(refs(&pending), ["LK-X"]);
    let thursday: jiff::Timestamp = "2026-11-26T17:30:00+08:00".parse().unwrap();
    let item = &pending.items[0];
    assert_eq!(item.acceptance_due_unix_ms, thursday.as_millisecond());
    assert_eq!((item.status, item.partner_kind), (rpc::ReferralStatus::Pending as i32, Court as i32));
    assert_eq!((item.made_by.as_str(), item.made_unit.as_str()), ("test-committee_lead", DISTRICT));
    assert!(!item.overdue);
    // The court holds the referral, so it reaches the parties; the supervisor sees them masked.
    assert_eq!(item.case.as_ref().unwrap().parties[0].phone, "13812345678");
    let supervisor = desk.app.token("supervisor", DISTRICT);
    let watched = list(&desk, &supervisor, Some(Court), COURT, Q::Pending).await.unwrap();
    assert_eq!(watched.items[0].case.as_ref().unwrap().parties[0].phone, "138****5678");
    // The command centre sees every court's referrals in its subtree; a community elsewhere none.
    let by_kind = list(&desk, &desk.dispatcher, Some(Court), "", Q::Pending).await.unwrap();
    let mut both = refs(&by_kind);
    both.sort();
    assert_eq!(both, ["LK-X", "LK-Z"]);
    let elsewhere = desk.app.token("committee_lead", OTHER_COMMUNITY);
    assert!(list(&desk, &elsewhere, Some(Court), "", Q::Pending).await.unwrap().items.is_empty());
    assert_eq!(refs(&list(&desk, &desk.dispatcher, None, POLICE, Q::Pending).await.unwrap()), ["LK-Y"]);

    // Friday: the two courts are late.
    desk.app.clock.set("2026-11-27T09:00:00+08:00".parse().unwrap());
    let overdue = list(&desk, &judge, None, "", Q::Overdue).await.unwrap();
    assert_eq!(refs(&overdue), ["LK-X"]);
    assert!(overdue.items[0].overdue);

    desk.partner(&judge, x, Answer::Accept).await;
    desk.partner(&other_judge, z, Answer::Decline("不属本院管辖")).await;
    desk.partner(&officer, y, Answer::Return("非治安案件，退回调解")).await;
    assert!(list(&desk, &judge, None, "", Q::Pending).await.unwrap().items.is_empty());
    let accepted = list(&desk, &judge, None, "", Q::Accepted).await.unwrap();
    assert_eq!(refs(&accepted), ["LK-X"]);
    assert_eq!(accepted.items[0].acceptance_due_unix_ms, 0);
    let declined = list(&desk, &other_judge, None, "", Q::Declined).await.unwrap();
    assert_eq!((refs(&declined), declined.items[0].answer_reason.as_str()), (vec!["LK-Z".to_owned()], "不属本院管辖"));
    let returned = list(&desk, &officer, None, "", Q::Returned).await.unwrap();
    assert_eq!(refs(&returned), ["LK-Y"]);
    assert_eq!(returned.items[0].status, rpc::ReferralStatus::Returned as i32);
    desk.partner(&judge, x, Answer::Conclude(events::ReferralOutcome::Resolved)).await;
    let concluded = list(&desk, &judge, None, "", Q::Concluded).await.unwrap();
    assert_eq!(refs(&concluded), ["LK-X"]);
    assert_eq!(concluded.items[0].outcome, events::ReferralOutcome::Resolved as i32);
    assert_eq!(concluded.items[0].outcome_summary, "经诉前调解达成协议");
    // Concluded: the court no longer holds it, and no longer sees the parties in full.
    assert_eq!(concluded.items[0].case.as_ref().unwrap().parties[0].phone, "138****5678");

    // An institution never sees another's referrals, in any queue, by any filter.
    for (token, own) in [(&judge, COURT), (&other_judge, OTHER_COURT), (&officer, POLICE)] {
        for queue in [Q::Pending, Q::Overdue, Q::Accepted, Q::Declined, Q::Returned, Q::Concluded] {
            for kind in [None, Some(Court), Some(Police)] {
                let page = list(&desk, token, kind, "", queue).await.unwrap();
                assert!(page.items.iter().all(|i| i.partner_id == own), "{own} saw {page:?}");
            }
        }
        let foreign = if own == COURT { OTHER_COURT } else { COURT };
        let denied = list(&desk, token, None, foreign, Q::Concluded).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
    // Nor its case files.
    let status = desk
        .app
        .query()
        .await
        .get_case(req(&judge, rpc::GetCaseRequest { case_id: y.clone(), min_sequence: Some(desk.last) }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // Without a kind or institution, other roles are asked to name one.
    let status = list(&desk, &desk.dispatcher, None, "", Q::Pending).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("partner_kind"), "{status:?}");
    let status = list(&desk, &judge, None, "", Q::Unspecified).await.unwrap_err();
    assert!(status.message().starts_with("queue"), "{status:?}");
    desk.app.finish().await;
}

//! Statistics over a scripted week equal the figures computed by hand from the definitions
//! (docs/read-models.md), for a street and for each of its communities, whose figures add up to
//! the street's.

use fengqiao_tests::*;
use tonic::Code;

use crate::desk::Desk;
use events::ClosureOutcome::{Resolved, Unresolved};
use events::Satisfaction::{BasicallySatisfied, Dissatisfied, Satisfied};
use events::Tier::{Community, Grid};

/// A second community of the same street.
const COMMUNITY_B: &str = "500116001003";

async fn stats(
    desk: &Desk,
    token: &str,
    unit: &str,
    category: &str,
    from: &str,
    to: &str,
) -> Result<rpc::StatisticsReport, tonic::Status> {
    rpc::statistics_service_client::StatisticsServiceClient::new(desk.app.channel().await)
        .get_statistics(req(
            token,
            rpc::GetStatisticsRequest {
                unit_code: unit.to_owned(),
                category: category.to_owned(),
                from_date: from.to_owned(),
                to_date: to.to_owned(),
                by_child_unit: true,
                min_sequence: Some(desk.last),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The counts as one array, in `CaseCounts` field order.
fn counts(u: &rpc::UnitStatistics) -> [u64; 11] {
    let c = u.counts.clone().unwrap();
    [
        c.received,
        c.handled,
        c.resolved,
        c.resolved_at_grassroots,
        c.dispatched,
        c.signed_in_time,
        c.closed,
        c.followed_up,
        c.satisfied,
        c.basically_satisfied,
        c.dissatisfied,
    ]
}

fn rate(r: &Option<rpc::Rate>) -> (u64, u64) {
    let r = r.clone().unwrap();
    (r.numerator, r.denominator)
}

#[tokio::test]
async fn statistics_equal_hand_computed_figures_for_a_subtree_and_its_children() {
    let mut desk = Desk::open().await;
    let monday: jiff::Timestamp = "2026-11-23T10:00:00+08:00".parse().unwrap();
    desk.app.clock.set(monday);
    let c1 = desk.order("ST-1", COMMUNITY, "邻里纠纷").await;
    let c2 = desk.order("ST-2", COMMUNITY, "邻里纠纷").await;
    let c3 =
        desk.register(rpc::RegisterCaseRequest { unit_code: COMMUNITY_B.to_owned(), ..grid_report("unused") }).await;
    let c4 = desk.order("ST-4", COMMUNITY_B, "物业纠纷").await;
    let _c5 = desk.order("ST-5", COMMUNITY, "邻里纠纷").await;
    let c6 = desk.order("ST-6", COMMUNITY, "邻里纠纷").await;
    let c7 = desk.order("ST-7", COMMUNITY, "邻里纠纷").await;
    let _c8 = desk.order("ST-8", OTHER_COMMUNITY, "邻里纠纷").await;
    desk.dispatch(&c1, COMMITTEE, COMMUNITY, Community).await;
    desk.dispatch(&c2, "grid-7", GRID, Grid).await;
    desk.dispatch(&c3, "committee-b", COMMUNITY_B, Community).await;
    desk.dispatch(&c4, "committee-b", COMMUNITY_B, Community).await;
    desk.dispatch(&c6, COMMITTEE, COMMUNITY, Community).await;
    // Signed for at once (the deadline is 2 working hours): all but ST-2, signed for next day.
    for case in [&c1, &c3, &c4, &c6] {
        desk.accept(case).await;
    }
    desk.app.clock.advance(jiff::SignedDuration::from_hours(24));
    desk.accept(&c2).await;
    desk.close(&c1, Resolved).await;
    desk.follow_up(&c1, Satisfied).await;
    desk.close(&c2, Resolved).await;
    // Dissatisfied: reopened for a second handling (二次办理), so no longer resolved.
    desk.follow_up(&c2, Dissatisfied).await;
    desk.escalate(&c3, "street-committee", STREET).await;
    desk.accept(&c3).await;
    desk.close(&c3, Resolved).await;
    desk.follow_up(&c3, BasicallySatisfied).await;
    desk.fail(&c4).await;
    desk.close(&c4, Unresolved).await;
    desk.withdraw(&c6).await;
    desk.merge(&c7, &c1).await;
    // Next week's case is another period.
    desk.app.clock.set("2026-11-30T10:00:00+08:00".parse().unwrap());
    desk.order("ST-9", COMMUNITY, "邻里纠纷").await;

    let supervisor = desk.app.token("supervisor", STREET);
    let week = stats(&desk, &supervisor, STREET, "", "2026-11-23", "2026-11-29").await.unwrap();
    let total = week.total.clone().unwrap();
    assert_eq!(total.unit_code, STREET);
    // received, handled, resolved, grassroots, dispatched, in time, closed, followed, 满意, 基本满意, 不满意
    assert_eq!(counts(&total), [7, 6, 2, 1, 5, 4, 3, 3, 1, 1, 1]);
    assert_eq!(rate(&total.resolution_rate), (2, 6)); // 化解率
    assert_eq!(rate(&total.grassroots_resolution_rate), (1, 6)); // 基层化解率
    assert_eq!(rate(&total.response_rate), (4, 5)); // 响应率
    assert_eq!(rate(&total.solution_rate), (2, 3)); // 解决率
    assert_eq!(rate(&total.satisfaction_rate), (2, 3)); // 满意率
    assert!((total.response_rate.clone().unwrap().value - 0.8).abs() < 1e-12);
    let volume: Vec<(i32, u64)> = total.received_by_channel.iter().map(|v| (v.channel, v.received)).collect();
    assert_eq!(volume, [(events::Channel::Hotline12345 as i32, 6), (events::Channel::GridReport as i32, 1)]);

    // The street's communities, and their figures add up to the street's.
    let children: Vec<(&str, [u64; 11])> = week.children.iter().map(|c| (c.unit_code.as_str(), counts(c))).collect();
    assert_eq!(
        children,
        [(COMMUNITY, [5, 4, 1, 1, 3, 2, 1, 2, 1, 0, 1]), (COMMUNITY_B, [2, 2, 1, 0, 2, 2, 2, 1, 0, 1, 0])]
    );
    let mut sum = [0u64; 11];
    for (_, c) in &children {
        sum.iter_mut().zip(c).for_each(|(s, v)| *s += v);
    }
    assert_eq!(sum, counts(&total));
    // A child asked directly gives its row.
    let community = stats(&desk, &supervisor, COMMUNITY_B, "", "2026-11-23", "2026-11-29").await.unwrap();
    assert_eq!(counts(&community.total.unwrap()), children[1].1);

    // Category, the wider district, and other periods.
    let property = stats(&desk, &supervisor, STREET, "物业纠纷", "2026-11-23", "2026-11-29").await.unwrap();
    // ST-3 (a grid report) and ST-4 are the property disputes: exactly the second community.
    assert_eq!(counts(&property.total.unwrap()), children[1].1);
    let district_lead = desk.app.token("supervisor", DISTRICT);
    let district = stats(&desk, &district_lead, DISTRICT, "", "2026-11-23", "2026-11-29").await.unwrap();
    assert_eq!(counts(&district.total.unwrap())[..2], [8, 7]);
    let next = stats(&desk, &supervisor, STREET, "", "2026-11-30", "2026-12-06").await.unwrap();
    assert_eq!(counts(&next.total.unwrap())[..2], [1, 1]);
    let both = stats(&desk, &supervisor, STREET, "", "2026-11-01", "2026-11-30").await.unwrap();
    assert_eq!(counts(&both.total.unwrap())[..2], [8, 7]);
    let empty = stats(&desk, &supervisor, STREET, "", "2026-10-01", "2026-10-31").await.unwrap();
    assert_eq!(counts(&empty.total.clone().unwrap()), [0; 11]);
    assert_eq!(empty.total.unwrap().resolution_rate.unwrap().value, 0.0);

    // Out of reach, and bad input.
    let denied = stats(&desk, &supervisor, DISTRICT, "", "2026-11-23", "2026-11-29").await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    for (from, to, field) in [
        ("2026-13-01", "2026-11-29", "from_date"),
        ("2026-11-23", "", "to_date"),
        ("2026-11-23", "2026-11-01", "to_date"),
        ("2000-01-01", "2026-11-01", "to_date"),
    ] {
        let status = stats(&desk, &supervisor, STREET, "", from, to).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(status.message().starts_with(field), "{field}: {status:?}");
    }
    desk.app.finish().await;
}

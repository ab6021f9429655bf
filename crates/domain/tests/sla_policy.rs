//! The SLA policy file: the shipped one loads and says what DESIGN §3 says; a broken one is refused
//! with a message naming the field.

use fengqiao_calendar::Clock as Length;
use fengqiao_domain::event::pb;
use fengqiao_domain::sla::{CLOCKS, Sla, SlaError, SlaPolicy, Subject, clock_name};
use jiff::SignedDuration;

const SHIPPED: &str = include_str!("../../../deploy/sla.toml");

fn policy() -> SlaPolicy {
    SlaPolicy::parse(SHIPPED).expect("the shipped policy loads")
}

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

fn subject(channel: pb::Channel, category: &str, urgency: pb::Urgency, tier: pb::Tier) -> Subject {
    Subject {
        channel: channel as i32,
        category: category.to_owned(),
        urgency: urgency as i32,
        risk_signals: Vec::new(),
        tier: tier as i32,
    }
}

/// The length of `clock` for `subject`, or `None` when the clock does not run for it.
fn length(policy: &SlaPolicy, clock: pb::Clock, subject: &Subject) -> Option<Length> {
    let c = policy.clock(clock).expect("every clock is defined");
    policy.applies(c, subject).then(|| policy.length(c, subject).0)
}

#[test]
fn the_shipped_policy_has_the_defaults_of_design_section_3() {
    let p = policy();
    let normal = subject(pb::Channel::WalkIn, "邻里纠纷", pb::Urgency::Normal, pb::Tier::Community);
    let emergency = Subject { urgency: pb::Urgency::Emergency as i32, ..normal.clone() };
    let hotline = Subject { channel: pb::Channel::Hotline12345 as i32, ..normal.clone() };
    use pb::Clock as C;
    // Urgent cases: 1 / 5 / 10 minutes; none for ordinary cases.
    assert_eq!(length(&p, C::UrgentResponse, &emergency), Some(Length::Elapsed(mins(1))));
    assert_eq!(length(&p, C::UrgentArrival, &emergency), Some(Length::Elapsed(mins(5))));
    assert_eq!(length(&p, C::UrgentFeedback, &emergency), Some(Length::Elapsed(mins(10))));
    assert_eq!(length(&p, C::UrgentResponse, &normal), None);
    // Sign-for: 2 working hours; urgent 1 minute.
    assert_eq!(length(&p, C::SignFor, &normal), Some(Length::WorkingHours(mins(120))));
    assert_eq!(length(&p, C::SignFor, &emergency), Some(Length::Elapsed(mins(1))));
    // 12345: emergency 2 h, utilities 24 h, general 7 days, complex 15 days; only for hotline orders.
    let reply = |category: &str, urgency: pb::Urgency| {
        length(
            &p,
            C::HotlineReply,
            &Subject { category: category.to_owned(), urgency: urgency as i32, ..hotline.clone() },
        )
    };
    assert_eq!(reply("邻里纠纷", pb::Urgency::Emergency), Some(Length::Elapsed(mins(120))));
    assert_eq!(reply("供电", pb::Urgency::Normal), Some(Length::Elapsed(mins(24 * 60))));
    assert_eq!(reply("邻里纠纷", pb::Urgency::Normal), Some(Length::Elapsed(mins(7 * 24 * 60))));
    assert_eq!(reply("疑难复杂", pb::Urgency::Normal), Some(Length::Elapsed(mins(15 * 24 * 60))));
    assert_eq!(length(&p, C::HotlineReply, &normal), None);
    assert!(p.clock(C::HotlineReply).expect("defined").hotline_deadline);
    // Mediation 30 days, pausable and extendable; partner 3 working days; judicial confirmation
    // window 30 days; follow-up 1 working day.
    assert_eq!(length(&p, C::Mediation, &normal), Some(Length::Elapsed(mins(30 * 24 * 60))));
    let mediation = p.clock(C::Mediation).expect("defined");
    assert!(mediation.pausable && mediation.extendable);
    assert_eq!(length(&p, C::ReferralAcceptance, &normal), Some(Length::WorkingDays(3)));
    assert_eq!(length(&p, C::JudicialConfirmationWindow, &normal), Some(Length::Elapsed(mins(30 * 24 * 60))));
    assert_eq!(length(&p, C::FollowUp, &normal), Some(Length::WorkingDays(1)));
    // Only mediation stops for pauses.
    for clock in CLOCKS {
        assert_eq!(p.clock(clock).expect("defined").pausable, clock == C::Mediation, "{}", clock_name(clock));
    }
    // Warnings at 75 %.
    assert!(p.clocks().iter().all(|c| (c.warn_at.value() - 0.75).abs() < 1e-9));
}

#[test]
fn the_shipped_ladder_escalates_as_design_section_3_says() {
    let p = policy();
    let route = |clock: pb::Clock, tier: pb::Tier| p.clock(clock).expect("defined").on_breach.route_at(tier);
    use pb::EscalationRoute as R;
    assert_eq!(route(pb::Clock::SignFor, pb::Tier::Community), R::Dispatcher);
    assert_eq!(route(pb::Clock::Mediation, pb::Tier::Grid), R::NextTier);
    assert_eq!(route(pb::Clock::Mediation, pb::Tier::Community), R::NextTier);
    assert_eq!(route(pb::Clock::Mediation, pb::Tier::Street), R::Dispatcher);
    assert_eq!(route(pb::Clock::Mediation, pb::Tier::District), R::Dispatcher);
    assert_eq!(route(pb::Clock::ReferralAcceptance, pb::Tier::Community), R::PartnerSupervisor);
    assert_eq!(route(pb::Clock::UrgentResponse, pb::Tier::Unspecified), R::Dispatcher);
    assert_eq!(route(pb::Clock::FollowUp, pb::Tier::Community), R::Owner);
}

#[test]
fn risk_signals_listed_in_the_policy_make_a_case_an_emergency() {
    let p = policy();
    let mut s = subject(pb::Channel::GridReport, "邻里纠纷", pb::Urgency::Normal, pb::Tier::Unspecified);
    assert_eq!(p.urgency(&s), pb::Urgency::Normal);
    s.risk_signals = vec![pb::RiskSignal::CivilToCriminal as i32];
    assert_eq!(p.urgency(&s), pb::Urgency::Emergency);
    s.risk_signals = vec![pb::RiskSignal::RepeatedPetition as i32];
    assert_eq!(p.urgency(&s), pb::Urgency::Normal);
}

#[test]
fn the_bundled_sla_counts_in_the_national_calendar() {
    let sla = Sla::bundled().expect("loads");
    assert_eq!(sla.calendar_for("500116001002").jurisdiction(), "cn");
    assert_eq!(sla.policy().version(), "2025-1");
}

/// The shipped file with `from` replaced by `to` (which must occur).
fn edited(from: &str, to: &str) -> Result<SlaPolicy, SlaError> {
    assert!(SHIPPED.contains(from), "the shipped policy contains {from:?}");
    SlaPolicy::parse(&SHIPPED.replacen(from, to, 1))
}

#[track_caller]
fn refused(from: &str, to: &str, field: &str, says: &str) {
    match edited(from, to) {
        Err(SlaError::Invalid { field: f, problem }) => {
            assert_eq!(f, field, "the error names the field ({problem})");
            assert!(problem.contains(says), "{problem:?} should say {says:?}");
        }
        other => panic!("{from:?} → {to:?} should be refused at {field}, got {other:?}"),
    }
}

#[test]
fn a_broken_policy_is_refused_naming_the_field() {
    refused("length = \"2 working hours\"", "length = \"2 workday hours\"", "clocks.sign_for.length", "not a length");
    refused(
        "length = \"3 working days\"",
        "length = \"0 working days\"",
        "clocks.referral_acceptance.length",
        "at least 1",
    );
    refused("length = \"30 days\"\npausable", "length = \"thirty days\"\npausable", "clocks.mediation.length", "e.g.");
    refused("warn_at = 0.75", "warn_at = 1.5", "defaults.warn_at", "between 0 and 1");
    refused(
        "only = { channel = [\"hotline_12345\"] }",
        "only = { channel = [\"hotline12345\"] }",
        "clocks.hotline_reply.only.channel[0]",
        "expected one of hotline_12345, grid_report",
    );
    refused(
        "urgency = [\"emergency\"]\nlength = \"1 minute\"",
        "urgency = [\"critical\"]\nlength = \"1 minute\"",
        "clocks.sign_for.rules[0].urgency[0]",
        "normal, urgent, emergency",
    );
    refused(
        "escalate_from = [\"grid\", \"community\"]",
        "escalate_from = [\"grid\", \"town\"]",
        "clocks.mediation.escalate_from[1]",
        "grid, community, street, district",
    );
    refused("otherwise = \"dispatcher\"\n", "", "clocks.mediation.otherwise", "is required");
    refused(
        "otherwise = \"dispatcher\"\n",
        "otherwise = \"next_tier\"\n",
        "clocks.mediation.otherwise",
        "must name a queue",
    );
    refused(
        "on_breach = \"partner_supervisor\"",
        "on_breach = \"partner_supervisor\"\notherwise = \"owner\"",
        "clocks.referral_acceptance.otherwise",
        "only applies",
    );
    refused(
        "on_breach = \"partner_supervisor\"",
        "on_breach = \"supervisor\"",
        "clocks.referral_acceptance.on_breach",
        "owner, dispatcher, next_tier, partner_supervisor",
    );
    refused(
        "[clocks.follow_up]\nlength = \"1 working day\"\non_breach = \"owner\"\n",
        "",
        "clocks.follow_up",
        "is missing",
    );
    refused("[clocks.follow_up]", "[clocks.follow_up_call]", "clocks.follow_up_call", "is not a clock");
    refused(
        "[clocks.follow_up]\n",
        "[clocks.follow_up]\nhotline_deadline = true\n",
        "clocks.follow_up.hotline_deadline",
        "only the hotline_reply clock",
    );
    refused(
        "emergency_risk_signals = [\"violence\"",
        "emergency_risk_signals = [\"fight\"",
        "defaults.emergency_risk_signals[0]",
        "violence, civil_to_criminal",
    );
    refused("[calendars]\n", "[calendars]\n\"5001\" = \"cn-cq\"\n", "calendars.5001", "12-digit");
}

#[test]
fn unknown_fields_bad_toml_and_other_formats_are_refused() {
    assert!(
        matches!(edited("pausable = true", "pausable = true\npauseable = true"), Err(SlaError::Toml(m)) if m.contains("pauseable"))
    );
    assert!(matches!(edited("format = 1", "format = 2"), Err(SlaError::UnsupportedFormat { found: 2 })));
    assert!(matches!(SlaPolicy::parse("format = "), Err(SlaError::Toml(m)) if m.contains("line 1")));
}

#[test]
fn a_unit_subtree_may_count_in_its_own_calendar() {
    let p = edited("[calendars]\n", "[calendars]\n\"500116001000\" = \"cn-cq-jiangjin\"\n").expect("loads");
    assert_eq!(p.calendar_for("500116001002"), "cn-cq-jiangjin");
    assert_eq!(p.calendar_for("50011600100201"), "cn-cq-jiangjin");
    assert_eq!(p.calendar_for("500116002003"), "cn");
    // The calendars it names must be loaded.
    let national = fengqiao_calendar::Calendar::parse(include_str!("../../../deploy/calendars/cn-national-2026.toml"))
        .expect("loads");
    match Sla::new(p, vec![national]) {
        Err(SlaError::Invalid { field, problem }) => {
            assert_eq!(field, "calendar");
            assert!(problem.contains("cn-cq-jiangjin"), "{problem}");
        }
        other => panic!("a missing calendar must be refused, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The committee directory

const DIRECTORY: &str = include_str!("../../../deploy/committees.toml");

#[test]
fn the_next_tier_committee_is_the_nearest_one_above_the_case() {
    use fengqiao_domain::directory::Directory;
    let d = Directory::parse(DIRECTORY).expect("the shipped directory loads");
    let serving = |unit: &str, tier: pb::Tier| d.serving(unit, tier).map(|c| c.id.to_string());
    // A case that arose in the grid of 艾坪山 community.
    assert_eq!(serving("50011600100201", pb::Tier::Community).as_deref(), Some("cmt-500116001002"));
    assert_eq!(serving("50011600100201", pb::Tier::Street).as_deref(), Some("cmt-500116001000"));
    assert_eq!(serving("50011600100201", pb::Tier::District).as_deref(), Some("cmt-500116000000"));
    // Another street's community goes to its own street, not 几江.
    assert_eq!(serving("500116002003", pb::Tier::Street).as_deref(), Some("cmt-500116002000"));
    // Nothing serves a unit outside every committee's subtree.
    assert_eq!(serving("500101001001", pb::Tier::Street), None);
    assert_eq!(d.version(), "sample-1");
}

#[test]
fn a_broken_directory_is_refused_naming_the_entry() {
    use fengqiao_domain::directory::{Directory, DirectoryError};
    let broken = |from: &str, to: &str| {
        assert!(DIRECTORY.contains(from), "the shipped directory contains {from:?}");
        Directory::parse(&DIRECTORY.replacen(from, to, 1))
    };
    let field_of = |r: Result<Directory, DirectoryError>| match r {
        Err(DirectoryError::Invalid { field, problem }) => format!("{field}: {problem}"),
        other => panic!("expected a field error, got {other:?}"),
    };
    assert!(
        field_of(broken("tier = \"district\"", "tier = \"county\"")).starts_with("committees[0].tier: unknown tier")
    );
    assert!(field_of(broken("unit = \"500116000000\"", "unit = \"5001160\"")).starts_with("committees[0].unit:"));
    assert!(
        field_of(broken("id = \"cmt-500116001000\"", "id = \"cmt-500116000000\"")).contains("listed twice"),
        "duplicate ids"
    );
    assert!(
        field_of(broken("unit = \"500116002000\"", "unit = \"500116001000\""))
            .contains("already has a street committee"),
        "two committees of one tier on a unit"
    );
    assert!(matches!(broken("format = 1", "format = 3"), Err(DirectoryError::UnsupportedFormat { found: 3 })));
    assert!(matches!(broken("source = ", "origin = "), Err(DirectoryError::Toml(_))));
}

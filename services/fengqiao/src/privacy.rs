//! Who sees personal data in full. Party names, phone numbers, resident ID numbers and addresses
//! are shown in full only to the roles that work with the parties, and only on the cases they
//! work; everyone else gets them masked by [`fengqiao_domain::privacy`] (张*三, 138****5678,
//! 110101********123X, addresses cut after the street). [`FULL_VIEW`] is the rule, one row per
//! role; `docs/security.md` renders it.
//!
//! Every response carrying case data passes through a [`View`]: build the case's [`Holders`]
//! (from a summary, a folded [`Case`] or a timeline), ask [`view`] for the caller's view, and
//! apply it to each summary and event before it leaves. Partner agents also see only the part of
//! the timeline a referral needs ([`shown_to`]).

use fengqiao_domain::Case;
use fengqiao_domain::case::JudicialStatus;
use fengqiao_domain::event::pb::Role;
use fengqiao_domain::event::{Kind, pb};
use fengqiao_domain::privacy as mask;
use fengqiao_proto::api;

use crate::auth::Principal;
use crate::authz;

/// When a role sees a case's personal data in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Never: always masked.
    Never,
    /// The case arose in the caller's unit subtree, or a committee in that subtree owns it.
    CaseInSubtree,
    /// The caller's committee owns the case (without a `committee` claim: a committee in the
    /// caller's unit subtree); before any committee owns it, the case arose in the caller's subtree.
    OwningCommittee,
    /// The caller's institution holds an open referral of the case, or hears its judicial
    /// confirmation.
    ReferralHolder,
}

impl Need {
    /// The rule in words, for the docs.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Never => "never (always masked)",
            Self::CaseInSubtree => "cases that arose in, or are owned by a committee in, their unit subtree",
            Self::OwningCommittee => {
                "cases their committee owns (without a committee claim: a committee in their unit subtree); \
                 undispatched cases that arose in their unit subtree"
            }
            Self::ReferralHolder => {
                "cases with an open referral to their institution, or whose judicial confirmation their court hears"
            }
        }
    }
}

use Role::{Admin, CommitteeLead, Dispatcher, GridWorker, Hotline, Mediator, PartnerAgent, Supervisor};

/// Which roles see personal data in full, when, and why. A role not listed sees it masked.
pub const FULL_VIEW: &[(Role, Need, &str)] = &[
    (Hotline, Need::Never, "the 12345 system already holds its callers' data; it gets statuses back, not people"),
    (GridWorker, Need::CaseInSubtree, "settles small disputes on the spot and reported them from the grid"),
    (Mediator, Need::OwningCommittee, "works the committee's cases with the parties"),
    (CommitteeLead, Need::OwningCommittee, "assigns and supervises the committee's cases"),
    (Dispatcher, Need::CaseInSubtree, "triages and dispatches, and calls parties about urgent cases"),
    (PartnerAgent, Need::ReferralHolder, "a court, police station or bureau must reach the parties of its referral"),
    (Supervisor, Need::Never, "oversight and statistics need no identities"),
    (Admin, Need::Never, "manages configuration, not cases"),
];

/// What the privacy rule needs to know about a case: where it arose, who owns it, and which
/// partner institutions need its parties now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    pub unit_code: String,
    pub committee_id: String,
    pub committee_unit_code: String,
    /// Partner institutions with an open referral, and the court of a pending judicial confirmation.
    pub partners: Vec<String>,
    /// The parties' names, masked also where free text mentions them.
    pub party_names: Vec<String>,
}

impl Holders {
    /// From a queue row or case summary (no partners: summaries do not carry referrals).
    pub fn of_summary(s: &api::CaseSummary) -> Self {
        Self {
            unit_code: s.unit_code.clone(),
            committee_id: s.committee_id.clone(),
            committee_unit_code: s.committee_unit_code.clone(),
            partners: Vec::new(),
            party_names: s.parties.iter().map(|p| p.name.clone()).collect(),
        }
    }

    /// From a case folded from its events.
    pub fn of_case(case: &Case) -> Self {
        let mut partners: Vec<String> =
            case.referrals.iter().filter(|r| r.status.is_open()).map(|r| r.partner_id.clone()).collect();
        if matches!(case.judicial, Some(JudicialStatus::Requested | JudicialStatus::Accepted))
            && let Some(court) = &case.judicial_court
        {
            partners.push(court.clone());
        }
        let (committee_id, committee_unit_code) = case.committee.clone().unwrap_or_default();
        Self {
            unit_code: case.unit_code.clone(),
            committee_id,
            committee_unit_code,
            partners,
            party_names: case.party_names.clone(),
        }
    }
}

/// How a caller sees one case's personal data: in full, or masked (knowing the case's party
/// names, to mask them in free text too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    full: bool,
    names: Vec<String>,
}

/// The rule of `role` (roles without a row: [`Need::Never`]).
pub fn need(role: Role) -> Need {
    FULL_VIEW.iter().find(|(r, _, _)| *r == role).map_or(Need::Never, |(_, n, _)| *n)
}

/// How `principal` sees the personal data of the case `holders` describes.
pub fn view(principal: &Principal, holders: &Holders) -> View {
    let full = match need(principal.role) {
        Need::Never => false,
        Need::CaseInSubtree => {
            authz::in_subtree(principal, &holders.unit_code)
                || authz::in_subtree(principal, &holders.committee_unit_code)
        }
        Need::OwningCommittee => {
            if holders.committee_id.is_empty() {
                authz::in_subtree(principal, &holders.unit_code)
            } else {
                match &principal.committee_id {
                    Some(c) => c.as_str() == holders.committee_id,
                    None => authz::in_subtree(principal, &holders.committee_unit_code),
                }
            }
        }
        Need::ReferralHolder => {
            principal.partner_id.as_ref().is_some_and(|p| holders.partners.iter().any(|h| h == p.as_str()))
        }
    };
    View { full, names: if full { Vec::new() } else { holders.party_names.clone() } }
}

impl View {
    /// The view that shows everything (for the parties' own case handlers).
    pub fn full() -> Self {
        Self { full: true, names: Vec::new() }
    }

    /// A masking view; `party_names` are masked wherever free text mentions them.
    pub fn masked(party_names: Vec<String>) -> Self {
        Self { full: false, names: party_names }
    }

    /// Whether personal data is shown in full.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Applies the view to a case summary (a `GetCase` summary or a queue row).
    pub fn summary(&self, s: &mut api::CaseSummary) {
        if !self.full {
            let names: Vec<String> = self.names.iter().chain(s.parties.iter().map(|p| &p.name)).cloned().collect();
            s.description = mask::mask_free_text(&s.description, &names);
            s.parties.iter_mut().for_each(mask::mask_party);
            s.address = mask::mask_address(&s.address);
        }
    }

    /// Applies the view to an event.
    pub fn event(&self, e: &mut pb::Event) {
        if !self.full
            && let Some(kind) = e.kind.as_mut()
        {
            mask::mask_event(kind, &self.names);
        }
    }

    /// Applies the view to a timeline entry's event.
    pub fn entry(&self, t: &mut api::TimelineEntry) {
        if let Some(e) = t.event.as_mut() {
            self.event(e);
        }
    }
}

/// Whether `principal` sees this event of `case` in the timeline at all. Everyone who may read a
/// case sees its whole timeline, except partner agents: they see the registration, their own
/// institution's referrals, the outcome (settlement, failure, closure) and, for the court hearing
/// it, the judicial confirmation — what a referral needs, and no session records, notes or other
/// partners' referrals.
pub fn shown_to(principal: &Principal, case: &Case, kind: &Kind) -> bool {
    if principal.role != PartnerAgent {
        return true;
    }
    let partner = principal.partner_id.as_ref().map(|p| p.as_str());
    let own_referral = |id: &str| case.referrals.iter().any(|r| r.id == id && Some(r.partner_id.as_str()) == partner);
    match kind {
        Kind::ReferralMade(e) => Some(e.partner_id.as_str()) == partner,
        Kind::ReferralAccepted(e) => own_referral(&e.referral_id),
        Kind::ReferralDeclined(e) => own_referral(&e.referral_id),
        Kind::ReferralReturned(e) => own_referral(&e.referral_id),
        Kind::ReferralConcluded(e) => own_referral(&e.referral_id),
        Kind::JudicialConfirmationRequested(_)
        | Kind::JudicialConfirmationAccepted(_)
        | Kind::JudicialConfirmationRuled(_) => case.judicial_court.as_deref() == partner,
        Kind::CaseRegistered(_)
        | Kind::CaseSettled(_)
        | Kind::PerformanceRecorded(_)
        | Kind::MediationFailed(_)
        | Kind::CaseClosed(_)
        | Kind::CaseReopened(_)
        | Kind::CaseMerged(_)
        | Kind::PartyContactCorrected(_) => true,
        Kind::CaseDispatched(_)
        | Kind::CaseReturned(_)
        | Kind::CaseAccepted(_)
        | Kind::MediatorsAssigned(_)
        | Kind::SessionScheduled(_)
        | Kind::SessionHeld(_)
        | Kind::ArrivedOnSite(_)
        | Kind::ProgressReported(_)
        | Kind::ClockPaused(_)
        | Kind::ClockResumed(_)
        | Kind::ExtensionGranted(_)
        | Kind::CaseEscalated(_)
        | Kind::FollowUpRecorded(_)
        | Kind::DeadlineWarned(_)
        | Kind::DeadlineBreached(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use fengqiao_domain::values::{Ident, UnitCode};

    use super::*;

    fn principal(role: Role, unit: &str, partner: Option<&str>, committee: Option<&str>) -> Principal {
        Principal {
            subject: "someone".into(),
            role,
            unit: UnitCode::parse("u", unit).unwrap(),
            partner_id: partner.map(|p| Ident::parse("p", p).unwrap()),
            committee_id: committee.map(|c| Ident::parse("c", c).unwrap()),
        }
    }

    fn owned() -> Holders {
        Holders {
            unit_code: "500116001002".into(),
            committee_id: "aipingshan".into(),
            committee_unit_code: "500116001002".into(),
            partners: vec!["court-1".into()],
            party_names: vec!["张三".into()],
        }
    }

    #[test]
    fn every_role_has_a_rule_and_each_rule_decides() {
        for role in [Hotline, GridWorker, Mediator, CommitteeLead, Dispatcher, PartnerAgent, Supervisor, Admin] {
            assert!(FULL_VIEW.iter().any(|(r, _, _)| *r == role), "{role:?} has no privacy rule");
        }
        let h = owned();
        let full = |p: Principal| view(&p, &h).is_full();
        assert!(full(principal(Mediator, "500116001002", None, Some("aipingshan"))));
        assert!(!full(principal(Mediator, "500116001002", None, Some("traffic-committee"))));
        assert!(full(principal(CommitteeLead, "500116001002", None, None)));
        assert!(!full(principal(CommitteeLead, "500116002003", None, None)));
        assert!(full(principal(Dispatcher, "500116000000", None, None)));
        assert!(!full(principal(Dispatcher, "500117000000", None, None)));
        assert!(full(principal(GridWorker, "500116001002", None, None)));
        assert!(full(principal(PartnerAgent, "500116000000", Some("court-1"), None)));
        assert!(!full(principal(PartnerAgent, "500116000000", Some("police-2"), None)));
        assert!(!full(principal(Supervisor, "500116000000", None, None)));
        assert!(!full(principal(Admin, "500116000000", None, None)));
        assert!(!full(principal(Hotline, "500116000000", None, None)));
        assert!(!full(principal(Role::System, "500116000000", None, None)));
    }

    #[test]
    fn masked_summary_hides_parties_and_address() {
        let mut s = api::CaseSummary {
            parties: vec![pb::Party {
                name: "张三".into(),
                role: 1,
                phone: "13812345678".into(),
                resident_id: "11010519491231002X".into(),
            }],
            address: "重庆市江津区几江街道艾坪山社区3栋".into(),
            ..Default::default()
        };
        s.description = "张三反映漏水".into();
        let mut full = s.clone();
        View::full().summary(&mut full);
        assert_eq!(full, s);
        View::masked(vec![]).summary(&mut s);
        assert_eq!(s.description, "张*反映漏水");
        assert_eq!(s.parties[0].name, "张*");
        assert_eq!(s.parties[0].phone, "138****5678");
        assert_eq!(s.parties[0].resident_id, "110105********002X");
        assert_eq!(s.address, "重庆市江津区几江街道****");
    }
}

//! Who may call what: one table of RPC × roles × scope ([`MATRIX`]), consulted by every RPC
//! before it does anything. An RPC missing from the table is denied to everyone (and the matrix
//! test in `tests/authz_matrix.rs` fails for it). `docs/authorization.md` is rendered from the
//! table by `fengqiao authz-matrix`; a test fails when the doc is stale.
//!
//! The role decides whether an RPC may be called at all; the scope and the role together decide
//! which cases it reaches ([`reaches_case`]): committee staff reach their committee's cases,
//! dispatchers and grid workers their unit subtree, partner agents their institution's
//! referrals, the hotline its own work orders. Supervisors and admins have no command at all:
//! they read; nobody rewrites history.

use fengqiao_domain::Case;
use fengqiao_domain::event::pb::{Channel, Role};
use fengqiao_domain::values::UnitCode;

use crate::auth::Principal;

/// How far a permitted caller reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Commands: the case must be within the caller's reach ([`reaches_case`]). Queries: what is
    /// listed or read is limited to the caller's reach ([`reads_case`], unit subtree, committee).
    UnitSubtree,
    /// The caller acts on a referral addressed to their own partner institution.
    OwnReferral,
    /// The caller's court hears the case's judicial confirmation application.
    OwnCourt,
    /// The caller registers into their unit subtree ([`check_intake`]); a retry of an existing
    /// registration must reach the case.
    Intake,
}

impl Scope {
    /// The scope in words, for the docs.
    pub fn describe(self) -> &'static str {
        match self {
            Self::UnitSubtree => "cases within the caller's reach (see below)",
            Self::OwnReferral => "referrals addressed to the caller's institution",
            Self::OwnCourt => "judicial confirmations applied for at the caller's court",
            Self::Intake => "registration into the caller's unit subtree",
        }
    }
}

use Role::{Admin, CommitteeLead, Dispatcher, GridWorker, Hotline, Mediator, PartnerAgent, Supervisor};

/// Every RPC, the roles that may call it, and its scope.
pub const MATRIX: &[(&str, &[Role], Scope)] = &[
    ("RegisterCase", &[Hotline, GridWorker, Mediator, CommitteeLead, Dispatcher, PartnerAgent], Scope::Intake),
    // A committee lead dispatches too: a walk-in registered at the committee (来访) is taken on by
    // dispatching it to the committee itself, without waiting for the command centre. Either role
    // dispatches only to a committee inside their own unit (checked by the RPC).
    ("DispatchCase", &[Dispatcher, CommitteeLead], Scope::UnitSubtree),
    ("ReturnCase", &[CommitteeLead, Mediator], Scope::UnitSubtree),
    ("AcceptCase", &[CommitteeLead, Mediator, GridWorker], Scope::UnitSubtree),
    ("AssignMediators", &[CommitteeLead], Scope::UnitSubtree),
    ("ScheduleSession", &[Mediator, CommitteeLead], Scope::UnitSubtree),
    ("RecordSession", &[Mediator, CommitteeLead], Scope::UnitSubtree),
    ("RecordArrival", &[Mediator, CommitteeLead, GridWorker], Scope::UnitSubtree),
    ("ReportProgress", &[Mediator, CommitteeLead, GridWorker, Dispatcher], Scope::UnitSubtree),
    ("PauseClock", &[CommitteeLead], Scope::UnitSubtree),
    ("ResumeClock", &[CommitteeLead], Scope::UnitSubtree),
    ("GrantExtension", &[CommitteeLead], Scope::UnitSubtree),
    ("ReferCase", &[Mediator, CommitteeLead, Dispatcher], Scope::UnitSubtree),
    ("RecordSettlement", &[Mediator, CommitteeLead], Scope::UnitSubtree),
    ("RecordPerformance", &[Mediator, CommitteeLead], Scope::UnitSubtree),
    ("RequestJudicialConfirmation", &[Mediator, CommitteeLead], Scope::UnitSubtree),
    ("RecordMediationFailure", &[Mediator, CommitteeLead], Scope::UnitSubtree),
    ("EscalateCase", &[CommitteeLead, Dispatcher], Scope::UnitSubtree),
    ("CloseCase", &[Mediator, CommitteeLead, GridWorker, Dispatcher], Scope::UnitSubtree),
    ("WithdrawCase", &[Mediator, CommitteeLead, Dispatcher], Scope::UnitSubtree),
    ("MergeCase", &[CommitteeLead, Dispatcher], Scope::UnitSubtree),
    ("AcceptReferral", &[PartnerAgent], Scope::OwnReferral),
    ("DeclineReferral", &[PartnerAgent], Scope::OwnReferral),
    ("ReturnReferral", &[PartnerAgent], Scope::OwnReferral),
    ("ConcludeReferral", &[PartnerAgent], Scope::OwnReferral),
    ("AcceptJudicialConfirmation", &[PartnerAgent], Scope::OwnCourt),
    ("RuleJudicialConfirmation", &[PartnerAgent], Scope::OwnCourt),
    ("RecordFollowUp", &[Mediator, CommitteeLead, Dispatcher, Hotline], Scope::UnitSubtree),
    ("ReopenCase", &[CommitteeLead, Dispatcher], Scope::UnitSubtree),
    // Corrections are new events; those who work with the parties record them.
    ("CorrectPartyContact", &[Mediator, CommitteeLead, Dispatcher], Scope::UnitSubtree),
    (
        "GetCase",
        &[Hotline, GridWorker, Mediator, CommitteeLead, Dispatcher, PartnerAgent, Supervisor, Admin],
        Scope::UnitSubtree,
    ),
    ("ListQueue", &[GridWorker, Mediator, CommitteeLead, Dispatcher, Supervisor, Admin], Scope::UnitSubtree),
    // Read models (docs/read-models.md): entries are always limited to the caller's unit subtree.
    ("ListCommitteeQueue", &[GridWorker, Mediator, CommitteeLead, Dispatcher, Supervisor, Admin], Scope::UnitSubtree),
    ("ListMediatorQueue", &[Mediator, CommitteeLead, Dispatcher, Supervisor, Admin], Scope::UnitSubtree),
    // A partner agent reads only its own institution's referrals, wherever the cases arose.
    ("ListReferrals", &[PartnerAgent, Mediator, CommitteeLead, Dispatcher, Supervisor, Admin], Scope::UnitSubtree),
    ("GetStatistics", &[CommitteeLead, Dispatcher, Supervisor, Admin], Scope::UnitSubtree),
    // The escalation board: who supervises overdue work (督办) in their unit subtree.
    ("ListEscalations", &[CommitteeLead, Dispatcher, Supervisor, Admin], Scope::UnitSubtree),
    ("WatchQueue", &[GridWorker, Mediator, CommitteeLead, Dispatcher, Supervisor, Admin], Scope::UnitSubtree),
];

/// The scope granted to `principal` for `rpc`.
///
/// # Errors
/// A reason when the role may not call the RPC at all.
pub fn permit(principal: &Principal, rpc: &str) -> Result<Scope, String> {
    match MATRIX.iter().find(|(name, _, _)| *name == rpc) {
        Some((_, roles, scope)) if roles.contains(&principal.role) => Ok(*scope),
        Some(_) => Err(format!("role {} may not call {rpc}", principal.role.as_str_name())),
        None => Err(format!("{rpc} has no authorisation rule")),
    }
}

/// Whether a unit code lies in the caller's subtree.
pub fn in_subtree(principal: &Principal, unit: &str) -> bool {
    UnitCode::parse("unit", unit).is_ok_and(|u| u.is_within(&principal.unit))
}

/// Whether the case is their committee's to work for committee staff: the committee named in
/// their token owns it or, without that claim, a committee hanging on a unit in their subtree;
/// a case no committee owns yet (a walk-in at their door, awaiting dispatch) when it arose in
/// their unit subtree.
fn committee_owns(principal: &Principal, case: &Case) -> bool {
    match (&principal.committee_id, &case.committee) {
        (Some(own), Some((id, _))) => own.as_str() == id,
        (None, Some((_, unit))) => in_subtree(principal, unit),
        (_, None) => in_subtree(principal, &case.unit_code),
    }
}

/// Whether the case arose in the caller's subtree or a committee in it owns the case.
fn in_reach_of_unit(principal: &Principal, case: &Case) -> bool {
    in_subtree(principal, &case.unit_code)
        || case.committee.as_ref().is_some_and(|(_, unit)| in_subtree(principal, unit))
}

/// Whether the case concerns the caller's partner institution: a referral to it, a judicial
/// confirmation at it (a court), or the case was sent in by it.
fn concerns_partner(principal: &Principal, case: &Case) -> bool {
    let Some(partner) = principal.partner_id.as_ref().map(|p| p.as_str()) else { return false };
    case.referrals.iter().any(|r| r.partner_id == partner)
        || case.judicial_court.as_deref() == Some(partner)
        || case.source_partner_id == partner
}

/// Whether the case is the hotline's own: a 12345 work order in its subtree.
fn hotline_order(principal: &Principal, case: &Case) -> bool {
    case.channel == Channel::Hotline12345 as i32 && in_subtree(principal, &case.unit_code)
}

/// Whether a command of the caller may touch the case:
/// - mediators and committee leads: cases their committee owns, and cases no committee owns yet
///   that arose in their unit subtree;
/// - dispatchers and grid workers: cases that arose in, or are owned by a committee in, their
///   unit subtree;
/// - partner agents: cases that concern their institution (the scope then narrows to the
///   referral or the court);
/// - the hotline: its own 12345 work orders;
/// - supervisors, admins and anyone else: nothing.
pub fn reaches_case(principal: &Principal, case: &Case) -> bool {
    match principal.role {
        Mediator | CommitteeLead => committee_owns(principal, case),
        Dispatcher | GridWorker => in_reach_of_unit(principal, case),
        PartnerAgent => concerns_partner(principal, case),
        Hotline => hotline_order(principal, case),
        Supervisor | Admin | Role::System | Role::Unspecified => false,
    }
}

/// Whether the caller may read the case (`GetCase`): partner agents the cases that concern their
/// institution, the hotline its own 12345 orders, committee staff their committee's cases and
/// (masked, see `privacy`) the others in their unit subtree, everyone else their unit subtree. A
/// case out of reach is answered as absent.
pub fn reads_case(principal: &Principal, case: &Case) -> bool {
    match principal.role {
        PartnerAgent => concerns_partner(principal, case),
        Hotline => hotline_order(principal, case),
        Mediator | CommitteeLead => committee_owns(principal, case) || in_reach_of_unit(principal, case),
        Dispatcher | GridWorker | Supervisor | Admin => in_reach_of_unit(principal, case),
        Role::System | Role::Unspecified => false,
    }
}

/// Checks a registration: the unit must lie in the caller's subtree; the hotline registers only
/// 12345 work orders; a partner agent only inbound referrals from its own institution.
///
/// # Errors
/// A reason for the denial, free of personal data.
pub fn check_intake(
    principal: &Principal,
    channel: Channel,
    unit: &UnitCode,
    source_partner: Option<&str>,
) -> Result<(), String> {
    if !unit.is_within(&principal.unit) {
        return Err("unit_code is outside your unit".to_owned());
    }
    match principal.role {
        Hotline if channel != Channel::Hotline12345 => {
            Err("the hotline registers 12345 work orders only (channel CHANNEL_HOTLINE_12345)".to_owned())
        }
        PartnerAgent if source_partner != principal.partner_id.as_ref().map(|p| p.as_str()) => {
            Err("source_partner_id is not your institution".to_owned())
        }
        _ => Ok(()),
    }
}

/// Checks a command on `case` under `scope`; `referral_id` names the referral for `OwnReferral`.
///
/// # Errors
/// A reason for the denial, free of personal data.
pub fn check_case(principal: &Principal, scope: Scope, case: &Case, referral_id: Option<&str>) -> Result<(), String> {
    let partner = principal.partner_id.as_ref().map(|p| p.as_str());
    match scope {
        Scope::OwnReferral => {
            let addressed = case
                .referrals
                .iter()
                .any(|r| Some(r.id.as_str()) == referral_id && Some(r.partner_id.as_str()) == partner);
            if addressed { Ok(()) } else { Err("the referral is not addressed to your institution".to_owned()) }
        }
        Scope::OwnCourt => {
            if partner.is_some() && case.judicial_court.as_deref() == partner {
                Ok(())
            } else {
                Err("the judicial confirmation application was not made to your court".to_owned())
            }
        }
        Scope::UnitSubtree | Scope::Intake => {
            if reaches_case(principal, case) {
                Ok(())
            } else if matches!(principal.role, Mediator | CommitteeLead) && in_reach_of_unit(principal, case) {
                Err("the case is owned by another committee".to_owned())
            } else {
                Err("the case is outside your unit".to_owned())
            }
        }
    }
}

/// The matrix as Markdown: `docs/authorization.md`.
pub fn render_markdown() -> String {
    const ROLES: [Role; 8] =
        [Hotline, GridWorker, Mediator, CommitteeLead, Dispatcher, PartnerAgent, Supervisor, Admin];
    let name = |r: Role| crate::auth::ROLES.iter().find(|(_, x)| *x == r).map_or("?", |(n, _)| *n);
    let mut out = String::from(
        "# Authorisation matrix\n\n\
         Generated from `MATRIX` in `services/fengqiao/src/authz.rs` by `fengqiao authz-matrix`; \
         `cargo nextest run -p fengqiao` fails when this file is stale. See `docs/security.md` for \
         tokens, personal data and limits.\n\n\
         A role not ticked gets `PERMISSION_DENIED` (logged with actor and RPC). A ticked role is \
         still limited by the scope.\n\n",
    );
    out.push_str("| RPC | scope |");
    for r in ROLES {
        out.push_str(&format!(" {} |", name(r)));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(ROLES.len()));
    out.push('\n');
    for (rpc, roles, scope) in MATRIX {
        out.push_str(&format!("| `{rpc}` | {} |", scope.describe()));
        for r in ROLES {
            out.push_str(if roles.contains(&r) { " ✓ |" } else { " |" });
        }
        out.push('\n');
    }
    out.push_str(
        "\n## Reach\n\n\
         What a command reaches, by role:\n\n\
         - `mediator`, `committee_lead`: cases their committee owns: the committee in the token's \
         `committee` claim or, without that claim, a committee hanging on a unit in their subtree; \
         and cases no committee owns yet that arose in their subtree (walk-ins at their door).\n\
         - `dispatcher`, `grid_worker`: cases that arose in, or are owned by a committee in, their \
         unit subtree.\n\
         - `partner_agent`: the referral addressed to their institution (`partner` claim), the \
         judicial confirmation applied for at their court, and registering cases their \
         institution sends in.\n\
         - `hotline`: its own 12345 work orders in its subtree; it registers nothing else.\n\
         - `supervisor`, `admin`: no command at all. No RPC deletes or edits an event; corrections \
         are new events.\n\n\
         What `GetCase` reads: as above, and committee staff also read (masked) the other cases in \
         their unit subtree; supervisors and admins read their subtree. A case out of reach is \
         answered `NOT_FOUND`, not `PERMISSION_DENIED`, so its existence is not disclosed.\n\n\
         ## Personal data\n\n\
         Who sees party names, phone and ID numbers and addresses in full (`FULL_VIEW` in \
         `services/fengqiao/src/privacy.rs`); everyone else sees them masked (张*三, 138****5678, \
         110101********123X, the address cut after the street).\n\n\
         | role | in full on | why |\n|---|---|---|\n",
    );
    for r in ROLES {
        let need = crate::privacy::need(r);
        let why = crate::privacy::FULL_VIEW.iter().find(|(x, _, _)| *x == r).map_or("", |(_, _, w)| *w);
        out.push_str(&format!("| {} | {} | {why} |\n", name(r), need.describe()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_authorization_md_is_rendered_from_the_matrix() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/authorization.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == render_markdown(),
            "docs/authorization.md is stale: run `cargo run -p fengqiao -- authz-matrix > docs/authorization.md`"
        );
    }
}

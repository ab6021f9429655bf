//! The gRPC edge: authenticate, authorise by the matrix in [`crate::authz`], parse the request
//! into domain values, run the command or query, and map every error to a status in one place
//! ([`status`]).

mod escalations;
mod linkage_queues;
pub mod parse;
mod queries;
mod statistics;
mod watch;
mod work_queues;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use fengqiao_domain::Command;
use fengqiao_domain::values::{CaseId, FieldError, Ident, LongText, PhoneNumber, ResidentId, ShortText};
use fengqiao_proto::api;

use crate::auth::{Authenticator, Principal};
use crate::authz::{self, Scope};
use crate::commands::{CommandError, CommandHandler, Meta, Outcome};
use crate::state::Shared;

/// Maps a command error to its gRPC status. Exhaustive on purpose: a new variant must be placed.
pub fn status(error: CommandError) -> Status {
    use fengqiao_domain::Rejection;
    use fengqiao_eventstore::Error as Store;
    match error {
        CommandError::Invalid(e) => Status::invalid_argument(e.to_string()),
        CommandError::Rejected(Rejection::UnknownCase) => Status::not_found("no such case"),
        CommandError::Rejected(Rejection::Refused(reason)) => Status::failed_precondition(reason),
        CommandError::Conflict { .. } => Status::aborted(error.to_string()),
        CommandError::Denied(reason) => Status::permission_denied(reason),
        CommandError::Store(e @ (Store::Conflict { .. } | Store::Unavailable(_))) => {
            tracing::warn!(error = %e, "event store unavailable");
            Status::unavailable("the event store is unavailable; retry with the same idempotency key")
        }
        CommandError::Store(e @ Store::TooLarge(_)) => Status::invalid_argument(e.to_string()),
        CommandError::Store(e @ (Store::StreamMismatch { .. } | Store::Corrupt { .. })) => {
            tracing::error!(error = %e, "event store fault");
            Status::internal("internal error")
        }
    }
}

/// A denial: logged with actor, role, unit and RPC (never personal data: reasons name fields and
/// scopes, not values), and answered `PERMISSION_DENIED`. Every denial goes through here.
pub(crate) fn denied(principal: &Principal, rpc: &str, reason: impl Into<String>) -> Status {
    let reason = reason.into();
    tracing::warn!(
        actor = %principal.subject,
        role = principal.role.as_str_name(),
        unit = %principal.unit,
        rpc,
        "denied: {reason}"
    );
    Status::permission_denied(reason)
}

/// A bad field as `INVALID_ARGUMENT`.
pub fn invalid(e: FieldError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// The shared handler behind every service.
#[derive(Clone)]
pub struct Api {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Api")
    }
}

impl Api {
    fn auth(&self) -> &Authenticator {
        &self.shared.authenticator
    }

    fn handler(&self) -> &CommandHandler {
        &self.shared.commands
    }

    /// Authenticates and checks the role for `rpc`.
    pub(crate) fn begin<T>(&self, request: &Request<T>, rpc: &str) -> Result<(Principal, Scope), Status> {
        let principal = self.auth().authenticate(request)?;
        let scope = authz::permit(&principal, rpc).map_err(|reason| denied(&principal, rpc, reason))?;
        Ok((principal, scope))
    }

    /// Runs a parsed command for `principal` under `scope`.
    #[tracing::instrument(skip_all, fields(rpc, case_id = %case_id))]
    async fn run(
        &self,
        rpc: &'static str,
        principal: &Principal,
        scope: Scope,
        case_id: CaseId,
        meta: Meta,
        command: Command,
        referral: Option<String>,
    ) -> Result<Response<api::CommandResult>, Status> {
        self.check_command(principal, case_id, &command).await?;
        let check = |case: &fengqiao_domain::Case| authz::check_case(principal, scope, case, referral.as_deref());
        let started = std::time::Instant::now();
        let result = self.handler().execute(principal, case_id, &meta, command, &check).await;
        tracing::debug!(rpc, elapsed_us = started.elapsed().as_micros() as u64, ok = result.is_ok(), "command");
        match result {
            Ok(outcome) => Ok(Response::new(result_of(outcome))),
            Err(CommandError::Denied(reason)) => Err(denied(principal, rpc, reason)),
            Err(e) => Err(status(e)),
        }
    }

    /// What a command names beyond its own case: a dispatch names a committee inside the caller's
    /// unit; a merge names an existing case in the caller's reach that was not itself merged.
    async fn check_command(&self, principal: &Principal, case_id: CaseId, command: &Command) -> Result<(), Status> {
        match command {
            Command::Dispatch { committee, .. } if !committee.unit.is_within(&principal.unit) => {
                Err(denied(principal, "DispatchCase", "committee_unit_code is outside your unit"))
            }
            Command::Merge { into, .. } => {
                // Already merged there: a retry, answered (or refused) by the case itself.
                let case = self.handler().current(case_id).await.map_err(status)?;
                if case.merged_into.as_deref() == Some(into.to_string().as_str()) {
                    return Ok(());
                }
                let target = self.handler().current(*into).await.map_err(status)?;
                if !target.exists() || !authz::reaches_case(principal, &target) {
                    // Same answer for "absent" and "not yours": existence is not disclosed.
                    return Err(Status::not_found("into_case_id: no such case in your reach"));
                }
                match &target.merged_into {
                    Some(further) => Err(Status::failed_precondition(format!(
                        "cannot merge into a case that was itself merged into {further}; merge into that case"
                    ))),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

fn result_of(o: Outcome) -> api::CommandResult {
    api::CommandResult {
        case_id: o.case_id.to_string(),
        version: o.version,
        stream_sequence: o.sequence,
        replayed: o.replayed,
        existing_case: o.existing_case,
    }
}

/// Defines a command RPC: `$parse` turns the request `$r` (and, when named, the caller `$p`)
/// into a `Command` (using `?` on `FieldError`s); `$referral` names the referral the caller acts
/// on, if any.
macro_rules! command_rpc {
    ($name:ident, $rpc:literal, $req:ty, |$r:ident| $parse:expr) => {
        command_rpc!($name, $rpc, $req, |$r, _principal| $parse, referral = None);
    };
    ($name:ident, $rpc:literal, $req:ty, |$r:ident, $p:ident| $parse:expr) => {
        command_rpc!($name, $rpc, $req, |$r, $p| $parse, referral = None);
    };
    ($name:ident, $rpc:literal, $req:ty, |$r:ident| $parse:expr, referral = $referral:expr) => {
        command_rpc!($name, $rpc, $req, |$r, _principal| $parse, referral = $referral);
    };
    ($name:ident, $rpc:literal, $req:ty, |$r:ident, $p:ident| $parse:expr, referral = $referral:expr) => {
        // Written out as `#[async_trait]` would expand it: the attribute cannot see into macros.
        fn $name<'life0, 'async_trait>(
            &'life0 self,
            request: Request<$req>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Response<api::CommandResult>, Status>> + Send + 'async_trait>,
        >
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async move {
                let (principal, scope) = self.begin(&request, $rpc)?;
                let $r = request.into_inner();
                let $p: &Principal = &principal;
                let parsed = (|| -> Result<(CaseId, Meta, Command), FieldError> {
                    Ok((parse::case_id(&$r.case_id)?, parse::meta($r.meta.as_ref())?, $parse))
                })();
                let (case_id, meta, command) = parsed.map_err(invalid)?;
                let referral: Option<String> = $referral;
                self.run($rpc, &principal, scope, case_id, meta, command, referral).await
            })
        }
    };
}

#[tonic::async_trait]
impl api::intake_service_server::IntakeService for Api {
    async fn register_case(
        &self,
        request: Request<api::RegisterCaseRequest>,
    ) -> Result<Response<api::CommandResult>, Status> {
        let (principal, scope) = self.begin(&request, "RegisterCase")?;
        let r = request.into_inner();
        let meta = parse::meta(r.meta.as_ref()).map_err(invalid)?;
        let register = parse::register(&r).map_err(invalid)?;
        let source = register.source_partner.as_ref().map(|(_, id)| id.as_str());
        authz::check_intake(&principal, register.channel, &register.unit_code, source)
            .map_err(|reason| denied(&principal, "RegisterCase", reason))?;
        let case_id = match (&register.external_ref, &register.source_partner) {
            // A partner's file number is unique only within that partner.
            (Some(reference), Some((_, partner))) => {
                CaseId::for_partner_ref(register.channel as i32, partner, reference)
            }
            (Some(reference), None) => CaseId::for_external_ref(register.channel as i32, reference),
            (None, _) => CaseId::for_registration(&principal.subject, &meta.idempotency_key),
        };
        self.run("RegisterCase", &principal, scope, case_id, meta, Command::Register(Box::new(register)), None).await
    }
}

#[tonic::async_trait]
impl api::case_work_service_server::CaseWorkService for Api {
    command_rpc!(dispatch_case, "DispatchCase", api::DispatchCaseRequest, |r| parse::dispatch(&r)?);
    command_rpc!(return_case, "ReturnCase", api::ReturnCaseRequest, |r| Command::Return {
        reason: ShortText::parse("reason", &r.reason)?
    });
    command_rpc!(accept_case, "AcceptCase", api::AcceptCaseRequest, |r| Command::Accept);
    command_rpc!(assign_mediators, "AssignMediators", api::AssignMediatorsRequest, |r| Command::AssignMediators {
        mediator_ids: parse::idents("mediator_ids", &r.mediator_ids)?
    });
    command_rpc!(schedule_session, "ScheduleSession", api::ScheduleSessionRequest, |r| Command::ScheduleSession {
        scheduled_for: parse::session_time(r.scheduled_for_unix_ms)?,
        place: ShortText::parse_optional("place", &r.place)?,
        online: r.online,
    });
    command_rpc!(record_session, "RecordSession", api::RecordSessionRequest, |r| Command::RecordSession {
        session_id: Ident::parse_optional("session_id", &r.session_id)?,
        attendees: parse::attendees(&r.attendees)?,
        record: LongText::parse("record", &r.record)?,
    });
    command_rpc!(record_arrival, "RecordArrival", api::RecordArrivalRequest, |r| Command::RecordArrival {
        note: ShortText::parse_optional("note", &r.note)?
    });
    command_rpc!(report_progress, "ReportProgress", api::ReportProgressRequest, |r| Command::ReportProgress {
        note: LongText::parse("note", &r.note)?
    });
    command_rpc!(pause_clock, "PauseClock", api::PauseClockRequest, |r| Command::PauseClock {
        reason: ShortText::parse("reason", &r.reason)?
    });
    command_rpc!(resume_clock, "ResumeClock", api::ResumeClockRequest, |r| Command::ResumeClock {
        note: ShortText::parse_optional("note", &r.note)?
    });
    command_rpc!(grant_extension, "GrantExtension", api::GrantExtensionRequest, |r, lead| Command::GrantExtension {
        days: r.days,
        reason: ShortText::parse("reason", &r.reason)?,
        approved_by: lead.subject.clone(),
    });
    command_rpc!(refer_case, "ReferCase", api::ReferCaseRequest, |r| Command::Refer {
        partner_kind: parse::enumeration("partner_kind", r.partner_kind)?,
        partner_id: Ident::parse("partner_id", &r.partner_id)?,
        partner_name: ShortText::parse("partner_name", &r.partner_name)?,
        reason: ShortText::parse("reason", &r.reason)?,
    });
    command_rpc!(record_settlement, "RecordSettlement", api::RecordSettlementRequest, |r| parse::settle(&r)?);
    command_rpc!(record_performance, "RecordPerformance", api::RecordPerformanceRequest, |r| {
        Command::RecordPerformance {
            status: parse::enumeration("status", r.status)?,
            note: ShortText::parse_optional("note", &r.note)?,
        }
    });
    command_rpc!(
        request_judicial_confirmation,
        "RequestJudicialConfirmation",
        api::RequestJudicialConfirmationRequest,
        |r| Command::RequestJudicialConfirmation {
            court_id: Ident::parse("court_id", &r.court_id)?,
            court_name: ShortText::parse("court_name", &r.court_name)?,
        }
    );
    command_rpc!(record_mediation_failure, "RecordMediationFailure", api::RecordMediationFailureRequest, |r| {
        Command::RecordFailure {
            reason: ShortText::parse("reason", &r.reason)?,
            advice: parse::enumeration("advice", r.advice)?,
            advice_note: ShortText::parse_optional("advice_note", &r.advice_note)?,
        }
    });
    command_rpc!(escalate_case, "EscalateCase", api::EscalateCaseRequest, |r| parse::escalate(&r)?);
    command_rpc!(close_case, "CloseCase", api::CloseCaseRequest, |r| Command::Close {
        outcome: parse::enumeration("outcome", r.outcome)?,
        summary: LongText::parse("summary", &r.summary)?,
    });
    command_rpc!(withdraw_case, "WithdrawCase", api::WithdrawCaseRequest, |r| Command::Withdraw {
        reason: ShortText::parse("reason", &r.reason)?
    });
    command_rpc!(merge_case, "MergeCase", api::MergeCaseRequest, |r| {
        let into = CaseId::parse("into_case_id", &r.into_case_id)?;
        if into.to_string() == r.case_id.trim().to_ascii_lowercase() {
            return Err(FieldError::new("into_case_id", "names the case itself; merge into another case"));
        }
        Command::Merge { into, reason: ShortText::parse("reason", &r.reason)? }
    });
}

#[tonic::async_trait]
impl api::linkage_service_server::LinkageService for Api {
    command_rpc!(
        accept_referral,
        "AcceptReferral",
        api::AcceptReferralRequest,
        |r| Command::AcceptReferral { referral_id: Ident::parse("referral_id", &r.referral_id)? },
        referral = Some(r.referral_id.clone())
    );
    command_rpc!(
        decline_referral,
        "DeclineReferral",
        api::DeclineReferralRequest,
        |r| Command::DeclineReferral {
            referral_id: Ident::parse("referral_id", &r.referral_id)?,
            reason: ShortText::parse("reason", &r.reason)?,
        },
        referral = Some(r.referral_id.clone())
    );
    command_rpc!(
        return_referral,
        "ReturnReferral",
        api::ReturnReferralRequest,
        |r| Command::ReturnReferral {
            referral_id: Ident::parse("referral_id", &r.referral_id)?,
            reason: ShortText::parse("reason", &r.reason)?,
        },
        referral = Some(r.referral_id.clone())
    );
    command_rpc!(
        conclude_referral,
        "ConcludeReferral",
        api::ConcludeReferralRequest,
        |r| Command::ConcludeReferral {
            referral_id: Ident::parse("referral_id", &r.referral_id)?,
            outcome: parse::enumeration("outcome", r.outcome)?,
            summary: LongText::parse("summary", &r.summary)?,
        },
        referral = Some(r.referral_id.clone())
    );
    command_rpc!(
        accept_judicial_confirmation,
        "AcceptJudicialConfirmation",
        api::AcceptJudicialConfirmationRequest,
        |r| Command::AcceptJudicialConfirmation {
            court_case_number: Ident::parse("court_case_number", &r.court_case_number)?
        }
    );
    command_rpc!(rule_judicial_confirmation, "RuleJudicialConfirmation", api::RuleJudicialConfirmationRequest, |r| {
        Command::RuleJudicialConfirmation {
            granted: r.granted,
            reason: ShortText::parse_optional("reason", &r.reason)?,
        }
    });
}

#[tonic::async_trait]
impl api::follow_up_service_server::FollowUpService for Api {
    command_rpc!(record_follow_up, "RecordFollowUp", api::RecordFollowUpRequest, |r| Command::RecordFollowUp {
        method: parse::enumeration("method", r.method)?,
        satisfaction: parse::enumeration("satisfaction", r.satisfaction)?,
        note: ShortText::parse_optional("note", &r.note)?,
    });
    command_rpc!(reopen_case, "ReopenCase", api::ReopenCaseRequest, |r| Command::Reopen {
        reason: ShortText::parse("reason", &r.reason)?
    });
}

#[tonic::async_trait]
impl api::correction_service_server::CorrectionService for Api {
    command_rpc!(correct_party_contact, "CorrectPartyContact", api::CorrectPartyContactRequest, |r| {
        let phone = if r.phone.trim().is_empty() { None } else { Some(PhoneNumber::parse("phone", &r.phone)?) };
        let resident_id = if r.resident_id.trim().is_empty() {
            None
        } else {
            Some(ResidentId::parse("resident_id", &r.resident_id)?)
        };
        if phone.is_none() && resident_id.is_none() {
            return Err(FieldError::new("phone", "give the corrected phone number or resident ID number"));
        }
        Command::CorrectPartyContact {
            party_index: r.party_index,
            phone,
            resident_id,
            reason: ShortText::parse("reason", &r.reason)?,
        }
    });
}

//! Events: the protobuf messages of `proto/fengqiao/events/v1/events.proto`, used as they are.
//!
//! [`Kind`] (the `oneof` of `Event`) is the domain's event enum. Each event has a stable type name
//! (its message name) and a schema version; both go into the envelope so that any reader, in any
//! language, can tell what it holds. Events are never renamed or reinterpreted.

pub use fengqiao_proto::events as pb;
pub use fengqiao_proto::events::event::Kind;

/// Schema version of every event type as written today. Raise it for one type only together with
/// an upcaster in the event store that reads the older version.
pub const SCHEMA_VERSION: u32 = 1;

/// The event's type name, e.g. `CaseRegistered`.
pub fn type_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::CaseRegistered(_) => "CaseRegistered",
        Kind::CaseDispatched(_) => "CaseDispatched",
        Kind::CaseReturned(_) => "CaseReturned",
        Kind::CaseAccepted(_) => "CaseAccepted",
        Kind::MediatorsAssigned(_) => "MediatorsAssigned",
        Kind::SessionScheduled(_) => "SessionScheduled",
        Kind::SessionHeld(_) => "SessionHeld",
        Kind::ArrivedOnSite(_) => "ArrivedOnSite",
        Kind::ProgressReported(_) => "ProgressReported",
        Kind::ClockPaused(_) => "ClockPaused",
        Kind::ClockResumed(_) => "ClockResumed",
        Kind::ExtensionGranted(_) => "ExtensionGranted",
        Kind::ReferralMade(_) => "ReferralMade",
        Kind::ReferralAccepted(_) => "ReferralAccepted",
        Kind::ReferralDeclined(_) => "ReferralDeclined",
        Kind::ReferralReturned(_) => "ReferralReturned",
        Kind::ReferralConcluded(_) => "ReferralConcluded",
        Kind::CaseSettled(_) => "CaseSettled",
        Kind::PerformanceRecorded(_) => "PerformanceRecorded",
        Kind::JudicialConfirmationRequested(_) => "JudicialConfirmationRequested",
        Kind::JudicialConfirmationAccepted(_) => "JudicialConfirmationAccepted",
        Kind::JudicialConfirmationRuled(_) => "JudicialConfirmationRuled",
        Kind::MediationFailed(_) => "MediationFailed",
        Kind::CaseEscalated(_) => "CaseEscalated",
        Kind::CaseClosed(_) => "CaseClosed",
        Kind::FollowUpRecorded(_) => "FollowUpRecorded",
        Kind::CaseReopened(_) => "CaseReopened",
        Kind::CaseMerged(_) => "CaseMerged",
        Kind::DeadlineWarned(_) => "DeadlineWarned",
        Kind::DeadlineBreached(_) => "DeadlineBreached",
        Kind::PartyContactCorrected(_) => "PartyContactCorrected",
    }
}

/// Wraps an event for the envelope.
pub fn wrap(kind: Kind) -> pb::Event {
    pb::Event { kind: Some(kind) }
}

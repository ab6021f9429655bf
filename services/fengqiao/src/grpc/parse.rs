//! Proto requests become domain commands here, exactly once. Each function returns the first bad
//! field as a [`FieldError`] naming it (e.g. `parties[0].phone`).

use jiff::Timestamp;

use fengqiao_domain::command::{Agreement, CommitteeRef, Party, RegisterCase};
use fengqiao_domain::event::pb;
use fengqiao_domain::values::{
    CaseId, Category, FieldError, Ident, LongText, Parsed, PersonName, PhoneNumber, ResidentId, ShortText, UnitCode,
};
use fengqiao_proto::api;

use crate::commands::Meta;

/// Most parties on one case.
pub const MAX_PARTIES: usize = 50;
/// Most names in any other list (attendees, mediators, signatories).
pub const MAX_LIST: usize = 100;

/// Parses the command metadata.
pub fn meta(meta: Option<&api::CommandMeta>) -> Parsed<Meta> {
    let meta = meta.ok_or_else(|| FieldError::new("meta", "is required (it carries the idempotency key)"))?;
    Ok(Meta {
        idempotency_key: Ident::parse("meta.idempotency_key", &meta.idempotency_key)?,
        expected_version: meta.expected_version,
        correlation_id: Ident::parse_optional("meta.correlation_id", &meta.correlation_id)?.map(|c| c.to_string()),
    })
}

/// Parses a case id field.
pub fn case_id(raw: &str) -> Parsed<CaseId> {
    CaseId::parse("case_id", raw)
}

/// Parses a proto enum field that must be set to a known, non-zero value.
pub fn enumeration<E: TryFrom<i32>>(field: &str, raw: i32) -> Parsed<E> {
    if raw == 0 {
        return Err(FieldError::new(field, "is required"));
    }
    E::try_from(raw).map_err(|_| FieldError::new(field, format!("has unknown value {raw}")))
}

fn timestamp(field: &str, ms: i64) -> Parsed<Option<Timestamp>> {
    if ms == 0 {
        return Ok(None);
    }
    Timestamp::from_millisecond(ms).map(Some).map_err(|_| FieldError::new(field, "is not a valid time"))
}

/// Refuses a list longer than `max`.
///
/// # Errors
/// The list is too long.
pub fn bounded<T>(field: &str, items: &[T], max: usize) -> Parsed<()> {
    if items.len() > max {
        return Err(FieldError::new(field, format!("has {} entries; at most {max} are allowed", items.len())));
    }
    Ok(())
}

fn names(field: &str, raw: &[String]) -> Parsed<Vec<PersonName>> {
    bounded(field, raw, MAX_LIST)?;
    raw.iter().enumerate().map(|(i, n)| PersonName::parse(&format!("{field}[{i}]"), n)).collect()
}

fn committee(id_field: &str, id: &str, unit_field: &str, unit: &str) -> Parsed<CommitteeRef> {
    Ok(CommitteeRef { id: Ident::parse(id_field, id)?, unit: UnitCode::parse(unit_field, unit)? })
}

/// Parses a registration.
pub fn register(r: &api::RegisterCaseRequest) -> Parsed<RegisterCase> {
    let channel: pb::Channel = enumeration("channel", r.channel)?;
    bounded("parties", &r.parties, MAX_PARTIES)?;
    if r.parties.is_empty() {
        return Err(FieldError::new("parties", "name at least one party"));
    }
    let parties = r
        .parties
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let at = |f: &str| format!("parties[{i}].{f}");
            Ok(Party {
                name: PersonName::parse(&at("name"), &p.name)?,
                role: enumeration(&at("role"), p.role)?,
                phone: if p.phone.trim().is_empty() { None } else { Some(PhoneNumber::parse(&at("phone"), &p.phone)?) },
                resident_id: if p.resident_id.trim().is_empty() {
                    None
                } else {
                    Some(ResidentId::parse(&at("resident_id"), &p.resident_id)?)
                },
            })
        })
        .collect::<Parsed<Vec<_>>>()?;
    let external_ref = Ident::parse_optional("external_ref", &r.external_ref)?;
    let inbound = matches!(
        channel,
        pb::Channel::CourtDelegation
            | pb::Channel::PoliceTransfer
            | pb::Channel::PetitionTransfer
            | pb::Channel::ProcuratorateTransfer
            | pb::Channel::AdministrativeTransfer
            | pb::Channel::ReconsiderationTransfer
    );
    if (channel == pb::Channel::Hotline12345 || inbound) && external_ref.is_none() {
        return Err(FieldError::new(
            "external_ref",
            "is required for this channel (work-order or partner file number)",
        ));
    }
    let source_partner = if inbound {
        Some((
            enumeration("source_partner_kind", r.source_partner_kind)?,
            Ident::parse("source_partner_id", &r.source_partner_id)?,
        ))
    } else {
        None
    };
    if r.risk_signals.len() > 8 {
        return Err(FieldError::new("risk_signals", "has more than 8 entries"));
    }
    Ok(RegisterCase {
        channel,
        external_ref,
        parties,
        category: Category::parse("category", &r.category)?,
        description: LongText::parse("description", &r.description)?,
        unit_code: UnitCode::parse("unit_code", &r.unit_code)?,
        address: ShortText::parse("address", &r.address)?,
        urgency: enumeration("urgency", r.urgency)?,
        risk_signals: r
            .risk_signals
            .iter()
            .enumerate()
            .map(|(i, s)| enumeration(&format!("risk_signals[{i}]"), *s))
            .collect::<Parsed<_>>()?,
        received_at: timestamp("received_at_unix_ms", r.received_at_unix_ms)?,
        reply_deadline: timestamp("reply_deadline_unix_ms", r.reply_deadline_unix_ms)?,
        source_partner,
        intake_channel: None,
    })
}

/// Parses a dispatch.
pub fn dispatch(r: &api::DispatchCaseRequest) -> Parsed<fengqiao_domain::Command> {
    Ok(fengqiao_domain::Command::Dispatch {
        tier: enumeration("tier", r.tier)?,
        committee: committee("committee_id", &r.committee_id, "committee_unit_code", &r.committee_unit_code)?,
        category: Category::parse_optional("category", &r.category)?,
        risk_level: if r.risk_level == 0 { pb::RiskLevel::Low } else { enumeration("risk_level", r.risk_level)? },
        note: ShortText::parse_optional("note", &r.note)?,
    })
}

/// Parses an escalation.
pub fn escalate(r: &api::EscalateCaseRequest) -> Parsed<fengqiao_domain::Command> {
    Ok(fengqiao_domain::Command::Escalate {
        committee: committee("committee_id", &r.committee_id, "committee_unit_code", &r.committee_unit_code)?,
        reason: ShortText::parse("reason", &r.reason)?,
        automatic: false,
    })
}

/// Parses a settlement.
pub fn settle(r: &api::RecordSettlementRequest) -> Parsed<fengqiao_domain::Command> {
    let a = r.agreement.as_ref().ok_or_else(|| FieldError::new("agreement", "is required"))?;
    Ok(fengqiao_domain::Command::Settle(Box::new(Agreement {
        party_names: names("agreement.party_names", &a.party_names)?,
        facts: LongText::parse("agreement.facts", &a.facts)?,
        points_in_dispute: LongText::parse("agreement.points_in_dispute", &a.points_in_dispute)?,
        terms: LongText::parse("agreement.terms", &a.terms)?,
        performance_method: ShortText::parse("agreement.performance_method", &a.performance_method)?,
        performance_deadline: timestamp("agreement.performance_deadline_unix_ms", a.performance_deadline_unix_ms)?,
        signed_by: names("agreement.signed_by", &a.signed_by)?,
        mediator_id: Ident::parse("agreement.mediator_id", &a.mediator_id)?,
        mediator_name: PersonName::parse("agreement.mediator_name", &a.mediator_name)?,
        personal_status_matter: a.personal_status_matter,
    })))
}

/// Parses a list of identifiers.
pub fn idents(field: &str, raw: &[String]) -> Parsed<Vec<Ident>> {
    bounded(field, raw, MAX_LIST)?;
    raw.iter().enumerate().map(|(i, s)| Ident::parse(&format!("{field}[{i}]"), s)).collect()
}

/// Parses attendee names.
pub fn attendees(raw: &[String]) -> Parsed<Vec<PersonName>> {
    names("attendees", raw)
}

/// Parses a session time.
pub fn session_time(ms: i64) -> Parsed<Timestamp> {
    timestamp("scheduled_for_unix_ms", ms)?.ok_or_else(|| FieldError::new("scheduled_for_unix_ms", "is required"))
}

//! Queries: `GetCase` (summary and timeline, the case file) and `ListQueue` (a unit subtree's open
//! cases, keyset-paged). Both can wait for a minimum stream sequence to read the caller's write.

use tonic::{Request, Response, Status};
use uuid::Uuid;

use fengqiao_domain::event::pb;
use fengqiao_domain::values::{CaseId, UnitCode};
use fengqiao_projection::{Error, query};
use fengqiao_proto::api;

use super::{Api, invalid};
use crate::{authz, privacy};

/// Largest queue page.
pub const MAX_PAGE: u32 = 200;
/// Queue page when none is asked for.
pub const DEFAULT_PAGE: u32 = 50;

pub(crate) fn query_status(e: Error) -> Status {
    match e {
        Error::NotCaughtUp { .. } => Status::deadline_exceeded(e.to_string()),
        Error::Pool(_) | Error::Database(_) | Error::Stream(_) | Error::Store(_) => {
            tracing::warn!(error = %e, "read model unavailable");
            Status::unavailable("the read models are unavailable; retry shortly")
        }
        Error::Unapplicable { .. } | Error::Missing(_) | Error::Config(_) | Error::Rebuild(_) => {
            tracing::error!(error = %e, "read model fault");
            Status::internal("internal error")
        }
    }
}

/// A case summary as the API shows it (no deadline: the work queues add it).
pub(crate) fn summary(s: query::CaseSummary) -> api::CaseSummary {
    api::CaseSummary {
        case_id: s.case_id.to_string(),
        state: s.state,
        channel: s.channel,
        external_ref: s.external_ref,
        category: s.category,
        description: s.description,
        unit_code: s.unit_code,
        address: s.address,
        urgency: s.urgency,
        risk_signals: s.risk_signals,
        parties: s.parties,
        tier: s.tier,
        committee_id: s.committee_id,
        committee_unit_code: s.committee_unit_code,
        version: s.version,
        registered_at_unix_ms: s.registered_at_ms,
        updated_at_unix_ms: s.updated_at_ms,
        risk_level: s.risk_level,
        due_at_unix_ms: 0,
    }
}

/// The page size asked for: 1 to [`MAX_PAGE`], 0 meaning [`DEFAULT_PAGE`].
///
/// # Errors
/// `INVALID_ARGUMENT` naming `page_size` when it is too large.
pub(crate) fn page_size(raw: u32) -> Result<u32, Status> {
    match raw {
        0 => Ok(DEFAULT_PAGE),
        n if n > MAX_PAGE => Err(Status::invalid_argument(format!("page_size: at most {MAX_PAGE}"))),
        n => Ok(n),
    }
}

impl Api {
    /// The present instant by the service's clock, in ms since the epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        self.shared.clock.now().as_millisecond()
    }

    /// Waits until read model `projection` shows stream sequence `min` (read-your-writes).
    pub(crate) async fn wait(
        &self,
        client: &deadpool_postgres::Object,
        projection: &str,
        min: Option<u64>,
    ) -> Result<(), Status> {
        if let Some(min) = min {
            let applied = self.shared.applied.get(projection);
            query::wait_for(&***client, projection, applied, min, self.shared.settings.read_wait())
                .await
                .map_err(query_status)?;
        }
        Ok(())
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, Status> {
        self.shared.pool.get().await.map_err(|e| query_status(Error::Pool(e)))
    }
}

#[tonic::async_trait]
impl api::query_service_server::QueryService for Api {
    async fn get_case(&self, request: Request<api::GetCaseRequest>) -> Result<Response<api::GetCaseResponse>, Status> {
        let (principal, _) = self.begin(&request, "GetCase")?;
        let r = request.into_inner();
        let case_id = CaseId::parse("case_id", &r.case_id).map_err(invalid)?;
        let client = self.client().await?;
        self.wait(&client, fengqiao_projection::cases::NAME, r.min_sequence).await?;
        let file = query::get_case(&**client, case_id.uuid()).await.map_err(query_status)?;
        // The case as its events leave it decides who reads it, and who sees which personal data
        // and which events.
        let found = file.map(|f| {
            let case = fengqiao_domain::Case::from_events(
                f.timeline.iter().filter_map(|t| t.envelope.event.as_ref().and_then(|e| e.kind.as_ref())),
            );
            (f, case)
        });
        let Some((file, case)) = found.filter(|(_, case)| authz::reads_case(&principal, case)) else {
            // Same answer for "absent" and "not yours": existence is not disclosed.
            return Err(Status::not_found("no such case in your reach"));
        };
        let view = privacy::view(&principal, &privacy::Holders::of_case(&case));
        let timeline = file
            .timeline
            .iter()
            .filter(|t| {
                t.envelope
                    .event
                    .as_ref()
                    .and_then(|e| e.kind.as_ref())
                    .is_some_and(|k| privacy::shown_to(&principal, &case, k))
            })
            .map(|t| api::TimelineEntry {
                case_version: t.envelope.case_version,
                event_type: t.envelope.event_type.clone(),
                occurred_at_unix_ms: t.envelope.occurred_at_unix_ms,
                actor: t.envelope.actor.clone(),
                unit_code: t.envelope.unit_code.clone(),
                event: t.envelope.event.clone(),
                stream_sequence: t.stream_sequence,
                recorded_at_unix_ms: t.envelope.recorded_at_unix_ms,
                event_id: t.envelope.event_id.clone(),
                correlation_id: t.envelope.correlation_id.clone(),
                causation_id: t.envelope.causation_id.clone(),
                schema_version: t.envelope.schema_version,
            })
            .map(|mut entry| {
                view.entry(&mut entry);
                entry
            })
            .collect();
        let mut summary = summary(file.summary);
        view.summary(&mut summary);
        Ok(Response::new(api::GetCaseResponse { summary: Some(summary), timeline }))
    }

    async fn list_queue(
        &self,
        request: Request<api::ListQueueRequest>,
    ) -> Result<Response<api::ListQueueResponse>, Status> {
        let (principal, _) = self.begin(&request, "ListQueue")?;
        let r = request.into_inner();
        let unit = if r.unit_code.is_empty() {
            principal.unit.clone()
        } else {
            UnitCode::parse("unit_code", &r.unit_code).map_err(invalid)?
        };
        if !unit.is_within(&principal.unit) {
            return Err(super::denied(&principal, "ListQueue", "unit_code is outside your unit"));
        }
        let after = if r.page_token.is_empty() { None } else { Some(decode_token(&r.page_token)?) };
        // A filter names each value at most once; longer lists are no filter but a flood.
        super::parse::bounded("states", &r.states, 16).map_err(invalid)?;
        super::parse::bounded("urgencies", &r.urgencies, 8).map_err(invalid)?;
        for (i, s) in r.states.iter().enumerate() {
            super::parse::enumeration::<pb::CaseState>(&format!("states[{i}]"), *s).map_err(invalid)?;
        }
        for (i, u) in r.urgencies.iter().enumerate() {
            super::parse::enumeration::<pb::Urgency>(&format!("urgencies[{i}]"), *u).map_err(invalid)?;
        }
        let limit = page_size(r.page_size)?;
        let client = self.client().await?;
        self.wait(&client, fengqiao_projection::cases::NAME, r.min_sequence).await?;
        let q = query::QueueQuery {
            unit_prefix: unit.prefix().to_owned(),
            states: r.states,
            urgencies: r.urgencies,
            limit,
            after,
        };
        let rows = query::list_queue(&**client, &q).await.map_err(query_status)?;
        let next_page_token = if rows.len() == limit as usize {
            rows.last().map(|s| format!("{}_{}", s.registered_at_ms, s.case_id)).unwrap_or_default()
        } else {
            String::new()
        };
        let cases = rows
            .into_iter()
            .map(|row| {
                let mut s = summary(row);
                privacy::view(&principal, &privacy::Holders::of_summary(&s)).summary(&mut s);
                s
            })
            .collect();
        Ok(Response::new(api::ListQueueResponse { cases, next_page_token }))
    }
}

fn decode_token(token: &str) -> Result<(i64, Uuid), Status> {
    let bad = || Status::invalid_argument("page_token: not a token from a previous page");
    let (at, id) = token.split_once('_').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, Uuid::parse_str(id).map_err(|_| bad())?))
}

//! `WorkQueueService`: a committee's and a mediator's open cases, filtered, in due, priority or
//! registration order, keyset-paged, with read-your-writes.

use tonic::{Request, Response, Status};

use fengqiao_domain::event::pb;
use fengqiao_domain::values::{Category, Ident};
use fengqiao_projection::work_queues::{self, Cursor, QueueKind, QueueOrder, QueuePage, WorkItem};
use fengqiao_proto::api;

use super::queries::{page_size, query_status, summary};
use super::{Api, invalid, parse};
use crate::auth::Principal;
use crate::privacy;

/// The filters of a request as a page query (without queue, order and position).
fn page(
    principal: &Principal,
    filter: Option<&api::QueueFilter>,
    now_ms: i64,
    kind: QueueKind,
    queue_id: String,
) -> Result<QueuePage, Status> {
    let default = api::QueueFilter::default();
    let f = filter.unwrap_or(&default);
    let each = |field: &str, values: &[i32], check: fn(&str, i32) -> Result<(), Status>| -> Result<(), Status> {
        values.iter().enumerate().try_for_each(|(i, v)| check(&format!("filter.{field}[{i}]"), *v))
    };
    each("states", &f.states, |field, v| parse::enumeration::<pb::CaseState>(field, v).map(drop).map_err(invalid))?;
    each("priorities", &f.priorities, |field, v| {
        parse::enumeration::<api::Priority>(field, v).map(drop).map_err(invalid)
    })?;
    each("risk_levels", &f.risk_levels, |field, v| {
        parse::enumeration::<pb::RiskLevel>(field, v).map(drop).map_err(invalid)
    })?;
    each("urgencies", &f.urgencies, |field, v| parse::enumeration::<pb::Urgency>(field, v).map(drop).map_err(invalid))?;
    let category = Category::parse_optional("filter.category", &f.category).map_err(invalid)?;
    Ok(QueuePage {
        kind,
        queue_id,
        unit_prefix: principal.unit.prefix().to_owned(),
        states: f.states.clone(),
        priorities: f.priorities.clone(),
        risk_levels: f.risk_levels.clone(),
        urgencies: f.urgencies.clone(),
        category: category.map(|c| c.to_string()),
        due_before: f.overdue_only.then_some(now_ms),
        order: QueueOrder::Due,
        after: None,
        limit: 0,
    })
}

fn order(raw: i32) -> Result<QueueOrder, Status> {
    match api::QueueOrder::try_from(raw) {
        Ok(api::QueueOrder::Due) => Ok(QueueOrder::Due),
        Ok(api::QueueOrder::Priority) => Ok(QueueOrder::Priority),
        Ok(api::QueueOrder::Registered) => Ok(QueueOrder::Registered),
        Err(_) => Err(Status::invalid_argument(format!("order: has unknown value {raw}"))),
    }
}

/// A work item as the API shows it to `principal` (personal data masked unless they need it),
/// overdue by `now_ms`.
pub(crate) fn work_item(principal: &Principal, item: WorkItem, now_ms: i64) -> api::WorkItem {
    let overdue = item.due_at_ms.is_some_and(|due| due < now_ms);
    let mut s = summary(item.summary);
    privacy::view(principal, &privacy::Holders::of_summary(&s)).summary(&mut s);
    s.due_at_unix_ms = item.due_at_ms.unwrap_or(0);
    api::WorkItem {
        summary: Some(s),
        mediator_ids: item.mediator_ids,
        priority: item.priority,
        due_clock: item.due_clock,
        overdue,
    }
}

impl Api {
    /// Reads one page of a queue after checking the paging fields.
    #[allow(clippy::too_many_arguments)]
    async fn queue_page(
        &self,
        principal: &Principal,
        mut q: QueuePage,
        raw_order: i32,
        page_size_raw: u32,
        token: &str,
        min_sequence: Option<u64>,
        now_ms: i64,
    ) -> Result<Response<api::WorkQueuePage>, Status> {
        q.order = order(raw_order)?;
        q.limit = page_size(page_size_raw)?;
        if !token.is_empty() {
            q.after = Some(Cursor::parse(token, q.order).ok_or_else(|| {
                Status::invalid_argument("page_token: not a token from a previous page in this order")
            })?);
        }
        let client = self.client().await?;
        self.wait(&client, work_queues::NAME, min_sequence).await?;
        let rows = work_queues::list(&**client, &q).await.map_err(query_status)?;
        let next_page_token = if rows.len() == q.limit as usize {
            rows.last().map(|(_, cursor)| cursor.token()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(api::WorkQueuePage {
            items: rows.into_iter().map(|(item, _)| work_item(principal, item, now_ms)).collect(),
            next_page_token,
        }))
    }
}

#[tonic::async_trait]
impl api::work_queue_service_server::WorkQueueService for Api {
    async fn list_committee_queue(
        &self,
        request: Request<api::ListCommitteeQueueRequest>,
    ) -> Result<Response<api::WorkQueuePage>, Status> {
        let (principal, _) = self.begin(&request, "ListCommitteeQueue")?;
        let r = request.into_inner();
        let committee = Ident::parse("committee_id", &r.committee_id).map_err(invalid)?;
        if principal.committee_id.as_ref().is_some_and(|own| *own != committee) {
            return Err(super::denied(&principal, "ListCommitteeQueue", "committee_id: you work in another committee"));
        }
        let now = self.now_ms();
        let q = page(&principal, r.filter.as_ref(), now, QueueKind::Committee, committee.to_string())?;
        self.queue_page(&principal, q, r.order, r.page_size, &r.page_token, r.min_sequence, now).await
    }

    async fn list_mediator_queue(
        &self,
        request: Request<api::ListMediatorQueueRequest>,
    ) -> Result<Response<api::WorkQueuePage>, Status> {
        let (principal, _) = self.begin(&request, "ListMediatorQueue")?;
        let r = request.into_inner();
        let mediator = match Ident::parse_optional("mediator_id", &r.mediator_id).map_err(invalid)? {
            Some(m) => m.to_string(),
            None => principal.subject.clone(),
        };
        if principal.role == pb::Role::Mediator && mediator != principal.subject {
            return Err(super::denied(
                &principal,
                "ListMediatorQueue",
                "mediator_id: a mediator reads only their own queue",
            ));
        }
        let now = self.now_ms();
        let q = page(&principal, r.filter.as_ref(), now, QueueKind::Mediator, mediator)?;
        self.queue_page(&principal, q, r.order, r.page_size, &r.page_token, r.min_sequence, now).await
    }
}

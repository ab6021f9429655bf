//! `LinkageQueueService`: the six-way linkage queues (六调联动) per partner institution and per
//! partner kind. A partner institution sees only what was referred to it.

use tonic::{Request, Response, Status};

use fengqiao_domain::event::pb;
use fengqiao_domain::privacy as mask;
use fengqiao_domain::values::Ident;
use fengqiao_projection::referrals::{self, Cursor, Item, Page, Queue};
use fengqiao_proto::api;

use super::queries::{page_size, query_status, summary};
use super::{Api, invalid, parse};
use crate::auth::Principal;
use crate::privacy;

fn queue(raw: i32) -> Result<Queue, Status> {
    use api::LinkageQueue as L;
    match parse::enumeration::<L>("queue", raw).map_err(invalid)? {
        L::Pending => Ok(Queue::Pending),
        L::Overdue => Ok(Queue::Overdue),
        L::Accepted => Ok(Queue::Accepted),
        L::Declined => Ok(Queue::Declined),
        L::Returned => Ok(Queue::Returned),
        L::Concluded => Ok(Queue::Concluded),
        L::Unspecified => Err(Status::invalid_argument("queue: is required")),
    }
}

/// A referral as `principal` may see it: the parties in full only to those who need them (the
/// institution while it holds the referral, the owning committee, the command centre).
fn item(principal: &Principal, i: Item, now_ms: i64) -> api::ReferralItem {
    let mut case = summary(i.case);
    let mut holders = privacy::Holders::of_summary(&case);
    let open = [referrals::Status::Pending as i32, referrals::Status::Accepted as i32].contains(&i.status);
    if open {
        holders.partners.push(i.partner_id.clone());
    }
    let view = privacy::view(principal, &holders);
    view.summary(&mut case);
    let text = |t: String| if view.is_full() { t } else { mask::mask_free_text(&t, &holders.party_names) };
    api::ReferralItem {
        referral_id: i.referral_id,
        case: Some(case),
        partner_kind: i.partner_kind,
        partner_id: i.partner_id,
        partner_name: i.partner_name,
        reason: text(i.reason),
        status: i.status,
        made_at_unix_ms: i.made_at_ms,
        made_by: i.made_by,
        made_unit: i.made_unit,
        acceptance_due_unix_ms: i.acceptance_due_ms.unwrap_or(0),
        overdue: i.status == referrals::Status::Pending as i32 && i.acceptance_due_ms.is_some_and(|d| d < now_ms),
        answered_at_unix_ms: i.answered_at_ms.unwrap_or(0),
        answer_reason: text(i.answer_reason),
        outcome: i.outcome,
        outcome_summary: text(i.outcome_summary),
    }
}

#[tonic::async_trait]
impl api::linkage_queue_service_server::LinkageQueueService for Api {
    async fn list_referrals(
        &self,
        request: Request<api::ListReferralsRequest>,
    ) -> Result<Response<api::ReferralPage>, Status> {
        let (principal, _) = self.begin(&request, "ListReferrals")?;
        let r = request.into_inner();
        let queue = queue(r.queue)?;
        let kind = if r.partner_kind == 0 {
            None
        } else {
            Some(parse::enumeration::<pb::PartnerKind>("partner_kind", r.partner_kind).map_err(invalid)? as i32)
        };
        let asked = Ident::parse_optional("partner_id", &r.partner_id).map_err(invalid)?;
        let (partner_id, unit_prefix) = if principal.role == pb::Role::PartnerAgent {
            // An institution reads its own referrals wherever the cases arose, and nothing else.
            let own = principal
                .partner_id
                .clone()
                .ok_or_else(|| super::denied(&principal, "ListReferrals", "no partner institution"))?;
            if asked.as_ref().is_some_and(|a| *a != own) {
                return Err(super::denied(
                    &principal,
                    "ListReferrals",
                    "partner_id: you may read only your own institution's queue",
                ));
            }
            (Some(own.to_string()), None)
        } else {
            if kind.is_none() && asked.is_none() {
                return Err(Status::invalid_argument("partner_kind: name a partner kind or a partner_id"));
            }
            (asked.map(|a| a.to_string()), Some(principal.unit.prefix().to_owned()))
        };
        let limit = page_size(r.page_size)?;
        let after = if r.page_token.is_empty() {
            None
        } else {
            Some(
                Cursor::parse(&r.page_token)
                    .ok_or_else(|| Status::invalid_argument("page_token: not a token from a previous page"))?,
            )
        };
        let now_ms = self.now_ms();
        let client = self.client().await?;
        self.wait(&client, referrals::NAME, r.min_sequence).await?;
        let page = Page { partner_kind: kind, partner_id, unit_prefix, queue, now_ms, after, limit };
        let rows = referrals::list(&**client, &page).await.map_err(query_status)?;
        let next_page_token = if rows.len() == limit as usize {
            rows.last().map(|(_, c)| c.token()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(api::ReferralPage {
            items: rows.into_iter().map(|(i, _)| item(&principal, i, now_ms)).collect(),
            next_page_token,
        }))
    }
}

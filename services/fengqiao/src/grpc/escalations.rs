//! `EscalationBoardService`: the escalation board (DESIGN §4) — warned and breached deadlines of
//! a unit subtree, oldest due time first, with due times in the jurisdiction's local time. It
//! carries no personal data (parties, addresses, descriptions), only the case's category.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tonic::{Request, Response, Status};

use fengqiao_domain::event::pb;
use fengqiao_domain::values::UnitCode;
use fengqiao_projection::deadlines::{self, BoardItem, BoardPage, Cursor, State};
use fengqiao_proto::api;

use super::queries::{page_size, query_status};
use super::{Api, invalid, parse};

/// `t` in `zone`, RFC 3339 with the offset: `2026-02-25T17:30:00+08:00`.
fn local(zone: &TimeZone, ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(t) => t.to_zoned_datetime(zone.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        Err(_) => String::new(),
    }
}

fn state(raw: i32, field: &str) -> Result<State, Status> {
    match parse::enumeration::<api::EscalationState>(field, raw).map_err(invalid)? {
        api::EscalationState::Warned => Ok(State::Warned),
        api::EscalationState::Breached => Ok(State::Breached),
        api::EscalationState::Unspecified => Err(Status::invalid_argument(format!("{field}: is required"))),
    }
}

fn item(i: BoardItem, now_ms: i64) -> api::EscalationItem {
    let d = i.deadline;
    // The read model stored a zone the calendar named; an unknown one (a calendar file since
    // withdrawn) is shown in UTC rather than failing the page.
    let zone = TimeZone::get(&d.time_zone).unwrap_or(TimeZone::UTC);
    let (started, warn, due) = (
        d.deadline.started_at.as_millisecond(),
        d.deadline.warn_at.as_millisecond(),
        d.deadline.due_at.as_millisecond(),
    );
    api::EscalationItem {
        case_id: d.case_id.to_string(),
        deadline_id: d.deadline.id,
        clock: d.deadline.clock as i32,
        state: if d.state == State::Breached {
            api::EscalationState::Breached as i32
        } else {
            api::EscalationState::Warned as i32
        },
        started_at_unix_ms: started,
        warn_at_unix_ms: warn,
        due_at_unix_ms: due,
        started_at_local: local(&zone, started),
        warn_at_local: local(&zone, warn),
        due_at_local: local(&zone, due),
        time_zone: d.time_zone,
        jurisdiction: d.jurisdiction,
        warned_at_unix_ms: d.warned_at_ms.unwrap_or(0),
        breached_at_unix_ms: d.breached_at_ms.unwrap_or(0),
        route: d.route,
        paused: d.deadline.paused_since.is_some(),
        overdue_ms: if d.deadline.paused_since.is_none() { (now_ms - due).max(0) } else { 0 },
        unit_code: d.unit_code,
        committee_id: d.committee_id,
        committee_unit_code: d.committee_unit_code,
        tier: d.tier,
        category: i.category,
        case_state: i.case_state,
        referral_id: d.deadline.referral_id,
        partner_id: d.deadline.partner_id,
    }
}

#[tonic::async_trait]
impl api::escalation_board_service_server::EscalationBoardService for Api {
    async fn list_escalations(
        &self,
        request: Request<api::ListEscalationsRequest>,
    ) -> Result<Response<api::EscalationPage>, Status> {
        let (principal, _) = self.begin(&request, "ListEscalations")?;
        let r = request.into_inner();
        let unit = if r.unit_code.is_empty() {
            principal.unit.clone()
        } else {
            UnitCode::parse("unit_code", &r.unit_code).map_err(invalid)?
        };
        if !unit.is_within(&principal.unit) {
            return Err(super::denied(&principal, "ListEscalations", "unit_code is outside your unit"));
        }
        parse::bounded("states", &r.states, 2).map_err(invalid)?;
        parse::bounded("clocks", &r.clocks, 16).map_err(invalid)?;
        let states = r
            .states
            .iter()
            .enumerate()
            .map(|(i, s)| state(*s, &format!("states[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, c) in r.clocks.iter().enumerate() {
            parse::enumeration::<pb::Clock>(&format!("clocks[{i}]"), *c).map_err(invalid)?;
        }
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
        self.wait(&client, deadlines::NAME, r.min_sequence).await?;
        let page = BoardPage { unit_prefix: unit.prefix().to_owned(), states, clocks: r.clocks, after, limit };
        let rows = deadlines::board(&**client, &page).await.map_err(query_status)?;
        let next_page_token = if rows.len() == limit as usize {
            rows.last().map(|(_, c)| c.token()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(api::EscalationPage {
            items: rows.into_iter().map(|(i, _)| item(i, now_ms)).collect(),
            next_page_token,
        }))
    }
}

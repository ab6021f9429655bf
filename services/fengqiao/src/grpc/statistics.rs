//! `StatisticsService`: 化解率, 基层化解率, 响应率, 解决率, 满意率 and order volume per unit
//! subtree, category and period, by the definitions in `fengqiao_projection::statistics`.

use jiff::civil::Date;
use tonic::{Request, Response, Status};

use fengqiao_domain::values::{Category, FieldError, UnitCode};
use fengqiao_projection::statistics::{self, Counts, Figures, Query};
use fengqiao_proto::api;

use super::queries::query_status;
use super::{Api, invalid};

/// Longest period one query may cover, in days.
pub const MAX_DAYS: i32 = 3700;

fn date(field: &str, raw: &str) -> Result<Date, Status> {
    if raw.trim().is_empty() {
        return Err(invalid(FieldError::new(field, "is required (YYYY-MM-DD)")));
    }
    raw.trim().parse::<Date>().map_err(|_| invalid(FieldError::new(field, "is not a date (YYYY-MM-DD)")))
}

fn rate(numerator: i64, denominator: i64) -> Option<api::Rate> {
    let (n, d) = (u64::try_from(numerator).unwrap_or(0), u64::try_from(denominator).unwrap_or(0));
    Some(api::Rate { numerator: n, denominator: d, value: if d == 0 { 0.0 } else { n as f64 / d as f64 } })
}

fn unit_statistics(f: Figures, unit_code: String) -> api::UnitStatistics {
    let c: Counts = f.counts;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    api::UnitStatistics {
        unit_code,
        counts: Some(api::CaseCounts {
            received: n(c.received),
            handled: n(c.handled),
            resolved: n(c.resolved),
            resolved_at_grassroots: n(c.resolved_at_grassroots),
            dispatched: n(c.dispatched),
            signed_in_time: n(c.signed_in_time),
            closed: n(c.closed),
            followed_up: n(c.followed_up),
            satisfied: n(c.satisfied),
            basically_satisfied: n(c.basically_satisfied),
            dissatisfied: n(c.dissatisfied),
        }),
        resolution_rate: rate(c.resolved, c.handled),
        grassroots_resolution_rate: rate(c.resolved_at_grassroots, c.handled),
        response_rate: rate(c.signed_in_time, c.dispatched),
        solution_rate: rate(c.resolved, c.closed),
        satisfaction_rate: rate(c.satisfied + c.basically_satisfied, c.followed_up),
        received_by_channel: f
            .received_by_channel
            .into_iter()
            .map(|(channel, received)| api::ChannelVolume { channel, received: n(received) })
            .collect(),
    }
}

#[tonic::async_trait]
impl api::statistics_service_server::StatisticsService for Api {
    async fn get_statistics(
        &self,
        request: Request<api::GetStatisticsRequest>,
    ) -> Result<Response<api::StatisticsReport>, Status> {
        let (principal, _) = self.begin(&request, "GetStatistics")?;
        let r = request.into_inner();
        let unit = if r.unit_code.is_empty() {
            principal.unit.clone()
        } else {
            UnitCode::parse("unit_code", &r.unit_code).map_err(invalid)?
        };
        if !unit.is_within(&principal.unit) {
            return Err(Status::permission_denied("unit_code is outside your unit"));
        }
        let category = Category::parse_optional("category", &r.category).map_err(invalid)?;
        let from = date("from_date", &r.from_date)?;
        let to = date("to_date", &r.to_date)?;
        if to < from {
            return Err(invalid(FieldError::new("to_date", "is before from_date")));
        }
        if from.until(to).map_or(true, |span| span.get_days() > MAX_DAYS) {
            return Err(invalid(FieldError::new("to_date", format!("is more than {MAX_DAYS} days after from_date"))));
        }
        let client = self.client().await?;
        self.wait(&client, statistics::NAME, r.min_sequence).await?;
        let q = Query {
            unit_prefix: unit.prefix().to_owned(),
            category: category.map(|c| c.to_string()),
            from: from.to_string(),
            to: to.to_string(),
            by_child_unit: r.by_child_unit,
        };
        let (total, children) = statistics::figures(&**client, &q).await.map_err(query_status)?;
        Ok(Response::new(api::StatisticsReport {
            total: Some(unit_statistics(total, unit.to_string())),
            children: children
                .into_iter()
                .map(|c| {
                    let code = c.unit.clone();
                    unit_statistics(c, code)
                })
                .collect(),
        }))
    }
}

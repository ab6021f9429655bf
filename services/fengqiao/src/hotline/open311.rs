//! A read-only Open311 GeoReport v2 view of the 12345 work orders, so that 311-style tools can read
//! Fengqiao: `GET /open311/v2/requests.json` and `GET /open311/v2/requests/{order number}.json`.
//!
//! Read from `hotline_orders` (kept by the callback consumer). Disputes are about people, so the
//! view carries no description, address or coordinates — only what a public status board shows.
//! Readers pass one of the configured `api_key`s; without configured keys the view is off.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use fengqiao_domain::event::pb;

use super::Bridged;
use super::inbound::{ApiError, order_number};

/// Most requests one listing returns (the GeoReport v2 default).
const MAX_RESULTS: i64 = 1000;

/// Query parameters of the listing (GeoReport v2 names).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    api_key: Option<String>,
    /// Comma-separated order numbers.
    service_request_id: Option<String>,
    /// `open` or `closed`.
    status: Option<String>,
    /// Requested at or after / before (RFC 3339).
    start_date: Option<String>,
    end_date: Option<String>,
}

/// Query parameters of a single request.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OneQuery {
    api_key: Option<String>,
}

fn check_key(shared: &Bridged, key: Option<&str>) -> Result<(), ApiError> {
    let keys = &shared.settings.open311_api_keys;
    if keys.is_empty() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "the Open311 view is not enabled (no api keys configured)"));
    }
    match key {
        Some(k) if keys.iter().any(|known| known == k) => Ok(()),
        Some(_) => Err(ApiError::new(StatusCode::FORBIDDEN, "api_key is not a key of this Open311 view")),
        None => Err(ApiError::new(StatusCode::FORBIDDEN, "api_key is required")),
    }
}

fn datetime(t: SystemTime) -> Value {
    // Whole seconds in China Standard Time, as the hotline's own times are written.
    let ms = fengqiao_projection::ms_from_time(t);
    match jiff::Timestamp::from_second(ms.div_euclid(1000)) {
        Ok(ts) => Value::String(ts.display_with_offset(jiff::tz::offset(8)).to_string()),
        Err(_) => Value::Null,
    }
}

const COLUMNS: &str =
    "order_number, category, unit_code, state, status_notes, committee_id, requested_at, updated_at, expected_at";

/// One order as a GeoReport v2 service request.
fn request_of(row: &tokio_postgres::Row) -> Value {
    let state: i16 = row.get(3);
    let closed = matches!(pb::CaseState::try_from(i32::from(state)), Ok(pb::CaseState::Closed | pb::CaseState::Merged));
    let committee: String = row.get(5);
    let category: String = row.get(1);
    json!({
        "service_request_id": row.get::<_, String>(0),
        "status": if closed { "closed" } else { "open" },
        "status_notes": row.get::<_, String>(4),
        "service_name": category,
        "service_code": category,
        "agency_responsible": if committee.is_empty() { Value::Null } else { Value::String(committee) },
        "service_notice": Value::Null,
        "requested_datetime": datetime(row.get(6)),
        "updated_datetime": datetime(row.get(7)),
        "expected_datetime": row.get::<_, Option<SystemTime>>(8).map_or(Value::Null, datetime),
        "address_id": row.get::<_, String>(2),
    })
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "reading the Open311 view");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; retry shortly")
}

fn date(field: &str, raw: Option<&str>) -> Result<Option<SystemTime>, ApiError> {
    raw.map(|r| {
        r.trim().parse::<jiff::Timestamp>().map(|t| fengqiao_projection::time_from_ms(t.as_millisecond())).map_err(
            |_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{field}: is not an RFC 3339 time such as 2026-11-23T00:00:00+08:00"),
                )
            },
        )
    })
    .transpose()
}

/// `GET /open311/v2/requests.json`.
pub(crate) async fn list(State(shared): State<Arc<Bridged>>, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    check_key(&shared, q.api_key.as_deref())?;
    let ids: Option<Vec<String>> = q
        .service_request_id
        .as_deref()
        .map(|raw| raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect());
    let open: Option<bool> = match q.status.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("open") => Some(true),
        Some("closed") => Some(false),
        Some(other) => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, format!("status: is {other:?}; use open or closed")));
        }
    };
    let start = date("start_date", q.start_date.as_deref())?;
    let end = date("end_date", q.end_date.as_deref())?;
    let closed_states = [pb::CaseState::Closed as i16, pb::CaseState::Merged as i16];
    let db = shared.pool.get().await.map_err(unavailable)?;
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM hotline_orders \
                 WHERE ($1::text[] IS NULL OR order_number = ANY($1)) \
                   AND ($2::bool IS NULL OR (state = ANY($3)) <> $2) \
                   AND ($4::timestamptz IS NULL OR requested_at >= $4) \
                   AND ($5::timestamptz IS NULL OR requested_at < $5) \
                 ORDER BY requested_at DESC, order_number LIMIT $6"
            ),
            &[&ids, &open, &closed_states.as_slice(), &start, &end, &MAX_RESULTS],
        )
        .await
        .map_err(unavailable)?;
    Ok(axum::Json(Value::Array(rows.iter().map(request_of).collect())).into_response())
}

/// `GET /open311/v2/requests/{order number}.json`: a one-element array, as GeoReport v2 answers.
pub(crate) async fn one(
    State(shared): State<Arc<Bridged>>,
    Path(file): Path<String>,
    Query(q): Query<OneQuery>,
) -> Result<Response, ApiError> {
    check_key(&shared, q.api_key.as_deref())?;
    let Some(raw) = file.strip_suffix(".json") else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "only the JSON format is served: request {id}.json"));
    };
    let number = order_number("service_request_id", raw)?;
    let db = shared.pool.get().await.map_err(unavailable)?;
    let row = db
        .query_opt(&format!("SELECT {COLUMNS} FROM hotline_orders WHERE order_number = $1"), &[&number.as_str()])
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no service request {number}")))?;
    Ok(axum::Json(json!([request_of(&row)])).into_response())
}

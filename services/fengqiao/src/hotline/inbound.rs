//! The hotline's side of the HTTP API: post a work order (接单), read its status, post the
//! caller's rating (评单). Every request is signed ([`super::signature`]); a signature is checked
//! before anything in the body is looked at, and a refused request stores nothing.
//!
//! Work orders are registered exactly as gRPC intake registers them (same command path, same
//! authorisation, same case id derived from channel 12345 and the order number), so an order posted
//! twice — a minute or a month apart, before or after a restart — is one case.

use std::str::FromStr as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use fengqiao_domain::command::{Party, RegisterCase};
use fengqiao_domain::event::pb;
use fengqiao_domain::values::{
    CaseId, Category, FieldError, Ident, LongText, Parsed, PersonName, PhoneNumber, ShortText, UnitCode,
};
use fengqiao_domain::{Case, Command};

use super::signature::{self, SignatureError};
use super::{Bridged, OPENAPI, open311};
use crate::authz;
use crate::commands::{CommandError, Meta, Outcome};

/// Longest accepted work-order number.
pub const MAX_ORDER_NUMBER: usize = 64;

/// The bridge's routes.
pub(crate) fn router(shared: Arc<Bridged>) -> Router {
    let limit = shared.settings.max_body_bytes;
    Router::new()
        .route("/hotline/v1/orders", post(post_order))
        .route("/hotline/v1/orders/{order_number}", get(get_order))
        .route("/hotline/v1/orders/{order_number}/rating", post(post_rating))
        .route("/hotline/v1/openapi.yaml", get(openapi))
        .route("/open311/v2/requests.json", get(open311::list))
        .route("/open311/v2/requests/{file}", get(open311::one))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

/// An error answer: a status and a JSON body `{"error": …, "field": …}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    error: String,
    field: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self { status, error: error.into(), field: None }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: e.to_string(), field: Some(e.field) }
    }
}

impl From<SignatureError> for ApiError {
    fn from(e: SignatureError) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, format!("signature rejected: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error });
        if let Some(field) = self.field {
            body["field"] = Value::String(field);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

/// Maps a command error to its HTTP answer. Exhaustive on purpose: a new variant must be placed.
fn command_error(e: CommandError) -> ApiError {
    use fengqiao_domain::Rejection;
    use fengqiao_eventstore::Error as Store;
    match e {
        CommandError::Invalid(e) => e.into(),
        CommandError::Rejected(Rejection::UnknownCase) => ApiError::new(StatusCode::NOT_FOUND, "no such work order"),
        CommandError::Rejected(Rejection::Refused(reason)) => ApiError::new(StatusCode::CONFLICT, reason),
        e @ CommandError::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        CommandError::Denied(reason) => ApiError::new(StatusCode::FORBIDDEN, reason),
        CommandError::Store(e @ (Store::Conflict { .. } | Store::Unavailable(_))) => {
            tracing::warn!(error = %e, "event store unavailable");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the event store is unavailable; send the request again")
        }
        CommandError::Store(e @ Store::TooLarge(_)) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
        CommandError::Store(e @ (Store::StreamMismatch { .. } | Store::Corrupt { .. })) => {
            tracing::error!(error = %e, "event store fault");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// Checks the request's signature against the inbound keys and the bridge's clock.
fn verify(shared: &Bridged, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let header = |name: &'static str| headers.get(name).map(|v| v.to_str().map(str::to_owned).map_err(|_| ()));
    let now = shared.clock.now().as_second();
    match signature::verify(&shared.settings.inbound_keys, header, body, now, shared.settings.replay_window_secs) {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(reason = %e, "hotline request refused: bad signature");
            Err(e.into())
        }
    }
}

/// The value at a dotted `path` of a JSON object, `None` when absent or null.
fn lookup<'a>(root: &'a Value, path: &str) -> Parsed<Option<&'a Value>> {
    let mut at = root;
    let mut walked = String::new();
    for key in path.split('.') {
        let Value::Object(map) = at else {
            let field = if walked.is_empty() { "body" } else { walked.as_str() };
            return Err(FieldError::new(field, "must be a JSON object"));
        };
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(key);
        match map.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => at = v,
        }
    }
    Ok(Some(at))
}

/// The string at `path`: `None` when absent, an error naming `path` when not a string.
fn text<'a>(root: &'a Value, path: &str) -> Parsed<Option<&'a str>> {
    match lookup(root, path)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(FieldError::new(path, "must be a string")),
    }
}

/// The string at `path`, required.
fn required<'a>(root: &'a Value, path: &str) -> Parsed<&'a str> {
    text(root, path)?.ok_or_else(|| FieldError::new(path, "is required"))
}

/// An RFC 3339 time at `path` (`2026-11-23T09:15:00+08:00`).
fn time(root: &Value, path: &str) -> Parsed<Option<jiff::Timestamp>> {
    text(root, path)?
        .map(|raw| {
            jiff::Timestamp::from_str(raw.trim()).map_err(|_| {
                FieldError::new(path, "is not an RFC 3339 time with offset, such as 2026-11-23T09:15:00+08:00")
            })
        })
        .transpose()
}

fn json_body(body: &[u8]) -> Parsed<Value> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| FieldError::new("body", format!("is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(FieldError::new("body", "must be a JSON object"));
    }
    Ok(value)
}

/// Parses a work-order number (the external reference of its case).
pub fn order_number(field: &str, raw: &str) -> Parsed<Ident> {
    let number = Ident::parse(field, raw)?;
    if number.as_str().len() > MAX_ORDER_NUMBER {
        return Err(FieldError::new(field, format!("is longer than {MAX_ORDER_NUMBER} characters")));
    }
    Ok(number)
}

/// The case of a work order: the id gRPC intake gives it too.
pub fn case_of(order: &Ident) -> CaseId {
    CaseId::for_external_ref(pb::Channel::Hotline12345 as i32, order)
}

/// A posted work order, parsed into a registration.
pub fn parse_order(body: &[u8]) -> Parsed<RegisterCase> {
    let v = json_body(body)?;
    let number = order_number("order_number", required(&v, "order_number")?)?;
    let received_at = time(&v, "received_at")?.ok_or_else(|| FieldError::new("received_at", "is required"))?;
    let reply_deadline = time(&v, "reply_deadline")?;
    if let Some(deadline) = reply_deadline
        && deadline <= received_at
    {
        return Err(FieldError::new("reply_deadline", "is not after received_at"));
    }
    let urgency = match required(&v, "urgency")?.trim() {
        "normal" => pb::Urgency::Normal,
        "urgent" => pb::Urgency::Urgent,
        "emergency" => pb::Urgency::Emergency,
        other => {
            return Err(FieldError::new("urgency", format!("is {other:?}; use normal, urgent or emergency")));
        }
    };
    let caller = Party {
        name: PersonName::parse("caller.name", required(&v, "caller.name")?)?,
        role: pb::PartyRole::Applicant,
        phone: Some(PhoneNumber::parse("caller.phone", required(&v, "caller.phone")?)?),
        resident_id: None,
    };
    Ok(RegisterCase {
        channel: pb::Channel::Hotline12345,
        external_ref: Some(number),
        parties: vec![caller],
        category: Category::parse("category", required(&v, "category")?)?,
        description: LongText::parse("content", required(&v, "content")?)?,
        unit_code: UnitCode::parse("location.unit_code", required(&v, "location.unit_code")?)?,
        address: ShortText::parse("location.address", required(&v, "location.address")?)?,
        urgency,
        risk_signals: Vec::new(),
        received_at: Some(received_at),
        reply_deadline,
        source_partner: None,
        intake_channel: Some(ShortText::parse("channel", required(&v, "channel")?)?),
    })
}

/// Runs `command` on `case_id` as the hotline, authorised as gRPC authorises `rpc`.
async fn execute(
    shared: &Bridged,
    rpc: &str,
    case_id: CaseId,
    key: String,
    command: Command,
) -> Result<Outcome, ApiError> {
    let principal = &shared.principal;
    let scope = authz::permit(principal, rpc).map_err(|reason| ApiError::new(StatusCode::FORBIDDEN, reason))?;
    let meta =
        Meta { idempotency_key: Ident::parse("idempotency_key", &key)?, expected_version: None, correlation_id: None };
    let check = |case: &Case| authz::check_case(principal, scope, case, None);
    shared.commands.execute(principal, case_id, &meta, command, &check).await.map_err(command_error)
}

#[tracing::instrument(skip_all, fields(order_number, case_id))]
async fn post_order(State(shared): State<Arc<Bridged>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    verify(&shared, &headers, &body)?;
    let order = parse_order(&body)?;
    let Some(number) = order.external_ref.clone() else {
        return Err(FieldError::new("order_number", "is required").into());
    };
    let case_id = case_of(&number);
    let span = tracing::Span::current();
    span.record("order_number", number.as_str());
    span.record("case_id", tracing::field::display(case_id));
    authz::check_intake(&shared.principal, order.channel, &order.unit_code, None)
        .map_err(|reason| FieldError::new("location.unit_code", format!("{reason} (the hotline's jurisdiction)")))?;
    let outcome =
        execute(&shared, "RegisterCase", case_id, format!("order:{number}"), Command::Register(Box::new(order)))
            .await?;
    let created = !outcome.replayed && !outcome.existing_case;
    tracing::info!(created, sequence = outcome.sequence, "work order received");
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let body = json!({
        "order_number": number.as_str(),
        "case_id": case_id.to_string(),
        "created": created,
        "stream_sequence": outcome.sequence,
    });
    Ok((status, axum::Json(body)).into_response())
}

/// Name and label of a case state, as the API shows it.
pub fn state_name(state: pb::CaseState) -> (&'static str, &'static str) {
    use pb::CaseState as S;
    match state {
        S::Unspecified => ("unknown", "未知"),
        S::Registered => ("registered", "已受理"),
        S::Dispatched => ("dispatched", "已派单"),
        S::Accepted => ("accepted", "已签收"),
        S::InMediation => ("in_mediation", "调处中"),
        S::Settled => ("settled", "调解成功"),
        S::Failed => ("failed", "调解不成"),
        S::Closed => ("closed", "已办结"),
        S::Merged => ("merged", "已合并"),
    }
}

/// Name of a closure outcome, as callbacks and the API show it.
pub fn outcome_name(outcome: pb::ClosureOutcome) -> &'static str {
    use pb::ClosureOutcome as O;
    match outcome {
        O::Unspecified => "unspecified",
        O::Resolved => "resolved",
        O::PartlyResolved => "partly_resolved",
        O::Unresolved => "unresolved",
        O::Withdrawn => "withdrawn",
        O::Transferred => "transferred",
        O::Merged => "merged",
    }
}

fn satisfaction_name(s: pb::Satisfaction) -> &'static str {
    use pb::Satisfaction as S;
    match s {
        S::Unspecified => "unspecified",
        S::Satisfied => "satisfied",
        S::BasicallySatisfied => "basically_satisfied",
        S::Dissatisfied => "dissatisfied",
    }
}

/// The order's case as the stream holds it now; 404 when Fengqiao never received the order.
async fn order_case(shared: &Bridged, raw: &str) -> Result<(Ident, CaseId, Case), ApiError> {
    let number = order_number("order_number", raw)?;
    let case_id = case_of(&number);
    let case = shared.commands.current(case_id).await.map_err(command_error)?;
    if !case.exists() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no work order {number} was received")));
    }
    Ok((number, case_id, case))
}

/// The status body of an order.
fn status_body(number: &Ident, case_id: CaseId, case: &Case, callbacks: Value) -> Value {
    let (state, label) = state_name(case.status());
    json!({
        "order_number": number.as_str(),
        "case_id": case_id.to_string(),
        "state": state,
        "state_label": label,
        "committee_id": case.committee.as_ref().map(|(id, _)| id.clone()),
        "closure_outcome": case.closure.map(outcome_name),
        "satisfaction": case.follow_up.map(satisfaction_name),
        "reopened_times": case.reopen_count,
        "version": case.version,
        "callbacks": callbacks,
    })
}

#[tracing::instrument(skip_all, fields(order_number = %raw))]
async fn get_order(
    State(shared): State<Arc<Bridged>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    verify(&shared, &headers, b"")?;
    let (number, case_id, case) = order_case(&shared, &raw).await?;
    let counts = super::callbacks::counts_for(&shared.pool, case_id).await.map_err(|e| {
        tracing::error!(error = %e, "reading the callback outbox");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; retry shortly")
    })?;
    Ok(axum::Json(status_body(&number, case_id, &case, counts)).into_response())
}

/// A posted rating, parsed: its id (the idempotency key), satisfaction and note.
pub fn parse_rating(body: &[u8]) -> Parsed<(Ident, pb::Satisfaction, Option<ShortText>)> {
    let v = json_body(body)?;
    let id = Ident::parse("rating_id", required(&v, "rating_id")?)?;
    if id.as_str().len() > MAX_ORDER_NUMBER {
        return Err(FieldError::new("rating_id", format!("is longer than {MAX_ORDER_NUMBER} characters")));
    }
    let satisfaction = match required(&v, "satisfaction")?.trim() {
        "satisfied" => pb::Satisfaction::Satisfied,
        "basically_satisfied" => pb::Satisfaction::BasicallySatisfied,
        "dissatisfied" => pb::Satisfaction::Dissatisfied,
        other => {
            return Err(FieldError::new(
                "satisfaction",
                format!("is {other:?}; use satisfied, basically_satisfied or dissatisfied"),
            ));
        }
    };
    let note = ShortText::parse_optional("note", text(&v, "note")?.unwrap_or_default())?;
    Ok((id, satisfaction, note))
}

#[tracing::instrument(skip_all, fields(order_number = %raw))]
async fn post_rating(
    State(shared): State<Arc<Bridged>>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    verify(&shared, &headers, &body)?;
    let (rating_id, satisfaction, note) = parse_rating(&body)?;
    let (number, case_id, _) = order_case(&shared, &raw).await?;
    let command = Command::RecordFollowUp { method: pb::FollowUpMethod::HotlineRating, satisfaction, note };
    let outcome = execute(&shared, "RecordFollowUp", case_id, format!("rating:{rating_id}"), command).await?;
    let case = shared.commands.current(case_id).await.map_err(command_error)?;
    tracing::info!(replayed = outcome.replayed, satisfaction = satisfaction_name(satisfaction), "rating received");
    let mut body = status_body(&number, case_id, &case, Value::Null);
    body["rating_id"] = Value::String(rating_id.to_string());
    body["recorded"] = Value::Bool(!outcome.replayed);
    body["stream_sequence"] = json!(outcome.sequence);
    if let Value::Object(map) = &mut body {
        map.remove("callbacks");
    }
    Ok(axum::Json(body).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Value {
        json!({
            "order_number": "GD20261123001",
            "received_at": "2026-11-23T09:15:00+08:00",
            "channel": "phone",
            "caller": {"name": "张三", "phone": "13812345678"},
            "content": "楼上漏水。",
            "category": "邻里纠纷",
            "location": {"unit_code": "500116001002", "address": "艾坪山社区3栋"},
            "urgency": "normal",
            "reply_deadline": "2026-11-30T18:00:00+08:00"
        })
    }

    fn field_of(v: &Value) -> String {
        parse_order(v.to_string().as_bytes()).expect_err("refused").field
    }

    #[test]
    fn the_openapi_document_describes_every_route() {
        for path in [
            "/hotline/v1/orders:",
            "/hotline/v1/orders/{order_number}:",
            "/hotline/v1/orders/{order_number}/rating:",
            "/hotline/v1/openapi.yaml:",
            "/open311/v2/requests.json:",
            "/open311/v2/requests/{id}.json:",
        ] {
            assert!(OPENAPI.contains(&format!("\n  {path}\n")), "{path} is not in docs/hotline-openapi.yaml");
        }
        for field in ["order_number", "received_at", "channel", "caller", "content", "category", "location", "urgency"]
        {
            assert!(OPENAPI.contains(&format!("        {field}:")), "{field} is not documented");
        }
    }

    #[test]
    fn a_complete_order_parses() {
        let parsed = parse_order(order().to_string().as_bytes()).expect("parses");
        assert_eq!(parsed.external_ref.map(|r| r.to_string()).as_deref(), Some("GD20261123001"));
        assert_eq!(parsed.intake_channel.map(|c| c.to_string()).as_deref(), Some("phone"));
        assert_eq!(parsed.parties.len(), 1);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: [(&str, Value); 8] = [
            ("order_number", json!(null)),
            ("received_at", json!("yesterday")),
            ("caller.phone", json!("12")),
            ("caller.name", json!(7)),
            ("location.unit_code", json!("123")),
            ("urgency", json!("whenever")),
            ("reply_deadline", json!("2026-11-01T00:00:00Z")),
            ("content", json!("")),
        ];
        for (path, bad) in cases {
            let mut v = order();
            let mut at = &mut v;
            let keys: Vec<&str> = path.split('.').collect();
            for k in &keys[..keys.len() - 1] {
                at = &mut at[*k];
            }
            at[keys[keys.len() - 1]] = bad;
            assert_eq!(field_of(&v), path, "for {path}");
        }
        let mut v = order();
        v["location"] = json!("somewhere");
        assert_eq!(field_of(&v), "location");
        assert_eq!(parse_order(b"[1]").expect_err("refused").field, "body");
        assert_eq!(parse_order(b"{").expect_err("refused").field, "body");
    }
}

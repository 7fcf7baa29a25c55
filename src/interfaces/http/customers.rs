//! `/api/v1/customers`: onboard, read, list, update and offboard customers.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::Authenticated;
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::services::audit::{AuditQuery, EventList};
use crate::services::customers::{
    ListQuery, OffboardRequest, OffboardResult, OnboardRequest, UpdateRequest,
};
use crate::services::views::{CustomerList, CustomerView, OnboardResponse};

/// The customer routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", post(onboard).get(list))
        .route("/customers/{customer_id}", get(show).patch(update))
        .route("/customers/{customer_id}/offboard", post(offboard))
        .route("/customers/{customer_id}/audit", get(customer_audit))
}

fn with_etag(view: CustomerView, status: StatusCode) -> Response {
    let etag = format!("\"{}\"", view.version);
    let mut response = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = raw.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_if_match",
            detail: "If-Match must be an ETag this API returned, such as \"3\"".into(),
        })
}

/// Onboard a customer.
///
/// Validates the request and registers the customer. An `Idempotency-Key` header makes a retry
/// return the first response.
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers",
    request_body = OnboardRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first response")),
    responses(
        (status = 201, description = "Onboarded", body = OnboardResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role too low", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "customer_exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed or idempotency_key_reused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn onboard(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    headers: HeaderMap,
    ApiJson(req): ApiJson<OnboardRequest>,
) -> Result<Response, ApiError> {
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or("\u{0}").to_owned());
    let done = state
        .services
        .customers
        .onboard(&actor, &req, key.as_deref())
        .await?;
    let etag = format!("\"{}\"", done.response.customer.version);
    let mut response = (StatusCode::CREATED, Json(done.response)).into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if done.replayed {
        h.insert("idempotency-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// List customers.
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", params(ListQuery),
    responses(
        (status = 200, body = CustomerList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad filter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<CustomerList>, ApiError> {
    Ok(Json(state.services.customers.list(&actor, &q).await?))
}

/// Get one customer.
///
/// Falls back to the product's legacy tenants file (`"source": "legacy"`) when the registry
/// has no such customer.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}", tag = "customers",
    params(("customer_id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, body = CustomerView, headers(("ETag" = String, description = "The record's version"))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let view = state.services.customers.get(&actor, &customer_id).await?;
    Ok(with_etag(view, StatusCode::OK))
}

/// Update a customer.
///
/// Only the fields present change. `status` moves through the status machine. With `If-Match`,
/// a stale version is refused with 412.
#[utoipa::path(patch, path = "/api/v1/customers/{customer_id}", tag = "customers",
    request_body = UpdateRequest,
    params(("customer_id" = String, Path, description = "Customer id"),
           ("If-Match" = Option<String>, Header, description = "The ETag last read")),
    responses(
        (status = 200, body = CustomerView),
        (status = 400, description = "Malformed body or If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_transition or customer_deleted", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "version_mismatch", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<UpdateRequest>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let view = state
        .services
        .customers
        .update(&actor, &customer_id, &req, expected)
        .await?;
    Ok(with_etag(view, StatusCode::OK))
}

/// Offboard a customer.
///
/// `{"delete_data": false}` leaves it `inactive` with its data kept; `{"delete_data": true,
/// "confirm": "<customer_id>", "export": true}` exports the dataset into the server's exports
/// directory, drops it, leaves a `deleted` tombstone and returns a deletion receipt.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/offboard", tag = "customers",
    request_body = OffboardRequest,
    params(("customer_id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, body = OffboardResult),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_transition, customer_deleted or run_in_progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed (confirm missing)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn offboard(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<OffboardRequest>,
) -> Result<Json<OffboardResult>, ApiError> {
    Ok(Json(
        state
            .services
            .customers
            .offboard(&actor, &customer_id, &req, None)
            .await?,
    ))
}

/// One customer's audit history, oldest first.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/audit", tag = "audit",
    params(("customer_id" = String, Path, description = "Customer id"), AuditQuery),
    responses(
        (status = 200, body = EventList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn customer_audit(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiQuery(mut q): ApiQuery<AuditQuery>,
) -> Result<Json<EventList>, ApiError> {
    state.services.customers.get(&actor, &customer_id).await?;
    q.customer_id = Some(customer_id);
    Ok(Json(state.services.audit.list(&actor, &q).await?))
}

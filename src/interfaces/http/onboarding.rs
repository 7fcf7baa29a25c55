//! `/api/v1/customers/{id}/onboarding`, `/query` and `/config`: a customer's run and
//! checklist, retrying a run, the dataset query, and the resolved configuration.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::Authenticated;
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiPath};
use super::AppState;
use crate::services::datasets::{CustomerConfig, QueryRequest};
use crate::services::onboarding::OnboardingStatus;
use crate::services::views::OnboardingResult;
use crate::store::datasets::QueryResult;

/// The onboarding, query and config routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers/{customer_id}/onboarding", get(status))
        .route("/customers/{customer_id}/onboarding/retry", post(retry))
        .route(
            "/customers/{customer_id}/onboarding/checklist/{item}",
            post(check),
        )
        .route("/customers/{customer_id}/query", post(query))
        .route("/customers/{customer_id}/config", get(config))
}

/// A customer's latest onboarding run and its checklist.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/onboarding", tag = "onboarding",
    params(("customer_id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, body = OnboardingStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn status(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<OnboardingStatus>, ApiError> {
    Ok(Json(
        state
            .services
            .onboarding
            .status(&actor, &customer_id)
            .await?,
    ))
}

/// Retry an onboarding: resume a stuck run, or start a new run after a failed one.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/onboarding/retry", tag = "onboarding",
    params(("customer_id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The run after the retry", body = OnboardingResult),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "run_not_retryable (it succeeded) or run_in_progress", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<OnboardingResult>, ApiError> {
    Ok(Json(
        state
            .services
            .onboarding
            .retry(&actor, &customer_id)
            .await?,
    ))
}

/// Mark a manual checklist item done (by the caller, now).
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/onboarding/checklist/{item}", tag = "onboarding",
    params(("customer_id" = String, Path, description = "Customer id"), ("item" = String, Path, description = "Checklist item id")),
    responses(
        (status = 200, body = OnboardingStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "unknown checklist item", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn check(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath((customer_id, item)): ApiPath<(String, String)>,
) -> Result<Json<OnboardingStatus>, ApiError> {
    Ok(Json(
        state
            .services
            .onboarding
            .mark_checklist(&actor, &customer_id, &item)
            .await?,
    ))
}

/// Run one read-only statement inside the customer's dataset.
///
/// Exactly one read-only statement, time- and row-bounded, confined to the customer's own
/// dataset. What the statement shows (writes, attachments, several statements) is refused
/// with 422 before it runs; the database refuses the rest (422 `query_refused`).
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/query", tag = "onboarding",
    request_body = QueryRequest,
    params(("customer_id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, body = QueryResult),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "no_dataset", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed, query_refused or query_timeout", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn query(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<QueryRequest>,
) -> Result<Json<QueryResult>, ApiError> {
    Ok(Json(
        state
            .services
            .datasets
            .query(&actor, &customer_id, &req.sql)
            .await?,
    ))
}

/// A customer's resolved configuration: dataset, tier, tables with their schema version,
/// attributes and checklist.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/config", tag = "onboarding",
    params(("customer_id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, body = CustomerConfig),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn config(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<CustomerConfig>, ApiError> {
    Ok(Json(
        state
            .services
            .customers
            .config(&actor, &customer_id)
            .await?,
    ))
}

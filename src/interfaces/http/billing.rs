//! Billing: the catalog, test clocks, and each customer's trial.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::Authenticated;
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiPath};
use super::AppState;
use crate::services::billing::{
    AdvanceTestClock, ExtendTrial, NewTestClock, PlanList, StartTrial, TestClockList,
    TestClockView, TrialView,
};

/// Routes under `/api/v1` for billing.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plans", get(plans))
        .route("/test-clocks", post(create_test_clock).get(test_clocks))
        .route("/test-clocks/{test_clock_id}", get(test_clock))
        .route(
            "/test-clocks/{test_clock_id}/advance",
            post(advance_test_clock),
        )
        .route(
            "/customers/{customer_id}/trial",
            post(start_trial).get(trial),
        )
        .route(
            "/customers/{customer_id}/trial/activate",
            post(activate_trial),
        )
        .route("/customers/{customer_id}/trial/extend", post(extend_trial))
}

/// The product's plans: prices per currency and per cycle, limits per metric (`null` for
/// unlimited), what happens past each limit; the metrics; the trial's rules.
#[utoipa::path(get, path = "/api/v1/plans", tag = "billing",
    responses((status = 200, body = PlanList), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn plans(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
) -> Json<PlanList> {
    Json(state.services.billing.plans(&actor))
}

/// Make a test clock: a simulated time for the customers onboarded with its id as
/// `test_clock_id`. Refused in production.
#[utoipa::path(post, path = "/api/v1/test-clocks", tag = "billing",
    request_body = NewTestClock,
    responses(
        (status = 201, body = TestClockView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (a viewer token), test_clocks_off (production)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: frozen_time or name (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn create_test_clock(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiJson(req): ApiJson<NewTestClock>,
) -> Result<(StatusCode, Json<TestClockView>), ApiError> {
    let clock = state
        .services
        .billing
        .create_test_clock(&actor, &req)
        .await?;
    Ok((StatusCode::CREATED, Json(clock)))
}

/// The test clocks, newest first.
#[utoipa::path(get, path = "/api/v1/test-clocks", tag = "billing",
    responses(
        (status = 200, body = TestClockList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "test_clocks_off (production)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn test_clocks(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
) -> Result<Json<TestClockList>, ApiError> {
    Ok(Json(state.services.billing.test_clocks(&actor).await?))
}

/// One test clock.
#[utoipa::path(get, path = "/api/v1/test-clocks/{test_clock_id}", tag = "billing",
    params(("test_clock_id" = String, Path, description = "The clock's id")),
    responses(
        (status = 200, body = TestClockView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "test_clocks_off (production)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "test_clock_not_found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn test_clock(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TestClockView>, ApiError> {
    Ok(Json(state.services.billing.test_clock(&actor, &id).await?))
}

/// Move a test clock forward: every piece of its customers' billing work that falls due on the
/// way (trial reminders, expiries, ends of grace) is done, earliest first, each at its own
/// time, before the answer. Clocks only move forward.
#[utoipa::path(post, path = "/api/v1/test-clocks/{test_clock_id}/advance", tag = "billing",
    params(("test_clock_id" = String, Path, description = "The clock's id")),
    request_body = AdvanceTestClock,
    responses(
        (status = 200, description = "The clock at its new time, with work_done", body = TestClockView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (a viewer token), test_clocks_off (production)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "test_clock_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "changed: another advance moved the clock first", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: to is missing, not after the clock's time, or too far", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn advance_test_clock(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<AdvanceTestClock>,
) -> Result<Json<TestClockView>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .advance_test_clock(&actor, &id, &req)
            .await?,
    ))
}

/// Start a customer's trial: pending until what the product's `activate_on` names happens,
/// or active at once when it already has.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/trial", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    request_body = StartTrial,
    responses(
        (status = 201, body = TrialView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "trial_exists (one trial per customer), no_trial_offered, customer_offboarded", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: plan or days (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn start_trial(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<StartTrial>,
) -> Result<(StatusCode, Json<TrialView>), ApiError> {
    let trial = state
        .services
        .billing
        .start_trial(&actor, &customer_id, &req)
        .await?;
    Ok((StatusCode::CREATED, Json(trial)))
}

/// A customer's trial: status, end, grace, reminder, limits and `available_actions`.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/trial", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    responses(
        (status = 200, body = TrialView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found, trial_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "no_trial_offered", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn trial(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<TrialView>, ApiError> {
    Ok(Json(
        state.services.billing.trial(&actor, &customer_id).await?,
    ))
}

/// Start a pending trial's clock now, whatever the product's `activate_on`.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/trial/activate", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    responses(
        (status = 200, body = TrialView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found, trial_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "trial_status: the trial is not pending; changed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn activate_trial(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<TrialView>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .activate_trial(&actor, &customer_id)
            .await?,
    ))
}

/// Give a trial more days, with the reason; refused past the product's `max_extensions`.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/trial/extend", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    request_body = ExtendTrial,
    responses(
        (status = 200, body = TrialView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found, trial_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "no_extensions_left, trial_status (converted or expired), changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: days or reason (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn extend_trial(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<ExtendTrial>,
) -> Result<Json<TrialView>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .extend_trial(&actor, &customer_id, &req)
            .await?,
    ))
}

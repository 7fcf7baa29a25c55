//! Billing: the catalog, test clocks, and each customer's trial.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::{Authenticated, TenantAuthenticated};
use super::error::{ApiError, Problem};
use super::json::ApiQuery;
use super::json::{ApiJson, ApiPath};
use super::AppState;
use crate::services::billing::{
    AdvanceTestClock, CancelSubscription, ChangePreview, ChangeSubscription, ExtendTrial,
    NewSubscription, NewTestClock, PlanList, PreviewQuery, StartTrial, SubscriptionView,
    TestClockList, TestClockView, TrialView,
};
use crate::services::billing::{
    Entitlement, EntitlementCheck, Sender, UsageBatch, UsageResults, UsageView,
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
        .route(
            "/customers/{customer_id}/trial/convert",
            post(convert_trial),
        )
        .route(
            "/customers/{customer_id}/subscription",
            post(subscribe).get(subscription),
        )
        .route(
            "/customers/{customer_id}/subscription/preview",
            get(preview_change),
        )
        .route(
            "/customers/{customer_id}/subscription/change",
            post(change_subscription),
        )
        .route(
            "/customers/{customer_id}/subscription/cancel",
            post(cancel_subscription),
        )
        .route(
            "/customers/{customer_id}/subscription/unschedule",
            post(unschedule_subscription),
        )
        .route(
            "/usage",
            post(record_usage).layer(axum::extract::DefaultBodyLimit::max(USAGE_MAX_BYTES)),
        )
        .route(
            "/me/usage",
            post(record_my_usage).layer(axum::extract::DefaultBodyLimit::max(USAGE_MAX_BYTES)),
        )
        .route("/customers/{customer_id}/usage", get(usage))
        .route("/entitlements/check", post(check_entitlement))
        .route("/me/entitlements/{metric}", get(my_entitlement))
}

/// The largest usage batch body (1,000 events with room for long ids).
pub const USAGE_MAX_BYTES: usize = 1024 * 1024;

/// Record a batch of usage events (operators: each names its `customer_id`). Answers each event
/// in order: `accepted`, `duplicate` (its id was recorded with the same content: the first
/// answer again) or `refused` (409: its id was used with another content; 422: a field broke a
/// rule, named).
#[utoipa::path(post, path = "/api/v1/usage", tag = "billing",
    request_body = UsageBatch,
    responses(
        (status = 200, body = UsageResults),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large: over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: events must hold 1 to 1,000 events", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn record_usage(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiJson(batch): ApiJson<UsageBatch>,
) -> Result<Json<UsageResults>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .record_usage(Sender::Operator(&actor), &batch)
            .await?,
    ))
}

/// Record a batch of the customer's own usage, with its access token (scope `usage:write`).
#[utoipa::path(post, path = "/api/v1/me/usage", tag = "billing",
    request_body = UsageBatch,
    responses(
        (status = 200, body = UsageResults),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "insufficient_scope: the token lacks usage:write", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large: over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: events must hold 1 to 1,000 events", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn record_my_usage(
    State(state): State<AppState>,
    TenantAuthenticated(p): TenantAuthenticated,
    ApiJson(batch): ApiJson<UsageBatch>,
) -> Result<Json<UsageResults>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .record_usage(Sender::Tenant(&p), &batch)
            .await?,
    ))
}

/// A customer's usage in each metric's current period, with its limits and overage.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/usage", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    responses(
        (status = 200, body = UsageView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<UsageView>, ApiError> {
    Ok(Json(
        state.services.billing.usage(&actor, &customer_id).await?,
    ))
}

/// Whether a customer may use `amount` (default 1) more of a metric now: `allowed`, `limit`,
/// `used`, `remaining`, `soft_exceeded`.
#[utoipa::path(post, path = "/api/v1/entitlements/check", tag = "billing",
    request_body = EntitlementCheck,
    responses(
        (status = 200, body = Entitlement),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: customer_id, metric or amount (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn check_entitlement(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiJson(req): ApiJson<EntitlementCheck>,
) -> Result<Json<Entitlement>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .check_entitlement(&actor, &req)
            .await?,
    ))
}

/// The amount an entitlement check asks about.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AmountQuery {
    /// How much the customer is about to use (default 1).
    pub amount: Option<f64>,
}

/// Whether the token's own customer may use `amount` (default 1) more of a metric now (scope
/// `usage:read` or `usage:write`).
#[utoipa::path(get, path = "/api/v1/me/entitlements/{metric}", tag = "billing",
    params(("metric" = String, Path, description = "A metric of the product"), AmountQuery),
    responses(
        (status = 200, body = Entitlement),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "insufficient_scope: the token has neither usage:read nor usage:write", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: metric or amount (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn my_entitlement(
    State(state): State<AppState>,
    TenantAuthenticated(p): TenantAuthenticated,
    ApiPath(metric): ApiPath<String>,
    ApiQuery(q): ApiQuery<AmountQuery>,
) -> Result<Json<Entitlement>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .my_entitlement(&p, &metric, q.amount)
            .await?,
    ))
}

/// Convert a customer's trial into a subscription on a plan and cycle (the trial's limits end,
/// the plan's begin; the first period is charged from now).
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/trial/convert", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    request_body = NewSubscription,
    responses(
        (status = 201, body = SubscriptionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found, trial_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "trial_status (converted already, or ended), subscription_exists, customer_offboarded, changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: plan, cycle or currency (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn convert_trial(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<NewSubscription>,
) -> Result<(StatusCode, Json<SubscriptionView>), ApiError> {
    let s = state
        .services
        .billing
        .convert_trial(&actor, &customer_id, &req)
        .await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// Subscribe a customer to a plan and cycle; a trial it has running is converted.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/subscription", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    request_body = NewSubscription,
    responses(
        (status = 201, body = SubscriptionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "subscription_exists, customer_offboarded, changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: plan, cycle or currency (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn subscribe(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<NewSubscription>,
) -> Result<(StatusCode, Json<SubscriptionView>), ApiError> {
    let s = state
        .services
        .billing
        .subscribe(&actor, &customer_id, &req)
        .await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// A customer's subscription: plan, cycle, period, renewal, pending change and
/// `available_actions`.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/subscription", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    responses(
        (status = 200, body = SubscriptionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found, subscription_not_found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn subscription(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .subscription(&actor, &customer_id)
            .await?,
    ))
}

/// The proration lines and total a change to `plan` and `cycle` made now would give, without
/// making it.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/subscription/preview", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id"), PreviewQuery),
    responses(
        (status = 200, body = ChangePreview),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found, subscription_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "subscription_unchanged: the plan and cycle it has", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: plan or cycle (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn preview_change(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PreviewQuery>,
) -> Result<Json<ChangePreview>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .preview_change(&actor, &customer_id, &q)
            .await?,
    ))
}

/// Change a subscription's plan or cycle `now` (prorated to the second) or at `period_end`
/// (scheduled, replacing what was).
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/subscription/change", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    request_body = ChangeSubscription,
    responses(
        (status = 200, body = SubscriptionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found, subscription_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "subscription_unchanged, subscription_status, changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: plan, cycle or when (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn change_subscription(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<ChangeSubscription>,
) -> Result<Json<SubscriptionView>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .change_subscription(&actor, &customer_id, &req)
            .await?,
    ))
}

/// Withdraw what was scheduled for the period's end (a change or a cancellation).
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/subscription/unschedule", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    responses(
        (status = 200, body = SubscriptionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found, subscription_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "subscription_status: nothing is scheduled; changed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn unschedule_subscription(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .unschedule_subscription(&actor, &customer_id)
            .await?,
    ))
}

/// Cancel a subscription `now` or at `period_end`.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/subscription/cancel", tag = "billing",
    params(("customer_id" = String, Path, description = "The customer's id")),
    request_body = CancelSubscription,
    responses(
        (status = 200, body = SubscriptionView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a viewer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found, subscription_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "subscription_status, changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: when (named)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn cancel_subscription(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<CancelSubscription>,
) -> Result<Json<SubscriptionView>, ApiError> {
    Ok(Json(
        state
            .services
            .billing
            .cancel_subscription(&actor, &customer_id, &req)
            .await?,
    ))
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
/// time, before the answer. Clocks only move forward; `to` at the clock's own time moves
/// nothing and does what is due and not done yet.
#[utoipa::path(post, path = "/api/v1/test-clocks/{test_clock_id}/advance", tag = "billing",
    params(("test_clock_id" = String, Path, description = "The clock's id")),
    request_body = AdvanceTestClock,
    responses(
        (status = 200, description = "The clock at its new time, with work_done", body = TestClockView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden (a viewer token), test_clocks_off (production)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "test_clock_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "changed: other advances kept moving the clock while this one read it", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: to is missing, before the clock's time, or too far", body = Problem, content_type = "application/problem+json"),
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

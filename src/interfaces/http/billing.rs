//! The catalog: plans, their cycles and limits, the metrics and the trial's rules.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::auth::Authenticated;
use super::error::Problem;
use super::AppState;
use crate::services::billing::PlanList;

/// Routes under `/api/v1` for billing.
pub fn router() -> Router<AppState> {
    Router::new().route("/plans", get(plans))
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

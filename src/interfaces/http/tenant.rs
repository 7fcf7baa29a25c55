//! The customer's side: `POST /api/v1/auth/token/integration` (an integration key in
//! `x-api-key` for an access token) and `GET /api/v1/me`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::auth::TenantAuthenticated;
use super::error::{ApiError, Problem};
use super::AppState;
use crate::services::tenant_tokens::{MeView, TokenGrant};
use crate::services::ServiceError;

/// The tenant routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/token/integration", post(exchange))
        .route("/me", get(me))
}

/// Exchange an integration key (`x-api-key`) for a short-lived access token.
#[utoipa::path(post, path = "/api/v1/auth/token/integration", tag = "integration keys",
    params(("x-api-key" = String, Header, description = "An integration key, onr_ik_...")),
    responses(
        (status = 200, body = TokenGrant),
        (status = 401, description = "missing, malformed, unknown, revoked or expired key", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn exchange(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<TokenGrant>, ApiError> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .ok_or(ServiceError::Unauthenticated(
            "missing x-api-key header with an integration key",
        ))?;
    Ok(Json(state.services.exchange_integration_key(key).await?))
}

/// The customer as its own access token sees it.
#[utoipa::path(get, path = "/api/v1/me", tag = "integration keys",
    responses(
        (status = 200, body = MeView),
        (status = 401, description = "missing, malformed, expired or foreign token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn me(
    State(state): State<AppState>,
    TenantAuthenticated(p): TenantAuthenticated,
) -> Result<Json<MeView>, ApiError> {
    Ok(Json(state.services.me(&p).await?))
}

//! Authentication of `/api/v1` requests: `Authorization: Bearer <admin token>`.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::error::ApiError;
use super::AppState;
use crate::services::{Actor, ServiceError};

/// The actor behind an authenticated request. Handlers that take it refuse a missing or bad
/// token with 401; the services refuse a role that is too low with 403.
pub struct Authenticated(pub Actor);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let value =
            parts
                .headers
                .get(header::AUTHORIZATION)
                .ok_or(ServiceError::Unauthenticated(
                    "missing Authorization: Bearer <token> header",
                ))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ServiceError::Unauthenticated(
                "the Authorization header must be 'Bearer <token>'",
            ))?;
        Ok(Authenticated(
            state.services.authenticate(token, request_id).await?,
        ))
    }
}

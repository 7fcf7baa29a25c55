//! Authentication of `/api/v1` requests: `Authorization: Bearer <admin token>` for operators,
//! `Authorization: Bearer <access token>` (from the token exchange) for a customer's own routes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::error::ApiError;
use super::AppState;
use crate::services::tenant_tokens::TenantPrincipal;
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
        let token = bearer(&parts.headers)?;
        Ok(Authenticated(
            state
                .services
                .admin_tokens
                .authenticate(token, request_id)
                .await?,
        ))
    }
}

/// The token of `Authorization: Bearer <token>`.
pub(super) fn bearer(headers: &HeaderMap) -> Result<&str, ServiceError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(ServiceError::Unauthenticated(
            "missing Authorization: Bearer <token> header",
        ))?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ServiceError::Unauthenticated(
            "the Authorization header must be 'Bearer <token>'",
        ))
}

/// A customer acting through an access token from the token exchange.
pub struct TenantAuthenticated(pub TenantPrincipal);

impl FromRequestParts<AppState> for TenantAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)?;
        Ok(TenantAuthenticated(
            state.services.keys.authenticate(token)?,
        ))
    }
}

/// Either an operator (admin token) or a customer (access token).
pub enum AnyAuthenticated {
    /// An admin token.
    Operator(Actor),
    /// A customer's access token.
    Tenant(TenantPrincipal),
}

impl FromRequestParts<AppState> for AnyAuthenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if bearer(&parts.headers)?.starts_with("onr_at_") {
            let Authenticated(actor) = Authenticated::from_request_parts(parts, state).await?;
            Ok(AnyAuthenticated::Operator(actor))
        } else {
            let TenantAuthenticated(p) =
                TenantAuthenticated::from_request_parts(parts, state).await?;
            Ok(AnyAuthenticated::Tenant(p))
        }
    }
}

//! `/api/v1/customers/{id}/integration-keys`: issue (the secret is in this one answer), list,
//! rotate with an optional grace period, revoke.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Authenticated;
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiPath};
use super::AppState;
use crate::services::keys::{IssueKeyRequest, IssuedKey, KeyView, RotateKeyRequest};

/// The integration key routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/customers/{customer_id}/integration-keys",
            post(issue).get(list),
        )
        .route(
            "/customers/{customer_id}/integration-keys/{key_id}",
            axum::routing::delete(revoke),
        )
        .route(
            "/customers/{customer_id}/integration-keys/{key_id}/rotate",
            post(rotate),
        )
}

/// A customer's keys.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    /// Oldest first; never a secret.
    pub items: Vec<KeyView>,
}

/// Issue an integration key; its secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/integration-keys", tag = "integration keys",
    request_body = IssueKeyRequest,
    params(("customer_id" = String, Path, description = "Customer id")),
    responses(
        (status = 201, body = IssuedKey),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn issue(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
    ApiJson(req): ApiJson<IssueKeyRequest>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let issued = state
        .services
        .keys
        .issue(&actor, &customer_id, &req)
        .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// A customer's integration keys, without secrets.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/integration-keys", tag = "integration keys",
    params(("customer_id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, body = KeyList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        items: state.services.keys.list(&actor, &customer_id).await?,
    }))
}

/// Give a key a new secret; with `grace_seconds` the old one keeps working that long.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/integration-keys/{key_id}/rotate", tag = "integration keys",
    request_body = RotateKeyRequest,
    params(("customer_id" = String, Path, description = "Customer id"),
           ("key_id" = String, Path, description = "Key id")),
    responses(
        (status = 200, body = IssuedKey),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "key_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "key_revoked", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath((customer_id, key_id)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<RotateKeyRequest>,
) -> Result<Json<IssuedKey>, ApiError> {
    Ok(Json(
        state
            .services
            .keys
            .rotate(&actor, &customer_id, &key_id, &req)
            .await?,
    ))
}

/// Revoke a key: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/customers/{customer_id}/integration-keys/{key_id}", tag = "integration keys",
    params(("customer_id" = String, Path, description = "Customer id"),
           ("key_id" = String, Path, description = "Key id")),
    responses(
        (status = 200, body = KeyView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath((customer_id, key_id)): ApiPath<(String, String)>,
) -> Result<Json<KeyView>, ApiError> {
    Ok(Json(
        state
            .services
            .keys
            .revoke(&actor, &customer_id, &key_id)
            .await?,
    ))
}

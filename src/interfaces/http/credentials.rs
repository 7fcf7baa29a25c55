//! `/api/v1/customers/{id}/credentials`: the credentials vault. Every route returns metadata
//! only, except `GET .../value` (admin), whose every read is an event.

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{AnyAuthenticated, Authenticated};
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::AppState;
use crate::services::credentials::{
    CredentialList, CredentialValue, CredentialView, PutCredential, VersionAction, VersionView,
};
use crate::services::ServiceError;

/// The vault's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers/{customer_id}/credentials", get(list))
        .route(
            "/customers/{customer_id}/credentials/{credential_type}",
            put(store).delete(revoke),
        )
        .route(
            "/customers/{customer_id}/credentials/{credential_type}/versions",
            get(versions),
        )
        .route(
            "/customers/{customer_id}/credentials/{credential_type}/versions/{version}/{action}",
            post(change_version),
        )
        .route(
            "/customers/{customer_id}/credentials/{credential_type}/validate",
            post(validate),
        )
        .route(
            "/customers/{customer_id}/credentials/{credential_type}/value",
            get(value),
        )
        .route("/credentials/due", get(due))
}

/// A credential's versions.
#[derive(Serialize, ToSchema)]
pub struct VersionList {
    /// Oldest first.
    pub items: Vec<VersionView>,
}

/// Credentials due for rotation.
#[derive(Serialize, ToSchema)]
pub struct DueList {
    /// Soonest first.
    pub items: Vec<CredentialView>,
}

/// Options of a revocation.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevokeQuery {
    /// Also erase every stored version for good.
    #[serde(default)]
    pub destroy: bool,
}

/// How far ahead to look.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DueQuery {
    /// Credentials whose `rotate_by` falls within this many days (default 14), or has passed.
    pub within_days: Option<u32>,
}

/// Store a credential.
///
/// Every write is a new version, encrypted at rest, and becomes current with status
/// `unvalidated`. The value is never returned.
#[utoipa::path(put, path = "/api/v1/customers/{customer_id}/credentials/{credential_type}", tag = "credentials",
    request_body = PutCredential,
    params(("customer_id" = String, Path, description = "Customer id"),
           ("credential_type" = String, Path, description = "A credential type of the product")),
    responses(
        (status = 200, body = CredentialView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "customer_deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: unknown type, wrong format, forbidden or missing scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn store(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath((customer_id, credential_type)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<PutCredential>,
) -> Result<Json<CredentialView>, ApiError> {
    Ok(Json(
        state
            .services
            .vault
            .put(&actor, &customer_id, &credential_type, &req)
            .await?,
    ))
}

/// A customer's credentials (metadata only) and the required types it lacks.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/credentials", tag = "credentials",
    params(("customer_id" = String, Path, description = "Customer id")),
    responses(
        (status = 200, body = CredentialList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<CredentialList>, ApiError> {
    Ok(Json(state.services.vault.list(&actor, &customer_id).await?))
}

/// A credential's versions.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/credentials/{credential_type}/versions", tag = "credentials",
    params(("customer_id" = String, Path, description = "Customer id"),
           ("credential_type" = String, Path, description = "Credential type")),
    responses(
        (status = 200, body = VersionList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found or credential_not_found", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn versions(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath((customer_id, credential_type)): ApiPath<(String, String)>,
) -> Result<Json<VersionList>, ApiError> {
    Ok(Json(VersionList {
        items: state
            .services
            .vault
            .versions(&actor, &customer_id, &credential_type)
            .await?,
    }))
}

/// Disable, enable or destroy one version (`action` is `disable`, `enable` or `destroy`).
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/credentials/{credential_type}/versions/{version}/{action}", tag = "credentials",
    params(("customer_id" = String, Path, description = "Customer id"),
           ("credential_type" = String, Path, description = "Credential type"),
           ("version" = i64, Path, description = "Version"),
           ("action" = String, Path, description = "disable, enable or destroy")),
    responses(
        (status = 200, body = VersionList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_version_state: a destroyed version, or enabling a revoked credential", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: unknown action", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn change_version(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath((customer_id, credential_type, version, action)): ApiPath<(
        String,
        String,
        i64,
        String,
    )>,
) -> Result<Json<VersionList>, ApiError> {
    let action: VersionAction = action
        .parse()
        .map_err(|e: crate::domain::Invalid| ServiceError::from(e.at("action")))?;
    Ok(Json(VersionList {
        items: state
            .services
            .vault
            .change_version(&actor, &customer_id, &credential_type, version, action)
            .await?,
    }))
}

/// Check the current value against the provider's endpoint and record the outcome.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/credentials/{credential_type}/validate", tag = "credentials",
    params(("customer_id" = String, Path, description = "Customer id"),
           ("credential_type" = String, Path, description = "Credential type")),
    responses(
        (status = 200, description = "The credential with its new status, scopes and last_validated_at", body = CredentialView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: no check endpoint configured", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn validate(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath((customer_id, credential_type)): ApiPath<(String, String)>,
) -> Result<Json<CredentialView>, ApiError> {
    Ok(Json(
        state
            .services
            .vault
            .validate(&actor, &customer_id, &credential_type)
            .await?,
    ))
}

/// Revoke a credential; `?destroy=true` erases every version.
#[utoipa::path(delete, path = "/api/v1/customers/{customer_id}/credentials/{credential_type}", tag = "credentials",
    params(("customer_id" = String, Path, description = "Customer id"),
           ("credential_type" = String, Path, description = "Credential type"), RevokeQuery),
    responses(
        (status = 200, body = CredentialView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiPath((customer_id, credential_type)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<RevokeQuery>,
) -> Result<Json<CredentialView>, ApiError> {
    Ok(Json(
        state
            .services
            .vault
            .revoke(&actor, &customer_id, &credential_type, q.destroy)
            .await?,
    ))
}

/// Read the current value: an admin token, or the customer's own access token with the
/// `credentials:read` scope. Every read is recorded as a `credential.read` event.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/credentials/{credential_type}/value", tag = "credentials",
    params(("customer_id" = String, Path, description = "Customer id"),
           ("credential_type" = String, Path, description = "Credential type")),
    responses(
        (status = 200, body = CredentialValue),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "credential_unreadable: the stored value was altered or moved", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn value(
    State(state): State<AppState>,
    auth: AnyAuthenticated,
    ApiPath((customer_id, credential_type)): ApiPath<(String, String)>,
) -> Result<Json<CredentialValue>, ApiError> {
    let s = &state.services;
    Ok(Json(match auth {
        AnyAuthenticated::Operator(actor) => {
            s.vault
                .reveal(&actor, &customer_id, &credential_type)
                .await?
        }
        AnyAuthenticated::Tenant(p) => {
            s.vault
                .reveal_to_tenant(&p, &customer_id, &credential_type)
                .await?
        }
    }))
}

/// Credentials past or near their rotation deadline, across customers.
#[utoipa::path(get, path = "/api/v1/credentials/due", tag = "credentials", params(DueQuery),
    responses(
        (status = 200, body = DueList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn due(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<DueQuery>,
) -> Result<Json<DueList>, ApiError> {
    Ok(Json(DueList {
        items: state
            .services
            .vault
            .due(&actor, q.within_days.unwrap_or(14))
            .await?,
    }))
}

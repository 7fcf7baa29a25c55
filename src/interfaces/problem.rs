//! The one classification of service errors that every remote interface shares: an RFC 9457
//! problem with an HTTP status and a stable `code`. The HTTP API sends it as
//! `application/problem+json`; the MCP server returns the same object as an `isError` tool
//! result. A 5xx never shows its cause to the caller; it is logged once, here.

use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldError;
use crate::services::ServiceError;
use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:onramp:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this request.
    pub detail: String,
    /// Stable, machine-readable code.
    pub code: String,
    /// Every bad field, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl Problem {
    /// A problem with its status, code, detail and (for validation errors) the bad fields.
    pub fn new(
        status: StatusCode,
        code: &str,
        detail: impl Into<String>,
        errors: Option<Vec<FieldError>>,
    ) -> Self {
        Self {
            problem_type: format!("urn:onramp:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            errors,
        }
    }

    /// The status as an HTTP status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<&ServiceError> for Problem {
    fn from(e: &ServiceError) -> Self {
        use ServiceError as S;
        let detail = e.to_string();
        let (status, code) = match e {
            S::Invalid(errors) => {
                return Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    detail,
                    Some(errors.clone()),
                )
            }
            S::CustomerNotFound(_) => (StatusCode::NOT_FOUND, "customer_not_found"),
            S::CustomerExists(_) => (StatusCode::CONFLICT, "customer_exists"),
            S::InvalidTransition(_) => (StatusCode::CONFLICT, "invalid_transition"),
            S::CustomerDeleted(_) => (StatusCode::CONFLICT, "customer_deleted"),
            S::VersionMismatch { .. } => (StatusCode::PRECONDITION_FAILED, "version_mismatch"),
            S::IdempotencyKeyReused(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            S::IdempotencyKeyInProgress(_) => (StatusCode::CONFLICT, "idempotency_key_in_progress"),
            S::RunNotRetryable(_) => (StatusCode::CONFLICT, "run_not_retryable"),
            S::RunInProgress(_) => (StatusCode::CONFLICT, "run_in_progress"),
            S::StatusOwnedByOnboarding(_) => (StatusCode::CONFLICT, "status_owned_by_onboarding"),
            S::NoDataset(_) => (StatusCode::CONFLICT, "no_dataset"),
            S::AdapterNotFound(_) => (StatusCode::NOT_FOUND, "adapter_not_found"),
            S::NotActive { .. } => (StatusCode::CONFLICT, "not_active"),
            S::TableNotProvisioned { .. } => (StatusCode::CONFLICT, "table_not_provisioned"),
            S::CredentialNotFound(_) => (StatusCode::NOT_FOUND, "credential_not_found"),
            S::KeyNotFound(_) => (StatusCode::NOT_FOUND, "key_not_found"),
            S::KeyRevoked(_) => (StatusCode::CONFLICT, "key_revoked"),
            S::VersionState(_) => (StatusCode::CONFLICT, "invalid_version_state"),
            S::KeyChanged(_) => (StatusCode::CONFLICT, "key_changed"),
            S::CredentialUnreadable(_) => {
                tracing::error!(error = %e, "vault integrity");
                (StatusCode::INTERNAL_SERVER_ERROR, "credential_unreadable")
            }
            S::QueryRefused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "query_refused"),
            S::QueryTimeout(_) => (StatusCode::UNPROCESSABLE_ENTITY, "query_timeout"),
            S::Dataset(d) if d.is_transient() => {
                tracing::error!(error = %e, "dataset store unavailable");
                return Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a dataset store is busy or unreachable; retry shortly",
                    None,
                );
            }
            S::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            S::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            S::ScopeMissing(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
            S::OtherCustomer => (StatusCode::FORBIDDEN, "forbidden"),
            S::AdapterNotAllowed(_) => (StatusCode::FORBIDDEN, "adapter_not_allowed"),
            S::Store(StoreError::Database(sqlx::Error::PoolTimedOut)) => {
                tracing::error!(error = %e, "registry unavailable");
                return Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the registry is busy; retry shortly",
                    None,
                );
            }
            S::Store(_) | S::Product(_) | S::Dataset(_) | S::Export(_) | S::Internal(_) => {
                tracing::error!(error = %e, "request failed");
                return Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an internal error occurred; it has been logged",
                    None,
                );
            }
        };
        Problem::new(status, code, detail, None)
    }
}

//! The one place service errors become HTTP: RFC 9457 `application/problem+json` with a
//! stable `code`. A 5xx never shows its cause to the client; it is logged once, here.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldError;
use crate::services::ServiceError;
use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
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

/// An error on its way to becoming a problem response.
#[derive(Debug)]
pub enum ApiError {
    /// From a use case.
    Service(ServiceError),
    /// The request itself is malformed (body, header, path).
    BadRequest {
        /// HTTP status.
        status: StatusCode,
        /// Stable code.
        code: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// No route.
    NotFound,
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError::Service(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "malformed_body",
        };
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        ApiError::BadRequest {
            status,
            code,
            detail: r.body_text(),
        }
    }
}

fn problem(
    status: StatusCode,
    code: &str,
    detail: String,
    errors: Option<Vec<FieldError>>,
) -> Response {
    let body = Problem {
        problem_type: format!("urn:onramp:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
        errors,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        use ServiceError as S;
        let e = match self {
            ApiError::BadRequest {
                status,
                code,
                detail,
            } => return problem(status, code, detail, None),
            ApiError::NotFound => {
                return problem(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such route".into(),
                    None,
                );
            }
            ApiError::Service(e) => e,
        };
        let detail = e.to_string();
        let (status, code) = match &e {
            S::Invalid(errors) => {
                return problem(
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
            S::QueryRefused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "query_refused"),
            S::QueryTimeout(_) => (StatusCode::UNPROCESSABLE_ENTITY, "query_timeout"),
            S::Dataset(d) if d.is_transient() => {
                tracing::error!(error = %e, "dataset store unavailable");
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a dataset store is busy or unreachable; retry shortly".into(),
                    None,
                );
            }
            S::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            S::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            S::Store(StoreError::Database(sqlx::Error::PoolTimedOut)) => {
                tracing::error!(error = %e, "registry unavailable");
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the registry is busy; retry shortly".into(),
                    None,
                );
            }
            S::Store(_) | S::Product(_) | S::Dataset(_) | S::Export(_) => {
                tracing::error!(error = %e, "request failed");
                return problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an internal error occurred; it has been logged".into(),
                    None,
                );
            }
        };
        problem(status, code, detail, None)
    }
}

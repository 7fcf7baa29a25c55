//! The one classification of service errors that every remote interface shares: an RFC 9457
//! problem with an HTTP status and a stable `code`. The HTTP API sends it as
//! `application/problem+json`; the MCP server returns the same object as an `isError` tool
//! result. A 5xx never shows its cause to the caller; it is logged once, here.

use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldError;
use crate::services::{ErrorKind, ServiceError};

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
        let kind = e.kind();
        let status = match kind {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Stale => StatusCode::PRECONDITION_FAILED,
            ErrorKind::Limited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Integrity | ErrorKind::Config | ErrorKind::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        match kind {
            ErrorKind::Integrity => tracing::error!(error = %e, "vault integrity"),
            ErrorKind::Unavailable => tracing::error!(error = %e, "store unavailable"),
            ErrorKind::Config | ErrorKind::Internal => {
                tracing::error!(error = %e, "request failed")
            }
            _ => {}
        }
        let errors = e.invalid_fields().map(<[_]>::to_vec);
        Problem::new(status, e.code(), e.public_message(), errors)
    }
}

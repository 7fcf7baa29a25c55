//! The one place errors become HTTP responses: RFC 9457 `application/problem+json`, classified
//! by [`crate::interfaces::problem`].

pub use crate::interfaces::problem::Problem;
use crate::services::ServiceError;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

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
    /// The route exists, but not for this method.
    MethodNotAllowed,
    /// A rate limit is spent.
    RateLimited {
        /// What is limited.
        detail: String,
        /// Seconds until the next request may come.
        retry_after_secs: u64,
    },
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError::Service(e)
    }
}

crate::interfaces::from_capability_errors!(ApiError, ApiError::Service);

/// A body the extractor refused, as a problem: 413, 415, else 400.
fn rejected_body(status: StatusCode, detail: String) -> ApiError {
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
        detail,
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        rejected_body(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        rejected_body(r.status(), r.body_text())
    }
}

fn problem_response(body: Problem) -> Response {
    let status = body.status_code();
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
        let mut retry_after = None;
        let problem = match self {
            ApiError::BadRequest {
                status,
                code,
                detail,
            } => Problem::new(status, code, detail, None),
            ApiError::NotFound => {
                Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route", None)
            }
            ApiError::MethodNotAllowed => Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the route does not answer this method",
                None,
            ),
            ApiError::RateLimited {
                detail,
                retry_after_secs,
            } => {
                retry_after = Some(retry_after_secs);
                Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail, None)
            }
            ApiError::Service(e) => {
                if e.code() == "idempotency_key_in_progress" {
                    // The first request with the key is still onboarding; it takes a second or so.
                    retry_after = Some(1);
                }
                if let Some(secs) = e.retry_after_secs() {
                    retry_after = Some(secs);
                }
                Problem::from(&e)
            }
        };
        let mut response = problem_response(problem);
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

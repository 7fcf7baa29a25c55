//! The request extractors of the API, whose every refusal is a problem response naming the
//! field: JSON bodies, path parameters and query strings. A NUL character is refused wherever
//! it appears (a body's string or key, a path segment, a query parameter), because no value
//! Onramp stores may hold one and PostgreSQL cannot store it at all; [`refuse_nul`] checks the
//! URI of every request before routing, so the rule holds on routes without extractors too.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::{FieldError, Invalid};

/// A validation refusal of one field, as an API error.
fn field_refused(field: impl Into<String>, code: &'static str, message: String) -> ApiError {
    ApiError::Service(crate::services::ServiceError::Invalid(vec![Invalid::new(
        code, message,
    )
    .at(field)]))
}

fn nul_refused(field: String) -> ApiError {
    field_refused(
        field,
        "nul_character",
        "must not contain a NUL character".to_owned(),
    )
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `axum::Json`, refusing malformed, oversized, mistyped or NUL-holding bodies as problem+json.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::BadRequest {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                detail: "the body must be JSON, sent with `Content-Type: application/json`".into(),
            });
        }
        let bytes = Bytes::from_request(req, state).await?;
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if let Some(field) = crate::domain::text::nul_path(&value) {
                return Err(nul_refused(field));
            }
            // Every body of this API is an object; serde would also take a struct as an array.
            if !value.is_object() {
                return Err(ApiError::BadRequest {
                    status: StatusCode::BAD_REQUEST,
                    code: "malformed_body",
                    detail: "the body must be a JSON object".into(),
                });
            }
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(value))
    }
}

/// `axum::extract::Path`, refusing unparsable parameters as problem+json naming the parameter.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                use axum::extract::path::ErrorKind;
                let message = e.body_text();
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::DeserializeError { key, .. } => key.clone(),
                    ErrorKind::ParseErrorAtIndex { index, .. } => format!("path[{index}]"),
                    _ => "path".to_owned(),
                };
                match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { .. } => Err(field_refused(
                        field,
                        "invalid_utf8",
                        "must be valid UTF-8 once percent-decoded".into(),
                    )),
                    ErrorKind::UnsupportedType { .. }
                    | ErrorKind::WrongNumberOfParameters { .. } => Err(ApiError::Service(
                        crate::services::ServiceError::Internal(message),
                    )),
                    _ => Err(field_refused(field, "invalid_type", message)),
                }
            }
            Err(other) => Err(ApiError::Service(crate::services::ServiceError::Internal(
                other.body_text(),
            ))),
        }
    }
}

/// `axum::extract::Query`, refusing a bad query string as problem+json naming the parameter
/// and its rule.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        // A parameter given with no value (`?status=&limit=10`) is taken as not given.
        let given: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form_urlencoded::parse(query.as_bytes()).filter(|(_, v)| !v.is_empty()))
            .finish();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(given.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|e| {
                let field = match e.path().to_string() {
                    p if p == "." || p.is_empty() => "query".to_owned(),
                    p => p,
                };
                field_refused(field, "invalid_value", e.inner().to_string())
            })
    }
}

/// Refuses, before routing, a request whose path or query string holds a NUL once
/// percent-decoded (422, naming the parameter), or whose path is not UTF-8 (400).
pub async fn refuse_nul(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let path = percent_encoding::percent_decode_str(uri.path()).collect::<Vec<u8>>();
    if path.contains(&0) {
        return nul_refused("path".into()).into_response();
    }
    if std::str::from_utf8(&path).is_err() {
        return ApiError::BadRequest {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_path",
            detail: "the path must be valid UTF-8 once percent-decoded".into(),
        }
        .into_response();
    }
    if let Some(query) = uri.query() {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if key.contains('\0') || value.contains('\0') {
                return nul_refused(key.replace('\0', "\\u0000")).into_response();
            }
        }
    }
    next.run(request).await
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Service(crate::services::ServiceError::Invalid(vec![e]))
    }
}

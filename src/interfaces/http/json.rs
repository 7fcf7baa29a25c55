//! A JSON body extractor whose rejections are problem responses.

use axum::extract::FromRequest;

use super::error::ApiError;

/// `axum::Json`, refusing malformed, oversized or mistyped bodies as problem+json.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

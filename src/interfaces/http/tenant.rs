//! The customer's side: `POST /api/v1/auth/token/integration` (an integration key in
//! `x-api-key` for an access token) and `GET /api/v1/me`.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::auth::TenantAuthenticated;
use super::error::{ApiError, Problem};
use super::json::{ApiJson, ApiPath};
use super::AppState;
use crate::services::keys::{IssuedKey, RotateKeyRequest};
use crate::services::tenant_tokens::{MeView, TokenGrant};
use crate::services::uploads::UploadReceipt;

/// The largest upload accepted.
pub const UPLOAD_MAX_BYTES: usize = 16 * 1024 * 1024;
use crate::domain::integration_key::parse;
use crate::services::ServiceError;

/// The tenant routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/token/integration", post(exchange))
        .route("/me", get(me))
        .route("/me/integration-key/rotate", post(rotate_own_key))
        .route(
            "/me/uploads/{adapter}",
            post(upload).layer(DefaultBodyLimit::max(UPLOAD_MAX_BYTES)),
        )
}

/// Exchange an integration key (`x-api-key`) for a short-lived access token.
#[utoipa::path(post, path = "/api/v1/auth/token/integration", tag = "integration keys",
    params(("x-api-key" = String, Header, description = "An integration key, onr_ik_...")),
    responses(
        (status = 200, body = TokenGrant),
        (status = 401, description = "missing, malformed, unknown, revoked or expired key", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many exchanges for this key or from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn exchange(
    State(state): State<AppState>,
    connect_info: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Json<TokenGrant>, ApiError> {
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    // The key id is read from the key's own text (checksum included), never looked up, so
    // guesses at one key's secret spend that key's quota.
    let key_id = key.and_then(|k| parse(k.trim())).map(|p| p.key_id);
    let address = state.trusted_proxies.client(
        connect_info.map(|Extension(ConnectInfo(a))| a.ip()),
        &headers,
    );
    if let Err(limited) = state.exchange_limiter.check(address, key_id.as_deref()) {
        tracing::warn!(by = limited.by, key_id = ?key_id, address = ?address, "token exchange rate limited");
        return Err(ApiError::RateLimited {
            detail: format!(
                "too many token exchanges for this {}; retry in {} s",
                limited.by, limited.retry_after_secs
            ),
            retry_after_secs: limited.retry_after_secs,
        });
    }
    let key = key.ok_or(ServiceError::Unauthenticated(
        "missing x-api-key header with an integration key",
    ))?;
    Ok(Json(state.services.keys.exchange(key).await?))
}

/// The customer as its own access token sees it.
#[utoipa::path(get, path = "/api/v1/me", tag = "integration keys",
    responses(
        (status = 200, body = MeView),
        (status = 401, description = "missing, malformed, expired or foreign token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn me(
    State(state): State<AppState>,
    TenantAuthenticated(p): TenantAuthenticated,
) -> Result<Json<MeView>, ApiError> {
    Ok(Json(state.services.keys.me(&p).await?))
}

/// Rotate the integration key behind this token (scope `keys:rotate`). Only a token from the
/// key's current secret may: a replayed rotation gets 409 `key_changed` and changes nothing.
#[utoipa::path(post, path = "/api/v1/me/integration-key/rotate", tag = "integration keys",
    request_body = RotateKeyRequest,
    responses(
        (status = 200, body = IssuedKey),
        (status = 401, description = "missing, malformed, expired or foreign token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "insufficient_scope", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "key_changed (the token is from before the key's last rotation) or key_revoked", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn rotate_own_key(
    State(state): State<AppState>,
    TenantAuthenticated(p): TenantAuthenticated,
    ApiJson(req): ApiJson<RotateKeyRequest>,
) -> Result<Json<IssuedKey>, ApiError> {
    Ok(Json(state.services.keys.rotate_own(&p, &req).await?))
}

/// Load a CSV file into the customer's dataset through one of the product's adapters. The token
/// needs the adapter's scope (default `data:upload`) and the adapter in its key's
/// `allowed_adapters`. The whole file is checked first; a file with any bad row loads nothing.
#[utoipa::path(post, path = "/api/v1/me/uploads/{adapter}", tag = "integration keys",
    params(("adapter" = String, Path, description = "An adapter of the product file")),
    request_body(content = String, content_type = "text/csv", description = "A header row naming table columns, then the rows"),
    responses(
        (status = 200, body = UploadReceipt),
        (status = 401, description = "missing, malformed, expired or foreign token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "insufficient_scope or adapter_not_allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "adapter_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "not_active, no_dataset or table_not_provisioned", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "payload_too_large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "unsupported_media_type", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: every bad row and column", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    TenantAuthenticated(p): TenantAuthenticated,
    ApiPath(adapter): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<UploadReceipt>, ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if !matches!(
        content_type.as_deref(),
        Some("text/csv" | "application/octet-stream")
    ) {
        return Err(ApiError::BadRequest {
            status: axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            detail: "send the file with Content-Type: text/csv".into(),
        });
    }
    let body = body?;
    Ok(Json(
        state.services.datasets.upload(&p, &adapter, &body).await?,
    ))
}

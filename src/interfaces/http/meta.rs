//! The product's industries, the operator-wide audit log, and health.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;
use utoipa::ToSchema;

use super::auth::Authenticated;
use super::error::{ApiError, Problem};
use super::json::ApiQuery;
use super::AppState;
use crate::product::Industry;
use crate::services::audit::{AuditQuery, EventList};
use crate::services::email::{EmailList, EmailQuery};

/// Routes under `/api/v1` that are not about one customer.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/industries", get(industries))
        .route("/audit", get(audit))
        .route("/emails", get(emails))
}

/// The product's industries.
#[derive(Serialize, ToSchema)]
pub struct IndustryList {
    /// Industries, in product order.
    pub items: Vec<Industry>,
}

/// List the product's industries.
#[utoipa::path(get, path = "/api/v1/industries", tag = "product",
    responses((status = 200, body = IndustryList), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn industries(
    State(state): State<AppState>,
    Authenticated(_actor): Authenticated,
) -> Json<IndustryList> {
    Json(IndustryList {
        items: state.services.product.industries.clone(),
    })
}

/// The audit log, oldest first, filtered by customer, type and time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, body = EventList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<EventList>, ApiError> {
    Ok(Json(state.services.audit.list(&actor, &q).await?))
}

/// The email delivery log, newest first: what was queued, sent, retried, failed or skipped,
/// for a customer or a signup (never a message's body).
#[utoipa::path(get, path = "/api/v1/emails", tag = "operations", params(EmailQuery),
    responses(
        (status = 200, body = EmailList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn emails(
    State(state): State<AppState>,
    Authenticated(actor): Authenticated,
    ApiQuery(q): ApiQuery<EmailQuery>,
) -> Result<Json<EmailList>, ApiError> {
    Ok(Json(state.services.email.log(&actor, &q).await?))
}

/// One component's health.
#[derive(Serialize, ToSchema)]
pub struct Check {
    /// `ok` or `degraded` (`not_configured` for email, which does not degrade the whole).
    pub status: String,
    /// How long the check took.
    pub latency_ms: f64,
    /// The backend or what failed.
    pub detail: String,
}

/// Overall health.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` when every check is ok, else `degraded`.
    pub status: String,
    /// Checks by component.
    pub checks: BTreeMap<String, Check>,
}

/// Health of the process and its registry. No authentication; 503 when degraded.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "ok", body = Health), (status = 503, description = "degraded", body = Health)))]
pub async fn health(State(state): State<AppState>) -> Response {
    let started = Instant::now();
    let store = &state.services.store;
    let registry = match tokio::time::timeout(std::time::Duration::from_secs(2), store.ping()).await
    {
        Ok(Ok(())) => ("ok", store.backend().to_owned()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: registry check failed");
            ("degraded", format!("{}: not answering", store.backend()))
        }
        Err(_) => ("degraded", format!("{}: timed out", store.backend())),
    };
    let mut checks = BTreeMap::new();
    checks.insert(
        "registry".to_owned(),
        Check {
            status: registry.0.to_owned(),
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            detail: registry.1,
        },
    );
    let started = Instant::now();
    if let Ok(mail) = state.services.email.health().await {
        let waiting = format!("{} message(s) queued, {} due", mail.queued, mail.due);
        checks.insert(
            "email".to_owned(),
            Check {
                status: if mail.configured {
                    "ok"
                } else {
                    "not_configured"
                }
                .to_owned(),
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                detail: if mail.configured {
                    format!("SMTP configured; {waiting}")
                } else {
                    format!("email is not configured (ONRAMP_SMTP_URL); {waiting}")
                },
            },
        );
    }
    let ok = checks.values().all(|c| c.status != "degraded");
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if ok { "ok" } else { "degraded" }.to_owned(),
        checks,
    };
    (status, Json(body)).into_response()
}

//! The HTTP API: JSON under `/api/v1`, `/health`, and the OpenAPI document at `/openapi.json`.
//! One router per resource, merged here.

mod auth;
mod customers;
pub mod error;
mod json;
mod meta;
mod onboarding;
pub mod openapi;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

use crate::services::Services;
use error::ApiError;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub services: Services,
}

/// The whole application.
pub fn app(services: Services) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let api = Router::new()
        .merge(customers::router())
        .merge(onboarding::router())
        .merge(meta::router())
        .fallback(|| async { ApiError::NotFound });
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(meta::health))
        .route("/openapi.json", get(|| async { Json(openapi::ApiDoc::openapi()) }))
        .fallback(|| async { ApiError::NotFound })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(AppState { services })
}

/// Serves the API on `listener` until Ctrl-C or SIGTERM.
pub async fn serve(listener: TcpListener, services: Services) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, backend = services.store.backend(), product = %services.product.name, "onramp serving");
    let worker = tokio::spawn(recover_runs_forever(services.clone()));
    let served = axum::serve(listener, app(services))
        .with_graceful_shutdown(shutdown_signal())
        .await;
    worker.abort();
    served
}

/// The background job that resumes onboarding runs whose process died: once at start, then
/// every half lease.
async fn recover_runs_forever(services: Services) {
    let every = (services.runner.lease / 2).clamp(
        std::time::Duration::from_millis(200),
        std::time::Duration::from_secs(15),
    );
    loop {
        match services.recover_runs().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "resumed onboarding runs"),
            Err(e) => tracing::error!(error = %e, "resuming onboarding runs failed"),
        }
        tokio::time::sleep(every).await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

//! The HTTP API: JSON under `/api/v1`, `/health`, the OpenAPI document at `/openapi.json`, and
//! the MCP server (streamable HTTP) at `/mcp`. One router per resource, merged here.

mod auth;
mod billing;
mod credentials;
mod customers;
pub mod error;
mod json;
mod keys;
pub mod limits;
mod meta;
mod onboarding;
pub mod openapi;
mod openapi_rules;
mod pages;
mod portal;
pub mod server;
mod signup;
mod tenant;

use axum::extract::{DefaultBodyLimit, Request as AxumRequest};
use axum::http::{HeaderName, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::services::Services;
use error::ApiError;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The use cases.
    pub services: Services,
    /// The token exchange's rate limits.
    pub exchange_limiter: limits::QuotaLimiter,
    /// The public signup routes' rate limits (per address, per session).
    pub signup_limiter: limits::QuotaLimiter,
    /// The portal's public routes' rate limit (per address).
    pub portal_limiter: limits::QuotaLimiter,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: std::sync::Arc<limits::TrustedProxies>,
}

impl AppState {
    /// The client a request comes from, for its rate limits: the connection's peer, or what a
    /// trusted proxy in front says (see [`limits::TrustedProxies::client`]).
    pub(crate) fn client_address(
        &self,
        parts: &axum::http::request::Parts,
    ) -> Option<std::net::IpAddr> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|axum::extract::ConnectInfo(a)| a.ip());
        self.trusted_proxies.client(peer, &parts.headers)
    }
}

/// How the server is set up beyond its services.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Host names (or `host:port`) that `/mcp` answers; empty answers any.
    pub mcp_allowed_hosts: Vec<String>,
    /// Rate limits of the token exchange.
    pub exchange_limits: limits::Quotas,
    /// Rate limits of the public signup routes: per session (`per_key_per_minute`) and per
    /// client address.
    pub signup_limits: limits::Quotas,
    /// Rate limit of the portal's public routes (login, reset, invitation): per client address.
    pub portal_limits: limits::Quotas,
    /// Proxies whose `X-Forwarded-For` names the client the rate limits count.
    pub trusted_proxies: limits::TrustedProxies,
    /// Timeouts and the bound on open connections.
    pub connections: server::ConnectionLimits,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            mcp_allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            exchange_limits: limits::Quotas::default(),
            signup_limits: limits::Quotas {
                per_key_per_minute: 60,
                per_address_per_minute: 60,
            },
            portal_limits: limits::Quotas {
                per_key_per_minute: 0,
                per_address_per_minute: 30,
            },
            trusted_proxies: limits::TrustedProxies::default(),
            connections: server::ConnectionLimits::default(),
        }
    }
}

/// The whole application, with the default options.
pub fn app(services: Services) -> Router {
    app_with(services, &ServeOptions::default())
}

/// `/mcp` answers only requests with a valid admin token; the MCP tools see its actor. A
/// message that is not JSON gets JSON-RPC's own error (parse error, or invalid request for
/// the wrong content type) before the MCP server reads it.
async fn mcp_auth(
    auth::Authenticated(actor): auth::Authenticated,
    mut request: AxumRequest,
    next: Next,
) -> Response {
    request.extensions_mut().insert(actor);
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let rpc_error = |status: axum::http::StatusCode, code: i32, message: String| {
        let body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": { "code": code, "message": message },
        });
        (status, Json(body)).into_response()
    };
    let json = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return rpc_error(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            -32600,
            "Invalid Request: MCP messages are sent with Content-Type: application/json".into(),
        );
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return rpc_error(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                -32600,
                format!(
                "Invalid Request: the message is larger than {MAX_BODY_BYTES} bytes or was cut off"
            ),
            )
        }
    };
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        return rpc_error(
            axum::http::StatusCode::BAD_REQUEST,
            -32700,
            format!("Parse error: the message is not JSON ({e})"),
        );
    }
    next.run(AxumRequest::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// The whole application.
pub fn app_with(services: Services, options: &ServeOptions) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let document = std::sync::Arc::new(openapi::document(&services.product));
    let state = AppState {
        services: services.clone(),
        exchange_limiter: limits::QuotaLimiter::new(options.exchange_limits),
        signup_limiter: limits::QuotaLimiter::new(options.signup_limits),
        portal_limiter: limits::QuotaLimiter::new(options.portal_limits),
        trusted_proxies: std::sync::Arc::new(options.trusted_proxies.clone()),
    };
    let api = Router::new()
        .merge(customers::router())
        .merge(onboarding::router())
        .merge(credentials::router())
        .merge(keys::router())
        .merge(tenant::router())
        .merge(signup::router())
        .merge(signup::queue_router())
        .merge(portal::router())
        .merge(meta::router())
        .merge(billing::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let mcp = tower::ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(state.clone(), mcp_auth))
        .service(crate::interfaces::mcp::http_service(
            services,
            options.mcp_allowed_hosts.clone(),
            MAX_BODY_BYTES,
        ));
    Router::new()
        .nest("/api/v1", api)
        .route_service("/mcp", mcp)
        .merge(pages::router())
        .route("/health", get(meta::health))
        .route("/openapi.json", get(move || async move { Json(serde_json::Value::clone(&document)) }))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            options.connections.body_timeout,
        ))
        .layer(middleware::from_fn(json::refuse_nul))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Serves the API on `listener`, and runs the background jobs, until Ctrl-C or SIGTERM.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    jobs: crate::jobs::Jobs,
    options: ServeOptions,
) -> std::io::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, backend = services.store.backend(), product = %services.product.name, "onramp serving");
    let worker = tokio::spawn(jobs.run_forever());
    let app = app_with(services, &options);
    let served = server::serve_router(listener, app, options.connections, shutdown_signal()).await;
    worker.abort();
    served
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

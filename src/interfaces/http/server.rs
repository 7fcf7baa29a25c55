//! The connection loop under the API: HTTP/1.1 served by hyper, with the bounds a server facing
//! hostile clients needs and `axum::serve` does not set.
//!
//! - A connection must send a complete request head within the header timeout; the same timer
//!   runs while a kept-alive connection waits for its next request, so it is also the idle
//!   keep-alive timeout. A client that connects and sends nothing, or half a header, is closed.
//! - A request body must arrive within the body timeout (a `tower-http` layer in the router).
//! - At most `max_connections` connections are open at once (by default a little under the
//!   process's file limit); past it new connections are closed at once, so the process never
//!   runs out of file descriptors and the connections it has keep being served.
//! - Request heads are bounded in size and header count.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How long clients may take, and how many may be connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a request head, and to start the next request on a kept-alive connection.
    pub header_timeout: Duration,
    /// Time to send a request body.
    pub body_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
        }
    }
}

/// File descriptors kept back from connections for the registry, datasets, logs and files.
const RESERVED_DESCRIPTORS: u64 = 256;
/// The largest request head accepted, in bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers one request may carry.
const MAX_HEADERS: usize = 100;

/// The default bound on open connections: the process's open-file limit less a reserve, at
/// most 10,000 and at least 64.
pub fn default_max_connections() -> usize {
    #[cfg(unix)]
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    #[cfg(not(unix))]
    let limit = u64::MAX;
    usize::try_from(limit.saturating_sub(RESERVED_DESCRIPTORS).clamp(64, 10_000)).unwrap_or(64)
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets open
/// requests finish (for up to ten seconds).
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was taken: wait a
                    // moment rather than spin, and go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused,
                    "connection limit reached: closing new connections"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(addr));
                    request
                });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %addr, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("requests still open after ten seconds of shutdown were cut off");
        }
    }
    Ok(())
}

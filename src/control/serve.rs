//! The control plane's accept loop: HTTP/1.1 with a cap on open connections and deadlines on
//! every request, so that nothing a local process does to the HTTP port can hold more than
//! `--max-http-connections` descriptors, or hold them for long.
//!
//! Past the cap a connection gets `503` to its request and is closed. A request's headers must
//! arrive within `--http-header-timeout` of the connection opening or of the previous response
//! (hyper starts that timer whenever a connection waits for a request head, so it is also the
//! keep-alive idle timeout); its body within `--http-body-timeout` (see the publish handler).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::telemetry;

/// The bounds of the HTTP side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Time for a request's headers, and for the next request on a kept-alive connection.
    pub header_timeout: Duration,
}

/// 503 answers being written at once; past it a connection over the cap is closed at once.
/// Their descriptors are part of [`crate::budget::RESERVED`].
pub const HTTP_REFUSALS: usize = 16;
/// Time a refused client has to send its request.
const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// The body of the answer past the connection cap.
const BUSY_MESSAGE: &[u8] = b"too many HTTP connections; try again later\n";

/// The wait after a failed accept (out of descriptors, most likely) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `stop` resolves, then lets open connections finish
/// their requests (the caller bounds how long it waits for that).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(HTTP_REFUSALS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                tracing::warn!(%error, "HTTP accept failed; backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            telemetry::http_connection_rejected();
            match Arc::clone(&refusals).try_acquire_owned() {
                Ok(refusal) => {
                    tokio::spawn(async move {
                        refuse_busy(stream).await;
                        drop(refusal);
                    });
                }
                // Too many refusals being written already: close at once.
                Err(_) => drop(stream),
            }
            continue;
        };
        telemetry::http_connections(limits.max_connections - permits.available_permits());
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        let permits = Arc::clone(&permits);
        tokio::spawn(async move {
            // A connection that ends with an error (a timeout, a reset) only ends itself.
            let _ = connection.await;
            drop(permit);
            telemetry::http_connections(limits.max_connections - permits.available_permits());
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers each request on a connection over the cap with [`BUSY_MESSAGE`] and `503`, then
/// closes it: the client gets an answer to the request it sent, not an unsolicited one.
async fn refuse_busy(stream: tokio::net::TcpStream) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(REFUSAL_TIME)
        .keep_alive(false);
    let busy = hyper::service::service_fn(|_request| async {
        let mut response = hyper::Response::new(Full::new(Bytes::from_static(BUSY_MESSAGE)));
        *response.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
        Ok::<_, std::convert::Infallible>(response)
    });
    let connection = http.serve_connection(TokioIo::new(stream), busy);
    let _ = tokio::time::timeout(REFUSAL_TIME * 2, connection).await;
}

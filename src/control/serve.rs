//! The control plane's accept loop: HTTP/1.1 with a cap on open connections and deadlines on
//! every request, so that nothing a local process does to the HTTP port can hold more than
//! `--max-http-connections` descriptors, or hold them for long.
//!
//! Past the cap a connection is answered `503` and closed. A request's headers must
//! arrive within `--http-header-timeout` of the connection opening or of the previous response
//! (hyper starts that timer whenever a connection waits for a request head, so it is also the
//! keep-alive idle timeout); its body within `--http-body-timeout` (see the publish handler).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
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
/// Longest wait for a refused client to close after the 503.
const REFUSAL_DRAIN_TIME: Duration = Duration::from_secs(1);
/// Most bytes read and discarded from a refused client.
const REFUSAL_DRAIN_BYTES: usize = 64 * 1024;

/// The answer past the connection cap, written without reading the request.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: 42\r\nretry-after: 1\r\n\r\ntoo many HTTP connections; try again later\n";

/// Writes [`BUSY`], then reads and discards what the client sent (bounded in time and bytes)
/// before closing, so that the close does not reset the connection under the answer.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut discard = [0u8; 4096];
        let mut budget = REFUSAL_DRAIN_BYTES;
        while budget > 0 {
            match stream.read(&mut discard).await? {
                0 => break,
                n => budget = budget.saturating_sub(n),
            }
        }
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(REFUSAL_DRAIN_TIME, answer).await;
}

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

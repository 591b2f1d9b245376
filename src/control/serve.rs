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

use super::tls::Tls;
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
    tls: Option<Arc<Tls>>,
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
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        if let Some(stream) = handshake(stream, tls.as_deref(), REFUSAL_TIME).await
                        {
                            match stream {
                                Either::Plain(plain) => refuse_busy(plain).await,
                                Either::Tls(secure) => refuse_busy(*secure).await,
                            }
                        }
                        drop(refusal);
                    });
                }
                // Too many refusals being written already: close at once.
                Err(_) => drop(stream),
            }
            continue;
        };
        telemetry::http_connections(limits.max_connections - permits.available_permits());
        let (http, router, tls, watcher) = (
            http.clone(),
            router.clone(),
            tls.clone(),
            graceful.watcher(),
        );
        let permits = Arc::clone(&permits);
        tokio::spawn(async move {
            // A connection that ends with an error (a timeout, a reset, a failed handshake)
            // only ends itself.
            let service = TowerToHyperService::new(router);
            match handshake(stream, tls.as_deref(), limits.header_timeout).await {
                Some(Either::Plain(plain)) => {
                    let _ = watcher
                        .watch(http.serve_connection(TokioIo::new(plain), service))
                        .await;
                }
                Some(Either::Tls(secure)) => {
                    let _ = watcher
                        .watch(http.serve_connection(TokioIo::new(*secure), service))
                        .await;
                }
                None => {}
            }
            drop(permit);
            telemetry::http_connections(limits.max_connections - permits.available_permits());
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection, with TLS when the API has it.
enum Either {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

/// The TLS handshake, when the API has TLS, within `deadline`; `None` when it failed (a plain
/// HTTP client on the TLS port, a wrong certificate on the other side, a timeout).
async fn handshake(
    stream: tokio::net::TcpStream,
    tls: Option<&Tls>,
    deadline: Duration,
) -> Option<Either> {
    let Some(tls) = tls else {
        return Some(Either::Plain(stream));
    };
    match tokio::time::timeout(deadline, tls.acceptor().accept(stream)).await {
        Ok(Ok(secure)) => Some(Either::Tls(Box::new(secure))),
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
        Err(_elapsed) => None,
    }
}

/// Answers each request on a connection over the cap with [`BUSY_MESSAGE`] and `503`, then
/// closes it: the client gets an answer to the request it sent, not an unsolicited one.
async fn refuse_busy<I>(stream: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
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

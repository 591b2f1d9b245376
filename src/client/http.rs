//! crnpd's HTTP control API: publish events, list and remove clients, readiness.

use super::net::within;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::ClientError;
use crate::event_json::JsonEvent;
use crate::protocol::Event;

/// Largest response body accepted (a client list of 100,000 entries fits).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Where crnpd's HTTP API is, and whether it speaks HTTPS: a plain address converts into one.
#[derive(Clone)]
pub struct HttpEndpoint {
    /// The API's address (crnpd's `--http`).
    pub addr: SocketAddr,
    /// The TLS client, verifying the server's certificate for `addr`'s IP.
    tls: Option<TlsConnector>,
    /// The admin token, sent as `Authorization: Bearer` with every request.
    token: Option<String>,
}

impl std::fmt::Debug for HttpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEndpoint")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("token", &self.token.is_some())
            .finish()
    }
}

impl From<SocketAddr> for HttpEndpoint {
    fn from(addr: SocketAddr) -> Self {
        HttpEndpoint {
            addr,
            tls: None,
            token: None,
        }
    }
}

impl HttpEndpoint {
    /// The same endpoint, sending `token` as the admin token (the calls that change state
    /// need it when crnpd has one).
    pub fn with_token(self, token: Option<String>) -> Self {
        HttpEndpoint { token, ..self }
    }

    /// HTTPS to `addr`, trusting the certificate authorities in the PEM file `ca_file` (the
    /// server's certificate must name `addr`'s IP); plain HTTP without a file.
    pub fn new(addr: SocketAddr, ca_file: Option<&Path>) -> Result<Self, ClientError> {
        let Some(ca_file) = ca_file else {
            return Ok(addr.into());
        };
        let ca = |source: Box<dyn std::error::Error + Send + Sync>| ClientError::CaFile {
            path: ca_file.to_owned(),
            source,
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| ca(e.into()))? {
            roots
                .add(cert.map_err(|e| ca(e.into()))?)
                .map_err(|e| ca(e.into()))?;
        }
        if roots.is_empty() {
            return Err(ca("no CERTIFICATE section in the file".into()));
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ca(e.into()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(HttpEndpoint {
            addr,
            tls: Some(TlsConnector::from(Arc::new(config))),
            token: None,
        })
    }
}

/// One registered client as `GET /v1/clients` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The callback address, `IP:PORT`.
    pub address: String,
    /// The registered event types, as the server renders them.
    #[serde(default)]
    pub event_types: Vec<serde_json::Value>,
    /// Events waiting for delivery to this client.
    #[serde(default)]
    pub queued: u64,
    /// When the client registered (RFC 3339).
    #[serde(default)]
    pub registered_at: String,
    /// Outcome of the last delivery attempt: `ok`, `error: ...`, or none yet.
    #[serde(default)]
    pub last_delivery: Option<String>,
}

/// The body of a `202` answer to a publish.
#[derive(Debug, Deserialize)]
struct Published {
    /// The global sequence number of each event, in publish order.
    sequences: Vec<u64>,
}

/// The first wait before a publish that got 503 or no answer is sent again; it doubles up to
/// [`BUSY_WAIT_MAX`] until the publisher's timeout.
const BUSY_WAIT_MIN: Duration = Duration::from_millis(50);
/// The longest wait between two tries of a publish.
const BUSY_WAIT_MAX: Duration = Duration::from_secs(1);

/// Connects to the HTTP API within `timeout`, with TLS when the endpoint has it.
async fn handshake(
    endpoint: &HttpEndpoint,
    timeout: Duration,
) -> Result<SendRequest<Full<Bytes>>, ClientError> {
    let addr = endpoint.addr;
    let connect = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        let http = |source| ClientError::Http { addr, source };
        match &endpoint.tls {
            None => {
                let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
                tokio::spawn(conn);
                Ok(sender)
            }
            Some(connector) => {
                let name = ServerName::IpAddress(addr.ip().into());
                let secure = connector
                    .connect(name, stream)
                    .await
                    .map_err(|source| ClientError::Tls { addr, source })?;
                let (sender, conn) = http1::handshake(TokioIo::new(secure)).await.map_err(http)?;
                tokio::spawn(conn);
                Ok(sender)
            }
        }
    };
    within(addr, timeout, "connecting to the HTTP API", connect).await
}

/// A kept-alive HTTP/1.1 connection to crnpd's control API, for publishing many batches.
#[derive(Debug)]
pub struct Publisher {
    /// The request half of the connection (the connection task runs on the runtime).
    sender: SendRequest<Full<Bytes>>,
    /// The HTTP API, for new connections and error messages.
    endpoint: HttpEndpoint,
    /// The API's address (the endpoint's), for error messages.
    addr: SocketAddr,
    /// Deadline of each request.
    timeout: Duration,
    /// The connection must be replaced before the next request.
    closed: bool,
}

impl Publisher {
    /// Connects to the HTTP API; `timeout` bounds the connect and each request.
    pub async fn connect(
        endpoint: impl Into<HttpEndpoint>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let endpoint = endpoint.into();
        Ok(Self {
            sender: handshake(&endpoint, timeout).await?,
            addr: endpoint.addr,
            endpoint,
            timeout,
            closed: false,
        })
    }

    /// Publishes `events` as one JSON batch; returns their sequence numbers in order.
    pub async fn publish(&mut self, events: &[Event]) -> Result<Vec<u64>, ClientError> {
        let json: Vec<JsonEvent> = events.iter().map(JsonEvent::from).collect();
        let body = serde_json::to_vec(&json).map_err(|e| ClientError::BadResponse {
            addr: self.addr,
            reason: format!("cannot encode events: {e}"),
        })?;
        self.publish_body("application/json", body.into()).await
    }

    /// Publishes a body as is (`application/xml` for one `SC_EVENT` document, or
    /// `application/json`); returns the sequence numbers the server assigned.
    pub async fn publish_body(
        &mut self,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<Vec<u64>, ClientError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut wait = BUSY_WAIT_MIN;
        let (status, body) = loop {
            let answer = self.try_publish(content_type, body.clone()).await;
            let retry = match &answer {
                // crnpd is at its HTTP connection limit, or not active (a standby, a
                // failover in progress): nothing was published.
                Ok((status, _)) => *status == 503,
                // No answer at all: crnpd closed a connection over its limit, or is
                // restarting. Trying again may, if crnpd died after committing, publish the
                // event twice; CRNP delivers at least once, never zero times.
                Err(ClientError::Connect { .. } | ClientError::Http { .. }) => true,
                Err(_) => false,
            };
            if !retry || tokio::time::Instant::now() + wait >= deadline {
                break answer?;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(BUSY_WAIT_MAX);
            // A new connection for the next try: crnpd closes the ones it turns away.
            self.closed = true;
        };
        let body = expect_success(self.addr, status, body)?;
        let published: Published =
            serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
                addr: self.addr,
                reason: format!("publish answer: {e}"),
            })?;
        Ok(published.sequences)
    }

    /// One try of a publish, on a new connection if the last one is closed.
    async fn try_publish(
        &mut self,
        content_type: &'static str,
        body: Bytes,
    ) -> Result<(u16, Bytes), ClientError> {
        if self.closed || self.sender.is_closed() {
            // crnpd closes a kept-alive connection that stayed idle past its header timeout.
            self.sender = handshake(&self.endpoint, self.timeout).await?;
            self.closed = false;
        }
        let path = Uri::from_static("/v1/events");
        self.request(Method::POST, path, Some((content_type, body)))
            .await
    }

    /// Sends one request and returns the status and the whole body.
    async fn request(
        &mut self,
        method: Method,
        path: Uri,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<(u16, Bytes), ClientError> {
        let addr = self.addr;
        let http = |source| ClientError::Http { addr, source };
        let exchange = async {
            self.sender.ready().await.map_err(http)?;
            let mut request = Request::new(Full::new(Bytes::new()));
            *request.method_mut() = method;
            *request.uri_mut() = path;
            if let Ok(host) = addr.to_string().parse() {
                request.headers_mut().insert(HOST, host);
            }
            if let Some(token) = &self.endpoint.token
                && let Ok(value) = format!("Bearer {token}").parse()
            {
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            if let Some((content_type, bytes)) = body {
                request.headers_mut().insert(
                    CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(content_type),
                );
                *request.body_mut() = Full::new(bytes);
            }
            let response = self.sender.send_request(request).await.map_err(http)?;
            let status = response.status().as_u16();
            let collected = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ClientError::BadResponse {
                    addr,
                    reason: format!("reading the body: {e}"),
                })?;
            Ok((status, collected.to_bytes()))
        };
        within(addr, self.timeout, "waiting for an HTTP answer", exchange).await
    }
}

/// Publishes `events` as one batch on a fresh connection; returns their sequence numbers.
pub async fn publish(
    http: impl Into<HttpEndpoint>,
    events: &[Event],
    timeout: Duration,
) -> Result<Vec<u64>, ClientError> {
    Publisher::connect(http, timeout)
        .await?
        .publish(events)
        .await
}

/// Lists the registered clients (`GET /v1/clients`).
pub async fn clients(
    http: impl Into<HttpEndpoint>,
    timeout: Duration,
) -> Result<Vec<ClientInfo>, ClientError> {
    let mut conn = Publisher::connect(http, timeout).await?;
    let http = conn.addr;
    let (status, body) = conn
        .request(Method::GET, Uri::from_static("/v1/clients"), None)
        .await?;
    let body = expect_success(http, status, body)?;
    serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
        addr: http,
        reason: format!("client list: {e}"),
    })
}

/// Removes a registered client by its callback address (`DELETE /v1/clients/IP:PORT`).
pub async fn delete_client(
    http: impl Into<HttpEndpoint>,
    client: SocketAddr,
    timeout: Duration,
) -> Result<(), ClientError> {
    let mut conn = Publisher::connect(http, timeout).await?;
    let http = conn.addr;
    let path = request_path(http, client_path(client, ""))?;
    let (status, body) = conn.request(Method::DELETE, path, None).await?;
    expect_success(http, status, body).map(drop)
}

/// A page of crnpd's retained event log (`GET /v1/events`).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct LogPage {
    /// The first retained sequence number, `None` when the log is empty.
    pub oldest: Option<u64>,
    /// The sequence number the next event will get.
    pub next_seq: u64,
    /// The entries, in sequence order.
    pub events: Vec<LogEntry>,
}

/// One retained event.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct LogEntry {
    /// Its sequence number.
    pub seq: u64,
    /// The SC_EVENT document exactly as subscribers receive it.
    pub sc_event: String,
}

/// Reads up to `limit` retained log entries after `after` (from the oldest without it).
pub async fn events(
    http: impl Into<HttpEndpoint>,
    after: Option<u64>,
    limit: usize,
    timeout: Duration,
) -> Result<LogPage, ClientError> {
    let mut conn = Publisher::connect(http, timeout).await?;
    let http = conn.addr;
    let query = match after {
        Some(after) => format!("/v1/events?after={after}&limit={limit}"),
        None => format!("/v1/events?limit={limit}"),
    };
    let path = request_path(http, query)?;
    let (status, body) = conn.request(Method::GET, path, None).await?;
    let body = expect_success(http, status, body)?;
    serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
        addr: http,
        reason: format!("log page: {e}"),
    })
}

/// Queues a client's retained events after `after` again
/// (`POST /v1/clients/IP:PORT/replay`); returns how many were queued.
pub async fn replay(
    http: impl Into<HttpEndpoint>,
    client: SocketAddr,
    after: Option<u64>,
    timeout: Duration,
) -> Result<u64, ClientError> {
    #[derive(serde::Deserialize)]
    struct Queued {
        queued: u64,
    }
    let mut conn = Publisher::connect(http, timeout).await?;
    let http = conn.addr;
    let query = match after {
        Some(after) => format!("/replay?after={after}"),
        None => "/replay".to_owned(),
    };
    let path = request_path(http, client_path(client, &query))?;
    let (status, body) = conn.request(Method::POST, path, None).await?;
    let body = expect_success(http, status, body)?;
    let queued: Queued = serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
        addr: http,
        reason: format!("replay answer: {e}"),
    })?;
    Ok(queued.queued)
}

/// Asks `GET /readyz`: `Ok(true)` iff the server answered 200.
pub async fn ready(http: impl Into<HttpEndpoint>, timeout: Duration) -> Result<bool, ClientError> {
    let mut conn = Publisher::connect(http, timeout).await?;
    let (status, _) = conn
        .request(Method::GET, Uri::from_static("/readyz"), None)
        .await?;
    Ok(status == 200)
}

/// `/v1/clients/IP:PORT` followed by `rest`, with an IPv6 address's brackets escaped.
fn client_path(client: SocketAddr, rest: &str) -> String {
    let encoded = client.to_string().replace('[', "%5B").replace(']', "%5D");
    format!("/v1/clients/{encoded}{rest}")
}

/// `path` as a request target.
fn request_path(addr: SocketAddr, path: String) -> Result<Uri, ClientError> {
    path.parse().map_err(|e| ClientError::BadResponse {
        addr,
        reason: format!("request path {path}: {e}"),
    })
}

/// The body of a 2xx answer, or the server's reason as an error.
fn expect_success(addr: SocketAddr, status: u16, body: Bytes) -> Result<Bytes, ClientError> {
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        let body = String::from_utf8_lossy(&body).trim().to_owned();
        Err(ClientError::HttpStatus { addr, status, body })
    }
}

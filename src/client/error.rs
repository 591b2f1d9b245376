//! Errors of the client side, each naming the address involved and what to check.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::protocol::ProtocolError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The source address could not be bound: it is not an address of this host.
    #[error(
        "cannot bind source address {ip}: {source} (it must be an address of this host, \
         e.g. one in 127.0.0.0/8)"
    )]
    Bind {
        /// The source IP asked for.
        ip: IpAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source} (is crnpd running and listening there?)")]
    Connect {
        /// The server address.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source} (is the port free and the address local?)")]
    Listen {
        /// The callback address.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The whole exchange did not finish in time.
    #[error("no answer from {addr} within {after:?} while {doing}")]
    Timeout {
        /// The peer.
        addr: SocketAddr,
        /// The operation's deadline.
        after: Duration,
        /// What was under way.
        doing: &'static str,
    },
    /// Reading or writing an open connection failed.
    #[error("connection with {addr} failed: {source}")]
    Io {
        /// The peer.
        addr: SocketAddr,
        /// What the kernel said.
        source: io::Error,
    },
    /// The peer sent more than a message may hold.
    #[error("{addr} sent more than {limit} bytes; the message was dropped")]
    TooLarge {
        /// The peer.
        addr: SocketAddr,
        /// The size limit in bytes.
        limit: usize,
    },
    /// The peer's message is not a valid CRNP document.
    #[error("{addr} sent an invalid message: {source}")]
    Protocol {
        /// The peer.
        addr: SocketAddr,
        /// What is wrong with the message.
        source: ProtocolError,
    },
    /// The HTTP API answered with an error status.
    #[error("{addr} answered HTTP {status}: {body}")]
    HttpStatus {
        /// The HTTP API address.
        addr: SocketAddr,
        /// The HTTP status code.
        status: u16,
        /// The response body, the server's reason.
        body: String,
    },
    /// The HTTP exchange failed below the status line.
    #[error("HTTP exchange with {addr} failed: {source} (is {addr} crnpd's --http address?)")]
    Http {
        /// The HTTP API address.
        addr: SocketAddr,
        /// What hyper said.
        source: hyper::Error,
    },
    /// The TLS handshake failed (a certificate the CA did not sign, one for another address,
    /// or no TLS on the other side).
    #[error("TLS with {addr} failed: {source} (does --cacert hold the CA of crnpd's --tls-cert?)")]
    Tls {
        /// The HTTP API address.
        addr: SocketAddr,
        /// What rustls said.
        source: io::Error,
    },
    /// The CA file cannot be used.
    #[error("{path}: cannot use it as a CA certificate file: {source}")]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What the PEM reader or rustls said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The HTTP API answered 2xx with a body this client does not understand.
    #[error("{addr} sent a response this client does not understand: {reason}")]
    BadResponse {
        /// The HTTP API address.
        addr: SocketAddr,
        /// What is wrong with it.
        reason: String,
    },
}

impl ClientError {
    /// True when the server could not be reached at all (as opposed to answering "no").
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. } | ClientError::Timeout { .. } | ClientError::Http { .. }
        )
    }
}

//! A client's callback address: one accepted connection per event.

use super::net::within;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::ClientError;
use crate::protocol::{Event, Limits};

/// One event as it arrived on the callback address.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    /// The parsed `SC_EVENT`.
    pub event: Event,
    /// The bytes exactly as received, for byte-level checks.
    pub raw: Vec<u8>,
    /// Who delivered it (the server's source address).
    pub peer: SocketAddr,
}

/// A listening callback address.
#[derive(Debug)]
pub struct CallbackListener {
    /// The listening socket.
    listener: TcpListener,
    /// The bound address (the real port when 0 was asked for).
    local: SocketAddr,
    /// Size limit and parser limits for each event.
    limits: Limits,
}

impl CallbackListener {
    /// Listens on `addr` (port 0 picks a free port) with room for `backlog` pending deliveries.
    pub fn bind(addr: SocketAddr, backlog: u32) -> Result<Self, ClientError> {
        let listen = |source| ClientError::Listen { addr, source };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(listen)?;
        socket.set_reuseaddr(true).map_err(listen)?;
        socket.bind(addr).map_err(listen)?;
        let listener = socket.listen(backlog).map_err(listen)?;
        let local = listener.local_addr().map_err(listen)?;
        Ok(Self {
            listener,
            local,
            limits: Limits::default(),
        })
    }

    /// The bound address; its port is the `PORT` to register.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accepts the next delivery connection (no deadline: waits for the server).
    pub async fn accept(&self) -> Result<(TcpStream, SocketAddr), ClientError> {
        self.listener
            .accept()
            .await
            .map_err(|source| ClientError::Listen {
                addr: self.local,
                source,
            })
    }

    /// Accepts one delivery and reads its event; `timeout` bounds the read, not the wait.
    pub async fn next_event(&self, timeout: Duration) -> Result<ReceivedEvent, ClientError> {
        let (mut stream, peer) = self.accept().await?;
        read_event(&mut stream, peer, &self.limits, timeout).await
    }
}

/// Reads one delivery to EOF (at most `limits.max_message_bytes`, within `timeout`) and parses
/// the `SC_EVENT`.
pub async fn read_event(
    stream: &mut TcpStream,
    peer: SocketAddr,
    limits: &Limits,
    timeout: Duration,
) -> Result<ReceivedEvent, ClientError> {
    let raw = within(
        peer,
        timeout,
        "reading an SC_EVENT",
        read_to_end_limited(stream, peer, limits.max_message_bytes),
    )
    .await?;
    let event = Event::parse(&raw, limits)
        .map_err(|source| ClientError::Protocol { addr: peer, source })?;
    Ok(ReceivedEvent { event, raw, peer })
}

/// Reads to EOF, failing as soon as more than `limit` bytes arrive.
pub(super) async fn read_to_end_limited(
    stream: &mut TcpStream,
    peer: SocketAddr,
    limit: usize,
) -> Result<Vec<u8>, ClientError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|source| ClientError::Io { addr: peer, source })?;
        if n == 0 {
            return Ok(buf);
        }
        if buf.len() + n > limit {
            return Err(ClientError::TooLarge { addr: peer, limit });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

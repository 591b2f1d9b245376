//! One registration connection: read one bounded message under a deadline, parse it,
//! authorize it, apply it through the registry, reply, close.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use compio::BufResult;
use compio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;

use crate::acl::{AccessPolicy, canonical};
use crate::protocol::{
    Arrival, ArrivingRegistration, CallbackReg, Limits, ProtocolError, Reply, StatusCode,
};
use crate::registry::service::RegistryHandle;
use crate::telemetry;

/// What serving a registration connection needs: who may register, how long and how large a
/// message may be, and the registry that applies it. Nothing of a core's delivery state.
#[derive(Debug, Clone)]
pub(crate) struct Registrar {
    /// Applies registrations, durably.
    pub(crate) registry: RegistryHandle,
    /// `--allow-hosts` / `--deny-hosts`.
    pub(crate) access: AccessPolicy,
    /// Message bounds (`--max-message-bytes`).
    pub(crate) limits: Limits,
    /// Deadline of one registration read (`--client-timeout`).
    pub(crate) read_timeout: Duration,
}

const READ_CHUNK: usize = 4096;
/// Longest wait for the client to close after the reply.
const DRAIN_TIME: Duration = Duration::from_secs(1);
/// Most bytes read and discarded after the reply.
const DRAIN_BYTES: usize = 1 << 20;

/// How reading the message ended. The read buffer comes back with a registration or an error,
/// to be reused for draining the connection after the reply.
enum Received {
    /// A whole registration, parsed and valid.
    Registration(CallbackReg, Vec<u8>),
    /// A protocol error to reply with.
    Error(ProtocolError, Vec<u8>),
    /// The peer sent nothing before closing or before the deadline: close without a reply.
    Nothing,
}

/// Serves one accepted registration connection to its end.
pub(crate) async fn serve(registrar: &Registrar, mut stream: TcpStream, peer: SocketAddr) {
    let ip = canonical(peer.ip());
    let mut client = None;
    let (reply, form, buffer) = match receive(registrar, &mut stream).await {
        Received::Nothing => {
            tracing::info!(peer = %peer, "registration connection closed without a message");
            return;
        }
        Received::Error(error, buffer) => {
            (Reply::new(error.status, error.reason), "unknown", buffer)
        }
        Received::Registration(reg, buffer) => {
            let form = reg.reg_type.as_str();
            client = Some(SocketAddr::new(ip, reg.port));
            if registrar.access.permits(ip) {
                (registrar.registry.register(ip, reg).await, form, buffer)
            } else {
                let message = format!("host {ip} is not allowed to register (allow/deny hosts)");
                (Reply::new(StatusCode::Fail, message), form, buffer)
            }
        }
    };
    telemetry::registration(form, reply.status.as_str());
    match client {
        Some(client) => {
            tracing::info!(%client, form, status = reply.status.as_str(), reason = %reply.message, "registration")
        }
        None => {
            tracing::info!(peer = %peer, status = reply.status.as_str(), reason = %reply.message, "registration refused")
        }
    }
    send_reply(stream, &reply, buffer).await;
}

/// Counts a connection turned away at the per-core limit.
pub(crate) fn count_refusal() {
    telemetry::connection_rejected();
    telemetry::registration("unknown", StatusCode::LowResource.as_str());
}

/// Turns a connection away at the per-core limit with LOW_RESOURCE.
pub(crate) async fn refuse_busy(stream: TcpStream, peer: SocketAddr) {
    count_refusal();
    tracing::debug!(peer = %peer, "registration refused: too many connections on this core");
    let reply = Reply::new(
        StatusCode::LowResource,
        "too many registration connections; try again later",
    );
    send_reply(stream, &reply, Vec::new()).await;
}

/// Reads until the root element closes, appending each read to one buffer.
async fn receive(registrar: &Registrar, stream: &mut TcpStream) -> Received {
    let limits = &registrar.limits;
    let deadline = Instant::now() + registrar.read_timeout;
    let mut message: Vec<u8> = Vec::new();
    let mut arriving = ArrivingRegistration::default();
    loop {
        // A read fills spare capacity only: there must be some, or it would look like EOF.
        message.reserve(READ_CHUNK);
        let received = message.len();
        let read = compio::time::timeout_at(deadline, stream.append(message)).await;
        let BufResult(result, buffer) = match read {
            Ok(done) => done,
            Err(_elapsed) if received == 0 => return Received::Nothing,
            Err(_elapsed) => {
                let seconds = registrar.read_timeout.as_secs_f64();
                return Received::Error(
                    ProtocolError::malformed(format!(
                        "no complete message within {seconds} s ({received} bytes received)"
                    )),
                    Vec::new(),
                );
            }
        };
        message = buffer;
        match result {
            Ok(0) if message.is_empty() => return Received::Nothing,
            Ok(0) => {
                return Received::Error(
                    ProtocolError::malformed("connection closed before the message was complete"),
                    message,
                );
            }
            Ok(_) => {}
            Err(_) => return Received::Nothing,
        }
        if message.len() > limits.max_message_bytes {
            return Received::Error(
                ProtocolError::malformed(format!(
                    "message exceeds the limit of {} bytes",
                    limits.max_message_bytes
                )),
                message,
            );
        }
        match arriving.parse(&message, limits) {
            Arrival::Incomplete => {}
            Arrival::Complete(Ok(reg)) => return Received::Registration(reg, message),
            Arrival::Complete(Err(error)) => return Received::Error(error, message),
        }
    }
}

/// Writes the reply and closes; a client that left early is still registered (spec §2.1.6).
///
/// After the write side is shut down, whatever the client still sends is read and discarded
/// for a moment (bounded in bytes and time): closing with unread data would reset the
/// connection and could destroy the reply before the client reads it. `buffer` (the message's,
/// when there was one) is reused for those reads.
async fn send_reply(mut stream: TcpStream, reply: &Reply, buffer: Vec<u8>) {
    let BufResult(written, _) = stream.write_all(reply.to_xml()).await;
    if written.is_ok() {
        // SAFETY: shutdown(2) on a descriptor this stream owns; it only changes socket state.
        unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR) };
        let _ = compio::time::timeout(DRAIN_TIME, drain(&mut stream, buffer)).await;
    }
    // Close errors leave nothing to do: the reply was sent or the peer is gone.
    let _ = stream.close().await;
}

async fn drain(stream: &mut TcpStream, mut buffer: Vec<u8>) {
    let mut budget = DRAIN_BYTES;
    // A read fills the buffer from its start, up to its capacity. A large message's buffer is
    // not worth keeping for the length of the drain.
    if buffer.capacity() > 4 * READ_CHUNK {
        buffer = Vec::new();
    }
    buffer.clear();
    buffer.reserve(READ_CHUNK);
    while budget > 0 {
        let BufResult(result, used) = stream.read(buffer).await;
        buffer = used;
        match result {
            Ok(n) if n > 0 => budget = budget.saturating_sub(n),
            _ => return,
        }
    }
}

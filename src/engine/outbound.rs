//! One delivery attempt: a new connection from the service address and port, one `SC_EVENT`, a
//! full-duplex close (our FIN, then the client's). The steps that wait (connect, the wait for
//! the client's close) are io_uring operations, the rest non-blocking system calls; the
//! deadline ([`Deadlines`]) drops the attempt, which cancels its operations.
//!
//! With a fixed source port there is one 4-tuple per client, left in TIME_WAIT on our side by
//! each attempt (we close first). A connect from an explicitly bound port reuses a TIME_WAIT
//! 4-tuple when TCP timestamps were seen on it, whatever `tcp_tw_reuse` says; with a client that
//! has timestamps off, connect fails with EADDRNOTAVAIL until the TIME_WAIT ends (60 s), as it
//! does after a restart while the old process's connection to a client that has not read its
//! event yet still holds the 4-tuple: a shortage of crnpd's own ports ([`Shortage::Ports`]),
//! tried again within a second and never counted against the client.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::num::NonZeroU16;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use compio::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::deadline::Deadlines;

use crate::delivery::{AttemptError, FailureCause, Shortage};

/// Classifies what the kernel said about an attempt: whose fault it was, and why.
fn classify(error: &io::Error) -> AttemptError {
    match error.raw_os_error() {
        Some(libc::ECONNREFUSED) => AttemptError::Failed(FailureCause::Refused),
        Some(libc::ETIMEDOUT) => AttemptError::Failed(FailureCause::Timeout),
        Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => {
            AttemptError::Failed(FailureCause::Reset)
        }
        Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE) => AttemptError::Shortage(Shortage::Ports),
        Some(libc::EMFILE | libc::ENFILE) => AttemptError::Shortage(Shortage::Descriptors),
        Some(libc::ENOMEM) => AttemptError::Shortage(Shortage::Memory),
        Some(libc::ENOBUFS) => AttemptError::Shortage(Shortage::Buffers),
        _ => AttemptError::Failed(FailureCause::Other),
    }
}

/// Where deliveries leave from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    /// The service IP (`--source-addr`); `None` lets the kernel choose (wildcard `--listen`).
    pub(crate) ip: Option<IpAddr>,
    /// The fixed source port (by default the listen port); `None` for an ephemeral port each.
    pub(crate) port: Option<NonZeroU16>,
}

/// What a core's attempts share: the deadlines of those in flight and reusable read buffers.
#[derive(Debug)]
pub(crate) struct Attempts {
    deadlines: Rc<Deadlines>,
    buffers: Scratch,
}

impl Attempts {
    /// Attempts with `timeout` each (`--client-timeout`).
    pub(crate) fn new(timeout: Duration) -> Self {
        Attempts {
            deadlines: Deadlines::new(timeout),
            buffers: Scratch::default(),
        }
    }
}

/// Delivers `payload` to `dest` from `source`, within the attempts' timeout.
pub(crate) async fn deliver(
    dest: SocketAddr,
    source: Source,
    payload: Bytes,
    attempts: &Attempts,
) -> Result<(), AttemptError> {
    let attempt = connect_write_close(dest, source, payload, &attempts.buffers);
    match attempts.deadlines.run(attempt).await {
        Some(Ok(())) => Ok(()),
        Some(Err(error)) => Err(classify(&error)),
        None => Err(AttemptError::Failed(FailureCause::Timeout)),
    }
}

/// The attempt itself: connect from `source`, the event and our FIN, the client's FIN, close.
async fn connect_write_close(
    dest: SocketAddr,
    source: Source,
    payload: Bytes,
    scratch: &Scratch,
) -> io::Result<()> {
    let socket = bound_socket(dest, source)?;
    let mut stream = compio::net::TcpSocket::from_std_stream(socket.into())?
        .connect(dest)
        .await?;
    send_with_fin(&mut stream, payload).await?;
    let mut buffer = scratch.take();
    let closed = await_peer_close(&mut stream, &mut buffer).await;
    scratch.give(buffer);
    closed?;
    // A plain close(2), here and now: once the read of the client's EOF has returned, the
    // stream is the only owner of the descriptor (a compio operation holds a clone of the
    // handle only until it completes), so dropping it closes the descriptor at once, exactly
    // once. compio's io_uring close cost an SQE, a completion and a wake-up of this task per
    // delivery, for a close that cannot wait (no unsent data, no linger) and whose error, were
    // there one, would not change a delivery the client's EOF already confirmed.
    drop(stream);
    Ok(())
}

/// Writes the event and our FIN, in one segment when the send buffer takes the event whole
/// (always, on a new connection, for events below its initial size).
///
/// The event goes with `MSG_MORE`, so the kernel holds it for the shutdown right after, which
/// appends the FIN to the unsent segment: one segment fewer per delivery for both ends. Both are
/// plain non-blocking system calls rather than io_uring operations: io_uring cannot complete a
/// shutdown inline and hands every one to a worker thread (that hand-off was a tenth of crnpd's
/// CPU), and a send that cannot wait gains nothing from the ring. What the send buffer does not
/// take is written through io_uring before the shutdown.
async fn send_with_fin(stream: &mut compio::net::TcpStream, payload: Bytes) -> io::Result<()> {
    let flags = libc::MSG_MORE | libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    let sent = match SockRef::from(&*stream).send_with_flags(&payload, flags) {
        Ok(sent) => sent,
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
        Err(error) => return Err(error),
    };
    if sent < payload.len() {
        let BufResult(written, _) = stream.write_all(payload.slice(sent..)).await;
        written?;
    }
    match SockRef::from(&*stream).shutdown(Shutdown::Write) {
        // A connection the client already reset: its error comes with the read that follows
        // (compio's shutdown ignores this case the same way).
        Err(error) if error.kind() == io::ErrorKind::NotConnected => Ok(()),
        result => result,
    }
}

/// The second half of the full-duplex close: the client reads the event, reads our EOF and
/// closes; only then is the event known to be read. Closing earlier would let the kernel reset
/// the connection under the client's unread event (a full TIME_WAIT table destroys the
/// closed socket at once), losing it silently. Whatever the client sends is discarded, bounded.
async fn await_peer_close(
    stream: &mut compio::net::TcpStream,
    buffer: &mut Vec<u8>,
) -> io::Result<()> {
    let mut budget = PEER_BYTES_LIMIT;
    loop {
        buffer.clear();
        let BufResult(read, returned) = stream.read(std::mem::take(buffer)).await;
        *buffer = returned;
        match read? {
            0 => return Ok(()),
            n if n >= budget => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "client keeps sending",
                ));
            }
            n => budget -= n,
        }
    }
}

/// Read buffers for the wait on clients' closes, reused so that a delivery allocates none.
/// A buffer in flight when its attempt is cancelled is simply not returned.
#[derive(Debug, Default)]
pub(crate) struct Scratch(RefCell<Vec<Vec<u8>>>);

impl Scratch {
    fn take(&self) -> Vec<u8> {
        self.0
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(PEER_READ_CHUNK))
    }

    fn give(&self, buffer: Vec<u8>) {
        let mut pool = self.0.borrow_mut();
        if pool.len() < SCRATCH_POOL && buffer.capacity() >= PEER_READ_CHUNK {
            pool.push(buffer);
        }
    }
}

/// Buffers kept for reuse, per core: as many as deliveries usually in flight at once.
const SCRATCH_POOL: usize = 1024;

/// Bytes a client may send on a delivery connection before the attempt counts as failed.
const PEER_BYTES_LIMIT: usize = 64 * 1024;
/// Read size while waiting for the client's close.
const PEER_READ_CHUNK: usize = 512;

/// Binds a socket the way deliveries will be bound, at start-up, so that a source that cannot
/// be had (an address not on this host, a fixed port another program holds) stops start-up
/// with a clear error rather than putting off every delivery. The socket is kept for the
/// process's life: holding a fixed port keeps other programs off it. `None` when the kernel
/// chooses both the address and the port.
pub(crate) fn reserve(listen: SocketAddr, source: Source) -> io::Result<Option<Socket>> {
    if source
        == (Source {
            ip: None,
            port: None,
        })
    {
        return Ok(None);
    }
    bound_socket(listen, source).map(Some)
}

/// A socket bound to the service address before connecting, so clients see the floating IP.
/// A fixed port needs SO_REUSEPORT, as the listeners on it have (same user). SO_REUSEADDR is
/// not needed for the bind, but the TIME_WAIT entry a socket leaves keeps its options, and
/// without it ours would make a later bind of the port with SO_REUSEADDR alone fail for 60 s
/// (as a restarted crnpd's check that nobody else serves the port does); accepted connections
/// have it from their listener. Without a fixed port, IP_BIND_ADDRESS_NO_PORT defers the port choice to connect, so ports
/// are not reserved early.
fn bound_socket(dest: SocketAddr, source: Source) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(dest), Type::STREAM, Some(Protocol::TCP))?;
    match (source.ip, source.port) {
        (ip, Some(port)) => {
            let ip = ip.unwrap_or_else(|| unspecified_like(dest));
            socket.set_reuse_port(true)?;
            socket.set_reuse_address(true)?;
            socket.bind(&SocketAddr::new(ip, port.get()).into())?;
        }
        (Some(ip), None) => {
            set_bind_address_no_port(&socket)?;
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        (None, None) => {}
    }
    Ok(socket)
}

/// The wildcard address of `dest`'s family: bound with a fixed port, it leaves the source IP
/// to the route.
fn unspecified_like(dest: SocketAddr) -> IpAddr {
    match dest {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

fn set_bind_address_no_port(socket: &Socket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt(2) reads `on` for size_of::<c_int>() bytes; the fd is owned by `socket`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

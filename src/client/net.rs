//! Outbound TCP from a chosen source address.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use super::ClientError;

/// Runs `work` against `addr` under a deadline; past it, a [`ClientError::Timeout`] saying
/// what was under way.
pub async fn within<T>(
    addr: SocketAddr,
    after: Duration,
    doing: &'static str,
    work: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(after, work)
        .await
        .map_err(|_| ClientError::Timeout { addr, after, doing })?
}

/// Opens a TCP connection to `dest`, first binding `source` when given.
///
/// The source port is left to `connect` (`IP_BIND_ADDRESS_NO_PORT`), so many sockets bound to
/// one source IP share the ephemeral range per destination instead of exhausting it.
pub async fn connect_from(
    source: Option<IpAddr>,
    dest: SocketAddr,
) -> Result<TcpStream, ClientError> {
    let socket = if dest.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|source| ClientError::Connect { addr: dest, source })?;
    if let Some(ip) = source {
        bind_address_no_port(&socket);
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|source| ClientError::Bind { ip, source })?;
    }
    socket
        .connect(dest)
        .await
        .map_err(|source| ClientError::Connect { addr: dest, source })
}

/// Best effort: without the option the bind still works, it just reserves a port early.
fn bind_address_no_port(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: a valid socket fd and a pointer to a live c_int of the size passed.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

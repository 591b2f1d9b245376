//! The registration listeners: one per core on the same address, with SO_REUSEPORT, so the
//! kernel spreads connections over the cores.
//!
//! SO_REUSEPORT would also let a second crnpd of the same user bind the same address and take
//! half of the registrations into a registry of its own. So before the group is bound, the
//! address is bound once without SO_REUSEPORT: that fails while any other socket listens on
//! it. A process of the same user that binds with SO_REUSEPORT *after* crnpd started can
//! still join the group; the kernel offers no way to prevent that, which is one reason to run
//! crnpd as a user of its own.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `count` listeners on `addr`; with port 0 they all share the port the first one got.
/// Fails with `AddrInUse` when another socket already listens on `addr`.
pub(crate) fn bind_all(
    addr: SocketAddr,
    count: usize,
) -> io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    if addr.port() != 0 {
        ensure_unserved(addr)?;
    }
    let mut listeners = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&bound.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        bound = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok((listeners, bound))
}

/// Binds `addr` once without SO_REUSEPORT and lets it go: the bind fails when another socket
/// listens there, whatever options that socket has. SO_REUSEADDR keeps connections left in
/// TIME_WAIT by an earlier crnpd from counting.
fn ensure_unserved(addr: SocketAddr) -> io::Result<()> {
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into()).map_err(|error| {
        if error.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{addr} is already served by another process (another crnpd?); stop it, or give this one another --listen"
                ),
            )
        } else {
            error
        }
    })
}

//! One registration exchange: `SC_CALLBACK_REG` out, `SC_REPLY` back.

use super::net::within;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::callback::read_to_end_limited;
use super::{ClientError, connect_from};
use crate::protocol::{CallbackReg, Limits, Reply};

/// Sends `reg` to the server at `server` from `source_ip` and returns the server's reply.
///
/// The source IP is the client's identity (its callback IP), so a client that listens on
/// 127.0.1.7 must register from 127.0.1.7. The document is written without half-closing the
/// connection, as the sample Java client does; the reply is read to the server's EOF. A reply
/// with a non-OK status is returned as `Ok`: the caller decides what "no" means to it.
/// `timeout` bounds the whole exchange.
pub async fn register(
    server: SocketAddr,
    source_ip: Option<IpAddr>,
    reg: &CallbackReg,
    timeout: Duration,
) -> Result<Reply, ClientError> {
    let limits = Limits::default();
    let exchange = async {
        let mut stream = connect_from(source_ip, server).await?;
        let io = |source| ClientError::Io {
            addr: server,
            source,
        };
        stream.write_all(&reg.to_xml()).await.map_err(io)?;
        let raw = read_to_end_limited(&mut stream, server, limits.max_message_bytes).await?;
        Reply::parse(&raw, &limits).map_err(|source| ClientError::Protocol {
            addr: server,
            source,
        })
    };
    within(
        server,
        timeout,
        "registering (SC_CALLBACK_REG sent, waiting for SC_REPLY)",
        exchange,
    )
    .await
}

//! The client side of CRNP, shared by the bundled tools and the black-box tests.
//!
//! - [`register`] sends one `SC_CALLBACK_REG` from a chosen source IP (a client's identity is
//!   the source IP of its registration plus the `PORT` it names) and returns the `SC_REPLY`.
//! - [`CallbackListener`] is a client's callback address: it accepts the one connection per
//!   event that the server opens, reads it to EOF under a size limit and a deadline, and parses
//!   the `SC_EVENT`.
//! - [`Publisher`], [`publish`], [`clients`], [`delete_client`] and [`ready`] speak crnpd's HTTP
//!   control API.
//!
//! Everything is tokio based and bounded in time; errors say which address failed and what to
//! check.

mod callback;
mod error;
mod http;
mod net;
mod register;

pub use callback::{CallbackListener, ReceivedEvent, read_event};
pub use error::ClientError;
pub use http::{
    ClientInfo, HttpEndpoint, LogEntry, LogPage, Publisher, clients, delete_client, events,
    publish, ready, replay,
};
pub use net::{connect_from, within};
pub use register::register;

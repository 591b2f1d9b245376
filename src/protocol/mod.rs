//! The CRNP wire format: parse, validate and serialize the three message types.
//!
//! Pure functions over bytes: no sockets, no clocks, no runtime. The server side parses
//! [`CallbackReg`] and builds [`Reply`] and [`Event`]; the client side (the bundled tools)
//! does the reverse, so every message type can be both built and parsed here.

mod callback_reg;
mod error;
mod event;
mod framing;
mod nvpair;
mod reply;
mod xml;

pub use callback_reg::{CallbackReg, EventType, RegType};
pub use error::ProtocolError;
pub use event::Event;
pub use framing::{DocumentScan, scan_document};
pub use nvpair::NvPair;
pub use reply::{Reply, StatusCode};
pub use xml::Limits;

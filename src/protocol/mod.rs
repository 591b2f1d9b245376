//! The CRNP wire format: parse, validate and serialize the three message types.
//!
//! Pure functions over bytes: no sockets, no clocks, no runtime. The server side parses
//! [`CallbackReg`] and builds [`Reply`] and [`Event`]; the client side (the bundled tools)
//! does the reverse, so every message type can be both built and parsed here.
//!
//! - [`scan_document`] tells a connection handler when a whole registration has arrived.
//! - `parse` functions take the whole buffer and [`Limits`], and return a [`ProtocolError`]
//!   whose status is the `SC_REPLY` code to answer with (MALFORMED, INVALID,
//!   VERSION_TOO_HIGH, VERSION_TOO_LOW), checked in the spec's order.
//! - `to_xml` functions write compact UTF-8 documents byte-identical to the spec's vectors;
//!   `parse(to_xml(m)) == m` for every message whose text [`is_representable`].

mod callback_reg;
mod error;
mod event;
mod framing;
mod nvpair;
mod reply;
mod version;
mod xml;

pub use callback_reg::{
    CallbackReg, EC_CLUSTER, ESC_CLUSTER_MEMBERSHIP, ESC_CLUSTER_R_STATE, ESC_CLUSTER_RG_STATE,
    EventType, RegType,
};
pub use error::ProtocolError;
pub use event::Event;
pub use framing::{DocumentScan, scan_document};
pub use nvpair::NvPair;
pub use reply::{Reply, StatusCode};
pub use xml::{Limits, is_representable};

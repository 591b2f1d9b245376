//! crnp: a Cluster Reconfiguration Notification Protocol (CRNP) server and its tools.
//!
//! A guided tour, in the order data flows:
//! - [`protocol`]: the wire format (`SC_CALLBACK_REG`, `SC_REPLY`, `SC_EVENT`), pure functions.
//! - [`client`]: the client side (register, callback listener, HTTP API) used by tools and tests.
#![warn(missing_docs, unreachable_pub)]

pub mod client;
pub mod event_json;
pub mod protocol;

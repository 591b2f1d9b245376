//! crnp: a Cluster Reconfiguration Notification Protocol (CRNP) server and its tools.
//!
//! A guided tour, in the order data flows:
//! - [`protocol`]: the wire format (`SC_CALLBACK_REG`, `SC_REPLY`, `SC_EVENT`), pure functions.
#![warn(missing_docs, unreachable_pub)]

pub mod event_json;
pub mod protocol;

//! crnp: a Cluster Reconfiguration Notification Protocol (CRNP) server and its tools.
//!
//! A guided tour, in the order data flows:
//! - [`protocol`]: the wire format (`SC_CALLBACK_REG`, `SC_REPLY`, `SC_EVENT`), pure functions.
//! - [`acl`]: who may register (allow/deny host lists).
//! - [`registry`]: who is registered for what, the latest event per type, durable in redb; its
//!   [`registry::service`] thread sequences registrations and events and commits them in groups.
//! - [`delivery`]: the per-client queue and retry schedule, without I/O.
//! - [`engine`]: the io_uring data plane, one thread per core: registrations in, deliveries out.
//! - [`control`]: the HTTP control plane: publish, admin, health, metrics.
//! - [`config`], [`budget`], [`server`], [`store_cli`]: configuration, the division of file
//!   descriptors, start-up and shutdown, store commands.
//! - [`event_json`], [`telemetry`]: the JSON event form; metric names and recording.
//! - [`client`]: the client side (register, callback listener, HTTP API) used by tools and tests.
#![warn(missing_docs, unreachable_pub)]

pub mod acl;
pub mod budget;
pub mod client;
pub mod config;
pub mod control;
pub mod delivery;
pub mod engine;
pub mod event_json;
mod labels;
pub mod protocol;
pub mod registry;
pub mod server;
pub mod store_cli;
pub mod telemetry;

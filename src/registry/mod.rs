//! Who is registered for what, and the latest event of every type, kept durable in redb.
//!
//! [`Registry`] is the in-memory truth (pure, no I/O); [`Store`] persists it; [`service`] is
//! the single thread that owns both, orders registrations and events into one sequence, and
//! commits them in groups.

mod codec;
mod cursor;
mod matching;
mod record;
mod recovery;
pub mod service;
mod state;
mod store;

pub use cursor::{CursorReport, Dispatched, Lagging, Resume};
pub use matching::{canonical_types, matches, state_key};
pub use record::{ClientId, ClientRecord, PublishedEvent, RemovalReason};
pub use recovery::{Recovered, Recovery};
pub use state::{Change, Refusal, Registry, RegistryLimits, Replay, StoredCursors};
pub use store::{Damage, LogEntry, LogStats, Retention, Store, StoreContents, StoreError};

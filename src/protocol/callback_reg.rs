//! `SC_CALLBACK_REG`: a client's registration message.

use super::NvPair;

/// The four registration forms (`REG_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegType {
    /// Register the client, with its initial event list (replaces an existing registration).
    AddClient,
    /// Add event types to a registered client.
    AddEvents,
    /// Unregister the client.
    RemoveClient,
    /// Remove event types from a registered client.
    RemoveEvents,
}

/// One registered event type (`SC_EVENT_REG`): class, optional subclass, narrowing pairs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType {
    /// `CLASS`, e.g. `EC_Cluster`.
    pub class: String,
    /// `SUBCLASS`; `None` registers for every subclass of the class.
    pub subclass: Option<String>,
    /// Pairs an event must carry with equal values to match.
    pub nvpairs: Vec<NvPair>,
}

/// A parsed and validated `SC_CALLBACK_REG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackReg {
    /// The client's callback port (`PORT`), 1..=65535.
    pub port: u16,
    /// What the message asks for (`REG_TYPE`).
    pub reg_type: RegType,
    /// The event list (`SC_EVENT_REG` children); empty for `REMOVE_CLIENT`.
    pub events: Vec<EventType>,
}

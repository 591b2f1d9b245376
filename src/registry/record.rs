//! The records the registry keeps: client identity, client registration, published event.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde::Deserialize;

use crate::labels::labelled;
use crate::protocol::{Event, EventType, NvPair, Text};

/// A client's identity: the source IP of its registration and its callback port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId {
    /// Source IP of the registration, where deliveries go.
    pub ip: IpAddr,
    /// The `PORT` it registered, where it listens for deliveries.
    pub port: u16,
}

impl ClientId {
    /// The callback address deliveries connect to.
    pub fn callback(self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.callback().fmt(f)
    }
}

impl FromStr for ClientId {
    type Err = std::net::AddrParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse::<SocketAddr>().map(|addr| ClientId {
            ip: addr.ip(),
            port: addr.port(),
        })
    }
}

/// One registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// Who it is.
    pub id: ClientId,
    /// What it registered for, canonical and without duplicates; shared with the client's
    /// core, so a registration's types exist once in memory.
    pub types: Arc<[EventType]>,
    /// When its current ADD_CLIENT was applied, in milliseconds since the Unix epoch.
    pub registered_at_ms: u64,
    /// Distinguishes successive registrations of one id, so a stale removal is ignored.
    pub generation: u64,
}

/// An event as the registry sequenced it: serialized once, shared by every delivery.
#[derive(Debug)]
pub struct PublishedEvent {
    /// Its place in the cluster-wide total order.
    pub seq: u64,
    /// The parsed event, for matching against registrations.
    pub event: Event,
    /// The compact `SC_EVENT` document every subscriber receives, byte for byte.
    pub bytes: Bytes,
    /// The concrete type it is the latest state of (see [`crate::registry::state_key`]).
    pub state_key: String,
    /// When it was accepted (or recovered), the start of its delivery latency.
    pub accepted_at: Instant,
}

/// The JSON form of a client record that earlier versions stored (read only; see
/// `registry::codec`). The first layout keyed records by address and had no `address` field.
#[derive(Debug, Deserialize)]
pub(crate) struct StoredClient {
    #[serde(default)]
    pub(crate) address: Option<String>,
    pub(crate) types: Vec<StoredType>,
    pub(crate) registered_at_ms: u64,
}

/// The JSON form of an event type.
#[derive(Debug, Deserialize)]
pub(crate) struct StoredType {
    pub(crate) class: Text,
    pub(crate) subclass: Option<Text>,
    pub(crate) nvpairs: Vec<(Text, Vec<Text>)>,
}

impl From<StoredType> for EventType {
    fn from(t: StoredType) -> Self {
        EventType {
            class: t.class,
            subclass: t.subclass,
            nvpairs: t
                .nvpairs
                .into_iter()
                .map(|(name, values)| NvPair { name, values })
                .collect(),
        }
    }
}

labelled! {
    /// Why a client left the registry (`crnp_clients_removed_total{reason}`).
    pub enum RemovalReason {
        /// Every delivery attempt of one event failed.
        Unreachable => "unreachable",
        /// Its queue hit `--max-queue-depth`: it cannot keep up.
        QueueOverflow => "queue_overflow",
        /// An operator removed it (`DELETE /v1/clients/...`).
        Admin => "admin",
        /// It sent REMOVE_CLIENT.
        RemoveClient => "remove_client",
    }
}

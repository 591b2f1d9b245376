//! `SC_EVENT`: one cluster event, delivered on its own connection.

use super::NvPair;

/// A parsed or to-be-sent `SC_EVENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `CLASS`, e.g. `EC_Cluster`.
    pub class: String,
    /// `SUBCLASS`, e.g. `ESC_cluster_rg_state`.
    pub subclass: String,
    /// `VENDOR`, `SUNW` for cluster events.
    pub vendor: String,
    /// `PUBLISHER`, `rgm` for cluster events.
    pub publisher: String,
    /// The event's pairs, in order.
    pub nvpairs: Vec<NvPair>,
}

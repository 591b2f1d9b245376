//! The messages the wire-format figures are measured on, shared by `benches/codec.rs` and
//! `tests/protocol_allocs.rs` so that the allocation counts and the timings describe the same
//! bytes.

use crnp::protocol::{CallbackReg, Event, EventType, NvPair, RegType};

/// ADD_CLIENT with 10 event types: membership, class-only, and 4 rg/4 r state registrations
/// (1556 bytes as XML).
pub fn add_client_10() -> CallbackReg {
    let mut events = vec![EventType::membership(), EventType::class_only("EC_Cluster")];
    events.extend((0..4).map(|i| EventType::rg_state(format!("web-rg-{i}"))));
    events.extend((0..4).map(|i| EventType::r_state(format!("web-server-rs-{i}"))));
    CallbackReg {
        port: 8765,
        reg_type: RegType::AddClient,
        events,
    }
}

/// An rg-state event with 10 pairs, three of them arrays over a 4-node cluster (1216 bytes as
/// XML).
pub fn event_10() -> Event {
    let mut nvpairs = vec![
        NvPair::scalar("rg_name", "web-rg"),
        NvPair::array("node_list", ["node-a", "node-b", "node-c", "node-d"]),
        NvPair::array(
            "state_list",
            ["ONLINE", "OFFLINE", "OFFLINE", "PENDING_ONLINE"],
        ),
    ];
    nvpairs.extend((0..7).map(|i| NvPair::scalar(format!("ev_extra_{i}"), format!("value-{i}"))));
    Event::cluster("ESC_cluster_rg_state", nvpairs)
}

//! What one run publishes: the event type of each subscriber and the event of each sequence.

use std::net::{Ipv4Addr, SocketAddr};

use crnp::protocol::{Event, EventType, NvPair};

use crate::verify::Expectation;

/// The class of every load event; the subclass names the run, so nothing older matches.
pub(crate) const LOAD_CLASS: &str = "EC_crnp_load";
/// The pair carrying the load sequence number (`ev_` pairs are ignored by real clients).
pub(crate) const SEQ_PAIR: &str = "ev_load_seq";
/// The pair naming the phase an event belongs to, so stragglers of another phase are told apart.
pub(crate) const PHASE_PAIR: &str = "ev_load_phase";
/// The padding pair (see `--payload-bytes`).
const PAD_PAIR: &str = "ev_load_pad";

/// The shape of one run: how many events, of how many types, under which subclass.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Unique per run and sweep point: the subclass prefix.
    pub(crate) tag: String,
    /// Events published.
    pub(crate) events: u64,
    /// Event types (subclasses) the events and subscribers are spread over.
    pub(crate) types: u64,
    /// Target size of one SC_EVENT document in bytes (0: no padding).
    pub(crate) payload_bytes: usize,
}

impl Plan {
    /// The subclass of type `t`.
    fn subclass(&self, t: u64) -> String {
        format!("{}.t{t}", self.tag)
    }

    /// The event type subscriber `index` registers for.
    pub(crate) fn event_type(&self, index: usize) -> EventType {
        EventType {
            class: LOAD_CLASS.into(),
            subclass: Some(self.subclass(index as u64 % self.types).into()),
            nvpairs: Vec::new(),
        }
    }

    /// The sequence numbers subscriber `index` should receive.
    pub(crate) fn expectation(&self, index: usize) -> Expectation {
        Expectation {
            offset: index as u64 % self.types,
            stride: self.types,
            end: self.events,
        }
    }

    /// The event with load sequence number `seq` in phase `phase`: shaped like a resource
    /// group state change, plus the load pairs.
    pub(crate) fn event(&self, phase: u64, seq: u64) -> Event {
        let mut event = Event {
            class: LOAD_CLASS.into(),
            subclass: self.subclass(seq % self.types).into(),
            vendor: "SUNW".into(),
            publisher: "rgm".into(),
            nvpairs: vec![
                NvPair::scalar("rg_name", "load-rg"),
                NvPair {
                    name: "node_list".into(),
                    values: vec!["node1".into(), "node2".into()],
                },
                NvPair {
                    name: "state_list".into(),
                    values: vec!["ONLINE".into(), "OFFLINE".into()],
                },
                NvPair::scalar(SEQ_PAIR, seq.to_string()),
                NvPair::scalar(PHASE_PAIR, phase.to_string()),
            ],
        };
        let size = event.to_xml().len();
        if self.payload_bytes > size {
            let overhead = 64;
            let pad = self.payload_bytes.saturating_sub(size + overhead).max(1);
            event
                .nvpairs
                .push(NvPair::scalar(PAD_PAIR, "x".repeat(pad)));
        }
        event
    }
}

/// The callback address of subscriber `index`: spread round-robin over `ips` consecutive IPs
/// from `base`, port chosen by the kernel.
pub(crate) fn sink_addr(base: Ipv4Addr, ips: u32, index: usize) -> SocketAddr {
    let offset = (index as u64 % u64::from(ips.max(1))) as u32;
    SocketAddr::from((Ipv4Addr::from(u32::from(base).wrapping_add(offset)), 0))
}

/// The load sequence number and phase an event carries, if it is a load event.
pub(crate) fn load_ids(event: &Event) -> Option<(u64, u64)> {
    let number = |name| event.value(name)?.values.first()?.parse().ok();
    Some((number(SEQ_PAIR)?, number(PHASE_PAIR)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(types: u64, payload_bytes: usize) -> Plan {
        Plan {
            tag: "run1".into(),
            events: 10,
            types,
            payload_bytes,
        }
    }

    #[test]
    fn subscribers_and_events_share_types_round_robin() {
        let plan = plan(3, 0);
        assert_eq!(plan.event_type(4).subclass.as_deref(), Some("run1.t1"));
        assert_eq!(plan.event(9, 7).subclass, "run1.t1");
        assert_eq!(
            plan.expectation(4),
            Expectation {
                offset: 1,
                stride: 3,
                end: 10
            }
        );
    }

    #[test]
    fn load_ids_round_trip_and_padding_reaches_the_target_size() {
        let event = plan(1, 0).event(2, 41);
        assert_eq!(load_ids(&event), Some((41, 2)));
        let padded = plan(1, 1000).event(2, 41).to_xml().len();
        assert!((900..=1100).contains(&padded), "{padded}");
    }

    #[test]
    fn sinks_spread_over_consecutive_ips() {
        let base = Ipv4Addr::new(127, 0, 1, 1);
        assert_eq!(sink_addr(base, 32, 0).ip().to_string(), "127.0.1.1");
        assert_eq!(sink_addr(base, 32, 33).ip().to_string(), "127.0.1.2");
        assert_eq!(sink_addr(base, 32, 31).ip().to_string(), "127.0.1.32");
    }
}

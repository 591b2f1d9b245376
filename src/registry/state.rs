//! The registry in memory: registration rules and the latest-event table, without any I/O.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hashbrown::{HashMap, HashSet};

use super::matching::{canonical_types, matches, state_key};
use super::record::{ClientId, ClientRecord, PublishedEvent};
use crate::protocol::{CallbackReg, Event, EventType, RegType, StatusCode};

/// What a registration changed, for the core that owns the client.
#[derive(Debug, Clone)]
pub enum Change {
    /// The client now has these types; `replay` is the latest state of its newly registered types,
    /// oldest first, to deliver before anything newer.
    Upsert {
        /// The client's record after the change.
        record: ClientRecord,
        /// Latest events to deliver now.
        replay: Vec<Arc<PublishedEvent>>,
    },
    /// The client is gone.
    Remove(ClientId),
}

/// Why a registration was not applied, with the reply it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The `SC_REPLY` status.
    pub status: StatusCode,
    /// The reason for `SC_STATUS_MSG`.
    pub message: String,
}

/// Clients, the latest event per type, and the sequence counter.
#[derive(Debug, Default)]
pub struct Registry {
    clients: HashMap<ClientId, ClientRecord>,
    latest: HashMap<String, Arc<PublishedEvent>>,
    next_seq: u64,
    next_generation: u64,
    dirty_clients: HashSet<ClientId>,
    dirty_latest: HashSet<String>,
    /// What the batch in progress overwrote, so a failed commit can be undone in memory.
    undo: Undo,
}

/// The values a batch replaced, recorded at the first change of each key since the last commit.
#[derive(Debug, Default)]
struct Undo {
    clients: HashMap<ClientId, Option<ClientRecord>>,
    latest: HashMap<String, Option<Arc<PublishedEvent>>>,
    next_seq: Option<u64>,
}

/// What changed since the last [`Registry::take_dirty`]: the writes of one durable commit.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Clients to write (`Some`) or delete (`None`).
    pub clients: Vec<(ClientId, Option<ClientRecord>)>,
    /// Latest events to write (`Some`) or delete (`None`, only when a failed batch is undone).
    pub latest: Vec<(String, Option<Arc<PublishedEvent>>)>,
    /// The next sequence number to hand out.
    pub next_seq: u64,
}

impl Registry {
    /// A registry holding what the store held.
    pub fn restore(
        clients: Vec<ClientRecord>,
        latest: Vec<Arc<PublishedEvent>>,
        next_seq: u64,
    ) -> Self {
        let mut registry = Registry {
            next_seq,
            ..Registry::default()
        };
        for mut record in clients {
            record.generation = registry.generation();
            registry.clients.insert(record.id, record);
        }
        for event in latest {
            registry.next_seq = registry.next_seq.max(event.seq + 1);
            registry.latest.insert(event.state_key.clone(), event);
        }
        registry
    }

    /// Number of registered clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The registered clients, in no particular order.
    pub fn clients(&self) -> impl Iterator<Item = &ClientRecord> {
        self.clients.values()
    }

    /// One client's record.
    pub fn client(&self, id: ClientId) -> Option<&ClientRecord> {
        self.clients.get(&id)
    }

    /// The latest events, in no particular order.
    pub fn latest(&self) -> impl Iterator<Item = &Arc<PublishedEvent>> {
        self.latest.values()
    }

    /// Applies one registration message from `ip`, as the spec's state machine says.
    pub fn register(
        &mut self,
        ip: IpAddr,
        reg: &CallbackReg,
        max_clients: usize,
        now_ms: u64,
    ) -> Result<Change, Refusal> {
        let id = ClientId { ip, port: reg.port };
        let types = canonical_types(&reg.events);
        match reg.reg_type {
            RegType::AddClient => {
                if !self.clients.contains_key(&id) && self.clients.len() >= max_clients {
                    return Err(Refusal {
                        status: StatusCode::LowResource,
                        message: format!(
                            "client table full ({max_clients} clients); try again later"
                        ),
                    });
                }
                let replay = self.latest_for(&types);
                let record = ClientRecord {
                    id,
                    types,
                    registered_at_ms: now_ms,
                    generation: self.generation(),
                };
                Ok(self.upsert(record, replay))
            }
            RegType::AddEvents => {
                let mut record = self.registered(id)?;
                let added: Vec<EventType> = types
                    .into_iter()
                    .filter(|t| !record.types.contains(t))
                    .collect();
                let replay = self.latest_for(&added);
                record.types.extend(added);
                Ok(self.upsert(record, replay))
            }
            RegType::RemoveEvents => {
                let mut record = self.registered(id)?;
                record.types.retain(|t| !types.contains(t));
                Ok(self.upsert(record, Vec::new()))
            }
            RegType::RemoveClient => {
                self.registered(id)?;
                Ok(self.remove_client(id))
            }
        }
    }

    fn registered(&self, id: ClientId) -> Result<ClientRecord, Refusal> {
        self.clients.get(&id).cloned().ok_or_else(|| Refusal {
            status: StatusCode::Fail,
            message: format!("client {id} is not registered; send ADD_CLIENT first"),
        })
    }

    /// Removes `id` if its registration is still `generation` (a newer one is left alone).
    pub fn remove_if_current(&mut self, id: ClientId, generation: u64) -> bool {
        let current = self
            .clients
            .get(&id)
            .is_some_and(|r| r.generation == generation);
        if current {
            self.remove_client(id);
        }
        current
    }

    /// Removes `id` whatever its generation; `None` if it was not registered.
    pub fn remove(&mut self, id: ClientId) -> Option<Change> {
        self.clients
            .contains_key(&id)
            .then(|| self.remove_client(id))
    }

    /// Sequences an event, records it as the latest of its type, and returns the shared form.
    pub fn publish(&mut self, event: Event, accepted_at: Instant) -> Arc<PublishedEvent> {
        let bytes = Bytes::from(event.to_xml());
        let published = Arc::new(PublishedEvent {
            seq: self.next_seq,
            state_key: state_key(&event),
            event,
            bytes,
            accepted_at,
        });
        self.undo.next_seq.get_or_insert(self.next_seq);
        self.next_seq += 1;
        if !self.undo.latest.contains_key(&published.state_key) {
            let old = self.latest.get(&published.state_key).cloned();
            self.undo.latest.insert(published.state_key.clone(), old);
        }
        self.dirty_latest.insert(published.state_key.clone());
        self.latest
            .insert(published.state_key.clone(), Arc::clone(&published));
        published
    }

    /// The latest events matching any of `types`, oldest first, each once.
    pub fn latest_for(&self, types: &[EventType]) -> Vec<Arc<PublishedEvent>> {
        let mut found: Vec<Arc<PublishedEvent>> = self
            .latest
            .values()
            .filter(|e| types.iter().any(|t| matches(t, &e.event)))
            .cloned()
            .collect();
        found.sort_by_key(|e| e.seq);
        found
    }

    /// The writes accumulated since the last call. Follow it with [`Registry::committed`] or
    /// [`Registry::rollback`], as the commit of these writes went.
    pub fn take_dirty(&mut self) -> Dirty {
        let clients = self
            .dirty_clients
            .drain()
            .map(|id| (id, self.clients.get(&id).cloned()))
            .collect();
        let latest = self
            .dirty_latest
            .drain()
            .map(|key| (key.clone(), self.latest.get(&key).cloned()))
            .collect();
        Dirty {
            clients,
            latest,
            next_seq: self.next_seq,
        }
    }

    /// The last [`Registry::take_dirty`] writes are durable: forget how to undo them.
    pub fn committed(&mut self) {
        self.undo = Undo::default();
    }

    /// The last [`Registry::take_dirty`] writes could not be made durable: restore every key
    /// they touched to its value before them, and mark those keys to be written again by the
    /// next commit (a failed commit may still have reached the disk).
    pub fn rollback(&mut self) {
        let undo = std::mem::take(&mut self.undo);
        for (id, old) in undo.clients {
            match old {
                Some(record) => self.clients.insert(id, record),
                None => self.clients.remove(&id),
            };
            self.dirty_clients.insert(id);
        }
        for (key, old) in undo.latest {
            match old {
                Some(event) => self.latest.insert(key.clone(), event),
                None => self.latest.remove(&key),
            };
            self.dirty_latest.insert(key);
        }
        if let Some(next_seq) = undo.next_seq {
            self.next_seq = next_seq;
        }
    }

    fn remember(&mut self, id: ClientId) {
        if !self.undo.clients.contains_key(&id) {
            let old = self.clients.get(&id).cloned();
            self.undo.clients.insert(id, old);
        }
    }

    fn upsert(&mut self, record: ClientRecord, replay: Vec<Arc<PublishedEvent>>) -> Change {
        self.remember(record.id);
        self.dirty_clients.insert(record.id);
        self.clients.insert(record.id, record.clone());
        Change::Upsert { record, replay }
    }

    fn remove_client(&mut self, id: ClientId) -> Change {
        self.remember(id);
        self.dirty_clients.insert(id);
        self.clients.remove(&id);
        Change::Remove(id)
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::NvPair;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    fn reg(reg_type: RegType, events: Vec<EventType>) -> CallbackReg {
        CallbackReg {
            port: 7000,
            reg_type,
            events,
        }
    }

    fn r_state(name: &str) -> EventType {
        EventType {
            class: "EC_Cluster".into(),
            subclass: Some("ESC_cluster_r_state".into()),
            nvpairs: vec![NvPair::scalar("r_name", name)],
        }
    }

    fn r_event(name: &str, state: &str) -> Event {
        Event {
            class: "EC_Cluster".into(),
            subclass: "ESC_cluster_r_state".into(),
            vendor: "SUNW".into(),
            publisher: "rgm".into(),
            nvpairs: vec![
                NvPair::scalar("r_name", name),
                NvPair::scalar("state_list", state),
            ],
        }
    }

    #[test]
    fn forms_other_than_add_client_need_a_registration() {
        let mut registry = Registry::default();
        for form in [
            RegType::AddEvents,
            RegType::RemoveEvents,
            RegType::RemoveClient,
        ] {
            let refusal = registry
                .register(IP, &reg(form, vec![]), 10, 0)
                .expect_err("unregistered");
            assert_eq!(refusal.status, StatusCode::Fail);
        }
    }

    #[test]
    fn add_events_replays_only_new_types_and_latest_state_only() {
        let mut registry = Registry::default();
        let now = Instant::now();
        registry.publish(r_event("a", "OFFLINE"), now);
        let online = registry.publish(r_event("a", "ONLINE"), now);
        registry
            .register(IP, &reg(RegType::AddClient, vec![r_state("a")]), 10, 0)
            .expect("ok");
        let Ok(Change::Upsert { replay, record }) = registry.register(
            IP,
            &reg(RegType::AddEvents, vec![r_state("a"), r_state("b")]),
            10,
            0,
        ) else {
            panic!("add events applies");
        };
        assert!(
            replay.is_empty(),
            "type a was held already; b has no event yet"
        );
        assert_eq!(record.types.len(), 2);
        let Ok(Change::Upsert { replay, .. }) =
            registry.register(IP, &reg(RegType::AddClient, vec![r_state("a")]), 10, 0)
        else {
            panic!("replacement applies");
        };
        assert_eq!(
            replay.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![online.seq]
        );
    }

    #[test]
    fn table_full_refuses_new_clients_but_not_replacements() {
        let mut registry = Registry::default();
        registry
            .register(IP, &reg(RegType::AddClient, vec![]), 1, 0)
            .expect("first");
        registry
            .register(IP, &reg(RegType::AddClient, vec![]), 1, 0)
            .expect("replacement");
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));
        let refusal = registry
            .register(other, &reg(RegType::AddClient, vec![]), 1, 0)
            .expect_err("full");
        assert_eq!(refusal.status, StatusCode::LowResource);
    }

    #[test]
    fn stale_removal_leaves_a_newer_registration() {
        let mut registry = Registry::default();
        let Ok(Change::Upsert { record: old, .. }) =
            registry.register(IP, &reg(RegType::AddClient, vec![]), 9, 0)
        else {
            panic!("registers");
        };
        registry
            .register(IP, &reg(RegType::AddClient, vec![]), 9, 0)
            .expect("re-register");
        assert!(!registry.remove_if_current(old.id, old.generation));
        assert_eq!(registry.client_count(), 1);
    }

    #[test]
    fn dirty_set_names_every_write_once() {
        let mut registry = Registry::default();
        registry
            .register(IP, &reg(RegType::AddClient, vec![]), 9, 0)
            .expect("ok");
        registry
            .register(IP, &reg(RegType::RemoveClient, vec![]), 9, 0)
            .expect("ok");
        registry.publish(r_event("a", "ONLINE"), Instant::now());
        let dirty = registry.take_dirty();
        assert_eq!(dirty.clients.len(), 1);
        assert!(dirty.clients[0].1.is_none(), "the removal wins");
        assert_eq!(dirty.latest.len(), 1);
        assert_eq!(dirty.next_seq, 1);
        assert!(registry.take_dirty().clients.is_empty());
    }

    #[test]
    fn rollback_restores_the_batch_and_rewrites_its_keys() {
        let mut registry = Registry::default();
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));
        registry
            .register(IP, &reg(RegType::AddClient, vec![r_state("a")]), 9, 0)
            .expect("ok");
        let kept = registry.publish(r_event("a", "OFFLINE"), Instant::now());
        registry.take_dirty();
        registry.committed();

        registry
            .register(IP, &reg(RegType::AddEvents, vec![r_state("b")]), 9, 0)
            .expect("ok");
        registry
            .register(other, &reg(RegType::AddClient, vec![]), 9, 0)
            .expect("ok");
        registry.publish(r_event("a", "ONLINE"), Instant::now());
        registry.publish(r_event("b", "ONLINE"), Instant::now());
        let failed = registry.take_dirty();
        assert_eq!(
            (failed.clients.len(), failed.latest.len(), failed.next_seq),
            (2, 2, 3)
        );
        registry.rollback();

        assert_eq!(registry.client_count(), 1, "the new client is gone");
        assert_eq!(
            registry
                .client(ClientId { ip: IP, port: 7000 })
                .expect("kept")
                .types,
            vec![r_state("a")]
        );
        let latest: Vec<u64> = registry.latest().map(|e| e.seq).collect();
        assert_eq!(latest, vec![kept.seq], "the failed events are gone");
        let rewrite = registry.take_dirty();
        assert_eq!(
            rewrite.next_seq, 1,
            "sequence numbers of the failed batch are reused"
        );
        let mut clients: Vec<bool> = rewrite.clients.iter().map(|(_, r)| r.is_some()).collect();
        clients.sort_unstable();
        assert_eq!(
            clients,
            vec![false, true],
            "the old record is rewritten, the new one deleted"
        );
        let mut latest: Vec<bool> = rewrite.latest.iter().map(|(_, e)| e.is_some()).collect();
        latest.sort_unstable();
        assert_eq!(latest, vec![false, true]);
    }
}

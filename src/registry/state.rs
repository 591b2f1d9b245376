//! The registry in memory: registration rules and the latest-event table, without any I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hashbrown::{HashMap, HashSet};

use super::cursor::{CursorReport, Cursors, Dispatched, Resume};
use super::matching::{canonical_types, matches, state_key};
use super::record::{ClientId, ClientRecord, PublishedEvent};
use crate::protocol::{CallbackReg, Event, EventType, RegType, StatusCode};
use crate::telemetry;

/// Latest events to deliver, oldest first: one immutable list shared by every client that
/// registered for the same types at the same point of the sequence.
pub type Replay = Arc<[Arc<PublishedEvent>]>;

/// What a registration changed, for the core that owns the client.
#[derive(Debug, Clone)]
pub enum Change {
    /// The client now has these types; `replay` is the latest state of its newly registered types,
    /// oldest first, to deliver before anything newer.
    Upsert {
        /// The client's record after the change.
        record: ClientRecord,
        /// Latest events to deliver now.
        replay: Replay,
        /// Events from the log it is owed (after a restart), delivered after `replay`.
        backlog: Replay,
    },
    /// The client is gone.
    Remove(ClientId),
    /// An operator asked for these events to be delivered to the client again, behind what it
    /// has queued (a latest-state run: not covered by its cursor).
    Requeue {
        /// The client.
        id: ClientId,
        /// The events, in sequence order.
        events: Replay,
    },
}

impl Change {
    /// The client the change is about.
    pub fn client(&self) -> ClientId {
        match self {
            Change::Upsert { record, .. } => record.id,
            Change::Remove(id) | Change::Requeue { id, .. } => *id,
        }
    }
}

/// Why a registration was not applied, with the reply it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The `SC_REPLY` status.
    pub status: StatusCode,
    /// The reason for `SC_STATUS_MSG`.
    pub message: String,
}

/// The bounds the registry keeps, each a documented setting of crnpd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryLimits {
    /// Registered clients at most (`--max-clients`); further ADD_CLIENTs get LOW_RESOURCE.
    pub max_clients: usize,
    /// Event types one client may hold (`--max-event-types`); a registration that would
    /// take it past this gets LOW_RESOURCE and changes nothing.
    pub max_event_types: usize,
    /// Latest events kept (`--max-latest-states`); past it the state whose latest event is
    /// the oldest is forgotten.
    pub max_latest_states: usize,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            max_clients: 100_000,
            max_event_types: 1000,
            max_latest_states: 100_000,
        }
    }
}

/// Clients, the latest event per type, and the sequence counter.
#[derive(Debug, Default)]
pub struct Registry {
    limits: RegistryLimits,
    clients: HashMap<ClientId, ClientRecord>,
    latest: HashMap<String, Arc<PublishedEvent>>,
    /// The state key of every latest event by its sequence number: the oldest is the first
    /// to go when the table is full.
    latest_by_seq: BTreeMap<u64, String>,
    next_seq: u64,
    next_generation: u64,
    dirty_clients: HashSet<ClientId>,
    dirty_latest: HashSet<String>,
    /// Latest states forgotten since the last commit, to count once it is durable.
    evicted: usize,
    /// What the batch in progress overwrote, so a failed commit can be undone in memory.
    undo: Undo,
    /// Type lists in use, each held once: most clients register for the same few lists, so
    /// sharing them keeps the memory of an idle client small.
    interned: HashSet<Arc<[EventType]>>,
    /// Types in all interned lists, and at the last sweep of unused lists.
    interned_types: usize,
    interned_types_after_sweep: usize,
    /// Every client's durable cursor into the event log.
    cursors: Cursors,
    /// Events sequenced since the last commit, to append to the log.
    appended: Vec<Arc<PublishedEvent>>,
}

/// The cursors as the store held them.
#[derive(Debug, Default)]
pub struct StoredCursors {
    /// The floor; `None` for a store written before the event log, whose clients all get
    /// the latest-state resync.
    pub floor: Option<u64>,
    /// The clients with a row of their own.
    pub rows: Vec<(ClientId, Resume)>,
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
    /// Latest events to write (`Some`) or delete (`None`: forgotten, or a failed batch undone).
    pub latest: Vec<(String, Option<Arc<PublishedEvent>>)>,
    /// The next sequence number to hand out.
    pub next_seq: u64,
    /// Events to append to the log, in sequence order.
    pub appended: Vec<Arc<PublishedEvent>>,
    /// Cursor rows to write (`Some`) or delete (`None`).
    pub cursors: Vec<(ClientId, Option<Resume>)>,
    /// The cursor floor, when it moved.
    pub floor: Option<u64>,
    /// The lowest cursor: log entries below it are owed to nobody and may go.
    pub keep_from: u64,
}

impl Registry {
    /// An empty registry with these bounds.
    pub fn new(limits: RegistryLimits) -> Self {
        Registry {
            limits,
            ..Registry::default()
        }
    }

    /// A registry holding what the store held. Latest states beyond the bound (a lowered
    /// `--max-latest-states`) are forgotten, oldest first, and deleted by the next commit.
    /// Without a stored floor (a store written before the event log), every client's cursor
    /// is `next_seq` with its latest states pending: the resync earlier versions gave.
    pub fn restore(
        limits: RegistryLimits,
        clients: Vec<ClientRecord>,
        latest: Vec<Arc<PublishedEvent>>,
        next_seq: u64,
        cursors: StoredCursors,
    ) -> Self {
        let start = latest.iter().map(|e| e.seq + 1).fold(next_seq, u64::max);
        let mut registry = Registry {
            next_seq,
            cursors: Cursors::restore(cursors.floor.unwrap_or(next_seq), start, cursors.rows),
            ..Registry::new(limits)
        };
        for mut record in clients {
            record.generation = registry.generation();
            record.types = registry.intern(record.types.to_vec());
            if cursors.floor.is_none() {
                registry.cursors.set(
                    record.id,
                    Resume {
                        from: next_seq,
                        states_from: Some(0),
                    },
                );
            }
            registry.clients.insert(record.id, record);
        }
        for event in latest {
            registry.next_seq = registry.next_seq.max(event.seq + 1);
            registry
                .latest_by_seq
                .insert(event.seq, event.state_key.clone());
            registry.latest.insert(event.state_key.clone(), event);
        }
        while registry.latest.len() > limits.max_latest_states {
            registry.evict_oldest();
        }
        registry.undo = Undo::default();
        registry
    }

    /// Where `id`'s durable cursor stands.
    pub fn resume(&self, id: ClientId) -> Resume {
        self.cursors.resume(id)
    }

    /// The cursor floor (see [`crate::registry::cursor`]).
    pub fn cursor_floor(&self) -> u64 {
        self.cursors.floor()
    }

    /// The clients whose cursor is a row of its own, with it.
    pub fn cursor_rows(&self) -> impl Iterator<Item = (ClientId, Resume)> + '_ {
        self.cursors.rows()
    }

    /// The next sequence number to hand out.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Sets `id`'s cursor (recovery: where its recovered backlog starts).
    pub fn set_resume(&mut self, id: ClientId, resume: Resume) {
        self.cursors.set(id, resume);
    }

    /// A change of `id`'s was sent to its core: reports from that core cover it once they
    /// count `sent.stamp` commands.
    pub fn dispatched(&mut self, id: ClientId, sent: Dispatched) {
        self.cursors.dispatched(id, sent);
    }

    /// Folds a core's cursor report in; the next commit writes what it changed.
    pub fn apply_cursor_report(&mut self, report: &CursorReport, cores: usize) {
        let clients = &self.clients;
        self.cursors.apply(report, cores, |id, generation| {
            clients.get(&id).is_some_and(|r| r.generation == generation)
        });
    }

    /// A replay an operator asked for, starting at sequence number `first`, was queued for `id`.
    pub fn states_queued(&mut self, id: ClientId, first: u64) {
        self.cursors.states_queued(id, first);
    }

    /// Clients whose cursor fell below `oldest`, the first event the log still holds, that were
    /// not reported before.
    pub fn newly_behind(&mut self, oldest: u64) -> Vec<ClientId> {
        self.cursors.newly_behind(oldest)
    }

    /// Number of registered clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Number of latest states held.
    pub fn latest_count(&self) -> usize {
        self.latest.len()
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

    /// Applies one registration message from `ip`, as the spec's state machine says. Its
    /// cost grows with the message, not with what the client already holds.
    pub fn register(
        &mut self,
        ip: IpAddr,
        reg: &CallbackReg,
        now_ms: u64,
    ) -> Result<Change, Refusal> {
        let id = ClientId { ip, port: reg.port };
        let types = canonical_types(&reg.events);
        match reg.reg_type {
            RegType::AddClient => {
                let max_clients = self.limits.max_clients;
                if !self.clients.contains_key(&id) && self.clients.len() >= max_clients {
                    return Err(Refusal {
                        status: StatusCode::LowResource,
                        message: format!(
                            "client table full ({max_clients} clients); try again later"
                        ),
                    });
                }
                self.check_type_count(types.len())?;
                let replay = self.latest_for(&types);
                if !self.clients.contains_key(&id) {
                    // A new registration is owed nothing published before it.
                    self.cursors.registered(
                        id,
                        Resume {
                            from: self.next_seq,
                            states_from: replay.first().map(|e| e.seq),
                        },
                    );
                } else if let Some(first) = replay.first() {
                    // A replacement keeps its cursor: the core keeps the queued events the new
                    // types still match, and they are owed until delivered.
                    self.cursors.states_queued(id, first.seq);
                }
                let record = ClientRecord {
                    id,
                    types: self.intern(types),
                    registered_at_ms: now_ms,
                    generation: self.generation(),
                };
                Ok(self.upsert(record, replay))
            }
            RegType::AddEvents => {
                let mut record = self.registered(id)?;
                let held: HashSet<&EventType> = record.types.iter().collect();
                let added: Vec<EventType> =
                    types.into_iter().filter(|t| !held.contains(t)).collect();
                drop(held);
                self.check_type_count(record.types.len() + added.len())?;
                let replay = self.latest_for(&added);
                if let Some(first) = replay.first() {
                    self.cursors.states_queued(id, first.seq);
                }
                record.types = self.intern(record.types.iter().cloned().chain(added).collect());
                Ok(self.upsert(record, replay))
            }
            RegType::RemoveEvents => {
                let mut record = self.registered(id)?;
                let removed: HashSet<&EventType> = types.iter().collect();
                let kept = record
                    .types
                    .iter()
                    .filter(|t| !removed.contains(t))
                    .cloned()
                    .collect();
                record.types = self.intern(kept);
                Ok(self.upsert(record, Replay::from([])))
            }
            RegType::RemoveClient => {
                self.registered(id)?;
                Ok(self.remove_client(id))
            }
        }
    }

    fn check_type_count(&self, count: usize) -> Result<(), Refusal> {
        let max = self.limits.max_event_types;
        if count <= max {
            return Ok(());
        }
        Err(Refusal {
            status: StatusCode::LowResource,
            message: format!(
                "a client may hold at most {max} event types (--max-event-types); this registration would give it {count}"
            ),
        })
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

    /// Sequences an event, serializes it (the one serialization every subscriber shares),
    /// records it as the latest of its type, and returns the shared form.
    pub fn publish(&mut self, event: Event, accepted_at: Instant) -> Arc<PublishedEvent> {
        let bytes = Bytes::from(event.to_xml());
        telemetry::event_serialized();
        let published = Arc::new(PublishedEvent {
            seq: self.next_seq,
            state_key: state_key(&event),
            event,
            bytes,
            accepted_at,
        });
        self.undo.next_seq.get_or_insert(self.next_seq);
        self.next_seq += 1;
        self.appended.push(Arc::clone(&published));
        let key = published.state_key.clone();
        self.remember_latest(&key);
        self.dirty_latest.insert(key.clone());
        self.latest_by_seq.insert(published.seq, key.clone());
        if let Some(old) = self.latest.insert(key, Arc::clone(&published)) {
            self.latest_by_seq.remove(&old.seq);
        }
        while self.latest.len() > self.limits.max_latest_states {
            self.evict_oldest();
        }
        published
    }

    /// Forgets the state whose latest event is the oldest.
    fn evict_oldest(&mut self) {
        let Some((_, key)) = self.latest_by_seq.pop_first() else {
            return;
        };
        self.remember_latest(&key);
        self.latest.remove(&key);
        self.dirty_latest.insert(key);
        self.evicted += 1;
    }

    /// The latest events matching any of `types`, oldest first, each once.
    pub fn latest_for(&self, types: &[EventType]) -> Replay {
        if types.is_empty() {
            return Replay::from([]);
        }
        let mut found: Vec<Arc<PublishedEvent>> = self
            .latest
            .values()
            .filter(|e| types.iter().any(|t| matches(t, &e.event)))
            .cloned()
            .collect();
        found.sort_by_key(|e| e.seq);
        found.into()
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
        let (cursors, floor) = self.cursors.take_dirty();
        Dirty {
            clients,
            latest,
            next_seq: self.next_seq,
            appended: std::mem::take(&mut self.appended),
            cursors,
            floor,
            keep_from: self.cursors.keep_from(),
        }
    }

    /// The last [`Registry::take_dirty`] writes are durable: forget how to undo them.
    /// Returns how many latest states they forgot.
    pub fn committed(&mut self) -> usize {
        self.undo = Undo::default();
        self.cursors.committed();
        std::mem::take(&mut self.evicted)
    }

    /// The last [`Registry::take_dirty`] writes could not be made durable: restore every key
    /// they touched to its value before them, and mark those keys to be written again by the
    /// next commit (a failed commit may still have reached the disk).
    pub fn rollback(&mut self) {
        let undo = std::mem::take(&mut self.undo);
        self.evicted = 0;
        self.appended.clear();
        self.cursors.rollback();
        for (id, old) in undo.clients {
            match old {
                Some(record) => self.clients.insert(id, record),
                None => self.clients.remove(&id),
            };
            self.dirty_clients.insert(id);
        }
        for (key, old) in undo.latest {
            if let Some(current) = self.latest.remove(&key) {
                self.latest_by_seq.remove(&current.seq);
            }
            if let Some(event) = old {
                self.latest_by_seq.insert(event.seq, key.clone());
                self.latest.insert(key.clone(), event);
            }
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

    fn remember_latest(&mut self, key: &str) {
        if !self.undo.latest.contains_key(key) {
            let old = self.latest.get(key).cloned();
            self.undo.latest.insert(key.to_owned(), old);
        }
    }

    fn upsert(&mut self, record: ClientRecord, replay: Replay) -> Change {
        self.remember(record.id);
        self.dirty_clients.insert(record.id);
        self.clients.insert(record.id, record.clone());
        Change::Upsert {
            record,
            replay,
            backlog: Replay::from([]),
        }
    }

    fn remove_client(&mut self, id: ClientId) -> Change {
        self.remember(id);
        self.dirty_clients.insert(id);
        self.clients.remove(&id);
        self.cursors.remove(id);
        Change::Remove(id)
    }

    /// The shared copy of `types`. Lists no client uses any more are dropped once the types
    /// in all lists have doubled since the last sweep, so the table stays within twice what
    /// is in use, however often clients change their types.
    fn intern(&mut self, types: Vec<EventType>) -> Arc<[EventType]> {
        if let Some(shared) = self.interned.get(types.as_slice()) {
            return Arc::clone(shared);
        }
        if self.interned_types >= 2 * self.interned_types_after_sweep.max(1024) {
            self.interned.retain(|list| Arc::strong_count(list) > 1);
            self.interned_types = self.interned.iter().map(|list| list.len()).sum();
            self.interned_types_after_sweep = self.interned_types;
        }
        self.interned_types += types.len();
        let shared: Arc<[EventType]> = types.into();
        self.interned.insert(Arc::clone(&shared));
        shared
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
                .register(IP, &reg(form, vec![]), 0)
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
            .register(IP, &reg(RegType::AddClient, vec![r_state("a")]), 0)
            .expect("ok");
        let Ok(Change::Upsert { replay, record, .. }) = registry.register(
            IP,
            &reg(RegType::AddEvents, vec![r_state("a"), r_state("b")]),
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
            registry.register(IP, &reg(RegType::AddClient, vec![r_state("a")]), 0)
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
        let mut registry = Registry::new(RegistryLimits {
            max_clients: 1,
            ..RegistryLimits::default()
        });
        registry
            .register(IP, &reg(RegType::AddClient, vec![]), 0)
            .expect("first");
        registry
            .register(IP, &reg(RegType::AddClient, vec![]), 0)
            .expect("replacement");
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));
        let refusal = registry
            .register(other, &reg(RegType::AddClient, vec![]), 0)
            .expect_err("full");
        assert_eq!(refusal.status, StatusCode::LowResource);
    }

    #[test]
    fn stale_removal_leaves_a_newer_registration() {
        let mut registry = Registry::default();
        let Ok(Change::Upsert { record: old, .. }) =
            registry.register(IP, &reg(RegType::AddClient, vec![]), 0)
        else {
            panic!("registers");
        };
        registry
            .register(IP, &reg(RegType::AddClient, vec![]), 0)
            .expect("re-register");
        assert!(!registry.remove_if_current(old.id, old.generation));
        assert_eq!(registry.client_count(), 1);
    }

    #[test]
    fn dirty_set_names_every_write_once() {
        let mut registry = Registry::default();
        registry
            .register(IP, &reg(RegType::AddClient, vec![]), 0)
            .expect("ok");
        registry
            .register(IP, &reg(RegType::RemoveClient, vec![]), 0)
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
            .register(IP, &reg(RegType::AddClient, vec![r_state("a")]), 0)
            .expect("ok");
        let kept = registry.publish(r_event("a", "OFFLINE"), Instant::now());
        registry.take_dirty();
        registry.committed();

        registry
            .register(IP, &reg(RegType::AddEvents, vec![r_state("b")]), 0)
            .expect("ok");
        registry
            .register(other, &reg(RegType::AddClient, vec![]), 0)
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
            vec![r_state("a")].into()
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

    #[test]
    fn clients_with_the_same_types_share_one_list() {
        let mut registry = Registry::default();
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));
        for ip in [IP, other] {
            registry
                .register(ip, &reg(RegType::AddClient, vec![r_state("a")]), 0)
                .expect("ok");
        }
        let first = registry
            .client(ClientId { ip: IP, port: 7000 })
            .expect("first");
        let second = registry
            .client(ClientId {
                ip: other,
                port: 7000,
            })
            .expect("second");
        assert!(Arc::ptr_eq(&first.types, &second.types));
    }

    fn limited(max_event_types: usize, max_latest_states: usize) -> Registry {
        Registry::new(RegistryLimits {
            max_event_types,
            max_latest_states,
            ..RegistryLimits::default()
        })
    }

    #[test]
    fn the_latest_state_table_forgets_the_oldest_state_past_its_bound() {
        let mut registry = limited(10, 3);
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            registry.publish(r_event(name, "ONLINE"), now);
        }
        registry.publish(r_event("a", "OFFLINE"), now);
        registry.take_dirty();
        assert_eq!(
            registry.committed(),
            0,
            "a state updated in place is no new state"
        );
        registry.publish(r_event("d", "ONLINE"), now);
        assert_eq!(registry.latest_count(), 3);
        let mut held: Vec<String> = registry
            .latest()
            .map(|e| e.event.nvpairs[0].values[0].to_string())
            .collect();
        held.sort();
        assert_eq!(held, ["a", "c", "d"], "b had the oldest latest event");
        let dirty = registry.take_dirty();
        let deleted: Vec<&String> = dirty
            .latest
            .iter()
            .filter(|(_, event)| event.is_none())
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            deleted.len(),
            1,
            "the forgotten state is deleted from the store"
        );
        assert_eq!(registry.committed(), 1);
    }

    #[test]
    fn a_failed_commit_brings_forgotten_states_back() {
        let mut registry = limited(10, 1);
        let now = Instant::now();
        let kept = registry.publish(r_event("a", "ONLINE"), now);
        registry.take_dirty();
        registry.committed();
        registry.publish(r_event("b", "ONLINE"), now);
        registry.take_dirty();
        registry.rollback();
        let latest: Vec<u64> = registry.latest().map(|e| e.seq).collect();
        assert_eq!(latest, vec![kept.seq]);
        registry.publish(r_event("c", "ONLINE"), now);
        assert_eq!(
            registry.latest_count(),
            1,
            "the bound holds after a rollback"
        );
    }

    #[test]
    fn a_restore_past_the_bound_keeps_the_newest_states() {
        let mut source = Registry::default();
        let now = Instant::now();
        let events: Vec<Arc<PublishedEvent>> = ["a", "b", "c"]
            .iter()
            .map(|name| source.publish(r_event(name, "ONLINE"), now))
            .collect();
        let restored = Registry::restore(
            RegistryLimits {
                max_latest_states: 2,
                ..RegistryLimits::default()
            },
            Vec::new(),
            events,
            3,
            StoredCursors::default(),
        );
        let mut seqs: Vec<u64> = restored.latest().map(|e| e.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn the_type_limit_is_exact_and_a_refusal_changes_nothing() {
        let mut registry = limited(2, 10);
        let refusal = registry
            .register(
                IP,
                &reg(
                    RegType::AddClient,
                    vec![r_state("a"), r_state("b"), r_state("c")],
                ),
                0,
            )
            .expect_err("three types");
        assert_eq!(refusal.status, StatusCode::LowResource);
        assert_eq!(registry.client_count(), 0);
        registry
            .register(IP, &reg(RegType::AddClient, vec![r_state("a")]), 0)
            .expect("one type");
        let refusal = registry
            .register(
                IP,
                &reg(RegType::AddEvents, vec![r_state("b"), r_state("c")]),
                0,
            )
            .expect_err("would hold three");
        assert_eq!(refusal.status, StatusCode::LowResource);
        registry
            .register(
                IP,
                &reg(RegType::AddEvents, vec![r_state("a"), r_state("b")]),
                0,
            )
            .expect("a is held already: two in all");
        let id = ClientId { ip: IP, port: 7000 };
        assert_eq!(registry.client(id).expect("registered").types.len(), 2);
    }
}

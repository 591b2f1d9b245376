//! One core's share of the clients: their types, their queues, and the class index that finds
//! the subscribers of an event. Plain data; the core turns its effects into I/O.

use std::sync::Arc;
use std::time::Instant;

use hashbrown::{HashMap, HashSet};

use crate::delivery::{AfterFailure, DeliveryQueue, Next, RetryPolicy};
use crate::protocol::{EventType, Text};
use crate::registry::{Change, ClientId, PublishedEvent, matches};

/// A queued delivery: a reference to the one shared serialization of an event.
pub(crate) type Item = Arc<PublishedEvent>;

/// What the core must do after a change to the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Start the client's delivery task (it was idle and now has work).
    Wake(ClientId, u64),
    /// The client's queue overflowed; it was removed here and must be removed from the registry.
    Overflowed(ClientId, u64),
}

/// The outcome of the last delivery attempt, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LastDelivery {
    /// It completed.
    Ok,
    /// It failed, with this cause.
    Error(&'static str),
}

/// One client as its core sees it.
#[derive(Debug)]
pub(crate) struct ShardClient {
    /// Registration generation, to report a removal the registry can check.
    pub(crate) generation: u64,
    /// Unique per entry on this core: a delivery task serves only the entry it was started for.
    pub(crate) slot: u64,
    types: Arc<[EventType]>,
    pub(crate) queue: DeliveryQueue<Item>,
    task_running: bool,
    last_enqueued: Option<u64>,
    pub(crate) last_delivery: Option<LastDelivery>,
}

/// A core's clients and index.
#[derive(Debug)]
pub(crate) struct Shard {
    clients: HashMap<ClientId, ShardClient>,
    by_class: HashMap<Text, HashSet<ClientId>>,
    next_slot: u64,
    queued: usize,
    policy: RetryPolicy,
}

impl Shard {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Shard {
            clients: HashMap::new(),
            by_class: HashMap::new(),
            next_slot: 0,
            queued: 0,
            policy,
        }
    }

    /// Deliveries queued on this core.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    pub(crate) fn clients(&self) -> impl Iterator<Item = (&ClientId, &ShardClient)> {
        self.clients.iter()
    }

    /// Applies a registry change; queued events that no longer match any type are dropped.
    pub(crate) fn apply(&mut self, change: Change) -> Vec<Effect> {
        match change {
            Change::Remove(id) => {
                self.remove(id);
                Vec::new()
            }
            Change::Upsert { record, replay } => {
                let id = record.id;
                if let Some(old) = self.clients.get(&id) {
                    let old_types = Arc::clone(&old.types);
                    self.unindex(id, &old_types);
                }
                let slot = self.next_slot;
                let client = self.clients.entry(id).or_insert_with(|| ShardClient {
                    generation: record.generation,
                    slot,
                    types: Arc::from([]),
                    queue: DeliveryQueue::default(),
                    task_running: false,
                    last_enqueued: None,
                    last_delivery: None,
                });
                if client.slot == slot {
                    self.next_slot += 1;
                }
                client.generation = record.generation;
                client.types = record.types;
                let before = client.queue.len();
                let types = &client.types;
                client
                    .queue
                    .retain(|item| types.iter().any(|t| matches(t, &item.event)));
                self.queued -= before - client.queue.len();
                // Class names are short texts, stored inline: cloning one allocates nothing.
                for t in client.types.iter() {
                    self.by_class.entry(t.class.clone()).or_default().insert(id);
                }
                replay
                    .iter()
                    .filter_map(|event| self.enqueue(id, event))
                    .collect()
            }
        }
    }

    /// Queues `event` for every client with a matching type, once per client.
    pub(crate) fn publish(&mut self, event: &Item) -> Vec<Effect> {
        let Some(candidates) = self.by_class.get(&event.event.class) else {
            return Vec::new();
        };
        let matching: Vec<ClientId> = candidates
            .iter()
            .filter(|id| {
                self.clients
                    .get(*id)
                    .is_some_and(|c| c.types.iter().any(|t| matches(t, &event.event)))
            })
            .copied()
            .collect();
        matching
            .into_iter()
            .filter_map(|id| self.enqueue(id, event))
            .collect()
    }

    fn enqueue(&mut self, id: ClientId, event: &Item) -> Option<Effect> {
        let client = self.clients.get_mut(&id)?;
        if client.last_enqueued == Some(event.seq) {
            return None;
        }
        if client.queue.push(Arc::clone(event), &self.policy).is_err() {
            let generation = client.generation;
            self.remove(id);
            return Some(Effect::Overflowed(id, generation));
        }
        self.queued += 1;
        client.last_enqueued = Some(event.seq);
        if client.task_running {
            return None;
        }
        client.task_running = true;
        Some(Effect::Wake(id, client.slot))
    }

    /// Asks the client's queue what to do; `None` when the entry is gone or was replaced.
    pub(crate) fn next(&mut self, id: ClientId, slot: u64, now: Instant) -> Option<Next<Item>> {
        let client = self.clients.get_mut(&id).filter(|c| c.slot == slot)?;
        let next = client.queue.next(now);
        if matches!(next, Next::Idle) {
            client.task_running = false;
        }
        Some(next)
    }

    /// Records a completed attempt.
    pub(crate) fn succeeded(&mut self, id: ClientId, slot: u64) {
        if let Some(client) = self.clients.get_mut(&id).filter(|c| c.slot == slot) {
            client.queue.succeeded();
            client.last_delivery = Some(LastDelivery::Ok);
            self.queued -= 1;
        }
    }

    /// Records a failed attempt; on the last one the client is removed here and its
    /// generation returned for the registry.
    pub(crate) fn failed(
        &mut self,
        id: ClientId,
        slot: u64,
        cause: &'static str,
        now: Instant,
    ) -> Option<u64> {
        let client = self.clients.get_mut(&id).filter(|c| c.slot == slot)?;
        client.last_delivery = Some(LastDelivery::Error(cause));
        let queued = client.queue.len();
        match client.queue.failed(now, &self.policy) {
            AfterFailure::RetryAt(_) => None,
            AfterFailure::GiveUp => {
                // Giving up empties the queue, so `remove` finds nothing left to uncount.
                self.queued -= queued;
                let generation = client.generation;
                self.remove(id);
                Some(generation)
            }
        }
    }

    fn remove(&mut self, id: ClientId) {
        if let Some(client) = self.clients.remove(&id) {
            self.queued -= client.queue.len();
            self.unindex(id, &client.types);
        }
    }

    fn unindex(&mut self, id: ClientId, types: &[EventType]) {
        for class in types.iter().map(|t| t.class.as_str()) {
            if let Some(set) = self.by_class.get_mut(class) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_class.remove(class);
                }
            }
        }
    }
}

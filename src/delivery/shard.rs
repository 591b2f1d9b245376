//! One core's share of the clients, without I/O: their types, their queues, the class index
//! that finds the subscribers of an event, and the rules that decide what happens after each
//! attempt. The engine feeds it registry changes, events and attempt outcomes, with the time as
//! an argument, and turns the [`Effect`]s it returns into tasks and registry requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::{HashMap, HashSet};

use super::{
    AfterFailure, AttemptError, DeliveryQueue, FailureCause, Next, RetryPolicy, Run, Shortage,
};
use crate::protocol::{EventType, Text};
use crate::registry::{
    Change, ClientId, CursorReport, Lagging, PublishedEvent, RemovalReason, Replay, matches,
};

/// A queued delivery: a reference to the one shared serialization of an event.
pub type Item = Arc<PublishedEvent>;

/// What the engine must do after a change to the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Start the client's delivery task (it was idle and now has work); the task passes
    /// `slot` back with every call, so that it serves only the entry it was started for.
    Wake {
        /// The client.
        client: ClientId,
        /// The entry's slot.
        slot: u64,
    },
    /// The client was removed here and must be removed from the registry, unless it
    /// registered again since (`generation` tells).
    Remove {
        /// The client.
        client: ClientId,
        /// The registration it was removed under.
        generation: u64,
        /// Why.
        reason: RemovalReason,
    },
}

/// How an attempt settled, for the engine's metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The client read the event; its queue moved on.
    Delivered,
    /// The client's side failed; the same event is tried again at this time.
    RetryAt(Instant),
    /// That was the last attempt: the client is removed (see the effect).
    GaveUp(Effect),
    /// crnpd ran short of its own resources: not counted; tried again at this time.
    Deferred(Instant),
    /// The client was removed or replaced while the attempt ran: nothing to do.
    Gone,
}

/// The outcome of the last delivery attempt, for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastDelivery {
    /// It completed.
    Ok,
    /// It failed, with this cause.
    Failed(FailureCause),
    /// It was put off by a shortage of crnpd's own (not counted against the client).
    Deferred(Shortage),
}

/// One client as its core sees it.
#[derive(Debug)]
pub struct ShardClient {
    /// Registration generation, to report a removal the registry can check.
    generation: u64,
    /// Unique per entry on this shard: a delivery task serves only the entry it was started for.
    slot: u64,
    types: Arc<[EventType]>,
    queue: DeliveryQueue<Item>,
    task_running: bool,
    last_enqueued: Option<u64>,
    last_delivery: Option<LastDelivery>,
    /// This client's attempts put off in a row by a shortage of crnpd's own; 0 while they are
    /// not short. One byte where a `Duration` would cost 16 per client: the wait follows
    /// from it ([`shortage_wait`]).
    short_in_a_row: u8,
}

impl ShardClient {
    /// Deliveries waiting, including one in flight.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The outcome of the last attempt, `None` before the first.
    pub fn last_delivery(&self) -> Option<LastDelivery> {
        self.last_delivery
    }

    /// The registration generation this entry serves.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// The first wait after a shortage of crnpd's own resources.
const SHORTAGE_WAIT_MIN: Duration = Duration::from_millis(10);
/// The longest wait after a shortage of crnpd's own resources.
const SHORTAGE_WAIT_MAX: Duration = Duration::from_secs(1);

/// The wait after the `in_a_row`-th shortage in a row (from 1): 10 ms doubling to 1 s.
fn shortage_wait(in_a_row: u8) -> Duration {
    let doublings = u32::from(in_a_row.saturating_sub(1)).min(7);
    (SHORTAGE_WAIT_MIN * 2u32.pow(doublings)).min(SHORTAGE_WAIT_MAX)
}

/// A core's clients and index.
#[derive(Debug)]
pub struct Shard {
    clients: HashMap<ClientId, ShardClient>,
    by_class: HashMap<Text, HashSet<ClientId>>,
    next_slot: u64,
    queued: usize,
    policy: RetryPolicy,
    /// Clients whose last attempt was put off by a shortage of crnpd's own.
    short_clients: usize,
    /// The core's number, for its cursor reports.
    core: usize,
    /// Changes and events applied so far.
    received: u64,
    /// One past the last event matched; `None` before the first.
    position: Option<u64>,
    /// Something a cursor report would show changed since the last report.
    cursors_moved: bool,
}

impl Shard {
    /// An empty shard of core `core` whose clients are retried and bounded by `policy`.
    pub fn new(core: usize, policy: RetryPolicy) -> Self {
        Shard {
            clients: HashMap::new(),
            by_class: HashMap::new(),
            next_slot: 0,
            queued: 0,
            policy,
            short_clients: 0,
            core,
            received: 0,
            position: None,
            cursors_moved: false,
        }
    }

    /// Where this shard's clients' cursors stand, if anything changed since the last report:
    /// the clients with something queued, and how far the event stream has been matched.
    pub fn cursor_report(&mut self) -> Option<CursorReport> {
        if !std::mem::take(&mut self.cursors_moved) {
            return None;
        }
        let position = self.position;
        let lagging = self
            .clients
            .iter()
            .filter(|(_, client)| !client.queue.is_empty())
            .map(|(id, client)| Lagging {
                id: *id,
                generation: client.generation,
                first_owed: client.queue.first_owed().map(|item| item.seq),
                states_from: client.queue.next_states().map(|item| item.seq).min(),
            })
            .collect();
        Some(CursorReport {
            core: self.core,
            received: self.received,
            position,
            lagging,
        })
    }

    /// Deliveries queued on this shard.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// True while some client's attempts are being put off for a shortage of crnpd's own.
    pub fn short(&self) -> bool {
        self.short_clients > 0
    }

    /// The clients, in no particular order.
    pub fn clients(&self) -> impl Iterator<Item = (&ClientId, &ShardClient)> {
        self.clients.iter()
    }

    /// Applies a registry change. Queued events that no longer match any type are dropped; a
    /// new registration (generation) starts with no failed attempts; a replay is queued and
    /// never overflows the queue.
    pub fn apply(&mut self, change: Change) -> Vec<Effect> {
        self.received += 1;
        self.cursors_moved = true;
        match change {
            Change::Remove(id) => {
                self.remove(id);
                Vec::new()
            }
            Change::Requeue { id, events } => {
                let Some(client) = self.clients.get_mut(&id) else {
                    return Vec::new();
                };
                self.queued += events.len();
                client.queue.push_replay(events, Run::States);
                wake(id, client).into_iter().collect()
            }
            Change::Upsert {
                record,
                replay,
                backlog,
            } => {
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
                    short_in_a_row: 0,
                });
                if client.slot == slot {
                    self.next_slot += 1;
                }
                if client.generation != record.generation {
                    // A new ADD_CLIENT: the old registration's failed attempts are not its own.
                    client.queue.reset_attempts();
                }
                client.generation = record.generation;
                client.types = record.types;
                let before = client.queue.len();
                let types = &client.types;
                client
                    .queue
                    .retain(|item| types.iter().any(|t| matches(t, &item.event)));
                let dropped = before - client.queue.len();
                if dropped > 0 {
                    // The event queued last may be among the dropped: a replay must not skip it.
                    client.last_enqueued = None;
                }
                self.queued -= dropped;
                // Class names are short texts, stored inline: cloning one allocates nothing.
                for t in client.types.iter() {
                    self.by_class.entry(t.class.clone()).or_default().insert(id);
                }
                let woken = self.enqueue_replay(id, replay, Run::States);
                let also = self.enqueue_replay(id, backlog, Run::Log);
                woken.into_iter().chain(also).collect()
            }
        }
    }

    /// Queues `event` for every client with a matching type, once per client.
    pub fn publish(&mut self, event: &Item) -> Vec<Effect> {
        self.received += 1;
        self.position = Some(event.seq + 1);
        self.cursors_moved = true;
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

    /// Queues a replayed run; it never overflows the queue (the latest-state table and the
    /// log's retention bound it). An event the client has just been queued live is not queued
    /// again.
    fn enqueue_replay(&mut self, id: ClientId, replay: Replay, run: Run) -> Option<Effect> {
        let client = self.clients.get_mut(&id)?;
        let last = replay.last()?.seq;
        let replay = match client.last_enqueued {
            Some(seq) if replay.iter().any(|e| e.seq == seq) => {
                replay.iter().filter(|e| e.seq != seq).cloned().collect()
            }
            _ => replay,
        };
        self.queued += replay.len();
        client.queue.push_replay(replay, run);
        client.last_enqueued = Some(last);
        wake(id, client)
    }

    fn enqueue(&mut self, id: ClientId, event: &Item) -> Option<Effect> {
        let client = self.clients.get_mut(&id)?;
        if client.last_enqueued == Some(event.seq) {
            return None;
        }
        if client.queue.push(Arc::clone(event), &self.policy).is_err() {
            let generation = client.generation;
            self.remove(id);
            return Some(Effect::Remove {
                client: id,
                generation,
                reason: RemovalReason::QueueOverflow,
            });
        }
        self.queued += 1;
        client.last_enqueued = Some(event.seq);
        wake(id, client)
    }

    /// What the client's delivery task does next at `now`; `None` when the entry is gone or
    /// was replaced (the task ends).
    pub fn next(&mut self, id: ClientId, slot: u64, now: Instant) -> Option<Next<Item>> {
        let client = self.clients.get_mut(&id).filter(|c| c.slot == slot)?;
        let next = client.queue.next(now);
        if matches!(next, Next::Idle) {
            client.task_running = false;
        }
        Some(next)
    }

    /// Settles the attempt the task started with the last [`Shard::next`]. A failure of the
    /// client's side counts toward its removal; a shortage of crnpd's own never does, and puts
    /// the attempt off by 10 ms, doubling to 1 s while that client's attempts stay short. The
    /// back-off is the client's own: one client whose 4-tuple is busy neither slows the others
    /// nor is hurried by their successes.
    pub fn finished(
        &mut self,
        id: ClientId,
        slot: u64,
        result: Result<(), AttemptError>,
        now: Instant,
    ) -> Settled {
        self.cursors_moved = true;
        let Some(client) = self.clients.get_mut(&id).filter(|c| c.slot == slot) else {
            return Settled::Gone;
        };
        let short_now = matches!(result, Err(AttemptError::Shortage(_)));
        match (client.short_in_a_row > 0, short_now) {
            (false, true) => self.short_clients += 1,
            (true, false) => self.short_clients -= 1,
            _ => {}
        }
        client.short_in_a_row = if short_now {
            client.short_in_a_row.saturating_add(1)
        } else {
            0
        };
        match result {
            Ok(()) => {
                client.queue.succeeded();
                client.last_delivery = Some(LastDelivery::Ok);
                self.queued -= 1;
                Settled::Delivered
            }
            Err(AttemptError::Shortage(shortage)) => {
                client.last_delivery = Some(LastDelivery::Deferred(shortage));
                let at = now + shortage_wait(client.short_in_a_row);
                client.queue.deferred(at);
                Settled::Deferred(at)
            }
            Err(AttemptError::Failed(cause)) => {
                client.last_delivery = Some(LastDelivery::Failed(cause));
                let queued = client.queue.len();
                match client.queue.failed(now, &self.policy) {
                    AfterFailure::RetryAt(at) => Settled::RetryAt(at),
                    AfterFailure::GiveUp => {
                        // Giving up empties the queue, so `remove` finds nothing left to uncount.
                        self.queued -= queued;
                        let generation = client.generation;
                        self.remove(id);
                        Settled::GaveUp(Effect::Remove {
                            client: id,
                            generation,
                            reason: RemovalReason::Unreachable,
                        })
                    }
                }
            }
        }
    }

    fn remove(&mut self, id: ClientId) {
        if let Some(client) = self.clients.remove(&id) {
            self.queued -= client.queue.len();
            if client.short_in_a_row > 0 {
                self.short_clients -= 1;
            }
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

/// Starts the client's delivery task unless it runs already.
fn wake(id: ClientId, client: &mut ShardClient) -> Option<Effect> {
    if client.task_running {
        return None;
    }
    client.task_running = true;
    Some(Effect::Wake {
        client: id,
        slot: client.slot,
    })
}

//! The delivery rules, tested exactly: the real [`Registry`] and three real [`Shard`]s, driven
//! the way the registry service and the cores drive them, with a virtual clock and scripted
//! attempt outcomes (ok, refused, timeout, reset, no port, a shortage of crnpd's own). No
//! sockets, no sleeps, no threads. An independent model of what each client is owed checks,
//! after every step and at the end of each schedule:
//!
//! 1. **Order**: each client receives the events it matched live in sequence order.
//! 2. **Exactly the matching clients**: a client receives only events it matched when they
//!    were published (registrations before an event, not after), or the latest states it was
//!    owed when it registered; and, unless it was removed, every one of them.
//! 3. **Latest-on-register without gap or reorder**: the latest states owed at a registration
//!    arrive in sequence order and before any event published after that registration.
//! 4. **Removal after exactly `attempts` failed attempts of one event**: never sooner, never
//!    for an earlier registration's failures, never for a shortage of crnpd's own.
//! 5. **Queue bound**: a client is removed for overflow exactly when a new event finds
//!    `max_queue` live events waiting for it; a latest-state replay never counts.
//! 6. **REMOVE_CLIENT stops deliveries**: no attempt starts for a client after its removal
//!    was applied, until it registers again.
//!
//! Each schedule comes from one seed. `CRNP_SIM_SEED=N cargo test --test simulation` replays
//! one; a failure prints the seed and the step. `CRNP_SIM_CASES` sets how many random seeds
//! proptest tries (default 200, each of 300 steps and a drain).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crnp::delivery::{
    AttemptError, Effect, FailureCause, Item, Next, RetryPolicy, Settled, Shard, Shortage,
};
use crnp::protocol::{CallbackReg, Event, EventType, NvPair, RegType};
use crnp::registry::{
    Change, ClientId, Dispatched, Recovery, Registry, RegistryLimits, RemovalReason, Resume,
    StoredCursors, matches,
};
use proptest::prelude::*;

const SHARDS: usize = 3;
const STEPS: usize = 300;
const POLICY: RetryPolicy = RetryPolicy {
    attempts: 3,
    gap: Duration::from_secs(10),
    max_queue: 6,
};
const LIMITS: RegistryLimits = RegistryLimits {
    max_clients: 100,
    max_event_types: 4,
    max_latest_states: 5,
};

/// SplitMix64: a small, fast, well-spread generator, so a seed fully fixes a schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn clients() -> Vec<ClientId> {
    (1..=4)
        .flat_map(|last| {
            [7000, 7001].map(|port| ClientId {
                ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)),
                port,
            })
        })
        .collect()
}

fn type_pool() -> Vec<EventType> {
    vec![
        EventType::class_only("EC_Cluster"),
        EventType::membership(),
        EventType::r_state("a"),
        EventType::r_state("b"),
        EventType::rg_state("g"),
        EventType::class_only("EC_Other"),
    ]
}

fn random_event(rng: &mut Rng, counter: u64) -> Event {
    let state = format!("S{counter}");
    let (class, subclass, pairs): (&str, &str, Vec<NvPair>) = match rng.below(5) {
        0 => (
            "EC_Cluster",
            "ESC_cluster_membership",
            vec![NvPair::scalar("node_list", state.as_str())],
        ),
        1 => (
            "EC_Cluster",
            "ESC_cluster_r_state",
            vec![
                NvPair::scalar("r_name", "a"),
                NvPair::scalar("state_list", state.as_str()),
            ],
        ),
        2 => (
            "EC_Cluster",
            "ESC_cluster_r_state",
            vec![
                NvPair::scalar("r_name", "b"),
                NvPair::scalar("state_list", state.as_str()),
            ],
        ),
        3 => (
            "EC_Cluster",
            "ESC_cluster_rg_state",
            vec![
                NvPair::scalar("rg_name", "g"),
                NvPair::scalar("state_list", state.as_str()),
            ],
        ),
        _ => (
            "EC_Other",
            "ESC_other",
            vec![NvPair::scalar("x", state.as_str())],
        ),
    };
    Event {
        class: class.into(),
        subclass: subclass.into(),
        vendor: "SUNW".into(),
        publisher: "rgm".into(),
        nvpairs: pairs,
    }
}

fn owner(id: ClientId) -> usize {
    match id.ip {
        IpAddr::V4(v4) => (usize::from(v4.octets()[3]) + usize::from(id.port)) % SHARDS,
        IpAddr::V6(_) => 0,
    }
}

/// What a delivery task is doing.
#[derive(Debug, Clone)]
enum Task {
    /// It will ask its shard what to do next.
    Ready,
    /// It waits for its timer.
    Sleeping(Instant),
    /// An attempt is in flight, started in the client's epoch `epoch`.
    InFlight { item: Item, epoch: usize },
}

/// One continuous registration of a client (from an ADD_CLIENT while unregistered to its
/// removal), and what it is owed and got.
#[derive(Debug, Default)]
struct Epoch {
    types: Vec<EventType>,
    /// Events it matched when they were published.
    live: Vec<u64>,
    live_set: HashSet<u64>,
    /// The latest states newly owed at each registration: the sequence number reached then,
    /// how many deliveries had completed, and the events.
    replays: Vec<(u64, usize, Vec<u64>)>,
    replayed: HashSet<u64>,
    /// Owed events it may legitimately never get: queued, then its types changed.
    excused: HashSet<u64>,
    /// Every completed delivery, in order.
    delivered: Vec<u64>,
    delivered_set: HashSet<u64>,
    /// Counted failed attempts of the event at the head, and that event.
    failures: u32,
    failing: Option<u64>,
    /// Ended by a removal (so completeness is not owed).
    removed: bool,
}

impl Epoch {
    fn outstanding_live(&self) -> usize {
        self.live
            .iter()
            .filter(|s| !self.delivered_set.contains(s) && !self.excused.contains(s))
            .count()
    }
}

/// The model's view of one client.
#[derive(Debug, Default)]
struct ModelClient {
    epochs: Vec<Epoch>,
    registered: bool,
}

impl ModelClient {
    fn current(&mut self) -> &mut Epoch {
        self.epochs.last_mut().expect("an epoch")
    }
}

struct Sim {
    seed: u64,
    step: usize,
    rng: Rng,
    now: Instant,
    registry: Registry,
    shards: Vec<Shard>,
    tasks: HashMap<(ClientId, u64), Task>,
    events: HashMap<u64, Item>,
    model: HashMap<ClientId, ModelClient>,
    ids: Vec<ClientId>,
    pool: Vec<EventType>,
    counter: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Sim {
            seed,
            step: 0,
            rng: Rng(seed),
            // The one clock read: every later time is this plus virtual durations.
            now: Instant::now(),
            registry: Registry::new(LIMITS),
            shards: (0..SHARDS).map(|core| Shard::new(core, POLICY)).collect(),
            tasks: HashMap::new(),
            events: HashMap::new(),
            model: HashMap::new(),
            ids: clients(),
            pool: type_pool(),
            counter: 0,
        }
    }

    /// Prints a step when `CRNP_SIM_TRACE` is set, to follow a failing seed.
    fn trace(&self, what: impl FnOnce() -> String) {
        if std::env::var_os("CRNP_SIM_TRACE").is_some() {
            eprintln!("step {:>3}: {}", self.step, what());
        }
    }

    #[track_caller]
    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        assert!(
            ok,
            "seed {} step {} (replay with CRNP_SIM_SEED={}): {}",
            self.seed,
            self.step,
            self.seed,
            what()
        );
    }

    fn commit(&mut self) {
        self.registry.take_dirty();
        self.registry.committed();
    }

    /// The event in flight for the client's current entry. An attempt started under an earlier
    /// registration (before a REMOVE_CLIENT) may still be in flight too: that one is not the
    /// current queue's head.
    fn in_flight_of(&self, id: ClientId) -> Option<u64> {
        let current = self.model.get(&id)?.epochs.len().checked_sub(1)?;
        self.tasks
            .iter()
            .find_map(|((client, _), task)| match task {
                Task::InFlight { item, epoch } if *client == id && *epoch == current => {
                    Some(item.seq)
                }
                _ => None,
            })
    }

    fn effects(&mut self, effects: Vec<Effect>, published: Option<&Item>) {
        let mut overflowed = HashSet::new();
        for effect in effects {
            match effect {
                Effect::Wake { client, slot } => {
                    self.tasks.entry((client, slot)).or_insert(Task::Ready);
                }
                Effect::Remove {
                    client,
                    generation,
                    reason,
                } => {
                    if reason == RemovalReason::QueueOverflow {
                        overflowed.insert(client);
                    }
                    self.trace(|| format!("{client} removed: {reason}"));
                    self.remove(client, generation, reason);
                }
            }
        }
        if let Some(event) = published {
            self.check_overflows(event, &overflowed);
        }
    }

    /// Property 5: overflow exactly when `max_queue` live events wait.
    fn check_overflows(&mut self, event: &Item, overflowed: &HashSet<ClientId>) {
        let ids = self.ids.clone();
        for id in ids {
            let Some(client) = self.model.get_mut(&id) else {
                continue;
            };
            if !client.registered && !overflowed.contains(&id) {
                continue;
            }
            let epoch = client.current();
            let matched = epoch.types.iter().any(|t| matches(t, &event.event));
            if !matched {
                let ok = !overflowed.contains(&id);
                self.check(ok, || {
                    format!("{id} overflowed on an event it does not match")
                });
                continue;
            }
            let waiting = epoch.outstanding_live();
            let should = waiting >= POLICY.max_queue;
            let did = overflowed.contains(&id);
            self.check(should == did, || {
                format!(
                    "{id}: {waiting} live events waiting, overflow expected {should}, got {did}"
                )
            });
            let client = self.model.get_mut(&id).expect("modelled");
            let epoch = client.current();
            if did {
                epoch.removed = true;
                client.registered = false;
            } else {
                epoch.live.push(event.seq);
                epoch.live_set.insert(event.seq);
            }
        }
    }

    /// A removal the shard reported; the registry applies it if the generation is current.
    fn remove(&mut self, client: ClientId, generation: u64, reason: RemovalReason) {
        let removed = self.registry.remove_if_current(client, generation);
        self.commit();
        self.check(removed, || {
            format!("{client} removed ({reason}) under a generation the registry no longer has")
        });
        if reason == RemovalReason::Unreachable
            && let Some(model) = self.model.get_mut(&client)
        {
            model.current().removed = true;
            model.registered = false;
        }
    }

    /// The latest states matching `types`, oldest first, as the model sees the table.
    fn owed_latest(&self, types: &[EventType]) -> Vec<u64> {
        let mut owed: Vec<u64> = self
            .registry
            .latest()
            .filter(|e| types.iter().any(|t| matches(t, &e.event)))
            .map(|e| e.seq)
            .collect();
        owed.sort_unstable();
        owed
    }

    fn register(&mut self) {
        let id = self.ids[self.rng.below(self.ids.len())];
        let form = match self.rng.below(100) {
            0..40 => RegType::AddClient,
            40..65 => RegType::AddEvents,
            65..80 => RegType::RemoveEvents,
            _ => RegType::RemoveClient,
        };
        let count = 1 + self.rng.below(3);
        let events: Vec<EventType> = (0..count)
            .map(|_| self.pool[self.rng.below(self.pool.len())].clone())
            .collect();
        let reg = CallbackReg {
            port: id.port,
            reg_type: form,
            events: events.clone(),
        };
        let held_before: Vec<EventType> = self
            .model
            .get(&id)
            .filter(|m| m.registered)
            .map(|m| m.epochs.last().map(|e| e.types.clone()).unwrap_or_default())
            .unwrap_or_default();
        let Ok(change) = self.registry.register(id.ip, &reg, 0) else {
            self.trace(|| format!("{id} {form:?} refused"));
            self.commit();
            return;
        };
        self.trace(|| {
            let types: Vec<String> = events
                .iter()
                .map(|t| {
                    format!(
                        "{}/{:?}/{:?}",
                        t.class,
                        t.subclass,
                        t.nvpairs.first().map(|p| p.values[0].to_string())
                    )
                })
                .collect();
            match &change {
                Change::Upsert { replay, .. } => format!(
                    "{id} {form:?} {types:?} replay {:?}",
                    replay.iter().map(|e| e.seq).collect::<Vec<_>>()
                ),
                Change::Remove(_) | Change::Requeue { .. } => format!("{id} {form:?}"),
            }
        });
        self.commit();
        let record_types: Option<Vec<EventType>> = match &change {
            Change::Upsert { record, .. } => Some(record.types.to_vec()),
            Change::Remove(_) | Change::Requeue { .. } => None,
        };
        let in_flight = self.in_flight_of(id);
        let owed = match (&record_types, form) {
            (Some(types), RegType::AddClient) => self.owed_latest(types),
            (Some(types), RegType::AddEvents) => {
                let added: Vec<EventType> = types
                    .iter()
                    .filter(|t| !held_before.contains(t))
                    .cloned()
                    .collect();
                self.owed_latest(&added)
            }
            _ => Vec::new(),
        };
        let reached = self.registry_next_seq();
        let model = self.model.entry(id).or_default();
        match record_types {
            None => {
                if let Some(epoch) = model.epochs.last_mut() {
                    epoch.removed = true;
                }
                model.registered = false;
            }
            Some(types) => {
                if !model.registered {
                    model.epochs.push(Epoch::default());
                    model.registered = true;
                }
                let epoch = model.current();
                if form == RegType::AddClient {
                    epoch.failures = 0;
                    epoch.failing = None;
                }
                // Queued owed events that match no type any more are dropped (the one in
                // flight stays); a failing head that is dropped takes its count with it.
                let still = |seq: &u64, events: &HashMap<u64, Item>| {
                    events
                        .get(seq)
                        .is_some_and(|e| types.iter().any(|t| matches(t, &e.event)))
                };
                let dropped: Vec<u64> = epoch
                    .live
                    .iter()
                    .chain(epoch.replayed.iter())
                    .filter(|s| !epoch.delivered_set.contains(s) && Some(**s) != in_flight)
                    .filter(|s| !still(s, &self.events))
                    .copied()
                    .collect();
                if epoch.failing.is_some_and(|f| dropped.contains(&f)) {
                    epoch.failures = 0;
                    epoch.failing = None;
                }
                epoch.excused.extend(dropped);
                epoch.types = types;
                // States it was owed already (queued live, or by an earlier registration)
                // keep their place in its queue; the order rule is about the new ones.
                let new: Vec<u64> = owed
                    .iter()
                    .filter(|s| !epoch.live_set.contains(s) && !epoch.replayed.contains(s))
                    .copied()
                    .collect();
                epoch.replayed.extend(owed.iter().copied());
                let done = epoch.delivered.len();
                epoch.replays.push((reached, done, new));
            }
        }
        self.dispatch(id, change);
    }

    fn registry_next_seq(&self) -> u64 {
        self.events.keys().max().map_or(0, |s| s + 1)
    }

    fn dispatch(&mut self, id: ClientId, change: Change) {
        let effects = self.shards[owner(id)].apply(change);
        self.effects(effects, None);
    }

    fn publish(&mut self) {
        self.counter += 1;
        let event = random_event(&mut self.rng, self.counter);
        let published = self.registry.publish(event, self.now);
        self.commit();
        self.events.insert(published.seq, Item::clone(&published));
        self.trace(|| {
            format!(
                "publish {} {} {:?}",
                published.seq,
                published.event.subclass,
                published
                    .event
                    .nvpairs
                    .first()
                    .map(|p| p.values[0].to_string())
            )
        });
        let mut effects = Vec::new();
        for shard in &mut self.shards {
            effects.extend(shard.publish(&published));
        }
        self.effects(effects, Some(&published));
    }

    fn random_task(&mut self, want: fn(&Task) -> bool) -> Option<(ClientId, u64)> {
        let mut keys: Vec<(ClientId, u64)> = self
            .tasks
            .iter()
            .filter(|(_, task)| want(task))
            .map(|(key, _)| *key)
            .collect();
        keys.sort();
        (!keys.is_empty()).then(|| keys[self.rng.below(keys.len())])
    }

    /// A ready task asks its shard what to do.
    fn progress(&mut self, key: (ClientId, u64)) {
        let (id, slot) = key;
        match self.shards[owner(id)].next(id, slot, self.now) {
            None | Some(Next::Idle | Next::Busy) => {
                self.tasks.remove(&key);
            }
            Some(Next::WaitUntil(at)) => {
                self.check(at > self.now, || format!("{id} told to wait for the past"));
                self.tasks.insert(key, Task::Sleeping(at));
            }
            Some(Next::Deliver(item)) => {
                self.trace(|| format!("{id} attempt {}", item.seq));
                let registered = self.model.get(&id).is_some_and(|m| m.registered);
                self.check(registered, || {
                    format!("an attempt started for {id}, which is not registered")
                });
                let epoch = self.model.get(&id).map_or(0, |m| m.epochs.len() - 1);
                self.tasks.insert(key, Task::InFlight { item, epoch });
            }
        }
    }

    fn outcome(&mut self) -> Result<(), AttemptError> {
        match self.rng.below(100) {
            0..55 => Ok(()),
            55..65 => Err(AttemptError::Failed(FailureCause::Refused)),
            65..75 => Err(AttemptError::Failed(FailureCause::Timeout)),
            75..80 => Err(AttemptError::Failed(FailureCause::Reset)),
            80..85 => Err(AttemptError::Failed(FailureCause::NoPort)),
            _ => Err(AttemptError::Shortage(Shortage::Descriptors)),
        }
    }

    /// An attempt in flight ends with `result`.
    fn complete(&mut self, key: (ClientId, u64), result: Result<(), AttemptError>) {
        let (id, slot) = key;
        let Some(Task::InFlight { item, epoch }) = self.tasks.get(&key).cloned() else {
            return;
        };
        self.tasks.insert(key, Task::Ready);
        let settled = self.shards[owner(id)].finished(id, slot, result, self.now);
        self.trace(|| format!("{id} attempt {} {result:?} -> {settled:?}", item.seq));
        let model = self.model.get_mut(&id).expect("modelled");
        let same_epoch = epoch + 1 == model.epochs.len();
        let ep = &mut model.epochs[epoch];
        match result {
            Ok(()) => {
                ep.delivered.push(item.seq);
                ep.delivered_set.insert(item.seq);
                if same_epoch {
                    ep.failures = 0;
                    ep.failing = None;
                }
            }
            Err(AttemptError::Failed(_)) if same_epoch && settled != Settled::Gone => {
                if ep.failing == Some(item.seq) {
                    ep.failures += 1;
                } else {
                    ep.failing = Some(item.seq);
                    ep.failures = 1;
                }
            }
            Err(_) => {}
        }
        let failures = ep.failures;
        match settled {
            Settled::GaveUp(effect) => {
                self.check(failures == POLICY.attempts, || {
                    format!(
                        "{id} removed after {failures} counted failures of event {}",
                        item.seq
                    )
                });
                self.tasks.remove(&key);
                self.effects(vec![effect], None);
            }
            Settled::RetryAt(at) => {
                self.check(failures < POLICY.attempts, || {
                    format!("{id} kept after {failures} failures")
                });
                self.check(at == self.now + POLICY.gap, || {
                    "retry not one gap later".into()
                });
            }
            Settled::Deferred(_) => {
                let short = matches!(result, Err(AttemptError::Shortage(_)));
                self.check(short, || "deferred without a shortage".into());
            }
            Settled::Delivered => self.check(result.is_ok(), || "delivered on a failure".into()),
            Settled::Gone => {
                self.tasks.remove(&key);
            }
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        for task in self.tasks.values_mut() {
            if matches!(task, Task::Sleeping(at) if *at <= self.now) {
                *task = Task::Ready;
            }
        }
    }

    fn random_step(&mut self) {
        match self.rng.below(100) {
            0..20 => self.register(),
            20..45 => self.publish(),
            45..80 => {
                if let Some(key) = self.random_task(|t| matches!(t, Task::Ready)) {
                    self.progress(key);
                }
            }
            80..95 => {
                if let Some(key) = self.random_task(|t| matches!(t, Task::InFlight { .. })) {
                    let result = self.outcome();
                    self.complete(key, result);
                }
            }
            _ => {
                let by = Duration::from_millis(self.rng.below(15_000) as u64);
                self.advance(by);
            }
        }
    }

    /// Every attempt succeeds from here on, until no task is left.
    fn drain(&mut self) {
        for _ in 0..100_000 {
            let mut keys: Vec<(ClientId, u64)> = self.tasks.keys().copied().collect();
            if keys.is_empty() {
                return;
            }
            keys.sort();
            let mut moved = false;
            for key in keys {
                match self.tasks.get(&key).cloned() {
                    Some(Task::Ready) => {
                        self.progress(key);
                        moved = true;
                    }
                    Some(Task::InFlight { .. }) => {
                        self.complete(key, Ok(()));
                        moved = true;
                    }
                    _ => {}
                }
            }
            if !moved {
                let wake = self
                    .tasks
                    .values()
                    .filter_map(|t| match t {
                        Task::Sleeping(at) => Some(*at),
                        _ => None,
                    })
                    .min()
                    .unwrap_or(self.now);
                self.now = self.now.max(wake);
                self.advance(Duration::ZERO);
            }
        }
        panic!("seed {}: the drain did not end", self.seed);
    }

    /// Properties 1, 2 and 3 over every epoch.
    fn check_deliveries(&self) {
        for (id, client) in &self.model {
            for (index, epoch) in client.epochs.iter().enumerate() {
                let last = index + 1 == client.epochs.len();
                let mut firsts = Vec::new();
                let mut seen = HashSet::new();
                for seq in &epoch.delivered {
                    self.check(
                        epoch.live_set.contains(seq) || epoch.replayed.contains(seq),
                        || format!("{id} epoch {index}: got event {seq}, which it was not owed"),
                    );
                    if seen.insert(*seq) {
                        firsts.push(*seq);
                    }
                }
                // Events owed only live, never dropped by a type change and owed again.
                let live_firsts: Vec<u64> = firsts
                    .iter()
                    .filter(|s| epoch.live_set.contains(s))
                    .filter(|s| !epoch.replayed.contains(s) && !epoch.excused.contains(s))
                    .copied()
                    .collect();
                self.check(live_firsts.windows(2).all(|w| w[0] < w[1]), || {
                    format!("{id} epoch {index}: live events out of order: {live_firsts:?}")
                });
                for (reached, done, owed) in &epoch.replays {
                    // Where each newly owed state arrived after the registration.
                    let after = &epoch.delivered[*done..];
                    let got: Vec<usize> = owed
                        .iter()
                        .filter(|s| !epoch.excused.contains(s))
                        .filter_map(|s| after.iter().position(|d| d == s))
                        .collect();
                    self.check(got.windows(2).all(|w| w[0] < w[1]), || {
                        format!(
                            "{id} epoch {index}: latest states out of order: {owed:?} at {got:?}"
                        )
                    });
                    let Some(last_owed) = got.iter().max() else {
                        continue;
                    };
                    let only_live = epoch
                        .live
                        .iter()
                        .filter(|s| *s >= reached && !epoch.excused.contains(s));
                    for seq in only_live {
                        if let Some(at) = after.iter().position(|d| d == seq) {
                            self.check(at > *last_owed, || {
                                format!("{id} epoch {index}: event {seq} overtook a latest state owed at {reached}")
                            });
                        }
                    }
                }
                if last && client.registered && !epoch.removed {
                    let owed: BTreeSet<u64> = epoch
                        .live
                        .iter()
                        .chain(epoch.replayed.iter())
                        .filter(|s| !epoch.excused.contains(s))
                        .copied()
                        .collect();
                    let missing: Vec<u64> = owed
                        .iter()
                        .filter(|s| !epoch.delivered_set.contains(s))
                        .copied()
                        .collect();
                    self.check(missing.is_empty(), || {
                        format!("{id} epoch {index}: never got {missing:?}")
                    });
                }
            }
        }
    }
}

fn run(seed: u64) -> usize {
    let mut sim = Sim::new(seed);
    for step in 0..STEPS {
        sim.step = step;
        sim.random_step();
    }
    sim.step = STEPS;
    sim.drain();
    sim.check_deliveries();
    let delivered: usize = sim
        .model
        .values()
        .flat_map(|c| c.epochs.iter())
        .map(|e| e.delivered.len())
        .sum();
    delivered
}

fn cases() -> u32 {
    std::env::var("CRNP_SIM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

#[test]
fn a_replayed_seed_runs_the_same_schedule() {
    let seed = std::env::var("CRNP_SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let delivered = run(seed);
    assert!(
        delivered > 0,
        "seed {seed}: a schedule with no delivery tests nothing"
    );
    assert_eq!(run(seed), delivered, "seed {seed}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_schedules_keep_every_delivery_rule(seed in any::<u64>()) {
        run(seed);
    }
}

/// A scripted schedule the random ones rarely produce: an event queued live, dropped by a
/// type change before its delivery, then owed again as the latest state when the type comes
/// back. The replay must not skip it as "queued already".
#[test]
fn a_latest_state_dropped_by_a_type_change_is_owed_again_when_the_type_returns() {
    let now = Instant::now();
    let id = clients()[0];
    let mut registry = Registry::new(LIMITS);
    let mut shard = Shard::new(0, POLICY);
    let register = |registry: &mut Registry, shard: &mut Shard, form, types: Vec<EventType>| {
        let reg = CallbackReg {
            port: id.port,
            reg_type: form,
            events: types,
        };
        let change = registry.register(id.ip, &reg, 0).expect("applied");
        shard.apply(change)
    };
    let wake = register(
        &mut registry,
        &mut shard,
        RegType::AddClient,
        vec![EventType::r_state("a")],
    );
    assert!(wake.is_empty(), "nothing to deliver yet");
    let mut rng = Rng(1);
    let event = loop {
        let candidate = random_event(&mut rng, 1);
        if candidate.subclass == "ESC_cluster_r_state" && candidate.nvpairs[0].values[0] == "a" {
            break candidate;
        }
    };
    let published = registry.publish(event, now);
    let Some(Effect::Wake { slot, .. }) = shard.publish(&published).first().copied() else {
        panic!("the client is woken for its event");
    };
    register(
        &mut registry,
        &mut shard,
        RegType::AddClient,
        vec![EventType::membership()],
    );
    assert_eq!(
        shard.queued(),
        0,
        "the type change dropped the queued event"
    );
    register(
        &mut registry,
        &mut shard,
        RegType::AddEvents,
        vec![EventType::r_state("a")],
    );
    assert_eq!(
        shard.queued(),
        1,
        "the latest state of the returning type is queued"
    );
    match shard.next(id, slot, now) {
        Some(Next::Deliver(item)) => assert_eq!(item.seq, published.seq),
        other => panic!("expected the latest state, got {other:?}"),
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

/// The registry as its store holds it after a commit: what a restart reads.
fn restored(registry: &mut Registry) -> Registry {
    registry.take_dirty();
    registry.committed();
    Registry::restore(
        LIMITS,
        registry.clients().cloned().collect(),
        registry.latest().cloned().collect(),
        registry.next_seq(),
        StoredCursors {
            floor: Some(registry.cursor_floor()),
            rows: registry.cursor_rows().collect(),
        },
    )
}

fn seqs(items: &[Item]) -> Vec<u64> {
    items.iter().map(|e| e.seq).collect()
}

/// Found by the simulation (seed 10, before the fix): an ADD_CLIENT that replaces a
/// registration with a backlog set the cursor to the next sequence number, while the core kept
/// the queued events the new types still match. A crash before the core's next report lost
/// them.
#[test]
fn a_replacing_add_client_keeps_the_cursor_of_the_backlog_it_still_matches() {
    let now = Instant::now();
    let id = clients()[0];
    let reg = |reg_type, events| CallbackReg {
        port: id.port,
        reg_type,
        events,
    };
    let mut registry = Registry::new(LIMITS);
    let mut shard = Shard::new(0, POLICY);
    let change = registry
        .register(
            id.ip,
            &reg(RegType::AddClient, vec![EventType::r_state("a")]),
            0,
        )
        .expect("applied");
    shard.apply(change);
    registry.dispatched(id, Dispatched { core: 0, stamp: 1 });
    let log: Vec<Item> = ["ONLINE", "OFFLINE"]
        .map(|state| registry.publish(r_event("a", state), now))
        .into();
    for event in &log {
        shard.publish(event);
    }
    let report = shard.cursor_report().expect("moved");
    registry.apply_cursor_report(&report, 1);
    assert_eq!(registry.resume(id).from, 0, "both events queued");
    let change = registry
        .register(
            id.ip,
            &reg(
                RegType::AddClient,
                vec![EventType::r_state("a"), EventType::membership()],
            ),
            0,
        )
        .expect("applied");
    shard.apply(change);
    registry.dispatched(id, Dispatched { core: 0, stamp: 4 });
    assert_eq!(
        shard.queued(),
        2,
        "the backlog stays (its last event is the latest state)"
    );
    // kill -9 before the core reports again.
    let restarted = restored(&mut registry);
    let recovery = Recovery::plan(&restarted, &log, 0);
    let [recovered] = recovery.clients.as_slice() else {
        panic!("one client");
    };
    assert_eq!(
        seqs(&recovered.backlog),
        [0, 1],
        "the backlog is owed still"
    );
}

/// Found by the simulation (seeds 16 and 15719288611042511633, before the fix): a core that has
/// matched no event since a restart reports no position. Its clients with only a latest-state
/// run queued were reported from 0, which moved their cursors back to before their
/// registration (the next restart sent them the whole log); its caught-up clients kept the
/// cursor the restart gave them (a clean restart delivered their recovered backlog again).
#[test]
fn a_core_that_matched_no_event_since_a_restart_reports_cursors_where_the_recovery_left_them() {
    let now = Instant::now();
    let (first, second) = (clients()[0], clients()[1]);
    let reg = |id: ClientId| CallbackReg {
        port: id.port,
        reg_type: RegType::AddClient,
        events: vec![EventType::r_state("a")],
    };
    let mut registry = Registry::new(LIMITS);
    registry
        .register(first.ip, &reg(first), 0)
        .expect("applied");
    let log = vec![registry.publish(r_event("a", "ONLINE"), now)];
    // The first client's core never reported: after a restart it is owed the event.
    let mut registry = restored(&mut registry);
    let recovery = Recovery::plan(&registry, &log, 0);
    let mut shard = Shard::new(0, POLICY);
    for recovered in recovery.clients {
        registry.set_resume(recovered.record.id, recovered.resume);
        shard.apply(Change::Upsert {
            record: recovered.record,
            replay: recovered.replay,
            backlog: recovered.backlog,
        });
        registry.dispatched(first, Dispatched { core: 0, stamp: 1 });
    }
    // A new registration gets the latest state, as a run the cursor does not cover.
    let change = registry
        .register(second.ip, &reg(second), 0)
        .expect("applied");
    let Change::Upsert { replay, .. } = &change else {
        panic!("an upsert");
    };
    assert_eq!(seqs(replay), [0]);
    shard.apply(change);
    registry.dispatched(second, Dispatched { core: 0, stamp: 2 });
    let Some(Next::Deliver(item)) = shard.next(first, 0, now) else {
        panic!("the recovered event is delivered");
    };
    assert_eq!(item.seq, 0);
    shard.finished(first, 0, Ok(()), now);
    let report = shard.cursor_report().expect("moved");
    assert_eq!(report.position, None, "no event since the restart");
    registry.apply_cursor_report(&report, 1);
    assert_eq!(
        registry.resume(first).from,
        1,
        "caught up: it has the recovered event"
    );
    assert_eq!(
        registry.resume(second),
        Resume {
            from: 1,
            states_pending: true
        },
        "owed nothing from before its registration"
    );
    let again = restored(&mut registry);
    let recovery = Recovery::plan(&again, &log, 0);
    for recovered in &recovery.clients {
        assert!(
            recovered.backlog.is_empty(),
            "{}: the log again",
            recovered.record.id
        );
    }
}

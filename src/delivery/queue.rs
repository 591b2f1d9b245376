//! One client's deliveries: strictly one at a time, in the order they were queued, with the
//! retry schedule and the bound. Time comes in as an argument.
//!
//! Two kinds of entry share the queue. Live events, one entry each, count toward
//! `--max-queue-depth`. A replayed run (latest states on registration, events recovered from
//! the log after a restart) is one shared, immutable list per distinct set of types: it never
//! counts toward the bound (the latest-state table and the log's retention bound it) and it
//! costs a client one entry however long it is.
//!
//! The queue also says where the client's durable cursor stands ([`DeliveryQueue::first_owed`],
//! [`DeliveryQueue::next_states`]): live events and recovered log runs are owed by the cursor;
//! latest-state runs are not, and what is left of them is redone as a resync if crnpd stops
//! before they are delivered.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a client's deliveries are retried and bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per event before the client is given up (`--client-retry-count`).
    pub attempts: u32,
    /// Wait between two attempts (`--client-retry-interval` / attempts).
    pub gap: Duration,
    /// Live events queued at most (`--max-queue-depth`).
    pub max_queue: usize,
}

/// What the engine should do next for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next<T> {
    /// Nothing queued.
    Idle,
    /// An attempt is already in flight.
    Busy,
    /// The head waits for its retry time.
    WaitUntil(Instant),
    /// Deliver this item now; report the outcome with `succeeded`, `failed` or `deferred`.
    Deliver(T),
}

/// The outcome of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try the same item again at this time.
    RetryAt(Instant),
    /// The last attempt failed: remove the client (its queue is already cleared).
    GiveUp,
}

/// The queue was full: the client cannot keep up and is to be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// What a replayed run is to the client's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// Latest states (a registration's replay, a resync, an operator's replay): not covered by
    /// the cursor; while one is queued, a restart sends the latest states again.
    States,
    /// Events from the log after the client's cursor: owed, and they advance it as delivered.
    Log,
}

/// A run of queued items.
#[derive(Debug, Clone)]
enum Entry<T> {
    /// One live event.
    Live(T),
    /// A shared replayed run, delivered from `next` on.
    Replay {
        items: Arc<[T]>,
        next: usize,
        run: Run,
    },
}

impl<T> Entry<T> {
    fn remaining(&self) -> usize {
        match self {
            Entry::Live(_) => 1,
            Entry::Replay { items, next, .. } => items.len() - next,
        }
    }

    fn first(&self) -> &T {
        match self {
            Entry::Live(item) => item,
            Entry::Replay { items, next, .. } => &items[*next],
        }
    }

    /// True for the items the client's cursor owes it.
    fn owed(&self) -> bool {
        matches!(self, Entry::Live(_) | Entry::Replay { run: Run::Log, .. })
    }
}

/// One client's deliveries.
#[derive(Debug, Clone)]
pub struct DeliveryQueue<T> {
    entries: VecDeque<Entry<T>>,
    /// Items queued, replayed ones included.
    len: usize,
    /// Live items queued: what the bound counts.
    live: usize,
    in_flight: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

impl<T> Default for DeliveryQueue<T> {
    fn default() -> Self {
        DeliveryQueue {
            entries: VecDeque::new(),
            len: 0,
            live: 0,
            in_flight: false,
            failures: 0,
            retry_at: None,
        }
    }
}

impl<T: Clone> DeliveryQueue<T> {
    /// Queues a live item behind the others; refuses when `max_queue` live items are queued
    /// (the in-flight head counts).
    pub fn push(&mut self, item: T, policy: &RetryPolicy) -> Result<(), Overflow> {
        if self.live >= policy.max_queue {
            return Err(Overflow);
        }
        self.entries.push_back(Entry::Live(item));
        self.live += 1;
        self.len += 1;
        Ok(())
    }

    /// Queues a replayed run behind the others. It never overflows the queue.
    pub fn push_replay(&mut self, items: Arc<[T]>, run: Run) {
        if items.is_empty() {
            return;
        }
        self.len += items.len();
        self.entries.push_back(Entry::Replay {
            items,
            next: 0,
            run,
        });
    }

    /// The first queued item the cursor owes the client (in flight included): every owed item
    /// before it was delivered. `None` when none is queued.
    pub fn first_owed(&self) -> Option<&T> {
        self.entries.iter().find(|e| e.owed()).map(Entry::first)
    }

    /// The next item of each latest-state run queued (in flight included). A run is in
    /// sequence order, so every latest state still to deliver comes at or after one of these.
    pub fn next_states(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().filter(|e| !e.owed()).map(Entry::first)
    }

    /// Items queued, including the one in flight.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued or in flight.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Decides what to do at `now`; a `Deliver` marks the head in flight.
    pub fn next(&mut self, now: Instant) -> Next<T> {
        if self.in_flight {
            return Next::Busy;
        }
        let Some(head) = self.entries.front() else {
            return Next::Idle;
        };
        match self.retry_at {
            Some(at) if at > now => Next::WaitUntil(at),
            _ => {
                self.in_flight = true;
                Next::Deliver(head.first().clone())
            }
        }
    }

    /// The in-flight attempt delivered the head.
    pub fn succeeded(&mut self) {
        self.in_flight = false;
        self.failures = 0;
        self.retry_at = None;
        self.pop_head();
    }

    /// The in-flight attempt failed at `now` on the client's side.
    pub fn failed(&mut self, now: Instant, policy: &RetryPolicy) -> AfterFailure {
        self.in_flight = false;
        self.failures += 1;
        if self.failures >= policy.attempts {
            self.entries.clear();
            self.len = 0;
            self.live = 0;
            self.failures = 0;
            self.retry_at = None;
            return AfterFailure::GiveUp;
        }
        let at = now + policy.gap;
        self.retry_at = Some(at);
        AfterFailure::RetryAt(at)
    }

    /// The in-flight attempt could not be made for a reason of crnpd's own: the head stays,
    /// its attempts are not counted, and it is tried again at `at`.
    pub fn deferred(&mut self, at: Instant) {
        self.in_flight = false;
        self.retry_at = Some(at);
    }

    /// A new registration of the client: its attempts start again from none.
    pub fn reset_attempts(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    /// Keeps only the queued items `keep` accepts; an in-flight head always stays. A head
    /// that is dropped takes its retry schedule with it.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let protect_head = self.in_flight;
        let mut head_kept = true;
        let mut kept_entries = VecDeque::with_capacity(self.entries.len());
        for (position, entry) in self.entries.drain(..).enumerate() {
            let protected = position == 0 && protect_head;
            match entry {
                Entry::Live(item) => {
                    let kept = protected || keep(&item);
                    if position == 0 {
                        head_kept = kept;
                    }
                    if kept {
                        kept_entries.push_back(Entry::Live(item));
                    }
                }
                Entry::Replay { items, next, run } => {
                    let rest = &items[next..];
                    let keeps: Vec<bool> = rest
                        .iter()
                        .enumerate()
                        .map(|(i, item)| (protected && i == 0) || keep(item))
                        .collect();
                    if position == 0 {
                        head_kept = keeps[0];
                    }
                    if keeps.iter().all(|kept| *kept) {
                        kept_entries.push_back(Entry::Replay { items, next, run });
                        continue;
                    }
                    let kept: Vec<T> = rest
                        .iter()
                        .zip(&keeps)
                        .filter(|(_, kept)| **kept)
                        .map(|(item, _)| item.clone())
                        .collect();
                    if !kept.is_empty() {
                        kept_entries.push_back(Entry::Replay {
                            items: kept.into(),
                            next: 0,
                            run,
                        });
                    }
                }
            }
        }
        self.entries = kept_entries;
        self.len = self.entries.iter().map(Entry::remaining).sum();
        self.live = self
            .entries
            .iter()
            .filter(|entry| matches!(entry, Entry::Live(_)))
            .count();
        if !head_kept {
            self.failures = 0;
            self.retry_at = None;
        }
    }

    fn pop_head(&mut self) {
        let Some(entry) = self.entries.front_mut() else {
            return;
        };
        self.len -= 1;
        match entry {
            Entry::Live(_) => {
                self.live -= 1;
                self.entries.pop_front();
            }
            Entry::Replay { items, next, .. } => {
                *next += 1;
                if *next == items.len() {
                    self.entries.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        attempts: 3,
        gap: Duration::from_secs(10),
        max_queue: 4,
    };

    fn queue_of(items: impl IntoIterator<Item = u32>) -> DeliveryQueue<u32> {
        let mut q = DeliveryQueue::default();
        for item in items {
            q.push(item, &POLICY).expect("room");
        }
        q
    }

    fn drain(q: &mut DeliveryQueue<u32>, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        for _ in 0..1000 {
            match q.next(now) {
                Next::Deliver(item) => {
                    out.push(item);
                    q.succeeded();
                }
                _ => break,
            }
        }
        out
    }

    #[test]
    fn one_at_a_time_in_queue_order() {
        let now = Instant::now();
        let mut q = queue_of(1..=3);
        assert_eq!(q.next(now), Next::Deliver(1));
        assert_eq!(q.next(now), Next::Busy, "never two in flight");
        q.succeeded();
        assert_eq!(q.next(now), Next::Deliver(2));
        q.succeeded();
        assert_eq!(q.next(now), Next::Deliver(3));
        q.succeeded();
        assert_eq!(q.next(now), Next::Idle);
    }

    #[test]
    fn retries_the_same_item_after_the_gap_then_gives_up_after_exactly_the_attempts() {
        let start = Instant::now();
        let mut q = DeliveryQueue::default();
        q.push("a", &POLICY).expect("room");
        q.push("b", &POLICY).expect("room");
        let mut now = start;
        for attempt in 1..=3 {
            assert_eq!(q.next(now), Next::Deliver("a"), "attempt {attempt}");
            let outcome = q.failed(now, &POLICY);
            if attempt < 3 {
                assert_eq!(outcome, AfterFailure::RetryAt(now + POLICY.gap));
                assert_eq!(
                    q.next(now + POLICY.gap / 2),
                    Next::WaitUntil(now + POLICY.gap)
                );
                now += POLICY.gap;
            } else {
                assert_eq!(outcome, AfterFailure::GiveUp);
            }
        }
        assert!(q.is_empty(), "a removed client's queue is dropped");
    }

    #[test]
    fn a_success_gives_the_next_item_every_attempt_again() {
        let mut now = Instant::now();
        let mut q = DeliveryQueue::default();
        q.push(1, &POLICY).expect("room");
        q.push(2, &POLICY).expect("room");
        q.next(now);
        q.failed(now, &POLICY);
        now += POLICY.gap;
        assert_eq!(q.next(now), Next::Deliver(1));
        q.succeeded();
        assert_eq!(q.next(now), Next::Deliver(2), "no leftover wait");
        assert!(matches!(q.failed(now, &POLICY), AfterFailure::RetryAt(_)));
        now += POLICY.gap;
        q.next(now);
        assert!(matches!(q.failed(now, &POLICY), AfterFailure::RetryAt(_)));
        now += POLICY.gap;
        q.next(now);
        assert_eq!(q.failed(now, &POLICY), AfterFailure::GiveUp);
    }

    #[test]
    fn a_deferred_attempt_is_not_counted() {
        let now = Instant::now();
        let mut q = DeliveryQueue::default();
        q.push(1, &POLICY).expect("room");
        for _ in 0..10 {
            assert_eq!(q.next(now), Next::Deliver(1));
            q.deferred(now);
        }
        for _ in 1..POLICY.attempts {
            q.next(now);
            assert!(matches!(q.failed(now, &POLICY), AfterFailure::RetryAt(_)));
        }
        q.next(now + POLICY.gap * 3);
        assert_eq!(q.failed(now, &POLICY), AfterFailure::GiveUp);
    }

    #[test]
    fn a_new_registration_starts_with_no_failed_attempts() {
        let now = Instant::now();
        let mut q = DeliveryQueue::default();
        q.push(1, &POLICY).expect("room");
        for _ in 1..POLICY.attempts {
            q.next(now);
            q.failed(now, &POLICY);
        }
        q.reset_attempts();
        assert_eq!(q.next(now), Next::Deliver(1), "no wait left either");
        assert!(matches!(q.failed(now, &POLICY), AfterFailure::RetryAt(_)));
    }

    #[test]
    fn dropping_a_failing_head_clears_its_schedule() {
        let now = Instant::now();
        let mut q = DeliveryQueue::default();
        q.push(1, &POLICY).expect("room");
        q.push(2, &POLICY).expect("room");
        q.next(now);
        q.failed(now, &POLICY);
        q.retain(|seq| *seq != 1);
        assert_eq!(q.next(now), Next::Deliver(2));
    }

    #[test]
    fn the_bound_is_exact_and_counts_live_items_only() {
        let mut q = DeliveryQueue::default();
        q.push_replay(Arc::from(vec![100, 101, 102, 103, 104, 105]), Run::States);
        for seq in 0..POLICY.max_queue as u32 {
            q.push(seq, &POLICY).expect("within the bound");
        }
        assert_eq!(q.push(99, &POLICY), Err(Overflow));
        assert_eq!(q.len(), POLICY.max_queue + 6);
    }

    #[test]
    fn a_replay_is_delivered_in_order_between_what_came_before_and_after() {
        let now = Instant::now();
        let mut q = DeliveryQueue::default();
        q.push(1, &POLICY).expect("room");
        let shared: Arc<[u32]> = Arc::from(vec![2, 3, 4]);
        q.push_replay(Arc::clone(&shared), Run::States);
        q.push(5, &POLICY).expect("room");
        assert_eq!(q.len(), 5);
        assert_eq!(drain(&mut q, now), [1, 2, 3, 4, 5]);
        assert!(q.is_empty());
        assert_eq!(shared.len(), 3, "the shared list is never changed");
    }

    #[test]
    fn retain_keeps_the_in_flight_head() {
        let now = Instant::now();
        let mut q = queue_of(1..=4);
        assert_eq!(q.next(now), Next::Deliver(1));
        q.retain(|seq| seq % 2 == 0);
        q.succeeded();
        assert_eq!(q.next(now), Next::Deliver(2));
        q.succeeded();
        assert_eq!(q.next(now), Next::Deliver(4));
    }

    #[test]
    fn retain_filters_a_replay_and_keeps_its_in_flight_head() {
        let now = Instant::now();
        let mut q = DeliveryQueue::default();
        q.push_replay(Arc::from(vec![1, 2, 3, 4, 5]), Run::Log);
        assert_eq!(q.next(now), Next::Deliver(1));
        q.retain(|seq| seq % 2 == 0);
        assert_eq!(q.len(), 3);
        q.succeeded();
        assert_eq!(drain(&mut q, now), [2, 4]);
    }

    #[test]
    fn the_first_owed_item_skips_latest_states_and_follows_deliveries() {
        let now = Instant::now();
        let mut q = DeliveryQueue::default();
        q.push_replay(Arc::from(vec![3, 7]), Run::States);
        q.push_replay(Arc::from(vec![10, 11]), Run::Log);
        q.push(12, &POLICY).expect("room");
        let next_states = |q: &DeliveryQueue<u32>| q.next_states().copied().collect::<Vec<_>>();
        assert_eq!((q.first_owed(), next_states(&q)), (Some(&10), vec![3]));
        assert_eq!(q.next(now), Next::Deliver(3));
        q.succeeded();
        assert_eq!(next_states(&q), [7], "the run goes on from its next state");
        for expected in [7, 10] {
            assert_eq!(q.next(now), Next::Deliver(expected));
            q.succeeded();
        }
        assert_eq!((q.first_owed(), next_states(&q)), (Some(&11), vec![]));
        assert_eq!(drain(&mut q, now), [11, 12]);
        assert_eq!(q.first_owed(), None);
    }
}

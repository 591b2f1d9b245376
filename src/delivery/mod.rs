//! The per-client delivery state machine, without I/O: queue, in-flight attempt, retry
//! schedule, removal after the last attempt.
//!
//! Time comes in as an argument, so ordering and retry rules are tested exactly, with no
//! sockets and no sleeps. The engine asks [`DeliveryQueue::next`] what to do and reports each
//! attempt's outcome back.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a client's deliveries are retried and bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per event before the client is given up (`--client-retry-count`).
    pub attempts: u32,
    /// Wait between two attempts (`--client-retry-interval` / attempts).
    pub gap: Duration,
    /// Events queued at most (`--max-queue-depth`).
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
    /// Deliver this item now; report the outcome with `succeeded` or `failed`.
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

/// One client's deliveries: strictly one at a time, in the order they were queued.
#[derive(Debug, Clone)]
pub struct DeliveryQueue<T> {
    pending: VecDeque<T>,
    in_flight: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

impl<T> Default for DeliveryQueue<T> {
    fn default() -> Self {
        DeliveryQueue {
            pending: VecDeque::new(),
            in_flight: false,
            failures: 0,
            retry_at: None,
        }
    }
}

impl<T: Clone> DeliveryQueue<T> {
    /// Queues an item behind the others; refuses at the bound (the in-flight head counts).
    pub fn push(&mut self, item: T, policy: &RetryPolicy) -> Result<(), Overflow> {
        if self.pending.len() >= policy.max_queue {
            return Err(Overflow);
        }
        self.pending.push_back(item);
        Ok(())
    }

    /// Items queued, including the one in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is queued or in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Decides what to do at `now`; a `Deliver` marks the head in flight.
    pub fn next(&mut self, now: Instant) -> Next<T> {
        if self.in_flight {
            return Next::Busy;
        }
        let Some(head) = self.pending.front() else {
            return Next::Idle;
        };
        match self.retry_at {
            Some(at) if at > now => Next::WaitUntil(at),
            _ => {
                self.in_flight = true;
                Next::Deliver(head.clone())
            }
        }
    }

    /// The in-flight attempt delivered the head.
    pub fn succeeded(&mut self) {
        self.in_flight = false;
        self.failures = 0;
        self.retry_at = None;
        self.pending.pop_front();
    }

    /// The in-flight attempt failed at `now`.
    pub fn failed(&mut self, now: Instant, policy: &RetryPolicy) -> AfterFailure {
        self.in_flight = false;
        self.failures += 1;
        if self.failures >= policy.attempts {
            self.pending.clear();
            self.failures = 0;
            self.retry_at = None;
            return AfterFailure::GiveUp;
        }
        let at = now + policy.gap;
        self.retry_at = Some(at);
        AfterFailure::RetryAt(at)
    }

    /// Keeps only the queued items `keep` accepts; an in-flight head always stays. A head
    /// that is dropped takes its retry schedule with it.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let protect_head = self.in_flight;
        let mut first = true;
        let mut head_kept = true;
        self.pending.retain(|item| {
            let is_head = std::mem::replace(&mut first, false);
            let kept = (is_head && protect_head) || keep(item);
            if is_head {
                head_kept = kept;
            }
            kept
        });
        if !head_kept {
            self.failures = 0;
            self.retry_at = None;
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

    #[test]
    fn one_at_a_time_in_queue_order() {
        let now = Instant::now();
        let mut q = DeliveryQueue::default();
        for seq in 1..=3 {
            q.push(seq, &POLICY).expect("room");
        }
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
    fn the_bound_is_exact() {
        let mut q = DeliveryQueue::default();
        for seq in 0..POLICY.max_queue {
            q.push(seq, &POLICY).expect("within the bound");
        }
        assert_eq!(q.push(99, &POLICY), Err(Overflow));
        assert_eq!(q.len(), POLICY.max_queue);
    }

    #[test]
    fn retain_keeps_the_in_flight_head() {
        let now = Instant::now();
        let mut q = DeliveryQueue::default();
        for seq in 1..=4 {
            q.push(seq, &POLICY).expect("room");
        }
        assert_eq!(q.next(now), Next::Deliver(1));
        q.retain(|seq| seq % 2 == 0);
        q.succeeded();
        assert_eq!(q.next(now), Next::Deliver(2));
        q.succeeded();
        assert_eq!(q.next(now), Next::Deliver(4));
    }
}

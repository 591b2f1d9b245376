//! Per-subscriber delivery verification: missing, duplicated and reordered events.
//!
//! Pure bookkeeping, no I/O. A subscriber expects the sequence numbers `offset`,
//! `offset + stride`, ... below `end`, in that order. Memory stays small when deliveries are
//! mostly in order: everything below a watermark is known received, and only the indices
//! received ahead of a gap are kept in a set.

use std::collections::BTreeSet;

/// Which load sequence numbers one subscriber should receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Expectation {
    /// The first expected sequence number.
    pub(crate) offset: u64,
    /// The distance between expected sequence numbers (1: every event).
    pub(crate) stride: u64,
    /// One past the last sequence number published.
    pub(crate) end: u64,
}

impl Expectation {
    /// Nothing expected (a subscriber whose registration failed).
    pub(crate) const NONE: Expectation = Expectation {
        offset: 0,
        stride: 1,
        end: 0,
    };

    /// How many events the subscriber should receive.
    pub(crate) fn count(&self) -> u64 {
        if self.offset >= self.end || self.stride == 0 {
            0
        } else {
            (self.end - self.offset).div_ceil(self.stride)
        }
    }

    /// The position of `seq` among the expected numbers, if it is one of them.
    fn index(&self, seq: u64) -> Option<u64> {
        let delta = seq.checked_sub(self.offset)?;
        (seq < self.end && self.stride != 0 && delta % self.stride == 0)
            .then(|| delta / self.stride)
    }
}

/// What one delivery was, relative to what had arrived before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Expected and new, and no later event had arrived before it.
    InOrder,
    /// Expected and new, but a later event had already arrived.
    Reordered,
    /// Expected but already received.
    Duplicate,
    /// Not among the expected sequence numbers.
    Unexpected,
}

impl Arrival {
    /// True for the first receipt of an expected event.
    pub(crate) fn is_new(self) -> bool {
        matches!(self, Arrival::InOrder | Arrival::Reordered)
    }
}

/// The tallies of one subscriber, or a sum of several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Counts {
    /// Events that should have arrived.
    pub(crate) expected: u64,
    /// Distinct expected events that arrived.
    pub(crate) delivered: u64,
    /// Expected events that never arrived.
    pub(crate) missing: u64,
    /// Extra copies of events already received.
    pub(crate) duplicate: u64,
    /// First receipts that came after a later event.
    pub(crate) reordered: u64,
    /// Deliveries of events the subscriber did not register for.
    pub(crate) unexpected: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.missing += other.missing;
        self.duplicate += other.duplicate;
        self.reordered += other.reordered;
        self.unexpected += other.unexpected;
    }
}

impl Counts {
    /// True when every expected event arrived once, in order, and nothing else arrived.
    pub(crate) fn is_clean(&self) -> bool {
        self.missing == 0 && self.duplicate == 0 && self.reordered == 0 && self.unexpected == 0
    }
}

/// The verification state of one subscriber.
#[derive(Debug, Clone)]
pub(crate) struct Verifier {
    /// What should arrive.
    expect: Expectation,
    /// Every index below this one has arrived.
    watermark: u64,
    /// Indices at or above the watermark that have arrived (ahead of a gap).
    ahead: BTreeSet<u64>,
    /// The highest index received so far.
    highest: Option<u64>,
    /// Tallies so far (`expected` and `missing` are filled in by [`Verifier::counts`]).
    counts: Counts,
}

impl Verifier {
    /// A verifier expecting `expect`.
    pub(crate) fn new(expect: Expectation) -> Self {
        Self {
            expect,
            watermark: 0,
            ahead: BTreeSet::new(),
            highest: None,
            counts: Counts::default(),
        }
    }

    /// Records the delivery of load sequence number `seq`.
    pub(crate) fn record(&mut self, seq: u64) -> Arrival {
        let Some(index) = self.expect.index(seq) else {
            self.counts.unexpected += 1;
            return Arrival::Unexpected;
        };
        if index < self.watermark || self.ahead.contains(&index) {
            self.counts.duplicate += 1;
            return Arrival::Duplicate;
        }
        if index == self.watermark {
            self.watermark += 1;
            while self.ahead.remove(&self.watermark) {
                self.watermark += 1;
            }
        } else {
            self.ahead.insert(index);
        }
        self.counts.delivered += 1;
        let arrival = match self.highest {
            Some(highest) if highest > index => {
                self.counts.reordered += 1;
                Arrival::Reordered
            }
            _ => Arrival::InOrder,
        };
        self.highest = self.highest.max(Some(index));
        arrival
    }

    /// The tallies, with the missing events counted as of now.
    pub(crate) fn counts(&self) -> Counts {
        let expected = self.expect.count();
        Counts {
            expected,
            missing: expected - self.counts.delivered,
            ..self.counts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(expect: Expectation, arrivals: &[u64]) -> Counts {
        let mut verifier = Verifier::new(expect);
        for &seq in arrivals {
            verifier.record(seq);
        }
        verifier.counts()
    }

    fn every(end: u64) -> Expectation {
        Expectation {
            offset: 0,
            stride: 1,
            end,
        }
    }

    #[test]
    fn in_order_delivery_is_clean() {
        let counts = run(every(4), &[0, 1, 2, 3]);
        assert!(counts.is_clean());
        assert_eq!((counts.expected, counts.delivered), (4, 4));
    }

    #[test]
    fn a_gap_is_missing_not_reordered() {
        let counts = run(every(4), &[0, 1, 3]);
        assert_eq!(
            (counts.missing, counts.reordered, counts.duplicate),
            (1, 0, 0)
        );
    }

    #[test]
    fn a_late_event_is_reordered_once() {
        let counts = run(every(4), &[0, 2, 1, 3]);
        assert_eq!(
            (
                counts.missing,
                counts.reordered,
                counts.duplicate,
                counts.delivered
            ),
            (0, 1, 0, 4)
        );
    }

    #[test]
    fn reversed_delivery_counts_every_late_event() {
        assert_eq!(run(every(4), &[3, 2, 1, 0]).reordered, 3);
    }

    #[test]
    fn duplicates_are_counted_per_extra_copy_and_are_not_reorders() {
        let counts = run(every(3), &[0, 1, 1, 2, 1, 0]);
        assert_eq!(
            (counts.duplicate, counts.reordered, counts.missing),
            (3, 0, 0)
        );
        let ahead = run(every(4), &[2, 2, 0, 1, 3]);
        assert_eq!((ahead.duplicate, ahead.reordered, ahead.missing), (1, 2, 0));
    }

    #[test]
    fn a_stride_expects_only_its_own_type() {
        let expect = Expectation {
            offset: 1,
            stride: 3,
            end: 10,
        };
        assert_eq!(expect.count(), 3);
        let mut verifier = Verifier::new(expect);
        assert_eq!(verifier.record(0), Arrival::Unexpected);
        assert_eq!(verifier.record(1), Arrival::InOrder);
        assert_eq!(verifier.record(7), Arrival::InOrder);
        assert_eq!(verifier.record(4), Arrival::Reordered);
        assert_eq!(verifier.record(10), Arrival::Unexpected);
        let counts = verifier.counts();
        assert_eq!(
            (counts.delivered, counts.missing, counts.unexpected),
            (3, 0, 2)
        );
    }

    #[test]
    fn nothing_expected_counts_everything_as_unexpected() {
        assert_eq!(Expectation::NONE.count(), 0);
        let counts = run(Expectation::NONE, &[0, 5]);
        assert_eq!(
            (counts.expected, counts.unexpected, counts.missing),
            (0, 2, 0)
        );
    }

    #[test]
    fn counts_add_up() {
        let mut total = run(every(2), &[0]);
        total += run(every(2), &[1, 0, 0]);
        assert_eq!(
            (
                total.expected,
                total.delivered,
                total.missing,
                total.duplicate,
                total.reordered
            ),
            (4, 3, 1, 1, 1)
        );
    }
}

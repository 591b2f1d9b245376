//! Latency percentiles and rates.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram tracks exactly: one hour, in microseconds.
const MAX_TRACKED_US: u64 = 3_600_000_000;

/// Publish-to-delivery latencies, recorded in microseconds.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    /// Three significant digits from 1 µs to an hour; larger values are clamped.
    histogram: Histogram<u64>,
}

impl Latencies {
    /// An empty recorder.
    pub(crate) fn new() -> Self {
        let histogram =
            Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("constant bounds are valid");
        Self { histogram }
    }

    /// Records one latency in nanoseconds.
    pub(crate) fn record_ns(&mut self, nanos: u64) {
        self.histogram
            .saturating_record((nanos / 1_000).clamp(1, MAX_TRACKED_US));
    }

    /// Forgets everything recorded.
    pub(crate) fn reset(&mut self) {
        self.histogram.reset();
    }

    /// Adds every latency `other` recorded.
    pub(crate) fn merge(&mut self, other: &Latencies) {
        for (value, count) in other.to_counts() {
            self.histogram.saturating_record_n(value, count);
        }
    }

    /// The recorded values (µs) and how often each was recorded, to send to another process.
    pub(crate) fn to_counts(&self) -> Vec<(u64, u64)> {
        self.histogram
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// Latencies from [`Latencies::to_counts`].
    pub(crate) fn from_counts(counts: &[(u64, u64)]) -> Self {
        let mut latencies = Latencies::new();
        for &(value, count) in counts {
            latencies
                .histogram
                .saturating_record_n(value.clamp(1, MAX_TRACKED_US), count);
        }
        latencies
    }

    /// The percentiles, in milliseconds.
    pub(crate) fn summary(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1_000.0;
        let at = |q: f64| ms(self.histogram.value_at_quantile(q));
        LatencySummary {
            samples: self.histogram.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: ms(self.histogram.max()),
        }
    }
}

/// Latency percentiles of one phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct LatencySummary {
    /// Deliveries measured.
    pub(crate) samples: u64,
    /// Median, ms.
    pub(crate) p50_ms: f64,
    /// 90th percentile, ms.
    pub(crate) p90_ms: f64,
    /// 99th percentile, ms.
    pub(crate) p99_ms: f64,
    /// Largest, ms.
    pub(crate) max_ms: f64,
}

/// `count / seconds`, or 0 when no time passed.
pub(crate) fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Microseconds of CPU per unit of work, or `None` when no work was done.
pub(crate) fn micros_per(cpu_seconds: f64, count: u64) -> Option<f64> {
    (count > 0).then(|| cpu_seconds * 1e6 / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut latencies = Latencies::new();
        for ms in 1..=100u64 {
            latencies.record_ns(ms * 1_000_000);
        }
        let summary = latencies.summary();
        assert_eq!(summary.samples, 100);
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p90_ms - 90.0).abs() < 0.1, "{summary:?}");
        assert!((summary.p99_ms - 99.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
    }

    #[test]
    fn tiny_and_huge_values_are_clamped_not_lost() {
        let mut latencies = Latencies::new();
        latencies.record_ns(0);
        latencies.record_ns(u64::MAX);
        let summary = latencies.summary();
        assert_eq!(summary.samples, 2);
        assert!(summary.max_ms >= 3_600_000.0 * 0.999);
        latencies.reset();
        assert_eq!(latencies.summary().samples, 0);
    }

    #[test]
    fn latencies_survive_the_trip_to_another_process_and_merge() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        for ms in 1..=50u64 {
            a.record_ns(ms * 1_000_000);
            b.record_ns((ms + 50) * 1_000_000);
        }
        let mut merged = Latencies::from_counts(&a.to_counts());
        merged.merge(&Latencies::from_counts(&b.to_counts()));
        let summary = merged.summary();
        assert_eq!(summary.samples, 100);
        assert!((summary.p50_ms - 50.0).abs() < 0.1, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
    }

    #[test]
    fn rates_and_cpu_per_unit_survive_zero() {
        assert_eq!(rate(10, 0.0), 0.0);
        assert_eq!(rate(10, 2.0), 5.0);
        assert_eq!(micros_per(1.0, 0), None);
        assert_eq!(micros_per(0.5, 1_000), Some(500.0));
    }
}

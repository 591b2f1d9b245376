//! Metric names and recording, in one place, following Prometheus conventions.
//!
//! The control plane installs the Prometheus recorder; until then (tests of pure modules,
//! `crnpd store`), recording is a no-op. Hot-path metrics are per-core handles created once
//! ([`CoreMetrics`]), so a delivery costs an atomic add, never a registry lookup or a lock.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

/// Events accepted by the publish API.
pub const EVENTS_PUBLISHED: &str = "crnp_events_published_total";
/// SC_EVENT serializations: one per published event, never one per subscriber.
pub const EVENT_SERIALIZATIONS: &str = "crnp_event_serializations_total";
/// Delivery attempts by result (`ok`, `error`).
pub const DELIVERY_ATTEMPTS: &str = "crnp_delivery_attempts_total";
/// Failed delivery attempts by cause (`refused`, `timeout`, `reset`, `no_port`, `other`).
pub const DELIVERY_FAILURES: &str = "crnp_delivery_failures_total";
/// Events delivered (an attempt that completed).
pub const EVENTS_DELIVERED: &str = "crnp_events_delivered_total";
/// Publish accepted to delivery complete.
pub const DELIVERY_LATENCY: &str = "crnp_delivery_latency_seconds";
/// Registration messages by form and reply status.
pub const REGISTRATIONS: &str = "crnp_registrations_total";
/// Registered clients.
pub const CLIENTS: &str = "crnp_clients";
/// Clients removed, by reason.
pub const CLIENTS_REMOVED: &str = "crnp_clients_removed_total";
/// Deliveries waiting in client queues, per core.
pub const QUEUED_DELIVERIES: &str = "crnp_queued_deliveries";
/// Deliveries in flight (connecting or writing), per core.
pub const DELIVERIES_IN_FLIGHT: &str = "crnp_deliveries_in_flight";
/// Registration connections open, per core.
pub const REGISTRATION_CONNECTIONS: &str = "crnp_registration_connections";
/// Registration connections turned away at the per-core limit.
pub const CONNECTIONS_REJECTED: &str = "crnp_registration_connections_rejected_total";
/// Open file descriptors of the process.
pub const OPEN_FDS: &str = "crnp_open_fds";
/// Requests that shared one registry commit.
pub const COMMIT_BATCH: &str = "crnp_registry_commit_batch_size";
/// Duration of one durable registry commit.
pub const COMMIT_SECONDS: &str = "crnp_registry_commit_seconds";

/// Histogram buckets for latencies in seconds: 100 µs to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];
/// Histogram buckets for commit batch sizes.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Counts one registration outcome; `form` is `unknown` when the message did not parse that far.
pub fn registration(form: &'static str, status: &'static str) {
    counter!(REGISTRATIONS, "form" => form, "status" => status).increment(1);
}

/// Sets the number of registered clients.
pub fn clients_registered(count: usize) {
    gauge!(CLIENTS).set(count as f64);
}

/// Counts a removed client.
pub fn client_removed(reason: &'static str) {
    counter!(CLIENTS_REMOVED, "reason" => reason).increment(1);
}

/// Counts published events; each was serialized exactly once.
pub fn events_published(count: usize) {
    counter!(EVENTS_PUBLISHED).increment(count as u64);
    counter!(EVENT_SERIALIZATIONS).increment(count as u64);
}

/// Records one registry commit.
pub fn commit(requests: usize, took: Duration) {
    histogram!(COMMIT_BATCH).record(requests as f64);
    histogram!(COMMIT_SECONDS).record(took.as_secs_f64());
}

/// Counts a registration connection refused at the limit.
pub fn connection_rejected() {
    counter!(CONNECTIONS_REJECTED).increment(1);
}

/// Sets the open file descriptor gauge from /proc.
pub fn sample_open_fds() {
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries while it is read.
        gauge!(OPEN_FDS).set(entries.count().saturating_sub(1) as f64);
    }
}

/// The per-core handles of the delivery path.
#[derive(Debug, Clone)]
pub struct CoreMetrics {
    /// Attempts that completed.
    pub attempts_ok: Counter,
    /// Attempts that failed.
    pub attempts_error: Counter,
    /// Events delivered.
    pub delivered: Counter,
    /// Publish-to-delivery latency.
    pub latency: Histogram,
    /// Deliveries queued on this core.
    pub queued: Gauge,
    /// Deliveries in flight on this core.
    pub in_flight: Gauge,
    /// Registration connections open on this core.
    pub connections: Gauge,
}

impl CoreMetrics {
    /// Handles labelled with the core number (a bounded label set).
    pub fn new(core: usize) -> Self {
        let core = core.to_string();
        CoreMetrics {
            attempts_ok: counter!(DELIVERY_ATTEMPTS, "result" => "ok", "core" => core.clone()),
            attempts_error: counter!(DELIVERY_ATTEMPTS, "result" => "error", "core" => core.clone()),
            delivered: counter!(EVENTS_DELIVERED, "core" => core.clone()),
            latency: histogram!(DELIVERY_LATENCY, "core" => core.clone()),
            queued: gauge!(QUEUED_DELIVERIES, "core" => core.clone()),
            in_flight: gauge!(DELIVERIES_IN_FLIGHT, "core" => core.clone()),
            connections: gauge!(REGISTRATION_CONNECTIONS, "core" => core),
        }
    }

    /// Counts a failed attempt by its cause.
    pub fn failure(&self, cause: &'static str) {
        self.attempts_error.increment(1);
        counter!(DELIVERY_FAILURES, "cause" => cause).increment(1);
    }
}

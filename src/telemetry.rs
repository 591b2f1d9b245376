//! Metric names and recording, in one place, following Prometheus conventions.
//!
//! The control plane installs the Prometheus recorder; until then (tests of pure modules,
//! `crnpd store`), recording is a no-op. Once it is installed, [`describe`] gives every metric
//! its HELP text and creates every series whose labels are known up front, so a scrape right
//! after start-up already shows all of them at 0 (rates and alerts need no "first touch").
//!
//! Hot-path metrics are per-core handles created once ([`CoreMetrics`]), so a delivery costs an
//! atomic add, never a registry lookup or a lock. Labels are bounded: `core` (the number of
//! data-plane threads), and fixed enumerations (`result`, `cause`, `form`, `status`, `reason`);
//! never a client address.

use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

use crate::delivery::{FailureCause, Shortage};
use crate::protocol::{RegType, StatusCode};
use crate::registry::RemovalReason;

/// Events accepted by the publish API (counted once durable).
pub const EVENTS_PUBLISHED: &str = "crnp_events_published_total";
/// SC_EVENT serializations: one per published event, never one per subscriber.
pub const EVENT_SERIALIZATIONS: &str = "crnp_event_serializations_total";
/// Delivery attempts by result (`ok`, `error`) and core.
pub const DELIVERY_ATTEMPTS: &str = "crnp_delivery_attempts_total";
/// Failed delivery attempts by cause (see [`FailureCause`]) and core.
pub const DELIVERY_FAILURES: &str = "crnp_delivery_failures_total";
/// Events delivered (an attempt that completed), by core.
pub const EVENTS_DELIVERED: &str = "crnp_events_delivered_total";
/// Publish accepted to delivery complete, by core.
pub const DELIVERY_LATENCY: &str = "crnp_delivery_latency_seconds";
/// Registration messages by form and reply status.
pub const REGISTRATIONS: &str = "crnp_registrations_total";
/// Registered clients.
pub const CLIENTS: &str = "crnp_clients";
/// Clients removed, by reason (see [`RemovalReason`]).
pub const CLIENTS_REMOVED: &str = "crnp_clients_removed_total";
/// Deliveries waiting in client queues (including the one in flight), per core.
pub const QUEUED_DELIVERIES: &str = "crnp_queued_deliveries";
/// Deliveries in flight (connecting or writing), per core.
pub const DELIVERIES_IN_FLIGHT: &str = "crnp_deliveries_in_flight";
/// Commands (client changes, events, snapshots) waiting in a core's inbox, per core.
pub const CORE_INBOX: &str = "crnp_core_inbox_commands";
/// Registration connections open, per core.
pub const REGISTRATION_CONNECTIONS: &str = "crnp_registration_connections";
/// Registration connections turned away at the per-core limit.
pub const CONNECTIONS_REJECTED: &str = "crnp_registration_connections_rejected_total";
/// Requests waiting for the registry thread.
pub const REGISTRY_QUEUE: &str = "crnp_registry_requests_queued";
/// Requests that shared one registry commit.
pub const COMMIT_BATCH: &str = "crnp_registry_commit_batch_size";
/// Duration of one durable registry commit.
pub const COMMIT_SECONDS: &str = "crnp_registry_commit_seconds";
/// Registry commits that failed (their whole batch was refused).
pub const COMMIT_ERRORS: &str = "crnp_registry_commit_errors_total";
/// Delivery attempts put off because crnpd itself ran short (descriptors, memory, socket
/// buffers, local ports), by resource (see [`Shortage`]) and core; never counted against a client.
pub const LOCAL_SHORTAGES: &str = "crnp_local_shortages_total";
/// Deliveries one core may have in flight at once: its share of the descriptor budget.
pub const DELIVERY_SLOTS: &str = "crnp_delivery_slots";
/// Latest states held (one per event type and resource; bounded by `--max-latest-states`).
pub const LATEST_STATES: &str = "crnp_latest_states";
/// Latest states forgotten because the table was full (the oldest goes first).
pub const LATEST_EVICTED: &str = "crnp_latest_states_evicted_total";
/// HTTP connections open on the control plane.
pub const HTTP_CONNECTIONS: &str = "crnp_http_connections";
/// HTTP connections turned away at `--max-http-connections`.
pub const HTTP_CONNECTIONS_REJECTED: &str = "crnp_http_connections_rejected_total";
/// Open file descriptors of the process.
pub const OPEN_FDS: &str = "crnp_open_fds";
/// The process's file descriptor limit (RLIMIT_NOFILE, soft).
pub const MAX_FDS: &str = "crnp_max_fds";
/// 1 while this instance is active (holds the store and serves), 0 as a standby or stopping.
pub const ACTIVE: &str = "crnp_active";
/// Always 1; the `version` label names the running build.
pub const BUILD_INFO: &str = "crnp_build_info";

/// Gauge: entries the event log retains.
pub const LOG_ENTRIES: &str = "crnp_log_entries";
/// Gauge: bytes of the `SC_EVENT` documents the event log retains.
pub const LOG_BYTES: &str = "crnp_log_bytes";
/// Gauge: the oldest sequence number the event log retains (the next one when it is empty).
pub const LOG_OLDEST: &str = "crnp_log_oldest_seq";
/// Counter: deliveries queued from the event log at start-up (after a crash, a stop or a takeover).
pub const LOG_RECOVERED: &str = "crnp_log_recovered_deliveries_total";
/// Counter: clients given the latest-state resync at start-up because the log no longer held
/// events after their cursor.
pub const LOG_RESYNCED: &str = "crnp_log_resynced_clients_total";
/// Counter: clients whose cursor retention passed while they were registered.
pub const LOG_OVERRUN: &str = "crnp_log_cursors_overrun_total";
/// Counter: commits that wrote cursors.
pub const CURSOR_BATCHES: &str = "crnp_cursor_write_batches_total";
/// Gauge: clients with a cursor row of their own (behind or ahead of the floor).
pub const CURSOR_ROWS: &str = "crnp_cursor_rows";

/// Every metric crnpd exports, as named in the exposition (histograms without the
/// `_bucket`/`_sum`/`_count` suffixes).
pub const ALL_METRICS: &[&str] = &[
    EVENTS_PUBLISHED,
    EVENT_SERIALIZATIONS,
    DELIVERY_ATTEMPTS,
    DELIVERY_FAILURES,
    EVENTS_DELIVERED,
    DELIVERY_LATENCY,
    REGISTRATIONS,
    CLIENTS,
    CLIENTS_REMOVED,
    QUEUED_DELIVERIES,
    DELIVERIES_IN_FLIGHT,
    CORE_INBOX,
    REGISTRATION_CONNECTIONS,
    CONNECTIONS_REJECTED,
    REGISTRY_QUEUE,
    COMMIT_BATCH,
    COMMIT_SECONDS,
    COMMIT_ERRORS,
    LOCAL_SHORTAGES,
    DELIVERY_SLOTS,
    LATEST_STATES,
    LATEST_EVICTED,
    HTTP_CONNECTIONS,
    HTTP_CONNECTIONS_REJECTED,
    OPEN_FDS,
    MAX_FDS,
    ACTIVE,
    BUILD_INFO,
    LOG_ENTRIES,
    LOG_BYTES,
    LOG_OLDEST,
    LOG_RECOVERED,
    LOG_RESYNCED,
    LOG_OVERRUN,
    CURSOR_BATCHES,
    CURSOR_ROWS,
];

/// The `form` label of [`REGISTRATIONS`] for a message that did not parse far enough.
pub const UNKNOWN_FORM: &str = "unknown";

/// Histogram buckets for latencies in seconds: 100 µs to 30 min, so that a delivery that
/// needed retries (attempts are `--client-retry-interval / --client-retry-count` apart, 10 min
/// by default) still lands in a bucket of its own rather than in `+Inf`.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
];
/// Histogram buckets for commit batch sizes.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Gives every metric its HELP text and creates the series known up front, at 0.
///
/// Call once, right after the recorder is installed. Per-core series are created by
/// [`register_cores`] once the number of cores is known.
pub fn describe() {
    describe_counter!(
        EVENTS_PUBLISHED,
        "Events accepted by the publish API and made durable."
    );
    describe_counter!(
        EVENT_SERIALIZATIONS,
        "SC_EVENT serializations; one per published event, shared by every subscriber, so it equals crnp_events_published_total."
    );
    describe_counter!(
        DELIVERY_ATTEMPTS,
        "Delivery attempts (one outbound connection each), by result (ok, error) and core."
    );
    describe_counter!(
        DELIVERY_FAILURES,
        "Failed delivery attempts by cause (refused, timeout, reset, other) and core."
    );
    describe_counter!(
        EVENTS_DELIVERED,
        "Events delivered to a subscriber (an attempt that completed), by core."
    );
    describe_histogram!(
        DELIVERY_LATENCY,
        "Seconds from the publish being accepted to the delivery completing (retries included), by core."
    );
    describe_counter!(
        REGISTRATIONS,
        "Registration messages answered, by form (ADD_CLIENT, ADD_EVENTS, REMOVE_EVENTS, REMOVE_CLIENT, unknown) and SC_REPLY status."
    );
    describe_gauge!(CLIENTS, "Registered clients.");
    describe_counter!(
        CLIENTS_REMOVED,
        "Clients removed, by reason (unreachable, queue_overflow, admin, remove_client)."
    );
    describe_gauge!(
        QUEUED_DELIVERIES,
        "Deliveries waiting in client queues, the one in flight included, per core."
    );
    describe_gauge!(
        DELIVERIES_IN_FLIGHT,
        "Delivery attempts in progress (connecting or writing), per core."
    );
    describe_gauge!(
        CORE_INBOX,
        "Commands (client changes, events, snapshots) waiting for a core's thread; growth means the core is stuck or overloaded."
    );
    describe_gauge!(
        REGISTRATION_CONNECTIONS,
        "Registration connections open, per core."
    );
    describe_counter!(
        CONNECTIONS_REJECTED,
        "Registration connections answered LOW_RESOURCE at --max-connections."
    );
    describe_gauge!(
        REGISTRY_QUEUE,
        "Requests (registrations, publishes, removals) waiting for the registry thread; growth means commits are slow."
    );
    describe_histogram!(
        COMMIT_BATCH,
        "Requests that shared one durable registry commit (group commit)."
    );
    describe_histogram!(COMMIT_SECONDS, "Seconds one durable registry commit took.");
    describe_counter!(
        COMMIT_ERRORS,
        "Registry commits that failed; every request of the batch was refused."
    );
    describe_gauge!(OPEN_FDS, "Open file descriptors of the crnpd process.");
    describe_gauge!(
        MAX_FDS,
        "The crnpd process's soft limit on open file descriptors."
    );
    describe_gauge!(
        ACTIVE,
        "1 while this instance holds the store and serves, 0 as a standby or while stopping."
    );
    describe_counter!(
        LOCAL_SHORTAGES,
        "Delivery attempts put off because crnpd itself ran short (descriptors, memory, buffers, ports), by resource and core; never counted against a client."
    );
    describe_gauge!(
        DELIVERY_SLOTS,
        "Deliveries one core may have in flight at once: its share of the descriptor budget."
    );
    describe_gauge!(
        LATEST_STATES,
        "Latest states held, one per class, subclass and resource or group (bounded by --max-latest-states)."
    );
    describe_counter!(
        LATEST_EVICTED,
        "Latest states forgotten because the table was full; the one whose latest event is the oldest goes first."
    );
    describe_gauge!(
        HTTP_CONNECTIONS,
        "HTTP connections open on the control plane."
    );
    describe_counter!(
        HTTP_CONNECTIONS_REJECTED,
        "HTTP connections answered 503 and closed at --max-http-connections."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label names the running crnpd build."
    );
    describe_gauge!(LOG_ENTRIES, "Entries the event log retains.");
    describe_gauge!(
        LOG_BYTES,
        "Bytes of SC_EVENT documents the event log retains."
    );
    describe_gauge!(
        LOG_OLDEST,
        "The oldest sequence number the event log retains (the next one when it is empty)."
    );
    describe_counter!(
        LOG_RECOVERED,
        "Deliveries queued from the event log at start-up."
    );
    describe_counter!(
        LOG_RESYNCED,
        "Clients given the latest-state resync at start-up because the log no longer held events after their cursor."
    );
    describe_counter!(
        LOG_OVERRUN,
        "Clients whose cursor log retention passed (--log-retention-events, --log-retention-bytes)."
    );
    describe_counter!(
        CURSOR_BATCHES,
        "Registry commits that wrote client cursors."
    );
    describe_gauge!(
        CURSOR_ROWS,
        "Clients whose cursor is a row of its own rather than the shared floor."
    );

    counter!(EVENTS_PUBLISHED).absolute(0);
    counter!(EVENT_SERIALIZATIONS).absolute(0);
    for form in RegType::ALL.map(RegType::as_str) {
        for status in [
            StatusCode::Ok,
            StatusCode::Fail,
            StatusCode::LowResource,
            StatusCode::SystemError,
        ] {
            counter!(REGISTRATIONS, "form" => form, "status" => status.as_str()).absolute(0);
        }
    }
    for status in [
        StatusCode::Malformed,
        StatusCode::Invalid,
        StatusCode::VersionTooHigh,
        StatusCode::VersionTooLow,
        StatusCode::LowResource,
    ] {
        counter!(REGISTRATIONS, "form" => UNKNOWN_FORM, "status" => status.as_str()).absolute(0);
    }
    gauge!(CLIENTS).set(0.0);
    for reason in RemovalReason::ALL {
        counter!(CLIENTS_REMOVED, "reason" => reason.label()).absolute(0);
    }
    gauge!(LATEST_STATES).set(0.0);
    counter!(LATEST_EVICTED).absolute(0);
    gauge!(HTTP_CONNECTIONS).set(0.0);
    counter!(HTTP_CONNECTIONS_REJECTED).absolute(0);
    counter!(CONNECTIONS_REJECTED).absolute(0);
    gauge!(REGISTRY_QUEUE).set(0.0);
    let _ = histogram!(COMMIT_BATCH);
    let _ = histogram!(COMMIT_SECONDS);
    counter!(COMMIT_ERRORS).absolute(0);
    gauge!(LOG_ENTRIES).set(0.0);
    gauge!(LOG_BYTES).set(0.0);
    gauge!(LOG_OLDEST).set(0.0);
    counter!(LOG_RECOVERED).absolute(0);
    counter!(LOG_RESYNCED).absolute(0);
    counter!(LOG_OVERRUN).absolute(0);
    counter!(CURSOR_BATCHES).absolute(0);
    gauge!(CURSOR_ROWS).set(0.0);
    set_active(false);
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    sample_process();
}

/// Creates every per-core series of `cores` cores at 0, before the core threads start, so
/// a scrape right after the ready line already shows all of them.
pub fn register_cores(cores: usize) {
    for core in 0..cores {
        drop(CoreMetrics::new(core));
    }
}

/// Counts one registration outcome; `form` is [`UNKNOWN_FORM`] when the message did not parse that far.
pub fn registration(form: &'static str, status: &'static str) {
    counter!(REGISTRATIONS, "form" => form, "status" => status).increment(1);
}

/// Sets the number of registered clients.
pub fn clients_registered(count: usize) {
    gauge!(CLIENTS).set(count as f64);
}

/// Counts a removed client.
pub fn client_removed(reason: RemovalReason) {
    counter!(CLIENTS_REMOVED, "reason" => reason.label()).increment(1);
}

/// Counts published events, once durable.
pub fn events_published(count: usize) {
    counter!(EVENTS_PUBLISHED).increment(count as u64);
}

/// Counts one SC_EVENT serialization, where it happens.
pub fn event_serialized() {
    counter!(EVENT_SERIALIZATIONS).increment(1);
}

/// Sets the number of latest states held and counts those just forgotten.
pub fn latest_states(held: usize, evicted: usize) {
    gauge!(LATEST_STATES).set(held as f64);
    counter!(LATEST_EVICTED).increment(evicted as u64);
}

/// Sets the event log's size: entries, bytes and the oldest retained sequence number.
pub fn event_log(entries: u64, bytes: u64, oldest: u64) {
    gauge!(LOG_ENTRIES).set(entries as f64);
    gauge!(LOG_BYTES).set(bytes as f64);
    gauge!(LOG_OLDEST).set(oldest as f64);
}

/// Counts what a start recovered: deliveries from the log, and clients resynced instead.
pub fn log_recovered(deliveries: usize, resynced: usize) {
    counter!(LOG_RECOVERED).increment(deliveries as u64);
    counter!(LOG_RESYNCED).increment(resynced as u64);
}

/// Counts clients whose cursor retention just passed.
pub fn cursors_overrun(clients: usize) {
    counter!(LOG_OVERRUN).increment(clients as u64);
}

/// Counts a commit that wrote cursors, and sets how many clients have a row.
pub fn cursor_batch(rows: usize) {
    counter!(CURSOR_BATCHES).increment(1);
    gauge!(CURSOR_ROWS).set(rows as f64);
}

/// Sets the number of open HTTP connections.
pub fn http_connections(open: usize) {
    gauge!(HTTP_CONNECTIONS).set(open as f64);
}

/// Counts an HTTP connection turned away at the limit.
pub fn http_connection_rejected() {
    counter!(HTTP_CONNECTIONS_REJECTED).increment(1);
}

/// Records one registry commit.
pub fn commit(requests: usize, took: Duration) {
    histogram!(COMMIT_BATCH).record(requests as f64);
    histogram!(COMMIT_SECONDS).record(took.as_secs_f64());
}

/// Counts a failed registry commit.
pub fn commit_failed() {
    counter!(COMMIT_ERRORS).increment(1);
}

/// Counts a registration connection refused at the limit.
pub fn connection_rejected() {
    counter!(CONNECTIONS_REJECTED).increment(1);
}

/// Sets whether this instance is the active one.
pub fn set_active(active: bool) {
    gauge!(ACTIVE).set(if active { 1.0 } else { 0.0 });
}

/// Sets the queue gauges sampled at scrape time: each core's inbox and the registry's.
pub fn sample_queues(core_inboxes: &[usize], registry_requests: usize) {
    for (core, depth) in core_inboxes.iter().enumerate() {
        gauge!(CORE_INBOX, "core" => core.to_string()).set(*depth as f64);
    }
    gauge!(REGISTRY_QUEUE).set(registry_requests as f64);
}

/// Sets the file descriptor gauges from /proc and getrlimit.
pub fn sample_process() {
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries while it is read.
        gauge!(OPEN_FDS).set(entries.count().saturating_sub(1) as f64);
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one `rlimit` into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } == 0 {
        gauge!(MAX_FDS).set(limit.rlim_cur as f64);
    }
}

/// The per-core handles of the delivery path.
#[derive(Debug, Clone)]
pub struct CoreMetrics {
    /// Attempts that completed.
    pub attempts_ok: Counter,
    /// Attempts that failed.
    pub attempts_error: Counter,
    /// Failed attempts by cause, in the order of [`FailureCause::ALL`].
    failures: [Counter; FailureCause::ALL.len()],
    /// Attempts put off by a shortage of crnpd's own, in the order of [`Shortage::ALL`].
    shortages: [Counter; Shortage::ALL.len()],
    /// Deliveries this core may have in flight.
    pub slots: Gauge,
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
    /// Handles labelled with the core number (a bounded label set); every series starts at 0.
    pub fn new(core: usize) -> Self {
        let core = core.to_string();
        let metrics = CoreMetrics {
            attempts_ok: counter!(DELIVERY_ATTEMPTS, "result" => "ok", "core" => core.clone()),
            attempts_error: counter!(DELIVERY_ATTEMPTS, "result" => "error", "core" => core.clone()),
            failures: FailureCause::ALL.map(|cause| {
                counter!(DELIVERY_FAILURES, "cause" => cause.label(), "core" => core.clone())
            }),
            shortages: Shortage::ALL.map(|shortage| {
                counter!(LOCAL_SHORTAGES, "resource" => shortage.label(), "core" => core.clone())
            }),
            slots: gauge!(DELIVERY_SLOTS, "core" => core.clone()),
            delivered: counter!(EVENTS_DELIVERED, "core" => core.clone()),
            latency: histogram!(DELIVERY_LATENCY, "core" => core.clone()),
            queued: gauge!(QUEUED_DELIVERIES, "core" => core.clone()),
            in_flight: gauge!(DELIVERIES_IN_FLIGHT, "core" => core.clone()),
            connections: gauge!(REGISTRATION_CONNECTIONS, "core" => core.clone()),
        };
        gauge!(CORE_INBOX, "core" => core).set(0.0);
        metrics
    }

    /// Counts a failed attempt by its cause.
    pub fn failure(&self, cause: FailureCause) {
        self.attempts_error.increment(1);
        self.failures[cause as usize].increment(1);
    }

    /// Counts an attempt put off by a shortage of crnpd's own.
    pub fn shortage(&self, shortage: Shortage) {
        self.shortages[shortage as usize].increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        for name in ALL_METRICS {
            assert!(name.starts_with("crnp_"), "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            for suffix in ["_bucket", "_sum", "_count"] {
                assert!(
                    !name.ends_with(suffix),
                    "{name} would clash with a histogram series"
                );
            }
        }
        let counters = [
            EVENTS_PUBLISHED,
            EVENT_SERIALIZATIONS,
            DELIVERY_ATTEMPTS,
            DELIVERY_FAILURES,
            EVENTS_DELIVERED,
            REGISTRATIONS,
            CLIENTS_REMOVED,
            CONNECTIONS_REJECTED,
            COMMIT_ERRORS,
            LOCAL_SHORTAGES,
            LATEST_EVICTED,
            HTTP_CONNECTIONS_REJECTED,
            LOG_RECOVERED,
            LOG_RESYNCED,
            LOG_OVERRUN,
            CURSOR_BATCHES,
        ];
        for name in ALL_METRICS {
            assert_eq!(
                name.ends_with("_total"),
                counters.contains(name),
                "{name}: _total exactly on counters"
            );
        }
    }

    #[test]
    fn every_cause_and_shortage_indexes_its_own_series() {
        for (index, cause) in FailureCause::ALL.into_iter().enumerate() {
            assert_eq!(cause as usize, index, "{cause}");
        }
        for (index, shortage) in Shortage::ALL.into_iter().enumerate() {
            assert_eq!(shortage as usize, index, "{shortage}");
        }
    }
}

//! The report: one entry per subscriber count, as a table for people and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::hostile::HostileReport;

use crate::procstat::TcpCounters;
use crate::stats::LatencySummary;
use crate::verify::Counts;

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// The run's unique tag (part of every event subclass).
    pub(crate) run_id: String,
    /// The open-files limit the run had.
    pub(crate) nofile_limit: u64,
    /// One entry per subscriber count.
    pub(crate) points: Vec<PointReport>,
}

/// One subscriber count.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct PointReport {
    /// Subscribers started.
    pub(crate) subscribers: usize,
    /// Events published per phase.
    pub(crate) events: u64,
    /// Sockets in TIME_WAIT on the host when the point started (the kernel's state matters).
    pub(crate) time_wait_at_start: Option<u64>,
    /// The crnpd phase, when measured.
    pub(crate) crnpd: Option<CrnpdPhase>,
    /// The plain blaster's phase (closes right after writing), when measured.
    pub(crate) limit: Option<LimitPhase>,
    /// The await-eof blaster's phase (crnpd's full-duplex close), when measured.
    pub(crate) limit_await_eof: Option<LimitPhase>,
    /// crnpd's deliveries/s divided by the plain blaster's.
    pub(crate) fraction_of_limit: Option<f64>,
    /// crnpd's deliveries/s divided by the await-eof blaster's.
    pub(crate) fraction_of_await_eof: Option<f64>,
    /// The hostile load held through the run, when asked for.
    pub(crate) hostile: Option<HostileReport>,
    /// The --crash-every rounds, in order (empty without crashes).
    pub(crate) crash_rounds: Vec<CrashRound>,
}

/// Registrations.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Registrations {
    /// Answered OK.
    pub(crate) ok: u64,
    /// Answered with another status, by status.
    pub(crate) refused: BTreeMap<String, u64>,
    /// No answer (connect, I/O, timeout, unparseable reply).
    pub(crate) errors: u64,
    /// The first refusal or error, to show the operator.
    pub(crate) first_problem: Option<String>,
    /// Wall time of all of them.
    pub(crate) seconds: f64,
    /// Registrations (of any outcome) per second.
    pub(crate) per_sec: f64,
}

/// Deliveries of one phase.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Deliveries {
    /// Verification counts summed over subscribers.
    #[serde(flatten)]
    pub(crate) counts: Counts,
    /// Deliveries of an earlier phase that arrived late.
    pub(crate) stale: u64,
    /// Deliveries that could not be read or parsed.
    pub(crate) bad: u64,
    /// The first bad delivery's reason.
    pub(crate) first_bad: Option<String>,
    /// From the first send to the last first receipt.
    pub(crate) seconds: f64,
    /// Distinct deliveries per second over `seconds`.
    pub(crate) per_sec: f64,
    /// The load tool's own CPU per delivery (sinks, and the publisher in the crnpd phase), µs.
    pub(crate) sink_cpu_us_per_delivery: Option<f64>,
    /// What the kernel's TCP counters did during the phase (whole network namespace).
    pub(crate) kernel: TcpCounters,
}

/// The crnpd phase.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct CrnpdPhase {
    /// Registration results.
    pub(crate) registrations: Registrations,
    /// Publish requests that failed, and the first reason.
    pub(crate) publish_errors: u64,
    /// The first publish failure.
    pub(crate) first_publish_error: Option<String>,
    /// Wall time of publishing all events.
    pub(crate) publish_seconds: f64,
    /// Events accepted per second.
    pub(crate) publish_per_sec: f64,
    /// Delivery results.
    pub(crate) deliveries: Deliveries,
    /// Publish-to-delivery latency.
    pub(crate) latency: LatencySummary,
    /// crnpd's CPU while registering (s).
    pub(crate) server_cpu_registration_s: Option<f64>,
    /// crnpd's CPU from the first publish to the last delivery (s).
    pub(crate) server_cpu_delivery_s: Option<f64>,
    /// crnpd's CPU per delivery, µs.
    pub(crate) server_cpu_us_per_delivery: Option<f64>,
    /// crnpd's peak resident memory (VmHWM), MiB.
    pub(crate) server_peak_rss_mib: Option<f64>,
}

/// One kill -9 and restart of `--crash-every`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct CrashRound {
    /// Events acknowledged before the kill.
    pub(crate) after_event: u64,
    /// The seeded delay between that acknowledgement and the kill.
    pub(crate) kill_delay_ms: u64,
    /// From the kill until the new crnpd was ready.
    pub(crate) restart_seconds: f64,
    /// Duplicate deliveries that arrived from this kill until the next (or the end).
    pub(crate) duplicates: u64,
}

/// The blaster phase.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct LimitPhase {
    /// Delivery results at the sinks.
    pub(crate) deliveries: Deliveries,
    /// Deliveries the blaster could not complete, and the first reason.
    pub(crate) send_errors: u64,
    /// The first failed send.
    pub(crate) first_send_error: Option<String>,
    /// Connections kept in flight.
    pub(crate) concurrency: usize,
    /// Threads the blaster ran on.
    pub(crate) threads: usize,
    /// Bytes per delivery.
    pub(crate) payload_bytes: usize,
    /// The blaster's CPU per delivery, µs.
    pub(crate) blaster_cpu_us_per_delivery: Option<f64>,
}

impl Report {
    /// True when every crnpd-phase delivery arrived once and in order.
    pub(crate) fn is_clean(&self) -> bool {
        self.points.iter().all(|point| {
            point.crnpd.as_ref().is_none_or(|c| {
                let counts = &c.deliveries.counts;
                // After a crash, duplicates are expected; missing or reordered events never.
                let delivered = if point.crash_rounds.is_empty() {
                    counts.is_clean()
                } else {
                    counts.missing == 0 && counts.reordered == 0 && counts.unexpected == 0
                };
                delivered && c.registrations.errors == 0 && c.registrations.refused.is_empty()
            })
        })
    }

    /// The human-readable table, one row per subscriber count, then notes on problems.
    pub(crate) fn table(&self) -> String {
        let header = [
            "subs",
            "reg/s",
            "deliv/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "miss",
            "dup",
            "reord",
            "unexp",
            "srv µs/d",
            "srv MiB",
            "limit/s",
            "blast µs/d",
            "of limit",
            "eof/s",
            "eof µs/d",
            "of eof",
        ];
        let rows: Vec<Vec<String>> = self.points.iter().map(row).collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let text: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, &w)| format!("{c:>w$}"))
                .collect();
            let _ = writeln!(out, "{}", text.join("  "));
        };
        line(&mut out, &header.map(String::from));
        for row in &rows {
            line(&mut out, row);
        }
        for point in &self.points {
            if let Some(h) = &point.hostile {
                let dash = || "-".to_owned();
                let fds = |v: Option<u64>| v.map_or_else(dash, |v| v.to_string());
                let mib = |v: Option<f64>| v.map_or_else(dash, |v| format!("{v:.1}"));
                let _ = writeln!(
                    out,
                    "{} subscribers: held {} idle HTTP and {} slowloris connections ({} could not connect); crnpd descriptors {} before, {} after; RSS {} MiB before, {} MiB after",
                    point.subscribers,
                    h.http_opened,
                    h.slowloris_opened,
                    h.connect_errors,
                    fds(h.fds_before),
                    fds(h.fds_after),
                    mib(h.rss_before_mib),
                    mib(h.rss_after_mib),
                );
            }
            for note in notes(point) {
                let _ = writeln!(out, "{} subscribers: {note}", point.subscribers);
            }
        }
        out
    }
}

/// One table row; `-` where a figure was not measured.
fn row(point: &PointReport) -> Vec<String> {
    let dash = || "-".to_owned();
    let num = |v: Option<f64>, digits: usize| v.map_or_else(dash, |v| format!("{v:.digits$}"));
    let crnpd = point.crnpd.as_ref();
    let counts = crnpd.map(|c| c.deliveries.counts);
    let latency = crnpd.map(|c| c.latency);
    let count = |f: fn(&Counts) -> u64| counts.as_ref().map_or_else(dash, |c| f(c).to_string());
    vec![
        point.subscribers.to_string(),
        num(crnpd.map(|c| c.registrations.per_sec), 0),
        num(crnpd.map(|c| c.deliveries.per_sec), 0),
        num(latency.map(|l| l.p50_ms), 1),
        num(latency.map(|l| l.p90_ms), 1),
        num(latency.map(|l| l.p99_ms), 1),
        num(latency.map(|l| l.max_ms), 1),
        count(|c| c.missing),
        count(|c| c.duplicate),
        count(|c| c.reordered),
        count(|c| c.unexpected),
        num(crnpd.and_then(|c| c.server_cpu_us_per_delivery), 1),
        num(crnpd.and_then(|c| c.server_peak_rss_mib), 1),
        num(point.limit.as_ref().map(|l| l.deliveries.per_sec), 0),
        num(
            point
                .limit
                .as_ref()
                .and_then(|l| l.blaster_cpu_us_per_delivery),
            1,
        ),
        percent(point.fraction_of_limit),
        num(
            point.limit_await_eof.as_ref().map(|l| l.deliveries.per_sec),
            0,
        ),
        num(
            point
                .limit_await_eof
                .as_ref()
                .and_then(|l| l.blaster_cpu_us_per_delivery),
            1,
        ),
        percent(point.fraction_of_await_eof),
    ]
}

/// A fraction as a whole percentage; `-` when not measured.
fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "-".to_owned(), |f| format!("{:.0}%", f * 100.0))
}

/// What went wrong at one point, one sentence each.
fn notes(point: &PointReport) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(c) = &point.crnpd {
        let r = &c.registrations;
        if r.errors > 0 || !r.refused.is_empty() {
            notes.push(format!(
                "{} registrations failed, refused: {:?}; first: {}",
                r.errors,
                r.refused,
                r.first_problem.as_deref().unwrap_or("-")
            ));
        }
        if c.publish_errors > 0 {
            notes.push(format!(
                "{} publish requests failed; first: {}",
                c.publish_errors,
                c.first_publish_error.as_deref().unwrap_or("-")
            ));
        }
        delivery_notes("crnpd", &c.deliveries, &mut notes);
    }
    if !point.crash_rounds.is_empty() {
        let rounds: Vec<String> = point
            .crash_rounds
            .iter()
            .map(|r| {
                format!(
                    "after event {} (+{} ms): {} duplicates, ready again in {:.2} s",
                    r.after_event, r.kill_delay_ms, r.duplicates, r.restart_seconds
                )
            })
            .collect();
        notes.push(format!(
            "{} kill -9 rounds: {}",
            point.crash_rounds.len(),
            rounds.join("; ")
        ));
    }
    for (name, limit) in [
        ("blaster", &point.limit),
        ("await-eof blaster", &point.limit_await_eof),
    ] {
        if let Some(l) = limit {
            if l.send_errors > 0 {
                notes.push(format!(
                    "{name}: {} sends failed; first: {}",
                    l.send_errors,
                    l.first_send_error.as_deref().unwrap_or("-")
                ));
            }
            delivery_notes(name, &l.deliveries, &mut notes);
        }
    }
    notes
}

/// Notes on verification problems of one phase.
fn delivery_notes(phase: &str, d: &Deliveries, notes: &mut Vec<String>) {
    let c = &d.counts;
    if !c.is_clean() {
        notes.push(format!(
            "{phase}: {} of {} expected deliveries missing, {} duplicated, {} reordered, {} unexpected",
            c.missing, c.expected, c.duplicate, c.reordered, c.unexpected
        ));
    }
    if d.bad > 0 {
        notes.push(format!(
            "{phase}: {} bad deliveries; first: {}",
            d.bad,
            d.first_bad.as_deref().unwrap_or("-")
        ));
    }
    let k = &d.kernel;
    if c.missing > 0 && (k.time_wait_overflow > 0 || k.listen_overflows > 0) {
        notes.push(format!(
            "{phase}: the kernel overflowed its TIME_WAIT table {} times (net.ipv4.tcp_max_tw_buckets) and \
             accept queues {} times, and counted {} resets of established connections: a sender that \
             closes at once loses deliveries its receiver has not read yet when that happens",
            k.time_wait_overflow, k.listen_overflows, k.estab_resets
        ));
    }
    if d.stale > 0 {
        notes.push(format!(
            "{phase}: {} deliveries of an earlier phase arrived late",
            d.stale
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_a_row_per_point_and_notes_problems() {
        let mut crnpd = CrnpdPhase::default();
        crnpd.deliveries.counts = Counts {
            expected: 10,
            delivered: 9,
            missing: 1,
            ..Counts::default()
        };
        crnpd.deliveries.per_sec = 1234.4;
        let report = Report {
            run_id: "r".into(),
            nofile_limit: 1024,
            points: vec![
                PointReport {
                    subscribers: 10,
                    crnpd: Some(crnpd),
                    fraction_of_limit: Some(0.5),
                    ..Default::default()
                },
                PointReport {
                    subscribers: 100,
                    ..Default::default()
                },
            ],
        };
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].trim_start().starts_with("subs"));
        assert!(
            lines[1].contains("1234") && lines[1].contains("50%") && lines[1].ends_with('-'),
            "{table}"
        );
        assert!(lines[2].trim_start().starts_with("100") && lines[2].ends_with('-'));
        assert!(
            lines[3].contains("1 of 10 expected deliveries missing"),
            "{table}"
        );
        assert!(!report.is_clean());
    }
}

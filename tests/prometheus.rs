//! Guards crnpd's `/metrics` against the real Prometheus tools, not a hand-written parser:
//! `promtool check metrics` finds no problem in a scrape taken after real traffic, and a real
//! Prometheus server scraping crnpd reports, through its query API, exactly the events the test
//! published and delivered, and runs every query of the Grafana dashboard without error.
//!
//! Both tools come from Debian's `prometheus` package (`scripts/install-test-deps`); when
//! they are missing these tests fail and say so, they never skip.

mod common;
mod observe;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use observe::*;

/// Registers `subscribers` for membership events and publishes `events` of them; returns the
/// subscribers after every delivery arrived.
fn workload(crnpd: &Crnpd, first_ip: u8, subscribers: usize, events: usize) -> Vec<Subscriber> {
    let membership = event_type("EC_Cluster", Some("ESC_cluster_membership"), &[]);
    let subs: Vec<Subscriber> = (0..subscribers)
        .map(|i| Subscriber::listen(ip(first_ip + i as u8)))
        .collect();
    for sub in &subs {
        let status = crnpd.register(sub.addr.ip(), &reg("ADD_CLIENT", sub.port(), &membership));
        assert_eq!(status, "OK");
    }
    for n in 0..events {
        let event = json_event(
            "EC_Cluster",
            "ESC_cluster_membership",
            &[("node_list", &format!("n{n}"))],
        );
        let (status, body) = crnpd.publish_json(&event);
        assert_eq!(status, 202, "{body}");
    }
    for sub in &subs {
        sub.take(events);
    }
    let deliveries = (subscribers * events) as f64;
    crnpd.wait_metric("crnp_events_delivered_total", &[], |v| v == deliveries);
    subs
}

#[test]
fn promtool_finds_no_problem_in_a_real_scrape() {
    let promtool = require("promtool");
    let crnpd = Crnpd::start(&QUICK_RETRIES);
    let _subs = workload(&crnpd, 40, 2, 3);
    // A refused registration and a dead subscriber, so error series carry values too.
    assert_eq!(
        crnpd.register(ip(43), &reg("REMOVE_CLIENT", 7201, "")),
        "FAIL"
    );
    let dead = dead_port(ip(44));
    let membership = event_type("EC_Cluster", Some("ESC_cluster_membership"), &[]);
    assert_eq!(
        crnpd.register(ip(44), &reg("ADD_CLIENT", dead, &membership)),
        "OK"
    );
    crnpd.wait_metric(
        "crnp_clients_removed_total",
        &["reason=\"unreachable\""],
        |v| v == 1.0,
    );

    let (status, text) = http(crnpd.http, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = check.wait_with_output().expect("promtool finishes");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}) says:\n{said}\non:\n{text}",
        output.status
    );
}

#[test]
fn a_real_prometheus_sees_exactly_what_happened() {
    const SUBSCRIBERS: usize = 3;
    const EVENTS: usize = 5;
    let crnpd = Crnpd::start(&[]);
    let prometheus = Prometheus::start(crnpd.http);
    prometheus
        .wait_value("up{job=\"crnpd\"}", 1.0)
        .unwrap_or_else(|seen| {
            panic!(
                "crnpd is not up in Prometheus ({seen:?}); log:\n{}",
                prometheus.log()
            )
        });

    let _subs = workload(&crnpd, 50, SUBSCRIBERS, EVENTS);

    let checks = [
        ("crnp_events_published_total", EVENTS as f64),
        (
            "sum(crnp_events_delivered_total)",
            (SUBSCRIBERS * EVENTS) as f64,
        ),
        ("crnp_event_serializations_total", EVENTS as f64),
        (
            "sum(crnp_registrations_total{form=\"ADD_CLIENT\",status=\"OK\"})",
            SUBSCRIBERS as f64,
        ),
        ("crnp_clients", SUBSCRIBERS as f64),
    ];
    for (promql, want) in checks {
        if let Err(seen) = prometheus.wait_value(promql, want) {
            panic!(
                "Prometheus says {promql} = {seen:?}, the test did {want}; log:\n{}",
                prometheus.log()
            );
        }
    }

    // Prometheus read the HELP and TYPE lines as crnpd meant them.
    let path = "/api/v1/metadata?metric=crnp_delivery_latency_seconds";
    let (status, body) = http(prometheus.addr, "GET", path, None, None);
    assert_eq!(status, 200, "{body}");
    let metadata: serde_json::Value = serde_json::from_str(&body).expect("metadata JSON");
    assert_eq!(
        metadata["data"]["crnp_delivery_latency_seconds"][0]["type"], "histogram",
        "{body}"
    );

    // Every query of the dashboard runs, and the ones about deliveries have data.
    let dashboard = dashboard();
    let mut failed = Vec::new();
    for (title, exprs) in panels(&dashboard) {
        for expr in exprs {
            let answer = prometheus.query(&runnable(&expr));
            if answer["status"] != "success" {
                failed.push(format!("{title}: {expr}: {answer}"));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "dashboard queries Prometheus refused:\n{}",
        failed.join("\n")
    );
    let p99 =
        "histogram_quantile(0.99, sum by (le) (rate(crnp_delivery_latency_seconds_bucket[1m])))";
    let deadline = std::time::Instant::now() + WAIT;
    while prometheus.value(p99).is_none_or(f64::is_nan) {
        assert!(
            std::time::Instant::now() < deadline,
            "no p99 latency from Prometheus after deliveries"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

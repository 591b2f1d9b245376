//! Guards the Grafana dashboard (docs/grafana-dashboard.json) against drifting from crnpd: every
//! metric any panel queries is one a running crnpd exports (checked on a real scrape after a
//! small workload, histogram series included), and the panels operators rely on are there.

mod common;
mod observe;

use common::*;
use observe::*;

#[test]
fn every_metric_the_dashboard_queries_is_exported() {
    let crnpd = Crnpd::start(&[]);
    let subscriber = Subscriber::listen(ip(60));
    let membership = event_type("EC_Cluster", Some("ESC_cluster_membership"), &[]);
    assert_eq!(
        crnpd.register(ip(60), &reg("ADD_CLIENT", subscriber.port(), &membership)),
        "OK"
    );
    let event = json_event(
        "EC_Cluster",
        "ESC_cluster_membership",
        &[("node_list", "n1")],
    );
    assert_eq!(crnpd.publish_json(&event).0, 202);
    subscriber.next();
    crnpd.wait_metric("crnp_delivery_latency_seconds_count", &[], |v| v == 1.0);
    let (status, text) = http(crnpd.http, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let exported = exposed_names(&text);

    let dashboard = dashboard();
    let panels = panels(&dashboard);
    let mut queried = 0;
    let mut missing = Vec::new();
    for (title, exprs) in &panels {
        assert!(!exprs.is_empty(), "panel {title:?} has no query");
        for expr in exprs {
            let names = metric_names(expr);
            assert!(
                !names.is_empty(),
                "panel {title:?} queries no crnp_ metric: {expr}"
            );
            for name in names {
                queried += 1;
                if !exported.contains(&name) {
                    missing.push(format!("{title}: {name} (in {expr})"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics crnpd does not export:\n{}\n\nexported: {exported:?}",
        missing.join("\n")
    );
    assert!(queried >= 12, "only {queried} metric references found");
}

#[test]
fn the_dashboard_has_the_panels_operators_need() {
    let dashboard = dashboard();
    assert_eq!(dashboard["title"], "crnpd");
    let panels = panels(&dashboard);
    let all: String = panels
        .iter()
        .flat_map(|(_, exprs)| exprs.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    let needs = [
        ("deliveries/s", "rate(crnp_events_delivered_total"),
        (
            "attempt errors by cause",
            "sum by (cause) (rate(crnp_delivery_failures_total",
        ),
        (
            "p50 latency",
            "histogram_quantile(0.5, sum by (le) (rate(crnp_delivery_latency_seconds_bucket",
        ),
        (
            "p99 latency",
            "histogram_quantile(0.99, sum by (le) (rate(crnp_delivery_latency_seconds_bucket",
        ),
        ("queued per core", "crnp_queued_deliveries"),
        ("in flight per core", "crnp_deliveries_in_flight"),
        ("clients", "crnp_clients"),
        (
            "registrations by status",
            "sum by (status) (rate(crnp_registrations_total",
        ),
        (
            "removals by reason",
            "sum by (reason) (increase(crnp_clients_removed_total",
        ),
        (
            "commit batch size",
            "crnp_registry_commit_batch_size_bucket",
        ),
        ("commit latency", "crnp_registry_commit_seconds_bucket"),
        ("open fds", "crnp_open_fds"),
        ("stuck core", "crnp_core_inbox_commands"),
    ];
    for (what, expr) in needs {
        assert!(all.contains(expr), "no panel shows {what} ({expr}...)");
    }
    for (title, _) in &panels {
        assert!(
            panels.iter().filter(|(t, _)| t == title).count() == 1,
            "two panels are titled {title:?}"
        );
    }
}

#[test]
fn metric_names_are_found_in_expressions() {
    let names = metric_names(
        "sum by (le) (rate(crnp_a_bucket{job=\"crnp_not_a_metric\"}[1m])) / crnp_b + rate(x[5m])",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["crnp_a_bucket".to_owned(), "crnp_b".to_owned()]
    );
}

//! Guards what `/metrics` tells an operator: after a known workload on a real crnpd (good and
//! refused registrations, events fanned out to live subscribers, one dead subscriber removed
//! after its last attempt, one client deleted by the admin API, one that left by itself), every
//! counter equals what happened, exactly; and every metric is exported, with HELP and TYPE,
//! from start-up on, before anything touched it.

mod common;

use common::*;

/// The subscription every client of the workload holds.
fn membership() -> String {
    event_type("EC_Cluster", Some("ESC_cluster_membership"), &[])
}

fn membership_event(n: usize) -> String {
    json_event(
        "EC_Cluster",
        "ESC_cluster_membership",
        &[("node_list", &format!("n{n}"))],
    )
}

/// The exposition's `# TYPE` lines: (name, type).
fn declared(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let (name, kind) = rest.split_once(' ')?;
            Some((name.to_owned(), kind.trim().to_owned()))
        })
        .collect()
}

#[test]
fn every_metric_is_exported_with_help_from_start_up() {
    let crnpd = Crnpd::start(&[]);
    let (status, text) = http(crnpd.http, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let types = declared(&text);
    for name in crnp::telemetry::ALL_METRICS {
        assert!(
            types.iter().any(|(declared, _)| declared == name),
            "{name} has no # TYPE line right after start-up:\n{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {name} "))),
            "{name} has no # HELP line"
        );
    }
    for (name, kind) in &types {
        assert!(
            crnp::telemetry::ALL_METRICS.contains(&name.as_str()),
            "{name} is exported but not listed in telemetry::ALL_METRICS (and so not documented)"
        );
        assert_eq!(
            name.ends_with("_total"),
            kind == "counter",
            "{name} is a {kind}: _total exactly on counters"
        );
    }
    // The label sets known up front exist at 0, so rate() and alerts work from the first scrape.
    for cause in crnp::delivery::FailureCause::ALL.map(|c| c.label()) {
        let series = format!("cause=\"{cause}\"");
        assert!(
            text.contains(&format!(
                "crnp_delivery_failures_total{{{series},core=\"1\"}} 0"
            )),
            "no zero series for cause {cause}:\n{text}"
        );
    }
    for reason in crnp::registry::RemovalReason::ALL.map(|r| r.label()) {
        assert!(
            text.contains(&format!(
                "crnp_clients_removed_total{{reason=\"{reason}\"}} 0"
            )),
            "no zero series for removal reason {reason}"
        );
    }
    for resource in crnp::delivery::Shortage::ALL.map(|s| s.label()) {
        assert!(
            text.contains(&format!(
                "crnp_local_shortages_total{{resource=\"{resource}\",core=\"1\"}} 0"
            )),
            "no zero series for shortage {resource}:\n{text}"
        );
    }
    for (form, status) in [
        ("ADD_CLIENT", "OK"),
        ("ADD_CLIENT", "LOW_RESOURCE"),
        ("REMOVE_CLIENT", "FAIL"),
        ("unknown", "MALFORMED"),
    ] {
        assert!(
            text.contains(&format!(
                "crnp_registrations_total{{form=\"{form}\",status=\"{status}\"}} 0"
            )),
            "no zero series for {form}/{status}"
        );
    }
    assert_eq!(crnpd.metric("crnp_active", &[]), 1.0);
    assert_eq!(crnpd.metric("crnp_build_info", &[]), 1.0);
    assert!(crnpd.metric("crnp_open_fds", &[]) > 0.0);
    assert!(crnpd.metric("crnp_max_fds", &[]) >= crnpd.metric("crnp_open_fds", &[]));
}

#[test]
fn counters_equal_a_known_workload() {
    let crnpd = Crnpd::start(&QUICK_RETRIES);
    const EVENTS: usize = 4;
    let subscribers: Vec<Subscriber> = (31..34).map(|last| Subscriber::listen(ip(last))).collect();

    // Registrations: 6 ADD_CLIENT OK, 1 ADD_EVENTS OK, 1 REMOVE_CLIENT OK, and 3 refusals.
    for subscriber in &subscribers {
        let ip = subscriber.addr.ip();
        assert_eq!(
            crnpd.register(ip, &reg("ADD_CLIENT", subscriber.port(), &membership())),
            "OK"
        );
    }
    let other_class = event_type("EC_Other", None, &[]);
    assert_eq!(
        crnpd.register(
            ip(31),
            &reg("ADD_EVENTS", subscribers[0].port(), &other_class)
        ),
        "OK"
    );
    let dead = dead_port(ip(34));
    assert_eq!(
        crnpd.register(ip(34), &reg("ADD_CLIENT", dead, &membership())),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(35), &reg("ADD_CLIENT", 7101, &other_class)),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(35), &reg("REMOVE_CLIENT", 7101, "")),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(36), &reg("ADD_CLIENT", 7102, &other_class)),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(37), &reg("ADD_EVENTS", 7103, &membership())),
        "FAIL"
    );
    assert_eq!(
        crnpd.register(ip(37), &reg("REMOVE_CLIENT", 7103, "")),
        "FAIL"
    );
    let broken = "<?xml version=\"1.0\"?><SC_CALLBACK_REG VERSION=\"1.0\" PORT=\"7104\" REG_TYPE=\"ADD_CLIENT\"></WRONG>";
    assert_eq!(crnpd.register(ip(37), broken), "MALFORMED");

    // The operator removes one client.
    let (status, body) = http(
        crnpd.http,
        "DELETE",
        "/v1/clients/127.0.0.36:7102",
        None,
        None,
    );
    assert_eq!(status, 204, "{body}");

    // Events: each reaches the three live subscribers; the dead one fails twice and is removed.
    for n in 0..EVENTS {
        let (status, body) = crnpd.publish_json(&membership_event(n));
        assert_eq!(status, 202, "{body}");
    }
    for subscriber in &subscribers {
        assert_eq!(subscriber.take(EVENTS).len(), EVENTS);
    }
    let deliveries = (EVENTS * subscribers.len()) as f64;
    crnpd.wait_metric("crnp_events_delivered_total", &[], |v| v == deliveries);
    crnpd.wait_metric(
        "crnp_clients_removed_total",
        &["reason=\"unreachable\""],
        |v| v == 1.0,
    );

    let text = http(crnpd.http, "GET", "/metrics", None, None).1;
    let value = |name: &str, labels: &[&str]| metric_sum(&text, name, labels);
    let expected: &[(&str, &[&str], f64)] = &[
        ("crnp_events_published_total", &[], EVENTS as f64),
        ("crnp_event_serializations_total", &[], EVENTS as f64),
        ("crnp_events_delivered_total", &[], deliveries),
        (
            "crnp_delivery_attempts_total",
            &["result=\"ok\""],
            deliveries,
        ),
        ("crnp_delivery_attempts_total", &["result=\"error\""], 2.0),
        ("crnp_delivery_failures_total", &["cause=\"refused\""], 2.0),
        ("crnp_delivery_failures_total", &[], 2.0),
        ("crnp_delivery_latency_seconds_count", &[], deliveries),
        (
            "crnp_registrations_total",
            &["form=\"ADD_CLIENT\"", "status=\"OK\""],
            6.0,
        ),
        (
            "crnp_registrations_total",
            &["form=\"ADD_EVENTS\"", "status=\"OK\""],
            1.0,
        ),
        (
            "crnp_registrations_total",
            &["form=\"REMOVE_CLIENT\"", "status=\"OK\""],
            1.0,
        ),
        (
            "crnp_registrations_total",
            &["form=\"ADD_EVENTS\"", "status=\"FAIL\""],
            1.0,
        ),
        (
            "crnp_registrations_total",
            &["form=\"REMOVE_CLIENT\"", "status=\"FAIL\""],
            1.0,
        ),
        (
            "crnp_registrations_total",
            &["form=\"unknown\"", "status=\"MALFORMED\""],
            1.0,
        ),
        ("crnp_registrations_total", &[], 11.0),
        (
            "crnp_clients_removed_total",
            &["reason=\"unreachable\""],
            1.0,
        ),
        ("crnp_clients_removed_total", &["reason=\"admin\""], 1.0),
        (
            "crnp_clients_removed_total",
            &["reason=\"remove_client\""],
            1.0,
        ),
        (
            "crnp_clients_removed_total",
            &["reason=\"queue_overflow\""],
            0.0,
        ),
        ("crnp_clients", &[], subscribers.len() as f64),
        ("crnp_queued_deliveries", &[], 0.0),
        ("crnp_deliveries_in_flight", &[], 0.0),
        ("crnp_registration_connections_rejected_total", &[], 0.0),
        ("crnp_registry_commit_errors_total", &[], 0.0),
    ];
    let mut wrong = Vec::new();
    for (name, labels, want) in expected {
        let got = value(name, labels);
        if got != *want {
            wrong.push(format!("{name}{labels:?} = {got}, expected {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n\n{text}", wrong.join("\n"));

    // Every registry request was committed in some batch, and every batch took some time.
    let commits = value("crnp_registry_commit_batch_size_count", &[]);
    let requests = value("crnp_registry_commit_batch_size_sum", &[]);
    assert!(
        commits >= 1.0 && requests >= commits,
        "{commits} commits of {requests} requests"
    );
    assert_eq!(value("crnp_registry_commit_seconds_count", &[]), commits);
    // Latency: every observation lies in a bucket no larger than the test's own duration.
    assert_eq!(
        value("crnp_delivery_latency_seconds_bucket", &["le=\"+Inf\""]),
        deliveries
    );
    assert_eq!(
        value("crnp_delivery_latency_seconds_bucket", &["le=\"30\""]),
        deliveries,
        "a delivery took longer than 30 s"
    );

    // The admin API agrees with the gauges.
    let clients = crnpd.clients();
    let clients = clients.as_array().expect("array");
    assert_eq!(clients.len(), subscribers.len());
    for client in clients {
        assert_eq!(client["last_delivery"], "ok", "{client}");
        assert_eq!(client["queued"], 0, "{client}");
    }
}

#[test]
fn a_full_queue_counts_as_an_overflow_removal() {
    // Twenty events queued at once for a client with room for one: the second overflows
    // whatever becomes of the first (the registry hands them to the core back to back).
    let crnpd = Crnpd::start(&["--max-queue-depth", "1", "--client-timeout", "1"]);
    let silent = std::net::TcpListener::bind((ip(38), 0)).expect("bind");
    let port = silent.local_addr().expect("addr").port();
    assert_eq!(
        crnpd.register(ip(38), &reg("ADD_CLIENT", port, &membership())),
        "OK"
    );
    let batch: Vec<String> = (0..20).map(membership_event).collect();
    let (status, body) = crnpd.publish_json(&format!("[{}]", batch.join(",")));
    assert_eq!(status, 202, "{body}");
    crnpd.wait_metric(
        "crnp_clients_removed_total",
        &["reason=\"queue_overflow\""],
        |v| v == 1.0,
    );
    crnpd.wait_metric("crnp_clients", &[], |v| v == 0.0);
    assert_eq!(crnpd.metric("crnp_events_published_total", &[]), 20.0);
}

//! Guards event delivery of a real crnpd: matching, per-client order under concurrent
//! publishing, the latest event on registration, retries and removal of a dead client while
//! live ones keep receiving, the source address of deliveries, and the publish API's answers.

mod common;

use std::collections::HashSet;

use common::*;

fn r_state(name: &str) -> String {
    event_type(
        "EC_Cluster",
        Some("ESC_cluster_r_state"),
        &[("r_name", name)],
    )
}

fn r_event(name: &str, seq: usize) -> String {
    json_event(
        "EC_Cluster",
        "ESC_cluster_r_state",
        &[("r_name", name), ("ev_test_seq", &seq.to_string())],
    )
}

#[test]
fn matching_follows_class_subclass_and_pairs() {
    let crnpd = Crnpd::start(&[]);
    let all = Subscriber::listen(ip(20));
    let only_a = Subscriber::listen(ip(21));
    assert_eq!(
        crnpd.register(
            ip(20),
            &reg(
                "ADD_CLIENT",
                all.port(),
                &event_type("EC_Cluster", None, &[])
            )
        ),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(21), &reg("ADD_CLIENT", only_a.port(), &r_state("a"))),
        "OK"
    );
    for (n, name) in ["b", "a"].iter().enumerate() {
        let (status, body) = crnpd.publish_json(&r_event(name, n));
        assert_eq!(status, 202, "{body}");
    }
    assert_eq!(pair_value(&all.next().1, "r_name").as_deref(), Some("b"));
    assert_eq!(pair_value(&all.next().1, "r_name").as_deref(), Some("a"));
    let (_, event) = only_a.next();
    assert_eq!(pair_value(&event, "r_name").as_deref(), Some("a"));
    crnpd.wait_metric("crnp_events_delivered_total", &[], |v| v == 3.0);
    assert!(
        only_a.nothing_yet(),
        "the event for b never reaches the subscriber of a"
    );
}

#[test]
fn each_client_receives_in_sequence_order_under_concurrent_publishing() {
    let crnpd = Crnpd::start(&[]);
    let subscribers: Vec<Subscriber> = (0..4).map(|i| Subscriber::listen(ip(30 + i))).collect();
    for (i, s) in subscribers.iter().enumerate() {
        assert_eq!(
            crnpd.register(
                ip(30 + i as u8),
                &reg("ADD_CLIENT", s.port(), &event_type("EC_Cluster", None, &[]))
            ),
            "OK"
        );
    }
    let publishers = 4;
    let per_publisher = 25;
    let sequences: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..publishers)
            .map(|p| {
                let crnpd = &crnpd;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for n in 0..per_publisher {
                        let (status, body) = crnpd.publish_json(&r_event(&format!("p{p}"), n));
                        assert_eq!(status, 202, "{body}");
                        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
                        mine.push(v["sequences"][0].as_u64().expect("seq"));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("publisher"))
            .collect()
    });
    assert_eq!(
        sequences.iter().collect::<HashSet<_>>().len(),
        publishers * per_publisher,
        "sequence numbers are unique"
    );
    let total = publishers * per_publisher;
    let reference = subscribers[0].take(total);
    for subscriber in &subscribers[1..] {
        assert_eq!(
            subscriber.take(total),
            reference,
            "every subscriber sees the same events in the same order"
        );
    }
    for p in 0..publishers {
        let own: Vec<usize> = reference
            .iter()
            .filter(|e| pair_value(e, "r_name").as_deref() == Some(&format!("p{p}")))
            .map(|e| {
                pair_value(e, "ev_test_seq")
                    .and_then(|s| s.parse().ok())
                    .expect("seq")
            })
            .collect();
        assert_eq!(
            own,
            (0..per_publisher).collect::<Vec<_>>(),
            "publisher {p}'s events in publish order"
        );
    }
}

#[test]
fn registration_delivers_the_latest_event_of_each_type_first() {
    let crnpd = Crnpd::start(&[]);
    crnpd.publish_json(&r_event("a", 1));
    crnpd.publish_json(&r_event("a", 2));
    crnpd.publish_json(&r_event("b", 3));
    crnpd.publish_json(&json_event(
        "EC_Cluster",
        "ESC_cluster_membership",
        &[("node_list", "n1")],
    ));
    let subscriber = Subscriber::listen(ip(40));
    let types = format!("{}{}", r_state("a"), r_state("b"));
    assert_eq!(
        crnpd.register(ip(40), &reg("ADD_CLIENT", subscriber.port(), &types)),
        "OK"
    );
    crnpd.publish_json(&r_event("a", 4));
    let got: Vec<Option<String>> = subscriber
        .take(3)
        .iter()
        .map(|e| pair_value(e, "ev_test_seq"))
        .collect();
    assert_eq!(
        got,
        vec![Some("2".into()), Some("3".into()), Some("4".into())],
        "latest of a, latest of b, then new"
    );
    let membership = event_type("EC_Cluster", Some("ESC_cluster_membership"), &[]);
    assert_eq!(
        crnpd.register(ip(40), &reg("ADD_EVENTS", subscriber.port(), &membership)),
        "OK"
    );
    assert!(
        subscriber.next().1.contains("ESC_cluster_membership"),
        "ADD_EVENTS brings the latest of the new type"
    );
    assert_eq!(
        crnpd.register(ip(40), &reg("ADD_EVENTS", subscriber.port(), &membership)),
        "OK"
    );
    crnpd.publish_json(&r_event("b", 5));
    assert_eq!(
        pair_value(&subscriber.next().1, "ev_test_seq").as_deref(),
        Some("5"),
        "a type held already is not replayed"
    );
}

#[test]
fn a_dead_client_is_removed_after_exactly_the_retry_count_while_live_ones_keep_receiving() {
    // Each of the failing client's attempts waits in its listen backlog until the test resets
    // it, so the client is looked at between two failures however slow the machine is.
    let crnpd = Crnpd::start(&[
        "--client-retry-count",
        "3",
        "--client-retry-interval",
        "0.3",
        "--client-timeout",
        "60",
    ]);
    let live = Subscriber::listen(ip(50));
    let failing = Gate::listen(ip(51));
    let all = event_type("EC_Cluster", None, &[]);
    assert_eq!(
        crnpd.register(ip(50), &reg("ADD_CLIENT", live.port(), &all)),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(51), &reg("ADD_CLIENT", failing.port(), &all)),
        "OK"
    );
    crnpd.publish_json(&r_event("x", 0));
    assert!(
        live.next().1.contains("ev_test_seq"),
        "the live client is not held up by the failing one"
    );
    failing.reset_next();
    failing.reset_next();
    crnpd.wait_metric("crnp_delivery_attempts_total", &["result=\"error\""], |v| {
        v >= 2.0
    });
    assert_eq!(
        crnpd.client_count(),
        2,
        "still registered after two failures"
    );
    crnpd.publish_json(&r_event("x", 1));
    assert_eq!(
        pair_value(&live.next().1, "ev_test_seq").as_deref(),
        Some("1"),
        "the live client is served while the failing one's third attempt waits"
    );
    failing.reset_next();
    crnpd.wait_metric(
        "crnp_clients_removed_total",
        &["reason=\"unreachable\""],
        |v| v == 1.0,
    );
    assert_eq!(
        crnpd.metric("crnp_delivery_attempts_total", &["result=\"error\""]),
        3.0,
        "exactly three attempts"
    );
    let remaining = crnpd.clients();
    assert_eq!(remaining.as_array().expect("array").len(), 1);
    assert_eq!(
        remaining[0]["address"],
        format!("127.0.0.50:{}", live.port())
    );
    crnpd.publish_json(&r_event("x", 2));
    assert_eq!(
        pair_value(&live.next().1, "ev_test_seq").as_deref(),
        Some("2")
    );
    assert!(
        failing.nothing_waiting(),
        "no attempt toward a removed client"
    );
    assert_eq!(
        crnpd.metric("crnp_delivery_attempts_total", &["result=\"error\""]),
        3.0,
        "no attempts after removal"
    );
}

#[test]
fn deliveries_come_from_the_service_address() {
    let crnpd = Crnpd::start(&["--source-addr", "127.0.0.77"]);
    let subscriber = Subscriber::listen(ip(60));
    assert_eq!(
        crnpd.register(
            ip(60),
            &reg(
                "ADD_CLIENT",
                subscriber.port(),
                &event_type("EC_Cluster", None, &[])
            )
        ),
        "OK"
    );
    crnpd.publish_json(&r_event("a", 0));
    let (peer, _) = subscriber.next();
    assert_eq!(peer.ip(), ip(77));
}

#[test]
fn events_are_compact_and_identical_across_subscribers() {
    let crnpd = Crnpd::start(&[]);
    let a = Subscriber::listen(ip(61));
    let b = Subscriber::listen(ip(62));
    for (n, s) in [(61, &a), (62, &b)] {
        assert_eq!(
            crnpd.register(
                ip(n),
                &reg("ADD_CLIENT", s.port(), &event_type("EC_Cluster", None, &[]))
            ),
            "OK"
        );
    }
    let body = r#"{"class":"EC_Cluster","subclass":"ESC_cluster_rg_state","nvpairs":[{"name":"rg_name","value":"web <&> \"rg\""},{"name":"node_list","value":["n1","n2"]}]}"#;
    assert_eq!(crnpd.publish_json(body).0, 202);
    let (_, first) = a.next();
    let (_, second) = b.next();
    assert_eq!(first, second);
    let root = first.split_once("?>").expect("declaration").1.trim_start();
    assert!(
        !root.contains(">\n") && !root.contains("> <"),
        "no whitespace between elements: {root}"
    );
    assert!(
        root.contains("<VALUE><![CDATA[n1]]></VALUE><VALUE><![CDATA[n2]]></VALUE>"),
        "{root}"
    );
}

#[test]
fn the_publish_api_accepts_xml_and_batches_and_refuses_bad_input() {
    let crnpd = Crnpd::start(&[]);
    let xml = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/event_rg_state.xml"
    ))
    .expect("vector");
    let (status, body) = http(
        crnpd.http,
        "POST",
        "/v1/events",
        Some(("application/xml", &xml)),
        None,
    );
    assert_eq!((status, body.as_str()), (202, r#"{"sequences":[0]}"#));
    let batch = format!("[{},{}]", r_event("a", 1), r_event("b", 2));
    assert_eq!(
        crnpd.publish_json(&batch),
        (202, r#"{"sequences":[1,2]}"#.to_owned())
    );
    for bad in [
        "{\"class\":\"EC_Cluster\"}",
        "[]",
        "{\"class\":\"\",\"subclass\":\"x\"}",
        "not json",
    ] {
        let (status, body) = crnpd.publish_json(bad);
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(!body.trim().is_empty(), "a reason is given for {bad}");
    }
    let (status, body) = http(
        crnpd.http,
        "POST",
        "/v1/events",
        Some(("application/xml", b"<SC_EVENT")),
        None,
    );
    assert_eq!(status, 400, "{body}");
    let control = json_event("EC_Cluster", "x", &[("a", "\\u0001")]);
    assert_eq!(
        crnpd.publish_json(&control).0,
        400,
        "XML cannot carry control characters"
    );
}

#[test]
fn a_delivery_completes_only_when_the_client_has_read_it_and_closed() {
    let crnpd = Crnpd::start(&QUICK_RETRIES);
    let listener = std::net::TcpListener::bind((ip(63), 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (held_tx, held) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let mut stream = stream.expect("accept");
            stream.set_read_timeout(Some(WAIT)).expect("timeout");
            let event = read_to_end(&mut stream);
            // Read the event and crnpd's EOF, but keep the connection open.
            if held_tx.send((event, stream)).is_err() {
                return;
            }
        }
    });
    assert_eq!(
        crnpd.register(
            ip(63),
            &reg("ADD_CLIENT", port, &event_type("EC_Cluster", None, &[]))
        ),
        "OK"
    );
    crnpd.publish_json(&r_event("held", 0));
    let (event, _open) = held.recv_timeout(WAIT).expect("first attempt");
    assert!(
        event.ends_with("</SC_EVENT>"),
        "the whole event arrived: {event}"
    );
    crnpd.wait_metric(
        "crnp_delivery_failures_total",
        &["cause=\"timeout\""],
        |v| v == 1.0,
    );
    assert_eq!(
        crnpd.metric("crnp_events_delivered_total", &[]),
        0.0,
        "not delivered until the client closes"
    );
    let (again, second) = held.recv_timeout(WAIT).expect("the attempt is retried");
    assert_eq!(again, event, "the same event again");
    drop(second);
    crnpd.wait_metric("crnp_events_delivered_total", &[], |v| v == 1.0);
    assert_eq!(
        crnpd.metric("crnp_delivery_attempts_total", &["result=\"error\""]),
        1.0
    );
    assert_eq!(crnpd.client_count(), 1, "the client stays registered");
}

#[test]
fn the_queue_bound_is_exact_a_full_queue_keeps_the_client_one_more_removes_it() {
    let crnpd = Crnpd::start(&["--max-queue-depth", "3", "--client-timeout", "30"]);
    // Accepted by the kernel, never read or closed: the first delivery stays in flight.
    let stuck = std::net::TcpListener::bind((ip(64), 0)).expect("bind");
    let port = stuck.local_addr().expect("addr").port();
    let all = event_type("EC_Cluster", None, &[]);
    assert_eq!(crnpd.register(ip(64), &reg("ADD_CLIENT", port, &all)), "OK");
    let three = format!(
        "[{},{},{}]",
        r_event("q", 0),
        r_event("q", 1),
        r_event("q", 2)
    );
    assert_eq!(crnpd.publish_json(&three).0, 202);
    crnpd.wait_metric("crnp_queued_deliveries", &[], |v| v == 3.0);
    assert_eq!(
        crnpd.metric("crnp_clients_removed_total", &["reason=\"queue_overflow\""]),
        0.0
    );
    assert_eq!(crnpd.client_count(), 1, "a full queue keeps the client");
    assert_eq!(crnpd.publish_json(&r_event("q", 3)).0, 202);
    crnpd.wait_metric(
        "crnp_clients_removed_total",
        &["reason=\"queue_overflow\""],
        |v| v == 1.0,
    );
    assert_eq!(crnpd.client_count(), 0, "one more removes it");
    drop(stuck);
}

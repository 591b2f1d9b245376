//! Guards what a hostile local process or a large installation must never cost a healthy
//! subscriber (issue 11), each against a real crnpd on real loopback sockets:
//!
//! - idle HTTP connections cannot exhaust crnpd's descriptors: past `--max-http-connections`
//!   they get 503, every connection is closed once its header timeout passes (kept-alive ones
//!   too), a body that does not arrive within its timeout gets 408, and registrations and
//!   deliveries go on;
//! - crnpd's own shortage of descriptors is never a client's failed attempt: 3,000 healthy
//!   subscribers under a 1,024-descriptor limit get every event;
//! - a latest-state replay larger than `--max-queue-depth` never removes the client, on
//!   registration or after a restart, and the latest-state table keeps its bound;
//! - a client holds at most `--max-event-types` types;
//! - the publish API refuses exactly what XML cannot carry and delivers everything else
//!   unchanged; a registration for an empty CLASS or SUBCLASS is INVALID;
//! - a second crnpd cannot share the CRNP address;
//! - a re-registered client starts with a clean attempt count.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn membership() -> String {
    event_type("EC_Cluster", Some("ESC_cluster_membership"), &[])
}

fn membership_event(node: &str) -> String {
    json_event(
        "EC_Cluster",
        "ESC_cluster_membership",
        &[("node_list", node)],
    )
}

fn r_state_event(name: &str) -> String {
    json_event(
        "EC_Cluster",
        "ESC_cluster_r_state",
        &[("r_name", name), ("state_list", "ONLINE")],
    )
}

/// Publishes `body`, retrying while crnpd answers 503 or turns the connection away (closed
/// without an answer: status 0), up to [`WAIT`]; returns the final status and body.
fn publish_when_admitted(crnpd: &Crnpd, body: &str) -> (u16, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        let attempt = std::panic::catch_unwind(|| crnpd.publish_json(body));
        match attempt {
            Ok((0 | 503, _)) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(answer) => return answer,
            Err(_) => panic!("publish never admitted within {WAIT:?}"),
        }
    }
}

#[test]
fn idle_http_connections_cannot_take_the_descriptors_deliveries_need() {
    crnp::budget::raise_descriptor_limit().expect("raise the test's own limit");
    let crnpd = start_with_nofile(
        &[
            "--http-header-timeout",
            "1",
            "--client-retry-count",
            "2",
            "--client-retry-interval",
            "0.4",
            "--client-timeout",
            "5",
        ],
        1024,
    );
    let sub = Subscriber::listen(ip(80));
    assert_eq!(
        crnpd.register(sub.addr.ip(), &reg("ADD_CLIENT", sub.port(), &membership())),
        "OK"
    );
    let mut held: Vec<TcpStream> = (0..1100)
        .map(|_| TcpStream::connect_timeout(&crnpd.http, WAIT).expect("connect to HTTP"))
        .collect();
    // With the HTTP side full, registrations still get their reply.
    let late = Subscriber::listen(ip(81));
    assert_eq!(
        crnpd.register(
            late.addr.ip(),
            &reg("ADD_CLIENT", late.port(), &membership())
        ),
        "OK"
    );
    let (status, body) = publish_when_admitted(&crnpd, &membership_event("n1"));
    assert_eq!(status, 202, "{body}");
    for sub in [&sub, &late] {
        let event = sub.next().1;
        assert_eq!(pair_value(&event, "node_list").as_deref(), Some("n1"));
    }
    // Every held connection was closed by crnpd: at once with 503 past the cap, or when its
    // header timeout passed.
    let deadline = Instant::now() + WAIT;
    for stream in &mut held {
        stream
            .set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
            .expect("timeout");
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .expect("crnpd closes an idle connection");
        assert!(
            answer.is_empty()
                || answer.starts_with(b"HTTP/1.1 503")
                || answer.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert!(crnpd.metric("crnp_http_connections_rejected_total", &[]) > 0.0);
    assert_eq!(crnpd.metric("crnp_clients_removed_total", &[]), 0.0);
    assert_eq!(crnpd.metric("crnp_local_shortages_total", &[]), 0.0);
    assert_eq!(crnpd.metric("crnp_delivery_failures_total", &[]), 0.0);
}

/// One GET on a new connection: the status, 0 when crnpd closed it without an answer.
fn get_status(crnpd: &Crnpd, path: &str) -> u16 {
    let mut stream = TcpStream::connect_timeout(&crnpd.http, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: crnpd\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn exactly_max_http_connections_are_served_at_once_and_a_freed_one_admits_the_next() {
    let crnpd = Crnpd::start(&["--max-http-connections", "2", "--http-header-timeout", "30"]);
    let first = TcpStream::connect_timeout(&crnpd.http, WAIT).expect("connect");
    // The scrape is the second connection: the gauge shows both while it is answered.
    crnpd.wait_metric("crnp_http_connections", &[], |v| v == 2.0);
    let second = TcpStream::connect_timeout(&crnpd.http, WAIT).expect("connect");
    let deadline = Instant::now() + WAIT;
    // Once crnpd has accepted the second idle connection, the cap of 2 is reached.
    while get_status(&crnpd, "/healthz") != 503 {
        assert!(
            Instant::now() < deadline,
            "a third connection was never refused"
        );
    }
    drop(first);
    while get_status(&crnpd, "/healthz") != 200 {
        assert!(
            Instant::now() < deadline,
            "a freed connection never admitted the next"
        );
    }
    drop(second);
    assert!(crnpd.metric("crnp_http_connections_rejected_total", &[]) >= 1.0);
}

#[test]
fn a_kept_alive_http_connection_is_closed_after_the_header_timeout() {
    let crnpd = Crnpd::start(&["--http-header-timeout", "0.5"]);
    let mut stream = TcpStream::connect_timeout(&crnpd.http, WAIT).expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: crnpd\r\n\r\n")
        .expect("request");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let started = Instant::now();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("crnpd closes the idle connection");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(
        started.elapsed() < WAIT,
        "closed by crnpd, not by the read timeout"
    );
}

#[test]
fn a_publish_body_that_does_not_arrive_in_time_gets_408_and_publishes_nothing() {
    let crnpd = Crnpd::start(&["--http-body-timeout", "0.5"]);
    let mut stream = TcpStream::connect_timeout(&crnpd.http, WAIT).expect("connect");
    stream
        .write_all(
            b"POST /v1/events HTTP/1.1\r\nHost: crnpd\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"class\":",
        )
        .expect("a partial request");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut answer = [0u8; 12];
    stream
        .read_exact(&mut answer)
        .expect("crnpd answers before the read timeout");
    assert_eq!(&answer, b"HTTP/1.1 408");
    assert_eq!(crnpd.metric("crnp_events_published_total", &[]), 0.0);
    let (status, body) = crnpd.publish_json(&membership_event("n1"));
    assert_eq!(status, 202, "a whole body in time is published: {body}");
}

#[test]
fn past_the_connection_limit_at_most_32_refusals_per_core_are_written_at_once() {
    let crnpd = Crnpd::start(&["--cores", "1", "--max-connections", "1"]);
    let held = connect_from(ip(89), crnpd.listen);
    crnpd.wait_metric("crnp_registration_connections", &[], |v| v == 1.0);
    let mut over: Vec<TcpStream> = (0..40)
        .map(|_| connect_from(ip(89), crnpd.listen))
        .collect();
    let (mut replied, mut closed) = (0, 0);
    for stream in &mut over {
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        if status_of(&String::from_utf8_lossy(&answer)) == "LOW_RESOURCE" {
            replied += 1;
        } else {
            closed += 1;
        }
    }
    assert_eq!(replied + closed, 40);
    assert!(replied <= 32, "{replied} LOW_RESOURCE replies at once");
    assert!(
        closed >= 1,
        "past 32 refusals in progress a connection is closed at once"
    );
    assert_eq!(
        crnpd.metric("crnp_registration_connections_rejected_total", &[]),
        40.0
    );
    drop(held);
}

#[test]
fn three_thousand_healthy_subscribers_under_a_small_descriptor_limit_get_every_event() {
    let output = Command::new(env!("CARGO_BIN_EXE_crnp-load"))
        .args(["--crnpd", crnpd_bin(), "--crnpd-nofile", "1024"])
        .args(["--crnpd-arg=--cores=2", "--crnpd-arg=--client-timeout=5"])
        .args(["--subscribers", "3000", "--events", "5", "--mode", "crnpd"])
        .args(["--drain-timeout", "20", "--json"])
        .output()
        .expect("run crnp-load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("crnp-load JSON ({e}):\n{stdout}\n{stderr}"));
    let phase = &report["points"][0]["crnpd"];
    let deliveries = &phase["deliveries"];
    assert_eq!(phase["registrations"]["ok"], 3000, "{stderr}");
    for count in ["missing", "duplicate", "reordered", "unexpected"] {
        assert_eq!(deliveries[count], 0, "{count}:\n{stderr}");
    }
    assert_eq!(deliveries["expected"], 15_000, "{stderr}");
}

#[test]
fn a_replay_longer_than_the_queue_bound_never_removes_the_client_and_the_table_is_bounded() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    // A failed attempt is tried again only 5 minutes later.
    let args = [
        "--max-queue-depth",
        "10",
        "--max-latest-states",
        "25",
        "--client-retry-count",
        "2",
        "--client-retry-interval",
        "600",
        "--client-timeout",
        "2",
    ];
    let crnpd = Crnpd::start_in(&data, temp.path(), &args);
    let batch: Vec<String> = (0..30)
        .map(|i| r_state_event(&format!("r{i:02}")))
        .collect();
    let (status, body) = crnpd.publish_json(&format!("[{}]", batch.join(",")));
    assert_eq!(status, 202, "{body}");
    crnpd.wait_metric("crnp_latest_states", &[], |v| v == 25.0);
    assert_eq!(crnpd.metric("crnp_latest_states_evicted_total", &[]), 5.0);
    let expected: Vec<String> = (5..30).map(|i| format!("r{i:02}")).collect();

    let sub = Subscriber::listen(ip(82));
    let class_wide = event_type("EC_Cluster", None, &[]);
    assert_eq!(
        crnpd.register(sub.addr.ip(), &reg("ADD_CLIENT", sub.port(), &class_wide)),
        "OK"
    );
    let names = |events: Vec<String>| -> Vec<String> {
        events
            .iter()
            .map(|e| pair_value(e, "r_name").expect("r_name"))
            .collect()
    };
    assert_eq!(
        names(sub.take(25)),
        expected,
        "every latest state, oldest first"
    );
    // A second client is not listening yet: its replay waits for the retry when crnpd stops.
    let late_addr = SocketAddr::new(ip(84), dead_port(ip(84)));
    assert_eq!(
        crnpd.register(
            late_addr.ip(),
            &reg("ADD_CLIENT", late_addr.port(), &class_wide)
        ),
        "OK"
    );
    crnpd.wait_metric("crnp_delivery_attempts_total", &["result=\"error\""], |v| {
        v >= 1.0
    });
    assert_eq!(crnpd.client_count(), 2);

    assert!(crnpd.terminate().success());
    let late = Subscriber::listen_on(late_addr);
    let crnpd = Crnpd::start_in(&data, temp.path(), &args);
    assert_eq!(
        names(late.take(25)),
        expected,
        "the restart resyncs the replay that was not delivered"
    );
    assert!(
        sub.nothing_yet(),
        "the client that had its replay gets nothing again"
    );
    assert_eq!(crnpd.client_count(), 2);
    assert_eq!(crnpd.metric("crnp_clients_removed_total", &[]), 0.0);
}

#[test]
fn a_client_holds_at_most_max_event_types_types() {
    let crnpd = Crnpd::start(&["--max-event-types", "3"]);
    let client = ip(83);
    let r = |name: &str| {
        event_type(
            "EC_Cluster",
            Some("ESC_cluster_r_state"),
            &[("r_name", name)],
        )
    };
    let three = format!("{}{}{}", r("a"), r("b"), r("c"));
    assert_eq!(
        crnpd.register(client, &reg("ADD_CLIENT", 7100, &three)),
        "OK"
    );
    assert_eq!(
        crnpd.register(client, &reg("ADD_EVENTS", 7100, &r("d"))),
        "LOW_RESOURCE"
    );
    assert_eq!(
        crnpd.register(client, &reg("ADD_EVENTS", 7100, &r("a"))),
        "OK",
        "a type held already adds nothing"
    );
    let four = format!("{three}{}", r("d"));
    assert_eq!(
        crnpd.register(ip(84), &reg("ADD_CLIENT", 7100, &four)),
        "LOW_RESOURCE"
    );
    let clients = crnpd.clients();
    let listed = clients.as_array().expect("client list");
    assert_eq!(listed.len(), 1, "{clients}");
    assert_eq!(listed[0]["event_types"].as_array().expect("types").len(), 3);
}

#[test]
fn publish_refuses_exactly_what_xml_cannot_carry_and_delivers_the_rest_unchanged() {
    let crnpd = Crnpd::start(&QUICK_RETRIES);
    let sub = Subscriber::listen(ip(85));
    let all = event_type("EC_Test", None, &[]);
    assert_eq!(
        crnpd.register(sub.addr.ip(), &reg("ADD_CLIENT", sub.port(), &all)),
        "OK"
    );
    for bad in ["\\uFFFE", "\\uFFFF", "\\u0001", "a\\u001Fb"] {
        let (status, body) = crnpd.publish_json(&json_event("EC_Test", "ESC_t", &[("v", bad)]));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("U+"), "the character is named: {body}");
    }
    let value = "nel\u{85} c1\u{9f} tab\t cr\r lf\n bmp\u{FFFD} astral\u{1F600}";
    let escaped = value
        .replace('\t', "\\t")
        .replace('\r', "\\r")
        .replace('\n', "\\n");
    let (status, body) = crnpd.publish_json(&json_event("EC_Test", "ESC_t", &[("v", &escaped)]));
    assert_eq!(status, 202, "{body}");
    let event = sub.next().1;
    let delivered = crnp::protocol::Event::parse(event.as_bytes(), &Default::default())
        .expect("a well-formed SC_EVENT");
    assert_eq!(delivered.nvpairs[0].values[0], value, "{event:?}");

    for empty in [
        event_type("", None, &[]),
        event_type("EC_Test", Some(""), &[]),
    ] {
        assert_eq!(
            crnpd.register(ip(86), &reg("ADD_CLIENT", 7101, &empty)),
            "INVALID",
            "{empty}"
        );
    }
}

#[test]
fn a_second_crnpd_cannot_share_the_crnp_address() {
    let first = Crnpd::start(&[]);
    let temp = tempfile::tempdir().expect("tempdir");
    let listen = first.listen.to_string();
    let (mut second, log) = spawn(
        &temp.path().join("data"),
        temp.path(),
        &["--listen", &listen],
    );
    let status = wait_exit(&mut second);
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "{said}");
    assert!(
        said.contains(&listen) && said.contains("already served by another process"),
        "{said}"
    );
    assert_eq!(
        first.register(ip(87), &reg("ADD_CLIENT", 7102, &membership())),
        "OK",
        "the first crnpd still serves"
    );
}

#[test]
fn a_re_registered_client_is_not_removed_for_its_previous_registrations_failures() {
    // The client's attempts wait in its backlog until the test resets or reads them, so the
    // re-registration lands between the second and third failure however slow the machine is.
    let crnpd = Crnpd::start(&[
        "--client-retry-count",
        "3",
        "--client-retry-interval",
        "0.3",
        "--client-timeout",
        "60",
    ]);
    let client = ip(88);
    let gate = Gate::listen(client);
    assert_eq!(
        crnpd.register(client, &reg("ADD_CLIENT", gate.port(), &membership())),
        "OK"
    );
    assert_eq!(crnpd.publish_json(&membership_event("n1")).0, 202);
    gate.reset_next();
    gate.reset_next();
    let reset = ["cause=\"reset\""];
    crnpd.wait_metric("crnp_delivery_failures_total", &reset, |v| v == 2.0);
    assert_eq!(
        crnpd.register(client, &reg("ADD_CLIENT", gate.port(), &membership())),
        "OK"
    );
    gate.reset_next();
    crnpd.wait_metric("crnp_delivery_failures_total", &reset, |v| v == 3.0);
    assert_eq!(
        crnpd.client_count(),
        1,
        "a third failure in all, but the first of this registration"
    );
    let event = gate.receive_next();
    assert_eq!(pair_value(&event, "node_list").as_deref(), Some("n1"));
    assert_eq!(
        crnpd.metric("crnp_clients_removed_total", &["reason=\"unreachable\""]),
        0.0
    );
}

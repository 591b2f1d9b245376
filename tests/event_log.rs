//! Every acknowledged event reaches every subscriber (issue #13), black-box: a real crnpd, a
//! real redb file, real subscribers on loopback that outlive crnpd's crashes and restarts.
//!
//! The scenario: 40 subscribers (half for everything, half for one resource), 10 of them slow
//! (50 ms before reading each delivery), 300 events published and acknowledged, then crnpd is
//! stopped (kill -9, SIGTERM, or kill -9 with a standby taking over) while the slow ones still
//! have a backlog. Afterwards every subscriber must have every event it matched, the first
//! occurrences in publish order; duplicates only of what it received shortly before the crash
//! (none after SIGTERM).

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{
    Crnpd, Sink, WAIT, dead_port, event_type, http, json_event, mount_small_tmpfs, reg, spawn,
};

const R_STATE: (&str, &str) = ("EC_Cluster", "ESC_cluster_r_state");
const EVENTS: usize = 300;
const SUBSCRIBERS: usize = 40;
const SLOW: usize = 10;
const SLOW_READ: Duration = Duration::from_millis(50);
/// Duplicates one slow subscriber may get after a crash: what it received during the last
/// cursor interval (0.1 s, two deliveries at 50 ms each) and the commit after it, plus the
/// one in flight, with room for a loaded machine.
const CRASH_DUPLICATES: usize = 12;

/// The `n`th test's address block: 127.13.`n`.x, apart from every other test's.
fn address(test: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 13, test, host))
}

fn marker(i: usize) -> String {
    format!("E{i}")
}

/// Event `i`: for resource `a` when `i` is even, `b` when odd.
fn event(i: usize) -> String {
    let name = if i.is_multiple_of(2) { "a" } else { "b" };
    json_event(
        R_STATE.0,
        R_STATE.1,
        &[("r_name", name), ("state_list", &marker(i))],
    )
}

/// Publishes events `range` in batches of 30; each batch is acknowledged (202) before the next.
fn publish(crnpd: &Crnpd, range: std::ops::Range<usize>) {
    let all: Vec<usize> = range.collect();
    for batch in all.chunks(30) {
        let body = format!(
            "[{}]",
            batch
                .iter()
                .map(|i| event(*i))
                .collect::<Vec<_>>()
                .join(",")
        );
        let (status, text) = crnpd.publish_json(&body);
        assert_eq!(status, 202, "publish acknowledged: {text}");
    }
}

/// A subscriber of the scenario with what it is owed.
struct Subscriber {
    sink: Sink,
    slow: bool,
    /// Markers of the events it matched, in publish order.
    owed: Vec<String>,
}

/// Registers the 40 subscribers: even ones for everything, odd ones for resource `a` only;
/// the first [`SLOW`] are slow.
fn subscribe(crnpd: &Crnpd, test: u8) -> Vec<Subscriber> {
    (0..SUBSCRIBERS)
        .map(|i| {
            let slow = i < SLOW;
            let ip = address(test, 10 + i as u8);
            let sink = Sink::listen(ip, if slow { SLOW_READ } else { Duration::ZERO });
            let everything = i % 2 == 0;
            let types = if everything {
                event_type("EC_Cluster", None, &[])
            } else {
                event_type(R_STATE.0, Some(R_STATE.1), &[("r_name", "a")])
            };
            assert_eq!(
                crnpd.register(ip, &reg("ADD_CLIENT", sink.addr.port(), &types)),
                "OK"
            );
            let owed = (0..EVENTS)
                .filter(|e| everything || e % 2 == 0)
                .map(marker)
                .collect();
            Subscriber { sink, slow, owed }
        })
        .collect()
}

/// Waits, bounded, until `check` holds, polling every 20 ms.
fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until cursor reports made after this call have been committed: each core reports
/// at most once per interval, so four more cursor batches than now include one made later.
fn wait_for_later_cursor_batches(crnpd: &Crnpd) {
    let now = crnpd.metric("crnp_cursor_write_batches_total", &[]);
    crnpd.wait_metric("crnp_cursor_write_batches_total", &[], |v| v >= now + 4.0);
}

/// What one subscriber received, checked against what it is owed.
#[derive(Debug)]
struct Outcome {
    slow: bool,
    duplicates: usize,
}

/// Every owed event arrived, the first occurrences in publish order, nothing else.
fn check(subscriber: &Subscriber, index: usize) -> Outcome {
    let received = subscriber.sink.received();
    let mut seen = HashSet::new();
    let first: Vec<&String> = received.iter().filter(|m| seen.insert(*m)).collect();
    let owed: Vec<&String> = subscriber.owed.iter().collect();
    assert_eq!(
        first, owed,
        "subscriber {index}: first occurrences are exactly what it matched, in publish order"
    );
    Outcome {
        slow: subscriber.slow,
        duplicates: received.len() - first.len(),
    }
}

/// How crnpd goes away during the backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Kill9,
    Terminate,
    Takeover,
}

/// The scenario of the file's doc comment; returns each subscriber's outcome.
fn backlog_survives(stop: Stop, test: u8) -> Vec<Outcome> {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let listen = SocketAddr::new(address(test, 1), dead_port(address(test, 1)));
    let listen_arg = listen.to_string();
    // The default retry schedule (one attempt per 10 minutes): after a kill -9, the dead
    // process's last connection to a slow subscriber stays open (FIN_WAIT_2) until that
    // subscriber reads it and holds the one 4-tuple of the fixed source port. The new crnpd's
    // attempts get EADDRNOTAVAIL until then, a shortage of its own ports tried again within a
    // second; were it counted as the client's failure, the next try would be 10 minutes away.
    let args = ["--listen", listen_arg.as_str()];
    let crnpd = Crnpd::start_in(&data, temp.path(), &args);
    let standby = (stop == Stop::Takeover).then(|| {
        let http = SocketAddr::new(address(test, 2), dead_port(address(test, 2))).to_string();
        spawn(
            &data,
            temp.path(),
            &["--standby", "--listen", &listen_arg, "--http", &http],
        )
    });
    let subscribers = subscribe(&crnpd, test);
    publish(&crnpd, 0..EVENTS);
    wait_until(
        Duration::from_secs(60),
        "the fast subscribers' every event",
        || {
            subscribers
                .iter()
                .filter(|s| !s.slow)
                .all(|s| s.sink.count() >= s.owed.len())
        },
    );
    wait_for_later_cursor_batches(&crnpd);
    let backlog = |subscribers: &[Subscriber]| -> usize {
        subscribers
            .iter()
            .map(|s| s.owed.len().saturating_sub(s.sink.count()))
            .sum()
    };
    let before = backlog(&subscribers);
    assert!(
        before > 1000,
        "the slow subscribers still have a backlog: {before}"
    );
    let standby = match stop {
        Stop::Kill9 | Stop::Takeover => {
            crnpd.kill9();
            standby
        }
        Stop::Terminate => {
            assert!(crnpd.terminate().success(), "a clean stop");
            standby
        }
    };
    let left = backlog(&subscribers);
    println!("{stop:?}: stopped with a backlog of {left} deliveries");
    let restarted = match standby {
        Some((child, log)) => Crnpd::await_ready(child, &data, log),
        None => Crnpd::start_in(&data, temp.path(), &args),
    };
    let recovered = restarted.metric("crnp_log_recovered_deliveries_total", &[]);
    assert!(
        recovered as usize >= left,
        "the backlog ({left}) is recovered from the log: {recovered}"
    );
    assert_eq!(
        restarted.metric("crnp_log_resynced_clients_total", &[]),
        0.0
    );
    let missing = |subscribers: &[Subscriber]| -> Vec<(usize, usize, Option<String>)> {
        subscribers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let seen: HashSet<String> = s.sink.received().into_iter().collect();
                let lost: Vec<&String> = s.owed.iter().filter(|m| !seen.contains(*m)).collect();
                (!lost.is_empty()).then(|| (i, lost.len(), lost.first().map(|m| (*m).clone())))
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !missing(&subscribers).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{stop:?}: subscribers still missing events (index, how many, first): {:?}; metrics:\n{}\nlog:\n{}",
            missing(&subscribers),
            http(restarted.http, "GET", "/metrics", None, None).1,
            restarted.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Everything owed has arrived; once every cursor is durable at the floor, nothing more is
    // queued, so a stray duplicate has had its chance to show.
    restarted.wait_metric("crnp_cursor_rows", &[], |v| v == 0.0);
    let outcomes: Vec<Outcome> = subscribers
        .iter()
        .enumerate()
        .map(|(i, s)| check(s, i))
        .collect();
    let duplicates: Vec<usize> = outcomes.iter().map(|o| o.duplicates).collect();
    println!("{stop:?}: duplicates per subscriber (the first {SLOW} are slow): {duplicates:?}");
    println!(
        "{stop:?}: attempts put off for a busy 4-tuple after the restart: {}",
        restarted.metric("crnp_local_shortages_total", &["resource=\"ports\""])
    );
    outcomes
}

/// After a crash: at most [`CRASH_DUPLICATES`] per slow subscriber, none for the others.
fn assert_crash_duplicates(outcomes: &[Outcome]) {
    for (i, outcome) in outcomes.iter().enumerate() {
        let bound = if outcome.slow { CRASH_DUPLICATES } else { 0 };
        assert!(
            outcome.duplicates <= bound,
            "subscriber {i}: {} duplicates, at most {bound}",
            outcome.duplicates
        );
    }
}

#[test]
fn kill9_during_a_backlog_loses_no_acknowledged_event() {
    assert_crash_duplicates(&backlog_survives(Stop::Kill9, 1));
}

#[test]
fn a_standby_taking_over_during_a_backlog_loses_no_acknowledged_event() {
    assert_crash_duplicates(&backlog_survives(Stop::Takeover, 2));
}

#[test]
fn sigterm_during_a_backlog_loses_nothing_and_sends_nothing_twice() {
    let outcomes = backlog_survives(Stop::Terminate, 3);
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(outcome.duplicates, 0, "subscriber {i}");
    }
}

/// An r_state event for resource `name` with marker `state`.
fn r_event(name: &str, state: &str) -> String {
    json_event(
        R_STATE.0,
        R_STATE.1,
        &[("r_name", name), ("state_list", state)],
    )
}

fn publish_one(crnpd: &Crnpd, body: &str) {
    let (status, text) = crnpd.publish_json(body);
    assert_eq!(status, 202, "{text}");
}

#[test]
fn a_client_behind_the_retained_log_gets_the_latest_state_and_the_log_stays_in_its_bounds() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let ip = address(4, 10);
    let args = [
        "--log-retention-events",
        "5",
        "--client-retry-count",
        "100",
        "--client-retry-interval",
        "6000",
    ];
    let crnpd = Crnpd::start_in(&data, temp.path(), &args);
    // Nobody listens on its port yet: every attempt is refused and retried a minute later.
    let port = dead_port(ip);
    let types = event_type("EC_Cluster", None, &[]);
    assert_eq!(crnpd.register(ip, &reg("ADD_CLIENT", port, &types)), "OK");
    for i in 0..10 {
        publish_one(&crnpd, &r_event("x", &format!("X{i}")));
    }
    for i in 0..10 {
        publish_one(&crnpd, &r_event("y", &format!("Y{i}")));
    }
    crnpd.wait_metric("crnp_log_cursors_overrun_total", &[], |v| v == 1.0);
    assert_eq!(
        crnpd.metric("crnp_log_entries", &[]),
        5.0,
        "the dead client's cursor does not hold the log past --log-retention-events"
    );
    assert_eq!(crnpd.metric("crnp_log_oldest_seq", &[]), 15.0);
    assert!(
        crnpd
            .log()
            .contains("log retention passed these clients' cursors")
    );
    crnpd.kill9();

    let sink = Sink::listen_on(SocketAddr::new(ip, port), Duration::ZERO);
    let again = Crnpd::start_in(&data, temp.path(), &args);
    assert_eq!(again.metric("crnp_log_resynced_clients_total", &[]), 1.0);
    assert_eq!(
        again.metric("crnp_log_recovered_deliveries_total", &[]),
        5.0
    );
    wait_until(WAIT, "the resync and the retained events", || {
        sink.count() >= 6
    });
    assert_eq!(
        sink.received(),
        ["X9", "Y5", "Y6", "Y7", "Y8", "Y9"],
        "the latest state of x (no longer in the log), then the retained log, in order"
    );
    assert!(
        again
            .log()
            .contains("the event log no longer held every event")
    );
}

#[test]
fn the_log_is_readable_over_http_and_a_client_can_be_replayed_from_it() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let crnpd = Crnpd::start_in(
        &data,
        temp.path(),
        &[
            "--admin-token",
            "sesame",
            "--client-retry-count",
            "100",
            "--client-retry-interval",
            "6000",
        ],
    );
    // A client nobody answers for: its cursor keeps every event in the log.
    let holder = address(5, 9);
    let everything = event_type("EC_Cluster", None, &[]);
    assert_eq!(
        crnpd.register(holder, &reg("ADD_CLIENT", dead_port(holder), &everything)),
        "OK"
    );
    let ip = address(5, 10);
    let sink = Sink::listen(ip, Duration::ZERO);
    let types = event_type(R_STATE.0, Some(R_STATE.1), &[("r_name", "a")]);
    assert_eq!(
        crnpd.register(ip, &reg("ADD_CLIENT", sink.addr.port(), &types)),
        "OK"
    );
    for (name, state) in [("a", "A0"), ("b", "B1"), ("a", "A2"), ("a", "A3")] {
        let (status, _) = http(
            crnpd.http,
            "POST",
            "/v1/events",
            Some(("application/json", r_event(name, state).as_bytes())),
            Some("sesame"),
        );
        assert_eq!(status, 202);
    }
    wait_until(WAIT, "three deliveries", || sink.count() == 3);

    let (status, body) = http(crnpd.http, "GET", "/v1/events?after=0&limit=2", None, None);
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(page["next_seq"], 4);
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1, 2]);
    let second = page["events"][0]["sc_event"].as_str().expect("sc_event");
    assert!(
        second.starts_with("<?xml") && second.contains("B1"),
        "{second}"
    );
    for (limit, expected) in [(0, 400), (1, 200), (10_000, 200), (10_001, 400)] {
        let (status, _) = http(
            crnpd.http,
            "GET",
            &format!("/v1/events?limit={limit}"),
            None,
            None,
        );
        assert_eq!(status, expected, "limit {limit}: 1 to 10,000 are served");
    }

    let path = format!("/v1/clients/{}/replay?after=0", sink.addr);
    let (status, _) = http(crnpd.http, "POST", &path, None, None);
    assert_eq!(status, 401, "a replay changes state: it needs the token");
    let (status, body) = http(crnpd.http, "POST", &path, None, Some("sesame"));
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON")["queued"],
        2
    );
    wait_until(WAIT, "the replayed events", || sink.count() == 5);
    assert_eq!(sink.received(), ["A0", "A2", "A3", "A2", "A3"]);

    // The same through the command line.
    let crnp = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_crnp"))
            .args(args)
            .args(["--http", &crnpd.http.to_string()])
            .output()
            .expect("run crnp");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, listed) = crnp(&["events", "--after", "0", "--limit", "2"]);
    assert_eq!(code, Some(0));
    let entries: Vec<&str> = listed.split_terminator("\n\n").collect();
    assert_eq!(entries.len(), 2, "{listed}");
    assert!(
        entries[0].starts_with("seq 1\n<?xml") && entries[0].contains("B1"),
        "{listed}"
    );
    assert!(
        entries[1].starts_with("seq 2\n<?xml") && entries[1].contains("A2"),
        "{listed}"
    );
    let client = sink.addr.to_string();
    let (code, _) = crnp(&["replay", &client, "--after", "2"]);
    assert_eq!(code, Some(1), "refused without the token");
    let (code, said) = crnp(&["replay", &client, "--after", "2", "--admin-token", "sesame"]);
    assert_eq!(
        (code, said.trim()),
        (Some(0), format!("1 events queued for {client}").as_str())
    );
    wait_until(WAIT, "the event replayed from the command line", || {
        sink.count() == 6
    });
    assert_eq!(sink.received()[5], "A3");

    let unknown = format!("/v1/clients/{}/replay", SocketAddr::new(ip, 1));
    let (status, _) = http(crnpd.http, "POST", &unknown, None, Some("sesame"));
    assert_eq!(status, 404);
    assert_eq!(
        crnpd.metric("crnp_log_entries", &[]),
        4.0,
        "the holder has none of them"
    );
}

/// An ADD_CLIENT of about 5 KB, so a 2 MiB disk fills within a few hundred of them.
fn bulky(port: u16) -> String {
    let types: String = (0..20)
        .map(|k| {
            let name = format!("{port}-{k}-{}", "x".repeat(200));
            event_type(R_STATE.0, Some(R_STATE.1), &[("r_name", &name)])
        })
        .collect();
    reg("ADD_CLIENT", port, &types)
}

#[test]
fn a_full_disk_during_cursor_writes_loses_no_acknowledged_event_and_cursors_resume() {
    let temp = tempfile::tempdir().expect("tempdir");
    let mount_point = temp.path().join("small-disk");
    let mounted = mount_small_tmpfs(&mount_point, "2m")
        .unwrap_or_else(|reason| panic!("this test needs root to mount a small tmpfs: {reason}"));
    let data = mount_point.join("data");
    let crnpd = Crnpd::start_in(&data, temp.path(), &[]);
    let ip = address(6, 10);
    // The subscriber reads nothing until the disk is full, so the whole backlog is still owed
    // then however long filling takes on a loaded machine; then it reads one event per 0.1 s.
    let sink = Sink::held(ip, Duration::from_millis(100));
    let everything = event_type("EC_Cluster", None, &[]);
    assert_eq!(
        crnpd.register(ip, &reg("ADD_CLIENT", sink.addr.port(), &everything)),
        "OK"
    );
    let owed: Vec<String> = (0..100).map(marker).collect();
    publish(&crnpd, 0..100);

    // Fill the disk: every commit fails from here on, cursor writes included.
    let filler = address(6, 20);
    let full = (10_000..12_000u16)
        .find(|port| crnpd.register(filler, &bulky(*port)) == "SYSTEM_ERROR")
        .expect("the 2 MiB disk filled within 2,000 registrations");
    let failed_commits = crnpd.metric("crnp_registry_commit_errors_total", &[]);
    sink.release();
    // A failed commit frees the pages it took, and a small cursor commit may fit into them:
    // keep the disk full with more registrations until a commit that was not one of ours
    // (a cursor write) has failed too, while deliveries go on.
    let mut ours = 0.0;
    let mut port = full + 1;
    let deadline = Instant::now() + WAIT;
    loop {
        if crnpd.register(filler, &bulky(port)) == "SYSTEM_ERROR" {
            ours += 1.0;
        }
        port += 1;
        let others = crnpd.metric("crnp_registry_commit_errors_total", &[]) - failed_commits - ours;
        if sink.count() >= 5 && others >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for deliveries going on and a cursor write failing ({others} other failed commits)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // While the disk stays full, cursor reports alone are committed once a second, doubling
    // to 10 s, not every `--cursor-interval` (each failed commit reopens the store): over 15
    // more deliveries (1.5 s and more of reports every 0.1 s), a few failed commits at most.
    let (errors_before, delivered_before) = (
        crnpd.metric("crnp_registry_commit_errors_total", &[]),
        sink.count(),
    );
    wait_until(WAIT, "15 more deliveries", || {
        sink.count() >= delivered_before + 15
    });
    let paused_errors = crnpd.metric("crnp_registry_commit_errors_total", &[]) - errors_before;
    assert!(
        paused_errors <= 4.0,
        "cursor-only commits pause while commits fail: {paused_errors} failed commits"
    );
    let batches = crnpd.metric("crnp_cursor_write_batches_total", &[]);

    // Room again: the next cursor write succeeds, without a restart.
    let remount = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&mount_point)
        .status()
        .expect("run mount");
    assert!(remount.success(), "remount larger");
    crnpd.wait_metric("crnp_cursor_write_batches_total", &[], |v| v > batches);
    println!(
        "disk full at registration {}; {} delivered when cursors resumed",
        full - 10_000,
        sink.count()
    );
    crnpd.kill9();

    let again = Crnpd::start_in(&data, temp.path(), &[]);
    wait_until(Duration::from_secs(60), "every acknowledged event", || {
        let seen: HashSet<String> = sink.received().into_iter().collect();
        owed.iter().all(|m| seen.contains(m))
    });
    let received = sink.received();
    let mut seen = HashSet::new();
    let first: Vec<&String> = received.iter().filter(|m| seen.insert(*m)).collect();
    assert_eq!(first, owed.iter().collect::<Vec<_>>(), "in publish order");
    println!(
        "{} duplicates after the crash",
        received.len() - first.len()
    );
    drop(again);
    drop(mounted);
}

//! Guards delivery at scale: a thousand subscribers each receive every event they registered
//! for, in order, byte-identical across subscribers; and after a hundred thousand deliveries,
//! a third of them to dead or hanging clients, crnpd holds no more file descriptors than idle.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};

use common::*;

fn load_type() -> String {
    event_type("EC_Load", None, &[])
}

fn batch(first: usize, count: usize) -> String {
    let events: Vec<String> = (first..first + count)
        .map(|n| json_event("EC_Load", "ESC_load", &[("ev_test_seq", &n.to_string())]))
        .collect();
    format!("[{}]", events.join(","))
}

fn loopback(third: u8, fourth: u8) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, third, fourth))
}

#[test]
fn a_thousand_subscribers_get_every_event_in_order_with_identical_bytes() {
    let crnpd = Crnpd::start(&[]);
    let subscribers: Vec<Subscriber> = (0..1000)
        .map(|i| Subscriber::listen(loopback(10 + (i / 200) as u8, 1 + (i % 200) as u8)))
        .collect();
    for s in &subscribers {
        assert_eq!(
            crnpd.register(s.addr.ip(), &reg("ADD_CLIENT", s.port(), &load_type())),
            "OK"
        );
    }
    let events = 100;
    for first in (0..events).step_by(25) {
        assert_eq!(crnpd.publish_json(&batch(first, 25)).0, 202);
    }
    let reference = subscribers[0].take(events);
    let order: Vec<usize> = reference
        .iter()
        .map(|e| {
            pair_value(e, "ev_test_seq")
                .and_then(|s| s.parse().ok())
                .expect("seq")
        })
        .collect();
    assert_eq!(order, (0..events).collect::<Vec<_>>(), "in publish order");
    for (i, s) in subscribers.iter().enumerate().skip(1) {
        assert!(
            s.take(events) == reference,
            "subscriber {i} got different bytes or order"
        );
    }
    // A subscriber has the event once crnpd closes; crnpd counts it once it sees the close.
    let delivered = (1000 * events) as f64;
    assert_eq!(
        crnpd.wait_metric("crnp_events_delivered_total", &[], |v| v >= delivered),
        delivered
    );
    assert_eq!(
        crnpd.metric("crnp_event_serializations_total", &[]),
        events as f64,
        "serialized once per event"
    );
}

/// A listener whose accept queue is full, so connections to it hang until the deadline.
fn hanging_listener(ip: std::net::IpAddr) -> (TcpListener, Vec<TcpStream>) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.bind(&SocketAddr::new(ip, 0).into()).expect("bind");
    socket.listen(0).expect("listen");
    let listener: TcpListener = socket.into();
    let addr = listener.local_addr().expect("addr");
    let fillers = (0..2)
        .filter_map(|_| {
            TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).ok()
        })
        .collect();
    (listener, fillers)
}

#[test]
fn no_descriptor_leaks_after_a_hundred_thousand_deliveries_to_live_dead_and_hanging_clients() {
    // Short deadlines make a hundred attempts per dead or hanging client quick. The live
    // subscribers' threads must still answer within the deadline on a loaded 2-core machine:
    // at 10 ms, CPU contention made whole runs of attempts to live ones time out until they
    // were removed; 50 ms leaves them room.
    let crnpd = Crnpd::start(&[
        "--client-retry-count",
        "100",
        "--client-retry-interval",
        "0.01",
        "--client-timeout",
        "0.05",
    ]);
    let live: Vec<Subscriber> = (0..40)
        .map(|i| Subscriber::listen(loopback(20, 1 + i)))
        .collect();
    for s in &live {
        assert_eq!(
            crnpd.register(s.addr.ip(), &reg("ADD_CLIENT", s.port(), &load_type())),
            "OK"
        );
    }
    let idle_fds = idle_descriptors(&crnpd);
    let hanging: Vec<(TcpListener, Vec<TcpStream>)> = (0..30)
        .map(|i| hanging_listener(loopback(21, 1 + i)))
        .collect();
    for (listener, _) in &hanging {
        let addr = listener.local_addr().expect("addr");
        assert_eq!(
            crnpd.register(addr.ip(), &reg("ADD_CLIENT", addr.port(), &load_type())),
            "OK"
        );
    }
    for i in 0..340u16 {
        let ip = loopback(22, 1 + (i % 200) as u8);
        assert_eq!(
            crnpd.register(ip, &reg("ADD_CLIENT", dead_port(ip), &load_type())),
            "OK"
        );
    }
    let events = 1700;
    for first in (0..events).step_by(100) {
        assert_eq!(crnpd.publish_json(&batch(first, 100)).0, 202);
    }
    for s in &live {
        assert_every_event_at_least_once_in_order(s, events);
    }
    crnpd.wait_metric("crnp_clients", &[], |v| v == live.len() as f64);
    crnpd.wait_metric("crnp_deliveries_in_flight", &[], |v| v == 0.0);
    let ok = crnpd.metric("crnp_delivery_attempts_total", &["result=\"ok\""]);
    let failed = crnpd.metric("crnp_delivery_attempts_total", &["result=\"error\""]);
    assert!(ok + failed >= 100_000.0, "{ok} + {failed} attempts");
    assert!(
        3.0 * failed >= ok + failed,
        "a third failed: {failed} of {}",
        ok + failed
    );
    let timeouts = crnpd.metric("crnp_delivery_failures_total", &["cause=\"timeout\""]);
    assert!(timeouts >= 1500.0, "hanging clients timed out: {timeouts}");
    // Back to the idle level: a leaked descriptor keeps the count above it, and the wait fails.
    crnpd.wait_metric("crnp_open_fds", &[], |v| v <= idle_fds);
}

/// The descriptors crnpd holds when nothing is in progress. A registration connection or the
/// previous scrape's HTTP connection can still be closing when a scrape counts, and each only ever
/// adds to the count, so the idle level is the least of a few counts taken once no registration
/// connection is open.
fn idle_descriptors(crnpd: &Crnpd) -> f64 {
    crnpd.wait_metric("crnp_registration_connections", &[], |v| v == 0.0);
    (0..5)
        .map(|_| crnpd.metric("crnp_open_fds", &[]))
        .fold(f64::INFINITY, f64::min)
}

/// Delivery is at least once: a retried attempt may repeat an event, never skip or reorder one.
/// An attempt cut by its deadline may leave the client an empty or partial document, which a
/// client discards (it does not parse); those are skipped here too.
fn assert_every_event_at_least_once_in_order(subscriber: &Subscriber, events: usize) {
    let mut expected = 0;
    for _ in 0..events * 4 {
        let (_, event) = subscriber.next();
        if !event.ends_with("</SC_EVENT>") {
            continue;
        }
        let seq: usize = pair_value(&event, "ev_test_seq")
            .and_then(|s| s.parse().ok())
            .expect("seq");
        assert!(
            seq == expected || seq + 1 == expected,
            "got {seq} when {expected} was next"
        );
        if seq == expected {
            expected += 1;
        }
        if expected == events {
            return;
        }
    }
    panic!("only {expected} of {events} events arrived");
}

//! Guards the source of deliveries. The developer's guide tells clients to accept a delivery
//! only from the address AND port they registered with, so by default every delivery leaves
//! from the service IP and the CRNP listen port: a client that checks this gets a burst of 40
//! events, in order, over its single 4-tuple (each delivery reuses the TIME_WAIT the previous
//! one left, which Linux allows for an explicitly bound port when TCP timestamps are on,
//! whatever `tcp_tw_reuse` says); `--source-port 0` gives ephemeral ports, all of which the
//! client rejects; `--source-port N` another fixed port; a wildcard `--listen` and
//! `--source-addr` work too; the TIME_WAIT entries deliveries leave on the listen port do not
//! keep a restarted server off it. With TCP timestamps off (a private network namespace, root only)
//! the TIME_WAIT 4-tuple cannot be reused: that is a counted, retried `no_port` failure of that
//! client alone, while other clients keep receiving.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::*;
use socket2::{Domain, Socket, Type};

/// A client that follows the guide: it accepts a delivery only from `expect`, the address and
/// port it registered with. Others it reads and throws away, as a client ignoring a stranger.
struct StrictClient {
    inner: Subscriber,
    expect: SocketAddr,
}

/// What the strict client made of one delivery connection.
#[derive(Debug)]
enum Verdict {
    /// From the registration address and port: the event.
    Accepted(String),
    /// From somewhere else: the source it came from.
    Rejected(SocketAddr),
}

impl StrictClient {
    fn listen(ip: IpAddr, expect: SocketAddr) -> StrictClient {
        StrictClient {
            inner: Subscriber::listen(ip),
            expect,
        }
    }

    fn port(&self) -> u16 {
        self.inner.port()
    }

    /// The verdict on the next delivery, waiting at most [`WAIT`].
    fn next(&self) -> Verdict {
        let (peer, event) = self.inner.next();
        if peer == self.expect {
            Verdict::Accepted(event)
        } else {
            Verdict::Rejected(peer)
        }
    }

    /// The `n` of the events of the next `n` deliveries, panicking on a rejected one.
    fn accept_all(&self, n: usize) -> Vec<u32> {
        (0..n)
            .map(|k| match self.next() {
                Verdict::Accepted(event) => sequence_of(&event),
                Verdict::Rejected(peer) => panic!(
                    "delivery {k} came from {peer}, not from {}: a strict client drops it",
                    self.expect
                ),
            })
            .collect()
    }
}

fn sequence_of(event: &str) -> u32 {
    pair_value(event, "n")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pair n in {event}"))
}

const BURST: u32 = 40;

/// Publishes events `n = 0..count` in one request: a burst the publisher sees acknowledged
/// before the first delivery has finished.
fn publish_burst(crnpd: &Crnpd, count: u32) {
    let events: Vec<String> = (0..count)
        .map(|n| {
            json_event(
                "EC_Cluster",
                "ESC_cluster_membership",
                &[("n", &n.to_string())],
            )
        })
        .collect();
    let (status, body) = crnpd.publish_json(&format!("[{}]", events.join(",")));
    assert_eq!(status, 202, "{body}");
}

fn register_for_everything(crnpd: &Crnpd, from: IpAddr, port: u16) {
    let everything = event_type("EC_Cluster", None, &[]);
    assert_eq!(
        crnpd.register(from, &reg("ADD_CLIENT", port, &everything)),
        "OK"
    );
}

/// The fixed source port relies on TCP timestamps; say so rather than fail obscurely.
fn assert_timestamps_on() {
    let value = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_timestamps")
        .expect("read net.ipv4.tcp_timestamps");
    assert_ne!(
        value.trim(),
        "0",
        "net.ipv4.tcp_timestamps=0 in this namespace: the fixed source port needs timestamps on"
    );
}

/// A burst to one strict client: every event arrives, in order, from the registration address,
/// and no attempt failed (none waited out a TIME_WAIT or a retry).
fn burst_reaches_a_strict_client(crnpd: &Crnpd) {
    let client = StrictClient::listen(ip(1), crnpd.listen);
    register_for_everything(crnpd, ip(1), client.port());
    publish_burst(crnpd, BURST);
    assert_eq!(
        client.accept_all(BURST as usize),
        (0..BURST).collect::<Vec<_>>()
    );
    assert_eq!(crnpd.metric("crnp_delivery_failures_total", &[]), 0.0);
    assert!(client.inner.nothing_yet(), "no delivery beyond the burst");
}

#[test]
fn by_default_a_burst_leaves_from_the_listen_address_and_port_in_order() {
    assert_timestamps_on();
    let crnpd = Crnpd::start(&[]);
    burst_reaches_a_strict_client(&crnpd);
}

#[test]
fn time_wait_is_reused_for_a_burst_with_tw_reuse_off() {
    std::thread::spawn(|| {
        enter_private_netns(&[("tcp_timestamps", "1"), ("tcp_tw_reuse", "0")]);
        let crnpd = Crnpd::start(&[]);
        burst_reaches_a_strict_client(&crnpd);
    })
    .join()
    .expect("the test thread");
}

#[test]
fn with_source_port_0_a_strict_client_rejects_every_delivery() {
    let crnpd = Crnpd::start(&["--source-port", "0"]);
    let client = StrictClient::listen(ip(1), crnpd.listen);
    register_for_everything(&crnpd, ip(1), client.port());
    publish_burst(&crnpd, BURST);
    for k in 0..BURST {
        match client.next() {
            Verdict::Rejected(peer) => {
                assert_eq!(peer.ip(), crnpd.listen.ip(), "delivery {k}: the service IP");
            }
            Verdict::Accepted(event) => {
                panic!("delivery {k} came from the listen port with --source-port 0: {event}")
            }
        }
    }
}

#[test]
fn source_port_n_is_the_source_of_every_delivery() {
    let port = dead_port(ip(1));
    let crnpd = Crnpd::start(&["--source-port", &port.to_string()]);
    let client = StrictClient::listen(ip(1), SocketAddr::new(crnpd.listen.ip(), port));
    register_for_everything(&crnpd, ip(1), client.port());
    publish_burst(&crnpd, 5);
    assert_eq!(client.accept_all(5), vec![0, 1, 2, 3, 4]);
}

#[test]
fn a_wildcard_listen_delivers_from_the_address_the_client_registered_with() {
    let crnpd = Crnpd::start(&["--listen", "0.0.0.0:0"]);
    let registered_with = SocketAddr::new(ip(1), crnpd.listen.port());
    let client = StrictClient::listen(ip(1), registered_with);
    let everything = event_type("EC_Cluster", None, &[]);
    let reply = exchange(
        registered_with,
        ip(1),
        reg("ADD_CLIENT", client.port(), &everything).as_bytes(),
    );
    assert_eq!(status_of(&reply), "OK");
    publish_burst(&crnpd, 5);
    assert_eq!(client.accept_all(5), vec![0, 1, 2, 3, 4]);
}

#[test]
fn source_addr_with_a_wildcard_listen_delivers_from_the_floating_ip_and_listen_port() {
    let crnpd = Crnpd::start(&["--listen", "0.0.0.0:0", "--source-addr", "127.0.0.3"]);
    let floating = SocketAddr::new(ip(3), crnpd.listen.port());
    let client = StrictClient::listen(ip(1), floating);
    let everything = event_type("EC_Cluster", None, &[]);
    let reply = exchange(
        floating,
        ip(1),
        reg("ADD_CLIENT", client.port(), &everything).as_bytes(),
    );
    assert_eq!(status_of(&reply), "OK");
    publish_burst(&crnpd, 5);
    assert_eq!(client.accept_all(5), vec![0, 1, 2, 3, 4]);
}

/// Sockets in TIME_WAIT whose local address is `local` (IPv4), from /proc/net/tcp.
fn time_wait_on(local: SocketAddr) -> usize {
    let IpAddr::V4(ip) = local.ip() else {
        panic!("an IPv4 address: {local}")
    };
    let wanted = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(ip.octets()),
        local.port()
    );
    std::fs::read_to_string("/proc/net/tcp")
        .expect("read /proc/net/tcp")
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&wanted.as_str()) && fields.get(3) == Some(&"06")
        })
        .count()
}

#[test]
fn the_time_wait_deliveries_leave_does_not_keep_a_restart_off_the_listen_port() {
    let crnpd = Crnpd::start(&[]);
    let listen = crnpd.listen;
    let client = StrictClient::listen(ip(1), listen);
    register_for_everything(&crnpd, ip(1), client.port());
    publish_burst(&crnpd, 3);
    assert_eq!(client.accept_all(3), vec![0, 1, 2]);
    assert!(crnpd.terminate().success());
    assert!(
        time_wait_on(listen) >= 1,
        "the deliveries left their 4-tuple in TIME_WAIT on {listen}"
    );
    // What a restarting server may do to check that nobody else serves the port: bind it with
    // SO_REUSEADDR and without SO_REUSEPORT.
    let probe = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    probe.set_reuse_address(true).expect("SO_REUSEADDR");
    probe
        .bind(&listen.into())
        .expect("TIME_WAIT entries hold no claim on the listen port");
    drop(probe);
    let listen_arg = listen.to_string();
    let again = Crnpd::start(&["--listen", &listen_arg]);
    assert_eq!(again.listen, listen);
    // A fresh registry: the same client registers again, and its 4-tuple is reused once more.
    register_for_everything(&again, ip(1), client.port());
    publish_burst(&again, 2);
    assert_eq!(client.accept_all(2), vec![0, 1]);
}

#[test]
fn without_timestamps_a_reused_4_tuple_is_a_counted_retried_failure_of_that_client_alone() {
    std::thread::spawn(|| {
        enter_private_netns(&[("tcp_timestamps", "0")]);
        // Three attempts 2 s apart: the busy client is retried for 4 s before it is removed.
        let crnpd = Crnpd::start(&[
            "--client-retry-count",
            "3",
            "--client-retry-interval",
            "6",
            "--client-timeout",
            "2",
        ]);
        let busy = StrictClient::listen(ip(1), crnpd.listen);
        register_for_everything(&crnpd, ip(1), busy.port());
        let healthy: Vec<StrictClient> = (0..3)
            .map(|_| StrictClient::listen(ip(2), crnpd.listen))
            .collect();
        for (k, client) in healthy.iter().enumerate() {
            let only_k = event_type(
                "EC_Cluster",
                Some("ESC_cluster_r_state"),
                &[("r_name", &format!("r{k}"))],
            );
            assert_eq!(
                crnpd.register(ip(2), &reg("ADD_CLIENT", client.port(), &only_k)),
                "OK"
            );
        }
        // The first delivery to `busy` leaves its 4-tuple in TIME_WAIT for 60 s...
        publish_burst(&crnpd, 1);
        assert_eq!(busy.accept_all(1), vec![0]);
        // ...so without timestamps the second cannot connect: EADDRNOTAVAIL, cause no_port.
        publish_burst(&crnpd, 1);
        crnpd.wait_metric(
            "crnp_delivery_failures_total",
            &["cause=\"no_port\""],
            |v| v >= 1.0,
        );
        // Meanwhile every other client gets its events (each has a 4-tuple of its own).
        for (k, client) in healthy.iter().enumerate() {
            crnpd.publish_json(&json_event(
                "EC_Cluster",
                "ESC_cluster_r_state",
                &[("r_name", &format!("r{k}"))],
            ));
            match client.next() {
                Verdict::Accepted(event) => assert!(event.contains(&format!("r{k}"))),
                Verdict::Rejected(peer) => panic!("healthy client {k}: delivery from {peer}"),
            }
        }
        assert_eq!(
            crnpd.metric("crnp_clients_removed_total", &["reason=\"unreachable\""]),
            0.0,
            "the healthy clients were served while the busy one was still being retried"
        );
        // The busy client's attempts are retried after the gap and counted; then it is removed.
        crnpd.wait_metric(
            "crnp_clients_removed_total",
            &["reason=\"unreachable\""],
            |v| v == 1.0,
        );
        assert_eq!(
            crnpd.metric("crnp_delivery_failures_total", &["cause=\"no_port\""]),
            3.0
        );
        assert_eq!(crnpd.metric("crnp_delivery_failures_total", &[]), 3.0);
        assert!(
            busy.inner.nothing_yet(),
            "nothing more reached the busy client"
        );
        crnpd.wait_metric("crnp_deliveries_in_flight", &[], |v| v == 0.0);
    })
    .join()
    .expect("the test thread");
}

//! Guards the source of deliveries. The developer's guide tells clients to accept a delivery
//! only from the address AND port they registered with, so by default every delivery leaves
//! from the service IP and the CRNP listen port: a client that checks this gets a burst of 40
//! events, in order, over its single 4-tuple (each delivery reuses the TIME_WAIT the previous
//! one left, which Linux allows for an explicitly bound port when TCP timestamps are on,
//! whatever `tcp_tw_reuse` says); `--source-port 0` gives ephemeral ports, all of which the
//! client rejects; `--source-port N` another fixed port; a wildcard `--listen` and
//! `--source-addr` work too; the TIME_WAIT entries deliveries leave on the listen port do not
//! keep a restarted server off it. With TCP timestamps off (a private network namespace, root only)
//! the TIME_WAIT 4-tuple cannot be reused: the client's next delivery waits the TIME_WAIT out
//! as a shortage of crnpd's own ports (tried again within a second, never counted against the
//! client), while other clients keep receiving.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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
fn without_timestamps_a_busy_4_tuple_is_waited_out_as_crnpds_shortage_and_stalls_no_other_client() {
    std::thread::spawn(|| {
        enter_private_netns(&[("tcp_timestamps", "0")]);
        // The default retry schedule: were the busy 4-tuple counted as the client's failure,
        // its next attempt would be 10 minutes away.
        let crnpd = Crnpd::start(&[]);
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
        // ...so without timestamps the next cannot connect (EADDRNOTAVAIL) until it ends: a
        // shortage of crnpd's own ports, put off and tried again, not the client's failure.
        let (status, body) = crnpd.publish_json(&json_event(
            "EC_Cluster",
            "ESC_cluster_membership",
            &[("n", "1")],
        ));
        assert_eq!(status, 202, "{body}");
        crnpd.wait_metric(
            "crnp_local_shortages_total",
            &["resource=\"ports\""],
            |v| v >= 1.0,
        );
        let path = format!("/v1/clients/{}:{}", ip(1), busy.port());
        let (status, shown) = http(crnpd.http, "GET", &path, None, None);
        assert_eq!(status, 200, "{shown}");
        let shown: serde_json::Value = serde_json::from_str(&shown).expect("client JSON");
        assert_eq!(shown["last_delivery"], "deferred: ports", "{shown}");
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
        // Once the TIME_WAIT ends, the busy client gets its event from the registration
        // address and port, within a second (the back-off's longest wait).
        let (peer, event) = busy.inner.next_within(Duration::from_secs(90));
        assert_eq!(peer, busy.expect);
        assert_eq!(sequence_of(&event), 1);
        let shortages = crnpd.metric("crnp_local_shortages_total", &["resource=\"ports\""]);
        assert!(
            (2.0..=120.0).contains(&shortages),
            "tried again, backing off to 1 s over the 60 s TIME_WAIT, not in a tight loop: {shortages}"
        );
        assert_eq!(crnpd.metric("crnp_delivery_failures_total", &[]), 0.0);
        assert_eq!(crnpd.metric("crnp_clients_removed_total", &[]), 0.0);
        crnpd.wait_metric("crnp_deliveries_in_flight", &[], |v| v == 0.0);
    })
    .join()
    .expect("the test thread");
}

/// Start-up binds where deliveries leave from, the way they will be bound; a source that
/// cannot be had stops start-up with a clear error naming it, rather than deferring every
/// delivery while looking healthy.
fn start_refused(args: &[&str]) -> String {
    let temp = tempfile::tempdir().expect("tempdir");
    let (mut crnpd, log) = spawn(&temp.path().join("data"), temp.path(), args);
    let status = wait_exit(&mut crnpd);
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "{said}");
    said
}

#[test]
fn a_source_port_another_program_holds_stops_start_up_and_a_started_crnpd_keeps_its_port() {
    let listen = SocketAddr::new(ip(1), dead_port(ip(1))).to_string();
    let other = std::net::TcpListener::bind(SocketAddr::new(ip(1), 0)).expect("bind");
    let taken = other.local_addr().expect("addr").port().to_string();
    let said = start_refused(&["--listen", &listen, "--source-port", &taken]);
    assert!(
        said.contains(&format!("deliveries cannot leave from {}:{taken}", ip(1)))
            && said.contains("--source-port"),
        "{said}"
    );
    drop(other);
    // Started, crnpd holds the port: another program cannot take it from under the deliveries.
    let crnpd = Crnpd::start(&["--listen", &listen, "--source-port", &taken]);
    let held = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let refused = held
        .bind(&SocketAddr::new(ip(1), taken.parse().expect("port")).into())
        .expect_err("the source port is crnpd's");
    assert_eq!(refused.kind(), std::io::ErrorKind::AddrInUse);
    let client = StrictClient::listen(ip(1), SocketAddr::new(ip(1), taken.parse().expect("port")));
    register_for_everything(&crnpd, ip(1), client.port());
    publish_burst(&crnpd, 3);
    assert_eq!(client.accept_all(3), vec![0, 1, 2]);
}

#[test]
fn a_source_addr_not_on_this_host_stops_start_up() {
    std::thread::spawn(|| {
        // A namespace of our own holds only loopback: 127.0.0.2 is local, 10.0.0.1 is not.
        enter_private_netns(&[]);
        let said = start_refused(&["--source-addr", "10.0.0.1"]);
        assert!(
            said.contains("deliveries cannot leave from 10.0.0.1:")
                && said.contains("--source-addr"),
            "{said}"
        );
    })
    .join()
    .expect("the test thread");
}

#[test]
fn the_ocf_agent_passes_source_port_to_crnpd() {
    let temp = tempfile::tempdir().expect("tempdir");
    let free = || dead_port(ip(1));
    let (listen, http_arg, source_port) = (
        format!("{}:{}", ip(1), free()),
        format!("{}:{}", ip(1), free()),
        free(),
    );
    let ocf = OcfResource::new(
        "crnpd_source_port",
        temp.path(),
        &[
            ("listen", &listen),
            ("http", &http_arg),
            ("source_port", &source_port.to_string()),
        ],
    );
    ocf.expect("start", 0, "starts");
    let (listen, http_addr): (SocketAddr, SocketAddr) = (
        listen.parse().expect("listen"),
        http_arg.parse().expect("http"),
    );
    let client = StrictClient::listen(ip(1), SocketAddr::new(ip(1), source_port));
    let everything = event_type("EC_Cluster", None, &[]);
    let registration = reg("ADD_CLIENT", client.port(), &everything);
    assert_eq!(
        status_of(&exchange(listen, ip(1), registration.as_bytes())),
        "OK"
    );
    let event = json_event("EC_Cluster", "ESC_cluster_membership", &[("n", "0")]);
    let published = http(
        http_addr,
        "POST",
        "/v1/events",
        Some(("application/json", event.as_bytes())),
        None,
    );
    assert_eq!(published.0, 202, "{published:?}");
    let delivered = client.accept_all(1);
    ocf.expect("stop", 0, "stops");
    assert_eq!(delivered, vec![0], "from the source_port given");
}

/// A client's one 4-tuple can be held by another connection: after a kill -9 or a crash, the
/// dead process's connection to a client that had not read its event can live on in the
/// kernel (most likely held by its io_uring operations until the ring is torn down) until
/// the client closes it. Here a connection of the test's own holds it, bound like crnpd's.
/// crnpd's attempts get EADDRNOTAVAIL while it is held: a shortage of its own ports, tried
/// again within a second, so the event goes out as soon as the 4-tuple is free, not one retry
/// gap (10 minutes by default) later, and nothing is counted against the client.
#[test]
fn a_4_tuple_held_by_another_connection_delays_a_client_only_until_it_is_free() {
    // The default retry schedule.
    let crnpd = Crnpd::start(&[]);
    let subscriber = std::net::TcpListener::bind(SocketAddr::new(ip(1), 0)).expect("bind");
    let client = subscriber.local_addr().expect("addr");
    register_for_everything(&crnpd, ip(1), client.port());
    let holder = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    holder.set_reuse_port(true).expect("SO_REUSEPORT");
    holder.set_reuse_address(true).expect("SO_REUSEADDR");
    holder
        .bind(&crnpd.listen.into())
        .expect("bind crnpd's source");
    holder.connect(&client.into()).expect("connect");
    let (held, peer) = subscriber.accept().expect("accept the holder");
    assert_eq!(
        peer, crnpd.listen,
        "the holder has crnpd's 4-tuple toward the client"
    );
    publish_burst(&crnpd, 1);
    crnpd.wait_metric("crnp_local_shortages_total", &["resource=\"ports\""], |v| {
        v >= 2.0
    });
    let path = format!("/v1/clients/{client}");
    let (status, shown) = http(crnpd.http, "GET", &path, None, None);
    assert_eq!(status, 200, "{shown}");
    let shown: serde_json::Value = serde_json::from_str(&shown).expect("client JSON");
    assert_eq!(shown["last_delivery"], "deferred: ports", "{shown}");
    // The holder closes first (its side keeps TIME_WAIT, with timestamps: reusable at once).
    drop(holder);
    drop(held);
    let (accepted, arrived) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = accepted.send(subscriber.accept().map(|(mut stream, peer)| {
            let mut event = String::new();
            let _ = stream.set_read_timeout(Some(WAIT));
            let _ = std::io::Read::read_to_string(&mut stream, &mut event);
            (peer, event)
        }));
    });
    let (peer, event) = arrived
        .recv_timeout(WAIT)
        .expect("the event arrives within seconds of the 4-tuple coming free, not a retry gap")
        .expect("accept");
    assert_eq!(peer, crnpd.listen);
    assert_eq!(sequence_of(&event), 0);
    assert_eq!(crnpd.metric("crnp_delivery_failures_total", &[]), 0.0);
    assert_eq!(crnpd.metric("crnp_clients_removed_total", &[]), 0.0);
}

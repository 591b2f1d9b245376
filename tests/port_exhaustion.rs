//! Guards the engine against source-port exhaustion: when TIME_WAIT sockets hold every local
//! port toward a client, `connect` fails with EADDRNOTAVAIL. The ports are crnpd's, not the
//! client's: crnpd counts a shortage (`crnp_local_shortages_total{resource="ports"}`), puts the
//! delivery off and tries again within a second, never counts it against the client, never
//! hangs on it, keeps delivering to other clients, and delivers as soon as a port is free.
//!
//! This is the `--source-port 0` mode (ephemeral source ports); with the default fixed source
//! port there is one 4-tuple per client and no port to run out of (tests/source_port.rs).
//! The exhaustion is made real, not simulated: the test runs in its own network namespace
//! (root only) whose ephemeral port range holds two ports and whose TIME_WAIT reuse is off.

mod common;

use common::*;

#[test]
fn exhausted_source_ports_are_crnpds_shortage_retried_until_a_port_is_free_and_never_a_hang() {
    std::thread::spawn(|| {
        enter_private_netns(&[
            ("ip_local_port_range", "50000 50001"),
            ("tcp_tw_reuse", "0"),
        ]);
        // Fixed ports, outside the two-port ephemeral range, in a namespace of our own; a short
        // retry schedule, so that were the exhaustion counted against the client, it would be
        // removed within a second.
        let crnpd = Crnpd::start(&[
            "--listen",
            "127.0.0.1:9444",
            "--http",
            "127.0.0.1:9445",
            "--source-port",
            "0",
            "--client-retry-count",
            "2",
            "--client-retry-interval",
            "0.4",
            "--client-timeout",
            "2",
        ]);
        let busy = Subscriber::listen_on(std::net::SocketAddr::new(ip(1), 7001));
        let other = Subscriber::listen_on(std::net::SocketAddr::new(ip(1), 7002));
        let everything = event_type("EC_Cluster", None, &[]);
        let only_z = event_type(
            "EC_Cluster",
            Some("ESC_cluster_r_state"),
            &[("r_name", "z")],
        );
        assert_eq!(
            crnpd.register(ip(1), &reg("ADD_CLIENT", 7001, &everything)),
            "OK"
        );
        assert_eq!(
            crnpd.register(ip(1), &reg("ADD_CLIENT", 7002, &only_z)),
            "OK"
        );
        for n in 0..2 {
            crnpd.publish_json(&json_event(
                "EC_Cluster",
                "ESC_cluster_membership",
                &[("n", &n.to_string())],
            ));
            busy.next();
        }
        // Both local ports now sit in TIME_WAIT toward `busy`: connecting to it again fails,
        // while connections to `other` (another 4-tuple) still find a port.
        crnpd.publish_json(&json_event(
            "EC_Cluster",
            "ESC_cluster_r_state",
            &[("r_name", "z")],
        ));
        assert!(
            other.next().1.contains("<![CDATA[z]]>"),
            "another client still receives"
        );
        crnpd.wait_metric("crnp_local_shortages_total", &["resource=\"ports\""], |v| {
            v >= 2.0
        });
        assert!(
            busy.nothing_yet(),
            "nothing reached the exhausted client yet"
        );
        // A port comes free: TIME_WAIT reuse lets connect take one a second after its last
        // use. The delivery put off goes out at its next try, and nothing was counted against
        // the client.
        std::fs::write("/proc/sys/net/ipv4/tcp_tw_reuse", "1").expect("set tcp_tw_reuse");
        let (_, event) = busy.next();
        assert!(event.contains("<![CDATA[z]]>"), "{event}");
        assert_eq!(crnpd.metric("crnp_delivery_failures_total", &[]), 0.0);
        assert_eq!(crnpd.metric("crnp_clients_removed_total", &[]), 0.0);
        crnpd.wait_metric("crnp_deliveries_in_flight", &[], |v| v == 0.0);
    })
    .join()
    .expect("the test thread");
}

//! Guards the admin API of a real crnpd over HTTP: listing, showing and deleting clients with
//! the fields operators read, the answers for an unknown client and a bad address, health, and
//! the token rule (401 without a token, 403 with a wrong one, success with the right one, from
//! the flag or a file; reads stay open), and that a non-loopback --http without a token
//! refuses to start.

mod common;

use std::io::Write;

use common::*;

fn membership() -> String {
    event_type("EC_Cluster", Some("ESC_cluster_membership"), &[])
}

fn event() -> String {
    json_event(
        "EC_Cluster",
        "ESC_cluster_membership",
        &[("node_list", "n1")],
    )
}

/// The raw response head of a request (status line and headers), for header checks.
fn response_head(crnpd: &Crnpd, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(crnpd.http).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let response = read_to_end(&mut stream);
    response
        .split_once("\r\n\r\n")
        .map_or(response.clone(), |(head, _)| head.to_owned())
}

#[test]
fn list_show_and_delete_clients() {
    let crnpd = Crnpd::start(&[]);
    let subscriber = Subscriber::listen(ip(70));
    let port = subscriber.port();
    assert_eq!(
        crnpd.register(ip(70), &reg("ADD_CLIENT", port, &membership())),
        "OK"
    );
    let rs = event_type(
        "EC_Cluster",
        Some("ESC_cluster_r_state"),
        &[("r_name", "db")],
    );
    assert_eq!(crnpd.register(ip(71), &reg("ADD_CLIENT", 7301, &rs)), "OK");

    let listed = crnpd.clients();
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), 2);
    let first = &listed[0];
    assert_eq!(first["address"], format!("127.0.0.70:{port}"));
    assert_eq!(first["event_types"][0]["class"], "EC_Cluster");
    assert_eq!(
        first["event_types"][0]["subclass"],
        "ESC_cluster_membership"
    );
    assert_eq!(first["queued"], 0);
    assert!(first["last_delivery"].is_null(), "no delivery yet: {first}");
    let registered_at = first["registered_at"].as_str().expect("registered_at");
    assert!(
        registered_at.len() == 24
            && registered_at.ends_with('Z')
            && registered_at.as_bytes()[10] == b'T',
        "RFC 3339 UTC: {registered_at}"
    );
    assert!(first["registered_at_ms"].as_u64().expect("ms") > 1_600_000_000_000);
    assert_eq!(listed[1]["address"], "127.0.0.71:7301");
    assert_eq!(listed[1]["event_types"][0]["nvpairs"][0]["name"], "r_name");

    // After a delivery the client shows its outcome.
    assert_eq!(crnpd.publish_json(&event()).0, 202);
    subscriber.next();
    let path = format!("/v1/clients/127.0.0.70:{port}");
    let deadline = std::time::Instant::now() + WAIT;
    let shown = loop {
        let (status, body) = http(crnpd.http, "GET", &path, None, None);
        assert_eq!(status, 200, "{body}");
        let shown: serde_json::Value = serde_json::from_str(&body).expect("client JSON");
        if shown["last_delivery"] == "ok" || std::time::Instant::now() > deadline {
            break shown;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(shown["last_delivery"], "ok", "{shown}");
    assert_eq!(shown["address"], format!("127.0.0.70:{port}"));

    // Delete: gone from the list and from show, and a second delete finds nothing.
    let (status, body) = http(
        crnpd.http,
        "DELETE",
        "/v1/clients/127.0.0.71:7301",
        None,
        None,
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(crnpd.client_count(), 1);
    let (status, body) = http(crnpd.http, "GET", "/v1/clients/127.0.0.71:7301", None, None);
    assert_eq!(
        (status, body.as_str()),
        (404, "no client 127.0.0.71:7301 is registered\n")
    );
    let (status, _) = http(
        crnpd.http,
        "DELETE",
        "/v1/clients/127.0.0.71:7301",
        None,
        None,
    );
    assert_eq!(status, 404);
    // The deleted client is really gone: its own REMOVE_CLIENT now fails.
    assert_eq!(
        crnpd.register(ip(71), &reg("REMOVE_CLIENT", 7301, "")),
        "FAIL"
    );
}

#[test]
fn unknown_clients_and_bad_addresses_get_clear_errors() {
    let crnpd = Crnpd::start(&[]);
    for method in ["GET", "DELETE"] {
        let (status, body) = http(
            crnpd.http,
            method,
            "/v1/clients/127.0.0.99:7000",
            None,
            None,
        );
        assert_eq!(status, 404, "{method}");
        assert_eq!(
            body, "no client 127.0.0.99:7000 is registered\n",
            "{method}"
        );
        for bad in [
            "not-an-address",
            "127.0.0.1",
            "127.0.0.1:99999",
            "300.0.0.1:7000",
        ] {
            let (status, body) = http(
                crnpd.http,
                method,
                &format!("/v1/clients/{bad}"),
                None,
                None,
            );
            assert_eq!(status, 400, "{method} {bad}: {body}");
            assert!(
                body.contains("is not a client address: expected IP:PORT"),
                "{method} {bad}: {body}"
            );
        }
    }
    assert_eq!(crnpd.client_count(), 0);
}

#[test]
fn health_and_readiness_answer_on_the_active_instance() {
    let crnpd = Crnpd::start(&[]);
    assert_eq!(
        http(crnpd.http, "GET", "/healthz", None, None),
        (200, "active\n".to_owned())
    );
    assert_eq!(
        http(crnpd.http, "GET", "/readyz", None, None),
        (200, "active\n".to_owned())
    );
}

/// Checks the token rule on a crnpd started with token `s3cret` (by flag or file).
fn check_token_rule(crnpd: &Crnpd) {
    assert_eq!(
        crnpd.register(ip(72), &reg("ADD_CLIENT", 7302, &membership())),
        "OK"
    );
    let body = event();
    let json = Some(("application/json", body.as_bytes()));
    let delete = "/v1/clients/127.0.0.72:7302";

    // Without a token: 401 with a challenge; with a wrong one: 403. Nothing changes.
    let (status, text) = http(crnpd.http, "POST", "/v1/events", json, None);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("Authorization: Bearer"), "{text}");
    let (status, _) = http(crnpd.http, "DELETE", delete, None, None);
    assert_eq!(status, 401);
    let (status, text) = http(crnpd.http, "POST", "/v1/events", json, Some("wrong"));
    assert_eq!((status, text.as_str()), (403, "wrong admin token\n"));
    let (status, _) = http(crnpd.http, "DELETE", delete, None, Some("wrong"));
    assert_eq!(status, 403);
    assert_eq!(crnpd.metric("crnp_events_published_total", &[]), 0.0);
    assert_eq!(crnpd.client_count(), 1);
    let head = response_head(
        crnpd,
        &format!("DELETE {delete} HTTP/1.1\r\nHost: crnpd\r\nConnection: close\r\n\r\n"),
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "a 401 names its scheme:\n{head}"
    );

    // Reads need no token.
    for path in [
        "/v1/clients",
        "/v1/clients/127.0.0.72:7302",
        "/metrics",
        "/healthz",
        "/readyz",
    ] {
        assert_eq!(http(crnpd.http, "GET", path, None, None).0, 200, "{path}");
    }

    // The right token: accepted.
    let (status, text) = http(crnpd.http, "POST", "/v1/events", json, Some("s3cret"));
    assert_eq!(status, 202, "{text}");
    let (status, text) = http(crnpd.http, "DELETE", delete, None, Some("s3cret"));
    assert_eq!(status, 204, "{text}");
    assert_eq!(crnpd.client_count(), 0);
    assert_eq!(crnpd.metric("crnp_events_published_total", &[]), 1.0);
    assert_eq!(
        crnpd.metric("crnp_clients_removed_total", &["reason=\"admin\""]),
        1.0
    );
}

#[test]
fn with_an_admin_token_changes_need_it() {
    let crnpd = Crnpd::start(&["--admin-token", "s3cret"]);
    check_token_rule(&crnpd);
}

#[test]
fn the_token_can_come_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, "s3cret\n").expect("write token");
    let crnpd = Crnpd::start(&["--admin-token-file", file.to_str().expect("utf-8 path")]);
    check_token_rule(&crnpd);
}

#[test]
fn a_non_loopback_http_address_without_a_token_refuses_to_start() {
    // The refusal comes before anything is bound, so no socket ever listens beyond loopback.
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, log) = spawn(
        &dir.path().join("data"),
        dir.path(),
        &["--http", "0.0.0.0:0"],
    );
    let status = wait_exit(&mut child);
    let log = std::fs::read_to_string(log).expect("log");
    assert!(
        !status.success(),
        "crnpd started on 0.0.0.0 without a token; log:\n{log}"
    );
    assert!(
        log.contains("--http 0.0.0.0:0 is not a loopback address") && log.contains("--admin-token"),
        "the refusal says why and what to do:\n{log}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn a_standby_is_alive_but_not_ready_until_it_takes_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let active = Crnpd::start_in(&data, dir.path(), &[]);
    let http_addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let http_arg = http_addr.to_string();
    let (child, log) = spawn(&data, dir.path(), &["--standby", "--http", &http_arg]);
    // Owned by a guard from here on, so the standby is stopped on every path.
    let standby = StandbyGuard(Some(child));
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(http_addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "standby never listened; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        http(http_addr, "GET", "/healthz", None, None),
        (200, "standby or stopping\n".to_owned())
    );
    assert_eq!(http(http_addr, "GET", "/readyz", None, None).0, 503);
    let (status, body) = http(http_addr, "GET", "/v1/clients", None, None);
    assert_eq!(
        (status, body.as_str()),
        (503, "not active (standby or stopping)\n")
    );
    let (_, metrics) = http(http_addr, "GET", "/metrics", None, None);
    assert_eq!(metric_sum(&metrics, "crnp_active", &[]), 0.0, "{metrics}");

    active.kill9();
    let ready = Crnpd::await_ready(standby.take(), &data, log);
    assert_eq!(ready.http, http_addr);
    assert_eq!(
        http(http_addr, "GET", "/readyz", None, None),
        (200, "active\n".to_owned())
    );
    assert_eq!(ready.metric("crnp_active", &[]), 1.0);
}

/// Kills a spawned standby crnpd unless it was handed on.
struct StandbyGuard(Option<std::process::Child>);

impl StandbyGuard {
    fn take(mut self) -> std::process::Child {
        self.0.take().expect("child")
    }
}

impl Drop for StandbyGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port the kernel handed out a moment ago on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

//! Guards the registration contract of a real crnpd over real sockets: the reply code of
//! every form and every error, identity by source IP, replacement, authorization and limits.

mod common;

use common::*;

const MEMBERSHIP: (&str, Option<&str>) = ("EC_Cluster", Some("ESC_cluster_membership"));

fn membership() -> String {
    event_type(MEMBERSHIP.0, MEMBERSHIP.1, &[])
}

#[test]
fn every_form_gets_ok_in_its_place_and_fail_before_add_client() {
    let crnpd = Crnpd::start(&[]);
    let client = ip(2);
    for form in ["ADD_EVENTS", "REMOVE_EVENTS", "REMOVE_CLIENT"] {
        assert_eq!(
            crnpd.register(client, &reg(form, 7001, &membership())),
            "FAIL",
            "{form} before ADD_CLIENT"
        );
    }
    assert_eq!(
        crnpd.register(client, &reg("ADD_CLIENT", 7001, &membership())),
        "OK"
    );
    assert_eq!(
        crnpd.register(
            client,
            &reg("ADD_EVENTS", 7001, &event_type("EC_Cluster", None, &[]))
        ),
        "OK"
    );
    assert_eq!(
        crnpd.register(client, &reg("REMOVE_EVENTS", 7001, &membership())),
        "OK"
    );
    assert_eq!(
        crnpd.register(
            client,
            &reg("REMOVE_EVENTS", 7001, &event_type("EC_Unknown", None, &[]))
        ),
        "OK"
    );
    assert_eq!(
        crnpd.register(client, &reg("REMOVE_CLIENT", 7001, "")),
        "OK"
    );
    assert_eq!(
        crnpd.register(client, &reg("REMOVE_CLIENT", 7001, "")),
        "FAIL",
        "gone after REMOVE_CLIENT"
    );
}

#[test]
fn every_shared_vector_gets_its_expected_code() {
    // A truncated document is only known to be truncated when the read deadline passes.
    let crnpd = Crnpd::start(&["--client-timeout", "1"]);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("vectors directory") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "expect") {
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .expect("expect file")
            .trim()
            .to_owned();
        let message = std::fs::read(path.with_extension("xml")).expect("vector");
        let reply = exchange(crnpd.listen, ip(3), &message);
        assert_eq!(status_of(&reply), expected, "{}", path.display());
        checked += 1;
    }
    assert!(
        checked >= 15,
        "only {checked} vectors found in {}",
        dir.display()
    );
    assert_eq!(
        crnpd.register(ip(3), &reg("ADD_CLIENT", 7002, "")),
        "OK",
        "the server is still up"
    );
}

#[test]
fn identity_is_source_ip_plus_port() {
    let crnpd = Crnpd::start(&[]);
    assert_eq!(
        crnpd.register(ip(4), &reg("ADD_CLIENT", 7003, &membership())),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(5), &reg("REMOVE_CLIENT", 7003, "")),
        "FAIL",
        "same port, other IP"
    );
    assert_eq!(
        crnpd.register(ip(4), &reg("REMOVE_CLIENT", 7004, "")),
        "FAIL",
        "same IP, other port"
    );
    assert_eq!(
        crnpd.register(ip(5), &reg("ADD_CLIENT", 7003, "")),
        "OK",
        "a distinct client"
    );
    let listed: Vec<String> = crnpd
        .clients()
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["address"].as_str().expect("address").to_owned())
        .collect();
    assert_eq!(listed, vec!["127.0.0.4:7003", "127.0.0.5:7003"]);
}

#[test]
fn a_second_add_client_replaces_the_event_list() {
    let crnpd = Crnpd::start(&[]);
    let subscriber = Subscriber::listen(ip(6));
    let port = subscriber.port();
    let rs = event_type(
        "EC_Cluster",
        Some("ESC_cluster_r_state"),
        &[("r_name", "a")],
    );
    assert_eq!(
        crnpd.register(ip(6), &reg("ADD_CLIENT", port, &membership())),
        "OK"
    );
    assert_eq!(crnpd.register(ip(6), &reg("ADD_CLIENT", port, &rs)), "OK");
    let clients = crnpd.clients();
    let types = clients[0]["event_types"].as_array().expect("types");
    assert_eq!(types.len(), 1);
    assert_eq!(types[0]["subclass"], "ESC_cluster_r_state");
    crnpd.publish_json(&json_event(
        "EC_Cluster",
        "ESC_cluster_membership",
        &[("node_list", "n1")],
    ));
    crnpd.publish_json(&json_event(
        "EC_Cluster",
        "ESC_cluster_r_state",
        &[("r_name", "a")],
    ));
    let (_, event) = subscriber.next();
    assert!(
        event.contains("ESC_cluster_r_state"),
        "the replaced type no longer matches: {event}"
    );
}

#[test]
fn denied_and_unlisted_hosts_get_fail_and_change_nothing() {
    let crnpd = Crnpd::start(&["--allow-hosts", "127.0.0.0/24", "--deny-hosts", "127.0.0.9"]);
    assert_eq!(
        crnpd.register(ip(9), &reg("ADD_CLIENT", 7005, "")),
        "FAIL",
        "denied wins"
    );
    let outside = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, 1));
    assert_eq!(
        crnpd.register(outside, &reg("ADD_CLIENT", 7005, "")),
        "FAIL",
        "not allowed"
    );
    assert_eq!(crnpd.register(ip(8), &reg("ADD_CLIENT", 7005, "")), "OK");
    assert_eq!(crnpd.client_count(), 1);
    assert!(
        crnpd.log().contains("not allowed to register"),
        "a log line names the refusal"
    );
}

#[test]
fn max_clients_is_exact_and_replacements_still_pass() {
    let crnpd = Crnpd::start(&["--max-clients", "2"]);
    assert_eq!(crnpd.register(ip(10), &reg("ADD_CLIENT", 7006, "")), "OK");
    assert_eq!(crnpd.register(ip(11), &reg("ADD_CLIENT", 7006, "")), "OK");
    assert_eq!(
        crnpd.register(ip(12), &reg("ADD_CLIENT", 7006, "")),
        "LOW_RESOURCE"
    );
    assert_eq!(
        crnpd.register(ip(10), &reg("ADD_CLIENT", 7006, &membership())),
        "OK",
        "replacement"
    );
    assert_eq!(
        crnpd.register(ip(10), &reg("REMOVE_CLIENT", 7006, "")),
        "OK"
    );
    assert_eq!(
        crnpd.register(ip(12), &reg("ADD_CLIENT", 7006, "")),
        "OK",
        "room again"
    );
}

#[test]
fn oversized_messages_are_malformed_at_the_limit_and_not_before() {
    let crnpd = Crnpd::start(&["--max-message-bytes", "1024"]);
    let base = reg("ADD_CLIENT", 7007, "");
    let pad = |total: usize| {
        let comment_len = total - base.len() - "<!---->".len();
        base.replacen(
            "<SC_CALLBACK_REG",
            &format!("<!--{}--><SC_CALLBACK_REG", "x".repeat(comment_len)),
            1,
        )
    };
    assert_eq!(
        crnpd.register(ip(13), &pad(1024)),
        "OK",
        "exactly at the limit"
    );
    assert_eq!(
        crnpd.register(ip(13), &pad(1025)),
        "MALFORMED",
        "one byte over"
    );
    let huge = format!(
        "<SC_CALLBACK_REG VERSION=\"1.0\" PORT=\"7007\" REG_TYPE=\"ADD_CLIENT\">{}",
        "<A>".repeat(100_000)
    );
    assert_eq!(crnpd.register(ip(13), &huge), "MALFORMED");
    assert_eq!(crnpd.client_count(), 1, "what was registered stays");
}

#[test]
fn slow_and_silent_connections_are_cut_at_the_read_deadline() {
    let crnpd = Crnpd::start(&["--client-timeout", "1"]);
    let started = std::time::Instant::now();
    let mut slow = connect_from(ip(14), crnpd.listen);
    std::io::Write::write_all(
        &mut slow,
        b"<?xml version=\"1.0\"?><SC_CALLBACK_REG VERSION=\"1.0\" PORT=\"7",
    )
    .expect("write");
    let reply = read_to_end(&mut slow);
    assert_eq!(status_of(&reply), "MALFORMED", "{reply}");
    assert!(reply.contains("no complete message"), "{reply}");
    let mut silent = connect_from(ip(14), crnpd.listen);
    assert_eq!(
        read_to_end(&mut silent),
        "",
        "nothing sent: closed without a reply"
    );
    assert!(started.elapsed() < WAIT);
    assert_eq!(
        crnpd.register(ip(14), &reg("ADD_CLIENT", 7008, "")),
        "OK",
        "still serving"
    );
}

#[test]
fn a_registration_in_many_pieces_is_answered_once_whole_and_hopeless_bytes_at_once() {
    // Generous deadline: only the message's own end (or its first hopeless byte) may end a read.
    let crnpd = Crnpd::start(&["--client-timeout", "60"]);
    let started = std::time::Instant::now();
    let message = reg("ADD_CLIENT", 7040, &membership());
    let mut stream = connect_from(ip(40), crnpd.listen);
    stream.set_nodelay(true).expect("nodelay");
    for piece in message.as_bytes().chunks(3) {
        std::io::Write::write_all(&mut stream, piece).expect("write a piece");
    }
    let reply = read_to_end(&mut stream);
    assert_eq!(status_of(&reply), "OK", "{reply}");

    // A well-formed start, then a byte no continuation can repair: refused before the deadline.
    let mut stream = connect_from(ip(41), crnpd.listen);
    stream.set_nodelay(true).expect("nodelay");
    for piece in [
        &b"<SC_CALLBACK_REG VERSION=\"1.0\" PORT=\"7041\" "[..],
        b"REG_TYPE",
        b"=<",
    ] {
        std::io::Write::write_all(&mut stream, piece).expect("write a piece");
    }
    let reply = read_to_end(&mut stream);
    assert_eq!(status_of(&reply), "MALFORMED", "{reply}");
    assert!(!reply.contains("no complete message"), "{reply}");
    assert!(started.elapsed() < WAIT);
    let listed = crnpd.clients();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
}

#[test]
fn connections_past_the_per_core_limit_get_low_resource() {
    let crnpd = Crnpd::start(&[
        "--cores",
        "1",
        "--max-connections",
        "1",
        "--client-timeout",
        "5",
    ]);
    let mut holder = connect_from(ip(15), crnpd.listen);
    std::io::Write::write_all(&mut holder, b"<SC_CALLBACK_REG").expect("partial message");
    crnpd.wait_metric("crnp_registration_connections", &[], |v| v == 1.0);
    assert_eq!(
        crnpd.register(ip(16), &reg("ADD_CLIENT", 7009, "")),
        "LOW_RESOURCE"
    );
    std::io::Write::write_all(
        &mut holder,
        b" VERSION=\"1.0\" PORT=\"7009\" REG_TYPE=\"ADD_CLIENT\"/>",
    )
    .expect("rest");
    assert_eq!(status_of(&read_to_end(&mut holder)), "OK");
    crnpd.wait_metric("crnp_registration_connections", &[], |v| v == 0.0);
    assert_eq!(
        crnpd.register(ip(16), &reg("ADD_CLIENT", 7010, "")),
        "OK",
        "room again"
    );
}

#[test]
fn a_client_that_leaves_before_the_reply_is_still_registered() {
    let crnpd = Crnpd::start(&[]);
    let stream = connect_from(ip(17), crnpd.listen);
    let mut writer = &stream;
    std::io::Write::write_all(
        &mut writer,
        reg("ADD_CLIENT", 7011, &membership()).as_bytes(),
    )
    .expect("write");
    drop(stream);
    crnpd.wait_metric("crnp_registrations_total", &["status=\"OK\""], |v| v == 1.0);
    assert_eq!(crnpd.clients()[0]["address"], "127.0.0.17:7011");
}

#[test]
fn sigterm_stops_cleanly_and_registrations_survive_a_restart() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let crnpd = Crnpd::start_in(&data, temp.path(), &[]);
    assert_eq!(
        crnpd.register(ip(18), &reg("ADD_CLIENT", 7012, &membership())),
        "OK"
    );
    let status = crnpd.terminate();
    assert!(status.success(), "exit status {status:?}");
    let again = Crnpd::start_in(&data, temp.path(), &[]);
    assert_eq!(again.clients()[0]["address"], "127.0.0.18:7012");
    assert_eq!(
        again.register(ip(18), &reg("REMOVE_CLIENT", 7012, "")),
        "OK"
    );
}

#[test]
fn settings_come_from_the_environment_and_the_config_file_and_flags_win() {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = temp.path().join("crnpd.toml");
    std::fs::write(&config, "max-clients = 5\ndeny-hosts = \"127.0.0.30\"\n").expect("config");
    let log = temp.path().join("crnpd.log");
    let child = std::process::Command::new(crnpd_bin())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--max-clients",
            "2",
            "--config",
        ])
        .arg(&config)
        .env("CRNPD_DATA_DIR", temp.path().join("data"))
        .env("CRNPD_MAX_CLIENTS", "1")
        .env("CRNPD_DENY_HOSTS", "127.0.0.31")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn crnpd");
    let crnpd = Crnpd::await_ready(child, &temp.path().join("data"), log);
    assert!(
        temp.path().join("data").join("registry.redb").exists(),
        "--data-dir from the environment"
    );
    assert_eq!(
        crnpd.register(ip(30), &reg("ADD_CLIENT", 7020, "")),
        "OK",
        "the environment beats the file's deny list"
    );
    assert_eq!(
        crnpd.register(ip(31), &reg("ADD_CLIENT", 7020, "")),
        "FAIL",
        "denied by the environment"
    );
    assert_eq!(
        crnpd.register(ip(32), &reg("ADD_CLIENT", 7020, "")),
        "OK",
        "the flag beats the environment's max-clients 1"
    );
    assert_eq!(
        crnpd.register(ip(33), &reg("ADD_CLIENT", 7020, "")),
        "LOW_RESOURCE",
        "max-clients 2 from the flag"
    );
}

//! Guards the wire format against the spec's example messages (tests/vectors/, byte-exact
//! copies of shared/spec/vectors/): every good registration parses to the expected value,
//! every bad one gets exactly the STATUS_CODE of its `.expect` file, and every server-output
//! vector is reproduced byte for byte by `to_xml` (and parses back).

use std::path::PathBuf;

use crnp::protocol::{CallbackReg, Event, EventType, Limits, NvPair, RegType, Reply, StatusCode};

fn vector(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A vector without the final newline the files end with (server output has none).
fn vector_body(name: &str) -> Vec<u8> {
    let mut bytes = vector(name);
    assert_eq!(bytes.pop(), Some(b'\n'), "{name} ends with a newline");
    bytes
}

fn parse_reg(name: &str) -> CallbackReg {
    CallbackReg::parse(&vector(name), &Limits::default())
        .unwrap_or_else(|e| panic!("{name} must parse: {e}"))
}

#[test]
fn add_client_parses() {
    let expected = CallbackReg {
        port: 8765,
        reg_type: RegType::AddClient,
        events: vec![EventType::membership(), EventType::rg_state("web-rg")],
    };
    assert_eq!(parse_reg("add_client.xml"), expected);
}

#[test]
fn add_client_all_events_parses() {
    let expected = CallbackReg {
        port: 9000,
        reg_type: RegType::AddClient,
        events: vec![EventType::class_only("EC_Cluster")],
    };
    assert_eq!(parse_reg("add_client_all_events.xml"), expected);
}

#[test]
fn pretty_printed_add_events_parses() {
    let expected = CallbackReg {
        port: 8765,
        reg_type: RegType::AddEvents,
        events: vec![EventType::r_state("web-server-rs")],
    };
    assert_eq!(parse_reg("add_events.xml"), expected);
}

#[test]
fn remove_events_parses() {
    let expected = CallbackReg {
        port: 8765,
        reg_type: RegType::RemoveEvents,
        events: vec![EventType::membership()],
    };
    assert_eq!(parse_reg("remove_events.xml"), expected);
}

#[test]
fn remove_client_parses() {
    let expected = CallbackReg {
        port: 8765,
        reg_type: RegType::RemoveClient,
        events: vec![],
    };
    assert_eq!(parse_reg("remove_client.xml"), expected);
}

/// Stateful: it is a valid ADD_EVENTS at this layer. The server test (unregistered client
/// gets FAIL) covers the .expect code.
#[test]
fn add_events_before_add_client_parses_here() {
    assert_eq!(
        std::fs::read_to_string(expected_path("bad_add_events_before_add_client"))
            .unwrap()
            .trim(),
        "FAIL"
    );
    let expected = CallbackReg {
        port: 9666,
        reg_type: RegType::AddEvents,
        events: vec![EventType::membership()],
    };
    assert_eq!(parse_reg("bad_add_events_before_add_client.xml"), expected);
}

fn expected_path(stem: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("{stem}.expect"))
}

#[test]
fn every_bad_vector_gets_its_expected_code() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "expect") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if stem == "bad_add_events_before_add_client" {
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap();
        let expected = StatusCode::from_wire(expected.trim()).expect("known code");
        let error = CallbackReg::parse(&vector(&format!("{stem}.xml")), &Limits::default())
            .expect_err(&stem);
        assert_eq!(error.status, expected, "{stem}: {error}");
        assert!(!error.reason.is_empty(), "{stem} has a reason");
        checked += 1;
    }
    assert_eq!(checked, 14, "all 15 bad vectors but the stateful one");
}

#[test]
fn reply_vectors_are_reproduced_byte_exactly() {
    let ok = Reply::new(StatusCode::Ok, "registration accepted");
    assert_eq!(ok.to_xml(), vector_body("reply_ok.xml"));
    let malformed = Reply::new(StatusCode::Malformed, "request is not well-formed XML");
    assert_eq!(malformed.to_xml(), vector_body("reply_malformed.xml"));
    for (reply, name) in [(ok, "reply_ok.xml"), (malformed, "reply_malformed.xml")] {
        assert_eq!(Reply::parse(&vector(name), &Limits::default()), Ok(reply));
    }
}

fn membership_event() -> Event {
    Event::cluster(
        "ESC_cluster_membership",
        vec![
            NvPair::array("node_list", ["node-a", "node-b"]),
            NvPair::array("state_list", ["7", "-1"]),
        ],
    )
}

fn rg_state_event() -> Event {
    Event::cluster(
        "ESC_cluster_rg_state",
        vec![
            NvPair::scalar("rg_name", "web-rg"),
            NvPair::array("node_list", ["node-a", "node-b"]),
            NvPair::array("state_list", ["ONLINE", "OFFLINE"]),
        ],
    )
}

#[test]
fn event_vectors_are_reproduced_byte_exactly() {
    for (event, name) in [
        (membership_event(), "event_membership.xml"),
        (rg_state_event(), "event_rg_state.xml"),
    ] {
        assert_eq!(
            String::from_utf8(event.to_xml()).unwrap(),
            String::from_utf8(vector_body(name)).unwrap(),
            "{name}"
        );
        assert_eq!(
            Event::parse(&vector(name), &Limits::default()),
            Ok(event),
            "{name}"
        );
    }
}

#[test]
fn registration_vectors_are_reproduced_byte_exactly() {
    for name in [
        "add_client.xml",
        "add_client_all_events.xml",
        "remove_events.xml",
        "remove_client.xml",
    ] {
        let reg = parse_reg(name);
        assert_eq!(
            String::from_utf8(reg.to_xml()).unwrap(),
            String::from_utf8(vector_body(name)).unwrap()
        );
    }
}

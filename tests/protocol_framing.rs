//! Guards `CallbackReg::parse_arrived`, which tells the server when a registration has fully
//! arrived (clients never half-close) and parses it in the same pass: every strict prefix of
//! a valid document is `Incomplete` (whatever byte it is cut at: inside a tag, a reference, a
//! multi-byte character, the BOM), the whole document is `Complete`, hopeless input is
//! MALFORMED early, and a `Complete` outcome is always exactly what `CallbackReg::parse`
//! decides for the same bytes.

use std::path::PathBuf;

use crnp::protocol::{
    Arrival, ArrivingRegistration, CallbackReg, EventType, Limits, NvPair, ProtocolError, RegType,
    StatusCode,
};

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors")
            .join(name),
    )
    .unwrap()
}

/// `parse_arrived`, checked against the whole-buffer parse: a `Complete` outcome must be
/// exactly what `CallbackReg::parse` says about the same bytes.
fn arrived(bytes: &[u8], limits: &Limits) -> Arrival<CallbackReg> {
    let arrival = CallbackReg::parse_arrived(bytes, limits);
    if let Arrival::Complete(outcome) = &arrival {
        assert_eq!(
            outcome,
            &CallbackReg::parse(bytes, limits),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    arrival
}

/// `arrived`, also checking that the same bytes arriving in pieces get the same answer.
fn arrived_in_pieces(bytes: &[u8], limits: &Limits) -> Arrival<CallbackReg> {
    for step in [1, 3, 16] {
        assert_resumes_like_a_fresh_parse(bytes, step);
    }
    arrived(bytes, limits)
}

fn is_malformed(arrival: &Arrival<CallbackReg>) -> bool {
    matches!(
        arrival,
        Arrival::Complete(Err(ProtocolError {
            status: StatusCode::Malformed,
            ..
        }))
    )
}

/// Feeds `bytes` to one `ArrivingRegistration` in pieces of `step` bytes, as a connection
/// would, and checks every answer against the stateless `parse_arrived` of the same prefix.
fn assert_resumes_like_a_fresh_parse(bytes: &[u8], step: usize) {
    let limits = Limits::default();
    let mut arriving = ArrivingRegistration::default();
    let mut end = 0;
    while end < bytes.len() {
        end = (end + step).min(bytes.len());
        let answer = arriving.parse(&bytes[..end], &limits);
        assert_eq!(
            answer,
            CallbackReg::parse_arrived(&bytes[..end], &limits),
            "{step}-byte pieces, at {end}: {:?}",
            String::from_utf8_lossy(&bytes[..end])
        );
        if !answer.is_incomplete() {
            return;
        }
    }
}

/// Asserts that `doc` (a complete document with nothing after the root) is Incomplete at every
/// strict prefix and Complete in full, also when it arrives in pieces.
fn assert_splits(doc: &[u8]) {
    for step in [1, 2, 7, 64, doc.len().max(1)] {
        assert_resumes_like_a_fresh_parse(doc, step);
    }
    let limits = Limits::default();
    for cut in 0..doc.len() {
        assert_eq!(
            arrived(&doc[..cut], &limits),
            Arrival::Incomplete,
            "prefix of {cut} bytes: {:?}",
            String::from_utf8_lossy(&doc[..cut])
        );
    }
    assert!(
        !arrived(doc, &limits).is_incomplete(),
        "{:?}",
        String::from_utf8_lossy(doc)
    );
}

fn without_final_newline(mut doc: Vec<u8>) -> Vec<u8> {
    while doc.last() == Some(&b'\n') {
        doc.pop();
    }
    doc
}

#[test]
fn vectors_split_at_every_byte() {
    for name in [
        "add_client.xml",
        "add_client_all_events.xml",
        "add_events.xml",
        "remove_events.xml",
        "remove_client.xml",
        "bad_add_events_before_add_client.xml",
    ] {
        assert_splits(&without_final_newline(vector(name)));
    }
}

#[test]
fn tricky_documents_split_at_every_byte() {
    let reg = CallbackReg {
        port: 1,
        reg_type: RegType::AddClient,
        events: vec![
            EventType::rg_state("caf\u{e9} \u{65e5}\u{672c} \u{1F600} ]]> \r\n <&>\""),
            EventType::new(
                "EC_\u{e9}\t\n",
                Some("a&b\"c"),
                vec![NvPair::array("k", ["", " ", "]]]]>"])],
            ),
        ],
    };
    assert_splits(&reg.to_xml());
    for doc in [
        "\u{FEFF}<?xml version='1.0'?>\n<!DOCTYPE SC_CALLBACK_REG SYSTEM \"x.dtd\">\n<!-- c -->\n<?pi x?>\n<SC_CALLBACK_REG PORT=\"1\" REG_TYPE=\"ADD_CLIENT\"><SC_EVENT_REG CLASS=\"a&amp;&#x1F600;b\"><NVPAIR><NAME>a&lt;&#10;b</NAME><VALUE><![CDATA[x]]>y&quot;</VALUE></NVPAIR></SC_EVENT_REG></SC_CALLBACK_REG>",
        "<SC_CALLBACK_REG PORT='1' REG_TYPE='REMOVE_CLIENT'/>",
        "<SC_CALLBACK_REG PORT='1' REG_TYPE='REMOVE_CLIENT'></SC_CALLBACK_REG >",
        "<a><a><a/></a></a>",
    ] {
        assert_splits(doc.as_bytes());
    }
}

#[test]
fn bytes_after_the_root_are_judged_with_the_document() {
    let limits = Limits::default();
    let mut doc = without_final_newline(vector("remove_client.xml"));
    doc.extend_from_slice(b"garbage<more/>");
    assert!(is_malformed(&arrived_in_pieces(&doc, &limits)));
    assert!(is_malformed(&arrived(
        &vector("bad_trailing_garbage.xml"),
        &limits
    )));
    // A comment cut short after the root: the client is done sending, so it is final.
    let mut doc = without_final_newline(vector("remove_client.xml"));
    doc.extend_from_slice(b"<!-- unfinished");
    assert!(is_malformed(&arrived_in_pieces(&doc, &limits)));
    // So is a multi-byte character cut short there.
    let mut doc = without_final_newline(vector("remove_client.xml"));
    doc.extend_from_slice(b"<!-- \xC3");
    assert!(is_malformed(&arrived_in_pieces(&doc, &limits)));
}

#[test]
fn hopeless_input_is_malformed_early() {
    let limits = Limits::default();
    for bad in [
        &b"this is not xml"[..],
        b"GET / HTTP/1.1\r\n",
        b"\0",
        b"<a>\0",
        b"<a>\xFF",
        b" <?xml version=\"1.0\"?>",
        b"<a></b>",
        b"<a b=\"1\" b=\"2\">",
        b"<a>&bogus;",
        b"<!DOCTYPE a [<!ENTITY x \"y\">]>",
        b"</a>",
        b"<a><b></a>",
    ] {
        assert!(
            is_malformed(&arrived_in_pieces(bad, &limits)),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn the_verdict_on_hopeless_bytes_is_the_whole_buffer_verdict() {
    // Found by the fuzz target: a control character, and an unfinished UTF-8 sequence at the
    // end. Both are MALFORMED; the reason must be the one the whole-buffer parse gives.
    let limits = Limits::default();
    let bytes = b"<?xml version='1.0'?><SC_CALLBACK_REG PORT=\"1\" REG_TYPE=\"ADD_CL\x01\0\xCC";
    assert!(is_malformed(&arrived_in_pieces(bytes, &limits)));
}

#[test]
fn text_split_between_reads_is_judged_whole() {
    // Found by the fuzz target: "]]" in one read and ">" in the next make a "]]>" in text.
    for step in 1..8 {
        assert_resumes_like_a_fresh_parse(b"<S>L]]><", step);
        assert_resumes_like_a_fresh_parse(b"<S>a]]>b</S>", step);
        assert_resumes_like_a_fresh_parse(b"<S>  x</S> \n ", step);
    }
}

#[test]
fn limits_apply_while_arriving() {
    let limits = Limits {
        max_message_bytes: 64,
        ..Limits::default()
    };
    let long = vec![b' '; 65];
    assert!(is_malformed(&arrived(&long, &limits)));
    let deep = "<a>".repeat(17);
    assert!(is_malformed(&arrived(deep.as_bytes(), &Limits::default())));
    let ok_deep = "<a>".repeat(16);
    assert_eq!(
        arrived(ok_deep.as_bytes(), &Limits::default()),
        Arrival::Incomplete
    );
}

#[test]
fn bad_vectors_arrive_complete_unless_truncated() {
    let limits = Limits::default();
    for (name, complete) in [
        ("bad_not_wellformed.xml", true),
        ("bad_truncated.xml", false),
        ("bad_not_xml.xml", true),
        ("bad_wrong_root.xml", true),
        ("bad_version_high.xml", true),
        ("bad_missing_port.xml", true),
    ] {
        assert_eq!(
            !arrived(&vector(name), &limits).is_incomplete(),
            complete,
            "{name}"
        );
    }
}

#[test]
fn an_invalid_document_waits_for_its_end() {
    // INVALID is only final once the whole document is known to be well-formed.
    let limits = Limits::default();
    let doc =
        b"<SC_CALLBACK_REG VERSION='1.0' PORT='0' REG_TYPE='ADD_CLIENT'><SC_EVENT_REG CLASS='x'/>";
    assert_eq!(arrived(doc, &limits), Arrival::Incomplete);
    let mut whole = doc.to_vec();
    whole.extend_from_slice(b"</SC_CALLBACK_REG>");
    assert!(matches!(
        arrived(&whole, &limits),
        Arrival::Complete(Err(ProtocolError {
            status: StatusCode::Invalid,
            ..
        }))
    ));
}

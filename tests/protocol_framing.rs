//! Guards `scan_document`, which tells the server when a registration has fully arrived
//! (clients never half-close): every strict prefix of a valid document is `Incomplete`
//! (whatever byte it is cut at: inside a tag, a reference, a multi-byte character, the BOM),
//! the whole document is `Complete`, hopeless input is `Malformed` early, and `Complete`
//! agrees with what `CallbackReg::parse` then decides.

use std::path::PathBuf;

use crnp::protocol::{
    CallbackReg, DocumentScan, EventType, Limits, NvPair, RegType, StatusCode, scan_document,
};

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors")
            .join(name),
    )
    .unwrap()
}

/// Asserts that `doc` (a complete document with nothing after the root) is Incomplete at every
/// strict prefix and Complete in full.
fn assert_splits(doc: &[u8]) {
    let limits = Limits::default();
    for cut in 0..doc.len() {
        assert_eq!(
            scan_document(&doc[..cut], &limits),
            DocumentScan::Incomplete,
            "prefix of {cut} bytes: {:?}",
            String::from_utf8_lossy(&doc[..cut])
        );
    }
    assert_eq!(
        scan_document(doc, &limits),
        DocumentScan::Complete,
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
fn complete_does_not_look_past_the_root() {
    let limits = Limits::default();
    let mut doc = without_final_newline(vector("remove_client.xml"));
    doc.extend_from_slice(b"garbage<more/>");
    assert_eq!(scan_document(&doc, &limits), DocumentScan::Complete);
    // ... the parse that follows judges the trailing bytes.
    assert_eq!(
        CallbackReg::parse(&doc, &limits).unwrap_err().status,
        StatusCode::Malformed
    );
    assert_eq!(
        scan_document(&vector("bad_trailing_garbage.xml"), &limits),
        DocumentScan::Complete
    );
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
            matches!(scan_document(bad, &limits), DocumentScan::Malformed(ref e) if e.status == StatusCode::Malformed),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn limits_apply_while_scanning() {
    let limits = Limits {
        max_message_bytes: 64,
        ..Limits::default()
    };
    let long = vec![b' '; 65];
    assert!(matches!(
        scan_document(&long, &limits),
        DocumentScan::Malformed(_)
    ));
    let deep = "<a>".repeat(17);
    assert!(matches!(
        scan_document(deep.as_bytes(), &Limits::default()),
        DocumentScan::Malformed(_)
    ));
    let ok_deep = "<a>".repeat(16);
    assert_eq!(
        scan_document(ok_deep.as_bytes(), &Limits::default()),
        DocumentScan::Incomplete
    );
}

#[test]
fn complete_scan_agrees_with_parse_on_bad_vectors() {
    let limits = Limits::default();
    for (name, scan_complete) in [
        ("bad_not_wellformed.xml", false),
        ("bad_truncated.xml", false),
        ("bad_not_xml.xml", false),
        ("bad_wrong_root.xml", true),
        ("bad_version_high.xml", true),
        ("bad_missing_port.xml", true),
    ] {
        let scan = scan_document(&vector(name), &limits);
        if scan_complete {
            assert_eq!(scan, DocumentScan::Complete, "{name}");
        } else {
            assert_ne!(scan, DocumentScan::Complete, "{name}");
        }
    }
}

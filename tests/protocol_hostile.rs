//! Guards against hostile input: entity-expansion bombs, external entities, deep nesting,
//! attribute floods, element floods, oversize messages, NUL and non-UTF-8 bytes, smuggled
//! trailing data. Each is rejected (never obeyed) with a reason naming the problem, and no
//! input makes the parser panic.

mod xml_oracle;

use crnp::protocol::{
    Arrival, ArrivingRegistration, CallbackReg, Event, Limits, ProtocolError, Reply, StatusCode,
};
use proptest::prelude::*;

fn parse(bytes: &[u8], limits: &Limits) -> Result<CallbackReg, ProtocolError> {
    CallbackReg::parse(bytes, limits)
}

fn rejected(bytes: &[u8], limits: &Limits, says: &str) -> ProtocolError {
    let error = parse(bytes, limits).expect_err("hostile input must be rejected");
    assert!(
        error.reason.contains(says),
        "reason {:?} should mention {says:?}",
        error.reason
    );
    error
}

const ROOT: &str = r#"<SC_CALLBACK_REG VERSION="1.0" PORT="8765" REG_TYPE="ADD_CLIENT">"#;

#[test]
fn billion_laughs_is_refused() {
    let mut doc = String::from(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE SC_CALLBACK_REG [\n<!ENTITY lol \"lol\">\n",
    );
    for level in 1..10 {
        let previous = if level == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", level - 1)
        };
        doc.push_str(&format!(
            "<!ENTITY lol{level} \"{}\">\n",
            format!("&{previous};").repeat(10)
        ));
    }
    doc.push_str(&format!(
        "]>\n{ROOT}<SC_EVENT_REG CLASS=\"&lol9;\"/></SC_CALLBACK_REG>"
    ));
    let error = rejected(doc.as_bytes(), &Limits::default(), "internal subset");
    assert_eq!(error.status, StatusCode::Malformed);
}

#[test]
fn undeclared_and_external_entities_are_refused() {
    let external = format!(
        "<!DOCTYPE SC_CALLBACK_REG [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{ROOT}<SC_EVENT_REG CLASS=\"&xxe;\"/></SC_CALLBACK_REG>"
    );
    assert_eq!(
        rejected(external.as_bytes(), &Limits::default(), "internal subset").status,
        StatusCode::Malformed
    );
    // A bare DOCTYPE naming a DTD is accepted, but that DTD is never read, so its entities
    // stay undeclared.
    let undeclared = format!(
        "<!DOCTYPE SC_CALLBACK_REG SYSTEM \"http://example.invalid/evil.dtd\">{ROOT}<SC_EVENT_REG CLASS=\"&evil;\"/></SC_CALLBACK_REG>"
    );
    assert_eq!(
        rejected(undeclared.as_bytes(), &Limits::default(), "&evil;").status,
        StatusCode::Malformed
    );
    let in_text = format!(
        "{ROOT}<SC_EVENT_REG CLASS=\"x\"><NVPAIR><NAME>&evil;</NAME><VALUE/></NVPAIR></SC_EVENT_REG></SC_CALLBACK_REG>"
    );
    assert_eq!(
        rejected(in_text.as_bytes(), &Limits::default(), "&evil;").status,
        StatusCode::Malformed
    );
}

#[test]
fn deep_nesting_is_refused() {
    let depth = 20_000;
    let doc = format!(
        "{ROOT}{}{}</SC_CALLBACK_REG>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    let limits = Limits {
        max_message_bytes: 1 << 20,
        ..Limits::default()
    };
    let error = rejected(doc.as_bytes(), &limits, "nested more than 16");
    assert_eq!(error.status, StatusCode::Malformed);
    assert!(matches!(
        CallbackReg::parse_arrived(doc.as_bytes(), &limits),
        Arrival::Complete(Err(ProtocolError {
            status: StatusCode::Malformed,
            ..
        }))
    ));
    // Exactly at the limit is fine for the reader (the structure is then judged INVALID).
    let at_limit = format!(
        "{ROOT}{}{}</SC_CALLBACK_REG>",
        "<a>".repeat(15),
        "</a>".repeat(15)
    );
    assert_eq!(
        parse(at_limit.as_bytes(), &Limits::default())
            .unwrap_err()
            .status,
        StatusCode::Invalid
    );
}

#[test]
fn attribute_floods_are_refused() {
    let attributes: String = (0..10_000).map(|i| format!(" a{i}=\"\"")).collect();
    let doc = format!("<SC_CALLBACK_REG{attributes}/>");
    // Over the size limit first...
    let error = rejected(
        doc.as_bytes(),
        &Limits::default(),
        "more than the limit of 65536 bytes",
    );
    assert_eq!(error.status, StatusCode::Malformed);
    // ...and with room for it, over the attribute limit.
    let roomy = Limits {
        max_message_bytes: 1 << 20,
        ..Limits::default()
    };
    let error = rejected(doc.as_bytes(), &roomy, "more than 16 attributes");
    assert_eq!(error.status, StatusCode::Malformed);
    // Many duplicates do not cost quadratic time either.
    let duplicates = format!("<SC_CALLBACK_REG{}/>", " a=\"\"".repeat(10_000));
    rejected(duplicates.as_bytes(), &roomy, "attribute a twice");
}

#[test]
fn element_floods_are_refused() {
    let doc = format!(
        "{ROOT}{}</SC_CALLBACK_REG>",
        "<SC_EVENT_REG CLASS=\"x\"/>".repeat(20_000)
    );
    let roomy = Limits {
        max_message_bytes: 1 << 20,
        ..Limits::default()
    };
    let error = rejected(doc.as_bytes(), &roomy, "more than 10000 elements");
    assert_eq!(error.status, StatusCode::Malformed);
    let tight = Limits {
        max_elements: 3,
        ..Limits::default()
    };
    let three = format!(
        "{ROOT}{}</SC_CALLBACK_REG>",
        "<SC_EVENT_REG CLASS=\"x\"/>".repeat(2)
    );
    assert!(parse(three.as_bytes(), &tight).is_ok());
    let four = format!(
        "{ROOT}{}</SC_CALLBACK_REG>",
        "<SC_EVENT_REG CLASS=\"x\"/>".repeat(3)
    );
    rejected(four.as_bytes(), &tight, "more than 3 elements");
}

#[test]
fn oversize_messages_are_refused() {
    let limits = Limits::default();
    let padding = " ".repeat(limits.max_message_bytes);
    let doc = format!("{ROOT}{padding}</SC_CALLBACK_REG>");
    let error = rejected(doc.as_bytes(), &limits, "bytes, more than the limit");
    assert_eq!(error.status, StatusCode::Malformed);
    assert!(matches!(
        CallbackReg::parse_arrived(doc.as_bytes(), &limits),
        Arrival::Complete(Err(ProtocolError {
            status: StatusCode::Malformed,
            ..
        }))
    ));
    for parse_other in [
        |b: &[u8], l: &Limits| Reply::parse(b, l).map(drop),
        |b: &[u8], l: &Limits| Event::parse(b, l).map(drop),
    ] {
        assert_eq!(
            parse_other(doc.as_bytes(), &limits).unwrap_err().status,
            StatusCode::Malformed
        );
    }
    // Exactly at the limit is accepted.
    let exact = format!("{ROOT}</SC_CALLBACK_REG>");
    let exact_limits = Limits {
        max_message_bytes: exact.len(),
        ..Limits::default()
    };
    assert!(parse(exact.as_bytes(), &exact_limits).is_ok());
}

#[test]
fn nul_bytes_non_utf8_and_encodings_are_refused() {
    let limits = Limits::default();
    let with_nul = format!("{ROOT}<SC_EVENT_REG CLASS=\"EC\0Cluster\"/></SC_CALLBACK_REG>");
    assert_eq!(
        rejected(with_nul.as_bytes(), &limits, "NUL").status,
        StatusCode::Malformed
    );
    let utf16: Vec<u8> = "<SC_CALLBACK_REG/>"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert_eq!(
        parse(&[&[0xFF, 0xFE][..], &utf16].concat(), &limits)
            .unwrap_err()
            .status,
        StatusCode::Malformed
    );
    let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><SC_CALLBACK_REG PORT=\"1\" REG_TYPE=\"ADD_CLIENT\"><SC_EVENT_REG CLASS=\"caf\xE9\"/></SC_CALLBACK_REG>";
    assert_eq!(
        rejected(latin1, &limits, "UTF-8").status,
        StatusCode::Malformed
    );
    let overlong = b"<SC_CALLBACK_REG PORT=\"1\" REG_TYPE=\"ADD_CLIENT\"><SC_EVENT_REG CLASS=\"\xC0\xBC\"/></SC_CALLBACK_REG>";
    assert_eq!(
        rejected(overlong, &limits, "UTF-8").status,
        StatusCode::Malformed
    );
}

#[test]
fn smuggled_trailing_data_is_refused() {
    let limits = Limits::default();
    let smuggled = format!(
        "{ROOT}</SC_CALLBACK_REG>{ROOT}<SC_EVENT_REG CLASS=\"EC_Cluster\"/></SC_CALLBACK_REG>"
    );
    assert_eq!(
        rejected(smuggled.as_bytes(), &limits, "after the root element").status,
        StatusCode::Malformed
    );
    // The server judges everything it received with the first root.
    assert_eq!(
        CallbackReg::parse_arrived(smuggled.as_bytes(), &limits),
        Arrival::Complete(CallbackReg::parse(smuggled.as_bytes(), &limits))
    );
}

#[test]
fn leading_white_space_and_bom() {
    let limits = Limits::default();
    let declared = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>{ROOT}</SC_CALLBACK_REG>");
    assert!(parse(declared.as_bytes(), &limits).is_ok());
    assert!(parse(format!("\u{FEFF}{declared}").as_bytes(), &limits).is_ok());
    let error = rejected(
        format!("\r\n{declared}").as_bytes(),
        &limits,
        "XML declaration",
    );
    assert_eq!(error.status, StatusCode::Malformed);
    let error = rejected(
        format!("\u{FEFF} {declared}").as_bytes(),
        &limits,
        "XML declaration",
    );
    assert_eq!(error.status, StatusCode::Malformed);
}

#[test]
fn long_names_and_values_do_not_echo_back_whole() {
    let name = "X".repeat(50_000);
    let doc = format!("<{name}/>");
    let error = rejected(doc.as_bytes(), &Limits::default(), "root element");
    assert!(
        error.reason.len() < 200,
        "reason is {} bytes",
        error.reason.len()
    );
    let doc = format!(
        "<SC_CALLBACK_REG PORT=\"{}\" REG_TYPE=\"ADD_CLIENT\"/>",
        "9".repeat(50_000)
    );
    let error = rejected(doc.as_bytes(), &Limits::default(), "PORT");
    assert!(
        error.reason.len() < 200,
        "reason is {} bytes",
        error.reason.len()
    );
    // Reasons quoting quick-xml or long names are capped too.
    let long = "x".repeat(20_000);
    for doc in [
        format!("<{long}></y>"),
        format!("{ROOT}&{long};</SC_CALLBACK_REG>"),
        format!("<SC_CALLBACK_REG {long}=\"1\" {long}=\"2\"/>"),
        format!("<SC_CALLBACK_REG {long}/>"),
        format!("<{long} a=\"<\"/>"),
    ] {
        let error = parse(doc.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(error.status, StatusCode::Malformed);
        assert!(
            error.reason.len() <= 303,
            "reason is {} bytes",
            error.reason.len()
        );
    }
}

/// All entry points on `bytes`: none may panic, `parse_arrived` must agree with
/// `CallbackReg::parse`, every success must round-trip, and whatever our reader finds
/// well-formed quick-xml must read too (the fuzz target checks the same).
fn exercise(bytes: &[u8]) {
    let limits = Limits::default();
    let parsed = CallbackReg::parse(bytes, &limits);
    if parsed
        .as_ref()
        .map_or_else(|e| e.status != StatusCode::Malformed, |_| true)
    {
        xml_oracle::assert_quick_xml_reads(bytes);
    }
    match CallbackReg::parse_arrived(bytes, &limits) {
        Arrival::Complete(outcome) => assert_eq!(outcome, parsed),
        Arrival::Incomplete => assert_eq!(
            parsed.as_ref().map_err(|e| e.status),
            Err(StatusCode::Malformed)
        ),
    }
    // Arriving in two pieces, the answer to each is the stateless one.
    let mut arriving = ArrivingRegistration::default();
    let first = &bytes[..bytes.len() / 2];
    let answer = arriving.parse(first, &limits);
    assert_eq!(answer, CallbackReg::parse_arrived(first, &limits));
    if answer.is_incomplete() {
        assert_eq!(
            arriving.parse(bytes, &limits),
            CallbackReg::parse_arrived(bytes, &limits)
        );
    }
    if let Ok(reg) = parsed {
        assert_eq!(CallbackReg::parse(&reg.to_xml(), &limits), Ok(reg));
    }
    if let Ok(reply) = Reply::parse(bytes, &limits) {
        assert_eq!(Reply::parse(&reply.to_xml(), &limits), Ok(reply));
    }
    if let Ok(event) = Event::parse(bytes, &limits) {
        assert_eq!(Event::parse(&event.to_xml(), &limits), Ok(event));
    }
}

fn seed() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/add_client.xml"
    ))
    .unwrap()
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_registrations_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8)
    ) {
        let mut bytes = seed();
        for (at, byte, kind) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        exercise(&bytes);
    }

    #[test]
    fn a_caller_breaking_the_arrival_contract_gets_answers_not_panics(
        first in "[<>/!?\\[\\]&;#x\"' =a-zA-Z0-9_:.\\-\n\u{e9}]{0,120}",
        second in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        // ArrivingRegistration expects each call's bytes to extend the last; bytes that do not
        // (shorter, or different) may get any verdict, but never a panic.
        let limits = Limits::default();
        let mut arriving = ArrivingRegistration::default();
        let _ = arriving.parse(first.as_bytes(), &limits);
        let _ = arriving.parse(&second, &limits);
        let _ = arriving.parse(first.as_bytes(), &limits);
    }

    #[test]
    fn xml_ish_text_never_panics(text in "[<>/!?\\[\\]&;#x\"' =a-zA-Z0-9_:.\\-\n\u{e9}\u{FEFF}]{0,200}") {
        exercise(text.as_bytes());
    }
}

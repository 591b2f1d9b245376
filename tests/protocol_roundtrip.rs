//! Guards serialization: `parse(to_xml(m)) == m` for every message of all three types
//! (property-tested with texts full of `]]>`, CR/LF, markup characters, white space, empty
//! strings and non-ASCII), the exact bytes of the escaping rules (CDATA splitting, CR as
//! `&#13;`, attribute escapes), and the documented U+FFFD fallback for characters XML 1.0
//! cannot carry.

use crnp::protocol::{
    CallbackReg, Event, EventType, Limits, NvPair, RegType, Reply, StatusCode, Text,
    is_representable,
};
use proptest::prelude::*;

/// Any text XML can carry, biased towards the characters that need care.
fn text() -> impl Strategy<Value = Text> {
    let piece = prop_oneof![
        4 => any::<char>().prop_filter("XML char", |c| is_representable(&c.to_string())).prop_map(String::from),
        1 => prop::sample::select(vec!["]]>", "]]", "]", "<![CDATA[", "\r\n", "\r", "\n", "\t", " ", "&", "&amp;", "<", ">", "\"", "'", "\u{e9}", "\u{1F600}", "\u{FEFF}", "\u{FFFD}"])
            .prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| Text::from(pieces.concat()))
}

/// Any text XML can carry except the empty text: a CLASS or SUBCLASS no event can have.
fn name_text() -> impl Strategy<Value = Text> {
    text().prop_map(|t| if t.is_empty() { Text::from("c") } else { t })
}

fn nvpair() -> impl Strategy<Value = NvPair> {
    (text(), prop::collection::vec(text(), 1..4)).prop_map(|(name, values)| NvPair { name, values })
}

fn event_type() -> impl Strategy<Value = EventType> {
    prop_oneof![
        Just(EventType::membership()),
        text().prop_map(EventType::rg_state),
        text().prop_map(EventType::r_state),
        name_text().prop_map(EventType::class_only),
        (
            name_text(),
            prop::option::of(name_text()),
            prop::collection::vec(nvpair(), 0..3)
        )
            .prop_map(|(class, subclass, nvpairs)| EventType {
                class,
                subclass,
                nvpairs
            })
            .prop_filter("valid registration", |t| t.validate().is_ok()),
    ]
}

fn callback_reg() -> impl Strategy<Value = CallbackReg> {
    (
        1..=u16::MAX,
        prop::sample::select(RegType::ALL.to_vec()),
        prop::collection::vec(event_type(), 0..5),
    )
        .prop_map(|(port, reg_type, events)| {
            let events = if reg_type == RegType::RemoveClient {
                Vec::new()
            } else {
                events
            };
            CallbackReg {
                port,
                reg_type,
                events,
            }
        })
}

fn reply() -> impl Strategy<Value = Reply> {
    (prop::sample::select(StatusCode::ALL.to_vec()), text())
        .prop_map(|(status, message)| Reply::new(status, message))
}

fn event() -> impl Strategy<Value = Event> {
    (
        text(),
        text(),
        text(),
        text(),
        prop::collection::vec(nvpair(), 0..5),
    )
        .prop_map(|(class, subclass, vendor, publisher, nvpairs)| Event {
            class,
            subclass,
            vendor,
            publisher,
            nvpairs,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn callback_reg_round_trips(reg in callback_reg()) {
        let bytes = reg.to_xml();
        prop_assert_eq!(CallbackReg::parse(&bytes, &Limits::default()), Ok(reg));
    }

    #[test]
    fn reply_round_trips(reply in reply()) {
        let bytes = reply.to_xml();
        prop_assert_eq!(Reply::parse(&bytes, &Limits::default()), Ok(reply));
    }

    #[test]
    fn event_round_trips(event in event()) {
        let bytes = event.to_xml();
        prop_assert_eq!(Event::parse(&bytes, &Limits::default()), Ok(event));
    }

    /// Whatever the input, the output is a well-formed document that parses; characters XML
    /// cannot carry come back as U+FFFD.
    #[test]
    fn unrepresentable_text_is_replaced(raw in any::<String>()) {
        let reply = Reply::new(StatusCode::Fail, raw.clone());
        let parsed = Reply::parse(&reply.to_xml(), &Limits::default()).expect("always well-formed");
        let expected: String = raw
            .chars()
            .map(|c| if is_representable(&c.to_string()) { c } else { '\u{FFFD}' })
            .collect();
        prop_assert_eq!(parsed.message, expected);
        let event = Event::cluster(raw.clone(), vec![NvPair::scalar(raw.clone(), raw)]);
        prop_assert!(Event::parse(&event.to_xml(), &Limits::default()).is_ok());
    }
}

fn as_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("output is UTF-8")
}

#[test]
fn cdata_terminator_is_split_across_sections() {
    let xml = as_text(Reply::new(StatusCode::Ok, "a]]>b]]>").to_xml());
    assert!(
        xml.contains("<SC_STATUS_MSG><![CDATA[a]]]]><![CDATA[>b]]]]><![CDATA[>]]></SC_STATUS_MSG>"),
        "{xml}"
    );
    let xml = as_text(Reply::new(StatusCode::Ok, "]]]>>").to_xml());
    assert!(xml.contains("<![CDATA[]]]]]><![CDATA[>>]]>"), "{xml}");
}

#[test]
fn carriage_returns_leave_cdata_as_references() {
    let xml = as_text(Reply::new(StatusCode::Ok, "a\r\nb").to_xml());
    assert!(xml.contains("<![CDATA[a]]>&#13;<![CDATA[\nb]]>"), "{xml}");
}

#[test]
fn empty_text_is_an_empty_cdata_section() {
    let xml = as_text(Reply::new(StatusCode::Ok, "").to_xml());
    assert!(
        xml.ends_with("<SC_STATUS_MSG><![CDATA[]]></SC_STATUS_MSG></SC_REPLY>"),
        "{xml}"
    );
}

#[test]
fn attribute_values_are_escaped() {
    let event = Event {
        class: "a&b<c>d\"e'f\tg\nh\ri".into(),
        ..Event::cluster("s", vec![])
    };
    let xml = as_text(event.to_xml());
    assert!(
        xml.contains(r#" CLASS="a&amp;b&lt;c&gt;d&quot;e'f&#9;g&#10;h&#13;i""#),
        "{xml}"
    );
}

#[test]
fn output_shape() {
    let xml = as_text(Event::cluster("s", vec![NvPair::scalar("k", "v")]).to_xml());
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<SC_EVENT VERSION=\"1.0\" CLASS=\"EC_Cluster\" SUBCLASS=\"s\" VENDOR=\"SUNW\" PUBLISHER=\"rgm\"><NVPAIR><NAME><![CDATA[k]]></NAME><VALUE><![CDATA[v]]></VALUE></NVPAIR></SC_EVENT>"
    );
    assert!(!xml.contains("DOCTYPE"));
    let empty = as_text(Event::cluster("s", vec![]).to_xml());
    assert!(empty.ends_with("PUBLISHER=\"rgm\"/>"), "{empty}");
    let remove = CallbackReg {
        port: 9,
        reg_type: RegType::RemoveClient,
        events: vec![EventType::membership()],
    };
    assert!(
        as_text(remove.to_xml())
            .ends_with("<SC_CALLBACK_REG VERSION=\"1.0\" PORT=\"9\" REG_TYPE=\"REMOVE_CLIENT\"/>")
    );
}

#[test]
fn unrepresentable_characters_become_replacement_characters() {
    for bad in ["\0", "\u{1}", "\u{1B}", "\u{FFFE}", "\u{FFFF}"] {
        assert!(!is_representable(bad));
        let text = format!("a{bad}b");
        let reply = Reply::parse(
            &Reply::new(StatusCode::Ok, text.clone()).to_xml(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(reply.message, "a\u{FFFD}b");
        let event = Event {
            class: text.into(),
            ..Event::cluster("s", vec![])
        };
        assert_eq!(
            Event::parse(&event.to_xml(), &Limits::default())
                .unwrap()
                .class,
            "a\u{FFFD}b"
        );
    }
    for good in ["", "\t\n\r", "\u{FFFD}", "\u{10FFFF}", "\u{E000}", "\u{85}"] {
        assert!(is_representable(good), "{good:?}");
    }
}

#[test]
fn to_xml_sizes_its_buffer_exactly_when_nothing_needs_escaping() {
    let event = Event::cluster(
        "ESC_cluster_rg_state",
        (0..10)
            .map(|i| NvPair::array(format!("name_{i}"), [format!("value-{i}"), "x".into()]))
            .collect(),
    );
    let bytes = event.to_xml();
    assert_eq!(bytes.capacity(), bytes.len());
    let reg = CallbackReg {
        port: 8765,
        reg_type: RegType::AddClient,
        events: vec![EventType::rg_state("a"), EventType::membership()],
    };
    let bytes = reg.to_xml();
    assert_eq!(bytes.capacity(), bytes.len());
    let bytes = Reply::new(StatusCode::VersionTooHigh, "no").to_xml();
    assert_eq!(bytes.capacity(), bytes.len());
}

#[test]
fn empty_lists_size_their_buffer_exactly() {
    let bytes = Event::cluster("s", vec![]).to_xml();
    assert_eq!(bytes.capacity(), bytes.len());
    let bytes = CallbackReg {
        port: 1,
        reg_type: RegType::RemoveClient,
        events: vec![],
    }
    .to_xml();
    assert_eq!(bytes.capacity(), bytes.len());
}

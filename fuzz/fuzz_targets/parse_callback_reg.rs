//! Feeds arbitrary bytes to every wire-format entry point: none may panic,
//! `CallbackReg::parse_arrived` must agree with `CallbackReg::parse`, every successful parse
//! must round-trip through `to_xml`, and every document our reader finds well-formed must
//! also read cleanly with quick-xml (an independent tokenizer, more lenient than ours).

#![no_main]

use crnp::protocol::{Arrival, CallbackReg, Event, Limits, Reply, StatusCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let registration = CallbackReg::parse(data, &limits);
    match CallbackReg::parse_arrived(data, &limits) {
        // Once complete, the outcome is exactly the whole-buffer parse.
        Arrival::Complete(outcome) => assert_eq!(outcome, registration),
        // Bytes that could still become a document are not one yet.
        Arrival::Incomplete => {
            let status = registration.as_ref().map_err(|e| e.status);
            assert_eq!(status, Err(StatusCode::Malformed));
        }
    }
    let well_formed = match &registration {
        Ok(_) => true,
        Err(error) => error.status != StatusCode::Malformed,
    };
    if well_formed {
        assert_quick_xml_reads(data);
    }
    if let Ok(registration) = registration {
        assert_eq!(CallbackReg::parse(&registration.to_xml(), &limits), Ok(registration));
    }
    if let Ok(reply) = Reply::parse(data, &limits) {
        assert_eq!(Reply::parse(&reply.to_xml(), &limits), Ok(reply));
    }
    if let Ok(event) = Event::parse(data, &limits) {
        assert_eq!(Event::parse(&event.to_xml(), &limits), Ok(event));
    }
});

/// quick-xml, with end-name and comment checks on, reads `data` (after any BOM) to its end.
fn assert_quick_xml_reads(data: &[u8]) {
    let text = std::str::from_utf8(data).expect("a well-formed document is UTF-8");
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_comments = true;
    for _ in 0..=data.len() {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => return,
            Ok(_) => {}
            Err(error) => panic!("we accept what quick-xml rejects: {error}"),
        }
    }
    panic!("quick-xml did not reach the end");
}

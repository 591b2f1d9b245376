//! Feeds arbitrary bytes to every wire-format entry point: none may panic, `scan_document`
//! must agree with `CallbackReg::parse`, and every successful parse must round-trip through
//! `to_xml`.

#![no_main]

use crnp::protocol::{CallbackReg, DocumentScan, Event, Limits, Reply, StatusCode, scan_document};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let scan = scan_document(data, &limits);
    let registration = CallbackReg::parse(data, &limits);
    match (&scan, &registration) {
        // A document that parses has a closed root.
        (_, Ok(_)) => assert_eq!(scan, DocumentScan::Complete),
        // Whatever scanning rejects, or finds unfinished, parsing rejects as MALFORMED.
        (DocumentScan::Malformed(_) | DocumentScan::Incomplete, Err(error)) => {
            assert_eq!(error.status, StatusCode::Malformed, "{scan:?} vs {error}");
        }
        (DocumentScan::Complete, Err(_)) => {}
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

//! Feeds arbitrary bytes to every wire-format entry point: none may panic,
//! `CallbackReg::parse_arrived` must agree with `CallbackReg::parse` (and give the same answers
//! when the bytes arrive in two pieces through `ArrivingRegistration`), every successful parse
//! must round-trip through `to_xml`, and every document our reader finds well-formed must
//! also read cleanly with quick-xml (an independent tokenizer, more lenient than ours).

#![no_main]

use crnp::protocol::{Arrival, ArrivingRegistration, CallbackReg, Event, Limits, Reply, StatusCode};
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/xml_oracle/mod.rs"]
mod xml_oracle;

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
    // The same bytes arriving in two pieces, split where the first byte says: each answer is
    // the stateless one.
    let split = data.first().map_or(0, |&b| usize::from(b) * data.len() / 256);
    let mut arriving = ArrivingRegistration::default();
    let answer = arriving.parse(&data[..split], &limits);
    assert_eq!(answer, CallbackReg::parse_arrived(&data[..split], &limits));
    if answer.is_incomplete() {
        assert_eq!(arriving.parse(data, &limits), CallbackReg::parse_arrived(data, &limits));
    }
    let well_formed = match &registration {
        Ok(_) => true,
        Err(error) => error.status != StatusCode::Malformed,
    };
    if well_formed {
        xml_oracle::assert_quick_xml_reads(data);
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


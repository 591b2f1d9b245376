//! quick-xml as an independent oracle for our reader: it is more lenient (it checks less), so
//! every document our reader finds well-formed must read to its end with it too. Shared by
//! tests/protocol_hostile.rs and the fuzz target.

/// Panics unless quick-xml, with end-name and comment checks on, reads `bytes` (after any
/// byte order mark) to its end without an error.
pub fn assert_quick_xml_reads(bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("a well-formed document is UTF-8");
    let mut reader = quick_xml::Reader::from_str(text.strip_prefix('\u{FEFF}').unwrap_or(text));
    reader.config_mut().check_comments = true;
    for _ in 0..=bytes.len() {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => return,
            Ok(_) => {}
            Err(error) => panic!("we accept what quick-xml rejects ({error}): {text:?}"),
        }
    }
    panic!("quick-xml did not reach the end of {text:?}");
}

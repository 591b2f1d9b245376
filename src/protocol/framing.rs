//! Finding the end of a registration in a byte stream: clients never half-close, so the
//! server knows a request is whole only when the root element's end tag has arrived.

use super::error::ProtocolError;
use super::xml::{Fault, Limits, Reader, Token};

/// What [`scan_document`] concluded about a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentScan {
    /// No error so far, but the root element has not closed: read more bytes.
    Incomplete,
    /// The root element's end tag (or a self-closing root) is in the buffer: parse the whole
    /// buffer, which also judges any bytes that arrived after it.
    Complete,
    /// The buffer can never become an acceptable document: reply with this error.
    Malformed(ProtocolError),
}

/// Scans `buf`, the bytes received so far, for a complete XML document.
///
/// Runs the same strict reader as the parsers, so every syntax error and every [`Limits`]
/// breach found before the root closes is reported at once, and a buffer over
/// `max_message_bytes` is always `Malformed`. A strict prefix of a valid document is always
/// `Incomplete` (including one ending inside a multi-byte character, a tag, a reference or
/// the byte order mark). Conversely a hopeless buffer whose last bytes are a broken markup
/// construct (e.g. `<!-x>`) may first be reported `Incomplete`; the next call with more
/// bytes then reports it.
///
/// Stateless: each call rescans the buffer from the start, O(`buf.len()`), so a caller
/// should scan after each read, not after each byte; `max_message_bytes` bounds the total.
pub fn scan_document(buf: &[u8], limits: &Limits) -> DocumentScan {
    let mut reader = match Reader::partial(buf, limits) {
        Ok(reader) => reader,
        Err(fault) => return fault.into(),
    };
    loop {
        match reader.next_token() {
            Ok(Token::Close) if reader.depth() == 0 => return DocumentScan::Complete,
            Ok(Token::End) => return DocumentScan::Complete,
            Ok(_) => {}
            Err(fault) => return fault.into(),
        }
    }
}

impl From<Fault> for DocumentScan {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Malformed(error) => Self::Malformed(error),
            Fault::NeedMore(_) => Self::Incomplete,
        }
    }
}

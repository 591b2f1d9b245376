//! Parsing a registration while it arrives: clients never half-close, so the server knows a
//! request is whole only when the root element's end tag has arrived.

use super::error::ProtocolError;

/// What the bytes received so far amount to, from [`super::CallbackReg::parse_arrived`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival<T> {
    /// No error so far, but the root element has not closed: read more bytes.
    Incomplete,
    /// The root element has closed, or the bytes can never become an acceptable document:
    /// the outcome of parsing the whole buffer, exactly as the whole-buffer parse decides it.
    Complete(Result<T, ProtocolError>),
}

impl<T> Arrival<T> {
    /// Whether more bytes are needed.
    pub fn is_incomplete(&self) -> bool {
        matches!(self, Self::Incomplete)
    }
}

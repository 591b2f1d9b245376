//! Parsing a registration while it arrives: clients never half-close, so the server knows a
//! request is whole only when the root element's end tag has arrived.

use super::CallbackReg;
use super::error::ProtocolError;
use super::xml::{self, Checkpoint, Limits, Scan};

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

/// A registration arriving over one connection, read a piece at a time.
///
/// After each read, hand [`Self::parse`] all the bytes received so far. The first call parses
/// them; while the message is incomplete, later calls only scan the bytes the previous call
/// could not read yet, and the whole message is parsed once, when its root element has
/// closed. A message dribbled in many small pieces thus costs about what it costs in one,
/// where parsing everything again on every read would cost the square of its length.
#[derive(Debug, Default)]
pub struct ArrivingRegistration {
    /// Where the last call ran out of input, if it did.
    resume_at: Option<Checkpoint>,
}

impl ArrivingRegistration {
    /// The verdict on `bytes`, the bytes received so far, which must start with the bytes of
    /// the previous call: exactly [`CallbackReg::parse_arrived`] on the same bytes.
    pub fn parse(&mut self, bytes: &[u8], limits: &Limits) -> Arrival<CallbackReg> {
        let Some(checkpoint) = self.resume_at.take() else {
            let (arrival, resume_at) = CallbackReg::parse_arrived_resumable(bytes, limits);
            self.resume_at = resume_at;
            return arrival;
        };
        match xml::scan_from(bytes, limits, &checkpoint) {
            Scan::NeedMore(next) => {
                self.resume_at = Some(next);
                Arrival::Incomplete
            }
            Scan::Decided => Arrival::Complete(CallbackReg::parse(bytes, limits)),
        }
    }
}

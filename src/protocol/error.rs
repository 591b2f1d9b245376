//! [`ProtocolError`]: why a message was rejected, as the status code to reply with.

use super::StatusCode;

/// A rejected message: the `STATUS_CODE` the peer should get and a human-readable reason.
///
/// The server copies both straight into its `SC_REPLY` (`reason` becomes `SC_STATUS_MSG`), so
/// every reason names what was wrong in words a client developer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct ProtocolError {
    /// The reply code: `MALFORMED`, `INVALID`, `VERSION_TOO_HIGH` or `VERSION_TOO_LOW` when
    /// parsing; other layers may build errors with any code.
    pub status: StatusCode,
    /// What was wrong, for `SC_STATUS_MSG` and logs.
    pub reason: String,
}

impl ProtocolError {
    /// A `MALFORMED` error: the bytes are not a well-formed XML document we are willing to parse.
    pub fn malformed(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::Malformed,
            reason: reason.into(),
        }
    }

    /// An `INVALID` error: well-formed XML that does not follow the CRNP DTDs or rules.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::Invalid,
            reason: reason.into(),
        }
    }

    /// An error with any status code, e.g. `VERSION_TOO_HIGH`.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }

    /// Whether this error means the input was not well-formed (and so beats any other error).
    pub(crate) fn is_malformed(&self) -> bool {
        self.status == StatusCode::Malformed
    }
}

/// Shortens and quotes untrusted text for an error reason, so a reason never echoes a whole
/// hostile message back.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

//! `SC_REPLY`: the server's answer on the registration connection.

/// Every `STATUS_CODE` of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// Processed successfully.
    Ok,
    /// Transient error; try again.
    Retry,
    /// Resources are low (client table full); try later.
    LowResource,
    /// Serious internal problem.
    SystemError,
    /// Authorization failed, or the request cannot be applied (e.g. client not registered).
    Fail,
    /// Not well-formed XML.
    Malformed,
    /// Well-formed but not valid against the DTD.
    Invalid,
    /// Protocol version above 1.0.
    VersionTooHigh,
    /// Protocol version below 1.0.
    VersionTooLow,
}

/// A parsed or to-be-sent `SC_REPLY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `STATUS_CODE`.
    pub status: StatusCode,
    /// `SC_STATUS_MSG` text: a human-readable reason.
    pub message: String,
}

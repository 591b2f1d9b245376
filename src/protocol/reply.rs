//! `SC_REPLY`: the server's answer on the registration connection.

use std::fmt;

use super::error::{ProtocolError, excerpt};
use super::version::{self, VERSION};
use super::xml::{self, Limits, Reader, unknown_attribute, write};

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

impl StatusCode {
    /// Every code, in the order of the spec's table.
    pub const ALL: [StatusCode; 9] = [
        Self::Ok,
        Self::Retry,
        Self::LowResource,
        Self::SystemError,
        Self::Fail,
        Self::Malformed,
        Self::Invalid,
        Self::VersionTooHigh,
        Self::VersionTooLow,
    ];

    /// The wire spelling we emit (the DTD enumeration): `OK`, `LOW_RESOURCE`, `INVALID`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Retry => "RETRY",
            Self::LowResource => "LOW_RESOURCE",
            Self::SystemError => "SYSTEM_ERROR",
            Self::Fail => "FAIL",
            Self::Malformed => "MALFORMED",
            Self::Invalid => "INVALID",
            Self::VersionTooHigh => "VERSION_TOO_HIGH",
            Self::VersionTooLow => "VERSION_TOO_LOW",
        }
    }

    /// Reads a wire spelling; also accepts the DTD comment's synonyms `LOW_RESOURCES` and
    /// `INVALID_XML` (spec §4.4). Case-sensitive, like every CRNP name.
    pub fn from_wire(s: &str) -> Option<StatusCode> {
        match s {
            "LOW_RESOURCES" => Some(Self::LowResource),
            "INVALID_XML" => Some(Self::Invalid),
            _ => Self::ALL.into_iter().find(|code| code.as_str() == s),
        }
    }
}

impl fmt::Display for StatusCode {
    /// The wire spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed or to-be-sent `SC_REPLY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `STATUS_CODE`.
    pub status: StatusCode,
    /// `SC_STATUS_MSG` text: a human-readable reason.
    pub message: String,
}

impl Reply {
    /// A reply with `status` and the human-readable `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The document to send: declaration, then
    /// `<SC_REPLY VERSION="1.0" STATUS_CODE=".."><SC_STATUS_MSG><![CDATA[..]]></SC_STATUS_MSG></SC_REPLY>`.
    ///
    /// Characters XML cannot carry are written as U+FFFD (see [`super::is_representable`]).
    pub fn to_xml(&self) -> Vec<u8> {
        let capacity = write::DECLARATION.len()
            + "<SC_REPLY></SC_REPLY>".len()
            + write::attribute_overhead("VERSION")
            + VERSION.len()
            + write::attribute_overhead("STATUS_CODE")
            + self.status.as_str().len()
            + write::cdata_element_overhead("SC_STATUS_MSG")
            + self.message.len();
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(write::DECLARATION.as_bytes());
        out.extend_from_slice(b"<SC_REPLY");
        write::attribute(&mut out, "VERSION", VERSION);
        write::attribute(&mut out, "STATUS_CODE", self.status.as_str());
        out.push(b'>');
        write::cdata_element(&mut out, "SC_STATUS_MSG", &self.message);
        out.extend_from_slice(b"</SC_REPLY>");
        out
    }

    /// Parses and validates an `SC_REPLY` (the client side of a registration).
    ///
    /// `STATUS_CODE` is required and must be a known code (synonyms accepted); exactly one
    /// `SC_STATUS_MSG` child, whose text may be plain, escaped or CDATA.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Reply, ProtocolError> {
        xml::parse_document(bytes, limits, "SC_REPLY", parse_root)
    }
}

fn parse_root(reader: &mut Reader<'_>) -> Result<Reply, ProtocolError> {
    let (mut version, mut status, mut unknown) = (None, None, None);
    for &attribute in reader.attributes() {
        match attribute.name {
            "VERSION" => version = Some(attribute),
            "STATUS_CODE" => status = Some(attribute),
            _ => unknown = unknown.or(Some(attribute)),
        }
    }
    version::check(version)?;
    if let Some(attribute) = unknown {
        return Err(unknown_attribute("SC_REPLY", attribute));
    }
    let status = status.ok_or_else(|| ProtocolError::invalid("<SC_REPLY> has no STATUS_CODE"))?;
    let status_text = status.value();
    let status = StatusCode::from_wire(&status_text).ok_or_else(|| {
        ProtocolError::invalid(format!("unknown STATUS_CODE {}", excerpt(&status_text)))
    })?;
    let message = match reader.next_child("SC_REPLY")? {
        Some(child) if child == "SC_STATUS_MSG" => {
            reader.expect_no_attributes(child)?;
            reader.text_content("SC_STATUS_MSG")?
        }
        Some(child) => return Err(unexpected_child(child)),
        None => return Err(ProtocolError::invalid("<SC_REPLY> has no <SC_STATUS_MSG>")),
    };
    if let Some(child) = reader.next_child("SC_REPLY")? {
        return Err(unexpected_child(child));
    }
    Ok(Reply {
        status,
        message: message.into_string(),
    })
}

fn unexpected_child(name: &str) -> ProtocolError {
    ProtocolError::invalid(format!(
        "<SC_REPLY> must contain exactly one <SC_STATUS_MSG>, found {}",
        excerpt(name)
    ))
}

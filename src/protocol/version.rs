//! The `VERSION` attribute shared by all three roots: `#FIXED "1.0"` in the DTDs.

use super::error::{ProtocolError, excerpt};
use super::{StatusCode, xml::RawAttribute};

/// The only protocol version: what we write and what we accept.
pub(crate) const VERSION: &str = "1.0";

/// Judges a root's `VERSION` (spec §4.5): absent means 1.0 (the DTD default of a `#FIXED`
/// attribute); otherwise it must be `major[.minor]` in decimal digits, compared numerically
/// with 1.0 (so `1`, `1.0` and `1.00` are equal): above is VERSION_TOO_HIGH, below is
/// VERSION_TOO_LOW, anything unparsable is INVALID.
pub(crate) fn check(attribute: Option<RawAttribute<'_>>) -> Result<(), ProtocolError> {
    let Some(attribute) = attribute else {
        return Ok(());
    };
    let value = attribute.value();
    let (major, minor) = value.split_once('.').unwrap_or((&value, "0"));
    let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !is_number(major) || !is_number(minor) {
        return Err(ProtocolError::invalid(format!(
            "VERSION {} is not a version number like \"1.0\"",
            excerpt(&value)
        )));
    }
    let major = major.trim_start_matches('0');
    let minor_is_zero = minor.bytes().all(|b| b == b'0');
    match (major, minor_is_zero) {
        ("1", true) => Ok(()),
        ("", _) => Err(ProtocolError::new(
            StatusCode::VersionTooLow,
            format!(
                "VERSION {} is lower than the supported {VERSION}",
                excerpt(&value)
            ),
        )),
        _ => Err(ProtocolError::new(
            StatusCode::VersionTooHigh,
            format!(
                "VERSION {} is higher than the supported {VERSION}",
                excerpt(&value)
            ),
        )),
    }
}

//! Attributes of a start tag: strict tokenizing, validation and value decoding.
//!
//! The lexer hands over the raw text between the element name and `>`; this module enforces
//! the XML 1.0 rules on it (white space between attributes, `Name`, `=`, quoted value without
//! `<`, only known references) so that a tag either validates completely or is rejected.

use super::chars::{
    is_attribute_special, is_name, is_space, push_normalized_newlines, resolve_reference,
    split_reference,
};
use crate::protocol::Text;
use crate::protocol::error::{excerpt, short_name};

/// One attribute as written: its name and its raw (still escaped) value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawAttribute<'a> {
    /// The attribute name, a valid XML `Name`.
    pub(crate) name: &'a str,
    /// The text between the quotes, references not yet resolved.
    raw: &'a str,
    /// The raw text is the value: no reference, tab, LF or CR to process.
    plain: bool,
}

impl<'a> RawAttribute<'a> {
    /// The attribute value after reference resolution and attribute-value normalization
    /// (literal tab, CR, LF become spaces; a `\r\n` pair becomes one space).
    ///
    /// Copies the raw text when nothing needs processing (the common case); references were
    /// validated by [`parse_all`], so none fails here.
    pub(crate) fn value(&self) -> Text {
        if self.plain {
            return Text::from(self.raw);
        }
        let mut out = Text::with_capacity(self.raw.len());
        let mut rest = self.raw;
        while let Some(Ok((before, body, after))) = split_reference(rest) {
            push_attribute_text(&mut out, before);
            match resolve_reference(body) {
                Ok(c) => out.push(c),
                Err(_) => {
                    out.push('&');
                    out.push_str(body);
                    out.push(';');
                }
            }
            rest = after;
        }
        push_attribute_text(&mut out, rest);
        out
    }
}

fn push_attribute_text(out: &mut Text, text: &str) {
    let start = out.len();
    push_normalized_newlines(out, text);
    if out[start..].bytes().any(|b| matches!(b, b'\t' | b'\n')) {
        let normalized = out[start..].replace(['\t', '\n'], " ");
        out.truncate(start);
        out.push_str(&normalized);
    }
}

/// Parses and checks every attribute of a tag into `out` (cleared first): syntax, names,
/// values, no duplicates, at most `max`.
///
/// `out` is reused across tags so that reading attributes does not allocate per tag.
pub(crate) fn parse_all<'a>(
    element: &str,
    text: &'a str,
    max: usize,
    out: &mut Vec<RawAttribute<'a>>,
) -> Result<(), String> {
    out.clear();
    // Names are shortened only on the error paths: this loop is hot.
    let tag = || short_name(element);
    let mut rest = text;
    while let Some((name, raw)) =
        next_attribute(&mut rest).map_err(|e| format!("in <{}>: {e}", tag()))?
    {
        if out.len() == max {
            return Err(format!("<{}> has more than {max} attributes", tag()));
        }
        if out.iter().any(|seen| seen.name == name) {
            return Err(format!(
                "<{}> has attribute {} twice",
                tag(),
                short_name(name)
            ));
        }
        let plain = check_value(raw)
            .map_err(|e| format!("in attribute {} of <{}>: {e}", short_name(name), tag()))?;
        out.push(RawAttribute { name, raw, plain });
    }
    Ok(())
}

/// Reads the next attribute (name, raw value) from `rest`, advancing it; `Ok(None)` at the
/// end of the tag.
fn next_attribute<'a>(rest: &mut &'a str) -> Result<Option<(&'a str, &'a str)>, String> {
    let text = *rest;
    let after_space = trim_space_start(text);
    if after_space.is_empty() {
        *rest = after_space;
        return Ok(None);
    }
    if after_space.len() == text.len() {
        return Err("attributes must be separated by white space".into());
    }
    let name_end = after_space
        .bytes()
        .position(|b| b == b'=' || is_space(b))
        .ok_or_else(|| format!("attribute {} has no value", excerpt(after_space)))?;
    let name = &after_space[..name_end];
    if !is_name(name) {
        return Err(format!("{} is not a valid attribute name", excerpt(name)));
    }
    let after_name = trim_space_start(&after_space[name_end..]);
    let Some(after_eq) = after_name.strip_prefix('=') else {
        return Err(format!(
            "attribute {} is not followed by '='",
            short_name(name)
        ));
    };
    let after_eq = trim_space_start(after_eq);
    let quote = match after_eq.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) => q,
        _ => {
            return Err(format!(
                "the value of attribute {} is not quoted",
                short_name(name)
            ));
        }
    };
    let body = &after_eq[1..];
    let close = memchr::memchr(quote, body.as_bytes()).ok_or_else(|| {
        format!(
            "the value of attribute {} has no closing quote",
            short_name(name)
        )
    })?;
    *rest = &body[close + 1..];
    Ok(Some((name, &body[..close])))
}

fn trim_space_start(text: &str) -> &str {
    let spaces = text.bytes().take_while(|&b| is_space(b)).count();
    &text[spaces..]
}

/// Checks a raw attribute value: no `<`, and every `&` starts a known reference. Returns
/// whether the value is plain (nothing to decode or normalize).
fn check_value(raw: &str) -> Result<bool, String> {
    if !raw.bytes().any(is_attribute_special) {
        return Ok(true);
    }
    if memchr::memchr(b'<', raw.as_bytes()).is_some() {
        return Err("'<' is not allowed in an attribute value (escape it as &lt;)".into());
    }
    let mut rest = raw;
    while let Some(split) = split_reference(rest) {
        let (_, body, after) = split?;
        resolve_reference(body)?;
        rest = after;
    }
    Ok(false)
}

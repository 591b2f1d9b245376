//! The document prolog: the XML declaration and the DOCTYPE, checked strictly because they
//! are where hostile input hides (entity declarations, external fetches, foreign encodings).

use super::chars::{is_name, is_space};
use crate::protocol::error::excerpt;

/// Encodings other than UTF-8 that we accept when the document is pure ASCII (where they
/// decode identically to UTF-8).
const ASCII_COMPATIBLE: [&str; 4] = ["US-ASCII", "ASCII", "ISO-8859-1", "LATIN1"];

/// Validates the XML declaration `body` (the text between `<?xml` and `?>`).
///
/// Grammar (XML 1.0 §2.8): `version` first and `1.x`, then optional `encoding`, then optional
/// `standalone` (`yes`/`no`), nothing else. The encoding must be UTF-8, or an ASCII-compatible
/// encoding when `ascii_only` (the document then decodes the same either way).
pub(crate) fn check_declaration(body: &str, ascii_only: bool) -> Result<(), String> {
    let mut cursor = Cursor { rest: body };
    let version = cursor
        .pseudo_attribute("version")?
        .ok_or("the XML declaration must start with version=\"1.0\"")?;
    let minor = version.strip_prefix("1.").unwrap_or("");
    if minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("unsupported XML version {}", excerpt(version)));
    }
    if let Some(encoding) = cursor.pseudo_attribute("encoding")? {
        let utf8 = encoding.eq_ignore_ascii_case("UTF-8");
        let ascii = ASCII_COMPATIBLE
            .iter()
            .any(|e| e.eq_ignore_ascii_case(encoding));
        if !(utf8 || ascii && ascii_only) {
            return Err(format!(
                "unsupported encoding {}: send UTF-8",
                excerpt(encoding)
            ));
        }
    }
    if let Some(standalone) = cursor.pseudo_attribute("standalone")?
        && standalone != "yes"
        && standalone != "no"
    {
        return Err(format!(
            "standalone must be yes or no, not {}",
            excerpt(standalone)
        ));
    }
    if !cursor.skip_space().is_empty() {
        return Err(format!(
            "unexpected text in the XML declaration: {}",
            excerpt(cursor.rest)
        ));
    }
    Ok(())
}

/// Why a DOCTYPE with `[` is refused (see [`check_doctype`]).
pub(crate) const INTERNAL_SUBSET: &str =
    "a DOCTYPE with an internal subset (entity or element declarations) is not supported";

/// Validates a DOCTYPE `body` (the text after `<!DOCTYPE` up to, excluding, `>`).
///
/// Only a bare declaration naming the root and optionally its external DTD is accepted (and
/// then ignored: nothing is fetched). An internal subset (`[...]`) could declare entities, the
/// basis of entity-expansion attacks, so it is refused outright: we report it as MALFORMED
/// because a parser that does not process DTDs cannot read such a document.
pub(crate) fn check_doctype(body: &str) -> Result<(), String> {
    if memchr::memchr(b'[', body.as_bytes()).is_some() {
        return Err(INTERNAL_SUBSET.into());
    }
    let mut cursor = Cursor { rest: body };
    let name = cursor.token();
    if !is_name(name) {
        return Err(format!(
            "the DOCTYPE does not name a root element: {}",
            excerpt(body)
        ));
    }
    cursor.skip_space();
    match cursor.token() {
        "" => {}
        "SYSTEM" => {
            cursor.literal()?;
        }
        "PUBLIC" => {
            cursor.literal()?;
            cursor.literal()?;
        }
        other => return Err(format!("unexpected {} in the DOCTYPE", excerpt(other))),
    }
    if !cursor.skip_space().is_empty() {
        return Err(format!(
            "unexpected text in the DOCTYPE: {}",
            excerpt(cursor.rest)
        ));
    }
    Ok(())
}

/// A small left-to-right reader over declaration text.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn skip_space(&mut self) -> &'a str {
        self.rest = self
            .rest
            .trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
        self.rest
    }

    /// The text up to the next white space or quote.
    fn token(&mut self) -> &'a str {
        let end = self
            .rest
            .bytes()
            .position(|b| is_space(b) || b == b'"' || b == b'\'')
            .unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(end);
        self.rest = rest;
        token
    }

    /// White space, then a quoted literal; returns its content.
    fn literal(&mut self) -> Result<&'a str, String> {
        let text = self.skip_space();
        let quote = match text.as_bytes().first() {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err("expected a quoted literal in the DOCTYPE".into()),
        };
        let body = &text[1..];
        let close = memchr::memchr(quote, body.as_bytes()).ok_or("unterminated literal")?;
        self.rest = &body[close + 1..];
        Ok(&body[..close])
    }

    /// `S name S? = S? "value"` if the next pseudo-attribute is `name`; `None` if another
    /// (or none) follows.
    fn pseudo_attribute(&mut self, name: &str) -> Result<Option<&'a str>, String> {
        let before = self.rest;
        let text = self.skip_space();
        let Some(after_name) = text.strip_prefix(name) else {
            self.rest = before;
            return Ok(None);
        };
        if text.len() == before.len() {
            return Err(format!(
                "white space is required before {name} in the XML declaration"
            ));
        }
        self.rest = after_name;
        let Some(after_eq) = self.skip_space().strip_prefix('=') else {
            return Err(format!(
                "{name} is not followed by '=' in the XML declaration"
            ));
        };
        self.rest = after_eq;
        self.literal()
            .map(Some)
            .map_err(|_| format!("the value of {name} is not quoted"))
    }
}

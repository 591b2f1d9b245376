//! Walking a document's structure for the message parsers: the root, element-only content,
//! text-only content, and the final check of everything after the part a parser judged.

use super::chars::is_all_space;
use super::{Checkpoint, Limits, Reader, TextPiece, Token};
use crate::protocol::error::{ProtocolError, excerpt};
use crate::protocol::{Arrival, Text};

impl<'a> Reader<'a> {
    /// Reads to the end of the document, checking it; the result of a parse whose structure
    /// was already judged, because any MALFORMED finding outranks an INVALID one.
    pub(crate) fn finish(&mut self) -> Result<(), ProtocolError> {
        while !matches!(self.next()?, Token::End) {}
        Ok(())
    }

    /// The next child element of `parent`, whose content is elements only: white space is
    /// skipped, other text is INVALID. `None` at the end of `parent`.
    pub(crate) fn next_child(&mut self, parent: &str) -> Result<Option<&'a str>, ProtocolError> {
        loop {
            match self.next()? {
                Token::Open(name) => return Ok(Some(name)),
                Token::Close => return Ok(None),
                Token::Text(TextPiece::Chars(text)) if is_all_space(text) => {}
                Token::Text(_) => {
                    return Err(ProtocolError::invalid(format!(
                        "<{parent}> may contain only elements, not text"
                    )));
                }
                Token::End => {
                    return Err(ProtocolError::malformed(format!(
                        "<{parent}> is not closed"
                    )));
                }
            }
        }
    }

    /// The text of a text-only element, up to its end tag: plain text, references and CDATA
    /// sections concatenated.
    pub(crate) fn text_content(&mut self, element: &str) -> Result<Text, ProtocolError> {
        let mut text = Text::default();
        loop {
            match self.next()? {
                Token::Text(piece) if text.is_empty() => text = piece.into_text(),
                Token::Text(piece) => piece.push_to(&mut text),
                Token::Close => return Ok(text),
                Token::Open(child) => {
                    return Err(ProtocolError::invalid(format!(
                        "<{element}> may contain only text, not element {}",
                        excerpt(child)
                    )));
                }
                Token::End => {
                    return Err(ProtocolError::malformed(format!(
                        "<{element}> is not closed"
                    )));
                }
            }
        }
    }
}

/// Parses a whole document whose root must be `root`, with `body` judging the root element
/// (its attributes are in [`Reader::attributes`]) and its content (it must consume everything
/// up to the root's [`Token::Close`]).
///
/// Enforces the check order of the spec: any MALFORMED finding anywhere in the input wins
/// over the root-name check, which wins over whatever `body` reports (VERSION first, then
/// the rest, as `body` checks them in that order).
pub(crate) fn parse_document<'a, T>(
    bytes: &'a [u8],
    limits: &Limits,
    root: &str,
    body: impl FnOnce(&mut Reader<'a>) -> Result<T, ProtocolError>,
) -> Result<T, ProtocolError> {
    let mut reader = Reader::new(bytes, limits)?;
    parse_root(&mut reader, root, body)
}

/// [`parse_document`] on the bytes received so far: [`Arrival::Incomplete`] while the root
/// element is open and nothing is wrong yet (with where to resume, for [`scan_from`]),
/// otherwise exactly what [`parse_document`] returns for the same bytes.
pub(crate) fn parse_arrived_document<'a, T>(
    bytes: &'a [u8],
    limits: &Limits,
    root: &str,
    body: impl FnOnce(&mut Reader<'a>) -> Result<T, ProtocolError>,
) -> (Arrival<T>, Option<Checkpoint>) {
    let mut reader = match Reader::partial(bytes, limits) {
        Ok(reader) => reader,
        // The partial reader set aside an unfinished character at the end, so its verdict
        // may name another defect than the whole-buffer reader's: give the latter.
        Err(_) => {
            return (
                Arrival::Complete(parse_document(bytes, limits, root, body)),
                None,
            );
        }
    };
    let result = parse_root(&mut reader, root, body);
    if reader.ran_out() {
        return (Arrival::Incomplete, Some(reader.checkpoint()));
    }
    let outcome = match reader.unread_tail_error(bytes) {
        Some(error) => Err(error),
        None => result,
    };
    (Arrival::Complete(outcome), None)
}

/// What [`scan_from`] found.
pub(crate) enum Scan {
    /// The input ran out again before the root element closed: resume here next time.
    NeedMore(Checkpoint),
    /// The root element has closed, or the bytes can never become a document: time for the
    /// whole-buffer verdict.
    Decided,
}

/// Reads on from `checkpoint` over `bytes` (which extend the bytes it was taken on) without
/// judging structure or building values: only whether the root element has now closed or the
/// bytes became hopeless.
pub(crate) fn scan_from(bytes: &[u8], limits: &Limits, checkpoint: &Checkpoint) -> Scan {
    let Ok(mut reader) = Reader::resume(bytes, limits, checkpoint) else {
        return Scan::Decided;
    };
    loop {
        match reader.next() {
            Ok(Token::Close) if reader.depth() == 0 => return Scan::Decided,
            Ok(Token::End) => return Scan::Decided,
            Ok(_) => {}
            Err(_) if reader.ran_out() => return Scan::NeedMore(reader.checkpoint()),
            Err(_) => return Scan::Decided,
        }
    }
}

/// The root element, judged by `body`, then the rest of the input (see [`parse_document`]).
fn parse_root<'a, T>(
    reader: &mut Reader<'a>,
    root: &str,
    body: impl FnOnce(&mut Reader<'a>) -> Result<T, ProtocolError>,
) -> Result<T, ProtocolError> {
    let result = match reader.next()? {
        Token::Open(name) if name == root => body(reader),
        Token::Open(name) => Err(ProtocolError::invalid(format!(
            "the root element is {}, expected {root}",
            excerpt(name)
        ))),
        _ => Err(ProtocolError::malformed("the document has no root element")),
    };
    match result {
        Err(error) if error.is_malformed() => Err(error),
        result => {
            reader.finish()?;
            result
        }
    }
}

//! A strict, bounded XML 1.0 pull reader over one in-memory document.
//!
//! The [`lexer`] finds the markup boundaries; this module adds everything else a strict
//! reader needs: end-tag matching, UTF-8 and character checks, names, attribute syntax, references,
//! `]]>` in text, prolog rules (declaration first, DOCTYPE without internal subset), nothing but
//! white space, comments and PIs around the root, and the [`Limits`]. The message parsers
//! then walk [`Token`]s and only judge structure (INVALID), never syntax (MALFORMED).
//!
//! The same reader runs in *partial* mode for [`super::CallbackReg::parse_arrived`]: running
//! out of input before the root element closes is then "need more bytes", not an error.

mod attrs;
mod chars;
mod lexer;
mod prolog;
mod walk;
pub(crate) mod write;

use lexer::{LexError, Lexer, Markup};

pub(crate) use attrs::RawAttribute;
pub use chars::is_representable;
use chars::{
    first_unrepresentable, is_all_space, is_name, push_normalized_newlines, resolve_reference,
};
pub(crate) use walk::{Scan, parse_arrived_document, parse_document, scan_from};

use super::Text;
use super::error::{ProtocolError, excerpt, short_name};

/// Bounds on an incoming document, so a hostile peer cannot make the parser do unbounded work.
///
/// Every limit is checked while reading; exceeding one rejects the message as `MALFORMED`
/// (the parser stops before it knows whether the rest is well-formed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted message, in bytes (the document plus anything sent after it).
    pub max_message_bytes: usize,
    /// Deepest element nesting (CRNP needs 4: root, SC_EVENT_REG, NVPAIR, NAME).
    pub max_depth: usize,
    /// Most attributes on one element (CRNP needs 5, on SC_EVENT).
    pub max_attributes: usize,
    /// Most elements in one document.
    pub max_elements: usize,
}

impl Default for Limits {
    /// 64 KiB, depth 16, 16 attributes per element, 10 000 elements: far above any real
    /// registration, far below anything that costs the server noticeable time.
    fn default() -> Self {
        Self {
            max_message_bytes: 65_536,
            max_depth: 16,
            max_attributes: 16,
            max_elements: 10_000,
        }
    }
}

/// A piece of character data inside an element; an element's text is the concatenation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TextPiece<'a> {
    /// Literal character data (no references; end-of-line handling still to apply).
    Chars(&'a str),
    /// The content of a CDATA section (end-of-line handling still to apply).
    CData(&'a str),
    /// A resolved entity or character reference.
    Char(char),
}

impl TextPiece<'_> {
    /// This piece's characters, with XML end-of-line handling.
    fn into_text(self) -> Text {
        match self {
            Self::Chars(text) | Self::CData(text) if !text.as_bytes().contains(&b'\r') => {
                Text::from(text)
            }
            piece => {
                let mut out = Text::default();
                piece.push_to(&mut out);
                out
            }
        }
    }

    /// Appends this piece's characters to `out`, with XML end-of-line handling.
    fn push_to(self, out: &mut Text) {
        match self {
            Self::Chars(text) | Self::CData(text) => push_normalized_newlines(out, text),
            Self::Char(c) => out.push(c),
        }
    }
}

/// The INVALID error for an attribute the DTD does not declare on `element`.
pub(crate) fn unknown_attribute(element: &str, attribute: RawAttribute<'_>) -> ProtocolError {
    ProtocolError::invalid(format!(
        "<{element}> has no attribute {}",
        excerpt(attribute.name)
    ))
}

/// What the reader found next.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Token<'a> {
    /// A start tag (or an empty-element tag), by element name; its attributes are in
    /// [`Reader::attributes`] until the next token is read, and its matching
    /// [`Token::Close`] follows its content (immediately for `<x/>`).
    Open(&'a str),
    /// The end of the most recently opened element.
    Close,
    /// Character data inside the root element.
    Text(TextPiece<'a>),
    /// The end of the input, after a complete root element and a clean epilog.
    End,
}

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum Fault {
    /// The input can never become a well-formed document.
    Malformed(ProtocolError),
    /// The input ended too early; the reason says where. More bytes may fix it.
    NeedMore(String),
}

/// Where a partial reader ran out of input: what it takes to carry on from there once more
/// bytes have arrived, without reading again what came before.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoint {
    /// Offset (in the text after any BOM) of the piece that could not be read yet.
    position: usize,
    phase: Phase,
    doctype_seen: bool,
    /// The open elements' names, as (offset, length) in the text.
    open: Vec<(usize, usize)>,
    elements: usize,
}

/// Where the reader is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing read yet: the only place an XML declaration may appear.
    Start,
    /// After the declaration or other prolog items, before the root.
    Prolog,
    /// Inside the root element.
    Root,
    /// After the root element.
    Epilog,
}

/// The strict pull reader. See the module doc.
pub(crate) struct Reader<'a> {
    /// The document text after any BOM.
    input: &'a str,
    /// Bytes before `input` (the BOM), to report positions in the caller's buffer.
    skipped: usize,
    lexer: Lexer<'a>,
    limits: Limits,
    phase: Phase,
    doctype_seen: bool,
    /// Names of the open elements, innermost last.
    open: Vec<&'a str>,
    elements: usize,
    /// An empty-element tag was returned as `Open`; its `Close` is due next.
    pending_close: bool,
    /// Attributes of the element last opened (reused, no allocation per tag).
    attributes: Vec<RawAttribute<'a>>,
    /// The input ran out before the root element closed (only a partial reader can act on it).
    ran_out: bool,
    /// More input may follow (see [`Self::partial`]).
    partial: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl<'a> Reader<'a> {
    /// A reader over a whole document: running out of input is MALFORMED.
    pub(crate) fn new(bytes: &'a [u8], limits: &Limits) -> Result<Self, ProtocolError> {
        Self::open(bytes, limits, false, 0).map_err(Fault::into_error)
    }

    /// A reader over a document still arriving: a trailing incomplete UTF-8 sequence is
    /// left for later and running out of input is [`Fault::NeedMore`].
    pub(crate) fn partial(bytes: &'a [u8], limits: &Limits) -> Result<Self, Fault> {
        Self::open(bytes, limits, true, 0)
    }

    /// A partial reader over `bytes`, which extend the bytes `checkpoint` was taken on, that
    /// carries on where that reader stopped. Only the new text is checked for characters XML
    /// cannot carry; the whole buffer is still checked to be UTF-8 (cheap next to reading it).
    pub(crate) fn resume(
        bytes: &'a [u8],
        limits: &Limits,
        checkpoint: &Checkpoint,
    ) -> Result<Self, Fault> {
        let mut reader = Self::open(bytes, limits, true, checkpoint.position)?;
        let input = reader.input;
        reader.lexer = Lexer::at(input, checkpoint.position);
        reader.phase = checkpoint.phase;
        reader.doctype_seen = checkpoint.doctype_seen;
        reader.elements = checkpoint.elements;
        reader.open.extend(
            checkpoint
                .open
                .iter()
                .map(|&(start, len)| input.get(start..start + len).unwrap_or("")),
        );
        Ok(reader)
    }

    /// Where this reader stopped, to [`Self::resume`] there; meaningful after it ran out of
    /// input ([`Self::ran_out`]).
    pub(crate) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            position: self.lexer.start(),
            phase: self.phase,
            doctype_seen: self.doctype_seen,
            open: self
                .open
                .iter()
                .map(|name| {
                    let offset =
                        (name.as_ptr() as usize).wrapping_sub(self.input.as_ptr() as usize);
                    (offset, name.len())
                })
                .collect(),
            elements: self.elements,
        }
    }

    /// Opens a reader; characters XML cannot carry are looked for from text offset
    /// `checked_before` on (what comes before was checked by an earlier reader).
    fn open(
        bytes: &'a [u8],
        limits: &Limits,
        partial: bool,
        checked_before: usize,
    ) -> Result<Self, Fault> {
        if bytes.len() > limits.max_message_bytes {
            return Err(malformed(format!(
                "the message is {} bytes, more than the limit of {} bytes",
                bytes.len(),
                limits.max_message_bytes
            )));
        }
        let skipped = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
        let body = &bytes[skipped..];
        let input = match std::str::from_utf8(body) {
            Ok(text) => text,
            Err(e) if partial && e.error_len().is_none() => {
                std::str::from_utf8(&body[..e.valid_up_to()]).map_err(|_| not_utf8(skipped))?
            }
            Err(e) => return Err(not_utf8(skipped + e.valid_up_to())),
        };
        let unchecked = input.as_bytes().get(checked_before..).unwrap_or_default();
        if let Some(at) = first_unrepresentable(unchecked).map(|at| checked_before + at) {
            let what = match input.as_bytes()[at] {
                0 => "a NUL byte".to_owned(),
                _ => format!(
                    "character {:?}",
                    input[at..].chars().next().unwrap_or_default()
                ),
            };
            return Err(malformed(format!(
                "{what} at byte {} is not allowed in XML",
                skipped + at
            )));
        }
        if input.starts_with('\u{FEFF}') {
            return Err(malformed("a second byte order mark starts the document"));
        }
        Ok(Self {
            input,
            skipped,
            lexer: Lexer::new(input),
            limits: *limits,
            phase: Phase::Start,
            doctype_seen: false,
            open: Vec::with_capacity(limits.max_depth.min(8)),
            elements: 0,
            pending_close: false,
            attributes: Vec::with_capacity(limits.max_attributes.min(8)),
            ran_out: false,
            partial,
        })
    }

    /// The attributes of the element last opened, in document order.
    /// Read them before asking for the next token.
    pub(crate) fn attributes(&self) -> &[RawAttribute<'a>] {
        &self.attributes
    }

    /// Rejects any attribute on the element just opened, for elements whose DTD declares none.
    pub(crate) fn expect_no_attributes(&self, element: &str) -> Result<(), ProtocolError> {
        match self.attributes.first() {
            Some(&attribute) => Err(unknown_attribute(element, attribute)),
            None => Ok(()),
        }
    }

    /// The next token; running out of input is MALFORMED ("truncated"), and noted in
    /// [`Self::ran_out`] when the root element is still open.
    pub(crate) fn next(&mut self) -> Result<Token<'a>, ProtocolError> {
        self.next_token().map_err(|fault| {
            if matches!(fault, Fault::NeedMore(_)) && self.phase != Phase::Epilog {
                self.ran_out = true;
            }
            fault.into_error()
        })
    }

    /// How many elements are open.
    pub(crate) fn depth(&self) -> usize {
        self.open.len()
    }

    /// Whether reading stopped because the input ended before the root element closed.
    pub(crate) fn ran_out(&self) -> bool {
        self.ran_out
    }

    /// For a partial reader: the error a whole-document reader reports for the bytes this
    /// one left unread at the end (an incomplete UTF-8 sequence), if any.
    pub(crate) fn unread_tail_error(&self, bytes: &[u8]) -> Option<ProtocolError> {
        let read = self.skipped + self.input.len();
        (read < bytes.len()).then(|| not_utf8(read).into_error())
    }

    /// The next token, or why there is none.
    pub(crate) fn next_token(&mut self) -> Result<Token<'a>, Fault> {
        if self.pending_close {
            self.pending_close = false;
            return Ok(self.close());
        }
        loop {
            let open = self.open.last().copied();
            let markup = self.lexer.next(open).map_err(|e| self.lex_fault(e))?;
            let position = self.skipped + self.lexer.start();
            match markup {
                Markup::StartTag { text, empty } => return self.open_element(text, empty),
                Markup::EndTag(name) => return self.end_tag(name, position),
                Markup::Text(text) => {
                    // Text in the root running to the end of a partial input may go on in the
                    // next bytes, and "no ']]>'" is a rule on the whole run: leave it for then.
                    // (Outside the root, "white space only" can be judged piece by piece.)
                    if self.partial && self.phase == Phase::Root && self.lexer.at_end() {
                        return Err(Fault::NeedMore("the input ends inside text".into()));
                    }
                    if self.phase == Phase::Root {
                        if lexer::find_delimiter(text.as_bytes(), b"]]>").is_some() {
                            return Err(malformed(format!(
                                "']]>' is not allowed in text (near byte {position})"
                            )));
                        }
                        return Ok(Token::Text(TextPiece::Chars(text)));
                    }
                    self.outside_root(text, position)?;
                }
                Markup::CData(text) => {
                    self.inside_root("a CDATA section", position)?;
                    return Ok(Token::Text(TextPiece::CData(text)));
                }
                Markup::Reference(body) => {
                    self.inside_root("a reference", position)?;
                    let c = resolve_reference(body)
                        .map_err(|e| malformed(format!("{e} (near byte {position})")))?;
                    return Ok(Token::Text(TextPiece::Char(c)));
                }
                Markup::Declaration(body) => self.declaration(body, position)?,
                Markup::DocType(body) => self.doctype(body, position)?,
                Markup::ProcessingInstruction(target) => {
                    if !is_name(target) || target.eq_ignore_ascii_case("xml") {
                        return Err(malformed(format!(
                            "processing instruction target {} is not allowed (near byte {position})",
                            excerpt(target)
                        )));
                    }
                    self.leave_start();
                }
                Markup::Comment => self.leave_start(),
                Markup::Eof => {
                    return match self.phase {
                        Phase::Epilog => Ok(Token::End),
                        Phase::Root => Err(Fault::NeedMore(
                            "the input ends before the root element is closed".into(),
                        )),
                        Phase::Start | Phase::Prolog => Err(Fault::NeedMore(
                            "the input ends before the root element".into(),
                        )),
                    };
                }
            }
        }
    }

    fn open_element(&mut self, tag: &'a str, empty: bool) -> Result<Token<'a>, Fault> {
        if self.phase == Phase::Epilog {
            return Err(malformed(format!(
                "unexpected element after the root element: {}",
                excerpt(tag)
            )));
        }
        let name_end = tag.bytes().position(chars::is_space).unwrap_or(tag.len());
        let (name, attributes) = tag.split_at(name_end);
        if !is_name(name) {
            return Err(malformed(format!(
                "{} is not a valid element name",
                excerpt(name)
            )));
        }
        if self.open.len() == self.limits.max_depth {
            return Err(malformed(format!(
                "elements are nested more than {} levels deep",
                self.limits.max_depth
            )));
        }
        self.open.push(name);
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(malformed(format!(
                "the document has more than {} elements",
                self.limits.max_elements
            )));
        }
        attrs::parse_all(
            name,
            attributes,
            self.limits.max_attributes,
            &mut self.attributes,
        )
        .map_err(malformed)?;
        self.phase = Phase::Root;
        self.pending_close = empty;
        Ok(Token::Open(name))
    }

    /// `</name>`: must close the element opened last.
    fn end_tag(&mut self, name: &str, position: usize) -> Result<Token<'a>, Fault> {
        match self.open.last() {
            Some(&open) if open == name => Ok(self.close()),
            Some(&open) => Err(malformed(format!(
                "end tag </{}> does not match start tag <{}> (near byte {position})",
                short_name(name),
                short_name(open)
            ))),
            None => Err(malformed(format!(
                "end tag </{}> without a start tag (near byte {position})",
                short_name(name)
            ))),
        }
    }

    fn close(&mut self) -> Token<'a> {
        self.open.pop();
        if self.open.is_empty() {
            self.phase = Phase::Epilog;
        }
        Token::Close
    }

    /// Text outside the root element: only white space is allowed.
    fn outside_root(&mut self, text: &str, position: usize) -> Result<(), Fault> {
        if !is_all_space(text) {
            let place = match self.phase {
                Phase::Epilog => "after the root element",
                _ => "before the root element",
            };
            let text = text.trim_start_matches(|c: char| c.is_ascii() && chars::is_space(c as u8));
            return Err(malformed(format!(
                "unexpected text {place} (near byte {position}): {}",
                excerpt(text)
            )));
        }
        self.leave_start();
        Ok(())
    }

    fn inside_root(&self, what: &str, position: usize) -> Result<(), Fault> {
        match self.phase {
            Phase::Root => Ok(()),
            _ => Err(malformed(format!(
                "{what} outside the root element (near byte {position})"
            ))),
        }
    }

    fn leave_start(&mut self) {
        if self.phase == Phase::Start {
            self.phase = Phase::Prolog;
        }
    }

    fn declaration(&mut self, body: &str, position: usize) -> Result<(), Fault> {
        if self.phase != Phase::Start {
            return Err(malformed(format!(
                "the XML declaration must be the very first thing in the document, \
                 with nothing (not even white space) before it (found near byte {position})"
            )));
        }
        prolog::check_declaration(body, self.input.is_ascii())
            .map_err(|e| malformed(format!("bad XML declaration: {e}")))?;
        self.phase = Phase::Prolog;
        Ok(())
    }

    fn doctype(&mut self, body: &str, position: usize) -> Result<(), Fault> {
        if self.phase == Phase::Root || self.phase == Phase::Epilog || self.doctype_seen {
            return Err(malformed(format!(
                "a DOCTYPE is only allowed once, before the root element (near byte {position})"
            )));
        }
        prolog::check_doctype(body)
            .map_err(|e| malformed(format!("{e} (near byte {position})")))?;
        self.doctype_seen = true;
        self.phase = Phase::Prolog;
        Ok(())
    }

    /// Classifies a lexer error: running out of input, or a real syntax error.
    fn lex_fault(&self, error: LexError) -> Fault {
        match error {
            LexError::Truncated(what) => Fault::NeedMore(format!("the input ends inside {what}")),
            LexError::Syntax(reason) => malformed(format!(
                "not well-formed XML near byte {}: {reason}",
                self.skipped + self.lexer.start()
            )),
        }
    }
}

impl Fault {
    /// The error for a whole-document parse, where running out of input is fatal.
    pub(crate) fn into_error(self) -> ProtocolError {
        match self {
            Self::Malformed(error) => error,
            Self::NeedMore(why) => ProtocolError::malformed(format!("truncated document: {why}")),
        }
    }
}

fn malformed(reason: impl Into<String>) -> Fault {
    Fault::Malformed(ProtocolError::malformed(reason))
}

fn not_utf8(at: usize) -> Fault {
    malformed(format!(
        "the message is not UTF-8: invalid byte sequence at byte {at}"
    ))
}

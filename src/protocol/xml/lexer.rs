//! The tokenizer under [`super::Reader`]: splits a document into markup and character data.
//!
//! One forward pass with memchr: character data runs to the next `<` or `&`, and each kind of
//! markup ends at its own delimiter (`>` outside quotes, `-->`, `]]>`, `?>`). The lexer only
//! finds boundaries and says whether the input ran out inside a construct (more bytes may
//! complete it) or broke a rule that no further bytes can repair; names, attributes, end-tag
//! matching and everything else are judged by the reader.
//!
//! It replaced quick-xml's reader here because that reader alone cost more than our whole
//! parsing budget (see docs/PERFORMANCE.md); quick-xml stays as the independent oracle the
//! tests and the fuzz target compare this lexer against.

use memchr::{memchr, memchr2, memchr3};

use super::prolog::INTERNAL_SUBSET;

/// One piece of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Markup<'a> {
    /// `<name attributes>` or `<name attributes/>`: the text between `<` and `>` (or `/>`).
    StartTag { text: &'a str, empty: bool },
    /// `</name>`: the name, with any white space before `>` removed.
    EndTag(&'a str),
    /// Character data up to the next `<` or `&` (or the end of the input).
    Text(&'a str),
    /// `<![CDATA[...]]>`: the content.
    CData(&'a str),
    /// `&body;`: the body.
    Reference(&'a str),
    /// `<?xml...?>`: the text between `<?xml` and `?>`.
    Declaration(&'a str),
    /// `<?target...?>` for any other target: the target.
    ProcessingInstruction(&'a str),
    /// `<!--...-->`.
    Comment,
    /// `<!DOCTYPE ...>`: the text after `<!DOCTYPE` and its white space, up to `>`.
    DocType(&'a str),
    /// The end of the input.
    Eof,
}

/// Why the lexer could not return the next piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LexError {
    /// The input ends inside this construct; more bytes may complete it.
    Truncated(&'static str),
    /// No continuation can make this well-formed.
    Syntax(String),
}

/// A cursor over one document. See the module doc.
pub(super) struct Lexer<'a> {
    input: &'a str,
    /// Where the next piece starts.
    position: usize,
    /// Where the piece last returned (or the one that failed) starts.
    start: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `input`.
    pub(super) fn new(input: &'a str) -> Self {
        Self {
            input,
            position: 0,
            start: 0,
        }
    }

    /// A lexer over `input` that starts at byte `position` (clamped to the input).
    pub(super) fn at(input: &'a str, position: usize) -> Self {
        let position = position.min(input.len());
        Self {
            input,
            position,
            start: position,
        }
    }

    /// Whether everything has been read.
    pub(super) fn at_end(&self) -> bool {
        self.position >= self.input.len()
    }

    /// The byte offset where the piece last returned, or the one that failed, starts.
    pub(super) fn start(&self) -> usize {
        self.start
    }

    /// The next piece of the document. `open` is the element whose end tag is due, if any:
    /// its end tag written exactly so (the common case) is recognised without a search.
    pub(super) fn next(&mut self, open: Option<&'a str>) -> Result<Markup<'a>, LexError> {
        self.start = self.position;
        let bytes = self.input.as_bytes();
        match bytes.get(self.position) {
            None => Ok(Markup::Eof),
            Some(b'<') => self.markup(open),
            Some(b'&') => self.reference(),
            Some(_) => {
                let end = memchr2(b'<', b'&', self.rest())
                    .map_or(bytes.len(), |offset| self.position + offset);
                Ok(Markup::Text(self.take(0, end, end)))
            }
        }
    }

    /// The unread input.
    fn rest(&self) -> &'a [u8] {
        &self.input.as_bytes()[self.position..]
    }

    /// Returns `input[self.start + skip..content_end]` and moves on to `next`.
    fn take(&mut self, skip: usize, content_end: usize, next: usize) -> &'a str {
        let content = self.input.get(self.start + skip..content_end).unwrap_or("");
        self.position = next;
        content
    }

    fn reference(&mut self) -> Result<Markup<'a>, LexError> {
        let body_start = self.position + 1;
        let body = &self.input.as_bytes()[body_start..];
        let is_reference_byte =
            |b: u8| b.is_ascii_alphanumeric() || b >= 0x80 || b"#_:.-".contains(&b);
        match memchr(b';', body) {
            Some(semi) if body[..semi].iter().all(|&b| is_reference_byte(b)) => {
                let end = body_start + semi;
                Ok(Markup::Reference(self.take(1, end, end + 1)))
            }
            None if body.iter().all(|&b| is_reference_byte(b)) => {
                Err(LexError::Truncated("a reference"))
            }
            _ => Err(LexError::Syntax(
                "'&' is not the start of a reference ending in ';' (escape it as &amp;)".into(),
            )),
        }
    }

    /// At a `<`: dispatch on what follows it.
    fn markup(&mut self, open: Option<&'a str>) -> Result<Markup<'a>, LexError> {
        match self.rest().get(1) {
            None => Err(LexError::Truncated("a tag")),
            Some(b'/') => match self.end_tag_of(open) {
                Some(end_tag) => Ok(end_tag),
                None => self.end_tag(),
            },
            Some(b'!') => self.bang(),
            Some(b'?') => self.processing_instruction(),
            Some(_) => self.start_tag(),
        }
    }

    fn start_tag(&mut self) -> Result<Markup<'a>, LexError> {
        let Some(close) = self.tag_end(1) else {
            return Err(self.unclosed("a start tag", 1));
        };
        let empty = close > self.start + 1 && self.input.as_bytes()[close - 1] == b'/';
        let content_end = if empty { close - 1 } else { close };
        let text = self.take(1, content_end, close + 1);
        Ok(Markup::StartTag { text, empty })
    }

    /// The offset of the `>` that ends the construct starting `skip` bytes into the unread
    /// input, skipping `>` inside quoted values.
    fn tag_end(&self, skip: usize) -> Option<usize> {
        let bytes = self.input.as_bytes();
        let mut at = self.position + skip;
        loop {
            let found = at + memchr3(b'>', b'"', b'\'', &bytes[at..])?;
            match bytes[found] {
                b'>' => return Some(found),
                quote => at = found + 1 + memchr(quote, &bytes[found + 1..])? + 1,
            }
        }
    }

    /// The error for a construct with no end in the input: a `<` after its start can never
    /// be part of it (not even in a quoted value), so that is a syntax error; otherwise more
    /// input may end it.
    fn unclosed(&self, what: &'static str, skip: usize) -> LexError {
        match memchr(b'<', &self.rest()[skip..]) {
            Some(_) => LexError::Syntax(format!("{what} is not closed by '>'")),
            None => LexError::Truncated(what),
        }
    }

    /// `</open>` exactly, if that is what comes next.
    fn end_tag_of(&mut self, open: Option<&'a str>) -> Option<Markup<'a>> {
        let name = open?;
        let after_name = self.rest().get(2..)?.strip_prefix(name.as_bytes())?;
        if after_name.first() != Some(&b'>') {
            return None;
        }
        self.position += name.len() + "</>".len();
        Some(Markup::EndTag(name))
    }

    fn end_tag(&mut self) -> Result<Markup<'a>, LexError> {
        let Some(offset) = memchr(b'>', &self.rest()[2..]) else {
            return Err(self.unclosed("an end tag", 2));
        };
        let close = self.position + 2 + offset;
        let name = self
            .take(2, close, close + 1)
            .trim_end_matches([' ', '\t', '\n', '\r']);
        Ok(Markup::EndTag(name))
    }

    fn bang(&mut self) -> Result<Markup<'a>, LexError> {
        const COMMENT: &[u8] = b"<!--";
        const CDATA: &[u8] = b"<![CDATA[";
        const DOCTYPE: &[u8] = b"<!DOCTYPE";
        let rest = self.rest();
        if rest.starts_with(COMMENT) {
            self.comment(COMMENT.len())
        } else if rest.starts_with(CDATA) {
            self.cdata(CDATA.len())
        } else if rest.starts_with(DOCTYPE) {
            self.doctype(DOCTYPE.len())
        } else if [COMMENT, CDATA, DOCTYPE]
            .iter()
            .any(|k| k.starts_with(rest))
        {
            Err(LexError::Truncated("markup starting with '<!'"))
        } else if rest.len() >= DOCTYPE.len() && rest[..DOCTYPE.len()].eq_ignore_ascii_case(DOCTYPE)
        {
            Err(LexError::Syntax(
                "DOCTYPE must be written in upper case".into(),
            ))
        } else {
            Err(LexError::Syntax(
                "'<!' must start a comment, a CDATA section or a DOCTYPE".into(),
            ))
        }
    }

    fn comment(&mut self, skip: usize) -> Result<Markup<'a>, LexError> {
        let rest = self.rest();
        let Some(dashes) = find_delimiter(&rest[skip..], b"--").map(|at| skip + at) else {
            return Err(LexError::Truncated("a comment"));
        };
        match rest.get(dashes + 2) {
            Some(b'>') => {
                self.position += dashes + 3;
                Ok(Markup::Comment)
            }
            Some(_) => Err(LexError::Syntax(
                "'--' is not allowed inside a comment".into(),
            )),
            None => Err(LexError::Truncated("a comment")),
        }
    }

    fn cdata(&mut self, skip: usize) -> Result<Markup<'a>, LexError> {
        let Some(end) = find_delimiter(&self.rest()[skip..], b"]]>") else {
            return Err(LexError::Truncated("a CDATA section"));
        };
        let content_end = self.position + skip + end;
        Ok(Markup::CData(self.take(skip, content_end, content_end + 3)))
    }

    fn doctype(&mut self, skip: usize) -> Result<Markup<'a>, LexError> {
        let after_keyword = &self.rest()[skip..];
        let spaces = after_keyword
            .iter()
            .take_while(|&&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .count();
        if spaces == 0 && !after_keyword.is_empty() {
            return Err(LexError::Syntax(
                "white space is required after DOCTYPE".into(),
            ));
        }
        let Some(close) = self.tag_end(skip) else {
            return Err(match memchr(b'[', after_keyword) {
                Some(_) => LexError::Syntax(INTERNAL_SUBSET.into()),
                None => self.unclosed("a DOCTYPE", skip),
            });
        };
        Ok(Markup::DocType(self.take(skip + spaces, close, close + 1)))
    }

    fn processing_instruction(&mut self) -> Result<Markup<'a>, LexError> {
        let Some(end) = find_delimiter(&self.rest()[2..], b"?>") else {
            return Err(LexError::Truncated("a processing instruction"));
        };
        let content_end = self.position + 2 + end;
        let content = self.take(2, content_end, content_end + 2);
        let target_end = content
            .bytes()
            .position(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .unwrap_or(content.len());
        let (target, after_target) = content.split_at(target_end);
        Ok(match target {
            "xml" => Markup::Declaration(after_target),
            _ => Markup::ProcessingInstruction(target),
        })
    }
}

/// The offset of the first `delimiter` (a short closing sequence like `]]>`) in `haystack`.
///
/// A memchr for its first byte, then a compare: cheaper than building a `memmem` searcher for
/// the short sections a message is made of.
pub(super) fn find_delimiter(haystack: &[u8], delimiter: &[u8]) -> Option<usize> {
    let (&first, _) = delimiter.split_first()?;
    let mut from = 0;
    loop {
        let at = from + memchr(first, haystack.get(from..)?)?;
        if haystack[at..].starts_with(delimiter) {
            return Some(at);
        }
        from = at + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::{LexError, Lexer, Markup};

    fn pieces(input: &str) -> Result<Vec<Markup<'_>>, LexError> {
        let mut lexer = Lexer::new(input);
        let mut out = Vec::new();
        for _ in 0..=input.len() {
            match lexer.next(None)? {
                Markup::Eof => return Ok(out),
                piece => out.push(piece),
            }
        }
        panic!("the lexer did not reach the end of {input:?}");
    }

    #[test]
    fn splits_every_kind_of_markup() {
        let input = "<?xml version=\"1.0\"?><!DOCTYPE r SYSTEM \"a>b\"><!-- c --><?pi x?>\
                     <r a='>' b=\"/\">t&amp;<![CDATA[<x>]]><e/></r >";
        assert_eq!(
            pieces(input),
            Ok(vec![
                Markup::Declaration(" version=\"1.0\""),
                Markup::DocType("r SYSTEM \"a>b\""),
                Markup::Comment,
                Markup::ProcessingInstruction("pi"),
                Markup::StartTag {
                    text: "r a='>' b=\"/\"",
                    empty: false
                },
                Markup::Text("t"),
                Markup::Reference("amp"),
                Markup::CData("<x>"),
                Markup::StartTag {
                    text: "e",
                    empty: true
                },
                Markup::EndTag("r"),
            ])
        );
    }

    #[test]
    fn every_strict_prefix_is_truncated_not_wrong() {
        let input = "<!DOCTYPE r><!-- c --><?pi x?><r a='1'>t&#60;<![CDATA[x]]><e/></r>";
        for end in 1..input.len() {
            let mut lexer = Lexer::new(&input[..end]);
            let outcome = (0..=end).find_map(|_| match lexer.next(None) {
                Ok(Markup::Eof) => Some(Ok(())),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            });
            assert!(
                matches!(outcome, Some(Ok(()) | Err(LexError::Truncated(_)))),
                "prefix {:?} gave {outcome:?}",
                &input[..end]
            );
        }
    }

    #[test]
    fn hopeless_constructs_fail_before_their_end_arrives() {
        for input in [
            "<!-x",
            "<!doctype r>",
            "<!DOCTYPE r [<!ENTITY",
            "<!DOCTYPEr>",
            "<r <",
            "</r <",
            "<!-- a -- b -->",
            "& b;",
        ] {
            assert!(
                matches!(pieces(input), Err(LexError::Syntax(_))),
                "{input:?} gave {:?}",
                pieces(input)
            );
        }
    }
}

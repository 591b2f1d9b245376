//! XML 1.0 character classes and references: what may appear in a document, and what
//! `&...;` means.
//!
//! No DTD is processed, so only the five predefined entities and numeric character
//! references exist; any other entity reference is undeclared and so not well-formed.

use crate::protocol::Text;

/// Whether `c` is an XML 1.0 `Char` (tab, LF, CR, and everything from U+0020 except
/// surrogates, U+FFFE and U+FFFF).
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Whether every character of `text` can be carried by an XML 1.0 document.
///
/// The serializers replace any other character with U+FFFD (they cannot fail), so a caller
/// that must not lose data (e.g. the control plane accepting resource names) checks this
/// first and refuses such text.
pub fn is_representable(text: &str) -> bool {
    first_unrepresentable(text.as_bytes()).is_none()
}

/// The byte offset of the first character that XML 1.0 cannot carry.
///
/// Works on bytes known to be UTF-8: the only such characters are the C0 controls other
/// than tab/LF/CR (one byte) and U+FFFE/U+FFFF (`EF BF BE`, `EF BF BF`); surrogates cannot
/// occur in UTF-8.
pub(crate) fn first_unrepresentable(bytes: &[u8]) -> Option<usize> {
    const CHUNK: usize = 32;
    // Branch-free, so that the test of a whole chunk vectorizes.
    let is_control = |b: u8| (b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r');
    let chunk_has_control =
        |chunk: &[u8; CHUNK]| chunk.iter().fold(false, |hit, &b| hit | is_control(b));
    let chunks = bytes.chunks_exact(CHUNK);
    let tail_start = bytes.len() - chunks.remainder().len();
    let suspect = chunks
        .map(|chunk| <&[u8; CHUNK]>::try_from(chunk).is_ok_and(chunk_has_control))
        .position(|hit| hit)
        .map_or(tail_start, |index| index * CHUNK);
    let control = bytes[suspect..]
        .iter()
        .position(|&b| is_control(b))
        .map(|at| suspect + at);
    let limit = control.unwrap_or(bytes.len());
    let noncharacter = memchr::memchr_iter(0xEF, &bytes[..limit])
        .find(|&i| matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])));
    noncharacter.or(control)
}

/// Bit flags per byte value, so the hot loops test a byte with one load.
const SPACE: u8 = 1;
const ASCII_NAME_START: u8 = 2;
const ASCII_NAME_CHAR: u8 = 4;
/// A byte an attribute value cannot take literally: `<`, or one that needs decoding.
const ATTRIBUTE_SPECIAL: u8 = 8;

const BYTE_CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let name_start = c.is_ascii_alphabetic() || c == b'_' || c == b':';
        let mut class = 0;
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            class |= SPACE;
        }
        if name_start {
            class |= ASCII_NAME_START | ASCII_NAME_CHAR;
        }
        if c.is_ascii_digit() || c == b'-' || c == b'.' {
            class |= ASCII_NAME_CHAR;
        }
        if matches!(c, b'<' | b'&' | b'\t' | b'\n' | b'\r') {
            class |= ATTRIBUTE_SPECIAL;
        }
        classes[b] = class;
        b += 1;
    }
    classes
};

/// XML white space (`S`): space, tab, LF, CR.
pub(crate) fn is_space(b: u8) -> bool {
    BYTE_CLASSES[usize::from(b)] & SPACE != 0
}

/// Whether an attribute value byte is `<`, `&`, tab, LF or CR: anything but plain text.
pub(crate) fn is_attribute_special(b: u8) -> bool {
    BYTE_CLASSES[usize::from(b)] & ATTRIBUTE_SPECIAL != 0
}

/// Whether `text` is entirely XML white space (possibly empty).
pub(crate) fn is_all_space(text: &str) -> bool {
    text.bytes().all(is_space)
}

/// Whether `name` is an XML `Name`.
pub(crate) fn is_name(name: &str) -> bool {
    let class = |b: u8| BYTE_CLASSES[usize::from(b)];
    if let Some((&first, rest)) = name.as_bytes().split_first()
        && class(first) & ASCII_NAME_START != 0
        && rest.iter().all(|&b| class(b) & ASCII_NAME_CHAR != 0)
    {
        return true;
    }
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if is_name_start(first) => chars.all(is_name_char),
        _ => false,
    }
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Resolves the body of a reference (`amp`, `#60`, `#x3C`, the text between `&` and `;`).
///
/// Returns a reason when the reference names an undeclared entity or a character XML cannot
/// carry.
pub(crate) fn resolve_reference(body: &str) -> Result<char, String> {
    let predefined = match body {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    };
    if let Some(c) = predefined {
        return Ok(c);
    }
    let Some(number) = body.strip_prefix('#') else {
        return Err(format!(
            "entity reference &{body}; is not one of the five predefined entities \
             (no DTD entities are supported)"
        ));
    };
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    let valid_digits = !digits.is_empty() && digits.bytes().all(|b| (b as char).is_digit(radix));
    let code = if valid_digits {
        u32::from_str_radix(digits, radix).ok()
    } else {
        None
    };
    match code.and_then(char::from_u32) {
        Some(c) if is_xml_char(c) => Ok(c),
        _ => Err(format!(
            "character reference &{body}; does not name a valid XML character"
        )),
    }
}

/// Splits `text` at its first reference: `(before, reference body, after)`.
///
/// `None` when there is no `&`; `Err` when an `&` is not closed by `;`.
pub(crate) fn split_reference(text: &str) -> Option<Result<(&str, &str, &str), String>> {
    let amp = memchr::memchr(b'&', text.as_bytes())?;
    let rest = &text[amp + 1..];
    Some(match memchr::memchr(b';', rest.as_bytes()) {
        Some(semi) => Ok((&text[..amp], &rest[..semi], &rest[semi + 1..])),
        None => {
            Err("'&' is not the start of a reference ending in ';' (escape it as &amp;)".into())
        }
    })
}

/// Appends character data to `out`, applying XML end-of-line handling (`\r\n` and a lone
/// `\r` both become `\n`).
pub(crate) fn push_normalized_newlines(out: &mut Text, text: &str) {
    // Short texts are the rule: a plain scan beats memchr's set-up for them.
    if !text.as_bytes().contains(&b'\r') {
        out.push_str(text);
        return;
    }
    let mut rest = text;
    while let Some(cr) = memchr::memchr(b'\r', rest.as_bytes()) {
        out.push_str(&rest[..cr]);
        out.push('\n');
        rest = &rest[cr + 1..];
        if let Some(after_lf) = rest.strip_prefix('\n') {
            rest = after_lf;
        }
    }
    out.push_str(rest);
}

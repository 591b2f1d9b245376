//! Serialization helpers: the exact bytes every CRNP message is written with.
//!
//! Output is UTF-8 with an XML declaration, no DOCTYPE and no white space between elements
//! (the sample Java client casts every child node to `Element`). Text goes in CDATA sections,
//! attribute values are escaped. Characters XML 1.0 cannot carry (C0 controls other than
//! tab/LF/CR, U+FFFE, U+FFFF) are written as U+FFFD so the output is always well-formed; use
//! [`super::is_representable`] to refuse such text before it gets here.

/// The XML declaration and the line break before the root, as in the spec's vectors.
pub(crate) const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Bytes a CDATA element adds around its text: `<T><![CDATA[` + `]]></T>`.
pub(crate) fn cdata_element_overhead(tag: &str) -> usize {
    2 * tag.len() + "<><![CDATA[]]></>".len()
}

/// Bytes ` NAME=""` adds around an attribute value.
pub(crate) fn attribute_overhead(name: &str) -> usize {
    name.len() + " =\"\"".len()
}

/// Appends ` name="value"`, escaping the value so any parser reads it back unchanged
/// (including tab, LF and CR, which attribute-value normalization would otherwise turn into
/// spaces).
pub(crate) fn attribute(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    escape_into(out, value.as_bytes(), |bytes, i| match bytes[i] {
        b'&' => Some((0, b"&amp;", 1)),
        b'<' => Some((0, b"&lt;", 1)),
        b'>' => Some((0, b"&gt;", 1)),
        b'"' => Some((0, b"&quot;", 1)),
        b'\t' => Some((0, b"&#9;", 1)),
        b'\n' => Some((0, b"&#10;", 1)),
        b'\r' => Some((0, b"&#13;", 1)),
        _ => unrepresentable(bytes, i),
    });
    out.push(b'"');
}

/// Appends `<tag><![CDATA[text]]></tag>`.
///
/// `]]>` inside the text is split across two CDATA sections (`]]]]><![CDATA[>`); a CR is
/// written as `&#13;` between sections, since a parser turns a literal CR into LF.
pub(crate) fn cdata_element(out: &mut Vec<u8>, tag: &str, text: &str) {
    out.push(b'<');
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(b"><![CDATA[");
    escape_into(out, text.as_bytes(), |bytes, i| match bytes[i] {
        b']' if bytes[i..].starts_with(b"]]>") => Some((2, b"]]><![CDATA[", 2)),
        b'\r' => Some((0, b"]]>&#13;<![CDATA[", 1)),
        b'\t' | b'\n' => None,
        _ => unrepresentable(bytes, i),
    });
    out.extend_from_slice(b"]]></");
    out.extend_from_slice(tag.as_bytes());
    out.push(b'>');
}

/// What to do at `bytes[i]`: `None` to copy it, or `(keep, replacement, skip)`: copy `keep`
/// bytes from `i`, write `replacement`, resume at `i + skip`.
type Action = Option<(usize, &'static [u8], usize)>;

/// Copies `bytes` to `out`, applying `rule` at every byte that may need it: ASCII controls
/// and the bytes in `SPECIAL` (`&<>"]` and the lead byte of U+FFFE/U+FFFF). Everything else
/// is copied in bulk.
fn escape_into(out: &mut Vec<u8>, bytes: &[u8], rule: impl Fn(&[u8], usize) -> Action) {
    const fn special_table() -> [bool; 256] {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 0x20 {
            table[b] = true;
            b += 1;
        }
        let specials = b"&<>\"]\xEF";
        let mut i = 0;
        while i < specials.len() {
            table[specials[i] as usize] = true;
            i += 1;
        }
        table
    }
    const SPECIAL: [bool; 256] = special_table();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !SPECIAL[bytes[i] as usize] {
            i += 1;
            continue;
        }
        match rule(bytes, i) {
            None => i += 1,
            Some((keep, replacement, skip)) => {
                out.extend_from_slice(&bytes[start..i + keep]);
                out.extend_from_slice(replacement);
                i += skip;
                start = i;
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Replaces a character XML 1.0 cannot carry with U+FFFD: C0 controls other than tab/LF/CR
/// (one byte) and U+FFFE/U+FFFF (`EF BF BE`/`EF BF BF`).
fn unrepresentable(bytes: &[u8], i: usize) -> Action {
    const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
    match bytes[i] {
        0x00..=0x1F => Some((0, REPLACEMENT, 1)),
        0xEF if matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])) => {
            Some((0, REPLACEMENT, 3))
        }
        _ => None,
    }
}

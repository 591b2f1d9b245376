//! `NVPAIR`: the name/value element shared by registrations and events.

use super::Text;
use super::error::ProtocolError;
use super::xml::{Reader, write};

/// One `NVPAIR`: a name and one value (scalar) or several (string array), in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NvPair {
    /// The `NAME` text, e.g. `rg_name`.
    pub name: Text,
    /// The `VALUE` texts; never empty in a valid message.
    pub values: Vec<Text>,
}

impl NvPair {
    /// A scalar pair: one name, one value.
    pub fn scalar(name: impl Into<Text>, value: impl Into<Text>) -> Self {
        Self {
            name: name.into(),
            values: vec![value.into()],
        }
    }

    /// A string-array pair, e.g. `node_list`. `values` should not be empty: a pair without
    /// a `VALUE` is INVALID on the wire.
    pub fn array<V: Into<Text>>(
        name: impl Into<Text>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        Self {
            name: name.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// The value of a scalar pair; `None` for an array of several values.
    pub fn scalar_value(&self) -> Option<&str> {
        match self.values.as_slice() {
            [value] => Some(value),
            _ => None,
        }
    }

    /// Reads the content of `parent`, an element that may contain only `NVPAIR`s, up to its
    /// end tag.
    pub(crate) fn parse_list(
        reader: &mut Reader<'_>,
        parent: &str,
    ) -> Result<Vec<Self>, ProtocolError> {
        let mut nvpairs = Vec::new();
        while let Some(child) = reader.next_child(parent)? {
            if child != "NVPAIR" {
                return Err(ProtocolError::invalid(format!(
                    "<{parent}> may contain only <NVPAIR>, found {}",
                    super::error::excerpt(child)
                )));
            }
            nvpairs.push(Self::parse(reader)?);
        }
        Ok(nvpairs)
    }

    /// Reads an `NVPAIR` whose start tag `element` was just returned: `(NAME, VALUE+)`,
    /// no attributes.
    pub(crate) fn parse(reader: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        reader.expect_no_attributes("NVPAIR")?;
        let name = match reader.next_child("NVPAIR")? {
            Some(child) if child == "NAME" => {
                reader.expect_no_attributes(child)?;
                reader.text_content("NAME")?
            }
            Some(child) => return Err(misplaced(child)),
            None => return Err(ProtocolError::invalid("<NVPAIR> has no <NAME>")),
        };
        let mut values = Vec::with_capacity(1);
        while let Some(child) = reader.next_child("NVPAIR")? {
            if child != "VALUE" {
                return Err(misplaced(child));
            }
            reader.expect_no_attributes(child)?;
            values.push(reader.text_content("VALUE")?);
        }
        if values.is_empty() {
            return Err(ProtocolError::invalid(format!(
                "<NVPAIR> {} has no <VALUE>",
                super::error::excerpt(&name)
            )));
        }
        Ok(Self { name, values })
    }

    /// Bytes [`Self::write`] appends when nothing needs escaping (a capacity hint).
    pub(crate) fn xml_len(&self) -> usize {
        let values: usize = self
            .values
            .iter()
            .map(|v| v.len() + write::cdata_element_overhead("VALUE"))
            .sum();
        "<NVPAIR></NVPAIR>".len() + self.name.len() + write::cdata_element_overhead("NAME") + values
    }

    /// Appends `<NVPAIR><NAME>..</NAME><VALUE>..</VALUE>..</NVPAIR>`, texts in CDATA.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<NVPAIR>");
        write::cdata_element(out, "NAME", &self.name);
        for value in &self.values {
            write::cdata_element(out, "VALUE", value);
        }
        out.extend_from_slice(b"</NVPAIR>");
    }
}

fn misplaced(name: &str) -> ProtocolError {
    ProtocolError::invalid(format!(
        "<NVPAIR> must contain one <NAME> then one or more <VALUE>, found {}",
        super::error::excerpt(name)
    ))
}

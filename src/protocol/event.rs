//! `SC_EVENT`: one cluster event, delivered on its own connection.

use super::error::ProtocolError;
use super::version::{self, VERSION};
use super::xml::{self, Limits, RawAttribute, Reader, unknown_attribute, write};
use super::{NvPair, Text};

/// A parsed or to-be-sent `SC_EVENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `CLASS`, e.g. `EC_Cluster`.
    pub class: Text,
    /// `SUBCLASS`, e.g. `ESC_cluster_rg_state`.
    pub subclass: Text,
    /// `VENDOR`, `SUNW` for cluster events.
    pub vendor: Text,
    /// `PUBLISHER`, `rgm` for cluster events.
    pub publisher: Text,
    /// The event's pairs, in order.
    pub nvpairs: Vec<NvPair>,
}

impl Event {
    /// A cluster event as CRNP delivers them: class `EC_Cluster`, vendor `SUNW`, publisher
    /// `rgm`.
    pub fn cluster(subclass: impl Into<Text>, nvpairs: Vec<NvPair>) -> Self {
        Self {
            class: "EC_Cluster".into(),
            subclass: subclass.into(),
            vendor: "SUNW".into(),
            publisher: "rgm".into(),
            nvpairs,
        }
    }

    /// The first pair called `name` (e.g. `rg_name`), if any.
    pub fn value(&self, name: &str) -> Option<&NvPair> {
        self.nvpairs.iter().find(|pair| pair.name == name)
    }

    /// The document to send, compact (no white space between elements, which the sample Java
    /// client requires): declaration, then
    /// `<SC_EVENT VERSION="1.0" CLASS=".." SUBCLASS=".." VENDOR=".." PUBLISHER="..">` and
    /// the pairs; `<SC_EVENT .../>` when there are none.
    ///
    /// One pass into a vector sized up front. Characters XML cannot carry are written as
    /// U+FFFD (see [`super::is_representable`]).
    pub fn to_xml(&self) -> Vec<u8> {
        let attributes = [
            ("VERSION", VERSION),
            ("CLASS", self.class.as_str()),
            ("SUBCLASS", self.subclass.as_str()),
            ("VENDOR", self.vendor.as_str()),
            ("PUBLISHER", self.publisher.as_str()),
        ];
        let tags = if self.nvpairs.is_empty() {
            "<SC_EVENT/>"
        } else {
            "<SC_EVENT></SC_EVENT>"
        };
        let capacity = write::DECLARATION.len()
            + tags.len()
            + attributes
                .iter()
                .map(|(n, v)| write::attribute_overhead(n) + v.len())
                .sum::<usize>()
            + self.nvpairs.iter().map(NvPair::xml_len).sum::<usize>();
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(write::DECLARATION.as_bytes());
        out.extend_from_slice(b"<SC_EVENT");
        for (name, value) in attributes {
            write::attribute(&mut out, name, value);
        }
        if self.nvpairs.is_empty() {
            out.extend_from_slice(b"/>");
            return out;
        }
        out.push(b'>');
        for pair in &self.nvpairs {
            pair.write(&mut out);
        }
        out.extend_from_slice(b"</SC_EVENT>");
        out
    }

    /// Parses and validates an `SC_EVENT` (the client side of a delivery).
    ///
    /// `CLASS`, `SUBCLASS`, `VENDOR` and `PUBLISHER` are required (`#REQUIRED` in the DTD);
    /// content is `NVPAIR*`.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Event, ProtocolError> {
        xml::parse_document(bytes, limits, "SC_EVENT", parse_root)
    }
}

fn parse_root(reader: &mut Reader<'_>) -> Result<Event, ProtocolError> {
    let mut found: [Option<RawAttribute<'_>>; 5] = [None; 5];
    let mut unknown = None;
    for &attribute in reader.attributes() {
        let slot = match attribute.name {
            "VERSION" => 0,
            "CLASS" => 1,
            "SUBCLASS" => 2,
            "VENDOR" => 3,
            "PUBLISHER" => 4,
            _ => {
                unknown = unknown.or(Some(attribute));
                continue;
            }
        };
        found[slot] = Some(attribute);
    }
    let [version, class, subclass, vendor, publisher] = found;
    version::check(version)?;
    if let Some(attribute) = unknown {
        return Err(unknown_attribute("SC_EVENT", attribute));
    }
    let required = |attribute: Option<RawAttribute<'_>>, name: &str| {
        attribute
            .map(|a| a.value())
            .ok_or_else(|| ProtocolError::invalid(format!("<SC_EVENT> has no {name}")))
    };
    let class = required(class, "CLASS")?;
    let subclass = required(subclass, "SUBCLASS")?;
    let vendor = required(vendor, "VENDOR")?;
    let publisher = required(publisher, "PUBLISHER")?;
    let nvpairs = NvPair::parse_list(reader, "SC_EVENT")?;
    Ok(Event {
        class,
        subclass,
        vendor,
        publisher,
        nvpairs,
    })
}

//! `SC_CALLBACK_REG`: a client's registration message.

use super::error::{ProtocolError, excerpt};
use super::version::{self, VERSION};
use super::xml::{self, Checkpoint, Limits, Reader, unknown_attribute, write};
use super::{Arrival, NvPair, Text};

/// The four registration forms (`REG_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegType {
    /// Register the client, with its initial event list (replaces an existing registration).
    AddClient,
    /// Add event types to a registered client.
    AddEvents,
    /// Unregister the client.
    RemoveClient,
    /// Remove event types from a registered client.
    RemoveEvents,
}

impl RegType {
    /// Every form, in the DTD's order.
    pub const ALL: [RegType; 4] = [
        Self::AddClient,
        Self::AddEvents,
        Self::RemoveClient,
        Self::RemoveEvents,
    ];

    /// The wire spelling: `ADD_CLIENT`, `ADD_EVENTS`, `REMOVE_CLIENT`, `REMOVE_EVENTS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AddClient => "ADD_CLIENT",
            Self::AddEvents => "ADD_EVENTS",
            Self::RemoveClient => "REMOVE_CLIENT",
            Self::RemoveEvents => "REMOVE_EVENTS",
        }
    }

    /// Reads a wire spelling (case-sensitive).
    pub fn from_wire(s: &str) -> Option<RegType> {
        Self::ALL
            .into_iter()
            .find(|reg_type| reg_type.as_str() == s)
    }
}

/// The class of every event CRNP delivers.
pub const EC_CLUSTER: &str = "EC_Cluster";
/// Subclass of membership changes.
pub const ESC_CLUSTER_MEMBERSHIP: &str = "ESC_cluster_membership";
/// Subclass of resource-group state changes; registrations name the group in `rg_name`.
pub const ESC_CLUSTER_RG_STATE: &str = "ESC_cluster_rg_state";
/// Subclass of resource state changes; registrations name the resource in `r_name`.
pub const ESC_CLUSTER_R_STATE: &str = "ESC_cluster_r_state";

/// One registered event type (`SC_EVENT_REG`): class, optional subclass, narrowing pairs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType {
    /// `CLASS`, e.g. `EC_Cluster`.
    pub class: Text,
    /// `SUBCLASS`; `None` registers for every subclass of the class.
    pub subclass: Option<Text>,
    /// Pairs an event must carry with equal values to match.
    pub nvpairs: Vec<NvPair>,
}

impl EventType {
    /// Any event type.
    pub fn new(class: impl Into<Text>, subclass: Option<&str>, nvpairs: Vec<NvPair>) -> Self {
        Self {
            class: class.into(),
            subclass: subclass.map(Text::from),
            nvpairs,
        }
    }

    /// All cluster membership changes (`EC_Cluster`/`ESC_cluster_membership`).
    pub fn membership() -> Self {
        Self::new(EC_CLUSTER, Some(ESC_CLUSTER_MEMBERSHIP), Vec::new())
    }

    /// State changes of resource group `rg_name`.
    pub fn rg_state(rg_name: impl Into<Text>) -> Self {
        Self::new(
            EC_CLUSTER,
            Some(ESC_CLUSTER_RG_STATE),
            vec![NvPair::scalar("rg_name", rg_name)],
        )
    }

    /// State changes of resource `r_name`.
    pub fn r_state(r_name: impl Into<Text>) -> Self {
        Self::new(
            EC_CLUSTER,
            Some(ESC_CLUSTER_R_STATE),
            vec![NvPair::scalar("r_name", r_name)],
        )
    }

    /// Every event of `class` (no SUBCLASS): `class_only("EC_Cluster")` is "all events".
    pub fn class_only(class: impl Into<Text>) -> Self {
        Self::new(class, None, Vec::new())
    }

    /// Enforces the spec's table of registrable types: an `EC_Cluster` rg-state (r-state)
    /// registration carries exactly one `rg_name` (`r_name`) pair. Other pairs may narrow it
    /// further; unknown classes and subclasses are accepted (they simply never match). An
    /// empty CLASS or SUBCLASS is refused: no event can be published with one.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if self.class.is_empty() {
            return Err(ProtocolError::invalid(
                "<SC_EVENT_REG> has an empty CLASS, which no event can have",
            ));
        }
        if self.subclass.as_ref().is_some_and(|s| s.is_empty()) {
            return Err(ProtocolError::invalid(
                "<SC_EVENT_REG> has an empty SUBCLASS, which no event can have; leave SUBCLASS out to register for the whole class",
            ));
        }
        let required = match (self.class.as_str(), self.subclass.as_deref()) {
            (EC_CLUSTER, Some(ESC_CLUSTER_RG_STATE)) => "rg_name",
            (EC_CLUSTER, Some(ESC_CLUSTER_R_STATE)) => "r_name",
            _ => return Ok(()),
        };
        let count = self
            .nvpairs
            .iter()
            .filter(|pair| pair.name == required)
            .count();
        if count == 1 {
            return Ok(());
        }
        Err(ProtocolError::invalid(format!(
            "an {} registration needs exactly one {required} NVPAIR, found {count}",
            self.subclass.as_deref().unwrap_or_default()
        )))
    }

    fn xml_len(&self) -> usize {
        let tags = if self.nvpairs.is_empty() {
            "<SC_EVENT_REG/>"
        } else {
            "<SC_EVENT_REG></SC_EVENT_REG>"
        };
        tags.len()
            + write::attribute_overhead("CLASS")
            + self.class.len()
            + self
                .subclass
                .as_ref()
                .map_or(0, |s| write::attribute_overhead("SUBCLASS") + s.len())
            + self.nvpairs.iter().map(NvPair::xml_len).sum::<usize>()
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<SC_EVENT_REG");
        write::attribute(out, "CLASS", &self.class);
        if let Some(subclass) = &self.subclass {
            write::attribute(out, "SUBCLASS", subclass);
        }
        if self.nvpairs.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        for pair in &self.nvpairs {
            pair.write(out);
        }
        out.extend_from_slice(b"</SC_EVENT_REG>");
    }

    /// Reads an `SC_EVENT_REG` whose start tag `element` was just returned: `CLASS`
    /// required, `SUBCLASS` optional, content `NVPAIR*`. Structure only; see [`Self::validate`].
    fn parse(reader: &mut Reader<'_>) -> Result<Self, ProtocolError> {
        let (mut class, mut subclass) = (None, None);
        for &attribute in reader.attributes() {
            match attribute.name {
                "CLASS" => class = Some(attribute.value()),
                "SUBCLASS" => subclass = Some(attribute.value()),
                _ => return Err(unknown_attribute("SC_EVENT_REG", attribute)),
            }
        }
        let class = class.ok_or_else(|| ProtocolError::invalid("<SC_EVENT_REG> has no CLASS"))?;
        let nvpairs = NvPair::parse_list(reader, "SC_EVENT_REG")?;
        Ok(Self {
            class,
            subclass,
            nvpairs,
        })
    }
}

/// A parsed and validated `SC_CALLBACK_REG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackReg {
    /// The client's callback port (`PORT`), 1..=65535.
    pub port: u16,
    /// What the message asks for (`REG_TYPE`).
    pub reg_type: RegType,
    /// The event list (`SC_EVENT_REG` children); empty for `REMOVE_CLIENT`.
    pub events: Vec<EventType>,
}

impl CallbackReg {
    /// Parses and validates a registration, judging the whole buffer (bytes after the root
    /// element other than white space, comments and PIs are MALFORMED).
    ///
    /// Check order (spec §4.6): well-formedness (MALFORMED) → root name → VERSION → the rest
    /// (INVALID): REG_TYPE, PORT, unknown attributes or elements, SC_EVENT_REG structure, and
    /// the required `rg_name`/`r_name` pairs. In a `REMOVE_CLIENT` the event list is checked
    /// for structure only and then dropped (spec §9.9). A `PORT` is decimal digits only with a
    /// value in 1..=65535 (leading zeros allowed).
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<CallbackReg, ProtocolError> {
        xml::parse_document(bytes, limits, "SC_CALLBACK_REG", parse_root)
    }

    /// [`Self::parse`] on the bytes of a connection received so far, in one pass:
    /// [`Arrival::Incomplete`] while the root element is open and nothing is wrong yet (read
    /// more), otherwise the outcome [`Self::parse`] gives for the same bytes. MALFORMED input
    /// is reported as soon as it is seen.
    ///
    /// Each call parses `bytes` from the start; a connection handler reading a message in
    /// several pieces uses [`super::ArrivingRegistration`], which never reads a byte twice
    /// while the message is incomplete.
    pub fn parse_arrived(bytes: &[u8], limits: &Limits) -> Arrival<CallbackReg> {
        Self::parse_arrived_resumable(bytes, limits).0
    }

    /// [`Self::parse_arrived`], and where to resume scanning when it is incomplete.
    pub(crate) fn parse_arrived_resumable(
        bytes: &[u8],
        limits: &Limits,
    ) -> (Arrival<CallbackReg>, Option<Checkpoint>) {
        xml::parse_arrived_document(bytes, limits, "SC_CALLBACK_REG", parse_root)
    }

    /// The document a client sends: declaration, then
    /// `<SC_CALLBACK_REG VERSION="1.0" PORT=".." REG_TYPE="..">` and the event list, compact;
    /// self-closing when the list is empty. A `REMOVE_CLIENT` is always written without events
    /// (a server ignores them).
    pub fn to_xml(&self) -> Vec<u8> {
        let events = match self.reg_type {
            RegType::RemoveClient => &[][..],
            _ => &self.events[..],
        };
        let port = self.port.to_string();
        let tags = if events.is_empty() {
            "<SC_CALLBACK_REG/>"
        } else {
            "<SC_CALLBACK_REG></SC_CALLBACK_REG>"
        };
        let capacity = write::DECLARATION.len()
            + tags.len()
            + write::attribute_overhead("VERSION")
            + VERSION.len()
            + write::attribute_overhead("PORT")
            + port.len()
            + write::attribute_overhead("REG_TYPE")
            + self.reg_type.as_str().len()
            + events.iter().map(EventType::xml_len).sum::<usize>();
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(write::DECLARATION.as_bytes());
        out.extend_from_slice(b"<SC_CALLBACK_REG");
        write::attribute(&mut out, "VERSION", VERSION);
        write::attribute(&mut out, "PORT", &port);
        write::attribute(&mut out, "REG_TYPE", self.reg_type.as_str());
        if events.is_empty() {
            out.extend_from_slice(b"/>");
            return out;
        }
        out.push(b'>');
        for event in events {
            event.write(&mut out);
        }
        out.extend_from_slice(b"</SC_CALLBACK_REG>");
        out
    }
}

fn parse_root(reader: &mut Reader<'_>) -> Result<CallbackReg, ProtocolError> {
    let (mut version, mut port, mut reg_type, mut unknown) = (None, None, None, None);
    for &attribute in reader.attributes() {
        match attribute.name {
            "VERSION" => version = Some(attribute),
            "PORT" => port = Some(attribute),
            "REG_TYPE" => reg_type = Some(attribute),
            _ => unknown = unknown.or(Some(attribute)),
        }
    }
    version::check(version)?;
    let reg_type =
        reg_type.ok_or_else(|| ProtocolError::invalid("<SC_CALLBACK_REG> has no REG_TYPE"))?;
    let reg_type_text = reg_type.value();
    let reg_type = RegType::from_wire(&reg_type_text).ok_or_else(|| {
        ProtocolError::invalid(format!(
            "unknown REG_TYPE {}: expected ADD_CLIENT, ADD_EVENTS, REMOVE_CLIENT or REMOVE_EVENTS",
            excerpt(&reg_type_text)
        ))
    })?;
    let port = port.ok_or_else(|| ProtocolError::invalid("<SC_CALLBACK_REG> has no PORT"))?;
    let port = parse_port(&port.value())?;
    if let Some(attribute) = unknown {
        return Err(unknown_attribute("SC_CALLBACK_REG", attribute));
    }
    let mut events = Vec::new();
    while let Some(child) = reader.next_child("SC_CALLBACK_REG")? {
        if child != "SC_EVENT_REG" {
            return Err(ProtocolError::invalid(format!(
                "<SC_CALLBACK_REG> may contain only <SC_EVENT_REG>, found {}",
                excerpt(child)
            )));
        }
        let event = EventType::parse(reader)?;
        if reg_type != RegType::RemoveClient {
            event.validate()?;
            events.push(event);
        }
    }
    Ok(CallbackReg {
        port,
        reg_type,
        events,
    })
}

/// `PORT`: decimal digits only (no sign, no white space), value 1..=65535.
fn parse_port(text: &str) -> Result<u16, ProtocolError> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let value = text.trim_start_matches('0');
    let port = if digits_only && value.len() <= 5 {
        value.parse::<u32>().ok()
    } else {
        None
    };
    match port.and_then(|p| u16::try_from(p).ok()) {
        Some(port) if port != 0 => Ok(port),
        _ => Err(ProtocolError::invalid(format!(
            "PORT {} is not a decimal port number in 1..=65535",
            excerpt(text)
        ))),
    }
}

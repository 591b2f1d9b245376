//! The CRNP wire format: parse, validate and serialize the three message types.
//!
//! Pure functions over bytes: no sockets, no clocks, no runtime. The server side parses
//! [`CallbackReg`] and builds [`Reply`] and [`Event`]; the client side (the bundled tools)
//! does the reverse, so every message type can be both built and parsed here.
//!
//! - [`CallbackReg::parse_arrived`] parses a registration while it arrives: it tells a
//!   connection handler to read more, or gives the outcome, in one pass per read.
//! - `parse` functions take the whole buffer and [`Limits`], and return a [`ProtocolError`]
//!   whose status is the `SC_REPLY` code to answer with (MALFORMED, INVALID,
//!   VERSION_TOO_HIGH, VERSION_TOO_LOW), checked in the spec's order.
//! - `to_xml` functions write compact UTF-8 documents byte-identical to the spec's vectors;
//!   `parse(to_xml(m)) == m` for every message whose text [`is_representable`].
//!
//! # Choices where the spec leaves room
//!
//! - A DOCTYPE with an internal subset (`[...]`, where entities are declared) is MALFORMED:
//!   a parser that processes no DTD cannot read such a document. A bare DOCTYPE naming the
//!   root and an external DTD is accepted and ignored; nothing is ever fetched or expanded
//!   beyond the five predefined entities and character references.
//! - Exceeding a [`Limits`] bound is MALFORMED (the reader stops without finishing the
//!   well-formedness check).
//! - Only UTF-8 is read. A declaration naming US-ASCII, ASCII, ISO-8859-1 or LATIN1 is
//!   accepted when the document is pure ASCII (it decodes identically); any other encoding
//!   is MALFORMED. A `version="1.x"` declaration is read with XML 1.0 rules.
//! - Attributes the DTDs do not declare are INVALID, like undeclared elements.
//! - `VERSION` is compared numerically as `major[.minor]` (`1`, `1.0`, `01.00` are equal);
//!   white space or signs around it make it unparsable, hence INVALID.
//! - `PORT` is decimal digits only (leading zeros allowed) with a value in 1..=65535.
//! - An `EC_Cluster` `ESC_cluster_rg_state` (`ESC_cluster_r_state`) registration needs exactly
//!   one `rg_name` (`r_name`) pair; further pairs are allowed (they narrow the match).
//! - The event list of a `REMOVE_CLIENT` is checked for DTD structure, then dropped
//!   (`rg_name`/`r_name` rules are not applied to it); [`CallbackReg::to_xml`] never writes one.
//! - On output, a CR in text is written as `&#13;` between CDATA sections (a literal CR would
//!   be read back as LF), and characters XML 1.0 cannot carry become U+FFFD, so the output is
//!   always well-formed; callers that must not alter text check [`is_representable`] first.

mod callback_reg;
mod error;
mod event;
mod framing;
mod nvpair;
mod reply;
mod version;
mod xml;

pub use callback_reg::{
    CallbackReg, EC_CLUSTER, ESC_CLUSTER_MEMBERSHIP, ESC_CLUSTER_R_STATE, ESC_CLUSTER_RG_STATE,
    EventType, RegType,
};
pub use error::ProtocolError;
pub use event::Event;
pub use framing::{Arrival, ArrivingRegistration};
pub use nvpair::NvPair;
pub use reply::{Reply, StatusCode};
pub use xml::{Limits, is_representable};

/// Protocol text: class and subclass names, pair names and values. Stored inline up to 24
/// bytes (nearly every CRNP string), so a parsed message allocates only for its lists.
pub type Text = compact_str::CompactString;

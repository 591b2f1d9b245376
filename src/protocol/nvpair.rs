//! `NVPAIR`: the name/value element shared by registrations and events.

/// One `NVPAIR`: a name and one value (scalar) or several (string array), in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NvPair {
    /// The `NAME` text, e.g. `rg_name`.
    pub name: String,
    /// The `VALUE` texts; never empty in a valid message.
    pub values: Vec<String>,
}

impl NvPair {
    /// A scalar pair: one name, one value.
    pub fn scalar(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), values: vec![value.into()] }
    }
}

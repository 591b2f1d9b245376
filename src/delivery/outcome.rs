//! What became of one delivery attempt, as typed values: the engine classifies what the kernel
//! said, the queue decides on it, and metric labels and log words are derived here, once.

use std::fmt;

use crate::labels::labelled;

labelled! {
    /// Why an attempt failed on the client's side of the connection; counted against the
    /// client (`crnp_delivery_failures_total{cause}`), retried, and after the last attempt the
    /// client is removed.
    pub enum FailureCause {
        /// Nobody listens at the callback address.
        Refused => "refused",
        /// The attempt did not finish within `--client-timeout`.
        Timeout => "timeout",
        /// The client reset the connection.
        Reset => "reset",
        /// Anything else the network said.
        Other => "other",
    }
}

labelled! {
    /// A resource of crnpd's own that ran out during an attempt. Never the client's fault: the
    /// attempt is not counted against it and is tried again after a back-off
    /// (`crnp_local_shortages_total{resource}`).
    pub enum Shortage {
        /// The process or the system is out of file descriptors (EMFILE, ENFILE).
        Descriptors => "descriptors",
        /// The kernel could not allocate memory (ENOMEM).
        Memory => "memory",
        /// The kernel is out of socket buffers (ENOBUFS).
        Buffers => "buffers",
        /// No local port or 4-tuple toward the client is free (EADDRNOTAVAIL, EADDRINUSE): the
        /// client's one fixed-port 4-tuple is still held, in TIME_WAIT (a client host without
        /// TCP timestamps) or by a connection an earlier crnpd process left, or, with ephemeral
        /// ports, the ports toward it are used up. The ports are crnpd's; the client is fine.
        Ports => "ports",
    }
}

/// How an attempt that did not deliver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptError {
    /// The client's side failed: counts as one of its attempts.
    Failed(FailureCause),
    /// crnpd ran short of its own resources: the attempt does not count.
    Shortage(Shortage),
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Failed(cause) => write!(f, "{cause}"),
            AttemptError::Shortage(shortage) => write!(f, "local shortage of {shortage}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_in_series_order() {
        let causes: Vec<&str> = FailureCause::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(causes, ["refused", "timeout", "reset", "other"]);
        let shortages: Vec<&str> = Shortage::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(shortages, ["descriptors", "memory", "buffers", "ports"]);
    }
}

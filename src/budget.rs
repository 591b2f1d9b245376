//! The process's file descriptors, divided up front between the parts that use them, so that
//! no part can starve another: HTTP connections, registration connections, and deliveries in
//! flight each get a fixed share, and a core never opens more delivery sockets than its share.
//!
//! At start-up the soft `RLIMIT_NOFILE` is raised to the hard limit (both are logged); the
//! shares come from what that leaves after a fixed reserve for the process itself.

use std::io;

/// Descriptors kept for the process itself: the store, stdio, the HTTP listener, the
/// metrics scrape's `/proc` reads, and the HTTP 503 answers being written
/// ([`crate::control::serve::HTTP_REFUSALS`]).
pub const RESERVED: u64 = 64;
/// Descriptors kept per core beyond [`RESERVED`]: its ring, its listener, its timers, and the
/// registration refusals it may be writing at once.
pub const RESERVED_PER_CORE: u64 = 8 + REFUSALS_PER_CORE as u64;
/// Registration connections a core may be turning away with LOW_RESOURCE at once; past it a
/// connection over the limit is closed without a reply.
pub const REFUSALS_PER_CORE: usize = 32;
/// The fewest descriptors a core's deliveries and registrations may share.
const MIN_PER_CORE: u64 = 16;

/// The soft descriptor limit before and after start-up raised it to the hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The soft limit crnpd was started with.
    pub before: u64,
    /// The soft limit now (the hard limit, unless raising failed).
    pub now: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Raises the soft descriptor limit to the hard one.
pub fn raise_descriptor_limit() -> io::Result<DescriptorLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes one `rlimit` into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit(2) reads one `rlimit` from the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    Ok(DescriptorLimit {
        before,
        now: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Sets both descriptor limits of this process to `limit`. For tools that start crnpd under
/// a given limit: it only makes a system call, so it may run between `fork` and `exec`.
pub fn set_descriptor_limit(limit: u64) -> io::Result<()> {
    let wanted = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit(2) reads one `rlimit` from the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const wanted) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// How the descriptors are divided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorBudget {
    /// HTTP connections open at once (`--max-http-connections`).
    pub http_connections: usize,
    /// Registration connections open at once, per core: `--max-connections`, or less when the
    /// descriptor limit leaves less.
    pub registrations_per_core: usize,
    /// Deliveries in flight at once, per core.
    pub deliveries_per_core: usize,
}

/// The descriptor limit leaves too little for what was configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the descriptor limit ({limit}) leaves {available} descriptors for {cores} cores after {reserved} reserved for the process and {http} for --max-http-connections; each core needs at least {MIN_PER_CORE}: raise the limit (ulimit -n, LimitNOFILE=) or lower --max-http-connections or --cores"
)]
pub struct BudgetError {
    /// The soft descriptor limit.
    pub limit: u64,
    /// What was left for the cores.
    pub available: u64,
    /// Data-plane threads.
    pub cores: usize,
    /// Reserved for the process.
    pub reserved: u64,
    /// Given to HTTP connections.
    pub http: usize,
}

impl DescriptorBudget {
    /// Divides `limit` descriptors: the reserve, then `http_connections`, then per core a
    /// quarter of its share (at most `max_registrations`) for registrations and the rest for
    /// deliveries.
    pub fn plan(
        limit: u64,
        cores: usize,
        http_connections: usize,
        max_registrations: usize,
    ) -> Result<DescriptorBudget, BudgetError> {
        let reserved = RESERVED + RESERVED_PER_CORE * cores as u64;
        let available = limit.saturating_sub(reserved + http_connections as u64);
        let per_core = available / cores.max(1) as u64;
        if per_core < MIN_PER_CORE {
            return Err(BudgetError {
                limit,
                available,
                cores,
                reserved,
                http: http_connections,
            });
        }
        let per_core = usize::try_from(per_core).unwrap_or(usize::MAX);
        let registrations_per_core = (per_core / 4).clamp(1, max_registrations.max(1));
        Ok(DescriptorBudget {
            http_connections,
            registrations_per_core,
            deliveries_per_core: per_core - registrations_per_core,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_share_fits_in_the_limit_together() {
        for (limit, cores, http, registrations) in [
            (1024, 2, 256, 4096),
            (20_000, 2, 256, 4096),
            (1_048_576, 64, 256, 4096),
            (1024, 1, 16, 1),
        ] {
            let budget = DescriptorBudget::plan(limit, cores, http, registrations).expect("enough");
            let used = RESERVED
                + RESERVED_PER_CORE * cores as u64
                + budget.http_connections as u64
                + (cores * (budget.registrations_per_core + budget.deliveries_per_core)) as u64;
            assert!(used <= limit, "{limit}/{cores}: {budget:?} uses {used}");
            assert!(budget.registrations_per_core <= registrations);
            assert!(budget.deliveries_per_core >= budget.registrations_per_core);
        }
    }

    #[test]
    fn a_large_limit_keeps_the_configured_registration_cap() {
        let budget = DescriptorBudget::plan(1_048_576, 2, 256, 4096).expect("enough");
        assert_eq!(budget.registrations_per_core, 4096);
    }

    #[test]
    fn too_small_a_limit_is_refused_at_its_edge() {
        let reserved = RESERVED + RESERVED_PER_CORE * 2;
        let edge = reserved + 256 + 2 * MIN_PER_CORE;
        assert!(DescriptorBudget::plan(edge, 2, 256, 4096).is_ok());
        let error = DescriptorBudget::plan(edge - 1, 2, 256, 4096).expect_err("too small");
        assert!(error.to_string().contains("ulimit -n"), "{error}");
    }
}

//! CPU time and memory of processes and threads, from /proc and the thread clock.

use std::time::Duration;

/// CPU time (user + system) of process `pid`, from `/proc/PID/stat`.
pub(crate) fn process_cpu(pid: u32) -> std::io::Result<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    parse_stat_cpu(&text, u64::try_from(ticks).unwrap_or(100))
        .ok_or_else(|| std::io::Error::other(format!("/proc/{pid}/stat has no utime/stime")))
}

/// Peak resident set size of process `pid` in KiB (`VmHWM` of `/proc/PID/status`).
pub(crate) fn peak_rss_kib(pid: u32) -> std::io::Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resident set size of process `pid` now, in KiB (`VmRSS` of `/proc/PID/status`).
pub(crate) fn rss_kib(pid: u32) -> std::io::Result<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kib(&text, field)
        .ok_or_else(|| std::io::Error::other(format!("/proc/{pid}/status has no {field}")))
}

/// CPU time the calling thread has used.
pub(crate) fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a live timespec.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if status != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line, given clock ticks per second.
fn parse_stat_cpu(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime + stime;
    let per_second = ticks_per_second.max(1);
    Some(
        Duration::from_secs(ticks / per_second)
            + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second),
    )
}

/// The `VmHWM:` value in KiB.
fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Sockets in TIME_WAIT on this host (IPv4 and IPv6), from `/proc/net/tcp*`.
pub(crate) fn time_wait_sockets() -> Option<u64> {
    let mut total = 0;
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        total += count_time_wait(&std::fs::read_to_string(file).ok()?);
    }
    Some(total)
}

/// Rows of a `/proc/net/tcp` table whose state (4th column) is `06`, TIME_WAIT.
fn count_time_wait(table: &str) -> u64 {
    table
        .lines()
        .skip(1)
        .filter(|line| line.split_whitespace().nth(3) == Some("06"))
        .count() as u64
}

/// TCP counters of this network namespace that explain lost deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct TcpCounters {
    /// Sockets that should have entered TIME_WAIT but found `tcp_max_tw_buckets` full; the
    /// kernel then destroys them early (an orphaned FIN_WAIT2 socket answers the peer with a
    /// reset, which can destroy a delivery the receiver has not read yet).
    pub(crate) time_wait_overflow: u64,
    /// Connections dropped because a listener's accept queue was full.
    pub(crate) listen_overflows: u64,
    /// Established connections reset.
    pub(crate) estab_resets: u64,
    /// Resets sent.
    pub(crate) out_resets: u64,
}

impl TcpCounters {
    /// The counters now (zeros where the kernel does not say).
    pub(crate) fn read() -> TcpCounters {
        let netstat = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
        let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
        TcpCounters {
            time_wait_overflow: counter(&netstat, "TcpExt", "TCPTimeWaitOverflow").unwrap_or(0),
            listen_overflows: counter(&netstat, "TcpExt", "ListenOverflows").unwrap_or(0),
            estab_resets: counter(&snmp, "Tcp", "EstabResets").unwrap_or(0),
            out_resets: counter(&snmp, "Tcp", "OutRsts").unwrap_or(0),
        }
    }

    /// What happened between `earlier` and `self`.
    pub(crate) fn since(self, earlier: TcpCounters) -> TcpCounters {
        TcpCounters {
            time_wait_overflow: self
                .time_wait_overflow
                .saturating_sub(earlier.time_wait_overflow),
            listen_overflows: self
                .listen_overflows
                .saturating_sub(earlier.listen_overflows),
            estab_resets: self.estab_resets.saturating_sub(earlier.estab_resets),
            out_resets: self.out_resets.saturating_sub(earlier.out_resets),
        }
    }
}

/// One counter of a `/proc/net/snmp`-style table: a header line `Prefix: names...` followed
/// by a value line `Prefix: values...`.
fn counter(table: &str, prefix: &str, name: &str) -> Option<u64> {
    let tag = format!("{prefix}:");
    let mut lines = table
        .lines()
        .filter(|line| line.split_whitespace().next() == Some(tag.as_str()));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let position = names.split_whitespace().position(|n| n == name);
        if let Some(position) = position {
            return values.split_whitespace().nth(position)?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_found_by_table_and_name() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows TCPTimeWaitOverflow\n\
                       TcpExt: 0 7 1579\n\
                       IpExt: InNoRoutes ListenOverflows\n\
                       IpExt: 1 99\n";
        assert_eq!(
            counter(netstat, "TcpExt", "TCPTimeWaitOverflow"),
            Some(1579)
        );
        assert_eq!(counter(netstat, "TcpExt", "ListenOverflows"), Some(7));
        assert_eq!(counter(netstat, "IpExt", "ListenOverflows"), Some(99));
        assert_eq!(counter(netstat, "Tcp", "EstabResets"), None);
        let later = TcpCounters {
            time_wait_overflow: 10,
            listen_overflows: 1,
            estab_resets: 5,
            out_resets: 7,
        };
        let earlier = TcpCounters {
            time_wait_overflow: 4,
            ..later
        };
        assert_eq!(later.since(earlier).time_wait_overflow, 6);
        assert_eq!(later.since(earlier).estab_resets, 0);
    }

    #[test]
    fn stat_cpu_skips_a_command_name_with_spaces_and_parens() {
        let stat =
            "1234 (crnpd (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat_cpu(stat, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_stat_cpu("garbage", 100), None);
    }

    #[test]
    fn vm_hwm_is_read_in_kib() {
        let status = "Name:\tcrnpd\nVmPeak:\t  9000 kB\nVmHWM:\t    4321 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(4321));
        assert_eq!(parse_status_kib("Name: x\n", "VmHWM:"), None);
    }

    #[test]
    fn time_wait_rows_are_counted() {
        let table = "  sl  local_address rem_address   st tx_queue\n\
                     0: 0100007F:1F90 00000000:0000 0A 0\n\
                     1: 0100007F:1F90 0100007F:A000 06 0\n\
                     2: 0100007F:1F90 0100007F:A001 06 0\n";
        assert_eq!(count_time_wait(table), 2);
    }

    #[test]
    fn the_thread_clock_advances() {
        let before = thread_cpu();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(thread_cpu() > before, "{x}");
    }
}
